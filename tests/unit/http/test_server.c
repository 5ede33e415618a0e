/*
 * test_server.c - the HTTP server on a real loop, talked to over loopback.
 *
 * The server runs on the test's main thread in a uv loop; a client thread
 * uses blocking sockets (unit/http/http_client.h). When the client is done
 * it signals the loop, which frees the server so uv_run returns.
 */
#include "unit/unit.h"
#include "unit/http/http_client.h"

#include "core/alloc.h"
#include "http/server.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

struct fx {
	uv_loop_t loop;
	al_http_server *srv;
	int port;
	uv_async_t done;
	uv_async_t poke; /* client -> loop: advance the SSE script */
	pthread_t th;
	void (*client)(struct fx *);
	al_http_req *sse;
	int sse_step;
	atomic_int handled;
	atomic_int closed_cbs;
	atomic_int drained;
	int drain_on_slow; /* /slow starts a drain */
	int free_in_drain;
	int close_seen_closed; /* al_http_req_closed was 1 inside the close callback */
	size_t pending_seen;
};

struct delayed {
	uv_timer_t t;
	al_http_req *req;
};

static void delayed_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void delayed_cb(uv_timer_t *t)
{
	struct delayed *d = t->data;
	const char *path = al_http_req_path(d->req);

	AL_ASSERT_INT_EQ(al_http_respond(d->req, 200, "text/plain", path, strlen(path)), 0);
	uv_close((uv_handle_t *)t, delayed_closed_cb);
}

static void respond_later(struct fx *fx, al_http_req *req, uint64_t ms)
{
	struct delayed *d = calloc(1, sizeof(*d));

	d->req = req;
	uv_timer_init(&fx->loop, &d->t);
	d->t.data = d;
	uv_timer_start(&d->t, delayed_cb, ms, 0);
}

static void on_req_close(al_http_req *req, void *ud)
{
	struct fx *fx = ud;

	fx->close_seen_closed = al_http_req_closed(req);
	atomic_fetch_add(&fx->closed_cbs, 1);
	if (req == fx->sse) {
		fx->sse = NULL;
		AL_ASSERT_INT_EQ(al_http_sse_send(req, NULL, "x", 1), -EPIPE);
		al_http_sse_end(req);
	} else {
		/* Finishing a closed request is a cheap no-op that frees it. */
		AL_ASSERT_INT_EQ(al_http_respond(req, 200, NULL, NULL, 0), 0);
	}
}

static void drained_cb(al_http_server *srv, void *ud)
{
	struct fx *fx = ud;

	atomic_store(&fx->drained, 1);
	if (fx->free_in_drain) {
		al_http_server_free(srv);
		fx->srv = NULL;
	}
}

