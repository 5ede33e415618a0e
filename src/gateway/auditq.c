/*
 * auditq.c - audit fdatasyncs on the libuv thread pool, one at a time,
 * each covering every record written before it started (auditq.h).
 */
#include "gateway/auditq.h"

#include "audit/log.h"
#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <string.h>

struct al_gw_auditq {
	uv_loop_t *loop;
	struct al_audit_log *log;
	uv_work_t work;
	uv_timer_t timer; /* delays a sync nobody waits for (kick) */
	int timer_armed;
	int busy;  /* a sync is on the thread pool */
	int dirty; /* records written since the running sync started */
	int rc;	   /* of the sync that just ran (set on the pool thread) */
	/* Waiters for the running sync, and for the next one (FIFO each). */
	struct al_gw_auditq_wait *cur, *next, **next_tail;
};

static void start(al_gw_auditq *q);
static void arm(al_gw_auditq *q);

static void work_cb(uv_work_t *w)
{
	al_gw_auditq *q = w->data;

	q->rc = al_audit_sync(q->log);
}

static void run_waiters(struct al_gw_auditq_wait *w, int rc)
{
	while (w) {
		struct al_gw_auditq_wait *n = w->next;
		w->next = NULL;
		w->cb(w->ud, rc); /* may free w (the request it is part of) */
		w = n;
	}
}

static void after_cb(uv_work_t *w, int status)
{
	al_gw_auditq *q = w->data;
	struct al_gw_auditq_wait *done = q->cur;
	int rc = status < 0 ? status : q->rc;

	q->cur = NULL;
	q->busy = 0;
	if (rc < 0)
		al_error("gateway", "audit: fdatasync failed: %s (the log refuses further records)",
			 strerror(-rc));
	run_waiters(done, rc);
	/* Waiters came during the sync: the next one now; kicked records only: batched. */
	if (q->next)
		start(q);
	else if (q->dirty)
		arm(q);
}

/* Starts a sync for what was written so far, unless one runs (it restarts when done). */
static void start(al_gw_auditq *q)
{
	if (q->busy || (!q->dirty && q->next == NULL))
		return;
	if (q->timer_armed) {
		uv_timer_stop(&q->timer);
		q->timer_armed = 0;
	}
	q->cur = q->next;
	q->next = NULL;
	q->next_tail = &q->next;
	q->dirty = 0;
	q->busy = 1;
	q->work.data = q;
	/* Fails only without a work callback (EINVAL): it cannot here. */
	(void)uv_queue_work(q->loop, &q->work, work_cb, after_cb);
}

int al_gw_auditq_new(uv_loop_t *loop, struct al_audit_log *log, al_gw_auditq **out)
{
	al_gw_auditq *q = al_calloc(1, sizeof(*q));

	*out = NULL;
	if (q == NULL)
		return -ENOMEM;
	q->loop = loop;
	q->log = log;
	q->next_tail = &q->next;
	uv_timer_init(loop, &q->timer);
	q->timer.data = q;
	uv_unref((uv_handle_t *)&q->timer); /* close syncs what a pending timer would */
	*out = q;
	return 0;
}

static void timer_cb(uv_timer_t *t)
{
	al_gw_auditq *q = t->data;

	q->timer_armed = 0;
	start(q);
}

/*
 * Nobody waits: gather AL_GW_AUDIT_BATCH_MS of records into one sync.
 * Back-to-back fdatasyncs slow every write(2) on the loop (the append waits
 * on the journal commit they force).
 */
static void arm(al_gw_auditq *q)
{
	if (q->busy || q->timer_armed)
		return; /* a running sync re-arms when it ends, if needed */
	q->timer_armed = 1;
	uv_timer_start(&q->timer, timer_cb, AL_GW_AUDIT_BATCH_MS, 0);
}

void al_gw_auditq_kick(al_gw_auditq *q)
{
	q->dirty = 1;
	arm(q);
}

void al_gw_auditq_wait(al_gw_auditq *q, struct al_gw_auditq_wait *w, al_gw_auditq_cb cb, void *ud)
{
	w->cb = cb;
	w->ud = ud;
	w->next = NULL;
	*q->next_tail = w;
	q->next_tail = &w->next;
	start(q);
}

int al_gw_auditq_busy(const al_gw_auditq *q)
{
	return q && (q->busy || q->dirty || q->next);
}

static void closed_cb(uv_handle_t *h)
{
	al_free(h->data);
}

void al_gw_auditq_free(al_gw_auditq *q)
{
	if (q == NULL)
		return;
	uv_close((uv_handle_t *)&q->timer, closed_cb);
}
