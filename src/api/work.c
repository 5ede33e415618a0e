/*
 * work.c - the environment work queue a self-hosted worker speaks:
 * poll (long-poll), ack, heartbeat (compare-and-swap lease), stop, stats,
 * list, retrieve, metadata update; and the two store-thread entry points
 * the agent loop uses (work.h).
 *
 * Lifecycle of an item (doc state column):
 *   queued -> delivered (poll; shown as "queued": polled, unacknowledged)
 *          -> starting (ack) -> active (first heartbeat)
 *          -> stopping (stop without force while running) -> stopped.
 * A delivered item not acked within reclaim_older_than_ms (default 5 s), or
 * a starting/active item whose lease (ttl_seconds since the last heartbeat)
 * lapsed, is claimable again. Reclaiming clears the lease, so the old
 * worker's next heartbeat fails its compare-and-swap (412), and revokes the
 * item's previous sessions token, so the old worker loses the session too.
 *
 * The sessions token is minted when poll delivers the item: only its hash is
 * stored (doc kind "key", state "session", ref2 = session id, body carries
 * the work id). It travels to the worker inside `secret`, base64url JSON
 * {"sessions_token": ...}, which exists only in that one poll response.
 */
#include "api/work.h"

#include "api/decode.h"
#include "api/internal.h"
#include "core/alloc.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"

#include "agent/loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN		   256
#define DEFAULT_RECLAIM_MS 5000
#define DEFAULT_TTL_S	   90
#define MAX_TTL_S	   3600
#define WORKERS_WINDOW_MS  30000

/* ---- rendering ---- */

static const char *api_state(const char *state)
{
	return strcmp(state, "delivered") == 0 ? "queued" : state;
}

/* The API object of a work doc (new reference), secret null. */
static json_t *render_work(const struct al_doc *d)
{
	json_t *w = al_api_doc_json(d);

	if (w == NULL)
		return NULL;
	json_object_del(w, "_lease");
	json_object_set_new(w, "state", json_string(api_state(d->state)));
	json_object_set_new(w, "secret", json_null());
	return w;
}

static json_t *lease_of(json_t *body)
{
	json_t *l = json_object_get(body, "_lease");

	if (!json_is_object(l)) {
		l = json_pack("{s:n, s:i, s:s}", "last_heartbeat", "ttl_seconds", DEFAULT_TTL_S,
			      "worker_id", "");
		json_object_set_new(body, "_lease", l);
	}
	return l;
}

/* ---- store-thread helpers ---- */

/* Deletes the sessions tokens minted for work item work_id of session_id. */
static int revoke_item_tokens(al_store_tx *tx, const char *session_id, const char *work_id)
{
	const char *states[] = {"session", NULL};
	struct al_doc_query q = {0};
	struct al_doc *keys = NULL;
	size_t n = 0;
	int more = 0, rc;

	q.ref2 = session_id;
	q.states = states;
	q.include_archived = 1;
	rc = al_store_doc_list(tx, "key", &q, &keys, &n, &more);
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		json_t *b = al_api_doc_json(&keys[i]);
		const char *w = json_string_value(json_object_get(b, "work_id"));
		if (w != NULL && strcmp(w, work_id) == 0)
			rc = al_store_doc_delete(tx, "key", keys[i].id);
		json_decref(b);
	}
	al_doc_array_free(keys, n);
	return rc < 0 ? rc : 0;
}

/* Moves a loaded work doc to stopped (body and columns), revoking its tokens. */
static int set_stopped(al_store_tx *tx, struct al_doc *d, json_t *body, int64_t now)
{
	int rc;

	if (json_is_null(json_object_get(body, "stop_requested_at")))
		al_api_set_time(body, "stop_requested_at", now);
	al_api_set_time(body, "stopped_at", now);
	json_object_set_new(body, "state", json_string("stopped"));
	snprintf(d->state, sizeof(d->state), "stopped");
	d->updated_ms = now;
	if ((rc = al_api_doc_set_body(d, body)) < 0 || (rc = al_store_doc_update(tx, d, 0)) < 0)
		return rc;
	return revoke_item_tokens(tx, d->ref2, d->id);
}

static int set_stopping(al_store_tx *tx, struct al_doc *d, json_t *body, int64_t now)
{
	int rc;

	al_api_set_time(body, "stop_requested_at", now);
	json_object_set_new(body, "state", json_string("stopping"));
	snprintf(d->state, sizeof(d->state), "stopping");
	d->updated_ms = now;
	if ((rc = al_api_doc_set_body(d, body)) < 0)
		return rc;
	return al_store_doc_update(tx, d, 0);
}

