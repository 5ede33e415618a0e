/*
 * worker.h - `airlock worker`: the self-hosted worker that claims an
 * environment's work items over outbound HTTPS long-poll and runs every tool
 * call of a session inside the sandbox engine (docs/ARCHITECTURE.md, "The
 * worker"; protocol in ../shared/reference/managed-agents-protocol.md).
 *
 * Pieces (one concept per file):
 *   config.c   flags + YAML config file + environment -> struct al_worker_config
 *   secret.c   the work item's secret (base64url JSON: sessions_token, api_base_url)
 *   client.c   the protocol calls (poll/ack/heartbeat/stop/events/stream) on libuv+libcurl
 *   journal.c  the exactly-once journal (SQLite) of tool calls
 *   tools.c    bash/read/write/edit/glob/grep for one session, in its sandbox
 *   session.c  one work item: lease, stream + history, dispatch, confirmations, idle exit
 *   poller.c   the claim loop: concurrency, backoff, --on-work scripts, shutdown
 *
 * Threads: one libuv loop thread does all protocol I/O and owns every
 * session's state; tool calls (which block: a bash command may run for two
 * minutes) run on the libuv thread pool, one call at a time per session, in
 * the order the agent issued them. The journal and the audit log are
 * thread-safe.
 */
#ifndef AL_WORKER_WORKER_H
#define AL_WORKER_WORKER_H

#include <stddef.h>

#include "sandbox/sandbox.h"

#define AL_WORKER_DEFAULT_BASE_URL     "https://api.anthropic.com"
#define AL_WORKER_DEFAULT_MAX_IDLE_S   60
#define AL_WORKER_DEFAULT_MAX_SESSIONS 4

enum al_worker_log_format { AL_WORKER_LOG_TEXT, AL_WORKER_LOG_JSON };

/*
 * Everything a worker needs. Strings are owned by the config
 * (al_worker_config_clear frees them; the secrets are wiped first).
 */
struct al_worker_config {
	char *base_url;	       /* --base-url / ANTHROPIC_BASE_URL; default the hosted API */
	char *environment_id;  /* --environment / ANTHROPIC_ENVIRONMENT_ID */
	char *environment_key; /* ANTHROPIC_ENVIRONMENT_KEY only (never a flag); secret */
	char *worker_id;       /* Anthropic-Worker-ID; default "<hostname>-<random>" */
	char *workdir; /* --workdir: a workspace per session beneath it (<workdir>/<session_id>) */
	char *state_dir;       /* --state-dir: journal.db lives here; default <workdir>/.airlock */
	char *audit_path;      /* --audit FILE; NULL: <state_dir>/audit.log */
	char *audit_key;       /* --audit-key FILE: Ed25519 key for checkpoints; may be NULL */
	char *ca_file;	       /* --ca-file: PEM bundle for the control plane; NULL: system */
	char *on_work;	       /* --on-work SCRIPT; NULL: run sessions in-process */
	/*
	 * --on-work-env-key: pass ANTHROPIC_ENVIRONMENT_KEY to the script too
	 * (as the reference CLI does). Off by default: the poller acks the item,
	 * and `airlock worker run` then needs only the item's sessions token.
	 */
	int on_work_env_key;
	/*
	 * --workspace-ttl: `worker poll` deletes a workspace nothing used for
	 * this many seconds (workspace.h); 0 (default): only when its session
	 * is over.
	 */
	unsigned workspace_ttl_s;
	unsigned max_idle_s;   /* --max-idle: quiet seconds after end_turn before stopping */
	unsigned max_sessions; /* --max-sessions: concurrent work items (poll) */
	unsigned block_ms;     /* poll block_ms, 1..999 (999) */
	unsigned long reclaim_older_than_ms; /* poll reclaim_older_than_ms; 0: omitted */
	unsigned heartbeat_ttl_s;	     /* desired_ttl_seconds (90) */
	unsigned shutdown_grace_s;	     /* SIGTERM: time running calls get (30) */
	enum al_worker_log_format log_format;

	/* The sandbox every session gets. */
	const struct al_sandbox_backend_ops *backend; /* native (default) or bwrap */
	char **allow_hosts;  /* egress allowlist, NULL-terminated; NULL: no egress */
	char **ro_paths;     /* extra read-only roots, NULL-terminated; may be NULL */
	unsigned timeout_ms; /* default bash timeout (120000); a call's timeout_ms may lower it */
	unsigned memory_mb, pids, cpu_pct, tmp_mb;
	int allow_degraded; /* run without seccomp/Landlock if unavailable (loudly) */
};

