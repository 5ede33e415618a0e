/*
 * poller.c - the worker process (poller.h, worker.h, docs/WORKER.md).
 *
 * One libuv loop owns everything: the poll call, every session (session.c),
 * every --on-work script, the signal handlers. Polling follows the SDK's
 * WorkPoller (lib/environments/poller.js): block_ms long-polls, a jittered
 * 1-3 s sleep after an empty poll, exponential backoff 1 s -> 60 s with
 * jitter after an error (or the server's Retry-After when longer), and a
 * non-retryable 4xx stops the worker with exit status 1, as does (unlike
 * the SDK) a TLS verification failure. Unlike the SDK,
 * which serves one item at a time, up to max_sessions items run at once:
 * the poll is simply not issued while that many are running.
 *
 * Shutdown (SIGTERM/SIGINT): stop claiming (the poll in flight is
 * cancelled; an item it would have delivered stays unacknowledged and the
 * server hands it out again after reclaim_older_than_ms), let each running
 * call finish within shutdown_grace_s then cancel it, post results while
 * leases live, force-stop the items, forward SIGTERM to scripts and wait
 * for them, close the journal and the audit log (its closing checkpoint),
 * exit 0.
 */
#include "worker/poller.h"

#include "audit/record.h"
#include "core/alloc.h"
#include "core/log.h"
#include "worker/backoff.h"
#include "worker/session.h"
#include "worker/workspace.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOGC		 "worker"
#define POLL_BACKOFF_MS	 1000u
#define POLL_BACKOFF_CAP 60000u
#define JOURNAL_KEEP_MS	 (7LL * 24 * 3600 * 1000)

extern char **environ;

struct poller;

struct item {
	struct item *next;
	struct poller *p;
	char *work_id;
	char *session_id;
	/* in-process */
	struct al_wsess *s;
	/* --on-work */
	json_t *work; /* the item (secret included: wiped from memory when freed) */
	struct al_wc_call *ack_call;
	uv_process_t proc;
	uv_pipe_t in;
	uv_write_t wr;
	char *stdin_json;
	int proc_open, in_open, spawned;
};

struct poller {
	uv_loop_t loop;
	struct al_wctx ctx;
	const struct al_worker_config *cfg;
	uv_timer_t poll_timer;
	uv_timer_t sweep_timer; /* workspace_ttl */
	uv_signal_t sigterm, sigint;
	struct al_wc_call *poll_call;
	unsigned attempt;
	unsigned active;
	int stopping, closing, idle_logged;
	int exit_status;
	int run_mode;
	struct item *items;
};

static void poll_next(struct poller *p);
static void check_exit(struct poller *p);

/* ---- items ---- */

static void audit_ev(struct poller *p, const char *event, int failed, const char *work_id,
		     const char *session_id, json_t *fields)
{
	struct al_audit_ctx ac = {.work_id = work_id, .session_id = session_id};
	json_t *rec;
	int rc;

	if (p->ctx.audit == NULL ||
	    (rec = al_audit_rec_event(&ac, event, failed, fields)) == NULL) {
		if (p->ctx.audit == NULL)
			json_decref(fields);
		return;
	}
	if ((rc = al_audit_write(p->ctx.audit, rec)) < 0)
		al_error(LOGC, "audit write %s failed: %s", event, strerror(-rc));
	json_decref(rec);
}

/* Wipes the secret member of a work object before it is freed. */
static void work_wipe_secret(json_t *work)
{
	json_t *sec = json_object_get(work, "secret");
	const char *v = json_string_value(sec);

	if (v != NULL)
		al_wipe((void *)v, strlen(v));
}

static void item_free(struct item *it)
{
	if (it == NULL)
		return;
	al_wsess_free(it->s);
	if (it->work) {
		work_wipe_secret(it->work);
		json_decref(it->work);
	}
	al_free(it->work_id);
	al_free(it->session_id);
	al_free(it->stdin_json);
	al_free(it);
}

