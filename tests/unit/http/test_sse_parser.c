/* test_sse_parser.c - the WHATWG event-stream parsing rules, piece by piece. */
#include "http/sse_parser.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "unit/unit.h"

#include <errno.h>
#include <stdio.h>

/* Events are recorded as "type|id|data" lines joined by "\n---\n". */
struct rec {
	al_buf out;
	int n;
	int stop_at; /* return -EINTR from this event (1-based); 0 never */
};

static int rec_cb(const struct al_sse_event *ev, void *ud)
{
	struct rec *r = ud;

	AL_ASSERT_INT_EQ(strlen(ev->data), ev->data_len);
	if (r->n++ && al_buf_append_str(&r->out, "\n---\n") < 0)
		return -ENOMEM;
	if (al_buf_appendf(&r->out, "%s|%s|%s", ev->type, ev->id, ev->data) < 0)
		return -ENOMEM;
	return r->stop_at && r->n == r->stop_at ? -EINTR : 0;
}

/* Parses s whole, then again split at every possible position and byte by byte. */
static void check(const char *s, const char *want, int want_n)
{
	size_t len = strlen(s);

	for (size_t split = 0; split <= len + 1; split++) {
		struct rec r = {0};
		al_sse_parser *p = al_sse_parser_new(0, rec_cb, &r);

		AL_ASSERT_NOT_NULL(p);
		if (split == len + 1) {
			for (size_t i = 0; i < len; i++)
				AL_ASSERT_INT_EQ(al_sse_parser_feed(p, s + i, 1), 0);
		} else {
			AL_ASSERT_INT_EQ(al_sse_parser_feed(p, s, split), 0);
			AL_ASSERT_INT_EQ(al_sse_parser_feed(p, s + split, len - split), 0);
		}
		AL_ASSERT_INT_EQ(r.n, want_n);
		AL_ASSERT_STR_EQ(r.out.data ? r.out.data : "", want);
		al_sse_parser_free(p);
		al_buf_free(&r.out);
	}
}

AL_TEST(sse_basic_event)
{
	check("data: hello\n\n", "message||hello", 1);
	check("event: ping\ndata: {\"a\":1}\n\n", "ping||{\"a\":1}", 1);
}

AL_TEST(sse_data_lines_join_with_newline)
{
	check("data: a\ndata: b\ndata\ndata:c\n\n", "message||a\nb\n\nc", 1);
	/* Only one leading space is removed. */
	check("data:  two spaces\n\n", "message|| two spaces", 1);
}

AL_TEST(sse_line_endings)
{
	check("data: a\r\n\r\ndata: b\r\rdata: c\n\n",
	      "message||a\n---\nmessage||b\n---\nmessage||c", 3);
	/* CR LF must not count as two line ends (no extra dispatch). */
	check("data: x\r\ndata: y\r\n\r\n", "message||x\ny", 1);
}

AL_TEST(sse_event_type_resets_after_dispatch)
{
	check("event: a\ndata: 1\n\ndata: 2\n\n", "a||1\n---\nmessage||2", 2);
	/* An event with no data is not dispatched, and its type does not leak. */
	check("event: lost\n\ndata: 3\n\n", "message||3", 1);
}

AL_TEST(sse_id_persists_and_nul_ignored)
{
	struct rec r = {0};
	al_sse_parser *p;
	static const char s[] = "id: 7\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\n";

	check("id: 1\ndata: a\n\ndata: b\n\n", "message|1|a\n---\nmessage|1|b", 2);
	p = al_sse_parser_new(0, rec_cb, &r);
	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, s, sizeof(s) - 1), 0);
	AL_ASSERT_STR_EQ(r.out.data,
			 "message|7|a\n---\nmessage|7|b\n---\nmessage|7|c\n---\nmessage||d");
	AL_ASSERT_STR_EQ(al_sse_parser_last_id(p), "");
	al_sse_parser_free(p);
	al_buf_free(&r.out);
}

AL_TEST(sse_comments_and_unknown_fields)
{
	check(": ping\n:\nfoo: bar\ndata: z\n: another\n\n", "message||z", 1);
	/* A lone comment never dispatches anything. */
	check(": keep-alive\n\n", "", 0);
}

