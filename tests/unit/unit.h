/*
 * unit.h - the unit-test runner's interface.
 *
 * AL_TEST(name) { ... } defines and registers a test. Each test runs in its
 * own forked process (isolation: a crash or leak stays with its test), with a
 * time limit. Asserts print both operands and stop the test.
 */
#ifndef AL_TESTS_UNIT_H
#define AL_TESTS_UNIT_H

#include <stddef.h>
#include <string.h>

typedef void (*al_test_fn)(void);
void al_test_register(const char *name, const char *file, al_test_fn fn);
void al_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* A fresh empty directory for this test (removed after the test). */
const char *al_test_tmpdir(void);

#define AL_TEST(name)                                                                              \
	static void name(void);                                                                    \
	__attribute__((constructor)) static void name##_register(void)                             \
	{                                                                                          \
		al_test_register(#name, __FILE__, name);                                           \
	}                                                                                          \
	static void name(void)

#define AL_ASSERT(cond)                                                                            \
	do {                                                                                       \
		if (!(cond))                                                                       \
			al_test_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);           \
	} while (0)

#define AL_ASSERT_INT_EQ(a, b)                                                                     \
	do {                                                                                       \
		long long al_a_ = (long long)(a), al_b_ = (long long)(b);                          \
		if (al_a_ != al_b_)                                                                \
			al_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, al_a_,  \
				     al_b_);                                                       \
	} while (0)

#define AL_ASSERT_INT_NE(a, b)                                                                     \
	do {                                                                                       \
		long long al_a_ = (long long)(a), al_b_ = (long long)(b);                          \
		if (al_a_ == al_b_)                                                                \
			al_test_fail(__FILE__, __LINE__, "%s != %s: both %lld", #a, #b, al_a_);    \
	} while (0)

#define AL_ASSERT_INT_GE(a, b)                                                                     \
	do {                                                                                       \
		long long al_a_ = (long long)(a), al_b_ = (long long)(b);                          \
		if (al_a_ < al_b_)                                                                 \
			al_test_fail(__FILE__, __LINE__, "%s >= %s: %lld < %lld", #a, #b, al_a_,   \
				     al_b_);                                                       \
	} while (0)

#define AL_ASSERT_STR_EQ(a, b)                                                                     \
	do {                                                                                       \
		const char *al_a_ = (a), *al_b_ = (b);                                             \
		if (al_a_ == NULL || al_b_ == NULL || strcmp(al_a_, al_b_) != 0)                   \
			al_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,     \
				     al_a_ ? al_a_ : "(null)", al_b_ ? al_b_ : "(null)");          \
	} while (0)

#define AL_ASSERT_MEM_EQ(a, b, n)                                                                  \
	do {                                                                                       \
		if (memcmp((a), (b), (n)) != 0)                                                    \
			al_test_fail(__FILE__, __LINE__, "%s == %s over %zu bytes: differ", #a,    \
				     #b, (size_t)(n));                                             \
	} while (0)

#define AL_ASSERT_NULL(p)                                                                          \
	do {                                                                                       \
		const void *al_p_ = (p);                                                           \
		if (al_p_ != NULL)                                                                 \
			al_test_fail(__FILE__, __LINE__, "%s is NULL: got %p", #p, al_p_);         \
	} while (0)

#define AL_ASSERT_NOT_NULL(p)                                                                      \
	do {                                                                                       \
		if ((p) == NULL)                                                                   \
			al_test_fail(__FILE__, __LINE__, "%s is not NULL", #p);                    \
	} while (0)

#endif
