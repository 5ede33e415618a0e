/*
 * tools.c - bash/read/write/edit/glob/grep for one session: the workspace,
 * the session's sandbox and persistent shell, confined file operations, and
 * the audit records of every call (tools.h).
 *
 * Texts follow the SDK's agent toolset (tools/agent-toolset/node.js) so that
 * a model sees the same words whichever worker ran its call; where our
 * engine knows more (fileops' reasons) its words are kept. Known differences:
 *   - grep patterns are POSIX extended regular expressions (regcomp), not
 *     JavaScript ones, and costly constructs are refused (fileops.h);
 *   - non-UTF-8 and binary files are refused by read, not decoded with
 *     replacement characters;
 *   - edit refuses old_string == new_string (the SDK rewrites the file).
 */
#include "worker/tools.h"

#include "audit/record.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/rand.h"
#include "sandbox/audit.h"
#include "sandbox/fileops.h"
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The SDK's limits (node.js): BASH_OUTPUT_LIMIT, DEFAULT_MAX_FILE_BYTES, ... */
#define BASH_OUTPUT	  (100u * 1024u)
#define BASH_TIMEOUT_MS	  120000u
#define READ_MAX	  (256u * 1024u)
#define GREP_MAX	  (100u * 1024u)
#define GLOB_MAX	  200u
#define SESSION_ID_MAX	  128u
#define SANDBOX_PATH	  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define NOBODY		  65534
#define AUDIT_UNAVAILABLE "audit log unavailable"

struct al_tool_session {
	const struct al_worker_config *cfg; /* borrowed */
	al_audit_log *audit;		    /* borrowed; NULL in unit tests */
	char *session_id, *workspace;	    /* owned */
	struct al_fileops_root *root;	    /* owned */
	bool has_ro;
	char *env[5]; /* owned, NULL-terminated */
	size_t n_env;
	uid_t run_uid;
	gid_t run_gid;
	/*
	 * sb is created on the first bash call by the running thread and read by
	 * al_tool_session_cancel from any other: the lock orders the two, so a
	 * cancel either finds the sandbox or is seen by the creator.
	 */
	pthread_mutex_t lock;
	struct al_sandbox *sb;
	int cancelled;	  /* atomic */
	int net_failures; /* atomic: egress records that could not be written */
	char sandbox_id[AL_ID_MAX];
	char features[160];
	char policy_hash[AL_SHA256_HEX];
	struct al_audit_ctx net_ctx; /* egress records: session and sandbox ids only */
};

/* One call in progress. */
struct call {
	struct al_tool_session *ts;
	struct al_audit_ctx ctx;
	struct al_tool_result *out;
	const char *tool;
};

int al_tool_is_owned(const char *name)
{
	static const char *const names[] = {"bash", "read", "write", "edit", "glob", "grep"};

	if (name == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return 1;
	return 0;
}

void al_tool_result_clear(struct al_tool_result *r)
{
	if (r == NULL)
		return;
	json_decref(r->content);
	memset(r, 0, sizeof(*r));
	r->exit_code = -1;
}

int al_tool_json_sha256(const json_t *v, char out[65])
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	int rc;

	if (s == NULL)
		return -ENOMEM;
	rc = al_sha256_hex(s, strlen(s), out);
	al_free(s); /* jansson allocates through al_malloc */
	return rc < 0 ? rc : 0;
}

static int64_t now_us(void)
{
	return (int64_t)(al_sandbox_now_ms() * 1000.0);
}

/* ---- text ---- */

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/*
 * Appends s to b as valid UTF-8, each invalid byte as U+FFFD (what Node's
 * utf8 decoding gives the SDK), so that any output can go into JSON.
 */
static int append_utf8(al_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	int rc = al_buf_reserve(b, n + 1);

	while (rc == 0 && i < n) {
		size_t k = utf8_seq(p + i, n - i);
		if (k > 0) {
			i += k;
			run += k;
			continue;
		}
		if ((rc = al_buf_append(b, p + i - run, run)) == 0)
			rc = al_buf_append(b, "\xef\xbf\xbd", 3);
		run = 0;
		i++;
	}
	if (rc == 0)
		rc = al_buf_append(b, p + i - run, run);
	return rc;
}

/* Sets the result's content to one text block (the SDK's "(no output)" when empty). */
static int set_text(struct al_tool_result *r, int is_error, const char *s, size_t n)
{
	al_buf b = {0};
	json_t *c = NULL;
	int rc = append_utf8(&b, s ? s : "", s ? n : 0);

	if (rc == 0 && b.len == 0)
		rc = al_buf_append_str(&b, "(no output)");
	if (rc == 0) {
		c = json_pack("[{s:s, s:s%}]", "type", "text", "text", b.data, b.len);
		rc = c ? 0 : -ENOMEM;
	}
	if (rc == 0) {
		json_decref(r->content);
		r->content = c;
		r->is_error = is_error;
	}
	al_buf_free(&b);
	return rc;
}

