/*
 * fixture.c - TEST FIXTURE, not product code: the MCP server the official
 * conformance suite (@modelcontextprotocol/conformance) is run against by
 * `make conformance` (scripts/conformance.sh).
 *
 * It is an al_mcp_server (mcp/server.h) served over Streamable HTTP
 * (mcp/http.h) at /mcp, both eras on the one endpoint, with every tool,
 * resource, template and prompt the suite's scenarios call by name
 * (docs/MCP.md, "What the fixture server must serve"). Everything it
 * answers is the library's doing; the handlers only produce the fixed
 * contents the scenarios expect.
 *
 *   build/mcp-fixture [--host 127.0.0.1] [--port N]
 *
 * Prints the bound port on stdout once it listens (port 0 lets the kernel
 * pick) and serves until SIGTERM or SIGINT.
 */
#include "core/alloc.h"
#include "core/b64.h"
#include "http/server.h"
#include "mcp/http.h"
#include "mcp/meta.h"
#include "mcp/server.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* A 1x1 red pixel PNG (70 bytes), the suite's "minimal test image". */
static const char png_b64[] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAF"
			      "BQIAX8jx0gAAAABJRU5ErkJggg==";

struct fixture {
	uv_loop_t *loop;
	al_mcp_server *srv;
	al_mcp_http *http;
	al_http_server *hs;
	uv_signal_t sigterm, sigint;
	char *wav_b64; /* a short silent WAV, built at start-up */
	int dynamic_tool, dynamic_prompt;
};

static struct fixture fx;

/* ---- small builders ---- */

static json_t *text_block(const char *text)
{
	return json_pack("{s:s, s:s}", "type", "text", "text", text);
}

static json_t *text_result(const char *text)
{
	return json_pack("{s:[o]}", "content", text_block(text));
}

static void answer_text(al_mcp_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer_text(al_mcp_call *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	al_mcp_call_result(c, text_result(buf));
}

/* Compact JSON text of v for a human-readable answer ("{}" when v is NULL). */
static char *dump(const json_t *v)
{
	/* jansson allocates through al_malloc (al_alloc_init): al_free it. */
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	return s ? s : al_strdup("{}");
}

/* A minimal PCM WAV: 44-byte RIFF header and 16 silent 8-bit samples. */
static char *make_wav_b64(void)
{
	unsigned char w[44 + 16];
	const unsigned rate = 8000, data = 16;
	char *out = NULL;
	memcpy(w, "RIFF", 4);
	unsigned riff = 36 + data;
	for (int i = 0; i < 4; i++)
		w[4 + i] = (unsigned char)(riff >> (8 * i));
	memcpy(w + 8, "WAVEfmt ", 8);
	const unsigned char fmt[16] = {16, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	memcpy(w + 16, fmt, 16);
	for (int i = 0; i < 4; i++) {
		w[24 + i] = (unsigned char)(rate >> (8 * i)); /* sample rate */
		w[28 + i] = (unsigned char)(rate >> (8 * i)); /* bytes per second */
	}
	w[32] = 1; /* block align */
	w[33] = 0;
	w[34] = 8; /* bits per sample */
	w[35] = 0;
	memcpy(w + 36, "data", 4);
	for (int i = 0; i < 4; i++)
		w[40 + i] = (unsigned char)(data >> (8 * i));
	memset(w + 44, 0x80, data); /* 8-bit PCM silence is 128 */
	size_t n = al_b64_len(sizeof w) + 1;
	out = al_malloc(n);
	if (out && al_b64_encode(w, sizeof w, out, n) < 0) {
		al_free(out);
		out = NULL;
	}
	return out;
}

/* ---- plain content tools ---- */

static void tool_simple_text(al_mcp_call *c, json_t *args, void *ud)
{
	answer_text(c, "This is a simple text response for testing.");
}

static void tool_image(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:s, s:s}]}", "content", "type", "image", "data",
					png_b64, "mimeType", "image/png"));
}

static void tool_audio(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:s, s:s}]}", "content", "type", "audio", "data",
					fx.wav_b64, "mimeType", "audio/wav"));
}

static void tool_embedded_resource(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:{s:s, s:s, s:s}}]}", "content", "type",
					"resource", "resource", "uri", "test://embedded-resource",
					"mimeType", "text/plain", "text",
					"This is an embedded resource content."));
}

static void tool_mixed(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_call_result(
	    c, json_pack("{s:[o, {s:s, s:s, s:s}, {s:s, s:{s:s, s:s, s:s}}]}", "content",
			 text_block("Multiple content types test:"), "type", "image", "data",
			 png_b64, "mimeType", "image/png", "type", "resource", "resource", "uri",
			 "test://mixed-content-resource", "mimeType", "application/json", "text",
			 "{\"test\":\"data\",\"value\":123}"));
}

static void tool_error(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_call_result(
	    c, json_pack("{s:b, s:[o]}", "isError", 1, "content",
			 text_block("This tool intentionally returns an error for testing")));
}

/* Echoes its `region` argument, which the schema mirrors into the
 * Mcp-Param-Region header (x-mcp-header): the server-side header checks
 * run against it. */
static void tool_header_echo(al_mcp_call *c, json_t *args, void *ud)
{
	const char *region = json_string_value(json_object_get(args, "region"));
	answer_text(c, "region: %s", region ? region : "(none)");
}

static void tool_json_schema(al_mcp_call *c, json_t *args, void *ud)
{
	char *s = dump(args);
	answer_text(c, "arguments: %s", s);
	al_free(s);
}

/* ---- timed tools: progress and log messages with small delays ---- */

