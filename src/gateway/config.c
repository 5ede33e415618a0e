/*
 * config.c - the gateway's YAML file into struct al_gw_config.
 *
 * The file is read into a tree (gateway/ynode.h) and walked once with a
 * fixed schema per mapping: every key is known, or the line is named. The
 * checks that need no I/O happen here (URL shape, CIDRs, exclusive keys,
 * https upstreams without a trust store); files are opened by their users.
 */
#include "gateway/config.h"

#include "core/alloc.h"
#include "core/fd.h"
#include "gateway/ynode.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_FILE_MAX (1u << 20)
#define LIST_MAX	1024u
#define POOL_MAX	64u

struct ctx {
	const char *name;
	char *err;
	size_t errlen;
};

static int cfail(struct ctx *x, unsigned line, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int cfail(struct ctx *x, unsigned line, int rc, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->err && x->errlen) {
		if (rc == -ENOMEM)
			snprintf(x->err, x->errlen, "out of memory");
		else
			snprintf(x->err, x->errlen, "%s:%u: %s", x->name, line, msg);
	}
	return rc;
}

static void list_free(char **l)
{
	if (l == NULL)
		return;
	for (char **p = l; *p; p++)
		al_free(*p);
	al_free(l);
}

static void route_clear(struct al_gw_route *r)
{
	al_free(r->host);
	al_free(r->url);
	al_free(r->uhost);
	list_free(r->argv);
	list_free(r->env);
	al_free(r->cwd);
	list_free(r->allow_tools);
	list_free(r->deny_tools);
	memset(r, 0, sizeof(*r));
}

void al_gw_config_clear(struct al_gw_config *c)
{
	if (c == NULL)
		return;
	al_free(c->listen_host);
	al_free(c->tunnel_domain);
	al_free(c->tls_cert_file);
	al_free(c->tls_key_file);
	for (size_t i = 0; i < c->nroutes; i++)
		route_clear(&c->routes[i]);
	al_free(c->routes);
	al_free(c->allowed_ips);
	al_free(c->upstream_ca_file);
	al_free(c->admin_host);
	al_free(c->audit_path);
	al_free(c->audit_key);
	list_free(c->allowed_origins);
	memset(c, 0, sizeof(*c));
}

/* ---- value parsers (pure) ---- */

int al_gw_parse_duration(const char *s, uint64_t *ms)
{
	uint64_t total = 0;
	const char *p = s;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	while (*p) {
		uint64_t v = 0, unit;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (v > (UINT64_MAX - 9) / 10)
				return -EINVAL;
			v = v * 10 + (uint64_t)(*p++ - '0');
			digits++;
		}
		if (!digits)
			return -EINVAL;
		if (strncmp(p, "ms", 2) == 0) {
			unit = 1;
			p += 2;
		} else if (*p == 's') {
			unit = 1000;
			p++;
		} else if (*p == 'm') {
			unit = 60000;
			p++;
		} else if (*p == 'h') {
			unit = 3600000;
			p++;
		} else {
			return -EINVAL;
		}
		if (v > (UINT64_MAX / unit) || total > UINT64_MAX - v * unit)
			return -EINVAL;
		total += v * unit;
	}
	*ms = total;
	return 0;
}

int al_gw_parse_cidr(const char *s, struct al_gw_cidr *out)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	struct in_addr in;
	unsigned long bits = 32;
	size_t n = slash ? (size_t)(slash - s) : strlen(s);

	if (n == 0 || n >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, &in) != 1)
		return -EINVAL;
	if (slash) {
		char *end;
		if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 2)
			return -EINVAL;
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > 32)
			return -EINVAL;
	}
	out->mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
	out->net = ntohl(in.s_addr) & out->mask;
	return 0;
}

int al_gw_cidr_match(const struct al_gw_cidr *v, size_t n, uint32_t addr_be)
{
	uint32_t a = ntohl(addr_be);

	for (size_t i = 0; i < n; i++)
		if ((a & v[i].mask) == v[i].net)
			return 1;
	return 0;
}