static void item_unlink(struct poller *p, struct item *it)
{
	struct item **pp;

	for (pp = &p->items; *pp; pp = &(*pp)->next)
		if (*pp == it) {
			*pp = it->next;
			break;
		}
}

static void item_done(struct item *it)
{
	struct poller *p = it->p;

	item_unlink(p, it);
	item_free(it);
	p->active--;
	if (p->stopping || p->run_mode)
		check_exit(p);
	else
		poll_next(p);
}

static void session_done_cb(struct al_wsess *s, enum al_wsess_end end, void *ud)
{
	struct item *it = ud;
	static const char *const names[] = {"done", "stopping", "lease_lost", "shutdown", "failed"};

	(void)s;
	al_info(LOGC, "work item finished (%s) work_id=%s", names[end], it->work_id);
	if (end == AL_WSESS_FAILED && it->p->run_mode)
		it->p->exit_status = 1;
	item_done(it);
}

/* ---- --on-work scripts ---- */

static int has_prefix(const char *s, const char *pfx)
{
	return strncmp(s, pfx, strlen(pfx)) == 0;
}

static int env_add(char **env, size_t *n, const char *name, const char *value)
{
	size_t len;

	if (value == NULL)
		return 0;
	len = strlen(name) + 1 + strlen(value) + 1;
	if ((env[*n] = al_malloc(len)) == NULL)
		return -ENOMEM;
	snprintf(env[*n], len, "%s=%s", name, value);
	(*n)++;
	return 0;
}

char **al_worker_script_env(char *const *base, const char *work_id, const char *env_id,
			    const char *session_id, const char *secret, const char *env_key,
			    const char *base_url)
{
	size_t nbase = 0, n = 0, i;
	char **env;

	while (base && base[nbase])
		nbase++;
	if ((env = al_calloc(nbase + 7, sizeof(*env))) == NULL)
		return NULL;
	/* Inherited ANTHROPIC_* variables go: only this item's values reach the script. */
	for (i = 0; i < nbase; i++) {
		if (has_prefix(base[i], "ANTHROPIC_"))
			continue;
		if ((env[n] = al_strdup(base[i])) == NULL)
			goto fail;
		n++;
	}
	if (env_add(env, &n, "ANTHROPIC_WORK_ID", work_id) < 0 ||
	    env_add(env, &n, "ANTHROPIC_ENVIRONMENT_ID", env_id) < 0 ||
	    env_add(env, &n, "ANTHROPIC_SESSION_ID", session_id) < 0 ||
	    env_add(env, &n, "ANTHROPIC_WORK_SECRET", secret) < 0 ||
	    env_add(env, &n, "ANTHROPIC_ENVIRONMENT_KEY", env_key) < 0 ||
	    env_add(env, &n, "ANTHROPIC_BASE_URL", base_url) < 0)
		goto fail;
	return env;
fail:
	al_worker_script_env_free(env);
	return NULL;
}

void al_worker_script_env_free(char **env)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = 0; env[i]; i++)
		al_free_secret_str(env[i]);
	al_free(env);
}

char **al_worker_item_script_env(char *const *base, const struct al_worker_config *cfg,
				 const json_t *work)
{
	const json_t *data = json_object_get(work, "data");

	return al_worker_script_env(base, json_string_value(json_object_get(work, "id")),
				    json_string_value(json_object_get(work, "environment_id")),
				    json_string_value(json_object_get(data, "id")),
				    json_string_value(json_object_get(work, "secret")),
				    cfg->on_work_env_key ? cfg->environment_key : NULL,
				    cfg->base_url);
}

static void script_handle_closed_cb(uv_handle_t *h)
{
	struct item *it = h->data;

	if (h == (uv_handle_t *)&it->proc)
		it->proc_open = 0;
	else
		it->in_open = 0;
	if (!it->proc_open && !it->in_open)
		item_done(it);
}

