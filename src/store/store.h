/*
 * store.h - the durable store behind an interface.
 *
 * Two layers:
 *
 *  1. An executor (al_store_*): one store thread owns the backend connection.
 *     The loop thread submits a unit of work (al_store_fn); it runs on the
 *     store thread inside one transaction (committed when it returns >= 0,
 *     rolled back otherwise) and its completion callback runs back on the
 *     loop thread. So the event loop never blocks on disk, and every write
 *     that spans records is one transaction by construction.
 *
 *  2. Backend operations (al_store_doc_*, al_store_event_*), callable only
 *     from inside an al_store_fn with the al_store_tx it was given. They are
 *     the whole vocabulary the layers above use: a generic document table
 *     with a few indexed columns, and an append-only event log. A backend
 *     (SQLite today, PostgreSQL later) implements struct al_store_backend_ops
 *     and nothing above this header changes.
 *
 * Ids are al_id_new() ids and sort by creation time, so cursors are ids.
 */
#ifndef AL_STORE_STORE_H
#define AL_STORE_STORE_H

#include "core/rand.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct al_store al_store;
typedef struct al_store_tx al_store_tx;

/* ---- records ---- */

/*
 * A document: one API object (agent, environment, session, work item, key,
 * internal state). `kind` names its collection ("agent", "environment",
 * "session", "work", "key", ...). The body is the JSON text the layers above
 * own; the store only indexes ref/ref2/state/sort_ms.
 */
struct al_doc {
	char kind[24];
	char id[AL_ID_MAX];
	char ref[AL_ID_MAX];  /* kind-specific index, "" if unused (e.g. a session's agent id) */
	char ref2[AL_ID_MAX]; /* second index, "" if unused (e.g. a session's environment id) */
	char state[32];	      /* kind-specific state ("idle", "queued", ...), "" if unused */
	int64_t sort_ms;      /* kind-specific time index (e.g. a lease's last heartbeat) */
	int64_t created_ms;
	int64_t updated_ms;
	int64_t archived_ms; /* 0: not archived */
	int64_t version;     /* set by the store: 1 on insert, +1 on each update */
	char *body;	     /* owned, NUL-terminated JSON text */
};

struct al_event {
	int64_t seq; /* set by the store on append: a global, strictly increasing order */
	char id[AL_ID_MAX];
	char session_id[AL_ID_MAX];
	char type[48];
	int64_t created_ms;
	char *body; /* owned, NUL-terminated JSON text of the whole event */
};

void al_doc_clear(struct al_doc *d);		    /* frees body, zeroes */
void al_doc_array_free(struct al_doc *d, size_t n); /* clears each, frees array */
void al_event_clear(struct al_event *e);
void al_event_array_free(struct al_event *e, size_t n);

/* ---- queries ---- */

struct al_doc_query {
	const char *ref;	   /* NULL: any */
	const char *ref2;	   /* NULL: any */
	const char *const *states; /* NULL-terminated list; NULL: any */
	int include_archived;	   /* 0: skip archived_ms != 0 */
	int64_t sort_ms_before;	   /* > 0: only sort_ms < this */
	const char *after_id;	   /* cursor: only ids > this */
	const char *before_id;	   /* cursor: only ids < this */
	int descending;		   /* 1: newest (largest id) first */
	size_t limit;		   /* 0: all */
};

struct al_event_query {
	const char *session_id; /* required */
	const char *type;	/* NULL: any */
	const char *after_id;	/* only events after this one (by seq) */
	const char *before_id;	/* only events before this one */
	int descending;
	size_t limit; /* 0: all */
};

/* ---- backend operations (store thread only, inside an al_store_fn) ---- */

/*
 * -EEXIST when kind/id exists. Sets d->version = 1. created_ms 0 becomes
 * now, updated_ms 0 becomes created_ms (written back to d). d->body NULL
 * is -EINVAL. The store never takes ownership of d->body.
 */
