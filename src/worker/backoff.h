/*
 * backoff.h - the waits of the worker's retry loops, as the SDK computes them
 * (internal/utils/backoff.js): exponential with a cap, a jitter that only
 * shortens (up to 25 %), and a uniform pick for idle sleeps.
 */
#ifndef AL_WORKER_BACKOFF_H
#define AL_WORKER_BACKOFF_H

#include <stdint.h>

/* min(base * 2^attempt, cap), in ms. */
uint64_t al_worker_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms);
/* ms * (1 - U[0, 0.25)). */
uint64_t al_worker_apply_jitter(uint64_t ms);
/* U[lo, hi) in ms. */
uint64_t al_worker_jitter(uint64_t lo_ms, uint64_t hi_ms);

#endif
