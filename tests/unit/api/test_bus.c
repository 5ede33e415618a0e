/*
 * test_bus.c - the event bus over a real store (SQLite in the scratch dir).
 */
#include "unit/unit.h"

#include "api/bus.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/rand.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct fx {
	uv_loop_t loop;
	al_store *store;
	al_bus *bus;
	char sid[AL_ID_MAX];
	char sid2[AL_ID_MAX];
};

static int make_session(al_store_tx *tx, const char *sid)
{
	struct al_doc d;
	char body[512];

	memset(&d, 0, sizeof(d));
	snprintf(d.kind, sizeof(d.kind), "session");
	snprintf(d.id, sizeof(d.id), "%s", sid);
	snprintf(d.ref, sizeof(d.ref), "agent_x");
	snprintf(d.state, sizeof(d.state), "idle");
	d.created_ms = d.updated_ms = 1000;
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"session\",\"status\":\"idle\",\"title\":\"t\","
		 "\"created_at\":\"1970-01-01T00:00:01.000Z\","
		 "\"updated_at\":\"1970-01-01T00:00:01.000Z\",\"metadata\":{}}",
		 sid);
	d.body = body;
	return al_store_doc_insert(tx, &d);
}

static int make_sessions_fn(al_store_tx *tx, void *ud)
{
	struct fx *f = ud;
	int rc = make_session(tx, f->sid);

	return rc < 0 ? rc : make_session(tx, f->sid2);
}

static void fx_open(struct fx *f)
{
	char err[256] = "";

	memset(f, 0, sizeof(*f));
	al_alloc_init();
	AL_ASSERT_INT_EQ(uv_loop_init(&f->loop), 0);
	if (al_store_open_sqlite(&f->loop, al_test_tmpdir(), &f->store, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "store: %s", err);
	AL_ASSERT_INT_EQ(al_bus_new(&f->loop, f->store, &f->bus), 0);
	AL_ASSERT_INT_EQ(al_id_new("sesn", f->sid, sizeof(f->sid)), 0);
	AL_ASSERT_INT_EQ(al_id_new("sesn", f->sid2, sizeof(f->sid2)), 0);
	AL_ASSERT_INT_EQ(al_store_call(f->store, make_sessions_fn, f), 0);
}

static void fx_close(struct fx *f)
{
	al_bus_free(f->bus);
	al_store_close(f->store);
	AL_ASSERT_INT_EQ(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(uv_loop_close(&f->loop), 0);
}

/* [{"type":"user.message","n":a}, {"type":"agent.message","n":b}] */
static json_t *two_events(int a, int b)
{
	json_t *arr = json_pack("[{s:s, s:i}, {s:s, s:i}]", "type", "user.message", "n", a, "type",
				"agent.message", "n", b);
	AL_ASSERT_NOT_NULL(arr);
	return arr;
}

/* Records what a callback saw. */
struct seen {
	al_store *store; /* non-NULL: check each event is already committed */
	char sid[AL_ID_MAX];
	int n[64];
	char ids[64][AL_ID_MAX];
	int count;
};

struct check_ctx {
	const char *sid, *id;
};

static int event_exists_fn(al_store_tx *tx, void *ud)
{
	struct check_ctx *c = ud;
	struct al_event e;
	int rc = al_store_event_get(tx, c->sid, c->id, &e);

	al_event_clear(&e);
	return rc;
}

static void record_cb(const char *session_id, json_t *event, void *ud)
{
	struct seen *s = ud;
	const char *id = json_string_value(json_object_get(event, "id"));
	const char *at = json_string_value(json_object_get(event, "processed_at"));
	int64_t ms = 0;

	AL_ASSERT(s->count < 64);
	AL_ASSERT_NOT_NULL(id);
	AL_ASSERT(strncmp(id, "sevt_", 5) == 0);
	AL_ASSERT_NOT_NULL(at);
	AL_ASSERT_INT_EQ(al_time_parse(at, &ms), 0);
	AL_ASSERT(ms > 0);
	if (s->sid[0])
		AL_ASSERT_STR_EQ(session_id, s->sid);
	if (s->store) {
		/* Publish after commit: the event is in the store already. */
		struct check_ctx c = {session_id, id};
		AL_ASSERT_INT_EQ(al_store_call(s->store, event_exists_fn, &c), 0);
	}
	s->n[s->count] = (int)json_integer_value(json_object_get(event, "n"));
	snprintf(s->ids[s->count], AL_ID_MAX, "%s", id);
	s->count++;
}

struct done_log {
	int order[16];
	int rc[16];
	int count;
	int ids_ok; /* every done(rc >= 0) saw ids on its events */
};

struct done_arg {
	struct done_log *log;
	int tag;
};

static void done_cb(int rc, json_t *events, void *ud)
{
	struct done_arg *a = ud;
	struct done_log *l = a->log;
	size_t i;
	json_t *e;

	AL_ASSERT(json_is_array(events));
	if (rc >= 0) {
		json_array_foreach(events, i, e)
		{
			if (json_object_get(e, "id") == NULL)
				l->ids_ok = 0;
		}
	}
	l->order[l->count] = a->tag;
	l->rc[l->count] = rc;
	l->count++;
}

static int list_ids_fn(al_store_tx *tx, void *ud)
{
	struct seen *s = ud;
	struct al_event_query q = {.session_id = s->sid};
	struct al_event *ev = NULL;
	size_t n = 0;

	AL_ASSERT_INT_EQ(al_store_event_list(tx, &q, &ev, &n, NULL), 0);
	AL_ASSERT_INT_EQ(n, s->count);
	for (size_t i = 0; i < n; i++) {
		json_t *body = json_loads(ev[i].body, 0, NULL);
		AL_ASSERT_STR_EQ(ev[i].id, s->ids[i]);
		AL_ASSERT_NOT_NULL(body);
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(body, "id")), s->ids[i]);
		AL_ASSERT_STR_EQ(ev[i].type, json_string_value(json_object_get(body, "type")));
		json_decref(body);
	}
	al_event_array_free(ev, n);
	return 0;
}

