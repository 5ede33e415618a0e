/*
 * config.h - `airlock gateway --config FILE`: the YAML file, read and
 * checked in one pass. docs/GATEWAY.md is the reference of every key.
 *
 * The keys of the MCP-tunnels gateway (listen_addr, log_level,
 * shutdown_timeout, tunnel_domain, tls, routes, upstream) keep their meaning,
 * so an operator's existing file works unchanged; airlock's additions live
 * under `airlock:` and in the extended (mapping) form of a route. Unknown
 * and duplicate keys are errors naming the file and line: a misspelt
 * security setting must not be silently ignored.
 */
#ifndef AL_GATEWAY_CONFIG_H
#define AL_GATEWAY_CONFIG_H

#include "core/log.h"

#include <stddef.h>
#include <stdint.h>

#define AL_GW_DEFAULT_LISTEN	       "0.0.0.0:8443"
#define AL_GW_DEFAULT_ADMIN	       "127.0.0.1:9090"
#define AL_GW_DEFAULT_SHUTDOWN_MS      30000u
#define AL_GW_DEFAULT_UPSTREAM_TIMEOUT 300000u
#define AL_GW_DEFAULT_MAX_BODY	       (8u << 20)
#define AL_GW_DEFAULT_POOL_SIZE	       2u

/* One IPv4 network of upstream.allowed_ips, host byte order. */
struct al_gw_cidr {
	uint32_t net, mask;
};

enum al_gw_upstream_kind { AL_GW_UP_HTTP = 1, AL_GW_UP_STDIO };

struct al_gw_route {
	char *host; /* the key: a subdomain label or a full host, lower case */
	enum al_gw_upstream_kind kind;
	/* http(s) */
	char *url;   /* "scheme://host:port" as written */
	int https;   /* scheme is https */
	char *uhost; /* host part (brackets removed for an IPv6 literal) */
	int uport;
	/* stdio: argv[0] is `command`, then `args`; NULL-terminated */
	char **argv;
	char **env; /* "K=V", NULL-terminated, or NULL */
	char *cwd;
	unsigned pool_size;
	/* tool filters: fnmatch globs, NULL-terminated, or NULL (none) */
	char **allow_tools;
	char **deny_tools;
	uint64_t timeout_ms; /* whole upstream request; 0: no limit */
};

struct al_gw_config {
	char *listen_host;
	int listen_port;
	enum al_log_level log_level;
	uint64_t shutdown_timeout_ms;
	char *tunnel_domain;		    /* lower case, no leading dot; NULL: none */
	char *tls_cert_file, *tls_key_file; /* both or neither */
	struct al_gw_route *routes;
	size_t nroutes;
	struct al_gw_cidr *allowed_ips;
	size_t nallowed_ips;
	int disable_ip_validation;
	char *upstream_ca_file;
	int include_system_cas;
	/* airlock: */
	char *admin_host; /* NULL when admin_addr is "off" */
	int admin_port;
	char *audit_path;	/* NULL: no audit log */
	char *audit_key;	/* Ed25519 signing key for checkpoints, or NULL */
	char **allowed_origins; /* NULL: Origin is the upstream's business */
	size_t max_body_bytes;
	int trust_forwarded_for; /* append to an incoming X-Forwarded-For */
};

/*
 * Parses and checks a config held in memory; `name` is used in messages
 * ("FILE:LINE: reason"). 0 with *c filled (release with
 * al_gw_config_clear); else a negative errno with the reason in err and *c
 * cleared. Nothing is opened: files named are checked when used.
 */
int al_gw_config_load_yaml(struct al_gw_config *c, const char *data, size_t len, const char *name,
			   char *err, size_t errlen);
/* Reads the file (at most 1 MiB) and calls al_gw_config_load_yaml. */
int al_gw_config_load_file(struct al_gw_config *c, const char *path, char *err, size_t errlen);
void al_gw_config_clear(struct al_gw_config *c);

/*
 * Parses a Go-style duration: one or more <number><unit> with units h, m,
 * s, ms ("30s", "1m30s", "250ms"); "0" alone is zero. 0 or -EINVAL.
 */
int al_gw_parse_duration(const char *s, uint64_t *ms);
/* Parses "A.B.C.D/N" (or a bare address, /32). 0 or -EINVAL. */
int al_gw_parse_cidr(const char *s, struct al_gw_cidr *out);
/* 1 when the IPv4 address (network byte order) is inside one of the networks. */
int al_gw_cidr_match(const struct al_gw_cidr *v, size_t n, uint32_t addr_be);
/* Parses "HOST:PORT", ":PORT" (all addresses), "[V6]:PORT". 0 or -EINVAL. */
int al_gw_parse_hostport(const char *s, char **host, int *port);

#endif