/*
 * A handler that answers over several loop turns. `step` runs at once and
 * then every 50 ms until it returns 1 (done: it answered). If the caller
 * goes away first the timer stops and the call is never touched again.
 */
struct timed {
	uv_timer_t timer;
	al_mcp_call *c; /* NULL once answered or cancelled */
	int n;
	int stalled; /* a send failed: wait for the cancel, tick no more */
	int (*step)(struct timed *t);
};

static void timed_closed_cb(uv_handle_t *h)
{
	al_free(h->data);
}

static void timed_end(struct timed *t)
{
	t->c = NULL;
	uv_timer_stop(&t->timer);
	uv_close((uv_handle_t *)&t->timer, timed_closed_cb);
}

static void timed_tick_cb(uv_timer_t *h)
{
	struct timed *t = h->data;
	/* A step returns 0 when the caller went away during it: the transport
	 * may cancel the call from inside a send, and the cancel callback has
	 * then ended this already. */
	if (t->c && t->step(t))
		timed_end(t);
	else if (t->c && t->stalled)
		uv_timer_stop(&t->timer);
}

static void timed_cancel_cb(al_mcp_call *c, void *ud)
{
	timed_end(ud);
}

static void timed_start(al_mcp_call *c, int (*step)(struct timed *t))
{
	struct timed *t = al_calloc(1, sizeof *t);
	if (!t) {
		al_mcp_call_errorf(c, -32603, "out of memory");
		return;
	}
	t->c = c;
	t->step = step;
	uv_timer_init(fx.loop, &t->timer);
	t->timer.data = t;
	/* Before the first step: a send in it may already find the caller gone. */
	al_mcp_call_on_cancel(c, timed_cancel_cb, t);
	if (step(t)) {
		timed_end(t);
		return;
	}
	if (t->c && !t->stalled)
		uv_timer_start(&t->timer, timed_tick_cb, 50, 50);
}

static int progress_step(struct timed *t)
{
	double p = 50.0 * t->n++;
	/* -EPIPE: the caller is gone; the transport cancels the call, whose
	 * cancel callback ends this one. */
	if (al_mcp_call_progress(t->c, p, 100, NULL) < 0 || !t->c) {
		t->stalled = 1;
		return 0;
	}
	if (p < 100)
		return 0;
	answer_text(t->c, "Progress tool completed (3 notifications sent when a token was given).");
	return 1;
}

static void tool_progress(al_mcp_call *c, json_t *args, void *ud)
{
	timed_start(c, progress_step);
}

static int logging_step(struct timed *t)
{
	static const char *const msgs[] = {"Tool execution started", "Tool processing data",
					   "Tool execution completed"};
	if (al_mcp_call_log(t->c, AL_MCP_LOG_INFO, "fixture", json_string(msgs[t->n])) < 0 ||
	    !t->c) {
		t->stalled = 1;
		return 0;
	}
	if (++t->n < 3)
		return 0;
	answer_text(t->c, "Logging tool completed.");
	return 1;
}

static void tool_with_logging(al_mcp_call *c, json_t *args, void *ud)
{
	timed_start(c, logging_step);
}

/* 2026-07-28 server-stateless: a log message at info that the dispatcher
 * must drop unless the request's _meta set a logLevel. */
static void tool_logging_once(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_call_log(c, AL_MCP_LOG_INFO, "fixture", json_string("test_logging_tool ran"));
	answer_text(c, "Logged one message at info (sent only when logLevel allows it).");
}

/* ---- asking the client one question, in either era ---- */

/*
 * One question to the client: in 2025-11-25 a request on the call's own
 * stream (al_mcp_call_request); in 2026-07-28 the "answer" key of an
 * input_required result, retried by the client with inputResponses. Both
 * end in `done` with the client's result (or an error).
 */
typedef void (*answered_fn)(al_mcp_call *c, json_t *result);

static void ask_reply_cb(al_mcp_call *c, json_t *result, const al_mcp_error *err, void *ud)
{
	answered_fn done = (answered_fn)ud;
	if (!result && !err)
		return; /* cancelled: the call is gone */
	if (err) {
		al_mcp_call_errorf(c, err->code, "the client refused: %s", err->message);
		return;
	}
	done(c, result);
}

static void ask(al_mcp_call *c, const char *method, json_t *params, answered_fn done)
{
	if (al_mcp_call_legacy(c)) {
		int rc = al_mcp_call_request(c, method, params, ask_reply_cb, (void *)done);
		if (rc < 0)
			al_mcp_call_errorf(c, -32603, "could not ask the client: %s",
					   strerror(-rc));
		return;
	}
	json_t *responses = al_mcp_call_input_responses(c);
	json_t *answer = responses ? json_object_get(responses, "answer") : NULL;
	if (json_is_object(answer)) {
		json_decref(params);
		done(c, answer);
		return;
	}
	al_mcp_call_input_required(
	    c, json_pack("{s:{s:s, s:o}}", "answer", "method", method, "params", params), NULL);
}

static void sampled(al_mcp_call *c, json_t *r)
{
	const char *text =
	    json_string_value(json_object_get(json_object_get(r, "content"), "text"));
	answer_text(c, "LLM response: %s", text ? text : "(no text)");
}

static void tool_sampling(al_mcp_call *c, json_t *args, void *ud)
{
	const char *prompt = json_string_value(json_object_get(args, "prompt"));
	if (!prompt) {
		al_mcp_call_errorf(c, -32602, "argument 'prompt' (string) is required");
		return;
	}
	ask(c, "sampling/createMessage",
	    json_pack("{s:[{s:s, s:{s:s, s:s}}], s:i}", "messages", "role", "user", "content",
		      "type", "text", "text", prompt, "maxTokens", 100),
	    sampled);
}

