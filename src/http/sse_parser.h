/*
 * sse_parser.h - incremental Server-Sent Events parser (WHATWG HTML,
 * "Parsing an event stream").
 *
 * Feed it the response body in pieces of any size; it calls the event
 * callback once per dispatched event. Lines may end in CRLF, LF or CR, and a
 * line (or a CRLF pair) may be split across pieces. A leading UTF-8 BOM is
 * skipped once. Comment lines (":...") are ignored, "data" lines are joined
 * with "\n", "event" sets the type (default "message"), "id" sets the last
 * event id (kept across events; ignored if it contains NUL), "retry" sets
 * the reconnection time when it is all ASCII digits. An event still open at
 * the end of the stream is discarded, as the spec requires.
 *
 * Memory is bounded: a line or an event's data longer than max_event_bytes
 * makes al_sse_parser_feed return -E2BIG, after which the parser refuses
 * further input (the stream is not trustworthy any more).
 */
#ifndef AL_HTTP_SSE_PARSER_H
#define AL_HTTP_SSE_PARSER_H

#include <stddef.h>
#include <stdint.h>

typedef struct al_sse_parser al_sse_parser;

/* One event; every pointer is valid only during the callback. */
struct al_sse_event {
	const char *type; /* "message" unless an event field said otherwise */
	const char *data; /* NUL-terminated, data_len bytes, no trailing "\n" */
	size_t data_len;
	const char *id; /* the last event id ("" if none yet) */
};

/* Return 0 to go on; a negative value stops feed(), which returns it. */
typedef int (*al_sse_event_cb)(const struct al_sse_event *ev, void *ud);

#define AL_SSE_DEFAULT_MAX_EVENT (1024u * 1024)

/*
 * Creates a parser. max_event_bytes: 0 means AL_SSE_DEFAULT_MAX_EVENT.
 * Returns NULL when out of memory. Free with al_sse_parser_free.
 */
al_sse_parser *al_sse_parser_new(size_t max_event_bytes, al_sse_event_cb cb, void *ud);
void al_sse_parser_free(al_sse_parser *p);

/*
 * Parses len bytes. Returns 0, -E2BIG (over the cap), -ENOMEM, or the
 * callback's negative value. After any error the parser stays failed and
 * returns the same error.
 */
int al_sse_parser_feed(al_sse_parser *p, const char *buf, size_t len);

/*
 * Added for the gateway's filter, which re-encodes events and would
 * otherwise swallow keep-alive comments: cb (with the parser's ud) is called
 * for each comment line, in stream order. Its negative value stops feed()
 * like an event callback's. NULL: comments are ignored (the default).
 */
typedef int (*al_sse_comment_cb)(void *ud);
void al_sse_parser_on_comment(al_sse_parser *p, al_sse_comment_cb cb);

/* The last "retry" value in milliseconds, or -1 if none was seen. */
int64_t al_sse_parser_retry(const al_sse_parser *p);
/* The last event id ("" if none). Valid until the next feed or free. */
const char *al_sse_parser_last_id(const al_sse_parser *p);

#endif
