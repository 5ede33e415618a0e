/*
 * sqlite.c - the SQLite backend of the store (struct al_store_backend_ops).
 *
 * One connection, used only by the store thread (the executor serialises
 * every call), so the connection is opened with SQLITE_OPEN_NOMUTEX.
 * Fixed statements are prepared once and kept; the few statements whose
 * text depends on the query (doc_list, doc_count, event_list) are kept in a
 * small cache keyed by their SQL text. Every value is a bound parameter:
 * no caller string is ever pasted into SQL.
 *
 * Checkpoints run on a second thread with its own connection. SQLite's
 * automatic checkpoint runs inside the COMMIT that crosses 1000 WAL pages,
 * on the committing thread, and with synchronous=NORMAL it fsyncs the WAL
 * and the database: a stall of several milliseconds for whichever store
 * job happens to commit then, and for every job queued behind it (the
 * p90/p99 of event delivery). A PASSIVE checkpoint from another connection
 * copies the same frames without taking the write lock, so commits go on
 * meanwhile; the next writer restarts the WAL once it has all been copied.
 * When the checkpointer cannot start, the automatic checkpoint stays on.
 */
#include "store/store.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_DOC_INSERT,
	ST_DOC_UPDATE,
	ST_DOC_VERSION,
	ST_DOC_GET,
	ST_DOC_DELETE,
	ST_EVENT_APPEND,
	ST_EVENT_GET,
	ST_EVENT_SEQ,
	ST_EVENT_COUNT,
	ST_EVENT_DELETE_SESSION,
	ST_COUNT
};

/*
 * BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that
 * reads first and writes later can fail with SQLITE_BUSY at the upgrade when
 * another process (a backup, the sqlite3 shell) holds a read lock, and
 * busy_timeout cannot help there.
 */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT job",
    [ST_RELEASE] = "RELEASE job",
    [ST_ROLLBACK_TO] = "ROLLBACK TO job",
    [ST_DOC_INSERT] = "INSERT INTO docs(kind, id, ref, ref2, state, sort_ms, created_ms, "
		      "updated_ms, archived_ms, version, body) "
		      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10)",
    [ST_DOC_UPDATE] = "UPDATE docs SET ref = ?3, ref2 = ?4, state = ?5, sort_ms = ?6, "
		      "created_ms = CASE WHEN ?7 = 0 THEN created_ms ELSE ?7 END, "
		      "updated_ms = ?8, archived_ms = ?9, body = ?10, version = version + 1 "
		      "WHERE kind = ?1 AND id = ?2 AND (?11 = 0 OR version = ?11) "
		      "RETURNING version, created_ms",
    [ST_DOC_VERSION] = "SELECT version FROM docs WHERE kind = ?1 AND id = ?2",
    [ST_DOC_GET] = "SELECT kind, id, ref, ref2, state, sort_ms, created_ms, updated_ms, "
		   "archived_ms, version, body FROM docs WHERE kind = ?1 AND id = ?2",
    [ST_DOC_DELETE] = "DELETE FROM docs WHERE kind = ?1 AND id = ?2",
    [ST_EVENT_APPEND] = "INSERT INTO events(id, session_id, type, created_ms, body) "
			"VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_EVENT_GET] = "SELECT seq, id, session_id, type, created_ms, body FROM events "
		     "WHERE id = ?1 AND (?2 IS NULL OR session_id = ?2)",
    [ST_EVENT_SEQ] = "SELECT seq FROM events WHERE id = ?1 AND session_id = ?2",
    [ST_EVENT_COUNT] = "SELECT count(*) FROM events WHERE session_id = ?1",
    [ST_EVENT_DELETE_SESSION] = "DELETE FROM events WHERE session_id = ?1",
};

/*
 * Schema migrations, applied in order inside one transaction; the index of
 * the last applied one (1-based) is stored in schema_version. Append only:
 * never edit a migration that has shipped.
 */
