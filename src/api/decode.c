/*
 * decode.c - strict request-body decoding (see decode.h for the policy).
 */
#include "api/decode.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int al_decode_body(const char *body, size_t len, int empty_ok, json_t **out, char *err,
		   size_t errlen)
{
	json_error_t jerr;
	json_t *v = NULL;
	size_t i;

	*out = NULL;
	/* A body of only whitespace counts as empty (clients send "" or nothing). */
	for (i = 0; body != NULL && i < len; i++)
		if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
			break;
	if (body == NULL || i == len) {
		if (!empty_ok) {
			snprintf(err, errlen, "request body must be a JSON object");
			return -EINVAL;
		}
		*out = json_object();
		return *out ? 0 : -ENOMEM;
	}
	v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL) {
		/* jansson's text names the position and the problem, never the input. */
		snprintf(err, errlen, "malformed JSON body: %s at line %d column %d", jerr.text,
			 jerr.line, jerr.column);
		return -EINVAL;
	}
	if (!json_is_object(v)) {
		snprintf(err, errlen, "request body must be a JSON object, got %s",
			 al_decode_type_name(v));
		json_decref(v);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

const char *al_decode_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

static const char *type_word(enum al_field_type t)
{
	switch (t) {
	case AL_F_STRING:
		return "a string";
	case AL_F_INT:
		return "an integer";
	case AL_F_BOOL:
		return "a boolean";
	case AL_F_OBJECT:
	case AL_F_STRMAP:
	case AL_F_STRMAP_NULL:
		return "an object";
	case AL_F_ARRAY:
		return "an array";
	case AL_F_ANY:
		return "a value";
	}
	return "a value";
}

static int type_ok(const json_t *v, enum al_field_type t)
{
	switch (t) {
	case AL_F_STRING:
		return json_is_string(v);
	case AL_F_INT:
		return json_is_integer(v);
	case AL_F_BOOL:
		return json_is_boolean(v);
	case AL_F_OBJECT:
	case AL_F_STRMAP:
	case AL_F_STRMAP_NULL:
		return json_is_object(v);
	case AL_F_ARRAY:
		return json_is_array(v);
	case AL_F_ANY:
		return 1;
	}
	return 0;
}

static void field_path(char *out, size_t n, const char *where, const char *name)
{
	if (where == NULL || where[0] == '\0')
		snprintf(out, n, "%s", name);
	else
		snprintf(out, n, "%s.%s", where, name);
}

int al_decode_metadata(const json_t *v, int patch, const char *where, char *err, size_t errlen)
{
	const char *k;
	json_t *val;
	size_t n = 0;

	if (!json_is_object(v)) {
		snprintf(err, errlen, "%s: expected an object, got %s", where,
			 al_decode_type_name(v));
		return -EINVAL;
	}
	json_object_foreach((json_t *)v, k, val)
	{
		if (strlen(k) == 0 || strlen(k) > 64) {
			snprintf(err, errlen, "%s: keys must be 1 to 64 characters", where);
			return -EINVAL;
		}
		if (json_is_null(val) && patch)
			continue;
		if (!json_is_string(val)) {
			snprintf(err, errlen, "%s.%s: expected a string%s, got %s", where, k,
				 patch ? " or null" : "", al_decode_type_name(val));
			return -EINVAL;
		}
		if (json_string_length(val) > 512) {
			snprintf(err, errlen, "%s.%s: values must be at most 512 characters", where,
				 k);
			return -EINVAL;
		}
		n++;
	}
	if (n > 16) {
		snprintf(err, errlen, "%s: at most 16 keys are allowed", where);
		return -EINVAL;
	}
	return 0;
}

int al_decode_check(const json_t *obj, const struct al_field *fields, const char *where, char *err,
		    size_t errlen)
{
	char path[160];
	const char *k;
	json_t *v;
	const struct al_field *f;

	if (!json_is_object(obj)) {
		snprintf(err, errlen, "%s: expected an object, got %s",
			 where && where[0] ? where : "body", al_decode_type_name(obj));
		return -EINVAL;
	}
	json_object_foreach((json_t *)obj, k, v)
	{
		for (f = fields; f->name != NULL; f++)
			if (strcmp(f->name, k) == 0)
				break;
		if (f->name == NULL) {
			/* The key itself is client text; bound it and never echo values. */
			char kb[65];
			snprintf(kb, sizeof(kb), "%s", k);
			field_path(path, sizeof(path), where, kb);
			snprintf(err, errlen, "%s: Extra inputs are not permitted", path);
			return -EINVAL;
		}
	}
	for (f = fields; f->name != NULL; f++) {
		v = json_object_get(obj, f->name);
		field_path(path, sizeof(path), where, f->name);
		if (v == NULL) {
			if (f->flags & AL_F_REQUIRED) {
				snprintf(err, errlen, "%s: Field required", path);
				return -EINVAL;
			}
			continue;
		}
		if (json_is_null(v)) {
			if (f->flags & AL_F_NULLABLE)
				continue;
			snprintf(err, errlen, "%s: expected %s, got null", path,
				 type_word(f->type));
			return -EINVAL;
		}
		if (!type_ok(v, f->type)) {
			snprintf(err, errlen, "%s: expected %s, got %s", path, type_word(f->type),
				 al_decode_type_name(v));
			return -EINVAL;
		}
		if ((f->type == AL_F_STRMAP || f->type == AL_F_STRMAP_NULL) &&
		    al_decode_metadata(v, f->type == AL_F_STRMAP_NULL, path, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

int al_decode_string(const json_t *v, const char *where, size_t max, char *err, size_t errlen)
{
	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s: expected a string, got %s", where,
			 v ? al_decode_type_name(v) : "nothing");
		return -EINVAL;
	}
	if (json_string_length(v) == 0) {
		snprintf(err, errlen, "%s: must not be empty", where);
		return -EINVAL;
	}
	if (max > 0 && json_string_length(v) > max) {
		snprintf(err, errlen, "%s: must be at most %zu characters", where, max);
		return -EINVAL;
	}
	return 0;
}
