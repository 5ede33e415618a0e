/*
 * stdio.c - MCP over newline-delimited JSON-RPC on two fds (mcp/stdio.h).
 *
 * Input: bytes are cut into lines as they arrive; a line that fits in the
 * read buffer is handed to the dispatcher where it lies, a longer one is
 * collected first. A line that outgrows AL_MCP_MAX_MESSAGE is answered
 * -32600 once and its remaining bytes are skipped up to the next newline,
 * so one bad message costs neither memory nor the stream.
 *
 * Output: every message is one uv_write of "json\n"; libuv keeps the
 * writes in order. When more than OUT_HIGH bytes wait for a slow reader
 * we stop reading input (no new requests) until they drain below OUT_LOW:
 * output memory stays bounded by the calls already in flight.
 *
 * Calls: each message gets a context (struct scall) that lives until
 * sink->finish. notifications/cancelled {requestId} goes to the dispatcher
 * like any message: with inbound.http 0 it cancels the call with that id
 * (server.c), which finishes that call's context through the sink. The
 * same re-entrancy rule as http.c holds: a context is freed only when
 * finished and not inside one of our calls into the dispatcher (`hold`).
 *
 * Legacy era: the session an initialize creates becomes the stream's
 * implicit session; it is passed with every later message, its standalone
 * notifications (list_changed, resources/updated) are written to the
 * output, and it ends with the input.
 */
#include "mcp/stdio.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "mcp/jsonrpc.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define OUT_HIGH (4u << 20)
#define OUT_LOW	 (1u << 20)

struct scall {
	al_mcp_stdio *st;
	al_mcp_call *call; /* in flight, or NULL */
	int stream;	   /* the legacy session's standalone stream, not a call */
	int hold;
	int finished;
	struct scall *prev, *next;
};

/* One line in flight: the serialisation is written from `line` itself. */
struct wreq {
	uv_write_t w;
	al_mcp_stdio *st;
	al_buf line;
};

struct al_mcp_stdio {
	uv_loop_t *loop;
	al_mcp_server *srv;
	uv_pipe_t in_pipe, out_pipe;
	uv_stream_t *in, *out; /* out == in when both fds are one socket */
	int handles_open;      /* open handles and a file read in flight: st lives while > 0 */
	al_buf line;	       /* a line longer than what one read brought */
	int skipping;	       /* discarding an oversize line up to its newline */
	int reading;	       /* reading is on (uv_read_start, or reads queued for a file) */
	int in_file; /* the input is a regular file: read with uv_fs_read (epoll refuses it) */
	int in_fd;
	int fs_busy; /* a uv_fs_read is in flight (it holds a reference like a handle) */
	uv_fs_t fsreq;
	int paused;	/* reading stopped for output backpressure */
	int eof;	/* input ended (or output broke): no more messages */
	int out_broken; /* a write failed: nobody reads our output */
	int eof_done;	/* on_eof ran */
	int freeing;
	int hold; /* inside our own loop over lines: on_eof waits */
	size_t out_pending;
	size_t nwrites;
	size_t ncalls; /* scall contexts that are calls (not the stream) */
	struct scall *calls;
	char *session;	       /* the implicit legacy session, or NULL */
	char *session_new;     /* from initialize, taken up before the next message */
	struct scall *sstream; /* the session's stream context */
	void (*on_eof)(void *ud);
	void *ud;
	char rbuf[64 * 1024];
};

static int sink_send(void *t, const json_t *msg);
static void sink_finish(void *t, json_t *msg, int http_status, const char *session_id);

static const struct al_mcp_sink stdio_sink = {sink_send, sink_finish};

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *buf);

/* ---- contexts ---- */

static struct scall *sc_new(al_mcp_stdio *st, int stream)
{
	struct scall *sc = al_calloc(1, sizeof(*sc));

	if (sc == NULL)
		return NULL;
	sc->st = st;
	sc->stream = stream;
	sc->next = st->calls;
	if (st->calls)
		st->calls->prev = sc;
	st->calls = sc;
	if (!stream)
		st->ncalls++;
	return sc;
}

static void sc_free(struct scall *sc)
{
	al_mcp_stdio *st = sc->st;

	if (sc->prev)
		sc->prev->next = sc->next;
	else
		st->calls = sc->next;
	if (sc->next)
		sc->next->prev = sc->prev;
	if (!sc->stream)
		st->ncalls--;
	if (st->sstream == sc)
		st->sstream = NULL;
	al_free(sc);
}

/* ---- end of input ---- */

/*
 * on_eof once the input has ended, every call has finished and every
 * byte is written. It may free st: callers make this their last use.
 */
static void check_done(al_mcp_stdio *st)
{
	if (!st->eof || st->eof_done || st->hold > 0 || st->ncalls > 0 || st->nwrites > 0 ||
	    st->freeing)
		return;
	st->eof_done = 1;
	if (st->on_eof)
		st->on_eof(st->ud);
}

