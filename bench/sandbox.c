/*
 * sandbox.c - start-to-exit of /bin/true: plain fork+exec, full native
 * isolation (create + exec + destroy), the same without cgroup limits, the
 * bwrap backend, bwrap itself with the same read-only binds, and a command in
 * an already-created session sandbox, and the kernel floor (the same
 * namespaces around a bare execve). Prints a Markdown table: mean, median
 * and p90 ms, interleaved round-robin so a noisy neighbour hits all alike,
 * then the two ratios the issue sets goals for (medians). Variants that
 * create a network namespace leave the kernel asynchronous teardown work,
 * which the next variant pays for: expect +-20% noise between runs.
 *
 *   bench-sandbox WORKSPACE [ITERATIONS]
 *
 * Built against libairlock.a (`make build/bench-sandbox`; `make bench` runs it).
 * Runs as root or unprivileged (then cgroups fall back to rlimits).
 */
#include "core/alloc.h"
#include "sandbox/sandbox.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ws;

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int run_argv(char *const *argv)
{
	pid_t p = fork();
	int st = 0;

	if (p == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	waitpid(p, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int fork_exec(void)
{
	char *const argv[] = {"/bin/true", NULL};
	return run_argv(argv);
}

static int bwrap_raw(void)
{
	/* What the issue compares against: --unshare-all --die-with-parent, the same ro binds. */
	char *const argv[] = {"/usr/bin/bwrap",
			      "--unshare-all",
			      "--die-with-parent",
			      "--ro-bind",
			      "/usr",
			      "/usr",
			      "--symlink",
			      "usr/bin",
			      "/bin",
			      "--symlink",
			      "usr/lib",
			      "/lib",
			      "--symlink",
			      "usr/lib64",
			      "/lib64",
			      "--ro-bind",
			      "/etc/ld.so.cache",
			      "/etc/ld.so.cache",
			      "--proc",
			      "/proc",
			      "--dev",
			      "/dev",
			      "--tmpfs",
			      "/tmp",
			      "--bind",
			      (char *)ws,
			      (char *)ws,
			      "/bin/true",
			      NULL};
	return run_argv(argv);
}

/*
 * The kernel's share: clone into the namespaces the native backend uses,
 * execve /bin/true straight away (no id maps, no mounts, no confinement),
 * wait. What no sandbox with these namespaces can go below on this machine.
 */
static int bare_namespaces(void)
{
	char *const argv[] = {"/bin/true", NULL};
	long pid = syscall(SYS_clone,
			   (unsigned long)(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID |
					   CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD),
			   NULL, NULL, NULL, 0);
	int st = 0;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	waitpid((pid_t)pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int no_limits;

static int backend_once(const struct al_sandbox_backend_ops *ops)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin"};
	static const char *const argv[] = {"/bin/true", NULL};
	struct al_sandbox_policy p;
	struct al_sandbox *sb;
	struct al_sandbox_result r;
	char err[512];
	int rc;

	al_sandbox_policy_init(&p);
	p.workspace = ws;
	p.env = env;
	p.n_env = 1;
	if (no_limits)
		p.memory_mb = p.pids = 0;
	if (ops == &al_sandbox_bwrap_ops)
		p.flags |= AL_SANDBOX_ALLOW_DEGRADED; /* bwrap has no Landlock */
	if (al_sandbox_new(ops, &p, &sb, err, sizeof(err)) < 0) {
		fprintf(stderr, "create: %s\n", err);
		return -1;
	}
	rc = al_sandbox_exec(sb, argv, NULL, &r, err, sizeof(err));
	if (rc == 0 && r.exit_code != 0)
		rc = -1;
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
	return rc;
}

static int native_once(void)
{
	return backend_once(&al_sandbox_native_ops);
}

static int native_nolimits_once(void)
{
	no_limits = 1;
	int rc = backend_once(&al_sandbox_native_ops);
	no_limits = 0;
	return rc;
}

static int bwrap_backend_once(void)
{
	return backend_once(&al_sandbox_bwrap_ops);
}

static struct al_sandbox *session;

static int session_once(void)
{
	static const char *const argv[] = {"/bin/true", NULL};
	struct al_sandbox_result r;
	char err[512];
	int rc = al_sandbox_exec(session, argv, NULL, &r, err, sizeof(err));

	if (rc == 0 && r.exit_code != 0)
		rc = -1;
	al_sandbox_result_clear(&r);
	return rc;
}

struct variant {
	const char *name;
	int (*fn)(void);
	double *t;
};

/*
 * Round-robin: every iteration runs each variant once, so a noisy
 * neighbour (this machine kind is shared) slows them all alike.
 */
static void measure_all(struct variant *v, int nv, int n)
{
	for (int k = 0; k < nv; k++) {
		v[k].t = calloc((size_t)n, sizeof(double));
		for (int i = 0; i < 3; i++) /* warm-up */
			v[k].fn();
	}
	for (int i = 0; i < n; i++)
		for (int k = 0; k < nv; k++) {
			double a = al_sandbox_now_ms();
			if (v[k].fn() < 0) {
				fprintf(stderr, "%s failed\n", v[k].name);
				exit(1);
			}
			v[k].t[i] = al_sandbox_now_ms() - a;
		}
}

/* Sorts v->t; returns the median and fills the mean and the 90th percentile. */
static double median(struct variant *v, int n, double *mean, double *p90)
{
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += v->t[i];
	*mean = sum / n;
	qsort(v->t, (size_t)n, sizeof(double), cmp);
	*p90 = v->t[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1];
	return v->t[n / 2];
}

int main(int argc, char **argv)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin"};
	struct al_sandbox_policy p;
	char err[512];
	int n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 200;
	struct variant v[] = {
	    {"fork+exec", fork_exec, NULL},
	    {"bwrap --unshare-all --die-with-parent (same ro binds)", bwrap_raw, NULL},
	    {"floor: clone(same namespaces) + exec, nothing else", bare_namespaces, NULL},
	    {"native backend without memory/pids cgroups", native_nolimits_once, NULL},
	    {"bwrap backend: create + exec + destroy", bwrap_backend_once, NULL},
	    {"native backend: create + exec + destroy (full isolation)", native_once, NULL},
	    {"native: exec in an existing session sandbox", session_once, NULL},
	};
	int nv = (int)(sizeof(v) / sizeof(v[0]));
	double med[7], mean[7], p90[7]; /* one per variant */

	al_alloc_init();
	if (argc < 2 || n < 1 || n > 100000) {
		fprintf(stderr, "usage: bench-sandbox WORKSPACE [ITERATIONS]\n");
		return 2;
	}
	ws = argv[1];
	al_sandbox_policy_init(&p);
	p.workspace = ws;
	p.env = env;
	p.n_env = 1;
	if (al_sandbox_new(&al_sandbox_native_ops, &p, &session, err, sizeof(err)) < 0) {
		fprintf(stderr, "create: %s\n", err);
		return 1;
	}
	measure_all(v, nv, n);
	al_sandbox_free(session);
	printf("| /bin/true, %d runs each, interleaved | mean ms | median ms | p90 ms | median vs "
	       "fork+exec |\n",
	       n);
	printf("| --- | --- | --- | --- | --- |\n");
	for (int k = 0; k < nv; k++) {
		med[k] = median(&v[k], n, &mean[k], &p90[k]);
		printf("| %s | %.2f | %.2f | %.2f | %.2fx |\n", v[k].name, mean[k], med[k], p90[k],
		       med[k] / med[0]);
		free(v[k].t);
	}
	/* Indexes follow the table above. */
	printf("\nnative full isolation / bwrap (median): %.2fx (goal <= 0.6x); "
	       "session exec / fork+exec: %.2fx (goal <= 1.5x)\n",
	       med[5] / med[1], med[6] / med[0]);
	printf("floor / bwrap (median): %.2fx; native full isolation / floor: %.2fx\n",
	       med[2] / med[1], med[5] / med[2]);
	return 0;
}
