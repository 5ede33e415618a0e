/*
 * Unit tests for src/mcp/server.c: the dispatcher driven message by message
 * through al_mcp_server_handle with a capturing sink (a test double standing
 * in for the transport: it records what the call sends and how it
 * finishes). Both eras: the check order of docs/MCP.md, discover, lists,
 * tools sync and async, progress, logging, MRTR, subscriptions/listen,
 * legacy sessions, server-to-client requests and cancellation.
 */
#include "core/alloc.h"
#include "http/parser.h"
#include "mcp/server.h"
#include "unit/unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- the capturing sink (test double for a transport) ---- */

#define MAX_SENT 32

struct cap {
	json_t *sent[MAX_SENT];
	int nsent;
	json_t *final; /* the finishing message (owned), or NULL */
	int status;
	int finished;
	char sid[80];
	int send_rc;
};

static int cap_send(void *t, const json_t *msg)
{
	struct cap *c = t;

	AL_ASSERT(c->finished == 0);
	if (c->nsent < MAX_SENT)
		c->sent[c->nsent] = json_deep_copy(msg);
	c->nsent++; /* counted beyond MAX_SENT, kept up to it */
	return c->send_rc;
}

static void cap_finish(void *t, json_t *msg, int status, const char *sid)
{
	struct cap *c = t;

	AL_ASSERT_INT_EQ(c->finished, 0);
	c->finished = 1;
	c->final = msg;
	c->status = status;
	if (sid)
		snprintf(c->sid, sizeof(c->sid), "%s", sid);
}

static const struct al_mcp_sink sink = {cap_send, cap_finish};

static void cap_clear(struct cap *c)
{
	for (int i = 0; i < c->nsent && i < MAX_SENT; i++)
		json_decref(c->sent[i]);
	json_decref(c->final);
	memset(c, 0, sizeof(*c));
}

struct req {
	int http;
	const struct al_http_field *h;
	size_t nh;
	const char *sid;
	const char *principal;
};

/* Sends `msg` (stolen) through the dispatcher; returns the call in flight or NULL. */
static al_mcp_call *send_msg(al_mcp_server *s, json_t *msg, const struct req *r, struct cap *c)
{
	char *body = json_dumps(msg, JSON_COMPACT);
	struct al_mcp_inbound in = {0};
	al_mcp_call *call = NULL;
	json_malloc_t mf;
	json_free_t ff;

	AL_ASSERT_NOT_NULL(body);
	in.body = body;
	in.len = strlen(body);
	if (r) {
		in.http = r->http;
		in.headers = r->h;
		in.nheaders = r->nh;
		in.session_id = r->sid;
		in.principal = r->principal;
	}
	AL_ASSERT_INT_EQ(al_mcp_server_handle(s, &in, &sink, c, &call), 0);
	json_get_alloc_funcs(&mf, &ff);
	ff(body);
	json_decref(msg);
	AL_ASSERT(call == NULL || !c->finished);
	return call;
}

static json_t *meta2026(json_t *caps)
{
	return json_pack("{ssso}", "io.modelcontextprotocol/protocolVersion", "2026-07-28",
			 "io.modelcontextprotocol/clientCapabilities", caps ? caps : json_object());
}

/* A modern request {id, method, params + _meta}; params stolen (may be NULL). */
static json_t *modern(json_int_t id, const char *method, json_t *params)
{
	if (!params)
		params = json_object();
	if (!json_object_get(params, "_meta"))
		json_object_set_new(params, "_meta", meta2026(NULL));
	return json_pack("{sssIssso}", "jsonrpc", "2.0", "id", id, "method", method, "params",
			 params);
}

static json_t *legacy_req(json_int_t id, const char *method, json_t *params)
{
	return json_pack("{sssIssso*}", "jsonrpc", "2.0", "id", id, "method", method, "params",
			 params);
}

static json_t *result_of(const struct cap *c)
{
	AL_ASSERT_NOT_NULL(c->final);
	AL_ASSERT_NULL(json_object_get(c->final, "error"));
	return json_object_get(c->final, "result");
}

static int err_code(const struct cap *c)
{
	AL_ASSERT_NOT_NULL(c->final);
	return (int)json_integer_value(json_object_get(json_object_get(c->final, "error"), "code"));
}

static const char *str_at(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- the fixture's handlers ---- */

static void tool_echo(al_mcp_call *c, json_t *args, void *ud)
{
	(void)ud;
	al_mcp_call_progress(c, 1, 2, "half");
	al_mcp_call_progress(c, 2, -1, NULL);
	al_mcp_call_log(c, AL_MCP_LOG_INFO, "echo", json_string("info line"));
	al_mcp_call_log(c, AL_MCP_LOG_DEBUG, "echo", json_string("debug line"));
	al_mcp_call_result(c, json_pack("{s[{ssss}]}", "content", "type", "text", "text",
					str_at(args, "text") ? str_at(args, "text") : "none"));
}

/* Keeps the call for the test to answer later. */
static al_mcp_call *parked;
static int cancel_runs;

static void on_cancel(al_mcp_call *c, void *ud)
{
	(void)ud;
	cancel_runs++;
	if (c == parked)
		parked = NULL;
}

static void tool_async(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	parked = c;
	al_mcp_call_on_cancel(c, on_cancel, NULL);
}

static void tool_needs_sampling(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	al_mcp_call_result(c, json_pack("{s[]}", "content"));
}

/* MRTR: first round asks for a name, the retry answers with it. */
static void tool_mrtr(al_mcp_call *c, json_t *args, void *ud)
{
	json_t *resp = al_mcp_call_input_responses(c), *st = al_mcp_call_state(c);
	const char *name;

	(void)args;
	(void)ud;
	if (!st) {
		al_mcp_call_input_required(c,
					   json_pack("{s{sss{ss}}}", "ask", "method",
						     "elicitation/create", "params", "message",
						     "name?"),
					   json_pack("{si}", "round", 1));
		return;
	}
	name = str_at(json_object_get(json_object_get(resp, "ask"), "content"), "name");
	al_mcp_call_result(c, json_pack("{s[{ssss}]si}", "content", "type", "text", "text",
					name ? name : "?", "round",
					json_integer_value(json_object_get(st, "round"))));
}

/* Legacy: asks the client to sample, answers with what came back. */
static void on_reply(al_mcp_call *c, json_t *result, const al_mcp_error *err, void *ud)
{
	int *runs = ud;

	(*runs)++;
	if (!result && !err)
		return; /* cancelled */
	if (err) {
		al_mcp_call_errorf(c, -32603, "client said %d", err->code);
		return;
	}
	al_mcp_call_result(c, json_pack("{s[{ssss}]}", "content", "type", "text", "text",
					str_at(json_object_get(result, "content"), "text")));
}

static int reply_runs;

static void tool_sample(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	if (al_mcp_call_legacy(c))
		AL_ASSERT_INT_EQ(al_mcp_call_request(c, "sampling/createMessage",
						     json_pack("{si}", "maxTokens", 10), on_reply,
						     &reply_runs),
				 0);
	else
		AL_ASSERT_INT_EQ(al_mcp_call_request(c, "sampling/createMessage", json_object(),
						     on_reply, &reply_runs),
				 -ENOTSUP);
	if (!al_mcp_call_legacy(c))
		al_mcp_call_errorf(c, -32603, "modern");
}

static void tool_trigger(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_server *s = ud;
	(void)args;
	al_mcp_server_list_changed(s, "tools");
	al_mcp_server_list_changed(s, "prompts");
	al_mcp_call_result(c, json_pack("{s[]}", "content"));
}

static void read_res(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	(void)ud;
	al_mcp_call_result(c, json_pack("{s[{ssss}]}", "contents", "uri", uri, "text",
					vars ? str_at(vars, "id") : "static"));
}

static void get_prompt(al_mcp_call *c, json_t *args, void *ud)
{
	(void)ud;
	(void)args;
	al_mcp_call_result(c, json_pack("{s[]}", "messages"));
}

static json_t *complete_lang(const char *arg, const char *value, json_t *ctx, void *ud)
{
	json_t *a = json_array();
	(void)ctx;
	(void)ud;
	if (strcmp(arg, "lang") == 0) {
		if (strncmp("python", value, strlen(value)) == 0)
			json_array_append_new(a, json_string("python"));
		if (strncmp("perl", value, strlen(value)) == 0)
			json_array_append_new(a, json_string("perl"));
		if (strncmp("rust", value, strlen(value)) == 0)
			json_array_append_new(a, json_string("rust"));
	} else {
		for (int i = 0; i < 150; i++)
			json_array_append_new(a, json_sprintf("%s%d", value, i));
	}
	return a;
}

static al_mcp_server *fixture(void)
{
	struct al_mcp_server_opts o = {.name = "fx",
				       .version = "1.0",
				       .title = "Fixture",
				       .instructions = "be nice",
				       .ttl_ms = 5000};
	al_mcp_server *s = al_mcp_server_new(&o);
	json_t *schema = json_pack("{ss}", "type", "object");
	json_t *hdr_schema = json_pack("{sss{s{ssss}}}", "type", "object", "properties", "region",
				       "type", "string", "x-mcp-header", "Region");
	json_t *need = json_pack("{s{}}", "sampling");
	json_t *pargs = json_pack("[{sssb}]", "name", "lang", "required", 1);

	AL_ASSERT_NOT_NULL(s);
	AL_ASSERT_INT_EQ(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "echo",
									 .description = "Echo",
									 .input_schema = schema,
									 .fn = tool_echo}),
			 0);
	AL_ASSERT_INT_EQ(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "async",
									 .input_schema = schema,
									 .fn = tool_async}),
			 0);
	AL_ASSERT_INT_EQ(
	    al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "needs_sampling",
							    .input_schema = schema,
							    .required_capabilities = need,
							    .fn = tool_needs_sampling}),
	    0);
	AL_ASSERT_INT_EQ(
	    al_mcp_server_add_tool(
		s, &(struct al_mcp_tool){.name = "mrtr", .input_schema = schema, .fn = tool_mrtr}),
	    0);
	AL_ASSERT_INT_EQ(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "sample",
									 .input_schema = hdr_schema,
									 .fn = tool_sample}),
			 0);
	AL_ASSERT_INT_EQ(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "trigger",
									 .input_schema = schema,
									 .fn = tool_trigger,
									 .ud = s}),
			 0);
	AL_ASSERT_INT_EQ(
	    al_mcp_server_add_tool(
		s, &(struct al_mcp_tool){.name = "echo", .input_schema = schema, .fn = tool_echo}),
	    -EEXIST);
	AL_ASSERT_INT_EQ(
	    al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "x", .fn = tool_echo}),
	    -EINVAL);
	AL_ASSERT_INT_EQ(
	    al_mcp_server_add_resource(s, &(struct al_mcp_resource){.uri = "test://static-text",
								    .name = "static",
								    .mime_type = "text/plain",
								    .fn = read_res}),
	    0);
	AL_ASSERT_INT_EQ(
	    al_mcp_server_add_template(
		s, &(struct al_mcp_resource_template){.uri_template = "test://template/{id}/data",
						      .name = "tpl",
						      .fn = read_res,
						      .complete = complete_lang}),
	    0);
	AL_ASSERT_INT_EQ(
	    al_mcp_server_add_prompt(s, &(struct al_mcp_prompt){.name = "p1",
								.arguments = pargs,
								.fn = get_prompt,
								.complete = complete_lang}),
	    0);
	AL_ASSERT_INT_EQ(
	    al_mcp_server_add_prompt(s, &(struct al_mcp_prompt){.name = "p2", .fn = get_prompt}),
	    0);
	json_decref(schema);
	json_decref(hdr_schema);
	json_decref(need);
	json_decref(pargs);
	return s;
}

