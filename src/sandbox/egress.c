/*
 * egress.c - the host-side egress proxy (see egress.h).
 *
 * One struct conn per client connection, a small state machine:
 *   HEAD        reading the request head (HTTP) or the SOCKS5 greeting and
 *               request; the client is not read beyond that until connected
 *   RESOLVING   uv_getaddrinfo in flight
 *   CONNECTING  uv_tcp_connect to the checked address in flight
 *   SPLICE      bytes both ways
 *   CLOSING     handles closing; freed when the last close callback and the
 *               getaddrinfo callback (cancelled if needed) have run
 * Every buffer read from one side is handed to uv_write on the other side
 * without copying; the write request owns it until its callback.
 */
#include "sandbox/egress.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define HEAD_MAX	(16u * 1024u)
#define READ_CHUNK	(64u * 1024u)
#define HIGH_WATER	(256u * 1024u)
#define LOW_WATER	(64u * 1024u)
#define DEFAULT_MAXCONN 64u
#define DEFAULT_IDLE_MS 300000u
#define DEFAULT_CONN_MS 15000u

enum state { ST_HEAD, ST_RESOLVING, ST_CONNECTING, ST_SPLICE, ST_CLOSING };
enum proto { P_UNKNOWN, P_CONNECT, P_HTTP, P_SOCKS };
enum { SIDE_CLIENT = 0, SIDE_UP = 1 };

struct conn {
	al_egress *e;
	struct conn *prev, *next;
	uint64_t id;
	enum state st;
	enum proto proto;
	uv_pipe_t client;
	uv_tcp_t up;
	uv_timer_t timer;
	uv_getaddrinfo_t gai;
	uv_connect_t creq;
	int open_handles; /* handles not yet closed (close callbacks pending) */
	int gai_pending;  /* the getaddrinfo callback has not run yet */
	int up_inited;
	int connected;		 /* CONNECTED reported: CLOSED is owed */
	int paused[2];		 /* reading side i is stopped for backpressure */
	int eof[2];		 /* side i sent EOF */
	int shut[2];		 /* shutdown sent to side i */
	int shut_done[2];	 /* ... and completed (queued writes flushed) */
	int closing_after_write; /* a refusal is being written: close when flushed */
	char head[HEAD_MAX];
	size_t head_len;
	int socks_greeted; /* SOCKS5 method reply sent */
	char host[AL_NETPOLICY_HOST_MAX];
	uint16_t port;
	char addr[INET6_ADDRSTRLEN];
	struct sockaddr_storage target;
	al_buf pending_up; /* bytes for upstream once connected (rewritten head, leftovers) */
	uint64_t bytes_up, bytes_down;
};

struct al_egress {
	uv_loop_t *loop;
	uv_pipe_t listener;
	int listener_open;
	int stopping;
	char *path; /* owned */
	const al_netpolicy *policy;
	al_egress_decision_cb cb;
	void *cb_data;
	unsigned max_conns;
	uint64_t idle_ms, conn_ms;
	int socks5;
	struct conn *conns;
	size_t nconns;
	uint64_t next_id;
	size_t peak_queued; /* largest write queue seen while splicing */
	/* Out of memory at accept: the connection is accepted into this handle
	 * and closed at once. libuv stops watching the listener until a pending
	 * connection is accepted, so simply returning would wedge the proxy. */
	uv_pipe_t reject;
	int reject_busy;    /* reject is in use (closing) */
	int reject_pending; /* another connection waits for it */
};

struct wreq {
	uv_write_t req;
	struct conn *c;
	int to; /* the side written to */
	char *base;
};

static const char *proto_name(enum proto p)
{
	switch (p) {
	case P_CONNECT:
		return "connect";
	case P_HTTP:
		return "http";
	case P_SOCKS:
		return "socks5";
	default:
		return "unknown";
	}
}

static void report(struct conn *c, enum al_egress_event ev, const char *reason)
{
	struct al_egress_decision d = {0};

	if (c->e->cb == NULL)
		return;
	d.event = ev;
	d.id = c->id;
	d.proto = proto_name(c->proto);
	d.host = c->host;
	d.port = c->port;
	d.addr = c->addr[0] ? c->addr : NULL;
	d.allowed = ev == AL_EGRESS_CONNECTED || ev == AL_EGRESS_CLOSED;
	d.reason = reason;
	d.bytes_up = c->bytes_up;
	d.bytes_down = c->bytes_down;
	c->e->cb(&d, c->e->cb_data);
}

