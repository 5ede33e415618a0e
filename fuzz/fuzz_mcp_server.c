/*
 * fuzz_mcp_server.c - libFuzzer target for the MCP dispatcher
 * (al_mcp_server_handle), both eras.
 *
 * The input is a conversation: messages separated by the byte 0x1e (a
 * control character no JSON text holds unescaped). Each message starts
 * with two control bytes, then optional header lines, then the body:
 *
 *   c0 bit0  inbound.http
 *      bit1  add the headers a correct client sends (al_mcp_hdr_build)
 *      bit2  header lines "Name: value\n" follow, up to an empty line
 *      bit3  name a session (one of those initialize returned, c1 bits 4-5;
 *            an unknown id when there is none)
 *      bit4  principal "alice" (else none)
 *      bit5  open the session's GET stream before the message
 *      bit6  cancel the call after handle when it is still in flight
 *      bit7  this message's sends fail (-EPIPE; cancelled after handle)
 *   c1 bit0  end the session after the message (DELETE)
 *      bit1  close the session's GET stream after the message
 *      bit2  answer the deferred handlers before the message
 *      bit3  tell subscribers a list and a resource changed after it
 *      bit6  remove the prompt and register it again after the message
 *
 * The server registers synchronous tools (echo with an x-mcp-header, one
 * with required capabilities, one MRTR / legacy server-to-client request,
 * one that sends progress, logs and a notification, one answering an
 * error), a deferred tool (answered later, with or without on_cancel), a
 * resource, a template and a prompt with completions.
 *
 * Checked (abort on failure): every sink's finish runs exactly once, never
 * a send after it; every message sent is one JSON-RPC message (a request
 * or notification through send, a response through finish) that
 * serialises; a finish with a session id carries a successful response.
 * At the end every call is cancelled and the server freed: ASan's leak
 * check covers the rest.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "http/parser.h"
#include "mcp/headers.h"
#include "mcp/jsonrpc.h"
#include "mcp/meta.h"
#include "mcp/server.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS     24
#define MAX_HDRS     24
#define MAX_SESSIONS 4
#define MAX_DEFER    32

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

/* The transport's per-message (or per-stream) context. */
struct ctx {
	struct ctx *next;
	al_mcp_call *call; /* valid while !finished */
	int finished;
	int fail_send;
	int broken; /* a send failed: the transport cancels after handle */
	int stream; /* a legacy GET stream, not a call */
	int kind;   /* the message as we parse it: enum al_mcp_msg_kind, or -1 */
	json_t *id; /* its id, or NULL */
};

static struct ctx *ctxs;
static char sessions[MAX_SESSIONS][64];
static int nsessions;
static al_mcp_call *deferred[MAX_DEFER];
static int ndeferred;
static al_mcp_param_headers echo_ph;

/* ---- message checks ---- */

static int is_id(const json_t *id)
{
	return json_is_string(id) || json_is_integer(id);
}

