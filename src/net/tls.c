/*
 * tls.c - server-side TLS over OpenSSL memory BIOs.
 */
#include "net/tls.h"

#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Larger key files are not plausible PEM keys; refuse rather than read them. */
#define MAX_KEY_FILE (1024 * 1024)

struct al_tls_ctx {
	SSL_CTX *ssl_ctx;
};

struct al_tls_conn {
	SSL *ssl;
	BIO *rbio; /* ciphertext from the peer (owned by ssl) */
	BIO *wbio; /* ciphertext for the peer (owned by ssl) */
	int failed;
};

/*
 * The most recent OpenSSL reason as text. Reason strings are fixed library
 * text ("no shared cipher"); they never include key bytes or peer data.
 */
static void ssl_reason(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	if (err && errlen)
		snprintf(err, errlen, "%s%s%s", what, reason ? ": " : "", reason ? reason : "");
	ERR_clear_error();
}

/*
 * Reads a whole (small) file into memory that the caller wipes and frees;
 * *mode gets its permission bits.
 */
static int read_file(const char *path, char **out, size_t *outlen, unsigned *mode)
{
	struct stat st;
	char *data = NULL;
	size_t off = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto done;
	}
	*mode = (unsigned)(st.st_mode & 07777);
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_KEY_FILE) {
		rc = -EINVAL;
		goto done;
	}
	data = al_malloc((size_t)st.st_size + 1);
	if (data == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, data + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto done;
		}
		off += (size_t)n;
	}
	data[off] = '\0';
	*out = data;
	*outlen = off;
	data = NULL;
done:
	if (data)
		al_free_secret(data, (size_t)st.st_size + 1);
	close(fd);
	return rc;
}

/* Offer only HTTP/1.1: we never speak h2, so a client must not pick it. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			  const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned int i = 0;

	while (i < inlen) {
		unsigned int n = in[i];
		if (i + 1 + n > inlen)
			break;
		if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

int al_tls_ctx_new_server(const char *cert_file, const char *key_file, al_tls_ctx **out, char *err,
			  size_t errlen)
{
	al_tls_ctx *ctx = NULL;
	SSL_CTX *sc = NULL;
	BIO *kbio = NULL;
	EVP_PKEY *key = NULL;
	char *kdata = NULL;
	size_t klen = 0;
	unsigned kmode = 0;
	int rc = 0;

	*out = NULL;
	ERR_clear_error();
	if (cert_file == NULL || key_file == NULL) {
		snprintf(err, errlen, "TLS needs both a certificate and a key file");
		rc = -EINVAL;
		goto fail;
	}
	sc = SSL_CTX_new(TLS_server_method());
	if (sc == NULL) {
		ssl_reason(err, errlen, "SSL_CTX_new");
		rc = -ENOMEM;
		goto fail;
	}
	if (!SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(sc, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS") ||
	    !SSL_CTX_set_ciphersuites(
		sc, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")) {
		ssl_reason(err, errlen, "TLS policy");
		rc = -EINVAL;
		goto fail;
	}
	SSL_CTX_set_options(sc, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				    SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Our write buffers are freed once uv_write completes; allow OpenSSL to move. */
	SSL_CTX_set_mode(sc, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_alpn_select_cb(sc, alpn_select_cb, NULL);

	/* OpenSSL reports a missing file as "system lib"; say which error it was. */
	if (access(cert_file, R_OK) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot read TLS certificate file: %s", strerror(-rc));
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(sc, cert_file) != 1) {
		ssl_reason(err, errlen, "cannot load TLS certificate");
		rc = -EINVAL;
		goto fail;
	}
	rc = read_file(key_file, &kdata, &klen, &kmode);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read TLS key file: %s", strerror(-rc));
		goto fail;
	}
	/* Like ssh with its keys: say so when other local users can read it. */
	if (kmode & 077)
		al_warn("tls",
			"TLS key file %s is accessible to other users (mode %03o): chmod 600",
			key_file, kmode & 0777);
	kbio = BIO_new_mem_buf(kdata, (int)klen);
	if (kbio == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* A NULL passphrase callback with an empty u: encrypted keys fail to load. */
	key = PEM_read_bio_PrivateKey(kbio, NULL, NULL, (void *)"");
	if (key == NULL) {
		ssl_reason(err, errlen, "cannot parse TLS key (PEM, unencrypted)");
		rc = -EINVAL;
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey(sc, key) != 1 || SSL_CTX_check_private_key(sc) != 1) {
		ssl_reason(err, errlen, "TLS key does not match the certificate");
		rc = -EINVAL;
		goto fail;
	}
	ctx = al_calloc(1, sizeof(*ctx));
	if (ctx == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	ctx->ssl_ctx = sc;
	sc = NULL;
	*out = ctx;
fail:
	EVP_PKEY_free(key); /* the SSL_CTX keeps its own reference */
	BIO_free(kbio);
	if (kdata)
		al_free_secret(kdata, klen + 1);
	SSL_CTX_free(sc);
	ERR_clear_error();
	return rc;
}

void al_tls_ctx_free(al_tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	al_free(ctx);
}

al_tls_conn *al_tls_conn_new(al_tls_ctx *ctx)
{
	al_tls_conn *c = al_calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->ssl = SSL_new(ctx->ssl_ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		SSL_free(c->ssl);
		al_free(c);
		ERR_clear_error();
		return NULL;
	}
	/* An empty read BIO means "would block", not EOF. */
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_accept_state(c->ssl);
	return c;
}

void al_tls_conn_free(al_tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl); /* frees both BIOs; OpenSSL cleanses its record buffers */
	al_free(c);
}