static const char *const migrations[] = {
    "CREATE TABLE docs ("
    " kind TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " ref TEXT NOT NULL DEFAULT '',"
    " ref2 TEXT NOT NULL DEFAULT '',"
    " state TEXT NOT NULL DEFAULT '',"
    " sort_ms INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " archived_ms INTEGER NOT NULL DEFAULT 0,"
    " version INTEGER NOT NULL,"
    " body TEXT NOT NULL,"
    " PRIMARY KEY (kind, id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX docs_ref ON docs(kind, ref, id);"
    "CREATE INDEX docs_ref2 ON docs(kind, ref2, id);"
    "CREATE INDEX docs_state ON docs(kind, state, sort_ms);"
    /* AUTOINCREMENT: a seq is never reused, even after a session's
     * events are deleted, so seq stays a global strictly increasing order. */
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " session_id TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " body TEXT NOT NULL"
    ");"
    "CREATE INDEX events_session ON events(session_id, seq);",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
#define QCACHE_SIZE 32
#define MAX_STATES  32

struct qcache_entry {
	char *sql; /* owned */
	sqlite3_stmt *st;
};

#define CKPT_PAGES 1000 /* SQLite's default automatic checkpoint threshold */

/* The checkpoint thread (see the top). */
struct ckpt {
	sqlite3 *db; /* its own connection, used only by its thread */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int want; /* under mu: the WAL crossed CKPT_PAGES */
	int stop; /* under mu */
	int running;
};

struct sqlite_be {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	struct qcache_entry qc[QCACHE_SIZE];
	unsigned qc_next; /* round-robin eviction */
	struct ckpt ck;
};

/* ---- helpers ---- */

static int map_err(struct sqlite_be *be, int rc, const char *what)
{
	int prim = rc & 0xff;

	/* sqlite3_errmsg names tables and constraints, never bound values,
	 * so it cannot carry a document body (or a secret) into the log. */
	if (prim != SQLITE_CONSTRAINT)
		al_error("store", "sqlite %s: %s (%d)", what, sqlite3_errmsg(be->db), rc);
	switch (prim) {
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -E2BIG;
	default:
		return -EIO;
	}
}

static int stmt_get(struct sqlite_be *be, enum stmt_id id, sqlite3_stmt **out)
{
	int rc;

	if (be->st[id] == NULL) {
		rc = sqlite3_prepare_v3(be->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					&be->st[id], NULL);
		if (rc != SQLITE_OK)
			return map_err(be, rc, "prepare");
	}
	*out = be->st[id];
	return 0;
}

/* Resets a cached statement so it holds no lock and no borrowed bindings. */
static void stmt_done(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* Runs a statement that returns no rows. */
static int exec_fixed(struct sqlite_be *be, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = NULL;
	int rc = stmt_get(be, id, &st);

	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	rc = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : map_err(be, rc, what);
	stmt_done(st);
	return rc;
}

/* The dynamic statement cache: looks sql up, preparing on a miss. */
static int stmt_dyn(struct sqlite_be *be, const char *sql, sqlite3_stmt **out)
{
	struct qcache_entry *e;
	sqlite3_stmt *st = NULL;
	char *copy;
	int rc;

	for (unsigned i = 0; i < QCACHE_SIZE; i++) {
		if (be->qc[i].sql && strcmp(be->qc[i].sql, sql) == 0) {
			*out = be->qc[i].st;
			return 0;
		}
	}
	copy = al_strdup(sql);
	if (copy == NULL)
		return -ENOMEM;
	rc = sqlite3_prepare_v3(be->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		al_free(copy);
		return map_err(be, rc, "prepare");
	}
	e = &be->qc[be->qc_next++ % QCACHE_SIZE];
	sqlite3_finalize(e->st);
	al_free(e->sql);
	e->sql = copy;
	e->st = st;
	*out = st;
	return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	/* SQLITE_STATIC: every string outlives the step that reads it. */
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Copies a text column into a fixed buffer; -ERANGE if it does not fit. */
static int col_copy(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (t == NULL) {
		dst[0] = '\0';
		return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : -ENOMEM;
	}
	if ((size_t)n >= cap)
		return -ERANGE;
	memcpy(dst, t, (size_t)n);
	dst[n] = '\0';
	return 0;
}

static int col_dup(sqlite3_stmt *st, int col, char **out)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (t == NULL)
		return -ENOMEM; /* body is NOT NULL, so NULL here means SQLite's OOM */
	*out = al_strndup((const char *)t, (size_t)n);
	return *out ? 0 : -ENOMEM;
}

/* Column order of ST_DOC_GET and the doc_list query. */
static int row_to_doc(sqlite3_stmt *st, struct al_doc *d)
{
	int rc;

	memset(d, 0, sizeof(*d));
	if ((rc = col_copy(st, 0, d->kind, sizeof(d->kind))) < 0 ||
	    (rc = col_copy(st, 1, d->id, sizeof(d->id))) < 0 ||
	    (rc = col_copy(st, 2, d->ref, sizeof(d->ref))) < 0 ||
	    (rc = col_copy(st, 3, d->ref2, sizeof(d->ref2))) < 0 ||
	    (rc = col_copy(st, 4, d->state, sizeof(d->state))) < 0)
		return rc;
	d->sort_ms = sqlite3_column_int64(st, 5);
	d->created_ms = sqlite3_column_int64(st, 6);
	d->updated_ms = sqlite3_column_int64(st, 7);
	d->archived_ms = sqlite3_column_int64(st, 8);
	d->version = sqlite3_column_int64(st, 9);
	return col_dup(st, 10, &d->body);
}

/* Column order of ST_EVENT_GET and the event_list query. */
static int row_to_event(sqlite3_stmt *st, struct al_event *e)
{
	int rc;

	memset(e, 0, sizeof(*e));
	e->seq = sqlite3_column_int64(st, 0);
	if ((rc = col_copy(st, 1, e->id, sizeof(e->id))) < 0 ||
	    (rc = col_copy(st, 2, e->session_id, sizeof(e->session_id))) < 0 ||
	    (rc = col_copy(st, 3, e->type, sizeof(e->type))) < 0)
		return rc;
	e->created_ms = sqlite3_column_int64(st, 4);
	return col_dup(st, 5, &e->body);
}

/* Grows a result array by one slot (amortised doubling). */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	void *p;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap > SIZE_MAX / elem)
		return -ENOMEM;
	p = al_realloc(*arr, ncap * elem);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* Adapters so read_page and read_one serve docs, events and plain integers. */
static int read_doc_cb(sqlite3_stmt *st, void *elem)
{
	return row_to_doc(st, elem);
}

static void clear_doc_cb(void *elem)
{
	al_doc_clear(elem);
}

static int read_event_cb(sqlite3_stmt *st, void *elem)
{
	return row_to_event(st, elem);
}

static void clear_event_cb(void *elem)
{
	al_event_clear(elem);
}

static int read_int64_cb(sqlite3_stmt *st, void *elem)
{
	*(int64_t *)elem = sqlite3_column_int64(st, 0);
	return 0;
}

/*
 * Steps a query that names one row: reads it into elem (a half-read one is
 * cleared when clear is not NULL), -ENOENT when there is none.
 */
static int read_one(struct sqlite_be *be, sqlite3_stmt *st, int (*read)(sqlite3_stmt *, void *),
		    void (*clear)(void *), void *elem, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		rc = read(st, elem);
		if (rc < 0 && clear != NULL)
			clear(elem);
	} else if (rc == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = map_err(be, rc, what);
	}
	return rc;
}

