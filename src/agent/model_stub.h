/*
 * model_stub.h - the scripted model: a TEST DOUBLE for the Anthropic
 * Messages API. It never stands in for a real model outside tests.
 *
 * This is the pure part: a script plus one HTTP request in, one HTTP reply
 * out, no sockets (src/cli/cmd_model_stub.c serves it over al_http_server).
 * It is stateless per conversation: the step to play is chosen from the
 * request's own transcript (the number of assistant turns already in
 * `messages`), so any number of concurrent sessions can share one stub. The
 * only process-wide state is the request counter that drives fault
 * injection, and it is atomic (the handler may run on any thread).
 *
 * Script format (JSON; also in docs/model-stub.md):
 *
 *   {
 *     "model": "claude-stub",              optional: reply model (default: echo request)
 *     "delay_ms": 0,                       optional: delay before every reply
 *     "faults": [                          optional: the first requests process-wide fail
 *       {"status": 529, "count": 2,        HTTP status, how many requests in a row
 *        "retry_after": 1,                 optional: retry-after header, seconds
 *        "delay_ms": 0,                    optional: delay before the fault reply
 *        "type": "overloaded_error",       optional: error.type (default from status)
 *        "message": "Overloaded"}          optional: error.message
 *     ],
 *     "scenarios": [                       chosen by the first user message's text
 *       {"match": "weather", "steps": [STEP, ...]},
 *       {"steps": [STEP, ...]}             no "match": the default scenario
 *     ],
 *     "steps": [STEP, ...]                 shorthand for one default scenario
 *   }
 *
 *   STEP = {"content": [BLOCK, ...], "stop_reason": "end_turn",
 *           "delay_ms": 0}                 optional per-step delay
 *   BLOCK = {"type": "text", "text": "..."}
 *         | {"type": "tool_use", "name": "bash", "input": {...}}
 *
 * Step k (0-based) answers a request whose messages hold k assistant turns;
 * past the last step the stub answers end_turn with the text
 * "[model-stub: script exhausted]". stop_reason defaults to "tool_use" when
 * the step has a tool_use block, else "end_turn". Placeholders in any text,
 * and in any string inside a tool_use input:
 *   {{last_tool_result}}  the text of the last tool_result block in the request
 *   {{last_user_text}}    the text of the last user message's text blocks
 *   {{turn}}              the step number
 *
 * Replies: ids "msg_..." and "toolu_...", usage.input_tokens estimated as
 * request bytes / 4, output_tokens as reply content bytes / 4.
 */
#ifndef AL_AGENT_MODEL_STUB_H
#define AL_AGENT_MODEL_STUB_H

#include <stddef.h>
#include <stdint.h>

typedef struct al_model_stub al_model_stub;

/*
 * Parses a script. Returns 0, -EINVAL (with a message in err) or -ENOMEM.
 * The stub is freed with al_model_stub_free.
 */
int al_model_stub_new(const char *script, size_t len, al_model_stub **out, char *err,
		      size_t errlen);
/* Reads and parses a script file; -ENOENT etc. when it cannot be read. */
int al_model_stub_load(const char *path, al_model_stub **out, char *err, size_t errlen);
void al_model_stub_free(al_model_stub *s);

/*
 * Requires every /v1/messages request to carry this x-api-key (compared in
 * constant time). The key is copied and wiped on free. NULL: no check.
 */
int al_model_stub_set_api_key(al_model_stub *s, const char *key);

/* How many /v1/messages requests the stub has seen (faulted ones included). */
long al_model_stub_requests(const al_model_stub *s);

struct al_model_stub_reply {
	int status;
	char *body; /* owned JSON text; free with al_model_stub_reply_free */
	size_t body_len;
	char retry_after[24]; /* value for a retry-after header; "" for none */
	uint64_t delay_ms;    /* how long to wait before answering */
};

/*
 * Maps one request to its reply: POST /v1/messages, GET /healthz, anything
 * else 404. api_key is the request's x-api-key header (NULL if absent).
 * Returns 0 (out is filled, whatever the status) or -ENOMEM.
 */
int al_model_stub_handle(al_model_stub *s, const char *method, const char *path,
			 const char *api_key, const char *body, size_t len,
			 struct al_model_stub_reply *out);
void al_model_stub_reply_free(struct al_model_stub_reply *r);

#endif