int al_work_enqueue_tx(al_store_tx *tx, const char *environment_id, const char *session_id,
		       char work_id_out[AL_ID_MAX])
{
	struct al_doc d = {0};
	json_t *w = NULL;
	int64_t now = al_now_ms();
	int rc;

	snprintf(d.kind, sizeof(d.kind), "work");
	if ((rc = al_id_new("work", d.id, sizeof(d.id))) < 0)
		goto done;
	al_api_strlcpy(d.ref, environment_id, sizeof(d.ref));
	al_api_strlcpy(d.ref2, session_id, sizeof(d.ref2));
	snprintf(d.state, sizeof(d.state), "queued");
	d.sort_ms = d.created_ms = d.updated_ms = now;
	w = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:n, s:{}, s:n, s:n, s:n, s:n, s:n, "
		      "s:{s:n, s:i, s:s}}",
		      "id", d.id, "type", "work", "environment_id", environment_id, "data", "type",
		      "session", "id", session_id, "state", "queued", "secret", "metadata",
		      "acknowledged_at", "started_at", "latest_heartbeat_at", "stop_requested_at",
		      "stopped_at", "_lease", "last_heartbeat", "ttl_seconds", DEFAULT_TTL_S,
		      "worker_id", "");
	if (w == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	al_api_set_time(w, "created_at", now);
	if ((rc = al_api_doc_set_body(&d, w)) < 0 || (rc = al_store_doc_insert(tx, &d)) < 0)
		goto done;
	al_api_strlcpy(work_id_out, d.id, AL_ID_MAX);
done:
	json_decref(w);
	al_doc_clear(&d);
	return rc;
}

int al_work_stop_for_session_tx(al_store_tx *tx, const char *session_id)
{
	const char *states[] = {"queued", "delivered", "starting", "active", NULL};
	struct al_doc_query q = {0};
	struct al_doc *docs = NULL;
	size_t n = 0;
	int more = 0, rc, changed = 0;
	int64_t now = al_now_ms();

	q.ref2 = session_id;
	q.states = states;
	q.include_archived = 1;
	rc = al_store_doc_list(tx, "work", &q, &docs, &n, &more);
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		json_t *b = al_api_doc_json(&docs[i]);
		if (b == NULL) {
			rc = -EIO;
			break;
		}
		if (strcmp(docs[i].state, "queued") == 0 || strcmp(docs[i].state, "delivered") == 0)
			rc = set_stopped(tx, &docs[i], b, now);
		else
			rc = set_stopping(tx, &docs[i], b, now);
		json_decref(b);
		changed++;
	}
	al_doc_array_free(docs, n);
	return rc < 0 ? rc : changed;
}

/* Loads work p[1] of environment p[0]; 404 when absent or in another environment. */
static int load_work(al_store_tx *tx, struct al_api_job *job, struct al_doc *d, json_t **body)
{
	int rc = al_api_load(tx, "work", job->p[1], d, body);

	if (rc == 0 && strcmp(d->ref, job->p[0]) != 0) {
		json_decref(*body);
		*body = NULL;
		al_doc_clear(d);
		rc = -ENOENT;
	}
	if (rc == -ENOENT)
		return al_api_job_fail(job, 404, NULL, "work item %s not found", job->p[1]);
	return rc;
}

static int check_env(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d = {0};
	int rc = al_store_doc_get(tx, "environment", job->p[0], &d);

	al_doc_clear(&d);
	if (rc == -ENOENT)
		return al_api_job_fail_code(job, 404, "environment_not_found",
					    "environment %s not found", job->p[0]);
	return rc;
}

/* ---- poll ---- */

struct claim {
	char worker_id[AL_ID_MAX];
	int64_t reclaim_ms;
	int found, reclaimed;
	char session_id[AL_ID_MAX];
	char work_id[AL_ID_MAX];
	al_buf body; /* the response, with the secret: wiped */
};

static void claim_free(void *p)
{
	struct claim *c = p;

	if (c == NULL)
		return;
	al_buf_wipe(&c->body);
	al_buf_free(&c->body);
	al_free(c);
}

/* Picks the claimable item, or returns 0 with d->id[0] == '\0'. */
static int pick(al_store_tx *tx, const char *env, int64_t now, int64_t reclaim_ms,
		struct al_doc *out, int *reclaimed)
{
	const char *queued[] = {"queued", NULL}, *delivered[] = {"delivered", NULL};
	const char *leased[] = {"starting", "active", NULL};
	struct al_doc_query q = {0};
	struct al_doc *docs = NULL;
	size_t n = 0, i;
	int more = 0, rc;

