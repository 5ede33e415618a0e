/*
 * client.h - the environment work protocol, client side, on the libuv loop
 * (through net/http_client.h, i.e. libcurl: HTTPS_PROXY/NO_PROXY from the
 * environment work, so an enterprise egress proxy just works).
 *
 * Every request carries `Authorization: Bearer <token>` (the environment key
 * for poll/ack/stop/stats, the item's sessions token for everything about
 * the session and for heartbeats, as the SDK's worker does),
 * `anthropic-version: 2023-06-01`, `anthropic-beta: managed-agents-2026-04-01`,
 * `user-agent: airlock-worker/<version>`, and for poll `Anthropic-Worker-ID`.
 * Tokens are borrowed for the duration of the call that takes them and are
 * never logged nor put in an error message.
 *
 * All functions run on the loop thread. Callbacks fire exactly once, later on
 * the loop, unless the call is cancelled (al_wc_cancel), in which case they
 * do not fire.
 */
#ifndef AL_WORKER_CLIENT_H
#define AL_WORKER_CLIENT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "net/http_client.h"

#define AL_WC_BETA "managed-agents-2026-04-01"

struct al_wc;	   /* a client: loop + base URL + CA file */
struct al_wc_call; /* one call in flight (cancellable) */

/*
 * The outcome of one call, valid during the callback only.
 *   err == 0: an HTTP response arrived: status is set; body is its parsed JSON
 *             (json_null() for a literal `null`, NULL when empty or not JSON);
 *             on 4xx/5xx error_type/error_message come from the documented
 *             error shape {type:"error", error:{type, message, details?}} and
 *             details is error.details (NULL if absent).
 *   err < 0:  transport failure (net/http_client.h's codes); status 0.
 * retry_after_ms: the Retry-After header (seconds or HTTP date) in ms, -1 if absent.
 */
struct al_wc_resp {
	int err;
	int status;
	json_t *body;
	const char *error_type;
	const char *error_message;
	json_t *details;
	long retry_after_ms;
};

typedef void (*al_wc_cb)(const struct al_wc_resp *r, void *ud);

/* 1 when a poll error must stop the worker (the SDK's isFatal4xx: 4xx other than 408/409/429). */
int al_wc_is_fatal_4xx(int status);
/* 1 when a failed call is worth retrying (transport error, 408, 409?, 429, 5xx). */
int al_wc_is_retryable(const struct al_wc_resp *r);

/*
 * A client for base_url (http:// or https://, no trailing slash needed).
 * ca_file may be NULL (system bundle). Returns 0, -EINVAL, -ENOMEM.
 * Free with al_wc_free after every call has completed or been cancelled.
 */
int al_wc_new(uv_loop_t *loop, const char *base_url, const char *ca_file, struct al_wc **out);
/* Cancels every call and stream still open, frees. Run the loop once more afterwards. NULL ok. */
void al_wc_free(struct al_wc *c);

/* Cancels a call: its callback will not fire. Safe from any callback. */
void al_wc_cancel(struct al_wc_call *call);

/*
 * The calls. `out` (may be NULL) receives the handle for al_wc_cancel, valid
 * until the callback returns. Return 0 or a negative errno (nothing started).
 * timeouts: poll uses block_ms + 30 s; the others 30 s.
 */
/* GET /v1/environments/{env}/work/poll?block_ms=B[&reclaim_older_than_ms=R]; R == 0: omitted. */
int al_wc_poll(struct al_wc *c, const char *env_id, const char *env_key, const char *worker_id,
	       unsigned block_ms, unsigned long reclaim_ms, al_wc_cb cb, void *ud,
	       struct al_wc_call **out);
/* POST .../work/{id}/ack */
int al_wc_ack(struct al_wc *c, const char *env_id, const char *work_id, const char *env_key,
	      al_wc_cb cb, void *ud, struct al_wc_call **out);
/*
 * POST .../work/{id}/heartbeat?desired_ttl_seconds=T&expected_last_heartbeat=X
 * expected == NULL sends the literal NO_HEARTBEAT (the first beat).
 */
int al_wc_heartbeat(struct al_wc *c, const char *env_id, const char *work_id, const char *token,
		    unsigned ttl_s, const char *expected, al_wc_cb cb, void *ud,
		    struct al_wc_call **out);
/* POST .../work/{id}/stop  body {"force": force} */
int al_wc_stop(struct al_wc *c, const char *env_id, const char *work_id, const char *token,
	       int force, al_wc_cb cb, void *ud, struct al_wc_call **out);
/* GET /v1/environments/{env}/work/{id} */
int al_wc_work_get(struct al_wc *c, const char *env_id, const char *work_id, const char *token,
		   al_wc_cb cb, void *ud, struct al_wc_call **out);
/*
 * GET /v1/sessions/{id}/events?limit=L[&page=CURSOR]: one page of history
 * (body: {data:[...], next_page|last_id/has_more...} as the server sends it;
 * the caller follows pages with al_wc_next_page).
 */
int al_wc_events_list(struct al_wc *c, const char *session_id, const char *token, unsigned limit,
		      const char *page, al_wc_cb cb, void *ud, struct al_wc_call **out);
/* The cursor for the next page of a list body, or NULL when it was the last page. Borrowed. */
const char *al_wc_next_page(const json_t *list_body);
/* POST /v1/sessions/{id}/events  body {"events": events} (borrowed). */
int al_wc_events_send(struct al_wc *c, const char *session_id, const char *token,
		      const json_t *events, al_wc_cb cb, void *ud, struct al_wc_call **out);
/* GET /v1/sessions/{id}: the session object (status...). */
int al_wc_session_get(struct al_wc *c, const char *session_id, const char *token, al_wc_cb cb,
		      void *ud, struct al_wc_call **out);

/*
 * The live event stream: GET /v1/sessions/{id}/events/stream (SSE, no replay).
 * event_cb gets each event object (borrowed: json_incref to keep it) in
 * arrival order; `: ping` comments and non-JSON data are ignored (counted).
 * open_cb fires once when the response headers arrived with status 200 (the
 * stream is live: now list the history). end_cb fires exactly once when the
 * stream ends for any reason (err 0 = server closed it cleanly; status and
 * error fields as for a call, e.g. a 404 before opening) unless the stream was
 * closed with al_wc_stream_close. No reconnect here: the session decides.
 */
struct al_wc_stream;
typedef void (*al_wc_event_cb)(json_t *event, void *ud);
typedef void (*al_wc_open_cb)(void *ud);
int al_wc_stream_open(struct al_wc *c, const char *session_id, const char *token,
		      al_wc_open_cb open_cb, al_wc_event_cb event_cb, al_wc_cb end_cb, void *ud,
		      struct al_wc_stream **out);
/* Closes the stream; no further callback. Safe from any callback, including its own. */
void al_wc_stream_close(struct al_wc_stream *s);

#endif
