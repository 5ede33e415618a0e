/*
 * Unit tests for src/worker/journal.c on real SQLite files: the state
 * machine, persistence across reopen, a child process killed between begin
 * and finish and after finish (the exactly-once rule after a crash), several
 * threads at once, two processes racing for the same call, allocation
 * failure (ours and SQLite's heap), and files that are not a journal.
 */
#include "core/alloc.h"
#include "unit/unit.h"
#include "worker/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A path in the test's scratch dir; a few rotating buffers so two can be live. */
static char *jpath(const char *name)
{
	static char path[4][4096];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", al_test_tmpdir(), name);
	return p;
}

static struct al_journal *open_ok(const char *path)
{
	struct al_journal *j = NULL;
	char err[512];
	int rc = al_journal_open(path, &j, err, sizeof(err));

	if (rc != 0)
		al_test_fail(__FILE__, __LINE__, "open %s: %d %s", path, rc, err);
	return j;
}

static enum al_journal_state state_of(struct al_journal *j, const char *s, const char *t)
{
	enum al_journal_state st;

	AL_ASSERT_INT_EQ(al_journal_get(j, s, t, &st, NULL), 0);
	return st;
}

AL_TEST(journal_state_transitions)
{
	const char *p = jpath("journal.db");
	struct al_journal *j = open_ok(p);
	enum al_journal_state prev = AL_JOURNAL_DONE, st;
	char *res = (char *)"x";
	struct stat sb;

	AL_ASSERT_INT_EQ(state_of(j, "sesn_1", "toolu_1"), AL_JOURNAL_NONE);
	AL_ASSERT_INT_EQ(al_journal_get(j, "sesn_1", "toolu_1", &st, &res), 0);
	AL_ASSERT_NULL(res);

	AL_ASSERT_INT_EQ(al_journal_begin(j, "sesn_1", "toolu_1", "work_1", "bash", "ab12", &prev),
			 0);
	AL_ASSERT_INT_EQ(prev, AL_JOURNAL_NONE);
	AL_ASSERT_INT_EQ(state_of(j, "sesn_1", "toolu_1"), AL_JOURNAL_STARTED);
	AL_ASSERT_INT_EQ(al_journal_get(j, "sesn_1", "toolu_1", &st, &res), 0);
	AL_ASSERT_NULL(res); /* STARTED has no result */

	/* Double begin: refused, state reported, nothing changed. */
	AL_ASSERT_INT_EQ(al_journal_begin(j, "sesn_1", "toolu_1", "work_2", "read", NULL, &prev),
			 -EEXIST);
	AL_ASSERT_INT_EQ(prev, AL_JOURNAL_STARTED);

	AL_ASSERT_INT_EQ(al_journal_finish(j, "sesn_1", "toolu_1", "{\"type\":\"r\",\"n\":1}"), 0);
	AL_ASSERT_INT_EQ(al_journal_get(j, "sesn_1", "toolu_1", &st, &res), 0);
	AL_ASSERT_INT_EQ(st, AL_JOURNAL_DONE);
	AL_ASSERT_STR_EQ(res, "{\"type\":\"r\",\"n\":1}");
	al_free(res);
	/* A second finish keeps the first result. */
	AL_ASSERT_INT_EQ(al_journal_finish(j, "sesn_1", "toolu_1", "{\"n\":2}"), -EALREADY);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "sesn_1", "toolu_1", NULL, NULL, NULL, &prev),
			 -EEXIST);
	AL_ASSERT_INT_EQ(prev, AL_JOURNAL_DONE);

	AL_ASSERT_INT_EQ(al_journal_answered(j, "sesn_1", "toolu_1"), 0);
	AL_ASSERT_INT_EQ(al_journal_answered(j, "sesn_1", "toolu_1"), 0); /* idempotent */
	AL_ASSERT_INT_EQ(al_journal_get(j, "sesn_1", "toolu_1", &st, &res), 0);
	AL_ASSERT_INT_EQ(st, AL_JOURNAL_ANSWERED);
	AL_ASSERT_STR_EQ(res, "{\"type\":\"r\",\"n\":1}"); /* kept after the answer */
	al_free(res);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "sesn_1", "toolu_1", "{}"), -EALREADY);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "sesn_1", "toolu_1", NULL, NULL, NULL, &prev),
			 -EEXIST);
	AL_ASSERT_INT_EQ(prev, AL_JOURNAL_ANSWERED);

	/* Finish of an unknown call; the key is the pair, not either half. */
	AL_ASSERT_INT_EQ(al_journal_finish(j, "sesn_1", "toolu_2", "{}"), -ENOENT);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "sesn_2", "toolu_1", "{}"), -ENOENT);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "sesn_2", "toolu_1", NULL, NULL, NULL, NULL), 0);

	/* An answer seen in history for a call never run here: inserted as ANSWERED. */
	AL_ASSERT_INT_EQ(al_journal_answered(j, "sesn_1", "toolu_hist"), 0);
	AL_ASSERT_INT_EQ(al_journal_get(j, "sesn_1", "toolu_hist", &st, &res), 0);
	AL_ASSERT_INT_EQ(st, AL_JOURNAL_ANSWERED);
	AL_ASSERT_NULL(res);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "sesn_1", "toolu_hist", NULL, NULL, NULL, &prev),
			 -EEXIST);
	AL_ASSERT_INT_EQ(prev, AL_JOURNAL_ANSWERED);
	/* STARTED -> ANSWERED directly (answered after a restart with an error result). */
	AL_ASSERT_INT_EQ(al_journal_answered(j, "sesn_2", "toolu_1"), 0);
	AL_ASSERT_INT_EQ(state_of(j, "sesn_2", "toolu_1"), AL_JOURNAL_ANSWERED);

	/* Bad arguments. */
	AL_ASSERT_INT_EQ(al_journal_begin(j, "", "t", NULL, NULL, NULL, NULL), -EINVAL);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", NULL, NULL, NULL, NULL, NULL), -EINVAL);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "s", "t", NULL), -EINVAL);
	AL_ASSERT_INT_EQ(al_journal_answered(j, NULL, "t"), -EINVAL);
	AL_ASSERT_INT_EQ(al_journal_get(j, "s", "", &st, NULL), -EINVAL);
	AL_ASSERT_INT_EQ(al_journal_prune(j, -1), -EINVAL);

	/* Owner-only file. */
	AL_ASSERT_INT_EQ(stat(p, &sb), 0);
	AL_ASSERT_INT_EQ(sb.st_mode & 0777, 0600);
	al_journal_close(j);
	al_journal_close(NULL);
}

