/*
 * test_client.c - the MCP client (src/mcp/client.c) against a scripted
 * loopback peer.
 *
 * TEST DOUBLE: the peer is a raw-socket HTTP/1.1 server on threads
 * (tests/unit/support/peer.h) that answers from a per-test script, one
 * request per connection (keep_alive_serve: several), and records every request it saw (method,
 * head, body) for the assertions. It stands in for an MCP server of either era; the client, libcurl
 * and the loop are real. The official conformance suite (scripts/conformance-client.sh) is the
 * real-peer counterpart.
 */
#include "mcp/client.h"

#include "core/alloc.h"
#include "mcp/jsonrpc.h"
#include "net/http_client.h"
#include "unit/support/peer.h"
#include "unit/support/raw_http.h"
#include "unit/unit.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_RECS 32

struct rec {
	char verb[8];
	char head[4096];
	char body[8192];
	char method[64]; /* JSON-RPC method, "" for a response or a GET */
	json_t *id;	 /* owned by the script; NULL for notifications */
	int conn;	 /* the connection it came on (keep_alive_serve only) */
};

struct script;
typedef void (*respond_fn)(struct script *s, int fd, const struct rec *r, int nth);

struct script {
	struct al_test_peer tp;
	pthread_mutex_t mu;
	struct rec recs[MAX_RECS];
	int n;
	respond_fn respond;
	int sessions;	  /* legacy: sessions handed out */
	atomic_int conns; /* connections seen (keep_alive_serve only) */
};

static void send_resp(int fd, int status, const char *ctype, const char *extra, const char *body)
{
	char head[1024];

	snprintf(head, sizeof(head),
		 "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: "
		 "close\r\n\r\n",
		 status, ctype, strlen(body), extra != NULL ? extra : "");
	al_test_send_str(fd, head);
	al_test_send_str(fd, body);
}

/* A JSON-RPC result for request r: {"jsonrpc","id","result": result}. */
static void send_result(int fd, const struct rec *r, const char *extra, const char *result)
{
	char body[8192], *id = json_dumps(r->id, JSON_ENCODE_ANY);

	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}", id, result);
	free(id);
	send_resp(fd, 200, "application/json", extra, body);
}

static void send_error(int fd, const struct rec *r, int status, const char *error)
{
	char body[8192], *id = json_dumps(r->id, JSON_ENCODE_ANY);

	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":%s}", id, error);
	free(id);
	send_resp(fd, status, "application/json", NULL, body);
}

/* Records the request in buf; NULL when the script is full. */
static struct rec *record(struct script *s, const char *buf, size_t hlen, size_t clen, int conn,
			  int *nth)
{
	struct rec *r;
	json_t *msg;

	pthread_mutex_lock(&s->mu);
	*nth = s->n;
	if (*nth >= MAX_RECS) {
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	r = &s->recs[s->n++];
	r->conn = conn;
	sscanf(buf, "%7s", r->verb);
	snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, buf);
	snprintf(r->body, sizeof(r->body), "%.*s", (int)clen, buf + hlen);
	msg = json_loads(r->body, 0, NULL);
	snprintf(r->method, sizeof(r->method), "%s",
		 json_string_value(json_object_get(msg, "method")) != NULL
		     ? json_string_value(json_object_get(msg, "method"))
		     : "");
	r->id = json_incref(json_object_get(msg, "id"));
	json_decref(msg);
	pthread_mutex_unlock(&s->mu);
	return r;
}

static void serve(int fd, void *ud)
{
	struct script *s = ud;
	char buf[16384];
	size_t len = 0, hlen = 0, clen = 0;
	struct rec *r;
	int nth;

	if (al_test_read_request(fd, buf, sizeof(buf), &len, &hlen, &clen) < 0 ||
	    (r = record(s, buf, hlen, clen, 0, &nth)) == NULL) {
		close(fd);
		return;
	}
	s->respond(s, fd, r, nth);
	al_test_close_drained(fd);
}

struct fix {
	uv_loop_t loop;
	al_http_client *http;
	al_mcp_client *c;
	struct script s;
	char url[128];
};

static int input_calls;

static int input_cb(void *ud, const char *method, const json_t *params, json_t **result)
{
	input_calls++;
	if (strcmp(method, "elicitation/create") != 0)
		return -ENOTSUP;
	*result = json_pack("{sss{ss}}", "action", "accept", "content", "name", "octocat");
	return 0;
}

static void fix_start(struct fix *f, respond_fn respond, enum al_mcp_era era)
{
	struct al_mcp_client_opts o = {0};

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->s.mu, NULL);
	f->s.respond = respond;
	al_test_peer_start(&f->s.tp, serve, &f->s);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/mcp", f->s.tp.port);
	AL_ASSERT_INT_EQ(uv_loop_init(&f->loop), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&f->loop, &f->http), 0);
	o.url = f->url;
	o.bearer_token = "tok-secret-1";
	o.client_name = "unit";
	o.client_version = "9.9";
	o.era = era;
	o.on_input = input_cb;
	o.timeout_ms = 5000;
	AL_ASSERT_INT_EQ(al_mcp_client_new(&f->loop, f->http, &o, &f->c), 0);
	input_calls = 0;
}

