/*
 * config.c - the worker's configuration: defaults, a YAML file, the
 * environment and flags, in that order of precedence, then one validation.
 *
 * Every option has one name (its YAML key) and one parser, so a flag, a file
 * entry and an environment variable are checked by the same code and give
 * the same messages. The environment key never comes from a flag (argv is
 * world-readable through /proc) nor inline in the file (config files get
 * copied into tickets and repositories); a file holding only the key, mode
 * 0600, is accepted because that is what systemd credentials give us.
 */
#include "worker/worker.h"

#include "core/alloc.h"
#include "core/fd.h"
#include "core/hash.h"
#include "core/rand.h"
#include "sandbox/netpolicy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_FILE_MAX (1u << 20) /* a config file is a few hundred bytes */
#define KEY_FILE_MAX	4096u
#define ID_MAX		128u
#define LIST_MAX	256u
#define CREDENTIAL_NAME "environment-key"
#define DAY_S		86400ul

enum opt_type {
	T_STR,	   /* char * */
	T_UINT,	   /* unsigned */
	T_ULONG,   /* unsigned long */
	T_BOOL,	   /* int */
	T_LIST,	   /* char ** */
	T_LOGFMT,  /* enum al_worker_log_format */
	T_BACKEND, /* const struct al_sandbox_backend_ops * */
	T_KEYFILE, /* reads environment_key */
};

enum opt_section { S_TOP, S_SANDBOX };

struct opt {
	const char *name;
	enum opt_section section;
	enum opt_type type;
	size_t off;
	unsigned long min, max; /* numbers, in the unit the user writes */
	unsigned long scale;	/* stored = written * scale (seconds -> ms) */
};

#define F(field) offsetof(struct al_worker_config, field)

