/*
 * test_http_client.c - the outbound client against a real loopback server.
 *
 * The peer is a tiny raw-socket HTTP/1.1 server on a thread (one thread per
 * connection, Connection: close), so these tests exercise real sockets and
 * the real libcurl multi machinery without depending on airlock's own server.
 */
#include "net/http_client.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "http/server.h"
#include "unit/support/peer.h"
#include "unit/support/raw_http.h"
#include "unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the raw-socket peer ---- */

struct peer {
	struct al_test_peer tp;
	atomic_int requests;
	char last_auth[128];   /* the x-api-key the peer last saw */
	atomic_int saw_expect; /* requests that carried an Expect header */
	char last_ctype[128];  /* the Content-Type the peer last saw ("-" if none) */
};

static void conn_main(int fd, void *ud)
{
	struct peer *p = ud;
	char buf[65536], method[16] = "", path[256] = "", hv[128];
	size_t len = 0, clen = 0, hlen = 0;

	if (al_test_read_request(fd, buf, sizeof(buf), &len, &hlen, &clen) < 0)
		goto done;
	sscanf(buf, "%15s %255s", method, path);
	if (al_test_header(buf, "x-api-key", hv, sizeof(hv)))
		snprintf(p->last_auth, sizeof(p->last_auth), "%s", hv);
	if (al_test_header(buf, "Expect", hv, sizeof(hv)))
		atomic_fetch_add(&p->saw_expect, 1);
	if (!al_test_header(buf, "content-type", hv, sizeof(hv)))
		snprintf(hv, sizeof(hv), "-");
	snprintf(p->last_ctype, sizeof(p->last_ctype), "%s", hv);
	atomic_fetch_add(&p->requests, 1);

	if (strcmp(path, "/hello") == 0) {
		al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n"
				     "Retry-After: 7\r\nConnection: close\r\n\r\nhello");
	} else if (strcmp(path, "/echo") == 0) {
		char head[512];
		snprintf(head, sizeof(head),
			 "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\nX-Method: %s\r\n"
			 "Connection: close\r\n\r\n",
			 clen, method);
		al_test_send_str(fd, head);
		al_test_send_all(fd, buf + hlen, clen);
	} else if (strncmp(path, "/n/", 3) == 0) {
		char head[512];
		/* A little delay so the requests really overlap on the client. */
		usleep(20000);
		snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 strlen(path + 3), path + 3);
		al_test_send_str(fd, head);
	} else if (strcmp(path, "/slow") == 0 || strcmp(path, "/hang") == 0) {
		/* Never answers; returns when the client gives up (or after 10 s). */
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		poll(&pf, 1, 10000);
	} else if (strcmp(path, "/stream") == 0) {
		al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
		for (int i = 0; i < 3; i++) {
			char ev[64], chunk[96];
			int n = snprintf(ev, sizeof(ev), "data: part%d\n\n", i);
			snprintf(chunk, sizeof(chunk), "%x\r\n%s\r\n", n, ev);
			al_test_send_str(fd, chunk);
			usleep(30000);
		}
		al_test_send_str(fd, "0\r\n\r\n");
	} else if (strcmp(path, "/big") == 0) {
		static char blob[100000];
		memset(blob, 'x', sizeof(blob));
		al_test_send_str(
		    fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n");
		al_test_send_all(fd, blob, sizeof(blob));
	} else {
		al_test_send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n"
				     "Connection: close\r\n\r\nnot found");
	}
done:
	al_test_close_drained(fd);
}

static void peer_start(struct peer *p)
{
	memset(p, 0, sizeof(*p));
	al_test_peer_start(&p->tp, conn_main, p);
}

static void peer_stop(struct peer *p)
{
	al_test_peer_stop(&p->tp);
}

static void url(char *out, size_t len, const struct peer *p, const char *path)
{
	snprintf(out, len, "http://127.0.0.1:%d%s", p->tp.port, path);
}

