/*
 * provider.h - the model provider interface the agent loop calls.
 *
 * A provider turns one Messages-API-shaped request into one response,
 * asynchronously on the loop thread. Retries of transient failures (429, 500,
 * 529, 5xx, timeouts, connection errors) happen inside the provider, with
 * exponential backoff and full jitter, honouring retry-after; the callback
 * sees only the final outcome. Other model APIs plug in by filling
 * al_provider_ops; the loop never knows which one it talks to.
 */
#ifndef AL_AGENT_PROVIDER_H
#define AL_AGENT_PROVIDER_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

typedef struct al_provider al_provider;
typedef struct al_model_call al_model_call;

struct al_retry_policy {
	int max_attempts;	/* total tries, >= 1; default 6 */
	uint64_t base_delay_ms; /* first backoff; default 500 */
	uint64_t max_delay_ms;	/* cap; default 30000 */
	uint64_t timeout_ms;	/* per attempt; default 600000 */
};

struct al_model_result {
	int ok;			   /* 1: message holds the response */
	int http_status;	   /* last HTTP status, 0 if none (connection error) */
	int attempts;		   /* how many tries were made */
	json_t *message;	   /* borrowed: the Messages API response object */
	const char *error_type;	   /* on failure: "rate_limit_error", "overloaded_error", ... */
	const char *error_message; /* on failure: human text, never key material */
};

typedef void (*al_model_done_cb)(const struct al_model_result *res, void *ud);

struct al_provider_ops {
	/*
	 * Starts a call. `request` is a Messages API request body ({model,
	 * max_tokens, system, messages, tools, ...}); the provider takes its own
	 * reference. done_cb fires exactly once unless the call is cancelled.
	 */
	int (*call)(al_provider *p, json_t *request, al_model_done_cb done_cb, void *ud,
		    al_model_call **out);
	/* Cancels a call in flight; its done_cb will not fire. */
	void (*cancel)(al_provider *p, al_model_call *call);
	/* Frees the provider; all calls must have finished or been cancelled. */
	void (*free)(al_provider *p);
	/* Context window in tokens for a model name (for the loop's budget). */
	int64_t (*context_window)(al_provider *p, const char *model);
};

struct al_provider {
	const struct al_provider_ops *ops;
};

static inline int al_provider_call(al_provider *p, json_t *request, al_model_done_cb cb, void *ud,
				   al_model_call **out)
{
	return p->ops->call(p, request, cb, ud, out);
}

#endif
