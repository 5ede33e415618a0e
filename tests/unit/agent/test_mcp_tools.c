/*
 * test_mcp_tools.c - MCP tools in the agent loop's pure parts: model-facing
 * names, toolset selection (exact, glob, default), offering a tools/list
 * result (agent/mcp_tools.c), and the transcript's MCP events
 * (agent/transcript.c): messages, turn state, response events.
 */
#include "agent/mcp_tools.h"
#include "agent/transcript.h"
#include "core/alloc.h"
#include "unit/unit.h"

#include <regex.h>
#include <string.h>

static json_t *js(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);

	if (v == NULL)
		al_test_fail(__FILE__, __LINE__, "bad JSON in test: %s: %s", e.text, text);
	return v;
}

static int api_name_ok(const char *n)
{
	regex_t re;
	int ok;

	AL_ASSERT_INT_EQ(regcomp(&re, "^[a-zA-Z0-9_-]{1,64}$", REG_EXTENDED | REG_NOSUB), 0);
	ok = regexec(&re, n, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

AL_TEST(mcp_model_name)
{
	char a[AL_MCP_MODEL_NAME_MAX], b[AL_MCP_MODEL_NAME_MAX];
	char longtool[200];

	al_mcp_model_name("tickets", "get_ticket", a);
	AL_ASSERT_STR_EQ(a, "tickets__get_ticket");
	/* characters the API refuses are replaced, and a hash keeps pairs apart */
	al_mcp_model_name("my.server", "files/read", a);
	AL_ASSERT(api_name_ok(a));
	AL_ASSERT(strncmp(a, "my_server__files_read_", 22) == 0);
	al_mcp_model_name("my_server", "files_read", b);
	AL_ASSERT_STR_EQ(b, "my_server__files_read");
	AL_ASSERT(strcmp(a, b) != 0);
	al_mcp_model_name("my.server", "files.read", b);
	AL_ASSERT(strcmp(a, b) != 0);
	/* too long: cut and hashed, still valid, still distinct */
	memset(longtool, 'x', sizeof(longtool) - 1);
	longtool[sizeof(longtool) - 1] = '\0';
	al_mcp_model_name("tickets", longtool, a);
	AL_ASSERT_INT_EQ(strlen(a), 64);
	AL_ASSERT(api_name_ok(a));
	longtool[150] = 'y';
	al_mcp_model_name("tickets", longtool, b);
	AL_ASSERT(strcmp(a, b) != 0);
	/* pure: the same pair gives the same name */
	al_mcp_model_name("tickets", longtool, a);
	AL_ASSERT_STR_EQ(a, b);
	al_mcp_model_name("", "", a);
	AL_ASSERT(api_name_ok(a));
}

static const char *TOOLS =
    "[{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"tickets\","
    "\"default_config\":{\"enabled\":true,\"permission_policy\":{\"type\":\"always_allow\"}},"
    "\"configs\":[{\"name\":\"delete_*\",\"enabled\":false},"
    "{\"name\":\"delete_draft\",\"enabled\":true,\"permission_policy\":{\"type\":\"auto\"}},"
    "{\"name\":\"close_ticket\",\"permission_policy\":{\"type\":\"always_ask\"}},"
    "{\"name\":\"*\",\"enabled\":false}]},"
    "{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"wiki\"},"
    "{\"type\":\"custom\",\"name\":\"wiki__search\",\"input_schema\":{\"type\":\"object\"}}]";

AL_TEST(mcp_evaluate_configs)
{
	json_t *tools = js(TOOLS);
	struct al_perm_result r;

	/* "*" disables everything not named: an allow list */
	al_mcp_evaluate(tools, "tickets", "get_ticket", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_DENY);
	AL_ASSERT_NULL(r.policy);
	/* a glob denies a family; an exact name wins over it */
	al_mcp_evaluate(tools, "tickets", "delete_ticket", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_DENY);
	al_mcp_evaluate(tools, "tickets", "delete_draft", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_ASK);
	AL_ASSERT_STR_EQ(r.policy, "auto");
	al_mcp_evaluate(tools, "tickets", "close_ticket", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_ASK);
	AL_ASSERT_STR_EQ(r.policy, "always_ask");
	/* no configs: enabled, and an unset policy asks */
	al_mcp_evaluate(tools, "wiki", "anything", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_ASK);
	AL_ASSERT_STR_EQ(r.policy, "always_ask");
	/* a server without a toolset offers nothing */
	al_mcp_evaluate(tools, "other", "get_ticket", &r);
	AL_ASSERT_INT_EQ(r.perm, AL_PERM_DENY);
	json_decref(tools);
}

AL_TEST(mcp_offer_filters_and_maps)
{
	json_t *tools = js("[{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"tickets\","
			   "\"configs\":[{\"name\":\"delete_*\",\"enabled\":false}]},"
			   "{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"wiki\"}]");
	json_t *listed = js("{\"tools\":[{\"name\":\"get_ticket\",\"description\":\"Get one\","
			    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"id\":{"
			    "\"type\":\"string\"}}}},"
			    "{\"name\":\"delete_ticket\",\"inputSchema\":{\"type\":\"object\"}},"
			    "{\"name\":\"no_schema\"},{\"description\":\"nameless\"}]}");
	json_t *wiki =
	    js("{\"tools\":[{\"name\":\"search\",\"inputSchema\":{\"type\":\"object\"}}]}");
	json_t *defs = json_array(), *map = json_object(), *d;

	/* a name already in use (here a custom tool) is reserved */
	json_object_set_new(map, "wiki__search", json_null());
	AL_ASSERT_INT_EQ(al_mcp_offer(tools, "tickets", listed, defs, map), 2);
	AL_ASSERT_INT_EQ(al_mcp_offer(tools, "wiki", wiki, defs, map), 0);
	AL_ASSERT_INT_EQ(json_array_size(defs), 2);
	d = json_array_get(defs, 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(d, "name")), "tickets__get_ticket");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(d, "description")), "Get one");
	AL_ASSERT_NOT_NULL(json_object_get(
	    json_object_get(json_object_get(d, "input_schema"), "properties"), "id"));
	d = json_array_get(defs, 1);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(d, "name")), "tickets__no_schema");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(d, "input_schema"), "type")),
	    "object");
	AL_ASSERT_NULL(json_object_get(map, "tickets__delete_ticket"));
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(map, "tickets__get_ticket"), "tool")),
	    "get_ticket");
	AL_ASSERT(json_is_null(json_object_get(map, "wiki__search")));
	json_decref(defs);
	json_decref(map);
	json_decref(tools);
	json_decref(listed);
	json_decref(wiki);
}

