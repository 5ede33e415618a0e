/*
 * work.h - the environment work queue, as seen by the agent loop.
 *
 * A work item is a doc of kind "work": ref = environment id, ref2 = session
 * id, state = queued | delivered | starting | active | stopping | stopped
 * ("delivered" is internal: polled but not yet acknowledged; the API shows
 * it as "queued"), sort_ms = time of the latest delivery or heartbeat (what
 * reclaim_older_than_ms compares against). The body is the API object.
 *
 * Both functions run on the store thread inside a transaction the caller
 * owns (typically a bus tx_hook), so the work change commits or rolls back
 * together with the events that caused it. After commit the caller wakes
 * long-polls (struct al_bus_append_opts.wake_environment_id).
 */
#ifndef AL_API_WORK_H
#define AL_API_WORK_H

#include "core/rand.h"
#include "store/store.h"

/* Enqueues a session work item (state queued). Writes its id to work_id_out. */
int al_work_enqueue_tx(al_store_tx *tx, const char *environment_id, const char *session_id,
		       char work_id_out[AL_ID_MAX]);
/*
 * Stops every unfinished work item of a session: queued/delivered items stop
 * at once, starting/active ones go to "stopping" (their worker sees it on
 * its next heartbeat). Returns the number of items changed, or < 0.
 */
int al_work_stop_for_session_tx(al_store_tx *tx, const char *session_id);

#endif
