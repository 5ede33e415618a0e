/*
 * Unit tests for src/core: buffers, base64url, ids, tokens, time, hashing, log
 * scrubbing, fd writes.
 */
#include "core/alloc.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/fd.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/rand.h"
#include "unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

AL_TEST(core_buf_append_and_format)
{
	al_buf b = {0};

	AL_ASSERT_INT_EQ(al_buf_append_str(&b, "hello"), 0);
	AL_ASSERT_INT_EQ(al_buf_appendf(&b, " %d %s", 42, "world"), 0);
	AL_ASSERT_STR_EQ(b.data, "hello 42 world");
	AL_ASSERT_INT_EQ(b.len, 14);
	al_buf_consume(&b, 6);
	AL_ASSERT_STR_EQ(b.data, "42 world");
	al_buf_consume(&b, 100);
	AL_ASSERT_INT_EQ(b.len, 0);
	AL_ASSERT_STR_EQ(b.data, "");
	al_buf_free(&b);
}

AL_TEST(core_buf_grows_past_many_pages)
{
	al_buf b = {0};

	for (int i = 0; i < 100000; i++)
		AL_ASSERT_INT_EQ(al_buf_append(&b, "x", 1), 0);
	AL_ASSERT_INT_EQ(b.len, 100000);
	AL_ASSERT_INT_EQ(b.data[b.len], '\0');
	al_buf_free(&b);
}

AL_TEST(core_buf_reports_allocation_failure)
{
	al_buf b = {0};

	al_alloc_fail_after(0);
	AL_ASSERT_INT_EQ(al_buf_append_str(&b, "x"), -ENOMEM);
	al_alloc_fail_after(-1);
	AL_ASSERT_NULL(b.data);
	AL_ASSERT_INT_EQ(al_buf_append_str(&b, "x"), 0);
	al_buf_free(&b);
}

AL_TEST(core_b64url_round_trip)
{
	unsigned char in[64], out[64];
	char enc[100];
	size_t n;

	for (size_t len = 0; len < sizeof(in); len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)(i * 37 + len);
		AL_ASSERT_INT_EQ(al_b64url_encode(in, len, enc, sizeof(enc)), 0);
		AL_ASSERT_INT_EQ(strlen(enc), al_b64url_len(len));
		AL_ASSERT(strchr(enc, '+') == NULL && strchr(enc, '/') == NULL &&
			  strchr(enc, '=') == NULL);
		AL_ASSERT_INT_EQ(al_b64url_decode(enc, strlen(enc), out, sizeof(out), &n), 0);
		AL_ASSERT_INT_EQ(n, len);
		AL_ASSERT_MEM_EQ(in, out, len);
	}
}

AL_TEST(core_b64url_known_vectors_and_rejects)
{
	char enc[16];
	unsigned char out[16];
	size_t n;

	AL_ASSERT_INT_EQ(al_b64url_encode("\xfb\xff", 2, enc, sizeof(enc)), 0);
	AL_ASSERT_STR_EQ(enc, "-_8");
	AL_ASSERT_INT_EQ(al_b64url_encode("foobar", 6, enc, sizeof(enc)), 0);
	AL_ASSERT_STR_EQ(enc, "Zm9vYmFy");
	AL_ASSERT_INT_EQ(al_b64url_decode("Zm9vYg==", 8, out, sizeof(out), &n), 0);
	AL_ASSERT_INT_EQ(n, 4);
	AL_ASSERT_MEM_EQ(out, "foob", 4);
	AL_ASSERT_INT_EQ(al_b64url_decode("Zm9v!", 5, out, sizeof(out), &n), -EINVAL);
	AL_ASSERT_INT_EQ(al_b64url_decode("Z", 1, out, sizeof(out), &n), -EINVAL);
	AL_ASSERT_INT_EQ(al_b64url_decode("Zm9vYmFy", 8, out, 3, &n), -ENOSPC);
	AL_ASSERT_INT_EQ(al_b64url_encode("foobar", 6, enc, 8), -ENOSPC);
}

AL_TEST(core_ids_are_unique_and_sorted)
{
	char prev[AL_ID_MAX] = "", id[AL_ID_MAX];

	for (int i = 0; i < 20000; i++) {
		AL_ASSERT_INT_EQ(al_id_new("sesn", id, sizeof(id)), 0);
		AL_ASSERT_INT_EQ(strlen(id), 5 + 26);
		AL_ASSERT(strncmp(id, "sesn_", 5) == 0);
		if (prev[0] && strcmp(prev, id) >= 0)
			al_test_fail(__FILE__, __LINE__, "ids not increasing: %s then %s", prev,
				     id);
		memcpy(prev, id, sizeof(id));
	}
	AL_ASSERT_INT_EQ(al_id_new("sesn", id, 20), -ENOSPC);
}

