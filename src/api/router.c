/*
 * router.c - matches a request to a route, authenticates it, dispatches.
 *
 * Order of checks, each with the documented error object:
 *   unknown path -> 404 not_found_error; known path, wrong method -> 405;
 *   no credential / unknown or revoked credential -> 401 authentication_error;
 *   a valid credential of the wrong kind or outside its scope -> 403
 *   permission_error; missing `anthropic-beta: managed-agents-2026-04-01`
 *   -> 400 invalid_request_error. Then the handler runs.
 *
 * Which header: the SDK (1.14.0) sends its apiKey as `Authorization: Bearer`
 * (client.js apiKeyAuth), and `x-api-key` is what curl users and older
 * clients send, so an admin key is accepted in either; environment keys and
 * sessions tokens only as Bearer.
 *
 * Credentials are looked up by their SHA-256 on the store thread (we never
 * hold a credential in the store, only its hash); recent results are cached
 * in memory for AUTH_CACHE_TTL_MS, and the whole cache is dropped on any
 * revocation (al_api_auth_cache_clear), so a revoked key stops working at
 * once rather than after the TTL.
 */
#include "api/internal.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define AUTH_CACHE_TTL_MS 30000

/* ---- matching ---- */

static int param_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* Matches path against pattern; fills params. Returns the number of params or -1. */
static int match_pattern(const char *pattern, const char *path,
			 char params[AL_API_MAX_PARAMS][AL_ID_MAX])
{
	const char *p = pattern, *s = path;
	int np = 0;

	while (*p != '\0') {
		if (p[0] == '{' && p[1] == '}') {
			size_t n = 0;
			while (s[n] != '\0' && s[n] != '/') {
				if (!param_char_ok(s[n]))
					return -1;
				n++;
			}
			if (n == 0 || n >= AL_ID_MAX || np >= AL_API_MAX_PARAMS)
				return -1;
			memcpy(params[np], s, n);
			params[np][n] = '\0';
			np++;
			s += n;
			p += 2;
			continue;
		}
		if (*p != *s)
			return -1;
		p++;
		s++;
	}
	/* A single trailing slash is tolerated. */
	if (s[0] == '/' && s[1] == '\0')
		s++;
	return *s == '\0' ? np : -1;
}

int al_api_route_match(const struct al_api_route *routes, size_t n, const char *method,
		       const char *path, const struct al_api_route **out,
		       char params[AL_API_MAX_PARAMS][AL_ID_MAX], char *allow, size_t allowlen)
{
	char tmp[AL_API_MAX_PARAMS][AL_ID_MAX];
	int best = -1;
	size_t i;

	*out = NULL;
	if (allow && allowlen)
		allow[0] = '\0';
	/*
	 * The most literal pattern wins: ".../work/poll" beats ".../work/{}" even
	 * for a method only the latter has, so POST .../work/poll is a 405 rather
	 * than an update of a work item called "poll".
	 */
	for (i = 0; i < n; i++) {
		int np = match_pattern(routes[i].pattern, path, tmp);
		if (np >= 0 && (best < 0 || np < best))
			best = np;
	}
	if (best < 0)
		return -ENOENT;
	for (i = 0; i < n; i++) {
		int np = match_pattern(routes[i].pattern, path, tmp);
		if (np != best)
			continue;
		if (strcmp(routes[i].method, method) == 0) {
			*out = &routes[i];
			memcpy(params, tmp, sizeof(tmp));
			return 0;
		}
		if (allow && allowlen) {
			size_t l = strlen(allow);
			snprintf(allow + l, allowlen - l, "%s%s", l ? ", " : "", routes[i].method);
		}
	}
	return -EOPNOTSUPP;
}

int al_api_auth_allowed(const struct al_auth *auth, const struct al_api_route *route,
			char params[AL_API_MAX_PARAMS][AL_ID_MAX])
{
	static const char envp[] = "/v1/environments/{}";
	static const char workp[] = "/v1/environments/{}/work/{}";
	static const char sessp[] = "/v1/sessions/{}";

	if ((route->auth_mask & (unsigned)auth->kind) == 0)
		return 0;
	switch (auth->kind) {
	case AL_AUTH_ADMIN:
		return 1;
	case AL_AUTH_ENVIRONMENT:
		/* Own environment only; session routes check the session's environment. */
		if (strncmp(route->pattern, envp, sizeof(envp) - 1) == 0)
			return strcmp(params[0], auth->environment_id) == 0;
		return strncmp(route->pattern, sessp, sizeof(sessp) - 1) == 0;
	case AL_AUTH_SESSION:
		if (strncmp(route->pattern, sessp, sizeof(sessp) - 1) == 0)
			return strcmp(params[0], auth->session_id) == 0;
		if (strncmp(route->pattern, workp, sizeof(workp) - 1) == 0)
			return strcmp(params[0], auth->environment_id) == 0 &&
			       strcmp(params[1], auth->work_id) == 0;
		return 0;
	default:
		return 0;
	}
}

