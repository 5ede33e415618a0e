/*
 * db.c - the ticket store (db.h): schema, prepared statements, and the
 * rows turned into JSON.
 */
#include "db.h"

#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#define BUSY_MS	   5000
#define MAX_IDS	   100
#define NOW	   "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
#define TICKET_COL "id, title, body, priority, status, resolution, created_at, updated_at"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS tickets ("
    " id INTEGER PRIMARY KEY,"
    " title TEXT NOT NULL,"
    " body TEXT NOT NULL DEFAULT '',"
    " priority TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),"
    " status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),"
    " resolution TEXT,"
    " created_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS comments ("
    " id INTEGER PRIMARY KEY,"
    " ticket_id INTEGER NOT NULL REFERENCES tickets (id),"
    " body TEXT NOT NULL,"
    " created_at TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS comments_ticket ON comments (ticket_id, id);"
    "CREATE INDEX IF NOT EXISTS tickets_status ON tickets (status, id);";

enum {
	ST_GET,
	ST_COMMENTS,
	ST_SEARCH,
	ST_CREATE,
	ST_COMMENT,
	ST_COMMENT_GET,
	ST_TOUCH,
	ST_CLOSE,
	ST_STATUS,
	ST_OPEN_IDS,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_GET] = "SELECT " TICKET_COL " FROM tickets WHERE id = ?1",
    [ST_COMMENTS] = "SELECT id, body, created_at FROM comments WHERE ticket_id = ?1 ORDER BY id",
    /*
     * (Literals joined over lines are parenthesised for clang's
     * -Wstring-concatenation.) ?1 is a LIKE pattern built from the query with its own % _ \ escaped
     * (like_pattern), or NULL for any; ?2 a status or NULL for both.
     */
    [ST_SEARCH] = ("SELECT id, title, priority, status, updated_at FROM tickets"
		   " WHERE (?1 IS NULL OR title LIKE ?1 ESCAPE '\\' OR body LIKE ?1 ESCAPE '\\')"
		   " AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3"),
    [ST_CREATE] = ("INSERT INTO tickets (title, body, priority, status, created_at, updated_at)"
		   " VALUES (?1, ?2, ?3, 'open', " NOW ", " NOW ")"),
    /* Inserts nothing when the ticket does not exist: changes() tells. */
    [ST_COMMENT] = ("INSERT INTO comments (ticket_id, body, created_at)"
		    " SELECT id, ?2, " NOW " FROM tickets WHERE id = ?1"),
    [ST_COMMENT_GET] = "SELECT id, ticket_id, body, created_at FROM comments WHERE id = ?1",
    [ST_TOUCH] = "UPDATE tickets SET updated_at = " NOW " WHERE id = ?1",
    [ST_CLOSE] = ("UPDATE tickets SET status = 'closed', resolution = ?2, updated_at = " NOW
		  " WHERE id = ?1 AND status = 'open'"),
    [ST_STATUS] = "SELECT status FROM tickets WHERE id = ?1",
    [ST_OPEN_IDS] = ("SELECT id FROM tickets WHERE status = 'open'"
		     " AND CAST(id AS TEXT) LIKE ?1 || '%' ORDER BY id LIMIT ?2"),
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

struct tk_db {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
};

/* Logs a failure of SQLite (never the bound values: they are user data). */
static int fail_sql(struct tk_db *db, const char *what)
{
	al_error("tickets", "sqlite: %s: %s", what, sqlite3_errmsg(db->db));
	return sqlite3_errcode(db->db) == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

/* A statement is reset and its bindings cleared after every use. */
static void done_stmt(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no rows. */
static int run(struct tk_db *db, int which)
{
	sqlite3_stmt *st = db->st[which];
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail_sql(db, stmt_sql[which]);

	done_stmt(st);
	return rc;
}

static json_t *text_col(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	if (s == NULL)
		return json_null();
	return json_stringn((const char *)s, (size_t)sqlite3_column_bytes(st, i));
}

static int open_db(struct tk_db *db, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *mode = NULL;
	char *msg = NULL;
	int rc = sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
			 db->db ? sqlite3_errmsg(db->db) : "out of memory");
		return -EIO;
	}
	sqlite3_extended_result_codes(db->db, 1);
	sqlite3_busy_timeout(db->db, BUSY_MS);
	/* journal_mode answers with the mode in force: anything but "wal" is a refusal. */
	if (sqlite3_prepare_v2(db->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		mode = sqlite3_column_text(st, 0);
	if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
		snprintf(err, errlen, "%s: cannot use WAL mode: %s", path, sqlite3_errmsg(db->db));
		sqlite3_finalize(st);
		return -EIO;
	}
	sqlite3_finalize(st);
	/*
	 * NORMAL: in WAL mode a commit survives a crash of this process, and
	 * only a power cut can lose the last commits (never corrupt the file).
	 * A ticket tracker takes that for the throughput; FULL fsyncs each one.
	 */
	if (sqlite3_exec(db->db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", NULL, NULL,
			 &msg) != SQLITE_OK ||
	    sqlite3_exec(db->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(db->db));
		sqlite3_free(msg);
		return -EIO;
	}
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(db->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&db->st[i], NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "%s: prepare: %s", path, sqlite3_errmsg(db->db));
			return -EIO;
		}
	}
	return 0;
}

