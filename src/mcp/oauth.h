/*
 * oauth.h - the OAuth 2.1 authorization-code flow an MCP client runs when a
 * server answers 401 (or 403 insufficient_scope), asynchronously on the
 * libuv loop through net/http_client.h.
 *
 * Steps (MCP authorization, 2025-11-25 and 2026-07-28):
 *   1. protected-resource metadata (RFC 9728): the resource_metadata URL of
 *      the WWW-Authenticate challenge, else the path-based well-known URL,
 *      then the root one. Its `resource` must be the MCP endpoint (or a
 *      prefix of it): a server naming another resource is refused (-EPERM),
 *      so a token is never obtained for someone else.
 *   2. authorization-server metadata (RFC 8414 and OpenID discovery, path
 *      insertion for issuers with a path); its `issuer` must equal the
 *      authorization server named by step 1 (-EPERM otherwise).
 *   3. the client: pre-registered (client_id, client_secret), a Client ID
 *      Metadata Document URL when the server supports those, or dynamic
 *      registration (RFC 7591) with the first token endpoint auth method the
 *      server supports.
 *   4. authorization request with PKCE S256, state, `resource` (RFC 8707)
 *      and scope (the challenge's, else the metadata's scopes_supported,
 *      else none). HEADLESS: the authorization endpoint's redirect is read
 *      from its Location header instead of a browser, which works with an
 *      authorization server that grants without user interaction (the
 *      conformance suite's, machine clients with pre-approved consent). The
 *      redirect's state must match and its `iss` (RFC 9207) must equal the
 *      issuer exactly when present, and be present when the server
 *      advertises it.
 *   5. token request (client_secret_basic, client_secret_post or none) with
 *      the code verifier and the same resource.
 * Secrets (client secret, code, verifier, tokens) are never logged and are
 * wiped when freed.
 */
#ifndef AL_MCP_OAUTH_H
#define AL_MCP_OAUTH_H

#include "net/http_client.h"

#include <uv.h>

typedef struct al_mcp_oauth al_mcp_oauth;

struct al_mcp_oauth_opts {
	const char *client_id;		 /* pre-registered; NULL: CIMD or registration */
	const char *client_secret;	 /* secret; with client_id */
	const char *client_metadata_url; /* CIMD URL used as client_id when supported */
	const char *client_name;	 /* for registration; NULL: "airlock" */
	const char *redirect_uri;	 /* NULL: "http://localhost:3000/callback" */
	const char *ca_file;		 /* for the metadata, AS and token requests */
	/*
	 * The authorization server expected (its issuer URL, exactly), or NULL:
	 * any the resource names. Set it with a pre-registered client_secret:
	 * otherwise a resource (or whoever answers in its place) that names its
	 * own authorization server receives that secret at the token endpoint.
	 * A different issuer is refused (-EPERM) before any request to it.
	 */
	const char *issuer;
};

/*
 * err 0: access_token (a secret, valid only during the call) is the token to
 * send as "Authorization: Bearer"; scope is the scope requested (NULL if
 * none), to pass as prior_scope to a later step-up. Otherwise a negative errno: -EPERM (a
 * metadata or redirect check failed), -EPROTO (a step answered something
 * unusable), -EACCES (the token endpoint refused), transport errors.
 */
typedef void (*al_mcp_oauth_done_cb)(void *ud, int err, const char *access_token,
				     const char *scope);

/*
 * Starts the flow for the MCP endpoint `resource_url` after a challenge
 * (`www_authenticate`, the header's value, may be NULL). prior_scope (may be
 * NULL) is what an earlier flow requested: a step-up asks for the union of
 * it and the challenge's scope, so a token never loses what the last one
 * could do (SEP-2350). Everything is copied. done fires once, later, on the loop, unless cancelled.
 * Returns 0, -EINVAL or -ENOMEM.
 */
int al_mcp_oauth_start(al_http_client *http, const struct al_mcp_oauth_opts *opts,
		       const char *resource_url, const char *www_authenticate,
		       const char *prior_scope, al_mcp_oauth_done_cb done, void *ud,
		       al_mcp_oauth **out);
/* Stops the flow (done does not fire) and frees it. NULL is fine. Not from
 * its own done callback. */
void al_mcp_oauth_cancel(al_mcp_oauth *o);

/*
 * Reads parameter `name` of a Bearer challenge (RFC 6750 / 9110 auth-param:
 * token or quoted-string). Returns a new string (al_free) or NULL when
 * absent or out of memory.
 */
char *al_mcp_oauth_challenge_param(const char *www_authenticate, const char *name);

#endif
