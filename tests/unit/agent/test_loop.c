/*
 * test_loop.c - the agent loop over a real store (SQLite in the scratch
 * directory) and the real bus.
 *
 * The model is a TEST DOUBLE: `script`, a scripted al_provider written
 * here, answers each call with the next canned Messages API response (or a
 * canned failure) from a zero-delay timer, or holds the call until the test
 * cancels it. It stands in for the model only; the loop, transcript,
 * context, store and bus under test are the real ones.
 */
#include "unit/unit.h"

#include "agent/loop.h"
#include "agent/provider.h"
#include "api/bus.h"
#include "api/work.h"
#include "core/alloc.h"
#include "core/rand.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the scripted model (TEST DOUBLE) ---- */

struct script {
	al_provider base;
	uv_timer_t timer;
	json_t *requests;  /* every request received */
	json_t *responses; /* queue: a response message, or {"fail": error_type} */
	int hold;	   /* keep calls in flight until cancelled */
	int in_flight;
	int cancelled;
	int64_t window;
	int64_t last_tokens; /* bytes/4 of the last request */
	al_model_done_cb done;
	void *ud;
};

static void script_fire(uv_timer_t *t)
{
	struct script *sc = t->data;
	json_t *r = json_incref(json_array_get(sc->responses, 0));
	struct al_model_result res = {0};

	if (r == NULL)
		al_test_fail(__FILE__, __LINE__, "the model was called more often than scripted");
	json_array_remove(sc->responses, 0);
	sc->in_flight = 0;
	res.attempts = 1;
	if (json_object_get(r, "fail")) {
		res.http_status = 529;
		res.error_type = json_string_value(json_object_get(r, "fail"));
		res.error_message = "Overloaded";
	} else {
		/* report the request's own bytes/4 as its input tokens: calibration stays ~1 */
		json_object_set_new(json_object_get(r, "usage"), "input_tokens",
				    json_integer(sc->last_tokens));
		res.ok = 1;
		res.http_status = 200;
		res.message = r;
	}
	sc->done(&res, sc->ud);
	json_decref(r);
}

static int script_call(al_provider *p, json_t *request, al_model_done_cb cb, void *ud,
		       al_model_call **out)
{
	struct script *sc = (struct script *)p;

	AL_ASSERT_INT_EQ(sc->in_flight, 0);
	json_array_append(sc->requests, request);
	sc->last_tokens = (int64_t)json_dumpb(request, NULL, 0, JSON_COMPACT) / 4;
	sc->done = cb;
	sc->ud = ud;
	sc->in_flight = 1;
	*out = (al_model_call *)sc;
	if (!sc->hold)
		uv_timer_start(&sc->timer, script_fire, 0, 0);
	return 0;
}

static void script_cancel(al_provider *p, al_model_call *call)
{
	struct script *sc = (struct script *)p;

	AL_ASSERT(call == (al_model_call *)sc);
	uv_timer_stop(&sc->timer);
	sc->in_flight = 0;
	sc->cancelled++;
}

static void script_free(al_provider *p)
{
}

static int64_t script_window(al_provider *p, const char *model)
{
	AL_ASSERT_STR_EQ(model, "claude-test");
	return ((struct script *)p)->window;
}

static const struct al_provider_ops script_ops = {script_call, script_cancel, script_free,
						  script_window};

/* A response: stop_reason, usage, and the content blocks given as JSON text. */
static void script_push(struct script *sc, const char *stop_reason, const char *content)
{
	json_t *c = json_loads(content, 0, NULL);

	AL_ASSERT_NOT_NULL(c);
	json_array_append_new(sc->responses,
			      json_pack("{s:s, s:s, s:s, s:o, s:s, s:{s:i, s:i}}", "id", "msg_1",
					"type", "message", "role", "assistant", "content", c,
					"stop_reason", stop_reason, "usage", "input_tokens", 1234,
					"output_tokens", 56));
}

/* ---- fixture ---- */

struct fx {
	uv_loop_t loop;
	al_api api;
	struct script sc;
	struct al_agent *ag;
	char sid[AL_ID_MAX];
};

#define TOOLSET_ALLOW "{\"type\":\"agent_toolset_20260401\"}"
#define TOOLSET_ASK                                                                                \
	"{\"type\":\"agent_toolset_20260401\",\"default_config\":{\"permission_policy\":{"         \
	"\"type\":\"always_ask\"}}}"
