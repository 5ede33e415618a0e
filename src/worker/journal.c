/*
 * journal.c - the worker's exactly-once journal on SQLite (see journal.h).
 *
 * Durability: WAL with synchronous=FULL. Every operation is one statement in
 * its own (implicit) transaction, so a commit costs one fdatasync of the WAL
 * file and nothing else; the database file itself is written only at
 * checkpoints. That is the cheapest durable scheme SQLite offers short of
 * batching calls, and a begin must be durable on its own before its call
 * runs, so there is nothing to batch. Measured on this project's VM disk
 * (ext4 on virtio): about 0.27 ms per begin at p50, 1-5 ms p99. finish and
 * answered commit without the fsync (about 0.04 ms; journal.h says why that
 * keeps the rule), and checkpoints run only inside begin/finish, so the loop
 * thread never waits for the disk (unless it waits for the mutex a begin
 * holds through its fsync).
 *
 * Integrity: quick_check at open (a damaged b-tree could hide a STARTED row)
 * and a SHA-256 per stored result checked on every read (SQLite has no page
 * checksums).
 *
 * Exactly once across processes too: begin is one INSERT OR IGNORE, atomic
 * under SQLite's write lock, so of two workers sharing a state dir only one
 * sees 0 for the same call.
 *
 * Threads: the connection is opened serialized (SQLITE_OPEN_FULLMUTEX), and a
 * mutex of our own makes each bind/step/reset sequence on the shared prepared
 * statements atomic (SQLite's mutex covers one API call, not a sequence).
 */
#include "worker/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"

#define JOURNAL_SCHEMA_VERSION 1
#define JOURNAL_BUSY_MS	       5000
/* SQLite's default auto-checkpoint threshold, in WAL frames (pages). */
#define JOURNAL_CKPT_FRAMES 1000

/*
 * A rowid table with a unique key rather than WITHOUT ROWID: results can be
 * tens of kilobytes, and WITHOUT ROWID keeps whole rows in the key's b-tree,
 * which more than doubled the file for 2 KB results.
 */
static const char schema_v1[] = "CREATE TABLE calls ("
				" session_id TEXT NOT NULL,"
				" tool_use_id TEXT NOT NULL,"
				" state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 3),"
				" work_id TEXT,"
				" name TEXT,"
				" input_sha256 TEXT,"
				" result_json TEXT,"
				/* SHA-256 of result_json: SQLite has no page checksums */
				" result_sha256 BLOB,"
				" started_ms INTEGER,"	/* NULL: answered without our running it */
				" finished_ms INTEGER," /* DONE */
				" answered_ms INTEGER," /* ANSWERED */
				" updated_ms INTEGER NOT NULL,"
				" UNIQUE (session_id, tool_use_id)"
				");"
				"CREATE INDEX calls_by_state ON calls (state, updated_ms);";

enum stmt_id {
	ST_BEGIN,
	ST_FINISH,
	ST_ANSWERED,
	ST_GET,
	ST_PRUNE,
	ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "INSERT OR IGNORE INTO calls (session_id, tool_use_id, state, work_id, name,"
		 " input_sha256, started_ms, updated_ms) VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?6)",
    [ST_FINISH] = "UPDATE calls SET state = 2, result_json = ?3, result_sha256 = ?5,"
		  " finished_ms = ?4,"
		  " updated_ms = ?4 WHERE session_id = ?1 AND tool_use_id = ?2 AND state = 1",
    [ST_ANSWERED] = "INSERT INTO calls (session_id, tool_use_id, state, answered_ms, updated_ms)"
		    " VALUES (?1, ?2, 3, ?3, ?3) ON CONFLICT (session_id, tool_use_id)"
		    " DO UPDATE SET state = 3, answered_ms = excluded.answered_ms,"
		    " updated_ms = excluded.updated_ms WHERE state <> 3",
    [ST_GET] = "SELECT state, result_json, result_sha256 FROM calls"
	       " WHERE session_id = ?1 AND tool_use_id = ?2",
    [ST_PRUNE] = "DELETE FROM calls WHERE state = 3 AND updated_ms < ?1",
};

