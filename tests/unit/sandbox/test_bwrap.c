/* test_bwrap.c - the functional cases (cases.h) against the bwrap backend. */
#define BACKEND_OPS	    al_sandbox_bwrap_ops
#define BACKEND_TAG	    bwrap
#define BACKEND_ENOENT_EXIT 127 /* the helper (inner.c) says it as a shell would */
#define BACKEND_DEGRADED    0	/* Landlock through the helper, seccomp through bwrap */
#include "cases.h"

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
