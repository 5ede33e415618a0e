/*
 * keys.c - environment keys: POST /v1/environments/{id}/keys mints one,
 * DELETE /v1/environments/{id}/keys/{key_id} revokes it.
 *
 * The key is shown exactly once, in the creation response; the store keeps
 * only its SHA-256 (doc kind "key", ref = hash hex, state "environment",
 * ref2 = environment id). The response body is built in a buffer we wipe
 * after handing it to the HTTP layer, so the key does not linger in our heap.
 */
#include "api/internal.h"

#include "api/decode.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct key_ud {
	char *key; /* owned secret, wiped */
	char key_id[AL_ID_MAX];
	json_t *name;
};

static void key_ud_free(void *p)
{
	struct key_ud *k = p;

	if (k == NULL)
		return;
	al_free_secret_str(k->key);
	json_decref(k->name);
	al_free(k);
}

static int create_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct key_ud *k = job->ud;
	struct al_doc env = {0}, d = {0};
	json_t *eobj = NULL, *body = NULL;
	char hash[AL_SHA256_HEX];
	int rc;

	rc = al_api_load(tx, "environment", job->p[0], &env, &eobj);
	if (rc == -ENOENT)
		return al_api_job_fail_code(job, 404, "environment_not_found",
					    "environment %s not found", job->p[0]);
	if (rc < 0)
		return rc;
	if (env.archived_ms != 0) {
		rc = al_api_job_fail_code(job, 400, "environment_archived",
					  "environment %s is archived", job->p[0]);
		goto done;
	}
	if ((rc = al_sha256_hex(k->key, strlen(k->key), hash)) < 0)
		goto done;
	snprintf(d.kind, sizeof(d.kind), "key");
	if ((rc = al_id_new("ekey", d.id, sizeof(d.id))) < 0)
		goto done;
	al_api_strlcpy(k->key_id, d.id, sizeof(k->key_id));
	al_api_key_ref(hash, d.ref);
	al_api_strlcpy(d.ref2, job->p[0], sizeof(d.ref2));
	snprintf(d.state, sizeof(d.state), "environment");
	d.created_ms = d.updated_ms = job->now_ms;
	body = json_pack("{s:s, s:s, s:s}", "type", "environment_key", "id", d.id, "environment_id",
			 job->p[0]);
	if (body == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if (k->name != NULL)
		json_object_set(body, "name", k->name);
	al_api_set_time(body, "created_at", job->now_ms);
	/* The stored body carries the full hash; the response never does. */
	json_object_set_new(body, "sha256", json_string(hash));
	rc = al_api_doc_set_body(&d, body);
	json_object_del(body, "sha256");
	if (rc < 0)
		goto done;
	rc = al_store_doc_insert(tx, &d);
	job->out = body;
	body = NULL;
done:
	al_wipe(hash, sizeof(hash));
	json_decref(eobj);
	json_decref(body);
	al_doc_clear(&env);
	al_doc_clear(&d);
	return rc;
}

static void create_done(struct al_api_job *job, int rc)
{
	struct key_ud *k = job->ud;
	al_buf b = {0};
	char *meta = NULL;

	if (rc < 0 || job->out == NULL) {
		al_api_job_reply(job, rc);
		return;
	}
	/* {"type":..,"id":..,...,"key":"<secret>"}: splice the key in by hand. */
	meta = json_dumps(job->out, JSON_COMPACT);
	if (meta == NULL || meta[strlen(meta) - 1] != '}' ||
	    al_buf_append(&b, meta, strlen(meta) - 1) < 0 ||
	    al_buf_appendf(&b, ",\"key\":\"%s\"}", k->key) < 0) {
		al_api_error_errno(job->req, -ENOMEM, "environment key");
	} else {
		al_info("api", "environment key %s created for %s", k->key_id, job->p[0]);
		al_http_respond(job->req, 200, "application/json", b.data, b.len);
	}
	al_buf_wipe(&b);
	al_buf_free(&b);
	al_free(meta);
	al_api_job_free(job);
}

void al_api_keys_create(struct al_api_ctx *ctx)
{
	static const struct al_field f[] = {{"name", AL_F_STRING, AL_F_NULLABLE}, {NULL, 0, 0}};
	char err[256];
	const char *body;
	size_t len;
	json_t *in = NULL;
	struct key_ud *k = NULL;
	struct al_api_job *job = NULL;

	body = al_http_req_body(ctx->req, &len);
	if (al_decode_body(body, len, 1, &in, err, sizeof(err)) < 0 ||
	    al_decode_check(in, f, "", err, sizeof(err)) < 0) {
		al_api_error(ctx->req, 400, NULL, "%s", err);
		goto done;
	}
	k = al_calloc(1, sizeof(*k));
	if (k == NULL || (k->key = al_token_new("env")) == NULL ||
	    (job = al_api_job_new(ctx, create_fn)) == NULL) {
		key_ud_free(k);
		al_api_error_errno(ctx->req, -ENOMEM, "environment key");
		goto done;
	}
	if (json_is_string(json_object_get(in, "name")))
		k->name = json_incref(json_object_get(in, "name"));
	job->ud = k;
	job->ud_free = key_ud_free;
	job->done = create_done;
	al_api_job_submit(job);
done:
	json_decref(in);
}

static int revoke_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d = {0};
	int rc = al_store_doc_get(tx, "key", job->p[1], &d);

	/* Only this environment's keys: never reveal or touch another's. */
	if (rc == -ENOENT ||
	    (rc == 0 && (strcmp(d.state, "environment") != 0 || strcmp(d.ref2, job->p[0]) != 0))) {
		al_doc_clear(&d);
		return al_api_job_fail(job, 404, NULL, "environment key %s not found", job->p[1]);
	}
	al_doc_clear(&d);
	if (rc < 0)
		return rc;
	if ((rc = al_store_doc_delete(tx, "key", job->p[1])) < 0)
		return rc;
	job->out = json_pack("{s:s, s:s}", "id", job->p[1], "type", "environment_key_deleted");
	return job->out ? 0 : -ENOMEM;
}

int al_api_keys_delete_owned(al_store_tx *tx, const char *state, const char *owner)
{
	const char *states[] = {state, NULL};
	struct al_doc_query q = {0};
	struct al_doc *docs = NULL;
	size_t n = 0;
	int more = 0, rc;

	q.ref2 = owner;
	q.states = states;
	q.include_archived = 1;
	rc = al_store_doc_list(tx, "key", &q, &docs, &n, &more);
	for (size_t i = 0; rc >= 0 && i < n; i++)
		rc = al_store_doc_delete(tx, "key", docs[i].id);
	al_doc_array_free(docs, n);
	return rc < 0 ? rc : 0;
}

void al_api_keys_revoked_done(struct al_api_job *job, int rc)
{
	/* A cached credential would outlive its deleted key until it expired. */
	if (rc >= 0)
		al_api_auth_cache_clear(job->api);
	al_api_job_reply(job, rc);
}

void al_api_keys_revoke(struct al_api_ctx *ctx)
{
	al_api_submit(ctx, revoke_fn, al_api_keys_revoked_done, "environment key");
}
