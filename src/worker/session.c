/*
 * session.c - one work item, from ack to force-stop (session.h,
 * docs/WORKER.md). Follows the SDK's EnvironmentWorker + SessionToolRunner
 * (lib/environments/worker.js, lib/tools/SessionToolRunner.js in
 * @anthropic-ai/sdk 1.14.0) step by step, and adds the journal (a call is
 * run at most once across crashes) and the audit records.
 *
 * Life of an item:
 *   ack (poll mode) -> decode the secret -> heartbeats start -> GET session
 *   (a terminated session, or a healthcheck item, runs nothing) -> stream
 *   open -> history (all pages) -> live events ... -> idle exit / stopping /
 *   lease lost / shutdown -> teardown: wait for the running call and its
 *   post, close the tool session (sandbox destroyed, on the pool), stop the
 *   heartbeats, force-stop the item unless the lease was lost, close handles.
 *
 * The pipeline of tool calls is strictly serial per session: one call is
 * taken from the queue, journalled and run on the pool, its result posted
 * (retried while the lease lives), the journal told it was answered, and
 * only then the next call is taken. The SDK does the same (it awaits each
 * execution inside its event handler), so the order the agent issued the
 * calls in is the order they run in, and bash's persistent shell sees them in
 * that order.
 */
#include "worker/session.h"

#include "audit/record.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "worker/backoff.h"
#include "worker/secret.h"
#include "worker/tools.h"
#include "worker/workspace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGC		   "worker"
#define HB_DEFAULT_MS	   30000u
#define HB_TTL_DEFAULT_S   90u
#define STREAM_BACKOFF_MS  500u
#define STREAM_BACKOFF_CAP 10000u
#define SEND_BACKOFF_MS	   1000u
#define SEND_BACKOFF_CAP   30000u
#define SEND_WINDOW_MS	   (10u * 60u * 1000u)
#define HISTORY_PAGE	   1000u
/*
 * The most history events held at once: a control plane that hands out
 * next_page cursors forever must not grow the worker without bound.
 */
#define HISTORY_MAX (1000u * 1000u)
/*
 * A stream that received nothing (not even a `: ping`) for this long is taken
 * for dead (a proxy that silently dropped it) and reopened. airlock's server
 * pings every 15 s; checked on each heartbeat.
 */
#define STREAM_SILENT_MS 90000u
#define NTIMERS		 6
#define RESTARTED_TEXT                                                                             \
	"the worker restarted during execution of this tool call; it was not run again"

enum how { HOW_RAN, HOW_RESTARTED, HOW_RESENT, HOW_SKIP, HOW_JOURNAL_FAIL };
static const char *const how_name[] = {"ran", "restarted", "resent", "skipped", "journal_failed"};

/* The call on the pool (or being posted): owned by the session while current. */
struct job {
	uv_work_t req;
	struct al_wsess *s;
	char *id;
	char *name;
	json_t *input; /* deep copy: touched only by the pool thread while queued */
	char input_sha[AL_SHA256_HEX];
	struct al_tool_session *ts;
	/* out (pool thread), read on the loop after the after-work callback */
	enum how how;
	char *result_json; /* the user.tool_result event, compact JSON */
	int is_error;
	int exit_code;
	int64_t duration_us;
	int jrc;	  /* journal error, if any */
	int audit_failed; /* a record after the call could not be written */
	int tool_rc;	  /* al_tool_session_run's return */
	/* post */
	json_t *event; /* parsed result_json */
	unsigned attempt;
	uint64_t send_start_ms;
	int unsure; /* a failed post may have been stored: check history before the next */
};

struct qcall {
	struct qcall *next;
	json_t *ev; /* agent.tool_use (owned reference) */
};

struct al_wsess {
	struct al_wctx *ctx;
	struct al_wsess_opts opts;
	al_wsess_done_cb done_cb;
	void *ud;

	char *work_id, *env_id, *session_id, *type;
	char *token; /* secret: the sessions token (or the environment key) */

	/* lease */
	char *last_hb;
	unsigned ttl_s;
	unsigned hb_interval_ms;
	uint64_t hb_last_ok_ms;
	struct al_wc_call *hb_call;
	int hb_first_done, hb_stopped, lease_lost, lease_recorded_ttl;

	/* stream + history */
	struct al_wc_stream *stream;
	struct al_wc_call *list_call;
	struct al_wc_call *get_call;
	unsigned stream_backoff_ms;
	int reconciling, attached, started_stream;
	json_t *hist;	    /* array: history being read */
	json_t *stream_buf; /* array: live events held while the history is read */

	/* sets, keyed by id (json objects used as sets/maps) */
	json_t *evseen;	  /* event ids handled */
	json_t *seen;	  /* tool-use ids seen */
	json_t *answered; /* tool-use ids answered (by us or in history) */
	json_t *verdicts; /* tool-use id -> "allow"/"deny"/... */
	json_t *held;	  /* tool-use id -> event awaiting confirmation */
	json_t *queued;	  /* tool-use ids in the queue */

	/* pipeline */
	struct qcall *qhead, *qtail;
	struct job *cur;
	int cur_on_pool;
	struct al_tool_session *ts;
	uv_work_t close_req;
	int ts_closing;

	/* idle clock (the SDK's IdleClock) */
	int idle_armed, idle_arm_pending;

	/*
	 * timers: heartbeat, stream reconnect, idle, send retry, grace, and
	 * ev_timer (0 ms): stream callbacks may run inside libcurl's callbacks,
	 * where no request may be started, so the history list and the
	 * handling of live events are deferred to it.
	 */
	uv_timer_t hb_timer, stream_timer, idle_timer, send_timer, grace_timer, ev_timer;
	int need_list;
	/*
	 * The history page being read: its cursor (owned; NULL: the first) and
	 * the limit asked for, cut down when a page is more than the client
	 * takes (events echo tool results) and kept for the session.
	 */
	char *hist_page;
	unsigned hist_limit;
	int timers_open;

	/* end */
	int ending, stop_sent, stop_done, closed, done_fired;
	enum al_wsess_end end;
	int no_stop; /* ack failed or no credential: the item is not ours to stop */
	/* The session is over (terminated, deleted): its workspace goes at teardown. */
	int ws_wipe, ws_done, ws_rc, ts_used;
	struct al_wc_call *stop_call, *ack_call;
};

static void finish(struct al_wsess *s, enum al_wsess_end end, const char *why);
static void teardown_advance(struct al_wsess *s);
static void pump(struct al_wsess *s);
static void stream_start(struct al_wsess *s);
static void handle_event(struct al_wsess *s, json_t *ev);

/* No item of this session can follow: end, and delete its workspace (workspace.h). */
static void session_over(struct al_wsess *s)
{
	if (!s->ending)
		s->ws_wipe = 1;
	finish(s, AL_WSESS_DONE, "session terminated");
}

/* ---- small helpers ---- */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int set_has(const json_t *set, const char *id)
{
	return id != NULL && json_object_get(set, id) != NULL;
}

static void set_add(json_t *set, const char *id)
{
	if (id != NULL)
		json_object_set_new(set, id, json_true());
}

/* Writes one audit record; a failure is logged (the actions recorded here have happened). */
static void audit(struct al_wsess *s, const char *event, int failed, const char *tool_use_id,
		  json_t *fields)
{
	struct al_audit_ctx ac = {
	    .session_id = s->session_id, .work_id = s->work_id, .tool_call_id = tool_use_id};
	json_t *rec;
	int rc;

	if (s->ctx->audit == NULL) {
		json_decref(fields);
		return;
	}
	rec = al_audit_rec_event(&ac, event, failed, fields);
	if (rec == NULL) {
		al_error(LOGC, "audit record %s: out of memory work_id=%s", event, s->work_id);
		return;
	}
	if ((rc = al_audit_write(s->ctx->audit, rec)) < 0)
		al_error(LOGC, "audit write %s failed: %s work_id=%s", event, strerror(-rc),
			 s->work_id);
	json_decref(rec);
}

/*
 * The SDK's endsTurn: an idle status that does not wait for the client
 * (requires_action) ends the turn; end_turn is the usual reason.
 */
static int ends_turn(const json_t *ev)
{
	const char *t = jstr(ev, "type");
	const char *r;

	if (t == NULL || strcmp(t, "session.status_idle") != 0)
		return 0;
	r = jstr(json_object_get(ev, "stop_reason"), "type");
	return r == NULL || strcmp(r, "requires_action") != 0;
}

/* Events that neither start nor end quiet (the SDK's isIdleNeutral). */
static int idle_neutral(const json_t *ev)
{
	const char *t = jstr(ev, "type");

	return t != NULL && (strcmp(t, "user.tool_confirmation") == 0 ||
			     strcmp(t, "session.thread_status_terminated") == 0);
}

