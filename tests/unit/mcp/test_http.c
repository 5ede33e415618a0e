/*
 * test_http.c - MCP Streamable HTTP (mcp/http.c) on a real al_http_server
 * on 127.0.0.1 (a port the kernel picks), with a real al_mcp_server and a
 * few tools registered here, talked to by a blocking raw client on a
 * thread (unit/http/http_client.h).
 *
 * The loop runs on the test's main thread; when the client is done it
 * signals the loop, which frees the HTTP server (closing whatever is still
 * open), the transport and the MCP server, so uv_run returns.
 */
#include "unit/unit.h"
#include "unit/http/http_client.h"

#include "mcp/http.h"
#include "mcp/server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

struct fx {
	uv_loop_t loop;
	al_mcp_server *srv;
	al_mcp_http *mh;
	al_http_server *hs;
	int port;
	uv_async_t done;
	pthread_t th;
	void (*client)(struct fx *);
	atomic_int entered;   /* hang tool calls that started */
	atomic_int cancelled; /* on_cancel callbacks seen */
	atomic_int answered;  /* slow tool answers sent */
};

/* ---- tools ---- */

static void echo_tool(al_mcp_call *c, json_t *args, void *ud)
{
	json_t *text = json_object_get(args, "text");

	(void)ud;
	al_mcp_call_result(c, json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text",
					json_is_string(text) ? json_string_value(text) : "hi"));
}