/* Binds a page query's LIMIT: one row more than asked tells whether another page exists. */
static void bind_page_limit(sqlite3_stmt *st, int idx, size_t limit)
{
	sqlite3_bind_int64(st, idx, limit >= INT64_MAX ? INT64_MAX : (int64_t)limit + 1);
}

/*
 * Steps a list query into *arr, a growing array of elem-sized structs that
 * read fills one row at a time. With limit != 0 the query was bound through
 * bind_page_limit: the extra row is not read, it only sets *more. On return,
 * success or not, *arr holds *cnt read elements that the caller owns (and
 * frees with its typed array free); a half-read element is cleared here.
 */
static int read_page(struct sqlite_be *be, sqlite3_stmt *st, size_t limit, size_t elem,
		     int (*read)(sqlite3_stmt *, void *), void (*clear)(void *), const char *what,
		     void **arr, size_t *cnt, int *more)
{
	size_t cap = 0;
	int rc;

	*more = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char *slot;

		if (limit && *cnt == limit) {
			*more = 1;
			break;
		}
		if ((rc = grow(arr, &cap, *cnt, elem)) < 0)
			return rc;
		slot = (char *)*arr + *cnt * elem;
		if ((rc = read(st, slot)) < 0) {
			clear(slot);
			return rc;
		}
		(*cnt)++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return map_err(be, rc, what);
	return 0;
}

/* ---- transactions ---- */

static int be_begin(void *p)
{
	return exec_fixed(p, ST_BEGIN, "begin");
}

static int be_commit(void *p)
{
	return exec_fixed(p, ST_COMMIT, "commit");
}

static int be_rollback(void *p)
{
	struct sqlite_be *be = p;

	/* SQLite may already have rolled back on its own (I/O error, OOM). */
	if (sqlite3_get_autocommit(be->db))
		return 0;
	return exec_fixed(be, ST_ROLLBACK, "rollback");
}

static int be_savepoint(void *p)
{
	struct sqlite_be *be = p;

	/* Outside a transaction SAVEPOINT would silently start a new one. */
	if (sqlite3_get_autocommit(be->db))
		return -ECANCELED;
	return exec_fixed(be, ST_SAVEPOINT, "savepoint");
}

static int be_release(void *p)
{
	struct sqlite_be *be = p;

	if (sqlite3_get_autocommit(be->db))
		return -ECANCELED;
	return exec_fixed(be, ST_RELEASE, "release");
}

static int be_rollback_to(void *p)
{
	struct sqlite_be *be = p;
	int rc;

	if (sqlite3_get_autocommit(be->db))
		return -ECANCELED;
	/* ROLLBACK TO keeps the savepoint open; RELEASE drops it. */
	rc = exec_fixed(be, ST_ROLLBACK_TO, "rollback to");
	if (rc == 0)
		rc = exec_fixed(be, ST_RELEASE, "release");
	if (rc < 0 && sqlite3_get_autocommit(be->db))
		rc = -ECANCELED;
	return rc;
}

/* ---- documents ---- */

