/*
 * context.h - keeping a Messages API transcript inside the model's window.
 *
 * Pure functions over jansson values: no I/O, no clock, no global state, so
 * every rule below is unit-tested directly (tests/unit/agent/test_context.c).
 *
 * Token estimate
 *   tokens(v) = ceil(bytes of v serialised as compact JSON / 4).
 *   Four bytes per token is the usual rule of thumb for English text and
 *   code; JSON punctuation and base64 make it pessimistic, which is the safe
 *   side. The agent loop calibrates it per session: after a model response
 *   it knows the estimate of the request it sent and the provider's
 *   usage.input_tokens for it, and multiplies later estimates by
 *   actual/estimated (al_ctx_calibrate, clamped to [0.25, 4]).
 *
 * Budget
 *   budget = context_budget_tokens from the configuration when set (capped
 *   at the window), else 80% of the provider's context window for the model
 *   (al_ctx_budget). The hard limit is the window minus the output tokens
 *   the request reserves (max_tokens). The budget is where compaction starts;
 *   the limit is what may never be exceeded.
 *
 * Compaction (al_ctx_compact), applied to a transcript rebuilt from the event
 * log for every model call, so it never compounds:
 *   0. If scale * (fixed + tokens(messages)) <= budget, nothing changes.
 *      `fixed` is the system prompt and tool definitions.
 *   1. Elide tool results, oldest first: the content of a tool_result block
 *      becomes one text block "[elided: N bytes]". The block, its
 *      tool_use_id and is_error stay, so every tool_use still has its
 *      tool_result and the request stays valid. The results in the last
 *      message (the ones the model is about to read) are never elided, nor
 *      are results whose content is already smaller than the marker. Stops
 *      as soon as the estimate is within the budget.
 *   2. Drop the oldest whole turns. A turn starts at a user message that
 *      holds something other than tool results (a user.message) and runs up
 *      to the next one, so it carries the agent's replies and every
 *      tool_use/tool_result pair of that exchange: dropping whole turns
 *      never splits a pair. The last turn is never dropped. When anything
 *      was dropped, the first remaining user message starts with a text
 *      note saying how many turns were omitted and quoting (up to
 *      AL_CTX_INTENT_MAX bytes of) the session's first user message, so the
 *      original intent survives. Stops as soon as the estimate (note
 *      included) is within the budget.
 *   3. If the estimate is still over the hard limit (the last turn alone
 *      does not fit), fail with -E2BIG and a message naming both numbers;
 *      the loop reports it as a session.error and never sends the request.
 *      Over the budget but within the limit is accepted.
 */
#ifndef AL_AGENT_CONTEXT_H
#define AL_AGENT_CONTEXT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define AL_CTX_BYTES_PER_TOKEN 4
#define AL_CTX_INTENT_MAX      1000 /* bytes of the first user message kept in the note */
#define AL_CTX_ELIDE_MIN       64   /* results this small (serialised) are not worth eliding */

/* ceil(compact JSON bytes / 4); 0 for NULL. -ENOMEM is impossible to tell apart, so OOM gives 0. */
int64_t al_ctx_estimate(const json_t *v);
/* Applies a calibration factor to a raw estimate (rounds up). */
int64_t al_ctx_scaled(int64_t raw, double scale);
/* actual/estimated, clamped to [0.25, 4]; 1.0 when either is <= 0. */
double al_ctx_calibrate(int64_t estimated, int64_t actual);
/* configured > 0: min(configured, window); else 80% of window. window <= 0: 0. */
int64_t al_ctx_budget(int64_t configured, int64_t window);

struct al_ctx_limits {
	int64_t budget;	      /* soft: compact until the estimate is at or under this */
	int64_t limit;	      /* hard: never accept an estimate above this */
	int64_t fixed_tokens; /* raw estimate of what is sent besides messages (system, tools) */
	double scale;	      /* calibration factor; <= 0 means 1.0 */
};

struct al_ctx_report {
	int64_t tokens_before; /* scaled estimates, fixed part included */
	int64_t tokens_after;
	size_t elided;	      /* tool results elided */
	size_t dropped_turns; /* whole turns dropped */
};

/*
 * Compacts `messages` (a Messages API messages array, modified in place) as
 * described above. Returns 0 when the result fits the limit, -E2BIG when it
 * does not (err gets a sentence), -EINVAL for a malformed array, -ENOMEM.
 * rep may be NULL.
 */
int al_ctx_compact(json_t *messages, const struct al_ctx_limits *lim, struct al_ctx_report *rep,
		   char *err, size_t errlen);

/* 1 when message (a {role, content} object) starts a turn: a user message with non-result content.
 */
int al_ctx_is_turn_start(const json_t *message);

#endif
