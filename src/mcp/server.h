/*
 * server.h - an MCP server: a registry of tools, resources, resource
 * templates and prompts with their handlers, and the dispatcher that turns
 * one inbound JSON-RPC message into calls of those handlers and one reply.
 *
 * Transport-agnostic: Streamable HTTP (mcp/http.h) and stdio (mcp/stdio.h)
 * hand each message to al_mcp_server_handle together with a sink (two
 * callbacks) through which the call answers. Both eras on one server:
 *
 *   2026-07-28 (modern, stateless): every request carries _meta; the checks
 *     run in the order docs/MCP.md gives (framing, _meta structure, headers,
 *     version, method, handler); server/discover; resultType on every
 *     result; ttlMs/cacheScope on list and read results; multi round-trip
 *     (input_required + a sealed requestState, mcp/state.h);
 *     subscriptions/listen (a call that stays open and carries
 *     list_changed / resources/updated notifications).
 *   2025-11-25 (legacy): initialize creates a session (al_mcp_session)
 *     whose id the transport returns in Mcp-Session-Id; later requests name
 *     it; ping, logging/setLevel, resources/subscribe|unsubscribe; a handler
 *     may send requests to the client (sampling, elicitation, roots) on its
 *     own stream and gets their responses when the client POSTs them.
 *   A request without _meta whose method is "initialize" selects the legacy
 *   era; a request naming a session is legacy; anything else is modern.
 *
 * Handlers are asynchronous: they may answer before returning or later
 * (from the loop thread), but exactly once, with al_mcp_call_result,
 * al_mcp_call_error or al_mcp_call_input_required. The same handler serves
 * both eras; it asks al_mcp_call_legacy() when it must behave differently
 * (MRTR in 2026, a server-to-client request in 2025).
 *
 * Everything here runs on one thread (the loop thread of the transport).
 */
#ifndef AL_MCP_SERVER_H
#define AL_MCP_SERVER_H

#include "mcp/jsonrpc.h"
#include "mcp/meta.h"
#include "mcp/state.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct al_http_field;

typedef struct al_mcp_server al_mcp_server;
typedef struct al_mcp_call al_mcp_call;
typedef struct al_mcp_session al_mcp_session;

/* ---- handlers ---- */

/* tools/call: `args` is params.arguments (an object; {} when absent), borrowed for the call. */
typedef void (*al_mcp_tool_fn)(al_mcp_call *c, json_t *args, void *ud);
/* resources/read of a fixed resource or a template match; `uri` borrowed.
 * `vars` holds the template variables ({"id": "123"}) or is NULL. */
typedef void (*al_mcp_resource_fn)(al_mcp_call *c, const char *uri, json_t *vars, void *ud);
/* prompts/get: `args` is params.arguments (object of strings; {} when absent). */
typedef void (*al_mcp_prompt_fn)(al_mcp_call *c, json_t *args, void *ud);
/*
 * completion/complete for one argument of a prompt or template: returns a
 * new array of candidate strings (the dispatcher caps it at 100 and fills
 * total/hasMore), or NULL for none. Synchronous. `context` is
 * params.context.arguments or NULL.
 */
typedef json_t *(*al_mcp_complete_fn)(const char *argument, const char *value, json_t *context,
				      void *ud);

/* ---- registration (everything is copied; json_t values are increfed) ---- */

struct al_mcp_tool {
	const char *name; /* required, unique */
	const char *title;
	const char *description;
	json_t *input_schema;  /* required: a JSON Schema object, served as given */
	json_t *output_schema; /* optional */
	json_t *annotations;   /* optional ToolAnnotations */
	json_t *meta;	       /* optional _meta of the tool */
	/* Client capabilities the call needs (e.g. {"sampling": {}}): the
	 * dispatcher answers -32021 in the modern era when one is undeclared,
	 * before calling fn. NULL: none. */
	json_t *required_capabilities;
	al_mcp_tool_fn fn;
	void *ud;
};

