/*
 * route.c - Host-header routing and tool globs.
 */
#include "gateway/route.h"

#include <ctype.h>
#include <fnmatch.h>
#include <string.h>

/* Lower-cases host without its port into out; 0, or -1 when it does not fit. */
static int host_key(const char *host, char *out, size_t outlen)
{
	size_t n = 0;
	const char *end;

	if (host[0] == '[') { /* IPv6 literal: keep up to the bracket */
		end = strchr(host, ']');
		if (end == NULL)
			return -1;
		host++;
	} else {
		end = strchr(host, ':');
		if (end == NULL)
			end = host + strlen(host);
	}
	if ((size_t)(end - host) >= outlen)
		return -1;
	for (const char *p = host; p < end; p++)
		out[n++] = (char)tolower((unsigned char)*p);
	/* A trailing dot names the same host (FQDN form). */
	if (n > 0 && out[n - 1] == '.')
		n--;
	out[n] = '\0';
	return n ? 0 : -1;
}

static const struct al_gw_route *lookup(const struct al_gw_config *c, const char *key)
{
	for (size_t i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].host, key) == 0)
			return &c->routes[i];
	return NULL;
}

const struct al_gw_route *al_gw_route_find(const struct al_gw_config *c, const char *host)
{
	char key[256];
	const struct al_gw_route *r;
	size_t kl, dl;

	if (host == NULL || host_key(host, key, sizeof(key)) < 0)
		return NULL;
	if ((r = lookup(c, key)) != NULL)
		return r;
	if (c->tunnel_domain == NULL)
		return NULL;
	kl = strlen(key);
	dl = strlen(c->tunnel_domain);
	if (kl <= dl + 1 || key[kl - dl - 1] != '.' || strcmp(key + kl - dl, c->tunnel_domain) != 0)
		return NULL;
	key[kl - dl - 1] = '\0';
	return lookup(c, key);
}

static int any_match(char *const *globs, const char *name)
{
	for (size_t i = 0; globs && globs[i]; i++)
		if (fnmatch(globs[i], name, 0) == 0)
			return 1;
	return 0;
}

int al_gw_route_filters_tools(const struct al_gw_route *r)
{
	return r->allow_tools != NULL || r->deny_tools != NULL;
}

int al_gw_tool_allowed(const struct al_gw_route *r, const char *name)
{
	if (!al_gw_route_filters_tools(r))
		return 1;
	if (name == NULL || name[0] == '\0')
		return 0;
	if (any_match(r->deny_tools, name))
		return 0;
	if (r->allow_tools && !any_match(r->allow_tools, name))
		return 0;
	return 1;
}
