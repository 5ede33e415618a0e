/* Request-body decoding: strict JSON, types, unknown fields, resource validators. */
#include "api/decode.h"
#include "api/internal.h"
#include "unit/unit.h"

#include <errno.h>
#include <string.h>

static int decode(const char *s, json_t **out, char *err)
{
	return al_decode_body(s, strlen(s), 0, out, err, 256);
}

AL_TEST(api_decode_rejects_malformed_and_duplicates)
{
	char err[256];
	json_t *v = NULL;

	AL_ASSERT_INT_EQ(decode("{\"a\":1,", &v, err), -EINVAL);
	AL_ASSERT(strstr(err, "malformed JSON") != NULL);
	AL_ASSERT_INT_EQ(decode("{\"a\":1,\"a\":2}", &v, err), -EINVAL);
	AL_ASSERT_INT_EQ(decode("[1,2]", &v, err), -EINVAL);
	AL_ASSERT(strstr(err, "got array") != NULL);
	AL_ASSERT_INT_EQ(decode("", &v, err), -EINVAL);
	AL_ASSERT_INT_EQ(al_decode_body("  ", 2, 1, &v, err, sizeof(err)), 0);
	AL_ASSERT(json_is_object(v) && json_object_size(v) == 0);
	json_decref(v);
	AL_ASSERT_INT_EQ(decode("{\"a\":1}", &v, err), 0);
	json_decref(v);
}

AL_TEST(api_decode_check_types_required_unknown)
{
	static const struct al_field f[] = {{"name", AL_F_STRING, AL_F_REQUIRED},
					    {"n", AL_F_INT, 0},
					    {"d", AL_F_STRING, AL_F_NULLABLE},
					    {"m", AL_F_STRMAP, 0},
					    {NULL, 0, 0}};
	char err[256];
	json_t *v;

	v = json_loads("{\"name\":\"x\",\"n\":3,\"d\":null,\"m\":{\"k\":\"v\"}}", 0, NULL);
	AL_ASSERT_INT_EQ(al_decode_check(v, f, "", err, sizeof(err)), 0);
	json_decref(v);

	v = json_loads("{\"n\":3}", 0, NULL);
	AL_ASSERT_INT_EQ(al_decode_check(v, f, "", err, sizeof(err)), -EINVAL);
	AL_ASSERT_STR_EQ(err, "name: Field required");
	json_decref(v);

	v = json_loads("{\"name\":\"x\",\"n\":\"3\"}", 0, NULL);
	AL_ASSERT_INT_EQ(al_decode_check(v, f, "", err, sizeof(err)), -EINVAL);
	AL_ASSERT_STR_EQ(err, "n: expected an integer, got string");
	json_decref(v);

	v = json_loads("{\"name\":\"x\",\"n\":1.5}", 0, NULL);
	AL_ASSERT_INT_EQ(al_decode_check(v, f, "", err, sizeof(err)), -EINVAL);
	json_decref(v);

	v = json_loads("{\"name\":null}", 0, NULL);
	AL_ASSERT_INT_EQ(al_decode_check(v, f, "", err, sizeof(err)), -EINVAL);
	AL_ASSERT_STR_EQ(err, "name: expected a string, got null");
	json_decref(v);

	v = json_loads("{\"name\":\"x\",\"extra\":1}", 0, NULL);
	AL_ASSERT_INT_EQ(al_decode_check(v, f, "tools[1]", err, sizeof(err)), -EINVAL);
	AL_ASSERT_STR_EQ(err, "tools[1].extra: Extra inputs are not permitted");
	json_decref(v);

	v = json_loads("{\"name\":\"x\",\"m\":{\"k\":1}}", 0, NULL);
	AL_ASSERT_INT_EQ(al_decode_check(v, f, "", err, sizeof(err)), -EINVAL);
	AL_ASSERT_STR_EQ(err, "m.k: expected a string, got integer");
	json_decref(v);
}

AL_TEST(api_decode_metadata_limits)
{
	char err[256], key[80];
	json_t *m = json_object();

	for (int i = 0; i < 17; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		json_object_set_new(m, key, json_string("v"));
	}
	AL_ASSERT_INT_EQ(al_decode_metadata(m, 0, "metadata", err, sizeof(err)), -EINVAL);
	AL_ASSERT(strstr(err, "16") != NULL);
	json_object_clear(m);
	memset(key, 'a', 65);
	key[65] = '\0';
	json_object_set_new(m, key, json_string("v"));
	AL_ASSERT_INT_EQ(al_decode_metadata(m, 0, "metadata", err, sizeof(err)), -EINVAL);
	json_object_clear(m);
	json_object_set_new(m, "gone", json_null());
	AL_ASSERT_INT_EQ(al_decode_metadata(m, 0, "metadata", err, sizeof(err)), -EINVAL);
	AL_ASSERT_INT_EQ(al_decode_metadata(m, 1, "metadata", err, sizeof(err)), 0);
	json_decref(m);
}

AL_TEST(api_decode_secret_never_echoed)
{
	static const struct al_field f[] = {{"name", AL_F_STRING, 0}, {NULL, 0, 0}};
	char err[256];
	json_t *v = json_loads("{\"name\":\"x\",\"k\":\"alk_env_SECRETSECRETSECRET\"}", 0, NULL);

	AL_ASSERT_INT_EQ(al_decode_check(v, f, "", err, sizeof(err)), -EINVAL);
	AL_ASSERT(strstr(err, "SECRET") == NULL);
	json_decref(v);
}

