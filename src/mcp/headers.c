#include "mcp/headers.h"

#include "core/alloc.h"
#include "core/b64.h"
#include "core/buf.h"
#include "http/parser.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SENTINEL_OPEN	      "=?base64?"
#define SENTINEL_CLOSE	      "?="
#define AL_MCP_PARAM_NAME_MAX 200
#define OPEN_LEN	      (sizeof(SENTINEL_OPEN) - 1)
#define CLOSE_LEN	      (sizeof(SENTINEL_CLOSE) - 1)

static int is_sentinel(const char *v, size_t n)
{
	return n >= OPEN_LEN + CLOSE_LEN && memcmp(v, SENTINEL_OPEN, OPEN_LEN) == 0 &&
	       memcmp(v + n - CLOSE_LEN, SENTINEL_CLOSE, CLOSE_LEN) == 0;
}

/* Plain iff visible ASCII or SP, not starting or ending with SP, not empty
 * and not itself shaped like the sentinel. HTAB is a control character:
 * legal in HTTP, but the spec lists control characters as needing base64. */
static int plain_ok(const char *v, size_t n)
{
	if (n == 0 || v[0] == ' ' || v[n - 1] == ' ' || is_sentinel(v, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
			return 0;
	return 1;
}

int al_mcp_hdr_value_encode(const char *val, size_t n, al_buf *out)
{
	size_t elen;
	int rc;

	if (plain_ok(val, n))
		return al_buf_append(out, val, n) < 0 ? -ENOMEM : 0;
	elen = al_b64_len(n);
	rc = al_buf_reserve(out, OPEN_LEN + elen + CLOSE_LEN + 1);
	if (rc < 0)
		return -ENOMEM;
	memcpy(out->data + out->len, SENTINEL_OPEN, OPEN_LEN);
	out->len += OPEN_LEN;
	rc = al_b64_encode(val, n, out->data + out->len, out->cap - out->len);
	if (rc < 0)
		return rc;
	out->len += elen;
	memcpy(out->data + out->len, SENTINEL_CLOSE, CLOSE_LEN + 1);
	out->len += CLOSE_LEN;
	return 0;
}

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, at most
 * U+10FFFF) without NUL: what a JSON string can hold. */
static int utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		size_t len;
		unsigned cp;
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += len;
	}
	return 1;
}

int al_mcp_hdr_value_decode(const char *hv, size_t n, al_buf *out)
{
	size_t blen, outn;

	while (n > 0 && (hv[0] == ' ' || hv[0] == '\t')) {
		hv++;
		n--;
	}
	while (n > 0 && (hv[n - 1] == ' ' || hv[n - 1] == '\t'))
		n--;
	if (!is_sentinel(hv, n)) {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)hv[i];
			if ((c < 0x20 && c != '\t') || c > 0x7e)
				return -EINVAL;
		}
		return al_buf_append(out, hv, n) < 0 ? -ENOMEM : 0;
	}
	hv += OPEN_LEN;
	blen = n - OPEN_LEN - CLOSE_LEN;
	if (al_buf_reserve(out, blen / 4 * 3 + 1) < 0)
		return -ENOMEM;
	if (al_b64_decode(hv, blen, out->data + out->len, out->cap - out->len, &outn) < 0)
		return -EINVAL;
	if (!utf8_ok((const unsigned char *)out->data + out->len, outn))
		return -EINVAL;
	out->len += outn;
	out->data[out->len] = '\0';
	return 0;
}

int al_mcp_hdr_param_text(const json_t *v, al_buf *out)
{
	int rc;

	if (v == NULL || json_is_null(v))
		return -ENOENT;
	if (json_is_string(v))
		rc = al_buf_append(out, json_string_value(v), json_string_length(v));
	else if (json_is_integer(v))
		rc = al_buf_appendf(out, "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		rc = al_buf_append_str(out, json_is_true(v) ? "true" : "false");
	else
		return -EINVAL;
	return rc < 0 ? -ENOMEM : 0;
}

int al_mcp_hdr_token_valid(const char *name)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (name == NULL || name[0] == '\0')
		return 0;
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(extra, c) != NULL))
			return 0;
	}
	return 1;
}