/* ---- idle clock ---- */

static size_t blockers(const struct al_wsess *s)
{
	return json_object_size(s->held) + json_object_size(s->queued) + (s->cur ? 1 : 0);
}

static void idle_expired_cb(uv_timer_t *t)
{
	struct al_wsess *s = t->data;

	s->idle_armed = 0;
	al_info(LOGC,
		"session idle after its turn ended; stopping work_id=%s session_id=%s "
		"max_idle_s=%u",
		s->work_id, s->session_id, s->ctx->cfg->max_idle_s);
	finish(s, AL_WSESS_DONE, "idle");
}

static void idle_disarm(struct al_wsess *s)
{
	s->idle_arm_pending = 0;
	if (s->idle_armed) {
		uv_timer_stop(&s->idle_timer);
		s->idle_armed = 0;
	}
}

static void idle_arm(struct al_wsess *s)
{
	/* max_idle 0: never leave on quiet (the SDK's maxIdleMs <= 0). */
	if (s->ending || s->ctx->cfg->max_idle_s == 0)
		return;
	if (blockers(s) > 0) {
		s->idle_arm_pending = 1;
		return;
	}
	s->idle_arm_pending = 0;
	uv_timer_start(&s->idle_timer, idle_expired_cb, (uint64_t)s->ctx->cfg->max_idle_s * 1000,
		       0);
	s->idle_armed = 1;
}

/* After the pipeline or the holds changed: an arm deferred by a blocker may go now. */
static void idle_check(struct al_wsess *s)
{
	if (s->idle_arm_pending && blockers(s) == 0)
		idle_arm(s);
}

static void idle_note_event(struct al_wsess *s, const json_t *ev)
{
	if (idle_neutral(ev))
		return;
	if (ends_turn(ev))
		idle_arm(s);
	else
		idle_disarm(s);
}

/* ---- the pipeline: journal, pool, post ---- */

static char *result_event_json(const char *tool_use_id, int is_error, json_t *content /* stolen */)
{
	json_t *ev = json_pack("{s:s, s:s, s:o, s:b}", "type", "user.tool_result", "tool_use_id",
			       tool_use_id, "content", content, "is_error", is_error);
	char *out;

	if (ev == NULL)
		return NULL;
	out = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	return out;
}

static json_t *text_content(const char *text)
{
	return json_pack("[{s:s, s:s}]", "type", "text", "text", text);
}

/* The pool thread: journal, run, journal again. Touches only the job. */
static void job_work_cb(uv_work_t *req)
{
	struct job *jb = req->data;
	struct al_wsess *s = jb->s;
	struct al_journal *jn = s->ctx->journal;
	enum al_journal_state prev = AL_JOURNAL_NONE;
	struct al_tool_result res;
	int rc;

	memset(&res, 0, sizeof(res));
	jb->exit_code = -1;
	rc =
	    al_journal_begin(jn, s->session_id, jb->id, s->work_id, jb->name, jb->input_sha, &prev);
	if (rc == 0) {
		jb->how = HOW_RAN;
		if (jb->ts == NULL) {
			jb->is_error = 1;
			jb->result_json = result_event_json(
			    jb->id, 1,
			    text_content("the worker could not open this session's tool "
					 "sandbox; the call was not run"));
		} else {
			jb->tool_rc = al_tool_session_run(jb->ts, s->work_id, jb->id, jb->name,
							  jb->input, &res);
			if (res.content == NULL) {
				res.is_error = 1;
				res.content =
				    text_content(jb->tool_rc == -ECANCELED
						     ? "the tool call was cancelled"
						     : "the tool call failed in the worker");
			}
			jb->is_error = res.is_error;
			jb->audit_failed = res.audit_failed;
			jb->exit_code = res.exit_code;
			jb->duration_us = res.duration_us;
			jb->result_json =
			    result_event_json(jb->id, res.is_error, json_incref(res.content));
		}
		if (jb->result_json != NULL &&
		    (rc = al_journal_finish(jn, s->session_id, jb->id, jb->result_json)) < 0)
			jb->jrc = rc; /* ran; the answer still goes out, but say so */
	} else if (rc == -EEXIST && prev == AL_JOURNAL_STARTED) {
		/* Began before a crash and never finished: never run twice. */
		jb->how = HOW_RESTARTED;
		jb->is_error = 1;
		jb->result_json = result_event_json(jb->id, 1, text_content(RESTARTED_TEXT));
		if (jb->result_json != NULL &&
		    (rc = al_journal_finish(jn, s->session_id, jb->id, jb->result_json)) < 0 &&
		    rc != -EALREADY)
			jb->jrc = rc;
	} else if (rc == -EEXIST && prev == AL_JOURNAL_DONE) {
		enum al_journal_state st;

		jb->how = HOW_RESENT;
		if ((rc = al_journal_get(jn, s->session_id, jb->id, &st, &jb->result_json)) < 0)
			jb->jrc = rc;
	} else if (rc == -EEXIST) {
		jb->how = HOW_SKIP; /* ANSWERED: never answer again */
	} else {
		/*
		 * The journal cannot record the call, so running it could run it
		 * twice after a crash: fail closed, answer with an error.
		 */
		jb->how = HOW_JOURNAL_FAIL;
		jb->jrc = rc;
		jb->is_error = 1;
		jb->result_json = result_event_json(
		    jb->id, 1,
		    text_content("the worker could not record this call in its journal; it was "
				 "not run"));
	}
	al_tool_result_clear(&res);
}

static void job_free(struct job *jb)
{
	if (jb == NULL)
		return;
	al_free(jb->id);
	al_free(jb->name);
	json_decref(jb->input);
	al_free(jb->result_json);
	json_decref(jb->event);
	al_free(jb);
}

static void inflight_key(const struct al_wsess *s, const char *id, char *out, size_t len)
{
	snprintf(out, len, "%s %s", s->session_id, id);
}

/* The call is over (answered, skipped or given up): take the next. */
static void call_done(struct al_wsess *s)
{
	if (s->ctx->inflight != NULL) {
		char key[512];

		inflight_key(s, s->cur->id, key, sizeof(key));
		json_object_del(s->ctx->inflight, key);
	}
	job_free(s->cur);
	s->cur = NULL;
	idle_check(s);
	if (s->ending)
		teardown_advance(s);
	else
		pump(s);
}

/* The journal's ANSWERED for one call, written on the pool (mark_answered). */
struct answered_work {
	uv_work_t req;
	struct al_journal *journal;
	al_audit_log *audit; /* may be NULL */
	char *session_id, *id;
};

static void answered_write(struct al_journal *jn, const char *session_id, const char *id)
{
	enum al_journal_state st = AL_JOURNAL_NONE;

	/*
	 * Only calls this journal knows need the write: history holds many
	 * answers of calls run elsewhere or long ago, and rewriting each on
	 * every reconcile would cost an SQLite transaction apiece.
	 */
	if (al_journal_get(jn, session_id, id, &st, NULL) == 0 &&
	    (st == AL_JOURNAL_STARTED || st == AL_JOURNAL_DONE))
		al_journal_answered(jn, session_id, id);
}

static void answered_work_cb(uv_work_t *req)
{
	struct answered_work *aw = req->data;
	int rc;

	answered_write(aw->journal, aw->session_id, aw->id);
	/*
	 * The call's closing audit records (tool.call, the exit record) were
	 * written unsynced so the result could leave at once (tools.h,
	 * Durability); make them durable here, off the critical path. A failed
	 * sync poisons the log: the next call's pre-action write fails and the
	 * worker stops taking work, as for any audit failure.
	 */
	if (aw->audit != NULL && (rc = al_audit_sync(aw->audit)) < 0)
		al_error(LOGC, "audit sync after tool_use_id=%s failed: %s", aw->id, strerror(-rc));
}

static void answered_after_cb(uv_work_t *req, int status)
{
	struct answered_work *aw = req->data;

	(void)status;
	al_free(aw->session_id);
	al_free(aw->id);
	al_free(aw);
}

static void mark_answered(struct al_wsess *s, const char *id)
{
	struct answered_work *aw;

	/* Once per call: our own result comes back on the stream after the POST. */
	if (set_has(s->answered, id))
		return;
	set_add(s->answered, id);
	/*
	 * Off the loop thread: the journal's mutex is held through a begin's
	 * fsync on a tool thread, and the loop serves every session. Nothing
	 * waits for this write (journal.h: ANSWERED need not be synced; the
	 * in-memory set above already keeps this worker from answering twice).
	 * The loop runs until queued work is done, so it lands before the
	 * journal closes. If it cannot be queued, it is written here.
	 */
	aw = al_calloc(1, sizeof(*aw));
	if (aw != NULL) {
		aw->journal = s->ctx->journal;
		aw->audit = s->ctx->audit;
		aw->session_id = al_strdup(s->session_id);
		aw->id = al_strdup(id);
		aw->req.data = aw;
	}
	if (aw == NULL || aw->session_id == NULL || aw->id == NULL ||
	    uv_queue_work(s->ctx->loop, &aw->req, answered_work_cb, answered_after_cb) < 0) {
		if (aw != NULL)
			answered_after_cb(&aw->req, 0);
		answered_write(s->ctx->journal, s->session_id, id);
	}
}

