/*
 * proxy.c - one request through the gateway: route, checks, audit, the
 * upstream call, the response streamed back.
 *
 * Order for a request (each step can answer it alone):
 *   1. route on Host (exact, then tunnel domain stripped): 404;
 *   2. Origin, when airlock.allowed_origins is set: 403;
 *   3. a body is parsed as one JSON-RPC message (al_mcp_msg_parse, which
 *      refuses duplicate keys, so the gateway reads the same message the
 *      upstream executes): 400 with the parser's code;
 *   4. Mcp-Method / Mcp-Name, when present, must say what the body says
 *      (a balancer routing on the header must not see another tool than
 *      the one that runs): 400 -32020;
 *   5. tools/call of a tool the route does not allow: HTTP 200 with
 *      -32602 "Tool not allowed", the upstream never contacted (to the
 *      client the tool does not exist, as after a filtered tools/list);
 *   6. audited methods (tools/call, resources/read, prompts/get) get their
 *      request record written first; if that fails nothing is sent: 503;
 *   7. http(s): the upstream host is resolved here (an IPv4 literal is
 *      its own address, checked without getaddrinfo), the first address
 *      in upstream.allowed_ips is chosen (none: 502) and libcurl is pinned
 *      to it (CURLOPT_RESOLVE), so the address checked is the one
 *      connected to. Connections are pooled per snapshot; a message not
 *      known to be a read goes out with no_resend (a reused connection
 *      that dies unanswered: 502, never a second send). stdio: the
 *      route's pool;
 *   8. the response head is copied (hop-by-hop headers dropped); a small
 *      JSON answer of known length is held and sent in one write, others
 *      are streamed chunk by chunk as they arrive; a tools/list answer on
 *      a filtering route is filtered (JSON: whole; SSE: per event).
 * A client that goes away cancels the upstream call at once.
 */
#include "audit/log.h"
#include "audit/record.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/rand.h"
#include "gateway/filter.h"
#include "gateway/gateway.h"
#include "gateway/route.h"
#include "http/server.h"
#include "http/sse_parser.h"
#include "mcp/headers.h"
#include "mcp/jsonrpc.h"
#include "net/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Copy of an audited streamed http response kept to read its JSON-RPC
 * error code (a held answer is read from p->hold; a stdio answer's code
 * is taken from its message).
 */
#define CAPTURE_MAX (1u << 20)
/*
 * Backpressure: a client this far behind pauses the upstream read, which
 * resumes once the client is down to RESUME_AT; a client still further
 * behind (bytes libcurl delivered before the pause took) is cut off.
 */
#define PAUSE_AT	      (1u << 20)
#define RESUME_AT	      (256u << 10)
#define BP_POLL_MS	      5
#define MAX_PENDING_TO_CLIENT (16u << 20)
/* A tools/list answer held for filtering, at most. */
#define MAX_HELD (16u << 20)
/*
 * A JSON answer whose Content-Length is at most this is held and sent in
 * one write with its length, instead of a chunked head, chunk and end (two
 * writes and a chunk frame more per call, the common tools/call answer).
 */
#define HOLD_SMALL (64u << 10)

enum mode { M_NONE, M_STREAM, M_HOLD };

struct al_gw_pxy {
	struct al_gw *gw;
	struct al_gw_snap *snap;
	const struct al_gw_route *route;
	size_t route_idx;
	al_http_req *req; /* NULL once finished */
	al_http_call *call;
	al_gw_stdio_req *sreq;
	uv_getaddrinfo_t gai;
	int gai_active;
	al_mcp_msg msg;
	int have_msg;
	const char *method; /* borrowed from msg */
	const char *name;   /* tool / uri / prompt, borrowed from msg */
	int audited;
	int filter_list;
	int filter_stream; /* a GET stream on a filtering route: its events are filtered */
	int in_cb;	   /* inside a callback that may finish the request: free later */
	char reqid[AL_ID_MAX];
	char caller[AL_SHA256_HEX];
	char args_hash[AL_SHA256_HEX];
	int64_t t0_us;
	EVP_MD_CTX *sha;
	uint64_t result_bytes;
	int status;
	int rpc_error;
	const char *outcome;
	enum mode mode;
	int is_sse;
	int64_t up_clen; /* the upstream's Content-Length, -1 when none */
	char *ctype;
	al_gw_sse_filter *sf;
	al_buf hold;
	al_buf capture;
	struct al_http_header *hdrs;
	size_t nhdrs;
	char *xff;
	char *xfh;
	char url[512];
	char resolve[512];
	int paused;    /* on gw->paused */
	int sync_wait; /* on the audit queue: its request record is being synced */
	struct al_gw_auditq_wait aw;
	struct al_gw_pxy *pnext, *pprev;
};

#define pxy al_gw_pxy

/* ---- lifetime ---- */

static void bp_unlink(struct pxy *p)
{
	if (!p->paused)
		return;
	if (p->pprev)
		p->pprev->pnext = p->pnext;
	else
		p->gw->paused = p->pnext;
	if (p->pnext)
		p->pnext->pprev = p->pprev;
	p->pnext = p->pprev = NULL;
	p->paused = 0;
}

static void pxy_free(struct pxy *p)
{
	bp_unlink(p);
	al_mcp_msg_free(&p->msg); /* also after a failed parse (jsonrpc.h) */
	al_gw_snap_unref(p->snap);
	EVP_MD_CTX_free(p->sha);
	al_free(p->ctype);
	al_gw_sse_filter_free(p->sf);
	al_buf_wipe(&p->hold);
	al_buf_free(&p->hold);
	al_buf_wipe(&p->capture);
	al_buf_free(&p->capture);
	al_free(p->hdrs);
	al_free(p->xff);
	al_free(p->xfh);
	al_free(p);
}

