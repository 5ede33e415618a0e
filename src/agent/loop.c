/*
 * loop.c - the agent loop (see loop.h for the event protocol).
 *
 * Shape of one step for a session:
 *
 *   step() --store--> loaded_cb(): analyse the log, decide
 *                       |-- NONE: done
 *                       |-- status/idle events: bus append --> appended_cb() --> step()
 *                       `-- START/CALL: append [running?] span.model_request_start
 *                             --> start_appended_cb() --store--> request_loaded_cb():
 *                                 build the request from the events BEFORE the span
 *                                 start, compact it, call the provider --> step()
 *   provider done --> model_done_cb(): append the response + span end --> step()
 *
 * A session's steps never overlap (busy/dirty), and a response that arrives
 * during a step waits in `stash` until the step ends, so every append is
 * decided on the log as it stands.
 */
#include "agent/loop.h"

#include "agent/context.h"
#include "agent/mcp_tools.h"
#include "agent/permissions.h"
#include "agent/provider.h"
#include "agent/transcript.h"
#include "api/work.h"
#include "core/alloc.h"
#include "core/log.h"
#include "mcp/client.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct stash {
	int ok;
	json_t *message; /* owned: the response */
	char error_type[64];
	char error_message[256];
};

/* One MCP server of a session's agent (docs/CONTROL-PLANE-MCP.md). */
struct mcp_conn {
	struct sess *s;
	char name[256];
	al_mcp_client *c; /* owned; NULL when it could not be created */
	int ok;		  /* tools listed: calls may go to it */
};

/* An agent.mcp_tool_use this process is calling, or whose result it is recording. */
struct mcp_call {
	struct mcp_call *next;
	struct sess *s;
	char id[AL_ID_MAX]; /* the agent.mcp_tool_use event */
	al_mcp_op *op;	    /* while the server has it */
};

enum { MCP_NONE, MCP_PREPARING, MCP_READY };

struct sess {
	struct sess *next;
	struct al_agent *ag;
	char id[AL_ID_MAX];
	int busy;      /* a step is running */
	int dirty;     /* something happened during the step: step again after it */
	int work_lost; /* al_agent_on_work_lost was called: emit rescheduled */
	int calling;   /* a provider call is in flight */
	al_model_call *call;
	char call_start_id[AL_ID_MAX]; /* the span.model_request_start of that call */
	json_t *call_agent;	       /* owned: agent snapshot the call was made with */
	int64_t call_estimate;	       /* raw token estimate of the request */
	double scale;		       /* calibration: actual/estimated input tokens */
	struct stash *stash;	       /* response waiting for the step to end */
	/* MCP: the agent's servers, connected once per turn's first model call */
	int mcp_state;
	unsigned mcp_waiting;	/* servers still listing */
	struct mcp_conn *conns; /* owned array of nconns */
	size_t nconns;
	json_t *mcp_tools;  /* owned: the agent's `tools` the servers were chosen with */
	json_t *mcp_defs;   /* owned: Messages API definitions of the offered tools */
	json_t *mcp_map;    /* owned: model name -> {server, tool}; reserved names null */
	json_t *mcp_errors; /* owned: session.error events to record once ready */
	struct mcp_call *mcalls;
	/* restart: the last event at start-up; MCP calls runnable then are orphans */
	char boundary[AL_ID_MAX];
	json_t *orphans; /* owned: ids, computed on the first step after start-up */
};

/*
 * The parsed event log of one session, a prefix of the stored log: the log
 * is append-only, so a prefix never goes stale, and each step loads only
 * the events after last_id. The store stays the source of truth: an evicted
 * (or, after a restart, absent) cache is rebuilt by one full load.
 */
struct cache {
	struct cache *hnext;	   /* hash chain */
	struct cache *prev, *next; /* LRU list, most recently used first */
	char id[AL_ID_MAX];
	char last_id[AL_ID_MAX]; /* the last event in `events`, "" when none */
	json_t *events;		 /* owned reference: array of parsed events */
	size_t bytes;		 /* estimate of the memory `events` holds */
};

#define CACHE_BUCKETS	    1024
#define CACHE_EVENT_COST    256 /* per event: jansson objects beyond the JSON text */
#define CACHE_DEFAULT_BYTES (64u << 20)

struct al_agent {
	al_api *api;
	struct sess *sessions;
	int stopping;
	int freed;
	unsigned pending; /* store jobs and bus appends whose callbacks have not fired */
	struct cache *ctab[CACHE_BUCKETS];
	struct cache *lru_head, *lru_tail;
	struct al_agent_cache_stats cstats;
	al_http_client *http; /* owned: for MCP servers; created on first use */
};

static void step(struct sess *s);
static void cache_drop(struct al_agent *ag, struct cache *c);

/* ---- memory ---- */

static struct sess *sess_get(struct al_agent *ag, const char *id)
{
	struct sess *s;

	for (s = ag->sessions; s != NULL; s = s->next)
		if (strcmp(s->id, id) == 0)
			return s;
	s = al_calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->ag = ag;
	s->scale = 1.0;
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->next = ag->sessions;
	ag->sessions = s;
	return s;
}

static void stash_free(struct stash *st);

/* Frees the session's MCP clients (their requests are cancelled: no callback fires). */
static void mcp_release(struct sess *s)
{
	struct mcp_call *mc, *next;

	for (size_t i = 0; i < s->nconns; i++)
		al_mcp_client_free(s->conns[i].c);
	al_free(s->conns);
	s->conns = NULL;
	s->nconns = 0;
	s->mcp_waiting = 0;
	s->mcp_state = MCP_NONE;
	json_decref(s->mcp_tools);
	json_decref(s->mcp_defs);
	json_decref(s->mcp_map);
	json_decref(s->mcp_errors);
	s->mcp_tools = s->mcp_defs = s->mcp_map = s->mcp_errors = NULL;
	for (mc = s->mcalls; mc != NULL; mc = next) {
		next = mc->next;
		al_free(mc);
	}
	s->mcalls = NULL;
}

static void sess_drop(struct sess *s)
{
	struct sess **pp = &s->ag->sessions;

	while (*pp != NULL && *pp != s)
		pp = &(*pp)->next;
	if (*pp == s)
		*pp = s->next;
	json_decref(s->call_agent);
	stash_free(s->stash);
	mcp_release(s);
	json_decref(s->orphans);
	al_free(s);
}

static void stash_free(struct stash *st)
{
	if (st == NULL)
		return;
	json_decref(st->message);
	al_free(st);
}

static void agent_destroy(struct al_agent *ag)
{
	struct sess *s = ag->sessions, *next;

	while (ag->lru_head != NULL)
		cache_drop(ag, ag->lru_head);

	for (; s != NULL; s = next) {
		next = s->next;
		json_decref(s->call_agent);
		stash_free(s->stash);
		mcp_release(s);
		json_decref(s->orphans);
		al_free(s);
	}
	al_free(ag);
}

/* A callback fired: returns 1 when the agent is gone and the caller must only clean up. */
static int release(struct al_agent *ag)
{
	ag->pending--;
	if (ag->freed) {
		if (ag->pending == 0)
			agent_destroy(ag);
		return 1;
	}
	return 0;
}

/* ---- the per-session event cache ---- */

static size_t cache_bucket(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h % CACHE_BUCKETS;
}

static struct cache *cache_find(struct al_agent *ag, const char *id)
{
	struct cache *c;