static int parse_port(const char *s, int *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9' || strlen(s) > 5)
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

int al_gw_parse_hostport(const char *s, char **host, int *port)
{
	const char *colon;
	size_t hl;
	const char *h = s;

	*host = NULL;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (parse_port(colon + 1, port) < 0)
		return -EINVAL;
	if (hl == 0)
		*host = al_strdup(strchr(s, '[') ? "::" : "0.0.0.0");
	else
		*host = al_strndup(h, hl);
	return *host ? 0 : -ENOMEM;
}

/* A DNS name or IP literal: letters, digits, '-', '.', and for IPv6 ':' */
static int host_ok(const char *h, int allow_colon)
{
	if (*h == '\0' || strlen(h) > 253)
		return 0;
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_' &&
		    !(allow_colon && *p == ':'))
			return 0;
	return 1;
}

/* "scheme://host:port" exactly: no path, no query, no user info. */
static int parse_upstream_url(struct al_gw_route *r, const char *u, char *why, size_t whylen)
{
	const char *rest;
	const char *colon;
	int rc = -EINVAL;

	if (strncmp(u, "http://", 7) == 0) {
		rest = u + 7;
	} else if (strncmp(u, "https://", 8) == 0) {
		rest = u + 8;
		r->https = 1;
	} else {
		snprintf(why, whylen, "upstream '%s': the scheme must be http or https", u);
		return -EINVAL;
	}
	if (rest[0] == '[') {
		const char *rb = strchr(rest, ']');
		if (rb == NULL || rb[1] != ':')
			goto bad;
		r->uhost = al_strndup(rest + 1, (size_t)(rb - rest - 1));
		colon = rb + 1;
		if (r->uhost == NULL)
			return -ENOMEM;
		if (!host_ok(r->uhost, 1))
			goto bad;
	} else {
		colon = strchr(rest, ':');
		if (colon == NULL)
			goto bad;
		r->uhost = al_strndup(rest, (size_t)(colon - rest));
		if (r->uhost == NULL)
			return -ENOMEM;
		if (!host_ok(r->uhost, 0))
			goto bad;
	}
	if (parse_port(colon + 1, &r->uport) < 0 || r->uport == 0)
		goto bad;
	if ((r->url = al_strdup(u)) == NULL)
		return -ENOMEM;
	rc = 0;
	return rc;
bad:
	snprintf(why, whylen, "upstream '%s': must be exactly scheme://host:port", u);
	return -EINVAL;
}

/* ---- tree walkers ---- */

static int want(struct ctx *x, const struct al_ynode *n, enum al_ynode_kind k, const char *key)
{
	static const char *const names[] = {"null", "a scalar", "a mapping", "a list"};

	if (n->kind == k)
		return 0;
	if (n->kind == AL_Y_NULL && k == AL_Y_SCALAR)
		return cfail(x, n->line, -EINVAL, "%s: a value is required", key);
	return cfail(x, n->line, -EINVAL, "%s: expected %s, got %s", key, names[k],
		     al_ynode_kind_name(n));
}

/* Every key of mapping n must be in the NULL-terminated list `known`. */
static int known_keys(struct ctx *x, const struct al_ynode *n, const char *where,
		      const char *const *known)
{
	for (size_t i = 0; i < n->n; i++) {
		const char *const *k = known;
		while (*k && strcmp(*k, n->keys[i]) != 0)
			k++;
		if (*k == NULL)
			return cfail(x, n->key_lines[i], -EINVAL, "unknown key '%s'%s%s",
				     n->keys[i], where ? " in " : "", where ? where : "");
	}
	return 0;
}

static int get_str(struct ctx *x, const struct al_ynode *n, const char *key, char **out)
{
	int rc;

	if ((rc = want(x, n, AL_Y_SCALAR, key)) < 0)
		return rc;
	al_free(*out);
	*out = al_strdup(n->str);
	return *out ? 0 : cfail(x, n->line, -ENOMEM, "oom");
}

static int get_bool(struct ctx *x, const struct al_ynode *n, const char *key, int *out)
{
	int rc;

	if ((rc = want(x, n, AL_Y_SCALAR, key)) < 0)
		return rc;
	if (strcmp(n->str, "true") == 0)
		*out = 1;
	else if (strcmp(n->str, "false") == 0)
		*out = 0;
	else
		return cfail(x, n->line, -EINVAL, "%s: expected true or false, got '%s'", key,
			     n->str);
	return 0;
}

static int get_duration(struct ctx *x, const struct al_ynode *n, const char *key, uint64_t *out)
{
	int rc;

	if ((rc = want(x, n, AL_Y_SCALAR, key)) < 0)
		return rc;
	if (al_gw_parse_duration(n->str, out) < 0)
		return cfail(x, n->line, -EINVAL,
			     "%s: '%s' is not a duration (a number with a unit: 30s, 1m30s, "
			     "500ms, 1h)",
			     key, n->str);
	return 0;
}

