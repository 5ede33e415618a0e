/*
 * anthropic.c - Messages API provider with retries.
 *
 * A call owns its serialized request body, the in-flight HTTP call and a
 * backoff timer. The timer is a libuv handle, so a call's memory is released
 * in the timer's close callback, after done_cb has run (or after a cancel);
 * nothing in that path touches the provider, which may already be freed by
 * then (done_cb is allowed to free it once its last call has finished).
 */
#include "agent/anthropic.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/rand.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct anthropic {
	al_provider base; /* first: al_provider* casts to this */
	uv_loop_t *loop;
	al_http_client *http; /* borrowed */
	char *url;	      /* {base_url}/v1/messages */
	char *api_key;	      /* owned secret, may be NULL */
	struct al_retry_policy policy;
	int64_t context_window;
	al_model_call *calls; /* in flight, for the debug check in free */
};

struct al_model_call {
	struct anthropic *p;
	al_model_done_cb done_cb;
	void *ud;
	char *body; /* serialized request, owned */
	size_t body_len;
	al_http_call *http; /* in flight, or NULL */
	uv_timer_t timer;   /* backoff; closing it frees the call */
	int attempts;
	int finished;
	al_model_call *prev, *next;
};

static const struct al_retry_policy default_policy = {
    .max_attempts = 6,
    .base_delay_ms = 500,
    .max_delay_ms = 30000,
    .timeout_ms = 600000,
};

static void start_attempt(al_model_call *c);

/* ---- helpers ---- */

uint64_t al_anthropic_backoff_ms(const struct al_retry_policy *policy, int attempt)
{
	uint64_t ceiling = policy->base_delay_ms, r = 0;

	for (int i = 1; i < attempt && ceiling < policy->max_delay_ms; i++)
		ceiling *= 2;
	if (ceiling > policy->max_delay_ms)
		ceiling = policy->max_delay_ms;
	if (ceiling == 0)
		return 0;
	/* Full jitter (AWS architecture blog): spreads synchronized clients apart. */
	if (al_random_bytes(&r, sizeof(r)) < 0)
		return ceiling / 2;
	return r % (ceiling + 1);
}

static int retryable_status(int status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 || status == 504 ||
	       status == 529;
}

static int retryable_err(int err)
{
	return err == -ETIMEDOUT || err == -ECONNREFUSED || err == -EHOSTUNREACH || err == -EIO;
}

/*
 * The delay the server asked for, in ms, or -1. retry-after-ms (what the
 * official SDKs read first) wins over retry-after; only the delta-seconds
 * form of retry-after is understood, an HTTP date falls back to backoff.
 */
static int64_t server_delay_ms(const struct al_http_client_resp *resp)
{
	const char *v;
	char *end;
	double d;

	v = al_http_client_resp_header(resp, "retry-after-ms");
	if (v) {
		d = strtod(v, &end);
		if (end != v && *end == '\0' && d >= 0 && d < 3600e3)
			return (int64_t)ceil(d);
	}
	v = al_http_client_resp_header(resp, "retry-after");
	if (v) {
		d = strtod(v, &end);
		if (end != v && *end == '\0' && d >= 0 && d < 3600)
			return (int64_t)ceil(d * 1000);
	}
	return -1;
}

const char *al_anthropic_error_type(int status)
{
	switch (status) {
	case 400:
		return "invalid_request_error";
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 413:
		return "request_too_large";
	case 429:
		return "rate_limit_error";
	case 529:
		return "overloaded_error";
	default:
		return "api_error";
	}
}

/* ---- call lifetime ---- */

static void call_close_cb(uv_handle_t *h)
{
	al_model_call *c = h->data;

	al_free(c->body);
	al_free(c);
}

static void call_unlink(al_model_call *c)
{
	struct anthropic *p = c->p;

	if (c->prev)
		c->prev->next = c->next;
	else if (p->calls == c)
		p->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Stops everything and schedules the memory release; no callback. */
static void call_release(al_model_call *c)
{
	call_unlink(c);
	if (c->http) {
		al_http_call_cancel(c->http);
		c->http = NULL;
	}
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, call_close_cb);
}

static void call_finish(al_model_call *c, struct al_model_result *res)
{
	al_model_done_cb cb = c->done_cb;
	void *ud = c->ud;

	c->finished = 1;
	res->attempts = c->attempts;
	/* Released first so done_cb may free the provider or start new calls. */
	call_release(c);
	cb(res, ud);
}

