/*
 * test_tls.c - server-side TLS: a real handshake and request against the
 * HTTP server, with an OpenSSL client on a thread. The certificate is a
 * throwaway self-signed one made at test time in the test's tmpdir.
 */
#include "unit/unit.h"
#include "unit/http/http_client.h"

#include "core/buf.h"
#include "core/log.h"
#include "http/server.h"
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>

struct pki {
	char cert[512];
	char key[512];
	char other_key[512];
};

static EVP_PKEY *write_key(const char *path)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	FILE *f;

	AL_ASSERT_NOT_NULL(k);
	f = fopen(path, "w");
	AL_ASSERT_NOT_NULL(f);
	AL_ASSERT_INT_EQ(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	AL_ASSERT_INT_EQ(chmod(path, 0600), 0); /* as an operator should */
	return k;
}

/* Self-signed certificate for CN=localhost, SAN IP 127.0.0.1, valid one day. */
static void make_pki(struct pki *p)
{
	const char *dir = al_test_tmpdir();
	EVP_PKEY *k;
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	FILE *f;

	snprintf(p->cert, sizeof(p->cert), "%s/cert.pem", dir);
	snprintf(p->key, sizeof(p->key), "%s/key.pem", dir);
	snprintf(p->other_key, sizeof(p->other_key), "%s/other.pem", dir);
	k = write_key(p->key);
	EVP_PKEY_free(write_key(p->other_key));

	AL_ASSERT_NOT_NULL(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
				   -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
	AL_ASSERT_NOT_NULL(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	AL_ASSERT(X509_sign(x, k, EVP_sha256()) > 0);
	f = fopen(p->cert, "w");
	AL_ASSERT_NOT_NULL(f);
	AL_ASSERT_INT_EQ(PEM_write_X509(f, x), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

struct fx {
	uv_loop_t loop;
	al_http_server *srv;
	int port;
	uv_async_t done;
	pthread_t th;
	struct pki pki;
	void (*client)(struct fx *);
	atomic_int handled;
};

static void handler(al_http_req *req, void *ud)
{
	struct fx *fx = ud;
	size_t len;
	const char *body = al_http_req_body(req, &len);
	char out[256];
	int n;

	atomic_fetch_add(&fx->handled, 1);
	if (strcmp(al_http_req_path(req), "/sse") == 0) {
		AL_ASSERT_INT_EQ(al_http_sse_start(req), 0);
		AL_ASSERT_INT_EQ(al_http_sse_send(req, "ping", "{}", 2), 0);
		al_http_sse_end(req);
		return;
	}
	n = snprintf(out, sizeof(out), "%s %s %zu:%s", al_http_req_method(req),
		     al_http_req_path(req), len, body);
	AL_ASSERT_INT_EQ(al_http_respond(req, 200, "text/plain", out, (size_t)n), 0);
}

static void done_closed_cb(uv_handle_t *h)
{
}

static void done_cb(uv_async_t *a)
{
	struct fx *fx = a->data;

	al_http_server_free(fx->srv);
	uv_close((uv_handle_t *)&fx->done, done_closed_cb);
}

static void *client_main(void *arg)
{
	struct fx *fx = arg;

	fx->client(fx);
	uv_async_send(&fx->done);
	return NULL;
}

static void run(struct fx *fx, void (*client)(struct fx *))
{
	struct al_http_server_opts o = {.host = "127.0.0.1"};
	char err[256] = "";

	make_pki(&fx->pki);
	o.tls_cert_file = fx->pki.cert;
	o.tls_key_file = fx->pki.key;
	AL_ASSERT_INT_EQ(uv_loop_init(&fx->loop), 0);
	if (al_http_server_start(&fx->loop, &o, handler, fx, &fx->srv, err, sizeof(err)) != 0)
		al_test_fail(__FILE__, __LINE__, "start: %s", err);
	fx->port = al_http_server_port(fx->srv);
	uv_async_init(&fx->loop, &fx->done, done_cb);
	fx->done.data = fx;
	fx->client = client;
	AL_ASSERT_INT_EQ(pthread_create(&fx->th, NULL, client_main, fx), 0);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	pthread_join(fx->th, NULL);
	AL_ASSERT_INT_EQ(uv_loop_close(&fx->loop), 0);
}

static long ssl_rd(void *io, char *p, size_t n)
{
	int r = SSL_read(io, p, (int)n);
	if (r > 0)
		return r;
	return SSL_get_error(io, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static long ssl_wr(void *io, const char *p, size_t n)
{
	int r = SSL_write(io, p, (int)n);
	return r > 0 ? r : -1;
}

/* A verifying client: trusts only our certificate and checks the IP SAN. */
static SSL_CTX *client_ctx(struct fx *fx)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	AL_ASSERT_NOT_NULL(ctx);
	AL_ASSERT_INT_EQ(SSL_CTX_load_verify_locations(ctx, fx->pki.cert, NULL), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

static void handshake_client(struct fx *fx)
{
	SSL_CTX *ctx = client_ctx(fx);
	struct tc *c = tc_open(fx->port);
	struct tc_resp r;
	SSL *ssl = SSL_new(ctx);
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;
	static const unsigned char protos[] = "\x02h2\x08http/1.1";

	SSL_set_fd(ssl, c->fd);
	X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
	SSL_set_alpn_protos(ssl, protos, sizeof(protos) - 1);
	AL_ASSERT_INT_EQ(SSL_connect(ssl), 1);
	AL_ASSERT_INT_EQ(SSL_get_verify_result(ssl), X509_V_OK);
	AL_ASSERT(SSL_version(ssl) >= TLS1_2_VERSION);
	/* We only speak HTTP/1.1: h2 must not be selected. */
	SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
	AL_ASSERT_INT_EQ(alpn_len, 8);
	AL_ASSERT_MEM_EQ(alpn, "http/1.1", 8);
	c->rd = ssl_rd;
	c->wr = ssl_wr;
	c->io = ssl;

	tc_send(c, "POST /tls HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecret");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(r.body, "POST /tls 6:secret");
	/* Keep-alive over TLS, then a stream. */
	tc_send(c, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_STR_EQ(r.body, "event: ping\ndata: {}\n\n");
	tc_send(c, "GET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	AL_ASSERT_INT_EQ(tc_read_response(c, &r), 0);
	AL_ASSERT_STR_EQ(r.body, "GET /again 0:");
	/* The server ends with close_notify: a clean TLS EOF. */
	AL_ASSERT(tc_eof(c));
	AL_ASSERT(SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	tc_close(c);
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), 3);
}

AL_TEST(net_tls_handshake_and_request)
{
	struct fx fx = {0};
	run(&fx, handshake_client);
}

static void old_client(struct fx *fx)
{
	SSL_CTX *ctx = client_ctx(fx);
	struct tc *c = tc_open(fx->port);
	SSL *ssl;

	/* TLS 1.1 is refused by the server's policy. */
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, c->fd);
	AL_ASSERT(SSL_connect(ssl) != 1);
	SSL_free(ssl);
	tc_close(c);
	ERR_clear_error();

	/* Plain HTTP on the TLS port fails the handshake and is closed. */
	c = tc_open(fx->port);
	tc_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	while (tc_fill(c) > 0)
		;
	AL_ASSERT(memmem(c->buf, c->len, "HTTP/1.1", 8) == NULL);
	tc_close(c);

	/* The server is still fine for a good client. */
	SSL_CTX_free(ctx);
	ctx = client_ctx(fx);
	c = tc_open(fx->port);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, c->fd);
	AL_ASSERT_INT_EQ(SSL_connect(ssl), 1);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	tc_close(c);
	AL_ASSERT_INT_EQ(atomic_load(&fx->handled), 0);
}

AL_TEST(net_tls_rejects_old_versions_and_plaintext)
{
	struct fx fx = {0};
	run(&fx, old_client);
}

AL_TEST(net_tls_ctx_errors)
{
	struct pki p;
	al_tls_ctx *ctx = NULL;
	char err[256] = "";
	char path[600];
	FILE *f;

	make_pki(&p);
	AL_ASSERT_INT_EQ(al_tls_ctx_new_server(p.cert, p.key, &ctx, err, sizeof(err)), 0);
	AL_ASSERT_NOT_NULL(ctx);
	al_tls_ctx_free(ctx);

	/* A key that does not match the certificate. */
	AL_ASSERT_INT_EQ(al_tls_ctx_new_server(p.cert, p.other_key, &ctx, err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT_NULL(ctx);
	AL_ASSERT(strstr(err, "does not match") != NULL);
	/* Never any key material in the message. */
	AL_ASSERT(strstr(err, "PRIVATE") == NULL);

	/* Missing key file; garbage key file; cert passed as key. */
	AL_ASSERT_INT_EQ(al_tls_ctx_new_server(p.cert, "/nonexistent", &ctx, err, sizeof(err)),
			 -ENOENT);
	snprintf(path, sizeof(path), "%s/junk.pem", al_test_tmpdir());
	f = fopen(path, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	AL_ASSERT_INT_EQ(al_tls_ctx_new_server(p.cert, path, &ctx, err, sizeof(err)), -EINVAL);
	AL_ASSERT(strstr(err, "not base64") == NULL);
	AL_ASSERT_INT_EQ(al_tls_ctx_new_server(p.cert, p.cert, &ctx, err, sizeof(err)), -EINVAL);
	AL_ASSERT_INT_EQ(al_tls_ctx_new_server(NULL, p.key, &ctx, err, sizeof(err)), -EINVAL);
}

/* The memory-BIO connection on its own, pumped against an OpenSSL client. */
AL_TEST(net_tls_conn_memory_pump)
{
	struct pki p;
	al_tls_ctx *sctx = NULL;
	al_tls_conn *sc;
	SSL_CTX *cctx;
	SSL *cl;
	BIO *crd, *cwr;
	al_buf plain = {0}, out = {0};
	char err[256], buf[64];
	int n;

	make_pki(&p);
	AL_ASSERT_INT_EQ(al_tls_ctx_new_server(p.cert, p.key, &sctx, err, sizeof(err)), 0);
	sc = al_tls_conn_new(sctx);
	AL_ASSERT_NOT_NULL(sc);
	/* Connections keep their own reference to the context. */
	al_tls_ctx_free(sctx);
	AL_ASSERT_INT_EQ(al_tls_conn_write(sc, "x", 1), -ENOTCONN);

	cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_load_verify_locations(cctx, p.cert, NULL);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	cl = SSL_new(cctx);
	crd = BIO_new(BIO_s_mem());
	cwr = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(crd, -1);
	SSL_set_bio(cl, crd, cwr);
	SSL_set_connect_state(cl);

	for (int i = 0; i < 10 && !(al_tls_conn_established(sc) && SSL_is_init_finished(cl)); i++) {
		char *d;
		long len;
		SSL_do_handshake(cl);
		len = BIO_get_mem_data(cwr, &d);
		AL_ASSERT_INT_EQ(al_tls_conn_feed(sc, d, (size_t)len, &plain, err, sizeof(err)), 0);
		(void)BIO_reset(cwr);
		AL_ASSERT(al_tls_conn_take_output(sc, &out) >= 0);
		BIO_write(crd, out.data ? out.data : "", (int)out.len);
		al_buf_reset(&out);
	}
	AL_ASSERT_INT_EQ(al_tls_conn_established(sc), 1);
	AL_ASSERT_INT_EQ(SSL_is_init_finished(cl), 1);

	/* client -> server */
	AL_ASSERT_INT_EQ(SSL_write(cl, "hello", 5), 5);
	{
		char *d;
		long len = BIO_get_mem_data(cwr, &d);
		AL_ASSERT_INT_EQ(al_tls_conn_feed(sc, d, (size_t)len, &plain, err, sizeof(err)), 0);
		(void)BIO_reset(cwr);
	}
	AL_ASSERT_INT_EQ(plain.len, 5);
	AL_ASSERT_MEM_EQ(plain.data, "hello", 5);
	/* server -> client */
	AL_ASSERT_INT_EQ(al_tls_conn_write(sc, "world", 5), 0);
	AL_ASSERT(al_tls_conn_take_output(sc, &out) > 0);
	BIO_write(crd, out.data, (int)out.len);
	al_buf_reset(&out);
	n = SSL_read(cl, buf, sizeof(buf));
	AL_ASSERT_INT_EQ(n, 5);
	AL_ASSERT_MEM_EQ(buf, "world", 5);
	/* close_notify from the client is seen. */
	SSL_shutdown(cl);
	{
		char *d;
		long len = BIO_get_mem_data(cwr, &d);
		al_tls_conn_feed(sc, d, (size_t)len, &plain, err, sizeof(err));
	}
	AL_ASSERT_INT_EQ(al_tls_conn_peer_closed(sc), 1);
	al_tls_conn_free(sc);

	/* Garbage instead of a ClientHello: a handshake error, then refusal. */
	AL_ASSERT_INT_EQ(al_tls_ctx_new_server(p.cert, p.key, &sctx, err, sizeof(err)), 0);
	sc = al_tls_conn_new(sctx);
	AL_ASSERT_INT_EQ(
	    al_tls_conn_feed(sc, "GET / HTTP/1.1\r\n\r\n", 18, &plain, err, sizeof(err)), -EPROTO);
	AL_ASSERT(strstr(err, "TLS handshake failed") == err);
	AL_ASSERT(strstr(err, "GET") == NULL);
	AL_ASSERT_INT_EQ(al_tls_conn_feed(sc, "x", 1, &plain, err, sizeof(err)), -EPROTO);
	al_tls_conn_free(sc);
	al_tls_ctx_free(sctx);

	SSL_free(cl);
	SSL_CTX_free(cctx);
	al_buf_free(&plain);
	al_buf_free(&out);
}

/* A key file other users can read is loaded, with a warning naming the fix. */
static int load_and_count_warnings(const struct pki *p, const char *logpath)
{
	al_tls_ctx *ctx = NULL;
	char err[256] = "", line[512];
	int fd = open(logpath, O_CREAT | O_WRONLY | O_TRUNC, 0600), n = 0;
	FILE *f;

	AL_ASSERT(fd >= 0);
	al_log_set_fd(fd);
	AL_ASSERT_INT_EQ(al_tls_ctx_new_server(p->cert, p->key, &ctx, err, sizeof(err)), 0);
	al_log_set_fd(-1);
	close(fd);
	al_tls_ctx_free(ctx);
	f = fopen(logpath, "r");
	AL_ASSERT_NOT_NULL(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "accessible to other users") && strstr(line, "chmod 600") &&
		    !strstr(line, "PRIVATE"))
			n++;
	fclose(f);
	return n;
}

AL_TEST(net_tls_warns_about_readable_key_file)
{
	struct pki p;
	char logpath[600];

	make_pki(&p);
	snprintf(logpath, sizeof(logpath), "%s/log", al_test_tmpdir());
	AL_ASSERT_INT_EQ(chmod(p.key, 0644), 0);
	AL_ASSERT_INT_EQ(load_and_count_warnings(&p, logpath), 1);
	AL_ASSERT_INT_EQ(chmod(p.key, 0600), 0);
	AL_ASSERT_INT_EQ(load_and_count_warnings(&p, logpath), 0);
}