static void maybe_free(struct pxy *p)
{
	if (p->req == NULL && p->call == NULL && p->sreq == NULL && !p->gai_active && !p->in_cb &&
	    !p->sync_wait)
		pxy_free(p);
}

/* The JSON-RPC error code in a (possibly SSE) response body: the response's, else 0. */
static int sse_err_cb(const struct al_sse_event *ev, void *ud)
{
	json_t *j = json_loadb(ev->data, ev->data_len, 0, NULL);
	json_t *code = json_object_get(json_object_get(j, "error"), "code");

	if (json_is_integer(code) && json_object_get(j, "id"))
		*(int *)ud = (int)json_integer_value(code);
	json_decref(j);
	return 0;
}

static int rpc_error_of(const char *b, size_t n, int sse)
{
	int code = 0;

	if (n == 0)
		return 0;
	/*
	 * A body with neither an "error" key nor a \u escape (which could
	 * spell one) has no error code: the common success answer is not
	 * parsed a second time.
	 */
	if (memmem(b, n, "\"error\"", 7) == NULL && memmem(b, n, "\\u", 2) == NULL)
		return 0;
	if (sse) {
		al_sse_parser *sp = al_sse_parser_new(CAPTURE_MAX, sse_err_cb, &code);
		if (sp) {
			al_sse_parser_feed(sp, b, n);
			al_sse_parser_free(sp);
		}
	} else {
		json_t *j = json_loadb(b, n, 0, NULL);
		json_t *c = json_object_get(json_object_get(j, "error"), "code");
		if (json_is_integer(c))
			code = (int)json_integer_value(c);
		json_decref(j);
	}
	return code;
}