/* ---- modern era ---- */

AL_TEST(mcp_server_discover_shape)
{
	al_mcp_server *s = fixture();
	struct cap c = {0};
	json_t *r, *caps;

	send_msg(s, modern(1, "server/discover", NULL), NULL, &c);
	AL_ASSERT_INT_EQ(c.status, 200);
	r = result_of(&c);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(c.final, "id")), 1);
	AL_ASSERT_STR_EQ(str_at(r, "resultType"), "complete");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_array_get(json_object_get(r, "supportedVersions"), 0)),
	    "2026-07-28");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_array_get(json_object_get(r, "supportedVersions"), 1)),
	    "2025-11-25");
	caps = json_object_get(r, "capabilities");
	AL_ASSERT(json_is_true(json_object_get(json_object_get(caps, "tools"), "listChanged")));
	AL_ASSERT(json_is_true(json_object_get(json_object_get(caps, "prompts"), "listChanged")));
	AL_ASSERT(json_is_true(json_object_get(json_object_get(caps, "resources"), "subscribe")));
	AL_ASSERT(json_is_object(json_object_get(caps, "completions")));
	AL_ASSERT_NULL(json_object_get(caps, "logging"));
	AL_ASSERT_STR_EQ(str_at(r, "instructions"), "be nice");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "ttlMs")), 5000);
	AL_ASSERT_STR_EQ(str_at(r, "cacheScope"), "public");
	AL_ASSERT_STR_EQ(str_at(json_object_get(json_object_get(r, "_meta"),
						"io.modelcontextprotocol/serverInfo"),
				"name"),
			 "fx");
	AL_ASSERT_STR_EQ(str_at(json_object_get(json_object_get(r, "_meta"),
						"io.modelcontextprotocol/serverInfo"),
				"title"),
			 "Fixture");
	cap_clear(&c);
	al_mcp_server_free(s);

	/* An empty server advertises no capability it has no handler for. */
	s = al_mcp_server_new(&(struct al_mcp_server_opts){.name = "e", .version = "0"});
	send_msg(s, modern(2, "server/discover", NULL), NULL, &c);
	AL_ASSERT_INT_EQ(json_object_size(json_object_get(result_of(&c), "capabilities")), 0);
	cap_clear(&c);
	al_mcp_server_free(s);
	AL_ASSERT_NULL(al_mcp_server_new(&(struct al_mcp_server_opts){.name = "e"}));
}

static struct al_http_field hv(const char *n, const char *v)
{
	return (struct al_http_field){(char *)n, (char *)v};
}

AL_TEST(mcp_server_check_order)
{
	al_mcp_server *s = fixture();
	struct cap c = {0};
	json_t *m, *e;
	struct al_http_field h[4];
	struct req r = {.http = 1, .h = h, .nh = 2};

	/* 1. framing */
	{
		struct al_mcp_inbound in = {.body = "{\"jsonrpc\":\"2.0\",", .len = 17};
		AL_ASSERT_INT_EQ(al_mcp_server_handle(s, &in, &sink, &c, NULL), 0);
		AL_ASSERT_INT_EQ(err_code(&c), -32700);
		AL_ASSERT_INT_EQ(c.status, 400);
		cap_clear(&c);
	}
	/* 2. _meta missing: -32602 / 400 even with a correct header. */
	h[0] = hv("MCP-Protocol-Version", "2026-07-28");
	h[1] = hv("Mcp-Method", "tools/list");
	send_msg(s, json_pack("{sssiss}", "jsonrpc", "2.0", "id", 7, "method", "tools/list"), &r,
		 &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32602);
	AL_ASSERT_INT_EQ(c.status, 400);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(c.final, "id")), 7);
	cap_clear(&c);
	/* 3. header 2026-07-28 with _meta v999.0.0: -32020, not -32022. */
	m = modern(8, "tools/list", NULL);
	json_object_set_new(json_object_get(json_object_get(m, "params"), "_meta"),
			    "io.modelcontextprotocol/protocolVersion", json_string("v999.0.0"));
	send_msg(s, json_incref(m), &r, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32020);
	AL_ASSERT_INT_EQ(c.status, 400);
	cap_clear(&c);
	/* The same without http: no header check, so -32022 with data. */
	send_msg(s, json_incref(m), NULL, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32022);
	AL_ASSERT_INT_EQ(c.status, 400);
	e = json_object_get(json_object_get(c.final, "error"), "data");
	AL_ASSERT_STR_EQ(str_at(e, "requested"), "v999.0.0");
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(e, "supported"), 0)),
			 "2026-07-28");
	cap_clear(&c);
	/* 4. header and _meta both v999.0.0: -32022. */
	h[0] = hv("MCP-Protocol-Version", "v999.0.0");
	send_msg(s, json_incref(m), &r, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32022);
	cap_clear(&c);
	json_decref(m);
	/* A legacy version in _meta is not served statelessly. */
	m = modern(9, "tools/list", NULL);
	json_object_set_new(json_object_get(json_object_get(m, "params"), "_meta"),
			    "io.modelcontextprotocol/protocolVersion", json_string("2025-11-25"));
	send_msg(s, m, NULL, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32022);
	cap_clear(&c);
	/* Mcp-Method different from the body: -32020. */
	h[0] = hv("MCP-Protocol-Version", "2026-07-28");
	h[1] = hv("Mcp-Method", "prompts/list");
	send_msg(s, modern(10, "tools/list", NULL), &r, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32020);
	cap_clear(&c);
	/* A tool's x-mcp-header parameter is checked against its argument. */
	h[1] = hv("Mcp-Method", "tools/call");
	h[2] = hv("Mcp-Name", "sample");
	h[3] = hv("Mcp-Param-Region", "us");
	r.nh = 4;
	send_msg(s,
		 modern(11, "tools/call",
			json_pack("{sss{ss}}", "name", "sample", "arguments", "region", "eu")),
		 &r, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32020);
	cap_clear(&c);
	/* 5. removed and unknown methods: -32601 / 404. */
	r.nh = 2;
	const char *gone[] = {
	    "ping",	  "logging/setLevel", "resources/subscribe", "resources/unsubscribe",
	    "initialize", "nope/nope"};
	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
		h[1] = hv("Mcp-Method", gone[i]);
		send_msg(s, modern(20 + (json_int_t)i, gone[i], NULL), &r, &c);
		AL_ASSERT_INT_EQ(err_code(&c), -32601);
		AL_ASSERT_INT_EQ(c.status, 404);
		cap_clear(&c);
	}
	/* notifications/initialized does not exist in the modern era (HTTP). */
	h[1] = hv("Mcp-Method", "notifications/initialized");
	send_msg(s, json_pack("{ssss}", "jsonrpc", "2.0", "method", "notifications/initialized"),
		 &r, &c);
	AL_ASSERT_INT_EQ(c.status, 404);
	cap_clear(&c);
	/* Other notifications: 202, nothing. */
	send_msg(s, json_pack("{ssss}", "jsonrpc", "2.0", "method", "notifications/whatever"), NULL,
		 &c);
	AL_ASSERT_INT_EQ(c.status, 202);
	AL_ASSERT_NULL(c.final);
	cap_clear(&c);
	al_mcp_server_free(s);
}

