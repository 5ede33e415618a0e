/*
 * test_transcript.c - events -> messages, turn state and decisions, tools,
 * permissions (agent/transcript.c, agent/permissions.c). Pure functions:
 * the event lists are written out by hand in the shapes of events.d.ts.
 */
#include "agent/permissions.h"
#include "agent/transcript.h"
#include "core/alloc.h"
#include "unit/unit.h"

#include <stdio.h>
#include <string.h>

static json_t *ev(const char *fmt)
{
	json_error_t e;
	json_t *v = json_loads(fmt, 0, &e);

	if (v == NULL)
		al_test_fail(__FILE__, __LINE__, "bad JSON in test: %s: %s", e.text, fmt);
	return v;
}

/* Events from a JSON array text. */
static json_t *events(const char *text)
{
	return ev(text);
}

static enum al_turn_action decide(const char *text, int in_flight, struct al_turn_state *out)
{
	json_t *e = events(text);
	struct al_turn_state st;
	enum al_turn_action a;

	AL_ASSERT_INT_EQ(al_transcript_analyze(e, &st), 0);
	a = al_transcript_decide(&st, in_flight);
	if (out)
		*out = st;
	else
		al_turn_state_clear(&st);
	json_decref(e);
	return a;
}

#define MSG                                                                                        \
	"{\"type\":\"user.message\",\"id\":\"u1\",\"content\":[{\"type\":\"text\",\"text\":"       \
	"\"hi\"}]}"
#define RUN   "{\"type\":\"session.status_running\",\"id\":\"r1\"}"
#define START "{\"type\":\"span.model_request_start\",\"id\":\"s1\"}"
#define END                                                                                        \
	"{\"type\":\"span.model_request_end\",\"id\":\"e1\",\"model_request_start_id\":\"s1\","    \
	"\"is_error\":false}"
#define BASH                                                                                       \
	"{\"type\":\"agent.tool_use\",\"id\":\"t1\",\"name\":\"bash\",\"input\":{\"command\":"     \
	"\"ls\"},\"evaluated_permission\":\"allow\"}"
#define BASH_ASK                                                                                   \
	"{\"type\":\"agent.tool_use\",\"id\":\"t1\",\"name\":\"bash\",\"input\":{\"command\":"     \
	"\"ls\"},\"evaluated_permission\":\"ask\"}"
#define CUSTOM                                                                                     \
	"{\"type\":\"agent.custom_tool_use\",\"id\":\"c1\",\"name\":\"lookup\",\"input\":{\"q\":"  \
	"1}}"
#define RESULT                                                                                     \
	"{\"type\":\"user.tool_result\",\"id\":\"ur1\",\"tool_use_id\":\"t1\",\"content\":[{"      \
	"\"type\":\"text\",\"text\":\"a.txt\"}]}"

AL_TEST(transcript_full_turn_messages)
{
	json_t *e = events(
	    "[" MSG "," RUN "," START ","
	    "{\"type\":\"agent.thinking\",\"id\":\"th\"},"
	    "{\"type\":\"agent.message\",\"id\":\"m1\",\"content\":[{\"type\":\"text\","
	    "\"text\":\"let me look\"},{\"type\":\"redacted\"}]}," BASH "," END "," RESULT "]");
	json_t *m = al_transcript_messages(e, json_array_size(e));
	json_t *expect =
	    ev("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
	       "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"let me look\"},"
	       "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"bash\",\"input\":{\"command\":"
	       "\"ls\"}}]},"
	       "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
	       "\"content\":[{\"type\":\"text\",\"text\":\"a.txt\"}]}]}]");

	AL_ASSERT_NOT_NULL(m);
	if (!json_equal(m, expect)) {
		char *s = json_dumps(m, JSON_COMPACT);
		al_test_fail(__FILE__, __LINE__, "messages: %s", s);
	}
	json_decref(m);
	/* only events before the start: the request of that call */
	m = al_transcript_messages(e, 2);
	AL_ASSERT_INT_EQ(json_array_size(m), 1);
	json_decref(m);
	json_decref(e);
	json_decref(expect);
}

