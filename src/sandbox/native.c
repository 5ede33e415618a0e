/*
 * native.c - the native backend, host side: probe, clone into new
 * namespaces, write the id maps, join the cgroups, then talk to our PID 1
 * (init.c) over a SOCK_SEQPACKET socket.
 */
#include "sandbox/init.h"
#include "sandbox/limits.h"
#include "sandbox/sandbox.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534

struct native {
	struct al_sandbox base; /* first: sandbox.c sees only this */
	pid_t pid;		/* our PID 1, as the host sees it */
	int pidfd, ctl;
	struct al_cgroup *cg;
	struct al_seccomp_prog prog; /* compiled once, loaded by every command child */
};

struct al_sandbox_proc {
	int fd;		  /* host end of the request's result socket */
	struct native *n; /* borrowed: the sandbox outlives its processes */
	double kill_ms;	  /* when proc_kill was first called; 0: not killed */
};

static int read_int_file(const char *path, long *v)
{
	char b[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	b[n] = '\0';
	*v = strtol(b, NULL, 10);
	return 0;
}

/* Refuses, naming what is missing, when user namespaces cannot work here. */
int al_sandbox_probe_userns(char *err, size_t errlen)
{
	long v;

	if (read_int_file("/proc/sys/user/max_user_namespaces", &v) == 0 && v == 0) {
		snprintf(err, errlen, "user namespaces are disabled: user.max_user_namespaces=0");
		return -EPERM;
	}
	if (geteuid() != 0 &&
	    read_int_file("/proc/sys/kernel/unprivileged_userns_clone", &v) == 0 && v == 0) {
		snprintf(err, errlen,
			 "user namespaces are disabled: kernel.unprivileged_userns_clone=0");
		return -EPERM;
	}
	if (geteuid() != 0 &&
	    read_int_file("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", &v) == 0 &&
	    v == 1) {
		snprintf(err, errlen,
			 "user namespaces are restricted by AppArmor: "
			 "kernel.apparmor_restrict_unprivileged_userns=1");
		return -EPERM;
	}
	return 0;
}

static int write_file(pid_t pid, const char *name, const char *s)
{
	char path[64];
	int fd, rc = 0;
	size_t n = strlen(s);

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, s, n) != (ssize_t)n)
		rc = -errno;
	close(fd);
	return rc;
}

static void native_destroy(struct al_sandbox *sb);

static void sweep_once(void)
{
	(void)al_sandbox_sweep_stale();
}

