/*
 * http.c - MCP Streamable HTTP on http/server.h, both eras on one endpoint
 * (mcp/http.h).
 *
 * Every POST that carries a message gets a context (struct hcall) that owns
 * its al_http_req until the dispatcher's sink->finish. The response is
 * JSON unless the call sends something first, then SSE: the choice is made
 * lazily because most calls answer at once and JSON is cheaper for both
 * sides. A legacy GET stream is a context too (kind HC_STREAM), open until
 * the client goes or the session ends.
 *
 * Re-entrancy is the delicate part. The HTTP server calls our close
 * callback synchronously when a write fails, and a write happens inside
 * sink->send, i.e. inside a handler that is in the middle of
 * al_mcp_call_progress. Cancelling there would run the handler's cancel
 * callback and finish the call under the handler's feet. So a context
 * counts the nested calls it is in (`hold`): a close seen while held only
 * marks the call (cancel_pending); the cancel runs when
 * al_mcp_server_handle has returned, or on the next loop turn (an idle
 * handle). A context is freed only when it is finished and not held.
 */
#include "mcp/http.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "http/parser.h"
#include "mcp/jsonrpc.h"
#include "mcp/origin.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

enum hc_kind { HC_CALL, HC_STREAM };

struct hcall {
	al_mcp_http *h;
	al_http_req *req;  /* until finished */
	al_mcp_call *call; /* in flight, or NULL */
	char *session;	   /* HC_STREAM: the session whose GET stream this is */
	enum hc_kind kind;
	int hold;	    /* nested calls in progress: not to be freed or cancelled now */
	int streaming;	    /* the response is SSE (its head is sent) */
	int finished;	    /* sink->finish ran (or we finished it ourselves) */
	int peer_gone;	    /* the close callback fired */
	int cancel_pending; /* peer gone while held: cancel when it is safe */
	int cancelling;	    /* we cancelled (transport freed): answer 503 if still possible */
	struct hcall *prev, *next;
};

struct al_mcp_http {
	al_mcp_server *srv; /* borrowed */
	const char *const *allowed;
	int no_origin_check;
	uv_loop_t *loop;
	uv_idle_t *idle; /* deferred cancels; owned, freed by its close callback */
	int idle_active;
	struct hcall *calls;
	char *path; /* al_mcp_http_listen's endpoint */
};

static int sink_send(void *t, const json_t *msg);
static void sink_finish(void *t, json_t *msg, int http_status, const char *session_id);

static const struct al_mcp_sink http_sink = {sink_send, sink_finish};

/* ---- contexts ---- */

static struct hcall *hc_new(al_mcp_http *h, al_http_req *req, enum hc_kind kind)
{
	struct hcall *hc = al_calloc(1, sizeof(*hc));

	if (hc == NULL)
		return NULL;
	hc->h = h;
	hc->req = req;
	hc->kind = kind;
	hc->next = h->calls;
	if (h->calls)
		h->calls->prev = hc;
	h->calls = hc;
	return hc;
}

static void hc_free(struct hcall *hc)
{
	al_mcp_http *h = hc->h;

	if (hc->prev)
		hc->prev->next = hc->next;
	else
		h->calls = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
	al_free(hc->session);
	al_free(hc);
}

/* ---- responses ---- */

/* A JSON-RPC error response (id left out) with an HTTP status; finishes req. */
static void respond_error(al_http_req *req, int status, int code, const char *message)
{
	al_mcp_error err = {0};
	json_t *body;

	al_mcp_error_set(&err, code, status, NULL, "%s", message);
	body = al_mcp_error_response_new(NULL, &err);
	al_mcp_error_clear(&err);
	if (body == NULL) {
		al_http_respond(req, status, NULL, NULL, 0);
		return;
	}
	al_http_respond_json(req, status, body);
}

static void respond_405(al_http_req *req)
{
	al_http_resp_header(req, "Allow", "POST");
	respond_error(req, 405, AL_MCP_INVALID_REQUEST, "Method not allowed");
}

