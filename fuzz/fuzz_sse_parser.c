/*
 * fuzz_sse_parser.c - libFuzzer target for the SSE parser.
 *
 * The first byte picks the cap and a chunk-size seed; the rest is fed in
 * pieces whose sizes come from the input too, so splits land everywhere
 * (inside CRLF, inside the BOM, inside field names). Every event is checked
 * for the invariants the API promises.
 */
#include "http/sse_parser.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int event_cb(const struct al_sse_event *ev, void *ud)
{
	size_t *total = ud;

	if (ev->type == NULL || ev->data == NULL || ev->id == NULL)
		abort();
	if (strlen(ev->data) > ev->data_len) /* data may hold NUL, never bytes past len */
		abort();
	if (ev->data[ev->data_len] != '\0')
		abort();
	*total += ev->data_len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	al_sse_parser *p;
	size_t total = 0, i = 0, max;
	unsigned seed;

	if (size < 1)
		return 0;
	/* A small cap some of the time, so the -E2BIG paths get exercised. */
	max = (data[0] & 0x80) ? (size_t)(data[0] & 0x7f) + 1 : 0;
	seed = data[0];
	data++;
	size--;
	p = al_sse_parser_new(max, event_cb, &total);
	if (p == NULL)
		return 0;
	while (i < size) {
		size_t n = 1 + (seed % 17);
		int rc;

		if (n > size - i)
			n = size - i;
		rc = al_sse_parser_feed(p, (const char *)data + i, n);
		if (rc != 0 && rc != -E2BIG)
			abort();
		seed = seed * 1103515245u + 12345u + data[i];
		i += n;
	}
	if (max && total > size)
		abort();
	al_sse_parser_free(p);
	return 0;
}
