/*
 * server.c - HTTP/1.1 server on libuv, plain or TLS.
 *
 * One struct conn per TCP connection. Bytes read (decrypted first under TLS)
 * go to conn->in; conn_process feeds them to the parser while no request is
 * in flight, so pipelined requests are answered strictly in order. Reading
 * itself continues while a handler runs, only to notice a peer that goes
 * away (EOF fires the request's close callback at once).
 *
 * Memory rules: a conn is freed only in the close callback of its last
 * libuv handle, never synchronously, so a conn pointer stays valid for the
 * rest of any call stack that closed it. A request is freed only by its
 * finisher (respond or sse_end); when the peer goes first the request is
 * detached (req->conn = NULL) and finishing it just frees it.
 */
#include "http/server.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "http/parser.h"
#include "net/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define READ_BUF_SIZE 16384
/* Lingering close: how long to drain the peer's input after our FIN. */
#define LINGER_MS 2000
/* Unparsed input beyond this (while a handler runs) pauses reading. */
#define MAX_BUFFERED_INPUT (1024 * 1024)
/*
 * Responses queued to a peer that does not read them, beyond which no
 * further pipelined request is parsed (nor more input read) until the
 * writes drain: otherwise a client pipelining cheap requests and never
 * reading makes the server buffer answers without bound.
 */
#define MAX_PENDING_OUTPUT (1024 * 1024)

enum conn_state {
	C_OPEN,	   /* reading and answering */
	C_LINGER,  /* FIN sent; discarding input until EOF or LINGER_MS */
	C_CLOSING, /* uv_close called */
};

enum timer_mode { T_NONE, T_REQUEST, T_IDLE, T_HEARTBEAT, T_LINGER };

struct conn {
	al_http_server *srv;
	struct conn *prev, *next;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shutdown_req;
	int handles_open;
	enum conn_state state;
	enum timer_mode tmode;
	al_http_parser *parser;
	al_buf in; /* plaintext not yet parsed */
	al_tls_conn *tls;
	al_http_req *req; /* in flight, or NULL */
	char peer[64];
	size_t pending; /* bytes handed to uv_write, not yet written */
	int nwrites;
	int close_after_write; /* graceful close once the writes drain */
	int reading;
	int in_process;
	int continue_sent;
	char rbuf[READ_BUF_SIZE];
};

struct al_http_req {
	struct conn *conn; /* NULL once the peer has gone */
	struct al_http_request *r;
	al_buf resp_headers; /* "Name: value\r\n" lines added by the handler */
	int user_close;	     /* the handler set "Connection: close" */
	int keep_alive;
	int closed;
	int streaming;
	int chunked; /* SSE framed as chunked (HTTP/1.1) rather than by close */
	int raw;     /* al_http_stream_start: no heartbeats, not cut by a drain */
	void *data;
	al_http_close_cb close_cb;
	void *close_ud;
	char peer[64]; /* copied: it must outlive the connection */
};

struct al_http_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	/* Drain timeout; before a drain also the retry timer of a paused accept. */
	uv_timer_t drain_timer;
	int handles_open; /* listener + drain timer */
	int listening;
	int accept_paused;	  /* a client waits in the backlog (limit or no memory) */
	uint64_t limit_warned_ms; /* uv_now of the last "limit reached" warning */
	struct al_http_server_opts opts;
	al_http_handler_cb handler;
	void *ud;
	al_tls_ctx *tls;
	struct conn *conns;
	size_t nconns;
	int port;
	int draining, drain_done, freeing;
	al_http_drained_cb drain_cb;
	void *drain_ud;
};

struct wreq {
	uv_write_t w;
	struct conn *conn;
	char *data;
	size_t len;
};

static void conn_close(struct conn *c);
static void conn_end(struct conn *c);
static void conn_process(struct conn *c);
static void server_check(al_http_server *srv);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_connection(uv_stream_t *l, int status);

/* ---- small helpers ---- */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 417:
		return "Expectation Failed";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	case 529:
		return "Overloaded";
	default:
		return "Unknown";
	}
}

/* IMF-fixdate by hand: strftime's %a/%b follow the locale. */
static void http_date(char *out, size_t len)
{
	static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int is_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c != '\0' && strchr("!#$%&'*+-.^_`|~", c))))
			return 0;
	}
	return 1;
}

/* A field value we may write: no CR, LF or other control byte (header injection). */
static int is_field_value(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return 0;
	return 1;
}

/* ---- timers ---- */

static void timer_cb(uv_timer_t *t);

static void timer_set(struct conn *c, enum timer_mode mode, uint64_t ms)
{
	c->tmode = mode;
	if (mode == T_NONE) {
		uv_timer_stop(&c->timer);
		return;
	}
	uv_timer_start(&c->timer, timer_cb, ms, mode == T_HEARTBEAT ? ms : 0);
}

/* ---- writing ---- */