AL_TEST(mcp_server_lists_in_order_with_cache_hints)
{
	al_mcp_server *s = fixture();
	struct cap c = {0};
	json_t *r, *a;
	const char *names[] = {"echo", "async", "needs_sampling", "mrtr", "sample", "trigger"};

	send_msg(s, modern(1, "tools/list", json_pack("{ss}", "cursor", "ignored")), NULL, &c);
	r = result_of(&c);
	a = json_object_get(r, "tools");
	AL_ASSERT_INT_EQ(json_array_size(a), 6);
	for (size_t i = 0; i < 6; i++)
		AL_ASSERT_STR_EQ(str_at(json_array_get(a, i), "name"), names[i]);
	AL_ASSERT_STR_EQ(str_at(json_array_get(a, 0), "description"), "Echo");
	AL_ASSERT(json_is_object(json_object_get(json_array_get(a, 0), "inputSchema")));
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "ttlMs")), 5000);
	AL_ASSERT_STR_EQ(str_at(r, "cacheScope"), "public");
	AL_ASSERT_STR_EQ(str_at(r, "resultType"), "complete");
	cap_clear(&c);

	send_msg(s, modern(2, "resources/list", NULL), NULL, &c);
	a = json_object_get(result_of(&c), "resources");
	AL_ASSERT_INT_EQ(json_array_size(a), 1);
	AL_ASSERT_STR_EQ(str_at(json_array_get(a, 0), "uri"), "test://static-text");
	AL_ASSERT_STR_EQ(str_at(json_array_get(a, 0), "mimeType"), "text/plain");
	AL_ASSERT(json_object_get(result_of(&c), "ttlMs"));
	cap_clear(&c);

	send_msg(s, modern(3, "resources/templates/list", NULL), NULL, &c);
	a = json_object_get(result_of(&c), "resourceTemplates");
	AL_ASSERT_STR_EQ(str_at(json_array_get(a, 0), "uriTemplate"), "test://template/{id}/data");
	AL_ASSERT(json_object_get(result_of(&c), "cacheScope"));
	cap_clear(&c);

	send_msg(s, modern(4, "prompts/list", NULL), NULL, &c);
	a = json_object_get(result_of(&c), "prompts");
	AL_ASSERT_STR_EQ(str_at(json_array_get(a, 0), "name"), "p1");
	AL_ASSERT_STR_EQ(str_at(json_array_get(a, 1), "name"), "p2");
	AL_ASSERT(json_is_array(json_object_get(json_array_get(a, 0), "arguments")));
	cap_clear(&c);

	/* Removing keeps the order of the rest. */
	AL_ASSERT_INT_EQ(al_mcp_server_remove_tool(s, "async"), 0);
	AL_ASSERT_INT_EQ(al_mcp_server_remove_tool(s, "async"), -ENOENT);
	AL_ASSERT_INT_EQ(al_mcp_server_remove_prompt(s, "p1"), 0);
	send_msg(s, modern(5, "tools/list", NULL), NULL, &c);
	a = json_object_get(result_of(&c), "tools");
	AL_ASSERT_INT_EQ(json_array_size(a), 5);
	AL_ASSERT_STR_EQ(str_at(json_array_get(a, 1), "name"), "needs_sampling");
	cap_clear(&c);
	al_mcp_server_free(s);
}

AL_TEST(mcp_server_resources_read_and_complete)
{
	al_mcp_server *s = fixture();
	struct cap c = {0};
	json_t *r, *e, *v;

	send_msg(s, modern(1, "resources/read", json_pack("{ss}", "uri", "test://static-text")),
		 NULL, &c);
	r = result_of(&c);
	AL_ASSERT_STR_EQ(str_at(json_array_get(json_object_get(r, "contents"), 0), "text"),
			 "static");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "ttlMs")), 5000);
	AL_ASSERT_STR_EQ(str_at(r, "cacheScope"), "public");
	AL_ASSERT_STR_EQ(str_at(r, "resultType"), "complete");
	cap_clear(&c);

	send_msg(s,
		 modern(2, "resources/read", json_pack("{ss}", "uri", "test://template/123/data")),
		 NULL, &c);
	AL_ASSERT_STR_EQ(
	    str_at(json_array_get(json_object_get(result_of(&c), "contents"), 0), "text"), "123");
	cap_clear(&c);

	/* Unknown: -32602 (HTTP 200) with data {uri}; a template needs a non-empty, slash-free var.
	 */
	const char *bad[] = {"test://nonexistent", "test://template//data",
			     "test://template/1/2/data"};
	for (size_t i = 0; i < 3; i++) {
		send_msg(s, modern(3, "resources/read", json_pack("{ss}", "uri", bad[i])), NULL,
			 &c);
		AL_ASSERT_INT_EQ(err_code(&c), -32602);
		AL_ASSERT_INT_EQ(c.status, 200);
		e = json_object_get(json_object_get(c.final, "error"), "data");
		AL_ASSERT_STR_EQ(str_at(e, "uri"), bad[i]);
		cap_clear(&c);
	}

	/* completion/complete on a prompt argument and a template variable. */
	send_msg(s,
		 modern(4, "completion/complete",
			json_pack("{s{ssss}s{ssss}}", "ref", "type", "ref/prompt", "name", "p1",
				  "argument", "name", "lang", "value", "p")),
		 NULL, &c);
	v = json_object_get(result_of(&c), "completion");
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(v, "values")), 2);
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(v, "values"), 0)),
			 "python");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(v, "total")), 2);
	AL_ASSERT(json_is_false(json_object_get(v, "hasMore")));
	cap_clear(&c);
	send_msg(
	    s,
	    modern(5, "completion/complete",
		   json_pack("{s{ssss}s{ssss}}", "ref", "type", "ref/resource", "uri",
			     "test://template/{id}/data", "argument", "name", "id", "value", "1")),
	    NULL, &c);
	v = json_object_get(result_of(&c), "completion");
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(v, "values")), 100);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(v, "total")), 150);
	AL_ASSERT(json_is_true(json_object_get(v, "hasMore")));
	cap_clear(&c);
	send_msg(s,
		 modern(6, "completion/complete",
			json_pack("{s{ssss}s{ssss}}", "ref", "type", "ref/prompt", "name", "zz",
				  "argument", "name", "lang", "value", "")),
		 NULL, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32602);
	cap_clear(&c);

	send_msg(s, modern(7, "prompts/get", json_pack("{ss}", "name", "p2")), NULL, &c);
	AL_ASSERT(json_is_array(json_object_get(result_of(&c), "messages")));
	cap_clear(&c);
	send_msg(s, modern(8, "prompts/get", json_pack("{ss}", "name", "p9")), NULL, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32602);
	cap_clear(&c);
	al_mcp_server_free(s);
}