int al_store_doc_insert(al_store_tx *tx, struct al_doc *d);
/*
 * Replaces the indexed columns, times and body of kind/id. When
 * expected_version > 0 the update happens only if the stored version matches
 * (-ESTALE otherwise), a compare-and-swap for concurrent writers. -ENOENT if
 * absent. Sets d->version to the new version. created_ms 0 keeps the stored
 * value and updated_ms 0 becomes now (both written back to d).
 */
int al_store_doc_update(al_store_tx *tx, struct al_doc *d, int64_t expected_version);
/* Fills *out (caller clears it). -ENOENT if absent. */
int al_store_doc_get(al_store_tx *tx, const char *kind, const char *id, struct al_doc *out);
/* -ENOENT if absent. */
int al_store_doc_delete(al_store_tx *tx, const char *kind, const char *id);
/*
 * *out is a new array the caller frees with al_doc_array_free (NULL when
 * empty). q NULL is the zero query. Order is by id (ascending unless
 * descending); after_id/before_id bound the id whatever the direction, so
 * the next page of a descending list uses before_id = the last id. An empty
 * states list ({NULL}) matches nothing; at most 32 states. has_more (may be
 * NULL) is 1 when more rows match beyond limit.
 */
int al_store_doc_list(al_store_tx *tx, const char *kind, const struct al_doc_query *q,
		      struct al_doc **out, size_t *n, int *has_more);
/* Counts what doc_list would return without a limit (cursors apply). */
int al_store_doc_count(al_store_tx *tx, const char *kind, const struct al_doc_query *q,
		       int64_t *count);

/*
 * Appends; sets e->seq. -EEXIST when the id exists (ids are unique across
 * sessions). created_ms 0 becomes now. e->body NULL is -EINVAL.
 */
int al_store_event_append(al_store_tx *tx, struct al_event *e);
/* session_id NULL: any session. -ENOENT if absent (or in another session). */
int al_store_event_get(al_store_tx *tx, const char *session_id, const char *id,
		       struct al_event *out);
/*
 * Ordered by seq. after_id/before_id are event ids of the same session,
 * resolved to their seq (bounds by seq whatever the direction); an id that
 * is not an event of q->session_id is -ENOENT. session_id NULL is -EINVAL.
 */
int al_store_event_list(al_store_tx *tx, const struct al_event_query *q, struct al_event **out,
			size_t *n, int *has_more);
int al_store_event_count(al_store_tx *tx, const char *session_id, int64_t *count);
/* Removes every event of a session (session deletion). */
int al_store_event_delete_session(al_store_tx *tx, const char *session_id);

/* ---- the backend interface ---- */

struct al_store_backend_ops {
	const char *name; /* "sqlite" */
	int (*begin)(void *be);
	int (*commit)(void *be);
	int (*rollback)(void *be);
	int (*doc_insert)(void *be, struct al_doc *d);
	int (*doc_update)(void *be, struct al_doc *d, int64_t expected_version);
	int (*doc_get)(void *be, const char *kind, const char *id, struct al_doc *out);
	int (*doc_delete)(void *be, const char *kind, const char *id);
	int (*doc_list)(void *be, const char *kind, const struct al_doc_query *q,
			struct al_doc **out, size_t *n, int *has_more);
	int (*doc_count)(void *be, const char *kind, const struct al_doc_query *q, int64_t *count);
	int (*event_append)(void *be, struct al_event *e);
	int (*event_get)(void *be, const char *session_id, const char *id, struct al_event *out);
	int (*event_list)(void *be, const struct al_event_query *q, struct al_event **out,
			  size_t *n, int *has_more);
	int (*event_count)(void *be, const char *session_id, int64_t *count);
	int (*event_delete_session)(void *be, const char *session_id);
	void (*close)(void *be);
	/*
	 * Optional (added): per-job savepoints inside a begin/commit, so the
	 * executor can group consecutive jobs into one transaction while a
	 * failing job undoes only its own writes. All three NULL: one
	 * transaction per job. release/rollback_to return -ECANCELED when the
	 * backend already lost the enclosing transaction (SQLite rolls back
	 * by itself on some I/O and out-of-memory errors); the executor then
	 * fails every job of the group.
	 */
	int (*savepoint)(void *be);
	int (*release)(void *be);
	int (*rollback_to)(void *be);
};