static void send_result(struct al_wsess *s);
static void check_history(struct al_wsess *s, const char *page);
static void post_result(struct al_wsess *s);

static void send_timer_cb(uv_timer_t *t)
{
	send_result(t->data);
}

/*
 * 1 when a failed post may have reached the server and been stored all the
 * same: the connection died or timed out after the request may have left,
 * or the server failed (5xx, 408) after it may have stored it. Refused
 * connections, unresolvable names and TLS verification failures never
 * delivered anything; -ENOMEM/-EINVAL are ours, before sending.
 */
static int post_unsure(const struct al_wc_resp *r)
{
	if (r->err < 0)
		return r->err != -ECONNREFUSED && r->err != -EHOSTUNREACH && r->err != -EPROTO &&
		       r->err != -ENOMEM && r->err != -EINVAL;
	return r->status >= 500 || r->status == 408;
}

/* airlock's server refuses a second answer: 400, error_code tool_use_already_answered. */
static int reply_already_answered(const struct al_wc_resp *r)
{
	const char *code = json_string_value(json_object_get(r->details, "error_code"));

	return r->err == 0 && r->status == 400 && code != NULL &&
	       strcmp(code, "tool_use_already_answered") == 0;
}

/*
 * The call turned out to be answered already, most likely by a post of ours
 * whose response was lost: record it and send nothing more. how says who
 * told us (history, including its live tail on the stream, or the server).
 */
static void confirm_answered(struct al_wsess *s, const char *how)
{
	struct job *jb = s->cur;

	mark_answered(s, jb->id);
	al_info(LOGC,
		"answered tool call work_id=%s session_id=%s tool_use_id=%s name=%s how=%s "
		"result=%s is_error=%d attempts=%u",
		s->work_id, s->session_id, jb->id, jb->name, how, how_name[jb->how], jb->is_error,
		jb->attempt);
	audit(s, "tool.answered", jb->is_error, jb->id,
	      json_pack("{s:s, s:s, s:s, s:b, s:i, s:I, s:I}", "how", how, "result",
			how_name[jb->how], "name", jb->name, "is_error", jb->is_error, "exit_code",
			jb->exit_code, "duration_us", (json_int_t)jb->duration_us, "attempts",
			(json_int_t)jb->attempt));
	call_done(s);
}

/* A post (or history check) failed: retry after a backoff, or give up past the window. */
static void send_retry(struct al_wsess *s, const struct al_wc_resp *r);

static void send_cb(const struct al_wc_resp *r, void *ud)
{
	struct al_wsess *s = ud;
	struct job *jb = s->cur;

	if (r->err == 0 && r->status >= 200 && r->status < 300) {
		mark_answered(s, jb->id);
		al_info(LOGC,
			"answered tool call work_id=%s session_id=%s tool_use_id=%s name=%s how=%s "
			"is_error=%d exit_code=%d duration_us=%lld attempts=%u",
			s->work_id, s->session_id, jb->id, jb->name, how_name[jb->how],
			jb->is_error, jb->exit_code, (long long)jb->duration_us, jb->attempt);
		audit(s, "tool.answered", jb->is_error, jb->id,
		      json_pack("{s:s, s:s, s:b, s:i, s:I, s:I}", "how", how_name[jb->how], "name",
				jb->name, "is_error", jb->is_error, "exit_code", jb->exit_code,
				"duration_us", (json_int_t)jb->duration_us, "attempts",
				(json_int_t)jb->attempt));
		call_done(s);
		return;
	}
	if (reply_already_answered(r)) {
		confirm_answered(s, "confirmed_by_server");
		return;
	}
	if (r->err == 0 && al_wc_is_fatal_4xx(r->status)) {
		al_error(LOGC, "tool result refused (%d %s); not retried work_id=%s tool_use_id=%s",
			 r->status, r->error_type ? r->error_type : "", s->work_id, jb->id);
		audit(s, "tool.answer_failed", 1, jb->id,
		      json_pack("{s:s, s:i}", "how", how_name[jb->how], "status", r->status));
		call_done(s);
		return;
	}
	if (post_unsure(r))
		jb->unsure = 1;
	send_retry(s, r);
}

static void send_retry(struct al_wsess *s, const struct al_wc_resp *r)
{
	struct job *jb = s->cur;
	uint64_t now = al_mono_ms(), window, wait;

	window = s->ending && s->end == AL_WSESS_SHUTDOWN
		     ? (uint64_t)s->ctx->cfg->shutdown_grace_s * 1000
		     : SEND_WINDOW_MS;
	if (s->lease_lost || now - jb->send_start_ms >= window) {
		al_error(LOGC,
			 "tool result not posted after %u attempts (%s); the journal keeps it for "
			 "a later item work_id=%s tool_use_id=%s",
			 jb->attempt, s->lease_lost ? "lease lost" : "retry window over",
			 s->work_id, jb->id);
		audit(s, "tool.answer_failed", 1, jb->id,
		      json_pack("{s:s, s:i}", "how", how_name[jb->how], "status", r->status));
		call_done(s);
		return;
	}
	wait = al_worker_apply_jitter(
	    al_worker_backoff_ms(jb->attempt - 1, SEND_BACKOFF_MS, SEND_BACKOFF_CAP));
	if (r->retry_after_ms > 0 && (uint64_t)r->retry_after_ms > wait)
		wait = (uint64_t)r->retry_after_ms;
	if (wait > window - (now - jb->send_start_ms))
		wait = window - (now - jb->send_start_ms);
	al_warn(LOGC,
		"tool result send failed (status %d err %d); retrying work_id=%s tool_use_id=%s "
		"attempt=%u backoff_ms=%llu",
		r->status, r->err, s->work_id, jb->id, jb->attempt, (unsigned long long)wait);
	uv_timer_start(&s->send_timer, send_timer_cb, wait, 0);
}

static void send_result(struct al_wsess *s)
{
	struct job *jb = s->cur;

	if (s->lease_lost) {
		al_warn(LOGC, "lease lost: result of tool_use_id=%s not posted work_id=%s", jb->id,
			s->work_id);
		call_done(s);
		return;
	}
	if (set_has(s->answered, jb->id)) {
		/* Answered meanwhile (by history or another worker): never twice. */
		if (jb->attempt > 0) {
			/* Most likely our own earlier post, seen on the stream. */
			confirm_answered(s, "confirmed_by_history");
			return;
		}
		mark_answered(s, jb->id);
		call_done(s);
		return;
	}
	if (jb->unsure) {
		check_history(s, NULL);
		return;
	}
	post_result(s);
}

/*
 * The previous post may have been stored though its response was lost (and
 * the hosted API may store a second copy): before posting again, read the
 * session's history, every page, for an answer to this call. A page's
 * answers of other calls are left to the stream and reconcile.
 */
static void check_cb(const struct al_wc_resp *r, void *ud)
{
	struct al_wsess *s = ud;
	struct job *jb = s->cur;
	const char *next;
	json_t *ev;
	size_t i;

	if (r->err != 0 || r->status != 200 || !json_is_array(json_object_get(r->body, "data"))) {
		al_warn(LOGC,
			"history check before resending failed (status %d err %d) work_id=%s "
			"tool_use_id=%s",
			r->status, r->err, s->work_id, jb->id);
		if (r->err == 0 && al_wc_is_fatal_4xx(r->status)) {
			audit(
			    s, "tool.answer_failed", 1, jb->id,
			    json_pack("{s:s, s:i}", "how", how_name[jb->how], "status", r->status));
			call_done(s);
			return;
		}
		send_retry(s, r);
		return;
	}
	json_array_foreach(json_object_get(r->body, "data"), i, ev)
	{
		const char *t = jstr(ev, "type"), *id = NULL;

		if (t != NULL && strcmp(t, "user.tool_result") == 0)
			id = jstr(ev, "tool_use_id");
		else if (t != NULL && strcmp(t, "user.custom_tool_result") == 0)
			id = jstr(ev, "custom_tool_use_id");
		if (id != NULL && strcmp(id, jb->id) == 0) {
			confirm_answered(s, "confirmed_by_history");
			return;
		}
	}
	if ((next = al_wc_next_page(r->body)) != NULL) {
		check_history(s, next);
		return;
	}
	al_info(LOGC, "tool result not in history; posting it again work_id=%s tool_use_id=%s",
		s->work_id, jb->id);
	jb->unsure = 0;
	send_result(s); /* the stream may have shown it meanwhile; the lease may be gone */
}