static void elicited(al_mcp_call *c, json_t *r)
{
	const char *action = json_string_value(json_object_get(r, "action"));
	char *content = dump(json_object_get(r, "content"));
	answer_text(c, "User response: action=%s, content=%s", action ? action : "?", content);
	al_free(content);
}

static void elicited_completed(al_mcp_call *c, json_t *r)
{
	const char *action = json_string_value(json_object_get(r, "action"));
	char *content = dump(json_object_get(r, "content"));
	answer_text(c, "Elicitation completed: action=%s, content=%s", action ? action : "?",
		    content);
	al_free(content);
}

static void tool_elicitation(al_mcp_call *c, json_t *args, void *ud)
{
	const char *message = json_string_value(json_object_get(args, "message"));
	if (!message) {
		al_mcp_call_errorf(c, -32602, "argument 'message' (string) is required");
		return;
	}
	ask(c, "elicitation/create",
	    json_pack("{s:s, s:{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:[s,s]}}", "message", message,
		      "requestedSchema", "type", "object", "properties", "username", "type",
		      "string", "description", "User's response", "email", "type", "string",
		      "description", "User's email address", "required", "username", "email"),
	    elicited);
}

/* SEP-1034: a default for every primitive type. */
static void tool_elicitation_defaults(al_mcp_call *c, json_t *args, void *ud)
{
	json_t *props = json_pack(
	    "{s:{s:s, s:s}, s:{s:s, s:i}, s:{s:s, s:f}, s:{s:s, s:[s,s,s], s:s}, s:{s:s, s:b}}",
	    "name", "type", "string", "default", "John Doe", "age", "type", "integer", "default",
	    30, "score", "type", "number", "default", 95.5, "status", "type", "string", "enum",
	    "active", "inactive", "pending", "default", "active", "verified", "type", "boolean",
	    "default", 1);
	ask(c, "elicitation/create",
	    json_pack("{s:s, s:{s:s, s:o}}", "message", "Please review your profile",
		      "requestedSchema", "type", "object", "properties", props),
	    elicited_completed);
}

/* SEP-1330: the five enum shapes. */
static void tool_elicitation_enums(al_mcp_call *c, json_t *args, void *ud)
{
	json_t *props = json_object();
	json_object_set_new(props, "untitledSingle",
			    json_pack("{s:s, s:[s,s,s]}", "type", "string", "enum", "option1",
				      "option2", "option3"));
	json_object_set_new(props, "titledSingle",
			    json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}", "type",
				      "string", "oneOf", "const", "value1", "title", "First Option",
				      "const", "value2", "title", "Second Option", "const",
				      "value3", "title", "Third Option"));
	json_object_set_new(props, "legacyEnum",
			    json_pack("{s:s, s:[s,s,s], s:[s,s,s]}", "type", "string", "enum",
				      "opt1", "opt2", "opt3", "enumNames", "Option One",
				      "Option Two", "Option Three"));
	json_object_set_new(props, "untitledMulti",
			    json_pack("{s:s, s:{s:s, s:[s,s,s]}}", "type", "array", "items", "type",
				      "string", "enum", "option1", "option2", "option3"));
	json_object_set_new(props, "titledMulti",
			    json_pack("{s:s, s:{s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}}", "type",
				      "array", "items", "anyOf", "const", "value1", "title",
				      "First Choice", "const", "value2", "title", "Second Choice",
				      "const", "value3", "title", "Third Choice"));
	ask(c, "elicitation/create",
	    json_pack("{s:s, s:{s:s, s:o}}", "message", "Pick your options", "requestedSchema",
		      "type", "object", "properties", props),
	    elicited_completed);
}

/* ---- 2026-07-28 server-stateless diagnostics ---- */

/* Registered with required_capabilities {"sampling": {}}: the dispatcher
 * answers -32021 before this runs when the client did not declare it. */
static void tool_missing_capability(al_mcp_call *c, json_t *args, void *ud)
{
	answer_text(c, "sampling capability was declared");
}

/*
 * The response to this call may carry notifications and an input_required
 * result, never a request of its own (requests to the client travel inside
 * the result in 2026-07-28). A progress notification first when the
 * request has a token.
 */
static void tool_streaming_elicitation(al_mcp_call *c, json_t *args, void *ud)
{
	json_t *responses = al_mcp_call_input_responses(c);
	json_t *answer = responses ? json_object_get(responses, "confirm") : NULL;
	if (json_is_object(answer)) {
		elicited(c, answer);
		return;
	}
	al_mcp_call_progress(c, 0, 1, "asking the client");
	al_mcp_call_input_required(
	    c,
	    json_pack("{s:{s:s, s:{s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}}}", "confirm", "method",
		      "elicitation/create", "params", "message", "Continue?", "requestedSchema",
		      "type", "object", "properties", "ok", "type", "boolean", "required", "ok"),
	    NULL);
}

static void tool_dynamic(al_mcp_call *c, json_t *args, void *ud)
{
	answer_text(c, "dynamic tool");
}

static void prompt_dynamic(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:o}]}", "messages", "role", "user", "content",
					text_block("dynamic prompt")));
}

/* Adds test_dynamic_tool, or removes it if present: either way the tool
 * list changes and open listen streams hear of it. */