static uv_stream_t *side(struct conn *c, int s)
{
	return s == SIDE_CLIENT ? (uv_stream_t *)&c->client : (uv_stream_t *)&c->up;
}

static void maybe_free_egress(al_egress *e)
{
	if (e->stopping && !e->listener_open && e->conns == NULL && !e->reject_busy) {
		al_free(e->path);
		al_free(e);
	}
}

static void conn_maybe_free(struct conn *c)
{
	al_egress *e = c->e;

	if (c->open_handles > 0 || c->gai_pending)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		e->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	e->nconns--;
	al_buf_free(&c->pending_up);
	al_free(c);
	maybe_free_egress(e);
}

static void handle_closed_cb(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->open_handles--;
	conn_maybe_free(c);
}

static void conn_close(struct conn *c)
{
	if (c->st == ST_CLOSING)
		return;
	c->st = ST_CLOSING;
	if (c->connected) {
		c->connected = 0;
		report(c, AL_EGRESS_CLOSED, "closed");
	}
	if (c->gai_pending)
		uv_cancel((uv_req_t *)&c->gai);
	uv_close((uv_handle_t *)&c->client, handle_closed_cb);
	uv_close((uv_handle_t *)&c->timer, handle_closed_cb);
	if (c->up_inited)
		uv_close((uv_handle_t *)&c->up, handle_closed_cb);
}

static void deny(struct conn *c, enum al_egress_event ev, int http_status, uint8_t socks_code,
		 const char *reason);

/* A refusal is on its way out, or the connection is closing: ignore late callbacks. */
static int dead(const struct conn *c)
{
	return c->st == ST_CLOSING || c->closing_after_write;
}

static void timer_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->st == ST_SPLICE || dead(c)) {
		conn_close(c); /* idle, or a client that never reads its refusal */
		return;
	}
	/* Still setting up: the client gets an answer, the audit a record. */
	if (c->st == ST_HEAD)
		deny(c, AL_EGRESS_DENIED, 408, 1, "request head timeout");
	else
		deny(c, AL_EGRESS_FAILED, 504, 4, "upstream timeout");
}

static void arm_timer(struct conn *c, uint64_t ms)
{
	uv_timer_start(&c->timer, timer_cb, ms, 0);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;
	size_t n = READ_CHUNK;

	(void)hint;
	if (c->st == ST_HEAD) {
		/* Read the head into a bounded scratch area; copied in read_head. */
		n = HEAD_MAX - c->head_len;
		if (n == 0)
			n = 1; /* read_head refuses the overflow */
	}
	buf->base = al_malloc(n);
	buf->len = buf->base ? n : 0;
}

static void write_done_cb(uv_write_t *req, int status);

/* Queues len bytes at base (ownership passes) to side `to`. */
static int conn_write(struct conn *c, int to, char *base, size_t len)
{
	struct wreq *w = al_malloc(sizeof(*w));
	uv_buf_t b = uv_buf_init(base, (unsigned)len);
	int rc;

	if (w == NULL) {
		al_free(base);
		return -ENOMEM;
	}
	w->c = c;
	w->to = to;
	w->base = base;
	w->req.data = w;
	rc = uv_write(&w->req, side(c, to), &b, 1, write_done_cb);
	if (rc != 0) {
		al_free(base);
		al_free(w);
		return rc;
	}
	return 0;
}

static int conn_write_copy(struct conn *c, int to, const void *p, size_t len)
{
	char *copy = al_malloc(len ? len : 1);

	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, p, len);
	return conn_write(c, to, copy, len);
}

static void read_client_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void read_up_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void resume(struct conn *c, int s)
{
	if (!c->paused[s] || c->eof[s] || c->st != ST_SPLICE)
		return;
	c->paused[s] = 0;
	uv_read_start(side(c, s), alloc_cb, s == SIDE_CLIENT ? read_client_cb : read_up_cb);
}

static void write_done_cb(uv_write_t *req, int status)
{
	struct wreq *w = req->data;
	struct conn *c = w->c;
	int to = w->to;

	al_free(w->base);
	al_free(w);
	if (c->st == ST_CLOSING)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->closing_after_write && to == SIDE_CLIENT &&
	    uv_stream_get_write_queue_size(side(c, SIDE_CLIENT)) == 0) {
		conn_close(c);
		return;
	}
	/* The other side was paused because this side's queue was full. */
	if (uv_stream_get_write_queue_size(side(c, to)) <= LOW_WATER)
		resume(c, to == SIDE_CLIENT ? SIDE_UP : SIDE_CLIENT);
}

