/*
 * Unit tests for src/mcp/headers.c and the strict base64 it relies on: the
 * spec's encoding table, decode refusals, x-mcp-header schema rules, the
 * client's header lines and the server's header/body check, including every
 * case of the conformance suite's http-header-validation and
 * http-custom-header-server-validation scenarios.
 */
#include "core/alloc.h"
#include "core/b64.h"
#include "core/buf.h"
#include "http/parser.h"
#include "mcp/headers.h"
#include "mcp/meta.h"
#include "unit/unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

AL_TEST(mcp_b64_std_round_trip_and_strictness)
{
	unsigned char in[40], out[40];
	char enc[64];
	size_t n;

	for (size_t len = 0; len < sizeof(in); len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)(i * 53 + len * 7);
		AL_ASSERT_INT_EQ(al_b64_encode(in, len, enc, sizeof(enc)), 0);
		AL_ASSERT_INT_EQ(strlen(enc), al_b64_len(len));
		AL_ASSERT_INT_EQ(al_b64_decode(enc, strlen(enc), out, sizeof(out), &n), 0);
		AL_ASSERT_INT_EQ(n, len);
		AL_ASSERT_MEM_EQ(in, out, len);
	}
	AL_ASSERT_INT_EQ(al_b64_decode("SGVsbG8", 7, out, sizeof(out), &n), -EINVAL);
	AL_ASSERT_INT_EQ(al_b64_decode("SGVs!!!bG8=", 11, out, sizeof(out), &n), -EINVAL);
	AL_ASSERT_INT_EQ(al_b64_decode("SGVsbG8-", 8, out, sizeof(out), &n), -EINVAL);
	AL_ASSERT_INT_EQ(al_b64_decode("QR==", 4, out, sizeof(out), &n), -EINVAL);
	AL_ASSERT_INT_EQ(al_b64_decode("Q===", 4, out, sizeof(out), &n), -EINVAL);
	AL_ASSERT_INT_EQ(al_b64_decode("Q=Q=", 4, out, sizeof(out), &n), -EINVAL);
	AL_ASSERT_INT_EQ(al_b64_decode("QQ==", 4, out, sizeof(out), &n), 0);
	AL_ASSERT_INT_EQ(n, 1);
	AL_ASSERT_INT_EQ(al_b64_decode("QUJD", 4, out, 2, &n), -ENOSPC);
	AL_ASSERT_INT_EQ(al_b64_encode("abc", 3, enc, 4), -ENOSPC);
}

static char *encode(const char *v)
{
	al_buf b = {0};
	AL_ASSERT_INT_EQ(al_mcp_hdr_value_encode(v, strlen(v), &b), 0);
	return al_buf_steal(&b, NULL);
}

static char *decode(const char *hv, int want_rc)
{
	al_buf b = {0};
	int rc = al_mcp_hdr_value_decode(hv, strlen(hv), &b);
	if (rc != want_rc)
		al_test_fail(__FILE__, __LINE__, "decode \"%s\": %d, want %d", hv, rc, want_rc);
	if (rc < 0) {
		al_buf_free(&b);
		return NULL;
	}
	if (b.data == NULL)
		AL_ASSERT_INT_EQ(al_buf_append(&b, "", 0), 0);
	return al_buf_steal(&b, NULL);
}

AL_TEST(mcp_headers_encoding_table_from_the_spec)
{
	static const char *const cases[][2] = {
	    {"us-west1", "us-west1"},
	    {"Hello, \xe4\xb8\x96\xe7\x95\x8c", "=?base64?SGVsbG8sIOS4lueVjA==?="},
	    {" padded ", "=?base64?IHBhZGRlZCA=?="},
	    {"line1\nline2", "=?base64?bGluZTEKbGluZTI=?="},
	    {"=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="},
	    {"tab\there", "=?base64?dGFiCWhlcmU=?="},
	    {"", "=?base64?\?="},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *e = encode(cases[i][0]), *d;
		AL_ASSERT_STR_EQ(e, cases[i][1]);
		d = decode(e, 0);
		AL_ASSERT_STR_EQ(d, cases[i][0]);
		al_free(e);
		al_free(d);
	}
}

