/*
 * Unit tests for src/worker/secret.c: the work item's secret as our server
 * and the hosted API send it, the SDK's accepted variants (standard
 * alphabet, padding), refusals that never quote the input, and allocation
 * failure at every step.
 */
#include "core/alloc.h"
#include "core/b64.h"
#include "unit/unit.h"
#include "worker/secret.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* base64url (unpadded) of a JSON text, as src/api/work.c builds it. */
static char *enc(const char *json)
{
	size_t n = strlen(json), cap = al_b64url_len(n) + 1;
	char *out = malloc(cap);

	AL_ASSERT_NOT_NULL(out);
	AL_ASSERT_INT_EQ(al_b64url_encode(json, n, out, cap), 0);
	return out;
}

/* The same with the standard alphabet and '=' padding. */
static char *enc_std(const char *json)
{
	char *u = enc(json);
	size_t n = strlen(u);
	char *out = malloc(n + 4);

	AL_ASSERT_NOT_NULL(out);
	for (size_t i = 0; i < n; i++)
		out[i] = u[i] == '-' ? '+' : u[i] == '_' ? '/' : u[i];
	while (n % 4)
		out[n++] = '=';
	out[n] = '\0';
	free(u);
	return out;
}

static int decode(const char *s, struct al_work_secret *out, char *err, size_t errlen)
{
	return al_work_secret_decode(s, strlen(s), out, err, errlen);
}

