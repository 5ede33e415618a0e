/*
 * fuzz_mcp_state.c - libFuzzer target for sealed MRTR requestState.
 *
 * The input is used twice: as a token a client sends back (which can never
 * open: forging needs the key, so anything but -EINVAL is a bug), and as a
 * payload sealed and opened again (which must round-trip exactly).
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "mcp/state.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[AL_MCP_STATE_KEY_LEN] = "fuzz-key-fuzz-key-fuzz-key-fuzz";
	static int init;
	static unsigned char bind[AL_MCP_STATE_BIND_LEN];
	al_buf tok = {0}, out = {0};

	if (!init) {
		al_alloc_init();
		if (al_mcp_state_bind("tools/call", "t", NULL, bind) < 0)
			__builtin_trap();
		init = 1;
	}
	if (al_mcp_state_open(key, "p", bind, 0, (const char *)data, size, &out) != -EINVAL)
		__builtin_trap();
	if (out.len != 0)
		__builtin_trap();
	if (al_mcp_state_seal(key, "p", bind, 1000, 1000, data, size, &tok) == 0) {
		al_buf_reset(&out);
		if (al_mcp_state_open(key, "p", bind, 1999, tok.data, tok.len, &out) != 0 ||
		    out.len != size || (size && memcmp(out.data, data, size) != 0))
			__builtin_trap();
		al_buf_reset(&out);
		if (al_mcp_state_open(key, "p", bind, 2000, tok.data, tok.len, &out) != -ESTALE)
			__builtin_trap();
	} else if (size <= AL_MCP_STATE_MAX_PAYLOAD) {
		__builtin_trap();
	}
	al_buf_free(&tok);
	al_buf_free(&out);
	return 0;
}