static const struct opt opts[] = {
    {"base_url", S_TOP, T_STR, F(base_url), 0, 0, 1},
    {"environment_id", S_TOP, T_STR, F(environment_id), 0, 0, 1},
    {"environment_key_file", S_TOP, T_KEYFILE, F(environment_key), 0, 0, 1},
    {"worker_id", S_TOP, T_STR, F(worker_id), 0, 0, 1},
    {"workdir", S_TOP, T_STR, F(workdir), 0, 0, 1},
    {"state_dir", S_TOP, T_STR, F(state_dir), 0, 0, 1},
    {"audit", S_TOP, T_STR, F(audit_path), 0, 0, 1},
    {"audit_key", S_TOP, T_STR, F(audit_key), 0, 0, 1},
    {"ca_file", S_TOP, T_STR, F(ca_file), 0, 0, 1},
    {"on_work", S_TOP, T_STR, F(on_work), 0, 0, 1},
    {"on_work_env_key", S_TOP, T_BOOL, F(on_work_env_key), 0, 0, 1},
    {"workspace_ttl", S_TOP, T_UINT, F(workspace_ttl_s), 0, 365 * DAY_S, 1},
    {"max_idle", S_TOP, T_UINT, F(max_idle_s), 1, 7 * DAY_S, 1},
    {"max_sessions", S_TOP, T_UINT, F(max_sessions), 1, 1024, 1},
    {"block_ms", S_TOP, T_UINT, F(block_ms), 1, 999, 1},
    {"reclaim_older_than_ms", S_TOP, T_ULONG, F(reclaim_older_than_ms), 0, 7 * DAY_S * 1000, 1},
    {"heartbeat_ttl", S_TOP, T_UINT, F(heartbeat_ttl_s), 10, 3600, 1},
    {"shutdown_grace", S_TOP, T_UINT, F(shutdown_grace_s), 0, 3600, 1},
    {"log_format", S_TOP, T_LOGFMT, F(log_format), 0, 0, 1},
    {"backend", S_SANDBOX, T_BACKEND, F(backend), 0, 0, 1},
    {"allow_hosts", S_SANDBOX, T_LIST, F(allow_hosts), 0, 0, 1},
    {"ro_paths", S_SANDBOX, T_LIST, F(ro_paths), 0, 0, 1},
    {"timeout", S_SANDBOX, T_UINT, F(timeout_ms), 0, DAY_S, 1000},
    {"memory_mb", S_SANDBOX, T_UINT, F(memory_mb), 0, 1u << 20, 1},
    {"pids", S_SANDBOX, T_UINT, F(pids), 0, 1u << 22, 1},
    {"cpu_pct", S_SANDBOX, T_UINT, F(cpu_pct), 0, AL_SANDBOX_MAX_CPU_PCT, 1},
    {"tmp_mb", S_SANDBOX, T_UINT, F(tmp_mb), 1, 1u << 20, 1},
    {"allow_degraded", S_SANDBOX, T_BOOL, F(allow_degraded), 0, 0, 1},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const struct opt *opt_find(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

static void list_free(char **l)
{
	if (l == NULL)
		return;
	for (char **p = l; *p; p++)
		al_free(*p);
	al_free(l);
}

static size_t list_len(char *const *l)
{
	size_t n = 0;

	while (l && l[n])
		n++;
	return n;
}

void al_worker_config_init(struct al_worker_config *c)
{
	memset(c, 0, sizeof(*c));
	c->max_idle_s = AL_WORKER_DEFAULT_MAX_IDLE_S;
	c->max_sessions = AL_WORKER_DEFAULT_MAX_SESSIONS;
	c->block_ms = 999;
	c->heartbeat_ttl_s = 90;
	c->shutdown_grace_s = 30;
	c->log_format = AL_WORKER_LOG_TEXT;
	c->backend = &al_sandbox_native_ops;
	c->timeout_ms = AL_SANDBOX_DEFAULT_TIMEOUT_MS;
	c->memory_mb = AL_SANDBOX_DEFAULT_MEMORY_MB;
	c->pids = AL_SANDBOX_DEFAULT_PIDS;
	c->cpu_pct = 0;
	c->tmp_mb = AL_SANDBOX_DEFAULT_TMP_MB;
}

void al_worker_item_clear(struct al_worker_item *it)
{
	al_free(it->work_id);
	al_free(it->environment_id);
	al_free(it->session_id);
	al_free_secret_str(it->secret);
	memset(it, 0, sizeof(*it));
}

void al_worker_config_clear(struct al_worker_config *c)
{
	al_free(c->base_url);
	al_free(c->environment_id);
	al_free_secret_str(c->environment_key);
	al_free(c->worker_id);
	al_free(c->workdir);
	al_free(c->state_dir);
	al_free(c->audit_path);
	al_free(c->audit_key);
	al_free(c->ca_file);
	al_free(c->on_work);
	list_free(c->allow_hosts);
	list_free(c->ro_paths);
	al_worker_config_init(c);
}

/* Decimal only, no sign, no spaces, no suffix: "010" is 10, "1e3" and "-1" are errors. */
static int parse_ulong(const char *s, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -ERANGE;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

/* Printable ASCII without spaces: what may go in a URL path segment or a header. */
static int id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return 0;
	}
	return 1;
}

/*
 * Reads the environment key from a file: regular, not group/other
 * accessible (a key others can read is already leaked), owned by us or root,
 * one line. Trailing whitespace (the editor's newline) is dropped.
 */
static int read_key_file(const char *path, char **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = -1, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, "environment_key_file %s: %s", path, strerror(-rc));
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		set_err(err, errlen, "environment_key_file %s: %s", path, strerror(-rc));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		set_err(err, errlen, "environment_key_file %s: not a regular file", path);
		goto fail;
	}
	if (st.st_mode & 077) {
		rc = -EPERM;
		set_err(err, errlen,
			"environment_key_file %s: mode %03o lets group or others read it (chmod "
			"600)",
			path, (unsigned)(st.st_mode & 0777));
		goto fail;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		rc = -EPERM;
		set_err(err, errlen, "environment_key_file %s: owned by uid %u, not by us or root",
			path, (unsigned)st.st_uid);
		goto fail;
	}
	if (st.st_size <= 0 || (unsigned long long)st.st_size > KEY_FILE_MAX) {
		rc = -EINVAL;
		set_err(err, errlen, "environment_key_file %s: empty or larger than %u bytes", path,
			KEY_FILE_MAX);
		goto fail;
	}
	buf = al_malloc(KEY_FILE_MAX + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	while (len < KEY_FILE_MAX && (n = read(fd, buf + len, KEY_FILE_MAX - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			set_err(err, errlen, "environment_key_file %s: %s", path, strerror(-rc));
			goto fail;
		}
		len += (size_t)n;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
			   buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (ch <= ' ' || ch >= 0x7f) {
			rc = -EINVAL;
			set_err(err, errlen,
				"environment_key_file %s: the key must be one line of printable "
				"characters",
				path);
			goto fail;
		}
	}
	if (len == 0) {
		rc = -EINVAL;
		set_err(err, errlen, "environment_key_file %s: empty", path);
		goto fail;
	}
	*out = buf;
	buf = NULL;
	rc = 0;
fail:
	if (buf != NULL)
		al_free_secret(buf, KEY_FILE_MAX + 1);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int list_append(char ***lp, const char *v)
{
	size_t n = list_len(*lp);
	char **l;
	char *dup;

	if (n >= LIST_MAX)
		return -E2BIG;
	dup = al_strdup(v);
	if (dup == NULL)
		return -ENOMEM;
	l = al_realloc(*lp, (n + 2) * sizeof(*l));
	if (l == NULL) {
		al_free(dup);
		return -ENOMEM;
	}
	l[n] = dup;
	l[n + 1] = NULL;
	*lp = l;
	return 0;
}

/* The same grammar the egress proxy will apply, so a typo fails at start-up. */
static int check_host_rule(const char *v, char *err, size_t errlen)
{
	char why[160];
	al_netpolicy *p = al_netpolicy_new();
	int rc;

	if (p == NULL) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	why[0] = '\0';
	rc = al_netpolicy_allow_host(p, v, why, sizeof(why));
	al_netpolicy_free(p);
	if (rc == -ENOMEM)
		set_err(err, errlen, "out of memory");
	else if (rc < 0)
		set_err(err, errlen, "allow_hosts: %s", why);
	return rc;
}

static int set_opt(struct al_worker_config *c, const struct opt *o, const char *v, char *err,
		   size_t errlen)
{
	char *base = (char *)c;
	unsigned long n;
	int rc, b;

	if (v == NULL) {
		if (o->type != T_LIST) {
			set_err(err, errlen, "%s: a value is required", o->name);
			return -EINVAL;
		}
		list_free(*(char ***)(base + o->off));
		*(char ***)(base + o->off) = NULL;
		return 0;
	}
	if (o->type != T_BOOL && v[0] == '\0') {
		set_err(err, errlen, "%s: empty value", o->name);
		return -EINVAL;
	}
	switch (o->type) {
	case T_STR: {
		char *dup = al_strdup(v);
		if (dup == NULL)
			goto oom;
		al_free(*(char **)(base + o->off));
		*(char **)(base + o->off) = dup;
		return 0;
	}
	case T_UINT:
	case T_ULONG:
		if (parse_ulong(v, &n) < 0 || n < o->min || n > o->max) {
			set_err(err, errlen, "%s: '%.32s' is not a number in %lu..%lu", o->name, v,
				o->min, o->max);
			return -ERANGE;
		}
		if (o->type == T_UINT)
			*(unsigned *)(base + o->off) = (unsigned)(n * o->scale);
		else
			*(unsigned long *)(base + o->off) = n * o->scale;
		return 0;
	case T_BOOL:
		if (parse_bool(v, &b) < 0) {
			set_err(err, errlen, "%s: '%.32s' is not true or false", o->name, v);
			return -EINVAL;
		}
		*(int *)(base + o->off) = b;
		return 0;
	case T_LIST:
		if (o->off == F(allow_hosts) && (rc = check_host_rule(v, err, errlen)) < 0)
			return rc;
		if (o->off == F(ro_paths) && v[0] != '/') {
			set_err(err, errlen, "ro_paths: '%.200s' is not an absolute path", v);
			return -EINVAL;
		}
		rc = list_append((char ***)(base + o->off), v);
		if (rc == -E2BIG)
			set_err(err, errlen, "%s: more than %u entries", o->name, LIST_MAX);
		else if (rc < 0)
			goto oom;
		return rc;
	case T_LOGFMT:
		if (strcmp(v, "text") == 0)
			c->log_format = AL_WORKER_LOG_TEXT;
		else if (strcmp(v, "json") == 0)
			c->log_format = AL_WORKER_LOG_JSON;
		else {
			set_err(err, errlen, "log_format: '%.32s' is not text or json", v);
			return -EINVAL;
		}
		return 0;
	case T_BACKEND: {
		const struct al_sandbox_backend_ops *ops = al_sandbox_backend_find(v);
		if (ops == NULL) {
			set_err(err, errlen, "backend: '%.32s' is not native or bwrap", v);
			return -EINVAL;
		}
		c->backend = ops;
		return 0;
	}
	case T_KEYFILE: {
		char *key = NULL;
		if ((rc = read_key_file(v, &key, err, errlen)) < 0)
			return rc;
		al_free_secret_str(c->environment_key);
		c->environment_key = key;
		return 0;
	}
	}
	set_err(err, errlen, "%s: internal error", o->name);
	return -EINVAL;
oom:
	set_err(err, errlen, "out of memory");
	return -ENOMEM;
}

int al_worker_config_set(struct al_worker_config *c, const char *name, const char *value, char *err,
			 size_t errlen)
{
	const struct opt *o;

	if (strcmp(name, "environment_key") == 0) {
		set_err(err, errlen,
			"the environment key is read from ANTHROPIC_ENVIRONMENT_KEY or "
			"environment_key_file only");
		return -EPERM;
	}
	o = opt_find(name);
	if (o == NULL) {
		set_err(err, errlen, "unknown option '%.64s'", name);
		return -EINVAL;
	}
	return set_opt(c, o, value, err, errlen);
}

/* ---- YAML ---------------------------------------------------------------- */

struct yload {
	yaml_parser_t parser;
	yaml_event_t ev;
	int have_ev;
	const char *name;
	char *err;
	size_t errlen;
	unsigned char seen[NOPTS];
	int sandbox_seen;
};

static unsigned ev_line(const struct yload *y)
{
	return (unsigned)y->ev.start_mark.line + 1;
}

static int next(struct yload *y)
{
	if (y->have_ev)
		yaml_event_delete(&y->ev);
	y->have_ev = 0;
	if (!yaml_parser_parse(&y->parser, &y->ev)) {
		set_err(y->err, y->errlen, "%s:%u: YAML error: %s", y->name,
			(unsigned)y->parser.problem_mark.line + 1,
			y->parser.problem ? y->parser.problem : "malformed");
		return -EINVAL;
	}
	y->have_ev = 1;
	return 0;
}

static const char *ev_name(yaml_event_type_t t)
{
	switch (t) {
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	case YAML_ALIAS_EVENT:
		return "an alias";
	case YAML_SCALAR_EVENT:
		return "a scalar";
	default:
		return "something else";
	}
}

static int yfail(struct yload *y, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int yfail(struct yload *y, int rc, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	set_err(y->err, y->errlen, "%s:%u: %s", y->name, ev_line(y), msg);
	return rc;
}

/* A scalar's text, or NULL for YAML's null (`~`, `null`, an empty plain value). */
static const char *scalar(const struct yload *y)
{
	const char *v = (const char *)y->ev.data.scalar.value;

	if (y->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0))
		return NULL;
	return v;
}

/* Applies the current scalar event to o; messages get the file and line. */
static int apply_scalar(struct yload *y, struct al_worker_config *c, const struct opt *o)
{
	char msg[320];
	const char *v = scalar(y);
	int rc;

	if (v == NULL)
		return yfail(y, -EINVAL, "%s: a value is required", o->name);
	if (strlen(v) != y->ev.data.scalar.length)
		return yfail(y, -EINVAL, "%s: contains a NUL byte", o->name);
	msg[0] = '\0';
	if ((rc = set_opt(c, o, v, msg, sizeof(msg))) < 0)
		return yfail(y, rc, "%s", msg);
	return 0;
}

static int load_value(struct yload *y, struct al_worker_config *c, const struct opt *o)
{
	int rc;

	if ((rc = next(y)) < 0)
		return rc;
	if (y->ev.type == YAML_SCALAR_EVENT) {
		if (o->type == T_LIST) {
			/* A single entry may be written without brackets. */
			if ((rc = set_opt(c, o, NULL, NULL, 0)) < 0)
				return rc;
		}
		return apply_scalar(y, c, o);
	}
	if (y->ev.type != YAML_SEQUENCE_START_EVENT || o->type != T_LIST)
		return yfail(y, -EINVAL, "%s: expected %s, got %s", o->name,
			     o->type == T_LIST ? "a list or a scalar" : "a scalar",
			     ev_name(y->ev.type));
	if ((rc = set_opt(c, o, NULL, NULL, 0)) < 0)
		return rc;
	for (;;) {
		if ((rc = next(y)) < 0)
			return rc;
		if (y->ev.type == YAML_SEQUENCE_END_EVENT)
			return 0;
		if (y->ev.type != YAML_SCALAR_EVENT)
			return yfail(y, -EINVAL, "%s: list entries must be scalars, got %s",
				     o->name, ev_name(y->ev.type));
		if ((rc = apply_scalar(y, c, o)) < 0)
			return rc;
	}
}

/* Keys and values of one mapping whose MAPPING_START is the current event. */
static int load_mapping(struct yload *y, struct al_worker_config *c, enum opt_section sec)
{
	char key[64];
	int rc;

	for (;;) {
		const struct opt *o = NULL;

		if ((rc = next(y)) < 0)
			return rc;
		if (y->ev.type == YAML_MAPPING_END_EVENT)
			return 0;
		if (y->ev.type != YAML_SCALAR_EVENT)
			return yfail(y, -EINVAL, "keys must be scalars, got %s",
				     ev_name(y->ev.type));
		snprintf(key, sizeof(key), "%s", (const char *)y->ev.data.scalar.value);
		if (sec == S_TOP && strcmp(key, "sandbox") == 0) {
			if (y->sandbox_seen++)
				return yfail(y, -EINVAL, "duplicate key 'sandbox'");
			if ((rc = next(y)) < 0)
				return rc;
			if (y->ev.type != YAML_MAPPING_START_EVENT)
				return yfail(y, -EINVAL, "sandbox: expected a mapping, got %s",
					     ev_name(y->ev.type));
			if ((rc = load_mapping(y, c, S_SANDBOX)) < 0)
				return rc;
			continue;
		}
		if (strcmp(key, "environment_key") == 0)
			return yfail(y, -EPERM,
				     "environment_key: not accepted in a config file; use "
				     "ANTHROPIC_ENVIRONMENT_KEY or environment_key_file");
		for (size_t i = 0; i < NOPTS; i++)
			if (opts[i].section == sec && strcmp(opts[i].name, key) == 0) {
				o = &opts[i];
				if (y->seen[i])
					return yfail(y, -EINVAL, "duplicate key '%s'", key);
				y->seen[i] = 1;
			}
		if (o == NULL) {
			const struct opt *other = opt_find(key);
			if (other != NULL && other->section == S_SANDBOX)
				return yfail(y, -EINVAL, "'%s' belongs under 'sandbox:'", key);
			if (other != NULL)
				return yfail(y, -EINVAL,
					     "'%s' is a top-level key, not a sandbox one", key);
			return yfail(y, -EINVAL, "unknown key '%s'", key);
		}
		if ((rc = load_value(y, c, o)) < 0)
			return rc;
	}
}

int al_worker_config_load_yaml(struct al_worker_config *c, const char *data, size_t len,
			       const char *name, char *err, size_t errlen)
{
	struct yload y;
	int rc;

	memset(&y, 0, sizeof(y));
	y.name = name ? name : "config";
	y.err = err;
	y.errlen = errlen;
	if (!yaml_parser_initialize(&y.parser)) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)data, len);
	if ((rc = next(&y)) < 0) /* STREAM_START */
		goto done;
	if ((rc = next(&y)) < 0)
		goto done;
	if (y.ev.type == YAML_STREAM_END_EVENT) /* an empty file: all defaults */
		goto done;
	/* DOCUMENT_START, then the document's root. */
	if ((rc = next(&y)) < 0)
		goto done;
	if (y.ev.type == YAML_SCALAR_EVENT && scalar(&y) == NULL) {
		/* A document holding only comments. */
	} else if (y.ev.type != YAML_MAPPING_START_EVENT) {
		rc = yfail(&y, -EINVAL, "the config must be a mapping of keys, got %s",
			   ev_name(y.ev.type));
		goto done;
	} else if ((rc = load_mapping(&y, c, S_TOP)) < 0) {
		goto done;
	}
	if ((rc = next(&y)) < 0) /* DOCUMENT_END */
		goto done;
	if ((rc = next(&y)) < 0)
		goto done;
	if (y.ev.type != YAML_STREAM_END_EVENT) {
		rc = yfail(&y, -EINVAL, "only one YAML document is allowed");
		goto done;
	}
	rc = 0;
done:
	if (y.have_ev)
		yaml_event_delete(&y.ev);
	yaml_parser_delete(&y.parser);
	return rc;
}

