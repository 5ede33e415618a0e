/*
 * test_anthropic.c - the Messages API provider against the scripted model.
 *
 * The model stub (a test double) is served in-process from a loopback
 * socket on a thread, through the same al_model_stub_handle the
 * `airlock model-stub` command uses, so every byte the provider exchanges
 * goes over a real TCP connection: retries, retry-after, timeouts and
 * refused connections are the real thing.
 */
#include "agent/anthropic.h"

#include "agent/model_stub.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "http/server.h"
#include "unit/support/peer.h"
#include "unit/support/raw_http.h"
#include "unit/unit.h"

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
#include <unistd.h>

/* ---- the stub's loopback server ---- */

struct stub_srv {
	al_model_stub *stub;
	struct al_test_peer tp;
};

static void conn_main(int fd, void *ud)
{
	struct stub_srv *s = ud;
	static __thread char buf[256 * 1024];
	char method[16] = "", path[256] = "", key[256], head[512];
	size_t len = 0, clen = 0, hlen = 0;
	struct al_model_stub_reply r = {0};

	if (al_test_read_request(fd, buf, sizeof(buf), &len, &hlen, &clen) < 0)
		goto done;
	sscanf(buf, "%15s %255s", method, path);
	if (al_model_stub_handle(s->stub, method, path,
				 al_test_header(buf, "x-api-key", key, sizeof(key)) ? key : NULL,
				 buf + hlen, clen, &r) < 0)
		goto done;
	if (r.delay_ms) {
		/* Wait, but give up early if the client hangs up (timeout tests). */
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, (int)r.delay_ms) > 0)
			goto done;
	}
	snprintf(head, sizeof(head),
		 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		 "%s%s%sConnection: close\r\n\r\n",
		 r.status, r.body_len, r.retry_after[0] ? "Retry-After: " : "", r.retry_after,
		 r.retry_after[0] ? "\r\n" : "");
	al_test_send_all(fd, head, strlen(head));
	al_test_send_all(fd, r.body, r.body_len);
done:
	al_model_stub_reply_free(&r);
	al_test_close_drained(fd);
}

static void srv_start(struct stub_srv *s, const char *script)
{
	char err[256];

	memset(s, 0, sizeof(*s));
	if (al_model_stub_new(script, strlen(script), &s->stub, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "script: %s", err);
	al_test_peer_start(&s->tp, conn_main, s);
}

static void srv_stop(struct stub_srv *s)
{
	al_test_peer_stop(&s->tp);
	al_model_stub_free(s->stub);
}

/* ---- fixture ---- */

struct fx {
	uv_loop_t loop;
	al_http_client *http;
	al_provider *p;
	struct stub_srv srv;
	char base[64];
};

struct outcome {
	int done;
	int ok;
	int status;
	int attempts;
	char type[64];
	char message[256];
	char text[256];
	char stop_reason[32];
};

static void done_cb(const struct al_model_result *res, void *ud)
{
	struct outcome *o = ud;
	json_t *first;

	o->done++;
	o->ok = res->ok;
	o->status = res->http_status;
	o->attempts = res->attempts;
	snprintf(o->type, sizeof(o->type), "%s", res->error_type ? res->error_type : "");
	snprintf(o->message, sizeof(o->message), "%s",
		 res->error_message ? res->error_message : "");
	if (res->ok) {
		first = json_array_get(json_object_get(res->message, "content"), 0);
		snprintf(o->text, sizeof(o->text), "%s",
			 json_string_value(json_object_get(first, "text")) ?: "");
		snprintf(o->stop_reason, sizeof(o->stop_reason), "%s",
			 json_string_value(json_object_get(res->message, "stop_reason")) ?: "");
	}
}

static const struct al_retry_policy fast = {
    .max_attempts = 4, .base_delay_ms = 10, .max_delay_ms = 50, .timeout_ms = 5000};

static void fx_start(struct fx *f, const char *script, const char *key,
		     const struct al_retry_policy *pol)
{
	srv_start(&f->srv, script);
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d/", f->srv.tp.port);
	AL_ASSERT_INT_EQ(uv_loop_init(&f->loop), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&f->loop, &f->http), 0);
	f->p = al_anthropic_new(&f->loop, f->http, f->base, key, pol ? pol : &fast);
	AL_ASSERT_NOT_NULL(f->p);
}

