/*
 * poller.h - the worker process: `airlock worker poll` (the claim loop:
 * long-poll, backoff, up to max_sessions items at once, in-process sessions
 * or --on-work scripts, graceful shutdown) and `airlock worker run` (one
 * item). Both implement worker.h's al_worker_poll / al_worker_run; this
 * header holds what tests need beyond them.
 */
#ifndef AL_WORKER_POLLER_H
#define AL_WORKER_POLLER_H

#include "worker/worker.h"

#include <jansson.h>

/*
 * The environment of an --on-work script: `base` (NULL-terminated
 * "NAME=value" strings, e.g. environ; borrowed) without any ANTHROPIC_*
 * variable, plus ANTHROPIC_WORK_ID, ANTHROPIC_ENVIRONMENT_ID,
 * ANTHROPIC_SESSION_ID, ANTHROPIC_WORK_SECRET (when the item has one),
 * ANTHROPIC_ENVIRONMENT_KEY (when configured) and ANTHROPIC_BASE_URL.
 * Returns a NULL-terminated array (owned: al_worker_script_env_free, which
 * wipes it) or NULL when out of memory. Arguments may be NULL (omitted).
 */
char **al_worker_script_env(char *const *base, const char *work_id, const char *env_id,
			    const char *session_id, const char *secret, const char *env_key,
			    const char *base_url);
void al_worker_script_env_free(char **env);

/*
 * The environment the --on-work script of `work` (a polled work object:
 * id, environment_id, data.id, secret; borrowed) gets under `cfg`:
 * al_worker_script_env with the key only when cfg->on_work_env_key is set.
 * The environment key is the most powerful credential a worker holds; a
 * per-session script does not need it once the poller has acked the item.
 */
char **al_worker_item_script_env(char *const *base, const struct al_worker_config *cfg,
				 const json_t *work);

#endif