	for (c = ag->ctab[cache_bucket(id)]; c != NULL; c = c->hnext)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

static void lru_unlink(struct al_agent *ag, struct cache *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		ag->lru_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		ag->lru_tail = c->prev;
	c->prev = c->next = NULL;
}

static void lru_push_front(struct al_agent *ag, struct cache *c)
{
	c->prev = NULL;
	c->next = ag->lru_head;
	if (ag->lru_head)
		ag->lru_head->prev = c;
	ag->lru_head = c;
	if (ag->lru_tail == NULL)
		ag->lru_tail = c;
}

static void cache_drop(struct al_agent *ag, struct cache *c)
{
	struct cache **pp = &ag->ctab[cache_bucket(c->id)];

	while (*pp != NULL && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp == c)
		*pp = c->hnext;
	lru_unlink(ag, c);
	ag->cstats.entries--;
	ag->cstats.bytes -= c->bytes;
	json_decref(c->events);
	al_free(c);
}

static void cache_drop_id(struct al_agent *ag, const char *id)
{
	struct cache *c = cache_find(ag, id);

	if (c != NULL)
		cache_drop(ag, c);
}

static size_t cache_budget(const struct al_agent *ag)
{
	return ag->api->cfg.agent_cache_bytes ? ag->api->cfg.agent_cache_bytes
					      : CACHE_DEFAULT_BYTES;
}

/*
 * Makes `events` (a reference is taken) the cache of session id, ending at
 * last_id, then evicts least recently used caches past the budget. The entry
 * just stored is never evicted here even when it alone exceeds the budget:
 * it is about to be used, and the next store of another session evicts it.
 * Out of memory only loses the cache (the next step loads in full).
 */
static void cache_store(struct al_agent *ag, const char *id, json_t *events, const char *last_id,
			size_t bytes)
{
	struct cache *c = cache_find(ag, id);

	if (c == NULL) {
		c = al_calloc(1, sizeof(*c));
		if (c == NULL)
			return;
		snprintf(c->id, sizeof(c->id), "%s", id);
		c->hnext = ag->ctab[cache_bucket(id)];
		ag->ctab[cache_bucket(id)] = c;
		ag->cstats.entries++;
	} else {
		lru_unlink(ag, c);
	}
	lru_push_front(ag, c);
	if (c->events != events) {
		json_decref(c->events);
		c->events = json_incref(events);
	}
	snprintf(c->last_id, sizeof(c->last_id), "%s", last_id);
	ag->cstats.bytes += bytes - c->bytes;
	c->bytes = bytes;
	while (ag->cstats.bytes > cache_budget(ag) && ag->lru_tail != NULL && ag->lru_tail != c) {
		cache_drop(ag, ag->lru_tail);
		ag->cstats.evictions++;
	}
}

void al_agent_cache_stats(const struct al_agent *ag, struct al_agent_cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (ag != NULL)
		*out = ag->cstats;
}

/* ---- loading a session ---- */

struct load {
	struct sess *s;
	char id[AL_ID_MAX];
	char after_id[AL_ID_MAX]; /* "": a full load */
	json_t *prefix;		  /* owned reference: the cached events up to after_id */
	size_t prefix_bytes;
	int full; /* store thread: after_id had vanished, the whole log was read */
	struct al_doc doc;
	struct al_event *evs;
	size_t n;
	void (*then)(struct sess *s, int rc, json_t *body, json_t *events, void *ud);
	void *ud;
};

/* Store thread: the session document and the events after the cached prefix. */
static int load_fn(al_store_tx *tx, void *ud)
{
	struct load *l = ud;
	struct al_event_query q = {.session_id = l->id};
	int has_more = 0, rc;

	rc = al_store_doc_get(tx, "session", l->id, &l->doc);
	if (rc < 0)
		return rc;
	l->full = l->after_id[0] == '\0';
	if (!l->full) {
		q.after_id = l->after_id;
		rc = al_store_event_list(tx, &q, &l->evs, &l->n, &has_more);
		if (rc != -ENOENT)
			return rc;
		/* The cached prefix is not in the log any more: read it all. */
		q.after_id = NULL;
		l->full = 1;
	}
	return al_store_event_list(tx, &q, &l->evs, &l->n, &has_more);
}

static void load_done(int rc, void *ud)
{
	struct load *l = ud;
	struct al_agent *ag = l->s->ag;
	json_t *body = NULL, *events = NULL;
	size_t bytes = 0;

	if (release(ag))
		goto done;
	if (rc == -ENOENT)
		cache_drop_id(ag, l->id); /* the session is gone */
	if (rc >= 0) {
		body = json_loads(l->doc.body ? l->doc.body : "", 0, NULL);
		/*
		 * Extend the prefix in place: steps of a session never overlap, so
		 * nobody else is extending it, and callers only borrow the array.
		 */
		if (l->full || l->prefix == NULL) {
			events = json_array();
			ag->cstats.full_loads++;
		} else {
			events = json_incref(l->prefix);
			bytes = l->prefix_bytes;
		}
		if (body == NULL || events == NULL)
			rc = -EINVAL;
		for (size_t i = 0; rc >= 0 && i < l->n; i++) {
			json_t *e = json_loads(l->evs[i].body, 0, NULL);
			if (e == NULL) {
				al_warn("agent", "session=%s event=%s: unreadable event skipped",
					l->id, l->evs[i].id);
				continue;
			}
			if (json_array_append_new(events, e) < 0) {
				rc = -ENOMEM;
				break;
			}
			bytes += strlen(l->evs[i].body) + CACHE_EVENT_COST;
		}
		ag->cstats.events_parsed += l->n;
		if (rc >= 0)
			cache_store(ag, l->id, events,
				    l->n ? l->evs[l->n - 1].id : (l->full ? "" : l->after_id),
				    bytes);
		else
			cache_drop_id(ag, l->id); /* a partly extended prefix is not trusted */
	}
	l->then(l->s, rc, body, events, l->ud);
done:
	json_decref(body);
	json_decref(events);
	json_decref(l->prefix);
	al_doc_clear(&l->doc);
	al_event_array_free(l->evs, l->n);
	al_free(l);
}

static int load(struct sess *s, void (*then)(struct sess *, int, json_t *, json_t *, void *),
		void *ud)
{
	struct load *l = al_calloc(1, sizeof(*l));
	struct cache *c;
	int rc;

	if (l == NULL)
		return -ENOMEM;
	l->s = s;
	l->then = then;
	l->ud = ud;
	snprintf(l->id, sizeof(l->id), "%s", s->id);
	c = cache_find(s->ag, s->id);
	if (c != NULL && c->last_id[0]) {
		snprintf(l->after_id, sizeof(l->after_id), "%s", c->last_id);
		l->prefix = json_incref(c->events);
		l->prefix_bytes = c->bytes;
	}
	rc = al_store_submit(s->ag->api->store, load_fn, load_done, l);
	if (rc < 0) {
		json_decref(l->prefix);
		al_free(l);
		return rc;
	}
	s->ag->pending++;
	return 0;
}

/* ---- appending ---- */

struct append {
	struct sess *s;
	char env[AL_ID_MAX];
	int enqueue_work; /* in the transaction: a work item for env */
	int stop_work;	  /* in the transaction: stop the session's work item */
	void (*then)(struct sess *s, int rc, json_t *events);
};

static int work_hook(al_store_tx *tx, const char *session_id, json_t *events, void *ud)
{
	struct append *a = ud;
	char work_id[AL_ID_MAX];
	int rc = 0;

	if (a->stop_work) {
		/* returns how many items changed; none is fine (no toolset, no item) */
		rc = al_work_stop_for_session_tx(tx, session_id);
	}
	if (rc >= 0 && a->enqueue_work)
		rc = al_work_enqueue_tx(tx, a->env, session_id, work_id);
	return rc;
}

static void append_done(int rc, json_t *events, void *ud)
{
	struct append *a = ud;

	if (!release(a->s->ag))
		a->then(a->s, rc, events);
	al_free(a);
}

/* Appends events (consumed). 0, or a negative errno and `then` is not called. */
static int append(struct sess *s, json_t *events, const char *new_status, const char *env,
		  int enqueue_work, int stop_work, void (*then)(struct sess *, int, json_t *))
{
	struct al_bus_append_opts opts = {.new_status = new_status};
	struct append *a = NULL;
	int rc = -ENOMEM;

	if (events == NULL)
		goto done;
	a = al_calloc(1, sizeof(*a));
	if (a == NULL)
		goto done;
	a->s = s;
	a->then = then;
	a->enqueue_work = enqueue_work && env != NULL && *env;
	a->stop_work = stop_work;
	snprintf(a->env, sizeof(a->env), "%s", env ? env : "");
	if (a->enqueue_work || a->stop_work) {
		opts.tx_hook = work_hook;
		opts.tx_hook_ud = a;
	}
	if (a->enqueue_work)
		opts.wake_environment_id = a->env;
	rc = al_bus_append(s->ag->api->bus, s->id, events, &opts, append_done, a);
	if (rc < 0)
		goto done;
	s->ag->pending++;
	a = NULL;
done:
	al_free(a);
	json_decref(events);
	return rc;
}

/* ---- event shapes (events.d.ts) ---- */

static json_t *ev_type(const char *type)
{
	return json_pack("{s:s}", "type", type);
}

static json_t *ev_idle(const char *reason, json_t *event_ids /* stolen, may be NULL */)
{
	json_t *sr = json_pack("{s:s}", "type", reason);

	if (sr != NULL && event_ids != NULL)
		json_object_set(sr, "event_ids", event_ids);
	json_decref(event_ids);
	if (sr == NULL)
		return NULL;
	return json_pack("{s:s, s:o, s:n}", "type", "session.status_idle", "stop_reason", sr,
			 "stop_details");
}

static json_t *ev_span_end(const char *start_id, int is_error, const json_t *usage)
{
	json_t *u =
	    json_pack("{s:I, s:I, s:I, s:I}", "input_tokens",
		      json_integer_value(json_object_get(usage, "input_tokens")), "output_tokens",
		      json_integer_value(json_object_get(usage, "output_tokens")),
		      "cache_creation_input_tokens",
		      json_integer_value(json_object_get(usage, "cache_creation_input_tokens")),
		      "cache_read_input_tokens",
		      json_integer_value(json_object_get(usage, "cache_read_input_tokens")));

	if (u == NULL)
		return NULL;
	return json_pack("{s:s, s:s, s:b, s:o}", "type", "span.model_request_end",
			 "model_request_start_id", start_id, "is_error", is_error, "model_usage",
			 u);
}

/* The SDK's session.error object type for a provider error type. */
static const char *error_kind(const char *provider_type)
{
	if (provider_type != NULL && strcmp(provider_type, "overloaded_error") == 0)
		return "model_overloaded_error";
	if (provider_type != NULL && strcmp(provider_type, "rate_limit_error") == 0)
		return "model_rate_limited_error";
	return "model_request_failed_error";
}

static json_t *ev_error(const char *kind, const char *message)
{
	return json_pack("{s:s, s:{s:s, s:s, s:{s:s}}}", "type", "session.error", "error", "type",
			 kind, "message", message, "retry_status", "type", "exhausted");
}

static int push(json_t *arr, json_t *ev)
{
	if (ev == NULL)
		return -ENOMEM;
	return json_array_append_new(arr, ev) < 0 ? -ENOMEM : 0;
}

/* ---- MCP servers (docs/CONTROL-PLANE-MCP.md) ---- */

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The host of an http(s) URL (no userinfo, port or brackets) into out. */
static void url_host(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://"), *end, *at, *colon;

	p = p != NULL ? p + 3 : url;
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	if (at != NULL)
		p = at + 1;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (rb != NULL) {
			p++;
			end = rb;
		}
	} else if ((colon = memchr(p, ':', (size_t)(end - p))) != NULL) {
		end = colon;
	}
	snprintf(out, outlen, "%.*s", (int)(end - p), p);
}