AL_TEST(bus_publishes_in_commit_order)
{
	struct fx f;
	struct seen sub = {0}, obs = {0}, stored = {0};
	struct done_log log = {.ids_ok = 1};
	struct done_arg args[4];
	al_bus_sub *h = NULL;

	fx_open(&f);
	sub.store = f.store;
	snprintf(sub.sid, sizeof(sub.sid), "%s", f.sid);
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, record_cb, &sub, &h), 0);
	al_bus_set_observer(f.bus, record_cb, &obs);

	/* Four appends in flight at once, one of them to another session. */
	for (int k = 0; k < 4; k++) {
		json_t *ev = two_events(2 * k, 2 * k + 1);
		args[k] = (struct done_arg){&log, k};
		AL_ASSERT_INT_EQ(
		    al_bus_append(f.bus, k == 2 ? f.sid2 : f.sid, ev, NULL, done_cb, &args[k]), 0);
		/* The bus took its own reference and never touches ours. */
		AL_ASSERT_NULL(json_object_get(json_array_get(ev, 0), "id"));
		json_decref(ev);
	}
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);

	AL_ASSERT_INT_EQ(log.count, 4);
	for (int k = 0; k < 4; k++) {
		AL_ASSERT_INT_EQ(log.order[k], k);
		AL_ASSERT_INT_EQ(log.rc[k], 0);
	}
	AL_ASSERT_INT_EQ(log.ids_ok, 1);
	/* The subscriber sees its session only, in order. */
	AL_ASSERT_INT_EQ(sub.count, 6);
	{
		static const int want[] = {0, 1, 2, 3, 6, 7};
		for (int i = 0; i < 6; i++)
			AL_ASSERT_INT_EQ(sub.n[i], want[i]);
	}
	/* The observer sees every session, in commit order. */
	AL_ASSERT_INT_EQ(obs.count, 8);
	for (int i = 0; i < 8; i++)
		AL_ASSERT_INT_EQ(obs.n[i], i);
	/* And the store holds exactly what was published, in the same order. */
	snprintf(stored.sid, sizeof(stored.sid), "%s", f.sid);
	stored.count = sub.count;
	memcpy(stored.ids, sub.ids, sizeof(sub.ids));
	AL_ASSERT_INT_EQ(al_store_call(f.store, list_ids_fn, &stored), 0);

	al_bus_unsubscribe(h);
	fx_close(&f);
}

