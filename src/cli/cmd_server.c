/*
 * cmd_server.c - `airlock server`: run the control plane.
 *
 *   airlock server --listen HOST:PORT --data DIR [--tls-cert F --tls-key F]
 *                  [--model-url URL] [--log-format text|json] [--log-level L]
 *                  [--mcp-ca NAME_OR_HOST=FILE]... [--mcp-token-env NAME_OR_HOST=VAR]...
 *
 * SIGTERM or SIGINT drains (stop accepting, finish in-flight requests, end
 * streams) and exits 0. The model API key is read from ANTHROPIC_API_KEY in
 * the environment only, never from argv, where any local user could read it.
 */
#include "api/api.h"
#include "cli/cli.h"
#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: airlock server --listen HOST:PORT --data DIR [options]\n\n"
	    "Runs the control plane: the Claude Managed Agents API and the agent loop.\n\n"
	    "Options:\n"
	    "  --listen HOST:PORT   address to listen on (e.g. 127.0.0.1:8080, [::1]:8443)\n"
	    "  --data DIR           data directory (created 0700; holds the store and, after\n"
	    "                       the first start, admin.key)\n"
	    "  --tls-cert FILE      PEM certificate chain (serve HTTPS; needs --tls-key)\n"
	    "  --tls-key FILE       PEM private key\n"
	    "  --model-url URL      base URL of the Messages API the agent loop calls\n"
	    "                       (default https://api.anthropic.com when\n"
	    "                       ANTHROPIC_API_KEY is set)\n"
	    "  --max-connections N  concurrent connections before new ones wait in the\n"
	    "                       kernel's backlog (default 1024)\n"
	    "  --log-format FMT     text (default) or json\n"
	    "  --log-level LEVEL    debug, info (default), warn or error\n"
	    "  --agent-cache-mb N   memory for the agent loop's parsed event logs, least\n"
	    "                       recently used sessions evicted first (default 64)\n"
	    "  --mcp-ca KEY=FILE    trust only the CAs in FILE (PEM) for the TLS of the MCP\n"
	    "                       server an agent names KEY (mcp_servers[].name) or whose\n"
	    "                       URL has host KEY; repeatable\n"
	    "  --mcp-token-env KEY=VAR  send the bearer token in $VAR to that MCP server\n"
	    "  --help               show this help\n\n"
	    "Environment:\n"
	    "  ANTHROPIC_API_KEY    key for the model API (never pass it on the command line)\n");
}

/*
 * Adds KEY=VALUE to the per-MCP-server settings: field 0 the CA file, 1 the
 * token variable. The strings point into argv. 0, -EINVAL or -ENOMEM.
 */
static int add_mcp_setting(struct al_mcp_server_cfg **arr, size_t *n, char *arg, int field)
{
	char *eq = strchr(arg, '=');
	struct al_mcp_server_cfg *a, *e = NULL;

	if (eq == NULL || eq == arg || eq[1] == '\0')
		return -EINVAL;
	*eq = '\0';
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*arr)[i].key, arg) == 0)
			e = &(*arr)[i];
	if (e == NULL) {
		a = al_realloc(*arr, (*n + 1) * sizeof(*a));
		if (a == NULL)
			return -ENOMEM;
		*arr = a;
		e = &a[(*n)++];
		memset(e, 0, sizeof(*e));
		e->key = arg;
	}
	if (field == 0)
		e->ca_file = eq + 1;
	else
		e->token_env = eq + 1;
	return 0;
}

/* Splits HOST:PORT (HOST may be [v6]) into host (copied into buf) and port. */
static int parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon;
	const char *h = s;
	size_t hl;
	char *end;
	long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
		return -EINVAL;
	*port = (int)p;
	return 0;
}

struct server_state {
	uv_loop_t *loop;
	al_api *api;
	uv_signal_t sigterm, sigint;
	int draining;
};

