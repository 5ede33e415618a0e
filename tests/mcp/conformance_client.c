/*
 * conformance_client.c - the client runner for the official MCP conformance
 * suite (@modelcontextprotocol/conformance, `client --command`).
 *
 * The suite starts a scenario server, then runs `COMMAND <server-url>` with
 * MCP_CONFORMANCE_SCENARIO (the scenario's name),
 * MCP_CONFORMANCE_PROTOCOL_VERSION (the revision under test) and, for some
 * scenarios, MCP_CONFORMANCE_CONTEXT (JSON; e.g. the tool calls to make).
 * The runner drives src/mcp/client.c the way an application would: the
 * client detects the server's era by itself (AUTO), then the runner lists
 * and calls what the scenario serves. The scenario server records what it
 * saw and judges; the exit status only says whether the client failed.
 *
 * The input handler answers server-to-client requests the way a user who
 * accepts everything would: elicitation forms filled with the schema's
 * defaults (SEP-1034), a canned sampling answer, no roots.
 */
#include "core/alloc.h"
#include "core/log.h"
#include "mcp/client.h"
#include "net/http_client.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static uv_loop_t *loop;
static al_mcp_client *client;

struct wait {
	int done;
	int err;
	json_t *result;
};

static void wait_cb(al_mcp_client *c, const struct al_mcp_client_result *res, void *ud)
{
	struct wait *w = ud;

	w->done = 1;
	w->err = res->err;
	w->result = res->result != NULL ? json_deep_copy(res->result) : NULL;
	if (res->err == -EREMOTEIO && res->rpc_error != NULL)
		fprintf(stderr, "conformance-client: JSON-RPC error %d: %s\n", res->rpc_error->code,
			res->rpc_error->message);
	else if (res->err < 0)
		fprintf(stderr, "conformance-client: %s (HTTP %d)\n", strerror(-res->err),
			res->http_status);
}

/* Runs the loop until w is done; returns its error. */
static int wait_for(struct wait *w, int rc)
{
	if (rc < 0) {
		fprintf(stderr, "conformance-client: request not started: %s\n", strerror(-rc));
		return rc;
	}
	while (!w->done)
		uv_run(loop, UV_RUN_ONCE);
	return w->err;
}

static json_t *list_tools(int *err)
{
	struct wait w = {0};

	*err = wait_for(&w, al_mcp_client_list_tools(client, wait_cb, &w, NULL));
	return w.result;
}

static int call_tool(const char *name, const json_t *args)
{
	struct wait w = {0};
	int rc;

	rc = wait_for(&w, al_mcp_client_call_tool(client, name, args, NULL, wait_cb, &w, NULL));
	json_decref(w.result);
	return rc;
}

static json_t *request(const char *method, json_t *params, int *err)
{
	struct wait w = {0};

	*err = wait_for(&w, al_mcp_client_request(client, method, params, NULL, wait_cb, &w, NULL));
	return w.result;
}

/* A value of the schema's type for a required argument we know nothing about. */
static json_t *sample_value(const json_t *schema)
{
	const char *t = json_string_value(json_object_get(schema, "type"));
	const json_t *def = json_object_get(schema, "default");

	if (def != NULL)
		return json_deep_copy(def);
	if (t == NULL || strcmp(t, "string") == 0)
		return json_string("us-west1");
	if (strcmp(t, "integer") == 0 || strcmp(t, "number") == 0)
		return json_integer(1);
	if (strcmp(t, "boolean") == 0)
		return json_true();
	if (strcmp(t, "array") == 0)
		return json_array();
	if (strcmp(t, "object") == 0)
		return json_object();
	return json_null();
}

/* Arguments for a tool: every required property, with sample values. */
static json_t *sample_args(const json_t *tool)
{
	const json_t *schema = json_object_get(tool, "inputSchema");
	const json_t *props = json_object_get(schema, "properties");
	const json_t *req = json_object_get(schema, "required");
	json_t *args = json_object(), *r;
	size_t i;

	json_array_foreach(req, i, r)
	{
		if (json_is_string(r))
			json_object_set_new(
			    args, json_string_value(r),
			    sample_value(json_object_get(props, json_string_value(r))));
	}
	return args;
}