/* Serialises msg (borrowed) and sends it as JSON with `status`; finishes req. */
static void respond_msg(al_http_req *req, int status, const json_t *msg)
{
	al_buf b = {0};

	if (al_mcp_msg_dump(msg, &b) < 0) {
		al_buf_free(&b);
		respond_error(req, 500, AL_MCP_INTERNAL_ERROR, "Internal error");
		return;
	}
	al_http_respond(req, status, "application/json", b.data ? b.data : "", b.len);
	al_buf_free(&b);
}

/* Serialises msg (borrowed) as one SSE "message" event. 0, -ENOMEM, or the send's error. */
static int sse_send_msg(al_http_req *req, const json_t *msg)
{
	al_buf b = {0};
	int rc = al_mcp_msg_dump(msg, &b);

	if (rc == 0)
		rc = al_http_sse_send(req, "message", b.data ? b.data : "", b.len);
	al_buf_free(&b);
	return rc;
}

/* ---- cancellation ---- */

/* The peer of a GET stream went away: detach it from its session. */
static void stream_gone(struct hcall *hc)
{
	hc->hold++;
	al_mcp_server_close_stream(hc->h->srv, hc->session, hc);
	hc->hold--;
	/* close_stream may or may not finish the stream through the sink. */
	if (!hc->finished)
		sink_finish(hc, NULL, 200, NULL);
	else
		hc_free(hc);
}

/* The caller is gone and nothing of ours is on the stack: cancel. May free hc. */
static void hc_cancel_now(struct hcall *hc)
{
	hc->cancel_pending = 0;
	if (hc->kind == HC_STREAM) {
		stream_gone(hc);
		return;
	}
	if (hc->call == NULL)
		return; /* the handler's answer will be dropped by sink_finish */
	hc->hold++;
	al_mcp_call_cancel(hc->call);
	hc->hold--;
	if (hc->finished)
		hc_free(hc);
}

static void idle_cb(uv_idle_t *idle)
{
	al_mcp_http *h = idle->data;
	struct hcall *hc;

	/*
	 * One at a time from the head: a cancel may finish other contexts (a
	 * session's stream), so no pointer into the list survives it.
	 */
	for (;;) {
		for (hc = h->calls; hc; hc = hc->next)
			if (hc->cancel_pending && hc->hold == 0 && !hc->finished)
				break;
		if (hc == NULL)
			break;
		hc_cancel_now(hc);
	}
	uv_idle_stop(idle);
	h->idle_active = 0;
}

static void idle_closed_cb(uv_handle_t *hd)
{
	al_free(hd);
}

/* Runs idle_cb on the next loop turn (when the transport knows its loop). */
static void defer_cancel(al_mcp_http *h)
{
	if (h->loop == NULL || h->idle_active)
		return;
	if (h->idle == NULL) {
		h->idle = al_calloc(1, sizeof(*h->idle));
		if (h->idle == NULL)
			return;
		uv_idle_init(h->loop, h->idle);
		h->idle->data = h;
	}
	if (uv_idle_start(h->idle, idle_cb) == 0)
		h->idle_active = 1;
}

static void req_close_cb(al_http_req *req, void *ud)
{
	struct hcall *hc = ud;

	(void)req;
	hc->peer_gone = 1;
	if (hc->finished)
		return;
	if (hc->hold > 0) {
		hc->cancel_pending = 1;
		defer_cancel(hc->h);
		return;
	}
	hc_cancel_now(hc);
}

/* ---- the sink ---- */

static int sink_send(void *t, const json_t *msg)
{
	struct hcall *hc = t;
	int rc = 0;

	if (hc->finished || hc->peer_gone)
		return -EPIPE;
	hc->hold++;
	if (!hc->streaming) {
		/* al_http_sse_start sends Cache-Control: no-cache and X-Accel-Buffering: no. */
		hc->streaming = 1;
		rc = al_http_sse_start(hc->req);
	}
	if (rc == 0)
		rc = sse_send_msg(hc->req, msg);
	hc->hold--;
	if (rc < 0 && rc != -ENOMEM)
		rc = -EPIPE;
	return rc;
}