#define CUSTOM_LOOKUP                                                                              \
	"{\"type\":\"custom\",\"name\":\"lookup\",\"description\":\"look up an order\","           \
	"\"input_schema\":{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}}"

struct mk {
	const char *sid;
	const char *tools;
};

static int make_session_fn(al_store_tx *tx, void *ud)
{
	struct mk *m = ud;
	struct al_doc d;
	char body[2048];

	memset(&d, 0, sizeof(d));
	snprintf(d.kind, sizeof(d.kind), "session");
	snprintf(d.id, sizeof(d.id), "%s", m->sid);
	snprintf(d.ref, sizeof(d.ref), "agent_x");
	snprintf(d.ref2, sizeof(d.ref2), "env_test");
	snprintf(d.state, sizeof(d.state), "idle");
	d.created_ms = d.updated_ms = 1000;
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"session\",\"status\":\"idle\","
		 "\"environment_id\":\"env_test\",\"metadata\":{},"
		 "\"agent\":{\"id\":\"agent_x\",\"type\":\"agent\",\"name\":\"a\",\"version\":1,"
		 "\"model\":{\"id\":\"claude-test\"},\"system\":\"You are terse.\","
		 "\"mcp_servers\":[],\"tools\":[%s]}}",
		 m->sid, m->tools);
	d.body = body;
	return al_store_doc_insert(tx, &d);
}

