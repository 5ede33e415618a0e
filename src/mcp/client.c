/*
 * client.c - the MCP client over Streamable HTTP (both eras). See client.h.
 *
 * Every JSON-RPC exchange is one "op". A user request is an op that may take
 * several HTTP attempts: a retry after -32022 with a version the server
 * named, MRTR rounds (input_required -> retry with inputResponses), list
 * pages (nextCursor), a legacy re-initialize after a 404 on the session, a
 * legacy resume (GET + Last-Event-ID) of a stream that ended early. Each
 * attempt of a request carries a fresh JSON-RPC id. Connecting (discover,
 * initialize, initialized) is made of internal ops, and the user ops that
 * arrive meanwhile wait on the client's list until it is done.
 */
#include "mcp/client.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "http/sse_parser.h"
#include "mcp/headers.h"
#include "mcp/meta.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOG_TAG		   "mcp-client"
#define DEFAULT_TIMEOUT_MS 60000u
#define DEFAULT_ROUNDS	   8u
#define MAX_PAGES	   1000u
#define MAX_RESUMES	   5
#define DEFAULT_RETRY_MS   1000
#define MAX_RETRY_MS	   60000
/* Internal sentinel: the reader saw this attempt's response; stop reading. */
#define GOT_FINAL (-EINTR)

/* The legacy versions we accept in an InitializeResult, newest first. */
static const char *const legacy_versions[] = {AL_MCP_VERSION_2025, "2025-06-18", "2025-03-26",
					      NULL};

/* ---- the response reader ---- */

struct al_mcp_resp_reader {
	int is_sse;
	al_sse_parser *sse;
	al_buf body;
	al_mcp_resp_msg_cb cb;
	void *ud;
	int err;
};

static int reader_deliver(al_mcp_resp_reader *r, const char *data, size_t len)
{
	al_mcp_msg m = {0};
	al_mcp_error perr = {0};
	int rc;

	rc = al_mcp_msg_parse(data, len, &m, &perr);
	if (rc == -EINVAL)
		rc = -EBADMSG;
	if (rc == 0)
		rc = r->cb(&m, r->ud);
	al_mcp_msg_free(&m);
	al_mcp_error_clear(&perr);
	return rc;
}

static int reader_event_cb(const struct al_sse_event *ev, void *ud)
{
	al_mcp_resp_reader *r = ud;

	/* An event without data primes the stream (2025-11-25: an id and a
	 * retry before anything else); other event types are not ours. */
	if (ev->data_len == 0 || strcmp(ev->type, "message") != 0)
		return 0;
	return reader_deliver(r, ev->data, ev->data_len);
}

al_mcp_resp_reader *al_mcp_resp_reader_new(int is_sse, al_mcp_resp_msg_cb cb, void *ud)
{
	al_mcp_resp_reader *r = al_calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->is_sse = is_sse;
	r->cb = cb;
	r->ud = ud;
	if (is_sse) {
		/* An event carries one message: the same cap as a message. */
		r->sse = al_sse_parser_new(AL_MCP_MAX_MESSAGE, reader_event_cb, r);
		if (r->sse == NULL) {
			al_free(r);
			return NULL;
		}
	}
	return r;
}

int al_mcp_resp_reader_feed(al_mcp_resp_reader *r, const char *data, size_t len)
{
	int rc = r->err;

	if (rc != 0)
		goto done;
	if (r->is_sse) {
		rc = al_sse_parser_feed(r->sse, data, len);
		if (rc == -E2BIG)
			rc = -EFBIG;
	} else if (r->body.len + len > AL_MCP_MAX_MESSAGE) {
		rc = -EFBIG;
	} else if (al_buf_append(&r->body, data, len) < 0) {
		rc = -ENOMEM;
	}
done:
	r->err = rc;
	return rc;
}

int al_mcp_resp_reader_finish(al_mcp_resp_reader *r)
{
	int rc = r->err;

	if (rc != 0 || r->is_sse || r->body.len == 0)
		goto done;
	rc = reader_deliver(r, r->body.data, r->body.len);
	r->err = rc != 0 ? rc : -EALREADY;
done:
	return rc == -EALREADY ? 0 : rc;
}

const char *al_mcp_resp_reader_last_id(const al_mcp_resp_reader *r)
{
	return r->sse != NULL ? al_sse_parser_last_id(r->sse) : "";
}

int64_t al_mcp_resp_reader_retry(const al_mcp_resp_reader *r)
{
	return r->sse != NULL ? al_sse_parser_retry(r->sse) : -1;
}

void al_mcp_resp_reader_free(al_mcp_resp_reader *r)
{
	if (r == NULL)
		return;
	al_sse_parser_free(r->sse);
	al_buf_free(&r->body);
	al_free(r);
}

/* ---- the client ---- */

enum op_kind {
	K_USER = 1,    /* a request for the user */
	K_DISCOVER,    /* connect: server/discover */
	K_INIT,	       /* connect: initialize */
	K_INITIALIZED, /* connect: notifications/initialized */
	K_FIRE,	       /* a notification or a response to the server; result unused */
	K_LISTEN       /* legacy: the standalone GET stream for server requests */
};

enum conn_state { C_IDLE = 0, C_CONNECTING, C_READY };

struct tool_ph {
	char *name;
	al_mcp_param_headers ph;
};

struct al_mcp_op {
	al_mcp_client *c;
	al_mcp_op *prev, *next;
	enum op_kind kind;
	int waiting;  /* queued until the client is connected */
	int busy;     /* inside one of our callbacks: free later */
	int dead;     /* cancelled or finished while busy */
	int modern;   /* this attempt speaks 2026-07-28 */
	char *method; /* NULL for K_FIRE */
	json_t *params;
	json_t *fire_body; /* K_FIRE: the whole message */
	json_t *input_responses;
	char *request_state;
	long long id;
	int sent; /* some attempt went out (legacy cancel notifies) */
	json_t *progress_token;
	al_mcp_progress_cb on_progress;
	void *progress_ud;
	unsigned rounds, pages;
	int version_retried, session_retried, resumes, had_session;
	const char *list_key; /* "tools" for list_tools */
	json_t *acc;	      /* the pages so far */
	/* the attempt in flight */
	al_http_call *call;
	al_mcp_resp_reader *rd;
	int status;
	int get; /* this attempt is a resume GET */
	char *last_event_id;
	int64_t retry_ms;
	json_t *final_result; /* owned */
	al_mcp_error final_err;
	int have_final, final_is_err;
	uv_timer_t *timer;
	char *www;	     /* this attempt's WWW-Authenticate, or NULL */
	al_mcp_oauth *oauth; /* a flow in progress for this op */
	int auth_tries;
	al_mcp_client_done_cb done;
	void *ud;
};