/*
 * The operator's settings for a server, each field looked up on its own: an
 * entry keyed by the server's name first, then one keyed by its URL's host
 * (so "--mcp-token-env NAME=VAR" and "--mcp-ca HOST=FILE" combine).
 */
static void mcp_server_cfg(const struct al_api_config *cfg, const char *name, const char *url,
			   const char **ca_file, const char **token_env)
{
	char host[256];

	*ca_file = *token_env = NULL;
	url_host(url, host, sizeof(host));
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < cfg->n_mcp_servers; i++) {
			const struct al_mcp_server_cfg *e = &cfg->mcp_servers[i];
			if (pass == 0 ? strcmp(e->key, name) != 0 : strcasecmp(e->key, host) != 0)
				continue;
			if (*ca_file == NULL)
				*ca_file = e->ca_file;
			if (*token_env == NULL)
				*token_env = e->token_env;
		}
	}
}

static json_t *ev_mcp_error(const char *server, int err, int status)
{
	char msg[256], st[32] = "";

	if (status > 0)
		snprintf(st, sizeof(st), ", HTTP %d", status);
	snprintf(msg, sizeof(msg),
		 "MCP server %s could not be used (%s%s); the run continues without its tools",
		 server, strerror(err < 0 ? -err : EIO), st);
	return json_pack(
	    "{s:s, s:{s:s, s:s, s:s, s:{s:s}}}", "type", "session.error", "error", "type",
	    err == -EACCES ? "mcp_authentication_failed_error" : "mcp_connection_failed_error",
	    "mcp_server_name", server, "message", msg, "retry_status", "type", "exhausted");
}

/* Steps the session after an append made outside the step's own decision. */
static void side_appended_cb(struct sess *s, int rc, json_t *events)
{
	(void)events;
	if (rc < 0 && rc != -ENOENT)
		al_warn("agent", "session=%s: appending MCP events failed: %s", s->id,
			strerror(-rc));
	step(s);
}

static void mcp_ready(struct sess *s)
{
	json_t *errs = s->mcp_errors;
	int rc;

	s->mcp_state = MCP_READY;
	s->mcp_errors = NULL;
	if (json_array_size(errs) == 0) {
		json_decref(errs);
		step(s);
		return;
	}
	if ((rc = append(s, errs, NULL, NULL, 0, 0, side_appended_cb)) < 0) {
		al_warn("agent", "session=%s: recording MCP errors failed: %s", s->id,
			strerror(-rc));
		step(s);
	}
}

