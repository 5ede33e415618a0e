/*
 * common.c - jobs, document/JSON helpers and cursor pagination shared by the
 * resource handlers (see internal.h).
 */
#include "api/internal.h"

#include "api/decode.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- jobs ---- */

struct al_api_job *al_api_job_new(struct al_api_ctx *ctx, al_api_job_fn fn)
{
	struct al_api_job *job = al_calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	job->api = ctx->api;
	job->req = ctx->req;
	job->auth = ctx->auth;
	for (int i = 0; i < AL_API_MAX_PARAMS; i++)
		if (ctx->params[i] != NULL)
			al_api_strlcpy(job->p[i], ctx->params[i], AL_ID_MAX);
	job->now_ms = al_now_ms();
	job->status = 200;
	job->fn = fn;
	return job;
}

void al_api_job_free(struct al_api_job *job)
{
	if (job == NULL)
		return;
	json_decref(job->in);
	json_decref(job->out);
	json_decref(job->err_details);
	if (job->ud_free != NULL)
		job->ud_free(job->ud);
	al_free(job);
}

void al_api_job_reply(struct al_api_job *job, int rc)
{
	if (job->err_status != 0) {
		json_t *d = job->err_details;
		job->err_details = NULL;
		if (d != NULL)
			al_api_error_details(job->req, job->err_status, job->err_type, d, "%s",
					     job->err);
		else
			al_api_error(job->req, job->err_status, job->err_type, "%s", job->err);
	} else if (rc < 0) {
		al_api_error_errno(job->req, rc, "resource");
	} else if (job->out == NULL) {
		al_api_error_errno(job->req, -EIO, "response");
	} else {
		json_t *out = job->out;
		job->out = NULL;
		al_http_respond_json(job->req, job->status, out);
	}
	al_api_job_free(job);
}

static int job_run_fn(al_store_tx *tx, void *ud)
{
	struct al_api_job *job = ud;
	return job->fn(tx, job);
}

static void job_done_cb(int rc, void *ud)
{
	struct al_api_job *job = ud;

	if (job->done != NULL)
		job->done(job, rc);
	else
		al_api_job_reply(job, rc);
}

void al_api_job_submit(struct al_api_job *job)
{
	int rc = al_store_submit(job->api->store, job_run_fn, job_done_cb, job);

	if (rc < 0) {
		al_api_error(job->req, 503, NULL, "the store is not accepting work");
		al_api_job_free(job);
	}
}

void al_api_submit(struct al_api_ctx *ctx, al_api_job_fn fn, al_api_job_done_cb done,
		   const char *what)
{
	struct al_api_job *job = al_api_job_new(ctx, fn);

	if (job == NULL) {
		al_api_error_errno(ctx->req, -ENOMEM, what);
		return;
	}
	job->done = done;
	al_api_job_submit(job);
}

static int job_vfail(struct al_api_job *job, int status, const char *type, const char *fmt,
		     va_list ap) __attribute__((format(printf, 4, 0)));

static int job_vfail(struct al_api_job *job, int status, const char *type, const char *fmt,
		     va_list ap)
{
	job->err_status = status;
	job->err_type = type;
	vsnprintf(job->err, sizeof(job->err), fmt, ap);
	return -EPROTO;
}

int al_api_job_fail(struct al_api_job *job, int status, const char *type, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = job_vfail(job, status, type, fmt, ap);
	va_end(ap);
	return rc;
}

int al_api_job_fail_code(struct al_api_job *job, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = job_vfail(job, status, NULL, fmt, ap);
	va_end(ap);
	json_decref(job->err_details);
	job->err_details = json_pack("{s:s}", "error_code", code);
	return rc;
}

/* ---- documents and JSON ---- */

