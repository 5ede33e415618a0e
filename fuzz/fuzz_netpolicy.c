/*
 * fuzz_netpolicy.c - libFuzzer target for the egress policy parsers.
 *
 * The input is split at the first NUL: the head is tried as a host rule and
 * a CIDR against a fresh policy, the tail as a request host, an authority
 * and an absolute URL. Invariants: nothing crashes; an allowed host is
 * normalised (lower case, no trailing dot); a literal target carries the
 * requested port; no numeric form other than a dotted quad is allowed when
 * only name rules exist.
 */
#include "sandbox/netpolicy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t hl = nul ? (size_t)(nul - data) : size;
	const char *tail = nul ? (const char *)nul + 1 : "";
	size_t tl = nul ? size - hl - 1 : 0;
	char rule[512], host[AL_NETPOLICY_HOST_MAX], err[128];
	struct al_netpolicy_target t;
	uint16_t port = (uint16_t)(size * 131u);
	size_t off;
	const char *why;
	al_netpolicy *p;

	if (hl >= sizeof(rule))
		return 0;
	memcpy(rule, data, hl);
	rule[hl] = '\0';
	p = al_netpolicy_new();
	if (p == NULL)
		return 0;
	(void)al_netpolicy_allow_host(p, rule, err, sizeof(err));
	(void)al_netpolicy_allow_cidr(p, rule, err, sizeof(err));
	if (al_netpolicy_check_host(p, tail, tl, port, &t, &why) == 1) {
		size_t n = strlen(t.host);
		if (n == 0 || t.host[n - 1] == '.')
			abort();
		for (size_t i = 0; i < n; i++)
			if (t.host[i] >= 'A' && t.host[i] <= 'Z')
				abort();
		if (t.is_literal) {
			uint16_t got = t.addr.ss_family == AF_INET
					   ? ntohs(((struct sockaddr_in *)&t.addr)->sin_port)
					   : ntohs(((struct sockaddr_in6 *)&t.addr)->sin6_port);
			if (got != port)
				abort();
			(void)al_netpolicy_check_addr(p, (struct sockaddr *)&t.addr, &why);
		}
	}
	if (why == NULL)
		abort();
	if (al_netpolicy_split_authority(tail, tl, 80, host, sizeof(host), &port) == 0) {
		if (host[0] == '\0' || port == 0 || strchr(host, '@') != NULL)
			abort();
	}
	if (al_netpolicy_parse_http_url(tail, tl, host, sizeof(host), &port, &off) == 0) {
		if (off > tl || host[0] == '\0')
			abort();
	}
	al_netpolicy_free(p);
	return 0;
}