static void fix_stop(struct fix *f)
{
	al_mcp_client_free(f->c);
	al_http_client_free(f->http);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&f->loop), 0);
	al_test_peer_stop(&f->s.tp);
	for (int i = 0; i < f->s.n; i++)
		json_decref(f->s.recs[i].id);
}

struct wait {
	int done, err, rpc_code;
	json_t *result;
};

static void wait_cb(al_mcp_client *c, const struct al_mcp_client_result *res, void *ud)
{
	struct wait *w = ud;

	w->done = 1;
	w->err = res->err;
	w->rpc_code = res->rpc_error != NULL ? res->rpc_error->code : 0;
	w->result = res->result != NULL ? json_deep_copy(res->result) : NULL;
}

static void run_until(struct fix *f, struct wait *w)
{
	while (!w->done)
		uv_run(&f->loop, UV_RUN_ONCE);
}

/* Finds the nth request (0-based) with JSON-RPC method m; NULL if none. */
static const struct rec *find(struct fix *f, const char *m, int nth)
{
	for (int i = 0; i < f->s.n; i++)
		if (strcmp(f->s.recs[i].method, m) == 0 && nth-- == 0)
			return &f->s.recs[i];
	return NULL;
}

static int count(struct fix *f, const char *m)
{
	int n = 0;

	for (int i = 0; i < f->s.n; i++)
		n += strcmp(f->s.recs[i].method, m) == 0;
	return n;
}

static const char *hdr(const struct rec *r, const char *name, char *out, size_t outlen)
{
	return al_test_header(r->head, name, out, outlen) ? out : NULL;
}

/* ---- a modern server ---- */

#define TOOL_REGION                                                                                \
	"{\"tools\":[{\"name\":\"where\",\"inputSchema\":{\"type\":\"object\",\"properties\":"     \
	"{\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"}}}},"                        \
	"{\"name\":\"bad\",\"inputSchema\":{\"type\":\"object\",\"properties\":"                   \
	"{\"x\":{\"type\":\"number\",\"x-mcp-header\":\"X\"}}}}]"

static void modern_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	if (strcmp(r->method, "server/discover") == 0) {
		send_result(
		    fd, r, NULL,
		    "{\"resultType\":\"complete\",\"supportedVersions\":[\"2026-07-28\"],"
		    "\"capabilities\":{\"tools\":{}},\"ttlMs\":0,\"cacheScope\":\"private\"}");
	} else if (strcmp(r->method, "tools/list") == 0) {
		json_t *msg = json_loads(r->body, 0, NULL);
		/* Two pages: the second asked for with the cursor of the first. */
		if (json_object_get(json_object_get(msg, "params"), "cursor") == NULL)
			send_result(fd, r, NULL, TOOL_REGION ",\"nextCursor\":\"page2\"}");
		else
			send_result(fd, r, NULL,
				    "{\"tools\":[{\"name\":\"plain\",\"inputSchema\":{\"type\":"
				    "\"object\"}}]}");
		json_decref(msg);
	} else if (strcmp(r->method, "tools/call") == 0) {
		send_result(fd, r, NULL,
			    "{\"resultType\":\"complete\",\"content\":[{\"type\":\"text\","
			    "\"text\":\"ok\"}]}");
	} else {
		send_error(fd, r, 404, "{\"code\":-32601,\"message\":\"Method not found\"}");
	}
}

