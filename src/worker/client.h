/*
 * client.h - the environment work protocol, client side, on the libuv loop
 * (through net/http_client.h, i.e. libcurl: HTTPS_PROXY/NO_PROXY from the
 * environment work, so an enterprise egress proxy just works).
 *
 * Every request carries `Authorization: Bearer <token>` (the environment key
 * for poll/ack/stop/stats, the item's sessions token for everything about
 * the session and for heartbeats, as the SDK's worker does),
 * `anthropic-version: 2026-10-21` (what SDK 1.14.0 sends on every request),
 * `anthropic-beta: managed-agents-2026-04-01`, `accept: application/json`,
 * `user-agent: airlock-worker/<version>`, and for poll `Anthropic-Worker-ID`.
 * A POST with a body has `content-type: application/json`; one without (ack,
 * heartbeat) has no body and no content-type, as the SDK sends them.
 * Tokens are borrowed for the duration of the call that takes them and are
 * never logged nor put in an error message or a URL. Path segments and query
 * values are percent-encoded.
 *
 * All functions run on the loop thread. Callbacks fire exactly once, later on
 * the loop (never inside the function that started the call), unless the call
 * is cancelled (al_wc_cancel), in which case they do not fire. Calls and
 * streams may be started and cancelled from inside any callback of this
 * client, including a stream's open_cb and event_cb.
 */
#ifndef AL_WORKER_CLIENT_H
#define AL_WORKER_CLIENT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "net/http_client.h"

#define AL_WC_BETA    "managed-agents-2026-04-01"
#define AL_WC_VERSION "2026-10-21"
/* Every call but poll; poll waits block_ms plus this. */
#define AL_WC_TIMEOUT_MS 30000

struct al_wc;	   /* a client: loop + base URL + CA file */
struct al_wc_call; /* one call in flight (cancellable) */

/*
 * The outcome of one call, valid during the callback only.
 *   err == 0: an HTTP response arrived: status is set; body is its parsed JSON
 *             (json_null() for a literal `null`, NULL when empty or not JSON);
 *             on 4xx/5xx error_type/error_message come from the documented
 *             error shape {type:"error", error:{type, message, details?}} and
 *             details is error.details (NULL if absent).
 *   err < 0:  transport failure (net/http_client.h's codes); status 0;
 *             error_message is libcurl's text (host and port at most, never
 *             a header or a token), error_type NULL.
 * retry_after_ms: `retry-after-ms`, else `Retry-After` (seconds, fractions
 * allowed, or an HTTP date; a past date gives 0) in ms; -1 if absent or
 * unparseable. should_retry: the `x-should-retry` header (1 "true",
 * 0 "false", -1 absent), which the SDK obeys before the status.
 */
struct al_wc_resp {
	int err;
	int status;
	json_t *body;
	const char *error_type;
	const char *error_message;
	json_t *details;
	long retry_after_ms;
	int should_retry;
};

typedef void (*al_wc_cb)(const struct al_wc_resp *r, void *ud);

/* 1 when a poll error must stop the worker (the SDK's isFatal4xx: 4xx other than 408/409/429). */
int al_wc_is_fatal_4xx(int status);
/*
 * 1 when a failed call is worth retrying, as the SDK's core client decides
 * (Anthropic.shouldRetry): x-should-retry when the server sent it, else
 * 408, 409 (the SDK's "lock timeout"), 429 and 5xx; and every transport
 * error except -EPROTO (TLS verification: configuration), -EFBIG and
 * -ECANCELED. 0 for a 2xx. Note stop's 409 means "already stopped": the
 * caller takes it as success, as the SDK's forceStop does, before asking.
 */
int al_wc_is_retryable(const struct al_wc_resp *r);

/*
 * A client for base_url (http:// or https://, no trailing slash needed).
 * ca_file may be NULL (system bundle). Returns 0, -EINVAL, -ENOMEM.
 * Free with al_wc_free after every call has completed or been cancelled.
 */
int al_wc_new(uv_loop_t *loop, const char *base_url, const char *ca_file, struct al_wc **out);
/*
 * Cancels every call and stream still open (no callback fires), frees. Run
 * the loop once more afterwards. NULL ok. Not from a callback of this client.
 */
void al_wc_free(struct al_wc *c);

/* Cancels a call: its callback will not fire. Safe from any callback. */
void al_wc_cancel(struct al_wc_call *call);

/*
 * The calls. `out` (may be NULL) receives the handle for al_wc_cancel, valid
 * until the callback returns. Return 0 or a negative errno (nothing started).
 * timeouts: poll uses block_ms + 30 s; the others 30 s.
 */
/*
 * GET /v1/environments/{env}/work/poll?block_ms=B[&reclaim_older_than_ms=R];
 * B == 0 or R == 0: omitted (the server's defaults). worker_id may be NULL.
 */
int al_wc_poll(struct al_wc *c, const char *env_id, const char *env_key, const char *worker_id,
	       unsigned block_ms, unsigned long reclaim_ms, al_wc_cb cb, void *ud,
	       struct al_wc_call **out);