static int set_textf(struct al_tool_result *r, int is_error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_textf(struct al_tool_result *r, int is_error, const char *fmt, ...)
{
	al_buf b = {0};
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = al_buf_vappendf(&b, fmt, ap);
	va_end(ap);
	if (rc == 0)
		rc = set_text(r, is_error, b.data, b.len);
	al_buf_free(&b);
	return rc;
}

/* Drops ANSI CSI sequences (the SDK's /\x1b\[[0-9;?]*[ -/]*[@-~]/g) in place. */
static size_t strip_ansi(char *s, size_t n)
{
	size_t i = 0, o = 0;

	while (i < n) {
		if (s[i] == 0x1b && i + 1 < n && s[i + 1] == '[') {
			size_t j = i + 2;
			while (j < n &&
			       ((s[j] >= '0' && s[j] <= '9') || s[j] == ';' || s[j] == '?'))
				j++;
			while (j < n && s[j] >= ' ' && s[j] <= '/')
				j++;
			if (j < n && s[j] >= '@' && s[j] <= '~') {
				i = j + 1;
				continue;
			}
		}
		s[o++] = s[i++];
	}
	return o;
}

/* `p` as JSON.stringify writes it, for the SDK's "path \"p\" is outside ..." */
static int quoted(al_buf *b, const char *p)
{
	json_t *s = json_string(p);
	char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
	int rc = q ? al_buf_append_str(b, q) : al_buf_appendf(b, "\"%s\"", p);

	json_decref(s);
	al_free(q);
	return rc;
}

/* A fileops failure as the model should read it. */
static int fs_error(struct call *c, const char *path, int rc, const char *err)
{
	const char *t = c->tool;
	al_buf b = {0};
	int r;

	switch (rc) {
	case -EXDEV:
		r = al_buf_append_str(&b, "path ");
		if (r == 0)
			r = quoted(&b, path);
		if (r == 0)
			r = al_buf_append_str(
			    &b, c->ts->has_ro ? " is outside the session's working directory and "
						"its other permitted directories"
					      : " is outside the session's working directory");
		if (r == 0)
			r = set_text(c->out, 1, b.data, b.len);
		al_buf_free(&b);
		return r;
	case -ENOENT:
		return set_textf(c->out, 1, "%s: %s: no such file or directory", t, path);
	case -ENOTDIR:
		return set_textf(c->out, 1, "%s: %s: not a directory", t, path);
	case -EISDIR:
		return set_textf(c->out, 1, "%s: %s: is a directory", t, path);
	case -ENAMETOOLONG:
		return set_textf(c->out, 1, "%s: %s: file name too long", t, path);
	case -ENOSPC:
		return set_textf(c->out, 1, "%s: %s: no space left on device", t, path);
	case -EROFS:
		return set_textf(c->out, 1, "%s: %s is inside a read-only directory", t, path);
	case -ENOMEM:
		return -ENOMEM;
	default:
		if (err[0])
			return set_text(c->out, 1, err, strlen(err));
		return set_textf(c->out, 1, "%s: %s: %s", t, path, strerror(-rc));
	}
}

/* ---- input ---- */

/*
 * A string member: 1 present (non-empty unless allow_empty), 0 absent, null
 * or empty, -1 of another type.
 */
static int get_str(const json_t *in, const char *key, const char **s, size_t *len)
{
	json_t *v = json_object_get(in, key);

	*s = NULL;
	if (len)
		*len = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -1;
	*s = json_string_value(v);
	if (len)
		*len = json_string_length(v);
	return json_string_length(v) > 0 ? 1 : 0;
}

/* A boolean member: its value, 0 when absent or null, -1 of another type. */
static int get_bool(const json_t *in, const char *key)
{
	json_t *v = json_object_get(in, key);

	if (v == NULL || json_is_null(v))
		return 0;
	return json_is_boolean(v) ? json_is_true(v) : -1;
}

/* ---- audit ---- */

/* Writes and releases rec; 0 without a log. */
static int audit_put(struct al_tool_session *ts, json_t *rec)
{
	int rc;

	if (ts->audit == NULL) {
		json_decref(rec);
		return 0;
	}
	rc = rec ? al_audit_write(ts->audit, rec) : -ENOMEM;
	json_decref(rec);
	return rc;
}

/*
 * Makes the records written so far durable (tools.h, Durability). Shared
 * with other sessions' syncs (group commit in audit/log.c); no I/O when a
 * sync since covered them.
 */
static int audit_commit(struct al_tool_session *ts)
{
	return ts->audit ? al_audit_sync(ts->audit) : 0;
}

/* On the egress proxy's thread: a decision already taken can only be counted as unrecorded. */
static void egress_cb(const struct al_egress_decision *d, void *data)
{
	struct al_tool_session *ts = data;

	if (ts->audit == NULL)
		return;
	if (audit_put(ts, al_sandbox_audit_net(&ts->net_ctx, d)) < 0)
		__atomic_add_fetch(&ts->net_failures, 1, __ATOMIC_RELAXED);
}

/* A file record after write/edit: what was written, by size and hash. */
static void audit_file(struct call *c, enum al_audit_file_op op, const char *path, const void *data,
		       size_t len, int rc)
{
	struct al_audit_file f = {0};
	char sha[AL_SHA256_HEX];

	f.op = op;
	f.path = path;
	f.size = rc < 0 || data == NULL ? -1 : (int64_t)len;
	if (rc == 0 && data && al_sha256_hex(data, len, sha) == 0)
		f.sha256 = sha;
	f.failed = rc < 0;
	f.reason = rc < 0 ? strerror(-rc) : NULL;
	if (audit_put(c->ts, al_audit_rec_file(&c->ctx, &f)) < 0)
		c->out->audit_failed = 1;
}

/* ---- the sandbox ---- */

static size_t count_list(char **v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* SHA-256 of what the sandbox is allowed: the policy minus environment values. */
static int policy_hash(const struct al_sandbox_policy *p, const char *backend,
		       char out[AL_SHA256_HEX])
{
	json_t *o = json_pack("{s:s, s:s, s:[], s:[], s:[], s:I, s:I, s:I, s:I, s:I, s:I}",
			      "backend", backend, "workspace", p->workspace, "ro_paths", "env",
			      "egress_allow", "timeout_ms", (json_int_t)p->timeout_ms, "memory_mb",
			      (json_int_t)p->memory_mb, "pids", (json_int_t)p->pids, "cpu_pct",
			      (json_int_t)p->cpu_pct, "tmp_mb", (json_int_t)p->tmp_mb, "flags",
			      (json_int_t)p->flags);
	int rc = o ? 0 : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < p->n_ro; i++)
		rc = json_array_append_new(json_object_get(o, "ro_paths"),
					   json_string(p->ro_paths[i]));
	for (size_t i = 0; rc == 0 && i < p->n_env; i++) {
		const char *eq = strchr(p->env[i], '=');
		rc = json_array_append_new(
		    json_object_get(o, "env"),
		    json_stringn(p->env[i], eq ? (size_t)(eq - p->env[i]) : strlen(p->env[i])));
	}
	for (size_t i = 0; rc == 0 && i < p->n_egress; i++)
		rc = json_array_append_new(json_object_get(o, "egress_allow"),
					   json_string(p->egress_allow[i]));
	if (rc == 0)
		rc = al_tool_json_sha256(o, out);
	json_decref(o);
	return rc < 0 ? -ENOMEM : 0;
}

/*
 * Creates the session's sandbox (first bash call). -EIO with *audit_down
 * set when its launch record cannot be written: it is destroyed unused.
 */
static int ensure_sandbox(struct call *c, int *audit_down, char *err, size_t errlen)
{
	struct al_tool_session *ts = c->ts;
	const struct al_worker_config *cfg = ts->cfg;
	const struct al_sandbox_backend_ops *ops =
	    cfg->backend ? cfg->backend : &al_sandbox_native_ops;
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	json_t *fields;
	int rc;

	if (ts->sb && !al_sandbox_is_broken(ts->sb))
		return 0;
	if (ts->sb) {
		/* Torn down by force after a wedged kill (sandbox.h): start afresh. */
		pthread_mutex_lock(&ts->lock);
		sb = ts->sb;
		ts->sb = NULL;
		pthread_mutex_unlock(&ts->lock);
		al_sandbox_free(sb);
		sb = NULL;
	}
	al_sandbox_policy_init(&p);
	p.workspace = ts->workspace;
	p.ro_paths = (const char *const *)cfg->ro_paths;
	p.n_ro = count_list(cfg->ro_paths);
	p.env = (const char *const *)ts->env;
	p.n_env = ts->n_env;
	p.egress_allow = (const char *const *)cfg->allow_hosts;
	p.n_egress = count_list(cfg->allow_hosts);
	p.egress_cb = egress_cb;
	p.egress_cb_data = ts;
	p.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : BASH_TIMEOUT_MS;
	/* Zero in the config: the engine's defaults (a limit is never silently dropped). */
	if (cfg->memory_mb)
		p.memory_mb = cfg->memory_mb;
	if (cfg->pids)
		p.pids = cfg->pids;
	if (cfg->tmp_mb)
		p.tmp_mb = cfg->tmp_mb;
	p.cpu_pct = cfg->cpu_pct;
	if (cfg->allow_degraded)
		p.flags |= AL_SANDBOX_ALLOW_DEGRADED;
	if ((rc = policy_hash(&p, ops->name, ts->policy_hash)) < 0) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	if ((rc = al_sandbox_new(ops, &p, &sb, err, errlen)) < 0)
		return rc;
	al_sandbox_audit_features(sb, ts->features, sizeof(ts->features));
	c->ctx.sandbox_id = ts->sandbox_id;
	c->ctx.features = ts->features;
	c->ctx.policy_hash = ts->policy_hash;
	fields =
	    json_pack("{s:s, s:b, s:i, s:s, s:I}", "backend", ops->name, "seccomp", sb->seccomp,
		      "landlock_abi", sb->landlock_abi, "limits", al_limits_mode_name(sb->limits),
		      "setup_us", (json_int_t)(sb->setup_ms * 1000.0));
	if (audit_put(ts, al_audit_rec_event(&c->ctx, "sandbox.launch", 0, fields)) < 0) {
		al_sandbox_free(sb);
		*audit_down = 1;
		snprintf(err, errlen, AUDIT_UNAVAILABLE);
		return -EIO;
	}
	pthread_mutex_lock(&ts->lock);
	ts->sb = sb;
	if (__atomic_load_n(&ts->cancelled, __ATOMIC_SEQ_CST))
		al_sandbox_cancel(sb);
	pthread_mutex_unlock(&ts->lock);
	return 0;
}

/* ---- the tools ---- */

/* The SDK's bash text: the last 100 KiB, ANSI stripped, trailing newlines dropped. */
static int bash_text(const struct al_sandbox_result *res, al_buf *b)
{
	const struct al_sandbox_stream *s = &res->out;
	const char *from;
	size_t n, skip = 0;
	bool cut = s->truncated;
	int rc;

	/* Truncated: the ring holds exactly the last BASH_OUTPUT bytes. */
	from = cut ? s->tail : s->head;
	n = cut ? s->tail_len : s->head_len;
	if (n > BASH_OUTPUT) {
		from += n - BASH_OUTPUT;
		n = BASH_OUTPUT;
		cut = true;
	}
	/* Do not start the kept tail inside a character. */
	while (cut && skip < 3 && skip < n && ((unsigned char)from[skip] & 0xc0) == 0x80)
		skip++;
	if ((rc = al_buf_append(b, from + skip, n - skip)) < 0)
		return rc;
	b->len = strip_ansi(b->data, b->len);
	while (b->len && b->data[b->len - 1] == '\n')
		b->len--;
	b->data[b->len] = '\0';
	if (cut) {
		al_buf t = {0};
		if ((rc = al_buf_append_str(&t, "[output truncated]\n")) == 0 &&
		    (rc = al_buf_append(&t, b->data, b->len)) == 0) {
			al_buf_free(b);
			*b = t;
			return 0;
		}
		al_buf_free(&t);
	}
	return rc;
}

static int tool_bash(struct call *c, const json_t *in)
{
	static const char *const argv[] = {"bash", NULL};
	struct al_tool_session *ts = c->ts;
	struct al_sandbox_result res;
	struct al_sandbox_exec_opts o = {0};
	struct al_audit_proc pr = {0};
	const char *cmd;
	json_t *tv = json_object_get(in, "timeout_ms");
	unsigned cap = ts->cfg->timeout_ms ? ts->cfg->timeout_ms : BASH_TIMEOUT_MS, timeout = cap;
	int has_cmd = get_str(in, "command", &cmd, NULL), restart = get_bool(in, "restart");
	int rc, audit_down = 0;
	char err[512] = "";
	al_buf b = {0};

	memset(&res, 0, sizeof(res));
	if (has_cmd < 0)
		return set_textf(c->out, 1, "bash: command must be a string");
	if (restart < 0)
		return set_textf(c->out, 1, "bash: restart must be a boolean");
	if (tv && !json_is_null(tv)) {
		if (!json_is_integer(tv) || json_integer_value(tv) <= 0)
			return set_textf(c->out, 1, "bash: timeout_ms must be a positive integer");
		if ((unsigned long long)json_integer_value(tv) < cap)
			timeout = (unsigned)json_integer_value(tv);
	}
	if (restart && ts->sb)
		al_sandbox_shell_reset(ts->sb);
	if (!has_cmd) {
		if (restart)
			return set_textf(c->out, 0, "bash session restarted");
		return set_textf(c->out, 1, "bash: command is required");
	}
	if ((rc = ensure_sandbox(c, &audit_down, err, sizeof(err))) < 0) {
		if (audit_down) {
			c->out->audit_failed = 1;
			return set_textf(c->out, 1, AUDIT_UNAVAILABLE);
		}
		if (rc == -ENOMEM)
			return rc;
		return set_textf(c->out, 1, "bash: the sandbox could not be created: %s", err);
	}
	c->ctx.sandbox_id = ts->sandbox_id;
	c->ctx.features = ts->features;
	c->ctx.policy_hash = ts->policy_hash;
	pr.argv = argv;
	pr.cwd = ts->workspace;
	pr.env = (const char *const *)ts->env;
	if (audit_put(ts, al_audit_rec_process_launch(&c->ctx, &pr)) < 0 || audit_commit(ts) < 0) {
		c->out->audit_failed = 1;
		return set_textf(c->out, 1, AUDIT_UNAVAILABLE);
	}
	o.timeout_ms = timeout;
	o.output_limit = 2 * BASH_OUTPUT; /* head + a tail of exactly BASH_OUTPUT */
	rc = al_sandbox_shell(ts->sb, cmd, &o, &res, err, sizeof(err));
	if (rc == -ECANCELED) {
		if ((rc = set_textf(c->out, 1, "bash: cancelled")) == 0)
			rc = -ECANCELED;
		goto done;
	}
	if (rc < 0) {
		rc = rc == -ENOMEM ? rc : set_textf(c->out, 1, "bash: %s", err);
		goto done;
	}
	if (audit_put(ts, al_sandbox_audit_exit(&c->ctx, &pr, &res)) < 0)
		c->out->audit_failed = 1;
	c->out->exit_code = al_sandbox_result_status(&res);
	if (res.cancelled) {
		if ((rc = set_textf(c->out, 1, "bash: cancelled")) == 0)
			rc = -ECANCELED;
		goto done;
	}
	if (res.timed_out) {
		/* As the SDK: the next command gets a fresh shell in the workspace. */
		al_sandbox_shell_reset(ts->sb);
		rc = set_textf(c->out, 1, "bash: bash command timed out after %ums", timeout);
		goto done;
	}
	if ((rc = bash_text(&res, &b)) < 0)
		goto done;
	if (c->out->exit_code != 0 && b.len == 0)
		rc = set_textf(c->out, 1, "exit %d", c->out->exit_code);
	else
		rc = set_text(c->out, c->out->exit_code != 0, b.data, b.len);
done:
	al_buf_free(&b);
	al_sandbox_result_clear(&res);
	return rc;
}

static int tool_read(struct call *c, const json_t *in)
{
	struct al_fileops_limits lim = {.read_max = READ_MAX};
	struct al_fileops_out o = {0};
	struct al_fileops_range r = {1, -1};
	const char *path;
	json_t *vr = json_object_get(in, "view_range");
	bool ranged = false;
	long a = 0, z = 0;
	char err[512] = "";
	int rc;

	if (get_str(in, "file_path", &path, NULL) <= 0)
		return set_textf(c->out, 1, "read: file_path is required");
	if (vr && !json_is_null(vr) && !(json_is_array(vr) && json_array_size(vr) == 0)) {
		if (!json_is_array(vr) || json_array_size(vr) != 2 ||
		    !json_is_integer(json_array_get(vr, 0)) ||
		    !json_is_integer(json_array_get(vr, 1)))
			return set_textf(c->out, 1,
					 "read: view_range must be [start_line, end_line]");
		a = (long)json_integer_value(json_array_get(vr, 0));
		z = (long)json_integer_value(json_array_get(vr, 1));
		/* The SDK's slice: a start below 1 is 1, an end of 0 or less is the end. */
		r.start = a < 1 ? 1 : a;
		r.end = z > 0 ? z : -1;
		ranged = true;
		if (r.end != -1 && r.end < r.start)
			return set_text(c->out, 0, "", 0);
	}
	rc = al_fileops_read(c->ts->root, path, ranged ? &r : NULL, &o, &lim, err, sizeof(err));
	if (rc < 0) {
		rc = fs_error(c, path, rc, err);
		goto done;
	}
	if (o.truncated) {
		if (!ranged)
			rc = set_textf(c->out, 1,
				       "read: %s is %llu bytes, exceeds %u-byte limit. Use the "
				       "view_range parameter to read specific line ranges, e.g. "
				       "view_range: [1, 500].",
				       path, o.size, READ_MAX);
		else
			rc = set_textf(c->out, 1,
				       "read: view_range [%ld, %ld] of %s exceeds %u-byte limit. "
				       "Narrow the view_range to read a smaller portion.",
				       a, z, path, READ_MAX);
		goto done;
	}
	/* Lines joined by '\n' as the SDK does: no newline after a range's last line. */
	if (ranged && r.end != -1 && o.count >= (size_t)(r.end - r.start + 1) && o.text.len &&
	    o.text.data[o.text.len - 1] == '\n')
		o.text.len--;
	rc = set_text(c->out, 0, o.text.data, o.text.len);
done:
	al_fileops_out_free(&o);
	return rc;
}

static int tool_write(struct call *c, const json_t *in)
{
	const char *path, *data;
	size_t len;
	char err[512] = "";
	int rc;

	if (get_str(in, "file_path", &path, NULL) <= 0)
		return set_textf(c->out, 1, "write: file_path is required");
	if (get_str(in, "content", &data, &len) < 0)
		return set_textf(c->out, 1, "write: content must be a string");
	if (data == NULL)
		data = "";
	rc = al_fileops_write(c->ts->root, path, data, len, NULL, err, sizeof(err));
	audit_file(c, AL_AUDIT_FILE_CREATE, path, data, len, rc);
	if (rc < 0)
		return fs_error(c, path, rc, err);
	return set_textf(c->out, 0, "wrote %zu bytes to %s", len, path);
}

/* The file as the edit left it, for its size and hash in the audit record. */
static void audit_edit(struct call *c, const char *path, int rc)
{
	struct al_fileops_limits lim = {.read_max = 16u << 20};
	struct al_fileops_out o = {0};
	char err[256];

	/*
	 * An edit leaves at most 16 MiB, but a command of the session may have
	 * grown the file since: over the cap it is recorded without size or hash
	 * (a prefix's hash would claim to be the file's).
	 */
	if (rc >= 0 && al_fileops_read(c->ts->root, path, NULL, &o, &lim, err, sizeof(err)) == 0 &&
	    !o.truncated)
		audit_file(c, AL_AUDIT_FILE_UPDATE, path, o.text.data, o.text.len, 0);
	else
		audit_file(c, AL_AUDIT_FILE_UPDATE, path, NULL, 0, rc < 0 ? rc : 0);
	al_fileops_out_free(&o);
}

static int tool_edit(struct call *c, const json_t *in)
{
	const char *path, *olds, *news;
	int all = get_bool(in, "replace_all"), rc;
	char err[512] = "";

	if (get_str(in, "file_path", &path, NULL) <= 0)
		return set_textf(c->out, 1, "edit: file_path is required");
	if (get_str(in, "old_string", &olds, NULL) <= 0)
		return set_textf(c->out, 1, "edit: old_string is required");
	if (get_str(in, "new_string", &news, NULL) < 0 || news == NULL)
		return set_textf(c->out, 1, "edit: new_string must be a string");
	if (all < 0)
		return set_textf(c->out, 1, "edit: replace_all must be a boolean");
	if (strcmp(olds, news) == 0)
		return set_textf(c->out, 1, "edit: old_string and new_string are the same");
	rc = al_fileops_edit(c->ts->root, path, olds, news, all == 1, NULL, err, sizeof(err));
	if (rc == -ENOENT && strstr(err, "old_string not found")) {
		audit_edit(c, path, rc);
		return set_textf(c->out, 1, "edit: old_string not found in %s", path);
	}
	if (rc == -ENOTUNIQ) {
		const char *k = strstr(err, "occurs ");
		long n = k ? strtol(k + 7, NULL, 10) : 0;
		audit_edit(c, path, rc);
		return set_textf(c->out, 1,
				 "edit: old_string appears %ld times in %s (must be unique)", n,
				 path);
	}
	audit_edit(c, path, rc);
	if (rc < 0)
		return fs_error(c, path, rc, err);
	return set_textf(c->out, 0, "edited %s (%d replacement(s))", path, rc);
}

/* The SDK's patternCanAscend: a ".." between any of / \ { } , */
static bool can_ascend(const char *p)
{
	for (const char *s = p; *s;) {
		size_t n = strcspn(s, "/\\{},");
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return true;
		s += n;
		if (*s)
			s++;
	}
	return false;
}

/* fileops lists one path per line: the SDK joins them without a final newline. */
static void chomp(struct al_fileops_out *o)
{
	if (o->text.len && o->text.data[o->text.len - 1] == '\n')
		o->text.data[--o->text.len] = '\0';
}

static int tool_glob(struct call *c, const json_t *in)
{
	struct al_fileops_limits lim = {.glob_max = GLOB_MAX, .glob_files_only = true};
	struct al_fileops_out o = {0};
	const char *pat, *dir;
	char err[512] = "";
	int rc;

	if (get_str(in, "pattern", &pat, NULL) <= 0)
		return set_textf(c->out, 1, "glob: pattern is required");
	if (pat[0] == '/')
		return set_textf(c->out, 1,
				 "glob: absolute pattern not permitted; pass a relative pattern "
				 "(and optionally path)");
	if (can_ascend(pat))
		return set_textf(c->out, 1, "glob: \"..\" is not permitted in the pattern");
	if (get_str(in, "path", &dir, NULL) < 0)
		return set_textf(c->out, 1, "glob: path must be a string");
	rc = al_fileops_glob(c->ts->root, pat, dir, &o, &lim, err, sizeof(err));
	if (rc < 0) {
		rc = fs_error(c, dir ? dir : ".", rc, err);
		goto done;
	}
	chomp(&o);
	rc = o.text.len ? set_text(c->out, 0, o.text.data, o.text.len)
			: set_textf(c->out, 0, "no matches");
done:
	al_fileops_out_free(&o);
	return rc;
}

static int tool_grep(struct call *c, const json_t *in)
{
	struct al_fileops_limits lim = {.grep_max = GREP_MAX};
	struct al_fileops_out o = {0};
	const char *pat, *path;
	char err[512] = "";
	int rc;

	if (get_str(in, "pattern", &pat, NULL) <= 0)
		return set_textf(c->out, 1, "grep: pattern is required");
	if (get_str(in, "path", &path, NULL) < 0)
		return set_textf(c->out, 1, "grep: path must be a string");
	rc = al_fileops_grep(c->ts->root, pat, path, &o, &lim, err, sizeof(err));
	if (rc < 0) {
		rc = fs_error(c, path ? path : ".", rc, err);
		goto done;
	}
	chomp(&o);
	if (o.text.len == 0)
		rc = set_textf(c->out, 0, "no matches");
	else if (o.truncated)
		rc = set_textf(c->out, 0, "%s\n[output truncated at %u bytes]", o.text.data,
			       GREP_MAX);
	else
		rc = set_text(c->out, 0, o.text.data, o.text.len);
done:
	al_fileops_out_free(&o);
	return rc;
}

/* ---- sessions ---- */

static int id_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-') ||
		    n >= SESSION_ID_MAX)
			return 0;
	return n > 0;
}