int tk_db_open(const char *path, struct tk_db **out, char *err, size_t errlen)
{
	struct tk_db *db = al_calloc(1, sizeof(*db));
	int rc;

	*out = NULL;
	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((rc = open_db(db, path, err, errlen)) < 0) {
		tk_db_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

void tk_db_close(struct tk_db *db)
{
	if (db == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(db->st[i]);
	/* The last connection to close checkpoints the WAL into the database file. */
	sqlite3_close_v2(db->db);
	al_free(db);
}

/* The comments of one ticket, oldest first. */
static int get_comments(struct tk_db *db, int64_t id, json_t *arr)
{
	sqlite3_stmt *st = db->st[ST_COMMENTS];
	int rc = 0, step;

	sqlite3_bind_int64(st, 1, id);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *c =
		    json_pack("{s:I, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0),
			      "body", text_col(st, 1), "created_at", text_col(st, 2));
		if (c == NULL || json_array_append_new(arr, c) < 0) {
			rc = -ENOMEM;
			break;
		}
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = fail_sql(db, "comments");
	done_stmt(st);
	return rc;
}

int tk_db_get(struct tk_db *db, int64_t id, json_t **ticket)
{
	sqlite3_stmt *st = db->st[ST_GET];
	json_t *t = NULL;
	int rc, step;

	*ticket = NULL;
	sqlite3_bind_int64(st, 1, id);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		t = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:[]}", "id",
			      (json_int_t)sqlite3_column_int64(st, 0), "title", text_col(st, 1),
			      "body", text_col(st, 2), "priority", text_col(st, 3), "status",
			      text_col(st, 4), "resolution", text_col(st, 5), "created_at",
			      text_col(st, 6), "updated_at", text_col(st, 7), "comments");
		rc = t ? 0 : -ENOMEM;
	} else {
		rc = step == SQLITE_DONE ? -ENOENT : fail_sql(db, "get");
	}
	/* Reset before the next statement: the two reads need not share a snapshot. */
	done_stmt(st);
	if (rc == 0)
		rc = get_comments(db, id, json_object_get(t, "comments"));
	if (rc == 0)
		*ticket = t;
	else
		json_decref(t);
	return rc;
}

/* "%<query with % _ \ escaped>%" for LIKE ... ESCAPE '\'. */
static char *like_pattern(const char *q)
{
	size_t n = strlen(q), o = 0;
	char *p = al_malloc(2 * n + 3);

	if (p == NULL)
		return NULL;
	p[o++] = '%';
	for (size_t i = 0; i < n; i++) {
		if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
			p[o++] = '\\';
		p[o++] = q[i];
	}
	p[o++] = '%';
	p[o] = '\0';
	return p;
}

int tk_db_search(struct tk_db *db, const char *query, const char *status, int limit,
		 json_t **summaries)
{
	sqlite3_stmt *st = db->st[ST_SEARCH];
	json_t *arr = json_array();
	char *pat = query && *query ? like_pattern(query) : NULL;
	int rc = arr && (pat || !query || !*query) ? 0 : -ENOMEM, step = SQLITE_DONE;

	*summaries = NULL;
	if (rc == 0) {
		sqlite3_bind_text(st, 1, pat, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, limit);
	}
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *s = json_pack("{s:I, s:o, s:o, s:o, s:o}", "id",
				      (json_int_t)sqlite3_column_int64(st, 0), "title",
				      text_col(st, 1), "priority", text_col(st, 2), "status",
				      text_col(st, 3), "updated_at", text_col(st, 4));
		if (s == NULL || json_array_append_new(arr, s) < 0)
			rc = -ENOMEM;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = fail_sql(db, "search");
	done_stmt(st);
	al_free(pat);
	if (rc == 0)
		*summaries = arr;
	else
		json_decref(arr);
	return rc;
}

