/* transcript.c - events to messages, turn state, next step, response to events. */
#include "agent/transcript.h"

#include "agent/mcp_tools.h"
#include "agent/permissions.h"
#include "core/buf.h"

#include <errno.h>
#include <string.h>

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int is(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

/* ---- events -> messages ---- */

struct builder {
	json_t *messages;
	json_t *results;  /* pending user tool_result blocks */
	json_t *others;	  /* pending user content blocks */
	json_t *deferred; /* results made by a response itself (denials), due after it */
	json_t *open;	  /* object: call id -> true, for calls not yet answered */
};

/* Appends blocks to the last message when it has role, else a new message. */
static int add_blocks(json_t *messages, const char *role, json_t *blocks)
{
	json_t *last = json_array_get(messages, json_array_size(messages) - 1);

	if (json_array_size(blocks) == 0)
		return 0;
	if (last != NULL && is(str_of(last, "role"), role))
		return json_array_extend(json_object_get(last, "content"), blocks);
	/* a shallow copy: the caller clears `blocks` for reuse */
	return json_array_append_new(
	    messages, json_pack("{s:s, s:o}", "role", role, "content", json_copy(blocks)));
}

static int flush_user(struct builder *b)
{
	int rc = 0;

	if (json_array_extend(b->results, b->deferred) < 0)
		return -ENOMEM;
	json_array_clear(b->deferred);
	/* tool_result blocks must lead the user message */
	if (add_blocks(b->messages, "user", b->results) < 0 ||
	    add_blocks(b->messages, "user", b->others) < 0)
		rc = -ENOMEM;
	json_array_clear(b->results);
	json_array_clear(b->others);
	return rc;
}

static int add_assistant(struct builder *b, json_t *block)
{
	json_t *arr = json_array();
	int rc = 0;

	if (arr == NULL || block == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if (json_array_size(b->results) || json_array_size(b->others))
		if ((rc = flush_user(b)) < 0)
			goto done;
	if (json_array_append(arr, block) < 0 || add_blocks(b->messages, "assistant", arr) < 0)
		rc = -ENOMEM;
done:
	json_decref(arr);
	json_decref(block);
	return rc;
}

static json_t *error_result(const char *id, const char *text)
{
	return json_pack("{s:s, s:s, s:b, s:[{s:s, s:s}]}", "type", "tool_result", "tool_use_id",
			 id, "is_error", 1, "content", "type", "text", "text", text);
}

/* An answer for an open call; consumes `result`. Unknown or closed ids are dropped. */
static int answer(struct builder *b, const char *id, json_t *result, json_t *into)
{
	int rc = 0;

	if (result == NULL)
		return -ENOMEM;
	if (id != NULL && json_object_get(b->open, id) != NULL) {
		json_object_del(b->open, id);
		rc = json_array_append(into, result) < 0 ? -ENOMEM : 0;
	}
	json_decref(result);
	return rc;
}

static int close_open(struct builder *b)
{
	const char *id;
	json_t *v, *ids = json_array();
	size_t i;
	int rc = 0;

	if (ids == NULL)
		return -ENOMEM;
	json_object_foreach(b->open, id, v)
	{
		json_array_append_new(ids, json_string(id));
	}
	json_array_foreach(ids, i, v)
	{
		rc = answer(b, json_string_value(v),
			    error_result(json_string_value(v),
					 "[no result: the turn ended before this tool call was "
					 "answered]"),
			    b->results);
		if (rc < 0)
			break;
	}
	json_decref(ids);
	return rc;
}

static json_t *copy_blocks(const json_t *content, const char *const *allowed)
{
	json_t *out = json_array(), *blk;
	size_t i;

	if (out == NULL)
		return NULL;
	json_array_foreach(content, i, blk)
	{
		const char *t = str_of(blk, "type");
		int ok = 0;
		for (size_t k = 0; allowed[k] && !ok; k++)
			ok = is(t, allowed[k]);
		/* the Messages API rejects empty text blocks */
		if (ok && is(t, "text") && (str_of(blk, "text") == NULL || !*str_of(blk, "text")))
			ok = 0;
		if (ok && json_array_append(out, blk) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static json_t *result_block(const char *id, const json_t *ev)
{
	static const char *const allowed[] = {"text", "image", "document", "search_result", NULL};
	json_t *r = json_pack("{s:s, s:s}", "type", "tool_result", "tool_use_id", id);
	const json_t *content = json_object_get(ev, "content");

	if (r == NULL)
		return NULL;
	if (json_is_array(content) && json_array_size(content) > 0) {
		json_t *c = copy_blocks(content, allowed);
		if (c == NULL || json_object_set_new(r, "content", c) < 0) {
			json_decref(r);
			return NULL;
		}
	}
	if (json_is_true(json_object_get(ev, "is_error")))
		json_object_set_new(r, "is_error", json_true());
	return r;
}

static int is_turn_end_idle(const json_t *ev)
{
	return is(str_of(ev, "type"), "session.status_idle") &&
	       !is(str_of(json_object_get(ev, "stop_reason"), "type"), "requires_action");
}

/*
 * A tool_use block for event ev (its id, the name the model knows), left
 * open until a result answers it; a denied one is answered at once. mcp: it
 * is marked so that only the control plane's own agent.mcp_tool_result
 * answers it.
 */
static int add_tool_use(struct builder *b, const json_t *ev, const char *id, const char *name,
			int mcp)
{
	const json_t *input = json_object_get(ev, "input");
	json_t *blk;
	int rc;

	blk = json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name", name, "input",
			json_is_object(input) ? json_deep_copy(input) : json_object());
	if ((rc = add_assistant(b, blk)) < 0)
		return rc;
	if (json_object_set_new(b->open, id, mcp ? json_string("mcp") : json_true()) < 0)
		return -ENOMEM;
	if (is(str_of(ev, "evaluated_permission"), "deny"))
		return answer(b, id, error_result(id, "This tool is not enabled for this agent."),
			      b->deferred);
	return 0;
}

static int add_event(struct builder *b, const json_t *ev)
{
	static const char *const user_allowed[] = {"text", "image", "document", NULL};
	static const char *const agent_allowed[] = {"text", NULL};
	const char *type = str_of(ev, "type"), *id = str_of(ev, "id");

	if (type == NULL)
		return 0;
	/* denial results made by a response are due once the response is over */
	if (strncmp(type, "agent.", 6) != 0 && json_array_size(b->deferred) > 0)
		if (json_array_extend(b->results, b->deferred) < 0)
			return -ENOMEM;
	if (strncmp(type, "agent.", 6) != 0)
		json_array_clear(b->deferred);

	if (is(type, "user.message")) {
		json_t *c = copy_blocks(json_object_get(ev, "content"), user_allowed);
		int rc = c ? json_array_extend(b->others, c) : -1;
		json_decref(c);
		return rc < 0 ? -ENOMEM : 0;
	}
	if (is(type, "agent.message")) {
		json_t *c = copy_blocks(json_object_get(ev, "content"), agent_allowed), *blk;
		size_t i;
		int rc = c ? 0 : -ENOMEM;
		json_array_foreach(c, i, blk)
		{
			if ((rc = add_assistant(b, json_incref(blk))) < 0)
				break;
		}
		json_decref(c);
		return rc;
	}
	if (is(type, "agent.tool_use") || is(type, "agent.custom_tool_use"))
		return id == NULL ? 0 : add_tool_use(b, ev, id, str_of(ev, "name") ?: "", 0);
	if (is(type, "agent.mcp_tool_use")) {
		char name[AL_MCP_MODEL_NAME_MAX];
		if (id == NULL)
			return 0;
		/* the name the model was offered, rebuilt from server and tool */
		al_mcp_model_name(str_of(ev, "mcp_server_name") ?: "", str_of(ev, "name") ?: "",
				  name);
		return add_tool_use(b, ev, id, name, 1);
	}
	if (is(type, "agent.mcp_tool_result"))
		return answer(b, str_of(ev, "mcp_tool_use_id"),
			      result_block(str_of(ev, "mcp_tool_use_id") ?: "", ev), b->results);
	if ((is(type, "user.tool_result") || is(type, "agent.tool_result")) &&
	    json_is_string(json_object_get(b->open, str_of(ev, "tool_use_id") ?: "")))
		return 0; /* a client cannot answer an MCP call in the control plane's place */
	if (is(type, "user.tool_result") || is(type, "agent.tool_result"))
		return answer(b, str_of(ev, "tool_use_id"),
			      result_block(str_of(ev, "tool_use_id") ?: "", ev), b->results);
	if (is(type, "user.custom_tool_result"))
		return answer(b, str_of(ev, "custom_tool_use_id"),
			      result_block(str_of(ev, "custom_tool_use_id") ?: "", ev), b->results);
	if (is(type, "user.tool_confirmation") && is(str_of(ev, "result"), "deny")) {
		const char *tid = str_of(ev, "tool_use_id"), *why = str_of(ev, "deny_message");
		al_buf msg = {0};
		int rc;
		if (al_buf_append_str(&msg, "The user denied permission to run this tool call.") <
			0 ||
		    (why && *why && al_buf_appendf(&msg, " Reason: %s", why) < 0)) {
			al_buf_free(&msg);
			return -ENOMEM;
		}
		rc = answer(b, tid, error_result(tid ?: "", msg.data), b->results);
		al_buf_free(&msg);
		return rc;
	}
	if (is(type, "user.interrupt") || is_turn_end_idle(ev))
		return close_open(b);
	return 0;
}

json_t *al_transcript_messages(const json_t *events, size_t n)
{
	struct builder b = {json_array(), json_array(), json_array(), json_array(), json_object()};
	json_t *out = NULL;

	if (!b.messages || !b.results || !b.others || !b.deferred || !b.open)
		goto done;
	for (size_t i = 0; i < n && i < json_array_size(events); i++)
		if (add_event(&b, json_array_get(events, i)) < 0)
			goto done;
	if (flush_user(&b) < 0)
		goto done;
	out = json_incref(b.messages);
done:
	json_decref(b.messages);
	json_decref(b.results);
	json_decref(b.others);
	json_decref(b.deferred);
	json_decref(b.open);
	return out;
}

/* ---- requests ---- */

const char *al_transcript_model(const json_t *agent)
{
	const json_t *m = json_object_get(agent, "model");

	if (json_is_string(m))
		return json_string_value(m);
	return str_of(m, "id");
}

/* Schemas match the SDK's tools/agent-toolset/node.js and the protocol reference. */
json_t *al_transcript_builtin_tool(const char *name)
{
	if (is(name, "bash"))
		return json_pack(
		    "{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}}}}", "name",
		    "bash", "description",
		    "Run a bash command in a persistent shell. State (cwd, env vars) persists "
		    "across calls.",
		    "input_schema", "type", "object", "properties", "command", "type", "string",
		    "description", "The command to run", "restart", "type", "boolean",
		    "description", "Restart the persistent shell before running", "timeout_ms",
		    "type", "integer", "description", "Per-call timeout in milliseconds");
	if (is(name, "read"))
		return json_pack(
		    "{s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s, s:{s:s}, s:s}}, s:[s]}}", "name",
		    "read", "description", "Read a UTF-8 text file relative to the workdir.",
		    "input_schema", "type", "object", "properties", "file_path", "type", "string",
		    "view_range", "type", "array", "items", "type", "integer", "description",
		    "[start_line, end_line] 1-indexed inclusive", "required", "file_path");
	if (is(name, "write"))
		return json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s}}, s:[s, s]}}", "name",
				 "write", "description",
				 "Write a UTF-8 text file relative to the workdir, creating parent "
				 "directories as needed.",
				 "input_schema", "type", "object", "properties", "file_path",
				 "type", "string", "content", "type", "string", "required",
				 "file_path", "content");
	if (is(name, "edit"))
		return json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}, "
				 "s:[s, s, s]}}",
				 "name", "edit", "description",
				 "Replace old_string with new_string in a file. old_string must be "
				 "unique unless replace_all.",
				 "input_schema", "type", "object", "properties", "file_path",
				 "type", "string", "old_string", "type", "string", "new_string",
				 "type", "string", "replace_all", "type", "boolean", "required",
				 "file_path", "old_string", "new_string");
	if (is(name, "glob"))
		return json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s, s:s}}, s:[s]}}", "name",
				 "glob", "description",
				 "Match files under the workdir against a glob pattern. Results "
				 "are mtime-sorted, newest first.",
				 "input_schema", "type", "object", "properties", "pattern", "type",
				 "string", "path", "type", "string", "description",
				 "Directory to search in. Defaults to the workdir.", "required",
				 "pattern");
	if (is(name, "grep"))
		return json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s}}, s:[s]}}", "name", "grep",
				 "description",
				 "Search file contents for a regex. Uses ripgrep if available, "
				 "otherwise a built-in walker.",
				 "input_schema", "type", "object", "properties", "pattern", "type",
				 "string", "path", "type", "string", "required", "pattern");
	return NULL;
}

