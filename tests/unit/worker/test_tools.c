/*
 * test_tools.c - the worker's six tools in real sandboxes (native backend):
 * results as the SDK's agent toolset words them, the workspace and its
 * ownership, confinement, cancel, the environment, and the audit trail.
 */
#include "unit/unit.h"

#include "audit/log.h"
#include "core/alloc.h"
#include "audit/verify.h"
#include "sandbox/sandbox.h"
#include "unit/sandbox/procs.h"
#include "worker/tools.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static struct al_worker_config cfg;
static char workdir[600];

static const struct al_worker_config *test_cfg(void)
{
	memset(&cfg, 0, sizeof(cfg));
	/* The sandbox's uid (65534 under root) must pass through to the workspace. */
	chmod(al_test_tmpdir(), 0755);
	snprintf(workdir, sizeof(workdir), "%s/work", al_test_tmpdir());
	cfg.workdir = workdir;
	cfg.timeout_ms = 10000;
	return &cfg;
}

static struct al_tool_session *open_session(const char *id, al_audit_log *audit)
{
	struct al_tool_session *ts = NULL;
	char err[512] = "";

	if (al_tool_session_open(&cfg, id, audit, &ts, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "open %s: %s", id, err);
	return ts;
}

/* Runs name(input JSON) and returns its status; *r holds the result. */
static int call(struct al_tool_session *ts, const char *name, const char *input,
		struct al_tool_result *r)
{
	json_error_t je;
	json_t *in = json_loads(input, 0, &je);
	int rc;

