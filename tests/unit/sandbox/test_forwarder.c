/*
 * test_forwarder.c - the in-sandbox forwarder in a child process, relaying
 * TCP on 127.0.0.1 to the egress proxy's Unix socket, end to end to real
 * upstreams; and, as root, from inside a fresh network namespace.
 */
#include "unit/sandbox/egress_fixture.h"

#include "sandbox/forwarder.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

struct fwd {
	pid_t pid;
	uint16_t port;
	int stop_w; /* closing it stops the forwarder */
};

/* Forks the forwarder (before any thread exists) and waits for its port. */
static void fwd_start(struct fwd *f, const char *proxy_path)
{
	int ready[2], stop[2];
	char line[16] = {0};
	ssize_t n;

	AL_ASSERT_INT_EQ(pipe2(ready, O_CLOEXEC), 0);
	AL_ASSERT_INT_EQ(pipe2(stop, O_CLOEXEC), 0);
	f->pid = fork();
	AL_ASSERT_INT_GE(f->pid, 0);
	if (f->pid == 0) {
		close(ready[0]);
		close(stop[1]);
		_exit(al_forwarder_main(0, proxy_path, ready[1], stop[0]));
	}
	close(ready[1]);
	close(stop[0]);
	f->stop_w = stop[1];
	n = read(ready[0], line, sizeof(line) - 1);
	close(ready[0]);
	AL_ASSERT(n > 1);
	f->port = (uint16_t)strtol(line, NULL, 10);
	AL_ASSERT(f->port != 0);
}

/* Stops the forwarder; returns its exit status (0 when it stopped cleanly). */
static int fwd_stop(struct fwd *f)
{
	int status = 0;

	close(f->stop_w);
	if (waitpid(f->pid, &status, 0) != f->pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

AL_TEST(forwarder_end_to_end)
{
	struct fwd f;
	struct fx *fx;
	struct upstream *echo, *http;
	char auth[64], head[1024], buf[8] = {0}, req[256], *rest;
	int fd;

	fx = fx_new();
	fwd_start(&f, fx->path);
	echo = up_start(UP_ECHO);
	http = up_start(UP_HTTP);
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)echo->port);
	fx_allow_host(fx, auth);
	snprintf(req, sizeof(req), "127.0.0.1:%u", (unsigned)http->port);
	fx_allow_host(fx, req);
	fx_allow_cidr(fx, "127.0.0.0/8");
	fx_start(fx);

	/* HTTPS_PROXY style: CONNECT through the forwarder. */
	fd = fx_connect_tcp(f.port);
	AL_ASSERT_INT_GE(fd, 0);
	fx_connect_req(fd, auth, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	fx_send_str(fd, "abc");
	fx_read_n(fd, buf, 3);
	AL_ASSERT_STR_EQ(buf, "abc");
	shutdown(fd, SHUT_WR);
	rest = fx_read_all(fd, NULL);
	AL_ASSERT_STR_EQ(rest, "");
	free(rest);
	close(fd);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 2), 2);
	AL_ASSERT_INT_EQ(fx->d[1].event, AL_EGRESS_CLOSED);
	AL_ASSERT_INT_EQ(fx->d[1].up, 3);
	AL_ASSERT_INT_EQ(fx->d[1].down, 3);

	/* HTTP_PROXY style: an absolute-form GET. */
	fd = fx_connect_tcp(f.port);
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/x HTTP/1.1\r\nHost: h\r\n\r\n",
		 (unsigned)http->port);
	fx_send_str(fd, req);
	rest = fx_read_all(fd, NULL);
	AL_ASSERT(strncmp(rest, "HTTP/1.1 200 OK", 15) == 0);
	AL_ASSERT(strstr(rest, "hello") != NULL);
	free(rest);
	close(fd);

	/* A denied host through the forwarder: the proxy's 403 comes back. */
	fd = fx_connect_tcp(f.port);
	fx_connect_req(fd, "metadata.google.internal:80", head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 403 ", 13) == 0);
	close(fd);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 5), 5);
	AL_ASSERT_INT_EQ(fx->d[4].event, AL_EGRESS_DENIED);
	AL_ASSERT_STR_EQ(fx->d[4].host, "metadata.google.internal");

	AL_ASSERT_INT_EQ(fwd_stop(&f), 0);
	fx_free(fx);
	up_free(echo);
	up_free(http);
}