AL_TEST(transcript_results_lead_and_late_results_drop)
{
	/* A user.message sent while bash runs, then the result, then a duplicate. */
	json_t *e = events("[" MSG "," START "," BASH "," END ","
			   "{\"type\":\"user.message\",\"id\":\"u2\",\"content\":[{\"type\":"
			   "\"text\",\"text\":\"also this\"}]}," RESULT "," RESULT "]");
	json_t *m = al_transcript_messages(e, json_array_size(e)), *last;

	AL_ASSERT_INT_EQ(json_array_size(m), 3);
	last = json_object_get(json_array_get(m, 2), "content");
	AL_ASSERT_INT_EQ(json_array_size(last), 2);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(last, 0), "type")),
			 "tool_result");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(last, 1), "text")),
			 "also this");
	json_decref(m);
	json_decref(e);
}

AL_TEST(transcript_deny_interrupt_and_refusal_results)
{
	json_t *e =
	    events("[" MSG "," START "," BASH_ASK ","
		   "{\"type\":\"agent.tool_use\",\"id\":\"t2\",\"name\":\"web_fetch\",\"input\":{},"
		   "\"evaluated_permission\":\"deny\"},"
		   "{\"type\":\"agent.tool_use\",\"id\":\"t3\",\"name\":\"bash\",\"input\":{},"
		   "\"evaluated_permission\":\"allow\"}," END ","
		   "{\"type\":\"user.tool_confirmation\",\"id\":\"k1\",\"tool_use_id\":\"t1\","
		   "\"result\":\"deny\",\"deny_message\":\"too risky\"},"
		   "{\"type\":\"user.interrupt\",\"id\":\"i1\"},"
		   "{\"type\":\"user.tool_result\",\"id\":\"late\",\"tool_use_id\":\"t3\"}]");
	json_t *m = al_transcript_messages(e, json_array_size(e)), *res;
	const char *txt;

	AL_ASSERT_INT_EQ(json_array_size(m), 3);
	/* the assistant message keeps its three calls together */
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(json_array_get(m, 1), "content")), 3);
	res = json_object_get(json_array_get(m, 2), "content");
	AL_ASSERT_INT_EQ(json_array_size(res), 3);
	/* t2 (refused, answered right after the response), t1 (denied), t3 (interrupted) */
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "tool_use_id")),
			 "t2");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(res, 1), "tool_use_id")),
			 "t1");
	txt = json_string_value(json_object_get(
	    json_array_get(json_object_get(json_array_get(res, 1), "content"), 0), "text"));
	AL_ASSERT(strstr(txt, "denied") && strstr(txt, "too risky"));
	AL_ASSERT(json_is_true(json_object_get(json_array_get(res, 1), "is_error")));
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(res, 2), "tool_use_id")),
			 "t3");
	txt = json_string_value(json_object_get(
	    json_array_get(json_object_get(json_array_get(res, 2), "content"), 0), "text"));
	AL_ASSERT(strstr(txt, "no result") != NULL);
	json_decref(m);
	json_decref(e);
}

