/*
 * limits.h - memory, pids and CPU limits for a sandbox, and the rlimits every
 * sandboxed process gets.
 *
 * Tried in order: cgroup v2 when the caller's cgroup is delegated (writable,
 * with the controllers enabled), cgroup v1 when the v1 controllers are
 * writable (root on a v1 host), else rlimits (RLIMIT_AS, RLIMIT_NPROC; the
 * latter counts per user, not per sandbox). The mode in force is reported.
 */
#ifndef AL_SANDBOX_LIMITS_H
#define AL_SANDBOX_LIMITS_H

#include "sandbox/sandbox.h"

#include <sys/types.h>

struct al_limits {
	unsigned memory_mb, pids, cpu_pct; /* 0 = none */
	unsigned long long fsize_max;	   /* 0 = none */
};

struct al_cgroup; /* owned by the caller; al_limits_cgroup_free */

/*
 * Creates a cgroup for one sandbox under the caller's own cgroup(s) and
 * writes the limits. *out is NULL (and *mode AL_LIMITS_RLIMIT) when no
 * cgroup hierarchy is usable, or AL_LIMITS_NONE when there is nothing to limit.
 */
int al_limits_cgroup_new(const struct al_limits *l, struct al_cgroup **out,
			 enum al_limits_mode *mode, char *err, size_t errlen);
/* Moves pid (0: the caller) into the cgroup. Async-signal-safe (for a fork child). */
int al_limits_cgroup_attach(const struct al_cgroup *cg, pid_t pid);
/* Kills every process in the cgroup (cgroup.kill on v2, SIGKILL loop on v1). */
void al_limits_cgroup_kill(struct al_cgroup *cg);
/* 1 when the memory limit was hit (an OOM kill happened). */
int al_limits_cgroup_oom(const struct al_cgroup *cg);
/* Kills what is left, removes the directories and frees. NULL is fine. */
void al_limits_cgroup_free(struct al_cgroup *cg);

/*
 * Startup sweep. A sandbox's cgroup directories are named
 * airlock-<creator pid>-<n> under the creator's own cgroup(s); a creator
 * killed with SIGKILL cannot remove them, and nothing else will. This kills
 * whatever is left in every such directory whose creator pid no longer
 * exists, and removes it. Directories of live processes (and of pids reused
 * by a live process) are left alone, so it is safe while other airlock
 * processes run, provided they share this pid namespace (a creator in another
 * pid namespace with the same cgroup parent would look dead). Returns the
 * number of directories removed.
 */
int al_limits_sweep_stale(void);

/*
 * Sets the rlimits for a sandboxed process: RLIMIT_FSIZE, RLIMIT_CORE 0, and in
 * AL_LIMITS_RLIMIT mode RLIMIT_AS and RLIMIT_NPROC too. Async-signal-safe.
 */
int al_limits_apply_rlimits(const struct al_limits *l, enum al_limits_mode mode);

#endif