/*
 * begin must run under synchronous=FULL; finish and answered drop to
 * NORMAL for their own commit only. (A PRAGMA kept as a prepared statement
 * would not do this: it takes effect when compiled.)
 */
AL_TEST(journal_stays_full_sync_around_answered)
{
	struct al_journal *j = open_ok(jpath("j.db"));

	AL_ASSERT_INT_EQ(al_journal_synchronous(j), 2);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "t", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_synchronous(j), 2);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "f", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "s", "f", "{}"), 0);
	AL_ASSERT_INT_EQ(al_journal_synchronous(j), 2); /* the next begin is FULL again */
	for (int i = 0; i < 3; i++) {
		AL_ASSERT_INT_EQ(al_journal_answered(j, "s", "t"), 0);
		AL_ASSERT_INT_EQ(al_journal_synchronous(j), 2);
		AL_ASSERT_INT_EQ(al_journal_answered(j, "s", "other"), 0);
		AL_ASSERT_INT_EQ(al_journal_synchronous(j), 2);
	}
	al_journal_close(j);
}

AL_TEST(journal_persists_across_reopen)
{
	const char *p = jpath("j.db");
	struct al_journal *j = open_ok(p);
	enum al_journal_state st, prev;
	char *res;

	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "started", "w", "bash", "h", NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "done", "w", "bash", "h", NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "s", "done", "{\"ok\":true}"), 0);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "answered", "w", "bash", "h", NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "s", "answered", "{\"ok\":1}"), 0);
	AL_ASSERT_INT_EQ(al_journal_answered(j, "s", "answered"), 0);
	al_journal_close(j);

	j = open_ok(p);
	AL_ASSERT_INT_EQ(state_of(j, "s", "started"), AL_JOURNAL_STARTED);
	AL_ASSERT_INT_EQ(al_journal_get(j, "s", "done", &st, &res), 0);
	AL_ASSERT_INT_EQ(st, AL_JOURNAL_DONE);
	AL_ASSERT_STR_EQ(res, "{\"ok\":true}");
	al_free(res);
	AL_ASSERT_INT_EQ(state_of(j, "s", "answered"), AL_JOURNAL_ANSWERED);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "started", NULL, NULL, NULL, &prev), -EEXIST);
	AL_ASSERT_INT_EQ(prev, AL_JOURNAL_STARTED);
	al_journal_close(j);
}