static void handler(al_http_req *req, void *ud)
{
	struct fx *fx = ud;
	const char *path = al_http_req_path(req);

	atomic_fetch_add(&fx->handled, 1);
	if (strcmp(path, "/echo") == 0) {
		size_t blen;
		const char *body = al_http_req_body(req, &blen);
		const char *q = al_http_req_query(req, "q");
		char out[8192];
		int n = snprintf(out, sizeof(out), "%s %s [%s] %zu:%s", al_http_req_method(req),
				 al_http_req_target(req), q ? q : "-", blen, body);
		AL_ASSERT(strncmp(al_http_req_peer(req), "127.0.0.1:", 10) == 0);
		AL_ASSERT_INT_EQ(al_http_resp_header(req, "X-Bad", "a\r\nb"), -EINVAL);
		AL_ASSERT_INT_EQ(al_http_resp_header(req, "Content-Length", "5"), -EINVAL);
		AL_ASSERT_INT_EQ(al_http_resp_header(req, "X-Test", "yes"), 0);
		AL_ASSERT_INT_EQ(al_http_respond(req, 200, "text/plain", out, (size_t)n), 0);
	} else if (strcmp(path, "/json") == 0) {
		AL_ASSERT_INT_EQ(
		    al_http_respond_json(req, 201, json_pack("{s:s}", "id", "agent_1")), 0);
	} else if (strcmp(path, "/async") == 0) {
		respond_later(fx, req, 50);
	} else if (strcmp(path, "/slow") == 0) {
		respond_later(fx, req, 150);
		if (fx->drain_on_slow)
			al_http_server_drain(fx->srv, drained_cb, fx);
	} else if (strcmp(path, "/hold") == 0) {
		al_http_req_on_close(req, on_req_close, fx);
	} else if (strcmp(path, "/sse") == 0) {
		al_http_req_on_close(req, on_req_close, fx);
		AL_ASSERT_INT_EQ(al_http_sse_start(req), 0);
		AL_ASSERT_INT_EQ(al_http_sse_send(req, "message_start", "{\"n\":1}", 7), 0);
		fx->sse = req;
		fx->sse_step = 1;
	} else if (strcmp(path, "/stream") == 0) {
		/* A streamed (proxied) body: status and headers first, no heartbeats. */
		al_http_req_on_close(req, on_req_close, fx);
		AL_ASSERT_INT_EQ(al_http_resp_header(req, "Content-Type", "application/json"), 0);
		AL_ASSERT_INT_EQ(al_http_stream_start(req, 201), 0);
		AL_ASSERT_INT_EQ(al_http_stream_start(req, 201), -EINVAL);
		AL_ASSERT_INT_EQ(al_http_stream_write(req, "{\"a\":", 5), 0);
		AL_ASSERT_INT_EQ(al_http_stream_write(req, "", 0), 0);
		fx->sse = req;
		fx->sse_step = 10;
	} else if (strcmp(path, "/flood") == 0) {
		/* A client that does not read: queued bytes must become visible. */
		static char ev[16384];
		memset(ev, 'x', sizeof(ev));
		al_http_req_on_close(req, on_req_close, fx);
		AL_ASSERT_INT_EQ(al_http_sse_start(req), 0);
		for (int i = 0; i < 8192 && al_http_req_pending_bytes(req) == 0; i++)
			AL_ASSERT_INT_EQ(al_http_sse_send(req, NULL, ev, sizeof(ev)), 0);
		fx->pending_seen = al_http_req_pending_bytes(req);
		fx->sse = req;
		atomic_store(&fx->drained, 1); /* reused as "flood done" */
	} else if (strcmp(path, "/big") == 0) {
		/* 32 KiB answers; remembers the most output ever queued at dispatch. */
		static char big[32768];
		memset(big, 'b', sizeof(big));
		if (al_http_req_pending_bytes(req) > fx->pending_seen)
			fx->pending_seen = al_http_req_pending_bytes(req);
		AL_ASSERT_INT_EQ(al_http_respond(req, 200, "text/plain", big, sizeof(big)), 0);
	} else if (strcmp(path, "/huge") == 0) {
		size_t n = 16u << 20;
		char *huge = malloc(n);
		memset(huge, 'h', n);
		AL_ASSERT_INT_EQ(al_http_respond(req, 200, "text/plain", huge, n), 0);
		free(huge);
	} else if (strcmp(path, "/nocontent") == 0 || strcmp(path, "/notmodified") == 0) {
		/* A careless handler passing a body with 204/304: it must not be sent. */
		AL_ASSERT_INT_EQ(
		    al_http_respond(req, path[3] == 'c' ? 204 : 304, "text/plain", "oops", 4), 0);
	} else if (strcmp(path, "/badtype") == 0) {
		/* A content type from data (a file's stored mime type) with CR/LF in it. */
		AL_ASSERT_INT_EQ(
		    al_http_respond(req, 200, "text/plain\r\nSet-Cookie: sid=evil", "hi", 2),
		    -EINVAL);
	} else if (strcmp(path, "/badstatus") == 0) {
		AL_ASSERT_INT_EQ(al_http_respond(req, 42, NULL, NULL, 0), -EINVAL);
	} else if (strcmp(path, "/oom") == 0) {
		/* Allocations may fail here: errors are the server's to handle. */
		size_t blen;
		const char *body = al_http_req_body(req, &blen);
		(void)al_http_resp_header(req, "X-Test", "yes");
		(void)al_http_respond(req, 200, "text/plain", body, blen);
	} else if (strcmp(path, "/sse-quiet") == 0) {
		al_http_req_on_close(req, on_req_close, fx);
		AL_ASSERT_INT_EQ(al_http_sse_start(req), 0);
		fx->sse = req;
	} else {
		static const char nf[] = "not found";
		al_http_respond(req, 404, "text/plain", nf, sizeof(nf) - 1);
	}
}