/* One al_journal_begin waiting to be committed (group commit, below). */
struct begin_req {
	const char *session_id, *tool_use_id, *work_id, *name, *input_sha256;
	enum al_journal_state prev;
	int rc;
	int done; /* under qmu */
	struct begin_req *next;
};

struct al_journal {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	pthread_mutex_t mu;
	/* Group commit of begins: qmu guards the queue, leading and done flags. */
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct begin_req *queue, **qtail;
	int leading;	/* a thread is committing a batch of begins */
	int broken;	/* synchronous=FULL could not be restored: refuse begin/finish */
	int wal_frames; /* frames in the WAL after the last commit (wal_hook_cb) */
	char path[4096];
};

/*
 * SQLite's codes to errno. sqlite3_errmsg names tables and constraints,
 * never bound values, so logging it cannot leak a result or an id's content.
 */
static int map_err(struct al_journal *j, int rc, const char *what)
{
	int prim = rc & 0xff;

	al_error("journal", "%s: sqlite %s: %s (%d)", j->path, what, sqlite3_errmsg(j->db), rc);
	switch (prim) {
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_CANTOPEN:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return -EBADMSG;
	default:
		return -EIO;
	}
}

/* Words for open's err: the same classes, said for an operator. */
static void open_reason(struct al_journal *j, int rc, char *err, size_t errlen)
{
	int prim = rc & 0xff;

	if (prim == SQLITE_NOTADB || prim == SQLITE_CORRUPT)
		snprintf(err, errlen,
			 "journal %s is not a valid SQLite database (corrupt?): %s; move it "
			 "aside to start a new journal (calls it recorded may then run again)",
			 j->path, sqlite3_errstr(rc));
	else
		snprintf(err, errlen, "journal %s: %s", j->path,
			 j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
}

static int exec_sql(struct al_journal *j, const char *sql, char *err, size_t errlen)
{
	int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		open_reason(j, rc, err, errlen);
		return map_err(j, rc, "exec");
	}
	return 0;
}

