/*
 * environments.c - /v1/environments: create, list, retrieve, update,
 * archive, delete.
 *
 * airlock runs self-hosted environments only: `{"type":"self_hosted"}` is
 * the whole config (the platform applies no network policy there; the
 * customer's sandbox does). A "cloud" config is refused with a clear 400
 * rather than silently ignored. An archived environment is read-only and
 * takes no new sessions or keys (400 with error_code environment_archived).
 */
#include "api/internal.h"

#include "api/decode.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ERRLEN 256

static int check_config(const json_t *c, char *err, size_t errlen)
{
	static const struct al_field f[] = {{"type", AL_F_STRING, AL_F_REQUIRED}, {NULL, 0, 0}};
	const char *t = json_string_value(json_object_get(c, "type"));

	if (t != NULL && strcmp(t, "cloud") == 0) {
		snprintf(err, errlen,
			 "config.type: 'cloud' environments are not available on airlock; use "
			 "'self_hosted'");
		return -EINVAL;
	}
	if (al_decode_check(c, f, "config", err, errlen) < 0)
		return -EINVAL;
	if (strcmp(json_string_value(json_object_get(c, "type")), "self_hosted") != 0) {
		snprintf(err, errlen, "config.type: must be 'self_hosted'");
		return -EINVAL;
	}
	return 0;
}

static int check_scope(const json_t *s, char *err, size_t errlen)
{
	const char *v = json_string_value(s);

	if (json_is_null(s))
		return 0;
	if (v == NULL || (strcmp(v, "organization") != 0 && strcmp(v, "account") != 0)) {
		snprintf(err, errlen, "scope: must be 'organization' or 'account'");
		return -EINVAL;
	}
	return 0;
}

int al_environment_build(const json_t *body, int is_update, const json_t *current, json_t **out,
			 char *err, size_t errlen)
{
	static const struct al_field fcreate[] = {
	    {"name", AL_F_STRING, AL_F_REQUIRED},	 {"config", AL_F_OBJECT, AL_F_NULLABLE},
	    {"description", AL_F_STRING, AL_F_NULLABLE}, {"metadata", AL_F_STRMAP, 0},
	    {"scope", AL_F_STRING, AL_F_NULLABLE},	 {NULL, 0, 0}};
	static const struct al_field fupdate[] = {
	    {"name", AL_F_STRING, AL_F_NULLABLE},	 {"config", AL_F_OBJECT, AL_F_NULLABLE},
	    {"description", AL_F_STRING, AL_F_NULLABLE}, {"metadata", AL_F_STRMAP_NULL, 0},
	    {"scope", AL_F_STRING, AL_F_NULLABLE},	 {NULL, 0, 0}};
	json_t *e = NULL, *v;
	int rc = -EINVAL;

	*out = NULL;
	if (al_decode_check(body, is_update ? fupdate : fcreate, "", err, errlen) < 0)
		goto done;
	e = is_update ? json_deep_copy(current)
		      : json_pack("{s:s, s:n, s:{s:s}, s:{}}", "type", "environment", "description",
				  "config", "type", "self_hosted", "metadata");
	if (e == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if ((v = json_object_get(body, "name")) != NULL && !json_is_null(v)) {
		if (al_decode_string(v, "name", 256, err, errlen) < 0)
			goto done;
		json_object_set(e, "name", v);
	}
	if ((v = json_object_get(body, "description")) != NULL)
		json_object_set(e, "description", v);
	if ((v = json_object_get(body, "config")) != NULL && !json_is_null(v)) {
		if (check_config(v, err, errlen) < 0)
			goto done;
		json_object_set_new(e, "config", json_pack("{s:s}", "type", "self_hosted"));
	}
	if ((v = json_object_get(body, "scope")) != NULL) {
		if (check_scope(v, err, errlen) < 0)
			goto done;
		if (json_is_null(v))
			json_object_del(e, "scope");
		else
			json_object_set(e, "scope", v);
	}
	if ((v = json_object_get(body, "metadata")) != NULL) {
		if (!is_update)
			json_object_set_new(e, "metadata", json_deep_copy(v));
		else if (al_api_metadata_patch(json_object_get(e, "metadata"), v, err, errlen) < 0)
			goto done;
	}
	*out = e;
	e = NULL;
	rc = 0;
done:
	json_decref(e);
	return rc;
}

static int create_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d = {0};
	json_t *e = job->out;
	int rc;

	snprintf(d.kind, sizeof(d.kind), "environment");
	if ((rc = al_id_new("env", d.id, sizeof(d.id))) < 0)
		goto done;
	json_object_set_new(e, "id", json_string(d.id));
	al_api_set_time(e, "created_at", job->now_ms);
	al_api_set_time(e, "updated_at", job->now_ms);
	json_object_set_new(e, "archived_at", json_null());
	d.created_ms = d.updated_ms = job->now_ms;
	if ((rc = al_api_doc_set_body(&d, e)) == 0)
		rc = al_store_doc_insert(tx, &d);
done:
	al_doc_clear(&d);
	return rc;
}