static int get_uint(struct ctx *x, const struct al_ynode *n, const char *key, unsigned long min,
		    unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;
	int rc;

	if ((rc = want(x, n, AL_Y_SCALAR, key)) < 0)
		return rc;
	errno = 0;
	v = strtoul(n->str, &end, 10);
	if (n->str[0] < '0' || n->str[0] > '9' || *end != '\0' || errno || v < min || v > max)
		return cfail(x, n->line, -EINVAL,
			     "%s: expected an integer from %lu to %lu, got '%s'", key, min, max,
			     n->str);
	*out = v;
	return 0;
}

/* A list of non-empty scalars (a single scalar is a list of one). */
static int get_list(struct ctx *x, const struct al_ynode *n, const char *key, char ***out)
{
	const struct al_ynode *const *items = (const struct al_ynode *const *)&n;
	size_t count = 1;
	char **l;

	if (n->kind == AL_Y_SEQ) {
		items = (const struct al_ynode *const *)n->v;
		count = n->n;
	} else if (n->kind != AL_Y_SCALAR) {
		return cfail(x, n->line, -EINVAL, "%s: expected a list, got %s", key,
			     al_ynode_kind_name(n));
	}
	if (count > LIST_MAX)
		return cfail(x, n->line, -EINVAL, "%s: more than %u entries", key, LIST_MAX);
	l = al_calloc(count + 1, sizeof(*l));
	if (l == NULL)
		return cfail(x, n->line, -ENOMEM, "oom");
	for (size_t i = 0; i < count; i++) {
		if (items[i]->kind != AL_Y_SCALAR || items[i]->str[0] == '\0') {
			list_free(l);
			return cfail(x, items[i]->line, -EINVAL,
				     "%s: entries must be non-empty scalars", key);
		}
		if ((l[i] = al_strdup(items[i]->str)) == NULL) {
			list_free(l);
			return cfail(x, n->line, -ENOMEM, "oom");
		}
	}
	list_free(*out);
	*out = l;
	return 0;
}

static int load_tls(struct ctx *x, struct al_gw_config *c, const struct al_ynode *n)
{
	static const char *const keys[] = {"cert_file", "key_file", NULL};
	const struct al_ynode *v;
	int rc;

	if ((rc = want(x, n, AL_Y_MAP, "tls")) < 0 || (rc = known_keys(x, n, "tls", keys)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "cert_file")) &&
	    (rc = get_str(x, v, "tls.cert_file", &c->tls_cert_file)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "key_file")) &&
	    (rc = get_str(x, v, "tls.key_file", &c->tls_key_file)) < 0)
		return rc;
	if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL))
		return cfail(x, n->line, -EINVAL, "tls: cert_file and key_file go together");
	return 0;
}

static int load_upstream(struct ctx *x, struct al_gw_config *c, const struct al_ynode *n)
{
	static const char *const keys[] = {"allowed_ips", "disable_ip_validation", "tls", NULL};
	static const char *const tkeys[] = {"ca_file", "include_system_cas", NULL};
	const struct al_ynode *v, *t;
	char **ips = NULL;
	int rc;

	if ((rc = want(x, n, AL_Y_MAP, "upstream")) < 0 ||
	    (rc = known_keys(x, n, "upstream", keys)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "disable_ip_validation")) &&
	    (rc = get_bool(x, v, "upstream.disable_ip_validation", &c->disable_ip_validation)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "allowed_ips"))) {
		if (c->disable_ip_validation)
			return cfail(x, v->line, -EINVAL,
				     "upstream.allowed_ips and upstream.disable_ip_validation: "
				     "true exclude each other");
		if ((rc = get_list(x, v, "upstream.allowed_ips", &ips)) < 0)
			return rc;
		size_t cnt = 0;
		while (ips[cnt])
			cnt++;
		al_free(c->allowed_ips);
		c->allowed_ips = al_calloc(cnt ? cnt : 1, sizeof(*c->allowed_ips));
		c->nallowed_ips = 0;
		if (c->allowed_ips == NULL) {
			list_free(ips);
			return cfail(x, v->line, -ENOMEM, "oom");
		}
		for (size_t i = 0; i < cnt; i++) {
			if (al_gw_parse_cidr(ips[i], &c->allowed_ips[i]) < 0) {
				rc =
				    cfail(x, v->kind == AL_Y_SEQ ? v->v[i]->line : v->line, -EINVAL,
					  "upstream.allowed_ips: '%s' is not an IPv4 CIDR "
					  "(a.b.c.d/n)",
					  ips[i]);
				list_free(ips);
				return rc;
			}
			c->nallowed_ips++;
		}
		list_free(ips);
		if (cnt == 0)
			return cfail(x, v->line, -EINVAL,
				     "upstream.allowed_ips: empty (use disable_ip_validation "
				     "to allow every address)");
	}
	if ((t = al_ynode_get(n, "tls"))) {
		if ((rc = want(x, t, AL_Y_MAP, "upstream.tls")) < 0 ||
		    (rc = known_keys(x, t, "upstream.tls", tkeys)) < 0)
			return rc;
		if ((v = al_ynode_get(t, "ca_file")) &&
		    (rc = get_str(x, v, "upstream.tls.ca_file", &c->upstream_ca_file)) < 0)
			return rc;
		if ((v = al_ynode_get(t, "include_system_cas")) &&
		    (rc = get_bool(x, v, "upstream.tls.include_system_cas",
				   &c->include_system_cas)) < 0)
			return rc;
	}
	return 0;
}

