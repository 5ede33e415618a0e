/*
 * parser.c - strict incremental HTTP/1.1 request parser (RFC 9110/9112).
 *
 * The parser is a byte-driven state machine. Line-oriented parts (request
 * line, header fields, chunk-size lines, trailer fields) are collected into
 * `line` with the CRLF rule enforced byte by byte, so a bare CR or bare LF
 * is caught no matter how the input is split. Body bytes are copied in bulk.
 */
#include "http/parser.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* A chunk-size line (size and extensions) longer than this is refused. */
#define MAX_CHUNK_LINE 4096

enum state {
	ST_REQ_LINE,
	ST_HEADER,
	ST_BODY,       /* Content-Length body */
	ST_CHUNK_SIZE, /* chunk-size [ chunk-ext ] CRLF */
	ST_CHUNK_DATA,
	ST_CHUNK_CR, /* CRLF after chunk data */
	ST_CHUNK_LF,
	ST_TRAILER,
	ST_DONE,
	ST_ERROR,
};

struct al_http_parser {
	struct al_http_parser_limits lim;
	enum state st;
	al_buf line;
	int cr;		   /* the previous line byte was CR */
	int started;	   /* a byte of this request has been consumed */
	size_t head_bytes; /* bytes in the request line and headers (or trailers) */
	size_t remaining;  /* body bytes still expected (Content-Length or chunk) */
	al_buf body;
	size_t hcap, tcap, pcap;
	struct al_http_request *req;
	int status;
	const char *msg;
};

/* ---- character classes ---- */

static int is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar / SP / HTAB: no control characters (NUL, CR, LF, DEL...). */
static int is_field_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- request object ---- */

static void fields_free(struct al_http_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		al_free(f[i].name);
		/* Values include Authorization and x-api-key: wipe before freeing. */
		al_free_secret_str(f[i].value);
	}
	al_free(f);
}

void al_http_request_free(struct al_http_request *r)
{
	if (r == NULL)
		return;
	al_free(r->method);
	al_free(r->target);
	al_free(r->path);
	al_free(r->query);
	fields_free(r->params, r->nparams);
	fields_free(r->headers, r->nheaders);
	fields_free(r->trailers, r->ntrailers);
	/* The body may carry credentials (keys being created); wipe it. */
	al_free_secret(r->body, r->body_len);
	al_free(r);
}

const char *al_http_request_header(const struct al_http_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

const char *al_http_request_param(const struct al_http_request *r, const char *name)
{
	for (size_t i = 0; i < r->nparams; i++)
		if (strcmp(r->params[i].name, name) == 0)
			return r->params[i].value;
	return NULL;
}

/* ---- parser lifecycle ---- */

static int fail(al_http_parser *p, int status, const char *msg)
{
	p->st = ST_ERROR;
	p->status = status;
	p->msg = msg;
	return -1;
}

static int oom(al_http_parser *p)
{
	return fail(p, 500, "out of memory");
}

static void reset(al_http_parser *p)
{
	al_http_request_free(p->req);
	p->req = NULL;
	/* Both may hold header lines or body bytes carrying credentials. */
	al_buf_wipe(&p->line);
	al_buf_free(&p->line);
	al_buf_wipe(&p->body);
	al_buf_free(&p->body);
	p->st = ST_REQ_LINE;
	p->cr = 0;
	p->started = 0;
	p->head_bytes = 0;
	p->remaining = 0;
	p->hcap = p->tcap = p->pcap = 0;
	p->status = 0;
	p->msg = NULL;
}

al_http_parser *al_http_parser_new(const struct al_http_parser_limits *limits)
{
	al_http_parser *p = al_calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	if (limits)
		p->lim = *limits;
	if (p->lim.max_header_bytes == 0)
		p->lim.max_header_bytes = AL_HTTP_DEFAULT_MAX_HEADER_BYTES;
	if (p->lim.max_body_bytes == 0)
		p->lim.max_body_bytes = AL_HTTP_DEFAULT_MAX_BODY_BYTES;
	if (p->lim.max_headers == 0)
		p->lim.max_headers = AL_HTTP_DEFAULT_MAX_HEADERS;
	reset(p);
	return p;
}

void al_http_parser_free(al_http_parser *p)
{
	if (p == NULL)
		return;
	reset(p);
	al_free(p);
}

struct al_http_request *al_http_parser_take(al_http_parser *p)
{
	struct al_http_request *r;

	if (p->st != ST_DONE)
		return NULL;
	r = p->req;
	p->req = NULL;
	reset(p);
	return r;
}

int al_http_parser_error(const al_http_parser *p, const char **msg)
{
	if (msg)
		*msg = p->st == ST_ERROR ? p->msg : NULL;
	return p->st == ST_ERROR ? p->status : 0;
}

int al_http_parser_started(const al_http_parser *p)
{
	return p->started;
}

int al_http_parser_wants_continue(const al_http_parser *p)
{
	return p->req && p->req->expect_continue && p->remaining > 0 &&
	       (p->st == ST_BODY || p->st == ST_CHUNK_SIZE);
}

/* ---- helpers ---- */

static int field_push(struct al_http_field **arr, size_t *n, size_t *cap, char *name, char *value)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct al_http_field *a = al_realloc(*arr, nc * sizeof(**arr));
		if (a == NULL)
			return -ENOMEM;
		*arr = a;
		*cap = nc;
	}
	(*arr)[*n].name = name;
	(*arr)[*n].value = value;
	(*n)++;
	return 0;
}