int al_worker_config_load_file(struct al_worker_config *c, const char *path, char *err,
			       size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = al_fd_read_file(path, CONFIG_FILE_MAX, &buf, &len, err, errlen);
	if (rc == 0)
		rc = al_worker_config_load_yaml(c, buf, len, path, err, errlen);
	al_free(buf);
	return rc;
}

/* ---- environment ---------------------------------------------------------- */

int al_worker_env_take_secret(const char *name, char **out)
{
	char *v = getenv(name);

	*out = NULL;
	if (v == NULL)
		return 0;
	*out = al_strdup(v);
	/*
	 * The environment block of the initial process is what
	 * /proc/PID/environ shows for as long as we run: unsetenv only drops the
	 * pointer, so wipe the bytes first. Also when the copy failed: the caller
	 * exits then, and the secret must not outlive our need for it.
	 */
	al_wipe(v, strlen(v));
	unsetenv(name);
	return *out ? 1 : -ENOMEM;
}

static int env_str(struct al_worker_config *c, const char *var, const char *opt, char *err,
		   size_t errlen)
{
	const char *v = getenv(var);
	char msg[300];
	int rc;

	if (v == NULL || v[0] == '\0')
		return 0;
	msg[0] = '\0';
	if ((rc = al_worker_config_set(c, opt, v, msg, sizeof(msg))) < 0)
		set_err(err, errlen, "%s: %s", var, msg);
	return rc;
}