static void audit_end(struct pxy *p)
{
	struct al_audit_ctx ctx = {.request_id = p->reqid};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[AL_SHA256_HEX] = "";
	json_t *f, *rec;
	int failed;

	if (!p->audited || p->gw->audit == NULL)
		return;
	if (p->sha && EVP_DigestFinal_ex(p->sha, md, &mdlen) == 1 && mdlen == 32)
		for (unsigned i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
	failed = p->status >= 400 || p->rpc_error != 0 || strcmp(p->outcome, "ok") != 0;
	f = json_pack("{s:s,s:s,s:s?,s:i,s:i,s:I,s:I,s:s}", "route", p->route->host, "method",
		      p->method, "name", p->name, "http_status", p->status, "rpc_error",
		      p->rpc_error, "result_bytes", (json_int_t)p->result_bytes, "duration_us",
		      (json_int_t)(al_now_us() - p->t0_us), "outcome", p->outcome);
	if (f && hex[0])
		json_object_set_new(f, "result_sha256", json_string(hex));
	if (f && p->args_hash[0])
		json_object_set_new(f, "arguments_sha256", json_string(p->args_hash));
	if (f && p->caller[0])
		json_object_set_new(f, "caller_token_sha256", json_string(p->caller));
	rec = al_audit_rec_event(&ctx, "gateway.response", failed, f);
	if (rec == NULL || al_audit_write(p->gw->audit, rec) < 0) {
		/* The action already ran: all that is left is to say so loudly. */
		al_error("gateway", "audit: cannot write the response record of %s", p->reqid);
		al_gw_metrics_audit_failure(p->gw->metrics);
	} else {
		al_gw_auditq_kick(p->gw->auditq); /* durable with the next group sync */
	}
	json_decref(rec);
}

/* The request has been finished (respond / stream_end was called). */
static void finished(struct pxy *p)
{
	p->req = NULL;
	if (p->outcome == NULL)
		p->outcome = "ok";
	if (p->audited && p->rpc_error == 0 && p->mode == M_HOLD && p->hold.len)
		p->rpc_error = rpc_error_of(p->hold.data, p->hold.len, p->is_sse);
	else if (p->audited && p->rpc_error == 0 && p->capture.len)
		p->rpc_error = rpc_error_of(p->capture.data, p->capture.len, p->is_sse);
	al_gw_metrics_request(p->gw->metrics, p->route ? p->route->host : NULL, p->method,
			      p->status);
	if (p->sf && al_gw_sse_filter_removed(p->sf))
		al_gw_metrics_filtered(p->gw->metrics, p->route->host,
				       al_gw_sse_filter_removed(p->sf));
	audit_end(p);
	al_gw_metrics_in_flight(p->gw->metrics, -1);
	p->gw->in_flight--;
	maybe_free(p);
}

/* Answers with a JSON-RPC error (id echoed when the message had one). */
static void reply_error(struct pxy *p, int http_status, int code, const char *outcome,
			const char *msg)
{
	al_mcp_error e = {0};
	json_t *j;

	al_mcp_error_set(&e, code, http_status, NULL, "%s", msg);
	j = al_mcp_error_response_new(p->have_msg ? &p->msg.id : NULL, &e);
	al_mcp_error_clear(&e);
	p->status = http_status;
	p->rpc_error = code;
	p->outcome = outcome;
	al_http_respond_json(p->req, http_status, j);
	finished(p);
}

/* ---- the response ---- */

static int hop_by_hop(const char *n)
{
	static const char *const h[] = {"connection",
					"keep-alive",
					"proxy-connection",
					"te",
					"trailer",
					"transfer-encoding",
					"upgrade",
					"proxy-authenticate",
					"proxy-authorization",
					"content-length"};
	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
		if (strcasecmp(n, h[i]) == 0)
			return 1;
	return 0;
}

static void account(struct pxy *p, const char *data, size_t len)
{
	p->result_bytes += len;
	if (p->sha)
		EVP_DigestUpdate(p->sha, data, len);
	if (p->audited && p->mode == M_STREAM && p->route->kind == AL_GW_UP_HTTP &&
	    p->capture.len < CAPTURE_MAX) {
		size_t n = CAPTURE_MAX - p->capture.len < len ? CAPTURE_MAX - p->capture.len : len;
		al_buf_append(&p->capture, data, n);
	}
}

/* Writes body bytes to the client in the response's mode; -1 to stop the upstream. */
static int emit(struct pxy *p, const char *data, size_t len)
{
	al_buf out = {0};
	int rc = 0;

	if (p->mode == M_HOLD) {
		if (p->hold.len + len > MAX_HELD || al_buf_append(&p->hold, data, len) < 0)
			return -1;
		return 0;
	}
	if (p->sf) {
		if (al_gw_sse_filter_feed(p->sf, data, len, &out) < 0) {
			al_buf_free(&out);
			return -1;
		}
		if (out.len)
			rc = al_http_stream_write(p->req, out.data, out.len);
		al_buf_free(&out);
	} else {
		rc = al_http_stream_write(p->req, data, len);
	}
	if (rc < 0)
		return -1;
	if (al_http_req_pending_bytes(p->req) > MAX_PENDING_TO_CLIENT) {
		al_warn("gateway", "route %s: client %s is %u MiB behind: cut off", p->route->host,
			al_http_req_peer(p->req), MAX_PENDING_TO_CLIENT >> 20);
		return -1;
	}
	return 0;
}

/* Response head known: copies headers and chooses streaming or holding. */
static int begin_response(struct pxy *p, int status, const char *ctype)
{
	p->status = status;
	p->is_sse = ctype && strncasecmp(ctype, "text/event-stream", 17) == 0;
	if (ctype && (p->ctype = al_strdup(ctype)) == NULL)
		return -1;
	/*
	 * Bodiless answers (HEAD, 204, 304), tools/list to filter and small
	 * JSON answers of known length are held.
	 */
	if (status == 204 || status == 304 || strcmp(al_http_req_method(p->req), "HEAD") == 0 ||
	    (p->filter_list && !p->is_sse) ||
	    (!p->is_sse && p->up_clen >= 0 && p->up_clen <= (int64_t)HOLD_SMALL)) {
		p->mode = M_HOLD;
		return 0;
	}
	if ((p->filter_list || p->filter_stream) && p->is_sse &&
	    (p->sf = al_gw_sse_filter_new(p->route)) == NULL)
		return -1;
	if (ctype)
		al_http_resp_header(p->req, "Content-Type", ctype);
	if (p->is_sse)
		al_http_resp_header(p->req, "X-Accel-Buffering", "no");
	p->mode = M_STREAM;
	return al_http_stream_start(p->req, status) < 0 ? -1 : 0;
}

/* Sends what was held (tools/list to filter, a bodiless status or a small JSON answer). */
static void finish_held(struct pxy *p)
{
	al_buf out = {0};
	size_t removed = 0;

	if (p->filter_list && p->status != 204 && p->status != 304) {
		if (al_gw_filter_json_body(p->route, p->hold.data ? p->hold.data : "", p->hold.len,
					   &out, &removed) < 0) {
			al_buf_free(&out);
			al_http_resp_header(p->req, "Content-Type", "application/json");
			reply_error(p, 502, AL_MCP_INTERNAL_ERROR, "upstream_error",
				    "the upstream's tools/list answer is not JSON");
			return;
		}
		if (removed)
			al_gw_metrics_filtered(p->gw->metrics, p->route->host, removed);
		al_http_respond(p->req, p->status, p->ctype, out.data ? out.data : "", out.len);
	} else {
		al_http_respond(p->req, p->status, p->ctype, p->hold.data ? p->hold.data : "",
				p->hold.len);
	}
	al_buf_free(&out);
	finished(p);
}

static int head_cb(al_http_call *call, int status, const struct al_http_header *h, size_t n,
		   void *ud)
{
	struct pxy *p = ud;
	const char *ctype = NULL;
	int rc;

	(void)call;
	if (p->req == NULL)
		return -1;
	al_gw_metrics_latency(p->gw->metrics, p->route->host, (uint64_t)(al_now_us() - p->t0_us));
	p->up_clen = -1;
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(h[i].name, "content-type") == 0) {
			ctype = h[i].value;
			continue;
		}
		if (strcasecmp(h[i].name, "content-length") == 0) {
			/* Digits only; anything else (or a second one): not held. */
			char *end = NULL;
			unsigned long long v;
			errno = 0;
			v = strtoull(h[i].value, &end, 10);
			p->up_clen =
			    (p->up_clen == -1 && h[i].value[0] >= '0' && h[i].value[0] <= '9' &&
			     end && *end == '\0' && errno == 0 && v <= HOLD_SMALL)
				? (int64_t)v
				: -2;
			continue;
		}
		if (hop_by_hop(h[i].name) || strcasecmp(h[i].name, "date") == 0 ||
		    strcasecmp(h[i].name, "server") == 0)
			continue;
		al_http_resp_header(p->req, h[i].name, h[i].value);
	}
	p->in_cb++;
	rc = begin_response(p, status, ctype);
	p->in_cb--;
	if (p->req == NULL) {
		maybe_free(p);
		return -1;
	}
	return rc;
}

static int data_cb(al_http_call *call, const char *data, size_t len, void *ud)
{
	struct pxy *p = ud;
	int rc;

	(void)call;
	if (p->req == NULL)
		return -1;
	account(p, data, len);
	p->in_cb++;
	rc = emit(p, data, len);
	p->in_cb--;
	if (p->req == NULL) {
		/* The client left while we wrote (close_cb cancelled this call). */
		maybe_free(p);
		return -1;
	}
	if (rc == 0 && !p->paused && p->call && al_http_req_pending_bytes(p->req) > PAUSE_AT) {
		al_http_call_pause(p->call, 1);
		p->paused = 1;
		p->pprev = NULL;
		p->pnext = p->gw->paused;
		if (p->pnext)
			p->pnext->pprev = p;
		p->gw->paused = p;
		if (!uv_is_active((uv_handle_t *)&p->gw->bp_timer))
			uv_timer_start(&p->gw->bp_timer, al_gw_proxy_bp_timer_cb, BP_POLL_MS,
				       BP_POLL_MS);
	}
	return rc;
}

