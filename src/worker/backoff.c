/*
 * backoff.c - retry waits (backoff.h). The randomness only spreads workers
 * apart after a shared outage; it need not be unpredictable, but
 * al_random_bytes is what the project has and it is cheap enough here.
 */
#include "worker/backoff.h"

#include "core/rand.h"

static uint32_t rnd32(void)
{
	uint32_t r = 0;

	if (al_random_bytes(&r, sizeof(r)) < 0)
		r = 0x7fffffffu; /* no randomness: the midpoint, still a valid wait */
	return r;
}

uint64_t al_worker_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms)
{
	uint64_t ms = base_ms;

	while (attempt-- > 0 && ms < cap_ms)
		ms *= 2;
	return ms < cap_ms ? ms : cap_ms;
}

uint64_t al_worker_apply_jitter(uint64_t ms)
{
	/* (1 - r/4) with r in [0,1): subtract up to a quarter. */
	return ms - (uint64_t)((double)ms * ((double)rnd32() / 4294967296.0) * 0.25);
}

uint64_t al_worker_jitter(uint64_t lo_ms, uint64_t hi_ms)
{
	if (hi_ms <= lo_ms)
		return lo_ms;
	return lo_ms + (uint64_t)((double)(hi_ms - lo_ms) * ((double)rnd32() / 4294967296.0));
}
