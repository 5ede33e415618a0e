/*
 * gateway.c - the gateway's lifetime: start-up, SIGHUP reload with
 * refcounted snapshots, SIGTERM drain.
 */
#include "gateway/gateway.h"

#include "audit/log.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/server.h"
#include "net/http_client.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct al_gw_snap *al_gw_snap_ref(struct al_gw_snap *s)
{
	if (s)
		s->refs++;
	return s;
}

static void snap_free(struct al_gw_snap *s)
{
	for (size_t i = 0; s->pools && i < s->cfg.nroutes; i++)
		al_gw_stdio_pool_free(s->pools[i]);
	al_free(s->pools);
	al_http_client_free(s->client);
	al_gw_config_clear(&s->cfg);
	al_free(s);
}

static void reap(struct al_gw *gw)
{
	while (gw->dead) {
		struct al_gw_snap *s = gw->dead;
		gw->dead = s->dead_next;
		snap_free(s);
	}
}

static void reap_cb(uv_timer_t *t)
{
	reap(t->data);
}

void al_gw_snap_unref(struct al_gw_snap *s)
{
	if (s == NULL || --s->refs > 0)
		return;
	if (s->gw == NULL || s->gw->stopping) {
		/* Never in force, or the loop is winding down: no client callback runs. */
		snap_free(s);
		return;
	}
	s->dead_next = s->gw->dead;
	s->gw->dead = s;
	uv_timer_start(&s->gw->reap_timer, reap_cb, 0, 0);
}