static void poke_cb(uv_async_t *a)
{
	struct fx *fx = a->data;
	al_http_req *req = fx->sse;

	if (req == NULL)
		return;
	if (fx->sse_step == 1) {
		/* multi-line data becomes several data: lines */
		AL_ASSERT_INT_EQ(al_http_sse_send(req, "delta", "line1\nline2", 11), 0);
		fx->pending_seen = al_http_req_pending_bytes(req);
		fx->sse_step = 2;
	} else if (fx->sse_step == 2) {
		fx->sse = NULL;
		al_http_sse_end(req);
	} else if (fx->sse_step == 10) {
		AL_ASSERT_INT_EQ(al_http_stream_write(req, "1}", 2), 0);
		fx->sse = NULL;
		al_http_stream_end(req);
	}
}

static void done_closed_cb(uv_handle_t *h)
{
}

static void done_cb(uv_async_t *a)
{
	struct fx *fx = a->data;

	if (fx->srv)
		al_http_server_free(fx->srv);
	fx->srv = NULL;
	uv_close((uv_handle_t *)&fx->done, done_closed_cb);
	uv_close((uv_handle_t *)&fx->poke, done_closed_cb);
}

static void *client_main(void *arg)
{
	struct fx *fx = arg;

	fx->client(fx);
	uv_async_send(&fx->done);
	return NULL;
}

/* Starts a server with opts on port 0, runs client on a thread until it is done. */
static void run(struct fx *fx, struct al_http_server_opts *opts, void (*client)(struct fx *))
{
	char err[256] = "";

	AL_ASSERT_INT_EQ(uv_loop_init(&fx->loop), 0);
	opts->host = opts->host ? opts->host : "127.0.0.1";
	AL_ASSERT_INT_EQ(
	    al_http_server_start(&fx->loop, opts, handler, fx, &fx->srv, err, sizeof(err)), 0);
	fx->port = al_http_server_port(fx->srv);
	AL_ASSERT(fx->port > 0);
	uv_async_init(&fx->loop, &fx->done, done_cb);
	uv_async_init(&fx->loop, &fx->poke, poke_cb);
	fx->done.data = fx->poke.data = fx;
	fx->client = client;
	AL_ASSERT_INT_EQ(pthread_create(&fx->th, NULL, client_main, fx), 0);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	pthread_join(fx->th, NULL);
	AL_ASSERT_INT_EQ(uv_loop_close(&fx->loop), 0);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Waits up to 5 s for *v to reach want. */
static int wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 500; i++) {
		if (atomic_load(v) >= want)
			return 1;
		sleep_ms(10);
	}
	return 0;
}

/* ---- tests ---- */

