/*
 * http_client.c - libcurl multi interface driven by the libuv loop.
 *
 * The glue follows libcurl's "multi_socket" model: curl announces each socket
 * it wants watched (socket_cb) and the next deadline (timer_cb); when a
 * socket is ready or the deadline passes we hand the event back with
 * curl_multi_socket_action and then collect finished transfers. libcurl
 * forbids calling curl_multi_remove_handle from inside its own callbacks, so
 * a cancel that arrives while curl is on the stack (an on_data callback) is
 * recorded and carried out once curl_multi_socket_action has returned.
 */
#include "net/http_client.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/hash.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_BODY (64u * 1024 * 1024)

struct sock_ctx {
	uv_poll_t poll; /* first member: the close callback casts back */
	curl_socket_t fd;
	al_http_client *client;
	struct sock_ctx *prev, *next;
};

struct al_http_client {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	al_http_call *calls;	/* every call not yet finished or cancelled */
	struct sock_ctx *socks; /* every watched socket */
	int depth;		/* > 0 while curl_multi_socket_action is on the stack */
	int deferred;		/* calls cancelled while depth > 0, still attached */
	int pending;		/* calls requested while depth > 0, not yet attached */
	int closing;
};

struct al_http_call {
	al_http_client *client;
	CURL *easy;
	struct curl_slist *req_headers; /* owned; may hold secrets, wiped on free */
	struct curl_slist *resolve;	/* owned: the CURLOPT_RESOLVE pin, or NULL */
	al_http_done_cb done_cb;
	al_http_data_cb on_data;
	al_http_head_cb on_head;
	void *ud;
	al_buf body;
	size_t max_body;
	struct al_http_header *headers; /* owned names and values */
	size_t nheaders, capheaders;
	int cancelled;
	int attached;  /* handed to the multi handle (not still pending) */
	int head_done; /* on_head has run (or the final head went by) */
	int too_big;
	int aborted;
	int oom;
	int rewind_refused; /* no_resend: libcurl wanted to send the body again */
	char *req_body;	    /* owned copy of a no_resend body, read by read_cb */
	size_t req_body_len, req_body_off;
	char errbuf[CURL_ERROR_SIZE];
	al_http_call *prev, *next;
};

static pthread_mutex_t curl_init_lock = PTHREAD_MUTEX_INITIALIZER;
static int curl_inited;

static void *curl_calloc_cb(size_t n, size_t size)
{
	return al_calloc(n, size);
}

/* Once per process; retried if it failed (say, for lack of memory). */
static int curl_global(void)
{
	int rc = 0;

	pthread_mutex_lock(&curl_init_lock);
	/* libcurl allocates through our wrapper too, so allocation-failure tests reach it. */
	if (!curl_inited && curl_global_init_mem(CURL_GLOBAL_DEFAULT, al_malloc, al_free,
						 al_realloc, al_strdup, curl_calloc_cb) != CURLE_OK)
		rc = -ENOMEM;
	else
		curl_inited = 1;
	pthread_mutex_unlock(&curl_init_lock);
	return rc;
}

/* ---- response headers ---- */

static void headers_clear(al_http_call *call)
{
	for (size_t i = 0; i < call->nheaders; i++) {
		al_free((char *)call->headers[i].name);
		al_free((char *)call->headers[i].value);
	}
	call->nheaders = 0;
}