	memset(out, 0, sizeof(*out));
	*reclaimed = 0;
	q.ref = env;
	q.include_archived = 1;
	q.limit = 1;
	q.states = queued;
	if ((rc = al_store_doc_list(tx, "work", &q, &docs, &n, &more)) < 0)
		return rc;
	if (n == 0) {
		al_doc_array_free(docs, n);
		docs = NULL;
		q.states = delivered;
		q.sort_ms_before = now - reclaim_ms + 1;
		if ((rc = al_store_doc_list(tx, "work", &q, &docs, &n, &more)) < 0)
			return rc;
		*reclaimed = n > 0;
	}
	if (n == 0) {
		/* Lapsed leases: each item has its own ttl, so filter here. */
		al_doc_array_free(docs, n);
		docs = NULL;
		q.states = leased;
		q.sort_ms_before = now - 1000;
		q.limit = 64;
		if ((rc = al_store_doc_list(tx, "work", &q, &docs, &n, &more)) < 0)
			return rc;
		for (i = 0; i < n; i++) {
			json_t *b = al_api_doc_json(&docs[i]);
			int64_t ttl =
			    json_integer_value(json_object_get(lease_of(b), "ttl_seconds"));
			json_decref(b);
			if (ttl <= 0)
				ttl = DEFAULT_TTL_S;
			if (now - docs[i].sort_ms > ttl * 1000)
				break;
		}
		if (i < n) {
			*out = docs[i];
			memset(&docs[i], 0, sizeof(docs[i]));
			*reclaimed = 2; /* a lapsed lease, not just an unacked delivery */
		}
		al_doc_array_free(docs, n);
		return 0;
	}
	*out = docs[0];
	memset(&docs[0], 0, sizeof(docs[0]));
	al_doc_array_free(docs, n);
	return 0;
}

