/*
 * events.c - /v1/sessions/{id}/events: list (history, cursor pages), send
 * (client events through the bus), stream (live SSE, no replay).
 *
 * Stream framing: the SDK's SSE decoder drops any message without an
 * `event:` field (core/streaming.js skips sse.event === null) and treats
 * `event: error` as a failure, so every event goes out as
 *   event: <event type>\ndata: <event JSON>\n\n
 * A client opens the stream first, then lists history and de-duplicates by
 * event id, exactly as the SDK's SessionToolRunner does.
 */
#include "api/internal.h"

#include "api/decode.h"
#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ERRLEN 256
/* A stream whose reader falls this far behind is closed rather than buffered. */
#define STREAM_MAX_PENDING  (16u << 20)
#define MAX_EVENTS_PER_SEND 100

/* ---- validation of client events ---- */

static int check_blocks(const json_t *content, const char *where, int allow_search, int required,
			char *err, size_t errlen)
{
	json_t *b;
	size_t i;

	if (content == NULL || json_is_null(content)) {
		if (required) {
			snprintf(err, errlen, "%s: Field required", where);
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_array(content)) {
		snprintf(err, errlen, "%s: expected an array, got %s", where,
			 al_decode_type_name(content));
		return -EINVAL;
	}
	json_array_foreach(content, i, b)
	{
		const char *t = json_string_value(json_object_get(b, "type"));
		char w[96];

		snprintf(w, sizeof(w), "%s[%zu]", where, i);
		if (!json_is_object(b) || t == NULL) {
			snprintf(err, errlen, "%s: expected a content block with a string 'type'",
				 w);
			return -EINVAL;
		}
		if (strcmp(t, "text") == 0) {
			static const struct al_field f[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
							    {"text", AL_F_STRING, AL_F_REQUIRED},
							    {NULL, 0, 0}};
			if (al_decode_check(b, f, w, err, errlen) < 0)
				return -EINVAL;
		} else if (strcmp(t, "image") == 0 || strcmp(t, "document") == 0) {
			if (!json_is_object(json_object_get(b, "source"))) {
				snprintf(err, errlen, "%s.source: expected an object", w);
				return -EINVAL;
			}
		} else if (strcmp(t, "redacted") == 0 && !allow_search) {
			/* only in user.message content */
		} else if (strcmp(t, "search_result") == 0 && allow_search) {
			if (!json_is_array(json_object_get(b, "content"))) {
				snprintf(err, errlen, "%s.content: expected an array", w);
				return -EINVAL;
			}
		} else {
			snprintf(err, errlen, "%s.type: unsupported content block type", w);
			return -EINVAL;
		}
	}
	return 0;
}

int al_event_validate(const json_t *ev, size_t index, char *err, size_t errlen)
{
	static const struct al_field fmsg[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
					       {"content", AL_F_ARRAY, AL_F_REQUIRED},
					       {NULL, 0, 0}};
	static const struct al_field fint[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
					       {"session_thread_id", AL_F_STRING, AL_F_NULLABLE},
					       {NULL, 0, 0}};
	static const struct al_field fconf[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
						{"tool_use_id", AL_F_STRING, AL_F_REQUIRED},
						{"result", AL_F_STRING, AL_F_REQUIRED},
						{"deny_message", AL_F_STRING, AL_F_NULLABLE},
						{NULL, 0, 0}};
	static const struct al_field fctr[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
					       {"custom_tool_use_id", AL_F_STRING, AL_F_REQUIRED},
					       {"content", AL_F_ARRAY, 0},
					       {"is_error", AL_F_BOOL, AL_F_NULLABLE},
					       {NULL, 0, 0}};
	static const struct al_field ftr[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
					      {"tool_use_id", AL_F_STRING, AL_F_REQUIRED},
					      {"content", AL_F_ARRAY, 0},
					      {"is_error", AL_F_BOOL, AL_F_NULLABLE},
					      {NULL, 0, 0}};
	static const struct al_field fout[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
					       {"description", AL_F_STRING, AL_F_REQUIRED},
					       {"rubric", AL_F_OBJECT, AL_F_REQUIRED},
					       {"max_iterations", AL_F_INT, AL_F_NULLABLE},
					       {NULL, 0, 0}};
	static const struct al_field fsys[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
					       {"content", AL_F_ARRAY, AL_F_REQUIRED},
					       {NULL, 0, 0}};
	char w[64], cw[96];
	const char *t;

	snprintf(w, sizeof(w), "events[%zu]", index);
	snprintf(cw, sizeof(cw), "%s.content", w);
	if (!json_is_object(ev)) {
		snprintf(err, errlen, "%s: expected an object, got %s", w, al_decode_type_name(ev));
		return -EINVAL;
	}
	t = json_string_value(json_object_get(ev, "type"));
	if (t == NULL) {
		snprintf(err, errlen, "%s.type: Field required (a string)", w);
		return -EINVAL;
	}
	if (strcmp(t, "user.message") == 0)
		return al_decode_check(ev, fmsg, w, err, errlen) < 0 ||
			       check_blocks(json_object_get(ev, "content"), cw, 0, 1, err, errlen) <
				   0
			   ? -EINVAL
			   : 0;
	if (strcmp(t, "user.interrupt") == 0)
		return al_decode_check(ev, fint, w, err, errlen);
	if (strcmp(t, "user.tool_confirmation") == 0) {
		const char *r;
		if (al_decode_check(ev, fconf, w, err, errlen) < 0)
			return -EINVAL;
		r = json_string_value(json_object_get(ev, "result"));
		if (strcmp(r, "allow") != 0 && strcmp(r, "deny") != 0) {
			snprintf(err, errlen, "%s.result: must be 'allow' or 'deny'", w);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(t, "user.custom_tool_result") == 0)
		return al_decode_check(ev, fctr, w, err, errlen) < 0 ||
			       check_blocks(json_object_get(ev, "content"), cw, 1, 0, err, errlen) <
				   0
			   ? -EINVAL
			   : 0;
	if (strcmp(t, "user.tool_result") == 0)
		return al_decode_check(ev, ftr, w, err, errlen) < 0 ||
			       check_blocks(json_object_get(ev, "content"), cw, 1, 0, err, errlen) <
				   0
			   ? -EINVAL
			   : 0;
	if (strcmp(t, "user.define_outcome") == 0) {
		const json_t *r;
		const char *rt;
		if (al_decode_check(ev, fout, w, err, errlen) < 0)
			return -EINVAL;
		r = json_object_get(ev, "rubric");
		rt = json_string_value(json_object_get(r, "type"));
		if (rt == NULL || (strcmp(rt, "text") != 0 && strcmp(rt, "file") != 0)) {
			snprintf(err, errlen, "%s.rubric.type: must be 'text' or 'file'", w);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(t, "system.message") == 0) {
		json_t *b;
		size_t i;
		if (al_decode_check(ev, fsys, w, err, errlen) < 0)
			return -EINVAL;
		json_array_foreach(json_object_get(ev, "content"), i, b)
		{
			static const struct al_field f[] = {{"type", AL_F_STRING, AL_F_REQUIRED},
							    {"text", AL_F_STRING, AL_F_REQUIRED},
							    {NULL, 0, 0}};
			char bw[128];
			snprintf(bw, sizeof(bw), "%s[%zu]", cw, i);
			if (al_decode_check(b, f, bw, err, errlen) < 0)
				return -EINVAL;
			if (strcmp(json_string_value(json_object_get(b, "type")), "text") != 0) {
				snprintf(err, errlen, "%s.type: must be 'text'", bw);
				return -EINVAL;
			}
		}
		return 0;
	}
	snprintf(err, errlen,
		 "%s.type: clients may send only user.message, user.interrupt, "
		 "user.tool_confirmation, user.custom_tool_result, user.tool_result, "
		 "user.define_outcome or system.message",
		 w);
	return -EINVAL;
}

/* ---- send ---- */

/* The answer key of a result event ("tool_use_id" or "custom_tool_use_id"), NULL otherwise. */
static const char *answer_key(const char *type)
{
	if (type != NULL && strcmp(type, "user.tool_result") == 0)
		return "tool_use_id";
	if (type != NULL && strcmp(type, "user.custom_tool_result") == 0)
		return "custom_tool_use_id";
	return NULL;
}

/*
 * 1 when the session already holds a `type` event answering call `id`, 0
 * when not, or a negative errno. A call's id is the id of its
 * agent.(custom_)tool_use event, so only the events after it are read (a
 * handful); an id that is no event of this session (accepted, as before:
 * the transcript ignores it) falls back to reading every result of the
 * session.
 */
static int answered_in_store(al_store_tx *tx, const char *session_id, const char *type,
			     const char *key, const char *id)
{
	struct al_event_query q = {0};
	struct al_event call, *evs = NULL;
	size_t n = 0;
	int rc, found = 0;

	memset(&call, 0, sizeof(call));
	rc = al_store_event_get(tx, session_id, id, &call);
	al_event_clear(&call);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	q.session_id = session_id;
	q.type = type;
	q.after_id = rc == 0 ? id : NULL;
	if ((rc = al_store_event_list(tx, &q, &evs, &n, NULL)) < 0)
		return rc;
	for (size_t i = 0; i < n && !found; i++) {
		json_t *e = json_loads(evs[i].body, 0, NULL);
		const char *v = json_string_value(json_object_get(e, key));

		if (e == NULL) {
			rc = -EIO;
			break;
		}
		found = v != NULL && strcmp(v, id) == 0;
		json_decref(e);
	}
	al_event_array_free(evs, n);
	return rc < 0 ? rc : found;
}

/*
 * Exactly one answer per tool call: a result whose call already has one
 * (stored, or earlier in the same send) is refused with 400
 * invalid_request_error, error_code tool_use_already_answered, and nothing
 * of the send is stored. Checked inside the append transaction, so of two
 * concurrent posts of the same answer exactly one is stored. 400 rather
 * than 409: the SDK's client retries 409 and its SessionToolRunner keeps
 * retrying a 409 for the whole lease, while a 400 ends the send at once;
 * a duplicate can never succeed later, so retrying it is pointless.
 */
static int check_answers(al_store_tx *tx, struct al_api_job *job)
{
	json_t *evs = json_object_get(job->in, "events"), *ev, *prev;
	size_t i, k;
	int rc;

	json_array_foreach(evs, i, ev)
	{
		const char *type = json_string_value(json_object_get(ev, "type"));
		const char *key = answer_key(type), *id;

		if (key == NULL)
			continue;
		id = json_string_value(json_object_get(ev, key));
		for (k = 0; k < i; k++) {
			prev = json_array_get(evs, k);
			if (answer_key(json_string_value(json_object_get(prev, "type"))) == key &&
			    strcmp(json_string_value(json_object_get(prev, key)), id) == 0)
				break;
		}
		if (k < i)
			rc = 1;
		else if ((rc = answered_in_store(tx, job->p[0], type, key, id)) < 0)
			return rc;
		if (rc == 1)
			return al_api_job_fail_code(
			    job, 400, "tool_use_already_answered",
			    "events[%zu].%s: tool call %s has already been answered in session %s",
			    i, key, id, job->p[0]);
	}
	return 0;
}

/*
 * Runs inside the bus's append transaction, on the session it has just
 * read: one store round trip per send instead of a check job then the
 * append. A missing session never gets here (the bus reports -ENOENT).
 */
static int send_check_cb(al_store_tx *tx, const struct al_doc *d, void *ud)
{
	struct al_api_job *job = ud;

	if (job->auth.kind == AL_AUTH_ENVIRONMENT && strcmp(d->ref2, job->auth.environment_id) != 0)
		return al_api_job_fail(job, 403, NULL,
				       "this environment key may not access session %s", job->p[0]);
	if (d->archived_ms != 0)
		return al_api_job_fail(job, 400, NULL, "session %s is archived", job->p[0]);
	if (strcmp(d->state, "terminated") == 0)
		return al_api_job_fail(job, 400, NULL, "session %s is terminated", job->p[0]);
	return check_answers(tx, job);
}

static void send_appended_cb(int rc, json_t *events, void *ud)
{
	struct al_api_job *job = ud;

	if (rc < 0 && job->err_status != 0) {
		al_api_job_reply(job, rc); /* answers with the check's error, frees job */
		return;
	}
	if (rc == -ENOENT)
		al_api_error(job->req, 404, NULL, "session %s not found", job->p[0]);
	else if (rc < 0)
		al_api_error_errno(job->req, rc, "events");
	else
		al_http_respond_json(job->req, 200, json_pack("{s:O}", "data", events));
	al_api_job_free(job);
}

void al_api_events_send(struct al_api_ctx *ctx)
{
	static const struct al_field f[] = {{"events", AL_F_ARRAY, AL_F_REQUIRED}, {NULL, 0, 0}};
	struct al_bus_append_opts opts = {0};
	char err[ERRLEN];
	const char *body;
	size_t len, i;
	int rc;
	json_t *in = NULL, *ev;
	struct al_api_job *job;

	body = al_http_req_body(ctx->req, &len);
	if (al_decode_body(body, len, 0, &in, err, sizeof(err)) < 0 ||
	    al_decode_check(in, f, "", err, sizeof(err)) < 0)
		goto bad;
	if (json_array_size(json_object_get(in, "events")) == 0 ||
	    json_array_size(json_object_get(in, "events")) > MAX_EVENTS_PER_SEND) {
		snprintf(err, sizeof(err), "events: send between 1 and %d events",
			 MAX_EVENTS_PER_SEND);
		goto bad;
	}
	json_array_foreach(json_object_get(in, "events"), i, ev)
	{
		if (al_event_validate(ev, i, err, sizeof(err)) < 0)
			goto bad;
	}
	/* The job is never submitted: it carries the request and the check's error. */
	if ((job = al_api_job_new(ctx, NULL)) == NULL) {
		json_decref(in);
		al_api_error_errno(ctx->req, -ENOMEM, "events");
		return;
	}
	job->in = in;
	opts.check = send_check_cb;
	opts.check_ud = job;
	rc = al_bus_append(ctx->api->bus, job->p[0], json_object_get(in, "events"), &opts,
			   send_appended_cb, job);
	if (rc < 0) {
		al_api_error_errno(ctx->req, rc, "events");
		al_api_job_free(job);
	}
	return;
bad:
	al_api_error(ctx->req, 400, NULL, "%s", err);
	json_decref(in);
}

/* ---- list ---- */

static const char *const event_types[] = {"user.message",
					  "user.interrupt",
					  "user.tool_confirmation",
					  "user.custom_tool_result",
					  "user.tool_result",
					  "user.define_outcome",
					  "system.message",
					  "agent.custom_tool_use",
					  "agent.message",
					  "agent.thinking",
					  "agent.mcp_tool_use",
					  "agent.mcp_tool_result",
					  "agent.tool_use",
					  "agent.tool_result",
					  "agent.thread_message_received",
					  "agent.thread_message_sent",
					  "agent.thread_context_compacted",
					  "session.error",
					  "session.status_rescheduled",
					  "session.status_running",
					  "session.status_idle",
					  "session.status_terminated",
					  "session.thread_created",
					  "session.updated",
					  "session.usage",
					  "session.deleted",
					  "span.outcome_evaluation_start",
					  "span.outcome_evaluation_ongoing",
					  "span.outcome_evaluation_end",
					  "span.model_request_start",
					  "span.model_request_end",
					  NULL};

struct elist_ud {
	struct al_api_page pg;
	json_t *types; /* array of strings, empty: any */
};

static void elist_free(void *p)
{
	struct elist_ud *l = p;

	if (l == NULL)
		return;
	json_decref(l->types);
	al_free(l);
}

static int type_wanted(const struct elist_ud *l, const char *type)
{
	json_t *t;
	size_t i;

	if (json_array_size(l->types) == 0)
		return 1;
	json_array_foreach(l->types, i, t) if (strcmp(json_string_value(t), type) == 0) return 1;
	return 0;
}

static int elist_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct elist_ud *l = job->ud;
	struct al_doc d;
	struct al_event_query q = {0};
	char cursor[AL_ID_MAX] = "";
	json_t *data = NULL;
	int walk_desc = l->pg.backward ? !l->pg.descending : l->pg.descending;
	int more = 0, rc;

	if ((rc = al_api_session_load(tx, job, &d)) < 0)
		return rc;
	al_doc_clear(&d);
	if ((data = json_array()) == NULL)
		return -ENOMEM;
	if (l->pg.has_cursor)
		al_api_strlcpy(cursor, l->pg.cursor, sizeof(cursor));
	q.session_id = job->p[0];
	q.descending = walk_desc;
	if (json_array_size(l->types) == 1)
		q.type = json_string_value(json_array_get(l->types, 0));
	while (json_array_size(data) < l->pg.limit) {
		struct al_event *evs = NULL;
		size_t n = 0;
		int has_more = 0;

		q.after_id = (!walk_desc && cursor[0]) ? cursor : NULL;
		q.before_id = (walk_desc && cursor[0]) ? cursor : NULL;
		q.limit = l->pg.limit - json_array_size(data);
		rc = al_store_event_list(tx, &q, &evs, &n, &has_more);
		if (rc == -ENOENT && cursor[0]) {
			rc = al_api_job_fail(job, 400, NULL, "page: unknown cursor");
			goto done;
		}
		if (rc < 0)
			goto done;
		for (size_t i = 0; i < n; i++) {
			json_t *e;
			al_api_strlcpy(cursor, evs[i].id, sizeof(cursor));
			if (evs[i].created_ms < l->pg.created_gte_ms ||
			    evs[i].created_ms > l->pg.created_lte_ms ||
			    !type_wanted(l, evs[i].type))
				continue;
			e = json_loads(evs[i].body, 0, NULL);
			if (e == NULL) {
				al_event_array_free(evs, n);
				rc = -EIO;
				goto done;
			}
			json_array_append_new(data, e);
		}
		al_event_array_free(evs, n);
		more = has_more;
		if (!has_more || n == 0)
			break;
	}
	if (l->pg.backward) {
		size_t n = json_array_size(data);
		for (size_t i = 0; i < n / 2; i++) {
			json_t *a = json_incref(json_array_get(data, i));
			json_t *b = json_incref(json_array_get(data, n - 1 - i));
			json_array_set_new(data, i, b);
			json_array_set_new(data, n - 1 - i, a);
		}
	}
	job->out = json_pack("{s:O, s:n}", "data", data, "next_page");
	if (job->out == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if (json_array_size(data) > 0 && (more || l->pg.backward)) {
		char tok[AL_ID_MAX + 4];
		snprintf(tok, sizeof(tok), "n.%s",
			 json_string_value(json_object_get(
			     json_array_get(data, json_array_size(data) - 1), "id")));
		json_object_set_new(job->out, "next_page", json_string(tok));
	}
	rc = 0;
done:
	json_decref(data);
	return rc;
}

void al_api_events_list(struct al_api_ctx *ctx)
{
	struct elist_ud *l = al_calloc(1, sizeof(*l));
	struct al_api_job *job;
	char err[ERRLEN];
	json_t *t;
	size_t i;

	if (l == NULL)
		goto oom;
	/* No id prefix: event ids are the bus's; created_at filters apply in memory. */
	if (al_api_page_parse(ctx->req, NULL, 20, 1000, 0, 1, &l->pg, err, sizeof(err)) < 0)
		goto bad;
	if ((l->types = al_api_query_array(ctx->req, "types")) == NULL) {
		snprintf(err, sizeof(err), "types: malformed query string");
		goto bad;
	}
	json_array_foreach(l->types, i, t)
	{
		int ok = 0;
		for (int k = 0; event_types[k]; k++)
			ok |= strcmp(event_types[k], json_string_value(t)) == 0;
		if (!ok) {
			snprintf(err, sizeof(err), "types[%zu]: unknown event type", i);
			goto bad;
		}
	}
	if ((job = al_api_job_new(ctx, elist_fn)) == NULL)
		goto oom;
	job->ud = l;
	job->ud_free = elist_free;
	al_api_job_submit(job);
	return;
bad:
	al_api_error(ctx->req, 400, NULL, "%s", err);
	elist_free(l);
	return;
oom:
	elist_free(l);
	al_api_error_errno(ctx->req, -ENOMEM, "events");
}

/* ---- stream ---- */

struct stream {
	al_http_req *req;
	al_bus *bus;
	al_bus_sub *sub;
	char session_id[AL_ID_MAX];
	int ended;
};

static void stream_end(struct stream *st)
{
	if (st->ended)
		return;
	st->ended = 1;
	if (st->sub != NULL)
		al_bus_unsubscribe(st->sub);
	st->sub = NULL;
	al_http_sse_end(st->req);
	al_free(st);
}

static void stream_event_cb(const char *session_id, json_t *event, void *ud)
{
	struct stream *st = ud;
	const char *type = json_string_value(json_object_get(event, "type"));
	const char *text;
	char *data = NULL;
	size_t len;

	if (st->ended || al_http_req_closed(st->req))
		return; /* the close callback ends it */
	if (al_http_req_pending_bytes(st->req) > STREAM_MAX_PENDING) {
		al_warn("api", "closing event stream of %s: reader too slow", st->session_id);
		stream_end(st);
		return;
	}
	/* The bus hands every stream the same stored text: no dump per stream. */
	text = al_bus_event_text(st->bus, &len);
	if (text == NULL) {
		text = data = json_dumps(event, JSON_COMPACT);
		if (data == NULL) {
			stream_end(st);
			return;
		}
		len = strlen(data);
	}
	al_http_sse_send(st->req, type ? type : "message", text, len);
	al_free(data);
}

static void stream_close_cb(al_http_req *req, void *ud)
{
	stream_end(ud);
}

static int stream_check_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct al_doc d;
	int rc = al_api_session_load(tx, job, &d);

	if (rc == 0)
		al_doc_clear(&d);
	return rc;
}

static void stream_checked(struct al_api_job *job, int rc)
{
	struct stream *st = NULL;

	if (rc < 0) {
		al_api_job_reply(job, rc);
		return;
	}
	if (al_http_req_closed(job->req)) {
		al_http_respond(job->req, 499, "text/plain", "", 0);
		goto done;
	}
	st = al_calloc(1, sizeof(*st));
	if (st == NULL) {
		al_api_error_errno(job->req, -ENOMEM, "stream");
		goto done;
	}
	st->req = job->req;
	st->bus = job->api->bus;
	al_api_strlcpy(st->session_id, job->p[0], sizeof(st->session_id));
	/* Subscribe before the headers go out: nothing committed after 200 is missed. */
	rc = al_bus_subscribe(job->api->bus, job->p[0], stream_event_cb, st, &st->sub);
	if (rc < 0) {
		al_free(st);
		al_api_error_errno(job->req, rc, "stream");
		goto done;
	}
	if (al_http_sse_start(job->req) < 0) {
		al_bus_unsubscribe(st->sub);
		al_free(st);
		al_http_respond(job->req, 500, "text/plain", "", 0);
		goto done;
	}
	al_http_req_on_close(job->req, stream_close_cb, st);
done:
	al_api_job_free(job);
}

void al_api_events_stream(struct al_api_ctx *ctx)
{
	al_api_submit(ctx, stream_check_fn, stream_checked, "stream");
}
