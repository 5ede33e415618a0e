/* mcp_tools.c - MCP tool naming, selection and permission (see mcp_tools.h). */
#include "agent/mcp_tools.h"

#include "core/log.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* Appends s to out (capacity cap), replacing characters the API refuses; 1 if any was. */
static int put_clean(char *out, size_t cap, size_t *len, const char *s)
{
	int changed = 0;

	for (; *s; s++) {
		char c = name_char(*s) ? *s : '_';
		changed |= c != *s;
		if (*len + 1 < cap)
			out[(*len)++] = c;
		else
			changed = 1; /* cut: the hash keeps the name unique */
	}
	out[*len] = '\0';
	return changed;
}

void al_mcp_model_name(const char *server, const char *tool, char out[AL_MCP_MODEL_NAME_MAX])
{
	char buf[512];
	size_t len = 0;
	uint32_t h = 2166136261u; /* FNV-1a over server, NUL, tool */
	int changed;

	changed = put_clean(buf, sizeof(buf), &len, server);
	changed |= put_clean(buf, sizeof(buf), &len, "__");
	changed |= put_clean(buf, sizeof(buf), &len, tool);
	if (!changed && len > 0 && len < AL_MCP_MODEL_NAME_MAX) {
		memcpy(out, buf, len + 1);
		return;
	}
	for (const char *p = server; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ 0u) * 16777619u;
	for (const char *p = tool; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	if (len > 55)
		len = 55;
	buf[len] = '\0';
	snprintf(out, AL_MCP_MODEL_NAME_MAX, "%.55s_%08x", buf, (unsigned)h);
}

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

const json_t *al_mcp_toolset(const json_t *agent_tools, const char *server)
{
	const json_t *t;
	size_t i;

	json_array_foreach(agent_tools, i, t)
	{
		const char *type = str_of(t, "type"), *s = str_of(t, "mcp_server_name");
		if (type != NULL && strcmp(type, "mcp_toolset") == 0 && s != NULL &&
		    server != NULL && strcmp(s, server) == 0)
			return t;
	}
	return NULL;
}

/* The config that governs `tool`: exact name, else first matching glob, else default. */
static const json_t *config_for(const json_t *toolset, const char *tool)
{
	const json_t *configs = json_object_get(toolset, "configs"), *c;
	size_t i;

	json_array_foreach(configs, i, c)
	{
		const char *n = str_of(c, "name");
		if (n != NULL && strcmp(n, tool) == 0)
			return c;
	}
	json_array_foreach(configs, i, c)
	{
		const char *n = str_of(c, "name");
		if (n != NULL && strpbrk(n, "*?[") != NULL && fnmatch(n, tool, 0) == 0)
			return c;
	}
	return json_object_get(toolset, "default_config");
}

void al_mcp_evaluate(const json_t *agent_tools, const char *server, const char *tool,
		     struct al_perm_result *out)
{
	const json_t *ts = al_mcp_toolset(agent_tools, server), *c, *dflt, *en;
	const char *policy = NULL;

	out->perm = AL_PERM_DENY;
	out->policy = NULL;
	if (ts == NULL || tool == NULL)
		return;
	c = config_for(ts, tool);
	dflt = json_object_get(ts, "default_config");
	en = json_object_get(c, "enabled");
	if (en == NULL || json_is_null(en))
		en = json_object_get(dflt, "enabled");
	if (json_is_false(en))
		return;
	policy = str_of(json_object_get(c, "permission_policy"), "type");
	if (policy == NULL)
		policy = str_of(json_object_get(dflt, "permission_policy"), "type");
	if (policy != NULL && strcmp(policy, "always_allow") == 0) {
		out->perm = AL_PERM_ALLOW;
		out->policy = "always_allow";
	} else if (policy != NULL && strcmp(policy, "auto") == 0) {
		out->perm = AL_PERM_ASK;
		out->policy = "auto";
	} else {
		out->perm = AL_PERM_ASK;
		out->policy = "always_ask";
	}
}

int al_mcp_offer(const json_t *agent_tools, const char *server, const json_t *listed, json_t *defs,
		 json_t *map)
{
	const json_t *t;
	size_t i;
	int n = 0;

	json_array_foreach(json_object_get(listed, "tools"), i, t)
	{
		const char *tool = str_of(t, "name"), *desc = str_of(t, "description");
		const json_t *schema = json_object_get(t, "inputSchema");
		char name[AL_MCP_MODEL_NAME_MAX];
		struct al_perm_result pr;
		json_t *def;

		if (tool == NULL || *tool == '\0')
			continue;
		al_mcp_evaluate(agent_tools, server, tool, &pr);
		if (pr.perm == AL_PERM_DENY)
			continue;
		al_mcp_model_name(server, tool, name);
		if (json_object_get(map, name) != NULL) {
			al_warn("agent", "mcp server %s: tool %s not offered: its name %s is taken",
				server, tool, name);
			continue;
		}
		/* The API wants an object schema; a server that sent none gets the empty one. */
		if (json_is_object(schema))
			def = json_pack("{s:s, s:O}", "name", name, "input_schema", schema);
		else
			def = json_pack("{s:s, s:{s:s}}", "name", name, "input_schema", "type",
					"object");
		if (def == NULL)
			return -ENOMEM;
		if (desc != NULL && *desc &&
		    json_object_set_new(def, "description", json_string(desc)) < 0) {
			json_decref(def);
			return -ENOMEM;
		}
		if (json_array_append_new(defs, def) < 0 ||
		    json_object_set_new(
			map, name, json_pack("{s:s, s:s}", "server", server, "tool", tool)) < 0)
			return -ENOMEM;
		n++;
	}
	return n;
}
