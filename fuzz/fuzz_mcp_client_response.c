/*
 * fuzz_mcp_client_response.c - libFuzzer target for the MCP client's
 * response reader (al_mcp_resp_reader: a JSON body or an SSE stream to
 * JSON-RPC messages), the code every server response goes through.
 *
 * The first byte picks JSON or SSE and a chunk-size seed; the rest is fed
 * in pieces whose sizes come from the input, so splits land everywhere.
 * Every message delivered is checked for the invariants al_mcp_msg promises.
 */
#include "mcp/client.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int msg_cb(const al_mcp_msg *m, void *ud)
{
	size_t *n = ud;

	switch (m->kind) {
	case AL_MCP_REQUEST:
	case AL_MCP_NOTIFICATION:
		if (m->method == NULL || (m->params != NULL && !json_is_object(m->params)))
			abort();
		break;
	case AL_MCP_RESULT:
		if (!json_is_object(m->result))
			abort();
		break;
	case AL_MCP_ERROR_RESPONSE:
		if (m->err_message == NULL)
			abort();
		break;
	default:
		abort();
	}
	(*n)++;
	/* Stop after a few, as the client does after its response. */
	return *n > 8 ? -EINTR : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	al_mcp_resp_reader *r;
	size_t n = 0, i = 1;
	unsigned seed;
	int rc = 0;

	if (size < 1)
		return 0;
	seed = data[0];
	r = al_mcp_resp_reader_new(seed & 1, msg_cb, &n);
	if (r == NULL)
		return 0;
	while (i < size && rc == 0) {
		size_t chunk = 1 + (seed >> 1) % 61;
		if (chunk > size - i)
			chunk = size - i;
		rc = al_mcp_resp_reader_feed(r, (const char *)data + i, chunk);
		i += chunk;
		seed = seed * 1103515245u + 12345u;
	}
	if (rc == 0)
		rc = al_mcp_resp_reader_finish(r);
	if (rc > 0)
		abort(); /* errors are negative */
	if (strlen(al_mcp_resp_reader_last_id(r)) > size)
		abort();
	al_mcp_resp_reader_free(r);
	return 0;
}