static void fx_stop(struct fx *f)
{
	f->p->ops->free(f->p);
	al_http_client_free(f->http);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&f->loop), 0);
	srv_stop(&f->srv);
}

static json_t *request(const char *text)
{
	return json_pack("{s:s, s:i, s:[{s:s, s:s}]}", "model", "claude-sonnet-4-5", "max_tokens",
			 256, "messages", "role", "user", "content", text);
}

static void run_call(struct fx *f, const char *text, struct outcome *o)
{
	json_t *req = request(text);
	al_model_call *call = NULL;

	AL_ASSERT_INT_EQ(al_provider_call(f->p, req, done_cb, o, &call), 0);
	AL_ASSERT_NOT_NULL(call);
	json_decref(req); /* the provider keeps what it needs */
	AL_ASSERT_INT_EQ(o->done, 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(o->done, 1);
}

#define HELLO_SCRIPT                                                                               \
	"{\"steps\":[{\"content\":[{\"type\":\"text\",\"text\":\"hi: {{last_user_text}}\"}]}]"

/* ---- tests ---- */

AL_TEST(anthropic_success)
{
	struct fx f;
	struct outcome o = {0};

	fx_start(&f, HELLO_SCRIPT "}", NULL, NULL);
	run_call(&f, "ping", &o);
	AL_ASSERT_INT_EQ(o.ok, 1);
	AL_ASSERT_INT_EQ(o.status, 200);
	AL_ASSERT_INT_EQ(o.attempts, 1);
	AL_ASSERT_STR_EQ(o.text, "hi: ping");
	AL_ASSERT_STR_EQ(o.stop_reason, "end_turn");
	AL_ASSERT_INT_EQ(f.p->ops->context_window(f.p, "claude-sonnet-4-5"), 200000);
	fx_stop(&f);
}

AL_TEST(anthropic_retries_529_then_succeeds)
{
	struct fx f;
	struct outcome o = {0};

	fx_start(&f, HELLO_SCRIPT ",\"faults\":[{\"status\":529,\"count\":2}]}", NULL, NULL);
	run_call(&f, "again", &o);
	AL_ASSERT_INT_EQ(o.ok, 1);
	AL_ASSERT_INT_EQ(o.attempts, 3);
	AL_ASSERT_STR_EQ(o.text, "hi: again");
	AL_ASSERT_INT_EQ(al_model_stub_requests(f.srv.stub), 3);
	fx_stop(&f);
}

AL_TEST(anthropic_honours_retry_after)
{
	struct fx f;
	struct outcome o = {0};
	uint64_t t0, dt;

	/* Without the header the backoff would be at most 50 ms. */
	fx_start(&f, HELLO_SCRIPT ",\"faults\":[{\"status\":429,\"retry_after\":1}]}", NULL, NULL);
	t0 = al_mono_ms();
	run_call(&f, "x", &o);
	dt = al_mono_ms() - t0;
	AL_ASSERT_INT_EQ(o.ok, 1);
	AL_ASSERT_INT_EQ(o.attempts, 2);
	AL_ASSERT_INT_GE(dt, 1000);
	AL_ASSERT(dt < 5000);
	fx_stop(&f);
}

AL_TEST(anthropic_400_not_retried)
{
	struct fx f;
	struct outcome o = {0};

	fx_start(&f,
		 HELLO_SCRIPT ",\"faults\":[{\"status\":400,\"count\":5,"
			      "\"message\":\"messages: field required\"}]}",
		 NULL, NULL);
	run_call(&f, "x", &o);
	AL_ASSERT_INT_EQ(o.ok, 0);
	AL_ASSERT_INT_EQ(o.status, 400);
	AL_ASSERT_INT_EQ(o.attempts, 1);
	AL_ASSERT_STR_EQ(o.type, "invalid_request_error");
	AL_ASSERT_STR_EQ(o.message, "messages: field required");
	AL_ASSERT_INT_EQ(al_model_stub_requests(f.srv.stub), 1);
	fx_stop(&f);
}

AL_TEST(anthropic_gives_up_after_max_attempts)
{
	struct fx f;
	struct outcome o = {0};

	fx_start(&f,
		 HELLO_SCRIPT
		 ",\"faults\":[{\"status\":529,\"count\":10,\"message\":\"Overloaded\"}]}",
		 NULL, NULL);
	run_call(&f, "x", &o);
	AL_ASSERT_INT_EQ(o.ok, 0);
	AL_ASSERT_INT_EQ(o.status, 529);
	AL_ASSERT_INT_EQ(o.attempts, 4);
	AL_ASSERT_STR_EQ(o.type, "overloaded_error");
	AL_ASSERT_STR_EQ(o.message, "Overloaded");
	AL_ASSERT_INT_EQ(al_model_stub_requests(f.srv.stub), 4);
	fx_stop(&f);
}

AL_TEST(anthropic_mixed_5xx_faults)
{
	struct fx f;
	struct outcome o = {0};

	fx_start(&f,
		 HELLO_SCRIPT ",\"faults\":[{\"status\":500},{\"status\":502},{\"status\":503}]}",
		 NULL, NULL);
	run_call(&f, "x", &o);
	AL_ASSERT_INT_EQ(o.ok, 1);
	AL_ASSERT_INT_EQ(o.attempts, 4);
	fx_stop(&f);
}

AL_TEST(anthropic_api_key_checked)
{
	struct fx f;
	struct outcome good = {0}, bad = {0};
	al_provider *wrong;
	json_t *req;

	fx_start(&f, HELLO_SCRIPT "}", "sk-ant-api03-right", NULL);
	AL_ASSERT_INT_EQ(al_model_stub_set_api_key(f.srv.stub, "sk-ant-api03-right"), 0);
	run_call(&f, "x", &good);
	AL_ASSERT_INT_EQ(good.ok, 1);

	wrong = al_anthropic_new(&f.loop, f.http, f.base, "sk-ant-api03-wrong", &fast);
	AL_ASSERT_NOT_NULL(wrong);
	req = request("x");
	AL_ASSERT_INT_EQ(al_provider_call(wrong, req, done_cb, &bad, NULL), 0);
	json_decref(req);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(bad.ok, 0);
	AL_ASSERT_INT_EQ(bad.status, 401);
	AL_ASSERT_INT_EQ(bad.attempts, 1);
	AL_ASSERT_STR_EQ(bad.type, "authentication_error");
	AL_ASSERT_NULL(strstr(bad.message, "sk-ant"));
	wrong->ops->free(wrong);
	fx_stop(&f);
}

AL_TEST(anthropic_connection_refused_retried)
{
	struct fx f;
	struct outcome o = {0};
	al_provider *dead;
	json_t *req;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	char url[64];
	int fd;

	fx_start(&f, HELLO_SCRIPT "}", NULL, NULL);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	AL_ASSERT_INT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	AL_ASSERT_INT_EQ(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	dead = al_anthropic_new(&f.loop, f.http, url, "sk-ant-api03-secret", &fast);
	req = request("x");
	AL_ASSERT_INT_EQ(al_provider_call(dead, req, done_cb, &o, NULL), 0);
	json_decref(req);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(o.ok, 0);
	AL_ASSERT_INT_EQ(o.status, 0);
	AL_ASSERT_INT_EQ(o.attempts, 4);
	AL_ASSERT_STR_EQ(o.type, "connection_error");
	AL_ASSERT(o.message[0] != '\0');
	AL_ASSERT_NULL(strstr(o.message, "sk-ant"));
	dead->ops->free(dead);
	fx_stop(&f);
}

AL_TEST(anthropic_timeout_retried)
{
	struct fx f;
	struct outcome o = {0};
	const struct al_retry_policy pol = {
	    .max_attempts = 2, .base_delay_ms = 1, .max_delay_ms = 5, .timeout_ms = 150};
	uint64_t t0 = al_mono_ms();

	fx_start(&f, HELLO_SCRIPT ",\"delay_ms\":3000}", NULL, &pol);
	run_call(&f, "x", &o);
	AL_ASSERT_INT_EQ(o.ok, 0);
	AL_ASSERT_INT_EQ(o.attempts, 2);
	AL_ASSERT_STR_EQ(o.type, "timeout_error");
	AL_ASSERT_INT_GE(al_mono_ms() - t0, 300);
	AL_ASSERT_INT_EQ(al_model_stub_requests(f.srv.stub), 2);
	fx_stop(&f);
}

static void cancel_cb(uv_timer_t *t)
{
	al_provider *p = ((void **)t->data)[0];
	al_model_call *c = ((void **)t->data)[1];

	p->ops->cancel(p, c);
	uv_close((uv_handle_t *)t, NULL);
}

AL_TEST(anthropic_cancel_during_backoff)
{
	struct fx f;
	struct outcome o = {0};
	al_model_call *call = NULL;
	json_t *req = request("x");
	uv_timer_t t;
	void *pair[2];
	uint64_t t0 = al_mono_ms();

	/* The server asks for a 5 s wait; the cancel at 200 ms must end it all. */
	fx_start(&f, HELLO_SCRIPT ",\"faults\":[{\"status\":529,\"retry_after\":5}]}", NULL, NULL);
	AL_ASSERT_INT_EQ(al_provider_call(f.p, req, done_cb, &o, &call), 0);
	json_decref(req);
	pair[0] = f.p;
	pair[1] = call;
	uv_timer_init(&f.loop, &t);
	t.data = pair;
	uv_timer_start(&t, cancel_cb, 200, 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(o.done, 0);
	AL_ASSERT(al_mono_ms() - t0 < 3000);
	AL_ASSERT_INT_EQ(al_model_stub_requests(f.srv.stub), 1);
	fx_stop(&f);
}

AL_TEST(anthropic_many_concurrent_calls)
{
	struct fx f;
	struct outcome o[40];
	char text[32], want[48];

	memset(o, 0, sizeof(o));
	fx_start(&f, HELLO_SCRIPT ",\"faults\":[{\"status\":529,\"count\":10}]}", NULL, NULL);
	for (int i = 0; i < 40; i++) {
		json_t *req;
		snprintf(text, sizeof(text), "session %d", i);
		req = request(text);
		AL_ASSERT_INT_EQ(al_provider_call(f.p, req, done_cb, &o[i], NULL), 0);
		json_decref(req);
	}
	uv_run(&f.loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 40; i++) {
		snprintf(want, sizeof(want), "hi: session %d", i);
		AL_ASSERT_INT_EQ(o[i].done, 1);
		AL_ASSERT_INT_EQ(o[i].ok, 1);
		AL_ASSERT_STR_EQ(o[i].text, want);
	}
	AL_ASSERT_INT_EQ(al_model_stub_requests(f.srv.stub), 50);
	fx_stop(&f);
}

AL_TEST(anthropic_backoff_bounds)
{
	const struct al_retry_policy pol = {
	    .max_attempts = 6, .base_delay_ms = 500, .max_delay_ms = 30000};
	uint64_t seen_max = 0;

	for (int attempt = 1; attempt <= 10; attempt++) {
		uint64_t ceiling = 500ull << (attempt - 1);
		if (ceiling > 30000)
			ceiling = 30000;
		for (int i = 0; i < 200; i++) {
			uint64_t d = al_anthropic_backoff_ms(&pol, attempt);
			AL_ASSERT(d <= ceiling);
			if (d > seen_max)
				seen_max = d;
		}
	}
	/* Jittered, yet it reaches well into the upper range of the cap. */
	AL_ASSERT(seen_max > 20000);
}

AL_TEST(anthropic_rejects_bad_input)
{
	uv_loop_t loop;
	al_http_client *http;
	al_provider *p;
	struct outcome o = {0};
	json_t *arr = json_array();

	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&loop, &http), 0);
	AL_ASSERT_NULL(al_anthropic_new(&loop, http, "ftp://x", NULL, NULL));
	p = al_anthropic_new(&loop, http, "http://127.0.0.1:1", NULL, NULL);
	AL_ASSERT_NOT_NULL(p);
	AL_ASSERT_INT_EQ(al_provider_call(p, arr, done_cb, &o, NULL), -EINVAL);
	al_anthropic_set_context_window(p, 1000);
	AL_ASSERT_INT_EQ(p->ops->context_window(p, "claude-x"), 1000);
	json_decref(arr);
	p->ops->free(p);
	al_http_client_free(http);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	AL_ASSERT_INT_EQ(o.done, 0);
}

/* ---- the same provider against the project's own HTTP server on the same loop ---- */

static void stub_handler(al_http_req *req, void *ud)
{
	struct al_model_stub_reply r;
	size_t len = 0;
	const char *body = al_http_req_body(req, &len);

	if (al_model_stub_handle(ud, al_http_req_method(req), al_http_req_path(req),
				 al_http_req_header(req, "x-api-key"), body, len, &r) < 0) {
		al_http_respond(req, 500, "text/plain", "oom", 3);
		return;
	}
	if (r.retry_after[0])
		al_http_resp_header(req, "retry-after", r.retry_after);
	al_http_respond(req, r.status, "application/json", r.body, r.body_len);
	al_model_stub_reply_free(&r);
}

AL_TEST(anthropic_via_al_http_server)
{
	static const char script[] = HELLO_SCRIPT ",\"faults\":[{\"status\":503,\"count\":2}]}";
	struct al_http_server_opts so = {.host = "127.0.0.1"};
	uv_loop_t loop;
	al_http_client *http;
	al_http_server *srv;
	al_model_stub *stub;
	al_provider *p;
	struct outcome o[10];
	char err[256], base[64];

	memset(o, 0, sizeof(o));
	AL_ASSERT_INT_EQ(al_model_stub_new(script, strlen(script), &stub, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_model_stub_set_api_key(stub, "sk-ant-api03-k"), 0);
	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(
	    al_http_server_start(&loop, &so, stub_handler, stub, &srv, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&loop, &http), 0);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", al_http_server_port(srv));
	p = al_anthropic_new(&loop, http, base, "sk-ant-api03-k", &fast);
	AL_ASSERT_NOT_NULL(p);
	for (int i = 0; i < 10; i++) {
		json_t *req = request("same loop");
		AL_ASSERT_INT_EQ(al_provider_call(p, req, done_cb, &o[i], NULL), 0);
		json_decref(req);
	}
	/* Client and server share the loop: run until every call has reported. */
	for (int spins = 0; spins < 100000; spins++) {
		int done = 0;
		for (int i = 0; i < 10; i++)
			done += o[i].done;
		if (done == 10)
			break;
		uv_run(&loop, UV_RUN_ONCE);
	}
	for (int i = 0; i < 10; i++) {
		AL_ASSERT_INT_EQ(o[i].done, 1);
		if (!o[i].ok)
			al_test_fail(__FILE__, __LINE__, "call %d: status %d %s: %s (%d attempts)",
				     i, o[i].status, o[i].type, o[i].message, o[i].attempts);
		AL_ASSERT_STR_EQ(o[i].text, "hi: same loop");
	}
	AL_ASSERT_INT_EQ(al_model_stub_requests(stub), 12);
	p->ops->free(p);
	al_http_client_free(http);
	al_http_server_free(srv);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	al_model_stub_free(stub);
}
