/*
 * fuzz_mcp_oauth_challenge.c - libFuzzer target for the WWW-Authenticate
 * challenge reader of the MCP client's OAuth flow
 * (al_mcp_oauth_challenge_param), which reads a header any server sends.
 *
 * The input is the header value; every parameter name the flow asks for is
 * read, and a value is checked to be a NUL-terminated string no longer
 * than the header.
 */
#include "core/alloc.h"
#include "mcp/oauth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"scope", "resource_metadata", "error", "realm", "x"};
	char *h = malloc(size + 1);

	if (h == NULL)
		return 0;
	memcpy(h, data, size);
	h[size] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *v = al_mcp_oauth_challenge_param(h, names[i]);
		if (v != NULL && strlen(v) > size)
			abort();
		al_free(v);
	}
	free(h);
	return 0;
}
