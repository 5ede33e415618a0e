/*
 * Unit tests for src/audit: the chain round trip, every tamper type named at
 * the right record, checkpoint signatures, reopen-and-continue, refusal of a
 * broken tail, write failures, concurrency and allocation failures.
 */
#include "audit/chain.h"
#include "audit/key.h"
#include "audit/log.h"
#include "audit/verify.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINES 64

static char *path_in_tmp(const char *name)
{
	static char p[4][512];
	static int i;
	char *out = p[i++ % 4];

	snprintf(out, 512, "%s/%s", al_test_tmpdir(), name);
	return out;
}

/* Reads a file into at most MAX_LINES lines (each al_strdup'd, no '\n'). */
static int read_lines(const char *path, char **lines)
{
	char buf[1 << 16];
	FILE *f = fopen(path, "r");
	int n = 0;

	AL_ASSERT_NOT_NULL(f);
	while (n < MAX_LINES && fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		lines[n++] = al_strdup(buf);
	}
	fclose(f);
	return n;
}

static void write_lines(const char *path, char **lines, int n)
{
	FILE *f = fopen(path, "w");

	AL_ASSERT_NOT_NULL(f);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s\n", lines[i]);
	fclose(f);
}

static void free_lines(char **lines, int n)
{
	for (int i = 0; i < n; i++)
		al_free(lines[i]);
}

/* Writes `n` simple records after the audit_open record: seq 1 is audit_open. */
static void make_log(const char *path, const struct al_audit_opts *o, int n)
{
	al_audit_log *log = NULL;
	char err[256];

	AL_ASSERT_INT_EQ(al_audit_open(path, o, &log, err, sizeof(err)), 0);
	for (int i = 0; i < n; i++) {
		json_t *r = json_pack("{s:s, s:i}", "event", "test", "i", i);

		AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
		json_decref(r);
	}
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
}

static int verify(const char *path, const al_audit_key *pub, const char *shipped,
		  struct al_audit_verify_result *res)
{
	char err[256] = "";

	return al_audit_verify_file(path, pub, shipped, res, err, sizeof(err));
}

/* Rebuilds seq/prev_hash/hash over lines, as an attacker rewriting the whole file would. */
static void rechain(char **lines, int n)
{
	char prev[AL_SHA256_HEX] = AL_AUDIT_GENESIS, h[AL_SHA256_HEX];

	for (int i = 0; i < n; i++) {
		json_t *r = json_loads(lines[i], 0, NULL);

		AL_ASSERT_NOT_NULL(r);
		json_object_set_new(r, "seq", json_integer(i + 1));
		json_object_set_new(r, "prev_hash", json_string(prev));
		if (json_object_get(r, "head_hash")) { /* a checkpoint: point it at the new head */
			json_object_set_new(r, "head_seq", json_integer(i));
			json_object_set_new(r, "head_hash", json_string(prev));
		}
		AL_ASSERT_INT_EQ(al_audit_chain_hash(r, prev, h), 0);
		json_object_set_new(r, "hash", json_string(h));
		al_free(lines[i]);
		lines[i] = json_dumps(r, AL_AUDIT_JSON_FLAGS);
		memcpy(prev, h, sizeof(prev));
		json_decref(r);
	}
}

AL_TEST(audit_chain_round_trip)
{
	const char *p = path_in_tmp("a.log");
	struct al_audit_verify_result res;
	char *lines[MAX_LINES];
	json_t *r;
	int n;

	make_log(p, NULL, 5);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), 0);
	AL_ASSERT_INT_EQ(res.ok, 1);
	AL_ASSERT_INT_EQ(res.records, 6);
	AL_ASSERT_INT_EQ(res.last_seq, 6);
	n = read_lines(p, lines);
	AL_ASSERT_INT_EQ(n, 6);
	r = json_loads(lines[0], 0, NULL);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(r, "type")), "audit_open");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(r, "prev_hash")), AL_AUDIT_GENESIS);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(r, "component")), "airlock");
	json_decref(r);
	r = json_loads(lines[3], 0, NULL);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "seq")), 4);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "i")), 2);
	AL_ASSERT_NOT_NULL(strstr(json_string_value(json_object_get(r, "time")), "T"));
	json_decref(r);
	/* The file is canonical: the hash input is the line minus its hash member. */
	AL_ASSERT_INT_EQ(strncmp(strstr(lines[5], "\"hash\":\"") + 8, res.last_hash, 64), 0);
	free_lines(lines, n);
}