static void fx_open(struct fx *f, const char *tools)
{
	char err[256] = "";
	struct mk m;

	memset(f, 0, sizeof(*f));
	al_alloc_init();
	AL_ASSERT_INT_EQ(uv_loop_init(&f->loop), 0);
	f->api.loop = &f->loop;
	if (al_store_open_sqlite(&f->loop, al_test_tmpdir(), &f->api.store, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "store: %s", err);
	AL_ASSERT_INT_EQ(al_bus_new(&f->loop, f->api.store, &f->api.bus), 0);
	f->sc.base.ops = &script_ops;
	f->sc.requests = json_array();
	f->sc.responses = json_array();
	f->sc.window = 200000;
	uv_timer_init(&f->loop, &f->sc.timer);
	f->sc.timer.data = &f->sc;
	f->api.provider = &f->sc.base;
	AL_ASSERT_INT_EQ(al_id_new("sesn", f->sid, sizeof(f->sid)), 0);
	m = (struct mk){f->sid, tools};
	AL_ASSERT_INT_EQ(al_store_call(f->api.store, make_session_fn, &m), 0);
	AL_ASSERT_INT_EQ(al_agent_start(&f->api, &f->ag), 0);
}

static void fx_close(struct fx *f)
{
	al_agent_free(f->ag);
	al_bus_free(f->api.bus);
	al_store_close(f->api.store);
	uv_close((uv_handle_t *)&f->sc.timer, NULL);
	AL_ASSERT_INT_EQ(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(uv_loop_close(&f->loop), 0);
	json_decref(f->sc.requests);
	json_decref(f->sc.responses);
}

/* Runs the loop until nothing is left to do (store jobs, appends, model timers). */
static void settle(struct fx *f)
{
	AL_ASSERT_INT_EQ(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

static void posted_cb(int rc, json_t *events, void *ud)
{
	*(int *)ud = rc;
}

/* What the HTTP handler for POST /events does: append the client's events. */
static void post(struct fx *f, const char *events_json)
{
	json_t *e = json_loads(events_json, 0, NULL);
	int rc = 1;

	AL_ASSERT_NOT_NULL(e);
	AL_ASSERT_INT_EQ(al_bus_append(f->api.bus, f->sid, e, NULL, posted_cb, &rc), 0);
	json_decref(e);
	settle(f);
	AL_ASSERT_INT_EQ(rc, 0);
}

struct listing {
	const char *sid;
	json_t *events;
	char state[32];
	json_t *work; /* array of work states */
};

static int list_fn(al_store_tx *tx, void *ud)
{
	struct listing *l = ud;
	struct al_event_query q = {.session_id = l->sid};
	struct al_doc_query wq = {.ref2 = l->sid};
	struct al_event *ev = NULL;
	struct al_doc d, *w = NULL;
	size_t n = 0, nw = 0;

	AL_ASSERT_INT_EQ(al_store_event_list(tx, &q, &ev, &n, NULL), 0);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(l->events, json_loads(ev[i].body, 0, NULL));
	al_event_array_free(ev, n);
	AL_ASSERT_INT_EQ(al_store_doc_get(tx, "session", l->sid, &d), 0);
	snprintf(l->state, sizeof(l->state), "%s", d.state);
	al_doc_clear(&d);
	AL_ASSERT_INT_EQ(al_store_doc_list(tx, "work", &wq, &w, &nw, NULL), 0);
	for (size_t i = 0; i < nw; i++)
		json_array_append_new(l->work, json_string(w[i].state));
	al_doc_array_free(w, nw);
	return 0;
}

static void list(struct fx *f, struct listing *l)
{
	l->sid = f->sid;
	l->events = json_array();
	l->work = json_array();
	AL_ASSERT_INT_EQ(al_store_call(f->api.store, list_fn, l), 0);
}

static void listing_clear(struct listing *l)
{
	json_decref(l->events);
	json_decref(l->work);
}

/* "user.message,session.status_running,..." */
static char *types_of(json_t *events, char *out, size_t len)
{
	size_t i, off = 0;
	json_t *e;

	out[0] = '\0';
	json_array_foreach(events, i, e)
	{
		off += (size_t)snprintf(out + off, len - off, "%s%s", i ? "," : "",
					json_string_value(json_object_get(e, "type")));
		if (off >= len)
			break;
	}
	return out;
}

static json_t *nth_of_type(json_t *events, const char *type, int nth)
{
	size_t i;
	json_t *e;

	json_array_foreach(events, i, e)
	{
		if (strcmp(json_string_value(json_object_get(e, "type")), type) == 0 && nth-- == 0)
			return e;
	}
	return NULL;
}

static int count_type(json_t *events, const char *type)
{
	int n = 0;

	while (nth_of_type(events, type, n) != NULL)
		n++;
	return n;
}

static const char *id_of(json_t *e)
{
	AL_ASSERT_NOT_NULL(e);
	return json_string_value(json_object_get(e, "id"));
}

static const char *stop_reason(json_t *idle)
{
	AL_ASSERT_NOT_NULL(idle);
	return json_string_value(json_object_get(json_object_get(idle, "stop_reason"), "type"));
}

#define USER_MSG                                                                                   \
	"[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"list the "         \
	"files\"}]}]"
#define BASH_CALL                                                                                  \
	"[{\"type\":\"text\",\"text\":\"Looking.\"},{\"type\":\"tool_use\",\"id\":\"toolu_01\","   \
	"\"name\":\"bash\",\"input\":{\"command\":\"ls\"}}]"
#define FINAL "[{\"type\":\"text\",\"text\":\"There is a.txt.\"}]"

/* The last message of request i, and its first block. */
static json_t *last_block(struct fx *f, size_t i)
{
	json_t *msgs = json_object_get(json_array_get(f->sc.requests, i), "messages");
	json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);

	AL_ASSERT_STR_EQ(json_string_value(json_object_get(last, "role")), "user");
	return json_array_get(json_object_get(last, "content"), 0);
}

AL_TEST(loop_full_turn_with_bash_result)
{
	struct fx f;
	struct listing l = {0};
	char types[1024], post_json[512];
	json_t *use, *req, *blk, *end;

	fx_open(&f, TOOLSET_ALLOW "," CUSTOM_LOOKUP);
	script_push(&f.sc, "tool_use", BASH_CALL);
	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);

	list(&f, &l);
	AL_ASSERT_STR_EQ(types_of(l.events, types, sizeof(types)),
			 "user.message,session.status_running,span.model_request_start,"
			 "agent.message,agent.tool_use,span.model_request_end");
	AL_ASSERT_STR_EQ(l.state, "running");
	AL_ASSERT_INT_EQ(json_array_size(l.work), 1);
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(l.work, 0)), "queued");
	use = nth_of_type(l.events, "agent.tool_use", 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(use, "name")), "bash");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(use, "evaluated_permission")), "allow");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(use, "evaluation"), "type")),
	    "always_allow");
	end = nth_of_type(l.events, "span.model_request_end", 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(end, "model_request_start_id")),
			 id_of(nth_of_type(l.events, "span.model_request_start", 0)));
	AL_ASSERT(json_is_false(json_object_get(end, "is_error")));
	AL_ASSERT_INT_EQ(json_integer_value(
			     json_object_get(json_object_get(end, "model_usage"), "input_tokens")),
			 json_dumpb(json_array_get(f.sc.requests, 0), NULL, 0, JSON_COMPACT) / 4);
	AL_ASSERT_INT_EQ(json_integer_value(
			     json_object_get(json_object_get(end, "model_usage"), "output_tokens")),
			 56);
	/* the first request: system, tools, the user's message */
	req = json_array_get(f.sc.requests, 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(req, "model")), "claude-test");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(req, "system")), "You are terse.");
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(req, "tools")), 7);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(last_block(&f, 0), "text")),
			 "list the files");

	/* the worker answers the call */
	snprintf(post_json, sizeof(post_json),
		 "[{\"type\":\"user.tool_result\",\"tool_use_id\":\"%s\",\"content\":[{\"type\":"
		 "\"text\",\"text\":\"a.txt\"}]}]",
		 id_of(use));
	listing_clear(&l);
	post(&f, post_json);

	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 2);
	blk = last_block(&f, 1);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(blk, "type")), "tool_result");
	{
		/* the result pairs with the tool_use block the model is shown */
		json_t *msgs = json_object_get(json_array_get(f.sc.requests, 1), "messages");
		json_t *asst = json_object_get(json_array_get(msgs, 1), "content");
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(asst, "role")) ?: "assistant",
				 "assistant");
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(asst, 1), "id")),
				 json_string_value(json_object_get(blk, "tool_use_id")));
	}
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_array_get(json_object_get(blk, "content"), 0), "text")),
			 "a.txt");
	list(&f, &l);
	AL_ASSERT_STR_EQ(types_of(l.events, types, sizeof(types)),
			 "user.message,session.status_running,span.model_request_start,"
			 "agent.message,agent.tool_use,span.model_request_end,user.tool_result,"
			 "span.model_request_start,agent.message,span.model_request_end,"
			 "session.status_idle");
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)), "end_turn");
	AL_ASSERT(json_is_null(
	    json_object_get(nth_of_type(l.events, "session.status_idle", 0), "stop_details")));
	AL_ASSERT_STR_EQ(l.state, "idle");
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(l.work, 0)), "stopped");
	listing_clear(&l);
	fx_close(&f);
}