struct al_mcp_resource {
	const char *uri; /* required, unique */
	const char *name;
	const char *title;
	const char *description;
	const char *mime_type;
	al_mcp_resource_fn fn;
	void *ud;
};

struct al_mcp_resource_template {
	const char *uri_template; /* RFC 6570 level 1: "test://template/{id}/data" */
	const char *name;
	const char *title;
	const char *description;
	const char *mime_type;
	al_mcp_resource_fn fn;
	al_mcp_complete_fn complete; /* optional */
	void *ud;
};

struct al_mcp_prompt {
	const char *name; /* required, unique */
	const char *title;
	const char *description;
	json_t *arguments; /* optional array of {name, description?, required?} */
	al_mcp_prompt_fn fn;
	al_mcp_complete_fn complete; /* optional */
	void *ud;
};

struct al_mcp_server_opts {
	const char *name;    /* serverInfo.name; required */
	const char *version; /* serverInfo.version; required */
	const char *title;
	const char *instructions;
	/* Caching hints on discover, list and read results (2026-07-28). 0: 60000 ms. */
	int64_t ttl_ms;
	const char *cache_scope; /* "public" | "private"; NULL: "public" */
	/* 32 secret bytes sealing requestState (mcp/state.h); borrowed, must outlive
	 * the server, and be equal on every instance behind a balancer. NULL: a
	 * random key per process (MRTR then survives no restart and no balancer). */
	const unsigned char *state_key;
	int64_t state_ttl_ms; /* requestState lifetime; 0: 300000 */
	/* Legacy sessions: at most this many at once (0: 1024), each idle at most
	 * session_idle_ms (0: 30 min) before it expires (then 404). Expiry is
	 * checked lazily and never ends a session with a call in flight or an
	 * open GET stream. When full, initialize evicts the least recently used
	 * session without a call in flight; if every session is busy it is
	 * refused -32603 with HTTP 503. */
	size_t max_sessions;
	int64_t session_idle_ms;
};

/* Creates an empty server. opts is read during the call and its strings are
 * copied (state_key is borrowed, as said above). NULL when out of memory or
 * opts lack name/version. */
al_mcp_server *al_mcp_server_new(const struct al_mcp_server_opts *opts);
/* Frees the server. Calls in flight must be finished first (the transport
 * cancels them); open sessions and listen streams are ended. NULL is fine. */
void al_mcp_server_free(al_mcp_server *s);

/* 0; -EEXIST (name/uri taken); -EINVAL (missing name, schema or fn); -ENOMEM. */
int al_mcp_server_add_tool(al_mcp_server *s, const struct al_mcp_tool *t);
int al_mcp_server_add_resource(al_mcp_server *s, const struct al_mcp_resource *r);
int al_mcp_server_add_template(al_mcp_server *s, const struct al_mcp_resource_template *t);
int al_mcp_server_add_prompt(al_mcp_server *s, const struct al_mcp_prompt *p);
/* Removes a tool or prompt by name (0 or -ENOENT); open listen streams and
 * legacy sessions get notifications/{tools,prompts}/list_changed. */
int al_mcp_server_remove_tool(al_mcp_server *s, const char *name);
int al_mcp_server_remove_prompt(al_mcp_server *s, const char *name);
/* Tells subscribers of `uri` (legacy resources/subscribe, modern listen with
 * resourceSubscriptions) that it changed: notifications/resources/updated. */
void al_mcp_server_resource_updated(al_mcp_server *s, const char *uri);
/* Sends notifications/{tools|prompts|resources}/list_changed to every
 * listener; kind is "tools", "prompts" or "resources". */
void al_mcp_server_list_changed(al_mcp_server *s, const char *kind);

/* ---- the transport side ---- */