static void reading_stop(al_mcp_stdio *st)
{
	if (st->reading && !st->in_file)
		uv_read_stop(st->in);
	st->reading = 0;
}

static void file_read_next(al_mcp_stdio *st);

static void reading_start(al_mcp_stdio *st)
{
	if (st->reading || st->eof || st->freeing)
		return;
	if (st->in_file) {
		st->reading = 1;
		file_read_next(st);
	} else if (uv_read_start(st->in, alloc_cb, read_cb) == 0) {
		st->reading = 1;
	}
}

/* Detaches the session's stream and ends the session. */
static void session_end(al_mcp_stdio *st)
{
	struct scall *sc = st->sstream;

	if (sc) {
		sc->hold++;
		al_mcp_server_close_stream(st->srv, st->session, sc);
		sc->hold--;
		sc->finished = 1;
		sc_free(sc);
	}
	if (st->session) {
		al_mcp_server_end_session(st->srv, st->session);
		al_free(st->session);
		st->session = NULL;
	}
}

/* Cancels the first call matching `pred` (NULL: any call); 1 if one was found. */
static int cancel_one(al_mcp_stdio *st, int (*pred)(struct scall *sc, const void *arg),
		      const void *arg)
{
	struct scall *sc;

	for (sc = st->calls; sc; sc = sc->next)
		if (!sc->stream && !sc->finished && sc->call && sc->hold == 0 &&
		    (pred == NULL || pred(sc, arg)))
			break;
	if (sc == NULL)
		return 0;
	sc->hold++;
	al_mcp_call_cancel(sc->call);
	sc->hold--;
	if (sc->finished)
		sc_free(sc);
	else
		sc->call = NULL; /* the dispatcher did not finish it: do not cancel twice */
	return 1;
}

static int is_listen(struct scall *sc, const void *arg)
{
	const char *m = al_mcp_call_method(sc->call);

	(void)arg;
	return m && strcmp(m, "subscriptions/listen") == 0;
}

static void dispatch_line(al_mcp_stdio *st, const char *p, size_t n);

/*
 * No more messages will come. Calls in flight may still finish and be
 * written; a subscriptions/listen call never would, so it is cancelled,
 * and so is everything when nobody reads the output any more.
 */
static void input_ended(al_mcp_stdio *st)
{
	if (st->eof)
		return;
	st->hold++;
	reading_stop(st);
	/* A last message without its newline is still a message. */
	if (!st->skipping && st->line.len > 0) {
		al_buf last = st->line;
		st->line = (al_buf){0};
		dispatch_line(st, last.data, last.len);
		al_buf_free(&last);
	}
	st->eof = 1;
	while (cancel_one(st, st->out_broken ? NULL : is_listen, NULL))
		;
	session_end(st);
	st->hold--;
	check_done(st);
}

/* ---- output ---- */

static void write_cb(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	al_mcp_stdio *st = wr->st;

	st->out_pending -= wr->line.len;
	st->nwrites--;
	al_buf_free(&wr->line);
	al_free(wr);
	if (st->freeing)
		return;
	if (status < 0) {
		if (!st->out_broken)
			al_warn("mcp", "stdio output: %s", uv_strerror(status));
		/* Nobody reads our answers: end the input and cancel every call. */
		st->out_broken = 1;
		st->hold++;
		input_ended(st);
		while (cancel_one(st, NULL, NULL))
			;
		st->hold--;
		check_done(st);
		return;
	}
	if (st->paused && st->out_pending < OUT_LOW) {
		st->paused = 0;
		reading_start(st);
	}
	check_done(st);
}