static void check_history(struct al_wsess *s, const char *page)
{
	int rc = al_wc_events_list(s->ctx->client, s->session_id, s->token, HISTORY_PAGE, page,
				   check_cb, s, NULL);

	if (rc < 0) {
		struct al_wc_resp r = {.err = rc, .retry_after_ms = -1};

		send_retry(s, &r);
	}
}

static void post_result(struct al_wsess *s)
{
	struct job *jb = s->cur;
	json_t *events;
	int rc;

	jb->attempt++;
	events = json_pack("[O]", jb->event);
	rc = events ? al_wc_events_send(s->ctx->client, s->session_id, s->token, events, send_cb, s,
					NULL)
		    : -ENOMEM;
	json_decref(events);
	if (rc < 0) {
		struct al_wc_resp r = {.err = rc, .retry_after_ms = -1};

		send_cb(&r, s);
	}
}

static void job_after_cb(uv_work_t *req, int status)
{
	struct job *jb = req->data;
	struct al_wsess *s = jb->s;

	(void)status;
	s->cur_on_pool = 0;
	uv_timer_stop(&s->grace_timer);
	if (jb->jrc < 0) {
		al_error(LOGC, "journal failure (%s) work_id=%s tool_use_id=%s", strerror(-jb->jrc),
			 s->work_id, jb->id);
		s->ctx->fatal = 1;
	}
	if (jb->audit_failed) {
		/* tools.h: the audit log is broken; the result stands, the worker must stop. */
		al_error(LOGC, "audit log failed during tool_use_id=%s work_id=%s", jb->id,
			 s->work_id);
		s->ctx->fatal = 1;
	}
	if (jb->how == HOW_SKIP) {
		al_info(LOGC,
			"tool call already answered (journal); skipped work_id=%s "
			"tool_use_id=%s",
			s->work_id, jb->id);
		set_add(s->answered, jb->id);
		call_done(s);
		return;
	}
	if (jb->result_json == NULL || (jb->event = json_loads(jb->result_json, 0, NULL)) == NULL) {
		al_error(LOGC, "no result to post for tool_use_id=%s work_id=%s", jb->id,
			 s->work_id);
		call_done(s);
		return;
	}
	if (jb->how == HOW_RESENT)
		jb->is_error = json_is_true(json_object_get(jb->event, "is_error"));
	if (jb->how == HOW_RESTARTED)
		al_warn(LOGC,
			"tool call was started before a restart and never finished; answering "
			"with an error, not running it again work_id=%s tool_use_id=%s",
			s->work_id, jb->id);
	jb->send_start_ms = al_mono_ms();
	send_result(s);
}

static void pump_retry_cb(uv_timer_t *t)
{
	pump(t->data);
}

/* Takes the next queued call, if nothing runs. */
static void pump(struct al_wsess *s)
{
	struct qcall *q;
	struct job *jb = NULL;
	char err[256];
	int rc;

	while (!s->ending && s->cur == NULL && (q = s->qhead) != NULL) {
		const char *id = jstr(q->ev, "id");
		const char *name = jstr(q->ev, "name");
		json_t *input = json_object_get(q->ev, "input");

		if (id != NULL && s->ctx->inflight != NULL) {
			char key[512];

			inflight_key(s, id, key, sizeof(key));
			if (json_object_get(s->ctx->inflight, key) != NULL) {
				/* Another item of this session (a reclaimed one) still has it. */
				al_info(LOGC,
					"tool call still running for an earlier item; waiting "
					"work_id=%s tool_use_id=%s",
					s->work_id, id);
				uv_timer_start(&s->send_timer, pump_retry_cb, 500, 0);
				return;
			}
		}
		s->qhead = q->next;
		if (s->qhead == NULL)
			s->qtail = NULL;
		json_object_del(s->queued, id);
		if (set_has(s->answered, id)) {
			json_decref(q->ev);
			al_free(q);
			continue;
		}
		if (s->ts == NULL) {
			rc = al_tool_session_open(s->ctx->cfg, s->session_id, s->ctx->audit, &s->ts,
						  err, sizeof(err));
			s->ts_used = 1;
			if (rc < 0) {
				al_error(LOGC, "tool session: %s work_id=%s session_id=%s", err,
					 s->work_id, s->session_id);
				s->ts = NULL;
			}
		}
		jb = al_calloc(1, sizeof(*jb));
		if (jb == NULL || (jb->id = al_strdup(id)) == NULL ||
		    (jb->name = al_strdup(name)) == NULL ||
		    (jb->input = input ? json_deep_copy(input) : json_object()) == NULL) {
			al_error(LOGC, "out of memory queueing tool_use_id=%s", id);
			job_free(jb);
			/*
			 * Unjournalled: a later reconcile sees it unanswered and retries
			 * (forgotten as an event too, or the reconcile would skip it).
			 */
			json_object_del(s->seen, id);
			json_object_del(s->evseen, id);
			json_decref(q->ev);
			al_free(q);
			continue;
		}
		if (al_tool_json_sha256(jb->input, jb->input_sha) < 0)
			jb->input_sha[0] = '\0';
		jb->s = s;
		jb->ts = s->ts;
		jb->req.data = jb;
		json_decref(q->ev);
		al_free(q);
		s->cur = jb;
		s->cur_on_pool = 1;
		if (s->ctx->inflight != NULL) {
			char key[512];

			inflight_key(s, jb->id, key, sizeof(key));
			json_object_set_new(s->ctx->inflight, key, json_true());
		}
		idle_disarm(s);
		al_info(LOGC, "executing tool work_id=%s session_id=%s tool_use_id=%s name=%s",
			s->work_id, s->session_id, jb->id, jb->name);
		if ((rc = uv_queue_work(s->ctx->loop, &jb->req, job_work_cb, job_after_cb)) < 0) {
			al_error(LOGC, "uv_queue_work: %s", uv_strerror(rc));
			s->cur_on_pool = 0;
			json_object_del(s->seen, jb->id);
			if (s->ctx->inflight != NULL) {
				char key[512];

				inflight_key(s, jb->id, key, sizeof(key));
				json_object_del(s->ctx->inflight, key);
			}
			job_free(jb);
			s->cur = NULL;
			finish(s, AL_WSESS_FAILED, "thread pool unavailable");
		}
	}
}

static void enqueue(struct al_wsess *s, json_t *ev)
{
	const char *id = jstr(ev, "id");
	struct qcall *q;

	if (id == NULL || set_has(s->answered, id) || set_has(s->queued, id) ||
	    (s->cur && strcmp(s->cur->id, id) == 0))
		return;
	if ((q = al_calloc(1, sizeof(*q))) == NULL)
		return;
	q->ev = json_incref(ev);
	if (s->qtail)
		s->qtail->next = q;
	else
		s->qhead = q;
	s->qtail = q;
	set_add(s->queued, id);
	idle_disarm(s);
	pump(s);
}

/* A confirmation verdict for a call (the SDK's applyVerdict). */
static void apply_verdict(struct al_wsess *s, json_t *ev, const char *verdict)
{
	const char *id = jstr(ev, "id");
	int allow = verdict != NULL && strcmp(verdict, "allow") == 0;

	json_incref(ev);
	json_object_del(s->held, id);
	audit(s, "tool.confirmation", !allow, id,
	      json_pack("{s:s, s:s}", "result", verdict ? verdict : "", "name",
			jstr(ev, "name") ? jstr(ev, "name") : ""));
	if (allow) {
		al_info(LOGC, "tool call confirmed work_id=%s tool_use_id=%s", s->work_id, id);
		enqueue(s, ev);
	} else {
		/*
		 * Fail closed. Like the SDK, nothing is posted for a denied call:
		 * the platform answers a denial itself; the call is simply never run.
		 */
		set_add(s->answered, id);
		al_info(LOGC, "tool call denied (%s); not executing work_id=%s tool_use_id=%s",
			verdict ? verdict : "?", s->work_id, id);
		idle_check(s);
	}
	json_decref(ev);
}

