/*
 * auditq.h - the gateway's audit syncs, off the loop thread.
 *
 * The gateway opens its audit log with AL_AUDIT_SYNC_EXPLICIT: records are
 * written (one write(2) each, in order) on the loop thread by
 * al_audit_write, and the fdatasync that makes them durable runs here, on
 * the libuv thread pool, one at a time. Each sync covers every record
 * written before it started, so all the calls that arrived during one
 * fdatasync share the next (group commit) and the loop never waits for the
 * disk.
 *
 * A failed fdatasync poisons the log (audit/log.h): waiters get its error
 * and every later al_audit_write fails, so the gateway fails closed (503).
 *
 * Runs on the loop thread (the sync itself on a pool thread).
 */
#ifndef AL_GATEWAY_AUDITQ_H
#define AL_GATEWAY_AUDITQ_H

#include <uv.h>

struct al_audit_log;
typedef struct al_gw_auditq al_gw_auditq;

/* rc: 0 once the records written before the wait are durable, else -errno. */
typedef void (*al_gw_auditq_cb)(void *ud, int rc);

/* Owned by the caller (embedded in its request); filled by al_gw_auditq_wait. */
struct al_gw_auditq_wait {
	al_gw_auditq_cb cb;
	void *ud;
	struct al_gw_auditq_wait *next;
};

/* `log` is borrowed and must outlive the queue. 0 or -ENOMEM. */
int al_gw_auditq_new(uv_loop_t *loop, struct al_audit_log *log, al_gw_auditq **out);

/* How long records nobody waits for may stay unsynced, at most (plus one fdatasync). */
#define AL_GW_AUDIT_BATCH_MS 10

/* Records were written and nobody waits for them: a sync follows within AL_GW_AUDIT_BATCH_MS. */
void al_gw_auditq_kick(al_gw_auditq *q);

/*
 * Records were written and cb(ud, rc) must run (on the loop, never inside
 * this call) once a sync that covers them has finished. w stays valid
 * until then; there is no cancel (keep what ud points to alive).
 */
void al_gw_auditq_wait(al_gw_auditq *q, struct al_gw_auditq_wait *w, al_gw_auditq_cb cb, void *ud);

/* Syncs in flight or queued (for tests and the drain). */
int al_gw_auditq_busy(const al_gw_auditq *q);

/*
 * Frees the queue (its memory once the loop runs again: a timer closes).
 * Only once the loop has no sync running (after uv_run returned): a running
 * sync still uses the log. Queued waiters get no callback. NULL is fine.
 */
void al_gw_auditq_free(al_gw_auditq *q);

#endif
