/* test_native.c - the functional cases (cases.h) against the native backend. */
#define BACKEND_OPS	    al_sandbox_native_ops
#define BACKEND_TAG	    native
#define BACKEND_ENOENT_EXIT 127
#define BACKEND_DEGRADED    0
#include "cases.h"

#include <errno.h>

/* Every allocation of create + exec + shell failing in turn: a clean error, no leak. */
AL_TEST(sandbox_native_allocation_failures)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin"};
	static const char *const argv[] = {"/bin/echo", "hi", NULL};
	const char *ws = make_ws();
	int completed = 0;

	for (long n = 0; n < 400 && !completed; n++) {
		struct al_sandbox_policy p;
		struct al_sandbox *sb = NULL;
		struct al_sandbox_result r;
		char err[512];

		al_sandbox_policy_init(&p);
		p.workspace = ws;
		p.env = env;
		p.n_env = 1;
		al_alloc_fail_after(n);
		int rc = al_sandbox_new(&al_sandbox_native_ops, &p, &sb, err, sizeof(err));
		int rc2 = -1, rc3 = -1;
		if (rc == 0) {
			rc2 = al_sandbox_exec(sb, argv, NULL, &r, err, sizeof(err));
			if (rc2 == 0)
				al_sandbox_result_clear(&r);
			rc3 = al_sandbox_shell(sb, "echo hi", NULL, &r, err, sizeof(err));
			if (rc3 == 0)
				al_sandbox_result_clear(&r);
			al_sandbox_free(sb);
		}
		al_alloc_fail_after(-1);
		if (rc < 0)
			AL_ASSERT(rc == -ENOMEM || err[0] != '\0');
		completed = rc == 0 && rc2 == 0 && rc3 == 0;
	}
	AL_ASSERT(completed);
}

/*
 * PID 1 is moved into the sandbox's cgroup while it builds the root, and
 * roots its cgroup namespace only after that: a command then sees itself at
 * the namespace root ("/") for every limiting controller. Had the namespace
 * been rooted before the move, it would see the sandbox cgroup's name.
 */
AL_TEST(sandbox_native_cgroup_namespace_rooted_after_join)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin"};
	static const char *const argv[] = {"/bin/cat", "/proc/self/cgroup", NULL};
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	struct al_sandbox_result r;
	char err[512];
	int checked = 0;

	al_sandbox_policy_init(&p);
	p.workspace = make_ws();
	p.env = env;
	p.n_env = 1;
	AL_ASSERT_INT_EQ(al_sandbox_new(&al_sandbox_native_ops, &p, &sb, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_sandbox_exec(sb, argv, NULL, &r, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	for (char *line = r.out.head, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		AL_ASSERT(c2 != NULL);
		*c2 = '\0';
		int limiting = r.limits == AL_LIMITS_CGROUP2   ? c1[1] == '\0'
			       : r.limits == AL_LIMITS_CGROUP1 ? strstr(c1 + 1, "memory") != NULL ||
								     strstr(c1 + 1, "pids") != NULL
							       : 0;
		if (limiting) {
			AL_ASSERT_STR_EQ(c2 + 1, "/");
			checked++;
		}
	}
	if (r.limits == AL_LIMITS_CGROUP1)
		AL_ASSERT_INT_EQ(checked, 2);
	else if (r.limits == AL_LIMITS_CGROUP2)
		AL_ASSERT_INT_EQ(checked, 1);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

/*
 * The old root is stacked on /dev/shm by pivot_root and detached by a helper
 * before the sandbox reports ready: commands find only the /dev/shm tmpfs
 * there (empty), and nothing of the host's mounts in their mount table.
 */
AL_TEST(sandbox_native_old_root_detached)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin"};
	static const char *const argv[] = {
	    "/bin/sh", "-c",
	    "grep -c ' /dev/shm ' /proc/self/mountinfo; ls -A /dev/shm | wc -l; "
	    "grep ' /dev/shm ' /proc/self/mountinfo | grep -c ' - tmpfs '; "
	    "wc -l < /proc/self/mountinfo",
	    NULL};
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	struct al_sandbox_result r;
	char err[512];

	al_sandbox_policy_init(&p);
	p.workspace = make_ws();
	p.env = env;
	p.n_env = 1;
	AL_ASSERT_INT_EQ(al_sandbox_new(&al_sandbox_native_ops, &p, &sb, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_sandbox_exec(sb, argv, NULL, &r, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	/* One mount at /dev/shm, a tmpfs, empty; the table is ours alone (< 40 mounts). */
	AL_ASSERT(strncmp(r.out.head, "1\n0\n1\n", 6) == 0);
	AL_ASSERT(strtol(r.out.head + 6, NULL, 10) < 40);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

/*
 * The loopback interface is brought up by the detach helper, off PID 1's
 * path: a connection to a closed port on 127.0.0.1 is refused (lo up),
 * not unreachable (lo down).
 */
AL_TEST(sandbox_native_loopback_up)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin"};
	static const char *const argv[] = {"/bin/bash", "-c", ": <>/dev/tcp/127.0.0.1/1 || exit 3",
					   NULL};
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	struct al_sandbox_result r;
	char err[512];

	al_sandbox_policy_init(&p);
	p.workspace = make_ws();
	p.env = env;
	p.n_env = 1;
	AL_ASSERT_INT_EQ(al_sandbox_new(&al_sandbox_native_ops, &p, &sb, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_sandbox_exec(sb, argv, NULL, &r, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(r.exit_code, 3);
	AL_ASSERT(strstr(r.err.head, "Connection refused") != NULL);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}
