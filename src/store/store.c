/*
 * store.c - the store executor: one thread owns the backend.
 *
 * The loop thread queues jobs {fn, done, ud} on a FIFO (mutex + condvar).
 * The store thread takes everything queued at that moment (up to
 * MAX_GROUP jobs) and runs it as one group:
 *
 *     BEGIN
 *       SAVEPOINT; fn1; RELEASE            (fn1 returned >= 0)
 *       SAVEPOINT; fn2; ROLLBACK TO        (fn2 returned < 0: only its writes vanish)
 *       SAVEPOINT; fn3; RELEASE
 *     COMMIT
 *
 * Why group: with one transaction per job every append pays a commit (a
 * WAL frame write, and an fsync with synchronous=FULL); under load the queue
 * fills while a commit is in progress and the next commit carries all of it,
 * so appends per second scale with the batch instead of with commit
 * latency. Nothing waits to form a batch, so an idle store adds no delay.
 * Each job still sees the semantics store.h promises: its writes commit
 * exactly when it returns >= 0. The price is shared fate on COMMIT: if the
 * commit of a group fails (disk full, I/O error), every job of the group
 * that had succeeded gets the commit error, since none of it is durable.
 * The same holds when the backend loses the enclosing transaction midway
 * (SQLite rolls back by itself on some errors): the group is failed and the
 * jobs after it start a fresh group. Backends without savepoints run one
 * transaction per job.
 *
 * Completions go on a second list; one uv_async_t tells the loop thread,
 * and since libuv coalesces async sends, each wakeup drains the whole list.
 * Callbacks run in submission order because groups are taken in FIFO order
 * and appended to the completion list in that order.
 */
#include "store/store.h"

#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define MAX_GROUP 256 /* bounds one transaction's size and the WAL growth */

struct al_store_tx {
	const struct al_store_backend_ops *ops;
	void *be;
};

struct store_job {
	al_store_fn fn;
	al_store_done_cb done;
	void *ud;
	int rc;
	int sync;     /* al_store_call: lives on the caller's stack */
	int finished; /* sync only: set under mu, then the job must not be touched */
	struct store_job *next;
};

struct al_store {
	uv_loop_t *loop;
	uv_async_t async; /* store thread -> loop thread: completions ready */
	const struct al_store_backend_ops *ops;
	void *be; /* owned; touched only by the store thread after start */
	struct al_store_tx tx;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work_cv;		   /* queue non-empty or stopping */
	pthread_cond_t sync_cv;		   /* a sync job finished */
	struct store_job *q_head, *q_tail; /* pending, under mu */
	struct store_job *c_head, *c_tail; /* completed, under mu */
	int stopping;			   /* under mu */
	uint64_t n_jobs, n_tx;		   /* under mu: statistics */
	int closed;			   /* loop thread only: al_store_close was called */
	size_t pending;			   /* loop thread only: submitted, done not yet run */
};

/* ---- records ---- */

void al_doc_clear(struct al_doc *d)
{
	if (d == NULL)
		return;
	al_free(d->body);
	memset(d, 0, sizeof(*d));
}

void al_doc_array_free(struct al_doc *d, size_t n)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		al_doc_clear(&d[i]);
	al_free(d);
}

void al_event_clear(struct al_event *e)
{
	if (e == NULL)
		return;
	al_free(e->body);
	memset(e, 0, sizeof(*e));
}

void al_event_array_free(struct al_event *e, size_t n)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		al_event_clear(&e[i]);
	al_free(e);
}

/* ---- backend operations through a transaction handle ---- */

int al_store_doc_insert(al_store_tx *tx, struct al_doc *d)
{
	return tx ? tx->ops->doc_insert(tx->be, d) : -EINVAL;
}

int al_store_doc_update(al_store_tx *tx, struct al_doc *d, int64_t expected_version)
{
	return tx ? tx->ops->doc_update(tx->be, d, expected_version) : -EINVAL;
}

int al_store_doc_get(al_store_tx *tx, const char *kind, const char *id, struct al_doc *out)
{
	return tx ? tx->ops->doc_get(tx->be, kind, id, out) : -EINVAL;
}

int al_store_doc_delete(al_store_tx *tx, const char *kind, const char *id)
{
	return tx ? tx->ops->doc_delete(tx->be, kind, id) : -EINVAL;
}

int al_store_doc_list(al_store_tx *tx, const char *kind, const struct al_doc_query *q,
		      struct al_doc **out, size_t *n, int *has_more)
{
	return tx ? tx->ops->doc_list(tx->be, kind, q, out, n, has_more) : -EINVAL;
}

int al_store_doc_count(al_store_tx *tx, const char *kind, const struct al_doc_query *q,
		       int64_t *count)
{
	return tx ? tx->ops->doc_count(tx->be, kind, q, count) : -EINVAL;
}

int al_store_event_append(al_store_tx *tx, struct al_event *e)
{
	return tx ? tx->ops->event_append(tx->be, e) : -EINVAL;
}