static void keep_alive_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	char v[128];

	tc_send(c, "GET /echo?q=a%20b HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(r.body, "GET /echo?q=a%20b [a b] 0:");
	AL_ASSERT_INT_EQ(tc_header(&r, "Server", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "airlock");
	AL_ASSERT_INT_EQ(tc_header(&r, "Date", v, sizeof(v)), 0);
	AL_ASSERT(strstr(v, " GMT") != NULL);
	AL_ASSERT_INT_EQ(tc_header(&r, "X-Test", v, sizeof(v)), 0);
	AL_ASSERT_INT_EQ(tc_header(&r, "Connection", v, sizeof(v)), -1);

	/* Same connection, second request with a body. */
	tc_send(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_STR_EQ(r.body, "POST /echo [-] 5:hello");

	/* JSON response, then Connection: close ends the connection. */
	tc_send(c, "GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 201);
	AL_ASSERT_STR_EQ(r.body, "{\"id\":\"agent_1\"}");
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Type", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "application/json");
	AL_ASSERT_INT_EQ(tc_header(&r, "Connection", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "close");
	AL_ASSERT(tc_eof(c));
	tc_close(c);
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), 3);
}

AL_TEST(http_server_keep_alive)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, keep_alive_client);
}

static void http10_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	char v[64];

	tc_send(c, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(tc_header(&r, "Connection", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "keep-alive");
	tc_send(c, "GET /echo HTTP/1.0\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT(tc_eof(c));
	tc_close(c);
}

AL_TEST(http_server_http10)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, http10_client);
}

static void chunked_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;

	tc_send(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "4\r\nabcd\r\n");
	sleep_ms(20); /* the body arrives in two TCP segments */
	tc_send(c, "3;ext=1\r\nefg\r\n0\r\nX-Trailer: t\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(r.body, "POST /echo [-] 7:abcdefg");

	/* Expect: 100-continue gets an interim response before the body is sent. */
	tc_send(c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
		   "Content-Length: 2\r\n\r\n");
	while (memmem(c->buf, c->len, "\r\n\r\n", 4) == NULL)
		AL_ASSERT(tc_fill(c) > 0);
	AL_ASSERT(strncmp(c->buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
	tc_send(c, "hi");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_STR_EQ(r.body, "POST /echo [-] 2:hi");
	tc_close(c);
}

AL_TEST(http_server_chunked_request)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, chunked_client);
}

/* An error answer is JSON with the status, then the connection closes. */
static void expect_error(int port, const char *req, int status)
{
	struct tc *c = tc_open(port);
	struct tc_resp r;
	char v[64];

	tc_send(c, req);
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, status);
	AL_ASSERT(strstr(r.body, status == 413
				     ? "{\"type\":\"error\",\"error\":{\"type\":"
				       "\"request_too_large\",\"message\":"
				     : "{\"type\":\"error\",\"error\":{\"type\":"
				       "\"invalid_request_error\",\"message\":") == r.body);
	AL_ASSERT(strstr(r.body, ",\"request_id\":null}") != NULL);
	AL_ASSERT_INT_EQ(tc_header(&r, "Connection", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "close");
	AL_ASSERT(tc_eof(c));
	tc_close(c);
}

static void limits_client(struct fx *fx)
{
	char big[600];

	/* 413 is sent at once, from the Content-Length, before the body. */
	expect_error(fx->port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n",
		     413);
	expect_error(fx->port,
		     "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "65\r\n",
		     413);
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	char req[1024];
	snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", big);
	expect_error(fx->port, req, 431);
	expect_error(fx->port, "GET /echo HTTP/1.1\r\nHost : x\r\n\r\n", 400);
	expect_error(fx->port, "GET /echo HTTP/1.1\nHost: x\r\n\r\n", 400);
	expect_error(fx->port, "GET /echo HTTP/2.0\r\nHost: x\r\n\r\n", 505);
	expect_error(fx->port,
		     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n"
		     "\r\nx",
		     400);
	/* Exactly at the body limit still works. */
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	char body[101];
	memset(body, 'b', 100);
	body[100] = '\0';
	snprintf(req, sizeof(req),
		 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n%s", body);
	tc_send(c, req);
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	tc_close(c);
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), 1);
}

AL_TEST(http_server_limits_and_errors)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {.max_body_bytes = 100, .max_header_bytes = 512};
	run(&fx, &o, limits_client);
}

