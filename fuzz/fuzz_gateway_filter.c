/*
 * fuzz_gateway_filter.c - libFuzzer target for the gateway's tools/list
 * filtering of upstream responses (src/gateway/filter.c).
 *
 * The first byte picks the body kind (bit0: SSE, else JSON) and the route
 * (bits 1-2: allow and deny lists, deny only, allow only, none); the next
 * two seed the chunk sizes an SSE body is fed in. The rest is the body.
 *
 * Checked (abort on failure):
 *   JSON  a body that loads filters to JSON whose result.tools (if any)
 *         holds only allowed, named tools; the count removed is the
 *         difference; filtering the output again removes nothing.
 *   SSE   the output does not depend on how the input was cut; parsed
 *         again it is the input's events (type, id, data), each data
 *         filtered as a JSON message would be, without the events whose
 *         data is not JSON (dropped), and nothing else; the counts
 *         removed agree.
 * Nothing may crash or leak.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "gateway/filter.h"
#include "gateway/route.h"
#include "http/sse_parser.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

static char *allow[] = {"get_*", "list_?", "echo", NULL};
static char *deny[] = {"*delete*", "get_secret", NULL};

static void route_of(uint8_t sel, struct al_gw_route *r)
{
	memset(r, 0, sizeof(*r));
	r->host = "fuzz";
	switch (sel & 3) {
	case 0:
		r->allow_tools = allow;
		r->deny_tools = deny;
		break;
	case 1:
		r->deny_tools = deny;
		break;
	case 2:
		r->allow_tools = allow;
		break;
	default:
		break;
	}
}

static size_t ntools(const json_t *j)
{
	return json_array_size(json_object_get(json_object_get(j, "result"), "tools"));
}

/* Every tool left in a filtered message is allowed. */
static void check_tools(const struct al_gw_route *r, const json_t *j)
{
	json_t *tools = json_object_get(json_object_get(j, "result"), "tools"), *t;
	size_t i;

	if (!al_gw_route_filters_tools(r))
		return;
	json_array_foreach(tools, i, t)
	{
		const char *name = json_string_value(json_object_get(t, "name"));
		CHECK(name != NULL && al_gw_tool_allowed(r, name));
	}
}

static void fuzz_json(const struct al_gw_route *r, const char *p, size_t n)
{
	al_buf out = {0}, again = {0};
	size_t removed = 99, removed2 = 99;
	json_t *in = NULL, *o = NULL;
	int rc = al_gw_filter_json_body(r, p, n, &out, &removed);

	if (rc < 0) {
		CHECK(rc == -EINVAL || rc == -ENOMEM);
		CHECK(removed == 0);
		goto done;
	}
	in = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
	o = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, NULL);
	CHECK(in != NULL && o != NULL);
	check_tools(r, o);
	CHECK(ntools(in) - ntools(o) == removed);
	CHECK(al_gw_filter_json_body(r, out.data, out.len, &again, &removed2) == 0);
	CHECK(removed2 == 0);
done:
	json_decref(in);
	json_decref(o);
	al_buf_free(&out);
	al_buf_free(&again);
}

/* The events of an SSE stream, as "type\0id\0data\0" records. */
struct collect {
	al_buf b;
	const struct al_gw_route *r;
	int filter; /* 1: filter each data as the gateway would; 0: check it is filtered */
	size_t removed;
};

static int dump_cb(const char *buffer, size_t size, void *data)
{
	return al_buf_append(data, buffer, size) < 0 ? -1 : 0;
}

static int collect_cb(const struct al_sse_event *ev, void *ud)
{
	struct collect *c = ud;
	const char *d = ev->data;
	size_t dl = ev->data_len;
	al_buf tmp = {0};
	json_t *j = json_loadb(ev->data, ev->data_len, JSON_REJECT_DUPLICATES, NULL);
	int rc = -ENOMEM;

	if (c->filter && dl && j == NULL) {
		/* The gateway drops an event whose data it cannot read as JSON. */
		rc = 0;
		goto done;
	}
	if (j && c->filter) {
		size_t k = al_gw_filter_tools_msg(c->r, j);
		c->removed += k;
		if (k) {
			if (json_dump_callback(j, dump_cb, &tmp, JSON_COMPACT) < 0)
				goto done;
			d = tmp.data;
			dl = tmp.len;
		}
	} else if (j) {
		check_tools(c->r, j);
	}
	/* A type holding NUL reads as "" through the C string, which the
	 * re-encoded stream turns into the default: compare it as such. */
	if (al_buf_append(&c->b, ev->type[0] ? ev->type : "message",
			  strlen(ev->type[0] ? ev->type : "message") + 1) < 0 ||
	    al_buf_append(&c->b, ev->id, strlen(ev->id) + 1) < 0 ||
	    al_buf_append(&c->b, d, dl) < 0 || al_buf_append(&c->b, "", 1) < 0)
		goto done;
	rc = 0;
done:
	json_decref(j);
	al_buf_free(&tmp);
	return rc;
}

/* Parses an SSE stream into c; the parser's return value. */
static int events_of(const char *p, size_t n, struct collect *c)
{
	al_sse_parser *ps = al_sse_parser_new(8u << 20, collect_cb, c);
	int rc;

	CHECK(ps != NULL);
	rc = al_sse_parser_feed(ps, p, n);
	al_sse_parser_free(ps);
	return rc;
}

static void fuzz_sse(const struct al_gw_route *r, uint32_t rng, const char *p, size_t n)
{
	al_gw_sse_filter *whole = al_gw_sse_filter_new(r), *cut = al_gw_sse_filter_new(r);
	al_buf o1 = {0}, o2 = {0};
	struct collect want = {.r = r, .filter = 1}, got = {.r = r, .filter = 0};
	size_t off = 0;
	int rc1, rc2 = 0, rw;

	CHECK(whole && cut);
	rc1 = al_gw_sse_filter_feed(whole, p, n, &o1);
	while (off < n && rc2 == 0) {
		size_t k;
		rng = rng * 1103515245u + 12345u;
		k = 1 + (rng >> 16) % 97;
		if (k > n - off)
			k = n - off;
		rc2 = al_gw_sse_filter_feed(cut, p + off, k, &o2);
		off += k;
	}
	CHECK(rc1 == 0 || rc1 == -E2BIG || rc1 == -ENOMEM);
	if (rc1 == 0 && rc2 == 0) {
		CHECK(o1.len == o2.len && (o1.len == 0 || memcmp(o1.data, o2.data, o1.len) == 0));
		CHECK(al_gw_sse_filter_removed(whole) == al_gw_sse_filter_removed(cut));
		rw = events_of(p, n, &want);
		CHECK(rw == 0);
		CHECK(want.removed == al_gw_sse_filter_removed(whole));
		CHECK(events_of(o1.data ? o1.data : "", o1.len, &got) == 0);
		CHECK(want.b.len == got.b.len &&
		      (want.b.len == 0 || memcmp(want.b.data, got.b.data, want.b.len) == 0));
	}
	al_gw_sse_filter_free(whole);
	al_gw_sse_filter_free(cut);
	al_buf_free(&o1);
	al_buf_free(&o2);
	al_buf_free(&want.b);
	al_buf_free(&got.b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	struct al_gw_route r;

	if (!init) {
		al_alloc_init();
		init = 1;
	}
	if (size < 3)
		return 0;
	route_of((uint8_t)(data[0] >> 1), &r);
	if (data[0] & 1)
		fuzz_sse(&r, (uint32_t)data[1] << 8 | data[2], (const char *)data + 3, size - 3);
	else
		fuzz_json(&r, (const char *)data + 3, size - 3);
	return 0;
}
