/*
 * server.h - HTTP/1.1 server on libuv, plain or TLS (OpenSSL memory BIOs).
 *
 * One al_http_server listens on one address. Each complete request (headers
 * and the whole body, decoded from chunked if need be) is handed to the
 * handler once. The handler answers at once or later (after a store round
 * trip), but exactly once: al_http_respond*() or, for a stream,
 * al_http_sse_start() ... al_http_sse_end().
 *
 * Lifetime of an al_http_req: valid from the handler call until the
 * response is finished (respond, or sse_end). If the peer goes away first,
 * the close callback (al_http_req_on_close) fires at once; the request stays
 * valid and the owner must still finish it (responding to a closed request is
 * a cheap no-op). This one rule keeps asynchronous handlers free of
 * use-after-free: nobody frees a request but its finisher.
 *
 * Everything here runs on the loop thread.
 */
#ifndef AL_HTTP_SERVER_H
#define AL_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct al_http_server al_http_server;
typedef struct al_http_req al_http_req;

typedef void (*al_http_handler_cb)(al_http_req *req, void *ud);
typedef void (*al_http_close_cb)(al_http_req *req, void *ud);
typedef void (*al_http_drained_cb)(al_http_server *srv, void *ud);

struct al_http_server_opts {
	const char *host;	     /* "127.0.0.1", "::", "0.0.0.0" */
	int port;		     /* 0: the kernel picks; see al_http_server_port */
	const char *tls_cert_file;   /* PEM chain; NULL for plain HTTP */
	const char *tls_key_file;    /* PEM key */
	size_t max_header_bytes;     /* request line + headers; 0: 32 KiB (431 beyond) */
	size_t max_body_bytes;	     /* 0: 8 MiB (413 beyond) */
	uint64_t request_timeout_ms; /* whole request must arrive within; 0: 30 s (408) */
	uint64_t idle_timeout_ms;    /* keep-alive idle; 0: 60 s */
	uint64_t sse_heartbeat_ms;   /* ": ping" comment on idle streams; 0: 15 s */
	uint64_t drain_timeout_ms;   /* max wait for in-flight requests on drain; 0: 10 s */
	/*
	 * Added: open connections at most; 0: AL_HTTP_DEFAULT_MAX_CONNECTIONS.
	 * At the limit the server stops accepting: new clients wait in the
	 * kernel's listen backlog (511) until a connection closes, so a flood
	 * of idle sockets cannot exhaust file descriptors or memory.
	 */
	size_t max_connections;
};

#define AL_HTTP_DEFAULT_MAX_CONNECTIONS 1024u

/*
 * Creates and starts listening. On error returns a negative errno-style code
 * and writes a human message to err (which never contains key material).
 */
int al_http_server_start(uv_loop_t *loop, const struct al_http_server_opts *opts,
			 al_http_handler_cb handler, void *ud, al_http_server **out, char *err,
			 size_t errlen);
/* The bound port (useful with port 0). */
int al_http_server_port(const al_http_server *srv);
/*
 * Graceful drain (SIGTERM): stop accepting, let in-flight requests finish
 * (up to drain_timeout_ms), end every SSE stream cleanly (their close
 * callbacks fire), close idle keep-alive connections, then call cb.
 */
void al_http_server_drain(al_http_server *srv, al_http_drained_cb cb, void *ud);
/* Closes everything at once and frees the server (after its handles close). */
void al_http_server_free(al_http_server *srv);

/* ---- request accessors (valid until the request is finished) ---- */
const char *al_http_req_method(const al_http_req *req); /* "GET" */
const char *al_http_req_path(const al_http_req *req);	/* percent-decoded path, no query */
const char *al_http_req_target(const al_http_req *req); /* raw request-target */
/* Query parameter by name (percent-decoded), NULL if absent. First wins. */
const char *al_http_req_query(const al_http_req *req, const char *name);
/* Header by case-insensitive name, NULL if absent. */
const char *al_http_req_header(const al_http_req *req, const char *name);
/* Iterate headers: returns 0 and fills name/value for i < count. */
size_t al_http_req_header_count(const al_http_req *req);
int al_http_req_header_at(const al_http_req *req, size_t i, const char **name, const char **value);
const char *al_http_req_body(const al_http_req *req, size_t *len); /* NUL-terminated copy */
const char *al_http_req_peer(const al_http_req *req);		   /* "127.0.0.1:5123" */
/* 1 when the peer has gone away (the close callback has fired or will). */
int al_http_req_closed(const al_http_req *req);
/* Per-request user pointer for the handler's own state. */
void al_http_req_set_data(al_http_req *req, void *data);
void *al_http_req_data(const al_http_req *req);
void al_http_req_on_close(al_http_req *req, al_http_close_cb cb, void *ud);

/* ---- responses: each finishes the request exactly once ---- */
/*
 * Adds a response header before respond/sse_start. Names and values are
 * copied; CR or LF in either is rejected with -EINVAL.
 */
int al_http_resp_header(al_http_req *req, const char *name, const char *value);
/*
 * Sends a complete response (status 200..999) and finishes the request.
 * Invalid arguments (a status below 200, a body NULL with len > 0, a
 * content type containing CR, LF or another control byte) still finish the
 * request, with a generic 500, and return -EINVAL. HEAD, 204 and 304
 * answers are sent without body bytes. Returns 0, -EINVAL, -ENOMEM or
 * -EPIPE (the request is finished in every case but req == NULL or a stream).
 */
int al_http_respond(al_http_req *req, int status, const char *content_type, const void *body,
		    size_t len);
/* Serialises body compactly as application/json; takes ownership of body. */
int al_http_respond_json(al_http_req *req, int status, json_t *body);

/* ---- Server-Sent Events ---- */
/* Sends 200 with text/event-stream headers; the request becomes a stream. */
int al_http_sse_start(al_http_req *req);
/*
 * Sends one event ("event: <event>\n" when event is non-NULL, then data split
 * on newlines into "data:" lines, then a blank line), flushed at once.
 * Returns -EPIPE if the peer is gone.
 */
int al_http_sse_send(al_http_req *req, const char *event, const char *data, size_t len);
/* Ends the stream and finishes the request. */
void al_http_sse_end(al_http_req *req);
/* Bytes queued to the peer but not yet written (backpressure for slow readers). */
size_t al_http_req_pending_bytes(const al_http_req *req);

/* ---- streamed responses (added for the gateway) ---- */
/*
 * Sends the status line and the headers added with al_http_resp_header
 * (which may include Content-Type), framed with Transfer-Encoding: chunked
 * on HTTP/1.1 (by connection close on 1.0); the body follows in
 * al_http_stream_write calls and al_http_stream_end finishes the request.
 * Unlike an SSE stream, the server adds nothing to the body (no heartbeat
 * comments: it may not be an event stream), and a drain lets the stream run
 * to its end (or drain_timeout_ms) instead of cutting it, because a body cut
 * short would be a truncated response. Status 200..999 except 204 and 304,
 * which have no body (use al_http_respond). 0, -EINVAL, -ENOMEM, -EPIPE.
 */
int al_http_stream_start(al_http_req *req, int status);
/*
 * Queues len bytes as one chunk and flushes it at once (no coalescing, so an
 * SSE event reaches the client as soon as it is written). len 0 is a no-op.
 * Check al_http_req_pending_bytes for backpressure. -EPIPE when the peer
 * is gone, -EINVAL if the request is not a started stream.
 */
int al_http_stream_write(al_http_req *req, const void *data, size_t len);
/* Sends the last chunk and finishes the request (also after the peer left). */
void al_http_stream_end(al_http_req *req);

#endif
