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

#endif
