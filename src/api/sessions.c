/*
 * sessions.c - /v1/sessions: create (snapshotting the agent), list with
 * filters, retrieve, update, delete, archive.
 *
 * A session doc: kind "session", ref = agent id, ref2 = environment id,
 * state = status. The body is the API object; `status`, `updated_at` and
 * `archived_at` are rendered from the doc's columns because the bus changes
 * the status column inside its own append transaction.
 *
 * Creation snapshots the agent (current version, or the pinned one) so later
 * agent updates do not change a running session. `initial_events` are
 * appended through the bus after the session commits, like any POST /events.
 */
#include "api/internal.h"

#include "api/decode.h"
#include "api/work.h"
#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 256

static const char *const statuses[] = {"rescheduling", "running", "idle", "terminated", NULL};

/* The API object for a session doc (new reference), or NULL. */
static json_t *render_session(const struct al_doc *d)
{
	json_t *s = al_api_doc_json(d);

	if (s == NULL)
		return NULL;
	if (d->state[0] != '\0')
		json_object_set_new(s, "status", json_string(d->state));
	al_api_set_time(s, "updated_at", d->updated_ms);
	al_api_set_time(s, "archived_at", d->archived_ms);
	return s;
}

int al_session_validate_create(const json_t *body, char *err, size_t errlen)
{
	static const struct al_field f[] = {{"agent", AL_F_ANY, AL_F_REQUIRED},
					    {"environment_id", AL_F_STRING, AL_F_REQUIRED},
					    {"budget", AL_F_OBJECT, 0},
					    {"initial_events", AL_F_ARRAY, 0},
					    {"metadata", AL_F_STRMAP, 0},
					    {"resources", AL_F_ARRAY, 0},
					    {"title", AL_F_STRING, AL_F_NULLABLE},
					    {"vault_ids", AL_F_ARRAY, 0},
					    {NULL, 0, 0}};
	static const struct al_field fref[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
					       {"id", AL_F_STRING, AL_F_REQUIRED},
					       {"version", AL_F_INT, 0},
					       {NULL, 0, 0}};
	static const struct al_field fover[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
						{"id", AL_F_STRING, AL_F_REQUIRED},
						{"version", AL_F_INT, 0},
						{"mcp_servers", AL_F_ARRAY, 0},
						{"model", AL_F_ANY, 0},
						{"skills", AL_F_ARRAY, 0},
						{"system", AL_F_STRING, AL_F_NULLABLE},
						{"tools", AL_F_ARRAY, 0},
						{NULL, 0, 0}};
	const json_t *a, *v;
	size_t i;

	if (al_decode_check(body, f, "", err, errlen) < 0)
		return -EINVAL;
	a = json_object_get(body, "agent");
	if (json_is_string(a)) {
		if (al_decode_string(a, "agent", AL_ID_MAX - 1, err, errlen) < 0)
			return -EINVAL;
	} else if (json_is_object(a)) {
		const char *t = json_string_value(json_object_get(a, "type"));
		if (t == NULL ||
		    (strcmp(t, "agent") != 0 && strcmp(t, "agent_with_overrides") != 0)) {
			snprintf(err, errlen,
				 "agent.type: must be 'agent' or 'agent_with_overrides'");
			return -EINVAL;
		}
		if (al_decode_check(a, t[5] == '\0' ? fref : fover, "agent", err, errlen) < 0 ||
		    al_decode_string(json_object_get(a, "id"), "agent.id", AL_ID_MAX - 1, err,
				     errlen) < 0)
			return -EINVAL;
		v = json_object_get(a, "version");
		if (v != NULL && json_integer_value(v) < 1) {
			snprintf(err, errlen, "agent.version: must be >= 1");
			return -EINVAL;
		}
	} else {
		snprintf(err, errlen, "agent: expected a string or an object, got %s",
			 al_decode_type_name(a));
		return -EINVAL;
	}
	if (al_decode_string(json_object_get(body, "environment_id"), "environment_id",
			     AL_ID_MAX - 1, err, errlen) < 0)
		return -EINVAL;
	if (json_array_size(json_object_get(body, "resources")) > 0) {
		snprintf(err, errlen, "resources: session resources are not supported by airlock");
		return -EINVAL;
	}
	json_array_foreach(json_object_get(body, "vault_ids"), i, v) if (!json_is_string(v))
	{
		snprintf(err, errlen, "vault_ids[%zu]: expected a string", i);
		return -EINVAL;
	}
	json_array_foreach(json_object_get(body, "initial_events"), i, v)
	{
		const char *t = json_string_value(json_object_get(v, "type"));
		if (t == NULL ||
		    (strcmp(t, "user.message") != 0 && strcmp(t, "user.define_outcome") != 0)) {
			snprintf(err, errlen,
				 "initial_events[%zu].type: must be 'user.message' or "
				 "'user.define_outcome'",
				 i);
			return -EINVAL;
		}
		if (al_event_validate(v, i, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

static int create_fn(al_store_tx *tx, struct al_api_job *job)
{
	const json_t *in = job->in, *aref = json_object_get(in, "agent");
	const char *agent_id, *env_id = json_string_value(json_object_get(in, "environment_id"));
	struct al_doc ad = {0}, ed = {0}, sd = {0};
	json_t *agent = NULL, *env = NULL, *snap = NULL, *s = NULL, *v;
	int64_t version = 0;
	char vid[AL_ID_MAX + 24], err[ERRLEN];
	int rc;

	agent_id = json_is_string(aref) ? json_string_value(aref)
					: json_string_value(json_object_get(aref, "id"));
	if (json_is_object(aref) && (v = json_object_get(aref, "version")) != NULL)
		version = json_integer_value(v);
	rc = al_api_load(tx, "agent", agent_id, &ad, &agent);
	if (rc == -ENOENT) {
		rc = al_api_job_fail(job, 404, NULL, "agent %s not found", agent_id);
		goto done;
	}
	if (rc < 0)
		goto done;
	if (ad.archived_ms != 0) {
		rc = al_api_job_fail(job, 400, NULL, "agent %s is archived", agent_id);
		goto done;
	}
	if (version > 0 && version != json_integer_value(json_object_get(agent, "version"))) {
		struct al_doc vd;
		json_decref(agent);
		agent = NULL;
		snprintf(vid, sizeof(vid), "%s.v%lld", agent_id, (long long)version);
		rc = al_api_load(tx, "agent_version", vid, &vd, &agent);
		if (rc == -ENOENT) {
			rc = al_api_job_fail(job, 404, NULL, "agent %s has no version %lld",
					     agent_id, (long long)version);
			goto done;
		}
		if (rc < 0)
			goto done;
		al_doc_clear(&vd);
	}
	rc = al_api_load(tx, "environment", env_id, &ed, &env);
	if (rc == -ENOENT) {
		rc = al_api_job_fail_code(job, 404, "environment_not_found",
					  "environment %s not found", env_id);
		goto done;
	}
	if (rc < 0)
		goto done;
	if (ed.archived_ms != 0) {
		rc = al_api_job_fail_code(job, 400, "environment_archived",
					  "environment %s is archived", env_id);
		goto done;
	}
	snap = al_agent_session_snapshot(agent);
	if (snap == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if (json_is_object(aref) &&
	    strcmp(json_string_value(json_object_get(aref, "type")), "agent_with_overrides") == 0) {
		/* Overrides apply to this session's snapshot only, like an update would. */
		json_t *ov = json_deep_copy(aref), *merged = NULL;
		json_object_del(ov, "type");
		json_object_del(ov, "id");
		json_object_del(ov, "version");
		rc = al_agent_build(ov, 1, snap, &merged, err, sizeof(err));
		json_decref(ov);
		if (rc < 0) {
			rc = al_api_job_fail(job, 400, NULL, "agent.%s", err);
			goto done;
		}
		json_decref(snap);
		snap = merged;
	}
	snprintf(sd.kind, sizeof(sd.kind), "session");
	if ((rc = al_id_new("sesn", sd.id, sizeof(sd.id))) < 0)
		goto done;
	al_api_strlcpy(sd.ref, agent_id, sizeof(sd.ref));
	al_api_strlcpy(sd.ref2, env_id, sizeof(sd.ref2));
	snprintf(sd.state, sizeof(sd.state), "idle");
	sd.created_ms = sd.updated_ms = job->now_ms;
	s = json_pack("{s:s, s:s, s:O, s:n, s:n, s:s, s:{}, s:[], s:[], s:{}, s:s, s:n, s:{}, "
		      "s:[]}",
		      "id", sd.id, "type", "session", "agent", snap, "archived_at", "budget",
		      "environment_id", env_id, "metadata", "outcome_evaluations", "resources",
		      "stats", "status", "idle", "title", "usage", "vault_ids");
	if (s != NULL) {
		static const char *const copy[] = {"metadata", "title", "vault_ids", NULL};
		for (int i = 0; copy[i]; i++)
			if ((v = json_object_get(in, copy[i])) != NULL)
				json_object_set(s, copy[i], v);
	}
	if (s == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if ((v = json_object_get(in, "budget")) != NULL)
		json_object_set(s, "budget", v);
	al_api_set_time(s, "created_at", job->now_ms);
	al_api_set_time(s, "updated_at", job->now_ms);
	if ((rc = al_api_doc_set_body(&sd, s)) < 0 || (rc = al_store_doc_insert(tx, &sd)) < 0)
		goto done;
	job->out = s;
	s = NULL;
done:
	json_decref(agent);
	json_decref(env);
	json_decref(snap);
	json_decref(s);
	al_doc_clear(&ad);
	al_doc_clear(&ed);
	al_doc_clear(&sd);
	return rc;
}

static void initial_done_cb(int rc, json_t *events, void *ud)
{
	struct al_api_job *job = ud;

	if (rc < 0)
		/* The session exists; the client sees the failure and can resend. */
		al_api_error_errno(job->req, rc, "initial_events");
	else
		al_http_respond_json(job->req, 200, json_incref(job->out));
	al_api_job_free(job);
}

static void create_done(struct al_api_job *job, int rc)
{
	json_t *evs = json_object_get(job->in, "initial_events");
	const char *sid;

	if (rc < 0 || job->out == NULL || json_array_size(evs) == 0) {
		al_api_job_reply(job, rc);
		return;
	}
	sid = json_string_value(json_object_get(job->out, "id"));
	if (al_bus_append(job->api->bus, sid, evs, NULL, initial_done_cb, job) < 0) {
		al_api_error(job->req, 503, NULL, "could not queue initial_events");
		al_api_job_free(job);
	}
}

void al_api_sessions_create(struct al_api_ctx *ctx)
{
	json_t *in = NULL;
	struct al_api_job *job;

	if (al_api_body(ctx, 0, al_session_validate_create, &in) < 0)
		return;
	if ((job = al_api_job_new(ctx, create_fn)) == NULL) {
		json_decref(in);
		al_api_error_errno(ctx->req, -ENOMEM, "session");
		return;
	}
	job->in = in;
	job->done = create_done;
	al_api_job_submit(job);
}

int al_api_session_load(al_store_tx *tx, struct al_api_job *job, struct al_doc *d)
{
	int rc;

	memset(d, 0, sizeof(*d));
	rc = al_store_doc_get(tx, "session", job->p[0], d);
	if (rc == -ENOENT)
		return al_api_job_fail(job, 404, NULL, "session %s not found", job->p[0]);
	if (rc < 0)
		return rc;
	if (job->auth.kind == AL_AUTH_ENVIRONMENT &&
	    strcmp(d->ref2, job->auth.environment_id) != 0) {
		al_doc_clear(d);
		return al_api_job_fail(job, 403, NULL,
				       "this environment key may not access session %s", job->p[0]);
	}
	return 0;
}

static int get_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	int rc = al_api_session_load(tx, job, &d);

	if (rc < 0)
		return rc;
	job->out = render_session(&d);
	al_doc_clear(&d);
	return job->out ? 0 : -EIO;
}

void al_api_sessions_get(struct al_api_ctx *ctx)
{
	al_api_submit(ctx, get_fn, NULL, "session");
}

struct list_ud {
	struct al_api_page pg;
	int include_archived;
	int64_t agent_version; /* 0: any */
	char agent_id[AL_ID_MAX];
	const char *states[5];
	char state_buf[4][16];
	int none; /* a filter nothing here can match (deployment_id, memory_store_id) */
};

static json_t *render_list_item(const struct al_doc *d, void *ud, int *err)
{
	struct list_ud *l = ud;
	json_t *s;

	if (d->created_ms < l->pg.created_gte_ms || d->created_ms > l->pg.created_lte_ms)
		return NULL;
	s = render_session(d);
	if (s == NULL) {
		*err = -EIO;
		return NULL;
	}
	if (l->agent_version > 0 &&
	    json_integer_value(json_object_get(json_object_get(s, "agent"), "version")) !=
		l->agent_version) {
		json_decref(s);
		return NULL;
	}
	return s;
}

static int list_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct list_ud *l = job->ud;
	struct al_doc_query q = {0};

	if (l->none) {
		job->out = json_pack("{s:[], s:n, s:n}", "data", "next_page", "prev_page");
		return job->out ? 0 : -ENOMEM;
	}
	q.include_archived = l->include_archived;
	q.ref = l->agent_id[0] ? l->agent_id : NULL;
	q.states = l->states[0] ? l->states : NULL;
	return al_api_list_docs(tx, "session", &q, &l->pg, 1, render_list_item, l, &job->out);
}

void al_api_sessions_list(struct al_api_ctx *ctx)
{
	struct list_ud *l = al_calloc(1, sizeof(*l));
	struct al_api_job *job;
	json_t *st = NULL, *v;
	const char *q;
	char err[ERRLEN];
	size_t i, ns = 0;

	if (l == NULL)
		goto oom;
	if (al_api_page_parse(ctx->req, "sesn", 20, 100, 1, 1, &l->pg, err, sizeof(err)) < 0)
		goto bad;
	if (al_api_query_bool(ctx->req, "include_archived", 0, &l->include_archived) < 0) {
		snprintf(err, sizeof(err), "include_archived: must be true or false");
		goto bad;
	}
	if ((q = al_http_req_query(ctx->req, "agent_id")) != NULL)
		al_api_strlcpy(l->agent_id, q, sizeof(l->agent_id));
	if ((q = al_http_req_query(ctx->req, "agent_version")) != NULL) {
		char *end;
		l->agent_version = strtoll(q, &end, 10);
		if (end == q || *end != '\0' || l->agent_version < 1) {
			snprintf(err, sizeof(err), "agent_version: must be an integer >= 1");
			goto bad;
		}
	}
	if (al_http_req_query(ctx->req, "deployment_id") != NULL ||
	    al_http_req_query(ctx->req, "memory_store_id") != NULL)
		l->none = 1;
	if ((st = al_api_query_array(ctx->req, "statuses")) == NULL) {
		snprintf(err, sizeof(err), "statuses: malformed query string");
		goto bad;
	}
	json_array_foreach(st, i, v)
	{
		const char *s = json_string_value(v);
		int ok = 0, dup = 0;
		for (int k = 0; statuses[k]; k++)
			ok |= strcmp(statuses[k], s) == 0;
		if (!ok) {
			snprintf(
			    err, sizeof(err),
			    "statuses: each must be rescheduling, running, idle or terminated");
			goto bad;
		}
		for (size_t k = 0; k < ns; k++)
			dup |= strcmp(l->state_buf[k], s) == 0;
		if (dup || ns >= 4)
			continue;
		al_api_strlcpy(l->state_buf[ns], s, sizeof(l->state_buf[ns]));
		l->states[ns] = l->state_buf[ns];
		ns++;
	}
	json_decref(st);
	st = NULL;
	if ((job = al_api_job_new(ctx, list_fn)) == NULL)
		goto oom;
	job->ud = l;
	job->ud_free = al_free;
	al_api_job_submit(job);
	return;
bad:
	al_api_error(ctx->req, 400, NULL, "%s", err);
	json_decref(st);
	al_free(l);
	return;
oom:
	json_decref(st);
	al_free(l);
	al_api_error_errno(ctx->req, -ENOMEM, "sessions");
}

static int update_fn(al_store_tx *tx, struct al_api_job *job)
{
	static const struct al_field fagent[] = {
	    {"mcp_servers", AL_F_ARRAY, 0}, {"tools", AL_F_ARRAY, 0}, {NULL, 0, 0}};
	struct al_doc d;
	json_t *s = NULL, *v;
	char err[ERRLEN];
	int rc;

	if ((rc = al_api_session_load(tx, job, &d)) < 0)
		return rc;
	if (d.archived_ms != 0) {
		rc = al_api_job_fail(job, 400, NULL, "session %s is archived", job->p[0]);
		goto done;
	}
	s = al_api_doc_json(&d);
	if (s == NULL) {
		rc = -EIO;
		goto done;
	}
	if ((v = json_object_get(job->in, "agent")) != NULL) {
		json_t *merged = NULL;
		if (al_decode_check(v, fagent, "agent", err, sizeof(err)) < 0 ||
		    al_agent_build(v, 1, json_object_get(s, "agent"), &merged, err, sizeof(err)) <
			0) {
			rc = al_api_job_fail(job, 400, NULL, "%s", err);
			goto done;
		}
		json_object_set_new(s, "agent", merged);
	}
	if ((v = json_object_get(job->in, "budget")) != NULL)
		json_object_set(s, "budget", v);
	if ((v = json_object_get(job->in, "title")) != NULL)
		json_object_set(s, "title", v);
	if ((v = json_object_get(job->in, "vault_ids")) != NULL)
		json_object_set(s, "vault_ids", v);
	if ((v = json_object_get(job->in, "metadata")) != NULL && !json_is_null(v) &&
	    al_api_metadata_patch(json_object_get(s, "metadata"), v, err, sizeof(err)) < 0) {
		rc = al_api_job_fail(job, 400, NULL, "%s", err);
		goto done;
	}
	d.updated_ms = job->now_ms;
	al_api_set_time(s, "updated_at", job->now_ms);
	if ((rc = al_api_doc_set_body(&d, s)) < 0 || (rc = al_store_doc_update(tx, &d, 0)) < 0)
		goto done;
	job->out = render_session(&d);
	rc = job->out ? 0 : -EIO;
done:
	json_decref(s);
	al_doc_clear(&d);
	return rc;
}

void al_api_sessions_update(struct al_api_ctx *ctx)
{
	static const struct al_field f[] = {{"agent", AL_F_OBJECT, 0},
					    {"budget", AL_F_OBJECT, AL_F_NULLABLE},
					    {"metadata", AL_F_STRMAP_NULL, AL_F_NULLABLE},
					    {"title", AL_F_STRING, AL_F_NULLABLE},
					    {"vault_ids", AL_F_ARRAY, 0},
					    {NULL, 0, 0}};
	char err[ERRLEN];
	const char *body;
	size_t len, i;
	json_t *in = NULL, *v;
	struct al_api_job *job;

	body = al_http_req_body(ctx->req, &len);
	if (al_decode_body(body, len, 0, &in, err, sizeof(err)) < 0 ||
	    al_decode_check(in, f, "", err, sizeof(err)) < 0) {
		al_api_error(ctx->req, 400, NULL, "%s", err);
		json_decref(in);
		return;
	}
	json_array_foreach(json_object_get(in, "vault_ids"), i, v) if (!json_is_string(v))
	{
		al_api_error(ctx->req, 400, NULL, "vault_ids[%zu]: expected a string", i);
		json_decref(in);
		return;
	}
	if ((job = al_api_job_new(ctx, update_fn)) == NULL) {
		json_decref(in);
		al_api_error_errno(ctx->req, -ENOMEM, "session");
		return;
	}
	job->in = in;
	al_api_job_submit(job);
}

static int delete_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	int rc;

	if ((rc = al_api_session_load(tx, job, &d)) < 0)
		return rc;
	al_doc_clear(&d);
	/* Everything of the session goes in one transaction: doc, events, work, tokens. */
	if ((rc = al_work_stop_for_session_tx(tx, job->p[0])) < 0)
		return rc;
	if ((rc = al_store_event_delete_session(tx, job->p[0])) < 0)
		return rc;
	if ((rc = al_store_doc_delete(tx, "session", job->p[0])) < 0)
		return rc;
	if ((rc = al_api_keys_delete_owned(tx, "session", job->p[0])) < 0)
		return rc;
	job->out = json_pack("{s:s, s:s}", "id", job->p[0], "type", "session_deleted");
	return job->out ? 0 : -ENOMEM;
}

void al_api_sessions_delete(struct al_api_ctx *ctx)
{
	al_api_submit(ctx, delete_fn, al_api_keys_revoked_done, "session");
}

static int archive_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	json_t *s = NULL;
	int rc;

	if ((rc = al_api_session_load(tx, job, &d)) < 0)
		return rc;
	if (d.archived_ms == 0) {
		if ((s = al_api_doc_json(&d)) == NULL) {
			rc = -EIO;
			goto done;
		}
		if ((rc = al_api_doc_archive(tx, &d, s, job->now_ms, 0)) < 0)
			goto done;
	}
	job->out = render_session(&d);
	rc = job->out ? 0 : -EIO;
done:
	json_decref(s);
	al_doc_clear(&d);
	return rc;
}

void al_api_sessions_archive(struct al_api_ctx *ctx)
{
	al_api_submit(ctx, archive_fn, NULL, "session");
}