/*
 * Resumes the paused requests whose clients have caught up. A resume can
 * run callbacks that finish and free other requests, so the walk starts
 * over from the head after each one (the list is short).
 */
void al_gw_proxy_bp_timer_cb(uv_timer_t *t)
{
	struct al_gw *gw = t->data;
	struct pxy *p;

	for (;;) {
		for (p = gw->paused; p; p = p->pnext)
			if (p->req == NULL || al_http_req_pending_bytes(p->req) <= RESUME_AT)
				break;
		if (p == NULL)
			break;
		bp_unlink(p);
		if (p->call) {
			p->in_cb++;
			al_http_call_pause(p->call, 0);
			p->in_cb--;
		}
		maybe_free(p);
	}
	if (gw->paused == NULL)
		uv_timer_stop(t);
}

static void done_cb(al_http_call *call, const struct al_http_client_resp *resp, void *ud)
{
	struct pxy *p = ud;

	(void)call;
	p->call = NULL;
	if (p->req == NULL) {
		maybe_free(p);
		return;
	}
	if (resp->err < 0 && p->mode == M_NONE) {
		al_warn("gateway", "route %s: upstream %s: %s", p->route->host, p->route->url,
			resp->error ? resp->error : strerror(-resp->err));
		if (resp->err == -ECONNRESET)
			/* no_resend: sent once, then the connection died unanswered. */
			reply_error(p, 502, AL_MCP_INTERNAL_ERROR, "upstream_lost",
				    "upstream connection lost; the call may or may not have run");
		else
			reply_error(p, resp->err == -ETIMEDOUT ? 504 : 502, AL_MCP_INTERNAL_ERROR,
				    "upstream_error", "the upstream server could not be reached");
		return;
	}
	if (resp->err < 0) {
		al_warn("gateway", "route %s: upstream response cut short: %s", p->route->host,
			resp->error ? resp->error : strerror(-resp->err));
		p->outcome = "upstream_error";
	}
	if (p->mode == M_HOLD) {
		if (resp->err < 0) {
			reply_error(p, 502, AL_MCP_INTERNAL_ERROR, "upstream_error",
				    "the upstream's answer was cut short");
			return;
		}
		finish_held(p);
		return;
	}
	al_http_stream_end(p->req);
	finished(p);
}

/* ---- the upstream request ---- */

static int add_hdr(struct pxy *p, const char *name, const char *value)
{
	struct al_http_header *nh = al_realloc(p->hdrs, (p->nhdrs + 1) * sizeof(*nh));

	if (nh == NULL)
		return -ENOMEM;
	p->hdrs = nh;
	p->hdrs[p->nhdrs].name = name;
	p->hdrs[p->nhdrs].value = value;
	p->nhdrs++;
	return 0;
}

/* Is name listed in the request's Connection header (hop-by-hop by declaration)? */
static int in_connection(const char *conn, const char *name)
{
	size_t nl = strlen(name);

	for (const char *s = conn; s && *s;) {
		while (*s == ' ' || *s == ',' || *s == '\t')
			s++;
		size_t l = strcspn(s, ", \t");
		if (l == nl && strncasecmp(s, name, l) == 0)
			return 1;
		s += l;
	}
	return 0;
}

static int build_headers(struct pxy *p)
{
	al_http_req *req = p->req;
	const char *conn = al_http_req_header(req, "Connection");
	const char *peer = al_http_req_peer(req), *colon, *name, *value, *prev = NULL;
	const char *host = al_http_req_header(req, "Host");
	char ip[64];
	size_t n = al_http_req_header_count(req);
	int has_ctype = 0;

	/* "1.2.3.4:5678" or "[::1]:5678" -> the address alone. */
	colon = strrchr(peer, ':');
	snprintf(ip, sizeof(ip), "%.*s", colon ? (int)(colon - peer) : (int)strlen(peer), peer);
	for (size_t i = 0; i < n; i++) {
		if (al_http_req_header_at(req, i, &name, &value) < 0)
			continue;
		if (hop_by_hop(name) || in_connection(conn, name) ||
		    strcasecmp(name, "host") == 0 || strcasecmp(name, "expect") == 0 ||
		    strcasecmp(name, "x-forwarded-host") == 0 ||
		    strcasecmp(name, "x-forwarded-proto") == 0)
			continue;
		/*
		 * The other ways of naming the client, which an upstream may
		 * trust as X-Forwarded-For: only behind a trusted proxy.
		 */
		if (!p->snap->cfg.trust_forwarded_for &&
		    (strcasecmp(name, "forwarded") == 0 || strcasecmp(name, "x-real-ip") == 0))
			continue;
		/* Bodies are read here (filters, audit hashes): no compressed answers. */
		if (strcasecmp(name, "accept-encoding") == 0)
			continue;
		if (strcasecmp(name, "x-forwarded-for") == 0) {
			/* A client can write anything here: kept only behind a trusted proxy. */
			if (p->snap->cfg.trust_forwarded_for)
				prev = value;
			continue;
		}
		if (strcasecmp(name, "content-type") == 0)
			has_ctype = 1;
		if (add_hdr(p, name, value) < 0)
			return -ENOMEM;
	}
	if (!has_ctype && add_hdr(p, "Content-Type", NULL) < 0)
		return -ENOMEM;
	{
		size_t len = (prev ? strlen(prev) + 2 : 0) + strlen(ip) + 1;
		if ((p->xff = al_malloc(len)) == NULL)
			return -ENOMEM;
		snprintf(p->xff, len, "%s%s%s", prev ? prev : "", prev ? ", " : "", ip);
	}
	if (add_hdr(p, "X-Forwarded-For", p->xff) < 0 ||
	    add_hdr(p, "X-Forwarded-Proto", p->snap->cfg.tls_cert_file ? "https" : "http") < 0)
		return -ENOMEM;
	if (host &&
	    ((p->xfh = al_strdup(host)) == NULL || add_hdr(p, "X-Forwarded-Host", p->xfh) < 0))
		return -ENOMEM;
	return 0;
}

