/* test_parser.c - the strict HTTP/1.1 request parser. */
#include "unit/unit.h"

#include "core/alloc.h"
#include "http/parser.h"

#include <stdio.h>
#include <string.h>

/*
 * Feeds s in pieces of `chunk` bytes (0: all at once) until the parser
 * completes or fails. Returns the final rc; *req gets the request on DONE,
 * *used the bytes consumed in total.
 */
static enum al_http_parse_rc feed_chunks(al_http_parser *p, const char *s, size_t len, size_t chunk,
					 struct al_http_request **req, size_t *used)
{
	size_t off = 0;
	enum al_http_parse_rc rc = AL_HTTP_PARSE_MORE;

	*req = NULL;
	while (off < len) {
		size_t n = chunk && len - off > chunk ? chunk : len - off, c = 0;
		rc = al_http_parser_feed(p, s + off, n, &c);
		AL_ASSERT(c <= n);
		off += c;
		if (rc != AL_HTTP_PARSE_MORE)
			break;
		AL_ASSERT_INT_EQ(c, n);
	}
	if (rc == AL_HTTP_PARSE_DONE)
		*req = al_http_parser_take(p);
	if (used)
		*used = off;
	return rc;
}

/* Parses one complete input and expects the given error status. */
static void expect_status(const char *s, int status)
{
	al_http_parser *p = al_http_parser_new(NULL);
	struct al_http_request *r;
	const char *msg = NULL;

	AL_ASSERT_NOT_NULL(p);
	enum al_http_parse_rc rc = feed_chunks(p, s, strlen(s), 0, &r, NULL);
	if (rc != AL_HTTP_PARSE_ERROR)
		fprintf(stderr, "    input: %s\n", s);
	AL_ASSERT_INT_EQ(rc, AL_HTTP_PARSE_ERROR);
	AL_ASSERT_INT_EQ(al_http_parser_error(p, &msg), status);
	AL_ASSERT_NOT_NULL(msg);
	AL_ASSERT_NULL(r);
	al_http_parser_free(p);
}

static struct al_http_request *parse_ok(const char *s, size_t len, size_t chunk)
{
	al_http_parser *p = al_http_parser_new(NULL);
	struct al_http_request *r;
	size_t used;
	const char *msg = NULL;

	AL_ASSERT_NOT_NULL(p);
	enum al_http_parse_rc rc = feed_chunks(p, s, len, chunk, &r, &used);
	if (rc == AL_HTTP_PARSE_ERROR)
		fprintf(stderr, "    error %d: %s\n", al_http_parser_error(p, &msg),
			(al_http_parser_error(p, &msg), msg));
	AL_ASSERT_INT_EQ(rc, AL_HTTP_PARSE_DONE);
	AL_ASSERT_INT_EQ(used, len);
	al_http_parser_free(p);
	return r;
}

AL_TEST(http_parser_simple_get)
{
	const char *s = "GET /v1/agents/a%20b?limit=10&after_id=x%2By+z&flag HTTP/1.1\r\n"
			"Host: localhost\r\nX-Api-Key:  secret \t\r\nAccept: */*\r\n\r\n";
	struct al_http_request *r = parse_ok(s, strlen(s), 0);

	AL_ASSERT_STR_EQ(r->method, "GET");
	AL_ASSERT_STR_EQ(r->target, "/v1/agents/a%20b?limit=10&after_id=x%2By+z&flag");
	AL_ASSERT_STR_EQ(r->path, "/v1/agents/a b");
	AL_ASSERT_STR_EQ(r->query, "limit=10&after_id=x%2By+z&flag");
	AL_ASSERT_STR_EQ(al_http_request_param(r, "limit"), "10");
	AL_ASSERT_STR_EQ(al_http_request_param(r, "after_id"), "x+y z");
	AL_ASSERT_STR_EQ(al_http_request_param(r, "flag"), "");
	AL_ASSERT_NULL(al_http_request_param(r, "missing"));
	AL_ASSERT_INT_EQ(r->nheaders, 3);
	AL_ASSERT_STR_EQ(al_http_request_header(r, "x-api-key"), "secret");
	AL_ASSERT_STR_EQ(r->headers[2].name, "Accept");
	AL_ASSERT_INT_EQ(r->version_minor, 1);
	AL_ASSERT_INT_EQ(r->keep_alive, 1);
	AL_ASSERT_INT_EQ(r->body_len, 0);
	AL_ASSERT_STR_EQ(r->body, "");
	al_http_request_free(r);
}

