/* verify.c - the audit log verifier (see verify.h, docs/AUDIT.md). */
#include "audit/verify.h"

#include "audit/chain.h"
#include "audit/internal.h"
#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One line longer than this is refused rather than buffered without bound. */
#define LINE_MAX_BYTES (16u * 1024 * 1024)

struct shipped {
	int64_t seq;
	char hash[AL_SHA256_HEX];
	int matched;
};

struct al_audit_verifier {
	const al_audit_key *pub; /* borrowed */
	char key_id[AL_AUDIT_KEY_ID_LEN];
	struct shipped *shipped; /* owned array */
	size_t nshipped;
	long line;
	struct al_audit_verify_result res;
};

al_audit_verifier *al_audit_verifier_new(const al_audit_key *pub)
{
	al_audit_verifier *v = al_calloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	v->pub = pub;
	if (pub && al_audit_key_id(pub, v->key_id) < 0) {
		al_free(v);
		return NULL;
	}
	v->res.ok = 1;
	v->res.bad_seq = -1;
	memcpy(v->res.last_hash, AL_AUDIT_GENESIS, AL_SHA256_HEX);
	return v;
}

void al_audit_verifier_free(al_audit_verifier *v)
{
	if (v == NULL)
		return;
	al_free(v->shipped);
	al_free(v);
}

const struct al_audit_verify_result *al_audit_verifier_result(const al_audit_verifier *v)
{
	return &v->res;
}