/* A message the server sends: one JSON-RPC 2.0 object that serialises. */
static void check_msg(const json_t *m, int response)
{
	json_t *id = json_object_get(m, "id"), *res = json_object_get(m, "result");
	json_t *e = json_object_get(m, "error");
	al_buf b = {0};
	al_mcp_msg parsed = {0};
	al_mcp_error err = {0};

	CHECK(json_is_object(m));
	CHECK(json_is_string(json_object_get(m, "jsonrpc")));
	CHECK(strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0") == 0);
	if (response) {
		CHECK(!json_object_get(m, "method"));
		CHECK((res != NULL) != (e != NULL));
		if (res) {
			CHECK(json_is_object(res));
			CHECK(is_id(id));
		} else {
			CHECK(json_is_object(e));
			CHECK(json_is_integer(json_object_get(e, "code")));
			CHECK(json_is_string(json_object_get(e, "message")));
			CHECK(id == NULL || is_id(id));
		}
	} else {
		CHECK(json_is_string(json_object_get(m, "method")));
		CHECK(!res && !e);
		CHECK(id == NULL || is_id(id));
		CHECK(json_object_get(m, "params") == NULL ||
		      json_is_object(json_object_get(m, "params")));
	}
	/* It serialises and our own parser takes it back (results and
	 * requests; an error without an id is this revision's shape). */
	CHECK(al_mcp_msg_dump(m, &b) == 0);
	if (getenv("FUZZ_MCP_VERBOSE"))
		fprintf(stderr, "%s: %.*s\n", response ? "finish" : "send", (int)b.len, b.data);
	if (id != NULL || !response) {
		int rc = al_mcp_msg_parse(b.data, b.len, &parsed, &err);
		CHECK(rc == 0 || rc == -ENOMEM);
	}
	al_mcp_msg_free(&parsed);
	al_mcp_error_clear(&err);
	al_buf_free(&b);
}

static int sink_send(void *t, const json_t *msg)
{
	struct ctx *x = t;

	CHECK(!x->finished);
	check_msg(msg, 0);
	if (x->fail_send) {
		x->broken = 1;
		return -EPIPE;
	}
	return 0;
}

static void sink_finish(void *t, json_t *msg, int status, const char *sid)
{
	struct ctx *x = t;

	CHECK(!x->finished);
	x->finished = 1;
	x->call = NULL;
	CHECK(status >= 200 && status <= 599);
	if (msg)
		check_msg(msg, 1);
	/* A request is answered with its own id; a notification or a response
	 * from the client with nothing, or an error without an id (an unknown
	 * session: 404). */
	if (msg && x->kind == AL_MCP_REQUEST)
		CHECK(json_equal(json_object_get(msg, "id"), x->id));
	if (msg && (x->kind == AL_MCP_NOTIFICATION || x->kind == AL_MCP_RESULT ||
		    x->kind == AL_MCP_ERROR_RESPONSE))
		CHECK(json_object_get(msg, "error") && !json_object_get(msg, "id"));
	if (sid) {
		CHECK(msg && json_object_get(msg, "result"));
		CHECK(strlen(sid) < sizeof(sessions[0]));
		snprintf(sessions[nsessions % MAX_SESSIONS], sizeof(sessions[0]), "%s", sid);
		nsessions++;
	}
	json_decref(msg);
}

static const struct al_mcp_sink sink = {sink_send, sink_finish};

static struct ctx *ctx_new(void)
{
	struct ctx *x = al_calloc(1, sizeof(*x));

	CHECK(x);
	x->kind = -1;
	x->next = ctxs;
	ctxs = x;
	return x;
}

/* ---- handlers ---- */

static void tool_echo(al_mcp_call *c, json_t *args, void *ud)
{
	const char *who = al_mcp_call_principal(c);

	(void)ud;
	CHECK(json_is_object(al_mcp_call_params(c)) && json_is_object(args));
	CHECK(json_is_object(al_mcp_call_client_capabilities(c)));
	CHECK(strcmp(al_mcp_call_method(c), "tools/call") == 0);
	al_mcp_call_result(c, json_pack("{s[{ssss}]s{sOsssssO}}", "content", "type", "text", "text",
					"echo", "structuredContent", "args", args, "version",
					al_mcp_call_version(c), "principal", who ? who : "", "caps",
					al_mcp_call_client_capabilities(c)));
}

static void tool_plain(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	al_mcp_call_result(c, json_pack("{s[]}", "content"));
}

static void tool_fail(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	al_mcp_call_errorf(c, -32001, "failed %s", al_mcp_call_method(c));
}

/* Progress, logs at two levels, a custom notification, then the result. */
static void tool_chatty(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	al_mcp_call_progress(c, 1, 3, "one");
	al_mcp_call_log(c, AL_MCP_LOG_DEBUG, "fuzz", json_string("debug"));
	al_mcp_call_progress(c, 2, -1, NULL);
	al_mcp_call_log(c, AL_MCP_LOG_ERROR, NULL, json_pack("{si}", "n", 1));
	al_mcp_call_notify(c, "notifications/fuzz", json_object());
	if (al_mcp_call_cancelled(c)) {
		al_mcp_call_result(c, json_object()); /* dropped; settles the call */
		return;
	}
	al_mcp_call_result(c, json_pack("{s[]}", "content"));
}

static void reply_cb(al_mcp_call *c, json_t *result, const al_mcp_error *err, void *ud)
{
	(void)ud;
	if (!result && !err)
		return; /* cancelled: forget the call */
	if (result)
		al_mcp_call_result(c, json_pack("{s[]sO}", "content", "structuredContent", result));
	else
		al_mcp_call_error(c, err);
}

/* MRTR: asks for input (modern) or sends an elicitation request (legacy). */
static void tool_ask(al_mcp_call *c, json_t *args, void *ud)
{
	json_t *resp = al_mcp_call_input_responses(c);

	(void)args;
	(void)ud;
	if (al_mcp_call_legacy(c)) {
		if (al_mcp_call_request(c, "elicitation/create",
					json_pack("{ss}", "message", "name?"), reply_cb, NULL) < 0)
			al_mcp_call_errorf(c, -32603, "request failed");
		return;
	}
	if (resp && json_object_get(resp, "name")) {
		al_mcp_call_result(
		    c, json_pack("{s[]sOsO}", "content", "structuredContent", resp, "state",
				 al_mcp_call_state(c) ? al_mcp_call_state(c) : json_null()));
		return;
	}
	al_mcp_call_input_required(c,
				   json_pack("{s{sss{ss}}s{sss{}}}", "name", "method",
					     "elicitation/create", "params", "message", "name?",
					     "roots", "method", "roots/list", "params"),
				   json_pack("{si}", "round", 1));
}

static void defer_cancel_cb(al_mcp_call *c, void *ud)
{
	(void)ud;
	for (int i = 0; i < ndeferred; i++)
		if (deferred[i] == c) {
			deferred[i] = deferred[--ndeferred];
			return;
		}
	abort(); /* on_cancel for a call we do not hold */
}

/* Answered later; arguments.oc registers on_cancel (then forgotten there). */
static void tool_later(al_mcp_call *c, json_t *args, void *ud)
{
	(void)ud;
	if (ndeferred == MAX_DEFER) {
		al_mcp_call_result(c, json_pack("{s[]}", "content"));
		return;
	}
	if (json_is_true(json_object_get(args, "oc")))
		al_mcp_call_on_cancel(c, defer_cancel_cb, NULL);
	deferred[ndeferred++] = c;
}

static void answer_deferred(void)
{
	while (ndeferred > 0) {
		al_mcp_call *c = deferred[--ndeferred];
		al_mcp_call_result(c, json_pack("{s[]}", "content"));
	}
}

static void read_res(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	(void)ud;
	al_mcp_call_progress(c, 1, 1, "read");
	al_mcp_call_result(c,
			   json_pack("{s[{sssssssO}]}", "contents", "uri", uri, "text", "x",
				     "mimeType", "text/plain", "vars", vars ? vars : json_null()));
}

static json_t *complete(const char *argument, const char *value, json_t *context, void *ud)
{
	json_t *a = json_array();

	(void)context;
	(void)ud;
	for (int i = 0; a && i < 3; i++)
		json_array_append_new(a, json_sprintf("%s-%s-%d", argument, value, i));
	return a;
}

static void prompt_get(al_mcp_call *c, json_t *args, void *ud)
{
	(void)ud;
	al_mcp_call_result(c, json_pack("{s[{sss{sssO}}]}", "messages", "role", "user", "content",
					"type", "text", "args", args));
}

static struct al_mcp_prompt greet = {.name = "greet", .fn = prompt_get, .complete = complete};

static al_mcp_server *server_new(void)
{
	static const unsigned char key[AL_MCP_STATE_KEY_LEN] = "fuzz-key-fuzz-key-fuzz-key-fuzz";
	struct al_mcp_server_opts o = {.name = "fuzz",
				       .version = "1",
				       .title = "Fuzz",
				       .instructions = "none",
				       .state_key = key,
				       .max_sessions = 3};
	al_mcp_server *s = al_mcp_server_new(&o);
	json_t *schema = json_pack("{ss}", "type", "object");
	json_t *hschema = json_loads("{\"type\":\"object\",\"properties\":{"
				     "\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
				     "\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"}}}",
				     0, NULL);
	json_t *req = json_pack("{s{}}", "sampling");
	json_t *pargs = json_pack("[{sssb}]", "name", "who", "required", 1);

	CHECK(s && schema && hschema && req && pargs);
	CHECK(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "echo",
							      .description = "echoes",
							      .input_schema = hschema,
							      .fn = tool_echo}) == 0);
	CHECK(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "sample",
							      .input_schema = schema,
							      .required_capabilities = req,
							      .fn = tool_plain}) == 0);
	CHECK(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "ask",
							      .input_schema = schema,
							      .fn = tool_ask}) == 0);
	CHECK(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "chatty",
							      .input_schema = schema,
							      .fn = tool_chatty}) == 0);
	CHECK(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "fail",
							      .input_schema = schema,
							      .fn = tool_fail}) == 0);
	CHECK(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "later",
							      .input_schema = schema,
							      .fn = tool_later}) == 0);
	CHECK(al_mcp_server_add_resource(s, &(struct al_mcp_resource){.uri = "test://static",
								      .mime_type = "text/plain",
								      .fn = read_res}) == 0);
	CHECK(al_mcp_server_add_template(
		  s, &(struct al_mcp_resource_template){.uri_template = "test://items/{id}/data",
							.fn = read_res,
							.complete = complete}) == 0);
	greet.arguments = pargs;
	CHECK(al_mcp_server_add_prompt(s, &greet) == 0);
	json_decref(schema);
	json_decref(hschema);
	json_decref(req);
	json_decref(pargs);
	greet.arguments = NULL;
	return s;
}