static void tool_trigger_tool_change(al_mcp_call *c, json_t *args, void *ud)
{
	int rc = 0;
	if (fx.dynamic_tool) {
		rc = al_mcp_server_remove_tool(fx.srv, "test_dynamic_tool");
		fx.dynamic_tool = 0;
	} else {
		json_t *schema = json_pack("{s:s}", "type", "object");
		struct al_mcp_tool t = {.name = "test_dynamic_tool",
					.description = "Appears and disappears with "
						       "test_trigger_tool_change",
					.input_schema = schema,
					.fn = tool_dynamic};
		rc = al_mcp_server_add_tool(fx.srv, &t);
		json_decref(schema);
		if (rc == 0) {
			fx.dynamic_tool = 1;
			al_mcp_server_list_changed(fx.srv, "tools");
		}
	}
	if (rc < 0)
		al_mcp_call_errorf(c, -32603, "tool list change failed: %s", strerror(-rc));
	else
		answer_text(c, "tool list changed");
}

static void tool_trigger_prompt_change(al_mcp_call *c, json_t *args, void *ud)
{
	int rc = 0;
	if (fx.dynamic_prompt) {
		rc = al_mcp_server_remove_prompt(fx.srv, "test_dynamic_prompt");
		fx.dynamic_prompt = 0;
	} else {
		struct al_mcp_prompt p = {.name = "test_dynamic_prompt",
					  .description = "Appears and disappears with "
							 "test_trigger_prompt_change",
					  .fn = prompt_dynamic};
		rc = al_mcp_server_add_prompt(fx.srv, &p);
		if (rc == 0) {
			fx.dynamic_prompt = 1;
			al_mcp_server_list_changed(fx.srv, "prompts");
		}
	}
	if (rc < 0)
		al_mcp_call_errorf(c, -32603, "prompt list change failed: %s", strerror(-rc));
	else
		answer_text(c, "prompt list changed");
}

/* ---- multi round-trip (2026-07-28, SEP-2322) ---- */

static json_t *elicit_req(const char *message, const char *field, const char *type)
{
	return json_pack("{s:s, s:{s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}}", "method",
			 "elicitation/create", "params", "message", message, "requestedSchema",
			 "type", "object", "properties", field, "type", type, "required", field);
}

static json_t *sampling_req(const char *text, int max_tokens)
{
	return json_pack("{s:s, s:{s:[{s:s, s:{s:s, s:s}}], s:i}}", "method",
			 "sampling/createMessage", "params", "messages", "role", "user", "content",
			 "type", "text", "text", text, "maxTokens", max_tokens);
}

static json_t *roots_req(void)
{
	return json_pack("{s:s, s:{}}", "method", "roots/list", "params");
}

/*
 * The content (borrowed) of an elicitation response under `key`, or NULL
 * when it is missing or has no content; *bad is set when the key is there
 * but is not an ElicitResult ({action, content?}): a protocol error.
 */
static json_t *accepted(json_t *responses, const char *key, int *bad)
{
	json_t *r = responses ? json_object_get(responses, key) : NULL;
	if (!r)
		return NULL;
	if (!json_is_object(r) || !json_is_string(json_object_get(r, "action"))) {
		*bad = 1;
		return NULL;
	}
	json_t *content = json_object_get(r, "content");
	return json_is_object(content) ? content : NULL;
}

/*
 * params.inputResponses present but not an object (null, a number): a
 * malformed retry, refused with -32602. Returns 1 when it answered.
 */
static int refuse_bad_responses(al_mcp_call *c)
{
	json_t *raw = json_object_get(al_mcp_call_params(c), "inputResponses");
	if (raw && !json_is_object(raw)) {
		al_mcp_call_errorf(c, -32602, "inputResponses must be an object");
		return 1;
	}
	return 0;
}

static void mrtr_elicitation(al_mcp_call *c, json_t *args, void *ud)
{
	int bad = 0;
	if (refuse_bad_responses(c))
		return;
	json_t *content = accepted(al_mcp_call_input_responses(c), "user_name", &bad);
	const char *name = json_string_value(json_object_get(content, "name"));
	if (bad) {
		al_mcp_call_errorf(c, -32602, "inputResponses.user_name is not an ElicitResult");
	} else if (name) {
		answer_text(c, "Hello, %s!", name);
	} else {
		/* First round, or a retry without (a usable) user_name: ask again. */
		al_mcp_call_input_required(
		    c,
		    json_pack("{s:o}", "user_name",
			      elicit_req("What is your name?", "name", "string")),
		    NULL);
	}
}

static void mrtr_sampling(al_mcp_call *c, json_t *args, void *ud)
{
	if (refuse_bad_responses(c))
		return;
	json_t *responses = al_mcp_call_input_responses(c);
	json_t *r = responses ? json_object_get(responses, "capital_question") : NULL;
	const char *text =
	    json_string_value(json_object_get(json_object_get(r, "content"), "text"));
	if (text) {
		answer_text(c, "The model said: %s", text);
		return;
	}
	al_mcp_call_input_required(c,
				   json_pack("{s:o}", "capital_question",
					     sampling_req("What is the capital of France?", 100)),
				   NULL);
}

static void mrtr_list_roots(al_mcp_call *c, json_t *args, void *ud)
{
	if (refuse_bad_responses(c))
		return;
	json_t *responses = al_mcp_call_input_responses(c);
	json_t *roots = json_object_get(json_object_get(responses, "client_roots"), "roots");
	if (json_is_array(roots)) {
		char *s = dump(roots);
		answer_text(c, "The client has %zu root(s): %s", json_array_size(roots), s);
		al_free(s);
		return;
	}
	al_mcp_call_input_required(c, json_pack("{s:o}", "client_roots", roots_req()), NULL);
}