static int headers_add(al_http_call *call, const char *name, size_t nlen, const char *value,
		       size_t vlen)
{
	char *n = NULL, *v = NULL;
	int rc = -ENOMEM;

	if (call->nheaders == call->capheaders) {
		size_t cap = call->capheaders ? call->capheaders * 2 : 16;
		struct al_http_header *h = al_realloc(call->headers, cap * sizeof(*h));
		if (h == NULL)
			goto fail;
		call->headers = h;
		call->capheaders = cap;
	}
	n = al_strndup(name, nlen);
	v = al_strndup(value, vlen);
	if (n == NULL || v == NULL)
		goto fail;
	call->headers[call->nheaders].name = n;
	call->headers[call->nheaders].value = v;
	call->nheaders++;
	return 0;
fail:
	al_free(n);
	al_free(v);
	return rc;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	al_http_call *call = ud;
	size_t len = size * nitems, nlen, vstart, vend;
	const char *colon;

	if (call->cancelled)
		return 0;
	/*
	 * A status line starts a new response (after a 100 Continue or an
	 * interim 1xx): only the final response's headers are reported.
	 */
	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		headers_clear(call);
		return len;
	}
	if ((len == 2 && buf[0] == '\r' && buf[1] == '\n') || (len == 1 && buf[0] == '\n')) {
		long status = 0;

		/*
		 * The blank line that ends a header block: a 1xx's, the final
		 * response's (report it once), or the trailers' (ignored).
		 */
		curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
		if (call->head_done || status < 200)
			return len;
		call->head_done = 1;
		if (call->on_head == NULL)
			return len;
		if (call->on_head(call, (int)status, call->headers, call->nheaders, call->ud) !=
		    0) {
			call->aborted = 1;
			return 0;
		}
		/* on_head may have cancelled this very call. */
		return call->cancelled ? 0 : len;
	}
	colon = memchr(buf, ':', len);
	if (colon == NULL)
		return len; /* junk */
	nlen = (size_t)(colon - buf);
	while (nlen > 0 && is_space(buf[nlen - 1]))
		nlen--;
	vstart = (size_t)(colon - buf) + 1;
	vend = len;
	while (vstart < vend && is_space(buf[vstart]))
		vstart++;
	while (vend > vstart && is_space(buf[vend - 1]))
		vend--;
	if (nlen == 0)
		return len;
	if (headers_add(call, buf, nlen, buf + vstart, vend - vstart) < 0) {
		call->oom = 1;
		return 0;
	}
	return len;
}

const char *al_http_client_resp_header(const struct al_http_client_resp *resp, const char *name)
{
	for (size_t i = 0; i < resp->nheaders; i++)
		if (strcasecmp(resp->headers[i].name, name) == 0)
			return resp->headers[i].value;
	return NULL;
}

/* ---- body ---- */

static size_t write_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	al_http_call *call = ud;
	size_t len = size * nitems;

	if (call->cancelled)
		return 0;
	if (call->on_data) {
		if (call->on_data(call, buf, len, call->ud) != 0) {
			call->aborted = 1;
			return 0;
		}
		/* on_data may have cancelled this very call. */
		return call->cancelled ? 0 : len;
	}
	if (len > call->max_body - call->body.len) {
		call->too_big = 1;
		return 0;
	}
	if (al_buf_append(&call->body, buf, len) < 0) {
		call->oom = 1;
		return 0;
	}
	return len;
}

/* ---- request body of a no_resend call ---- */

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	al_http_call *call = ud;
	size_t n = size * nitems, left = call->req_body_len - call->req_body_off;

	if (n > left)
		n = left;
	memcpy(buf, call->req_body + call->req_body_off, n);
	call->req_body_off += n;
	return n;
}

/*
 * libcurl asks to rewind the body only to send it again: after a reused
 * connection died with no answer (a retry on a new one), or for an auth
 * round or a 417, which these requests never trigger. Refused once any of
 * the body has been handed over: the server may have the whole request.
 * Before that nothing of it can have arrived, so "rewinding" is harmless.
 */
static int seek_cb(void *ud, curl_off_t offset, int origin)
{
	al_http_call *call = ud;

	if (origin == SEEK_SET && offset == 0 && call->req_body_off == 0)
		return CURL_SEEKFUNC_OK;
	call->rewind_refused = 1;
	return CURL_SEEKFUNC_CANTSEEK;
}

/* ---- call lifetime ---- */

static void call_link(al_http_client *c, al_http_call *call)
{
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
}

static void call_unlink(al_http_client *c, al_http_call *call)
{
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
}

static void call_free(al_http_call *call)
{
	struct curl_slist *s;

	if (call == NULL)
		return;
	if (call->easy)
		curl_easy_cleanup(call->easy);
	/* The header list carries x-api-key: wipe it before it goes back to the heap. */
	for (s = call->req_headers; s; s = s->next)
		al_wipe(s->data, strlen(s->data));
	curl_slist_free_all(call->req_headers);
	curl_slist_free_all(call->resolve);
	if (call->req_body) {
		al_wipe(call->req_body, call->req_body_len);
		al_free(call->req_body);
	}
	headers_clear(call);
	al_free(call->headers);
	/*
	 * Response bodies can carry secrets (a work item's secret in a poll, a
	 * key at creation): wiped, whatever they held. libcurl's own receive
	 * buffer is out of our reach.
	 */
	al_buf_wipe(&call->body);
	al_buf_free(&call->body);
	al_free(call);
}