/*
 * Percent-decodes s[0..n) into a new string. plus: '+' means space (query
 * strings). Invalid escapes and an encoded NUL are refused, so the result is
 * an honest C string.
 */
static int pct_decode(const char *s, size_t n, int plus, char **out)
{
	char *d = al_malloc(n + 1);
	size_t j = 0;

	if (d == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			d[j++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (plus && c == '+') {
			d[j++] = ' ';
		} else {
			d[j++] = (char)c;
		}
	}
	d[j] = '\0';
	*out = d;
	return 0;
bad:
	al_free(d);
	return -EINVAL;
}

static int parse_query(al_http_parser *p, const char *q)
{
	struct al_http_request *r = p->req;
	const char *s = q;

	while (*s) {
		const char *amp = strchr(s, '&');
		size_t seglen = amp ? (size_t)(amp - s) : strlen(s);
		const char *eq = memchr(s, '=', seglen);
		char *name = NULL, *value = NULL;
		int rc;

		if (seglen == 0)
			goto next;
		rc = pct_decode(s, eq ? (size_t)(eq - s) : seglen, 1, &name);
		if (rc == 0)
			rc = eq ? pct_decode(eq + 1, seglen - (size_t)(eq + 1 - s), 1, &value)
				: ((value = al_strdup("")) ? 0 : -ENOMEM);
		if (rc == 0)
			rc = field_push(&r->params, &r->nparams, &p->pcap, name, value);
		if (rc < 0) {
			al_free(name);
			al_free(value);
			return rc == -ENOMEM ? oom(p) : fail(p, 400, "invalid query string");
		}
	next:
		if (amp == NULL)
			break;
		s = amp + 1;
	}
	return 0;
}

/* Splits the request-target into a decoded path and the raw query. */
static int parse_target(al_http_parser *p)
{
	struct al_http_request *r = p->req;
	const char *t = r->target, *path = t, *q;
	int rc;

	if (strchr(t, '#'))
		return fail(p, 400, "fragment in request target");
	if (strcmp(t, "*") == 0) {
		if (strcmp(r->method, "OPTIONS") != 0)
			return fail(p, 400, "invalid request target");
		r->path = al_strdup("*");
		r->query = al_strdup("");
		return r->path && r->query ? 0 : oom(p);
	}
	if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
		/* absolute-form: the path starts after the authority. */
		const char *a = strstr(t, "://") + 3;
		path = a + strcspn(a, "/?");
		if (path == a)
			return fail(p, 400, "invalid request target");
	} else if (t[0] != '/') {
		return fail(p, 400, "invalid request target");
	}
	q = strchr(path, '?');
	if (*path == '\0' || *path == '?') {
		r->path = al_strdup("/");
		rc = r->path ? 0 : -ENOMEM;
	} else {
		rc = pct_decode(path, q ? (size_t)(q - path) : strlen(path), 0, &r->path);
	}
	if (rc < 0)
		return rc == -ENOMEM ? oom(p) : fail(p, 400, "invalid percent-encoding in path");
	r->query = al_strdup(q ? q + 1 : "");
	if (r->query == NULL)
		return oom(p);
	return parse_query(p, r->query);
}

