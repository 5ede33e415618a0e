/*
 * client.c - the worker's side of the environment work protocol.
 *
 * Each call is one al_http_client request with the headers the SDK sends;
 * the response is decoded once here (JSON body, the documented error object,
 * Retry-After) so the session and poller code only looks at fields.
 *
 * The stream is the one subtle part. libcurl runs our on_head and on_data
 * inside its own callbacks, and the user's open_cb and event_cb run from
 * there; they may close the stream they are called for. A close then only
 * marks the stream and cancels its transfer (http_client defers the actual
 * removal until libcurl has returned), and the memory goes once our own
 * frames have unwound (`busy`). end_cb always runs from done_cb, outside
 * libcurl, so it may open the next stream at once.
 */
#include "worker/client.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "http/sse_parser.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef AL_VERSION
#define AL_VERSION "dev"
#endif

#define USER_AGENT	   "airlock-worker/" AL_VERSION
#define CONNECT_TIMEOUT_MS 30000
/* A refused stream's error body is kept up to this; the rest is dropped. */
#define MAX_ERROR_BODY (64u * 1024)
/* A call's response body cap: a history page of 1000 events fits easily. */
#define MAX_BODY (32u * 1024 * 1024)
/*
 * One stream event's cap. Events echo tool results (a read returns up to
 * 256 KiB, a hosted tool more), so well above the parser's 1 MiB default.
 */
#define MAX_EVENT (8u * 1024 * 1024)

struct al_wc {
	uv_loop_t *loop;
	al_http_client *http;
	char *base; /* no trailing slash */
	char *ca_file;
	struct al_wc_call *calls;
	struct al_wc_stream *streams;
};

struct al_wc_call {
	struct al_wc *c;
	al_http_call *http;
	al_wc_cb cb;
	void *ud;
	int in_cb; /* its callback is running: a cancel is a no-op */
	struct al_wc_call *prev, *next;
};

struct al_wc_stream {
	struct al_wc *c;
	al_http_call *http;
	al_sse_parser *sse;
	al_wc_open_cb open_cb;
	al_wc_event_cb event_cb;
	al_wc_cb end_cb;
	void *ud;
	int status;	   /* of the response head, 0 until it came */
	int busy;	   /* our callbacks on the stack (on_head, on_data) */
	int closed;	   /* al_wc_stream_close ran: no callback any more */
	int ended;	   /* end_cb is running or ran */
	int feed_err;	   /* the SSE parser failed (-E2BIG, -ENOMEM) */
	json_t *err_event; /* the data of an `event: error` */
	al_buf errbody;	   /* the body of a refusal (status != 200) */
	unsigned long ignored;
	uint64_t last_rx_ms; /* al_mono_ms() of the last byte (pings count) */
	struct al_wc_stream *prev, *next;
};

/* ---- small helpers ---- */

#define LINK(head, x)                                                                              \
	do {                                                                                       \
		(x)->prev = NULL;                                                                  \
		(x)->next = (head);                                                                \
		if (head)                                                                          \
			(head)->prev = (x);                                                        \
		(head) = (x);                                                                      \
	} while (0)

#define UNLINK(head, x)                                                                            \
	do {                                                                                       \
		if ((x)->prev)                                                                     \
			(x)->prev->next = (x)->next;                                               \
		else if ((head) == (x))                                                            \
			(head) = (x)->next;                                                        \
		if ((x)->next)                                                                     \
			(x)->next->prev = (x)->prev;                                               \
		(x)->prev = (x)->next = NULL;                                                      \
	} while (0)