/* ---- one message ---- */

/* "Name: value" lines (LF or CRLF) into fields, owned by *store. */
static void add_lines(char *text, struct al_http_field *f, size_t *nf)
{
	char *save = NULL;

	for (char *l = strtok_r(text, "\r\n", &save); l && *nf < MAX_HDRS;
	     l = strtok_r(NULL, "\r\n", &save)) {
		char *c = strchr(l, ':');
		if (c == NULL)
			continue;
		*c++ = '\0';
		while (*c == ' ')
			c++;
		f[*nf].name = l;
		f[*nf].value = c;
		(*nf)++;
	}
}

/* The Mcp-* headers a correct client would send for this body (none when it cannot). */
static void auto_headers(const char *body, size_t len, al_buf *out)
{
	al_mcp_msg m = {0};
	al_mcp_error err = {0};
	json_t *meta;
	const char *v;

	if (al_mcp_msg_parse(body, len, &m, &err) == 0 && m.method) {
		meta = json_object_get(m.params, "_meta");
		v = json_string_value(json_object_get(meta, AL_MCP_META_PROTOCOL_VERSION));
		if (al_mcp_hdr_build(v ? v : AL_MCP_VERSION_2026, m.method, m.params, &echo_ph,
				     out) < 0)
			al_buf_reset(out);
	}
	al_mcp_msg_free(&m);
	al_mcp_error_clear(&err);
}