/* Round 2 must bring back the sealed state of round 1; the library has
 * opened and checked it (a forged one never reaches here). */
static void mrtr_request_state(al_mcp_call *c, json_t *args, void *ud)
{
	int bad = 0;
	if (refuse_bad_responses(c))
		return;
	json_t *state = al_mcp_call_state(c);
	json_t *content = accepted(al_mcp_call_input_responses(c), "confirm", &bad);
	const char *tool = json_string_value(json_object_get(state, "tool"));
	if (bad) {
		al_mcp_call_errorf(c, -32602, "inputResponses.confirm is not an ElicitResult");
	} else if (content && tool && strcmp(tool, "request_state") == 0) {
		char *s = dump(content);
		answer_text(c, "state-ok: round %lld confirmed with %s",
			    (long long)json_integer_value(json_object_get(state, "round")), s);
		al_free(s);
	} else {
		al_mcp_call_input_required(
		    c, json_pack("{s:o}", "confirm", elicit_req("Please confirm", "ok", "boolean")),
		    json_pack("{s:s, s:i}", "tool", "request_state", "round", 1));
	}
}

static void mrtr_multiple_inputs(al_mcp_call *c, json_t *args, void *ud)
{
	if (refuse_bad_responses(c))
		return;
	json_t *responses = al_mcp_call_input_responses(c);
	json_t *want = json_pack(
	    "{s:o, s:o, s:o}", "user_name", elicit_req("What is your name?", "name", "string"),
	    "greeting", sampling_req("Generate a greeting", 50), "client_roots", roots_req());
	/* Ask again for whatever is still missing; complete when all is there. */
	const char *key;
	json_t *v, *tmp;
	json_object_foreach_safe(want, tmp, key, v)
	{
		if (responses && json_is_object(json_object_get(responses, key)))
			json_object_del(want, key);
	}
	if (json_object_size(want) == 0 && al_mcp_call_state(c)) {
		json_decref(want);
		answer_text(c, "All three inputs received (elicitation, sampling, roots).");
		return;
	}
	if (json_object_size(want) == 0) { /* answers without the state: start over */
		json_decref(want);
		want =
		    json_pack("{s:o, s:o, s:o}", "user_name",
			      elicit_req("What is your name?", "name", "string"), "greeting",
			      sampling_req("Generate a greeting", 50), "client_roots", roots_req());
	}
	al_mcp_call_input_required(c, want, json_pack("{s:s}", "tool", "multiple_inputs"));
}

static void mrtr_multi_round(al_mcp_call *c, json_t *args, void *ud)
{
	int bad = 0;
	if (refuse_bad_responses(c))
		return;
	json_t *responses = al_mcp_call_input_responses(c);
	json_t *state = al_mcp_call_state(c);
	json_int_t round = json_integer_value(json_object_get(state, "round"));
	if (round == 2) {
		json_t *content = accepted(responses, "step2", &bad);
		const char *color = json_string_value(json_object_get(content, "color"));
		const char *name = json_string_value(json_object_get(state, "name"));
		if (color && name) {
			answer_text(c, "%s's favorite color is %s.", name, color);
			return;
		}
	} else if (round == 1) {
		json_t *content = accepted(responses, "step1", &bad);
		const char *name = json_string_value(json_object_get(content, "name"));
		if (name) {
			al_mcp_call_input_required(
			    c,
			    json_pack("{s:o}", "step2",
				      elicit_req("Step 2: What is your favorite color?", "color",
						 "string")),
			    json_pack("{s:i, s:s}", "round", 2, "name", name));
			return;
		}
	}
	if (bad) {
		al_mcp_call_errorf(c, -32602, "malformed inputResponses");
		return;
	}
	al_mcp_call_input_required(
	    c,
	    json_pack("{s:o}", "step1", elicit_req("Step 1: What is your name?", "name", "string")),
	    json_pack("{s:i}", "round", 1));
}

/* Only asks for what the client declared it can answer. */
static void mrtr_capabilities(al_mcp_call *c, json_t *args, void *ud)
{
	json_t *caps = al_mcp_call_client_capabilities(c);
	json_t *responses = al_mcp_call_input_responses(c);
	if (refuse_bad_responses(c))
		return;
	if (responses && json_object_size(responses) > 0) {
		answer_text(c, "Received %zu input response(s).", json_object_size(responses));
		return;
	}
	json_t *want = json_object();
	if (json_object_get(caps, "sampling"))
		json_object_set_new(want, "capital_question",
				    sampling_req("What is the capital of France?", 100));
	if (json_object_get(caps, "elicitation"))
		json_object_set_new(want, "user_name",
				    elicit_req("What is your name?", "name", "string"));
	if (json_object_get(caps, "roots"))
		json_object_set_new(want, "client_roots", roots_req());
	if (json_object_size(want) == 0) {
		al_mcp_error err = {0};
		json_decref(want);
		al_mcp_error_set(&err, -32021, 400,
				 json_pack("{s:{s:{}}}", "requiredCapabilities", "sampling"),
				 "this tool needs sampling, elicitation or roots");
		al_mcp_call_error(c, &err);
		al_mcp_error_clear(&err);
		return;
	}
	al_mcp_call_input_required(c, want, NULL);
}

