/*
 * inner.c - the bwrap backend's helper inside the sandbox (see inner.h).
 *
 * Runs between bwrap's exec and the command's: single-threaded, no libuv,
 * and it either execs the command or exits 125, so the little it allocates
 * (Landlock's path fds, the forwarder's buffers) never needs freeing.
 */
#include "sandbox/inner.h"

#include "sandbox/forwarder.h"
#include "sandbox/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_RULES 80

/* Reads a small file into buf (NUL-terminated); the length, or a negative errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;

	if (fd < 0)
		return -errno;
	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

int al_sandbox_inner_detect(char *err, size_t errlen)
{
	const char *mark = getenv(AL_INNER_ENV);
	char buf[4096];

	if (mark == NULL || strcmp(mark, "1") != 0) {
		snprintf(err, errlen, "not started by the bwrap backend (%s is not set)",
			 AL_INNER_ENV);
		return -EPERM;
	}
	/* A host's PID 1 is systemd, init, tini...; in our sandbox it is bwrap's own init. */
	if (read_small("/proc/1/comm", buf, sizeof(buf)) < 0 || strcmp(buf, "bwrap\n") != 0) {
		snprintf(err, errlen, "PID 1 is not bubblewrap: not inside a bwrap sandbox");
		return -EPERM;
	}
	/* The initial user namespace maps every id: "0 0 4294967295". */
	if (read_small("/proc/self/uid_map", buf, sizeof(buf)) < 0 ||
	    strstr(buf, "4294967295") != NULL) {
		snprintf(err, errlen, "not in a user namespace of its own");
		return -EPERM;
	}
	/* Two header lines, then one line per interface: only "lo" may be there. */
	if (read_small("/proc/net/dev", buf, sizeof(buf)) < 0) {
		snprintf(err, errlen, "cannot read /proc/net/dev");
		return -EPERM;
	}
	{
		int line = 0;
		for (char *s = buf; s && *s; line++) {
			char *nl = strchr(s, '\n');
			if (line >= 2) {
				while (*s == ' ')
					s++;
				if (strncmp(s, "lo:", 3) != 0) {
					snprintf(err, errlen,
						 "the network namespace has more than loopback");
					return -EPERM;
				}
			}
			s = nl ? nl + 1 : NULL;
		}
	}
	return 0;
}

/* 1 when a seccomp filter is in force on us (bwrap's --seccomp). */
static int seccomp_mode_filter(void)
{
	char buf[4096];
	const char *s;

	if (read_small("/proc/self/status", buf, sizeof(buf)) < 0)
		return 0;
	s = strstr(buf, "\nSeccomp:");
	if (s == NULL)
		return 0;
	s += 9;
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == '2';
}

/*
 * The forwarder, double-forked: its parent exits at once, so it is reparented
 * to bwrap's PID 1 rather than becoming a stray child of the command (which
 * might wait for every child it has). It dies with the pid namespace when
 * the command ends. Waits until it listens.
 */
static int start_forwarder(uint16_t port, const char *sock, char *err, size_t errlen)
{
	int p[2], st = 0;
	char line[16];
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		snprintf(err, errlen, "fork forwarder: %s", strerror(e));
		return -e;
	}
	if (pid == 0) {
		if (fork() != 0)
			_exit(0);
		setsid();
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
		}
		/* Only the ready pipe (at 3) and stderr stay open: no report fd, no stdin. */
		if (dup2(p[1], 3) < 0)
			_exit(1);
		syscall(SYS_close_range, 4, ~0U, 0);
		_exit(al_forwarder_main(port, sock, 3, -1));
	}
	close(p[1]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	do
		n = read(p[0], line, sizeof(line));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n <= 0) {
		snprintf(err, errlen, "the egress forwarder did not start");
		return -EIO;
	}
	return 0;
}

/*
 * A nested domain that only scopes signals (ABI >= 6): the command and its
 * descendants may signal each other, not the forwarder or bwrap's PID 1.
 */
