#include "core/hash.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

int al_sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 0;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return -EIO;
	return 0;
}

int al_sha256_hex(const void *p, size_t n, char out[AL_SHA256_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[32];
	int rc = al_sha256(p, n, d);

	if (rc < 0)
		return rc;
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

int al_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void al_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}