static void bind_doc(sqlite3_stmt *st, const struct al_doc *d)
{
	bind_text(st, 1, d->kind);
	bind_text(st, 2, d->id);
	bind_text(st, 3, d->ref);
	bind_text(st, 4, d->ref2);
	bind_text(st, 5, d->state);
	sqlite3_bind_int64(st, 6, d->sort_ms);
	sqlite3_bind_int64(st, 7, d->created_ms);
	sqlite3_bind_int64(st, 8, d->updated_ms);
	sqlite3_bind_int64(st, 9, d->archived_ms);
	bind_text(st, 10, d->body);
}

static int doc_valid(const struct al_doc *d)
{
	return d && d->kind[0] && d->id[0] && d->body && memchr(d->kind, '\0', sizeof(d->kind)) &&
	       memchr(d->id, '\0', sizeof(d->id)) && memchr(d->ref, '\0', sizeof(d->ref)) &&
	       memchr(d->ref2, '\0', sizeof(d->ref2)) && memchr(d->state, '\0', sizeof(d->state));
}

static int be_doc_insert(void *p, struct al_doc *d)
{
	struct sqlite_be *be = p;
	sqlite3_stmt *st = NULL;
	int rc;

	if (!doc_valid(d))
		return -EINVAL;
	if (d->created_ms == 0)
		d->created_ms = al_now_ms();
	if (d->updated_ms == 0)
		d->updated_ms = d->created_ms;
	if ((rc = stmt_get(be, ST_DOC_INSERT, &st)) < 0)
		return rc;
	bind_doc(st, d);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		d->version = 1;
		rc = 0;
	} else {
		rc = map_err(be, rc, "doc insert");
	}
	stmt_done(st);
	return rc;
}

