/*
 * stdio_pool.c - a pool of child MCP servers on stdio behind the gateway.
 *
 * Life of a child (struct child): spawned in its own process group with a
 * clean environment, it gets "initialize" (falling back to server/discover
 * when initialize is refused), then notifications/initialized, and is READY.
 * Anything wrong (exit, EOF on stdout, a line that is not JSON-RPC, a line
 * over AL_MCP_MAX_MESSAGE, silence past the timeout) makes it DEAD at once:
 * its slot forgets it and schedules a replacement after a backoff, its
 * requests are answered -32603, its stdin is closed and its group gets
 * SIGTERM, then SIGKILL 2 s later. The struct lives on until libuv has
 * reported the exit (the process handle must stay open until then, or the
 * child is never reaped) and every handle has closed.
 *
 * Reentrancy: caller callbacks run only from libuv callbacks (or, for
 * answers the pool makes itself, from inside al_gw_stdio_pool_send), and
 * they may call send, cancel or even pool_free. Nothing is freed in a
 * callback's stack that the code after the callback still touches: children
 * and the pool are freed from close callbacks, and a request whose callback
 * is running is only marked (cancelled / zombie) and finished afterwards.
 */
#include "gateway/stdio_pool.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "mcp/jsonrpc.h"
#include "mcp/meta.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOGC "gateway"

/* The PATH children get unless the route's env sets one. */
#define FIXED_PATH     "/usr/local/bin:/usr/bin:/bin"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* A child that stayed up this long earns a fresh backoff when it dies. */
#define BACKOFF_RESET_MS 10000
#define KILL_GRACE_MS	 2000
/* After the exit, stderr is drained this long (a grandchild may hold it). */
#define STDERR_DRAIN_MS 200
/* stderr lines longer than this are logged in pieces. */
#define STDERR_LINE_MAX 4096
/* Unwritten bytes queued to one child beyond which it gets no new request. */
#define WRITE_QUEUE_MAX (4 * (size_t)AL_MCP_MAX_MESSAGE)

#define MSG_EXITED    "upstream server exited"
#define MSG_GARBAGE   "upstream server wrote a line that is not JSON-RPC"
#define MSG_TOO_LONG  "upstream server wrote a line over the 8 MiB limit"
#define MSG_SILENT    "upstream server stopped answering"
#define MSG_TIMEOUT   "upstream request timed out"
#define MSG_HANDSHAKE "upstream server refused initialize and server/discover"

struct child;

struct al_gw_stdio_req {
	al_gw_stdio_pool *p;
	struct child *c; /* NULL once unlinked */
	struct al_gw_stdio_req *prev, *next;
	long long cid;	   /* the id on the child */
	json_t *id;	   /* owned: the caller's id */
	json_t *token;	   /* owned: the caller's progressToken, or NULL */
	uint64_t rx_seen;  /* the child's line count when this was written */
	uint64_t deadline; /* when written + timeout */
	al_gw_stdio_cb cb;
	void *ud;
	int in_cb;	    /* a non-final callback is running */
	int cancelled;	    /* cancelled while in_cb: free after it */
	const char *zombie; /* child failed while in_cb: answer this after it */
};

enum child_state { C_INIT, C_DISCOVER, C_READY, C_DEAD };

struct slot {
	al_gw_stdio_pool *p;
	size_t idx;
	struct child *c; /* the current incarnation, or NULL */
	uv_timer_t respawn;
	uint64_t backoff_ms;
};

struct child {
	al_gw_stdio_pool *p;
	struct slot *s; /* NULL once dead */
	enum child_state st;
	uv_process_t proc;
	uv_pipe_t in, out, err;
	uv_timer_t timer; /* handshake and request deadlines */
	uv_timer_t kill;  /* SIGKILL after the grace period, then stderr drain */
	int proc_open, in_open, out_open, err_open, timer_open, kill_open;
	int exited;
	int err_eof; /* stderr has ended: nothing left to drain at the exit */
	int broken;  /* a write failed at once: fail it from the timer, not inside send */
	pid_t pid;
	al_buf obuf, ebuf;
	long long next_id;
	long long hs_id;   /* the handshake request's id */
	uint64_t rx_lines; /* lines read from stdout: a sign of life */
	uint64_t ready_ms;
	struct al_gw_stdio_req *head, *tail;
	size_t inflight;
};

struct al_gw_stdio_pool {
	uv_loop_t *loop;
	char *route;
	char *file;  /* argv[0] as given: the child's execvp finds it on its PATH */
	char **args; /* owned, NULL-terminated */
	char **env;  /* owned, NULL-terminated: opts->env plus PATH */
	char *cwd;
	size_t size;
	uint64_t timeout_ms;
	struct slot *slots;
	size_t rr; /* where the next least-busy search starts, for ties */
	size_t nready;
	size_t nchildren;    /* child structs not yet freed */
	size_t nslot_timers; /* respawn timers not yet closed */
	json_t *init_result; /* owned: the last initialize result, or NULL */
	json_t *disc_result; /* owned: the last server/discover result (modern child) */
	json_t *oom_resp;    /* owned: the final answer when even an error cannot be built */
	int closing;
};

static void child_spawn(struct slot *s);
static void child_fail(struct child *c, const char *reason);
static void timer_cb(uv_timer_t *t);

/* ---- small helpers ---- */

static void strv_free(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i]; i++)
		al_free(v[i]);
	al_free(v);
}