AL_TEST(loop_custom_tool_requires_action)
{
	struct fx f;
	struct listing l = {0};
	char post_json[512], use_id[AL_ID_MAX];
	json_t *use, *idle, *ids;

	fx_open(&f, CUSTOM_LOOKUP);
	script_push(
	    &f.sc, "tool_use",
	    "[{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"lookup\",\"input\":{\"q\":"
	    "\"1234\"}}]");
	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);

	list(&f, &l);
	use = nth_of_type(l.events, "agent.custom_tool_use", 0);
	AL_ASSERT_NOT_NULL(use);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(use, "input"), "q")),
			 "1234");
	idle = nth_of_type(l.events, "session.status_idle", 0);
	AL_ASSERT_STR_EQ(stop_reason(idle), "requires_action");
	ids = json_object_get(json_object_get(idle, "stop_reason"), "event_ids");
	AL_ASSERT_INT_EQ(json_array_size(ids), 1);
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(ids, 0)), id_of(use));
	AL_ASSERT_STR_EQ(l.state, "idle");
	/* no toolset: no work item */
	AL_ASSERT_INT_EQ(json_array_size(l.work), 0);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 1);

	snprintf(use_id, sizeof(use_id), "%s", id_of(use));
	snprintf(post_json, sizeof(post_json),
		 "[{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"%s\","
		 "\"content\":[{\"type\":\"text\",\"text\":\"shipped\"}]}]",
		 use_id);
	listing_clear(&l);
	post(&f, post_json);
	list(&f, &l);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 2);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(last_block(&f, 1), "tool_use_id")),
			 use_id);
	AL_ASSERT_INT_EQ(count_type(l.events, "session.status_running"), 2);
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 1)), "end_turn");
	AL_ASSERT_STR_EQ(l.state, "idle");
	listing_clear(&l);
	fx_close(&f);
}