AL_TEST(secret_decodes_server_format)
{
	struct al_work_secret s;
	char err[256];
	char *b = enc("{\"sessions_token\":\"sk-ant-sess-AbC_123-xyz\"}");

	AL_ASSERT_INT_EQ(decode(b, &s, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(s.sessions_token, "sk-ant-sess-AbC_123-xyz");
	AL_ASSERT_NULL(s.api_base_url);
	AL_ASSERT_STR_EQ(err, "");
	al_work_secret_clear(&s);
	AL_ASSERT_NULL(s.sessions_token);
	free(b);
}

AL_TEST(secret_decodes_api_base_url)
{
	struct al_work_secret s;
	char err[256];
	char *b = enc("{\"sessions_token\":\"sk-ant-req-1\",\"api_base_url\":"
		      "\"https://api.example.com/v1\",\"extra\":[1,2]}");

	AL_ASSERT_INT_EQ(decode(b, &s, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(s.sessions_token, "sk-ant-req-1");
	AL_ASSERT_STR_EQ(s.api_base_url, "https://api.example.com/v1");
	al_work_secret_clear(&s);
	free(b);

	/* null means absent; plain http (our server on loopback) is fine. */
	b = enc("{\"sessions_token\":\"t\",\"api_base_url\":null}");
	AL_ASSERT_INT_EQ(decode(b, &s, err, sizeof(err)), 0);
	AL_ASSERT_NULL(s.api_base_url);
	al_work_secret_clear(&s);
	free(b);
	b = enc("{\"sessions_token\":\"t\",\"api_base_url\":\"HTTP://127.0.0.1:8420\"}");
	AL_ASSERT_INT_EQ(decode(b, &s, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(s.api_base_url, "HTTP://127.0.0.1:8420");
	al_work_secret_clear(&s);
	free(b);
}

AL_TEST(secret_accepts_standard_alphabet_padding_and_whitespace)
{
	/* Lengths chosen so the encodings need one and two '=' and hold '+' '/'. */
	static const char *jsons[] = {
	    "{\"sessions_token\":\"a>?\"}",
	    "{\"sessions_token\":\"ab>?\"}",
	    "{\"sessions_token\":\"abc>?~\"}",
	};
	struct al_work_secret s;
	char err[256], buf[256];

	for (size_t i = 0; i < sizeof(jsons) / sizeof(jsons[0]); i++) {
		char *b = enc_std(jsons[i]);
		char *u = enc(jsons[i]);

		AL_ASSERT_INT_EQ(decode(b, &s, err, sizeof(err)), 0);
		AL_ASSERT_NOT_NULL(strstr(jsons[i], s.sessions_token));
		al_work_secret_clear(&s);
		/* Unpadded with the url alphabet decodes to the same. */
		AL_ASSERT_INT_EQ(decode(u, &s, err, sizeof(err)), 0);
		AL_ASSERT_NOT_NULL(strstr(jsons[i], s.sessions_token));
		al_work_secret_clear(&s);
		/* A trailing newline (a secret read from a file) is trimmed. */
		snprintf(buf, sizeof(buf), "  %s\n", u);
		AL_ASSERT_INT_EQ(decode(buf, &s, err, sizeof(err)), 0);
		al_work_secret_clear(&s);
		free(b);
		free(u);
	}
}

AL_TEST(secret_len_bounds_the_input)
{
	struct al_work_secret s;
	char err[256];
	char *b = enc("{\"sessions_token\":\"tok\"}");
	size_t n = strlen(b);
	char *copy = malloc(n + 5);

	/* Not NUL-terminated: garbage right after the secret is not read. */
	memcpy(copy, b, n);
	memcpy(copy + n, "!!!!", 5);
	AL_ASSERT_INT_EQ(al_work_secret_decode(copy, n, &s, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(s.sessions_token, "tok");
	al_work_secret_clear(&s);
	free(copy);
	free(b);
}

/* Each refusal: -EINVAL, *out zeroed, a reason, and no trace of the input. */
static void refuse(const char *secret, const char *needle, const char *reason_part)
{
	struct al_work_secret s = {(char *)"junk", (char *)"junk"};
	char err[256];

	AL_ASSERT_INT_EQ(decode(secret, &s, err, sizeof(err)), -EINVAL);
	AL_ASSERT_NULL(s.sessions_token);
	AL_ASSERT_NULL(s.api_base_url);
	AL_ASSERT(err[0] != '\0');
	if (reason_part != NULL && strstr(err, reason_part) == NULL)
		al_test_fail(__FILE__, __LINE__, "reason \"%s\" lacks \"%s\"", err, reason_part);
	if (needle != NULL && strstr(err, needle) != NULL)
		al_test_fail(__FILE__, __LINE__, "reason \"%s\" quotes the input", err);
}

static void refuse_json(const char *json, const char *needle, const char *reason_part)
{
	char *b = enc(json);

	refuse(b, needle, reason_part);
	free(b);
}

AL_TEST(secret_refuses_bad_input_without_quoting_it)
{
	refuse("", NULL, "empty");
	refuse("   \n", NULL, "empty");
	refuse("c2VjcmV0LXRva2Vu!", "c2VjcmV0", "base64");
	refuse("a", NULL, "base64"); /* one char is never whole base64 */
	refuse("ab=c", NULL, "base64");
	/* "secret-token" in base64: decodes, but is not JSON. */
	refuse("c2VjcmV0LXRva2Vu", "-token", "JSON");
	refuse_json("[\"sk-ant-SECRET\"]", "SECRET", "object");
	refuse_json("{\"sessions_token\":\"sk-ant-SECRET\"", "SECRET", "JSON");
	refuse_json("{\"sessions_token\":\"sk-ant-SECRET\"} trailing", "SECRET", "JSON");
	refuse_json("{\"sessions_token\":\"sk-ant-SECRET\",\"sessions_token\":\"x\"}", "SECRET",
		    "JSON");
	refuse_json("{\"token\":\"sk-ant-SECRET\"}", "SECRET", "sessions_token");
	refuse_json("{\"sessions_token\":\"\"}", NULL, "sessions_token");
	refuse_json("{\"sessions_token\":42}", NULL, "sessions_token");
	refuse_json("{\"sessions_token\":null}", NULL, "sessions_token");
	/* Header injection and non-ASCII. */
	refuse_json("{\"sessions_token\":\"sk-SECRET\\r\\nX-Evil: 1\"}", "SECRET", "header");
	refuse_json("{\"sessions_token\":\"sk SECRET\"}", "SECRET", "header");
	refuse_json("{\"sessions_token\":\"sk-\\u00e9SECRET\"}", "SECRET", "header");
	refuse_json("{\"sessions_token\":\"sk-\\u0000SECRET\"}", "SECRET", NULL);
	/* Not valid UTF-8 inside the JSON. */
	refuse_json("{\"sessions_token\":\"\xff\"}", NULL, "JSON");
}

/* Like the SDK (which never reads it), a bad api_base_url does not cost the token. */
AL_TEST(secret_ignores_a_bad_api_base_url)
{
	static const char *urls[] = {
	    "\"ftp://x\"",
	    "\"https://\"",
	    "\"https:///p\"",
	    "\"https://a b\"",
	    "\"api.example.com\"",
	    "7",
	    "{}",
	    "\"https://x\\r\\nHost: y\"",
	};
	struct al_work_secret s;
	char json[256], err[256];

	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		char *b;

		snprintf(json, sizeof(json), "{\"sessions_token\":\"sk-1\",\"api_base_url\":%s}",
			 urls[i]);
		b = enc(json);
		AL_ASSERT_INT_EQ(decode(b, &s, err, sizeof(err)), 0);
		AL_ASSERT_STR_EQ(s.sessions_token, "sk-1");
		AL_ASSERT_NULL(s.api_base_url);
		AL_ASSERT_NOT_NULL(strstr(err, "api_base_url"));
		AL_ASSERT_NOT_NULL(strstr(err, "ignored"));
		al_work_secret_clear(&s);
		free(b);
	}
}

AL_TEST(secret_refuses_huge_input)
{
	struct al_work_secret s;
	char err[256];
	size_t n = 1 << 20;
	char *big = malloc(n);

	memset(big, 'A', n);
	AL_ASSERT_INT_EQ(al_work_secret_decode(big, n, &s, err, sizeof(err)), -EINVAL);
	AL_ASSERT_NOT_NULL(strstr(err, "too long"));
	AL_ASSERT_INT_EQ(al_work_secret_decode(NULL, 0, &s, err, sizeof(err)), -EINVAL);
	/* errlen 0: no write to err at all. */
	AL_ASSERT_INT_EQ(al_work_secret_decode("", 0, &s, NULL, 0), -EINVAL);
	free(big);
}

AL_TEST(secret_survives_every_allocation_failure)
{
	struct al_work_secret s;
	char err[256];
	char *b = enc("{\"sessions_token\":\"sk-ant-1\",\"api_base_url\":\"https://h\",\"x\":"
		      "{\"y\":[1,2,\"z\"]}}");
	int ok = 0;

	al_alloc_init(); /* jansson through al_malloc too */
	for (long n = 0; n < 200 && !ok; n++) {
		int rc;

		al_alloc_fail_after(n);
		rc = decode(b, &s, err, sizeof(err));
		al_alloc_fail_after(-1);
		if (rc == 0) {
			AL_ASSERT_STR_EQ(s.sessions_token, "sk-ant-1");
			AL_ASSERT_STR_EQ(s.api_base_url, "https://h");
			al_work_secret_clear(&s);
			ok = 1;
		} else {
			/*
			 * Jansson reports its own allocation failures as syntax
			 * errors (json_error_invalid_syntax), so a failure inside
			 * json_loadb surfaces as -EINVAL; ours are -ENOMEM.
			 */
			AL_ASSERT(rc == -ENOMEM || rc == -EINVAL);
			AL_ASSERT_NULL(s.sessions_token);
			AL_ASSERT_NULL(s.api_base_url);
		}
	}
	AL_ASSERT(ok);
	free(b);
}

AL_TEST(secret_clear_is_null_safe)
{
	struct al_work_secret s = {0};

	al_work_secret_clear(NULL);
	al_work_secret_clear(&s);
	s.sessions_token = al_strdup("x");
	al_work_secret_clear(&s);
	al_work_secret_clear(&s);
	AL_ASSERT_NULL(s.sessions_token);
}