static void pool_release(al_gw_stdio_pool *p)
{
	json_decref(p->init_result);
	json_decref(p->disc_result);
	json_decref(p->oom_resp);
	strv_free(p->args);
	strv_free(p->env);
	al_free(p->route);
	al_free(p->file);
	al_free(p->cwd);
	al_free(p->slots);
	al_free(p);
}

/* The pool goes once it is being freed and its last handle has closed. */
static void pool_maybe_release(al_gw_stdio_pool *p)
{
	if (p->closing && p->nchildren == 0 && p->nslot_timers == 0)
		pool_release(p);
}

static void req_unlink(struct al_gw_stdio_req *r)
{
	struct child *c = r->c;

	if (c == NULL)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		c->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		c->tail = r->prev;
	r->prev = r->next = NULL;
	r->c = NULL;
	c->inflight--;
}

static void req_free(struct al_gw_stdio_req *r)
{
	req_unlink(r);
	json_decref(r->id);
	json_decref(r->token);
	al_free(r);
}

/* A JSON-RPC error response to the caller's id. NULL when out of memory. */
static json_t *error_response(const json_t *id, int code, const char *message)
{
	return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
			 code, "message", message);
}

/* Gives r its final message (unless the pool is closing) and frees it. */
static void req_finish(struct al_gw_stdio_req *r, const json_t *msg)
{
	al_gw_stdio_cb cb = r->cb;
	void *ud = r->ud;
	int closing = r->p->closing;

	req_unlink(r);
	if (!closing)
		cb(ud, msg, 1);
	req_free(r);
}

static void req_finish_error(struct al_gw_stdio_req *r, const char *message)
{
	json_t *resp = error_response(r->id, AL_MCP_INTERNAL_ERROR, message);

	/*
	 * Out of memory: the caller still needs a final message (NULL would
	 * mean "notification written"), so it gets the one made in advance,
	 * without its id.
	 */
	req_finish(r, resp ? resp : r->p->oom_resp);
	json_decref(resp);
}

/* ---- writing to a child ---- */

struct wreq {
	uv_write_t w;
	struct child *c;
	char *data; /* owned: the line */
};

static void write_cb(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct child *c = wr->c;

	al_free(wr->data);
	al_free(wr);
	/* EPIPE: the child closed its stdin (it is exiting). ECANCELED: we closed it. */
	if (status < 0 && status != UV_ECANCELED)
		child_fail(c, MSG_EXITED);
}

/* Queues msg as one line. 0, -ENOMEM, or -EPIPE when stdin is already gone. */
static int child_write(struct child *c, const json_t *msg)
{
	al_buf b = {0};
	struct wreq *wr = NULL;
	uv_buf_t ub;
	int rc;

	if (!c->in_open || c->st == C_DEAD)
		return -EPIPE;
	if ((rc = al_mcp_msg_dump(msg, &b)) < 0 || (rc = al_buf_append(&b, "\n", 1)) < 0)
		goto done;
	if ((wr = al_malloc(sizeof(*wr))) == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	wr->c = c;
	ub.len = b.len;
	ub.base = wr->data = al_buf_steal(&b, NULL);
	if ((rc = uv_write(&wr->w, (uv_stream_t *)&c->in, &ub, 1, write_cb)) < 0) {
		/*
		 * Only a stream libuv no longer considers writable gets here. The
		 * caller may be inside al_gw_stdio_pool_send: failing the child now
		 * would run other callers' callbacks inside it, so the timer does.
		 */
		al_free(wr->data);
		al_free(wr);
		c->broken = 1;
		if (c->timer_open)
			uv_timer_start(&c->timer, timer_cb, 0, 0);
		rc = -EPIPE;
		goto done;
	}
	rc = 0;
done:
	al_buf_free(&b);
	return rc;
}

static void send_cancelled(struct child *c, long long cid, const char *reason)
{
	json_t *n = al_mcp_notification_new(
	    "notifications/cancelled",
	    json_pack("{s:I, s:s}", "requestId", (json_int_t)cid, "reason", reason));

	/* Best effort: a child that cannot take it is failing anyway. */
	if (n)
		child_write(c, n);
	json_decref(n);
}

/* ---- handles and teardown ---- */

static void child_release(struct child *c)
{
	al_gw_stdio_pool *p = c->p;

	al_buf_free(&c->obuf);
	al_buf_free(&c->ebuf);
	al_free(c);
	p->nchildren--;
	pool_maybe_release(p);
}

static void child_closed_cb(uv_handle_t *h)
{
	struct child *c = h->data;

	if (h == (uv_handle_t *)&c->proc)
		c->proc_open = 0;
	else if (h == (uv_handle_t *)&c->in)
		c->in_open = 0;
	else if (h == (uv_handle_t *)&c->out)
		c->out_open = 0;
	else if (h == (uv_handle_t *)&c->err)
		c->err_open = 0;
	else if (h == (uv_handle_t *)&c->timer)
		c->timer_open = 0;
	else if (h == (uv_handle_t *)&c->kill)
		c->kill_open = 0;
	if (!c->proc_open && !c->in_open && !c->out_open && !c->err_open && !c->timer_open &&
	    !c->kill_open)
		child_release(c);
}

/* Starts closing h once; open is its flag, cleared by child_closed_cb. */
static void close_once(uv_handle_t *h, int open)
{
	if (open && !uv_is_closing(h))
		uv_close(h, child_closed_cb);
}

static void log_stderr_line(struct child *c, const char *s, size_t n)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	al_info(LOGC, "route=%s pid=%d stderr: %.*s", c->p->route, (int)c->pid, (int)n, s);
}

