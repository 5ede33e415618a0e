/*
 * netpolicy.c - host allowlist and address classification (see netpolicy.h).
 *
 * Everything here is deliberately strict and small: a rule or a request that
 * could be read two ways (by us and by the resolver, or by us and by the
 * client) is refused rather than interpreted.
 */
#include "sandbox/netpolicy.h"

#include "core/alloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Port sentinels inside a host rule. */
#define PORT_DEFAULT (-1) /* 80 and 443 */
#define PORT_ANY     (-2)

struct host_rule {
	char *name;   /* owned; normalised; for wildcards the suffix without "*." */
	int wildcard; /* "*.suffix": strictly below suffix */
	int literal;  /* an IP literal rule: match on addr */
	int family;   /* AF_INET/AF_INET6 for literals */
	uint8_t addr[16];
	int port; /* 1..65535, PORT_DEFAULT or PORT_ANY */
};

struct cidr_rule {
	int family;
	uint8_t addr[16];
	unsigned prefix;
};

struct al_netpolicy {
	struct host_rule *hosts;
	size_t nhosts;
	struct cidr_rule *cidrs;
	size_t ncidrs;
};

static const char *const class_names[] = {
    [AL_ADDR_PUBLIC] = "public",
    [AL_ADDR_LOOPBACK] = "loopback",
    [AL_ADDR_PRIVATE] = "private",
    [AL_ADDR_CGNAT] = "cgnat",
    [AL_ADDR_LINK_LOCAL] = "link-local",
    [AL_ADDR_METADATA] = "metadata",
    [AL_ADDR_UNIQUE_LOCAL] = "unique-local",
    [AL_ADDR_MULTICAST] = "multicast",
    [AL_ADDR_UNSPECIFIED] = "unspecified",
    [AL_ADDR_BROADCAST] = "broadcast",
    [AL_ADDR_RESERVED] = "reserved",
    [AL_ADDR_V4_EMBEDDED] = "ipv4-embedded-ipv6",
    [AL_ADDR_INVALID] = "invalid",
};

static const char *const deny_reasons[] = {
    [AL_ADDR_PUBLIC] = "allowed",
    [AL_ADDR_LOOPBACK] = "address is loopback",
    [AL_ADDR_PRIVATE] = "address is private (RFC 1918)",
    [AL_ADDR_CGNAT] = "address is carrier-grade NAT (100.64/10)",
    [AL_ADDR_LINK_LOCAL] = "address is link-local",
    [AL_ADDR_METADATA] = "address is a cloud metadata endpoint",
    [AL_ADDR_UNIQUE_LOCAL] = "address is unique-local",
    [AL_ADDR_MULTICAST] = "address is multicast",
    [AL_ADDR_UNSPECIFIED] = "address is unspecified",
    [AL_ADDR_BROADCAST] = "address is broadcast",
    [AL_ADDR_RESERVED] = "address is reserved",
    [AL_ADDR_V4_EMBEDDED] = "address is an IPv4-embedded IPv6 form",
    [AL_ADDR_INVALID] = "address family not supported",
};

const char *al_addr_class_name(enum al_addr_class c)
{
	if ((unsigned)c > AL_ADDR_INVALID)
		return "invalid";
	return class_names[c];
}

static int in_v4(uint32_t a, uint32_t net, unsigned prefix)
{
	uint32_t mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);

	return (a & mask) == (net & mask);
}

