/*
 * test_landlock.c - Landlock applied for real in forked children.
 *
 * Children report through their exit status (0 = every expectation held)
 * and leave with _exit, so nothing at exit runs inside the domain.
 */
#include "sandbox/landlock.h"
#include "unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_EXPECT(cond)                                                                         \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "    child %s:%d: %s (errno %d %s)\n", __FILE__, __LINE__, \
				#cond, errno, strerror(errno));                                    \
			_exit(__LINE__ % 250 + 1);                                                 \
		}                                                                                  \
	} while (0)

static char ro_dir[512], rw_dir[512], out_dir[512];
static const struct al_landlock_rules *child_rules;
static void (*child_check)(void);

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	AL_ASSERT(fd >= 0);
	AL_ASSERT_INT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
	close(fd);
}

static void make_dirs(void)
{
	const char *t = al_test_tmpdir();
	char p[600];

	snprintf(ro_dir, sizeof(ro_dir), "%s/ro", t);
	snprintf(rw_dir, sizeof(rw_dir), "%s/rw", t);
	snprintf(out_dir, sizeof(out_dir), "%s/outside", t);
	AL_ASSERT_INT_EQ(mkdir(ro_dir, 0755), 0);
	AL_ASSERT_INT_EQ(mkdir(rw_dir, 0755), 0);
	AL_ASSERT_INT_EQ(mkdir(out_dir, 0755), 0);
	snprintf(p, sizeof(p), "%s/file", ro_dir);
	write_file(p, "readable");
	snprintf(p, sizeof(p), "%s/secret", out_dir);
	write_file(p, "secret");
}

/* Applies child_rules in a child, then runs child_check there. */
static int run_confined(void)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	AL_ASSERT(pid >= 0);
	if (pid == 0) {
		char err[256] = "";
		int abi = -1;
		int rc = al_landlock_apply(child_rules, &abi, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "    child: apply: %d %s\n", rc, err);
			_exit(250);
		}
		CHILD_EXPECT(abi == al_landlock_abi(err, sizeof(err)));
		child_check();
		_exit(0);
	}
	AL_ASSERT_INT_EQ(waitpid(pid, &status, 0), pid);
	return status;
}

AL_TEST(sandbox_landlock_abi_and_handled_sets)
{
	char err[128] = "";
	int abi = al_landlock_abi(err, sizeof(err));
	struct al_landlock_handled h;

	AL_ASSERT_INT_GE(abi, 1);
	h = al_landlock_handled_for_abi(1);
	AL_ASSERT_INT_EQ(h.fs, 0x1fff);
	AL_ASSERT_INT_EQ(h.net, 0);
	h = al_landlock_handled_for_abi(2);
	AL_ASSERT_INT_EQ(h.fs, 0x3fff); /* + REFER */
	h = al_landlock_handled_for_abi(3);
	AL_ASSERT_INT_EQ(h.fs, 0x7fff); /* + TRUNCATE */
	AL_ASSERT_INT_EQ(h.net, 0);
	h = al_landlock_handled_for_abi(4);
	AL_ASSERT_INT_EQ(h.net, 0x3); /* BIND_TCP | CONNECT_TCP */
	AL_ASSERT_INT_EQ(h.fs, 0x7fff);
	h = al_landlock_handled_for_abi(5);
	AL_ASSERT_INT_EQ(h.fs, 0xffff); /* + IOCTL_DEV */
	AL_ASSERT_INT_EQ(h.scoped, 0);
	h = al_landlock_handled_for_abi(6);
	AL_ASSERT_INT_EQ(h.scoped, 0x3); /* ABSTRACT_UNIX_SOCKET | SIGNAL */
	h = al_landlock_handled_for_abi(abi);
	AL_ASSERT_INT_NE(h.fs, 0);
	h = al_landlock_handled_for_abi(0);
	AL_ASSERT_INT_EQ(h.fs | h.net | h.scoped, 0);
}

static void fs_check(void)
{
	char p[600], buf[16] = "";
	int fd;

	/* Outside every rule: not even readable, directory not listable. */
	snprintf(p, sizeof(p), "%s/secret", out_dir);
	errno = 0;
	CHILD_EXPECT(open(p, O_RDONLY) < 0 && errno == EACCES);
	errno = 0;
	CHILD_EXPECT(open(out_dir, O_RDONLY | O_DIRECTORY) < 0 && errno == EACCES);
	errno = 0;
	CHILD_EXPECT(open("/etc/hostname", O_RDONLY) < 0 && errno == EACCES);
	/* Read-only: readable, not writable, nothing can be created or truncated. */
	snprintf(p, sizeof(p), "%s/file", ro_dir);
	fd = open(p, O_RDONLY);
	CHILD_EXPECT(fd >= 0);
	CHILD_EXPECT(read(fd, buf, sizeof(buf) - 1) == 8);
	CHILD_EXPECT(strcmp(buf, "readable") == 0);
	close(fd);
	errno = 0;
	CHILD_EXPECT(open(p, O_WRONLY) < 0 && errno == EACCES);
	errno = 0;
	CHILD_EXPECT(truncate(p, 0) != 0 && errno == EACCES);
	snprintf(p, sizeof(p), "%s/new", ro_dir);
	errno = 0;
	CHILD_EXPECT(open(p, O_WRONLY | O_CREAT, 0644) < 0 && errno == EACCES);
	errno = 0;
	CHILD_EXPECT(mkdir(p, 0755) != 0 && errno == EACCES);
	/* Read-write: everything works. */
	snprintf(p, sizeof(p), "%s/new", rw_dir);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHILD_EXPECT(fd >= 0);
	CHILD_EXPECT(write(fd, "x", 1) == 1);
	close(fd);
	CHILD_EXPECT(unlink(p) == 0);
	CHILD_EXPECT(mkdir(p, 0755) == 0);
	/* A program runs from the read-only system directories. */
	{
		pid_t pid = fork();
		int status = 0;
		CHILD_EXPECT(pid >= 0);
		if (pid == 0) {
			execl("/bin/sh", "sh", "-c", "exit 42", (char *)NULL);
			_exit(127);
		}
		CHILD_EXPECT(waitpid(pid, &status, 0) == pid);
		CHILD_EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 42);
	}
}

