/* test_model_stub.c - the scripted model's request -> reply mapping (no sockets). */
#include "agent/model_stub.h"

#include "core/alloc.h"
#include "unit/unit.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static const char *script =
    "{\"faults\": [{\"status\": 529, \"count\": 2, \"retry_after\": 1},"
    "              {\"status\": 500}],"
    " \"scenarios\": ["
    "  {\"match\": \"weather\", \"steps\": ["
    "    {\"content\": [{\"type\": \"text\", \"text\": \"checking\"},"
    "                   {\"type\": \"tool_use\", \"name\": \"bash\","
    "                    \"input\": {\"command\": \"curl wttr.in\", \"n\": [1, \"t{{turn}}\"]}}]},"
    "    {\"content\": [{\"type\": \"text\", \"text\": \"It is {{last_tool_result}}.\"}],"
    "     \"delay_ms\": 5}]},"
    "  {\"steps\": [{\"content\": [{\"type\": \"text\", \"text\": \"you said: "
    "{{last_user_text}} {{unknown}}\"}], \"stop_reason\": \"max_tokens\"}]}"
    " ]}";

/* Follows a dotted path ("content.0.text"); numbers index arrays. NULL if absent. */
static json_t *jpath(json_t *j, const char *path)
{
	char buf[128], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && j; tok = strtok_r(NULL, ".", &save))
		j = json_is_array(j) ? json_array_get(j, strtoul(tok, NULL, 10))
				     : json_object_get(j, tok);
	return j;
}

static al_model_stub *load(const char *s)
{
	al_model_stub *stub = NULL;
	char err[256];

	AL_ASSERT_INT_EQ(al_model_stub_new(s, strlen(s), &stub, err, sizeof(err)), 0);
	return stub;
}

static json_t *post(al_model_stub *s, const char *body, int want_status,
		    struct al_model_stub_reply *r)
{
	json_t *j;

	AL_ASSERT_INT_EQ(
	    al_model_stub_handle(s, "POST", "/v1/messages", NULL, body, strlen(body), r), 0);
	AL_ASSERT_INT_EQ(r->status, want_status);
	j = json_loadb(r->body, r->body_len, 0, NULL);
	AL_ASSERT_NOT_NULL(j);
	return j;
}

#define REQ_FIRST                                                                                  \
	"{\"model\":\"claude-x\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\","             \
	"\"content\":\"what is the weather?\"}]}"
#define REQ_SECOND                                                                                 \
	"{\"model\":\"claude-x\",\"max_tokens\":100,\"messages\":["                                \
	"{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what is the weather?\"}]}," \
	"{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\","          \
	"\"name\":\"bash\",\"input\":{}}]},"                                                       \
	"{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","   \
	"\"content\":[{\"type\":\"text\",\"text\":\"sunny\"}]}]}]}"

AL_TEST(model_stub_faults_then_steps)
{
	al_model_stub *s = load(script);
	struct al_model_stub_reply r;
	json_t *j, *content, *tu;

	for (int i = 0; i < 2; i++) {
		j = post(s, REQ_FIRST, 529, &r);
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(j, "type")), "error");
		AL_ASSERT_STR_EQ(json_string_value(jpath(j, "error.type")), "overloaded_error");
		AL_ASSERT_STR_EQ(r.retry_after, "1");
		json_decref(j);
		al_model_stub_reply_free(&r);
	}
	j = post(s, REQ_FIRST, 500, &r);
	AL_ASSERT_STR_EQ(r.retry_after, "");
	json_decref(j);
	al_model_stub_reply_free(&r);

	/* Faults used up: the scenario plays, step 0 (no assistant turns yet). */
	j = post(s, REQ_FIRST, 200, &r);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(j, "type")), "message");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(j, "role")), "assistant");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(j, "model")), "claude-x");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(j, "stop_reason")), "tool_use");
	AL_ASSERT(strncmp(json_string_value(json_object_get(j, "id")), "msg_", 4) == 0);
	content = json_object_get(j, "content");
	AL_ASSERT_INT_EQ(json_array_size(content), 2);
	tu = json_array_get(content, 1);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(tu, "type")), "tool_use");
	AL_ASSERT(strncmp(json_string_value(json_object_get(tu, "id")), "toolu_", 6) == 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(tu, "name")), "bash");
	AL_ASSERT_STR_EQ(json_string_value(jpath(tu, "input.command")), "curl wttr.in");
	AL_ASSERT_STR_EQ(json_string_value(json_array_get(jpath(tu, "input.n"), 1)), "t0");
	AL_ASSERT_INT_EQ(json_integer_value(jpath(j, "usage.input_tokens")),
			 (strlen(REQ_FIRST) + 3) / 4);
	AL_ASSERT(json_integer_value(jpath(j, "usage.output_tokens")) > 0);
	AL_ASSERT_INT_EQ(r.delay_ms, 0);
	json_decref(j);
	al_model_stub_reply_free(&r);

	/* One assistant turn in the transcript: step 1, echoing the tool result. */
	j = post(s, REQ_SECOND, 200, &r);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(j, "stop_reason")), "end_turn");
	AL_ASSERT_STR_EQ(json_string_value(jpath(j, "content.0.text")), "It is sunny.");
	AL_ASSERT_INT_EQ(r.delay_ms, 5);
	json_decref(j);
	al_model_stub_reply_free(&r);
	AL_ASSERT_INT_EQ(al_model_stub_requests(s), 5);
	al_model_stub_free(s);
}