/* An agent.tool_use not answered yet (the SDK's routeToolEvent). */
static void route(struct al_wsess *s, json_t *ev)
{
	const char *id = jstr(ev, "id"), *name = jstr(ev, "name");
	json_t *pv = json_object_get(ev, "evaluated_permission");
	const char *perm = json_string_value(pv);
	const char *verdict;

	if (id == NULL || name == NULL)
		return;
	/*
	 * Fail closed as the SDK does (only an absent permission or "allow" runs
	 * unconfirmed): a present value that is not a string (null, a number)
	 * is held like an unrecognised one, never taken for absent.
	 */
	if (pv != NULL && perm == NULL)
		perm = "";
	if (!al_tool_is_owned(name)) {
		al_debug(LOGC,
			 "tool %s not owned by this worker; left for its owner tool_use_id=%s",
			 name, id);
		return;
	}
	verdict = perm && strcmp(perm, "deny") == 0 ? "deny" : jstr(s->verdicts, id);
	if (verdict == NULL) {
		if (perm == NULL || strcmp(perm, "allow") == 0) {
			enqueue(s, ev);
		} else if (!set_has(s->held, id)) {
			al_info(LOGC,
				"tool call awaiting confirmation; holding work_id=%s "
				"tool_use_id=%s name=%s",
				s->work_id, id, name);
			json_object_set(s->held, id, ev);
			if (s->idle_armed) { /* the SDK's IdleClock.block: resume once released */
				uv_timer_stop(&s->idle_timer);
				s->idle_armed = 0;
				s->idle_arm_pending = 1;
			}
		}
		return;
	}
	apply_verdict(s, ev, verdict);
}

static void note_confirmation(struct al_wsess *s, const json_t *ev)
{
	const char *id = jstr(ev, "tool_use_id"), *result = jstr(ev, "result");
	json_t *held;

	if (id == NULL)
		return;
	json_object_set_new(s->verdicts, id, json_string(result ? result : ""));
	if ((held = json_object_get(s->held, id)) != NULL)
		apply_verdict(s, held, result);
}

static void note_answer(struct al_wsess *s, const char *id)
{
	if (id == NULL)
		return;
	mark_answered(s, id);
	if (json_object_get(s->held, id)) {
		json_object_del(s->held, id);
		idle_check(s);
	}
}

/* A live event (after the history was read). */
static void handle_event(struct al_wsess *s, json_t *ev)
{
	const char *eid = jstr(ev, "id"), *t = jstr(ev, "type");

	if (t == NULL || s->ending)
		return;
	if (eid != NULL) {
		if (set_has(s->evseen, eid))
			return; /* a duplicate delivery: stream and history overlap */
		set_add(s->evseen, eid);
	}
	idle_note_event(s, ev);
	if (strcmp(t, "agent.tool_use") == 0) {
		if (!set_has(s->seen, eid)) {
			set_add(s->seen, eid);
			if (!set_has(s->answered, eid))
				route(s, ev);
		}
	} else if (strcmp(t, "user.tool_confirmation") == 0) {
		note_confirmation(s, ev);
	} else if (strcmp(t, "user.tool_result") == 0) {
		note_answer(s, jstr(ev, "tool_use_id"));
	} else if (strcmp(t, "session.status_terminated") == 0 ||
		   strcmp(t, "session.deleted") == 0) {
		al_info(LOGC, "session terminated work_id=%s session_id=%s", s->work_id,
			s->session_id);
		session_over(s);
	}
}

/* ---- history reconciliation ---- */

static void reconcile_apply(struct al_wsess *s)
{
	json_t *pending = json_array(), *ev, *buf;
	size_t i;
	int last_ended = 0;
	const char *key;

	/* Pass 1: ingest (the SDK's ingestHistory), de-duplicated by event id. */
	json_array_foreach(s->hist, i, ev)
	{
		const char *eid = jstr(ev, "id"), *t = jstr(ev, "type");

		if (t == NULL)
			continue;
		if (!idle_neutral(ev))
			last_ended = ends_turn(ev);
		if (eid != NULL && set_has(s->evseen, eid))
			continue;
		if (eid != NULL)
			set_add(s->evseen, eid);
		if (strcmp(t, "agent.tool_use") == 0) {
			set_add(s->seen, eid);
			if (!set_has(s->answered, eid) && pending)
				json_array_append(pending, ev);
		} else if (strcmp(t, "user.tool_result") == 0) {
			note_answer(s, jstr(ev, "tool_use_id"));
		} else if (strcmp(t, "user.tool_confirmation") == 0) {
			const char *id = jstr(ev, "tool_use_id");

			if (id && !set_has(s->answered, id))
				json_object_set_new(
				    s->verdicts, id,
				    json_string(jstr(ev, "result") ? jstr(ev, "result") : ""));
		} else if (strcmp(t, "session.status_terminated") == 0) {
			session_over(s);
		}
	}
	/* Emptied, not freed: every reconnect reads the history into it again. */
	json_array_clear(s->hist);
	s->reconciling = 0;
	if (json_array_size(pending) > 0)
		idle_disarm(s);
	/* Pass 2: route what is still unanswered, in history order. */
	json_array_foreach(pending, i, ev)
	{
		if (!s->ending && !set_has(s->answered, jstr(ev, "id")))
			route(s, ev);
	}
	json_decref(pending);
	/* Holds whose verdict arrived in the history. */
	if (!s->ending) {
		json_t *held = json_copy(s->held);
		void *tmp;

		json_object_foreach_safe(held, tmp, key, ev)
		{
			const char *v = jstr(s->verdicts, key);

			if (v != NULL)
				apply_verdict(s, ev, v);
		}
		json_decref(held);
	}
	if (!s->ending) {
		/*
		 * An idle timer already running keeps its start: a reconnect (every
		 * silent stream is one) must not postpone the exit forever.
		 */
		if (last_ended && blockers(s) == 0 && !s->idle_armed)
			idle_arm(s);
		else if (!last_ended)
			idle_disarm(s);
	}
	/* Then the live events that arrived meanwhile, in order. */
	buf = s->stream_buf;
	s->stream_buf = json_array();
	json_array_foreach(buf, i, ev)
	{
		handle_event(s, ev);
	}
	json_decref(buf);
}

static void list_cb(const struct al_wc_resp *r, void *ud);

/* Asks for the page at cursor `page` (copied; NULL: the first). */
static int list_page(struct al_wsess *s, const char *page)
{
	char *dup = NULL;

	if (page != NULL && (dup = al_strdup(page)) == NULL)
		return -ENOMEM;
	al_free(s->hist_page);
	s->hist_page = dup;
	if (s->hist_limit == 0)
		s->hist_limit = HISTORY_PAGE;
	return al_wc_events_list(s->ctx->client, s->session_id, s->token, s->hist_limit,
				 s->hist_page, list_cb, s, &s->list_call);
}

static void stream_retry(struct al_wsess *s, const char *why);

static void list_cb(const struct al_wc_resp *r, void *ud)
{
	struct al_wsess *s = ud;
	json_t *data;
	const char *next;

	s->list_call = NULL;
	if (r->err == -EFBIG) {
		/*
		 * The page is larger than a response may be (a few hundred large
		 * tool results): ask for the same page with fewer events, or the
		 * history could never be read and no call would ever run.
		 */
		if (s->hist_limit <= 1) {
			al_error(LOGC, "a history event exceeds the response limit work_id=%s",
				 s->work_id);
			finish(s, AL_WSESS_FAILED, "history event too large");
			return;
		}
		s->hist_limit = s->hist_limit / 4 > 0 ? s->hist_limit / 4 : 1;
		al_warn(LOGC, "history page too large; asking for %u events work_id=%s",
			s->hist_limit, s->work_id);
		if (list_page(s, s->hist_page) < 0)
			stream_retry(s, "history list failed");
		return;
	}
	if (r->err != 0 || r->status != 200 || !json_is_object(r->body)) {
		if (r->err == 0 && al_wc_is_fatal_4xx(r->status)) {
			al_error(LOGC, "history refused (%d %s) work_id=%s session_id=%s",
				 r->status, r->error_type ? r->error_type : "", s->work_id,
				 s->session_id);
			finish(s, AL_WSESS_FAILED, "history refused");
			return;
		}
		/*
		 * The SDK carries on with the stream after a failed list; a call
		 * made while the list failed would then wait for the next
		 * disconnect. Reconnecting now reads the history again sooner.
		 */
		stream_retry(s, "history list failed");
		return;
	}
	data = json_object_get(r->body, "data");
	if (json_is_array(data))
		json_array_extend(s->hist, data);
	if (json_array_size(s->hist) > HISTORY_MAX) {
		al_error(LOGC, "history longer than %u events; giving up work_id=%s session_id=%s",
			 HISTORY_MAX, s->work_id, s->session_id);
		json_array_clear(s->hist);
		finish(s, AL_WSESS_FAILED, "history too long");
		return;
	}
	next = al_wc_next_page(r->body);
	if (next != NULL && json_array_size(data) > 0) {
		if (list_page(s, next) < 0)
			stream_retry(s, "history list failed");
		return;
	}
	reconcile_apply(s);
}

