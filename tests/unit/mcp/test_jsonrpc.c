/*
 * Unit tests for src/mcp/jsonrpc.c: every message kind, every id kind, the
 * refusals with their codes and HTTP statuses, the builders, and a test
 * that fails each allocation of a parse in turn.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "mcp/jsonrpc.h"
#include "unit/unit.h"

#include <errno.h>
#include <string.h>

static int parse(const char *s, al_mcp_msg *m, al_mcp_error *e)
{
	memset(e, 0, sizeof(*e));
	return al_mcp_msg_parse(s, strlen(s), m, e);
}

/* Parses `s`, expects a refusal with `code`, returns the id kind read. */
static int refused(const char *s, int code)
{
	al_mcp_msg m;
	al_mcp_error e;
	int kind;

	if (parse(s, &m, &e) != -EINVAL)
		al_test_fail(__FILE__, __LINE__, "accepted: %s", s);
	if (e.code != code)
		al_test_fail(__FILE__, __LINE__, "%s: code %d, want %d (%s)", s, e.code, code,
			     e.message);
	if (e.http_status != 400)
		al_test_fail(__FILE__, __LINE__, "%s: http %d", s, e.http_status);
	AL_ASSERT(e.message[0] != '\0');
	kind = m.id.kind;
	al_mcp_msg_free(&m);
	al_mcp_error_clear(&e);
	return kind;
}

AL_TEST(mcp_jsonrpc_request_int_id)
{
	al_mcp_msg m;
	al_mcp_error e;

	AL_ASSERT_INT_EQ(parse("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\","
			       "\"params\":{\"cursor\":\"x\"}}",
			       &m, &e),
			 0);
	AL_ASSERT_INT_EQ(m.kind, AL_MCP_REQUEST);
	AL_ASSERT_INT_EQ(m.id.kind, AL_MCP_ID_INT);
	AL_ASSERT_INT_EQ(m.id.num, 7);
	AL_ASSERT_STR_EQ(m.method, "tools/list");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(m.params, "cursor")), "x");
	al_mcp_msg_free(&m);
	AL_ASSERT_NULL(m.root);
}

AL_TEST(mcp_jsonrpc_request_string_id_no_params)
{
	al_mcp_msg m;
	al_mcp_error e;

	AL_ASSERT_INT_EQ(
	    parse(" {\"id\":\"abc\",\"method\":\"server/discover\",\"jsonrpc\":\"2.0\"}\n", &m, &e),
	    0);
	AL_ASSERT_INT_EQ(m.kind, AL_MCP_REQUEST);
	AL_ASSERT_INT_EQ(m.id.kind, AL_MCP_ID_STR);
	AL_ASSERT_STR_EQ(m.id.str, "abc");
	AL_ASSERT_NULL(m.params);
	al_mcp_msg_free(&m);
}

AL_TEST(mcp_jsonrpc_request_negative_and_large_ids)
{
	al_mcp_msg m;
	al_mcp_error e;

	AL_ASSERT_INT_EQ(
	    parse("{\"jsonrpc\":\"2.0\",\"id\":-9007199254740991,\"method\":\"m\"}", &m, &e), 0);
	AL_ASSERT_INT_EQ(m.id.num, -9007199254740991LL);
	al_mcp_msg_free(&m);
	AL_ASSERT_INT_EQ(parse("{\"jsonrpc\":\"2.0\",\"id\":\"\",\"method\":\"m\"}", &m, &e), 0);
	AL_ASSERT_STR_EQ(m.id.str, "");
	al_mcp_msg_free(&m);
}

AL_TEST(mcp_jsonrpc_notification)
{
	al_mcp_msg m;
	al_mcp_error e;

	AL_ASSERT_INT_EQ(parse("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
			       "\"params\":{\"requestId\":3}}",
			       &m, &e),
			 0);
	AL_ASSERT_INT_EQ(m.kind, AL_MCP_NOTIFICATION);
	AL_ASSERT_INT_EQ(m.id.kind, AL_MCP_ID_NONE);
	AL_ASSERT_STR_EQ(m.method, "notifications/cancelled");
	al_mcp_msg_free(&m);
}