static void mcp_fail(struct sess *s, struct mcp_conn *mc, int err, int status)
{
	/* the error text is errno words and a status: never a header or token */
	al_warn("agent", "session=%s: mcp server %s: %s (HTTP %d): its tools are not offered",
		s->id, mc->name, strerror(err < 0 ? -err : EIO), status);
	if (s->mcp_errors != NULL &&
	    json_array_append_new(s->mcp_errors, ev_mcp_error(mc->name, err, status)) < 0)
		al_warn("agent", "session=%s: out of memory recording an MCP error", s->id);
}

static void mcp_list_done_cb(al_mcp_client *c, const struct al_mcp_client_result *res, void *ud)
{
	struct mcp_conn *mc = ud;
	struct sess *s = mc->s;
	int n;

	(void)c;
	if (res->err == 0) {
		n = al_mcp_offer(s->mcp_tools, mc->name, res->result, s->mcp_defs, s->mcp_map);
		if (n >= 0) {
			mc->ok = 1;
			al_info("agent", "session=%s: mcp server %s: %d tool(s) offered", s->id,
				mc->name, n);
		} else {
			mcp_fail(s, mc, n, 0);
		}
	} else {
		mcp_fail(s, mc, res->err, res->http_status);
	}
	if (--s->mcp_waiting == 0)
		mcp_ready(s);
}

/* 1 when the agent names an MCP server that an mcp_toolset uses. */
static int agent_has_mcp(const json_t *agent)
{
	const json_t *srv, *tools = json_object_get(agent, "tools");
	size_t i;

	json_array_foreach(json_object_get(agent, "mcp_servers"), i, srv)
	{
		if (al_mcp_toolset(tools, str_of(srv, "name")) != NULL)
			return 1;
	}
	return 0;
}

/*
 * Connects to the agent's MCP servers and lists their tools (all at once);
 * the session is READY when every server has answered or failed. A server
 * that fails is reported once with a session.error and left out.
 */
static void mcp_prepare(struct sess *s, const json_t *agent)
{
	struct al_agent *ag = s->ag;
	const json_t *servers = json_object_get(agent, "mcp_servers"), *srv, *d;
	json_t *tools = json_object_get(agent, "tools"), *builtin = NULL;
	size_t i;
	int rc;

	s->mcp_state = MCP_PREPARING;
	s->mcp_tools = json_incref(tools);
	s->mcp_defs = json_array();
	s->mcp_map = json_object();
	s->mcp_errors = json_array();
	s->conns = al_calloc(json_array_size(servers) + 1, sizeof(*s->conns));
	builtin = al_transcript_tools(tools);
	if (s->mcp_defs == NULL || s->mcp_map == NULL || s->mcp_errors == NULL ||
	    s->conns == NULL || builtin == NULL)
		goto oom;
	/* names the request already uses cannot be MCP tools' */
	json_array_foreach(builtin, i, d)
	{
		if (str_of(d, "name") != NULL &&
		    json_object_set_new(s->mcp_map, str_of(d, "name"), json_null()) < 0)
			goto oom;
	}
	if (ag->http == NULL && (rc = al_http_client_new(ag->api->loop, &ag->http)) < 0)
		goto oom;
	json_array_foreach(servers, i, srv)
	{
		const char *name = str_of(srv, "name"), *url = str_of(srv, "url");
		const char *token_env;
		struct al_mcp_client_opts o = {0};
		struct mcp_conn *mc;

		if (name == NULL || url == NULL || al_mcp_toolset(tools, name) == NULL)
			continue;
		mc = &s->conns[s->nconns++];
		mc->s = s;
		snprintf(mc->name, sizeof(mc->name), "%s", name);
		mcp_server_cfg(&ag->api->cfg, name, url, &o.ca_file, &token_env);
		o.url = url;
		o.timeout_ms = 30000;
		o.client_name = "airlock";
		if (token_env != NULL) {
			o.bearer_token = getenv(token_env);
			if (o.bearer_token == NULL || !*o.bearer_token) {
				al_warn("agent", "mcp server %s: $%s is not set: no token sent",
					name, token_env);
				o.bearer_token = NULL;
			}
		}
		rc = al_mcp_client_new(ag->api->loop, ag->http, &o, &mc->c);
		if (rc == 0)
			rc = al_mcp_client_list_tools(mc->c, mcp_list_done_cb, mc, NULL);
		if (rc < 0) {
			mcp_fail(s, mc, rc, 0);
			continue;
		}
		s->mcp_waiting++;
	}
	json_decref(builtin);
	if (s->mcp_waiting == 0)
		mcp_ready(s);
	return;
oom:
	json_decref(builtin);
	al_warn("agent", "session=%s: out of memory connecting MCP servers: none offered", s->id);
	json_decref(s->mcp_defs);
	json_decref(s->mcp_map);
	s->mcp_defs = s->mcp_map = NULL;
	mcp_ready(s);
}

/* 1 while the session's MCP servers are not ready yet (starting them if needed). */
static int mcp_wait(struct sess *s, const json_t *agent)
{
	if (s->mcp_state == MCP_NONE && agent_has_mcp(agent))
		mcp_prepare(s, agent);
	return s->mcp_state == MCP_PREPARING;
}

static struct mcp_call *mcall_find(struct sess *s, const char *id)
{
	for (struct mcp_call *mc = s->mcalls; mc != NULL; mc = mc->next)
		if (strcmp(mc->id, id) == 0)
			return mc;
	return NULL;
}

static void mcall_remove(struct sess *s, struct mcp_call *mc)
{
	struct mcp_call **pp = &s->mcalls;

	while (*pp != NULL && *pp != mc)
		pp = &(*pp)->next;
	if (*pp == mc)
		*pp = mc->next;
	al_free(mc);
}

static void mcp_recorded_cb(struct sess *s, int rc, json_t *events)
{
	const char *id = str_of(json_array_get(events, 0), "mcp_tool_use_id");
	struct mcp_call *mc = id != NULL ? mcall_find(s, id) : NULL;

	if (rc < 0 && rc != -ENOENT)
		/*
		 * Kept in the list so this process never sends it again; the
		 * session waits until a restart answers it as an orphan.
		 */
		al_warn("agent", "session=%s: recording an MCP tool result failed: %s", s->id,
			strerror(-rc));
	else if (mc != NULL)
		mcall_remove(s, mc);
	step(s);
}

/*
 * Records agent.mcp_tool_result for call `id` (content stolen). The call
 * stays in s->mcalls until the result is committed, so no step in between
 * starts it again.
 */
static void mcp_record(struct sess *s, const char *id, json_t *content, int is_error)
{
	struct mcp_call *mc = mcall_find(s, id);
	json_t *ev;
	int rc = -ENOMEM;

	if (mc == NULL) {
		mc = al_calloc(1, sizeof(*mc));
		if (mc == NULL)
			goto fail;
		mc->s = s;
		snprintf(mc->id, sizeof(mc->id), "%s", id);
		mc->next = s->mcalls;
		s->mcalls = mc;
	}
	ev = json_pack("{s:s, s:s, s:o, s:b}", "type", "agent.mcp_tool_result", "mcp_tool_use_id",
		       id, "content", content ? content : json_array(), "is_error", is_error);
	content = NULL;
	if (ev == NULL)
		goto fail;
	rc = append(s, json_pack("[o]", ev), NULL, NULL, 0, 0, mcp_recorded_cb);
	if (rc == 0)
		return;
fail:
	json_decref(content);
	al_warn("agent", "session=%s: cannot record the result of MCP call %s: %s", s->id, id,
		strerror(-rc));
}

