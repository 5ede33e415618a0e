/*
 * route.h - which route a request belongs to, and which tools a route lets
 * through.
 *
 * Matching is on the Host header alone (the path and query are the
 * upstream's): the host, lower-cased and without its port, is looked up
 * exactly first; then, when it ends in ".<tunnel_domain>", with that
 * suffix stripped. So with tunnel_domain "mcp.example.com" the route
 * "tickets" serves "tickets.mcp.example.com", and a route written as a
 * full host serves exactly that host.
 */
#ifndef AL_GATEWAY_ROUTE_H
#define AL_GATEWAY_ROUTE_H

#include "gateway/config.h"

/* The route for a Host header value, or NULL (no Host, or no match). */
const struct al_gw_route *al_gw_route_find(const struct al_gw_config *c, const char *host);

/*
 * 1 when the route lets the tool through: no deny pattern matches and,
 * when an allow list exists, one of its patterns matches (fnmatch(3)
 * globs, case-sensitive, as tool names are). A NULL or empty name is
 * refused when any list exists.
 */
int al_gw_tool_allowed(const struct al_gw_route *r, const char *name);
/* 1 when the route has an allow or a deny list. */
int al_gw_route_filters_tools(const struct al_gw_route *r);

#endif