/*
 * Methods that only read, which libcurl may safely send twice (it does when
 * a reused connection turns out dead). tools/call runs a tool; prompts/get
 * and resources/read are reads by the spec but a server can do anything
 * there (render a prompt from a live system, read a queue); a response or
 * notification (no method) answers the server once. All those: no_resend.
 */
static int idempotent(const char *method)
{
	static const char *const m[] = {"ping",		  "tools/list",
					"resources/list", "resources/templates/list",
					"prompts/list",	  "server/discover"};

	for (size_t i = 0; method && i < sizeof(m) / sizeof(m[0]); i++)
		if (strcmp(method, m[i]) == 0)
			return 1;
	return 0;
}

static void send_http(struct pxy *p, const char *addr)
{
	const struct al_gw_route *r = p->route;
	const struct al_gw_config *c = &p->snap->cfg;
	const char *target = al_http_req_target(p->req);
	const char *body;
	size_t blen;
	struct al_http_client_req cr = {0};
	int v6 = strchr(addr, ':') != NULL, rc;

	if (target[0] != '/') {
		reply_error(p, 400, AL_MCP_INVALID_REQUEST, "refused", "bad request target");
		return;
	}
	if ((size_t)snprintf(p->url, sizeof(p->url), "%s%s", r->url, target) >= sizeof(p->url) ||
	    (size_t)snprintf(p->resolve, sizeof(p->resolve), "%s:%d:%s%s%s",
			     strchr(r->uhost, ':') ? "" : r->uhost, r->uport, v6 ? "[" : "", addr,
			     v6 ? "]" : "") >= sizeof(p->resolve)) {
		reply_error(p, 414, AL_MCP_INVALID_REQUEST, "refused", "request target too long");
		return;
	}
	if (build_headers(p) < 0) {
		reply_error(p, 500, AL_MCP_INTERNAL_ERROR, "error", "out of memory");
		return;
	}
	body = al_http_req_body(p->req, &blen);
	cr.method = al_http_req_method(p->req);
	cr.url = p->url;
	cr.headers = p->hdrs;
	cr.nheaders = p->nhdrs;
	cr.body = blen ? body : NULL;
	cr.body_len = blen;
	cr.timeout_ms = r->timeout_ms;
	cr.connect_timeout_ms = 10000;
	cr.ca_file = c->upstream_ca_file;
	cr.ca_also_system = c->include_system_cas;
	cr.on_head = head_cb;
	cr.on_data = data_cb;
	/* An IPv6 literal upstream has no name to pin: it is its own address. */
	cr.resolve = strchr(r->uhost, ':') ? NULL : p->resolve;
	/* Never through a proxy from the environment, pinned or not. */
	cr.no_proxy = 1;
	/*
	 * libcurl re-sends a request whose reused connection died before any
	 * answer byte; a tools/call may already have run upstream. A message
	 * not known to be a read goes out at most once, still on a pooled
	 * connection: if that connection dies under it the client gets a 502
	 * saying it may have run, and decides about retries.
	 */
	cr.no_resend = p->have_msg && !idempotent(p->method);
	rc = al_http_client_request(p->snap->client, &cr, done_cb, p, &p->call);
	if (rc < 0)
		reply_error(p, 502, AL_MCP_INTERNAL_ERROR, "upstream_error",
			    "the upstream request could not be made");
}

/*
 * The one check of an upstream IPv4 address (network byte order), for a
 * resolved name and for a literal alike. 0.0.0.0/8 is "this host": Linux
 * connects it to the loopback interface, so an allowed_ips of 0.0.0.0/0
 * would quietly open every local service. Loopback is reached by listing
 * 127.0.0.0/8, never this way.
 */
static int ipv4_allowed(const struct al_gw_config *c, uint32_t addr)
{
	return c->disable_ip_validation ||
	       ((ntohl(addr) >> 24) != 0 &&
		al_gw_cidr_match(c->allowed_ips, c->nallowed_ips, addr));
}

/* No address of the upstream's is allowed (seen: the ones it had): 502. */
static void refuse_ip(struct pxy *p, const char *seen)
{
	al_warn("gateway",
		"route %s: upstream %s resolves to %s: not in upstream.allowed_ips: refused",
		p->route->host, p->route->uhost, seen);
	al_gw_metrics_refusal(p->gw->metrics, p->route->host, "ip_denied");
	reply_error(p, 502, AL_MCP_INTERNAL_ERROR, "refused_ip",
		    "the upstream address is not allowed by the gateway");
}

static void gai_cb(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
	struct pxy *p = g->data;
	const struct al_gw_config *c = &p->snap->cfg;
	char addr[INET6_ADDRSTRLEN] = "", seen[256] = "";
	size_t sl = 0;

	p->gai_active = 0;
	if (p->req == NULL) {
		uv_freeaddrinfo(res);
		maybe_free(p);
		return;
	}
	if (status < 0) {
		al_warn("gateway", "route %s: cannot resolve %s: %s", p->route->host,
			p->route->uhost, uv_strerror(status));
		uv_freeaddrinfo(res);
		reply_error(p, 502, AL_MCP_INTERNAL_ERROR, "upstream_error",
			    "the upstream server could not be reached");
		return;
	}
	for (struct addrinfo *ai = res; ai && addr[0] == '\0'; ai = ai->ai_next) {
		char a[INET6_ADDRSTRLEN];
		int ok = 0;
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
			inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
			ok = ipv4_allowed(c, sin->sin_addr.s_addr);
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ai->ai_addr;
			inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
			/* allowed_ips are IPv4 networks: IPv6 only without validation. */
			ok = c->disable_ip_validation;
		} else {
			continue;
		}
		if (ok)
			snprintf(addr, sizeof(addr), "%s", a);
		else if (sl < sizeof(seen) - 1)
			sl += (size_t)snprintf(seen + sl, sizeof(seen) - sl, "%s%s", sl ? " " : "",
					       a);
	}
	uv_freeaddrinfo(res);
	if (addr[0] == '\0') {
		refuse_ip(p, seen[0] ? seen : "nothing usable");
		return;
	}
	send_http(p, addr);
}