static void flush_stderr(struct child *c)
{
	if (c->ebuf.len > 0)
		log_stderr_line(c, c->ebuf.data, c->ebuf.len);
	al_buf_reset(&c->ebuf);
}

/* Closes everything that is left once the process has been reaped. */
static void child_close_rest(struct child *c)
{
	if (c->kill_open)
		uv_timer_stop(&c->kill);
	close_once((uv_handle_t *)&c->proc, c->proc_open);
	close_once((uv_handle_t *)&c->in, c->in_open);
	close_once((uv_handle_t *)&c->out, c->out_open);
	close_once((uv_handle_t *)&c->timer, c->timer_open);
	close_once((uv_handle_t *)&c->kill, c->kill_open);
	if (c->err_open && !uv_is_closing((uv_handle_t *)&c->err)) {
		flush_stderr(c);
		uv_close((uv_handle_t *)&c->err, child_closed_cb);
	}
}

static void drain_done_cb(uv_timer_t *t)
{
	child_close_rest(t->data);
}

static void kill_cb(uv_timer_t *t)
{
	struct child *c = t->data;

	if (!c->exited) {
		al_warn(LOGC, "route=%s pid=%d still running %d ms after SIGTERM: SIGKILL",
			c->p->route, (int)c->pid, KILL_GRACE_MS);
		/* The whole group: a wrapper (npx, sh -c) leaves its server behind otherwise. */
		if (kill(-c->pid, SIGKILL) < 0)
			uv_process_kill(&c->proc, SIGKILL);
	}
}

static void signal_child(struct child *c, int sig)
{
	if (c->exited || c->pid <= 0)
		return;
	if (kill(-c->pid, sig) < 0)
		uv_process_kill(&c->proc, sig);
}

static void exit_cb(uv_process_t *proc, int64_t status, int sig)
{
	struct child *c = proc->data;

	c->exited = 1;
	/*
	 * What the server started stays in its process group after it is
	 * gone (a wrapper's child, a helper). Kill it now: this is the one
	 * moment the group id is known to be the server's; once the group
	 * is empty the number may be reused, so later is not safe.
	 */
	kill(-c->pid, SIGKILL);
	if (c->st != C_DEAD)
		al_warn(LOGC, "route=%s pid=%d exited status=%lld signal=%d", c->p->route,
			(int)c->pid, (long long)status, sig);
	child_fail(c, MSG_EXITED);
	/*
	 * stderr may still hold the last words of the child: read on for a
	 * moment (EOF closes it sooner), then close what is left.
	 */
	if (c->err_open && !c->err_eof && c->kill_open) {
		uv_timer_stop(&c->kill);
		uv_timer_start(&c->kill, drain_done_cb, STDERR_DRAIN_MS, 0);
		close_once((uv_handle_t *)&c->proc, c->proc_open);
		close_once((uv_handle_t *)&c->timer, c->timer_open);
	} else {
		child_close_rest(c);
	}
}

static void respawn_cb(uv_timer_t *t)
{
	struct slot *s = t->data;

	if (!s->p->closing && s->c == NULL)
		child_spawn(s);
}

static void schedule_respawn(struct slot *s, uint64_t lived_ms)
{
	uint64_t delay;

	if (lived_ms >= BACKOFF_RESET_MS)
		s->backoff_ms = BACKOFF_MIN_MS;
	delay = s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
	uv_timer_start(&s->respawn, respawn_cb, delay, 0);
}

/*
 * The child is finished with: answer its requests with `reason`, free its
 * slot for a replacement, close its stdin (the polite shutdown signal),
 * stop reading its stdout, and SIGTERM its group with SIGKILL to follow.
 */
static void child_fail(struct child *c, const char *reason)
{
	al_gw_stdio_pool *p = c->p;
	struct al_gw_stdio_req *r;

	if (c->st == C_DEAD)
		return;
	if (c->st == C_READY)
		p->nready--;
	if (p->closing)
		al_info(LOGC, "route=%s pid=%d stopping", p->route, (int)c->pid);
	else
		al_warn(LOGC, "route=%s pid=%d replaced: %s", p->route, (int)c->pid, reason);
	c->st = C_DEAD;
	if (c->s) {
		uint64_t lived = c->ready_ms ? al_mono_ms() - c->ready_ms : 0;

		c->s->c = NULL;
		if (!p->closing)
			schedule_respawn(c->s, lived);
		c->s = NULL;
	}
	if (c->timer_open)
		uv_timer_stop(&c->timer);
	close_once((uv_handle_t *)&c->in, c->in_open);
	close_once((uv_handle_t *)&c->out, c->out_open);
	signal_child(c, SIGTERM);
	if (!c->exited && c->kill_open)
		uv_timer_start(&c->kill, kill_cb, KILL_GRACE_MS, 0);
	/* Each request is unlinked before its callback, which may do anything. */
	while ((r = c->head) != NULL) {
		req_unlink(r);
		if (r->in_cb)
			r->zombie = reason;
		else
			req_finish_error(r, reason);
	}
}

/* ---- reading from a child ---- */

/* Reads land straight in the child's line buffer (stdout or stderr). */
static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct child *c = h->data;
	al_buf *b = h == (uv_handle_t *)&c->out ? &c->obuf : &c->ebuf;

	if (al_buf_reserve(b, 65536) < 0) {
		/* libuv turns an empty buffer into UV_ENOBUFS for the read callback. */
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = b->data + b->len;
	buf->len = b->cap - b->len - 1;
}

static void buf_grew(al_buf *b, ssize_t n)
{
	b->len += (size_t)n;
	b->data[b->len] = '\0';
}