/*
 * SQLite backend: opens (creating) DIR/airlock.db in WAL mode. The
 * synchronous level comes from the environment: AIRLOCK_SQLITE_SYNC=full
 * selects FULL, unset or "normal" selects NORMAL, anything else is -EINVAL.
 * On success *be is owned by the caller until handed to al_store_start (or
 * released with (*ops)->close). err gets a human-readable reason on failure.
 */
int al_store_sqlite_open(const char *dir, const struct al_store_backend_ops **ops, void **be,
			 char *err, size_t errlen);

/* Added: explicit options for al_store_sqlite_open_opts. */
struct al_store_sqlite_opts {
	/*
	 * 0: synchronous=NORMAL (durable across process crashes; a power loss
	 * can lose the last commits, never corrupt). 1: synchronous=FULL (every
	 * commit survives power loss, at the cost of an fsync per commit).
	 */
	int sync_full;
	int busy_timeout_ms; /* 0: 5000 */
};
int al_store_sqlite_open_opts(const char *dir, const struct al_store_sqlite_opts *opts,
			      const struct al_store_backend_ops **ops, void **be, char *err,
			      size_t errlen);
/* Added, for tests: the connection's PRAGMA synchronous (1 NORMAL, 2 FULL), or < 0. */
int al_store_sqlite_synchronous(void *be);

/* ---- the executor ---- */

/*
 * Runs on the store thread inside a transaction. Return >= 0 to commit,
 * < 0 (a negative errno) to roll back. Must not touch loop-thread state.
 */
typedef int (*al_store_fn)(al_store_tx *tx, void *ud);
/* Runs on the loop thread with fn's return value (or the commit error). */
typedef void (*al_store_done_cb)(int rc, void *ud);

/*
 * Starts the store thread over an opened backend (takes ownership of be,
 * even on failure: then be is closed). Completions are delivered on `loop`
 * through a uv_async_t. Call from the loop thread. The async handle holds a
 * loop reference only while submitted jobs await their done callback, so
 * uv_run(UV_RUN_DEFAULT) returns once an idle store's work is delivered. Consecutive queued jobs
 * may share one backend transaction, each in its own savepoint (store.c):
 * a job's writes still commit iff it returns >= 0, except that a failed
 * COMMIT fails every job of its group with the commit error.
 */
int al_store_start(uv_loop_t *loop, const struct al_store_backend_ops *ops, void *be,
		   al_store **out);
/* Convenience: al_store_sqlite_open + al_store_start. */
int al_store_open_sqlite(uv_loop_t *loop, const char *dir, al_store **out, char *err,
			 size_t errlen);
/*
 * Queues fn; done (may be NULL) fires on the loop thread. Order is FIFO:
 * jobs run, and their done callbacks fire, in submission order. Loop thread
 * only. -ENOMEM, or -ESHUTDOWN after al_store_close (done is then not called).
 */
int al_store_submit(al_store *s, al_store_fn fn, al_store_done_cb done, void *ud);
/*
 * Runs fn on the store thread and waits for it, without running the loop.
 * For start-up code and tests only; never from a request handler, never
 * from inside an al_store_fn (deadlock). Ordered FIFO with al_store_submit.
 * Returns fn's value, or the commit error. -ESHUTDOWN after al_store_close.
 */
int al_store_call(al_store *s, al_store_fn fn, void *ud);
/*
 * Finishes queued work (their callbacks still fire when the loop runs),
 * stops the thread, closes the backend. Then the async handle is closed;
 * the al_store is freed once the loop has processed that close, so the
 * caller must run the loop afterwards (uv_run) before closing it. Blocks
 * until the queued jobs have run. Done callbacks firing after the close get
 * -ESHUTDOWN from al_store_submit. Loop thread only; a second call is a no-op.
 */
void al_store_close(al_store *s);
/* Added: jobs run and transactions begun so far (grouping shows as jobs > tx). */
void al_store_stats(al_store *s, uint64_t *jobs, uint64_t *transactions);

#endif
