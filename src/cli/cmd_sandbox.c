/*
 * cmd_sandbox.c - `airlock sandbox run`: one command in a fresh sandbox.
 *
 * Exit status: the command's, 128+N when a signal ended it, 124 on timeout,
 * 125 when the sandbox itself could not be set up (the reason on stderr).
 */
#include "cli/cli.h"

#include "audit/log.h"
#include "audit/record.h"
#include "core/alloc.h"
#include "core/rand.h"
#include "sandbox/audit.h"
#include "sandbox/egress.h"
#include "sandbox/inner.h"
#include "sandbox/sandbox.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_SETUP 125
#define MAX_LIST   64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: airlock sandbox run [options] -- CMD [ARG...]\n\n"
		"Runs CMD in a fresh sandbox: its own user, mount, pid, network (loopback only),\n"
		"ipc, uts and cgroup namespaces; read-only system directories; the workspace\n"
		"read-write; nothing else of the host.\n\n"
		"Options:\n"
		"  --backend native|bwrap   isolation backend (default native)\n"
		"  --workspace DIR          read-write working directory, same path inside "
		"(default .)\n"
		"  --ro PATH                also bind PATH read-only (repeatable)\n"
		"  --allow-host HOST[:PORT] egress allowlist entry (repeatable)\n"
		"  --timeout SEC            wall-clock limit (default 120; 0 = none)\n"
		"  --memory MB              memory limit (default 1024)\n"
		"  --pids N                 task limit (default 256)\n"
		"  --cpu PCT                CPU quota in percent of one CPU (default none)\n"
		"  --output-limit BYTES     bytes kept per stream, head and tail (default 1 MiB)\n"
		"  --env K=V                environment entry (repeatable; nothing is inherited)\n"
		"  --audit FILE             append the audit trail to FILE\n"
		"  --allow-degraded         run even when seccomp or Landlock is unavailable\n"
		"  --json                   print the result as a JSON object on stdout\n\n"
		"Exit status: the command's; 128+N for signal N; 124 on timeout; 125 when the\n"
		"sandbox could not be set up.\n");
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static void write_stream(FILE *f, const struct al_sandbox_stream *s)
{
	fwrite(s->head, 1, s->head_len, f);
	if (s->truncated) {
		fprintf(f, "\n[airlock: %llu bytes omitted]\n",
			s->total - (unsigned long long)(s->head_len + s->tail_len));
		fwrite(s->tail, 1, s->tail_len, f);
	}
	fflush(f);
}

static json_t *stream_json(const struct al_sandbox_stream *s)
{
	/* json_stringn refuses invalid UTF-8: such output is null here (the hash still covers it).
	 */
	return json_pack("{s:o?, s:o?, s:I, s:b, s:s}", "head", json_stringn(s->head, s->head_len),
			 "tail", s->tail ? json_stringn(s->tail, s->tail_len) : json_null(),
			 "total", (json_int_t)s->total, "truncated", s->truncated, "sha256",
			 s->sha256);
}