AL_TEST(http_parser_content_length_body_byte_by_byte)
{
	const char *s = "POST /v1/sessions HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n"
			"Content-Type: application/json\r\n\r\n{\"a\":\"b\\r\"}\n";
	struct al_http_request *r = parse_ok(s, strlen(s), 1);

	AL_ASSERT_STR_EQ(r->method, "POST");
	AL_ASSERT_INT_EQ(r->body_len, 12);
	AL_ASSERT_STR_EQ(r->body, "{\"a\":\"b\\r\"}\n");
	al_http_request_free(r);
}

AL_TEST(http_parser_every_split_point)
{
	const char *s = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
			"5;name=val;q=\"a b\"\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n";
	size_t len = strlen(s);

	for (size_t chunk = 1; chunk <= len; chunk++) {
		struct al_http_request *r = parse_ok(s, len, chunk);
		AL_ASSERT_STR_EQ(r->body, "hello world");
		AL_ASSERT_INT_EQ(r->body_len, 11);
		AL_ASSERT_INT_EQ(r->ntrailers, 1);
		AL_ASSERT_STR_EQ(r->trailers[0].name, "X-T");
		AL_ASSERT_NULL(al_http_request_header(r, "X-T"));
		al_http_request_free(r);
	}
}

AL_TEST(http_parser_pipelining)
{
	const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
			"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
			"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
	const char *paths[] = {"/a", "/b", "/c"};
	al_http_parser *p = al_http_parser_new(NULL);
	size_t off = 0, len = strlen(s);

	for (int i = 0; i < 3; i++) {
		size_t used = 0;
		AL_ASSERT_INT_EQ(al_http_parser_started(p), 0);
		AL_ASSERT_INT_EQ(al_http_parser_feed(p, s + off, len - off, &used),
				 AL_HTTP_PARSE_DONE);
		/* DONE again without consuming until taken. */
		size_t again = 99;
		AL_ASSERT_INT_EQ(al_http_parser_feed(p, s + off + used, len - off - used, &again),
				 AL_HTTP_PARSE_DONE);
		AL_ASSERT_INT_EQ(again, 0);
		off += used;
		struct al_http_request *r = al_http_parser_take(p);
		AL_ASSERT_NOT_NULL(r);
		AL_ASSERT_STR_EQ(r->path, paths[i]);
		AL_ASSERT_INT_EQ(r->keep_alive, i < 2);
		if (i == 1)
			AL_ASSERT_STR_EQ(r->body, "xyz");
		al_http_request_free(r);
	}
	AL_ASSERT_INT_EQ(off, len);
	AL_ASSERT_NULL(al_http_parser_take(p));
	al_http_parser_free(p);
}