static int claim_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct claim *c = job->ud;
	struct al_doc d = {0}, k = {0};
	json_t *body = NULL, *lease, *kb = NULL, *view = NULL;
	char *token = NULL, *meta = NULL, hash[AL_SHA256_HEX];
	al_buf sj = {0};
	char *secret = NULL;
	size_t slen;
	int rc;

	if ((rc = check_env(tx, job)) < 0)
		return rc;
	if ((rc = pick(tx, job->p[0], job->now_ms, c->reclaim_ms, &d, &c->reclaimed)) < 0)
		return rc;
	if (d.id[0] == '\0')
		return 0;
	if ((body = al_api_doc_json(&d)) == NULL) {
		rc = -EIO;
		goto done;
	}
	lease = lease_of(body);
	/* A fresh lease: the previous holder's heartbeats no longer match. */
	json_object_set_new(lease, "last_heartbeat", json_null());
	json_object_set_new(lease, "worker_id", json_string(c->worker_id));
	json_object_set_new(body, "state", json_string("queued"));
	json_object_set_new(body, "acknowledged_at", json_null());
	snprintf(d.state, sizeof(d.state), "delivered");
	d.sort_ms = d.updated_ms = job->now_ms;
	if ((rc = al_api_doc_set_body(&d, body)) < 0 || (rc = al_store_doc_update(tx, &d, 0)) < 0)
		goto done;
	/* One live token per item: a re-delivery revokes the previous one. */
	if ((rc = revoke_item_tokens(tx, d.ref2, d.id)) < 0)
		goto done;
	if ((token = al_token_new("sess")) == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if ((rc = al_sha256_hex(token, strlen(token), hash)) < 0)
		goto done;
	snprintf(k.kind, sizeof(k.kind), "key");
	if ((rc = al_id_new("stok", k.id, sizeof(k.id))) < 0)
		goto done;
	al_api_key_ref(hash, k.ref);
	al_api_strlcpy(k.ref2, d.ref2, sizeof(k.ref2));
	snprintf(k.state, sizeof(k.state), "session");
	k.created_ms = k.updated_ms = job->now_ms;
	kb = json_pack("{s:s, s:s, s:s, s:s}", "type", "sessions_token", "work_id", d.id,
		       "environment_id", d.ref, "sha256", hash);
	if (kb == NULL || (rc = al_api_doc_set_body(&k, kb)) < 0 ||
	    (rc = al_store_doc_insert(tx, &k)) < 0) {
		rc = rc < 0 ? rc : -ENOMEM;
		goto done;
	}
	/* secret = base64url({"sessions_token":"..."}); the token is [A-Za-z0-9_-]. */
	if ((rc = al_buf_appendf(&sj, "{\"sessions_token\":\"%s\"}", token)) < 0)
		goto done;
	slen = al_b64url_len(sj.len) + 1;
	if ((secret = al_malloc(slen)) == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if ((rc = al_b64url_encode(sj.data, sj.len, secret, slen)) < 0)
		goto done;
	view = render_work(&d);
	json_object_del(view, "secret");
	meta = view ? json_dumps(view, JSON_COMPACT) : NULL;
	if (meta == NULL || meta[strlen(meta) - 1] != '}') {
		rc = -ENOMEM;
		goto done;
	}
	if ((rc = al_buf_append(&c->body, meta, strlen(meta) - 1)) < 0 ||
	    (rc = al_buf_appendf(&c->body, ",\"secret\":\"%s\"}", secret)) < 0)
		goto done;
	c->found = 1;
	al_api_strlcpy(c->work_id, d.id, sizeof(c->work_id));
	al_api_strlcpy(c->session_id, d.ref2, sizeof(c->session_id));
	rc = 0;
done:
	if (secret != NULL)
		al_free_secret(secret, strlen(secret));
	al_free_secret_str(token);
	al_wipe(hash, sizeof(hash));
	al_buf_wipe(&sj);
	al_buf_free(&sj);
	al_free(meta);
	json_decref(view);
	json_decref(body);
	json_decref(kb);
	al_doc_clear(&d);
	al_doc_clear(&k);
	return rc;
}

struct al_api_poll {
	struct al_api_poll *next;
	al_api *api;
	al_http_req *req;
	struct al_auth auth;
	char env[AL_ID_MAX];
	char worker_id[AL_ID_MAX];
	int64_t reclaim_ms;
	uint64_t deadline; /* uv_now() */
	uv_timer_t timer;
	al_bus_sub *watch;
	int claiming, again, closed, finished, timer_on;
};

static void poll_claim(struct al_api_poll *p);

static void poll_timer_closed_cb(uv_handle_t *h)
{
	al_free(h->data);
}

static void poll_unlink(struct al_api_poll *p)
{
	struct al_api_priv *pv = al_api_priv(p->api);

	for (struct al_api_poll **pp = &pv->polls; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
}

/* Answers (if not yet) and releases the poll; the timer close frees it. */
static void poll_finish(struct al_api_poll *p, int status, const char *body, size_t len)
{
	if (p->finished)
		return;
	p->finished = 1;
	if (p->watch != NULL)
		al_bus_unsubscribe(p->watch);
	p->watch = NULL;
	poll_unlink(p);
	if (body != NULL)
		al_http_respond(p->req, status, "application/json", body, len);
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, poll_timer_closed_cb);
}

static void poll_null(struct al_api_poll *p)
{
	poll_finish(p, 200, "null", 4);
}

static void poll_timer_cb(uv_timer_t *t)
{
	struct al_api_poll *p = t->data;

	p->timer_on = 0;
	if (!p->claiming)
		poll_claim(p); /* one last look, then null */
	else
		p->again = 1;
}

static void poll_wake_cb(const char *environment_id, void *ud)
{
	struct al_api_poll *p = ud;

	if (p->finished)
		return;
	if (p->claiming)
		p->again = 1;
	else
		poll_claim(p);
}

static void poll_close_cb(al_http_req *req, void *ud)
{
	struct al_api_poll *p = ud;

	p->closed = 1;
	if (!p->claiming)
		poll_null(p); /* a no-op response: the peer is gone */
}

static void claim_done(struct al_api_job *job, int rc)
{
	struct al_api_poll *p = (struct al_api_poll *)job->out; /* stashed, see poll_claim */
	struct claim *c = job->ud;
	uint64_t now;

	job->out = NULL;
	p->claiming = 0;
	if (rc < 0) {
		if (job->err_status != 0) {
			json_t *d = job->err_details;
			job->err_details = NULL;
			al_api_error_details(p->req, job->err_status, job->err_type, d, "%s",
					     job->err);
		} else {
			al_api_error_errno(p->req, rc, "work");
		}
		poll_finish(p, 0, NULL, 0);
		goto done;
	}
	if (c->found) {
		/* The delivery revoked the item's previous token: forget cached ones. */
		al_api_auth_cache_clear(p->api);
		al_info("api", "work %s of session %s delivered in %s", c->work_id, c->session_id,
			p->env);
		/* A lapsed lease: the loop reports session.status_rescheduled. */
		if (c->reclaimed == 2 && p->api->agent != NULL)
			al_agent_on_work_lost(p->api->agent, c->session_id);
		poll_finish(p, 200, c->body.data, c->body.len);
		goto done;
	}
	now = uv_now(p->api->loop);
	if (p->closed || p->api->draining || now >= p->deadline) {
		poll_null(p);
		goto done;
	}
	if (p->again) {
		p->again = 0;
		poll_claim(p);
		goto done;
	}
	if (p->watch == NULL &&
	    al_bus_watch_work(p->api->bus, p->env, poll_wake_cb, p, &p->watch) < 0) {
		poll_null(p);
		goto done;
	}
	if (!p->timer_on) {
		uv_timer_start(&p->timer, poll_timer_cb, p->deadline - now, 0);
		p->timer_on = 1;
	}
done:
	al_api_job_free(job);
}

static void poll_claim(struct al_api_poll *p)
{
	struct al_api_ctx ctx = {0};
	struct al_api_job *job;
	struct claim *c;

	ctx.api = p->api;
	ctx.req = p->req;
	ctx.auth = p->auth;
	ctx.params[0] = p->env;
	job = al_api_job_new(&ctx, claim_fn);
	c = al_calloc(1, sizeof(*c));
	if (job == NULL || c == NULL) {
		al_free(c);
		al_api_job_free(job);
		al_api_error_errno(p->req, -ENOMEM, "work");
		poll_finish(p, 0, NULL, 0);
		return;
	}
	al_api_strlcpy(c->worker_id, p->worker_id, sizeof(c->worker_id));
	c->reclaim_ms = p->reclaim_ms;
	job->ud = c;
	job->ud_free = claim_free;
	/* job->out carries the poll back to claim_done; claim_fn never touches it. */
	job->out = (json_t *)p;
	job->done = claim_done;
	p->claiming = 1;
	p->again = 0;
	al_api_job_submit(job);
}

static void note_worker(al_api *api, const char *env, const char *worker)
{
	struct al_api_priv *pv = al_api_priv(api);
	uint64_t now = al_mono_ms();
	struct al_poller_seen *slot = &pv->pollers[0];

	for (size_t i = 0; i < AL_API_POLLERS; i++) {
		struct al_poller_seen *s = &pv->pollers[i];
		if (strcmp(s->environment_id, env) == 0 && strcmp(s->worker_id, worker) == 0) {
			slot = s;
			break;
		}
		if (s->seen_ms < slot->seen_ms)
			slot = s;
	}
	al_api_strlcpy(slot->environment_id, env, AL_ID_MAX);
	al_api_strlcpy(slot->worker_id, worker, AL_ID_MAX);
	slot->seen_ms = now;
}

int al_work_workers_polling(al_api *api, const char *environment_id)
{
	struct al_api_priv *pv = al_api_priv(api);
	uint64_t now = al_mono_ms();
	int n = 0;

	for (size_t i = 0; i < AL_API_POLLERS; i++) {
		struct al_poller_seen *s = &pv->pollers[i];
		if (s->seen_ms != 0 && now - s->seen_ms <= WORKERS_WINDOW_MS &&
		    strcmp(s->environment_id, environment_id) == 0)
			n++;
	}
	return n;
}

void al_work_state_free(al_api *api)
{
	struct al_api_priv *pv = al_api_priv(api);

	struct al_api_poll *p = pv->polls, *next;

	/*
	 * A poll whose claim is on the store thread is left alone: its
	 * claim_done owns it and answers (the item it found, or null, since
	 * api->draining is set) — finishing it here would free it under that
	 * callback. Every other poll answers null now.
	 */
	while (p != NULL) {
		next = p->next;
		if (!p->claiming) {
			p->closed = 1;
			poll_null(p); /* unlinks p */
		}
		p = next;
	}
}

static int query_int(al_http_req *req, const char *name, long long lo, long long hi, long long *out)
{
	const char *v = al_http_req_query(req, name);
	char *end;

	if (v == NULL || v[0] == '\0')
		return 0;
	errno = 0;
	*out = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0' || *out < lo || *out > hi)
		return -EINVAL;
	return 1;
}

void al_api_work_poll(struct al_api_ctx *ctx)
{
	struct al_api_poll *p;
	const char *worker = al_http_req_header(ctx->req, "anthropic-worker-id");
	long long block = 0, reclaim = DEFAULT_RECLAIM_MS;

	if (query_int(ctx->req, "block_ms", 1, 999, &block) < 0) {
		al_api_error(ctx->req, 400, NULL, "block_ms: must be an integer from 1 to 999");
		return;
	}
	if (query_int(ctx->req, "reclaim_older_than_ms", 0, 86400000LL, &reclaim) < 0) {
		al_api_error(ctx->req, 400, NULL,
			     "reclaim_older_than_ms: must be a non-negative integer");
		return;
	}
	p = al_calloc(1, sizeof(*p));
	if (p == NULL) {
		al_api_error_errno(ctx->req, -ENOMEM, "work");
		return;
	}
	p->api = ctx->api;
	p->req = ctx->req;
	p->auth = ctx->auth;
	p->reclaim_ms = reclaim;
	p->deadline = uv_now(ctx->api->loop) + (uint64_t)block;
	al_api_strlcpy(p->env, ctx->params[0], sizeof(p->env));
	if (worker != NULL && worker[0] != '\0') {
		al_api_strlcpy(p->worker_id, worker, sizeof(p->worker_id));
		note_worker(ctx->api, p->env, p->worker_id);
	}
	uv_timer_init(ctx->api->loop, &p->timer);
	p->timer.data = p;
	p->next = al_api_priv(ctx->api)->polls;
	al_api_priv(ctx->api)->polls = p;
	al_http_req_on_close(ctx->req, poll_close_cb, p);
	poll_claim(p);
}

/* ---- ack, heartbeat, stop ---- */

static int ack_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	json_t *b = NULL;
	int rc;

	if ((rc = load_work(tx, job, &d, &b)) < 0)
		return rc;
	if (strcmp(d.state, "queued") == 0 || strcmp(d.state, "delivered") == 0) {
		al_api_set_time(b, "acknowledged_at", job->now_ms);
		json_object_set_new(b, "state", json_string("starting"));
		snprintf(d.state, sizeof(d.state), "starting");
		/* The lease clock starts now: an acked item that never beats is reclaimable. */
		d.sort_ms = d.updated_ms = job->now_ms;
		if ((rc = al_api_doc_set_body(&d, b)) < 0 ||
		    (rc = al_store_doc_update(tx, &d, 0)) < 0)
			goto done;
	} else if (strcmp(d.state, "starting") != 0) {
		rc =
		    al_api_job_fail(job, 409, NULL, "work item %s is %s and cannot be acknowledged",
				    job->p[1], d.state);
		goto done;
	}
	job->out = render_work(&d);
	rc = job->out ? 0 : -EIO;
done:
	json_decref(b);
	al_doc_clear(&d);
	return rc;
}

