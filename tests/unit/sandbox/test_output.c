/* test_output.c - head + tail capture, byte count and streamed SHA-256. */
#include "unit/unit.h"

#include "core/alloc.h"
#include "core/hash.h"
#include "sandbox/output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

AL_TEST(output_small_kept_whole)
{
	struct al_output o;
	struct al_sandbox_stream s;
	char want[65];

	AL_ASSERT_INT_EQ(al_output_init(&o, 100), 0);
	AL_ASSERT_INT_EQ(al_output_feed(&o, "hello ", 6), 0);
	AL_ASSERT_INT_EQ(al_output_feed(&o, "world", 5), 0);
	AL_ASSERT_INT_EQ(al_output_finish(&o, &s), 0);
	AL_ASSERT_STR_EQ(s.head, "hello world");
	AL_ASSERT_INT_EQ(s.head_len, 11);
	AL_ASSERT_NULL(s.tail);
	AL_ASSERT_INT_EQ(s.truncated, 0);
	AL_ASSERT_INT_EQ(s.total, 11);
	al_sha256_hex("hello world", 11, want);
	AL_ASSERT_STR_EQ(s.sha256, want);
	al_free(s.head);
}

AL_TEST(output_exactly_at_limit_not_truncated)
{
	struct al_output o;
	struct al_sandbox_stream s;

	AL_ASSERT_INT_EQ(al_output_init(&o, 10), 0);
	AL_ASSERT_INT_EQ(al_output_feed(&o, "0123456789", 10), 0);
	AL_ASSERT_INT_EQ(al_output_finish(&o, &s), 0);
	AL_ASSERT_INT_EQ(s.truncated, 0);
	AL_ASSERT_STR_EQ(s.head, "0123456789");
	al_free(s.head);
}

AL_TEST(output_truncated_keeps_head_and_tail_in_order)
{
	struct al_output o;
	struct al_sandbox_stream s;
	size_t n = 100000;
	char *all = malloc(n), want[65];

	for (size_t i = 0; i < n; i++)
		all[i] = (char)('a' + (i * 7 + i / 13) % 26);
	AL_ASSERT_INT_EQ(al_output_init(&o, 1001), 0);
	/* Odd chunk sizes so the ring wraps at every possible offset. */
	for (size_t off = 0, k = 1; off < n; off += k, k = k % 997 + 3)
		AL_ASSERT_INT_EQ(al_output_feed(&o, all + off, off + k > n ? n - off : k), 0);
	AL_ASSERT_INT_EQ(al_output_finish(&o, &s), 0);
	AL_ASSERT_INT_EQ(s.truncated, 1);
	AL_ASSERT_INT_EQ(s.total, n);
	AL_ASSERT_INT_EQ(s.head_len, 500);
	AL_ASSERT_INT_EQ(s.tail_len, 501);
	AL_ASSERT_MEM_EQ(s.head, all, 500);
	AL_ASSERT_MEM_EQ(s.tail, all + n - 501, 501);
	al_sha256_hex(all, n, want);
	AL_ASSERT_STR_EQ(s.sha256, want);
	al_free(s.head);
	al_free(s.tail);
	free(all);
}

AL_TEST(output_one_chunk_larger_than_everything)
{
	struct al_output o;
	struct al_sandbox_stream s;
	char big[5000];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('0' + i % 10);
	AL_ASSERT_INT_EQ(al_output_init(&o, 20), 0);
	AL_ASSERT_INT_EQ(al_output_feed(&o, big, sizeof(big)), 0);
	AL_ASSERT_INT_EQ(al_output_finish(&o, &s), 0);
	AL_ASSERT_INT_EQ(s.total, 5000);
	AL_ASSERT_MEM_EQ(s.head, "0123456789", 10);
	AL_ASSERT_MEM_EQ(s.tail, "0123456789", 10);
	al_free(s.head);
	al_free(s.tail);
}

AL_TEST(output_zero_limit_counts_and_hashes)
{
	struct al_output o;
	struct al_sandbox_stream s;
	char want[65];

	AL_ASSERT_INT_EQ(al_output_init(&o, 0), 0);
	AL_ASSERT_INT_EQ(al_output_feed(&o, "abc", 3), 0);
	AL_ASSERT_INT_EQ(al_output_finish(&o, &s), 0);
	AL_ASSERT_INT_EQ(s.total, 3);
	AL_ASSERT_INT_EQ(s.truncated, 1);
	AL_ASSERT_INT_EQ(s.head_len + s.tail_len, 0);
	al_sha256_hex("abc", 3, want);
	AL_ASSERT_STR_EQ(s.sha256, want);
	al_free(s.head);
	al_free(s.tail);
}

AL_TEST(output_allocation_failures_unwind)
{
	for (long n = 0; n < 3; n++) {
		struct al_output o;
		al_alloc_fail_after(n);
		int rc = al_output_init(&o, 64);
		al_alloc_fail_after(-1);
		if (rc == 0) {
			al_output_clear(&o);
			continue;
		}
		AL_ASSERT_INT_EQ(rc, -ENOMEM);
	}
	/* finish with the result allocation failing */
	struct al_output o;
	struct al_sandbox_stream s;
	AL_ASSERT_INT_EQ(al_output_init(&o, 64), 0);
	AL_ASSERT_INT_EQ(al_output_feed(&o, "x", 1), 0);
	al_alloc_fail_after(0);
	int rc = al_output_finish(&o, &s);
	al_alloc_fail_after(-1);
	AL_ASSERT_INT_EQ(rc, -ENOMEM);
	AL_ASSERT_NULL(s.head);
}

AL_TEST(output_feed_allocation_failure_reported)
{
	struct al_output o;
	char big[3000];

	memset(big, 'z', sizeof(big));
	AL_ASSERT_INT_EQ(al_output_init(&o, 1000), 0);
	al_alloc_fail_after(0);
	/* The head buffer grows on demand; its allocation failing is an error, not a drop. */
	int rc = al_output_feed(&o, big, sizeof(big));
	al_alloc_fail_after(-1);
	AL_ASSERT_INT_EQ(rc, -ENOMEM);
	al_output_clear(&o);
}