/* Progress before the answer, in the same turn: the response becomes SSE. */
static void progress_tool(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	AL_ASSERT_INT_EQ(al_mcp_call_progress(c, 1, 2, "half"), 0);
	al_mcp_call_result(c,
			   json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", "done"));
}

struct later {
	uv_timer_t t;
	al_mcp_call *c;
	struct fx *fx;
};

static void later_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void later_cb(uv_timer_t *t)
{
	struct later *l = t->data;

	if (l->c) {
		atomic_fetch_add(&l->fx->answered, 1);
		al_mcp_call_progress(l->c, 2, 2, NULL);
		al_mcp_call_result(
		    l->c, json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", "late"));
	}
	uv_close((uv_handle_t *)t, later_closed_cb);
}

/* The caller went away: the call is finished and gone, the timer must not use it. */
static void later_cancel_cb(al_mcp_call *c, void *ud)
{
	struct later *l = ud;

	(void)c;
	l->c = NULL;
	atomic_fetch_add(&l->fx->cancelled, 1);
}

/* Progress now, the answer 100 ms later on the loop (several calls overlap). */
static void slow_tool(al_mcp_call *c, json_t *args, void *ud)
{
	struct fx *fx = ud;
	struct later *l = calloc(1, sizeof(*l));

	(void)args;
	AL_ASSERT_NOT_NULL(l);
	l->c = c;
	l->fx = fx;
	l->t.data = l;
	uv_timer_init(&fx->loop, &l->t);
	uv_timer_start(&l->t, later_cb, 100, 0);
	al_mcp_call_on_cancel(c, later_cancel_cb, l);
	AL_ASSERT_INT_EQ(al_mcp_call_progress(c, 1, 2, NULL), 0);
}

static void hang_cancel_cb(al_mcp_call *c, void *ud)
{
	struct fx *fx = ud;

	(void)c;
	atomic_fetch_add(&fx->cancelled, 1);
}

/* Never answers: only the client going away ends it. */
static void hang_tool(al_mcp_call *c, json_t *args, void *ud)
{
	struct fx *fx = ud;

	(void)args;
	al_mcp_call_on_cancel(c, hang_cancel_cb, fx);
	atomic_fetch_add(&fx->entered, 1);
}

static void ask_reply_cb(al_mcp_call *c, json_t *result, const al_mcp_error *err, void *ud)
{
	json_t *text = json_object_get(json_object_get(result, "content"), "text");

	(void)ud;
	if (result == NULL && err == NULL)
		return; /* cancelled first */
	al_mcp_call_result(c, json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text",
					json_is_string(text) ? json_string_value(text) : "error"));
}

/* Legacy: asks the client for a sampling on the call's own stream, answers with it. */
static void ask_tool(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	AL_ASSERT_INT_EQ(al_mcp_call_legacy(c), 1);
	AL_ASSERT_INT_EQ(al_mcp_call_request(c, "sampling/createMessage",
					     json_pack("{s:[],s:i}", "messages", "maxTokens", 10),
					     ask_reply_cb, ud),
			 0);
}

/* ---- fixture ---- */

static void done_closed_cb(uv_handle_t *h)
{
	(void)h;
}

static void done_cb(uv_async_t *a)
{
	struct fx *fx = a->data;

	/* The HTTP server first: its close callbacks cancel what is in flight. */
	al_http_server_free(fx->hs);
	al_mcp_http_free(fx->mh);
	al_mcp_server_free(fx->srv);
	uv_close((uv_handle_t *)&fx->done, done_closed_cb);
}

static void *client_main(void *arg)
{
	struct fx *fx = arg;

	fx->client(fx);
	uv_async_send(&fx->done);
	return NULL;
}

static void add_tool(struct fx *fx, const char *name, al_mcp_tool_fn fn)
{
	json_t *schema = json_pack("{s:s}", "type", "object");
	struct al_mcp_tool t = {.name = name, .input_schema = schema, .fn = fn, .ud = fx};

	AL_ASSERT_INT_EQ(al_mcp_server_add_tool(fx->srv, &t), 0);
	json_decref(schema);
}

static void run(struct fx *fx, void (*client)(struct fx *))
{
	struct al_mcp_server_opts so = {.name = "test-http", .version = "1.0.0"};
	struct al_http_server_opts ho = {.host = "127.0.0.1"};
	char err[256] = "";

	AL_ASSERT_INT_EQ(uv_loop_init(&fx->loop), 0);
	fx->srv = al_mcp_server_new(&so);
	AL_ASSERT_NOT_NULL(fx->srv);
	add_tool(fx, "echo", echo_tool);
	add_tool(fx, "progress", progress_tool);
	add_tool(fx, "slow", slow_tool);
	add_tool(fx, "hang", hang_tool);
	add_tool(fx, "ask", ask_tool);
	fx->mh = al_mcp_http_new(fx->srv, NULL);
	AL_ASSERT_NOT_NULL(fx->mh);
	AL_ASSERT_INT_EQ(
	    al_mcp_http_listen(fx->mh, &fx->loop, &ho, "/mcp", &fx->hs, err, sizeof(err)), 0);
	fx->port = al_http_server_port(fx->hs);
	AL_ASSERT(fx->port > 0);
	uv_async_init(&fx->loop, &fx->done, done_cb);
	fx->done.data = fx;
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

/* ---- requests ---- */

#define META                                                                                       \
	"\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","                   \
	"\"io.modelcontextprotocol/clientCapabilities\":{}"

/* A modern tools/call body for `tool` with request id `id` (and a progress token). */
static void call_body(char *out, size_t n, int id, const char *tool, int progress)
{
	snprintf(out, n,
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
		 "{\"name\":\"%s\",\"arguments\":{}," META "%s}}}",
		 id, tool, progress ? ",\"progressToken\":\"tok\"" : "");
}

/* Sends one POST to /mcp: the standard modern headers for a tools/call of
 * `tool` unless `headers` replaces them (then sent as given). */
static void send_post(struct tc *c, const char *headers, const char *tool, const char *body)
{
	char req[8192];
	char std[512];

	if (headers == NULL) {
		snprintf(std, sizeof(std),
			 "Content-Type: application/json\r\n"
			 "Accept: application/json, text/event-stream\r\n"
			 "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
			 "Mcp-Name: %s\r\n",
			 tool);
		headers = std;
	}
	snprintf(req, sizeof(req),
		 "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n\r\n%s",
		 headers, strlen(body), body);
	tc_send(c, req);
}

static void post(struct fx *fx, const char *headers, const char *tool, const char *body,
		 struct tc_resp *r)
{
	struct tc *c = tc_open(fx->port);

	send_post(c, headers, tool, body);
	AL_ASSERT_INT_EQ(tc_read_response(c, r), 0);
	tc_close(c);
}

/* The JSON of the SSE event that carries `needle`, parsed; NULL if none. */
static json_t *sse_find(const char *body, const char *needle)
{
	const char *p = body;

	while ((p = strstr(p, "data: ")) != NULL) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p - 6) : strlen(p + 6);
		if (memmem(p + 6, n, needle, strlen(needle)))
			return json_loadb(p + 6, n, 0, NULL);
		p += 6;
	}
	return NULL;
}