/*
 * How a call reaches its caller. `t` is the transport's per-message context.
 *
 * send: a message belonging to this call before its response: a
 *   notification (progress, log message, list_changed on a listen stream)
 *   or, in the legacy era, a server-to-client request. The message is
 *   borrowed. Streamable HTTP switches the response to SSE on the first
 *   send. Returns 0, or -EPIPE when the caller is gone (the call is then
 *   cancelled by the transport).
 * finish: the last word, exactly once: `msg` is the JSON-RPC response
 *   (result or error) to send, stolen, or NULL for a notification or a
 *   response from the client (HTTP: 202, empty body). `http_status` is the
 *   status to use if the response is not already streaming (200, 202,
 *   400, 404, 500). `session_id` is non-NULL only on a successful legacy
 *   initialize: the transport sends it as Mcp-Session-Id. After finish the
 *   transport must not use the call again.
 */
struct al_mcp_sink {
	int (*send)(void *t, const json_t *msg);
	void (*finish)(void *t, json_t *msg, int http_status, const char *session_id);
};

/* One inbound message and what the transport knows about it. All borrowed
 * for the duration of al_mcp_server_handle. */
struct al_mcp_inbound {
	const char *body;
	size_t len;
	/* The HTTP request headers (the Mcp-* checks run when http is 1); stdio
	 * passes none and http 0. */
	const struct al_http_field *headers;
	size_t nheaders;
	int http;
	/* Mcp-Session-Id as received, or NULL. */
	const char *session_id;
	/* The authenticated caller (bearer subject, mTLS name), or NULL: binds
	 * requestState (mcp/state.h). */
	const char *principal;
};

/*
 * Handles one message. The reply comes through sink->finish, perhaps
 * before this returns, perhaps later. *out (may be NULL) receives the call
 * while it is in flight (NULL when it finished before returning); the
 * transport passes it to al_mcp_call_cancel if the caller goes away.
 * Returns 0; a negative errno only when nothing could be done at all
 * (-ENOMEM before any reply could be built), in which case finish is not
 * called.
 */
int al_mcp_server_handle(al_mcp_server *s, const struct al_mcp_inbound *in,
			 const struct al_mcp_sink *sink, void *t, al_mcp_call **out);

/*
 * The caller went away (stream closed, stdio cancelled notification): the
 * handler's cancel callback runs, and the call is finished without sending
 * (finish is still called once, with msg NULL, so the transport can release
 * its context). Idempotent before finish; never after.
 */
void al_mcp_call_cancel(al_mcp_call *c);

/*
 * Legacy era: DELETE with Mcp-Session-Id. 0, or -ENOENT for an unknown
 * session (the transport answers 404). The session's calls in flight are
 * cancelled and its stream finished. A request naming an unknown session
 * that reaches al_mcp_server_handle is answered -32600 with HTTP 404.
 */
int al_mcp_server_end_session(al_mcp_server *s, const char *session_id);
/*
 * Legacy era: the standalone GET stream of a session, through which the
 * server sends notifications not tied to a request (list_changed,
 * resources/updated, log messages). 0; -ENOENT (unknown session: 404);
 * -EBUSY (one already open: 409). The stream stays the session's until
 * al_mcp_server_close_stream (caller gone) or the session ends, when
 * sink->finish(t, NULL, 200, NULL) is called (in both cases).
 */
int al_mcp_server_open_stream(al_mcp_server *s, const char *session_id,
			      const struct al_mcp_sink *sink, void *t);
void al_mcp_server_close_stream(al_mcp_server *s, const char *session_id, void *t);
/* 1 when session_id names a live session (the transport answers 404 otherwise). */
int al_mcp_server_has_session(al_mcp_server *s, const char *session_id);

/* ---- inside a handler ---- */

