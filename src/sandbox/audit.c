/*
 * audit.c - sandbox activity as audit records.
 */
#include "sandbox/audit.h"

#include <stdio.h>

void al_sandbox_audit_features(const struct al_sandbox *sb, char *buf, size_t len)
{
	snprintf(buf, len,
		 "backend=%s,userns,mountns,pidns,netns,ipcns,utsns,cgroupns,seccomp=%d,"
		 "landlock=%d,limits=%s",
		 sb->ops->name, sb->seccomp, sb->landlock_abi, al_limits_mode_name(sb->limits));
}

json_t *al_sandbox_audit_net(const struct al_audit_ctx *ctx, const struct al_egress_decision *d)
{
	struct al_audit_net n = {0};

	/* FAILED (allowed, but DNS/connect failed) ended without a byte: a close. */
	n.activity = d->event == AL_EGRESS_DENIED      ? AL_AUDIT_NET_REFUSE
		     : d->event == AL_EGRESS_CONNECTED ? AL_AUDIT_NET_OPEN
						       : AL_AUDIT_NET_CLOSE;
	n.host = d->host;
	n.port = d->port;
	n.addr = d->addr;
	n.reason = d->reason;
	n.protocol = d->proto;
	n.bytes_in = d->bytes_down;
	n.bytes_out = d->bytes_up;
	return al_audit_rec_network(ctx, &n);
}

json_t *al_sandbox_audit_exit(const struct al_audit_ctx *ctx, const struct al_audit_proc *launch,
			      const struct al_sandbox_result *r)
{
	struct al_audit_proc pr = *launch;
	struct al_audit_rusage ru = {0};

	ru.utime_us = (int64_t)r->rusage.ru_utime.tv_sec * 1000000 + r->rusage.ru_utime.tv_usec;
	ru.stime_us = (int64_t)r->rusage.ru_stime.tv_sec * 1000000 + r->rusage.ru_stime.tv_usec;
	ru.maxrss_kb = r->rusage.ru_maxrss;
	ru.minflt = r->rusage.ru_minflt;
	ru.majflt = r->rusage.ru_majflt;
	ru.nvcsw = r->rusage.ru_nvcsw;
	ru.nivcsw = r->rusage.ru_nivcsw;
	pr.exit_code = r->exit_code;
	pr.signal = r->signal;
	pr.timed_out = r->timed_out;
	pr.duration_us = (int64_t)(r->run_ms * 1000.0);
	pr.rusage = &ru;
	pr.stdout_bytes = r->out.total;
	pr.stderr_bytes = r->err.total;
	pr.truncated = r->truncated;
	pr.stdout_sha256 = r->out.sha256;
	pr.stderr_sha256 = r->err.sha256;
	return al_audit_rec_process_exit(ctx, &pr);
}