static void async_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;

	/* Pipelined: the slow first answer must still come first. */
	tc_send(c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
		   "GET /async?2 HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_STR_EQ(r.body, "/async");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT(strncmp(r.body, "GET /echo ", 10) == 0);
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_STR_EQ(r.body, "/async");
	tc_close(c);
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), 3);
}

AL_TEST(http_server_async_and_pipelining)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, async_client);
}

static void sse_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	char v[128], chunk[4096];

	tc_send(c, "GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_head(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Type", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "text/event-stream");
	AL_ASSERT_INT_EQ(tc_header(&r, "Cache-Control", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "no-cache");
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Length", v, sizeof(v)), -1);
	AL_ASSERT_INT_EQ(tc_header(&r, "Transfer-Encoding", v, sizeof(v)), 0);
	/*
	 * The first event arrives while the server still holds the stream open
	 * and before it has sent the second one (it waits for our poke).
	 */
	AL_ASSERT(tc_read_chunk(c, chunk, sizeof(chunk)) > 0);
	AL_ASSERT_STR_EQ(chunk, "event: message_start\ndata: {\"n\":1}\n\n");
	uv_async_send(&fx->poke);
	AL_ASSERT(tc_read_chunk(c, chunk, sizeof(chunk)) > 0);
	AL_ASSERT_STR_EQ(chunk, "event: delta\ndata: line1\ndata: line2\n\n");
	uv_async_send(&fx->poke);
	AL_ASSERT_INT_EQ(tc_read_chunk(c, chunk, sizeof(chunk)), 0);
	/* The connection is still usable after the stream. */
	tc_send(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	tc_close(c);
	AL_ASSERT_INT_EQ(atomic_load(&fx->closed_cbs), 0);
}

AL_TEST(http_server_sse_events_one_by_one)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, sse_client);
}

static void stream_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	char v[128], chunk[4096];

	tc_send(c, "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_head(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 201);
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Type", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "application/json");
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Length", v, sizeof(v)), -1);
	AL_ASSERT_INT_EQ(tc_header(&r, "Transfer-Encoding", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "chunked");
	/* The first chunk is out before the handler writes the second. */
	AL_ASSERT_INT_EQ(tc_read_chunk(c, chunk, sizeof(chunk)), 5);
	AL_ASSERT_STR_EQ(chunk, "{\"a\":");
	uv_async_send(&fx->poke);
	AL_ASSERT_INT_EQ(tc_read_chunk(c, chunk, sizeof(chunk)), 2);
	AL_ASSERT_STR_EQ(chunk, "1}");
	AL_ASSERT_INT_EQ(tc_read_chunk(c, chunk, sizeof(chunk)), 0);
	/* Reusable afterwards. */
	tc_send(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	tc_close(c);
	AL_ASSERT_INT_EQ(atomic_load(&fx->closed_cbs), 0);
}

AL_TEST(http_server_stream_chunks)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, stream_client);
}

static void heartbeat_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	char chunk[256];

	tc_send(c, "GET /sse-quiet HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_head(c, &r), 0);
	AL_ASSERT(tc_read_chunk(c, chunk, sizeof(chunk)) > 0);
	AL_ASSERT_STR_EQ(chunk, ": ping\n\n");
	AL_ASSERT(tc_read_chunk(c, chunk, sizeof(chunk)) > 0);
	AL_ASSERT_STR_EQ(chunk, ": ping\n\n");
	tc_close(c);
	/* Our close reaches the server as EOF: the stream's close callback fires. */
	AL_ASSERT(wait_for(&fx->closed_cbs, 1));
}

AL_TEST(http_server_sse_heartbeat_and_disconnect)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {.sse_heartbeat_ms = 50};
	run(&fx, &o, heartbeat_client);
	AL_ASSERT_INT_EQ(fx.close_seen_closed, 1);
}

static void disconnect_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);

	tc_send(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT(wait_for(&fx->handled, 1));
	sleep_ms(50);
	AL_ASSERT_INT_EQ(atomic_load(&fx->closed_cbs), 0);
	tc_close(c);
	AL_ASSERT(wait_for(&fx->closed_cbs, 1));
}