AL_TEST(audit_reopen_continues_chain)
{
	const char *p = path_in_tmp("a.log");
	struct al_audit_opts o = {.component = "sandbox"};
	struct al_audit_verify_result res;
	char *lines[MAX_LINES];
	json_t *r;
	int n;

	make_log(p, &o, 2);
	make_log(p, &o, 2);
	o.full_verify = 1;
	make_log(p, &o, 1);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), 0);
	AL_ASSERT_INT_EQ(res.records, 8);
	n = read_lines(p, lines);
	r = json_loads(lines[3], 0, NULL);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(r, "type")), "audit_open");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r, "seq")), 4);
	AL_ASSERT(json_is_true(json_object_get(r, "resumed")));
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(r, "component")), "sandbox");
	json_decref(r);
	free_lines(lines, n);
}

/* seq 1 = audit_open, seq 2..7 = six records: line k holds seq k. */
static int tampered_log(const char *p, char **lines)
{
	make_log(p, NULL, 6);
	return read_lines(p, lines);
}

AL_TEST(audit_tamper_edit_byte)
{
	const char *p = path_in_tmp("a.log");
	struct al_audit_verify_result res;
	char *lines[MAX_LINES], *c;
	int n = tampered_log(p, lines);

	c = strstr(lines[3], "\"i\":2");
	AL_ASSERT_NOT_NULL(c);
	c[4] = '9';
	write_lines(p, lines, n);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), -EBADMSG);
	AL_ASSERT_INT_EQ(res.bad_line, 4);
	AL_ASSERT_INT_EQ(res.bad_seq, 4);
	AL_ASSERT_NOT_NULL(strstr(res.reason, "hash mismatch"));
	free_lines(lines, n);
}

AL_TEST(audit_tamper_delete_record)
{
	const char *p = path_in_tmp("a.log");
	struct al_audit_verify_result res;
	char *lines[MAX_LINES];
	int n = tampered_log(p, lines);

	al_free(lines[3]);
	memmove(&lines[3], &lines[4], (size_t)(n - 4) * sizeof(char *));
	n--;
	write_lines(p, lines, n);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), -EBADMSG);
	AL_ASSERT_INT_EQ(res.bad_line, 4);
	AL_ASSERT_INT_EQ(res.bad_seq, 5);
	AL_ASSERT_NOT_NULL(strstr(res.reason, "removed"));
	free_lines(lines, n);
}

AL_TEST(audit_tamper_insert_copy)
{
	const char *p = path_in_tmp("a.log");
	struct al_audit_verify_result res;
	char *lines[MAX_LINES];
	int n = tampered_log(p, lines);

	memmove(&lines[5], &lines[4], (size_t)(n - 4) * sizeof(char *));
	lines[4] = al_strdup(lines[1]); /* a copy of seq 2 after seq 4 */
	n++;
	write_lines(p, lines, n);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), -EBADMSG);
	AL_ASSERT_INT_EQ(res.bad_line, 5);
	AL_ASSERT_INT_EQ(res.bad_seq, 2);
	AL_ASSERT_NOT_NULL(strstr(res.reason, "inserted"));
	free_lines(lines, n);
}

AL_TEST(audit_tamper_swap_records)
{
	const char *p = path_in_tmp("a.log");
	struct al_audit_verify_result res;
	char *lines[MAX_LINES], *t;
	int n = tampered_log(p, lines);

	t = lines[2];
	lines[2] = lines[3];
	lines[3] = t;
	write_lines(p, lines, n);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), -EBADMSG);
	AL_ASSERT_INT_EQ(res.bad_line, 3);
	AL_ASSERT_INT_EQ(res.bad_seq, 4);
	free_lines(lines, n);
}

