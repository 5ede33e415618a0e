/*
 * buf.h - a growable byte buffer, always NUL-terminated for convenience.
 *
 * Ownership: the al_buf owns `data`; al_buf_free releases it (al_buf_wipe
 * first when it held a secret). A zeroed al_buf is a valid empty buffer.
 * Growing never leaves an unwiped copy behind: the old block is wiped
 * before it is freed, so al_buf_wipe at the end covers every byte held.
 */
#ifndef AL_CORE_BUF_H
#define AL_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct al_buf {
	char *data; /* owned; NULL or NUL-terminated */
	size_t len;
	size_t cap;
} al_buf;

int al_buf_reserve(al_buf *b, size_t extra);
int al_buf_append(al_buf *b, const void *p, size_t n);
int al_buf_append_str(al_buf *b, const char *s);
int al_buf_appendf(al_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int al_buf_vappendf(al_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drops the first n bytes. */
void al_buf_consume(al_buf *b, size_t n);
void al_buf_reset(al_buf *b);
/* Overwrites the whole capacity with zeros. */
void al_buf_wipe(al_buf *b);
void al_buf_free(al_buf *b);
/* Hands the data to the caller (who frees it with al_free); b becomes empty. */
char *al_buf_steal(al_buf *b, size_t *len);

#endif