AL_TEST(sandbox_landlock_filesystem_rules)
{
	char p[600];
	const char *ro[] = {ro_dir,	      "/usr", "/bin", "/lib", "/lib64", "/etc/ld.so.cache",
			    "/does/not/exist"};
	const char *rw[] = {rw_dir};
	struct al_landlock_rules r = {.ro_paths = ro, .n_ro = 7, .rw_paths = rw, .n_rw = 1};

	make_dirs();
	child_rules = &r;
	child_check = fs_check;
	AL_ASSERT_INT_EQ(run_confined(), 0);
	/* The host is unchanged: the secret is intact, the ro dir has no new entry. */
	snprintf(p, sizeof(p), "%s/new", ro_dir);
	AL_ASSERT_INT_EQ(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/new", rw_dir);
	AL_ASSERT_INT_EQ(access(p, F_OK), 0);
}

static int listen_tcp(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	AL_ASSERT(fd >= 0);
	AL_ASSERT_INT_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	AL_ASSERT_INT_EQ(listen(fd, 8), 0);
	AL_ASSERT_INT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static uint16_t allowed_port, denied_port;

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				.sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

static void net_check(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd;

	CHILD_EXPECT(tcp_connect(allowed_port) == 0);
	CHILD_EXPECT(tcp_connect(denied_port) == -EACCES);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHILD_EXPECT(fd >= 0);
	a.sin_port = htons(denied_port);
	errno = 0;
	CHILD_EXPECT(bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno == EACCES);
	close(fd);
}

AL_TEST(sandbox_landlock_tcp_ports)
{
	char err[128];
	struct al_landlock_rules r = {0};
	int l1, l2;

	if (al_landlock_abi(err, sizeof(err)) < 4) {
		fprintf(stderr, "    skipped: Landlock ABI < 4 has no network rules\n");
		return;
	}
	l1 = listen_tcp(&allowed_port);
	l2 = listen_tcp(&denied_port);
	r.connect_ports = &allowed_port;
	r.n_connect = 1;
	child_rules = &r;
	child_check = net_check;
	AL_ASSERT_INT_EQ(run_confined(), 0);
	close(l1);
	close(l2);
}

static void scope_check(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	/* Signals to a process outside the domain (the parent) are refused. */
	errno = 0;
	CHILD_EXPECT(kill(getppid(), 0) != 0 && errno == EPERM);
	/* ... while the child may still signal itself. */
	CHILD_EXPECT(kill(getpid(), 0) == 0);
	/* Abstract sockets created outside the domain are unreachable. */
	memcpy(a.sun_path, "\0al-landlock-test", 17);
	CHILD_EXPECT(fd >= 0);
	errno = 0;
	CHILD_EXPECT(
	    connect(fd, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 17) != 0 &&
	    errno == EPERM);
	close(fd);
}

static void unscoped_check(void)
{
	CHILD_EXPECT(kill(getppid(), 0) == 0);
}

AL_TEST(sandbox_landlock_scopes_signals_and_abstract_sockets)
{
	char err[128];
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct al_landlock_rules r = {0};
	int l;

	if (al_landlock_abi(err, sizeof(err)) < 6) {
		fprintf(stderr, "    skipped: Landlock ABI < 6 has no scopes\n");
		return;
	}
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	AL_ASSERT(l >= 0);
	memcpy(a.sun_path, "\0al-landlock-test", 17);
	AL_ASSERT_INT_EQ(
	    bind(l, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 17), 0);
	AL_ASSERT_INT_EQ(listen(l, 4), 0);
	r.flags = AL_LANDLOCK_NET_UNHANDLED;
	child_rules = &r;
	child_check = scope_check;
	AL_ASSERT_INT_EQ(run_confined(), 0);
	r.flags = AL_LANDLOCK_NET_UNHANDLED | AL_LANDLOCK_ALLOW_SIGNAL;
	child_check = unscoped_check;
	AL_ASSERT_INT_EQ(run_confined(), 0);
	close(l);
}

AL_TEST(sandbox_landlock_rejects_bad_arguments)
{
	char err[128] = "";
	struct al_landlock_rules r = {.flags = 1u << 9};
	int abi = 99;

	AL_ASSERT_INT_EQ(al_landlock_apply(&r, &abi, err, sizeof(err)), -EINVAL);
	AL_ASSERT_INT_EQ(abi, 0);
	AL_ASSERT_INT_EQ(al_landlock_apply(NULL, NULL, err, sizeof(err)), -EINVAL);
}