int al_worker_config_from_env(struct al_worker_config *c, char *err, size_t errlen)
{
	char *key = NULL;
	const char *cred;
	int rc;

	if ((rc = env_str(c, "ANTHROPIC_BASE_URL", "base_url", err, errlen)) < 0)
		return rc;
	if ((rc = env_str(c, "ANTHROPIC_ENVIRONMENT_ID", "environment_id", err, errlen)) < 0)
		return rc;
	rc = al_worker_env_take_secret("ANTHROPIC_ENVIRONMENT_KEY", &key);
	if (rc < 0) {
		set_err(err, errlen, "out of memory");
		return rc;
	}
	if (rc == 1 && key[0] != '\0') {
		al_free_secret_str(c->environment_key);
		c->environment_key = key;
		return 0;
	}
	al_free_secret_str(key);
	cred = getenv("CREDENTIALS_DIRECTORY");
	if (c->environment_key == NULL && cred != NULL && cred[0] == '/') {
		char path[PATH_MAX];
		int n = snprintf(path, sizeof(path), "%s/%s", cred, CREDENTIAL_NAME);
		if (n > 0 && (size_t)n < sizeof(path) && access(path, F_OK) == 0)
			return al_worker_config_set(c, "environment_key_file", path, err, errlen);
	}
	return 0;
}