AL_TEST(mcp_headers_decode_literals_and_whitespace)
{
	char *d;

	/* Without both markers a value is literal, base64-looking or not. */
	d = decode("SGVsbG8=", 0);
	AL_ASSERT_STR_EQ(d, "SGVsbG8=");
	al_free(d);
	d = decode("=?base64?SGVsbG8=", 0);
	AL_ASSERT_STR_EQ(d, "=?base64?SGVsbG8=");
	al_free(d);
	d = decode("SGVsbG8=?=", 0);
	AL_ASSERT_STR_EQ(d, "SGVsbG8=?=");
	al_free(d);
	/* The markers are case-sensitive. */
	d = decode("=?BASE64?SGVsbG8=?=", 0);
	AL_ASSERT_STR_EQ(d, "=?BASE64?SGVsbG8=?=");
	al_free(d);
	/* Optional whitespace around the value is not part of it. */
	d = decode("  \tget_weather \t", 0);
	AL_ASSERT_STR_EQ(d, "get_weather");
	al_free(d);
	d = decode(" =?base64?SGVsbG8=?= ", 0);
	AL_ASSERT_STR_EQ(d, "Hello");
	al_free(d);
	d = decode("inner\tspace ok", 0);
	AL_ASSERT_STR_EQ(d, "inner\tspace ok");
	al_free(d);
	d = decode("", 0);
	AL_ASSERT_STR_EQ(d, "");
	al_free(d);
}

AL_TEST(mcp_headers_decode_refusals)
{
	decode("=?base64?SGVsbG8?=", -EINVAL);	   /* padding missing */
	decode("=?base64?SGVs!!!bG8=?=", -EINVAL); /* outside the alphabet */
	decode("=?base64?SGVs bG8=?=", -EINVAL);
	decode("=?base64?_w==?=", -EINVAL); /* base64url is not base64 */
	decode("=?base64?/w==?=", -EINVAL); /* 0xff: not UTF-8 */
	decode("=?base64?wK8=?=", -EINVAL); /* overlong '/' */
	decode("=?base64?7aCA?=", -EINVAL); /* a UTF-16 surrogate */
	decode("=?base64?YQBi?=", -EINVAL); /* NUL inside */
	decode("caf\xc3\xa9", -EINVAL);	    /* raw non-ASCII */
	decode("a\x01z", -EINVAL);	    /* control character */
	decode("a\x7fz", -EINVAL);	    /* DEL */
}

AL_TEST(mcp_headers_param_text)
{
	static const char *const in[] = {"\"us-west1\"", "42", "-7", "true", "false"};
	static const char *const want[] = {"us-west1", "42", "-7", "true", "false"};
	al_buf b = {0};

	for (size_t i = 0; i < 5; i++) {
		json_t *v = json_loads(in[i], JSON_DECODE_ANY, NULL);
		al_buf_reset(&b);
		AL_ASSERT_INT_EQ(al_mcp_hdr_param_text(v, &b), 0);
		AL_ASSERT_STR_EQ(b.data, want[i]);
		json_decref(v);
	}
	json_t *null = json_null(), *real = json_real(1.5), *arr = json_array();
	AL_ASSERT_INT_EQ(al_mcp_hdr_param_text(null, &b), -ENOENT);
	AL_ASSERT_INT_EQ(al_mcp_hdr_param_text(NULL, &b), -ENOENT);
	AL_ASSERT_INT_EQ(al_mcp_hdr_param_text(real, &b), -EINVAL);
	AL_ASSERT_INT_EQ(al_mcp_hdr_param_text(arr, &b), -EINVAL);
	json_decref(real);
	json_decref(arr);
	al_buf_free(&b);
}

AL_TEST(mcp_headers_token)
{
	AL_ASSERT_INT_EQ(al_mcp_hdr_token_valid("Region"), 1);
	AL_ASSERT_INT_EQ(al_mcp_hdr_token_valid("x-Tenant_ID.2!#$%&'*+^`|~"), 1);
	AL_ASSERT_INT_EQ(al_mcp_hdr_token_valid(""), 0);
	AL_ASSERT_INT_EQ(al_mcp_hdr_token_valid(NULL), 0);
	AL_ASSERT_INT_EQ(al_mcp_hdr_token_valid("a b"), 0);
	AL_ASSERT_INT_EQ(al_mcp_hdr_token_valid("a:b"), 0);
	AL_ASSERT_INT_EQ(al_mcp_hdr_token_valid("a\r\nb"), 0);
	AL_ASSERT_INT_EQ(al_mcp_hdr_token_valid("caf\xc3\xa9"), 0);
}

