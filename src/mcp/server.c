/*
 * server.c - the MCP server registry and dispatcher (mcp/server.h).
 *
 * One al_mcp_call per inbound request, alive from al_mcp_server_handle to
 * its finish. A call is freed once: when it is finished and nobody is in
 * the middle of using it (`busy`: the dispatcher while the handler runs,
 * a broadcast while it sends), so a handler may answer before returning
 * and a transport may cancel from inside a send without a use after free.
 *
 * Decisions the header leaves open:
 * - a legacy request naming an unknown or expired session is answered
 *   -32600 with HTTP 404 (the transport normally answers 404 itself first,
 *   al_mcp_server_has_session);
 * - max_sessions: a new initialize evicts expired sessions, then the least
 *   recently used session that has no call in flight; when every session is
 *   busy, initialize is refused -32603 with HTTP 503;
 * - idle expiry is checked lazily (on lookup and on initialize), never for
 *   a session with a call in flight or an open GET stream;
 * - a modern notification is accepted (202) and ignored, except
 *   notifications/cancelled on a transport without per-request streams
 *   (stdio, http 0), which cancels the call with that id, and
 *   notifications/initialized over HTTP, answered -32601 / 404 (the method
 *   does not exist in 2026-07-28);
 * - al_mcp_server_close_stream finishes the stream through its sink
 *   (finish(t, NULL, 200, NULL)), like the end of a session does;
 * - a legacy server-to-client request still pending when its call finishes
 *   normally is dropped without running its callback (only a cancel runs
 *   it with NULL, NULL).
 */
#include "mcp/server.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/rand.h"
#include "mcp/headers.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_TTL_MS	      60000
#define DEFAULT_STATE_TTL_MS  300000
#define DEFAULT_MAX_SESSIONS  1024
#define DEFAULT_SESSION_IDLE  (30 * 60 * 1000)
#define MAX_COMPLETION_VALUES 100
#define SESSION_ID_BYTES      16 /* 128 bits, hex: 32 characters */

/* ---- registry entries ---- */

struct tool_ent {
	char *name, *title, *description;
	json_t *input_schema, *output_schema, *annotations, *meta, *required;
	al_mcp_param_headers ph; /* x-mcp-header annotations, for the header check */
	al_mcp_tool_fn fn;
	void *ud;
};

/* A resource, or a resource template (then `uri` is the template). */
struct res_ent {
	char *uri, *name, *title, *description, *mime_type;
	al_mcp_resource_fn fn;
	al_mcp_complete_fn complete; /* templates only */
	void *ud;
};

struct prompt_ent {
	char *name, *title, *description;
	json_t *arguments;
	al_mcp_prompt_fn fn;
	al_mcp_complete_fn complete;
	void *ud;
};

/* An array of pointers in registration order (the list order clients see). */
struct vec {
	void **v;
	size_t n, cap;
};

struct al_mcp_session {
	struct al_mcp_session *next;
	char id[SESSION_ID_BYTES * 2 + 1];
	char *version;
	char *principal; /* who opened it, or NULL */
	json_t *caps;	 /* the client's capabilities from initialize */
	int log_level;	 /* logging/setLevel; AL_MCP_LOG_UNSET until then */
	int64_t last_ms; /* last use, for idle expiry */
	size_t ncalls;	 /* calls in flight naming this session */
	json_t *subs;	 /* resources/subscribe: {uri: true} */
	int has_stream;	 /* the GET stream is open */
	struct al_mcp_sink stream_sink;
	void *stream_t;
};

/* A legacy server-to-client request awaiting the client's response. */
struct pending {
	struct pending *next;
	char id[32];
	al_mcp_call *c;
	al_mcp_reply_fn cb;
	void *ud;
};

struct al_mcp_server {
	char *name, *version, *title, *instructions;
	int64_t ttl_ms;
	char *cache_scope;
	unsigned char own_key[AL_MCP_STATE_KEY_LEN];
	const unsigned char *key;
	int64_t state_ttl_ms;
	size_t max_sessions;
	int64_t session_idle_ms;
	struct vec tools, resources, templates, prompts;
	struct al_mcp_session *sessions;
	size_t nsessions;
	al_mcp_call *calls; /* in flight, newest first */
	struct pending *pending;
	unsigned long long next_req;
};

enum call_kind { K_OTHER = 0, K_READ, K_LISTEN };

struct al_mcp_call {
	al_mcp_server *s;
	al_mcp_call *prev, *next;
	struct al_mcp_sink sink;
	void *t;
	al_mcp_msg msg; /* owns the request; method, id, params borrow from it */
	json_t *params; /* msg.params, or `empty` when absent */
	json_t *empty;	/* {} for absent arguments and capabilities */
	al_mcp_meta meta;
	int legacy, http, kind;
	struct al_mcp_session *sess;
	const char *version;
	json_t *caps;
	char *principal;
	int log_level;
	json_t *progress_token;
	json_t *state;		 /* opened requestState, owned */
	json_t *input_responses; /* borrowed from params */
	json_t *vars;		 /* template variables, owned */
	const char *mrtr_name;	 /* params.name or params.uri, for the binding */
	/* tools/call: the tool params.name names (NULL: none), looked up once for
	 * the header check and the dispatch; cleared before its handler runs (a
	 * tool may be removed while its call is in flight). */
	struct tool_ent *tool;
	/* subscriptions/listen filter */
	int want_tools, want_prompts, want_resources;
	json_t *want_uris; /* array of strings or NULL */
	int finished, cancelled, busy;
	/* A handler was called and has not answered; `owed`: cancelled meanwhile
	 * without an on_cancel, so the call stays allocated until it answers. */
	int in_handler, owed;
	void (*on_cancel)(al_mcp_call *c, void *ud);
	void *on_cancel_ud;
};

/* ---- small helpers ---- */

static char *dup_opt(const char *s, int *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = al_strdup(s);
	if (!d)
		*oom = 1;
	return d;
}

static json_t *ref_opt(json_t *j)
{
	return j ? json_incref(j) : NULL;
}