static void write_cb(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct conn *c = wr->conn;
	int was_full = c->pending >= MAX_PENDING_OUTPUT;

	c->pending -= wr->len;
	c->nwrites--;
	/* Responses can carry credentials (a key just created): wipe. */
	al_free_secret(wr->data, wr->len);
	al_free(wr);
	if (status < 0) {
		if (c->state != C_CLOSING)
			conn_close(c);
		return;
	}
	if (c->nwrites == 0 && c->close_after_write && c->state == C_OPEN)
		conn_end(c);
	else if (was_full && c->pending < MAX_PENDING_OUTPUT && c->state == C_OPEN)
		conn_process(c); /* output drained: parse the next pipelined request */
}

/* Queues b's bytes as they are (ciphertext or plain HTTP); takes b's data. */
static int write_raw(struct conn *c, al_buf *b)
{
	/*
	 * uv_buf_t lengths are unsigned int: a block over 4 GiB cast to one
	 * would be cut short while Content-Length promised all of it. Hand
	 * libuv pieces of at most 1 GiB (it copies the array); 16 of them
	 * bound a single write, larger ones are refused.
	 */
	enum { PIECE = 1u << 30, MAX_PIECES = 16 };
	uv_buf_t ub[MAX_PIECES];
	unsigned int nb = 0;
	struct wreq *wr;
	int rc;

	if (b->len == 0) {
		al_buf_free(b);
		return 0;
	}
	wr = b->len <= (size_t)PIECE * MAX_PIECES ? al_calloc(1, sizeof(*wr)) : NULL;
	if (wr == NULL) {
		al_buf_wipe(b);
		al_buf_free(b);
		return -ENOMEM;
	}
	wr->conn = c;
	wr->data = b->data;
	wr->len = b->len;
	*b = (al_buf){0};
	for (size_t off = 0; off < wr->len; off += PIECE, nb++) {
		size_t n = wr->len - off < PIECE ? wr->len - off : PIECE;
		ub[nb] = uv_buf_init(wr->data + off, (unsigned int)n);
	}
	rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, ub, nb, write_cb);
	if (rc < 0) {
		al_free_secret(wr->data, wr->len);
		al_free(wr);
		return -EPIPE;
	}
	c->pending += wr->len;
	c->nwrites++;
	return 0;
}

/* Sends pending TLS records (handshake, alerts, application data). */
static int flush_tls(struct conn *c)
{
	al_buf out = {0};

	if (al_tls_conn_take_output(c->tls, &out) < 0) {
		al_buf_free(&out);
		return -ENOMEM;
	}
	return write_raw(c, &out);
}

/*
 * Sends plaintext HTTP bytes; takes b's data. On failure the connection is
 * closed and -EPIPE returned.
 */
static int conn_send(struct conn *c, al_buf *b)
{
	int rc;

	if (c->state != C_OPEN) {
		al_buf_wipe(b);
		al_buf_free(b);
		return -EPIPE;
	}
	if (c->tls) {
		rc = al_tls_conn_write(c->tls, b->data, b->len);
		al_buf_wipe(b);
		al_buf_free(b);
		if (rc == 0)
			rc = flush_tls(c);
	} else {
		rc = write_raw(c, b);
	}
	if (rc < 0) {
		conn_close(c);
		return -EPIPE;
	}
	return 0;
}

/* ---- connection lifecycle ---- */

static void conn_handle_closed_cb(uv_handle_t *h)
{
	struct conn *c = h->data;
	al_http_server *srv = c->srv;

	if (--c->handles_open > 0)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	al_http_parser_free(c->parser);
	al_tls_conn_free(c->tls);
	al_buf_wipe(&c->in);
	al_buf_free(&c->in);
	/* rbuf holds the last bytes read: plaintext requests with their credentials. */
	al_free_secret(c, sizeof(*c));
	/* A slot is free: take the client that waits in the backlog. */
	if (srv->accept_paused && !srv->draining && !srv->freeing)
		on_connection((uv_stream_t *)&srv->listener, 0);
	server_check(srv);
}

/* Detaches the in-flight request and tells its owner the peer is gone. */
static void conn_detach_req(struct conn *c)
{
	al_http_req *req = c->req;

	if (req == NULL)
		return;
	c->req = NULL;
	req->conn = NULL;
	req->closed = 1;
	/* The owner may finish (and free) the request inside the callback. */
	if (req->close_cb)
		req->close_cb(req, req->close_ud);
}

/* Hard close: fires the close callback of an in-flight request. */
static void conn_close(struct conn *c)
{
	if (c->state == C_CLOSING)
		return;
	c->state = C_CLOSING;
	conn_detach_req(c);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed_cb);
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
}

static void shutdown_cb(uv_shutdown_t *sr, int status)
{
	struct conn *c = sr->data;

	if (status < 0 && c->state != C_CLOSING)
		conn_close(c);
}

/*
 * Graceful close: once queued writes are out, send close_notify (TLS) and
 * FIN, then linger. Safe to call repeatedly.
 */