static void drained_cb(al_api *api, void *ud)
{
	struct server_state *st = ud;

	uv_close((uv_handle_t *)&st->sigterm, NULL);
	uv_close((uv_handle_t *)&st->sigint, NULL);
	al_api_free(st->api);
	st->api = NULL;
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct server_state *st = h->data;

	if (st->draining) {
		al_warn("server", "second signal: exiting without waiting");
		exit(1);
	}
	st->draining = 1;
	al_info("server", "received %s, draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	al_api_drain(st->api, drained_cb, st);
}

/* The command; *mcp (the --mcp-* settings) is freed by the caller on every path. */
static int server_main(int argc, char **argv, struct al_mcp_server_cfg **mcp, size_t *nmcp)
{
	struct al_api_config cfg = {0};
	struct server_state st = {0};
	char host[256], err[512];
	const char *listen = NULL, *key;
	int rc;

	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"data", required_argument, NULL, 'd'},
	    {"tls-cert", required_argument, NULL, 'c'},
	    {"tls-key", required_argument, NULL, 'k'},
	    {"model-url", required_argument, NULL, 'm'},
	    {"max-connections", required_argument, NULL, 'n'},
	    {"agent-cache-mb", required_argument, NULL, 'a'},
	    {"log-format", required_argument, NULL, 'f'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"mcp-ca", required_argument, NULL, 'C'},
	    {"mcp-token-env", required_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen = optarg;
			break;
		case 'd':
			cfg.data_dir = optarg;
			break;
		case 'c':
			cfg.tls_cert_file = optarg;
			break;
		case 'k':
			cfg.tls_key_file = optarg;
			break;
		case 'm':
			cfg.model_url = optarg;
			break;
		case 'n': {
			char *end = NULL;
			long n = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || n < 1 || n > 1000000) {
				fprintf(stderr,
					"airlock server: --max-connections must be 1..1000000\n");
				return 2;
			}
			cfg.max_connections = (size_t)n;
			break;
		}
		case 'a': {
			char *end = NULL;
			long mb = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || mb < 1 || mb > 1048576) {
				fprintf(stderr,
					"airlock server: --agent-cache-mb must be 1..1048576\n");
				return 2;
			}
			cfg.agent_cache_bytes = (size_t)mb << 20;
			break;
		}
		case 'f': {
			enum al_log_format f;
			if (al_log_parse_format(optarg, &f) < 0) {
				fprintf(stderr,
					"airlock server: --log-format must be text or json\n");
				return 2;
			}
			al_log_set_format(f);
			break;
		}
		case 'L': {
			enum al_log_level l;
			if (al_log_parse_level(optarg, &l) < 0) {
				fprintf(stderr, "airlock server: --log-level must be debug, info, "
						"warn or error\n");
				return 2;
			}
			al_log_set_level(l);
			break;
		}
		case 'C':
		case 'T':
			if (add_mcp_setting(mcp, nmcp, optarg, opt == 'T') < 0) {
				fprintf(stderr, "airlock server: --%s must be KEY=VALUE\n",
					opt == 'C' ? "mcp-ca" : "mcp-token-env");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (optopt != 0)
				fprintf(stderr, "airlock server: %s needs a value\n\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "airlock server: unknown option %s\n\n",
					argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "airlock server: unexpected argument %s\n\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (listen == NULL || cfg.data_dir == NULL) {
		fprintf(stderr, "airlock server: --listen and --data are required\n\n");
		usage(stderr);
		return 2;
	}
	if (parse_listen(listen, host, sizeof(host), &cfg.listen_port) < 0) {
		fprintf(stderr, "airlock server: --listen must be HOST:PORT\n");
		return 2;
	}
	if ((cfg.tls_cert_file == NULL) != (cfg.tls_key_file == NULL)) {
		fprintf(stderr, "airlock server: --tls-cert and --tls-key go together\n");
		return 2;
	}
	cfg.listen_host = host;
	/* A CA file named but unreadable fails now, not at a session's first call. */
	for (size_t i = 0; i < *nmcp; i++) {
		if ((*mcp)[i].ca_file != NULL && access((*mcp)[i].ca_file, R_OK) != 0) {
			fprintf(stderr, "airlock server: --mcp-ca %s: cannot read %s: %s\n",
				(*mcp)[i].key, (*mcp)[i].ca_file, strerror(errno));
			return 2;
		}
	}
	cfg.mcp_servers = *mcp;
	cfg.n_mcp_servers = *nmcp;
	key = getenv("ANTHROPIC_API_KEY");
	/*
	 * With a model key but no --model-url the loop talks to the hosted
	 * Messages API. With neither there is no model: turns end at once with
	 * a session.error saying so, rather than calling out unasked.
	 */
	if (cfg.model_url == NULL && key != NULL && key[0] != '\0')
		cfg.model_url = "https://api.anthropic.com";
	al_info("server", "model API key %s; model URL %s",
		key && key[0] ? "present in the environment" : "not set (ANTHROPIC_API_KEY)",
		cfg.model_url ? cfg.model_url : "none (turns fail until --model-url is given)");
	/*
	 * The store holds transcripts (customer data): everything the server
	 * creates (database, WAL, admin.key) is readable by its user only.
	 */
	umask(077);
	st.loop = uv_default_loop();
	rc = al_api_start(st.loop, &cfg, &st.api, err, sizeof(err));
	if (rc < 0) {
		al_error("server", "cannot start: %s", err);
		uv_run(st.loop, UV_RUN_DEFAULT); /* let handles opened so far close */
		uv_loop_close(st.loop);
		return 1;
	}
	uv_signal_init(st.loop, &st.sigterm);
	uv_signal_init(st.loop, &st.sigint);
	st.sigterm.data = st.sigint.data = &st;
	uv_signal_start(&st.sigterm, signal_cb, SIGTERM);
	uv_signal_start(&st.sigint, signal_cb, SIGINT);
	uv_run(st.loop, UV_RUN_DEFAULT);
	if (st.api != NULL)
		al_api_free(st.api);
	uv_run(st.loop, UV_RUN_DEFAULT);
	uv_loop_close(st.loop);
	al_info("server", "stopped");
	return 0;
}

int al_cmd_server(int argc, char **argv)
{
	struct al_mcp_server_cfg *mcp = NULL;
	size_t nmcp = 0;
	int rc = server_main(argc, argv, &mcp, &nmcp);

	al_free(mcp);
	return rc;
}