static void sink_finish(void *t, json_t *msg, int http_status, const char *session_id)
{
	struct hcall *hc = t;
	al_http_req *req = hc->req;

	if (hc->finished) {
		json_decref(msg);
		return;
	}
	hc->finished = 1;
	hc->req = NULL;
	hc->call = NULL;
	if (http_status < 200)
		http_status = msg ? 200 : 202;
	if (hc->streaming) {
		if (msg && !hc->peer_gone)
			sse_send_msg(req, msg);
		al_http_sse_end(req);
	} else if (hc->peer_gone) {
		al_http_respond(req, 204, NULL, NULL,
				0); /* a no-op on a closed request: frees it */
	} else if (msg) {
		if (session_id && al_http_resp_header(req, "Mcp-Session-Id", session_id) < 0)
			al_warn("mcp", "session id not sendable as a header");
		respond_msg(req, http_status, msg);
	} else if (hc->cancelling) {
		respond_error(req, 503, AL_MCP_INTERNAL_ERROR, "Server shutting down");
	} else {
		al_http_respond(req, http_status, NULL, NULL, 0);
	}
	json_decref(msg);
	if (hc->hold == 0)
		hc_free(hc);
}

/* ---- request checks ---- */

/* 1 when a media type (parameters ignored) is `want` ("application/json"). */
static int media_is(const char *v, size_t n, const char *want)
{
	size_t wl = strlen(want);

	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	return n == wl && strncasecmp(v, want, wl) == 0;
}

/* Content-Type application/json, with or without parameters (charset). */
static int content_type_ok(const char *ct)
{
	if (ct == NULL)
		return 0;
	return media_is(ct, strcspn(ct, ";"), "application/json");
}

/*
 * 1 when Accept (a comma-separated list of media ranges, parameters
 * ignored) allows `type` ("text/event-stream"), directly or through "*" +
 * "/" + "*" or "text/" + "*". A missing Accept allows everything.
 */
static int accept_allows(const char *accept, const char *type)
{
	const char *slash = strchr(type, '/');
	char wild[64];

	if (accept == NULL)
		return 1;
	snprintf(wild, sizeof(wild), "%.*s/*", (int)(slash - type), type);
	while (*accept) {
		size_t n = strcspn(accept, ",");
		size_t m = strcspn(accept, ";,");
		if (media_is(accept, m, type) || media_is(accept, m, wild) ||
		    media_is(accept, m, "*/*"))
			return 1;
		accept += n;
		if (*accept == ',')
			accept++;
	}
	return 0;
}

/* Mcp-Session-Id, or NULL when absent or empty (an empty id names nothing). */
static const char *session_header(al_http_req *req)
{
	const char *sid = al_http_req_header(req, "Mcp-Session-Id");

	return sid && *sid ? sid : NULL;
}

/* ---- methods ---- */