/* Writes one message as a line. 0, -ENOMEM, or -EPIPE (output broken). */
static int write_msg(al_mcp_stdio *st, const json_t *msg)
{
	struct wreq *wr = NULL;
	uv_buf_t ub;
	int rc = 0;

	if (st->out_broken || st->freeing)
		return -EPIPE;
	wr = al_calloc(1, sizeof(*wr));
	if (wr == NULL || al_mcp_msg_dump(msg, &wr->line) < 0 ||
	    al_buf_append(&wr->line, "\n", 1) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	wr->st = st;
	ub = uv_buf_init(wr->line.data, (unsigned int)wr->line.len);
	if (uv_write(&wr->w, st->out, &ub, 1, write_cb) < 0) {
		st->out_broken = 1;
		rc = -EPIPE;
		goto done;
	}
	st->out_pending += wr->line.len;
	st->nwrites++;
	wr = NULL; /* libuv's until write_cb */
	if (st->out_pending > OUT_HIGH && st->reading) {
		reading_stop(st);
		st->paused = 1;
	}
done:
	if (wr)
		al_buf_free(&wr->line);
	al_free(wr);
	return rc;
}

/* An error response without id (the request's id could not be read). */
static void write_error(al_mcp_stdio *st, int code, const char *message)
{
	al_mcp_error err = {0};
	json_t *resp;

	al_mcp_error_set(&err, code, 400, NULL, "%s", message);
	resp = al_mcp_error_response_new(NULL, &err);
	al_mcp_error_clear(&err);
	if (resp)
		write_msg(st, resp);
	json_decref(resp);
}

/* ---- the sink ---- */

static int sink_send(void *t, const json_t *msg)
{
	struct scall *sc = t;

	if (sc->finished)
		return -EPIPE;
	return write_msg(sc->st, msg);
}

static void sink_finish(void *t, json_t *msg, int http_status, const char *session_id)
{
	struct scall *sc = t;
	al_mcp_stdio *st = sc->st;

	(void)http_status;
	if (sc->finished) {
		json_decref(msg);
		return;
	}
	sc->finished = 1;
	sc->call = NULL;
	if (msg)
		write_msg(st, msg);
	json_decref(msg);
	/*
	 * Taken up before the next message (dispatch_line): opening the
	 * session's stream from inside the dispatcher's own finish would
	 * re-enter it.
	 */
	if (session_id && !sc->stream) {
		al_free(st->session_new);
		st->session_new = al_strdup(session_id);
	}
	if (sc->hold == 0) {
		sc_free(sc);
		check_done(st);
	}
}

/* ---- input ---- */

/* The implicit session an initialize created becomes the stream's. */
static void session_take_up(al_mcp_stdio *st)
{
	char *sid = st->session_new;
	struct scall *sc;

	if (sid == NULL)
		return;
	st->session_new = NULL;
	if (st->session && strcmp(st->session, sid) == 0) {
		al_free(sid);
		return;
	}
	session_end(st); /* a second initialize replaces the first session */
	st->session = sid;
	sc = sc_new(st, 1);
	if (sc == NULL)
		return; /* requests still work; standalone notifications are lost */
	sc->hold++;
	if (al_mcp_server_open_stream(st->srv, sid, &stdio_sink, sc) < 0)
		sc->finished = 1;
	sc->hold--;
	if (sc->finished)
		sc_free(sc);
	else
		st->sstream = sc;
}

static void dispatch_line(al_mcp_stdio *st, const char *p, size_t n)
{
	struct al_mcp_inbound in = {0};
	struct scall *sc;
	al_mcp_call *call = NULL;
	size_t i;
	int rc;

	while (n > 0 && p[n - 1] == '\r')
		n--;
	for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'); i++)
		;
	if (i == n)
		return; /* blank lines carry nothing */
	session_take_up(st);
	sc = sc_new(st, 0);
	if (sc == NULL) {
		write_error(st, AL_MCP_INTERNAL_ERROR, "Internal error: out of memory");
		return;
	}
	in.body = p;
	in.len = n;
	in.session_id = st->session;
	sc->hold++;
	rc = al_mcp_server_handle(st->srv, &in, &stdio_sink, sc, &call);
	sc->hold--;
	if (rc < 0 && !sc->finished) {
		sc->finished = 1;
		write_error(st, AL_MCP_INTERNAL_ERROR, "Internal error: out of memory");
	}
	if (sc->finished) {
		sc_free(sc);
		return;
	}
	sc->call = call;
}

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	al_mcp_stdio *st = hd->data;

	(void)suggested;
	*buf = uv_buf_init(st->rbuf, sizeof(st->rbuf));
}

/* The current line outgrew the limit: answer once and skip to its end. */
static void oversize(al_mcp_stdio *st)
{
	al_buf_wipe(&st->line);
	al_buf_free(&st->line);
	write_error(st, AL_MCP_INVALID_REQUEST, "Invalid Request: message too large");
}

static void feed(al_mcp_stdio *st, const char *p, size_t n)
{
	while (n > 0 && !st->eof && !st->freeing) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (st->skipping) {
			if (nl)
				st->skipping = 0;
		} else if (st->line.len + take > AL_MCP_MAX_MESSAGE) {
			oversize(st);
			st->skipping = nl == NULL;
		} else if (nl && st->line.len == 0) {
			dispatch_line(st, p, take); /* the whole line is in this read */
		} else if (al_buf_append(&st->line, p, take) < 0) {
			oversize(st); /* no memory for it: as good as too large */
			st->skipping = nl == NULL;
		} else if (nl) {
			al_buf line = st->line;
			st->line = (al_buf){0};
			dispatch_line(st, line.data, line.len);
			al_buf_free(&line);
		}
		if (nl == NULL)
			break;
		p = nl + 1;
		n -= take + 1;
	}
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	al_mcp_stdio *st = s->data;

	if (nread < 0) {
		if (nread != UV_EOF)
			al_warn("mcp", "stdio input: %s", uv_strerror((int)nread));
		input_ended(st); /* may free st */
		return;
	}
	st->hold++;
	feed(st, buf->base, (size_t)nread);
	st->hold--;
	check_done(st);
}

