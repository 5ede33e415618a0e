/*
 * append.c - events appended per second through the bus and the store, and
 * the same rows inserted with raw SQLite as the peer to compare against.
 *
 *   bench-append DIR EVENTS INFLIGHT
 *
 * Ours: al_bus_append of one user.message event per call, INFLIGHT calls
 * outstanding at a time, on a real loop with the SQLite store in DIR (WAL).
 * Every append is durable (committed) before its callback fires, and is
 * published to a live subscriber, as in the server.
 * Peer: the sqlite3 C API inserting the same JSON bodies into a table of the
 * same shape, one transaction per row, same journal and sync settings: the
 * floor any design on SQLite pays. Prints one JSON line.
 */
#include "api/bus.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/rand.h"
#include "store/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *event_json =
	"[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"benchmark event "
	"payload of a typical short user message\"}]}]";

struct bench {
	uv_loop_t *loop;
	al_bus *bus;
	char sid[AL_ID_MAX];
	long total, issued, done, published;
	int inflight;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void issue(struct bench *b);

static void done_cb(int rc, json_t *events, void *ud)
{
	struct bench *b = ud;

	if (rc < 0) {
		fprintf(stderr, "append failed: %d\n", rc);
		exit(1);
	}
	b->done++;
	issue(b);
}

static void issue(struct bench *b)
{
	while (b->issued < b->total && b->issued - b->done < b->inflight) {
		json_t *ev = json_loads(event_json, 0, NULL);
		if (al_bus_append(b->bus, b->sid, ev, NULL, done_cb, b) < 0) {
			fprintf(stderr, "append submit failed\n");
			exit(1);
		}
		json_decref(ev);
		b->issued++;
	}
}

static void sub_cb(const char *session_id, json_t *event, void *ud)
{
	((struct bench *)ud)->published++;
}

static int make_session(al_store_tx *tx, void *ud)
{
	struct bench *b = ud;
	struct al_doc d;
	char body[512];
	int rc;

	memset(&d, 0, sizeof(d));
	snprintf(d.kind, sizeof(d.kind), "session");
	snprintf(d.id, sizeof(d.id), "%s", b->sid);
	snprintf(d.state, sizeof(d.state), "idle");
	d.created_ms = d.updated_ms = al_now_ms();
	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"session\",\"status\":\"idle\"}",
		 b->sid);
	d.body = body;
	rc = al_store_doc_insert(tx, &d);
	d.body = NULL;
	return rc;
}

static double peer_sqlite(const char *dir, long n)
{
	char path[1024], *err = NULL;
	sqlite3 *db;
	sqlite3_stmt *st;
	double t0, t1;

	snprintf(path, sizeof(path), "%s/peer.db", dir);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		exit(1);
	sqlite3_exec(db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		     "CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE,"
		     " session_id TEXT, type TEXT, created_ms INTEGER, body TEXT);"
		     "CREATE INDEX ev_s ON events(session_id, seq);",
		     NULL, NULL, &err);
	sqlite3_prepare_v2(db, "INSERT INTO events(id,session_id,type,created_ms,body) VALUES(?,?,?,?,?)",
			   -1, &st, NULL);
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		char id[AL_ID_MAX];
		al_id_new("sevt", id, sizeof(id));
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, "sesn_peer", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, "user.message", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, al_now_ms());
		sqlite3_bind_text(st, 5, event_json, -1, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	t1 = now_s();
	sqlite3_finalize(st);
	sqlite3_close(db);
	return (double)n / (t1 - t0);
}

int main(int argc, char **argv)
{
	struct bench b;
	al_store *store = NULL;
	al_bus_sub *sub = NULL;
	char err[256];
	double t0, t1, ours, peer;

	if (argc != 4) {
		fprintf(stderr, "usage: bench-append DIR EVENTS INFLIGHT\n");
		return 2;
	}
	al_alloc_init();
	memset(&b, 0, sizeof(b));
	b.total = strtol(argv[2], NULL, 10);
	b.inflight = (int)strtol(argv[3], NULL, 10);
	b.loop = uv_default_loop();
	if (al_store_open_sqlite(b.loop, argv[1], &store, err, sizeof(err)) < 0) {
		fprintf(stderr, "store: %s\n", err);
		return 1;
	}
	al_id_new("sesn", b.sid, sizeof(b.sid));
	if (al_store_call(store, make_session, &b) < 0 || al_bus_new(b.loop, store, &b.bus) < 0)
		return 1;
	al_bus_subscribe(b.bus, b.sid, sub_cb, &b, &sub);
	t0 = now_s();
	issue(&b);
	while (b.done < b.total)
		uv_run(b.loop, UV_RUN_ONCE);
	t1 = now_s();
	ours = (double)b.total / (t1 - t0);
	al_bus_unsubscribe(sub);
	al_bus_free(b.bus);
	al_store_close(store);
	uv_run(b.loop, UV_RUN_DEFAULT);
	peer = peer_sqlite(argv[1], b.total);
	printf("{\"events\":%ld,\"inflight\":%d,\"published\":%ld,\"ours_per_s\":%.0f,"
	       "\"peer_sqlite_per_s\":%.0f,\"ratio\":%.2f}\n",
	       b.total, b.inflight, b.published, ours, peer, ours / peer);
	return b.published == b.total ? 0 : 1;
}