/* Detaches a call from the multi handle and frees it; no callback. */
static void call_drop(al_http_call *call)
{
	al_http_client *c = call->client;

	if (call->cancelled && c->deferred > 0)
		c->deferred--;
	if (!call->attached && c->pending > 0)
		c->pending--;
	if (call->attached)
		curl_multi_remove_handle(c->multi, call->easy);
	call_unlink(c, call);
	call_free(call);
}

static int map_error(const al_http_call *call, CURLcode res)
{
	if (call->too_big)
		return -EFBIG;
	if (call->aborted)
		return -ECANCELED;
	if (call->oom)
		return -ENOMEM;
	/*
	 * no_resend: the connection broke once (part of) the body was out,
	 * with no response: on a reused connection libcurl wanted to retry
	 * and was refused; on a new one it does not retry. Either way the
	 * server may have the request.
	 */
	if (call->rewind_refused || res == CURLE_SEND_FAIL_REWIND ||
	    (call->req_body_off > 0 &&
	     (res == CURLE_GOT_NOTHING || res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR)))
		return -ECONNRESET;
	switch (res) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		/* Configuration, not weather: retrying will not help. */
		return -EPROTO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void call_finish(al_http_call *call, CURLcode res)
{
	al_http_client *c = call->client;
	struct al_http_client_resp resp = {0};
	long status = 0;
	char msg[CURL_ERROR_SIZE + 64];

	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(c->multi, call->easy);
	call_unlink(c, call);
	resp.err = map_error(call, res);
	resp.status = (int)status;
	resp.body = call->body.data ? call->body.data : "";
	resp.body_len = call->body.len;
	resp.headers = call->headers;
	resp.nheaders = call->nheaders;
	if (resp.err != 0) {
		/*
		 * libcurl's error buffer describes the connection (host, port,
		 * TLS), never the request headers, so no key can leak here.
		 */
		if (call->too_big)
			snprintf(msg, sizeof(msg), "response body exceeds %zu bytes",
				 call->max_body);
		else if (call->aborted)
			snprintf(msg, sizeof(msg), "aborted by the data or head callback");
		else if (resp.err == -ECONNRESET)
			snprintf(msg, sizeof(msg),
				 "connection lost after the request was sent, before any "
				 "response; not sent again");
		else if (call->errbuf[0])
			snprintf(msg, sizeof(msg), "%s", call->errbuf);
		else
			snprintf(msg, sizeof(msg), "%s", curl_easy_strerror(res));
		resp.error = msg;
	}
	/* Marked so a cancel from inside done_cb is a harmless no-op. */
	call->cancelled = 1;
	if (call->done_cb)
		call->done_cb(call, &resp, call->ud);
	call_free(call);
}

/*
 * Hands libcurl the requests made while it was on the stack. A failure to
 * attach is reported through done_cb like any other failure.
 */
static void attach_pending(al_http_client *c)
{
	while (c->pending > 0) {
		al_http_call *call = c->calls;
		while (call && (call->attached || call->cancelled))
			call = call->next;
		if (call == NULL) {
			c->pending = 0;
			break;
		}
		c->pending--;
		call->attached = 1;
		if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) {
			call->oom = 1;
			call_finish(call, CURLE_OUT_OF_MEMORY);
		}
	}
}

/* Collects finished transfers and carries out deferred cancels. */
static void after_action(al_http_client *c)
{
	CURLMsg *m;
	int left;

	if (c->depth > 0)
		return;
	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		al_http_call *call = NULL;
		CURLcode res;

		if (m->msg != CURLMSG_DONE)
			continue;
		res = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&call);
		if (call == NULL)
			continue;
		if (call->cancelled)
			call_drop(call);
		else
			call_finish(call, res);
	}
	while (c->deferred > 0) {
		al_http_call *call = c->calls;
		while (call && !call->cancelled)
			call = call->next;
		if (call == NULL) {
			c->deferred = 0;
			break;
		}
		call_drop(call);
	}
	attach_pending(c);
}

static void socket_action(al_http_client *c, curl_socket_t fd, int flags)
{
	int running = 0;

	c->depth++;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	c->depth--;
	after_action(c);
}

/* ---- libuv glue ---- */