static void prompt_mrtr(al_mcp_call *c, json_t *args, void *ud)
{
	int bad = 0;
	if (refuse_bad_responses(c))
		return;
	json_t *content = accepted(al_mcp_call_input_responses(c), "user_context", &bad);
	const char *context = json_string_value(json_object_get(content, "context"));
	if (bad) {
		al_mcp_call_errorf(c, -32602, "inputResponses.user_context is not an ElicitResult");
	} else if (context) {
		char buf[512];
		snprintf(buf, sizeof buf, "Answer with this context in mind: %s", context);
		al_mcp_call_result(c, json_pack("{s:s, s:[{s:s, s:o}]}", "description",
						"A prompt built from elicited context", "messages",
						"role", "user", "content", text_block(buf)));
	} else {
		al_mcp_call_input_required(
		    c,
		    json_pack(
			"{s:o}", "user_context",
			elicit_req("What context should the prompt use?", "context", "string")),
		    NULL);
	}
}

/* ---- resources ---- */

static void res_text(al_mcp_call *c, const char *uri, const char *mime, const char *text)
{
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType",
					mime, "text", text));
}

static void res_static_text(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	res_text(c, uri, "text/plain", "This is the content of the static text resource.");
}

static void res_static_binary(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType",
					"image/png", "blob", png_b64));
}

static void res_watched(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	res_text(c, uri, "text/plain", "A resource clients may subscribe to.");
}

static void res_example(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	res_text(c, uri, "text/plain", "Embedded resource content for testing.");
}

static void res_template(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	const char *id = json_string_value(json_object_get(vars, "id"));
	json_t *doc = json_pack("{s:s, s:b, s:s+}", "id", id ? id : "", "templateTest", 1, "data",
				"Data for ID: ", id ? id : "");
	char *text = dump(doc);
	json_decref(doc);
	res_text(c, uri, "application/json", text);
	al_free(text);
}

/* Candidates for completion/complete: those starting with `value`. */
static json_t *complete_from(const char *const *words, const char *value)
{
	json_t *out = json_array();
	size_t n = value ? strlen(value) : 0;
	for (size_t i = 0; words[i]; i++)
		if (strncmp(words[i], value ? value : "", n) == 0)
			json_array_append_new(out, json_string(words[i]));
	return out;
}

static json_t *complete_template(const char *argument, const char *value, json_t *context, void *ud)
{
	static const char *const ids[] = {"1", "12", "123", "1234", NULL};
	return strcmp(argument, "id") == 0 ? complete_from(ids, value) : NULL;
}

/* ---- prompts ---- */

static void prompt_simple(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:o}]}", "messages", "role", "user", "content",
					text_block("This is a simple prompt for testing.")));
}

static void prompt_args(al_mcp_call *c, json_t *args, void *ud)
{
	const char *a1 = json_string_value(json_object_get(args, "arg1"));
	const char *a2 = json_string_value(json_object_get(args, "arg2"));
	char buf[1024];
	if (!a1 || !a2) {
		al_mcp_call_errorf(c, -32602, "arguments arg1 and arg2 (strings) are required");
		return;
	}
	snprintf(buf, sizeof buf, "Prompt with arguments: arg1='%s', arg2='%s'", a1, a2);
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:o}]}", "messages", "role", "user", "content",
					text_block(buf)));
}

static json_t *complete_args(const char *argument, const char *value, json_t *context, void *ud)
{
	static const char *const words[] = {"paris",	  "park",	"party", "test",
					    "testValue1", "testValue2", NULL};
	return complete_from(words, value);
}

static void prompt_embedded(al_mcp_call *c, json_t *args, void *ud)
{
	const char *uri = json_string_value(json_object_get(args, "resourceUri"));
	if (!uri) {
		al_mcp_call_errorf(c, -32602, "argument resourceUri (string) is required");
		return;
	}
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:{s:s, s:{s:s, s:s, s:s}}}, {s:s, s:o}]}",
					"messages", "role", "user", "content", "type", "resource",
					"resource", "uri", uri, "mimeType", "text/plain", "text",
					"Embedded resource content for testing.", "role", "user",
					"content",
					text_block("Please process the embedded resource above.")));
}

static void prompt_image(al_mcp_call *c, json_t *args, void *ud)
{
	al_mcp_call_result(c, json_pack("{s:[{s:s, s:{s:s, s:s, s:s}}, {s:s, s:o}]}", "messages",
					"role", "user", "content", "type", "image", "data", png_b64,
					"mimeType", "image/png", "role", "user", "content",
					text_block("Please analyze the image above.")));
}

/* ---- registration ---- */

static const char *json_schema_2020_12 =
    "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"type\": \"object\","
    " \"$defs\": {\"address\": {\"$anchor\": \"addressDef\", \"type\": \"object\","
    " \"properties\": {\"street\": {\"type\": \"string\"}, \"city\": {\"type\": \"string\"}}}},"
    " \"properties\": {\"name\": {\"type\": \"string\"},"
    " \"address\": {\"$ref\": \"#/$defs/address\"},"
    " \"contactMethod\": {\"type\": \"string\", \"enum\": [\"phone\", \"email\"]},"
    " \"phone\": {\"type\": \"string\"}, \"email\": {\"type\": \"string\"}},"
    " \"allOf\": [{\"anyOf\": [{\"required\": [\"phone\"]}, {\"required\": [\"email\"]}]}],"
    " \"if\": {\"properties\": {\"contactMethod\": {\"const\": \"phone\"}},"
    " \"required\": [\"contactMethod\"]},"
    " \"then\": {\"required\": [\"phone\"]}, \"else\": {\"required\": [\"email\"]},"
    " \"additionalProperties\": false}";

struct tool_def {
	const char *name, *description, *schema, *caps;
	al_mcp_tool_fn fn;
};

#define NOARGS "{\"type\": \"object\", \"properties\": {}}"

/* Registration order is list order; the first tool takes {} (the header
 * scenarios call tools[0] with no arguments). */