static json_t *text_block(const char *text)
{
	return json_pack("{s:s, s:s}", "type", "text", "text", text);
}

/* An MCP content item as a Messages content block (text, image; anything else as text). */
static json_t *mcp_block(const json_t *item)
{
	const char *type = str_of(item, "type"), *mime = str_of(item, "mimeType");
	char *dump = NULL;
	json_t *out;

	if (type != NULL && strcmp(type, "text") == 0 && str_of(item, "text") != NULL)
		return *str_of(item, "text") ? text_block(str_of(item, "text")) : NULL;
	if (type != NULL && strcmp(type, "image") == 0 && str_of(item, "data") != NULL &&
	    mime != NULL &&
	    (strcmp(mime, "image/png") == 0 || strcmp(mime, "image/jpeg") == 0 ||
	     strcmp(mime, "image/gif") == 0 || strcmp(mime, "image/webp") == 0))
		return json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "image", "source", "type",
				 "base64", "media_type", mime, "data", str_of(item, "data"));
	if (type != NULL && strcmp(type, "resource") == 0 &&
	    str_of(json_object_get(item, "resource"), "text") != NULL)
		return text_block(str_of(json_object_get(item, "resource"), "text"));
	/* audio, links, blobs, images of other types: the model gets the JSON */
	dump = json_dumps(item, JSON_COMPACT);
	out = dump != NULL ? text_block(dump) : NULL;
	al_free(dump);
	return out;
}

static json_t *mcp_result_content(const struct al_mcp_client_result *res, int *is_error)
{
	json_t *out = json_array(), *item;
	char msg[384];
	size_t i;

	*is_error = 1;
	if (out == NULL)
		return NULL;
	if (res->err != 0) {
		if (res->err == -EREMOTEIO && res->rpc_error != NULL)
			snprintf(msg, sizeof(msg), "The MCP server refused the call: %d %s",
				 res->rpc_error->code, res->rpc_error->message);
		else
			snprintf(msg, sizeof(msg), "The MCP tool call failed: %s (HTTP %d)",
				 strerror(-res->err), res->http_status);
		json_array_append_new(out, text_block(msg));
		return out;
	}
	*is_error = json_is_true(json_object_get(res->result, "isError"));
	json_array_foreach(json_object_get(res->result, "content"), i, item)
	{
		json_t *b = mcp_block(item);
		if (b != NULL)
			json_array_append_new(out, b);
	}
	if (json_array_size(out) == 0 && json_object_get(res->result, "structuredContent")) {
		char *dump =
		    json_dumps(json_object_get(res->result, "structuredContent"), JSON_COMPACT);
		if (dump != NULL)
			json_array_append_new(out, text_block(dump));
		al_free(dump);
	}
	return out;
}

static void mcp_call_done_cb(al_mcp_client *c, const struct al_mcp_client_result *res, void *ud)
{
	struct mcp_call *mc = ud;
	int is_error = 1;
	json_t *content = mcp_result_content(res, &is_error);

	(void)c;
	mc->op = NULL;
	al_info("agent", "session=%s: mcp call %s done%s", mc->s->id, mc->id,
		is_error ? " (error)" : "");
	mcp_record(mc->s, mc->id, content, is_error);
}

/*
 * Start-up: the MCP calls that could run at the last event before this
 * process started may have been sent by the previous one. They are answered
 * with an error, never sent again (exactly once beats at least once for a
 * call with side effects). Without the boundary in the log every call
 * runnable now counts (fail closed).
 */
static void mcp_find_orphans(struct sess *s, const json_t *events, const json_t *runnable)
{
	json_t *prefix = json_array(), *ev;
	struct al_turn_state st;
	size_t i;
	int found = 0;

	if (prefix == NULL)
		goto done;
	json_array_foreach(events, i, ev)
	{
		if (json_array_append(prefix, ev) < 0)
			goto done;
		if (str_of(ev, "id") != NULL && strcmp(str_of(ev, "id"), s->boundary) == 0) {
			found = 1;
			break;
		}
	}
	if (found && al_transcript_analyze(prefix, &st) == 0) {
		s->orphans = json_incref(st.mcp_runnable);
		al_turn_state_clear(&st);
	} else if (!found) {
		s->orphans = json_deep_copy(runnable);
	}
done:
	json_decref(prefix);
	if (s->orphans != NULL || found)
		s->boundary[0] = '\0';
}

static int is_orphan(const struct sess *s, const char *id)
{
	const json_t *v;
	size_t i;

	json_array_foreach(s->orphans, i, v)
	{
		if (json_string_value(v) != NULL && strcmp(json_string_value(v), id) == 0)
			return 1;
	}
	return 0;
}

static const json_t *find_event(const json_t *events, const char *id)
{
	const json_t *ev;
	size_t i;

	for (i = json_array_size(events); i-- > 0;) {
		ev = json_array_get(events, i);
		if (str_of(ev, "id") != NULL && strcmp(str_of(ev, "id"), id) == 0)
			return ev;
	}
	return NULL;
}

/*
 * user.interrupt: MCP calls still at their server are cancelled (the stream
 * is closed, a legacy server also gets notifications/cancelled); the turn's
 * end answers them in the transcript. Results being recorded stay.
 */
static void mcp_cancel_calls(struct sess *s)
{
	struct mcp_call *mc = s->mcalls, *next;

	for (; mc != NULL; mc = next) {
		next = mc->next;
		if (mc->op == NULL)
			continue;
		al_mcp_client_cancel(mc->op);
		mcall_remove(s, mc);
	}
}

/* Calls the server for every runnable MCP call not already in hand. */
static void mcp_run(struct sess *s, const json_t *agent, const json_t *events,
		    const struct al_turn_state *st)
{
	const json_t *idv;
	size_t i;

	if (s->boundary[0])
		mcp_find_orphans(s, events, st->mcp_runnable);
	json_array_foreach(st->mcp_runnable, i, idv)
	{
		const char *id = json_string_value(idv), *server, *tool;
		const json_t *ev;
		struct mcp_conn *conn = NULL;
		struct mcp_call *mc;
		char msg[384];
		int rc;

		if (id == NULL || mcall_find(s, id) != NULL)
			continue;
		if (is_orphan(s, id)) {
			al_warn("agent",
				"session=%s: mcp call %s was in flight at a restart: "
				"answered with an error, not sent again",
				s->id, id);
			mcp_record(
			    s, id,
			    json_pack("[o]",
				      text_block("[no result: the control plane restarted "
						 "while this MCP tool call was in flight; it "
						 "was not sent again because it may already "
						 "have run]")),
			    1);
			continue;
		}
		if (mcp_wait(s, agent))
			return; /* READY steps the session again */
		ev = find_event(events, id);
		server = str_of(ev, "mcp_server_name");
		tool = str_of(ev, "name");
		for (size_t k = 0; server != NULL && k < s->nconns; k++)
			if (s->conns[k].ok && strcmp(s->conns[k].name, server) == 0)
				conn = &s->conns[k];
		if (conn == NULL || tool == NULL) {
			snprintf(msg, sizeof(msg),
				 "MCP server %s is not connected for this session.",
				 server ? server : "?");
			mcp_record(s, id, json_pack("[o]", text_block(msg)), 1);
			continue;
		}
		mc = al_calloc(1, sizeof(*mc));
		if (mc == NULL) {
			al_warn("agent", "session=%s: out of memory starting an MCP call", s->id);
			return;
		}
		mc->s = s;
		snprintf(mc->id, sizeof(mc->id), "%s", id);
		mc->next = s->mcalls;
		s->mcalls = mc;
		rc = al_mcp_client_call_tool(conn->c, tool, json_object_get(ev, "input"), NULL,
					     mcp_call_done_cb, mc, &mc->op);
		if (rc < 0) {
			snprintf(msg, sizeof(msg), "The MCP tool call could not be started: %s",
				 strerror(-rc));
			mcp_record(s, id, json_pack("[o]", text_block(msg)), 1);
			continue;
		}
		al_info("agent", "session=%s: mcp call %s: %s/%s", s->id, id, server, tool);
	}
}