AL_TEST(mcp_client_modern_era_headers_and_meta)
{
	struct fix f;
	struct wait w = {0}, w2 = {0};
	char v[512];
	const struct rec *call;
	json_t *args, *body, *meta;

	fix_start(&f, modern_respond, AL_MCP_ERA_AUTO);
	AL_ASSERT_INT_EQ(al_mcp_client_list_tools(f.c, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, 0);
	AL_ASSERT_INT_EQ(al_mcp_client_era(f.c), AL_MCP_ERA_MODERN);
	/* Both pages, minus the tool whose x-mcp-header is on a number. */
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(w.result, "tools")), 2);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_array_get(json_object_get(w.result, "tools"), 1), "name")),
			 "plain");
	AL_ASSERT_INT_EQ(count(&f, "tools/list"), 2);
	json_decref(w.result);

	args = json_pack("{ssss}", "region", "Zürich", "other", "x");
	AL_ASSERT_INT_EQ(al_mcp_client_call_tool(f.c, "where", args, NULL, wait_cb, &w2, NULL), 0);
	json_decref(args);
	run_until(&f, &w2);
	AL_ASSERT_INT_EQ(w2.err, 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_array_get(json_object_get(w2.result, "content"), 0), "text")),
			 "ok");
	json_decref(w2.result);

	call = find(&f, "tools/call", 0);
	AL_ASSERT_NOT_NULL(call);
	AL_ASSERT_STR_EQ(hdr(call, "MCP-Protocol-Version", v, sizeof(v)), "2026-07-28");
	AL_ASSERT_STR_EQ(hdr(call, "Mcp-Method", v, sizeof(v)), "tools/call");
	AL_ASSERT_STR_EQ(hdr(call, "Mcp-Name", v, sizeof(v)), "where");
	/* Non-ASCII travels in the base64 sentinel form. */
	AL_ASSERT_STR_EQ(hdr(call, "Mcp-Param-Region", v, sizeof(v)), "=?base64?WsO8cmljaA==?=");
	AL_ASSERT_NULL(hdr(call, "Mcp-Param-Other", v, sizeof(v)));
	AL_ASSERT_STR_EQ(hdr(call, "Authorization", v, sizeof(v)), "Bearer tok-secret-1");
	AL_ASSERT_NULL(hdr(call, "Mcp-Session-Id", v, sizeof(v)));
	body = json_loads(call->body, 0, NULL);
	meta = json_object_get(json_object_get(body, "params"), "_meta");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(meta, "io.modelcontextprotocol/protocolVersion")),
	    "2026-07-28");
	AL_ASSERT(
	    json_is_object(json_object_get(meta, "io.modelcontextprotocol/clientCapabilities")));
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_object_get(meta, "io.modelcontextprotocol/clientInfo"), "name")),
			 "unit");
	json_decref(body);
	AL_ASSERT_INT_EQ(count(&f, "initialize"), 0);
	fix_stop(&f);
}

/* ---- a legacy server (2025-11-25) ---- */

static void legacy_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	char v[256], extra[128];
	int sess;

	if (strcmp(r->verb, "GET") == 0) {
		send_resp(fd, 405, "text/plain", NULL, "no");
		return;
	}
	if (strcmp(r->method, "server/discover") == 0) {
		/* What the TypeScript SDK answers without a session: not a
		 * modern error, so the client must fall back. */
		send_resp(fd, 400, "application/json", NULL,
			  "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,"
			  "\"message\":\"Bad Request: No valid session ID provided\"}}");
		return;
	}
	if (strcmp(r->method, "initialize") == 0) {
		pthread_mutex_lock(&s->mu);
		sess = ++s->sessions;
		pthread_mutex_unlock(&s->mu);
		snprintf(extra, sizeof(extra), "Mcp-Session-Id: sess-%d\r\n", sess);
		send_result(fd, r, extra,
			    "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{\"tools\":{}},"
			    "\"serverInfo\":{\"name\":\"legacy\",\"version\":\"1\"}}");
		return;
	}
	if (strcmp(r->method, "notifications/initialized") == 0) {
		send_resp(fd, 202, "text/plain", NULL, "");
		return;
	}
	/* The first session "expires" after initialization: its first call
	 * gets 404, which must make the client initialize again. */
	if (hdr(r, "Mcp-Session-Id", v, sizeof(v)) != NULL && strcmp(v, "sess-1") == 0) {
		send_resp(fd, 404, "text/plain", NULL, "session expired");
		return;
	}
	if (strcmp(r->method, "tools/call") == 0) {
		send_result(fd, r, NULL,
			    "{\"content\":[{\"type\":\"text\",\"text\":\"legacy ok\"}]}");
		return;
	}
	send_error(fd, r, 200, "{\"code\":-32601,\"message\":\"Method not found\"}");
}

AL_TEST(mcp_client_legacy_fallback_and_session_reinit)
{
	struct fix f;
	struct wait w = {0};
	char v[256];
	const struct rec *r;
	json_t *body;

	fix_start(&f, legacy_respond, AL_MCP_ERA_AUTO);
	AL_ASSERT_INT_EQ(al_mcp_client_call_tool(f.c, "t", NULL, NULL, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, 0);
	AL_ASSERT_INT_EQ(al_mcp_client_era(f.c), AL_MCP_ERA_LEGACY);
	AL_ASSERT_STR_EQ(al_mcp_client_version(f.c), "2025-11-25");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_array_get(json_object_get(w.result, "content"), 0), "text")),
			 "legacy ok");
	json_decref(w.result);
	/* discover once, then initialize twice (the 404 re-initialized). */
	AL_ASSERT_INT_EQ(count(&f, "server/discover"), 1);
	AL_ASSERT_INT_EQ(count(&f, "initialize"), 2);
	AL_ASSERT_INT_EQ(count(&f, "notifications/initialized"), 2);
	AL_ASSERT_INT_EQ(count(&f, "tools/call"), 2);
	r = find(&f, "initialize", 0);
	AL_ASSERT_NULL(hdr(r, "Mcp-Session-Id", v, sizeof(v)));
	body = json_loads(r->body, 0, NULL);
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(body, "params"), "protocolVersion")),
	    "2025-11-25");
	json_decref(body);
	r = find(&f, "tools/call", 1);
	AL_ASSERT_STR_EQ(hdr(r, "Mcp-Session-Id", v, sizeof(v)), "sess-2");
	AL_ASSERT_STR_EQ(hdr(r, "MCP-Protocol-Version", v, sizeof(v)), "2025-11-25");
	/* No modern _meta in the legacy era. */
	AL_ASSERT(strstr(r->body, "io.modelcontextprotocol/protocolVersion") == NULL);
	/* The two tools/call attempts carried different ids. */
	AL_ASSERT(!json_equal(find(&f, "tools/call", 0)->id, r->id));
	fix_stop(&f);
}