static void err_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct child *c = st->data;
	size_t off = 0;

	if (n == UV_ENOBUFS) {
		al_buf_reset(&c->ebuf);
		return;
	}
	if (n < 0) {
		flush_stderr(c);
		uv_read_stop(st);
		c->err_eof = 1;
		/* EOF after the exit: nothing more to drain. */
		if (c->exited)
			child_close_rest(c);
		return;
	}
	buf_grew(&c->ebuf, n);
	for (;;) {
		char *nl = memchr(c->ebuf.data + off, '\n', c->ebuf.len - off);
		size_t len = nl ? (size_t)(nl - (c->ebuf.data + off)) : c->ebuf.len - off;

		if (nl == NULL && len < STDERR_LINE_MAX)
			break;
		if (len > STDERR_LINE_MAX)
			len = STDERR_LINE_MAX;
		log_stderr_line(c, c->ebuf.data + off, len);
		off += len + (nl && c->ebuf.data + off + len == nl ? 1 : 0);
	}
	al_buf_consume(&c->ebuf, off);
}

/* Looks a request up by its id on the child (linear: in-flight lists are short). */
static struct al_gw_stdio_req *find_req(struct child *c, long long cid)
{
	for (struct al_gw_stdio_req *r = c->head; r; r = r->next)
		if (r->cid == cid)
			return r;
	return NULL;
}

/* Arms the deadline timer for the oldest request (the list is in send order). */
static void arm_timer(struct child *c);

/* A non-final message for r; r may be cancelled or orphaned by the callback. */
static void deliver_partial(struct al_gw_stdio_req *r, const json_t *msg)
{
	r->in_cb = 1;
	r->cb(r->ud, msg, 0);
	r->in_cb = 0;
	if (r->cancelled) {
		req_free(r);
	} else if (r->zombie) {
		req_finish_error(r, r->zombie);
	}
}

