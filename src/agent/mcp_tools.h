/*
 * mcp_tools.h - which tools of an agent's MCP servers the model sees, under
 * which names, and under which permission policy.
 *
 * An agent's `mcp_servers` ({type:"url", name, url}) are only reached
 * through an `mcp_toolset` in its `tools` (agents.d.ts):
 *   {"type":"mcp_toolset", "mcp_server_name":S,
 *    "default_config":{"enabled":bool, "permission_policy":{"type":P}},
 *    "configs":[{"name":T, "enabled":bool, "permission_policy":{"type":P}}]}
 * A server without a toolset offers nothing. For a tool T of server S the
 * config is, in order: the config whose name equals T; else (our addition,
 * documented in docs/CONTROL-PLANE-MCP.md) the first config whose name is a
 * glob pattern (fnmatch: * ? [..]) matching T, so {"name":"delete_*",
 * "enabled":false} denies a family of tools and {"name":"*","enabled":false}
 * after the allowed ones makes the toolset an allow list; else
 * default_config. Unset `enabled` means enabled; an unset policy means
 * always_ask (the API's default for MCP tools, src/api/agents.c).
 *
 * Model-facing names must match ^[a-zA-Z0-9_-]{1,64}$ (Messages API). The
 * name is "<server>__<tool>"; when either part has another character it is
 * replaced by '_', and when that replacement happened or the name is longer
 * than 64, the name is cut to 55 characters and "_" plus 8 hex digits of a
 * hash of the exact (server, tool) pair are appended. The function is pure,
 * so the transcript rebuilds the same name from an agent.mcp_tool_use
 * (which records server and tool as they are) with no stored map.
 */
#ifndef AL_AGENT_MCP_TOOLS_H
#define AL_AGENT_MCP_TOOLS_H

#include "agent/permissions.h"

#include <jansson.h>
#include <stddef.h>

#define AL_MCP_MODEL_NAME_MAX 65 /* 64 characters and the NUL */

/* The model-facing name of tool `tool` of server `server` into out[AL_MCP_MODEL_NAME_MAX]. */
void al_mcp_model_name(const char *server, const char *tool, char out[AL_MCP_MODEL_NAME_MAX]);

/* The mcp_toolset for server `server` in agent_tools (borrowed), or NULL. */
const json_t *al_mcp_toolset(const json_t *agent_tools, const char *server);

/*
 * Evaluates tool `tool` of server `server` under the agent's tools: out->perm
 * is DENY (policy NULL) when the tool is not enabled or the server has no
 * toolset, else ALLOW for always_allow and ASK for always_ask and auto.
 * Never fails.
 */
void al_mcp_evaluate(const json_t *agent_tools, const char *server, const char *tool,
		     struct al_perm_result *out);

/*
 * Adds the enabled tools of one server's tools/list result (`listed`, the
 * {"tools":[...]} object) to `defs` (Messages API tool definitions: name,
 * description, input_schema) and `map` (model name -> {"server", "tool"}).
 * A tool whose model name is already taken (by a built-in, a custom tool or
 * another MCP tool: put the names in use in `map` beforehand, as null) is
 * skipped with a warning. Returns how many were added, or -ENOMEM.
 */
int al_mcp_offer(const json_t *agent_tools, const char *server, const json_t *listed, json_t *defs,
		 json_t *map);

#endif