static int get_session_fn(al_store_tx *tx, void *ud)
{
	struct al_doc *d = ud;
	char id[AL_ID_MAX];

	snprintf(id, sizeof(id), "%s", d->id);
	return al_store_doc_get(tx, "session", id, d);
}

AL_TEST(bus_applies_new_status)
{
	struct fx f;
	struct done_log log = {.ids_ok = 1};
	struct done_arg arg = {&log, 0};
	struct al_bus_append_opts o = {.new_status = "running"};
	struct al_doc d;
	json_t *ev = two_events(0, 1), *body;
	int64_t before = al_now_ms(), ms = 0;

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, &o, done_cb, &arg), 0);
	json_decref(ev);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(log.count, 1);
	AL_ASSERT_INT_EQ(log.rc[0], 0);

	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", f.sid);
	AL_ASSERT_INT_EQ(al_store_call(f.store, get_session_fn, &d), 0);
	AL_ASSERT_STR_EQ(d.state, "running");
	AL_ASSERT_STR_EQ(d.ref, "agent_x"); /* untouched columns stay */
	AL_ASSERT(d.updated_ms >= before);
	AL_ASSERT_INT_EQ(d.version, 2);
	body = json_loads(d.body, 0, NULL);
	AL_ASSERT_NOT_NULL(body);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(body, "status")), "running");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(body, "title")), "t");
	AL_ASSERT_INT_EQ(al_time_parse(json_string_value(json_object_get(body, "updated_at")), &ms),
			 0);
	AL_ASSERT_INT_EQ(ms, d.updated_ms);
	json_decref(body);
	al_doc_clear(&d);
	fx_close(&f);
}

/* ---- failures publish and store nothing ---- */

static int hook_fails(al_store_tx *tx, const char *session_id, json_t *events, void *ud)
{
	struct al_doc w;

	/* Ids are assigned before the hook runs. */
	AL_ASSERT_NOT_NULL(json_object_get(json_array_get(events, 0), "id"));
	memset(&w, 0, sizeof(w));
	snprintf(w.kind, sizeof(w.kind), "work");
	snprintf(w.id, sizeof(w.id), "work_1");
	w.body = "{}";
	AL_ASSERT_INT_EQ(al_store_doc_insert(tx, &w), 0);
	return -EIO;
}

static void count_cb(const char *session_id, json_t *event, void *ud)
{
	(*(int *)ud)++;
}

static void work_cb(const char *environment_id, void *ud)
{
	(*(int *)ud)++;
}

struct nothing_ctx {
	const char *sid;
	const char *want_state;
};

static int nothing_stored_fn(al_store_tx *tx, void *ud)
{
	struct nothing_ctx *c = ud;
	struct al_doc d;
	int64_t n = -1;

	AL_ASSERT_INT_EQ(al_store_event_count(tx, c->sid, &n), 0);
	AL_ASSERT_INT_EQ(n, 0);
	AL_ASSERT_INT_EQ(al_store_doc_get(tx, "work", "work_1", &d), -ENOENT);
	if (al_store_doc_get(tx, "session", c->sid, &d) == 0) {
		AL_ASSERT_STR_EQ(d.state, c->want_state);
		AL_ASSERT_INT_EQ(d.version, 1);
		al_doc_clear(&d);
	}
	return 0;
}

