/*
 * init.c - PID 1 of a native sandbox: build the root, serve requests, reap.
 *
 * Runs in the child of clone(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|...).
 * No allocation here (see init.h): fixed buffers on the stack or static.
 */
#include "sandbox/init.h"

#include "sandbox/forwarder.h"
#include "sandbox/landlock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define NEWROOT	       "/tmp" /* staging mount point; host paths are reached through fds */
#define MAX_USER_PATHS 64

/* ------------------------------------------------------------------ */
/* Confinement: Landlock then seccomp, in PID 1 once setup is done.    */

/*
 * Landlock then seccomp, applied by PID 1 after pivot_root and after every
 * capability is gone; everything started later inherits both before its
 * execve. Paths are as seen inside the new root. Reads are allowed from "/" down (the new root
 * holds only what we put there; the mounts make it read-only), writes only to the workspace, /tmp,
 * /dev and /proc; TCP is left to the network namespace (loopback only) so local servers work;
 * signals and abstract sockets are scoped (ABI >= 6). Returns 0 or a negative errno (the sandbox
 * then refuses to start).
 */
static int fail(int err, const char *what, const char *arg);

static int confine(const struct al_init_config *c)
{
	static const char *ro[MAX_USER_PATHS + 2];
	static const char *rw[8];
	size_t nro = 0, nrw = 0;
	char err[256];
	int rc;

	if (c->landlock_abi > 0) {
		ro[nro++] = "/";
		for (size_t i = 0; i < c->sb->policy.n_ro && nro < MAX_USER_PATHS + 1; i++)
			ro[nro++] = c->sb->ro_paths[i];
		rw[nrw++] = c->sb->workspace;
		rw[nrw++] = "/tmp";
		rw[nrw++] = "/dev";
		rw[nrw++] = "/proc";
		struct al_landlock_rules r = {
		    ro, nro, rw, nrw, NULL, 0, NULL, 0, AL_LANDLOCK_NET_UNHANDLED};
		if ((rc = al_landlock_apply(&r, NULL, err, sizeof(err))) < 0)
			return fail(-rc, "Landlock", err);
	}
	if (c->seccomp && (rc = al_seccomp_load_prepared(c->seccomp)) < 0)
		return fail(-rc, "seccomp", NULL);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Small helpers.                                                      */

/*
 * fork(2) without glibc's wrapper. Its wrapper takes every malloc arena
 * lock and the stdio list lock around the fork; in this process (a raw
 * clone of a multithreaded host) any of them may have been copied while
 * another host thread held it, and would never be released: PID 1 hung on
 * its first fork while a host thread was allocating. Children of PID 1
 * allocate nothing either: the runner uses static buffers, the forwarder
 * one mmap (forwarder.h). The cloning thread's arena is no refuge: arenas
 * are shared between threads once there are more threads than arenas.
 */
static pid_t raw_fork(void)
{
	return (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, 0UL);
}

static struct al_init_hello hello;

static int fail(int err, const char *what, const char *arg)
{
	if (hello.status == 0) {
		hello.status = -err;
		/* Long paths are cut; the message stays readable. */
		if (snprintf(hello.msg, sizeof(hello.msg), "%s%s%s: %s", what, arg ? " " : "",
			     arg ? arg : "", strerror(err)) >= (int)sizeof(hello.msg))
			hello.msg[sizeof(hello.msg) - 1] = '\0';
	}
	return -err;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;
	size_t n = strlen(s);

	if (fd < 0)
		return -errno;
	if (write(fd, s, n) != (ssize_t)n)
		rc = -errno;
	close(fd);
	return rc;
}

/* mkdir -p; the last component is a directory (or a file when is_file). */
static int mkpath(const char *path, int is_file)
{
	char p[4096];
	size_t n = strlen(path);

	if (n >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, path, n + 1);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (is_file) {
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		close(fd);
	} else if (mkdir(p, 0755) < 0 && errno != EEXIST) {
		return -errno;
	}
	return 0;
}

/* The per-mount flags a remount inside a user namespace must keep (locked flags). */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

/*
 * Makes the mount at path, and every mount under it, carry the MS_RDONLY /
 * MS_NOSUID / MS_NODEV / MS_NOEXEC bits in flags. One mount_setattr call
 * (AT_RECURSIVE: a submount of a read-only bind is read-only too) instead of
 * statvfs + remount: it only sets bits, so the flags the kernel locks in a
 * user namespace need not be restated. Kernels before 5.12 get the remount,
 * which restates them and covers the top mount only.
 */
static int restrict_mount(const char *path, unsigned long flags)
{
	struct mount_attr a;

	memset(&a, 0, sizeof(a));
	if (flags & MS_RDONLY)
		a.attr_set |= MOUNT_ATTR_RDONLY;
	if (flags & MS_NOSUID)
		a.attr_set |= MOUNT_ATTR_NOSUID;
	if (flags & MS_NODEV)
		a.attr_set |= MOUNT_ATTR_NODEV;
	if (flags & MS_NOEXEC)
		a.attr_set |= MOUNT_ATTR_NOEXEC;
	if (mount_setattr(AT_FDCWD, path, AT_RECURSIVE, &a, sizeof(a)) == 0)
		return 0;
	if (errno != ENOSYS)
		return -errno;
	if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | flags | locked_flags(path), NULL) < 0)
		return -errno;
	return 0;
}