static void confirmation_case(const char *result, int expect_calls_after_confirm)
{
	struct fx f;
	struct listing l = {0};
	char post_json[512], use_id[AL_ID_MAX];
	json_t *use;

	fx_open(&f, TOOLSET_ASK);
	script_push(&f.sc, "tool_use", BASH_CALL);
	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);
	list(&f, &l);
	use = nth_of_type(l.events, "agent.tool_use", 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(use, "evaluated_permission")), "ask");
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)),
			 "requires_action");
	snprintf(use_id, sizeof(use_id), "%s", id_of(use));
	snprintf(post_json, sizeof(post_json),
		 "[{\"type\":\"user.tool_confirmation\",\"tool_use_id\":\"%s\",\"result\":\"%s\""
		 "%s}]",
		 use_id, result,
		 strcmp(result, "deny") == 0 ? ",\"deny_message\":\"not on prod\"" : "");
	listing_clear(&l);
	post(&f, post_json);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), expect_calls_after_confirm);
	list(&f, &l);
	if (strcmp(result, "allow") == 0) {
		/* running again, waiting for the worker's result */
		AL_ASSERT_STR_EQ(l.state, "running");
		AL_ASSERT_INT_EQ(count_type(l.events, "session.status_running"), 2);
		snprintf(post_json, sizeof(post_json),
			 "[{\"type\":\"user.tool_result\",\"tool_use_id\":\"%s\",\"content\":[{"
			 "\"type\":\"text\",\"text\":\"a.txt\"}]}]",
			 use_id);
		listing_clear(&l);
		post(&f, post_json);
		AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 2);
		AL_ASSERT(!json_is_true(json_object_get(last_block(&f, 1), "is_error")));
		list(&f, &l);
	} else {
		json_t *blk = last_block(&f, 1);
		const char *text = json_string_value(
		    json_object_get(json_array_get(json_object_get(blk, "content"), 0), "text"));
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(blk, "tool_use_id")), use_id);
		AL_ASSERT(json_is_true(json_object_get(blk, "is_error")));
		AL_ASSERT(strstr(text, "denied") != NULL);
		AL_ASSERT(strstr(text, "not on prod") != NULL);
	}
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 1)), "end_turn");
	AL_ASSERT_STR_EQ(l.state, "idle");
	listing_clear(&l);
	fx_close(&f);
}

AL_TEST(loop_ask_then_allow)
{
	confirmation_case("allow", 1);
}

AL_TEST(loop_ask_then_deny)
{
	confirmation_case("deny", 2);
}

AL_TEST(loop_interrupt_cancels_the_call)
{
	struct fx f;
	struct listing l = {0};
	char types[1024];
	json_t *end;

	fx_open(&f, TOOLSET_ALLOW);
	f.sc.hold = 1;
	post(&f, USER_MSG);
	AL_ASSERT_INT_EQ(f.sc.in_flight, 1);
	post(&f, "[{\"type\":\"user.interrupt\"}]");
	AL_ASSERT_INT_EQ(f.sc.cancelled, 1);
	AL_ASSERT_INT_EQ(f.sc.in_flight, 0);
	list(&f, &l);
	AL_ASSERT_STR_EQ(types_of(l.events, types, sizeof(types)),
			 "user.message,session.status_running,span.model_request_start,"
			 "user.interrupt,span.model_request_end,session.status_idle");
	end = nth_of_type(l.events, "span.model_request_end", 0);
	AL_ASSERT(json_is_true(json_object_get(end, "is_error")));
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)), "end_turn");
	AL_ASSERT_STR_EQ(l.state, "idle");
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(l.work, 0)), "stopped");
	listing_clear(&l);

	/* the next message starts a fresh turn and a fresh work item */
	f.sc.hold = 0;
	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);
	list(&f, &l);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 2);
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 1)), "end_turn");
	AL_ASSERT_INT_EQ(json_array_size(l.work), 2);
	listing_clear(&l);
	fx_close(&f);
}

