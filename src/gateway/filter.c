/*
 * filter.c - dropping denied tools from tools/list results.
 */
#include "gateway/filter.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "http/sse_parser.h"

#include <errno.h>
#include <string.h>

#define MAX_EVENT (8u << 20)

size_t al_gw_filter_tools_msg(const struct al_gw_route *r, json_t *msg)
{
	json_t *tools = json_object_get(json_object_get(msg, "result"), "tools");
	size_t removed = 0, i = 0;

	if (!json_is_array(tools) || !al_gw_route_filters_tools(r))
		return 0;
	while (i < json_array_size(tools)) {
		const char *name =
		    json_string_value(json_object_get(json_array_get(tools, i), "name"));
		if (!al_gw_tool_allowed(r, name)) {
			json_array_remove(tools, i);
			removed++;
		} else {
			i++;
		}
	}
	return removed;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
	return al_buf_append(data, buffer, size) < 0 ? -1 : 0;
}

int al_gw_filter_json_body(const struct al_gw_route *r, const char *body, size_t len,
			   struct al_buf *out, size_t *removed)
{
	json_error_t je;
	json_t *j;
	size_t n;
	int rc = 0;

	if (removed)
		*removed = 0;
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL)
		return -EINVAL;
	n = al_gw_filter_tools_msg(r, j);
	if (removed)
		*removed = n;
	if (json_dump_callback(j, dump_cb, out, JSON_COMPACT) < 0)
		rc = -ENOMEM;
	json_decref(j);
	return rc;
}

struct al_gw_sse_filter {
	const struct al_gw_route *route;
	al_sse_parser *p;
	al_buf *out; /* during feed */
	/* The id the client last saw from us (NULL: none yet, like ""), kept
	 * whole: the client resumes with it (Last-Event-ID). */
	char *last_id;
	size_t removed;
};

/* "field: line" per line of data. */
static int put_lines(al_buf *b, const char *field, const char *s, size_t n)
{
	size_t i = 0;

	for (;;) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t e = nl ? (size_t)(nl - s) : n;
		if (al_buf_appendf(b, "%s: ", field) < 0 || al_buf_append(b, s + i, e - i) < 0 ||
		    al_buf_append_str(b, "\n") < 0)
			return -ENOMEM;
		if (nl == NULL)
			return 0;
		i = e + 1;
	}
}

static int event_cb(const struct al_sse_event *ev, void *ud)
{
	al_gw_sse_filter *f = ud;
	al_buf data = {0};
	json_t *j = NULL;
	const char *d = ev->data;
	size_t dl = ev->data_len;
	int rc = -ENOMEM;

	if (strcmp(ev->type, "message") != 0 &&
	    put_lines(f->out, "event", ev->type, strlen(ev->type)) < 0)
		goto done;
	/* Written whenever it changes, also when the upstream resets it to
	 * "" ("id" with no value), or the client would resume from an id the
	 * upstream withdrew. */
	if (strcmp(ev->id, f->last_id ? f->last_id : "") != 0) {
		char *id = al_strdup(ev->id);
		if (id == NULL || put_lines(f->out, "id", ev->id, strlen(ev->id)) < 0) {
			al_free(id);
			goto done;
		}
		al_free(f->last_id);
		f->last_id = id;
	}
	j = json_loadb(ev->data, ev->data_len, JSON_REJECT_DUPLICATES, NULL);
	if (j) {
		size_t n = al_gw_filter_tools_msg(f->route, j);
		if (n) {
			f->removed += n;
			if (json_dump_callback(j, dump_cb, &data, JSON_COMPACT) < 0)
				goto done;
			d = data.data;
			dl = data.len;
		}
	}
	if (put_lines(f->out, "data", d, dl) < 0 || al_buf_append_str(f->out, "\n") < 0)
		goto done;
	rc = 0;
done:
	json_decref(j);
	al_buf_free(&data);
	return rc;
}

al_gw_sse_filter *al_gw_sse_filter_new(const struct al_gw_route *r)
{
	al_gw_sse_filter *f = al_calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->route = r;
	f->p = al_sse_parser_new(MAX_EVENT, event_cb, f);
	if (f->p == NULL) {
		al_free(f);
		return NULL;
	}
	return f;
}

void al_gw_sse_filter_free(al_gw_sse_filter *f)
{
	if (f == NULL)
		return;
	al_sse_parser_free(f->p);
	al_free(f->last_id);
	al_free(f);
}

int al_gw_sse_filter_feed(al_gw_sse_filter *f, const char *data, size_t len, al_buf *out)
{
	int rc;

	f->out = out;
	rc = al_sse_parser_feed(f->p, data, len);
	f->out = NULL;
	return rc;
}

size_t al_gw_sse_filter_removed(const al_gw_sse_filter *f)
{
	return f->removed;
}