/* ---- results ---- */

struct result {
	int done;
	int err;
	int status;
	char body[200];
	size_t body_len;
	char header[64];
	char retry_after[16];
	char error[256];
	al_buf streamed;
	int chunks;
	int *counter;
};

static void done_cb(al_http_call *call, const struct al_http_client_resp *resp, void *ud)
{
	struct result *r = ud;
	const char *h;

	r->done++;
	r->err = resp->err;
	r->status = resp->status;
	r->body_len = resp->body_len;
	snprintf(r->body, sizeof(r->body), "%.*s", (int)resp->body_len, resp->body);
	h = al_http_client_resp_header(resp, "x-test");
	snprintf(r->header, sizeof(r->header), "%s", h ? h : "");
	h = al_http_client_resp_header(resp, "RETRY-AFTER");
	snprintf(r->retry_after, sizeof(r->retry_after), "%s", h ? h : "");
	snprintf(r->error, sizeof(r->error), "%s", resp->error ? resp->error : "");
	if (r->counter)
		(*r->counter)++;
}

struct fixture {
	uv_loop_t loop;
	al_http_client *client;
	struct peer peer;
};

static void fx_start(struct fixture *f)
{
	peer_start(&f->peer);
	AL_ASSERT_INT_EQ(uv_loop_init(&f->loop), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&f->loop, &f->client), 0);
}

/* Frees the client, checks every handle closed, stops the peer. */
static void fx_stop(struct fixture *f)
{
	al_http_client_free(f->client);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&f->loop), 0);
	peer_stop(&f->peer);
}

/* ---- tests ---- */

AL_TEST(http_client_get)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_header hdr[] = {{"x-api-key", "sk-ant-test-secret"}};
	struct al_http_client_req req = {.headers = hdr, .nheaders = 1, .timeout_ms = 5000};
	char u[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/hello");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	/* done_cb never fires inside request(). */
	AL_ASSERT_INT_EQ(r.done, 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(r.body, "hello");
	AL_ASSERT_STR_EQ(r.header, "yes");
	AL_ASSERT_STR_EQ(r.retry_after, "7");
	AL_ASSERT_STR_EQ(f.peer.last_auth, "sk-ant-test-secret");
	fx_stop(&f);
}

AL_TEST(http_client_post_body_and_status)
{
	struct fixture f;
	struct result r = {0};
	static char body[70000]; /* over curl's buffer size: several writes */
	struct al_http_client_req req = {.method = "POST", .timeout_ms = 5000};
	char u[128];

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + i % 26);
	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/echo");
	req.url = u;
	req.body = body;
	req.body_len = 150; /* the peer's buffer is 64 KiB; keep the echo small */
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_INT_EQ(r.status, 201);
	AL_ASSERT_INT_EQ(r.body_len, 150);
	AL_ASSERT_MEM_EQ(r.body, body, 150);
	AL_ASSERT_INT_EQ(atomic_load(&f.peer.saw_expect), 0);
	fx_stop(&f);
}

AL_TEST(http_client_404_is_a_response_not_an_error)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_client_req req = {.timeout_ms = 5000};
	char u[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/nope");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_INT_EQ(r.status, 404);
	AL_ASSERT_STR_EQ(r.body, "not found");
	AL_ASSERT_STR_EQ(r.error, "");
	fx_stop(&f);
}