AL_TEST(loop_provider_failure_is_a_session_error)
{
	struct fx f;
	struct listing l = {0};
	char types[1024];
	json_t *err;

	fx_open(&f, TOOLSET_ALLOW);
	json_array_append_new(f.sc.responses, json_pack("{s:s}", "fail", "overloaded_error"));
	post(&f, USER_MSG);
	list(&f, &l);
	AL_ASSERT_STR_EQ(types_of(l.events, types, sizeof(types)),
			 "user.message,session.status_running,span.model_request_start,"
			 "span.model_request_end,session.error,session.status_idle");
	err = json_object_get(nth_of_type(l.events, "session.error", 0), "error");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(err, "type")), "model_overloaded_error");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(err, "message")), "Overloaded");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(err, "retry_status"), "type")),
	    "exhausted");
	AL_ASSERT(json_is_true(
	    json_object_get(nth_of_type(l.events, "span.model_request_end", 0), "is_error")));
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)),
			 "retries_exhausted");
	AL_ASSERT_STR_EQ(l.state, "idle");
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(l.work, 0)), "stopped");
	listing_clear(&l);
	fx_close(&f);
}

AL_TEST(loop_transcript_over_the_window_fails_the_turn)
{
	struct fx f;
	struct listing l = {0};
	char big[12000], msg[12200];
	json_t *err;

	fx_open(&f, TOOLSET_ALLOW);
	/* window 9000 - max_tokens 8192 = 808 tokens; the message alone is ~3000 */
	f.sc.window = 9000;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(msg, sizeof(msg),
		 "[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"%s\"}]}]",
		 big);
	post(&f, msg);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 0);
	list(&f, &l);
	err = json_object_get(nth_of_type(l.events, "session.error", 0), "error");
	AL_ASSERT_NOT_NULL(err);
	AL_ASSERT(strstr(json_string_value(json_object_get(err, "message")), "context window"));
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)),
			 "retries_exhausted");
	listing_clear(&l);
	fx_close(&f);
}

AL_TEST(loop_compacts_before_calling)
{
	/*
	 * Five turns with 6000-byte tool results against a 12000-token window
	 * for the last call (limit 3808): old results are elided and old turns
	 * dropped, the request stays under the limit, and the first message's
	 * intent survives in a note.
	 */
	struct fx f;
	struct listing l = {0};
	char big[6001], post_json[6400], question[2001], msg_json[2200];
	json_t *req, *first;
	const char *note;

	fx_open(&f, TOOLSET_ALLOW);
	memset(big, 'r', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* 2000-byte questions: elision alone cannot make room, turns must go */
	memset(question, 'q', sizeof(question) - 1);
	question[sizeof(question) - 1] = '\0';
	snprintf(msg_json, sizeof(msg_json),
		 "[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"%s\"}]}]",
		 question);
	for (int t = 0; t < 5; t++) {
		json_t *use;
		script_push(&f.sc, "tool_use", BASH_CALL);
		script_push(&f.sc, "end_turn", FINAL);
		f.sc.window = 200000;
		post(&f, t == 0 ? "[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\","
				  "\"text\":\"Please audit the repo\"}]}]"
				: msg_json);
		list(&f, &l);
		use = nth_of_type(l.events, "agent.tool_use", t);
		snprintf(post_json, sizeof(post_json),
			 "[{\"type\":\"user.tool_result\",\"tool_use_id\":\"%s\",\"content\":[{"
			 "\"type\":\"text\",\"text\":\"%s\"}]}]",
			 id_of(use), big);
		listing_clear(&l);
		if (t == 4)
			f.sc.window = 12000;
		post(&f, post_json);
	}
	req = json_array_get(f.sc.requests, 9);
	AL_ASSERT_NOT_NULL(req);
	AL_ASSERT(json_dumpb(req, NULL, 0, JSON_COMPACT) / 4 <= 12000 - 8192);
	first = json_array_get(
	    json_object_get(json_array_get(json_object_get(req, "messages"), 0), "content"), 0);
	note = json_string_value(json_object_get(first, "text"));
	AL_ASSERT_NOT_NULL(note);
	AL_ASSERT(strstr(note, "Please audit the repo") != NULL);
	/* the latest result is intact */
	AL_ASSERT_INT_EQ(
	    strlen(json_string_value(json_object_get(
		json_array_get(json_object_get(last_block(&f, 9), "content"), 0), "text"))),
	    6000);
	list(&f, &l);
	AL_ASSERT_INT_EQ(count_type(l.events, "session.error"), 0);
	listing_clear(&l);
	fx_close(&f);
}

static void restart(struct fx *f)
{
	al_agent_free(f->ag);
	f->ag = NULL;
	settle(f);
	AL_ASSERT_INT_EQ(al_agent_start(&f->api, &f->ag), 0);
	settle(f);
}

AL_TEST(loop_restart_recovers_without_duplicates)
{
	struct fx f;
	struct listing l = {0};
	char types[2048], post_json[512];
	json_t *use;

	fx_open(&f, TOOLSET_ALLOW);
	/* stop mid-call: the response never reached the log */
	f.sc.hold = 1;
	post(&f, USER_MSG);
	AL_ASSERT_INT_EQ(f.sc.in_flight, 1);
	al_agent_stop(f.ag);
	f.sc.hold = 0;
	script_push(&f.sc, "tool_use", BASH_CALL);
	restart(&f);
	AL_ASSERT_INT_EQ(f.sc.cancelled, 1);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 2); /* the same request, again */
	AL_ASSERT(json_equal(json_object_get(json_array_get(f.sc.requests, 0), "messages"),
			     json_object_get(json_array_get(f.sc.requests, 1), "messages")));
	list(&f, &l);
	AL_ASSERT_STR_EQ(types_of(l.events, types, sizeof(types)),
			 "user.message,session.status_running,span.model_request_start,"
			 "span.model_request_end,span.model_request_start,agent.message,"
			 "agent.tool_use,span.model_request_end");
	AL_ASSERT(json_is_true(
	    json_object_get(nth_of_type(l.events, "span.model_request_end", 0), "is_error")));
	/* one work item for the turn, not one per process */
	AL_ASSERT_INT_EQ(json_array_size(l.work), 1);
	use = nth_of_type(l.events, "agent.tool_use", 0);
	snprintf(post_json, sizeof(post_json),
		 "[{\"type\":\"user.tool_result\",\"tool_use_id\":\"%s\",\"content\":[{\"type\":"
		 "\"text\",\"text\":\"a.txt\"}]}]",
		 id_of(use));
	listing_clear(&l);

	/* stop while the tool call is outstanding: the new process keeps waiting */
	restart(&f);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 2);
	list(&f, &l);
	AL_ASSERT_INT_EQ(count_type(l.events, "agent.tool_use"), 1);
	AL_ASSERT_INT_EQ(json_array_size(l.events), 8);
	listing_clear(&l);

	script_push(&f.sc, "end_turn", FINAL);
	post(&f, post_json);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 3);
	list(&f, &l);
	AL_ASSERT_INT_EQ(count_type(l.events, "agent.tool_use"), 1);
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)), "end_turn");
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(l.work, 0)), "stopped");
	listing_clear(&l);

	/* and an idle session is left alone by the next start */
	restart(&f);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 3);
	fx_close(&f);
}