static const struct tool_def tools[] = {
    {"test_simple_text", "Returns a simple text response", NOARGS, NULL, tool_simple_text},
    {"test_image_content", "Returns an image (1x1 PNG)", NOARGS, NULL, tool_image},
    {"test_audio_content", "Returns audio (a short WAV)", NOARGS, NULL, tool_audio},
    {"test_embedded_resource", "Returns an embedded text resource", NOARGS, NULL,
     tool_embedded_resource},
    {"test_multiple_content_types", "Returns text, an image and a resource", NOARGS, NULL,
     tool_mixed},
    {"test_error_handling", "Returns a tool error (isError: true)", NOARGS, NULL, tool_error},
    {"test_tool_with_progress", "Sends progress 0, 50, 100 of 100, 50 ms apart", NOARGS, NULL,
     tool_progress},
    {"test_tool_with_logging", "Sends three info log messages, 50 ms apart", NOARGS, NULL,
     tool_with_logging},
    {"test_sampling", "Asks the client to sample an LLM",
     "{\"type\": \"object\", \"properties\": {\"prompt\": {\"type\": \"string\","
     " \"description\": \"The prompt to send to the LLM\"}}, \"required\": [\"prompt\"]}",
     NULL, tool_sampling},
    {"test_elicitation", "Asks the user for a username and an email",
     "{\"type\": \"object\", \"properties\": {\"message\": {\"type\": \"string\","
     " \"description\": \"The message to show the user\"}}, \"required\": [\"message\"]}",
     NULL, tool_elicitation},
    {"test_elicitation_sep1034_defaults", "Elicitation with a default for each primitive type",
     NOARGS, NULL, tool_elicitation_defaults},
    {"test_elicitation_sep1330_enums", "Elicitation with the five enum schema variants", NOARGS,
     NULL, tool_elicitation_enums},
    {"test_missing_capability", "Needs the client's sampling capability", NOARGS,
     "{\"sampling\": {}}", tool_missing_capability},
    {"test_streaming_elicitation", "Answers with an input_required result, never a request", NOARGS,
     NULL, tool_streaming_elicitation},
    {"test_logging_tool", "Logs at info, which is dropped unless logLevel asks for it", NOARGS,
     NULL, tool_logging_once},
    {"test_trigger_tool_change", "Adds or removes test_dynamic_tool", NOARGS, NULL,
     tool_trigger_tool_change},
    {"test_trigger_prompt_change", "Adds or removes test_dynamic_prompt", NOARGS, NULL,
     tool_trigger_prompt_change},
    {"test_input_required_result_elicitation", "MRTR: asks for a name by elicitation", NOARGS, NULL,
     mrtr_elicitation},
    {"test_input_required_result_sampling", "MRTR: asks the client to sample", NOARGS, NULL,
     mrtr_sampling},
    {"test_input_required_result_list_roots", "MRTR: asks for the client's roots", NOARGS, NULL,
     mrtr_list_roots},
    {"test_input_required_result_request_state", "MRTR: round trip with a sealed requestState",
     NOARGS, NULL, mrtr_request_state},
    {"test_input_required_result_multiple_inputs",
     "MRTR: elicitation, sampling and roots in one round", NOARGS, NULL, mrtr_multiple_inputs},
    {"test_input_required_result_multi_round", "MRTR: two rounds of elicitation", NOARGS, NULL,
     mrtr_multi_round},
    {"test_input_required_result_tampered_state", "MRTR: a tampered requestState is refused",
     NOARGS, NULL, mrtr_request_state},
    {"test_input_required_result_capabilities", "MRTR: asks only what the client declared", NOARGS,
     NULL, mrtr_capabilities},
    {"json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", NULL, NULL,
     tool_json_schema},
    {"test_header_echo", "Echoes region, mirrored into the Mcp-Param-Region header",
     "{\"type\": \"object\", \"properties\": {\"region\": {\"type\": \"string\","
     " \"x-mcp-header\": \"Region\"}}, \"required\": [\"region\"]}",
     NULL, tool_header_echo},
};

static int add_tools(char *err, size_t errlen)
{
	int rc = 0;
	for (size_t i = 0; i < sizeof tools / sizeof tools[0] && rc == 0; i++) {
		const struct tool_def *d = &tools[i];
		json_error_t jerr;
		const char *text = d->schema ? d->schema : json_schema_2020_12;
		json_t *schema = json_loads(text, 0, &jerr);
		json_t *caps = d->caps ? json_loads(d->caps, 0, &jerr) : NULL;
		struct al_mcp_tool t = {.name = d->name,
					.description = d->description,
					.input_schema = schema,
					.required_capabilities = caps,
					.fn = d->fn};
		rc = schema && (caps || !d->caps) ? al_mcp_server_add_tool(fx.srv, &t) : -EINVAL;
		if (rc < 0)
			snprintf(err, errlen, "tool %s: %s", d->name, strerror(-rc));
		json_decref(schema);
		json_decref(caps);
	}
	return rc;
}

