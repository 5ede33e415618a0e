/*
 * egress_fixture.h - the egress proxy on a loop thread, test upstreams on
 * loopback, blocking client helpers. Shared by test_egress.c and
 * test_forwarder.c (static functions; each test file includes it once).
 *
 * Everything is real: the proxy listens on a Unix socket in the test's
 * private tmpdir, upstreams are TCP servers on 127.0.0.1 (allowed through
 * explicit literal rules plus a 127.0.0.0/8 CIDR), clients are blocking
 * sockets with receive timeouts.
 */
#ifndef AL_TESTS_SANDBOX_EGRESS_FIXTURE_H
#define AL_TESTS_SANDBOX_EGRESS_FIXTURE_H

#include "unit/unit.h"

#include "core/alloc.h"
#include "sandbox/egress.h"
#include "sandbox/netpolicy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FX_MAX_DECISIONS 64

struct fx_decision {
	enum al_egress_event event;
	uint64_t id;
	char proto[16];
	char host[AL_NETPOLICY_HOST_MAX];
	uint16_t port;
	char addr[64]; /* "" when NULL */
	int allowed;
	char reason[128];
	uint64_t up, down;
};

struct fx {
	al_netpolicy *policy;
	struct al_egress_config cfg;
	char path[256];
	uv_loop_t loop;
	uv_async_t stop;
	uv_async_t query; /* reads loop-thread-only stats into the fields below */
	size_t peak_queued, active;
	int queried;
	al_egress *proxy;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started;
	int start_rc;
	struct fx_decision d[FX_MAX_DECISIONS];
	int nd;
};

static inline void fx_decision_cb(const struct al_egress_decision *d, void *data)
{
	struct fx *fx = data;
	struct fx_decision *o;

	pthread_mutex_lock(&fx->mu);
	if (fx->nd < FX_MAX_DECISIONS) {
		o = &fx->d[fx->nd++];
		o->event = d->event;
		o->id = d->id;
		snprintf(o->proto, sizeof(o->proto), "%s", d->proto);
		snprintf(o->host, sizeof(o->host), "%s", d->host);
		o->port = d->port;
		snprintf(o->addr, sizeof(o->addr), "%s", d->addr ? d->addr : "");
		o->allowed = d->allowed;
		snprintf(o->reason, sizeof(o->reason), "%s", d->reason);
		o->up = d->bytes_up;
		o->down = d->bytes_down;
	}
	pthread_cond_broadcast(&fx->cv);
	pthread_mutex_unlock(&fx->mu);
}

static inline void fx_stop_cb(uv_async_t *a)
{
	struct fx *fx = a->data;

	al_egress_stop(fx->proxy);
	fx->proxy = NULL;
	uv_close((uv_handle_t *)a, NULL);
	uv_close((uv_handle_t *)&fx->query, NULL);
}

static inline void fx_query_cb(uv_async_t *a)
{
	struct fx *fx = a->data;

	pthread_mutex_lock(&fx->mu);
	fx->peak_queued = al_egress_peak_queued(fx->proxy);
	fx->active = al_egress_active(fx->proxy);
	fx->queried = 1;
	pthread_cond_broadcast(&fx->cv);
	pthread_mutex_unlock(&fx->mu);
}

/* Fetches the proxy's stats from its loop thread. */
static inline void fx_query(struct fx *fx)
{
	pthread_mutex_lock(&fx->mu);
	fx->queried = 0;
	pthread_mutex_unlock(&fx->mu);
	uv_async_send(&fx->query);
	pthread_mutex_lock(&fx->mu);
	while (!fx->queried)
		pthread_cond_wait(&fx->cv, &fx->mu);
	pthread_mutex_unlock(&fx->mu);
}

static inline void *fx_thread(void *arg)
{
	struct fx *fx = arg;
	char err[256];
	int rc;

	uv_loop_init(&fx->loop);
	uv_async_init(&fx->loop, &fx->stop, fx_stop_cb);
	fx->stop.data = fx;
	uv_async_init(&fx->loop, &fx->query, fx_query_cb);
	fx->query.data = fx;
	rc = al_egress_start(&fx->loop, &fx->cfg, &fx->proxy, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "al_egress_start: %s\n", err);
	pthread_mutex_lock(&fx->mu);
	fx->started = 1;
	fx->start_rc = rc;
	pthread_cond_broadcast(&fx->cv);
	pthread_mutex_unlock(&fx->mu);
	if (rc != 0) {
		uv_close((uv_handle_t *)&fx->stop, NULL);
		uv_close((uv_handle_t *)&fx->query, NULL);
	}
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	uv_loop_close(&fx->loop);
	return NULL;
}