AL_TEST(model_stub_default_scenario_and_exhaustion)
{
	al_model_stub *s = load("{\"steps\":[{\"content\":[{\"type\":\"text\",\"text\":"
				"\"you said: {{last_user_text}} {{nope}}\"}],"
				"\"stop_reason\":\"max_tokens\"}], \"model\": \"stub-model\"}");
	struct al_model_stub_reply r;
	json_t *j;
	const char *second = "{\"model\":\"m\",\"max_tokens\":1,\"messages\":["
			     "{\"role\":\"user\",\"content\":\"hi\"},"
			     "{\"role\":\"assistant\",\"content\":\"yo\"},"
			     "{\"role\":\"user\",\"content\":\"again\"}]}";

	j = post(s,
		 "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
		 "\"content\":\"hello there\"}]}",
		 200, &r);
	AL_ASSERT_STR_EQ(json_string_value(jpath(j, "content.0.text")),
			 "you said: hello there {{nope}}");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(j, "stop_reason")), "max_tokens");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(j, "model")), "stub-model");
	json_decref(j);
	al_model_stub_reply_free(&r);

	j = post(s, second, 200, &r);
	AL_ASSERT_STR_EQ(json_string_value(jpath(j, "content.0.text")),
			 "[model-stub: script exhausted]");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(j, "stop_reason")), "end_turn");
	json_decref(j);
	al_model_stub_reply_free(&r);
	al_model_stub_free(s);
}