static int schema(const char *s, al_mcp_param_headers *ph, char *err, size_t errlen)
{
	json_t *j = json_loads(s, 0, NULL);
	int rc;

	if (j == NULL)
		al_test_fail(__FILE__, __LINE__, "bad test JSON: %s", s);
	rc = al_mcp_param_headers_from_schema(j, ph, err, errlen);
	json_decref(j);
	return rc;
}

static void schema_refused(const char *s, const char *needle)
{
	al_mcp_param_headers ph;
	char err[200];

	if (schema(s, &ph, err, sizeof(err)) != -EINVAL)
		al_test_fail(__FILE__, __LINE__, "accepted: %s", s);
	if (strstr(err, needle) == NULL)
		al_test_fail(__FILE__, __LINE__, "reason \"%s\" lacks \"%s\"", err, needle);
	AL_ASSERT_INT_EQ(ph.n, 0);
	AL_ASSERT_NULL(ph.v);
}

AL_TEST(mcp_headers_schema_annotations)
{
	al_mcp_param_headers ph;
	char err[200];

	AL_ASSERT_INT_EQ(
	    schema("{\"type\":\"object\",\"properties\":{"
		   "\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
		   "\"query\":{\"type\":\"string\"},"
		   "\"opts\":{\"type\":\"object\",\"properties\":{"
		   "\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"Count\"},"
		   "\"x-mcp-header\":{\"type\":\"boolean\",\"x-mcp-header\":\"Flag\"}}}},"
		   "\"required\":[\"region\",\"query\"]}",
		   &ph, err, sizeof(err)),
	    0);
	AL_ASSERT_INT_EQ(ph.n, 3);
	AL_ASSERT_STR_EQ(ph.v[0].name, "Region");
	AL_ASSERT_INT_EQ(ph.v[0].depth, 1);
	AL_ASSERT_STR_EQ(ph.v[0].path[0], "region");
	AL_ASSERT_STR_EQ(ph.v[1].name, "Count");
	AL_ASSERT_INT_EQ(ph.v[1].depth, 2);
	AL_ASSERT_STR_EQ(ph.v[1].path[0], "opts");
	AL_ASSERT_STR_EQ(ph.v[1].path[1], "n");
	/* A property *named* x-mcp-header is a property, not an annotation. */
	AL_ASSERT_STR_EQ(ph.v[2].name, "Flag");
	AL_ASSERT_STR_EQ(ph.v[2].path[1], "x-mcp-header");
	al_mcp_param_headers_free(&ph);
	AL_ASSERT_INT_EQ(ph.n, 0);

	AL_ASSERT_INT_EQ(schema("{\"type\":\"object\"}", &ph, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(ph.n, 0);
	AL_ASSERT_INT_EQ(al_mcp_param_headers_from_schema(NULL, &ph, NULL, 0), 0);
}

AL_TEST(mcp_headers_schema_refusals)
{
	schema_refused("{\"x-mcp-header\":\"Root\",\"type\":\"string\"}", "not reachable");
	schema_refused("{\"properties\":{\"a\":{\"type\":\"number\",\"x-mcp-header\":\"A\"}}}",
		       "not string, integer or boolean");
	schema_refused("{\"properties\":{\"a\":{\"x-mcp-header\":\"A\"}}}",
		       "not string, integer or boolean");
	schema_refused("{\"properties\":{\"a\":{\"type\":\"object\",\"x-mcp-header\":\"A\"}}}",
		       "not string, integer or boolean");
	schema_refused("{\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"\"}}}",
		       "not an HTTP token");
	schema_refused("{\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"A B\"}}}",
		       "not an HTTP token");
	schema_refused(
	    "{\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"A\\r\\n\"}}}",
	    "not an HTTP token");
	schema_refused("{\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":7}}}",
		       "not an HTTP token");
	schema_refused("{\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"Dup\"},"
		       "\"b\":{\"type\":\"string\",\"x-mcp-header\":\"dUP\"}}}",
		       "not unique");
	schema_refused("{\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
		       "\"x-mcp-header\":\"A\"}}}}",
		       "not reachable");
	schema_refused("{\"properties\":{\"a\":{\"oneOf\":[{\"type\":\"string\","
		       "\"x-mcp-header\":\"A\"}]}}}",
		       "not reachable");
	schema_refused("{\"properties\":{\"a\":{\"$ref\":\"#/$defs/r\"}},\"$defs\":{\"r\":{"
		       "\"type\":\"string\",\"x-mcp-header\":\"A\"}}}",
		       "not reachable");
	schema_refused("{\"if\":{\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"A\""
		       "}}}}",
		       "not reachable");
	schema_refused("{\"properties\":{\"o\":{\"type\":\"object\",\"additionalProperties\":{"
		       "\"type\":\"string\",\"x-mcp-header\":\"A\"}}}}",
		       "not reachable");
}

