/*
 * test_route.c - Host routing, tool globs, the tools/list filter (JSON and
 * SSE) and the metrics text.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "gateway/config.h"
#include "gateway/filter.h"
#include "gateway/metrics.h"
#include "gateway/route.h"
#include "unit/unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char cfg_yaml[] = "tunnel_domain: MCP.Example.com\n"
			       "routes:\n"
			       "  tickets:\n"
			       "    upstream: http://10.0.0.5:8080\n"
			       "    tools:\n"
			       "      allow: [\"get_*\", \"search_*\"]\n"
			       "      deny: [\"get_secret*\"]\n"
			       "  kb.corp.example: http://10.0.0.6:8080\n"
			       "  deny-only:\n"
			       "    upstream: http://10.0.0.7:8080\n"
			       "    tools: {deny: [\"*delete*\"]}\n";

static void load(struct al_gw_config *c)
{
	char err[256];

	if (al_gw_config_load_yaml(c, cfg_yaml, strlen(cfg_yaml), "t", err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "config: %s", err);
}

AL_TEST(gateway_route_host_matching)
{
	struct al_gw_config c;
	const struct al_gw_route *r;

	load(&c);
	r = al_gw_route_find(&c, "tickets.mcp.example.com");
	AL_ASSERT_NOT_NULL(r);
	AL_ASSERT_STR_EQ(r->host, "tickets");
	/* case, port and a trailing dot do not matter */
	AL_ASSERT(al_gw_route_find(&c, "TICKETS.mcp.example.COM:8443") == r);
	AL_ASSERT(al_gw_route_find(&c, "tickets.mcp.example.com.") == r);
	/* exact host first: the route key itself */
	AL_ASSERT(al_gw_route_find(&c, "tickets") == r);
	AL_ASSERT_NOT_NULL(al_gw_route_find(&c, "kb.corp.example"));
	AL_ASSERT_NOT_NULL(al_gw_route_find(&c, "kb.corp.example.mcp.example.com"));
	/* not a suffix match on a label boundary */
	AL_ASSERT_NULL(al_gw_route_find(&c, "ticketsmcp.example.com"));
	AL_ASSERT_NULL(al_gw_route_find(&c, "x.tickets.mcp.example.com"));
	AL_ASSERT_NULL(al_gw_route_find(&c, "mcp.example.com"));
	AL_ASSERT_NULL(al_gw_route_find(&c, "evil.com"));
	AL_ASSERT_NULL(al_gw_route_find(&c, NULL));
	AL_ASSERT_NULL(al_gw_route_find(&c, ""));
	al_gw_config_clear(&c);
}

AL_TEST(gateway_route_tool_globs)
{
	struct al_gw_config c;
	const struct al_gw_route *t, *d, *kb;

	load(&c);
	t = al_gw_route_find(&c, "tickets");
	d = al_gw_route_find(&c, "deny-only");
	kb = al_gw_route_find(&c, "kb.corp.example");
	AL_ASSERT_INT_EQ(al_gw_tool_allowed(t, "get_ticket"), 1);
	AL_ASSERT_INT_EQ(al_gw_tool_allowed(t, "search_x"), 1);
	AL_ASSERT_INT_EQ(al_gw_tool_allowed(t, "get_secret_key"), 0); /* deny wins */
	AL_ASSERT_INT_EQ(al_gw_tool_allowed(t, "create_ticket"), 0);  /* not allowed */
	AL_ASSERT_INT_EQ(al_gw_tool_allowed(t, "Get_ticket"), 0);     /* case-sensitive */
	AL_ASSERT_INT_EQ(al_gw_tool_allowed(t, NULL), 0);
	AL_ASSERT_INT_EQ(al_gw_tool_allowed(d, "anything"), 1);
	AL_ASSERT_INT_EQ(al_gw_tool_allowed(d, "bulk_delete_all"), 0);
	AL_ASSERT_INT_EQ(al_gw_tool_allowed(kb, NULL), 1); /* no lists: everything */
	al_gw_config_clear(&c);
}