static const char *session_of(uint8_t c1)
{
	if (nsessions == 0)
		return "00000000000000000000000000000000";
	return sessions[(c1 >> 4) % (nsessions < MAX_SESSIONS ? nsessions : MAX_SESSIONS)];
}

/* Cancels what the transport would: calls whose sends failed. */
static void sweep_broken(void)
{
	for (struct ctx *x = ctxs; x; x = x->next)
		if (x->broken && !x->finished && x->call)
			al_mcp_call_cancel(x->call);
}

static void one_message(al_mcp_server *s, const uint8_t *p, size_t n)
{
	struct al_http_field f[MAX_HDRS];
	size_t nf = 0;
	al_buf auto_h = {0};
	char *hdr_text = NULL;
	uint8_t c0, c1;
	const char *body, *sid = NULL;
	size_t blen;
	struct ctx *x, *st = NULL;
	al_mcp_call *call = NULL;
	struct al_mcp_inbound in = {0};
	al_mcp_msg m = {0};
	al_mcp_error perr = {0};

	if (n < 2)
		return;
	c0 = p[0];
	c1 = p[1];
	body = (const char *)p + 2;
	blen = n - 2;
	if (c1 & 4)
		answer_deferred();
	if (c0 & 4) {
		const char *e = memmem(body, blen, "\n\n", 2);
		size_t hl = e ? (size_t)(e - body) : blen;
		hdr_text = al_strndup(body, hl);
		CHECK(hdr_text);
		body += e ? hl + 2 : hl;
		blen -= e ? hl + 2 : hl;
	}
	if ((c0 & 1) && (c0 & 2)) {
		auto_headers(body, blen, &auto_h);
		if (auto_h.len)
			add_lines(auto_h.data, f, &nf);
	}
	if (hdr_text)
		add_lines(hdr_text, f, &nf);
	if (c0 & 8)
		sid = session_of(c1);
	if ((c0 & 32) && sid) {
		st = ctx_new();
		st->stream = 1;
		st->fail_send = (c0 & 128) != 0;
		if (al_mcp_server_open_stream(s, sid, &sink, st) < 0)
			st->finished = 1; /* refused: never registered */
	}
	x = ctx_new();
	x->fail_send = (c0 & 128) != 0;
	if (al_mcp_msg_parse(body, blen, &m, &perr) == 0) {
		x->kind = (int)m.kind;
		x->id = al_mcp_id_json(&m.id);
	}
	al_mcp_msg_free(&m);
	al_mcp_error_clear(&perr);
	in.body = body;
	in.len = blen;
	in.headers = nf ? f : NULL;
	in.nheaders = nf;
	in.http = c0 & 1;
	in.session_id = sid;
	in.principal = (c0 & 16) ? "alice" : NULL;
	if (al_mcp_server_handle(s, &in, &sink, x, &call) < 0)
		x->finished = 1; /* nothing could be done: finish is not called */
	CHECK(!(x->finished && call));
	if (!x->finished) {
		/* Finish not yet called: the call must be in flight and known. */
		CHECK(call != NULL);
		x->call = call;
	}
	sweep_broken();
	if ((c0 & 64) && !x->finished)
		al_mcp_call_cancel(x->call);
	if ((c1 & 2) && sid)
		al_mcp_server_close_stream(s, sid, st);
	if ((c1 & 8)) {
		al_mcp_server_list_changed(s, "tools");
		al_mcp_server_resource_updated(s, "test://static");
		sweep_broken();
	}
	if (c1 & 64) {
		CHECK(al_mcp_server_remove_prompt(s, "greet") == 0);
		CHECK(al_mcp_server_remove_prompt(s, "greet") == -ENOENT);
		CHECK(al_mcp_server_add_prompt(s, &greet) == 0);
		CHECK(al_mcp_server_remove_tool(s, "nope") == -ENOENT);
		sweep_broken();
	}
	if (sid)
		CHECK(al_mcp_server_has_session(s, sid) == 0 ||
		      al_mcp_server_has_session(s, sid) == 1);
	if ((c1 & 1) && sid) {
		int rc = al_mcp_server_end_session(s, sid);
		CHECK(rc == 0 || rc == -ENOENT);
	}
	al_buf_free(&auto_h);
	al_free(hdr_text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	al_mcp_server *s;
	const uint8_t *p = data, *end = data + size;
	int nmsg = 0;

	if (!init) {
		json_t *hs;
		al_alloc_init();
		hs = json_loads("{\"type\":\"object\",\"properties\":{"
				"\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
				"\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"}}}",
				0, NULL);
		CHECK(hs && al_mcp_param_headers_from_schema(hs, &echo_ph, NULL, 0) == 0);
		json_decref(hs);
		init = 1;
	}
	nsessions = 0;
	ndeferred = 0;
	s = server_new();
	while (p < end && nmsg++ < MAX_MSGS) {
		const uint8_t *sep = memchr(p, 0x1e, (size_t)(end - p));
		size_t n = sep ? (size_t)(sep - p) : (size_t)(end - p);
		one_message(s, p, n);
		p += n + (sep ? 1 : 0);
	}
	/* The transport goes away: everything in flight is cancelled (or,
	 * for an even size, left to al_mcp_server_free, which ends listen
	 * streams gracefully), the sessions end (their streams finish), late
	 * answers are dropped. */
	for (struct ctx *x = ctxs; (size & 1) && x; x = x->next)
		if (!x->finished && !x->stream && x->call)
			al_mcp_call_cancel(x->call);
	answer_deferred();
	al_mcp_server_free(s);
	while (ctxs) {
		struct ctx *x = ctxs;
		CHECK(x->finished);
		ctxs = x->next;
		json_decref(x->id);
		al_free(x);
	}
	return 0;
}