/* Calls every listed tool with sample arguments. */
static int call_every_tool(const json_t *tools)
{
	const json_t *t;
	size_t i;
	int rc = 0;

	json_array_foreach(json_object_get(tools, "tools"), i, t)
	{
		json_t *args = sample_args(t);
		int one = call_tool(json_string_value(json_object_get(t, "name")), args);
		json_decref(args);
		if (one < 0 && one != -EREMOTEIO)
			rc = one;
	}
	return rc;
}

/* resources/list + read each, prompts/list + get each (header scenarios). */
static int exercise_resources_prompts(void)
{
	json_t *res, *e;
	size_t i;
	int rc, out = 0;

	res = request("resources/list", NULL, &rc);
	if (rc < 0)
		out = rc;
	json_array_foreach(json_object_get(res, "resources"), i, e)
	{
		struct wait w = {0};
		const char *uri = json_string_value(json_object_get(e, "uri"));
		rc = wait_for(&w, al_mcp_client_read_resource(client, uri, wait_cb, &w, NULL));
		json_decref(w.result);
		if (rc < 0)
			out = rc;
	}
	json_decref(res);
	res = request("prompts/list", NULL, &rc);
	if (rc < 0)
		out = rc;
	json_array_foreach(json_object_get(res, "prompts"), i, e)
	{
		struct wait w = {0};
		const char *name = json_string_value(json_object_get(e, "name"));
		rc = wait_for(&w, al_mcp_client_get_prompt(client, name, NULL, wait_cb, &w, NULL));
		json_decref(w.result);
		if (rc < 0)
			out = rc;
	}
	json_decref(res);
	return out;
}

/* The form a user who accepts would send: every property's default, and
 * true for a boolean without one (a confirmation). */
static json_t *elicit_accept(const json_t *params)
{
	const json_t *props =
	    json_object_get(json_object_get(params, "requestedSchema"), "properties");
	json_t *content = json_object(), *p;
	const char *key;

	json_object_foreach((json_t *)props, key, p)
	{
		const json_t *def = json_object_get(p, "default");
		const char *t = json_string_value(json_object_get(p, "type"));
		if (def != NULL)
			json_object_set_new(content, key, json_deep_copy(def));
		else if (t != NULL && strcmp(t, "boolean") == 0)
			json_object_set_new(content, key, json_true());
	}
	return json_pack("{ssso}", "action", "accept", "content", content);
}

static int input_cb(void *ud, const char *method, const json_t *params, json_t **result)
{
	if (strcmp(method, "elicitation/create") == 0)
		*result = elicit_accept(params);
	else if (strcmp(method, "sampling/createMessage") == 0)
		*result = json_pack("{sss{ssss}ssss}", "role", "assistant", "content", "type",
				    "text", "text", "This is a conformance test answer.", "model",
				    "airlock-conformance", "stopReason", "endTurn");
	else if (strcmp(method, "roots/list") == 0)
		*result = json_pack("{s[]}", "roots");
	else
		return -ENOTSUP;
	return *result != NULL ? 0 : -ENOMEM;
}