/* Both sides sent EOF and both half-closes have flushed: nothing left to carry. */
static void maybe_finish(struct conn *c)
{
	if (c->eof[0] && c->eof[1] && c->shut_done[0] && c->shut_done[1])
		conn_close(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;
	int s = req->handle == side(c, SIDE_CLIENT) ? SIDE_CLIENT : SIDE_UP;

	al_free(req);
	if (c->st == ST_CLOSING)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	c->shut_done[s] = 1;
	maybe_finish(c);
}

/* Side `from` sent EOF: pass it on as a half-close, close when both are done. */
static void on_eof(struct conn *c, int from)
{
	int to = from == SIDE_CLIENT ? SIDE_UP : SIDE_CLIENT;
	uv_shutdown_t *req;

	c->eof[from] = 1;
	uv_read_stop(side(c, from));
	if (!c->shut[to]) {
		c->shut[to] = 1;
		req = al_malloc(sizeof(*req));
		if (req == NULL) {
			conn_close(c);
			return;
		}
		req->data = c;
		if (uv_shutdown(req, side(c, to), shutdown_cb) != 0) {
			al_free(req);
			conn_close(c);
		}
	}
}

static void splice_read(struct conn *c, int from, ssize_t nread, const uv_buf_t *buf)
{
	int to = from == SIDE_CLIENT ? SIDE_UP : SIDE_CLIENT;

	if (nread <= 0) {
		al_free(buf->base);
		if (nread == UV_EOF)
			on_eof(c, from);
		else if (nread < 0)
			conn_close(c);
		return;
	}
	arm_timer(c, c->e->idle_ms);
	if (from == SIDE_CLIENT)
		c->bytes_up += (uint64_t)nread;
	else
		c->bytes_down += (uint64_t)nread;
	if (conn_write(c, to, buf->base, (size_t)nread) != 0) {
		conn_close(c);
		return;
	}
	if (uv_stream_get_write_queue_size(side(c, to)) > c->e->peak_queued)
		c->e->peak_queued = uv_stream_get_write_queue_size(side(c, to));
	if (uv_stream_get_write_queue_size(side(c, to)) > HIGH_WATER) {
		c->paused[from] = 1;
		uv_read_stop(side(c, from));
	}
}

static void read_up_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (c->st != ST_SPLICE) {
		al_free(buf->base);
		return;
	}
	splice_read(c, SIDE_UP, nread, buf);
}

/* ---- refusals ------------------------------------------------------------------------- */

static void refuse_http(struct conn *c, int status, const char *reason)
{
	const char *text = status == 403   ? "Forbidden"
			   : status == 400 ? "Bad Request"
			   : status == 408 ? "Request Timeout"
			   : status == 502 ? "Bad Gateway"
			   : status == 503 ? "Service Unavailable"
			   : status == 504 ? "Gateway Timeout"
					   : "Error";
	al_buf b = {0};

	uv_read_stop(side(c, SIDE_CLIENT));
	if (al_buf_appendf(&b,
			   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			   "Connection: close\r\n\r\n%s\n",
			   status, text, strlen(reason) + 1, reason) != 0) {
		conn_close(c);
		goto done;
	}
	c->closing_after_write = 1;
	if (conn_write_copy(c, SIDE_CLIENT, b.data, b.len) != 0)
		conn_close(c);
done:
	al_buf_free(&b);
}

static void refuse_socks(struct conn *c, uint8_t code)
{
	uint8_t r[10] = {5, code, 0, 1, 0, 0, 0, 0, 0, 0};

	uv_read_stop(side(c, SIDE_CLIENT));
	c->closing_after_write = 1;
	if (conn_write_copy(c, SIDE_CLIENT, r, sizeof(r)) != 0)
		conn_close(c);
}

/* A refusal: audit it, answer in the client's protocol, close. */
static void deny(struct conn *c, enum al_egress_event ev, int http_status, uint8_t socks_code,
		 const char *reason)
{
	if (dead(c))
		return; /* already answered: one decision per connection */
	report(c, ev, reason);
	if (c->proto == P_SOCKS)
		refuse_socks(c, socks_code);
	else if (c->proto == P_UNKNOWN && c->head_len > 0 && c->head[0] == 5)
		conn_close(c); /* SOCKS5 while disabled: no common reply format */
	else
		refuse_http(c, http_status, reason);
}

/* ---- connecting ----------------------------------------------------------------------- */

