/*
 * test_store.c - the store executor and the SQLite backend, on a real
 * database file in the test's scratch directory.
 */
#include "unit/unit.h"

#include "core/alloc.h"
#include "core/rand.h"
#include "store/store.h"

#include <errno.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

struct fx {
	uv_loop_t loop;
	al_store *s;
};

static void fx_open(struct fx *f)
{
	char err[256] = "";
	int rc;

	AL_ASSERT_INT_EQ(uv_loop_init(&f->loop), 0);
	rc = al_store_open_sqlite(&f->loop, al_test_tmpdir(), &f->s, err, sizeof(err));
	if (rc < 0)
		al_test_fail(__FILE__, __LINE__, "open: %d %s", rc, err);
}

static void fx_close(struct fx *f)
{
	al_store_close(f->s);
	AL_ASSERT_INT_EQ(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(uv_loop_close(&f->loop), 0);
}

static void doc_set(struct al_doc *d, const char *kind, const char *id, const char *ref,
		    const char *ref2, const char *state, int64_t sort_ms, const char *body)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->kind, sizeof(d->kind), "%s", kind);
	snprintf(d->id, sizeof(d->id), "%s", id);
	snprintf(d->ref, sizeof(d->ref), "%s", ref);
	snprintf(d->ref2, sizeof(d->ref2), "%s", ref2);
	snprintf(d->state, sizeof(d->state), "%s", state);
	d->sort_ms = sort_ms;
	d->body = (char *)body; /* borrowed: inserts never free it */
}

static int insert_simple(al_store_tx *tx, const char *kind, const char *id)
{
	struct al_doc d;

	doc_set(&d, kind, id, "", "", "", 0, "{}");
	return al_store_doc_insert(tx, &d);
}

static int exists(al_store_tx *tx, const char *kind, const char *id)
{
	struct al_doc d;
	int rc = al_store_doc_get(tx, kind, id, &d);

	al_doc_clear(&d);
	return rc == 0;
}

/* ---- CRUD and CAS ---- */

static int crud_fn(al_store_tx *tx, void *ud)
{
	struct al_doc d, got;

	doc_set(&d, "agent", "agent_1", "r1", "r2", "active", 42, "{\"name\":\"a\"}");
	d.created_ms = 1000;
	d.updated_ms = 2000;
	AL_ASSERT_INT_EQ(al_store_doc_insert(tx, &d), 0);
	AL_ASSERT_INT_EQ(d.version, 1);
	AL_ASSERT_INT_EQ(al_store_doc_insert(tx, &d), -EEXIST);

	AL_ASSERT_INT_EQ(al_store_doc_get(tx, "agent", "agent_1", &got), 0);
	AL_ASSERT_STR_EQ(got.kind, "agent");
	AL_ASSERT_STR_EQ(got.id, "agent_1");
	AL_ASSERT_STR_EQ(got.ref, "r1");
	AL_ASSERT_STR_EQ(got.ref2, "r2");
	AL_ASSERT_STR_EQ(got.state, "active");
	AL_ASSERT_INT_EQ(got.sort_ms, 42);
	AL_ASSERT_INT_EQ(got.created_ms, 1000);
	AL_ASSERT_INT_EQ(got.updated_ms, 2000);
	AL_ASSERT_INT_EQ(got.archived_ms, 0);
	AL_ASSERT_INT_EQ(got.version, 1);
	AL_ASSERT_STR_EQ(got.body, "{\"name\":\"a\"}");
	al_doc_clear(&got);
	/* Same id in another kind is another document. */
	AL_ASSERT_INT_EQ(al_store_doc_get(tx, "session", "agent_1", &got), -ENOENT);

	doc_set(&d, "agent", "agent_1", "x", "", "archived", 7, "{\"name\":\"b\"}");
	d.created_ms = 1000;
	d.updated_ms = 3000;
	d.archived_ms = 3000;
	AL_ASSERT_INT_EQ(al_store_doc_update(tx, &d, 0), 0);
	AL_ASSERT_INT_EQ(d.version, 2);
	AL_ASSERT_INT_EQ(al_store_doc_get(tx, "agent", "agent_1", &got), 0);
	AL_ASSERT_STR_EQ(got.ref, "x");
	AL_ASSERT_STR_EQ(got.ref2, "");
	AL_ASSERT_STR_EQ(got.state, "archived");
	AL_ASSERT_INT_EQ(got.archived_ms, 3000);
	AL_ASSERT_INT_EQ(got.updated_ms, 3000);
	AL_ASSERT_INT_EQ(got.version, 2);
	AL_ASSERT_STR_EQ(got.body, "{\"name\":\"b\"}");
	al_doc_clear(&got);

	AL_ASSERT_INT_EQ(al_store_doc_delete(tx, "agent", "agent_1"), 0);
	AL_ASSERT_INT_EQ(al_store_doc_get(tx, "agent", "agent_1", &got), -ENOENT);
	AL_ASSERT_INT_EQ(al_store_doc_delete(tx, "agent", "agent_1"), -ENOENT);
	AL_ASSERT_INT_EQ(al_store_doc_update(tx, &d, 0), -ENOENT);
	AL_ASSERT_INT_EQ(al_store_doc_update(tx, &d, 5), -ENOENT);
	d.body = NULL;
	AL_ASSERT_INT_EQ(al_store_doc_insert(tx, &d), -EINVAL);
	return 0;
}

AL_TEST(store_doc_crud)
{
	struct fx f;

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_store_call(f.s, crud_fn, NULL), 0);
	fx_close(&f);
}

