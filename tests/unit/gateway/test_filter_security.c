/*
 * test_filter_security.c - the tools/list filter fails closed: what it
 * cannot read is not passed on, and a batch is filtered element by element
 * (security review, docs/SECURITY.md).
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "gateway/config.h"
#include "gateway/filter.h"
#include "gateway/route.h"
#include "unit/unit.h"

#include <string.h>

static const char cfg_yaml[] = "routes:\n"
			       "  tickets:\n"
			       "    upstream: http://10.0.0.5:8080\n"
			       "    tools: {deny: [\"delete_*\"]}\n";

static const struct al_gw_route *load(struct al_gw_config *c)
{
	char err[256];

	if (al_gw_config_load_yaml(c, cfg_yaml, strlen(cfg_yaml), "t", err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "config: %s", err);
	return al_gw_route_find(c, "tickets");
}

/* Feeds body to a fresh SSE filter; returns the output as a C string (caller frees). */
static char *sse_run(const struct al_gw_route *r, const char *body, size_t *dropped)
{
	al_gw_sse_filter *f = al_gw_sse_filter_new(r);
	al_buf out = {0};

	AL_ASSERT_NOT_NULL(f);
	AL_ASSERT_INT_EQ(al_gw_sse_filter_feed(f, body, strlen(body), &out), 0);
	*dropped = al_gw_sse_filter_dropped(f);
	al_gw_sse_filter_free(f);
	AL_ASSERT_INT_EQ(al_buf_append(&out, "", 1), 0);
	return al_buf_steal(&out, NULL);
}

/*
 * A tools/list answer with "tools" twice: jansson refuses it, a client's
 * JSON.parse takes the last one. Before the fix the event passed through
 * unfiltered, denied tool included.
 */
AL_TEST(gateway_sse_filter_drops_duplicate_keys)
{
	struct al_gw_config c;
	const struct al_gw_route *r = load(&c);
	size_t dropped = 0;
	char *out;

	out = sse_run(r,
		      "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[],"
		      "\"tools\":[{\"name\":\"delete_ticket\"}]}}\n\n"
		      "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":"
		      "[{\"name\":\"get_ticket\"}]}}\n\n",
		      &dropped);
	AL_ASSERT_NULL(strstr(out, "delete_ticket"));
	AL_ASSERT_NOT_NULL(strstr(out, "get_ticket"));
	AL_ASSERT_INT_EQ(dropped, 1);
	al_free(out);
	al_gw_config_clear(&c);
}

/* Not JSON (a trailing second value, a raw CR trick): dropped, not passed. */
AL_TEST(gateway_sse_filter_drops_unreadable_events)
{
	struct al_gw_config c;
	const struct al_gw_route *r = load(&c);
	size_t dropped = 0;
	char *out;

	out = sse_run(r,
		      "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}\n"
		      "data: {\"tools\":[{\"name\":\"delete_ticket\"}]}\n\n"
		      "data: [{\"name\":\"delete_all\"}\n\n"
		      "data:\n\n",
		      &dropped);
	AL_ASSERT_NULL(strstr(out, "delete_"));
	AL_ASSERT_INT_EQ(dropped, 2);
	/* The empty (priming) event still passes. */
	AL_ASSERT_STR_EQ(out, "data: \n\n");
	al_free(out);
	al_gw_config_clear(&c);
}

/* A batch of responses: each element is filtered (JSON body and SSE). */
AL_TEST(gateway_filter_batch_elements)
{
	struct al_gw_config c;
	const struct al_gw_route *r = load(&c);
	const char *batch = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":["
			    "{\"name\":\"get_ticket\"},{\"name\":\"delete_ticket\"}]}}]";
	al_buf out = {0}, ev = {0};
	size_t removed = 0, dropped = 0;
	char *s;

	AL_ASSERT_INT_EQ(al_gw_filter_json_body(r, batch, strlen(batch), &out, &removed), 0);
	AL_ASSERT_INT_EQ(removed, 1);
	AL_ASSERT_INT_EQ(al_buf_append(&out, "", 1), 0);
	AL_ASSERT_NULL(strstr(out.data, "delete_ticket"));
	AL_ASSERT_NOT_NULL(strstr(out.data, "get_ticket"));
	al_buf_free(&out);

	AL_ASSERT_INT_EQ(al_buf_appendf(&ev, "data: %s\n\n", batch), 0);
	AL_ASSERT_INT_EQ(al_buf_append(&ev, "", 1), 0);
	s = sse_run(r, ev.data, &dropped);
	AL_ASSERT_NULL(strstr(s, "delete_ticket"));
	AL_ASSERT_NOT_NULL(strstr(s, "get_ticket"));
	al_free(s);
	al_buf_free(&ev);
	al_gw_config_clear(&c);
}