/* msg with "id" replaced (a shallow copy), or NULL when out of memory. */
static json_t *with_id(const json_t *msg, json_t *id)
{
	json_t *out = json_copy((json_t *)msg);

	if (out == NULL || json_object_set(out, "id", id) < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static void handshake_send_discover(struct child *c);

static void handshake_result(struct child *c, const al_mcp_msg *m)
{
	al_gw_stdio_pool *p = c->p;
	const char *how = c->st == C_INIT ? "initialize" : "server/discover";
	json_t *n = NULL;

	if (c->st == C_INIT && m->kind == AL_MCP_ERROR_RESPONSE) {
		/* A modern-only server refuses initialize: probe as the stdio page says. */
		handshake_send_discover(c);
		return;
	}
	if (m->kind == AL_MCP_ERROR_RESPONSE) {
		child_fail(c, MSG_HANDSHAKE);
		return;
	}
	if (c->st == C_INIT) {
		n = al_mcp_notification_new("notifications/initialized", NULL);
		if (n == NULL || child_write(c, n) < 0) {
			json_decref(n);
			child_fail(c, MSG_EXITED);
			return;
		}
		json_decref(n);
		json_decref(p->init_result);
		p->init_result = json_incref(m->result);
	} else {
		json_decref(p->disc_result);
		p->disc_result = json_incref(m->result);
	}
	uv_timer_stop(&c->timer);
	c->st = C_READY;
	c->ready_ms = al_mono_ms();
	p->nready++;
	al_info(LOGC, "route=%s pid=%d ready (%s)", p->route, (int)c->pid, how);
}

static void handle_response(struct child *c, al_mcp_msg *m)
{
	struct al_gw_stdio_req *r;
	json_t *out;

	if (m->id.kind != AL_MCP_ID_INT)
		goto unknown;
	if ((c->st == C_INIT || c->st == C_DISCOVER) && m->id.num == c->hs_id) {
		handshake_result(c, m);
		return;
	}
	if ((r = find_req(c, m->id.num)) == NULL)
		goto unknown;
	out = with_id(m->root, r->id);
	if (out == NULL) {
		req_finish_error(r, "out of memory");
		return;
	}
	req_finish(r, out);
	json_decref(out);
	arm_timer(c);
	return;
unknown:
	/* A response to a cancelled or timed-out request arrives late: normal. */
	al_debug(LOGC, "route=%s pid=%d response to an unknown id dropped", c->p->route,
		 (int)c->pid);
}

/*
 * A request from the child. The gateway fronts stateless HTTP callers and
 * has no channel to send it on, so it is refused; ping is answered, since
 * a legacy server may use it as a keepalive.
 */
static void handle_server_request(struct child *c, al_mcp_msg *m)
{
	al_mcp_error e = {0};
	json_t *resp;

	if (strcmp(m->method, "ping") == 0) {
		resp = al_mcp_result_new(&m->id, json_object());
	} else {
		al_mcp_error_set(&e, AL_MCP_METHOD_NOT_FOUND, 200, NULL,
				 "the gateway does not relay server-to-client requests (%s)",
				 m->method);
		resp = al_mcp_error_response_new(&m->id, &e);
		al_debug(LOGC, "route=%s pid=%d server-to-client request %s refused", c->p->route,
			 (int)c->pid, m->method);
	}
	if (resp)
		child_write(c, resp);
	json_decref(resp);
	al_mcp_error_clear(&e);
}

static void handle_notification(struct child *c, al_mcp_msg *m)
{
	struct al_gw_stdio_req *r = NULL;
	json_t *tok, *out = NULL, *params = NULL;

	if (strcmp(m->method, "notifications/progress") == 0) {
		/* Our token is the request's id on the child (see pool_send). */
		tok = m->params ? json_object_get(m->params, "progressToken") : NULL;
		if (json_is_integer(tok))
			r = find_req(c, json_integer_value(tok));
		if (r == NULL || r->token == NULL)
			goto drop;
		if ((params = json_copy(m->params)) == NULL ||
		    json_object_set(params, "progressToken", r->token) < 0 ||
		    (out = json_copy(m->root)) == NULL ||
		    json_object_set(out, "params", params) < 0)
			goto drop;
	} else if (strcmp(m->method, "notifications/message") == 0) {
		/*
		 * A log message names no request. With one request in flight it
		 * can only be that one's; with several the owner is unknowable
		 * and it is dropped.
		 */
		if (c->inflight != 1)
			goto drop;
		r = c->head;
		out = json_incref(m->root);
	} else {
		/*
		 * cancelled, list_changed, resources/updated...: nothing a
		 * request's caller can use (the gateway keeps no subscriptions).
		 */
		goto drop;
	}
	deliver_partial(r, out);
	goto done;
drop:
	al_debug(LOGC, "route=%s pid=%d %s not relayed", c->p->route, (int)c->pid, m->method);
done:
	json_decref(params);
	json_decref(out);
}

static void handle_line(struct child *c, const char *s, size_t n)
{
	al_mcp_msg m = {0};
	al_mcp_error e = {0};
	int rc;

	while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0)
		return;
	c->rx_lines++;
	if (n > AL_MCP_MAX_MESSAGE) {
		/* Whole in one read: the check in out_read_cb did not see it growing. */
		child_fail(c, MSG_TOO_LONG);
		goto done;
	}
	rc = al_mcp_msg_parse(s, n, &m, &e);
	if (rc == -ENOMEM) {
		al_error(LOGC, "route=%s pid=%d out of memory reading a message", c->p->route,
			 (int)c->pid);
		goto done;
	}
	if (rc < 0) {
		al_warn(LOGC, "route=%s pid=%d stdout: %s", c->p->route, (int)c->pid, e.message);
		child_fail(c, MSG_GARBAGE);
		goto done;
	}
	switch (m.kind) {
	case AL_MCP_RESULT:
	case AL_MCP_ERROR_RESPONSE:
		handle_response(c, &m);
		break;
	case AL_MCP_REQUEST:
		handle_server_request(c, &m);
		break;
	case AL_MCP_NOTIFICATION:
		handle_notification(c, &m);
		break;
	}
done:
	al_mcp_msg_free(&m);
	al_mcp_error_clear(&e);
}

static void out_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct child *c = st->data;
	size_t off = 0;

	if (n == UV_ENOBUFS) {
		child_fail(c, "out of memory reading the upstream server");
		return;
	}
	if (n < 0) {
		/* EOF or an error on stdout: the child cannot answer any more. */
		child_fail(c, MSG_EXITED);
		return;
	}
	buf_grew(&c->obuf, n);
	if (c->st == C_DEAD)
		return;
	/* Lines are handled one by one; any of them may kill the child. */
	while (c->st != C_DEAD) {
		char *nl = memchr(c->obuf.data + off, '\n', c->obuf.len - off);

		if (nl == NULL)
			break;
		handle_line(c, c->obuf.data + off, (size_t)(nl - (c->obuf.data + off)));
		off = (size_t)(nl - c->obuf.data) + 1;
	}
	if (c->st == C_DEAD)
		return;
	al_buf_consume(&c->obuf, off);
	if (c->obuf.len > AL_MCP_MAX_MESSAGE) {
		al_warn(LOGC, "route=%s pid=%d stdout: a line over %u bytes", c->p->route,
			(int)c->pid, AL_MCP_MAX_MESSAGE);
		child_fail(c, MSG_TOO_LONG);
	}
}

/* ---- deadlines ---- */

static void timer_cb(uv_timer_t *t)
{
	struct child *c = t->data;
	uint64_t now = al_mono_ms();
	struct al_gw_stdio_req *r;

	if (c->broken) {
		child_fail(c, MSG_EXITED);
		return;
	}
	if (c->st == C_INIT || c->st == C_DISCOVER) {
		child_fail(c, MSG_SILENT);
		return;
	}
	/*
	 * The oldest request is overdue. If the child has said nothing at all
	 * since it was sent, the child is wedged: replace it. Otherwise it is
	 * alive and only this request is slow: answer it, cancel it upstream.
	 */
	r = c->head;
	if (r && r->deadline <= now && c->rx_lines == r->rx_seen) {
		child_fail(c, MSG_SILENT);
		return;
	}
	while (c->st != C_DEAD && (r = c->head) != NULL && r->deadline <= now) {
		long long cid = r->cid;

		req_unlink(r);
		if (r->in_cb)
			r->zombie = MSG_TIMEOUT;
		else
			req_finish_error(r, MSG_TIMEOUT);
		send_cancelled(c, cid, "timed out at the gateway");
	}
	arm_timer(c);
}

static void arm_timer(struct child *c)
{
	uint64_t now = al_mono_ms();

	if (c->st != C_READY || !c->timer_open || c->broken)
		return;
	if (c->head == NULL) {
		uv_timer_stop(&c->timer);
		return;
	}
	uv_timer_start(&c->timer, timer_cb, c->head->deadline > now ? c->head->deadline - now : 0,
		       0);
}

/* ---- spawning and the handshake ---- */

static json_t *client_info(void)
{
	return json_pack("{s:s, s:s}", "name", "airlock-gateway", "version", AL_VERSION);
}

