/*
 * args.c - the inputSchema subset checker (args.h).
 */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Characters (Unicode code points) of a valid UTF-8 string: bytes that do not continue one. */
static size_t chars(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

/* An integer as JSON Schema sees one: 3 and 3.0 both are. */
static int as_integer(const json_t *v, double *out)
{
	if (json_is_integer(v)) {
		*out = (double)json_integer_value(v);
		return 1;
	}
	/* Within 2^53: every such double is exact, and converts to int64 safely. */
	if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
	    fabs(json_real_value(v)) <= 9007199254740992.0) {
		*out = json_real_value(v);
		return 1;
	}
	return 0;
}

static int check_enum(const char *name, const json_t *en, const json_t *v, char *err, size_t errlen)
{
	size_t i, o = 0;
	json_t *e;

	json_array_foreach(en, i, e)
	{
		if (json_equal(e, v))
			return 0;
	}
	o = (size_t)snprintf(err, errlen, "%s: must be one of", name);
	json_array_foreach(en, i, e)
	{
		if (o < errlen && json_is_string(e))
			o += (size_t)snprintf(err + o, errlen - o, "%s %s", i ? "," : "",
					      json_string_value(e));
	}
	return -EINVAL;
}

static int check_value(const char *name, const json_t *ps, const json_t *v, char *err,
		       size_t errlen)
{
	const char *type = json_string_value(json_object_get(ps, "type"));
	const json_t *en = json_object_get(ps, "enum");
	json_t *lim;
	double d = 0;

	if (type && strcmp(type, "string") == 0) {
		size_t n;
		if (!json_is_string(v)) {
			snprintf(err, errlen, "%s: must be a string", name);
			return -EINVAL;
		}
		n = chars(json_string_value(v), json_string_length(v));
		if ((lim = json_object_get(ps, "minLength")) &&
		    n < (size_t)json_integer_value(lim)) {
			snprintf(err, errlen,
				 json_integer_value(lim) == 1
				     ? "%s: must not be empty"
				     : "%s: must be at least %lld characters",
				 name, (long long)json_integer_value(lim));
			return -EINVAL;
		}
		if ((lim = json_object_get(ps, "maxLength")) &&
		    n > (size_t)json_integer_value(lim)) {
			snprintf(err, errlen, "%s: must be at most %lld characters (got %zu)", name,
				 (long long)json_integer_value(lim), n);
			return -EINVAL;
		}
	} else if (type && strcmp(type, "integer") == 0) {
		if (!as_integer(v, &d)) {
			snprintf(err, errlen, "%s: must be an integer", name);
			return -EINVAL;
		}
		if ((lim = json_object_get(ps, "minimum")) && d < json_number_value(lim)) {
			snprintf(err, errlen, "%s: must be at least %lld", name,
				 (long long)json_number_value(lim));
			return -EINVAL;
		}
		if ((lim = json_object_get(ps, "maximum")) && d > json_number_value(lim)) {
			snprintf(err, errlen, "%s: must be at most %lld", name,
				 (long long)json_number_value(lim));
			return -EINVAL;
		}
	} else if (type && strcmp(type, "boolean") == 0) {
		if (!json_is_boolean(v)) {
			snprintf(err, errlen, "%s: must be true or false", name);
			return -EINVAL;
		}
	}
	if (en)
		return check_enum(name, en, v, err, errlen);
	return 0;
}

int tk_args_check(const json_t *schema, const json_t *args, char *err, size_t errlen)
{
	const json_t *props = json_object_get(schema, "properties");
	const json_t *req = json_object_get(schema, "required");
	const json_t *v;
	const char *name;
	size_t i;
	int rc;

	if (!json_is_object(args)) {
		snprintf(err, errlen, "arguments must be an object");
		return -EINVAL;
	}
	json_array_foreach(req, i, v)
	{
		if (json_object_get(args, json_string_value(v)) == NULL) {
			snprintf(err, errlen, "%s: is required", json_string_value(v));
			return -EINVAL;
		}
	}
	json_object_foreach((json_t *)args, name, v)
	{
		const json_t *ps = json_object_get(props, name);
		if (ps == NULL) {
			if (json_is_false(json_object_get(schema, "additionalProperties"))) {
				snprintf(err, errlen, "%s: unknown argument", name);
				return -EINVAL;
			}
			continue;
		}
		if ((rc = check_value(name, ps, v, err, errlen)) < 0)
			return rc;
	}
	return 0;
}
