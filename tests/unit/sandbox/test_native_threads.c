/*
 * test_native_threads.c - native sandboxes created from several threads at
 * once (the worker runs sessions on a thread pool). A raw clone copies the
 * host's libc state, its list of threads included: PID 1 must not use libc
 * calls that synchronise with those threads (setgroups/setresuid did, and
 * hung until the host gave up after 10 s).
 */
#include "unit/unit.h"

#include "sandbox/sandbox.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/*
 * Egress allowed: PID 1 forks the in-sandbox forwarder, which relays a
 * connection only once it has its buffers. It used to malloc them after the
 * clone; with one malloc arena for every thread (M_ARENA_MAX=1) a lock held
 * by a hammering thread at clone time was copied held, and the first
 * connection through the forwarder hung. Each command below goes through the
 * forwarder to the host proxy (a denied CONNECT: an immediate answer, no
 * network needed). alarm() bounds the test: a hang fails it, not the suite.
 */
struct eg {
	long i;
	int rc, timed_out;
	char out[64], err[512];
};

static void *egress_one(void *arg)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
	static const char *const allow[] = {"allowed.example.com"};
	static const char *const argv[] = {"/bin/bash", "-c",
					   "exec 3<>/dev/tcp/127.0.0.1/3128 && "
					   "printf 'CONNECT denied.invalid:443 HTTP/1.1\\r\\nHost: "
					   "denied.invalid:443\\r\\n\\r\\n' "
					   ">&3 && head -c 8 <&3",
					   NULL};
	struct eg *m = arg;
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	struct al_sandbox_result r;
	char ws[512];

	snprintf(ws, sizeof(ws), "%s/eg%ld", al_test_tmpdir(), m->i);
	if (mkdir(ws, 0755) < 0 || (geteuid() == 0 && chown(ws, 65534, 65534) < 0)) {
		m->rc = -1;
		return NULL;
	}
	al_sandbox_policy_init(&p);
	p.workspace = ws;
	p.env = env;
	p.n_env = 2;
	p.egress_allow = allow;
	p.n_egress = 1;
	p.timeout_ms = 5000;
	m->rc = al_sandbox_new(&al_sandbox_native_ops, &p, &sb, m->err, sizeof(m->err));
	if (m->rc == 0) {
		m->rc = al_sandbox_exec(sb, argv, NULL, &r, m->err, sizeof(m->err));
		if (m->rc == 0) {
			m->timed_out = r.timed_out;
			snprintf(m->out, sizeof(m->out), "%s", r.out.head ? r.out.head : "");
			if (r.timed_out == 0 && al_sandbox_result_status(&r) != 0)
				snprintf(m->err, sizeof(m->err), "status %d: %s",
					 al_sandbox_result_status(&r),
					 r.err.head ? r.err.head : "");
		}
		al_sandbox_result_clear(&r);
	}
	al_sandbox_free(sb);
	return NULL;
}

AL_TEST(sandbox_native_egress_forwarder_while_other_threads_allocate)
{
	enum { ROUNDS = 6, N = 3, H = 3 };
	pthread_t t[N], h[H];
	struct eg m[ROUNDS * N];

	alarm(150);
	mallopt(M_ARENA_MAX, 1);
	chmod(al_test_tmpdir(), 0755);
	hammer_stop = 0;
	for (int i = 0; i < H; i++)
		AL_ASSERT_INT_EQ(pthread_create(&h[i], NULL, hammer, NULL), 0);
	for (int k = 0; k < ROUNDS; k++) {
		for (int i = 0; i < N; i++) {
			m[k * N + i] = (struct eg){.i = k * N + i};
			AL_ASSERT_INT_EQ(pthread_create(&t[i], NULL, egress_one, &m[k * N + i]), 0);
		}
		for (int i = 0; i < N; i++) {
			struct eg *e = &m[k * N + i];
			pthread_join(t[i], NULL);
			if (e->rc != 0 || e->timed_out || strncmp(e->out, "HTTP/1.", 7) != 0)
				al_test_fail(__FILE__, __LINE__,
					     "round %d sandbox %d: rc %d timed_out %d out '%s' %s",
					     k, i, e->rc, e->timed_out, e->out, e->err);
		}
	}
	hammer_stop = 1;
	for (int i = 0; i < H; i++)
		pthread_join(h[i], NULL);
	alarm(0);
}
