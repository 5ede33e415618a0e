/*
 * output.c - head + tail capture with a running SHA-256.
 */
#include "sandbox/output.h"

#include "core/alloc.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

int al_output_init(struct al_output *o, size_t limit)
{
	memset(o, 0, sizeof(*o));
	o->head_cap = limit / 2;
	o->tail_cap = limit - o->head_cap;
	/* Buffers grow with the output: most commands print little. */
	o->md = EVP_MD_CTX_new();
	if (o->md == NULL || EVP_DigestInit_ex(o->md, EVP_sha256(), NULL) != 1) {
		al_output_clear(o);
		return -ENOMEM;
	}
	return 0;
}

/* Makes room for `need` head bytes (+1 for a NUL), doubling up to head_cap. */
static int head_reserve(struct al_output *o, size_t need)
{
	size_t cap = o->head_alloc ? o->head_alloc : 256;
	char *p;

	if (need + 1 <= o->head_alloc)
		return 0;
	while (cap < need + 1)
		cap *= 2;
	if (cap > o->head_cap + 1)
		cap = o->head_cap + 1;
	p = al_realloc(o->head, cap);
	if (p == NULL)
		return -ENOMEM;
	o->head = p;
	o->head_alloc = cap;
	return 0;
}

int al_output_feed(struct al_output *o, const void *p, size_t n)
{
	const char *s = p;

	if (n == 0)
		return 0;
	if (EVP_DigestUpdate(o->md, p, n) != 1)
		return -EIO;
	o->total += n;
	if (o->head_len < o->head_cap) {
		size_t k = o->head_cap - o->head_len;
		if (k > n)
			k = n;
		if (head_reserve(o, o->head_len + k) < 0)
			return -ENOMEM;
		memcpy(o->head + o->head_len, s, k);
		o->head_len += k;
		s += k;
		n -= k;
	}
	if (o->tail_cap == 0 || n == 0)
		return 0;
	if (o->ring == NULL && (o->ring = al_malloc(o->tail_cap)) == NULL)
		return -ENOMEM;
	/* Only the last tail_cap bytes of this chunk can survive. */
	if (n > o->tail_cap) {
		s += n - o->tail_cap;
		n = o->tail_cap;
	}
	while (n > 0) {
		size_t k = o->tail_cap - o->ring_pos;
		if (k > n)
			k = n;
		memcpy(o->ring + o->ring_pos, s, k);
		o->ring_pos = (o->ring_pos + k) % o->tail_cap;
		o->ring_len = o->ring_len + k > o->tail_cap ? o->tail_cap : o->ring_len + k;
		s += k;
		n -= k;
	}
	return 0;
}

int al_output_finish(struct al_output *o, struct al_sandbox_stream *st)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[32];
	unsigned int dl = 0;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (EVP_DigestFinal_ex(o->md, d, &dl) != 1 || dl != 32) {
		rc = -EIO;
		goto done;
	}
	for (int i = 0; i < 32; i++) {
		st->sha256[2 * i] = hex[d[i] >> 4];
		st->sha256[2 * i + 1] = hex[d[i] & 15];
	}
	st->total = o->total;
	st->truncated = o->total > (unsigned long long)(o->head_cap + o->tail_cap);
	if (!st->truncated) {
		/* Everything fits: head then the ring (which has not wrapped) in one buffer. */
		char *all = al_malloc(o->head_len + o->ring_len + 1);
		if (all == NULL) {
			rc = -ENOMEM;
			goto done;
		}
		if (o->head_len)
			memcpy(all, o->head, o->head_len);
		if (o->ring_len)
			memcpy(all + o->head_len, o->ring, o->ring_len);
		st->head_len = o->head_len + o->ring_len;
		all[st->head_len] = '\0';
		st->head = all;
		goto done;
	}
	/* Truncated: the ring is full; unroll it so the tail reads in order. */
	st->tail = al_malloc(o->tail_cap + 1);
	if (st->tail == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if (o->ring) {
		memcpy(st->tail, o->ring + o->ring_pos, o->tail_cap - o->ring_pos);
		memcpy(st->tail + (o->tail_cap - o->ring_pos), o->ring, o->ring_pos);
		st->tail_len = o->tail_cap;
	}
	st->tail[st->tail_len] = '\0';
	if (o->head == NULL && (o->head = al_malloc(1)) == NULL) {
		al_free(st->tail);
		st->tail = NULL;
		rc = -ENOMEM;
		goto done;
	}
	st->head = o->head;
	st->head_len = o->head_len;
	st->head[st->head_len] = '\0';
	o->head = NULL;
done:
	al_output_clear(o);
	return rc;
}

void al_output_clear(struct al_output *o)
{
	al_free(o->head);
	al_free(o->ring);
	EVP_MD_CTX_free(o->md);
	memset(o, 0, sizeof(*o));
}
