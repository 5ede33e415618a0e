/*
 * agents.c - /v1/agents: create, list, retrieve (optionally a past version),
 * update (optimistic concurrency on `version`), archive.
 *
 * Storage: the current agent is a doc of kind "agent" whose body is the
 * whole API object; each version is also kept as a doc of kind
 * "agent_version" (id "<agent id>.v<N>", ref = agent id) so a session can
 * pin {type:"agent", id, version} and GET ?version=N works. The version
 * only moves when an update actually changes something.
 */
#include "api/internal.h"

#include "api/decode.h"
#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ERRLEN 256

/* ---- building the resolved agent object from a request ---- */

static int check_policy(const json_t *v, const char *where, char *err, size_t errlen)
{
	static const struct al_field f[] = {{"type", AL_F_STRING, AL_F_REQUIRED}, {NULL, 0, 0}};
	const char *t;

	if (al_decode_check(v, f, where, err, errlen) < 0)
		return -EINVAL;
	t = json_string_value(json_object_get(v, "type"));
	if (strcmp(t, "always_allow") != 0 && strcmp(t, "always_ask") != 0 &&
	    strcmp(t, "auto") != 0) {
		snprintf(err, errlen, "%s.type: must be 'always_allow', 'always_ask' or 'auto'",
			 where);
		return -EINVAL;
	}
	return 0;
}

/* Resolves {enabled?, permission_policy?} against defaults into a new object. */
static json_t *resolve_default_config(const json_t *in, const char *where, const char *def_policy,
				      char *err, size_t errlen)
{
	static const struct al_field f[] = {{"enabled", AL_F_BOOL, AL_F_NULLABLE},
					    {"permission_policy", AL_F_OBJECT, AL_F_NULLABLE},
					    {NULL, 0, 0}};
	json_t *en = NULL, *pp = NULL;

	if (in != NULL && !json_is_null(in)) {
		if (al_decode_check(in, f, where, err, errlen) < 0)
			return NULL;
		en = json_object_get(in, "enabled");
		pp = json_object_get(in, "permission_policy");
		if (pp != NULL && !json_is_null(pp)) {
			char w[128];
			snprintf(w, sizeof(w), "%s.permission_policy", where);
			if (check_policy(pp, w, err, errlen) < 0)
				return NULL;
		}
	}
	return json_pack("{s:b, s:o}", "enabled", en && json_is_boolean(en) ? json_is_true(en) : 1,
			 "permission_policy",
			 pp && json_is_object(pp) ? json_deep_copy(pp)
						  : json_pack("{s:s}", "type", def_policy));
}

