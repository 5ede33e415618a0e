/*
 * test_client.c - the worker's protocol client against a scripted upstream.
 *
 * The upstream is a TEST DOUBLE: a raw-socket HTTP/1.1 peer on loopback (one
 * thread per connection, Connection: close) that records every request and
 * answers what the test scripted. The client under test is real: libcurl,
 * the libuv loop, the SSE parser. The assertions are on the bytes the peer
 * received (request line, headers, body) and on how each reply is decoded.
 */
#include "worker/client.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "unit/support/peer.h"
#include "unit/support/raw_http.h"
#include "unit/unit.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQS 16

struct peer;
typedef void (*serve_fn)(struct peer *p, int fd, const char *req, size_t hlen);

struct peer {
	struct al_test_peer tp;
	pthread_mutex_t mu;
	char reqs[MAX_REQS][8192]; /* every request received, head and body */
	size_t hlens[MAX_REQS];
	int nreqs;
	const char *reply;	   /* the default handler sends this */
	const char *const *pieces; /* or, for a stream: these, 30 ms apart, then close */
	serve_fn serve;		   /* or this */
};

static void conn_main(int fd, void *ud)
{
	struct peer *p = ud;
	int slot = -1;
	char buf[8192];
	size_t len = 0, clen = 0, hlen = 0;

	if (al_test_read_request(fd, buf, sizeof(buf), &len, &hlen, &clen) < 0)
		goto done;
	pthread_mutex_lock(&p->mu);
	if (p->nreqs < MAX_REQS) {
		slot = p->nreqs++;
		snprintf(p->reqs[slot], sizeof(p->reqs[slot]), "%s", buf);
		p->hlens[slot] = hlen;
	}
	pthread_mutex_unlock(&p->mu);
	if (p->serve) {
		p->serve(p, fd, buf, hlen);
	} else if (p->pieces) {
		al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				     "Cache-Control: no-cache\r\nConnection: close\r\n\r\n");
		for (int i = 0; p->pieces[i]; i++) {
			usleep(30000);
			al_test_send_str(fd, p->pieces[i]);
		}
	} else if (p->reply) {
		al_test_send_str(fd, p->reply);
	}
done:
	al_test_close_drained(fd);
}

static void peer_start(struct peer *p)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	al_test_peer_start(&p->tp, conn_main, p);
}

static void peer_stop(struct peer *p)
{
	al_test_peer_stop(&p->tp);
}

/* The request line of request i (copied out). */
static void req_line(struct peer *p, int i, char *out, size_t len)
{
	const char *r = p->reqs[i], *e = strstr(r, "\r\n");

	snprintf(out, len, "%.*s", e ? (int)(e - r) : 0, r);
}

static const char *req_body(struct peer *p, int i)
{
	return p->reqs[i] + p->hlens[i];
}

/* ---- the fixture ---- */

struct fx {
	uv_loop_t loop;
	struct al_wc *wc;
	struct peer peer;
	char base[64];
};

static void fx_start(struct fx *f)
{
	peer_start(&f->peer);
	AL_ASSERT_INT_EQ(uv_loop_init(&f->loop), 0);
	/* A trailing slash in the base URL is tolerated. */
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d/", f->peer.tp.port);
	AL_ASSERT_INT_EQ(al_wc_new(&f->loop, f->base, NULL, &f->wc), 0);
}

static void fx_stop(struct fx *f)
{
	al_wc_free(f->wc);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&f->loop), 0);
	peer_stop(&f->peer);
}

/* A decoded response, copied out of the callback. */
struct res {
	int n;
	int err;
	int status;
	char body[512]; /* compact JSON of the body, "" if NULL */
	int body_null;	/* the body was JSON null */
	char etype[64];
	char emsg[256];
	char details[256];
	long retry_after_ms;
	int should_retry;
	int retryable;
};

static void res_cb(const struct al_wc_resp *r, void *ud)
{
	struct res *x = ud;
	char *s = NULL;

	x->n++;
	x->err = r->err;
	x->status = r->status;
	x->body_null = json_is_null(r->body);
	if (r->body && (s = json_dumps(r->body, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS)))
		snprintf(x->body, sizeof(x->body), "%s", s);
	al_free(s);
	s = NULL;
	snprintf(x->etype, sizeof(x->etype), "%s", r->error_type ? r->error_type : "");
	snprintf(x->emsg, sizeof(x->emsg), "%s", r->error_message ? r->error_message : "");
	if (r->details && (s = json_dumps(r->details, JSON_COMPACT | JSON_SORT_KEYS)))
		snprintf(x->details, sizeof(x->details), "%s", s);
	al_free(s);
	x->retry_after_ms = r->retry_after_ms;
	x->should_retry = r->should_retry;
	x->retryable = al_wc_is_retryable(r);
}