static int query_int(struct al_journal *j, const char *sql, sqlite3_int64 *out, char *err,
		     size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		open_reason(j, rc == SQLITE_DONE ? SQLITE_ERROR : rc, err, errlen);
		rc = rc == SQLITE_DONE ? -EIO : map_err(j, rc, "query");
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Creates or checks the schema in one transaction (a crash mid-way leaves
 * the file as it was). The version lives in PRAGMA user_version; a newer one
 * is refused, since an older binary cannot know what a newer one recorded.
 */
static int migrate(struct al_journal *j, char *err, size_t errlen)
{
	sqlite3_int64 version = 0, tables = 0;
	char sql[64];
	int rc;

	if ((rc = exec_sql(j, "BEGIN IMMEDIATE", err, errlen)) < 0)
		return rc;
	if ((rc = query_int(j, "PRAGMA user_version", &version, err, errlen)) < 0)
		goto fail;
	if (version > JOURNAL_SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "journal %s has schema version %lld, newer than this binary knows (%d)",
			 j->path, (long long)version, JOURNAL_SCHEMA_VERSION);
		rc = -EPROTO;
		goto fail;
	}
	if (version == 0) {
		/* Version 0 is a new file; anything else in it is not ours to take over. */
		rc = query_int(j, "SELECT count(*) FROM sqlite_schema", &tables, err, errlen);
		if (rc < 0)
			goto fail;
		if (tables != 0) {
			snprintf(err, errlen,
				 "%s is an SQLite database but not an airlock journal; refusing "
				 "to use it",
				 j->path);
			rc = -EPROTO;
			goto fail;
		}
		if ((rc = exec_sql(j, schema_v1, err, errlen)) < 0)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", JOURNAL_SCHEMA_VERSION);
		if ((rc = exec_sql(j, sql, err, errlen)) < 0)
			goto fail;
	}
	return exec_sql(j, "COMMIT", err, errlen);
fail:
	sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/*
 * A damaged b-tree can hide a row, and a hidden STARTED row means a call
 * runs twice: check the structure once at open (linear in the file, which
 * prune keeps small; a few ms for thousands of calls) and refuse a damaged
 * journal instead of trusting it. Damage inside a row is caught per read by
 * the result checksum (get_locked).
 */
static int quick_check(struct al_journal *j, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *t;
	int rc = sqlite3_prepare_v2(j->db, "PRAGMA quick_check(1)", -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		open_reason(j, rc, err, errlen);
		rc = map_err(j, rc, "quick_check");
		goto done;
	}
	t = sqlite3_column_text(st, 0);
	if (t == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "journal %s: out of memory", j->path);
		goto done;
	}
	if (strcmp((const char *)t, "ok") != 0) {
		/*
		 * A page it could not read for want of memory or I/O comes back
		 * as a row ("unable to get the page. error code=7"), not as an
		 * error: that is not damage, and calling it corruption would
		 * send an operator to move a good journal aside.
		 */
		const char *ec = strstr((const char *)t, "error code=");
		int code = ec ? (int)strtol(ec + 11, NULL, 10) & 0xff : SQLITE_CORRUPT;

		al_error("journal", "%s: quick_check: %s", j->path, (const char *)t);
		if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) {
			open_reason(j, SQLITE_CORRUPT, err, errlen);
			rc = -EBADMSG;
		} else {
			snprintf(err, errlen, "journal %s: cannot check: %s", j->path,
				 sqlite3_errstr(code));
			rc = code == SQLITE_NOMEM ? -ENOMEM : code == SQLITE_BUSY ? -EBUSY : -EIO;
		}
		goto done;
	}
	rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

/* Makes the new file's directory entry durable: a journal that vanishes
 * with the directory after a power loss would let calls run again. */
static void sync_dir_of(const char *path)
{
	char dir[4096];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/*
 * Checkpoints are ours to place. SQLite's auto-checkpoint runs inside
 * whichever commit crosses the threshold, which could be an answered on the
 * loop thread, stalling all protocol I/O for the page copy and its fsyncs.
 * Instead the hook only counts, and begin/finish (tool threads, already
 * paying an fsync) run a passive checkpoint when the WAL is long.
 */
static int wal_hook_cb(void *ud, sqlite3 *db, const char *name, int frames)
{
	struct al_journal *j = ud;

	(void)db;
	(void)name;
	j->wal_frames = frames; /* under j->mu: every commit is made with it held */
	return SQLITE_OK;
}

static void maybe_checkpoint(struct al_journal *j)
{
	int rc;

	if (j->wal_frames < JOURNAL_CKPT_FRAMES)
		return;
	/* PASSIVE: never waits for readers in other processes; retried next time. */
	rc = sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc == SQLITE_OK)
		j->wal_frames = 0;
	else if ((rc & 0xff) != SQLITE_BUSY)
		al_warn("journal", "%s: checkpoint: %s (%d)", j->path, sqlite3_errmsg(j->db), rc);
}

