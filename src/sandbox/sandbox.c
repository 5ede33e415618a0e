/*
 * sandbox.c - backend-independent parts: policy copies, the generic exec
 * loop (spawn, drain, timeout, reap), results.
 */
#include "sandbox/sandbox.h"

#include "core/alloc.h"
#include "sandbox/egress.h"
#include "sandbox/landlock.h"
#include "sandbox/limits.h"
#include "sandbox/netpolicy.h"
#include "sandbox/output.h"
#include "sandbox/seccomp.h"
#include "sandbox/shell.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static volatile sig_atomic_t cancelled;

void al_sandbox_cancel_all(void)
{
	cancelled = 1;
}

void al_sandbox_cancel(struct al_sandbox *sb)
{
	uint64_t one = 1;

	__atomic_store_n(&sb->cancelled, 1, __ATOMIC_SEQ_CST);
	/* write(2) on an eventfd is async-signal-safe; the counter only grows. */
	if (sb->cancel_fd >= 0)
		(void)!write(sb->cancel_fd, &one, sizeof(one));
}

int al_sandbox_is_cancelled(const struct al_sandbox *sb)
{
	return __atomic_load_n(&sb->cancelled, __ATOMIC_SEQ_CST);
}

int al_sandbox_sweep_stale(void)
{
	const char *tmp = getenv("TMPDIR");

	/* The same parent al_sandbox_egress_prepare uses. */
	return al_limits_sweep_stale() + al_egress_sweep_stale(tmp && tmp[0] == '/' ? tmp : "/tmp");
}

int al_sandbox_is_broken(const struct al_sandbox *sb)
{
	return __atomic_load_n(&sb->broken, __ATOMIC_SEQ_CST);
}

double al_sandbox_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void al_sandbox_policy_init(struct al_sandbox_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->timeout_ms = AL_SANDBOX_DEFAULT_TIMEOUT_MS;
	p->memory_mb = AL_SANDBOX_DEFAULT_MEMORY_MB;
	p->pids = AL_SANDBOX_DEFAULT_PIDS;
	p->output_limit = AL_SANDBOX_DEFAULT_OUTPUT;
	p->fsize_max = AL_SANDBOX_DEFAULT_FSIZE;
	p->tmp_mb = AL_SANDBOX_DEFAULT_TMP_MB;
}

int al_sandbox_env_allowed(const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t n;

	if (eq == NULL || eq == kv)
		return 0;
	n = (size_t)(eq - kv);
	if (strncmp(kv, "ANTHROPIC_", 10) == 0 || strncmp(kv, "AIRLOCK_", 8) == 0 ||
	    strncmp(kv, "CLAUDE_", 7) == 0)
		return 0;
	if (n >= 8 && strncmp(eq - 8, "_API_KEY", 8) == 0)
		return 0;
	if (n >= 6 && strncmp(eq - 6, "_TOKEN", 6) == 0)
		return 0;
	return 1;
}

const struct al_sandbox_backend_ops *al_sandbox_backend_find(const char *name)
{
	if (name == NULL || strcmp(name, "native") == 0)
		return &al_sandbox_native_ops;
	if (strcmp(name, "bwrap") == 0)
		return &al_sandbox_bwrap_ops;
	return NULL;
}

static char **copy_list(const char *const *v, size_t n, int *rc)
{
	char **out = al_calloc(n + 1, sizeof(char *));

	if (out == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	/* Stops at the first failure so the list stays NULL-terminated for free_list. */
	for (size_t i = 0; i < n; i++)
		if ((out[i] = al_strdup(v[i])) == NULL) {
			*rc = -ENOMEM;
			break;
		}
	return out;
}

static void free_list(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i]; i++)
		al_free(v[i]);
	al_free(v);
}

/* Absolute, no "." or ".." components, not "/" itself. */
static int path_ok(const char *p)
{
	if (p == NULL || p[0] != '/' || p[1] == '\0')
		return 0;
	for (const char *s = p; *s; s++)
		if (s[0] == '/' && s[1] == '.' &&
		    (s[2] == '/' || s[2] == '\0' || (s[2] == '.' && (s[3] == '/' || s[3] == '\0'))))
			return 0;
	return 1;
}