static int add_resources(char *err, size_t errlen)
{
	const struct al_mcp_resource rs[] = {
	    {.uri = "test://static-text",
	     .name = "static-text",
	     .description = "A static text resource",
	     .mime_type = "text/plain",
	     .fn = res_static_text},
	    {.uri = "test://static-binary",
	     .name = "static-binary",
	     .description = "A static binary resource (1x1 PNG)",
	     .mime_type = "image/png",
	     .fn = res_static_binary},
	    {.uri = "test://watched-resource",
	     .name = "watched-resource",
	     .description = "A resource to subscribe to",
	     .mime_type = "text/plain",
	     .fn = res_watched},
	    {.uri = "test://example-resource",
	     .name = "example-resource",
	     .description = "A resource a prompt embeds",
	     .mime_type = "text/plain",
	     .fn = res_example},
	};
	const struct al_mcp_resource_template tpl = {.uri_template = "test://template/{id}/data",
						     .name = "template-data",
						     .description =
							 "Data for an id, from a template",
						     .mime_type = "application/json",
						     .fn = res_template,
						     .complete = complete_template};
	int rc = 0;
	for (size_t i = 0; i < sizeof rs / sizeof rs[0] && rc == 0; i++)
		if ((rc = al_mcp_server_add_resource(fx.srv, &rs[i])) < 0)
			snprintf(err, errlen, "resource %s: %s", rs[i].uri, strerror(-rc));
	if (rc == 0 && (rc = al_mcp_server_add_template(fx.srv, &tpl)) < 0)
		snprintf(err, errlen, "template: %s", strerror(-rc));
	return rc;
}

static int add_prompts(char *err, size_t errlen)
{
	json_t *args12 = json_pack("[{s:s, s:s, s:b}, {s:s, s:s, s:b}]", "name", "arg1",
				   "description", "First test argument", "required", 1, "name",
				   "arg2", "description", "Second test argument", "required", 1);
	json_t *args_uri = json_pack("[{s:s, s:s, s:b}]", "name", "resourceUri", "description",
				     "URI of the resource to embed", "required", 1);
	const struct al_mcp_prompt ps[] = {
	    {.name = "test_simple_prompt",
	     .description = "A simple prompt without arguments",
	     .fn = prompt_simple},
	    {.name = "test_prompt_with_arguments",
	     .description = "A prompt with two required arguments",
	     .arguments = args12,
	     .fn = prompt_args,
	     .complete = complete_args},
	    {.name = "test_prompt_with_embedded_resource",
	     .description = "A prompt that embeds a resource",
	     .arguments = args_uri,
	     .fn = prompt_embedded},
	    {.name = "test_prompt_with_image",
	     .description = "A prompt with an image",
	     .fn = prompt_image},
	    {.name = "test_input_required_result_prompt",
	     .description = "MRTR: a prompt that elicits its context first",
	     .fn = prompt_mrtr},
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof ps / sizeof ps[0] && rc == 0; i++)
		if ((rc = al_mcp_server_add_prompt(fx.srv, &ps[i])) < 0)
			snprintf(err, errlen, "prompt %s: %s", ps[i].name, strerror(-rc));
	json_decref(args12);
	json_decref(args_uri);
	return rc;
}

/* ---- process ---- */

static void stop_cb(uv_signal_t *h, int signum)
{
	/* Cancels calls in flight (their timers close), then closes the
	 * listener; the loop ends when the last handle is closed. */
	al_mcp_http_free(fx.http);
	fx.http = NULL;
	al_http_server_free(fx.hs);
	fx.hs = NULL;
	uv_close((uv_handle_t *)&fx.sigterm, NULL);
	uv_close((uv_handle_t *)&fx.sigint, NULL);
}

static int parse_port(const char *s, int *port)
{
	char *end = NULL;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0, rc = 1;
	char err[256] = "";
	al_alloc_init();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
			host = argv[++i];
		} else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc &&
			   parse_port(argv[i + 1], &port) == 0) {
			i++;
		} else {
			fprintf(stderr,
				"usage: %s [--host ADDR] [--port N]\n"
				"TEST FIXTURE: the MCP server the conformance suite runs against\n",
				argv[0]);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	fx.loop = uv_default_loop();
	fx.wav_b64 = make_wav_b64();
	struct al_mcp_server_opts so = {.name = "airlock-conformance-fixture",
					.version = AL_VERSION,
					.title = "airlock conformance fixture (test only)",
					.instructions =
					    "A test fixture for the MCP conformance suite."};
	fx.srv = fx.wav_b64 ? al_mcp_server_new(&so) : NULL;
	if (!fx.srv) {
		snprintf(err, sizeof err, "out of memory");
		goto done;
	}
	if (add_tools(err, sizeof err) < 0 || add_resources(err, sizeof err) < 0 ||
	    add_prompts(err, sizeof err) < 0)
		goto done;
	fx.http = al_mcp_http_new(fx.srv, NULL);
	if (!fx.http) {
		snprintf(err, sizeof err, "out of memory");
		goto done;
	}
	struct al_http_server_opts ho = {.host = host, .port = port};
	if (al_mcp_http_listen(fx.http, fx.loop, &ho, "/mcp", &fx.hs, err, sizeof err) < 0)
		goto done;
	uv_signal_init(fx.loop, &fx.sigterm);
	uv_signal_init(fx.loop, &fx.sigint);
	uv_signal_start(&fx.sigterm, stop_cb, SIGTERM);
	uv_signal_start(&fx.sigint, stop_cb, SIGINT);
	printf("%d\n", al_http_server_port(fx.hs));
	fflush(stdout);
	uv_run(fx.loop, UV_RUN_DEFAULT);
	rc = 0;
done:
	if (rc != 0)
		fprintf(stderr, "mcp-fixture: %s\n", err);
	al_mcp_http_free(fx.http);
	al_http_server_free(fx.hs);
	if (fx.hs || fx.http)
		uv_run(fx.loop, UV_RUN_DEFAULT);
	al_mcp_server_free(fx.srv);
	al_free(fx.wav_b64);
	uv_loop_close(fx.loop);
	return rc;
}
