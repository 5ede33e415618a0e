/*
 * internal.h - helpers shared by the control plane's resource handlers.
 *
 * Every request that touches the store runs as one "job": the handler
 * validates its input on the loop thread, copies what it needs into an
 * al_api_job, and submits a job function that runs on the store thread
 * inside ONE transaction. The function either fills job->out (committed) or
 * sets a domain error with al_api_job_fail and returns < 0 (rolled back), so
 * a failed request never leaves half its writes behind. The completion runs
 * on the loop thread and answers the request.
 *
 * Not an installed interface: only src/api/ (and its tests and fuzzer) use it.
 */
#ifndef AL_API_INTERNAL_H
#define AL_API_INTERNAL_H

#include "api/api.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>

/* The beta every Managed Agents request must name in anthropic-beta. */
#define AL_API_BETA "managed-agents-2026-04-01"

/* ---- jobs ---- */

struct al_api_job;
/* Runs on the store thread. Return >= 0 to commit, < 0 to roll back. */
typedef int (*al_api_job_fn)(al_store_tx *tx, struct al_api_job *job);
/* Runs on the loop thread after the transaction; replaces the default reply. */
typedef void (*al_api_job_done_cb)(struct al_api_job *job, int rc);

struct al_api_job {
	al_api *api;
	al_http_req *req;		      /* borrowed: valid until the job answers */
	struct al_auth auth;		      /* copy of the caller's identity */
	char p[AL_API_MAX_PARAMS][AL_ID_MAX]; /* copies of the path parameters */
	int64_t now_ms;			      /* request time, fixed once for the job */
	json_t *in;			      /* owned: decoded body (or NULL) */
	json_t *out;			      /* owned: response body on success */
	int status;			      /* success status; 200 unless set */
	/* A domain error set from the store thread with al_api_job_fail. */
	int err_status;
	const char *err_type;
	json_t *err_details; /* owned */
	char err[256];
	al_api_job_fn fn;
	al_api_job_done_cb done; /* NULL: answer with out or the error */
	void *ud;		 /* resource-specific state */
	void (*ud_free)(void *ud);
};

/* Copies auth and params from ctx. NULL on allocation failure. */
struct al_api_job *al_api_job_new(struct al_api_ctx *ctx, al_api_job_fn fn);
/*
 * Submits the job. On failure answers 503 and frees the job, so the caller
 * never touches it again either way.
 */
void al_api_job_submit(struct al_api_job *job);
/*
 * The common case: a job with no input of its own, finished by `done`
 * (NULL: the default reply). Answers 529 overloaded if it cannot be made.
 */
void al_api_submit(struct al_api_ctx *ctx, al_api_job_fn fn, al_api_job_done_cb done,
		   const char *what);
void al_api_job_free(struct al_api_job *job);
/* Default reply: out with status, or the recorded error. Frees the job. */
void al_api_job_reply(struct al_api_job *job, int rc);
/*
 * Records a domain error (store thread) and returns -EPROTO so the job
 * function can `return al_api_job_fail(...)` and roll back.
 */
