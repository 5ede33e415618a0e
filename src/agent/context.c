/*
 * context.c - token estimate, budget and compaction of a transcript.
 *
 * The algorithm is described in context.h. Sizes are computed on compact
 * JSON: a value serialises the same wherever it sits, so replacing one value
 * changes the size of the whole array by exactly the difference, which lets
 * elision keep a running total instead of re-serialising the transcript.
 */
#include "agent/context.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static size_t dump_size(const json_t *v)
{
	if (v == NULL)
		return 0;
	return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int64_t bytes_to_tokens(size_t bytes)
{
	return (int64_t)((bytes + AL_CTX_BYTES_PER_TOKEN - 1) / AL_CTX_BYTES_PER_TOKEN);
}

int64_t al_ctx_estimate(const json_t *v)
{
	return bytes_to_tokens(dump_size(v));
}

int64_t al_ctx_scaled(int64_t raw, double scale)
{
	if (scale <= 0)
		scale = 1.0;
	return (int64_t)ceil((double)raw * scale);
}

double al_ctx_calibrate(int64_t estimated, int64_t actual)
{
	double r;

	if (estimated <= 0 || actual <= 0)
		return 1.0;
	r = (double)actual / (double)estimated;
	if (r < 0.25)
		r = 0.25;
	if (r > 4.0)
		r = 4.0;
	return r;
}

int64_t al_ctx_budget(int64_t configured, int64_t window)
{
	if (window <= 0)
		return configured > 0 ? configured : 0;
	if (configured > 0)
		return configured < window ? configured : window;
	return window / 5 * 4 + (window % 5) * 4 / 5;
}

int al_ctx_is_turn_start(const json_t *message)
{
	const json_t *content, *block;
	size_t i;

	if (!json_is_object(message))
		return 0;
	if (strcmp(json_string_value(json_object_get(message, "role")) ?: "", "user") != 0)
		return 0;
	content = json_object_get(message, "content");
	if (json_is_string(content))
		return 1;
	json_array_foreach(content, i, block)
	{
		const char *t = json_string_value(json_object_get(block, "type"));
		if (t == NULL || strcmp(t, "tool_result") != 0)
			return 1;
	}
	return 0;
}

/* Size of the messages array from index `from` on, as if it were the whole array. */
static size_t tail_size(const size_t *msg_size, size_t n, size_t from)
{
	size_t total = 2; /* [] */

	for (size_t i = from; i < n; i++)
		total += msg_size[i] + (i > from ? 1 : 0);
	return total;
}

static int64_t total_tokens(size_t bytes, const struct al_ctx_limits *lim)
{
	return al_ctx_scaled(lim->fixed_tokens + bytes_to_tokens(bytes), lim->scale);
}

/* Copies at most max bytes of s into b without cutting a UTF-8 sequence. */
static int append_utf8_prefix(al_buf *b, const char *s, size_t max, int *truncated)
{
	size_t n = strlen(s);

	if (n > max) {
		n = max;
		/* back up over continuation bytes so the cut lands on a boundary */
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
		*truncated = 1;
	}
	return al_buf_append(b, s, n);
}

/* The first user message's text, up to AL_CTX_INTENT_MAX bytes (caller frees). */
static char *intent_of(const json_t *first)
{
	const json_t *content = json_object_get(first, "content"), *block;
	al_buf b = {0};
	int truncated = 0, rc = 0;
	size_t i;

	if (json_is_string(content)) {
		rc = append_utf8_prefix(&b, json_string_value(content), AL_CTX_INTENT_MAX,
					&truncated);
	} else {
		json_array_foreach(content, i, block)
		{
			const char *text = json_string_value(json_object_get(block, "text"));
			if (text == NULL || b.len >= AL_CTX_INTENT_MAX)
				continue;
			if (b.len > 0 && (rc = al_buf_append_str(&b, "\n")) < 0)
				break;
			rc = append_utf8_prefix(&b, text, AL_CTX_INTENT_MAX - b.len, &truncated);
			if (rc < 0)
				break;
		}
	}
	if (rc == 0 && truncated)
		rc = al_buf_append_str(&b, "...");
	if (rc == 0 && b.data == NULL)
		rc = al_buf_append_str(&b, "");
	if (rc < 0) {
		al_buf_free(&b);
		return NULL;
	}
	return al_buf_steal(&b, NULL);
}

static json_t *make_note(size_t dropped, const char *intent)
{
	char head[160];
	al_buf b = {0};
	json_t *note = NULL;

	snprintf(head, sizeof(head),
		 "[Context compacted: %zu earlier turn%s of this session were omitted to fit the "
		 "context window. The session began with this request:]\n",
		 dropped, dropped == 1 ? "" : "s");
	if (al_buf_append_str(&b, head) < 0 || al_buf_append_str(&b, intent) < 0)
		goto done;
	note = json_pack("{s:s, s:s}", "type", "text", "text", b.data);
done:
	al_buf_free(&b);
	return note;
}

/* Step 1. Returns the new total byte size of the messages array. */
static size_t elide_results(json_t *messages, size_t bytes, const struct al_ctx_limits *lim,
			    struct al_ctx_report *rep, int *oom)
{
	size_t n = json_array_size(messages);

	for (size_t i = 0; i + 1 < n && total_tokens(bytes, lim) > lim->budget; i++) {
		json_t *content = json_object_get(json_array_get(messages, i), "content"), *block;
		size_t j;

		json_array_foreach(content, j, block)
		{
			const char *t = json_string_value(json_object_get(block, "type"));
			json_t *old, *marker;
			size_t old_size, new_size;
			char text[64];

			if (t == NULL || strcmp(t, "tool_result") != 0)
				continue;
			old = json_object_get(block, "content");
			old_size = dump_size(old);
			if (old == NULL || old_size <= AL_CTX_ELIDE_MIN)
				continue;
			snprintf(text, sizeof(text), "[elided: %zu bytes]", old_size);
			marker = json_pack("[{s:s, s:s}]", "type", "text", "text", text);
			if (marker == NULL) {
				*oom = 1;
				return bytes;
			}
			new_size = dump_size(marker);
			if (json_object_set_new(block, "content", marker) < 0) {
				*oom = 1;
				return bytes;
			}
			bytes = bytes - old_size + new_size;
			rep->elided++;
			if (total_tokens(bytes, lim) <= lim->budget)
				return bytes;
		}
	}
	return bytes;
}

/* Removes the tool_result blocks of message (their tool_use went with a dropped turn). */
static int strip_results(json_t *message)
{
	json_t *content = json_object_get(message, "content");
	size_t j = 0;

	if (!json_is_array(content))
		return 0;
	while (j < json_array_size(content)) {
		const char *t =
		    json_string_value(json_object_get(json_array_get(content, j), "type"));
		if (t != NULL && strcmp(t, "tool_result") == 0) {
			if (json_array_remove(content, j) < 0)
				return -ENOMEM;
		} else {
			j++;
		}
	}
	return 0;
}

static int prepend_note(json_t *message, json_t *note)
{
	json_t *content = json_object_get(message, "content");

	if (json_is_string(content)) {
		json_t *arr =
		    json_pack("[{s:s, s:s}]", "type", "text", "text", json_string_value(content));
		if (arr == NULL || json_object_set_new(message, "content", arr) < 0) {
			json_decref(note);
			return -ENOMEM;
		}
		content = arr;
	}
	if (json_array_insert_new(content, 0, note) < 0)
		return -ENOMEM;
	return 0;
}

/* Step 2. Returns 0 or -ENOMEM; updates *bytes. */
static int drop_turns(json_t *messages, size_t *bytes, const struct al_ctx_limits *lim,
		      struct al_ctx_report *rep)
{
	size_t n = json_array_size(messages), *msg_size = NULL, *starts = NULL, nturns = 0;
	size_t cut = 0, dropped = 0;
	json_t *note = NULL;
	char *intent = NULL;
	int rc = 0;

	if (n == 0)
		goto done;
	msg_size = al_calloc(n, sizeof(*msg_size));
	starts = al_calloc(n, sizeof(*starts));
	if (msg_size == NULL || starts == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		msg_size[i] = dump_size(json_array_get(messages, i));
		if (i == 0 || al_ctx_is_turn_start(json_array_get(messages, i)))
			starts[nturns++] = i;
	}
	if (nturns < 2)
		goto done;
	intent = intent_of(json_array_get(messages, 0));
	if (intent == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	/*
	 * Try dropping 1, 2, ... turns; the last turn always stays. The note's
	 * size depends on the count, so it is rebuilt for each candidate. The
	 * size after stripping result blocks from the new first message is
	 * approximated by keeping them (an overestimate, the safe side).
	 */
	for (size_t k = 1; k < nturns; k++) {
		size_t sz;

		json_decref(note);
		note = make_note(k, intent);
		if (note == NULL) {
			rc = -ENOMEM;
			goto done;
		}
		sz = tail_size(msg_size, n, starts[k]) + dump_size(note) + 1;
		cut = starts[k];
		dropped = k;
		if (total_tokens(sz, lim) <= lim->budget)
			break;
	}
	for (size_t i = 0; i < cut; i++) {
		if (json_array_remove(messages, 0) < 0) {
			rc = -ENOMEM;
			goto done;
		}
	}
	if ((rc = strip_results(json_array_get(messages, 0))) < 0)
		goto done;
	rc = prepend_note(json_array_get(messages, 0), note);
	note = NULL;
	if (rc < 0)
		goto done;
	rep->dropped_turns = dropped;
	*bytes = dump_size(messages);
done:
	json_decref(note);
	al_free(intent);
	al_free(msg_size);
	al_free(starts);
	return rc;
}

int al_ctx_compact(json_t *messages, const struct al_ctx_limits *lim, struct al_ctx_report *rep,
		   char *err, size_t errlen)
{
	struct al_ctx_report local = {0};
	size_t bytes;
	int rc = 0, oom = 0;

	if (rep == NULL)
		rep = &local;
	memset(rep, 0, sizeof(*rep));
	if (!json_is_array(messages) || lim == NULL) {
		rc = -EINVAL;
		goto done;
	}
	bytes = dump_size(messages);
	rep->tokens_before = total_tokens(bytes, lim);
	if (rep->tokens_before > lim->budget) {
		bytes = elide_results(messages, bytes, lim, rep, &oom);
		if (oom) {
			rc = -ENOMEM;
			goto done;
		}
	}
	if (total_tokens(bytes, lim) > lim->budget) {
		if ((rc = drop_turns(messages, &bytes, lim, rep)) < 0)
			goto done;
	}
	rep->tokens_after = total_tokens(bytes, lim);
	if (rep->tokens_after > lim->limit) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
				 "the conversation does not fit the model's context window: the "
				 "latest turn alone needs about %lld tokens, over the limit of "
				 "%lld",
				 (long long)rep->tokens_after, (long long)lim->limit);
		rc = -E2BIG;
	}
done:
	return rc;
}
