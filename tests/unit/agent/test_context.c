/* test_context.c - token estimate, budget and compaction (agent/context.c). */
#include "agent/context.h"
#include "core/alloc.h"
#include "unit/unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static json_t *user_text(const char *text)
{
	return json_pack("{s:s, s:[{s:s, s:s}]}", "role", "user", "content", "type", "text", "text",
			 text);
}

static json_t *assistant_text(const char *text)
{
	return json_pack("{s:s, s:[{s:s, s:s}]}", "role", "assistant", "content", "type", "text",
			 "text", text);
}

static json_t *assistant_tool(const char *id)
{
	return json_pack("{s:s, s:[{s:s, s:s, s:s, s:{s:s}}]}", "role", "assistant", "content",
			 "type", "tool_use", "id", id, "name", "bash", "input", "command", "ls");
}

static json_t *user_result(const char *id, const char *text)
{
	return json_pack("{s:s, s:[{s:s, s:s, s:b, s:[{s:s, s:s}]}]}", "role", "user", "content",
			 "type", "tool_result", "tool_use_id", id, "is_error", 0, "content", "type",
			 "text", "text", text);
}

/*
 * A transcript of `turns` turns; each: user text, assistant tool_use,
 * user tool_result (result_bytes of 'r'), assistant text.
 */
static json_t *transcript(int turns, size_t result_bytes)
{
	json_t *m = json_array();
	char *big = repeat('r', result_bytes);

	for (int t = 0; t < turns; t++) {
		char text[64], id[32];

		snprintf(text, sizeof(text), "question %d", t);
		snprintf(id, sizeof(id), "toolu_%d", t);
		json_array_append_new(m, user_text(text));
		json_array_append_new(m, assistant_tool(id));
		json_array_append_new(m, user_result(id, big));
		snprintf(text, sizeof(text), "answer %d", t);
		json_array_append_new(m, assistant_text(text));
	}
	free(big);
	return m;
}

/*
 * Every tool_use in an assistant message has a tool_result in the next
 * message and every tool_result answers a tool_use of the previous one.
 */
static void assert_pairing(const json_t *messages)
{
	size_t n = json_array_size(messages);

	AL_ASSERT(n > 0);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(messages, 0), "role")),
			 "user");
	for (size_t i = 0; i < n; i++) {
		json_t *content = json_object_get(json_array_get(messages, i), "content"), *b;
		size_t j;

		json_array_foreach(content, j, b)
		{
			const char *t = json_string_value(json_object_get(b, "type"));
			if (strcmp(t, "tool_use") == 0) {
				const char *id = json_string_value(json_object_get(b, "id"));
				json_t *next = json_object_get(json_array_get(messages, i + 1),
							       "content"),
				       *r;
				size_t k;
				int found = 0;
				json_array_foreach(next, k, r)
				{
					const char *rid =
					    json_string_value(json_object_get(r, "tool_use_id"));
					if (rid && strcmp(rid, id) == 0)
						found = 1;
				}
				if (!found)
					al_test_fail(__FILE__, __LINE__, "tool_use %s unanswered",
						     id);
			} else if (strcmp(t, "tool_result") == 0) {
				const char *rid =
				    json_string_value(json_object_get(b, "tool_use_id"));
				json_t *prev, *u;
				size_t k;
				int found = 0;
				AL_ASSERT(i > 0);
				prev = json_object_get(json_array_get(messages, i - 1), "content");
				json_array_foreach(prev, k, u)
				{
					const char *id =
					    json_string_value(json_object_get(u, "id"));
					if (id && strcmp(rid, id) == 0)
						found = 1;
				}
				if (!found)
					al_test_fail(__FILE__, __LINE__, "tool_result %s orphaned",
						     rid);
			}
		}
	}
}

static const char *result_text(const json_t *messages, size_t i)
{
	json_t *block = json_array_get(json_object_get(json_array_get(messages, i), "content"), 0);
	return json_string_value(
	    json_object_get(json_array_get(json_object_get(block, "content"), 0), "text"));
}

AL_TEST(context_estimate_is_bytes_over_four)
{
	json_t *s = json_string("abcd");		   /* "abcd" = 6 bytes -> 2 tokens */
	json_t *o = json_pack("{s:s}", "k", "0123456789"); /* {"k":"0123456789"} = 18 -> 5 */

	AL_ASSERT_INT_EQ(al_ctx_estimate(s), 2);
	AL_ASSERT_INT_EQ(al_ctx_estimate(o), 5);
	AL_ASSERT_INT_EQ(al_ctx_estimate(NULL), 0);
	AL_ASSERT_INT_EQ(al_ctx_scaled(10, 1.5), 15);
	AL_ASSERT_INT_EQ(al_ctx_scaled(10, 0), 10);
	json_decref(s);
	json_decref(o);
}