static enum al_addr_class classify_v4(uint32_t a)
{
	if (a == 0xa9fea9feu) /* 169.254.169.254 before link-local: the named danger */
		return AL_ADDR_METADATA;
	if (in_v4(a, 0x00000000u, 8))
		return AL_ADDR_UNSPECIFIED;
	if (in_v4(a, 0x7f000000u, 8))
		return AL_ADDR_LOOPBACK;
	if (in_v4(a, 0x0a000000u, 8) || in_v4(a, 0xac100000u, 12) || in_v4(a, 0xc0a80000u, 16))
		return AL_ADDR_PRIVATE;
	if (in_v4(a, 0x64400000u, 10))
		return AL_ADDR_CGNAT;
	if (in_v4(a, 0xa9fe0000u, 16))
		return AL_ADDR_LINK_LOCAL;
	if (in_v4(a, 0xe0000000u, 4))
		return AL_ADDR_MULTICAST;
	if (a == 0xffffffffu)
		return AL_ADDR_BROADCAST;
	/* 240/4 future use; 192.0.0/24 protocol assignments; 192.0.2/24,
	 * 198.51.100/24, 203.0.113/24 documentation; 198.18/15 benchmarking;
	 * 192.88.99/24 deprecated 6to4 relay anycast. */
	if (in_v4(a, 0xf0000000u, 4) || in_v4(a, 0xc0000000u, 24) || in_v4(a, 0xc0000200u, 24) ||
	    in_v4(a, 0xc6336400u, 24) || in_v4(a, 0xcb007100u, 24) || in_v4(a, 0xc6120000u, 15) ||
	    in_v4(a, 0xc0586300u, 24))
		return AL_ADDR_RESERVED;
	return AL_ADDR_PUBLIC;
}

static int in_v6(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, net, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

static enum al_addr_class classify_v6(const uint8_t *a)
{
	static const uint8_t zero[16];
	static const uint8_t loop[16] = {[15] = 1};
	static const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff};
	static const uint8_t nat64[16] = {0x00, 0x64, 0xff, 0x9b};
	static const uint8_t nat64l[16] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
	static const uint8_t sixto4[16] = {0x20, 0x02};
	static const uint8_t meta[16] = {0xfd, 0x00, 0x0e, 0xc2, [15] = 0x54, [14] = 0x02};
	static const uint8_t ula[16] = {0xfc};
	static const uint8_t ll[16] = {0xfe, 0x80};
	static const uint8_t sl[16] = {0xfe, 0xc0};
	static const uint8_t mc[16] = {0xff};
	static const uint8_t doc[16] = {0x20, 0x01, 0x0d, 0xb8};
	static const uint8_t discard[16] = {0x01, 0x00};
	static const uint8_t teredo[16] = {0x20, 0x01, 0x00, 0x00};

	if (memcmp(a, zero, 16) == 0)
		return AL_ADDR_UNSPECIFIED;
	if (memcmp(a, loop, 16) == 0)
		return AL_ADDR_LOOPBACK;
	if (memcmp(a, meta, 16) == 0)
		return AL_ADDR_METADATA;
	/* Forms that carry an IPv4 address: an AF_INET6 socket connecting to
	 * ::ffff:127.0.0.1 reaches 127.0.0.1, and NAT64/6to4 gateways reach
	 * whatever IPv4 address is embedded. Refused as a class. */
	if (in_v6(a, mapped, 96) || in_v6(a, zero, 96) || in_v6(a, nat64, 96) ||
	    in_v6(a, nat64l, 48) || in_v6(a, sixto4, 16) || in_v6(a, teredo, 32))
		return AL_ADDR_V4_EMBEDDED;
	if (in_v6(a, ula, 7) || in_v6(a, sl, 10))
		return AL_ADDR_UNIQUE_LOCAL;
	if (in_v6(a, ll, 10))
		return AL_ADDR_LINK_LOCAL;
	if (in_v6(a, mc, 8))
		return AL_ADDR_MULTICAST;
	if (in_v6(a, doc, 32) || in_v6(a, discard, 64))
		return AL_ADDR_RESERVED;
	/* Only 2000::/3 is allocated global unicast; the rest is reserved. */
	if ((a[0] & 0xe0) != 0x20)
		return AL_ADDR_RESERVED;
	return AL_ADDR_PUBLIC;
}