/* ---- SSE with progress ---- */

static void sse_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	char body[2048], *id;
	json_t *msg, *tok;

	if (strcmp(r->method, "server/discover") == 0) {
		send_result(fd, r, NULL,
			    "{\"supportedVersions\":[\"2026-07-28\"],\"capabilities\":{}}");
		return;
	}
	msg = json_loads(r->body, 0, NULL);
	tok = json_object_get(json_object_get(json_object_get(msg, "params"), "_meta"),
			      "progressToken");
	id = json_dumps(r->id, JSON_ENCODE_ANY);
	al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			     "Connection: close\r\n\r\n");
	/* A comment, two progress events (the first split mid-line across
	 * writes, CRLF line ends), a foreign notification, then the result. */
	snprintf(body, sizeof(body),
		 ": keepalive\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":"
		 "\"notifications/progress\",\"params\":{\"progressToken\":%lld,\"progress\":1,"
		 "\"total\":4,\"message\":\"one\"}}\r\n\r\n",
		 json_integer_value(tok));
	al_test_send_all(fd, body, 60);
	usleep(20000);
	al_test_send_str(fd, body + 60);
	snprintf(body, sizeof(body),
		 "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
		 "{\"progressToken\":%lld,\"progress\":3}}\n\n"
		 "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":"
		 "{\"level\":\"info\",\"data\":\"x\"}}\n\n"
		 "data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[]}}\n\n",
		 json_integer_value(tok), id);
	al_test_send_str(fd, body);
	free(id);
	json_decref(msg);
}

static double progress_seen[4];
static int progress_n;
static char progress_msg[32];

static void progress_cb(void *ud, double progress, double total, const char *message)
{
	if (progress_n < 4)
		progress_seen[progress_n] = progress * 100 + (total < 0 ? 0 : total);
	if (message != NULL)
		snprintf(progress_msg, sizeof(progress_msg), "%s", message);
	progress_n++;
}

AL_TEST(mcp_client_sse_response_with_progress)
{
	struct fix f;
	struct wait w = {0};
	struct al_mcp_call_opts co = {.on_progress = progress_cb};

	fix_start(&f, sse_respond, AL_MCP_ERA_MODERN);
	AL_ASSERT_INT_EQ(al_mcp_client_call_tool(f.c, "slow", NULL, &co, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, 0);
	AL_ASSERT(json_is_array(json_object_get(w.result, "content")));
	json_decref(w.result);
	AL_ASSERT_INT_EQ(progress_n, 2);
	AL_ASSERT_INT_EQ((long long)progress_seen[0], 104); /* progress 1 of 4 */
	AL_ASSERT_INT_EQ((long long)progress_seen[1], 300); /* progress 3, no total */
	AL_ASSERT_STR_EQ(progress_msg, "one");
	fix_stop(&f);
}

/* ---- MRTR ---- */

static void mrtr_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	json_t *msg = json_loads(r->body, 0, NULL);
	json_t *p = json_object_get(msg, "params");

	if (strcmp(r->method, "server/discover") == 0) {
		send_result(fd, r, NULL,
			    "{\"supportedVersions\":[\"2026-07-28\"],\"capabilities\":{}}");
	} else if (json_object_get(p, "inputResponses") == NULL) {
		send_result(fd, r, NULL,
			    "{\"resultType\":\"input_required\",\"inputRequests\":{\"login\":"
			    "{\"method\":\"elicitation/create\",\"params\":{\"mode\":\"form\","
			    "\"message\":\"who?\",\"requestedSchema\":{\"type\":\"object\"}}}},"
			    "\"requestState\":\"opaque+/=state \\u00e9\"}");
	} else {
		send_result(fd, r, NULL, "{\"resultType\":\"complete\",\"content\":[]}");
	}
	json_decref(msg);
}

AL_TEST(mcp_client_mrtr_round_trip)
{
	struct fix f;
	struct wait w = {0};
	const struct rec *first, *retry;
	json_t *body, *p;

	fix_start(&f, mrtr_respond, AL_MCP_ERA_MODERN);
	AL_ASSERT_INT_EQ(al_mcp_client_call_tool(f.c, "who", NULL, NULL, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, 0);
	json_decref(w.result);
	AL_ASSERT_INT_EQ(input_calls, 1);
	AL_ASSERT_INT_EQ(count(&f, "tools/call"), 2);
	first = find(&f, "tools/call", 0);
	retry = find(&f, "tools/call", 1);
	AL_ASSERT(!json_equal(first->id, retry->id));
	AL_ASSERT(strstr(first->body, "requestState") == NULL);
	body = json_loads(retry->body, 0, NULL);
	p = json_object_get(body, "params");
	/* The exact state, and the handler's answer under the server's key. */
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(p, "requestState")),
			 "opaque+/=state \xc3\xa9");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(json_object_get(p, "inputResponses"), "login"),
				"content"),
		"name")),
	    "octocat");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(p, "name")), "who");
	json_decref(body);
	fix_stop(&f);
}