AL_TEST(http_client_fifty_concurrent)
{
	struct fixture f;
	struct result r[50];
	int finished = 0;
	uint64_t t0;
	char u[128], want[16];

	memset(r, 0, sizeof(r));
	fx_start(&f);
	for (int i = 0; i < 50; i++) {
		struct al_http_client_req req = {.timeout_ms = 10000};
		char path[32];
		snprintf(path, sizeof(path), "/n/%d", i);
		url(u, sizeof(u), &f.peer, path);
		req.url = u; /* copied by request() */
		r[i].counter = &finished;
		AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r[i], NULL), 0);
	}
	t0 = al_mono_ms();
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(finished, 50);
	for (int i = 0; i < 50; i++) {
		AL_ASSERT_INT_EQ(r[i].done, 1);
		AL_ASSERT_INT_EQ(r[i].err, 0);
		AL_ASSERT_INT_EQ(r[i].status, 200);
		snprintf(want, sizeof(want), "%d", i);
		AL_ASSERT_STR_EQ(r[i].body, want);
	}
	AL_ASSERT_INT_EQ(atomic_load(&f.peer.requests), 50);
	/* 50 × 20 ms served serially would take 1 s; concurrently far less. */
	AL_ASSERT(al_mono_ms() - t0 < 900);
	fx_stop(&f);
}

AL_TEST(http_client_timeout)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_client_req req = {.timeout_ms = 200};
	uint64_t t0, dt;
	char u[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/slow");
	req.url = u;
	t0 = al_mono_ms();
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	dt = al_mono_ms() - t0;
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, -ETIMEDOUT);
	AL_ASSERT_INT_EQ(r.status, 0);
	AL_ASSERT(r.error[0] != '\0');
	AL_ASSERT_INT_GE(dt, 190);
	AL_ASSERT(dt < 3000);
	fx_stop(&f);
}

AL_TEST(http_client_connection_refused)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_header hdr[] = {{"x-api-key", "sk-ant-never-in-errors"}};
	struct al_http_client_req req = {.headers = hdr, .nheaders = 1, .timeout_ms = 5000};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd;
	char u[128];

	fx_start(&f);
	/* A port that was just free and has no listener. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	AL_ASSERT_INT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	AL_ASSERT_INT_EQ(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, -ECONNREFUSED);
	AL_ASSERT_INT_EQ(r.status, 0);
	AL_ASSERT(r.error[0] != '\0');
	AL_ASSERT_NULL(strstr(r.error, "sk-ant"));
	fx_stop(&f);
}

AL_TEST(http_client_rejects_bad_input)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_header bad[] = {{"x-evil", "a\r\nInjected: 1"}};
	struct al_http_client_req req = {.url = "ftp://127.0.0.1/"};

	fx_start(&f);
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), -EINVAL);
	req.url = "http://127.0.0.1:1/";
	req.method = "get me";
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), -EINVAL);
	req.method = "GET";
	req.headers = bad;
	req.nheaders = 1;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), -EINVAL);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 0);
	fx_stop(&f);
}

/* Cancels its victim from a timer while the peer is holding the request. */
struct cancel_ctx {
	al_http_call *victim;
	uv_timer_t timer;
};

static void cancel_timer_cb(uv_timer_t *t)
{
	struct cancel_ctx *c = t->data;

	al_http_call_cancel(c->victim);
	uv_close((uv_handle_t *)t, NULL);
}

AL_TEST(http_client_cancel)
{
	struct fixture f;
	struct result r = {0}, ok = {0};
	struct al_http_client_req req = {.timeout_ms = 5000};
	struct cancel_ctx cc;
	uint64_t t0;
	char u[128], u2[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/hang");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, &cc.victim), 0);
	AL_ASSERT_NOT_NULL(cc.victim);
	url(u2, sizeof(u2), &f.peer, "/hello");
	req.url = u2;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &ok, NULL), 0);
	uv_timer_init(&f.loop, &cc.timer);
	cc.timer.data = &cc;
	uv_timer_start(&cc.timer, cancel_timer_cb, 100, 0);
	t0 = al_mono_ms();
	uv_run(&f.loop, UV_RUN_DEFAULT);
	/* The cancelled call never reports; the loop did not wait for its 5 s timeout. */
	AL_ASSERT_INT_EQ(r.done, 0);
	AL_ASSERT_INT_EQ(ok.done, 1);
	AL_ASSERT_INT_EQ(ok.status, 200);
	AL_ASSERT(al_mono_ms() - t0 < 2000);
	fx_stop(&f);
}