static int be_doc_update(void *p, struct al_doc *d, int64_t expected_version)
{
	struct sqlite_be *be = p;
	sqlite3_stmt *st = NULL;
	int rc;

	if (!doc_valid(d) || expected_version < 0)
		return -EINVAL;
	/* 0 means "now" for updated_ms and "keep the stored one" for created_ms. */
	if (d->updated_ms == 0)
		d->updated_ms = al_now_ms();
	if ((rc = stmt_get(be, ST_DOC_UPDATE, &st)) < 0)
		return rc;
	bind_doc(st, d);
	sqlite3_bind_int64(st, 11, expected_version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		d->version = sqlite3_column_int64(st, 0);
		d->created_ms = sqlite3_column_int64(st, 1);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = 1; /* nothing matched: absent or stale, decided below */
	} else {
		rc = map_err(be, rc, "doc update");
		/* A unique constraint cannot fire on update: kind/id are the key. */
		if (rc == -EEXIST)
			rc = -EIO;
	}
	stmt_done(st);
	if (rc != 1)
		return rc;

	if ((rc = stmt_get(be, ST_DOC_VERSION, &st)) < 0)
		return rc;
	bind_text(st, 1, d->kind);
	bind_text(st, 2, d->id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = -ESTALE;
	else if (rc == SQLITE_DONE)
		rc = -ENOENT;
	else
		rc = map_err(be, rc, "doc version");
	stmt_done(st);
	return rc;
}

static int be_doc_get(void *p, const char *kind, const char *id, struct al_doc *out)
{
	struct sqlite_be *be = p;
	sqlite3_stmt *st = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (kind == NULL || id == NULL)
		return -EINVAL;
	if ((rc = stmt_get(be, ST_DOC_GET, &st)) < 0)
		return rc;
	bind_text(st, 1, kind);
	bind_text(st, 2, id);
	rc = read_one(be, st, read_doc_cb, clear_doc_cb, out, "doc get");
	stmt_done(st);
	return rc;
}

static int be_doc_delete(void *p, const char *kind, const char *id)
{
	struct sqlite_be *be = p;
	sqlite3_stmt *st = NULL;
	int rc;

	if (kind == NULL || id == NULL)
		return -EINVAL;
	if ((rc = stmt_get(be, ST_DOC_DELETE, &st)) < 0)
		return rc;
	bind_text(st, 1, kind);
	bind_text(st, 2, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		rc = sqlite3_changes(be->db) > 0 ? 0 : -ENOENT;
	else
		rc = map_err(be, rc, "doc delete");
	stmt_done(st);
	return rc;
}

/*
 * Builds the WHERE clause of a doc query; bind_doc_query binds the values
 * afterwards in the same order. *nstates gets the length of q->states.
 */
static int doc_where(al_buf *sql, const struct al_doc_query *q, int *nstates)
{
	int rc = al_buf_append_str(sql, " WHERE kind = ?");

	*nstates = 0;
	if (rc < 0)
		return rc;
	if (q->ref && (rc = al_buf_append_str(sql, " AND ref = ?")) < 0)
		return rc;
	if (q->ref2 && (rc = al_buf_append_str(sql, " AND ref2 = ?")) < 0)
		return rc;
	if (q->states) {
		while (q->states[*nstates])
			if (++*nstates > MAX_STATES)
				return -EINVAL;
		if (*nstates == 0) {
			/* An empty list matches nothing (NULL is the "any" form). */
			rc = al_buf_append_str(sql, " AND 0");
		} else {
			rc = al_buf_append_str(sql, " AND state IN (?");
			for (int i = 1; i < *nstates && rc == 0; i++)
				rc = al_buf_append_str(sql, ", ?");
			if (rc == 0)
				rc = al_buf_append_str(sql, ")");
		}
		if (rc < 0)
			return rc;
	}
	if (!q->include_archived && (rc = al_buf_append_str(sql, " AND archived_ms = 0")) < 0)
		return rc;
	if (q->sort_ms_before > 0 && (rc = al_buf_append_str(sql, " AND sort_ms < ?")) < 0)
		return rc;
	if (q->after_id && (rc = al_buf_append_str(sql, " AND id > ?")) < 0)
		return rc;
	if (q->before_id && (rc = al_buf_append_str(sql, " AND id < ?")) < 0)
		return rc;
	return 0;
}

static int bind_doc_query(sqlite3_stmt *st, const char *kind, const struct al_doc_query *q,
			  int nstates)
{
	int i = 1;

	bind_text(st, i++, kind);
	if (q->ref)
		bind_text(st, i++, q->ref);
	if (q->ref2)
		bind_text(st, i++, q->ref2);
	for (int k = 0; k < nstates; k++)
		bind_text(st, i++, q->states[k]);
	if (q->sort_ms_before > 0)
		sqlite3_bind_int64(st, i++, q->sort_ms_before);
	if (q->after_id)
		bind_text(st, i++, q->after_id);
	if (q->before_id)
		bind_text(st, i++, q->before_id);
	return i;
}

static int be_doc_list(void *p, const char *kind, const struct al_doc_query *q, struct al_doc **out,
		       size_t *n, int *has_more)
{
	struct sqlite_be *be = p;
	al_buf sql = {0};
	sqlite3_stmt *st = NULL;
	struct al_doc *arr = NULL;
	static const struct al_doc_query all = {0};
	size_t cnt = 0, limit;
	int rc, nstates, more = 0, idx;

	q = q ? q : &all; /* NULL: the zero query (which still skips archived docs) */
	limit = q->limit;

	*out = NULL;
	*n = 0;
	if (has_more)
		*has_more = 0;
	if (kind == NULL)
		return -EINVAL;
	rc = al_buf_append_str(&sql, "SELECT kind, id, ref, ref2, state, sort_ms, created_ms, "
				     "updated_ms, archived_ms, version, body FROM docs");
	if (rc == 0)
		rc = doc_where(&sql, q, &nstates);
	if (rc == 0)
		rc = al_buf_append_str(&sql,
				       q->descending ? " ORDER BY id DESC" : " ORDER BY id ASC");
	if (rc == 0 && limit)
		rc = al_buf_append_str(&sql, " LIMIT ?");
	if (rc < 0 || (rc = stmt_dyn(be, sql.data, &st)) < 0)
		goto done;
	idx = bind_doc_query(st, kind, q, nstates);
	if (limit)
		bind_page_limit(st, idx, limit);
	if ((rc = read_page(be, st, limit, sizeof(*arr), read_doc_cb, clear_doc_cb, "doc list",
			    (void **)&arr, &cnt, &more)) < 0)
		goto done;
	*out = arr;
	*n = cnt;
	arr = NULL;
	if (has_more)
		*has_more = more;
done:
	stmt_done(st);
	if (arr)
		al_doc_array_free(arr, cnt);
	al_buf_free(&sql);
	return rc;
}

static int be_doc_count(void *p, const char *kind, const struct al_doc_query *q, int64_t *count)
{
	struct sqlite_be *be = p;
	al_buf sql = {0};
	sqlite3_stmt *st = NULL;
	static const struct al_doc_query all = {0};
	int rc, nstates;

	q = q ? q : &all;
	*count = 0;
	if (kind == NULL)
		return -EINVAL;
	rc = al_buf_append_str(&sql, "SELECT count(*) FROM docs");
	if (rc == 0)
		rc = doc_where(&sql, q, &nstates);
	if (rc < 0 || (rc = stmt_dyn(be, sql.data, &st)) < 0)
		goto done;
	bind_doc_query(st, kind, q, nstates);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*count = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = map_err(be, rc, "doc count");
	}
done:
	stmt_done(st);
	al_buf_free(&sql);
	return rc;
}

/* ---- events ---- */

static int event_valid(const struct al_event *e)
{
	return e && e->id[0] && e->session_id[0] && e->body && memchr(e->id, '\0', sizeof(e->id)) &&
	       memchr(e->session_id, '\0', sizeof(e->session_id)) &&
	       memchr(e->type, '\0', sizeof(e->type));
}

static int be_event_append(void *p, struct al_event *e)
{
	struct sqlite_be *be = p;
	sqlite3_stmt *st = NULL;
	int rc;

	if (!event_valid(e))
		return -EINVAL;
	if (e->created_ms == 0)
		e->created_ms = al_now_ms();
	if ((rc = stmt_get(be, ST_EVENT_APPEND, &st)) < 0)
		return rc;
	bind_text(st, 1, e->id);
	bind_text(st, 2, e->session_id);
	bind_text(st, 3, e->type);
	sqlite3_bind_int64(st, 4, e->created_ms);
	bind_text(st, 5, e->body);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		e->seq = sqlite3_last_insert_rowid(be->db);
		rc = 0;
	} else {
		rc = map_err(be, rc, "event append");
	}
	stmt_done(st);
	return rc;
}