AL_TEST(mcp_response_events)
{
	json_t *tools = js("[{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"tickets\","
			   "\"default_config\":{\"permission_policy\":{\"type\":\"always_allow\"}},"
			   "\"configs\":[{\"name\":\"close_ticket\",\"permission_policy\":{"
			   "\"type\":\"always_ask\"}}]}]");
	json_t *map =
	    js("{\"tickets__get_ticket\":{\"server\":\"tickets\",\"tool\":\"get_ticket\"},"
	       "\"tickets__close_ticket\":{\"server\":\"tickets\",\"tool\":"
	       "\"close_ticket\"},\"lookup\":null}");
	json_t *msg = js("{\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":"
			 "\"tickets__get_ticket\",\"input\":{\"id\":\"T-1\"}},"
			 "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":"
			 "\"tickets__close_ticket\",\"input\":{\"id\":\"T-1\"}},"
			 "{\"type\":\"tool_use\",\"id\":\"toolu_3\",\"name\":"
			 "\"tickets__delete_ticket\",\"input\":{}}]}");
	json_t *out = al_transcript_response_events_mcp(msg, tools, map), *e;

	AL_ASSERT_INT_EQ(json_array_size(out), 3);
	e = json_array_get(out, 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "type")), "agent.mcp_tool_use");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "name")), "get_ticket");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "mcp_server_name")), "tickets");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "evaluated_permission")), "allow");
	e = json_array_get(out, 1);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "evaluated_permission")), "ask");
	/* not offered: a plain refused tool use, never an MCP call */
	e = json_array_get(out, 2);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "type")), "agent.tool_use");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "evaluated_permission")), "deny");
	json_decref(out);
	json_decref(msg);
	json_decref(map);
	json_decref(tools);
}

