/*
 * gateway.h - `airlock gateway`: the MCP gateway that private MCP servers
 * sit behind (docs/GATEWAY.md).
 *
 * One loop thread runs everything: the public listener (TLS with the
 * customer's certificate), the admin listener (/healthz, /readyz,
 * /metrics), the libcurl client for http(s) upstreams, the stdio pools,
 * SIGTERM/SIGINT (drain, then exit) and SIGHUP (reload).
 *
 * Reload: the routes and everything they use live in a refcounted
 * snapshot (al_gw_snap). A request takes a reference to the snapshot in
 * force when it arrives and keeps it to its end, so a SIGHUP that swaps
 * in a new snapshot changes only what later requests see; in-flight and
 * streaming requests finish on the old one, which is freed with its last
 * request. A config that does not load is refused and the old one stays.
 * The listen addresses, TLS files, max_body and the audit log's path and
 * key are read once at start-up: changing them needs a restart (a reload
 * says so in the log); audit_sync is per snapshot like the routes.
 */
#ifndef AL_GATEWAY_GATEWAY_H
#define AL_GATEWAY_GATEWAY_H

#include "gateway/auditq.h"
#include "gateway/config.h"
#include "gateway/metrics.h"
#include "gateway/stdio_pool.h"

#include <uv.h>

struct al_http_server;
struct al_http_client;
struct al_http_req;
struct al_audit_log;
struct al_gw_pxy;

/* How long a reload waits for its stdio children to be ready. */
#define AL_GW_RELOAD_READY_MS 15000

struct al_gw_snap {
	int refs;
	struct al_gw_config cfg;
	al_gw_stdio_pool **pools; /* per route, NULL for http routes */
	/*
	 * The upstream client, one per snapshot: its pooled keep-alive
	 * connections were opened under this config's allowed_ips and CA, so
	 * after a reload new requests never ride a connection the new config
	 * would not have opened.
	 */
	struct al_http_client *client;
	struct al_gw *gw;
	struct al_gw_snap *dead_next; /* on gw->dead, waiting to be freed */
};

struct al_gw {
	uv_loop_t *loop;
	char *config_path;
	struct al_gw_snap *snap; /* in force */
	struct al_http_server *srv;
	struct al_http_server *admin;
	struct al_audit_log *audit;
	al_gw_auditq *auditq; /* its fdatasyncs, off the loop (with audit) */
	al_gw_metrics *metrics;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t stop_timer; /* teardown after a drain, outside every callback */
	/*
	 * Backpressure: requests whose upstream read is paused because their
	 * client is behind (proxy.c), and the timer that resumes them once the
	 * client has taken its bytes (the server has no "drained" callback).
	 */
	struct al_gw_pxy *paused;
	uv_timer_t bp_timer;
	/*
	 * Snapshots whose last request has finished. The last reference often
	 * goes inside a callback of the snapshot's own http client, which must
	 * not be freed there: they are freed from reap_timer instead.
	 */
	struct al_gw_snap *dead;
	uv_timer_t reap_timer;
	/*
	 * A reloaded snapshot whose stdio pools are still starting: it goes in
	 * force once every stdio route has a child through its handshake (so
	 * a reload never turns requests into 503 "no stdio server ready"), or
	 * is refused when that takes longer than AL_GW_RELOAD_READY_MS.
	 */
	struct al_gw_snap *pending;
	uint64_t pending_deadline_ms;
	uv_timer_t pending_timer;
	int stopping;
	int draining;
	long in_flight;
};

/* Loads the file, starts listening; 0 or -errno with err filled. */
int al_gw_start(struct al_gw *gw, uv_loop_t *loop, const char *config_path, char *err,
		size_t errlen);
/*
 * Re-reads the config file (SIGHUP). 0, or -errno and the old config stays.
 * With stdio routes the new config goes in force later, when its children
 * are ready (see pending); 0 then means "loaded, starting".
 */
int al_gw_reload(struct al_gw *gw);
/* Stops accepting, lets requests finish within shutdown_timeout, then closes. */
void al_gw_drain(struct al_gw *gw);
/* Frees what is left; run the loop once more afterwards (handles close asynchronously). */
void al_gw_free(struct al_gw *gw);

/* snapshots (gateway.c) */
struct al_gw_snap *al_gw_snap_ref(struct al_gw_snap *s);
void al_gw_snap_unref(struct al_gw_snap *s);

/* the public listener's handler (proxy.c) and the admin one (admin.c) */
void al_gw_proxy_bp_timer_cb(uv_timer_t *t);
void al_gw_proxy_handle(struct al_http_req *req, void *gw);
void al_gw_admin_handle(struct al_http_req *req, void *gw);

#endif
