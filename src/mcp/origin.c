#include "mcp/origin.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

const char *const al_mcp_localhost_names[] = {"localhost", "127.0.0.1", "[::1]", NULL};

/*
 * Splits "name[:port]" (n bytes) and checks the name against `allowed`.
 * A bracketed IPv6 literal keeps its brackets; the port, when present, must
 * be 1-65535 in decimal without a sign or leading zeros.
 */
static int authority_allowed(const char *a, size_t n, const char *const *allowed)
{
	size_t name_len;
	const char *port = NULL;
	size_t port_len = 0;

	if (n == 0)
		return 0;
	if (a[0] == '[') {
		const char *close = memchr(a, ']', n);
		if (close == NULL)
			return 0;
		name_len = (size_t)(close - a) + 1;
	} else {
		const char *colon = memchr(a, ':', n);
		name_len = colon ? (size_t)(colon - a) : n;
	}
	if (name_len == 0)
		return 0;
	if (name_len < n) {
		if (a[name_len] != ':')
			return 0;
		port = a + name_len + 1;
		port_len = n - name_len - 1;
		unsigned long v = 0;
		if (port_len == 0 || port_len > 5 || port[0] == '0')
			return 0;
		for (size_t i = 0; i < port_len; i++) {
			if (port[i] < '0' || port[i] > '9')
				return 0;
			v = v * 10 + (unsigned long)(port[i] - '0');
		}
		if (v > 65535)
			return 0;
	}
	for (; allowed != NULL && *allowed != NULL; allowed++)
		if (strlen(*allowed) == name_len && strncasecmp(a, *allowed, name_len) == 0)
			return 1;
	return 0;
}

int al_mcp_host_allowed(const char *host, const char *const *allowed)
{
	if (host == NULL)
		return 0;
	return authority_allowed(host, strlen(host), allowed);
}

int al_mcp_origin_allowed(const char *origin, const char *const *allowed)
{
	const char *a;

	if (origin == NULL)
		return 0;
	if (strncasecmp(origin, "http://", 7) == 0)
		a = origin + 7;
	else if (strncasecmp(origin, "https://", 8) == 0)
		a = origin + 8;
	else
		return 0; /* "null", other schemes, garbage */
	/* An origin is scheme://authority: no userinfo, path, query or fragment. */
	if (strpbrk(a, "/?#@ \t") != NULL)
		return 0;
	return authority_allowed(a, strlen(a), allowed);
}

int al_mcp_origin_check(const char *host, const char *origin, const char *const *allowed)
{
	if (!al_mcp_host_allowed(host, allowed))
		return -EPERM;
	if (origin != NULL && !al_mcp_origin_allowed(origin, allowed))
		return -EPERM;
	return 0;
}