/* RFC 3986 unreserved characters pass; everything else is %XX. */
static int append_encoded(al_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		int rc;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			rc = al_buf_append(b, s, 1);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			rc = al_buf_append(b, e, 3);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A path segment must be non-empty: "" would silently address another route. */
static int seg_ok(const char *s)
{
	return s != NULL && *s != '\0';
}

/*
 * Builds base + "/" joined segments; NULL ends the list. A segment is
 * encoded unless it starts with '=' (a literal, the rest is copied).
 */
static int build_path(const struct al_wc *c, al_buf *b, const char *const *segs)
{
	int rc;

	if ((rc = al_buf_append_str(b, c->base)) < 0)
		return rc;
	for (; *segs; segs++) {
		if ((rc = al_buf_append(b, "/", 1)) < 0)
			return rc;
		if ((*segs)[0] == '=')
			rc = al_buf_append_str(b, *segs + 1);
		else
			rc = append_encoded(b, *segs);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int add_query(al_buf *b, int *first, const char *name, const char *value)
{
	int rc;

	if ((rc = al_buf_appendf(b, "%c%s=", *first ? '?' : '&', name)) < 0)
		return rc;
	*first = 0;
	return append_encoded(b, value);
}

static int add_query_ul(al_buf *b, int *first, const char *name, unsigned long v)
{
	char num[32];

	snprintf(num, sizeof(num), "%lu", v);
	return add_query(b, first, name, num);
}

/* ---- response decoding ---- */

/*
 * The longest wait a server may ask for, as the SDK takes it (one timer's
 * 2^31 - 1 ms, about 24.8 days); a longer one is ignored like an
 * unparseable one, so a server cannot park the worker for years.
 */
#define RETRY_AFTER_MAX_MS 2147483647.0

/*
 * retry-after-ms wins, then Retry-After as seconds (the SDK parseFloat()s
 * it, so "1.5" counts) or an HTTP date. -1 when absent, unparseable or
 * over RETRY_AFTER_MAX_MS.
 */
static long parse_retry_after(const char *ms_hdr, const char *hdr)
{
	char *end;
	double v;

	if (ms_hdr != NULL) {
		v = strtod(ms_hdr, &end);
		if (end != ms_hdr && isfinite(v) && v > 0 && v <= RETRY_AFTER_MAX_MS)
			return (long)ceil(v);
	}
	if (hdr == NULL || *hdr == '\0')
		return -1;
	v = strtod(hdr, &end);
	if (end != hdr) {
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end != '\0' || !isfinite(v) || v < 0 || v * 1000 > RETRY_AFTER_MAX_MS)
			return -1;
		return (long)ceil(v * 1000);
	} else {
		time_t when = curl_getdate(hdr, NULL);
		time_t now = time(NULL);
		if (when == (time_t)-1 ||
		    (when > now && (double)(when - now) * 1000 > RETRY_AFTER_MAX_MS))
			return -1;
		return when <= now ? 0 : (long)(when - now) * 1000;
	}
}

static int parse_should_retry(const char *h)
{
	if (h == NULL)
		return -1;
	if (strcmp(h, "true") == 0)
		return 1;
	if (strcmp(h, "false") == 0)
		return 0;
	return -1;
}

/* Fills r from a finished HTTP exchange; r->body is a new reference (or NULL). */
static void resp_fill(struct al_wc_resp *r, const struct al_http_client_resp *hr, const char *body,
		      size_t len)
{
	memset(r, 0, sizeof(*r));
	r->retry_after_ms = -1;
	r->should_retry = -1;
	r->err = hr->err;
	if (hr->err < 0) {
		r->error_message = hr->error;
		return;
	}
	r->status = hr->status;
	r->retry_after_ms = parse_retry_after(al_http_client_resp_header(hr, "retry-after-ms"),
					      al_http_client_resp_header(hr, "retry-after"));
	r->should_retry = parse_should_retry(al_http_client_resp_header(hr, "x-should-retry"));
	if (len > 0)
		r->body = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	if (r->status >= 400 && json_is_object(r->body)) {
		json_t *e = json_object_get(r->body, "error");
		if (json_is_object(e)) {
			r->error_type = json_string_value(json_object_get(e, "type"));
			r->error_message = json_string_value(json_object_get(e, "message"));
			r->details = json_object_get(e, "details");
		}
	}
}

int al_wc_is_fatal_4xx(int status)
{
	return status >= 400 && status < 500 && status != 408 && status != 409 && status != 429;
}

int al_wc_is_retryable(const struct al_wc_resp *r)
{
	if (r->err < 0)
		return r->err != -EPROTO && r->err != -EFBIG && r->err != -ECANCELED &&
		       r->err != -EINVAL;
	if (r->status >= 200 && r->status < 300)
		return 0;
	if (r->should_retry >= 0)
		return r->should_retry;
	return r->status == 408 || r->status == 409 || r->status == 429 || r->status >= 500;
}

const char *al_wc_next_page(const json_t *list_body)
{
	const char *p = json_string_value(json_object_get(list_body, "next_page"));

	return p != NULL && *p != '\0' ? p : NULL;
}

/* ---- the client ---- */

int al_wc_new(uv_loop_t *loop, const char *base_url, const char *ca_file, struct al_wc **out)
{
	struct al_wc *c = NULL;
	size_t n;
	int rc = -EINVAL;

	*out = NULL;
	if (loop == NULL || base_url == NULL ||
	    (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0) ||
	    strpbrk(base_url, "?#\r\n ") != NULL)
		goto fail;
	rc = -ENOMEM;
	if ((c = al_calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->loop = loop;
	if ((c->base = al_strdup(base_url)) == NULL)
		goto fail;
	n = strlen(c->base);
	while (n > 0 && c->base[n - 1] == '/')
		c->base[--n] = '\0';
	if (ca_file != NULL && (c->ca_file = al_strdup(ca_file)) == NULL)
		goto fail;
	if ((rc = al_http_client_new(loop, &c->http)) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	if (c) {
		al_free(c->base);
		al_free(c->ca_file);
		al_free(c);
	}
	return rc;
}

static void stream_free(struct al_wc_stream *s);

void al_wc_free(struct al_wc *c)
{
	if (c == NULL)
		return;
	/* http_client_free drops every transfer without a callback. */
	al_http_client_free(c->http);
	while (c->calls) {
		struct al_wc_call *call = c->calls;
		UNLINK(c->calls, call);
		al_free(call);
	}
	while (c->streams) {
		struct al_wc_stream *s = c->streams;
		UNLINK(c->streams, s);
		stream_free(s);
	}
	al_free(c->base);
	al_free(c->ca_file);
	al_free(c);
}

/* ---- calls ---- */

static void call_done(al_http_call *h, const struct al_http_client_resp *hr, void *ud)
{
	struct al_wc_call *call = ud;
	struct al_wc_resp r;

	(void)h;
	UNLINK(call->c->calls, call);
	resp_fill(&r, hr, hr->body, hr->body_len);
	call->in_cb = 1;
	call->cb(&r, call->ud);
	json_decref(r.body);
	al_free(call);
}

void al_wc_cancel(struct al_wc_call *call)
{
	if (call == NULL || call->in_cb)
		return;
	al_http_call_cancel(call->http);
	UNLINK(call->c->calls, call);
	al_free(call);
}

/*
 * The headers every request carries; the Authorization value is auth's
 * text (the caller wipes it). Returns the count.
 */
static size_t std_headers(struct al_http_header *h, const al_buf *auth)
{
	size_t n = 0;

	h[n++] = (struct al_http_header){"Authorization", auth->data};
	h[n++] = (struct al_http_header){"anthropic-version", AL_WC_VERSION};
	h[n++] = (struct al_http_header){"anthropic-beta", AL_WC_BETA};
	h[n++] = (struct al_http_header){"User-Agent", USER_AGENT};
	return n;
}

static int token_ok(const char *t)
{
	/* A CR or LF would split the header; http_client refuses it too. */
	return t != NULL && *t != '\0' && strpbrk(t, "\r\n") == NULL;
}

/* fresh: a new connection, so libcurl never re-sends the request by itself (http_client.h). */
static int start_call_fresh(struct al_wc *c, const char *method, const char *url, const char *token,
			    const char *worker_id, const char *body, uint64_t timeout_ms, int fresh,
			    al_wc_cb cb, void *ud, struct al_wc_call **out)
{
	struct al_http_header h[8];
	struct al_http_client_req req = {0};
	struct al_wc_call *call = NULL;
	al_buf auth = {0};
	size_t n;
	int rc = -EINVAL;

	if (!token_ok(token) || cb == NULL)
		goto done;
	rc = -ENOMEM;
	if (al_buf_appendf(&auth, "Bearer %s", token) < 0)
		goto done;
	n = std_headers(h, &auth);
	h[n++] = (struct al_http_header){"Accept", "application/json"};
	if (body != NULL)
		h[n++] = (struct al_http_header){"Content-Type", "application/json"};
	else if (strcmp(method, "POST") == 0)
		/* No body, no content-type (libcurl would claim a form). */
		h[n++] = (struct al_http_header){"Content-Type", NULL};
	if (worker_id != NULL)
		h[n++] = (struct al_http_header){"Anthropic-Worker-ID", worker_id};
	if ((call = al_calloc(1, sizeof(*call))) == NULL)
		goto done;
	call->c = c;
	call->cb = cb;
	call->ud = ud;
	req.method = method;
	req.url = url;
	req.headers = h;
	req.nheaders = n;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	req.timeout_ms = timeout_ms;
	req.connect_timeout_ms = CONNECT_TIMEOUT_MS;
	req.ca_file = c->ca_file;
	req.max_body_bytes = MAX_BODY;
	req.fresh_connect = fresh;
	if ((rc = al_http_client_request(c->http, &req, call_done, call, &call->http)) < 0)
		goto done;
	LINK(c->calls, call);
	if (out)
		*out = call;
	call = NULL;
	rc = 0;
done:
	al_free(call);
	al_buf_wipe(&auth);
	al_buf_free(&auth);
	return rc;
}

static int start_call(struct al_wc *c, const char *method, const char *url, const char *token,
		      const char *worker_id, const char *body, uint64_t timeout_ms, al_wc_cb cb,
		      void *ud, struct al_wc_call **out)
{
	return start_call_fresh(c, method, url, token, worker_id, body, timeout_ms, 0, cb, ud, out);
}

int al_wc_poll(struct al_wc *c, const char *env_id, const char *env_key, const char *worker_id,
	       unsigned block_ms, unsigned long reclaim_ms, al_wc_cb cb, void *ud,
	       struct al_wc_call **out)
{
	const char *segs[] = {"=v1/environments", env_id, "=work/poll", NULL};
	al_buf u = {0};
	int first = 1, rc = -EINVAL;

	if (out)
		*out = NULL;
	if (!seg_ok(env_id))
		goto done;
	if ((rc = build_path(c, &u, segs)) < 0 ||
	    (block_ms && (rc = add_query_ul(&u, &first, "block_ms", block_ms)) < 0) ||
	    (reclaim_ms &&
	     (rc = add_query_ul(&u, &first, "reclaim_older_than_ms", reclaim_ms)) < 0))
		goto done;
	rc = start_call(c, "GET", u.data, env_key, worker_id, NULL,
			(uint64_t)block_ms + AL_WC_TIMEOUT_MS, cb, ud, out);
done:
	al_buf_free(&u);
	return rc;
}

/* POST /v1/environments/{env}/work/{id}/{verb}[query] with an optional JSON body. */
static int work_post(struct al_wc *c, const char *env_id, const char *work_id, const char *verb,
		     const char *query_ttl, const char *expected, const char *token,
		     const char *body, al_wc_cb cb, void *ud, struct al_wc_call **out)
{
	const char *segs[] = {"=v1/environments", env_id, "=work", work_id, verb, NULL};
	al_buf u = {0};
	int first = 1, rc = -EINVAL;

	if (out)
		*out = NULL;
	if (!seg_ok(env_id) || !seg_ok(work_id))
		goto done;
	if ((rc = build_path(c, &u, segs)) < 0 ||
	    (query_ttl && (rc = add_query(&u, &first, "desired_ttl_seconds", query_ttl)) < 0) ||
	    (expected && (rc = add_query(&u, &first, "expected_last_heartbeat", expected)) < 0))
		goto done;
	rc = start_call(c, "POST", u.data, token, NULL, body, AL_WC_TIMEOUT_MS, cb, ud, out);
done:
	al_buf_free(&u);
	return rc;
}

int al_wc_ack(struct al_wc *c, const char *env_id, const char *work_id, const char *env_key,
	      al_wc_cb cb, void *ud, struct al_wc_call **out)
{
	return work_post(c, env_id, work_id, "ack", NULL, NULL, env_key, NULL, cb, ud, out);
}

int al_wc_heartbeat(struct al_wc *c, const char *env_id, const char *work_id, const char *token,
		    unsigned ttl_s, const char *expected, al_wc_cb cb, void *ud,
		    struct al_wc_call **out)
{
	char ttl[16];

	snprintf(ttl, sizeof(ttl), "%u", ttl_s);
	return work_post(c, env_id, work_id, "heartbeat", ttl_s ? ttl : NULL,
			 expected ? expected : "NO_HEARTBEAT", token, NULL, cb, ud, out);
}

int al_wc_stop(struct al_wc *c, const char *env_id, const char *work_id, const char *token,
	       int force, al_wc_cb cb, void *ud, struct al_wc_call **out)
{
	return work_post(c, env_id, work_id, "stop", NULL, NULL, token,
			 force ? "{\"force\":true}" : "{\"force\":false}", cb, ud, out);
}

int al_wc_work_get(struct al_wc *c, const char *env_id, const char *work_id, const char *token,
		   al_wc_cb cb, void *ud, struct al_wc_call **out)
{
	const char *segs[] = {"=v1/environments", env_id, "=work", work_id, NULL};
	al_buf u = {0};
	int rc = -EINVAL;

	if (out)
		*out = NULL;
	if (!seg_ok(env_id) || !seg_ok(work_id))
		goto done;
	if ((rc = build_path(c, &u, segs)) < 0)
		goto done;
	rc = start_call(c, "GET", u.data, token, NULL, NULL, AL_WC_TIMEOUT_MS, cb, ud, out);
done:
	al_buf_free(&u);
	return rc;
}

int al_wc_events_list(struct al_wc *c, const char *session_id, const char *token, unsigned limit,
		      const char *page, al_wc_cb cb, void *ud, struct al_wc_call **out)
{
	const char *segs[] = {"=v1/sessions", session_id, "=events", NULL};
	al_buf u = {0};
	int first = 1, rc = -EINVAL;

	if (out)
		*out = NULL;
	if (!seg_ok(session_id))
		goto done;
	if ((rc = build_path(c, &u, segs)) < 0 ||
	    (limit && (rc = add_query_ul(&u, &first, "limit", limit)) < 0) ||
	    (page && (rc = add_query(&u, &first, "page", page)) < 0))
		goto done;
	rc = start_call(c, "GET", u.data, token, NULL, NULL, AL_WC_TIMEOUT_MS, cb, ud, out);
done:
	al_buf_free(&u);
	return rc;
}

int al_wc_events_send(struct al_wc *c, const char *session_id, const char *token,
		      const json_t *events, al_wc_cb cb, void *ud, struct al_wc_call **out)
{
	const char *segs[] = {"=v1/sessions", session_id, "=events", NULL};
	al_buf u = {0};
	json_t *body = NULL;
	char *text = NULL;
	int rc = -EINVAL;

	if (out)
		*out = NULL;
	if (!seg_ok(session_id) || !json_is_array(events))
		goto done;
	if ((rc = build_path(c, &u, segs)) < 0)
		goto done;
	rc = -ENOMEM;
	/* O: a new reference to the caller's array, which stays theirs. */
	if ((body = json_pack("{s:O}", "events", (json_t *)events)) == NULL ||
	    (text = json_dumps(body, JSON_COMPACT)) == NULL)
		goto done;
	/*
	 * Events are not idempotent (a tool result answers its call once): a
	 * fresh connection stops libcurl from re-sending one by itself after a
	 * reused connection died, so every copy that leaves is one the caller
	 * asked for, and checked history before asking again.
	 */
	rc = start_call_fresh(c, "POST", u.data, token, NULL, text, AL_WC_TIMEOUT_MS, 1, cb, ud,
			      out);
done:
	al_free(text);
	json_decref(body);
	al_buf_free(&u);
	return rc;
}

int al_wc_session_get(struct al_wc *c, const char *session_id, const char *token, al_wc_cb cb,
		      void *ud, struct al_wc_call **out)
{
	const char *segs[] = {"=v1/sessions", session_id, NULL};
	al_buf u = {0};
	int rc = -EINVAL;

	if (out)
		*out = NULL;
	if (!seg_ok(session_id))
		goto done;
	if ((rc = build_path(c, &u, segs)) < 0)
		goto done;
	rc = start_call(c, "GET", u.data, token, NULL, NULL, AL_WC_TIMEOUT_MS, cb, ud, out);
done:
	al_buf_free(&u);
	return rc;
}

/* ---- the stream ---- */

static void stream_free(struct al_wc_stream *s)
{
	if (s == NULL)
		return;
	al_sse_parser_free(s->sse);
	json_decref(s->err_event);
	al_buf_free(&s->errbody);
	al_free(s);
}

/* Returns a negative value to stop the parser. */
static int sse_event_cb(const struct al_sse_event *ev, void *ud)
{
	struct al_wc_stream *s = ud;
	json_error_t jerr;
	json_t *j;

	if (s->closed)
		return -ECANCELED;
	if (strcmp(ev->type, "ping") == 0) {
		s->ignored++;
		return 0;
	}
	j = json_loadb(ev->data, ev->data_len, 0, &jerr);
	/*
	 * Out of memory is not "not JSON": dropping a tool call silently would
	 * leave it unanswered, so the stream ends and the caller reconciles.
	 */
	if (j == NULL && json_error_code(&jerr) == json_error_out_of_memory)
		return -ENOMEM;
	if (strcmp(ev->type, "error") == 0) {
		/* The SDK's decoder throws an APIError on `event: error`. */
		s->err_event = j ? j : json_object();
		return -EIO;
	}
	if (!json_is_object(j)) {
		s->ignored++;
		json_decref(j);
		return 0;
	}
	s->event_cb(j, s->ud);
	json_decref(j);
	return s->closed ? -ECANCELED : 0;
}

static int stream_head_cb(al_http_call *h, int status, const struct al_http_header *hdrs, size_t n,
			  void *ud)
{
	struct al_wc_stream *s = ud;

	(void)h;
	(void)hdrs;
	(void)n;
	s->status = status;
	s->last_rx_ms = al_mono_ms();
	if (status != 200 || s->open_cb == NULL)
		return 0;
	s->busy++;
	s->open_cb(s->ud);
	s->busy--;
	if (s->closed) {
		/* Closed from open_cb: the transfer is cancelled, nothing refers to s. */
		stream_free(s);
		return -1;
	}
	return 0;
}

static int stream_data_cb(al_http_call *h, const char *data, size_t len, void *ud)
{
	struct al_wc_stream *s = ud;
	int rc;

	(void)h;
	s->last_rx_ms = al_mono_ms();
	if (s->status != 200) {
		size_t room = MAX_ERROR_BODY - s->errbody.len;
		if (len > room)
			len = room;
		if (al_buf_append(&s->errbody, data, len) < 0) {
			s->feed_err = -ENOMEM;
			return -1;
		}
		return 0;
	}
	s->busy++;
	rc = al_sse_parser_feed(s->sse, data, len);
	s->busy--;
	if (s->closed) {
		stream_free(s);
		return -1;
	}
	if (rc < 0 && s->err_event == NULL)
		s->feed_err = rc;
	return rc < 0 ? -1 : 0;
}

static void stream_done(al_http_call *h, const struct al_http_client_resp *hr, void *ud)
{
	struct al_wc_stream *s = ud;
	struct al_wc_resp r;

	(void)h;
	UNLINK(s->c->streams, s);
	s->ended = 1;
	if (s->err_event != NULL || s->feed_err != 0) {
		json_t *e = json_object_get(s->err_event, "error");
		memset(&r, 0, sizeof(r));
		r.retry_after_ms = -1;
		r.should_retry = -1;
		r.err = s->feed_err ? s->feed_err : -EIO;
		r.status = s->status;
		r.error_type = json_string_value(json_object_get(e, "type"));
		r.error_message = json_string_value(json_object_get(e, "message"));
		if (r.error_message == NULL)
			r.error_message = s->feed_err == -E2BIG	   ? "an event exceeds 8 MiB"
					  : s->feed_err == -ENOMEM ? "out of memory"
					  : s->feed_err		   ? "the event stream broke off"
							: "the server sent an error event";
		r.details = json_object_get(e, "details");
	} else {
		resp_fill(&r, hr, s->errbody.data, s->errbody.len);
	}
	s->end_cb(&r, s->ud);
	json_decref(r.body);
	stream_free(s);
}

int al_wc_stream_open(struct al_wc *c, const char *session_id, const char *token,
		      al_wc_open_cb open_cb, al_wc_event_cb event_cb, al_wc_cb end_cb, void *ud,
		      struct al_wc_stream **out)
{
	const char *segs[] = {"=v1/sessions", session_id, "=events/stream", NULL};
	struct al_http_header h[8];
	struct al_http_client_req req = {0};
	struct al_wc_stream *s = NULL;
	al_buf u = {0}, auth = {0};
	size_t n;
	int rc = -EINVAL;

	if (out)
		*out = NULL;
	if (!seg_ok(session_id) || !token_ok(token) || event_cb == NULL || end_cb == NULL)
		goto done;
	if ((rc = build_path(c, &u, segs)) < 0)
		goto done;
	rc = -ENOMEM;
	if (al_buf_appendf(&auth, "Bearer %s", token) < 0)
		goto done;
	if ((s = al_calloc(1, sizeof(*s))) == NULL)
		goto done;
	if ((s->sse = al_sse_parser_new(MAX_EVENT, sse_event_cb, s)) == NULL)
		goto done;
	s->c = c;
	s->open_cb = open_cb;
	s->event_cb = event_cb;
	s->end_cb = end_cb;
	s->ud = ud;
	s->last_rx_ms = al_mono_ms();
	n = std_headers(h, &auth);
	h[n++] = (struct al_http_header){"Accept", "text/event-stream"};
	req.url = u.data;
	req.headers = h;
	req.nheaders = n;
	req.connect_timeout_ms = CONNECT_TIMEOUT_MS;
	req.ca_file = c->ca_file;
	req.on_head = stream_head_cb;
	req.on_data = stream_data_cb;
	if ((rc = al_http_client_request(c->http, &req, stream_done, s, &s->http)) < 0)
		goto done;
	LINK(c->streams, s);
	if (out)
		*out = s;
	s = NULL;
	rc = 0;
done:
	stream_free(s);
	al_buf_wipe(&auth);
	al_buf_free(&auth);
	al_buf_free(&u);
	return rc;
}

void al_wc_stream_close(struct al_wc_stream *s)
{
	if (s == NULL || s->closed || s->ended)
		return;
	s->closed = 1;
	al_http_call_cancel(s->http);
	UNLINK(s->c->streams, s);
	/* From inside its own on_head/on_data: freed there once we unwind. */
	if (s->busy == 0)
		stream_free(s);
}

unsigned long al_wc_stream_ignored(const struct al_wc_stream *s)
{
	return s->ignored;
}

uint64_t al_wc_stream_last_rx_ms(const struct al_wc_stream *s)
{
	return s->last_rx_ms;
}
