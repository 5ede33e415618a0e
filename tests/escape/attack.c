/*
 * attack.c - escape attempts run from inside a sandbox (tests/integration/
 * test_sandbox_escape.sh compiles it at test time with the system cc; no
 * binary is committed).
 *
 *   attack CASE [ARGS...]
 *
 * Every attempt that must fail and succeeds prints "ESCAPE: ..." and the
 * program exits 1; contained attempts print "ok: ..." and it exits 0. The
 * host-side checks (canary checksums, process table, mounts) are the test
 * script's job: this program only reports what it could do from inside.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int escapes;

#define ESCAPE(...)                                                                                \
	do {                                                                                       \
		printf("ESCAPE: " __VA_ARGS__);                                                    \
		putchar('\n');                                                                     \
		escapes++;                                                                         \
	} while (0)
#define OK(...)                                                                                    \
	do {                                                                                       \
		printf("ok: " __VA_ARGS__);                                                        \
		putchar('\n');                                                                     \
	} while (0)

/* A call that must fail: rc < 0 is containment. */
#define MUST_FAIL(call, what)                                                                      \
	do {                                                                                       \
		errno = 0;                                                                         \
		long rc_ = (long)(call);                                                           \
		if (rc_ >= 0)                                                                      \
			ESCAPE("%s succeeded", what);                                              \
		else                                                                               \
			OK("%s: %s", what, strerror(errno));                                       \
	} while (0)

static void must_be_absent(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		ESCAPE("%s is visible", path);
	else
		OK("%s absent (%s)", path, strerror(errno));
}

/* Reads up to cap bytes of a file; -1 when it cannot be opened or read. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ssize_t n, got = 0;
	if (fd < 0)
		return -1;
	while ((size_t)got < cap - 1 && (n = read(fd, buf + got, cap - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = '\0';
	return got;
}

static int contains(const char *buf, size_t len, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = 0; k && i + k <= len; i++)
		if (memcmp(buf + i, needle, k) == 0)
			return 1;
	return 0;
}

/* ---- host secrets: argv = marker (a planted secret value), host secret file ---- */
static void c_secrets(int argc, char **argv)
{
	static char buf[1 << 20];
	/* Passed reversed: the value itself must not be in anyone's argv. */
	static char marker[256];
	const char *rev = argc > 0 ? argv[0] : "rekram-on";
	size_t ml = strlen(rev) < sizeof(marker) ? strlen(rev) : sizeof(marker) - 1;
	for (size_t i = 0; i < ml; i++)
		marker[i] = rev[ml - 1 - i];
	const char *secret_file = argc > 1 ? argv[1] : NULL;
	extern char **environ;

	must_be_absent("/etc/shadow");
	must_be_absent("/etc/gshadow");
	must_be_absent("/etc/ssh");
	must_be_absent("/root");
	must_be_absent("/home");
	must_be_absent("/var");
	must_be_absent("/sys");
	must_be_absent("/run/docker.sock");
	must_be_absent("/var/run/docker.sock");
	if (secret_file) {
		ssize_t n = slurp(secret_file, buf, sizeof(buf));
		if (n >= 0)
			ESCAPE("read host file %s", secret_file);
		else
			OK("host file %s: %s", secret_file, strerror(errno));
	}
	for (char **e = environ; *e; e++) {
		if (strstr(*e, marker) || strncmp(*e, "ANTHROPIC_", 10) == 0)
			ESCAPE("environment entry %.20s... from the host", *e);
	}
	OK("own environment has no host secret");
	/* Every process we can see: environ, cmdline, and its memory. */
	DIR *d = opendir("/proc");
	int nproc = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char p[300];
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		nproc++;
		static const char *const files[] = {"environ", "cmdline", "mem"};
		for (int i = 0; i < 3; i++) {
			snprintf(p, sizeof(p), "/proc/%s/%s", de->d_name, files[i]);
			ssize_t n;
			if (i == 2) {
				/* Memory: a copy of the host process lives on in PID 1 (native). */
				int fd = open(p, O_RDONLY);
				if (fd >= 0 && strcmp(de->d_name, "self") != 0 &&
				    atoi(de->d_name) != getpid()) {
					n = pread(fd, buf, 4096, 0x400000);
					if (n > 0)
						ESCAPE("read %s", p);
				}
				if (fd >= 0)
					close(fd);
				continue;
			}
			n = slurp(p, buf, sizeof(buf));
			if (n > 0 && contains(buf, (size_t)n, marker))
				ESCAPE("%s holds the planted secret", p);
		}
	}
	if (d)
		closedir(d);
	OK("scanned %d processes: no planted secret", nproc);
	if (nproc > 20)
		ESCAPE("%d processes visible: not a private pid namespace", nproc);
	/* PID 1's memory (the host copy) by the other routes. */
	char tmp[64];
	struct iovec l = {tmp, sizeof(tmp)}, r = {(void *)0x400000, sizeof(tmp)};
	MUST_FAIL(process_vm_readv(1, &l, 1, &r, 1, 0), "process_vm_readv(PID 1)");
	MUST_FAIL(ptrace(PTRACE_ATTACH, 1, 0, 0), "ptrace(ATTACH, PID 1)");
}

