/*
 * chain.h - the audit log's hash chain: canonical JSON, record hashes and
 * the checkpoint message. Shared by the writer (log.c) and the verifier
 * (verify.c) so both compute exactly the same bytes. docs/AUDIT.md is the
 * normative description; keep the two in step.
 *
 * Canonical JSON of a record = jansson json_dumps(record without "hash",
 * JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII): no whitespace, object
 * keys sorted by their UTF-8 bytes, every non-ASCII character written as
 * \uXXXX (upper-case hex, surrogate pairs above U+FFFF). Records hold no
 * floating-point numbers (al_audit_chain_check_values refuses them) because
 * real formatting differs between JSON libraries.
 *
 * hash = lower-case hex SHA-256 of (prev_hash as 64 ASCII hex characters ||
 * canonical JSON). The first record's prev_hash is 64 '0' characters.
 */
#ifndef AL_AUDIT_CHAIN_H
#define AL_AUDIT_CHAIN_H

#include "core/buf.h"
#include "core/hash.h"

#include <jansson.h>
#include <stdint.h>

#define AL_AUDIT_GENESIS     "0000000000000000000000000000000000000000000000000000000000000000"
#define AL_AUDIT_CKPT_DOMAIN "airlock-audit-checkpoint-v1"
#define AL_AUDIT_JSON_FLAGS  (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

/*
 * Computes the record hash of `rec` (which may contain a "hash" member: it
 * is ignored, not removed) chained to `prev_hash` (64 hex characters).
 * Writes 64 hex digits + NUL to out. Returns 0, -ENOMEM or -EIO.
 */
int al_audit_chain_hash(const json_t *rec, const char *prev_hash, char out[AL_SHA256_HEX]);

/* 0 when v holds no JSON real anywhere (recursively), -EINVAL otherwise. */
int al_audit_chain_check_values(const json_t *v);

/* 1 when s is exactly 64 lower-case hex digits. */
int al_audit_chain_is_hash(const char *s);

/*
 * The message a checkpoint signs, appended to out:
 *   "airlock-audit-checkpoint-v1\n<head_seq in decimal>\n<head_hash>\n"
 * It binds the signature to a position in the chain, so a signed checkpoint
 * cannot be replayed onto a shorter or rewritten log.
 */
int al_audit_chain_ckpt_message(int64_t head_seq, const char *head_hash, al_buf *out);

#endif
