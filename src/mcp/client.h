/*
 * client.h - an asynchronous MCP client over Streamable HTTP, on the libuv
 * loop, through the project's libcurl client (net/http_client.h).
 *
 * One al_mcp_client talks to one MCP endpoint (a URL) in one of two eras:
 *   modern (2026-07-28): stateless; every request carries params._meta
 *     (protocolVersion, clientCapabilities, clientInfo) and the headers
 *     MCP-Protocol-Version, Mcp-Method, Mcp-Name and Mcp-Param-* (mirrored
 *     from the x-mcp-header annotations of the tool's inputSchema, learnt
 *     from tools/list); server-to-client input arrives as an input_required
 *     result (MRTR) and the request is retried with inputResponses and the
 *     exact requestState; cancelling a request closes its stream;
 *   legacy (2025-11-25): initialize + notifications/initialized, the
 *     Mcp-Session-Id the server assigned on every request (a 404 on the
 *     session re-initializes once), server-to-client requests on a
 *     response's SSE stream answered by POSTing the response, a stream that
 *     ends before the response resumed with GET + Last-Event-ID after the
 *     server's `retry` delay, cancellation by notifications/cancelled.
 * Era detection (AL_MCP_ERA_AUTO): server/discover with _meta first. A
 * DiscoverResult that lists a modern version we speak, or a modern error
 * (-32022 naming a version we speak, -32020, -32021), means modern; any
 * other answer (400/404/405 without a modern error body, -32601, a result
 * without supportedVersions) falls back to initialize. 401 fails (-EACCES):
 * authorization is not an era question. The result is kept for the
 * lifetime of the client.
 *
 * Requests made before the client is connected wait for the connection,
 * which the first request starts. Everything runs on the loop thread; no
 * callback fires before the function that started the request returns.
 *
 * Errors (negative errno, in al_mcp_client_result.err):
 *   -EREMOTEIO  the server answered with a JSON-RPC error (rpc_error set)
 *   -EACCES     HTTP 401 (bearer token missing or refused)
 *   -EPERM      HTTP 403
 *   -EPROTO     any other HTTP status without a JSON-RPC body, a response
 *               stream that ended without the response, no era found
 *   -EBADMSG    a response body that is not a JSON-RPC response
 *   -ELOOP      more input_required rounds than max_input_rounds
 *   -ENOTSUP    an input request the input handler does not serve
 *   -EPROTONOSUPPORT  no protocol version in common
 *   transport errors as net/http_client.h reports them (-ETIMEDOUT, ...)
 *
 * Secrets: the bearer token is copied, sent only in the Authorization
 * header, never logged or put in an error message, and wiped on free.
 */
#ifndef AL_MCP_CLIENT_H
#define AL_MCP_CLIENT_H

#include "mcp/jsonrpc.h"
#include "mcp/oauth.h"
#include "net/http_client.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct al_mcp_client al_mcp_client;
typedef struct al_mcp_op al_mcp_op;

enum al_mcp_era {
	AL_MCP_ERA_AUTO = 0, /* as a preference: probe; as a state: not known yet */
	AL_MCP_ERA_MODERN,   /* 2026-07-28 */
	AL_MCP_ERA_LEGACY    /* 2025-11-25 */
};

/*
 * Input handler: serves a server-to-client request (elicitation/create,
 * sampling/createMessage, roots/list) for MRTR inputRequests and for legacy
 * server requests on an SSE stream. Runs on the loop thread and must return
 * promptly (it is synchronous). `params` is borrowed for the call. Returns 0
 * with *result set to a new reference (the client owns it from then on),
 * -ENOTSUP for a method it does not serve, or another negative errno to
 * refuse (the request then fails with that error; a legacy server gets a
 * JSON-RPC error response).
 */
typedef int (*al_mcp_input_cb)(void *ud, const char *method, const json_t *params, json_t **result);

/* A notifications/progress for a request: total < 0 when the server gave
 * none; message NULL when absent. Valid only during the call. */
typedef void (*al_mcp_progress_cb)(void *ud, double progress, double total, const char *message);

struct al_mcp_client_opts {
	const char *url;	  /* the MCP endpoint, http:// or https:// (required) */
	const char *bearer_token; /* secret, may be NULL; copied and wiped on free */
	const char *ca_file;	  /* PEM bundle for this server's TLS; NULL: system CAs */
	const char *client_name;  /* clientInfo; NULL: "airlock" */
	const char *client_version;
	/* ClientCapabilities to declare (copied); NULL: {} or, when on_input is
	 * set, {"elicitation": {}, "sampling": {}, "roots": {}}. */
	const json_t *capabilities;
	uint64_t timeout_ms; /* per HTTP request; 0: 60 s */
	/* Extra request headers sent on every request (copied). */
	const struct al_http_header *headers;
	size_t nheaders;
	enum al_mcp_era era;	   /* AUTO, or force one era */
	unsigned max_input_rounds; /* MRTR retries per request; 0: 8 */
	al_mcp_input_cb on_input;  /* optional */
	void *input_ud;
	/* OAuth (mcp/oauth.h) on a 401, or a 403 insufficient_scope (step-up):
	 * NULL means such answers fail with -EACCES / -EPERM. Copied. The
	 * token obtained replaces bearer_token. At most 3 flows per request. */
	const struct al_mcp_oauth_opts *oauth;
};