static void handshake_send_discover(struct child *c)
{
	json_t *req;
	al_mcp_id id;

	c->st = C_DISCOVER;
	c->hs_id = c->next_id++;
	id = (al_mcp_id){.kind = AL_MCP_ID_INT, .num = c->hs_id};
	req = al_mcp_request_new(&id, "server/discover",
				 json_pack("{s:{s:s, s:{}, s:o}}", "_meta",
					   AL_MCP_META_PROTOCOL_VERSION, AL_MCP_VERSION_2026,
					   "io.modelcontextprotocol/clientCapabilities",
					   "io.modelcontextprotocol/clientInfo", client_info()));
	if (req == NULL || child_write(c, req) < 0)
		child_fail(c, MSG_EXITED);
	json_decref(req);
}

static int handshake_send_initialize(struct child *c)
{
	json_t *req;
	al_mcp_id id;
	int rc;

	c->st = C_INIT;
	c->hs_id = c->next_id++;
	id = (al_mcp_id){.kind = AL_MCP_ID_INT, .num = c->hs_id};
	req =
	    al_mcp_request_new(&id, "initialize",
			       json_pack("{s:s, s:{}, s:o}", "protocolVersion", AL_MCP_VERSION_2025,
					 "capabilities", "clientInfo", client_info()));
	rc = req ? child_write(c, req) : -ENOMEM;
	json_decref(req);
	return rc;
}

static void child_spawn(struct slot *s)
{
	al_gw_stdio_pool *p = s->p;
	struct child *c;
	uv_process_options_t o;
	uv_stdio_container_t stdio[3];
	int rc;

	if ((c = al_calloc(1, sizeof(*c))) == NULL) {
		al_error(LOGC, "route=%s out of memory starting a server", p->route);
		schedule_respawn(s, 0);
		return;
	}
	c->p = p;
	c->next_id = 1;
	p->nchildren++;
	uv_pipe_init(p->loop, &c->in, 0);
	uv_pipe_init(p->loop, &c->out, 0);
	uv_pipe_init(p->loop, &c->err, 0);
	uv_timer_init(p->loop, &c->timer);
	uv_timer_init(p->loop, &c->kill);
	c->proc.data = c->in.data = c->out.data = c->err.data = c->timer.data = c->kill.data = c;
	c->in_open = c->out_open = c->err_open = c->timer_open = c->kill_open = 1;
	memset(&o, 0, sizeof(o));
	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&c->in;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&c->out;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&c->err;
	o.file = p->file;
	o.args = p->args;
	o.env = p->env;
	o.cwd = p->cwd;
	o.stdio = stdio;
	o.stdio_count = 3;
	o.exit_cb = exit_cb;
	/* Its own process group (setsid), so a kill reaches whatever it starts. */
	o.flags = UV_PROCESS_DETACHED;
	rc = uv_spawn(p->loop, &c->proc, &o);
	/* uv_spawn initialised the process handle even when it failed. */
	c->proc_open = 1;
	if (rc < 0) {
		al_error(LOGC, "route=%s cannot start %s: %s", p->route, p->file, uv_strerror(rc));
		c->exited = 1;
		c->st = C_DEAD;
		schedule_respawn(s, 0);
		child_close_rest(c);
		return;
	}
	c->pid = c->proc.pid;
	c->s = s;
	s->c = c;
	al_info(LOGC, "route=%s pid=%d started", p->route, (int)c->pid);
	uv_read_start((uv_stream_t *)&c->out, alloc_cb, out_read_cb);
	uv_read_start((uv_stream_t *)&c->err, alloc_cb, err_read_cb);
	uv_timer_start(&c->timer, timer_cb, p->timeout_ms, 0);
	if (handshake_send_initialize(c) < 0)
		child_fail(c, MSG_EXITED);
}

/* ---- the pool ---- */

static void slot_closed_cb(uv_handle_t *h)
{
	struct slot *s = h->data;
	al_gw_stdio_pool *p = s->p;

	p->nslot_timers--;
	pool_maybe_release(p);
}