AL_TEST(mcp_server_tools_call_progress_logging_capability)
{
	al_mcp_server *s = fixture();
	struct cap c = {0};
	json_t *p, *r;

	/* No progressToken and no logLevel: nothing but the result. */
	send_msg(
	    s,
	    modern(1, "tools/call",
		   json_pack("{sss{ss}sb}", "name", "echo", "arguments", "text", "hi", "extra", 1)),
	    NULL, &c);
	r = result_of(&c);
	AL_ASSERT_INT_EQ(c.nsent, 0);
	AL_ASSERT_STR_EQ(str_at(json_array_get(json_object_get(r, "content"), 0), "text"), "hi");
	AL_ASSERT_STR_EQ(str_at(r, "resultType"), "complete");
	AL_ASSERT_NULL(json_object_get(r, "ttlMs"));
	cap_clear(&c);

	/* progressToken and logLevel info: two progress, one log (debug dropped). */
	p = json_pack("{ss}", "name", "echo");
	json_object_set_new(p, "_meta", meta2026(NULL));
	json_object_set_new(json_object_get(p, "_meta"), "progressToken", json_string("tok"));
	json_object_set_new(json_object_get(p, "_meta"), "io.modelcontextprotocol/logLevel",
			    json_string("info"));
	send_msg(s, modern(2, "tools/call", p), NULL, &c);
	AL_ASSERT_INT_EQ(c.nsent, 3);
	AL_ASSERT_STR_EQ(str_at(c.sent[0], "method"), "notifications/progress");
	p = json_object_get(c.sent[0], "params");
	AL_ASSERT_STR_EQ(str_at(p, "progressToken"), "tok");
	AL_ASSERT(json_number_value(json_object_get(p, "progress")) == 1.0);
	AL_ASSERT(json_number_value(json_object_get(p, "total")) == 2.0);
	AL_ASSERT_STR_EQ(str_at(p, "message"), "half");
	AL_ASSERT_NULL(json_object_get(json_object_get(c.sent[1], "params"), "total"));
	AL_ASSERT_STR_EQ(str_at(c.sent[2], "method"), "notifications/message");
	AL_ASSERT_STR_EQ(str_at(json_object_get(c.sent[2], "params"), "level"), "info");
	AL_ASSERT_STR_EQ(str_at(json_object_get(c.sent[2], "params"), "logger"), "echo");
	AL_ASSERT_STR_EQ(str_at(result_of(&c), "resultType"), "complete");
	cap_clear(&c);

	/* Unknown tool: -32602 with HTTP 200; arguments not an object: -32602. */
	send_msg(s, modern(3, "tools/call", json_pack("{ss}", "name", "nope")), NULL, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32602);
	AL_ASSERT_INT_EQ(c.status, 200);
	cap_clear(&c);
	send_msg(s, modern(4, "tools/call", json_pack("{sss[]}", "name", "echo", "arguments")),
		 NULL, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32602);
	cap_clear(&c);

	/* A tool needing sampling: -32021 / 400 with data keyed by capability. */
	send_msg(s, modern(5, "tools/call", json_pack("{ss}", "name", "needs_sampling")), NULL, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32021);
	AL_ASSERT_INT_EQ(c.status, 400);
	AL_ASSERT(json_is_object(json_object_get(
	    json_object_get(json_object_get(json_object_get(c.final, "error"), "data"),
			    "requiredCapabilities"),
	    "sampling")));
	cap_clear(&c);
	p = json_pack("{ss}", "name", "needs_sampling");
	json_object_set_new(p, "_meta", meta2026(json_pack("{s{}}", "sampling")));
	send_msg(s, modern(6, "tools/call", p), NULL, &c);
	AL_ASSERT(json_is_array(json_object_get(result_of(&c), "content")));
	cap_clear(&c);
	al_mcp_server_free(s);
}

AL_TEST(mcp_server_async_call_and_cancel)
{
	al_mcp_server *s = fixture();
	struct cap c = {0};
	al_mcp_call *call;

	/* Answered later, from outside the handler. */
	call = send_msg(s, modern(1, "tools/call", json_pack("{ss}", "name", "async")), NULL, &c);
	AL_ASSERT(call != NULL && call == parked);
	AL_ASSERT_INT_EQ(c.finished, 0);
	AL_ASSERT_STR_EQ(al_mcp_call_method(call), "tools/call");
	AL_ASSERT_INT_EQ(al_mcp_call_legacy(call), 0);
	AL_ASSERT_STR_EQ(al_mcp_call_version(call), "2026-07-28");
	AL_ASSERT(json_is_object(al_mcp_call_client_capabilities(call)));
	AL_ASSERT_INT_EQ(al_mcp_call_progress(call, 1, 1, NULL), 0); /* no token: no-op */
	AL_ASSERT_INT_EQ(al_mcp_call_log(call, AL_MCP_LOG_EMERGENCY, NULL, json_string("x")), 0);
	AL_ASSERT_INT_EQ(c.nsent, 0); /* no logLevel: no log message either */
	AL_ASSERT_INT_EQ(
	    al_mcp_call_notify(call, "notifications/custom", json_pack("{si}", "n", 1)), 0);
	AL_ASSERT_INT_EQ(c.nsent, 1);
	AL_ASSERT_STR_EQ(str_at(c.sent[0], "method"), "notifications/custom");
	AL_ASSERT_NULL(json_object_get(c.sent[0], "id"));
	al_mcp_call_on_cancel(call, NULL, NULL);
	parked = NULL;
	al_mcp_call_result(call, json_pack("{s[]}", "content"));
	AL_ASSERT_INT_EQ(c.finished, 1);
	AL_ASSERT_STR_EQ(str_at(result_of(&c), "resultType"), "complete");
	cap_clear(&c);

	/* Cancelled by the transport: on_cancel once, finish(NULL) once. */
	call = send_msg(s, modern(2, "tools/call", json_pack("{ss}", "name", "async")),
			&(struct req){.principal = "alice"}, &c);
	AL_ASSERT_NOT_NULL(call);
	AL_ASSERT_STR_EQ(al_mcp_call_principal(call), "alice");
	al_mcp_call_cancel(call);
	AL_ASSERT_INT_EQ(cancel_runs, 1);
	AL_ASSERT_INT_EQ(c.finished, 1);
	AL_ASSERT_NULL(c.final);
	cap_clear(&c);

	/* stdio: notifications/cancelled {requestId} cancels the call with that id. */
	call = send_msg(s, modern(3, "tools/call", json_pack("{ss}", "name", "async")), NULL, &c);
	AL_ASSERT_NOT_NULL(call);
	{
		struct cap n = {0};
		send_msg(s,
			 json_pack("{sssss{si}}", "jsonrpc", "2.0", "method",
				   "notifications/cancelled", "params", "requestId", 3),
			 NULL, &n);
		AL_ASSERT_INT_EQ(n.status, 202);
		cap_clear(&n);
	}
	AL_ASSERT_INT_EQ(cancel_runs, 2);
	AL_ASSERT_INT_EQ(c.finished, 1);
	AL_ASSERT_NULL(c.final);
	cap_clear(&c);

	/* A call left in flight is cancelled by al_mcp_server_free. */
	call = send_msg(s, modern(4, "tools/call", json_pack("{ss}", "name", "async")), NULL, &c);
	AL_ASSERT_NOT_NULL(call);
	al_mcp_server_free(s);
	AL_ASSERT_INT_EQ(cancel_runs, 3);
	AL_ASSERT_INT_EQ(c.finished, 1);
	cap_clear(&c);
}

static json_t *mrtr_call(json_int_t id, const char *principal_caps, json_t *extra)
{
	json_t *p = json_pack("{sss{}}", "name", "mrtr", "arguments");
	json_t *caps = principal_caps ? json_pack("{s{}}", principal_caps) : json_object();

	json_object_set_new(p, "_meta", meta2026(caps));
	if (extra)
		json_object_update(p, extra);
	json_decref(extra);
	return modern(id, "tools/call", p);
}