struct hb {
	int64_t ttl; /* 0: keep */
	char expected[64];
	int has_expected;
};

static json_t *lease_state(const char *last, int extended, const char *state, int64_t ttl)
{
	return json_pack("{s:o, s:b, s:s, s:I}", "last_heartbeat",
			 last ? json_string(last) : json_null(), "lease_extended", extended,
			 "state", api_state(state), "ttl_seconds", (json_int_t)ttl);
}

static int heartbeat_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct hb *h = job->ud;
	struct al_doc d;
	json_t *b = NULL, *lease;
	const char *last;
	int64_t ttl, hb_ms, last_ms = 0;
	char now_s[40];
	int rc;

	if ((rc = load_work(tx, job, &d, &b)) < 0)
		return rc;
	lease = lease_of(b);
	last = json_string_value(json_object_get(lease, "last_heartbeat"));
	ttl = json_integer_value(json_object_get(lease, "ttl_seconds"));
	if (ttl <= 0)
		ttl = DEFAULT_TTL_S;
	if (strcmp(d.state, "stopping") == 0 || strcmp(d.state, "stopped") == 0) {
		/* Documented: no comparison once stopping; the lease is not extended. */
		job->out = lease_state(last, 0, d.state, ttl);
		json_object_set_new(job->out, "type", json_string("work_heartbeat"));
		rc = 0;
		goto done;
	}
	if (h->has_expected && strcmp(h->expected, last ? last : "NO_HEARTBEAT") != 0) {
		json_t *det = json_pack("{s:s, s:o}", "error_code", "heartbeat_precondition_failed",
					"current_state", lease_state(last, 0, d.state, ttl));
		rc = al_api_job_fail(job, 412, NULL,
				     "expected_last_heartbeat does not match the lease of work "
				     "item %s",
				     job->p[1]);
		json_decref(job->err_details);
		job->err_details = det;
		goto done;
	}
	if (h->ttl > 0)
		ttl = h->ttl;
	/* Strictly increasing, so two beats in one millisecond still differ. */
	if (last != NULL)
		al_time_parse(last, &last_ms);
	hb_ms = job->now_ms > last_ms ? job->now_ms : last_ms + 1;
	if ((rc = al_time_format(hb_ms, now_s, sizeof(now_s))) < 0)
		goto done;
	json_object_set_new(lease, "last_heartbeat", json_string(now_s));
	json_object_set_new(lease, "ttl_seconds", json_integer(ttl));
	if (json_is_null(json_object_get(b, "acknowledged_at")))
		al_api_set_time(b, "acknowledged_at", hb_ms);
	if (json_is_null(json_object_get(b, "started_at")))
		al_api_set_time(b, "started_at", hb_ms);
	json_object_set_new(b, "latest_heartbeat_at", json_string(now_s));
	json_object_set_new(b, "state", json_string("active"));
	snprintf(d.state, sizeof(d.state), "active");
	d.sort_ms = d.updated_ms = hb_ms;
	if ((rc = al_api_doc_set_body(&d, b)) < 0 || (rc = al_store_doc_update(tx, &d, 0)) < 0)
		goto done;
	job->out = lease_state(now_s, 1, "active", ttl);
	if (job->out == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	json_object_set_new(job->out, "type", json_string("work_heartbeat"));
done:
	json_decref(b);
	al_doc_clear(&d);
	return rc;
}