AL_TEST(context_budget_and_calibration)
{
	AL_ASSERT_INT_EQ(al_ctx_budget(0, 200000), 160000);
	AL_ASSERT_INT_EQ(al_ctx_budget(50000, 200000), 50000);
	AL_ASSERT_INT_EQ(al_ctx_budget(500000, 200000), 200000);
	AL_ASSERT_INT_EQ(al_ctx_budget(0, 0), 0);
	AL_ASSERT(al_ctx_calibrate(100, 150) > 1.49 && al_ctx_calibrate(100, 150) < 1.51);
	AL_ASSERT(al_ctx_calibrate(100, 1) == 0.25);
	AL_ASSERT(al_ctx_calibrate(100, 100000) == 4.0);
	AL_ASSERT(al_ctx_calibrate(0, 100) == 1.0);
	AL_ASSERT(al_ctx_calibrate(100, 0) == 1.0);
}

AL_TEST(context_turn_start_detection)
{
	json_t *u = user_text("hi"), *r = user_result("x", "out"), *a = assistant_text("yo");
	json_t *s = json_pack("{s:s, s:s}", "role", "user", "content", "plain");

	AL_ASSERT_INT_EQ(al_ctx_is_turn_start(u), 1);
	AL_ASSERT_INT_EQ(al_ctx_is_turn_start(s), 1);
	AL_ASSERT_INT_EQ(al_ctx_is_turn_start(r), 0);
	AL_ASSERT_INT_EQ(al_ctx_is_turn_start(a), 0);
	json_decref(u);
	json_decref(r);
	json_decref(a);
	json_decref(s);
}

AL_TEST(context_under_budget_is_untouched)
{
	json_t *m = transcript(3, 1000), *copy = json_deep_copy(m);
	struct al_ctx_limits lim = {.budget = 100000, .limit = 200000, .fixed_tokens = 500};
	struct al_ctx_report rep;

	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, NULL, 0), 0);
	AL_ASSERT(json_equal(m, copy));
	AL_ASSERT_INT_EQ(rep.elided, 0);
	AL_ASSERT_INT_EQ(rep.dropped_turns, 0);
	AL_ASSERT_INT_EQ(rep.tokens_before, rep.tokens_after);
	AL_ASSERT_INT_EQ(rep.tokens_before, 500 + al_ctx_estimate(copy));
	json_decref(m);
	json_decref(copy);
}

AL_TEST(context_elides_oldest_results_first)
{
	json_t *m = transcript(3, 4000), *copy = json_deep_copy(m);
	int64_t full = al_ctx_estimate(m);
	/* Eliding one 4000-byte result (~1000 tokens) is enough. */
	struct al_ctx_limits lim = {.budget = full - 500, .limit = full * 2};
	struct al_ctx_report rep;
	char expect[64];

	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, NULL, 0), 0);
	AL_ASSERT_INT_EQ(rep.elided, 1);
	AL_ASSERT_INT_EQ(rep.dropped_turns, 0);
	AL_ASSERT(rep.tokens_after <= lim.budget);
	AL_ASSERT_INT_EQ(rep.tokens_after, al_ctx_estimate(m));
	AL_ASSERT_INT_EQ(json_array_size(m), 12);
	/* "rrrr..." serialised as [{"type":"text","text":"..."}] */
	snprintf(expect, sizeof(expect), "[elided: %d bytes]", 4000 + 27);
	AL_ASSERT_STR_EQ(result_text(m, 2), expect);
	/* the pair stays: same id, the later results untouched */
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_array_get(json_object_get(json_array_get(m, 2), "content"), 0),
			     "tool_use_id")),
			 "toolu_0");
	AL_ASSERT(json_equal(json_array_get(m, 6), json_array_get(copy, 6)));
	AL_ASSERT(json_equal(json_array_get(m, 10), json_array_get(copy, 10)));
	assert_pairing(m);
	json_decref(m);
	json_decref(copy);
}