static char **strv_dup(const char *const *v, size_t extra)
{
	size_t n = 0;
	char **out;

	while (v && v[n])
		n++;
	if ((out = al_calloc(n + extra + 1, sizeof(*out))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if ((out[i] = al_strdup(v[i])) == NULL) {
			strv_free(out);
			return NULL;
		}
	}
	return out;
}

/*
 * Checks that argv[0] will be found by the child: a path containing '/'
 * must be executable, a bare name must be on the child's PATH (the one in
 * its environment, which is what execvp searches after libuv installs it).
 */
static int check_command(const char *cmd, const char *path, const char *cwd, char *err,
			 size_t errlen)
{
	char full[4096];
	struct stat st;
	const char *dir = path, *end;
	int rc = -ENOENT;

	if (strchr(cmd, '/')) {
		if (cmd[0] != '/' && cwd)
			snprintf(full, sizeof(full), "%s/%s", cwd, cmd);
		else
			snprintf(full, sizeof(full), "%s", cmd);
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
			return 0;
		snprintf(err, errlen, "command %s: not an executable file", cmd);
		return -ENOENT;
	}
	while (dir && *dir) {
		size_t n;

		end = strchr(dir, ':');
		n = end ? (size_t)(end - dir) : strlen(dir);
		if (n > 0 &&
		    (size_t)snprintf(full, sizeof(full), "%.*s/%s", (int)n, dir, cmd) <
			sizeof(full) &&
		    stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
			rc = 0;
			break;
		}
		dir = end ? end + 1 : NULL;
	}
	if (rc < 0)
		snprintf(err, errlen, "command %s: not found on PATH %s", cmd, path);
	return rc;
}

int al_gw_stdio_pool_new(uv_loop_t *loop, const struct al_gw_stdio_opts *opts,
			 al_gw_stdio_pool **out, char *err, size_t errlen)
{
	al_gw_stdio_pool *p = NULL;
	const char *path = FIXED_PATH;
	int own_path = 0;
	size_t nenv = 0;
	struct sigaction sa;
	int rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (opts->argv == NULL || opts->argv[0] == NULL || opts->argv[0][0] == '\0') {
		snprintf(err, errlen, "no command");
		return -EINVAL;
	}
	for (size_t i = 0; opts->env && opts->env[i]; i++) {
		if (strchr(opts->env[i], '=') == NULL || opts->env[i][0] == '=') {
			snprintf(err, errlen, "environment entry %zu is not NAME=VALUE", i);
			return -EINVAL;
		}
		if (strncmp(opts->env[i], "PATH=", 5) == 0)
			path = opts->env[i] + 5, own_path = 1;
		nenv++;
	}
	if ((rc = check_command(opts->argv[0], path, opts->cwd, err, errlen)) < 0)
		return rc;
	/*
	 * A child that dies while we write to it must cost an EPIPE, not the
	 * gateway: make sure SIGPIPE is ignored (main does it; a library user
	 * may not have).
	 */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);

	rc = -ENOMEM;
	if ((p = al_calloc(1, sizeof(*p))) == NULL)
		goto fail;
	p->loop = loop;
	p->size = opts->size ? opts->size : 2;
	p->timeout_ms = opts->request_timeout_ms ? opts->request_timeout_ms : 60000;
	if ((p->route = al_strdup(opts->route ? opts->route : "-")) == NULL ||
	    (p->file = al_strdup(opts->argv[0])) == NULL ||
	    (p->args = strv_dup(opts->argv, 0)) == NULL ||
	    (p->env = strv_dup(opts->env, 1)) == NULL ||
	    (opts->cwd && (p->cwd = al_strdup(opts->cwd)) == NULL) ||
	    (p->slots = al_calloc(p->size, sizeof(*p->slots))) == NULL ||
	    (p->oom_resp = json_pack("{s:s, s:{s:i, s:s}}", "jsonrpc", "2.0", "error", "code",
				     AL_MCP_INTERNAL_ERROR, "message", "out of memory")) == NULL)
		goto fail;
	if (!own_path && (p->env[nenv] = al_strdup("PATH=" FIXED_PATH)) == NULL)
		goto fail;
	/* Nothing can fail from here on: the handles below need the loop to close. */
	for (size_t i = 0; i < p->size; i++) {
		struct slot *s = &p->slots[i];

		s->p = p;
		s->idx = i;
		s->backoff_ms = BACKOFF_MIN_MS;
		uv_timer_init(loop, &s->respawn);
		s->respawn.data = s;
		p->nslot_timers++;
	}
	for (size_t i = 0; i < p->size; i++)
		child_spawn(&p->slots[i]);
	*out = p;
	return 0;
fail:
	snprintf(err, errlen, "out of memory");
	if (p)
		pool_release(p);
	return rc;
}

void al_gw_stdio_pool_free(al_gw_stdio_pool *p)
{
	if (p == NULL || p->closing)
		return;
	p->closing = 1;
	for (size_t i = 0; i < p->size; i++) {
		struct slot *s = &p->slots[i];

		if (s->c)
			child_fail(s->c, "gateway shutting down");
		uv_close((uv_handle_t *)&s->respawn, slot_closed_cb);
	}
}

size_t al_gw_stdio_pool_ready(const al_gw_stdio_pool *p)
{
	return p->nready;
}

/* The least busy ready child, ties broken round-robin; NULL when none. */
static struct child *pick(al_gw_stdio_pool *p)
{
	struct child *best = NULL;

	for (size_t k = 0; k < p->size; k++) {
		struct child *c = p->slots[(p->rr + k) % p->size].c;

		if (c == NULL || c->st != C_READY || c->broken ||
		    c->in.write_queue_size > WRITE_QUEUE_MAX)
			continue;
		if (best == NULL || c->inflight < best->inflight)
			best = c;
	}
	if (best)
		p->rr = (best->s->idx + 1) % p->size;
	return best;
}

/* A new reference to o[key], or to a new `dflt` when absent. */
static json_t *get_or(const json_t *o, const char *key, json_t *dflt)
{
	json_t *v = json_object_get(o, key);

	if (v) {
		json_decref(dflt);
		return json_incref(v);
	}
	return dflt;
}

static json_t *response(const json_t *id, json_t *result)
{
	return result ? json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result)
		      : NULL;
}

/* initialize answered from the handshake (synthesized from discover for a modern child). */
static json_t *answer_initialize(al_gw_stdio_pool *p, const json_t *id)
{
	json_t *res, *instr;

	if (p->init_result)
		return response(id, json_incref(p->init_result));
	res = json_pack("{s:s, s:o, s:o}", "protocolVersion", AL_MCP_VERSION_2025, "capabilities",
			get_or(p->disc_result, "capabilities", json_object()), "serverInfo",
			get_or(json_object_get(p->disc_result, "_meta"),
			       "io.modelcontextprotocol/serverInfo",
			       json_pack("{s:s, s:s}", "name", "unknown", "version", "0")));
	instr = json_object_get(p->disc_result, "instructions");
	if (res && json_is_string(instr))
		json_object_set(res, "instructions", instr);
	return response(id, res);
}