AL_TEST(mcp_headers_schema_depth_limit)
{
	al_buf s = {0};
	al_mcp_param_headers ph;
	char err[200];

	for (int i = 0; i < 40; i++)
		al_buf_append_str(&s, "{\"properties\":{\"a\":");
	al_buf_append_str(&s, "{\"type\":\"string\"}");
	for (int i = 0; i < 40; i++)
		al_buf_append_str(&s, "}}");
	AL_ASSERT_INT_EQ(schema(s.data, &ph, err, sizeof(err)), -EINVAL);
	AL_ASSERT(strstr(err, "deep") != NULL);
	al_buf_free(&s);
}

/* Splits "Name: value\r\n" lines into fields, as the HTTP parser would. */
static size_t split(char *lines, struct al_http_field *f, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *l = strtok_r(lines, "\r\n", &save); l && n < max;
	     l = strtok_r(NULL, "\r\n", &save)) {
		char *c = strchr(l, ':');
		AL_ASSERT_NOT_NULL(c);
		*c = '\0';
		f[n].name = l;
		f[n].value = c + 2;
		n++;
	}
	return n;
}

struct fixture {
	al_mcp_msg m;
	al_mcp_meta meta;
	al_mcp_param_headers ph;
};

static void load_fixture(struct fixture *fx, const char *body)
{
	al_mcp_error e = {0};
	char err[200];

	AL_ASSERT_INT_EQ(al_mcp_msg_parse(body, strlen(body), &fx->m, &e), 0);
	AL_ASSERT_INT_EQ(al_mcp_meta_parse(fx->m.params, &fx->meta, &e), 0);
	AL_ASSERT_INT_EQ(schema("{\"type\":\"object\",\"properties\":{"
				"\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
				"\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"},"
				"\"flag\":{\"type\":\"boolean\",\"x-mcp-header\":\"Flag\"}}}",
				&fx->ph, err, sizeof(err)),
			 0);
}

static void free_fixture(struct fixture *fx)
{
	al_mcp_param_headers_free(&fx->ph);
	al_mcp_msg_free(&fx->m);
}

#define META                                                                                       \
	"\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","                   \
	"\"io.modelcontextprotocol/clientCapabilities\":{}}"

/* Runs the check with `nh` header pairs; returns its rc, and asserts the
 * -32020 / 400 shape when it refuses. */
static int check(struct fixture *fx, const char *const *hv, size_t nh)
{
	struct al_http_field f[16];
	al_mcp_error e = {0};
	int rc;

	for (size_t i = 0; i < nh; i++) {
		f[i].name = (char *)hv[2 * i];
		f[i].value = (char *)hv[2 * i + 1];
	}
	rc = al_mcp_hdr_check(f, nh, &fx->m, fx->meta.protocol_version, &fx->ph, &e);
	if (rc < 0) {
		AL_ASSERT_INT_EQ(rc, -EINVAL);
		AL_ASSERT_INT_EQ(e.code, AL_MCP_HEADER_MISMATCH);
		AL_ASSERT_INT_EQ(e.http_status, 400);
		AL_ASSERT(strncmp(e.message, "Header mismatch: ", 17) == 0);
	}
	al_mcp_error_clear(&e);
	return rc;
}

#define CHECK(fx, ...)                                                                             \
	({                                                                                         \
		static const char *const h_[] = {__VA_ARGS__};                                     \
		check((fx), h_, sizeof(h_) / sizeof(h_[0]) / 2);                                   \
	})

