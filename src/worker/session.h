/*
 * session.h - one work item served to its end (docs/WORKER.md): ack,
 * heartbeats (the lease), the session's event stream and history, the
 * dispatch of every owned tool call through the exactly-once journal onto
 * the libuv thread pool, confirmations, the idle exit, and the force-stop.
 *
 * Everything here runs on the loop thread except the tool calls themselves
 * (and the journal's begin/finish, and opening/closing the tool session),
 * which run on the pool, one at a time per session, in the order the agent
 * issued them.
 */
#ifndef AL_WORKER_SESSION_H
#define AL_WORKER_SESSION_H

#include <jansson.h>
#include <uv.h>

#include "audit/log.h"
#include "worker/client.h"
#include "worker/journal.h"
#include "worker/worker.h"

/* What the sessions of one worker process share. All borrowed by the sessions. */
struct al_wctx {
	uv_loop_t *loop;
	const struct al_worker_config *cfg;
	struct al_wc *client;
	struct al_journal *journal;
	al_audit_log *audit;
	int fatal; /* set by a session on a journal failure: the worker must exit 1 */
};

/* How a session ended (for the poller's logs and exit status). */
enum al_wsess_end {
	AL_WSESS_DONE,	     /* idle exit or terminated session: item stopped */
	AL_WSESS_STOPPING,   /* the server asked to stop (or lease not extended) */
	AL_WSESS_LEASE_LOST, /* 412 or no beat within the TTL: item left alone */
	AL_WSESS_SHUTDOWN,   /* SIGTERM/SIGINT */
	AL_WSESS_FAILED,     /* ack failed, fatal stream/heartbeat error */
};

struct al_wsess;
typedef void (*al_wsess_done_cb)(struct al_wsess *s, enum al_wsess_end end, void *ud);

/* Options of one item. */
struct al_wsess_opts {
	int ack;	  /* 1: ack first (poll mode; run mode tolerates 409) */
	int ack_tolerant; /* 1: a 409 on ack is fine (run mode: the poller acked it) */
};

/*
 * Starts serving `work` (a work object as poll returns it; borrowed, the
 * fields needed are copied; its secret is decoded and the copy wiped).
 * done_cb fires exactly once, on the loop, after everything the session
 * started has finished (tool call, force-stop, handles closed); free the
 * session afterwards with al_wsess_free. Returns 0 or a negative errno
 * (nothing started, done_cb will not fire).
 */
int al_wsess_start(struct al_wctx *ctx, const json_t *work, const struct al_wsess_opts *opts,
		   al_wsess_done_cb cb, void *ud, struct al_wsess **out);
/*
 * Graceful shutdown: no new tool call starts; the running one gets the
 * config's shutdown_grace_s to finish (then it is cancelled); its result is posted while the lease
 * lives; then the item is force-stopped. Idempotent.
 */
void al_wsess_shutdown(struct al_wsess *s);
/* The work id (borrowed, lives as long as s). */
const char *al_wsess_work_id(const struct al_wsess *s);
/* Frees a session whose done_cb has fired. NULL ok. */
void al_wsess_free(struct al_wsess *s);

#endif
