/*
 * test_native_threads.c - native sandboxes created from several threads at
 * once (the worker runs sessions on a thread pool). A raw clone copies the
 * host's libc state, its list of threads included: PID 1 must not use libc
 * calls that synchronise with those threads (setgroups/setresuid did, and
 * hung until the host gave up after 10 s).
 */
#include "unit/unit.h"

#include "sandbox/sandbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct mk {
	long i;
	int rc;
	char err[512];
};

static void *make_one(void *arg)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
	struct mk *m = arg;
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	struct al_sandbox_result r;
	char ws[512];

	snprintf(ws, sizeof(ws), "%s/ws%ld", al_test_tmpdir(), m->i);
	if (mkdir(ws, 0755) < 0 || (geteuid() == 0 && chown(ws, 65534, 65534) < 0)) {
		m->rc = -1;
		return NULL;
	}
	al_sandbox_policy_init(&p);
	p.workspace = ws;
	p.env = env;
	p.n_env = 2;
	p.timeout_ms = 5000;
	m->rc = al_sandbox_new(&al_sandbox_native_ops, &p, &sb, m->err, sizeof(m->err));
	if (m->rc == 0) {
		m->rc = al_sandbox_exec(sb, (const char *const[]){"true", NULL}, NULL, &r, m->err,
					sizeof(m->err));
		if (m->rc == 0)
			m->rc = al_sandbox_result_status(&r);
		al_sandbox_result_clear(&r);
	}
	al_sandbox_free(sb);
	return NULL;
}

AL_TEST(sandbox_native_create_from_threads_at_once)
{
	enum { ROUNDS = 4, N = 3 };
	pthread_t t[N];
	struct mk m[ROUNDS * N];

	chmod(al_test_tmpdir(), 0755);
	for (int k = 0; k < ROUNDS; k++) {
		for (int i = 0; i < N; i++) {
			m[k * N + i] = (struct mk){.i = k * N + i};
			AL_ASSERT_INT_EQ(pthread_create(&t[i], NULL, make_one, &m[k * N + i]), 0);
		}
		for (int i = 0; i < N; i++) {
			pthread_join(t[i], NULL);
			if (m[k * N + i].rc != 0)
				al_test_fail(__FILE__, __LINE__, "round %d sandbox %d: %d %s", k, i,
					     m[k * N + i].rc, m[k * N + i].err);
		}
	}
}

static volatile int hammer_stop;

static void *hammer(void *arg)
{
	(void)arg;
	while (!hammer_stop) {
		void *p[64];
		for (int i = 0; i < 64; i++)
			p[i] = malloc(16 + (size_t)i * 100);
		for (int i = 0; i < 64; i++)
			free(p[i]);
	}
	return NULL;
}

/*
 * Another host thread allocating all the time: a malloc lock it holds at
 * the moment of clone is copied locked into PID 1, so PID 1 must never take
 * one (glibc's fork wrapper does: PID 1 hung on its first command).
 */
AL_TEST(sandbox_native_commands_while_another_thread_allocates)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
	char ws[512], err[512] = "";
	pthread_t t;

	chmod(al_test_tmpdir(), 0755);
	snprintf(ws, sizeof(ws), "%s/ws", al_test_tmpdir());
	AL_ASSERT_INT_EQ(mkdir(ws, 0755), 0);
	if (geteuid() == 0)
		AL_ASSERT_INT_EQ(chown(ws, 65534, 65534), 0);
	AL_ASSERT_INT_EQ(pthread_create(&t, NULL, hammer, NULL), 0);
	for (int k = 0; k < 8; k++) {
		struct al_sandbox_policy p;
		struct al_sandbox *sb = NULL;
		struct al_sandbox_result r;

		al_sandbox_policy_init(&p);
		p.workspace = ws;
		p.env = env;
		p.n_env = 2;
		p.timeout_ms = 3000;
		if (al_sandbox_new(&al_sandbox_native_ops, &p, &sb, err, sizeof(err)) < 0)
			al_test_fail(__FILE__, __LINE__, "create %d: %s", k, err);
		AL_ASSERT_INT_EQ(al_sandbox_exec(sb, (const char *const[]){"true", NULL}, NULL, &r,
						 err, sizeof(err)),
				 0);
		AL_ASSERT_INT_EQ(r.timed_out, 0);
		AL_ASSERT_INT_EQ(r.exit_code, 0);
		al_sandbox_result_clear(&r);
		AL_ASSERT_INT_EQ(al_sandbox_shell(sb, "echo ok", NULL, &r, err, sizeof(err)), 0);
		AL_ASSERT_STR_EQ(r.out.head, "ok\n");
		al_sandbox_result_clear(&r);
		al_sandbox_free(sb);
	}
	hammer_stop = 1;
	pthread_join(t, NULL);
}
