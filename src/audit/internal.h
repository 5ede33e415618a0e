/* internal.h - helpers shared inside src/audit only. */
#ifndef AL_AUDIT_INTERNAL_H
#define AL_AUDIT_INTERNAL_H

#include "audit/key.h"
#include "core/hash.h"

#include <jansson.h>
#include <stdint.h>

#define AL_AUDIT_SIG_B64_LEN 88 /* standard base64 of 64 bytes, padded */

/* A checkpoint's signed fields, borrowed from the record they came from. */
struct al_audit_ckpt {
	int64_t head_seq;
	const char *head_hash; /* 64 hex */
	const char *key_id;
	const char *sig; /* base64 */
};

/* 1 when rec has "type":"checkpoint". */
int al_audit_is_checkpoint(const json_t *rec);
/* Fills c from rec (pointers valid while rec lives); -EINVAL when malformed. */
int al_audit_ckpt_parse(const json_t *rec, struct al_audit_ckpt *c);
/* Standard padded base64 (what `base64 -d` reads). out has 89 bytes. */
void al_audit_sig_encode(const unsigned char sig[AL_AUDIT_SIG_LEN],
			 char out[AL_AUDIT_SIG_B64_LEN + 1]);
/* -EINVAL unless s is exactly the base64 of 64 bytes. */
int al_audit_sig_decode(const char *s, unsigned char sig[AL_AUDIT_SIG_LEN]);

#endif
