/*
 * mcp.c - the worker's tools as an MCP server (mcp.h): the registration,
 * the queue that runs one call at a time on the thread pool, cancellation,
 * and the audit syncs.
 */
#include "worker/mcp.h"

#include "agent/transcript.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/rand.h"
#include "worker/tools.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define AUDIT_UNAVAILABLE "audit log unavailable"
#define NTOOLS		  (sizeof(tool_names) / sizeof(tool_names[0]))

static const char *const tool_names[] = {"bash", "read", "write", "edit", "glob", "grep"};

/*
 * What each tool's handler needs: the server and the tool's name.
 */
struct tool_ud {
	struct al_tool_mcp *tm;
	const char *name;
};

/* One tools/call, from its arrival to its result. */
struct job {
	struct job *next; /* the queue */
	struct al_tool_mcp *tm;
	al_mcp_call *call; /* NULL once the caller is gone: never touched again */
	const char *name;  /* one of tool_names */
	json_t *input;	   /* owned: a copy, the call's arguments die with the call */
	int reopen;	   /* open a fresh tool session first (the last bash was killed) */
	int cancelled;	   /* atomic: the caller went away */
	char call_id[32];
	struct al_tool_result res;
	int rc;
	char err[256]; /* reopen failure */
	uv_work_t work;
};

struct al_tool_mcp {
	uv_loop_t *loop;
	const struct al_worker_config *cfg; /* borrowed */
	al_audit_log *audit;		    /* borrowed; may be NULL */
	char *workspace;		    /* owned */
	char session_id[AL_ID_MAX];
	al_mcp_server *srv; /* owned */
	/*
	 * The tool session: written only on the pool (the running job, one at
	 * a time, when it reopens it; the close work at the end) and read by
	 * the loop for a cancel. The swap is made under the lock, so a cancel
	 * never meets a session being freed.
	 */
	pthread_mutex_t lock;
	struct al_tool_session *ts;
	/* Loop thread only. */
	struct job *head, **tail, *running;
	int reopen;	  /* the running bash was cancelled: its session is spent */
	int audit_broken; /* fail closed */
	unsigned syncs;	  /* audit syncs on the pool */
	uint64_t ncalls;
	int shutting, closing;
	void (*done)(void *ud);
	void *done_ud;
	uv_work_t close_work;
	struct tool_ud uds[NTOOLS];
};

static void pump(struct al_tool_mcp *tm);
static void maybe_close(struct al_tool_mcp *tm);

static void job_free(struct job *j)
{
	if (j == NULL)
		return;
	json_decref(j->input);
	al_tool_result_clear(&j->res);
	al_free(j);
}

/* ---- on the pool ---- */

static void run_work_cb(uv_work_t *w)
{
	struct job *j = w->data;
	struct al_tool_mcp *tm = j->tm;
	struct al_tool_session *old = NULL, *fresh = NULL;

	/* No session: the last reopen failed; try again rather than fail every call for good. */
	if (j->reopen || tm->ts == NULL) {
		pthread_mutex_lock(&tm->lock);
		old = tm->ts;
		tm->ts = NULL;
		pthread_mutex_unlock(&tm->lock);
		/* Destroys the spent sandbox (its processes are dead already); the files stay. */
		al_tool_session_close(old);
		j->rc = al_tool_session_open_dir(tm->cfg, tm->session_id, tm->workspace, tm->audit,
						 &fresh, j->err, sizeof(j->err));
		pthread_mutex_lock(&tm->lock);
		tm->ts = fresh;
		pthread_mutex_unlock(&tm->lock);
		if (j->rc < 0)
			return;
	}
	/* A cancel that came while the session was being replaced found none to kill. */
	if (__atomic_load_n(&j->cancelled, __ATOMIC_SEQ_CST)) {
		j->rc = -ECANCELED;
		return;
	}
	j->rc = al_tool_session_run(tm->ts, NULL, j->call_id, j->name, j->input, &j->res);
}

/* An audit sync after a call's result is posted (tools.h, Durability). */
struct sync_req {
	uv_work_t work;
	struct al_tool_mcp *tm;
	int rc;
};

static void sync_work_cb(uv_work_t *w)
{
	struct sync_req *r = w->data;

	r->rc = al_audit_sync(r->tm->audit);
}

static void close_work_cb(uv_work_t *w)
{
	struct al_tool_mcp *tm = w->data;

	al_tool_session_close(tm->ts);
	tm->ts = NULL;
}

/* ---- on the loop ---- */

static void sync_after_cb(uv_work_t *w, int status)
{
	struct sync_req *r = w->data;
	struct al_tool_mcp *tm = r->tm;

	if (r->rc < 0 && !tm->audit_broken) {
		tm->audit_broken = 1;
		al_error("sandbox-mcp", "audit: sync failed (%s): refusing every later call",
			 strerror(-r->rc));
	}
	al_free(r);
	tm->syncs--;
	maybe_close(tm);
}