AL_TEST(bus_failed_hook_publishes_nothing)
{
	struct fx f;
	struct done_log log = {.ids_ok = 1};
	struct done_arg arg = {&log, 0};
	struct al_bus_append_opts o = {
	    .new_status = "running", .tx_hook = hook_fails, .wake_environment_id = "env_1"};
	struct nothing_ctx c;
	al_bus_sub *h = NULL, *w = NULL;
	int published = 0, observed = 0, woken = 0;
	json_t *ev = two_events(0, 1);

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, count_cb, &published, &h), 0);
	al_bus_set_observer(f.bus, count_cb, &observed);
	AL_ASSERT_INT_EQ(al_bus_watch_work(f.bus, "env_1", work_cb, &woken, &w), 0);
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, &o, done_cb, &arg), 0);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(log.count, 1);
	AL_ASSERT_INT_EQ(log.rc[0], -EIO);
	AL_ASSERT_INT_EQ(published, 0);
	AL_ASSERT_INT_EQ(observed, 0);
	AL_ASSERT_INT_EQ(woken, 0);
	/* The caller's array is untouched. */
	AL_ASSERT_NULL(json_object_get(json_array_get(ev, 0), "id"));
	json_decref(ev);
	c = (struct nothing_ctx){f.sid, "idle"};
	AL_ASSERT_INT_EQ(al_store_call(f.store, nothing_stored_fn, &c), 0);

	/* Unknown session: -ENOENT, nothing published or stored. */
	ev = two_events(0, 1);
	o = (struct al_bus_append_opts){.new_status = "running"};
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, "sesn_unknown", ev, &o, done_cb, &arg), 0);
	json_decref(ev);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(log.count, 2);
	AL_ASSERT_INT_EQ(log.rc[1], -ENOENT);
	AL_ASSERT_INT_EQ(observed, 0);
	c = (struct nothing_ctx){"sesn_unknown", "idle"};
	AL_ASSERT_INT_EQ(al_store_call(f.store, nothing_stored_fn, &c), 0);

	al_bus_unsubscribe(h);
	al_bus_unsubscribe(w);
	fx_close(&f);
}

/* The check sees the session read in the transaction; refusing writes nothing. */
static int check_refuses(al_store_tx *tx, const struct al_doc *session, void *ud)
{
	AL_ASSERT_STR_EQ(session->id, (const char *)ud);
	AL_ASSERT_STR_EQ(session->state, "idle");
	return -EPERM;
}

static int check_passes(al_store_tx *tx, const struct al_doc *session, void *ud)
{
	(*(int *)ud)++;
	return 0;
}

AL_TEST(bus_check_refuses_before_writing)
{
	struct fx f;
	struct done_log log = {.ids_ok = 1};
	struct done_arg arg = {&log, 0};
	struct al_bus_append_opts o = {.new_status = "running", .check = check_refuses};
	struct nothing_ctx c;
	int published = 0, checked = 0;
	al_bus_sub *h = NULL;
	json_t *ev = two_events(0, 1);

	fx_open(&f);
	o.check_ud = f.sid;
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, count_cb, &published, &h), 0);
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, &o, done_cb, &arg), 0);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(log.count, 1);
	AL_ASSERT_INT_EQ(log.rc[0], -EPERM);
	AL_ASSERT_INT_EQ(published, 0);
	c = (struct nothing_ctx){f.sid, "idle"};
	AL_ASSERT_INT_EQ(al_store_call(f.store, nothing_stored_fn, &c), 0);

	o = (struct al_bus_append_opts){.check = check_passes, .check_ud = &checked};
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, &o, done_cb, &arg), 0);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(log.count, 2);
	AL_ASSERT_INT_EQ(log.rc[1], 0);
	AL_ASSERT_INT_EQ(checked, 1);
	AL_ASSERT_INT_EQ(published, 2);
	json_decref(ev);
	al_bus_unsubscribe(h);
	fx_close(&f);
}

/* Subscribers get the stored text of the event being published. */
struct text_ctx {
	al_bus *bus;
	int n;
};