static void start_splice(struct conn *c)
{
	static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	static const uint8_t socks_ok[10] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
	int rc = 0;

	c->st = ST_SPLICE;
	c->connected = 1;
	report(c, AL_EGRESS_CONNECTED, "allowed");
	arm_timer(c, c->e->idle_ms);
	if (c->proto == P_CONNECT)
		rc = conn_write_copy(c, SIDE_CLIENT, established, sizeof(established) - 1);
	else if (c->proto == P_SOCKS)
		rc = conn_write_copy(c, SIDE_CLIENT, socks_ok, sizeof(socks_ok));
	if (rc == 0 && c->pending_up.len > 0) {
		size_t n;
		char *p;

		c->bytes_up += c->pending_up.len;
		p = al_buf_steal(&c->pending_up, &n);
		if (p == NULL)
			rc = -ENOMEM;
		else
			rc = conn_write(c, SIDE_UP, p, n);
	}
	if (rc == 0)
		rc = uv_read_start(side(c, SIDE_CLIENT), alloc_cb, read_client_cb);
	if (rc == 0)
		rc = uv_read_start(side(c, SIDE_UP), alloc_cb, read_up_cb);
	if (rc != 0)
		conn_close(c);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->data;

	if (dead(c))
		return;
	if (status < 0) {
		deny(c, AL_EGRESS_FAILED, 502, status == UV_ECONNREFUSED ? 5 : 4,
		     status == UV_ECONNREFUSED ? "upstream refused the connection"
					       : "upstream connect failed");
		return;
	}
	start_splice(c);
}

static void set_addr_string(struct conn *c, const struct sockaddr *sa)
{
	c->addr[0] = '\0';
	if (sa->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)sa, c->addr, sizeof(c->addr));
	else if (sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)sa, c->addr, sizeof(c->addr));
}

/* Connects to c->target, which has passed al_netpolicy_check_addr. */
static void connect_checked(struct conn *c)
{
	int rc;

	rc = uv_tcp_init(c->e->loop, &c->up);
	if (rc != 0) {
		deny(c, AL_EGRESS_FAILED, 502, 1, "proxy out of resources");
		return;
	}
	c->up.data = c;
	c->up_inited = 1;
	c->open_handles++;
	c->st = ST_CONNECTING;
	c->creq.data = c;
	rc = uv_tcp_connect(&c->creq, &c->up, (const struct sockaddr *)&c->target, connect_cb);
	if (rc != 0)
		deny(c, AL_EGRESS_FAILED, 502, 4, "upstream connect failed");
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct conn *c = req->data;
	const struct addrinfo *ai, *pick = NULL;
	const char *why = NULL;

	c->gai_pending = 0;
	if (dead(c)) {
		uv_freeaddrinfo(res);
		if (c->st == ST_CLOSING)
			conn_maybe_free(c);
		return;
	}
	if (status < 0 || res == NULL) {
		deny(c, AL_EGRESS_FAILED, 502, 4, "name resolution failed");
		goto done;
	}
	/* Every address must pass: one forbidden record refuses the name. */
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (al_netpolicy_check_addr(c->e->policy, ai->ai_addr, &why) != 1) {
			set_addr_string(c, ai->ai_addr);
			deny(c, AL_EGRESS_DENIED, 403, 2, why);
			goto done;
		}
		if (pick == NULL || (pick->ai_family == AF_INET6 && ai->ai_family == AF_INET))
			pick = ai;
	}
	if (pick == NULL) {
		deny(c, AL_EGRESS_FAILED, 502, 4, "name resolution failed");
		goto done;
	}
	memset(&c->target, 0, sizeof(c->target));
	memcpy(&c->target, pick->ai_addr, pick->ai_addrlen);
	if (pick->ai_family == AF_INET)
		((struct sockaddr_in *)&c->target)->sin_port = htons(c->port);
	else
		((struct sockaddr_in6 *)&c->target)->sin6_port = htons(c->port);
	set_addr_string(c, (const struct sockaddr *)&c->target);
	connect_checked(c);
done:
	uv_freeaddrinfo(res);
}