int al_store_event_get(al_store_tx *tx, const char *session_id, const char *id,
		       struct al_event *out)
{
	return tx ? tx->ops->event_get(tx->be, session_id, id, out) : -EINVAL;
}

int al_store_event_list(al_store_tx *tx, const struct al_event_query *q, struct al_event **out,
			size_t *n, int *has_more)
{
	return tx ? tx->ops->event_list(tx->be, q, out, n, has_more) : -EINVAL;
}

int al_store_event_count(al_store_tx *tx, const char *session_id, int64_t *count)
{
	return tx ? tx->ops->event_count(tx->be, session_id, count) : -EINVAL;
}

int al_store_event_delete_session(al_store_tx *tx, const char *session_id)
{
	return tx ? tx->ops->event_delete_session(tx->be, session_id) : -EINVAL;
}

/* ---- the store thread ---- */

/* One job, one transaction (backends without savepoints). */
static void run_single(al_store *s, struct store_job *j)
{
	int rc = s->ops->begin(s->be);

	if (rc < 0) {
		j->rc = rc;
		return;
	}
	j->rc = j->fn(&s->tx, j->ud);
	if (j->rc < 0) {
		s->ops->rollback(s->be);
		return;
	}
	rc = s->ops->commit(s->be);
	if (rc < 0) {
		s->ops->rollback(s->be);
		j->rc = rc;
	}
}

/* Fails every job of [from, to) that had succeeded: its writes were lost. */
static void fail_group(struct store_job *from, struct store_job *to, int rc)
{
	for (struct store_job *k = from; k != to; k = k->next)
		if (k->rc >= 0)
			k->rc = rc;
}

/*
 * Runs the list `jobs` as groups sharing one transaction (see the top).
 * Returns the number of transactions begun.
 */
static uint64_t run_jobs(al_store *s, struct store_job *jobs)
{
	struct store_job *j = jobs;
	uint64_t ntx = 0;

	if (s->ops->savepoint == NULL || s->ops->release == NULL || s->ops->rollback_to == NULL) {
		for (; j; j = j->next, ntx++)
			run_single(s, j);
		return ntx;
	}
	while (j) {
		struct store_job *start = j;
		int rc = s->ops->begin(s->be), lost = 0;

		if (rc < 0) {
			for (; j; j = j->next)
				j->rc = rc;
			return ntx;
		}
		ntx++;
		for (; j && !lost; j = j->next) {
			rc = s->ops->savepoint(s->be);
			if (rc < 0) {
				j->rc = rc;
				lost = rc;
				continue;
			}
			j->rc = j->fn(&s->tx, j->ud);
			rc = j->rc >= 0 ? s->ops->release(s->be) : s->ops->rollback_to(s->be);
			/*
			 * A savepoint that cannot be closed leaves the transaction in
			 * an unknown state: give the whole group up rather than
			 * commit something no job asked for.
			 */
			if (rc < 0)
				lost = rc;
		}
		if (lost) {
			s->ops->rollback(s->be);
			fail_group(start, j, lost == -ECANCELED ? -EIO : lost);
			continue;
		}
		rc = s->ops->commit(s->be);
		if (rc < 0) {
			s->ops->rollback(s->be);
			fail_group(start, j, rc);
		}
	}
	return ntx;
}

static void *store_thread(void *arg)
{
	al_store *s = arg;

	for (;;) {
		struct store_job *batch, *last, *j, *next;
		uint64_t ntx;
		int n = 1, wake = 0;

		pthread_mutex_lock(&s->mu);
		while (s->q_head == NULL && !s->stopping)
			pthread_cond_wait(&s->work_cv, &s->mu);
		if (s->q_head == NULL) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		/* Take a FIFO prefix of the queue as one group. */
		batch = last = s->q_head;
		while (last->next && n < MAX_GROUP) {
			last = last->next;
			n++;
		}
		s->q_head = last->next;
		if (s->q_head == NULL)
			s->q_tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&s->mu);

		ntx = run_jobs(s, batch);

		pthread_mutex_lock(&s->mu);
		s->n_jobs += (uint64_t)n;
		s->n_tx += ntx;
		for (j = batch; j; j = next) {
			next = j->next; /* a finished sync job may vanish at once */
			if (j->sync) {
				j->finished = 1;
				continue;
			}
			j->next = NULL;
			if (s->c_tail)
				s->c_tail->next = j;
			else
				s->c_head = j;
			s->c_tail = j;
			wake = 1;
		}
		pthread_cond_broadcast(&s->sync_cv);
		pthread_mutex_unlock(&s->mu);
		if (wake)
			uv_async_send(&s->async);
	}
	return NULL;
}

/* ---- loop thread ---- */

static void deliver(al_store *s)
{
	struct store_job *list, *next;

	pthread_mutex_lock(&s->mu);
	list = s->c_head;
	s->c_head = s->c_tail = NULL;
	pthread_mutex_unlock(&s->mu);
	for (; list; list = next) {
		next = list->next;
		/* Unref before the callback, which may submit (and re-ref). */
		if (--s->pending == 0)
			uv_unref((uv_handle_t *)&s->async);
		if (list->done)
			list->done(list->rc, list->ud);
		al_free(list);
	}
}