json_t *al_api_doc_json(const struct al_doc *d)
{
	json_t *v;

	if (d->body == NULL)
		return NULL;
	v = json_loads(d->body, 0, NULL);
	if (v != NULL && !json_is_object(v)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

int al_api_load(al_store_tx *tx, const char *kind, const char *id, struct al_doc *doc, json_t **obj)
{
	int rc;

	*obj = NULL;
	memset(doc, 0, sizeof(*doc));
	rc = al_store_doc_get(tx, kind, id, doc);
	if (rc < 0)
		return rc;
	*obj = al_api_doc_json(doc);
	if (*obj == NULL) {
		al_doc_clear(doc);
		return -EIO;
	}
	return 0;
}

int al_api_doc_set_body(struct al_doc *d, const json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);

	if (s == NULL)
		return -ENOMEM;
	/* jansson allocates through al_malloc (al_alloc_init), so al_free owns it. */
	al_free(d->body);
	d->body = s;
	return 0;
}

json_t *al_api_time_json(int64_t ms)
{
	char buf[40];

	if (ms <= 0)
		return json_null();
	if (al_time_format(ms, buf, sizeof(buf)) < 0)
		return json_null();
	return json_string(buf);
}

int al_api_set_time(json_t *obj, const char *key, int64_t ms)
{
	return json_object_set_new(obj, key, al_api_time_json(ms)) == 0 ? 0 : -ENOMEM;
}

void al_api_strlcpy(char *dst, const char *src, size_t n)
{
	size_t l;

	if (n == 0)
		return;
	l = src ? strlen(src) : 0;
	if (l >= n)
		l = n - 1;
	if (l > 0)
		memcpy(dst, src, l);
	dst[l] = '\0';
}

int al_api_metadata_patch(json_t *metadata, const json_t *patch, char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	if (al_decode_metadata(patch, 1, "metadata", err, errlen) < 0)
		return -EINVAL;
	json_object_foreach((json_t *)patch, k, v)
	{
		if (json_is_null(v))
			json_object_del(metadata, k);
		else if (json_object_set(metadata, k, v) < 0)
			return -ENOMEM;
	}
	if (json_object_size(metadata) > 16) {
		snprintf(err, errlen, "metadata: at most 16 keys are allowed");
		return -EINVAL;
	}
	return 0;
}

/* ---- query parameters ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes [s, s+n) into out (NUL-terminated). -EINVAL on bad escapes. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= n)
				return -EINVAL;
			h = hexval(s[i + 1]);
			l = hexval(s[i + 2]);
			if (h < 0 || l < 0)
				return -EINVAL;
			c = (char)(h * 16 + l);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (o + 1 >= outlen)
			return -E2BIG;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

json_t *al_api_query_array(al_http_req *req, const char *name)
{
	const char *target = al_http_req_target(req);
	const char *q = target ? strchr(target, '?') : NULL;
	char key[128], val[512], br[128];
	json_t *arr = json_array();

	if (arr == NULL)
		return NULL;
	snprintf(br, sizeof(br), "%s[]", name);
	if (q == NULL)
		return arr;
	q++;
	while (*q != '\0') {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;

		if (pct_decode(q, klen, key, sizeof(key)) < 0)
			goto next;
		if (strcmp(key, name) != 0 && strcmp(key, br) != 0) {
			/* name[0]=a (the "indices" format) is accepted too. */
			size_t nl = strlen(name);
			if (!(strncmp(key, name, nl) == 0 && key[nl] == '[' &&
			      key[strlen(key) - 1] == ']'))
				goto next;
		}
		if (eq == NULL)
			val[0] = '\0';
		else if (pct_decode(eq + 1, len - klen - 1, val, sizeof(val)) < 0) {
			json_decref(arr);
			return NULL;
		}
		/* A comma-separated single value is accepted as a list too. */
		for (char *tok = val, *sep; tok != NULL; tok = sep ? sep + 1 : NULL) {
			sep = strchr(tok, ',');
			if (sep)
				*sep = '\0';
			if (*tok != '\0')
				json_array_append_new(arr, json_string(tok));
		}
	next:
		if (amp == NULL)
			break;
		q = amp + 1;
	}
	return arr;
}