void al_api_environments_create(struct al_api_ctx *ctx)
{
	al_api_create(ctx, al_environment_build, create_fn, "environment");
}

static int load_env(al_store_tx *tx, struct al_api_job *job, struct al_doc *d, json_t **obj)
{
	int rc = al_api_load(tx, "environment", job->p[0], d, obj);

	if (rc == -ENOENT)
		return al_api_job_fail_code(job, 404, "environment_not_found",
					    "environment %s not found", job->p[0]);
	return rc;
}

static int get_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	int rc = load_env(tx, job, &d, &job->out);

	if (rc == 0)
		al_doc_clear(&d);
	return rc;
}

void al_api_environments_get(struct al_api_ctx *ctx)
{
	al_api_submit(ctx, get_fn, NULL, "environment");
}

void al_api_environments_list(struct al_api_ctx *ctx)
{
	al_api_list_plain(ctx, "environment", "env", "environments");
}

static int update_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	json_t *cur = NULL, *next = NULL;
	char err[ERRLEN];
	int rc;

	if ((rc = load_env(tx, job, &d, &cur)) < 0)
		return rc;
	if (d.archived_ms != 0) {
		rc = al_api_job_fail_code(job, 400, "environment_archived",
					  "environment %s is archived", job->p[0]);
		goto done;
	}
	if (al_environment_build(job->in, 1, cur, &next, err, sizeof(err)) < 0) {
		rc = al_api_job_fail(job, 400, NULL, "%s", err);
		goto done;
	}
	if (!json_equal(cur, next)) {
		al_api_set_time(next, "updated_at", job->now_ms);
		d.updated_ms = job->now_ms;
		if ((rc = al_api_doc_set_body(&d, next)) < 0 ||
		    (rc = al_store_doc_update(tx, &d, d.version)) < 0)
			goto done;
	}
	job->out = next;
	next = NULL;
done:
	json_decref(cur);
	json_decref(next);
	al_doc_clear(&d);
	return rc;
}

void al_api_environments_update(struct al_api_ctx *ctx)
{
	json_t *in = NULL;
	struct al_api_job *job;

	if (al_api_body(ctx, 0, NULL, &in) < 0)
		return;
	/* A config of another type is its own documented error. */
	{
		json_t *c = json_object_get(in, "config");
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t != NULL && strcmp(t, "self_hosted") != 0) {
			al_api_error_details(
			    ctx->req, 400, NULL,
			    json_pack("{s:s}", "error_code", "invalid_config_type_change"),
			    "config.type: an environment's config type cannot "
			    "change (this one is self_hosted)");
			json_decref(in);
			return;
		}
	}
	if ((job = al_api_job_new(ctx, update_fn)) == NULL) {
		json_decref(in);
		al_api_error_errno(ctx->req, -ENOMEM, "environment");
		return;
	}
	job->in = in;
	al_api_job_submit(job);
}

static int archive_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	json_t *cur = NULL;
	int rc;

	if ((rc = load_env(tx, job, &d, &cur)) < 0)
		return rc;
	if ((rc = al_api_doc_archive(tx, &d, cur, job->now_ms, d.version)) < 0)
		goto done;
	job->out = cur;
	cur = NULL;
done:
	json_decref(cur);
	al_doc_clear(&d);
	return rc;
}

void al_api_environments_archive(struct al_api_ctx *ctx)
{
	al_api_submit(ctx, archive_fn, NULL, "environment");
}

static int delete_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	json_t *cur = NULL;
	int rc;

	if ((rc = load_env(tx, job, &d, &cur)) < 0)
		return rc;
	json_decref(cur);
	al_doc_clear(&d);
	if ((rc = al_store_doc_delete(tx, "environment", job->p[0])) < 0)
		return rc;
	/* Its keys die with it: a deleted environment must not be reachable. */
	if ((rc = al_api_keys_delete_owned(tx, "environment", job->p[0])) < 0)
		return rc;
	job->out = json_pack("{s:s, s:s}", "id", job->p[0], "type", "environment_deleted");
	return job->out ? 0 : -ENOMEM;
}

void al_api_environments_delete(struct al_api_ctx *ctx)
{
	al_api_submit(ctx, delete_fn, al_api_keys_revoked_done, "environment");
}