static int be_event_get(void *p, const char *session_id, const char *id, struct al_event *out)
{
	struct sqlite_be *be = p;
	sqlite3_stmt *st = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (id == NULL)
		return -EINVAL;
	if ((rc = stmt_get(be, ST_EVENT_GET, &st)) < 0)
		return rc;
	bind_text(st, 1, id);
	if (session_id)
		bind_text(st, 2, session_id);
	rc = read_one(be, st, read_event_cb, clear_event_cb, out, "event get");
	stmt_done(st);
	return rc;
}

/* Resolves an event id of a session to its seq; -ENOENT if unknown there. */
static int event_seq(struct sqlite_be *be, const char *session_id, const char *id, int64_t *seq)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = stmt_get(be, ST_EVENT_SEQ, &st)) < 0)
		return rc;
	bind_text(st, 1, id);
	bind_text(st, 2, session_id);
	rc = read_one(be, st, read_int64_cb, NULL, seq, "event seq");
	stmt_done(st);
	return rc;
}

static int be_event_list(void *p, const struct al_event_query *q, struct al_event **out, size_t *n,
			 int *has_more)
{
	struct sqlite_be *be = p;
	al_buf sql = {0};
	sqlite3_stmt *st = NULL;
	struct al_event *arr = NULL;
	size_t cnt = 0;
	int64_t after_seq = 0, before_seq = 0;
	int rc, more = 0, i = 1;

	*out = NULL;
	*n = 0;
	if (has_more)
		*has_more = 0;
	if (q == NULL || q->session_id == NULL)
		return -EINVAL;
	if (q->after_id && (rc = event_seq(be, q->session_id, q->after_id, &after_seq)) < 0)
		return rc;
	if (q->before_id && (rc = event_seq(be, q->session_id, q->before_id, &before_seq)) < 0)
		return rc;

	rc = al_buf_append_str(&sql, "SELECT seq, id, session_id, type, created_ms, body "
				     "FROM events WHERE session_id = ?");
	if (rc == 0 && q->type)
		rc = al_buf_append_str(&sql, " AND type = ?");
	if (rc == 0 && q->after_id)
		rc = al_buf_append_str(&sql, " AND seq > ?");
	if (rc == 0 && q->before_id)
		rc = al_buf_append_str(&sql, " AND seq < ?");
	if (rc == 0)
		rc = al_buf_append_str(&sql,
				       q->descending ? " ORDER BY seq DESC" : " ORDER BY seq ASC");
	if (rc == 0 && q->limit)
		rc = al_buf_append_str(&sql, " LIMIT ?");
	if (rc < 0 || (rc = stmt_dyn(be, sql.data, &st)) < 0)
		goto done;
	bind_text(st, i++, q->session_id);
	if (q->type)
		bind_text(st, i++, q->type);
	if (q->after_id)
		sqlite3_bind_int64(st, i++, after_seq);
	if (q->before_id)
		sqlite3_bind_int64(st, i++, before_seq);
	if (q->limit)
		bind_page_limit(st, i++, q->limit);
	if ((rc = read_page(be, st, q->limit, sizeof(*arr), read_event_cb, clear_event_cb,
			    "event list", (void **)&arr, &cnt, &more)) < 0)
		goto done;
	*out = arr;
	*n = cnt;
	arr = NULL;
	if (has_more)
		*has_more = more;
done:
	stmt_done(st);
	if (arr)
		al_event_array_free(arr, cnt);
	al_buf_free(&sql);
	return rc;
}

static int be_event_count(void *p, const char *session_id, int64_t *count)
{
	struct sqlite_be *be = p;
	sqlite3_stmt *st = NULL;
	int rc;

	*count = 0;
	if (session_id == NULL)
		return -EINVAL;
	if ((rc = stmt_get(be, ST_EVENT_COUNT, &st)) < 0)
		return rc;
	bind_text(st, 1, session_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*count = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = map_err(be, rc, "event count");
	}
	stmt_done(st);
	return rc;
}

static int be_event_delete_session(void *p, const char *session_id)
{
	struct sqlite_be *be = p;
	sqlite3_stmt *st = NULL;
	int rc;

	if (session_id == NULL)
		return -EINVAL;
	if ((rc = stmt_get(be, ST_EVENT_DELETE_SESSION, &st)) < 0)
		return rc;
	bind_text(st, 1, session_id);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : map_err(be, rc, "event delete");
	stmt_done(st);
	return rc;
}