static void async_cb(uv_async_t *h)
{
	deliver(h->data);
}

static void close_cb(uv_handle_t *h)
{
	al_store *s = h->data;

	/* libuv never calls async_cb once the handle is closing: deliver here. */
	deliver(s);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->sync_cv);
	pthread_mutex_destroy(&s->mu);
	al_free(s);
}

int al_store_start(uv_loop_t *loop, const struct al_store_backend_ops *ops, void *be,
		   al_store **out)
{
	al_store *s = NULL;
	sigset_t all, old;
	int rc, locks = 0;

	*out = NULL;
	if (loop == NULL || ops == NULL || be == NULL) {
		rc = -EINVAL;
		goto fail;
	}
	s = al_calloc(1, sizeof(*s));
	if (s == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	s->loop = loop;
	s->ops = ops;
	s->be = be;
	s->tx.ops = ops;
	s->tx.be = be;
	s->async.data = s;
	if ((rc = -pthread_mutex_init(&s->mu, NULL)) < 0)
		goto fail;
	locks = 1;
	if ((rc = -pthread_cond_init(&s->work_cv, NULL)) < 0)
		goto fail;
	locks = 2;
	if ((rc = -pthread_cond_init(&s->sync_cv, NULL)) < 0)
		goto fail;
	locks = 3;
	/*
	 * The thread waits for work and never touches the async handle before
	 * its first job, so the handle can be initialised after it starts.
	 * Signals stay with the loop thread: the store thread blocks them all.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&s->thread, NULL, store_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0)
		goto fail;
	rc = uv_async_init(loop, &s->async, async_cb);
	if (rc < 0) {
		pthread_mutex_lock(&s->mu);
		s->stopping = 1;
		pthread_cond_signal(&s->work_cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		goto fail;
	}
	s->async.data = s;
	/*
	 * The handle keeps the loop alive only while submitted jobs have not
	 * completed (al_store_submit refs it, deliver unrefs it): an idle store
	 * does not stop uv_run from returning, and a busy one is never dropped.
	 */
	uv_unref((uv_handle_t *)&s->async);
	*out = s;
	return 0;
fail:
	if (s) {
		if (locks >= 3)
			pthread_cond_destroy(&s->sync_cv);
		if (locks >= 2)
			pthread_cond_destroy(&s->work_cv);
		if (locks >= 1)
			pthread_mutex_destroy(&s->mu);
		al_free(s);
	}
	if (ops && be)
		ops->close(be); /* ownership was taken, even on failure */
	return rc;
}

int al_store_open_sqlite(uv_loop_t *loop, const char *dir, al_store **out, char *err, size_t errlen)
{
	const struct al_store_backend_ops *ops = NULL;
	void *be = NULL;
	int rc;

	*out = NULL;
	rc = al_store_sqlite_open(dir, &ops, &be, err, errlen);
	if (rc < 0)
		return rc;
	rc = al_store_start(loop, ops, be, out);
	if (rc < 0 && errlen)
		snprintf(err, errlen, "cannot start the store thread: %s", strerror(-rc));
	return rc;
}

static void enqueue(al_store *s, struct store_job *j)
{
	pthread_mutex_lock(&s->mu);
	if (s->q_tail)
		s->q_tail->next = j;
	else
		s->q_head = j;
	s->q_tail = j;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
}

int al_store_submit(al_store *s, al_store_fn fn, al_store_done_cb done, void *ud)
{
	struct store_job *j;

	if (s == NULL || fn == NULL)
		return -EINVAL;
	if (s->closed)
		return -ESHUTDOWN;
	j = al_calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	j->fn = fn;
	j->done = done;
	j->ud = ud;
	if (s->pending++ == 0)
		uv_ref((uv_handle_t *)&s->async);
	enqueue(s, j);
	return 0;
}

int al_store_call(al_store *s, al_store_fn fn, void *ud)
{
	struct store_job j = {.fn = fn, .ud = ud, .sync = 1};

	if (s == NULL || fn == NULL)
		return -EINVAL;
	if (s->closed)
		return -ESHUTDOWN;
	enqueue(s, &j);
	pthread_mutex_lock(&s->mu);
	while (!j.finished)
		pthread_cond_wait(&s->sync_cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return j.rc;
}

void al_store_close(al_store *s)
{
	if (s == NULL || s->closed)
		return;
	s->closed = 1;
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	/* The thread drains the queue before it sees `stopping` with nothing left. */
	pthread_join(s->thread, NULL);
	s->ops->close(s->be);
	s->be = NULL;
	uv_close((uv_handle_t *)&s->async, close_cb);
}

void al_store_stats(al_store *s, uint64_t *jobs, uint64_t *transactions)
{
	pthread_mutex_lock(&s->mu);
	if (jobs)
		*jobs = s->n_jobs;
	if (transactions)
		*transactions = s->n_tx;
	pthread_mutex_unlock(&s->mu);
}