/* The request names c->host (raw, hl bytes) and c->port: apply the policy. */
static void decide(struct conn *c, const char *host, size_t hl)
{
	struct al_netpolicy_target t;
	struct addrinfo hints = {0};
	const char *why;
	int rc;

	uv_read_stop(side(c, SIDE_CLIENT));
	rc = al_netpolicy_check_host(c->e->policy, host, hl, c->port, &t, &why);
	memcpy(c->host, t.host, sizeof(c->host));
	if (rc != 1) {
		deny(c, AL_EGRESS_DENIED, 403, 2, rc < 0 ? "internal error" : why);
		return;
	}
	if (t.is_literal) {
		set_addr_string(c, (const struct sockaddr *)&t.addr);
		if (al_netpolicy_check_addr(c->e->policy, (const struct sockaddr *)&t.addr, &why) !=
		    1) {
			deny(c, AL_EGRESS_DENIED, 403, 2, why);
			return;
		}
		memcpy(&c->target, &t.addr, sizeof(c->target));
		connect_checked(c);
		return;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	c->st = ST_RESOLVING;
	c->gai.data = c;
	rc = uv_getaddrinfo(c->e->loop, &c->gai, gai_cb, c->host, NULL, &hints);
	if (rc != 0) {
		deny(c, AL_EGRESS_FAILED, 502, 4, "name resolution failed");
		return;
	}
	c->gai_pending = 1;
}

/* ---- request heads -------------------------------------------------------------------- */

static int is_tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Headers never forwarded: proxy credentials and hop-by-hop fields. */
static int strip_header(const char *name, size_t n)
{
	static const char *const drop[] = {"host",    "connection", "keep-alive",      "te",
					   "trailer", "upgrade",    "proxy-connection"};

	if (n >= 6 && strncasecmp(name, "proxy-", 6) == 0)
		return 1;
	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (strlen(drop[i]) == n && strncasecmp(name, drop[i], n) == 0)
			return 1;
	return 0;
}

/*
 * Parses a complete head (hl bytes, ending in CRLFCRLF). For CONNECT, sets
 * host/port; for absolute-form requests, also builds the origin-form head in
 * c->pending_up. Returns 0, or an HTTP status with *why set.
 */
static int parse_http_head(struct conn *c, size_t hl, char *host, size_t hostcap, const char **why)
{
	const char *h = c->head, *end = c->head + hl, *sp1, *sp2, *eol, *line;
	size_t path_off, mlen, tlen;
	int v6;

	*why = "malformed request";
	for (const char *p = h; p < end; p++) {
		/* Bare CR or LF, NUL: refuse, never guess at framing. */
		if (*p == '\0')
			return 400;
		if (*p == '\r' && (p + 1 >= end || p[1] != '\n'))
			return 400;
		if (*p == '\n' && (p == h || p[-1] != '\r'))
			return 400;
	}
	eol = memmem(h, hl, "\r\n", 2);
	sp1 = memchr(h, ' ', (size_t)(eol - h));
	if (sp1 == NULL || sp1 == h)
		return 400;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return 400;
	if ((size_t)(eol - sp2 - 1) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return 400;
	mlen = (size_t)(sp1 - h);
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar(h[i]))
			return 400;
	tlen = (size_t)(sp2 - sp1 - 1);
	if (mlen == 7 && memcmp(h, "CONNECT", 7) == 0) {
		c->proto = P_CONNECT;
		if (al_netpolicy_split_authority(sp1 + 1, tlen, 0, host, hostcap, &c->port) != 0) {
			*why = "CONNECT needs host:port";
			return 400;
		}
		return 0;
	}
	c->proto = P_HTTP;
	if (al_netpolicy_parse_http_url(sp1 + 1, tlen, host, hostcap, &c->port, &path_off) != 0) {
		*why = "only absolute http:// URLs can be proxied (use CONNECT for https)";
		return 400;
	}
	/* Origin-form request line, then Host from the URL (never the client's). */
	v6 = strchr(host, ':') != NULL;
	if (al_buf_append(&c->pending_up, h, mlen + 1) != 0 ||
	    (path_off == tlen && al_buf_append_str(&c->pending_up, "/") != 0) ||
	    (path_off < tlen && sp1[1 + path_off] == '?' &&
	     al_buf_append_str(&c->pending_up, "/") != 0) ||
	    al_buf_append(&c->pending_up, sp1 + 1 + path_off, tlen - path_off) != 0 ||
	    al_buf_appendf(&c->pending_up, " %.8s\r\nHost: %s%s%s", sp2 + 1, v6 ? "[" : "", host,
			   v6 ? "]" : "") != 0 ||
	    (c->port != 80 && al_buf_appendf(&c->pending_up, ":%u", (unsigned)c->port) != 0) ||
	    al_buf_append_str(&c->pending_up, "\r\n") != 0)
		goto oom;
	for (line = eol + 2; line < end;) {
		const char *le = memmem(line, (size_t)(end - line), "\r\n", 2);
		const char *colon;

		if (le == line)
			break; /* the empty line */
		if (*line == ' ' || *line == '\t')
			return 400; /* obs-fold */
		colon = memchr(line, ':', (size_t)(le - line));
		if (colon == NULL || colon == line)
			return 400;
		for (const char *p = line; p < colon; p++)
			if (!is_tchar(*p))
				return 400;
		if (strip_header(line, (size_t)(colon - line))) {
			line = le + 2;
			continue;
		}
		if (al_buf_append(&c->pending_up, line, (size_t)(le - line) + 2) != 0)
			goto oom;
		line = le + 2;
	}
	if (al_buf_append_str(&c->pending_up, "Connection: close\r\n\r\n") != 0)
		goto oom;
	return 0;
oom:
	*why = "proxy out of memory";
	return 503;
}

/* Returns 1 when the SOCKS5 exchange needs more bytes, 0 when handled. */
static int socks_step(struct conn *c)
{
	const uint8_t *b = (const uint8_t *)c->head;
	size_t n = c->head_len, need;
	char host[256];
	int rc;

	if (!c->socks_greeted) {
		static const uint8_t ok[2] = {5, 0}, none[2] = {5, 0xff};
		int noauth = 0;

		if (n < 2 || n < 2u + b[1])
			return 1;
		for (size_t i = 0; i < b[1]; i++)
			noauth |= b[2 + i] == 0;
		if (!noauth) {
			report(c, AL_EGRESS_DENIED, "SOCKS5 client offers no usable method");
			c->closing_after_write = 1;
			uv_read_stop(side(c, SIDE_CLIENT));
			if (conn_write_copy(c, SIDE_CLIENT, none, 2) != 0)
				conn_close(c);
			return 0;
		}
		if (conn_write_copy(c, SIDE_CLIENT, ok, 2) != 0) {
			conn_close(c);
			return 0;
		}
		c->socks_greeted = 1;
		need = 2u + b[1];
		memmove(c->head, c->head + need, n - need);
		c->head_len = n -= need;
	}
	if (n < 5)
		return 1;
	if (b[0] != 5 || b[2] != 0) {
		deny(c, AL_EGRESS_DENIED, 400, 1, "malformed SOCKS5 request");
		return 0;
	}
	if (b[1] != 1) {
		deny(c, AL_EGRESS_DENIED, 400, 7, "SOCKS5 command not supported (CONNECT only)");
		return 0;
	}
	if (b[3] == 1 || b[3] == 4) {
		deny(c, AL_EGRESS_DENIED, 403, 2, "SOCKS5 address requests refused (names only)");
		return 0;
	}
	if (b[3] != 3) {
		deny(c, AL_EGRESS_DENIED, 400, 8, "SOCKS5 address type not supported");
		return 0;
	}
	need = 5u + b[4] + 2u;
	if (n < need)
		return 1;
	c->port = (uint16_t)((b[5 + b[4]] << 8) | b[6 + b[4]]);
	memcpy(host, b + 5, b[4]);
	host[b[4]] = '\0';
	rc = (int)b[4];
	if (n > need && al_buf_append(&c->pending_up, c->head + need, n - need) != 0) {
		deny(c, AL_EGRESS_FAILED, 503, 1, "proxy out of memory");
		return 0;
	}
	decide(c, host, (size_t)rc);
	return 0;
}

static void read_head(struct conn *c, const char *data, size_t n)
{
	char host[AL_NETPOLICY_HOST_MAX];
	const char *end, *why;
	size_t hl;
	int status;

	if (c->head_len + n > HEAD_MAX) {
		deny(c, AL_EGRESS_DENIED, 400, 1, "request head too large");
		return;
	}
	memcpy(c->head + c->head_len, data, n);
	c->head_len += n;
	if (c->proto == P_UNKNOWN && c->head[0] == 5) {
		if (!c->e->socks5) {
			deny(c, AL_EGRESS_DENIED, 400, 1, "SOCKS5 not enabled");
			return;
		}
		c->proto = P_SOCKS;
	}
	if (c->proto == P_SOCKS) {
		socks_step(c);
		return;
	}
	end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
	if (end == NULL) {
		if (c->head_len == HEAD_MAX)
			deny(c, AL_EGRESS_DENIED, 400, 1, "request head too large");
		return;
	}
	hl = (size_t)(end - c->head) + 4;
	status = parse_http_head(c, hl, host, sizeof(host), &why);
	if (status != 0) {
		deny(c, AL_EGRESS_DENIED, status, 1, why);
		return;
	}
	/* Bytes after the head (a CONNECT client's eager TLS hello, a request
	 * body) wait until the upstream is connected. */
	if (c->head_len > hl &&
	    al_buf_append(&c->pending_up, c->head + hl, c->head_len - hl) != 0) {
		deny(c, AL_EGRESS_FAILED, 503, 1, "proxy out of memory");
		return;
	}
	decide(c, host, strlen(host));
}

static void read_client_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (c->st == ST_SPLICE) {
		splice_read(c, SIDE_CLIENT, nread, buf);
		return;
	}
	if (c->st == ST_HEAD && nread > 0)
		read_head(c, buf->base, (size_t)nread);
	else if (c->st == ST_HEAD && nread < 0)
		conn_close(c); /* gone before asking for anything: nothing to audit */
	al_free(buf->base);
}

