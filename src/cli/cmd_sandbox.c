/*
 * cmd_sandbox.c - `airlock sandbox run`: one command in a fresh sandbox;
 * `airlock sandbox mcp`: the worker's tools in a sandbox as an MCP server
 * (worker/mcp.h).
 *
 * run's exit status: the command's, 128+N when a signal ended it, 124 on
 * timeout, 125 when the sandbox itself could not be set up (the reason on
 * stderr). mcp's: 0 after SIGTERM/SIGINT (or the end of stdin with
 * --stdio), 1 when it could not start or the audit log failed (calls were
 * then refused), 2 for usage.
 */
#include "cli/cli.h"

#include "audit/log.h"
#include "audit/record.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/rand.h"
#include "http/server.h"
#include "mcp/http.h"
#include "mcp/origin.h"
#include "mcp/stdio.h"
#include "sandbox/audit.h"
#include "sandbox/egress.h"
#include "sandbox/inner.h"
#include "sandbox/sandbox.h"
#include "worker/mcp.h"
#include "worker/worker.h"

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
#include <uv.h>

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
		"sandbox could not be set up.\n\n"
		"       airlock sandbox mcp --workspace DIR (--listen HOST:PORT | --stdio) "
		"[options]\n\n"
		"Serves the tools bash, read, write, edit, glob and grep as an MCP server\n"
		"(Streamable HTTP on /mcp, or stdio): bash runs in one sandbox with a persistent\n"
		"shell, the file tools are confined to DIR. Takes --backend, --ro, --allow-host,\n"
		"--timeout (per bash call), --memory, --pids, --cpu, --audit and --allow-degraded\n"
		"as above, and:\n"
		"  --tmp MB                 size of the sandbox's /tmp\n"
		"  --http-allow-host NAME   also accept this Host/Origin name (repeatable; by\n"
		"                           default only localhost, 127.0.0.1 and [::1])\n"
		"  --tls-cert FILE          serve HTTPS with this certificate chain (PEM)\n"
		"  --tls-key FILE           and this key (PEM)\n");
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

/* ---- airlock sandbox mcp ---- */

/* "127.0.0.1:8080", "[::1]:8080" -> host (brackets dropped) and port (0: the kernel picks). */
static int parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':'), *h = s;
	unsigned long long p;
	size_t n;

	if (colon == NULL || parse_uint(colon + 1, 65535, &p) < 0)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		h = s + 1;
		n -= 2;
	}
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (int)p;
	return 0;
}

struct mcp_app {
	uv_loop_t loop;
	uv_signal_t sigterm, sigint;
	al_http_server *http_srv;
	al_mcp_http *http;
	al_mcp_stdio *stdio;
	struct al_tool_mcp *tm;
	int stopping, tools_done;
};

static void mcp_stop(struct mcp_app *a)
{
	if (a->stopping)
		return;
	a->stopping = 1;
	uv_stop(&a->loop);
}

static void mcp_drained_cb(al_http_server *srv, void *ud)
{
	mcp_stop(ud);
}

static void mcp_signal_cb(uv_signal_t *h, int signum)
{
	struct mcp_app *a = h->data;

	al_info("sandbox-mcp", "signal %d: shutting down", signum);
	/* HTTP: finish what is in flight first (up to the drain timeout; then it is cancelled). */
	if (a->http_srv && !a->stopping)
		al_http_server_drain(a->http_srv, mcp_drained_cb, a);
	else
		mcp_stop(a);
}

static void mcp_eof_cb(void *ud)
{
	mcp_stop(ud);
}

static void mcp_tools_done_cb(void *ud)
{
	struct mcp_app *a = ud;

	a->tools_done = 1;
	uv_close((uv_handle_t *)&a->sigterm, NULL);
	uv_close((uv_handle_t *)&a->sigint, NULL);
}