int al_api_query_bool(al_http_req *req, const char *name, int def, int *out)
{
	const char *v = al_http_req_query(req, name);

	*out = def;
	if (v == NULL)
		return 0;
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*out = 1;
	else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

int al_api_id_at(const char *prefix, int64_t ms, int hi, char *out, size_t len)
{
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	unsigned char raw[16];
	size_t plen = strlen(prefix);

	if (len < plen + 28 || ms < 0)
		return -ENOSPC;
	memset(raw, hi ? 0xff : 0x00, sizeof(raw));
	for (int i = 0; i < 6; i++)
		raw[i] = (unsigned char)((uint64_t)ms >> (8 * (5 - i)));
	memcpy(out, prefix, plen);
	out[plen] = '_';
	/* The same 26-digit Crockford base32 layout as al_id_new. */
	for (int i = 0; i < 26; i++) {
		int bit = 130 - 5 * (i + 1);
		unsigned v = 0;
		for (int b = 4; b >= 0; b--) {
			int idx = bit + b;
			unsigned bitv = 0;
			if (idx < 128)
				bitv = (raw[15 - idx / 8] >> (idx % 8)) & 1u;
			v = (v << 1) | bitv;
		}
		out[plen + 1 + i] = alphabet[v];
	}
	out[plen + 27] = '\0';
	return 0;
}

static int valid_cursor_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= AL_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static void bound_after(char *cur, const char *id)
{
	if (cur[0] == '\0' || strcmp(id, cur) > 0)
		al_api_strlcpy(cur, id, AL_ID_MAX);
}

static void bound_before(char *cur, const char *id)
{
	if (cur[0] == '\0' || strcmp(id, cur) < 0)
		al_api_strlcpy(cur, id, AL_ID_MAX);
}

int al_api_page_parse(al_http_req *req, const char *prefix, size_t def_limit, size_t max_limit,
		      int default_desc, int order_param, struct al_api_page *pg, char *err,
		      size_t errlen)
{
	static const struct {
		const char *name;
		int after; /* 1: lower bound */
		int hi;	   /* id at the top (1) or bottom (0) of the millisecond */
		int incl;
	} bounds[] = {
	    {"created_at[gte]", 1, 0, 1},
	    {"created_at[gt]", 1, 1, 0},
	    {"created_at[lte]", 0, 1, 1},
	    {"created_at[lt]", 0, 0, 0},
	};
	const char *v;

	memset(pg, 0, sizeof(*pg));
	pg->limit = def_limit;
	pg->descending = default_desc;
	pg->created_lte_ms = INT64_MAX;
	v = al_http_req_query(req, "limit");
	if (v != NULL) {
		char *end;
		long n;
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno != 0 || end == v || *end != '\0' || n < 1 || (size_t)n > max_limit) {
			snprintf(err, errlen, "limit: must be an integer between 1 and %zu",
				 max_limit);
			return -EINVAL;
		}
		pg->limit = (size_t)n;
	}
	if (order_param && (v = al_http_req_query(req, "order")) != NULL) {
		if (strcmp(v, "asc") == 0)
			pg->descending = 0;
		else if (strcmp(v, "desc") == 0)
			pg->descending = 1;
		else {
			snprintf(err, errlen, "order: must be 'asc' or 'desc'");
			return -EINVAL;
		}
	}
	v = al_http_req_query(req, "page");
	if (v != NULL && v[0] != '\0') {
		if ((v[0] != 'n' && v[0] != 'p') || v[1] != '.' || !valid_cursor_id(v + 2)) {
			snprintf(err, errlen, "page: not a valid page cursor");
			return -EINVAL;
		}
		pg->has_cursor = 1;
		pg->backward = v[0] == 'p';
		al_api_strlcpy(pg->cursor, v + 2, AL_ID_MAX);
	}
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		int64_t ms;
		char id[AL_ID_MAX];
		v = al_http_req_query(req, bounds[i].name);
		if (v == NULL)
			continue;
		if (al_time_parse(v, &ms) < 0 || ms < 0) {
			snprintf(err, errlen, "%s: expected an RFC 3339 timestamp", bounds[i].name);
			return -EINVAL;
		}
		if (bounds[i].after) {
			int64_t lo = bounds[i].incl ? ms : ms + 1;
			if (lo > pg->created_gte_ms)
				pg->created_gte_ms = lo;
		} else {
			int64_t hi = bounds[i].incl ? ms : ms - 1;
			if (hi < pg->created_lte_ms)
				pg->created_lte_ms = hi;
		}
		if (prefix == NULL)
			continue;
		/*
		 * Ids carry their creation millisecond in their leading digits, so a
		 * time bound is an id bound: exclusive bounds just outside the
		 * millisecond range keep every id inside it.
		 */
		if (bounds[i].after) {
			int64_t lo = bounds[i].incl ? ms - 1 : ms;
			if (lo < 0)
				continue;
			if (al_api_id_at(prefix, lo, 1, id, sizeof(id)) == 0)
				bound_after(pg->after_id, id);
		} else {
			int64_t hi = bounds[i].incl ? ms + 1 : ms;
			if (al_api_id_at(prefix, hi, 0, id, sizeof(id)) == 0)
				bound_before(pg->before_id, id);
		}
	}
	return 0;
}