/*
 * A child opens the journal, records, and dies with _exit (no close, no
 * checkpoint, no atexit) at the point `stage` names; the parent reopens.
 */
static void crash_child(const char *p, int stage)
{
	pid_t pid = fork();
	int status;

	AL_ASSERT(pid >= 0);
	if (pid == 0) {
		struct al_journal *j = NULL;
		char err[256];

		if (al_journal_open(p, &j, err, sizeof(err)) != 0)
			_exit(2);
		if (al_journal_begin(j, "sesn", "toolu", "work", "bash", "h", NULL) != 0)
			_exit(3);
		if (stage >= 1 && al_journal_finish(j, "sesn", "toolu", "{\"result\":42}") != 0)
			_exit(4);
		if (stage >= 2 && al_journal_answered(j, "sesn", "toolu") != 0)
			_exit(5);
		_exit(0); /* as kill -9 would: nothing flushed by us after the call returned */
	}
	AL_ASSERT_INT_EQ(waitpid(pid, &status, 0), pid);
	AL_ASSERT(WIFEXITED(status));
	AL_ASSERT_INT_EQ(WEXITSTATUS(status), 0);
}

AL_TEST(journal_crash_between_begin_and_finish_leaves_started)
{
	const char *p = jpath("j.db");
	struct al_journal *j;
	enum al_journal_state prev;
	char wal[4200];
	struct stat sb;

	crash_child(p, 0);
	/* The record is in the WAL, not yet checkpointed: recovery must read it. */
	snprintf(wal, sizeof(wal), "%s-wal", p);
	AL_ASSERT_INT_EQ(stat(wal, &sb), 0);
	AL_ASSERT(sb.st_size > 0);
	j = open_ok(p);
	AL_ASSERT_INT_EQ(state_of(j, "sesn", "toolu"), AL_JOURNAL_STARTED);
	/* The restarted worker must not run it again. */
	AL_ASSERT_INT_EQ(al_journal_begin(j, "sesn", "toolu", "work2", "bash", "h", &prev),
			 -EEXIST);
	AL_ASSERT_INT_EQ(prev, AL_JOURNAL_STARTED);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "sesn", "toolu", "{\"error\":\"restarted\"}"), 0);
	al_journal_close(j);
}

AL_TEST(journal_crash_after_finish_keeps_the_result)
{
	const char *p = jpath("j.db");
	struct al_journal *j;
	enum al_journal_state st;
	char *res;

	crash_child(p, 1);
	j = open_ok(p);
	AL_ASSERT_INT_EQ(al_journal_get(j, "sesn", "toolu", &st, &res), 0);
	AL_ASSERT_INT_EQ(st, AL_JOURNAL_DONE);
	AL_ASSERT_STR_EQ(res, "{\"result\":42}");
	al_free(res);
	al_journal_close(j);

	/* And after the answer: left alone. */
	crash_child(jpath("k.db"), 2);
	j = open_ok(jpath("k.db"));
	AL_ASSERT_INT_EQ(state_of(j, "sesn", "toolu"), AL_JOURNAL_ANSWERED);
	al_journal_close(j);
}

