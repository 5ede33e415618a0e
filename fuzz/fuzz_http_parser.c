/*
 * fuzz_http_parser.c - libFuzzer target for the HTTP/1.1 request parser.
 *
 * Input layout: byte 0 picks the limits (small limits reach the 413/431
 * paths), bytes 1..8 are a table of chunk sizes used in turn, the rest is
 * the byte stream. Each chunk is copied into its own exactly sized heap
 * block, so ASan flags any read past what the parser was given.
 *
 * Invariants checked:
 *   - consumed never exceeds the chunk, and MORE consumes everything;
 *   - a completed request is self-consistent (token method, NUL-free
 *     strings, body NUL-terminated at body_len, limits respected);
 *   - an error carries a known status and a message, and sticks;
 *   - splitting the input differently never changes the outcome: the
 *     chunked run and a one-shot run produce the same transcript.
 */
#include "core/buf.h"
#include "http/parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static int is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_request(const struct al_http_request *r, const struct al_http_parser_limits *l)
{
	CHECK(r->method && r->method[0]);
	for (const char *c = r->method; *c; c++)
		CHECK(is_tchar((unsigned char)*c));
	CHECK(r->target && r->target[0]);
	for (const char *c = r->target; *c; c++)
		CHECK((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f);
	CHECK(r->path && r->path[0]);
	CHECK(r->query);
	CHECK(r->version_minor == 0 || r->version_minor == 1);
	CHECK(r->keep_alive == 0 || r->keep_alive == 1);
	CHECK(r->body && r->body[r->body_len] == '\0');
	CHECK(r->body_len <= l->max_body_bytes);
	CHECK(r->nheaders <= l->max_headers && r->ntrailers <= l->max_headers);
	for (size_t i = 0; i < r->nheaders; i++) {
		CHECK(r->headers[i].name[0]);
		for (const char *c = r->headers[i].name; *c; c++)
			CHECK(is_tchar((unsigned char)*c));
		for (const char *c = r->headers[i].value; *c; c++)
			CHECK(*c != '\r' && *c != '\n');
		CHECK(al_http_request_header(r, r->headers[i].name) != NULL);
	}
	for (size_t i = 0; i < r->nparams; i++)
		CHECK(al_http_request_param(r, r->params[i].name) != NULL);
}

/* Runs the parser over data with the given chunk table; writes a transcript. */
static void run(const uint8_t *data, size_t len, const uint8_t *sizes, size_t nsizes,
		const struct al_http_parser_limits *lim, al_buf *out)
{
	al_http_parser *p = al_http_parser_new(lim);
	size_t off = 0, k = 0;

	if (p == NULL)
		abort();
	while (off < len) {
		size_t n = nsizes ? (size_t)(sizes[k++ % nsizes] % 32) + 1 : len - off;
		if (n > len - off)
			n = len - off;
		char *chunk = malloc(n ? n : 1);
		size_t used = 0;
		CHECK(chunk);
		memcpy(chunk, data + off, n);
		enum al_http_parse_rc rc = al_http_parser_feed(p, chunk, n, &used);
		CHECK(used <= n);
		off += used;
		if (rc == AL_HTTP_PARSE_MORE) {
			CHECK(used == n);
		} else if (rc == AL_HTTP_PARSE_DONE) {
			struct al_http_request *r = al_http_parser_take(p);
			CHECK(r);
			CHECK(!al_http_parser_started(p));
			check_request(r, lim);
			al_buf_appendf(out, "REQ %s %s %zu %d|", r->method, r->target, r->body_len,
				       r->keep_alive);
			al_buf_append(out, r->body, r->body_len);
			for (size_t i = 0; i < r->nheaders; i++)
				al_buf_appendf(out, "|%s=%s", r->headers[i].name,
					       r->headers[i].value);
			al_buf_append_str(out, "\n");
			al_http_request_free(r);
		} else {
			const char *msg = NULL;
			int st = al_http_parser_error(p, &msg);
			CHECK(msg != NULL);
			CHECK(st == 400 || st == 413 || st == 417 || st == 431 || st == 500 ||
			      st == 501 || st == 505);
			size_t again = 1;
			CHECK(al_http_parser_feed(p, chunk, n, &again) == AL_HTTP_PARSE_ERROR);
			CHECK(again == 0);
			al_buf_appendf(out, "ERR %d %s\n", st, msg);
			free(chunk);
			break;
		}
		free(chunk);
	}
	al_buf_appendf(out, "END started=%d\n", al_http_parser_started(p));
	al_http_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct al_http_parser_limits lim = {0};
	al_buf a = {0}, b = {0};

	if (size < 9)
		return 0;
	if (data[0] & 1) {
		lim.max_header_bytes = 64 + data[0];
		lim.max_body_bytes = data[0] >> 1;
		lim.max_headers = 1 + (data[0] >> 5);
	} else {
		lim.max_header_bytes = 4096;
		lim.max_body_bytes = 4096;
		lim.max_headers = 32;
	}
	run(data + 9, size - 9, data + 1, 8, &lim, &a);
	run(data + 9, size - 9, NULL, 0, &lim, &b);
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0)) {
		fprintf(stderr, "chunked:\n%s\none-shot:\n%s\n", a.data, b.data);
		abort();
	}
	al_buf_free(&a);
	al_buf_free(&b);
	return 0;
}