void al_mcp_param_headers_free(al_mcp_param_headers *ph)
{
	if (ph == NULL)
		return;
	for (size_t i = 0; i < ph->n; i++) {
		for (size_t k = 0; k < ph->v[i].depth; k++)
			al_free(ph->v[i].path[k]);
		al_free(ph->v[i].path);
		al_free(ph->v[i].name);
	}
	al_free(ph->v);
	memset(ph, 0, sizeof(*ph));
}

/* The schema walk's state: the property path of the node being visited. */
struct walk {
	al_mcp_param_headers *out;
	const char *path[32];
	size_t depth;
	char *err;
	size_t errlen;
};

#define MAX_SCHEMA_DEPTH 32

static int add_header(struct walk *w, const char *name)
{
	al_mcp_param_header *nv, *h;

	for (size_t i = 0; i < w->out->n; i++) {
		if (strcasecmp(w->out->v[i].name, name) == 0) {
			snprintf(w->err, w->errlen, "x-mcp-header \"%s\" is not unique", name);
			return -EINVAL;
		}
	}
	nv = al_realloc(w->out->v, (w->out->n + 1) * sizeof(*nv));
	if (nv == NULL)
		return -ENOMEM;
	w->out->v = nv;
	h = &nv[w->out->n];
	memset(h, 0, sizeof(*h));
	w->out->n++; /* counted now so _free releases a partial entry */
	h->name = al_strdup(name);
	h->path = al_calloc(w->depth, sizeof(char *));
	if (h->name == NULL || h->path == NULL)
		return -ENOMEM;
	for (size_t k = 0; k < w->depth; k++) {
		h->path[k] = al_strdup(w->path[k]);
		if (h->path[k] == NULL)
			return -ENOMEM;
		h->depth = k + 1;
	}
	return 0;
}

static int visit(struct walk *w, const json_t *node, int reachable, size_t level);

/* Keywords whose value is one subschema, an array of them, or a map of them.
 * Annotations found under these are not statically reachable. */
static const char *const sub_one[] = {"items",
				      "additionalProperties",
				      "not",
				      "if",
				      "then",
				      "else",
				      "contains",
				      "propertyNames",
				      "unevaluatedProperties",
				      "unevaluatedItems",
				      "additionalItems",
				      NULL};
static const char *const sub_many[] = {"allOf", "anyOf", "oneOf", "prefixItems", "items", NULL};
static const char *const sub_map[] = {"$defs", "definitions", "patternProperties",
				      "dependentSchemas", NULL};

static int in_set(const char *k, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(k, *set) == 0)
			return 1;
	return 0;
}

static int check_annotation(struct walk *w, const json_t *node, const json_t *ann, int reachable)
{
	const json_t *type = json_object_get(node, "type");
	const char *t;

	if (!reachable || w->depth == 0) {
		snprintf(w->err, w->errlen,
			 "x-mcp-header on a schema not reachable through properties alone");
		return -EINVAL;
	}
	/* The length cap keeps Mcp-Param-{Name} within a fixed buffer. */
	if (!json_is_string(ann) || !al_mcp_hdr_token_valid(json_string_value(ann)) ||
	    json_string_length(ann) > AL_MCP_PARAM_NAME_MAX) {
		snprintf(w->err, w->errlen, "x-mcp-header of \"%s\" is not an HTTP token",
			 w->path[w->depth - 1]);
		return -EINVAL;
	}
	t = json_is_string(type) ? json_string_value(type) : "";
	if (strcmp(t, "string") != 0 && strcmp(t, "integer") != 0 && strcmp(t, "boolean") != 0) {
		snprintf(w->err, w->errlen,
			 "x-mcp-header on \"%s\", whose type is not string, integer or boolean",
			 w->path[w->depth - 1]);
		return -EINVAL;
	}
	return add_header(w, json_string_value(ann));
}

