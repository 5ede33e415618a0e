/*
 * loop.h - the agent loop: turns session events into model calls and back.
 *
 * The loop observes every committed event on the bus. When a user event
 * reaches a session it rereads that session's document and the events
 * appended since its last look from the store (the parsed log is cached
 * per session, see al_agent_cache_stats), asks agent/transcript.h what the
 * log means and what comes next, and acts: emits status events, calls the
 * model through the provider, appends the response as events, and waits
 * for tool results, custom tool results and confirmations. Everything it
 * knows is in the store; the in-memory per-session record only holds what
 * cannot be there (the model call in flight, a calibration factor) and is
 * rebuilt on demand, and the cache is a prefix of the stored log.
 *
 * A turn, as events (all appended through al_bus_append):
 *   user.message on an idle session
 *     -> session.status_running + span.model_request_start
 *        (and, when the agent has the built-in toolset, a work item for the
 *        session's environment, enqueued in the same transaction)
 *   model response
 *     -> agent.message / agent.thinking / agent.tool_use /
 *        agent.custom_tool_use + span.model_request_end, in one append
 *   custom tool calls or `ask` confirmations outstanding
 *     -> session.status_idle {requires_action, event_ids}
 *   every call answered -> the next model call (running again if idle)
 *   a response without tool calls
 *     -> session.status_idle {end_turn}; the work item is stopped
 *   user.interrupt -> the call in flight is cancelled, its span closed with
 *        is_error, session.status_idle {end_turn}; the work item is stopped
 *   provider failure (after the provider's own retries), or a transcript
 *   that cannot fit the window
 *     -> span end (is_error), session.error {retry_status: exhausted},
 *        session.status_idle {retries_exhausted}; the work item is stopped
 *
 * Per session, steps are serialised: one read-decide-act at a time, so two
 * events arriving together never produce two model calls.
 *
 * Restart: al_agent_start steps every session whose state is running or
 * rescheduling, and every idle session whose last event is a user event.
 * The same log gives the same decision (see al_transcript_decide), so
 * outstanding tool calls keep waiting, a request whose response never made
 * it into the log is made again (its orphaned span is closed first), and no
 * agent.tool_use is ever emitted twice: tool uses exist only inside a
 * committed response, and a committed response is never requested again.
 *
 * Runs on the loop thread. The loop owns nothing it is given: api->store,
 * api->bus and api->provider must outlive it.
 */
#ifndef AL_AGENT_LOOP_H
#define AL_AGENT_LOOP_H

#include "api/api.h"

#define AL_AGENT_MAX_TOKENS	8192   /* max_tokens of each model request */
#define AL_AGENT_DEFAULT_WINDOW 200000 /* when the provider does not know the model */

struct al_agent;

/*
 * Registers as the bus observer and resumes in-flight sessions (reading the
 * store synchronously: start-up only). 0 or a negative errno.
 */
int al_agent_start(al_api *api, struct al_agent **out);
/* Stops starting model calls (drain). Calls in flight finish and are recorded. */
void al_agent_stop(struct al_agent *ag);
/*
 * 1 while a model call is in flight or its response is still being recorded
 * (or any other step or store job is outstanding), else 0. The drain waits
 * for 0 so that a SIGTERM does not throw away a response already paid for.
 */
int al_agent_busy(const struct al_agent *ag);
/*
 * Unregisters from the bus and cancels calls in flight. Store and bus
 * completions still queued are absorbed: the memory goes when the last one
 * has fired, so the loop must keep running until the store is closed.
 */
void al_agent_free(struct al_agent *ag);

/*
 * The work module calls this when a worker's lease on the session's work
 * item lapsed and the item was reclaimed: emits session.status_rescheduled
 * (status "rescheduling") while the turn is open.
 */
void al_agent_on_work_lost(struct al_agent *ag, const char *session_id);

/*
 * Added. Each session's parsed event log is cached (a prefix of the stored
 * log, extended by loading only the events after it) so a step does not
 * reread and reparse the whole log. Caches of the least recently used
 * sessions are evicted past cfg.agent_cache_bytes (0: 64 MiB); a session
 * without a cache costs nothing and is rebuilt from the store on its next
 * step. Counters for tests and benchmarks.
 */
struct al_agent_cache_stats {
	size_t entries;		/* sessions with a cache */
	size_t bytes;		/* estimated memory of all caches */
	uint64_t full_loads;	/* loads that read a session's whole log */
	uint64_t events_parsed; /* events read from the store and parsed */
	uint64_t evictions;
};
void al_agent_cache_stats(const struct al_agent *ag, struct al_agent_cache_stats *out);

#endif