AL_TEST(mcp_server_mrtr_round_trip)
{
	al_mcp_server *s = fixture();
	struct cap c = {0};
	struct req alice = {.principal = "alice"}, bob = {.principal = "bob"};
	json_t *r;
	char *state, *tampered;

	send_msg(s, mrtr_call(1, "elicitation", NULL), &alice, &c);
	r = result_of(&c);
	AL_ASSERT_STR_EQ(str_at(r, "resultType"), "input_required");
	AL_ASSERT_STR_EQ(
	    str_at(json_object_get(json_object_get(r, "inputRequests"), "ask"), "method"),
	    "elicitation/create");
	AL_ASSERT_NULL(json_object_get(r, "ttlMs"));
	state = al_strdup(str_at(r, "requestState"));
	AL_ASSERT_NOT_NULL(state);
	cap_clear(&c);

	/* The retry with the answer and the state completes (unknown extra params ignored). */
	send_msg(s,
		 mrtr_call(2, "elicitation",
			   json_pack("{s{s{sss{ss}}}sssi}", "inputResponses", "ask", "action",
				     "accept", "content", "name", "octocat", "requestState", state,
				     "unknownParam", 5)),
		 &alice, &c);
	r = result_of(&c);
	AL_ASSERT_STR_EQ(str_at(r, "resultType"), "complete");
	AL_ASSERT_STR_EQ(str_at(json_array_get(json_object_get(r, "content"), 0), "text"),
			 "octocat");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "round")), 1);
	cap_clear(&c);

	/* Another principal, a tampered state, another request: refused, -32602. */
	send_msg(s, mrtr_call(3, "elicitation", json_pack("{ss}", "requestState", state)), &bob,
		 &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32602);
	cap_clear(&c);
	tampered = al_calloc(1, strlen(state) + 10);
	snprintf(tampered, strlen(state) + 10, "%s-TAMPERED", state);
	send_msg(s, mrtr_call(4, "elicitation", json_pack("{ss}", "requestState", tampered)),
		 &alice, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32602);
	cap_clear(&c);
	{
		json_t *m = mrtr_call(5, "elicitation", json_pack("{ss}", "requestState", state));
		json_object_set_new(json_object_get(m, "params"), "arguments",
				    json_pack("{si}", "other", 1));
		send_msg(s, m, &alice, &c);
		AL_ASSERT_INT_EQ(err_code(&c), -32602);
		cap_clear(&c);
	}
	send_msg(s, mrtr_call(6, "elicitation", json_pack("{si}", "requestState", 5)), &alice, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32602);
	cap_clear(&c);

	/* The client lacks elicitation: the request is not sent; nothing is
	 * left to ask, so the client is told what it lacks. */
	send_msg(s, mrtr_call(7, NULL, NULL), &alice, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32021);
	AL_ASSERT(json_is_object(json_object_get(
	    json_object_get(json_object_get(json_object_get(c.final, "error"), "data"),
			    "requiredCapabilities"),
	    "elicitation")));
	cap_clear(&c);
	al_free(state);
	al_free(tampered);
	al_mcp_server_free(s);
}

AL_TEST(mcp_server_listen_ack_and_notifications)
{
	al_mcp_server *s = fixture();
	struct cap l1 = {0}, l2 = {0}, lh = {0}, c = {0};
	al_mcp_call *call1, *call2;
	json_t *p;

	call1 = send_msg(
	    s,
	    modern(41, "subscriptions/listen",
		   json_pack("{s{sbsbs[ss]}}", "notifications", "toolsListChanged", 1, "bogus", 1,
			     "resourceSubscriptions", "test://static-text", "test://other")),
	    NULL, &l1);
	AL_ASSERT_NOT_NULL(call1);
	AL_ASSERT_INT_EQ(l1.nsent, 1);
	AL_ASSERT_STR_EQ(str_at(l1.sent[0], "method"), "notifications/subscriptions/acknowledged");
	p = json_object_get(l1.sent[0], "params");
	AL_ASSERT_INT_EQ(
	    json_integer_value(json_object_get(json_object_get(p, "_meta"),
					       "io.modelcontextprotocol/subscriptionId")),
	    41);
	AL_ASSERT(
	    json_is_true(json_object_get(json_object_get(p, "notifications"), "toolsListChanged")));
	AL_ASSERT_NULL(json_object_get(json_object_get(p, "notifications"), "bogus"));
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(json_object_get(p, "notifications"),
							 "resourceSubscriptions")),
			 2);
	call2 = send_msg(s,
			 modern(42, "subscriptions/listen",
				json_pack("{s{sb}}", "notifications", "promptsListChanged", 1)),
			 NULL, &l2);
	AL_ASSERT_NOT_NULL(call2);
	AL_ASSERT_INT_EQ(l2.nsent, 1);

	/* A tool changes both lists: each stream gets only what it asked for. */
	send_msg(s, modern(5, "tools/call", json_pack("{ss}", "name", "trigger")), NULL, &c);
	AL_ASSERT_STR_EQ(str_at(result_of(&c), "resultType"), "complete");
	cap_clear(&c);
	AL_ASSERT_INT_EQ(l1.nsent, 2);
	AL_ASSERT_STR_EQ(str_at(l1.sent[1], "method"), "notifications/tools/list_changed");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(
			     json_object_get(json_object_get(l1.sent[1], "params"), "_meta"),
			     "io.modelcontextprotocol/subscriptionId")),
			 41);
	AL_ASSERT_INT_EQ(l2.nsent, 2);
	AL_ASSERT_STR_EQ(str_at(l2.sent[1], "method"), "notifications/prompts/list_changed");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(
			     json_object_get(json_object_get(l2.sent[1], "params"), "_meta"),
			     "io.modelcontextprotocol/subscriptionId")),
			 42);

	al_mcp_server_resource_updated(s, "test://static-text");
	al_mcp_server_resource_updated(s, "test://unsubscribed");
	AL_ASSERT_INT_EQ(l1.nsent, 3);
	AL_ASSERT_STR_EQ(str_at(l1.sent[2], "method"), "notifications/resources/updated");
	AL_ASSERT_STR_EQ(str_at(json_object_get(l1.sent[2], "params"), "uri"),
			 "test://static-text");
	AL_ASSERT_INT_EQ(l2.nsent, 2);

	/* Over HTTP the server's teardown sends no notifications/cancelled. */
	{
		al_mcp_call *hc = send_msg(
		    s,
		    modern(43, "subscriptions/listen",
			   json_pack("{s{sb}}", "notifications", "resourcesListChanged", 1)),
		    &(struct req){.http = 1,
				  .h =
				      (struct al_http_field[]){
					  {(char *)"MCP-Protocol-Version", (char *)"2026-07-28"},
					  {(char *)"Mcp-Method", (char *)"subscriptions/listen"}},
				  .nh = 2},
		    &lh);
		AL_ASSERT_NOT_NULL(hc);
		al_mcp_server_list_changed(s, "resources");
		al_mcp_server_list_changed(s, "bogus");
		AL_ASSERT_INT_EQ(lh.nsent, 2);
		AL_ASSERT_STR_EQ(str_at(lh.sent[1], "method"),
				 "notifications/resources/list_changed");
	}
	/* The client closes one; the other is closed gracefully by the server. */
	al_mcp_call_cancel(call2);
	AL_ASSERT_INT_EQ(l2.finished, 1);
	AL_ASSERT_NULL(l2.final);
	al_mcp_server_list_changed(s, "prompts");
	AL_ASSERT_INT_EQ(l2.nsent, 2);
	al_mcp_server_free(s);
	AL_ASSERT_INT_EQ(lh.finished, 1);
	AL_ASSERT_INT_EQ(lh.nsent, 2);
	AL_ASSERT_STR_EQ(str_at(result_of(&lh), "resultType"), "complete");
	cap_clear(&lh);
	AL_ASSERT_INT_EQ(l1.finished, 1);
	/* Not HTTP (stdio): the teardown is announced with notifications/cancelled. */
	AL_ASSERT_INT_EQ(l1.nsent, 4);
	AL_ASSERT_STR_EQ(str_at(l1.sent[3], "method"), "notifications/cancelled");
	AL_ASSERT_INT_EQ(
	    json_integer_value(json_object_get(json_object_get(l1.sent[3], "params"), "requestId")),
	    41);
	AL_ASSERT_STR_EQ(str_at(result_of(&l1), "resultType"), "complete");
	AL_ASSERT_INT_EQ(
	    json_integer_value(json_object_get(json_object_get(result_of(&l1), "_meta"),
					       "io.modelcontextprotocol/subscriptionId")),
	    41);
	cap_clear(&l1);
	cap_clear(&l2);
}

/* ---- legacy era ---- */

static void legacy_init(al_mcp_server *s, char *sid, size_t n, json_t *caps)
{
	struct cap c = {0};
	json_t *r;

	send_msg(s,
		 legacy_req(1, "initialize",
			    json_pack("{sss{so}s{ssss}}", "protocolVersion", "2025-11-25",
				      "capabilities", "sampling", caps ? caps : json_object(),
				      "clientInfo", "name", "t", "version", "1")),
		 NULL, &c);
	r = result_of(&c);
	AL_ASSERT_INT_EQ(c.status, 200);
	AL_ASSERT_STR_EQ(str_at(r, "protocolVersion"), "2025-11-25");
	AL_ASSERT_STR_EQ(str_at(json_object_get(r, "serverInfo"), "name"), "fx");
	AL_ASSERT(json_is_object(json_object_get(json_object_get(r, "capabilities"), "logging")));
	AL_ASSERT_STR_EQ(str_at(r, "instructions"), "be nice");
	AL_ASSERT_NULL(json_object_get(r, "resultType"));
	AL_ASSERT_INT_EQ(strlen(c.sid), 32);
	AL_ASSERT_INT_EQ(strspn(c.sid, "0123456789abcdef"), 32);
	snprintf(sid, n, "%s", c.sid);
	cap_clear(&c);
}

