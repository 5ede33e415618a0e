/*
 * tls.h - server-side TLS over OpenSSL memory BIOs.
 *
 * The socket stays with libuv; this module only transforms bytes. Feed the
 * ciphertext read from the peer in, get plaintext out; write plaintext, then
 * take the ciphertext to send (handshake records, application data,
 * alerts). Keeping I/O out of here means the event loop never blocks in
 * OpenSSL and the same code serves any transport.
 *
 * Policy: TLS 1.2 and 1.3 only, forward-secret AEAD suites for 1.2, no
 * renegotiation, no compression, ALPN "http/1.1" when the client offers it.
 *
 * Error messages name the OpenSSL reason ("certificate verify failed",
 * "no shared cipher") and never contain key material or peer data.
 */
#ifndef AL_NET_TLS_H
#define AL_NET_TLS_H

#include "core/buf.h"

#include <stddef.h>

typedef struct al_tls_ctx al_tls_ctx;
typedef struct al_tls_conn al_tls_conn;

/*
 * Loads a PEM certificate chain and its private key and checks they match.
 * The key file is read into memory that is wiped right after parsing.
 * Returns 0 and *out (freed with al_tls_ctx_free), or a negative errno code
 * and a message in err.
 */
int al_tls_ctx_new_server(const char *cert_file, const char *key_file, al_tls_ctx **out, char *err,
			  size_t errlen);
/* Frees the context (OpenSSL wipes the private key). Connections hold a reference. */
void al_tls_ctx_free(al_tls_ctx *ctx);

/* A server-side connection. NULL on allocation failure. */
al_tls_conn *al_tls_conn_new(al_tls_ctx *ctx);
/* Frees the connection; buffered plaintext is wiped first. NULL is fine. */
void al_tls_conn_free(al_tls_conn *c);

/*
 * Feeds ciphertext received from the peer and appends any plaintext it
 * yields to `plain`. Drives the handshake as needed. Returns 0, or a
 * negative errno code on a fatal TLS error (-EPROTO) with a short reason in
 * err; the caller should still send the pending output (an alert) and close.
 */
int al_tls_conn_feed(al_tls_conn *c, const void *data, size_t len, al_buf *plain, char *err,
		     size_t errlen);
/*
 * Encrypts plaintext for the peer. Only valid once the handshake is done
 * (a server writes only after it has read a request). Returns 0 or a
 * negative errno code.
 */
int al_tls_conn_write(al_tls_conn *c, const void *data, size_t len);
/* Queues a close_notify alert. */
void al_tls_conn_shutdown(al_tls_conn *c);
/* Moves all pending ciphertext to out (appended). Returns bytes moved or -ENOMEM. */
long al_tls_conn_take_output(al_tls_conn *c, al_buf *out);
/* 1 when the handshake has completed. */
int al_tls_conn_established(const al_tls_conn *c);
/* 1 when the peer sent close_notify. */
int al_tls_conn_peer_closed(const al_tls_conn *c);

#endif
