/*
 * workspace.h - the life of a session's workspace (<workdir>/<session_id>,
 * created by tools.c when the session's first call runs) after its items
 * end: when it is deleted (docs/OPERATIONS.md, "Workspaces").
 *
 * Policy: a workspace lives as long as its session may still get work (a
 * later item of the same session continues in it, the bash history and the
 * files the agent wrote included). It is deleted when this worker learns
 * that the session is over (terminated or deleted: no item can follow), and,
 * when the operator sets workspace_ttl, when nothing used it for that long
 * (a session that simply went quiet: archived, abandoned, or served by
 * another worker since).
 */
#ifndef AL_WORKER_WORKSPACE_H
#define AL_WORKER_WORKSPACE_H

#include "worker/worker.h"

#include <stddef.h>
#include <time.h>

/* Whether `id` can name a workspace: [A-Za-z0-9_-], 1..128 characters (as tools.c). */
int al_workspace_id_ok(const char *id);

/*
 * Deletes <workdir>/<session_id> and everything beneath it, never following
 * a symbolic link and never crossing into another file system (a bind mount
 * left behind is refused, not emptied). Only when no sandbox of the session
 * runs: its processes could otherwise race the walk. Returns 1 when deleted,
 * 0 when there was none, a negative errno (-EINVAL for a bad id).
 */
int al_workspace_remove(const struct al_worker_config *cfg, const char *session_id);

/* Marks <workdir>/<session_id> used now (its mtime), for workspace_ttl. 0 or -errno. */
int al_workspace_touch(const struct al_worker_config *cfg, const char *session_id);

/*
 * workspace_ttl: deletes every workspace under cfg->workdir whose mtime is
 * older than now - ttl_s, unless in_use(session_id, ud) says a session of
 * this worker (an item or an --on-work script) still has it; removed (may
 * be NULL) is told of each deletion tried (rc as al_workspace_remove's). Entries that
 * are not directories, names that are not session ids, and the state
 * directory are left alone. Returns how many were deleted, or a negative
 * errno when the workdir cannot be read. Blocking: run it off the loop.
 */
int al_workspace_sweep(const struct al_worker_config *cfg, unsigned ttl_s, time_t now,
		       int (*in_use)(const char *session_id, void *ud),
		       void (*removed)(const char *session_id, int rc, void *ud), void *ud);

#endif