/*
 * The outcome of a request, valid only during the done callback.
 * err == 0: result is the JSON-RPC result object (for list_tools: the
 * aggregate {"tools": [...]} of every page, invalid tools removed).
 */
struct al_mcp_client_result {
	int err;
	const json_t *result;	       /* borrowed; NULL unless err == 0 */
	const al_mcp_error *rpc_error; /* set when err == -EREMOTEIO */
	int http_status;	       /* the last HTTP status seen, 0 if none */
};

typedef void (*al_mcp_client_done_cb)(al_mcp_client *c, const struct al_mcp_client_result *res,
				      void *ud);

/* Per-request options; every field optional. */
struct al_mcp_call_opts {
	al_mcp_progress_cb on_progress; /* when set, a progressToken is sent */
	void *progress_ud;
};

/*
 * Creates a client. `http` is borrowed and must outlive the client. opts
 * is copied. Returns 0, -EINVAL (no url, bad capabilities) or -ENOMEM.
 * Nothing is sent until connect or the first request.
 */
int al_mcp_client_new(uv_loop_t *loop, al_http_client *http, const struct al_mcp_client_opts *opts,
		      al_mcp_client **out);
/*
 * Cancels every request in flight (their callbacks do not fire) and frees
 * the client, wiping the token. Run the loop once more before closing it
 * (timers close asynchronously). NULL is fine. Not from a callback of this
 * client.
 */
void al_mcp_client_free(al_mcp_client *c);

/*
 * Detects the era and, for legacy, initializes. done fires once with
 * result = the DiscoverResult or InitializeResult. Calling it is optional.
 * Returns 0 or -ENOMEM; -EALREADY if already connected or connecting.
 */
int al_mcp_client_connect(al_mcp_client *c, al_mcp_client_done_cb done, void *ud);

/* The era in use (AL_MCP_ERA_AUTO until known), the protocol version in use,
 * and the server's self-description from discover/initialize (borrowed,
 * NULL until connected). */
enum al_mcp_era al_mcp_client_era(const al_mcp_client *c);
const char *al_mcp_client_version(const al_mcp_client *c);
const json_t *al_mcp_client_server_result(const al_mcp_client *c);

/*
 * Any request. params (stolen, may be NULL) must not carry _meta: the
 * client adds it. *op (may be NULL) is the handle for al_mcp_client_cancel,
 * valid until done returns. Returns 0, -EINVAL or -ENOMEM (then done never
 * fires).
 */
int al_mcp_client_request(al_mcp_client *c, const char *method, json_t *params,
			  const struct al_mcp_call_opts *copts, al_mcp_client_done_cb done,
			  void *ud, al_mcp_op **op);
/* tools/list, following nextCursor; tools whose x-mcp-header annotations
 * are invalid are dropped (with a warning naming the tool), the others'
 * annotations remembered for call_tool. */
int al_mcp_client_list_tools(al_mcp_client *c, al_mcp_client_done_cb done, void *ud,
			     al_mcp_op **op);
/* tools/call; args borrowed (copied), may be NULL. */
int al_mcp_client_call_tool(al_mcp_client *c, const char *name, const json_t *args,
			    const struct al_mcp_call_opts *copts, al_mcp_client_done_cb done,
			    void *ud, al_mcp_op **op);
int al_mcp_client_read_resource(al_mcp_client *c, const char *uri, al_mcp_client_done_cb done,
				void *ud, al_mcp_op **op);
int al_mcp_client_get_prompt(al_mcp_client *c, const char *name, const json_t *args,
			     al_mcp_client_done_cb done, void *ud, al_mcp_op **op);

/*
 * Cancels a request: its done does not fire and op becomes invalid. The
 * HTTP stream is closed (the modern cancellation signal); a legacy server
 * is also sent notifications/cancelled. Safe from any callback of this
 * client, but not after op's done has returned.
 */
void al_mcp_client_cancel(al_mcp_op *op);

/*
 * The response reader: one HTTP response body (application/json or
 * text/event-stream) to JSON-RPC messages. Exposed for the fuzzer; the
 * client uses it for every response. For JSON the body is collected (up to
 * AL_MCP_MAX_MESSAGE) and parsed at finish; for SSE each "message" event's
 * data is one message (events with empty data, SSE priming, are skipped).
 * cb gets each message (borrowed, valid during the call); a negative return
 * stops the reader and is returned by feed/finish.
 */
typedef struct al_mcp_resp_reader al_mcp_resp_reader;
typedef int (*al_mcp_resp_msg_cb)(const al_mcp_msg *m, void *ud);
/* is_sse: 1 for text/event-stream. NULL when out of memory. */
al_mcp_resp_reader *al_mcp_resp_reader_new(int is_sse, al_mcp_resp_msg_cb cb, void *ud);
/* 0, -EFBIG (over the cap), -EBADMSG (SSE event that is not one JSON-RPC
 * message), -ENOMEM, or cb's value. */
int al_mcp_resp_reader_feed(al_mcp_resp_reader *r, const char *data, size_t len);
/* End of body: parses a JSON body (-EBADMSG if it is not one message;
 * an empty body is 0 with no message). */
int al_mcp_resp_reader_finish(al_mcp_resp_reader *r);
/* The SSE stream's last event id ("" if none) and retry (-1 if none). */
const char *al_mcp_resp_reader_last_id(const al_mcp_resp_reader *r);
int64_t al_mcp_resp_reader_retry(const al_mcp_resp_reader *r);
void al_mcp_resp_reader_free(al_mcp_resp_reader *r);

#endif
