/*
 * rand.h - identifiers and credentials from the OpenSSL CSPRNG.
 *
 * Ids are "<prefix>_" + 26 Crockford base32 characters: 48 bits of
 * millisecond time then 80 bits that are random for the first id of a
 * millisecond and incremented after it, so ids sort by creation order within
 * one process (cursor pagination relies on this) and never collide.
 */
#ifndef AL_CORE_RAND_H
#define AL_CORE_RAND_H

#include <stddef.h>

#define AL_ID_MAX 64 /* buffer size that fits any id we make */

int al_random_bytes(void *out, size_t n);
/* Writes "<prefix>_<26 chars>" to out (len >= strlen(prefix) + 28). */
int al_id_new(const char *prefix, char *out, size_t len);
/*
 * Makes a credential "alk_<kind>_<43 base64url chars>" (256 random bits).
 * Returns a newly allocated string the caller frees with al_free_secret_str.
 */
char *al_token_new(const char *kind);

#endif
