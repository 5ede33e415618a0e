/*
 * Unit tests for src/mcp/meta.c: the per-request _meta of 2026-07-28, each
 * refusal with its code, HTTP status and data shape.
 */
#include "core/alloc.h"
#include "mcp/meta.h"
#include "unit/unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define V    "\"io.modelcontextprotocol/protocolVersion\""
#define CAPS "\"io.modelcontextprotocol/clientCapabilities\""
#define INFO "\"io.modelcontextprotocol/clientInfo\""
#define LVL  "\"io.modelcontextprotocol/logLevel\""

static json_t *load(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);
	if (j == NULL)
		al_test_fail(__FILE__, __LINE__, "bad test JSON: %s", s);
	return j;
}

/* Expects al_mcp_meta_parse to refuse params `s` with -32602 / 400. */
static void refused(const char *s, const char *needle)
{
	json_t *p = s ? load(s) : NULL;
	al_mcp_meta m;
	al_mcp_error e = {0};

	if (al_mcp_meta_parse(p, &m, &e) != -EINVAL)
		al_test_fail(__FILE__, __LINE__, "accepted: %s", s ? s : "(no params)");
	AL_ASSERT_INT_EQ(e.code, AL_MCP_INVALID_PARAMS);
	AL_ASSERT_INT_EQ(e.http_status, 400);
	if (strstr(e.message, needle) == NULL)
		al_test_fail(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", e.message, needle);
	al_mcp_error_clear(&e);
	json_decref(p);
}

AL_TEST(mcp_meta_full)
{
	json_t *p = load("{\"name\":\"t\",\"_meta\":{" V ":\"2026-07-28\"," CAPS
			 ":{\"sampling\":{}}," INFO ":{\"name\":\"c\",\"version\":\"1.0\"}," LVL
			 ":\"warning\",\"progressToken\":\"pt\"}}");
	al_mcp_meta m;
	al_mcp_error e = {0};

	AL_ASSERT_INT_EQ(al_mcp_meta_parse(p, &m, &e), 0);
	AL_ASSERT_STR_EQ(m.protocol_version, "2026-07-28");
	AL_ASSERT(json_is_object(json_object_get(m.client_capabilities, "sampling")));
	AL_ASSERT_STR_EQ(m.client_name, "c");
	AL_ASSERT_STR_EQ(m.client_version, "1.0");
	AL_ASSERT_INT_EQ(m.log_level, AL_MCP_LOG_WARNING);
	AL_ASSERT_STR_EQ(json_string_value(m.progress_token), "pt");
	json_decref(p);
}

AL_TEST(mcp_meta_minimal_without_client_info)
{
	/* clientInfo is a SHOULD: a server must not require it. */
	json_t *p = load("{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":{}}}");
	al_mcp_meta m;
	al_mcp_error e = {0};

	AL_ASSERT_INT_EQ(al_mcp_meta_parse(p, &m, &e), 0);
	AL_ASSERT_NULL(m.client_info);
	AL_ASSERT_NULL(m.client_name);
	AL_ASSERT_INT_EQ(m.log_level, AL_MCP_LOG_UNSET);
	AL_ASSERT_NULL(m.progress_token);
	json_decref(p);
}

AL_TEST(mcp_meta_missing_fields)
{
	refused(NULL, "missing _meta");
	refused("{}", "missing _meta");
	refused("{\"_meta\":[]}", "_meta must be an object");
	refused("{\"_meta\":{" CAPS ":{}}}", "missing io.modelcontextprotocol/protocolVersion");
	refused("{\"_meta\":{" V ":\"2026-07-28\"," INFO ":{\"name\":\"c\",\"version\":\"1\"}}}",
		"missing io.modelcontextprotocol/clientCapabilities");
}

AL_TEST(mcp_meta_wrong_types)
{
	refused("{\"_meta\":{" V ":20260728," CAPS ":{}}}", "protocolVersion must be");
	refused("{\"_meta\":{" V ":\"\"," CAPS ":{}}}", "protocolVersion must be");
	refused("{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":[]}}", "clientCapabilities must be");
	refused("{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":null}}", "clientCapabilities must be");
	refused("{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":{}," INFO ":\"c\"}}", "clientInfo");
	refused("{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":{}," INFO ":{\"name\":\"c\"}}}",
		"clientInfo");
	refused("{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":{}," LVL ":\"verbose\"}}", "logLevel");
	refused("{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":{}," LVL ":3}}", "logLevel");
	refused("{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":{},\"progressToken\":1.5}}",
		"progressToken");
}

AL_TEST(mcp_meta_log_levels)
{
	static const char *const names[] = {"debug", "info",	 "notice", "warning",
					    "error", "critical", "alert",  "emergency"};
	for (int i = 0; i < 8; i++) {
		AL_ASSERT_INT_EQ(al_mcp_log_level_parse(names[i]), i);
		AL_ASSERT_STR_EQ(al_mcp_log_level_name(i), names[i]);
	}
	AL_ASSERT_INT_EQ(al_mcp_log_level_parse("Debug"), -EINVAL);
	AL_ASSERT_INT_EQ(al_mcp_log_level_parse(NULL), -EINVAL);
	AL_ASSERT_NULL(al_mcp_log_level_name(AL_MCP_LOG_UNSET));
	AL_ASSERT_NULL(al_mcp_log_level_name(8));
}

AL_TEST(mcp_meta_version_supported)
{
	al_mcp_error e = {0};

	AL_ASSERT_INT_EQ(al_mcp_meta_check_version("2026-07-28", al_mcp_modern_versions,
						   al_mcp_supported_versions, &e),
			 0);
	AL_ASSERT_INT_EQ(e.code, 0);
}

