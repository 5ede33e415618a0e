/* b64.h - base64 (RFC 4648 section 4) and base64url without padding (section 5). */
#ifndef AL_CORE_B64_H
#define AL_CORE_B64_H

#include <stddef.h>

/* Encoded length of n bytes, unpadded base64url, without the NUL. */
size_t al_b64url_len(size_t n);
/* Writes NUL-terminated unpadded base64url; -ENOSPC when out is too small. */
int al_b64url_encode(const void *in, size_t n, char *out, size_t outlen);
/*
 * Decodes base64url (padding optional). Writes at most outlen bytes and the
 * decoded length to *outn. -EINVAL on any character outside the alphabet.
 */
int al_b64url_decode(const char *in, size_t n, void *out, size_t outlen, size_t *outn);

/* Encoded length of n bytes, padded standard base64, without the NUL. */
size_t al_b64_len(size_t n);
/* Writes NUL-terminated padded standard base64; -ENOSPC when out is too small. */
int al_b64_encode(const void *in, size_t n, char *out, size_t outlen);
/*
 * Decodes padded standard base64 strictly: the length is a multiple of 4,
 * '=' appears only as one or two trailing pad characters, every other
 * character is in the standard alphabet (no '-' or '_'), and the unused bits
 * of the last group are zero, so each byte string has exactly one accepted
 * encoding. Writes at most outlen bytes and the decoded length to *outn.
 * -EINVAL on any violation, -ENOSPC when out is too small.
 */
int al_b64_decode(const char *in, size_t n, void *out, size_t outlen, size_t *outn);

#endif