static int lower_dup(const char *s, char **out)
{
	size_t n = strlen(s);

	*out = al_malloc(n + 1);
	if (*out == NULL)
		return -ENOMEM;
	for (size_t i = 0; i <= n; i++)
		(*out)[i] = (char)tolower((unsigned char)s[i]);
	return 0;
}

static int load_tools(struct ctx *x, struct al_gw_route *r, const struct al_ynode *n)
{
	static const char *const keys[] = {"allow", "deny", NULL};
	const struct al_ynode *v;
	int rc;

	if ((rc = want(x, n, AL_Y_MAP, "tools")) < 0 || (rc = known_keys(x, n, "tools", keys)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "allow")) &&
	    (rc = get_list(x, v, "tools.allow", &r->allow_tools)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "deny")) &&
	    (rc = get_list(x, v, "tools.deny", &r->deny_tools)) < 0)
		return rc;
	return 0;
}

static int load_env(struct ctx *x, struct al_gw_route *r, const struct al_ynode *n)
{
	int rc;

	if ((rc = want(x, n, AL_Y_MAP, "env")) < 0)
		return rc;
	r->env = al_calloc(n->n + 1, sizeof(*r->env));
	if (r->env == NULL)
		return cfail(x, n->line, -ENOMEM, "oom");
	for (size_t i = 0; i < n->n; i++) {
		const struct al_ynode *v = n->v[i];
		size_t kl = strlen(n->keys[i]);
		if (kl == 0 || strchr(n->keys[i], '=') ||
		    !(isalpha((unsigned char)n->keys[i][0]) || n->keys[i][0] == '_'))
			return cfail(x, n->key_lines[i], -EINVAL,
				     "env: '%s' is not an environment variable name", n->keys[i]);
		if (v->kind != AL_Y_SCALAR && v->kind != AL_Y_NULL)
			return cfail(x, v->line, -EINVAL, "env.%s: expected a scalar", n->keys[i]);
		const char *val = v->kind == AL_Y_SCALAR ? v->str : "";
		size_t len = kl + 1 + strlen(val) + 1;
		if ((r->env[i] = al_malloc(len)) == NULL)
			return cfail(x, n->line, -ENOMEM, "oom");
		snprintf(r->env[i], len, "%s=%s", n->keys[i], val);
	}
	return 0;
}

