/*
 * parser.h - strict incremental HTTP/1.1 request parser.
 *
 * Pure code (no I/O, no libuv) so it can be fuzzed on its own. Feed it byte
 * chunks of any size; it consumes bytes up to the end of one request and
 * stops there, so bytes of a pipelined next request stay with the caller.
 *
 * Strictness is a security property here: every ambiguity a front proxy and
 * this server could resolve differently (bare CR/LF, obs-fold, whitespace
 * before the colon, duplicate Content-Length, Content-Length with
 * Transfer-Encoding, codings other than "chunked") is rejected instead of
 * being guessed at, which closes the request-smuggling class of bugs.
 *
 * Ownership: the parser owns the request it is building. After
 * AL_HTTP_PARSE_DONE the caller takes it with al_http_parser_take (and frees
 * it with al_http_request_free); that also resets the parser for the next
 * request on the connection.
 */
#ifndef AL_HTTP_PARSER_H
#define AL_HTTP_PARSER_H

#include <stddef.h>

#define AL_HTTP_DEFAULT_MAX_HEADER_BYTES (32u * 1024u)
#define AL_HTTP_DEFAULT_MAX_BODY_BYTES	 (8u * 1024u * 1024u)
#define AL_HTTP_DEFAULT_MAX_HEADERS	 100u

struct al_http_parser_limits {
	size_t max_header_bytes; /* request line + header lines (and trailers); 0: 32 KiB */
	size_t max_body_bytes;	 /* decoded body; 0: 8 MiB */
	size_t max_headers;	 /* header fields (and trailer fields); 0: 100 */
};

struct al_http_field {
	char *name;  /* owned; as sent (case preserved) */
	char *value; /* owned; leading/trailing whitespace stripped */
};

/* A complete request. Every string is owned by the struct and NUL-terminated. */
struct al_http_request {
	char *method;		      /* "GET" */
	char *target;		      /* raw request-target as sent */
	char *path;		      /* percent-decoded path, never contains NUL */
	char *query;		      /* raw query after '?', "" when none */
	struct al_http_field *params; /* query parameters, decoded ('+' is space) */
	size_t nparams;
	int version_minor; /* 0 or 1 (HTTP/1.x) */
	struct al_http_field *headers;
	size_t nheaders;
	struct al_http_field *trailers; /* from a chunked body; never merged into headers */
	size_t ntrailers;
	char *body; /* decoded body with a NUL after it (never NULL) */
	size_t body_len;
	int keep_alive;	     /* the connection may carry another request */
	int expect_continue; /* an HTTP/1.1 client sent "Expect: 100-continue" */
};

void al_http_request_free(struct al_http_request *r);
/* Header by case-insensitive name, NULL if absent (first one wins). */
const char *al_http_request_header(const struct al_http_request *r, const char *name);
/* Query parameter by exact name, NULL if absent (first one wins). */
const char *al_http_request_param(const struct al_http_request *r, const char *name);

typedef struct al_http_parser al_http_parser;

enum al_http_parse_rc {
	AL_HTTP_PARSE_ERROR = -1, /* see al_http_parser_error; the parser stays failed */
	AL_HTTP_PARSE_MORE = 0,	  /* every byte consumed, request not complete yet */
	AL_HTTP_PARSE_DONE = 1,	  /* a request is complete; take it */
};

/* limits may be NULL (defaults). Returns NULL on allocation failure. */
al_http_parser *al_http_parser_new(const struct al_http_parser_limits *limits);
void al_http_parser_free(al_http_parser *p);

/*
 * Consumes bytes from data. *consumed is set to the number of bytes used
 * (all of them for MORE; up to the end of the request for DONE; up to the
 * offending byte for ERROR). Feeding a parser in the DONE state consumes
 * nothing and returns DONE again until the request is taken.
 */
enum al_http_parse_rc al_http_parser_feed(al_http_parser *p, const char *data, size_t len,
					  size_t *consumed);
/*
 * After DONE: hands the request to the caller and resets the parser for the
 * next request. NULL in any other state.
 */
struct al_http_request *al_http_parser_take(al_http_parser *p);
/*
 * After ERROR: the HTTP status to answer with (400, 413, 417, 431, 501, 505, or
 * 500 for an allocation failure) and a short message safe to send to the
 * peer (a static string; it never echoes request bytes). Status 0 and NULL
 * when there is no error.
 */
int al_http_parser_error(const al_http_parser *p, const char **msg);
/* 1 once any byte of the current request has been consumed (request timer). */
int al_http_parser_started(const al_http_parser *p);
/*
 * 1 when the head of the current request has been parsed, it carries
 * "Expect: 100-continue" and body bytes are still to come: the server sends
 * "100 Continue" once. Cleared by al_http_parser_take.
 */
int al_http_parser_wants_continue(const al_http_parser *p);

#endif
