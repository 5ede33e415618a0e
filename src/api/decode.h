/*
 * decode.h - strict request-body decoding for the control plane.
 *
 * Policy (chosen to match the real API, which answers unknown body fields
 * with 400 "Extra inputs are not permitted"): every object we validate
 * rejects fields it does not know, and every type is checked exactly
 * (an integer is not a string, null is only accepted where the SDK's types
 * say `| null`). Duplicate keys are rejected (JSON_REJECT_DUPLICATES), and
 * the body must be one JSON object. Messages name the offending field as a
 * path ("tools[2].input_schema") and never echo values, so no credential a
 * client put in the wrong place ends up in a response or a log line.
 *
 * Nested free-form objects (a custom tool's input_schema, event content
 * blocks beyond their type) are type-checked at their top level only.
 */
#ifndef AL_API_DECODE_H
#define AL_API_DECODE_H

#include <jansson.h>
#include <stddef.h>

enum al_field_type {
	AL_F_STRING = 1,
	AL_F_INT, /* JSON integer */
	AL_F_BOOL,
	AL_F_OBJECT,
	AL_F_ARRAY,
	AL_F_STRMAP,	  /* object whose values are strings */
	AL_F_STRMAP_NULL, /* object whose values are strings or null (a patch) */
	AL_F_ANY,	  /* any JSON value (a union checked by the caller) */
};

/* Flags for struct al_field. */
#define AL_F_REQUIRED 1u
#define AL_F_NULLABLE 2u

struct al_field {
	const char *name;
	enum al_field_type type;
	unsigned flags;
};

/*
 * Parses a request body: exactly one JSON object, duplicate keys rejected.
 * An empty body is an empty object when empty_ok, an error otherwise.
 * Returns 0 with *out set (new reference), or -EINVAL with err set.
 */
int al_decode_body(const char *body, size_t len, int empty_ok, json_t **out, char *err,
		   size_t errlen);

/*
 * Checks obj against fields: unknown fields, missing required ones, types.
 * `where` prefixes field names in messages ("" at the top level, "tools[0]"
 * inside). Returns 0, or -EINVAL with err set.
 */
int al_decode_check(const json_t *obj, const struct al_field *fields, const char *where, char *err,
		    size_t errlen);

/* A JSON type's name for messages ("string", "object"...). */
const char *al_decode_type_name(const json_t *v);

/* Non-empty string of at most max bytes (0: no limit). -EINVAL with err set. */
int al_decode_string(const json_t *v, const char *where, size_t max, char *err, size_t errlen);

/*
 * Validates a metadata object of string values (16 keys, keys <= 64 bytes,
 * values <= 512 bytes). patch allows null values. -EINVAL with err set.
 */
int al_decode_metadata(const json_t *v, int patch, const char *where, char *err, size_t errlen);

#endif
