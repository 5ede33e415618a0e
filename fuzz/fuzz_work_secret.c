/*
 * fuzz_work_secret.c - libFuzzer target for the work item's secret decoder.
 *
 * The input is fed as the raw secret (base64 text, mostly rejected early)
 * and, when the first byte is odd, base64url-encoded first so the fuzzer
 * reaches the JSON and field checks. Checks the promises of secret.h: on
 * success a token that is safe in a header and an http(s) URL or NULL; on
 * failure a zeroed result and an error that never quotes the token.
 */
#include "core/alloc.h"
#include "core/b64.h"
#include "worker/secret.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *in, size_t n)
{
	struct al_work_secret s;
	char err[256];
	int rc = al_work_secret_decode(in, n, &s, err, sizeof(err));

	if (rc == 0) {
		if (s.sessions_token == NULL || s.sessions_token[0] == '\0')
			abort();
		for (const char *p = s.sessions_token; *p; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
				abort();
		if (s.api_base_url != NULL && strncasecmp(s.api_base_url, "http", 4) != 0)
			abort();
		/* A note on success only when api_base_url was dropped. */
		if (err[0] != '\0' && (s.api_base_url != NULL || strstr(err, "ignored") == NULL))
			abort();
		al_work_secret_clear(&s);
		if (s.sessions_token != NULL)
			abort();
		return;
	}
	if (rc != -EINVAL && rc != -ENOMEM)
		abort();
	if (s.sessions_token != NULL || s.api_base_url != NULL || err[0] == '\0')
		abort();
	if (strlen(err) >= sizeof(err))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	char *enc;
	size_t cap;

	if (!init) {
		al_alloc_init();
		init = 1;
	}
	if (size < 1)
		return 0;
	if (!(data[0] & 1)) {
		check((const char *)data + 1, size - 1);
		return 0;
	}
	cap = al_b64url_len(size - 1) + 1;
	if ((enc = malloc(cap)) == NULL)
		return 0;
	if (al_b64url_encode(data + 1, size - 1, enc, cap) == 0)
		check(enc, strlen(enc));
	free(enc);
	return 0;
}