/* The request's params (borrowed, never NULL: {} when absent). */
json_t *al_mcp_call_params(const al_mcp_call *c);
/* The request's method ("tools/call"). */
const char *al_mcp_call_method(const al_mcp_call *c);
/* 1 in the 2025-11-25 era (a session), 0 in 2026-07-28. */
int al_mcp_call_legacy(const al_mcp_call *c);
/* The negotiated or per-request protocol version. */
const char *al_mcp_call_version(const al_mcp_call *c);
/* The client's declared capabilities (modern: _meta; legacy: initialize). Borrowed; {} if none. */
json_t *al_mcp_call_client_capabilities(const al_mcp_call *c);
/* The principal given by the transport, or NULL. */
const char *al_mcp_call_principal(const al_mcp_call *c);
/* 1 once the caller is gone; a long handler checks it. */
int al_mcp_call_cancelled(const al_mcp_call *c);
/*
 * Called once if the caller goes away before the handler answered. Two
 * ways to write an asynchronous handler, both safe:
 *   - register on_cancel and forget the call in it: the call is freed when
 *     the callback returns, and must not be answered or touched again (a
 *     handler waiting in al_mcp_call_request hears of the cancel through
 *     its reply callback, with result and err NULL, in the same way);
 *   - register nothing and answer later as usual: a cancelled call stays
 *     allocated until that answer, which is then dropped (not sent) and
 *     frees it. Such a handler must answer eventually, or the call leaks.
 */
void al_mcp_call_on_cancel(al_mcp_call *c, void (*cb)(al_mcp_call *c, void *ud), void *ud);

/*
 * notifications/progress for the request's progressToken; a no-op (0) when
 * the request had none. total < 0 and message NULL are left out.
 */
int al_mcp_call_progress(al_mcp_call *c, double progress, double total, const char *message);
/*
 * notifications/message at `level` (enum al_mcp_log_level) with `data`
 * (stolen): sent only when the client asked for that level or lower (modern:
 * _meta logLevel; legacy: logging/setLevel); otherwise dropped, returns 0.
 */
int al_mcp_call_log(al_mcp_call *c, int level, const char *logger, json_t *data);
/* Any other notification on the call's stream; params stolen. */
int al_mcp_call_notify(al_mcp_call *c, const char *method, json_t *params);

/*
 * The answers; each finishes the call (the handler must not touch it after).
 * result: a CallToolResult / ReadResourceResult / GetPromptResult object,
 *   stolen; the dispatcher adds resultType "complete" (modern era) and
 *   ttlMs/cacheScope where they belong.
 * error: a JSON-RPC error with HTTP status 200 unless err says otherwise;
 *   err is copied and left to the caller.
 */
void al_mcp_call_result(al_mcp_call *c, json_t *result);
void al_mcp_call_error(al_mcp_call *c, const al_mcp_error *err);
/* Shorthand: a handler error with code and printf message (HTTP 200). */
void al_mcp_call_errorf(al_mcp_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Multi round-trip, modern era (tools/call, resources/read, prompts/get):
 * answers {resultType: "input_required", inputRequests, requestState}.
 * `input_requests` (stolen) maps keys to {method, params} (elicitation/create,
 * sampling/createMessage, roots/list). `state` (stolen, may be NULL) is any
 * JSON the handler wants back; it is sealed for this principal and request
 * (mcp/state.h) and returned by al_mcp_call_state on the retry.
 */
void al_mcp_call_input_required(al_mcp_call *c, json_t *input_requests, json_t *state);
/* On a retry: params.inputResponses (borrowed), or NULL on a first round. */
json_t *al_mcp_call_input_responses(const al_mcp_call *c);
/* On a retry: the opened state (borrowed), or NULL. A requestState that
 * fails to open never reaches the handler: the dispatcher answers -32602. */
json_t *al_mcp_call_state(const al_mcp_call *c);

/*
 * Legacy era: a request to the client (sampling/createMessage,
 * elicitation/create, roots/list) sent on this call's stream; `cb` runs once
 * with the client's result (borrowed) or error (result NULL, err set), or
 * with both NULL if the call is cancelled first. params stolen.
 * 0; -ENOTSUP in the modern era (use al_mcp_call_input_required); -ENOMEM.
 */
typedef void (*al_mcp_reply_fn)(al_mcp_call *c, json_t *result, const al_mcp_error *err, void *ud);
int al_mcp_call_request(al_mcp_call *c, const char *method, json_t *params, al_mcp_reply_fn cb,
			void *ud);

#endif
