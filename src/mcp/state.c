#include "mcp/state.h"

#include "core/alloc.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/rand.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#define PREFIX	   "v1."
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define NONCE_LEN  12
#define TAG_LEN	   16
#define EXP_LEN	   8
#define HEAD_LEN   (NONCE_LEN + EXP_LEN)
#define AAD_LABEL  "airlock-mcp-state-v1"
#define AAD_LEN	   (sizeof(AAD_LABEL) - 1 + 32 + AL_MCP_STATE_BIND_LEN + EXP_LEN)

static int dump_cb(const char *buffer, size_t size, void *data)
{
	return al_buf_append(data, buffer, size) < 0 ? -1 : 0;
}

int al_mcp_state_bind(const char *method, const char *name, const json_t *args,
		      unsigned char out[AL_MCP_STATE_BIND_LEN])
{
	json_t *o = NULL;
	al_buf b = {0};
	int rc = -ENOMEM;

	if (method == NULL)
		return -EINVAL;
	o = json_object();
	if (o == NULL || json_object_set_new(o, "method", json_string(method)) < 0 ||
	    json_object_set_new(o, "name", name ? json_string(name) : json_null()) < 0 ||
	    json_object_set(o, "arguments", args ? (json_t *)args : json_null()) < 0)
		goto done;
	/* Sorted keys make the digest independent of the client's key order. */
	if (json_dump_callback(o, dump_cb, &b, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) < 0)
		goto done;
	rc = al_sha256(b.data, b.len, out) < 0 ? -EIO : 0;
done:
	al_buf_free(&b);
	json_decref(o);
	return rc;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int make_aad(const char *principal, const unsigned char *bind, const unsigned char *exp,
		    unsigned char aad[AAD_LEN])
{
	size_t off = sizeof(AAD_LABEL) - 1;

	memcpy(aad, AAD_LABEL, off);
	if (al_sha256(principal ? principal : "", principal ? strlen(principal) : 0, aad + off) < 0)
		return -EIO;
	off += 32;
	memcpy(aad + off, bind, AL_MCP_STATE_BIND_LEN);
	off += AL_MCP_STATE_BIND_LEN;
	memcpy(aad + off, exp, EXP_LEN);
	return 0;
}

/* One AES-256-GCM pass. enc: encrypt and write the tag; else decrypt and
 * verify it. 0, -EINVAL (tag mismatch), -EIO. */
static int gcm(int enc, const unsigned char *key, const unsigned char *nonce,
	       const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t n,
	       unsigned char *out, unsigned char *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len, rc = -EIO;

	if (ctx == NULL)
		return -EIO;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
		goto done;
	if (EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
		goto done;
	if (n > 0 && EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1)
		goto done;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto done;
	if (EVP_CipherFinal_ex(ctx, out + n, &len) != 1) {
		rc = enc ? -EIO : -EINVAL;
		goto done;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto done;
	rc = 0;
done:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int al_mcp_state_seal(const unsigned char key[AL_MCP_STATE_KEY_LEN], const char *principal,
		      const unsigned char bind[AL_MCP_STATE_BIND_LEN], int64_t now_ms,
		      int64_t ttl_ms, const void *payload, size_t n, al_buf *out)
{
	unsigned char aad[AAD_LEN], *raw = NULL;
	size_t rawlen = HEAD_LEN + n + TAG_LEN, enclen;
	int rc;

	if (n > AL_MCP_STATE_MAX_PAYLOAD || ttl_ms <= 0 || now_ms < 0 ||
	    ttl_ms > INT64_MAX - now_ms)
		return -EINVAL;
	raw = al_malloc(rawlen);
	if (raw == NULL)
		return -ENOMEM;
	/* 96-bit random nonces: a collision needs ~2^48 tokens under one key. */
	if (al_random_bytes(raw, NONCE_LEN) < 0) {
		rc = -EIO;
		goto done;
	}
	put_be64(raw + NONCE_LEN, (uint64_t)(now_ms + ttl_ms));
	if ((rc = make_aad(principal, bind, raw + NONCE_LEN, aad)) < 0)
		goto done;
	rc = gcm(1, key, raw, aad, sizeof(aad), payload, n, raw + HEAD_LEN, raw + HEAD_LEN + n);
	if (rc < 0)
		goto done;
	enclen = al_b64url_len(rawlen);
	if (al_buf_reserve(out, PREFIX_LEN + enclen + 1) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	memcpy(out->data + out->len, PREFIX, PREFIX_LEN);
	out->len += PREFIX_LEN;
	rc = al_b64url_encode(raw, rawlen, out->data + out->len, out->cap - out->len);
	if (rc < 0)
		goto done;
	out->len += enclen;
done:
	al_free(raw);
	return rc;
}

int al_mcp_state_open(const unsigned char key[AL_MCP_STATE_KEY_LEN], const char *principal,
		      const unsigned char bind[AL_MCP_STATE_BIND_LEN], int64_t now_ms,
		      const char *token, size_t len, al_buf *payload)
{
	unsigned char aad[AAD_LEN], *raw = NULL;
	char *canon = NULL;
	size_t rawcap, rawlen, n;
	int rc;

	if (token == NULL || len < PREFIX_LEN || memcmp(token, PREFIX, PREFIX_LEN) != 0 ||
	    len > PREFIX_LEN + al_b64url_len(HEAD_LEN + AL_MCP_STATE_MAX_PAYLOAD + TAG_LEN))
		return -EINVAL;
	token += PREFIX_LEN;
	len -= PREFIX_LEN;
	/* We only ever write unpadded base64url: anything else is not ours. */
	for (size_t i = 0; i < len; i++)
		if (token[i] == '=' || token[i] == '+' || token[i] == '/')
			return -EINVAL;
	rawcap = len / 4 * 3 + 3;
	raw = al_malloc(rawcap);
	if (raw == NULL)
		return -ENOMEM;
	if (al_b64url_decode(token, len, raw, rawcap, &rawlen) < 0 || rawlen < HEAD_LEN + TAG_LEN) {
		rc = -EINVAL;
		goto done;
	}
	/* The decoder ignores the unused low bits of the last character, so
	 * several strings decode to one token; accept only the one we write. */
	canon = al_malloc(len + 1);
	if (canon == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if (al_b64url_encode(raw, rawlen, canon, len + 1) < 0 || memcmp(canon, token, len) != 0) {
		rc = -EINVAL;
		goto done;
	}
	n = rawlen - HEAD_LEN - TAG_LEN;
	if ((rc = make_aad(principal, bind, raw + NONCE_LEN, aad)) < 0)
		goto done;
	if (al_buf_reserve(payload, n + 1) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	rc = gcm(0, key, raw, aad, sizeof(aad), raw + HEAD_LEN, n,
		 (unsigned char *)payload->data + payload->len, raw + HEAD_LEN + n);
	if (rc < 0) {
		/* Leave no unauthenticated plaintext behind in the caller's buffer. */
		al_wipe(payload->data + payload->len, n);
		goto done;
	}
	/* The expiry is checked only once the token is known to be ours, so a
	 * forged old timestamp reads as forged, not as expired. */
	if ((uint64_t)now_ms >= get_be64(raw + NONCE_LEN)) {
		al_wipe(payload->data + payload->len, n);
		rc = -ESTALE;
		goto done;
	}
	payload->len += n;
	payload->data[payload->len] = '\0';
	rc = 0;
done:
	al_free(canon);
	al_free(raw);
	return rc;
}
