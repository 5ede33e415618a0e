/*
 * cmd_audit.c - `airlock audit`: key generation, verification and a
 * line-by-line writer for the tamper-evident audit log (src/audit/,
 * docs/AUDIT.md).
 *
 *   airlock audit keygen --out KEYFILE [--pub PUBFILE]
 *   airlock audit verify FILE [--pubkey F] [--checkpoint-file F] [--json]
 *   airlock audit write FILE [options] < records.jsonl
 *
 * verify exits 0 when the log is intact, 1 when it is not (naming the first
 * bad record), 2 on a usage error or when a file or key cannot be read.
 */
#include "audit/key.h"
#include "audit/log.h"
#include "audit/verify.h"
#include "cli/cli.h"
#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: airlock audit keygen --out KEYFILE [--pub PUBFILE]\n"
		"       airlock audit verify FILE [--pubkey F] [--checkpoint-file F] [--json]\n"
		"       airlock audit write FILE [--sign-key F] [--component NAME]\n"
		"                          [--checkpoint-every N] [--checkpoint-seconds S]\n"
		"                          [--checkpoint-copy F] [--syslog udp|tcp://HOST:PORT]\n"
		"                          [--sync-every N] < records.jsonl\n"
		"\n"
		"The audit log is hash-chained JSON lines with Ed25519-signed checkpoints\n"
		"(format: docs/AUDIT.md).\n"
		"\n"
		"keygen   writes an Ed25519 private key (PEM, mode 0600, never overwritten)\n"
		"         and its public key (default KEYFILE.pub); prints the public key.\n"
		"verify   checks the chain, sequence and checkpoint signatures (with\n"
		"         --pubkey). --checkpoint-file holds checkpoint lines shipped off\n"
		"         the host: the log must still contain what they sign (detects\n"
		"         truncation and wholesale rewrite). Exit 0 intact, 1 not intact\n"
		"         (the first bad line and seq are named), 2 usage or read error.\n"
		"write    appends one record per stdin line (a JSON object) to FILE.\n");
}