AL_TEST(mcp_jsonrpc_result_and_error_responses)
{
	al_mcp_msg m;
	al_mcp_error e;

	AL_ASSERT_INT_EQ(
	    parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"complete\"}}", &m,
		  &e),
	    0);
	AL_ASSERT_INT_EQ(m.kind, AL_MCP_RESULT);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(m.result, "resultType")), "complete");
	al_mcp_msg_free(&m);

	AL_ASSERT_INT_EQ(parse("{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"error\":{\"code\":-32022,"
			       "\"message\":\"Unsupported\",\"data\":{\"supported\":[]}}}",
			       &m, &e),
			 0);
	AL_ASSERT_INT_EQ(m.kind, AL_MCP_ERROR_RESPONSE);
	AL_ASSERT_INT_EQ(m.err_code, AL_MCP_UNSUPPORTED_VERSION);
	AL_ASSERT_STR_EQ(m.err_message, "Unsupported");
	AL_ASSERT(json_is_object(m.err_data));
	al_mcp_msg_free(&m);

	/* A server that could not read the id answers without one, or with
	 * null (JSON-RPC 2.0); both are error responses with no id. */
	AL_ASSERT_INT_EQ(
	    parse("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"P\"}}", &m, &e),
	    0);
	AL_ASSERT_INT_EQ(m.kind, AL_MCP_ERROR_RESPONSE);
	AL_ASSERT_INT_EQ(m.id.kind, AL_MCP_ID_NONE);
	al_mcp_msg_free(&m);
	AL_ASSERT_INT_EQ(parse("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
			       "\"message\":\"P\"}}",
			       &m, &e),
			 0);
	AL_ASSERT_INT_EQ(m.id.kind, AL_MCP_ID_NONE);
	al_mcp_msg_free(&m);
}

AL_TEST(mcp_jsonrpc_parse_errors)
{
	refused("", AL_MCP_PARSE_ERROR);
	refused("{", AL_MCP_PARSE_ERROR);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"} trailing", AL_MCP_PARSE_ERROR);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"method\":\"n\"}",
		AL_MCP_PARSE_ERROR);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\\u0000x\"}", AL_MCP_PARSE_ERROR);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", AL_MCP_PARSE_ERROR);
}

AL_TEST(mcp_jsonrpc_batches_refused)
{
	refused("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"}]", AL_MCP_INVALID_REQUEST);
	refused("[]", AL_MCP_INVALID_REQUEST);
}

AL_TEST(mcp_jsonrpc_invalid_requests_keep_the_id)
{
	/* Refusals after the id was read carry it back. */
	AL_ASSERT_INT_EQ(
	    refused("{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"m\"}", AL_MCP_INVALID_REQUEST),
	    AL_MCP_ID_INT);
	AL_ASSERT_INT_EQ(refused("{\"id\":5,\"method\":\"m\"}", AL_MCP_INVALID_REQUEST),
			 AL_MCP_ID_INT);
	AL_ASSERT_INT_EQ(
	    refused("{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":3}", AL_MCP_INVALID_REQUEST),
	    AL_MCP_ID_STR);
	AL_ASSERT_INT_EQ(
	    refused("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"\"}", AL_MCP_INVALID_REQUEST),
	    AL_MCP_ID_INT);
	AL_ASSERT_INT_EQ(refused("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"m\",\"params\":[1]}",
				 AL_MCP_INVALID_REQUEST),
			 AL_MCP_ID_INT);
	AL_ASSERT_INT_EQ(refused("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"m\",\"result\":{}}",
				 AL_MCP_INVALID_REQUEST),
			 AL_MCP_ID_INT);
	AL_ASSERT_INT_EQ(refused("{\"jsonrpc\":\"2.0\",\"id\":5}", AL_MCP_INVALID_REQUEST),
			 AL_MCP_ID_INT);
}

