/*
 * toolcall.c - the local work of one tool call in our worker, by part, for
 * the analysis in docs/BENCHMARKS.md ("where the time goes").
 *
 *   bench-toolcall DIR CALLS
 *
 * What the worker does on its own machine for each bash call, without the
 * network: the journal's STARTED record (al_journal_begin: an SQLite commit
 * with synchronous=FULL, so an fsync), the call in the session's sandbox
 * (al_tool_session_run of `echo N` in the persistent shell, with the audit
 * records it writes and its pre-action audit sync; the closing records'
 * sync, which the worker makes after the post, apart: audit_sync_after),
 * DONE with the result
 * (al_journal_finish, unsynced) and ANSWERED (al_journal_answered,
 * unsynced). The tool run is measured twice: with an audit log opened as the
 * worker opens it (AL_AUDIT_SYNC_EXPLICIT) and without one (audit NULL,
 * otherwise only for unit tests), so the audit's share shows; and a bare
 * al_audit_write (no sync in this mode) of a record of the same size.
 * begin_then_run is journal_begin + tool_run_audited: the local part of a
 * call's critical path. The first call (the sandbox's creation) is left
 * out. Prints one JSON line, times in ms.
 */
#include "audit/log.h"
#include "core/alloc.h"
#include "worker/journal.h"
#include "worker/tools.h"
#include "worker/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PARTS 9

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	return n ? v[(int)(p / 100.0 * (n - 1) + 0.5)] : 0;
}

int main(int argc, char **argv)
{
	static const char *names[PARTS] = {
	    "journal_begin",	"tool_run_audited",  "journal_finish",
	    "journal_answered", "tool_run_no_audit", "audit_write",
	    "begin_then_run",	"audit_sync_after",  "sandbox_create_ms"};
	struct al_worker_config cfg;
	struct al_tool_session *ts = NULL, *ts2 = NULL;
	struct al_journal *j = NULL;
	al_audit_log *audit = NULL;
	struct al_audit_opts ao = {.component = "worker", .sync_every = AL_AUDIT_SYNC_EXPLICIT};
	char path[512], err[256], ws[512];
	double *t[PARTS];
	int n, rc = 1;

	if (argc != 3 || (n = (int)strtol(argv[2], NULL, 10)) < 2) {
		fprintf(stderr, "usage: bench-toolcall DIR CALLS\n");
		return 2;
	}
	for (int p = 0; p < PARTS; p++)
		t[p] = calloc((size_t)n, sizeof(double));
	al_worker_config_init(&cfg);
	snprintf(ws, sizeof(ws), "%s/work", argv[1]);
	mkdir(ws, 0711);
	cfg.workdir = ws;
	snprintf(path, sizeof(path), "%s/journal.db", argv[1]);
	if (al_journal_open(path, &j, err, sizeof(err)) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/audit.log", argv[1]);
	if (al_audit_open(path, &ao, &audit, err, sizeof(err)) < 0)
		goto fail;
	if (al_tool_session_open(&cfg, "sesn_bench_audited", audit, &ts, err, sizeof(err)) < 0 ||
	    al_tool_session_open(&cfg, "sesn_bench_bare", NULL, &ts2, err, sizeof(err)) < 0)
		goto fail;
	for (int i = 0; i < n; i++) {
		char id[64], cmd[64], result[256];
		struct al_tool_result r;
		json_t *input, *rec;
		enum al_journal_state prev;
		double a, b;

		snprintf(id, sizeof(id), "sevt_bench_%06d", i);
		snprintf(cmd, sizeof(cmd), "echo %d", i);
		input = json_pack("{s:s}", "command", cmd);
		a = now_ms();
		if (al_journal_begin(j, "sesn_bench", id, "work_bench", "bash", "0", &prev) < 0)
			goto fail;
		b = now_ms();
		t[0][i] = b - a;
		memset(&r, 0, sizeof(r));
		if (al_tool_session_run(ts, "work_bench", id, "bash", input, &r) < 0 || r.is_error)
			goto fail;
		a = now_ms();
		t[1][i] = a - b;
		t[6][i] = t[0][i] + t[1][i];
		/* The call's closing records: synced after the post, off the critical path. */
		if (al_audit_sync(audit) < 0)
			goto fail;
		b = now_ms();
		t[7][i] = b - a;
		a = b;
		snprintf(result, sizeof(result),
			 "{\"type\":\"user.tool_result\",\"tool_use_id\":\"%s\",\"content\":[]}",
			 id);
		if (al_journal_finish(j, "sesn_bench", id, result) < 0)
			goto fail;
		b = now_ms();
		t[2][i] = b - a;
		if (al_journal_answered(j, "sesn_bench", id) < 0)
			goto fail;
		a = now_ms();
		t[3][i] = a - b;
		al_tool_result_clear(&r);
		memset(&r, 0, sizeof(r));
		if (al_tool_session_run(ts2, "work_bench", id, "bash", input, &r) < 0 || r.is_error)
			goto fail;
		b = now_ms();
		t[4][i] = b - a;
		al_tool_result_clear(&r);
		rec = json_pack("{s:s, s:s, s:s}", "type", "tool.call", "tool_use_id", id,
				"input_sha256",
				"0000000000000000000000000000000000000000000000000000000000000000");
		if (al_audit_write(audit, rec) < 0)
			goto fail;
		a = now_ms();
		t[5][i] = a - b;
		json_decref(rec);
		/* As in the worker, the next call starts with the log synced. */
		if (al_audit_sync(audit) < 0)
			goto fail;
		json_decref(input);
		if (i == 0) /* the sandbox's creation is in the first call of each */
			t[PARTS - 1][0] = t[1][0];
	}
	printf("{\"calls\":%d", n - 1);
	for (int p = 0; p < PARTS - 1; p++) {
		double *v = t[p] + 1; /* the first call creates the sandbox */

		qsort(v, (size_t)n - 1, sizeof(double), cmp_double);
		printf(",\"%s\":{\"p50\":%.3f,\"p99\":%.3f}", names[p], pct(v, n - 1, 50),
		       pct(v, n - 1, 99));
	}
	printf(",\"%s\":%.3f}\n", names[PARTS - 1], t[PARTS - 1][0]);
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "bench-toolcall: %s\n", err[0] ? err : "a call failed");
done:
	al_tool_session_close(ts);
	al_tool_session_close(ts2);
	al_journal_close(j);
	al_audit_close(audit);
	cfg.workdir = NULL;
	al_worker_config_clear(&cfg);
	return rc;
}
