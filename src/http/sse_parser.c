/*
 * sse_parser.c - the WHATWG event-stream algorithm, one byte range at a time.
 *
 * Bytes of the current line collect in `line` until a terminator arrives, so
 * a line split across pieces needs no special case. The one subtle part is
 * CRLF split as "...\r" | "\n...": the CR ends the line at once (a stream that
 * ends lines in bare CR must not wait for the next piece), and a remembered
 * flag makes the LF that may follow a no-op rather than an empty line, which
 * would dispatch the event twice.
 */
#include "http/sse_parser.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <string.h>

struct al_sse_parser {
	al_sse_event_cb cb;
	al_sse_comment_cb comment_cb; /* optional */
	void *ud;
	size_t max;
	al_buf line; /* the current, unterminated line */
	al_buf data; /* data buffer: each data value followed by "\n" */
	al_buf type; /* event type buffer */
	al_buf id;   /* last event id buffer */
	int64_t retry;
	int after_cr; /* the previous byte was a CR ending a line */
	int bom_done; /* the first bytes of the stream have been checked for a BOM */
	size_t bom_seen;
	int err; /* sticky failure */
};

void al_sse_parser_on_comment(al_sse_parser *p, al_sse_comment_cb cb)
{
	p->comment_cb = cb;
}

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

al_sse_parser *al_sse_parser_new(size_t max_event_bytes, al_sse_event_cb cb, void *ud)
{
	al_sse_parser *p = al_calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->cb = cb;
	p->ud = ud;
	p->max = max_event_bytes ? max_event_bytes : AL_SSE_DEFAULT_MAX_EVENT;
	p->retry = -1;
	return p;
}

void al_sse_parser_free(al_sse_parser *p)
{
	if (p == NULL)
		return;
	al_buf_free(&p->line);
	al_buf_free(&p->data);
	al_buf_free(&p->type);
	al_buf_free(&p->id);
	al_free(p);
}

int64_t al_sse_parser_retry(const al_sse_parser *p)
{
	return p->retry;
}

const char *al_sse_parser_last_id(const al_sse_parser *p)
{
	return p->id.data ? p->id.data : "";
}

static int set_buf(al_buf *b, const char *s, size_t n)
{
	al_buf_reset(b);
	return al_buf_append(b, s, n);
}

static int dispatch(al_sse_parser *p)
{
	struct al_sse_event ev;
	int rc = 0;

	/* An empty data buffer means no event: reset and carry on. */
	if (p->data.len == 0)
		goto done;
	p->data.len--; /* the trailing "\n" */
	p->data.data[p->data.len] = '\0';
	ev.type = p->type.len ? p->type.data : "message";
	ev.data = p->data.data;
	ev.data_len = p->data.len;
	ev.id = al_sse_parser_last_id(p);
	rc = p->cb ? p->cb(&ev, p->ud) : 0;
done:
	al_buf_reset(&p->data);
	al_buf_reset(&p->type);
	return rc;
}

static int all_digits(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int process_line(al_sse_parser *p, const char *line, size_t len)
{
	const char *colon, *value;
	size_t flen, vlen;

	if (len == 0)
		return dispatch(p);
	if (line[0] == ':') /* comment */
		return p->comment_cb ? p->comment_cb(p->ud) : 0;
	colon = memchr(line, ':', len);
	if (colon) {
		flen = (size_t)(colon - line);
		value = colon + 1;
		vlen = len - flen - 1;
		if (vlen > 0 && value[0] == ' ') {
			value++;
			vlen--;
		}
	} else {
		flen = len;
		value = line + len;
		vlen = 0;
	}
	if (flen == 5 && memcmp(line, "event", 5) == 0)
		return set_buf(&p->type, value, vlen);
	if (flen == 4 && memcmp(line, "data", 4) == 0) {
		if (vlen + 1 > p->max - p->data.len)
			return -E2BIG;
		if (al_buf_append(&p->data, value, vlen) < 0 ||
		    al_buf_append(&p->data, "\n", 1) < 0)
			return -ENOMEM;
		return 0;
	}
	if (flen == 2 && memcmp(line, "id", 2) == 0) {
		if (memchr(value, '\0', vlen) != NULL)
			return 0;
		return set_buf(&p->id, value, vlen);
	}
	if (flen == 5 && memcmp(line, "retry", 5) == 0) {
		if (all_digits(value, vlen)) {
			int64_t v = 0;
			for (size_t i = 0; i < vlen; i++) {
				if (v > (INT64_MAX - 9) / 10) {
					v = INT64_MAX; /* saturate rather than wrap */
					break;
				}
				v = v * 10 + (value[i] - '0');
			}
			p->retry = v;
		}
		return 0;
	}
	return 0; /* unknown field: ignored */
}

/* Ends the current line (collected in p->line plus `tail` in the input). */
static int end_line(al_sse_parser *p, const char *tail, size_t n)
{
	int rc;

	if (p->line.len == 0)
		return process_line(p, tail, n);
	if (n > p->max - p->line.len)
		return -E2BIG;
	if (al_buf_append(&p->line, tail, n) < 0)
		return -ENOMEM;
	rc = process_line(p, p->line.data, p->line.len);
	al_buf_reset(&p->line);
	return rc;
}

int al_sse_parser_feed(al_sse_parser *p, const char *buf, size_t len)
{
	size_t i = 0, start;
	int rc = 0;

	if (p->err)
		return p->err;
	/* The BOM may itself arrive split across pieces. */
	while (!p->bom_done && i < len) {
		if ((unsigned char)buf[i] == bom[p->bom_seen]) {
			i++;
			if (++p->bom_seen == sizeof(bom))
				p->bom_done = 1;
			continue;
		}
		/* Not a BOM after all: the bytes already matched are data. */
		p->bom_done = 1;
		if (p->bom_seen && (rc = al_buf_append(&p->line, bom, p->bom_seen)) < 0)
			goto fail;
	}
	if (p->after_cr && i < len) {
		if (buf[i] == '\n')
			i++;
		p->after_cr = 0;
	}
	start = i;
	while (i < len) {
		char c = buf[i];

		if (c != '\n' && c != '\r') {
			i++;
			continue;
		}
		if ((rc = end_line(p, buf + start, i - start)) < 0)
			goto fail;
		i++;
		if (c == '\r') {
			if (i < len) {
				if (buf[i] == '\n')
					i++;
			} else {
				p->after_cr = 1;
			}
		}
		start = i;
	}
	if (start < len) {
		if (len - start > p->max - p->line.len) {
			rc = -E2BIG;
			goto fail;
		}
		if ((rc = al_buf_append(&p->line, buf + start, len - start)) < 0)
			goto fail;
	}
	return 0;
fail:
	p->err = rc;
	return rc;
}