static void text_cb(const char *session_id, json_t *event, void *ud)
{
	size_t len = 0;
	const char *text = al_bus_event_text(((struct text_ctx *)ud)->bus, &len);
	char *dumped = json_dumps(event, JSON_COMPACT);

	AL_ASSERT_NOT_NULL(text);
	AL_ASSERT_STR_EQ(text, dumped);
	AL_ASSERT_INT_EQ(len, strlen(dumped));
	al_free(dumped);
	((struct text_ctx *)ud)->n++;
}

AL_TEST(bus_event_text_is_the_stored_text)
{
	struct fx f;
	struct done_log log = {.ids_ok = 1};
	struct done_arg arg = {&log, 0};
	struct text_ctx ctx = {0};
	al_bus_sub *h = NULL;
	size_t len = 7;
	json_t *ev = two_events(3, 4);

	fx_open(&f);
	ctx.bus = f.bus;
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, text_cb, &ctx, &h), 0);
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, NULL, done_cb, &arg), 0);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(log.count, 1);
	AL_ASSERT_INT_EQ(ctx.n, 2);
	AL_ASSERT_NULL(al_bus_event_text(f.bus, &len)); /* outside a publish */
	AL_ASSERT_INT_EQ(len, 0);
	json_decref(ev);
	al_bus_unsubscribe(h);
	fx_close(&f);
}

AL_TEST(bus_rejects_bad_input)
{
	struct fx f;
	struct done_log log = {.ids_ok = 1};
	struct done_arg arg = {&log, 0};
	struct al_bus_append_opts bad = {.new_status = "sleeping"};
	json_t *ev;

	fx_open(&f);
	ev = json_pack("{s:s}", "type", "user.message"); /* not an array */
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, NULL, done_cb, &arg), -EINVAL);
	json_decref(ev);
	ev = json_pack("[{s:i}]", "n", 1); /* no type */
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, NULL, done_cb, &arg), -EINVAL);
	json_decref(ev);
	ev = json_pack("[i]", 1); /* not an object */
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, NULL, done_cb, &arg), -EINVAL);
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, "", ev, NULL, done_cb, &arg), -EINVAL);
	json_decref(ev);
	ev = two_events(0, 1);
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, &bad, done_cb, &arg), -EINVAL);
	json_decref(ev);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(log.count, 0);
	fx_close(&f);
}

/* ---- subscriptions changing from inside callbacks ---- */

struct unsub_ctx {
	al_bus_sub *self;
	al_bus_sub *other; /* unsubscribed on the first event, if set */
	int count;
};

static void unsub_self_cb(const char *session_id, json_t *event, void *ud)
{
	struct unsub_ctx *c = ud;

	c->count++;
	al_bus_unsubscribe(c->self);
}

static void unsub_other_cb(const char *session_id, json_t *event, void *ud)
{
	struct unsub_ctx *c = ud;

	c->count++;
	if (c->other) {
		al_bus_unsubscribe(c->other);
		c->other = NULL;
	}
}

AL_TEST(bus_unsubscribe_inside_callback)
{
	struct fx f;
	struct unsub_ctx a = {0}, b = {0}, c = {0};
	al_bus_sub *hc = NULL;
	json_t *ev;

	fx_open(&f);
	/* Subscribed C, B, A: newest first, so A and B run before C. */
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, unsub_other_cb, &c, &hc), 0);
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, unsub_other_cb, &b, &b.self), 0);
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, unsub_self_cb, &a, &a.self), 0);
	b.other = hc;
	ev = json_pack("[{s:s}, {s:s}, {s:s}]", "type", "user.message", "type", "user.message",
		       "type", "user.message");
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, NULL, NULL, NULL), 0);
	json_decref(ev);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(a.count, 1); /* removed itself after the first event */
	AL_ASSERT_INT_EQ(b.count, 3);
	AL_ASSERT_INT_EQ(c.count, 0); /* removed by B before its turn */
	al_bus_unsubscribe(b.self);
	fx_close(&f);
}