static int mcp(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"workspace", required_argument, NULL, 'w'},
	    {"listen", required_argument, NULL, 'l'},
	    {"stdio", no_argument, NULL, 's'},
	    {"backend", required_argument, NULL, 'b'},
	    {"ro", required_argument, NULL, 'r'},
	    {"allow-host", required_argument, NULL, 'a'},
	    {"timeout", required_argument, NULL, 't'},
	    {"memory", required_argument, NULL, 'm'},
	    {"pids", required_argument, NULL, 'p'},
	    {"cpu", required_argument, NULL, 'c'},
	    {"tmp", required_argument, NULL, 'T'},
	    {"audit", required_argument, NULL, 'A'},
	    {"allow-degraded", no_argument, NULL, 'D'},
	    {"http-allow-host", required_argument, NULL, 'H'},
	    {"tls-cert", required_argument, NULL, 'C'},
	    {"tls-key", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct al_worker_config cfg;
	struct al_audit_opts ao = {.component = "sandbox", .sync_every = AL_AUDIT_SYNC_EXPLICIT};
	al_audit_log *audit = NULL;
	struct mcp_app a = {0};
	const char *ws = NULL, *listen = NULL, *audit_path = NULL, *cert = NULL, *key = NULL;
	const char *names[MAX_LIST + 4] = {0};
	size_t nnames = 0;
	char wsr[PATH_MAX], err[1024] = "", host[256];
	int use_stdio = 0, c, port = 0, status = 2, loop_ok = 0, rc;

	al_worker_config_init(&cfg);
	for (size_t i = 0; al_mcp_localhost_names[i]; i++)
		names[nnames++] = al_mcp_localhost_names[i];
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		/* The sandbox options go through the worker's own parser and range checks. */
		const char *name = c == 'b'   ? "backend"
				   : c == 'a' ? "allow_hosts"
				   : c == 't' ? "timeout"
				   : c == 'm' ? "memory_mb"
				   : c == 'p' ? "pids"
				   : c == 'c' ? "cpu_pct"
				   : c == 'T' ? "tmp_mb"
				   : c == 'D' ? "allow_degraded"
					      : NULL;
		char rp[PATH_MAX];

		if (name) {
			if (al_worker_config_set(&cfg, name, c == 'D' ? "true" : optarg, err,
						 sizeof(err)) < 0) {
				fprintf(stderr, "airlock sandbox mcp: %s\n", err);
				goto done;
			}
			continue;
		}
		switch (c) {
		case 'w':
			ws = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 's':
			use_stdio = 1;
			break;
		case 'r':
			if (realpath(optarg, rp) == NULL) {
				fprintf(stderr, "airlock sandbox mcp: --ro %s: %s\n", optarg,
					strerror(errno));
				goto done;
			}
			if (al_worker_config_set(&cfg, "ro_paths", rp, err, sizeof(err)) < 0) {
				fprintf(stderr, "airlock sandbox mcp: %s\n", err);
				goto done;
			}
			break;
		case 'A':
			audit_path = optarg;
			break;
		case 'H':
			if (nnames >= MAX_LIST) {
				fprintf(stderr,
					"airlock sandbox mcp: too many --http-allow-host\n");
				goto done;
			}
			names[nnames++] = optarg;
			break;
		case 'C':
			cert = optarg;
			break;
		case 'K':
			key = optarg;
			break;
		case 'h':
			usage(stdout);
			status = 0;
			goto done;
		default:
			usage(stderr);
			goto done;
		}
	}
	if (optind < argc || ws == NULL || !!listen == use_stdio || !cert != !key ||
	    (listen && parse_listen(listen, host, sizeof(host), &port) < 0)) {
		fprintf(stderr, "airlock sandbox mcp: needs --workspace DIR and one of --listen "
				"HOST:PORT or --stdio (and --tls-cert with --tls-key)\n");
		goto done;
	}
	status = 1;
	if (realpath(ws, wsr) == NULL) {
		fprintf(stderr, "airlock sandbox mcp: workspace %s: %s\n", ws, strerror(errno));
		goto done;
	}
	{
		/* As root the sandbox runs as nobody (65534): say so when it cannot write. */
		struct stat st;
		if (geteuid() == 0 && stat(wsr, &st) == 0 && st.st_uid != 65534 &&
		    !(st.st_mode & S_IWOTH) && !(st.st_gid == 65534 && (st.st_mode & S_IWGRP)))
			fprintf(
			    stderr,
			    "airlock sandbox mcp: note: run as root, bash runs as uid 65534 "
			    "(nobody); %s is not writable by it (chown 65534 to allow writes)\n",
			    wsr);
	}
	/* Opened before any tool exists: nothing runs that is not on record. */
	if (audit_path && al_audit_open(audit_path, &ao, &audit, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock sandbox mcp: audit: %s; not starting\n", err);
		goto done;
	}
	if ((rc = uv_loop_init(&a.loop)) < 0) {
		fprintf(stderr, "airlock sandbox mcp: %s\n", uv_strerror(rc));
		goto done;
	}
	loop_ok = 1;
	if (al_tool_mcp_new(&a.loop, &cfg, wsr, audit, &a.tm, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock sandbox mcp: %s\n", err);
		goto done;
	}
	uv_signal_init(&a.loop, &a.sigterm);
	uv_signal_init(&a.loop, &a.sigint);
	a.sigterm.data = a.sigint.data = &a;
	uv_signal_start(&a.sigterm, mcp_signal_cb, SIGTERM);
	uv_signal_start(&a.sigint, mcp_signal_cb, SIGINT);
	if (use_stdio) {
		rc = al_mcp_stdio_serve(&a.loop, al_tool_mcp_server(a.tm), 0, 1, mcp_eof_cb, &a,
					&a.stdio);
		if (rc < 0)
			snprintf(err, sizeof(err), "stdio: %s", strerror(-rc));
	} else {
		struct al_mcp_http_opts ho = {.allowed_hosts = names};
		struct al_http_server_opts so = {0};
		so.host = host;
		so.port = port;
		so.tls_cert_file = cert;
		so.tls_key_file = key;
		rc = (a.http = al_mcp_http_new(al_tool_mcp_server(a.tm), &ho)) ? 0 : -ENOMEM;
		if (rc == 0)
			rc = al_mcp_http_listen(a.http, &a.loop, &so, "/mcp", &a.http_srv, err,
						sizeof(err));
		else
			snprintf(err, sizeof(err), "out of memory");
		if (rc == 0)
			/* Tests read the port from this line when they asked for port 0. */
			al_info("sandbox-mcp", "listening on %s://%s%s%s:%d/mcp",
				cert ? "https" : "http", strchr(host, ':') ? "[" : "", host,
				strchr(host, ':') ? "]" : "", al_http_server_port(a.http_srv));
	}
	if (rc < 0) {
		fprintf(stderr, "airlock sandbox mcp: %s\n", err);
	} else {
		al_info("sandbox-mcp", "workspace %s", wsr);
		uv_run(&a.loop, UV_RUN_DEFAULT);
		status = 0;
	}
	/* The transports cancel their calls; then the tools stop (a running bash is killed). */
	if (a.stdio)
		al_mcp_stdio_free(a.stdio);
	al_http_server_free(a.http_srv);
	al_mcp_http_free(a.http);
	al_tool_mcp_shutdown(a.tm, mcp_tools_done_cb, &a);
	while (!a.tools_done && uv_run(&a.loop, UV_RUN_ONCE))
		;
	uv_run(&a.loop, UV_RUN_DEFAULT);
	if (al_tool_mcp_audit_failed(a.tm)) {
		fprintf(stderr, "airlock sandbox mcp: the audit log failed: calls were refused\n");
		status = 1;
	}
done:
	al_tool_mcp_free(a.tm);
	if (loop_ok && uv_loop_close(&a.loop) < 0)
		al_warn("sandbox-mcp", "the event loop still had handles at exit");
	if (audit && al_audit_close(audit) < 0) {
		fprintf(stderr, "airlock sandbox mcp: audit: closing the log failed\n");
		status = 1;
	}
	al_worker_config_clear(&cfg);
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
	if (strcmp(argv[1], "mcp") == 0)
		return mcp(argc - 1, argv + 1);
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
