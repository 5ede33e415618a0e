/* chain.c - canonical JSON, record hashes, checkpoint message (see chain.h). */
#include "audit/chain.h"

#include "audit/internal.h"
#include "core/alloc.h"

#include <errno.h>
#include <openssl/evp.h>
#include <inttypes.h>
#include <string.h>

int al_audit_chain_check_values(const json_t *v)
{
	const char *k;
	json_t *m;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_REAL:
		return -EINVAL;
	case JSON_OBJECT:
		json_object_foreach((json_t *)v, k,
				    m) if (al_audit_chain_check_values(m) < 0) return -EINVAL;
		return 0;
	case JSON_ARRAY:
		json_array_foreach(v, i, m) if (al_audit_chain_check_values(m) < 0) return -EINVAL;
		return 0;
	default:
		return 0;
	}
}

int al_audit_chain_is_hash(const char *s)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[64] == '\0';
}

int al_audit_chain_hash(const json_t *rec, const char *prev_hash, char out[AL_SHA256_HEX])
{
	json_t *copy = NULL;
	char *canon = NULL;
	al_buf b = {0};
	int rc;

	/* A shallow copy is enough: only the top-level "hash" member is dropped. */
	copy = json_copy((json_t *)rec);
	if (copy == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	json_object_del(copy, "hash");
	canon = json_dumps(copy, AL_AUDIT_JSON_FLAGS);
	if (canon == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if ((rc = al_buf_append(&b, prev_hash, 64)) < 0 || (rc = al_buf_append_str(&b, canon)) < 0)
		goto done;
	rc = al_sha256_hex(b.data, b.len, out);
done:
	al_buf_free(&b);
	al_free(canon);
	json_decref(copy);
	return rc;
}

int al_audit_chain_ckpt_message(int64_t head_seq, const char *head_hash, al_buf *out)
{
	return al_buf_appendf(out, "%s\n%" PRId64 "\n%.64s\n", AL_AUDIT_CKPT_DOMAIN, head_seq,
			      head_hash);
}

/* ---- internal.h ---- */

int al_audit_is_checkpoint(const json_t *rec)
{
	const char *t = json_string_value(json_object_get(rec, "type"));

	return t != NULL && strcmp(t, "checkpoint") == 0;
}

int al_audit_ckpt_parse(const json_t *rec, struct al_audit_ckpt *c)
{
	json_t *s = json_object_get(rec, "head_seq");
	const char *alg = json_string_value(json_object_get(rec, "alg"));

	if (!json_is_object(rec) || !al_audit_is_checkpoint(rec) || !json_is_integer(s))
		return -EINVAL;
	c->head_seq = json_integer_value(s);
	c->head_hash = json_string_value(json_object_get(rec, "head_hash"));
	c->key_id = json_string_value(json_object_get(rec, "key_id"));
	c->sig = json_string_value(json_object_get(rec, "sig"));
	if (c->head_seq < 1 || !al_audit_chain_is_hash(c->head_hash) || c->key_id == NULL ||
	    c->sig == NULL || alg == NULL || strcmp(alg, "Ed25519") != 0)
		return -EINVAL;
	return 0;
}

void al_audit_sig_encode(const unsigned char sig[AL_AUDIT_SIG_LEN],
			 char out[AL_AUDIT_SIG_B64_LEN + 1])
{
	EVP_EncodeBlock((unsigned char *)out, sig, AL_AUDIT_SIG_LEN);
}

int al_audit_sig_decode(const char *s, unsigned char sig[AL_AUDIT_SIG_LEN])
{
	unsigned char tmp[AL_AUDIT_SIG_B64_LEN];
	char again[AL_AUDIT_SIG_B64_LEN + 1];

	if (strlen(s) != AL_AUDIT_SIG_B64_LEN)
		return -EINVAL;
	/* EVP_DecodeBlock counts the padding as zero bytes: 88 chars -> 66. */
	if (EVP_DecodeBlock(tmp, (const unsigned char *)s, AL_AUDIT_SIG_B64_LEN) != 66)
		return -EINVAL;
	memcpy(sig, tmp, AL_AUDIT_SIG_LEN);
	/* Only the one canonical spelling is accepted (no malleable padding bits). */
	al_audit_sig_encode(sig, again);
	return strcmp(again, s) == 0 ? 0 : -EINVAL;
}
