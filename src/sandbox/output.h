/*
 * output.h - capped capture of a command's output.
 *
 * Keeps the first `limit/2` bytes and the last `limit - limit/2` bytes (a
 * ring), counts every byte and streams all of them through SHA-256, so the
 * reader never stops draining the pipe and the child never blocks on a full
 * pipe however much it writes.
 */
#ifndef AL_SANDBOX_OUTPUT_H
#define AL_SANDBOX_OUTPUT_H

#include "sandbox/sandbox.h"

#include <stddef.h>

struct al_output {
	size_t head_cap, tail_cap;
	char *head; /* owned; grows up to head_cap (+1) as output arrives */
	size_t head_len, head_alloc;
	char *ring; /* owned; tail_cap bytes, allocated once the head is full */
	size_t ring_pos, ring_len;
	unsigned long long total;
	void *md; /* EVP_MD_CTX, owned */
};

/* limit 0 keeps nothing but still counts and hashes. */
int al_output_init(struct al_output *o, size_t limit);
int al_output_feed(struct al_output *o, const void *p, size_t n);
/* Moves the capture into s (caller frees with al_sandbox_result_clear) and clears o. */
int al_output_finish(struct al_output *o, struct al_sandbox_stream *s);
void al_output_clear(struct al_output *o);

#endif
