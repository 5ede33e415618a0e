/*
 * alloc.h - the one allocation wrapper.
 *
 * Every allocation in airlock goes through these functions so a test can make
 * the N-th allocation fail (al_alloc_fail_after) and check that the caller
 * unwinds cleanly. Jansson is pointed at them too (al_alloc_init).
 */
#ifndef AL_CORE_ALLOC_H
#define AL_CORE_ALLOC_H

#include <stddef.h>

void al_alloc_init(void);

void *al_malloc(size_t n);
void *al_calloc(size_t nmemb, size_t size);
void *al_realloc(void *p, size_t n);
char *al_strdup(const char *s);
char *al_strndup(const char *s, size_t n);
void al_free(void *p);

/* Wipes n bytes at p (never optimised away), then frees p. For key material. */
void al_free_secret(void *p, size_t n);
/* Wipes a NUL-terminated secret string and frees it. NULL is fine. */
void al_free_secret_str(char *s);

/*
 * Test hook: after `n` more successful allocations, every allocation fails
 * until reset with n < 0. Process-wide; tests run one per process.
 */
void al_alloc_fail_after(long n);

#endif