static void queue_sync(struct al_tool_mcp *tm)
{
	struct sync_req *r = al_calloc(1, sizeof(*r));

	if (r == NULL)
		return; /* the next pre-action sync or the close covers these records */
	r->tm = tm;
	r->work.data = r;
	if (uv_queue_work(tm->loop, &r->work, sync_work_cb, sync_after_cb) < 0) {
		al_free(r);
		return;
	}
	tm->syncs++;
}

/* Answers the call (if its caller is still there) with the tool's result. */
static void answer(struct job *j)
{
	json_t *r;

	if (j->call == NULL)
		return;
	if (j->rc < 0 && j->rc != -ECANCELED && j->res.content == NULL) {
		/* The tool session could not be reopened, or memory ran out. */
		if (j->rc == -ENOMEM)
			al_mcp_call_errorf(j->call, -32603, "out of memory");
		else
			al_mcp_call_errorf(j->call, -32603, "the sandbox is unavailable: %s",
					   j->err[0] ? j->err : strerror(-j->rc));
		j->call = NULL;
		return;
	}
	r = json_pack("{s:O, s:b}", "content", j->res.content, "isError", j->res.is_error);
	if (r)
		al_mcp_call_result(j->call, r);
	else
		al_mcp_call_errorf(j->call, -32603, "out of memory");
	j->call = NULL;
}

static void run_after_cb(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct al_tool_mcp *tm = j->tm;

	tm->running = NULL;
	if (j->res.audit_failed && !tm->audit_broken) {
		tm->audit_broken = 1;
		al_error("sandbox-mcp", "audit: a record could not be written: refusing every "
					"later call");
	}
	if (j->rc < 0 && j->err[0])
		al_error("sandbox-mcp", "tool session: %s", j->err);
	answer(j);
	if (tm->audit && !tm->audit_broken)
		queue_sync(tm);
	job_free(j);
	pump(tm);
	maybe_close(tm);
}

static void pump(struct al_tool_mcp *tm)
{
	struct job *j = tm->head;

	if (tm->running || j == NULL || tm->shutting)
		return;
	tm->head = j->next;
	if (tm->head == NULL)
		tm->tail = &tm->head;
	j->next = NULL;
	j->reopen = tm->reopen;
	tm->reopen = 0;
	j->work.data = j;
	if (uv_queue_work(tm->loop, &j->work, run_work_cb, run_after_cb) < 0) {
		tm->reopen = j->reopen;
		if (j->call)
			al_mcp_call_errorf(j->call, -32603, "cannot schedule the call");
		job_free(j);
		return;
	}
	tm->running = j;
}

/* The caller went away: unqueue, or kill a running bash. */
static void cancel_cb(al_mcp_call *c, void *ud)
{
	struct job *j = ud, **pp;
	struct al_tool_mcp *tm = j->tm;

	j->call = NULL;
	__atomic_store_n(&j->cancelled, 1, __ATOMIC_SEQ_CST);
	if (tm->running != j) {
		for (pp = &tm->head; *pp; pp = &(*pp)->next) {
			if (*pp == j) {
				*pp = j->next;
				if (*pp == NULL)
					tm->tail = pp;
				break;
			}
		}
		job_free(j);
		return;
	}
	/*
	 * Running. A file tool ends in milliseconds: let it, drop its result. A
	 * bash command may run for minutes: kill it. That spends the session
	 * (tools.h: later runs are refused), so the next call opens a fresh one.
	 */
	if (strcmp(j->name, "bash") == 0) {
		pthread_mutex_lock(&tm->lock);
		if (tm->ts) {
			al_tool_session_cancel(tm->ts);
			tm->reopen = 1;
		}
		pthread_mutex_unlock(&tm->lock);
	}
}

static void tool_cb(al_mcp_call *c, json_t *args, void *ud)
{
	const struct tool_ud *tu = ud;
	struct al_tool_mcp *tm = tu->tm;
	const char *name = tu->name;
	struct job *j = NULL;

	if (tm->shutting) {
		al_mcp_call_errorf(c, -32603, "the server is shutting down");
		return;
	}
	if (tm->audit_broken) {
		/* The worker's text; a result, so a model reads it too. */
		json_t *r = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
				      AUDIT_UNAVAILABLE, "isError", 1);
		if (r)
			al_mcp_call_result(c, r);
		else
			al_mcp_call_errorf(c, -32603, "out of memory");
		return;
	}
	if ((j = al_calloc(1, sizeof(*j))) == NULL || (j->input = json_deep_copy(args)) == NULL) {
		job_free(j);
		al_mcp_call_errorf(c, -32603, "out of memory");
		return;
	}
	j->tm = tm;
	j->call = c;
	j->name = name;
	j->res.exit_code = -1;
	snprintf(j->call_id, sizeof(j->call_id), "mcp-%llu", (unsigned long long)++tm->ncalls);
	*tm->tail = j;
	tm->tail = &j->next;
	al_mcp_call_on_cancel(c, cancel_cb, j);
	pump(tm);
}

/* ---- set-up and teardown ---- */

