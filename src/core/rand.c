#include "core/rand.h"

#include "core/alloc.h"
#include "core/b64.h"
#include "core/clock.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int al_random_bytes(void *out, size_t n)
{
	if (n > INT32_MAX || RAND_bytes(out, (int)n) != 1)
		return -EIO;
	return 0;
}

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t id_last_ms;
static uint8_t id_last_rand[10];

int al_id_new(const char *prefix, char *out, size_t len)
{
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	uint8_t raw[16];
	int64_t ms = al_now_ms();
	size_t plen = strlen(prefix);
	int rc = 0;

	if (len < plen + 28)
		return -ENOSPC;
	pthread_mutex_lock(&id_lock);
	if (ms <= id_last_ms) {
		/* Same (or earlier: clock stepped back) millisecond: stay monotonic. */
		ms = id_last_ms;
		for (int i = 9; i >= 0; i--)
			if (++id_last_rand[i] != 0)
				break;
	} else {
		rc = al_random_bytes(id_last_rand, sizeof(id_last_rand));
		id_last_rand[0] &= 0x7f; /* leave headroom so increments do not wrap */
		id_last_ms = ms;
	}
	memset(raw, 0, sizeof(raw));
	for (int i = 0; i < 6; i++)
		raw[i] = (uint8_t)((uint64_t)ms >> (8 * (5 - i)));
	memcpy(raw + 6, id_last_rand, 10);
	pthread_mutex_unlock(&id_lock);
	if (rc < 0)
		return rc;

	memcpy(out, prefix, plen);
	out[plen] = '_';
	/* 128 bits -> 26 base32 digits (130 bits, the top two are zero). */
	for (int i = 0; i < 26; i++) {
		int bit = 130 - 5 * (i + 1); /* lowest bit index of this digit */
		unsigned v = 0;
		for (int b = 4; b >= 0; b--) {
			int idx = bit + b; /* bit index counted from the LSB of raw */
			unsigned bitv = 0;
			if (idx < 128)
				bitv = (raw[15 - idx / 8] >> (idx % 8)) & 1u;
			v = (v << 1) | bitv;
		}
		out[plen + 1 + i] = alphabet[v];
	}
	out[plen + 27] = '\0';
	return 0;
}

char *al_token_new(const char *kind)
{
	uint8_t raw[32];
	char enc[64];
	char *tok = NULL;
	size_t n;

	if (al_random_bytes(raw, sizeof(raw)) < 0)
		goto done;
	if (al_b64url_encode(raw, sizeof(raw), enc, sizeof(enc)) < 0)
		goto done;
	n = strlen(kind) + strlen(enc) + 6;
	tok = al_malloc(n);
	if (tok)
		snprintf(tok, n, "alk_%s_%s", kind, enc);
done:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(enc, sizeof(enc));
	return tok;
}