/* Creates (or reuses) <workdir>/<id>: a real directory, 0700, owned by the sandbox's uid. */
static int make_workspace(struct al_tool_session *ts, char *err, size_t errlen)
{
	char canon[PATH_MAX], ws[PATH_MAX];
	struct stat st;
	int fd = -1, rc = 0;

	if (ts->cfg->workdir == NULL || ts->cfg->workdir[0] != '/') {
		snprintf(err, errlen, "the work directory must be an absolute path");
		return -EINVAL;
	}
	/* 0711: the sandbox's uid must be able to pass through to its workspace. */
	if (mkdir(ts->cfg->workdir, 0711) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "work directory %s: %s", ts->cfg->workdir, strerror(errno));
		return rc;
	}
	if (realpath(ts->cfg->workdir, canon) == NULL) {
		rc = -errno;
		snprintf(err, errlen, "work directory %s: %s", ts->cfg->workdir, strerror(errno));
		return rc;
	}
	if ((size_t)snprintf(ws, sizeof(ws), "%s/%s", canon, ts->session_id) >= sizeof(ws)) {
		snprintf(err, errlen, "workspace path too long");
		return -ENAMETOOLONG;
	}
	if (mkdir(ws, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "workspace %s: %s", ws, strerror(errno));
		return rc;
	}
	/* O_NOFOLLOW: a symbolic link planted at the name is refused, never followed. */
	fd = open(ws, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "workspace %s: %s", ws, strerror(errno));
		goto done;
	}
	if (geteuid() == 0 && (st.st_uid != ts->run_uid || st.st_gid != ts->run_gid) &&
	    fchown(fd, ts->run_uid, ts->run_gid) < 0) {
		rc = -errno;
		snprintf(err, errlen, "workspace %s: chown: %s", ws, strerror(errno));
		goto done;
	}
	if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0) {
		rc = -errno;
		snprintf(err, errlen, "workspace %s: chmod: %s", ws, strerror(errno));
		goto done;
	}
	if ((ts->workspace = al_strdup(ws)) == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
	}
done:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* An operator's workspace (al_tool_session_open_dir): checked, taken as it is. */
static int use_workspace(struct al_tool_session *ts, const char *dir, char *err, size_t errlen)
{
	char canon[PATH_MAX];
	struct stat st;
	int fd = -1, rc = 0;

	/* O_NOFOLLOW before realpath: a link planted at the name is refused, not resolved. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || realpath(dir, canon) == NULL) {
		rc = -errno;
		snprintf(err, errlen, "workspace %s: %s", dir, strerror(errno));
		goto done;
	}
	if ((ts->workspace = al_strdup(canon)) == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
	}
done:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int make_env(struct al_tool_session *ts)
{
	char home[PATH_MAX + 8];
	const char *src[4];

	snprintf(home, sizeof(home), "HOME=%s", ts->workspace);
	src[0] = SANDBOX_PATH;
	src[1] = home;
	src[2] = "LANG=C.UTF-8";
	src[3] = "TERM=dumb";
	for (size_t i = 0; i < 4; i++) {
		/* Never an ANTHROPIC_* (or other credential-shaped) variable, by construction and
		 * by check. */
		if (!al_sandbox_env_allowed(src[i]))
			continue;
		if ((ts->env[ts->n_env] = al_strdup(src[i])) == NULL)
			return -ENOMEM;
		ts->n_env++;
	}
	return 0;
}