AL_TEST(mcp_transcript_state_and_messages)
{
	json_t *evs =
	    js("[{\"type\":\"user.message\",\"id\":\"e1\",\"content\":[{\"type\":\"text\","
	       "\"text\":\"hi\"}]},"
	       "{\"type\":\"session.status_running\",\"id\":\"e2\"},"
	       "{\"type\":\"session.error\",\"id\":\"e3\",\"error\":{\"type\":"
	       "\"mcp_connection_failed_error\",\"mcp_server_name\":\"wiki\",\"message\":\"x\","
	       "\"retry_status\":{\"type\":\"exhausted\"}}},"
	       "{\"type\":\"span.model_request_start\",\"id\":\"e4\"},"
	       "{\"type\":\"agent.mcp_tool_use\",\"id\":\"e5\",\"name\":\"get_ticket\","
	       "\"mcp_server_name\":\"tickets\",\"input\":{\"id\":\"T-1\"},"
	       "\"evaluated_permission\":\"allow\"},"
	       "{\"type\":\"agent.mcp_tool_use\",\"id\":\"e6\",\"name\":\"close_ticket\","
	       "\"mcp_server_name\":\"tickets\",\"input\":{},\"evaluated_permission\":\"ask\"},"
	       "{\"type\":\"span.model_request_end\",\"id\":\"e7\",\"model_request_start_id\":"
	       "\"e4\",\"is_error\":false}]");
	json_t *more, *msgs, *m;
	struct al_turn_state st;

	/* the MCP error consumed nothing: the message is still the call's input */
	AL_ASSERT_INT_EQ(al_transcript_analyze(evs, &st), 0);
	AL_ASSERT_INT_EQ(st.outstanding, 2);
	AL_ASSERT_INT_EQ(json_array_size(st.mcp_runnable), 1);
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(st.mcp_runnable, 0)), "e5");
	AL_ASSERT_INT_EQ(json_array_size(st.blocking), 1);
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(st.blocking, 0)), "e6");
	AL_ASSERT_INT_EQ(al_transcript_decide(&st, 0), AL_TURN_REQUIRES_ACTION);
	al_turn_state_clear(&st);

	/* confirmed: runnable too; both answered: the next model call */
	more = js("[{\"type\":\"user.tool_confirmation\",\"id\":\"e8\",\"tool_use_id\":\"e6\","
		  "\"result\":\"allow\"},"
		  "{\"type\":\"agent.mcp_tool_result\",\"id\":\"e9\",\"mcp_tool_use_id\":\"e5\","
		  "\"content\":[{\"type\":\"text\",\"text\":\"T-1 open\"}],\"is_error\":false}]");
	json_array_extend(evs, more);
	AL_ASSERT_INT_EQ(al_transcript_analyze(evs, &st), 0);
	AL_ASSERT_INT_EQ(json_array_size(st.mcp_runnable), 1);
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(st.mcp_runnable, 0)), "e6");
	al_turn_state_clear(&st);
	json_decref(more);
	more = js("[{\"type\":\"agent.mcp_tool_result\",\"id\":\"e10\",\"mcp_tool_use_id\":\"e6\","
		  "\"content\":[{\"type\":\"text\",\"text\":\"closed\"}],\"is_error\":true}]");
	json_array_extend(evs, more);
	AL_ASSERT_INT_EQ(al_transcript_analyze(evs, &st), 0);
	AL_ASSERT_INT_EQ(st.outstanding, 0);
	AL_ASSERT_INT_EQ(al_transcript_decide(&st, 0), AL_TURN_CALL);
	al_turn_state_clear(&st);

	/* the model sees its own tool names and the results as tool_result blocks */
	msgs = al_transcript_messages(evs, json_array_size(evs));
	AL_ASSERT_INT_EQ(json_array_size(msgs), 3);
	m = json_array_get(json_object_get(json_array_get(msgs, 1), "content"), 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(m, "name")), "tickets__get_ticket");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(m, "id")), "e5");
	m = json_object_get(json_array_get(msgs, 2), "content");
	AL_ASSERT_INT_EQ(json_array_size(m), 2);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(m, 0), "tool_use_id")),
			 "e5");
	AL_ASSERT(json_is_true(json_object_get(json_array_get(m, 1), "is_error")));
	json_decref(msgs);
	json_decref(more);
	json_decref(evs);
}

