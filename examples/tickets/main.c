/*
 * main.c - tickets-mcp: an example private MCP server, a ticket tracker on
 * SQLite, served over Streamable HTTP (mcp/http.h) or stdio (mcp/stdio.h).
 *
 *   tickets-mcp --db FILE --listen HOST:PORT [--allow-host NAME]...
 *               [--tls-cert FILE --tls-key FILE] [--log-level LEVEL]
 *   tickets-mcp --db FILE --stdio
 *
 * The endpoint is /mcp; both protocol eras (2026-07-28 stateless and
 * 2025-11-25 with sessions) are served there by the library. Logs go to
 * stderr, never stdout (in --stdio mode stdout carries only protocol
 * messages). SIGTERM or SIGINT: HTTP stops accepting, lets requests in
 * flight finish (al_http_server_drain), then the process exits 0; stdio
 * cancels what runs and exits 0. End of input on stdio exits 0 too.
 *
 * Read tickets.c for the MCP part, db.c for the store.
 */
#include "db.h"
#include "tickets.h"

#include "core/alloc.h"
#include "core/log.h"
#include "http/server.h"
#include "mcp/http.h"
#include "mcp/origin.h"
#include "mcp/stdio.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_HOSTS 16

struct app {
	uv_loop_t *loop;
	uv_signal_t sigterm, sigint;
	al_http_server *http_srv;
	al_mcp_http *http;
	al_mcp_stdio *stdio;
	int stopping;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: tickets-mcp --db FILE (--listen HOST:PORT | --stdio) [options]\n\n"
		   "An example MCP server: a ticket tracker on SQLite. Endpoint: /mcp.\n\n"
		   "Options:\n"
		   "  --db FILE            the SQLite database (created if missing; WAL mode)\n"
		   "  --listen HOST:PORT   serve Streamable HTTP (port 0: the kernel picks)\n"
		   "  --stdio              serve newline-delimited JSON-RPC on stdin/stdout\n"
		   "  --allow-host NAME    also accept this Host/Origin name (repeatable; by\n"
		   "                       default only localhost, 127.0.0.1 and [::1])\n"
		   "  --tls-cert FILE      serve HTTPS with this certificate chain (PEM)\n"
		   "  --tls-key FILE       and this key (PEM)\n"
		   "  --log-level LEVEL    debug, info (default), warn, error\n");
}

/* "127.0.0.1:8080", "[::1]:8080", "localhost:0" -> host (brackets dropped) and port. */
static int parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t n;
	char *end;
	long p;

	if (colon == NULL || colon[1] == '\0')
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
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || p < 0 || p > 65535)
		return -EINVAL;
	*port = (int)p;
	return 0;
}

static void stop(struct app *a)
{
	if (a->stopping)
		return;
	a->stopping = 1;
	uv_stop(a->loop);
}

static void drained_cb(al_http_server *srv, void *ud)
{
	al_info("tickets", "drained; exiting");
	stop(ud);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct app *a = h->data;

	al_info("tickets", "signal %d: shutting down", signum);
	if (a->http_srv && !a->stopping)
		al_http_server_drain(a->http_srv, drained_cb, a);
	else
		stop(a);
}

static void eof_cb(void *ud)
{
	al_info("tickets", "end of input; exiting");
	stop(ud);
}