static void fail_with(al_model_call *c, int status, const char *type, const char *message)
{
	struct al_model_result res = {0};

	res.ok = 0;
	res.http_status = status;
	res.error_type = type;
	res.error_message = message;
	call_finish(c, &res);
}

/* ---- attempts ---- */

static void backoff_cb(uv_timer_t *t)
{
	start_attempt(t->data);
}

/* Finishes with the error a failed HTTP response describes. */
static void fail_from_response(al_model_call *c, const struct al_http_client_resp *resp)
{
	json_t *body = NULL, *err;
	const char *type = NULL, *message = NULL;
	char fallback[96];

	if (resp->err < 0) {
		/* resp->error comes from libcurl and never holds request headers. */
		fail_with(c, resp->status,
			  resp->err == -ETIMEDOUT ? "timeout_error" : "connection_error",
			  resp->error ? resp->error : "transport error");
		return;
	}
	body = json_loadb(resp->body, resp->body_len, 0, NULL);
	err = json_object_get(body, "error");
	type = json_string_value(json_object_get(err, "type"));
	message = json_string_value(json_object_get(err, "message"));
	snprintf(fallback, sizeof(fallback), "HTTP %d from the model API", resp->status);
	fail_with(c, resp->status, type ? type : al_anthropic_error_type(resp->status),
		  message ? message : fallback);
	json_decref(body);
}

static void http_done_cb(al_http_call *hc, const struct al_http_client_resp *resp, void *ud)
{
	al_model_call *c = ud;
	struct anthropic *p = c->p;
	int retry;

	c->http = NULL;
	if (resp->err == 0 && resp->status == 200) {
		struct al_model_result res = {0};
		json_t *msg = json_loadb(resp->body, resp->body_len, 0, NULL);

		if (!json_is_object(msg)) {
			json_decref(msg);
			fail_with(c, 200, "api_error",
				  "the model API answered 200 with invalid JSON");
			return;
		}
		res.ok = 1;
		res.http_status = 200;
		res.message = msg;
		call_finish(c, &res);
		json_decref(msg);
		return;
	}
	retry = resp->err < 0 ? retryable_err(resp->err) : retryable_status(resp->status);
	if (retry && c->attempts < p->policy.max_attempts) {
		int64_t server = resp->err == 0 ? server_delay_ms(resp) : -1;
		uint64_t delay = server >= 0 ? (uint64_t)server
					     : al_anthropic_backoff_ms(&p->policy, c->attempts);

		al_info("agent",
			"model call attempt %d failed (status=%d err=%d), retrying in %llu ms",
			c->attempts, resp->status, resp->err, (unsigned long long)delay);
		uv_timer_start(&c->timer, backoff_cb, delay, 0);
		return;
	}
	fail_from_response(c, resp);
}

/* Starts one HTTP attempt; returns 0 or a negative errno (nothing started). */
static int send_attempt(al_model_call *c)
{
	struct anthropic *p = c->p;
	struct al_http_header h[3] = {
	    {"anthropic-version", AL_ANTHROPIC_VERSION},
	    {"content-type", "application/json"},
	    {"x-api-key", p->api_key},
	};
	struct al_http_client_req req = {
	    .method = "POST",
	    .url = p->url,
	    .headers = h,
	    .nheaders = p->api_key ? 3 : 2,
	    .body = c->body,
	    .body_len = c->body_len,
	    .timeout_ms = p->policy.timeout_ms,
	    /* Fail an unreachable endpoint fast; the retry loop does the waiting. */
	    .connect_timeout_ms = p->policy.timeout_ms < 10000 ? p->policy.timeout_ms : 10000,
	};

	c->attempts++;
	return al_http_client_request(p->http, &req, http_done_cb, c, &c->http);
}

static void start_attempt(al_model_call *c)
{
	int rc = send_attempt(c);

	if (rc < 0)
		fail_with(c, 0, "api_error",
			  rc == -ENOMEM ? "out of memory" : "could not start the HTTP request");
}

/* ---- ops ---- */