AL_TEST(api_agent_build_resolves_defaults)
{
	char err[256];
	json_t *in, *a = NULL, *t;

	in = json_loads("{\"name\":\"n\",\"model\":{\"id\":\"m\",\"effort\":\"high\"},"
			"\"tools\":[{\"type\":\"agent_toolset_20260401\",\"configs\":[{\"name\":"
			"\"bash\",\"enabled\":false}]},{\"type\":\"custom\",\"name\":\"c\","
			"\"description\":\"d\",\"input_schema\":{\"type\":\"object\"}}]}",
			0, NULL);
	AL_ASSERT_INT_EQ(al_agent_build(in, 0, NULL, &a, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(a, "model"), "id")),
			 "m");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_object_get(json_object_get(a, "model"), "effort"), "type")),
			 "high");
	t = json_array_get(json_object_get(a, "tools"), 0);
	AL_ASSERT(json_is_true(json_object_get(json_object_get(t, "default_config"), "enabled")));
	t = json_array_get(json_object_get(t, "configs"), 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(t, "type")), "bash");
	AL_ASSERT(json_is_false(json_object_get(t, "enabled")));
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(t, "permission_policy"), "type")),
	    "always_allow");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(a, "execution_identity"), "type")),
	    "service_account");
	json_decref(in);
	json_decref(a);
}

AL_TEST(api_agent_build_rejects_bad_input)
{
	static const char *const bad[] = {
	    "{\"model\":\"m\"}",
	    "{\"name\":\"n\",\"model\":5}",
	    "{\"name\":\"\",\"model\":\"m\"}",
	    "{\"name\":\"n\",\"model\":\"m\",\"tools\":[{\"type\":\"nope\"}]}",
	    "{\"name\":\"n\",\"model\":\"m\",\"tools\":[{\"type\":\"custom\",\"name\":\"a b\","
	    "\"description\":\"d\",\"input_schema\":{\"type\":\"object\"}}]}",
	    "{\"name\":\"n\",\"model\":\"m\",\"mcp_servers\":[{\"type\":\"url\",\"name\":\"s\","
	    "\"url\":\"https://x\"}]}",
	    "{\"name\":\"n\",\"model\":\"m\",\"tools\":[{\"type\":\"agent_toolset_20260401\","
	    "\"configs\":[{\"name\":\"rm_rf\"}]}]}",
	    "{\"name\":\"n\",\"model\":{\"id\":\"m\",\"effort\":\"huge\"}}",
	    "{\"name\":\"n\",\"model\":\"m\",\"surprise\":true}",
	    NULL};
	char err[256];

	for (int i = 0; bad[i]; i++) {
		json_t *in = json_loads(bad[i], 0, NULL), *a = NULL;
		AL_ASSERT_NOT_NULL(in);
		if (al_agent_build(in, 0, NULL, &a, err, sizeof(err)) != -EINVAL)
			al_test_fail(__FILE__, __LINE__, "accepted: %s", bad[i]);
		AL_ASSERT_NULL(a);
		json_decref(in);
	}
}

AL_TEST(api_event_validate)
{
	static const char *const good[] = {
	    "{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}",
	    "{\"type\":\"user.interrupt\"}",
	    "{\"type\":\"user.tool_confirmation\",\"tool_use_id\":\"t\",\"result\":\"allow\"}",
	    "{\"type\":\"user.tool_result\",\"tool_use_id\":\"t\",\"is_error\":false,"
	    "\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}",
	    "{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"c\"}",
	    "{\"type\":\"system.message\",\"content\":[{\"type\":\"text\",\"text\":\"s\"}]}",
	    NULL};
	static const char *const bad[] = {
	    "{\"type\":\"agent.message\",\"content\":[]}",
	    "{\"type\":\"user.message\"}",
	    "{\"type\":\"user.message\",\"content\":[{\"type\":\"text\"}]}",
	    "{\"type\":\"user.message\",\"content\":\"hi\"}",
	    "{\"type\":\"user.tool_confirmation\",\"tool_use_id\":\"t\",\"result\":\"maybe\"}",
	    "{\"type\":\"user.tool_result\",\"tool_use_id\":\"t\",\"is_error\":\"no\"}",
	    "{\"type\":\"user.interrupt\",\"x\":1}",
	    "{\"content\":[]}",
	    "[]",
	    NULL};
	char err[256];

	for (int i = 0; good[i]; i++) {
		json_t *e = json_loads(good[i], JSON_DECODE_ANY, NULL);
		if (al_event_validate(e, 0, err, sizeof(err)) != 0)
			al_test_fail(__FILE__, __LINE__, "rejected %s: %s", good[i], err);
		json_decref(e);
	}
	for (int i = 0; bad[i]; i++) {
		json_t *e = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		if (al_event_validate(e, 3, err, sizeof(err)) != -EINVAL)
			al_test_fail(__FILE__, __LINE__, "accepted %s", bad[i]);
		AL_ASSERT(strncmp(err, "events[3]", 9) == 0);
		json_decref(e);
	}
}
