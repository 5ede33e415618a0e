/*
 * app.c - the control plane's lifetime: start (store, bus, first-run admin
 * key, HTTP listener, agent loop), drain (SIGTERM) and free.
 *
 * First start with an empty data directory creates the admin API key. Only
 * its SHA-256 goes into the store (doc kind "key", ref = hash, state
 * "admin"); the key itself is written once to DIR/admin.key, created with
 * O_CREAT|O_EXCL and mode 0600 so we never overwrite or widen an existing
 * file. The log says where the key is, never what it is.
 */
#include "api/api.h"

#include "api/internal.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/fd.h"
#include "core/hash.h"
#include "core/log.h"

#include "agent/loop.h"
#include "agent/anthropic.h"
#include "net/http_client.h"

#include <stdlib.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct bootstrap {
	int64_t admins;
	char hash[AL_SHA256_HEX];
	int64_t now_ms;
};

static int count_admins_fn(al_store_tx *tx, void *ud)
{
	const char *states[] = {"admin", NULL};
	struct bootstrap *b = ud;
	struct al_doc_query q = {0};

	q.states = states;
	return al_store_doc_count(tx, "key", &q, &b->admins);
}

static int insert_admin_fn(al_store_tx *tx, void *ud)
{
	struct bootstrap *b = ud;
	struct al_doc d = {0};
	json_t *body = NULL;
	int rc;

	snprintf(d.kind, sizeof(d.kind), "key");
	if ((rc = al_id_new("akey", d.id, sizeof(d.id))) < 0)
		goto done;
	al_api_key_ref(b->hash, d.ref);
	snprintf(d.state, sizeof(d.state), "admin");
	d.created_ms = d.updated_ms = b->now_ms;
	body = json_pack("{s:s, s:s, s:s}", "type", "api_key", "id", d.id, "sha256", b->hash);
	if (body == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if ((rc = al_api_doc_set_body(&d, body)) == 0)
		rc = al_store_doc_insert(tx, &d);
done:
	json_decref(body);
	al_doc_clear(&d);
	return rc;
}

/* Creates the admin key when the store has none. */
static int bootstrap_admin(al_api *api, char *err, size_t errlen)
{
	struct bootstrap b = {0};
	char path[4096];
	char *key = NULL;
	int fd = -1, rc;

	if ((rc = al_store_call(api->store, count_admins_fn, &b)) < 0) {
		snprintf(err, errlen, "cannot read keys from the store: %s", strerror(-rc));
		return rc;
	}
	if (b.admins > 0)
		return 0;
	snprintf(path, sizeof(path), "%s/admin.key", api->cfg.data_dir);
	if ((key = al_token_new("admin")) == NULL) {
		snprintf(err, errlen, "cannot generate the admin key");
		return -ENOMEM;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen,
			 "cannot create %s: %s (the store has no admin key; remove a stale file)",
			 path, strerror(errno));
		goto done;
	}
	if ((rc = al_fd_write_all(fd, key, strlen(key))) < 0 ||
	    (rc = al_fd_write_all(fd, "\n", 1)) < 0 || (fsync(fd) < 0 && (rc = -errno) < 0)) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		goto fail_unlink;
	}
	if ((rc = al_sha256_hex(key, strlen(key), b.hash)) < 0)
		goto fail_unlink;
	b.now_ms = al_now_ms();
	if ((rc = al_store_call(api->store, insert_admin_fn, &b)) < 0) {
		snprintf(err, errlen, "cannot store the admin key: %s", strerror(-rc));
		goto fail_unlink;
	}
	al_info("api", "created the admin API key in %s (mode 0600); send it as x-api-key", path);
	rc = 0;
	goto done;
fail_unlink:
	unlink(path);
done:
	if (fd >= 0)
		close(fd);
	al_wipe(b.hash, sizeof(b.hash));
	al_free_secret_str(key);
	return rc;
}

static int ensure_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
	}
	snprintf(err, errlen, "data directory %s is not usable: %s", dir, strerror(errno));
	return -ENOTDIR;
}