static void on_timeout(uv_timer_t *t)
{
	al_http_client *c = t->data;

	socket_action(c, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *ud)
{
	al_http_client *c = ud;

	if (c->closing)
		return 0;
	/*
	 * A 0 timeout is also run from the loop rather than right here: curl
	 * forbids re-entering socket_action from its own callback, and it keeps
	 * done_cb from firing inside al_http_client_request.
	 */
	if (timeout_ms < 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct sock_ctx *s = (struct sock_ctx *)h;
	int flags = 0;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	socket_action(s->client, s->fd, flags);
}

static void sock_close_cb(uv_handle_t *h)
{
	al_free(h);
}

static void sock_release(al_http_client *c, struct sock_ctx *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	/* uv_close stops polling at once; memory goes in the close callback. */
	uv_close((uv_handle_t *)&s->poll, sock_close_cb);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp)
{
	al_http_client *c = ud;
	struct sock_ctx *s = sockp;
	int events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(c->multi, fd, NULL);
			sock_release(c, s);
		}
		return 0;
	}
	if (s == NULL) {
		s = al_calloc(1, sizeof(*s));
		if (s == NULL)
			return -1;
		if (uv_poll_init_socket(c->loop, &s->poll, fd) < 0) {
			al_free(s);
			return -1;
		}
		s->fd = fd;
		s->client = c;
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		curl_multi_assign(c->multi, fd, s);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, on_poll);
	return 0;
}

/* ---- public ---- */

int al_http_client_new(uv_loop_t *loop, al_http_client **out)
{
	al_http_client *c = NULL;
	int rc;

	*out = NULL;
	if ((rc = curl_global()) < 0)
		return rc;
	c = al_calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->loop = loop;
	c->multi = curl_multi_init();
	if (c->multi == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	*out = c;
	return 0;
fail:
	al_free(c);
	return rc;
}

static void client_close_cb(uv_handle_t *h)
{
	al_free(h->data);
}

void al_http_client_free(al_http_client *c)
{
	if (c == NULL)
		return;
	c->closing = 1;
	while (c->calls) {
		al_http_call *call = c->calls;
		if (call->attached)
			curl_multi_remove_handle(c->multi, call->easy);
		call_unlink(c, call);
		call_free(call);
	}
	curl_multi_cleanup(c->multi);
	c->multi = NULL;
	while (c->socks)
		sock_release(c, c->socks);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, client_close_cb);
}

static int valid_method(const char *m)
{
	if (*m == '\0')
		return 0;
	for (; *m; m++)
		if (!(*m >= 'A' && *m <= 'Z'))
			return 0;
	return 1;
}

static int valid_header_part(const char *s)
{
	return s && strpbrk(s, "\r\n") == NULL;
}

