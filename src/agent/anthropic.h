/*
 * anthropic.h - the Anthropic Messages API provider (al_provider).
 *
 * POST {base_url}/v1/messages, non-streaming, over net/http_client on the
 * caller's loop. Transient failures (429, 500, 502, 503, 504, 529, timeouts,
 * connection errors) are retried inside the provider with exponential
 * backoff and full jitter: attempt k waits a uniformly random time in
 * [0, min(max_delay, base_delay * 2^(k-1))], or exactly what the server asked
 * for in retry-after (seconds) / retry-after-ms when present. Other 4xx fail
 * at once. The callback sees the final outcome; error bodies
 * {"type":"error","error":{"type","message"}} become error_type/error_message.
 */
#ifndef AL_AGENT_ANTHROPIC_H
#define AL_AGENT_ANTHROPIC_H

#include "agent/provider.h"
#include "net/http_client.h"

#include <uv.h>

#define AL_ANTHROPIC_VERSION	    "2023-06-01"
#define AL_ANTHROPIC_CONTEXT_WINDOW 200000

/*
 * Creates the provider. `http` is borrowed and must outlive the provider.
 * base_url ("https://api.anthropic.com", or a local model-stub) is copied.
 * api_key is copied and wiped on free; NULL sends no x-api-key (a local
 * stub). policy may be NULL; zero fields take the provider.h defaults.
 * Returns NULL when out of memory or base_url is not http(s).
 * Free with p->ops->free(p) (al_anthropic_free is the same thing).
 */
al_provider *al_anthropic_new(uv_loop_t *loop, al_http_client *http, const char *base_url,
			      const char *api_key, const struct al_retry_policy *policy);
void al_anthropic_free(al_provider *p);

/*
 * Overrides the context window reported for every model (tokens; <= 0
 * restores the default: 200000 for claude-* models and any other name).
 */
void al_anthropic_set_context_window(al_provider *p, int64_t tokens);

/*
 * The backoff before retry number `attempt` (1 after the first failure),
 * without retry-after: uniform in [0, min(max, base * 2^(attempt-1))].
 * Exposed for tests.
 */
uint64_t al_anthropic_backoff_ms(const struct al_retry_policy *policy, int attempt);

/*
 * The Messages API's error type for an HTTP status ("rate_limit_error" for
 * 429, "api_error" for anything unlisted): what the provider reports when a
 * failed response's body names no type, and what the model stub answers
 * with. A static string.
 */
const char *al_anthropic_error_type(int status);

#endif