/* Creates the mount point dst for a source of mode st_mode; its parent exists. */
static int make_mount_point(const char *dst, mode_t st_mode)
{
	if (S_ISDIR(st_mode)) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			return -errno;
		return 0;
	}
	int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* Binds src onto dst (created inside the new root) with flags (MS_RDONLY when ro). */
static int bind_path(const char *src, const char *dst, int ro, unsigned long extra)
{
	struct stat st;
	int rc;

	if (stat(src, &st) < 0)
		return fail(errno, "stat", src);
	if ((rc = mkpath(dst, !S_ISDIR(st.st_mode))) < 0)
		return fail(-rc, "mkdir", dst);
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(errno, "bind mount", dst);
	if ((rc = restrict_mount(dst, MS_NOSUID | extra | (ro ? MS_RDONLY : 0))) < 0)
		return fail(-rc, "remount", dst);
	return 0;
}

/* Copies a symlink from the host (e.g. /bin -> usr/bin on merged-/usr systems). */
static int copy_link(const char *src, const char *dst)
{
	char target[4096];
	ssize_t n = readlink(src, target, sizeof(target) - 1);

	if (n < 0)
		return -errno;
	target[n] = '\0';
	if (symlink(target, dst) < 0 && errno != EEXIST)
		return fail(errno, "symlink", dst);
	return 0;
}

/*
 * Binds a host path read-only if it exists; copies it if it is a symlink. The
 * parent of the mount point already exists in the new root (/ or /etc), and
 * lstat of a non-link is its stat: no mkdir -p, no second stat.
 */
