/*
 * transcript.h - from a session's event log to model requests and back.
 *
 * Pure functions over jansson values (the events are the stored event
 * objects, oldest first). The agent loop keeps no conversation state of its
 * own: it rereads the log and asks these functions what the session looks
 * like and what to do next, so a restarted server reaches the same decision
 * as the one that stopped.
 *
 * Events -> Messages API messages (al_transcript_messages)
 *   user.message            user text/image/document blocks (redacted dropped)
 *   agent.message           assistant text blocks
 *   agent.tool_use,         assistant tool_use blocks whose id is the EVENT id.
 *   agent.mcp_tool_use,     (for MCP calls the name is the model-facing one,
 *                           agent/mcp_tools.h, rebuilt from server and tool)
 *   agent.custom_tool_use   The model's own toolu_ ids are not kept: the
 *                           protocol pairs results by event id
 *                           (user.tool_result.tool_use_id names the
 *                           agent.tool_use event), and the Messages API only
 *                           needs the ids inside one request to match, so the
 *                           event id serves both sides with no mapping table.
 *   user.tool_result,       user tool_result blocks, only for a call still
 *   user.custom_tool_result open (the first answer wins; late ones dropped)
 *   agent.mcp_tool_result
 *   user.tool_confirmation  deny: an error tool_result carrying deny_message
 *   agent.tool_use with     an error tool_result ("not enabled")
 *     evaluated_permission deny
 *   user.interrupt, a       every call still open gets an error tool_result,
 *     turn-ending idle      so the next request is well formed
 *   agent.thinking, span.*, session.*   dropped
 * Consecutive blocks of one role form one message; within a user message
 * tool_result blocks come first, as the Messages API requires.
 *
 * Turn state (al_transcript_analyze) and the next step (al_transcript_decide)
 * are described with the types below.
 */
#ifndef AL_AGENT_TRANSCRIPT_H
#define AL_AGENT_TRANSCRIPT_H

#include "core/rand.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Messages from events[0..n). Returns a new array, NULL on OOM. */
json_t *al_transcript_messages(const json_t *events, size_t n);

/* The model id of an agent snapshot: `model` as a string or {"id": ...}. NULL if absent. */
const char *al_transcript_model(const json_t *agent);
/* JSON schema definition of a built-in tool ({name, description, input_schema}), new ref. */
json_t *al_transcript_builtin_tool(const char *name);
/*
 * Messages API `tools` for an agent's tools: enabled built-ins expanded,
 * custom tools as given (name, description, input_schema), MCP toolsets
 * skipped (not supported). New array, NULL on OOM.
 */
json_t *al_transcript_tools(const json_t *agent_tools);
/*
 * A request without messages: {model, max_tokens, system?, tools?}. The
 * system prompt is the agent's, followed by the text of any system.message
 * events in events[0..n). NULL on OOM or when the agent names no model.
 */
json_t *al_transcript_request_base(const json_t *agent, const json_t *events, size_t n,
				   int64_t max_tokens);
/*
 * Session events for a model response (`message`, a Messages API response):
 * each run of text blocks -> agent.message, thinking -> agent.thinking,
 * tool_use -> agent.custom_tool_use when the agent has a custom tool of that
 * name, else agent.tool_use with its evaluated permission. New array.
 */
json_t *al_transcript_response_events(const json_t *message, const json_t *agent_tools);
/*
 * The same, knowing the MCP tools offered in the request (mcp_map: model
 * name -> {"server", "tool"}, agent/mcp_tools.h; may be NULL): a tool_use of
 * one of them -> agent.mcp_tool_use {name: the MCP tool's own name,
 * mcp_server_name, input} with its evaluated permission.
 */
json_t *al_transcript_response_events_mcp(const json_t *message, const json_t *agent_tools,
					  const json_t *mcp_map);

enum al_sess_status {
	AL_SESS_NONE, /* no status event yet: a new session, idle */
	AL_SESS_IDLE,
	AL_SESS_RUNNING,
	AL_SESS_RESCHEDULING,
	AL_SESS_TERMINATED,
};

/*
 * What the event log says about the current turn. A model request's inputs
 * are the events before its span.model_request_start; a successful
 * span.model_request_end (is_error false) marks them seen. A session.error
 * (the turn is dead, its queue flushed) and a user.interrupt consume every
 * input before them, except one about an MCP server (error.type mcp_*),
 * after which the run goes on without that server. A turn ends with a
 * session.status_idle whose stop_reason is not requires_action (open calls
 * are closed; inputs are not consumed, so a message that raced the idle
 * starts the next turn) or with a user.interrupt.
 */
struct al_turn_state {
	enum al_sess_status status;
	int turn_open;		       /* a turn has started and not ended */
	int pending_input;	       /* input the model has not seen yet */
	int pending_message;	       /* ... and a user.message among it */
	int interrupt_pending;	       /* user.interrupt during an open turn, not yet acted on */
	int input_since_status;	       /* an input event after the last status event */
	char open_start_id[AL_ID_MAX]; /* span.model_request_start without an end, "" if none */
	size_t outstanding;	       /* tool calls without an answer */
	size_t tool_uses; /* agent.tool_use + agent.custom_tool_use events in the log */
	json_t *blocking; /* owned array: ids of calls waiting on the client (custom, ask) */
	json_t *idle_ids; /* owned: event_ids of the last requires_action idle, or NULL */
	/* owned array: ids of agent.mcp_tool_use calls without a result that may run
	 * now (allowed, or confirmed); the loop calls the server for them */
	json_t *mcp_runnable;
};

/* Fills st from events (oldest first). 0 or -ENOMEM. Clear with al_turn_state_clear. */
int al_transcript_analyze(const json_t *events, struct al_turn_state *st);
void al_turn_state_clear(struct al_turn_state *st);

enum al_turn_action {
	AL_TURN_NONE,
	AL_TURN_INTERRUPT,	 /* end the turn now: close an open span, idle end_turn */
	AL_TURN_START,		 /* a user.message reached an idle session: running, work, call */
	AL_TURN_CALL,		 /* call the model (running first if the session is not) */
	AL_TURN_REQUIRES_ACTION, /* idle, requires_action on the blocking ids */
	AL_TURN_RESUME,		 /* running again: the client's part is done, the worker's is not */
	AL_TURN_END,		 /* idle, end_turn */
};

/*
 * The next step, given the log's state and whether this process has a model
 * call in flight for the session. Deterministic: the same log gives the
 * same answer, which is what makes restart recovery safe (a completed
 * response is in the log with its span end, so it is never requested again,
 * and an agent.tool_use exists only inside such a response).
 */
enum al_turn_action al_transcript_decide(const struct al_turn_state *st, int call_in_flight);
const char *al_turn_action_name(enum al_turn_action a);

#endif