AL_TEST(sse_retry)
{
	struct rec r = {0};
	al_sse_parser *p = al_sse_parser_new(0, rec_cb, &r);
	const char *s1 = "retry: 1500\n", *s2 = "retry: 12a\nretry: -5\nretry:\n";
	const char *s3 = "retry: 99999999999999999999999\n";

	AL_ASSERT_INT_EQ(al_sse_parser_retry(p), -1);
	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, s1, strlen(s1)), 0);
	AL_ASSERT_INT_EQ(al_sse_parser_retry(p), 1500);
	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, s2, strlen(s2)), 0);
	AL_ASSERT_INT_EQ(al_sse_parser_retry(p), 1500);
	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, s3, strlen(s3)), 0);
	AL_ASSERT_INT_EQ(al_sse_parser_retry(p), INT64_MAX);
	AL_ASSERT_INT_EQ(r.n, 0);
	al_sse_parser_free(p);
}

AL_TEST(sse_bom_skipped_once)
{
	check("\xEF\xBB\xBF"
	      "data: a\n\n",
	      "message||a", 1);
	/* A second BOM is not special: it becomes part of the field name. */
	check("\xEF\xBB\xBF\xEF\xBB\xBF"
	      "data: a\n\ndata: b\n\n",
	      "message||b", 1);
	/* A partial BOM is data. */
	check("\xEF\xBB"
	      "data: q\n\n",
	      "", 0);
}

AL_TEST(sse_incomplete_event_discarded_at_end)
{
	check("data: done\n\ndata: half", "message||done", 1);
	check("data: done\n\ndata: half\n", "message||done", 1);
}

AL_TEST(sse_max_event_size)
{
	struct rec r = {0};
	al_sse_parser *p = al_sse_parser_new(16, rec_cb, &r);
	const char *ok = "data: 0123456789abc\n\n"; /* 13 data bytes + \n: fits 16 */
	const char *big = "data: 0123456789\ndata: 0123456789\n\n";

	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, ok, strlen(ok)), 0);
	AL_ASSERT_INT_EQ(r.n, 1);
	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, big, strlen(big)), -E2BIG);
	/* Sticky: the parser refuses more input. */
	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, ok, strlen(ok)), -E2BIG);
	AL_ASSERT_INT_EQ(r.n, 1);
	al_sse_parser_free(p);
	al_buf_free(&r.out);

	/* A single line that never ends is capped while it is being buffered. */
	r = (struct rec){0};
	p = al_sse_parser_new(16, rec_cb, &r);
	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, ": 0123456789", 12), 0);
	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, "0123456789", 10), -E2BIG);
	al_sse_parser_free(p);
}

AL_TEST(sse_callback_error_stops_feed)
{
	struct rec r = {.stop_at = 1};
	al_sse_parser *p = al_sse_parser_new(0, rec_cb, &r);
	const char *s = "data: 1\n\ndata: 2\n\n";

	AL_ASSERT_INT_EQ(al_sse_parser_feed(p, s, strlen(s)), -EINTR);
	AL_ASSERT_INT_EQ(r.n, 1);
	al_sse_parser_free(p);
	al_buf_free(&r.out);
}

AL_TEST(sse_anthropic_stream_shape)
{
	check("event: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\n"
	      "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n",
	      "message_start||{\"type\":\"message_start\"}\n---\nping||{\"type\": \"ping\"}", 2);
}

AL_TEST(sse_alloc_failures)
{
	int seen_ok = 0;

	for (long n = 0; n < 50 && !seen_ok; n++) {
		struct rec r = {0};
		al_sse_parser *p;
		const char *s = "event: e\nid: 1\ndata: abc\ndata: def\n\n";
		int rc;

		al_alloc_fail_after(n);
		p = al_sse_parser_new(0, rec_cb, &r);
		rc = p ? al_sse_parser_feed(p, s, 5) : -ENOMEM;
		if (rc == 0)
			rc = al_sse_parser_feed(p, s + 5, strlen(s) - 5);
		al_alloc_fail_after(-1);
		if (rc == 0) {
			AL_ASSERT_STR_EQ(r.out.data, "e|1|abc\ndef");
			seen_ok = 1;
		} else {
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
		}
		al_sse_parser_free(p);
		al_buf_free(&r.out);
	}
	AL_ASSERT(seen_ok);
}