static int cas_fn(al_store_tx *tx, void *ud)
{
	struct al_doc d, got;

	doc_set(&d, "work", "work_1", "", "", "queued", 0, "{\"v\":1}");
	AL_ASSERT_INT_EQ(al_store_doc_insert(tx, &d), 0);
	d.body = "{\"v\":2}";
	AL_ASSERT_INT_EQ(al_store_doc_update(tx, &d, 1), 0);
	AL_ASSERT_INT_EQ(d.version, 2);
	/* A writer that read version 1 loses. */
	d.body = "{\"v\":\"stale\"}";
	AL_ASSERT_INT_EQ(al_store_doc_update(tx, &d, 1), -ESTALE);
	AL_ASSERT_INT_EQ(al_store_doc_get(tx, "work", "work_1", &got), 0);
	AL_ASSERT_STR_EQ(got.body, "{\"v\":2}");
	AL_ASSERT_INT_EQ(got.version, 2);
	al_doc_clear(&got);
	d.body = "{\"v\":3}";
	AL_ASSERT_INT_EQ(al_store_doc_update(tx, &d, 2), 0);
	AL_ASSERT_INT_EQ(d.version, 3);
	/* 0: unconditional. */
	/* created_ms 0 keeps the stored one; updated_ms 0 becomes now. */
	AL_ASSERT_INT_EQ(al_store_doc_get(tx, "work", "work_1", &got), 0);
	d.created_ms = 0;
	d.updated_ms = 0;
	AL_ASSERT_INT_EQ(al_store_doc_update(tx, &d, 0), 0);
	AL_ASSERT_INT_EQ(d.version, 4);
	AL_ASSERT_INT_EQ(d.created_ms, got.created_ms);
	AL_ASSERT(d.updated_ms >= got.created_ms);
	al_doc_clear(&got);
	AL_ASSERT_INT_EQ(al_store_doc_get(tx, "work", "work_1", &got), 0);
	AL_ASSERT_INT_EQ(got.created_ms, d.created_ms);
	AL_ASSERT_INT_EQ(got.updated_ms, d.updated_ms);
	al_doc_clear(&got);
	return 0;
}

AL_TEST(store_doc_cas)
{
	struct fx f;

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_store_call(f.s, cas_fn, NULL), 0);
	fx_close(&f);
}

/* ---- queries ---- */

/* Lists kind "k" with q and returns the ids joined by ',' (static buffer). */
static const char *ids_of(al_store_tx *tx, const struct al_doc_query *q, int *has_more)
{
	static char out[1024];
	struct al_doc *docs = NULL;
	size_t n = 0;
	int64_t count = -1;

	AL_ASSERT_INT_EQ(al_store_doc_list(tx, "k", q, &docs, &n, has_more), 0);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(out);
		snprintf(out + len, sizeof(out) - len, "%s%s", i ? "," : "", docs[i].id);
	}
	al_doc_array_free(docs, n);
	/* count honours every filter, cursors included, and ignores the limit. */
	if (q == NULL || q->limit == 0) {
		AL_ASSERT_INT_EQ(al_store_doc_count(tx, "k", q, &count), 0);
		AL_ASSERT_INT_EQ(count, (int64_t)n);
	}
	return out;
}

static int query_fn(al_store_tx *tx, void *ud)
{
	/* id, ref, ref2, state, sort_ms, archived */
	static const struct {
		const char *id, *ref, *ref2, *state;
		int64_t sort_ms, archived;
	} rows[] = {
	    {"a1", "agentA", "envX", "idle", 10, 0},
	    {"a2", "agentA", "envY", "running", 20, 0},
	    {"a3", "agentB", "envX", "idle", 30, 0},
	    {"a4", "agentB", "envY", "terminated", 40, 0},
	    {"a5", "agentA", "envX", "running", 50, 99},
	};
	const char *idle[] = {"idle", NULL};
	const char *idle_running[] = {"idle", "running", NULL};
	const char *none[] = {NULL};
	struct al_doc d;
	struct al_doc_query q;
	int more = -1;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		doc_set(&d, "k", rows[i].id, rows[i].ref, rows[i].ref2, rows[i].state,
			rows[i].sort_ms, "{}");
		d.archived_ms = rows[i].archived;
		AL_ASSERT_INT_EQ(al_store_doc_insert(tx, &d), 0);
	}
	/* Another kind never shows up. */
	AL_ASSERT_INT_EQ(insert_simple(tx, "other", "a0"), 0);

	AL_ASSERT_STR_EQ(ids_of(tx, NULL, &more), "a1,a2,a3,a4");
	AL_ASSERT_INT_EQ(more, 0);

	q = (struct al_doc_query){.include_archived = 1};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a2,a3,a4,a5");
	q = (struct al_doc_query){.ref = "agentA"};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a2");
	q = (struct al_doc_query){.ref = "agentA", .include_archived = 1};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a2,a5");
	q = (struct al_doc_query){.ref2 = "envX"};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a3");
	q = (struct al_doc_query){.ref = "agentB", .ref2 = "envY"};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a4");
	q = (struct al_doc_query){.ref = "nobody"};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "");
	q = (struct al_doc_query){.states = idle};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a3");
	q = (struct al_doc_query){.states = idle_running};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a2,a3");
	q = (struct al_doc_query){.states = idle_running, .include_archived = 1};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a2,a3,a5");
	q = (struct al_doc_query){.states = none};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "");
	q = (struct al_doc_query){.sort_ms_before = 30};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a2");
	q = (struct al_doc_query){.states = idle_running, .sort_ms_before = 25};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a2");
	q = (struct al_doc_query){.after_id = "a2"};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a3,a4");
	q = (struct al_doc_query){.before_id = "a3"};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a1,a2");
	q = (struct al_doc_query){.after_id = "a1", .before_id = "a4"};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a2,a3");
	q = (struct al_doc_query){.descending = 1};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a4,a3,a2,a1");
	q = (struct al_doc_query){.descending = 1, .before_id = "a4", .include_archived = 1};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a3,a2,a1");
	q = (struct al_doc_query){.descending = 1, .after_id = "a2", .include_archived = 1};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, NULL), "a5,a4,a3");
	q = (struct al_doc_query){.limit = 2};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, &more), "a1,a2");
	AL_ASSERT_INT_EQ(more, 1);
	q = (struct al_doc_query){.limit = 4};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, &more), "a1,a2,a3,a4");
	AL_ASSERT_INT_EQ(more, 0); /* exactly limit rows: no more */
	q = (struct al_doc_query){.limit = 3, .descending = 1, .include_archived = 1};
	AL_ASSERT_STR_EQ(ids_of(tx, &q, &more), "a5,a4,a3");
	AL_ASSERT_INT_EQ(more, 1);
	return 0;
}

