/*
 * tools.h - the built-in tools a self-hosted worker executes (bash, read,
 * write, edit, glob, grep), for one session, inside that session's sandbox.
 *
 * A tool session owns the session's workspace (<workdir>/<session_id>,
 * created mode 0700, owned by the uid commands run as inside the sandbox),
 * its sandbox (created on the first bash call: file tools do not need one)
 * with a persistent shell, and a confined fileops root on the workspace plus
 * the configured read-only roots. File tools run in the worker process
 * through sandbox/fileops.h (openat2 RESOLVE_BENEATH), never through the
 * shell; bash runs only in the sandbox, whose environment never holds an
 * ANTHROPIC_* variable, a key or a token.
 *
 * Results follow the SDK's agent toolset (tools/agent-toolset/node.js in
 * @anthropic-ai/sdk 1.14.0): the same limits, error texts where they matter
 * to the model, and content as an array of {type:"text", text} blocks.
 *
 * Audit: every call writes a "tool.start" record (al_audit_rec_event: tool
 * name, input SHA-256) before anything runs and a "tool.call" record after it
 * with the tool name, input SHA-256, result SHA-256, is_error, exit status
 * (bash), duration in microseconds; plus the engine's process launch/exit
 * records for bash (argv is only "bash": the command is content, covered by
 * the input hash) and file activity records for write/edit (size and SHA-256
 * of what was written); the sandbox's creation is a "sandbox.launch" record
 * (backend, mechanisms in force, policy hash); every egress decision is a
 * network record (session and sandbox ids). If an audit write that precedes
 * the action fails (tool.start, sandbox.launch, process launch), the call
 * does not run and its result is an error ("audit log unavailable"); if one
 * after it fails, the result stands and audit_failed is set (the log is
 * broken: the caller should stop taking work).
 *
 * Durability (a log opened with AL_AUDIT_SYNC_EXPLICIT; docs/AUDIT.md): the
 * records before an action with effects (bash, write, edit) are synced
 * (al_audit_sync) before it runs, so a power cut can never erase the record
 * of an action that ran. The records after the action (the exit record,
 * tool.call) are written but not synced before al_tool_session_run returns:
 * they survive a crash of the process (page cache) and the caller makes
 * them durable once the result is posted (al_audit_sync off the critical
 * path; session.c after the post); the next pre-action sync and close cover
 * them too. A read-only tool (read, glob, grep) syncs nothing itself. A
 * failed sync counts as a failed write of the records it covers.
 *
 * Threads: al_tool_session_run blocks (up to the call's timeout) and is
 * called from a thread-pool thread, one call at a time per session;
 * al_tool_session_cancel may be called from any thread meanwhile.
 */
#ifndef AL_WORKER_TOOLS_H
#define AL_WORKER_TOOLS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/log.h"
#include "worker/worker.h"

/* 1 for bash, read, write, edit, glob, grep: the tools this worker owns. */
int al_tool_is_owned(const char *name);

struct al_tool_result {
	int is_error;
	json_t *content; /* owned: [{type:"text", text}] */
	int exit_code;	 /* bash: the status (128+N signal, 124 timeout); else -1 */
	int64_t duration_us;
	char input_sha256[65];	/* hex SHA-256 of the canonical input JSON */
	char result_sha256[65]; /* hex SHA-256 of the canonical content JSON */
	int audit_failed;	/* a record of this call could not be written */
};
void al_tool_result_clear(struct al_tool_result *r);

/*
 * The hex SHA-256 of `v`'s canonical JSON: json_dumps with JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENCODE_ANY (the same bytes for objects and arrays as
 * without the last flag). Returns 0 or -ENOMEM.
 */
int al_tool_json_sha256(const json_t *v, char out[65]);

struct al_tool_session;

/*
 * Opens the tool session of `session_id` under cfg->workdir (reusing the
 * workspace if it exists: a later work item of the same session continues
 * where the last left off). cfg and audit are borrowed and must outlive the
 * session; audit may be NULL only in unit tests. Returns 0 or a negative
 * errno with a message in err (e.g. an unsafe session id: only [A-Za-z0-9_-]).
 */
int al_tool_session_open(const struct al_worker_config *cfg, const char *session_id,
			 al_audit_log *audit, struct al_tool_session **out, char *err,
			 size_t errlen);
/*
 * Like al_tool_session_open, but the workspace is `workspace` itself (an
 * existing directory, made absolute; a symbolic link as its last component
 * is refused), not <workdir>/<session_id>, and it is used as it is: neither
 * created nor chowned nor chmodded (`airlock sandbox mcp --workspace DIR`:
 * the operator's directory). cfg->workdir is not used. session_id only
 * names the session in the audit records.
 */
int al_tool_session_open_dir(const struct al_worker_config *cfg, const char *session_id,
			     const char *workspace, al_audit_log *audit,
			     struct al_tool_session **out, char *err, size_t errlen);
/*
 * Runs one call to completion. Never fails for the tool's own reasons (a
 * missing file, a non-zero exit, a timeout, a refused path): those are
 * results with is_error set and a message for the model. Returns 0, or
 * -ENOMEM / -ECANCELED (cancelled before or while running: *out holds an
 * error result saying so). work_id and tool_use_id go into the audit records.
 */
int al_tool_session_run(struct al_tool_session *ts, const char *work_id, const char *tool_use_id,
			const char *name, const json_t *input, struct al_tool_result *out);
/* Kills the running command (if any) and makes later runs return -ECANCELED. Any thread. */
void al_tool_session_cancel(struct al_tool_session *ts);
/* Destroys the sandbox (killing everything in it) and frees; the workspace stays. NULL ok. */
void al_tool_session_close(struct al_tool_session *ts);

#endif
