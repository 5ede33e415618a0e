/*
 * cmd_model_stub.c - `airlock model-stub`: the scripted model served over
 * HTTP. A TEST DOUBLE for the Anthropic Messages API, never a model.
 *
 * The request -> reply logic is in agent/model_stub.c (pure); this file is
 * the wiring: options, al_http_server, per-reply delays on loop timers, and
 * a graceful drain on SIGINT/SIGTERM.
 */
#include "agent/model_stub.h"
#include "cli/cli.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/server.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pending; /* a reply waiting for its delay */

struct stub_app {
	uv_loop_t *loop;
	al_model_stub *stub;
	al_http_server *srv;
	uv_signal_t sigint, sigterm;
	struct pending *pending;
	int stopping;
};

struct pending {
	uv_timer_t timer; /* first: the close callback casts back */
	struct stub_app *app;
	al_http_req *req;
	struct al_model_stub_reply reply;
	struct pending *prev, *next;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: airlock model-stub --listen HOST:PORT --script FILE [--api-key-env VAR]\n"
		"\n"
		"TEST DOUBLE: a scripted stand-in for the Anthropic Messages API, for tests\n"
		"and demos. It runs no model. It serves POST /v1/messages (replies played\n"
		"from the script, chosen by the number of assistant turns in the request)\n"
		"and GET /healthz. The script format is in docs/model-stub.md.\n"
		"\n"
		"Options:\n"
		"  --listen HOST:PORT   address to listen on (port 0: any; the bound address\n"
		"                       is printed on stdout as 'listening on HOST:PORT')\n"
		"  --script FILE        the JSON script (steps, scenarios, faults)\n"
		"  --api-key-env VAR    require x-api-key to equal the value of $VAR\n"
		"  -h, --help           this text\n");
}

static void send_reply(al_http_req *req, const struct al_model_stub_reply *r)
{
	if (r->retry_after[0])
		al_http_resp_header(req, "retry-after", r->retry_after);
	al_http_respond(req, r->status, "application/json", r->body, r->body_len);
}

static void pending_close_cb(uv_handle_t *h)
{
	struct pending *p = (struct pending *)h;

	al_model_stub_reply_free(&p->reply);
	al_free(p);
}

/* Answers a delayed request now (timer fired, or shutting down). */
static void pending_finish(struct pending *p)
{
	struct stub_app *app = p->app;

	if (p->prev)
		p->prev->next = p->next;
	else
		app->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	send_reply(p->req, &p->reply);
	uv_close((uv_handle_t *)&p->timer, pending_close_cb);
}

static void pending_timer_cb(uv_timer_t *t)
{
	pending_finish((struct pending *)t);
}

static void handler(al_http_req *req, void *ud)
{
	struct stub_app *app = ud;
	struct al_model_stub_reply r;
	struct pending *p;
	const char *body;
	size_t len = 0;

	body = al_http_req_body(req, &len);
	if (al_model_stub_handle(app->stub, al_http_req_method(req), al_http_req_path(req),
				 al_http_req_header(req, "x-api-key"), body, len, &r) < 0) {
		static const char oom[] = "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
					  "\"message\":\"model-stub: out of memory\"}}";
		al_http_respond(req, 500, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	if (r.delay_ms == 0 || app->stopping) {
		send_reply(req, &r);
		al_model_stub_reply_free(&r);
		return;
	}
	p = al_calloc(1, sizeof(*p));
	if (p == NULL) {
		send_reply(req, &r); /* no memory to wait: answer at once */
		al_model_stub_reply_free(&r);
		return;
	}
	p->app = app;
	p->req = req;
	p->reply = r;
	p->next = app->pending;
	if (app->pending)
		app->pending->prev = p;
	app->pending = p;
	uv_timer_init(app->loop, &p->timer);
	uv_timer_start(&p->timer, pending_timer_cb, r.delay_ms, 0);
}

static void drained_cb(al_http_server *srv, void *ud)
{
	struct stub_app *app = ud;

	al_http_server_free(app->srv);
	app->srv = NULL;
	uv_close((uv_handle_t *)&app->sigint, NULL);
	uv_close((uv_handle_t *)&app->sigterm, NULL);
}

static void signal_cb(uv_signal_t *s, int signum)
{
	struct stub_app *app = s->data;

	if (app->stopping)
		return;
	app->stopping = 1;
	al_info("model-stub", "signal %d: draining", signum);
	/* Delayed replies are answered now so the drain does not wait them out. */
	while (app->pending)
		pending_finish(app->pending);
	al_http_server_drain(app->srv, drained_cb, app);
}

/* Splits "host:port" or "[v6]:port". */
static int parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hl;
	char *end;
	long v;

	if (colon == NULL || colon == s)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 2 || s[hl - 1] != ']')
			return -EINVAL;
		h = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end != '\0' || v < 0 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

int al_cmd_model_stub(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"script", required_argument, NULL, 's'},
	    {"api-key-env", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *listen_addr = NULL, *script = NULL, *key_env = NULL;
	struct al_http_server_opts so = {0};
	struct stub_app app = {0};
	uv_loop_t loop;
	char host[256], err[512];
	int c, rc = 1, loop_ok = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_addr = optarg;
			break;
		case 's':
			script = optarg;
			break;
		case 'k':
			key_env = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || listen_addr == NULL || script == NULL ||
	    parse_listen(listen_addr, host, sizeof(host), &so.port) < 0) {
		usage(stderr);
		return 2;
	}
	so.host = host;
	so.max_body_bytes = 64u * 1024 * 1024; /* whole transcripts */
	if (al_model_stub_load(script, &app.stub, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock model-stub: %s\n", err);
		rc = 2;
		goto done;
	}
	if (key_env) {
		const char *key = getenv(key_env);
		if (key == NULL || key[0] == '\0') {
			/* Names the variable, never its value. */
			fprintf(stderr, "airlock model-stub: $%s is not set\n", key_env);
			rc = 2;
			goto done;
		}
		if (al_model_stub_set_api_key(app.stub, key) < 0)
			goto done;
	}
	if (uv_loop_init(&loop) < 0)
		goto done;
	loop_ok = 1;
	app.loop = &loop;
	if (al_http_server_start(&loop, &so, handler, &app, &app.srv, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock model-stub: %s\n", err);
		goto done;
	}
	uv_signal_init(&loop, &app.sigint);
	uv_signal_init(&loop, &app.sigterm);
	app.sigint.data = app.sigterm.data = &app;
	uv_signal_start(&app.sigint, signal_cb, SIGINT);
	uv_signal_start(&app.sigterm, signal_cb, SIGTERM);
	printf("listening on %s:%d\n", host, al_http_server_port(app.srv));
	fflush(stdout);
	al_info("model-stub", "TEST DOUBLE serving %s on %s:%d", script, host,
		al_http_server_port(app.srv));
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = 0;
done:
	if (loop_ok) {
		if (app.srv)
			al_http_server_free(app.srv);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
	}
	al_model_stub_free(app.stub);
	return rc;
}