AL_TEST(http_server_disconnect_fires_close)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, disconnect_client);
	AL_ASSERT_INT_EQ(fx.close_seen_closed, 1);
}

static void timeout_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;

	/* Half a request, then silence: 408 and close. */
	tc_send(c, "GET /echo HTTP/1.1\r\nHost:");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 408);
	AL_ASSERT(tc_eof(c));
	tc_close(c);

	/* A served keep-alive connection left idle is closed. */
	c = tc_open(fx->port);
	tc_send(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT(tc_eof(c));
	tc_close(c);
}

AL_TEST(http_server_timeouts)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {.request_timeout_ms = 100, .idle_timeout_ms = 100};
	run(&fx, &o, timeout_client);
}

static void drain_client(struct fx *fx)
{
	struct tc *idle = tc_open(fx->port), *busy, *sse;
	struct tc_resp r;
	char v[64], chunk[256];

	tc_send(idle, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(idle, &r), 0);
	sse = tc_open(fx->port);
	tc_send(sse, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_head(sse, &r), 0);
	AL_ASSERT(tc_read_chunk(sse, chunk, sizeof(chunk)) > 0);

	/* /slow starts the drain while its own answer is 150 ms away. */
	busy = tc_open(fx->port);
	tc_send(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(busy, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(r.body, "/slow");
	AL_ASSERT_INT_EQ(tc_header(&r, "Connection", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "close");
	AL_ASSERT(tc_eof(busy));
	/* The idle connection was closed, the stream ended with its last chunk. */
	AL_ASSERT(tc_eof(idle));
	AL_ASSERT_INT_EQ(tc_read_chunk(sse, chunk, sizeof(chunk)), 0);
	AL_ASSERT(wait_for(&fx->drained, 1));
	AL_ASSERT_INT_EQ(atomic_load(&fx->closed_cbs), 1); /* the stream's */
	/* No longer accepting. */
	AL_ASSERT_INT_EQ(tc_connect_fd(fx->port), -1);
	tc_close(idle);
	tc_close(busy);
	tc_close(sse);
}

AL_TEST(http_server_drain)
{
	struct fx fx = {.drain_on_slow = 1, .free_in_drain = 1};
	struct al_http_server_opts o = {0};
	run(&fx, &o, drain_client);
}

static void drain_timeout_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port), *d;

	tc_send(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT(wait_for(&fx->handled, 1));
	d = tc_open(fx->port);
	tc_send(d, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
	/* /hold never answers: the drain timeout force-closes it. */
	AL_ASSERT(wait_for(&fx->drained, 1));
	AL_ASSERT_INT_EQ(atomic_load(&fx->closed_cbs), 1);
	AL_ASSERT(tc_eof(c));
	tc_close(c);
	tc_close(d);
}

AL_TEST(http_server_drain_timeout)
{
	struct fx fx = {.drain_on_slow = 1, .free_in_drain = 1};
	struct al_http_server_opts o = {.drain_timeout_ms = 300};
	run(&fx, &o, drain_timeout_client);
}

AL_TEST(http_server_start_errors)
{
	uv_loop_t loop;
	al_http_server *a = NULL, *b = NULL;
	struct al_http_server_opts o = {.host = "127.0.0.1"};
	char err[256] = "";

	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(al_http_server_start(&loop, &o, handler, NULL, &a, err, sizeof(err)), 0);
	o.port = al_http_server_port(a);
	AL_ASSERT_INT_EQ(al_http_server_start(&loop, &o, handler, NULL, &b, err, sizeof(err)),
			 UV_EADDRINUSE);
	AL_ASSERT_NULL(b);
	AL_ASSERT(strstr(err, "address already in use") != NULL);
	o.host = "not-an-ip";
	AL_ASSERT_INT_EQ(al_http_server_start(&loop, &o, handler, NULL, &b, err, sizeof(err)),
			 -EINVAL);
	/* IPv6 loopback works when the host has it. */
	o.host = "::1";
	o.port = 0;
	if (al_http_server_start(&loop, &o, handler, NULL, &b, err, sizeof(err)) == 0) {
		AL_ASSERT(al_http_server_port(b) > 0);
		al_http_server_free(b);
	}
	o.host = "127.0.0.1";
	o.tls_cert_file = "/nonexistent/cert.pem";
	o.tls_key_file = "/nonexistent/key.pem";
	AL_ASSERT(al_http_server_start(&loop, &o, handler, NULL, &b, err, sizeof(err)) < 0);
	AL_ASSERT(strstr(err, "certificate") != NULL);
	al_http_server_free(a);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

static void flood_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);

	tc_send(c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT(wait_for(&fx->drained, 1));
	tc_close(c);
	AL_ASSERT(wait_for(&fx->closed_cbs, 1));
}

AL_TEST(http_server_sse_backpressure)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, flood_client);
	AL_ASSERT(fx.pending_seen > 0);
}

static void set_rcv_timeout(struct tc *c, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void max_conns_client(struct fx *fx)
{
	struct tc *a = tc_open(fx->port), *b = tc_open(fx->port), *c;
	struct tc_resp r;
	char one;

	tc_send(a, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(a, &r), 0);
	tc_send(b, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(b, &r), 0);
	/* The third client gets through the kernel's backlog but is not served. */
	c = tc_open(fx->port);
	tc_send(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	set_rcv_timeout(c, 300);
	AL_ASSERT(recv(c->fd, &one, 1, MSG_PEEK) < 0);
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), 2);
	/* The admitted ones keep working; closing one admits the waiting client. */
	tc_send(b, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(b, &r), 0);
	tc_close(a);
	set_rcv_timeout(c, 5000);
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), 4);
	tc_close(b);
	tc_close(c);
}