/* ---- open / close ---- */

/* ---- checkpoints ---- */

static void *ckpt_thread(void *arg)
{
	struct ckpt *ck = arg;

	pthread_mutex_lock(&ck->mu);
	for (;;) {
		while (!ck->want && !ck->stop)
			pthread_cond_wait(&ck->cv, &ck->mu);
		if (ck->stop)
			break;
		ck->want = 0;
		pthread_mutex_unlock(&ck->mu);
		/* PASSIVE: never waits for, nor blocks, the writer. Busy is fine: next time. */
		sqlite3_wal_checkpoint_v2(ck->db, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&ck->mu);
	}
	pthread_mutex_unlock(&ck->mu);
	return NULL;
}

/* After each commit on the store connection (store thread): wake the checkpointer. */
static int wal_hook_cb(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct ckpt *ck = arg;

	if (pages >= CKPT_PAGES) {
		pthread_mutex_lock(&ck->mu);
		ck->want = 1;
		pthread_cond_signal(&ck->cv);
		pthread_mutex_unlock(&ck->mu);
	}
	return SQLITE_OK;
}

/* Starts the checkpointer; on any failure the automatic checkpoint stays in force. */
static void ckpt_start(struct sqlite_be *be, const char *path, int timeout)
{
	struct ckpt *ck = &be->ck;
	sigset_t all, old;
	int rc;

	if (sqlite3_open_v2(path, &ck->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(ck->db, timeout);
	if (pthread_mutex_init(&ck->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&ck->cv, NULL) != 0) {
		pthread_mutex_destroy(&ck->mu);
		goto fail;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&ck->thread, NULL, ckpt_thread, ck);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&ck->cv);
		pthread_mutex_destroy(&ck->mu);
		goto fail;
	}
	ck->running = 1;
	/* Replaces the automatic checkpoint (sqlite3_wal_autocheckpoint is a wal hook). */
	sqlite3_wal_hook(be->db, wal_hook_cb, ck);
	return;
fail:
	al_warn("store", "no checkpoint thread: checkpoints stay inside commits");
	sqlite3_close(ck->db);
	ck->db = NULL;
}

static void ckpt_stop(struct sqlite_be *be)
{
	struct ckpt *ck = &be->ck;

	if (ck->running) {
		pthread_mutex_lock(&ck->mu);
		ck->stop = 1;
		pthread_cond_signal(&ck->cv);
		pthread_mutex_unlock(&ck->mu);
		pthread_join(ck->thread, NULL);
		pthread_cond_destroy(&ck->cv);
		pthread_mutex_destroy(&ck->mu);
		ck->running = 0;
	}
	sqlite3_close(ck->db);
	ck->db = NULL;
}

static void be_close(void *p)
{
	struct sqlite_be *be = p;

	if (be == NULL)
		return;
	/* First: the store connection's close below then checkpoints as the last one. */
	ckpt_stop(be);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(be->st[i]);
	for (int i = 0; i < QCACHE_SIZE; i++) {
		sqlite3_finalize(be->qc[i].st);
		al_free(be->qc[i].sql);
	}
	/* Closing the last connection checkpoints the WAL into the main file. */
	sqlite3_close(be->db);
	al_free(be);
}

static const struct al_store_backend_ops sqlite_ops = {
    .name = "sqlite",
    .begin = be_begin,
    .commit = be_commit,
    .rollback = be_rollback,
    .doc_insert = be_doc_insert,
    .doc_update = be_doc_update,
    .doc_get = be_doc_get,
    .doc_delete = be_doc_delete,
    .doc_list = be_doc_list,
    .doc_count = be_doc_count,
    .event_append = be_event_append,
    .event_get = be_event_get,
    .event_list = be_event_list,
    .event_count = be_event_count,
    .event_delete_session = be_event_delete_session,
    .close = be_close,
    .savepoint = be_savepoint,
    .release = be_release,
    .rollback_to = be_rollback_to,
};

/* Runs one PRAGMA or DDL text; err gets SQLite's reason. */
static int exec_sql(struct sqlite_be *be, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(be->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return map_err(be, rc, "exec");
	}
	return 0;
}

/* Reads a one-value query as an integer or text. */
static int query_int(struct sqlite_be *be, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(be->db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = map_err(be, rc, "query");
	}
	sqlite3_finalize(st);
	return rc;
}

