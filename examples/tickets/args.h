/*
 * args.h - checks a tool's arguments against the inputSchema the tool
 * publishes, so the schema is the one statement of what is accepted.
 *
 * The subset of JSON Schema the tickets tools use, nothing more: an object
 * with `properties`, `required` and `additionalProperties: false`, whose
 * properties have `type` string | integer | boolean, `enum`, `minLength` /
 * `maxLength` (in characters, as JSON Schema counts them) and `minimum` /
 * `maximum`. Other keywords (description, default, examples) are ignored.
 */
#ifndef TK_ARGS_H
#define TK_ARGS_H

#include <jansson.h>
#include <stddef.h>

/*
 * 0 when args satisfies schema; -EINVAL with the first problem in err,
 * worded for a model to correct its call ("priority: must be one of low,
 * normal, high, urgent").
 */
int tk_args_check(const json_t *schema, const json_t *args, char *err, size_t errlen);

#endif