struct al_mcp_client {
	uv_loop_t *loop;
	al_http_client *http;
	char *url;
	char *auth; /* "Bearer ..." (secret) or NULL */
	char *ca_file;
	char *name, *cversion;
	json_t *caps;
	uint64_t timeout_ms;
	struct al_http_header *xh;
	size_t nxh;
	enum al_mcp_era pref, era;
	const char *version;
	unsigned max_rounds;
	al_mcp_input_cb on_input;
	void *input_ud;
	char *session; /* legacy Mcp-Session-Id (never logged) */
	json_t *server_result;
	enum conn_state state;
	int discover_retried;
	long long next_id, next_token;
	struct tool_ph *tools;
	size_t ntools;
	al_mcp_op *ops;
	al_mcp_op *listen; /* legacy GET stream, or NULL */
	al_mcp_client_done_cb connect_done;
	void *connect_ud;
	struct al_mcp_oauth_opts oauth; /* copies; client_secret is a secret */
	char *scope;			/* what the last OAuth flow requested */
	int has_oauth;
};

static int op_send(al_mcp_op *op);
static void op_finish(al_mcp_op *op, int err, const json_t *result, const al_mcp_error *rpc);
static int start_connect(al_mcp_client *c);

static void op_link(al_mcp_client *c, al_mcp_op *op)
{
	op->next = c->ops;
	if (c->ops != NULL)
		c->ops->prev = op;
	c->ops = op;
}

static void op_unlink(al_mcp_op *op)
{
	if (op->c->listen == op)
		op->c->listen = NULL;
	if (op->prev != NULL)
		op->prev->next = op->next;
	else if (op->c->ops == op)
		op->c->ops = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

static void timer_close_cb(uv_handle_t *h)
{
	al_free(h);
}

static void op_reset_attempt(al_mcp_op *op)
{
	if (op->call != NULL) {
		al_http_call_cancel(op->call);
		op->call = NULL;
	}
	al_mcp_resp_reader_free(op->rd);
	op->rd = NULL;
	json_decref(op->final_result);
	op->final_result = NULL;
	al_mcp_error_clear(&op->final_err);
	op->have_final = op->final_is_err = 0;
	op->status = 0;
	al_free(op->www);
	op->www = NULL;
}

static void op_free(al_mcp_op *op)
{
	if (op == NULL)
		return;
	op_reset_attempt(op);
	al_mcp_oauth_cancel(op->oauth);
	op->oauth = NULL;
	if (op->timer != NULL) {
		uv_timer_stop(op->timer);
		uv_close((uv_handle_t *)op->timer, timer_close_cb);
	}
	al_free(op->method);
	json_decref(op->params);
	json_decref(op->fire_body);
	json_decref(op->input_responses);
	al_free(op->request_state);
	json_decref(op->progress_token);
	json_decref(op->acc);
	al_free(op->last_event_id);
	al_free(op);
}

/* Removes op from the client and frees it, now or when its callback returns. */
static void op_release(al_mcp_op *op)
{
	if (op->dead)
		return;
	op_unlink(op);
	op->dead = 1;
	if (op->call != NULL) {
		al_http_call_cancel(op->call);
		op->call = NULL;
	}
	if (!op->busy)
		op_free(op);
}

static char *dup_opt(const char *s, int *fail)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = al_strdup(s);
	if (d == NULL)
		*fail = 1;
	return d;
}

static int header_text_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\r' || *s == '\n')
			return 0;
	return 1;
}

int al_mcp_client_new(uv_loop_t *loop, al_http_client *http, const struct al_mcp_client_opts *opts,
		      al_mcp_client **out)
{
	al_mcp_client *c = NULL;
	al_buf auth = {0};
	int fail = 0, rc = -ENOMEM;

	*out = NULL;
	if (opts == NULL || opts->url == NULL || http == NULL ||
	    (opts->capabilities != NULL && !json_is_object(opts->capabilities)) ||
	    (opts->bearer_token != NULL && !header_text_ok(opts->bearer_token))) {
		rc = -EINVAL;
		goto fail;
	}
	for (size_t i = 0; i < opts->nheaders; i++) {
		if (opts->headers[i].name == NULL || opts->headers[i].value == NULL ||
		    !header_text_ok(opts->headers[i].name) ||
		    !header_text_ok(opts->headers[i].value)) {
			rc = -EINVAL;
			goto fail;
		}
	}
	c = al_calloc(1, sizeof(*c));
	if (c == NULL)
		goto fail;
	c->loop = loop;
	c->http = http;
	c->url = dup_opt(opts->url, &fail);
	c->ca_file = dup_opt(opts->ca_file, &fail);
	c->name = dup_opt(opts->client_name != NULL ? opts->client_name : "airlock", &fail);
	c->cversion =
	    dup_opt(opts->client_version != NULL ? opts->client_version : AL_VERSION, &fail);
	if (opts->bearer_token != NULL) {
		if (al_buf_appendf(&auth, "Bearer %s", opts->bearer_token) < 0)
			fail = 1;
		c->auth = al_buf_steal(&auth, NULL);
	}
	if (opts->capabilities != NULL)
		c->caps = json_deep_copy(opts->capabilities);
	else if (opts->on_input != NULL)
		c->caps = json_pack("{s{}s{}s{}}", "elicitation", "sampling", "roots");
	else
		c->caps = json_object();
	if (c->caps == NULL)
		fail = 1;
	if (opts->nheaders > 0) {
		c->xh = al_calloc(opts->nheaders, sizeof(*c->xh));
		if (c->xh == NULL)
			fail = 1;
		for (size_t i = 0; c->xh != NULL && i < opts->nheaders; i++) {
			c->xh[i].name = dup_opt(opts->headers[i].name, &fail);
			c->xh[i].value = dup_opt(opts->headers[i].value, &fail);
			c->nxh = i + 1;
		}
	}
	if (fail)
		goto fail;
	c->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->pref = opts->era;
	c->max_rounds = opts->max_input_rounds != 0 ? opts->max_input_rounds : DEFAULT_ROUNDS;
	c->on_input = opts->on_input;
	c->input_ud = opts->input_ud;
	if (opts->oauth != NULL) {
		c->has_oauth = 1;
		c->oauth.client_id = dup_opt(opts->oauth->client_id, &fail);
		c->oauth.client_secret = dup_opt(opts->oauth->client_secret, &fail);
		c->oauth.client_metadata_url = dup_opt(opts->oauth->client_metadata_url, &fail);
		c->oauth.client_name = dup_opt(opts->oauth->client_name, &fail);
		c->oauth.redirect_uri = dup_opt(opts->oauth->redirect_uri, &fail);
		c->oauth.ca_file = dup_opt(opts->oauth->ca_file, &fail);
		c->oauth.issuer = dup_opt(opts->oauth->issuer, &fail);
		if (fail)
			goto fail;
	}
	c->next_id = 1;
	c->next_token = 1;
	*out = c;
	c = NULL;
	rc = 0;
fail:
	al_buf_wipe(&auth);
	al_buf_free(&auth);
	al_mcp_client_free(c);
	return rc;
}

static void tools_clear(al_mcp_client *c)
{
	for (size_t i = 0; i < c->ntools; i++) {
		al_free(c->tools[i].name);
		al_mcp_param_headers_free(&c->tools[i].ph);
	}
	al_free(c->tools);
	c->tools = NULL;
	c->ntools = 0;
}