AL_TEST(core_tokens_have_kind_and_entropy)
{
	char *a = al_token_new("env"), *b = al_token_new("env");

	AL_ASSERT_NOT_NULL(a);
	AL_ASSERT_NOT_NULL(b);
	AL_ASSERT(strncmp(a, "alk_env_", 8) == 0);
	AL_ASSERT_INT_EQ(strlen(a), 8 + 43);
	AL_ASSERT(strcmp(a, b) != 0);
	al_free_secret_str(a);
	al_free_secret_str(b);
}

AL_TEST(core_time_format_and_parse)
{
	char s[40];
	int64_t ms;

	AL_ASSERT_INT_EQ(al_time_format(1795816195123LL, s, sizeof(s)), 0);
	AL_ASSERT_STR_EQ(s, "2026-11-27T21:49:55.123Z");
	AL_ASSERT_INT_EQ(al_time_parse(s, &ms), 0);
	AL_ASSERT_INT_EQ(ms, 1795816195123LL);
	AL_ASSERT_INT_EQ(al_time_parse("2026-11-27T22:49:55.1+01:00", &ms), 0);
	AL_ASSERT_INT_EQ(ms, 1795816195100LL);
	AL_ASSERT_INT_EQ(al_time_parse("2026-11-27T21:49:55Z", &ms), 0);
	AL_ASSERT_INT_EQ(ms, 1795816195000LL);
	AL_ASSERT_INT_EQ(al_time_parse("2026-11-27 21:49:55Z", &ms), -EINVAL);
	AL_ASSERT_INT_EQ(al_time_parse("2026-13-27T21:49:55Z", &ms), -EINVAL);
	AL_ASSERT_INT_EQ(al_time_parse("2026-11-27T21:49:55Zjunk", &ms), -EINVAL);
	AL_ASSERT_INT_EQ(al_time_format(0, s, 10), -ENOSPC);
	AL_ASSERT(al_mono_ms() > 0);
	/* Microseconds (processed_at): six digits, parsed back to the millisecond. */
	AL_ASSERT_INT_EQ(al_time_format_us(1795816195123456LL, s, sizeof(s)), 0);
	AL_ASSERT_STR_EQ(s, "2026-11-27T21:49:55.123456Z");
	AL_ASSERT_INT_EQ(al_time_parse(s, &ms), 0);
	AL_ASSERT_INT_EQ(ms, 1795816195123LL);
	AL_ASSERT_INT_EQ(al_time_format_us(1795816195000007LL, s, sizeof(s)), 0);
	AL_ASSERT_STR_EQ(s, "2026-11-27T21:49:55.000007Z");
	AL_ASSERT_INT_EQ(al_time_format_us(0, s, 27), -ENOSPC);
	AL_ASSERT_INT_EQ(al_time_format_us(-1, s, sizeof(s)), -EINVAL);
	AL_ASSERT(al_now_us() / 1000 - al_now_ms() <= 1);
}

AL_TEST(core_sha256_and_ct_equal)
{
	char hex[AL_SHA256_HEX];

	AL_ASSERT_INT_EQ(al_sha256_hex("abc", 3, hex), 0);
	AL_ASSERT_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	AL_ASSERT(al_ct_equal("abcd", "abcd", 4));
	AL_ASSERT(!al_ct_equal("abcd", "abce", 4));
}

AL_TEST(core_scrub_redacts_credentials_only)
{
	char s[256];

	snprintf(s, sizeof(s), "key=alk_env_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefg ok");
	AL_ASSERT_INT_EQ(al_secret_scrub(s), 1);
	AL_ASSERT_STR_EQ(s, "key=alk_env_[REDACTED] ok");
	snprintf(s, sizeof(s), "x-api-key: sk-ant-api03-abcdefghijklmnop and alk_admin_12345678");
	AL_ASSERT_INT_EQ(al_secret_scrub(s), 2);
	AL_ASSERT_STR_EQ(s, "x-api-key: sk-ant-[REDACTED] and alk_admin_********");
	/* Ids and words that merely contain the prefix are left alone. */
	snprintf(s, sizeof(s), "walk_env_abcdefghij sesn_01ABC alk_ alk_x_short");
	AL_ASSERT_INT_EQ(al_secret_scrub(s), 0);
	AL_ASSERT_STR_EQ(s, "walk_env_abcdefghij sesn_01ABC alk_ alk_x_short");
}