static int ro_system(const char *host)
{
	char dst[4096];
	struct stat st;
	int rc;

	if (lstat(host, &st) < 0)
		return 0; /* absent on this host: fine */
	snprintf(dst, sizeof(dst), NEWROOT "%s", host);
	if (S_ISLNK(st.st_mode))
		return copy_link(host, dst) < 0 && hello.status ? hello.status : 0;
	if ((rc = make_mount_point(dst, st.st_mode)) < 0)
		return fail(-rc, "mkdir", dst);
	if (mount(host, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(errno, "bind mount", dst);
	if ((rc = restrict_mount(dst, MS_RDONLY | MS_NOSUID | MS_NODEV)) < 0)
		return fail(-rc, "remount", dst);
	return 0;
}

static int write_new(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = 0;
	size_t n = strlen(content);

	if (fd < 0)
		return fail(errno, "create", path);
	if (write(fd, content, n) != (ssize_t)n)
		rc = fail(errno, "write", path);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Building the root.                                                  */

static int setup_etc(const struct al_init_config *c)
{
	static const char *const files[] = {
	    "/etc/ld.so.cache", "/etc/ld.so.conf",	"/etc/ld.so.conf.d",  "/etc/alternatives",
	    "/etc/ssl",		"/etc/ca-certificates", "/etc/nsswitch.conf", "/etc/localtime",
	    "/etc/os-release",	"/etc/debian_version",	"/etc/mime.types",    "/etc/protocols",
	    "/etc/services",
	};
	char buf[1024];
	int rc;

	if (mkdir(NEWROOT "/etc", 0755) < 0)
		return fail(errno, "mkdir", "/etc");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if ((rc = ro_system(files[i])) < 0)
			return rc;
	/* Generated, minimal: no host accounts, no password hashes (no shadow at all). */
	snprintf(buf, sizeof(buf),
		 "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
		 "%s:x:%u:%u:sandbox:/tmp:/bin/sh\n"
		 "%s",
		 c->uid == 65534 ? "nobody" : "sandbox", (unsigned)c->uid, (unsigned)c->gid,
		 c->uid == 65534 ? ""
				 : "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
	if ((rc = write_new(NEWROOT "/etc/passwd", buf)) < 0)
		return rc;
	snprintf(buf, sizeof(buf), "root:x:0:\n%s:x:%u:\n%s",
		 c->gid == 65534 ? "nogroup" : "sandbox", (unsigned)c->gid,
		 c->gid == 65534 ? "" : "nogroup:x:65534:\n");
	if ((rc = write_new(NEWROOT "/etc/group", buf)) < 0)
		return rc;
	if ((rc = write_new(NEWROOT "/etc/hostname", "sandbox\n")) < 0)
		return rc;
	return write_new(NEWROOT "/etc/hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost\n");
}

static int setup_dev(const struct al_init_config *c)
{
	static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	char src[64], dst[128], opts[64];
	int rc;

	if (mkdir(NEWROOT "/dev", 0755) < 0)
		return fail(errno, "mkdir", "/dev");
	if (mount("tmpfs", NEWROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") <
	    0)
		return fail(errno, "mount tmpfs", "/dev");
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		snprintf(src, sizeof(src), "/dev/%s", nodes[i]);
		snprintf(dst, sizeof(dst), NEWROOT "/dev/%s", nodes[i]);
		/* Host device nodes bound, not created: mknod is refused in a user namespace. */
		if ((rc = mkpath(dst, 1)) < 0)
			return fail(-rc, "create", dst);
		if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
			return fail(errno, "bind mount", src);
	}
	static const char *const links[][2] = {{"/proc/self/fd", "fd"},
					       {"/proc/self/fd/0", "stdin"},
					       {"/proc/self/fd/1", "stdout"},
					       {"/proc/self/fd/2", "stderr"}};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(dst, sizeof(dst), NEWROOT "/dev/%s", links[i][1]);
		if (symlink(links[i][0], dst) < 0)
			return fail(errno, "symlink", dst);
	}
	if (mkdir(NEWROOT "/dev/shm", 01777) < 0)
		return fail(errno, "mkdir", "/dev/shm");
	snprintf(opts, sizeof(opts), "mode=1777,size=%um",
		 c->sb->policy.tmp_mb ? c->sb->policy.tmp_mb : 64);
	if (mount("tmpfs", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return fail(errno, "mount tmpfs", "/dev/shm");
	return 0;
}

static int setup_proc(void)
{
	static const char *const masked[] = {"sys", "sysrq-trigger", "irq", "bus"};
	char p[128];

	if (mkdir(NEWROOT "/proc", 0555) < 0)
		return fail(errno, "mkdir", "/proc");
	/* We are PID 1 of the new pid namespace: this proc shows only the sandbox. */
	if (mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return fail(errno, "mount", "/proc");
	/* As bwrap does: the kernel knobs under /proc read-only. */
	for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
		snprintf(p, sizeof(p), NEWROOT "/proc/%s", masked[i]);
		if (access(p, F_OK) < 0)
			continue;
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
			return fail(errno, "bind mount", p);
		int rc = restrict_mount(p, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
		if (rc < 0)
			return fail(-rc, "remount", p);
	}
	return 0;
}

/*
 * .git/hooks and .git/config run code later outside the sandbox: read-only.
 * `.git` itself is bound onto itself (still writable) so that it is a mount
 * point: renaming it away and planting a fresh `.git` with hooks of our own
 * then fails with EBUSY (tests/escape, case "write"). A repository without a
 * hooks directory gets an empty one, so there is something to protect.
 */
static int protect_git(const char *ws_dst)
{
	static const char *const names[] = {"/.git/hooks", "/.git/config"};
	char p[4096];
	struct stat gst;

	if ((size_t)snprintf(p, sizeof(p), "%s/.git", ws_dst) >= sizeof(p))
		return fail(ENAMETOOLONG, "path", ws_dst);
	if (lstat(p, &gst) == 0 && S_ISDIR(gst.st_mode)) {
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
			return fail(errno, "bind mount", p);
		if ((size_t)snprintf(p, sizeof(p), "%s/.git/hooks", ws_dst) < sizeof(p) &&
		    mkdir(p, 0755) < 0 && errno != EEXIST)
			return fail(errno, "mkdir", p);
	}
	for (size_t i = 0; i < 2; i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s%s", ws_dst, names[i]) >= sizeof(p))
			return fail(ENAMETOOLONG, "path", ws_dst);
		struct stat st;
		if (lstat(p, &st) < 0 || S_ISLNK(st.st_mode))
			continue;
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
			return fail(errno, "bind mount", p);
		int rc = restrict_mount(p, MS_RDONLY | MS_NOSUID | MS_NODEV);
		if (rc < 0)
			return fail(-rc, "remount", p);
	}
	return 0;
}

static int setup_root(const struct al_init_config *c, const int *ufd, int nufd)
{
	const struct al_sandbox_policy *p = &c->sb->policy;
	static const char *const sys[] = {"/usr",   "/bin",   "/sbin",	"/lib",
					  "/lib32", "/lib64", "/libx32"};
	char src[64], dst[4096], opts[64];
	int rc;

	/* Size cap on the root itself: it only holds mount points and generated /etc files. */
	if (mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
		return fail(errno, "mount tmpfs", "(new root)");
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if ((rc = ro_system(sys[i])) < 0)
			return rc;
	if ((rc = setup_etc(c)) < 0 || (rc = setup_dev(c)) < 0 || (rc = setup_proc()) < 0)
		return rc;
	if (mkdir(NEWROOT "/tmp", 01777) < 0)
		return fail(errno, "mkdir", "/tmp");
	snprintf(opts, sizeof(opts), "mode=1777,size=%um", p->tmp_mb ? p->tmp_mb : 64);
	if (mount("tmpfs", NEWROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return fail(errno, "mount tmpfs", "/tmp");
	/* User paths come through fds opened before any mount (see open_user_paths). */
	for (int i = 0; i < nufd; i++) {
		const char *path = i == 0 ? c->sb->workspace : c->sb->ro_paths[i - 1];
		if (path == NULL)
			continue;
		snprintf(src, sizeof(src), "/proc/self/fd/%d", ufd[i]);
		if ((size_t)snprintf(dst, sizeof(dst), NEWROOT "%s", path) >= sizeof(dst))
			return fail(ENAMETOOLONG, "path", path);
		if ((rc = bind_path(src, dst, i != 0, MS_NODEV)) < 0)
			return rc;
		if (i == 0 && (rc = protect_git(dst)) < 0)
			return rc;
	}
	return 0;
}

/*
 * Opens the workspace and the extra read-only paths while we still have the
 * identity that created the sandbox: a root-owned 0700 parent directory is
 * traversable by owner match before we become the unprivileged id.
 */
static int open_user_paths(const struct al_init_config *c, int *ufd, int *nufd)
{
	const struct al_sandbox_policy *p = &c->sb->policy;
	int n = 0;

	if (p->n_ro + 1 > MAX_USER_PATHS)
		return fail(E2BIG, "too many read-only paths", NULL);
	ufd[n++] = -1;
	if (c->sb->workspace) {
		ufd[0] = open(c->sb->workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (ufd[0] < 0)
			return fail(errno, "open workspace", c->sb->workspace);
	}
	for (size_t i = 0; i < p->n_ro; i++) {
		ufd[n] = open(c->sb->ro_paths[i], O_PATH | O_CLOEXEC);
		if (ufd[n] < 0)
			return fail(errno, "open", c->sb->ro_paths[i]);
		n++;
	}
	*nufd = n;
	return 0;
}

/* 0 or a negative errno; no fail(): it runs in the detach helper (shared memory). */
static int loopback_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (s < 0)
		return errno ? -errno : -EIO;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		rc = errno ? -errno : -EIO;
		goto done;
	}
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		rc = errno ? -errno : -EIO;
done:
	close(s);
	return rc;
}

/* Drops every capability: bounding set, ambient, then effective/permitted/inheritable. */
static int drop_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	/*
	 * Capabilities are numbered 0..CAP_LAST_CAP without gaps: the first
	 * EINVAL is past the last one this kernel knows, and there is nothing
	 * left to drop.
	 */
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL && cap > 0)
				break;
			return fail(errno, "PR_CAPBSET_DROP", NULL);
		}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return fail(errno, "PR_CAP_AMBIENT_CLEAR_ALL", NULL);
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0)
		return fail(errno, "capset", NULL);
	return 0;
}

static int egress_fd = -1;

/* The proxy's socket, bound (as a file) at the fixed path inside. */
static int setup_egress(void)
{
	char src[64];
	int rc;

	if (egress_fd < 0)
		return 0;
	if (mkdir(NEWROOT "/run", 0755) < 0 || mkdir(NEWROOT "/run/airlock", 0755) < 0)
		return fail(errno, "mkdir", "/run/airlock");
	snprintf(src, sizeof(src), "/proc/self/fd/%d", egress_fd);
	/* Read-only mount: connect() on a socket is still allowed, replacing it is not. */
	if ((rc = bind_path(src, NEWROOT AL_SANDBOX_EGRESS_SOCK, 1, MS_NODEV | MS_NOEXEC)) < 0)
		return rc;
	close(egress_fd);
	egress_fd = -1;
	return 0;
}

/*
 * The in-sandbox end of egress: a child of PID 1 listening on
 * 127.0.0.1:AL_SANDBOX_PROXY_PORT, relaying to the bound socket. Started after
 * the capabilities are gone, under PID 1's Landlock domain and seccomp filter. Waits until it
 * listens so the first command can use it.
 */
static int start_forwarder(const struct al_init_config *c)
{
	int p[2];
	char b[16];
	pid_t pid;

	if (c->egress_sock == NULL)
		return 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail(errno, "pipe", NULL);
	pid = raw_fork();
	if (pid < 0)
		return fail(errno, "fork forwarder", NULL);
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close(p[0]);
		close(3); /* the control socket */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		_exit(al_forwarder_main(AL_SANDBOX_PROXY_PORT, AL_SANDBOX_EGRESS_SOCK, p[1], -1));
	}
	close(p[1]);
	ssize_t n = read(p[0], b, sizeof(b));
	close(p[0]);
	if (n <= 0)
		return fail(EIO, "the egress forwarder did not start", NULL);
	return 0;
}

/*
 * Detaching the old root waits for an (expedited) RCU grace period after the
 * mounts are gone, 0.1 ms to several ms on a busy VM, and bringing up the
 * loopback interface takes ~0.1 ms. A helper sharing our memory (CLONE_VM:
 * no page tables copied) does both, with the capabilities PID 1 had when it
 * was cloned, while PID 1 drops its own and applies Landlock and seccomp.
 * detach_old_root_wait reaps it and fails unless both succeeded, before the
 * hello: nothing of the sandbox's ever runs with the host's root mounted or
 * without loopback. The helper writes only its static stack and
 * helper_err (read after waitpid), and errno on failure, which it does not
 * trust to say whether it failed.
 */
#define OLDROOT "/dev/shm"
static pid_t detach_pid = -1;
static volatile int helper_err[2]; /* umount, loopback: -1 until done, then 0 or an errno */
static char detach_stack[16384] __attribute__((aligned(16)));

static int detach_fn(void *arg)
{
	(void)arg;
	if (umount2(OLDROOT, MNT_DETACH) < 0)
		helper_err[0] = errno ? errno : EIO;
	else
		helper_err[0] = 0;
	helper_err[1] = -loopback_up();
	return 0;
}

static int detach_old_root(void)
{
	helper_err[0] = helper_err[1] = -1;
	detach_pid =
	    clone(detach_fn, detach_stack + sizeof(detach_stack), CLONE_VM | SIGCHLD, NULL);
	if (detach_pid < 0)
		return fail(errno, "clone", "(detach the old root)");
	return 0;
}

static int detach_old_root_wait(void)
{
	int st = 0;
	pid_t r;

	while ((r = waitpid(detach_pid, &st, 0)) < 0 && errno == EINTR)
		;
	detach_pid = -1;
	if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || helper_err[0] < 0 ||
	    helper_err[1] < 0)
		return fail(EBUSY, "umount old root", "(helper)");
	if (helper_err[0])
		return fail(helper_err[0], "umount old root", NULL);
	if (helper_err[1])
		return fail(helper_err[1], "SIOCSIFFLAGS", "lo");
	return 0;
}

/*
 * The host makes our cgroup while we build the root, moves us in, then
 * writes the limits mode: only then is our cgroup namespace rooted (at the
 * sandbox's cgroup) and only then may anything of the sandbox's run. Still
 * with CAP_SYS_ADMIN (unshare needs it).
 */
static int join_cgroup(struct al_init_config *c)
{
	unsigned char m;

	if (read(c->sync_fd, &m, 1) != 1)
		return fail(EPIPE, "host went away", NULL);
	close(c->sync_fd);
	c->sync_fd = -1;
	if (m != AL_LIMITS_NONE && m != AL_LIMITS_CGROUP2 && m != AL_LIMITS_CGROUP1 &&
	    m != AL_LIMITS_RLIMIT)
		return fail(EPROTO, "limits mode from the host", NULL);
	c->mode = (enum al_limits_mode)m;
	if (unshare(CLONE_NEWCGROUP) < 0)
		return fail(errno, "unshare(CLONE_NEWCGROUP)", NULL);
	return 0;
}

static int setup(struct al_init_config *c)
{
	int ufd[MAX_USER_PATHS], nufd = 0, rc;
	char b;

	/* Wait for the host to write our uid/gid maps. */
	if (read(c->sync_fd, &b, 1) != 1)
		return fail(EPIPE, "host went away", NULL);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail(errno, "make / private", NULL);
	if ((rc = open_user_paths(c, ufd, &nufd)) < 0)
		return rc;
	if (c->egress_sock && (egress_fd = open(c->egress_sock, O_PATH | O_CLOEXEC)) < 0)
		return fail(errno, "open egress socket", NULL);
	if (c->host_root) {
		/*
		 * We still carry host uid 0 (unmapped here). Become the unprivileged id;
		 * our capabilities in this namespace survive (uid 0 is not mapped, so the
		 * setuid-drops-caps rule does not apply; KEEPCAPS for certainty), and
		 * files we create must belong to a mapped id anyway.
		 */
		prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
		/*
		 * Raw system calls, not the libc wrappers: glibc's broadcast the
		 * change to every thread it believes exists (__nptl_setxid), and
		 * after a raw clone its thread list still names the host's
		 * threads. One caught mid-pthread_create is waited for forever
		 * (seen with sandboxes created from two threads at once). We are
		 * the only thread here, which is all these calls change.
		 */
		if (syscall(SYS_setgroups, 0, NULL) < 0)
			return fail(errno, "setgroups", NULL);
		if (syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0)
			return fail(errno, "setresgid", NULL);
		if (syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0)
			return fail(errno, "setresuid", NULL);
		/* A credential change made us non-dumpable, hiding /proc/self/fd from us. */
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	}
	/* Nested user namespaces would re-grant capabilities: none may be created in ours. */
	if ((rc = write_str("/proc/sys/user/max_user_namespaces", "0")) < 0)
		return fail(-rc, "disable nested user namespaces", NULL);
	if (sethostname("sandbox", 7) < 0)
		return fail(errno, "sethostname", NULL);
	if ((rc = setup_root(c, ufd, nufd)) < 0 || (rc = setup_egress()) < 0)
		return rc;
	for (int i = 0; i < nufd; i++)
		if (ufd[i] >= 0)
			close(ufd[i]);
	if (chdir(NEWROOT) < 0)
		return fail(errno, "chdir", "(new root)");
	/*
	 * The old root goes on top of our /dev/shm (put_old may be a mount point,
	 * as with pivot_root(".", ".")), where nothing of the rest of the setup
	 * looks, and a helper detaches it while we go on (detach_old_root).
	 */
	if (syscall(SYS_pivot_root, ".", &OLDROOT[1]) < 0) /* relative: cwd is the new root */
		return fail(errno, "pivot_root", NULL);
	if (chdir("/") < 0)
		return fail(errno, "chdir", "/");
	if ((rc = detach_old_root()) < 0)
		return rc;
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) <
	    0)
		return fail(errno, "remount / read-only", NULL);
	if ((rc = join_cgroup(c)) < 0)
		return rc;
	if (setsid() < 0)
		return fail(errno, "setsid", NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(errno, "PR_SET_NO_NEW_PRIVS", NULL);
	if ((rc = drop_caps()) < 0)
		return rc;
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Serving requests.                                                   */

static const char *env_get(const struct al_sandbox *sb, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < sb->policy.n_env; i++)
		if (strncmp(sb->env[i], name, n) == 0 && sb->env[i][n] == '=')
			return sb->env[i] + n + 1;
	return NULL;
}

/* execve with argv[0] looked up in the policy's PATH (never the host's). */
static int exec_path(const struct al_sandbox *sb, char *const *argv)
{
	char *const *envp = sb->env;
	const char *path = env_get(sb, "PATH");
	char full[4096];
	int err = ENOENT;

	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		return errno;
	}
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		if (n > 0 && n + 1 + strlen(argv[0]) < sizeof(full)) {
			memcpy(full, p, n);
			full[n] = '/';
			memcpy(full + n + 1, argv[0], strlen(argv[0]) + 1);
			execve(full, argv, envp);
			if (errno != ENOENT && errno != ENOTDIR)
				err = errno;
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return err;
}

static const int fwd_sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static void fill_mask(sigset_t *m)
{
	sigemptyset(m);
	sigaddset(m, SIGCHLD);
	for (size_t i = 0; i < sizeof(fwd_sigs) / sizeof(fwd_sigs[0]); i++)
		sigaddset(m, fwd_sigs[i]);
}

/* Kills every descendant: they all reparent to us (we are a child subreaper). */
static void kill_descendants(void)
{
	char path[64], buf[4096];
	int st;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	for (;;) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = '\0';
			for (char *p = buf; *p;) {
				char *end;
				long pid = strtol(p, &end, 10);
				if (end == p)
					break;
				kill((pid_t)-pid, SIGKILL);
				kill((pid_t)pid, SIGKILL);
				p = end;
				while (*p == ' ')
					p++;
			}
		}
		if (waitpid(-1, &st, 0) < 0 && errno == ECHILD)
			break;
	}
}