static double tv_ms(struct timeval tv)
{
	return (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
}

static int print_json(const struct al_sandbox_result *r)
{
	json_t *o = json_pack(
	    "{s:i, s:i, s:b, s:b, s:i, s:o, s:o, s:{s:f, s:f, s:i, s:i, s:i}, s:{s:f, s:f}, s:s, "
	    "s:i, s:b, s:s}",
	    "exit_code", r->exit_code, "signal", r->signal, "timed_out", r->timed_out, "truncated",
	    r->truncated, "status", al_sandbox_result_status(r), "stdout", stream_json(&r->out),
	    "stderr", stream_json(&r->err), "rusage", "utime_ms", tv_ms(r->rusage.ru_utime),
	    "stime_ms", tv_ms(r->rusage.ru_stime), "maxrss_kb", (int)r->rusage.ru_maxrss, "minflt",
	    (int)r->rusage.ru_minflt, "majflt", (int)r->rusage.ru_majflt, "durations_ms", "setup",
	    r->setup_ms, "run", r->run_ms, "backend", r->backend, "landlock_abi", r->landlock_abi,
	    "seccomp", r->seccomp, "limits", al_limits_mode_name(r->limits));
	if (o == NULL)
		return -ENOMEM;
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return -ENOMEM;
	printf("%s\n", s);
	al_free(s); /* jansson allocates through al_malloc (al_alloc_init) */
	return 0;
}

/* What the exit record needs from the launch. */
struct audit {
	al_audit_log *log;
	struct al_audit_ctx ctx;
	char id[AL_ID_MAX];
	char features[160];
	const char *const *argv;
	const char *cwd;
	const char *const *env;
	int net_failures;
};

/* Opened before the sandbox exists, so every egress decision has a log to go to. */
static int audit_open(const char *path, struct audit *au, char *err, size_t errlen)
{
	struct al_audit_opts o = {0};
	int rc;

	o.component = "sandbox";
	if ((rc = al_audit_open(path, &o, &au->log, err, errlen)) < 0)
		return rc;
	if (al_id_new("sbx", au->id, sizeof(au->id)) < 0)
		snprintf(au->id, sizeof(au->id), "sbx_unknown");
	au->ctx.sandbox_id = au->id;
	return 0;
}

/*
 * Egress decisions, on the proxy's thread (al_audit_write is thread-safe).
 * A failed write cannot un-make a decision already taken; it is counted and
 * turns the run's status into 125.
 */
static void egress_cb(const struct al_egress_decision *d, void *data)
{
	struct audit *au = data;
	json_t *rec;

	if (au->log == NULL)
		return;
	rec = al_sandbox_audit_net(&au->ctx, d);
	if (rec == NULL || al_audit_write(au->log, rec) < 0)
		__atomic_add_fetch(&au->net_failures, 1, __ATOMIC_RELAXED);
	json_decref(rec);
}

static int audit_launch(const struct al_sandbox *sb, const char *const *argv, struct audit *au,
			char *err, size_t errlen)
{
	struct al_audit_proc pr = {0};
	json_t *rec = NULL;
	int rc;

	al_sandbox_audit_features(sb, au->features, sizeof(au->features));
	au->ctx.sandbox_id = au->id;
	au->ctx.features = au->features;
	au->argv = argv;
	au->cwd = sb->workspace;
	au->env = sb->policy.env;
	pr.argv = argv;
	pr.cwd = sb->workspace;
	pr.env = sb->policy.env; /* names only are recorded */
	rec = al_audit_rec_process_launch(&au->ctx, &pr);
	rc = rec ? al_audit_write(au->log, rec) : -ENOMEM;
	json_decref(rec);
	if (rc < 0)
		snprintf(err, errlen, "cannot write the launch record: %s", strerror(-rc));
	return rc;
}

static int audit_exit(struct audit *au, const struct al_sandbox_result *r)
{
	struct al_audit_proc pr = {0};
	json_t *rec;
	int rc;

	pr.argv = au->argv;
	pr.cwd = au->cwd;
	pr.env = au->env;
	rec = al_sandbox_audit_exit(&au->ctx, &pr, r);
	rc = rec ? al_audit_write(au->log, rec) : -ENOMEM;
	json_decref(rec);
	return rc;
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
	al_sandbox_cancel_all();
}

static int run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"backend", required_argument, NULL, 'b'},
	    {"workspace", required_argument, NULL, 'w'},
	    {"ro", required_argument, NULL, 'r'},
	    {"allow-host", required_argument, NULL, 'a'},
	    {"timeout", required_argument, NULL, 't'},
	    {"memory", required_argument, NULL, 'm'},
	    {"pids", required_argument, NULL, 'p'},
	    {"cpu", required_argument, NULL, 'c'},
	    {"output-limit", required_argument, NULL, 'o'},
	    {"env", required_argument, NULL, 'e'},
	    {"audit", required_argument, NULL, 'A'},
	    {"allow-degraded", no_argument, NULL, 'D'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct al_sandbox_backend_ops *ops = &al_sandbox_native_ops;
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	struct al_sandbox_result res;
	char *ro[MAX_LIST], *hosts[MAX_LIST], *env[MAX_LIST + 2], *ws = NULL;
	size_t nro = 0, nhosts = 0, nenv = 0;
	const char *audit = NULL;
	struct audit au = {0};
	char err[1024] = "";
	int json = 0, c, status = EXIT_SETUP;
	unsigned long long v;

	memset(&res, 0, sizeof(res));
	al_sandbox_policy_init(&p);
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if ((ops = al_sandbox_backend_find(optarg)) == NULL) {
				fprintf(stderr, "airlock sandbox: unknown backend '%s'\n", optarg);
				status = 2;
				goto done;
			}
			break;
		case 'w':
			al_free(ws);
			ws = al_strdup(optarg);
			break;
		case 'r':
		case 'a':
		case 'e': {
			size_t *n = c == 'r' ? &nro : c == 'a' ? &nhosts : &nenv;
			char **list = c == 'r' ? ro : c == 'a' ? hosts : env;
			if (*n >= MAX_LIST) {
				fprintf(stderr, "airlock sandbox: too many --%s\n",
					c == 'r'   ? "ro"
					: c == 'a' ? "allow-host"
						   : "env");
				status = 2;
				goto done;
			}
			if (c == 'r') {
				char rp[PATH_MAX];
				if (realpath(optarg, rp) == NULL) {
					fprintf(stderr, "airlock sandbox: --ro %s: %s\n", optarg,
						strerror(errno));
					goto done;
				}
				list[(*n)++] = al_strdup(rp);
			} else {
				list[(*n)++] = al_strdup(optarg);
			}
			break;
		}
		case 't':
		case 'm':
		case 'p':
		case 'c':
		case 'o':
			if (parse_uint(optarg, c == 'o' ? (1ull << 32) : 1000000000ull, &v) < 0) {
				fprintf(stderr, "airlock sandbox: bad number '%s'\n", optarg);
				status = 2;
				goto done;
			}
			if (c == 't')
				p.timeout_ms =
				    (unsigned)(v * 1000 > 4000000000ull ? 4000000000ull : v * 1000);
			else if (c == 'm')
				p.memory_mb = (unsigned)v;
			else if (c == 'p')
				p.pids = (unsigned)v;
			else if (c == 'c')
				p.cpu_pct = (unsigned)v;
			else
				p.output_limit = (size_t)v;
			break;
		case 'A':
			audit = optarg;
			break;
		case 'D':
			p.flags |= AL_SANDBOX_ALLOW_DEGRADED;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			status = 0;
			goto done;
		default:
			usage(stderr);
			status = 2;
			goto done;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		status = 2;
		goto done;
	}
	for (size_t i = 0; i < nro + nhosts + nenv; i++)
		if ((i < nro		? ro[i]
		     : i < nro + nhosts ? hosts[i - nro]
					: env[i - nro - nhosts]) == NULL) {
			fprintf(stderr, "airlock sandbox: out of memory\n");
			goto done;
		}
	if (audit && audit_open(audit, &au, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock sandbox: audit: %s; not running\n", err);
		goto done;
	}
	{
		char rp[PATH_MAX];
		if (realpath(ws ? ws : ".", rp) == NULL) {
			fprintf(stderr, "airlock sandbox: workspace %s: %s\n", ws ? ws : ".",
				strerror(errno));
			goto done;
		}
		al_free(ws);
		ws = al_strdup(rp);
		if (ws == NULL)
			goto done;
	}
	/* Defaults a command needs; --env entries override (the later entry wins in execve). */
	int has_path = 0, has_home = 0;
	for (size_t i = 0; i < nenv; i++) {
		has_path |= strncmp(env[i], "PATH=", 5) == 0;
		has_home |= strncmp(env[i], "HOME=", 5) == 0;
	}
	if (!has_path)
		env[nenv++] = al_strdup("PATH=/usr/local/bin:/usr/bin:/bin");
	if (!has_home)
		env[nenv++] = al_strdup("HOME=/tmp");
	for (size_t i = 0; i < nenv; i++)
		if (env[i] == NULL) {
			fprintf(stderr, "airlock sandbox: out of memory\n");
			goto done;
		}
	{
		/* As root the sandbox runs as nobody (65534): say so when it cannot write. */
		struct stat st;
		if (geteuid() == 0 && stat(ws, &st) == 0 && st.st_uid != 65534 &&
		    !(st.st_mode & S_IWOTH) && !(st.st_gid == 65534 && (st.st_mode & S_IWGRP)))
			fprintf(stderr,
				"airlock sandbox: note: run as root, the sandbox is uid 65534 "
				"(nobody); "
				"%s is not writable by it (chown 65534 to allow writes)\n",
				ws);
	}
	p.workspace = ws;
	p.ro_paths = (const char *const *)ro;
	p.n_ro = nro;
	p.env = (const char *const *)env;
	p.n_env = nenv;
	p.egress_allow = (const char *const *)hosts;
	p.n_egress = nhosts;
	p.egress_cb = egress_cb;
	p.egress_cb_data = &au;
	if (al_sandbox_new(ops, &p, &sb, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock sandbox: %s\n", err);
		goto done;
	}
	if (!sb->seccomp || !sb->landlock_abi)
		fprintf(stderr,
			"airlock sandbox: warning: degraded mode: seccomp %s, Landlock %s\n",
			sb->seccomp ? "on" : "OFF", sb->landlock_abi ? "on" : "OFF");
	/* If the launch record cannot be written, the command does not run. */
	if (audit &&
	    audit_launch(sb, (const char *const *)argv + optind, &au, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock sandbox: audit: %s; not running\n", err);
		goto done;
	}
	{
		/* Interrupted: kill the command tree and tear down (cgroups, sockets) properly. */
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	if (al_sandbox_exec(sb, (const char *const *)argv + optind, NULL, &res, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "airlock sandbox: %s\n", err);
		goto done;
	}
	res.setup_ms = sb->setup_ms;
	status = al_sandbox_result_status(&res);
	if (got_signal)
		status = 128 + got_signal;
	/* The proxy thread is joined here: no decision callback runs after this. */
	al_sandbox_egress_stop(sb);
	if (au.log && (audit_exit(&au, &res) < 0 || au.net_failures)) {
		fprintf(stderr, "airlock sandbox: audit: cannot write the exit record\n");
		status = EXIT_SETUP;
	}
	if (json) {
		if (print_json(&res) < 0) {
			fprintf(stderr, "airlock sandbox: out of memory\n");
			status = EXIT_SETUP;
		}
	} else {
		write_stream(stdout, &res.out);
		write_stream(stderr, &res.err);
		if (res.timed_out)
			fprintf(stderr, "airlock sandbox: timed out after %u s; killed\n",
				p.timeout_ms / 1000);
	}
done:
	if (au.log && al_audit_close(au.log) < 0 && status != EXIT_SETUP) {
		fprintf(stderr, "airlock sandbox: audit: closing the log failed\n");
		status = EXIT_SETUP;
	}
	al_sandbox_free(sb);
	al_sandbox_result_clear(&res);
	for (size_t i = 0; i < nro; i++)
		al_free(ro[i]);
	for (size_t i = 0; i < nhosts; i++)
		al_free(hosts[i]);
	for (size_t i = 0; i < nenv; i++)
		al_free_secret_str(env[i]);
	al_free(ws);
	return status;
}

int al_cmd_sandbox(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "run") == 0)
		return run(argc - 1, argv + 1);
	/*
	 * Hidden, not in usage(): the bwrap backend's helper (sandbox/inner.h).
	 * Inside a bwrap sandbox a constructor in inner.c runs it before main;
	 * reaching it here means the marker is missing, and it refuses.
	 */
	if (strcmp(argv[1], "inner") == 0)
		return al_sandbox_inner_main(argc - 1, argv + 1);
	fprintf(stderr, "airlock sandbox: unknown subcommand '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