/* ---- tests ---- */

static void json_call_client(struct fx *fx)
{
	struct tc_resp r;
	char body[1024], v[128];
	json_t *j;

	call_body(body, sizeof(body), 7, "echo", 0);
	post(fx, NULL, "echo", body, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Type", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "application/json");
	j = json_loads(r.body, 0, NULL);
	AL_ASSERT_NOT_NULL(j);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(j, "id")), 7);
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(json_object_get(j, "result"), "content"), 0),
		"text")),
	    "hi");
	json_decref(j);

	/* Content-Type with parameters is still JSON. */
	call_body(body, sizeof(body), 8, "echo", 0);
	post(fx,
	     "Content-Type: application/json; charset=utf-8\r\n"
	     "Accept: application/json, text/event-stream\r\n"
	     "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\n",
	     "echo", body, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT(strstr(r.body, "\"id\":8") != NULL);

	/* Errors keep their status: a header that disagrees with the body is 400 -32020. */
	call_body(body, sizeof(body), 9, "echo", 0);
	post(fx,
	     "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
	     "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: other\r\n",
	     "echo", body, &r);
	AL_ASSERT_INT_EQ(r.status, 400);
	AL_ASSERT(strstr(r.body, "-32020") != NULL);
}

AL_TEST(mcp_http_tool_call_json)
{
	struct fx fx = {0};
	run(&fx, json_call_client);
}

static void progress_client(struct fx *fx)
{
	struct tc_resp r;
	char body[1024], v[128];
	json_t *prog, *res;

	call_body(body, sizeof(body), 3, "progress", 1);
	post(fx, NULL, "progress", body, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Type", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "text/event-stream");
	AL_ASSERT_INT_EQ(tc_header(&r, "X-Accel-Buffering", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "no");
	AL_ASSERT_INT_EQ(tc_header(&r, "Cache-Control", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "no-cache");
	AL_ASSERT(strstr(r.body, "event: message\n") != NULL);
	/* The progress first, then the response, then the stream ends (chunked end read). */
	AL_ASSERT(strstr(r.body, "notifications/progress") != NULL);
	AL_ASSERT(strstr(r.body, "notifications/progress") < strstr(r.body, "\"result\""));
	prog = sse_find(r.body, "notifications/progress");
	AL_ASSERT_NOT_NULL(prog);
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(prog, "params"), "progressToken")),
	    "tok");
	res = sse_find(r.body, "\"result\"");
	AL_ASSERT_NOT_NULL(res);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(res, "id")), 3);
	json_decref(prog);
	json_decref(res);
}

AL_TEST(mcp_http_progress_switches_to_sse)
{
	struct fx fx = {0};
	run(&fx, progress_client);
}