/* Drops one reference (a handle closed, a file read done); the last frees st. */
static void unref(al_mcp_stdio *st)
{
	if (--st->handles_open > 0)
		return;
	if (st->in_file)
		close(st->in_fd);
	al_buf_wipe(&st->line);
	al_buf_free(&st->line);
	al_free(st->session_new);
	al_free(st);
}

static void fs_read_cb(uv_fs_t *req)
{
	al_mcp_stdio *st = req->data;
	ssize_t n = req->result;

	uv_fs_req_cleanup(req);
	st->fs_busy = 0;
	if (st->freeing) {
		unref(st);
		return;
	}
	st->handles_open--; /* never the last: the handles are open */
	if (n <= 0) {
		if (n < 0)
			al_warn("mcp", "stdio input: %s", uv_strerror((int)n));
		input_ended(st); /* may free st */
		return;
	}
	st->hold++;
	feed(st, st->rbuf, (size_t)n);
	file_read_next(st);
	st->hold--;
	check_done(st);
}

/*
 * A regular file (stdin redirected from one) cannot be watched with epoll
 * (libuv aborts on EPERM): it is read with uv_fs_read on the threadpool,
 * one block at a time, from its current position.
 */
static int file_read_submit(al_mcp_stdio *st)
{
	uv_buf_t ub = uv_buf_init(st->rbuf, sizeof(st->rbuf));
	int rc;

	st->fsreq.data = st;
	rc = uv_fs_read(st->loop, &st->fsreq, st->in_fd, &ub, 1, -1, fs_read_cb);
	if (rc == 0) {
		st->fs_busy = 1;
		st->handles_open++;
	}
	return rc;
}

static void file_read_next(al_mcp_stdio *st)
{
	if (!st->reading || st->fs_busy || st->eof || st->freeing)
		return;
	if (file_read_submit(st) < 0) {
		st->hold++;
		input_ended(st);
		st->hold--;
		/* the caller runs check_done */
	}
}

/* ---- public ---- */

static void handle_closed_cb(uv_handle_t *hd)
{
	unref(hd->data);
}

static void close_handles(al_mcp_stdio *st)
{
	uv_close((uv_handle_t *)&st->in_pipe, handle_closed_cb);
	if (st->out == (uv_stream_t *)&st->out_pipe)
		uv_close((uv_handle_t *)&st->out_pipe, handle_closed_cb);
}

int al_mcp_stdio_serve(uv_loop_t *loop, al_mcp_server *srv, int in_fd, int out_fd,
		       void (*on_eof)(void *ud), void *ud, al_mcp_stdio **out)
{
	al_mcp_stdio *st;
	int rc;

	*out = NULL;
	st = al_calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->loop = loop;
	st->srv = srv;
	st->on_eof = on_eof;
	st->ud = ud;
	uv_pipe_init(loop, &st->in_pipe, 0);
	st->in_pipe.data = st;
	st->handles_open = 1;
	st->in = (uv_stream_t *)&st->in_pipe;
	st->out = st->in;
	st->in_fd = in_fd;
	st->in_file = uv_guess_handle(in_fd) == UV_FILE;
	if (out_fd != in_fd || st->in_file) {
		uv_pipe_init(loop, &st->out_pipe, 0);
		st->out_pipe.data = st;
		st->handles_open++;
		st->out = (uv_stream_t *)&st->out_pipe;
	}
	rc = st->in_file ? 0 : uv_pipe_open(&st->in_pipe, in_fd);
	if (rc == 0 && st->out != st->in)
		rc = uv_pipe_open(&st->out_pipe, out_fd);
	if (rc == 0 && st->in_file) {
		st->reading = 1;
		rc = file_read_submit(st);
	} else if (rc == 0) {
		rc = uv_read_start(st->in, alloc_cb, read_cb);
		st->reading = rc == 0;
	}
	if (rc < 0) {
		st->in_file = 0; /* the caller keeps its fd */
		/* The handles are initialised: they close (and free st) on the loop. */
		st->freeing = 1;
		close_handles(st);
		return rc;
	}
	*out = st;
	return 0;
}

void al_mcp_stdio_free(al_mcp_stdio *st)
{
	if (st == NULL || st->freeing)
		return;
	st->on_eof = NULL;
	st->hold++;
	while (cancel_one(st, NULL, NULL))
		;
	session_end(st);
	/* Calls the dispatcher would not cancel: their late finish must find nothing. */
	while (st->calls) {
		st->calls->finished = 1;
		sc_free(st->calls);
	}
	st->hold--;
	reading_stop(st);
	st->freeing = 1;
	close_handles(st);
}
