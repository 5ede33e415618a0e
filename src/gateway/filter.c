/*
 * filter.c - dropping denied tools from tools/list results.
 */
#include "gateway/filter.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "http/sse_parser.h"
#include "mcp/jsonrpc.h"

#include <errno.h>
#include <string.h>

#define MAX_EVENT (8u << 20)

size_t al_gw_filter_tools_msg(const struct al_gw_route *r, json_t *msg)
{
	json_t *tools = json_object_get(json_object_get(msg, "result"), "tools");
	size_t removed = 0, i = 0;

	/*
	 * A batch (2025-03-26 clients accept an array of responses): every
	 * element is filtered, or a list wrapped in [...] would pass whole.
	 */
	if (json_is_array(msg)) {
		for (size_t k = 0; k < json_array_size(msg); k++)
			removed += al_gw_filter_tools_msg(r, json_array_get(msg, k));
		return removed;
	}
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
	if (al_mcp_msg_dump(j, out) < 0)
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
	size_t dropped; /* events whose data was not readable JSON */
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

	j = dl ? json_loadb(ev->data, ev->data_len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	if (dl && j == NULL) {
		/*
		 * Data this filter cannot read (not JSON, or a key twice, which
		 * a client's parser may read with the last one winning) cannot be
		 * checked: it is dropped, never passed on unfiltered. An empty
		 * event (a 2025-11-25 priming event) has nothing to check.
		 */
		f->dropped++;
		rc = 0;
		goto done;
	}
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
	if (j) {
		size_t n = al_gw_filter_tools_msg(f->route, j);
		if (n) {
			f->removed += n;
			if (al_mcp_msg_dump(j, &data) < 0)
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

/*
 * A comment is passed on as an empty one (":"), in its place: it is the
 * keep-alive of an idle stream (a GET stream can be quiet for minutes and a
 * tunnel or balancer closes a silent connection), and its text is nothing
 * the client needs.
 */
static int comment_cb(void *ud)
{
	al_gw_sse_filter *f = ud;

	return al_buf_append_str(f->out, ":\n") < 0 ? -ENOMEM : 0;
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
	al_sse_parser_on_comment(f->p, comment_cb);
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

size_t al_gw_sse_filter_dropped(const al_gw_sse_filter *f)
{
	return f->dropped;
}