/* ---- the step ---- */

static void finish(struct sess *s)
{
	s->busy = 0;
	if (s->dirty || s->stash)
		step(s);
}

static void appended_cb(struct sess *s, int rc, json_t *events)
{
	if (rc < 0) {
		/* Not retried here: the next event for the session steps it again. */
		al_warn("agent", "session=%s: appending events failed: %s", s->id, strerror(-rc));
		s->busy = 0;
		if (s->stash)
			step(s);
		return;
	}
	s->dirty = 1;
	finish(s);
}

static void request_loaded_cb(struct sess *s, int rc, json_t *body, json_t *events, void *ud);
static void fail_turn(struct sess *s, const char *start_id, const char *kind, const char *msg,
		      const char *env);

static void start_appended_cb(struct sess *s, int rc, json_t *events)
{
	const char *start_id = json_string_value(
	    json_object_get(json_array_get(events, json_array_size(events) - 1), "id"));

	if (rc == -ENOENT) { /* the session is gone */
		s->busy = 0;
		return;
	}
	if (rc < 0 || start_id == NULL) {
		/*
		 * E.g. the work item could not be enqueued. Report it and end the
		 * turn instead of leaving the message unanswered; the session.error
		 * consumes the inputs, so this does not repeat.
		 */
		char msg[160];
		snprintf(msg, sizeof(msg), "the turn could not be started: %s",
			 strerror(rc < 0 ? -rc : EINVAL));
		fail_turn(s, NULL, "unknown_error", msg, NULL);
		return;
	}
	snprintf(s->call_start_id, sizeof(s->call_start_id), "%s", start_id);
	if (s->ag->stopping) {
		/* Draining: the open span is closed and the call made after a restart. */
		finish(s);
		return;
	}
	if ((rc = load(s, request_loaded_cb, NULL)) < 0) {
		al_warn("agent", "session=%s: loading the transcript failed: %s", s->id,
			strerror(-rc));
		finish(s);
	}
}

/* Ends the turn with an error: [span end] session.error, idle retries_exhausted. */
static void fail_turn(struct sess *s, const char *start_id, const char *kind, const char *msg,
		      const char *env)
{
	json_t *evs = json_array();
	int rc = -ENOMEM;

	al_warn("agent", "session=%s: turn failed: %s: %s", s->id, kind, msg);
	if (evs == NULL)
		goto fail;
	if (start_id != NULL && *start_id && push(evs, ev_span_end(start_id, 1, NULL)) < 0)
		goto fail;
	if (push(evs, ev_error(kind, msg)) < 0 || push(evs, ev_idle("retries_exhausted", NULL)) < 0)
		goto fail;
	rc = append(s, evs, "idle", env, 0, 1, appended_cb);
	evs = NULL;
	if (rc == 0)
		return;
fail:
	json_decref(evs);
	al_warn("agent", "session=%s: could not record the failure: %s", s->id, strerror(-rc));
	s->busy = 0;
}

static void model_done_cb(const struct al_model_result *res, void *ud);

static void request_loaded_cb(struct sess *s, int rc, json_t *body, json_t *events, void *ud)
{
	struct al_agent *ag = s->ag;
	al_provider *p = ag->api->provider;
	json_t *agent = json_object_get(body, "agent"), *req = NULL, *messages = NULL;
	const char *env = json_string_value(json_object_get(body, "environment_id"));
	struct al_ctx_limits lim = {0};
	struct al_ctx_report rep;
	int64_t window = 0;
	size_t upto = 0;
	char err[256];
	al_model_call *call = NULL;

	if (rc < 0) {
		al_warn("agent", "session=%s: loading the transcript failed: %s", s->id,
			strerror(-rc));
		finish(s);
		return;
	}
	/* The request holds exactly the events before its span start. */
	for (upto = 0; upto < json_array_size(events); upto++) {
		const char *id =
		    json_string_value(json_object_get(json_array_get(events, upto), "id"));
		if (id != NULL && strcmp(id, s->call_start_id) == 0)
			break;
	}
	if (p == NULL) {
		fail_turn(s, s->call_start_id, "model_request_failed_error",
			  "no model provider is configured on this server", env);
		goto done;
	}
	req = al_transcript_request_base(agent, events, upto, AL_AGENT_MAX_TOKENS);
	messages = al_transcript_messages(events, upto);
	if (req == NULL || messages == NULL) {
		fail_turn(s, s->call_start_id, "model_request_failed_error",
			  req == NULL && al_transcript_model(agent) == NULL
			      ? "the session's agent names no model"
			      : "out of memory building the model request",
			  env);
		goto done;
	}
	if (p->ops->context_window != NULL)
		window = p->ops->context_window(p, al_transcript_model(agent));
	if (window <= 0)
		window = AL_AGENT_DEFAULT_WINDOW;
	lim.limit = window - AL_AGENT_MAX_TOKENS;
	lim.budget = al_ctx_budget(ag->api->cfg.context_budget_tokens, window);
	if (lim.budget > lim.limit)
		lim.budget = lim.limit;
	lim.fixed_tokens = al_ctx_estimate(req);
	lim.scale = s->scale;
	rc = al_ctx_compact(messages, &lim, &rep, err, sizeof(err));
	if (rc < 0) {
		fail_turn(s, s->call_start_id, "model_request_failed_error",
			  rc == -E2BIG ? err : "out of memory compacting the transcript", env);
		goto done;
	}
	if (rep.elided || rep.dropped_turns)
		al_info("agent",
			"session=%s: context compacted: %lld -> %lld tokens, %zu results elided, "
			"%zu turns dropped",
			s->id, (long long)rep.tokens_before, (long long)rep.tokens_after,
			rep.elided, rep.dropped_turns);
	/* the MCP tools offered for this turn (docs/CONTROL-PLANE-MCP.md) */
	if (json_array_size(s->mcp_defs) > 0) {
		json_t *tools = json_object_get(req, "tools");
		if (tools == NULL && json_object_set_new(req, "tools", json_array()) == 0)
			tools = json_object_get(req, "tools");
		if (tools == NULL || json_array_extend(tools, s->mcp_defs) < 0) {
			fail_turn(s, s->call_start_id, "model_request_failed_error",
				  "out of memory", env);
			goto done;
		}
	}
	if (json_object_set(req, "messages", messages) < 0) {
		fail_turn(s, s->call_start_id, "model_request_failed_error", "out of memory", env);
		goto done;
	}
	s->call_estimate = lim.fixed_tokens + al_ctx_estimate(messages);
	json_decref(s->call_agent);
	s->call_agent = json_incref(agent);
	s->calling = 1;
	rc = al_provider_call(p, req, model_done_cb, s, &call);
	if (rc < 0) {
		s->calling = 0;
		fail_turn(s, s->call_start_id, "model_request_failed_error",
			  "the model request could not be started", env);
		goto done;
	}
	if (s->calling)
		s->call = call;
	finish(s);
done:
	json_decref(req);
	json_decref(messages);
}