/* ---- writes outside: argv = canary dir, workspace, read-only file on the same fs ---- */
static void c_write(int argc, char **argv)
{
	char p[4096];
	const char *canary = argv[0], *ws = argv[1], *rofile = argc > 2 ? argv[2] : NULL;

	snprintf(p, sizeof(p), "%s/file", canary);
	MUST_FAIL(open(p, O_WRONLY | O_TRUNC), "open canary/file for writing");
	snprintf(p, sizeof(p), "%s/new", canary);
	MUST_FAIL(open(p, O_WRONLY | O_CREAT, 0666), "create canary/new");
	MUST_FAIL(mkdir(p, 0777), "mkdir canary/new");
	/*
	 * WS/.. inside is the sandbox's own view (a private tmpfs when the
	 * workspace sits under /tmp, else the read-only root): creating there
	 * may work, but the file must not appear on the host (the script checks).
	 */
	snprintf(p, sizeof(p), "%s/../escape-dotdot", ws);
	{
		int fd = open(p, O_WRONLY | O_CREAT, 0666);
		OK("create WS/../escape-dotdot: %s (the sandbox's own view)",
		   fd >= 0 ? "created" : strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	snprintf(p, sizeof(p), "%s/../../../../tmp/../escape-dotdot2", ws);
	MUST_FAIL(open(p, O_WRONLY | O_CREAT, 0666), "create via many ..");
	snprintf(p, sizeof(p), "%s/link-out/pwned", ws);
	MUST_FAIL(open(p, O_WRONLY | O_CREAT, 0666), "create through planted symlink to canary");
	snprintf(p, sizeof(p), "%s/link-out/file", ws);
	MUST_FAIL(open(p, O_WRONLY | O_TRUNC), "truncate through planted symlink to canary");
	snprintf(p, sizeof(p), "%s/link-etc/passwd", ws);
	MUST_FAIL(open(p, O_WRONLY | O_APPEND), "append to /etc/passwd through a symlink");
	MUST_FAIL(open("/etc/passwd", O_WRONLY | O_APPEND), "append to /etc/passwd");
	MUST_FAIL(open("/escape-root", O_WRONLY | O_CREAT, 0666), "create /escape-root");
	MUST_FAIL(open("/usr/bin/escape", O_WRONLY | O_CREAT, 0755), "create /usr/bin/escape");
	MUST_FAIL(open("/proc/1/root/escape", O_WRONLY | O_CREAT, 0666), "create via /proc/1/root");
	{
		/* PID 1's cwd is "/" (native) or the workspace (bwrap): its .. is our view too. */
		int fd = open("/proc/1/cwd/../escape-dotdot", O_WRONLY | O_CREAT, 0666);
		OK("create via /proc/1/cwd/..: %s (the sandbox's own view)",
		   fd >= 0 ? "created" : strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	MUST_FAIL(mount(ws, "/tmp", NULL, MS_BIND, NULL), "bind mount");
	/* Persistence through git: hooks and config are read-only, .git stays put. */
	snprintf(p, sizeof(p), "%s/.git/hooks/pre-commit", ws);
	MUST_FAIL(open(p, O_WRONLY | O_CREAT, 0755), "create .git/hooks/pre-commit");
	snprintf(p, sizeof(p), "%s/.git/config", ws);
	MUST_FAIL(open(p, O_WRONLY | O_APPEND), "append to .git/config");
	MUST_FAIL(unlink(p), "unlink .git/config");
	{
		char from[4096], to[4096];
		snprintf(from, sizeof(from), "%s/.git", ws);
		snprintf(to, sizeof(to), "%s/.git-moved", ws);
		MUST_FAIL(rename(from, to), "rename .git away (to plant a fresh one)");
		snprintf(from, sizeof(from), "%s/.git/hooks", ws);
		snprintf(to, sizeof(to), "%s/.git/hooks-moved", ws);
		MUST_FAIL(rename(from, to), "rename .git/hooks away");
	}
	if (rofile) {
		/* A read-only bound file on the same filesystem as the workspace. */
		snprintf(p, sizeof(p), "%s/hardlink", ws);
		MUST_FAIL(link(rofile, p), "hard link a read-only file into the workspace");
		MUST_FAIL(open(rofile, O_WRONLY), "open the read-only file for writing");
		MUST_FAIL(rename(rofile, p), "rename the read-only file into the workspace");
		int fd = open(rofile, O_RDONLY);
		if (fd >= 0) {
			char fdp[64];
			snprintf(fdp, sizeof(fdp), "/proc/self/fd/%d", fd);
			MUST_FAIL(linkat(AT_FDCWD, fdp, AT_FDCWD, p, AT_SYMLINK_FOLLOW),
				  "linkat /proc/self/fd of the read-only file");
			MUST_FAIL(open(fdp, O_WRONLY), "reopen the read-only fd for writing");
			close(fd);
		}
	}
}

/* ---- /proc tricks ---- */
static void c_proc(void)
{
	char buf[4096], p[300];
	DIR *d;
	struct dirent *de;

	must_be_absent("/proc/1/root/etc/shadow");
	must_be_absent("/proc/1/root/root");
	must_be_absent("/proc/self/root/home");
	/* Inherited fds: only stdio, nothing pointing at a host directory or file. */
	d = opendir("/proc/self/fd");
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		int fd = atoi(de->d_name);
		if (fd == dirfd(d))
			continue;
		snprintf(p, sizeof(p), "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(p, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		if (fd > 2)
			ESCAPE("inherited fd %d -> %s", fd, buf);
		else
			OK("fd %d -> %s", fd, buf);
		struct stat st;
		if (fd <= 2 && fstat(fd, &st) == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
			ESCAPE("stdio fd %d is a host file or directory", fd);
	}
	if (d)
		closedir(d);
	MUST_FAIL(open("/proc/sys/kernel/core_pattern", O_WRONLY),
		  "open /proc/sys/kernel/core_pattern");
	MUST_FAIL(open("/proc/sys/vm/drop_caches", O_WRONLY), "open /proc/sys/vm/drop_caches");
	MUST_FAIL(open("/proc/sys/kernel/modprobe", O_WRONLY), "open /proc/sys/kernel/modprobe");
	MUST_FAIL(open("/proc/sysrq-trigger", O_WRONLY), "open /proc/sysrq-trigger");
	{
		int fd = open("/proc/kcore", O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, 64) : -1;
		if (n > 0)
			ESCAPE("read /proc/kcore");
		else
			OK("/proc/kcore unreadable: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	{
		int fd = open("/proc/kmsg", O_RDONLY | O_NONBLOCK);
		ssize_t n = fd >= 0 ? read(fd, buf, 64) : -1;
		if (n > 0)
			ESCAPE("read /proc/kmsg");
		else
			OK("/proc/kmsg unreadable: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	MUST_FAIL(syscall(SYS_syslog, 3, buf, (int)sizeof(buf)), "syslog(READ_ALL) (dmesg)");
}

/* ---- kernel surfaces: ptrace, mount, namespaces, keyring, io_uring, bpf ---- */
static void c_kernel(void)
{
	pid_t sib = fork();
	if (sib == 0) {
		pause();
		_exit(0);
	}
	MUST_FAIL(ptrace(PTRACE_ATTACH, sib, 0, 0), "ptrace(ATTACH) of a sibling");
	MUST_FAIL(ptrace(PTRACE_SEIZE, sib, 0, 0), "ptrace(SEIZE) of a sibling");
	{
		char b[8];
		struct iovec l = {b, 8}, r = {b, 8};
		MUST_FAIL(process_vm_readv(sib, &l, 1, &r, 1, 0), "process_vm_readv of a sibling");
	}
	kill(sib, SIGKILL);
	waitpid(sib, NULL, 0);
	pid_t tr = fork();
	if (tr == 0)
		_exit(ptrace(PTRACE_TRACEME, 0, 0, 0) == 0 ? 0 : 1);
	int st = 0;
	waitpid(tr, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		ESCAPE("ptrace(TRACEME) succeeded");
	else
		OK("ptrace(TRACEME) refused");
	MUST_FAIL(mount("none", "/tmp", "tmpfs", 0, NULL), "mount tmpfs");
	MUST_FAIL(mount("proc", "/tmp", "proc", 0, NULL), "mount proc");
	MUST_FAIL(umount2("/proc", MNT_DETACH), "umount /proc");
	MUST_FAIL(umount2("/", MNT_DETACH), "umount /");
	MUST_FAIL(syscall(SYS_pivot_root, "/tmp", "/tmp"), "pivot_root");
	MUST_FAIL(chroot("/tmp"), "chroot");
	MUST_FAIL(syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */), "open_tree");
	MUST_FAIL(syscall(SYS_fsopen, "tmpfs", 0), "fsopen");
	MUST_FAIL(unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)");
	MUST_FAIL(unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)");
	MUST_FAIL(unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)");
	{
		long r = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), NULL, NULL,
				 NULL, 0);
		if (r == 0)
			_exit(0);
		if (r > 0) {
			waitpid((pid_t)r, NULL, 0);
			ESCAPE("clone(CLONE_NEWUSER) succeeded");
		} else {
			OK("clone(CLONE_NEWUSER): %s", strerror(errno));
		}
	}
	{
		/* clone3 must be ENOSYS (glibc falls back), never a way around the clone rule. */
		long r = syscall(SYS_clone3, NULL, 0);
		if (r >= 0 || errno != ENOSYS)
			ESCAPE("clone3 not ENOSYS: %s", strerror(errno));
		else
			OK("clone3: ENOSYS");
	}
	MUST_FAIL(syscall(SYS_setns, 0, 0), "setns");
	/* Socket families the network namespace does not scope (vsock: the hypervisor). */
	MUST_FAIL(socket(AF_VSOCK, SOCK_STREAM, 0), "socket(AF_VSOCK)");
	MUST_FAIL(socket(AF_ALG, SOCK_SEQPACKET, 0), "socket(AF_ALG)");
	MUST_FAIL(syscall(447 /* memfd_secret */, 0), "memfd_secret");
	MUST_FAIL(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
		  "keyctl(GET_KEYRING_ID session)");
	MUST_FAIL(syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL), "keyctl(JOIN_SESSION)");
	MUST_FAIL(syscall(SYS_add_key, "user", "escape", "x", 1, KEY_SPEC_USER_KEYRING), "add_key");
	MUST_FAIL(syscall(SYS_request_key, "user", "escape", NULL, 0), "request_key");
	{
		char params[120];
		memset(params, 0, sizeof(params));
		long r = syscall(SYS_io_uring_setup, 8, params);
		if (r >= 0)
			ESCAPE("io_uring_setup succeeded (fd %ld)", r);
		else
			OK("io_uring_setup: %s", strerror(errno));
		MUST_FAIL(syscall(SYS_io_uring_enter, 0, 0, 0, 0, NULL, 0), "io_uring_enter");
		MUST_FAIL(syscall(SYS_io_uring_register, 0, 0, NULL, 0), "io_uring_register");
	}
	MUST_FAIL(syscall(SYS_bpf, 0, NULL, 0), "bpf");
	MUST_FAIL(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), "perf_event_open");
	MUST_FAIL(syscall(SYS_userfaultfd, 0), "userfaultfd");
	MUST_FAIL(syscall(SYS_init_module, NULL, 0, ""), "init_module");
	MUST_FAIL(syscall(SYS_kexec_load, 0, 0, NULL, 0), "kexec_load");
	MUST_FAIL(syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0), "open_by_handle_at");
	MUST_FAIL(sethostname("pwned", 5), "sethostname");
	MUST_FAIL(setuid(0), "setuid(0)");
	MUST_FAIL(syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, NULL), "reboot");
}

/* ---- TIOCSTI: push input into whatever terminal we can reach ---- */
static void c_tiocsti(void)
{
	char c = '#';
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
	if (fd >= 0) {
		ESCAPE("opened a controlling terminal /dev/tty");
		MUST_FAIL(ioctl(fd, TIOCSTI, &c), "TIOCSTI on /dev/tty");
		close(fd);
	} else {
		OK("/dev/tty: %s (no controlling terminal)", strerror(errno));
	}
	for (int i = 0; i < 3; i++) {
		char what[64];
		snprintf(what, sizeof(what), "TIOCSTI on fd %d", i);
		MUST_FAIL(ioctl(i, TIOCSTI, &c), what);
		snprintf(what, sizeof(what), "TIOCLINUX on fd %d", i);
		char sub = 6;
		MUST_FAIL(ioctl(i, TIOCLINUX, &sub), what);
		if (isatty(i))
			ESCAPE("fd %d is a terminal", i);
	}
	/* Our own pty, if /dev/ptmx is there: TIOCSTI is masked by seccomp regardless. */
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m >= 0) {
		MUST_FAIL(ioctl(m, TIOCSTI, &c), "TIOCSTI on our own pty");
		close(m);
	} else {
		OK("no pty: %s", strerror(errno));
	}
}

/* ---- limits ---- */
static void c_forkbomb(int argc, char **argv)
{
	long cap = argc > 0 ? atol(argv[0]) : 64;
	long n = 0;
	for (; n < 100000; n++) {
		pid_t p = fork();
		if (p == 0) {
			pause();
			_exit(0);
		}
		if (p < 0)
			break;
	}
	if (n >= cap + 8)
		ESCAPE("forked %ld processes (cap %ld)", n, cap);
	else
		OK("fork failed after %ld children: %s", n, strerror(errno));
	/* The children are left behind on purpose: the sandbox must kill them. */
}

static void c_membomb(int argc, char **argv)
{
	long cap_mb = argc > 0 ? atol(argv[0]) : 64;
	long mb = 0;
	for (; mb < 1024; mb++) {
		char *p =
		    mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			break;
		memset(p, 0x5a, 1 << 20);
	}
	/* Reaching here means no OOM kill: it must have been an allocation failure. */
	if (mb >= cap_mb + 16)
		ESCAPE("allocated and touched %ld MiB (cap %ld)", mb, cap_mb);
	else
		OK("allocation failed at %ld MiB", mb);
}

static long fill(const char *path, long max_mb)
{
	static char b[1 << 20];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	long mb = 0;
	if (fd < 0)
		return -1;
	memset(b, 'f', sizeof(b));
	for (; mb < max_mb; mb++)
		if (write(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
			break;
	int e = errno;
	close(fd);
	unlink(path);
	errno = e;
	return mb;
}

static void c_diskfill(int argc, char **argv)
{
	const char *ws = argv[0];
	long tmp_cap = argc > 1 ? atol(argv[1]) : 256;
	char p[4096];
	signal(SIGXFSZ, SIG_IGN);
	/* Stop a little past the cap: an uncapped tmpfs is reported, not allowed to eat RAM. */
	long mb = fill("/tmp/fill", tmp_cap + 64);
	if (mb < 0 || mb > tmp_cap + 1)
		ESCAPE("/tmp took %ld MiB (cap %ld)", mb, tmp_cap);
	else
		OK("/tmp full after %ld MiB: %s", mb, strerror(errno));
	mb = fill("/dev/shm/fill", tmp_cap + 64);
	if (mb > tmp_cap + 1)
		ESCAPE("/dev/shm took %ld MiB", mb);
	else
		OK("/dev/shm stopped after %ld MiB: %s", mb, strerror(errno));
	MUST_FAIL(open("/fill", O_WRONLY | O_CREAT, 0600), "create a file in the root");
	/* The workspace is on the host disk: the file size cap, without filling the disk (sparse).
	 */
	snprintf(p, sizeof(p), "%s/sparse", ws);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		ESCAPE("cannot create a workspace file: %s", strerror(errno));
		return;
	}
	MUST_FAIL(pwrite(fd, "x", 1, (off_t)2 << 30),
		  "write at 2 GiB in the workspace (RLIMIT_FSIZE)");
	MUST_FAIL(ftruncate(fd, (off_t)4 << 30), "ftruncate to 4 GiB");
	close(fd);
	unlink(p);
	struct rlimit rl;
	MUST_FAIL(setrlimit(RLIMIT_FSIZE, &(struct rlimit){RLIM_INFINITY, RLIM_INFINITY}),
		  "raise RLIMIT_FSIZE");
	getrlimit(RLIMIT_FSIZE, &rl);
	if (rl.rlim_cur == RLIM_INFINITY)
		ESCAPE("no file size cap");
}

static void c_flood(int argc, char **argv)
{
	static char b[1 << 16];
	long mb = argc > 0 ? atol(argv[0]) : 200;
	memset(b, 'F', sizeof(b));
	memcpy(b, "HEAD-MARK\n", 10);
	for (long i = 0; i < mb * 16; i++) {
		if (write(1, b, sizeof(b)) < 0)
			break;
		if (i == 0)
			memset(b, 'F', 10);
	}
	(void)!write(1, "\nTAIL-MARK\n", 11);
	(void)!write(2, "stderr too\n", 11);
}

/* Orphans: setsid, double fork, then linger for `secs` with a marker in argv. */
static void c_orphans(int argc, char **argv)
{
	const char *self = "/proc/self/exe";
	for (int i = 0; i < 3; i++) {
		pid_t p = fork();
		if (p == 0) {
			setsid();
			if (fork() == 0) {
				signal(SIGHUP, SIG_IGN);
				signal(SIGTERM, SIG_IGN);
				execl(self, "attack", "linger", argv[0], (char *)NULL);
				_exit(1);
			}
			_exit(0);
		}
		waitpid(p, NULL, 0);
	}
	OK("three setsid'd, double-forked lingerers started");
	if (argc > 1 && strcmp(argv[1], "wait") == 0)
		pause(); /* until the timeout kills us */
}

static void c_linger(void)
{
	sleep(60);
}

/* kill -9 -1 from inside, and a direct kill of a host pid. */
static void c_signals(int argc, char **argv)
{
	pid_t host = argc > 0 ? (pid_t)atol(argv[0]) : 0;
	if (host > 0) {
		if (kill(host, 0) == 0)
			ESCAPE("host pid %d is signalable", (int)host);
		else
			OK("host pid %d: %s", (int)host, strerror(errno));
	}
	signal(SIGTERM, SIG_IGN);
	kill(-1, SIGTERM);
	kill(-1, SIGKILL);
	OK("kill -9 -1 sent");
	if (kill(1, SIGKILL) == 0)
		OK("kill(1) accepted (ignored by init)");
}

/* ---- network ---- */
static int tcp(const char *ip, int port)
{
	struct sockaddr_in a = {0};
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return -1;
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &a.sin_addr);
	struct timeval tv = {3, 0};
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(s);
		errno = e;
		return -1;
	}
	return s;
}