static void start_http(struct pxy *p)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
	const struct al_gw_config *c = &p->snap->cfg;
	struct in_addr a4;
	int rc;

	if (inet_pton(AF_INET, p->route->uhost, &a4) == 1) {
		/*
		 * An IPv4 literal resolves to itself: checked here, without the
		 * thread pool round trip of getaddrinfo (tens of microseconds of
		 * every request's latency).
		 */
		if (ipv4_allowed(c, a4.s_addr))
			send_http(p, p->route->uhost);
		else
			refuse_ip(p, p->route->uhost);
		return;
	}
	p->gai.data = p;
	rc = uv_getaddrinfo(p->gw->loop, &p->gai, gai_cb, p->route->uhost, NULL, &hints);
	if (rc < 0) {
		reply_error(p, 502, AL_MCP_INTERNAL_ERROR, "upstream_error",
			    "the upstream server could not be reached");
		return;
	}
	p->gai_active = 1;
}

/* ---- stdio upstreams ---- */

static void stdio_deliver(struct pxy *p, const json_t *msg, int final);

static void stdio_cb(void *ud, const json_t *msg, int final)
{
	struct pxy *p = ud;

	if (final)
		p->sreq = NULL;
	p->in_cb++;
	stdio_deliver(p, msg, final);
	p->in_cb--;
	maybe_free(p);
}

static void stdio_deliver(struct pxy *p, const json_t *msg, int final)
{
	al_buf b = {0};
	json_t *copy = NULL;

	if (p->req == NULL)
		return;
	if (msg == NULL) { /* a notification, delivered */
		p->status = 202;
		al_http_respond(p->req, 202, NULL, NULL, 0);
		finished(p);
		return;
	}
	if (final && p->filter_list) {
		copy = json_deep_copy(msg);
		if (copy) {
			size_t n = al_gw_filter_tools_msg(p->route, copy);
			if (n)
				al_gw_metrics_filtered(p->gw->metrics, p->route->host, n);
			msg = copy;
		}
	}
	if (final) {
		/* The response itself: its error code, before copy (maybe msg) goes. */
		json_t *code = json_object_get(json_object_get(msg, "error"), "code");
		p->rpc_error = json_is_integer(code) ? (int)json_integer_value(code) : 0;
	}
	if (al_mcp_msg_dump(msg, &b) < 0) {
		json_decref(copy);
		al_buf_free(&b);
		if (final) {
			if (p->mode == M_STREAM) {
				al_http_stream_end(p->req);
				finished(p);
			} else {
				reply_error(p, 500, AL_MCP_INTERNAL_ERROR, "error",
					    "out of memory");
			}
		}
		return;
	}
	json_decref(copy);
	account(p, b.data, b.len);
	if (final && p->mode == M_NONE) {
		p->status = 200;
		al_http_respond(p->req, 200, "application/json", b.data, b.len);
		al_buf_free(&b);
		finished(p);
		return;
	}
	/* A message before the response: the answer becomes an event stream. */
	if (p->mode == M_NONE) {
		p->status = 200;
		p->is_sse = 1;
		p->mode = M_STREAM;
		al_http_resp_header(p->req, "Content-Type", "text/event-stream");
		al_http_resp_header(p->req, "Cache-Control", "no-cache");
		al_http_resp_header(p->req, "X-Accel-Buffering", "no");
		if (al_http_stream_start(p->req, 200) < 0 || p->req == NULL) {
			al_buf_free(&b);
			return;
		}
	}
	{
		al_buf ev = {0};
		if (al_buf_append_str(&ev, "event: message\ndata: ") == 0 &&
		    al_buf_append(&ev, b.data, b.len) == 0 && al_buf_append_str(&ev, "\n\n") == 0)
			al_http_stream_write(p->req, ev.data, ev.len);
		al_buf_free(&ev);
	}
	al_buf_free(&b);
	if (p->req == NULL)
		return; /* the client left during the write */
	if (final) {
		al_http_stream_end(p->req);
		finished(p);
	}
}

static void start_stdio(struct pxy *p)
{
	al_gw_stdio_pool *pool = p->snap->pools ? p->snap->pools[p->route_idx] : NULL;
	int rc;

	if (strcmp(al_http_req_method(p->req), "POST") != 0) {
		al_http_resp_header(p->req, "Allow", "POST");
		reply_error(p, 405, AL_MCP_INVALID_REQUEST, "refused",
			    "a stdio route answers POST only");
		return;
	}
	if (!p->have_msg) {
		reply_error(p, 400, AL_MCP_INVALID_REQUEST, "refused",
			    "a JSON-RPC message is required");
		return;
	}
	if (pool == NULL) {
		reply_error(p, 503, AL_MCP_INTERNAL_ERROR, "upstream_error",
			    "the stdio server is not running");
		return;
	}
	rc = al_gw_stdio_pool_send(pool, p->msg.root, stdio_cb, p, &p->sreq);
	if (rc < 0) {
		p->sreq = NULL;
		reply_error(p, 503, AL_MCP_INTERNAL_ERROR, "upstream_error",
			    rc == -EAGAIN ? "no stdio server ready" : "the stdio server failed");
	}
}

/* ---- checks ---- */