static int stop_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	json_t *b = NULL;
	int force = json_is_true(json_object_get(job->in, "force"));
	int rc;

	if ((rc = load_work(tx, job, &d, &b)) < 0)
		return rc;
	if (strcmp(d.state, "stopped") == 0) {
		rc = al_api_job_fail(job, 409, NULL, "work item %s is already stopped", job->p[1]);
		goto done;
	}
	if (force || strcmp(d.state, "queued") == 0 || strcmp(d.state, "delivered") == 0)
		rc = set_stopped(tx, &d, b, job->now_ms);
	else if (strcmp(d.state, "stopping") != 0)
		rc = set_stopping(tx, &d, b, job->now_ms);
	if (rc < 0)
		goto done;
	job->out = render_work(&d);
	rc = job->out ? 0 : -EIO;
done:
	json_decref(b);
	al_doc_clear(&d);
	return rc;
}

static void stop_done(struct al_api_job *job, int rc)
{
	/* A stopped item's sessions token was revoked in the transaction. */
	if (rc >= 0)
		al_api_auth_cache_clear(job->api);
	al_api_job_reply(job, rc);
}

static void submit(struct al_api_ctx *ctx, al_api_job_fn fn, json_t *in, void *ud,
		   void (*ud_free)(void *), al_api_job_done_cb done)
{
	struct al_api_job *job = al_api_job_new(ctx, fn);

	if (job == NULL) {
		json_decref(in);
		if (ud_free)
			ud_free(ud);
		al_api_error_errno(ctx->req, -ENOMEM, "work");
		return;
	}
	job->in = in;
	job->ud = ud;
	job->ud_free = ud_free;
	job->done = done;
	al_api_job_submit(job);
}