AL_TEST(mcp_server_legacy_session_basics)
{
	al_mcp_server *s = fixture();
	struct cap c = {0}, st = {0};
	char sid[80], sid2[80];
	struct req r = {.sid = sid};
	json_t *p;

	legacy_init(s, sid, sizeof(sid), NULL);
	legacy_init(s, sid2, sizeof(sid2), NULL);
	AL_ASSERT(strcmp(sid, sid2) != 0);
	AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, sid), 1);
	AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, "nope"), 0);

	send_msg(s, json_pack("{ssss}", "jsonrpc", "2.0", "method", "notifications/initialized"),
		 &r, &c);
	AL_ASSERT_INT_EQ(c.status, 202);
	cap_clear(&c);
	send_msg(s, legacy_req(2, "ping", NULL), &r, &c);
	AL_ASSERT_INT_EQ(json_object_size(result_of(&c)), 0);
	cap_clear(&c);
	send_msg(s, legacy_req(3, "tools/list", NULL), &r, &c);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(result_of(&c), "tools")), 6);
	AL_ASSERT_NULL(json_object_get(result_of(&c), "ttlMs"));
	AL_ASSERT_NULL(json_object_get(result_of(&c), "resultType"));
	cap_clear(&c);
	send_msg(s, legacy_req(4, "server/discover", NULL), &r, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32601);
	cap_clear(&c);
	send_msg(s, legacy_req(5, "initialize", json_pack("{ss}", "protocolVersion", "2025-11-25")),
		 &r, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32600);
	cap_clear(&c);

	/* Logging follows logging/setLevel; progress uses params._meta.progressToken. */
	send_msg(s, legacy_req(6, "tools/call", json_pack("{ss}", "name", "echo")), &r, &c);
	AL_ASSERT_INT_EQ(c.nsent, 0);
	AL_ASSERT_NULL(json_object_get(result_of(&c), "resultType"));
	cap_clear(&c);
	send_msg(s, legacy_req(7, "logging/setLevel", json_pack("{ss}", "level", "debug")), &r, &c);
	AL_ASSERT_INT_EQ(json_object_size(result_of(&c)), 0);
	cap_clear(&c);
	send_msg(s, legacy_req(8, "logging/setLevel", json_pack("{ss}", "level", "loud")), &r, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32602);
	cap_clear(&c);
	send_msg(s,
		 legacy_req(9, "tools/call",
			    json_pack("{sss{si}}", "name", "echo", "_meta", "progressToken", 77)),
		 &r, &c);
	AL_ASSERT_INT_EQ(c.nsent, 4);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(c.sent[0], "params"),
							    "progressToken")),
			 77);
	AL_ASSERT_STR_EQ(str_at(json_object_get(c.sent[3], "params"), "level"), "debug");
	cap_clear(&c);

	/* Subscribe, the GET stream, updates; unsubscribe stops them. */
	AL_ASSERT_INT_EQ(al_mcp_server_open_stream(s, "nope", &sink, &st), -ENOENT);
	AL_ASSERT_INT_EQ(al_mcp_server_open_stream(s, sid, &sink, &st), 0);
	AL_ASSERT_INT_EQ(al_mcp_server_open_stream(s, sid, &sink, &st), -EBUSY);
	send_msg(s, legacy_req(10, "resources/subscribe", json_pack("{ss}", "uri", "test://w")), &r,
		 &c);
	AL_ASSERT_INT_EQ(json_object_size(result_of(&c)), 0);
	cap_clear(&c);
	al_mcp_server_resource_updated(s, "test://w");
	al_mcp_server_resource_updated(s, "test://other");
	AL_ASSERT_INT_EQ(st.nsent, 1);
	AL_ASSERT_STR_EQ(str_at(st.sent[0], "method"), "notifications/resources/updated");
	p = json_object_get(st.sent[0], "params");
	AL_ASSERT_STR_EQ(str_at(p, "uri"), "test://w");
	AL_ASSERT_NULL(json_object_get(p, "_meta"));
	al_mcp_server_list_changed(s, "tools");
	AL_ASSERT_INT_EQ(st.nsent, 2);
	AL_ASSERT_STR_EQ(str_at(st.sent[1], "method"), "notifications/tools/list_changed");
	send_msg(s, legacy_req(11, "resources/unsubscribe", json_pack("{ss}", "uri", "test://w")),
		 &r, &c);
	cap_clear(&c);
	al_mcp_server_resource_updated(s, "test://w");
	AL_ASSERT_INT_EQ(st.nsent, 2);
	al_mcp_server_close_stream(s, sid, &st);
	AL_ASSERT_INT_EQ(st.finished, 1);
	cap_clear(&st);
	AL_ASSERT_INT_EQ(al_mcp_server_open_stream(s, sid, &sink, &st), 0);

	/* DELETE: the stream ends, the id is gone (404 from the dispatcher too). */
	AL_ASSERT_INT_EQ(al_mcp_server_end_session(s, sid), 0);
	AL_ASSERT_INT_EQ(st.finished, 1);
	AL_ASSERT_INT_EQ(al_mcp_server_end_session(s, sid), -ENOENT);
	AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, sid), 0);
	send_msg(s, legacy_req(12, "ping", NULL), &r, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32600);
	AL_ASSERT_INT_EQ(c.status, 404);
	cap_clear(&c);
	cap_clear(&st);
	al_mcp_server_free(s);
}

AL_TEST(mcp_server_legacy_client_request_round_trip)
{
	al_mcp_server *s = fixture();
	struct cap c = {0}, rc = {0};
	char sid[80];
	struct req r = {.sid = sid};
	al_mcp_call *call;
	json_t *req;

	legacy_init(s, sid, sizeof(sid), NULL);
	call =
	    send_msg(s, legacy_req(5, "tools/call", json_pack("{ss}", "name", "sample")), &r, &c);
	AL_ASSERT_NOT_NULL(call);
	AL_ASSERT_INT_EQ(c.nsent, 1);
	req = c.sent[0];
	AL_ASSERT_STR_EQ(str_at(req, "method"), "sampling/createMessage");
	AL_ASSERT_STR_EQ(str_at(req, "id"), "srv-1");

	/* A response naming another id is ignored; the right one completes the call. */
	send_msg(s,
		 json_pack("{sssss{s{ssss}}}", "jsonrpc", "2.0", "id", "srv-99", "result",
			   "content", "type", "text", "text", "x"),
		 &r, &rc);
	AL_ASSERT_INT_EQ(rc.status, 202);
	AL_ASSERT_INT_EQ(c.finished, 0);
	cap_clear(&rc);
	send_msg(s,
		 json_pack("{sssss{s{ssss}}}", "jsonrpc", "2.0", "id", "srv-1", "result", "content",
			   "type", "text", "text", "Paris"),
		 &r, &rc);
	AL_ASSERT_INT_EQ(rc.status, 202);
	AL_ASSERT_NULL(rc.final);
	AL_ASSERT_INT_EQ(reply_runs, 1);
	AL_ASSERT_INT_EQ(c.finished, 1);
	AL_ASSERT_STR_EQ(
	    str_at(json_array_get(json_object_get(result_of(&c), "content"), 0), "text"), "Paris");
	cap_clear(&rc);
	cap_clear(&c);

	/* An error response reaches the callback as an error. */
	call =
	    send_msg(s, legacy_req(6, "tools/call", json_pack("{ss}", "name", "sample")), &r, &c);
	AL_ASSERT_NOT_NULL(call);
	send_msg(s,
		 json_pack("{sssss{siss}}", "jsonrpc", "2.0", "id", "srv-2", "error", "code", -1,
			   "message", "user declined"),
		 &r, &rc);
	AL_ASSERT_INT_EQ(reply_runs, 2);
	AL_ASSERT_INT_EQ(err_code(&c), -32603);
	cap_clear(&rc);
	cap_clear(&c);

	/* Cancelled while waiting: the callback runs with NULL, NULL; a late
	 * response is ignored. */
	call =
	    send_msg(s, legacy_req(7, "tools/call", json_pack("{ss}", "name", "sample")), &r, &c);
	AL_ASSERT_NOT_NULL(call);
	send_msg(s,
		 json_pack("{sssss{sb}}", "jsonrpc", "2.0", "method", "notifications/cancelled",
			   "params", "requestId", 1),
		 &r, &rc); /* malformed: ignored */
	cap_clear(&rc);
	AL_ASSERT_INT_EQ(c.finished, 0);
	send_msg(s,
		 json_pack("{sssss{si}}", "jsonrpc", "2.0", "method", "notifications/cancelled",
			   "params", "requestId", 7),
		 &r, &rc);
	AL_ASSERT_INT_EQ(rc.status, 202);
	AL_ASSERT_INT_EQ(reply_runs, 3);
	AL_ASSERT_INT_EQ(c.finished, 1);
	AL_ASSERT_NULL(c.final);
	cap_clear(&rc);
	send_msg(s, json_pack("{sssss{}}", "jsonrpc", "2.0", "id", "srv-3", "result"), &r, &rc);
	AL_ASSERT_INT_EQ(reply_runs, 3);
	cap_clear(&rc);
	cap_clear(&c);

	/* In the modern era the same handler gets -ENOTSUP. */
	send_msg(s, modern(8, "tools/call", json_pack("{ss}", "name", "sample")), NULL, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32603);
	cap_clear(&c);
	al_mcp_server_free(s);
}

