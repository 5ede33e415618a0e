/* permissions.c - built-in tool enablement and per-tool permission policy. */
#include "agent/permissions.h"

#include <errno.h>
#include <string.h>

const char *const al_perm_builtin_names[] = {"bash", "read", "write", "edit", "glob", "grep", NULL};

int al_perm_is_builtin(const char *name)
{
	if (name == NULL)
		return 0;
	for (size_t i = 0; al_perm_builtin_names[i] != NULL; i++)
		if (strcmp(al_perm_builtin_names[i], name) == 0)
			return 1;
	return 0;
}

const json_t *al_perm_toolset(const json_t *agent_tools)
{
	const json_t *t;
	size_t i;

	json_array_foreach(agent_tools, i, t)
	{
		const char *type = json_string_value(json_object_get(t, "type"));
		if (type != NULL && strcmp(type, "agent_toolset_20260401") == 0)
			return t;
	}
	return NULL;
}

/* The per-tool config entry for name, or NULL. */
static const json_t *tool_config(const json_t *toolset, const char *name)
{
	const json_t *c;
	size_t i;

	json_array_foreach(json_object_get(toolset, "configs"), i, c)
	{
		const char *n = json_string_value(json_object_get(c, "name"));
		if (n != NULL && strcmp(n, name) == 0)
			return c;
	}
	return NULL;
}

int al_perm_builtin_enabled(const json_t *agent_tools, const char *name)
{
	const json_t *ts = al_perm_toolset(agent_tools), *cfg, *en;

	if (ts == NULL || !al_perm_is_builtin(name))
		return 0;
	cfg = tool_config(ts, name);
	en = json_object_get(cfg, "enabled");
	if (json_is_boolean(en))
		return json_is_true(en);
	en = json_object_get(json_object_get(ts, "default_config"), "enabled");
	if (json_is_boolean(en))
		return json_is_true(en);
	return 1;
}

void al_perm_evaluate(const json_t *agent_tools, const char *name, struct al_perm_result *out)
{
	const json_t *ts = al_perm_toolset(agent_tools);
	const char *policy = NULL;

	if (!al_perm_builtin_enabled(agent_tools, name)) {
		*out = (struct al_perm_result){AL_PERM_DENY, NULL};
		return;
	}
	policy = json_string_value(
	    json_object_get(json_object_get(tool_config(ts, name), "permission_policy"), "type"));
	if (policy == NULL)
		policy = json_string_value(json_object_get(
		    json_object_get(json_object_get(ts, "default_config"), "permission_policy"),
		    "type"));
	if (policy != NULL && strcmp(policy, "always_ask") == 0)
		*out = (struct al_perm_result){AL_PERM_ASK, "always_ask"};
	else if (policy != NULL && strcmp(policy, "auto") == 0)
		*out = (struct al_perm_result){AL_PERM_ASK, "auto"};
	else
		*out = (struct al_perm_result){AL_PERM_ALLOW, "always_allow"};
}

int al_perm_annotate(json_t *event, const struct al_perm_result *r)
{
	static const char *const names[] = {"allow", "ask", "deny"};
	json_t *ev = NULL;

	if (json_object_set_new(event, "evaluated_permission", json_string(names[r->perm])) < 0)
		return -ENOMEM;
	if (r->policy == NULL)
		return 0;
	if (strcmp(r->policy, "auto") == 0)
		ev = json_pack("{s:s, s:{s:s, s:s}}", "type", "auto", "evaluated_permission",
			       "type", "ask", "reason_code", "indeterminate");
	else
		ev = json_pack("{s:s}", "type", r->policy);
	if (ev == NULL || json_object_set_new(event, "evaluation", ev) < 0)
		return -ENOMEM;
	return 0;
}