static void handle_post(al_mcp_http *h, al_http_req *req)
{
	struct al_http_field stack[32], *fields = stack;
	size_t nh = al_http_req_header_count(req), n = 0, len = 0;
	const char *sid = session_header(req);
	const char *accept = al_http_req_header(req, "Accept");
	struct al_mcp_inbound in = {0};
	struct hcall *hc = NULL;
	al_mcp_call *call = NULL;
	int rc;

	if (!content_type_ok(al_http_req_header(req, "Content-Type"))) {
		respond_error(req, 415, AL_MCP_INVALID_REQUEST,
			      "Unsupported Media Type: Content-Type must be application/json");
		return;
	}
	if (!accept_allows(accept, "application/json") ||
	    !accept_allows(accept, "text/event-stream")) {
		respond_error(req, 406, AL_MCP_INVALID_REQUEST,
			      "Not Acceptable: Accept must allow application/json and "
			      "text/event-stream");
		return;
	}
	if (sid && !al_mcp_server_has_session(h->srv, sid)) {
		respond_error(req, 404, AL_MCP_INVALID_REQUEST, "Session not found");
		return;
	}
	/*
	 * The dispatcher checks the Mcp-* headers against the body. It gets
	 * the request's own header strings, borrowed (al_mcp_hdr_check only
	 * reads them); the struct's members are not const, hence the casts.
	 */
	if (nh > sizeof(stack) / sizeof(stack[0])) {
		fields = al_calloc(nh, sizeof(*fields));
		if (fields == NULL) {
			respond_error(req, 500, AL_MCP_INTERNAL_ERROR, "Internal error");
			return;
		}
	}
	for (size_t i = 0; i < nh; i++) {
		const char *name, *value;
		if (al_http_req_header_at(req, i, &name, &value) == 0) {
			fields[n].name = (char *)name;
			fields[n].value = (char *)value;
			n++;
		}
	}
	hc = hc_new(h, req, HC_CALL);
	if (hc == NULL) {
		respond_error(req, 500, AL_MCP_INTERNAL_ERROR, "Internal error");
		goto done;
	}
	al_http_req_on_close(req, req_close_cb, hc);
	in.body = al_http_req_body(req, &len);
	in.len = len;
	in.headers = fields;
	in.nheaders = n;
	in.http = 1;
	in.session_id = sid;
	hc->hold++;
	rc = al_mcp_server_handle(h->srv, &in, &http_sink, hc, &call);
	hc->hold--;
	if (rc < 0 && !hc->finished) {
		/* Nothing could be done (out of memory before any reply). */
		al_http_req_on_close(req, NULL, NULL);
		hc->finished = 1;
		if (!hc->peer_gone && !hc->streaming)
			respond_error(req, 500, AL_MCP_INTERNAL_ERROR, "Internal error");
		else if (hc->streaming)
			al_http_sse_end(req);
		else
			al_http_respond(req, 500, NULL, NULL, 0);
	}
	if (hc->finished) {
		hc_free(hc);
		goto done;
	}
	hc->call = call;
	/* The connection broke while the handler was sending: cancel now, safely. */
	if (hc->cancel_pending || hc->peer_gone)
		hc_cancel_now(hc);
done:
	if (fields != stack)
		al_free(fields);
}

static void handle_get(al_mcp_http *h, al_http_req *req)
{
	const char *sid = session_header(req);
	struct hcall *hc;
	int rc;

	if (sid == NULL) {
		respond_405(req);
		return;
	}
	if (!al_mcp_server_has_session(h->srv, sid)) {
		respond_error(req, 404, AL_MCP_INVALID_REQUEST, "Session not found");
		return;
	}
	if (!accept_allows(al_http_req_header(req, "Accept"), "text/event-stream")) {
		respond_error(req, 406, AL_MCP_INVALID_REQUEST,
			      "Not Acceptable: Accept must allow text/event-stream");
		return;
	}
	hc = hc_new(h, req, HC_STREAM);
	if (hc == NULL || (hc->session = al_strdup(sid)) == NULL) {
		if (hc)
			hc_free(hc);
		respond_error(req, 500, AL_MCP_INTERNAL_ERROR, "Internal error");
		return;
	}
	al_http_req_on_close(req, req_close_cb, hc);
	hc->hold++;
	rc = al_mcp_server_open_stream(h->srv, sid, &http_sink, hc);
	if (rc == 0 && !hc->finished && !hc->streaming) {
		/* The client learns the stream is open from its head. */
		hc->streaming = 1;
		al_http_sse_start(req);
	}
	hc->hold--;
	if (rc < 0) {
		al_http_req_on_close(req, NULL, NULL);
		if (!hc->finished) {
			hc->finished = 1;
			if (hc->streaming)
				al_http_sse_end(req);
			else if (rc == -EBUSY)
				respond_error(req, 409, AL_MCP_INVALID_REQUEST,
					      "Conflict: the session's stream is already open");
			else if (rc == -ENOENT)
				respond_error(req, 404, AL_MCP_INVALID_REQUEST,
					      "Session not found");
			else
				respond_error(req, 500, AL_MCP_INTERNAL_ERROR, "Internal error");
		}
		hc_free(hc);
		return;
	}
	if (hc->finished)
		hc_free(hc);
	else if (hc->peer_gone || hc->cancel_pending)
		hc_cancel_now(hc);
}