static void mrtr_forever(struct script *s, int fd, const struct rec *r, int nth)
{
	if (strcmp(r->method, "server/discover") == 0)
		send_result(fd, r, NULL,
			    "{\"supportedVersions\":[\"2026-07-28\"],\"capabilities\":{}}");
	else
		send_result(fd, r, NULL,
			    "{\"resultType\":\"input_required\",\"requestState\":\"again\"}");
}

AL_TEST(mcp_client_mrtr_rounds_are_bounded)
{
	struct fix f;
	struct wait w = {0};

	fix_start(&f, mrtr_forever, AL_MCP_ERA_MODERN);
	/* A server that wants input forever: the first try and 8 retries
	 * (the default bound), then -ELOOP. */
	AL_ASSERT_INT_EQ(al_mcp_client_call_tool(f.c, "loop", NULL, NULL, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, -ELOOP);
	AL_ASSERT_INT_EQ(count(&f, "tools/call"), 9);
	AL_ASSERT_INT_EQ(input_calls, 0);
	fix_stop(&f);
}

/* ---- version retry (-32022) ---- */

static void version_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	if (nth == 0) {
		send_error(fd, r, 400,
			   "{\"code\":-32022,\"message\":\"Unsupported protocol version\",\"data\":"
			   "{\"supported\":[\"2026-07-28\"],\"requested\":\"2026-07-28\"}}");
		return;
	}
	modern_respond(s, fd, r, nth);
}

AL_TEST(mcp_client_retries_with_a_supported_version)
{
	struct fix f;
	struct wait w = {0};

	fix_start(&f, version_respond, AL_MCP_ERA_AUTO);
	AL_ASSERT_INT_EQ(al_mcp_client_connect(f.c, wait_cb, &w), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, 0);
	AL_ASSERT_INT_EQ(al_mcp_client_era(f.c), AL_MCP_ERA_MODERN);
	AL_ASSERT_INT_EQ(count(&f, "server/discover"), 2);
	AL_ASSERT_INT_EQ(count(&f, "initialize"), 0);
	json_decref(w.result);
	fix_stop(&f);
}

/* A modern error that is not about the version: no fallback to initialize. */
static void mismatch_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	send_error(fd, r, 400, "{\"code\":-32020,\"message\":\"Header mismatch\"}");
}

AL_TEST(mcp_client_modern_error_does_not_fall_back)
{
	struct fix f;
	struct wait w = {0};

	fix_start(&f, mismatch_respond, AL_MCP_ERA_AUTO);
	AL_ASSERT_INT_EQ(al_mcp_client_list_tools(f.c, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, -EREMOTEIO);
	AL_ASSERT_INT_EQ(w.rpc_code, -32020);
	AL_ASSERT_INT_EQ(count(&f, "initialize"), 0);
	fix_stop(&f);
}

/* ---- the response reader ---- */

static int reader_msgs;

static int reader_cb(const al_mcp_msg *m, void *ud)
{
	reader_msgs++;
	AL_ASSERT_INT_EQ(m->kind, AL_MCP_RESULT);
	return 0;
}

AL_TEST(mcp_client_resp_reader_byte_by_byte)
{
	static const char sse[] = "id: 7\nretry: 250\ndata: \n\n"
				  "data: {\"jsonrpc\":\"2.0\",\n"
				  "data: \"id\":1,\"result\":{}}\n\n";
	static const char js[] = "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"a\":1}}";
	al_mcp_resp_reader *r;

	reader_msgs = 0;
	r = al_mcp_resp_reader_new(1, reader_cb, NULL);
	for (size_t i = 0; i < sizeof(sse) - 1; i++)
		AL_ASSERT_INT_EQ(al_mcp_resp_reader_feed(r, sse + i, 1), 0);
	AL_ASSERT_INT_EQ(al_mcp_resp_reader_finish(r), 0);
	AL_ASSERT_INT_EQ(reader_msgs, 1);
	AL_ASSERT_STR_EQ(al_mcp_resp_reader_last_id(r), "7");
	AL_ASSERT_INT_EQ(al_mcp_resp_reader_retry(r), 250);
	al_mcp_resp_reader_free(r);

	r = al_mcp_resp_reader_new(0, reader_cb, NULL);
	for (size_t i = 0; i < sizeof(js) - 1; i++)
		AL_ASSERT_INT_EQ(al_mcp_resp_reader_feed(r, js + i, 1), 0);
	AL_ASSERT_INT_EQ(reader_msgs, 1); /* JSON is parsed at the end */
	AL_ASSERT_INT_EQ(al_mcp_resp_reader_finish(r), 0);
	AL_ASSERT_INT_EQ(reader_msgs, 2);
	al_mcp_resp_reader_free(r);

	r = al_mcp_resp_reader_new(1, reader_cb, NULL);
	AL_ASSERT_INT_EQ(al_mcp_resp_reader_feed(r, "data: [1,2]\n\n", 13), -EBADMSG);
	al_mcp_resp_reader_free(r);
	r = al_mcp_resp_reader_new(0, reader_cb, NULL);
	AL_ASSERT_INT_EQ(al_mcp_resp_reader_feed(r, "{\"jsonrpc\"", 10), 0);
	AL_ASSERT_INT_EQ(al_mcp_resp_reader_finish(r), -EBADMSG);
	al_mcp_resp_reader_free(r);
}

AL_TEST(mcp_client_new_refuses_header_injection)
{
	uv_loop_t loop;
	al_http_client *http;
	al_mcp_client *c = NULL;
	struct al_mcp_client_opts o = {.url = "http://127.0.0.1:1/mcp",
				       .bearer_token = "a\r\nX: y"};

	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&loop, &http), 0);
	AL_ASSERT_INT_EQ(al_mcp_client_new(&loop, http, &o, &c), -EINVAL);
	AL_ASSERT_NULL(c);
	al_http_client_free(http);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* ---- legacy: a server request on the response stream ---- */