static void script_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
	struct item *it = proc->data;

	al_info(LOGC, "on-work script exited work_id=%s status=%lld signal=%d", it->work_id,
		(long long)status, sig);
	audit_ev(it->p, "work.script_exit", status != 0 || sig != 0, it->work_id, it->session_id,
		 json_pack("{s:I, s:i}", "exit_status", (json_int_t)status, "signal", sig));
	uv_close((uv_handle_t *)&it->proc, script_handle_closed_cb);
	if (it->in_open && !uv_is_closing((uv_handle_t *)&it->in))
		uv_close((uv_handle_t *)&it->in, script_handle_closed_cb);
}

static void script_write_cb(uv_write_t *req, int status)
{
	struct item *it = req->data;

	if (status < 0)
		al_warn(LOGC, "on-work script stdin: %s work_id=%s", uv_strerror(status),
			it->work_id);
	/* EOF for the script: it reads the item and gets on with it. */
	if (it->in_open && !uv_is_closing((uv_handle_t *)&it->in))
		uv_close((uv_handle_t *)&it->in, script_handle_closed_cb);
}

static void script_start(struct item *it)
{
	struct poller *p = it->p;
	const struct al_worker_config *cfg = p->cfg;
	uv_process_options_t o;
	uv_stdio_container_t stdio[3];
	char *args[2];
	char **env = NULL;
	json_t *copy = NULL;
	uv_buf_t b;
	int rc;

	/* The item on stdin without its secret: that travels in the environment only. */
	if ((copy = json_deep_copy(it->work)) != NULL) {
		json_object_del(copy, "secret");
		it->stdin_json = json_dumps(copy, JSON_COMPACT);
	}
	json_decref(copy);
	env = al_worker_item_script_env(environ, cfg, it->work);
	if (it->stdin_json == NULL || env == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	uv_pipe_init(&p->loop, &it->in, 0);
	it->in.data = it;
	it->in_open = 1;
	memset(&o, 0, sizeof(o));
	args[0] = cfg->on_work;
	args[1] = NULL;
	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&it->in;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = 1;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = 2;
	o.file = cfg->on_work;
	o.args = args;
	o.env = env;
	o.stdio = stdio;
	o.stdio_count = 3;
	o.exit_cb = script_exit_cb;
	it->proc.data = it;
	if ((rc = uv_spawn(&p->loop, &it->proc, &o)) < 0) {
		al_error(LOGC, "on-work script %s: %s work_id=%s", cfg->on_work, uv_strerror(rc),
			 it->work_id);
		audit_ev(p, "work.script_exit", 1, it->work_id, it->session_id,
			 json_pack("{s:s}", "error", uv_strerror(rc)));
		al_worker_script_env_free(env);
		/* uv_spawn initialised the handle even on failure: close both. */
		it->proc_open = 1;
		uv_close((uv_handle_t *)&it->proc, script_handle_closed_cb);
		uv_close((uv_handle_t *)&it->in, script_handle_closed_cb);
		return;
	}
	al_worker_script_env_free(env);
	it->proc_open = 1;
	it->spawned = 1;
	al_info(LOGC, "on-work script started work_id=%s pid=%d", it->work_id, it->proc.pid);
	audit_ev(p, "work.script_start", 0, it->work_id, it->session_id,
		 json_pack("{s:i}", "pid", it->proc.pid));
	b = uv_buf_init(it->stdin_json, (unsigned)strlen(it->stdin_json));
	it->wr.data = it;
	if ((rc = uv_write(&it->wr, (uv_stream_t *)&it->in, &b, 1, script_write_cb)) < 0)
		script_write_cb(&it->wr, rc);
	return;
fail:
	al_worker_script_env_free(env);
	al_error(LOGC, "on-work script: %s work_id=%s", strerror(-rc), it->work_id);
	if (it->in_open)
		uv_close((uv_handle_t *)&it->in, script_handle_closed_cb);
	else
		item_done(it);
}

static void script_ack_cb(const struct al_wc_resp *r, void *ud)
{
	struct item *it = ud;

	it->ack_call = NULL;
	if (r->err == 0 && r->status >= 200 && r->status < 300) {
		al_info(LOGC, "acknowledged work work_id=%s", it->work_id);
		audit_ev(it->p, "work.acked", 0, it->work_id, it->session_id, NULL);
		if (it->p->stopping) {
			item_done(it);
			return;
		}
		script_start(it);
		return;
	}
	al_error(LOGC, "ack failed (status %d err %d) work_id=%s", r->status, r->err, it->work_id);
	audit_ev(it->p, "work.acked", 1, it->work_id, it->session_id,
		 json_pack("{s:i}", "status", r->status));
	item_done(it);
}

/* ---- claiming ---- */

static void claim(struct poller *p, const json_t *work)
{
	const json_t *data = json_object_get(work, "data");
	const char *wid = json_string_value(json_object_get(work, "id"));
	const char *sid = json_string_value(json_object_get(data, "id"));
	const char *type = json_string_value(json_object_get(data, "type"));
	struct al_wsess_opts so = {.ack = 1, .ack_tolerant = p->run_mode};
	struct item *it;
	int rc;

	if (wid == NULL) {
		al_warn(LOGC, "poll returned a work object without an id; ignored");
		return;
	}
	al_info(LOGC, "claimed work work_id=%s session_id=%s type=%s", wid, sid ? sid : "",
		type ? type : "");
	audit_ev(p, "work.claimed", 0, wid, sid,
		 json_pack("{s:s, s:s}", "type", type ? type : "", "worker_id",
			   p->cfg->worker_id ? p->cfg->worker_id : ""));
	if ((it = al_calloc(1, sizeof(*it))) == NULL || (it->work_id = al_strdup(wid)) == NULL ||
	    (sid && (it->session_id = al_strdup(sid)) == NULL)) {
		al_error(LOGC, "out of memory claiming work_id=%s", wid);
		item_free(it);
		return;
	}
	it->p = p;
	it->next = p->items;
	p->items = it;
	p->active++;
	if (p->cfg->on_work != NULL && !p->run_mode) {
		if ((it->work = json_deep_copy(work)) == NULL) {
			item_done(it);
			return;
		}
		rc = al_wc_ack(p->ctx.client,
			       json_string_value(json_object_get(work, "environment_id")), wid,
			       p->cfg->environment_key, script_ack_cb, it, &it->ack_call);
		if (rc < 0) {
			struct al_wc_resp r = {.err = rc, .retry_after_ms = -1};

			it->ack_call = NULL;
			script_ack_cb(&r, it);
		}
		return;
	}
	if ((rc = al_wsess_start(&p->ctx, work, &so, session_done_cb, it, &it->s)) < 0) {
		al_error(LOGC, "cannot serve work_id=%s: %s", wid, strerror(-rc));
		if (p->run_mode)
			p->exit_status = 1;
		item_done(it);
	}
}

static void poll_timer_cb(uv_timer_t *t)
{
	poll_next(t->data);
}

static void begin_stop(struct poller *p);

static void poll_cb(const struct al_wc_resp *r, void *ud)
{
	struct poller *p = ud;
	uint64_t wait;

	p->poll_call = NULL;
	if (p->stopping)
		return;
	if (r->err == 0 && r->status == 200) {
		p->attempt = 0;
		if (!json_is_object(r->body)) {
			if (!p->idle_logged) {
				al_info(LOGC, "idle; polling for work environment_id=%s",
					p->cfg->environment_id);
				p->idle_logged = 1;
			}
			uv_timer_start(&p->poll_timer, poll_timer_cb, al_worker_jitter(1000, 3000),
				       0);
			return;
		}
		p->idle_logged = 0;
		claim(p, r->body);
		/* The session and the script took their copies: wipe the response's. */
		work_wipe_secret(r->body);
		poll_next(p);
		return;
	}
	if (r->err == 0 && al_wc_is_fatal_4xx(r->status)) {
		al_error(LOGC, "poll failed permanently (%d %s: %s); stopping", r->status,
			 r->error_type ? r->error_type : "",
			 r->error_message ? r->error_message : "");
		p->exit_status = 1;
		begin_stop(p);
		return;
	}
	if (r->err == -EPROTO) {
		/*
		 * The control plane's certificate did not verify (or ca_file is
		 * unreadable): a wrong ca_file, or a TLS-inspecting proxy whose CA
		 * we do not trust. Configuration, not weather, and retrying here
		 * would not even re-read ca_file (libcurl caches the CA store), so
		 * stop with status 1: the unit restarts us every 5 s, each start
		 * reading ca_file afresh. libcurl's text names host and reason only.
		 */
		al_error(LOGC,
			 "poll failed: TLS verification of the control plane failed (%s); check "
			 "ca_file and any TLS-inspecting proxy; stopping",
			 r->error_message ? r->error_message : "");
		p->exit_status = 1;
		begin_stop(p);
		return;
	}
	wait = al_worker_apply_jitter(
	    al_worker_backoff_ms(p->attempt, POLL_BACKOFF_MS, POLL_BACKOFF_CAP));
	if (r->retry_after_ms > 0 && (uint64_t)r->retry_after_ms > wait)
		wait = (uint64_t)r->retry_after_ms;
	p->attempt++;
	/* A transport error's text (libcurl's: host, port, reason) says which hop failed. */
	al_warn(LOGC, "poll failed (status %d err %d%s%s); backing off backoff_ms=%llu", r->status,
		r->err, r->err < 0 && r->error_message ? ": " : "",
		r->err < 0 && r->error_message ? r->error_message : "", (unsigned long long)wait);
	uv_timer_start(&p->poll_timer, poll_timer_cb, wait, 0);
}

static void poll_next(struct poller *p)
{
	unsigned max = p->cfg->max_sessions ? p->cfg->max_sessions : 1;
	unsigned block = p->cfg->block_ms ? p->cfg->block_ms : 999;
	int rc;

	if (p->stopping || p->run_mode || p->poll_call != NULL || p->active >= max ||
	    uv_is_active((uv_handle_t *)&p->poll_timer))
		return;
	if (block > 999)
		block = 999;
	rc = al_wc_poll(p->ctx.client, p->cfg->environment_id, p->cfg->environment_key,
			p->cfg->worker_id ? p->cfg->worker_id : "airlock-worker", block,
			p->cfg->reclaim_older_than_ms, poll_cb, p, &p->poll_call);
	if (rc < 0) {
		struct al_wc_resp r = {.err = rc, .retry_after_ms = -1};

		p->poll_call = NULL;
		poll_cb(&r, p);
	}
}

/* ---- workspace_ttl ---- */

static int sweep_in_use_cb(const char *session_id, void *ud)
{
	struct poller *p = ud;

	for (struct item *it = p->items; it; it = it->next)
		if (it->session_id != NULL && strcmp(it->session_id, session_id) == 0)
			return 1;
	return 0;
}

static void sweep_removed_cb(const char *session_id, int rc, void *ud)
{
	struct poller *p = ud;

	if (rc > 0)
		al_info(LOGC, "deleted a workspace unused for %u s session_id=%s",
			p->cfg->workspace_ttl_s, session_id);
	else if (rc < 0)
		al_warn(LOGC, "workspace unused for %u s not deleted (%s) session_id=%s",
			p->cfg->workspace_ttl_s, strerror(-rc), session_id);
	if (rc != 0)
		audit_ev(p, "workspace.removed", rc < 0, NULL, session_id,
			 json_pack("{s:s, s:i, s:i}", "reason", "ttl", "ttl_seconds",
				   (int)p->cfg->workspace_ttl_s, "error", rc < 0 ? -rc : 0));
}

/*
 * On the loop, not the pool: a claim (also on the loop) must not open a
 * sandbox in a workspace being deleted, and the list of sessions in use is
 * only stable here. The cost is that a huge workspace delays other sessions'
 * heartbeats while it goes; the lease's TTL is far longer than that.
 */
static void sweep_timer_cb(uv_timer_t *t)
{
	struct poller *p = t->data;
	int rc;

	if (p->stopping)
		return;
	rc = al_workspace_sweep(p->cfg, p->cfg->workspace_ttl_s, time(NULL), sweep_in_use_cb,
				sweep_removed_cb, p);
	if (rc < 0)
		al_warn(LOGC, "workspace sweep of %s: %s", p->cfg->workdir, strerror(-rc));
}

/* ---- shutdown ---- */

static void handle_closed_cb(uv_handle_t *h)
{
	(void)h;
}

static void check_exit(struct poller *p)
{
	if (p->active > 0 || p->closing)
		return;
	p->closing = 1;
	uv_close((uv_handle_t *)&p->poll_timer, handle_closed_cb);
	uv_close((uv_handle_t *)&p->sweep_timer, handle_closed_cb);
	uv_close((uv_handle_t *)&p->sigterm, handle_closed_cb);
	uv_close((uv_handle_t *)&p->sigint, handle_closed_cb);
	/* The client's idle connections would keep the loop alive: it is freed after. */
	uv_stop(&p->loop);
}

static void begin_stop(struct poller *p)
{
	struct item *it, *next;

	if (p->stopping) {
		check_exit(p);
		return;
	}
	p->stopping = 1;
	uv_timer_stop(&p->poll_timer);
	uv_timer_stop(&p->sweep_timer);
	if (p->poll_call) {
		al_wc_cancel(p->poll_call);
		p->poll_call = NULL;
	}
	for (it = p->items; it; it = next) {
		next = it->next;
		if (it->s)
			al_wsess_shutdown(it->s);
		else if (it->spawned && it->proc_open)
			uv_process_kill(&it->proc, SIGTERM);
	}
	check_exit(p);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct poller *p = h->data;

	if (p->stopping) {
		al_warn(LOGC, "signal %d again; still draining (shutdown_grace_s=%u)", signum,
			p->cfg->shutdown_grace_s);
		return;
	}
	al_info(LOGC, "signal %d: stopping (no new work; running calls get %u s)", signum,
		p->cfg->shutdown_grace_s);
	begin_stop(p);
}

/* ---- set-up ---- */

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

static void set_threadpool_size(unsigned max_sessions)
{
	char v[16];
	unsigned want = max_sessions + 2; /* a call per session plus sandbox teardowns */

	/*
	 * libuv sizes its pool once, on first use, from UV_THREADPOOL_SIZE: a
	 * bash call may hold a thread for two minutes, so the pool must have a
	 * thread per session or sessions would wait on each other. An operator's
	 * own setting wins.
	 */
	if (getenv("UV_THREADPOOL_SIZE") != NULL)
		return;
	if (want < 4)
		want = 4;
	if (want > 1024)
		want = 1024;
	snprintf(v, sizeof(v), "%u", want);
	setenv("UV_THREADPOOL_SIZE", v, 1);
}

static int poller_open(struct poller *p, const struct al_worker_config *cfg,
		       const char *run_work_id)
{
	struct al_audit_opts ao = {.component = "worker"};
	char path[PATH_MAX], state[PATH_MAX], err[256];
	int rc, n;

	memset(p, 0, sizeof(*p));
	if ((p->ctx.inflight = json_object()) == NULL)
		return -ENOMEM;
	p->cfg = cfg;
	p->ctx.cfg = cfg;
	p->ctx.loop = &p->loop;
	al_log_set_format(cfg->log_format == AL_WORKER_LOG_JSON ? AL_LOG_JSON : AL_LOG_TEXT);
	set_threadpool_size(cfg->max_sessions);
	if (cfg->base_url == NULL || cfg->workdir == NULL) {
		al_error(LOGC, "worker: base URL and workdir are required");
		return -EINVAL;
	}
	if (cfg->state_dir)
		n = snprintf(state, sizeof(state), "%s", cfg->state_dir);
	else
		n = snprintf(state, sizeof(state), "%s/.airlock", cfg->workdir);
	if (n < 0 || (size_t)n >= sizeof(state))
		return -ENAMETOOLONG;
	if ((rc = mkdir_p(state)) < 0) {
		al_error(LOGC, "state dir %s: %s", state, strerror(-rc));
		return rc;
	}
	n = snprintf(path, sizeof(path), "%s/journal.db", state);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if ((rc = al_journal_open(path, &p->ctx.journal, err, sizeof(err))) < 0) {
		al_error(LOGC, "journal %s: %s", path, err);
		return rc;
	}
	/*
	 * Answered calls are kept a week: long enough for any item of the same
	 * session to see them (history shows the answers too), short enough that
	 * the journal stays small on a busy worker.
	 */
	if ((rc = al_journal_prune(p->ctx.journal, JOURNAL_KEEP_MS)) > 0)
		al_info(LOGC, "journal: pruned %d answered calls older than 7 days", rc);
	if (cfg->audit_path)
		n = snprintf(path, sizeof(path), "%s", cfg->audit_path);
	else
		n = snprintf(path, sizeof(path), "%s/audit.log", state);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	ao.sign_key_path = cfg->audit_key;
	/*
	 * The tools sync before an action with effects runs (tools.h), the
	 * session after a result is posted (session.c), sharing fdatasyncs
	 * across sessions; the protocol records (acked, lease, answered) ride
	 * along with the next sync, and close syncs the rest (docs/AUDIT.md,
	 * "Durability").
	 */
	ao.sync_every = AL_AUDIT_SYNC_EXPLICIT;
	rc = al_audit_open(path, &ao, &p->ctx.audit, err, sizeof(err));
	if (rc == -EBUSY && run_work_id != NULL && *run_work_id != '\0' &&
	    strspn(run_work_id,
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
		strlen(run_work_id)) {
		/*
		 * `worker run` started by `worker poll --on-work` on the same host
		 * and state dir: the poller holds the log (one writer per file).
		 * The item gets its own chain next to it rather than failing.
		 */
		char alt[PATH_MAX];

		n = snprintf(alt, sizeof(alt), "%s.%s", path, run_work_id);
		if (n < 0 || (size_t)n >= sizeof(alt))
			return -ENAMETOOLONG;
		al_warn(LOGC, "audit log %s is held by another process; this item writes %s", path,
			alt);
		rc = al_audit_open(alt, &ao, &p->ctx.audit, err, sizeof(err));
		memcpy(path, alt, sizeof(path));
	}
	if (rc < 0) {
		al_error(LOGC, "audit log %s: %s", path, err);
		return rc;
	}
	if ((rc = uv_loop_init(&p->loop)) < 0)
		return -ENOMEM;
	if ((rc = al_wc_new(&p->loop, cfg->base_url, cfg->ca_file, &p->ctx.client)) < 0) {
		al_error(LOGC, "client for %s: %s", cfg->base_url, strerror(-rc));
		uv_loop_close(&p->loop);
		return rc;
	}
	uv_timer_init(&p->loop, &p->poll_timer);
	p->poll_timer.data = p;
	uv_timer_init(&p->loop, &p->sweep_timer);
	p->sweep_timer.data = p;
	uv_signal_init(&p->loop, &p->sigterm);
	uv_signal_init(&p->loop, &p->sigint);
	p->sigterm.data = p->sigint.data = p;
	uv_signal_start(&p->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&p->sigint, signal_cb, SIGINT);
	/* A script or peer closing its end must not kill the worker. */
	signal(SIGPIPE, SIG_IGN);
	return 1; /* loop initialised */
}

static int poller_close(struct poller *p, int loop_ready)
{
	int rc, status = p->exit_status;

	if (loop_ready) {
		al_wc_free(p->ctx.client);
		uv_run(&p->loop, UV_RUN_DEFAULT);
		if (uv_loop_close(&p->loop) != 0)
			al_warn(LOGC, "event loop closed with handles still open");
	}
	if (p->ctx.fatal)
		status = 1;
	json_decref(p->ctx.inflight);
	p->ctx.inflight = NULL;
	al_journal_close(p->ctx.journal);
	if ((rc = al_audit_close(p->ctx.audit)) < 0) {
		al_error(LOGC, "audit log close: %s", strerror(-rc));
		status = 1;
	}
	return status;
}

int al_worker_poll(const struct al_worker_config *cfg)
{
	struct poller p;
	int rc;

	if (cfg->environment_id == NULL || cfg->environment_key == NULL) {
		al_error(LOGC, "worker poll: an environment id and ANTHROPIC_ENVIRONMENT_KEY are "
			       "required");
		return 1;
	}
	if ((rc = poller_open(&p, cfg, NULL)) < 0) {
		p.exit_status = 1;
		poller_close(&p, 0);
		return 1;
	}
	al_info(LOGC, "worker polling environment_id=%s worker_id=%s max_sessions=%u%s%s",
		cfg->environment_id, cfg->worker_id ? cfg->worker_id : "", cfg->max_sessions,
		cfg->on_work ? " on_work=" : "", cfg->on_work ? cfg->on_work : "");
	if (cfg->workspace_ttl_s > 0) {
		/* At start (what an earlier run left), then every half TTL, at most hourly. */
		uint64_t every = (uint64_t)cfg->workspace_ttl_s * 500;

		if (every < 1000)
			every = 1000;
		if (every > 3600 * 1000)
			every = 3600 * 1000;
		uv_timer_start(&p.sweep_timer, sweep_timer_cb, 0, every);
	}
	poll_next(&p);
	uv_run(&p.loop, UV_RUN_DEFAULT);
	al_info(LOGC, "worker stopped exit_status=%d", p.exit_status || p.ctx.fatal);
	return poller_close(&p, 1);
}

int al_worker_run(const struct al_worker_config *cfg, const struct al_worker_item *item)
{
	struct poller p;
	json_t *work;
	int rc;

	if (item->work_id == NULL || item->environment_id == NULL || item->session_id == NULL) {
		al_error(LOGC, "worker run: ANTHROPIC_WORK_ID, ANTHROPIC_ENVIRONMENT_ID and "
			       "ANTHROPIC_SESSION_ID are required");
		return 1;
	}
	if (item->secret == NULL && cfg->environment_key == NULL) {
		al_error(LOGC, "worker run: ANTHROPIC_WORK_SECRET or ANTHROPIC_ENVIRONMENT_KEY is "
			       "required");
		return 1;
	}
	if ((rc = poller_open(&p, cfg, item->work_id)) < 0) {
		p.exit_status = 1;
		poller_close(&p, 0);
		return 1;
	}
	p.run_mode = 1;
	work = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s?}", "id", item->work_id, "environment_id",
			 item->environment_id, "data", "type", "session", "id", item->session_id,
			 "secret", item->secret);
	if (work == NULL) {
		p.exit_status = 1;
		check_exit(&p);
	} else {
		claim(&p, work);
		work_wipe_secret(work);
		json_decref(work);
		check_exit(&p);
	}
	uv_run(&p.loop, UV_RUN_DEFAULT);
	return poller_close(&p, 1);
}
