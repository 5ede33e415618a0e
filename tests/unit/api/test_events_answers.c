/*
 * test_events_answers.c - a tool call is answered at most once: a second
 * user.tool_result (user.custom_tool_result) for the same call is refused
 * with 400 invalid_request_error, error_code tool_use_already_answered, and
 * of concurrent posts of the same answer exactly one is stored.
 */
#include "unit/api/fixture.h"
#include "unit/unit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define NCONC 8

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void send_events(struct al_fx *fx, const char *sess, const char *events, long want,
			json_t **out)
{
	char path[128], body[1024];

	snprintf(path, sizeof(path), "/v1/sessions/%s/events", sess);
	snprintf(body, sizeof(body), "{\"events\":%s}", events);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, "admin", body, out), want);
}

static void assert_refused(json_t *o)
{
	json_t *e = json_object_get(o, "error");

	AL_ASSERT_STR_EQ(str(o, "type"), "error");
	AL_ASSERT_STR_EQ(str(e, "type"), "invalid_request_error");
	AL_ASSERT_STR_EQ(str(json_object_get(e, "details"), "error_code"),
			 "tool_use_already_answered");
	AL_ASSERT(strstr(str(e, "message"), "already been answered") != NULL);
}

/* How many stored events of type answer call id (key: tool_use_id / custom_tool_use_id). */
static size_t count_answers(struct al_fx *fx, const char *sess, const char *type, const char *key,
			    const char *id)
{
	char path[256];
	json_t *o = NULL, *ev;
	size_t i, n = 0;

	snprintf(path, sizeof(path), "/v1/sessions/%s/events?limit=1000&types[]=%s", sess, type);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, "admin", NULL, &o), 200);
	json_array_foreach(json_object_get(o, "data"), i, ev)
	{
		if (str(ev, key) != NULL && strcmp(str(ev, key), id) == 0)
			n++;
	}
	json_decref(o);
	return n;
}

static void duplicates(struct al_fx *fx)
{
	char agent[64], env[64], sess[64], ev[512], call[64];
	json_t *o = NULL;

	al_fx_setup(fx, agent, env);
	al_fx_session(fx, agent, env, sess);
	/* A stored event stands in for the agent.tool_use (the call's id is its event id). */
	send_events(
	    fx, sess,
	    "[{\"type\":\"system.message\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]", 200,
	    &o);
	snprintf(call, sizeof(call), "%s",
		 str(json_array_get(json_object_get(o, "data"), 0), "id"));
	json_decref(o);
	AL_ASSERT(strncmp(call, "sevt_", 5) == 0);

	snprintf(ev, sizeof(ev),
		 "[{\"type\":\"user.tool_result\",\"tool_use_id\":\"%s\",\"is_error\":false,"
		 "\"content\":[{\"type\":\"text\",\"text\":\"one\"}]}]",
		 call);
	send_events(fx, sess, ev, 200, NULL);
	send_events(fx, sess, ev, 400, &o);
	assert_refused(o);
	json_decref(o);
	AL_ASSERT_INT_EQ(count_answers(fx, sess, "user.tool_result", "tool_use_id", call), 1);

	/* An id that is no event of the session is accepted once (as before), then refused. */
	send_events(fx, sess,
		    "[{\"type\":\"user.tool_result\",\"tool_use_id\":\"sevt_nosuchcall\"}]", 200,
		    NULL);
	send_events(fx, sess,
		    "[{\"type\":\"user.tool_result\",\"tool_use_id\":\"sevt_nosuchcall\"}]", 400,
		    &o);
	assert_refused(o);
	json_decref(o);

	/* Two answers in one send: refused whole, nothing of it stored. */
	send_events(fx, sess,
		    "[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"m\"}]},"
		    "{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"sevt_c1\"},"
		    "{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"sevt_c1\"}]",
		    400, &o);
	assert_refused(o);
	AL_ASSERT(strstr(str(json_object_get(o, "error"), "message"), "events[2]") != NULL);
	json_decref(o);
	AL_ASSERT_INT_EQ(
	    count_answers(fx, sess, "user.custom_tool_result", "custom_tool_use_id", "sevt_c1"), 0);
	AL_ASSERT_INT_EQ(count_answers(fx, sess, "user.message", "type", "user.message"), 0);
	send_events(fx, sess,
		    "[{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"sevt_c1\"}]",
		    200, NULL);
	send_events(fx, sess,
		    "[{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"sevt_c1\"}]",
		    400, &o);
	assert_refused(o);
	json_decref(o);

	/* Another call's answer and other events are unaffected. */
	send_events(fx, sess, "[{\"type\":\"user.tool_result\",\"tool_use_id\":\"sevt_other\"}]",
		    200, NULL);
}

AL_TEST(api_events_second_answer_refused)
{
	al_fx_run(duplicates);
}

struct racer {
	pthread_t th;
	struct al_fx *fx;
	pthread_barrier_t *go;
	const char *path;
	const char *body;
	long status;
	json_t *out;
};

static void *race_main(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->go);
	r->status = al_fx_req(r->fx, "POST", r->path, "admin", r->body, &r->out);
	return NULL;
}

static void concurrent(struct al_fx *fx)
{
	char agent[64], env[64], sess[64], path[128], body[256];
	struct racer rs[NCONC];
	pthread_barrier_t go;
	int ok = 0, refused = 0;

	al_fx_setup(fx, agent, env);
	al_fx_session(fx, agent, env, sess);
	snprintf(path, sizeof(path), "/v1/sessions/%s/events", sess);
	snprintf(body, sizeof(body),
		 "{\"events\":[{\"type\":\"user.tool_result\",\"tool_use_id\":\"sevt_race\","
		 "\"content\":[{\"type\":\"text\",\"text\":\"same answer\"}]}]}");
	AL_ASSERT_INT_EQ(pthread_barrier_init(&go, NULL, NCONC), 0);
	for (int i = 0; i < NCONC; i++) {
		rs[i] = (struct racer){.fx = fx, .go = &go, .path = path, .body = body};
		AL_ASSERT_INT_EQ(pthread_create(&rs[i].th, NULL, race_main, &rs[i]), 0);
	}
	for (int i = 0; i < NCONC; i++) {
		pthread_join(rs[i].th, NULL);
		if (rs[i].status == 200) {
			ok++;
		} else {
			AL_ASSERT_INT_EQ(rs[i].status, 400);
			assert_refused(rs[i].out);
			refused++;
		}
		json_decref(rs[i].out);
	}
	pthread_barrier_destroy(&go);
	AL_ASSERT_INT_EQ(ok, 1);
	AL_ASSERT_INT_EQ(refused, NCONC - 1);
	AL_ASSERT_INT_EQ(count_answers(fx, sess, "user.tool_result", "tool_use_id", "sevt_race"),
			 1);
}

AL_TEST(api_events_concurrent_answers_one_stored)
{
	al_fx_run(concurrent);
}