AL_TEST(store_doc_query_fields)
{
	struct fx f;

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_store_call(f.s, query_fn, NULL), 0);
	fx_close(&f);
}

#define NPAGE_DOCS 25

static int pages_fn(al_store_tx *tx, void *ud)
{
	char ids[NPAGE_DOCS][AL_ID_MAX];
	char cursor[AL_ID_MAX] = "";
	struct al_doc_query q;
	size_t seen = 0;
	int pages = 0, more = 1;

	for (int i = 0; i < NPAGE_DOCS; i++) {
		AL_ASSERT_INT_EQ(al_id_new("sesn", ids[i], sizeof(ids[i])), 0);
		AL_ASSERT_INT_EQ(insert_simple(tx, "session", ids[i]), 0);
	}
	/* Forward, newest last, 10 per page: 10 + 10 + 5. */
	while (more) {
		struct al_doc *docs = NULL;
		size_t n = 0;

		q = (struct al_doc_query){.limit = 10, .after_id = cursor[0] ? cursor : NULL};
		AL_ASSERT_INT_EQ(al_store_doc_list(tx, "session", &q, &docs, &n, &more), 0);
		AL_ASSERT_INT_EQ(n, pages < 2 ? 10 : 5);
		AL_ASSERT_INT_EQ(more, pages < 2);
		for (size_t i = 0; i < n; i++)
			AL_ASSERT_STR_EQ(docs[i].id, ids[seen + i]);
		seen += n;
		snprintf(cursor, sizeof(cursor), "%s", docs[n - 1].id);
		al_doc_array_free(docs, n);
		pages++;
	}
	AL_ASSERT_INT_EQ(seen, NPAGE_DOCS);
	AL_ASSERT_INT_EQ(pages, 3);

	/* Backward, newest first, 7 per page: 7 + 7 + 7 + 4. */
	cursor[0] = '\0';
	seen = 0;
	pages = 0;
	more = 1;
	while (more) {
		struct al_doc *docs = NULL;
		size_t n = 0;

		q = (struct al_doc_query){
		    .limit = 7, .descending = 1, .before_id = cursor[0] ? cursor : NULL};
		AL_ASSERT_INT_EQ(al_store_doc_list(tx, "session", &q, &docs, &n, &more), 0);
		for (size_t i = 0; i < n; i++)
			AL_ASSERT_STR_EQ(docs[i].id, ids[NPAGE_DOCS - 1 - (seen + i)]);
		seen += n;
		snprintf(cursor, sizeof(cursor), "%s", docs[n - 1].id);
		al_doc_array_free(docs, n);
		pages++;
	}
	AL_ASSERT_INT_EQ(seen, NPAGE_DOCS);
	AL_ASSERT_INT_EQ(pages, 4);
	return 0;
}

AL_TEST(store_doc_pagination)
{
	struct fx f;

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_store_call(f.s, pages_fn, NULL), 0);
	fx_close(&f);
}

/* ---- events ---- */

static int append(al_store_tx *tx, const char *session, const char *id, const char *type,
		  int64_t *seq)
{
	struct al_event e;
	int rc;

	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "%s", id);
	snprintf(e.session_id, sizeof(e.session_id), "%s", session);
	snprintf(e.type, sizeof(e.type), "%s", type);
	e.body = "{\"type\":\"x\"}";
	rc = al_store_event_append(tx, &e);
	if (seq)
		*seq = e.seq;
	return rc;
}

static const char *event_ids(al_store_tx *tx, const struct al_event_query *q, int *more)
{
	static char out[1024];
	struct al_event *ev = NULL;
	size_t n = 0;

	AL_ASSERT_INT_EQ(al_store_event_list(tx, q, &ev, &n, more), 0);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(out);
		AL_ASSERT_STR_EQ(ev[i].session_id, q->session_id);
		if (i > 0)
			AL_ASSERT(q->descending ? ev[i].seq < ev[i - 1].seq
						: ev[i].seq > ev[i - 1].seq);
		snprintf(out + len, sizeof(out) - len, "%s%s", i ? "," : "", ev[i].id);
	}
	al_event_array_free(ev, n);
	return out;
}