static int serve_http(struct app *a, al_mcp_server *srv, const char *listen,
		      const char *const *hosts, const char *cert, const char *key)
{
	struct al_mcp_http_opts ho = {.allowed_hosts = hosts};
	struct al_http_server_opts so = {0};
	char host[256], err[256] = "";
	int port, rc;

	if (parse_listen(listen, host, sizeof(host), &port) < 0) {
		fprintf(stderr, "tickets-mcp: --listen %s: expected HOST:PORT\n", listen);
		return -EINVAL;
	}
	if ((a->http = al_mcp_http_new(srv, &ho)) == NULL)
		return -ENOMEM;
	so.host = host;
	so.port = port;
	so.tls_cert_file = cert;
	so.tls_key_file = key;
	rc = al_mcp_http_listen(a->http, a->loop, &so, "/mcp", &a->http_srv, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "tickets-mcp: listen %s: %s\n", listen, err);
		return rc;
	}
	/* Tests read the port from this line when they asked for port 0. */
	al_info("tickets", "listening on %s://%s%s%s:%d/mcp", cert ? "https" : "http",
		strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
		al_http_server_port(a->http_srv));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"listen", required_argument, NULL, 'l'},
	    {"stdio", no_argument, NULL, 's'},
	    {"allow-host", required_argument, NULL, 'a'},
	    {"tls-cert", required_argument, NULL, 'c'},
	    {"tls-key", required_argument, NULL, 'k'},
	    {"log-level", required_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db_path = NULL, *listen = NULL, *cert = NULL, *key = NULL;
	const char *hosts[MAX_HOSTS + 4] = {0};
	size_t nhosts = 0;
	struct app a = {0};
	struct tk_db *db = NULL;
	struct tk_tickets *tk = NULL;
	enum al_log_level lvl;
	int use_stdio = 0, c, status = 1;
	char err[512] = "";

	al_alloc_init();
	/* A client that vanishes mid-write is an EPIPE, not the end of the server. */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; al_mcp_localhost_names[i]; i++)
		hosts[nhosts++] = al_mcp_localhost_names[i];
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db_path = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 's':
			use_stdio = 1;
			break;
		case 'a':
			if (nhosts >= MAX_HOSTS + 3) {
				fprintf(stderr, "tickets-mcp: too many --allow-host\n");
				return 2;
			}
			hosts[nhosts++] = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'v':
			if (al_log_parse_level(optarg, &lvl) < 0) {
				fprintf(stderr, "tickets-mcp: unknown log level '%s'\n", optarg);
				return 2;
			}
			al_log_set_level(lvl);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || db_path == NULL || !!listen == use_stdio || !cert != !key) {
		usage(stderr);
		return 2;
	}
	if (tk_db_open(db_path, &db, err, sizeof(err)) < 0) {
		fprintf(stderr, "tickets-mcp: %s\n", err);
		goto done;
	}
	if (tk_tickets_new(db, &tk) < 0) {
		fprintf(stderr, "tickets-mcp: cannot set up the server\n");
		goto done;
	}
	a.loop = uv_default_loop();
	uv_signal_init(a.loop, &a.sigterm);
	uv_signal_init(a.loop, &a.sigint);
	a.sigterm.data = a.sigint.data = &a;
	uv_signal_start(&a.sigterm, signal_cb, SIGTERM);
	uv_signal_start(&a.sigint, signal_cb, SIGINT);
	if (use_stdio) {
		int rc =
		    al_mcp_stdio_serve(a.loop, tk_tickets_server(tk), 0, 1, eof_cb, &a, &a.stdio);
		if (rc < 0) {
			fprintf(stderr, "tickets-mcp: stdio: %s\n", strerror(-rc));
			goto close;
		}
		al_info("tickets", "serving on stdio, database %s", db_path);
	} else if (serve_http(&a, tk_tickets_server(tk), listen, hosts, cert, key) < 0) {
		goto close;
	}
	uv_run(a.loop, UV_RUN_DEFAULT);
	status = 0;
close:
	/* Transports first (they cancel what is left), then let their handles close. */
	if (a.stdio)
		al_mcp_stdio_free(a.stdio);
	al_http_server_free(a.http_srv);
	al_mcp_http_free(a.http);
	uv_close((uv_handle_t *)&a.sigterm, NULL);
	uv_close((uv_handle_t *)&a.sigint, NULL);
	uv_run(a.loop, UV_RUN_DEFAULT);
	uv_loop_close(a.loop);
done:
	tk_tickets_free(tk);
	tk_db_close(db);
	return status;
}
