/*
 * filter.h - tools/list responses with the tools a route does not allow
 * removed, as a JSON body or as the events of an SSE body.
 *
 * Both eras put the list in the same place (result.tools, an array of
 * objects with a string "name"), so one filter serves 2025-11-25 and
 * 2026-07-28. A tool entry without a string name is dropped too when the
 * route filters (it cannot be checked). Anything that is not a JSON-RPC
 * result with result.tools passes unchanged (errors, notifications).
 */
#ifndef AL_GATEWAY_FILTER_H
#define AL_GATEWAY_FILTER_H

#include "gateway/route.h"

#include <jansson.h>
#include <stddef.h>

struct al_buf;

/* Removes denied tools from msg (a JSON-RPC message) in place. Returns the number removed. */
size_t al_gw_filter_tools_msg(const struct al_gw_route *r, json_t *msg);

/*
 * A whole JSON body: appends the filtered body to out. 0, -EINVAL (not
 * JSON: the caller refuses to pass it on, it cannot be checked), -ENOMEM.
 * *removed (may be NULL) gets the count.
 */
int al_gw_filter_json_body(const struct al_gw_route *r, const char *body, size_t len,
			   struct al_buf *out, size_t *removed);

/* An SSE body, filtered event by event as it streams. */
typedef struct al_gw_sse_filter al_gw_sse_filter;

al_gw_sse_filter *al_gw_sse_filter_new(const struct al_gw_route *r);
void al_gw_sse_filter_free(al_gw_sse_filter *f);
/*
 * Feeds body bytes; complete events are re-encoded (event type, id and
 * data; comments and retry fields are not kept) with their tools filtered,
 * and appended to out. 0, -E2BIG (an event over 8 MiB), -ENOMEM.
 */
int al_gw_sse_filter_feed(al_gw_sse_filter *f, const char *data, size_t len, struct al_buf *out);
size_t al_gw_sse_filter_removed(const al_gw_sse_filter *f);

#endif