int al_journal_open(const char *path, struct al_journal **out, char *err, size_t errlen)
{
	struct al_journal *j = NULL;
	const unsigned char *mode;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	int rc, fd, created;

	if (errlen)
		err[0] = '\0';
	*out = NULL;
	if (strlen(path) >= sizeof(j->path)) {
		snprintf(err, errlen, "journal path too long");
		return -ENAMETOOLONG;
	}
	if (!sqlite3_threadsafe()) {
		snprintf(err, errlen, "the SQLite library was built without thread support");
		return -ENOTSUP;
	}
	/*
	 * Create it owner-only (results can hold file contents); SQLite gives
	 * the -wal and -shm files the database file's mode.
	 */
	created = stat(path, &sb) != 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open journal %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
		al_warn("journal",
			"%s is accessible to other users (mode %03o); consider chmod 600", path,
			(unsigned)(sb.st_mode & 0777));
	close(fd);
	if (created)
		sync_dir_of(path);

	if ((j = al_calloc(1, sizeof(*j))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(j->path, sizeof(j->path), "%s", path);
	if ((rc = pthread_mutex_init(&j->mu, NULL)) != 0) {
		al_free(j);
		snprintf(err, errlen, "cannot create the journal mutex");
		return -rc;
	}
	pthread_mutex_init(&j->qmu, NULL);
	pthread_cond_init(&j->qcv, NULL);
	j->qtail = &j->queue;
	rc = sqlite3_open_v2(
	    path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		open_reason(j, rc, err, errlen);
		rc = j->db ? map_err(j, rc, "open") : -ENOMEM;
		goto fail;
	}
	sqlite3_extended_result_codes(j->db, 1);
	/* Before anything that can meet another process's lock. */
	sqlite3_busy_timeout(j->db, JOURNAL_BUSY_MS);

	/* journal_mode answers with the mode in force; anything but "wal" is a refusal. */
	rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
	if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
		if (rc != SQLITE_ROW) {
			open_reason(j, rc, err, errlen);
			rc = map_err(j, rc, "journal_mode");
		} else {
			snprintf(err, errlen, "cannot enable WAL journal mode on %s", path);
			rc = -EIO;
		}
		sqlite3_finalize(st);
		goto fail;
	}
	sqlite3_finalize(st);
	/*
	 * FULL: every commit fsyncs the WAL, so begin and finish survive a
	 * power loss, not only a crash of this process.
	 */
	if ((rc = exec_sql(j, "PRAGMA synchronous=FULL", err, errlen)) < 0)
		goto fail;
	/*
	 * A checkpoint rewinds the WAL but leaves the file at its high-water
	 * mark; cap what it keeps (a burst of large results would otherwise
	 * leave a large -wal file for good).
	 */
	if ((rc = exec_sql(j, "PRAGMA journal_size_limit=4194304", err, errlen)) < 0)
		goto fail;
	if ((rc = migrate(j, err, errlen)) < 0)
		goto fail;
	if ((rc = quick_check(j, err, errlen)) < 0)
		goto fail;
	/* Replaces SQLite's auto-checkpoint: see maybe_checkpoint. */
	sqlite3_wal_hook(j->db, wal_hook_cb, j);
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(j->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&j->st[i], NULL);
		if (rc != SQLITE_OK) {
			open_reason(j, rc, err, errlen);
			rc = map_err(j, rc, "prepare");
			goto fail;
		}
	}
	*out = j;
	return 0;
fail:
	al_journal_close(j);
	return rc;
}

void al_journal_close(struct al_journal *j)
{
	if (j == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(j->st[i]);
	/* The last connection to close checkpoints the WAL into the file. */
	if (j->db != NULL)
		sqlite3_close_v2(j->db);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->qcv);
	pthread_mutex_destroy(&j->qmu);
	al_free(j);
}

/*
 * Switches the connection's synchronous level. Not a kept prepared
 * statement: PRAGMA synchronous takes effect when it is compiled, not when
 * it is stepped, so it is compiled each time (microseconds, no I/O).
 */
static int set_sync(struct al_journal *j, int full)
{
	int rc = sqlite3_exec(j->db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
			      NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : map_err(j, rc, "synchronous");
}

int al_journal_synchronous(struct al_journal *j)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&j->mu);
	rc = sqlite3_prepare_v2(j->db, "PRAGMA synchronous", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : map_err(j, rc, "synchronous");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->mu);
	return rc;
}

/* Resets a statement after use, dropping its bindings (they point at the caller's strings). */
static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int bind_key(sqlite3_stmt *st, const char *session_id, const char *tool_use_id)
{
	if (sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, tool_use_id, -1, SQLITE_STATIC) != SQLITE_OK)
		return -ENOMEM;
	return 0;
}

