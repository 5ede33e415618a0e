/*
 * audit.h - audit records (audit/record.h) built from the sandbox engine's
 * own types, shared by `airlock sandbox run` and the worker's tools so that
 * both describe a sandbox, a command's end and an egress decision the same
 * way. Content never enters: sizes and hashes only.
 */
#ifndef AL_SANDBOX_AUDIT_H
#define AL_SANDBOX_AUDIT_H

#include <jansson.h>
#include <stddef.h>

#include "audit/record.h"
#include "sandbox/egress.h"
#include "sandbox/sandbox.h"

/*
 * "backend=native,userns,...,seccomp=1,landlock=5,limits=cgroup2": the
 * mechanisms in force, for al_audit_ctx.features.
 */
void al_sandbox_audit_features(const struct al_sandbox *sb, char *buf, size_t len);

/* A network record (class 4001) for one egress decision. NULL when out of memory. */
json_t *al_sandbox_audit_net(const struct al_audit_ctx *ctx, const struct al_egress_decision *d);

/*
 * The process-exit record of a command: `launch` carries what the launch
 * record said (argv, cwd, env; borrowed), `r` the outcome (status, rusage,
 * output sizes and hashes). NULL when out of memory.
 */
json_t *al_sandbox_audit_exit(const struct al_audit_ctx *ctx, const struct al_audit_proc *launch,
			      const struct al_sandbox_result *r);

#endif