void al_api_work_ack(struct al_api_ctx *ctx)
{
	submit(ctx, ack_fn, NULL, NULL, NULL, NULL);
}

void al_api_work_heartbeat(struct al_api_ctx *ctx)
{
	struct hb *h;
	long long ttl = 0;
	const char *exp = al_http_req_query(ctx->req, "expected_last_heartbeat");

	if (query_int(ctx->req, "desired_ttl_seconds", 1, 86400, &ttl) < 0) {
		al_api_error(ctx->req, 400, NULL,
			     "desired_ttl_seconds: must be an integer from 1 to 86400");
		return;
	}
	if (exp != NULL && strlen(exp) >= 64) {
		al_api_error(ctx->req, 400, NULL, "expected_last_heartbeat: too long");
		return;
	}
	if ((h = al_calloc(1, sizeof(*h))) == NULL) {
		al_api_error_errno(ctx->req, -ENOMEM, "work");
		return;
	}
	h->ttl = ttl > MAX_TTL_S ? MAX_TTL_S : ttl;
	if (exp != NULL && exp[0] != '\0') {
		h->has_expected = 1;
		al_api_strlcpy(h->expected, exp, sizeof(h->expected));
	}
	submit(ctx, heartbeat_fn, NULL, h, al_free, NULL);
}

int al_work_validate_stop(const json_t *body, char *err, size_t errlen)
{
	static const struct al_field f[] = {{"force", AL_F_BOOL, 0}, {NULL, 0, 0}};

	return al_decode_check(body, f, "", err, errlen);
}

int al_work_validate_update(const json_t *body, char *err, size_t errlen)
{
	static const struct al_field f[] = {{"metadata", AL_F_STRMAP_NULL, AL_F_REQUIRED},
					    {NULL, 0, 0}};

	return al_decode_check(body, f, "", err, errlen);
}

void al_api_work_stop(struct al_api_ctx *ctx)
{
	json_t *in = NULL;

	if (al_api_body(ctx, 1, al_work_validate_stop, &in) < 0)
		return;
	submit(ctx, stop_fn, in, NULL, NULL, stop_done);
}

/* ---- read and metadata ---- */

