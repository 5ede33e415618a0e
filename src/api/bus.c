/*
 * bus.c - append session events in one store transaction, publish after commit.
 *
 * Threads. al_bus_append runs on the loop thread. It deep-copies the
 * caller's events so that the store thread owns its copy outright while the
 * job runs (jansson values are not safe to share across threads while one
 * side mutates them); the job adds "id" and "processed_at" to the copy,
 * appends, updates the session, runs the tx hook. The store completes jobs
 * in FIFO order and one group commit covers consecutive jobs, so the done
 * callbacks (and thus the publishes below) arrive on the loop thread in
 * commit order even with many appends in flight.
 *
 * Subscribers. Subscriptions live in two small chained hash tables, one for
 * session streams and one for work-queue watchers. A callback may
 * unsubscribe any subscription (itself included) or subscribe new ones:
 * while a publish is running (depth > 0) an unsubscribed entry is only
 * marked dead and put on a list, and is unlinked and freed when the
 * outermost publish returns. New entries go to the head of their chain, so a
 * subscription made during a publish starts with the next event.
 */
#include "api/bus.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/rand.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NBUCKETS 256 /* chains stay short: a chain holds the streams of ~1/256 sessions */

enum sub_kind { SUB_EVENTS, SUB_WORK };

struct al_bus_sub {
	al_bus *bus;
	enum sub_kind kind;
	char key[AL_ID_MAX]; /* session id or environment id */
	al_bus_event_cb event_cb;
	al_bus_work_cb work_cb;
	void *ud;
	int dead;
	struct al_bus_sub *prev, *next; /* chain */
	struct al_bus_sub *dead_next;	/* deferred-free list */
};

struct al_bus {
	uv_loop_t *loop;
	al_store *store;
	struct al_bus_sub *subs[NBUCKETS];
	struct al_bus_sub *watchers[NBUCKETS];
	struct al_bus_sub *dead; /* unsubscribed during a publish */
	int depth;		 /* nesting of publishes in progress */
	al_bus_event_cb observer;
	void *observer_ud;
	size_t pending; /* appends submitted, completion not yet run */
	int freeing;	/* al_bus_free called while appends were pending */
	/* the event being published, as stored (al_bus_event_text); NULL outside */
	const char *cur_text;
	size_t cur_len;
};

/* One al_bus_append, from submission to its done callback. */
struct append_job {
	al_bus *bus;
	char session_id[AL_ID_MAX];
	json_t *orig;	/* the caller's array (a reference we hold) */
	json_t *events; /* our copy: owned by the store thread while the job runs */
	char **texts;	/* owned: each event's stored JSON text, set by the store job */
	size_t ntexts;
	char new_status[16];
	al_bus_tx_hook tx_hook;
	void *tx_hook_ud;
	al_bus_check_fn check;
	void *check_ud;
	char wake_env[AL_ID_MAX]; /* "" if none */
	al_bus_done_cb done;
	void *ud;
};

static const char *const statuses[] = {"idle", "running", "rescheduling", "terminated"};

/* ---- subscriptions ---- */

static size_t bucket_of(const char *key)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *key; key++)
		h = (h ^ (uint8_t)*key) * 16777619u;
	return h % NBUCKETS;
}

static struct al_bus_sub **table_of(al_bus *bus, enum sub_kind kind)
{
	return kind == SUB_EVENTS ? bus->subs : bus->watchers;
}

static void sub_unlink_free(struct al_bus_sub *s)
{
	struct al_bus_sub **head = &table_of(s->bus, s->kind)[bucket_of(s->key)];

	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	al_free(s);
}

static int sub_add(al_bus *bus, enum sub_kind kind, const char *key, al_bus_event_cb ecb,
		   al_bus_work_cb wcb, void *ud, al_bus_sub **out)
{
	struct al_bus_sub *s, **head;
	size_t len;

	*out = NULL;
	if (bus == NULL || key == NULL || (ecb == NULL && wcb == NULL) || bus->freeing)
		return -EINVAL;
	len = strlen(key);
	if (len == 0 || len >= AL_ID_MAX)
		return -EINVAL;
	s = al_calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->bus = bus;
	s->kind = kind;
	memcpy(s->key, key, len + 1);
	s->event_cb = ecb;
	s->work_cb = wcb;
	s->ud = ud;
	head = &table_of(bus, kind)[bucket_of(key)];
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
	*out = s;
	return 0;
}