AL_TEST(http_server_max_connections)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {.max_connections = 2};
	run(&fx, &o, max_conns_client);
}

static void pipeline_flood_client(struct fx *fx)
{
	static const char one[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
	enum { N = 400 };
	static char reqs[N * (sizeof(one) - 1) + 1];
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	int before;

	for (int i = 0; i < N; i++)
		memcpy(reqs + i * (sizeof(one) - 1), one, sizeof(one) - 1);
	/* 400 requests for 12.8 MB of answers, and no reading for a while. */
	tc_sendn(c, reqs, N * (sizeof(one) - 1));
	sleep_ms(500);
	before = atomic_load(&fx->handled);
	AL_ASSERT(before < N);
	/* Reading drains the output and the server goes on with the pipeline. */
	for (int i = 0; i < N; i++) {
		AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
		AL_ASSERT_INT_EQ(r.status, 200);
		AL_ASSERT_INT_EQ(r.body_len, 32768);
	}
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), N);
	tc_close(c);
}

AL_TEST(http_server_pipelining_output_bound)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, pipeline_flood_client);
	/* Never more than ~1 MiB of answers queued in user space (plus one answer). */
	AL_ASSERT(fx.pending_seen <= 1024 * 1024 + 33 * 1024);
}

static void slow_reader_client(struct fx *fx)
{
	int fd = tc_connect_fd(fx->port), rcv = 65536;
	static char buf[1 << 16];
	size_t total = 0;
	long n;

	AL_ASSERT(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	static const char req[] = "GET /huge HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	AL_ASSERT_INT_EQ(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (long)sizeof(req) - 1);
	/* Read nothing for well past the idle timeout. */
	sleep_ms(600);
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		total += (size_t)n;
	/* The server gave up on us: we got EOF (or a reset) before the whole answer. */
	AL_ASSERT(n == 0 || errno == ECONNRESET);
	AL_ASSERT(total < (16u << 20));
	close(fd);
}

AL_TEST(http_server_closing_conn_times_out_slow_reader)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {.idle_timeout_ms = 200};
	run(&fx, &o, slow_reader_client);
}