static int parse_request_line(al_http_parser *p, const char *s, size_t n)
{
	struct al_http_request *r;
	const char *sp1, *sp2, *v;
	size_t vlen;

	sp1 = memchr(s, ' ', n);
	if (sp1 == NULL || sp1 == s)
		return fail(p, 400, "malformed request line");
	for (const char *c = s; c < sp1; c++)
		if (!is_tchar((unsigned char)*c))
			return fail(p, 400, "invalid method");
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - s));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return fail(p, 400, "malformed request line");
	for (const char *c = sp1 + 1; c < sp2; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return fail(p, 400, "invalid request target");
	v = sp2 + 1;
	vlen = n - (size_t)(v - s);
	if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
	    v[7] < '0' || v[7] > '9')
		return fail(p, 400, "malformed HTTP version");
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return fail(p, 505, "HTTP version not supported");

	r = al_calloc(1, sizeof(*r));
	if (r == NULL)
		return oom(p);
	p->req = r;
	r->version_minor = v[7] - '0';
	r->method = al_strndup(s, (size_t)(sp1 - s));
	r->target = al_strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	if (r->method == NULL || r->target == NULL)
		return oom(p);
	return parse_target(p);
}

/*
 * field-line = field-name ":" OWS field-value OWS. Whitespace before the
 * colon and a leading SP/HT (obs-fold) are refused.
 */
static int parse_field(al_http_parser *p, const char *s, size_t n, struct al_http_field **arr,
		       size_t *count, size_t *cap)
{
	const char *colon, *vs, *ve;
	char *name, *value;

	if (n > 0 && (s[0] == ' ' || s[0] == '\t'))
		return fail(p, 400, "obsolete line folding");
	colon = memchr(s, ':', n);
	if (colon == NULL || colon == s)
		return fail(p, 400, "malformed header line");
	for (const char *c = s; c < colon; c++)
		if (!is_tchar((unsigned char)*c))
			return fail(p, 400, "invalid header name");
	vs = colon + 1;
	ve = s + n;
	while (vs < ve && (*vs == ' ' || *vs == '\t'))
		vs++;
	while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	for (const char *c = vs; c < ve; c++)
		if (!is_field_char((unsigned char)*c))
			return fail(p, 400, "invalid character in header value");
	if (*count >= p->lim.max_headers)
		return fail(p, 431, "too many header fields");
	name = al_strndup(s, (size_t)(colon - s));
	value = al_strndup(vs, (size_t)(ve - vs));
	if (name == NULL || value == NULL || field_push(arr, count, cap, name, value) < 0) {
		al_free(name);
		al_free(value);
		return oom(p);
	}
	return 0;
}

/* Does the comma-separated token list contain tok (case-insensitive)? */
static int list_has(const char *list, const char *tok)
{
	size_t tl = strlen(tok);
	const char *s = list;

	while (*s) {
		size_t n;
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		n = strcspn(s, ",");
		size_t m = n;
		while (m > 0 && (s[m - 1] == ' ' || s[m - 1] == '\t'))
			m--;
		if (m == tl && strncasecmp(s, tok, tl) == 0)
			return 1;
		s += n;
	}
	return 0;
}

static int finish_request(al_http_parser *p)
{
	struct al_http_request *r = p->req;

	r->body = al_buf_steal(&p->body, &r->body_len); /* "" when empty */
	if (r->body == NULL)
		return oom(p);
	p->st = ST_DONE;
	return 0;
}

