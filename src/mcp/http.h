/*
 * http.h - MCP Streamable HTTP on the project's HTTP server (http/server.h),
 * both eras on one endpoint.
 *
 *   POST   one JSON-RPC message. Host/Origin checked first (mcp/origin.h,
 *          403). A notification or a client's response -> 202, empty body.
 *          A request -> application/json, or text/event-stream (with
 *          X-Accel-Buffering: no, Cache-Control: no-cache) as soon as the
 *          call sends something before its response (progress, a log
 *          message, a legacy server-to-client request): the stream carries
 *          only that request's messages, then its response, then ends. A
 *          closed connection cancels the call (al_mcp_call_cancel).
 *          Content-Type must be application/json (415 otherwise); Accept
 *          must allow application/json and text/event-stream (406
 *          otherwise; a missing Accept is accepted).
 *   GET    legacy era with a valid Mcp-Session-Id: the session's standalone
 *          SSE stream; otherwise 405 with Allow: POST.
 *   DELETE legacy era with Mcp-Session-Id: ends the session (204; 404 when
 *          unknown); otherwise 405.
 *   A legacy request naming an unknown or expired session -> 404.
 *
 * The endpoint path is the caller's business: it routes requests for its
 * path here (the fixture and the servers use "/mcp").
 */
#ifndef AL_MCP_HTTP_H
#define AL_MCP_HTTP_H

#include "http/server.h"
#include "mcp/server.h"

typedef struct al_mcp_http al_mcp_http;

struct al_mcp_http_opts {
	/* Host names the endpoint answers to (Host and Origin); NULL-terminated,
	 * borrowed. NULL: al_mcp_localhost_names. */
	const char *const *allowed_hosts;
	/* 1: skip the Host/Origin check (a server behind a gateway that checked). */
	int no_origin_check;
	/* The loop requests arrive on (al_mcp_http_listen sets it). Used to
	 * cancel, on the next loop turn, a call whose connection broke while it
	 * was sending: never from inside the send. NULL: such a call runs to its
	 * end (every send returns -EPIPE) and its answer is dropped. */
	uv_loop_t *loop;
};

/* Binds a server (borrowed; must outlive the binding) to the transport. opts
 * is read during the call (allowed_hosts and loop are kept, borrowed). NULL on ENOMEM. */
al_mcp_http *al_mcp_http_new(al_mcp_server *srv, const struct al_mcp_http_opts *opts);
/* Cancels calls in flight and frees. NULL is fine. */
void al_mcp_http_free(al_mcp_http *h);
/* Serves one HTTP request (any method) as the MCP endpoint; finishes it. */
void al_mcp_http_handle(al_mcp_http *h, al_http_req *req);

/*
 * Convenience for programs that are only an MCP server: listens on
 * host:port (TLS when cert/key are set in opts) and serves `path` ("/mcp")
 * with h; any other path -> 404. `path` is copied (NULL: "/mcp"). Returns
 * al_http_server_start's result.
 */
int al_mcp_http_listen(al_mcp_http *h, uv_loop_t *loop, const struct al_http_server_opts *opts,
		       const char *path, al_http_server **out, char *err, size_t errlen);

#endif