AL_TEST(gateway_filter_json_body)
{
	static const char body[] =
	    "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[{\"name\":\"get_a\"},"
	    "{\"name\":\"delete_b\"},{\"nameless\":1},{\"name\":\"search_c\"}],\"ttlMs\":5}}";
	struct al_gw_config c;
	al_buf out = {0};
	size_t removed = 0;

	load(&c);
	AL_ASSERT_INT_EQ(al_gw_filter_json_body(al_gw_route_find(&c, "tickets"), body, strlen(body),
						&out, &removed),
			 0);
	AL_ASSERT_INT_EQ(removed, 2);
	AL_ASSERT_INT_EQ(al_buf_append(&out, "", 1), 0);
	AL_ASSERT_STR_EQ(out.data, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[{\"name\":"
				   "\"get_a\"},{\"name\":\"search_c\"}],\"ttlMs\":5}}");
	al_buf_free(&out);
	AL_ASSERT_INT_EQ(
	    al_gw_filter_json_body(al_gw_route_find(&c, "tickets"), "{x", 2, &out, NULL), -EINVAL);
	al_buf_free(&out);
	al_gw_config_clear(&c);
}

AL_TEST(gateway_filter_sse_split_anywhere)
{
	static const char body[] =
	    "event: message\r\nid: 7\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/"
	    "progress\"}\r\n\r\n: comment\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":"
	    "{\"tools\":[{\"name\":\"x_delete\"},{\"name\":\"keep\"}]}}\n\n";
	struct al_gw_config c;
	const struct al_gw_route *d;

	load(&c);
	d = al_gw_route_find(&c, "deny-only");
	/* Every split point gives the same output. */
	for (size_t cut = 0; cut <= strlen(body); cut++) {
		al_gw_sse_filter *f = al_gw_sse_filter_new(d);
		al_buf out = {0};
		AL_ASSERT_NOT_NULL(f);
		AL_ASSERT_INT_EQ(al_gw_sse_filter_feed(f, body, cut, &out), 0);
		AL_ASSERT_INT_EQ(al_gw_sse_filter_feed(f, body + cut, strlen(body) - cut, &out), 0);
		AL_ASSERT_INT_EQ(al_gw_sse_filter_removed(f), 1);
		AL_ASSERT_INT_EQ(al_buf_append(&out, "", 1), 0);
		AL_ASSERT_STR_EQ(out.data,
				 "id: 7\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/"
				 "progress\"}\n\n:\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":"
				 "{\"tools\":[{\"name\":\"keep\"}]}}\n\n");
		al_buf_free(&out);
		al_gw_sse_filter_free(f);
	}
	al_gw_config_clear(&c);
}

/* Found by fuzz_gateway_filter: the client must end up with the upstream's
 * last event id, also when the upstream resets it ("id" with no value) and
 * when it is longer than 255 bytes (it was truncated, so a later id equal
 * to its first 255 bytes was never written). */
AL_TEST(gateway_filter_sse_event_ids_kept)
{
	char body[1024], want[1024];
	char a300[301], a255[256];
	struct al_gw_config c;
	al_gw_sse_filter *f;
	al_buf out = {0};

	memset(a300, 'a', 300);
	a300[300] = '\0';
	memset(a255, 'a', 255);
	a255[255] = '\0';
	load(&c);
	f = al_gw_sse_filter_new(al_gw_route_find(&c, "deny-only"));
	AL_ASSERT_NOT_NULL(f);
	snprintf(body, sizeof(body),
		 "id: 1\ndata: {}\n\nid\ndata: {}\n\nid: %s\ndata: {}\n\nid: %s\ndata: {}\n\n", a300,
		 a255);
	/* JSON objects: the filter drops events it cannot read as one JSON text. */
	snprintf(want, sizeof(want),
		 "id: 1\ndata: {}\n\nid: \ndata: {}\n\nid: %s\ndata: {}\n\nid: %s\ndata: {}\n\n", a300,
		 a255);
	AL_ASSERT_INT_EQ(al_gw_sse_filter_feed(f, body, strlen(body), &out), 0);
	AL_ASSERT_INT_EQ(al_buf_append(&out, "", 1), 0);
	AL_ASSERT_STR_EQ(out.data, want);
	al_buf_free(&out);
	al_gw_sse_filter_free(f);
	al_gw_config_clear(&c);
}

AL_TEST(gateway_metrics_text)
{
	al_gw_metrics *m = al_gw_metrics_new();
	al_buf b = {0};

	AL_ASSERT_NOT_NULL(m);
	al_gw_metrics_request(m, "tickets", "tools/call", 200);
	al_gw_metrics_request(m, "tickets", "tools/call", 200);
	al_gw_metrics_request(m, "tickets", "made/up\"method", 404);
	al_gw_metrics_latency(m, "tickets", 3000);
	al_gw_metrics_refusal(m, "tickets", "tool_denied");
	al_gw_metrics_in_flight(m, 2);
	al_gw_metrics_in_flight(m, -1);
	AL_ASSERT_INT_EQ(al_gw_metrics_render(m, &b), 0);
	AL_ASSERT_INT_EQ(al_buf_append(&b, "", 1), 0);
	AL_ASSERT_NOT_NULL(strstr(b.data, "airlock_gateway_requests_total{route=\"tickets\",method="
					  "\"tools/call\",status=\"200\"} 2\n"));
	/* an unknown method is "other": clients cannot mint series */
	AL_ASSERT_NOT_NULL(strstr(b.data, "method=\"other\",status=\"404\"} 1\n"));
	AL_ASSERT_NOT_NULL(
	    strstr(b.data, "airlock_gateway_upstream_latency_seconds_bucket{route=\"tickets\","
			   "le=\"0.0025\"} 0\n"));
	AL_ASSERT_NOT_NULL(
	    strstr(b.data, "airlock_gateway_upstream_latency_seconds_bucket{route=\"tickets\","
			   "le=\"0.005\"} 1\n"));
	AL_ASSERT_NOT_NULL(strstr(b.data, "airlock_gateway_in_flight 1\n"));
	AL_ASSERT_NOT_NULL(
	    strstr(b.data,
		   "airlock_gateway_refusals_total{route=\"tickets\",reason=\"tool_denied\"} 1\n"));
	al_buf_free(&b);
	al_gw_metrics_free(m);
}
