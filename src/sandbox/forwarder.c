/*
 * forwarder.c - TCP 127.0.0.1:PORT -> Unix socket relay (see forwarder.h).
 */
#include "sandbox/forwarder.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF_SIZE	(32u * 1024u)
#define DEFAULT_MAXCONN 64u

/* Direction 0: client -> proxy; direction 1: proxy -> client. */
struct fconn {
	int fd[2]; /* [0] the client (TCP), [1] the proxy (Unix) */
	char *buf[2];
	size_t off[2], len[2];
	int eof[2];  /* the source of direction d sent EOF */
	int shut[2]; /* the destination of direction d was half-closed */
};

int al_forwarder_listen(uint16_t port, uint16_t *bound)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	socklen_t sl = sizeof(sa);
	int fd, one = 1, rc;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (bound)
		*bound = ntohs(sa.sin_port);
	return fd;
}

static int connect_proxy(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A Unix connect completes at once or fails (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* Closes the connection's sockets; its buffers stay with the slot for the next one. */
static void fconn_close(struct fconn *c)
{
	for (int i = 0; i < 2; i++) {
		if (c->fd[i] >= 0)
			close(c->fd[i]);
		c->fd[i] = -1;
		c->off[i] = c->len[i] = 0;
		c->eof[i] = c->shut[i] = 0;
	}
}

/* Moves bytes for direction d. 0 to keep going, -1 when the connection is finished/broken. */
static int pump(struct fconn *c, int d, short rev_src)
{
	int src = c->fd[d], dst = c->fd[!d];
	ssize_t n;

	if (c->len[d] == 0 && !c->eof[d] && (rev_src & (POLLIN | POLLHUP | POLLERR))) {
		n = recv(src, c->buf[d], BUF_SIZE, 0);
		if (n > 0) {
			c->off[d] = 0;
			c->len[d] = (size_t)n;
		} else if (n == 0) {
			c->eof[d] = 1;
		} else if (errno != EAGAIN && errno != EINTR) {
			return -1;
		}
	}
	/* Non-blocking: just try; EAGAIN leaves the bytes for POLLOUT. */
	if (c->len[d] > 0) {
		n = send(dst, c->buf[d] + c->off[d], c->len[d], MSG_NOSIGNAL);
		if (n > 0) {
			c->off[d] += (size_t)n;
			c->len[d] -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			return -1;
		}
	}
	if (c->eof[d] && c->len[d] == 0 && !c->shut[d]) {
		c->shut[d] = 1;
		shutdown(dst, SHUT_WR);
	}
	return 0;
}

/*
 * All the memory the forwarder ever uses, in one anonymous mapping made when
 * it starts: the connection slots, the pollfds and two buffers per slot.
 * Not malloc: the forwarder runs in a child of the sandbox's PID 1, itself a
 * raw clone of a multithreaded host, where a malloc arena lock may have been
 * copied held by another host thread and would never be released (init.h,
 * "Memory"). mmap is a plain system call. Untouched pages cost nothing.
 */
struct arena {
	struct fconn *conns; /* max slots; each keeps its two buffers for life */
	struct pollfd *pfd;  /* 2 + 2 * max */
	size_t size;
};

static int arena_map(struct arena *a, unsigned max)
{
	size_t conns = (size_t)max * sizeof(struct fconn);
	size_t pfds = (2 + 2 * (size_t)max) * sizeof(struct pollfd);
	size_t head = (conns + pfds + 63) & ~(size_t)63;
	char *m;

	a->size = head + (size_t)max * 2 * BUF_SIZE;
	m = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	a->conns = (struct fconn *)m;
	a->pfd = (struct pollfd *)(m + conns);
	for (unsigned i = 0; i < max; i++) {
		struct fconn *c = &a->conns[i];
		c->fd[0] = c->fd[1] = -1;
		c->buf[0] = m + head + (size_t)i * 2 * BUF_SIZE;
		c->buf[1] = c->buf[0] + BUF_SIZE;
	}
	return 0;
}

int al_forwarder_serve(int listen_fd, const struct al_forwarder_config *cfg)
{
	unsigned max = cfg && cfg->max_conns ? cfg->max_conns : DEFAULT_MAXCONN;
	struct arena a = {0};
	struct fconn *conns;
	struct pollfd *pfd;
	size_t nconns = 0;
	int rc = 0;

	if (cfg == NULL || cfg->proxy_path == NULL || listen_fd < 0)
		return -EINVAL;
	if ((rc = arena_map(&a, max)) < 0)
		return rc;
	conns = a.conns;
	pfd = a.pfd;
	for (;;) {
		size_t np = 0, i;
		int n;

		pfd[np++] = (struct pollfd){.fd = cfg->stop_fd, .events = POLLIN};
		pfd[np++] = (struct pollfd){.fd = nconns < max ? listen_fd : -1, .events = POLLIN};
		for (i = 0; i < nconns; i++) {
			struct fconn *c = &conns[i];
			for (int s = 0; s < 2; s++) {
				short ev = 0;
				if (c->len[s] == 0 && !c->eof[s])
					ev |= POLLIN; /* fd[s] is the source of direction s */
				if (c->len[!s] > 0)
					ev |= POLLOUT; /* ... and the destination of !s */
				pfd[np++] = (struct pollfd){.fd = c->fd[s], .events = ev};
			}
		}
		n = poll(pfd, np, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto done;
		}
		if (cfg->stop_fd >= 0 && pfd[0].revents)
			goto done;
		/* Existing connections first: their pollfds are indexed by position. */
		for (i = 0; i < nconns;) {
			struct fconn *c = &conns[i];
			short r0 = pfd[2 + 2 * i].revents, r1 = pfd[3 + 2 * i].revents;
			int bad = 0;

			if (r0 || r1)
				bad = pump(c, 0, r0) != 0 || pump(c, 1, r1) != 0;
			if (bad || (c->eof[0] && c->eof[1] && c->len[0] == 0 && c->len[1] == 0)) {
				fconn_close(c);
				/*
				 * Swap-remove, swapping whole slots so each keeps its
				 * buffers. The moved connection's revents sit at its old
				 * index; poll is level-triggered, so it is served on the
				 * next round instead.
				 */
				struct fconn t = *c;
				*c = conns[--nconns];
				conns[nconns] = t;
			}
			i++;
		}
		if (pfd[1].revents & POLLIN) {
			int cfd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			struct fconn *c = &conns[nconns];
			int pfd_proxy;

			if (cfd < 0)
				continue;
			c->fd[0] = cfd;
			pfd_proxy = connect_proxy(cfg->proxy_path);
			c->fd[1] = pfd_proxy < 0 ? -1 : pfd_proxy;
			if (c->fd[1] < 0) {
				fconn_close(c); /* no proxy, no connection: the client sees EOF */
				continue;
			}
			nconns++;
		}
	}
done:
	for (size_t i = 0; i < nconns; i++)
		fconn_close(&conns[i]);
	munmap(conns, a.size);
	return rc;
}

/* Writes "forwarder: <what>: errno N" to stderr without stdio (its lock may be held). */
static void say(const char *what, int err)
{
	char m[160];
	int k = snprintf(m, sizeof(m), "forwarder: %s: errno %d\n", what, err);

	if (k > 0)
		(void)!write(2, m, (size_t)k < sizeof(m) ? (size_t)k : sizeof(m) - 1);
}

int al_forwarder_main(uint16_t port, const char *proxy_path, int ready_fd, int stop_fd)
{
	struct al_forwarder_config cfg = {.proxy_path = proxy_path, .stop_fd = stop_fd};
	uint16_t bound = 0;
	char line[16];
	int fd, rc, n;

	fd = al_forwarder_listen(port, &bound);
	if (fd < 0) {
		say("cannot listen on 127.0.0.1", -fd);
		return 1;
	}
	if (ready_fd >= 0) {
		n = snprintf(line, sizeof(line), "%u\n", (unsigned)bound);
		if (write(ready_fd, line, (size_t)n) != n) {
			close(fd);
			close(ready_fd);
			return 1;
		}
		close(ready_fd);
	}
	rc = al_forwarder_serve(fd, &cfg);
	close(fd);
	if (rc != 0) {
		say("serve", -rc);
		return 1;
	}
	return 0;
}
