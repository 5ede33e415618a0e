/*
 * bus.h - the one path every session event takes.
 *
 * Whoever produces events (the HTTP handler for POST /events, the agent
 * loop) calls al_bus_append. In ONE store transaction it assigns event ids
 * and processed_at, appends the events, applies the session's status change
 * and any work-queue change; after the commit it publishes the events, in
 * order, to every live subscriber of that session (SSE streams) and to the
 * observer (the agent loop), and wakes work-queue long-polls.
 *
 * Publishing only after commit means a listener never sees an event that a
 * crash could take back, and a restarted server finds in the store exactly
 * what listeners saw. Runs on the loop thread.
 */
#ifndef AL_API_BUS_H
#define AL_API_BUS_H

#include "store/store.h"

#include <jansson.h>
#include <uv.h>

typedef struct al_bus al_bus;
typedef struct al_bus_sub al_bus_sub;

/* Called with each committed event (borrowed) of the subscribed session. */
typedef void (*al_bus_event_cb)(const char *session_id, json_t *event, void *ud);
/* Called when a work item becomes claimable in an environment. */
typedef void (*al_bus_work_cb)(const char *environment_id, void *ud);
/*
 * Extra work done inside the append transaction (on the store thread),
 * after the events are appended: e.g. enqueue a work item. The events array
 * has ids assigned. Return < 0 to roll the whole append back.
 */
typedef int (*al_bus_tx_hook)(al_store_tx *tx, const char *session_id, json_t *events, void *ud);
/* Runs on the loop thread after commit (rc >= 0) or failure (rc < 0). */
typedef void (*al_bus_done_cb)(int rc, json_t *events, void *ud);

struct al_bus_append_opts {
	const char *new_status;	 /* session status after these events, NULL: unchanged */
	al_bus_tx_hook tx_hook;	 /* optional */
	void *tx_hook_ud;
	const char *wake_environment_id; /* non-NULL: wake work polls of this environment */
};

int al_bus_new(uv_loop_t *loop, al_store *store, al_bus **out);
void al_bus_free(al_bus *bus);

/*
 * Appends events (a JSON array of event objects without ids; the bus adds
 * "id" and "processed_at") to a session. Takes a reference to events.
 * -ENOENT through done when the session does not exist.
 */
int al_bus_append(al_bus *bus, const char *session_id, json_t *events,
		  const struct al_bus_append_opts *opts, al_bus_done_cb done, void *ud);

/* Live subscription to one session's committed events (SSE streams). */
int al_bus_subscribe(al_bus *bus, const char *session_id, al_bus_event_cb cb, void *ud,
		     al_bus_sub **out);
void al_bus_unsubscribe(al_bus_sub *sub);
/* The observer sees every committed event of every session (the agent loop). */
void al_bus_set_observer(al_bus *bus, al_bus_event_cb cb, void *ud);

/* Work-queue wakeups for long-polls. */
int al_bus_watch_work(al_bus *bus, const char *environment_id, al_bus_work_cb cb, void *ud,
		      al_bus_sub **out);
void al_bus_wake_work(al_bus *bus, const char *environment_id);

#endif