/*
 * A nested Landlock domain per command, scoping signals (ABI >= 6): the command
 * and its descendants can signal each other but not PID 1's domain, so
 * `kill -9 -1` cannot take out its own runner, the persistent shell of the
 * session or the egress forwarder. With an older ABI the runner stays
 * killable by the command (the exec then reports the sandbox gone).
 */
static int scope_signals(const struct al_init_config *c)
{
	struct {
		uint64_t fs, net, scoped;
	} a = {0, 0, 1ULL << 1 /* LANDLOCK_SCOPE_SIGNAL */};
	int fd, rc = 0;

	if (c->landlock_abi < 6)
		return 0;
	fd = (int)syscall(SYS_landlock_create_ruleset, &a, sizeof(a), 0);
	if (fd < 0)
		return -errno;
	if (syscall(SYS_landlock_restrict_self, fd, 0) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * The command, in a vfork child of the runner (see runner): it shares the
 * runner's memory until execve, so it writes nothing but its own stack and
 * *exec_errno, and calls nothing that allocates or takes a lock. Signals
 * arrive blocked (the runner blocked them all before vfork) and are reset
 * to their defaults before they are unblocked, so no inherited handler can
 * run on the shared memory.
 */
static _Noreturn void command_child(const struct al_init_config *c, char *const *argv,
				    const char *cwd, const int *fds, volatile int *exec_errno)
{
	sigset_t none;
	int e;

	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Own session: no controlling terminal to push input into (TIOCSTI). */
	setsid();
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			goto fail;
	/* Nothing else crosses execve: every other fd is closed. */
	syscall(SYS_close_range, 3, ~0U, 0);
	if (chdir(cwd) < 0)
		goto fail;
	if (al_limits_apply_rlimits(&c->limits, c->mode) < 0)
		goto fail;
	{
		int src = scope_signals(c);
		if (src < 0) {
			errno = -src;
			goto fail;
		}
	}
	errno = exec_path(c->sb, argv);
fail:
	e = errno;
	{
		/* As a shell would say it, on the command's own stderr. */
		char m[512];
		int k = snprintf(m, sizeof(m), "airlock: %s: %s\n", argv[0], strerror(e));
		if (k > 0)
			(void)!write(2, m, (size_t)k < sizeof(m) ? (size_t)k : sizeof(m) - 1);
	}
	*exec_errno = e ? e : EIO;
	_exit(127);
}

/*
 * Starts the command with vfork: it borrows our memory until its execve
 * instead of copying the page tables of PID 1 (itself a copy of the whole
 * host process), and we resume exactly when execve has succeeded or the
 * child has given up, which is what an error pipe would tell us. Every
 * signal is blocked across it, as posix_spawn does. Kept apart from runner
 * so that no variable of the caller lives across vfork. Returns the pid, or
 * -1 with *exec_errno set; *exec_errno is the child's errno when execve failed.
 */
static pid_t spawn_command(const struct al_init_config *c, char *const *argv, const char *cwd,
			   const int *fds, int32_t *exec_errno)
{
	volatile int err = 0;
	sigset_t all, saved;
	pid_t pid;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	pid = vfork();
	if (pid == 0)
		command_child(c, argv, cwd, fds, &err);
	if (pid < 0)
		err = errno;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	*exec_errno = err;
	return pid;
}

static _Noreturn void runner(const struct al_init_config *c, char *msg, size_t len, int *fds)
{
	static char *argv[4096];
	struct al_init_result res;
	int argc = 0, sfd, done = 0, st = 0;
	sigset_t mask;
	pid_t cmd;
	const char *cwd = msg;

	memset(&res, 0, sizeof(res));
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	for (size_t off = strlen(msg) + 1; off < len && argc < 4095; off += strlen(msg + off) + 1)
		argv[argc++] = msg + off;
	argv[argc] = NULL;
	if (argc == 0) {
		res.exec_errno = EINVAL;
		goto report;
	}
	fill_mask(&mask);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		res.exec_errno = errno;
		goto report;
	}
	cmd = spawn_command(c, argv, cwd, fds, &res.exec_errno);
	if (cmd < 0)
		goto report;
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	while (!done) {
		struct pollfd pf[2] = {{sfd, POLLIN, 0}, {fds[3], POLLIN, 0}};
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGCHLD)
				kill(-cmd, (int)si.ssi_signo);
			/* Reap the command; orphans are reaped by kill_descendants later. */
			struct rusage ru;
			pid_t w = wait4(cmd, &st, WNOHANG, &ru);
			if (w == cmd) {
				res.wait_status = st;
				res.rusage = ru;
				done = 1;
			}
		}
		if (!done && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			/* 'K' (timeout) or the host went away: kill the whole subtree. */
			kill(-cmd, SIGKILL);
			kill(cmd, SIGKILL);
			struct rusage ru;
			if (wait4(cmd, &st, 0, &ru) == cmd) {
				res.wait_status = st;
				res.rusage = ru;
			}
			res.killed = 1;
			done = 1;
		}
	}
	/* The command ended: nothing it started may outlive it. */
	kill_descendants();