/* server-sse-multiple-streams: three calls stream at once, each its own events. */
static void streams_client(struct fx *fx)
{
	struct tc *c[3];
	struct tc_resp r;
	char body[1024], v[128];

	for (int i = 0; i < 3; i++) {
		c[i] = tc_open(fx->port);
		call_body(body, sizeof(body), 100 + i, "slow", 1);
		send_post(c[i], NULL, "slow", body);
	}
	/* All three heads arrive before any answer: the calls overlap. */
	for (int i = 0; i < 3; i++) {
		memset(&r, 0, sizeof(r));
		AL_ASSERT_INT_EQ(tc_read_head(c[i], &r), 0);
		AL_ASSERT_INT_EQ(r.status, 200);
		AL_ASSERT_INT_EQ(tc_header(&r, "Content-Type", v, sizeof(v)), 0);
		AL_ASSERT_STR_EQ(v, "text/event-stream");
	}
	AL_ASSERT_INT_EQ(atomic_load(&fx->answered), 0);
	for (int i = 0; i < 3; i++) {
		char all[16384] = "", idn[32];
		size_t len = 0;
		long n;
		while ((n = tc_read_chunk(c[i], all + len, sizeof(all) - len)) > 0)
			len += (size_t)n;
		AL_ASSERT_INT_EQ(n, 0);
		snprintf(idn, sizeof(idn), "\"id\":%d", 100 + i);
		AL_ASSERT(strstr(all, idn) != NULL);
		AL_ASSERT(strstr(all, "late") != NULL);
		tc_close(c[i]);
	}
	AL_ASSERT_INT_EQ(atomic_load(&fx->answered), 3);
}

AL_TEST(mcp_http_concurrent_sse_streams)
{
	struct fx fx = {0};
	run(&fx, streams_client);
}

