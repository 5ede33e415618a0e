/*
 * log.h - the tamper-evident audit log every component writes to.
 *
 * One JSON object per line (docs/AUDIT.md). al_audit_write adds to each
 * record: "seq" (1, 2, ...), "time" (RFC 3339, UTC, milliseconds),
 * "component" (when the record has none), "prev_hash" (the previous
 * record's hash; 64 '0' for the first) and "hash" = hex SHA-256(prev_hash ||
 * canonical JSON of the record without "hash") (audit/chain.h).
 *
 * Rule for callers: if al_audit_write fails, do not run the action it was
 * meant to record ("if the audit write fails, nothing runs").
 *
 * Durability: each line goes to the file in one write() on an O_APPEND fd;
 * by default fdatasync follows every record, so a record reported written
 * survives a crash. opts.sync_every = N syncs every N records instead
 * (faster; up to N-1 records can be lost in a power cut, never reordered).
 * opts.sync_every = AL_AUDIT_SYNC_EXPLICIT never syncs on its own (only
 * checkpoints, al_audit_sync and close do): the caller calls al_audit_sync
 * at the points that matter (the worker: before an action runs, and once
 * its result is posted), and concurrent callers share one fdatasync (group
 * commit). A written record survives a crash of the process at once (it
 * is in the page cache); a power cut can lose or tear only what was
 * written after the last sync: the synced prefix is intact and verifies, the tail past it may be
 * missing (a shorter valid chain) or torn (reopen refuses it; `airlock
 * audit verify` names the line; the prefix before it stands).
 * A failed write() is rolled back with ftruncate so the file stays a valid
 * chain and later writes may succeed; a failed fdatasync poisons the log
 * (the kernel may have dropped the dirty pages) and every later write fails.
 *
 * Checkpoints: with a signing key, a record {"type":"checkpoint",
 * "head_seq", "head_hash", "alg":"Ed25519", "key_id", "sig"} follows every
 * ckpt_every_records records and/or the first record written after
 * ckpt_every_seconds have passed (checked on write; there is no timer
 * thread), and one is written on close. sig signs
 * "airlock-audit-checkpoint-v1\n<head_seq>\n<head_hash>\n". Copy checkpoint
 * lines off the host (ckpt_copy_path, syslog): against a shipped checkpoint a
 * truncated or wholly rewritten log no longer verifies.
 *
 * Syslog export (audit/syslog.h) is best effort and never blocks or fails
 * the local log: the local file is the source of truth.
 *
 * Thread-safe: one mutex serialises writers. One process per file: the file
 * is locked (flock) while open and a second opener gets -EBUSY.
 */
#ifndef AL_AUDIT_LOG_H
#define AL_AUDIT_LOG_H

#include "core/hash.h"

#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* opts.sync_every for explicit syncs only (al_audit_sync). */
#define AL_AUDIT_SYNC_EXPLICIT UINT_MAX

struct al_audit_opts {
	const char *component;	     /* "sandbox", "worker", "gateway"; NULL: "airlock" */
	const char *sign_key_path;   /* Ed25519 private key (PEM); NULL: no checkpoints */
	unsigned ckpt_every_records; /* 0 with a key: 1000 */
	unsigned ckpt_every_seconds; /* 0: no time-based checkpoints */
	const char *ckpt_copy_path;  /* also append each checkpoint line here; may be NULL */
	const char *syslog_target;   /* "udp://HOST:PORT" / "tcp://HOST:PORT"; may be NULL */
	unsigned sync_every;	     /* fdatasync every N records; 0 and 1: every record;
					AL_AUDIT_SYNC_EXPLICIT: only on al_audit_sync */
	int full_verify;	     /* on reopen verify the whole file, not only its tail */
};

typedef struct al_audit_log al_audit_log;

struct al_audit_stats {
	int64_t seq; /* of the last record written */
	char head_hash[AL_SHA256_HEX];
	long checkpoints;   /* written by this handle */
	long syslog_sent;   /* messages exported */
	long syslog_failed; /* exports that failed (reported, not fatal) */
	long syncs;	    /* fdatasyncs of the log made by this handle */
};

/*
 * Opens (creating, mode 0600) the log at path, or continues an existing one
 * after checking its tail (last two records) or, with opts->full_verify, the
 * whole file; a log that does not verify (or ends in a torn line) is refused
 * with -EBADMSG and the reason in err. Then writes an "audit_open" record.
 * opts may be NULL (defaults). *out is closed with al_audit_close.
 * Errors: -EBADMSG, -EBUSY (another process has it open), -EINVAL (bad
 * options or key), -ENOMEM, or the errno of the failed file operation.
 */
int al_audit_open(const char *path, const struct al_audit_opts *opts, al_audit_log **out, char *err,
		  size_t errlen);

/*
 * Appends one record. `record` is borrowed and not modified (the added fields
 * go on a copy). It must be a JSON object without the reserved members seq,
 * time, prev_hash, hash, and without JSON reals (use integers: micro-
 * seconds, bytes); "type":"checkpoint" is reserved. Returns 0 once the line
 * is written (and synced as configured), else a negative errno (-EINVAL for
 * a bad record; -EIO for a poisoned log; the write's errno such as -ENOSPC
 * or -EFBIG) and the record is not in the log.
 */
int al_audit_write(al_audit_log *log, const json_t *record);

/*
 * Makes every record written before the call durable (fdatasync), unless a
 * sync since covered them already: then it returns at once without I/O. Safe
 * from any thread; concurrent callers share one fdatasync (see Durability).
 * Returns 0, -EIO for a poisoned log, or the errno of the failed fdatasync,
 * which poisons the log like any failed sync (every later write and sync
 * fails with -EIO: the kernel may have dropped the unsynced records).
 */
int al_audit_sync(al_audit_log *log);

/* Writes a signed checkpoint now (-EINVAL without a key). */
int al_audit_checkpoint(al_audit_log *log);

void al_audit_get_stats(al_audit_log *log, struct al_audit_stats *out);

/*
 * Writes the closing checkpoint (with a key), syncs and closes. Returns 0
 * or the first error; the handle is freed either way. NULL is fine.
 */
int al_audit_close(al_audit_log *log);

#endif