static int events_fn(al_store_tx *tx, void *ud)
{
	struct al_event_query q;
	struct al_event e;
	int64_t seq, last = 0, count;
	int more = -1;
	char id[8];

	/* e1..e8 in session A, interleaved with b1..b4 in session B.
	 * Ids deliberately do not sort like seq: order is by seq only. */
	for (int i = 1; i <= 8; i++) {
		snprintf(id, sizeof(id), "e%d", 9 - i);
		AL_ASSERT_INT_EQ(
		    append(tx, "sA", id, i % 2 ? "user.message" : "agent.message", &seq), 0);
		AL_ASSERT(seq > last);
		last = seq;
		if (i % 2 == 0) {
			snprintf(id, sizeof(id), "b%d", i / 2);
			AL_ASSERT_INT_EQ(append(tx, "sB", id, "user.message", &seq), 0);
			AL_ASSERT(seq > last);
			last = seq;
		}
	}
	AL_ASSERT_INT_EQ(append(tx, "sA", "e1", "user.message", NULL), -EEXIST);
	AL_ASSERT_INT_EQ(append(tx, "sB", "e1", "user.message", NULL), -EEXIST);

	q = (struct al_event_query){.session_id = "sA"};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, &more), "e8,e7,e6,e5,e4,e3,e2,e1");
	AL_ASSERT_INT_EQ(more, 0);
	q = (struct al_event_query){.session_id = "sB"};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, NULL), "b1,b2,b3,b4");
	q = (struct al_event_query){.session_id = "sA", .after_id = "e6"};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, NULL), "e5,e4,e3,e2,e1");
	q = (struct al_event_query){.session_id = "sA", .before_id = "e4"};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, NULL), "e8,e7,e6,e5");
	q = (struct al_event_query){.session_id = "sA", .after_id = "e8", .before_id = "e4"};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, NULL), "e7,e6,e5");
	q = (struct al_event_query){.session_id = "sA", .descending = 1};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, NULL), "e1,e2,e3,e4,e5,e6,e7,e8");
	q = (struct al_event_query){.session_id = "sA", .descending = 1, .before_id = "e3"};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, NULL), "e4,e5,e6,e7,e8");
	q = (struct al_event_query){.session_id = "sA", .type = "agent.message"};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, NULL), "e7,e5,e3,e1");
	q = (struct al_event_query){.session_id = "sA", .type = "user.message", .limit = 3};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, &more), "e8,e6,e4");
	AL_ASSERT_INT_EQ(more, 1);
	q = (struct al_event_query){.session_id = "sA", .limit = 3, .after_id = "e3"};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, &more), "e2,e1");
	AL_ASSERT_INT_EQ(more, 0);
	q = (struct al_event_query){.session_id = "sA", .limit = 2, .descending = 1};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, &more), "e1,e2");
	AL_ASSERT_INT_EQ(more, 1);
	q = (struct al_event_query){.session_id = "nobody"};
	AL_ASSERT_STR_EQ(event_ids(tx, &q, &more), "");

	/* Unknown cursors, and cursors of another session, are -ENOENT. */
	{
		struct al_event *ev = NULL;
		size_t n = 0;

		q = (struct al_event_query){.session_id = "sA", .after_id = "zz"};
		AL_ASSERT_INT_EQ(al_store_event_list(tx, &q, &ev, &n, NULL), -ENOENT);
		q = (struct al_event_query){.session_id = "sA", .before_id = "b1"};
		AL_ASSERT_INT_EQ(al_store_event_list(tx, &q, &ev, &n, NULL), -ENOENT);
		q = (struct al_event_query){.session_id = NULL};
		AL_ASSERT_INT_EQ(al_store_event_list(tx, &q, &ev, &n, NULL), -EINVAL);
		AL_ASSERT_NULL(ev);
	}

	AL_ASSERT_INT_EQ(al_store_event_get(tx, "sA", "e5", &e), 0);
	AL_ASSERT_STR_EQ(e.type, "agent.message");
	AL_ASSERT_STR_EQ(e.session_id, "sA");
	AL_ASSERT_STR_EQ(e.body, "{\"type\":\"x\"}");
	AL_ASSERT(e.created_ms > 0);
	al_event_clear(&e);
	AL_ASSERT_INT_EQ(al_store_event_get(tx, "sB", "e5", &e), -ENOENT);
	AL_ASSERT_INT_EQ(al_store_event_count(tx, "sA", &count), 0);
	AL_ASSERT_INT_EQ(count, 8);

	AL_ASSERT_INT_EQ(al_store_event_delete_session(tx, "sA"), 0);
	AL_ASSERT_INT_EQ(al_store_event_count(tx, "sA", &count), 0);
	AL_ASSERT_INT_EQ(count, 0);
	AL_ASSERT_INT_EQ(al_store_event_count(tx, "sB", &count), 0);
	AL_ASSERT_INT_EQ(count, 4);
	/* seq is never reused after deletion. */
	AL_ASSERT_INT_EQ(append(tx, "sA", "e9", "user.message", &seq), 0);
	AL_ASSERT(seq > last);
	return 0;
}

AL_TEST(store_event_order_cursors)
{
	struct fx f;

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_store_call(f.s, events_fn, NULL), 0);
	fx_close(&f);
}

/* ---- transactions ---- */

struct done_rec {
	int called;
	int rc;
};

static void done_cb(int rc, void *ud)
{
	struct done_rec *r = ud;

	r->called++;
	r->rc = rc;
}

static int two_then_fail_fn(al_store_tx *tx, void *ud)
{
	AL_ASSERT_INT_EQ(insert_simple(tx, "k", "one"), 0);
	AL_ASSERT_INT_EQ(insert_simple(tx, "k", "two"), 0);
	AL_ASSERT_INT_EQ(append(tx, "s", "ev", "t", NULL), 0);
	return -EINVAL;
}

static int check_none_fn(al_store_tx *tx, void *ud)
{
	int64_t count = -1;

	AL_ASSERT(!exists(tx, "k", "one"));
	AL_ASSERT(!exists(tx, "k", "two"));
	AL_ASSERT_INT_EQ(al_store_event_count(tx, "s", &count), 0);
	AL_ASSERT_INT_EQ(count, 0);
	return 0;
}

