#include "core/buf.h"

#include "core/alloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

int al_buf_reserve(al_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	/*
	 * Not realloc: when realloc moves the block it frees the old one
	 * unwiped, and buffers carry request heads (Authorization,
	 * x-api-key), bodies and keys. Copy, wipe the old block, free it.
	 * Doubling keeps the extra work linear in the final size.
	 */
	p = al_malloc(cap);
	if (p == NULL)
		return -ENOMEM;
	if (b->data) {
		memcpy(p, b->data, b->len);
		OPENSSL_cleanse(b->data, b->cap);
		al_free(b->data);
	}
	p[b->len] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

int al_buf_append(al_buf *b, const void *p, size_t n)
{
	int rc = al_buf_reserve(b, n);

	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int al_buf_append_str(al_buf *b, const char *s)
{
	return al_buf_append(b, s, strlen(s));
}

int al_buf_vappendf(al_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, rc;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	rc = al_buf_reserve(b, (size_t)n);
	if (rc < 0)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int al_buf_appendf(al_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = al_buf_vappendf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void al_buf_consume(al_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

void al_buf_reset(al_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void al_buf_wipe(al_buf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	b->len = 0;
}

void al_buf_free(al_buf *b)
{
	al_free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *al_buf_steal(al_buf *b, size_t *len)
{
	char *d = b->data;

	if (d == NULL)
		d = al_strdup("");
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}