static int anthropic_call(al_provider *base, json_t *request, al_model_done_cb done_cb, void *ud,
			  al_model_call **out)
{
	struct anthropic *p = (struct anthropic *)base;
	al_model_call *c = NULL;
	char *s = NULL;
	int rc = -EINVAL;

	if (out)
		*out = NULL;
	if (!json_is_object(request) || done_cb == NULL)
		goto fail;
	rc = -ENOMEM;
	c = al_calloc(1, sizeof(*c));
	if (c == NULL)
		goto fail;
	/*
	 * Serialized once: every retry sends the same bytes, and we need not
	 * keep a reference to the caller's (mutable) json_t.
	 */
	s = json_dumps(request, JSON_COMPACT);
	if (s == NULL)
		goto fail;
	c->body_len = strlen(s);
	c->body = al_strndup(s, c->body_len);
	if (c->body == NULL)
		goto fail;
	c->p = p;
	c->done_cb = done_cb;
	c->ud = ud;
	if ((rc = send_attempt(c)) < 0)
		goto fail;
	uv_timer_init(p->loop, &c->timer);
	c->timer.data = c;
	c->next = p->calls;
	if (p->calls)
		p->calls->prev = c;
	p->calls = c;
	if (out)
		*out = c;
	rc = 0;
	goto done;
fail:
	if (c) {
		al_free(c->body);
		al_free(c);
	}
done:
	if (s) {
		json_malloc_t m;
		json_free_t f;
		json_get_alloc_funcs(&m, &f);
		f(s);
	}
	return rc;
}

static void anthropic_cancel(al_provider *base, al_model_call *c)
{
	if (c == NULL || c->finished)
		return;
	c->finished = 1;
	call_release(c);
}

static void anthropic_free_op(al_provider *base)
{
	struct anthropic *p = (struct anthropic *)base;

	if (p == NULL)
		return;
	/* The contract says no call is left; cancel any stragglers rather than leak. */
	while (p->calls)
		anthropic_cancel(base, p->calls);
	al_free(p->url);
	al_free_secret_str(p->api_key);
	al_free(p);
}

static int64_t anthropic_context_window(al_provider *base, const char *model)
{
	struct anthropic *p = (struct anthropic *)base;

	if (p->context_window > 0)
		return p->context_window;
	/* Every current Claude model has a 200k window; other names get the same guess. */
	(void)model;
	return AL_ANTHROPIC_CONTEXT_WINDOW;
}

static const struct al_provider_ops anthropic_ops = {
    .call = anthropic_call,
    .cancel = anthropic_cancel,
    .free = anthropic_free_op,
    .context_window = anthropic_context_window,
};

al_provider *al_anthropic_new(uv_loop_t *loop, al_http_client *http, const char *base_url,
			      const char *api_key, const struct al_retry_policy *policy)
{
	struct anthropic *p = NULL;
	al_buf url = {0};
	size_t blen;

	if (base_url == NULL ||
	    (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0))
		return NULL;
	p = al_calloc(1, sizeof(*p));
	if (p == NULL)
		goto fail;
	p->base.ops = &anthropic_ops;
	p->loop = loop;
	p->http = http;
	blen = strlen(base_url);
	while (blen > 0 && base_url[blen - 1] == '/')
		blen--;
	if (al_buf_append(&url, base_url, blen) < 0 || al_buf_append_str(&url, "/v1/messages") < 0)
		goto fail;
	p->url = al_buf_steal(&url, NULL);
	if (api_key && (p->api_key = al_strdup(api_key)) == NULL)
		goto fail;
	p->policy = policy ? *policy : default_policy;
	if (p->policy.max_attempts < 1)
		p->policy.max_attempts = default_policy.max_attempts;
	if (p->policy.base_delay_ms == 0)
		p->policy.base_delay_ms = default_policy.base_delay_ms;
	if (p->policy.max_delay_ms == 0)
		p->policy.max_delay_ms = default_policy.max_delay_ms;
	if (p->policy.timeout_ms == 0)
		p->policy.timeout_ms = default_policy.timeout_ms;
	return &p->base;
fail:
	al_buf_free(&url);
	if (p)
		anthropic_free_op(&p->base);
	return NULL;
}

void al_anthropic_free(al_provider *p)
{
	anthropic_free_op(p);
}

void al_anthropic_set_context_window(al_provider *base, int64_t tokens)
{
	((struct anthropic *)base)->context_window = tokens > 0 ? tokens : 0;
}