static void hdr(struct peer *p, int i, const char *name, char *out, size_t len)
{
	if (!al_test_header(p->reqs[i], name, out, len))
		snprintf(out, len, "(absent)");
}

/* The headers every request must carry. */
static void assert_std_headers(struct peer *p, int i, const char *token)
{
	char v[256], want[256];

	hdr(p, i, "authorization", v, sizeof(v));
	snprintf(want, sizeof(want), "Bearer %s", token);
	AL_ASSERT_STR_EQ(v, want);
	hdr(p, i, "anthropic-beta", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "managed-agents-2026-04-01");
	hdr(p, i, "anthropic-version", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "2026-10-21");
	hdr(p, i, "user-agent", v, sizeof(v));
	AL_ASSERT(strncmp(v, "airlock-worker/", 15) == 0);
	hdr(p, i, "x-api-key", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "(absent)");
}

#define OK_JSON(body)                                                                              \
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"               \
	"Content-Length: " #body "\r\n\r\n"

/* ---- calls ---- */

AL_TEST(wc_poll_request_and_work)
{
	struct fx f;
	struct res r = {0}, rn = {0};
	char line[512], v[128];
	static const char work[] = "{\"id\":\"work_1\",\"type\":\"work\",\"state\":\"queued\"}";
	char reply[512];

	fx_start(&f);
	snprintf(reply, sizeof(reply),
		 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 strlen(work), work);
	f.peer.reply = reply;
	AL_ASSERT_INT_EQ(
	    al_wc_poll(f.wc, "env_1", "envkey-SECRET", "worker-7", 999, 5000, res_cb, &r, NULL), 0);
	AL_ASSERT_INT_EQ(r.n, 0); /* never inside the call */
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.n, 1);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(r.body, "{\"id\":\"work_1\",\"state\":\"queued\",\"type\":\"work\"}");
	AL_ASSERT_INT_EQ(r.retry_after_ms, -1);
	AL_ASSERT_INT_EQ(r.retryable, 0);
	req_line(&f.peer, 0, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "GET /v1/environments/env_1/work/poll?block_ms=999"
			       "&reclaim_older_than_ms=5000 HTTP/1.1");
	assert_std_headers(&f.peer, 0, "envkey-SECRET");
	hdr(&f.peer, 0, "anthropic-worker-id", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "worker-7");
	hdr(&f.peer, 0, "accept", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "application/json");

	/* An empty queue: a literal null; reclaim 0 and block 0 are left out. */
	f.peer.reply = OK_JSON(4) "null";
	AL_ASSERT_INT_EQ(al_wc_poll(f.wc, "env_1", "envkey-SECRET", NULL, 0, 0, res_cb, &rn, NULL),
			 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(rn.n, 1);
	AL_ASSERT_INT_EQ(rn.status, 200);
	AL_ASSERT_INT_EQ(rn.body_null, 1);
	req_line(&f.peer, 1, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "GET /v1/environments/env_1/work/poll HTTP/1.1");
	hdr(&f.peer, 1, "anthropic-worker-id", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "(absent)");
	fx_stop(&f);
}