static json_t *response_events(struct sess *s, const struct stash *st)
{
	json_t *evs = al_transcript_response_events_mcp(
	    st->message, json_object_get(s->call_agent, "tools"), s->mcp_map);
	json_t *usage = json_object_get(st->message, "usage");

	if (evs == NULL)
		return NULL;
	if (push(evs, ev_span_end(s->call_start_id, 0, usage)) < 0) {
		json_decref(evs);
		return NULL;
	}
	s->scale = al_ctx_calibrate(s->call_estimate,
				    json_integer_value(json_object_get(usage, "input_tokens")));
	return evs;
}

/* Records a finished model call (runs inside a step: s->busy is set). */
static void record_response(struct sess *s, struct stash *st)
{
	json_t *evs = NULL;
	int rc;

	if (st->ok) {
		evs = response_events(s, st);
		if (evs == NULL) {
			fail_turn(s, s->call_start_id, "model_request_failed_error",
				  "out of memory recording the model response", NULL);
			return;
		}
		rc = append(s, evs, NULL, NULL, 0, 0, appended_cb);
		if (rc < 0) {
			al_warn("agent", "session=%s: recording the response failed: %s", s->id,
				strerror(-rc));
			s->busy = 0;
		}
		return;
	}
	fail_turn(s, s->call_start_id, error_kind(st->error_type), st->error_message, NULL);
}

static void model_done_cb(const struct al_model_result *res, void *ud)
{
	struct sess *s = ud;
	struct stash *st = al_calloc(1, sizeof(*st));

	s->calling = 0;
	s->call = NULL;
	if (st == NULL) {
		al_error("agent", "session=%s: out of memory taking a model response", s->id);
		return;
	}
	st->ok = res->ok && json_is_object(res->message);
	st->message = st->ok ? json_incref(res->message) : NULL;
	snprintf(st->error_type, sizeof(st->error_type), "%s",
		 res->error_type ? res->error_type : "api_error");
	snprintf(st->error_message, sizeof(st->error_message), "%s",
		 res->error_message ? res->error_message : "the model request failed");
	if (!res->ok)
		al_warn("agent", "session=%s: model call failed after %d attempt(s), status %d",
			s->id, res->attempts, res->http_status);
	stash_free(s->stash);
	s->stash = st;
	if (!s->busy)
		step(s);
}

static void decided(struct sess *s, int rc, json_t *body, json_t *events, void *ud)
{
	struct al_turn_state st = {0};
	enum al_turn_action act;
	json_t *agent = json_object_get(body, "agent"), *evs = NULL;
	const char *env = json_string_value(json_object_get(body, "environment_id"));
	int toolset = al_perm_toolset(json_object_get(agent, "tools")) != NULL;

	if (rc < 0) {
		if (rc != -ENOENT)
			al_warn("agent", "session=%s: loading failed: %s", s->id, strerror(-rc));
		s->busy = 0;
		return;
	}
	if ((rc = al_transcript_analyze(events, &st)) < 0) {
		s->busy = 0;
		return;
	}
	if (s->work_lost) {
		s->work_lost = 0;
		if (st.turn_open && st.status != AL_SESS_RESCHEDULING) {
			rc = append(s, json_pack("[o]", ev_type("session.status_rescheduled")),
				    "rescheduling", NULL, 0, 0, appended_cb);
			goto done;
		}
	}
	act = al_transcript_decide(&st, s->calling);
	al_debug("agent", "session=%s: next step %s", s->id, al_turn_action_name(act));
	evs = json_array();
	if (evs == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	switch (act) {
	case AL_TURN_NONE:
		json_decref(evs);
		evs = NULL;
		if (!st.turn_open && !s->calling && !s->stash && !s->dirty && !s->work_lost &&
		    s->mcalls == NULL && s->mcp_state != MCP_PREPARING) {
			/*
			 * Nothing in flight and no turn open: drop the record so memory
			 * follows active sessions, not all sessions ever seen. Nothing
			 * else points at it (no call, no store job, no append). The
			 * calibration factor goes with it; the next turn's first
			 * response sets it again.
			 */
			sess_drop(s);
			goto done;
		}
		finish(s);
		break;
	case AL_TURN_INTERRUPT:
		if (st.open_start_id[0] &&
		    (rc = push(evs, ev_span_end(st.open_start_id, 1, NULL))) < 0)
			goto done;
		if ((rc = push(evs, ev_idle("end_turn", NULL))) < 0)
			goto done;
		rc = append(s, evs, "idle", env, 0, 1, appended_cb);
		break;
	case AL_TURN_START:
	case AL_TURN_CALL:
		if (s->ag->stopping) {
			json_decref(evs);
			evs = NULL;
			finish(s);
			goto done;
		}
		/*
		 * The agent's MCP servers are listed before the model call that
		 * offers their tools. A new turn shows it is running meanwhile;
		 * the call follows when they are ready (which steps again).
		 */
		if (mcp_wait(s, agent)) {
			if (act == AL_TURN_START) {
				if ((rc = push(evs, ev_type("session.status_running"))) < 0)
					goto done;
				rc = append(s, evs, "running", env, toolset, 0, appended_cb);
				break;
			}
			json_decref(evs);
			evs = NULL;
			finish(s);
			goto done;
		}
		/* a span whose call died with the previous process: close it first */
		if (st.open_start_id[0] &&
		    (rc = push(evs, ev_span_end(st.open_start_id, 1, NULL))) < 0)
			goto done;
		if (act == AL_TURN_START || st.status != AL_SESS_RUNNING)
			if ((rc = push(evs, ev_type("session.status_running"))) < 0)
				goto done;
		if ((rc = push(evs, ev_type("span.model_request_start"))) < 0)
			goto done;
		rc = append(s, evs,
			    act == AL_TURN_START || st.status != AL_SESS_RUNNING ? "running" : NULL,
			    env, act == AL_TURN_START && toolset, 0, start_appended_cb);
		break;
	case AL_TURN_REQUIRES_ACTION:
		if ((rc = push(evs, ev_idle("requires_action", json_incref(st.blocking)))) < 0)
			goto done;
		rc = append(s, evs, "idle", NULL, 0, 0, appended_cb);
		break;
	case AL_TURN_RESUME:
		if ((rc = push(evs, ev_type("session.status_running"))) < 0)
			goto done;
		rc = append(s, evs, "running", NULL, 0, 0, appended_cb);
		break;
	case AL_TURN_END:
		if ((rc = push(evs, ev_idle("end_turn", NULL))) < 0)
			goto done;
		rc = append(s, evs, "idle", env, 0, 1, appended_cb);
		break;
	}
	evs = NULL; /* consumed by append, or NULL (none) */
	/* MCP calls that may run now: the control plane itself is the client */
	if (rc >= 0 && st.status != AL_SESS_TERMINATED && json_array_size(st.mcp_runnable) > 0)
		mcp_run(s, agent, events, &st);
done:
	json_decref(evs);
	al_turn_state_clear(&st);
	if (rc < 0) {
		al_warn("agent", "session=%s: step failed: %s", s->id, strerror(-rc));
		s->busy = 0;
	}
}

static void step(struct sess *s)
{
	struct stash *st;
	int rc;

	if (s->ag->freed)
		return;
	if (s->busy) {
		s->dirty = 1;
		return;
	}
	s->busy = 1;
	s->dirty = 0;
	/* A finished call is recorded before anything else is decided. */
	if ((st = s->stash) != NULL) {
		s->stash = NULL;
		record_response(s, st);
		stash_free(st);
		return;
	}
	if ((rc = load(s, decided, NULL)) < 0) {
		al_warn("agent", "session=%s: cannot load: %s", s->id, strerror(-rc));
		s->busy = 0;
	}
}

/* ---- bus observer ---- */

static void observe_cb(const char *session_id, json_t *event, void *ud)
{
	struct al_agent *ag = ud;
	const char *type = json_string_value(json_object_get(event, "type"));
	struct sess *s;

	if (ag->freed || type == NULL || strncmp(type, "user.", 5) != 0)
		return;
	s = sess_get(ag, session_id);
	if (s == NULL) {
		al_error("agent", "session=%s: out of memory", session_id);
		return;
	}
	if (strcmp(type, "user.interrupt") == 0) {
		/* The interrupt wins over a response not yet recorded. */
		if (s->calling && s->call != NULL)
			ag->api->provider->ops->cancel(ag->api->provider, s->call);
		s->calling = 0;
		s->call = NULL;
		stash_free(s->stash);
		s->stash = NULL;
		mcp_cancel_calls(s);
	}
	step(s);
}

/* ---- lifecycle ---- */

struct recover {
	char (*ids)[AL_ID_MAX];
	char (*last)[AL_ID_MAX]; /* the session's last event at start-up, "" if none */
	size_t n;
};

static int recover_add(struct recover *r, const char *id, const char *last_id)
{
	char(*ids)[AL_ID_MAX] = al_realloc(r->ids, (r->n + 1) * sizeof(*ids));
	char(*last)[AL_ID_MAX];

	if (ids == NULL)
		return -ENOMEM;
	r->ids = ids;
	last = al_realloc(r->last, (r->n + 1) * sizeof(*last));
	if (last == NULL)
		return -ENOMEM;
	r->last = last;
	snprintf(r->last[r->n], AL_ID_MAX, "%s", last_id ? last_id : "");
	snprintf(r->ids[r->n++], AL_ID_MAX, "%s", id);
	return 0;
}

/* The id of the session's last event into out ("" when none). */
static int last_event_id(al_store_tx *tx, const char *session_id, char out[AL_ID_MAX])
{
	struct al_event_query eq = {.session_id = session_id, .descending = 1, .limit = 1};
	struct al_event *last = NULL;
	size_t m = 0;
	int more = 0, rc;

	out[0] = '\0';
	rc = al_store_event_list(tx, &eq, &last, &m, &more);
	if (rc >= 0 && m == 1)
		snprintf(out, AL_ID_MAX, "%s", last[0].id);
	al_event_array_free(last, m);
	return rc < 0 ? rc : 0;
}

static int recover_fn(al_store_tx *tx, void *ud)
{
	static const char *const active[] = {"running", "rescheduling", NULL};
	static const char *const idle[] = {"idle", NULL};
	struct recover *r = ud;
	struct al_doc_query q = {.states = active};
	struct al_doc *docs = NULL;
	size_t n = 0;
	int has_more = 0, rc;

	rc = al_store_doc_list(tx, "session", &q, &docs, &n, &has_more);
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		char last_id[AL_ID_MAX];
		rc = last_event_id(tx, docs[i].id, last_id);
		if (rc >= 0)
			rc = recover_add(r, docs[i].id, last_id);
	}
	al_doc_array_free(docs, n);
	if (rc < 0)
		return rc;
	/*
	 * An idle session whose last event is a user event may have had a
	 * message committed just before the previous process stopped, before
	 * the loop could act on it.
	 */
	docs = NULL;
	n = 0;
	q.states = idle;
	rc = al_store_doc_list(tx, "session", &q, &docs, &n, &has_more);
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		struct al_event_query eq = {.session_id = docs[i].id, .descending = 1, .limit = 1};
		struct al_event *last = NULL;
		size_t m = 0;
		int more = 0;
		rc = al_store_event_list(tx, &eq, &last, &m, &more);
		if (rc >= 0 && m == 1 && strncmp(last[0].type, "user.", 5) == 0)
			rc = recover_add(r, docs[i].id, last[0].id);
		al_event_array_free(last, m);
	}
	al_doc_array_free(docs, n);
	return rc;
}

