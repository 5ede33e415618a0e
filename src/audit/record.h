/*
 * record.h - builders for OCSF-aligned audit records.
 *
 * Each returns a new JSON object (the caller owns it: al_audit_write it, then
 * json_decref) or NULL when out of memory. The OCSF attributes use OCSF's
 * names (class_uid, category_uid, activity_id, type_uid = class_uid * 100 +
 * activity_id, severity_id, status_id, process, file, dst_endpoint,
 * traffic, exit_code); everything airlock-specific is under "airlock".
 * al_audit_write adds seq, time, component, prev_hash and hash.
 *
 * Content never enters a record: environment variables are reduced to their
 * names, outputs and written files to their size and SHA-256.
 */
#ifndef AL_AUDIT_RECORD_H
#define AL_AUDIT_RECORD_H

#include <jansson.h>
#include <stdint.h>

/* Correlation ids; every member optional (NULL: omitted). All borrowed. */
struct al_audit_ctx {
	const char *sandbox_id;
	const char *session_id;
	const char *request_id;
	const char *tool_call_id;
	const char *work_id;	 /* the work item (worker) */
	const char *policy_hash; /* SHA-256 of the policy in force */
	const char *features;	 /* kernel features in force, e.g. "userns,landlock=7,seccomp" */
};

struct al_audit_rusage {
	int64_t utime_us, stime_us;
	int64_t maxrss_kb;
	int64_t minflt, majflt, nvcsw, nivcsw;
};

/* A process (class 1007 Process Activity). All pointers borrowed. */
struct al_audit_proc {
	long pid;
	const char *const *argv; /* NULL-terminated */
	const char *cwd;
	/* "NAME=value" or "NAME" strings, NULL-terminated: only NAME is recorded */
	const char *const *env;
	/* exit only */
	int exit_code; /* when signal == 0 */
	int signal;    /* terminating signal, 0 if exited */
	int timed_out; /* killed by the wall-clock limit */
	int64_t duration_us;
	const struct al_audit_rusage *rusage;	   /* may be NULL */
	uint64_t stdout_bytes, stderr_bytes;	   /* total produced, before any cap */
	int truncated;				   /* output was capped */
	const char *stdout_sha256, *stderr_sha256; /* hex of the full output; may be NULL */
};

json_t *al_audit_rec_process_launch(const struct al_audit_ctx *ctx, const struct al_audit_proc *p);
json_t *al_audit_rec_process_exit(const struct al_audit_ctx *ctx, const struct al_audit_proc *p);

/* OCSF File System Activity activity_id values. */
enum al_audit_file_op {
	AL_AUDIT_FILE_CREATE = 1,
	AL_AUDIT_FILE_READ = 2,
	AL_AUDIT_FILE_UPDATE = 3,
	AL_AUDIT_FILE_DELETE = 4,
	AL_AUDIT_FILE_RENAME = 5,
};

/* A file operation (class 1001). */
struct al_audit_file {
	enum al_audit_file_op op;
	const char *path;
	const char *new_path; /* rename target; may be NULL */
	int64_t size;	      /* bytes after the operation; < 0 unknown */
	const char *sha256;   /* hex of the content written (or read); may be NULL */
	int failed;	      /* the operation was refused or failed */
	const char *reason;   /* why it failed; may be NULL */
};

json_t *al_audit_rec_file(const struct al_audit_ctx *ctx, const struct al_audit_file *f);

/* OCSF Network Activity activity_id values used. */
enum al_audit_net_activity {
	AL_AUDIT_NET_OPEN = 1,	 /* connection allowed and opened */
	AL_AUDIT_NET_CLOSE = 2,	 /* connection ended (byte counts final) */
	AL_AUDIT_NET_REFUSE = 5, /* denied by policy */
};

/* An egress decision or connection (class 4001). */
struct al_audit_net {
	enum al_audit_net_activity activity;
	const char *host; /* as requested */
	int port;
	const char *addr;     /* resolved address connected to; may be NULL */
	const char *reason;   /* policy rule or refusal reason; may be NULL */
	const char *protocol; /* "http-connect", "http", "socks5"; may be NULL */
	uint64_t bytes_in, bytes_out;
};

json_t *al_audit_rec_network(const struct al_audit_ctx *ctx, const struct al_audit_net *n);

/*
 * An event with no closer OCSF class (work item claimed, lease lost, tool
 * call answered...): class 6003 API Activity, activity 99 Other, with
 * airlock.event = `event` ("work.claimed", "tool.result"...) and every member
 * of `fields` (stolen, even on failure; may be NULL) merged into "airlock".
 * `failed` sets status_id 2 Failure.
 */
json_t *al_audit_rec_event(const struct al_audit_ctx *ctx, const char *event, int failed,
			   json_t *fields);

#endif