AL_TEST(loop_restart_picks_up_an_unanswered_message)
{
	/* A message committed while no loop was observing (the previous process died). */
	struct fx f;
	struct listing l = {0};

	fx_open(&f, TOOLSET_ALLOW);
	al_agent_free(f.ag);
	f.ag = NULL;
	post(&f, USER_MSG);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 0);
	script_push(&f.sc, "end_turn", FINAL);
	AL_ASSERT_INT_EQ(al_agent_start(&f.api, &f.ag), 0);
	settle(&f);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 1);
	list(&f, &l);
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)), "end_turn");
	listing_clear(&l);
	fx_close(&f);
}

AL_TEST(loop_work_lost_reschedules)
{
	struct fx f;
	struct listing l = {0};
	char post_json[512];
	json_t *use;

	fx_open(&f, TOOLSET_ALLOW);
	script_push(&f.sc, "tool_use", BASH_CALL);
	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);
	al_agent_on_work_lost(f.ag, f.sid);
	settle(&f);
	list(&f, &l);
	AL_ASSERT_INT_EQ(count_type(l.events, "session.status_rescheduled"), 1);
	AL_ASSERT_STR_EQ(l.state, "rescheduling");
	use = nth_of_type(l.events, "agent.tool_use", 0);
	snprintf(post_json, sizeof(post_json),
		 "[{\"type\":\"user.tool_result\",\"tool_use_id\":\"%s\"}]", id_of(use));
	listing_clear(&l);
	/* the next worker answers: the turn goes on */
	post(&f, post_json);
	list(&f, &l);
	AL_ASSERT_INT_EQ(json_array_size(f.sc.requests), 2);
	AL_ASSERT_INT_EQ(count_type(l.events, "session.status_running"), 2);
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)), "end_turn");
	AL_ASSERT_STR_EQ(l.state, "idle");
	listing_clear(&l);
	/* on an idle session a lost lease changes nothing */
	al_agent_on_work_lost(f.ag, f.sid);
	settle(&f);
	list(&f, &l);
	AL_ASSERT_INT_EQ(count_type(l.events, "session.status_rescheduled"), 1);
	listing_clear(&l);
	fx_close(&f);
}