AL_TEST(audit_tamper_rechained_edit_caught_by_checkpoint)
{
	const char *p = path_in_tmp("a.log"), *k = path_in_tmp("k.pem");
	struct al_audit_opts o = {.sign_key_path = k, .ckpt_every_records = 3};
	struct al_audit_verify_result res;
	al_audit_key *pub = NULL;
	char *lines[MAX_LINES], err[256], *c;
	int n;

	AL_ASSERT_INT_EQ(al_audit_key_generate(k, NULL, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_load_public(k, &pub, err, sizeof(err)), 0);
	make_log(p, &o, 4); /* 1 open, 2 3, 4 ckpt, 5 6, 7 ckpt on close */
	AL_ASSERT_INT_EQ(verify(p, pub, NULL, &res), 0);
	AL_ASSERT_INT_EQ(res.checkpoints, 2);
	AL_ASSERT_INT_EQ(res.sigs_checked, 2);
	n = read_lines(p, lines);
	AL_ASSERT_INT_EQ(n, 7);
	/* Edit seq 2 and recompute every hash: the chain is consistent again... */
	c = strstr(lines[1], "\"i\":0");
	AL_ASSERT_NOT_NULL(c);
	c[4] = '7';
	rechain(lines, n);
	write_lines(p, lines, n);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), 0);
	/* ...but the first checkpoint signed the old head. */
	AL_ASSERT_INT_EQ(verify(p, pub, NULL, &res), -EBADMSG);
	AL_ASSERT_INT_EQ(res.bad_line, 4);
	AL_ASSERT_INT_EQ(res.bad_seq, 4);
	AL_ASSERT_NOT_NULL(strstr(res.reason, "signature does not verify"));
	free_lines(lines, n);
	al_audit_key_free(pub);
}

AL_TEST(audit_checkpoint_signature_good_bad_wrong_key)
{
	const char *p = path_in_tmp("a.log"), *k = path_in_tmp("k.pem"),
		   *k2 = path_in_tmp("k2.pem");
	struct al_audit_opts o = {.sign_key_path = k, .ckpt_every_records = 2};
	struct al_audit_verify_result res;
	al_audit_key *pub = NULL, *other = NULL;
	char *lines[MAX_LINES], err[256], *c;
	int n;

	AL_ASSERT_INT_EQ(al_audit_key_generate(k, NULL, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_generate(k2, NULL, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_load_public(k, &pub, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_load_public(k2, &other, err, sizeof(err)), 0);
	make_log(p, &o, 3); /* 1 open, 2, 3 ckpt, 4 5, 6 ckpt */
	AL_ASSERT_INT_EQ(verify(p, pub, NULL, &res), 0);
	AL_ASSERT_INT_EQ(res.sigs_checked, 2);
	/* Without a key the chain still verifies but no signature counts. */
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), 0);
	AL_ASSERT_INT_EQ(res.sigs_checked, 0);
	/* Wrong key: the first checkpoint is the first bad record. */
	AL_ASSERT_INT_EQ(verify(p, other, NULL, &res), -EBADMSG);
	AL_ASSERT_INT_EQ(res.bad_line, 3);
	AL_ASSERT_INT_EQ(res.bad_seq, 3);
	AL_ASSERT_NOT_NULL(strstr(res.reason, "signed by key"));
	/* A forged signature on a re-chained log fails verification. */
	n = read_lines(p, lines);
	c = strstr(lines[5], "\"sig\":\"");
	AL_ASSERT_NOT_NULL(c);
	c[7] = c[7] == 'A' ? 'B' : 'A';
	rechain(lines, n);
	write_lines(p, lines, n);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), 0);
	AL_ASSERT_INT_EQ(verify(p, pub, NULL, &res), -EBADMSG);
	AL_ASSERT_INT_EQ(res.bad_line, 6);
	AL_ASSERT_NOT_NULL(strstr(res.reason, "signature"));
	free_lines(lines, n);
	al_audit_key_free(pub);
	al_audit_key_free(other);
}