AL_TEST(context_never_elides_the_last_message)
{
	/* One turn whose only result is in the last message: nothing to elide, fails. */
	json_t *m = json_array();
	char *big = repeat('x', 8000), err[256] = "";
	struct al_ctx_limits lim = {.budget = 100, .limit = 200};
	struct al_ctx_report rep;

	json_array_append_new(m, user_text("go"));
	json_array_append_new(m, assistant_tool("toolu_a"));
	json_array_append_new(m, user_result("toolu_a", big));
	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, err, sizeof(err)), -E2BIG);
	AL_ASSERT_INT_EQ(rep.elided, 0);
	AL_ASSERT_INT_EQ(rep.dropped_turns, 0);
	AL_ASSERT_STR_EQ(result_text(m, 2), big);
	AL_ASSERT(strstr(err, "context window") != NULL);
	AL_ASSERT(strstr(err, "200") != NULL);
	free(big);
	json_decref(m);
}

AL_TEST(context_drops_oldest_turns_after_elision)
{
	/* Big user texts cannot be elided, so turns must go. */
	json_t *m = json_array(), *copy;
	char *big = repeat('q', 4000);
	struct al_ctx_limits lim;
	struct al_ctx_report rep;
	const char *note;
	size_t n;

	for (int t = 0; t < 4; t++) {
		char id[16];
		snprintf(id, sizeof(id), "toolu_%d", t);
		json_array_append_new(m, user_text(t == 0 ? "Please fix the build" : big));
		json_array_append_new(m, assistant_tool(id));
		json_array_append_new(m, user_result(id, big));
		json_array_append_new(m, assistant_text("done"));
	}
	copy = json_deep_copy(m);
	/*
	 * After eliding every result (the last message is the assistant's, so
	 * all four qualify), three 4000-byte user texts remain: ~3000 tokens.
	 * Dropping the first two turns leaves ~2100.
	 */
	lim = (struct al_ctx_limits){.budget = 2500, .limit = 100000};
	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, NULL, 0), 0);
	AL_ASSERT_INT_EQ(rep.elided, 4);
	AL_ASSERT_INT_EQ(rep.dropped_turns, 2);
	AL_ASSERT(rep.tokens_after <= lim.budget);
	n = json_array_size(m);
	AL_ASSERT_INT_EQ(n, 8);
	/* the note carries the first user message's intent */
	note = json_string_value(json_object_get(
	    json_array_get(json_object_get(json_array_get(m, 0), "content"), 0), "text"));
	AL_ASSERT_NOT_NULL(note);
	AL_ASSERT(strstr(note, "2 earlier turns") != NULL);
	AL_ASSERT(strstr(note, "Please fix the build") != NULL);
	/* the last turn is kept whole (its result, not in the last message, was elided) */
	AL_ASSERT(json_equal(json_array_get(m, n - 1), json_array_get(copy, 15)));
	AL_ASSERT(json_equal(json_array_get(m, n - 3), json_array_get(copy, 13)));
	AL_ASSERT(json_equal(json_array_get(m, n - 4), json_array_get(copy, 12)));
	assert_pairing(m);
	free(big);
	json_decref(m);
	json_decref(copy);
}

AL_TEST(context_drop_strips_results_of_dropped_tool_uses)
{
	/*
	 * A turn start that also carries a result (a user message sent while a
	 * call was open): when the previous turn is dropped, the result would be
	 * orphaned, so it goes too.
	 */
	json_t *m = json_array(), *mixed;
	char *big = repeat('q', 6000);
	struct al_ctx_limits lim = {.budget = 400, .limit = 100000};
	struct al_ctx_report rep;

	json_array_append_new(m, user_text(big));
	json_array_append_new(m, assistant_tool("toolu_old"));
	mixed = user_result("toolu_old", "short");
	json_array_append_new(json_object_get(mixed, "content"),
			      json_pack("{s:s, s:s}", "type", "text", "text", "new question"));
	json_array_append_new(m, mixed);
	json_array_append_new(m, assistant_text("ok"));
	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, NULL, 0), 0);
	AL_ASSERT_INT_EQ(rep.dropped_turns, 1);
	AL_ASSERT_INT_EQ(json_array_size(m), 2);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(json_array_get(m, 0), "content")), 2);
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(json_array_get(m, 0), "content"), 1), "text")),
	    "new question");
	assert_pairing(m);
	free(big);
	json_decref(m);
}