/* Points every common proxy variable at the in-sandbox forwarder. */
static int add_proxy_env(struct al_sandbox *sb, size_t n)
{
	static const char *const names[] = {"HTTP_PROXY",  "HTTPS_PROXY", "http_proxy",
					    "https_proxy", "ALL_PROXY",	  "all_proxy"};
	size_t k = sizeof(names) / sizeof(names[0]);
	char **env = al_realloc(sb->env, (n + k + 3) * sizeof(char *));
	char v[128];

	if (env == NULL)
		return -ENOMEM;
	sb->env = env;
	for (size_t i = 0; i < k + 2; i++) {
		if (i < k)
			snprintf(v, sizeof(v), "%s=http://127.0.0.1:%d", names[i],
				 AL_SANDBOX_PROXY_PORT);
		else
			snprintf(v, sizeof(v), "%s=localhost,127.0.0.1,::1",
				 i == k ? "NO_PROXY" : "no_proxy");
		env[n] = al_strdup(v);
		if (env[n] == NULL)
			return -ENOMEM; /* env[n] NULL: still terminated for the cleanup */
		env[++n] = NULL;
	}
	sb->policy.n_env = n;
	return 0;
}

static int system_dir(const char *p)
{
	static const char *const dirs[] = {"/usr",  "/etc", "/dev",   "/proc",	"/sys",	   "/bin",
					   "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/tmp",
					   "/run",  "/var", "/boot",  "/root",	"/home"};
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		n--;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (strlen(dirs[i]) == n && strncmp(dirs[i], p, n) == 0)
			return 1;
	return 0;
}

int al_sandbox_base_init(struct al_sandbox *sb, const struct al_sandbox_backend_ops *ops,
			 const struct al_sandbox_policy *p, char *err, size_t errlen)
{
	int rc = 0;

	sb->ops = ops;
	sb->policy = *p;
	/* First, so that base_clear knows whether it is ours to close. */
	sb->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sb->cancel_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return rc;
	}
	if (p->workspace && !path_ok(p->workspace)) {
		snprintf(err, errlen, "workspace must be an absolute path without . or ..");
		return -EINVAL;
	}
	if (p->workspace && system_dir(p->workspace)) {
		/* It would replace the sandbox's own view (or expose all of /tmp, /run...). */
		snprintf(err, errlen,
			 "workspace %s is a system directory; use a directory of its own",
			 p->workspace);
		return -EINVAL;
	}
	if (p->cpu_pct > AL_SANDBOX_MAX_CPU_PCT) {
		/* limits.c writes cpu_pct * 1000 as a quota in microseconds. */
		snprintf(err, errlen, "cpu quota %u%% is over the %u%% maximum", p->cpu_pct,
			 AL_SANDBOX_MAX_CPU_PCT);
		return -EINVAL;
	}
	for (size_t i = 0; i < p->n_ro; i++)
		if (!path_ok(p->ro_paths[i])) {
			snprintf(err, errlen,
				 "read-only path %zu must be absolute, without . or ..", i);
			return -EINVAL;
		}
	for (size_t i = 0; i < p->n_env; i++)
		if (!al_sandbox_env_allowed(p->env[i])) {
			/* Name only up to '=': the value may be a secret. */
			const char *eq = strchr(p->env[i], '=');
			int k = eq ? (int)(eq - p->env[i]) : 0;
			snprintf(err, errlen, "environment variable %.*s may not enter a sandbox",
				 k, p->env[i]);
			return -EPERM;
		}
	if (p->workspace && (sb->workspace = al_strdup(p->workspace)) == NULL)
		rc = -ENOMEM;
	sb->ro_paths = copy_list(p->ro_paths, p->n_ro, &rc);
	sb->env = copy_list(p->env, p->n_env, &rc);
	if (rc == 0 && p->n_egress > 0)
		rc = add_proxy_env(sb, p->n_env);
	sb->egress = copy_list(p->egress_allow, p->n_egress, &rc);
	if (rc < 0) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	sb->policy.workspace = sb->workspace;
	sb->policy.ro_paths = (const char *const *)sb->ro_paths;
	sb->policy.env = (const char *const *)sb->env;
	if (p->n_egress == 0)
		sb->policy.n_env = p->n_env;
	sb->policy.egress_allow = (const char *const *)sb->egress;
	for (size_t i = 0; i < sb->policy.n_env; i++)
		if (strncmp(sb->env[i], "PATH=", 5) == 0)
			sb->path_env = sb->env[i] + 5;
	return 0;
}