static int cmd_keygen(int argc, char **argv)
{
	static const struct option lopts[] = {{"out", required_argument, NULL, 'o'},
					      {"pub", required_argument, NULL, 'p'},
					      {"help", no_argument, NULL, 'h'},
					      {NULL, 0, NULL, 0}};
	const char *out = NULL, *pub = NULL;
	char *pubpath = NULL, *pem = NULL, err[512], kid[AL_AUDIT_KEY_ID_LEN];
	al_audit_key *k = NULL;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'p':
			pub = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (out == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (pub == NULL) {
		al_buf b = {0};

		if (al_buf_appendf(&b, "%s.pub", out) < 0) {
			fprintf(stderr, "airlock audit keygen: out of memory\n");
			goto done;
		}
		pubpath = al_buf_steal(&b, NULL);
		pub = pubpath;
	}
	if (al_audit_key_generate(out, pub, &pem, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock audit keygen: %s\n", err);
		goto done;
	}
	if (al_audit_key_load_public(pub, &k, err, sizeof(err)) < 0 ||
	    al_audit_key_id(k, kid) < 0) {
		fprintf(stderr, "airlock audit keygen: %s\n", err);
		goto done;
	}
	printf("private key: %s (keep it on this host, mode 0600)\n"
	       "public key:  %s (ship it to whoever verifies)\n"
	       "key id:      %s\n%s",
	       out, pub, kid, pem);
	rc = 0;
done:
	al_audit_key_free(k);
	al_free(pem);
	al_free(pubpath);
	return rc;
}

static void print_json_result(const char *file, int rc, const struct al_audit_verify_result *r,
			      const char *err)
{
	json_t *o = json_pack(
	    "{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:s}", "file", file, "ok", rc == 0, "records",
	    (json_int_t)r->records, "checkpoints", (json_int_t)r->checkpoints,
	    "signatures_verified", (json_int_t)r->sigs_checked, "shipped_checkpoints_matched",
	    (json_int_t)r->shipped, "last_seq", (json_int_t)r->last_seq, "head_hash", r->last_hash);
	char *s;

	if (o == NULL)
		return;
	if (rc == -EBADMSG) {
		json_object_set_new(o, "bad_line", json_integer(r->bad_line));
		if (r->bad_seq >= 0)
			json_object_set_new(o, "bad_seq", json_integer(r->bad_seq));
		json_object_set_new(o, "reason", json_string(r->reason));
	} else if (rc < 0) {
		json_object_set_new(o, "error", json_string(err));
	}
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	if (s)
		printf("%s\n", s);
	al_free(s);
	json_decref(o);
}

static int cmd_verify(int argc, char **argv)
{
	static const struct option lopts[] = {{"pubkey", required_argument, NULL, 'k'},
					      {"checkpoint-file", required_argument, NULL, 'c'},
					      {"json", no_argument, NULL, 'j'},
					      {"help", no_argument, NULL, 'h'},
					      {NULL, 0, NULL, 0}};
	const char *pubpath = NULL, *ckpath = NULL, *file;
	struct al_audit_verify_result res;
	al_audit_key *pub = NULL;
	char err[512] = "";
	int c, json = 0, rc, status = 2;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			pubpath = optarg;
			break;
		case 'c':
			ckpath = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	file = argv[optind];
	if (ckpath && pubpath == NULL) {
		fprintf(stderr, "airlock audit verify: --checkpoint-file needs --pubkey\n");
		return 2;
	}
	if (pubpath && al_audit_key_load_public(pubpath, &pub, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock audit verify: %s\n", err);
		return 2;
	}
	rc = al_audit_verify_file(file, pub, ckpath, &res, err, sizeof(err));
	if (json)
		print_json_result(file, rc, &res, err);
	if (rc == 0) {
		status = 0;
		if (!json)
			printf("%s: intact: %ld records, %ld checkpoints (%s), %ld shipped "
			       "checkpoints matched, head seq %lld hash %s\n",
			       file, res.records, res.checkpoints,
			       pub ? "signatures verified" : "signatures NOT checked: no --pubkey",
			       res.shipped, (long long)res.last_seq, res.last_hash);
	} else if (rc == -EBADMSG) {
		status = 1;
		if (res.bad_seq >= 0)
			fprintf(stderr, "%s: NOT intact: line %ld (seq %lld): %s\n", file,
				res.bad_line, (long long)res.bad_seq, res.reason);
		else
			fprintf(stderr, "%s: NOT intact: line %ld: %s\n", file, res.bad_line,
				res.reason);
	} else {
		fprintf(stderr, "airlock audit verify: %s\n", err);
	}
	al_audit_key_free(pub);
	return status;
}

static int parse_uint(const char *s, unsigned *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 0 || v > INT_MAX)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int cmd_write(int argc, char **argv)
{
	static const struct option lopts[] = {{"sign-key", required_argument, NULL, 'k'},
					      {"component", required_argument, NULL, 'C'},
					      {"checkpoint-every", required_argument, NULL, 'n'},
					      {"checkpoint-seconds", required_argument, NULL, 's'},
					      {"checkpoint-copy", required_argument, NULL, 'c'},
					      {"syslog", required_argument, NULL, 'S'},
					      {"sync-every", required_argument, NULL, 'y'},
					      {"help", no_argument, NULL, 'h'},
					      {NULL, 0, NULL, 0}};
	struct al_audit_opts o = {0};
	al_audit_log *log = NULL;
	al_buf line = {0};
	char err[512];
	long lineno = 0;
	int c, ch, rc = 1;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		unsigned *dst = NULL;

		switch (c) {
		case 'k':
			o.sign_key_path = optarg;
			break;
		case 'C':
			o.component = optarg;
			break;
		case 'c':
			o.ckpt_copy_path = optarg;
			break;
		case 'S':
			o.syslog_target = optarg;
			break;
		case 'n':
			dst = &o.ckpt_every_records;
			break;
		case 's':
			dst = &o.ckpt_every_seconds;
			break;
		case 'y':
			dst = &o.sync_every;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (dst && parse_uint(optarg, dst) < 0) {
			fprintf(stderr, "airlock audit write: bad number '%s'\n", optarg);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	if (al_audit_open(argv[optind], &o, &log, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlock audit write: %s\n", err);
		return 1;
	}
	for (;;) {
		json_t *rec;
		int wrc;

		ch = getchar();
		if (ch != EOF && ch != '\n') {
			char b = (char)ch;

			if (al_buf_append(&line, &b, 1) < 0)
				goto done;
			continue;
		}
		if (line.len > 0) {
			lineno++;
			rec = json_loadb(line.data, line.len, JSON_REJECT_DUPLICATES, NULL);
			wrc = rec ? al_audit_write(log, rec) : -EINVAL;
			json_decref(rec);
			if (wrc < 0) {
				fprintf(stderr, "airlock audit write: stdin line %ld: %s\n", lineno,
					wrc == -EINVAL ? "not a valid record (a JSON object "
							 "without seq/time/prev_hash/hash/reals)"
						       : strerror(-wrc));
				goto done;
			}
			al_buf_reset(&line);
		}
		if (ch == EOF)
			break;
	}
	rc = 0;
done:
	if (al_audit_close(log) < 0 && rc == 0) {
		fprintf(stderr, "airlock audit write: closing the log failed\n");
		rc = 1;
	}
	al_buf_free(&line);
	return rc;
}

int al_cmd_audit(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "write") == 0)
		return cmd_write(argc - 1, argv + 1);
	fprintf(stderr, "airlock audit: unknown subcommand '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