int al_agent_start(al_api *api, struct al_agent **out)
{
	struct al_agent *ag = NULL;
	struct recover r = {0};
	int rc = -EINVAL;

	/* No provider (none configured yet) is allowed: turns then fail with a session.error. */
	if (api == NULL || api->store == NULL || api->bus == NULL)
		goto fail;
	rc = -ENOMEM;
	ag = al_calloc(1, sizeof(*ag));
	if (ag == NULL)
		goto fail;
	ag->api = api;
	if ((rc = al_store_call(api->store, recover_fn, &r)) < 0)
		goto fail;
	al_bus_set_observer(api->bus, observe_cb, ag);
	for (size_t i = 0; i < r.n; i++) {
		struct sess *s = sess_get(ag, r.ids[i]);
		if (s == NULL)
			continue;
		/* MCP calls runnable at this event may have been sent before the restart */
		snprintf(s->boundary, sizeof(s->boundary), "%s", r.last[i]);
		step(s);
	}
	if (r.n)
		al_info("agent", "resuming %zu session(s)", r.n);
	al_free(r.ids);
	r.ids = NULL;
	al_free(r.last);
	*out = ag;
	return 0;
fail:
	al_free(r.last);
	al_free(r.ids);
	al_free(ag);
	return rc;
}

void al_agent_stop(struct al_agent *ag)
{
	if (ag != NULL)
		ag->stopping = 1;
}

int al_agent_busy(const struct al_agent *ag)
{
	if (ag == NULL)
		return 0;
	for (const struct sess *s = ag->sessions; s != NULL; s = s->next)
		if (s->calling || s->busy || s->stash != NULL || s->mcalls != NULL ||
		    s->mcp_state == MCP_PREPARING)
			return 1;
	return ag->pending > 0;
}

void al_agent_free(struct al_agent *ag)
{
	struct sess *s;

	if (ag == NULL)
		return;
	al_bus_set_observer(ag->api->bus, NULL, NULL);
	for (s = ag->sessions; s != NULL; s = s->next) {
		if (s->calling && s->call != NULL)
			ag->api->provider->ops->cancel(ag->api->provider, s->call);
		s->calling = 0;
		s->call = NULL;
		mcp_release(s); /* cancels MCP requests: their callbacks never fire */
	}
	al_http_client_free(ag->http);
	ag->http = NULL;
	ag->freed = 1;
	if (ag->pending == 0)
		agent_destroy(ag);
}

void al_agent_on_work_lost(struct al_agent *ag, const char *session_id)
{
	struct sess *s;

	if (ag == NULL || ag->freed || session_id == NULL)
		return;
	s = sess_get(ag, session_id);
	if (s == NULL)
		return;
	s->work_lost = 1;
	step(s);
}
