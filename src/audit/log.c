/* log.c - the hash-chained audit log writer (see log.h, docs/AUDIT.md). */
#include "audit/log.h"

#include "audit/chain.h"
#include "audit/internal.h"
#include "audit/key.h"
#include "audit/syslog.h"
#include "audit/verify.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_DEFAULT_RECORDS 1000
/* The tail reader gives up on a last record larger than this. */
#define TAIL_MAX (32u * 1024 * 1024)

struct al_audit_log {
	pthread_mutex_t mu;
	pthread_cond_t synced_cv; /* signalled when a group sync ends */
	int syncing;		  /* an al_audit_sync leader is in fdatasync */
	int64_t synced_seq;	  /* every record up to this seq is on disk */
	int fd;
	int ckpt_fd; /* -1 unless ckpt_copy_path */
	off_t size;  /* bytes of complete records in the file */
	int poisoned;
	char *component;   /* owned */
	al_audit_key *key; /* owned; NULL: no checkpoints */
	char key_id[AL_AUDIT_KEY_ID_LEN];
	unsigned ckpt_records, ckpt_seconds, sync_every;
	unsigned since_ckpt, since_sync;
	int64_t last_ckpt_ms;
	al_audit_syslog *syslog; /* owned; may be NULL */
	int syslog_down;	 /* an outage was already reported */
	struct al_audit_stats st;
};

/* Reads [off, off+len) fully. */
static int pread_all(int fd, char *p, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t r = pread(fd, p, len, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		p += r;
		len -= (size_t)r;
		off += r;
	}
	return 0;
}

/* Parses and self-checks one record line; fills seq, prev and hash. */
static int tail_record(const char *line, size_t len, int64_t *seq, char prev[AL_SHA256_HEX],
		       char hash[AL_SHA256_HEX])
{
	json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	const char *p, *h;
	char want[AL_SHA256_HEX];
	int rc = -EBADMSG;

	if (rec == NULL || !json_is_object(rec) || !json_is_integer(json_object_get(rec, "seq")))
		goto done;
	*seq = json_integer_value(json_object_get(rec, "seq"));
	p = json_string_value(json_object_get(rec, "prev_hash"));
	h = json_string_value(json_object_get(rec, "hash"));
	if (*seq < 1 || !al_audit_chain_is_hash(p) || !al_audit_chain_is_hash(h) ||
	    al_audit_chain_check_values(rec) < 0)
		goto done;
	if ((rc = al_audit_chain_hash(rec, p, want)) < 0)
		goto done;
	rc = strcmp(want, h) == 0 ? 0 : -EBADMSG;
	memcpy(prev, p, AL_SHA256_HEX);
	memcpy(hash, h, AL_SHA256_HEX);
done:
	json_decref(rec);
	return rc;
}

/*
 * Checks the last two records of an existing log and loads the chain head.
 * Reading backwards in a growing window keeps reopen O(record size), not
 * O(file size); opts.full_verify trades that for a complete check.
 */
static int load_tail(al_audit_log *log, char *err, size_t errlen)
{
	char *buf = NULL, *end, *last, *prevl = NULL;
	size_t w = 65536;
	int64_t seq = 0, pseq = 0;
	char prev[AL_SHA256_HEX], hash[AL_SHA256_HEX], pprev[AL_SHA256_HEX], phash[AL_SHA256_HEX];
	int rc;

	for (;;) {
		if ((off_t)w > log->size)
			w = (size_t)log->size;
		al_free(buf);
		buf = al_malloc(w);
		if (buf == NULL) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto done;
		}
		if ((rc = pread_all(log->fd, buf, w, log->size - (off_t)w)) < 0) {
			snprintf(err, errlen, "cannot read the log: %s", strerror(-rc));
			goto done;
		}
		if (buf[w - 1] != '\n') {
			rc = -EBADMSG;
			snprintf(err, errlen,
				 "the last record is incomplete (interrupted write); run 'airlock "
				 "audit verify' and move the file aside");
			goto done;
		}
		end = buf + w - 1; /* the final '\n' */
		last = memrchr(buf, '\n', (size_t)(end - buf));
		if (last)
			prevl = memrchr(buf, '\n', (size_t)(last - buf));
		/* Enough when two whole lines are in view, or the window is the file. */
		if ((off_t)w == log->size || (last && prevl))
			break;
		if (w >= TAIL_MAX) {
			rc = -EBADMSG;
			snprintf(err, errlen, "the last record is larger than %u bytes", TAIL_MAX);
			goto done;
		}
		w *= 2;
	}
	last = last ? last + 1 : buf;
	if (tail_record(last, (size_t)(end - last), &seq, prev, hash) != 0) {
		rc = -EBADMSG;
		snprintf(err, errlen, "the last record does not verify (changed or corrupt)");
		goto done;
	}
	if (last == buf) {
		if (seq != 1 || strcmp(prev, AL_AUDIT_GENESIS) != 0) {
			rc = -EBADMSG;
			snprintf(err, errlen, "the only record is not the first of a chain");
			goto done;
		}
	} else {
		char *pstart = prevl ? prevl + 1 : buf;

		if (tail_record(pstart, (size_t)(last - 1 - pstart), &pseq, pprev, phash) != 0 ||
		    seq != pseq + 1 || strcmp(prev, phash) != 0) {
			rc = -EBADMSG;
			snprintf(err, errlen,
				 "the last two records do not chain (seq %lld); run 'airlock audit "
				 "verify' on the file",
				 (long long)seq);
			goto done;
		}
	}
	log->st.seq = seq;
	memcpy(log->st.head_hash, hash, AL_SHA256_HEX);
	rc = 0;