static void conn_end(struct conn *c)
{
	if (c->state != C_OPEN)
		return;
	/* A request still in flight will never be answered on this connection. */
	conn_detach_req(c);
	if (!c->close_after_write) {
		c->close_after_write = 1;
		if (c->tls) {
			al_tls_conn_shutdown(c->tls);
			if (flush_tls(c) < 0) {
				conn_close(c);
				return;
			}
		}
	}
	if (c->nwrites > 0) {
		/*
		 * write_cb calls back once the writes are out. A peer that never
		 * reads would hold the connection (and the queued answer) forever:
		 * give it the idle timeout to take the bytes.
		 */
		timer_set(c, T_IDLE, c->srv->opts.idle_timeout_ms);
		return;
	}
	timer_set(c, T_NONE, 0);
	c->shutdown_req.data = c;
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_cb) < 0) {
		conn_close(c);
		return;
	}
	/*
	 * Lingering close: closing with unread input makes the kernel send RST,
	 * which can destroy the response we just sent (a 413 before the body
	 * was read). Keep reading and discarding until the peer closes.
	 */
	c->state = C_LINGER;
	timer_set(c, T_LINGER, LINGER_MS);
	if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
		c->reading = 1;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
	return al_buf_append(data, buffer, size) < 0 ? -1 : 0;
}

/* Sends a parser (or timeout) error as JSON and closes the connection. */
static void send_error(struct conn *c, int status, const char *msg)
{
	al_buf b = {0}, body = {0};
	char date[64];
	json_t *j;

	/* msg is a fixed parser string; it never echoes request bytes. */
	/* The API's error shape (request_id is required by the SDK's type). */
	j = json_pack("{s:s,s:{s:s,s:s},s:n}", "type", "error", "error", "type",
		      status == 413 ? "request_too_large" : "invalid_request_error", "message",
		      msg ? msg : "bad request", "request_id");
	if (j == NULL || json_dump_callback(j, dump_cb, &body, JSON_COMPACT) < 0) {
		json_decref(j);
		al_buf_free(&body);
		conn_close(c);
		return;
	}
	json_decref(j);
	http_date(date, sizeof(date));
	if (al_buf_appendf(&b,
			   "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: airlock\r\n"
			   "Content-Type: application/json\r\nContent-Length: %zu\r\n"
			   "Connection: close\r\n\r\n",
			   status, reason_phrase(status), date, body.len) < 0 ||
	    al_buf_append(&b, body.data, body.len) < 0) {
		al_buf_free(&b);
		al_buf_free(&body);
		conn_close(c);
		return;
	}
	al_buf_free(&body);
	if (conn_send(c, &b) == 0)
		conn_end(c);
}

/* ---- requests ---- */

static void req_free(al_http_req *req)
{
	al_http_request_free(req->r);
	al_buf_wipe(&req->resp_headers);
	al_buf_free(&req->resp_headers);
	al_free(req);
}

static void dispatch(struct conn *c, struct al_http_request *r)
{
	al_http_server *srv = c->srv;
	al_http_req *req = al_calloc(1, sizeof(*req));

	if (req == NULL) {
		al_http_request_free(r);
		send_error(c, 500, "out of memory");
		return;
	}
	req->conn = c;
	req->r = r;
	memcpy(req->peer, c->peer, sizeof(req->peer));
	req->keep_alive = r->keep_alive && !srv->draining;
	c->req = req;
	c->continue_sent = 0;
	/* The handler owns the timing from here (it may wait on the store). */
	timer_set(c, T_NONE, 0);
	srv->handler(req, srv->ud);
}

/*
 * The response is fully queued: keep the connection for the next request
 * or close it gracefully.
 */
static void response_done(struct conn *c, int keep_alive)
{
	if (c->state != C_OPEN)
		return;
	if (!keep_alive || c->srv->draining) {
		conn_end(c);
		return;
	}
	timer_set(c, T_IDLE, c->srv->opts.idle_timeout_ms);
	conn_process(c);
}