static int run_scenario(const char *scenario, const json_t *ctx)
{
	json_t *tools = NULL;
	int rc;

	tools = list_tools(&rc);
	if (rc < 0)
		goto done;
	if (strcmp(scenario, "initialize") == 0 ||
	    strcmp(scenario, "json-schema-ref-no-deref") == 0 ||
	    strcmp(scenario, "request-metadata") == 0) {
		/* Listing is the whole scenario. */
	} else if (strcmp(scenario, "tools_call") == 0) {
		json_t *args = json_pack("{sisi}", "a", 5, "b", 3);
		rc = call_tool("add_numbers", args);
		json_decref(args);
	} else if (strcmp(scenario, "sep-2322-client-request-state") == 0) {
		static const char *const order[] = {"test_mrtr_echo_state", "test_mrtr_no_state",
						    "test_mrtr_unrelated",
						    "test_mrtr_no_result_type"};
		for (size_t i = 0; i < 4 && rc == 0; i++)
			rc = call_tool(order[i], NULL);
	} else if (strcmp(scenario, "json-schema-2020-12-preservation") == 0) {
		/* Hand the focal tool's inputSchema back as we received it: the
		 * client must not strip 2020-12 keywords it does not interpret. */
		const json_t *t;
		size_t i;
		json_array_foreach(json_object_get(tools, "tools"), i, t)
		{
			const char *n = json_string_value(json_object_get(t, "name"));
			if (n != NULL && strcmp(n, "json_schema_2020_12_tool") == 0) {
				json_t *args =
				    json_pack("{sO}", "schema", json_object_get(t, "inputSchema"));
				rc = call_tool("json_schema_echo", args);
				json_decref(args);
			}
		}
	} else if (json_is_array(json_object_get(ctx, "toolCalls"))) {
		const json_t *tc;
		size_t i;
		json_array_foreach(json_object_get(ctx, "toolCalls"), i, tc)
		{
			int one = call_tool(json_string_value(json_object_get(tc, "name")),
					    json_object_get(tc, "arguments"));
			if (one < 0)
				rc = one;
		}
	} else {
		rc = call_every_tool(tools);
		if (rc == 0 && strcmp(scenario, "http-standard-headers") == 0)
			rc = exercise_resources_prompts();
	}
done:
	json_decref(tools);
	return rc;
}

int main(int argc, char **argv)
{
	const char *scenario = getenv("MCP_CONFORMANCE_SCENARIO");
	const char *ctx_text = getenv("MCP_CONFORMANCE_CONTEXT");
	al_http_client *http = NULL;
	json_t *ctx = NULL;
	struct al_mcp_client_opts o = {0};
	struct al_mcp_oauth_opts oa = {0};
	int rc = 1;

	al_alloc_init();
	if (argc < 2 || scenario == NULL) {
		fprintf(stderr, "usage: MCP_CONFORMANCE_SCENARIO=NAME %s SERVER-URL\n", argv[0]);
		return 2;
	}
	if (ctx_text != NULL)
		ctx = json_loads(ctx_text, 0, NULL);
	loop = uv_default_loop();
	if (al_http_client_new(loop, &http) < 0)
		goto done;
	o.url = argv[argc - 1];
	o.client_name = "airlock-conformance-client";
	o.client_version = "1.0.0";
	o.era = AL_MCP_ERA_AUTO;
	o.on_input = input_cb;
	o.timeout_ms = 20000;
	/* OAuth for the auth scenarios: pre-registered credentials when the
	 * scenario hands them over, else the suite's Client ID Metadata
	 * Document URL (used when the server supports CIMD), else dynamic
	 * registration. */
	oa.client_id = json_string_value(json_object_get(ctx, "client_id"));
	oa.client_secret = json_string_value(json_object_get(ctx, "client_secret"));
	oa.client_metadata_url = "https://conformance-test.local/client-metadata.json";
	oa.client_name = "airlock-conformance-client";
	o.oauth = &oa;
	if (al_mcp_client_new(loop, http, &o, &client) < 0)
		goto done;
	rc = run_scenario(scenario, ctx) < 0 ? 1 : 0;
	fprintf(stderr, "conformance-client: %s: era %s, %s\n", scenario,
		al_mcp_client_era(client) == AL_MCP_ERA_MODERN	 ? "modern"
		: al_mcp_client_era(client) == AL_MCP_ERA_LEGACY ? "legacy"
								 : "unknown",
		rc == 0 ? "ok" : "failed");
done:
	al_mcp_client_free(client);
	al_http_client_free(http);
	uv_run(loop, UV_RUN_NOWAIT);
	uv_loop_close(loop);
	json_decref(ctx);
	return rc;
}