AL_TEST(mcp_headers_check_standard)
{
	struct fixture fx;

	load_fixture(
	    &fx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META "}}");
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/list"), 0);
	/* Names are case-insensitive. */
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, "mcp-protocol-version", "2026-07-28", "mcp-method", "tools/list"), 0);
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, "MCP-PROTOCOL-VERSION", "2026-07-28", "MCP-METHOD", "tools/list"), 0);
	/* Values are case-sensitive. */
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "TOOLS/LIST"), -EINVAL);
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "prompts/list"),
	    -EINVAL);
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "X-Other", "1"), -EINVAL);
	AL_ASSERT_INT_EQ(CHECK(&fx, "Mcp-Method", "tools/list", "X", "y"), -EINVAL);
	/* The version header must say what _meta says (header 2026, body
	 * v999 is a mismatch, not an unsupported version). */
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, "MCP-Protocol-Version", "2025-11-25", "Mcp-Method", "tools/list"), -EINVAL);
	/* Method and version travel plain: the sentinel form is a mismatch. */
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "=?base64?dG9vbHMvbGlzdA==?="),
			 -EINVAL);
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "tools/list", "mcp-method", "tools/list"),
			 -EINVAL);
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/list\x01"),
	    -EINVAL);
	/* Mcp-Name on a method that has none is not checked. */
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "tools/list", "Mcp-Name", "whatever"),
			 0);
	free_fixture(&fx);
}

AL_TEST(mcp_headers_check_name)
{
	struct fixture fx;

	load_fixture(&fx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
			  "\"name\":\"get_weather\",\"arguments\":{}," META "}}");
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "tools/call", "Mcp-Name", "get_weather"),
			 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "tools/call", "Mcp-Name", "  get_weather  "),
			 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "tools/call", "Mcp-Name", "=?base64?Z2V0X3dlYXRoZXI=?="),
			 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "tools/call", "Mcp-Name", "wrong_tool_name"),
			 -EINVAL);
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call"), -EINVAL);
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "tools/call", "Mcp-Name", "=?base64?Z2V0X3dlYXRoZXI?="),
			 -EINVAL);
	free_fixture(&fx);

	/* No name in the body: nothing to mirror, the handler answers -32602;
	 * a stray Mcp-Name is still a mismatch. */
	load_fixture(
	    &fx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/get\",\"params\":{" META "}}");
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "prompts/get"), 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "prompts/get", "Mcp-Name", "p"),
			 -EINVAL);
	free_fixture(&fx);

	load_fixture(&fx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":{"
			  "\"uri\":\"file:///caf\\u00e9.txt\"," META "}}");
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "resources/read", "Mcp-Name", "=?base64?ZmlsZTovLy9jYWbDqS50eHQ=?="),
			 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
			       "resources/read", "Mcp-Name", "file:///cafe.txt"),
			 -EINVAL);
	free_fixture(&fx);
}

#define STD "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "q"

AL_TEST(mcp_headers_check_params)
{
	struct fixture fx;

	load_fixture(&fx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
			  "\"name\":\"q\",\"arguments\":{\"region\":\"Hello\",\"n\":42,"
			  "\"flag\":null}," META "}}");
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "Hello", "Mcp-Param-N", "42"), 0);
	/* The conformance suite's base64 cases. */
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, STD, "Mcp-Param-Region", "=?base64?SGVsbG8=?=", "Mcp-Param-N", "42"), 0);
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, STD, "Mcp-Param-Region", "=?base64?SGVsbG8?=", "Mcp-Param-N", "42"),
	    -EINVAL);
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, STD, "Mcp-Param-Region", "=?base64?SGVs!!!bG8=?=", "Mcp-Param-N", "42"),
	    -EINVAL);
	/* Missing while present in the body. */
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-N", "42"), -EINVAL);
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "Hello"), -EINVAL);
	/* Numeric comparison for integers. */
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "mcp-param-region", "Hello", "MCP-PARAM-N", "42.0"), 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "Hello", "Mcp-Param-N", "4.2e1"), 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "Hello", "Mcp-Param-N", "43"),
			 -EINVAL);
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "Hello", "Mcp-Param-N", "42abc"),
			 -EINVAL);
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "Hello", "Mcp-Param-N", ""), -EINVAL);
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "hello", "Mcp-Param-N", "42"),
			 -EINVAL);
	/* A null argument expects no header; a present one must still be clean. */
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "Hello", "Mcp-Param-N", "42",
			       "Mcp-Param-Flag", "true"),
			 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "Hello", "Mcp-Param-N", "42",
			       "Mcp-Param-Flag", "=?base64?!?="),
			 -EINVAL);
	AL_ASSERT_INT_EQ(
	    CHECK(&fx, STD, "Mcp-Param-Region", "Hello", "Mcp-Param-N", "42", "Mcp-Param-N", "42"),
	    -EINVAL);
	/* Unknown Mcp-Param-* headers are not this server's business. */
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Region", "Hello", "Mcp-Param-N", "42",
			       "Mcp-Param-Other", "\x01"),
			 0);
	free_fixture(&fx);

	load_fixture(&fx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
			  "\"name\":\"q\",\"arguments\":{\"flag\":false}," META "}}");
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Flag", "false"), 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Flag", "False"), -EINVAL);
	AL_ASSERT_INT_EQ(CHECK(&fx, STD, "Mcp-Param-Flag", "0"), -EINVAL);
	free_fixture(&fx);
}