AL_TEST(wc_work_calls_request_shapes)
{
	struct fx f;
	struct res r[5];
	char line[512], v[128];

	memset(r, 0, sizeof(r));
	fx_start(&f);
	f.peer.reply = OK_JSON(2) "{}";
	AL_ASSERT_INT_EQ(al_wc_ack(f.wc, "env_1", "work_1", "envkey-A", res_cb, &r[0], NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(
	    al_wc_heartbeat(f.wc, "env_1", "work_1", "sesstok-B", 0, NULL, res_cb, &r[1], NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(al_wc_heartbeat(f.wc, "env_1", "work_1", "sesstok-B", 90,
					 "2026-01-02T03:04:05.678Z", res_cb, &r[2], NULL),
			 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(al_wc_stop(f.wc, "env_1", "work_1", "sesstok-B", 1, res_cb, &r[3], NULL),
			 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(al_wc_work_get(f.wc, "env_1", "work_1", "envkey-A", res_cb, &r[4], NULL),
			 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 5; i++) {
		AL_ASSERT_INT_EQ(r[i].n, 1);
		AL_ASSERT_INT_EQ(r[i].status, 200);
		AL_ASSERT_STR_EQ(r[i].body, "{}");
	}

	req_line(&f.peer, 0, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "POST /v1/environments/env_1/work/work_1/ack HTTP/1.1");
	assert_std_headers(&f.peer, 0, "envkey-A");
	/* No body and no content-type, as the SDK sends a body-less POST. */
	hdr(&f.peer, 0, "content-type", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "(absent)");
	hdr(&f.peer, 0, "content-length", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "0");

	req_line(&f.peer, 1, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "POST /v1/environments/env_1/work/work_1/heartbeat"
			       "?expected_last_heartbeat=NO_HEARTBEAT HTTP/1.1");
	assert_std_headers(&f.peer, 1, "sesstok-B");
	hdr(&f.peer, 1, "content-type", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "(absent)");

	req_line(&f.peer, 2, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "POST /v1/environments/env_1/work/work_1/heartbeat"
			       "?desired_ttl_seconds=90"
			       "&expected_last_heartbeat=2026-01-02T03%3A04%3A05.678Z HTTP/1.1");

	req_line(&f.peer, 3, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "POST /v1/environments/env_1/work/work_1/stop HTTP/1.1");
	assert_std_headers(&f.peer, 3, "sesstok-B");
	hdr(&f.peer, 3, "content-type", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "application/json");
	AL_ASSERT_STR_EQ(req_body(&f.peer, 3), "{\"force\":true}");

	req_line(&f.peer, 4, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "GET /v1/environments/env_1/work/work_1 HTTP/1.1");
	fx_stop(&f);
}

AL_TEST(wc_session_calls_encode_and_send)
{
	struct fx f;
	struct res r[3];
	char line[512];
	json_t *events = json_pack("[{s:s, s:s, s:b, s:[]}]", "type", "user.tool_result",
				   "tool_use_id", "toolu_1", "is_error", 0, "content");

	memset(r, 0, sizeof(r));
	fx_start(&f);
	f.peer.reply = OK_JSON(37) "{\"data\":[{\"id\":\"e1\"}],\"next_page\":\"\"}";
	/* Path segments and query values are percent-encoded. */
	AL_ASSERT_INT_EQ(
	    al_wc_events_list(f.wc, "ses x/y", "sesstok-C", 1000, "pg/1+2=&z", res_cb, &r[0], NULL),
	    0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(al_wc_events_send(f.wc, "ses_1", "sesstok-C", events, res_cb, &r[1], NULL),
			 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(al_wc_session_get(f.wc, "ses_1", "sesstok-C", res_cb, &r[2], NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(events->refcount, 1); /* borrowed, not kept */

	req_line(&f.peer, 0, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "GET /v1/sessions/ses%20x%2Fy/events?limit=1000"
			       "&page=pg%2F1%2B2%3D%26z HTTP/1.1");
	assert_std_headers(&f.peer, 0, "sesstok-C");
	AL_ASSERT_INT_EQ(r[0].status, 200);

	req_line(&f.peer, 1, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "POST /v1/sessions/ses_1/events HTTP/1.1");
	AL_ASSERT_STR_EQ(req_body(&f.peer, 1),
			 "{\"events\":[{\"type\":\"user.tool_result\",\"tool_use_id\":\"toolu_1\","
			 "\"is_error\":false,\"content\":[]}]}");
	req_line(&f.peer, 2, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "GET /v1/sessions/ses_1 HTTP/1.1");
	json_decref(events);
	fx_stop(&f);
}

AL_TEST(wc_next_page)
{
	json_t *a = json_pack("{s:[], s:s}", "data", "next_page", "cur_2");
	json_t *b = json_pack("{s:[], s:n}", "data", "next_page");
	json_t *c = json_pack("{s:[], s:s}", "data", "next_page", "");
	json_t *d = json_pack("{s:[]}", "data");

	AL_ASSERT_STR_EQ(al_wc_next_page(a), "cur_2");
	AL_ASSERT_NULL(al_wc_next_page(b));
	AL_ASSERT_NULL(al_wc_next_page(c));
	AL_ASSERT_NULL(al_wc_next_page(d));
	AL_ASSERT_NULL(al_wc_next_page(NULL));
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(d);
}

AL_TEST(wc_rejects_bad_input)
{
	struct fx f;
	struct res r = {0};

	fx_start(&f);
	/* A token that would split a header, an empty token, an empty id. */
	AL_ASSERT_INT_EQ(al_wc_ack(f.wc, "env_1", "work_1", "tok\r\nX-Evil: 1", res_cb, &r, NULL),
			 -EINVAL);
	AL_ASSERT_INT_EQ(al_wc_ack(f.wc, "env_1", "work_1", "", res_cb, &r, NULL), -EINVAL);
	AL_ASSERT_INT_EQ(al_wc_ack(f.wc, "", "work_1", "tok", res_cb, &r, NULL), -EINVAL);
	AL_ASSERT_INT_EQ(al_wc_events_send(f.wc, "ses_1", "tok", NULL, res_cb, &r, NULL), -EINVAL);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.n, 0);
	AL_ASSERT_INT_EQ(f.peer.nreqs, 0);
	fx_stop(&f);
	{
		uv_loop_t loop;
		struct al_wc *wc = NULL;
		uv_loop_init(&loop);
		AL_ASSERT_INT_EQ(al_wc_new(&loop, "ftp://x", NULL, &wc), -EINVAL);
		AL_ASSERT_INT_EQ(al_wc_new(&loop, "http://x/?q=1", NULL, &wc), -EINVAL);
		AL_ASSERT_NULL(wc);
		uv_loop_close(&loop);
	}
}

/* ---- decoding errors ---- */

static void http_date_in(long secs, char *out, size_t len)
{
	time_t t = time(NULL) + secs;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void run_one(struct fx *f, const char *reply, struct res *r)
{
	memset(r, 0, sizeof(*r));
	f->peer.reply = reply;
	AL_ASSERT_INT_EQ(
	    al_wc_heartbeat(f->wc, "env_1", "work_1", "sesstok-D", 0, "x", res_cb, r, NULL), 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r->n, 1);
}

AL_TEST(wc_error_shapes_and_retry_after)
{
	struct fx f;
	struct res r;
	char reply[1024], date[64];
	static const char e412[] =
	    "{\"type\":\"error\",\"error\":{\"type\":\"precondition_failed_error\","
	    "\"message\":\"expected_last_heartbeat does not match\","
	    "\"details\":{\"current_state\":{\"state\":\"active\",\"ttl_seconds\":90}}}}";

	fx_start(&f);
	snprintf(reply, sizeof(reply),
		 "HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/json\r\n"
		 "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
		 strlen(e412), e412);
	run_one(&f, reply, &r);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_INT_EQ(r.status, 412);
	AL_ASSERT_STR_EQ(r.etype, "precondition_failed_error");
	AL_ASSERT_STR_EQ(r.emsg, "expected_last_heartbeat does not match");
	AL_ASSERT_STR_EQ(r.details,
			 "{\"current_state\":{\"state\":\"active\",\"ttl_seconds\":90}}");
	AL_ASSERT_INT_EQ(r.retryable, 0);
	AL_ASSERT_INT_EQ(al_wc_is_fatal_4xx(r.status), 1);

	/* 429 with Retry-After in seconds (a fraction, as the SDK's parseFloat allows). */
	run_one(&f,
		"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2.5\r\nConnection: close\r\n"
		"Content-Length: 74\r\n\r\n"
		"{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow "
		"down\"}}",
		&r);
	AL_ASSERT_INT_EQ(r.status, 429);
	AL_ASSERT_STR_EQ(r.etype, "rate_limit_error");
	AL_ASSERT_STR_EQ(r.details, "");
	AL_ASSERT_INT_EQ(r.retry_after_ms, 2500);
	AL_ASSERT_INT_EQ(r.retryable, 1);

	/* 503 with an HTTP date 30 s ahead. */
	http_date_in(30, date, sizeof(date));
	snprintf(reply, sizeof(reply),
		 "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\nConnection: close\r\n"
		 "Content-Length: 0\r\n\r\n",
		 date);
	run_one(&f, reply, &r);
	AL_ASSERT_INT_EQ(r.status, 503);
	AL_ASSERT_INT_GE(r.retry_after_ms, 28000);
	AL_ASSERT(r.retry_after_ms <= 30000);
	AL_ASSERT_STR_EQ(r.body, "");
	AL_ASSERT_INT_EQ(r.retryable, 1);

	/* A date in the past is 0; retry-after-ms wins over Retry-After. */
	http_date_in(-100, date, sizeof(date));
	snprintf(reply, sizeof(reply),
		 "HTTP/1.1 529 Overloaded\r\nRetry-After: %s\r\nConnection: close\r\n"
		 "Content-Length: 0\r\n\r\n",
		 date);
	run_one(&f, reply, &r);
	AL_ASSERT_INT_EQ(r.retry_after_ms, 0);
	run_one(&f,
		"HTTP/1.1 503 Unavailable\r\nRetry-After: 9\r\nretry-after-ms: 1500\r\n"
		"Connection: close\r\nContent-Length: 0\r\n\r\n",
		&r);
	AL_ASSERT_INT_EQ(r.retry_after_ms, 1500);
	run_one(&f,
		"HTTP/1.1 503 Unavailable\r\nRetry-After: soon\r\n"
		"Connection: close\r\nContent-Length: 0\r\n\r\n",
		&r);
	AL_ASSERT_INT_EQ(r.retry_after_ms, -1);
	/* Longer than the SDK would wait (2^31 - 1 ms): ignored, not obeyed for years. */
	run_one(&f,
		"HTTP/1.1 503 Unavailable\r\nRetry-After: 31536000\r\n"
		"Connection: close\r\nContent-Length: 0\r\n\r\n",
		&r);
	AL_ASSERT_INT_EQ(r.retry_after_ms, -1);
	run_one(&f,
		"HTTP/1.1 503 Unavailable\r\nretry-after-ms: 99999999999\r\n"
		"Connection: close\r\nContent-Length: 0\r\n\r\n",
		&r);
	AL_ASSERT_INT_EQ(r.retry_after_ms, -1);

	/* x-should-retry overrides the status, both ways. */
	run_one(&f,
		"HTTP/1.1 500 Oops\r\nx-should-retry: false\r\nConnection: close\r\n"
		"Content-Length: 0\r\n\r\n",
		&r);
	AL_ASSERT_INT_EQ(r.should_retry, 0);
	AL_ASSERT_INT_EQ(r.retryable, 0);
	run_one(&f,
		"HTTP/1.1 400 Bad\r\nx-should-retry: true\r\nConnection: close\r\n"
		"Content-Length: 0\r\n\r\n",
		&r);
	AL_ASSERT_INT_EQ(r.retryable, 1);

	/* A body that is not JSON: status kept, no error fields. */
	run_one(&f,
		"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nConnection: close\r\n"
		"Content-Length: 13\r\n\r\n<html></html>",
		&r);
	AL_ASSERT_INT_EQ(r.status, 502);
	AL_ASSERT_STR_EQ(r.body, "");
	AL_ASSERT_STR_EQ(r.etype, "");
	AL_ASSERT_INT_EQ(r.retryable, 1);

	/* 409 is retryable for the SDK (lock timeout); 404 is not. */
	run_one(&f, "HTTP/1.1 409 Conflict\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", &r);
	AL_ASSERT_INT_EQ(r.retryable, 1);
	run_one(&f, "HTTP/1.1 404 Nope\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", &r);
	AL_ASSERT_INT_EQ(r.retryable, 0);
	fx_stop(&f);
}

AL_TEST(wc_is_fatal_4xx_matches_the_sdk)
{
	static const int fatal[] = {400, 401, 403, 404, 405, 412, 413, 422, 499};
	static const int not_fatal[] = {200, 204, 302, 408, 409, 429, 500, 503, 529, 0};

	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		AL_ASSERT_INT_EQ(al_wc_is_fatal_4xx(fatal[i]), 1);
	for (size_t i = 0; i < sizeof(not_fatal) / sizeof(not_fatal[0]); i++)
		AL_ASSERT_INT_EQ(al_wc_is_fatal_4xx(not_fatal[i]), 0);
}

AL_TEST(wc_transport_errors_never_carry_the_token)
{
	uv_loop_t loop;
	struct al_wc *wc = NULL;
	struct res r = {0};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	char base[64];
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	AL_ASSERT_INT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	AL_ASSERT_INT_EQ(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(al_wc_new(&loop, base, NULL, &wc), 0);
	AL_ASSERT_INT_EQ(
	    al_wc_poll(wc, "env_1", "envkey-NEVER-SHOWN", "w", 10, 0, res_cb, &r, NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.n, 1);
	AL_ASSERT_INT_EQ(r.err, -ECONNREFUSED);
	AL_ASSERT_INT_EQ(r.status, 0);
	AL_ASSERT(r.emsg[0] != '\0');
	AL_ASSERT_NULL(strstr(r.emsg, "NEVER-SHOWN"));
	AL_ASSERT_INT_EQ(r.retryable, 1);
	AL_ASSERT_INT_EQ(r.retry_after_ms, -1);
	al_wc_free(wc);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* A cancelled call's callback never fires; cancelling from its own callback is harmless. */
static void cancel_self_cb(const struct al_wc_resp *r, void *ud)
{
	struct al_wc_call **self = ud;

	(void)r;
	al_wc_cancel(*self);
	*self = NULL;
}

AL_TEST(wc_cancel)
{
	struct fx f;
	struct res r = {0};
	struct al_wc_call *call = NULL, *self = NULL;

	fx_start(&f);
	f.peer.reply = OK_JSON(2) "{}";
	AL_ASSERT_INT_EQ(al_wc_ack(f.wc, "env_1", "work_1", "k", res_cb, &r, &call), 0);
	AL_ASSERT_NOT_NULL(call);
	al_wc_cancel(call);
	AL_ASSERT_INT_EQ(al_wc_ack(f.wc, "env_1", "work_2", "k", cancel_self_cb, &self, &self), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(r.n, 0);
	AL_ASSERT_NULL(self);
	/* Calls still in flight at free: no callback, no leak (ASan checks). */
	AL_ASSERT_INT_EQ(al_wc_ack(f.wc, "env_1", "work_3", "k", res_cb, &r, NULL), 0);
	fx_stop(&f);
	AL_ASSERT_INT_EQ(r.n, 0);
}

/* ---- the stream ---- */

struct sres {
	struct fx *f;
	int opens;
	int events_at_open;
	char ids[8][32];
	int nev;
	struct res end;
	struct al_wc_stream *s;
	int close_after; /* close from event_cb after this many events (0: never) */
	int close_in_open;
	struct res list; /* a history call made from open_cb */
	int list_from_open;
	unsigned long ignored; /* al_wc_stream_ignored at the last event */
	uint64_t last_rx, now; /* al_wc_stream_last_rx_ms and al_mono_ms at the last event */
};

static void s_open_cb(void *ud)
{
	struct sres *x = ud;

	x->opens++;
	x->events_at_open = x->nev;
	if (x->list_from_open)
		AL_ASSERT_INT_EQ(al_wc_events_list(x->f->wc, "ses_1", "sesstok-E", 1000, NULL,
						   res_cb, &x->list, NULL),
				 0);
	if (x->close_in_open)
		al_wc_stream_close(x->s);
}

static void s_event_cb(json_t *ev, void *ud)
{
	struct sres *x = ud;
	const char *id = json_string_value(json_object_get(ev, "id"));

	if (x->nev < 8)
		snprintf(x->ids[x->nev], sizeof(x->ids[0]), "%s", id ? id : "?");
	x->nev++;
	if (x->close_after && x->nev == x->close_after)
		al_wc_stream_close(x->s);
}

static void s_end_cb(const struct al_wc_resp *r, void *ud)
{
	struct sres *x = ud;

	res_cb(r, &x->end);
	al_wc_stream_close(x->s); /* a no-op from its own end_cb */
}

static void open_stream(struct fx *f, struct sres *x)
{
	x->f = f;
	AL_ASSERT_INT_EQ(al_wc_stream_open(f->wc, "ses_1", "sesstok-E", s_open_cb, s_event_cb,
					   s_end_cb, x, &x->s),
			 0);
	AL_ASSERT_NOT_NULL(x->s);
}

AL_TEST(wc_stream_events_split_across_reads)
{
	struct fx f;
	struct sres x = {0};
	char line[256], v[128];
	static const char *const pieces[] = {
	    ": ping\n\nevent: agent.message\nda",
	    "ta: {\"id\":\"sevt_1\",\"type\":\"agent.message\"}\n",
	    "\nevent: ping\ndata: {\"type\":\"ping\"}\n\nevent: agent.x\ndata: not json\n\n"
	    "event: agent.tool_use\r\ndata: {\"id\":\"sevt_2\",",
	    "\"type\":\"agent.tool_use\",\"name\":\"bash\"}\r\n\r",
	    "\nevent: session.status_idle\ndata: {\"id\":\"sevt_3\"}\n\n",
	    NULL};

	fx_start(&f);
	f.peer.pieces = pieces;
	open_stream(&f, &x);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(x.opens, 1);
	AL_ASSERT_INT_EQ(x.events_at_open, 0);
	AL_ASSERT_INT_EQ(x.nev, 3);
	AL_ASSERT_STR_EQ(x.ids[0], "sevt_1");
	AL_ASSERT_STR_EQ(x.ids[1], "sevt_2");
	AL_ASSERT_STR_EQ(x.ids[2], "sevt_3");
	/* The server closed the stream: end_cb once, clean. */
	AL_ASSERT_INT_EQ(x.end.n, 1);
	AL_ASSERT_INT_EQ(x.end.err, 0);
	AL_ASSERT_INT_EQ(x.end.status, 200);
	req_line(&f.peer, 0, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "GET /v1/sessions/ses_1/events/stream HTTP/1.1");
	assert_std_headers(&f.peer, 0, "sesstok-E");
	hdr(&f.peer, 0, "accept", v, sizeof(v));
	AL_ASSERT_STR_EQ(v, "text/event-stream");
	fx_stop(&f);
}

/* The ignored count, read while the stream is alive. */
static void count_event_cb(json_t *ev, void *ud)
{
	struct sres *x = ud;

	(void)ev;
	x->nev++;
	x->ignored = al_wc_stream_ignored(x->s);
	x->last_rx = al_wc_stream_last_rx_ms(x->s);
	x->now = al_mono_ms();
}

AL_TEST(wc_stream_counts_ignored)
{
	struct fx f;
	struct sres x = {0};
	static const char *const pieces[] = {
	    "event: ping\ndata: {}\n\ndata: [1]\n\ndata: nope\n\ndata: {\"id\":\"a\"}\n\n", NULL};
	uint64_t t0;

	fx_start(&f);
	f.peer.pieces = pieces;
	x.f = &f;
	t0 = al_mono_ms();
	/* open_cb may be NULL. */
	AL_ASSERT_INT_EQ(
	    al_wc_stream_open(f.wc, "ses_1", "t", NULL, count_event_cb, s_end_cb, &x, &x.s), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(x.nev, 1);
	AL_ASSERT_INT_EQ(x.ignored, 3); /* the ping, the array, the non-JSON */
	/* The peer sends its piece 30 ms after the head: last_rx moved past the open. */
	AL_ASSERT_INT_GE(x.last_rx, t0 + 25);
	AL_ASSERT(x.last_rx <= x.now);
	AL_ASSERT_INT_EQ(x.end.n, 1);
	AL_ASSERT_INT_EQ(x.end.err, 0);
	fx_stop(&f);
}

/* Closed right after opening, before the loop ever ran: nothing fires. */
AL_TEST(wc_stream_close_at_once)
{
	struct fx f;
	struct sres x = {0};
	static const char *const pieces[] = {"data: {\"id\":\"a\"}\n\n", NULL};

	fx_start(&f);
	f.peer.pieces = pieces;
	open_stream(&f, &x);
	al_wc_stream_close(x.s);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(x.opens, 0);
	AL_ASSERT_INT_EQ(x.nev, 0);
	AL_ASSERT_INT_EQ(x.end.n, 0);
	fx_stop(&f);
}

AL_TEST(wc_stream_close_from_event_cb)
{
	struct fx f;
	struct sres x = {0};
	static const char *const pieces[] = {"data: {\"id\":\"a\"}\n\ndata: {\"id\":\"b\"}\n\n",
					     "data: {\"id\":\"c\"}\n\n", NULL};

	fx_start(&f);
	f.peer.pieces = pieces;
	x.close_after = 1;
	open_stream(&f, &x);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(x.opens, 1);
	AL_ASSERT_INT_EQ(x.nev, 1); /* b came in the same read, and was not delivered */
	AL_ASSERT_STR_EQ(x.ids[0], "a");
	AL_ASSERT_INT_EQ(x.end.n, 0);
	fx_stop(&f);
}

AL_TEST(wc_stream_close_from_open_cb)
{
	struct fx f;
	struct sres x = {0};
	static const char *const pieces[] = {"data: {\"id\":\"a\"}\n\n", NULL};

	fx_start(&f);
	f.peer.pieces = pieces;
	x.close_in_open = 1;
	open_stream(&f, &x);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(x.opens, 1);
	AL_ASSERT_INT_EQ(x.nev, 0);
	AL_ASSERT_INT_EQ(x.end.n, 0);
	fx_stop(&f);
}

/* The real pattern: open the stream, and from open_cb list the history. */
static void history_or_stream(struct peer *p, int fd, const char *req, size_t hlen)
{
	(void)hlen;
	if (strncmp(req, "GET /v1/sessions/ses_1/events/stream ", 37) == 0) {
		al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				     "Connection: close\r\n\r\n");
		/* Events only after the history call arrived, as a live server would. */
		for (int i = 0; i < 100; i++) {
			int n;
			pthread_mutex_lock(&p->mu);
			n = p->nreqs;
			pthread_mutex_unlock(&p->mu);
			if (n >= 2)
				break;
			usleep(10000);
		}
		al_test_send_str(fd, "event: agent.message\ndata: {\"id\":\"live_1\"}\n\n");
	} else {
		al_test_send_str(fd,
				 OK_JSON(42) "{\"data\":[{\"id\":\"old_1\"}],\"next_page\":null}");
	}
}

AL_TEST(wc_stream_list_history_from_open_cb)
{
	struct fx f;
	struct sres x = {0};
	char line[256];

	fx_start(&f);
	f.peer.serve = history_or_stream;
	x.list_from_open = 1;
	open_stream(&f, &x);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(x.opens, 1);
	AL_ASSERT_INT_EQ(x.list.n, 1);
	AL_ASSERT_INT_EQ(x.list.status, 200);
	AL_ASSERT_STR_EQ(x.list.body, "{\"data\":[{\"id\":\"old_1\"}],\"next_page\":null}");
	AL_ASSERT_INT_EQ(x.nev, 1);
	AL_ASSERT_STR_EQ(x.ids[0], "live_1");
	AL_ASSERT_INT_EQ(x.end.n, 1);
	AL_ASSERT_INT_EQ(x.end.err, 0);
	req_line(&f.peer, 1, line, sizeof(line));
	AL_ASSERT_STR_EQ(line, "GET /v1/sessions/ses_1/events?limit=1000 HTTP/1.1");
	fx_stop(&f);
}

AL_TEST(wc_stream_404_before_open)
{
	struct fx f;
	struct sres x = {0};

	fx_start(&f);
	f.peer.reply =
	    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
	    "Connection: close\r\nContent-Length: 74\r\n\r\n"
	    "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"no "
	    "session\"}}";
	open_stream(&f, &x);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(x.opens, 0);
	AL_ASSERT_INT_EQ(x.nev, 0);
	AL_ASSERT_INT_EQ(x.end.n, 1);
	AL_ASSERT_INT_EQ(x.end.err, 0);
	AL_ASSERT_INT_EQ(x.end.status, 404);
	AL_ASSERT_STR_EQ(x.end.etype, "not_found_error");
	AL_ASSERT_STR_EQ(x.end.emsg, "no session");
	AL_ASSERT_INT_EQ(x.end.retryable, 0);
	fx_stop(&f);
}

AL_TEST(wc_stream_error_event)
{
	struct fx f;
	struct sres x = {0};
	static const char *const pieces[] = {
	    "data: {\"id\":\"a\"}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":"
	    "{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
	    "data: {\"id\":\"never\"}\n\n", NULL};

	fx_start(&f);
	f.peer.pieces = pieces;
	open_stream(&f, &x);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(x.nev, 1);
	AL_ASSERT_INT_EQ(x.end.n, 1);
	AL_ASSERT_INT_EQ(x.end.err, -EIO);
	AL_ASSERT_INT_EQ(x.end.status, 200);
	AL_ASSERT_STR_EQ(x.end.etype, "overloaded_error");
	AL_ASSERT_STR_EQ(x.end.emsg, "Overloaded");
	AL_ASSERT_INT_EQ(x.end.retryable, 1);
	fx_stop(&f);
}

/* A chunked stream cut before its last chunk is a broken stream, not a clean close. */
static void broken_stream(struct peer *p, int fd, const char *req, size_t hlen)
{
	(void)p;
	(void)req;
	(void)hlen;
	al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
			     "12\r\ndata: {\"id\":\"a\"}\n\n\r\n");
	usleep(30000);
}

AL_TEST(wc_stream_broken_is_an_error)
{
	struct fx f;
	struct sres x = {0};

	fx_start(&f);
	f.peer.serve = broken_stream;
	open_stream(&f, &x);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(x.opens, 1);
	AL_ASSERT_INT_EQ(x.nev, 1);
	AL_ASSERT_INT_EQ(x.end.n, 1);
	AL_ASSERT(x.end.err < 0);
	AL_ASSERT_INT_EQ(x.end.retryable, 1);
	fx_stop(&f);
}

/* Streams still open at free: no callback; memory checked by ASan. */
AL_TEST(wc_free_with_stream_open)
{
	struct fx f;
	struct sres x = {0};
	static const char *const pieces[] = {"data: {\"id\":\"a\"}\n\n", NULL};

	fx_start(&f);
	f.peer.pieces = pieces;
	open_stream(&f, &x);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	fx_stop(&f);
	AL_ASSERT_INT_EQ(x.end.n, 0);
}

/* ---- allocation failures ---- */

static void stream_or_ok(struct peer *p, int fd, const char *req, size_t hlen)
{
	(void)p;
	(void)hlen;
	if (strncmp(req, "GET /v1/sessions/ses_1/events/stream ", 37) == 0)
		al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				     "Connection: close\r\n\r\ndata: {\"id\":\"a\"}\n\n");
	else
		al_test_send_str(fd, OK_JSON(2) "{}");
}

/* Every allocation failure unwinds: a call fails with -ENOMEM or completes; no leak, no crash. */
AL_TEST(wc_alloc_failures)
{
	int seen_fail = 0, seen_ok = 0;

	for (long n = 0; n < 1500 && !seen_ok; n++) {
		struct fx f;
		struct sres x = {0};
		struct res r = {0};
		json_t *events = json_pack("[{s:s}]", "type", "user.interrupt");
		int rc;

		peer_start(&f.peer);
		f.peer.serve = stream_or_ok;
		AL_ASSERT_INT_EQ(uv_loop_init(&f.loop), 0);
		snprintf(f.base, sizeof(f.base), "http://127.0.0.1:%d", f.peer.tp.port);
		f.wc = NULL;
		x.f = &f;
		al_alloc_fail_after(n);
		rc = al_wc_new(&f.loop, f.base, NULL, &f.wc);
		if (rc == 0)
			rc = al_wc_stream_open(f.wc, "ses_1", "t", s_open_cb, s_event_cb, s_end_cb,
					       &x, &x.s);
		if (rc == 0) {
			rc = al_wc_events_send(f.wc, "ses_1", "t", events, res_cb, &r, NULL);
			if (rc < 0)
				al_wc_stream_close(x.s);
		}
		if (rc == 0)
			uv_run(&f.loop, UV_RUN_DEFAULT);
		al_alloc_fail_after(-1);
		if (rc < 0)
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
		if (rc == 0 && x.nev == 1 && x.end.n == 1 && x.end.err == 0 && r.n == 1 &&
		    r.status == 200)
			seen_ok = 1;
		else
			seen_fail = 1;
		json_decref(events);
		al_wc_free(f.wc);
		uv_run(&f.loop, UV_RUN_DEFAULT);
		AL_ASSERT_INT_EQ(uv_loop_close(&f.loop), 0);
		peer_stop(&f.peer);
	}
	AL_ASSERT(seen_fail);
	AL_ASSERT(seen_ok);
}