AL_TEST(loop_without_provider_fails_the_turn)
{
	struct fx f;
	struct listing l = {0};
	json_t *err;

	fx_open(&f, TOOLSET_ALLOW);
	f.api.provider = NULL; /* a server started before any model is configured */
	post(&f, USER_MSG);
	list(&f, &l);
	err = json_object_get(nth_of_type(l.events, "session.error", 0), "error");
	AL_ASSERT_NOT_NULL(err);
	AL_ASSERT(strstr(json_string_value(json_object_get(err, "message")), "no model provider"));
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)),
			 "retries_exhausted");
	/* the failure consumed the message: nothing repeats */
	AL_ASSERT_INT_EQ(count_type(l.events, "session.error"), 1);
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(l.work, 0)), "stopped");
	listing_clear(&l);
	f.api.provider = &f.sc.base;
	fx_close(&f);
}

/*
 * The event cache: a step loads only the events after the cached prefix, so
 * across two full turns every stored event is read and parsed once, and the
 * second turn's request still carries the first turn's whole transcript.
 */
AL_TEST(loop_cache_loads_each_event_once)
{
	struct fx f;
	struct listing l = {0};
	struct al_agent_cache_stats cs;
	json_t *msgs;

	fx_open(&f, TOOLSET_ALLOW);
	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);
	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);
	list(&f, &l);
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 1)), "end_turn");
	al_agent_cache_stats(f.ag, &cs);
	AL_ASSERT_INT_EQ(cs.full_loads, 1);
	AL_ASSERT_INT_EQ(cs.events_parsed, json_array_size(l.events));
	AL_ASSERT_INT_EQ(cs.entries, 1);
	AL_ASSERT(cs.bytes > 0);
	/* user, assistant, user: the cached prefix is the whole log */
	msgs = json_object_get(json_array_get(f.sc.requests, 1), "messages");
	AL_ASSERT_INT_EQ(json_array_size(msgs), 3);
	AL_ASSERT(json_equal(json_object_get(json_array_get(f.sc.requests, 0), "messages"),
			     json_object_get(json_array_get(f.sc.requests, 1), "messages")) == 0);
	listing_clear(&l);

	/* after a restart the cache is rebuilt from the store: one full load */
	restart(&f);
	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);
	al_agent_cache_stats(f.ag, &cs);
	AL_ASSERT_INT_EQ(cs.full_loads, 1);
	msgs = json_object_get(json_array_get(f.sc.requests, 2), "messages");
	AL_ASSERT_INT_EQ(json_array_size(msgs), 5);
	fx_close(&f);
}

/* Past the budget the least recently used caches go; turns stay correct. */
AL_TEST(loop_cache_evicts_past_the_budget)
{
	struct fx f;
	struct listing l = {0};
	struct al_agent_cache_stats cs;
	char other[AL_ID_MAX];
	struct mk m;

	fx_open(&f, TOOLSET_ALLOW);
	f.api.cfg.agent_cache_bytes = 1; /* every other session's cache is evicted */
	AL_ASSERT_INT_EQ(al_id_new("sesn", other, sizeof(other)), 0);
	m = (struct mk){other, TOOLSET_ALLOW};
	AL_ASSERT_INT_EQ(al_store_call(f.api.store, make_session_fn, &m), 0);

	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);
	snprintf(f.sid, sizeof(f.sid), "%s", other);
	script_push(&f.sc, "end_turn", FINAL);
	post(&f, USER_MSG);
	al_agent_cache_stats(f.ag, &cs);
	AL_ASSERT_INT_EQ(cs.entries, 1);
	AL_ASSERT(cs.evictions >= 1);
	AL_ASSERT_INT_EQ(cs.full_loads, 2);
	list(&f, &l);
	AL_ASSERT_STR_EQ(stop_reason(nth_of_type(l.events, "session.status_idle", 0)), "end_turn");
	listing_clear(&l);
	fx_close(&f);
}