enum al_addr_class al_netaddr_classify(const struct sockaddr *sa)
{
	if (sa == NULL)
		return AL_ADDR_INVALID;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return classify_v4(ntohl(s4->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		return classify_v6(s6->sin6_addr.s6_addr);
	}
	return AL_ADDR_INVALID;
}

al_netpolicy *al_netpolicy_new(void)
{
	return al_calloc(1, sizeof(al_netpolicy));
}

void al_netpolicy_free(al_netpolicy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nhosts; i++)
		al_free(p->hosts[i].name);
	al_free(p->hosts);
	al_free(p->cidrs);
	al_free(p);
}

/* Strict dotted quad: four decimal parts 0..255 without leading zeros. */
static int parse_dotted_quad(const char *s, size_t len, uint8_t out[4])
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t start = i;

		if (part > 0) {
			if (i >= len || s[i] != '.')
				return -1;
			start = ++i;
		}
		while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
			return -1;
		out[part] = (uint8_t)v;
	}
	return i == len ? 0 : -1;
}

/* An IPv6 literal (no brackets, no zone id): inet_pton on a bounded copy. */
static int parse_v6(const char *s, size_t len, uint8_t out[16])
{
	char tmp[INET6_ADDRSTRLEN + 1];

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (strchr(tmp, '%') != NULL) /* zone ids name host interfaces */
		return -1;
	return inet_pton(AF_INET6, tmp, out) == 1 ? 0 : -1;
}

/*
 * Would a permissive IPv4 parser (inet_aton, URL parsers) read this as an
 * address? 1-4 parts, each decimal, 0-octal or 0x-hex. Such names never
 * reach the resolver: glibc would happily turn "2130706433" into 127.0.0.1.
 */
static int looks_numeric_v4(const char *s, size_t len)
{
	size_t i = 0;
	int parts = 0;

	while (i <= len) {
		size_t start = i;
		int hex = 0;

		if (i + 1 < len && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
			hex = 1;
			i += 2;
		}
		while (i < len && s[i] != '.') {
			char c = s[i];
			int ok = (c >= '0' && c <= '9') ||
				 (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
			if (!ok)
				return 0;
			i++;
		}
		if (i == start && !(i == len && parts > 0))
			return 0;
		parts++;
		if (i >= len)
			break;
		i++; /* the dot; a trailing dot leaves an empty last part, allowed above */
	}
	return parts >= 1 && parts <= 4;
}

/* The last label is all digits or 0x-hex: a URL parser treats the name as IPv4. */
static int last_label_numeric(const char *s, size_t len)
{
	size_t start = len;

	while (start > 0 && s[start - 1] != '.')
		start--;
	if (start == len)
		return 0;
	if (len - start >= 2 && s[start] == '0' && (s[start + 1] == 'x' || s[start + 1] == 'X')) {
		for (size_t i = start + 2; i < len; i++) {
			char c = s[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			      (c >= 'A' && c <= 'F')))
				return 0;
		}
		return 1;
	}
	for (size_t i = start; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

enum host_kind {
	HOST_BAD = -1,
	HOST_NAME = 0,
	HOST_V4 = 1,
	HOST_V6 = 2,
};

/*
 * Normalises a host (name, dotted quad, bracketed or bare IPv6) into out
 * (lower case, trailing dot removed, brackets removed). For literals addr
 * gets the bytes. *why explains a HOST_BAD.
 */
static enum host_kind normalise_host(const char *s, size_t len, char out[AL_NETPOLICY_HOST_MAX],
				     uint8_t addr[16], const char **why)
{
	size_t i;

	out[0] = '\0';
	*why = "invalid host";
	if (s == NULL || len == 0)
		return HOST_BAD;
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] >= 0x80) {
			*why = "non-ASCII host name (IDNA not supported)";
			return HOST_BAD;
		}
	}
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']' || parse_v6(s + 1, len - 2, addr) != 0)
			return HOST_BAD;
		memcpy(out, s + 1, len - 2);
		out[len - 2] = '\0';
		for (i = 0; out[i]; i++)
			if (out[i] >= 'A' && out[i] <= 'Z')
				out[i] = (char)(out[i] - 'A' + 'a');
		return HOST_V6;
	}
	if (memchr(s, ':', len) != NULL) {
		if (parse_v6(s, len, addr) != 0)
			return HOST_BAD;
		memcpy(out, s, len);
		out[len] = '\0';
		for (i = 0; out[i]; i++)
			if (out[i] >= 'A' && out[i] <= 'Z')
				out[i] = (char)(out[i] - 'A' + 'a');
		return HOST_V6;
	}
	if (s[len - 1] == '.')
		len--; /* one trailing dot: the root; "a.." stays invalid below */
	if (len == 0 || len > 253)
		return HOST_BAD;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return HOST_BAD;
		out[i] = c;
	}
	out[len] = '\0';
	if (parse_dotted_quad(out, len, addr) == 0)
		return HOST_V4;
	if (looks_numeric_v4(out, len) || last_label_numeric(out, len)) {
		*why = "numeric host form refused (write a dotted-quad literal)";
		return HOST_BAD;
	}
	/* Labels: 1..63 bytes, no leading or trailing hyphen. */
	for (i = 0; i < len;) {
		size_t start = i;
		while (i < len && out[i] != '.')
			i++;
		if (i == start || i - start > 63 || out[start] == '-' || out[i - 1] == '-')
			return HOST_BAD;
		if (i < len)
			i++;
		if (i == len && out[len - 1] == '.')
			return HOST_BAD;
	}
	return HOST_NAME;
}

