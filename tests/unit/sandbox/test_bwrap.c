/* test_bwrap.c - the functional cases (cases.h) against the bwrap backend. */
#define BACKEND_OPS	    al_sandbox_bwrap_ops
#define BACKEND_TAG	    bwrap
#define BACKEND_ENOENT_EXIT 127 /* the helper (inner.c) says it as a shell would */
#define BACKEND_DEGRADED    0	/* Landlock through the helper, seccomp through bwrap */
#include "cases.h"

#include "sandbox/inner.h"
#include "sandbox/landlock.h"

#include <errno.h>

/* Every allocation of create + exec failing in turn: a clean error, no leak. */
AL_TEST(sandbox_bwrap_allocation_failures)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin", "A=b"};
	static const char *const argv[] = {"/bin/echo", "hi", NULL};
	const char *ws = make_ws();
	int completed = 0;

	for (long n = 0; n < 400 && !completed; n++) {
		struct al_sandbox_policy p;
		struct al_sandbox *sb = NULL;
		struct al_sandbox_result r;
		char err[512] = "";

		al_sandbox_policy_init(&p);
		p.workspace = ws;
		p.env = env;
		p.n_env = 2;
		al_alloc_fail_after(n);
		int rc = al_sandbox_new(&al_sandbox_bwrap_ops, &p, &sb, err, sizeof(err));
		int rc2 = -1;
		if (rc == 0) {
			rc2 = al_sandbox_exec(sb, argv, NULL, &r, err, sizeof(err));
			if (rc2 == 0)
				al_sandbox_result_clear(&r);
			al_sandbox_free(sb);
		}
		al_alloc_fail_after(-1);
		if (rc < 0)
			AL_ASSERT(err[0] != '\0');
		completed = rc == 0 && rc2 == 0;
	}
	AL_ASSERT(completed);
}

/* The hidden helper refuses on the host, even with the marker set. */
AL_TEST(sandbox_bwrap_inner_refuses_outside_its_sandbox)
{
	char err[256] = "";
	char a0[] = "inner", a1[] = "--", a2[] = "/bin/true";
	char *argv[] = {a0, a1, a2, NULL};

	unsetenv(AL_INNER_ENV);
	AL_ASSERT_INT_EQ(al_sandbox_inner_detect(err, sizeof(err)), -EPERM);
	AL_ASSERT(strstr(err, AL_INNER_ENV) != NULL);
	setenv(AL_INNER_ENV, "1", 1);
	err[0] = '\0';
	/* Here PID 1 is the host's init (or the container's), never bwrap. */
	AL_ASSERT_INT_EQ(al_sandbox_inner_detect(err, sizeof(err)), -EPERM);
	AL_ASSERT(err[0] != '\0');
	AL_ASSERT_INT_EQ(al_sandbox_inner_main(3, argv), 125);
	unsetenv(AL_INNER_ENV);
}

/* The host's side of the handshake: a full report, none (EOF), or none in time. */
AL_TEST(sandbox_bwrap_inner_report_reader)
{
	struct al_inner_report in, out;
	int p[2];

	AL_ASSERT_INT_EQ(pipe(p), 0);
	memset(&in, 0, sizeof(in));
	in.landlock_abi = 6;
	in.seccomp = 1;
	/* Split in two writes: the reader must reassemble. */
	AL_ASSERT_INT_EQ(write(p[1], &in, 10), 10);
	AL_ASSERT_INT_EQ(write(p[1], (char *)&in + 10, sizeof(in) - 10), (int)(sizeof(in) - 10));
	AL_ASSERT_INT_EQ(al_sandbox_inner_read_report(p[0], 1000, &out), 0);
	AL_ASSERT_INT_EQ(out.landlock_abi, 6);
	AL_ASSERT_INT_EQ(out.seccomp, 1);
	AL_ASSERT_INT_EQ(al_sandbox_inner_read_report(p[0], 50, &out), -ETIMEDOUT);
	AL_ASSERT_INT_EQ(write(p[1], &in, 4), 4);
	close(p[1]);
	AL_ASSERT_INT_EQ(al_sandbox_inner_read_report(p[0], 1000, &out), -EPIPE);
	close(p[0]);
}

/* Every run reports what the helper found in force: the kernel's Landlock ABI, seccomp. */
AL_TEST(sandbox_bwrap_reports_mechanisms_in_force)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;
	char err[256];
	int abi = al_landlock_abi(err, sizeof(err));

	AL_ASSERT_INT_GE(abi, 1);
	run_sh(sb,
	       "grep -c '^Seccomp:.*2' /proc/self/status; echo \"${AIRLOCK_SANDBOX_INNER-unset}\"",
	       &r);
	AL_ASSERT_INT_EQ(r.landlock_abi, abi);
	AL_ASSERT_INT_EQ(r.seccomp, 1);
	/* The marker never reaches the command. */
	AL_ASSERT_STR_EQ(r.out.head, "1\nunset\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}