static void conn_process(struct conn *c)
{
	al_http_server *srv = c->srv;

	if (c->in_process)
		return; /* a synchronous respond inside the handler: the loop below continues */
	c->in_process = 1;
	while (c->state == C_OPEN && c->req == NULL && !c->close_after_write && c->in.len > 0 &&
	       c->pending < MAX_PENDING_OUTPUT) {
		int was_started = al_http_parser_started(c->parser);
		size_t used = 0;
		enum al_http_parse_rc rc =
		    al_http_parser_feed(c->parser, c->in.data, c->in.len, &used);

		al_buf_consume(&c->in, used);
		if (!was_started && al_http_parser_started(c->parser))
			timer_set(c, T_REQUEST, srv->opts.request_timeout_ms);
		if (rc == AL_HTTP_PARSE_MORE) {
			if (al_http_parser_wants_continue(c->parser) && !c->continue_sent) {
				al_buf b = {0};
				c->continue_sent = 1;
				if (al_buf_append_str(&b, "HTTP/1.1 100 Continue\r\n\r\n") < 0)
					al_buf_free(&b);
				else
					conn_send(c, &b);
			}
			break;
		}
		if (rc == AL_HTTP_PARSE_ERROR) {
			const char *msg = NULL;
			int status = al_http_parser_error(c->parser, &msg);
			al_debug("http", "bad request from %s: %d %s", c->peer, status, msg);
			send_error(c, status, msg);
			break;
		}
		dispatch(c, al_http_parser_take(c->parser));
	}
	c->in_process = 0;
	if (!c->reading && c->state == C_OPEN && c->req == NULL &&
	    c->in.len <= MAX_BUFFERED_INPUT &&
	    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
		c->reading = 1;
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	char err[128];
	int rc;

	if (c->state == C_CLOSING)
		return;
	if (nread < 0) {
		/* EOF or reset: the peer is gone, even mid-response or mid-stream. */
		conn_close(c);
		return;
	}
	if (nread == 0 || c->state == C_LINGER)
		return;
	if (c->tls) {
		rc = al_tls_conn_feed(c->tls, buf->base, (size_t)nread, &c->in, err, sizeof(err));
		if (flush_tls(c) < 0 || c->state != C_OPEN) {
			conn_close(c);
			return;
		}
		if (rc < 0) {
			al_debug("http", "TLS from %s: %s", c->peer, err);
			conn_end(c); /* the alert goes out first */
			return;
		}
		if (al_tls_conn_peer_closed(c->tls)) {
			conn_close(c);
			return;
		}
	} else if (al_buf_append(&c->in, buf->base, (size_t)nread) < 0) {
		conn_close(c);
		return;
	}
	if ((c->req != NULL || c->pending >= MAX_PENDING_OUTPUT) &&
	    c->in.len > MAX_BUFFERED_INPUT && c->reading) {
		/* Backpressure on a client pipelining faster than we answer (or it reads). */
		uv_read_stop(s);
		c->reading = 0;
	}
	conn_process(c);
}

static void timer_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	switch (c->tmode) {
	case T_REQUEST:
		if (al_http_parser_started(c->parser) && c->req == NULL) {
			c->tmode = T_NONE;
			send_error(c, 408, "request timeout");
		} else {
			conn_close(c);
		}
		break;
	case T_IDLE:
	case T_LINGER:
		conn_close(c);
		break;
	case T_HEARTBEAT:
		if (c->req && c->req->streaming && !c->req->raw) {
			al_buf b = {0};
			const char *ping = c->req->chunked ? "8\r\n: ping\n\n\r\n" : ": ping\n\n";
			if (al_buf_append_str(&b, ping) == 0)
				conn_send(c, &b);
			else
				al_buf_free(&b);
		}
		break;
	case T_NONE:
		break;
	}
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t len)
{
	struct sockaddr_storage ss;
	int n = sizeof(ss);
	char ip[64] = "?";
	int port = 0;

	snprintf(out, len, "?");
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &n) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		uv_ip4_name(a, ip, sizeof(ip));
		port = ntohs(a->sin_port);
		snprintf(out, len, "%s:%d", ip, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		uv_ip6_name(a, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
		snprintf(out, len, "[%s]:%d", ip, port);
	}
}

static void accept_retry_cb(uv_timer_t *t)
{
	al_http_server *srv = t->data;

	if (srv->accept_paused && !srv->draining && !srv->freeing)
		on_connection((uv_stream_t *)&srv->listener, 0);
}

/*
 * Leaves the pending client in the backlog. libuv stops polling a listener
 * whose connection callback did not call uv_accept, until uv_accept is
 * called; the server calls back here when a connection closes (or, after
 * an allocation failure, from a retry timer), so it never goes deaf.
 */
static void accept_pause(al_http_server *srv, int retry)
{
	uint64_t now = uv_now(srv->loop);

	srv->accept_paused = 1;
	if (retry)
		uv_timer_start(&srv->drain_timer, accept_retry_cb, 100, 0);
	else if (srv->limit_warned_ms == 0 || now - srv->limit_warned_ms >= 60000) {
		srv->limit_warned_ms = now;
		al_warn("http", "connection limit (%zu) reached: new clients wait in the backlog",
			srv->opts.max_connections);
	}
}