/* A child killed by SIGKILL in a loop of begin+finish: every call it began is found. */
AL_TEST(journal_sigkill_mid_stream_loses_no_begin)
{
	const char *p = jpath("j.db");
	int fds[2], status;
	pid_t pid;
	long last = -1;
	char line[32];
	FILE *f;
	struct al_journal *j;

	AL_ASSERT_INT_EQ(pipe(fds), 0);
	pid = fork();
	AL_ASSERT(pid >= 0);
	if (pid == 0) {
		struct al_journal *cj = NULL;
		char err[256], id[32];

		close(fds[0]);
		if (al_journal_open(p, &cj, err, sizeof(err)) != 0)
			_exit(2);
		for (long i = 0;; i++) {
			snprintf(id, sizeof(id), "toolu_%ld", i);
			if (al_journal_begin(cj, "s", id, NULL, "bash", NULL, NULL) != 0)
				_exit(3);
			/* Reported only once begin returned: it must be durable now. */
			dprintf(fds[1], "%ld\n", i);
			if (i % 2 == 0 && al_journal_finish(cj, "s", id, "{}") != 0)
				_exit(4);
		}
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	AL_ASSERT_NOT_NULL(f);
	while (last < 20 && fgets(line, sizeof(line), f) != NULL)
		last = strtol(line, NULL, 10);
	kill(pid, SIGKILL);
	while (fgets(line, sizeof(line), f) != NULL)
		last = strtol(line, NULL, 10);
	fclose(f);
	AL_ASSERT_INT_EQ(waitpid(pid, &status, 0), pid);
	AL_ASSERT(WIFSIGNALED(status));
	AL_ASSERT_INT_GE(last, 20);

	j = open_ok(p);
	for (long i = 0; i <= last; i++) {
		char id[32];
		enum al_journal_state st;

		snprintf(id, sizeof(id), "toolu_%ld", i);
		st = state_of(j, "s", id);
		if (st != AL_JOURNAL_STARTED && st != AL_JOURNAL_DONE)
			al_test_fail(__FILE__, __LINE__, "call %ld: state %d", i, st);
		if (i % 2 == 1)
			AL_ASSERT_INT_EQ(st, AL_JOURNAL_STARTED);
	}
	al_journal_close(j);
}

struct thr {
	struct al_journal *j;
	int id;
	int won; /* begins that returned 0 */
	int failed;
};

#define THREADS 4
#define CALLS	50

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	char tu[32], res[64];
	enum al_journal_state st;

	for (int i = 0; i < CALLS; i++) {
		int rc;

		/* Every thread tries every call: exactly one may run each. */
		snprintf(tu, sizeof(tu), "toolu_%d", i);
		rc = al_journal_begin(t->j, "sesn", tu, NULL, "bash", NULL, &st);
		if (rc == 0) {
			t->won++;
			snprintf(res, sizeof(res), "{\"by\":%d}", t->id);
			if (al_journal_finish(t->j, "sesn", tu, res) != 0)
				t->failed++;
		} else if (rc != -EEXIST) {
			t->failed++;
		}
		/* And some private calls, interleaved with gets and answers. */
		snprintf(tu, sizeof(tu), "own_%d_%d", t->id, i);
		if (al_journal_begin(t->j, "sesn", tu, NULL, NULL, NULL, NULL) != 0 ||
		    al_journal_answered(t->j, "sesn", tu) != 0 ||
		    al_journal_get(t->j, "sesn", tu, &st, NULL) != 0 || st != AL_JOURNAL_ANSWERED)
			t->failed++;
	}
	return NULL;
}

AL_TEST(journal_threads_run_each_call_once)
{
	struct al_journal *j = open_ok(jpath("j.db"));
	pthread_t th[THREADS];
	struct thr t[THREADS];
	int won = 0;

	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct thr){.j = j, .id = i};
		AL_ASSERT_INT_EQ(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		AL_ASSERT_INT_EQ(t[i].failed, 0);
		won += t[i].won;
	}
	AL_ASSERT_INT_EQ(won, CALLS);
	for (int i = 0; i < CALLS; i++) {
		char tu[32];

		snprintf(tu, sizeof(tu), "toolu_%d", i);
		AL_ASSERT_INT_EQ(state_of(j, "sesn", tu), AL_JOURNAL_DONE);
	}
	al_journal_close(j);
}

