/* hash.h - SHA-256 and constant-time comparison (OpenSSL). */
#ifndef AL_CORE_HASH_H
#define AL_CORE_HASH_H

#include <stddef.h>

#define AL_SHA256_HEX 65 /* 64 hex digits + NUL */

int al_sha256(const void *p, size_t n, unsigned char out[32]);
int al_sha256_hex(const void *p, size_t n, char out[AL_SHA256_HEX]);
/* 1 when equal; runs in time independent of where the strings differ. */
int al_ct_equal(const void *a, const void *b, size_t n);
/* Wipes n bytes; never optimised away. */
void al_wipe(void *p, size_t n);

#endif