static void status_client(struct fx *fx)
{
	struct tc_resp r;
	struct tc *c;
	char body[1024], v[128];

	/* A notification: 202, no body. */
	post(fx,
	     "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n",
	     NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/roots/list_changed\"}", &r);
	AL_ASSERT_INT_EQ(r.status, 202);
	AL_ASSERT_INT_EQ(r.body_len, 0);

	/* GET and DELETE without a session: 405 Allow: POST. */
	c = tc_open(fx->port);
	tc_send(c, "GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 405);
	AL_ASSERT_INT_EQ(tc_header(&r, "Allow", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "POST");
	tc_send(c, "DELETE /mcp HTTP/1.1\r\nHost: localhost:8080\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 405);
	tc_send(c, "PUT /mcp HTTP/1.1\r\nHost: [::1]:1\r\nContent-Length: 0\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 405);
	/* Another path is not the endpoint. */
	tc_send(c, "POST /other HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 404);
	tc_close(c);

	/* DNS rebinding: a foreign Host, and a foreign Origin, are 403 before anything. */
	call_body(body, sizeof(body), 1, "echo", 0);
	c = tc_open(fx->port);
	tc_send(c, "POST /mcp HTTP/1.1\r\nHost: evil.example.com\r\n"
		   "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 403);
	AL_ASSERT(strstr(r.body, "\"error\"") != NULL);
	AL_ASSERT(strstr(r.body, "\"id\"") == NULL);
	tc_send(c,
		"GET /mcp HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil.example.com\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 403);
	tc_close(c);

	/* Media types: 415 for a body that is not JSON, 406 for an Accept without both. */
	post(fx, "Content-Type: text/plain\r\nAccept: application/json, text/event-stream\r\n",
	     "echo", body, &r);
	AL_ASSERT_INT_EQ(r.status, 415);
	post(fx, "Content-Type: application/json\r\nAccept: text/html\r\n", "echo", body, &r);
	AL_ASSERT_INT_EQ(r.status, 406);
	post(fx, "Content-Type: application/json\r\nAccept: application/json\r\n", "echo", body,
	     &r);
	AL_ASSERT_INT_EQ(r.status, 406);
	/* Wildcards allow both. */
	post(fx,
	     "Content-Type: application/json\r\nAccept: */*\r\n"
	     "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\n",
	     "echo", body, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
}

AL_TEST(mcp_http_statuses)
{
	struct fx fx = {0};
	run(&fx, status_client);
}

static void cancel_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	char body[1024];

	call_body(body, sizeof(body), 5, "hang", 0);
	send_post(c, NULL, "hang", body);
	AL_ASSERT(wait_for(&fx->entered, 1));
	AL_ASSERT_INT_EQ(atomic_load(&fx->cancelled), 0);
	/* The client goes away mid-call: the handler's cancel callback runs. */
	tc_close(c);
	AL_ASSERT(wait_for(&fx->cancelled, 1));

	/* The same while streaming: progress was sent, then the client leaves. */
	c = tc_open(fx->port);
	call_body(body, sizeof(body), 6, "slow", 1);
	send_post(c, NULL, "slow", body);
	{
		struct tc_resp r;
		memset(&r, 0, sizeof(r));
		AL_ASSERT_INT_EQ(tc_read_head(c, &r), 0);
		AL_ASSERT_INT_EQ(r.status, 200);
	}
	tc_close(c);
	AL_ASSERT(wait_for(&fx->cancelled, 2));
	sleep_ms(150); /* past the timer: the cancelled call was not answered */
	AL_ASSERT_INT_EQ(atomic_load(&fx->answered), 0);
}

AL_TEST(mcp_http_client_close_cancels)
{
	struct fx fx = {0};
	run(&fx, cancel_client);
}

/* The transport goes away with a call in flight: the call is cancelled. */
static void shutdown_client(struct fx *fx)
{
	struct tc *c = tc_open(fx->port);
	char body[1024];

	call_body(body, sizeof(body), 5, "hang", 0);
	send_post(c, NULL, "hang", body);
	AL_ASSERT(wait_for(&fx->entered, 1));
	/* done_cb frees the server while this connection still waits. */
	fx->client = NULL;
	uv_async_send(&fx->done);
	AL_ASSERT(wait_for(&fx->cancelled, 1));
	tc_close(c);
}

static void *shutdown_main(void *arg)
{
	shutdown_client(arg);
	return NULL;
}

AL_TEST(mcp_http_free_cancels_in_flight)
{
	struct fx fx = {0};
	struct al_mcp_server_opts so = {.name = "test-http", .version = "1.0.0"};
	struct al_http_server_opts ho = {.host = "127.0.0.1"};
	char err[256] = "";

	AL_ASSERT_INT_EQ(uv_loop_init(&fx.loop), 0);
	fx.srv = al_mcp_server_new(&so);
	add_tool(&fx, "hang", hang_tool);
	fx.mh = al_mcp_http_new(fx.srv, NULL);
	AL_ASSERT_INT_EQ(al_mcp_http_listen(fx.mh, &fx.loop, &ho, "/mcp", &fx.hs, err, sizeof(err)),
			 0);
	fx.port = al_http_server_port(fx.hs);
	uv_async_init(&fx.loop, &fx.done, done_cb);
	fx.done.data = &fx;
	AL_ASSERT_INT_EQ(pthread_create(&fx.th, NULL, shutdown_main, &fx), 0);
	uv_run(&fx.loop, UV_RUN_DEFAULT);
	pthread_join(fx.th, NULL);
	AL_ASSERT_INT_EQ(uv_loop_close(&fx.loop), 0);
	AL_ASSERT_INT_EQ(atomic_load(&fx.cancelled), 1);
}

/* ---- the legacy era on the same endpoint ---- */

#define LEGACY_HEADERS                                                                             \
	"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"        \
	"MCP-Protocol-Version: 2025-11-25\r\n"

static void legacy_client(struct fx *fx)
{
	struct tc_resp r;
	struct tc *c, *g;
	char sid[256], hdrs[1024], req[1024], v[128];

	post(fx,
	     "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n",
	     NULL,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
	     "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
	     "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
	     &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT(strstr(r.body, "\"protocolVersion\"") != NULL);
	AL_ASSERT_INT_EQ(tc_header(&r, "Mcp-Session-Id", sid, sizeof(sid)), 0);
	for (const char *p = sid; *p; p++)
		AL_ASSERT(*p >= 0x21 && *p <= 0x7e);
	snprintf(hdrs, sizeof(hdrs), LEGACY_HEADERS "Mcp-Session-Id: %s\r\n", sid);

	post(fx, hdrs, NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", &r);
	AL_ASSERT_INT_EQ(r.status, 202);

	/* A legacy tools/call in the session. */
	post(fx, hdrs, NULL,
	     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
	     "{\"name\":\"echo\",\"arguments\":{\"text\":\"old\"}}}",
	     &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT(strstr(r.body, "\"old\"") != NULL);

	/* The session's GET stream opens. */
	g = tc_open(fx->port);
	snprintf(req, sizeof(req),
		 "GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
		 "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n",
		 sid);
	tc_send(g, req);
	memset(&r, 0, sizeof(r));
	AL_ASSERT_INT_EQ(tc_read_head(g, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_INT_EQ(tc_header(&r, "Content-Type", v, sizeof(v)), 0);
	AL_ASSERT_STR_EQ(v, "text/event-stream");

	/* An unknown session is 404, for POST and GET. */
	post(fx, LEGACY_HEADERS "Mcp-Session-Id: no-such-session\r\n", NULL,
	     "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}", &r);
	AL_ASSERT_INT_EQ(r.status, 404);
	c = tc_open(fx->port);
	tc_send(c, "GET /mcp HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id: nope\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 404);

	/* DELETE ends the session (204), which ends its stream; then it is unknown. */
	snprintf(req, sizeof(req),
		 "DELETE /mcp HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id: %s\r\n\r\n", sid);
	tc_send(c, req);
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 204);
	tc_send(c, req);
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 404);
	tc_close(c);
	{
		char chunk[4096];
		long n;
		while ((n = tc_read_chunk(g, chunk, sizeof(chunk))) > 0)
			;
		AL_ASSERT_INT_EQ(n, 0); /* the stream ended cleanly */
	}
	tc_close(g);
	post(fx, hdrs, NULL, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}", &r);
	AL_ASSERT_INT_EQ(r.status, 404);
}

AL_TEST(mcp_http_legacy_session)
{
	struct fx fx = {0};
	run(&fx, legacy_client);
}

/* The legacy era's server-to-client request rides the SSE stream of the call
 * that caused it; the client's answer comes back as a POST of its own (202). */
static void legacy_request_client(struct fx *fx)
{
	struct tc_resp r;
	struct tc *c;
	char sid[256], hdrs[1024], ev[8192], resp[512];
	json_t *req;
	long n;

	post(fx,
	     "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n",
	     NULL,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
	     "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{\"sampling\":{}},"
	     "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
	     &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_INT_EQ(tc_header(&r, "Mcp-Session-Id", sid, sizeof(sid)), 0);
	snprintf(hdrs, sizeof(hdrs), LEGACY_HEADERS "Mcp-Session-Id: %s\r\n", sid);

	c = tc_open(fx->port);
	send_post(c, hdrs, NULL,
		  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
		  "{\"name\":\"ask\",\"arguments\":{}}}");
	memset(&r, 0, sizeof(r));
	AL_ASSERT_INT_EQ(tc_read_head(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	n = tc_read_chunk(c, ev, sizeof(ev));
	AL_ASSERT(n > 0);
	req = sse_find(ev, "sampling/createMessage");
	AL_ASSERT_NOT_NULL(req);
	AL_ASSERT_NOT_NULL(json_object_get(req, "id"));
	{
		char *id = json_dumps(json_object_get(req, "id"), JSON_ENCODE_ANY);
		snprintf(resp, sizeof(resp),
			 "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"role\":\"assistant\","
			 "\"content\":{\"type\":\"text\",\"text\":\"sampled\"},\"model\":\"m\"}}",
			 id);
		free(id);
	}
	json_decref(req);
	post(fx, hdrs, NULL, resp, &r);
	AL_ASSERT_INT_EQ(r.status, 202);
	AL_ASSERT_INT_EQ(r.body_len, 0);
	/* The call's answer closes its stream. */
	{
		char all[8192] = "";
		size_t len = 0;
		while ((n = tc_read_chunk(c, all + len, sizeof(all) - len)) > 0)
			len += (size_t)n;
		AL_ASSERT_INT_EQ(n, 0);
		AL_ASSERT(strstr(all, "\"id\":2") != NULL);
		AL_ASSERT(strstr(all, "sampled") != NULL);
	}
	tc_close(c);
}

AL_TEST(mcp_http_legacy_request_on_call_stream)
{
	struct fx fx = {0};
	run(&fx, legacy_request_client);
}