AL_TEST(http_client_free_with_calls_in_flight)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_client_req req = {.timeout_ms = 5000};
	char u[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/hang");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	fx_stop(&f); /* frees the client with the call still open: no callback, no leak */
	AL_ASSERT_INT_EQ(r.done, 0);
}

static int stream_cb(al_http_call *call, const char *data, size_t len, void *ud)
{
	struct result *r = ud;

	r->chunks++;
	return al_buf_append(&r->streamed, data, len);
}

AL_TEST(http_client_streams_data)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_client_req req = {.timeout_ms = 5000, .on_data = stream_cb};
	char u[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/stream");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(r.streamed.data, "data: part0\n\ndata: part1\n\ndata: part2\n\n");
	/* The peer paused between events, so they arrived as separate pieces. */
	AL_ASSERT_INT_GE(r.chunks, 3);
	AL_ASSERT_INT_EQ(r.body_len, 0);
	al_buf_free(&r.streamed);
	fx_stop(&f);
}

/* Cancels the call from inside its own on_data: no done_cb, no crash. */
static int cancel_in_data_cb(al_http_call *call, const char *data, size_t len, void *ud)
{
	struct result *r = ud;

	r->chunks++;
	al_http_call_cancel(call);
	return 0;
}

AL_TEST(http_client_cancel_from_on_data)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_client_req req = {.timeout_ms = 5000, .on_data = cancel_in_data_cb};
	char u[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/stream");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.chunks, 1);
	AL_ASSERT_INT_EQ(r.done, 0);
	fx_stop(&f);
}

static int abort_data_cb(al_http_call *call, const char *data, size_t len, void *ud)
{
	return -1;
}

AL_TEST(http_client_on_data_abort_and_body_cap)
{
	struct fixture f;
	struct result r = {0}, big = {0};
	struct al_http_client_req req = {.timeout_ms = 5000, .on_data = abort_data_cb};
	char u[128], u2[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/stream");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	url(u2, sizeof(u2), &f.peer, "/big");
	req.url = u2;
	req.on_data = NULL;
	req.max_body_bytes = 1000;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &big, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, -ECANCELED);
	AL_ASSERT_INT_EQ(big.done, 1);
	AL_ASSERT_INT_EQ(big.err, -EFBIG);
	fx_stop(&f);
}

/* on_head: once, with the final status and headers, before any body byte. */
struct head_rec {
	struct fixture *f;
	int heads;
	int status;
	char ctype[64];
	size_t body_seen; /* streamed bytes when on_head ran */
	struct result *r;
	struct result extra[2]; /* requests started from inside the callbacks */
	int started;
};

static int head_cb(al_http_call *call, int status, const struct al_http_header *h, size_t n,
		   void *ud)
{
	struct head_rec *hr = ud;

	hr->heads++;
	hr->status = status;
	hr->body_seen = hr->r->streamed.len;
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(h[i].name, "content-type") == 0)
			snprintf(hr->ctype, sizeof(hr->ctype), "%s", h[i].value);
	return 0;
}

static int head_data_cb(al_http_call *call, const char *data, size_t len, void *ud)
{
	struct head_rec *hr = ud;

	return al_buf_append(&hr->r->streamed, data, len);
}

static void head_done_cb(al_http_call *call, const struct al_http_client_resp *resp, void *ud)
{
	struct head_rec *hr = ud;

	done_cb(call, resp, hr->r);
}