done:
	al_free(buf);
	return rc;
}

/* Appends one whole line; on failure cuts the file back to the last record. */
static int append_line(al_audit_log *log, const char *p, size_t len)
{
	size_t done = 0;
	int rc = 0;

	/*
	 * One write() normally carries the whole line. A short write (a signal,
	 * RLIMIT_FSIZE, a full disk) is continued so the real errno surfaces.
	 */
	while (done < len) {
		ssize_t w = write(log->fd, p + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)w;
	}
	if (rc < 0) {
		if (done > 0 && ftruncate(log->fd, log->size) < 0)
			log->poisoned = 1; /* a torn line we cannot remove: stop here */
		return rc;
	}
	log->size += (off_t)len;
	return 0;
}

/* Mutex held. */
static int sync_now(al_audit_log *log)
{
	log->since_sync = 0;
	if (fdatasync(log->fd) < 0) {
		/* After a failed fdatasync the kernel may have dropped the pages. */
		log->poisoned = 1;
		return -errno;
	}
	log->st.syncs++;
	log->synced_seq = log->st.seq;
	return 0;
}

static void export_syslog(al_audit_log *log, const json_t *rec, const char *line)
{
	int rc;

	if (log->syslog == NULL)
		return;
	rc = al_audit_syslog_send(log->syslog, rec, line);
	if (rc == 0) {
		log->st.syslog_sent++;
		if (log->syslog_down)
			al_info("audit", "syslog export resumed");
		log->syslog_down = 0;
		return;
	}
	log->st.syslog_failed++;
	if (!log->syslog_down)
		al_warn("audit", "syslog export failed (%s); the local log continues",
			strerror(-rc));
	log->syslog_down = 1;
}

/* Chains, writes and exports one record (a copy the caller owns). Mutex held. */
static int write_locked(al_audit_log *log, json_t *rec, int sync)
{
	char tbuf[40], hash[AL_SHA256_HEX];
	char *line = NULL;
	size_t len;
	int rc;

	if (log->poisoned)
		return -EIO;
	if ((rc = al_time_format(al_now_ms(), tbuf, sizeof(tbuf))) < 0)
		return rc;
	if (json_object_set_new(rec, "seq", json_integer(log->st.seq + 1)) < 0 ||
	    json_object_set_new(rec, "time", json_string(tbuf)) < 0 ||
	    json_object_set_new(rec, "prev_hash", json_string(log->st.head_hash)) < 0 ||
	    (json_object_get(rec, "component") == NULL &&
	     json_object_set_new(rec, "component", json_string(log->component)) < 0))
		return -ENOMEM;
	if ((rc = al_audit_chain_hash(rec, log->st.head_hash, hash)) < 0)
		return rc;
	if (json_object_set_new(rec, "hash", json_string(hash)) < 0)
		return -ENOMEM;
	line = json_dumps(rec, AL_AUDIT_JSON_FLAGS);
	if (line == NULL)
		return -ENOMEM;
	len = strlen(line);
	line[len] = '\n'; /* the NUL becomes the newline: one buffer, one write */
	rc = append_line(log, line, len + 1);
	line[len] = '\0';
	if (rc < 0)
		goto done;
	log->st.seq++;
	memcpy(log->st.head_hash, hash, AL_SHA256_HEX);
	if (!al_audit_is_checkpoint(rec))
		log->since_ckpt++;
	log->since_sync++;
	if ((sync || log->sync_every <= 1 || log->since_sync >= log->sync_every) &&
	    (rc = sync_now(log)) < 0)
		goto done;
	export_syslog(log, rec, line);
	if (log->ckpt_fd >= 0 && al_audit_is_checkpoint(rec)) {
		/* The shipped copy is best effort like syslog: the chain has it. */
		line[len] = '\n';
		if (write(log->ckpt_fd, line, len + 1) != (ssize_t)(len + 1) ||
		    fdatasync(log->ckpt_fd) < 0)
			al_warn("audit", "could not append the checkpoint copy: %s",
				strerror(errno));
	}
	rc = 0;
done:
	al_free(line);
	return rc;
}