/* POST .../work/{id}/ack */
int al_wc_ack(struct al_wc *c, const char *env_id, const char *work_id, const char *env_key,
	      al_wc_cb cb, void *ud, struct al_wc_call **out);
/*
 * POST .../work/{id}/heartbeat?desired_ttl_seconds=T&expected_last_heartbeat=X
 * expected == NULL sends the literal NO_HEARTBEAT (the first beat).
 * ttl_s == 0 omits desired_ttl_seconds, as the SDK's worker does.
 */
int al_wc_heartbeat(struct al_wc *c, const char *env_id, const char *work_id, const char *token,
		    unsigned ttl_s, const char *expected, al_wc_cb cb, void *ud,
		    struct al_wc_call **out);
/* POST .../work/{id}/stop  body {"force": force} */
int al_wc_stop(struct al_wc *c, const char *env_id, const char *work_id, const char *token,
	       int force, al_wc_cb cb, void *ud, struct al_wc_call **out);
/*
 * GET /v1/environments/{env}/work/{id}. Note who may call it: the hosted API
 * takes only a Claude API key here; airlock's server an admin or
 * environment key (not a sessions token).
 */
int al_wc_work_get(struct al_wc *c, const char *env_id, const char *work_id, const char *token,
		   al_wc_cb cb, void *ud, struct al_wc_call **out);
/*
 * GET /v1/sessions/{id}/events?limit=L[&page=CURSOR]: one page of history
 * (body: {data:[...], next_page} as the SDK's PageCursor reads it; the
 * caller follows pages with al_wc_next_page). L == 0 and page == NULL are
 * omitted.
 */
int al_wc_events_list(struct al_wc *c, const char *session_id, const char *token, unsigned limit,
		      const char *page, al_wc_cb cb, void *ud, struct al_wc_call **out);
/*
 * The cursor for the next page of a list body (its non-empty string
 * next_page, as PageCursor), or NULL when it was the last page. Borrowed.
 */
const char *al_wc_next_page(const json_t *list_body);
/*
 * POST /v1/sessions/{id}/events  body {"events": events} (borrowed). Always
 * on a fresh connection (CURLOPT_FRESH_CONNECT): libcurl would otherwise
 * re-send it by itself when a reused connection dies before the response,
 * answering a tool call twice behind the caller's back.
 */
int al_wc_events_send(struct al_wc *c, const char *session_id, const char *token,
		      const json_t *events, al_wc_cb cb, void *ud, struct al_wc_call **out);
/* GET /v1/sessions/{id}: the session object (status...). */
int al_wc_session_get(struct al_wc *c, const char *session_id, const char *token, al_wc_cb cb,
		      void *ud, struct al_wc_call **out);

/*
 * The live event stream: GET /v1/sessions/{id}/events/stream (SSE, no replay).
 * event_cb gets each event object (borrowed: json_incref to keep it) in
 * arrival order; `: ping` comments, `event: ping` and data that is not a
 * JSON object are ignored (counted). open_cb (may be NULL) fires once when
 * the response headers arrived with status 200, before any event (the stream
 * is live: now list the history). end_cb fires exactly once when the stream
 * ends for any reason unless the stream was closed with al_wc_stream_close:
 *   err 0, status 200: the server closed it cleanly;
 *   err 0, status != 200: refused before opening, fields as for a call (404...);
 *   err -EIO, status 200, error_type/message set: the server sent
 *     `event: error` with the documented error object (overloaded_error...);
 *   err < 0 otherwise: transport failure or a broken stream (-E2BIG: an event
 *     over 8 MiB).
 * No reconnect here: the session decides. No total timeout either (connect:
 * 30 s); for liveness see al_wc_stream_last_rx_ms.
 * Returns 0, -EINVAL (empty id or token, no event_cb or end_cb) or -ENOMEM;
 * *out (may be NULL) is the handle, valid until end_cb returns or the
 * stream is closed.
 */
struct al_wc_stream;
typedef void (*al_wc_event_cb)(json_t *event, void *ud);
typedef void (*al_wc_open_cb)(void *ud);
int al_wc_stream_open(struct al_wc *c, const char *session_id, const char *token,
		      al_wc_open_cb open_cb, al_wc_event_cb event_cb, al_wc_cb end_cb, void *ud,
		      struct al_wc_stream **out);
/*
 * Closes the stream; no further callback. Safe from any callback, including
 * its own open_cb and event_cb; a no-op from its own end_cb. NULL ok.
 */
void al_wc_stream_close(struct al_wc_stream *s);
/* Events ignored so far (pings, non-object data). */
unsigned long al_wc_stream_ignored(const struct al_wc_stream *s);
/*
 * al_mono_ms() when the stream last received a byte (a `: ping` comment
 * counts; the open time before any). A caller that wants a liveness check
 * closes a stream silent for longer than the server's ping interval allows
 * (airlock's server pings every 15 s) and reopens it.
 */
uint64_t al_wc_stream_last_rx_ms(const struct al_wc_stream *s);

#endif