static void bodyless_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	char v[64];

	/* Pipelined, so any stray body byte would corrupt the responses after it. */
	tc_send(c, "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n"
		   "GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n"
		   "GET /notmodified HTTP/1.1\r\nHost: x\r\n\r\n"
		   "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	memset(&r, 0, sizeof(r));
	AL_ASSERT_INT_EQ(tc_read_head(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Length", v, sizeof(v)), 0);
	AL_ASSERT(strtol(v, NULL, 10) > 0); /* the length of the GET body, not sent */
	AL_ASSERT_INT_EQ(tc_read_head(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 204);
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Length", v, sizeof(v)), -1);
	AL_ASSERT_INT_EQ(tc_read_head(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 304);
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Length", v, sizeof(v)), -1);
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT(strncmp(r.body, "GET /echo ", 10) == 0);
	tc_close(c);
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), 4);
}

AL_TEST(http_server_no_body_for_head_204_304)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, bodyless_client);
}

static void bad_respond_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	char v[64];

	tc_send(c, "GET /badtype HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 500);
	AL_ASSERT_INT_EQ(tc_header(&r, "Set-Cookie", v, sizeof(v)), -1);
	AL_ASSERT(strstr(r.head, "evil") == NULL);
	/* A status the server cannot send: still answered, the connection lives on. */
	tc_send(c, "GET /badstatus HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 500);
	tc_send(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	tc_close(c);
}

AL_TEST(http_server_respond_rejects_bad_arguments)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	run(&fx, &o, bad_respond_client);
}

/*
 * Every server allocation failing in turn, from the request's first byte
 * to its answer: each attempt ends in a 200, a 500 or a closed connection,
 * never a hang, and ASan finds no leak when the server is freed.
 */
static void oom_client(struct fx *fx)
{
	static const char req[] =
	    "POST /oom?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
	int served = 0;
	struct tc *c;
	struct tc_resp r;

	for (long k = 0; k < 200 && served < 3; k++) {
		struct pollfd pfd;
		int rc;

		c = tc_open(fx->port);
		sleep_ms(10); /* let the loop accept: the failures hit the request */
		al_alloc_fail_after(k);
		tc_send(c, req);
		pfd = (struct pollfd){.fd = c->fd, .events = POLLIN};
		poll(&pfd, 1, 100);
		al_alloc_fail_after(-1);
		errno = 0;
		rc = tc_read_response(c, &r);
		if (rc == 0) {
			AL_ASSERT(r.status == 200 || r.status == 500);
			if (r.status == 200) {
				AL_ASSERT_STR_EQ(r.body, "hello");
				served++;
			}
		} else {
			AL_ASSERT(errno != EAGAIN && errno != EWOULDBLOCK); /* not a hang */
		}
		tc_close(c);
	}
	AL_ASSERT_INT_EQ(served, 3);
	/* A failed accept is retried: the client is served once memory is back. */
	al_alloc_fail_after(0);
	c = tc_open(fx->port);
	tc_send(c, req);
	sleep_ms(150);
	al_alloc_fail_after(-1);
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	tc_close(c);
}

AL_TEST(http_server_alloc_failures)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {0};
	al_alloc_init();
	run(&fx, &o, oom_client);
}

/*
 * Slowloris: a head trickling in one byte at a time never resets the
 * request timer; the 408 comes when the whole request's time is up.
 */
static void slow_head_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	int sent = 0;

	tc_send(c, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ");
	/* 40 bytes over 2 s against a 300 ms request timeout. */
	while (sent < 40 && poll(&pfd, 1, 50) == 0) {
		tc_send(c, "a");
		sent++;
	}
	AL_ASSERT(sent < 15);
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 408);
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), 0);
	tc_close(c);
}

AL_TEST(http_server_slow_head_times_out)
{
	struct fx fx = {0};
	struct al_http_server_opts o = {.request_timeout_ms = 300};
	run(&fx, &o, slow_head_client);
}