static int wait_for_rec(struct script *s, const char *needle)
{
	for (int tries = 0; tries < 400; tries++) {
		pthread_mutex_lock(&s->mu);
		for (int i = 0; i < s->n; i++) {
			if (strstr(s->recs[i].body, needle) != NULL) {
				pthread_mutex_unlock(&s->mu);
				return 1;
			}
		}
		pthread_mutex_unlock(&s->mu);
		usleep(10000);
	}
	return 0;
}

static void legacy_ask_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	char body[1024], *id;

	if (strcmp(r->method, "tools/call") != 0 || strcmp(r->verb, "POST") != 0) {
		if (strcmp(r->verb, "POST") == 0 && r->method[0] == '\0')
			send_resp(fd, 202, "text/plain", NULL, ""); /* the client's answer */
		else
			legacy_respond(s, fd, r, nth);
		return;
	}
	id = json_dumps(r->id, JSON_ENCODE_ANY);
	al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			     "Connection: close\r\n\r\n"
			     "id: e1\ndata: \n\n"
			     "id: e2\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"method\":"
			     "\"elicitation/create\",\"params\":{\"message\":\"who?\","
			     "\"requestedSchema\":{\"type\":\"object\"}}}\n\n");
	/* The result comes only once the client has answered (on a POST of
	 * its own), as a server that waits for its user would. */
	if (wait_for_rec(s, "\"srv-1\"")) {
		snprintf(
		    body, sizeof(body),
		    "id: e3\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[]}}\n\n",
		    id);
		al_test_send_str(fd, body);
	}
	free(id);
}

AL_TEST(mcp_client_legacy_answers_server_request_on_stream)
{
	struct fix f;
	struct wait w = {0};
	const struct rec *ans = NULL;
	char v[256];
	json_t *body;

	fix_start(&f, legacy_ask_respond, AL_MCP_ERA_LEGACY);
	/* Session 1 "expires" in legacy_respond: skip it by using it up. */
	f.s.sessions = 1;
	AL_ASSERT_INT_EQ(al_mcp_client_call_tool(f.c, "ask", NULL, NULL, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, 0);
	json_decref(w.result);
	AL_ASSERT_INT_EQ(count(&f, "server/discover"), 0); /* forced legacy: no probe */
	AL_ASSERT_INT_EQ(input_calls, 1);
	for (int i = 0; i < f.s.n; i++)
		if (strstr(f.s.recs[i].body, "\"srv-1\"") != NULL)
			ans = &f.s.recs[i];
	AL_ASSERT_NOT_NULL(ans);
	AL_ASSERT_STR_EQ(hdr(ans, "Mcp-Session-Id", v, sizeof(v)), "sess-2");
	body = json_loads(ans->body, 0, NULL);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_object_get(json_object_get(body, "result"), "content"), "name")),
			 "octocat");
	json_decref(body);
	fix_stop(&f);
}

/* ---- cancellation closes the stream ---- */

static atomic_int saw_close;

static void hang_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	char c;

	if (strcmp(r->method, "server/discover") == 0) {
		modern_respond(s, fd, r, nth);
		return;
	}
	al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			     "Connection: close\r\n\r\n: working\n\n");
	/* Blocks until the client closes its end: that is the cancellation. */
	if (read(fd, &c, 1) <= 0)
		atomic_store(&saw_close, 1);
}