AL_TEST(model_stub_bad_requests_and_routes)
{
	al_model_stub *s = load(script);
	struct al_model_stub_reply r;
	json_t *j;

	AL_ASSERT_INT_EQ(al_model_stub_handle(s, "GET", "/healthz", NULL, NULL, 0, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	al_model_stub_reply_free(&r);
	AL_ASSERT_INT_EQ(al_model_stub_handle(s, "GET", "/v1/other", NULL, NULL, 0, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 404);
	al_model_stub_reply_free(&r);
	AL_ASSERT_INT_EQ(al_model_stub_handle(s, "GET", "/v1/messages", NULL, NULL, 0, &r), 0);
	AL_ASSERT_INT_EQ(r.status, 405);
	al_model_stub_reply_free(&r);
	/* Health checks and 404s do not consume faults. */
	AL_ASSERT_INT_EQ(al_model_stub_requests(s), 0);
	for (int i = 0; i < 3; i++) {
		AL_ASSERT_INT_EQ(al_model_stub_handle(s, "POST", "/v1/messages", NULL, "{}", 2, &r),
				 0);
		al_model_stub_reply_free(&r);
	}
	j = post(s, "{\"messages\":[]}", 400, &r);
	AL_ASSERT_STR_EQ(json_string_value(jpath(j, "error.type")), "invalid_request_error");
	json_decref(j);
	al_model_stub_reply_free(&r);
	j = post(s, "not json", 400, &r);
	json_decref(j);
	al_model_stub_reply_free(&r);
	al_model_stub_free(s);
}

AL_TEST(model_stub_api_key)
{
	al_model_stub *s = load("{\"steps\":[]}");
	struct al_model_stub_reply r;
	const char *body = "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[]}";

	AL_ASSERT_INT_EQ(al_model_stub_set_api_key(s, "sk-ant-stub-key"), 0);
	AL_ASSERT_INT_EQ(
	    al_model_stub_handle(s, "POST", "/v1/messages", NULL, body, strlen(body), &r), 0);
	AL_ASSERT_INT_EQ(r.status, 401);
	AL_ASSERT_NULL(strstr(r.body, "sk-ant"));
	al_model_stub_reply_free(&r);
	AL_ASSERT_INT_EQ(al_model_stub_handle(s, "POST", "/v1/messages", "sk-ant-stub-kex", body,
					      strlen(body), &r),
			 0);
	AL_ASSERT_INT_EQ(r.status, 401);
	al_model_stub_reply_free(&r);
	AL_ASSERT_INT_EQ(al_model_stub_handle(s, "POST", "/v1/messages", "sk-ant-stub-key", body,
					      strlen(body), &r),
			 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	al_model_stub_reply_free(&r);
	al_model_stub_free(s);
}

AL_TEST(model_stub_script_errors)
{
	static const char *bad[] = {
	    "",
	    "[]",
	    "{}",
	    "{\"steps\": {}}",
	    "{\"steps\": [{\"content\": [{\"type\": \"image\"}]}]}",
	    "{\"steps\": [{\"content\": [{\"type\": \"tool_use\"}]}]}",
	    "{\"steps\": [], \"faults\": [{\"status\": 99}]}",
	    "{\"steps\": [], \"faults\": [{\"status\": 529, \"count\": 0}]}",
	    "{\"scenarios\": [{\"match\": 3, \"steps\": []}]}",
	    "{\"steps\": [{\"content\": [], \"delay_ms\": -1}]}",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		al_model_stub *s = (al_model_stub *)1;
		AL_ASSERT_INT_EQ(al_model_stub_new(bad[i], strlen(bad[i]), &s, err, sizeof(err)),
				 -EINVAL);
		AL_ASSERT_NULL(s);
		AL_ASSERT(err[0] != '\0');
	}
	AL_ASSERT_INT_EQ(al_model_stub_load("/nonexistent/script.json", &(al_model_stub *){NULL},
					    err, sizeof(err)),
			 -ENOENT);
}

AL_TEST(model_stub_alloc_failures)
{
	int seen_ok = 0;

	al_alloc_init(); /* jansson through the wrapper too */
	for (long n = 0; n < 2000 && !seen_ok; n++) {
		al_model_stub *s = NULL;
		struct al_model_stub_reply r = {0};
		char err[256];
		int rc;

		al_alloc_fail_after(n);
		rc = al_model_stub_new(script, strlen(script), &s, err, sizeof(err));
		if (rc == 0) {
			/* Skip the three faults by asking four times; the last plays step 1. */
			for (int i = 0; i < 4 && rc == 0; i++) {
				al_model_stub_reply_free(&r);
				rc = al_model_stub_handle(s, "POST", "/v1/messages", NULL,
							  REQ_SECOND, strlen(REQ_SECOND), &r);
			}
		}
		al_alloc_fail_after(-1);
		if (rc == 0) {
			AL_ASSERT_INT_EQ(r.status, 200);
			AL_ASSERT_NOT_NULL(strstr(r.body, "It is sunny."));
			seen_ok = 1;
		} else {
			/*
			 * jansson's parser reports some allocation failures as syntax
			 * errors, so a script load may say -EINVAL; nothing else may.
			 */
			if (rc != -ENOMEM && !(rc == -EINVAL && s == NULL))
				al_test_fail(__FILE__, __LINE__, "n=%ld rc=%d %s", n, rc, err);
		}
		al_model_stub_reply_free(&r);
		al_model_stub_free(s);
	}
	AL_ASSERT(seen_ok);
}
