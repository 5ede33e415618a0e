/*
 * model_stub.c - the scripted model (a TEST DOUBLE): request in, reply out.
 *
 * See model_stub.h for the script format. Everything a reply depends on is
 * in the request itself (the transcript) or in the immutable script, except
 * the fault counter, so the handler needs no lock and no per-session memory.
 */
#include "agent/model_stub.h"
#include "agent/anthropic.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/rand.h"

#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define EXHAUSTED_TEXT "[model-stub: script exhausted]"

struct fault {
	int status;
	long count;
	char retry_after[24];
	uint64_t delay_ms;
	const char *type;    /* borrowed from the script, may be NULL */
	const char *message; /* borrowed, may be NULL */
};

struct scenario {
	const char *match; /* NULL: default */
	json_t *steps;	   /* borrowed array */
};

struct al_model_stub {
	json_t *script; /* owned; everything borrowed below points into it */
	const char *model;
	uint64_t delay_ms;
	struct fault *faults;
	size_t nfaults;
	struct scenario *scen;
	size_t nscen;
	char *api_key; /* owned secret, wiped on free */
	atomic_long requests;
};

/* ---- loading ---- */

static int get_u64(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL) {
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EINVAL;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int check_steps(json_t *steps, const char *where, char *err, size_t errlen)
{
	size_t i, j;
	json_t *step, *b;
	uint64_t d;

	if (!json_is_array(steps)) {
		snprintf(err, errlen, "%s: \"steps\" must be an array", where);
		return -EINVAL;
	}
	json_array_foreach(steps, i, step)
	{
		json_t *content = json_object_get(step, "content");
		json_t *sr = json_object_get(step, "stop_reason");

		if (!json_is_object(step) || !json_is_array(content) ||
		    (sr && !json_is_string(sr)) || get_u64(step, "delay_ms", &d) < 0) {
			snprintf(err, errlen,
				 "%s step %zu: want {\"content\": [...], \"stop_reason\"?: string, "
				 "\"delay_ms\"?: integer}",
				 where, i);
			return -EINVAL;
		}
		json_array_foreach(content, j, b)
		{
			const char *type = json_string_value(json_object_get(b, "type"));
			json_t *input = json_object_get(b, "input");

			if (type && strcmp(type, "text") == 0 &&
			    json_is_string(json_object_get(b, "text")))
				continue;
			if (type && strcmp(type, "tool_use") == 0 &&
			    json_is_string(json_object_get(b, "name")) &&
			    (input == NULL || json_is_object(input)))
				continue;
			snprintf(err, errlen,
				 "%s step %zu block %zu: want {\"type\":\"text\",\"text\":...} or "
				 "{\"type\":\"tool_use\",\"name\":...,\"input\":{...}}",
				 where, i, j);
			return -EINVAL;
		}
	}
	return 0;
}

static int load_faults(al_model_stub *s, json_t *faults, char *err, size_t errlen)
{
	size_t i;
	json_t *f;

	if (faults == NULL)
		return 0;
	if (!json_is_array(faults)) {
		snprintf(err, errlen, "\"faults\" must be an array");
		return -EINVAL;
	}
	s->faults = al_calloc(json_array_size(faults) + 1, sizeof(*s->faults));
	if (s->faults == NULL)
		return -ENOMEM;
	json_array_foreach(faults, i, f)
	{
		struct fault *x = &s->faults[i];
		json_t *st = json_object_get(f, "status"), *cnt = json_object_get(f, "count");
		json_t *ra = json_object_get(f, "retry_after");
		json_t *ty = json_object_get(f, "type"), *msg = json_object_get(f, "message");

		if (!json_is_integer(st) || json_integer_value(st) < 100 ||
		    json_integer_value(st) > 599 || (cnt && !json_is_integer(cnt)) ||
		    (cnt && json_integer_value(cnt) < 1) || (ra && !json_is_number(ra)) ||
		    (ra && json_number_value(ra) < 0) || (ty && !json_is_string(ty)) ||
		    (msg && !json_is_string(msg)) || get_u64(f, "delay_ms", &x->delay_ms) < 0) {
			snprintf(
			    err, errlen,
			    "fault %zu: want {\"status\": 100-599, \"count\"?: >= 1, "
			    "\"retry_after\"?: seconds, \"delay_ms\"?, \"type\"?, \"message\"?}",
			    i);
			return -EINVAL;
		}
		x->status = (int)json_integer_value(st);
		x->count = cnt ? (long)json_integer_value(cnt) : 1;
		if (ra && json_is_integer(ra))
			snprintf(x->retry_after, sizeof(x->retry_after), "%lld",
				 (long long)json_integer_value(ra));
		else if (ra)
			snprintf(x->retry_after, sizeof(x->retry_after), "%g",
				 json_number_value(ra));
		x->type = json_string_value(ty);
		x->message = json_string_value(msg);
		s->nfaults++;
	}
	return 0;
}

static int load_scenarios(al_model_stub *s, char *err, size_t errlen)
{
	json_t *scen = json_object_get(s->script, "scenarios");
	json_t *steps = json_object_get(s->script, "steps");
	size_t n = 0, i;
	json_t *sc;
	int rc;

	if (scen && !json_is_array(scen)) {
		snprintf(err, errlen, "\"scenarios\" must be an array");
		return -EINVAL;
	}
	s->scen = al_calloc(json_array_size(scen) + 1, sizeof(*s->scen));
	if (s->scen == NULL)
		return -ENOMEM;
	json_array_foreach(scen, i, sc)
	{
		json_t *m = json_object_get(sc, "match");
		char where[48];

		snprintf(where, sizeof(where), "scenario %zu", i);
		if (!json_is_object(sc) || (m && !json_is_string(m) && !json_is_null(m))) {
			snprintf(err, errlen, "%s: want {\"match\"?: string, \"steps\": [...]}",
				 where);
			return -EINVAL;
		}
		if ((rc = check_steps(json_object_get(sc, "steps"), where, err, errlen)) < 0)
			return rc;
		s->scen[n].match = json_string_value(m);
		if (s->scen[n].match && s->scen[n].match[0] == '\0')
			s->scen[n].match = NULL;
		s->scen[n].steps = json_object_get(sc, "steps");
		n++;
	}
	if (steps) {
		if ((rc = check_steps(steps, "top level", err, errlen)) < 0)
			return rc;
		s->scen[n].match = NULL;
		s->scen[n].steps = steps;
		n++;
	}
	if (n == 0) {
		snprintf(err, errlen, "script has neither \"steps\" nor \"scenarios\"");
		return -EINVAL;
	}
	s->nscen = n;
	return 0;
}

int al_model_stub_new(const char *script, size_t len, al_model_stub **out, char *err, size_t errlen)
{
	al_model_stub *s = NULL;
	json_error_t jerr;
	json_t *model;
	int rc = -ENOMEM;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	s = al_calloc(1, sizeof(*s));
	if (s == NULL)
		goto fail;
	atomic_init(&s->requests, 0);
	s->script = json_loadb(script, len, 0, &jerr);
	/* jansson reports some allocation failures with no error text at all. */
	if (s->script == NULL &&
	    (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0'))
		goto fail;
	if (s->script == NULL || !json_is_object(s->script)) {
		if (s->script == NULL)
			snprintf(err, errlen, "script: line %d: %s", jerr.line, jerr.text);
		else
			snprintf(err, errlen, "script: must be a JSON object");
		rc = -EINVAL;
		goto fail;
	}
	model = json_object_get(s->script, "model");
	if ((model && !json_is_string(model)) || get_u64(s->script, "delay_ms", &s->delay_ms) < 0) {
		snprintf(err, errlen, "script: \"model\" must be a string, \"delay_ms\" >= 0");
		rc = -EINVAL;
		goto fail;
	}
	s->model = json_string_value(model);
	if ((rc = load_faults(s, json_object_get(s->script, "faults"), err, errlen)) < 0)
		goto fail;
	if ((rc = load_scenarios(s, err, errlen)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	if (rc == -ENOMEM && errlen)
		snprintf(err, errlen, "out of memory");
	al_model_stub_free(s);
	return rc;
}

int al_model_stub_load(const char *path, al_model_stub **out, char *err, size_t errlen)
{
	FILE *f = NULL;
	al_buf b = {0};
	char chunk[4096];
	size_t n;
	int rc;

	*out = NULL;
	f = fopen(path, "rb");
	if (f == NULL) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if ((rc = al_buf_append(&b, chunk, n)) < 0)
			goto done;
	if (ferror(f)) {
		rc = -EIO;
		snprintf(err, errlen, "%s: read error", path);
		goto done;
	}
	rc = al_model_stub_new(b.data ? b.data : "", b.len, out, err, errlen);
done:
	if (f)
		fclose(f);
	al_buf_free(&b);
	return rc;
}

void al_model_stub_free(al_model_stub *s)
{
	if (s == NULL)
		return;
	json_decref(s->script);
	al_free(s->faults);
	al_free(s->scen);
	al_free_secret_str(s->api_key);
	al_free(s);
}

int al_model_stub_set_api_key(al_model_stub *s, const char *key)
{
	char *k = NULL;

	if (key && (k = al_strdup(key)) == NULL)
		return -ENOMEM;
	al_free_secret_str(s->api_key);
	s->api_key = k;
	return 0;
}

long al_model_stub_requests(const al_model_stub *s)
{
	return atomic_load(&((al_model_stub *)s)->requests);
}

void al_model_stub_reply_free(struct al_model_stub_reply *r)
{
	if (r == NULL)
		return;
	al_free(r->body);
	r->body = NULL;
}

/* ---- replies ---- */

/* Frees what jansson allocated (json_dumps), with jansson's own free function. */
static void json_text_free(char *p)
{
	json_malloc_t m;
	json_free_t f;

	json_get_alloc_funcs(&m, &f);
	f(p);
}

static int reply_json(struct al_model_stub_reply *out, int status, json_t *body)
{
	char *s;

	if (body == NULL)
		return -ENOMEM;
	/* Copied so the caller frees the body with al_free like everything else. */
	s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (s == NULL)
		return -ENOMEM;
	out->status = status;
	out->body_len = strlen(s);
	out->body = al_strndup(s, out->body_len);
	json_text_free(s);
	return out->body ? 0 : -ENOMEM;
}

static int reply_error(struct al_model_stub_reply *out, int status, const char *type,
		       const char *message)
{
	return reply_json(out, status,
			  json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
				    type ? type : al_anthropic_error_type(status), "message",
				    message));
}

/* Concatenated text of a content value: a string, or the text of its text blocks. */
static int content_text(json_t *content, al_buf *b)
{
	size_t i;
	json_t *blk;

	if (json_is_string(content))
		return al_buf_append_str(b, json_string_value(content));
	json_array_foreach(content, i, blk)
	{
		const char *t = json_string_value(json_object_get(blk, "type"));
		const char *txt = json_string_value(json_object_get(blk, "text"));
		int rc;

		if (t && strcmp(t, "text") == 0 && txt && (rc = al_buf_append_str(b, txt)) < 0)
			return rc;
	}
	return 0;
}

struct transcript {
	size_t assistant_turns;
	al_buf first_user;
	al_buf last_user;
	al_buf last_tool_result;
};

static void transcript_free(struct transcript *t)
{
	al_buf_free(&t->first_user);
	al_buf_free(&t->last_user);
	al_buf_free(&t->last_tool_result);
}

static int read_transcript(json_t *messages, struct transcript *t)
{
	size_t i, j;
	json_t *m, *blk;
	int seen_user = 0, seen_result = 0, rc;

	json_array_foreach(messages, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		if (role && strcmp(role, "assistant") == 0)
			t->assistant_turns++;
		if (role && strcmp(role, "user") == 0 && !seen_user) {
			seen_user = 1;
			if ((rc = content_text(json_object_get(m, "content"), &t->first_user)) < 0)
				return rc;
		}
	}
	/* Walk back for the last user message and the last tool_result. */
	for (i = json_array_size(messages); i-- > 0;) {
		json_t *content;
		const char *role;

		m = json_array_get(messages, i);
		role = json_string_value(json_object_get(m, "role"));
		if (role == NULL || strcmp(role, "user") != 0)
			continue;
		content = json_object_get(m, "content");
		if (t->last_user.data == NULL) {
			if ((rc = content_text(content, &t->last_user)) < 0)
				return rc;
			if (t->last_user.data == NULL &&
			    (rc = al_buf_append(&t->last_user, "", 0)) < 0)
				return rc;
		}
		for (j = json_array_size(content); !seen_result && j-- > 0;) {
			const char *type;

			blk = json_array_get(content, j);
			type = json_string_value(json_object_get(blk, "type"));
			if (type && strcmp(type, "tool_result") == 0) {
				seen_result = 1;
				if ((rc = content_text(json_object_get(blk, "content"),
						       &t->last_tool_result)) < 0)
					return rc;
			}
		}
		if (seen_result)
			break;
	}
	return 0;
}

/* Copies s with the placeholders replaced. */
static json_t *subst(const char *s, const struct transcript *t, size_t turn)
{
	static const char *names[] = {"{{last_tool_result}}", "{{last_user_text}}", "{{turn}}"};
	al_buf b = {0};
	json_t *out = NULL;

	while (*s) {
		const char *hit = strstr(s, "{{");
		size_t k;

		if (hit == NULL) {
			if (al_buf_append_str(&b, s) < 0)
				goto done;
			break;
		}
		if (al_buf_append(&b, s, (size_t)(hit - s)) < 0)
			goto done;
		for (k = 0; k < 3; k++)
			if (strncmp(hit, names[k], strlen(names[k])) == 0)
				break;
		if (k == 3) {
			if (al_buf_append(&b, "{{", 2) < 0)
				goto done;
			s = hit + 2;
			continue;
		}
		if ((k == 0 &&
		     al_buf_append(&b, t->last_tool_result.data, t->last_tool_result.len) < 0) ||
		    (k == 1 && al_buf_append(&b, t->last_user.data, t->last_user.len) < 0) ||
		    (k == 2 && al_buf_appendf(&b, "%zu", turn) < 0))
			goto done;
		s = hit + strlen(names[k]);
	}
	out = json_stringn(b.data ? b.data : "", b.len);
done:
	al_buf_free(&b);
	return out;
}

/* Deep copy of a tool input with placeholders replaced in every string. */
static json_t *subst_value(json_t *v, const struct transcript *t, size_t turn)
{
	json_t *out = NULL, *x, *c;
	const char *key;
	size_t i;

	if (json_is_string(v))
		return subst(json_string_value(v), t, turn);
	if (json_is_object(v)) {
		out = json_object();
		json_object_foreach(v, key, x)
		{
			if (out == NULL || (c = subst_value(x, t, turn)) == NULL ||
			    json_object_set_new(out, key, c) < 0)
				goto fail;
		}
		return out;
	}
	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, x)
		{
			if (out == NULL || (c = subst_value(x, t, turn)) == NULL ||
			    json_array_append_new(out, c) < 0)
				goto fail;
		}
		return out;
	}
	return json_deep_copy(v);
fail:
	json_decref(out);
	return NULL;
}

static json_t *build_content(json_t *step, const struct transcript *t, size_t turn, int *has_tool)
{
	json_t *content = json_array(), *blk, *o = NULL;
	size_t i;

	if (content == NULL)
		return NULL;
	if (step == NULL) {
		o = json_pack("{s:s, s:s}", "type", "text", "text", EXHAUSTED_TEXT);
		if (o == NULL || json_array_append_new(content, o) < 0)
			goto fail;
		return content;
	}
	json_array_foreach(json_object_get(step, "content"), i, blk)
	{
		const char *type = json_string_value(json_object_get(blk, "type"));

		if (strcmp(type, "text") == 0) {
			o = json_pack(
			    "{s:s, s:o}", "type", "text", "text",
			    subst(json_string_value(json_object_get(blk, "text")), t, turn));
		} else {
			char id[AL_ID_MAX];
			json_t *in = json_object_get(blk, "input");

			if (al_id_new("toolu", id, sizeof(id)) < 0)
				goto fail;
			*has_tool = 1;
			o = json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name",
				      json_string_value(json_object_get(blk, "name")), "input",
				      in ? subst_value(in, t, turn) : json_object());
		}
		if (o == NULL || json_array_append_new(content, o) < 0)
			goto fail;
	}
	return content;
fail:
	json_decref(content);
	return NULL;
}

static const struct scenario *pick_scenario(const al_model_stub *s, const char *first_user)
{
	const struct scenario *def = NULL;

	for (size_t i = 0; i < s->nscen; i++) {
		if (s->scen[i].match == NULL) {
			if (def == NULL)
				def = &s->scen[i];
		} else if (first_user && strstr(first_user, s->scen[i].match)) {
			return &s->scen[i];
		}
	}
	return def;
}

/* The fault for the n-th request (0-based), or NULL. */
static const struct fault *fault_for(const al_model_stub *s, long n)
{
	for (size_t i = 0; i < s->nfaults; i++) {
		if (n < s->faults[i].count)
			return &s->faults[i];
		n -= s->faults[i].count;
	}
	return NULL;
}

static uint64_t tokens(size_t bytes)
{
	return bytes == 0 ? 1 : (bytes + 3) / 4;
}

static int handle_messages(al_model_stub *s, const char *api_key, const char *body, size_t len,
			   struct al_model_stub_reply *out)
{
	struct transcript t = {0};
	const struct fault *f;
	const struct scenario *sc;
	json_t *req = NULL, *messages, *step = NULL, *content = NULL, *resp;
	const char *model;
	char *dumped = NULL, id[AL_ID_MAX];
	int has_tool = 0, rc;
	long n;

	if (s->api_key && (api_key == NULL || strlen(api_key) != strlen(s->api_key) ||
			   !al_ct_equal(api_key, s->api_key, strlen(s->api_key)))) {
		rc = reply_error(out, 401, NULL, "invalid x-api-key");
		goto done;
	}
	n = atomic_fetch_add(&s->requests, 1);
	f = fault_for(s, n);
	if (f) {
		char msg[64];
		snprintf(msg, sizeof(msg), "model-stub injected fault (HTTP %d)", f->status);
		rc = reply_error(out, f->status, f->type, f->message ? f->message : msg);
		snprintf(out->retry_after, sizeof(out->retry_after), "%s", f->retry_after);
		out->delay_ms = f->delay_ms;
		goto done;
	}
	req = json_loadb(body ? body : "", len, 0, NULL);
	messages = json_object_get(req, "messages");
	model = json_string_value(json_object_get(req, "model"));
	if (!json_is_object(req) || !json_is_array(messages) || model == NULL ||
	    !json_is_integer(json_object_get(req, "max_tokens"))) {
		rc = reply_error(
		    out, 400, NULL,
		    "request must be a JSON object with model, max_tokens and messages");
		goto done;
	}
	if ((rc = read_transcript(messages, &t)) < 0)
		goto done;
	sc = pick_scenario(s, t.first_user.data ? t.first_user.data : "");
	if (sc == NULL) {
		rc = reply_error(out, 500, NULL, "model-stub: no scenario matches and no default");
		goto done;
	}
	step = json_array_get(sc->steps, t.assistant_turns); /* NULL past the end */
	rc = -ENOMEM;
	content = build_content(step, &t, t.assistant_turns, &has_tool);
	if (content == NULL || al_id_new("msg", id, sizeof(id)) < 0)
		goto done;
	dumped = json_dumps(content, JSON_COMPACT);
	if (dumped == NULL)
		goto done;
	{
		const char *sr = json_string_value(json_object_get(step, "stop_reason"));
		uint64_t d = 0;

		if (sr == NULL)
			sr = has_tool ? "tool_use" : "end_turn";
		resp = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s, s:n, s:{s:I, s:I}}", "id", id,
				 "type", "message", "role", "assistant", "model",
				 s->model ? s->model : model, "content", content, "stop_reason", sr,
				 "stop_sequence", "usage", "input_tokens", (json_int_t)tokens(len),
				 "output_tokens", (json_int_t)tokens(strlen(dumped)));
		if ((rc = reply_json(out, 200, resp)) < 0)
			goto done;
		get_u64(step, "delay_ms", &d);
		out->delay_ms = s->delay_ms + d;
	}
	rc = 0;
done:
	if (dumped)
		json_text_free(dumped);
	json_decref(content);
	json_decref(req);
	transcript_free(&t);
	return rc;
}

int al_model_stub_handle(al_model_stub *s, const char *method, const char *path,
			 const char *api_key, const char *body, size_t len,
			 struct al_model_stub_reply *out)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(path, "/healthz") == 0) {
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return reply_error(out, 405, "invalid_request_error", "method not allowed");
		return reply_json(out, 200, json_pack("{s:s}", "status", "ok"));
	}
	if (strcmp(path, "/v1/messages") == 0) {
		if (strcmp(method, "POST") != 0)
			return reply_error(out, 405, "invalid_request_error", "method not allowed");
		return handle_messages(s, api_key, body, len, out);
	}
	return reply_error(out, 404, NULL, "model-stub serves POST /v1/messages and GET /healthz");
}