AL_TEST(audit_truncation_and_rewrite_behind_shipped_checkpoint)
{
	const char *p = path_in_tmp("a.log"), *k = path_in_tmp("k.pem"),
		   *ship = path_in_tmp("ship.jsonl");
	struct al_audit_opts o = {
	    .sign_key_path = k, .ckpt_every_records = 3, .ckpt_copy_path = ship};
	struct al_audit_verify_result res;
	al_audit_key *pub = NULL;
	char *lines[MAX_LINES], err[256];
	int n;

	AL_ASSERT_INT_EQ(al_audit_key_generate(k, NULL, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_load_public(k, &pub, err, sizeof(err)), 0);
	make_log(p, &o, 5); /* 1 open 2 3 | 4 ckpt | 5 6 7 | 8 ckpt(head 7) */
	AL_ASSERT_INT_EQ(verify(p, pub, ship, &res), 0);
	AL_ASSERT_INT_EQ(res.shipped, 2);
	n = read_lines(p, lines);
	AL_ASSERT_INT_EQ(n, 8);
	/* Truncate to 5 lines: the chain alone cannot tell... */
	write_lines(p, lines, 5);
	AL_ASSERT_INT_EQ(verify(p, pub, NULL, &res), 0);
	/* ...the shipped checkpoint (head seq 7) can. */
	AL_ASSERT_INT_EQ(verify(p, pub, ship, &res), -EBADMSG);
	AL_ASSERT_NOT_NULL(strstr(res.reason, "truncated"));
	AL_ASSERT_INT_EQ(res.bad_line, 6);
	AL_ASSERT_INT_EQ(res.bad_seq, 6);
	/*
	 * A wholesale rewrite: the checkpoints dropped (they cannot be re-signed),
	 * seq 3 replaced, everything re-chained. It verifies on its own; against
	 * the shipped checkpoint for head seq 3 it does not.
	 */
	al_free(lines[2]);
	lines[2] = al_strdup("{\"event\":\"forged\",\"time\":\"2026-01-01T00:00:00.000Z\"}");
	al_free(lines[3]);
	al_free(lines[7]);
	memmove(&lines[3], &lines[4], 3 * sizeof(char *));
	n = 6;
	rechain(lines, n);
	write_lines(p, lines, n);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), 0);
	AL_ASSERT_INT_EQ(verify(p, pub, ship, &res), -EBADMSG);
	AL_ASSERT_INT_EQ(res.bad_line, 3);
	AL_ASSERT_INT_EQ(res.bad_seq, 3);
	AL_ASSERT_NOT_NULL(strstr(res.reason, "shipped"));
	free_lines(lines, n);
	al_audit_key_free(pub);
}