static int load_route(struct ctx *x, struct al_gw_config *c, struct al_gw_route *r, const char *key,
		      unsigned key_line, const struct al_ynode *n, uint64_t default_timeout)
{
	static const char *const keys[] = {"upstream",	"command", "args",    "env", "cwd",
					   "pool_size", "tools",   "timeout", NULL};
	char why[320];
	const struct al_ynode *v, *cmd;
	int rc;

	r->timeout_ms = default_timeout;
	if (!host_ok(key, 0))
		return cfail(x, key_line, -EINVAL, "routes: '%s' is not a host name", key);
	if ((rc = lower_dup(key, &r->host)) < 0)
		return cfail(x, key_line, rc, "oom");
	if (n->kind == AL_Y_SCALAR) {
		r->kind = AL_GW_UP_HTTP;
		why[0] = '\0';
		if ((rc = parse_upstream_url(r, n->str, why, sizeof(why))) < 0)
			return cfail(x, n->line, rc, "routes.%s: %s", key, why);
		return 0;
	}
	if (n->kind != AL_Y_MAP)
		return cfail(x, n->line, -EINVAL,
			     "routes.%s: expected an upstream URL or a mapping, got %s", key,
			     al_ynode_kind_name(n));
	if ((rc = known_keys(x, n, "a route", keys)) < 0)
		return rc;
	v = al_ynode_get(n, "upstream");
	cmd = al_ynode_get(n, "command");
	if ((v == NULL) == (cmd == NULL))
		return cfail(x, n->line, -EINVAL, "routes.%s: exactly one of upstream and command",
			     key);
	if (v) {
		r->kind = AL_GW_UP_HTTP;
		if ((rc = want(x, v, AL_Y_SCALAR, "upstream")) < 0)
			return rc;
		why[0] = '\0';
		if ((rc = parse_upstream_url(r, v->str, why, sizeof(why))) < 0)
			return cfail(x, v->line, rc, "routes.%s: %s", key, why);
		static const char *const stdio_only[] = {"args", "env", "cwd", "pool_size"};
		for (size_t i = 0; i < 4; i++)
			if ((v = al_ynode_get(n, stdio_only[i])))
				return cfail(x, v->line, -EINVAL,
					     "routes.%s: '%s' needs a stdio route (command:)", key,
					     stdio_only[i]);
	} else {
		char **args = NULL;
		size_t na = 0;
		r->kind = AL_GW_UP_STDIO;
		r->pool_size = AL_GW_DEFAULT_POOL_SIZE;
		if ((rc = want(x, cmd, AL_Y_SCALAR, "command")) < 0)
			return rc;
		if ((v = al_ynode_get(n, "args")) && (rc = get_list(x, v, "args", &args)) < 0)
			return rc;
		while (args && args[na])
			na++;
		r->argv = al_calloc(na + 2, sizeof(*r->argv));
		if (r->argv == NULL || (r->argv[0] = al_strdup(cmd->str)) == NULL) {
			list_free(args);
			return cfail(x, cmd->line, -ENOMEM, "oom");
		}
		for (size_t i = 0; i < na; i++) {
			r->argv[i + 1] = args[i];
			args[i] = NULL;
		}
		list_free(args);
		if ((v = al_ynode_get(n, "env")) && (rc = load_env(x, r, v)) < 0)
			return rc;
		if ((v = al_ynode_get(n, "cwd")) && (rc = get_str(x, v, "cwd", &r->cwd)) < 0)
			return rc;
		if ((v = al_ynode_get(n, "pool_size"))) {
			unsigned long ps;
			if ((rc = get_uint(x, v, "pool_size", 1, POOL_MAX, &ps)) < 0)
				return rc;
			r->pool_size = (unsigned)ps;
		}
	}
	if ((v = al_ynode_get(n, "tools")) && (rc = load_tools(x, r, v)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "timeout")) &&
	    (rc = get_duration(x, v, "timeout", &r->timeout_ms)) < 0)
		return rc;
	(void)c;
	return 0;
}

static int load_routes(struct ctx *x, struct al_gw_config *c, const struct al_ynode *n,
		       uint64_t default_timeout)
{
	int rc;

	if ((rc = want(x, n, AL_Y_MAP, "routes")) < 0)
		return rc;
	if (n->n == 0)
		return cfail(x, n->line, -EINVAL, "routes: at least one route is required");
	c->routes = al_calloc(n->n, sizeof(*c->routes));
	if (c->routes == NULL)
		return cfail(x, n->line, -ENOMEM, "oom");
	for (size_t i = 0; i < n->n; i++) {
		rc = load_route(x, c, &c->routes[i], n->keys[i], n->key_lines[i], n->v[i],
				default_timeout);
		c->nroutes++;
		if (rc < 0)
			return rc;
		/* Keys differ byte-wise (ynode), but not necessarily in their case. */
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->routes[j].host, c->routes[i].host) == 0)
				return cfail(x, n->key_lines[i], -EINVAL,
					     "routes: '%s' repeats another route (host names "
					     "ignore case)",
					     n->keys[i]);
	}
	return 0;
}