AL_TEST(store_rollback_leaves_nothing)
{
	struct fx f;
	struct done_rec r = {0};

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_store_submit(f.s, two_then_fail_fn, done_cb, &r), 0);
	/* The loop stays alive exactly until the completion has run. */
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(r.called, 1);
	AL_ASSERT_INT_EQ(r.rc, -EINVAL);
	AL_ASSERT_INT_EQ(al_store_call(f.s, check_none_fn, NULL), 0);
	/* Synchronous calls roll back the same way. */
	AL_ASSERT_INT_EQ(al_store_call(f.s, two_then_fail_fn, NULL), -EINVAL);
	AL_ASSERT_INT_EQ(al_store_call(f.s, check_none_fn, NULL), 0);
	fx_close(&f);
}

/*
 * Holding the store thread: hold_store returns once the thread is inside
 * wait_gate_fn, so every job submitted before sem_post(&gate) is queued
 * behind it and is taken as one group (up to MAX_GROUP).
 */
static sem_t gate, entered;

static int wait_gate_fn(al_store_tx *tx, void *ud)
{
	sem_post(&entered);
	while (sem_wait(&gate) < 0 && errno == EINTR)
		;
	return 0;
}

static void hold_store(al_store *s, void *done_ud)
{
	AL_ASSERT_INT_EQ(sem_init(&gate, 0, 0), 0);
	AL_ASSERT_INT_EQ(sem_init(&entered, 0, 0), 0);
	AL_ASSERT_INT_EQ(al_store_submit(s, wait_gate_fn, done_cb, done_ud), 0);
	while (sem_wait(&entered) < 0 && errno == EINTR)
		;
}

static void release_store(void)
{
	sem_post(&gate);
}

static int ins_a_fn(al_store_tx *tx, void *ud)
{
	return insert_simple(tx, "k", "A");
}

static int ins_b_fail_fn(al_store_tx *tx, void *ud)
{
	AL_ASSERT_INT_EQ(insert_simple(tx, "k", "B"), 0);
	/* A constraint error inside the group must not poison the neighbours. */
	return insert_simple(tx, "k", "A");
}

static int ins_c_fn(al_store_tx *tx, void *ud)
{
	/* Sees A: the earlier job of the same group, released into the transaction. */
	AL_ASSERT(exists(tx, "k", "A"));
	AL_ASSERT(!exists(tx, "k", "B"));
	return insert_simple(tx, "k", "C");
}

static int check_abc_fn(al_store_tx *tx, void *ud)
{
	AL_ASSERT(exists(tx, "k", "A"));
	AL_ASSERT(!exists(tx, "k", "B"));
	AL_ASSERT(exists(tx, "k", "C"));
	return 0;
}

AL_TEST(store_savepoint_isolation)
{
	struct fx f;
	struct done_rec r0 = {0}, ra = {0}, rb = {0}, rc = {0};
	uint64_t jobs = 0, txs = 0;

	fx_open(&f);
	/* Hold the store thread so the next three jobs queue up and form one group. */
	hold_store(f.s, &r0);
	AL_ASSERT_INT_EQ(al_store_submit(f.s, ins_a_fn, done_cb, &ra), 0);
	AL_ASSERT_INT_EQ(al_store_submit(f.s, ins_b_fail_fn, done_cb, &rb), 0);
	AL_ASSERT_INT_EQ(al_store_submit(f.s, ins_c_fn, done_cb, &rc), 0);
	release_store();
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(r0.called + ra.called + rb.called + rc.called, 4);
	AL_ASSERT_INT_EQ(ra.rc, 0);
	AL_ASSERT_INT_EQ(rb.rc, -EEXIST);
	AL_ASSERT_INT_EQ(rc.rc, 0);
	al_store_stats(f.s, &jobs, &txs);
	AL_ASSERT_INT_EQ(jobs, 4);
	/* The gate job alone, then A, B, C in one transaction. */
	AL_ASSERT_INT_EQ(txs, 2);
	AL_ASSERT_INT_EQ(al_store_call(f.s, check_abc_fn, NULL), 0);
	fx_close(&f);
	sem_destroy(&gate);
	sem_destroy(&entered);
}

/* ---- durability ---- */

static int put_fn(al_store_tx *tx, void *ud)
{
	AL_ASSERT_INT_EQ(insert_simple(tx, "agent", "kept"), 0);
	return append(tx, "s", "ev1", "user.message", NULL);
}

static int get_fn(al_store_tx *tx, void *ud)
{
	struct al_event e;

	AL_ASSERT(exists(tx, "agent", "kept"));
	AL_ASSERT_INT_EQ(al_store_event_get(tx, "s", "ev1", &e), 0);
	AL_ASSERT_STR_EQ(e.type, "user.message");
	al_event_clear(&e);
	return 0;
}