static void on_connection(uv_stream_t *l, int status)
{
	al_http_server *srv = l->data;
	struct al_http_parser_limits lim = {
	    .max_header_bytes = srv->opts.max_header_bytes,
	    .max_body_bytes = srv->opts.max_body_bytes,
	};
	struct conn *c;

	if (status < 0 || srv->draining || srv->freeing)
		return;
	if (srv->nconns >= srv->opts.max_connections) {
		accept_pause(srv, 0);
		return;
	}
	c = al_calloc(1, sizeof(*c));
	if (c == NULL) {
		accept_pause(srv, 1);
		return;
	}
	srv->accept_paused = 0;
	c->srv = srv;
	uv_tcp_init(srv->loop, &c->tcp);
	uv_timer_init(srv->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles_open = 2;
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	c->state = C_OPEN;
	if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0)
		goto fail;
	c->parser = al_http_parser_new(&lim);
	if (c->parser == NULL)
		goto fail;
	if (srv->tls) {
		c->tls = al_tls_conn_new(srv->tls);
		if (c->tls == NULL)
			goto fail;
	}
	/* SSE events must leave at once, not wait for Nagle to coalesce them. */
	uv_tcp_nodelay(&c->tcp, 1);
	peer_name(&c->tcp, c->peer, sizeof(c->peer));
	if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0)
		goto fail;
	c->reading = 1;
	timer_set(c, T_REQUEST, srv->opts.request_timeout_ms);
	return;
fail:
	conn_close(c);
}

/* ---- server lifecycle ---- */

static void server_handle_closed_cb(uv_handle_t *h)
{
	al_http_server *srv = h->data;

	if (h == (uv_handle_t *)&srv->listener)
		srv->listening = 0;
	srv->handles_open--;
	server_check(srv);
}

/* Completes a drain and/or a free once everything they wait for is closed. */
static void server_check(al_http_server *srv)
{
	if (srv->freeing) {
		if (srv->handles_open == 0 && srv->nconns == 0) {
			al_tls_ctx_free(srv->tls);
			al_free(srv);
		}
		return;
	}
	if (srv->draining && !srv->drain_done && !srv->listening && srv->nconns == 0) {
		srv->drain_done = 1;
		uv_timer_stop(&srv->drain_timer);
		/* Last use of srv here: the callback may free it. */
		if (srv->drain_cb)
			srv->drain_cb(srv, srv->drain_ud);
	}
}

int al_http_server_start(uv_loop_t *loop, const struct al_http_server_opts *opts,
			 al_http_handler_cb handler, void *ud, al_http_server **out, char *err,
			 size_t errlen)
{
	al_http_server *srv = NULL;
	struct sockaddr_storage ss;
	int rc, n;
	const char *host;

	*out = NULL;
	if (opts == NULL || handler == NULL || opts->port < 0 || opts->port > 65535) {
		snprintf(err, errlen, "invalid server options");
		return -EINVAL;
	}
	host = opts->host ? opts->host : "127.0.0.1";
	if (uv_ip4_addr(host, opts->port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(host, opts->port, (struct sockaddr_in6 *)&ss) != 0) {
		snprintf(err, errlen, "invalid listen address \"%s\" (want a numeric IPv4/IPv6)",
			 host);
		return -EINVAL;
	}
	srv = al_calloc(1, sizeof(*srv));
	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	srv->loop = loop;
	srv->opts = *opts;
	srv->opts.host = NULL; /* the caller's strings are not kept */
	srv->opts.tls_cert_file = srv->opts.tls_key_file = NULL;
	if (!srv->opts.max_header_bytes)
		srv->opts.max_header_bytes = AL_HTTP_DEFAULT_MAX_HEADER_BYTES;
	if (!srv->opts.max_body_bytes)
		srv->opts.max_body_bytes = AL_HTTP_DEFAULT_MAX_BODY_BYTES;
	if (!srv->opts.request_timeout_ms)
		srv->opts.request_timeout_ms = 30000;
	if (!srv->opts.idle_timeout_ms)
		srv->opts.idle_timeout_ms = 60000;
	if (!srv->opts.sse_heartbeat_ms)
		srv->opts.sse_heartbeat_ms = 15000;
	if (!srv->opts.drain_timeout_ms)
		srv->opts.drain_timeout_ms = 10000;
	if (!srv->opts.max_connections)
		srv->opts.max_connections = AL_HTTP_DEFAULT_MAX_CONNECTIONS;
	srv->handler = handler;
	srv->ud = ud;
	if (opts->tls_cert_file || opts->tls_key_file) {
		rc = al_tls_ctx_new_server(opts->tls_cert_file, opts->tls_key_file, &srv->tls, err,
					   errlen);
		if (rc < 0) {
			al_free(srv);
			return rc;
		}
	}
	uv_tcp_init(loop, &srv->listener);
	uv_timer_init(loop, &srv->drain_timer);
	srv->listener.data = srv->drain_timer.data = srv;
	srv->handles_open = 2;
	srv->listening = 1;
	rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", host, opts->port,
			 uv_strerror(rc));
		/* The handles close asynchronously; the loop frees srv when it next runs. */
		al_http_server_free(srv);
		return rc;
	}
	n = sizeof(ss);
	if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &n) == 0)
		srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	*out = srv;
	return 0;
}

int al_http_server_port(const al_http_server *srv)
{
	return srv->port;
}

static void drain_timeout_cb(uv_timer_t *t)
{
	al_http_server *srv = t->data;

	al_warn("http", "drain timeout: closing %zu connection(s)", srv->nconns);
	for (struct conn *c = srv->conns; c; c = c->next)
		conn_close(c);
}