/* Two processes on one file (two workers on one state dir): one wins each call. */
AL_TEST(journal_processes_run_each_call_once)
{
	const char *p = jpath("j.db");
	struct al_journal *j = open_ok(p); /* creates the schema first */
	pid_t pid[2];
	int wins = 0;

	al_journal_close(j);
	for (int k = 0; k < 2; k++) {
		pid[k] = fork();
		AL_ASSERT(pid[k] >= 0);
		if (pid[k] == 0) {
			struct al_journal *cj = NULL;
			char err[256], tu[32];
			int won = 0;

			if (al_journal_open(p, &cj, err, sizeof(err)) != 0)
				_exit(255);
			for (int i = 0; i < 30; i++) {
				int rc;

				snprintf(tu, sizeof(tu), "toolu_%d", i);
				rc = al_journal_begin(cj, "s", tu, NULL, NULL, NULL, NULL);
				if (rc == 0)
					won++;
				else if (rc != -EEXIST)
					_exit(254);
			}
			al_journal_close(cj);
			_exit(won);
		}
	}
	for (int k = 0; k < 2; k++) {
		int status;

		AL_ASSERT_INT_EQ(waitpid(pid[k], &status, 0), pid[k]);
		AL_ASSERT(WIFEXITED(status));
		AL_ASSERT(WEXITSTATUS(status) <= 30);
		wins += WEXITSTATUS(status);
	}
	AL_ASSERT_INT_EQ(wins, 30);
}

AL_TEST(journal_prune_removes_old_answered_only)
{
	struct al_journal *j = open_ok(jpath("j.db"));

	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "a", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_answered(j, "s", "a"), 0);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "b", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "c", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "s", "c", "{}"), 0);
	usleep(20 * 1000);
	/* Young: kept. */
	AL_ASSERT_INT_EQ(al_journal_prune(j, 3600 * 1000), 0);
	AL_ASSERT_INT_EQ(state_of(j, "s", "a"), AL_JOURNAL_ANSWERED);
	/* Old enough: only the ANSWERED one goes; STARTED and DONE are still owed. */
	AL_ASSERT_INT_EQ(al_journal_prune(j, 5), 1);
	AL_ASSERT_INT_EQ(state_of(j, "s", "a"), AL_JOURNAL_NONE);
	AL_ASSERT_INT_EQ(state_of(j, "s", "b"), AL_JOURNAL_STARTED);
	AL_ASSERT_INT_EQ(state_of(j, "s", "c"), AL_JOURNAL_DONE);
	AL_ASSERT_INT_EQ(al_journal_prune(j, 0), 0);
	al_journal_close(j);
}