AL_TEST(core_log_lines_never_carry_secrets)
{
	char path[512], line[1024];
	int fd;
	FILE *f;
	char *tok = al_token_new("sess");

	snprintf(path, sizeof(path), "%s/log", al_test_tmpdir());
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	AL_ASSERT(fd >= 0);
	al_log_set_fd(fd);
	al_log_set_format(AL_LOG_JSON);
	al_info("test", "token is %s", tok);
	al_log_set_format(AL_LOG_TEXT);
	al_warn("test", "again %s", tok);
	al_debug("test", "below the level: not written");
	al_log_set_fd(-1);
	close(fd);
	f = fopen(path, "r");
	AL_ASSERT_NOT_NULL(f);
	AL_ASSERT_NOT_NULL(fgets(line, sizeof(line), f));
	AL_ASSERT(strstr(line, "\"level\":\"info\"") != NULL);
	AL_ASSERT(strstr(line, "alk_sess_[REDACTED]") != NULL);
	AL_ASSERT(strstr(line, tok + 9) == NULL);
	AL_ASSERT_NOT_NULL(fgets(line, sizeof(line), f));
	AL_ASSERT(strstr(line, " warn  test: again alk_sess_[REDACTED]") != NULL);
	AL_ASSERT_NULL(fgets(line, sizeof(line), f));
	fclose(f);
	al_free_secret_str(tok);
}

AL_TEST(core_log_text_escapes_control_bytes)
{
	char path[512], line[1024];
	int fd;
	FILE *f;

	snprintf(path, sizeof(path), "%s/log", al_test_tmpdir());
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	AL_ASSERT(fd >= 0);
	al_log_set_fd(fd);
	al_log_set_format(AL_LOG_TEXT);
	/* Data with a forged second line must stay on one line. */
	al_warn("http", "path %s end",
		"/x\n2026-01-01T00:00:00.000Z info  auth: admin ok\r\x01\x7f");
	al_log_set_fd(-1);
	close(fd);
	f = fopen(path, "r");
	AL_ASSERT_NOT_NULL(f);
	AL_ASSERT_NOT_NULL(fgets(line, sizeof(line), f));
	AL_ASSERT(strstr(line, "path /x\\n2026-01-01T00:00:00.000Z info  auth: admin "
			       "ok\\r\\x01\\x7f end\n") != NULL);
	AL_ASSERT_NULL(fgets(line, sizeof(line), f));
	fclose(f);
}

/*
 * Each allocation of a buffer's life failing in turn: a failed call
 * returns -ENOMEM and leaves the buffer exactly as it was (still valid,
 * NUL-terminated, contents intact), so callers can unwind or retry.
 */
AL_TEST(core_buf_alloc_failures_leave_buffer_intact)
{
	int completed = 0;

	for (long k = 0; k < 64 && !completed; k++) {
		al_buf b = {0};
		char expect[4096] = "";
		size_t elen = 0;
		int rc = 0;

		al_alloc_fail_after(k);
		for (int i = 0; i < 200 && rc == 0; i++) {
			char piece[32];
			int n = snprintf(piece, sizeof(piece), "<%d>", i);
			rc = (i % 2) ? al_buf_appendf(&b, "<%d>", i)
				     : al_buf_append(&b, piece, (size_t)n);
			if (rc == 0) {
				memcpy(expect + elen, piece, (size_t)n + 1);
				elen += (size_t)n;
			}
			AL_ASSERT_INT_EQ(b.len, elen);
			if (b.data) {
				AL_ASSERT_INT_EQ(b.data[b.len], '\0');
				AL_ASSERT_MEM_EQ(b.data, expect, elen);
			}
		}
		al_alloc_fail_after(-1);
		if (rc == 0) {
			size_t len = 0;
			char *s = al_buf_steal(&b, &len);
			AL_ASSERT_INT_EQ(len, elen);
			AL_ASSERT_STR_EQ(s, expect);
			al_free(s);
			completed = 1;
		} else {
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
		}
		al_buf_free(&b);
	}
	AL_ASSERT_INT_EQ(completed, 1);
	/* Steal of an empty buffer allocates "": its failure is NULL, not a crash. */
	al_buf e = {0};
	al_alloc_fail_after(0);
	AL_ASSERT_NULL(al_buf_steal(&e, NULL));
	al_alloc_fail_after(-1);
}

AL_TEST(core_fd_write_all_whole_and_errors)
{
	/* Larger than a pipe's 64 KiB buffer: the writer must keep going while we drain it. */
	static char big[200000], back[sizeof(big)];
	int p[2];
	size_t got = 0;
	pid_t pid;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	AL_ASSERT_INT_EQ(pipe(p), 0);
	pid = fork();
	AL_ASSERT(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(al_fd_write_all(p[1], big, sizeof(big)) == 0 ? 0 : 1);
	}
	close(p[1]);
	while (got < sizeof(back)) {
		ssize_t r = read(p[0], back + got, sizeof(back) - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(p[0]);
	AL_ASSERT_INT_EQ(got, sizeof(big));
	AL_ASSERT(memcmp(big, back, sizeof(big)) == 0);
	{
		int st = -1;
		AL_ASSERT_INT_EQ(waitpid(pid, &st, 0), pid);
		AL_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	AL_ASSERT_INT_EQ(al_fd_write_all(-1, "x", 1), -EBADF);
	AL_ASSERT_INT_EQ(al_fd_write_all(-1, "x", 0), 0);
}
