/*
 * fuzz_mcp_jsonrpc.c - libFuzzer target for MCP message framing and the
 * per-request _meta checks.
 *
 * The input is one message body as a client would POST it. Every path must
 * return 0 or -EINVAL with a NUL-terminated message and a code in the
 * JSON-RPC or MCP set; whatever error comes back must serialise into a
 * response (the server always has something to send); nothing may crash or
 * leak.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "mcp/jsonrpc.h"
#include "mcp/meta.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void answer(const al_mcp_id *id, const al_mcp_error *err)
{
	json_t *resp;
	al_buf out = {0};

	if (memchr(err->message, '\0', sizeof(err->message)) == NULL)
		__builtin_trap();
	if (err->code != AL_MCP_PARSE_ERROR && err->code != AL_MCP_INVALID_REQUEST &&
	    err->code != AL_MCP_INVALID_PARAMS && err->code != AL_MCP_UNSUPPORTED_VERSION &&
	    err->code != AL_MCP_MISSING_CAPABILITY && err->code != AL_MCP_INTERNAL_ERROR)
		__builtin_trap();
	resp = al_mcp_error_response_new(id, err);
	if (resp == NULL) /* only out of memory may fail, and there is no OOM here */
		__builtin_trap();
	if (al_mcp_msg_dump(resp, &out) < 0)
		__builtin_trap();
	json_decref(resp);
	al_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	static json_t *required;
	al_mcp_msg m;
	al_mcp_meta meta;
	al_mcp_error err = {0};
	int rc;

	if (!init) {
		al_alloc_init();
		required = json_pack("{s:{},s:{s:{}}}", "sampling", "elicitation", "url");
		init = 1;
	}
	rc = al_mcp_msg_parse(data, size, &m, &err);
	if (rc < 0) {
		if (rc != -EINVAL)
			__builtin_trap();
		answer(&m.id, &err);
		goto done;
	}
	if (m.kind != AL_MCP_REQUEST && m.kind != AL_MCP_NOTIFICATION) {
		if (m.kind == AL_MCP_RESULT && !json_is_object(m.result))
			__builtin_trap();
		goto done;
	}
	if (m.method == NULL || (m.params != NULL && !json_is_object(m.params)))
		__builtin_trap();
	if (al_mcp_meta_parse(m.params, &meta, &err) < 0) {
		answer(&m.id, &err);
		goto done;
	}
	if (meta.protocol_version == NULL || !json_is_object(meta.client_capabilities))
		__builtin_trap();
	if (al_mcp_meta_check_version(meta.protocol_version, al_mcp_modern_versions,
				      al_mcp_supported_versions, &err) < 0) {
		answer(&m.id, &err);
		goto done;
	}
	if (al_mcp_meta_require(&meta, required, &err) < 0)
		answer(&m.id, &err);
	else {
		json_t *resp =
		    al_mcp_result_new(&m.id, json_pack("{s:s}", "resultType", "complete"));
		if (m.kind == AL_MCP_REQUEST && resp == NULL)
			__builtin_trap();
		json_decref(resp);
	}
done:
	al_mcp_error_clear(&err);
	al_mcp_msg_free(&m);
	return 0;
}