int al_api_job_fail(struct al_api_job *job, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As al_api_job_fail with details.error_code set to code. */
int al_api_job_fail_code(struct al_api_job *job, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- request bodies ---- */

/* Checks a decoded body; -EINVAL with err set when it is not acceptable. */
typedef int (*al_api_validate_fn)(const json_t *body, char *err, size_t errlen);

/*
 * Decodes the request body (al_decode_body: strict JSON object; empty_ok
 * lets an empty body stand for {}), then runs validate on it when not NULL.
 * 0 with *in owned by the caller, or -EINVAL with *in NULL after answering
 * 400 with the reason, so the handler only returns.
 */
int al_api_body(struct al_api_ctx *ctx, int empty_ok, al_api_validate_fn validate, json_t **in);

/*
 * Validates a create (is_update 0, current NULL) or update body and builds
 * the object to store into *out (new reference). -EINVAL with err set.
 */
typedef int (*al_api_build_fn)(const json_t *body, int is_update, const json_t *current,
			       json_t **out, char *err, size_t errlen);

/*
 * Handles a create: decodes the body, builds the object with build (a 400
 * when it refuses), and submits fn with the built object already in
 * job->out for fn to complete and insert. noun names the resource in an
 * out-of-memory error.
 */
void al_api_create(struct al_api_ctx *ctx, al_api_build_fn build, al_api_job_fn fn,
		   const char *noun);

/* ---- documents and JSON ---- */

/* Parses d->body; NULL if it is not a JSON object. New reference. */
json_t *al_api_doc_json(const struct al_doc *d);
/*
 * Loads kind/id into *doc (caller clears it) and its parsed body into *obj
 * (new reference). -ENOENT if absent, -EIO if the body is not an object.
 */
int al_api_load(al_store_tx *tx, const char *kind, const char *id, struct al_doc *doc,
		json_t **obj);
/* Serialises obj compactly into d->body (replacing it). */
int al_api_doc_set_body(struct al_doc *d, const json_t *obj);
/*
 * Archives d (a no-op when it already is): stamps archived_at/updated_at in
 * obj, its parsed body, makes obj the body and writes it with
 * al_store_doc_update(tx, d, expected_version). Store thread only.
 */
int al_api_doc_archive(al_store_tx *tx, struct al_doc *d, json_t *obj, int64_t now_ms,
		       int64_t expected_version);
/* RFC 3339 string for ms, or JSON null when ms == 0. New reference. */
json_t *al_api_time_json(int64_t ms);
/* Sets obj[key] to al_api_time_json(ms). */
int al_api_set_time(json_t *obj, const char *key, int64_t ms);
/* Copies a string into a fixed buffer, truncating; always terminates. */
void al_api_strlcpy(char *dst, const char *src, size_t n);
/*
 * Applies a metadata patch: string values upsert, null deletes. Validates
 * the limits (16 keys, key <= 64, value <= 512). -EINVAL with err set.
 */
int al_api_metadata_patch(json_t *metadata, const json_t *patch, char *err, size_t errlen);

/* ---- pagination ---- */

/*
 * A page request, parsed from ?limit= and ?page= (and the created_at[...]
 * filters, which become id bounds since ids sort by creation time).
 * The page token is "n.<id>" (continue after id in list order) or "p.<id>"
 * (the page before id); it is opaque to clients.
 */
struct al_api_page {
	size_t limit;
	int descending; /* list order */
	int backward;	/* the token was "p.": walk against the list order */
	int has_cursor;
	char cursor[AL_ID_MAX];
	char after_id[AL_ID_MAX];		/* from created_at filters, "" if none */
	char before_id[AL_ID_MAX];		/* from created_at filters, "" if none */
	int64_t created_gte_ms, created_lte_ms; /* inclusive bounds; 0 / INT64_MAX: none */
};

/*
 * Parses the page parameters. prefix is the id prefix of the listed kind
 * (for created_at bounds); order_param non-zero accepts ?order=asc|desc.
 * 0, or -EINVAL with err naming the parameter.
 */
int al_api_page_parse(al_http_req *req, const char *prefix, size_t def_limit, size_t max_limit,
		      int default_desc, int order_param, struct al_api_page *pg, char *err,
		      size_t errlen);
/* Boolean query parameter: absent -> def; "true"/"false"/"1"/"0". -EINVAL otherwise. */
int al_api_query_bool(al_http_req *req, const char *name, int def, int *out);
/*
 * Every value of an array query parameter, in the SDK's "brackets" format
 * (name[]=a&name[]=b) or repeated plain name=a&name=b. Returns a new JSON
 * array of strings (empty when absent), or NULL on a malformed target.
 */
json_t *al_api_query_array(al_http_req *req, const char *name);
/*
 * Makes the smallest (hi = 0) or largest (hi = 1) id a given millisecond
 * can produce, for turning created_at bounds into id bounds.
 */
int al_api_id_at(const char *prefix, int64_t ms, int hi, char *out, size_t len);

/*
 * Renders one document for a list; returns NULL to skip it (an in-memory
 * filter), or sets *err < 0 to abort the listing.
 */
typedef json_t *(*al_api_render_fn)(const struct al_doc *d, void *ud, int *err);

/*
 * Lists documents of `kind` matching q (its cursor fields and limit are
 * set here) into a page object {data, next_page[, prev_page]}. Store
 * thread only.
 */
int al_api_list_docs(al_store_tx *tx, const char *kind, const struct al_doc_query *q,
		     const struct al_api_page *pg, int bidirectional, al_api_render_fn render,
		     void *ud, json_t **out);
/*
 * Handles GET /v1/<kind>s for a kind whose list has no filter beyond the
 * page parameters (prefix: its id prefix) and ?include_archived: every doc
 * is answered as stored, newest first. kind is a static string; noun names
 * the list in an out-of-memory error.
 */
void al_api_list_plain(struct al_api_ctx *ctx, const char *kind, const char *prefix,
		       const char *noun);

/* ---- per-process state behind the public al_api ---- */

#define AL_API_AUTH_CACHE 128
#define AL_API_POLLERS	  256

struct al_auth_cache_entry {
	char hash[65];	     /* SHA-256 hex of the credential, "" when free */
	uint64_t expires_ms; /* monotonic */
	struct al_auth auth;
};

struct al_poller_seen {
	char environment_id[AL_ID_MAX];
	char worker_id[AL_ID_MAX];
	uint64_t seen_ms; /* monotonic */
};

/*
 * al_api_start allocates this and hands out &priv->pub; everything in
 * src/api/ reaches the private part with al_api_priv(api).
 */
struct al_api_priv {
	al_api pub; /* first: the public part */
	struct al_auth_cache_entry cache[AL_API_AUTH_CACHE];
	struct al_poller_seen pollers[AL_API_POLLERS];
	struct al_api_poll *polls; /* blocked long-polls (work.c), a list */
	void (*drain_cb)(al_api *api, void *ud);
	void *drain_ud;
	struct al_api_agent_wait *agent_wait; /* app.c: drain waiting for model calls */
};

static inline struct al_api_priv *al_api_priv(al_api *api)
{
	return (struct al_api_priv *)api;
}

/* ---- routing (router.c, routes.c) ---- */

/* The route table. */
const struct al_api_route *al_api_routes(size_t *n);
/*
 * Finds the route for method + path. Returns 0 with *out and params set,
 * -ENOENT when no pattern matches the path (404), -EOPNOTSUPP when a
 * pattern matches but not the method (405; allow lists the methods).
 */
int al_api_route_match(const struct al_api_route *routes, size_t n, const char *method,
		       const char *path, const struct al_api_route **out,
		       char params[AL_API_MAX_PARAMS][AL_ID_MAX], char *allow, size_t allowlen);
/*
 * Whether an authenticated caller may call route with these params (the
 * scope rule: an environment key reaches only its environment, a sessions
 * token only its session and its own work item). 1 allowed, 0 forbidden.
 */
int al_api_auth_allowed(const struct al_auth *auth, const struct al_api_route *route,
			char params[AL_API_MAX_PARAMS][AL_ID_MAX]);
/* The HTTP handler given to al_http_server_start (ud is the al_api). */
void al_api_router_cb(al_http_req *req, void *ud);

/* ---- auth ---- */

/*
 * A credential is stored as its SHA-256: the doc's ref column holds the
 * first AL_ID_MAX-1 (63) hex digits, which is what the index can hold, and
 * the body's "sha256" holds all 64, compared in constant time on lookup.
 */
void al_api_key_ref(const char *hash_hex, char ref[AL_ID_MAX]);

/* Drops every cached credential (call after any revocation). */
void al_api_auth_cache_clear(al_api *api);
/*
 * Deletes every key doc of the given state ("environment", "session")
 * bound (ref2) to owner, archived or not. Store thread only. 0 or < 0.
 */
int al_api_keys_delete_owned(al_store_tx *tx, const char *state, const char *owner);
/*
 * Job completion for anything that deleted keys: on success drops the
 * credential cache, then answers as al_api_job_reply does.
 */
void al_api_keys_revoked_done(struct al_api_job *job, int rc);
/* Frees the cache (al_api_free). */
void al_api_auth_cache_free(al_api *api);

/* ---- work queue (work.c) ---- */

/* How many workers polled an environment recently (for stats). */
int al_work_workers_polling(al_api *api, const char *environment_id);
/* Frees the per-process poll bookkeeping. */
void al_work_state_free(al_api *api);

/* ---- agents (agents.c): shared with sessions.c ---- */

/*
 * Validates an agent create body and builds the stored agent object
 * (without id/timestamps/version). -EINVAL with err set on bad input.
 */
int al_agent_build(const json_t *body, int is_update, const json_t *current, json_t **out,
		   char *err, size_t errlen);
/* The session's snapshot of an agent object (BetaManagedAgentsSessionAgent). */
json_t *al_agent_session_snapshot(const json_t *agent);

/* ---- environments (environments.c) ---- */
int al_environment_build(const json_t *body, int is_update, const json_t *current, json_t **out,
			 char *err, size_t errlen);

/* ---- sessions / events ---- */

/*
 * Loads the session named by job->p[0] into *d (caller clears it on
 * success), enforcing the environment-key scope: such a key reaches only
 * sessions of its own environment. Store thread only. 0, or < 0 with the
 * 404/403 recorded on job (nothing in d to clear).
 */
int al_api_session_load(al_store_tx *tx, struct al_api_job *job, struct al_doc *d);
int al_session_validate_create(const json_t *body, char *err, size_t errlen);
/* Validates one event a client sends (user.* / system.message). */
int al_event_validate(const json_t *ev, size_t index, char *err, size_t errlen);

/* ---- work (work.c) ---- */
int al_work_validate_stop(const json_t *body, char *err, size_t errlen);
int al_work_validate_update(const json_t *body, char *err, size_t errlen);

/* ---- handlers (routes.c lists them) ---- */
void al_api_agents_create(struct al_api_ctx *ctx);
void al_api_agents_list(struct al_api_ctx *ctx);
void al_api_agents_get(struct al_api_ctx *ctx);
void al_api_agents_update(struct al_api_ctx *ctx);
void al_api_agents_archive(struct al_api_ctx *ctx);

void al_api_environments_create(struct al_api_ctx *ctx);
void al_api_environments_list(struct al_api_ctx *ctx);
void al_api_environments_get(struct al_api_ctx *ctx);
void al_api_environments_update(struct al_api_ctx *ctx);
void al_api_environments_archive(struct al_api_ctx *ctx);
void al_api_environments_delete(struct al_api_ctx *ctx);

void al_api_keys_create(struct al_api_ctx *ctx);
void al_api_keys_revoke(struct al_api_ctx *ctx);

void al_api_sessions_create(struct al_api_ctx *ctx);
void al_api_sessions_list(struct al_api_ctx *ctx);
void al_api_sessions_get(struct al_api_ctx *ctx);
void al_api_sessions_update(struct al_api_ctx *ctx);
void al_api_sessions_delete(struct al_api_ctx *ctx);
void al_api_sessions_archive(struct al_api_ctx *ctx);

void al_api_events_list(struct al_api_ctx *ctx);
void al_api_events_send(struct al_api_ctx *ctx);
void al_api_events_stream(struct al_api_ctx *ctx);

void al_api_work_poll(struct al_api_ctx *ctx);
void al_api_work_stats(struct al_api_ctx *ctx);
void al_api_work_list(struct al_api_ctx *ctx);
void al_api_work_get(struct al_api_ctx *ctx);
void al_api_work_update(struct al_api_ctx *ctx);
void al_api_work_ack(struct al_api_ctx *ctx);
void al_api_work_heartbeat(struct al_api_ctx *ctx);
void al_api_work_stop(struct al_api_ctx *ctx);

#endif