void al_http_server_drain(al_http_server *srv, al_http_drained_cb cb, void *ud)
{
	if (srv->draining || srv->freeing)
		return;
	srv->draining = 1;
	srv->drain_cb = cb;
	srv->drain_ud = ud;
	uv_close((uv_handle_t *)&srv->listener, server_handle_closed_cb);
	uv_timer_start(&srv->drain_timer, drain_timeout_cb, srv->opts.drain_timeout_ms, 0);
	/* conn_close never unlinks synchronously, so walking the list is safe. */
	for (struct conn *c = srv->conns; c; c = c->next) {
		al_http_req *req = c->req;
		if (c->state == C_LINGER) {
			conn_close(c);
		} else if (c->state != C_OPEN) {
			continue;
		} else if (req && req->streaming && req->raw) {
			req->keep_alive = 0; /* a proxied body runs to its end */
		} else if (req && req->streaming) {
			/* End the stream cleanly, then tell the owner it is over. */
			if (req->chunked) {
				al_buf b = {0};
				if (al_buf_append_str(&b, "0\r\n\r\n") == 0)
					conn_send(c, &b);
				else
					al_buf_free(&b);
			}
			conn_detach_req(c);
			conn_end(c);
		} else if (req) {
			req->keep_alive = 0; /* answered with Connection: close */
		} else if (!al_http_parser_started(c->parser) && c->in.len == 0) {
			conn_end(c); /* idle keep-alive connection */
		}
		/* A request still arriving is answered, then the connection closes. */
	}
	server_check(srv);
}

void al_http_server_free(al_http_server *srv)
{
	if (srv == NULL || srv->freeing)
		return;
	srv->freeing = 1;
	srv->drain_cb = NULL;
	if (srv->listening && !uv_is_closing((uv_handle_t *)&srv->listener))
		uv_close((uv_handle_t *)&srv->listener, server_handle_closed_cb);
	uv_close((uv_handle_t *)&srv->drain_timer, server_handle_closed_cb);
	for (struct conn *c = srv->conns; c; c = c->next)
		conn_close(c);
}

/* ---- request accessors ---- */

const char *al_http_req_method(const al_http_req *req)
{
	return req->r->method;
}

const char *al_http_req_path(const al_http_req *req)
{
	return req->r->path;
}

const char *al_http_req_target(const al_http_req *req)
{
	return req->r->target;
}

const char *al_http_req_query(const al_http_req *req, const char *name)
{
	return al_http_request_param(req->r, name);
}

const char *al_http_req_header(const al_http_req *req, const char *name)
{
	return al_http_request_header(req->r, name);
}

size_t al_http_req_header_count(const al_http_req *req)
{
	return req->r->nheaders;
}

int al_http_req_header_at(const al_http_req *req, size_t i, const char **name, const char **value)
{
	if (i >= req->r->nheaders)
		return -ENOENT;
	*name = req->r->headers[i].name;
	*value = req->r->headers[i].value;
	return 0;
}

const char *al_http_req_body(const al_http_req *req, size_t *len)
{
	if (len)
		*len = req->r->body_len;
	return req->r->body;
}

const char *al_http_req_peer(const al_http_req *req)
{
	return req->peer;
}

int al_http_req_closed(const al_http_req *req)
{
	return req->closed;
}

void al_http_req_set_data(al_http_req *req, void *data)
{
	req->data = data;
}

void *al_http_req_data(const al_http_req *req)
{
	return req->data;
}

void al_http_req_on_close(al_http_req *req, al_http_close_cb cb, void *ud)
{
	req->close_cb = cb;
	req->close_ud = ud;
}

size_t al_http_req_pending_bytes(const al_http_req *req)
{
	return req->conn ? req->conn->pending : 0;
}

/* ---- responses ---- */

int al_http_resp_header(al_http_req *req, const char *name, const char *value)
{
	if (req == NULL || name == NULL || value == NULL || req->streaming || !is_token(name) ||
	    !is_field_value(value))
		return -EINVAL;
	/* Framing belongs to the server; a handler setting it would desynchronise. */
	if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0)
		return -EINVAL;
	if (strcasecmp(name, "connection") == 0) {
		if (strcasestr(value, "close"))
			req->user_close = 1;
		return 0;
	}
	return al_buf_appendf(&req->resp_headers, "%s: %s\r\n", name, value);
}

/* Status line and the common headers, up to (not including) the blank line. */
static int build_head(al_buf *b, al_http_req *req, int status, int keep_alive)
{
	char date[64];

	http_date(date, sizeof(date));
	if (al_buf_appendf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: airlock\r\n", status,
			   reason_phrase(status), date) < 0)
		return -ENOMEM;
	if (!keep_alive && al_buf_append_str(b, "Connection: close\r\n") < 0)
		return -ENOMEM;
	if (keep_alive && req->r->version_minor == 0 &&
	    al_buf_append_str(b, "Connection: keep-alive\r\n") < 0)
		return -ENOMEM;
	if (req->resp_headers.len &&
	    al_buf_append(b, req->resp_headers.data, req->resp_headers.len) < 0)
		return -ENOMEM;
	return 0;
}