/* ---- the event stream ---- */

static void stream_timer_cb(uv_timer_t *t)
{
	stream_start(t->data);
}

static void stream_retry(struct al_wsess *s, const char *why)
{
	if (s->stream) {
		al_wc_stream_close(s->stream);
		s->stream = NULL;
	}
	if (s->list_call) {
		al_wc_cancel(s->list_call);
		s->list_call = NULL;
	}
	json_array_clear(s->hist);
	json_array_clear(s->stream_buf);
	s->reconciling = 0;
	s->need_list = 0;
	if (s->ending)
		return;
	al_warn(LOGC, "%s; reconnecting work_id=%s session_id=%s backoff_ms=%u", why, s->work_id,
		s->session_id, s->stream_backoff_ms);
	uv_timer_start(&s->stream_timer, stream_timer_cb, s->stream_backoff_ms, 0);
	s->stream_backoff_ms = s->stream_backoff_ms * 2 > STREAM_BACKOFF_CAP
				   ? STREAM_BACKOFF_CAP
				   : s->stream_backoff_ms * 2;
}

static void ev_timer_cb(uv_timer_t *t)
{
	struct al_wsess *s = t->data;
	json_t *buf;
	size_t i;
	json_t *ev;

	if (s->ending)
		return;
	if (s->need_list) {
		s->need_list = 0;
		if (list_page(s, NULL) < 0)
			stream_retry(s, "history list failed");
		return;
	}
	if (s->reconciling)
		return;
	buf = s->stream_buf;
	if ((s->stream_buf = json_array()) == NULL) {
		s->stream_buf = buf;
		return;
	}
	json_array_foreach(buf, i, ev)
	{
		handle_event(s, ev);
	}
	json_decref(buf);
}

static void stream_open_cb(void *ud)
{
	struct al_wsess *s = ud;

	if (!s->attached) {
		s->attached = 1;
		al_info(LOGC, "attached to session work_id=%s session_id=%s", s->work_id,
			s->session_id);
		audit(s, "session.attached", 0, NULL, NULL);
	}
	/* Stream first, then the history: the stream has no replay. */
	s->reconciling = 1;
	json_array_clear(s->hist);
	s->need_list = 1;
	uv_timer_start(&s->ev_timer, ev_timer_cb, 0, 0);
}

static void stream_event_cb(json_t *ev, void *ud)
{
	struct al_wsess *s = ud;

	s->stream_backoff_ms = STREAM_BACKOFF_MS;
	json_array_append(s->stream_buf, ev);
	if (!s->reconciling)
		uv_timer_start(&s->ev_timer, ev_timer_cb, 0, 0);
}

static void stream_end_cb(const struct al_wc_resp *r, void *ud)
{
	struct al_wsess *s = ud;

	s->stream = NULL;
	if (r->err == 0 && al_wc_is_fatal_4xx(r->status)) {
		al_error(LOGC,
			 "event stream refused (%d %s); shutting down work_id=%s "
			 "session_id=%s",
			 r->status, r->error_type ? r->error_type : "", s->work_id, s->session_id);
		finish(s, AL_WSESS_FAILED, "stream refused");
		return;
	}
	stream_retry(s, r->err == 0 && r->status == 200 ? "event stream ended"
							: "event stream failed");
}

static void stream_start(struct al_wsess *s)
{
	int rc;

	if (s->ending)
		return;
	rc = al_wc_stream_open(s->ctx->client, s->session_id, s->token, stream_open_cb,
			       stream_event_cb, stream_end_cb, s, &s->stream);
	if (rc < 0) {
		s->stream = NULL;
		stream_retry(s, "event stream open failed");
	}
}

/* GET the session first, as the SDK does: a terminated session runs nothing. */
static void session_get_cb(const struct al_wc_resp *r, void *ud)
{
	struct al_wsess *s = ud;
	const char *status;

	s->get_call = NULL;
	if (s->ending)
		return;
	if (r->err != 0 || r->status != 200) {
		/* libcurl's text (host, port, reason: a TLS verification failure) or nothing. */
		al_error(LOGC,
			 "session fetch failed (status %d err %d%s%s) work_id=%s session_id=%s",
			 r->status, r->err, r->err < 0 && r->error_message ? ": " : "",
			 r->err < 0 && r->error_message ? r->error_message : "", s->work_id,
			 s->session_id);
		finish(s, AL_WSESS_FAILED, "session fetch failed");
		return;
	}
	status = jstr(r->body, "status");
	if (status != NULL && strcmp(status, "terminated") == 0) {
		al_info(LOGC, "skipping the work item of a terminated session work_id=%s",
			s->work_id);
		session_over(s);
		return;
	}
	s->started_stream = 1;
	stream_start(s);
}

/* ---- heartbeats (the lease) ---- */

static void hb_beat(struct al_wsess *s);

static void lease_lost(struct al_wsess *s, const char *why)
{
	if (s->lease_lost)
		return;
	s->lease_lost = 1;
	al_error(LOGC, "lease lost (%s); the item is left to its new owner work_id=%s", why,
		 s->work_id);
	audit(s, "lease.lost", 1, NULL, json_pack("{s:s}", "reason", why));
	if (s->ts)
		al_tool_session_cancel(s->ts);
	finish(s, AL_WSESS_LEASE_LOST, why);
}

static void hb_timer_cb(uv_timer_t *t)
{
	struct al_wsess *s = t->data;

	if (s->hb_stopped)
		return;
	if (s->hb_call != NULL) {
		/* The beat outlived its interval: cut it off (a hung request must not
		 * outlive the lease it renews) and count it as a failure. */
		al_wc_cancel(s->hb_call);
		s->hb_call = NULL;
		if (al_mono_ms() - s->hb_last_ok_ms > (uint64_t)s->ttl_s * 1000) {
			lease_lost(s, "no successful heartbeat within the TTL");
			return;
		}
		al_warn(LOGC, "heartbeat timed out work_id=%s", s->work_id);
		uv_timer_start(&s->hb_timer, hb_timer_cb, s->hb_interval_ms, 0);
		return;
	}
	hb_beat(s);
}

static void hb_cb(const struct al_wc_resp *r, void *ud)
{
	struct al_wsess *s = ud;
	const char *state, *last;
	json_int_t ttl;

	s->hb_call = NULL;
	if (s->hb_stopped)
		return;
	if (r->err == 0 && r->status >= 200 && r->status < 300 && json_is_object(r->body)) {
		s->hb_last_ok_ms = al_mono_ms();
		if ((last = jstr(r->body, "last_heartbeat")) != NULL) {
			char *dup = al_strdup(last);

			if (dup != NULL) {
				al_free(s->last_hb);
				s->last_hb = dup;
			}
		}
		ttl = json_integer_value(json_object_get(r->body, "ttl_seconds"));
		if (ttl > 0 && ttl < 86400) {
			unsigned half = (unsigned)ttl * 500;

			s->ttl_s = (unsigned)ttl;
			s->hb_interval_ms = half < HB_DEFAULT_MS ? half : HB_DEFAULT_MS;
			if (s->hb_interval_ms < 1000)
				s->hb_interval_ms = 1000;
		}
		/* Recorded when first granted and when the TTL changes, not every beat:
		 * a record per beat would say nothing the next one does not. */
		if (!s->hb_first_done || s->lease_recorded_ttl != (int)s->ttl_s) {
			s->lease_recorded_ttl = (int)s->ttl_s;
			audit(s, "lease.extended", 0, NULL,
			      json_pack("{s:i, s:s}", "ttl_seconds", (int)s->ttl_s, "state",
					jstr(r->body, "state") ? jstr(r->body, "state") : ""));
		}
		s->hb_first_done = 1;
		if (s->stream != NULL && !s->ending &&
		    al_mono_ms() - al_wc_stream_last_rx_ms(s->stream) > STREAM_SILENT_MS)
			stream_retry(s, "event stream silent");
		state = jstr(r->body, "state");
		if (state && (strcmp(state, "stopping") == 0 || strcmp(state, "stopped") == 0)) {
			al_info(LOGC, "heartbeat signals shutdown (%s) work_id=%s", state,
				s->work_id);
			finish(s, AL_WSESS_STOPPING, "stop requested");
		} else if (!json_is_true(json_object_get(r->body, "lease_extended"))) {
			/*
			 * Unlike the SDK (which stops the item, as for `stopping`): the
			 * issue counts this with the lost leases. The item may already be
			 * someone else's, and stopping it would kill their run.
			 */
			lease_lost(s, "lease not extended");
			return;
		} else if (s->type && strcmp(s->type, "session") != 0) {
			/* A healthcheck: claimed, acked, one beat; then stopped. */
			al_info(LOGC, "healthcheck item answered work_id=%s", s->work_id);
			finish(s, AL_WSESS_DONE, "healthcheck");
		}
	} else if (r->err == 0 && r->status == 412) {
		json_t *cur = json_object_get(r->details, "current_state");

		al_error(LOGC, "heartbeat precondition failed work_id=%s server_state=%s",
			 s->work_id, jstr(cur, "state") ? jstr(cur, "state") : "?");
		lease_lost(s, "heartbeat precondition failed (412)");
		return;
	} else if (r->err == 0 &&
		   (r->status == 401 || r->status == 403 || r->status == 404 || r->status == 410)) {
		/*
		 * The item is gone (404/410) or this item's credential no longer
		 * opens it (401/403: a sessions token is revoked when the item is
		 * delivered again). Either way the lease cannot be renewed, and the
		 * stop and the result posts would carry the same credential: treat it
		 * as a lost lease, so a new holder's run is not stopped.
		 */
		char why[64];

		al_error(LOGC, "heartbeat rejected (%d %s) work_id=%s", r->status,
			 r->error_type ? r->error_type : "", s->work_id);
		snprintf(why, sizeof(why), "heartbeat rejected (%d)", r->status);
		lease_lost(s, why);
		return;
	} else if (r->err == 0 && al_wc_is_fatal_4xx(r->status)) {
		al_error(LOGC, "heartbeat rejected (%d %s) work_id=%s", r->status,
			 r->error_type ? r->error_type : "", s->work_id);
		finish(s, AL_WSESS_FAILED, "heartbeat rejected");
	} else if (al_mono_ms() - s->hb_last_ok_ms > (uint64_t)s->ttl_s * 1000) {
		lease_lost(s, "no successful heartbeat within the TTL");
		return;
	} else {
		al_warn(LOGC, "transient heartbeat failure (status %d err %d%s%s) work_id=%s",
			r->status, r->err, r->err < 0 && r->error_message ? ": " : "",
			r->err < 0 && r->error_message ? r->error_message : "", s->work_id);
	}
	if (!s->hb_stopped)
		uv_timer_start(&s->hb_timer, hb_timer_cb, s->hb_interval_ms, 0);
}

