/*
 * admin.c - the admin listener: /healthz, /readyz, /metrics.
 *
 * On its own address (default 127.0.0.1:9090) so probes and scrapes never
 * share the public listener, its TLS certificate or its routes.
 */
#include "core/buf.h"
#include "gateway/gateway.h"
#include "http/server.h"

#include <string.h>

/* Ready: routes loaded, every stdio pool has a child up, not draining. */
static int ready(const struct al_gw *gw, al_buf *why)
{
	const struct al_gw_snap *s = gw->snap;
	int ok = 1;

	if (gw->draining) {
		al_buf_append_str(why, "draining\n");
		return 0;
	}
	if (s == NULL || s->cfg.nroutes == 0) {
		al_buf_append_str(why, "no routes\n");
		return 0;
	}
	for (size_t i = 0; i < s->cfg.nroutes; i++) {
		if (s->cfg.routes[i].kind != AL_GW_UP_STDIO)
			continue;
		if (s->pools == NULL || s->pools[i] == NULL ||
		    al_gw_stdio_pool_ready(s->pools[i]) == 0) {
			al_buf_appendf(why, "route %s: no stdio server ready\n",
				       s->cfg.routes[i].host);
			ok = 0;
		}
	}
	return ok;
}

void al_gw_admin_handle(struct al_http_req *req, void *ud)
{
	struct al_gw *gw = ud;
	const char *path = al_http_req_path(req);
	const char *method = al_http_req_method(req);
	al_buf b = {0};

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		al_http_resp_header(req, "Allow", "GET, HEAD");
		al_http_respond(req, 405, "text/plain", "method not allowed\n", 19);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		al_http_respond(req, 200, "text/plain", "ok\n", 3);
	} else if (strcmp(path, "/readyz") == 0) {
		if (ready(gw, &b)) {
			al_http_respond(req, 200, "text/plain", "ready\n", 6);
		} else {
			al_http_respond(req, 503, "text/plain", b.data ? b.data : "", b.len);
		}
	} else if (strcmp(path, "/metrics") == 0) {
		if (al_gw_metrics_render(gw->metrics, &b) < 0)
			al_http_respond(req, 500, "text/plain", "out of memory\n", 14);
		else
			al_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8",
					b.data ? b.data : "", b.len);
	} else {
		al_http_respond(req, 404, "text/plain", "not found\n", 10);
	}
	al_buf_free(&b);
}