/* Runs a write statement; returns the number of rows changed or a negative errno. */
static int step_write(struct al_journal *j, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return map_err(j, rc, what);
	return sqlite3_changes(j->db);
}

/* The state of a call, with the mutex held. 0 and AL_JOURNAL_NONE when unknown. */
static int get_locked(struct al_journal *j, const char *session_id, const char *tool_use_id,
		      enum al_journal_state *state, char **result_json)
{
	sqlite3_stmt *st = j->st[ST_GET];
	int rc, v;

	*state = AL_JOURNAL_NONE;
	if (result_json != NULL)
		*result_json = NULL;
	if ((rc = bind_key(st, session_id, tool_use_id)) < 0)
		goto done;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = 0;
		goto done;
	}
	if (rc != SQLITE_ROW) {
		rc = map_err(j, rc, "get");
		goto done;
	}
	/*
	 * SQLite does not checksum its pages: a damaged page can read back as
	 * plausible data. Check what we would act on (a state out of range,
	 * a result whose hash differs) and report corruption rather than run
	 * a call again or send a damaged result.
	 */
	v = sqlite3_column_int(st, 0);
	if (v < AL_JOURNAL_STARTED || v > AL_JOURNAL_ANSWERED) {
		rc = -EBADMSG;
		al_error("journal", "%s: a call has an invalid state %d (corrupt journal?)",
			 j->path, v);
		goto done;
	}
	if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
		const unsigned char *t = sqlite3_column_text(st, 1);
		size_t n = (size_t)sqlite3_column_bytes(st, 1);
		const void *want = sqlite3_column_blob(st, 2);
		unsigned char got[32];

		if (t == NULL) { /* SQLite's own allocation failed */
			rc = -ENOMEM;
			goto done;
		}
		if (want == NULL || sqlite3_column_bytes(st, 2) != 32 || al_sha256(t, n, got) < 0 ||
		    memcmp(got, want, 32) != 0) {
			rc = -EBADMSG;
			al_error("journal",
				 "%s: a stored result fails its checksum (corrupt journal?)",
				 j->path);
			goto done;
		}
		if (result_json != NULL &&
		    (*result_json = al_strndup((const char *)t, n)) == NULL) {
			rc = -ENOMEM;
			goto done;
		}
	}
	*state = (enum al_journal_state)v;
	rc = 0;
done:
	if (rc < 0)
		*state = AL_JOURNAL_NONE;
	stmt_done(st);
	return rc;
}

/*
 * Begin and finish must be durable: if an earlier answered could not put
 * synchronous back to FULL, try again, and refuse rather than commit unsynced.
 */
static int ensure_full(struct al_journal *j)
{
	if (!j->broken)
		return 0;
	if (set_sync(j, 1) < 0)
		return -EIO;
	j->broken = 0;
	return 0;
}

static int check_key(const char *session_id, const char *tool_use_id)
{
	return session_id != NULL && tool_use_id != NULL && session_id[0] && tool_use_id[0]
		   ? 0
		   : -EINVAL;
}

/* One begin's INSERT OR IGNORE inside the current transaction (mu held). */
static int begin_one(struct al_journal *j, struct begin_req *r)
{
	sqlite3_stmt *st = j->st[ST_BEGIN];
	int rc;

	r->prev = AL_JOURNAL_NONE;
	if ((rc = bind_key(st, r->session_id, r->tool_use_id)) < 0 ||
	    sqlite3_bind_text(st, 3, r->work_id, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, r->name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, r->input_sha256, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, al_now_ms()) != SQLITE_OK) {
		stmt_done(st);
		return -ENOMEM;
	}
	rc = step_write(j, st, "begin");
	stmt_done(st);
	if (rc == 0) {
		/* Known already: report how far it got, change nothing. */
		if ((rc = get_locked(j, r->session_id, r->tool_use_id, &r->prev, NULL)) < 0)
			return rc;
		return -EEXIST;
	}
	return rc < 0 ? rc : 0;
}