/* The blank line after the headers: decide framing and connection reuse. */
static int finish_head(al_http_parser *p)
{
	struct al_http_request *r = p->req;
	const char *cl = NULL, *te = NULL;
	size_t ncl = 0, nte = 0, nhost = 0;
	int conn_close = 0, conn_keep = 0;

	for (size_t i = 0; i < r->nheaders; i++) {
		const char *name = r->headers[i].name, *val = r->headers[i].value;
		if (strcasecmp(name, "content-length") == 0) {
			cl = val;
			ncl++;
		} else if (strcasecmp(name, "transfer-encoding") == 0) {
			te = val;
			nte++;
		} else if (strcasecmp(name, "host") == 0) {
			nhost++;
		} else if (strcasecmp(name, "connection") == 0) {
			conn_close |= list_has(val, "close");
			conn_keep |= list_has(val, "keep-alive");
		} else if (strcasecmp(name, "expect") == 0) {
			if (strcasecmp(val, "100-continue") != 0)
				return fail(p, 417, "unsupported expectation");
			/*
			 * RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0
			 * request MUST be ignored (a 1.0 client cannot parse 1xx).
			 */
			r->expect_continue = r->version_minor == 1;
		}
	}
	if (nhost > 1 || (r->version_minor == 1 && nhost == 0))
		return fail(p, 400, "exactly one Host header is required");
	if (ncl > 1)
		return fail(p, 400, "duplicate Content-Length");
	if (nte > 1)
		return fail(p, 400, "duplicate Transfer-Encoding");
	if (cl && te)
		return fail(p, 400, "Content-Length together with Transfer-Encoding");
	if (te && r->version_minor == 0)
		return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
	if (te && strcasecmp(te, "chunked") != 0)
		return fail(p, 501, "unsupported Transfer-Encoding");
	r->keep_alive = r->version_minor == 1 ? !conn_close : (conn_keep && !conn_close);

	p->remaining = 0;
	if (cl) {
		size_t v = 0;
		if (*cl == '\0')
			return fail(p, 400, "invalid Content-Length");
		for (const char *c = cl; *c; c++) {
			if (*c < '0' || *c > '9')
				return fail(p, 400, "invalid Content-Length");
			if (v > (SIZE_MAX - 9) / 10)
				return fail(p, 413, "request body too large");
			v = v * 10 + (size_t)(*c - '0');
		}
		if (v > p->lim.max_body_bytes)
			return fail(p, 413, "request body too large");
		/*
		 * No reservation up front: a peer announcing 8 MiB and sending
		 * nothing must not cost 8 MiB. The buffer grows with the data.
		 */
		p->remaining = v;
		if (v == 0)
			return finish_request(p);
		p->st = ST_BODY;
	} else if (te) {
		p->st = ST_CHUNK_SIZE;
		p->head_bytes = 0; /* trailers get their own header budget */
		/* wants_continue looks at remaining: "some body is still to come". */
		p->remaining = 1;
	} else {
		return finish_request(p);
	}
	return 0;
}

/*
 * chunk = chunk-size [ chunk-ext ] CRLF; chunk-ext = *( BWS ";" BWS name
 * [ BWS "=" BWS ( token / quoted-string ) ] ). Extensions are checked and
 * ignored.
 */
static int parse_chunk_size(al_http_parser *p, const char *s, size_t n)
{
	const char *c = s, *e = s + n;
	size_t size = 0;
	int h;

	if (c == e || hexval((unsigned char)*c) < 0)
		return fail(p, 400, "invalid chunk size");
	while (c < e && (h = hexval((unsigned char)*c)) >= 0) {
		if (size > (SIZE_MAX >> 4))
			return fail(p, 413, "request body too large");
		size = size << 4 | (size_t)h;
		c++;
	}
	while (c < e) {
		while (c < e && (*c == ' ' || *c == '\t'))
			c++;
		/*
		 * BWS is only allowed before a ';' (RFC 9112 7.1.1): "5 " or a
		 * trailing blank after an extension is malformed, and is
		 * refused like every other framing ambiguity.
		 */
		if (c == e || *c != ';')
			return fail(p, 400, "invalid chunk size");
		c++;
		while (c < e && (*c == ' ' || *c == '\t'))
			c++;
		if (c == e || !is_tchar((unsigned char)*c))
			return fail(p, 400, "invalid chunk extension");
		while (c < e && is_tchar((unsigned char)*c))
			c++;
		while (c < e && (*c == ' ' || *c == '\t'))
			c++;
		if (c == e || *c != '=')
			continue;
		c++;
		while (c < e && (*c == ' ' || *c == '\t'))
			c++;
		if (c < e && *c == '"') {
			c++;
			while (c < e && *c != '"') {
				unsigned char u = (unsigned char)*c;
				if (u == '\\') {
					c++;
					if (c == e || !is_field_char((unsigned char)*c))
						return fail(p, 400, "invalid chunk extension");
				} else if (!is_field_char(u)) {
					return fail(p, 400, "invalid chunk extension");
				}
				c++;
			}
			if (c == e)
				return fail(p, 400, "invalid chunk extension");
			c++;
		} else {
			if (c == e || !is_tchar((unsigned char)*c))
				return fail(p, 400, "invalid chunk extension");
			while (c < e && is_tchar((unsigned char)*c))
				c++;
		}
	}
	if (size > p->lim.max_body_bytes - p->body.len)
		return fail(p, 413, "request body too large");
	if (size == 0) {
		p->remaining = 0;
		p->st = ST_TRAILER;
		return 0;
	}
	p->remaining = size;
	p->st = ST_CHUNK_DATA;
	return 0;
}