AL_TEST(mcp_jsonrpc_bad_ids)
{
	AL_ASSERT_INT_EQ(
	    refused("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"m\"}", AL_MCP_INVALID_REQUEST),
	    AL_MCP_ID_NONE);
	AL_ASSERT_INT_EQ(
	    refused("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"m\"}", AL_MCP_INVALID_REQUEST),
	    AL_MCP_ID_NONE);
	AL_ASSERT_INT_EQ(
	    refused("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"m\"}", AL_MCP_INVALID_REQUEST),
	    AL_MCP_ID_NONE);
	AL_ASSERT_INT_EQ(
	    refused("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"m\"}", AL_MCP_INVALID_REQUEST),
	    AL_MCP_ID_NONE);
}

AL_TEST(mcp_jsonrpc_bad_responses)
{
	refused("{\"jsonrpc\":\"2.0\",\"result\":{}}", AL_MCP_INVALID_REQUEST);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[]}", AL_MCP_INVALID_REQUEST);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":"
		"\"x\"}}",
		AL_MCP_INVALID_REQUEST);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\",\"message\":\"x\"}}",
		AL_MCP_INVALID_REQUEST);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.5,\"message\":\"x\"}}",
		AL_MCP_INVALID_REQUEST);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}", AL_MCP_INVALID_REQUEST);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":99999999999,\"message\":\"x\"}}",
		AL_MCP_INVALID_REQUEST);
	refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"params\":{}}", AL_MCP_INVALID_REQUEST);
	refused("\"just a string\"", AL_MCP_INVALID_REQUEST);
	refused("42", AL_MCP_INVALID_REQUEST);
}

AL_TEST(mcp_jsonrpc_too_large)
{
	size_t n = AL_MCP_MAX_MESSAGE + 1;
	char *big = al_malloc(n);
	al_mcp_msg m;
	al_mcp_error e = {0};

	AL_ASSERT_NOT_NULL(big);
	memset(big, ' ', n);
	AL_ASSERT_INT_EQ(al_mcp_msg_parse(big, n, &m, &e), -EINVAL);
	AL_ASSERT_INT_EQ(e.code, AL_MCP_INVALID_REQUEST);
	al_mcp_msg_free(&m);
	al_free(big);
}

static char *dump(json_t *j)
{
	al_buf b = {0};

	AL_ASSERT_NOT_NULL(j);
	AL_ASSERT_INT_EQ(al_mcp_msg_dump(j, &b), 0);
	json_decref(j);
	return al_buf_steal(&b, NULL);
}

AL_TEST(mcp_jsonrpc_builders)
{
	al_mcp_id n = {.kind = AL_MCP_ID_INT, .num = 42}, s = {.kind = AL_MCP_ID_STR, .str = "r1"};
	al_mcp_id none = {0};
	al_mcp_error e = {0};
	char *out;

	out = dump(al_mcp_result_new(&n, json_pack("{s:s}", "resultType", "complete")));
	AL_ASSERT_STR_EQ(
	    out, "{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{\"resultType\":\"complete\"}}");
	al_free(out);

	out = dump(al_mcp_request_new(&s, "tools/list", json_object()));
	AL_ASSERT_STR_EQ(
	    out, "{\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"method\":\"tools/list\",\"params\":{}}");
	al_free(out);

	out = dump(al_mcp_notification_new("notifications/progress", NULL));
	AL_ASSERT_STR_EQ(out, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}");
	al_free(out);

	AL_ASSERT_NULL(al_mcp_request_new(&none, "m", json_object()));
	AL_ASSERT_NULL(al_mcp_result_new(&n, json_array()));

	al_mcp_error_set(&e, AL_MCP_METHOD_NOT_FOUND, 404, NULL, "Method not found: %s",
			 "initialize");
	out = dump(al_mcp_error_response_new(&n, &e));
	AL_ASSERT_STR_EQ(out,
			 "{\"jsonrpc\":\"2.0\",\"id\":42,\"error\":{\"code\":-32601,\"message\":"
			 "\"Method not found: initialize\"}}");
	al_free(out);

	/* No id known: the id member is left out (the 2026 schema has no null id). */
	al_mcp_error_set(&e, AL_MCP_PARSE_ERROR, 400, json_pack("{s:i}", "at", 3), "%s", "");
	out = dump(al_mcp_error_response_new(&none, &e));
	AL_ASSERT_STR_EQ(out, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":"
			      "\"Parse error\",\"data\":{\"at\":3}}}");
	al_free(out);
	out = dump(al_mcp_error_response_new(NULL, &e));
	AL_ASSERT(strstr(out, "\"id\"") == NULL);
	al_free(out);
	al_mcp_error_clear(&e);
	AL_ASSERT_NULL(e.data);
}