/* ---- listener ------------------------------------------------------------------------- */

static void accept_cb(uv_stream_t *server, int status);

static void reject_closed_cb(uv_handle_t *h)
{
	al_egress *e = h->data;

	e->reject_busy = 0;
	if (e->reject_pending && !e->stopping) {
		e->reject_pending = 0;
		accept_cb((uv_stream_t *)&e->listener, 0);
	}
	maybe_free_egress(e);
}

/* Accepts and drops the pending connection (the client sees EOF); audited. */
static void reject_pending_conn(al_egress *e)
{
	struct al_egress_decision d = {.event = AL_EGRESS_DENIED,
				       .proto = "unknown",
				       .host = "",
				       .reason = "proxy out of memory"};

	if (e->reject_busy) {
		e->reject_pending = 1;
		return;
	}
	if (uv_pipe_init(e->loop, &e->reject, 0) != 0)
		return;
	e->reject.data = e;
	e->reject_busy = 1;
	(void)uv_accept((uv_stream_t *)&e->listener, (uv_stream_t *)&e->reject);
	uv_close((uv_handle_t *)&e->reject, reject_closed_cb);
	if (e->cb)
		e->cb(&d, e->cb_data);
}

static void accept_cb(uv_stream_t *server, int status)
{
	al_egress *e = server->data;
	struct conn *c;

	if (status < 0 || e->stopping)
		return;
	c = al_calloc(1, sizeof(*c));
	if (c == NULL) {
		reject_pending_conn(e);
		return;
	}
	c->e = e;
	c->id = ++e->next_id;
	if (uv_pipe_init(e->loop, &c->client, 0) != 0) {
		al_free(c);
		reject_pending_conn(e);
		return;
	}
	c->client.data = c;
	c->open_handles = 1;
	uv_timer_init(e->loop, &c->timer);
	c->timer.data = c;
	c->open_handles++;
	c->next = e->conns;
	if (e->conns)
		e->conns->prev = c;
	e->conns = c;
	e->nconns++;
	if (uv_accept(server, (uv_stream_t *)&c->client) != 0) {
		conn_close(c);
		return;
	}
	if (e->nconns > e->max_conns) {
		deny(c, AL_EGRESS_DENIED, 503, 1, "too many connections");
		return;
	}
	arm_timer(c, e->conn_ms);
	if (uv_read_start((uv_stream_t *)&c->client, alloc_cb, read_client_cb) != 0)
		conn_close(c);
}