static int bad(al_audit_verifier *v, long line, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad(al_audit_verifier *v, long line, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	v->res.ok = 0;
	v->res.bad_line = line;
	v->res.bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(v->res.reason, sizeof(v->res.reason), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/*
 * Checks a checkpoint's own fields and, with a key, its signature. Returns 0,
 * or -EINVAL with words in err. Used for checkpoints in the log and shipped.
 */
static int check_checkpoint(const al_audit_verifier *v, json_t *rec, char *err, size_t errlen)
{
	struct al_audit_ckpt c;
	unsigned char sig[AL_AUDIT_SIG_LEN];
	al_buf msg = {0};
	int rc;

	if (al_audit_ckpt_parse(rec, &c) < 0) {
		snprintf(err, errlen, "malformed checkpoint");
		return -EINVAL;
	}
	if (v->pub == NULL)
		return 0;
	if (strcmp(c.key_id, v->key_id) != 0) {
		snprintf(err, errlen, "checkpoint signed by key %s, expected key %s", c.key_id,
			 v->key_id);
		return -EINVAL;
	}
	if (al_audit_sig_decode(c.sig, sig) < 0) {
		snprintf(err, errlen, "checkpoint signature is not 64 bytes of base64");
		return -EINVAL;
	}
	if ((rc = al_audit_chain_ckpt_message(c.head_seq, c.head_hash, &msg)) < 0) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	rc = al_audit_key_verify(v->pub, msg.data, msg.len, sig, sizeof(sig));
	al_buf_free(&msg);
	if (rc != 1) {
		snprintf(err, errlen, "checkpoint signature does not verify");
		return rc < 0 ? rc : -EINVAL;
	}
	return 0;
}

int al_audit_verifier_add_shipped(al_audit_verifier *v, const char *line, size_t len, char *err,
				  size_t errlen)
{
	json_t *rec = NULL;
	struct al_audit_ckpt c;
	struct shipped *grown;
	int rc = -EINVAL;

	if (v->pub == NULL) {
		snprintf(err, errlen, "a public key is needed to trust a shipped checkpoint");
		goto done;
	}
	rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (rec == NULL || al_audit_ckpt_parse(rec, &c) < 0) {
		snprintf(err, errlen, "shipped checkpoint: not a checkpoint record");
		goto done;
	}
	if ((rc = check_checkpoint(v, rec, err, errlen)) < 0)
		goto done;
	grown = al_realloc(v->shipped, (v->nshipped + 1) * sizeof(*grown));
	if (grown == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	v->shipped = grown;
	grown[v->nshipped].seq = c.head_seq;
	memcpy(grown[v->nshipped].hash, c.head_hash, AL_SHA256_HEX);
	grown[v->nshipped].matched = 0;
	v->nshipped++;
	rc = 0;
done:
	json_decref(rec);
	return rc;
}

int al_audit_verifier_line(al_audit_verifier *v, const char *line, size_t len)
{
	json_t *rec = NULL, *jseq;
	const char *prev, *hash;
	char want[AL_SHA256_HEX], why[160];
	int64_t seq = -1;
	long ln;
	int rc = 0;

	if (!v->res.ok)
		return -EBADMSG;
	ln = ++v->line;
	if (len > LINE_MAX_BYTES) {
		rc = bad(v, ln, -1, "line longer than %u bytes", LINE_MAX_BYTES);
		goto done;
	}
	rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (rec == NULL || !json_is_object(rec)) {
		rc = bad(v, ln, -1, "not a JSON object");
		goto done;
	}
	jseq = json_object_get(rec, "seq");
	if (json_is_integer(jseq))
		seq = json_integer_value(jseq);
	if (seq < 1) {
		rc = bad(v, ln, -1, "no valid seq");
		goto done;
	}
	prev = json_string_value(json_object_get(rec, "prev_hash"));
	hash = json_string_value(json_object_get(rec, "hash"));
	if (!al_audit_chain_is_hash(prev) || !al_audit_chain_is_hash(hash)) {
		rc = bad(v, ln, seq, "prev_hash or hash missing or not 64 lower-case hex digits");
		goto done;
	}
	if (!json_is_string(json_object_get(rec, "time"))) {
		rc = bad(v, ln, seq, "no time");
		goto done;
	}
	if (al_audit_chain_check_values(rec) < 0) {
		rc = bad(v, ln, seq, "holds a floating-point number (not canonical)");
		goto done;
	}
	/* Order matters for the message: a missing record shows as a seq gap. */
	if (seq != v->res.last_seq + 1) {
		if (seq <= v->res.last_seq)
			rc = bad(v, ln, seq,
				 "seq %" PRId64 " after seq %" PRId64
				 ": record repeated, inserted or reordered",
				 seq, v->res.last_seq);
		else
			rc = bad(v, ln, seq,
				 "seq %" PRId64 " where seq %" PRId64
				 " was expected: record(s) removed or reordered",
				 seq, v->res.last_seq + 1);
		goto done;
	}
	if (strcmp(prev, v->res.last_hash) != 0) {
		rc = bad(v, ln, seq, "prev_hash does not match the previous record's hash");
		goto done;
	}
	if ((rc = al_audit_chain_hash(rec, prev, want)) < 0)
		goto done;
	if (!al_ct_equal(want, hash, 64)) {
		rc = bad(v, ln, seq, "hash mismatch: record changed");
		goto done;
	}
	if (al_audit_is_checkpoint(rec)) {
		struct al_audit_ckpt c;

		if (al_audit_ckpt_parse(rec, &c) < 0 || c.head_seq != seq - 1 ||
		    strcmp(c.head_hash, prev) != 0) {
			rc = bad(v, ln, seq, "checkpoint does not name the record before it");
			goto done;
		}
		if ((rc = check_checkpoint(v, rec, why, sizeof(why))) < 0) {
			rc = bad(v, ln, seq, "%s", why);
			goto done;
		}
		v->res.checkpoints++;
		if (v->pub)
			v->res.sigs_checked++;
	}
	for (size_t i = 0; i < v->nshipped; i++) {
		if (v->shipped[i].seq != seq)
			continue;
		if (strcmp(v->shipped[i].hash, hash) != 0) {
			rc = bad(v, ln, seq,
				 "differs from a shipped checkpoint: log rewritten up to here");
			goto done;
		}
		if (!v->shipped[i].matched) {
			v->shipped[i].matched = 1;
			v->res.shipped++;
		}
	}
	v->res.records++;
	v->res.last_seq = seq;
	memcpy(v->res.last_hash, hash, AL_SHA256_HEX);
	rc = 0;
done:
	json_decref(rec);
	return rc;
}

int al_audit_verifier_finish(al_audit_verifier *v, int torn)
{
	if (!v->res.ok)
		return -EBADMSG;
	if (torn)
		return bad(v, v->line, -1, "last line is incomplete (interrupted write)");
	for (size_t i = 0; i < v->nshipped; i++)
		if (v->shipped[i].seq > v->res.last_seq)
			return bad(v, v->line + 1, v->res.last_seq + 1,
				   "log ends at seq %" PRId64
				   " but a shipped checkpoint covers seq %" PRId64 ": truncated",
				   v->res.last_seq, v->shipped[i].seq);
	return 0;
}

/* Calls fn for each line of path; *torn = the file did not end in '\n'. */
static int for_each_line(const char *path, int (*fn)(void *ud, const char *l, size_t n), void *ud,
			 int *torn, char *err, size_t errlen)
{
	char chunk[65536];
	al_buf cur = {0};
	int fd, rc = 0;

	*torn = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		size_t i = 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		while (i < (size_t)r) {
			char *nl = memchr(chunk + i, '\n', (size_t)r - i);
			size_t n = nl ? (size_t)(nl - (chunk + i)) : (size_t)r - i;

			/* Stop buffering a runaway line; the verifier reports it. */
			if (cur.len <= LINE_MAX_BYTES &&
			    (rc = al_buf_append(&cur, chunk + i, n)) < 0) {
				snprintf(err, errlen, "out of memory");
				goto done;
			}
			i += n;
			if (nl) {
				i++;
				if ((rc = fn(ud, cur.data ? cur.data : "", cur.len)) == -ENOMEM) {
					snprintf(err, errlen, "out of memory");
					goto done;
				}
				al_buf_reset(&cur);
			}
		}
	}
	if (cur.len > 0) {
		*torn = 1;
		if ((rc = fn(ud, cur.data, cur.len)) == -ENOMEM) {
			snprintf(err, errlen, "out of memory");
			goto done;
		}
	}
	rc = 0;
done:
	al_buf_free(&cur);
	close(fd);
	return rc;
}

static int feed_cb(void *ud, const char *l, size_t n)
{
	int rc = al_audit_verifier_line(ud, l, n);

	return rc == -ENOMEM ? rc : 0;
}

struct shipped_ctx {
	al_audit_verifier *v;
	char *err;
	size_t errlen;
	int rc;
};

static int shipped_cb(void *ud, const char *l, size_t n)
{
	struct shipped_ctx *c = ud;
	int rc;

	if (c->rc < 0 || n == 0)
		return 0;
	rc = al_audit_verifier_add_shipped(c->v, l, n, c->err, c->errlen);
	if (rc < 0)
		c->rc = rc;
	return rc == -ENOMEM ? rc : 0;
}

int al_audit_verify_file(const char *path, const al_audit_key *pub, const char *shipped_path,
			 struct al_audit_verify_result *res, char *err, size_t errlen)
{
	al_audit_verifier *v = al_audit_verifier_new(pub);
	int torn = 0, rc;

	memset(res, 0, sizeof(*res));
	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (shipped_path) {
		struct shipped_ctx c = {v, err, errlen, 0};

		if ((rc = for_each_line(shipped_path, shipped_cb, &c, &torn, err, errlen)) < 0)
			goto done;
		if ((rc = c.rc) < 0)
			goto done;
		if (v->nshipped == 0) {
			rc = -EINVAL;
			snprintf(err, errlen, "%s holds no checkpoint", shipped_path);
			goto done;
		}
	}
	if ((rc = for_each_line(path, feed_cb, v, &torn, err, errlen)) < 0)
		goto done;
	rc = al_audit_verifier_finish(v, torn);
done:
	*res = v->res;
	al_audit_verifier_free(v);
	return rc;
}
