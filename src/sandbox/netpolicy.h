/*
 * netpolicy.h - the egress allowlist and address classification.
 *
 * Pure code (no I/O, no DNS, no libuv) so it can be unit-tested exhaustively
 * and fuzzed. The egress proxy (sandbox/egress.h) asks two questions, in this
 * order, for every request from a sandbox:
 *
 *   1. al_netpolicy_check_host: may this host name (or IP literal) and port be
 *      requested at all? Host rules answer.
 *   2. al_netpolicy_check_addr: may we connect to this address? Every address
 *      the name resolved to (or the literal itself) is classified; anything
 *      but a public unicast address is refused unless an allowed CIDR
 *      covers it.
 *
 * Host rules (al_netpolicy_allow_host), one per call:
 *   example.com          exactly example.com, ports 80 and 443
 *   example.com:8443     exactly example.com, port 8443 only
 *   example.com:*        exactly example.com, any port
 *   *.example.com        any name strictly below example.com (a.example.com,
 *                        a.b.example.com) but NOT example.com itself: allowing
 *                        the apex is a separate, explicit rule, so a rule never
 *                        grants more than it spells
 *   127.0.0.1:8080       an IPv4 literal (dotted quad only); IP literals in
 *   [::1]:8080, ::1      requests are refused unless a literal rule names the
 *                        same address. The address check still applies, so a
 *                        loopback literal also needs a CIDR allowing it.
 * Names are matched case-insensitively after removing one trailing dot.
 * IDNA is not supported: any non-ASCII byte is refused (write the A-label,
 * xn--..., in the rule; the client must send it too). Names with a numeric
 * last label and every form inet_aton would accept (2130706433, 0177.0.0.1,
 * 0x7f.1, 127.1) are refused outright, in rules and in requests: the resolver
 * would turn them into addresses nobody wrote down.
 *
 * Address classes refused by default: loopback, RFC 1918 private, CGNAT
 * 100.64/10, link-local (169.254/16, fe80::/10), cloud metadata
 * (169.254.169.254, fd00:ec2::254), unique-local fc00::/7, multicast,
 * unspecified (0.0.0.0/8, ::), broadcast and reserved ranges, IPv4-mapped,
 * IPv4-compatible and NAT64/6to4 IPv6 forms (they reach IPv4 hosts through
 * an IPv6 socket). al_netpolicy_allow_cidr("127.0.0.0/8") lets one range
 * through; families are matched exactly (a v4 CIDR does not cover
 * ::ffff:127.0.0.1; allow ::ffff:0:0/96 explicitly for that).
 *
 * Ownership: the policy owns copies of every rule. It is read-only after
 * set-up; the check functions may be called from any thread concurrently.
 */
#ifndef AL_SANDBOX_NETPOLICY_H
#define AL_SANDBOX_NETPOLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A normalised host name fits in this (253 characters + NUL, rounded). */
#define AL_NETPOLICY_HOST_MAX 256

typedef struct al_netpolicy al_netpolicy;

enum al_addr_class {
	AL_ADDR_PUBLIC = 0,   /* global unicast: allowed */
	AL_ADDR_LOOPBACK,     /* 127/8, ::1 */
	AL_ADDR_PRIVATE,      /* 10/8, 172.16/12, 192.168/16 */
	AL_ADDR_CGNAT,	      /* 100.64/10 */
	AL_ADDR_LINK_LOCAL,   /* 169.254/16, fe80::/10 */
	AL_ADDR_METADATA,     /* 169.254.169.254, fd00:ec2::254 */
	AL_ADDR_UNIQUE_LOCAL, /* fc00::/7, fec0::/10 (deprecated site-local) */
	AL_ADDR_MULTICAST,    /* 224/4, ff00::/8 */
	AL_ADDR_UNSPECIFIED,  /* 0/8, :: */
	AL_ADDR_BROADCAST,    /* 255.255.255.255 */
	AL_ADDR_RESERVED,     /* 240/4, 192.0.0/24, 198.18/15, documentation, 100::/64 */
	AL_ADDR_V4_EMBEDDED,  /* ::ffff:0:0/96, ::/96, 64:ff9b::/96, 64:ff9b:1::/48, 2002::/16 */
	AL_ADDR_INVALID,      /* not AF_INET/AF_INET6 */
};

/* A static lower-case name for the class ("loopback", "metadata"...). */
const char *al_addr_class_name(enum al_addr_class c);

/* Classifies an AF_INET or AF_INET6 socket address; AL_ADDR_INVALID otherwise. */
enum al_addr_class al_netaddr_classify(const struct sockaddr *sa);

/* NULL on allocation failure. */
al_netpolicy *al_netpolicy_new(void);
void al_netpolicy_free(al_netpolicy *p);

/*
 * Adds a host rule (grammar above). 0, or -EINVAL with a message in err
 * (never echoing more than a short prefix of spec), or -ENOMEM.
 */
int al_netpolicy_allow_host(al_netpolicy *p, const char *spec, char *err, size_t errlen);
/* Adds an allowed address range "A.B.C.D/N" or "X::/N" (a bare address is /32, /128). */
int al_netpolicy_allow_cidr(al_netpolicy *p, const char *cidr, char *err, size_t errlen);

/* The outcome of al_netpolicy_check_host when the host is allowed. */
struct al_netpolicy_target {
	char host[AL_NETPOLICY_HOST_MAX]; /* normalised: lower case, no trailing dot, no [] */
	int is_literal;			  /* 1: addr holds the literal with the port set */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

/*
 * May `host` (as the client sent it: a name, a dotted quad, a bare or
 * bracketed IPv6 literal; not NUL-terminated, len bytes) be reached on
 * `port`? Returns 1 (allowed, *out filled), 0 (denied, *reason a static
 * string safe to show the client and log), or -EINVAL for NULL arguments.
 * out->host is filled (normalised) whenever the host was syntactically valid,
 * even when denied, so the audit can name it.
 */
int al_netpolicy_check_host(const al_netpolicy *p, const char *host, size_t len, uint16_t port,
			    struct al_netpolicy_target *out, const char **reason);

/*
 * May we connect to `sa`? 1 allowed, 0 denied with *reason ("address is
 * loopback"...), static. Public unicast is allowed; every other class only
 * when an allowed CIDR of the same family covers the address.
 */
int al_netpolicy_check_addr(const al_netpolicy *p, const struct sockaddr *sa, const char **reason);

/*
 * Splits an authority "host:port", "[v6]:port", or "host" (then *port =
 * default_port; a default_port of 0 makes the port mandatory). The host is
 * copied without brackets into host[hostcap]; it is not validated beyond
 * being non-empty, free of '@', '/', whitespace and control bytes. Port:
 * 1-5 decimal digits, 1..65535. 0 or -EINVAL.
 */
int al_netpolicy_split_authority(const char *s, size_t len, uint16_t default_port, char *host,
				 size_t hostcap, uint16_t *port);

/*
 * Parses an absolute-form request target "http://authority[/path][?query]"
 * (scheme case-insensitive; userinfo and fragments refused; only http).
 * On success fills host/port (default 80) and *path_off, the offset of the
 * origin-form path in uri (the '/' or '?' starting it; len when empty, the
 * caller then sends "/"). 0 or -EINVAL.
 */
int al_netpolicy_parse_http_url(const char *uri, size_t len, char *host, size_t hostcap,
				uint16_t *port, size_t *path_off);

#endif