static int scope_signals(int abi)
{
	struct {
		uint64_t fs, net, scoped;
	} a = {0, 0, 1ULL << 1 /* LANDLOCK_SCOPE_SIGNAL */};
	int fd, rc = 0;

	if (abi < 6)
		return 0;
	fd = (int)syscall(SYS_landlock_create_ruleset, &a, sizeof(a), 0);
	if (fd < 0)
		return -errno;
	if (syscall(SYS_landlock_restrict_self, fd, 0) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static void set_proxy_env(uint16_t port)
{
	static const char *const names[] = {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
					    "https_proxy"};
	char v[64];

	snprintf(v, sizeof(v), "http://127.0.0.1:%u", (unsigned)port);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		setenv(names[i], v, 1);
}

static int parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || (*end && *end != ':') || s[0] == '-' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Reports failure (when there is a report fd) and says so on stderr. */
static int inner_fail(int report_fd, int status, const char *msg)
{
	struct al_inner_report rep;

	memset(&rep, 0, sizeof(rep));
	rep.status = status;
	snprintf(rep.msg, sizeof(rep.msg), "%s", msg);
	if (report_fd >= 0)
		(void)!write(report_fd, &rep, sizeof(rep));
	fprintf(stderr, "airlock sandbox inner: %s\n", msg);
	return 125;
}

int al_sandbox_inner_main(int argc, char **argv)
{
	static const char *ro[MAX_RULES], *rw[MAX_RULES];
	size_t nro = 0, nrw = 0;
	const char *fwd_sock = NULL;
	unsigned long long as_max = 0, v;
	uint16_t fwd_port = 0;
	int report_fd = -1, i, rc, abi = 0;
	struct al_inner_report rep;
	char err[256] = "", msg[256];

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (val == NULL)
			goto usage;
		i++;
		if (strcmp(opt, "--landlock-ro") == 0 && nro < MAX_RULES) {
			ro[nro++] = val;
		} else if (strcmp(opt, "--landlock-rw") == 0 && nrw < MAX_RULES) {
			rw[nrw++] = val;
		} else if (strcmp(opt, "--report-fd") == 0 && parse_ull(val, 1024, &v) == 0 &&
			   strchr(val, ':') == NULL) {
			report_fd = (int)v;
		} else if (strcmp(opt, "--rlimit-as") == 0 && parse_ull(val, ~0ull, &v) == 0 &&
			   strchr(val, ':') == NULL) {
			as_max = v;
		} else if (strcmp(opt, "--forward") == 0 && parse_ull(val, 65535, &v) == 0 &&
			   v > 0 && strchr(val, ':') != NULL && strchr(val, ':')[1] == '/') {
			fwd_port = (uint16_t)v;
			fwd_sock = strchr(val, ':') + 1;
		} else {
			goto usage;
		}
	}
	if (i + 1 >= argc)
		goto usage;
	char **cmd = argv + i + 1;
	if ((rc = al_sandbox_inner_detect(err, sizeof(err))) < 0)
		return inner_fail(report_fd, rc, err);
	unsetenv(AL_INNER_ENV);
	if (nro + nrw > 0) {
		struct al_landlock_rules r = {
		    ro, nro, rw, nrw, NULL, 0, NULL, 0, AL_LANDLOCK_NET_UNHANDLED};
		if ((rc = al_landlock_apply(&r, &abi, err, sizeof(err))) < 0) {
			snprintf(msg, sizeof(msg), "Landlock: %s", err[0] ? err : strerror(-rc));
			return inner_fail(report_fd, rc, msg);
		}
	}
	/* Under the Landlock domain and bwrap's seccomp filter, as native's forwarder. */
	if (fwd_sock) {
		if ((rc = start_forwarder(fwd_port, fwd_sock, err, sizeof(err))) < 0)
			return inner_fail(report_fd, rc, err);
		set_proxy_env(fwd_port);
	}
	if ((rc = scope_signals(abi)) < 0) {
		snprintf(msg, sizeof(msg), "Landlock signal scope: %s", strerror(-rc));
		return inner_fail(report_fd, rc, msg);
	}
	if (as_max) {
		/* Here, not on the host: bwrap and this helper (an ASan build) need address space.
		 */
		struct rlimit rl = {as_max, as_max};
		if (setrlimit(RLIMIT_AS, &rl) < 0) {
			rc = -errno;
			snprintf(msg, sizeof(msg), "RLIMIT_AS: %s", strerror(errno));
			return inner_fail(report_fd, rc, msg);
		}
	}
	memset(&rep, 0, sizeof(rep));
	rep.landlock_abi = abi;
	rep.seccomp = seccomp_mode_filter();
	if (report_fd >= 0) {
		if (write(report_fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep)) {
			fprintf(stderr, "airlock sandbox inner: the host went away\n");
			return 125;
		}
		close(report_fd);
	}
	/* Nothing but stdio crosses into the command. */
	syscall(SYS_close_range, 3, ~0U, 0);
	execvp(cmd[0], cmd);
	{
		int e = errno;
		/* As a shell would say it (and native does): the command's own failure. */
		fprintf(stderr, "airlock: %s: %s\n", cmd[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
usage:
	return inner_fail(report_fd, -EINVAL,
			  "usage: sandbox inner [--landlock-ro P]... [--landlock-rw P]... "
			  "[--forward PORT:SOCK] [--rlimit-as BYTES] [--report-fd N] -- CMD...");
}

int al_sandbox_inner_read_report(int fd, int timeout_ms, struct al_inner_report *rep)
{
	size_t got = 0;

	memset(rep, 0, sizeof(*rep));
	while (got < sizeof(*rep)) {
		struct pollfd pf = {fd, POLLIN, 0};
		int k = poll(&pf, 1, timeout_ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ETIMEDOUT;
		ssize_t n = read(fd, (char *)rep + got, sizeof(*rep) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		got += (size_t)n;
	}
	rep->msg[sizeof(rep->msg) - 1] = '\0';
	return 0;
}

/*
 * `PROG sandbox inner ...` with the marker set: run the helper before main,
 * whatever PROG is (airlock, test-unit, any program embedding the engine),
 * since bwrap.c binds /proc/self/exe. glibc passes argc/argv to constructors.
 */
__attribute__((constructor)) static void inner_ctor(int argc, char **argv, char **envp)
{
	(void)envp;
	if (argc >= 3 && strcmp(argv[1], "sandbox") == 0 && strcmp(argv[2], "inner") == 0 &&
	    getenv(AL_INNER_ENV) != NULL)
		_exit(al_sandbox_inner_main(argc - 2, argv + 2));
}