AL_TEST(mcp_meta_version_unsupported_data_shape)
{
	al_mcp_error e = {0};
	json_t *sup, *want;

	/* 2025-11-25 is advertised (a dual-era server) but needs initialize,
	 * so a stateless request cannot use it. */
	AL_ASSERT_INT_EQ(al_mcp_meta_check_version("2025-11-25", al_mcp_modern_versions,
						   al_mcp_supported_versions, &e),
			 -EINVAL);
	al_mcp_error_clear(&e);
	AL_ASSERT_INT_EQ(al_mcp_meta_check_version("v999.0.0", al_mcp_modern_versions,
						   al_mcp_supported_versions, &e),
			 -EINVAL);
	AL_ASSERT_INT_EQ(e.code, AL_MCP_UNSUPPORTED_VERSION);
	AL_ASSERT_INT_EQ(e.http_status, 400);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e.data, "requested")), "v999.0.0");
	sup = json_object_get(e.data, "supported");
	want = load("[\"2026-07-28\",\"2025-11-25\"]");
	AL_ASSERT(json_equal(sup, want));
	AL_ASSERT_INT_EQ(json_object_size(e.data), 2);
	json_decref(want);
	al_mcp_error_clear(&e);

	AL_ASSERT_INT_EQ(
	    al_mcp_meta_check_version(NULL, al_mcp_modern_versions, al_mcp_supported_versions, &e),
	    -EINVAL);
	AL_ASSERT(json_is_null(json_object_get(e.data, "requested")));
	al_mcp_error_clear(&e);
}

static int require(const char *caps, const char *required, al_mcp_error *e)
{
	json_t *p, *r = load(required);
	char params[512];
	al_mcp_meta m;
	int rc;

	snprintf(params, sizeof(params), "{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":%s}}", caps);
	p = load(params);
	AL_ASSERT_INT_EQ(al_mcp_meta_parse(p, &m, e), 0);
	rc = al_mcp_meta_require(&m, r, e);
	json_decref(r);
	json_decref(p);
	return rc;
}

AL_TEST(mcp_meta_require_declared)
{
	al_mcp_error e = {0};

	AL_ASSERT_INT_EQ(require("{\"sampling\":{}}", "{\"sampling\":{}}", &e), 0);
	AL_ASSERT_INT_EQ(require("{\"elicitation\":{\"form\":{},\"url\":{}}}",
				 "{\"elicitation\":{\"url\":{}}}", &e),
			 0);
	AL_ASSERT_INT_EQ(require("{}", "{}", &e), 0);
	AL_ASSERT_INT_EQ(e.code, 0);
}

AL_TEST(mcp_meta_require_missing_data_shape)
{
	al_mcp_error e = {0};
	json_t *want;

	/* The shape the conformance suite checks: an object keyed by the
	 * missing capability, not an array of names. */
	AL_ASSERT_INT_EQ(require("{\"roots\":{}}", "{\"sampling\":{},\"roots\":{}}", &e), -EINVAL);
	AL_ASSERT_INT_EQ(e.code, AL_MCP_MISSING_CAPABILITY);
	AL_ASSERT_INT_EQ(e.http_status, 400);
	want = load("{\"requiredCapabilities\":{\"sampling\":{}}}");
	AL_ASSERT(json_equal(e.data, want));
	AL_ASSERT(strstr(e.message, "sampling") != NULL);
	json_decref(want);
	al_mcp_error_clear(&e);

	/* A nested sub-capability: elicitation declared, url mode not. */
	AL_ASSERT_INT_EQ(
	    require("{\"elicitation\":{\"form\":{}}}", "{\"elicitation\":{\"url\":{}}}", &e),
	    -EINVAL);
	want = load("{\"requiredCapabilities\":{\"elicitation\":{\"url\":{}}}}");
	AL_ASSERT(json_equal(e.data, want));
	json_decref(want);
	al_mcp_error_clear(&e);

	/* Declared as a non-object: not declared. */
	AL_ASSERT_INT_EQ(require("{\"sampling\":true}", "{\"sampling\":{}}", &e), -EINVAL);
	al_mcp_error_clear(&e);
}

AL_TEST(mcp_meta_require_survives_allocation_failures)
{
	int ok = 0;

	al_alloc_init();
	for (long n = 0; n < 100 && !ok; n++) {
		json_t *p = load("{\"_meta\":{" V ":\"2026-07-28\"," CAPS ":{}}}");
		json_t *r = load("{\"sampling\":{},\"elicitation\":{\"url\":{}}}");
		al_mcp_meta m;
		al_mcp_error e = {0};
		int rc;
		AL_ASSERT_INT_EQ(al_mcp_meta_parse(p, &m, &e), 0);
		al_alloc_fail_after(n);
		rc = al_mcp_meta_require(&m, r, &e);
		al_alloc_fail_after(-1);
		AL_ASSERT(rc == -ENOMEM || rc == -EINVAL);
		if (rc == -EINVAL) {
			AL_ASSERT_INT_EQ(
			    json_object_size(json_object_get(e.data, "requiredCapabilities")), 2);
			ok = 1;
		} else {
			AL_ASSERT_INT_EQ(e.code, AL_MCP_INTERNAL_ERROR);
		}
		al_mcp_error_clear(&e);
		json_decref(r);
		json_decref(p);
	}
	AL_ASSERT_INT_EQ(ok, 1);
}