/* CONNECT through the in-sandbox proxy forwarder; the status code, or -1. */
static int proxy_connect(const char *target)
{
	char req[512], resp[512];
	int s = tcp("127.0.0.1", 3128);
	if (s < 0)
		return -1;
	int n =
	    snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target);
	if (write(s, req, (size_t)n) != n) {
		close(s);
		return -1;
	}
	ssize_t k = read(s, resp, sizeof(resp) - 1);
	close(s);
	if (k < 12)
		return -1;
	resp[k] = '\0';
	return atoi(resp + 9);
}

static int proxy_get(const char *url)
{
	char req[512], resp[512];
	int s = tcp("127.0.0.1", 3128);
	if (s < 0)
		return -1;
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", url);
	if (write(s, req, (size_t)n) != n) {
		close(s);
		return -1;
	}
	ssize_t k = read(s, resp, sizeof(resp) - 1);
	close(s);
	if (k < 12)
		return -1;
	resp[k] = '\0';
	return atoi(resp + 9);
}

/* argv = host port of a listener on the host's loopback; proxy=1 when egress is on */
static void c_net(int argc, char **argv)
{
	int port = atoi(argv[0]);
	int proxy = argc > 1 && strcmp(argv[1], "proxy") == 0;
	char t[128];
	int s;

	/* Direct: no route out, and the host's loopback is not ours. */
	s = tcp("1.1.1.1", 80);
	if (s >= 0) {
		ESCAPE("direct TCP to 1.1.1.1:80");
		close(s);
	} else {
		OK("direct TCP to 1.1.1.1:80: %s", strerror(errno));
	}
	s = tcp("169.254.169.254", 80);
	if (s >= 0) {
		ESCAPE("direct TCP to the metadata address");
		close(s);
	} else {
		OK("direct TCP to 169.254.169.254: %s", strerror(errno));
	}
	s = tcp("127.0.0.1", port);
	if (s >= 0) {
		ESCAPE("reached the host's loopback listener directly");
		close(s);
	} else {
		OK("host loopback listener 127.0.0.1:%d: %s", port, strerror(errno));
	}
	{
		struct sockaddr_in a = {0};
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		a.sin_family = AF_INET;
		a.sin_port = htons(53);
		inet_pton(AF_INET, "8.8.8.8", &a.sin_addr);
		MUST_FAIL(
		    sendto(u, "\0\1\1\0\0\1\0\0\0\0\0\0", 12, 0, (struct sockaddr *)&a, sizeof(a)),
		    "UDP to 8.8.8.8:53");
		close(u);
	}
	must_be_absent("/etc/resolv.conf");
	{
		struct addrinfo *ai = NULL;
		int r = getaddrinfo("example.com", "80", NULL, &ai);
		if (r == 0) {
			ESCAPE("resolved example.com inside");
			freeaddrinfo(ai);
		} else {
			OK("getaddrinfo(example.com): %s", gai_strerror(r));
		}
	}
	/* Abstract and path Unix sockets of the host. */
	{
		struct sockaddr_un a = {0};
		int u = socket(AF_UNIX, SOCK_STREAM, 0);
		a.sun_family = AF_UNIX;
		snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "%s", argv[2]);
		socklen_t len =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(argv[2]));
		MUST_FAIL(connect(u, (struct sockaddr *)&a, len),
			  "connect to the host's abstract socket");
		close(u);
		u = socket(AF_UNIX, SOCK_STREAM, 0);
		memset(&a, 0, sizeof(a));
		a.sun_family = AF_UNIX;
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", argv[3]);
		MUST_FAIL(connect(u, (struct sockaddr *)&a, sizeof(a)),
			  "connect to the host's docker.sock-style socket");
		close(u);
	}
	if (!proxy) {
		s = tcp("127.0.0.1", 3128);
		if (s >= 0) {
			ESCAPE("a proxy answers without an allowlist");
			close(s);
		}
		return;
	}
	/* Through the proxy: every one of these must be refused (403). */
	static const char *const refused[] = {"not-allowed.test:443", "1.1.1.1:443",
					      "169.254.169.254:80",   "[::1]:80",
					      "2130706433:80",	      "0x7f.1:80"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		int code = proxy_connect(refused[i]);
		if (code == 200)
			ESCAPE("proxy CONNECT %s: %d", refused[i], code);
		else
			OK("proxy CONNECT %s: %d", refused[i], code);
	}
	/* Allowlisted names and literals that point at loopback: refused by address class. */
	snprintf(t, sizeof(t), "localhost:%d", port);
	int code = proxy_connect(t);
	if (code == 200)
		ESCAPE("proxy CONNECT %s (allowlisted, resolves to loopback): %d", t, code);
	else
		OK("proxy CONNECT %s (allowlisted, resolves to loopback): %d", t, code);
	snprintf(t, sizeof(t), "127.0.0.1:%d", port);
	code = proxy_connect(t);
	if (code == 200)
		ESCAPE("proxy CONNECT %s (allowlisted literal): %d", t, code);
	else
		OK("proxy CONNECT %s (allowlisted literal): %d", t, code);
	snprintf(t, sizeof(t), "http://localhost:%d/", port);
	code = proxy_get(t);
	if (code == 200)
		ESCAPE("proxy GET %s: %d", t, code);
	else
		OK("proxy GET %s: %d", t, code);
	code = proxy_get("http://169.254.169.254/latest/meta-data/");
	if (code == 200)
		ESCAPE("proxy GET metadata (allowlisted literal): %d", code);
	else
		OK("proxy GET metadata (allowlisted literal): %d", code);
	/* The proxy's own Unix socket is read-only bound: it cannot be replaced. */
	MUST_FAIL(unlink("/run/airlock/egress.sock"), "unlink the egress socket");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: attack CASE [ARGS...]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *c = argv[1];
	int n = argc - 2;
	char **a = argv + 2;
	if (strcmp(c, "secrets") == 0)
		c_secrets(n, a);
	else if (strcmp(c, "write") == 0)
		c_write(n, a);
	else if (strcmp(c, "proc") == 0)
		c_proc();
	else if (strcmp(c, "kernel") == 0)
		c_kernel();
	else if (strcmp(c, "tiocsti") == 0)
		c_tiocsti();
	else if (strcmp(c, "forkbomb") == 0)
		c_forkbomb(n, a);
	else if (strcmp(c, "membomb") == 0)
		c_membomb(n, a);
	else if (strcmp(c, "diskfill") == 0)
		c_diskfill(n, a);
	else if (strcmp(c, "flood") == 0)
		c_flood(n, a);
	else if (strcmp(c, "orphans") == 0)
		c_orphans(n, a);
	else if (strcmp(c, "linger") == 0)
		c_linger();
	else if (strcmp(c, "signals") == 0)
		c_signals(n, a);
	else if (strcmp(c, "net") == 0)
		c_net(n, a);
	else {
		fprintf(stderr, "unknown case %s\n", c);
		return 2;
	}
	printf("%s: %d escape(s)\n", c, escapes);
	return escapes ? 1 : 0;
}