static json_t *resolve_configs(const json_t *in, const json_t *dflt, int builtin, const char *where,
			       char *err, size_t errlen)
{
	static const char *const builtin_names[] = {
	    "bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search", NULL};
	json_t *out = json_array();
	size_t i;
	json_t *c;

	if (out == NULL)
		return NULL;
	if (in == NULL || json_is_null(in))
		return out;
	if (!json_is_array(in)) {
		snprintf(err, errlen, "%s: expected an array, got %s", where,
			 al_decode_type_name(in));
		goto fail;
	}
	json_array_foreach(in, i, c)
	{
		char w[128];
		const char *name;
		json_t *r, *en, *pp;
		int known = !builtin;

		snprintf(w, sizeof(w), "%s[%zu]", where, i);
		if (!json_is_object(c)) {
			snprintf(err, errlen, "%s: expected an object, got %s", w,
				 al_decode_type_name(c));
			goto fail;
		}
		if (al_decode_string(json_object_get(c, "name"), w, 128, err, errlen) < 0)
			goto fail;
		name = json_string_value(json_object_get(c, "name"));
		for (int k = 0; builtin && builtin_names[k]; k++)
			if (strcmp(builtin_names[k], name) == 0)
				known = 1;
		if (!known) {
			snprintf(err, errlen, "%s.name: unknown tool of agent_toolset_20260401", w);
			goto fail;
		}
		/* web_fetch / web_search carry extra settings we pass through untouched. */
		if (!(builtin && strncmp(name, "web_", 4) == 0)) {
			static const struct al_field f[] = {
			    {"name", AL_F_STRING, AL_F_REQUIRED},
			    {"type", AL_F_STRING, 0},
			    {"enabled", AL_F_BOOL, AL_F_NULLABLE},
			    {"permission_policy", AL_F_OBJECT, AL_F_NULLABLE},
			    {NULL, 0, 0}};
			if (al_decode_check(c, f, w, err, errlen) < 0)
				goto fail;
		}
		pp = json_object_get(c, "permission_policy");
		if (pp != NULL && !json_is_null(pp)) {
			char pw[160];
			snprintf(pw, sizeof(pw), "%s.permission_policy", w);
			if (check_policy(pp, pw, err, errlen) < 0)
				goto fail;
		}
		r = json_deep_copy(c);
		if (r == NULL)
			goto oom;
		if (builtin)
			json_object_set_new(r, "type", json_string(name));
		else
			json_object_del(r, "type");
		en = json_object_get(c, "enabled");
		json_object_set_new(r, "enabled",
				    json_is_boolean(en)
					? json_boolean(json_is_true(en))
					: json_incref(json_object_get(dflt, "enabled")));
		json_object_set_new(r, "permission_policy",
				    json_is_object(pp) ? json_deep_copy(pp)
						       : json_deep_copy(json_object_get(
							     dflt, "permission_policy")));
		json_array_append_new(out, r);
	}
	return out;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	json_decref(out);
	return NULL;
}