static void close_cb(al_http_req *req, void *ud)
{
	struct pxy *p = ud;

	if (p->req == NULL)
		return;
	bp_unlink(p);
	if (p->call) {
		al_http_call_cancel(p->call);
		p->call = NULL;
	}
	if (p->sreq) {
		al_gw_stdio_req_cancel(p->sreq);
		p->sreq = NULL;
	}
	if (p->gai_active)
		uv_cancel((uv_req_t *)&p->gai); /* gai_cb still runs, and frees */
	p->outcome = "client_gone";
	/* Finishing a closed request only frees it; 499 is for the metrics. */
	if (p->mode == M_STREAM)
		al_http_stream_end(req);
	else
		al_http_respond(req, 499, NULL, NULL, 0);
	if (p->status == 0)
		p->status = 499;
	finished(p);
}

/* Mcp-Method and Mcp-Name, when sent, must agree with the body. */
static int headers_agree(struct pxy *p, char *why, size_t whylen)
{
	const char *name, *value, *hm = NULL, *hn = NULL;
	size_t n = al_http_req_header_count(p->req);
	int cm = 0, cn = 0, rc = 0;
	al_buf dec = {0};

	for (size_t i = 0; i < n; i++) {
		if (al_http_req_header_at(p->req, i, &name, &value) < 0)
			continue;
		if (strcasecmp(name, AL_MCP_HDR_METHOD) == 0) {
			hm = value;
			cm++;
		} else if (strcasecmp(name, AL_MCP_HDR_NAME) == 0) {
			hn = value;
			cn++;
		}
	}
	if (cm > 1 || cn > 1) {
		snprintf(why, whylen, "Mcp-Method or Mcp-Name sent more than once");
		return -EINVAL;
	}
	if (hm && (p->method == NULL || strcmp(hm, p->method) != 0)) {
		snprintf(why, whylen, "Mcp-Method does not match the body's method");
		return -EINVAL;
	}
	if (hn && p->method &&
	    (strcmp(p->method, "tools/call") == 0 || strcmp(p->method, "prompts/get") == 0 ||
	     strcmp(p->method, "resources/read") == 0)) {
		if (al_mcp_hdr_value_decode(hn, strlen(hn), &dec) < 0 ||
		    al_buf_append(&dec, "", 1) < 0 || p->name == NULL ||
		    strcmp(dec.data, p->name) != 0 || strlen(p->name) != dec.len - 1) {
			snprintf(why, whylen, "Mcp-Name does not match the body");
			rc = -EINVAL;
		}
	}
	al_buf_free(&dec);
	return rc;
}

static int origin_ok(const struct al_gw_config *c, const char *origin)
{
	if (c->allowed_origins == NULL || origin == NULL)
		return 1;
	for (size_t i = 0; c->allowed_origins[i]; i++)
		if (strcasecmp(c->allowed_origins[i], origin) == 0)
			return 1;
	return 0;
}

static void hash_json(const json_t *v, char out[AL_SHA256_HEX])
{
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;

	out[0] = '\0';
	if (s) {
		al_sha256_hex(s, strlen(s), out);
		al_free(s);
	}
}

static void go_upstream(struct pxy *p)
{
	if (p->gw->draining)
		al_http_resp_header(p->req, "Connection", "close");
	if (p->route->kind == AL_GW_UP_STDIO)
		start_stdio(p);
	else
		start_http(p);
}

/* audit_sync: request: the request record is on disk (or the sync failed). */
static void audit_synced_cb(void *ud, int rc)
{
	struct pxy *p = ud;

	p->sync_wait = 0;
	if (p->req == NULL) { /* the client left meanwhile: nothing runs */
		maybe_free(p);
		return;
	}
	if (rc < 0) {
		al_error("gateway", "audit: the request record is not durable: refusing %s",
			 p->method);
		al_gw_metrics_audit_failure(p->gw->metrics);
		p->audited = 0; /* the log refuses records now */
		reply_error(p, 503, AL_MCP_INTERNAL_ERROR, "audit_failed",
			    "the gateway cannot record this request");
		return;
	}
	go_upstream(p);
}

/*
 * Writes the request record: 0 to go on now, 1 when the request goes on
 * from audit_synced_cb (audit_sync: request), or -errno (refuse: 503).
 */
static int audit_begin(struct pxy *p)
{
	struct al_audit_ctx ctx = {.request_id = p->reqid};
	const char *peer = al_http_req_peer(p->req);
	json_t *f, *rec;
	int rc;

	if (p->gw->audit == NULL)
		return 0;
	f = json_pack("{s:s,s:s,s:s?,s:s,s:s}", "route", p->route->host, "method", p->method,
		      "name", p->name, "upstream",
		      p->route->kind == AL_GW_UP_HTTP ? p->route->url : p->route->argv[0], "peer",
		      peer);
	if (f && p->args_hash[0])
		json_object_set_new(f, "arguments_sha256", json_string(p->args_hash));
	if (f && p->caller[0])
		json_object_set_new(f, "caller_token_sha256", json_string(p->caller));
	rec = al_audit_rec_event(&ctx, "gateway.request", 0, f);
	rc = rec ? al_audit_write(p->gw->audit, rec) : -ENOMEM;
	json_decref(rec);
	if (rc < 0)
		return rc;
	if (p->snap->cfg.audit_sync == AL_GW_AUDIT_SYNC_BATCH) {
		al_gw_auditq_kick(p->gw->auditq);
		return 0;
	}
	p->sync_wait = 1;
	al_gw_auditq_wait(p->gw->auditq, &p->aw, audit_synced_cb, p);
	return 1;
}