/* A complete line (without CRLF) in the current line state. */
static int on_line(al_http_parser *p)
{
	const char *s = p->line.data ? p->line.data : "";
	size_t n = p->line.len;
	struct al_http_request *r = p->req;

	switch (p->st) {
	case ST_REQ_LINE:
		/* RFC 9112 2.2: ignore empty lines before the request line. */
		if (n == 0)
			return 0;
		return parse_request_line(p, s, n) < 0 ? -1 : (p->st = ST_HEADER, 0);
	case ST_HEADER:
		if (n == 0)
			return finish_head(p);
		return parse_field(p, s, n, &r->headers, &r->nheaders, &p->hcap);
	case ST_CHUNK_SIZE:
		return parse_chunk_size(p, s, n);
	case ST_TRAILER:
		if (n == 0)
			return finish_request(p);
		return parse_field(p, s, n, &r->trailers, &r->ntrailers, &p->tcap);
	default:
		return fail(p, 500, "parser state error");
	}
}

enum al_http_parse_rc al_http_parser_feed(al_http_parser *p, const char *data, size_t len,
					  size_t *consumed)
{
	size_t i = 0;

	while (i < len && p->st != ST_DONE && p->st != ST_ERROR) {
		unsigned char c = (unsigned char)data[i];
		size_t take;

		p->started = 1;
		switch (p->st) {
		case ST_BODY:
		case ST_CHUNK_DATA:
			take = len - i < p->remaining ? len - i : p->remaining;
			if (al_buf_append(&p->body, data + i, take) < 0) {
				oom(p);
				goto out;
			}
			i += take;
			p->remaining -= take;
			if (p->remaining == 0) {
				if (p->st == ST_CHUNK_DATA)
					p->st = ST_CHUNK_CR;
				else if (finish_request(p) < 0)
					goto out;
			}
			continue;
		case ST_CHUNK_CR:
		case ST_CHUNK_LF:
			if (c != (p->st == ST_CHUNK_CR ? '\r' : '\n')) {
				fail(p, 400, "missing CRLF after chunk data");
				goto out;
			}
			i++;
			p->st = p->st == ST_CHUNK_CR ? ST_CHUNK_LF : ST_CHUNK_SIZE;
			continue;
		default:
			break;
		}

		/* A line state: enforce CRLF and the size budgets byte by byte. */
		i++;
		if (p->st == ST_CHUNK_SIZE) {
			if (p->line.len >= MAX_CHUNK_LINE) {
				fail(p, 400, "chunk size line too long");
				goto out;
			}
		} else if (++p->head_bytes > p->lim.max_header_bytes) {
			fail(p, 431, "request header section too large");
			goto out;
		}
		if (p->cr) {
			if (c != '\n') {
				fail(p, 400, "bare CR in request");
				goto out;
			}
			p->cr = 0;
			if (on_line(p) < 0)
				goto out;
			al_buf_reset(&p->line);
		} else if (c == '\r') {
			p->cr = 1;
		} else if (c == '\n') {
			fail(p, 400, "bare LF in request");
			goto out;
		} else if (al_buf_append(&p->line, &c, 1) < 0) {
			oom(p);
			goto out;
		}
	}
out:
	*consumed = i;
	if (p->st == ST_ERROR)
		return AL_HTTP_PARSE_ERROR;
	return p->st == ST_DONE ? AL_HTTP_PARSE_DONE : AL_HTTP_PARSE_MORE;
}