AL_TEST(http_client_on_head_before_body)
{
	struct fixture f;
	struct result r = {0}, r404 = {0};
	struct head_rec hr = {.r = &r}, h404 = {.r = &r404};
	struct al_http_client_req req = {
	    .timeout_ms = 5000, .on_data = head_data_cb, .on_head = head_cb};
	char u[128], u2[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/stream");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, head_done_cb, &hr, NULL), 0);
	url(u2, sizeof(u2), &f.peer, "/nope");
	req.url = u2;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, head_done_cb, &h404, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(hr.heads, 1); /* not again for the chunked trailer's blank line */
	AL_ASSERT_INT_EQ(hr.status, 200);
	AL_ASSERT_STR_EQ(hr.ctype, "text/event-stream");
	AL_ASSERT_INT_EQ(hr.body_seen, 0);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_INT_EQ(r.streamed.len, strlen("data: part0\n\ndata: part1\n\ndata: part2\n\n"));
	AL_ASSERT_INT_EQ(h404.heads, 1);
	AL_ASSERT_INT_EQ(h404.status, 404);
	AL_ASSERT_INT_EQ(r404.status, 404);
	al_buf_free(&r.streamed);
	al_buf_free(&r404.streamed);
	fx_stop(&f);
}

/* A request started from inside on_head and on_data is attached once libcurl returns. */
static int start_from_head_cb(al_http_call *call, int status, const struct al_http_header *h,
			      size_t n, void *ud)
{
	struct head_rec *hr = ud;
	struct al_http_client_req req = {.timeout_ms = 5000};
	char u[128];

	url(u, sizeof(u), &hr->f->peer, "/hello");
	req.url = u;
	if (al_http_client_request(hr->f->client, &req, done_cb, &hr->extra[0], NULL) == 0)
		hr->started++;
	return 0;
}

static int start_from_data_cb(al_http_call *call, const char *data, size_t len, void *ud)
{
	struct head_rec *hr = ud;
	struct al_http_client_req req = {.timeout_ms = 5000};
	al_http_call *c2 = NULL;
	char u[128];

	if (hr->r->chunks++ > 0)
		return 0;
	url(u, sizeof(u), &hr->f->peer, "/n/7");
	req.url = u;
	if (al_http_client_request(hr->f->client, &req, done_cb, &hr->extra[1], NULL) == 0)
		hr->started++;
	/* And one started and cancelled at once, before it was ever attached. */
	req.url = u;
	if (al_http_client_request(hr->f->client, &req, done_cb, &hr->extra[1], &c2) == 0)
		al_http_call_cancel(c2);
	return 0;
}

AL_TEST(http_client_request_from_callbacks)
{
	struct fixture f;
	struct result r = {0};
	struct head_rec hr = {.r = &r, .f = &f};
	struct al_http_client_req req = {
	    .timeout_ms = 5000, .on_data = start_from_data_cb, .on_head = start_from_head_cb};
	char u[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/stream");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, head_done_cb, &hr, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_INT_EQ(hr.started, 2);
	AL_ASSERT_INT_EQ(hr.extra[0].done, 1);
	AL_ASSERT_STR_EQ(hr.extra[0].body, "hello");
	AL_ASSERT_INT_EQ(hr.extra[1].done, 1); /* the cancelled twin never reported */
	AL_ASSERT_STR_EQ(hr.extra[1].body, "7");
	fx_stop(&f);
}

/* A NULL header value removes the header libcurl would add (Content-Type on a POST). */
AL_TEST(http_client_null_header_removes)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_header hdr[] = {{"Content-Type", NULL}};
	struct al_http_client_req req = {.method = "POST", .timeout_ms = 5000};
	char u[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/echo");
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.status, 201);
	AL_ASSERT_STR_EQ(f.peer.last_ctype, "application/x-www-form-urlencoded");
	req.headers = hdr;
	req.nheaders = 1;
	memset(&r, 0, sizeof(r));
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.status, 201);
	AL_ASSERT_STR_EQ(f.peer.last_ctype, "-");
	fx_stop(&f);
}