int al_api_start(uv_loop_t *loop, const struct al_api_config *cfg, al_api **out, char *err,
		 size_t errlen)
{
	struct al_api_priv *pv = NULL;
	struct al_http_server_opts ho = {0};
	al_api *api = NULL;
	int rc;

	*out = NULL;
	if (cfg == NULL || cfg->data_dir == NULL || cfg->listen_host == NULL) {
		snprintf(err, errlen, "missing data directory or listen address");
		return -EINVAL;
	}
	if ((rc = ensure_dir(cfg->data_dir, err, errlen)) < 0)
		return rc;
	if ((pv = al_calloc(1, sizeof(*pv))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	api = &pv->pub;
	api->loop = loop;
	api->cfg = *cfg;
	if ((rc = al_store_open_sqlite(loop, cfg->data_dir, &api->store, err, errlen)) < 0)
		goto fail;
	if ((rc = al_bus_new(loop, api->store, &api->bus)) < 0) {
		snprintf(err, errlen, "cannot create the event bus: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = bootstrap_admin(api, err, errlen)) < 0)
		goto fail;
	ho.host = cfg->listen_host;
	ho.port = cfg->listen_port;
	ho.tls_cert_file = cfg->tls_cert_file;
	ho.tls_key_file = cfg->tls_key_file;
	ho.max_body_bytes = cfg->max_body_bytes;
	ho.max_connections = cfg->max_connections;
	if ((rc = al_http_server_start(loop, &ho, al_api_router_cb, api, &api->http, err, errlen)) <
	    0)
		goto fail;
	api->provider = NULL;
	api->client = NULL;
	/*
	 * The model provider (agent/anthropic.h over net/http_client.h). The
	 * key comes from the environment only (never argv) and the provider
	 * copies (and later wipes) it.
	 */
	if (cfg->model_url != NULL) {
		const char *mkey = getenv("ANTHROPIC_API_KEY");
		if ((rc = al_http_client_new(loop, &api->client)) < 0) {
			snprintf(err, errlen, "cannot create the HTTP client: %s", strerror(-rc));
			goto fail;
		}
		api->provider = al_anthropic_new(loop, api->client, cfg->model_url,
						 mkey && mkey[0] ? mkey : NULL, NULL);
		if (api->provider == NULL) {
			snprintf(err, errlen, "cannot create the model provider for --model-url");
			rc = -EINVAL;
			goto fail;
		}
	}
	if ((rc = al_agent_start(api, &api->agent)) < 0) {
		snprintf(err, errlen, "cannot start the agent loop: %s", strerror(-rc));
		goto fail;
	}
	al_info("api", "listening on %s:%d (%s)", cfg->listen_host, al_http_server_port(api->http),
		cfg->tls_cert_file ? "https" : "http");
	*out = api;
	return 0;
fail:
	al_api_free(api ? api : NULL);
	return rc;
}

/*
 * How long the drain waits for model calls in flight to finish and be
 * recorded once the HTTP side is done. Past it they are cancelled; the
 * restarted server makes them again (loop.h, Restart).
 */
#define AGENT_DRAIN_MS	    15000
#define AGENT_DRAIN_POLL_MS 20

struct al_api_agent_wait {
	uv_timer_t timer; /* first: the close callback frees the struct */
	al_api *api;
	uint64_t deadline;
};

static void drain_done(al_api *api)
{
	struct al_api_priv *pv = al_api_priv(api);

	al_info("api", "drained");
	if (pv->drain_cb != NULL)
		pv->drain_cb(api, pv->drain_ud);
}

static void agent_wait_closed_cb(uv_handle_t *h)
{
	al_free(h);
}

static void agent_wait_cb(uv_timer_t *t)
{
	struct al_api_agent_wait *w = t->data;
	al_api *api = w->api;

	if (al_agent_busy(api->agent) && uv_now(t->loop) < w->deadline)
		return;
	if (al_agent_busy(api->agent))
		al_warn("api", "drain: model calls still in flight after %d ms, cancelling them",
			AGENT_DRAIN_MS);
	uv_timer_stop(t);
	uv_close((uv_handle_t *)t, agent_wait_closed_cb);
	al_api_priv(api)->agent_wait = NULL;
	drain_done(api);
}

static void drained_cb(al_http_server *srv, void *ud)
{
	al_api *api = ud;
	struct al_api_agent_wait *w;

	/* Requests are done; a model call in flight still gets to land in the log. */
	if (!al_agent_busy(api->agent) || (w = al_calloc(1, sizeof(*w))) == NULL) {
		drain_done(api);
		return;
	}
	al_info("api", "draining: waiting for model calls in flight");
	w->api = api;
	uv_timer_init(api->loop, &w->timer);
	w->timer.data = w;
	w->deadline = uv_now(api->loop) + AGENT_DRAIN_MS;
	al_api_priv(api)->agent_wait = w;
	uv_timer_start(&w->timer, agent_wait_cb, AGENT_DRAIN_POLL_MS, AGENT_DRAIN_POLL_MS);
}

void al_api_drain(al_api *api, void (*cb)(al_api *api, void *ud), void *ud)
{
	struct al_api_priv *pv = al_api_priv(api);

	if (api->draining)
		return;
	api->draining = 1;
	pv->drain_cb = cb;
	pv->drain_ud = ud;
	al_info("api", "draining: finishing in-flight requests");
	if (api->agent != NULL)
		al_agent_stop(api->agent);
	/* Long-polls answer null now rather than hold the drain up. */
	al_work_state_free(api);
	al_http_server_drain(api->http, drained_cb, api);
}

void al_api_free(al_api *api)
{
	if (api == NULL)
		return;
	if (al_api_priv(api)->agent_wait != NULL) { /* freed before the drain finished */
		uv_timer_stop(&al_api_priv(api)->agent_wait->timer);
		uv_close((uv_handle_t *)&al_api_priv(api)->agent_wait->timer, agent_wait_closed_cb);
		al_api_priv(api)->agent_wait = NULL;
	}
	al_work_state_free(api);
	if (api->agent != NULL)
		al_agent_free(api->agent);
	api->agent = NULL;
	if (api->http != NULL)
		al_http_server_free(api->http);
	if (api->provider != NULL)
		al_anthropic_free(api->provider);
	if (api->client != NULL)
		al_http_client_free(api->client);
	if (api->bus != NULL)
		al_bus_free(api->bus);
	if (api->store != NULL)
		al_store_close(api->store);
	al_api_auth_cache_free(api);
	al_free(al_api_priv(api));
}