/* ---- validation ----------------------------------------------------------- */

/* mkdir -p; what it creates gets `mode` (umask applies). */
static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		char saved = tmp[i];
		tmp[i] = '\0';
		if (mkdir(tmp, mode) == 0) {
			/* The umask (the unit sets 0077) must not take the x bits away. */
			if (chmod(tmp, mode) < 0)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
		tmp[i] = saved;
	}
	return 0;
}

/* Creates dir if missing, checks it is a writable directory, replaces *p by its real path. */
static int dir_ready(char **p, mode_t mode, const char *what, char *err, size_t errlen)
{
	char real[PATH_MAX];
	struct stat st;
	char *dup;
	int rc;

	if ((rc = mkdir_p(*p, mode)) < 0) {
		set_err(err, errlen, "%s %.200s: cannot create: %s", what, *p, strerror(-rc));
		return rc;
	}
	if (realpath(*p, real) == NULL || stat(real, &st) < 0) {
		rc = -errno;
		set_err(err, errlen, "%s %.200s: %s", what, *p, strerror(-rc));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		set_err(err, errlen, "%s %.200s: not a directory", what, *p);
		return -ENOTDIR;
	}
	if (access(real, W_OK | X_OK) < 0) {
		rc = -errno;
		set_err(err, errlen, "%s %.200s: not writable: %s", what, *p, strerror(-rc));
		return rc;
	}
	/*
	 * A private directory (the state dir: journal, audit log) that already
	 * existed with a wider mode is narrowed when it is ours; one another
	 * user owns and others may write to (plant a journal.db link) is refused.
	 */
	if ((mode & 077) == 0 && (st.st_mode & 077) != 0) {
		if (st.st_uid == geteuid() ? chmod(real, mode) < 0 : (st.st_mode & 022) != 0) {
			set_err(err, errlen, "%s %.200s: mode %03o is open to group or others",
				what, *p, (unsigned)(st.st_mode & 0777));
			return -EPERM;
		}
	}
	if ((dup = al_strdup(real)) == NULL) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	al_free(*p);
	*p = dup;
	return 0;
}