/* Every allocation failure unwinds: request() fails cleanly or the call completes. */
AL_TEST(http_client_alloc_failures)
{
	int seen_fail = 0, seen_ok = 0;

	for (long n = 0; n < 400 && !seen_ok; n++) {
		struct fixture f;
		struct result r = {0};
		struct al_http_client_req req = {.timeout_ms = 5000};
		char u[128];
		int rc;

		peer_start(&f.peer);
		AL_ASSERT_INT_EQ(uv_loop_init(&f.loop), 0);
		url(u, sizeof(u), &f.peer, "/hello");
		req.url = u;
		al_alloc_fail_after(n);
		rc = al_http_client_new(&f.loop, &f.client);
		if (rc == 0) {
			rc = al_http_client_request(f.client, &req, done_cb, &r, NULL);
			if (rc == 0)
				uv_run(&f.loop, UV_RUN_DEFAULT);
		}
		al_alloc_fail_after(-1);
		if (rc < 0)
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
		if (rc == 0 && r.done && r.err == 0 && r.status == 200) {
			AL_ASSERT_STR_EQ(r.body, "hello");
			seen_ok = 1;
		} else {
			seen_fail = 1;
		}
		al_http_client_free(f.client);
		uv_run(&f.loop, UV_RUN_DEFAULT);
		AL_ASSERT_INT_EQ(uv_loop_close(&f.loop), 0);
		peer_stop(&f.peer);
	}
	AL_ASSERT(seen_fail);
	AL_ASSERT(seen_ok);
}

/* ---- HTTPS against the project's TLS server on the same loop ---- */

static EVP_PKEY *tls_write_key(const char *path)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	FILE *f;

	AL_ASSERT_NOT_NULL(k);
	f = fopen(path, "w");
	AL_ASSERT_NOT_NULL(f);
	AL_ASSERT_INT_EQ(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	return k;
}

