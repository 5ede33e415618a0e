/*
 * test_auditq.c - the gateway's audit syncs off the loop (gateway/auditq.h),
 * against a real audit log in the test's temporary directory.
 */
#include "unit/unit.h"

#include "audit/log.h"
#include "gateway/auditq.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

struct waiter {
	struct al_gw_auditq_wait w;
	al_audit_log *log;
	int64_t seq_at_wait; /* the last record written before the wait */
	int64_t synced;	     /* syncs counted when the callback ran */
	int rc;
	int called;
	int order;
};

static int g_order;

static void wait_cb(void *ud, int rc)
{
	struct waiter *w = ud;
	struct al_audit_stats st;

	al_audit_get_stats(w->log, &st);
	w->rc = rc;
	w->called++;
	w->order = ++g_order;
	w->synced = st.syncs;
}

static al_audit_log *open_log(const char *name)
{
	char path[512];
	struct al_audit_opts o = {.component = "gateway", .sync_every = AL_AUDIT_SYNC_EXPLICIT};
	al_audit_log *log = NULL;
	char err[256];

	snprintf(path, sizeof(path), "%s/%s", al_test_tmpdir(), name);
	remove(path);
	if (al_audit_open(path, &o, &log, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "open: %s", err);
	return log;
}

/* The gateway's loop always has its listeners; here a timer keeps the loop alive. */
static void keep_cb(uv_timer_t *t)
{
	(void)t;
}

static int64_t syncs_of(al_audit_log *log)
{
	struct al_audit_stats st;

	al_audit_get_stats(log, &st);
	return st.syncs;
}

static void write_one(al_audit_log *log, int i)
{
	json_t *r = json_pack("{s:s,s:i}", "event", "test", "i", i);

	AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	json_decref(r);
}

/* Waiters run after a sync, in arrival order, never inside the wait call;
 * the loop thread is never the one syncing. */
AL_TEST(gateway_auditq_waiters_share_a_sync)
{
	uv_loop_t loop;
	al_audit_log *log = open_log("q1.log");
	al_gw_auditq *q = NULL;
	struct waiter w[3];
	int64_t base = syncs_of(log); /* open syncs the new file */

	memset(w, 0, sizeof(w));
	g_order = 0;
	uv_loop_init(&loop);
	AL_ASSERT_INT_EQ(al_gw_auditq_new(&loop, log, &q), 0);
	for (int i = 0; i < 3; i++) {
		write_one(log, i);
		w[i].log = log;
		al_gw_auditq_wait(q, &w[i].w, wait_cb, &w[i]);
		AL_ASSERT_INT_EQ(w[i].called, 0); /* never inside the call */
	}
	AL_ASSERT(al_gw_auditq_busy(q));
	/* (No count of syncs here: the pool thread may already have done the
	 * first one by now; that it is not this thread shows in the waiters,
	 * none of which ran inside al_gw_auditq_wait.) */
	uv_run(&loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 3; i++) {
		AL_ASSERT_INT_EQ(w[i].called, 1);
		AL_ASSERT_INT_EQ(w[i].rc, 0);
		AL_ASSERT_INT_EQ(w[i].order, i + 1);
		AL_ASSERT_INT_GE(w[i].synced, base + 1);
	}
	/* The first sync started with one waiter; the other two share the next. */
	AL_ASSERT(syncs_of(log) <= base + 2);
	AL_ASSERT(!al_gw_auditq_busy(q));
	al_gw_auditq_free(q);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* Records nobody waits for are synced within AL_GW_AUDIT_BATCH_MS, many in one sync. */
AL_TEST(gateway_auditq_kick_batches)
{
	uv_loop_t loop;
	al_audit_log *log = open_log("q2.log");
	al_gw_auditq *q = NULL;
	uv_timer_t keep;
	uint64_t t0;
	int64_t base = syncs_of(log);

	uv_loop_init(&loop);
	uv_timer_init(&loop, &keep);
	uv_timer_start(&keep, keep_cb, 10000, 10000);
	AL_ASSERT_INT_EQ(al_gw_auditq_new(&loop, log, &q), 0);
	t0 = uv_hrtime();
	for (int i = 0; i < 50; i++) {
		write_one(log, i);
		al_gw_auditq_kick(q);
	}
	while (al_gw_auditq_busy(q))
		uv_run(&loop, UV_RUN_ONCE);
	AL_ASSERT_INT_EQ(syncs_of(log), base + 1);
	AL_ASSERT((uv_hrtime() - t0) / 1000000 >= AL_GW_AUDIT_BATCH_MS - 1);
	uv_close((uv_handle_t *)&keep, NULL);
	al_gw_auditq_free(q);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* A waiter arriving while kicked records wait for their timer does not wait for it. */
AL_TEST(gateway_auditq_wait_overtakes_the_batch_timer)
{
	uv_loop_t loop;
	al_audit_log *log = open_log("q3.log");
	al_gw_auditq *q = NULL;
	struct waiter w = {0};
	uv_timer_t keep;
	int64_t base = syncs_of(log);

	uv_loop_init(&loop);
	uv_timer_init(&loop, &keep);
	uv_timer_start(&keep, keep_cb, 10000, 10000);
	AL_ASSERT_INT_EQ(al_gw_auditq_new(&loop, log, &q), 0);
	write_one(log, 1);
	al_gw_auditq_kick(q);
	write_one(log, 2);
	w.log = log;
	al_gw_auditq_wait(q, &w.w, wait_cb, &w);
	while (!w.called)
		uv_run(&loop, UV_RUN_ONCE);
	AL_ASSERT_INT_EQ(w.rc, 0);
	AL_ASSERT_INT_EQ(w.synced, base + 1); /* one sync covered both records */
	AL_ASSERT(!al_gw_auditq_busy(q));     /* the batch timer was taken over */
	uv_close((uv_handle_t *)&keep, NULL);
	al_gw_auditq_free(q);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}