AL_TEST(transcript_decide_turn_lifecycle)
{
	struct al_turn_state st;

	AL_ASSERT_INT_EQ(decide("[]", 0, NULL), AL_TURN_NONE);
	AL_ASSERT_INT_EQ(decide("[" MSG "]", 0, NULL), AL_TURN_START);
	/* a call in flight: wait; the same log after a restart: call again */
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "]", 1, NULL), AL_TURN_NONE);
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "]", 0, &st), AL_TURN_CALL);
	AL_ASSERT_STR_EQ(st.open_start_id, "s1");
	al_turn_state_clear(&st);
	/* a response with an allowed bash call: wait for the worker */
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," BASH "," END "]", 0, &st),
			 AL_TURN_NONE);
	AL_ASSERT_INT_EQ(st.outstanding, 1);
	AL_ASSERT_INT_EQ(st.tool_uses, 1);
	AL_ASSERT_INT_EQ(json_array_size(st.blocking), 0);
	al_turn_state_clear(&st);
	/* its result: call the model again */
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," BASH "," END "," RESULT "]", 0, NULL),
			 AL_TURN_CALL);
	/* a final text response: end the turn */
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START
				",{\"type\":\"agent.message\",\"id\":\"m\",\"content\":[]}," END
				"]",
				0, NULL),
			 AL_TURN_END);
	/* idle end_turn then a new message: a new turn */
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," END
				",{\"type\":\"session.status_idle\",\"stop_reason\":{\"type\":"
				"\"end_turn\"}}]",
				0, NULL),
			 AL_TURN_NONE);
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," END
				",{\"type\":\"session.status_idle\",\"stop_reason\":{\"type\":"
				"\"end_turn\"}}," MSG "]",
				0, NULL),
			 AL_TURN_START);
	/* a message that arrived during the call is not seen by it: call again */
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," MSG "," END "]", 0, NULL),
			 AL_TURN_CALL);
	/* a failed call does not consume its inputs, the session.error does */
	AL_ASSERT_INT_EQ(
	    decide("[" MSG "," RUN "," START
		   ",{\"type\":\"span.model_request_end\",\"model_request_start_id\":\"s1\","
		   "\"is_error\":true}]",
		   0, NULL),
	    AL_TURN_CALL);
	AL_ASSERT_INT_EQ(
	    decide("[" MSG "," RUN "," START
		   ",{\"type\":\"span.model_request_end\",\"model_request_start_id\":\"s1\","
		   "\"is_error\":true},{\"type\":\"session.error\"},{\"type\":\"session.status_"
		   "idle\",\"stop_reason\":{\"type\":\"retries_exhausted\"}}]",
		   0, NULL),
	    AL_TURN_NONE);
	/* a message that raced the end_turn idle starts the next turn */
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," END "," MSG
				",{\"type\":\"session.status_idle\",\"stop_reason\":{\"type\":"
				"\"end_turn\"}}]",
				0, NULL),
			 AL_TURN_START);
}

#define IDLE_C1                                                                                    \
	"{\"type\":\"session.status_idle\",\"stop_reason\":{\"type\":\"requires_action\","         \
	"\"event_ids\":[\"c1\"]}}"

AL_TEST(transcript_decide_custom_tool_requires_action)
{
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," CUSTOM "," END "]", 0, NULL),
			 AL_TURN_REQUIRES_ACTION);
	AL_ASSERT_INT_EQ(
	    decide("[" MSG "," RUN "," START "," CUSTOM "," END "," IDLE_C1 "]", 0, NULL),
	    AL_TURN_NONE);
	AL_ASSERT_INT_EQ(
	    decide("[" MSG "," RUN "," START "," CUSTOM "," END "," IDLE_C1
		   ",{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"c1\"}]",
		   0, NULL),
	    AL_TURN_CALL);
	/* custom + bash: the bash result alone changes nothing, the idle stays */
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," CUSTOM "," BASH "," END "," IDLE_C1
				"," RESULT "]",
				0, NULL),
			 AL_TURN_NONE);
	/* the custom result with bash still running: back to running, wait */
	AL_ASSERT_INT_EQ(
	    decide("[" MSG "," RUN "," START "," CUSTOM "," BASH "," END "," IDLE_C1
		   ",{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"c1\"}]",
		   0, NULL),
	    AL_TURN_RESUME);
	/* interrupt while waiting on the client */
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," CUSTOM "," END "," IDLE_C1
				",{\"type\":\"user.interrupt\"}]",
				0, NULL),
			 AL_TURN_INTERRUPT);
}

AL_TEST(transcript_decide_confirmation)
{
	struct al_turn_state st;

	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," BASH_ASK "," END "]", 0, &st),
			 AL_TURN_REQUIRES_ACTION);
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(st.blocking, 0)), "t1");
	al_turn_state_clear(&st);
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," BASH_ASK "," END
				",{\"type\":\"session.status_idle\",\"stop_reason\":{\"type\":"
				"\"requires_action\",\"event_ids\":[\"t1\"]}},"
				"{\"type\":\"user.tool_confirmation\",\"tool_use_id\":\"t1\","
				"\"result\":\"allow\"}]",
				0, NULL),
			 AL_TURN_RESUME);
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," BASH_ASK "," END
				",{\"type\":\"session.status_idle\",\"stop_reason\":{\"type\":"
				"\"requires_action\",\"event_ids\":[\"t1\"]}},"
				"{\"type\":\"user.tool_confirmation\",\"tool_use_id\":\"t1\","
				"\"result\":\"deny\"}]",
				0, NULL),
			 AL_TURN_CALL);
}