/* Loads a config and starts its stdio pools: a snapshot with one reference. */
static int snap_new(struct al_gw *gw, struct al_gw_snap **out, char *err, size_t errlen)
{
	struct al_gw_snap *s = al_calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->refs = 1;
	if ((rc = al_gw_config_load_file(&s->cfg, gw->config_path, err, errlen)) < 0)
		goto fail;
	if ((rc = al_http_client_new(gw->loop, &s->client)) < 0) {
		snprintf(err, errlen, "http client: %s", strerror(-rc));
		goto fail;
	}
	if (s->cfg.upstream_ca_file && access(s->cfg.upstream_ca_file, R_OK) < 0) {
		rc = -errno;
		snprintf(err, errlen, "upstream.tls.ca_file %s: %s", s->cfg.upstream_ca_file,
			 strerror(-rc));
		goto fail;
	}
	rc = -ENOMEM;
	if ((s->pools = al_calloc(s->cfg.nroutes, sizeof(*s->pools))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < s->cfg.nroutes; i++) {
		const struct al_gw_route *r = &s->cfg.routes[i];
		struct al_gw_stdio_opts o = {
		    .route = r->host,
		    .argv = (const char *const *)r->argv,
		    .env = (const char *const *)r->env,
		    .cwd = r->cwd,
		    .size = r->pool_size,
		    .request_timeout_ms = r->timeout_ms,
		};
		char perr[256] = "";
		if (r->kind != AL_GW_UP_STDIO)
			continue;
		if ((rc = al_gw_stdio_pool_new(gw->loop, &o, &s->pools[i], perr, sizeof(perr))) <
		    0) {
			snprintf(err, errlen, "route %s: stdio server %s: %s", r->host, r->argv[0],
				 perr[0] ? perr : strerror(-rc));
			goto fail;
		}
	}
	s->gw = gw;
	*out = s;
	return 0;
fail:
	al_gw_snap_unref(s);
	return rc;
}

/* Start-up settings a reload cannot change: say so instead of ignoring it. */
static void warn_restart_only(const struct al_gw_config *o, const struct al_gw_config *n)
{
	static const char msg[] = "reload: %s changed: it applies after a restart";
#define DIFF(a, b) (((a) == NULL) != ((b) == NULL) || ((a) && strcmp((a), (b)) != 0))
	if (DIFF(o->listen_host, n->listen_host) || o->listen_port != n->listen_port)
		al_warn("gateway", msg, "listen_addr");
	if (DIFF(o->tls_cert_file, n->tls_cert_file) || DIFF(o->tls_key_file, n->tls_key_file))
		al_warn("gateway", msg, "tls");
	if (DIFF(o->admin_host, n->admin_host) || o->admin_port != n->admin_port)
		al_warn("gateway", msg, "airlock.admin_addr");
	if (DIFF(o->audit_path, n->audit_path) || DIFF(o->audit_key, n->audit_key))
		al_warn("gateway", msg, "airlock.audit");
	if (o->max_body_bytes != n->max_body_bytes)
		al_warn("gateway", msg, "airlock.max_body");
#undef DIFF
}

int al_gw_reload(struct al_gw *gw)
{
	struct al_gw_snap *s;
	char err[512] = "";
	int rc;

	if (gw->draining)
		return -ECANCELED;
	if ((rc = snap_new(gw, &s, err, sizeof(err))) < 0) {
		al_error("gateway", "reload refused, the running config stays: %s", err);
		al_gw_metrics_reload(gw->metrics, 0);
		return rc;
	}
	warn_restart_only(&gw->snap->cfg, &s->cfg);
	al_log_set_level(s->cfg.log_level);
	al_gw_snap_unref(gw->snap); /* requests in flight keep their own reference */
	gw->snap = s;
	al_gw_metrics_reload(gw->metrics, 1);
	al_info("gateway", "reloaded %s: %zu route(s)", gw->config_path, s->cfg.nroutes);
	return 0;
}

static void close_signals(struct al_gw *gw)
{
	uv_signal_stop(&gw->sig_term);
	uv_signal_stop(&gw->sig_int);
	uv_signal_stop(&gw->sig_hup);
	if (!uv_is_closing((uv_handle_t *)&gw->sig_term)) {
		uv_close((uv_handle_t *)&gw->sig_term, NULL);
		uv_close((uv_handle_t *)&gw->sig_int, NULL);
		uv_close((uv_handle_t *)&gw->sig_hup, NULL);
	}
}

/*
 * The drain can complete inside a callback of the http client (a response
 * that ends the last connection), and the client must not be freed from
 * its own callbacks: the teardown runs from a timer instead.
 */
static void stop_cb(uv_timer_t *t)
{
	struct al_gw *gw = t->data;

	uv_close((uv_handle_t *)t, NULL);
	uv_close((uv_handle_t *)&gw->bp_timer, NULL);
	uv_close((uv_handle_t *)&gw->reap_timer, NULL);
	gw->stopping = 1;
	reap(gw);
	/* Everything else closes now; uv_run returns once the handles are gone. */
	al_http_server_free(gw->srv);
	gw->srv = NULL;
	if (gw->admin) {
		al_http_server_free(gw->admin);
		gw->admin = NULL;
	}
	al_gw_snap_unref(gw->snap); /* the last reference: requests are done */
	gw->snap = NULL;
	close_signals(gw);
}

static void drained_cb(al_http_server *srv, void *ud)
{
	struct al_gw *gw = ud;

	(void)srv;
	al_info("gateway", "drained");
	gw->stop_timer.data = gw;
	uv_timer_start(&gw->stop_timer, stop_cb, 0, 0);
}

void al_gw_drain(struct al_gw *gw)
{
	if (gw->draining)
		return;
	gw->draining = 1;
	al_info("gateway", "draining: %ld request(s) in flight, up to %llu ms", gw->in_flight,
		(unsigned long long)gw->snap->cfg.shutdown_timeout_ms);
	al_http_server_drain(gw->srv, drained_cb, gw);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct al_gw *gw = h->data;

	if (signum == SIGHUP) {
		al_gw_reload(gw);
		return;
	}
	al_gw_drain(gw);
}

int al_gw_start(struct al_gw *gw, uv_loop_t *loop, const char *config_path, char *err,
		size_t errlen)
{
	const struct al_gw_config *c;
	struct al_http_server_opts so = {0}, ao = {0};
	int rc;

	memset(gw, 0, sizeof(*gw));
	gw->loop = loop;
	uv_timer_init(loop, &gw->reap_timer);
	gw->reap_timer.data = gw;
	rc = -ENOMEM;
	if ((gw->config_path = al_strdup(config_path)) == NULL ||
	    (gw->metrics = al_gw_metrics_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = snap_new(gw, &gw->snap, err, errlen)) < 0)
		goto fail;
	c = &gw->snap->cfg;
	al_log_set_level(c->log_level);
	if (c->audit_path) {
		struct al_audit_opts ao2 = {.component = "gateway", .sign_key_path = c->audit_key};
		char aerr[256] = "";
		if ((rc = al_audit_open(c->audit_path, &ao2, &gw->audit, aerr, sizeof(aerr))) < 0) {
			snprintf(err, errlen, "airlock.audit: %s", aerr[0] ? aerr : strerror(-rc));
			goto fail;
		}
	}
	so.host = c->listen_host;
	so.port = c->listen_port;
	so.tls_cert_file = c->tls_cert_file;
	so.tls_key_file = c->tls_key_file;
	so.max_body_bytes = c->max_body_bytes;
	so.drain_timeout_ms = c->shutdown_timeout_ms ? c->shutdown_timeout_ms : 1;
	/* Upstream calls and streams can be long: the server must not cut them. */
	so.idle_timeout_ms = 120000;
	if ((rc = al_http_server_start(loop, &so, al_gw_proxy_handle, gw, &gw->srv, err, errlen)) <
	    0)
		goto fail;
	if (c->admin_host) {
		ao.host = c->admin_host;
		ao.port = c->admin_port;
		if ((rc = al_http_server_start(loop, &ao, al_gw_admin_handle, gw, &gw->admin, err,
					       errlen)) < 0)
			goto fail;
	}
	uv_timer_init(loop, &gw->stop_timer);
	uv_timer_init(loop, &gw->bp_timer);
	gw->bp_timer.data = gw;
	uv_signal_init(loop, &gw->sig_term);
	uv_signal_init(loop, &gw->sig_int);
	uv_signal_init(loop, &gw->sig_hup);
	gw->sig_term.data = gw->sig_int.data = gw->sig_hup.data = gw;
	uv_signal_start(&gw->sig_term, signal_cb, SIGTERM);
	uv_signal_start(&gw->sig_int, signal_cb, SIGINT);
	uv_signal_start(&gw->sig_hup, signal_cb, SIGHUP);
	al_info("gateway", "listening on %s:%d (%s), admin %s%s%d, %zu route(s)", c->listen_host,
		al_http_server_port(gw->srv), c->tls_cert_file ? "TLS" : "plain HTTP",
		c->admin_host ? c->admin_host : "off", c->admin_host ? ":" : "",
		gw->admin ? al_http_server_port(gw->admin) : 0, c->nroutes);
	if (c->tls_cert_file == NULL)
		al_warn("gateway", "no tls: configured: serving plain HTTP (put TLS in front)");
	return 0;
fail:
	if (gw->srv) {
		al_http_server_free(gw->srv);
		gw->srv = NULL;
	}
	if (gw->admin) {
		al_http_server_free(gw->admin);
		gw->admin = NULL;
	}
	return rc;
}

void al_gw_free(struct al_gw *gw)
{
	if (gw->srv)
		al_http_server_free(gw->srv);
	if (gw->admin)
		al_http_server_free(gw->admin);
	gw->srv = gw->admin = NULL;
	gw->stopping = 1;
	if (!uv_is_closing((uv_handle_t *)&gw->reap_timer))
		uv_close((uv_handle_t *)&gw->reap_timer, NULL);
	al_gw_snap_unref(gw->snap);
	gw->snap = NULL;
	reap(gw);
	if (gw->audit)
		al_audit_close(gw->audit);
	gw->audit = NULL;
	al_gw_metrics_free(gw->metrics);
	gw->metrics = NULL;
	al_free(gw->config_path);
	gw->config_path = NULL;
	/* Not zeroed: its timers may still be closing until the loop runs again. */
}