static int vec_push(struct vec *v, void *p)
{
	void **nv;
	size_t ncap;

	if (v->n == v->cap) {
		ncap = v->cap ? v->cap * 2 : 8;
		nv = al_realloc(v->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		v->v = nv;
		v->cap = ncap;
	}
	v->v[v->n++] = p;
	return 0;
}

static void vec_remove(struct vec *v, size_t i)
{
	memmove(&v->v[i], &v->v[i + 1], (v->n - i - 1) * sizeof(*v->v));
	v->n--;
}

static int set_str(json_t *o, const char *k, const char *v)
{
	if (!v)
		return 0;
	return json_object_set_new(o, k, json_string(v)) == 0 ? 0 : -ENOMEM;
}

static int set_ref(json_t *o, const char *k, json_t *v)
{
	if (!v)
		return 0;
	return json_object_set(o, k, v) == 0 ? 0 : -ENOMEM;
}

/* ---- registry ---- */

static void tool_free(struct tool_ent *t)
{
	if (!t)
		return;
	al_free(t->name);
	al_free(t->title);
	al_free(t->description);
	json_decref(t->input_schema);
	json_decref(t->output_schema);
	json_decref(t->annotations);
	json_decref(t->meta);
	json_decref(t->required);
	al_mcp_param_headers_free(&t->ph);
	al_free(t);
}

static void res_free(struct res_ent *r)
{
	if (!r)
		return;
	al_free(r->uri);
	al_free(r->name);
	al_free(r->title);
	al_free(r->description);
	al_free(r->mime_type);
	al_free(r);
}

static void prompt_free(struct prompt_ent *p)
{
	if (!p)
		return;
	al_free(p->name);
	al_free(p->title);
	al_free(p->description);
	json_decref(p->arguments);
	al_free(p);
}

static struct tool_ent *find_tool(al_mcp_server *s, const char *name, size_t *idx)
{
	for (size_t i = 0; name && i < s->tools.n; i++) {
		struct tool_ent *t = s->tools.v[i];
		if (strcmp(t->name, name) == 0) {
			if (idx)
				*idx = i;
			return t;
		}
	}
	return NULL;
}

/* The resource (or template) of `v` registered under exactly `uri`. */
static struct res_ent *find_uri(const struct vec *v, const char *uri)
{
	for (size_t i = 0; uri && i < v->n; i++) {
		struct res_ent *r = v->v[i];
		if (strcmp(r->uri, uri) == 0)
			return r;
	}
	return NULL;
}

static struct prompt_ent *find_prompt(al_mcp_server *s, const char *name, size_t *idx)
{
	for (size_t i = 0; name && i < s->prompts.n; i++) {
		struct prompt_ent *p = s->prompts.v[i];
		if (strcmp(p->name, name) == 0) {
			if (idx)
				*idx = i;
			return p;
		}
	}
	return NULL;
}

al_mcp_server *al_mcp_server_new(const struct al_mcp_server_opts *opts)
{
	al_mcp_server *s = NULL;
	int oom = 0;

	if (!opts || !opts->name || !opts->version)
		goto fail;
	s = al_calloc(1, sizeof(*s));
	if (!s)
		goto fail;
	s->name = dup_opt(opts->name, &oom);
	s->version = dup_opt(opts->version, &oom);
	s->title = dup_opt(opts->title, &oom);
	s->instructions = dup_opt(opts->instructions, &oom);
	s->cache_scope = dup_opt(opts->cache_scope ? opts->cache_scope : "public", &oom);
	if (oom)
		goto fail;
	s->ttl_ms = opts->ttl_ms > 0 ? opts->ttl_ms : DEFAULT_TTL_MS;
	s->state_ttl_ms = opts->state_ttl_ms > 0 ? opts->state_ttl_ms : DEFAULT_STATE_TTL_MS;
	s->max_sessions = opts->max_sessions ? opts->max_sessions : DEFAULT_MAX_SESSIONS;
	s->session_idle_ms =
	    opts->session_idle_ms > 0 ? opts->session_idle_ms : DEFAULT_SESSION_IDLE;
	if (opts->state_key) {
		s->key = opts->state_key;
	} else {
		if (al_random_bytes(s->own_key, sizeof(s->own_key)) < 0)
			goto fail;
		s->key = s->own_key;
	}
	return s;
fail:
	al_mcp_server_free(s);
	return NULL;
}

static void session_end(al_mcp_server *s, struct al_mcp_session *ss);
static void call_finish(al_mcp_call *c, json_t *msg, int status, const char *sid);
static void listen_close(al_mcp_call *c);

void al_mcp_server_free(al_mcp_server *s)
{
	if (!s)
		return;
	/* Listen streams end gracefully; anything else still in flight is a
	 * transport that forgot to cancel: cancel it rather than leak it. */
	while (s->calls) {
		if (s->calls->kind == K_LISTEN)
			listen_close(s->calls);
		else
			al_mcp_call_cancel(s->calls);
	}
	while (s->sessions)
		session_end(s, s->sessions);
	for (size_t i = 0; i < s->tools.n; i++)
		tool_free(s->tools.v[i]);
	for (size_t i = 0; i < s->resources.n; i++)
		res_free(s->resources.v[i]);
	for (size_t i = 0; i < s->templates.n; i++)
		res_free(s->templates.v[i]);
	for (size_t i = 0; i < s->prompts.n; i++)
		prompt_free(s->prompts.v[i]);
	al_free(s->tools.v);
	al_free(s->resources.v);
	al_free(s->templates.v);
	al_free(s->prompts.v);
	al_free(s->name);
	al_free(s->version);
	al_free(s->title);
	al_free(s->instructions);
	al_free(s->cache_scope);
	memset(s->own_key, 0, sizeof(s->own_key));
	al_free_secret(s, sizeof(*s));
}

int al_mcp_server_add_tool(al_mcp_server *s, const struct al_mcp_tool *t)
{
	struct tool_ent *e = NULL;
	char why[160];
	int oom = 0, rc = 0;

	if (!s || !t || !t->name || !*t->name || !json_is_object(t->input_schema) || !t->fn) {
		rc = -EINVAL;
		goto done;
	}
	if (find_tool(s, t->name, NULL)) {
		rc = -EEXIST;
		goto done;
	}
	e = al_calloc(1, sizeof(*e));
	if (!e) {
		rc = -ENOMEM;
		goto done;
	}
	e->name = dup_opt(t->name, &oom);
	e->title = dup_opt(t->title, &oom);
	e->description = dup_opt(t->description, &oom);
	e->input_schema = ref_opt(t->input_schema);
	e->output_schema = ref_opt(t->output_schema);
	e->annotations = ref_opt(t->annotations);
	e->meta = ref_opt(t->meta);
	e->required = ref_opt(t->required_capabilities);
	e->fn = t->fn;
	e->ud = t->ud;
	if (oom) {
		rc = -ENOMEM;
		goto done;
	}
	/* A schema whose annotations break the rules is served as given; its
	 * calls are then checked without Mcp-Param headers (a client drops
	 * such a tool anyway). */
	rc = al_mcp_param_headers_from_schema(t->input_schema, &e->ph, why, sizeof(why));
	if (rc == -EINVAL)
		rc = 0;
	if (rc < 0)
		goto done;
	rc = vec_push(&s->tools, e);
	if (rc == 0)
		e = NULL;
done:
	tool_free(e);
	return rc;
}

/* Registers a resource or a template in `v` (copies everything). */
static int add_res(struct vec *v, const char *uri, const char *name, const char *title,
		   const char *description, const char *mime_type, al_mcp_resource_fn fn,
		   al_mcp_complete_fn complete, void *ud)
{
	struct res_ent *e = NULL;
	int oom = 0, rc = 0;

	if (!uri || !*uri || !fn) {
		rc = -EINVAL;
		goto done;
	}
	if (find_uri(v, uri)) {
		rc = -EEXIST;
		goto done;
	}
	e = al_calloc(1, sizeof(*e));
	if (!e) {
		rc = -ENOMEM;
		goto done;
	}
	e->uri = dup_opt(uri, &oom);
	e->name = dup_opt(name ? name : uri, &oom);
	e->title = dup_opt(title, &oom);
	e->description = dup_opt(description, &oom);
	e->mime_type = dup_opt(mime_type, &oom);
	e->fn = fn;
	e->complete = complete;
	e->ud = ud;
	rc = oom ? -ENOMEM : vec_push(v, e);
	if (rc == 0)
		e = NULL;
done:
	res_free(e);
	return rc;
}

int al_mcp_server_add_resource(al_mcp_server *s, const struct al_mcp_resource *r)
{
	if (!s || !r)
		return -EINVAL;
	return add_res(&s->resources, r->uri, r->name, r->title, r->description, r->mime_type,
		       r->fn, NULL, r->ud);
}

int al_mcp_server_add_template(al_mcp_server *s, const struct al_mcp_resource_template *t)
{
	if (!s || !t)
		return -EINVAL;
	return add_res(&s->templates, t->uri_template, t->name, t->title, t->description,
		       t->mime_type, t->fn, t->complete, t->ud);
}

int al_mcp_server_add_prompt(al_mcp_server *s, const struct al_mcp_prompt *p)
{
	struct prompt_ent *e = NULL;
	int oom = 0, rc = 0;

	if (!s || !p || !p->name || !*p->name || !p->fn ||
	    (p->arguments && !json_is_array(p->arguments))) {
		rc = -EINVAL;
		goto done;
	}
	if (find_prompt(s, p->name, NULL)) {
		rc = -EEXIST;
		goto done;
	}
	e = al_calloc(1, sizeof(*e));
	if (!e) {
		rc = -ENOMEM;
		goto done;
	}
	e->name = dup_opt(p->name, &oom);
	e->title = dup_opt(p->title, &oom);
	e->description = dup_opt(p->description, &oom);
	e->arguments = ref_opt(p->arguments);
	e->fn = p->fn;
	e->complete = p->complete;
	e->ud = p->ud;
	rc = oom ? -ENOMEM : vec_push(&s->prompts, e);
	if (rc == 0)
		e = NULL;
done:
	prompt_free(e);
	return rc;
}

int al_mcp_server_remove_tool(al_mcp_server *s, const char *name)
{
	size_t i;
	struct tool_ent *t = s ? find_tool(s, name, &i) : NULL;

	if (!t)
		return -ENOENT;
	vec_remove(&s->tools, i);
	tool_free(t);
	al_mcp_server_list_changed(s, "tools");
	return 0;
}

int al_mcp_server_remove_prompt(al_mcp_server *s, const char *name)
{
	size_t i;
	struct prompt_ent *p = s ? find_prompt(s, name, &i) : NULL;

	if (!p)
		return -ENOENT;
	vec_remove(&s->prompts, i);
	prompt_free(p);
	al_mcp_server_list_changed(s, "prompts");
	return 0;
}

/* ---- calls: lifetime ---- */

static void call_free(al_mcp_call *c)
{
	json_decref(c->empty);
	json_decref(c->state);
	json_decref(c->vars);
	json_decref(c->want_uris);
	al_mcp_msg_free(&c->msg);
	al_free(c->principal);
	al_free(c);
}

static void call_hold(al_mcp_call *c)
{
	c->busy++;
}

static void call_release(al_mcp_call *c)
{
	if (--c->busy == 0 && c->finished)
		call_free(c);
}

/* A handler answered a call that was cancelled before: drop the hold kept for it. */
static void call_settle(al_mcp_call *c)
{
	if (c->owed) {
		c->owed = 0;
		call_release(c);
	}
}

/* 1 when the call waits for a reply from the client (its callback then hears of a cancel). */
static int has_pending(const al_mcp_server *s, const al_mcp_call *c)
{
	for (const struct pending *p = s->pending; p; p = p->next)
		if (p->c == c)
			return 1;
	return 0;
}

static void drop_pending(al_mcp_server *s, al_mcp_call *c, int run_cb)
{
	struct pending **pp = &s->pending;

	while (*pp) {
		struct pending *p = *pp;
		if (p->c != c) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (run_cb)
			p->cb(c, NULL, NULL, p->ud);
		al_free(p);
	}
}

/* The last word on a call: hands `msg` (stolen, may be NULL) to the transport. */
static void call_finish(al_mcp_call *c, json_t *msg, int status, const char *sid)
{
	al_mcp_server *s = c->s;

	if (c->finished) {
		json_decref(msg);
		return;
	}
	c->finished = 1;
	drop_pending(s, c, 0);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	if (c->sess) {
		c->sess->ncalls--;
		c->sess->last_ms = al_now_ms();
	}
	c->sink.finish(c->t, msg, status, sid);
	if (c->busy == 0)
		call_free(c);
}

static void reply_error(al_mcp_call *c, const al_mcp_error *err)
{
	json_t *resp = al_mcp_error_response_new(&c->msg.id, err);
	int status = err->http_status ? err->http_status : 200;

	call_finish(c, resp, resp ? status : 500, NULL);
}

static void reply_errorf(al_mcp_call *c, int code, int status, json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void reply_verrorf(al_mcp_call *c, int code, int status, json_t *data, const char *fmt,
			  va_list ap) __attribute__((format(printf, 5, 0)));

/* An error (data stolen) with a printf message, answered. */
static void reply_verrorf(al_mcp_call *c, int code, int status, json_t *data, const char *fmt,
			  va_list ap)
{
	al_mcp_error err = {0};
	char msg[sizeof(err.message)];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	al_mcp_error_set(&err, code, status, data, "%s", msg);
	reply_error(c, &err);
	al_mcp_error_clear(&err);
}

static void reply_errorf(al_mcp_call *c, int code, int status, json_t *data, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verrorf(c, code, status, data, fmt, ap);
	va_end(ap);
}

/* Answers err when it holds one (a code); clears it either way. */
static void reply_if_error(al_mcp_call *c, al_mcp_error *err)
{
	if (err->code)
		reply_error(c, err);
	al_mcp_error_clear(err);
}

/* A result built by the dispatcher or a handler: decorated for the era, sent. */
static void reply_result(al_mcp_call *c, json_t *result, int cacheable)
{
	json_t *resp = NULL;
	int rc = 0;

	if (!json_is_object(result)) {
		json_decref(result);
		reply_errorf(c, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
		return;
	}
	if (!c->legacy) {
		if (!json_object_get(result, "resultType"))
			rc |= json_object_set_new(result, "resultType", json_string("complete"));
		if (cacheable && !json_object_get(result, "ttlMs"))
			rc |= json_object_set_new(result, "ttlMs", json_integer(c->s->ttl_ms));
		if (cacheable && !json_object_get(result, "cacheScope"))
			rc |= json_object_set_new(result, "cacheScope",
						  json_string(c->s->cache_scope));
	}
	if (rc != 0) {
		json_decref(result);
		reply_errorf(c, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
		return;
	}
	resp = al_mcp_result_new(&c->msg.id, result);
	call_finish(c, resp, resp ? 200 : 500, NULL);
}

/* ---- sessions ---- */

static void session_free(struct al_mcp_session *ss)
{
	al_free(ss->version);
	al_free(ss->principal);
	json_decref(ss->caps);
	json_decref(ss->subs);
	al_free(ss);
}

static void session_stream_finish(struct al_mcp_session *ss)
{
	if (!ss->has_stream)
		return;
	ss->has_stream = 0;
	ss->stream_sink.finish(ss->stream_t, NULL, 200, NULL);
}

/* Ends a session: its calls are cancelled, its stream finished, it is freed. */
static void session_end(al_mcp_server *s, struct al_mcp_session *ss)
{
	struct al_mcp_session **pp;
	al_mcp_call *c;

	/* One at a time from the head: a cancel may finish other calls. */
	for (;;) {
		for (c = s->calls; c && c->sess != ss; c = c->next)
			;
		if (!c)
			break;
		al_mcp_call_cancel(c);
	}
	session_stream_finish(ss);
	for (pp = &s->sessions; *pp && *pp != ss; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = ss->next;
		s->nsessions--;
	}
	session_free(ss);
}

static void sessions_expire(al_mcp_server *s)
{
	int64_t now = al_now_ms();
	struct al_mcp_session *ss = s->sessions, *next;

	for (; ss; ss = next) {
		next = ss->next;
		/* An open GET stream is a client listening, not an idle one;
		 * a broken one is closed by the transport. */
		if (ss->ncalls == 0 && !ss->has_stream && now - ss->last_ms > s->session_idle_ms)
			session_end(s, ss);
	}
}

static struct al_mcp_session *session_find(al_mcp_server *s, const char *id)
{
	struct al_mcp_session *ss;

	if (!s || !id)
		return NULL;
	sessions_expire(s);
	for (ss = s->sessions; ss; ss = ss->next)
		if (strcmp(ss->id, id) == 0)
			return ss;
	return NULL;
}

/* Makes room for one more session: 0, or -EBUSY when every session is busy. */
static int sessions_make_room(al_mcp_server *s)
{
	struct al_mcp_session *ss, *lru = NULL;

	sessions_expire(s);
	if (s->nsessions < s->max_sessions)
		return 0;
	for (ss = s->sessions; ss; ss = ss->next)
		if (ss->ncalls == 0 && (!lru || ss->last_ms < lru->last_ms))
			lru = ss;
	if (!lru)
		return -EBUSY;
	session_end(s, lru);
	return 0;
}

int al_mcp_server_has_session(al_mcp_server *s, const char *session_id)
{
	return session_find(s, session_id) != NULL;
}

int al_mcp_server_end_session(al_mcp_server *s, const char *session_id)
{
	struct al_mcp_session *ss = session_find(s, session_id);

	if (!ss)
		return -ENOENT;
	session_end(s, ss);
	return 0;
}

int al_mcp_server_open_stream(al_mcp_server *s, const char *session_id,
			      const struct al_mcp_sink *sink, void *t)
{
	struct al_mcp_session *ss = session_find(s, session_id);

	if (!ss)
		return -ENOENT;
	if (ss->has_stream)
		return -EBUSY;
	ss->has_stream = 1;
	ss->stream_sink = *sink;
	ss->stream_t = t;
	ss->last_ms = al_now_ms();
	return 0;
}

void al_mcp_server_close_stream(al_mcp_server *s, const char *session_id, void *t)
{
	struct al_mcp_session *ss;

	if (!s || !session_id)
		return;
	/* No expiry sweep here: the lookup must not end other sessions from
	 * inside the transport's close. */
	for (ss = s->sessions; ss; ss = ss->next)
		if (strcmp(ss->id, session_id) == 0)
			break;
	if (ss && ss->has_stream && ss->stream_t == t) {
		ss->last_ms = al_now_ms(); /* idle from now on */
		session_stream_finish(ss);
	}
}

/* ---- notifications to listeners ---- */

/* {"_meta": {subscriptionId: the listen request's id}}, new; NULL when out of memory. */
static json_t *sub_params_new(const al_mcp_call *c)
{
	json_t *id = al_mcp_id_json(&c->msg.id);

	return id ? json_pack("{s{so}}", "_meta", AL_MCP_META_SUBSCRIPTION_ID, id) : NULL;
}

static json_t *sub_notification(const al_mcp_call *c, const char *method, const char *uri)
{
	json_t *params = sub_params_new(c);

	if (params && set_str(params, "uri", uri) < 0) {
		json_decref(params);
		params = NULL;
	}
	return params ? al_mcp_notification_new(method, params) : NULL;
}

static int listen_wants(const al_mcp_call *c, const char *kind, const char *uri)
{
	size_t i;
	json_t *v;

	if (uri) {
		json_array_foreach(c->want_uris, i, v)
		{
			if (json_is_string(v) && strcmp(json_string_value(v), uri) == 0)
				return 1;
		}
		return 0;
	}
	if (strcmp(kind, "tools") == 0)
		return c->want_tools;
	if (strcmp(kind, "prompts") == 0)
		return c->want_prompts;
	if (strcmp(kind, "resources") == 0)
		return c->want_resources;
	return 0;
}

/*
 * Sends `method` to every modern listen stream that asked for it (kind, or
 * uri for resources/updated) and to every legacy session's GET stream that
 * qualifies (every stream for list_changed, subscribers for updated).
 */
static void broadcast(al_mcp_server *s, const char *kind, const char *method, const char *uri)
{
	al_mcp_call **targets = NULL;
	size_t n = 0, i = 0;
	al_mcp_call *c;
	struct al_mcp_session *ss;
	json_t *msg;

	for (c = s->calls; c; c = c->next)
		if (c->kind == K_LISTEN && listen_wants(c, kind, uri))
			n++;
	if (n) {
		targets = al_calloc(n, sizeof(*targets));
		if (!targets)
			n = 0;
	}
	/* Held first, sent after: a send may cancel calls (the transport). */
	for (c = s->calls; c && i < n; c = c->next)
		if (c->kind == K_LISTEN && listen_wants(c, kind, uri)) {
			call_hold(c);
			targets[i++] = c;
		}
	for (i = 0; i < n; i++) {
		c = targets[i];
		if (!c->finished && !c->cancelled) {
			msg = sub_notification(c, method, uri);
			if (msg)
				c->sink.send(c->t, msg);
			json_decref(msg);
		}
		call_release(c);
	}
	al_free(targets);
	for (ss = s->sessions; ss; ss = ss->next) {
		json_t *params = NULL;
		if (!ss->has_stream)
			continue;
		if (uri && !json_object_get(ss->subs, uri))
			continue;
		if (uri) {
			params = json_object();
			if (!params || set_str(params, "uri", uri) < 0) {
				json_decref(params);
				continue;
			}
		}
		msg = al_mcp_notification_new(method, params);
		if (msg)
			ss->stream_sink.send(ss->stream_t, msg);
		json_decref(msg);
	}
}

void al_mcp_server_resource_updated(al_mcp_server *s, const char *uri)
{
	if (s && uri)
		broadcast(s, "resources", "notifications/resources/updated", uri);
}

void al_mcp_server_list_changed(al_mcp_server *s, const char *kind)
{
	char method[64];

	if (!s || !kind ||
	    (strcmp(kind, "tools") && strcmp(kind, "prompts") && strcmp(kind, "resources")))
		return;
	snprintf(method, sizeof(method), "notifications/%s/list_changed", kind);
	broadcast(s, kind, method, NULL);
}

/* The server ends a listen stream: the graceful-closure result. */
static void listen_close(al_mcp_call *c)
{
	json_t *id = c->http ? NULL : al_mcp_id_json(&c->msg.id);
	json_t *r;

	call_hold(c);
	/* On stdio, where every subscription shares the channel, the teardown
	 * is also announced with notifications/cancelled naming the listen
	 * request (basic/patterns/cancellation); over HTTP the stream ends. */
	if (id) {
		json_t *n = al_mcp_notification_new("notifications/cancelled",
						    json_pack("{soss}", "requestId", id, "reason",
							      "the server ended the subscription"));
		if (n)
			c->sink.send(c->t, n);
		json_decref(n);
	}
	r = sub_params_new(c);
	if (r)
		reply_result(c, r, 0);
	if (!c->finished)
		call_finish(c, NULL, 200, NULL);
	call_release(c);
}

/* ---- capabilities, discover, lists ---- */

static int has_completions(const al_mcp_server *s)
{
	for (size_t i = 0; i < s->prompts.n; i++)
		if (((struct prompt_ent *)s->prompts.v[i])->complete)
			return 1;
	for (size_t i = 0; i < s->templates.n; i++)
		if (((struct res_ent *)s->templates.v[i])->complete)
			return 1;
	return 0;
}

/* The capabilities the registered handlers give; legacy adds logging. */
static json_t *server_caps(const al_mcp_server *s, int legacy)
{
	json_t *caps = json_object();
	int rc = caps ? 0 : -1;

	if (rc == 0 && s->tools.n)
		rc |= json_object_set_new(caps, "tools", json_pack("{sb}", "listChanged", 1));
	if (rc == 0 && (s->resources.n || s->templates.n))
		rc |= json_object_set_new(caps, "resources",
					  json_pack("{sbsb}", "subscribe", 1, "listChanged", 1));
	if (rc == 0 && s->prompts.n)
		rc |= json_object_set_new(caps, "prompts", json_pack("{sb}", "listChanged", 1));
	if (rc == 0 && has_completions(s))
		rc |= json_object_set_new(caps, "completions", json_object());
	if (rc == 0 && legacy)
		rc |= json_object_set_new(caps, "logging", json_object());
	if (rc != 0) {
		json_decref(caps);
		caps = NULL;
	}
	return caps;
}

static json_t *server_info(const al_mcp_server *s)
{
	json_t *info = json_pack("{ssss}", "name", s->name, "version", s->version);

	if (info && set_str(info, "title", s->title) < 0) {
		json_decref(info);
		info = NULL;
	}
	return info;
}

static void do_discover(al_mcp_call *c)
{
	al_mcp_server *s = c->s;
	json_t *r = json_object(), *vers = json_array(), *meta = NULL;
	int rc = (r && vers) ? 0 : -1;

	for (size_t i = 0; rc == 0 && al_mcp_supported_versions[i]; i++)
		rc |= json_array_append_new(vers, json_string(al_mcp_supported_versions[i]));
	if (rc == 0) {
		rc |= json_object_set_new(r, "supportedVersions", vers);
		vers = NULL;
	}
	if (rc == 0)
		rc |= json_object_set_new(r, "capabilities", server_caps(s, 0));
	if (rc == 0)
		rc |= set_str(r, "instructions", s->instructions);
	if (rc == 0) {
		meta = json_object();
		rc |=
		    meta ? json_object_set_new(meta, AL_MCP_META_SERVER_INFO, server_info(s)) : -1;
	}
	if (rc == 0) {
		rc |= json_object_set_new(r, "_meta", meta);
		meta = NULL;
	}
	json_decref(vers);
	json_decref(meta);
	if (rc != 0) {
		json_decref(r);
		r = NULL;
	}
	reply_result(c, r, 1);
}

static json_t *tool_json(const struct tool_ent *t)
{
	json_t *o = json_pack("{ss}", "name", t->name);
	int rc = o ? 0 : -1;

	if (rc == 0)
		rc |= set_str(o, "title", t->title);
	if (rc == 0)
		rc |= set_str(o, "description", t->description);
	if (rc == 0)
		rc |= set_ref(o, "inputSchema", t->input_schema);
	if (rc == 0)
		rc |= set_ref(o, "outputSchema", t->output_schema);
	if (rc == 0)
		rc |= set_ref(o, "annotations", t->annotations);
	if (rc == 0)
		rc |= set_ref(o, "_meta", t->meta);
	if (rc != 0) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

static json_t *res_json(const char *ukey, const char *uri, const char *name, const char *title,
			const char *desc, const char *mime)
{
	json_t *o = json_pack("{ssss}", ukey, uri, "name", name);
	int rc = o ? 0 : -1;

	if (rc == 0)
		rc |= set_str(o, "title", title);
	if (rc == 0)
		rc |= set_str(o, "description", desc);
	if (rc == 0)
		rc |= set_str(o, "mimeType", mime);
	if (rc != 0) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

static json_t *prompt_json(const struct prompt_ent *p)
{
	json_t *o = json_pack("{ss}", "name", p->name);
	int rc = o ? 0 : -1;

	if (rc == 0)
		rc |= set_str(o, "title", p->title);
	if (rc == 0)
		rc |= set_str(o, "description", p->description);
	if (rc == 0)
		rc |= set_ref(o, "arguments", p->arguments);
	if (rc != 0) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* tools/list, resources/list, resources/templates/list, prompts/list: one
 * page, in registration order. */
static void do_list(al_mcp_call *c, const char *what)
{
	al_mcp_server *s = c->s;
	json_t *arr = json_array(), *r = NULL;
	int rc = arr ? 0 : -1;

	if (strcmp(what, "tools") == 0) {
		for (size_t i = 0; rc == 0 && i < s->tools.n; i++)
			rc |= json_array_append_new(arr, tool_json(s->tools.v[i]));
	} else if (strcmp(what, "resources") == 0) {
		for (size_t i = 0; rc == 0 && i < s->resources.n; i++) {
			struct res_ent *e = s->resources.v[i];
			rc |= json_array_append_new(arr, res_json("uri", e->uri, e->name, e->title,
								  e->description, e->mime_type));
		}
	} else if (strcmp(what, "resourceTemplates") == 0) {
		for (size_t i = 0; rc == 0 && i < s->templates.n; i++) {
			struct res_ent *e = s->templates.v[i];
			rc |= json_array_append_new(arr, res_json("uriTemplate", e->uri, e->name,
								  e->title, e->description,
								  e->mime_type));
		}
	} else {
		for (size_t i = 0; rc == 0 && i < s->prompts.n; i++)
			rc |= json_array_append_new(arr, prompt_json(s->prompts.v[i]));
	}
	if (rc == 0) {
		r = json_object();
		if (r) {
			rc = json_object_set_new(r, what, arr); /* takes arr, even on failure */
			arr = NULL;
		} else {
			rc = -1;
		}
	}
	json_decref(arr);
	if (rc != 0) {
		json_decref(r);
		r = NULL;
	}
	reply_result(c, r, 1);
}

/* ---- MRTR ---- */

static int mrtr_bind(const al_mcp_call *c, unsigned char bind[AL_MCP_STATE_BIND_LEN])
{
	return al_mcp_state_bind(c->msg.method, c->mrtr_name,
				 json_object_get(c->params, "arguments"), bind);
}

/*
 * On a modern tools/call, resources/read or prompts/get: reads inputResponses
 * and opens requestState. 0, or -EINVAL with *err set to -32602 (the caller
 * answers it).
 */
static int mrtr_open(al_mcp_call *c, al_mcp_error *err)
{
	json_t *rs = json_object_get(c->params, "requestState");
	json_t *ir = json_object_get(c->params, "inputResponses");
	unsigned char bind[AL_MCP_STATE_BIND_LEN];
	al_buf payload = {0};
	json_error_t jerr;
	const char *why = NULL;
	int rc;

	if (ir && !json_is_object(ir)) {
		why = "params.inputResponses must be an object";
		goto done;
	}
	c->input_responses = ir;
	if (!rs)
		goto done;
	if (!json_is_string(rs)) {
		why = "params.requestState must be a string";
		goto done;
	}
	rc = mrtr_bind(c, bind);
	if (rc == 0)
		rc = al_mcp_state_open(c->s->key, c->principal, bind, al_now_ms(),
				       json_string_value(rs), json_string_length(rs), &payload);
	if (rc == -ESTALE)
		why = "requestState has expired; retry the request without it";
	else if (rc == -ENOMEM || rc == -EIO)
		why = "requestState could not be opened";
	else if (rc < 0)
		why = "requestState is invalid for this request";
	else {
		c->state = json_loadb(payload.data ? payload.data : "", payload.len,
				      JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (!c->state)
			why = "requestState is invalid for this request";
	}
done:
	al_buf_wipe(&payload);
	al_buf_free(&payload);
	if (why)
		al_mcp_error_set(err, AL_MCP_INVALID_PARAMS, 200, NULL, "Invalid params: %s", why);
	return why ? -EINVAL : 0;
}

/* The client capability an input request needs, or NULL. */
static const char *input_cap(const char *method)
{
	if (!method)
		return NULL;
	if (strcmp(method, "elicitation/create") == 0)
		return "elicitation";
	if (strcmp(method, "sampling/createMessage") == 0)
		return "sampling";
	if (strcmp(method, "roots/list") == 0)
		return "roots";
	return NULL;
}

void al_mcp_call_input_required(al_mcp_call *c, json_t *input_requests, json_t *state)
{
	json_t *r = NULL, *missing = NULL, *v;
	const char *key, *m = c->msg.method;
	unsigned char bind[AL_MCP_STATE_BIND_LEN];
	al_buf tok = {0};
	char *payload = NULL;
	void *tmp;
	int rc = 0;

	if (c->finished || c->cancelled) {
		json_decref(input_requests);
		json_decref(state);
		call_settle(c);
		return;
	}
	c->in_handler = 0;
	if (c->legacy ||
	    (strcmp(m, "tools/call") && strcmp(m, "resources/read") && strcmp(m, "prompts/get"))) {
		reply_errorf(c, AL_MCP_INTERNAL_ERROR, 200, NULL,
			     "Internal error: input required is not possible on %s%s", m,
			     c->legacy ? " in a 2025-11-25 session" : "");
		goto done;
	}
	if (input_requests && !json_is_object(input_requests)) {
		reply_errorf(c, AL_MCP_INTERNAL_ERROR, 200, NULL, "Internal error");
		goto done;
	}
	/* Never ask for what the client did not declare (MRTR server rule):
	 * such requests are dropped; if nothing is left to ask, the client is
	 * told what it lacks (-32021), even with a state to return: a retry
	 * could bring nothing new, and would be asked the same again. */
	json_object_foreach_safe(input_requests, tmp, key, v)
	{
		const char *cap = input_cap(json_string_value(json_object_get(v, "method")));
		if (cap && !json_is_object(json_object_get(c->caps, cap))) {
			if (!missing)
				missing = json_object();
			if (missing)
				json_object_set_new(missing, cap, json_object());
			json_object_del(input_requests, key);
		}
	}
	if (missing && json_object_size(input_requests) == 0) {
		al_mcp_error err = {0};
		al_mcp_error_set(&err, AL_MCP_MISSING_CAPABILITY, 400,
				 json_pack("{sO}", "requiredCapabilities", missing),
				 "Missing required client capability");
		reply_error(c, &err);
		al_mcp_error_clear(&err);
		goto done;
	}
	r = json_pack("{ss}", "resultType", "input_required");
	if (!r)
		goto oom;
	if (input_requests && json_object_size(input_requests) &&
	    json_object_set(r, "inputRequests", input_requests) < 0)
		goto oom;
	/* At least one of inputRequests and requestState: a state of null is
	 * sealed when there is nothing to ask, so the retry is still bound. */
	if (state || !json_object_size(input_requests)) {
		payload = json_dumps(state ? state : json_null(),
				     JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
		if (!payload)
			goto oom;
		rc = mrtr_bind(c, bind);
		if (rc == 0)
			rc = al_mcp_state_seal(c->s->key, c->principal, bind, al_now_ms(),
					       c->s->state_ttl_ms, payload, strlen(payload), &tok);
		if (rc < 0) {
			reply_errorf(c, AL_MCP_INTERNAL_ERROR, 200, NULL,
				     "Internal error: requestState could not be sealed");
			goto done;
		}
		if (json_object_set_new(r, "requestState", json_string(tok.data)) < 0)
			goto oom;
	}
	reply_result(c, r, 0);
	r = NULL;
	goto done;
oom:
	reply_errorf(c, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
done:
	if (payload) {
		json_malloc_t mf;
		json_free_t f;
		memset(payload, 0, strlen(payload));
		json_get_alloc_funcs(&mf, &f);
		f(payload);
	}
	al_buf_wipe(&tok);
	al_buf_free(&tok);
	json_decref(r);
	json_decref(missing);
	json_decref(input_requests);
	json_decref(state);
}

json_t *al_mcp_call_input_responses(const al_mcp_call *c)
{
	return c->input_responses;
}

json_t *al_mcp_call_state(const al_mcp_call *c)
{
	return c->state;
}

/* ---- method handlers ---- */

/*
 * tools/call and prompts/get: params.name is a string naming a registered
 * `what` (found) and params.arguments an object ({} when absent). The
 * arguments, or NULL with *err set to -32602.
 */
static json_t *named_args(al_mcp_call *c, const char *name, int found, const char *what,
			  al_mcp_error *err)
{
	json_t *a = json_object_get(c->params, "arguments"), *args = NULL;

	if (!name)
		al_mcp_error_set(err, AL_MCP_INVALID_PARAMS, 200, NULL,
				 "Invalid params: params.name must be a string");
	else if (!found)
		al_mcp_error_set(err, AL_MCP_INVALID_PARAMS, 200, NULL, "Unknown %s: %s", what,
				 name);
	else if (a && !json_is_object(a))
		al_mcp_error_set(err, AL_MCP_INVALID_PARAMS, 200, NULL,
				 "Invalid params: params.arguments must be an object");
	else
		args = a ? a : c->empty;
	return args;
}

static void do_tools_call(al_mcp_call *c)
{
	const char *name = json_string_value(json_object_get(c->params, "name"));
	struct tool_ent *t = c->tool;
	al_mcp_error err = {0};
	json_t *args = named_args(c, name, t != NULL, "tool", &err);

	c->tool = NULL;
	if (!args)
		goto done;
	if (!c->legacy && t->required && al_mcp_meta_require(&c->meta, t->required, &err) < 0) {
		if (!err.code) /* -ENOMEM before the error could be built */
			al_mcp_error_set(&err, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
		goto done;
	}
	c->mrtr_name = name;
	if (!c->legacy && mrtr_open(c, &err) < 0)
		goto done;
	c->in_handler = 1;
	t->fn(c, args, t->ud);
done:
	reply_if_error(c, &err);
}

/*
 * RFC 6570 level 1 match: literal text equal, each {var} one or more
 * characters up to the next literal character, never '/'. 1 with *vars
 * filled (a new object), 0 when it does not match, -ENOMEM.
 */
static int tpl_match(const char *tpl, const char *uri, json_t **vars)
{
	json_t *v = json_object();
	const char *p = tpl, *u = uri;
	int rc = 0;

	if (!v)
		return -ENOMEM;
	while (*p) {
		if (*p == '{') {
			const char *close = strchr(p, '}'), *start = u;
			char name[64], val[1024];
			size_t nlen;
			if (!close || close == p + 1 || (size_t)(close - p - 1) >= sizeof(name))
				goto done;
			nlen = (size_t)(close - p - 1);
			memcpy(name, p + 1, nlen);
			name[nlen] = '\0';
			p = close + 1;
			while (*u && *u != '/' && (!*p || *u != *p))
				u++;
			if (u == start || (size_t)(u - start) >= sizeof(val))
				goto done;
			memcpy(val, start, (size_t)(u - start));
			val[u - start] = '\0';
			if (json_object_set_new(v, name, json_string(val)) < 0) {
				rc = -ENOMEM;
				goto done;
			}
			continue;
		}
		if (*p != *u)
			goto done;
		p++;
		u++;
	}
	if (*u == '\0') {
		rc = 1;
		*vars = v;
		v = NULL;
	}
done:
	json_decref(v);
	return rc;
}

static void do_resources_read(al_mcp_call *c)
{
	const char *uri = json_string_value(json_object_get(c->params, "uri"));
	struct res_ent *r = find_uri(&c->s->resources, uri);
	al_mcp_resource_fn fn = r ? r->fn : NULL;
	void *ud = r ? r->ud : NULL;
	al_mcp_error err = {0};

	if (!uri) {
		al_mcp_error_set(&err, AL_MCP_INVALID_PARAMS, 200, NULL,
				 "Invalid params: params.uri must be a string");
		goto done;
	}
	for (size_t i = 0; !fn && i < c->s->templates.n; i++) {
		struct res_ent *t = c->s->templates.v[i];
		int m = tpl_match(t->uri, uri, &c->vars);
		if (m < 0) {
			al_mcp_error_set(&err, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
			goto done;
		}
		if (m) {
			fn = t->fn;
			ud = t->ud;
		}
	}
	/* Unknown: -32602 with data {uri}, never an empty contents (SEP-2164). */
	if (!fn) {
		al_mcp_error_set(&err, AL_MCP_INVALID_PARAMS, 200, json_pack("{ss}", "uri", uri),
				 "Resource not found: %s", uri);
		goto done;
	}
	c->kind = K_READ;
	c->mrtr_name = uri;
	if (!c->legacy && mrtr_open(c, &err) < 0)
		goto done;
	c->in_handler = 1;
	fn(c, uri, c->vars, ud);
done:
	reply_if_error(c, &err);
}

static void do_prompts_get(al_mcp_call *c)
{
	const char *name = json_string_value(json_object_get(c->params, "name"));
	struct prompt_ent *p = find_prompt(c->s, name, NULL);
	al_mcp_error err = {0};
	json_t *args = named_args(c, name, p != NULL, "prompt", &err);

	if (!args)
		goto done;
	c->mrtr_name = name;
	if (!c->legacy && mrtr_open(c, &err) < 0)
		goto done;
	c->in_handler = 1;
	p->fn(c, args, p->ud);
done:
	reply_if_error(c, &err);
}

static void do_complete(al_mcp_call *c)
{
	json_t *ref = json_object_get(c->params, "ref");
	json_t *arg = json_object_get(c->params, "argument");
	const char *type = json_string_value(json_object_get(ref, "type"));
	const char *aname = json_string_value(json_object_get(arg, "name"));
	const char *value = json_string_value(json_object_get(arg, "value"));
	const char *rname = json_string_value(json_object_get(ref, "name"));
	const char *ruri = json_string_value(json_object_get(ref, "uri"));
	json_t *ctx = json_object_get(json_object_get(c->params, "context"), "arguments");
	struct prompt_ent *p = NULL;
	struct res_ent *t = NULL;
	al_mcp_complete_fn fn = NULL;
	void *ud = NULL;
	json_t *vals = NULL, *out = NULL, *r = NULL, *v;
	al_mcp_error err = {0};
	size_t total = 0, i;

	if (!type || !aname) {
		al_mcp_error_set(&err, AL_MCP_INVALID_PARAMS, 200, NULL,
				 "Invalid params: ref.type and argument.name are required");
		goto done;
	}
	if (strcmp(type, "ref/prompt") == 0 && (p = find_prompt(c->s, rname, NULL))) {
		fn = p->complete;
		ud = p->ud;
	} else if (strcmp(type, "ref/resource") == 0 && (t = find_uri(&c->s->templates, ruri))) {
		fn = t->complete;
		ud = t->ud;
	} else {
		al_mcp_error_set(&err, AL_MCP_INVALID_PARAMS, 200, NULL,
				 "Invalid params: no prompt or resource template for this ref");
		goto done;
	}
	if (fn)
		vals = fn(aname, value ? value : "", json_is_object(ctx) ? ctx : NULL, ud);
	out = json_array();
	if (!out)
		goto oom;
	json_array_foreach(vals, i, v)
	{
		if (!json_is_string(v))
			continue;
		if (total++ < MAX_COMPLETION_VALUES && json_array_append(out, v) < 0)
			goto oom;
	}
	r = json_pack("{s{sOsIsb}}", "completion", "values", out, "total", (json_int_t)total,
		      "hasMore", total > MAX_COMPLETION_VALUES);
	if (!r)
		goto oom;
	reply_result(c, r, 0);
	r = NULL;
	goto done;
oom:
	al_mcp_error_set(&err, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
done:
	reply_if_error(c, &err);
	json_decref(vals);
	json_decref(out);
	json_decref(r);
}

static void do_listen(al_mcp_call *c)
{
	json_t *f = json_object_get(c->params, "notifications");
	json_t *uris = json_object_get(f, "resourceSubscriptions");
	json_t *ack = json_object(), *v, *params, *msg = NULL;
	int has_res = c->s->resources.n || c->s->templates.n;
	al_mcp_error err = {0};
	size_t i;
	int rc = ack ? 0 : -1;

	if (f && !json_is_object(f)) {
		al_mcp_error_set(&err, AL_MCP_INVALID_PARAMS, 200, NULL,
				 "Invalid params: params.notifications must be an object");
		goto done;
	}
	/* Only what the server can deliver is acknowledged, and only that is sent. */
	c->want_tools = json_is_true(json_object_get(f, "toolsListChanged")) && c->s->tools.n;
	c->want_prompts = json_is_true(json_object_get(f, "promptsListChanged")) && c->s->prompts.n;
	c->want_resources = json_is_true(json_object_get(f, "resourcesListChanged")) && has_res;
	if (rc == 0 && c->want_tools)
		rc |= json_object_set_new(ack, "toolsListChanged", json_true());
	if (rc == 0 && c->want_prompts)
		rc |= json_object_set_new(ack, "promptsListChanged", json_true());
	if (rc == 0 && c->want_resources)
		rc |= json_object_set_new(ack, "resourcesListChanged", json_true());
	if (rc == 0 && json_is_array(uris) && has_res) {
		c->want_uris = json_array();
		rc |= c->want_uris ? 0 : -1;
		json_array_foreach(uris, i, v)
		{
			if (rc == 0 && json_is_string(v))
				rc |= json_array_append(c->want_uris, v);
		}
		if (rc == 0)
			rc |= json_object_set(ack, "resourceSubscriptions", c->want_uris);
	}
	if (rc == 0) {
		msg = sub_notification(c, "notifications/subscriptions/acknowledged", NULL);
		params = msg ? json_object_get(msg, "params") : NULL;
		rc |= params ? json_object_set(params, "notifications", ack) : -1;
	}
	if (rc != 0) {
		al_mcp_error_set(&err, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
		goto done;
	}
	c->kind = K_LISTEN;
	/* The call stays open; a failed send is the transport's to cancel. */
	c->sink.send(c->t, msg);
done:
	reply_if_error(c, &err);
	json_decref(ack);
	json_decref(msg);
}

/* ---- legacy-only methods ---- */

static void do_initialize(al_mcp_server *s, al_mcp_call *c)
{
	const char *pv = json_string_value(json_object_get(c->params, "protocolVersion"));
	json_t *caps = json_object_get(c->params, "capabilities");
	struct al_mcp_session *ss = NULL;
	unsigned char raw[SESSION_ID_BYTES];
	json_t *r = NULL, *resp;
	int rc;

	if (!pv || (caps && !json_is_object(caps))) {
		reply_errorf(c, AL_MCP_INVALID_PARAMS, 400, NULL,
			     "Invalid params: initialize needs protocolVersion and capabilities");
		return;
	}
	rc = sessions_make_room(s);
	if (rc < 0) {
		reply_errorf(c, AL_MCP_INTERNAL_ERROR, 503, NULL,
			     "Too many sessions; try again later");
		return;
	}
	ss = al_calloc(1, sizeof(*ss));
	if (!ss || al_random_bytes(raw, sizeof(raw)) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(ss->id + 2 * i, 3, "%02x", raw[i]);
	/* We speak one legacy revision; a client asking another gets ours and
	 * decides whether it can continue. */
	ss->version = al_strdup(AL_MCP_VERSION_2025);
	ss->caps = caps ? json_incref(caps) : json_object();
	ss->subs = json_object();
	ss->log_level = AL_MCP_LOG_UNSET;
	ss->last_ms = al_now_ms();
	if (c->principal)
		ss->principal = al_strdup(c->principal);
	if (!ss->version || !ss->caps || !ss->subs || (c->principal && !ss->principal))
		goto fail;
	r = json_pack("{sssosO}", "protocolVersion", ss->version, "capabilities", server_caps(s, 1),
		      "serverInfo", json_null());
	if (!r || json_object_set_new(r, "serverInfo", server_info(s)) < 0 ||
	    set_str(r, "instructions", s->instructions) < 0)
		goto fail;
	resp = al_mcp_result_new(&c->msg.id, r);
	r = NULL;
	if (!resp)
		goto fail;
	ss->next = s->sessions;
	s->sessions = ss;
	s->nsessions++;
	call_finish(c, resp, 200, ss->id);
	return;
fail:
	json_decref(r);
	if (ss)
		session_free(ss);
	reply_errorf(c, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
}

static void do_set_level(al_mcp_call *c)
{
	int lv = al_mcp_log_level_parse(json_string_value(json_object_get(c->params, "level")));

	if (lv >= 0)
		c->sess->log_level = lv;
	if (lv >= 0)
		reply_result(c, json_object(), 0);
	else
		reply_errorf(c, AL_MCP_INVALID_PARAMS, 200, NULL,
			     "Invalid params: level must be a LoggingLevel");
}

static void do_subscribe(al_mcp_call *c, int on)
{
	const char *uri = json_string_value(json_object_get(c->params, "uri"));
	int rc = 0;

	if (uri && on)
		rc = json_object_set_new(c->sess->subs, uri, json_true());
	else if (uri)
		json_object_del(c->sess->subs, uri);
	if (!uri)
		reply_errorf(c, AL_MCP_INVALID_PARAMS, 200, NULL,
			     "Invalid params: params.uri must be a string");
	else if (rc < 0)
		reply_errorf(c, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
	else
		reply_result(c, json_object(), 0);
}

/* ---- dispatch ---- */

static int method_is(const al_mcp_call *c, const char *m)
{
	return strcmp(c->msg.method, m) == 0;
}

static void dispatch_common(al_mcp_call *c)
{
	if (method_is(c, "tools/list"))
		do_list(c, "tools");
	else if (method_is(c, "tools/call"))
		do_tools_call(c);
	else if (method_is(c, "resources/list"))
		do_list(c, "resources");
	else if (method_is(c, "resources/templates/list"))
		do_list(c, "resourceTemplates");
	else if (method_is(c, "resources/read"))
		do_resources_read(c);
	else if (method_is(c, "prompts/list"))
		do_list(c, "prompts");
	else if (method_is(c, "prompts/get"))
		do_prompts_get(c);
	else if (method_is(c, "completion/complete"))
		do_complete(c);
	else if (!c->legacy && method_is(c, "server/discover"))
		do_discover(c);
	else if (!c->legacy && method_is(c, "subscriptions/listen"))
		do_listen(c);
	else if (c->legacy && method_is(c, "ping"))
		reply_result(c, json_object(), 0);
	else if (c->legacy && method_is(c, "logging/setLevel"))
		do_set_level(c);
	else if (c->legacy && method_is(c, "resources/subscribe"))
		do_subscribe(c, 1);
	else if (c->legacy && method_is(c, "resources/unsubscribe"))
		do_subscribe(c, 0);
	else if (c->legacy && method_is(c, "initialize"))
		reply_errorf(c, AL_MCP_INVALID_REQUEST, 400, NULL,
			     "Invalid Request: the session is already initialized");
	else
		reply_errorf(c, AL_MCP_METHOD_NOT_FOUND, 404, NULL, "Method not found: %s",
			     c->msg.method);
}

/* Modern request: steps 2-5 of the check order (docs/MCP.md), then the handler. */
static void dispatch_modern(al_mcp_call *c, const struct al_mcp_inbound *in)
{
	al_mcp_error err = {0};
	const al_mcp_param_headers *ph = NULL;
	int rc;

	rc = al_mcp_meta_parse(c->msg.params, &c->meta, &err);
	if (rc == 0 && in->http) {
		if (c->tool)
			ph = &c->tool->ph;
		rc = al_mcp_hdr_check(in->headers, in->nheaders, &c->msg, c->meta.protocol_version,
				      ph, &err);
	}
	if (rc == 0)
		rc = al_mcp_meta_check_version(c->meta.protocol_version, al_mcp_modern_versions,
					       al_mcp_supported_versions, &err);
	if (rc < 0) {
		if (!err.code)
			al_mcp_error_set(&err, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
		reply_error(c, &err);
		al_mcp_error_clear(&err);
		return;
	}
	c->version = c->meta.protocol_version;
	c->caps = c->meta.client_capabilities;
	c->log_level = c->meta.log_level;
	c->progress_token = c->meta.progress_token;
	dispatch_common(c);
}

/* Finds a call in flight by request id (and session, for legacy). */
static al_mcp_call *find_call(al_mcp_server *s, const al_mcp_id *id,
			      const struct al_mcp_session *ss)
{
	for (al_mcp_call *c = s->calls; c; c = c->next)
		if (!c->cancelled && c->sess == ss && (ss || !c->http) &&
		    al_mcp_id_equal(&c->msg.id, id))
			return c;
	return NULL;
}

static void cancel_by_params(al_mcp_server *s, const json_t *params,
			     const struct al_mcp_session *ss)
{
	json_t *rid = json_object_get(params, "requestId");
	al_mcp_id id = {0};
	al_mcp_call *c;

	if (json_is_integer(rid)) {
		id.kind = AL_MCP_ID_INT;
		id.num = json_integer_value(rid);
	} else if (json_is_string(rid)) {
		id.kind = AL_MCP_ID_STR;
		id.str = json_string_value(rid);
	} else {
		return;
	}
	c = find_call(s, &id, ss);
	if (c)
		al_mcp_call_cancel(c);
}

/* A client's response to a legacy server-to-client request. */
static void route_response(al_mcp_server *s, const al_mcp_msg *m, struct al_mcp_session *ss)
{
	struct pending **pp, *p = NULL;
	al_mcp_error err = {0};

	if (m->id.kind != AL_MCP_ID_STR)
		return;
	for (pp = &s->pending; *pp; pp = &(*pp)->next)
		if ((*pp)->c->sess == ss && strcmp((*pp)->id, m->id.str) == 0) {
			p = *pp;
			*pp = p->next;
			break;
		}
	if (!p)
		return;
	call_hold(p->c);
	if (m->kind == AL_MCP_RESULT) {
		p->cb(p->c, m->result, NULL, p->ud);
	} else {
		al_mcp_error_set(&err, m->err_code, 200,
				 m->err_data ? json_incref(m->err_data) : NULL, "%s",
				 m->err_message ? m->err_message : "");
		p->cb(p->c, NULL, &err, p->ud);
		al_mcp_error_clear(&err);
	}
	call_release(p->c);
	al_free(p);
}

static int same_principal(const char *a, const char *b)
{
	if (!a || !b)
		return !a && !b;
	return strcmp(a, b) == 0;
}

static void finish_raw_error(const struct al_mcp_sink *sink, void *t, const al_mcp_id *id,
			     const al_mcp_error *err)
{
	json_t *resp = al_mcp_error_response_new(id, err);

	sink->finish(t, resp, resp ? (err->http_status ? err->http_status : 400) : 500, NULL);
}

int al_mcp_server_handle(al_mcp_server *s, const struct al_mcp_inbound *in,
			 const struct al_mcp_sink *sink, void *t, al_mcp_call **out)
{
	al_mcp_call *c = NULL;
	al_mcp_msg m = {0};
	al_mcp_error err = {0};
	struct al_mcp_session *ss = NULL;
	json_t *meta;
	int rc = 0, legacy;

	if (out)
		*out = NULL;
	if (al_mcp_msg_parse(in->body, in->len, &m, &err) < 0) {
		finish_raw_error(sink, t, &m.id, &err);
		goto done;
	}
	meta = json_object_get(m.params, "_meta");
	/* initialize selects the legacy era unless it carries the modern _meta
	 * (a legacy client may still send _meta, e.g. a progressToken). */
	legacy = in->session_id != NULL || (m.method && strcmp(m.method, "initialize") == 0 &&
					    !json_object_get(meta, AL_MCP_META_PROTOCOL_VERSION));
	if (in->session_id) {
		ss = session_find(s, in->session_id);
		/* A session belongs to the principal that opened it: another
		 * caller presenting its id is told it does not exist. */
		if (ss && !same_principal(ss->principal, in->principal))
			ss = NULL;
		if (!ss) {
			/* Only a request's id is echoed: a client's response
			 * carries an id of ours ("srv-1"), which an error must
			 * not answer as if the client had asked it. */
			al_mcp_error_set(&err, AL_MCP_INVALID_REQUEST, 404, NULL,
					 "Session not found or expired");
			finish_raw_error(sink, t, m.kind == AL_MCP_REQUEST ? &m.id : NULL, &err);
			goto done;
		}
		ss->last_ms = al_now_ms();
	}
	if (m.kind == AL_MCP_RESULT || m.kind == AL_MCP_ERROR_RESPONSE) {
		if (ss)
			route_response(s, &m, ss);
		sink->finish(t, NULL, 202, NULL);
		goto done;
	}
	if (m.kind == AL_MCP_NOTIFICATION) {
		if (strcmp(m.method, "notifications/cancelled") == 0 && (ss || !in->http))
			cancel_by_params(s, m.params, ss);
		if (!legacy && in->http && strcmp(m.method, "notifications/initialized") == 0) {
			al_mcp_error_set(&err, AL_MCP_METHOD_NOT_FOUND, 404, NULL,
					 "Method not found: %s", m.method);
			finish_raw_error(sink, t, NULL, &err);
			goto done;
		}
		sink->finish(t, NULL, 202, NULL);
		goto done;
	}
	c = al_calloc(1, sizeof(*c));
	if (!c) {
		rc = -ENOMEM;
		goto done;
	}
	c->s = s;
	c->sink = *sink;
	c->t = t;
	c->msg = m;
	memset(&m, 0, sizeof(m));
	c->legacy = legacy;
	c->http = in->http;
	c->sess = ss;
	c->log_level = AL_MCP_LOG_UNSET;
	c->empty = json_object();
	c->params = c->msg.params ? c->msg.params : c->empty;
	if (in->principal)
		c->principal = al_strdup(in->principal);
	if (!c->empty || !c->params || (in->principal && !c->principal)) {
		call_free(c);
		rc = -ENOMEM;
		goto done;
	}
	if (method_is(c, "tools/call"))
		c->tool = find_tool(s, json_string_value(json_object_get(c->params, "name")), NULL);
	/* In flight from here on: every path below ends in call_finish. */
	c->next = s->calls;
	if (s->calls)
		s->calls->prev = c;
	s->calls = c;
	if (ss)
		ss->ncalls++;
	call_hold(c);
	if (!legacy) {
		dispatch_modern(c, in);
	} else if (!ss) {
		c->version = AL_MCP_VERSION_2025;
		c->caps = c->empty;
		do_initialize(s, c);
	} else {
		json_t *pt = json_object_get(json_object_get(c->params, "_meta"), "progressToken");
		c->version = ss->version;
		c->caps = ss->caps;
		c->log_level = ss->log_level;
		if (json_is_string(pt) || json_is_integer(pt))
			c->progress_token = pt;
		dispatch_common(c);
	}
	if (out && !c->finished)
		*out = c;
	call_release(c);
done:
	al_mcp_error_clear(&err);
	al_mcp_msg_free(&m);
	return rc;
}

void al_mcp_call_cancel(al_mcp_call *c)
{
	if (!c || c->finished || c->cancelled)
		return;
	c->cancelled = 1;
	call_hold(c);
	/*
	 * A handler that answers later either registered on_cancel (and
	 * forgets the call there: it is freed below) or did not, and will
	 * still answer: then the call must outlive the cancel until that
	 * answer, or the handler would write into freed memory.
	 */
	if (c->in_handler && !c->on_cancel && !has_pending(c->s, c)) {
		c->owed = 1;
		call_hold(c);
	}
	if (c->on_cancel)
		c->on_cancel(c, c->on_cancel_ud);
	c->on_cancel = NULL;
	drop_pending(c->s, c, 1);
	call_finish(c, NULL, 200, NULL);
	call_release(c);
}

/* ---- inside a handler ---- */

json_t *al_mcp_call_params(const al_mcp_call *c)
{
	return c->params;
}

const char *al_mcp_call_method(const al_mcp_call *c)
{
	return c->msg.method;
}

int al_mcp_call_legacy(const al_mcp_call *c)
{
	return c->legacy;
}

const char *al_mcp_call_version(const al_mcp_call *c)
{
	return c->version ? c->version : AL_MCP_VERSION_2026;
}

json_t *al_mcp_call_client_capabilities(const al_mcp_call *c)
{
	return c->caps ? c->caps : c->empty;
}

const char *al_mcp_call_principal(const al_mcp_call *c)
{
	return c->principal;
}

int al_mcp_call_cancelled(const al_mcp_call *c)
{
	return c->cancelled;
}

void al_mcp_call_on_cancel(al_mcp_call *c, void (*cb)(al_mcp_call *c, void *ud), void *ud)
{
	c->on_cancel = cb;
	c->on_cancel_ud = ud;
}

static int call_send(al_mcp_call *c, json_t *msg)
{
	int rc;

	if (!msg)
		return -ENOMEM;
	if (c->finished || c->cancelled) {
		json_decref(msg);
		return -EPIPE;
	}
	rc = c->sink.send(c->t, msg);
	json_decref(msg);
	return rc;
}

int al_mcp_call_progress(al_mcp_call *c, double progress, double total, const char *message)
{
	json_t *p;

	if (!c->progress_token)
		return 0;
	p = json_pack("{sOsf}", "progressToken", c->progress_token, "progress", progress);
	if (p && total >= 0 && json_object_set_new(p, "total", json_real(total)) < 0)
		goto fail;
	if (p && set_str(p, "message", message) < 0)
		goto fail;
	if (!p)
		return -ENOMEM;
	return call_send(c, al_mcp_notification_new("notifications/progress", p));
fail:
	json_decref(p);
	return -ENOMEM;
}

int al_mcp_call_log(al_mcp_call *c, int level, const char *logger, json_t *data)
{
	const char *name = al_mcp_log_level_name(level);
	json_t *p = NULL;

	if (c->sess)
		c->log_level = c->sess->log_level; /* a setLevel may have come since */
	if (!name || c->log_level == AL_MCP_LOG_UNSET || level < c->log_level) {
		json_decref(data);
		return 0;
	}
	p = json_pack("{ssso}", "level", name, "data", data ? data : json_null());
	if (!p)
		return -ENOMEM;
	if (set_str(p, "logger", logger) < 0) {
		json_decref(p);
		return -ENOMEM;
	}
	return call_send(c, al_mcp_notification_new("notifications/message", p));
}

int al_mcp_call_notify(al_mcp_call *c, const char *method, json_t *params)
{
	if (!method) {
		json_decref(params);
		return -EINVAL;
	}
	return call_send(c, al_mcp_notification_new(method, params));
}

void al_mcp_call_result(al_mcp_call *c, json_t *result)
{
	if (c->finished || c->cancelled) {
		json_decref(result);
		call_settle(c);
		return;
	}
	c->in_handler = 0;
	reply_result(c, result, c->kind == K_READ);
}

void al_mcp_call_error(al_mcp_call *c, const al_mcp_error *err)
{
	if (c->finished || c->cancelled) {
		call_settle(c);
		return;
	}
	c->in_handler = 0;
	reply_error(c, err);
}

void al_mcp_call_errorf(al_mcp_call *c, int code, const char *fmt, ...)
{
	va_list ap;

	if (c->finished || c->cancelled) {
		call_settle(c);
		return;
	}
	c->in_handler = 0;
	va_start(ap, fmt);
	reply_verrorf(c, code, 200, NULL, fmt, ap);
	va_end(ap);
}

int al_mcp_call_request(al_mcp_call *c, const char *method, json_t *params, al_mcp_reply_fn cb,
			void *ud)
{
	struct pending *p = NULL;
	al_mcp_id id = {0};
	json_t *msg = NULL;
	int rc = 0;

	if (!c->legacy) {
		rc = -ENOTSUP;
		goto done;
	}
	if (!method || !cb) {
		rc = -EINVAL;
		goto done;
	}
	if (c->finished || c->cancelled) {
		rc = -EPIPE;
		goto done;
	}
	p = al_calloc(1, sizeof(*p));
	if (!p) {
		rc = -ENOMEM;
		goto done;
	}
	snprintf(p->id, sizeof(p->id), "srv-%llu", ++c->s->next_req);
	id.kind = AL_MCP_ID_STR;
	id.str = p->id;
	msg = al_mcp_request_new(&id, method, params);
	params = NULL;
	if (!msg) {
		rc = -ENOMEM;
		goto done;
	}
	p->c = c;
	p->cb = cb;
	p->ud = ud;
	/* Registered before the send: a client may answer before send returns. */
	p->next = c->s->pending;
	c->s->pending = p;
	rc = c->sink.send(c->t, msg);
	if (rc < 0) {
		struct pending **pp;
		for (pp = &c->s->pending; *pp && *pp != p; pp = &(*pp)->next)
			;
		if (*pp) {
			*pp = p->next;
			al_free(p);
		}
	}
	p = NULL;
done:
	al_free(p);
	json_decref(params);
	json_decref(msg);
	return rc;
}