static int parse_port(const char *s, size_t len, uint16_t *port)
{
	unsigned v = 0;

	if (len == 0 || len > 5)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int al_netpolicy_split_authority(const char *s, size_t len, uint16_t default_port, char *host,
				 size_t hostcap, uint16_t *port)
{
	const char *hs = s, *ps = NULL;
	size_t hl = len, pl = 0;

	if (s == NULL || host == NULL || port == NULL || hostcap == 0 || len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f || c == '@' || c == '/' || c == '\\' || c == '?' ||
		    c == '#')
			return -EINVAL;
	}
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL)
			return -EINVAL;
		hs = s + 1;
		hl = (size_t)(close - s) - 1;
		if ((size_t)(close - s) + 1 < len) {
			if (close[1] != ':')
				return -EINVAL;
			ps = close + 2;
			pl = len - (size_t)(ps - s);
		}
	} else {
		const char *colon = memchr(s, ':', len);
		if (colon != NULL) {
			if (memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) != NULL)
				return -EINVAL; /* a bare IPv6 literal needs brackets here */
			hl = (size_t)(colon - s);
			ps = colon + 1;
			pl = len - hl - 1;
		}
	}
	if (hl == 0 || hl >= hostcap)
		return -EINVAL;
	if (ps != NULL) {
		if (parse_port(ps, pl, port) != 0)
			return -EINVAL;
	} else {
		if (default_port == 0)
			return -EINVAL;
		*port = default_port;
	}
	memcpy(host, hs, hl);
	host[hl] = '\0';
	return 0;
}

int al_netpolicy_parse_http_url(const char *uri, size_t len, char *host, size_t hostcap,
				uint16_t *port, size_t *path_off)
{
	static const char scheme[] = "http://";
	size_t i, end;

	if (uri == NULL || host == NULL || port == NULL || path_off == NULL)
		return -EINVAL;
	if (len < sizeof(scheme) || strncasecmp(uri, scheme, sizeof(scheme) - 1) != 0)
		return -EINVAL;
	i = sizeof(scheme) - 1;
	for (end = i; end < len && uri[end] != '/' && uri[end] != '?'; end++)
		if (uri[end] == '#')
			return -EINVAL;
	if (memchr(uri + end, '#', len - end) != NULL)
		return -EINVAL;
	for (size_t k = end; k < len; k++)
		if ((unsigned char)uri[k] <= 0x20 || uri[k] == 0x7f)
			return -EINVAL;
	if (al_netpolicy_split_authority(uri + i, end - i, 80, host, hostcap, port) != 0)
		return -EINVAL;
	*path_off = end;
	return 0;
}

