#include "core/alloc.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* < 0: never fail. Otherwise the number of allocations still allowed. */
static atomic_long fail_after = -1;

static int should_fail(void)
{
	long v = atomic_load(&fail_after);
	while (v >= 0) {
		if (v == 0)
			return 1;
		if (atomic_compare_exchange_weak(&fail_after, &v, v - 1))
			return 0;
	}
	return 0;
}

void al_alloc_fail_after(long n)
{
	atomic_store(&fail_after, n < 0 ? -1 : n);
}

void *al_malloc(size_t n)
{
	if (should_fail())
		return NULL;
	return malloc(n ? n : 1);
}

void *al_calloc(size_t nmemb, size_t size)
{
	if (should_fail())
		return NULL;
	return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *al_realloc(void *p, size_t n)
{
	if (should_fail())
		return NULL;
	return realloc(p, n ? n : 1);
}

char *al_strndup(const char *s, size_t n)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = al_malloc(n + 1);
	if (d == NULL)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *al_strdup(const char *s)
{
	return s ? al_strndup(s, strlen(s)) : NULL;
}

void al_free(void *p)
{
	free(p);
}

void al_free_secret(void *p, size_t n)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, n);
	free(p);
}

void al_free_secret_str(char *s)
{
	if (s != NULL)
		al_free_secret(s, strlen(s));
}

void al_alloc_init(void)
{
	json_set_alloc_funcs(al_malloc, al_free);
}