/*
 * Commits a batch of begins (mu held): one statement in its own implicit
 * transaction when alone, else one explicit transaction, so the whole
 * batch costs one fsync. A failure anywhere fails the whole batch (it is
 * rolled back, so none of its calls may run): fail closed.
 */
static void begin_batch(struct al_journal *j, struct begin_req *batch)
{
	struct begin_req *r;
	int rc = ensure_full(j), multi = batch->next != NULL;

	if (rc == 0 && multi)
		rc = sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
			 ? 0
			 : map_err(j, sqlite3_errcode(j->db), "begin batch");
	for (r = batch; r && rc == 0; r = r->next) {
		r->rc = begin_one(j, r);
		if (r->rc < 0 && r->rc != -EEXIST)
			rc = r->rc;
	}
	if (rc == 0 && multi && (rc = sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
		rc = map_err(j, rc, "commit batch");
	if (rc < 0) {
		if (!sqlite3_get_autocommit(j->db))
			sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
		for (r = batch; r; r = r->next) {
			r->rc = rc;
			r->prev = AL_JOURNAL_NONE;
		}
		return;
	}
	maybe_checkpoint(j);
}

/*
 * Group commit: a begin is queued; the first thread to find no batch in
 * progress leads: it takes every queued begin and commits them in one
 * transaction (one fsync) while holding mu. Begins arriving during that
 * fsync queue up for the next leader, so N sessions starting calls at once
 * pay about one or two fsyncs instead of N in a row.
 */
int al_journal_begin(struct al_journal *j, const char *session_id, const char *tool_use_id,
		     const char *work_id, const char *name, const char *input_sha256,
		     enum al_journal_state *prev)
{
	struct begin_req req = {.session_id = session_id,
				.tool_use_id = tool_use_id,
				.work_id = work_id,
				.name = name,
				.input_sha256 = input_sha256};
	struct begin_req *batch, *r;
	int rc;

	if (prev != NULL)
		*prev = AL_JOURNAL_NONE;
	if ((rc = check_key(session_id, tool_use_id)) < 0)
		return rc;
	pthread_mutex_lock(&j->qmu);
	*j->qtail = &req;
	j->qtail = &req.next;
	while (!req.done) {
		if (j->leading) {
			pthread_cond_wait(&j->qcv, &j->qmu);
			continue;
		}
		/* No batch in progress and ours still queued: lead the next one. */
		j->leading = 1;
		pthread_mutex_unlock(&j->qmu);
		pthread_mutex_lock(&j->mu);
		pthread_mutex_lock(&j->qmu);
		batch = j->queue;
		j->queue = NULL;
		j->qtail = &j->queue;
		pthread_mutex_unlock(&j->qmu);
		begin_batch(j, batch);
		pthread_mutex_unlock(&j->mu);
		pthread_mutex_lock(&j->qmu);
		for (r = batch; r; r = r->next)
			r->done = 1; /* r may be gone once its owner sees this */
		j->leading = 0;
		pthread_cond_broadcast(&j->qcv);
	}
	pthread_mutex_unlock(&j->qmu);
	if (prev != NULL)
		*prev = req.prev;
	return req.rc;
}

/*
 * Steps a write statement and commits it without the WAL fsync (mutex held).
 * Switching synchronous is a connection flag, no I/O; the mutex keeps a
 * begin on another thread from committing in between with NORMAL. The next
 * FULL commit (a begin) syncs the WAL, these frames included, and a power
 * cut loses only a suffix of the WAL (its frames are checksummed in order).
 */
static int step_nosync(struct al_journal *j, sqlite3_stmt *st, const char *what)
{
	int rc, nosync = set_sync(j, 0) == 0; /* if not, commit under FULL: slower, never wrong */

	rc = step_write(j, st, what);
	if (nosync && set_sync(j, 1) < 0) {
		/* This write stands; begin retries (ensure_full) or refuses. */
		al_error("journal", "%s: cannot restore synchronous=FULL", j->path);
		j->broken = 1;
	}
	return rc;
}

int al_journal_finish(struct al_journal *j, const char *session_id, const char *tool_use_id,
		      const char *result_json)
{
	sqlite3_stmt *st = j->st[ST_FINISH];
	enum al_journal_state state;
	unsigned char sum[32];
	int rc;

	if ((rc = check_key(session_id, tool_use_id)) < 0 || result_json == NULL)
		return -EINVAL;
	/* Outside the lock: a result can be large. */
	if (al_sha256(result_json, strlen(result_json), sum) < 0)
		return -ENOMEM;
	pthread_mutex_lock(&j->mu);
	if ((rc = ensure_full(j)) < 0)
		goto done;
	if ((rc = bind_key(st, session_id, tool_use_id)) < 0 ||
	    sqlite3_bind_text(st, 3, result_json, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, al_now_ms()) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 5, sum, sizeof(sum), SQLITE_STATIC) != SQLITE_OK) {
		rc = -ENOMEM;
		stmt_done(st);
		goto done;
	}
	/*
	 * Unsynced (journal.h): losing DONE in a power cut leaves the call
	 * STARTED, which is answered with the restarted error, never run again.
	 */
	rc = step_nosync(j, st, "finish");
	stmt_done(st);
	if (rc < 0)
		goto done;
	maybe_checkpoint(j);
	if (rc == 0) {
		if ((rc = get_locked(j, session_id, tool_use_id, &state, NULL)) < 0)
			goto done;
		rc = state == AL_JOURNAL_NONE ? -ENOENT : -EALREADY;
		goto done;
	}
	rc = 0;
done:
	pthread_mutex_unlock(&j->mu);
	return rc;
}

int al_journal_answered(struct al_journal *j, const char *session_id, const char *tool_use_id)
{
	sqlite3_stmt *st = j->st[ST_ANSWERED];
	int rc;

	if ((rc = check_key(session_id, tool_use_id)) < 0)
		return rc;
	pthread_mutex_lock(&j->mu);
	if ((rc = bind_key(st, session_id, tool_use_id)) < 0 ||
	    sqlite3_bind_int64(st, 3, al_now_ms()) != SQLITE_OK) {
		rc = -ENOMEM;
		stmt_done(st);
		goto done;
	}
	/*
	 * ANSWERED need not survive a power loss (the session's history shows
	 * the answer), and the loop thread calls this: commit it without the
	 * WAL fsync (about 0.4 ms here, p99 2 ms).
	 */
	rc = step_nosync(j, st, "answered");
	stmt_done(st);
	if (rc > 0)
		rc = 0;
done:
	pthread_mutex_unlock(&j->mu);
	return rc;
}

int al_journal_get(struct al_journal *j, const char *session_id, const char *tool_use_id,
		   enum al_journal_state *state, char **result_json)
{
	int rc;

	*state = AL_JOURNAL_NONE;
	if (result_json != NULL)
		*result_json = NULL;
	if ((rc = check_key(session_id, tool_use_id)) < 0)
		return rc;
	pthread_mutex_lock(&j->mu);
	rc = get_locked(j, session_id, tool_use_id, state, result_json);
	pthread_mutex_unlock(&j->mu);
	return rc;
}

int al_journal_prune(struct al_journal *j, int64_t max_age_ms)
{
	sqlite3_stmt *st = j->st[ST_PRUNE];
	int rc;

	if (max_age_ms < 0)
		return -EINVAL;
	pthread_mutex_lock(&j->mu);
	if (sqlite3_bind_int64(st, 1, al_now_ms() - max_age_ms) != SQLITE_OK)
		rc = -ENOMEM;
	else
		rc = step_write(j, st, "prune");
	stmt_done(st);
	pthread_mutex_unlock(&j->mu);
	return rc;
}
