/*
 * test_init_atfork.c - the sandbox's PID 1 is a copy of the host process,
 * so the host's pthread_atfork handlers are registered there too. It must
 * not run them when it starts a command: libuv's (registered once a process
 * uses uv_signal, as the worker does) closes and recreates its signal pipe
 * at the host's fd numbers, which in PID 1 belong to the request's fds, and
 * every command the worker ran was killed at once. A handler that closes
 * every inherited fd stands in for it here.
 */
#include "unit/unit.h"

#include "sandbox/sandbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static pid_t host_pid;

static void clobber_fds_in_child(void)
{
	/* Only in children of the sandbox, never in the test process's own forks. */
	if (getpid() != host_pid)
		syscall(SYS_close_range, 3, ~0U, 0);
}

AL_TEST(sandbox_commands_survive_host_atfork_handlers)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
	struct al_sandbox_exec_opts o = {0};
	struct al_sandbox_result r;
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	char ws[512], err[512] = "";

	host_pid = getpid();
	chmod(al_test_tmpdir(), 0755);
	snprintf(ws, sizeof(ws), "%s/ws", al_test_tmpdir());
	AL_ASSERT_INT_EQ(mkdir(ws, 0755), 0);
	if (geteuid() == 0)
		AL_ASSERT_INT_EQ(chown(ws, 65534, 65534), 0);
	AL_ASSERT_INT_EQ(pthread_atfork(NULL, NULL, clobber_fds_in_child), 0);
	al_sandbox_policy_init(&p);
	p.workspace = ws;
	p.env = env;
	p.n_env = 2;
	p.timeout_ms = 10000;
	if (al_sandbox_new(&al_sandbox_native_ops, &p, &sb, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "create: %s", err);
	o.timeout_ms = 10000;
	/* The persistent shell (the worker's bash tool) and a one-off command. */
	if (al_sandbox_shell(sb, "echo from-the-shell", &o, &r, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "shell: %s", err);
	AL_ASSERT_INT_EQ(r.signal, 0);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_STR_EQ(r.out.head, "from-the-shell\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}