AL_TEST(mcp_client_cancel_closes_the_stream)
{
	struct fix f;
	struct wait w = {0};
	al_mcp_op *op = NULL;

	fix_start(&f, hang_respond, AL_MCP_ERA_MODERN);
	AL_ASSERT_INT_EQ(al_mcp_client_call_tool(f.c, "hang", NULL, NULL, wait_cb, &w, &op), 0);
	AL_ASSERT_NOT_NULL(op);
	while (count(&f, "tools/call") == 0)
		uv_run(&f.loop, UV_RUN_NOWAIT);
	usleep(20000);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	al_mcp_client_cancel(op);
	for (int i = 0; i < 200 && !atomic_load(&saw_close); i++) {
		uv_run(&f.loop, UV_RUN_NOWAIT);
		usleep(10000);
	}
	AL_ASSERT_INT_EQ(atomic_load(&saw_close), 1);
	AL_ASSERT_INT_EQ(w.done, 0);
	fix_stop(&f);
}

/* ---- OAuth on a 401 ---- */

static void authed_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	char v[256], base[64], body[1024], extra[512], target[512] = "", st[128] = "";

	snprintf(base, sizeof(base), "http://127.0.0.1:%d", s->tp.port);
	sscanf(r->head, "%*s %511s", target);
	if (strcmp(target, "/.well-known/oauth-protected-resource/mcp") == 0) {
		snprintf(body, sizeof(body),
			 "{\"resource\":\"%s/mcp\",\"authorization_servers\":[\"%s\"]}", base,
			 base);
		send_resp(fd, 200, "application/json", NULL, body);
	} else if (strcmp(target, "/.well-known/oauth-authorization-server") == 0) {
		snprintf(body, sizeof(body),
			 "{\"issuer\":\"%s\",\"authorization_endpoint\":\"%s/authorize\","
			 "\"token_endpoint\":\"%s/token\",\"code_challenge_methods_supported\":"
			 "[\"S256\"]}",
			 base, base, base);
		send_resp(fd, 200, "application/json", NULL, body);
	} else if (strncmp(target, "/authorize?", 11) == 0) {
		const char *p = strstr(target, "state=");
		if (p != NULL)
			sscanf(p + 6, "%127[^&]", st);
		snprintf(extra, sizeof(extra),
			 "Location: http://localhost:3000/callback?code=k&state=%s\r\n", st);
		send_resp(fd, 302, "text/plain", extra, "");
	} else if (strcmp(target, "/token") == 0) {
		send_resp(fd, 200, "application/json", NULL,
			  "{\"access_token\":\"at-2\",\"token_type\":\"Bearer\"}");
	} else if (hdr(r, "Authorization", v, sizeof(v)) == NULL || strcmp(v, "Bearer at-2") != 0) {
		snprintf(extra, sizeof(extra),
			 "WWW-Authenticate: Bearer resource_metadata=\"%s/.well-known/"
			 "oauth-protected-resource/mcp\"\r\n",
			 base);
		send_resp(fd, 401, "application/json", extra, "{\"error\":\"invalid_token\"}");
	} else {
		modern_respond(s, fd, r, nth);
	}
}