AL_TEST(mcp_headers_check_notification)
{
	struct fixture fx;

	load_fixture(&fx, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
			  "\"requestId\":1," META "}}");
	/* No header requirements for notifications, but present ones must agree. */
	AL_ASSERT_INT_EQ(check(&fx, NULL, 0), 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, "Mcp-Method", "notifications/cancelled"), 0);
	AL_ASSERT_INT_EQ(CHECK(&fx, "Mcp-Method", "tools/call"), -EINVAL);
	free_fixture(&fx);
}

AL_TEST(mcp_headers_build_then_check)
{
	static const char body[] =
	    "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{"
	    "\"name\":\"h\\u00e9llo\",\"arguments\":{\"region\":\" padded \",\"n\":-7,"
	    "\"flag\":true}," META "}}";
	struct fixture fx;
	struct al_http_field f[16];
	al_buf lines = {0};
	al_mcp_error e = {0};
	size_t n;

	load_fixture(&fx, body);
	AL_ASSERT_INT_EQ(al_mcp_hdr_build("2026-07-28", fx.m.method, fx.m.params, &fx.ph, &lines),
			 0);
	AL_ASSERT_STR_EQ(lines.data, "MCP-Protocol-Version: 2026-07-28\r\n"
				     "Mcp-Method: tools/call\r\n"
				     "Mcp-Name: =?base64?aMOpbGxv?=\r\n"
				     "Mcp-Param-Region: =?base64?IHBhZGRlZCA=?=\r\n"
				     "Mcp-Param-N: -7\r\n"
				     "Mcp-Param-Flag: true\r\n");
	n = split(lines.data, f, 16);
	AL_ASSERT_INT_EQ(n, 6);
	AL_ASSERT_INT_EQ(al_mcp_hdr_check(f, n, &fx.m, "2026-07-28", &fx.ph, &e), 0);
	al_buf_free(&lines);

	/* A method without Mcp-Name, and annotations ignored off tools/call. */
	AL_ASSERT_INT_EQ(al_mcp_hdr_build("2026-07-28", "tools/list", NULL, &fx.ph, &lines), 0);
	AL_ASSERT_STR_EQ(lines.data,
			 "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\n");
	al_buf_free(&lines);
	/* tools/call without a name cannot be mirrored. */
	json_t *noname = json_object();
	AL_ASSERT_INT_EQ(al_mcp_hdr_build("2026-07-28", "tools/call", noname, NULL, &lines),
			 -EINVAL);
	AL_ASSERT_INT_EQ(al_mcp_hdr_build("2026-07-28", "bad\nmethod", noname, NULL, &lines),
			 -EINVAL);
	json_decref(noname);
	al_buf_free(&lines);
	free_fixture(&fx);
}

AL_TEST(mcp_headers_schema_survives_allocation_failures)
{
	static const char s[] =
	    "{\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"A\"},"
	    "\"o\":{\"properties\":{\"b\":{\"type\":\"integer\","
	    "\"x-mcp-header\":\"B\"}}}}}";
	json_t *j = json_loads(s, 0, NULL);
	int ok = 0;

	al_alloc_init();
	for (long n = 0; n < 100 && !ok; n++) {
		al_mcp_param_headers ph;
		char err[100];
		int rc;
		al_alloc_fail_after(n);
		rc = al_mcp_param_headers_from_schema(j, &ph, err, sizeof(err));
		al_alloc_fail_after(-1);
		if (rc == 0) {
			AL_ASSERT_INT_EQ(ph.n, 2);
			ok = 1;
		} else {
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
			AL_ASSERT_INT_EQ(ph.n, 0);
		}
		al_mcp_param_headers_free(&ph);
	}
	AL_ASSERT_INT_EQ(ok, 1);
	json_decref(j);
}