void al_sandbox_base_clear(struct al_sandbox *sb)
{
	al_sandbox_egress_stop(sb);
	al_shell_free(sb->shell);
	sb->shell = NULL;
	/* ops is set only by base_init, which makes the eventfd right after. */
	if (sb->ops && sb->cancel_fd >= 0)
		close(sb->cancel_fd);
	sb->cancel_fd = -1;
	al_free(sb->workspace);
	free_list(sb->ro_paths);
	/* Environment values may be credentials the operator chose to pass: wipe them. */
	if (sb->env)
		for (size_t i = 0; sb->env[i]; i++) {
			al_free_secret_str(sb->env[i]);
			sb->env[i] = NULL;
		}
	al_free(sb->env);
	free_list(sb->egress);
	sb->workspace = NULL;
	sb->ro_paths = sb->env = sb->egress = NULL;
}

int al_sandbox_new(const struct al_sandbox_backend_ops *ops, const struct al_sandbox_policy *p,
		   struct al_sandbox **out, char *err, size_t errlen)
{
	return ops->create(p, out, err, errlen);
}

int al_sandbox_exec(struct al_sandbox *sb, const char *const *argv,
		    const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res, char *err,
		    size_t errlen)
{
	return sb->ops->exec(sb, argv, o, res, err, errlen);
}

int al_sandbox_shell(struct al_sandbox *sb, const char *command,
		     const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res, char *err,
		     size_t errlen)
{
	return sb->ops->shell(sb, command, o, res, err, errlen);
}

void al_sandbox_free(struct al_sandbox *sb)
{
	if (sb)
		sb->ops->destroy(sb);
}

static void stream_clear(struct al_sandbox_stream *s)
{
	al_free(s->head);
	al_free(s->tail);
	memset(s, 0, sizeof(*s));
}

void al_sandbox_result_clear(struct al_sandbox_result *r)
{
	stream_clear(&r->out);
	stream_clear(&r->err);
	memset(r, 0, sizeof(*r));
}

int al_sandbox_result_status(const struct al_sandbox_result *r)
{
	if (r->timed_out)
		return 124;
	if (r->signal)
		return 128 + r->signal;
	return r->exit_code;
}

void al_sandbox_result_stamp(const struct al_sandbox *sb, struct al_sandbox_result *res)
{
	res->backend = sb->ops->name;
	res->landlock_abi = sb->landlock_abi;
	res->seccomp = sb->seccomp;
	res->limits = sb->limits;
}