AL_TEST(mcp_server_legacy_session_limits)
{
	struct al_mcp_server_opts o = {.name = "x", .version = "1", .max_sessions = 2};
	al_mcp_server *s = al_mcp_server_new(&o);
	struct cap c = {0};
	char ids[3][80];
	json_t *schema = json_object();

	AL_ASSERT_INT_EQ(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "async",
									 .input_schema = schema,
									 .fn = tool_async}),
			 0);
	json_decref(schema);
	for (int i = 0; i < 3; i++) {
		send_msg(s,
			 legacy_req(
			     1, "initialize",
			     json_pack("{sss{}}", "protocolVersion", "2024-11-05", "capabilities")),
			 NULL, &c);
		/* Another requested version gets ours. */
		AL_ASSERT_STR_EQ(str_at(result_of(&c), "protocolVersion"), "2025-11-25");
		snprintf(ids[i], sizeof(ids[i]), "%s", c.sid);
		cap_clear(&c);
		if (i == 1) {
			/* The second one becomes busy: a call in flight. */
			AL_ASSERT_NOT_NULL(send_msg(
			    s, legacy_req(2, "tools/call", json_pack("{ss}", "name", "async")),
			    &(struct req){.sid = ids[1]}, &c));
		}
	}
	/* The least recently used idle session (the first) was evicted. */
	AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, ids[0]), 0);
	AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, ids[1]), 1);
	AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, ids[2]), 1);
	{
		struct cap c2 = {0};
		struct al_mcp_call *busy2 =
		    send_msg(s, legacy_req(3, "tools/call", json_pack("{ss}", "name", "async")),
			     &(struct req){.sid = ids[2]}, &c2);
		struct cap c3 = {0};
		AL_ASSERT_NOT_NULL(busy2);
		/* Every session busy: initialize is refused with 503. */
		send_msg(s,
			 legacy_req(
			     1, "initialize",
			     json_pack("{sss{}}", "protocolVersion", "2025-11-25", "capabilities")),
			 NULL, &c3);
		AL_ASSERT_INT_EQ(c3.status, 503);
		AL_ASSERT_INT_EQ(err_code(&c3), -32603);
		cap_clear(&c3);
		/* Ending a session cancels its calls. */
		AL_ASSERT_INT_EQ(al_mcp_server_end_session(s, ids[2]), 0);
		AL_ASSERT_INT_EQ(c2.finished, 1);
		cap_clear(&c2);
	}
	al_mcp_server_free(s);
	AL_ASSERT_INT_EQ(c.finished, 1);
	cap_clear(&c);
	parked = NULL;
}

AL_TEST(mcp_server_legacy_session_idle_expiry)
{
	struct al_mcp_server_opts o = {.name = "x", .version = "1", .session_idle_ms = 30};
	al_mcp_server *s = al_mcp_server_new(&o);
	struct cap c = {0};
	char sid[80];

	send_msg(s,
		 legacy_req(1, "initialize",
			    json_pack("{sss{}}", "protocolVersion", "2025-11-25", "capabilities")),
		 NULL, &c);
	snprintf(sid, sizeof(sid), "%s", c.sid);
	cap_clear(&c);
	AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, sid), 1);
	{
		struct timespec ts = {0, 80 * 1000 * 1000};
		struct cap st = {0};

		/* An open GET stream keeps it alive; idle time counts from its close. */
		AL_ASSERT_INT_EQ(al_mcp_server_open_stream(s, sid, &sink, &st), 0);
		nanosleep(&ts, NULL);
		AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, sid), 1);
		al_mcp_server_close_stream(s, sid, &st);
		AL_ASSERT_INT_EQ(st.finished, 1);
		AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, sid), 1);
		nanosleep(&ts, NULL);
		cap_clear(&st);
	}
	AL_ASSERT_INT_EQ(al_mcp_server_has_session(s, sid), 0);
	al_mcp_server_free(s);
}

AL_TEST(mcp_server_legacy_session_bound_to_principal_and_meta_on_initialize)
{
	al_mcp_server *s = fixture();
	struct cap c = {0};
	struct req alice = {.principal = "alice"};
	json_t *p;

	send_msg(s,
		 legacy_req(1, "initialize",
			    json_pack("{sss{}s{si}}", "protocolVersion", "2025-11-25",
				      "capabilities", "_meta", "progressToken", 1)),
		 &alice, &c);
	/* A legacy _meta (no modern protocolVersion) still selects the legacy era. */
	AL_ASSERT_INT_EQ(strlen(c.sid), 32);
	alice.sid = al_strdup(c.sid);
	cap_clear(&c);
	send_msg(s, legacy_req(2, "ping", NULL), &alice, &c);
	AL_ASSERT_INT_EQ(json_object_size(result_of(&c)), 0);
	cap_clear(&c);
	/* Another principal, or none, presenting the id: the session does not exist. */
	send_msg(s, legacy_req(3, "ping", NULL),
		 &(struct req){.sid = alice.sid, .principal = "bob"}, &c);
	AL_ASSERT_INT_EQ(c.status, 404);
	cap_clear(&c);
	send_msg(s, legacy_req(4, "ping", NULL), &(struct req){.sid = alice.sid}, &c);
	AL_ASSERT_INT_EQ(c.status, 404);
	cap_clear(&c);
	al_free((char *)alice.sid);

	/* initialize with the modern _meta is a modern request: removed, 404. */
	p = json_pack("{sss{}}", "protocolVersion", "2025-11-25", "capabilities");
	send_msg(s, modern(5, "initialize", p), NULL, &c);
	AL_ASSERT_INT_EQ(err_code(&c), -32601);
	AL_ASSERT_INT_EQ(c.status, 404);
	AL_ASSERT(c.sid[0] == '\0');
	cap_clear(&c);
	al_mcp_server_free(s);
}

/* For the allocation-failure sweep: a server-to-client request that may fail. */
static void tool_sample_soft(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	if (al_mcp_call_request(c, "roots/list", NULL, on_reply, &reply_runs) < 0)
		al_mcp_call_errorf(c, -32603, "no memory");
}

static int handle_raw(al_mcp_server *s, const char *body, const struct req *r, struct cap *c,
		      al_mcp_call **call)
{
	struct al_mcp_inbound in = {.body = body, .len = strlen(body)};
	int rc;

	if (r) {
		in.session_id = r->sid;
		in.principal = r->principal;
	}
	*call = NULL;
	rc = al_mcp_server_handle(s, &in, &sink, c, call);
	/* Either nothing was done (-ENOMEM, no finish) or exactly one of: finished, in flight. */
	if (rc < 0) {
		AL_ASSERT_INT_EQ(rc, -ENOMEM);
		AL_ASSERT_INT_EQ(c->finished, 0);
		AL_ASSERT_NULL(*call);
	} else {
		AL_ASSERT_INT_EQ(rc, 0);
		AL_ASSERT_INT_EQ(c->finished + (*call != NULL), 1);
	}
	return rc;
}

/* Found by fuzz_mcp_server: a client's response (to our "srv-1") naming an
 * unknown session was answered 404 with an error carrying id "srv-1", as if
 * the client had sent a request with that id. 404 stays; the id goes. */
AL_TEST(mcp_server_unknown_session_response_gets_no_id)
{
	al_mcp_server *s = fixture();
	struct cap c = {0};
	al_mcp_call *call;
	struct req r = {.sid = "00000000000000000000000000000000"};

	handle_raw(s, "{\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"result\":{}}", &r, &c, &call);
	AL_ASSERT_INT_EQ(c.status, 404);
	AL_ASSERT_INT_EQ(err_code(&c), -32600);
	AL_ASSERT_NULL(json_object_get(c.final, "id"));
	cap_clear(&c);
	handle_raw(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", &r, &c,
		   &call);
	AL_ASSERT_INT_EQ(c.status, 404);
	AL_ASSERT_NULL(json_object_get(c.final, "id"));
	cap_clear(&c);
	/* A request still gets its own id back. */
	handle_raw(s, "{\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"method\":\"ping\"}", &r, &c, &call);
	AL_ASSERT_INT_EQ(c.status, 404);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(c.final, "id")), "srv-1");
	cap_clear(&c);
	al_mcp_server_free(s);
}