static int visit(struct walk *w, const json_t *node, int reachable, size_t level)
{
	const char *key;
	json_t *v, *ann;
	int rc;

	if (!json_is_object(node))
		return 0; /* true/false schemas and stray values carry nothing */
	if (level >= MAX_SCHEMA_DEPTH) {
		snprintf(w->err, w->errlen, "inputSchema nested deeper than %d levels",
			 MAX_SCHEMA_DEPTH);
		return -EINVAL;
	}
	ann = json_object_get(node, "x-mcp-header");
	if (ann != NULL && (rc = check_annotation(w, node, ann, reachable)) < 0)
		return rc;
	json_object_foreach((json_t *)node, key, v)
	{
		if (strcmp(key, "properties") == 0 && json_is_object(v)) {
			const char *pname;
			json_t *ps;
			json_object_foreach(v, pname, ps)
			{
				if (w->depth >= sizeof(w->path) / sizeof(w->path[0])) {
					snprintf(w->err, w->errlen, "properties nested too deep");
					return -EINVAL;
				}
				w->path[w->depth++] = pname;
				rc = visit(w, ps, reachable, level + 1);
				w->depth--;
				if (rc < 0)
					return rc;
			}
			continue;
		}
		/* Below any other keyword the property path is broken; keep
		 * walking only to find annotations that make the tool invalid. */
		if (in_set(key, sub_one) && json_is_object(v)) {
			rc = visit(w, v, 0, level + 1);
		} else if (in_set(key, sub_many) && json_is_array(v)) {
			size_t i;
			json_t *e;
			rc = 0;
			json_array_foreach(v, i, e)
			{
				if ((rc = visit(w, e, 0, level + 1)) < 0)
					break;
			}
		} else if (in_set(key, sub_map) && json_is_object(v)) {
			const char *k2;
			json_t *e;
			rc = 0;
			json_object_foreach(v, k2, e)
			{
				if ((rc = visit(w, e, 0, level + 1)) < 0)
					break;
			}
		} else {
			rc = 0;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int al_mcp_param_headers_from_schema(const json_t *input_schema, al_mcp_param_headers *out,
				     char *err, size_t errlen)
{
	struct walk w;
	char scratch[1];
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&w, 0, sizeof(w));
	w.out = out;
	w.err = err != NULL && errlen > 0 ? err : scratch;
	w.errlen = err != NULL && errlen > 0 ? errlen : sizeof(scratch);
	w.err[0] = '\0';
	if (input_schema == NULL)
		return 0;
	rc = visit(&w, input_schema, 1, 0);
	if (rc == -ENOMEM)
		snprintf(w.err, w.errlen, "out of memory");
	if (rc < 0)
		al_mcp_param_headers_free(out);
	return rc;
}

/* The argument an annotation points at, or NULL when absent. */
static const json_t *arg_at(const json_t *params, const al_mcp_param_header *h)
{
	const json_t *v = json_object_get(params, "arguments");

	for (size_t k = 0; k < h->depth && v != NULL; k++)
		v = json_is_object(v) ? json_object_get(v, h->path[k]) : NULL;
	return v;
}

/* The body value Mcp-Name mirrors for `method`; NULL when the method has
 * none. *key is set to the params member it comes from. */
static const char *name_source(const char *method, const char **key)
{
	if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0)
		*key = "name";
	else if (strcmp(method, "resources/read") == 0)
		*key = "uri";
	else
		*key = NULL;
	return *key;
}

static int add_line(al_buf *out, const char *name, const char *v, size_t n)
{
	if (al_buf_append_str(out, name) < 0 || al_buf_append(out, ": ", 2) < 0)
		return -ENOMEM;
	if (al_mcp_hdr_value_encode(v, n, out) < 0)
		return -ENOMEM;
	return al_buf_append(out, "\r\n", 2) < 0 ? -ENOMEM : 0;
}

int al_mcp_hdr_build(const char *version, const char *method, const json_t *params,
		     const al_mcp_param_headers *ph, al_buf *out)
{
	al_buf text = {0};
	const char *key;
	int rc;

	/* Version and method are sent plain: the server compares them without
	 * decoding, so a value that needs encoding cannot be carried. */
	if (!plain_ok(version, strlen(version)) || !plain_ok(method, strlen(method)))
		return -EINVAL;
	if (al_buf_appendf(out, "%s: %s\r\n%s: %s\r\n", AL_MCP_HDR_PROTOCOL_VERSION, version,
			   AL_MCP_HDR_METHOD, method) < 0)
		return -ENOMEM;
	if (name_source(method, &key) != NULL) {
		const json_t *v = json_object_get(params, key);
		if (!json_is_string(v))
			return -EINVAL;
		rc = add_line(out, AL_MCP_HDR_NAME, json_string_value(v), json_string_length(v));
		if (rc < 0)
			return rc;
	}
	if (ph == NULL || strcmp(method, "tools/call") != 0)
		return 0;
	rc = 0;
	for (size_t i = 0; i < ph->n && rc == 0; i++) {
		char hname[256];
		al_buf_reset(&text);
		rc = al_mcp_hdr_param_text(arg_at(params, &ph->v[i]), &text);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		if (snprintf(hname, sizeof(hname), AL_MCP_HDR_PARAM_PREFIX "%s", ph->v[i].name) >=
		    (int)sizeof(hname)) {
			rc = -EINVAL;
			break;
		}
		rc = add_line(out, hname, text.data, text.len);
	}
	al_buf_free(&text);
	return rc;
}

/* Finds header `name` (case-insensitive). Returns how many times it appears
 * and points *value at the first. */
static size_t find(const struct al_http_field *h, size_t n, const char *name, const char **value)
{
	size_t count = 0;

	*value = NULL;
	for (size_t i = 0; i < n; i++) {
		if (h[i].name != NULL && strcasecmp(h[i].name, name) == 0) {
			if (count++ == 0)
				*value = h[i].value != NULL ? h[i].value : "";
		}
	}
	return count;
}

static int mismatch(al_mcp_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int mismatch(al_mcp_error *err, const char *fmt, ...)
{
	char msg[sizeof(err->message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	al_mcp_error_set(err, AL_MCP_HEADER_MISMATCH, 400, NULL, "%s", msg);
	return -EINVAL;
}

/* The text of a buffer that may never have been written to. */
static const char *txt(const al_buf *b)
{
	return b->data != NULL ? b->data : "";
}

/*
 * Decodes a header that travels plain (MCP-Protocol-Version, Mcp-Method):
 * the sentinel form is not defined for them, so it is a mismatch rather
 * than something to decode. 0, -EINVAL, -ENOMEM.
 */
static int plain_header(const char *v, al_buf *dec)
{
	int rc;

	al_buf_reset(dec);
	rc = al_mcp_hdr_value_decode(v, strlen(v), dec);
	if (rc == 0 && is_sentinel(v, strlen(v)))
		rc = -EINVAL;
	return rc;
}

/* Compares a decoded header text with the body value it mirrors. */
static int value_matches(const al_buf *hdr, const json_t *body)
{
	if (json_is_string(body))
		return hdr->len == json_string_length(body) &&
		       memcmp(txt(hdr), json_string_value(body), hdr->len) == 0;
	if (json_is_boolean(body))
		return strcmp(txt(hdr), json_is_true(body) ? "true" : "false") == 0;
	if (json_is_number(body)) {
		/* Numerically, as the spec asks: "42.0" and 42 are equal. */
		char *end;
		double d;
		if (hdr->len == 0)
			return 0;
		errno = 0;
		d = strtod(txt(hdr), &end);
		if (*end != '\0' || errno != 0 || !isfinite(d))
			return 0;
		return d == json_number_value(body);
	}
	return 0;
}

int al_mcp_hdr_check(const struct al_http_field *h, size_t n, const al_mcp_msg *m,
		     const char *meta_version, const al_mcp_param_headers *ph, al_mcp_error *err)
{
	int is_req = m->kind == AL_MCP_REQUEST;
	const char *pv, *mv, *nv, *key;
	size_t npv, nmv, nnv;
	al_buf dec = {0};
	int rc = 0;

	if (m->kind != AL_MCP_REQUEST && m->kind != AL_MCP_NOTIFICATION)
		return 0;
	npv = find(h, n, AL_MCP_HDR_PROTOCOL_VERSION, &pv);
	nmv = find(h, n, AL_MCP_HDR_METHOD, &mv);
	nnv = find(h, n, AL_MCP_HDR_NAME, &nv);
	if (npv > 1 || nmv > 1 || nnv > 1) {
		rc = mismatch(err, "Header mismatch: %s appears more than once",
			      npv > 1 ? AL_MCP_HDR_PROTOCOL_VERSION
				      : (nmv > 1 ? AL_MCP_HDR_METHOD : AL_MCP_HDR_NAME));
		goto done;
	}

	if (npv == 0 && is_req) {
		rc = mismatch(err, "Header mismatch: %s header is missing",
			      AL_MCP_HDR_PROTOCOL_VERSION);
		goto done;
	}
	if (npv == 1) {
		if ((rc = plain_header(pv, &dec)) == -ENOMEM)
			goto done;
		if (rc < 0 || (meta_version != NULL && strcmp(txt(&dec), meta_version) != 0)) {
			rc = mismatch(
			    err,
			    "Header mismatch: MCP-Protocol-Version header value '%s' does "
			    "not match body value '%s'",
			    rc < 0 ? "(invalid)" : txt(&dec), meta_version ? meta_version : "");
			goto done;
		}
	}

	if (nmv == 0 && is_req) {
		rc = mismatch(err, "Header mismatch: %s header is missing", AL_MCP_HDR_METHOD);
		goto done;
	}
	if (nmv == 1) {
		if ((rc = plain_header(mv, &dec)) == -ENOMEM)
			goto done;
		if (rc < 0 || strcmp(txt(&dec), m->method) != 0) {
			rc = mismatch(err,
				      "Header mismatch: Mcp-Method header value '%s' does not "
				      "match body value '%s'",
				      rc < 0 ? "(invalid)" : mv, m->method);
			goto done;
		}
	}

	if (name_source(m->method, &key) != NULL) {
		const json_t *bv = json_object_get(m->params, key);
		/* Without a body value there is nothing to mirror: the handler
		 * answers the missing name with -32602. */
		if (nnv == 0 && is_req && json_is_string(bv)) {
			rc =
			    mismatch(err, "Header mismatch: %s header is missing", AL_MCP_HDR_NAME);
			goto done;
		}
		if (nnv == 1) {
			al_buf_reset(&dec);
			if ((rc = al_mcp_hdr_value_decode(nv, strlen(nv), &dec)) == -ENOMEM)
				goto done;
			if (rc < 0 || !json_is_string(bv) || !value_matches(&dec, bv)) {
				rc =
				    mismatch(err,
					     "Header mismatch: Mcp-Name header value '%s' does not "
					     "match body value '%s'",
					     rc < 0 ? "(invalid)" : nv,
					     json_is_string(bv) ? json_string_value(bv) : "(none)");
				goto done;
			}
		}
	}

	if (ph != NULL && strcmp(m->method, "tools/call") == 0) {
		for (size_t i = 0; i < ph->n; i++) {
			char hname[256];
			const char *hv;
			size_t cnt;
			const json_t *bv = arg_at(m->params, &ph->v[i]);
			int present = bv != NULL && !json_is_null(bv);

			snprintf(hname, sizeof(hname), AL_MCP_HDR_PARAM_PREFIX "%s", ph->v[i].name);
			cnt = find(h, n, hname, &hv);
			if (cnt > 1) {
				rc = mismatch(err, "Header mismatch: %s appears more than once",
					      hname);
				goto done;
			}
			if (cnt == 0) {
				if (present && is_req) {
					rc = mismatch(err,
						      "Header mismatch: %s header is missing but "
						      "the argument %s is in the body",
						      hname, ph->v[i].path[ph->v[i].depth - 1]);
					goto done;
				}
				continue;
			}
			al_buf_reset(&dec);
			if ((rc = al_mcp_hdr_value_decode(hv, strlen(hv), &dec)) == -ENOMEM)
				goto done;
			if (rc < 0) {
				rc = mismatch(err,
					      "Header mismatch: %s header has invalid "
					      "characters or encoding%s",
					      hname, "");
				goto done;
			}
			if (present && !value_matches(&dec, bv)) {
				rc = mismatch(err,
					      "Header mismatch: %s header value does not match the "
					      "argument %s",
					      hname, ph->v[i].path[ph->v[i].depth - 1]);
				goto done;
			}
		}
	}
	rc = 0;
done:
	al_buf_free(&dec);
	if (rc == -ENOMEM)
		al_mcp_error_set(err, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
	return rc;
}
