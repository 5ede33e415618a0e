/*
 * cmd_worker.c - `airlock worker poll|run`: the self-hosted worker's CLI.
 *
 * This file only turns flags, a config file and the environment into a
 * struct al_worker_config (worker/config.c does the checking) and calls the
 * runtime (al_worker_poll / al_worker_run in worker/poller.c), which owns
 * signals, draining and the exit status.
 *
 * Secrets: the environment key comes from ANTHROPIC_ENVIRONMENT_KEY (or a
 * 0600 key file named in the config, or systemd's credentials directory),
 * never from a flag: argv is readable by every local user. `run` takes the
 * work secret from ANTHROPIC_WORK_SECRET. Both are wiped from the environment
 * block and unset as soon as they are read, so no child inherits them.
 *
 * Exit status: 0 clean shutdown, 1 runtime error, 2 usage or config error.
 */
#include "cli/cli.h"

#include "core/alloc.h"
#include "core/log.h"
#include "sandbox/sandbox.h"
#include "worker/worker.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum worker_cmd { CMD_POLL, CMD_RUN };

static void usage(FILE *f, enum worker_cmd cmd)
{
	if (cmd == CMD_POLL)
		fprintf(f, "usage: airlock worker poll [options]\n\n"
			   "Claims work items of an environment over outbound HTTPS long-poll and\n"
			   "runs each session's tool calls in its own sandbox (or hands each item\n"
			   "to --on-work SCRIPT). Runs until SIGTERM or SIGINT, then drains.\n\n");
	else
		fprintf(f,
			"usage: airlock worker run [options]\n\n"
			"Serves one already-claimed work item and exits (a container or VM\n"
			"entrypoint, e.g. started by `airlock worker poll --on-work`). The item\n"
			"comes from ANTHROPIC_WORK_ID, ANTHROPIC_ENVIRONMENT_ID and\n"
			"ANTHROPIC_SESSION_ID, its secret from ANTHROPIC_WORK_SECRET.\n\n");
	fprintf(
	    f,
	    "Options (flags override the environment, which overrides --config):\n"
	    "  --config FILE          YAML config file (keys: docs/OPERATIONS.md)\n"
	    "  --base-url URL         control plane (default %s;\n"
	    "                         ANTHROPIC_BASE_URL)\n"
	    "  --environment ID       environment to serve (ANTHROPIC_ENVIRONMENT_ID)\n"
	    "  --workdir DIR          a workspace per session beneath DIR (created 0711;\n"
	    "                         default the current directory)\n"
	    "  --state-dir DIR        journal and default audit log (default WORKDIR/.airlock)\n"
	    "  --max-idle SEC         quiet seconds after end_turn before the item is\n"
	    "                         stopped (default %d)\n",
	    AL_WORKER_DEFAULT_BASE_URL, AL_WORKER_DEFAULT_MAX_IDLE_S);
	if (cmd == CMD_POLL)
		fprintf(
		    f,
		    "  --max-sessions N       concurrent work items (default %d)\n"
		    "  --on-work SCRIPT       hand each claimed item to SCRIPT (item JSON on\n"
		    "                         stdin, ANTHROPIC_WORK_ID etc. in its environment)\n"
		    "  --on-work-env-key      also give SCRIPT ANTHROPIC_ENVIRONMENT_KEY (off:\n"
		    "                         the item is acked; its secret is all it needs)\n"
		    "  --workspace-ttl SEC    delete a workspace unused for SEC seconds (default\n"
		    "                         0: only when its session is terminated or deleted)\n",
		    AL_WORKER_DEFAULT_MAX_SESSIONS);
	fprintf(
	    f,
	    "  --log-format FMT       text (default) or json\n"
	    "  --log-level LEVEL      debug, info (default), warn or error\n"
	    "  --audit FILE           hash-chained audit log (default STATE_DIR/audit.log)\n"
	    "  --audit-key FILE       Ed25519 key that signs audit checkpoints\n"
	    "  --ca-file FILE         PEM bundle to trust for the control plane\n"
	    "                         (default the system's)\n"
	    "  --help                 show this help\n\n"
	    "Sandbox policy (every session gets its own sandbox):\n"
	    "  --backend native|bwrap isolation backend (default native)\n"
	    "  --allow-host H[:P]     egress allowlist entry (repeatable; replaces the\n"
	    "                         config file's list; none: no network at all)\n"
	    "  --ro-path PATH         extra read-only path (repeatable)\n"
	    "  --timeout SEC          default bash timeout (default 120; 0 = 120)\n"
	    "  --memory-mb MB         memory limit per session (default 1024; 0 = 1024)\n"
	    "  --pids N               task limit per session (default 256; 0 = 256)\n"
	    "  --cpu-pct PCT          CPU quota, percent of one CPU (default none)\n"
	    "  --allow-degraded       run even when seccomp or Landlock is unavailable\n\n"
	    "Environment:\n"
	    "  ANTHROPIC_ENVIRONMENT_KEY  the environment key (never a flag); unset once read\n");
	if (cmd == CMD_RUN)
		fprintf(f, "  ANTHROPIC_WORK_SECRET      the item's secret; unset once read\n"
			   "  ANTHROPIC_WORK_ID, ANTHROPIC_SESSION_ID  the item to serve\n");
	fprintf(f, "\nExit status: 0 clean shutdown, 1 runtime error, 2 usage or config error.\n");
}

