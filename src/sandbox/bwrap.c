/*
 * bwrap.c - the bubblewrap backend: every spawn is one /usr/bin/bwrap run
 * with the same view of the filesystem as the native backend.
 *
 * bwrap builds the namespaces and mounts and loads our seccomp filter; it
 * then runs airlock's own executable, bound read-only at AL_INNER_EXE, as
 * `sandbox inner` (inner.h), which applies Landlock, starts the egress
 * forwarder, reports the mechanisms in force on a pipe (spawn waits for that
 * report) and execs the command. The host side of egress is the same proxy
 * thread as native's.
 *
 * Differences from native, all recorded in docs: one pid namespace per
 * command (not per session), so background processes never outlive their
 * command; bwrap reports a signalled child as exit 128+N, so a command that
 * itself exits with 129..192 is read as a signal; as root we drop to uid
 * 65534 before running bwrap so it builds an unprivileged user namespace
 * (bwrap as root would otherwise keep host uid 0 inside), so every path bwrap
 * binds (workspace, executable, egress socket) must be reachable by 65534.
 */
#include "sandbox/inner.h"
#include "sandbox/limits.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BWRAP	   "/usr/bin/bwrap"
#define NOBODY	   65534
#define FD_PASSWD  10
#define FD_GROUP   11
#define FD_SECCOMP 12
#define FD_REPORT  13
/* Generous: bwrap's setup is milliseconds, but a loaded host may stall it. */
#define REPORT_TIMEOUT_MS 30000

struct bw {
	struct al_sandbox base;
	struct al_cgroup *cg;
	struct al_limits limits;
	int disable_userns;
	uid_t uid;
	gid_t gid;
	int host_root;
	struct al_seccomp_prog prog; /* handed to bwrap as BPF on every spawn */
	char *exe;		     /* owned: our executable on the host, bound at AL_INNER_EXE */
	int landlock_want;	     /* the ABI negotiated at create; 0: degraded, no rules */
};

struct al_sandbox_proc {
	pid_t pid;
	int pidfd;
};