static int checkpoint_locked(al_audit_log *log)
{
	unsigned char sig[AL_AUDIT_SIG_LEN];
	char sigb64[AL_AUDIT_SIG_B64_LEN + 1];
	al_buf msg = {0};
	json_t *rec = NULL;
	int rc;

	if (log->key == NULL)
		return -EINVAL;
	if ((rc = al_audit_chain_ckpt_message(log->st.seq, log->st.head_hash, &msg)) < 0)
		goto done;
	if ((rc = al_audit_key_sign(log->key, msg.data, msg.len, sig)) < 0)
		goto done;
	al_audit_sig_encode(sig, sigb64);
	rec = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "type", "checkpoint", "head_seq",
			(json_int_t)log->st.seq, "head_hash", log->st.head_hash, "alg", "Ed25519",
			"key_id", log->key_id, "sig", sigb64);
	if (rec == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	/* A checkpoint is always synced: it is what gets shipped and trusted. */
	if ((rc = write_locked(log, rec, 1)) < 0)
		goto done;
	log->st.checkpoints++;
	log->since_ckpt = 0;
	log->last_ckpt_ms = al_now_ms();
done:
	al_buf_free(&msg);
	json_decref(rec);
	return rc;
}

static int valid_record(const json_t *record)
{
	static const char *const reserved[] = {"seq", "time", "prev_hash", "hash"};

	if (!json_is_object(record) || al_audit_is_checkpoint(record))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (json_object_get(record, reserved[i]) != NULL)
			return -EINVAL;
	return al_audit_chain_check_values(record);
}

int al_audit_write(al_audit_log *log, const json_t *record)
{
	json_t *copy = NULL;
	int rc, due;

	if (log == NULL || valid_record(record) < 0)
		return -EINVAL;
	/* Shallow: only top-level members are added; the caller's object is untouched. */
	copy = json_copy((json_t *)record);
	if (copy == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&log->mu);
	if ((rc = write_locked(log, copy, 0)) < 0)
		goto done;
	due = log->key && ((log->ckpt_records && log->since_ckpt >= log->ckpt_records) ||
			   (log->ckpt_seconds &&
			    al_now_ms() - log->last_ckpt_ms >= (int64_t)log->ckpt_seconds * 1000));
	if (due)
		rc = checkpoint_locked(log);
done:
	pthread_mutex_unlock(&log->mu);
	json_decref(copy);
	return rc;
}

/*
 * Group commit: the first caller to find records unsynced becomes the
 * leader and runs fdatasync without the mutex, so writers keep appending
 * meanwhile (their records may or may not ride along); callers arriving
 * during its sync wait for it and, if it covered their records, return
 * without a sync of their own, else one of them leads the next round. A
 * record is covered when its seq was written before the leader started.
 */
int al_audit_sync(al_audit_log *log)
{
	int64_t want;
	int rc = 0;

	if (log == NULL)
		return -EINVAL;
	pthread_mutex_lock(&log->mu);
	want = log->st.seq;
	for (;;) {
		int64_t covers;

		if (log->poisoned) {
			rc = -EIO;
			break;
		}
		if (log->synced_seq >= want)
			break;
		if (log->syncing) {
			pthread_cond_wait(&log->synced_cv, &log->mu);
			continue;
		}
		covers = log->st.seq;
		log->syncing = 1;
		pthread_mutex_unlock(&log->mu);
		rc = fdatasync(log->fd) < 0 ? -errno : 0;
		pthread_mutex_lock(&log->mu);
		log->syncing = 0;
		if (rc < 0) {
			/* As in sync_now: the pages may be gone; nothing more is written. */
			log->poisoned = 1;
		} else {
			log->st.syncs++;
			if (covers > log->synced_seq)
				log->synced_seq = covers;
			log->since_sync = (unsigned)(log->st.seq - log->synced_seq);
		}
		pthread_cond_broadcast(&log->synced_cv);
		if (rc < 0)
			break;
	}
	pthread_mutex_unlock(&log->mu);
	return rc;
}

int al_audit_checkpoint(al_audit_log *log)
{
	int rc;

	pthread_mutex_lock(&log->mu);
	rc = checkpoint_locked(log);
	pthread_mutex_unlock(&log->mu);
	return rc;
}

