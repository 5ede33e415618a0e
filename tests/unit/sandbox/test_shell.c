/*
 * test_shell.c - the persistent shell protocol (native backend; the shared
 * cases in cases.h also run a shell case on bwrap).
 */
#include "unit/unit.h"

#include "sandbox/sandbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct al_sandbox *shell_sb(void)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
	static char ws[512];
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	char err[512] = "";

	chmod(al_test_tmpdir(), 0755);
	snprintf(ws, sizeof(ws), "%s/ws", al_test_tmpdir());
	AL_ASSERT_INT_EQ(mkdir(ws, 0755), 0);
	if (geteuid() == 0)
		AL_ASSERT_INT_EQ(chown(ws, 65534, 65534), 0);
	al_sandbox_policy_init(&p);
	p.workspace = ws;
	p.env = env;
	p.n_env = 2;
	p.timeout_ms = 10000;
	if (al_sandbox_new(&al_sandbox_native_ops, &p, &sb, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "create: %s", err);
	return sb;
}

static void sh(struct al_sandbox *sb, const char *cmd, unsigned timeout_ms,
	       struct al_sandbox_result *r)
{
	struct al_sandbox_exec_opts o = {0};
	char err[512] = "";

	o.timeout_ms = timeout_ms;
	if (al_sandbox_shell(sb, cmd, &o, r, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "shell(%s): %s", cmd, err);
}

AL_TEST(shell_quoting_survives_exactly)
{
	struct al_sandbox *sb = shell_sb();
	struct al_sandbox_result r;

	sh(sb, "printf '%s|' \"a b\" 'c\"d' $'e\\tf' \\\\ \"$((1+2))\" héllo; echo", 0, &r);
	AL_ASSERT_STR_EQ(r.out.head, "a b|c\"d|e\tf|\\|3|héllo|\n");
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	al_sandbox_result_clear(&r);
	/* Multi-line commands and a syntax error that must not wedge the shell. */
	sh(sb, "if true; then\n  echo multi\nfi", 0, &r);
	AL_ASSERT_STR_EQ(r.out.head, "multi\n");
	al_sandbox_result_clear(&r);
	sh(sb, "echo 'unterminated", 0, &r);
	AL_ASSERT_INT_NE(r.exit_code, 0);
	al_sandbox_result_clear(&r);
	sh(sb, "echo still-here", 0, &r);
	AL_ASSERT_STR_EQ(r.out.head, "still-here\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

AL_TEST(shell_stdin_is_devnull_and_forged_sentinel_is_output)
{
	struct al_sandbox *sb = shell_sb();
	struct al_sandbox_result r;

	/* cat must not swallow the shell's next command lines. */
	sh(sb, "cat; echo after-cat", 0, &r);
	AL_ASSERT_STR_EQ(r.out.head, "after-cat\n");
	al_sandbox_result_clear(&r);
	sh(sb,
	   "printf '\\n__AL_00000000000000000000000000000000_0\\0/\\0'; echo x; exit_code=5; "
	   "(exit 5)",
	   0, &r);
	AL_ASSERT_INT_EQ(r.exit_code, 5);
	AL_ASSERT(r.out.head_len > 40);
	AL_ASSERT(memcmp(r.out.head + r.out.head_len - 2, "x\n", 2) == 0);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

/*
 * The command controls the shell it runs in: a redefined printf sees the
 * marker and can follow it with unbounded bytes and no NUL. The host must
 * not buffer them until the timeout (memory exhaustion of the worker).
 */
AL_TEST(shell_forged_sentinel_without_end_is_bounded)
{
	struct al_sandbox *sb = shell_sb();
	struct al_sandbox_result r;
	double t0 = al_sandbox_now_ms();

	sh(sb,
	   "printf() { builtin printf \"$1\" 0 | head -c 40; "
	   "while :; do builtin printf '%065536d' 0; done; }; echo before",
	   20000, &r);
	AL_ASSERT(al_sandbox_now_ms() - t0 < 15000);
	AL_ASSERT_INT_EQ(r.timed_out, 0);
	AL_ASSERT(strstr(r.out.head, "before") != NULL);
	al_sandbox_result_clear(&r);
	/* The shell was ended: the next call gets a fresh one. */
	sh(sb, "echo fresh", 0, &r);
	AL_ASSERT_STR_EQ(r.out.head, "fresh\n");
	AL_ASSERT_INT_EQ(r.shell_restarted, 1);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

AL_TEST(shell_timeout_restarts_in_last_cwd)
{
	struct al_sandbox *sb = shell_sb();
	struct al_sandbox_result r;
	char marker[600];

	sh(sb, "mkdir -p d && cd d && export KEEP=1", 0, &r);
	al_sandbox_result_clear(&r);
	double t0 = al_sandbox_now_ms();
	sh(sb, "setsid sh -c 'sleep 2; touch ../escaped' & sleep 60", 300, &r);
	AL_ASSERT(al_sandbox_now_ms() - t0 < 3000);
	AL_ASSERT_INT_EQ(r.timed_out, 1);
	AL_ASSERT_INT_EQ(al_sandbox_result_status(&r), 124);
	al_sandbox_result_clear(&r);
	sh(sb, "basename \"$PWD\"; echo \"keep=${KEEP:-unset}\"", 0, &r);
	AL_ASSERT_INT_EQ(r.shell_restarted, 1);
	AL_ASSERT_STR_EQ(r.out.head, "d\nkeep=unset\n");
	al_sandbox_result_clear(&r);
	sleep(3);
	snprintf(marker, sizeof(marker), "%s/escaped", sb->workspace);
	AL_ASSERT_INT_EQ(access(marker, F_OK), -1);
	al_sandbox_free(sb);
}

AL_TEST(shell_exit_ends_shell_then_restarts)
{
	struct al_sandbox *sb = shell_sb();
	struct al_sandbox_result r;

	sh(sb, "exit 3", 0, &r);
	AL_ASSERT_INT_EQ(r.exit_code, 3);
	al_sandbox_result_clear(&r);
	sh(sb, "echo back", 0, &r);
	AL_ASSERT_STR_EQ(r.out.head, "back\n");
	AL_ASSERT_INT_EQ(r.shell_restarted, 1);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

AL_TEST(shell_output_cap_keeps_tail)
{
	struct al_sandbox *sb = shell_sb();
	struct al_sandbox_result r;

	sh(sb, "head -c 300000 /dev/zero | tr '\\0' a; echo; echo THE-END", 0, &r);
	AL_ASSERT_INT_EQ(r.truncated, 1);
	AL_ASSERT_INT_EQ(r.out.total, 300000 + 1 + 8);
	AL_ASSERT_INT_EQ(r.out.head_len + r.out.tail_len, AL_SANDBOX_SHELL_OUTPUT);
	AL_ASSERT(memcmp(r.out.tail + r.out.tail_len - 8, "THE-END\n", 8) == 0);
	al_sandbox_result_clear(&r);
	/* The shell is still in step after a flood. */
	sh(sb, "echo ok", 0, &r);
	AL_ASSERT_STR_EQ(r.out.head, "ok\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

AL_TEST(shell_background_job_survives_between_calls)
{
	struct al_sandbox *sb = shell_sb();
	struct al_sandbox_result r;

	sh(sb, "sleep 30 >/dev/null 2>&1 & echo started", 0, &r);
	AL_ASSERT_STR_EQ(r.out.head, "started\n");
	al_sandbox_result_clear(&r);
	sh(sb, "jobs | grep -c sleep", 0, &r);
	AL_ASSERT_STR_EQ(r.out.head, "1\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

struct cancel_arg {
	struct al_sandbox *sb;
	unsigned delay_ms;
};

static void *cancel_later(void *p)
{
	struct cancel_arg *a = p;
	usleep(a->delay_ms * 1000);
	al_sandbox_cancel(a->sb);
	return NULL;
}

/*
 * al_sandbox_cancel from another thread ends the shell command in this
 * sandbox only (the other sandbox's command runs to its end), promptly, and
 * every later call on the cancelled sandbox is refused.
 */
AL_TEST(shell_cancel_one_sandbox_from_another_thread)
{
	struct al_sandbox *a = shell_sb(), *b;
	struct al_sandbox_result r, rb;
	struct al_sandbox_policy p;
	struct al_sandbox_exec_opts o = {0};
	static const char *const env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
	char ws[512], err[512] = "";
	pthread_t t;
	struct cancel_arg ca = {a, 300};

	snprintf(ws, sizeof(ws), "%s/ws2", al_test_tmpdir());
	AL_ASSERT_INT_EQ(mkdir(ws, 0755), 0);
	if (geteuid() == 0)
		AL_ASSERT_INT_EQ(chown(ws, 65534, 65534), 0);
	al_sandbox_policy_init(&p);
	p.workspace = ws;
	p.env = env;
	p.n_env = 2;
	AL_ASSERT_INT_EQ(al_sandbox_new(&al_sandbox_native_ops, &p, &b, err, sizeof(err)), 0);
	/* b's command is in flight in its own shell while a is cancelled. */
	AL_ASSERT_INT_EQ(pthread_create(&t, NULL, cancel_later, &ca), 0);
	double t0 = al_sandbox_now_ms();
	sh(a, "echo started; sleep 30", 0, &r);
	double took = al_sandbox_now_ms() - t0;
	pthread_join(t, NULL);
	AL_ASSERT_INT_EQ(r.cancelled, 1);
	AL_ASSERT_INT_EQ(r.timed_out, 0);
	AL_ASSERT(took < 5000);
	AL_ASSERT(strstr(r.out.head, "started") != NULL);
	al_sandbox_result_clear(&r);
	AL_ASSERT_INT_EQ(al_sandbox_shell(a, "echo again", &o, &r, err, sizeof(err)), -ECANCELED);
	AL_ASSERT_INT_EQ(
	    al_sandbox_exec(a, (const char *const[]){"/bin/true", NULL}, &o, &r, err, sizeof(err)),
	    -ECANCELED);
	/* The other sandbox is untouched. */
	sh(b, "sleep 0.2; echo b-ran", 0, &rb);
	AL_ASSERT_INT_EQ(rb.cancelled, 0);
	AL_ASSERT_STR_EQ(rb.out.head, "b-ran\n");
	al_sandbox_result_clear(&rb);
	al_sandbox_free(a);
	al_sandbox_free(b);
}

/* exec, too: a cancel ends a one-shot command at once. */
AL_TEST(exec_cancel_from_another_thread)
{
	struct al_sandbox *a = shell_sb();
	struct al_sandbox_result r;
	char err[512] = "";
	pthread_t t;
	struct cancel_arg ca = {a, 200};

	AL_ASSERT_INT_EQ(pthread_create(&t, NULL, cancel_later, &ca), 0);
	double t0 = al_sandbox_now_ms();
	AL_ASSERT_INT_EQ(al_sandbox_exec(a, (const char *const[]){"sleep", "30", NULL}, NULL, &r,
					 err, sizeof(err)),
			 0);
	pthread_join(t, NULL);
	AL_ASSERT(al_sandbox_now_ms() - t0 < 5000);
	AL_ASSERT_INT_EQ(r.cancelled, 1);
	AL_ASSERT_INT_NE(r.signal, 0);
	al_sandbox_result_clear(&r);
	al_sandbox_free(a);
}