int al_http_respond(al_http_req *req, int status, const char *content_type, const void *body,
		    size_t len)
{
	static const char bad_call[] =
	    "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
	    "\"message\":\"internal server error\"},\"request_id\":null}";
	struct conn *c;
	al_buf b = {0};
	int rc = 0, ka, with_length, with_body;

	if (req == NULL || req->streaming)
		return -EINVAL; /* a stream ends with al_http_sse_end */
	/*
	 * A bad call still finishes the request, exactly once (the lifetime
	 * rule in server.h): the peer gets a 500 instead of a connection that
	 * hangs, the caller -EINVAL. A content type with CR/LF would otherwise
	 * inject headers (response splitting); 1xx is not a final status.
	 */
	if (status < 200 || status > 999 || (body == NULL && len > 0) ||
	    (content_type && !is_field_value(content_type))) {
		status = 500;
		content_type = "application/json";
		body = bad_call;
		len = sizeof(bad_call) - 1;
		rc = -EINVAL;
	}
	c = req->conn;
	if (c == NULL)
		goto done; /* the peer is gone: finishing just frees */
	c->req = NULL;
	ka = req->keep_alive && !req->user_close && !c->srv->draining;
	/*
	 * Responses to HEAD and 204/304 responses end with their head (RFC 9112
	 * 6.3): body bytes there would be read by the client, or a proxy in
	 * front, as the start of the next response. 204 and 304 carry no
	 * Content-Length either; HEAD keeps the length of the body not sent.
	 */
	with_length = status != 204 && status != 304;
	with_body = with_length && strcmp(req->r->method, "HEAD") != 0;
	if (build_head(&b, req, status, ka) < 0 ||
	    (content_type && al_buf_appendf(&b, "Content-Type: %s\r\n", content_type) < 0) ||
	    (with_length && al_buf_appendf(&b, "Content-Length: %zu\r\n", len) < 0) ||
	    al_buf_append_str(&b, "\r\n") < 0 || (with_body && al_buf_append(&b, body, len) < 0)) {
		al_buf_wipe(&b);
		al_buf_free(&b);
		conn_close(c);
		rc = -ENOMEM;
		goto done;
	}
	if (conn_send(c, &b) < 0 && rc == 0)
		rc = -EPIPE;
	response_done(c, ka);
done:
	req_free(req);
	return rc;
}

int al_http_respond_json(al_http_req *req, int status, json_t *body)
{
	al_buf b = {0};
	int rc;

	if (body == NULL || json_dump_callback(body, dump_cb, &b, JSON_COMPACT) < 0) {
		json_decref(body);
		al_buf_free(&b);
		static const char fallback[] = "{\"type\":\"error\",\"error\":{\"type\":"
					       "\"api_error\",\"message\":\"cannot serialise "
					       "response\"},\"request_id\":null}";
		rc = al_http_respond(req, 500, "application/json", fallback, sizeof(fallback) - 1);
		return rc < 0 ? rc : -ENOMEM;
	}
	json_decref(body);
	rc = al_http_respond(req, status, "application/json", b.data ? b.data : "", b.len);
	al_buf_wipe(&b);
	al_buf_free(&b);
	return rc;
}

/* ---- Server-Sent Events ---- */

int al_http_sse_start(al_http_req *req)
{
	struct conn *c;
	al_buf b = {0};

	if (req == NULL || req->streaming)
		return -EINVAL;
	c = req->conn;
	req->streaming = 1;
	/* Chunked framing keeps a 1.1 connection reusable after the stream. */
	req->chunked = req->r->version_minor == 1;
	if (!req->chunked)
		req->keep_alive = 0;
	if (c == NULL)
		return -EPIPE;
	if (c->srv->draining)
		req->keep_alive = 0;
	if (build_head(&b, req, 200, req->keep_alive && !req->user_close) < 0 ||
	    al_buf_append_str(&b, "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
				  "X-Accel-Buffering: no\r\n") < 0 ||
	    (req->chunked && al_buf_append_str(&b, "Transfer-Encoding: chunked\r\n") < 0) ||
	    al_buf_append_str(&b, "\r\n") < 0) {
		al_buf_free(&b);
		conn_close(c);
		return -ENOMEM;
	}
	if (conn_send(c, &b) < 0)
		return -EPIPE;
	timer_set(c, T_HEARTBEAT, c->srv->opts.sse_heartbeat_ms);
	return 0;
}

/*
 * Appends "data: <line>\n" per line of data. CRLF, CR and LF all end lines
 * (as the SSE parser in the browser sees them); n separators make n+1
 * lines, so the client reassembles exactly the bytes sent.
 */