static int page_token(char prefix, const char *id, json_t **out)
{
	char buf[AL_ID_MAX + 4];

	snprintf(buf, sizeof(buf), "%c.%s", prefix, id);
	*out = json_string(buf);
	return *out ? 0 : -ENOMEM;
}

int al_api_list_docs(al_store_tx *tx, const char *kind, const struct al_doc_query *base,
		     const struct al_api_page *pg, int bidirectional, al_api_render_fn render,
		     void *ud, json_t **out)
{
	struct al_doc_query q = *base;
	char after[AL_ID_MAX], before[AL_ID_MAX], first[AL_ID_MAX] = "", last[AL_ID_MAX] = "";
	json_t *data = json_array(), *page = NULL, *tok;
	int walk_desc = pg->backward ? !pg->descending : pg->descending;
	int more = 0, rc = 0;

	*out = NULL;
	if (data == NULL)
		return -ENOMEM;
	al_api_strlcpy(after, pg->after_id, sizeof(after));
	al_api_strlcpy(before, pg->before_id, sizeof(before));
	if (pg->has_cursor) {
		/* Walking down (descending) continues below the cursor, and vice versa. */
		if (walk_desc)
			bound_before(before, pg->cursor);
		else
			bound_after(after, pg->cursor);
	}
	q.descending = walk_desc;
	/*
	 * Fetch batches until the page is full: render may filter documents
	 * out in memory, so one batch can yield fewer than limit items.
	 */
	while (json_array_size(data) < pg->limit) {
		struct al_doc *docs = NULL;
		size_t n = 0, i;
		int has_more = 0;

		q.after_id = after[0] ? after : NULL;
		q.before_id = before[0] ? before : NULL;
		q.limit = pg->limit - json_array_size(data);
		rc = al_store_doc_list(tx, kind, &q, &docs, &n, &has_more);
		if (rc < 0)
			goto done;
		for (i = 0; i < n; i++) {
			int err = 0;
			json_t *item = render(&docs[i], ud, &err);
			if (err < 0) {
				rc = err;
				al_doc_array_free(docs, n);
				goto done;
			}
			if (walk_desc)
				al_api_strlcpy(before, docs[i].id, sizeof(before));
			else
				al_api_strlcpy(after, docs[i].id, sizeof(after));
			if (item == NULL)
				continue;
			json_array_append_new(data, item);
		}
		al_doc_array_free(docs, n);
		more = has_more;
		if (!has_more || n == 0)
			break;
	}
	if (pg->backward) {
		/* Walked against the list order: put the page back in list order. */
		size_t n = json_array_size(data);
		for (size_t i = 0; i < n / 2; i++) {
			json_t *a = json_incref(json_array_get(data, i));
			json_t *b = json_incref(json_array_get(data, n - 1 - i));
			json_array_set_new(data, i, b);
			json_array_set_new(data, n - 1 - i, a);
		}
	}
	if (json_array_size(data) > 0) {
		json_t *f = json_object_get(json_array_get(data, 0), "id");
		json_t *l = json_object_get(json_array_get(data, json_array_size(data) - 1), "id");
		al_api_strlcpy(first, json_string_value(f), sizeof(first));
		al_api_strlcpy(last, json_string_value(l), sizeof(last));
	}
	page = json_object();
	if (page == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	json_object_set(page, "data", data);
	/* There is a next page when we stopped short going forward, or came backward. */
	if (last[0] && (pg->backward || more)) {
		if ((rc = page_token('n', last, &tok)) < 0)
			goto done;
		json_object_set_new(page, "next_page", tok);
	} else {
		json_object_set_new(page, "next_page", json_null());
	}
	if (bidirectional) {
		if (first[0] && (pg->backward ? more : pg->has_cursor)) {
			if ((rc = page_token('p', first, &tok)) < 0)
				goto done;
			json_object_set_new(page, "prev_page", tok);
		} else {
			json_object_set_new(page, "prev_page", json_null());
		}
	}
	*out = page;
	page = NULL;
	rc = 0;
done:
	json_decref(page);
	json_decref(data);
	return rc;
}

int al_api_doc_archive(al_store_tx *tx, struct al_doc *d, json_t *obj, int64_t now_ms,
		       int64_t expected_version)
{
	int rc;

	if (d->archived_ms != 0)
		return 0;
	d->archived_ms = d->updated_ms = now_ms;
	al_api_set_time(obj, "archived_at", now_ms);
	al_api_set_time(obj, "updated_at", now_ms);
	if ((rc = al_api_doc_set_body(d, obj)) < 0)
		return rc;
	return al_store_doc_update(tx, d, expected_version);
}

/* ---- plain lists ---- */

struct plain_list_ud {
	struct al_api_page pg;
	int include_archived;
	const char *kind; /* static string from the handler */
};

static json_t *render_stored_doc(const struct al_doc *d, void *ud, int *err)
{
	json_t *o = al_api_doc_json(d);

	(void)ud;
	if (o == NULL)
		*err = -EIO;
	return o;
}

static int plain_list_fn(al_store_tx *tx, struct al_api_job *job)
{
	struct plain_list_ud *l = job->ud;
	struct al_doc_query q = {0};

	q.include_archived = l->include_archived;
	return al_api_list_docs(tx, l->kind, &q, &l->pg, 0, render_stored_doc, NULL, &job->out);
}

void al_api_list_plain(struct al_api_ctx *ctx, const char *kind, const char *prefix,
		       const char *noun)
{
	struct plain_list_ud *l = al_calloc(1, sizeof(*l));
	struct al_api_job *job = NULL;
	char err[256];

	if (l == NULL)
		goto oom;
	l->kind = kind;
	if (al_api_page_parse(ctx->req, prefix, 20, 100, 1, 0, &l->pg, err, sizeof(err)) < 0) {
		al_api_error(ctx->req, 400, NULL, "%s", err);
		al_free(l);
		return;
	}
	if (al_api_query_bool(ctx->req, "include_archived", 0, &l->include_archived) < 0) {
		al_api_error(ctx->req, 400, NULL, "include_archived: must be true or false");
		al_free(l);
		return;
	}
	if ((job = al_api_job_new(ctx, plain_list_fn)) == NULL)
		goto oom;
	job->ud = l;
	job->ud_free = al_free;
	al_api_job_submit(job);
	return;
oom:
	al_free(l);
	al_api_error_errno(ctx->req, -ENOMEM, noun);
}

int al_api_body(struct al_api_ctx *ctx, int empty_ok, al_api_validate_fn validate, json_t **in)
{
	char err[256] = ""; /* al_decode_body's -ENOMEM leaves it unset */
	const char *body;
	size_t len;

	body = al_http_req_body(ctx->req, &len);
	if (al_decode_body(body, len, empty_ok, in, err, sizeof(err)) < 0 ||
	    (validate != NULL && validate(*in, err, sizeof(err)) < 0)) {
		al_api_error(ctx->req, 400, NULL, "%s", err);
		json_decref(*in);
		*in = NULL;
		return -EINVAL;
	}
	return 0;
}

void al_api_create(struct al_api_ctx *ctx, al_api_build_fn build, al_api_job_fn fn,
		   const char *noun)
{
	char err[256] = "";
	json_t *in = NULL, *obj = NULL;
	struct al_api_job *job;

	if (al_api_body(ctx, 0, NULL, &in) < 0)
		return;
	if (build(in, 0, NULL, &obj, err, sizeof(err)) < 0) {
		al_api_error(ctx->req, 400, NULL, "%s", err);
		json_decref(in);
		return;
	}
	json_decref(in);
	if ((job = al_api_job_new(ctx, fn)) == NULL) {
		json_decref(obj);
		al_api_error_errno(ctx->req, -ENOMEM, noun);
		return;
	}
	job->out = obj;
	al_api_job_submit(job);
}