AL_TEST(context_intent_is_truncated_on_utf8_boundary)
{
	/*
	 * "a" then 600 two-byte characters: byte 1000 is the second byte of a
	 * character, so the quote must stop at 999.
	 */
	json_t *m = json_array();
	char *first = malloc(1202), *big = repeat('z', 8000);
	struct al_ctx_limits lim = {.budget = 600, .limit = 100000};
	struct al_ctx_report rep;
	const char *note, *quote;

	first[0] = 'a';
	for (int i = 0; i < 600; i++) {
		first[2 * i + 1] = (char)0xC3;
		first[2 * i + 2] = (char)0xA9; /* é */
	}
	first[1201] = '\0';
	json_array_append_new(m, user_text(first));
	json_array_append_new(m, assistant_text(big));
	json_array_append_new(m, user_text("second"));
	json_array_append_new(m, assistant_text("ok"));
	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, NULL, 0), 0);
	AL_ASSERT_INT_EQ(rep.dropped_turns, 1);
	note = json_string_value(json_object_get(
	    json_array_get(json_object_get(json_array_get(m, 0), "content"), 0), "text"));
	AL_ASSERT_NOT_NULL(note); /* jansson rejects invalid UTF-8: non-NULL proves a clean cut */
	quote = strchr(note, '\n') + 1;
	AL_ASSERT_INT_EQ(strlen(quote), 999 + 3);
	AL_ASSERT(strcmp(quote + 999, "...") == 0);
	free(first);
	free(big);
	json_decref(m);
}

AL_TEST(context_fails_when_last_turn_alone_is_over_the_window)
{
	json_t *m = transcript(2, 100);
	char *big = repeat('w', 40000), err[256] = "";
	struct al_ctx_limits lim = {.budget = 2000, .limit = 5000};
	struct al_ctx_report rep;

	json_array_append_new(m, user_text(big)); /* last turn: ~10000 tokens */
	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, err, sizeof(err)), -E2BIG);
	AL_ASSERT_INT_EQ(rep.dropped_turns, 2);
	AL_ASSERT(rep.tokens_after > lim.limit);
	AL_ASSERT(strstr(err, "5000") != NULL);
	free(big);
	json_decref(m);
}

AL_TEST(context_over_budget_under_limit_is_accepted)
{
	json_t *m = json_array();
	char *big = repeat('w', 4000);
	struct al_ctx_limits lim = {.budget = 100, .limit = 5000};
	struct al_ctx_report rep;

	json_array_append_new(m, user_text(big));
	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, NULL, 0), 0);
	AL_ASSERT(rep.tokens_after > lim.budget);
	AL_ASSERT_INT_EQ(json_array_size(m), 1);
	free(big);
	json_decref(m);
}

AL_TEST(context_scale_and_fixed_part_count)
{
	/* The same transcript fits uncalibrated but needs elision at scale 2. */
	json_t *m = transcript(2, 2000), *copy = json_deep_copy(m);
	int64_t raw = al_ctx_estimate(m);
	struct al_ctx_limits lim = {.budget = raw + 10, .limit = raw * 4, .scale = 1.0};
	struct al_ctx_report rep;

	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, NULL, 0), 0);
	AL_ASSERT_INT_EQ(rep.elided, 0);
	lim.scale = 2.0;
	lim.budget = (raw + 10) * 2 - 600;
	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, NULL, 0), 0);
	AL_ASSERT_INT_EQ(rep.elided, 1);
	json_decref(m);
	m = json_deep_copy(copy);
	lim = (struct al_ctx_limits){.budget = raw + 10, .limit = raw * 4, .fixed_tokens = 300};
	AL_ASSERT_INT_EQ(al_ctx_compact(m, &lim, &rep, NULL, 0), 0);
	AL_ASSERT_INT_EQ(rep.elided, 1);
	json_decref(m);
	json_decref(copy);
}

AL_TEST(context_rejects_non_array)
{
	json_t *o = json_object();
	struct al_ctx_limits lim = {.budget = 1, .limit = 1};

	AL_ASSERT_INT_EQ(al_ctx_compact(o, &lim, NULL, NULL, 0), -EINVAL);
	json_decref(o);
}

AL_TEST(context_alloc_failures_unwind)
{
	/* Every allocation of a compaction that drops turns fails in turn. */
	int ok = 0;

	al_alloc_init();
	for (long n = 0; n < 3000; n++) {
		json_t *m;
		struct al_ctx_limits lim = {.budget = 1500, .limit = 100000};
		int rc;
		al_alloc_fail_after(-1);
		m = transcript(4, 4000);
		AL_ASSERT_NOT_NULL(m);
		al_alloc_fail_after(n);
		rc = al_ctx_compact(m, &lim, NULL, NULL, 0);
		al_alloc_fail_after(-1);
		AL_ASSERT(rc == 0 || rc == -ENOMEM);
		if (rc == 0) {
			ok++;
			assert_pairing(m);
		}
		json_decref(m);
		if (ok > 0)
			break;
	}
	AL_ASSERT_INT_EQ(ok, 1);
}
