/*
 * cmd_gateway.c - `airlock gateway --config FILE`: the MCP gateway
 * (src/gateway/, docs/GATEWAY.md).
 *
 *   airlock gateway --config FILE [--log-format text|json]
 *   airlock gateway --config FILE --check
 *
 * Exit status: 0 after a clean drain (SIGTERM, SIGINT) or a config that
 * checks, 1 runtime error, 2 usage or config error.
 */
#include "cli/cli.h"
#include "core/log.h"
#include "gateway/config.h"
#include "gateway/gateway.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: airlock gateway --config FILE [--log-format text|json] [--check]\n"
		   "\n"
		   "Runs the MCP gateway: TLS termination with your certificate, routing on\n"
		   "the Host header to private MCP servers (http(s) or stdio), tool allow and\n"
		   "deny lists, the audit log, and /healthz, /readyz, /metrics on the admin\n"
		   "listener. SIGHUP reloads the config; SIGTERM drains and exits.\n"
		   "The config file is documented in docs/GATEWAY.md.\n"
		   "\n"
		   "  --config FILE      the YAML config (required)\n"
		   "  --check            check the config and exit (0 valid, 2 not)\n"
		   "  --log-format FMT   text (default) or json\n");
}

int al_cmd_gateway(int argc, char **argv)
{
	static const struct option lopts[] = {{"config", required_argument, NULL, 'c'},
					      {"check", no_argument, NULL, 'k'},
					      {"log-format", required_argument, NULL, 'f'},
					      {"help", no_argument, NULL, 'h'},
					      {NULL, 0, NULL, 0}};
	const char *path = NULL;
	int check = 0, opt, rc = 1;
	char err[512] = "";
	enum al_log_format fmt;
	struct al_gw gw;
	uv_loop_t loop;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check = 1;
			break;
		case 'f':
			if (al_log_parse_format(optarg, &fmt) < 0) {
				fprintf(stderr, "airlock gateway: --log-format: text or json\n");
				return 2;
			}
			al_log_set_format(fmt);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (check) {
		struct al_gw_config c;
		if (al_gw_config_load_file(&c, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "airlock gateway: %s\n", err);
			return 2;
		}
		printf("%s: ok, %zu route(s)\n", path, c.nroutes);
		al_gw_config_clear(&c);
		return 0;
	}
	if (uv_loop_init(&loop) < 0) {
		fprintf(stderr, "airlock gateway: cannot create the event loop\n");
		return 1;
	}
	if (al_gw_start(&gw, &loop, path, err, sizeof(err)) < 0) {
		al_error("gateway", "%s", err);
		rc = 2;
		al_gw_free(&gw);
		uv_run(&loop, UV_RUN_DEFAULT);
		goto done;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = 0; /* the loop ends only after a drain */
	al_gw_free(&gw);
	uv_run(&loop, UV_RUN_DEFAULT);
	al_info("gateway", "stopped");
done:
	uv_loop_close(&loop);
	return rc;
}