int al_sandbox_generic_exec(struct al_sandbox *sb, const char *const *argv,
			    const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res,
			    char *err, size_t errlen)
{
	struct al_output cap[2];
	struct al_sandbox_proc *proc = NULL;
	struct al_sandbox_status st;
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, nul = -1, rc = 0, reaped = 0, killed = 0;
	unsigned timeout = o && o->timeout_ms ? o->timeout_ms : sb->policy.timeout_ms;
	size_t limit = o && o->output_limit ? o->output_limit : sb->policy.output_limit;
	double t0 = al_sandbox_now_ms(), deadline, drain_until = 0, kill_at = 0;
	char buf[65536];

	memset(res, 0, sizeof(*res));
	memset(cap, 0, sizeof(cap));
	memset(&st, 0, sizeof(st));
	if (argv == NULL || argv[0] == NULL) {
		snprintf(err, errlen, "empty command");
		return -EINVAL;
	}
	if (al_sandbox_is_cancelled(sb)) {
		snprintf(err, errlen, "cancelled");
		return -ECANCELED;
	}
	if ((rc = al_output_init(&cap[0], limit)) < 0 ||
	    (rc = al_output_init(&cap[1], limit)) < 0) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 ||
	    (nul = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto done;
	}
	struct al_sandbox_spawn s = {argv, o ? o->cwd : NULL, nul, po[1], pe[1]};
	if ((rc = sb->ops->spawn(sb, &s, &proc, err, errlen)) < 0)
		goto done;
	close(po[1]);
	close(pe[1]);
	close(nul);
	po[1] = pe[1] = nul = -1;
	/* Our read ends never block: we always drain, so the child never waits on us. */
	fcntl(po[0], F_SETFL, O_NONBLOCK);
	fcntl(pe[0], F_SETFL, O_NONBLOCK);
	deadline = timeout ? t0 + timeout : 0;
	while (!reaped || po[0] >= 0 || pe[0] >= 0) {
		struct pollfd pf[4];
		int np = 0, ms = -1, ip[2] = {-1, -1}, iproc = -1;
		double now = al_sandbox_now_ms();

		if (reaped && drain_until && now >= drain_until)
			break; /* a writer outlived the command (bwrap without pid ns kill): stop */
		if (po[0] >= 0) {
			ip[0] = np;
			pf[np++] = (struct pollfd){po[0], POLLIN, 0};
		}
		if (pe[0] >= 0) {
			ip[1] = np;
			pf[np++] = (struct pollfd){pe[0], POLLIN, 0};
		}
		if (!reaped) {
			iproc = np;
			pf[np++] = (struct pollfd){sb->ops->proc_fd(proc), POLLIN, 0};
		}
		if (!reaped && !killed && sb->cancel_fd >= 0)
			pf[np++] = (struct pollfd){sb->cancel_fd, POLLIN, 0};
		if (!reaped && !killed && deadline)
			ms = deadline > now ? (int)(deadline - now) + 1 : 0;
		if (reaped && drain_until)
			ms = (int)(drain_until - now) + 1;
		if (!reaped && killed) {
			/* Killed: the end is due within the grace period (proc_reap bounds it). */
			double left = kill_at + AL_SANDBOX_KILL_GRACE_MS - now;
			ms = left > 0 ? (int)left + 1 : 0;
		}
		int k = poll(pf, (nfds_t)np, ms);
		if (k < 0 && errno != EINTR) {
			rc = -errno;
			snprintf(err, errlen, "poll: %s", strerror(errno));
			goto done;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i == 0 ? &po[0] : &pe[0];
			if (ip[i] < 0 || !(pf[ip[i]].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(*fd, buf, sizeof(buf));
			if (n > 0) {
				if ((rc = al_output_feed(&cap[i], buf, (size_t)n)) < 0)
					goto done;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(*fd);
				*fd = -1;
			}
		}
		if (iproc >= 0 &&
		    ((pf[iproc].revents & (POLLIN | POLLHUP | POLLERR)) ||
		     (killed && al_sandbox_now_ms() >= kill_at + AL_SANDBOX_KILL_GRACE_MS))) {
			rc = sb->ops->proc_reap(proc, &st);
			proc = NULL;
			reaped = 1;
			drain_until = al_sandbox_now_ms() + 2000;
			if (rc == -ETIMEDOUT) {
				snprintf(err, errlen,
					 "the sandbox did not end the killed command within %u ms "
					 "and was destroyed",
					 AL_SANDBOX_KILL_GRACE_MS);
				goto done;
			}
			if (rc < 0 && !killed) {
				snprintf(err, errlen,
					 "the sandbox went away while the command ran");
				goto done;
			}
			rc = 0;
		}
		if (!reaped && !killed && (cancelled || al_sandbox_is_cancelled(sb))) {
			sb->ops->proc_kill(proc);
			killed = 1;
			kill_at = al_sandbox_now_ms();
			res->cancelled = al_sandbox_is_cancelled(sb);
		}
		if (!reaped && !killed && deadline && al_sandbox_now_ms() >= deadline) {
			/* Wall clock exceeded: the backend kills the whole tree, setsid'd ones too.
			 */
			sb->ops->proc_kill(proc);
			killed = 1;
			kill_at = al_sandbox_now_ms();
			res->timed_out = 1;
		}
	}
	res->exit_code = st.exit_code;
	res->signal = st.signal;
	res->rusage = st.rusage;
	if ((rc = al_output_finish(&cap[0], &res->out)) < 0 ||
	    (rc = al_output_finish(&cap[1], &res->err)) < 0) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	res->truncated = res->out.truncated || res->err.truncated;
	res->run_ms = al_sandbox_now_ms() - t0;
	al_sandbox_result_stamp(sb, res);
done:
	if (proc) {
		sb->ops->proc_kill(proc);
		sb->ops->proc_reap(proc, &st);
	}
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	if (nul >= 0)
		close(nul);
	al_output_clear(&cap[0]);
	al_output_clear(&cap[1]);
	if (rc < 0)
		al_sandbox_result_clear(res);
	return rc;
}

/*
 * The filter never changes within a process: compile it once (libseccomp
 * takes about a millisecond) and hand every sandbox its own copy. The cached
 * program lives until exit. A failed compile (out of memory) is not cached.
 */
static pthread_mutex_t seccomp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct al_seccomp_prog seccomp_cache;

static int seccomp_cached(struct al_seccomp_prog *out, char *err, size_t errlen)
{
	int rc = 0;
	size_t n;

	pthread_mutex_lock(&seccomp_lock);
	if (seccomp_cache.filter == NULL &&
	    (rc = al_seccomp_prepare(0, &seccomp_cache, err, errlen)) < 0)
		goto done;
	n = (size_t)seccomp_cache.len * 8; /* sizeof(struct sock_filter) */
	out->filter = al_malloc(n);
	if (out->filter == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto done;
	}
	memcpy(out->filter, seccomp_cache.filter, n);
	out->len = seccomp_cache.len;
done:
	pthread_mutex_unlock(&seccomp_lock);
	return rc;
}

int al_sandbox_confine_prepare(struct al_sandbox *sb, struct al_seccomp_prog *prog, char *err,
			       size_t errlen)
{
	char e1[256] = "", e2[256] = "";
	int rc, abi;

	memset(prog, 0, sizeof(*prog));
	rc = seccomp_cached(prog, e1, sizeof(e1));
	if (rc == -ENOMEM) {
		/* Out of memory is not "seccomp unavailable": never degrade because of it. */
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	sb->seccomp = rc == 0;
	/* Both backends apply it: native in its PID 1, bwrap through its helper (inner.h). */
	abi = al_landlock_abi(e2, sizeof(e2));
	if (abi == -EOPNOTSUPP && e2[0] == '\0')
		snprintf(e2, sizeof(e2), "the %s backend cannot apply Landlock", sb->ops->name);
	sb->landlock_abi = abi > 0 ? abi : 0;
	if ((sb->seccomp && sb->landlock_abi) || (sb->policy.flags & AL_SANDBOX_ALLOW_DEGRADED))
		return 0;
	snprintf(err, errlen, "%s%s%s%s%s; refusing to run without it (degraded mode not allowed)",
		 sb->seccomp ? "" : "seccomp filter unavailable: ", sb->seccomp ? "" : e1,
		 !sb->seccomp && !sb->landlock_abi ? "; " : "",
		 sb->landlock_abi ? "" : "Landlock unavailable: ", sb->landlock_abi ? "" : e2);
	al_seccomp_prog_free(prog);
	return -ENOSYS;
}

/* ------------------------------------------------------------------ */
/* Egress: the host proxy on its own libuv thread.                     */

struct al_sandbox_egress {
	struct al_sandbox *sb;
	al_netpolicy *policy;
	char dir[512], sock[600];
	uv_thread_t tid;
	uv_loop_t loop;
	uv_async_t stop;
	uv_sem_t ready;
	al_egress *proxy;
	uid_t uid;
	gid_t gid;
	int started, rc;
	char err[256];
};

static void egress_decision_cb(const struct al_egress_decision *d, void *data)
{
	struct al_sandbox_egress *eg = data;
	if (eg->sb->policy.egress_cb)
		eg->sb->policy.egress_cb(d, eg->sb->policy.egress_cb_data);
}

static void egress_stop_cb(uv_async_t *a)
{
	struct al_sandbox_egress *eg = a->data;
	if (eg->proxy)
		al_egress_stop(eg->proxy);
	eg->proxy = NULL;
	uv_close((uv_handle_t *)a, NULL);
}

static void egress_thread(void *arg)
{
	struct al_sandbox_egress *eg = arg;
	struct al_egress_config cfg = {0};

	cfg.socket_path = eg->sock;
	cfg.policy = eg->policy;
	cfg.decision_cb = egress_decision_cb;
	cfg.cb_data = eg;
	cfg.socks5 = 1;
	cfg.socket_uid = eg->uid;
	cfg.socket_gid = eg->gid;
	eg->rc = al_egress_start(&eg->loop, &cfg, &eg->proxy, eg->err, sizeof(eg->err));
	uv_sem_post(&eg->ready);
	if (eg->rc < 0)
		uv_close((uv_handle_t *)&eg->stop, NULL);
	uv_run(&eg->loop, UV_RUN_DEFAULT);
}

int al_sandbox_egress_prepare(struct al_sandbox *sb, char *err, size_t errlen)
{
	struct al_sandbox_egress *eg;
	int rc;

	if (sb->policy.n_egress == 0)
		return 0;
	eg = al_calloc(1, sizeof(*eg));
	if (eg == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	eg->sb = sb;
	sb->egress_proxy = eg;
	if ((eg->policy = al_netpolicy_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < sb->policy.n_egress; i++) {
		char e[200] = "";
		if ((rc = al_netpolicy_allow_host(eg->policy, sb->egress[i], e, sizeof(e))) < 0) {
			snprintf(err, errlen, "egress rule %zu: %s", i + 1, e);
			return rc;
		}
	}
	const char *tmp = getenv("TMPDIR");
	if ((rc = al_egress_private_dir(tmp && tmp[0] == '/' ? tmp : "/tmp", eg->dir,
					sizeof(eg->dir))) < 0) {
		snprintf(err, errlen, "egress socket directory: %s", strerror(-rc));
		return rc;
	}
	snprintf(eg->sock, sizeof(eg->sock), "%s/egress.sock", eg->dir);
	return 0;
}

int al_sandbox_egress_start(struct al_sandbox *sb, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct al_sandbox_egress *eg = sb->egress_proxy;
	int rc;

	if (eg == NULL)
		return 0;
	eg->uid = uid;
	eg->gid = gid;
	if ((rc = uv_loop_init(&eg->loop)) < 0 || (rc = uv_sem_init(&eg->ready, 0)) < 0) {
		snprintf(err, errlen, "egress: %s", uv_strerror(rc));
		return -EIO;
	}
	uv_async_init(&eg->loop, &eg->stop, egress_stop_cb);
	eg->stop.data = eg;
	if ((rc = uv_thread_create(&eg->tid, egress_thread, eg)) < 0) {
		snprintf(err, errlen, "egress thread: %s", uv_strerror(rc));
		uv_close((uv_handle_t *)&eg->stop, NULL);
		uv_run(&eg->loop, UV_RUN_DEFAULT);
		uv_loop_close(&eg->loop);
		uv_sem_destroy(&eg->ready);
		return -EIO;
	}
	eg->started = 1;
	uv_sem_wait(&eg->ready);
	if (eg->rc < 0) {
		snprintf(err, errlen, "egress proxy: %s", eg->err);
		return eg->rc;
	}
	return 0;
}

const char *al_sandbox_egress_socket(const struct al_sandbox *sb)
{
	return sb->egress_proxy ? sb->egress_proxy->sock : NULL;
}

void al_sandbox_egress_stop(struct al_sandbox *sb)
{
	struct al_sandbox_egress *eg = sb->egress_proxy;

	if (eg == NULL)
		return;
	if (eg->started) {
		if (eg->rc == 0)
			uv_async_send(&eg->stop);
		uv_thread_join(&eg->tid);
		uv_loop_close(&eg->loop);
		uv_sem_destroy(&eg->ready);
	}
	if (eg->dir[0]) {
		unlink(eg->sock);
		rmdir(eg->dir);
	}
	al_netpolicy_free(eg->policy);
	al_free(eg);
	sb->egress_proxy = NULL;
}
