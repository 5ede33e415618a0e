/*
 * permissions.h - which built-in tools an agent has, and whether a call runs.
 *
 * An agent's `tools` array may hold the built-in toolset
 *   {"type":"agent_toolset_20260401",
 *    "default_config":{"enabled":bool,"permission_policy":{"type":P}},
 *    "configs":[{"name":"bash","enabled":bool,"permission_policy":{"type":P}}, ...]}
 * with P one of always_allow, always_ask, auto (agents.d.ts). A tool's own
 * config wins over default_config; an unset policy means always_allow and an
 * unset `enabled` means enabled.
 *
 * Evaluation of one call (the fields of agent.tool_use, events.d.ts):
 *   always_allow -> evaluated_permission "allow", evaluation {type:always_allow}
 *   always_ask   -> "ask", evaluation {type:always_ask}
 *   auto         -> "ask", evaluation {type:auto, evaluated_permission:
 *                   {type:ask, reason_code:"indeterminate"}}: airlock has no
 *                   risk classifier, and the protocol says a call the server
 *                   reaches no judgement on is held for the client.
 *   a tool that is not an enabled built-in -> "deny" with no evaluation
 *                   (refused before any policy applied); the loop answers it
 *                   with an error tool_result so the model can recover.
 * Only the six tools a self-hosted worker executes are built-ins here
 * (bash, read, write, edit, glob, grep); web_fetch and web_search run on the
 * platform side and are not offered.
 */
#ifndef AL_AGENT_PERMISSIONS_H
#define AL_AGENT_PERMISSIONS_H

#include <jansson.h>

enum al_perm { AL_PERM_ALLOW, AL_PERM_ASK, AL_PERM_DENY };

struct al_perm_result {
	enum al_perm perm;
	const char *policy; /* "always_allow", "always_ask", "auto"; NULL when denied unevaluated */
};

/* The six built-in tool names, NULL-terminated (static storage). */
extern const char *const al_perm_builtin_names[];

/* 1 when name is one of the built-in tool names. */
int al_perm_is_builtin(const char *name);
/* The toolset object in agent_tools (borrowed), or NULL. */
const json_t *al_perm_toolset(const json_t *agent_tools);
/* 1 when the toolset is present and enables `name`. */
int al_perm_builtin_enabled(const json_t *agent_tools, const char *name);
/* Evaluates a call of tool `name` under the agent's tools. Never fails. */
void al_perm_evaluate(const json_t *agent_tools, const char *name, struct al_perm_result *out);
/* Sets evaluated_permission (and evaluation) on an agent.tool_use event. 0 or -ENOMEM. */
int al_perm_annotate(json_t *event, const struct al_perm_result *r);

#endif
