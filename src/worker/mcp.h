/*
 * mcp.h - the worker's tools (bash, read, write, edit, glob, grep; tools.h)
 * as an MCP server, for `airlock sandbox mcp`: any MCP client runs tools in
 * the hardened sandbox (docs/SANDBOX.md, "sandbox mcp").
 *
 * The tools are the worker's own, called through al_tool_session_run: the
 * same input schemas (agent/transcript.h, the SDK's agent toolset), the
 * same result texts, the same audit records, the same confinement (file
 * tools beneath the workspace through fileops; bash only in the sandbox,
 * one persistent shell). A CallToolResult is the tool's content blocks and
 * isError; arguments the tool refuses are results with isError (the
 * worker's texts), never JSON-RPC errors.
 *
 * One workspace, one sandbox, one shell: calls from every client run one
 * at a time in arrival order on the libuv thread pool (the loop thread
 * never blocks on a tool). A call whose caller goes away is dropped if it
 * has not started; a running bash is killed, and the next call gets a fresh
 * sandbox and shell (the workspace's files stay); a running file tool
 * finishes and its result is discarded. If a record of the audit log
 * cannot be written the server fails closed: every later call is refused
 * with "audit log unavailable".
 *
 * Threads: everything here is called on the loop thread.
 */
#ifndef AL_WORKER_MCP_H
#define AL_WORKER_MCP_H

#include <stddef.h>
#include <uv.h>

#include "audit/log.h"
#include "mcp/server.h"
#include "worker/worker.h"

struct al_tool_mcp;

/*
 * Creates the server (serverInfo "airlock-sandbox") and its tool session on
 * `workspace` (an existing directory, used as it is: al_tool_session_open_dir).
 * The sandbox itself is created by the first bash call. cfg (its sandbox
 * fields: backend, allow_hosts, ro_paths, timeout_ms, limits,
 * allow_degraded) and audit (may be NULL: no audit) are borrowed and must
 * outlive the result. 0 or a negative errno with a message in err.
 */
int al_tool_mcp_new(uv_loop_t *loop, const struct al_worker_config *cfg, const char *workspace,
		    al_audit_log *audit, struct al_tool_mcp **out, char *err, size_t errlen);
/* The MCP server to hand to a transport (borrowed; lives as long as tm). */
al_mcp_server *al_tool_mcp_server(struct al_tool_mcp *tm);
/*
 * Stops taking calls, kills a running bash, waits for the pool, destroys the
 * sandbox (off the loop) and then calls done(ud) on the loop. Free the
 * transports first (they cancel their calls). Once only.
 */
void al_tool_mcp_shutdown(struct al_tool_mcp *tm, void (*done)(void *ud), void *ud);
/* 1 once an audit record could not be written or synced (the server then fails closed). */
int al_tool_mcp_audit_failed(const struct al_tool_mcp *tm);
/* Frees tm after done has run (or if no call was ever taken). NULL ok. */
void al_tool_mcp_free(struct al_tool_mcp *tm);

#endif