AL_TEST(journal_refuses_newer_schema_and_foreign_databases)
{
	const char *p = jpath("j.db");
	struct al_journal *j = open_ok(p);
	sqlite3 *db;
	char err[512];

	al_journal_close(j);
	AL_ASSERT_INT_EQ(sqlite3_open(p, &db), SQLITE_OK);
	AL_ASSERT_INT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	j = (struct al_journal *)1;
	AL_ASSERT_INT_EQ(al_journal_open(p, &j, err, sizeof(err)), -EPROTO);
	AL_ASSERT_NULL(j);
	AL_ASSERT_NOT_NULL(strstr(err, "99"));
	AL_ASSERT_NOT_NULL(strstr(err, "newer"));

	/* Some other application's database: not taken over. */
	p = jpath("other.db");
	AL_ASSERT_INT_EQ(sqlite3_open(p, &db), SQLITE_OK);
	AL_ASSERT_INT_EQ(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	AL_ASSERT_INT_EQ(al_journal_open(p, &j, err, sizeof(err)), -EPROTO);
	AL_ASSERT_NOT_NULL(strstr(err, "not an airlock journal"));
}

AL_TEST(journal_corrupt_file_is_a_clear_error)
{
	const char *p = jpath("j.db");
	struct al_journal *j = open_ok(p);
	char err[512], junk[4096];
	int fd;

	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "t", NULL, NULL, NULL, NULL), 0);
	al_journal_close(j);

	/* Not SQLite at all. */
	fd = open(jpath("text.db"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	AL_ASSERT(fd >= 0);
	memset(junk, 'x', sizeof(junk));
	AL_ASSERT_INT_EQ(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	AL_ASSERT_INT_EQ(al_journal_open(jpath("text.db"), &j, err, sizeof(err)), -EBADMSG);
	AL_ASSERT_NULL(j);
	AL_ASSERT_NOT_NULL(strstr(err, "not a valid SQLite database"));

	/* The real journal with its header and first pages overwritten. */
	fd = open(p, O_WRONLY);
	AL_ASSERT(fd >= 0);
	AL_ASSERT_INT_EQ(pwrite(fd, junk, sizeof(junk), 0), sizeof(junk));
	close(fd);
	AL_ASSERT_INT_EQ(al_journal_open(p, &j, err, sizeof(err)), -EBADMSG);
	AL_ASSERT_NOT_NULL(strstr(err, p));

	/* A directory where the file should be; a path that cannot be created. */
	AL_ASSERT_INT_EQ(mkdir(jpath("dir.db"), 0700), 0);
	AL_ASSERT(al_journal_open(jpath("dir.db"), &j, err, sizeof(err)) < 0);
	AL_ASSERT(err[0] != '\0');
	AL_ASSERT_INT_EQ(al_journal_open(jpath("no/such/dir/j.db"), &j, err, sizeof(err)), -ENOENT);
	AL_ASSERT_NULL(j);
}

/*
 * Damage past the header: the schema page is intact, so open may succeed,
 * but reading or writing the damaged pages must give a negative errno, not
 * a crash or a wrong answer.
 */
AL_TEST(journal_corrupt_pages_give_errors_not_crashes)
{
	const char *p = jpath("j.db");
	struct al_journal *j = open_ok(p);
	char id[32], err[512], junk[4096], big[2048];
	struct stat sb;
	int fd;

	memset(big, 'r', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "toolu_%03d", i);
		AL_ASSERT_INT_EQ(al_journal_begin(j, "s", id, NULL, NULL, NULL, NULL), 0);
		AL_ASSERT_INT_EQ(al_journal_finish(j, "s", id, big), 0);
	}
	al_journal_close(j); /* checkpoints everything into the file */
	AL_ASSERT_INT_EQ(stat(p, &sb), 0);
	AL_ASSERT(sb.st_size > 16 * 4096);
	memset(junk, 0xa5, sizeof(junk));
	fd = open(p, O_WRONLY);
	AL_ASSERT(fd >= 0);
	/* Pages 3.. hold the table's b-tree; keep page 1 (header and schema). */
	for (off_t off = 2 * 4096; off < sb.st_size; off += 3 * 4096)
		AL_ASSERT_INT_EQ(pwrite(fd, junk, sizeof(junk), off), sizeof(junk));
	close(fd);

	/* The structure check at open sees it. */
	AL_ASSERT_INT_EQ(al_journal_open(p, &j, err, sizeof(err)), -EBADMSG);
	AL_ASSERT_NULL(j);
	AL_ASSERT_NOT_NULL(strstr(err, "not a valid SQLite database"));
}

/*
 * Damage inside a row (bit rot in a payload, which no b-tree check sees),
 * simulated by a second connection rewriting the values: the result's
 * checksum and the state's range catch it on read.
 */
AL_TEST(journal_damaged_rows_are_reported_not_used)
{
	const char *p = jpath("j.db");
	struct al_journal *j = open_ok(p);
	enum al_journal_state st;
	char *res = NULL;
	sqlite3 *db;

	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "a", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "s", "a", "{\"ok\":true}"), 0);
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "b", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(sqlite3_open(p, &db), SQLITE_OK);
	AL_ASSERT_INT_EQ(sqlite3_exec(db,
				      "UPDATE calls SET result_json = '{\"ok\":tru3}' WHERE "
				      "tool_use_id = 'a';"
				      "PRAGMA ignore_check_constraints = ON;"
				      "UPDATE calls SET state = 7 WHERE tool_use_id = 'b';",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);

	AL_ASSERT_INT_EQ(al_journal_get(j, "s", "a", &st, &res), -EBADMSG);
	AL_ASSERT_NULL(res);
	AL_ASSERT_INT_EQ(st, AL_JOURNAL_NONE);
	/* Even without asking for the result: a DONE we cannot trust is not reported DONE. */
	AL_ASSERT_INT_EQ(al_journal_get(j, "s", "a", &st, NULL), -EBADMSG);
	AL_ASSERT_INT_EQ(al_journal_get(j, "s", "b", &st, NULL), -EBADMSG);
	/* A begin on a damaged row reports the damage, never 0 (which would run it again). */
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "b", NULL, NULL, NULL, NULL), -EBADMSG);
	al_journal_close(j);
}