report:
	(void)!send(fds[3], &res, sizeof(res), MSG_NOSIGNAL);
	_exit(0);
}

/* Receives one request: payload and exactly four fds. */
static ssize_t recv_request(int fd, char *buf, size_t cap, int *fds)
{
	union {
		char b[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {buf, cap - 1};
	struct msghdr m = {0};
	ssize_t n;
	int got = 0;

	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.b;
	m.msg_controllen = sizeof(u.b);
	n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return n;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (got < 4)
				fds[got++] = f;
			else
				close(f);
		}
	}
	if (got != 4 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		for (int i = 0; i < got; i++)
			close(fds[i]);
		return -EBADMSG;
	}
	buf[n] = '\0';
	return n;
}

_Noreturn void al_init_main(const struct al_init_config *c)
{
	static char msg[AL_INIT_MSG_MAX];
	sigset_t mask;
	int sfd, ctl;

	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	fill_mask(&mask);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	memset(&hello, 0, sizeof(hello));
	/*
	 * We are a copy of the host process: its environment (API keys among it)
	 * is in our memory and would show in /proc/1/environ. Wipe the strings in
	 * place. What else the host held stays behind non-dumpability, the
	 * dropped capabilities and seccomp's ptrace/process_vm_* denial.
	 */
	for (char **e = environ; e && *e; e++)
		memset(*e, 0, strlen(*e));
	environ = NULL;
	/* Move the control socket to fd 3 and close everything else we inherited. */
	{
		/* Out of the way first, so the dup2s below cannot clobber each other. */
		int hc = fcntl(c->ctl_fd, F_DUPFD_CLOEXEC, 100);
		int hs = fcntl(c->sync_fd, F_DUPFD_CLOEXEC, 100);
		if (hc < 0 || hs < 0 || dup2(hc, 3) < 0 || dup2(hs, 4) < 0)
			_exit(126);
	}
	ctl = 3;
	struct al_init_config cc = *c;
	cc.ctl_fd = 3;
	cc.sync_fd = 4;
	syscall(SYS_close_range, 5, ~0U, 0);
	int nul = open("/dev/null", O_RDWR);
	for (int i = 0; i < 3 && nul >= 0; i++)
		if (nul != i)
			dup2(nul, i);
	if (nul > 2)
		close(nul);
	/*
	 * Landlock and seccomp once, in PID 1 itself, after the root is built:
	 * every runner, command and the forwarder inherit both (and PID 1 is
	 * confined too), and no command pays for loading the filter again.
	 */
	if (setup(&cc) == 0 && confine(&cc) == 0 && detach_old_root_wait() == 0 &&
	    start_forwarder(&cc) == 0) {
		hello.seccomp = cc.seccomp != NULL;
		hello.landlock_abi = cc.landlock_abi;
	}
	if (send(ctl, &hello, sizeof(hello), MSG_NOSIGNAL) != sizeof(hello) || hello.status != 0)
		_exit(1);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		_exit(1);
	for (;;) {
		struct pollfd pf[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			/* A signal from the host: forward it to every process in the sandbox. */
			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGCHLD)
				kill(-1, (int)si.ssi_signo);
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int fds[4];
			ssize_t n = recv_request(ctl, msg, sizeof(msg), fds);
			if (n == 0 || (n < 0 && n != -EBADMSG && errno != EINTR))
				_exit(0); /* host closed: the kernel kills the namespace with us */
			if (n < 0)
				continue;
			pid_t r = raw_fork();
			if (r == 0) {
				close(ctl);
				close(sfd);
				runner(&cc, msg, (size_t)n, fds);
			}
			if (r < 0) {
				struct al_init_result res;
				memset(&res, 0, sizeof(res));
				res.exec_errno = errno;
				(void)!send(fds[3], &res, sizeof(res), MSG_NOSIGNAL);
			}
			for (int i = 0; i < 4; i++)
				close(fds[i]);
		}
	}
}
