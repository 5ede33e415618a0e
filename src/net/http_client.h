/*
 * http_client.h - outbound HTTP(S) on the libuv loop, through the libcurl
 * multi interface.
 *
 * libcurl tells us which sockets it wants watched (CURLMOPT_SOCKETFUNCTION)
 * and when it next needs a timeout (CURLMOPT_TIMERFUNCTION); we map those to
 * uv_poll_t and one uv_timer_t, so any number of requests share the loop
 * thread: no thread per request and no curl_multi_perform polling loop.
 * libcurl's defaults stay on: HTTPS_PROXY/NO_PROXY from the environment, the
 * system CA bundle, HTTP/2 over TLS. Redirects are never followed.
 *
 * Everything here runs on the loop thread.
 */
#ifndef AL_NET_HTTP_CLIENT_H
#define AL_NET_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct al_http_client al_http_client;
typedef struct al_http_call al_http_call;

struct al_http_header {
	const char *name;
	const char *value;
};

/*
 * Streaming body callback: called zero or more times, in order, with each
 * piece of the response body as it arrives (any status). The bytes are only
 * valid during the call. Return 0 to continue; anything else aborts the
 * transfer, and done_cb then reports err -ECANCELED. When on_data is set the
 * body is not accumulated, so the final response has an empty body.
 */
typedef int (*al_http_data_cb)(al_http_call *call, const char *data, size_t len, void *ud);

/*
 * Response head callback: called at most once, when the header block of the
 * final response (not a 1xx, not a proxy's CONNECT reply) is complete and
 * before any of its body. status and headers are valid only during the call.
 * Lets a streaming caller learn the status before the first body byte (an
 * SSE stream may send nothing for a while). Return 0 to continue; anything
 * else aborts the transfer (done_cb then reports -ECANCELED).
 */
typedef int (*al_http_head_cb)(al_http_call *call, int status, const struct al_http_header *headers,
			       size_t nheaders, void *ud);

/* A request. Everything is copied by al_http_client_request; nothing need outlive it. */
struct al_http_client_req {
	const char *method; /* "GET", "POST", ...; NULL: GET */
	const char *url;    /* http:// or https:// */
	/*
	 * Request headers (may carry secrets). A NULL value removes a header
	 * libcurl would add by itself (say Content-Type on a body-less POST).
	 */
	const struct al_http_header *headers;
	size_t nheaders;
	const void *body; /* request body, may be NULL */
	size_t body_len;
	uint64_t timeout_ms;	     /* whole transfer; 0: no limit */
	uint64_t connect_timeout_ms; /* 0: libcurl's default (300 s) */
	const char *ca_file;	     /* PEM bundle, the only CAs trusted; NULL: the system's */
	size_t max_body_bytes;	     /* accumulated body cap; 0: 64 MiB */
	al_http_data_cb on_data;     /* optional streaming callback, see above */
	al_http_head_cb on_head;     /* optional, see above */
	/*
	 * 1: open a new connection for this request (CURLOPT_FRESH_CONNECT).
	 * On a reused keep-alive connection that dies before any response
	 * byte, libcurl silently sends the request again on a new one, even a
	 * POST whose first copy the server may have received and acted on.
	 * A request that is not idempotent sets this so it goes out once per
	 * call, and the caller alone decides about a retry. Costs a connect
	 * (and a TLS handshake) per request.
	 */
	int fresh_connect;
	/*
	 * Added for the gateway. 1: the request goes out at most once, while
	 * keep-alive reuse stays on (no connect per request, unlike
	 * fresh_connect). The body is handed to libcurl through a read
	 * callback whose seek callback refuses to rewind, so libcurl cannot
	 * send it again: when a reused connection dies after the body went
	 * out and before any response byte, the call fails with -ECONNRESET
	 * instead of a silent second copy on a new connection. The server may
	 * or may not have acted on it; the caller alone decides about a retry.
	 * libcurl may still open that new connection, but sends nothing on it.
	 * A request that died before any body byte left (the server cannot
	 * have read it whole) may still go out again, once. Without a body
	 * (body_len 0: nothing to refuse a rewind of) this falls back to
	 * fresh_connect. The cost over a plain request: the headers and the
	 * body leave in two writes instead of one.
	 */
	int no_resend;
	/*
	 * Added for the gateway (SSRF defence: the address checked is the
	 * address connected to). "HOST:PORT:ADDR" as CURLOPT_RESOLVE takes it
	 * (ADDR numeric, IPv6 in brackets): the URL's HOST:PORT connects to
	 * ADDR without a DNS lookup, while TLS still verifies the certificate
	 * for HOST. Proxies from the environment are ignored for such a
	 * request (a proxy would make its own connection). NULL: off.
	 * libcurl keeps the pin in the client's DNS cache: a later request to
	 * the same HOST:PORT without a pin connects there too, and a new pin
	 * replaces it. A caller that pins should pin every request.
	 */
	const char *resolve;
	/*
	 * Added for the gateway (upstream.tls.include_system_cas). With a
	 * ca_file, 1 also trusts libcurl's default CA directory (the system's,
	 * /etc/ssl/certs on Debian); 0, the default, trusts ca_file alone, so
	 * a caller who names a peer's CA (the MCP client's per-server CA)
	 * never falls back to the system's. No effect without ca_file.
	 */
	int ca_also_system;
	/*
	 * Added for the gateway. 1: never through a proxy from the
	 * environment (HTTPS_PROXY, ALL_PROXY...), also without a resolve pin
	 * (an IPv6 literal upstream has nothing to pin). 0: libcurl's default.
	 */
	int no_proxy;
};