AL_TEST(http_parser_keep_alive_rules)
{
	struct {
		const char *req;
		int ka;
	} cases[] = {
	    {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1},
	    {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 0},
	    {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n", 0},
	    {"GET / HTTP/1.0\r\n\r\n", 0},
	    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
	    {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct al_http_request *r = parse_ok(cases[i].req, strlen(cases[i].req), 0);
		AL_ASSERT_INT_EQ(r->keep_alive, cases[i].ka);
		al_http_request_free(r);
	}
}

AL_TEST(http_parser_misc_accepted)
{
	/* Leading empty line, absolute-form, OPTIONS *, Expect: 100-continue. */
	struct al_http_request *r;
	const char *a =
	    "\r\nGET http://example.com/p%2Fq?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
	r = parse_ok(a, strlen(a), 0);
	AL_ASSERT_STR_EQ(r->path, "/p/q");
	AL_ASSERT_STR_EQ(al_http_request_param(r, "x"), "1");
	al_http_request_free(r);

	const char *b = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
	r = parse_ok(b, strlen(b), 0);
	AL_ASSERT_STR_EQ(r->path, "*");
	al_http_request_free(r);

	const char *c = "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
			"Content-Length: 2\r\n\r\n";
	al_http_parser *p = al_http_parser_new(NULL);
	size_t used;
	AL_ASSERT_INT_EQ(al_http_parser_wants_continue(p), 0);
	AL_ASSERT_INT_EQ(al_http_parser_feed(p, c, strlen(c), &used), AL_HTTP_PARSE_MORE);
	AL_ASSERT_INT_EQ(al_http_parser_wants_continue(p), 1);
	AL_ASSERT_INT_EQ(al_http_parser_feed(p, "ok", 2, &used), AL_HTTP_PARSE_DONE);
	r = al_http_parser_take(p);
	AL_ASSERT_INT_EQ(r->expect_continue, 1);
	AL_ASSERT_STR_EQ(r->body, "ok");
	AL_ASSERT_INT_EQ(al_http_parser_wants_continue(p), 0);
	al_http_request_free(r);

	/* HTTP/1.0: the expectation is ignored, no interim response is asked for. */
	const char *d = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
	AL_ASSERT_INT_EQ(al_http_parser_feed(p, d, strlen(d), &used), AL_HTTP_PARSE_MORE);
	AL_ASSERT_INT_EQ(al_http_parser_wants_continue(p), 0);
	AL_ASSERT_INT_EQ(al_http_parser_feed(p, "ok", 2, &used), AL_HTTP_PARSE_DONE);
	r = al_http_parser_take(p);
	AL_ASSERT_INT_EQ(r->expect_continue, 0);
	al_http_request_free(r);
	al_http_parser_free(p);
}

AL_TEST(http_parser_rejects_line_endings)
{
	expect_status("GET / HTTP/1.1\nHost: h\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nHost: h\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nHost: h\r\n\n", 400);
	expect_status("GET / HTTP/1.1\rHost: h\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400);
	expect_status("\n", 400);
}

AL_TEST(http_parser_rejects_header_syntax)
{
	/* obs-fold */
	expect_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n  b\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n", 400);
	/* whitespace before the colon */
	expect_status("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400);
	/* invalid header name characters, empty name, no colon */
	expect_status("GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nHost: h\r\nX\"A: 1\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", 400);
	/* control characters in values */
	expect_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01"
		      "b\r\n\r\n",
		      400);
	expect_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f\r\n\r\n", 400);
	/* Host rules */
	expect_status("GET / HTTP/1.1\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	/* unsupported expectation */
	expect_status("GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n", 417);
}

AL_TEST(http_parser_rejects_nul_in_value)
{
	const char s[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
	al_http_parser *p = al_http_parser_new(NULL);
	struct al_http_request *r;

	AL_ASSERT_INT_EQ(feed_chunks(p, s, sizeof(s) - 1, 0, &r, NULL), AL_HTTP_PARSE_ERROR);
	AL_ASSERT_INT_EQ(al_http_parser_error(p, NULL), 400);
	al_http_parser_free(p);
}

AL_TEST(http_parser_rejects_request_line)
{
	expect_status("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400);
	expect_status(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET / http/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400);
	expect_status("GET /\r\n\r\n", 400);
	expect_status("GET x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	expect_status("GET /a?x=%0 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	/* versions */
	expect_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
	expect_status("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505);
	expect_status("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505);
}

AL_TEST(http_parser_rejects_framing)
{
	/* duplicate Content-Length, even equal values */
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
		      "Content-Length: 1\r\n\r\nx",
		      400);
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\nx", 400);
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx", 400);
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\nx", 400);
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x1\r\n\r\nx", 400);
	/* Content-Length with Transfer-Encoding */
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		      400);
	/* Transfer-Encoding other than exactly chunked */
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		      501);
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
		      501);
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 501);
	expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n",
		      400);
	expect_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

AL_TEST(http_parser_rejects_bad_chunks)
{
	const char *h = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
	const char *bad[] = {
	    "x\r\n",			     /* not hex */
	    "\r\n",			     /* empty size */
	    "-1\r\n",			     /* sign */
	    " 5\r\nhello\r\n0\r\n\r\n",	     /* leading space */
	    "5 x\r\nhello\r\n",		     /* junk after size */
	    "5 \r\nhello\r\n0\r\n\r\n",	     /* blank after size, no extension */
	    "5;a=b\t\r\nhello\r\n0\r\n\r\n", /* blank after an extension */
	    "5;\r\nhello\r\n",		     /* empty extension name */
	    "5;a=\r\nhello\r\n",	     /* empty extension value */
	    "5;a=\"x\r\nhello\r\n",	     /* unterminated quoted string */
	    "5;a=b c\r\nhello\r\n",	     /* junk after extension */
	    "5\r\nhelloXX",		     /* no CRLF after data */
	    "5\r\nhello\n",		     /* bare LF after data */
	    "5\nhello\r\n",		     /* bare LF after size */
	    "0\r\nX-T 1\r\n\r\n",	     /* bad trailer */
	    "0\r\n X-T: 1\r\n\r\n",	     /* folded trailer */
	    "0\r\nX-T: \x01\r\n\r\n",	     /* control char in trailer */
	};
	char buf[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", h, bad[i]);
		expect_status(buf, 400);
	}
	/* A size that overflows, or is over the body limit: 413. */
	snprintf(buf, sizeof(buf), "%s%s", h, "fffffffffffffffffffff\r\n");
	expect_status(buf, 413);
	snprintf(buf, sizeof(buf), "%s%s", h, "1000000\r\n");
	expect_status(buf, 413);
}

AL_TEST(http_parser_limits)
{
	struct al_http_parser_limits lim = {
	    .max_header_bytes = 128, .max_body_bytes = 10, .max_headers = 3};
	struct {
		const char *s;
		int status;
	} cases[] = {
	    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", 413},
	    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "6\r\nabcdef\r\n5\r\nghijk\r\n",
	     413},
	    {"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431},
	    {"GET / HTTP/1.1\r\nHost: h\r\nX-Long: "
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
	     431},
	    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
	     431},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		al_http_parser *p = al_http_parser_new(&lim);
		struct al_http_request *r;
		AL_ASSERT_INT_EQ(feed_chunks(p, cases[i].s, strlen(cases[i].s), 1, &r, NULL),
				 AL_HTTP_PARSE_ERROR);
		AL_ASSERT_INT_EQ(al_http_parser_error(p, NULL), cases[i].status);
		/* A failed parser stays failed. */
		size_t used = 7;
		AL_ASSERT_INT_EQ(al_http_parser_feed(p, "GET", 3, &used), AL_HTTP_PARSE_ERROR);
		AL_ASSERT_INT_EQ(used, 0);
		al_http_parser_free(p);
	}
	/* Exactly at the limits passes. */
	const char *ok = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789";
	al_http_parser *p = al_http_parser_new(&lim);
	struct al_http_request *r;
	AL_ASSERT_INT_EQ(feed_chunks(p, ok, strlen(ok), 0, &r, NULL), AL_HTTP_PARSE_DONE);
	AL_ASSERT_INT_EQ(r->body_len, 10);
	al_http_request_free(r);
	al_http_parser_free(p);
}

/* Every allocation failing in turn must unwind cleanly (ASan checks leaks). */
AL_TEST(http_parser_alloc_failures)
{
	const char *s = "POST /a%20b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
			"\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n";
	int succeeded = 0;

	for (long n = 0; n < 200 && !succeeded; n++) {
		al_http_parser *p;
		struct al_http_request *r = NULL;
		enum al_http_parse_rc rc;

		al_alloc_fail_after(n);
		p = al_http_parser_new(NULL);
		if (p == NULL) {
			al_alloc_fail_after(-1);
			continue;
		}
		rc = feed_chunks(p, s, strlen(s), 7, &r, NULL);
		al_alloc_fail_after(-1);
		if (rc == AL_HTTP_PARSE_DONE) {
			AL_ASSERT_STR_EQ(r->body, "abc");
			succeeded = 1;
		} else {
			AL_ASSERT_INT_EQ(rc, AL_HTTP_PARSE_ERROR);
			AL_ASSERT_INT_EQ(al_http_parser_error(p, NULL), 500);
		}
		al_http_request_free(r);
		al_http_parser_free(p);
	}
	AL_ASSERT_INT_EQ(succeeded, 1);
}
