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

/*
 * Called with each committed event (borrowed: valid during the call; incref
 * to keep) of the subscribed session. It may call al_bus_unsubscribe on any
 * subscription, itself included, and al_bus_subscribe (the new subscription
 * starts with the next event published), al_bus_append, al_bus_free.
 */
typedef void (*al_bus_event_cb)(const char *session_id, json_t *event, void *ud);
/* Called when a work item becomes claimable in an environment. */
typedef void (*al_bus_work_cb)(const char *environment_id, void *ud);
/*
 * Extra work done inside the append transaction (on the store thread),
 * after the events are appended: e.g. enqueue a work item. The events array
 * has ids assigned. Return < 0 to roll the whole append back.
 */
typedef int (*al_bus_tx_hook)(al_store_tx *tx, const char *session_id, json_t *events, void *ud);
/*
 * Runs on the loop thread after commit (rc >= 0) or failure (rc < 0). After
 * commit, events is the bus's copy with "id" and "processed_at" set, and the
 * events were already published; after failure, it is the caller's array as
 * passed in (nothing was stored or published). Borrowed: incref to keep.
 */
typedef void (*al_bus_done_cb)(int rc, json_t *events, void *ud);

/*
 * Added: a precondition checked inside the append transaction (store
 * thread), after the session document is read and before anything is
 * written, so a caller that must refuse appends to some sessions (archived,
 * terminated, out of an environment key's scope) needs no separate store
 * round trip. session is borrowed for the call. Return < 0 to refuse:
 * nothing is written and done gets that value.
 */
typedef int (*al_bus_check_fn)(al_store_tx *tx, const struct al_doc *session, void *ud);

struct al_bus_append_opts {
	const char *new_status; /* session status after these events, NULL: unchanged */
	al_bus_tx_hook tx_hook; /* optional */
	void *tx_hook_ud;
	const char *wake_environment_id; /* non-NULL: wake work polls of this environment */
	al_bus_check_fn check;		 /* optional (added) */
	void *check_ud;
};

/* store is borrowed and must outlive the bus. */
int al_bus_new(uv_loop_t *loop, al_store *store, al_bus **out);
/*
 * Frees every subscription (their handles become invalid) and the bus.
 * With appends in flight (or from inside a bus callback) the free completes
 * when the last of them returns: their done callbacks still fire, but
 * nothing more is published. Close the store after the bus has gone.
 */
void al_bus_free(al_bus *bus);

/*
 * Appends events (a JSON array of event objects without ids; the bus adds
 * "id" and "processed_at") to a session. Takes a reference to events.
 * -ENOENT through done when the session does not exist.
 *
 * Semantics chosen (added): every element must be an object with a
 * non-empty string "type" (< 48 bytes), otherwise -EINVAL at once; an empty
 * array is allowed (a status-only change). The caller's array is never
 * modified: the bus works on a deep copy, so the caller may keep using its
 * array on the loop thread. Any "id"/"processed_at" the caller put there is
 * replaced. All events of one append share one processed_at (the time the
 * store job ran). opts may be NULL. new_status must be one of "idle",
 * "running", "rescheduling", "terminated" (-EINVAL otherwise); it sets the
 * session body's "status" and "updated_at" and the doc's state and
 * updated_ms; without new_status the session doc is read (to check it
 * exists) but not written. Publishing order: per event, the session's
 * subscribers then the observer; then the work watchers; then done.
 * Returns 0 (done will be called exactly once) or a negative errno (done
 * will not be called).
 */
int al_bus_append(al_bus *bus, const char *session_id, json_t *events,
		  const struct al_bus_append_opts *opts, al_bus_done_cb done, void *ud);

/* Live subscription to one session's committed events (SSE streams). */
int al_bus_subscribe(al_bus *bus, const char *session_id, al_bus_event_cb cb, void *ud,
		     al_bus_sub **out);
void al_bus_unsubscribe(al_bus_sub *sub);
/*
 * Added. Inside an al_bus_event_cb: the event being published as the
 * compact JSON text the store holds (what json_dumps(event, JSON_COMPACT)
 * gives), serialised once per event for all subscribers. Borrowed, valid
 * during the callback; NULL (and *len 0) outside a publish or when the
 * text is not available, so callers fall back to serialising the event.
 */
const char *al_bus_event_text(const al_bus *bus, size_t *len);
/* The observer sees every committed event of every session (the agent loop). */
void al_bus_set_observer(al_bus *bus, al_bus_event_cb cb, void *ud);

/*
 * Work-queue wakeups for long-polls. A watcher stays registered until
 * al_bus_unsubscribe (it is not one-shot); each wake calls every watcher of
 * that environment once. The same callback rules as for subscribers apply.
 */
int al_bus_watch_work(al_bus *bus, const char *environment_id, al_bus_work_cb cb, void *ud,
		      al_bus_sub **out);
void al_bus_wake_work(al_bus *bus, const char *environment_id);

#endif