/*
 * Checkpoints run from begin/finish (the auto-checkpoint is replaced so the
 * loop thread's answered never pays for one): the WAL stays bounded under a
 * long run of calls. Without checkpoints this run leaves a WAL of over 100 MB.
 */
AL_TEST(journal_wal_stays_bounded)
{
	const char *p = jpath("j.db");
	struct al_journal *j = open_ok(p);
	char id[32], big[4000], wal[4200];
	struct stat sb;

	memset(big, 'r', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "toolu_%d", i);
		AL_ASSERT_INT_EQ(al_journal_begin(j, "s", id, NULL, NULL, NULL, NULL), 0);
		AL_ASSERT_INT_EQ(al_journal_finish(j, "s", id, big), 0);
		AL_ASSERT_INT_EQ(al_journal_answered(j, "s", id), 0);
	}
	snprintf(wal, sizeof(wal), "%s-wal", p);
	AL_ASSERT_INT_EQ(stat(wal, &sb), 0);
	if (sb.st_size > 8 * 1024 * 1024)
		al_test_fail(__FILE__, __LINE__, "WAL grew to %lld bytes", (long long)sb.st_size);
	al_journal_close(j);
}

AL_TEST(journal_survives_our_allocation_failures)
{
	const char *p = jpath("j.db");
	struct al_journal *j = open_ok(p);
	enum al_journal_state st;
	char err[256], *res = NULL;
	int rc;

	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "t", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_finish(j, "s", "t", "{\"big\":1}"), 0);
	al_alloc_fail_after(0);
	rc = al_journal_get(j, "s", "t", &st, &res);
	al_alloc_fail_after(-1);
	AL_ASSERT_INT_EQ(rc, -ENOMEM);
	AL_ASSERT_NULL(res);
	AL_ASSERT_INT_EQ(st, AL_JOURNAL_NONE);
	al_journal_close(j);

	al_alloc_fail_after(0);
	j = (struct al_journal *)1;
	rc = al_journal_open(p, &j, err, sizeof(err));
	al_alloc_fail_after(-1);
	AL_ASSERT_INT_EQ(rc, -ENOMEM);
	AL_ASSERT_NULL(j);
}

/*
 * SQLite allocates from its own heap, which core/alloc.h cannot fail; its
 * hard heap limit can. Under a limit barely above what an open journal
 * holds, every call either works or fails cleanly with a negative errno,
 * and once the limit is lifted the journal is consistent: a call that
 * reported success is recorded, one that failed is not half-recorded.
 */