AL_TEST(mcp_jsonrpc_error_message_not_utf8)
{
	al_mcp_id n = {.kind = AL_MCP_ID_INT, .num = 1};
	al_mcp_error e = {0};
	char *out;

	/* A message quoting peer bytes that are not UTF-8 falls back to the
	 * code's name instead of failing the whole response. */
	al_mcp_error_set(&e, AL_MCP_INVALID_REQUEST, 400, NULL, "bad: %s", "\xff\xfe");
	out = dump(al_mcp_error_response_new(&n, &e));
	AL_ASSERT(strstr(out, "\"message\":\"Invalid Request\"") != NULL);
	al_free(out);

	/* Truncation never leaves half a character behind. */
	char longmsg[400];
	memset(longmsg, 'a', sizeof(longmsg));
	for (size_t i = 240; i + 2 < sizeof(longmsg); i += 2)
		memcpy(longmsg + i, "\xc3\xa9", 2);
	longmsg[sizeof(longmsg) - 1] = '\0';
	for (int shift = 0; shift < 2; shift++) {
		al_mcp_error_set(&e, AL_MCP_INVALID_PARAMS, 400, NULL, "%.*s%s", shift, "x",
				 longmsg);
		out = dump(al_mcp_error_response_new(&n, &e));
		AL_ASSERT(strstr(out, "aaaa") != NULL);
		al_free(out);
	}
	al_mcp_error_clear(&e);
}

AL_TEST(mcp_jsonrpc_error_names_and_id_equal)
{
	al_mcp_id a = {.kind = AL_MCP_ID_STR, .str = "x"}, b = {.kind = AL_MCP_ID_STR, .str = "x"};
	al_mcp_id c = {.kind = AL_MCP_ID_INT, .num = 0};

	AL_ASSERT_STR_EQ(al_mcp_error_name(AL_MCP_HEADER_MISMATCH), "Header mismatch");
	AL_ASSERT_STR_EQ(al_mcp_error_name(AL_MCP_INTERNAL_ERROR), "Internal error");
	AL_ASSERT_STR_EQ(al_mcp_error_name(AL_MCP_INVALID_PARAMS), "Invalid params");
	AL_ASSERT_INT_EQ(al_mcp_id_equal(&a, &b), 1);
	AL_ASSERT_INT_EQ(al_mcp_id_equal(&a, &c), 0);
}

AL_TEST(mcp_jsonrpc_parse_survives_allocation_failures)
{
	static const char msg[] =
	    "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"t\",\"arguments\":{\"a\":[1,2,{\"b\":3}]}}}";
	int ok = 0;

	al_alloc_init();
	for (long n = 0; n < 200 && !ok; n++) {
		al_mcp_msg m;
		al_mcp_error e = {0};
		int rc;
		al_alloc_fail_after(n);
		rc = al_mcp_msg_parse(msg, sizeof(msg) - 1, &m, &e);
		al_alloc_fail_after(-1);
		if (rc == 0)
			ok = 1;
		else
			AL_ASSERT(rc == -ENOMEM || rc == -EINVAL);
		al_mcp_msg_free(&m);
		al_mcp_error_clear(&e);
	}
	AL_ASSERT_INT_EQ(ok, 1);
}