static void handle_delete(al_mcp_http *h, al_http_req *req)
{
	const char *sid = session_header(req);

	if (sid == NULL) {
		respond_405(req);
		return;
	}
	if (al_mcp_server_end_session(h->srv, sid) < 0) {
		respond_error(req, 404, AL_MCP_INVALID_REQUEST, "Session not found");
		return;
	}
	al_http_respond(req, 204, NULL, NULL, 0);
}

/* ---- public ---- */

al_mcp_http *al_mcp_http_new(al_mcp_server *srv, const struct al_mcp_http_opts *opts)
{
	al_mcp_http *h;

	if (srv == NULL)
		return NULL;
	h = al_calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	h->srv = srv;
	h->allowed = opts && opts->allowed_hosts ? opts->allowed_hosts : al_mcp_localhost_names;
	h->no_origin_check = opts ? opts->no_origin_check : 0;
	h->loop = opts ? opts->loop : NULL;
	return h;
}

void al_mcp_http_free(al_mcp_http *h)
{
	if (h == NULL)
		return;
	/* One at a time from the head: finishing one may finish others. */
	while (h->calls) {
		struct hcall *hc = h->calls;
		hc->cancelling = 1;
		hc->cancel_pending = 0;
		hc->hold++;
		if (hc->kind == HC_STREAM)
			al_mcp_server_close_stream(h->srv, hc->session, hc);
		else if (hc->call && !hc->finished)
			al_mcp_call_cancel(hc->call);
		hc->hold--;
		if (!hc->finished) {
			/* A stream, or a call that never told us its handle. */
			if (hc->req)
				al_http_req_on_close(hc->req, NULL, NULL);
			sink_finish(hc, NULL, 503, NULL);
		} else {
			hc_free(hc);
		}
	}
	if (h->idle) {
		h->idle->data = NULL;
		uv_close((uv_handle_t *)h->idle, idle_closed_cb);
	}
	al_free(h->path);
	al_free(h);
}

void al_mcp_http_handle(al_mcp_http *h, al_http_req *req)
{
	const char *method = al_http_req_method(req);

	/* DNS rebinding: before anything else, for every method. */
	if (!h->no_origin_check &&
	    al_mcp_origin_check(al_http_req_header(req, "Host"), al_http_req_header(req, "Origin"),
				h->allowed) < 0) {
		respond_error(req, 403, AL_MCP_INVALID_REQUEST,
			      "Forbidden: Host or Origin not allowed");
		return;
	}
	if (strcmp(method, "POST") == 0)
		handle_post(h, req);
	else if (strcmp(method, "GET") == 0)
		handle_get(h, req);
	else if (strcmp(method, "DELETE") == 0)
		handle_delete(h, req);
	else
		respond_405(req);
}

static void listen_handler(al_http_req *req, void *ud)
{
	al_mcp_http *h = ud;

	if (strcmp(al_http_req_path(req), h->path) == 0) {
		al_mcp_http_handle(h, req);
		return;
	}
	al_http_respond(req, 404, "text/plain", "not found\n", 10);
}

int al_mcp_http_listen(al_mcp_http *h, uv_loop_t *loop, const struct al_http_server_opts *opts,
		       const char *path, al_http_server **out, char *err, size_t errlen)
{
	char *p = al_strdup(path ? path : "/mcp");

	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	al_free(h->path);
	h->path = p;
	if (h->loop == NULL)
		h->loop = loop;
	return al_http_server_start(loop, opts, listen_handler, h, out, err, errlen);
}