	if (in == NULL)
		al_test_fail(__FILE__, __LINE__, "bad test input %s: %s", input, je.text);
	rc = al_tool_session_run(ts, "work_1", "toolu_1", name, in, r);
	json_decref(in);
	return rc;
}

static const char *text(const struct al_tool_result *r)
{
	return json_string_value(json_object_get(json_array_get(r->content, 0), "text"));
}

/* Runs a call that must succeed (status 0) with is_error == want_error and text == want. */
#define EXPECT(ts, name, input, want_error, want)                                                  \
	do {                                                                                       \
		struct al_tool_result r_;                                                          \
		AL_ASSERT_INT_EQ(call((ts), (name), (input), &r_), 0);                             \
		AL_ASSERT_STR_EQ(text(&r_), (want));                                               \
		AL_ASSERT_INT_EQ(r_.is_error, (want_error));                                       \
		al_tool_result_clear(&r_);                                                         \
	} while (0)

AL_TEST(tools_session_ids_and_workspace)
{
	static const char *const bad[] = {"", "..", "a/b", "a b", "x\n", "é", NULL};
	char err[256], big[200], ws[700];
	struct al_tool_session *ts = NULL;
	struct stat st;

	test_cfg();
	for (size_t i = 0; bad[i]; i++)
		AL_ASSERT_INT_EQ(al_tool_session_open(&cfg, bad[i], NULL, &ts, err, sizeof(err)),
				 -EINVAL);
	memset(big, 'a', 129);
	big[129] = '\0';
	AL_ASSERT_INT_EQ(al_tool_session_open(&cfg, big, NULL, &ts, err, sizeof(err)), -EINVAL);
	AL_ASSERT_NULL(ts);
	big[128] = '\0';
	ts = open_session(big, NULL);
	al_tool_session_close(ts);
	ts = open_session("sesn_Ok-1", NULL);
	snprintf(ws, sizeof(ws), "%s/sesn_Ok-1", workdir);
	AL_ASSERT_INT_EQ(lstat(ws, &st), 0);
	AL_ASSERT(S_ISDIR(st.st_mode));
	AL_ASSERT_INT_EQ(st.st_mode & 07777, 0700);
	AL_ASSERT_INT_EQ(st.st_uid, geteuid() == 0 ? 65534 : geteuid());
	al_tool_session_close(ts);
	/* A symbolic link planted at a session's name is refused, not followed. */
	snprintf(ws, sizeof(ws), "%s/sesn_link", workdir);
	AL_ASSERT_INT_EQ(symlink("/tmp", ws), 0);
	{
		int rc = al_tool_session_open(&cfg, "sesn_link", NULL, &ts, err, sizeof(err));
		AL_ASSERT(rc == -ENOTDIR || rc == -ELOOP);
		AL_ASSERT_NULL(ts);
	}
	AL_ASSERT_INT_EQ(al_tool_is_owned("bash") + al_tool_is_owned("grep"), 2);
	AL_ASSERT_INT_EQ(al_tool_is_owned("web_fetch"), 0);
}

AL_TEST(tools_bash_state_exit_status_and_hashes)
{
	struct al_tool_session *ts;
	struct al_tool_result r;
	char want[65];

	test_cfg();
	ts = open_session("sesn_bash", NULL);
	EXPECT(ts, "bash", "{\"command\":\"mkdir -p sub && cd sub && export AL_X=41\"}", 0,
	       "(no output)");
	EXPECT(ts, "bash", "{\"command\":\"echo $((AL_X+1)) $(basename $PWD)\"}", 0, "42 sub");
	/* Trailing newlines go, ANSI colour goes, stderr is merged. */
	EXPECT(ts, "bash",
	       "{\"command\":\"printf '\\\\033[31mred\\\\033[0m\\\\n\\\\n'; echo e >&2\"}", 0,
	       "red\n\ne");
	EXPECT(ts, "bash", "{\"command\":\"echo oops; exit_with() { return $1; }; exit_with 3\"}",
	       1, "oops");
	AL_ASSERT_INT_EQ(call(ts, "bash", "{\"command\":\"false\"}", &r), 0);
	AL_ASSERT_STR_EQ(text(&r), "exit 1");
	AL_ASSERT_INT_EQ(r.is_error, 1);
	AL_ASSERT_INT_EQ(r.exit_code, 1);
	al_tool_result_clear(&r);
	AL_ASSERT_INT_EQ(call(ts, "bash", "{\"timeout_ms\":5000,\"command\":\"echo hi\"}", &r), 0);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_INT_GE(r.duration_us, 1);
	{
		json_t *in = json_loads("{\"command\":\"echo hi\",\"timeout_ms\":5000}", 0, NULL);
		AL_ASSERT_INT_EQ(al_tool_json_sha256(in, want), 0);
		AL_ASSERT_STR_EQ(r.input_sha256, want); /* key order does not matter */
		json_decref(in);
		AL_ASSERT_INT_EQ(al_tool_json_sha256(r.content, want), 0);
		AL_ASSERT_STR_EQ(r.result_sha256, want);
		AL_ASSERT_INT_EQ(strlen(want), 64);
	}
	al_tool_result_clear(&r);
	EXPECT(ts, "bash", "{}", 1, "bash: command is required");
	EXPECT(ts, "bash", "{\"command\":7}", 1, "bash: command must be a string");
	EXPECT(ts, "bash", "{\"command\":\"true\",\"timeout_ms\":0}", 1,
	       "bash: timeout_ms must be a positive integer");
	EXPECT(ts, "nope", "{}", 1, "unknown tool: nope");
	EXPECT(ts, "bash", "[]", 1, "bash: input must be a JSON object");
	AL_ASSERT_INT_EQ(al_tool_session_run(ts, "w", "t", "bash", NULL, &r), 0);
	AL_ASSERT_STR_EQ(text(&r), "bash: command is required");
	al_tool_result_clear(&r);
	/* Invalid UTF-8 output still makes a JSON string. */
	EXPECT(ts, "bash", "{\"command\":\"printf 'a\\\\377b'\"}", 0,
	       "a\xef\xbf\xbd"
	       "b");
	al_tool_session_close(ts);
}

AL_TEST(tools_bash_timeout_cap_output_cap_and_restart)
{
	struct al_tool_session *ts;
	struct al_tool_result r;
	const char *t;

	test_cfg();
	cfg.timeout_ms = 700; /* the operator's cap beats a call's larger timeout */
	ts = open_session("sesn_limits", NULL);
	AL_ASSERT_INT_EQ(call(ts, "bash", "{\"command\":\"sleep 20\",\"timeout_ms\":60000}", &r),
			 0);
	AL_ASSERT_STR_EQ(text(&r), "bash: bash command timed out after 700ms");
	AL_ASSERT_INT_EQ(r.is_error, 1);
	AL_ASSERT_INT_EQ(r.exit_code, 124);
	al_tool_result_clear(&r);
	EXPECT(ts, "bash", "{\"command\":\"mkdir -p t && cd t && sleep 20\",\"timeout_ms\":200}", 1,
	       "bash: bash command timed out after 200ms");
	/* As the SDK: after a timeout, a fresh shell in the workspace. */
	EXPECT(ts, "bash", "{\"command\":\"basename $PWD\"}", 0, "sesn_limits");
	/* 300 KB of output: the last 100 KiB are kept, marked as the SDK marks them. */
	AL_ASSERT_INT_EQ(call(ts, "bash",
			      "{\"command\":\"head -c 300000 /dev/zero | tr '\\\\0' a; echo; "
			      "echo END\"}",
			      &r),
			 0);
	t = text(&r);
	AL_ASSERT_INT_EQ(r.is_error, 0);
	AL_ASSERT(strncmp(t, "[output truncated]\n", 19) == 0);
	AL_ASSERT_INT_EQ(strlen(t), 19 + 102400 - 1); /* the final newline is dropped */
	AL_ASSERT_STR_EQ(t + strlen(t) - 5, "a\nEND");
	al_tool_result_clear(&r);
	/* restart: a fresh shell in the workspace, variables gone. */
	EXPECT(ts, "bash", "{\"command\":\"export AL_Y=2; mkdir -p d; cd d\"}", 0, "(no output)");
	EXPECT(ts, "bash", "{\"restart\":true}", 0, "bash session restarted");
	EXPECT(ts, "bash", "{\"command\":\"echo ${AL_Y:-unset} $(basename $PWD)\"}", 0,
	       "unset sesn_limits");
	EXPECT(ts, "bash", "{\"command\":\"export AL_Z=1\"}", 0, "(no output)");
	EXPECT(ts, "bash", "{\"restart\":true,\"command\":\"echo ${AL_Z:-gone}\"}", 0, "gone");
	al_tool_session_close(ts);
}

AL_TEST(tools_write_then_bash_changes_it)
{
	struct al_tool_session *ts;
	char p[800];
	struct stat st;

	test_cfg();
	ts = open_session("sesn_own", NULL);
	EXPECT(ts, "write", "{\"file_path\":\"d/e/f.txt\",\"content\":\"héllo\\n\"}", 0,
	       "wrote 7 bytes to d/e/f.txt");
	snprintf(p, sizeof(p), "%s/sesn_own/d/e/f.txt", workdir);
	AL_ASSERT_INT_EQ(stat(p, &st), 0);
	AL_ASSERT_INT_EQ(st.st_uid, geteuid() == 0 ? 65534 : geteuid());
	/* The sandbox's uid can append to it, replace it and add beside it. */
	EXPECT(ts, "bash",
	       "{\"command\":\"echo more >> d/e/f.txt && touch d/e/new && sed -i s/more/MORE/ "
	       "d/e/f.txt && cat d/e/f.txt\"}",
	       0, "héllo\nMORE");
	EXPECT(ts, "read", "{\"file_path\":\"d/e/f.txt\"}", 0, "héllo\nMORE\n");
	al_tool_session_close(ts);
}

AL_TEST(tools_read_write_edit)
{
	struct al_tool_session *ts;
	char abs_in[900];

	test_cfg();
	ts = open_session("sesn_files", NULL);
	EXPECT(ts, "write", "{\"file_path\":\"a.txt\",\"content\":\"one\\ntwo\\nthree\\n\"}", 0,
	       "wrote 14 bytes to a.txt");
	EXPECT(ts, "read", "{\"file_path\":\"a.txt\"}", 0, "one\ntwo\nthree\n");
	EXPECT(ts, "read", "{\"file_path\":\"a.txt\",\"view_range\":[2,3]}", 0, "two\nthree");
	EXPECT(ts, "read", "{\"file_path\":\"a.txt\",\"view_range\":[2,-1]}", 0, "two\nthree\n");
	EXPECT(ts, "read", "{\"file_path\":\"a.txt\",\"view_range\":[2]}", 1,
	       "read: view_range must be [start_line, end_line]");
	snprintf(abs_in, sizeof(abs_in), "{\"file_path\":\"%s/sesn_files/a.txt\"}", workdir);
	EXPECT(ts, "read", abs_in, 0, "one\ntwo\nthree\n");
	EXPECT(ts, "bash", "{\"command\":\"seq 1 60000 > big.txt; wc -c < big.txt\"}", 0, "348894");
	EXPECT(ts, "read", "{\"file_path\":\"big.txt\"}", 1,
	       "read: big.txt is 348894 bytes, exceeds 262144-byte limit. Use the view_range "
	       "parameter to read specific line ranges, e.g. view_range: [1, 500].");
	EXPECT(ts, "read", "{\"file_path\":\"big.txt\",\"view_range\":[59999,0]}", 0,
	       "59999\n60000\n");
	EXPECT(ts, "read", "{\"file_path\":\"nope.txt\"}", 1,
	       "read: nope.txt: no such file or directory");
	EXPECT(ts, "read", "{}", 1, "read: file_path is required");
	EXPECT(ts, "write", "{\"file_path\":\"\",\"content\":\"x\"}", 1,
	       "write: file_path is required");
	EXPECT(ts, "write", "{\"file_path\":\"e.txt\"}", 0, "wrote 0 bytes to e.txt");
	EXPECT(ts, "write", "{\"file_path\":\"e.txt\",\"content\":5}", 1,
	       "write: content must be a string");
	EXPECT(ts, "edit", "{\"file_path\":\"a.txt\",\"old_string\":\"two\",\"new_string\":\"2\"}",
	       0, "edited a.txt (1 replacement(s))");
	EXPECT(ts, "edit", "{\"file_path\":\"a.txt\",\"old_string\":\"two\",\"new_string\":\"2\"}",
	       1, "edit: old_string not found in a.txt");
	EXPECT(ts, "write", "{\"file_path\":\"b.txt\",\"content\":\"x x x\"}", 0,
	       "wrote 5 bytes to b.txt");
	EXPECT(ts, "edit", "{\"file_path\":\"b.txt\",\"old_string\":\"x\",\"new_string\":\"y\"}", 1,
	       "edit: old_string appears 3 times in b.txt (must be unique)");
	EXPECT(ts, "edit",
	       "{\"file_path\":\"b.txt\",\"old_string\":\"x\",\"new_string\":\"$&\","
	       "\"replace_all\":true}",
	       0, "edited b.txt (3 replacement(s))");
	EXPECT(ts, "read", "{\"file_path\":\"b.txt\"}", 0, "$& $& $&");
	EXPECT(ts, "edit", "{\"file_path\":\"b.txt\",\"new_string\":\"y\"}", 1,
	       "edit: old_string is required");
	EXPECT(ts, "edit", "{\"file_path\":\"zz.txt\",\"old_string\":\"a\",\"new_string\":\"b\"}",
	       1, "edit: zz.txt: no such file or directory");
	EXPECT(ts, "read", "{\"file_path\":\"a.txt\"}", 0, "one\n2\nthree\n");
	al_tool_session_close(ts);
}

AL_TEST(tools_glob_and_grep)
{
	struct al_tool_session *ts;
	char want[2048];

	test_cfg();
	ts = open_session("sesn_search", NULL);
	EXPECT(ts, "write", "{\"file_path\":\"src/m.c\",\"content\":\"int main;\\nfoo\\n\"}", 0,
	       "wrote 14 bytes to src/m.c");
	snprintf(want, sizeof(want), "%s/sesn_search/src/m.c", workdir);
	EXPECT(ts, "glob", "{\"pattern\":\"**/*.c\"}", 0, want);
	EXPECT(ts, "glob", "{\"pattern\":\"*.c\",\"path\":\"src\"}", 0, want);
	EXPECT(ts, "glob", "{\"pattern\":\"*.rs\"}", 0, "no matches");
	EXPECT(ts, "glob", "{\"pattern\":\"sr?\"}", 0, "no matches"); /* files only */
	EXPECT(ts, "glob", "{\"pattern\":\"/etc/*\"}", 1,
	       "glob: absolute pattern not permitted; pass a relative pattern (and optionally "
	       "path)");
	EXPECT(ts, "glob", "{\"pattern\":\"{a,..}/x\"}", 1,
	       "glob: \"..\" is not permitted in the pattern");
	EXPECT(ts, "glob", "{}", 1, "glob: pattern is required");
	snprintf(want, sizeof(want), "%s/sesn_search/src/m.c:2:foo", workdir);
	EXPECT(ts, "grep", "{\"pattern\":\"^fo+$\"}", 0, want);
	EXPECT(ts, "grep", "{\"pattern\":\"fo+\",\"path\":\"src/m.c\"}", 0, want);
	EXPECT(ts, "grep", "{\"pattern\":\"absent\"}", 0, "no matches");
	EXPECT(ts, "grep", "{\"pattern\":\"\"}", 1, "grep: pattern is required");
	al_tool_session_close(ts);
}

AL_TEST(tools_paths_outside_the_workspace_refused)
{
	struct al_tool_session *ts;
	char p[800];

	test_cfg();
	ts = open_session("sesn_escape", NULL);
	EXPECT(ts, "read", "{\"file_path\":\"/etc/passwd\"}", 1,
	       "path \"/etc/passwd\" is outside the session's working directory");
	EXPECT(ts, "read", "{\"file_path\":\"../../x\"}", 1,
	       "path \"../../x\" is outside the session's working directory");
	EXPECT(ts, "write", "{\"file_path\":\"../evil.txt\",\"content\":\"x\"}", 1,
	       "path \"../evil.txt\" is outside the session's working directory");
	snprintf(p, sizeof(p), "%s/evil.txt", workdir);
	AL_ASSERT_INT_EQ(access(p, F_OK), -1);
	/* A link planted by bash that leads out is not followed either. */
	EXPECT(ts, "bash", "{\"command\":\"ln -s / out\"}", 0, "(no output)");
	EXPECT(ts, "read", "{\"file_path\":\"out/etc/passwd\"}", 1,
	       "path \"out/etc/passwd\" is outside the session's working directory");
	EXPECT(ts, "grep", "{\"pattern\":\"root\",\"path\":\"/etc\"}", 1,
	       "path \"/etc\" is outside the session's working directory");
	al_tool_session_close(ts);
}

AL_TEST(tools_sandbox_env_has_no_anthropic_variables)
{
	struct al_tool_session *ts;
	struct al_tool_result r;
	char want[800];

	setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key", 1);
	setenv("ANTHROPIC_ENVIRONMENT_KEY", "envkey-test", 1);
	setenv("AL_LEAK_CHECK", "host-only", 1);
	test_cfg();
	ts = open_session("sesn_env", NULL);
	AL_ASSERT_INT_EQ(call(ts, "bash", "{\"command\":\"env | sort\"}", &r), 0);
	AL_ASSERT_INT_EQ(r.is_error, 0);
	AL_ASSERT(strstr(text(&r), "ANTHROPIC") == NULL);
	AL_ASSERT(strstr(text(&r), "sk-ant") == NULL);
	AL_ASSERT(strstr(text(&r), "AL_LEAK_CHECK") == NULL); /* nothing is inherited */
	AL_ASSERT(strstr(text(&r), "LANG=C.UTF-8") != NULL);
	AL_ASSERT(strstr(text(&r), "TERM=dumb") != NULL);
	snprintf(want, sizeof(want), "HOME=%s/sesn_env\n", workdir);
	AL_ASSERT(strstr(text(&r), want) != NULL);
	al_tool_result_clear(&r);
	snprintf(want, sizeof(want), "%u", geteuid() == 0 ? 65534u : (unsigned)geteuid());
	EXPECT(ts, "bash", "{\"command\":\"id -u\"}", 0, want);
	al_tool_session_close(ts);
}

struct runner {
	struct al_tool_session *ts;
	const char *input;
	int rc;
	struct al_tool_result r;
};

static void *run_thread(void *p)
{
	struct runner *x = p;
	x->rc = call(x->ts, "bash", x->input, &x->r);
	return NULL;
}

AL_TEST(tools_cancel_from_another_thread_spares_other_sessions)
{
	struct runner a = {0}, b = {0};
	pthread_t ta, tb;
	double t0;

	test_cfg();
	a.ts = open_session("sesn_cancel_a", NULL);
	b.ts = open_session("sesn_cancel_b", NULL);
	a.input = "{\"command\":\"sleep 30\"}";
	b.input = "{\"command\":\"sleep 1; echo b-done\"}";
	t0 = al_sandbox_now_ms();
	AL_ASSERT_INT_EQ(pthread_create(&ta, NULL, run_thread, &a), 0);
	AL_ASSERT_INT_EQ(pthread_create(&tb, NULL, run_thread, &b), 0);
	usleep(500 * 1000);
	al_tool_session_cancel(a.ts);
	pthread_join(ta, NULL);

	AL_ASSERT(al_sandbox_now_ms() - t0 < 5000);
	AL_ASSERT_INT_EQ(a.rc, -ECANCELED);
	AL_ASSERT_INT_EQ(a.r.is_error, 1);
	AL_ASSERT_STR_EQ(text(&a.r), "bash: cancelled");
	al_tool_result_clear(&a.r);
	pthread_join(tb, NULL);
	AL_ASSERT_INT_EQ(b.rc, 0);
	AL_ASSERT_STR_EQ(text(&b.r), "b-done");
	al_tool_result_clear(&b.r);
	/* Later calls on the cancelled session do not run. */
	AL_ASSERT_INT_EQ(call(a.ts, "write", "{\"file_path\":\"x\",\"content\":\"y\"}", &a.r),
			 -ECANCELED);
	AL_ASSERT_STR_EQ(text(&a.r), "write: cancelled");
	al_tool_result_clear(&a.r);
	al_tool_session_close(a.ts);
	al_tool_session_close(b.ts);
}

AL_TEST(tools_audit_records_and_chain)
{
	struct al_audit_verify_result vr;
	struct al_tool_session *ts;
	al_audit_log *log = NULL;
	char path[700], err[512] = "", *buf;
	FILE *f;
	long n;

	test_cfg();
	snprintf(path, sizeof(path), "%s/audit.log", al_test_tmpdir());
	AL_ASSERT_INT_EQ(al_audit_open(path, NULL, &log, err, sizeof(err)), 0);
	ts = open_session("sesn_audit", log);
	EXPECT(ts, "bash", "{\"command\":\"echo CMD-SECRET-7 > out.txt; cat out.txt\"}", 0,
	       "CMD-SECRET-7");
	EXPECT(ts, "write", "{\"file_path\":\"w.txt\",\"content\":\"WRITE-SECRET-9\"}", 0,
	       "wrote 14 bytes to w.txt");
	EXPECT(ts, "edit",
	       "{\"file_path\":\"w.txt\",\"old_string\":\"WRITE\",\"new_string\":\"EDIT\"}", 0,
	       "edited w.txt (1 replacement(s))");
	EXPECT(ts, "read", "{\"file_path\":\"w.txt\"}", 0, "EDIT-SECRET-9");
	al_tool_session_close(ts);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(al_audit_verify_file(path, NULL, NULL, &vr, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(vr.ok, 1);
	f = fopen(path, "r");
	AL_ASSERT_NOT_NULL(f);
	buf = calloc(1, 1 << 20);
	n = (long)fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	AL_ASSERT(n > 0);
	AL_ASSERT(strstr(buf, "\"event\":\"sandbox.launch\"") != NULL);
	AL_ASSERT(strstr(buf, "\"event\":\"tool.start\"") != NULL);
	AL_ASSERT(strstr(buf, "\"event\":\"tool.call\"") != NULL);
	AL_ASSERT(strstr(buf, "\"class_uid\":1007") != NULL); /* process launch/exit */
	AL_ASSERT(strstr(buf, "\"class_uid\":1001") != NULL); /* write, edit */
	AL_ASSERT(strstr(buf, "\"session_id\":\"sesn_audit\"") != NULL ||
		  strstr(buf, "sesn_audit") != NULL);
	AL_ASSERT(strstr(buf, "toolu_1") != NULL && strstr(buf, "work_1") != NULL);
	AL_ASSERT(strstr(buf, "\"exit_status\":0") != NULL);
	/* Content never: not the command, the file written or the output. */
	AL_ASSERT(strstr(buf, "SECRET") == NULL);
	free(buf);
}

/* The syncs made so far, without forcing one. */
static long syncs_unforced(al_audit_log *log)
{
	struct al_audit_stats st;

	al_audit_get_stats(log, &st);
	return st.syncs;
}

/*
 * With explicit syncs (how the worker opens its log), a call's records are
 * durable where tools.h says: bash, write and edit sync once, before the
 * action; read syncs nothing; the records after the action are written but
 * left unsynced for the caller (session.c syncs them once the result is
 * posted), so a sync right after a call still has work to do.
 */

static long syncs_of(al_audit_log *log)
{
	struct al_audit_stats st;

	AL_ASSERT_INT_EQ(al_audit_sync(log), 0);
	al_audit_get_stats(log, &st);
	return st.syncs;
}

AL_TEST(tools_audit_explicit_sync_points)
{
	struct al_audit_opts o = {.sync_every = AL_AUDIT_SYNC_EXPLICIT};
	struct al_tool_session *ts;
	al_audit_log *log = NULL;
	char path[700], err[512] = "";
	long n0;

	test_cfg();
	snprintf(path, sizeof(path), "%s/audit.log", al_test_tmpdir());
	AL_ASSERT_INT_EQ(al_audit_open(path, &o, &log, err, sizeof(err)), 0);
	ts = open_session("sesn_sync", log);
	EXPECT(ts, "bash", "{\"command\":\"true\"}", 0, "(no output)");
	n0 = syncs_of(log); /* the sandbox is created now; its records are synced too */
	/* One sync before the shell runs; the closing records are left to the caller. */
	EXPECT(ts, "bash", "{\"command\":\"echo a\"}", 0, "a");
	AL_ASSERT_INT_EQ(syncs_unforced(log), n0 + 1);
	AL_ASSERT_INT_EQ(syncs_of(log), n0 + 2); /* so the tail was still unsynced */
	EXPECT(ts, "write", "{\"file_path\":\"s.txt\",\"content\":\"x\"}", 0,
	       "wrote 1 bytes to s.txt");
	AL_ASSERT_INT_EQ(syncs_unforced(log), n0 + 3);
	/* A read-only tool syncs nothing; the write's tail rides on the next sync. */
	EXPECT(ts, "read", "{\"file_path\":\"s.txt\"}", 0, "x");
	AL_ASSERT_INT_EQ(syncs_unforced(log), n0 + 3);
	AL_ASSERT_INT_EQ(syncs_of(log), n0 + 4);
	EXPECT(ts, "write", "{\"file_path\":\"t.txt\",\"content\":\"y\"}", 0,
	       "wrote 1 bytes to t.txt");
	AL_ASSERT_INT_EQ(syncs_unforced(log), n0 + 5);
	al_tool_session_close(ts);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
}

/* A log that cannot take the call's first record: the call does not run. */
AL_TEST(tools_audit_failure_means_the_call_does_not_run)
{
	struct al_audit_verify_result vr;
	struct al_tool_session *ts;
	struct al_tool_result r;
	al_audit_log *log = NULL;
	struct rlimit old, cap;
	char path[700], p[800], err[512] = "";
	struct stat st;

	test_cfg();
	snprintf(path, sizeof(path), "%s/audit.log", al_test_tmpdir());
	AL_ASSERT_INT_EQ(al_audit_open(path, NULL, &log, err, sizeof(err)), 0);
	ts = open_session("sesn_audit_down", log);
	/* The file size limit stops the log's next write (EFBIG, rolled back). */
	AL_ASSERT_INT_EQ(stat(path, &st), 0);
	AL_ASSERT_INT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
	cap = (struct rlimit){(rlim_t)st.st_size, old.rlim_max};
	signal(SIGXFSZ, SIG_IGN);
	AL_ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &cap), 0);
	AL_ASSERT_INT_EQ(call(ts, "write", "{\"file_path\":\"w.txt\",\"content\":\"x\"}", &r), 0);
	AL_ASSERT_STR_EQ(text(&r), "audit log unavailable");
	AL_ASSERT_INT_EQ(r.is_error, 1);
	AL_ASSERT_INT_EQ(r.audit_failed, 1);
	al_tool_result_clear(&r);
	AL_ASSERT_INT_EQ(call(ts, "bash", "{\"command\":\"touch b.txt\"}", &r), 0);
	AL_ASSERT_STR_EQ(text(&r), "audit log unavailable");
	al_tool_result_clear(&r);
	AL_ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	snprintf(p, sizeof(p), "%s/sesn_audit_down/w.txt", workdir);
	AL_ASSERT_INT_EQ(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/sesn_audit_down/b.txt", workdir);
	AL_ASSERT_INT_EQ(access(p, F_OK), -1);
	/* The log recovers and stays a valid chain. */
	EXPECT(ts, "write", "{\"file_path\":\"w.txt\",\"content\":\"x\"}", 0,
	       "wrote 1 bytes to w.txt");
	al_tool_session_close(ts);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(al_audit_verify_file(path, NULL, NULL, &vr, err, sizeof(err)), 0);
}

/* Egress through the sandbox's proxy is decided by the allowlist and audited. */
AL_TEST(tools_egress_denial_is_audited)
{
	static char *hosts[] = {"allowed.example", NULL};
	struct al_tool_session *ts;
	struct al_tool_result r;
	al_audit_log *log = NULL;
	char path[700], err[512] = "", *buf;
	FILE *f;

	test_cfg();
	cfg.allow_hosts = hosts;
	snprintf(path, sizeof(path), "%s/audit.log", al_test_tmpdir());
	AL_ASSERT_INT_EQ(al_audit_open(path, NULL, &log, err, sizeof(err)), 0);
	ts = open_session("sesn_egress", log);
	AL_ASSERT_INT_EQ(call(ts, "bash",
			      "{\"command\":\"exec 3<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT "
			      "denied.example:443 HTTP/1.1\\\\r\\\\nHost: "
			      "denied.example:443\\\\r\\\\n\\\\r\\\\n' >&3; head -c 12 <&3\"}",
			      &r),
			 0);
	AL_ASSERT(strncmp(text(&r), "HTTP/1.1 403", 12) == 0);
	al_tool_result_clear(&r);
	al_tool_session_close(ts);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	f = fopen(path, "r");
	AL_ASSERT_NOT_NULL(f);
	buf = calloc(1, 1 << 20);
	AL_ASSERT(fread(buf, 1, (1 << 20) - 1, f) > 0);
	fclose(f);
	AL_ASSERT(strstr(buf, "\"class_uid\":4001") != NULL);
	AL_ASSERT(strstr(buf, "denied.example") != NULL);
	free(buf);
}

/* A later work item of the same session continues in the same workspace. */
AL_TEST(tools_workspace_is_reused_by_the_next_open)
{
	struct al_tool_session *ts;

	test_cfg();
	ts = open_session("sesn_again", NULL);
	EXPECT(ts, "bash", "{\"command\":\"echo kept > k.txt\"}", 0, "(no output)");
	al_tool_session_close(ts);
	ts = open_session("sesn_again", NULL);
	EXPECT(ts, "read", "{\"file_path\":\"k.txt\"}", 0, "kept\n");
	EXPECT(ts, "bash", "{\"command\":\"cat k.txt\"}", 0, "kept");
	al_tool_session_close(ts);
}

/* The same tools on the bwrap backend, when bubblewrap is installed. */
AL_TEST(tools_on_the_bwrap_backend)
{
	struct al_tool_session *ts;

	if (access("/usr/bin/bwrap", X_OK) != 0)
		return;
	test_cfg();
	cfg.backend = &al_sandbox_bwrap_ops;
	ts = open_session("sesn_bwrap", NULL);
	EXPECT(ts, "write", "{\"file_path\":\"d/f.txt\",\"content\":\"a\\n\"}", 0,
	       "wrote 2 bytes to d/f.txt");
	EXPECT(ts, "bash", "{\"command\":\"cd d && echo b >> f.txt && cat f.txt\"}", 0, "a\nb");
	EXPECT(ts, "bash", "{\"command\":\"basename $PWD; env | grep -c ANTHROPIC\"}", 1, "d\n0");
	al_tool_session_close(ts);
}

/*
 * A timed-out command whose runner never answers the kill (SIGSTOPped here):
 * the call ends with an error within the grace period instead of blocking
 * the worker thread, nothing of the old sandbox is left, and the next call
 * runs in a new sandbox on the same workspace.
 */
AL_TEST(tools_bash_after_a_wedged_kill_gets_a_new_sandbox)
{
	struct runner a = {0};
	pthread_t t;
	pid_t runner = -1;
	double t0;

	alarm(60);
	test_cfg();
	cfg.timeout_ms = 800;
	a.ts = open_session("sesn_wedged", NULL);
	EXPECT(a.ts, "bash", "{\"command\":\"echo kept > f\"}", 0, "(no output)");
	a.input = "{\"command\":\"sleep 1000.2468\"}";
	t0 = al_sandbox_now_ms();
	AL_ASSERT_INT_EQ(pthread_create(&t, NULL, run_thread, &a), 0);
	for (int i = 0; i < 200 && runner < 0; i++) {
		usleep(10000);
		runner = find_runner("1000.2468");
	}
	AL_ASSERT(runner > 0);
	AL_ASSERT_INT_EQ(kill(runner, SIGSTOP), 0);
	pthread_join(t, NULL);
	AL_ASSERT(al_sandbox_now_ms() - t0 < 800 + AL_SANDBOX_KILL_GRACE_MS + 3000);
	AL_ASSERT_INT_EQ(a.rc, 0);
	AL_ASSERT_INT_EQ(a.r.is_error, 1);
	AL_ASSERT(strstr(text(&a.r), "destroyed") != NULL);
	al_tool_result_clear(&a.r);
	for (int i = 0; i < 300 && find_cmdline("1000.2468") > 0; i++)
		usleep(10000);
	AL_ASSERT_INT_EQ(find_cmdline("1000.2468"), -1);
	EXPECT(a.ts, "bash", "{\"command\":\"cat f\"}", 0, "kept");
	al_tool_session_close(a.ts);
	alarm(0);
}

/*
 * Every allocation of a file tool's call fails in turn: the call reports
 * -ENOMEM (with an error result when one could be made) or succeeds, never
 * crashes, and leaks nothing (checked under ASan). Bash is left out: it
 * starts a sandbox per attempt.
 */
AL_TEST(tools_file_calls_survive_each_allocation_failure)
{
	static const char *const calls[][2] = {
	    {"write", "{\"file_path\":\"d/a.txt\",\"content\":\"one\\ntwo\\n\"}"},
	    {"read", "{\"file_path\":\"d/a.txt\",\"view_range\":[2,2]}"},
	    {"edit", "{\"file_path\":\"d/a.txt\",\"old_string\":\"one\",\"new_string\":\"1\"}"},
	    {"glob", "{\"pattern\":\"**/*.txt\"}"},
	    {"grep", "{\"pattern\":\"t.o\",\"path\":\"d\"}"},
	    {"read", "{\"file_path\":\"missing\"}"},
	    {"write", "\"not an object\""},
	};
	struct al_tool_session *ts;

	test_cfg();
	ts = open_session("sesn_oom", NULL);
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		json_t *in = json_loads(calls[i][1], JSON_DECODE_ANY, NULL);
		int done = 0;

		AL_ASSERT_NOT_NULL(in);
		for (long n = 0; n < 400 && !done; n++) {
			struct al_tool_result r;
			int rc;

			al_alloc_fail_after(n);
			rc = al_tool_session_run(ts, "work_1", "toolu_1", calls[i][0], in, &r);
			al_alloc_fail_after(-1);
			AL_ASSERT(rc == 0 || rc == -ENOMEM);
			if (rc == 0) {
				AL_ASSERT_NOT_NULL(text(&r));
				AL_ASSERT_INT_EQ((int)strlen(r.result_sha256), 64);
				done = 1;
			}
			al_tool_result_clear(&r);
		}
		AL_ASSERT_INT_EQ(done, 1);
		json_decref(in);
	}
	/* The edit went through once: the file says so. */
	EXPECT(ts, "read", "{\"file_path\":\"d/a.txt\"}", 0, "1\ntwo\n");
	al_tool_session_close(ts);
}

/* al_tool_session_open_dir (airlock sandbox mcp): the operator's directory, as it is. */
AL_TEST(tools_open_dir_uses_the_directory_as_it_is)
{
	struct al_tool_session *ts = NULL;
	char err[256], dir[700], link[700], path[PATH_MAX], want[PATH_MAX + 8];
	struct stat st;
	FILE *f;

	test_cfg();
	cfg.workdir = NULL; /* not used */
	snprintf(dir, sizeof(dir), "%s/operator-ws", al_test_tmpdir());
	AL_ASSERT_INT_EQ(mkdir(dir, 0755), 0);
	if (geteuid() == 0)
		AL_ASSERT_INT_EQ(chown(dir, 65534, 65534), 0);
	AL_ASSERT_INT_EQ(al_tool_session_open_dir(&cfg, "mcp_1", dir, NULL, &ts, err, sizeof(err)),
			 0);
	/* Neither chmodded to 0700 nor chowned, and no <dir>/<session id> beneath. */
	AL_ASSERT_INT_EQ(stat(dir, &st), 0);
	AL_ASSERT_INT_EQ(st.st_mode & 07777, 0755);
	snprintf(path, sizeof(path), "%s/mcp_1", dir);
	AL_ASSERT_INT_EQ(access(path, F_OK), -1);
	EXPECT(ts, "write", "{\"file_path\": \"a.txt\", \"content\": \"x\"}", 0,
	       "wrote 1 bytes to a.txt");
	snprintf(path, sizeof(path), "%s/a.txt", dir);
	AL_ASSERT_NOT_NULL(f = fopen(path, "r"));
	fclose(f);
	AL_ASSERT_NOT_NULL(realpath(dir, path));
	snprintf(want, sizeof(want), "%s\nx", path);
	EXPECT(ts, "bash", "{\"command\": \"pwd; cat a.txt\"}", 0, want);
	al_tool_session_close(ts);
	ts = NULL;
	/* A symbolic link as the directory's last component is refused; so is a missing one. */
	snprintf(link, sizeof(link), "%s/ws-link", al_test_tmpdir());
	AL_ASSERT_INT_EQ(symlink(dir, link), 0);
	{
		int rc = al_tool_session_open_dir(&cfg, "mcp_1", link, NULL, &ts, err, sizeof(err));
		AL_ASSERT(rc == -ENOTDIR || rc == -ELOOP);
	}
	AL_ASSERT_NULL(ts);
	snprintf(path, sizeof(path), "%s/none", al_test_tmpdir());
	AL_ASSERT_INT_EQ(al_tool_session_open_dir(&cfg, "mcp_1", path, NULL, &ts, err, sizeof(err)),
			 -ENOENT);
	AL_ASSERT_INT_EQ(al_tool_session_open_dir(&cfg, "bad id", dir, NULL, &ts, err, sizeof(err)),
			 -EINVAL);
}