void al_audit_get_stats(al_audit_log *log, struct al_audit_stats *out)
{
	pthread_mutex_lock(&log->mu);
	*out = log->st;
	pthread_mutex_unlock(&log->mu);
}

static void log_free(al_audit_log *log)
{
	if (log->fd >= 0)
		close(log->fd);
	if (log->ckpt_fd >= 0)
		close(log->ckpt_fd);
	al_audit_key_free(log->key);
	al_audit_syslog_close(log->syslog);
	al_free(log->component);
	pthread_cond_destroy(&log->synced_cv);
	pthread_mutex_destroy(&log->mu);
	al_free(log);
}

int al_audit_close(al_audit_log *log)
{
	int rc = 0;

	if (log == NULL)
		return 0;
	pthread_mutex_lock(&log->mu);
	if (log->key && log->since_ckpt > 0 && !log->poisoned)
		rc = checkpoint_locked(log);
	if (rc == 0 && log->since_sync > 0 && !log->poisoned)
		rc = sync_now(log);
	pthread_mutex_unlock(&log->mu);
	log_free(log);
	return rc;
}

int al_audit_open(const char *path, const struct al_audit_opts *opts, al_audit_log **out, char *err,
		  size_t errlen)
{
	static const struct al_audit_opts defaults = {0};
	al_audit_log *log = NULL;
	struct stat st;
	json_t *rec = NULL;
	int rc;

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	log = al_calloc(1, sizeof(*log));
	if (log == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&log->mu, NULL);
	pthread_cond_init(&log->synced_cv, NULL);
	log->fd = log->ckpt_fd = -1;
	memcpy(log->st.head_hash, AL_AUDIT_GENESIS, AL_SHA256_HEX);
	log->component = al_strdup(opts->component ? opts->component : "airlock");
	if (log->component == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	log->sync_every = opts->sync_every;
	log->ckpt_seconds = opts->ckpt_every_seconds;
	log->ckpt_records = opts->ckpt_every_records;
	if (opts->sign_key_path) {
		if ((rc = al_audit_key_load_private(opts->sign_key_path, &log->key, err, errlen)) <
			0 ||
		    (rc = al_audit_key_id(log->key, log->key_id)) < 0)
			goto fail;
		if (log->ckpt_records == 0)
			log->ckpt_records = CKPT_DEFAULT_RECORDS;
	}
	log->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (log->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open audit log %s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(log->fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, errlen, "audit log %s is in use by another process", path);
		goto fail;
	}
	if (fstat(log->fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
		goto fail;
	}
	/* A character device (/dev/full in tests) has no content to continue. */
	log->size = S_ISREG(st.st_mode) ? st.st_size : 0;
	if (log->size > 0 && opts->full_verify) {
		struct al_audit_verify_result res;

		rc = al_audit_verify_file(path, NULL, NULL, &res, err, errlen);
		if (rc == -EBADMSG)
			snprintf(err, errlen, "refusing to append to %s: line %ld (seq %lld): %s",
				 path, res.bad_line, (long long)res.bad_seq, res.reason);
		if (rc < 0)
			goto fail;
		log->st.seq = res.last_seq;
		memcpy(log->st.head_hash, res.last_hash, AL_SHA256_HEX);
	} else if (log->size > 0) {
		char why[200];

		if ((rc = load_tail(log, why, sizeof(why))) < 0) {
			snprintf(err, errlen, "refusing to append to %s: %s", path, why);
			goto fail;
		}
	}
	if (opts->ckpt_copy_path) {
		log->ckpt_fd = open(opts->ckpt_copy_path,
				    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (log->ckpt_fd < 0) {
			rc = -errno;
			snprintf(err, errlen, "cannot open %s: %s", opts->ckpt_copy_path,
				 strerror(errno));
			goto fail;
		}
	}
	if (opts->syslog_target &&
	    (rc = al_audit_syslog_open(opts->syslog_target, &log->syslog, err, errlen)) < 0)
		goto fail;
	log->last_ckpt_ms = al_now_ms();
	/* Every open is itself audited: a restart shows in the chain. */
	rec = json_pack("{s:s, s:I, s:s, s:b}", "type", "audit_open", "pid", (json_int_t)getpid(),
			"airlock_version", AL_VERSION, "resumed", log->st.seq > 0);
	if (rec == NULL ||
	    (log->key && json_object_set_new(rec, "key_id", json_string(log->key_id)) < 0)) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = write_locked(log, rec, 1)) < 0) {
		snprintf(err, errlen, "cannot write to audit log %s: %s", path, strerror(-rc));
		goto fail;
	}
	json_decref(rec);
	*out = log;
	return 0;
fail:
	json_decref(rec);
	log_free(log);
	return rc;
}