/* A throwaway self-signed certificate for 127.0.0.1, valid one day. */
static void tls_make_cert(char *cert, char *key, size_t len)
{
	const char *dir = al_test_tmpdir();
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	X509_NAME *name;
	EVP_PKEY *k;
	FILE *f;

	snprintf(cert, len, "%s/cert.pem", dir);
	snprintf(key, len, "%s/key.pem", dir);
	k = tls_write_key(key);
	AL_ASSERT_NOT_NULL(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
				   -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
	AL_ASSERT_NOT_NULL(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	AL_ASSERT(X509_sign(x, k, EVP_sha256()) > 0);
	f = fopen(cert, "w");
	AL_ASSERT_NOT_NULL(f);
	AL_ASSERT_INT_EQ(PEM_write_X509(f, x), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void tls_handler(al_http_req *req, void *ud)
{
	al_http_respond(req, 200, "text/plain", "over tls", 8);
}

AL_TEST(http_client_https_with_ca_file)
{
	char cert[512], key[512], u[128];
	struct al_http_server_opts so = {.host = "127.0.0.1"};
	struct result trusted = {0}, untrusted = {0};
	struct al_http_client_req req = {.timeout_ms = 5000};
	uv_loop_t loop;
	al_http_server *srv;
	al_http_client *client;
	char err[256];

	tls_make_cert(cert, key, sizeof(cert));
	so.tls_cert_file = cert;
	so.tls_key_file = key;
	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(
	    al_http_server_start(&loop, &so, tls_handler, NULL, &srv, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&loop, &client), 0);
	snprintf(u, sizeof(u), "https://127.0.0.1:%d/x", al_http_server_port(srv));
	req.url = u;
	req.ca_file = cert;
	AL_ASSERT_INT_EQ(al_http_client_request(client, &req, done_cb, &trusted, NULL), 0);
	req.ca_file = NULL; /* the system bundle does not know our throwaway CA */
	AL_ASSERT_INT_EQ(al_http_client_request(client, &req, done_cb, &untrusted, NULL), 0);
	for (int i = 0; i < 100000 && !(trusted.done && untrusted.done); i++)
		uv_run(&loop, UV_RUN_ONCE);
	AL_ASSERT_INT_EQ(trusted.err, 0);
	AL_ASSERT_INT_EQ(trusted.status, 200);
	AL_ASSERT_STR_EQ(trusted.body, "over tls");
	AL_ASSERT_INT_EQ(untrusted.done, 1);
	AL_ASSERT_INT_EQ(untrusted.err, -EPROTO);
	AL_ASSERT(untrusted.error[0] != '\0');
	al_http_client_free(client);
	al_http_server_free(srv);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* ---- pause (backpressure) and resolve (address pinning), added for the gateway ---- */

struct pause_fx {
	struct result r;
	al_http_call *call;
	uv_timer_t t;
	uint64_t resumed_at, second_at;
	int paused;
};

static int pause_data_cb(al_http_call *call, const char *data, size_t len, void *ud)
{
	struct pause_fx *p = ud;

	if (p->r.chunks == 1 && p->second_at == 0)
		p->second_at = uv_now(p->t.loop);
	p->r.chunks++;
	if (!p->paused) {
		/* Paused from inside on_data, after the first piece. */
		al_http_call_pause(call, 1);
		p->paused = 1;
	}
	return al_buf_append(&p->r.streamed, data, len);
}

static void resume_cb(uv_timer_t *t)
{
	struct pause_fx *p = t->data;

	p->resumed_at = uv_now(t->loop);
	al_http_call_pause(p->call, 0);
	uv_close((uv_handle_t *)t, NULL);
}

AL_TEST(http_client_pause_holds_the_body_until_resumed)
{
	struct fixture f;
	struct pause_fx p = {0};
	struct al_http_client_req req = {.timeout_ms = 5000, .on_data = pause_data_cb};
	char u[128];

	fx_start(&f);
	url(u, sizeof(u), &f.peer, "/stream");
	req.url = u;
	uv_timer_init(&f.loop, &p.t);
	p.t.data = &p;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &p.r, &p.call), 0);
	/* The peer sends its three events 30 ms apart; we resume after 300 ms. */
	uv_timer_start(&p.t, resume_cb, 300, 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(p.r.done, 1);
	AL_ASSERT_INT_EQ(p.r.err, 0);
	AL_ASSERT_STR_EQ(p.r.streamed.data, "data: part0\n\ndata: part1\n\ndata: part2\n\n");
	/* Nothing more was delivered while paused. */
	AL_ASSERT(p.resumed_at > 0);
	AL_ASSERT_INT_GE(p.second_at, p.resumed_at);
	al_buf_free(&p.r.streamed);
	fx_stop(&f);
}

AL_TEST(http_client_resolve_pins_the_address)
{
	struct fixture f;
	struct result r = {0};
	struct al_http_client_req req = {.timeout_ms = 5000};
	char u[128], pin[128];

	fx_start(&f);
	/* A name that cannot resolve: only the pin can make this work. */
	snprintf(u, sizeof(u), "http://pinned.invalid:%d/hello", f.peer.tp.port);
	snprintf(pin, sizeof(pin), "pinned.invalid:%d:127.0.0.1", f.peer.tp.port);
	req.url = u;
	req.resolve = pin;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_STR_EQ(r.body, "hello");
	/* A new pin replaces the cached one: nothing listens on 127.0.0.2 there. */
	memset(&r, 0, sizeof(r));
	snprintf(pin, sizeof(pin), "pinned.invalid:%d:127.0.0.2", f.peer.tp.port);
	req.resolve = pin;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, -ECONNREFUSED);
	/* Without a pin such a name fails to resolve. */
	memset(&r, 0, sizeof(r));
	snprintf(u, sizeof(u), "http://unpinned.invalid:%d/hello", f.peer.tp.port);
	req.resolve = NULL;
	AL_ASSERT_INT_EQ(al_http_client_request(f.client, &req, done_cb, &r, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, -EHOSTUNREACH);
	fx_stop(&f);
}
