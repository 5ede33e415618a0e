/*
 * origin.h - DNS-rebinding protection for the Streamable HTTP endpoint.
 *
 * A web page on evil.example can make a browser POST to a server on
 * 127.0.0.1 by pointing its own name at 127.0.0.1: the request then carries
 * "Host: evil.example" and "Origin: http://evil.example". The spec requires
 * a server to validate Origin (403 when present and invalid); the
 * conformance suite (dns-rebinding-protection) also expects a localhost
 * server to refuse a foreign Host with a 4xx and to accept localhost,
 * 127.0.0.1 and [::1] with any port.
 *
 * Names are compared case-insensitively and without the port; an IPv6
 * literal is written in brackets ("[::1]"). Pure: no I/O, no allocation.
 */
#ifndef AL_MCP_ORIGIN_H
#define AL_MCP_ORIGIN_H

/* "localhost", "127.0.0.1", "[::1]"; NULL-terminated. */
extern const char *const al_mcp_localhost_names[];

/*
 * 1 when a Host header value ("name" or "name:port", port 1-65535) names
 * one of `allowed` (NULL-terminated), else 0 (also for a malformed value).
 */
int al_mcp_host_allowed(const char *host, const char *const *allowed);

/*
 * 1 when an Origin header value ("http://name[:port]" or https, nothing
 * after the authority) names one of `allowed`, else 0. The opaque origin
 * "null" is never allowed.
 */
int al_mcp_origin_allowed(const char *origin, const char *const *allowed);

/*
 * The endpoint's check: 0 when Host (required) and Origin (when present:
 * clients that are not browsers send none) name allowed hosts; -EPERM
 * otherwise, which the transport answers with 403 Forbidden.
 */
int al_mcp_origin_check(const char *host, const char *origin, const char *const *allowed);

#endif