AL_TEST(forwarder_large_transfer_both_ways)
{
	struct fwd f;
	struct fx *fx = fx_new();
	struct upstream *u;
	struct fx_pusher p;
	pthread_t th;
	char auth[64], head[1024], *buf;
	size_t total = 8u * 1024u * 1024u, got = 0;
	int fd;

	fwd_start(&f, fx->path);
	u = up_start(UP_ECHO);
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)u->port);
	fx_allow_host(fx, auth);
	fx_allow_cidr(fx, "127.0.0.0/8");
	fx_start(fx);
	fd = fx_connect_tcp(f.port);
	AL_ASSERT_INT_GE(fd, 0);
	fx_connect_req(fd, auth, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	p.fd = fd;
	p.n = total;
	pthread_create(&th, NULL, fx_push_thread, &p);
	usleep(200000); /* let every buffer on the path fill */
	buf = malloc(65536);
	while (got < total) {
		ssize_t r = recv(fd, buf, 65536, 0);
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != fx_pattern(got + (size_t)i))
				al_test_fail(__FILE__, __LINE__, "byte %zu differs",
					     got + (size_t)i);
		got += (size_t)r;
	}
	free(buf);
	pthread_join(th, NULL);
	AL_ASSERT_INT_EQ(got, total);
	close(fd);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 2), 2);
	AL_ASSERT_INT_EQ(fx->d[1].up, total);
	AL_ASSERT_INT_EQ(fx->d[1].down, total);
	AL_ASSERT_INT_EQ(fwd_stop(&f), 0);
	fx_free(fx);
	up_free(u);
}

AL_TEST(forwarder_without_proxy_closes_client)
{
	char path[300], *rest;
	struct fwd f;
	int fd;

	snprintf(path, sizeof(path), "%s/nobody-listens.sock", al_test_tmpdir());
	fwd_start(&f, path);
	fd = fx_connect_tcp(f.port);
	AL_ASSERT_INT_GE(fd, 0);
	fx_send_str(fd, "CONNECT a:1 HTTP/1.1\r\n\r\n");
	rest = fx_read_all(fd, NULL);
	AL_ASSERT_STR_EQ(rest, "");
	free(rest);
	close(fd);
	/* Still serving afterwards. */
	fd = fx_connect_tcp(f.port);
	AL_ASSERT_INT_GE(fd, 0);
	close(fd);
	AL_ASSERT_INT_EQ(fwd_stop(&f), 0);
	AL_ASSERT_INT_EQ(al_forwarder_serve(-1, NULL), -EINVAL);
}

static int lo_up(void)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

	if (s < 0)
		return -1;
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
	return rc;
}

/*
 * The child's whole job inside the namespace; exit codes name the step that
 * failed (the parent reports them).
 */
static int netns_child(const char *proxy_path, uint16_t up_port)
{
	struct fwd f;
	char auth[64], head[256], buf[4] = {0};
	int stop[2], lfd, fd;
	uint16_t port = 0;
	pid_t pid;

	if (unshare(CLONE_NEWNET) != 0)
		return 10;
	if (lo_up() != 0)
		return 11;
	/* The host's loopback is not this loopback: the upstream is unreachable. */
	fd = fx_connect_tcp(up_port);
	if (fd >= 0 || fd != -ECONNREFUSED)
		return 12;
	lfd = al_forwarder_listen(0, &port);
	if (lfd < 0 || pipe2(stop, O_CLOEXEC) != 0)
		return 13;
	pid = fork();
	if (pid == 0) {
		struct al_forwarder_config cfg = {.proxy_path = proxy_path, .stop_fd = stop[0]};
		close(stop[1]);
		_exit(al_forwarder_serve(lfd, &cfg) == 0 ? 0 : 1);
	}
	close(stop[0]);
	close(lfd);
	f.pid = pid;
	f.stop_w = stop[1];
	fd = fx_connect_tcp(port);
	if (fd < 0)
		return 14;
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)up_port);
	snprintf(head, sizeof(head), "CONNECT %s HTTP/1.1\r\n\r\n", auth);
	if (send(fd, head, strlen(head), MSG_NOSIGNAL) != (ssize_t)strlen(head))
		return 15;
	fx_read_head(fd, head, sizeof(head));
	if (strncmp(head, "HTTP/1.1 200 ", 13) != 0)
		return 16;
	if (send(fd, "xyz", 3, MSG_NOSIGNAL) != 3 || recv(fd, buf, 3, MSG_WAITALL) != 3 ||
	    strcmp(buf, "xyz") != 0)
		return 17;
	close(fd);
	return fwd_stop(&f) == 0 ? 0 : 18;
}

AL_TEST(forwarder_inside_network_namespace)
{
	struct fx *fx;
	struct upstream *u;
	char auth[64];
	int status = 0;
	pid_t pid;

	if (geteuid() != 0) {
		fprintf(stderr, "forwarder_inside_network_namespace: skipped, needs root "
				"for unshare(CLONE_NEWNET)\n");
		return;
	}
	fx = fx_new();
	u = up_start(UP_ECHO);
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)u->port);
	fx_allow_host(fx, auth);
	fx_allow_cidr(fx, "127.0.0.0/8");
	fx_start(fx);
	pid = fork();
	AL_ASSERT_INT_GE(pid, 0);
	if (pid == 0)
		_exit(netns_child(fx->path, u->port));
	AL_ASSERT_INT_EQ(waitpid(pid, &status, 0), pid);
	AL_ASSERT(WIFEXITED(status));
	AL_ASSERT_INT_EQ(WEXITSTATUS(status), 0);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 2), 2);
	AL_ASSERT_INT_EQ(fx->d[0].event, AL_EGRESS_CONNECTED);
	AL_ASSERT_INT_EQ(fx->d[1].up, 3);
	fx_free(fx);
	up_free(u);
}