static int add_tools(struct al_tool_mcp *tm)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < NTOOLS; i++) {
		const char *n = tool_names[i];
		int ro = strcmp(n, "read") == 0 || strcmp(n, "glob") == 0 || strcmp(n, "grep") == 0;
		int net = strcmp(n, "bash") == 0 && tm->cfg->allow_hosts && tm->cfg->allow_hosts[0];
		json_t *def = al_transcript_builtin_tool(n);
		struct al_mcp_tool t = {0};
		struct tool_ud *ud = &tm->uds[i];

		ud->tm = tm;
		ud->name = n;
		t.name = n;
		t.description = json_string_value(json_object_get(def, "description"));
		t.input_schema = json_object_get(def, "input_schema");
		/* Hints for a client's confirmation policy. */
		t.annotations =
		    json_pack("{s:b, s:b, s:b, s:b}", "readOnlyHint", ro, "destructiveHint", !ro,
			      "idempotentHint", ro, "openWorldHint", net);
		t.fn = tool_cb;
		t.ud = ud;
		rc = def && t.annotations ? al_mcp_server_add_tool(tm->srv, &t) : -ENOMEM;
		json_decref(t.annotations);
		json_decref(def);
	}
	return rc;
}

int al_tool_mcp_new(uv_loop_t *loop, const struct al_worker_config *cfg, const char *workspace,
		    al_audit_log *audit, struct al_tool_mcp **out, char *err, size_t errlen)
{
	struct al_mcp_server_opts so = {
	    .name = "airlock-sandbox",
	    .version = AL_VERSION,
	    .title = "airlock sandbox",
	    .instructions =
		"Tools run in a hardened sandbox (own user, mount, pid and network namespaces; "
		"seccomp; Landlock) whose working directory is the workspace: paths are "
		"relative to it and cannot leave it. bash is one persistent shell shared by "
		"every client of this server; calls run one at a time, in arrival order.",
	};
	struct al_tool_mcp *tm;
	int rc;

	*out = NULL;
	tm = al_calloc(1, sizeof(*tm));
	if (tm == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&tm->lock, NULL);
	tm->loop = loop;
	tm->cfg = cfg;
	tm->audit = audit;
	tm->tail = &tm->head;
	if (al_id_new("mcp", tm->session_id, sizeof(tm->session_id)) < 0)
		snprintf(tm->session_id, sizeof(tm->session_id), "mcp_unknown");
	/* The id names the session in the audit log; it must pass tools.c's id check. */
	for (char *p = tm->session_id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-'))
			*p = '_';
	if ((tm->workspace = al_strdup(workspace)) == NULL ||
	    (tm->srv = al_mcp_server_new(&so)) == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = al_tool_session_open_dir(cfg, tm->session_id, workspace, audit, &tm->ts, err,
					   errlen)) < 0)
		goto fail;
	if ((rc = add_tools(tm)) < 0) {
		snprintf(err, errlen, "cannot register the tools: %s", strerror(-rc));
		goto fail;
	}
	*out = tm;
	return 0;
fail:
	al_tool_mcp_free(tm);
	return rc;
}

al_mcp_server *al_tool_mcp_server(struct al_tool_mcp *tm)
{
	return tm->srv;
}

static void close_after_cb(uv_work_t *w, int status)
{
	struct al_tool_mcp *tm = w->data;

	if (tm->done)
		tm->done(tm->done_ud);
}

/* Once shutting down and nothing runs: destroy the sandbox on the pool, then done. */
static void maybe_close(struct al_tool_mcp *tm)
{
	if (!tm->shutting || tm->closing || tm->running || tm->syncs)
		return;
	tm->closing = 1;
	tm->close_work.data = tm;
	if (uv_queue_work(tm->loop, &tm->close_work, close_work_cb, close_after_cb) < 0) {
		close_work_cb(&tm->close_work);
		close_after_cb(&tm->close_work, 0);
	}
}

void al_tool_mcp_shutdown(struct al_tool_mcp *tm, void (*done)(void *ud), void *ud)
{
	struct job *j;

	tm->shutting = 1;
	tm->done = done;
	tm->done_ud = ud;
	/* Calls still queued (a transport that did not cancel them): answered, not run. */
	while ((j = tm->head) != NULL) {
		tm->head = j->next;
		if (j->call)
			al_mcp_call_errorf(j->call, -32603, "the server is shutting down");
		job_free(j);
	}
	tm->tail = &tm->head;
	if (tm->running && strcmp(tm->running->name, "bash") == 0) {
		pthread_mutex_lock(&tm->lock);
		if (tm->ts)
			al_tool_session_cancel(tm->ts);
		pthread_mutex_unlock(&tm->lock);
	}
	maybe_close(tm);
}

int al_tool_mcp_audit_failed(const struct al_tool_mcp *tm)
{
	return tm->audit_broken;
}

void al_tool_mcp_free(struct al_tool_mcp *tm)
{
	if (tm == NULL)
		return;
	/* Blocking if a sandbox is left (no shutdown ran): start-up failures and tests. */
	al_tool_session_close(tm->ts);
	al_mcp_server_free(tm->srv);
	al_free(tm->workspace);
	pthread_mutex_destroy(&tm->lock);
	al_free(tm);
}