void al_gw_proxy_handle(al_http_req *req, void *ud)
{
	struct al_gw *gw = ud;
	struct pxy *p = al_calloc(1, sizeof(*p));
	const char *body, *auth;
	size_t blen;
	char why[160];
	al_mcp_error perr = {0};
	int arc = 0;

	if (p == NULL) {
		al_http_respond(req, 503, "application/json", "{}", 2);
		return;
	}
	p->gw = gw;
	p->req = req;
	p->t0_us = al_now_us();
	p->snap = al_gw_snap_ref(gw->snap);
	gw->in_flight++;
	al_gw_metrics_in_flight(gw->metrics, 1);
	al_http_req_on_close(req, close_cb, p);
	al_id_new("gwreq", p->reqid, sizeof(p->reqid));

	/*
	 * Each request in flight holds up to its body, a held tools/list
	 * answer and what its client is behind on (tens of MiB at worst), and
	 * an upstream connection: past airlock.max_in_flight new ones wait
	 * for capacity at the client's side, not here.
	 */
	if ((size_t)gw->in_flight > p->snap->cfg.max_in_flight) {
		al_gw_metrics_refusal(gw->metrics, NULL, "busy");
		al_http_resp_header(req, "Retry-After", "1");
		reply_error(p, 503, AL_MCP_INTERNAL_ERROR, "refused",
			    "the gateway is at airlock.max_in_flight: retry later");
		return;
	}

	p->route = al_gw_route_find(&p->snap->cfg, al_http_req_header(req, "Host"));
	if (p->route == NULL) {
		al_gw_metrics_refusal(gw->metrics, NULL, "no_route");
		reply_error(p, 404, AL_MCP_INVALID_REQUEST, "no_route", "no route for this host");
		return;
	}
	p->route_idx = (size_t)(p->route - p->snap->cfg.routes);
	/*
	 * absolute-form ("POST http://other/mcp"): RFC 9112 says its authority
	 * overrides Host, and a front end that routes on it would pick another
	 * route than the Host this gateway routes on. Origin-form only.
	 */
	if (al_http_req_target(req)[0] != '/') {
		al_gw_metrics_refusal(gw->metrics, p->route->host, "bad_message");
		reply_error(p, 400, AL_MCP_INVALID_REQUEST, "refused",
			    "the request target must be a path (origin-form)");
		return;
	}
	if (!origin_ok(&p->snap->cfg, al_http_req_header(req, "Origin"))) {
		al_gw_metrics_refusal(gw->metrics, p->route->host, "origin");
		reply_error(p, 403, AL_MCP_INVALID_REQUEST, "refused", "Origin not allowed");
		return;
	}
	body = al_http_req_body(req, &blen);
	if (blen > 0) {
		if (al_mcp_msg_parse(body, blen, &p->msg, &perr) < 0) {
			int code = perr.code ? perr.code : AL_MCP_PARSE_ERROR;
			p->have_msg = p->msg.id.kind != AL_MCP_ID_NONE;
			al_mcp_error_clear(&perr);
			al_gw_metrics_refusal(gw->metrics, p->route->host, "bad_message");
			reply_error(p, code == AL_MCP_INTERNAL_ERROR ? 500 : 400, code, "refused",
				    al_mcp_error_name(code));
			return;
		}
		p->have_msg = 1;
		p->method = p->msg.method;
		if (p->method && (strcmp(p->method, "tools/call") == 0 ||
				  strcmp(p->method, "prompts/get") == 0)) {
			p->name = json_string_value(json_object_get(p->msg.params, "name"));
			if (gw->audit) /* only the audit records name it */
				hash_json(json_object_get(p->msg.params, "arguments"),
					  p->args_hash);
			p->audited = 1;
		} else if (p->method && strcmp(p->method, "resources/read") == 0) {
			p->name = json_string_value(json_object_get(p->msg.params, "uri"));
			p->audited = 1;
		}
		p->filter_list = p->method && strcmp(p->method, "tools/list") == 0 &&
				 al_gw_route_filters_tools(p->route);
	} else {
		/*
		 * A bodiless request's stream (the GET stream, a resumption with
		 * Last-Event-ID, the 2024-11-05 SSE endpoint) can carry a
		 * tools/list answer too: a resumed stream replays it. Its events
		 * go through the same filter, or the list would reach the client
		 * whole by reconnecting.
		 */
		p->filter_stream = al_gw_route_filters_tools(p->route);
	}
	if (headers_agree(p, why, sizeof(why)) < 0) {
		al_gw_metrics_refusal(gw->metrics, p->route->host, "header_mismatch");
		reply_error(p, 400, AL_MCP_HEADER_MISMATCH, "refused", why);
		return;
	}
	if (p->audited && gw->audit && (auth = al_http_req_header(req, "Authorization")) != NULL) {
		/*
		 * Who called, without the credential: its SHA-256 (never the
		 * token), for the audit records, the only place it goes.
		 */
		al_sha256_hex(auth, strlen(auth), p->caller);
	}
	if (p->audited && gw->audit && (p->sha = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(p->sha);
		p->sha = NULL;
	}
	if (p->method && strcmp(p->method, "tools/call") == 0 &&
	    !al_gw_tool_allowed(p->route, p->name)) {
		al_gw_metrics_refusal(gw->metrics, p->route->host, "tool_denied");
		al_info("gateway", "route %s: tools/call of a tool not allowed: refused",
			p->route->host);
		snprintf(why, sizeof(why), "Tool not allowed: %.100s", p->name ? p->name : "");
		reply_error(p, 200, AL_MCP_INVALID_PARAMS, "refused_tool", why);
		return;
	}
	if (p->audited && (arc = audit_begin(p)) < 0) {
		al_error("gateway", "audit: cannot write the request record: refusing %s",
			 p->method);
		al_gw_metrics_audit_failure(gw->metrics);
		p->audited = 0; /* nothing ran: no response record either */
		reply_error(p, 503, AL_MCP_INTERNAL_ERROR, "audit_failed",
			    "the gateway cannot record this request");
		return;
	}
	if (arc == 0)
		go_upstream(p);
}