int al_tls_conn_feed(al_tls_conn *c, const void *data, size_t len, al_buf *plain, char *err,
		     size_t errlen)
{
	char tmp[16384];
	int rc = 0;

	if (c->failed) {
		snprintf(err, errlen, "TLS connection already failed");
		return -EPROTO;
	}
	if (len > 0 && BIO_write(c->rbio, data, (int)len) != (int)len) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (;;) {
		int n = SSL_read(c->ssl, tmp, sizeof(tmp));
		if (n > 0) {
			rc = al_buf_append(plain, tmp, (size_t)n);
			if (rc < 0) {
				snprintf(err, errlen, "out of memory");
				goto done;
			}
			continue;
		}
		int e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		if (e == SSL_ERROR_ZERO_RETURN)
			break; /* close_notify; see al_tls_conn_peer_closed */
		c->failed = 1;
		ssl_reason(err, errlen,
			   SSL_is_init_finished(c->ssl) ? "TLS error" : "TLS handshake failed");
		rc = -EPROTO;
		goto done;
	}
done:
	/* Plaintext passes through tmp: do not leave request bytes on the stack. */
	OPENSSL_cleanse(tmp, sizeof(tmp));
	ERR_clear_error();
	return rc;
}

int al_tls_conn_write(al_tls_conn *c, const void *data, size_t len)
{
	const char *p = data;

	if (c->failed || !SSL_is_init_finished(c->ssl))
		return -ENOTCONN;
	while (len > 0) {
		int chunk = len > (1 << 30) ? (1 << 30) : (int)len;
		int n = SSL_write(c->ssl, p, chunk);
		if (n <= 0) {
			/* Memory BIOs grow without bound, so any failure is fatal. */
			c->failed = 1;
			ERR_clear_error();
			return -EPROTO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void al_tls_conn_shutdown(al_tls_conn *c)
{
	if (!c->failed && SSL_is_init_finished(c->ssl))
		(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
}

long al_tls_conn_take_output(al_tls_conn *c, al_buf *out)
{
	char *p;
	long n = BIO_get_mem_data(c->wbio, &p);

	if (n <= 0)
		return 0;
	if (al_buf_append(out, p, (size_t)n) < 0)
		return -ENOMEM;
	(void)BIO_reset(c->wbio);
	return n;
}

int al_tls_conn_established(const al_tls_conn *c)
{
	return SSL_is_init_finished(c->ssl) ? 1 : 0;
}

int al_tls_conn_peer_closed(const al_tls_conn *c)
{
	return (SSL_get_shutdown(c->ssl) & SSL_RECEIVED_SHUTDOWN) ? 1 : 0;
}