/* A policy with no rules; add them before fx_start. */
static inline struct fx *fx_new(void)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	AL_ASSERT_NOT_NULL(fx);
	fx->policy = al_netpolicy_new();
	AL_ASSERT_NOT_NULL(fx->policy);
	pthread_mutex_init(&fx->mu, NULL);
	pthread_cond_init(&fx->cv, NULL);
	snprintf(fx->path, sizeof(fx->path), "%s/egress.sock", al_test_tmpdir());
	fx->cfg.socket_path = fx->path;
	fx->cfg.policy = fx->policy;
	fx->cfg.decision_cb = fx_decision_cb;
	fx->cfg.cb_data = fx;
	fx->cfg.socket_uid = (uid_t)-1;
	fx->cfg.socket_gid = (gid_t)-1;
	return fx;
}

static inline void fx_allow_host(struct fx *fx, const char *spec)
{
	char err[128];

	if (al_netpolicy_allow_host(fx->policy, spec, err, sizeof(err)) != 0)
		al_test_fail(__FILE__, __LINE__, "allow_host %s: %s", spec, err);
}

static inline void fx_allow_cidr(struct fx *fx, const char *cidr)
{
	char err[128];

	if (al_netpolicy_allow_cidr(fx->policy, cidr, err, sizeof(err)) != 0)
		al_test_fail(__FILE__, __LINE__, "allow_cidr %s: %s", cidr, err);
}

static inline void fx_start(struct fx *fx)
{
	pthread_create(&fx->th, NULL, fx_thread, fx);
	pthread_mutex_lock(&fx->mu);
	while (!fx->started)
		pthread_cond_wait(&fx->cv, &fx->mu);
	pthread_mutex_unlock(&fx->mu);
	AL_ASSERT_INT_EQ(fx->start_rc, 0);
}

/* Stops the proxy, joins its thread, frees everything (the loop must end). */
static inline void fx_free(struct fx *fx)
{
	uv_async_send(&fx->stop);
	pthread_join(fx->th, NULL);
	al_netpolicy_free(fx->policy);
	pthread_mutex_destroy(&fx->mu);
	pthread_cond_destroy(&fx->cv);
	free(fx);
}

/* Waits up to 5 s for `n` decisions; returns how many there are. */
static inline int fx_wait_decisions(struct fx *fx, int n)
{
	struct timespec dl;
	int got;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	pthread_mutex_lock(&fx->mu);
	while (fx->nd < n && pthread_cond_timedwait(&fx->cv, &fx->mu, &dl) == 0)
		;
	got = fx->nd;
	pthread_mutex_unlock(&fx->mu);
	return got;
}

/* ---- clients -------------------------------------------------------------------------- */

static inline void fx_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = 5};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static inline int fx_connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	AL_ASSERT_INT_GE(fd, 0);
	AL_ASSERT(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		al_test_fail(__FILE__, __LINE__, "connect %s: %s", path, strerror(errno));
	fx_timeouts(fd);
	return fd;
}

static inline int fx_connect_tcp(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	AL_ASSERT_INT_GE(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -errno;
	}
	fx_timeouts(fd);
	return fd;
}