static int load_airlock(struct ctx *x, struct al_gw_config *c, const struct al_ynode *n,
			uint64_t *default_timeout)
{
	static const char *const keys[] = {
	    "admin_addr",      "audit",	   "audit_key",	       "audit_sync",
	    "allowed_origins", "max_body", "upstream_timeout", "trust_forwarded_for",
	    "max_in_flight",   NULL};
	const struct al_ynode *v;
	int rc;

	if ((rc = want(x, n, AL_Y_MAP, "airlock")) < 0 ||
	    (rc = known_keys(x, n, "airlock", keys)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "admin_addr"))) {
		if ((rc = want(x, v, AL_Y_SCALAR, "airlock.admin_addr")) < 0)
			return rc;
		al_free(c->admin_host);
		c->admin_host = NULL;
		if (strcmp(v->str, "off") != 0) {
			rc = al_gw_parse_hostport(v->str, &c->admin_host, &c->admin_port);
			if (rc < 0)
				return cfail(x, v->line, rc,
					     "airlock.admin_addr: '%s' is not HOST:PORT or off",
					     v->str);
		}
	}
	if ((v = al_ynode_get(n, "audit")) &&
	    (rc = get_str(x, v, "airlock.audit", &c->audit_path)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "audit_key")) &&
	    (rc = get_str(x, v, "airlock.audit_key", &c->audit_key)) < 0)
		return rc;
	if (c->audit_key && c->audit_path == NULL)
		return cfail(x, n->line, -EINVAL, "airlock.audit_key needs airlock.audit");
	if ((v = al_ynode_get(n, "audit_sync"))) {
		if ((rc = want(x, v, AL_Y_SCALAR, "airlock.audit_sync")) < 0)
			return rc;
		if (strcmp(v->str, "request") == 0)
			c->audit_sync = AL_GW_AUDIT_SYNC_REQUEST;
		else if (strcmp(v->str, "batch") == 0)
			c->audit_sync = AL_GW_AUDIT_SYNC_BATCH;
		else
			return cfail(x, v->line, -EINVAL,
				     "airlock.audit_sync: '%s' is not request or batch", v->str);
	}
	if ((v = al_ynode_get(n, "allowed_origins")) &&
	    (rc = get_list(x, v, "airlock.allowed_origins", &c->allowed_origins)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "max_body"))) {
		unsigned long mb;
		if ((rc = get_uint(x, v, "airlock.max_body", 1024, 64ul << 20, &mb)) < 0)
			return rc;
		c->max_body_bytes = mb;
	}
	if ((v = al_ynode_get(n, "upstream_timeout")) &&
	    (rc = get_duration(x, v, "airlock.upstream_timeout", default_timeout)) < 0)
		return rc;
	if ((v = al_ynode_get(n, "max_in_flight"))) {
		unsigned long mf;
		if ((rc = get_uint(x, v, "airlock.max_in_flight", 1, 65536, &mf)) < 0)
			return rc;
		c->max_in_flight = mf;
	}
	if ((v = al_ynode_get(n, "trust_forwarded_for")) &&
	    (rc = get_bool(x, v, "airlock.trust_forwarded_for", &c->trust_forwarded_for)) < 0)
		return rc;
	return 0;
}

static int set_defaults(struct al_gw_config *c)
{
	static const char *const rfc1918[] = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"};

	c->log_level = AL_LOG_INFO;
	c->shutdown_timeout_ms = AL_GW_DEFAULT_SHUTDOWN_MS;
	c->max_body_bytes = AL_GW_DEFAULT_MAX_BODY;
	c->max_in_flight = AL_GW_DEFAULT_MAX_IN_FLIGHT;
	if (al_gw_parse_hostport(AL_GW_DEFAULT_LISTEN, &c->listen_host, &c->listen_port) < 0 ||
	    al_gw_parse_hostport(AL_GW_DEFAULT_ADMIN, &c->admin_host, &c->admin_port) < 0)
		return -ENOMEM;
	c->allowed_ips = al_calloc(3, sizeof(*c->allowed_ips));
	if (c->allowed_ips == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < 3; i++)
		al_gw_parse_cidr(rfc1918[i], &c->allowed_ips[i]);
	c->nallowed_ips = 3;
	return 0;
}

