/* key.c - Ed25519 checkpoint keys (see key.h). */
#include "audit/key.h"

#include "core/alloc.h"
#include "core/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct al_audit_key {
	EVP_PKEY *pkey; /* owned */
	int has_private;
};

#define KEY_FILE_MAX (64 * 1024)

void al_audit_key_free(al_audit_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	al_free(k);
}

/* Writes all of p to a new file; the file is removed again on failure. */
static int write_new_file(const char *path, mode_t mode, const void *p, size_t n, char *err,
			  size_t errlen)
{
	const char *c = p;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return rc;
	}
	/* The umask may have narrowed mode; never widen it, but make 0600 exact. */
	if (fchmod(fd, mode) < 0)
		rc = -errno;
	while (rc == 0 && n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		c += w;
		n -= (size_t)w;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		unlink(path);
	}
	return rc;
}

/* Reads a small file into a NUL-terminated buffer the caller wipes and frees. */
static int read_small_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	buf = al_malloc(KEY_FILE_MAX + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, KEY_FILE_MAX - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == KEY_FILE_MAX) {
			rc = -EFBIG;
			snprintf(err, errlen, "%s: not a key file (too large)", path);
			goto done;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
done:
	if (buf)
		al_free_secret(buf, KEY_FILE_MAX + 1);
	close(fd);
	return rc;
}

static int pem_of(EVP_PKEY *pkey, int private, char **out, size_t *outlen)
{
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem = NULL;
	int ok, rc = 0;

	if (bio == NULL)
		return -ENOMEM;
	ok = private ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
		     : PEM_write_bio_PUBKEY(bio, pkey);
	if (!ok || BIO_get_mem_ptr(bio, &mem) != 1 || mem == NULL) {
		rc = -EIO;
		goto done;
	}
	*out = al_strndup(mem->data, mem->length);
	if (*out == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	*outlen = mem->length;
done:
	/* The memory BIO held the private key in PEM: wipe it before it goes. */
	if (mem && mem->data)
		al_wipe(mem->data, mem->max);
	BIO_free(bio);
	return rc;
}

int al_audit_key_generate(const char *priv_path, const char *pub_path, char **pub_pem, char *err,
			  size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	char *priv = NULL, *pub = NULL;
	size_t privlen = 0, publen = 0;
	int rc;

	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL) {
		rc = -EIO;
		snprintf(err, errlen, "Ed25519 key generation failed");
		goto done;
	}
	if ((rc = pem_of(pkey, 1, &priv, &privlen)) < 0 ||
	    (rc = pem_of(pkey, 0, &pub, &publen)) < 0) {
		snprintf(err, errlen, "cannot encode the key: %s", strerror(-rc));
		goto done;
	}
	if ((rc = write_new_file(priv_path, 0600, priv, privlen, err, errlen)) < 0)
		goto done;
	if (pub_path && (rc = write_new_file(pub_path, 0644, pub, publen, err, errlen)) < 0) {
		unlink(priv_path);
		goto done;
	}
	if (pub_pem) {
		*pub_pem = pub;
		pub = NULL;
	}
done:
	if (priv)
		al_free_secret(priv, privlen);
	al_free(pub);
	EVP_PKEY_free(pkey);
	return rc;
}

static int load_key(const char *path, int want_private, al_audit_key **out, char *err,
		    size_t errlen)
{
	al_audit_key *k = NULL;
	char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	int rc;

	*out = NULL;
	if ((rc = read_small_file(path, &buf, &len, err, errlen)) < 0)
		goto done;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (strstr(buf, "PRIVATE KEY") != NULL) {
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	} else if (!want_private) {
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	}
	if (pkey == NULL || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a PEM Ed25519 %s key", path,
			 want_private ? "private" : "public or private");
		goto done;
	}
	k = al_calloc(1, sizeof(*k));
	if (k == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	k->pkey = pkey;
	k->has_private = strstr(buf, "PRIVATE KEY") != NULL;
	pkey = NULL;
	*out = k;
	rc = 0;
done:
	BIO_free(bio);
	if (buf)
		al_free_secret(buf, KEY_FILE_MAX + 1);
	EVP_PKEY_free(pkey);
	return rc;
}

int al_audit_key_load_private(const char *path, al_audit_key **out, char *err, size_t errlen)
{
	return load_key(path, 1, out, err, errlen);
}

int al_audit_key_load_public(const char *path, al_audit_key **out, char *err, size_t errlen)
{
	return load_key(path, 0, out, err, errlen);
}

int al_audit_key_id(const al_audit_key *k, char out[AL_AUDIT_KEY_ID_LEN])
{
	unsigned char raw[32];
	char hex[AL_SHA256_HEX];
	size_t len = sizeof(raw);
	int rc;

	if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &len) != 1 || len != 32)
		return -EIO;
	if ((rc = al_sha256_hex(raw, len, hex)) < 0)
		return rc;
	memcpy(out, hex, 16);
	out[16] = '\0';
	return 0;
}

int al_audit_key_sign(const al_audit_key *k, const void *msg, size_t len,
		      unsigned char sig[AL_AUDIT_SIG_LEN])
{
	EVP_MD_CTX *ctx;
	size_t siglen = AL_AUDIT_SIG_LEN;
	int rc = -EIO;

	if (!k->has_private)
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return -ENOMEM;
	/* Ed25519 is "pure": no digest is configured, the message is signed whole. */
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, msg, len) == 1 && siglen == AL_AUDIT_SIG_LEN)
		rc = 0;
	EVP_MD_CTX_free(ctx);
	return rc;
}

int al_audit_key_verify(const al_audit_key *k, const void *msg, size_t len, const void *sig,
			size_t siglen)
{
	EVP_MD_CTX *ctx;
	int rc = -EIO;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return -ENOMEM;
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1)
		rc = EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1 ? 1 : 0;
	EVP_MD_CTX_free(ctx);
	return rc;
}