/* Defaults for everything (no strings set). */
void al_worker_config_init(struct al_worker_config *c);
/* Frees (wiping environment_key) and re-inits. */
void al_worker_config_clear(struct al_worker_config *c);

/*
 * Building a config (config.c). Sources, lowest to highest precedence:
 * al_worker_config_init (defaults), al_worker_config_load_file (YAML),
 * al_worker_config_from_env, al_worker_config_set for each flag; then
 * al_worker_config_validate once. Each returns 0 or a negative errno with a
 * human message in err (never containing a secret). The option names and
 * the YAML schema are in docs/OPERATIONS.md and contrib/worker.yaml.
 */

/*
 * Sets one option by its YAML name ("max_sessions", "allow_hosts",
 * "backend", ...; sandbox options by their bare name) from a string, range-
 * checked. List options (allow_hosts, ro_paths) append; value NULL empties
 * them (a flag given on the command line replaces the file's list).
 * Never "environment_key": -EPERM (it comes from the environment only).
 */
int al_worker_config_set(struct al_worker_config *c, const char *name, const char *value, char *err,
			 size_t errlen);

/*
 * Loads a YAML config over c (a mapping; sandbox options under `sandbox:`).
 * Unknown keys, duplicate keys, wrong shapes and out-of-range numbers are
 * errors "NAME:LINE: ...". `environment_key_file: PATH` reads the key from a
 * file that must be a regular file not readable by group or others, owned by
 * us or root (systemd's LoadCredential); `environment_key` itself is refused.
 * _load_yaml parses a buffer; name is used in messages.
 */
int al_worker_config_load_file(struct al_worker_config *c, const char *path, char *err,
			       size_t errlen);
int al_worker_config_load_yaml(struct al_worker_config *c, const char *data, size_t len,
			       const char *name, char *err, size_t errlen);

/*
 * ANTHROPIC_BASE_URL and ANTHROPIC_ENVIRONMENT_ID (when non-empty) and
 * ANTHROPIC_ENVIRONMENT_KEY. The key is wiped in place in the environment
 * block (so /proc/PID/environ no longer shows it) and unset, so no child
 * inherits it. Without the variable and without a key from the file, the key
 * is read from $CREDENTIALS_DIRECTORY/environment-key when that exists
 * (systemd LoadCredential=environment-key:...), same checks as the file.
 */
int al_worker_config_from_env(struct al_worker_config *c, char *err, size_t errlen);

/*
 * Takes a secret from the environment: copies getenv(name) into *out
 * (owned, free with al_free_secret_str), wipes the original and unsets it.
 * Returns 1 when it was set, 0 when not (*out NULL), -ENOMEM.
 */
int al_worker_env_take_secret(const char *name, char **out);

enum al_worker_mode { AL_WORKER_MODE_POLL, AL_WORKER_MODE_RUN };

/*
 * Checks the whole config for `mode` and completes it: base URL http(s)
 * (trailing '/' removed), ids' characters, workdir (default the current
 * directory; 0711, and with bwrap every parent must let others pass) and
 * state_dir (0700) created if missing and made absolute,
 * audit path defaulted, files that must exist checked (ca_file, audit_key,
 * on_work executable, ro_paths), worker_id generated. POLL needs the
 * environment id and key; RUN takes the id from the item and may work with
 * the item's secret alone; on_work is POLL only.
 */
int al_worker_config_validate(struct al_worker_config *c, enum al_worker_mode mode, char *err,
			      size_t errlen);

/* The item `airlock worker run` serves (from ANTHROPIC_WORK_ID etc.). Owned strings. */
struct al_worker_item {
	char *work_id;
	char *environment_id;
	char *session_id;
	char *secret; /* ANTHROPIC_WORK_SECRET (the raw base64url secret); wiped when cleared */
};
void al_worker_item_clear(struct al_worker_item *it);

/*
 * `airlock worker poll`: claims work until SIGTERM/SIGINT (then drains, see
 * docs/OPERATIONS.md) or a fatal 4xx. Returns the process exit status:
 * 0 clean shutdown, 1 runtime error (fatal 4xx, journal or audit failure).
 */
int al_worker_poll(const struct al_worker_config *c);

/*
 * `airlock worker run`: serves one already-claimed item and exits. Same
 * exit statuses; 0 also when the lease was lost (another worker owns it).
 */
int al_worker_run(const struct al_worker_config *c, const struct al_worker_item *it);

#endif