static int get_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	json_t *b = NULL;
	int rc;

	if ((rc = load_work(tx, job, &d, &b)) < 0)
		return rc;
	json_decref(b);
	job->out = render_work(&d);
	al_doc_clear(&d);
	return job->out ? 0 : -EIO;
}

void al_api_work_get(struct al_api_ctx *ctx)
{
	submit(ctx, get_fn, NULL, NULL, NULL, NULL);
}

static int update_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	json_t *b = NULL, *md;
	char err[ERRLEN];
	int rc;

	if ((rc = load_work(tx, job, &d, &b)) < 0)
		return rc;
	md = json_object_get(b, "metadata");
	if (!json_is_object(md)) {
		md = json_object();
		json_object_set_new(b, "metadata", md);
	}
	if (al_api_metadata_patch(md, json_object_get(job->in, "metadata"), err, sizeof(err)) < 0) {
		rc = al_api_job_fail(job, 400, NULL, "%s", err);
		goto done;
	}
	d.updated_ms = job->now_ms;
	if ((rc = al_api_doc_set_body(&d, b)) < 0 || (rc = al_store_doc_update(tx, &d, 0)) < 0)
		goto done;
	job->out = render_work(&d);
	rc = job->out ? 0 : -EIO;
done:
	json_decref(b);
	al_doc_clear(&d);
	return rc;
}

void al_api_work_update(struct al_api_ctx *ctx)
{
	json_t *in = NULL;

	if (al_api_body(ctx, 0, al_work_validate_update, &in) < 0)
		return;
	submit(ctx, update_fn, in, NULL, NULL, NULL);
}

static json_t *render_list(const struct al_doc *d, void *ud, int *err)
{
	json_t *w = render_work(d);

	if (w == NULL)
		*err = -EIO;
	return w;
}

static int list_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc_query q = {0};
	int rc;

	if ((rc = check_env(tx, job)) < 0)
		return rc;
	q.ref = job->p[0];
	q.include_archived = 1;
	return al_api_list_docs(tx, "work", &q, job->ud, 0, render_list, NULL, &job->out);
}

void al_api_work_list(struct al_api_ctx *ctx)
{
	struct al_api_page *pg = al_calloc(1, sizeof(*pg));
	char err[ERRLEN];

	if (pg == NULL) {
		al_api_error_errno(ctx->req, -ENOMEM, "work");
		return;
	}
	if (al_api_page_parse(ctx->req, "work", 20, 100, 1, 0, pg, err, sizeof(err)) < 0) {
		al_api_error(ctx->req, 400, NULL, "%s", err);
		al_free(pg);
		return;
	}
	submit(ctx, list_fn, NULL, pg, al_free, NULL);
}

static int count_state(al_store_tx *tx, const char *env, const char *state, int64_t *n)
{
	const char *states[] = {state, NULL};
	struct al_doc_query q = {0};

	q.ref = env;
	q.states = states;
	q.include_archived = 1;
	return al_store_doc_count(tx, "work", &q, n);
}

static int stats_fn(al_store_tx *tx, struct al_api_job *job)
{
	const char *waiting[] = {"queued", "delivered", NULL};
	struct al_doc_query q = {0};
	struct al_doc *docs = NULL;
	size_t n = 0;
	int64_t depth = 0, pending = 0;
	int more = 0, rc;

	if ((rc = check_env(tx, job)) < 0)
		return rc;
	if ((rc = count_state(tx, job->p[0], "queued", &depth)) < 0 ||
	    (rc = count_state(tx, job->p[0], "delivered", &pending)) < 0)
		return rc;
	q.ref = job->p[0];
	q.states = waiting;
	q.include_archived = 1;
	q.limit = 1;
	if ((rc = al_store_doc_list(tx, "work", &q, &docs, &n, &more)) < 0)
		return rc;
	job->out = json_pack("{s:s, s:I, s:I, s:o, s:n}", "type", "work_queue_stats", "depth",
			     (json_int_t)depth, "pending", (json_int_t)pending, "oldest_queued_at",
			     al_api_time_json(n > 0 ? docs[0].created_ms : 0), "workers_polling");
	al_doc_array_free(docs, n);
	return job->out ? 0 : -ENOMEM;
}

static void stats_done(struct al_api_job *job, int rc)
{
	/* Poll bookkeeping lives on the loop thread, so it is filled in here. */
	if (rc >= 0 && job->out != NULL)
		json_object_set_new(job->out, "workers_polling",
				    json_integer(al_work_workers_polling(job->api, job->p[0])));
	al_api_job_reply(job, rc);
}

void al_api_work_stats(struct al_api_ctx *ctx)
{
	submit(ctx, stats_fn, NULL, NULL, NULL, stats_done);
}