int tk_db_create(struct tk_db *db, const char *title, const char *body, const char *priority,
		 json_t **ticket)
{
	sqlite3_stmt *st = db->st[ST_CREATE];
	int rc;

	*ticket = NULL;
	sqlite3_bind_text(st, 1, title, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, body ? body : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, priority, -1, SQLITE_STATIC);
	if ((rc = run(db, ST_CREATE)) < 0)
		return rc;
	/* One connection on one thread: the rowid is this insert's. */
	return tk_db_get(db, sqlite3_last_insert_rowid(db->db), ticket);
}

int tk_db_comment(struct tk_db *db, int64_t id, const char *body, json_t **comment)
{
	sqlite3_stmt *st = db->st[ST_COMMENT];
	int64_t cid = 0;
	int rc;

	*comment = NULL;
	/* The comment and the ticket's updated_at change together or not at all. */
	if ((rc = run(db, ST_BEGIN)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, body, -1, SQLITE_STATIC);
	if ((rc = run(db, ST_COMMENT)) < 0)
		goto fail;
	if (sqlite3_changes(db->db) == 0) {
		rc = -ENOENT;
		goto fail;
	}
	cid = sqlite3_last_insert_rowid(db->db);
	sqlite3_bind_int64(db->st[ST_TOUCH], 1, id);
	if ((rc = run(db, ST_TOUCH)) < 0 || (rc = run(db, ST_COMMIT)) < 0)
		goto fail;
	/* Read back: the comment as stored, with the time SQLite gave it. */
	st = db->st[ST_COMMENT_GET];
	sqlite3_bind_int64(st, 1, cid);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*comment = json_pack("{s:I, s:I, s:o, s:o}", "id", (json_int_t)cid, "ticket_id",
				     (json_int_t)sqlite3_column_int64(st, 1), "body",
				     text_col(st, 2), "created_at", text_col(st, 3));
		rc = *comment ? 0 : -ENOMEM;
	} else {
		rc = fail_sql(db, "comment read back");
	}
	done_stmt(st);
	return rc;
fail:
	/* Only after a successful BEGIN: a failed COMMIT leaves the transaction open too. */
	if (sqlite3_get_autocommit(db->db) == 0)
		run(db, ST_ROLLBACK);
	return rc;
}

int tk_db_close_ticket(struct tk_db *db, int64_t id, const char *resolution, json_t **ticket)
{
	sqlite3_stmt *st = db->st[ST_CLOSE];
	int rc;

	*ticket = NULL;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, resolution, -1, SQLITE_STATIC);
	if ((rc = run(db, ST_CLOSE)) < 0)
		return rc;
	if (sqlite3_changes(db->db) == 0) {
		/* Not open: closed already, or no such ticket. */
		sqlite3_stmt *q = db->st[ST_STATUS];
		sqlite3_bind_int64(q, 1, id);
		rc = sqlite3_step(q) == SQLITE_ROW ? -EALREADY : -ENOENT;
		done_stmt(q);
		return rc;
	}
	return tk_db_get(db, id, ticket);
}

int tk_db_open_ids(struct tk_db *db, const char *prefix, json_t **ids)
{
	sqlite3_stmt *st = db->st[ST_OPEN_IDS];
	json_t *arr = json_array();
	int rc = arr ? 0 : -ENOMEM, step = SQLITE_DONE;

	*ids = NULL;
	/* Only digits can prefix an id; anything else (a LIKE wildcard too) matches none. */
	for (const char *p = prefix; rc == 0 && p && *p; p++)
		if (*p < '0' || *p > '9')
			goto out;
	sqlite3_bind_text(st, 1, prefix ? prefix : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, MAX_IDS);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		char buf[24];
		snprintf(buf, sizeof(buf), "%lld", (long long)sqlite3_column_int64(st, 0));
		if (json_array_append_new(arr, json_string(buf)) < 0)
			rc = -ENOMEM;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = fail_sql(db, "open ids");
	done_stmt(st);
out:
	if (rc == 0)
		*ids = arr;
	else
		json_decref(arr);
	return rc;
}