/* ---- the credential cache ---- */

static struct al_auth_cache_entry *cache_find(al_api *api, const char *hash)
{
	struct al_api_priv *pv = al_api_priv(api);
	uint64_t now = al_mono_ms();

	for (size_t i = 0; i < AL_API_AUTH_CACHE; i++) {
		struct al_auth_cache_entry *e = &pv->cache[i];
		if (e->hash[0] == '\0' || e->expires_ms <= now)
			continue;
		if (al_ct_equal(e->hash, hash, 64))
			return e;
	}
	return NULL;
}

static void cache_put(al_api *api, const char *hash, const struct al_auth *auth)
{
	struct al_api_priv *pv = al_api_priv(api);
	uint64_t now = al_mono_ms();
	struct al_auth_cache_entry *slot = &pv->cache[0];

	for (size_t i = 0; i < AL_API_AUTH_CACHE; i++) {
		struct al_auth_cache_entry *e = &pv->cache[i];
		if (e->hash[0] == '\0' || e->expires_ms <= now) {
			slot = e;
			break;
		}
		if (e->expires_ms < slot->expires_ms)
			slot = e; /* evict the oldest */
	}
	memcpy(slot->hash, hash, 65);
	slot->expires_ms = now + AUTH_CACHE_TTL_MS;
	slot->auth = *auth;
}

void al_api_key_ref(const char *hash_hex, char ref[AL_ID_MAX])
{
	memcpy(ref, hash_hex, AL_ID_MAX - 1);
	ref[AL_ID_MAX - 1] = '\0';
}

void al_api_auth_cache_clear(al_api *api)
{
	struct al_api_priv *pv = al_api_priv(api);

	al_wipe(pv->cache, sizeof(pv->cache));
}

void al_api_auth_cache_free(al_api *api)
{
	al_api_auth_cache_clear(api);
}

/* ---- dispatch ---- */

struct dispatch {
	al_api *api;
	al_http_req *req;
	const struct al_api_route *route;
	char params[AL_API_MAX_PARAMS][AL_ID_MAX];
	char hash[65];
	int bearer; /* 1: Authorization: Bearer, 0: x-api-key */
	struct al_auth auth;
	int found;
};

static int beta_ok(al_http_req *req)
{
	const char *v = al_http_req_header(req, "anthropic-beta");
	size_t bl = strlen(AL_API_BETA);

	/* A comma-separated list; the SDK appends ours to any caller betas. */
	while (v != NULL && *v != '\0') {
		while (*v == ' ' || *v == ',')
			v++;
		if (strncmp(v, AL_API_BETA, bl) == 0 &&
		    (v[bl] == '\0' || v[bl] == ',' || v[bl] == ' '))
			return 1;
		v = strchr(v, ',');
	}
	return 0;
}

static void dispatch_run(struct dispatch *d)
{
	struct al_api_ctx ctx;

	if (!d->found) {
		al_api_error(d->req, 401, NULL, "invalid %s",
			     d->bearer ? "bearer token" : "x-api-key");
		return;
	}
	if (!al_api_auth_allowed(&d->auth, d->route, d->params)) {
		al_api_error(d->req, 403, NULL, "this credential may not call %s %s",
			     d->route->method, d->route->pattern);
		return;
	}
	/*
	 * Managed Agents endpoints require the beta header, as the real API does.
	 * Environment keys are airlock's own endpoint (no SDK method sends the
	 * header for it), so they are exempt.
	 */
	if (strstr(d->route->pattern, "/keys") == NULL && !beta_ok(d->req)) {
		al_api_error(d->req, 400, NULL,
			     "this endpoint is in beta: send the header anthropic-beta: %s",
			     AL_API_BETA);
		return;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.api = d->api;
	ctx.req = d->req;
	ctx.auth = d->auth;
	for (int i = 0; i < AL_API_MAX_PARAMS; i++)
		ctx.params[i] = d->params[i][0] ? d->params[i] : NULL;
	d->route->fn(&ctx);
}

static int lookup_fn(al_store_tx *tx, void *ud)
{
	struct dispatch *d = ud;
	struct al_doc_query q = {0};
	struct al_doc *docs = NULL;
	char ref[AL_ID_MAX];
	size_t n = 0;
	int more = 0, rc;

	al_api_key_ref(d->hash, ref);
	q.ref = ref;
	q.limit = 4;
	rc = al_store_doc_list(tx, "key", &q, &docs, &n, &more);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && !d->found; i++) {
		struct al_doc *k = &docs[i];
		json_t *kb = al_api_doc_json(k);
		const char *full = json_string_value(json_object_get(kb, "sha256"));
		int match = full != NULL && strlen(full) == 64 && al_ct_equal(full, d->hash, 64);
		json_decref(kb);
		if (!match)
			continue;
		memset(&d->auth, 0, sizeof(d->auth));
		al_api_strlcpy(d->auth.key_id, k->id, AL_ID_MAX);
		if (strcmp(k->state, "admin") == 0) {
			d->auth.kind = AL_AUTH_ADMIN;
		} else if (d->bearer && strcmp(k->state, "environment") == 0) {
			d->auth.kind = AL_AUTH_ENVIRONMENT;
			al_api_strlcpy(d->auth.environment_id, k->ref2, AL_ID_MAX);
		} else if (d->bearer && strcmp(k->state, "session") == 0) {
			json_t *b = al_api_doc_json(k);
			d->auth.kind = AL_AUTH_SESSION;
			al_api_strlcpy(d->auth.session_id, k->ref2, AL_ID_MAX);
			al_api_strlcpy(d->auth.work_id,
				       json_string_value(json_object_get(b, "work_id")), AL_ID_MAX);
			al_api_strlcpy(d->auth.environment_id,
				       json_string_value(json_object_get(b, "environment_id")),
				       AL_ID_MAX);
			json_decref(b);
		} else {
			continue;
		}
		d->found = 1;
	}
	al_doc_array_free(docs, n);
	return 0;
}