/*
 * The outcome of one call, valid only during done_cb.
 * err == 0: a complete HTTP response arrived (status is set, whatever it is).
 * err < 0: transport failure; status is the status line seen so far (often 0)
 * and error is libcurl's human text. error never contains request headers,
 * so it never carries an API key.
 *   -ETIMEDOUT     timeout_ms or connect_timeout_ms passed
 *   -ECONNREFUSED  could not connect (refused, unreachable)
 *   -EHOSTUNREACH  name resolution failed
 *   -EFBIG         body larger than max_body_bytes
 *   -EPROTO        TLS verification failed (bad certificate or CA file)
 *   -ECANCELED     on_data asked to stop
 *   -ECONNRESET    (no_resend only) the connection was lost after (part
 *                  of) the body went out, before a response: it may have
 *                  run (on a reused or a new connection alike)
 *   -EIO           any other transport or TLS failure
 */
struct al_http_client_resp {
	int err;
	int status;
	const char *error; /* NULL when err == 0 */
	const char *body;  /* NUL-terminated, body_len bytes (empty with on_data) */
	size_t body_len;
	const struct al_http_header *headers; /* in arrival order, last response only */
	size_t nheaders;
};

typedef void (*al_http_done_cb)(al_http_call *call, const struct al_http_client_resp *resp,
				void *ud);

/* Creates a client on loop. Returns 0 or -ENOMEM / -EIO. */
int al_http_client_new(uv_loop_t *loop, al_http_client **out);
/*
 * Cancels every call in flight (their done_cb do not fire) and frees the
 * client. The loop's handles close asynchronously: run the loop once more
 * (uv_run) before closing it. NULL is fine. Must not be called from a
 * callback of this client.
 */
void al_http_client_free(al_http_client *client);

/*
 * Starts a request. done_cb fires exactly once, later on the loop (never
 * before this returns), unless the call is cancelled. *out (may be NULL) is
 * the handle for al_http_call_cancel, valid until done_cb returns or the
 * call is cancelled. Returns 0, -EINVAL (bad method/url) or -ENOMEM.
 * May be called from any callback of this client: libcurl forbids adding a
 * transfer while one of its own callbacks runs (on_head, on_data), so a
 * request made there is handed to libcurl once it has returned.
 */
int al_http_client_request(al_http_client *client, const struct al_http_client_req *req,
			   al_http_done_cb done_cb, void *ud, al_http_call **out);
/*
 * Cancels a call in flight: its done_cb will not fire and the handle becomes
 * invalid. Safe from any callback of this client, including the call's own
 * on_data (but not after its done_cb has returned).
 */
void al_http_call_cancel(al_http_call *call);

/*
 * Added for the gateway (backpressure): paused = 1 stops reading the
 * response body of a call in flight (libcurl's CURLPAUSE_RECV; the server
 * is then slowed by TCP flow control), 0 resumes. Safe from the call's own
 * on_data (to pause) and from outside the client's callbacks (to resume).
 * Resuming may deliver held body bytes to on_data, and even finish the call
 * (done_cb), before it returns: the caller must expect its state to change.
 * A call not yet handed to libcurl, or cancelled, is left alone.
 */
void al_http_call_pause(al_http_call *call, int paused);

/* Case-insensitive header lookup in a response; NULL if absent. First wins. */
const char *al_http_client_resp_header(const struct al_http_client_resp *resp, const char *name);

#endif