static int help_has(const char *opt)
{
	int p[2], found = 0;
	char buf[16384];
	size_t len = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return 0;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		execl(BWRAP, "bwrap", "--help", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1)
			break;
	}
	buf[len] = '\0';
	close(p[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	found = strstr(buf, opt) != NULL;
	return found;
}

/* Asked once per process: running `bwrap --help` costs a fork and an exec. */
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probe_disable_userns;

static void probe_bwrap(void)
{
	probe_disable_userns = help_has("--disable-userns");
}

static int disable_userns_supported(void)
{
	pthread_once(&probe_once, probe_bwrap);
	return probe_disable_userns;
}

static void bw_destroy(struct al_sandbox *sb)
{
	struct bw *b = (struct bw *)sb;

	if (b == NULL)
		return;
	al_limits_cgroup_free(b->cg);
	al_seccomp_prog_free(&b->prog);
	al_free(b->exe);
	al_sandbox_base_clear(&b->base);
	al_free(b);
}

/*
 * 1 when uid/gid can reach path (X_OK, or F_OK when !exec): as root, bwrap
 * runs as 65534 and resolves every bind source as that id. A fork so that
 * our own ids never change (other threads may run); async-signal-safe only.
 */
static int reachable_as(uid_t uid, gid_t gid, const char *path, int exec)
{
	int st = 0;
	pid_t pid = fork();

	if (pid < 0)
		return 0;
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(1);
		_exit(access(path, exec ? X_OK : F_OK) == 0 ? 0 : 1);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Our own executable, as the host sees it: bwrap binds it as the inner helper. */
static int resolve_exe(struct bw *b, char *err, size_t errlen)
{
	char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

	if (n <= 0) {
		snprintf(err, errlen, "cannot resolve /proc/self/exe: %s", strerror(errno));
		return -EIO;
	}
	path[n] = '\0';
	if (n > 10 && strcmp(path + n - 10, " (deleted)") == 0) {
		snprintf(err, errlen,
			 "the running executable was replaced on disk (%s); restart it so the "
			 "bwrap backend can bind it into the sandbox",
			 path);
		return -ESTALE;
	}
	if (b->host_root && !reachable_as(b->uid, b->gid, path, 1)) {
		snprintf(err, errlen,
			 "%s is not executable by uid %u, which bwrap runs as; make its "
			 "directories traversable (o+x)",
			 path, (unsigned)b->uid);
		return -EACCES;
	}
	if ((b->exe = al_strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/*
 * The host proxy, as native starts it. As root, bwrap (uid 65534) must reach
 * the socket through its private directory: the directory becomes 0711
 * (traversable, not listable, not writable), so no host process can replace
 * the socket; the socket itself already belongs to 65534 with mode 0600.
 */
static int start_egress(struct bw *b, char *err, size_t errlen)
{
	const char *sock;
	char dir[PATH_MAX];
	int rc;

	if (b->base.policy.n_egress == 0)
		return 0;
	if ((rc = al_sandbox_egress_prepare(&b->base, err, errlen)) < 0 ||
	    (rc = al_sandbox_egress_start(&b->base, b->uid, b->gid, err, errlen)) < 0)
		return rc;
	sock = al_sandbox_egress_socket(&b->base);
	if (b->host_root) {
		const char *slash = strrchr(sock, '/');
		size_t k = slash ? (size_t)(slash - sock) : 0;
		if (k == 0 || k >= sizeof(dir)) {
			snprintf(err, errlen, "egress socket path %s", sock);
			return -EINVAL;
		}
		memcpy(dir, sock, k);
		dir[k] = '\0';
		if (chmod(dir, 0711) < 0) {
			rc = -errno;
			snprintf(err, errlen, "chmod %s: %s", dir, strerror(errno));
			return rc;
		}
		if (!reachable_as(b->uid, b->gid, sock, 0)) {
			snprintf(err, errlen, "the egress socket %s is not reachable by uid %u",
				 sock, (unsigned)b->uid);
			return -EACCES;
		}
	}
	return 0;
}

static int bw_create(const struct al_sandbox_policy *p, struct al_sandbox **out, char *err,
		     size_t errlen)
{
	struct bw *b = NULL;
	double t0 = al_sandbox_now_ms();
	int rc;

	*out = NULL;
	if (access(BWRAP, X_OK) < 0) {
		snprintf(err, errlen,
			 "bubblewrap is not installed (%s missing: apt install bubblewrap)", BWRAP);
		return -ENOENT;
	}
	if ((rc = al_sandbox_probe_userns(err, errlen)) < 0)
		return rc;
	b = al_calloc(1, sizeof(*b));
	if (b == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((rc = al_sandbox_base_init(&b->base, &al_sandbox_bwrap_ops, p, err, errlen)) < 0)
		goto fail;
	if (p->workspace == NULL) {
		rc = -EINVAL;
		snprintf(err, errlen, "the bwrap backend needs a workspace directory");
		goto fail;
	}
	b->host_root = geteuid() == 0;
	b->uid = b->host_root ? NOBODY : geteuid();
	b->gid = b->host_root ? NOBODY : getegid();
	if ((rc = al_sandbox_confine_prepare(&b->base, &b->prog, err, errlen)) < 0)
		goto fail;
	b->landlock_want = b->base.landlock_abi;
	if ((rc = resolve_exe(b, err, errlen)) < 0)
		goto fail;
	b->disable_userns = disable_userns_supported();
	if (!b->disable_userns && !(p->flags & AL_SANDBOX_ALLOW_DEGRADED)) {
		rc = -ENOSYS;
		snprintf(err, errlen, "this bubblewrap lacks --disable-userns (needs >= 0.8)");
		goto fail;
	}
	b->limits.memory_mb = p->memory_mb;
	b->limits.pids = p->pids;
	b->limits.cpu_pct = p->cpu_pct;
	b->limits.fsize_max = p->fsize_max;
	if ((rc = al_limits_cgroup_new(&b->limits, &b->cg, &b->base.limits, err, errlen)) < 0)
		goto fail;
	if ((rc = start_egress(b, err, errlen)) < 0)
		goto fail;
	b->base.setup_ms = al_sandbox_now_ms() - t0;
	*out = &b->base;
	return 0;
fail:
	bw_destroy(&b->base);
	return rc;
}

/* argv for bwrap; strings borrowed from sb/s except the numbers in `nums`. */
struct argv_b {
	const char **v;
	size_t n, cap;
	int oom;
};

static void add(struct argv_b *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 128;
		const char **nv = al_realloc(a->v, nc * sizeof(*nv));
		if (nv == NULL) {
			a->oom = 1;
			return;
		}
		a->v = nv;
		a->cap = nc;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void add_system(struct argv_b *a, const char *path, char *linkbuf, size_t linklen)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(path, linkbuf, linklen - 1);
		if (n <= 0)
			return;
		linkbuf[n] = '\0';
		add(a, "--symlink");
		add(a, linkbuf);
		add(a, path);
		return;
	}
	add(a, "--ro-bind");
	add(a, path);
	add(a, path);
}

static int memfd_with(const char *name, const char *content)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	size_t n = strlen(content);

	if (fd < 0)
		return -errno;
	if (write(fd, content, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static int bw_spawn(struct al_sandbox *sb, const struct al_sandbox_spawn *s,
		    struct al_sandbox_proc **out, char *err, size_t errlen)
{
	static const char *const sys[] = {"/usr",   "/bin",   "/sbin",	"/lib",
					  "/lib32", "/lib64", "/libx32"};
	static const char *const etc[] = {
	    "/etc/ld.so.cache", "/etc/ld.so.conf",	"/etc/ld.so.conf.d",  "/etc/alternatives",
	    "/etc/ssl",		"/etc/ca-certificates", "/etc/nsswitch.conf", "/etc/localtime",
	    "/etc/os-release",	"/etc/debian_version",	"/etc/mime.types",    "/etc/protocols",
	    "/etc/services"};
	struct bw *b = (struct bw *)sb;
	struct argv_b a = {0};
	struct al_sandbox_proc *p = NULL;
	char links[16][256], tmpsize[32], gitdir[4096], hooks[4096], config[4096], pw[512], gr[256];
	char **envbufs = NULL, asbuf[32], fwdbuf[64];
	int fpw = -1, fgr = -1, fsc = -1, rc = 0, pidfd = -1, rp[2] = {-1, -1};
	struct al_inner_report rep;
	pid_t pid = -1;
	size_t nl = 0;
	const char *cwd = s->cwd ? s->cwd : sb->workspace;

	*out = NULL;
	p = al_calloc(1, sizeof(*p));
	envbufs = al_calloc(sb->policy.n_env + 1, sizeof(char *));
	if (p == NULL || envbufs == NULL) {
		rc = -ENOMEM;
		goto oom;
	}
	add(&a, "bwrap");
	add(&a, "--unshare-all"); /* user (when unprivileged), ipc, pid, net, uts, cgroup */
	add(&a, "--unshare-user");
	if (b->disable_userns)
		add(&a, "--disable-userns");
	add(&a, "--die-with-parent");
	add(&a, "--new-session");
	add(&a, "--hostname");
	add(&a, "sandbox");
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		add_system(&a, sys[i], links[nl++], sizeof(links[0]));
	for (size_t i = 0; i < sizeof(etc) / sizeof(etc[0]); i++) {
		struct stat st;
		if (lstat(etc[i], &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode) && nl < 16) {
			add_system(&a, etc[i], links[nl++], sizeof(links[0]));
			continue;
		}
		add(&a, "--ro-bind");
		add(&a, etc[i]);
		add(&a, etc[i]);
	}
	snprintf(
	    pw, sizeof(pw),
	    "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n%s:x:%u:%u:sandbox:/tmp:/bin/sh\n",
	    b->uid == NOBODY ? "nobody" : "sandbox", (unsigned)b->uid, (unsigned)b->gid);
	snprintf(gr, sizeof(gr), "root:x:0:\n%s:x:%u:\n", b->gid == NOBODY ? "nogroup" : "sandbox",
		 (unsigned)b->gid);
	if ((fpw = memfd_with("passwd", pw)) < 0 || (fgr = memfd_with("group", gr)) < 0) {
		rc = -EIO;
		snprintf(err, errlen, "memfd_create failed");
		goto fail;
	}
	add(&a, "--ro-bind-data");
	add(&a, "10");
	add(&a, "/etc/passwd");
	add(&a, "--ro-bind-data");
	add(&a, "11");
	add(&a, "/etc/group");
	add(&a, "--dev");
	add(&a, "/dev");
	add(&a, "--proc");
	add(&a, "/proc");
	snprintf(tmpsize, sizeof(tmpsize), "%llu",
		 (unsigned long long)(sb->policy.tmp_mb ? sb->policy.tmp_mb : 64) << 20);
	/* bwrap's --dev leaves /dev/shm on the uncapped /dev tmpfs: cap it like /tmp. */
	add(&a, "--size");
	add(&a, tmpsize);
	add(&a, "--tmpfs");
	add(&a, "/dev/shm");
	add(&a, "--size");
	add(&a, tmpsize);
	add(&a, "--tmpfs");
	add(&a, "/tmp");
	add(&a, "--bind");
	add(&a, sb->workspace);
	add(&a, sb->workspace);
	/*
	 * `.git` bound onto itself so it is a mount point: it cannot be renamed
	 * away and replaced by a `.git` with hooks of the sandbox's making.
	 */
	snprintf(gitdir, sizeof(gitdir), "%s/.git", sb->workspace);
	snprintf(hooks, sizeof(hooks), "%s/.git/hooks", sb->workspace);
	snprintf(config, sizeof(config), "%s/.git/config", sb->workspace);
	{
		/*
		 * bwrap follows symlinks in bind sources and destinations, and the
		 * workspace is the sandbox's: a command could plant `.git` (or,
		 * in a `.git` it created, `hooks`/`config`) as a symlink that the
		 * next command's bwrap would resolve on the host. As native's
		 * protect_git: only real directories and files are bound.
		 */
		struct stat gs, hs, cs;
		int gdir = lstat(gitdir, &gs) == 0 && S_ISDIR(gs.st_mode);
		if (gdir) {
			add(&a, "--bind-try");
			add(&a, gitdir);
			add(&a, gitdir);
			/* A repository without hooks gets an empty hooks directory to protect. */
			if (mkdir(hooks, 0755) == 0)
				(void)!lchown(hooks, gs.st_uid, gs.st_gid);
		}
		if (gdir && lstat(hooks, &hs) == 0 && !S_ISLNK(hs.st_mode)) {
			add(&a, "--ro-bind-try");
			add(&a, hooks);
			add(&a, hooks);
		}
		if (gdir && lstat(config, &cs) == 0 && !S_ISLNK(cs.st_mode)) {
			add(&a, "--ro-bind-try");
			add(&a, config);
			add(&a, config);
		}
	}
	for (size_t i = 0; i < sb->policy.n_ro; i++) {
		add(&a, "--ro-bind");
		add(&a, sb->ro_paths[i]);
		add(&a, sb->ro_paths[i]);
	}
	/* The helper: our own executable, read-only, at a fixed path. */
	add(&a, "--ro-bind");
	add(&a, b->exe);
	add(&a, AL_INNER_EXE);
	if (al_sandbox_egress_socket(sb)) {
		/* Read-only mount: connect() still works, replacing the socket does not. */
		add(&a, "--ro-bind");
		add(&a, al_sandbox_egress_socket(sb));
		add(&a, AL_SANDBOX_EGRESS_SOCK);
	}
	/* The root tmpfs itself (and so /etc, /) read-only, as in the native backend. */
	add(&a, "--remount-ro");
	add(&a, "/");
	add(&a, "--clearenv");
	for (size_t i = 0; i < sb->policy.n_env; i++) {
		const char *eq = strchr(sb->env[i], '=');
		envbufs[i] = al_strndup(sb->env[i], (size_t)(eq - sb->env[i]));
		if (envbufs[i] == NULL) {
			rc = -ENOMEM;
			goto oom;
		}
		add(&a, "--setenv");
		add(&a, envbufs[i]);
		add(&a, eq + 1);
	}
	/* Last, so no policy entry can override it; the helper removes it before the exec. */
	add(&a, "--setenv");
	add(&a, AL_INNER_ENV);
	add(&a, "1");
	if (b->prog.filter) {
		/* The same filter as native, as classic BPF (8 bytes per instruction). */
		fsc = memfd_create("seccomp", MFD_CLOEXEC);
		size_t blen = (size_t)b->prog.len * 8;
		if (fsc < 0 || write(fsc, b->prog.filter, blen) != (ssize_t)blen ||
		    lseek(fsc, 0, SEEK_SET) < 0) {
			rc = -EIO;
			snprintf(err, errlen, "cannot pass the seccomp filter to bwrap");
			goto fail;
		}
		add(&a, "--seccomp");
		add(&a, "12");
	}
	add(&a, "--chdir");
	add(&a, cwd);
	add(&a, "--");
	add(&a, AL_INNER_EXE);
	add(&a, "sandbox");
	add(&a, "inner");
	add(&a, "--report-fd");
	add(&a, "13");
	if (b->landlock_want > 0) {
		/* Native's rules (init.c confine): reads from /, writes to these four. */
		add(&a, "--landlock-ro");
		add(&a, "/");
		for (size_t i = 0; i < sb->policy.n_ro; i++) {
			add(&a, "--landlock-ro");
			add(&a, sb->ro_paths[i]);
		}
		add(&a, "--landlock-rw");
		add(&a, sb->workspace);
		add(&a, "--landlock-rw");
		add(&a, "/tmp");
		add(&a, "--landlock-rw");
		add(&a, "/dev");
		add(&a, "--landlock-rw");
		add(&a, "/proc");
	}
	if (al_sandbox_egress_socket(sb)) {
		snprintf(fwdbuf, sizeof(fwdbuf), "%d:%s", AL_SANDBOX_PROXY_PORT,
			 AL_SANDBOX_EGRESS_SOCK);
		add(&a, "--forward");
		add(&a, fwdbuf);
	}
	if (sb->limits == AL_LIMITS_RLIMIT && b->limits.memory_mb) {
		snprintf(asbuf, sizeof(asbuf), "%llu",
			 (unsigned long long)b->limits.memory_mb << 20);
		add(&a, "--rlimit-as");
		add(&a, asbuf);
	}
	add(&a, "--");
	for (size_t i = 0; s->argv[i]; i++)
		add(&a, s->argv[i]);
	if (a.oom) {
		rc = -ENOMEM;
		goto oom;
	}
	if (pipe2(rp, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	pid = (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_PIDFD | SIGCHLD), NULL, &pidfd, NULL,
			     0);
	if (pid < 0) {
		rc = -errno;
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		static char *const noenv[] = {NULL};
		if (al_limits_cgroup_attach(b->cg, 0) < 0)
			_exit(125);
		if (b->host_root &&
		    (setgroups(0, NULL) < 0 || setresgid(b->gid, b->gid, b->gid) < 0 ||
		     setresuid(b->uid, b->uid, b->uid) < 0))
			_exit(125);
		/* After the id change: a credential change clears the parent-death signal. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		/* RLIMIT_AS is the helper's to set (--rlimit-as): bwrap needs none of it. */
		struct al_limits lim = b->limits;
		lim.memory_mb = 0;
		if (al_limits_apply_rlimits(&lim, b->base.limits) < 0)
			_exit(125);
		/* Out of the way first: a source fd may sit on another's target number. */
		int src[7] = {s->stdin_fd, s->stdout_fd, s->stderr_fd, fpw, fgr, fsc, rp[1]};
		static const int dst[7] = {0, 1, 2, FD_PASSWD, FD_GROUP, FD_SECCOMP, FD_REPORT};
		for (int i = 0; i < 7; i++)
			if (src[i] >= 0 && (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 100)) < 0)
				_exit(125);
		for (int i = 0; i < 7; i++)
			if (src[i] >= 0 && dup2(src[i], dst[i]) < 0)
				_exit(125);
		syscall(SYS_close_range, 3, FD_PASSWD - 1, 0);
		if (fsc < 0)
			close(FD_SECCOMP);
		syscall(SYS_close_range, FD_REPORT + 1, ~0U, 0);
		execve(BWRAP, (char *const *)a.v, noenv);
		_exit(125);
	}
	close(rp[1]);
	rp[1] = -1;
	/*
	 * Wait for the helper's report: it comes just before the command's exec,
	 * with the Landlock ABI and seccomp mode in force. No report means bwrap
	 * or the helper failed first (their message is on the command's stderr).
	 */
	rc = al_sandbox_inner_read_report(rp[0], REPORT_TIMEOUT_MS, &rep);
	if (rc == 0 && rep.status != 0) {
		rc = rep.status < 0 ? rep.status : -EIO;
		snprintf(err, errlen, "sandbox setup failed: %s", rep.msg);
		goto fail;
	}
	if (rc < 0) {
		snprintf(err, errlen, "bwrap could not set up the sandbox (%s)",
			 rc == -ETIMEDOUT ? "no report from the helper in time"
					  : "it exited before the command started");
		goto fail;
	}
	if ((b->prog.filter && !rep.seccomp) || (b->landlock_want > 0 && rep.landlock_abi < 1)) {
		rc = -EIO;
		snprintf(err, errlen, "sandbox setup failed: %s not in force inside bwrap",
			 rep.seccomp ? "Landlock" : "seccomp");
		goto fail;
	}
	/* What is actually in force, as the helper found it. */
	sb->landlock_abi = rep.landlock_abi;
	sb->seccomp = rep.seccomp;
	p->pid = pid;
	p->pidfd = pidfd;
	pid = -1;
	pidfd = -1;
	*out = p;
	p = NULL;
	goto done;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	if (pid > 0) {
		/* bwrap's PID 1 dies with it (--die-with-parent): nothing is left behind. */
		if (pidfd >= 0)
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		else
			kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (pidfd >= 0)
		close(pidfd);
done:
	for (int i = 0; i < 2; i++)
		if (rp[i] >= 0)
			close(rp[i]);
	if (fpw >= 0)
		close(fpw);
	if (fgr >= 0)
		close(fgr);
	if (fsc >= 0)
		close(fsc);
	if (envbufs) {
		for (size_t i = 0; i < sb->policy.n_env; i++)
			al_free(envbufs[i]);
		al_free(envbufs);
	}
	al_free(a.v);
	al_free(p);
	return rc;
}

static int bw_proc_fd(struct al_sandbox_proc *p)
{
	return p->pidfd;
}

static int bw_proc_kill(struct al_sandbox_proc *p)
{
	/* bwrap's PID 1 has PDEATHSIG (--die-with-parent): its namespace dies with it. */
	return syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0) < 0 ? -errno : 0;
}

static int bw_proc_reap(struct al_sandbox_proc *p, struct al_sandbox_status *st)
{
	int ws = 0, rc = 0;

	memset(st, 0, sizeof(*st));
	while (wait4(p->pid, &ws, 0, &st->rusage) < 0) {
		if (errno != EINTR) {
			rc = -errno;
			goto done;
		}
	}
	if (WIFSIGNALED(ws)) {
		st->signal = WTERMSIG(ws);
	} else {
		int code = WEXITSTATUS(ws);
		/* bwrap folds a signalled child into 128+N. */
		if (code > 128 && code <= 128 + 64)
			st->signal = code - 128;
		else
			st->exit_code = code;
	}
done:
	close(p->pidfd);
	al_free(p);
	return rc;
}

const struct al_sandbox_backend_ops al_sandbox_bwrap_ops = {
    .name = "bwrap",
    .create = bw_create,
    .exec = al_sandbox_generic_exec,
    .shell = al_sandbox_generic_shell,
    .destroy = bw_destroy,
    .spawn = bw_spawn,
    .proc_fd = bw_proc_fd,
    .proc_kill = bw_proc_kill,
    .proc_reap = bw_proc_reap,
};