/* Long options whose value goes straight to al_worker_config_set under `key`. */
struct flag {
	struct option o;
	const char *key;
	int poll_only;
};

#define OPT_CONFIG    1000
#define OPT_HELP      1001
#define OPT_LOG_LEVEL 1002
#define OPT_FIRST     2000 /* index into flags[] */

static const struct flag flags[] = {
    {{"base-url", required_argument, NULL, 0}, "base_url", 0},
    {{"environment", required_argument, NULL, 0}, "environment_id", 0},
    {{"workdir", required_argument, NULL, 0}, "workdir", 0},
    {{"state-dir", required_argument, NULL, 0}, "state_dir", 0},
    {{"max-idle", required_argument, NULL, 0}, "max_idle", 0},
    {{"max-sessions", required_argument, NULL, 0}, "max_sessions", 1},
    {{"log-format", required_argument, NULL, 0}, "log_format", 0},
    {{"audit", required_argument, NULL, 0}, "audit", 0},
    {{"audit-key", required_argument, NULL, 0}, "audit_key", 0},
    {{"ca-file", required_argument, NULL, 0}, "ca_file", 0},
    {{"on-work", required_argument, NULL, 0}, "on_work", 1},
    {{"on-work-env-key", no_argument, NULL, 0}, "on_work_env_key", 1},
    {{"workspace-ttl", required_argument, NULL, 0}, "workspace_ttl", 1},
    {{"backend", required_argument, NULL, 0}, "backend", 0},
    {{"allow-host", required_argument, NULL, 0}, "allow_hosts", 0},
    {{"ro-path", required_argument, NULL, 0}, "ro_paths", 0},
    {{"timeout", required_argument, NULL, 0}, "timeout", 0},
    {{"memory-mb", required_argument, NULL, 0}, "memory_mb", 0},
    {{"pids", required_argument, NULL, 0}, "pids", 0},
    {{"cpu-pct", required_argument, NULL, 0}, "cpu_pct", 0},
    {{"allow-degraded", no_argument, NULL, 0}, "allow_degraded", 0},
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

/* A flag as given, applied after the file and the environment. */
struct given {
	size_t flag;
	const char *value; /* argv's; "true" for --allow-degraded */
};

/* Work and session ids go into URL paths: no separators, no controls. */
static int item_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || s[i] == '/' ||
		    s[i] == '?' || s[i] == '#' || s[i] == '%')
			return 0;
	return 1;
}

/* ANTHROPIC_WORK_ID etc.; the secret was already taken. 0 or 2 (usage). */
static int item_from_env(struct al_worker_item *it, const struct al_worker_config *c)
{
	const char *work = getenv("ANTHROPIC_WORK_ID");
	const char *session = getenv("ANTHROPIC_SESSION_ID");

	if (!item_id_ok(work) || !item_id_ok(session) || !item_id_ok(c->environment_id)) {
		fprintf(stderr, "airlock worker run: ANTHROPIC_WORK_ID, ANTHROPIC_SESSION_ID and "
				"ANTHROPIC_ENVIRONMENT_ID (or --environment) must be set to ids\n");
		return 2;
	}
	it->work_id = al_strdup(work);
	it->session_id = al_strdup(session);
	it->environment_id = al_strdup(c->environment_id);
	if (it->work_id == NULL || it->session_id == NULL || it->environment_id == NULL) {
		fprintf(stderr, "airlock worker run: out of memory\n");
		return 1;
	}
	if (it->secret == NULL && c->environment_key == NULL) {
		fprintf(stderr, "airlock worker run: set ANTHROPIC_WORK_SECRET (the item's secret) "
				"or ANTHROPIC_ENVIRONMENT_KEY\n");
		return 2;
	}
	return 0;
}