static void listener_closed_cb(uv_handle_t *h)
{
	al_egress *e = h->data;

	e->listener_open = 0;
	maybe_free_egress(e);
}

static void set_err(char *err, size_t errlen, const char *what, const char *a, int rc)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "egress %s %s: %s", what, a, uv_strerror(rc));
}

/* The socket's directory must be ours and closed to everyone else. */
static int check_private_dir(const char *path, char *err, size_t errlen)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	struct stat st;
	size_t n;

	if (slash == NULL) {
		n = 1;
		dir[0] = '.';
	} else {
		n = slash == path ? 1 : (size_t)(slash - path);
		if (n >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, n);
	}
	dir[n] = '\0';
	if (lstat(dir, &st) != 0) {
		set_err(err, errlen, "socket directory", dir, -errno);
		return -errno;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		if (err && errlen)
			snprintf(err, errlen,
				 "egress socket directory %s must be a 0700 directory we own", dir);
		return -EPERM;
	}
	return 0;
}

int al_egress_start(uv_loop_t *loop, const struct al_egress_config *cfg, al_egress **out, char *err,
		    size_t errlen)
{
	al_egress *e = NULL;
	struct stat st;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (loop == NULL || cfg == NULL || out == NULL || cfg->socket_path == NULL ||
	    cfg->policy == NULL) {
		rc = -EINVAL;
		goto fail;
	}
	/* libuv before 1.46 silently truncates a long path in uv_pipe_bind:
	 * we would listen somewhere nobody checked. */
	if (strlen(cfg->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		rc = -ENAMETOOLONG;
		if (err && errlen)
			snprintf(err, errlen, "egress socket path too long (max %zu bytes)",
				 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		goto fail;
	}
	rc = check_private_dir(cfg->socket_path, err, errlen);
	if (rc != 0)
		goto fail;
	if (lstat(cfg->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			rc = -EEXIST;
			set_err(err, errlen, "socket path", cfg->socket_path, rc);
			goto fail;
		}
		unlink(cfg->socket_path);
	}
	e = al_calloc(1, sizeof(*e));
	if (e == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	e->loop = loop;
	e->policy = cfg->policy;
	e->cb = cfg->decision_cb;
	e->cb_data = cfg->cb_data;
	e->max_conns = cfg->max_conns ? cfg->max_conns : DEFAULT_MAXCONN;
	e->idle_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : DEFAULT_IDLE_MS;
	e->conn_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DEFAULT_CONN_MS;
	e->socks5 = cfg->socks5;
	e->path = al_strdup(cfg->socket_path);
	if (e->path == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = uv_pipe_init(loop, &e->listener, 0);
	if (rc != 0)
		goto fail;
	e->listener.data = e;
	e->listener_open = 1;
	rc = uv_pipe_bind(&e->listener, e->path);
	if (rc == 0 && chmod(e->path, 0600) != 0)
		rc = -errno;
	if (rc == 0 && cfg->socket_uid != (uid_t)-1 &&
	    lchown(e->path, cfg->socket_uid, cfg->socket_gid) != 0)
		rc = -errno;
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&e->listener, 128, accept_cb);
	if (rc != 0) {
		set_err(err, errlen, "socket", e->path, rc);
		unlink(e->path);
		e->stopping = 1;
		uv_close((uv_handle_t *)&e->listener, listener_closed_cb);
		*out = NULL;
		return rc; /* e is freed by the close callback */
	}
	*out = e;
	return 0;
fail:
	if (e != NULL) {
		al_free(e->path);
		al_free(e);
	}
	if (rc == -EINVAL && err && errlen && !*err)
		snprintf(err, errlen, "egress: invalid configuration");
	if (out)
		*out = NULL;
	return rc;
}

void al_egress_stop(al_egress *e)
{
	struct conn *c, *next;

	if (e == NULL || e->stopping)
		return;
	e->stopping = 1;
	unlink(e->path);
	for (c = e->conns; c != NULL; c = next) {
		next = c->next;
		conn_close(c);
	}
	uv_close((uv_handle_t *)&e->listener, listener_closed_cb);
}

size_t al_egress_active(const al_egress *e)
{
	return e ? e->nconns : 0;
}

size_t al_egress_peak_queued(const al_egress *e)
{
	return e ? e->peak_queued : 0;
}

int al_egress_private_dir(const char *parent, char *out, size_t outlen)
{
	int n;

	if (parent == NULL || out == NULL)
		return -EINVAL;
	/* Our pid in the name: al_egress_sweep_stale finds a killed owner's directories. */
	n = snprintf(out, outlen, "%s/airlock-egress-%ld-XXXXXX", parent, (long)getpid());
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	if (mkdtemp(out) == NULL) /* mkdtemp creates 0700 */
		return -errno;
	return 0;
}

int al_egress_sweep_stale(const char *parent)
{
	char dir[4096], sock[4096 + 16];
	DIR *d;
	struct dirent *e;
	int n = 0;

	if (parent == NULL || (d = opendir(parent)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		static const char pre[] = "airlock-egress-";
		char *end;
		long pid;
		struct stat st;
		if (strncmp(e->d_name, pre, sizeof(pre) - 1) != 0)
			continue;
		pid = strtol(e->d_name + sizeof(pre) - 1, &end, 10);
		if (end == e->d_name + sizeof(pre) - 1 || *end != '-' || pid <= 0 ||
		    pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", parent, e->d_name) >= sizeof(dir))
			continue;
		/* Only what we put there: the socket; anything else keeps the directory. */
		if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		snprintf(sock, sizeof(sock), "%s/egress.sock", dir);
		unlink(sock);
		if (rmdir(dir) == 0)
			n++;
	}
	closedir(d);
	return n;
}