static int valid_tool_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static json_t *resolve_tools(const json_t *in, char *err, size_t errlen)
{
	json_t *out = json_array(), *t;
	size_t i;

	if (out == NULL)
		return NULL;
	if (json_array_size(in) > 256) {
		snprintf(err, errlen, "tools: at most 256 tools are allowed");
		goto fail;
	}
	json_array_foreach(in, i, t)
	{
		char w[64];
		const char *type;
		json_t *r = NULL;

		snprintf(w, sizeof(w), "tools[%zu]", i);
		if (!json_is_object(t) || !json_is_string(json_object_get(t, "type"))) {
			snprintf(err, errlen, "%s: expected an object with a string 'type'", w);
			goto fail;
		}
		type = json_string_value(json_object_get(t, "type"));
		if (strcmp(type, "agent_toolset_20260401") == 0 ||
		    strcmp(type, "mcp_toolset") == 0) {
			static const struct al_field ft[] = {
			    {"type", AL_F_STRING, AL_F_REQUIRED},
			    {"configs", AL_F_ARRAY, AL_F_NULLABLE},
			    {"default_config", AL_F_OBJECT, AL_F_NULLABLE},
			    {NULL, 0, 0}};
			static const struct al_field fm[] = {
			    {"type", AL_F_STRING, AL_F_REQUIRED},
			    {"mcp_server_name", AL_F_STRING, AL_F_REQUIRED},
			    {"configs", AL_F_ARRAY, AL_F_NULLABLE},
			    {"default_config", AL_F_OBJECT, AL_F_NULLABLE},
			    {NULL, 0, 0}};
			int builtin = type[0] == 'a';
			char dw[96], cw[96];
			json_t *dflt, *configs;

			if (al_decode_check(t, builtin ? ft : fm, w, err, errlen) < 0)
				goto fail;
			snprintf(dw, sizeof(dw), "%s.default_config", w);
			snprintf(cw, sizeof(cw), "%s.configs", w);
			/* The built-in toolset runs unattended by default; MCP tools ask. */
			dflt = resolve_default_config(json_object_get(t, "default_config"), dw,
						      builtin ? "always_allow" : "always_ask", err,
						      errlen);
			if (dflt == NULL)
				goto fail;
			configs = resolve_configs(json_object_get(t, "configs"), dflt, builtin, cw,
						  err, errlen);
			if (configs == NULL) {
				json_decref(dflt);
				goto fail;
			}
			r = json_pack("{s:s, s:o, s:o}", "type", type, "configs", configs,
				      "default_config", dflt);
			if (r != NULL && !builtin)
				json_object_set(r, "mcp_server_name",
						json_object_get(t, "mcp_server_name"));
		} else if (strcmp(type, "custom") == 0) {
			static const struct al_field fc[] = {
			    {"type", AL_F_STRING, AL_F_REQUIRED},
			    {"name", AL_F_STRING, AL_F_REQUIRED},
			    {"description", AL_F_STRING, AL_F_REQUIRED},
			    {"input_schema", AL_F_OBJECT, AL_F_REQUIRED},
			    {NULL, 0, 0}};
			const json_t *schema;
			if (al_decode_check(t, fc, w, err, errlen) < 0)
				goto fail;
			if (!valid_tool_name(json_string_value(json_object_get(t, "name")))) {
				snprintf(err, errlen,
					 "%s.name: 1-128 letters, digits, underscores or hyphens",
					 w);
				goto fail;
			}
			schema = json_object_get(t, "input_schema");
			if (!json_is_string(json_object_get(schema, "type")) ||
			    strcmp(json_string_value(json_object_get(schema, "type")), "object") !=
				0) {
				snprintf(err, errlen, "%s.input_schema.type: must be 'object'", w);
				goto fail;
			}
			r = json_deep_copy(t);
		} else {
			snprintf(err, errlen,
				 "%s.type: must be 'agent_toolset_20260401', 'mcp_toolset' or "
				 "'custom'",
				 w);
			goto fail;
		}
		if (r == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		json_array_append_new(out, r);
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

static json_t *resolve_model(const json_t *m, char *err, size_t errlen)
{
	static const struct al_field f[] = {{"id", AL_F_STRING, AL_F_REQUIRED},
					    {"effort", AL_F_ANY, AL_F_NULLABLE},
					    {"inference_geo", AL_F_STRING, AL_F_NULLABLE},
					    {"speed", AL_F_STRING, AL_F_NULLABLE},
					    {NULL, 0, 0}};
	static const char *const efforts[] = {"low", "medium", "high", "xhigh", "max", NULL};
	json_t *out, *v;
	const char *e = NULL;

	if (json_is_string(m)) {
		if (al_decode_string(m, "model", 256, err, errlen) < 0)
			return NULL;
		return json_pack("{s:O}", "id", m);
	}
	if (!json_is_object(m)) {
		snprintf(err, errlen, "model: expected a string or an object, got %s",
			 al_decode_type_name(m));
		return NULL;
	}
	if (al_decode_check(m, f, "model", err, errlen) < 0 ||
	    al_decode_string(json_object_get(m, "id"), "model.id", 256, err, errlen) < 0)
		return NULL;
	v = json_object_get(m, "effort");
	if (json_is_string(v))
		e = json_string_value(v);
	else if (json_is_object(v) && json_is_string(json_object_get(v, "type")) &&
		 json_object_size(v) == 1)
		e = json_string_value(json_object_get(v, "type"));
	else if (v != NULL && !json_is_null(v)) {
		snprintf(err, errlen, "model.effort: expected a string or {type}");
		return NULL;
	}
	if (e != NULL) {
		int ok = 0;
		for (int i = 0; efforts[i]; i++)
			ok |= strcmp(efforts[i], e) == 0;
		if (!ok) {
			snprintf(err, errlen,
				 "model.effort: must be low, medium, high, xhigh or max");
			return NULL;
		}
	}
	v = json_object_get(m, "speed");
	if (json_is_string(v) && strcmp(json_string_value(v), "standard") != 0 &&
	    strcmp(json_string_value(v), "fast") != 0) {
		snprintf(err, errlen, "model.speed: must be 'standard' or 'fast'");
		return NULL;
	}
	out = json_pack("{s:O}", "id", json_object_get(m, "id"));
	if (out == NULL)
		return NULL;
	if (e != NULL)
		json_object_set_new(out, "effort", json_pack("{s:s}", "type", e));
	if (json_is_string(json_object_get(m, "inference_geo")))
		json_object_set(out, "inference_geo", json_object_get(m, "inference_geo"));
	if (json_is_string(v))
		json_object_set(out, "speed", v);
	return out;
}

static json_t *resolve_mcp_servers(const json_t *in, char *err, size_t errlen)
{
	static const struct al_field f[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
					    {"name", AL_F_STRING, AL_F_REQUIRED},
					    {"url", AL_F_STRING, AL_F_REQUIRED},
					    {NULL, 0, 0}};
	json_t *out = json_array(), *s;
	size_t i, j;

	if (out == NULL)
		return NULL;
	if (json_array_size(in) > 20) {
		snprintf(err, errlen, "mcp_servers: at most 20 servers are allowed");
		goto fail;
	}
	json_array_foreach(in, i, s)
	{
		char w[64];
		snprintf(w, sizeof(w), "mcp_servers[%zu]", i);
		if (al_decode_check(s, f, w, err, errlen) < 0)
			goto fail;
		if (strcmp(json_string_value(json_object_get(s, "type")), "url") != 0) {
			snprintf(err, errlen, "%s.type: must be 'url'", w);
			goto fail;
		}
		for (j = 0; j < i; j++)
			if (json_equal(json_object_get(json_array_get(in, j), "name"),
				       json_object_get(s, "name"))) {
				snprintf(err, errlen, "%s.name: names must be unique", w);
				goto fail;
			}
		json_array_append_new(out, json_pack("{s:s, s:O, s:O}", "type", "url", "name",
						     json_object_get(s, "name"), "url",
						     json_object_get(s, "url")));
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* Every MCP server must be used by an mcp_toolset, and every toolset's server must exist. */
static int check_mcp_refs(const json_t *agent, char *err, size_t errlen)
{
	const json_t *servers = json_object_get(agent, "mcp_servers");
	const json_t *tools = json_object_get(agent, "tools");
	json_t *s, *t;
	size_t i, j;

	json_array_foreach(servers, i, s)
	{
		int used = 0;
		json_array_foreach(tools, j, t) used |=
		    json_equal(json_object_get(t, "mcp_server_name"), json_object_get(s, "name"));
		if (!used) {
			snprintf(err, errlen,
				 "mcp_servers[%zu]: not referenced by any mcp_toolset in tools", i);
			return -EINVAL;
		}
	}
	json_array_foreach(tools, j, t)
	{
		const json_t *ref = json_object_get(t, "mcp_server_name");
		int found = 0;
		if (ref == NULL)
			continue;
		json_array_foreach(servers, i, s) found |=
		    json_equal(ref, json_object_get(s, "name"));
		if (!found) {
			snprintf(err, errlen,
				 "tools[%zu].mcp_server_name: no such mcp_servers entry", j);
			return -EINVAL;
		}
	}
	return 0;
}

int al_agent_build(const json_t *body, int is_update, const json_t *current, json_t **out,
		   char *err, size_t errlen)
{
	static const struct al_field fcreate[] = {
	    {"model", AL_F_ANY, AL_F_REQUIRED},
	    {"name", AL_F_STRING, AL_F_REQUIRED},
	    {"description", AL_F_STRING, AL_F_NULLABLE},
	    {"execution_identity", AL_F_OBJECT, AL_F_NULLABLE},
	    {"mcp_servers", AL_F_ARRAY, 0},
	    {"metadata", AL_F_STRMAP, 0},
	    {"multiagent", AL_F_OBJECT, AL_F_NULLABLE},
	    {"skills", AL_F_ARRAY, 0},
	    {"system", AL_F_STRING, AL_F_NULLABLE},
	    {"tools", AL_F_ARRAY, 0},
	    {NULL, 0, 0}};
	static const struct al_field fupdate[] = {
	    {"model", AL_F_ANY, 0},
	    {"name", AL_F_STRING, 0},
	    {"description", AL_F_STRING, AL_F_NULLABLE},
	    {"execution_identity", AL_F_OBJECT, AL_F_NULLABLE},
	    {"mcp_servers", AL_F_ARRAY, AL_F_NULLABLE},
	    {"metadata", AL_F_STRMAP_NULL, AL_F_NULLABLE},
	    {"multiagent", AL_F_OBJECT, AL_F_NULLABLE},
	    {"skills", AL_F_ARRAY, AL_F_NULLABLE},
	    {"system", AL_F_STRING, AL_F_NULLABLE},
	    {"tools", AL_F_ARRAY, AL_F_NULLABLE},
	    {"version", AL_F_INT, 0},
	    {NULL, 0, 0}};
	json_t *a = NULL, *v, *r;
	int rc = -EINVAL;

	*out = NULL;
	if (al_decode_check(body, is_update ? fupdate : fcreate, "", err, errlen) < 0)
		goto done;
	if (is_update)
		a = json_deep_copy(current);
	else
		a = json_pack("{s:s, s:n, s:[], s:{}, s:n, s:[], s:n, s:[], s:{s:s}}", "type",
			      "agent", "description", "mcp_servers", "metadata", "multiagent",
			      "skills", "system", "tools", "execution_identity", "type",
			      "service_account");
	if (a == NULL)
		goto oom;
	if ((v = json_object_get(body, "name")) != NULL) {
		if (al_decode_string(v, "name", 256, err, errlen) < 0)
			goto done;
		json_object_set(a, "name", v);
	}
	if ((v = json_object_get(body, "model")) != NULL) {
		if ((r = resolve_model(v, err, errlen)) == NULL)
			goto done;
		json_object_set_new(a, "model", r);
	}
	/* "Send empty string or null to clear" for the two free-text fields. */
	static const char *const texts[] = {"description", "system"};
	for (int i = 0; i < 2; i++) {
		if ((v = json_object_get(body, texts[i])) == NULL)
			continue;
		if (json_is_string(v) && json_string_length(v) == 0)
			json_object_set_new(a, texts[i], json_null());
		else
			json_object_set(a, texts[i], v);
	}
	if ((v = json_object_get(body, "execution_identity")) != NULL) {
		const char *t = json_string_value(json_object_get(v, "type"));
		if (!json_is_null(v) &&
		    (t == NULL || strcmp(t, "service_account") != 0 || json_object_size(v) != 1)) {
			snprintf(err, errlen,
				 "execution_identity: only {\"type\":\"service_account\"} is "
				 "supported by this server");
			goto done;
		}
		json_object_set_new(a, "execution_identity",
				    json_pack("{s:s}", "type", "service_account"));
	}
	if ((v = json_object_get(body, "mcp_servers")) != NULL) {
		if ((r = json_is_null(v) ? json_array() : resolve_mcp_servers(v, err, errlen)) ==
		    NULL)
			goto done;
		json_object_set_new(a, "mcp_servers", r);
	}
	if ((v = json_object_get(body, "tools")) != NULL) {
		if ((r = json_is_null(v) ? json_array() : resolve_tools(v, err, errlen)) == NULL)
			goto done;
		json_object_set_new(a, "tools", r);
	}
	if ((v = json_object_get(body, "skills")) != NULL) {
		size_t i;
		json_t *s;
		json_array_foreach(v, i, s) if (!json_is_object(s))
		{
			snprintf(err, errlen, "skills[%zu]: expected an object", i);
			goto done;
		}
		json_object_set_new(a, "skills",
				    json_is_null(v) ? json_array() : json_deep_copy(v));
	}
	if ((v = json_object_get(body, "multiagent")) != NULL)
		json_object_set_new(a, "multiagent", json_deep_copy(v));
	if ((v = json_object_get(body, "metadata")) != NULL) {
		if (!is_update) {
			json_object_set_new(a, "metadata", json_deep_copy(v));
		} else if (!json_is_null(v)) {
			json_t *md = json_object_get(a, "metadata");
			if (!json_is_object(md)) {
				md = json_object();
				json_object_set_new(a, "metadata", md);
			}
			if (al_api_metadata_patch(md, v, err, errlen) < 0)
				goto done;
		}
	}
	if (check_mcp_refs(a, err, errlen) < 0)
		goto done;
	*out = a;
	a = NULL;
	rc = 0;
	goto done;
oom:
	snprintf(err, errlen, "out of memory");
	rc = -ENOMEM;
done:
	json_decref(a);
	return rc;
}

json_t *al_agent_session_snapshot(const json_t *agent)
{
	static const char *const keys[] = {"id",	  "description", "execution_identity",
					   "mcp_servers", "model",	 "multiagent",
					   "name",	  "skills",	 "system",
					   "tools",	  "type",	 "version",
					   NULL};
	json_t *s = json_object();

	if (s == NULL)
		return NULL;
	for (int i = 0; keys[i]; i++) {
		json_t *v = json_object_get(agent, keys[i]);
		json_object_set_new(s, keys[i], v ? json_deep_copy(v) : json_null());
	}
	return s;
}

/* ---- handlers ---- */

static int put_version(al_store_tx *tx, const json_t *agent, int64_t now)
{
	struct al_doc v = {0};
	const char *id = json_string_value(json_object_get(agent, "id"));
	int rc;

	snprintf(v.kind, sizeof(v.kind), "agent_version");
	snprintf(v.id, sizeof(v.id), "%s.v%lld", id,
		 (long long)json_integer_value(json_object_get(agent, "version")));
	al_api_strlcpy(v.ref, id, sizeof(v.ref));
	v.created_ms = v.updated_ms = now;
	rc = al_api_doc_set_body(&v, agent);
	if (rc == 0)
		rc = al_store_doc_insert(tx, &v);
	al_doc_clear(&v);
	return rc;
}

static int create_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d = {0};
	json_t *a = job->out;
	int rc;

	snprintf(d.kind, sizeof(d.kind), "agent");
	if ((rc = al_id_new("agent", d.id, sizeof(d.id))) < 0)
		goto done;
	json_object_set_new(a, "id", json_string(d.id));
	json_object_set_new(a, "version", json_integer(1));
	al_api_set_time(a, "created_at", job->now_ms);
	al_api_set_time(a, "updated_at", job->now_ms);
	json_object_set_new(a, "archived_at", json_null());
	d.created_ms = d.updated_ms = job->now_ms;
	if ((rc = al_api_doc_set_body(&d, a)) < 0)
		goto done;
	if ((rc = al_store_doc_insert(tx, &d)) < 0)
		goto done;
	rc = put_version(tx, a, job->now_ms);
	job->status = 200;
done:
	al_doc_clear(&d);
	return rc;
}

void al_api_agents_create(struct al_api_ctx *ctx)
{
	al_api_create(ctx, al_agent_build, create_fn, "agent");
}

struct get_ud {
	int64_t version; /* 0: current */
};

static int get_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct get_ud *g = job->ud;
	struct al_doc d;
	char id[AL_ID_MAX + 24];
	int rc;

	if (g->version > 0) {
		json_t *cur = NULL;
		snprintf(id, sizeof(id), "%s.v%lld", job->p[0], (long long)g->version);
		rc = al_api_load(tx, "agent_version", id, &d, &job->out);
		if (rc == -ENOENT) {
			/* Tell "no such agent" from "no such version". */
			struct al_doc cd;
			if (al_api_load(tx, "agent", job->p[0], &cd, &cur) == 0) {
				json_decref(cur);
				al_doc_clear(&cd);
				return al_api_job_fail(job, 404, NULL,
						       "agent %s has no version %lld", job->p[0],
						       (long long)g->version);
			}
		}
	} else {
		rc = al_api_load(tx, "agent", job->p[0], &d, &job->out);
	}
	if (rc == -ENOENT)
		return al_api_job_fail(job, 404, NULL, "agent %s not found", job->p[0]);
	if (rc == 0)
		al_doc_clear(&d);
	return rc;
}

void al_api_agents_get(struct al_api_ctx *ctx)
{
	struct al_api_job *job;
	struct get_ud *g;
	const char *v = al_http_req_query(ctx->req, "version");
	long long ver = 0;

	if (v != NULL) {
		char *end;
		errno = 0;
		ver = strtoll(v, &end, 10);
		if (errno != 0 || end == v || *end != '\0' || ver < 1) {
			al_api_error(ctx->req, 400, NULL, "version: must be an integer >= 1");
			return;
		}
	}
	job = al_api_job_new(ctx, get_fn);
	g = al_calloc(1, sizeof(*g));
	if (job == NULL || g == NULL) {
		al_free(g);
		al_api_job_free(job);
		al_api_error_errno(ctx->req, -ENOMEM, "agent");
		return;
	}
	g->version = ver;
	job->ud = g;
	job->ud_free = al_free;
	al_api_job_submit(job);
}

void al_api_agents_list(struct al_api_ctx *ctx)
{
	al_api_list_plain(ctx, "agent", "agent", "agents");
}

/* Fields that do not count as a change when comparing before/after an update. */
static int same_content(const json_t *a, const json_t *b)
{
	static const char *const skip[] = {"updated_at", "version", NULL};
	json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
	int eq;

	for (int i = 0; skip[i]; i++) {
		json_object_del(x, skip[i]);
		json_object_del(y, skip[i]);
	}
	eq = json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return eq;
}

static int update_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	json_t *cur = NULL, *next = NULL, *want;
	char err[ERRLEN];
	int rc;
	int64_t ver;

	rc = al_api_load(tx, "agent", job->p[0], &d, &cur);
	if (rc == -ENOENT)
		return al_api_job_fail(job, 404, NULL, "agent %s not found", job->p[0]);
	if (rc < 0)
		return rc;
	if (d.archived_ms != 0) {
		rc = al_api_job_fail(job, 400, NULL, "agent %s is archived and cannot be updated",
				     job->p[0]);
		goto done;
	}
	ver = json_integer_value(json_object_get(cur, "version"));
	want = json_object_get(job->in, "version");
	if (want != NULL && json_integer_value(want) != ver) {
		rc = al_api_job_fail(
		    job, 409, NULL, "agent %s is at version %lld, not %lld; retrieve it and retry",
		    job->p[0], (long long)ver, (long long)json_integer_value(want));
		goto done;
	}
	if (al_agent_build(job->in, 1, cur, &next, err, sizeof(err)) < 0) {
		rc = al_api_job_fail(job, 400, NULL, "%s", err);
		goto done;
	}
	if (same_content(cur, next)) {
		/* A no-op update keeps the version, as the real API does. */
		job->out = cur;
		cur = NULL;
		rc = 0;
		goto done;
	}
	json_object_set_new(next, "version", json_integer(ver + 1));
	al_api_set_time(next, "updated_at", job->now_ms);
	d.updated_ms = job->now_ms;
	if ((rc = al_api_doc_set_body(&d, next)) < 0)
		goto done;
	if ((rc = al_store_doc_update(tx, &d, d.version)) < 0)
		goto done;
	if ((rc = put_version(tx, next, job->now_ms)) < 0)
		goto done;
	job->out = next;
	next = NULL;
done:
	json_decref(cur);
	json_decref(next);
	al_doc_clear(&d);
	return rc;
}

void al_api_agents_update(struct al_api_ctx *ctx)
{
	json_t *in = NULL, *v;
	struct al_api_job *job;

	if (al_api_body(ctx, 0, NULL, &in) < 0)
		return;
	/* Validate the shape now so a bad body never costs a store round trip. */
	v = json_object_get(in, "version");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 1)) {
		al_api_error(ctx->req, 400, NULL, "version: must be an integer >= 1");
		json_decref(in);
		return;
	}
	job = al_api_job_new(ctx, update_fn);
	if (job == NULL) {
		json_decref(in);
		al_api_error_errno(ctx->req, -ENOMEM, "agent");
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

	rc = al_api_load(tx, "agent", job->p[0], &d, &cur);
	if (rc == -ENOENT)
		return al_api_job_fail(job, 404, NULL, "agent %s not found", job->p[0]);
	if (rc < 0)
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

void al_api_agents_archive(struct al_api_ctx *ctx)
{
	al_api_submit(ctx, archive_fn, NULL, "agent");
}