/* Every directory from / down to dir lets others pass (x), or an error naming the first that does
 * not. */
static int traversable(const char *dir, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	size_t n = strlen(dir);
	struct stat st;

	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		char saved = tmp[i];
		tmp[i] = '\0';
		if (stat(tmp, &st) == 0 && !(st.st_mode & S_IXOTH)) {
			set_err(err, errlen,
				"workdir: %.200s is mode %03o: the bwrap backend needs others to "
				"pass through it (chmod o+x)",
				tmp, (unsigned)(st.st_mode & 0777));
			return -EACCES;
		}
		tmp[i] = saved;
	}
	return 0;
}

static int file_ok(const char *path, int mode, const char *what, char *err, size_t errlen)
{
	struct stat st;
	int rc;

	if (stat(path, &st) < 0 || access(path, mode) < 0) {
		rc = -errno;
		set_err(err, errlen, "%s %.200s: %s", what, path, strerror(-rc));
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "%s %.200s: not a regular file", what, path);
		return -EINVAL;
	}
	return 0;
}

/* "http(s)://host[:port][/path]" with a non-empty host and no spaces or controls. */
static int url_ok(char *u)
{
	size_t n = strlen(u), skip;
	const char *host;

	if (strncmp(u, "https://", 8) == 0)
		skip = 8;
	else if (strncmp(u, "http://", 7) == 0)
		skip = 7;
	else
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] <= ' ' || (unsigned char)u[i] >= 0x7f)
			return 0;
	host = u + skip;
	if (host[0] == '\0' || host[0] == '/' || host[0] == ':' || strchr(host, '@') != NULL ||
	    strchr(host, '?') != NULL || strchr(host, '#') != NULL)
		return 0;
	/* Paths are appended as "/v1/...": one canonical form without a trailing '/'. */
	while (n > skip + 1 && u[n - 1] == '/')
		u[--n] = '\0';
	return 1;
}