AL_TEST(mcp_server_allocation_failures_unwind)
{
	static const char *const modern_bodies[] = {
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{\"_meta\":{"
	    "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
	    "\"arguments\":{\"text\":\"x\"},\"_meta\":{\"progressToken\":\"t\","
	    "\"io.modelcontextprotocol/logLevel\":\"debug\","
	    "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"mrtr\","
	    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{\"elicitation\":{}}}}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
	    "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{\"uri\":"
	    "\"test://template/7/data\",\"_meta\":{"
	    "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
	};
	static const char listen[] =
	    "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"subscriptions/listen\",\"params\":{"
	    "\"notifications\":{\"toolsListChanged\":true},\"_meta\":{"
	    "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}";
	static const char init[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
				   "\"params\":{\"protocolVersion\":\"2025-11-25\","
				   "\"capabilities\":{\"roots\":{}}}}";
	static const char call_soft[] = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
					"\"params\":{\"name\":\"soft\"}}";
	static const char answer[] = "{\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"result\":{"
				     "\"content\":{\"type\":\"text\",\"text\":\"r\"}}}";
	int completed = 0;

	al_alloc_init();
	for (long n = 0; n < 3000 && completed < 3; n++) {
		al_mcp_server *s = fixture();
		json_t *schema = json_object();
		struct cap c = {0}, l = {0}, a = {0};
		al_mcp_call *call = NULL, *lcall = NULL;
		char sid[80] = "";
		int ok = 1;

		AL_ASSERT_INT_EQ(
		    al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "soft",
								    .input_schema = schema,
								    .fn = tool_sample_soft}),
		    0);
		json_decref(schema);
		al_alloc_fail_after(n);
		for (size_t i = 0; i < sizeof(modern_bodies) / sizeof(modern_bodies[0]); i++) {
			handle_raw(s, modern_bodies[i], NULL, &c, &call);
			ok &= c.finished && c.final && !json_object_get(c.final, "error");
			if (call)
				al_mcp_call_cancel(call);
			cap_clear(&c);
		}
		handle_raw(s, listen, NULL, &l, &lcall);
		ok &= lcall != NULL;
		al_mcp_server_list_changed(s, "tools");
		handle_raw(s, init, NULL, &c, &call);
		ok &= c.sid[0] != '\0';
		snprintf(sid, sizeof(sid), "%s", c.sid);
		cap_clear(&c);
		if (sid[0]) {
			handle_raw(s, call_soft, &(struct req){.sid = sid}, &c, &call);
			if (call) {
				al_mcp_call *acall;
				handle_raw(s, answer, &(struct req){.sid = sid}, &a, &acall);
				AL_ASSERT_NULL(acall);
			}
			ok &= c.finished && c.final && !json_object_get(c.final, "error");
			if (!c.finished && call)
				al_mcp_call_cancel(call);
			cap_clear(&a);
			cap_clear(&c);
		}
		al_alloc_fail_after(-1);
		if (ok)
			completed++;
		al_mcp_server_free(s);
		AL_ASSERT(!lcall || l.finished);
		cap_clear(&l);
	}
	/* The sweep reached budgets large enough for everything to succeed. */
	AL_ASSERT_INT_GE(completed, 1);
}

/* A deterministic PRNG for the mutation test (xorshift64). */
static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;

static unsigned rng(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

AL_TEST(mcp_server_mutated_messages_finish_exactly_once)
{
	static const char *const seeds[] = {
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
	    "\"arguments\":{\"text\":\"x\"},\"_meta\":{\"progressToken\":1,"
	    "\"io.modelcontextprotocol/logLevel\":\"debug\","
	    "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{\"sampling\":{}}}}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"resources/read\",\"params\":{\"uri\":"
	    "\"test://template/9/data\",\"requestState\":\"v1.AAAA\",\"inputResponses\":{},"
	    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"completion/complete\",\"params\":{\"ref\":"
	    "{\"type\":\"ref/prompt\",\"name\":\"p1\"},\"argument\":{\"name\":\"lang\",\"value\":"
	    "\"p\"},\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"subscriptions/listen\",\"params\":{"
	    "\"notifications\":{\"toolsListChanged\":true,\"resourceSubscriptions\":[\"a\"]},"
	    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"initialize\",\"params\":{"
	    "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{}}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"mrtr\","
	    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	    "\"io.modelcontextprotocol/clientCapabilities\":{\"elicitation\":{}}}}}",
	    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
	    "\"requestId\":7}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"result\":{}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"logging/setLevel\",\"params\":{\"level\":"
	    "\"info\"}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"resources/subscribe\",\"params\":{\"uri\":"
	    "\"test://static-text\"}}",
	};
	static const char junk[] = "{}[]\":,0-a\\ \x01";
	al_mcp_server *s = fixture();
	char body[1024], sid[80] = "";
	struct cap st = {0};
	int finished = 0, in_flight = 0, st_open = 0;

	for (int it = 0; it < 4000; it++) {
		const char *seed = seeds[rng(sizeof(seeds) / sizeof(seeds[0]))];
		size_t n = strlen(seed);
		struct cap c = {0};
		al_mcp_call *call = NULL;
		struct al_mcp_inbound in = {0};
		struct al_http_field h[] = {{(char *)"MCP-Protocol-Version", (char *)"2026-07-28"},
					    {(char *)"Mcp-Method", (char *)"tools/call"},
					    {(char *)"Mcp-Name", (char *)"echo"}};

		memcpy(body, seed, n);
		for (unsigned k = rng(4); k > 0; k--) {
			unsigned op = rng(3), at = rng((unsigned)n);
			if (op == 0)
				body[at] = junk[rng(sizeof(junk) - 1)];
			else if (op == 1 && n > 1)
				n = at + 1; /* truncate */
			else if (n + 1 < sizeof(body)) {
				memmove(body + at + 1, body + at, n - at);
				body[at] = junk[rng(sizeof(junk) - 1)];
				n++;
			}
		}
		in.body = body;
		in.len = n;
		in.http = (int)rng(2);
		in.headers = h;
		in.nheaders = rng(4);
		in.session_id = (sid[0] && rng(2)) ? sid : NULL;
		AL_ASSERT_INT_EQ(al_mcp_server_handle(s, &in, &sink, &c, &call), 0);
		AL_ASSERT_INT_EQ(c.finished + (call != NULL), 1);
		if (c.sid[0]) {
			snprintf(sid, sizeof(sid), "%s", c.sid);
			if (!st_open && rng(2))
				st_open = al_mcp_server_open_stream(s, sid, &sink, &st) == 0;
		}
		if (call) {
			in_flight++;
			if (rng(2))
				al_mcp_server_list_changed(s, "tools");
			al_mcp_call_cancel(call);
		} else {
			finished++;
		}
		AL_ASSERT_INT_EQ(c.finished, 1);
		/* Whatever came back is a JSON-RPC response or nothing. */
		if (c.final)
			AL_ASSERT_STR_EQ(str_at(c.final, "jsonrpc"), "2.0");
		cap_clear(&c);
		parked = NULL;
	}
	al_mcp_server_free(s);
	AL_ASSERT(st_open);
	AL_ASSERT_INT_EQ(st.finished, 1); /* the stream ended with its session */
	cap_clear(&st);
	AL_ASSERT(finished > 100 && in_flight > 10);
}

static al_mcp_call *held;

/* An asynchronous handler that registers no on_cancel and answers later regardless. */
static void tool_late(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	held = c;
}

AL_TEST(mcp_server_cancelled_call_outlives_until_a_late_answer)
{
	struct al_mcp_server_opts o = {.name = "fx", .version = "1.0"};
	al_mcp_server *s = al_mcp_server_new(&o);
	json_t *schema = json_pack("{ss}", "type", "object");
	struct cap c = {0};
	al_mcp_call *call;

	AL_ASSERT_NOT_NULL(s);
	AL_ASSERT_INT_EQ(
	    al_mcp_server_add_tool(
		s, &(struct al_mcp_tool){.name = "late", .input_schema = schema, .fn = tool_late}),
	    0);
	json_decref(schema);
	call = send_msg(s, modern(1, "tools/call", json_pack("{ss}", "name", "late")), NULL, &c);
	AL_ASSERT(call != NULL && call == held);
	al_mcp_call_cancel(call);
	/* The transport is released at once; the handler still holds a valid call. */
	AL_ASSERT_INT_EQ(c.finished, 1);
	AL_ASSERT_NULL(c.final);
	AL_ASSERT_INT_EQ(al_mcp_call_cancelled(held), 1);
	/* Its late answer is dropped and frees the call (ASan sees any misuse). */
	al_mcp_call_result(held, json_pack("{s[]}", "content"));
	AL_ASSERT_INT_EQ(c.finished, 1);
	held = NULL;
	cap_clear(&c);
	al_mcp_server_free(s);
}