static int load_root(struct ctx *x, struct al_gw_config *c, const struct al_ynode *root)
{
	static const char *const keys[] = {"listen_addr",   "log_level", "shutdown_timeout",
					   "tunnel_domain", "tls",	 "routes",
					   "upstream",	    "airlock",	 NULL};
	uint64_t default_timeout = AL_GW_DEFAULT_UPSTREAM_TIMEOUT;
	const struct al_ynode *v;
	int rc;

	if (root == NULL)
		return cfail(x, 1, -EINVAL, "the config is empty (routes are required)");
	if ((rc = want(x, root, AL_Y_MAP, "the config")) < 0 ||
	    (rc = known_keys(x, root, NULL, keys)) < 0)
		return rc;
	if ((v = al_ynode_get(root, "listen_addr"))) {
		if ((rc = want(x, v, AL_Y_SCALAR, "listen_addr")) < 0)
			return rc;
		al_free(c->listen_host);
		c->listen_host = NULL;
		if ((rc = al_gw_parse_hostport(v->str, &c->listen_host, &c->listen_port)) < 0)
			return cfail(x, v->line, rc, "listen_addr: '%s' is not HOST:PORT", v->str);
	}
	if ((v = al_ynode_get(root, "log_level"))) {
		if ((rc = want(x, v, AL_Y_SCALAR, "log_level")) < 0)
			return rc;
		if (strcasecmp(v->str, "warning") == 0)
			c->log_level = AL_LOG_WARN;
		else if (al_log_parse_level(v->str, &c->log_level) < 0)
			return cfail(x, v->line, -EINVAL,
				     "log_level: '%s' is not debug, info, warn or error", v->str);
	}
	if ((v = al_ynode_get(root, "shutdown_timeout")) &&
	    (rc = get_duration(x, v, "shutdown_timeout", &c->shutdown_timeout_ms)) < 0)
		return rc;
	if ((v = al_ynode_get(root, "tunnel_domain"))) {
		const char *d;
		if ((rc = want(x, v, AL_Y_SCALAR, "tunnel_domain")) < 0)
			return rc;
		d = v->str[0] == '.' ? v->str + 1 : v->str;
		if (!host_ok(d, 0))
			return cfail(x, v->line, -EINVAL, "tunnel_domain: '%s' is not a domain",
				     v->str);
		if (lower_dup(d, &c->tunnel_domain) < 0)
			return cfail(x, v->line, -ENOMEM, "oom");
	}
	if ((v = al_ynode_get(root, "tls")) && (rc = load_tls(x, c, v)) < 0)
		return rc;
	if ((v = al_ynode_get(root, "upstream")) && (rc = load_upstream(x, c, v)) < 0)
		return rc;
	/* airlock: first, so its upstream_timeout is every route's default. */
	if ((v = al_ynode_get(root, "airlock")) &&
	    (rc = load_airlock(x, c, v, &default_timeout)) < 0)
		return rc;
	if ((v = al_ynode_get(root, "routes")) == NULL)
		return cfail(x, root->line, -EINVAL, "routes: required");
	if ((rc = load_routes(x, c, v, default_timeout)) < 0)
		return rc;
	for (size_t i = 0; i < c->nroutes; i++)
		if (c->routes[i].https && c->upstream_ca_file == NULL && !c->include_system_cas)
			return cfail(x, v->line, -EINVAL,
				     "routes.%s: an https upstream needs upstream.tls.ca_file or "
				     "upstream.tls.include_system_cas: true",
				     c->routes[i].host);
	return 0;
}

int al_gw_config_load_yaml(struct al_gw_config *c, const char *data, size_t len, const char *name,
			   char *err, size_t errlen)
{
	struct ctx x = {name ? name : "config", err, errlen};
	struct al_ynode *root = NULL;
	int rc;

	memset(c, 0, sizeof(*c));
	if ((rc = set_defaults(c)) < 0) {
		cfail(&x, 0, rc, "oom");
		goto done;
	}
	if ((rc = al_ynode_parse(data, len, x.name, &root, err, errlen)) < 0)
		goto done;
	rc = load_root(&x, c, root);
done:
	al_ynode_free(root);
	if (rc < 0)
		al_gw_config_clear(c);
	return rc;
}

int al_gw_config_load_file(struct al_gw_config *c, const char *path, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = al_fd_read_file(path, CONFIG_FILE_MAX, &buf, &len, err, errlen);
	if (rc == 0)
		rc = al_gw_config_load_yaml(c, buf, len, path, err, errlen);
	al_free(buf);
	return rc;
}