static void hb_beat(struct al_wsess *s)
{
	int rc = al_wc_heartbeat(s->ctx->client, s->env_id, s->work_id, s->token,
				 s->ctx->cfg->heartbeat_ttl_s ? s->ctx->cfg->heartbeat_ttl_s
							      : HB_TTL_DEFAULT_S,
				 s->last_hb, hb_cb, s, &s->hb_call);

	if (rc < 0) {
		struct al_wc_resp r = {.err = rc, .retry_after_ms = -1};

		s->hb_call = NULL;
		hb_cb(&r, s);
		return;
	}
	/* The cut-off of this beat (see hb_timer_cb). */
	uv_timer_start(&s->hb_timer, hb_timer_cb, s->hb_interval_ms, 0);
}

/* ---- start ---- */

static void begin_serving(struct al_wsess *s)
{
	int rc;

	/* Heartbeats before anything else: the lease must not lapse while we set up. */
	s->hb_last_ok_ms = al_mono_ms();
	hb_beat(s);
	if (s->ending)
		return;
	if (s->type == NULL || strcmp(s->type, "session") != 0)
		return; /* healthcheck: the first beat's answer ends it */
	rc = al_wc_session_get(s->ctx->client, s->session_id, s->token, session_get_cb, s,
			       &s->get_call);
	if (rc < 0) {
		s->get_call = NULL;
		finish(s, AL_WSESS_FAILED, "session fetch failed");
	}
}

static void ack_cb(const struct al_wc_resp *r, void *ud)
{
	struct al_wsess *s = ud;

	s->ack_call = NULL;
	if (s->ending)
		return;
	if (r->err == 0 && r->status >= 200 && r->status < 300) {
		al_info(LOGC, "acknowledged work work_id=%s", s->work_id);
		audit(s, "work.acked", 0, NULL, NULL);
	} else if (r->err == 0 && r->status == 409 && s->opts.ack_tolerant) {
		al_info(LOGC, "work already acknowledged work_id=%s", s->work_id);
	} else {
		al_error(LOGC, "ack failed (status %d err %d %s) work_id=%s", r->status, r->err,
			 r->error_type ? r->error_type : "", s->work_id);
		audit(s, "work.acked", 1, NULL, json_pack("{s:i}", "status", r->status));
		/* Like the SDK's poller: an item we could not ack is not ours to stop. */
		s->no_stop = 1;
		finish(s, AL_WSESS_FAILED, "ack failed");
		return;
	}
	begin_serving(s);
}

/* ---- teardown ---- */

static void grace_cb(uv_timer_t *t)
{
	struct al_wsess *s = t->data;

	if (s->cur_on_pool && s->ts) {
		al_warn(LOGC, "shutdown grace over; cancelling the running call work_id=%s",
			s->work_id);
		al_tool_session_cancel(s->ts);
	}
}

static void finish(struct al_wsess *s, enum al_wsess_end end, const char *why)
{
	struct qcall *q;

	if (s->ending) {
		/* A lost lease outranks how the session was ending: do not stop the item. */
		if (end == AL_WSESS_LEASE_LOST)
			s->end = end;
		teardown_advance(s);
		return;
	}
	s->ending = 1;
	s->end = end;
	al_info(LOGC, "session ending (%s) work_id=%s session_id=%s", why, s->work_id,
		s->session_id ? s->session_id : "");
	idle_disarm(s);
	uv_timer_stop(&s->idle_timer);
	uv_timer_stop(&s->stream_timer);
	uv_timer_stop(&s->ev_timer);
	if (s->stream) {
		al_wc_stream_close(s->stream);
		s->stream = NULL;
	}
	if (s->list_call) {
		al_wc_cancel(s->list_call);
		s->list_call = NULL;
	}
	if (s->get_call) {
		al_wc_cancel(s->get_call);
		s->get_call = NULL;
	}
	if (s->ack_call) {
		al_wc_cancel(s->ack_call);
		s->ack_call = NULL;
	}
	/* Queued calls were never journalled: the next item takes them up. */
	while ((q = s->qhead) != NULL) {
		s->qhead = q->next;
		json_decref(q->ev);
		al_free(q);
	}
	s->qtail = NULL;
	json_object_clear(s->queued);
	json_object_clear(s->held);
	if (s->cur_on_pool && s->ts) {
		if (end == AL_WSESS_SHUTDOWN)
			uv_timer_start(&s->grace_timer, grace_cb,
				       (uint64_t)s->ctx->cfg->shutdown_grace_s * 1000, 0);
		else
			al_tool_session_cancel(s->ts);
	}
	teardown_advance(s);
}

/* On the pool: the sandbox's teardown, then the workspace's deletion or its "last used" mark. */
static void close_ts_work_cb(uv_work_t *req)
{
	struct al_wsess *s = req->data;

	if (s->ts != NULL)
		al_tool_session_close(s->ts);
	if (s->ws_wipe)
		s->ws_rc = al_workspace_remove(s->ctx->cfg, s->session_id);
	else if (s->ts_used)
		al_workspace_touch(s->ctx->cfg, s->session_id);
}

static void close_ts_after_cb(uv_work_t *req, int status)
{
	struct al_wsess *s = req->data;

	(void)status;
	s->ts = NULL;
	s->ts_closing = 0;
	if (s->ws_wipe && !s->ws_done) {
		s->ws_done = 1;
		if (s->ws_rc > 0)
			al_info(LOGC,
				"session over; deleted its workspace work_id=%s session_id=%s",
				s->work_id, s->session_id);
		else if (s->ws_rc < 0)
			al_error(LOGC,
				 "workspace of an ended session not deleted (%s) session_id=%s",
				 strerror(-s->ws_rc), s->session_id);
		if (s->ws_rc != 0)
			audit(s, "workspace.removed", s->ws_rc < 0, NULL,
			      json_pack("{s:s, s:i}", "reason", "session over", "error",
					s->ws_rc < 0 ? -s->ws_rc : 0));
	}
	teardown_advance(s);
}

static void stop_cb(const struct al_wc_resp *r, void *ud)
{
	struct al_wsess *s = ud;
	int ok = r->err == 0 && ((r->status >= 200 && r->status < 300) || r->status == 409);

	s->stop_call = NULL;
	s->stop_done = 1;
	if (ok)
		al_info(LOGC, "stopped work work_id=%s", s->work_id);
	else
		al_error(LOGC, "force-stop on exit failed (status %d err %d) work_id=%s", r->status,
			 r->err, s->work_id);
	audit(s, "work.stopped", !ok, NULL,
	      json_pack("{s:b, s:i}", "force", 1, "status", r->err == 0 ? r->status : 0));
	teardown_advance(s);
}