AL_TEST(mcp_client_oauth_on_401_then_retries_with_the_token)
{
	struct fix f;
	struct wait w = {0};
	struct al_mcp_oauth_opts oa = {.client_id = "pre-registered"};
	struct al_mcp_client_opts o = {0};
	char v[256];

	fix_start(&f, authed_respond, AL_MCP_ERA_AUTO);
	/* The same endpoint, now with OAuth configured. */
	al_mcp_client_free(f.c);
	o.url = f.url;
	o.oauth = &oa;
	AL_ASSERT_INT_EQ(al_mcp_client_new(&f.loop, f.http, &o, &f.c), 0);
	AL_ASSERT_INT_EQ(al_mcp_client_list_tools(f.c, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, 0);
	AL_ASSERT_INT_EQ(al_mcp_client_era(f.c), AL_MCP_ERA_MODERN);
	json_decref(w.result);
	/* discover twice (401, then with the token), then the listing. */
	AL_ASSERT_INT_EQ(count(&f, "server/discover"), 2);
	AL_ASSERT_NULL(hdr(find(&f, "server/discover", 0), "Authorization", v, sizeof(v)));
	AL_ASSERT_STR_EQ(hdr(find(&f, "server/discover", 1), "Authorization", v, sizeof(v)),
			 "Bearer at-2");
	AL_ASSERT_STR_EQ(hdr(find(&f, "tools/list", 0), "Authorization", v, sizeof(v)),
			 "Bearer at-2");
	fix_stop(&f);
}

AL_TEST(mcp_client_401_without_oauth_is_eacces)
{
	struct fix f;
	struct wait w = {0};

	fix_start(&f, authed_respond, AL_MCP_ERA_AUTO);
	AL_ASSERT_INT_EQ(al_mcp_client_list_tools(f.c, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT_INT_EQ(w.err, -EACCES);
	AL_ASSERT_INT_EQ(count(&f, "initialize"), 0); /* no fallback on a 401 */
	fix_stop(&f);
}

static void legacy_hang_respond(struct script *s, int fd, const struct rec *r, int nth)
{
	char c;

	if (strcmp(r->method, "tools/call") != 0) {
		if (strcmp(r->method, "notifications/cancelled") == 0)
			send_resp(fd, 202, "text/plain", NULL, "");
		else
			legacy_respond(s, fd, r, nth);
		return;
	}
	al_test_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			     "Connection: close\r\n\r\n: working\n\n");
	if (read(fd, &c, 1) <= 0)
		atomic_store(&saw_close, 1);
}

AL_TEST(mcp_client_legacy_cancel_sends_notifications_cancelled)
{
	struct fix f;
	struct wait w = {0};
	al_mcp_op *op = NULL;
	const struct rec *call, *cancel = NULL;
	json_t *body;

	fix_start(&f, legacy_hang_respond, AL_MCP_ERA_LEGACY);
	f.s.sessions = 1; /* start at sess-2: sess-1 is the one that "expires" */
	AL_ASSERT_INT_EQ(al_mcp_client_call_tool(f.c, "hang", NULL, NULL, wait_cb, &w, &op), 0);
	while (count(&f, "tools/call") == 0)
		uv_run(&f.loop, UV_RUN_NOWAIT);
	usleep(20000);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	al_mcp_client_cancel(op);
	for (int i = 0;
	     i < 200 && (count(&f, "notifications/cancelled") == 0 || !atomic_load(&saw_close));
	     i++) {
		uv_run(&f.loop, UV_RUN_NOWAIT);
		usleep(10000);
	}
	AL_ASSERT_INT_EQ(atomic_load(&saw_close), 1);
	AL_ASSERT_INT_EQ(w.done, 0);
	call = find(&f, "tools/call", 0);
	cancel = find(&f, "notifications/cancelled", 0);
	AL_ASSERT_NOT_NULL(cancel);
	body = json_loads(cancel->body, 0, NULL);
	AL_ASSERT(
	    json_equal(json_object_get(json_object_get(body, "params"), "requestId"), call->id));
	AL_ASSERT(json_object_get(body, "id") == NULL); /* a notification */
	json_decref(body);
	fix_stop(&f);
}

/* ---- a tools/call is sent once, on a kept-alive connection ---- */

/*
 * Keeps each connection alive: answers server/discover and stays for the
 * next request; reads a tools/call whole and drops the connection without
 * an answer, as a server that died while running it would.
 */
static void keep_alive_serve(int fd, void *ud)
{
	struct script *s = ud;
	int conn = atomic_fetch_add(&s->conns, 1);

	for (;;) {
		char buf[16384], head[256], body[512];
		size_t len = 0, hlen = 0, clen = 0;
		struct rec *r;
		char *id;
		int nth;

		if (al_test_read_request(fd, buf, sizeof(buf), &len, &hlen, &clen) < 0 ||
		    (r = record(s, buf, hlen, clen, conn, &nth)) == NULL ||
		    strcmp(r->method, "server/discover") != 0)
			break;
		id = json_dumps(r->id, JSON_ENCODE_ANY);
		snprintf(body, sizeof(body),
			 "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"resultType\":"
			 "\"complete\",\"supportedVersions\":[\"2026-07-28\"],\"capabilities\":"
			 "{\"tools\":{}},\"ttlMs\":0,\"cacheScope\":\"private\"}}",
			 id);
		free(id);
		snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n",
			 strlen(body));
		al_test_send_str(fd, head);
		al_test_send_str(fd, body);
	}
	close(fd);
}

AL_TEST(mcp_client_tools_call_lost_connection_fails_without_a_second_send)
{
	struct fix f;
	struct wait w = {0};
	const struct rec *disc, *call;

	fix_start(&f, modern_respond, AL_MCP_ERA_MODERN);
	/* the same peer, now serving many requests per connection */
	al_test_peer_stop(&f.s.tp);
	al_test_peer_start(&f.s.tp, keep_alive_serve, &f.s);
	snprintf(f.url, sizeof(f.url), "http://127.0.0.1:%d/mcp", f.s.tp.port);
	al_mcp_client_free(f.c);
	{
		struct al_mcp_client_opts o = {
		    .url = f.url, .era = AL_MCP_ERA_MODERN, .timeout_ms = 5000};
		AL_ASSERT_INT_EQ(al_mcp_client_new(&f.loop, f.http, &o, &f.c), 0);
	}
	AL_ASSERT_INT_EQ(al_mcp_client_call_tool(f.c, "once", NULL, NULL, wait_cb, &w, NULL), 0);
	run_until(&f, &w);
	AL_ASSERT(w.err < 0); /* it may have run: the caller decides, not libcurl */
	AL_ASSERT_INT_EQ(count(&f, "tools/call"), 1);
	disc = find(&f, "server/discover", 0);
	call = find(&f, "tools/call", 0);
	AL_ASSERT_NOT_NULL(disc);
	AL_ASSERT_NOT_NULL(call);
	/* no connect per call: the kept-alive connection carried it */
	AL_ASSERT_INT_EQ(call->conn, disc->conn);
	AL_ASSERT_INT_EQ(w.err, -ECONNRESET);
	json_decref(w.result);
	fix_stop(&f);
}
