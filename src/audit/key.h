/*
 * key.h - Ed25519 keys for signing audit checkpoints (OpenSSL).
 *
 * Files are PEM, the same formats `openssl genpkey -algorithm ed25519` and
 * `openssl pkey -pubout` produce: the private key as PKCS#8 ("PRIVATE KEY"),
 * the public key as SubjectPublicKeyInfo ("PUBLIC KEY"). A security team can
 * therefore check a checkpoint with the openssl command line (docs/AUDIT.md).
 *
 * Private key bytes read from or written to a file pass through buffers that
 * are wiped before they are freed; the EVP_PKEY itself is cleansed by
 * OpenSSL when freed.
 */
#ifndef AL_AUDIT_KEY_H
#define AL_AUDIT_KEY_H

#include <stddef.h>

#define AL_AUDIT_SIG_LEN    64
#define AL_AUDIT_KEY_ID_LEN 17 /* 16 hex digits + NUL */

typedef struct al_audit_key al_audit_key; /* opaque; owns an EVP_PKEY */

/*
 * Generates a key pair. Writes the private key to priv_path (created with
 * O_EXCL, mode 0600: an existing file is never overwritten) and, when
 * pub_path is not NULL, the public key to pub_path (0644). On success
 * *pub_pem (when not NULL) receives the public PEM, which the caller frees
 * with al_free. Returns 0 or a negative errno with words in err.
 */
int al_audit_key_generate(const char *priv_path, const char *pub_path, char **pub_pem, char *err,
			  size_t errlen);

/* Loads a private key (PEM PKCS#8 Ed25519). *out is freed with al_audit_key_free. */
int al_audit_key_load_private(const char *path, al_audit_key **out, char *err, size_t errlen);
/* Loads a public key; a private key file is accepted too (its public half is used). */
int al_audit_key_load_public(const char *path, al_audit_key **out, char *err, size_t errlen);
void al_audit_key_free(al_audit_key *k);

/* First 16 hex digits of SHA-256 of the raw 32-byte public key. */
int al_audit_key_id(const al_audit_key *k, char out[AL_AUDIT_KEY_ID_LEN]);

/* Ed25519 (pure, no pre-hash) over msg. Needs a private key. */
int al_audit_key_sign(const al_audit_key *k, const void *msg, size_t len,
		      unsigned char sig[AL_AUDIT_SIG_LEN]);
/* 1 when sig is a valid signature of msg under k, 0 when not, negative on error. */
int al_audit_key_verify(const al_audit_key *k, const void *msg, size_t len, const void *sig,
			size_t siglen);

#endif