AL_TEST(audit_shipped_checkpoint_must_be_signed)
{
	const char *k = path_in_tmp("k.pem");
	al_audit_key *pub = NULL;
	al_audit_verifier *v;
	char err[256];
	const char *forged = "{\"type\":\"checkpoint\",\"head_seq\":3,\"head_hash\":"
			     "\"" AL_AUDIT_GENESIS "\",\"alg\":\"Ed25519\",\"key_id\":\"x\","
			     "\"sig\":\"AAAA\"}";

	AL_ASSERT_INT_EQ(al_audit_key_generate(k, NULL, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_load_public(k, &pub, err, sizeof(err)), 0);
	v = al_audit_verifier_new(pub);
	AL_ASSERT_NOT_NULL(v);
	AL_ASSERT_INT_EQ(al_audit_verifier_add_shipped(v, forged, strlen(forged), err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT_NOT_NULL(strstr(err, "key"));
	al_audit_verifier_free(v);
	al_audit_key_free(pub);
}

AL_TEST(audit_refuses_broken_tail)
{
	const char *p = path_in_tmp("a.log");
	struct al_audit_opts full = {.full_verify = 1};
	al_audit_log *log = NULL;
	char *lines[MAX_LINES], err[256], *c;
	int n, fd;

	make_log(p, NULL, 4);
	n = read_lines(p, lines);
	/* A changed last record. */
	c = strstr(lines[n - 1], "\"i\":3");
	AL_ASSERT_NOT_NULL(c);
	c[4] = '8';
	write_lines(p, lines, n);
	AL_ASSERT_INT_EQ(al_audit_open(p, NULL, &log, err, sizeof(err)), -EBADMSG);
	AL_ASSERT_NULL(log);
	AL_ASSERT_NOT_NULL(strstr(err, "refusing to append"));
	/* A torn last line (crash mid-write). */
	c[4] = '3';
	write_lines(p, lines, n);
	fd = open(p, O_WRONLY | O_APPEND);
	AL_ASSERT(write(fd, "{\"seq\":", 7) == 7);
	close(fd);
	AL_ASSERT_INT_EQ(al_audit_open(p, NULL, &log, err, sizeof(err)), -EBADMSG);
	AL_ASSERT_NOT_NULL(strstr(err, "incomplete"));
	/* A middle record changed: the tail check passes, full_verify does not. */
	c = strstr(lines[2], "\"i\":1");
	AL_ASSERT_NOT_NULL(c);
	c[4] = '6';
	write_lines(p, lines, n);
	AL_ASSERT_INT_EQ(al_audit_open(p, &full, &log, err, sizeof(err)), -EBADMSG);
	AL_ASSERT_NOT_NULL(strstr(err, "line 3 (seq 3)"));
	free_lines(lines, n);
}

AL_TEST(audit_second_writer_refused)
{
	const char *p = path_in_tmp("a.log");
	al_audit_log *a = NULL, *b = NULL;
	char err[256];

	AL_ASSERT_INT_EQ(al_audit_open(p, NULL, &a, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_open(p, NULL, &b, err, sizeof(err)), -EBUSY);
	AL_ASSERT_NOT_NULL(strstr(err, "in use"));
	AL_ASSERT_INT_EQ(al_audit_close(a), 0);
}

AL_TEST(audit_rejects_bad_records)
{
	const char *p = path_in_tmp("a.log");
	al_audit_log *log = NULL;
	char err[256];
	json_t *r;
	struct al_audit_stats st;

	AL_ASSERT_INT_EQ(al_audit_open(p, NULL, &log, err, sizeof(err)), 0);
	r = json_pack("{s:i}", "seq", 5);
	AL_ASSERT_INT_EQ(al_audit_write(log, r), -EINVAL);
	json_decref(r);
	r = json_pack("{s:f}", "cpu", 1.5);
	AL_ASSERT_INT_EQ(al_audit_write(log, r), -EINVAL);
	json_decref(r);
	r = json_pack("{s:s}", "type", "checkpoint");
	AL_ASSERT_INT_EQ(al_audit_write(log, r), -EINVAL);
	json_decref(r);
	r = json_pack("[i]", 1);
	AL_ASSERT_INT_EQ(al_audit_write(log, r), -EINVAL);
	json_decref(r);
	/* The caller's object is not modified by a successful write. */
	r = json_pack("{s:s}", "event", "ok");
	AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	AL_ASSERT_INT_EQ(json_object_size(r), 1);
	json_decref(r);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.seq, 2);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
}

AL_TEST(audit_write_failure_dev_full)
{
	al_audit_log *log = NULL;
	char err[256];
	int rc = al_audit_open("/dev/full", NULL, &log, err, sizeof(err));

	/* The open record cannot be written: the log is not usable, nothing runs. */
	AL_ASSERT_INT_EQ(rc, -ENOSPC);
	AL_ASSERT_NULL(log);
	AL_ASSERT_NOT_NULL(strstr(err, "No space"));
}

AL_TEST(audit_write_failure_fsize_rolls_back)
{
	const char *p = path_in_tmp("a.log");
	struct al_audit_verify_result res;
	struct rlimit rl, old;
	al_audit_log *log = NULL;
	char err[256], big[4096];
	struct stat st1, st2;
	json_t *r;

	signal(SIGXFSZ, SIG_IGN);
	AL_ASSERT_INT_EQ(al_audit_open(p, NULL, &log, err, sizeof(err)), 0);
	r = json_pack("{s:s}", "event", "small");
	AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	json_decref(r);
	AL_ASSERT_INT_EQ(stat(p, &st1), 0);
	AL_ASSERT_INT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = (rlim_t)st1.st_size + 100; /* room for part of the next line only */
	AL_ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r = json_pack("{s:s}", "event", big);
	AL_ASSERT_INT_EQ(al_audit_write(log, r), -EFBIG);
	AL_ASSERT_INT_EQ(stat(p, &st2), 0);
	AL_ASSERT_INT_EQ(st2.st_size, st1.st_size); /* the partial line was cut off */
	/* Once space is back the chain continues where it was. */
	AL_ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	json_decref(r);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), 0);
	AL_ASSERT_INT_EQ(res.records, 3);
}

AL_TEST(audit_checkpoint_interval_and_close)
{
	const char *p = path_in_tmp("a.log"), *k = path_in_tmp("k.pem");
	struct al_audit_opts o = {.sign_key_path = k, .ckpt_every_records = 4};
	struct al_audit_verify_result res;
	al_audit_key *pub = NULL;
	char err[256], *lines[MAX_LINES];
	int n, cps = 0;

	AL_ASSERT_INT_EQ(al_audit_key_generate(k, NULL, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_load_public(k, &pub, err, sizeof(err)), 0);
	make_log(p, &o, 9); /* 10 records: checkpoints after 4 and 8, one more on close */
	n = read_lines(p, lines);
	for (int i = 0; i < n; i++)
		cps += strstr(lines[i], "\"type\":\"checkpoint\"") != NULL;
	AL_ASSERT_INT_EQ(cps, 3);
	AL_ASSERT_NOT_NULL(strstr(lines[n - 1], "\"type\":\"checkpoint\""));
	AL_ASSERT_INT_EQ(verify(p, pub, NULL, &res), 0);
	AL_ASSERT_INT_EQ(res.sigs_checked, 3);
	free_lines(lines, n);
	al_audit_key_free(pub);
}

AL_TEST(audit_keygen_files)
{
	const char *k = path_in_tmp("k.pem"), *pubp = path_in_tmp("k.pub");
	al_audit_key *priv = NULL, *pub = NULL, *none = NULL;
	char err[256], id1[AL_AUDIT_KEY_ID_LEN], id2[AL_AUDIT_KEY_ID_LEN], *pem = NULL;
	unsigned char sig[AL_AUDIT_SIG_LEN];
	struct stat st;

	AL_ASSERT_INT_EQ(al_audit_key_generate(k, pubp, &pem, err, sizeof(err)), 0);
	AL_ASSERT_NOT_NULL(strstr(pem, "BEGIN PUBLIC KEY"));
	AL_ASSERT_INT_EQ(stat(k, &st), 0);
	AL_ASSERT_INT_EQ(st.st_mode & 0777, 0600);
	AL_ASSERT_INT_EQ(al_audit_key_generate(k, NULL, NULL, err, sizeof(err)), -EEXIST);
	AL_ASSERT_INT_EQ(al_audit_key_load_private(k, &priv, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_load_public(pubp, &pub, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_load_private(pubp, &none, err, sizeof(err)), -EINVAL);
	AL_ASSERT_NULL(none);
	AL_ASSERT_INT_EQ(al_audit_key_id(priv, id1), 0);
	AL_ASSERT_INT_EQ(al_audit_key_id(pub, id2), 0);
	AL_ASSERT_STR_EQ(id1, id2);
	AL_ASSERT_INT_EQ(al_audit_key_sign(priv, "m", 1, sig), 0);
	AL_ASSERT_INT_EQ(al_audit_key_verify(pub, "m", 1, sig, sizeof(sig)), 1);
	AL_ASSERT_INT_EQ(al_audit_key_verify(pub, "n", 1, sig, sizeof(sig)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_sign(pub, "m", 1, sig), -EINVAL);
	al_free(pem);
	al_audit_key_free(priv);
	al_audit_key_free(pub);
}

struct thr {
	al_audit_log *log;
	int id, failures;
};

static void *writer(void *ud)
{
	struct thr *t = ud;

	for (int i = 0; i < 50; i++) {
		json_t *r = json_pack("{s:i, s:i}", "thread", t->id, "i", i);

		if (r == NULL || al_audit_write(t->log, r) != 0)
			t->failures++;
		json_decref(r);
	}
	return NULL;
}

AL_TEST(audit_concurrent_writers)
{
	const char *p = path_in_tmp("a.log"), *k = path_in_tmp("k.pem");
	struct al_audit_opts o = {.sign_key_path = k, .ckpt_every_records = 16, .sync_every = 8};
	struct al_audit_verify_result res;
	al_audit_key *pub = NULL;
	al_audit_log *log = NULL;
	pthread_t th[4];
	struct thr t[4];
	char err[256];

	AL_ASSERT_INT_EQ(al_audit_key_generate(k, NULL, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_key_load_public(k, &pub, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_open(p, &o, &log, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct thr){log, i, 0};
		AL_ASSERT_INT_EQ(pthread_create(&th[i], NULL, writer, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		AL_ASSERT_INT_EQ(t[i].failures, 0);
	}
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(verify(p, pub, NULL, &res), 0);
	AL_ASSERT_INT_EQ(res.records - res.checkpoints, 201);
	AL_ASSERT_INT_EQ(res.checkpoints, 13); /* 201 / 16 = 12, plus one on close */
	al_audit_key_free(pub);
}

/* Every allocation in the write path fails in turn; the log must stay a valid chain. */
AL_TEST(audit_write_survives_allocation_failures)
{
	const char *p = path_in_tmp("a.log");
	struct al_audit_verify_result res;
	al_audit_log *log = NULL;
	char err[256];
	int ok = 0;

	AL_ASSERT_INT_EQ(al_audit_open(p, NULL, &log, err, sizeof(err)), 0);
	for (long i = 0; i < 60; i++) {
		json_t *r = json_pack("{s:s, s:I, s:[s,s]}", "event", "alloc", "i", (json_int_t)i,
				      "a", "x", "y");

		AL_ASSERT_NOT_NULL(r);
		al_alloc_fail_after(i);
		if (al_audit_write(log, r) == 0)
			ok++;
		al_alloc_fail_after(-1);
		json_decref(r);
	}
	AL_ASSERT_INT_GE(ok, 1);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(verify(p, NULL, NULL, &res), 0);
	AL_ASSERT_INT_EQ(res.records, ok + 1);
}

AL_TEST(audit_checkpoint_by_time_and_on_demand)
{
	const char *p = path_in_tmp("a.log"), *k = path_in_tmp("k.pem");
	struct al_audit_opts o = {
	    .sign_key_path = k, .ckpt_every_seconds = 1, .ckpt_every_records = 1000};
	struct al_audit_stats st;
	al_audit_log *log = NULL;
	char err[256];
	json_t *r = json_pack("{s:s}", "event", "tick");

	AL_ASSERT_INT_EQ(al_audit_key_generate(k, NULL, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_open(p, &o, &log, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.checkpoints, 0);
	usleep(1100 * 1000);
	AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.checkpoints, 1);
	AL_ASSERT_INT_EQ(st.seq, 4); /* open, tick, tick, checkpoint */
	AL_ASSERT_INT_EQ(al_audit_checkpoint(log), 0);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.checkpoints, 2);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0); /* nothing since: no closing checkpoint */
	json_decref(r);
	AL_ASSERT_INT_EQ(al_audit_open(p, NULL, &log, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_audit_checkpoint(log), -EINVAL); /* no key */
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
}

AL_TEST(audit_verifier_line_api)
{
	al_audit_verifier *v = al_audit_verifier_new(NULL);
	const struct al_audit_verify_result *r;

	AL_ASSERT_NOT_NULL(v);
	AL_ASSERT_INT_EQ(al_audit_verifier_line(v, "", 0), -EBADMSG);
	/* After the first bad line the verdict stands. */
	AL_ASSERT_INT_EQ(al_audit_verifier_line(v, "{}", 2), -EBADMSG);
	r = al_audit_verifier_result(v);
	AL_ASSERT_INT_EQ(r->ok, 0);
	AL_ASSERT_INT_EQ(r->bad_line, 1);
	AL_ASSERT_INT_EQ(r->bad_seq, -1);
	AL_ASSERT_STR_EQ(r->reason, "not a JSON object");
	al_audit_verifier_free(v);
}

AL_TEST(audit_explicit_sync)
{
	const char *p = path_in_tmp("x.log");
	struct al_audit_opts o = {.sync_every = AL_AUDIT_SYNC_EXPLICIT};
	struct al_audit_verify_result res;
	struct al_audit_stats st;
	al_audit_log *log = NULL;
	char err[256];
	json_t *r = json_pack("{s:s}", "event", "e");

	AL_ASSERT_INT_EQ(al_audit_open(p, &o, &log, err, sizeof(err)), 0);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.syncs, 1); /* the open record is always synced */
	/* Nothing unsynced: no I/O. */
	AL_ASSERT_INT_EQ(al_audit_sync(log), 0);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.syncs, 1);
	for (int i = 0; i < 5; i++)
		AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.syncs, 1); /* writes alone do not sync in this mode */
	AL_ASSERT_INT_EQ(st.seq, 6);
	AL_ASSERT_INT_EQ(al_audit_sync(log), 0); /* one sync for the five */
	AL_ASSERT_INT_EQ(al_audit_sync(log), 0);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.syncs, 2);
	AL_ASSERT_INT_EQ(al_audit_write(log, r), 0);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0); /* close syncs the tail */
	json_decref(r);
	AL_ASSERT_INT_EQ(al_audit_verify_file(p, NULL, NULL, &res, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(res.last_seq, 7);
	AL_ASSERT_INT_EQ(al_audit_sync(NULL), -EINVAL);
}

struct sync_arg {
	al_audit_log *log;
	int fails;
};

static void *sync_writer(void *a)
{
	struct sync_arg *sa = a;
	json_t *r = json_pack("{s:s}", "event", "t");

	for (int i = 0; i < 50; i++)
		if (al_audit_write(sa->log, r) < 0 || al_audit_sync(sa->log) < 0)
			sa->fails++;
	json_decref(r);
	return NULL;
}

/* Group commit: 4 threads x 50 (write, sync); every sync returns durable, chain intact. */
AL_TEST(audit_explicit_sync_threads)
{
	const char *p = path_in_tmp("g.log");
	struct al_audit_opts o = {.sync_every = AL_AUDIT_SYNC_EXPLICIT};
	struct al_audit_verify_result res;
	struct al_audit_stats st;
	struct sync_arg sa[4];
	pthread_t th[4];
	al_audit_log *log = NULL;
	char err[256];

	AL_ASSERT_INT_EQ(al_audit_open(p, &o, &log, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		sa[i].log = log;
		sa[i].fails = 0;
		AL_ASSERT_INT_EQ(pthread_create(&th[i], NULL, sync_writer, &sa[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		AL_ASSERT_INT_EQ(sa[i].fails, 0);
	}
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(st.seq, 201);
	/* At most one sync per (write, sync) pair, plus the open's. */
	AL_ASSERT(st.syncs >= 2 && st.syncs <= 201);
	AL_ASSERT_INT_EQ(al_audit_sync(log), 0);
	al_audit_get_stats(log, &st);
	AL_ASSERT_INT_EQ(al_audit_close(log), 0);
	AL_ASSERT_INT_EQ(al_audit_verify_file(p, NULL, NULL, &res, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(res.last_seq, 201);
}

/* The log's own descriptor, found by its path in /proc/self/fd. */
static int fd_of(const char *path)
{
	char link[64], target[512];

	for (int fd = 3; fd < 1024; fd++) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, path) == 0)
			return fd;
	}
	return -1;
}

/*
 * A failed fdatasync poisons the log in either mode. fdatasync of a FIFO
 * fails (EINVAL): a real failure of the real call, made by putting a FIFO
 * under the log's descriptor after it opened.
 */
static void sync_failure_poisons(unsigned sync_every)
{
	char *p = path_in_tmp("f.log"), *fifo = path_in_tmp("f.fifo");
	struct al_audit_opts o = {.sync_every = sync_every};
	al_audit_log *log = NULL;
	char err[256];
	json_t *r = json_pack("{s:s}", "event", "e");
	int lfd, ffd;

	unlink(p);
	unlink(fifo);
	AL_ASSERT_INT_EQ(mkfifo(fifo, 0600), 0);
	AL_ASSERT_INT_EQ(al_audit_open(p, &o, &log, err, sizeof(err)), 0);
	AL_ASSERT((lfd = fd_of(p)) >= 0);
	AL_ASSERT((ffd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC)) >= 0);
	AL_ASSERT_INT_EQ(dup2(ffd, lfd), lfd);
	if (sync_every == AL_AUDIT_SYNC_EXPLICIT) {
		AL_ASSERT_INT_EQ(al_audit_write(log, r), 0); /* write() to the FIFO works */
		AL_ASSERT_INT_EQ(al_audit_sync(log), -EINVAL);
	} else {
		AL_ASSERT_INT_EQ(al_audit_write(log, r), -EINVAL);
	}
	/* Poisoned: nothing more is written or reported synced. */
	AL_ASSERT_INT_EQ(al_audit_write(log, r), -EIO);
	AL_ASSERT_INT_EQ(al_audit_sync(log), -EIO);
	al_audit_close(log);
	close(ffd);
	json_decref(r);
}

AL_TEST(audit_explicit_sync_failure_poisons)
{
	sync_failure_poisons(AL_AUDIT_SYNC_EXPLICIT);
}

AL_TEST(audit_per_record_sync_failure_poisons)
{
	sync_failure_poisons(0);
}