static int default_worker_id(struct al_worker_config *c)
{
	char host[256], id[ID_MAX + 1];
	unsigned char rnd[4];
	size_t n;

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "worker");
	host[sizeof(host) - 1] = '\0';
	/* Keep only what id_ok accepts; a hostname is almost always already fine. */
	for (n = 0; host[n] && n < 64; n++) {
		char ch = host[n];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
			host[n] = '-';
	}
	host[n] = '\0';
	if (n == 0)
		snprintf(host, sizeof(host), "worker");
	if (al_random_bytes(rnd, sizeof(rnd)) < 0)
		return -EIO;
	snprintf(id, sizeof(id), "%.64s-%02x%02x%02x%02x", host, rnd[0], rnd[1], rnd[2], rnd[3]);
	c->worker_id = al_strdup(id);
	return c->worker_id ? 0 : -ENOMEM;
}

static int join(char **out, const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;

	*out = al_malloc(n);
	if (*out == NULL)
		return -ENOMEM;
	snprintf(*out, n, "%s/%s", dir, name);
	return 0;
}

int al_worker_config_validate(struct al_worker_config *c, enum al_worker_mode mode, char *err,
			      size_t errlen)
{
	char cwd[PATH_MAX];
	int rc;

	if (c->base_url == NULL && (c->base_url = al_strdup(AL_WORKER_DEFAULT_BASE_URL)) == NULL)
		goto oom;
	if (!url_ok(c->base_url)) {
		set_err(err, errlen, "base_url '%.200s' is not an http:// or https:// URL",
			c->base_url);
		return -EINVAL;
	}
	if (mode == AL_WORKER_MODE_POLL) {
		if (c->environment_id == NULL) {
			set_err(err, errlen,
				"no environment: give --environment ID or set "
				"ANTHROPIC_ENVIRONMENT_ID");
			return -EINVAL;
		}
		if (c->environment_key == NULL) {
			set_err(err, errlen,
				"no environment key: set ANTHROPIC_ENVIRONMENT_KEY (or "
				"environment_key_file in the config file)");
			return -EINVAL;
		}
		if (c->block_ms == 0 || c->block_ms > 999) {
			set_err(err, errlen, "block_ms %u is not in 1..999", c->block_ms);
			return -ERANGE;
		}
	}
	if (c->environment_id != NULL && !id_ok(c->environment_id)) {
		set_err(err, errlen,
			"environment id '%.64s' may hold only letters, digits, '_', '-' and '.'",
			c->environment_id);
		return -EINVAL;
	}
	if (c->worker_id == NULL && (rc = default_worker_id(c)) < 0) {
		set_err(err, errlen, "cannot make a worker id: %s", strerror(-rc));
		return rc;
	}
	if (!id_ok(c->worker_id)) {
		set_err(err, errlen,
			"worker_id '%.64s' may hold only letters, digits, '_', '-' and '.' (at "
			"most %u)",
			c->worker_id, ID_MAX);
		return -EINVAL;
	}
	if (c->on_work != NULL && mode != AL_WORKER_MODE_POLL) {
		set_err(err, errlen, "on_work applies to `airlock worker poll` only");
		return -EINVAL;
	}
	if (c->on_work_env_key && c->on_work == NULL) {
		set_err(err, errlen, "on_work_env_key applies to on_work scripts only");
		return -EINVAL;
	}
	if (c->max_sessions == 0 || c->max_idle_s == 0) {
		set_err(err, errlen, "max_sessions and max_idle must be at least 1");
		return -ERANGE;
	}
	if (c->workdir == NULL) {
		/* The reference worker's default, so `airlock worker run` in a container just
		 * works. */
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			rc = -errno;
			set_err(err, errlen, "no --workdir and no current directory: %s",
				strerror(-rc));
			return rc;
		}
		if ((c->workdir = al_strdup(cwd)) == NULL)
			goto oom;
	}
	/*
	 * 0711: the workspaces beneath belong to the sandbox's uid, and the bwrap
	 * backend binds a workspace by its host path as that uid, which must be
	 * able to pass through every directory above it (the native backend
	 * binds as root and does not care). Nothing here is listable by others.
	 */
	if ((rc = dir_ready(&c->workdir, 0711, "workdir", err, errlen)) < 0)
		return rc;
	if (c->backend == &al_sandbox_bwrap_ops && (rc = traversable(c->workdir, err, errlen)) < 0)
		return rc;
	if (c->state_dir == NULL && join(&c->state_dir, c->workdir, ".airlock") < 0)
		goto oom;
	if ((rc = dir_ready(&c->state_dir, 0700, "state_dir", err, errlen)) < 0)
		return rc;
	if (c->audit_path == NULL) {
		if (join(&c->audit_path, c->state_dir, "audit.log") < 0)
			goto oom;
	} else {
		/* The log itself is created on open; its directory must be there. */
		char dir[PATH_MAX];
		const char *slash = strrchr(c->audit_path, '/');
		struct stat st;
		if (slash != NULL && slash != c->audit_path) {
			size_t dl = (size_t)(slash - c->audit_path);
			if (dl >= sizeof(dir)) {
				set_err(err, errlen, "audit path too long");
				return -ENAMETOOLONG;
			}
			memcpy(dir, c->audit_path, dl);
			dir[dl] = '\0';
			if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
				set_err(err, errlen,
					"audit %.200s: directory %.200s does not exist",
					c->audit_path, dir);
				return -ENOENT;
			}
		}
	}
	if (c->audit_key != NULL &&
	    (rc = file_ok(c->audit_key, R_OK, "audit_key", err, errlen)) < 0)
		return rc;
	if (c->ca_file != NULL && (rc = file_ok(c->ca_file, R_OK, "ca_file", err, errlen)) < 0)
		return rc;
	if (c->on_work != NULL && (rc = file_ok(c->on_work, X_OK, "on_work", err, errlen)) < 0)
		return rc;
	for (size_t i = 0; c->ro_paths && c->ro_paths[i]; i++)
		if (access(c->ro_paths[i], F_OK) < 0) {
			rc = -errno;
			set_err(err, errlen, "ro_paths %.200s: %s", c->ro_paths[i], strerror(-rc));
			return rc;
		}
	if (c->backend == NULL)
		c->backend = &al_sandbox_native_ops;
	return 0;
oom:
	set_err(err, errlen, "out of memory");
	return -ENOMEM;
}