/* ---- work watchers ---- */

struct work_ctx {
	al_store *store;
	int woken;
	al_bus_sub *self; /* unsubscribe on wake, if set */
};

static int work_exists_fn(al_store_tx *tx, void *ud)
{
	struct al_doc d;
	int rc = al_store_doc_get(tx, "work", "work_2", &d);

	al_doc_clear(&d);
	return rc;
}

static void work_check_cb(const char *environment_id, void *ud)
{
	struct work_ctx *w = ud;

	AL_ASSERT_STR_EQ(environment_id, "env_1");
	/* Woken after the commit: the queued work item is visible. */
	AL_ASSERT_INT_EQ(al_store_call(w->store, work_exists_fn, NULL), 0);
	w->woken++;
	if (w->self) {
		al_bus_unsubscribe(w->self);
		w->self = NULL;
	}
}

static int hook_enqueue(al_store_tx *tx, const char *session_id, json_t *events, void *ud)
{
	struct al_doc w;

	memset(&w, 0, sizeof(w));
	snprintf(w.kind, sizeof(w.kind), "work");
	snprintf(w.id, sizeof(w.id), "work_2");
	snprintf(w.ref, sizeof(w.ref), "%s", session_id);
	snprintf(w.ref2, sizeof(w.ref2), "env_1");
	snprintf(w.state, sizeof(w.state), "queued");
	w.body = "{}";
	return al_store_doc_insert(tx, &w);
}

AL_TEST(bus_wakes_work_watchers)
{
	struct fx f;
	struct work_ctx w1 = {0}, w2 = {0};
	struct al_bus_append_opts o = {.tx_hook = hook_enqueue, .wake_environment_id = "env_1"};
	struct done_log log = {.ids_ok = 1};
	struct done_arg arg = {&log, 0};
	al_bus_sub *h1 = NULL, *h3 = NULL;
	int other = 0;
	json_t *ev = two_events(0, 1);

	fx_open(&f);
	w1.store = w2.store = f.store;
	AL_ASSERT_INT_EQ(al_bus_watch_work(f.bus, "env_1", work_check_cb, &w1, &h1), 0);
	AL_ASSERT_INT_EQ(al_bus_watch_work(f.bus, "env_1", work_check_cb, &w2, &w2.self), 0);
	AL_ASSERT_INT_EQ(al_bus_watch_work(f.bus, "env_2", work_cb, &other, &h3), 0);
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, &o, done_cb, &arg), 0);
	json_decref(ev);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(log.rc[0], 0);
	AL_ASSERT_INT_EQ(w1.woken, 1);
	AL_ASSERT_INT_EQ(w2.woken, 1);
	AL_ASSERT_INT_EQ(other, 0);
	/* w2 unsubscribed itself; a direct wake reaches w1 only. */
	al_bus_wake_work(f.bus, "env_1");
	AL_ASSERT_INT_EQ(w1.woken, 2);
	AL_ASSERT_INT_EQ(w2.woken, 1);
	al_bus_wake_work(f.bus, "env_2");
	AL_ASSERT_INT_EQ(other, 1);
	al_bus_unsubscribe(h1);
	/* h3 is left subscribed: al_bus_free releases it. */
	fx_close(&f);
}

/* ---- lifetime ---- */

static void free_bus_cb(const char *session_id, json_t *event, void *ud)
{
	struct fx *f = ud;

	/* Freeing from inside a publish: deferred until the callback returns. */
	if (f->bus) {
		al_bus_free(f->bus);
		f->bus = NULL;
	}
}

