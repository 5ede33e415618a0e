/*
 * verify.h - checks an audit log: the hash chain, sequence numbers,
 * checkpoint signatures, and shipped checkpoints (copies kept off the host).
 *
 * The verifier is fed one line at a time (without its '\n'), so it runs in
 * constant memory over any file and the fuzzer can drive the line parser
 * directly. It stops at the first bad record and remembers it: line number,
 * seq (when the line had one) and the reason in words.
 *
 * What it detects: a record changed (its hash no longer matches), removed or
 * inserted or reordered (seq is not previous + 1, or prev_hash is not the
 * previous hash), a checkpoint whose signature fails (with a public key), a
 * torn last line, and, given shipped checkpoints, truncation or a wholesale
 * rewrite behind them. A chain alone cannot reveal truncation at the end or a
 * complete rewrite: that is what shipped checkpoints are for.
 */
#ifndef AL_AUDIT_VERIFY_H
#define AL_AUDIT_VERIFY_H

#include "audit/key.h"
#include "core/hash.h"

#include <stddef.h>
#include <stdint.h>

struct al_audit_verify_result {
	int ok;		   /* 1 when everything fed so far is intact */
	long bad_line;	   /* 1-based line of the first bad record, 0 if none */
	int64_t bad_seq;   /* its seq, or -1 when the line had none */
	char reason[256];  /* why, in words (no record content) */
	long records;	   /* records accepted */
	long checkpoints;  /* checkpoint records accepted */
	long sigs_checked; /* checkpoint signatures verified with the public key */
	long shipped;	   /* shipped checkpoints matched against the log */
	int64_t last_seq;  /* seq of the last accepted record, 0 if none */
	char last_hash[AL_SHA256_HEX];
};

typedef struct al_audit_verifier al_audit_verifier;

/*
 * pub (borrowed, may be NULL, must outlive the verifier): with it every
 * checkpoint signature is checked and one that fails is a bad record;
 * without it checkpoints are chain-checked only (sigs_checked stays 0).
 */
al_audit_verifier *al_audit_verifier_new(const al_audit_key *pub);
void al_audit_verifier_free(al_audit_verifier *v);

/*
 * Registers one shipped checkpoint (a checkpoint record line as the log wrote
 * it). Its signature is checked now (a public key is required). Returns 0,
 * -EINVAL with words in err for a malformed or badly signed checkpoint.
 */
int al_audit_verifier_add_shipped(al_audit_verifier *v, const char *line, size_t len, char *err,
				  size_t errlen);

/*
 * Feeds the next line (without '\n'). Returns 0 when the record is good,
 * -EBADMSG when it (or an earlier one) is bad; after the first bad record
 * further lines are ignored. -ENOMEM on allocation failure.
 */
int al_audit_verifier_line(al_audit_verifier *v, const char *line, size_t len);

/*
 * Ends the input. `torn` says the last line had no '\n' (an interrupted
 * write). Checks that no shipped checkpoint lies beyond the end. Returns 0
 * or -EBADMSG.
 */
int al_audit_verifier_finish(al_audit_verifier *v, int torn);

const struct al_audit_verify_result *al_audit_verifier_result(const al_audit_verifier *v);

/*
 * Whole-file convenience: feeds `path` line by line, then finish. shipped_path
 * (may be NULL) holds shipped checkpoint lines. Returns 0 intact, -EBADMSG
 * tampered (details in *res), other negative errno when a file could not be
 * read (words in err).
 */
int al_audit_verify_file(const char *path, const al_audit_key *pub, const char *shipped_path,
			 struct al_audit_verify_result *res, char *err, size_t errlen);

#endif