/*
 * server/discover answered from the child's own result, or synthesized from
 * initialize: the gateway serves both eras in front of a legacy child.
 */
static json_t *answer_discover(al_gw_stdio_pool *p, const json_t *id)
{
	json_t *res, *instr;

	if (p->disc_result)
		return response(id, json_incref(p->disc_result));
	res = json_pack("{s:s, s:[s, s], s:o, s:{s:o}}", "resultType", "complete",
			"supportedVersions", AL_MCP_VERSION_2026, AL_MCP_VERSION_2025,
			"capabilities", get_or(p->init_result, "capabilities", json_object()),
			"_meta", "io.modelcontextprotocol/serverInfo",
			get_or(p->init_result, "serverInfo",
			       json_pack("{s:s, s:s}", "name", "unknown", "version", "0")));
	instr = json_object_get(p->init_result, "instructions");
	if (res && json_is_string(instr))
		json_object_set(res, "instructions", instr);
	return response(id, res);
}

static int send_notification(al_gw_stdio_pool *p, const json_t *msg, const char *method,
			     al_gw_stdio_cb cb, void *ud)
{
	size_t sent = 0;

	/*
	 * initialized: the pool did the handshake itself. cancelled: the
	 * caller's requestId means nothing on a child (ids are rewritten);
	 * al_gw_stdio_req_cancel is the way to cancel.
	 */
	if (strcmp(method, "notifications/initialized") == 0 ||
	    strcmp(method, "notifications/cancelled") == 0) {
		cb(ud, NULL, 1);
		return 0;
	}
	/* Anything else (roots/list_changed...) concerns every child. */
	for (size_t i = 0; i < p->size; i++) {
		struct child *c = p->slots[i].c;

		if (c && c->st == C_READY && child_write(c, msg) == 0)
			sent++;
	}
	if (sent == 0)
		return -EAGAIN;
	cb(ud, NULL, 1);
	return 0;
}

int al_gw_stdio_pool_send(al_gw_stdio_pool *p, const json_t *msg, al_gw_stdio_cb cb, void *ud,
			  al_gw_stdio_req **out)
{
	struct al_gw_stdio_req *r = NULL;
	struct child *c;
	json_t *id, *method, *params, *meta, *token = NULL;
	json_t *copy = NULL, *pcopy = NULL, *mcopy = NULL, *cid = NULL, *local = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (p->closing || !json_is_object(msg))
		return -EINVAL;
	method = json_object_get(msg, "method");
	id = json_object_get(msg, "id");
	if (!json_is_string(method))
		return -EINVAL;
	if (id == NULL)
		return send_notification(p, msg, json_string_value(method), cb, ud);

	if (strcmp(json_string_value(method), "initialize") == 0 ||
	    strcmp(json_string_value(method), "server/discover") == 0) {
		if (p->init_result == NULL && p->disc_result == NULL)
			return -EAGAIN;
		local = strcmp(json_string_value(method), "initialize") == 0
			    ? answer_initialize(p, id)
			    : answer_discover(p, id);
		if (local == NULL)
			return -ENOMEM;
		cb(ud, local, 1);
		json_decref(local);
		return 0;
	}

	if ((c = pick(p)) == NULL)
		return -EAGAIN;
	rc = -ENOMEM;
	if ((r = al_calloc(1, sizeof(*r))) == NULL)
		goto fail;
	r->p = p;
	r->cb = cb;
	r->ud = ud;
	r->cid = c->next_id++;
	r->id = json_incref(id);
	/* Shallow copies: only the id (and the progress token) differ from msg. */
	if ((copy = json_copy((json_t *)msg)) == NULL || (cid = json_integer(r->cid)) == NULL ||
	    json_object_set(copy, "id", cid) < 0)
		goto fail;
	params = json_object_get(msg, "params");
	meta = json_object_get(params, "_meta");
	token = json_object_get(meta, "progressToken");
	if (token) {
		/*
		 * Progress tokens are the caller's and only unique per caller:
		 * two callers on one child may both use 1. The child gets our
		 * own id as the token, the caller gets its token back.
		 */
		r->token = json_incref(token);
		if ((pcopy = json_copy(params)) == NULL || (mcopy = json_copy(meta)) == NULL ||
		    json_object_set(mcopy, "progressToken", cid) < 0 ||
		    json_object_set(pcopy, "_meta", mcopy) < 0 ||
		    json_object_set(copy, "params", pcopy) < 0)
			goto fail;
	}
	if ((rc = child_write(c, copy)) < 0) {
		rc = rc == -EPIPE ? -EAGAIN : rc;
		goto fail;
	}
	r->rx_seen = c->rx_lines;
	r->deadline = al_mono_ms() + p->timeout_ms;
	r->c = c;
	r->prev = c->tail;
	if (c->tail)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->inflight++;
	if (c->head == r)
		arm_timer(c);
	if (out)
		*out = r;
	rc = 0;
	r = NULL;
fail:
	if (r)
		req_free(r);
	json_decref(copy);
	json_decref(pcopy);
	json_decref(mcopy);
	json_decref(cid);
	return rc;
}

void al_gw_stdio_req_cancel(al_gw_stdio_req *r)
{
	if (r == NULL || r->cancelled)
		return;
	if (r->c)
		send_cancelled(r->c, r->cid, "the caller went away");
	if (r->in_cb) {
		/* deliver_partial frees it when the callback returns. */
		r->cancelled = 1;
		req_unlink(r);
		return;
	}
	req_free(r);
}