static void timer_close_cb(uv_handle_t *h)
{
	struct al_wsess *s = h->data;

	if (--s->timers_open == 0 && !s->done_fired) {
		s->done_fired = 1;
		s->done_cb(s, s->end, s->ud);
	}
}

static void teardown_advance(struct al_wsess *s)
{
	int rc;

	if (!s->ending || s->closed)
		return;
	if (s->cur != NULL || s->ack_call != NULL)
		return; /* the running call finishes (or is cancelled) and is posted first */
	if ((s->ts != NULL || (s->ws_wipe && !s->ws_done)) && !s->ts_closing) {
		/* Destroying the sandbox waits for its processes: on the pool. */
		s->ts_closing = 1;
		s->close_req.data = s;
		if (uv_queue_work(s->ctx->loop, &s->close_req, close_ts_work_cb,
				  close_ts_after_cb) == 0)
			return;
		close_ts_work_cb(&s->close_req);
		close_ts_after_cb(&s->close_req, 0);
		return;
	}
	if (s->ts_closing)
		return;
	if (!s->hb_stopped) {
		s->hb_stopped = 1;
		uv_timer_stop(&s->hb_timer);
		if (s->hb_call) {
			al_wc_cancel(s->hb_call);
			s->hb_call = NULL;
		}
	}
	if (!s->lease_lost && !s->no_stop && !s->stop_sent) {
		s->stop_sent = 1;
		rc = al_wc_stop(s->ctx->client, s->env_id, s->work_id, s->token, 1, stop_cb, s,
				&s->stop_call);
		if (rc == 0)
			return;
		s->stop_call = NULL;
		al_error(LOGC, "force-stop on exit failed (%s) work_id=%s", strerror(-rc),
			 s->work_id);
	}
	if (s->stop_call != NULL)
		return;
	if (s->lease_lost)
		al_info(LOGC, "lease lost; released without stopping it work_id=%s", s->work_id);
	if (s->attached) {
		al_info(LOGC, "detached from session work_id=%s session_id=%s", s->work_id,
			s->session_id);
		audit(s, "session.detached", 0, NULL,
		      json_pack("{s:s}", "end",
				s->end == AL_WSESS_DONE		? "done"
				: s->end == AL_WSESS_STOPPING	? "stopping"
				: s->end == AL_WSESS_LEASE_LOST ? "lease_lost"
				: s->end == AL_WSESS_SHUTDOWN	? "shutdown"
								: "failed"));
	}
	s->closed = 1;
	uv_close((uv_handle_t *)&s->hb_timer, timer_close_cb);
	uv_close((uv_handle_t *)&s->stream_timer, timer_close_cb);
	uv_close((uv_handle_t *)&s->idle_timer, timer_close_cb);
	uv_close((uv_handle_t *)&s->send_timer, timer_close_cb);
	uv_close((uv_handle_t *)&s->grace_timer, timer_close_cb);
	uv_close((uv_handle_t *)&s->ev_timer, timer_close_cb);
}

/* ---- public ---- */

int al_wsess_start(struct al_wctx *ctx, const json_t *work, const struct al_wsess_opts *opts,
		   al_wsess_done_cb cb, void *ud, struct al_wsess **out)
{
	struct al_wsess *s = NULL;
	const json_t *data = json_object_get(work, "data");
	const char *secret = jstr(work, "secret");
	struct al_work_secret ws = {0};
	char err[256];
	uv_timer_t *timers[NTIMERS];
	int rc = -ENOMEM, i;

	*out = NULL;
	if (jstr(work, "id") == NULL || jstr(work, "environment_id") == NULL)
		return -EINVAL;
	if ((s = al_calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->ctx = ctx;
	s->opts = *opts;
	s->done_cb = cb;
	s->ud = ud;
	s->ttl_s = ctx->cfg->heartbeat_ttl_s ? ctx->cfg->heartbeat_ttl_s : HB_TTL_DEFAULT_S;
	s->hb_interval_ms = s->ttl_s * 500 < HB_DEFAULT_MS ? s->ttl_s * 500 : HB_DEFAULT_MS;
	if (s->hb_interval_ms < 1000)
		s->hb_interval_ms = 1000;
	s->stream_backoff_ms = STREAM_BACKOFF_MS;
	s->lease_recorded_ttl = -1;
	if ((s->work_id = al_strdup(jstr(work, "id"))) == NULL ||
	    (s->env_id = al_strdup(jstr(work, "environment_id"))) == NULL ||
	    (jstr(data, "type") && (s->type = al_strdup(jstr(data, "type"))) == NULL) ||
	    (jstr(data, "id") && (s->session_id = al_strdup(jstr(data, "id"))) == NULL))
		goto fail;
	if ((s->evseen = json_object()) == NULL || (s->seen = json_object()) == NULL ||
	    (s->answered = json_object()) == NULL || (s->verdicts = json_object()) == NULL ||
	    (s->held = json_object()) == NULL || (s->queued = json_object()) == NULL ||
	    (s->stream_buf = json_array()) == NULL || (s->hist = json_array()) == NULL)
		goto fail;
	/*
	 * No type (or not a string): not a session, handled as the SDK does any
	 * non-session item (one beat, then stopped); left NULL it would beat on
	 * forever and hold a slot.
	 */
	if (s->type == NULL && (s->type = al_strdup("")) == NULL)
		goto fail;
	if (strcmp(s->type, "session") == 0 && s->session_id == NULL) {
		rc = -EINVAL;
		goto fail;
	}
	/* The per-item credential: the sessions token, else the environment key (as the SDK). */
	if (secret != NULL && *secret != '\0') {
		rc = al_work_secret_decode(secret, strlen(secret), &ws, err, sizeof(err));
		if (rc == 0) {
			s->token = ws.sessions_token;
			ws.sessions_token = NULL;
		} else if (rc == -ENOMEM) {
			goto fail;
		} else {
			al_warn(LOGC,
				"work item secret unusable (%s); falling back to the "
				"environment key work_id=%s",
				err, s->work_id);
		}
		al_work_secret_clear(&ws);
	}
	if (s->token == NULL && ctx->cfg->environment_key != NULL &&
	    (s->token = al_strdup(ctx->cfg->environment_key)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (s->token == NULL) {
		al_error(LOGC,
			 "work item has no sessions token and there is no environment key "
			 "work_id=%s",
			 s->work_id);
		rc = -EINVAL;
		goto fail;
	}
	timers[0] = &s->hb_timer;
	timers[1] = &s->stream_timer;
	timers[2] = &s->idle_timer;
	timers[3] = &s->send_timer;
	timers[4] = &s->grace_timer;
	timers[5] = &s->ev_timer;
	for (i = 0; i < NTIMERS; i++) {
		uv_timer_init(ctx->loop, timers[i]);
		timers[i]->data = s;
	}
	s->timers_open = NTIMERS;
	*out = s;
	if (opts->ack && ctx->cfg->environment_key != NULL) {
		rc = al_wc_ack(ctx->client, s->env_id, s->work_id, ctx->cfg->environment_key,
			       ack_cb, s, &s->ack_call);
		if (rc < 0) {
			struct al_wc_resp r = {.err = rc, .retry_after_ms = -1};

			s->ack_call = NULL;
			ack_cb(&r, s);
		}
	} else {
		begin_serving(s);
	}
	return 0;
fail:
	al_work_secret_clear(&ws);
	if (s != NULL) {
		s->timers_open = 0;
		al_wsess_free(s);
	}
	return rc;
}

void al_wsess_shutdown(struct al_wsess *s)
{
	finish(s, AL_WSESS_SHUTDOWN, "shutdown");
}

const char *al_wsess_work_id(const struct al_wsess *s)
{
	return s->work_id;
}

void al_wsess_free(struct al_wsess *s)
{
	struct qcall *q;

	if (s == NULL)
		return;
	while ((q = s->qhead) != NULL) {
		s->qhead = q->next;
		json_decref(q->ev);
		al_free(q);
	}
	job_free(s->cur);
	al_free(s->work_id);
	al_free(s->env_id);
	al_free(s->session_id);
	al_free(s->type);
	al_free_secret_str(s->token);
	al_free(s->last_hb);
	al_free(s->hist_page);
	json_decref(s->hist);
	json_decref(s->stream_buf);
	json_decref(s->evseen);
	json_decref(s->seen);
	json_decref(s->answered);
	json_decref(s->verdicts);
	json_decref(s->held);
	json_decref(s->queued);
	al_free(s);
}
