/*
 * fuzz_mcp_headers.c - libFuzzer target for the Mcp-* header code.
 *
 * The first byte picks a mode:
 *   0  decode one header value; a decoded value re-encodes and decodes to
 *      itself;
 *   1  encode arbitrary bytes; the result is a legal header value (visible
 *      ASCII) and decodes back to the input whenever the input is text a
 *      JSON string can hold;
 *   2  read the rest as a tool inputSchema (x-mcp-header annotations);
 *   3  "body\n\nName: value\n..." - a message and its headers, checked
 *      against each other with a fixed set of annotations, as a server
 *      does before dispatch;
 *   4  "host\norigin" - the DNS-rebinding check, which must agree with the
 *      separate Host and Origin checks.
 * Nothing may crash or leak; refusals are -EINVAL (or -ENOENT) only.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "http/parser.h"
#include "mcp/headers.h"
#include "mcp/jsonrpc.h"
#include "mcp/meta.h"
#include "mcp/origin.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void mode_decode(const char *p, size_t n)
{
	al_buf d = {0}, e = {0}, d2 = {0};
	int rc = al_mcp_hdr_value_decode(p, n, &d);

	if (rc < 0) {
		if (rc != -EINVAL)
			__builtin_trap();
		goto done;
	}
	if (al_mcp_hdr_value_encode(d.data ? d.data : "", d.len, &e) < 0)
		__builtin_trap();
	if (al_mcp_hdr_value_decode(e.data, e.len, &d2) < 0)
		__builtin_trap();
	if (d.len != d2.len || (d.len && memcmp(d.data, d2.data, d.len) != 0))
		__builtin_trap();
done:
	al_buf_free(&d);
	al_buf_free(&e);
	al_buf_free(&d2);
}

static void mode_encode(const char *p, size_t n)
{
	al_buf e = {0}, d = {0};
	json_t *asjson;
	int rc;

	if (al_mcp_hdr_value_encode(p, n, &e) < 0)
		__builtin_trap();
	for (size_t i = 0; i < e.len; i++)
		if ((unsigned char)e.data[i] < 0x20 || (unsigned char)e.data[i] > 0x7e)
			__builtin_trap();
	rc = al_mcp_hdr_value_decode(e.data, e.len, &d);
	/* jansson accepts exactly the text the decoder must round-trip. */
	asjson = json_stringn(p, n);
	if (asjson != NULL && memchr(p, '\0', n) == NULL) {
		if (rc < 0 || d.len != n || (n && memcmp(d.data, p, n) != 0))
			__builtin_trap();
	}
	json_decref(asjson);
	al_buf_free(&e);
	al_buf_free(&d);
}

static void mode_schema(const char *p, size_t n)
{
	json_t *j = json_loadb(p, n, 0, NULL);
	al_mcp_param_headers ph;
	char err[128];
	int rc;

	if (j == NULL)
		return;
	rc = al_mcp_param_headers_from_schema(j, &ph, err, sizeof(err));
	if (rc < 0 && (rc != -EINVAL || memchr(err, '\0', sizeof(err)) == NULL))
		__builtin_trap();
	for (size_t i = 0; rc == 0 && i < ph.n; i++)
		if (!al_mcp_hdr_token_valid(ph.v[i].name) || ph.v[i].depth == 0)
			__builtin_trap();
	al_mcp_param_headers_free(&ph);
	json_decref(j);
}

static void mode_check(const char *p, size_t n, const al_mcp_param_headers *ph)
{
	const char *sep = memmem(p, n, "\n\n", 2);
	struct al_http_field f[16];
	size_t nf = 0, blen;
	char *hdrs = NULL, *save = NULL;
	al_mcp_msg m;
	al_mcp_meta meta;
	al_mcp_error err = {0};
	int rc;

	blen = sep ? (size_t)(sep - p) : n;
	if (al_mcp_msg_parse(p, blen, &m, &err) < 0)
		goto done;
	al_mcp_error_clear(&err);
	if (al_mcp_meta_parse(m.params, &meta, &err) < 0)
		meta.protocol_version = NULL;
	al_mcp_error_clear(&err);
	if (sep != NULL) {
		hdrs = al_strndup(sep + 2, n - blen - 2);
		if (hdrs == NULL)
			goto done;
		for (char *l = strtok_r(hdrs, "\n", &save); l && nf < 16;
		     l = strtok_r(NULL, "\n", &save)) {
			char *c = strchr(l, ':');
			if (c == NULL)
				continue;
			*c = '\0';
			f[nf].name = l;
			f[nf].value = c + 1;
			nf++;
		}
	}
	rc = al_mcp_hdr_check(f, nf, &m, meta.protocol_version, ph, &err);
	if (rc < 0) {
		json_t *resp;
		if (rc != -EINVAL || err.code != AL_MCP_HEADER_MISMATCH || err.http_status != 400)
			__builtin_trap();
		resp = al_mcp_error_response_new(&m.id, &err);
		if (resp == NULL)
			__builtin_trap();
		json_decref(resp);
	}
done:
	al_free(hdrs);
	al_mcp_error_clear(&err);
	al_mcp_msg_free(&m);
}

static void mode_origin(const char *p, size_t n)
{
	static const char *const allowed[] = {"localhost", "127.0.0.1", "[::1]", "a.example", NULL};
	char *s = al_strndup(p, n), *nl;
	const char *origin = NULL;
	int rc, want;

	if (s == NULL)
		return;
	nl = strchr(s, '\n');
	if (nl != NULL) {
		*nl = '\0';
		origin = nl + 1;
	}
	rc = al_mcp_origin_check(s, origin, allowed);
	want = al_mcp_host_allowed(s, allowed) &&
	       (origin == NULL || al_mcp_origin_allowed(origin, allowed));
	if ((rc == 0) != want || (rc != 0 && rc != -EPERM))
		__builtin_trap();
	al_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	static al_mcp_param_headers ph;
	const char *p = (const char *)data + 1;

	if (!init) {
		json_t *s;
		al_alloc_init();
		s = json_loads("{\"type\":\"object\",\"properties\":{"
			       "\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
			       "\"o\":{\"type\":\"object\",\"properties\":{"
			       "\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"}}},"
			       "\"flag\":{\"type\":\"boolean\",\"x-mcp-header\":\"Flag\"}}}",
			       0, NULL);
		if (s == NULL || al_mcp_param_headers_from_schema(s, &ph, NULL, 0) < 0)
			__builtin_trap();
		json_decref(s);
		init = 1;
	}
	if (size < 1)
		return 0;
	switch (data[0] % 5) {
	case 0:
		mode_decode(p, size - 1);
		break;
	case 1:
		mode_encode(p, size - 1);
		break;
	case 2:
		mode_schema(p, size - 1);
		break;
	case 3:
		mode_check(p, size - 1, &ph);
		break;
	default:
		mode_origin(p, size - 1);
		break;
	}
	return 0;
}