AL_TEST(transcript_decide_interrupt_and_reschedule)
{
	AL_ASSERT_INT_EQ(
	    decide("[" MSG "," RUN "," START ",{\"type\":\"user.interrupt\"}]", 1, NULL),
	    AL_TURN_INTERRUPT);
	/* an interrupt on an idle session does nothing */
	AL_ASSERT_INT_EQ(decide("[{\"type\":\"user.interrupt\"}]", 0, NULL), AL_TURN_NONE);
	/* interrupt then a new message: end the turn first, the message starts the next */
	AL_ASSERT_INT_EQ(
	    decide("[" MSG "," RUN "," START ",{\"type\":\"user.interrupt\"}," MSG "]", 0, NULL),
	    AL_TURN_INTERRUPT);
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START ",{\"type\":\"user.interrupt\"}," MSG
				",{\"type\":\"session.status_idle\",\"stop_reason\":{\"type\":"
				"\"end_turn\"}}]",
				0, NULL),
			 AL_TURN_START);
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," BASH "," END
				",{\"type\":\"session.status_rescheduled\"}]",
				0, NULL),
			 AL_TURN_NONE);
	AL_ASSERT_INT_EQ(decide("[" MSG "," RUN "," START "," BASH "," END
				",{\"type\":\"session.status_rescheduled\"}," RESULT "]",
				0, NULL),
			 AL_TURN_CALL);
}

AL_TEST(permissions_policies)
{
	json_t *tools = ev("[{\"type\":\"agent_toolset_20260401\","
			   "\"default_config\":{\"enabled\":true,\"permission_policy\":{\"type\":"
			   "\"always_ask\"}},"
			   "\"configs\":[{\"name\":\"read\",\"permission_policy\":{\"type\":"
			   "\"always_allow\"}},{\"name\":\"write\",\"enabled\":false},"
			   "{\"name\":\"grep\",\"permission_policy\":{\"type\":\"auto\"}}]},"
			   "{\"type\":\"custom\",\"name\":\"lookup\",\"input_schema\":{\"type\":"
			   "\"object\"}}]");
	json_t *bare = ev("[{\"type\":\"agent_toolset_20260401\"}]");
	json_t *e = json_object();
	struct al_perm_result r;

	al_perm_evaluate(tools, "bash", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_ASK);
	AL_ASSERT_STR_EQ(r.policy, "always_ask");
	al_perm_evaluate(tools, "read", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_ALLOW);
	al_perm_evaluate(tools, "write", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_DENY);
	AL_ASSERT_NULL(r.policy);
	al_perm_evaluate(tools, "lookup", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_DENY);
	al_perm_evaluate(bare, "bash", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_ALLOW);
	AL_ASSERT_STR_EQ(r.policy, "always_allow");
	json_decref(e);
	e = json_array();
	al_perm_evaluate(e, "bash", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_DENY);
	json_decref(e);
	e = json_object();
	al_perm_evaluate(tools, "grep", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_ASK);
	AL_ASSERT_INT_EQ(al_perm_annotate(e, &r), 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "evaluated_permission")), "ask");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(e, "evaluation"), "type")), "auto");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(e, "evaluation"), "evaluated_permission"),
		"reason_code")),
	    "indeterminate");
	json_decref(tools);
	json_decref(bare);
	json_decref(e);
}