static int native_create(const struct al_sandbox_policy *p, struct al_sandbox **out, char *err,
			 size_t errlen)
{
	struct native *n = NULL;
	struct al_init_config cfg;
	struct al_init_hello hello;
	int sv[2] = {-1, -1}, sync[2] = {-1, -1}, rc, pidfd = -1;
	double t0 = al_sandbox_now_ms();
	char map[64];

	*out = NULL;
	if ((rc = al_sandbox_probe_userns(err, errlen)) < 0)
		goto fail;
	{
		/* What killed creators left (sandbox.h); once, before our first sandbox. */
		static pthread_once_t swept = PTHREAD_ONCE_INIT;
		pthread_once(&swept, sweep_once);
	}
	n = al_calloc(1, sizeof(*n));
	if (n == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	n->pidfd = n->ctl = -1;
	n->pid = -1;
	if ((rc = al_sandbox_base_init(&n->base, &al_sandbox_native_ops, p, err, errlen)) < 0)
		goto fail;
	if (p->workspace == NULL) {
		rc = -EINVAL;
		snprintf(err, errlen, "the native backend needs a workspace directory");
		goto fail;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.limits.memory_mb = p->memory_mb;
	cfg.limits.pids = p->pids;
	cfg.limits.cpu_pct = p->cpu_pct;
	cfg.limits.fsize_max = p->fsize_max;
	if ((rc = al_sandbox_confine_prepare(&n->base, &n->prog, err, errlen)) < 0)
		goto fail;
	cfg.seccomp = n->prog.filter ? &n->prog : NULL;
	/* Before clone: the egress thread must not exist yet when we fork (see init.h). */
	if ((rc = al_sandbox_egress_prepare(&n->base, err, errlen)) < 0)
		goto fail;
	cfg.egress_sock = al_sandbox_egress_socket(&n->base);
	cfg.landlock_abi = n->base.landlock_abi;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(sync, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	cfg.sb = &n->base;
	cfg.host_root = geteuid() == 0;
	cfg.uid = cfg.host_root ? NOBODY : geteuid();
	cfg.gid = cfg.host_root ? NOBODY : getegid();
	cfg.ctl_fd = sv[1];
	cfg.sync_fd = sync[0];
	/*
	 * Raw clone without a stack behaves like fork (the child runs on a copy of
	 * our stack) and lands directly as PID 1 of the new pid namespace. The
	 * cgroup namespace is unshared by the child once it sits in its cgroup.
	 */
	long pid =
	    syscall(SYS_clone,
		    (unsigned long)(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
				    CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD | SIGCHLD),
		    NULL, &pidfd, NULL, 0);
	if (pid < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create namespaces (clone: %s)%s", strerror(errno),
			 errno == EPERM || errno == ENOSPC ? ": user namespaces unavailable" : "");
		goto fail;
	}
	if (pid == 0)
		al_init_main(&cfg);
	n->pid = (pid_t)pid;
	n->pidfd = pidfd;
	close(sv[1]);
	sv[1] = -1;
	close(sync[0]);
	sync[0] = -1;
	n->ctl = sv[0];
	sv[0] = -1;
	if (!cfg.host_root && (rc = write_file(n->pid, "setgroups", "deny")) < 0) {
		snprintf(err, errlen, "write setgroups: %s", strerror(-rc));
		goto fail;
	}
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)cfg.uid, (unsigned)cfg.uid);
	if ((rc = write_file(n->pid, "uid_map", map)) < 0) {
		snprintf(err, errlen, "write uid_map: %s", strerror(-rc));
		goto fail;
	}
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)cfg.gid, (unsigned)cfg.gid);
	if ((rc = write_file(n->pid, "gid_map", map)) < 0) {
		snprintf(err, errlen, "write gid_map: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = al_sandbox_egress_start(&n->base, cfg.uid, cfg.gid, err, errlen)) < 0)
		goto fail;
	if (write(sync[1], "g", 1) != 1) {
		rc = -errno;
		snprintf(err, errlen, "sandbox init vanished");
		goto fail;
	}
	/*
	 * The cgroup is made while our PID 1 builds its root (it runs nothing
	 * of the sandbox's yet), then PID 1 is moved in and told the mode; it
	 * waits for that byte before it roots its cgroup namespace there, drops
	 * its capabilities and starts anything (init.c, join_cgroup).
	 */
	if ((rc = al_limits_cgroup_new(&cfg.limits, &n->cg, &cfg.mode, err, errlen)) < 0)
		goto fail;
	n->base.limits = cfg.mode;
	if ((rc = al_limits_cgroup_attach(n->cg, n->pid)) < 0) {
		snprintf(err, errlen, "join cgroup: %s", strerror(-rc));
		goto fail;
	}
	{
		unsigned char m = (unsigned char)cfg.mode;
		if (write(sync[1], &m, 1) != 1) {
			rc = -errno;
			snprintf(err, errlen, "sandbox init vanished");
			goto fail;
		}
	}
	close(sync[1]);
	sync[1] = -1;
	{
		struct pollfd pf = {n->ctl, POLLIN, 0};
		ssize_t k = -1;
		if (poll(&pf, 1, 10000) == 1)
			k = recv(n->ctl, &hello, sizeof(hello), 0);
		if (k != (ssize_t)sizeof(hello)) {
			rc = -EIO;
			snprintf(err, errlen, "sandbox init did not start");
			goto fail;
		}
	}
	if (hello.status != 0) {
		rc = hello.status;
		hello.msg[sizeof(hello.msg) - 1] = '\0';
		snprintf(err, errlen, "sandbox setup failed: %s", hello.msg);
		goto fail;
	}
	n->base.seccomp = hello.seccomp;
	n->base.landlock_abi = hello.landlock_abi;
	n->base.setup_ms = al_sandbox_now_ms() - t0;
	*out = &n->base;
	return 0;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (sync[0] >= 0)
		close(sync[0]);
	if (sync[1] >= 0)
		close(sync[1]);
	if (n)
		native_destroy(&n->base);
	return rc;
}

static void native_destroy(struct al_sandbox *sb)
{
	struct native *n = (struct native *)sb;

	if (n == NULL)
		return;
	if (n->ctl >= 0)
		close(n->ctl);
	if (n->pid > 0) {
		/* Killing PID 1 kills every process in its pid namespace. */
		if (n->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, n->pidfd, SIGKILL, NULL, 0);
		else
			kill(n->pid, SIGKILL);
		while (waitpid(n->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (n->pidfd >= 0)
		close(n->pidfd);
	al_limits_cgroup_free(n->cg);
	al_seccomp_prog_free(&n->prog);
	al_sandbox_base_clear(&n->base);
	al_free(n);
}

static int native_spawn(struct al_sandbox *sb, const struct al_sandbox_spawn *s,
			struct al_sandbox_proc **out, char *err, size_t errlen)
{
	struct native *n = (struct native *)sb;
	struct al_sandbox_proc *p = NULL;
	char *msg = NULL;
	size_t len = 0;
	int rs[2] = {-1, -1}, rc = 0;
	const char *cwd = s->cwd ? s->cwd : sb->workspace;

	*out = NULL;
	if (sb->broken) {
		snprintf(err, errlen, "the sandbox was destroyed after it stopped responding");
		return -EPIPE;
	}
	msg = al_malloc(AL_INIT_MSG_MAX);
	p = al_calloc(1, sizeof(*p));
	if (msg == NULL || p == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i == 0 || s->argv[i - 1]; i++) {
		const char *a = i == 0 ? cwd : s->argv[i - 1];
		size_t k = strlen(a) + 1;
		if (len + k >= AL_INIT_MSG_MAX) {
			rc = -E2BIG;
			snprintf(err, errlen, "command line too long");
			goto fail;
		}
		memcpy(msg + len, a, k);
		len += k;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rs) < 0) {
		rc = -errno;
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	{
		int fds[4] = {s->stdin_fd, s->stdout_fd, s->stderr_fd, rs[1]};
		union {
			char b[CMSG_SPACE(sizeof(fds))];
			struct cmsghdr align;
		} u;
		struct iovec iov = {msg, len};
		struct msghdr m = {0};
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = u.b;
		m.msg_controllen = sizeof(u.b);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		if (sendmsg(n->ctl, &m, MSG_NOSIGNAL) != (ssize_t)len) {
			rc = -errno;
			snprintf(err, errlen, "sandbox init is gone: %s", strerror(errno));
			goto fail;
		}
	}
	close(rs[1]);
	p->fd = rs[0];
	p->n = n;
	*out = p;
	al_free(msg);
	return 0;
fail:
	if (rs[0] >= 0)
		close(rs[0]);
	if (rs[1] >= 0)
		close(rs[1]);
	al_free(msg);
	al_free(p);
	return rc;
}

static int native_proc_fd(struct al_sandbox_proc *p)
{
	return p->fd;
}

static int native_proc_kill(struct al_sandbox_proc *p)
{
	if (p->kill_ms == 0)
		p->kill_ms = al_sandbox_now_ms();
	/* The runner kills the command's whole subtree (it is their subreaper). */
	return send(p->fd, "K", 1, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/*
 * The runner did not answer a kill within the grace period: it (or PID 1)
 * is wedged, stopped or starved. Killing PID 1 makes the kernel kill every
 * process of the pid namespace, the stopped ones included, so the result
 * socket ends and nothing of the sandbox's is left; the sandbox is marked
 * broken and refuses further commands (its owner makes a new one).
 */
static void native_kill_all(struct native *n)
{
	__atomic_store_n(&n->base.broken, 1, __ATOMIC_SEQ_CST);
	if (n->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, n->pidfd, SIGKILL, NULL, 0);
	else if (n->pid > 0)
		kill(n->pid, SIGKILL);
	/* Whatever left the namespace's reach (nothing should) dies with the cgroup. */
	al_limits_cgroup_kill(n->cg);
}

static int native_proc_reap(struct al_sandbox_proc *p, struct al_sandbox_status *st)
{
	struct al_init_result r;
	size_t got = 0;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	while (got < sizeof(r)) {
		if (p->kill_ms > 0) {
			/* Killed: the answer is due within the grace period, never later. */
			double left = p->kill_ms + AL_SANDBOX_KILL_GRACE_MS - al_sandbox_now_ms();
			struct pollfd pf = {p->fd, POLLIN, 0};
			int k = poll(&pf, 1, left > 0 ? (int)left + 1 : 0);
			if (k < 0 && errno == EINTR)
				continue;
			if (k == 0) {
				native_kill_all(p->n);
				rc = -ETIMEDOUT;
				st->signal = SIGKILL;
				goto done;
			}
		}
		ssize_t k = recv(p->fd, (char *)&r + got, sizeof(r) - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = -EIO; /* the runner died (the sandbox was destroyed) */
			st->signal = SIGKILL;
			goto done;
		}
		got += (size_t)k;
	}
	st->rusage = r.rusage;
	if (r.exec_errno)
		st->exit_code = r.exec_errno == ENOENT ? 127 : 126;
	else if (WIFSIGNALED(r.wait_status))
		st->signal = WTERMSIG(r.wait_status);
	else
		st->exit_code = WEXITSTATUS(r.wait_status);
done:
	close(p->fd);
	al_free(p);
	return rc;
}

const struct al_sandbox_backend_ops al_sandbox_native_ops = {
    .name = "native",
    .create = native_create,
    .exec = al_sandbox_generic_exec,
    .shell = al_sandbox_generic_shell,
    .destroy = native_destroy,
    .spawn = native_spawn,
    .proc_fd = native_proc_fd,
    .proc_kill = native_proc_kill,
    .proc_reap = native_proc_reap,
};