static int migrate(struct sqlite_be *be, char *err, size_t errlen)
{
	int64_t version = 0;
	char sql[96];
	int rc;

	/* One transaction: a crash mid-migration leaves the old schema intact. */
	if ((rc = exec_sql(be, "BEGIN IMMEDIATE", err, errlen)) < 0)
		return rc;
	rc = exec_sql(be, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
		      err, errlen);
	if (rc < 0)
		goto fail;
	rc = query_int(be, "SELECT version FROM schema_version", &version);
	if (rc == -ENOENT) {
		rc = exec_sql(be, "INSERT INTO schema_version(version) VALUES(0)", err, errlen);
		version = 0;
	}
	if (rc < 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "sqlite: cannot read the schema version");
		goto fail;
	}
	if (version > NMIGRATIONS) {
		snprintf(err, errlen,
			 "database schema version %lld is newer than this binary knows (%d)",
			 (long long)version, NMIGRATIONS);
		rc = -EPROTO;
		goto fail;
	}
	for (int i = (int)version; i < NMIGRATIONS; i++)
		if ((rc = exec_sql(be, migrations[i], err, errlen)) < 0)
			goto fail;
	snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", NMIGRATIONS);
	if ((rc = exec_sql(be, sql, err, errlen)) < 0)
		goto fail;
	return exec_sql(be, "COMMIT", err, errlen);
fail:
	sqlite3_exec(be->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int al_store_sqlite_open_opts(const char *dir, const struct al_store_sqlite_opts *opts,
			      const struct al_store_backend_ops **ops, void **bep, char *err,
			      size_t errlen)
{
	struct sqlite_be *be = NULL;
	char path[4096], pragma[64];
	const unsigned char *mode;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	int rc, n, fd, timeout = opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;

	if (errlen)
		err[0] = '\0';
	*bep = NULL;
	*ops = NULL;
	n = snprintf(path, sizeof(path), "%s/airlock.db", dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(err, errlen, "store directory path too long");
		return -ENAMETOOLONG;
	}
	/*
	 * The database holds every session's conversation: create it readable
	 * by its owner only (SQLite would use 0644 minus the umask). SQLite
	 * gives the -wal and -shm files the mode of the database file.
	 */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
		al_warn("store", "%s is accessible to other users (mode %03o); consider chmod 600",
			path, (unsigned)(sb.st_mode & 0777));
	close(fd);
	be = al_calloc(1, sizeof(*be));
	if (be == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* NOMUTEX: only the store thread touches this connection. */
	rc = sqlite3_open_v2(
	    path, &be->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path,
			 be->db ? sqlite3_errmsg(be->db) : sqlite3_errstr(rc));
		rc = be->db ? map_err(be, rc, "open") : -ENOMEM;
		goto fail;
	}
	sqlite3_extended_result_codes(be->db, 1);
	/* Must be set before anything that can meet a lock held by another process. */
	sqlite3_busy_timeout(be->db, timeout);

	/* journal_mode answers with the mode in force; "memory" etc. means WAL was refused. */
	rc = sqlite3_prepare_v2(be->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
	if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
		snprintf(err, errlen, "cannot enable WAL journal mode on %s", path);
		sqlite3_finalize(st);
		rc = -EIO;
		goto fail;
	}
	sqlite3_finalize(st);

	/*
	 * In WAL mode, synchronous=NORMAL fsyncs only at checkpoints, not at
	 * every commit. A committed transaction is in the WAL file (the OS
	 * page cache) when COMMIT returns, so it survives a crash of this
	 * process; a power loss or kernel crash can lose the last few commits,
	 * but never corrupts the database. FULL fsyncs the WAL on every commit
	 * and survives power loss, at a large cost in commits per second.
	 */
	snprintf(pragma, sizeof(pragma), "PRAGMA synchronous=%s",
		 opts && opts->sync_full ? "FULL" : "NORMAL");
	if ((rc = exec_sql(be, pragma, err, errlen)) < 0 ||
	    (rc = exec_sql(be, "PRAGMA foreign_keys=ON", err, errlen)) < 0)
		goto fail;
	if ((rc = migrate(be, err, errlen)) < 0)
		goto fail;
	ckpt_start(be, path, timeout);
	*ops = &sqlite_ops;
	*bep = be;
	return 0;
fail:
	be_close(be);
	return rc;
}

int al_store_sqlite_open(const char *dir, const struct al_store_backend_ops **ops, void **be,
			 char *err, size_t errlen)
{
	struct al_store_sqlite_opts opts = {0};
	const char *sync = getenv("AIRLOCK_SQLITE_SYNC");

	if (sync && sync[0]) {
		if (strcasecmp(sync, "full") == 0) {
			opts.sync_full = 1;
		} else if (strcasecmp(sync, "normal") != 0) {
			if (errlen)
				snprintf(err, errlen, "AIRLOCK_SQLITE_SYNC must be normal or full");
			*ops = NULL;
			*be = NULL;
			return -EINVAL;
		}
	}
	return al_store_sqlite_open_opts(dir, &opts, ops, be, err, errlen);
}

int al_store_sqlite_synchronous(void *p)
{
	struct sqlite_be *be = p;
	int64_t v = -1;
	int rc = query_int(be, "PRAGMA synchronous", &v);

	return rc < 0 ? rc : (int)v;
}