void al_mcp_client_free(al_mcp_client *c)
{
	if (c == NULL)
		return;
	while (c->ops != NULL)
		op_release(c->ops);
	al_free(c->url);
	al_free_secret_str(c->auth);
	al_free(c->ca_file);
	al_free(c->name);
	al_free(c->cversion);
	json_decref(c->caps);
	for (size_t i = 0; i < c->nxh; i++) {
		al_free((char *)c->xh[i].name);
		al_free((char *)c->xh[i].value);
	}
	al_free(c->xh);
	al_free_secret_str(c->session);
	json_decref(c->server_result);
	tools_clear(c);
	al_free((char *)c->oauth.client_id);
	al_free_secret_str((char *)c->oauth.client_secret);
	al_free((char *)c->oauth.client_metadata_url);
	al_free((char *)c->oauth.client_name);
	al_free((char *)c->oauth.redirect_uri);
	al_free((char *)c->oauth.ca_file);
	al_free((char *)c->oauth.issuer);
	al_free(c->scope);
	al_free(c);
}

enum al_mcp_era al_mcp_client_era(const al_mcp_client *c)
{
	return c->era;
}

const char *al_mcp_client_version(const al_mcp_client *c)
{
	return c->version;
}

const json_t *al_mcp_client_server_result(const al_mcp_client *c)
{
	return c->server_result;
}

/* ---- building an attempt ---- */

/* The params of this attempt: the op's params plus _meta and, on an MRTR
 * retry, inputResponses and the exact requestState. New reference. */
static json_t *attempt_params(al_mcp_op *op)
{
	al_mcp_client *c = op->c;
	json_t *p, *meta;

	p = op->params != NULL ? json_copy(op->params) : json_object();
	if (p == NULL)
		return NULL;
	meta = json_object_get(p, "_meta");
	if (!json_is_object(meta)) {
		meta = json_object();
		if (meta == NULL || json_object_set_new(p, "_meta", meta) < 0)
			goto fail;
	} else {
		meta = json_copy(meta);
		if (meta == NULL || json_object_set_new(p, "_meta", meta) < 0)
			goto fail;
	}
	if (op->modern) {
		if (json_object_set_new(meta, AL_MCP_META_PROTOCOL_VERSION,
					json_string(AL_MCP_VERSION_2026)) < 0 ||
		    json_object_set(meta, AL_MCP_META_CLIENT_CAPABILITIES, c->caps) < 0 ||
		    json_object_set_new(
			meta, AL_MCP_META_CLIENT_INFO,
			json_pack("{ssss}", "name", c->name, "version", c->cversion)) < 0)
			goto fail;
		if (op->input_responses != NULL &&
		    json_object_set(p, "inputResponses", op->input_responses) < 0)
			goto fail;
		if (op->request_state != NULL &&
		    json_object_set_new(p, "requestState", json_string(op->request_state)) < 0)
			goto fail;
	}
	if (op->progress_token != NULL &&
	    json_object_set(meta, "progressToken", op->progress_token) < 0)
		goto fail;
	if (json_object_size(meta) == 0)
		json_object_del(p, "_meta");
	return p;
fail:
	json_decref(p);
	return NULL;
}

/* Splits "Name: value\r\n" lines (in place) into h[]; returns the count. */
static size_t split_lines(char *s, struct al_http_header *h, size_t cap)
{
	size_t n = 0;

	while (*s != '\0' && n < cap) {
		char *eol = strstr(s, "\r\n"), *colon = strchr(s, ':');
		if (eol == NULL || colon == NULL || colon > eol)
			break;
		*colon = '\0';
		*eol = '\0';
		colon++;
		while (*colon == ' ')
			colon++;
		h[n].name = s;
		h[n].value = colon;
		n++;
		s = eol + 2;
	}
	return n;
}

static int on_head(al_http_call *call, int status, const struct al_http_header *hs, size_t nh,
		   void *ud);
static int on_data(al_http_call *call, const char *data, size_t len, void *ud);
static void on_done(al_http_call *call, const struct al_http_client_resp *resp, void *ud);

static const char *tool_name_of(const al_mcp_op *op)
{
	const json_t *n = json_object_get(op->params, "name");
	return json_is_string(n) ? json_string_value(n) : NULL;
}

static const al_mcp_param_headers *cached_ph(const al_mcp_client *c, const char *tool)
{
	for (size_t i = 0; tool != NULL && i < c->ntools; i++)
		if (strcmp(c->tools[i].name, tool) == 0)
			return &c->tools[i].ph;
	return NULL;
}

/* Sends the op's current attempt: a POST of the request (new id), of its
 * K_FIRE message, or the resume GET. */