AL_TEST(store_reopen_keeps_data)
{
	struct fx f;
	char path[512];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_store_call(f.s, put_fn, NULL), 0);
	fx_close(&f);
	/* Migrations are not re-run over an existing schema. */
	fx_open(&f);
	AL_ASSERT_INT_EQ(al_store_call(f.s, get_fn, NULL), 0);
	fx_close(&f);

	/* WAL mode is persistent: another connection sees it. */
	snprintf(path, sizeof(path), "%s/airlock.db", al_test_tmpdir());
	AL_ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
	AL_ASSERT_INT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	AL_ASSERT_INT_EQ(sqlite3_step(st), SQLITE_ROW);
	AL_ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	AL_ASSERT_INT_EQ(
	    sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL), SQLITE_OK);
	AL_ASSERT_INT_EQ(sqlite3_step(st), SQLITE_ROW);
	AL_ASSERT_INT_EQ(sqlite3_column_int(st, 0), 1);
	AL_ASSERT_INT_EQ(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

AL_TEST(store_sqlite_sync_option)
{
	const struct al_store_backend_ops *ops = NULL;
	void *be = NULL;
	char err[256];

	unsetenv("AIRLOCK_SQLITE_SYNC");
	AL_ASSERT_INT_EQ(al_store_sqlite_open(al_test_tmpdir(), &ops, &be, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(ops->name, "sqlite");
	AL_ASSERT_INT_EQ(al_store_sqlite_synchronous(be), 1); /* NORMAL */
	ops->close(be);

	setenv("AIRLOCK_SQLITE_SYNC", "full", 1);
	AL_ASSERT_INT_EQ(al_store_sqlite_open(al_test_tmpdir(), &ops, &be, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_store_sqlite_synchronous(be), 2); /* FULL */
	ops->close(be);

	setenv("AIRLOCK_SQLITE_SYNC", "sometimes", 1);
	AL_ASSERT_INT_EQ(al_store_sqlite_open(al_test_tmpdir(), &ops, &be, err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT_NULL(be);
	AL_ASSERT(strstr(err, "AIRLOCK_SQLITE_SYNC") != NULL);
	unsetenv("AIRLOCK_SQLITE_SYNC");

	AL_ASSERT(al_store_sqlite_open("/nonexistent/dir", &ops, &be, err, sizeof(err)) < 0);
	AL_ASSERT_NULL(be);
	AL_ASSERT(strstr(err, "airlock.db") != NULL);
}

/* ---- the executor under load ---- */

#define NAPPENDS 10000

struct append_job {
	char id[AL_ID_MAX];
	int idx;
	int64_t seq;
	int *next_done; /* shared: the index the next completion must carry */
};

static int append_job_fn(al_store_tx *tx, void *ud)
{
	struct append_job *j = ud;

	return append(tx, "sess_load", j->id, "user.message", &j->seq);
}

static void append_done_cb(int rc, void *ud)
{
	struct append_job *j = ud;

	AL_ASSERT_INT_EQ(rc, 0);
	AL_ASSERT_INT_EQ(j->idx, *j->next_done);
	(*j->next_done)++;
}

static int check_load_fn(al_store_tx *tx, void *ud)
{
	struct append_job *jobs = ud;
	struct al_event *ev = NULL;
	struct al_event_query q = {.session_id = "sess_load"};
	size_t n = 0;

	AL_ASSERT_INT_EQ(al_store_event_list(tx, &q, &ev, &n, NULL), 0);
	AL_ASSERT_INT_EQ(n, NAPPENDS);
	for (size_t i = 0; i < n; i++) {
		AL_ASSERT_STR_EQ(ev[i].id, jobs[i].id);
		AL_ASSERT_INT_EQ(ev[i].seq, jobs[i].seq);
		if (i)
			AL_ASSERT(ev[i].seq > ev[i - 1].seq);
	}
	al_event_array_free(ev, n);
	return 0;
}

AL_TEST(store_append_10k_in_order)
{
	struct fx f;
	struct append_job *jobs = calloc(NAPPENDS, sizeof(*jobs));
	int next_done = 0;
	uint64_t njobs = 0, ntx = 0;

	AL_ASSERT_NOT_NULL(jobs);
	fx_open(&f);
	for (int i = 0; i < NAPPENDS; i++) {
		jobs[i].idx = i;
		jobs[i].next_done = &next_done;
		AL_ASSERT_INT_EQ(al_id_new("sevt", jobs[i].id, sizeof(jobs[i].id)), 0);
		AL_ASSERT_INT_EQ(al_store_submit(f.s, append_job_fn, append_done_cb, &jobs[i]), 0);
	}
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(next_done, NAPPENDS);
	AL_ASSERT_INT_EQ(al_store_call(f.s, check_load_fn, jobs), 0);
	al_store_stats(f.s, &njobs, &ntx);
	AL_ASSERT_INT_EQ(njobs, NAPPENDS + 1);
	/* Submitting faster than commits land must have produced groups. */
	AL_ASSERT(ntx < njobs);
	fx_close(&f);
	free(jobs);
}

AL_TEST(store_close_finishes_queued_work)
{
	struct fx f;
	struct done_rec r[50];

	memset(r, 0, sizeof(r));
	fx_open(&f);
	for (int i = 0; i < 50; i++)
		AL_ASSERT_INT_EQ(al_store_submit(f.s, ins_a_fn, done_cb, &r[i]), 0);
	al_store_close(f.s);
	AL_ASSERT_INT_EQ(al_store_submit(f.s, ins_a_fn, done_cb, &r[0]), -ESHUTDOWN);
	AL_ASSERT_INT_EQ(al_store_call(f.s, ins_a_fn, NULL), -ESHUTDOWN);
	AL_ASSERT_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(uv_loop_close(&f.loop), 0);
	for (int i = 0; i < 50; i++) {
		AL_ASSERT_INT_EQ(r[i].called, 1);
		AL_ASSERT_INT_EQ(r[i].rc, i == 0 ? 0 : -EEXIST);
	}
}

/* ---- allocation failures ---- */

static int alloc_work_fn(al_store_tx *tx, void *ud)
{
	struct al_doc *docs = NULL, got;
	struct al_event *ev = NULL;
	struct al_doc_query q = {.limit = 1};
	struct al_event_query eq = {.session_id = "s", .limit = 5};
	size_t n = 0;
	int rc;

	if ((rc = insert_simple(tx, "k", "x")) < 0 || (rc = insert_simple(tx, "k", "y")) < 0)
		return rc;
	if ((rc = append(tx, "s", "ev", "t", NULL)) < 0)
		return rc;
	if ((rc = al_store_doc_list(tx, "k", &q, &docs, &n, NULL)) < 0)
		return rc;
	al_doc_array_free(docs, n);
	if ((rc = al_store_doc_get(tx, "k", "y", &got)) < 0)
		return rc;
	al_doc_clear(&got);
	if ((rc = al_store_event_list(tx, &eq, &ev, &n, NULL)) < 0)
		return rc;
	al_event_array_free(ev, n);
	return 0;
}

AL_TEST(store_alloc_failures)
{
	int full_success = 0;

	for (long k = 0; k < 40; k++) {
		struct done_rec r = {0};
		uv_loop_t loop;
		al_store *s = NULL;
		char err[256];
		int rc;

		AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
		al_alloc_fail_after(k);
		rc = al_store_open_sqlite(&loop, al_test_tmpdir(), &s, err, sizeof(err));
		if (rc == 0) {
			rc = al_store_submit(s, alloc_work_fn, done_cb, &r);
			if (rc == 0)
				rc = al_store_call(s, alloc_work_fn, NULL);
			al_store_close(s);
		}
		AL_ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
		al_alloc_fail_after(-1);
		AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
		/* A run with enough allocations: the async job committed, the sync
		 * one (same ids) hit -EEXIST. Start over from an empty database. */
		if (r.called && r.rc == 0 && rc == -EEXIST)
			full_success++;
		if (r.called && r.rc < 0)
			AL_ASSERT(r.rc == -ENOMEM);
		{
			char path[512];
			const char *sfx[] = {"", "-wal", "-shm"};
			for (int i = 0; i < 3; i++) {
				snprintf(path, sizeof(path), "%s/airlock.db%s", al_test_tmpdir(),
					 sfx[i]);
				unlink(path);
			}
		}
	}
	AL_ASSERT(full_success > 0);
}

/*
 * ---- group failures ----
 *
 * Fault injection over the real SQLite backend: a wrapper ops table that
 * delegates every call and, when a job asks for it, makes the next COMMIT
 * fail or loses the transaction at the next RELEASE (as SQLite does by
 * itself on an I/O error). Only the executor is under test here.
 */
static const struct al_store_backend_ops *real_ops;
static _Atomic int fail_commit, lose_tx;

static int faulty_commit(void *be)
{
	if (fail_commit) {
		fail_commit = 0;
		return -EIO;
	}
	return real_ops->commit(be);
}

static int faulty_release(void *be)
{
	if (lose_tx) {
		lose_tx = 0;
		real_ops->rollback(be);
		return -ECANCELED;
	}
	return real_ops->release(be);
}

static int ins_b_poison_commit_fn(al_store_tx *tx, void *ud)
{
	fail_commit = 1;
	return insert_simple(tx, "k", "B");
}

static int ins_b_lose_tx_fn(al_store_tx *tx, void *ud)
{
	lose_tx = 1;
	return insert_simple(tx, "k", "B");
}

static int ins_c_plain_fn(al_store_tx *tx, void *ud)
{
	return insert_simple(tx, "k", "C");
}

struct want {
	int a, b, c;
};

static int check_want_fn(al_store_tx *tx, void *ud)
{
	struct want *w = ud;

	AL_ASSERT_INT_EQ(exists(tx, "k", "A"), w->a);
	AL_ASSERT_INT_EQ(exists(tx, "k", "B"), w->b);
	AL_ASSERT_INT_EQ(exists(tx, "k", "C"), w->c);
	return 0;
}

static void faulty_open(uv_loop_t *loop, struct al_store_backend_ops *faulty, al_store **s)
{
	void *be = NULL;
	char err[256];

	AL_ASSERT_INT_EQ(uv_loop_init(loop), 0);
	AL_ASSERT_INT_EQ(al_store_sqlite_open(al_test_tmpdir(), &real_ops, &be, err, sizeof(err)),
			 0);
	*faulty = *real_ops;
	faulty->commit = faulty_commit;
	faulty->release = faulty_release;
	AL_ASSERT_INT_EQ(al_store_start(loop, faulty, be, s), 0);
}

AL_TEST(store_group_commit_failure_fails_group)
{
	struct al_store_backend_ops faulty;
	struct done_rec r0 = {0}, ra = {0}, rb = {0}, rc = {0}, rd = {0};
	struct want w = {0, 0, 0};
	uv_loop_t loop;
	al_store *s = NULL;

	faulty_open(&loop, &faulty, &s);
	hold_store(s, &r0);
	AL_ASSERT_INT_EQ(al_store_submit(s, ins_a_fn, done_cb, &ra), 0);
	AL_ASSERT_INT_EQ(al_store_submit(s, ins_b_poison_commit_fn, done_cb, &rb), 0);
	AL_ASSERT_INT_EQ(al_store_submit(s, ins_c_plain_fn, done_cb, &rc), 0);
	release_store();
	AL_ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	/* None of the group is durable, so every job of it is told so. */
	AL_ASSERT_INT_EQ(ra.rc, -EIO);
	AL_ASSERT_INT_EQ(rb.rc, -EIO);
	AL_ASSERT_INT_EQ(rc.rc, -EIO);
	AL_ASSERT_INT_EQ(al_store_call(s, check_want_fn, &w), 0);
	/* The executor recovers: the next job commits. */
	AL_ASSERT_INT_EQ(al_store_submit(s, ins_a_fn, done_cb, &rd), 0);
	AL_ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(rd.rc, 0);
	al_store_close(s);
	AL_ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	sem_destroy(&gate);
	sem_destroy(&entered);
}

AL_TEST(store_lost_transaction_fails_group)
{
	struct al_store_backend_ops faulty;
	struct done_rec r0 = {0}, ra = {0}, rb = {0}, rc = {0};
	struct want w = {0, 0, 1};
	uv_loop_t loop;
	al_store *s = NULL;

	faulty_open(&loop, &faulty, &s);
	hold_store(s, &r0);
	AL_ASSERT_INT_EQ(al_store_submit(s, ins_a_fn, done_cb, &ra), 0);
	AL_ASSERT_INT_EQ(al_store_submit(s, ins_b_lose_tx_fn, done_cb, &rb), 0);
	AL_ASSERT_INT_EQ(al_store_submit(s, ins_c_plain_fn, done_cb, &rc), 0);
	release_store();
	AL_ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	/* A and B were in the lost transaction; C starts a fresh one. */
	AL_ASSERT_INT_EQ(ra.rc, -EIO);
	AL_ASSERT_INT_EQ(rb.rc, -EIO);
	AL_ASSERT_INT_EQ(rc.rc, 0);
	AL_ASSERT_INT_EQ(al_store_call(s, check_want_fn, &w), 0);
	al_store_close(s);
	AL_ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	sem_destroy(&gate);
	sem_destroy(&entered);
}

/* The database (and its WAL and shared-memory files) are owner-only. */
static int touch_fn(al_store_tx *tx, void *ud)
{
	return insert_simple(tx, "k", "perm");
}

AL_TEST(store_files_are_owner_only)
{
	struct fx f;
	struct stat st;
	char path[512];
	const char *sfx[] = {"", "-wal", "-shm"};
	mode_t old = umask(022);

	fx_open(&f);
	AL_ASSERT_INT_EQ(al_store_call(f.s, touch_fn, NULL), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/airlock.db%s", al_test_tmpdir(), sfx[i]);
		AL_ASSERT_INT_EQ(stat(path, &st), 0);
		AL_ASSERT_INT_EQ(st.st_mode & 077, 0);
	}
	fx_close(&f);
	umask(old);
}

/*
 * Every document and event operation with each allocation failing in turn
 * (the statement cache, result arrays, bodies, query text). The store is
 * reopened each round so the statement cache starts cold; a failed job is
 * rolled back, a successful one removes what it wrote.
 */
static int doc_ops_fn(al_store_tx *tx, void *ud)
{
	static const char *const states[] = {"a", "b", NULL};
	struct al_doc d, got, *docs = NULL;
	struct al_event ev, *evs = NULL;
	struct al_doc_query q = {.ref = "r", .states = states, .after_id = "0", .limit = 1};
	struct al_event_query eq = {.session_id = "s", .type = "t", .limit = 1};
	size_t n = 0;
	int64_t count = 0;
	int more = 0, rc;

	memset(&got, 0, sizeof(got));
	memset(&ev, 0, sizeof(ev));
	doc_set(&d, "k", "d1", "r", "", "a", 5, "{\"v\":1}");
	if ((rc = al_store_doc_insert(tx, &d)) < 0)
		goto done;
	d.body = "{\"v\":2}";
	if ((rc = al_store_doc_update(tx, &d, d.version)) < 0)
		goto done;
	if ((rc = al_store_doc_get(tx, "k", "d1", &got)) < 0)
		goto done;
	AL_ASSERT_STR_EQ(got.body, "{\"v\":2}");
	if ((rc = al_store_doc_list(tx, "k", &q, &docs, &n, &more)) < 0)
		goto done;
	AL_ASSERT_INT_EQ(n, 1);
	if ((rc = al_store_doc_count(tx, "k", &q, &count)) < 0)
		goto done;
	AL_ASSERT_INT_EQ(count, 1);
	if ((rc = append(tx, "s", "e1", "t", NULL)) < 0 ||
	    (rc = append(tx, "s", "e2", "t", NULL)) < 0)
		goto done;
	if ((rc = al_store_event_get(tx, "s", "e2", &ev)) < 0)
		goto done;
	eq.after_id = "e1";
	if ((rc = al_store_event_list(tx, &eq, &evs, &n, &more)) < 0)
		goto done;
	AL_ASSERT_INT_EQ(n, 1);
	if ((rc = al_store_event_count(tx, "s", &count)) < 0)
		goto done;
	if ((rc = al_store_event_delete_session(tx, "s")) < 0 ||
	    (rc = al_store_doc_delete(tx, "k", "d1")) < 0)
		goto done;
done:
	al_doc_clear(&got);
	al_doc_array_free(docs, docs ? 1 : 0);
	al_event_clear(&ev);
	al_event_array_free(evs, evs ? 1 : 0);
	return rc;
}

AL_TEST(store_doc_ops_alloc_failures)
{
	int ok = 0, failed = 0;

	for (long k = 0; k < 100 && ok < 2; k++) {
		struct fx f;
		int rc;

		fx_open(&f);
		al_alloc_fail_after(k);
		rc = al_store_call(f.s, doc_ops_fn, NULL);
		al_alloc_fail_after(-1);
		if (rc == 0) {
			ok++;
		} else {
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
			failed++;
		}
		/* Nothing half-done survives: the job was rolled back or cleaned up. */
		AL_ASSERT_INT_EQ(al_store_call(f.s, doc_ops_fn, NULL), 0);
		fx_close(&f);
	}
	AL_ASSERT_INT_EQ(ok, 2);
	AL_ASSERT(failed >= 8); /* the walk really went through the operations */
}
