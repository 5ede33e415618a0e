/*
 * test_native_wedged.c - a killed command whose runner never answers.
 *
 * After a timeout or a cancel the host asks the runner to kill the command
 * tree and waits for its report. A stopped (SIGSTOP) runner stands for any
 * wedge: the wait must end after AL_SANDBOX_KILL_GRACE_MS with the whole
 * sandbox killed, an error, and nothing of the sandbox left running.
 * alarm() bounds each test: a hang fails it instead of the suite.
 */
#include "unit/unit.h"

#include "sandbox/sandbox.h"
#include "unit/sandbox/procs.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *make_ws(void)
{
	static char ws[512];

	chmod(al_test_tmpdir(), 0755);
	snprintf(ws, sizeof(ws), "%s/ws", al_test_tmpdir());
	mkdir(ws, 0755);
	if (geteuid() == 0 && chown(ws, 65534, 65534) < 0)
		return NULL;
	return ws;
}

struct run {
	struct al_sandbox *sb;
	int shell, rc;
	const char *marker;
	struct al_sandbox_result res;
	char err[512];
	double ms;
};

static void *run_cmd(void *arg)
{
	struct run *r = arg;
	struct al_sandbox_exec_opts o = {.timeout_ms = 1500};
	char line[128];
	double t0 = al_sandbox_now_ms();

	if (r->shell) {
		snprintf(line, sizeof(line), "sleep %s", r->marker);
		r->rc = al_sandbox_shell(r->sb, line, &o, &r->res, r->err, sizeof(r->err));
	} else {
		const char *argv[] = {"sleep", r->marker, NULL};
		r->rc = al_sandbox_exec(r->sb, argv, &o, &r->res, r->err, sizeof(r->err));
	}
	r->ms = al_sandbox_now_ms() - t0;
	return NULL;
}

static void stopped_runner_case(int shell, const char *marker)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
	struct al_sandbox_policy p;
	struct run r = {.shell = shell, .marker = marker};
	struct al_sandbox_result r2;
	char err[512] = "";
	pthread_t t;
	pid_t runner = -1;

	alarm(60);
	al_sandbox_policy_init(&p);
	p.workspace = make_ws();
	p.env = env;
	p.n_env = 2;
	AL_ASSERT_INT_EQ(al_sandbox_new(&al_sandbox_native_ops, &p, &r.sb, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(pthread_create(&t, NULL, run_cmd, &r), 0);
	for (int i = 0; i < 200 && runner < 0; i++) {
		usleep(10000);
		runner = find_runner(marker);
	}
	AL_ASSERT(runner > 0);
	/* The runner can no longer act on the kill the timeout sends it. */
	AL_ASSERT_INT_EQ(kill(runner, SIGSTOP), 0);
	pthread_join(t, NULL);
	/* Timeout 1.5 s + grace: well before the command's own end (it sleeps 1000 s). */
	if (r.rc == 0)
		al_sandbox_result_clear(&r.res);
	AL_ASSERT(r.rc < 0);
	AL_ASSERT(strstr(r.err, "destroyed") != NULL);
	AL_ASSERT(r.ms < 1500 + AL_SANDBOX_KILL_GRACE_MS + 3000);
	AL_ASSERT_INT_EQ(al_sandbox_is_broken(r.sb), 1);
	/* Everything of the sandbox is gone: the command, the stopped runner. */
	for (int i = 0; i < 300 && (find_cmdline(marker) > 0 || kill(runner, 0) == 0); i++)
		usleep(10000);
	AL_ASSERT_INT_EQ(find_cmdline(marker), -1);
	/* The broken sandbox refuses at once, without hanging. */
	AL_ASSERT(al_sandbox_shell(r.sb, "true", NULL, &r2, err, sizeof(err)) < 0);
	AL_ASSERT(al_sandbox_exec(r.sb, (const char *const[]){"true", NULL}, NULL, &r2, err,
				  sizeof(err)) < 0);
	al_sandbox_free(r.sb);
	alarm(0);
}

AL_TEST(sandbox_native_exec_kill_with_stopped_runner_is_bounded)
{
	stopped_runner_case(0, "1000.31337");
}

AL_TEST(sandbox_native_shell_kill_with_stopped_runner_is_bounded)
{
	stopped_runner_case(1, "1000.42424");
}