AL_TEST(transcript_tools_and_request_base)
{
	json_t *agent = ev(
	    "{\"model\":{\"id\":\"claude-test\"},\"system\":\"be brief\",\"tools\":["
	    "{\"type\":\"agent_toolset_20260401\",\"configs\":[{\"name\":\"bash\",\"enabled\":"
	    "false}]},{\"type\":\"custom\",\"name\":\"lookup\",\"description\":\"find\","
	    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}},"
	    "{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"x\"}]}");
	json_t *e = events("[{\"type\":\"system.message\",\"content\":[{\"type\":\"text\","
			   "\"text\":\"extra\"}]}]");
	json_t *req = al_transcript_request_base(agent, e, 1, 1024), *tools, *read;

	AL_ASSERT_NOT_NULL(req);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(req, "model")), "claude-test");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(req, "max_tokens")), 1024);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(req, "system")), "be brief\n\nextra");
	tools = json_object_get(req, "tools");
	AL_ASSERT_INT_EQ(json_array_size(tools), 6); /* read write edit glob grep + lookup */
	read = json_array_get(tools, 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(read, "name")), "read");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_array_get(
		json_object_get(json_object_get(read, "input_schema"), "required"), 0)),
	    "file_path");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(tools, 5), "name")),
			 "lookup");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_array_get(tools, 5), "description")), "find");
	for (const char *const *n = al_perm_builtin_names; *n; n++) {
		json_t *d = al_transcript_builtin_tool(*n);
		AL_ASSERT_NOT_NULL(d);
		AL_ASSERT_STR_EQ(
		    json_string_value(json_object_get(json_object_get(d, "input_schema"), "type")),
		    "object");
		json_decref(d);
	}
	json_decref(req);
	json_decref(agent);
	json_decref(e);
}

AL_TEST(transcript_response_events)
{
	json_t *tools = ev("[{\"type\":\"agent_toolset_20260401\"},{\"type\":\"custom\","
			   "\"name\":\"lookup\",\"input_schema\":{\"type\":\"object\"}}]");
	json_t *msg =
	    ev("{\"role\":\"assistant\",\"stop_reason\":\"tool_use\",\"content\":["
	       "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"x\"},"
	       "{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"},"
	       "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"bash\",\"input\":{"
	       "\"command\":\"ls\"}},"
	       "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"lookup\","
	       "\"input\":{\"q\":\"x\"}},"
	       "{\"type\":\"tool_use\",\"id\":\"toolu_3\",\"name\":\"nope\",\"input\":{}}]}");
	json_t *out = al_transcript_response_events(msg, tools), *e;

	AL_ASSERT_INT_EQ(json_array_size(out), 5);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(out, 0), "type")),
			 "agent.thinking");
	e = json_array_get(out, 1);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "type")), "agent.message");
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(e, "content")), 2);
	e = json_array_get(out, 2);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "type")), "agent.tool_use");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "evaluated_permission")), "allow");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(e, "input"), "command")),
			 "ls");
	AL_ASSERT_NULL(json_object_get(e, "id")); /* the bus assigns event ids */
	e = json_array_get(out, 3);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "type")), "agent.custom_tool_use");
	AL_ASSERT_NULL(json_object_get(e, "evaluated_permission"));
	e = json_array_get(out, 4);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "evaluated_permission")), "deny");
	AL_ASSERT_NULL(json_object_get(e, "evaluation"));
	json_decref(out);
	json_decref(msg);
	json_decref(tools);
}

AL_TEST(transcript_alloc_failures_unwind)
{
	/* Every allocation of building messages and a response fails in turn. */
	json_t *e = events("[" MSG "," RUN "," START ","
			   "{\"type\":\"agent.message\",\"id\":\"m1\",\"content\":[{\"type\":"
			   "\"text\",\"text\":\"x\"}]}," BASH "," END "," RESULT
			   ",{\"type\":\"user.interrupt\"}]");
	json_t *tools = ev("[{\"type\":\"agent_toolset_20260401\"}]");
	json_t *msg = ev("{\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"tool_use\","
			 "\"id\":\"t\",\"name\":\"bash\",\"input\":{\"command\":\"ls\"}}]}");
	int ok = 0;

	al_alloc_init();
	for (long n = 0; n < 400; n++) {
		json_t *m, *r;
		struct al_turn_state st;
		int rc;
		al_alloc_fail_after(n);
		m = al_transcript_messages(e, json_array_size(e));
		r = al_transcript_response_events(msg, tools);
		rc = al_transcript_analyze(e, &st);
		al_alloc_fail_after(-1);
		if (m != NULL && r != NULL && rc == 0)
			ok++;
		if (rc == 0)
			al_turn_state_clear(&st);
		json_decref(m);
		json_decref(r);
	}
	AL_ASSERT(ok > 0); /* the budget of 400 is enough for a full success */
	json_decref(e);
	json_decref(tools);
	json_decref(msg);
}