static int valid_header_value(const char *s)
{
	return s == NULL || valid_header_part(s);
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
	al_buf b = {0};
	struct curl_slist *n;
	int rc = -ENOMEM;

	/* "Name:" removes a header libcurl adds; "Name;" sends an empty value. */
	if (value == NULL)
		rc = al_buf_appendf(&b, "%s:", name);
	else if (*value == '\0')
		rc = al_buf_appendf(&b, "%s;", name);
	else
		rc = al_buf_appendf(&b, "%s: %s", name, value);
	if (rc < 0)
		goto done;
	n = curl_slist_append(*list, b.data);
	if (n == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	*list = n;
	rc = 0;
done:
	al_buf_wipe(&b);
	al_buf_free(&b);
	return rc;
}

int al_http_client_request(al_http_client *c, const struct al_http_client_req *req,
			   al_http_done_cb done_cb, void *ud, al_http_call **out)
{
	al_http_call *call = NULL;
	struct curl_slist *hl;
	const char *method = req->method ? req->method : "GET";
	int rc = -EINVAL;
	CURLcode e = CURLE_OK;

	if (out)
		*out = NULL;
	if (c->closing || req->url == NULL || !valid_method(method) ||
	    (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0))
		goto fail;
	for (size_t i = 0; i < req->nheaders; i++)
		if (!valid_header_part(req->headers[i].name) ||
		    !valid_header_value(req->headers[i].value) || req->headers[i].name[0] == '\0' ||
		    strchr(req->headers[i].name, ':'))
			goto fail;
	rc = -ENOMEM;
	call = al_calloc(1, sizeof(*call));
	if (call == NULL)
		goto fail;
	call->client = c;
	call->done_cb = done_cb;
	call->on_data = req->on_data;
	call->on_head = req->on_head;
	call->ud = ud;
	call->max_body = req->max_body_bytes ? req->max_body_bytes : DEFAULT_MAX_BODY;
	call->easy = curl_easy_init();
	if (call->easy == NULL)
		goto fail;
	for (size_t i = 0; i < req->nheaders; i++)
		if ((rc = add_header(&call->req_headers, req->headers[i].name,
				     req->headers[i].value)) < 0)
			goto fail;
	/*
	 * "Expect:" with nothing after the colon tells libcurl to drop the
	 * header: otherwise it sends "Expect: 100-continue" on bodies over
	 * 1 MiB and waits a second for an answer many servers never send.
	 */
	rc = -ENOMEM;
	if ((hl = curl_slist_append(call->req_headers, "Expect:")) == NULL)
		goto fail;
	call->req_headers = hl;
	if (req->resolve && (call->resolve = curl_slist_append(NULL, req->resolve)) == NULL)
		goto fail;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (e == CURLE_OK)                                                                 \
			e = curl_easy_setopt(call->easy, opt, val);                                \
	} while (0)
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_PRIVATE, call);
	SET(CURLOPT_ERRORBUFFER, call->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_HTTPHEADER, call->req_headers);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, call);
	/* A proxy's "200 Connection established" is not the response. */
	SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, call);
	if (req->timeout_ms)
		SET(CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	if (req->connect_timeout_ms)
		SET(CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
	if (req->ca_file) {
		SET(CURLOPT_CAINFO, req->ca_file);
		/*
		 * Only that bundle unless asked: libcurl builds that also have a
		 * default CA directory would otherwise trust the system's CAs as
		 * well, and a caller who names a CA file for a peer means that
		 * peer's CA and nothing else.
		 */
		if (!req->ca_also_system)
			SET(CURLOPT_CAPATH, (char *)NULL);
	}
	if (call->resolve)
		SET(CURLOPT_RESOLVE, call->resolve);
	if (call->resolve || req->no_proxy)
		SET(CURLOPT_NOPROXY, "*");
	/* no_resend without a body has no rewind to refuse: a connection of its own. */
	if (req->fresh_connect || (req->no_resend && req->body_len == 0))
		SET(CURLOPT_FRESH_CONNECT, 1L);
	if (req->no_resend && req->body_len > 0) {
		/*
		 * Through read_cb rather than COPYPOSTFIELDS: libcurl re-sends
		 * POSTFIELDS on a new connection by itself (it needs no rewind),
		 * a read callback only after seek_cb agreed. The size is given,
		 * so the body is not chunked; "Expect:" above keeps 100-continue
		 * off whatever the size.
		 */
		if ((call->req_body = al_malloc(req->body_len)) == NULL)
			goto fail;
		memcpy(call->req_body, req->body, req->body_len);
		call->req_body_len = req->body_len;
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		SET(CURLOPT_READFUNCTION, read_cb);
		SET(CURLOPT_READDATA, call);
		SET(CURLOPT_SEEKFUNCTION, seek_cb);
		SET(CURLOPT_SEEKDATA, call);
		if (strcmp(method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, method);
	} else if (req->body != NULL || strcmp(method, "POST") == 0) {
		/* COPYPOSTFIELDS copies, so the caller's body need not outlive us. */
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		SET(CURLOPT_COPYPOSTFIELDS, req->body ? (const char *)req->body : "");
		if (strcmp(method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		SET(CURLOPT_CUSTOMREQUEST, method);
	}
#undef SET
	if (e != CURLE_OK) {
		rc = e == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
		goto fail;
	}
	if (c->depth > 0) {
		/* Inside a libcurl callback: attach_pending adds it on the way out. */
		c->pending++;
	} else {
		if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK)
			goto fail;
		call->attached = 1;
	}
	call_link(c, call);
	if (out)
		*out = call;
	return 0;
fail:
	call_free(call);
	return rc;
}

void al_http_call_pause(al_http_call *call, int paused)
{
	al_http_client *c;

	if (call == NULL || call->cancelled || !call->attached)
		return;
	c = call->client;
	/*
	 * Resuming can run write_cb (held data) and finish the transfer inside
	 * curl_easy_pause: count it as curl on the stack, so requests and
	 * cancels made from those callbacks are deferred, then collect.
	 */
	c->depth++;
	curl_easy_pause(call->easy, paused ? CURLPAUSE_RECV : CURLPAUSE_CONT);
	c->depth--;
	after_action(c);
}

void al_http_call_cancel(al_http_call *call)
{
	al_http_client *c;

	if (call == NULL || call->cancelled)
		return;
	c = call->client;
	call->cancelled = 1;
	call->done_cb = NULL;
	if (c->depth > 0) {
		/* curl is on the stack: detach once socket_action returns. */
		c->deferred++;
		return;
	}
	c->deferred++; /* call_drop balances it */
	call_drop(call);
}