/* Frees entries unsubscribed during a publish, once no publish is running. */
static void sweep(al_bus *bus)
{
	struct al_bus_sub *s, *next;

	if (bus->depth > 0)
		return;
	for (s = bus->dead; s; s = next) {
		next = s->dead_next;
		sub_unlink_free(s);
	}
	bus->dead = NULL;
}

int al_bus_subscribe(al_bus *bus, const char *session_id, al_bus_event_cb cb, void *ud,
		     al_bus_sub **out)
{
	return sub_add(bus, SUB_EVENTS, session_id, cb, NULL, ud, out);
}

int al_bus_watch_work(al_bus *bus, const char *environment_id, al_bus_work_cb cb, void *ud,
		      al_bus_sub **out)
{
	return sub_add(bus, SUB_WORK, environment_id, NULL, cb, ud, out);
}

void al_bus_unsubscribe(al_bus_sub *sub)
{
	al_bus *bus;

	if (sub == NULL || sub->dead)
		return;
	bus = sub->bus;
	sub->dead = 1;
	if (bus->depth > 0) {
		sub->dead_next = bus->dead;
		bus->dead = sub;
		return;
	}
	sub_unlink_free(sub);
}

void al_bus_set_observer(al_bus *bus, al_bus_event_cb cb, void *ud)
{
	bus->observer = cb;
	bus->observer_ud = ud;
}

static void bus_destroy(al_bus *bus);

/*
 * After a callback section: frees what was unsubscribed meanwhile, or the
 * whole bus when al_bus_free was called from inside a callback.
 */
static void settle(al_bus *bus)
{
	if (bus->depth > 0)
		return;
	if (bus->freeing) {
		if (bus->pending == 0)
			bus_destroy(bus);
		return;
	}
	sweep(bus);
}

void al_bus_wake_work(al_bus *bus, const char *environment_id)
{
	struct al_bus_sub *s;

	if (bus == NULL || environment_id == NULL || bus->freeing)
		return;
	bus->depth++;
	/* A callback may free the bus: then nothing more is delivered (bus.h). */
	for (s = bus->watchers[bucket_of(environment_id)]; s && !bus->freeing; s = s->next)
		if (!s->dead && strcmp(s->key, environment_id) == 0)
			s->work_cb(environment_id, s->ud);
	bus->depth--;
	settle(bus);
}

static void publish(al_bus *bus, const char *session_id, json_t *event, const char *text)
{
	struct al_bus_sub *s;
	const char *saved_text = bus->cur_text;
	size_t saved_len = bus->cur_len;

	bus->cur_text = text;
	bus->cur_len = text ? strlen(text) : 0;
	bus->depth++;
	/* A callback may free the bus: then nothing more is published (bus.h). */
	for (s = bus->subs[bucket_of(session_id)]; s && !bus->freeing; s = s->next)
		if (!s->dead && strcmp(s->key, session_id) == 0)
			s->event_cb(session_id, event, s->ud);
	/* Read the observer per event: a callback may have replaced it. */
	if (bus->observer)
		bus->observer(session_id, event, bus->observer_ud);
	bus->depth--;
	bus->cur_text = saved_text;
	bus->cur_len = saved_len;
}

const char *al_bus_event_text(const al_bus *bus, size_t *len)
{
	if (len != NULL)
		*len = bus && bus->cur_text ? bus->cur_len : 0;
	return bus ? bus->cur_text : NULL;
}

/* ---- lifetime ---- */

int al_bus_new(uv_loop_t *loop, al_store *store, al_bus **out)
{
	al_bus *bus;

	*out = NULL;
	if (loop == NULL || store == NULL)
		return -EINVAL;
	bus = al_calloc(1, sizeof(*bus));
	if (bus == NULL)
		return -ENOMEM;
	bus->loop = loop;
	bus->store = store;
	*out = bus;
	return 0;
}

