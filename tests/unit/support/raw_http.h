/*
 * raw_http.h - the smallest HTTP/1.1 request reader, for test peers that
 * sit on a raw loopback socket (scripted upstreams of the outbound client
 * and the model provider). Deliberately independent of src/http, so those
 * tests do not depend on the code other tests check.
 */
#ifndef AL_TESTS_RAW_HTTP_H
#define AL_TESTS_RAW_HTTP_H

#include <stddef.h>

/*
 * Reads one request (head, then Content-Length bytes of body) from fd into
 * buf (NUL-terminated). Sets *len to the bytes read, *hlen to the head's
 * length including the blank line, *clen to the declared body length.
 * 0, or -1 when the peer closed first or the request does not fit.
 */
int al_test_read_request(int fd, char *buf, size_t cap, size_t *len, size_t *hlen, size_t *clen);
/* Copies header `name` (case-insensitive) of a request head into out: 1, or 0 if absent. */
int al_test_header(const char *head, const char *name, char *out, size_t outlen);

/*
 * Half-closes fd, reads until the client closes (up to 2 s of silence) and
 * closes it: the client then sees a clean end of stream, not a reset.
 */
void al_test_close_drained(int fd);

#endif