static int worker_main(enum worker_cmd cmd, int argc, char **argv)
{
	const char *name = cmd == CMD_POLL ? "airlock worker poll" : "airlock worker run";
	struct option lopts[NFLAGS + 4];
	struct al_worker_config c;
	struct al_worker_item it = {0};
	struct given *given = NULL;
	unsigned char list_reset[NFLAGS] = {0};
	const char *config = NULL;
	char err[512];
	size_t ngiven = 0;
	int opt, rc, status = 2;

	al_worker_config_init(&c);
	/*
	 * Taken first, before anything can fail, so that every exit path wipes
	 * it; the environment key is taken by al_worker_config_from_env below
	 * (no child process exists before that).
	 */
	if (cmd == CMD_RUN && al_worker_env_take_secret("ANTHROPIC_WORK_SECRET", &it.secret) < 0) {
		fprintf(stderr, "%s: out of memory\n", name);
		status = 1;
		goto done;
	}
	for (size_t i = 0; i < NFLAGS; i++) {
		lopts[i] = flags[i].o;
		lopts[i].val = (int)(OPT_FIRST + i);
	}
	lopts[NFLAGS] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	lopts[NFLAGS + 1] = (struct option){"help", no_argument, NULL, OPT_HELP};
	lopts[NFLAGS + 2] = (struct option){"log-level", required_argument, NULL, OPT_LOG_LEVEL};
	lopts[NFLAGS + 3] = (struct option){NULL, 0, NULL, 0};
	given = al_calloc((size_t)argc + 1, sizeof(*given));
	if (given == NULL) {
		fprintf(stderr, "%s: out of memory\n", name);
		status = 1;
		goto done;
	}

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		if (opt == 'h' || opt == OPT_HELP) {
			usage(stdout, cmd);
			status = 0;
			goto done;
		} else if (opt == OPT_CONFIG) {
			config = optarg;
		} else if (opt == OPT_LOG_LEVEL) {
			enum al_log_level l;
			if (al_log_parse_level(optarg, &l) < 0) {
				fprintf(stderr,
					"%s: --log-level must be debug, info, warn or error\n",
					name);
				goto done;
			}
			al_log_set_level(l);
		} else if (opt >= OPT_FIRST && (size_t)(opt - OPT_FIRST) < NFLAGS) {
			size_t i = (size_t)(opt - OPT_FIRST);
			if (flags[i].poll_only && cmd != CMD_POLL) {
				fprintf(stderr, "%s: --%s applies to `airlock worker poll` only\n",
					name, flags[i].o.name);
				goto done;
			}
			given[ngiven].flag = i;
			given[ngiven].value = optarg ? optarg : "true";
			ngiven++;
		} else {
			fprintf(stderr, "%s: unknown option or missing value: %s\n\n", name,
				argv[optind - 1]);
			usage(stderr, cmd);
			goto done;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", name, argv[optind]);
		goto done;
	}

	err[0] = '\0';
	if (config != NULL && al_worker_config_load_file(&c, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", name, err);
		goto done;
	}
	if (al_worker_config_from_env(&c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", name, err);
		goto done;
	}
	for (size_t g = 0; g < ngiven; g++) {
		const struct flag *f = &flags[given[g].flag];
		/* A repeatable flag on the command line replaces the file's list. */
		if (f->o.has_arg == required_argument && !list_reset[given[g].flag] &&
		    (strcmp(f->key, "allow_hosts") == 0 || strcmp(f->key, "ro_paths") == 0)) {
			list_reset[given[g].flag] = 1;
			al_worker_config_set(&c, f->key, NULL, NULL, 0);
		}
		if (al_worker_config_set(&c, f->key, given[g].value, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s: --%s: %s\n", name, f->o.name, err);
			goto done;
		}
	}
	rc = al_worker_config_validate(
	    &c, cmd == CMD_POLL ? AL_WORKER_MODE_POLL : AL_WORKER_MODE_RUN, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", name, err);
		status = rc == -ENOMEM ? 1 : 2;
		goto done;
	}
	al_log_set_format(c.log_format == AL_WORKER_LOG_JSON ? AL_LOG_JSON : AL_LOG_TEXT);

	if (cmd == CMD_POLL) {
		/* A worker killed with SIGKILL leaves cgroup and egress dirs: remove them now. */
		int swept = al_sandbox_sweep_stale();
		if (swept > 0)
			al_info("worker", "removed %d directories left by killed workers", swept);
		status = al_worker_poll(&c);
	} else {
		if ((status = item_from_env(&it, &c)) != 0)
			goto done;
		status = al_worker_run(&c, &it);
	}
done:
	al_free(given);
	al_worker_item_clear(&it);
	al_worker_config_clear(&c);
	return status;
}

int al_cmd_worker(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		FILE *f = argc < 2 ? stderr : stdout;
		fprintf(f, "usage: airlock worker poll|run [options]\n\n"
			   "  poll   claim an environment's work and run its sessions, sandboxed\n"
			   "  run    serve one claimed item (ANTHROPIC_WORK_ID...) and exit\n\n"
			   "Run 'airlock worker poll --help' or 'airlock worker run --help'.\n");
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "poll") == 0)
		return worker_main(CMD_POLL, argc - 1, argv + 1);
	if (strcmp(argv[1], "run") == 0)
		return worker_main(CMD_RUN, argc - 1, argv + 1);
	fprintf(stderr, "airlock worker: unknown subcommand '%s' (poll or run)\n", argv[1]);
	return 2;
}