static void bus_destroy(al_bus *bus)
{
	struct al_bus_sub **tables[2] = {bus->subs, bus->watchers};

	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; i < NBUCKETS; i++) {
			struct al_bus_sub *s = tables[t][i], *next;
			for (; s; s = next) {
				next = s->next;
				al_free(s);
			}
		}
	}
	al_free(bus);
}

void al_bus_free(al_bus *bus)
{
	if (bus == NULL)
		return;
	/*
	 * In-flight appends still hold the bus, and a callback may be running
	 * (depth > 0): finish the free when the last of them returns.
	 */
	if (bus->pending > 0 || bus->depth > 0) {
		bus->freeing = 1;
		bus->observer = NULL;
		return;
	}
	bus_destroy(bus);
}

/* ---- append ---- */

static void job_free(struct append_job *j)
{
	if (j == NULL)
		return;
	json_decref(j->orig);
	json_decref(j->events);
	for (size_t i = 0; i < j->ntexts; i++)
		al_free(j->texts[i]);
	al_free(j->texts);
	al_free(j);
}

/* Sets the session's status and updated_at, in the body and the columns. */
static int apply_status(al_store_tx *tx, struct al_doc *doc, const char *status, int64_t now_ms,
			const char *now_str)
{
	json_error_t jerr;
	json_t *body = NULL;
	char *text = NULL;
	int rc;

	body = json_loads(doc->body, 0, &jerr);
	if (body == NULL || !json_is_object(body)) {
		/* json_loads reports OOM as a parse error; a stored body is valid JSON. */
		rc = body == NULL ? -ENOMEM : -EINVAL;
		goto done;
	}
	if (json_object_set_new(body, "status", json_string(status)) < 0 ||
	    json_object_set_new(body, "updated_at", json_string(now_str)) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	text = json_dumps(body, JSON_COMPACT);
	if (text == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	al_free(doc->body);
	doc->body = text;
	text = NULL;
	snprintf(doc->state, sizeof(doc->state), "%s", status);
	doc->updated_ms = now_ms;
	/* CAS on the version read in this same transaction: documents the intent. */
	rc = al_store_doc_update(tx, doc, doc->version);
done:
	json_decref(body);
	al_free(text);
	return rc;
}

/* The store job: runs on the store thread inside one transaction. */
static int append_fn(al_store_tx *tx, void *ud)
{
	struct append_job *j = ud;
	struct al_doc session;
	struct al_event ev;
	char processed_at[32];
	/* processed_at in microseconds (RFC 3339 allows any fraction; the SDK
	 * keeps it as a string): sub-millisecond steps stay visible. */
	int64_t now_us = al_now_us(), now = now_us / 1000;
	size_t i;
	json_t *e;
	int rc;

	memset(&ev, 0, sizeof(ev));
	memset(&session, 0, sizeof(session));
	/*
	 * Keep each event's text: it is exactly what a subscriber sends, so
	 * the loop thread publishes it without serialising the event again
	 * (once per event instead of once per event per stream).
	 */
	j->texts = al_calloc(json_array_size(j->events) + 1, sizeof(*j->texts));
	if (j->texts == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	rc = al_store_doc_get(tx, "session", j->session_id, &session);
	if (rc < 0)
		goto done;
	if (j->check && (rc = j->check(tx, &session, j->check_ud)) < 0)
		goto done;
	if ((rc = al_time_format_us(now_us, processed_at, sizeof(processed_at))) < 0)
		goto done;
	json_array_foreach(j->events, i, e)
	{
		const char *type = json_string_value(json_object_get(e, "type"));

		memset(&ev, 0, sizeof(ev));
		if ((rc = al_id_new("sevt", ev.id, sizeof(ev.id))) < 0)
			goto done;
		if (json_object_set_new(e, "id", json_string(ev.id)) < 0 ||
		    json_object_set_new(e, "processed_at", json_string(processed_at)) < 0) {
			rc = -ENOMEM;
			goto done;
		}
		snprintf(ev.session_id, sizeof(ev.session_id), "%s", j->session_id);
		snprintf(ev.type, sizeof(ev.type), "%s", type); /* length checked at submit */
		ev.created_ms = now;
		ev.body = json_dumps(e, JSON_COMPACT);
		if (ev.body == NULL) {
			rc = -ENOMEM;
			goto done;
		}
		if ((rc = al_store_event_append(tx, &ev)) < 0)
			goto done;
		j->texts[j->ntexts++] = ev.body;
		ev.body = NULL;
		al_event_clear(&ev);
	}
	if (j->new_status[0] &&
	    (rc = apply_status(tx, &session, j->new_status, now, processed_at)) < 0)
		goto done;
	if (j->tx_hook)
		rc = j->tx_hook(tx, j->session_id, j->events, j->tx_hook_ud);
done:
	al_event_clear(&ev);
	al_doc_clear(&session);
	return rc < 0 ? rc : 0;
}

/* Loop thread, after the commit (rc >= 0) or the rollback (rc < 0). */
static void append_done_cb(int rc, void *ud)
{
	struct append_job *j = ud;
	al_bus *bus = j->bus;
	size_t i;
	json_t *e;

	bus->pending--;
	bus->depth++; /* the bus must outlive every callback below */
	if (rc >= 0) {
		json_array_foreach(j->events, i, e)
		{
			if (bus->freeing)
				break;
			publish(bus, j->session_id, e, i < j->ntexts ? j->texts[i] : NULL);
		}
		if (j->wake_env[0])
			al_bus_wake_work(bus, j->wake_env);
	}
	if (j->done)
		j->done(rc, rc >= 0 ? j->events : j->orig, j->ud);
	bus->depth--;
	job_free(j);
	settle(bus);
}

static int valid_events(json_t *events)
{
	size_t i;
	json_t *e;

	if (!json_is_array(events))
		return 0;
	json_array_foreach(events, i, e)
	{
		const char *type = json_string_value(json_object_get(e, "type"));

		if (!json_is_object(e) || type == NULL || type[0] == '\0' ||
		    strlen(type) >= sizeof(((struct al_event *)0)->type))
			return 0;
	}
	return 1;
}

static int copy_id(char *dst, const char *src)
{
	size_t n = strlen(src);

	if (n >= AL_ID_MAX)
		return -EINVAL;
	memcpy(dst, src, n + 1);
	return 0;
}

int al_bus_append(al_bus *bus, const char *session_id, json_t *events,
		  const struct al_bus_append_opts *opts, al_bus_done_cb done, void *ud)
{
	struct append_job *j = NULL;
	int rc = -EINVAL;

	if (bus == NULL || bus->freeing || session_id == NULL || session_id[0] == '\0' ||
	    !valid_events(events))
		goto fail;
	if (opts && opts->new_status) {
		size_t k;
		for (k = 0; k < sizeof(statuses) / sizeof(statuses[0]); k++)
			if (strcmp(opts->new_status, statuses[k]) == 0)
				break;
		if (k == sizeof(statuses) / sizeof(statuses[0]))
			goto fail;
	}
	j = al_calloc(1, sizeof(*j));
	if (j == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	j->bus = bus;
	if ((rc = copy_id(j->session_id, session_id)) < 0)
		goto fail;
	if (opts && opts->wake_environment_id &&
	    (rc = copy_id(j->wake_env, opts->wake_environment_id)) < 0)
		goto fail;
	if (opts && opts->new_status)
		snprintf(j->new_status, sizeof(j->new_status), "%s", opts->new_status);
	if (opts) {
		j->tx_hook = opts->tx_hook;
		j->tx_hook_ud = opts->tx_hook_ud;
		j->check = opts->check;
		j->check_ud = opts->check_ud;
	}
	j->done = done;
	j->ud = ud;
	j->events = json_deep_copy(events);
	if (j->events == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	j->orig = json_incref(events);
	if ((rc = al_store_submit(bus->store, append_fn, append_done_cb, j)) < 0)
		goto fail;
	bus->pending++;
	return 0;
fail:
	job_free(j);
	return rc;
}