AL_TEST(bus_free_with_appends_in_flight)
{
	struct fx f;
	struct done_log log = {.ids_ok = 1};
	struct done_arg args[3];
	al_bus_sub *h = NULL;
	al_bus *bus;

	fx_open(&f);
	for (int k = 0; k < 3; k++) {
		json_t *ev = two_events(k, k);
		args[k] = (struct done_arg){&log, k};
		AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, NULL, done_cb, &args[k]), 0);
		json_decref(ev);
	}
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, free_bus_cb, &f, &h), 0);
	/* The first event frees the bus; the remaining done callbacks still fire. */
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_NULL(f.bus);
	AL_ASSERT_INT_EQ(log.count, 3);
	for (int k = 0; k < 3; k++)
		AL_ASSERT_INT_EQ(log.rc[k], 0);

	/* And a plain free with an append pending. */
	AL_ASSERT_INT_EQ(al_bus_new(&f.loop, f.store, &bus), 0);
	{
		json_t *ev = two_events(9, 9);
		args[0] = (struct done_arg){&log, 9};
		AL_ASSERT_INT_EQ(al_bus_append(bus, f.sid, ev, NULL, done_cb, &args[0]), 0);
		json_decref(ev);
	}
	al_bus_free(bus);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(log.count, 4);
	AL_ASSERT_INT_EQ(log.order[3], 9);
	fx_close(&f); /* al_bus_free(NULL) is a no-op */
}

AL_TEST(bus_alloc_failures)
{
	int ok = 0;

	for (long k = 0; k < 500 && ok == 0; k++) {
		struct fx f;
		struct done_log log = {.ids_ok = 1};
		struct done_arg arg = {&log, 0};
		struct al_bus_append_opts o = {.new_status = "running"};
		int published = 0, rc;
		al_bus_sub *h = NULL;
		json_t *ev;

		fx_open(&f);
		AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, count_cb, &published, &h), 0);
		ev = two_events(1, 2);
		al_alloc_fail_after(k);
		rc = al_bus_append(f.bus, f.sid, ev, &o, done_cb, &arg);
		if (rc == 0)
			AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
		al_alloc_fail_after(-1);
		json_decref(ev);
		if (rc < 0) {
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
			AL_ASSERT_INT_EQ(log.count, 0);
		} else {
			AL_ASSERT_INT_EQ(log.count, 1);
			/* All or nothing: published exactly when committed. */
			AL_ASSERT_INT_EQ(published, log.rc[0] == 0 ? 2 : 0);
			if (log.rc[0] == 0)
				ok++;
			else
				AL_ASSERT_INT_EQ(log.rc[0], -ENOMEM);
		}
		al_bus_unsubscribe(h);
		fx_close(&f);
		/* Fresh database for the next round. */
		{
			char path[512];
			const char *sfx[] = {"", "-wal", "-shm"};
			for (int i = 0; i < 3; i++) {
				snprintf(path, sizeof(path), "%s/airlock.db%s", al_test_tmpdir(),
					 sfx[i]);
				remove(path);
			}
		}
	}
	AL_ASSERT(ok > 0);
}

/*
 * al_bus_free from a subscriber's callback: the subscribers after it in the
 * same publish, and the observer, see nothing more (their handles are
 * already invalid by bus.h's contract).
 */
static int observed;

static void observe_cb(const char *session_id, json_t *event, void *ud)
{
	observed++;
}

AL_TEST(bus_free_inside_callback_stops_the_publish)
{
	struct fx f;
	al_bus_sub *later = NULL, *first = NULL;
	int published = 0;
	json_t *ev;

	fx_open(&f);
	/* New subscriptions go to the head of the chain: `first` runs first. */
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, count_cb, &published, &later), 0);
	AL_ASSERT_INT_EQ(al_bus_subscribe(f.bus, f.sid, free_bus_cb, &f, &first), 0);
	al_bus_set_observer(f.bus, observe_cb, NULL);
	ev = two_events(1, 2);
	AL_ASSERT_INT_EQ(al_bus_append(f.bus, f.sid, ev, NULL, NULL, NULL), 0);
	json_decref(ev);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_NULL(f.bus);
	AL_ASSERT_INT_EQ(published, 0);
	AL_ASSERT_INT_EQ(observed, 0);
	fx_close(&f);
}