static inline void fx_send(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			al_test_fail(__FILE__, __LINE__, "send: %s", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

static inline void fx_send_str(int fd, const char *s)
{
	fx_send(fd, s, strlen(s));
}

/* Reads until EOF (or error/timeout) into a malloc'd NUL-terminated string. */
/* The byte at offset i of a large-transfer test stream: not periodic in 2^k. */
static inline char fx_pattern(size_t i)
{
	return (char)(i * 7 % 251);
}

/* Sends n pattern bytes on fd from a thread, then shuts down writing. */
struct fx_pusher {
	int fd;
	size_t n;
};

static inline void *fx_push_thread(void *arg)
{
	struct fx_pusher *p = arg;
	char buf[65536];
	size_t sent = 0;

	while (sent < p->n) {
		size_t k = p->n - sent < sizeof(buf) ? p->n - sent : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = fx_pattern(sent + i);
		fx_send(p->fd, buf, k);
		sent += k;
	}
	shutdown(p->fd, SHUT_WR);
	return NULL;
}

static inline char *fx_read_all(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);

	AL_ASSERT_NOT_NULL(b);
	for (;;) {
		ssize_t r;
		if (n + 1 >= cap) {
			cap *= 2;
			b = realloc(b, cap);
			AL_ASSERT_NOT_NULL(b);
		}
		r = recv(fd, b + n, cap - n - 1, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	if (len)
		*len = n;
	return b;
}

/* Reads exactly n bytes (fails the test on EOF/timeout). */
static inline void fx_read_n(int fd, void *p, size_t n)
{
	char *s = p;

	while (n > 0) {
		ssize_t r = recv(fd, s, n, 0);
		if (r <= 0)
			al_test_fail(__FILE__, __LINE__, "recv: %zd (%s), %zu bytes missing", r,
				     r < 0 ? strerror(errno) : "EOF", n);
		s += r;
		n -= (size_t)r;
	}
}

/* Reads a response head (up to CRLFCRLF) byte by byte into out. */
static inline void fx_read_head(int fd, char *out, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		if (recv(fd, out + n, 1, 0) != 1)
			break;
		n++;
		if (n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	out[n] = '\0';
}

/* CONNECT host:port through the proxy at fd; returns the response head. */
static inline void fx_connect_req(int fd, const char *authority, char *head, size_t cap)
{
	char req[512];

	snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority);
	fx_send_str(fd, req);
	fx_read_head(fd, head, cap);
}

/* ---- upstreams ------------------------------------------------------------------------ */

/* UP_ECHO_MANY serves connections one after another until up_free. */
enum up_mode { UP_ECHO, UP_HTTP, UP_SOURCE, UP_ECHO_MANY };

struct upstream {
	int lfd;
	uint16_t port;
	enum up_mode mode;
	pthread_t th;
	atomic_int accepted;
	atomic_int done;      /* the serving thread finished its one connection */
	atomic_int write_err; /* UP_SOURCE: a write failed (the peer went away) */
	char head[8192];      /* UP_HTTP: the request head received */
};

static inline void *up_thread(void *arg)
{
	struct upstream *u = arg;
	int fd;
	char *buf;

again:
	fd = accept(u->lfd, NULL, NULL);
	if (fd < 0)
		goto out;
	atomic_fetch_add(&u->accepted, 1);
	buf = malloc(65536);
	if (u->mode == UP_ECHO || u->mode == UP_ECHO_MANY) {
		ssize_t r;
		while ((r = recv(fd, buf, 65536, 0)) > 0) {
			ssize_t off = 0;
			while (off < r) {
				ssize_t w = send(fd, buf + off, (size_t)(r - off), MSG_NOSIGNAL);
				if (w <= 0)
					goto done;
				off += w;
			}
		}
	} else if (u->mode == UP_HTTP) {
		static const char resp[] =
		    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
		fx_read_head(fd, u->head, sizeof(u->head));
		send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL);
	} else {
		memset(buf, 'x', 65536);
		for (int i = 0; i < 100000; i++) {
			if (send(fd, buf, 65536, MSG_NOSIGNAL) <= 0) {
				atomic_store(&u->write_err, 1);
				break;
			}
		}
	}
done:
	free(buf);
	close(fd);
	if (u->mode == UP_ECHO_MANY)
		goto again;
out:
	atomic_store(&u->done, 1);
	return NULL;
}

/* One-connection server on 127.0.0.1 or ::1 (ephemeral port), on its own thread. */
static inline struct upstream *up_start_family(enum up_mode mode, int family)
{
	struct upstream *u = calloc(1, sizeof(*u));
	struct sockaddr_storage ss = {0};
	socklen_t sl =
	    family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	struct timeval tv = {.tv_sec = 10};

	AL_ASSERT_NOT_NULL(u);
	u->mode = mode;
	u->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	AL_ASSERT_INT_GE(u->lfd, 0);
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	AL_ASSERT_INT_EQ(bind(u->lfd, (struct sockaddr *)&ss, sl), 0);
	AL_ASSERT_INT_EQ(listen(u->lfd, 8), 0);
	AL_ASSERT_INT_EQ(getsockname(u->lfd, (struct sockaddr *)&ss, &sl), 0);
	/* accept() gives up after 10 s so a test that never connects still ends. */
	setsockopt(u->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	u->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					   : ((struct sockaddr_in *)&ss)->sin_port);
	pthread_create(&u->th, NULL, up_thread, u);
	return u;
}

static inline struct upstream *up_start(enum up_mode mode)
{
	return up_start_family(mode, AF_INET);
}

/* Waits up to 5 s for the serving thread to finish; 1 if it did. */
static inline int up_wait_done(struct upstream *u)
{
	for (int i = 0; i < 500 && !atomic_load(&u->done); i++)
		usleep(10000);
	return atomic_load(&u->done);
}

static inline void up_free(struct upstream *u)
{
	shutdown(u->lfd, SHUT_RDWR); /* wakes a pending accept */
	pthread_join(u->th, NULL);
	close(u->lfd);
	free(u);
}

#endif