static int sse_data_lines(al_buf *b, const char *data, size_t len)
{
	size_t i = 0, j;

	for (;;) {
		for (j = i; j < len && data[j] != '\n' && data[j] != '\r'; j++)
			;
		if (al_buf_append_str(b, "data: ") < 0 || al_buf_append(b, data + i, j - i) < 0 ||
		    al_buf_append_str(b, "\n") < 0)
			return -ENOMEM;
		if (j >= len)
			return 0;
		if (data[j] == '\r' && j + 1 < len && data[j + 1] == '\n')
			j++;
		i = j + 1;
	}
}

int al_http_sse_send(al_http_req *req, const char *event, const char *data, size_t len)
{
	struct conn *c;
	al_buf ev = {0}, b = {0};
	int rc = 0;

	if (req == NULL || !req->streaming || (data == NULL && len > 0))
		return -EINVAL;
	if (event && (strchr(event, '\n') || strchr(event, '\r')))
		return -EINVAL;
	c = req->conn;
	if (c == NULL || req->closed)
		return -EPIPE;
	if ((event && al_buf_appendf(&ev, "event: %s\n", event) < 0) ||
	    sse_data_lines(&ev, data ? data : "", len) < 0 || al_buf_append_str(&ev, "\n") < 0) {
		rc = -ENOMEM;
		goto done;
	}
	if (req->chunked) {
		if (al_buf_appendf(&b, "%zx\r\n", ev.len) < 0 ||
		    al_buf_append(&b, ev.data, ev.len) < 0 || al_buf_append_str(&b, "\r\n") < 0) {
			rc = -ENOMEM;
			goto done;
		}
	} else {
		b = ev;
		ev = (al_buf){0};
	}
	rc = conn_send(c, &b);
	if (rc == 0)
		timer_set(c, T_HEARTBEAT, c->srv->opts.sse_heartbeat_ms);
done:
	al_buf_wipe(&ev);
	al_buf_free(&ev);
	al_buf_wipe(&b);
	al_buf_free(&b);
	return rc;
}

void al_http_sse_end(al_http_req *req)
{
	struct conn *c;
	int ka;

	if (req == NULL)
		return;
	if (!req->streaming) {
		/* Ended before it started: still finish the request exactly once. */
		static const char body[] = "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
					   "\"message\":\"stream ended before it started\"},"
					   "\"request_id\":null}";
		al_http_respond(req, 500, "application/json", body, sizeof(body) - 1);
		return;
	}
	c = req->conn;
	if (c != NULL) {
		c->req = NULL;
		ka = req->chunked && req->keep_alive && !req->user_close;
		if (req->chunked) {
			al_buf b = {0};
			if (al_buf_append_str(&b, "0\r\n\r\n") == 0)
				conn_send(c, &b);
			else
				al_buf_free(&b);
		}
		response_done(c, ka);
	}
	req_free(req);
}

/* ---- streamed responses ---- */

int al_http_stream_start(al_http_req *req, int status)
{
	struct conn *c;
	al_buf b = {0};

	if (req == NULL || req->streaming || status < 200 || status > 999 || status == 204 ||
	    status == 304)
		return -EINVAL;
	c = req->conn;
	req->streaming = 1;
	req->raw = 1;
	req->chunked = req->r->version_minor == 1;
	if (!req->chunked)
		req->keep_alive = 0;
	if (c == NULL)
		return -EPIPE;
	if (c->srv->draining)
		req->keep_alive = 0;
	if (build_head(&b, req, status, req->keep_alive && !req->user_close) < 0 ||
	    (req->chunked && al_buf_append_str(&b, "Transfer-Encoding: chunked\r\n") < 0) ||
	    al_buf_append_str(&b, "\r\n") < 0) {
		al_buf_free(&b);
		conn_close(c);
		return -ENOMEM;
	}
	if (conn_send(c, &b) < 0)
		return -EPIPE;
	/* The owner times the upstream; an idle stream is not ours to end. */
	timer_set(c, T_NONE, 0);
	return 0;
}

int al_http_stream_write(al_http_req *req, const void *data, size_t len)
{
	struct conn *c;
	al_buf b = {0};
	int rc;

	if (req == NULL || !req->streaming || !req->raw || (data == NULL && len > 0))
		return -EINVAL;
	c = req->conn;
	if (c == NULL || req->closed)
		return -EPIPE;
	if (len == 0)
		return 0;
	if ((req->chunked && al_buf_appendf(&b, "%zx\r\n", len) < 0) ||
	    al_buf_append(&b, data, len) < 0 ||
	    (req->chunked && al_buf_append_str(&b, "\r\n") < 0)) {
		al_buf_wipe(&b);
		al_buf_free(&b);
		return -ENOMEM;
	}
	rc = conn_send(c, &b);
	return rc;
}

void al_http_stream_end(al_http_req *req)
{
	al_http_sse_end(req);
}
