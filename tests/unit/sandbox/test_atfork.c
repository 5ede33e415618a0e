/*
 * test_atfork.c - a sandbox created by a process with pthread_atfork child
 * handlers (the worker: libuv registers one that closes and re-creates its
 * signal-lock pipe by fd number). PID 1 of a sandbox inherits the
 * registrations; had it forked with fork(), the handler would run there and
 * close whatever PID 1 keeps under those numbers (the runner's control
 * socket: every command was killed as soon as it started, "exit 137"). The
 * handler here closes every fd above stderr, so any fork() in PID 1 shows.
 */
#include "unit/unit.h"

#include "sandbox/sandbox.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void child_closes_fds(void)
{
	for (int fd = 3; fd < 256; fd++)
		close(fd);
}

AL_TEST(sandbox_pid1_runs_no_atfork_handlers)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
	const char *const argv[] = {"/bin/sh", "-c", "echo exec-ok", NULL};
	struct al_sandbox_policy p;
	struct al_sandbox_exec_opts o = {0};
	struct al_sandbox_result r;
	struct al_sandbox *sb = NULL;
	char ws[512], err[512] = "";

	AL_ASSERT_INT_EQ(pthread_atfork(NULL, NULL, child_closes_fds), 0);
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

	for (int i = 0; i < 2; i++) {
		if (al_sandbox_shell(sb, "echo shell-ok", &o, &r, err, sizeof(err)) < 0)
			al_test_fail(__FILE__, __LINE__, "shell: %s", err);
		AL_ASSERT_INT_EQ(r.signal, 0);
		AL_ASSERT_INT_EQ(r.exit_code, 0);
		AL_ASSERT_STR_EQ(r.out.head, "shell-ok\n");
		al_sandbox_result_clear(&r);
	}
	if (al_sandbox_exec(sb, argv, &o, &r, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "exec: %s", err);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_STR_EQ(r.out.head, "exec-ok\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}