static int op_send(al_mcp_op *op)
{
	al_mcp_client *c = op->c;
	struct al_http_header *h = NULL;
	struct al_http_client_req req = {0};
	al_buf lines = {0}, body = {0};
	json_t *msg = NULL, *p = NULL;
	size_t n = 0;
	int rc = -ENOMEM;

	op_reset_attempt(op);
	if (op->kind == K_USER)
		op->modern = c->era == AL_MCP_ERA_MODERN;
	else if (op->kind == K_DISCOVER)
		op->modern = 1;
	if (!op->get) {
		if (op->kind == K_FIRE) {
			msg = json_incref(op->fire_body);
		} else {
			p = attempt_params(op);
			if (p == NULL)
				goto done;
			if (op->kind == K_INITIALIZED) {
				msg = al_mcp_notification_new(op->method, p);
			} else {
				al_mcp_id id = {.kind = AL_MCP_ID_INT, .num = c->next_id++};
				op->id = id.num;
				msg = al_mcp_request_new(&id, op->method, p);
			}
			p = NULL;
		}
		if (msg == NULL || al_mcp_msg_dump(msg, &body) < 0)
			goto done;
	}
	if (op->modern && !op->get && op->method != NULL) {
		const al_mcp_param_headers *ph = NULL;
		if (strcmp(op->method, "tools/call") == 0)
			ph = cached_ph(c, tool_name_of(op));
		/* The headers mirror the body we send (arguments and names). */
		rc = al_mcp_hdr_build(AL_MCP_VERSION_2026, op->method,
				      json_object_get(msg, "params"), ph, &lines);
		if (rc < 0)
			goto done;
		rc = -ENOMEM;
	} else if (!op->modern && c->version != NULL && op->kind != K_INIT) {
		if (al_buf_appendf(&lines, "%s: %s\r\n", AL_MCP_HDR_PROTOCOL_VERSION, c->version) <
		    0)
			goto done;
	}
	if (!op->modern && c->session != NULL && op->kind != K_INIT) {
		if (al_buf_appendf(&lines, "Mcp-Session-Id: %s\r\n", c->session) < 0)
			goto done;
		op->had_session = 1;
	}
	if (op->get && op->last_event_id != NULL &&
	    al_buf_appendf(&lines, "Last-Event-ID: %s\r\n", op->last_event_id) < 0)
		goto done;
	/* One header per line (any number of Mcp-Param-*), plus ours. */
	h = al_calloc(lines.len / 2 + c->nxh + 4, sizeof(*h));
	if (h == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if (lines.data != NULL)
		n = split_lines(lines.data, h, lines.len / 2);
	if (!op->get)
		h[n++] = (struct al_http_header){"Content-Type", "application/json"};
	h[n++] = (struct al_http_header){"Accept", op->get ? "text/event-stream"
							   : "application/json, text/event-stream"};
	if (c->auth != NULL)
		h[n++] = (struct al_http_header){"Authorization", c->auth};
	for (size_t i = 0; i < c->nxh; i++)
		h[n++] = c->xh[i];
	req.method = op->get ? "GET" : "POST";
	req.url = c->url;
	req.headers = h;
	req.nheaders = n;
	req.body = body.data;
	req.body_len = body.len;
	/* The standalone stream is meant to stay open: no transfer limit. */
	req.timeout_ms = op->kind == K_LISTEN ? 0 : c->timeout_ms;
	req.ca_file = c->ca_file;
	req.on_head = on_head;
	req.on_data = on_data;
	/* A tools/call is not idempotent: libcurl must not replay it by itself
	 * when a reused connection dies after the body went out (see
	 * http_client.h); no_resend keeps the keep-alive reuse. The other
	 * methods read, and may be replayed. */
	req.no_resend = op->method != NULL && strcmp(op->method, "tools/call") == 0;
	rc = al_http_client_request(c->http, &req, on_done, op, &op->call);
	if (rc == 0 && !op->get && op->kind != K_FIRE)
		op->sent = 1;
done:
	al_free(h);
	json_decref(p);
	json_decref(msg);
	al_buf_wipe(&lines); /* it may hold the Mcp-Session-Id (a secret) */
	al_buf_free(&lines);
	al_buf_free(&body);
	return rc;
}

/* ---- receiving ---- */

static int op_msg_cb(const al_mcp_msg *m, void *ud);

static int on_head(al_http_call *call, int status, const struct al_http_header *hs, size_t nh,
		   void *ud)
{
	al_mcp_op *op = ud;
	const char *ct = NULL;

	op->status = status;
	for (size_t i = 0; i < nh; i++) {
		if (strcasecmp(hs[i].name, "Content-Type") == 0 && ct == NULL)
			ct = hs[i].value;
		if (strcasecmp(hs[i].name, "WWW-Authenticate") == 0 && op->www == NULL &&
		    (status == 401 || status == 403)) {
			op->www = al_strdup(hs[i].value);
			if (op->www == NULL)
				return -1;
		}
		if (op->kind == K_INIT && status / 100 == 2 &&
		    strcasecmp(hs[i].name, "Mcp-Session-Id") == 0) {
			/* Visible ASCII only (2025-11-25): it goes back in a header. */
			for (const char *p = hs[i].value; *p != '\0'; p++)
				if (*p < 0x21 || *p > 0x7e)
					return -1;
			al_free_secret_str(op->c->session);
			op->c->session = al_strdup(hs[i].value);
			if (op->c->session == NULL)
				return -1;
		}
	}
	op->rd = al_mcp_resp_reader_new(ct != NULL && strncasecmp(ct, "text/event-stream", 17) == 0,
					op_msg_cb, op);
	return op->rd == NULL ? -1 : 0;
}

static void answer_server_request(al_mcp_op *op, const al_mcp_msg *m);

static int op_msg_cb(const al_mcp_msg *m, void *ud)
{
	al_mcp_op *op = ud;
	al_mcp_id mine = {.kind = AL_MCP_ID_INT, .num = op->id};

	if (op->dead)
		return -ECANCELED; /* cancelled from a progress callback */
	switch (m->kind) {
	case AL_MCP_RESULT:
	case AL_MCP_ERROR_RESPONSE:
		if (op->kind == K_LISTEN)
			return 0; /* responses are replayed on their own streams */
		if (m->id.kind != AL_MCP_ID_NONE && !al_mcp_id_equal(&m->id, &mine))
			return 0; /* not ours (a stale response): skip */
		op->have_final = 1;
		if (m->kind == AL_MCP_RESULT) {
			op->final_result = json_incref(m->result);
		} else {
			op->final_is_err = 1;
			al_mcp_error_set(&op->final_err, m->err_code, op->status,
					 json_incref(m->err_data), "%s",
					 m->err_message != NULL ? m->err_message : "");
		}
		return GOT_FINAL;
	case AL_MCP_NOTIFICATION:
		if (strcmp(m->method, "notifications/progress") == 0 && op->on_progress != NULL &&
		    op->progress_token != NULL &&
		    json_equal(json_object_get(m->params, "progressToken"), op->progress_token)) {
			const json_t *t = json_object_get(m->params, "total");
			const json_t *msg = json_object_get(m->params, "message");
			op->on_progress(op->progress_ud,
					json_number_value(json_object_get(m->params, "progress")),
					json_is_number(t) ? json_number_value(t) : -1.0,
					json_is_string(msg) ? json_string_value(msg) : NULL);
		}
		return 0;
	case AL_MCP_REQUEST:
		/* A modern server MUST NOT send requests on a response stream;
		 * only a legacy session gets answers. */
		if (!op->modern)
			answer_server_request(op, m);
		return 0;
	}
	return 0;
}

static int on_data(al_http_call *call, const char *data, size_t len, void *ud)
{
	al_mcp_op *op = ud;
	int rc;

	if (op->rd == NULL)
		return 1;
	op->busy++;
	rc = al_mcp_resp_reader_feed(op->rd, data, len);
	op->busy--;
	if (op->dead) {
		if (op->busy == 0)
			op_free(op);
		return 1;
	}
	/* After the response, stop reading: a legacy stream may stay open. */
	return rc == 0 ? 0 : 1;
}

static int op_sched_resume(al_mcp_op *op, int64_t delay);

static int map_status(int status)
{
	switch (status) {
	case 401:
		return -EACCES;
	case 403:
		return -EPERM;
	default:
		return -EPROTO;
	}
}

static void op_after_response(al_mcp_op *op, int err);

static void on_done(al_http_call *call, const struct al_http_client_resp *resp, void *ud)
{
	al_mcp_op *op = ud;
	int err = resp->err, frc;

	op->call = NULL;
	if (op->status == 0)
		op->status = resp->status;
	if (op->rd != NULL) {
		if (!op->have_final && err == 0) {
			op->busy++;
			frc = al_mcp_resp_reader_finish(op->rd);
			op->busy--;
			if (op->dead) {
				if (op->busy == 0)
					op_free(op);
				return;
			}
			if (frc < 0 && frc != GOT_FINAL && op->status / 100 == 2)
				err = frc;
		}
		if (op->rd->is_sse) {
			const char *lid = al_mcp_resp_reader_last_id(op->rd);
			if (lid[0] != '\0') {
				al_free(op->last_event_id);
				op->last_event_id = al_strdup(lid);
			}
			if (al_mcp_resp_reader_retry(op->rd) >= 0)
				op->retry_ms = al_mcp_resp_reader_retry(op->rd);
		}
	}
	if (op->have_final && err == -ECANCELED)
		err = 0; /* we stopped the transfer after the response */
	op_after_response(op, err);
}

/* ---- what a response means ---- */

static int supported_has(const json_t *list, const char *v)
{
	size_t i;
	const json_t *e;

	json_array_foreach(list, i, e)
	{
		if (json_is_string(e) && strcmp(json_string_value(e), v) == 0)
			return 1;
	}
	return 0;
}

static void connect_finished(al_mcp_client *c, int err, const json_t *result,
			     const al_mcp_error *rpc, int status);

static int start_init(al_mcp_client *c);

/* Moves op back to the connect queue and reconnects (legacy session lost). */
static void op_requeue(al_mcp_op *op)
{
	al_mcp_client *c = op->c;

	op->waiting = 1;
	op->get = 0; /* a resumed stream died with its session: POST again */
	op_reset_attempt(op);
	if (c->listen != NULL)
		op_release(c->listen);
	if (c->state != C_CONNECTING) {
		int rc;
		al_free_secret_str(c->session);
		c->session = NULL;
		c->state = C_CONNECTING;
		rc = start_init(c);
		if (rc < 0)
			connect_finished(c, rc, NULL, NULL, 0);
	}
}

static int mrtr_round(al_mcp_op *op, const json_t *result)
{
	al_mcp_client *c = op->c;
	const json_t *reqs = json_object_get(result, "inputRequests");
	const json_t *state = json_object_get(result, "requestState");
	json_t *responses = NULL;
	const char *key;
	json_t *ir;
	int rc = -ELOOP;

	if (++op->rounds > c->max_rounds)
		goto done;
	rc = -ENOMEM;
	if (json_is_object(reqs)) {
		responses = json_object();
		if (responses == NULL)
			goto done;
		json_object_foreach((json_t *)reqs, key, ir)
		{
			const json_t *m = json_object_get(ir, "method");
			json_t *out = NULL;
			if (!json_is_string(m)) {
				rc = -EBADMSG;
				goto done;
			}
			if (c->on_input == NULL) {
				rc = -ENOTSUP;
				goto done;
			}
			rc = c->on_input(c->input_ud, json_string_value(m),
					 json_object_get(ir, "params"), &out);
			if (rc == 0 && out == NULL)
				rc = -EINVAL;
			if (rc < 0)
				goto done;
			if (json_object_set_new(responses, key, out) < 0) {
				rc = -ENOMEM;
				goto done;
			}
		}
	}
	/* Only this request's retry carries them, and exactly as received:
	 * no requestState in the retry when the result had none. */
	json_decref(op->input_responses);
	op->input_responses = responses;
	responses = NULL;
	al_free(op->request_state);
	op->request_state = NULL;
	if (json_is_string(state)) {
		op->request_state = al_strdup(json_string_value(state));
		if (op->request_state == NULL) {
			rc = -ENOMEM;
			goto done;
		}
	}
	rc = op_send(op);
done:
	json_decref(responses);
	return rc;
}

/* Appends a page of a list; returns 1 when another page must be fetched. */
static int list_page(al_mcp_op *op, const json_t *result, int *err)
{
	const json_t *items = json_object_get(result, op->list_key);
	const json_t *cursor = json_object_get(result, "nextCursor");

	*err = 0;
	if (op->acc == NULL && (op->acc = json_array()) == NULL) {
		*err = -ENOMEM;
		return 0;
	}
	if (json_is_array(items) && json_array_extend(op->acc, (json_t *)items) < 0) {
		*err = -ENOMEM;
		return 0;
	}
	if (!json_is_string(cursor) || ++op->pages >= MAX_PAGES)
		return 0;
	if (json_object_set(op->params, "cursor", (json_t *)cursor) < 0) {
		*err = -ENOMEM;
		return 0;
	}
	return 1;
}

/* The aggregate tools list, without tools whose x-mcp-header annotations
 * are invalid; remembers the valid annotations. */
static json_t *tools_filter(al_mcp_op *op, int *err)
{
	al_mcp_client *c = op->c;
	json_t *kept = json_array(), *res = NULL, *t;
	struct tool_ph *tp = NULL;
	size_t i, ntp = 0;

	*err = -ENOMEM;
	tp = al_calloc(json_array_size(op->acc) + 1, sizeof(*tp));
	if (kept == NULL || tp == NULL)
		goto done;
	json_array_foreach(op->acc, i, t)
	{
		const json_t *nm = json_object_get(t, "name");
		const json_t *schema = json_object_get(t, "inputSchema");
		al_mcp_param_headers ph = {0};
		char why[160] = "";
		int rc = 0;

		if (!json_is_string(nm))
			continue;
		if (op->modern && schema != NULL)
			rc = al_mcp_param_headers_from_schema(schema, &ph, why, sizeof(why));
		if (rc == -ENOMEM)
			goto done;
		if (rc < 0) {
			al_warn(LOG_TAG, "tool \"%.64s\" rejected: %s", json_string_value(nm), why);
			continue;
		}
		tp[ntp].name = al_strdup(json_string_value(nm));
		tp[ntp].ph = ph;
		if (tp[ntp].name == NULL) {
			al_mcp_param_headers_free(&ph);
			goto done;
		}
		ntp++;
		if (json_array_append(kept, t) < 0)
			goto done;
	}
	res = json_pack("{sO}", "tools", kept);
	if (res == NULL)
		goto done;
	tools_clear(c);
	c->tools = tp;
	c->ntools = ntp;
	tp = NULL;
	ntp = 0;
	*err = 0;
done:
	for (i = 0; tp != NULL && i < ntp; i++) {
		al_free(tp[i].name);
		al_mcp_param_headers_free(&tp[i].ph);
	}
	al_free(tp);
	json_decref(kept);
	return res;
}

static void user_after_final(al_mcp_op *op)
{
	const json_t *r = op->final_result;
	int rc;

	if (op->final_is_err) {
		const json_t *sup = json_object_get(op->final_err.data, "supported");
		if (op->modern && op->final_err.code == AL_MCP_UNSUPPORTED_VERSION &&
		    !op->version_retried && supported_has(sup, AL_MCP_VERSION_2026)) {
			/* The server named a version we speak (perhaps the one we
			 * sent: a balancer's other instance): retry once. */
			op->version_retried = 1;
			rc = op_send(op);
			if (rc < 0)
				op_finish(op, rc, NULL, NULL);
			return;
		}
		if (!op->modern && op->status == 404 && op->had_session && !op->session_retried) {
			op->session_retried = 1;
			op_requeue(op);
			return;
		}
		op_finish(op, -EREMOTEIO, NULL, &op->final_err);
		return;
	}
	if (op->modern && json_is_string(json_object_get(r, "resultType")) &&
	    strcmp(json_string_value(json_object_get(r, "resultType")), "input_required") == 0) {
		rc = mrtr_round(op, r);
		if (rc < 0)
			op_finish(op, rc, NULL, NULL);
		return;
	}
	if (op->list_key != NULL) {
		json_t *all;
		if (list_page(op, r, &rc)) {
			op->rounds = 0;
			json_decref(op->input_responses);
			op->input_responses = NULL;
			al_free(op->request_state);
			op->request_state = NULL;
			rc = op_send(op);
			if (rc < 0)
				op_finish(op, rc, NULL, NULL);
			return;
		}
		if (rc < 0) {
			op_finish(op, rc, NULL, NULL);
			return;
		}
		all = tools_filter(op, &rc);
		op_finish(op, rc, all, NULL);
		json_decref(all);
		return;
	}
	op_finish(op, 0, r, NULL);
}

/* Returns 1 when op was sent again (a retry), 0 when it is done with. */
static int discover_after(al_mcp_op *op, int err)
{
	al_mcp_client *c = op->c;
	const json_t *r = op->final_result;
	const json_t *sup = NULL;
	int status = op->status, fall_back = 0, rc;

	if (err < 0 && !op->have_final) {
		connect_finished(c, err, NULL, NULL, status);
		return 0;
	}
	if (op->have_final && !op->final_is_err) {
		sup = json_object_get(r, "supportedVersions");
		if (supported_has(sup, AL_MCP_VERSION_2026)) {
			c->era = AL_MCP_ERA_MODERN;
			c->version = AL_MCP_VERSION_2026;
			connect_finished(c, 0, r, NULL, status);
			return 0;
		}
		/* A result without a modern version: a legacy server that
		 * answers unknown methods with {} or lists only old versions. */
		fall_back = 1;
	} else if (op->have_final) {
		int code = op->final_err.code;
		sup = json_object_get(op->final_err.data, "supported");
		if (code == AL_MCP_UNSUPPORTED_VERSION && supported_has(sup, AL_MCP_VERSION_2026) &&
		    !c->discover_retried) {
			c->discover_retried = 1;
			rc = op_send(op);
			if (rc == 0)
				return 1;
			connect_finished(c, rc, NULL, NULL, status);
			return 0;
		}
		if (code == AL_MCP_UNSUPPORTED_VERSION && !supported_has(sup, AL_MCP_VERSION_2026))
			fall_back = supported_has(sup, AL_MCP_VERSION_2025) ? 1 : -1;
		else if (code == AL_MCP_UNSUPPORTED_VERSION || code == AL_MCP_HEADER_MISMATCH ||
			 code == AL_MCP_MISSING_CAPABILITY)
			fall_back = -1; /* a modern server refused us: no fallback */
		else
			fall_back = status != 401 && status != 403;
		if (fall_back < 0) {
			if (code == AL_MCP_UNSUPPORTED_VERSION) {
				connect_finished(c, -EPROTONOSUPPORT, NULL, &op->final_err, status);
			} else {
				c->era = AL_MCP_ERA_MODERN;
				connect_finished(c, -EREMOTEIO, NULL, &op->final_err, status);
			}
			return 0;
		}
	} else {
		fall_back = status != 401 && status != 403;
	}
	if (!fall_back) {
		connect_finished(c, map_status(status), NULL, NULL, status);
		return 0;
	}
	if (c->pref == AL_MCP_ERA_MODERN) {
		connect_finished(c, -EPROTONOSUPPORT, NULL, NULL, status);
		return 0;
	}
	rc = start_init(c);
	if (rc < 0)
		connect_finished(c, rc, NULL, NULL, status);
	return 0;
}

static int start_initialized(al_mcp_client *c);

static void init_after(al_mcp_op *op, int err)
{
	al_mcp_client *c = op->c;
	const json_t *pv;
	int rc;

	if (!op->have_final) {
		connect_finished(c, err < 0 ? err : map_status(op->status), NULL, NULL, op->status);
		return;
	}
	if (op->final_is_err) {
		connect_finished(c, -EREMOTEIO, NULL, &op->final_err, op->status);
		return;
	}
	pv = json_object_get(op->final_result, "protocolVersion");
	c->version = NULL;
	for (size_t i = 0; json_is_string(pv) && legacy_versions[i] != NULL; i++)
		if (strcmp(json_string_value(pv), legacy_versions[i]) == 0)
			c->version = legacy_versions[i];
	if (c->version == NULL) {
		connect_finished(c, -EPROTONOSUPPORT, NULL, NULL, op->status);
		return;
	}
	json_decref(c->server_result);
	c->server_result = json_incref(op->final_result);
	c->era = AL_MCP_ERA_LEGACY;
	rc = start_initialized(c);
	if (rc < 0)
		connect_finished(c, rc, NULL, NULL, op->status);
}

/* 2025-11-25: servers send requests not tied to a client request (the SDK's
 * elicitation from a tool, for one) on the standalone GET stream; without
 * it they would wait for an answer forever. Best effort: a server without
 * one answers 405. */
static void start_listen(al_mcp_client *c)
{
	al_mcp_op *op;

	if (c->listen != NULL)
		op_release(c->listen);
	op = al_calloc(1, sizeof(*op));
	if (op == NULL)
		return;
	op->c = c;
	op->kind = K_LISTEN;
	op->get = 1;
	op->retry_ms = -1;
	op_link(c, op);
	c->listen = op;
	if (op_send(op) < 0)
		op_release(op);
}

static void oauth_done_cb(void *ud, int err, const char *token, const char *scope)
{
	al_mcp_op *op = ud;
	al_mcp_client *c = op->c;
	al_buf auth = {0};

	op->oauth = NULL; /* the flow frees itself after this call */
	if (err == 0 && al_buf_appendf(&auth, "Bearer %s", token) < 0)
		err = -ENOMEM;
	if (err == 0) {
		al_free_secret_str(c->auth);
		c->auth = al_buf_steal(&auth, NULL);
		al_free(c->scope);
		c->scope = scope != NULL ? al_strdup(scope) : NULL;
		err = op_send(op);
	}
	al_buf_wipe(&auth);
	al_buf_free(&auth);
	if (err == 0)
		return;
	op->busy++;
	if (op->kind != K_USER) /* a connect step: the waiting requests fail too */
		connect_finished(c, err, NULL, NULL, op->status);
	op_finish(op, err, NULL, NULL);
	op->busy--;
	if (op->dead && op->busy == 0)
		op_free(op);
}

/* A 401, or a 403 whose challenge says insufficient_scope (step-up): get a
 * token and send the attempt again. 1 when a flow started. */
static int maybe_authorize(al_mcp_op *op)
{
	al_mcp_client *c = op->c;
	char *error = NULL;
	int want, rc;

	if (!c->has_oauth || op->have_final || op->kind == K_FIRE || op->kind == K_LISTEN)
		return 0;
	want = op->status == 401;
	if (op->status == 403) {
		error = al_mcp_oauth_challenge_param(op->www, "error");
		want = error != NULL && strcmp(error, "insufficient_scope") == 0;
		al_free(error);
	}
	if (!want || op->auth_tries >= 3)
		return 0;
	op->auth_tries++;
	rc = al_mcp_oauth_start(c->http, &c->oauth, c->url, op->www, c->scope, oauth_done_cb, op,
				&op->oauth);
	return rc == 0;
}

static void op_after_response(al_mcp_op *op, int err)
{
	int rc;

	op->busy++;
	if (err == 0 && maybe_authorize(op)) {
		op->busy--;
		return;
	}
	switch (op->kind) {
	case K_FIRE:
		op_finish(op, 0, NULL, NULL);
		break;
	case K_LISTEN:
		/* Reopened after a graceful end (the server may poll); a 405
		 * or an error means the server has no stream for us. */
		if (err == 0 && op->status / 100 == 2 && op->resumes < MAX_RESUMES &&
		    op->c->era == AL_MCP_ERA_LEGACY) {
			op->resumes++;
			if (op_sched_resume(op, op->retry_ms >= 0 ? op->retry_ms
								  : DEFAULT_RETRY_MS) == 0)
				break;
		}
		op_finish(op, 0, NULL, NULL);
		break;
	case K_DISCOVER:
		if (!discover_after(op, err))
			op_finish(op, 0, NULL, NULL);
		break;
	case K_INIT:
		init_after(op, err);
		op_finish(op, 0, NULL, NULL);
		break;
	case K_INITIALIZED:
		if (err == 0 && op->status / 100 == 2) {
			start_listen(op->c);
			connect_finished(op->c, 0, op->c->server_result, NULL, op->status);
		} else
			connect_finished(op->c, err < 0 ? err : map_status(op->status), NULL, NULL,
					 op->status);
		op_finish(op, 0, NULL, NULL);
		break;
	case K_USER:
		if (op->have_final) {
			user_after_final(op);
			break;
		}
		if (!op->modern && op->status == 404 && op->had_session && !op->session_retried) {
			op->session_retried = 1;
			op_requeue(op);
			break;
		}
		/* 2025-11-25: a stream that ended before the response is
		 * resumed with GET + Last-Event-ID after `retry`. */
		if (!op->modern && err == 0 && op->rd != NULL && op->rd->is_sse &&
		    op->last_event_id != NULL && op->resumes < MAX_RESUMES) {
			op->resumes++;
			rc = op_sched_resume(op,
					     op->retry_ms >= 0 ? op->retry_ms : DEFAULT_RETRY_MS);
			if (rc < 0)
				op_finish(op, rc, NULL, NULL);
			break;
		}
		op_finish(op, err < 0 ? err : map_status(op->status), NULL, NULL);
		break;
	}
	op->busy--;
	if (op->dead && op->busy == 0)
		op_free(op);
}

static void resume_timer_cb(uv_timer_t *t)
{
	al_mcp_op *op = t->data;
	int rc;

	op->get = 1;
	rc = op_send(op);
	if (rc < 0) {
		op->busy++;
		op_finish(op, rc, NULL, NULL);
		op->busy--;
		if (op->dead && op->busy == 0)
			op_free(op);
	}
}

static int op_sched_resume(al_mcp_op *op, int64_t delay)
{
	if (delay > MAX_RETRY_MS)
		delay = MAX_RETRY_MS;
	if (op->timer == NULL) {
		op->timer = al_malloc(sizeof(*op->timer));
		if (op->timer == NULL)
			return -ENOMEM;
		if (uv_timer_init(op->c->loop, op->timer) < 0) {
			al_free(op->timer);
			op->timer = NULL;
			return -EIO;
		}
		op->timer->data = op;
	}
	op_reset_attempt(op);
	return uv_timer_start(op->timer, resume_timer_cb, (uint64_t)delay, 0) < 0 ? -EIO : 0;
}

/* Calls the user's callback (for a user op) and releases the op. */
static void op_finish(al_mcp_op *op, int err, const json_t *result, const al_mcp_error *rpc)
{
	struct al_mcp_client_result res = {.err = err,
					   .result = err == 0 ? result : NULL,
					   .rpc_error = err == -EREMOTEIO ? rpc : NULL,
					   .http_status = op->status};

	if (op->dead)
		return;
	op_unlink(op);
	op->dead = 1;
	if (op->kind == K_USER && op->done != NULL) {
		op->busy++;
		op->done(op->c, &res, op->ud);
		op->busy--;
	}
	if (op->busy == 0)
		op_free(op);
}

/* ---- server-to-client requests (legacy) ---- */

static int fire(al_mcp_client *c, json_t *msg)
{
	al_mcp_op *op = al_calloc(1, sizeof(*op));
	int rc;

	if (op == NULL) {
		json_decref(msg);
		return -ENOMEM;
	}
	op->c = c;
	op->kind = K_FIRE;
	op->fire_body = msg;
	op->modern = c->era == AL_MCP_ERA_MODERN;
	op_link(c, op);
	rc = op_send(op);
	if (rc < 0)
		op_release(op);
	return rc;
}

static void answer_server_request(al_mcp_op *op, const al_mcp_msg *m)
{
	al_mcp_client *c = op->c;
	json_t *result = NULL, *msg;
	al_mcp_error err = {0};
	int rc = 0;

	if (strcmp(m->method, "ping") == 0)
		result = json_object();
	else if (c->on_input == NULL)
		rc = -ENOTSUP;
	else
		rc = c->on_input(c->input_ud, m->method, m->params, &result);
	if (rc == 0 && result == NULL)
		rc = -ENOMEM;
	if (rc == 0) {
		msg = al_mcp_result_new(&m->id, result);
	} else {
		json_decref(result);
		al_mcp_error_set(
		    &err, rc == -ENOTSUP ? AL_MCP_METHOD_NOT_FOUND : AL_MCP_INTERNAL_ERROR, 200,
		    NULL, "%s", rc == -ENOTSUP ? "Method not found" : "Request refused");
		msg = al_mcp_error_response_new(&m->id, &err);
		al_mcp_error_clear(&err);
	}
	if (msg == NULL || fire(c, msg) < 0)
		al_warn(LOG_TAG, "could not answer the server's %.64s request", m->method);
}

/* ---- connecting ---- */

static al_mcp_op *op_new(al_mcp_client *c, enum op_kind kind, const char *method, json_t *params)
{
	al_mcp_op *op = al_calloc(1, sizeof(*op));

	if (op == NULL)
		goto fail;
	op->c = c;
	op->kind = kind;
	op->retry_ms = -1;
	op->method = al_strdup(method);
	op->params = params != NULL ? params : json_object();
	params = NULL;
	if (op->method == NULL || op->params == NULL) {
		op_free(op);
		op = NULL;
	}
fail:
	json_decref(params);
	return op;
}

static int start_internal(al_mcp_client *c, enum op_kind kind, const char *method, json_t *params)
{
	al_mcp_op *op = op_new(c, kind, method, params);
	int rc;

	if (op == NULL)
		return -ENOMEM;
	op_link(c, op);
	rc = op_send(op);
	if (rc < 0)
		op_release(op);
	return rc;
}

static int start_init(al_mcp_client *c)
{
	json_t *p =
	    json_pack("{sssOs{ssss}}", "protocolVersion", AL_MCP_VERSION_2025, "capabilities",
		      c->caps, "clientInfo", "name", c->name, "version", c->cversion);

	c->era = AL_MCP_ERA_AUTO;
	c->version = NULL;
	if (p == NULL)
		return -ENOMEM;
	return start_internal(c, K_INIT, "initialize", p);
}

static int start_initialized(al_mcp_client *c)
{
	return start_internal(c, K_INITIALIZED, "notifications/initialized", NULL);
}

static int start_connect(al_mcp_client *c)
{
	c->state = C_CONNECTING;
	c->discover_retried = 0;
	if (c->pref == AL_MCP_ERA_LEGACY)
		return start_init(c);
	return start_internal(c, K_DISCOVER, "server/discover", NULL);
}

static void connect_finished(al_mcp_client *c, int err, const json_t *result,
			     const al_mcp_error *rpc, int status)
{
	struct al_mcp_client_result res = {.err = err,
					   .result = err == 0 ? result : NULL,
					   .rpc_error = err == -EREMOTEIO ? rpc : NULL,
					   .http_status = status};
	al_mcp_client_done_cb cb = c->connect_done;
	al_mcp_op *op, *next;

	if (err == 0 && result != c->server_result) {
		json_decref(c->server_result);
		c->server_result = json_incref((json_t *)result);
	}
	c->state = err == 0 ? C_READY : C_IDLE;
	if (err < 0)
		al_debug(LOG_TAG, "connect failed: %s (HTTP %d)", strerror(-err), status);
	c->connect_done = NULL;
	if (cb != NULL)
		cb(c, &res, c->connect_ud);
	/* Start or fail the requests that waited. A request that fails here
	 * may start another one from its callback: walk from a fresh head. */
	for (op = c->ops; op != NULL; op = next) {
		next = op->next;
		if (!op->waiting)
			continue;
		op->waiting = 0;
		if (err == 0 && (err = op_send(op)) == 0)
			continue;
		op->busy++;
		op_finish(op, err, NULL, rpc);
		op->busy--;
		if (op->dead && op->busy == 0)
			op_free(op);
		next = c->ops;
		err = res.err;
	}
}

int al_mcp_client_connect(al_mcp_client *c, al_mcp_client_done_cb done, void *ud)
{
	int rc;

	if (c->state != C_IDLE)
		return -EALREADY;
	c->connect_done = done;
	c->connect_ud = ud;
	rc = start_connect(c);
	if (rc < 0) {
		c->state = C_IDLE;
		c->connect_done = NULL;
	}
	return rc;
}

/* ---- user requests ---- */

static int user_start(al_mcp_client *c, const char *method, json_t *params,
		      const struct al_mcp_call_opts *copts, al_mcp_client_done_cb done, void *ud,
		      al_mcp_op **out, const char *list_key)
{
	al_mcp_op *op;
	int rc = -ENOMEM;

	if (out != NULL)
		*out = NULL;
	if (method == NULL || (params != NULL && !json_is_object(params))) {
		json_decref(params);
		return -EINVAL;
	}
	op = op_new(c, K_USER, method, params);
	if (op == NULL)
		return -ENOMEM;
	op->done = done;
	op->ud = ud;
	op->list_key = list_key;
	if (copts != NULL && copts->on_progress != NULL) {
		op->on_progress = copts->on_progress;
		op->progress_ud = copts->progress_ud;
		op->progress_token = json_integer(c->next_token++);
		if (op->progress_token == NULL)
			goto fail;
	}
	op_link(c, op);
	if (c->state == C_READY) {
		rc = op_send(op);
	} else {
		op->waiting = 1;
		rc = c->state == C_IDLE ? start_connect(c) : 0;
		if (rc < 0)
			c->state = C_IDLE;
	}
	if (rc < 0) {
		op_release(op);
		return rc;
	}
	if (out != NULL)
		*out = op;
	return 0;
fail:
	op_free(op);
	return rc;
}

int al_mcp_client_request(al_mcp_client *c, const char *method, json_t *params,
			  const struct al_mcp_call_opts *copts, al_mcp_client_done_cb done,
			  void *ud, al_mcp_op **op)
{
	return user_start(c, method, params, copts, done, ud, op, NULL);
}

int al_mcp_client_list_tools(al_mcp_client *c, al_mcp_client_done_cb done, void *ud, al_mcp_op **op)
{
	return user_start(c, "tools/list", NULL, NULL, done, ud, op, "tools");
}

static json_t *named_params(const char *key, const char *name, const char *akey, const json_t *args)
{
	json_t *p;

	if (name == NULL)
		return NULL;
	p = json_pack("{ss}", key, name);
	if (p != NULL && args != NULL && json_object_set_new(p, akey, json_deep_copy(args)) < 0) {
		json_decref(p);
		p = NULL;
	}
	return p;
}

int al_mcp_client_call_tool(al_mcp_client *c, const char *name, const json_t *args,
			    const struct al_mcp_call_opts *copts, al_mcp_client_done_cb done,
			    void *ud, al_mcp_op **op)
{
	json_t *p;

	if (name == NULL || (args != NULL && !json_is_object(args)))
		return -EINVAL;
	p = named_params("name", name, "arguments", args);
	if (p == NULL)
		return -ENOMEM;
	return user_start(c, "tools/call", p, copts, done, ud, op, NULL);
}

int al_mcp_client_read_resource(al_mcp_client *c, const char *uri, al_mcp_client_done_cb done,
				void *ud, al_mcp_op **op)
{
	json_t *p;

	if (uri == NULL)
		return -EINVAL;
	p = named_params("uri", uri, NULL, NULL);
	if (p == NULL)
		return -ENOMEM;
	return user_start(c, "resources/read", p, NULL, done, ud, op, NULL);
}

int al_mcp_client_get_prompt(al_mcp_client *c, const char *name, const json_t *args,
			     al_mcp_client_done_cb done, void *ud, al_mcp_op **op)
{
	json_t *p;

	if (name == NULL || (args != NULL && !json_is_object(args)))
		return -EINVAL;
	p = named_params("name", name, "arguments", args);
	if (p == NULL)
		return -ENOMEM;
	return user_start(c, "prompts/get", p, NULL, done, ud, op, NULL);
}

void al_mcp_client_cancel(al_mcp_op *op)
{
	al_mcp_client *c;

	if (op == NULL || op->dead)
		return;
	c = op->c;
	/* Legacy: a closed stream is not a cancellation (2025-11-25 says
	 * disconnection may just be the network); say it explicitly. */
	if (op->sent && !op->modern && c->era == AL_MCP_ERA_LEGACY) {
		json_t *n = al_mcp_notification_new(
		    "notifications/cancelled",
		    json_pack("{sIss}", "requestId", (json_int_t)op->id, "reason", "cancelled"));
		if (n == NULL || fire(c, n) < 0)
			al_debug(LOG_TAG, "could not send notifications/cancelled");
	}
	op_release(op);
}