static void lookup_done_cb(int rc, void *ud)
{
	struct dispatch *d = ud;

	if (rc < 0) {
		al_api_error_errno(d->req, rc, "credential");
	} else {
		if (d->found)
			cache_put(d->api, d->hash, &d->auth);
		dispatch_run(d);
	}
	al_wipe(d->hash, sizeof(d->hash));
	al_free(d);
}

/*
 * Our paths are ASCII ids and words. Routing on the decoded path would let
 * "%2F" forge a segment boundary and ".." or "." segments alias another
 * route, so the raw request path must be plain: unreserved characters and
 * single slashes, no percent-encoding, no dot segments.
 */
static int path_is_plain(const char *target)
{
	const char *p = target;

	if (*p != '/')
		return 0;
	for (; *p != '\0' && *p != '?'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '/') {
			if (p[1] == '/' ||
			    (p[1] == '.' &&
			     (p[2] == '/' || p[2] == '\0' || p[2] == '?' ||
			      (p[2] == '.' && (p[3] == '/' || p[3] == '\0' || p[3] == '?')))))
				return 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '~'))
			return 0;
	}
	return 1;
}

void al_api_router_cb(al_http_req *req, void *ud)
{
	al_api *api = ud;
	const struct al_api_route *routes, *route = NULL;
	struct dispatch *d = NULL;
	struct al_auth_cache_entry *hit;
	const char *key, *authz;
	char allow[64];
	size_t nroutes;
	int rc;

	if (!path_is_plain(al_http_req_target(req))) {
		al_api_error(
		    req, 400, NULL,
		    "malformed path: use plain ids, without percent-encoding or dot segments");
		return;
	}
	routes = al_api_routes(&nroutes);
	d = al_calloc(1, sizeof(*d));
	if (d == NULL) {
		al_api_error(req, 529, NULL, "the server is overloaded; retry later");
		return;
	}
	rc = al_api_route_match(routes, nroutes, al_http_req_method(req), al_http_req_path(req),
				&route, d->params, allow, sizeof(allow));
	if (rc == -ENOENT) {
		al_api_error(req, 404, NULL, "no such endpoint: %s", al_http_req_path(req));
		goto done;
	}
	if (rc < 0) {
		al_http_resp_header(req, "Allow", allow);
		al_api_error(req, 405, NULL,
			     "method %s is not allowed on this endpoint (allowed: %s)",
			     al_http_req_method(req), allow);
		goto done;
	}
	d->api = api;
	d->req = req;
	d->route = route;
	key = al_http_req_header(req, "x-api-key");
	authz = al_http_req_header(req, "authorization");
	if (key != NULL && key[0] != '\0') {
		d->bearer = 0;
	} else if (authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0) {
		key = authz + 7;
		while (*key == ' ')
			key++;
		d->bearer = 1;
	} else {
		al_api_error(req, 401, NULL,
			     "missing credential: send x-api-key or Authorization: Bearer");
		goto done;
	}
	if (key[0] == '\0' || al_sha256_hex(key, strlen(key), d->hash) < 0) {
		al_api_error(req, 401, NULL, "invalid credential");
		goto done;
	}
	hit = cache_find(api, d->hash);
	if (hit != NULL) {
		/* The cache is keyed by hash; x-api-key still carries admin keys only. */
		d->found = d->bearer || hit->auth.kind == AL_AUTH_ADMIN;
		d->auth = hit->auth;
		dispatch_run(d);
		goto done;
	}
	if (al_store_submit(api->store, lookup_fn, lookup_done_cb, d) < 0) {
		al_api_error(req, 503, NULL, "the store is not accepting work");
		goto done;
	}
	return; /* lookup_done_cb owns d */
done:
	al_wipe(d->hash, sizeof(d->hash));
	al_free(d);
}