static int open_session(const struct al_worker_config *cfg, const char *session_id, const char *dir,
			al_audit_log *audit, struct al_tool_session **out, char *err, size_t errlen)
{
	struct al_tool_session *ts = NULL;
	int rc;

	*out = NULL;
	if (!id_ok(session_id)) {
		snprintf(err, errlen, "unsafe session id: only [A-Za-z0-9_-], 1 to %u characters",
			 SESSION_ID_MAX);
		return -EINVAL;
	}
	if ((ts = al_calloc(1, sizeof(*ts))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&ts->lock, NULL);
	ts->cfg = cfg;
	ts->audit = audit;
	ts->run_uid = geteuid() == 0 ? NOBODY : geteuid();
	ts->run_gid = geteuid() == 0 ? NOBODY : getegid();
	if ((ts->session_id = al_strdup(session_id)) == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = dir ? use_workspace(ts, dir, err, errlen) : make_workspace(ts, err, errlen)) < 0)
		goto fail;
	if ((rc = al_fileops_open_root(ts->workspace, &ts->root)) < 0) {
		snprintf(err, errlen, "workspace %s: %s", ts->workspace, strerror(-rc));
		goto fail;
	}
	for (size_t i = 0; cfg->ro_paths && cfg->ro_paths[i]; i++) {
		if ((rc = al_fileops_add_root(ts->root, cfg->ro_paths[i], true)) < 0) {
			snprintf(err, errlen, "read-only path %s: %s", cfg->ro_paths[i],
				 strerror(-rc));
			goto fail;
		}
		ts->has_ro = true;
	}
	if ((rc = make_env(ts)) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (al_id_new("sbx", ts->sandbox_id, sizeof(ts->sandbox_id)) < 0)
		snprintf(ts->sandbox_id, sizeof(ts->sandbox_id), "sbx_unknown");
	ts->net_ctx.session_id = ts->session_id;
	ts->net_ctx.sandbox_id = ts->sandbox_id;
	*out = ts;
	return 0;
fail:
	al_tool_session_close(ts);
	return rc;
}

int al_tool_session_open(const struct al_worker_config *cfg, const char *session_id,
			 al_audit_log *audit, struct al_tool_session **out, char *err,
			 size_t errlen)
{
	return open_session(cfg, session_id, NULL, audit, out, err, errlen);
}

int al_tool_session_open_dir(const struct al_worker_config *cfg, const char *session_id,
			     const char *workspace, al_audit_log *audit,
			     struct al_tool_session **out, char *err, size_t errlen)
{
	return open_session(cfg, session_id, workspace, audit, out, err, errlen);
}

void al_tool_session_cancel(struct al_tool_session *ts)
{
	if (ts == NULL)
		return;
	__atomic_store_n(&ts->cancelled, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&ts->lock);
	if (ts->sb)
		al_sandbox_cancel(ts->sb);
	pthread_mutex_unlock(&ts->lock);
}

void al_tool_session_close(struct al_tool_session *ts)
{
	if (ts == NULL)
		return;
	/* Joins the egress thread too: no callback into ts runs after this. */
	al_sandbox_free(ts->sb);
	al_fileops_close_root(ts->root);
	for (size_t i = 0; i < ts->n_env; i++)
		al_free(ts->env[i]);
	al_free(ts->workspace);
	al_free(ts->session_id);
	pthread_mutex_destroy(&ts->lock);
	al_free(ts);
}

int al_tool_session_run(struct al_tool_session *ts, const char *work_id, const char *tool_use_id,
			const char *name, const json_t *input, struct al_tool_result *out)
{
	struct call c = {0};
	json_t *empty = NULL, *fields;
	int64_t t0 = now_us();
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->exit_code = -1;
	c.ts = ts;
	c.out = out;
	c.tool = name ? name : "";
	c.ctx.session_id = ts->session_id;
	c.ctx.work_id = work_id;
	c.ctx.tool_call_id = tool_use_id;
	if (ts->sb) {
		c.ctx.sandbox_id = ts->sandbox_id;
		c.ctx.features = ts->features;
		c.ctx.policy_hash = ts->policy_hash;
	}
	if (input == NULL)
		input = empty = json_object();
	if (input == NULL || al_tool_json_sha256(input, out->input_sha256) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	if (__atomic_load_n(&ts->cancelled, __ATOMIC_SEQ_CST)) {
		if ((rc = set_textf(out, 1, "%s: cancelled", c.tool)) == 0)
			rc = -ECANCELED;
		goto hash;
	}
	/* Nothing runs unless its start is on record. */
	fields = json_pack("{s:s, s:s}", "tool", c.tool, "input_sha256", out->input_sha256);
	/* bash syncs after its process launch record, just before the shell runs. */
	if (audit_put(ts, al_audit_rec_event(&c.ctx, "tool.start", 0, fields)) < 0 ||
	    ((strcmp(c.tool, "write") == 0 || strcmp(c.tool, "edit") == 0) &&
	     audit_commit(ts) < 0)) {
		out->audit_failed = 1;
		rc = set_textf(out, 1, AUDIT_UNAVAILABLE);
		goto hash;
	}
	if (!json_is_object(input))
		rc = set_textf(out, 1, "%s: input must be a JSON object", c.tool);
	else if (strcmp(c.tool, "bash") == 0)
		rc = tool_bash(&c, input);
	else if (strcmp(c.tool, "read") == 0)
		rc = tool_read(&c, input);
	else if (strcmp(c.tool, "write") == 0)
		rc = tool_write(&c, input);
	else if (strcmp(c.tool, "edit") == 0)
		rc = tool_edit(&c, input);
	else if (strcmp(c.tool, "glob") == 0)
		rc = tool_glob(&c, input);
	else if (strcmp(c.tool, "grep") == 0)
		rc = tool_grep(&c, input);
	else
		rc = set_textf(out, 1, "unknown tool: %s", c.tool);
	if (rc < 0 && rc != -ECANCELED)
		goto done;
	out->duration_us = now_us() - t0;
	if (out->content == NULL || al_tool_json_sha256(out->content, out->result_sha256) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	fields = json_pack("{s:s, s:s, s:s, s:b, s:I}", "tool", c.tool, "input_sha256",
			   out->input_sha256, "result_sha256", out->result_sha256, "is_error",
			   out->is_error, "duration_us", (json_int_t)out->duration_us);
	if (fields && strcmp(c.tool, "bash") == 0 && out->exit_code >= 0)
		json_object_set_new(fields, "exit_status", json_integer(out->exit_code));
	if (fields && rc == -ECANCELED)
		json_object_set_new(fields, "cancelled", json_true());
	/*
	 * Written, not synced: the result may leave the host before this record
	 * is on disk (tools.h, Durability). It survives a crash of the process
	 * (page cache); the caller syncs it off the critical path once the
	 * result is posted, and the next pre-action sync (any session's) or
	 * close covers it too. Only a power cut in between can lose it, and
	 * then the synced tool.start / launch records still show the call ran.
	 */
	if (audit_put(ts, al_audit_rec_event(&c.ctx, "tool.call", out->is_error, fields)) < 0)
		out->audit_failed = 1;
	if (__atomic_exchange_n(&ts->net_failures, 0, __ATOMIC_RELAXED))
		out->audit_failed = 1;
	goto done;
hash:
	out->duration_us = now_us() - t0;
	if (rc != -ENOMEM &&
	    (out->content == NULL || al_tool_json_sha256(out->content, out->result_sha256) < 0))
		rc = -ENOMEM;
done:
	json_decref(empty);
	if (rc == -ENOMEM && out->content == NULL)
		set_textf(out, 1, "%s: out of memory", c.tool); /* best effort */
	return rc < 0 ? rc : 0;
}