AL_TEST(journal_survives_sqlite_heap_exhaustion)
{
	struct al_journal *j = open_ok(jpath("j.db"));
	char tu[32], big[8192];
	int ok_begin[64] = {0}, ok_finish[64] = {0};
	sqlite3_int64 base;

	memset(big, 'r', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	base = sqlite3_memory_used();
	for (int i = 0; i < 64; i++) {
		int rc;

		/* From no headroom at all to plenty, in steps. */
		sqlite3_hard_heap_limit64(base + (sqlite3_int64)i * 2048);
		snprintf(tu, sizeof(tu), "t%d", i);
		rc = al_journal_begin(j, "s", tu, "w", "bash", "h", NULL);
		AL_ASSERT(rc == 0 || rc == -ENOMEM || rc == -EIO);
		ok_begin[i] = rc == 0;
		if (rc == 0) {
			rc = al_journal_finish(j, "s", tu, big);
			AL_ASSERT(rc == 0 || rc == -ENOMEM || rc == -EIO);
			ok_finish[i] = rc == 0;
		}
		/* answered switches synchronous and back; either may fail here. */
		snprintf(tu, sizeof(tu), "h%d", i);
		rc = al_journal_answered(j, "s", tu);
		AL_ASSERT(rc == 0 || rc == -ENOMEM || rc == -EIO);
	}
	sqlite3_hard_heap_limit64(0);
	/* Whatever failed above, the next begin runs under FULL again. */
	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "after", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_synchronous(j), 2);
	for (int i = 0; i < 64; i++) {
		enum al_journal_state st;
		char *res = NULL;

		snprintf(tu, sizeof(tu), "t%d", i);
		AL_ASSERT_INT_EQ(al_journal_get(j, "s", tu, &st, &res), 0);
		if (ok_finish[i]) {
			AL_ASSERT_INT_EQ(st, AL_JOURNAL_DONE);
			AL_ASSERT_STR_EQ(res, big);
		} else if (ok_begin[i]) {
			AL_ASSERT_INT_EQ(st, AL_JOURNAL_STARTED);
		} else {
			AL_ASSERT_INT_EQ(st, AL_JOURNAL_NONE);
		}
		al_free(res);
	}
	AL_ASSERT(ok_finish[63]); /* the limit was lifted far enough to work */
	al_journal_close(j);
}

/*
 * answered under a fine ramp of heap limits: some runs fail to switch to
 * NORMAL, some fail the write, some fail to switch back to FULL. However it
 * failed, the next begin is made under FULL and the state is consistent.
 */
AL_TEST(journal_answered_under_heap_limits_keeps_begin_durable)
{
	struct al_journal *j = open_ok(jpath("j.db"));
	sqlite3_int64 base;
	char tu[32];

	AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "warm", NULL, NULL, NULL, NULL), 0);
	AL_ASSERT_INT_EQ(al_journal_answered(j, "s", "warm"), 0);
	base = sqlite3_memory_used();
	for (int i = 0; i < 400; i++) {
		int rc;

		snprintf(tu, sizeof(tu), "a%d", i);
		sqlite3_hard_heap_limit64(base + (sqlite3_int64)i * 16);
		rc = al_journal_answered(j, "s", tu);
		sqlite3_hard_heap_limit64(0);
		AL_ASSERT(rc == 0 || rc == -ENOMEM || rc == -EIO);
		if (rc == 0)
			AL_ASSERT_INT_EQ(al_journal_synchronous(j), 2);
		snprintf(tu, sizeof(tu), "b%d", i);
		AL_ASSERT_INT_EQ(al_journal_begin(j, "s", tu, NULL, NULL, NULL, NULL), 0);
		AL_ASSERT_INT_EQ(al_journal_synchronous(j), 2);
	}
	al_journal_close(j);
}

/* Open under SQLite heap limits from tiny to ample: a clean error or a working journal. */
AL_TEST(journal_open_survives_sqlite_heap_exhaustion)
{
	const char *p = jpath("j.db");
	struct al_journal *j = open_ok(p);
	sqlite3_int64 base;
	int opened = 0;

	al_journal_close(j);
	base = sqlite3_memory_used();
	for (int i = 0; i < 80; i++) {
		char err[512];
		int rc;

		sqlite3_hard_heap_limit64(base + 1 + (sqlite3_int64)i * 4096);
		rc = al_journal_open(p, &j, err, sizeof(err));
		sqlite3_hard_heap_limit64(0);
		if (rc == 0) {
			opened++;
			AL_ASSERT_INT_EQ(al_journal_begin(j, "s", "t", NULL, NULL, NULL, NULL),
					 opened == 1 ? 0 : -EEXIST);
			al_journal_close(j);
		} else {
			AL_ASSERT_NULL(j);
			AL_ASSERT(err[0] != '\0');
			AL_ASSERT(rc == -ENOMEM || rc == -EIO);
		}
	}
	AL_ASSERT(opened > 0);
}