static void set_err(char *err, size_t errlen, const char *what, const char *spec)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: \"%.64s\"", what, spec ? spec : "");
}

int al_netpolicy_allow_host(al_netpolicy *p, const char *spec, char *err, size_t errlen)
{
	struct host_rule r = {0}, *grown;
	char norm[AL_NETPOLICY_HOST_MAX];
	const char *hs, *why, *colon = NULL;
	size_t len, hl;
	enum host_kind kind;
	int rc = -EINVAL;

	if (p == NULL || spec == NULL) {
		set_err(err, errlen, "invalid host rule", spec);
		goto done;
	}
	len = strlen(spec);
	hs = spec;
	hl = len;
	r.port = PORT_DEFAULT;
	if (len >= 2 && spec[0] == '*' && spec[1] == '.') {
		r.wildcard = 1;
		hs += 2;
		hl -= 2;
	}
	/* The port: after "]" for a bracketed literal, after the only colon
	 * otherwise; a bare IPv6 literal (several colons) has none. */
	if (hl > 0 && hs[0] == '[') {
		const char *close = memchr(hs, ']', hl);
		if (close != NULL && (size_t)(close - hs) + 1 < hl && close[1] == ':')
			colon = close + 1;
	} else {
		const char *c1 = memchr(hs, ':', hl);
		if (c1 != NULL && memchr(c1 + 1, ':', hl - (size_t)(c1 - hs) - 1) == NULL)
			colon = c1;
	}
	if (colon != NULL) {
		size_t pl = hl - (size_t)(colon - hs) - 1;
		uint16_t port;

		if (pl == 1 && colon[1] == '*') {
			r.port = PORT_ANY;
		} else if (parse_port(colon + 1, pl, &port) == 0) {
			r.port = port;
		} else {
			set_err(err, errlen, "invalid port in host rule", spec);
			goto done;
		}
		hl = (size_t)(colon - hs);
	}
	kind = normalise_host(hs, hl, norm, r.addr, &why);
	if (kind == HOST_BAD) {
		set_err(err, errlen, why, spec);
		goto done;
	}
	if (kind != HOST_NAME) {
		if (r.wildcard) {
			set_err(err, errlen, "a wildcard needs a name, not an address", spec);
			goto done;
		}
		r.literal = 1;
		r.family = kind == HOST_V4 ? AF_INET : AF_INET6;
	}
	r.name = al_strdup(norm);
	if (r.name == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	grown = al_realloc(p->hosts, (p->nhosts + 1) * sizeof(*p->hosts));
	if (grown == NULL) {
		al_free(r.name);
		rc = -ENOMEM;
		goto done;
	}
	p->hosts = grown;
	p->hosts[p->nhosts++] = r;
	rc = 0;
done:
	return rc;
}

int al_netpolicy_allow_cidr(al_netpolicy *p, const char *cidr, char *err, size_t errlen)
{
	struct cidr_rule r = {0}, *grown;
	const char *slash;
	size_t alen;
	int rc = -EINVAL;

	if (p == NULL || cidr == NULL) {
		set_err(err, errlen, "invalid CIDR", cidr);
		goto done;
	}
	slash = strchr(cidr, '/');
	alen = slash ? (size_t)(slash - cidr) : strlen(cidr);
	if (parse_dotted_quad(cidr, alen, r.addr) == 0) {
		r.family = AF_INET;
		r.prefix = 32;
	} else if (parse_v6(cidr, alen, r.addr) == 0) {
		r.family = AF_INET6;
		r.prefix = 128;
	} else {
		set_err(err, errlen, "invalid CIDR address", cidr);
		goto done;
	}
	if (slash != NULL) {
		const char *d = slash + 1;
		size_t dl = strlen(d);
		unsigned v = 0;

		if (dl == 0 || dl > 3 || (dl > 1 && d[0] == '0')) {
			set_err(err, errlen, "invalid CIDR prefix", cidr);
			goto done;
		}
		for (size_t i = 0; i < dl; i++) {
			if (d[i] < '0' || d[i] > '9') {
				set_err(err, errlen, "invalid CIDR prefix", cidr);
				goto done;
			}
			v = v * 10 + (unsigned)(d[i] - '0');
		}
		if (v > r.prefix) {
			set_err(err, errlen, "CIDR prefix too long", cidr);
			goto done;
		}
		r.prefix = v;
	}
	grown = al_realloc(p->cidrs, (p->ncidrs + 1) * sizeof(*p->cidrs));
	if (grown == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	p->cidrs = grown;
	p->cidrs[p->ncidrs++] = r;
	rc = 0;
done:
	return rc;
}

static int port_matches(int rule_port, uint16_t port)
{
	if (rule_port == PORT_ANY)
		return 1;
	if (rule_port == PORT_DEFAULT)
		return port == 80 || port == 443;
	return rule_port == (int)port;
}

static int name_matches(const struct host_rule *r, const char *host)
{
	size_t hl, sl;

	if (!r->wildcard)
		return strcmp(r->name, host) == 0;
	hl = strlen(host);
	sl = strlen(r->name);
	/* Strictly below: at least one label, then a dot, then the suffix. */
	return hl > sl + 1 && host[hl - sl - 1] == '.' && strcmp(host + hl - sl, r->name) == 0;
}

int al_netpolicy_check_host(const al_netpolicy *p, const char *host, size_t len, uint16_t port,
			    struct al_netpolicy_target *out, const char **reason)
{
	uint8_t addr[16];
	const char *why;
	enum host_kind kind;
	int name_seen = 0;

	if (p == NULL || out == NULL || reason == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (port == 0) {
		*reason = "invalid port";
		return 0;
	}
	kind = normalise_host(host, len, out->host, addr, &why);
	if (kind == HOST_BAD) {
		out->host[0] = '\0';
		*reason = why;
		return 0;
	}
	for (size_t i = 0; i < p->nhosts; i++) {
		const struct host_rule *r = &p->hosts[i];
		int match;

		if (kind == HOST_NAME)
			match = !r->literal && name_matches(r, out->host);
		else
			match = r->literal && r->family == (kind == HOST_V4 ? AF_INET : AF_INET6) &&
				memcmp(r->addr, addr, kind == HOST_V4 ? 4 : 16) == 0;
		if (!match)
			continue;
		name_seen = 1;
		if (port_matches(r->port, port))
			goto allowed;
	}
	if (name_seen)
		*reason = "port not allowed for this host";
	else if (kind == HOST_NAME)
		*reason = "host not in allowlist";
	else
		*reason = "IP literal not allowed";
	return 0;
allowed:
	if (kind == HOST_V4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->addr;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, addr, 4);
		out->addrlen = sizeof(*s4);
		out->is_literal = 1;
	} else if (kind == HOST_V6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->addr;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, addr, 16);
		out->addrlen = sizeof(*s6);
		out->is_literal = 1;
	}
	*reason = "allowed";
	return 1;
}

int al_netpolicy_check_addr(const al_netpolicy *p, const struct sockaddr *sa, const char **reason)
{
	enum al_addr_class c;
	const uint8_t *bytes;

	if (p == NULL || sa == NULL || reason == NULL)
		return -EINVAL;
	c = al_netaddr_classify(sa);
	if (c == AL_ADDR_INVALID) {
		*reason = deny_reasons[c];
		return 0;
	}
	if (c == AL_ADDR_PUBLIC) {
		*reason = "allowed";
		return 1;
	}
	if (sa->sa_family == AF_INET)
		bytes = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	else
		bytes = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	for (size_t i = 0; i < p->ncidrs; i++) {
		const struct cidr_rule *r = &p->cidrs[i];
		if (r->family == sa->sa_family && in_v6(bytes, r->addr, r->prefix)) {
			*reason = "allowed by CIDR rule";
			return 1;
		}
	}
	*reason = deny_reasons[c];
	return 0;
}