AL_TEST(mcp_transcript_denied_confirmation)
{
	json_t *evs =
	    js("[{\"type\":\"user.message\",\"id\":\"e1\",\"content\":[{\"type\":\"text\","
	       "\"text\":\"hi\"}]},"
	       "{\"type\":\"session.status_running\",\"id\":\"e2\"},"
	       "{\"type\":\"span.model_request_start\",\"id\":\"e4\"},"
	       "{\"type\":\"agent.mcp_tool_use\",\"id\":\"e6\",\"name\":\"close_ticket\","
	       "\"mcp_server_name\":\"tickets\",\"input\":{},\"evaluated_permission\":\"ask\"},"
	       "{\"type\":\"span.model_request_end\",\"id\":\"e7\",\"model_request_start_id\":"
	       "\"e4\",\"is_error\":false},"
	       "{\"type\":\"user.tool_confirmation\",\"id\":\"e8\",\"tool_use_id\":\"e6\","
	       "\"result\":\"deny\",\"deny_message\":\"no\"}]");
	json_t *msgs, *m;
	struct al_turn_state st;

	AL_ASSERT_INT_EQ(al_transcript_analyze(evs, &st), 0);
	AL_ASSERT_INT_EQ(st.outstanding, 0);
	AL_ASSERT_INT_EQ(json_array_size(st.mcp_runnable), 0);
	AL_ASSERT_INT_EQ(al_transcript_decide(&st, 0), AL_TURN_CALL);
	al_turn_state_clear(&st);
	msgs = al_transcript_messages(evs, json_array_size(evs));
	m = json_array_get(json_object_get(json_array_get(msgs, 2), "content"), 0);
	AL_ASSERT(json_is_true(json_object_get(m, "is_error")));
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(m, "tool_use_id")), "e6");
	json_decref(msgs);
	json_decref(evs);
}

AL_TEST(mcp_transcript_client_cannot_answer)
{
	/* a user.tool_result naming an MCP call neither closes it nor reaches the model */
	json_t *evs =
	    js("[{\"type\":\"user.message\",\"id\":\"e1\",\"content\":[{\"type\":\"text\","
	       "\"text\":\"hi\"}]},"
	       "{\"type\":\"session.status_running\",\"id\":\"e2\"},"
	       "{\"type\":\"span.model_request_start\",\"id\":\"e4\"},"
	       "{\"type\":\"agent.mcp_tool_use\",\"id\":\"e5\",\"name\":\"get_ticket\","
	       "\"mcp_server_name\":\"tickets\",\"input\":{},\"evaluated_permission\":\"allow\"},"
	       "{\"type\":\"span.model_request_end\",\"id\":\"e7\",\"model_request_start_id\":"
	       "\"e4\",\"is_error\":false},"
	       "{\"type\":\"user.tool_result\",\"id\":\"e8\",\"tool_use_id\":\"e5\","
	       "\"content\":[{\"type\":\"text\",\"text\":\"forged\"}]}]");
	json_t *msgs, *more;
	struct al_turn_state st;
	char *dump;

	AL_ASSERT_INT_EQ(al_transcript_analyze(evs, &st), 0);
	AL_ASSERT_INT_EQ(st.outstanding, 1);
	AL_ASSERT_INT_EQ(json_array_size(st.mcp_runnable), 1);
	AL_ASSERT_INT_EQ(al_transcript_decide(&st, 0), AL_TURN_NONE);
	al_turn_state_clear(&st);
	more = js("[{\"type\":\"agent.mcp_tool_result\",\"id\":\"e9\",\"mcp_tool_use_id\":\"e5\","
		  "\"content\":[{\"type\":\"text\",\"text\":\"real\"}],\"is_error\":false}]");
	json_array_extend(evs, more);
	msgs = al_transcript_messages(evs, json_array_size(evs));
	dump = json_dumps(msgs, JSON_COMPACT);
	AL_ASSERT(strstr(dump, "real") != NULL);
	AL_ASSERT(strstr(dump, "forged") == NULL);
	al_free(dump);
	json_decref(msgs);
	json_decref(more);
	json_decref(evs);
}