json_t *al_transcript_tools(const json_t *agent_tools)
{
	json_t *out = json_array(), *t;
	size_t i;

	if (out == NULL)
		return NULL;
	if (al_perm_toolset(agent_tools) != NULL) {
		for (size_t k = 0; al_perm_builtin_names[k] != NULL; k++) {
			if (!al_perm_builtin_enabled(agent_tools, al_perm_builtin_names[k]))
				continue;
			if (json_array_append_new(
				out, al_transcript_builtin_tool(al_perm_builtin_names[k])) < 0)
				goto fail;
		}
	}
	json_array_foreach(agent_tools, i, t)
	{
		json_t *def;
		if (!is(str_of(t, "type"), "custom") || str_of(t, "name") == NULL)
			continue;
		def = json_pack("{s:s, s:O?}", "name", str_of(t, "name"), "input_schema",
				json_object_get(t, "input_schema"));
		if (def == NULL)
			goto fail;
		if (str_of(t, "description"))
			json_object_set(def, "description", json_object_get(t, "description"));
		if (json_object_get(def, "input_schema") == NULL)
			json_object_set_new(def, "input_schema",
					    json_pack("{s:s}", "type", "object"));
		if (json_array_append_new(out, def) < 0)
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

json_t *al_transcript_request_base(const json_t *agent, const json_t *events, size_t n,
				   int64_t max_tokens)
{
	const char *model = al_transcript_model(agent), *system = str_of(agent, "system");
	json_t *req = NULL, *tools = NULL;
	al_buf sys = {0};

	if (model == NULL)
		goto fail;
	req = json_pack("{s:s, s:I}", "model", model, "max_tokens", (json_int_t)max_tokens);
	if (req == NULL)
		goto fail;
	if (system != NULL && *system && al_buf_append_str(&sys, system) < 0)
		goto fail;
	/* system.message: privileged context appended to the system prompt */
	for (size_t i = 0; i < n && i < json_array_size(events); i++) {
		const json_t *ev = json_array_get(events, i), *blk;
		size_t j;
		if (!is(str_of(ev, "type"), "system.message"))
			continue;
		json_array_foreach(json_object_get(ev, "content"), j, blk)
		{
			const char *text = str_of(blk, "text");
			if (text == NULL)
				continue;
			if ((sys.len && al_buf_append_str(&sys, "\n\n") < 0) ||
			    al_buf_append_str(&sys, text) < 0)
				goto fail;
		}
	}
	if (sys.len && json_object_set_new(req, "system", json_string(sys.data)) < 0)
		goto fail;
	tools = al_transcript_tools(json_object_get(agent, "tools"));
	if (tools == NULL)
		goto fail;
	if (json_array_size(tools) && json_object_set(req, "tools", tools) < 0)
		goto fail;
	json_decref(tools);
	al_buf_free(&sys);
	return req;
fail:
	json_decref(tools);
	json_decref(req);
	al_buf_free(&sys);
	return NULL;
}

static int is_custom_tool(const json_t *agent_tools, const char *name)
{
	const json_t *t;
	size_t i;

	json_array_foreach(agent_tools, i, t)
	{
		if (is(str_of(t, "type"), "custom") && is(str_of(t, "name"), name))
			return 1;
	}
	return 0;
}

json_t *al_transcript_response_events(const json_t *message, const json_t *agent_tools)
{
	return al_transcript_response_events_mcp(message, agent_tools, NULL);
}

json_t *al_transcript_response_events_mcp(const json_t *message, const json_t *agent_tools,
					  const json_t *mcp_map)
{
	json_t *out = json_array(), *text_run = NULL, *blk;
	size_t i;

	if (out == NULL)
		return NULL;
	json_array_foreach(json_object_get(message, "content"), i, blk)
	{
		const char *t = str_of(blk, "type");
		json_t *ev = NULL;

		if (is(t, "text")) {
			if (str_of(blk, "text") == NULL || !*str_of(blk, "text"))
				continue;
			if (text_run == NULL) {
				ev = json_pack("{s:s, s:[]}", "type", "agent.message", "content");
				if (ev == NULL || json_array_append_new(out, ev) < 0)
					goto fail;
				text_run = json_object_get(ev, "content");
			}
			if (json_array_append_new(text_run,
						  json_pack("{s:s, s:s}", "type", "text", "text",
							    str_of(blk, "text"))) < 0)
				goto fail;
			continue;
		}
		text_run = NULL;
		if (is(t, "thinking") || is(t, "redacted_thinking")) {
			ev = json_pack("{s:s}", "type", "agent.thinking");
		} else if (is(t, "tool_use")) {
			const char *name = str_of(blk, "name") ?: "";
			json_t *input = json_object_get(blk, "input");
			const json_t *mcp = json_object_get(mcp_map, name);
			int custom = is_custom_tool(agent_tools, name) &&
				     !al_perm_builtin_enabled(agent_tools, name);
			/* reserved names are in the map as null (agent/mcp_tools.h) */
			if (json_is_object(mcp) && !custom &&
			    !al_perm_builtin_enabled(agent_tools, name)) {
				struct al_perm_result pr;
				ev = json_pack("{s:s, s:s, s:s, s:o}", "type", "agent.mcp_tool_use",
					       "name", str_of(mcp, "tool") ?: "", "mcp_server_name",
					       str_of(mcp, "server") ?: "", "input",
					       json_is_object(input) ? json_deep_copy(input)
								     : json_object());
				al_mcp_evaluate(agent_tools, str_of(mcp, "server"),
						str_of(mcp, "tool"), &pr);
				if (ev != NULL && al_perm_annotate(ev, &pr) < 0) {
					json_decref(ev);
					goto fail;
				}
				if (ev == NULL || json_array_append_new(out, ev) < 0)
					goto fail;
				continue;
			}
			ev = json_pack(
			    "{s:s, s:s, s:o}", "type",
			    custom ? "agent.custom_tool_use" : "agent.tool_use", "name", name,
			    "input", json_is_object(input) ? json_deep_copy(input) : json_object());
			if (ev != NULL && !custom) {
				struct al_perm_result pr;
				al_perm_evaluate(agent_tools, name, &pr);
				if (al_perm_annotate(ev, &pr) < 0) {
					json_decref(ev);
					goto fail;
				}
			}
		} else {
			continue; /* server tool blocks etc.: nothing a client can act on */
		}
		if (ev == NULL || json_array_append_new(out, ev) < 0)
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* ---- turn state ---- */

enum { CALL_CUSTOM = 1, CALL_ASK = 2, CALL_CONFIRMED = 4, CALL_MCP = 8 };

/* calls: array of [id, flags]; returns the index of id or -1. */
static long find_call(const json_t *calls, const char *id)
{
	const json_t *c;
	size_t i;

	if (id == NULL)
		return -1;
	json_array_foreach(calls, i, c)
	{
		if (is(json_string_value(json_array_get(c, 0)), id))
			return (long)i;
	}
	return -1;
}

void al_turn_state_clear(struct al_turn_state *st)
{
	json_decref(st->blocking);
	json_decref(st->idle_ids);
	json_decref(st->mcp_runnable);
	memset(st, 0, sizeof(*st));
}

int al_transcript_analyze(const json_t *events, struct al_turn_state *st)
{
	json_t *calls = json_array();
	uint64_t inputs = 0, messages = 0, seen_inputs = 0, seen_messages = 0;
	uint64_t start_inputs = 0, start_messages = 0;
	const json_t *ev;
	size_t i;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (calls == NULL)
		return -ENOMEM;
	json_array_foreach(events, i, ev)
	{
		const char *type = str_of(ev, "type"), *id = str_of(ev, "id");
		long k;

		if (type == NULL)
			continue;
		if (is(type, "session.status_running")) {
			st->status = AL_SESS_RUNNING;
			st->turn_open = 1;
			st->input_since_status = 0;
		} else if (is(type, "session.status_rescheduled")) {
			st->status = AL_SESS_RESCHEDULING;
			st->input_since_status = 0;
		} else if (is(type, "session.status_terminated")) {
			st->status = AL_SESS_TERMINATED;
			st->turn_open = 0;
			st->input_since_status = 0;
		} else if (is(type, "session.status_idle")) {
			st->status = AL_SESS_IDLE;
			st->input_since_status = 0;
			json_decref(st->idle_ids);
			st->idle_ids = NULL;
			if (is_turn_end_idle(ev)) {
				/*
				 * Ends the turn but consumes no input: a message that
				 * committed between the decision to idle and the idle
				 * itself must still start the next turn.
				 */
				st->turn_open = 0;
				st->interrupt_pending = 0;
				json_array_clear(calls);
			} else {
				st->idle_ids = json_deep_copy(json_object_get(
				    json_object_get(ev, "stop_reason"), "event_ids"));
			}
		} else if (is(type, "session.error") &&
			   strncmp(str_of(json_object_get(ev, "error"), "type") ?: "", "mcp_", 4) ==
			       0) {
			/*
			 * An MCP server that could not be reached: the run goes on
			 * without its tools (docs/CONTROL-PLANE-MCP.md), so nothing
			 * is consumed.
			 */
		} else if (is(type, "session.error")) {
			/*
			 * The turn is dead and its queued inputs are flushed (the
			 * SDK's retries_exhausted), so a failure never repeats by
			 * itself; the next user.message starts a new turn.
			 */
			seen_inputs = inputs;
			seen_messages = messages;
		} else if (is(type, "user.message")) {
			inputs++;
			messages++;
			st->input_since_status = 1;
		} else if (is(type, "user.tool_result") || is(type, "user.custom_tool_result")) {
			const char *ref =
			    str_of(ev, is(type, "user.tool_result") ? "tool_use_id"
								    : "custom_tool_use_id");
			st->input_since_status = 1;
			k = find_call(calls, ref);
			/* an MCP call is answered by the control plane alone */
			if (k >= 0 && (json_integer_value(
					   json_array_get(json_array_get(calls, (size_t)k), 1)) &
				       CALL_MCP))
				k = -1;
			if (k >= 0) {
				json_array_remove(calls, (size_t)k);
				inputs++;
			}
		} else if (is(type, "agent.mcp_tool_result")) {
			if ((k = find_call(calls, str_of(ev, "mcp_tool_use_id"))) >= 0) {
				json_array_remove(calls, (size_t)k);
				inputs++;
			}
		} else if (is(type, "user.tool_confirmation")) {
			st->input_since_status = 1;
			k = find_call(calls, str_of(ev, "tool_use_id"));
			if (k >= 0) {
				json_t *c = json_array_get(calls, (size_t)k);
				json_int_t f = json_integer_value(json_array_get(c, 1));
				if ((f & CALL_ASK) && !(f & CALL_CONFIRMED)) {
					if (is(str_of(ev, "result"), "allow")) {
						json_array_set_new(
						    c, 1, json_integer(f | CALL_CONFIRMED));
					} else {
						json_array_remove(calls, (size_t)k);
						inputs++;
					}
				}
			}
		} else if (is(type, "user.interrupt")) {
			if (st->turn_open)
				st->interrupt_pending = 1;
			seen_inputs = inputs;
			seen_messages = messages;
			json_array_clear(calls);
		} else if (is(type, "span.model_request_start")) {
			snprintf(st->open_start_id, sizeof(st->open_start_id), "%s", id ? id : "");
			start_inputs = inputs;
			start_messages = messages;
		} else if (is(type, "span.model_request_end")) {
			if (is(str_of(ev, "model_request_start_id"), st->open_start_id)) {
				st->open_start_id[0] = '\0';
				if (!json_is_true(json_object_get(ev, "is_error"))) {
					seen_inputs =
					    start_inputs > seen_inputs ? start_inputs : seen_inputs;
					seen_messages = start_messages > seen_messages
							    ? start_messages
							    : seen_messages;
				}
			}
		} else if (is(type, "agent.tool_use") || is(type, "agent.custom_tool_use") ||
			   is(type, "agent.mcp_tool_use")) {
			int custom = is(type, "agent.custom_tool_use");
			int mcp = is(type, "agent.mcp_tool_use");
			const char *perm = str_of(ev, "evaluated_permission");
			st->tool_uses++;
			if (id == NULL)
				continue;
			if (!custom && is(perm, "deny")) {
				inputs++; /* answered at once with an error result */
				continue;
			}
			if (json_array_append_new(
				calls, json_pack("[s, i]", id,
						 (custom ? CALL_CUSTOM : 0) |
						     (!custom && is(perm, "ask") ? CALL_ASK : 0) |
						     (mcp ? CALL_MCP : 0))) < 0) {
				rc = -ENOMEM;
				goto done;
			}
		}
	}
	st->pending_input = inputs > seen_inputs;
	st->pending_message = messages > seen_messages;
	st->outstanding = json_array_size(calls);
	st->blocking = json_array();
	st->mcp_runnable = json_array();
	if (st->blocking == NULL || st->mcp_runnable == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	json_array_foreach(calls, i, ev)
	{
		json_int_t f = json_integer_value(json_array_get(ev, 1));
		if ((f & CALL_CUSTOM) || ((f & CALL_ASK) && !(f & CALL_CONFIRMED))) {
			if (json_array_append(st->blocking, json_array_get(ev, 0)) < 0) {
				rc = -ENOMEM;
				goto done;
			}
		} else if ((f & CALL_MCP) &&
			   json_array_append(st->mcp_runnable, json_array_get(ev, 0)) < 0) {
			rc = -ENOMEM;
			goto done;
		}
	}
done:
	json_decref(calls);
	if (rc < 0)
		al_turn_state_clear(st);
	return rc;
}

enum al_turn_action al_transcript_decide(const struct al_turn_state *st, int call_in_flight)
{
	if (st->status == AL_SESS_TERMINATED)
		return AL_TURN_NONE;
	if (st->interrupt_pending)
		return AL_TURN_INTERRUPT;
	if (!st->turn_open)
		return st->pending_message ? AL_TURN_START : AL_TURN_NONE;
	if (call_in_flight)
		return AL_TURN_NONE;
	if (st->outstanding > 0) {
		if (json_array_size(st->blocking) > 0) {
			if (st->status == AL_SESS_IDLE && st->idle_ids != NULL &&
			    json_equal(st->idle_ids, st->blocking))
				return AL_TURN_NONE;
			return AL_TURN_REQUIRES_ACTION;
		}
		if (st->status == AL_SESS_IDLE ||
		    (st->status == AL_SESS_RESCHEDULING && st->input_since_status))
			return AL_TURN_RESUME;
		return AL_TURN_NONE;
	}
	if (st->pending_input || st->open_start_id[0])
		return AL_TURN_CALL;
	return AL_TURN_END;
}

const char *al_turn_action_name(enum al_turn_action a)
{
	static const char *const names[] = {
	    "none", "interrupt", "start", "call", "requires_action", "resume", "end"};
	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}
