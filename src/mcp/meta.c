#include "mcp/meta.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *const al_mcp_supported_versions[] = {AL_MCP_VERSION_2026, AL_MCP_VERSION_2025, NULL};
const char *const al_mcp_modern_versions[] = {AL_MCP_VERSION_2026, NULL};

static const char *const level_names[] = {"debug", "info",     "notice", "warning",
					  "error", "critical", "alert",	 "emergency"};
#define NLEVELS (sizeof(level_names) / sizeof(level_names[0]))

int al_mcp_log_level_parse(const char *s)
{
	if (s == NULL)
		return -EINVAL;
	for (size_t i = 0; i < NLEVELS; i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

const char *al_mcp_log_level_name(int level)
{
	if (level < 0 || (size_t)level >= NLEVELS)
		return NULL;
	return level_names[level];
}

static int bad(al_mcp_error *err, const char *what)
{
	al_mcp_error_set(err, AL_MCP_INVALID_PARAMS, 400, NULL, "Invalid params: %s", what);
	return -EINVAL;
}

int al_mcp_meta_parse(const json_t *params, al_mcp_meta *out, al_mcp_error *err)
{
	json_t *meta, *v;

	memset(out, 0, sizeof(*out));
	out->log_level = AL_MCP_LOG_UNSET;
	meta = params != NULL ? json_object_get(params, "_meta") : NULL;
	if (meta == NULL)
		return bad(err, "missing _meta (every request carries " AL_MCP_META_PROTOCOL_VERSION
				" and " AL_MCP_META_CLIENT_CAPABILITIES ")");
	if (!json_is_object(meta))
		return bad(err, "_meta must be an object");

	v = json_object_get(meta, AL_MCP_META_PROTOCOL_VERSION);
	if (v == NULL)
		return bad(err, "_meta is missing " AL_MCP_META_PROTOCOL_VERSION);
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return bad(err, AL_MCP_META_PROTOCOL_VERSION " must be a non-empty string");
	out->protocol_version = json_string_value(v);

	v = json_object_get(meta, AL_MCP_META_CLIENT_CAPABILITIES);
	if (v == NULL)
		return bad(err, "_meta is missing " AL_MCP_META_CLIENT_CAPABILITIES);
	if (!json_is_object(v))
		return bad(err, AL_MCP_META_CLIENT_CAPABILITIES " must be an object");
	out->client_capabilities = v;

	/* clientInfo is a SHOULD: its absence is fine (the conformance suite
	 * checks that it is not required), a wrong shape is not. */
	v = json_object_get(meta, AL_MCP_META_CLIENT_INFO);
	if (v != NULL) {
		json_t *name = json_object_get(v, "name"), *ver = json_object_get(v, "version");
		if (!json_is_object(v) || !json_is_string(name) || !json_is_string(ver))
			return bad(err, AL_MCP_META_CLIENT_INFO
				   " must be {name: string, version: string}");
		out->client_info = v;
		out->client_name = json_string_value(name);
		out->client_version = json_string_value(ver);
	}

	v = json_object_get(meta, AL_MCP_META_LOG_LEVEL);
	if (v != NULL) {
		int lvl =
		    json_is_string(v) ? al_mcp_log_level_parse(json_string_value(v)) : -EINVAL;
		if (lvl < 0)
			return bad(err, AL_MCP_META_LOG_LEVEL
				   " must be one of debug, info, notice, "
				   "warning, error, critical, alert, emergency");
		out->log_level = lvl;
	}

	v = json_object_get(meta, "progressToken");
	if (v != NULL) {
		if (!json_is_string(v) && !json_is_integer(v))
			return bad(err, "progressToken must be a string or an integer");
		out->progress_token = v;
	}
	return 0;
}

static int in_list(const char *s, const char *const *list)
{
	for (; list != NULL && *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

int al_mcp_meta_check_version(const char *requested, const char *const *accepted,
			      const char *const *advertised, al_mcp_error *err)
{
	json_t *data = NULL, *sup = NULL;

	if (requested != NULL && in_list(requested, accepted))
		return 0;
	data = json_object();
	sup = json_array();
	if (data == NULL || sup == NULL)
		goto nomem;
	for (; advertised != NULL && *advertised != NULL; advertised++)
		if (json_array_append_new(sup, json_string(*advertised)) < 0)
			goto nomem;
	if (json_object_set_new(data, "supported", sup) < 0) {
		sup = NULL;
		goto nomem;
	}
	sup = NULL;
	if (json_object_set_new(data, "requested",
				requested ? json_string(requested) : json_null()) < 0)
		goto nomem;
	al_mcp_error_set(err, AL_MCP_UNSUPPORTED_VERSION, 400, data,
			 "Unsupported protocol version: %s", requested ? requested : "(none)");
	return -EINVAL;
nomem:
	json_decref(sup);
	json_decref(data);
	al_mcp_error_set(err, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
	return -ENOMEM;
}

/*
 * Adds to `missing` every key of `required` absent from `declared`, and,
 * for keys present on both sides as objects, the missing nested keys (one
 * level: elicitation.form / elicitation.url, sampling.tools...). 0 or
 * -ENOMEM.
 */
static int collect_missing(const json_t *declared, const json_t *required, json_t *missing)
{
	const char *key;
	json_t *req;

	json_object_foreach((json_t *)required, key, req)
	{
		json_t *have = json_object_get(declared, key);
		if (!json_is_object(have)) {
			if (json_object_set(missing, key, req) < 0)
				return -ENOMEM;
			continue;
		}
		if (json_is_object(req) && json_object_size(req) > 0) {
			const char *sub;
			json_t *sreq, *part = NULL;
			json_object_foreach(req, sub, sreq)
			{
				if (json_object_get(have, sub) != NULL)
					continue;
				if (part == NULL && (part = json_object()) == NULL)
					return -ENOMEM;
				if (json_object_set(part, sub, sreq) < 0) {
					json_decref(part);
					return -ENOMEM;
				}
			}
			if (part != NULL && json_object_set_new(missing, key, part) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

int al_mcp_meta_require(const al_mcp_meta *m, const json_t *required, al_mcp_error *err)
{
	json_t *missing = NULL, *data = NULL;
	const char *key;
	json_t *v;
	char names[160];
	size_t off = 0;

	if (required == NULL || json_object_size(required) == 0)
		return 0;
	missing = json_object();
	if (missing == NULL)
		goto nomem;
	if (collect_missing(m->client_capabilities, required, missing) < 0)
		goto nomem;
	if (json_object_size(missing) == 0) {
		json_decref(missing);
		return 0;
	}
	names[0] = '\0';
	json_object_foreach(missing, key, v)
	{
		int n = snprintf(names + off, sizeof(names) - off, "%s%s", off ? ", " : "", key);
		if (n < 0 || (size_t)n >= sizeof(names) - off)
			break;
		off += (size_t)n;
	}
	data = json_object();
	if (data == NULL)
		goto nomem;
	if (json_object_set_new(data, "requiredCapabilities", missing) < 0) {
		missing = NULL;
		goto nomem;
	}
	al_mcp_error_set(err, AL_MCP_MISSING_CAPABILITY, 400, data,
			 "Missing required client capability: %s", names);
	return -EINVAL;
nomem:
	json_decref(missing);
	json_decref(data);
	al_mcp_error_set(err, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
	return -ENOMEM;
}
