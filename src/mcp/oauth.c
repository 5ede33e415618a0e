/*
 * oauth.c - the MCP client's OAuth 2.1 authorization-code flow. See oauth.h.
 *
 * One HTTP request at a time; discovery steps walk a list of candidate URLs
 * and take the first that answers 200 with a JSON object.
 */
#include "mcp/oauth.h"

#include "core/alloc.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/rand.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LOG_TAG	     "mcp-oauth"
#define MAX_CANDS    4
#define TIMEOUT_MS   30000u
#define DEF_REDIRECT "http://localhost:3000/callback"

enum step { ST_PRM = 1, ST_ASMETA, ST_REGISTER, ST_AUTHORIZE, ST_TOKEN };

struct al_mcp_oauth {
	al_http_client *http;
	char *client_id, *client_secret, *cimd, *name, *redirect, *ca_file;
	char *want_issuer; /* opts->issuer, or NULL */
	char *resource_url, *challenge_scope, *challenge_prm, *prior_scope;
	char *scope; /* requested */
	char *cands[MAX_CANDS];
	int ncands, cand;
	enum step st;
	json_t *prm, *as;
	char *issuer;	   /* the authorization server named by the PRM */
	char *auth_method; /* client authentication at the token endpoint */
	char verifier[64], state[32];
	al_http_call *call;
	al_mcp_oauth_done_cb done;
	void *ud;
};

static void o_free(al_mcp_oauth *o)
{
	if (o == NULL)
		return;
	if (o->call != NULL)
		al_http_call_cancel(o->call);
	al_free(o->client_id);
	al_free_secret_str(o->client_secret);
	al_free(o->cimd);
	al_free(o->name);
	al_free(o->redirect);
	al_free(o->ca_file);
	al_free(o->want_issuer);
	al_free(o->resource_url);
	al_free(o->challenge_scope);
	al_free(o->challenge_prm);
	al_free(o->prior_scope);
	al_free(o->scope);
	for (int i = 0; i < MAX_CANDS; i++)
		al_free(o->cands[i]);
	json_decref(o->prm);
	json_decref(o->as);
	al_free(o->issuer);
	al_free(o->auth_method);
	al_wipe(o->verifier, sizeof(o->verifier));
	al_free(o);
}

void al_mcp_oauth_cancel(al_mcp_oauth *o)
{
	o_free(o);
}

static void finish(al_mcp_oauth *o, int err, const char *token)
{
	o->done(o->ud, err, token, o->scope);
	o_free(o);
}

/* ---- small text helpers ---- */

char *al_mcp_oauth_challenge_param(const char *h, const char *name)
{
	size_t nl = strlen(name);
	const char *p = h;

	if (h == NULL)
		return NULL;
	/* Skip the scheme ("Bearer"), then read name=value pairs. */
	while (*p != '\0' && *p != ' ')
		p++;
	while (*p != '\0') {
		const char *k;
		size_t kl;
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		k = p;
		while (*p != '\0' && *p != '=' && *p != ' ' && *p != ',')
			p++;
		kl = (size_t)(p - k);
		if (*p != '=')
			continue;
		p++;
		if (*p == '"') {
			al_buf v = {0};
			p++;
			while (*p != '\0' && *p != '"') {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (al_buf_append(&v, p, 1) < 0) {
					al_buf_free(&v);
					return NULL;
				}
				p++;
			}
			if (*p == '"')
				p++;
			if (kl == nl && strncasecmp(k, name, nl) == 0)
				return v.data != NULL ? al_buf_steal(&v, NULL) : al_strdup("");
			al_buf_free(&v);
		} else {
			const char *v = p;
			while (*p != '\0' && *p != ',' && *p != ' ')
				p++;
			if (kl == nl && strncasecmp(k, name, nl) == 0)
				return al_strndup(v, (size_t)(p - v));
		}
	}
	return NULL;
}

/* "scheme://authority" of url into out; the path (no query, no trailing
 * "/") into path. -EINVAL for anything that is not http(s). */
static int split_url(const char *url, al_buf *origin, al_buf *path)
{
	const char *s = strstr(url, "://"), *p, *q;

	if (s == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
		return -EINVAL;
	p = s + 3;
	while (*p != '\0' && *p != '/' && *p != '?' && *p != '#')
		p++;
	if (al_buf_append(origin, url, (size_t)(p - url)) < 0)
		return -ENOMEM;
	q = p;
	while (*q != '\0' && *q != '?' && *q != '#')
		q++;
	while (q > p && q[-1] == '/')
		q--;
	if (q > p && al_buf_append(path, p, (size_t)(q - p)) < 0)
		return -ENOMEM;
	return 0;
}

static int pct_encode(al_buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		int rc = isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
			     ? al_buf_append(out, s, 1)
			     : al_buf_appendf(out, "%%%02X", c);
		if (rc < 0)
			return -ENOMEM;
	}
	return 0;
}

static int form_add(al_buf *out, const char *k, const char *v)
{
	if (v == NULL)
		return 0;
	if ((out->len > 0 && al_buf_append(out, "&", 1) < 0) || pct_encode(out, k) < 0 ||
	    al_buf_append(out, "=", 1) < 0 || pct_encode(out, v) < 0)
		return -ENOMEM;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The decoded values of query parameter `name` in url: how many times it
 * appears; the first into out. */
static int query_param(const char *url, const char *name, al_buf *out)
{
	const char *q = strchr(url, '?');
	size_t nl = strlen(name);
	int n = 0;

	if (q == NULL)
		return 0;
	q++;
	while (*q != '\0' && *q != '#') {
		const char *end = q;
		while (*end != '\0' && *end != '&' && *end != '#')
			end++;
		if ((size_t)(end - q) > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
			if (n++ == 0) {
				for (const char *p = q + nl + 1; p < end; p++) {
					char c = *p;
					if (c == '+') {
						c = ' ';
					} else if (c == '%' && end - p > 2 && hexval(p[1]) >= 0 &&
						   hexval(p[2]) >= 0) {
						c = (char)(hexval(p[1]) * 16 + hexval(p[2]));
						p += 2;
					}
					if (al_buf_append(out, &c, 1) < 0)
						return -ENOMEM;
				}
			}
		}
		q = *end == '&' ? end + 1 : end;
	}
	return n;
}

/*
 * OAuth 2.1 (1.5): every authorization server URL is https; plain http
 * only to this machine (localhost, 127.0.0.0/8, [::1]), where nothing
 * crosses a network. A URL that fails this is never fetched: the metadata
 * named in a 401 and the endpoints in the server's metadata are where the
 * client sends its secret, its code and its verifier.
 */
static int url_secure(const char *url)
{
	static const char *const local[] = {"localhost", "[::1]", NULL};
	const char *h, *e;
	size_t hl;

	if (url == NULL)
		return 0;
	if (strncasecmp(url, "https://", 8) == 0)
		return url[8] != '\0';
	if (strncasecmp(url, "http://", 7) != 0)
		return 0;
	h = url + 7;
	if (*h == '[') {
		e = strchr(h, ']');
		e = e != NULL ? e + 1 : h;
	} else {
		e = h + strcspn(h, ":/?#");
	}
	if (*e != '\0' && *e != ':' && *e != '/' && *e != '?')
		return 0;
	hl = (size_t)(e - h);
	if (memchr(h, '@', hl) != NULL)
		return 0;
	for (int i = 0; local[i] != NULL; i++)
		if (hl == strlen(local[i]) && strncasecmp(h, local[i], hl) == 0)
			return 1;
	/* 127.a.b.c, digits and dots only */
	if (hl > 4 && hl < 16 && strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") == hl)
		return 1;
	return 0;
}

/* RFC 6750 2.1 b64token: what a bearer token may be, so it can go in a header. */
static int b64token_ok(const char *t)
{
	size_t n =
	    strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/");

	if (n == 0)
		return 0;
	while (t[n] == '=')
		n++;
	return t[n] == '\0';
}

/* A secret-carrying string of a parsed JSON document, wiped in place
 * before the document is freed (jansson frees without wiping). */
static void wipe_json_str(json_t *v)
{
	if (json_is_string(v))
		al_wipe((char *)json_string_value(v), json_string_length(v));
}

/* ---- requests ---- */

static void o_done(al_http_call *call, const struct al_http_client_resp *resp, void *ud);

static int o_request(al_mcp_oauth *o, const char *method, const char *url, const char *ctype,
		     const char *body, const char *authz)
{
	struct al_http_header h[3];
	struct al_http_client_req req = {0};
	size_t n = 0;

	h[n++] = (struct al_http_header){"Accept", "application/json"};
	if (ctype != NULL)
		h[n++] = (struct al_http_header){"Content-Type", ctype};
	if (authz != NULL)
		h[n++] = (struct al_http_header){"Authorization", authz};
	req.method = method;
	req.url = url;
	req.headers = h;
	req.nheaders = n;
	req.body = body;
	req.body_len = body != NULL ? strlen(body) : 0;
	req.timeout_ms = TIMEOUT_MS;
	req.ca_file = o->ca_file;
	req.max_body_bytes = 1u << 20;
	return al_http_client_request(o->http, &req, o_done, o, &o->call);
}

static int next_candidate(al_mcp_oauth *o)
{
	if (o->cand >= o->ncands)
		return -ENOENT;
	return o_request(o, "GET", o->cands[o->cand++], NULL, NULL, NULL);
}

/* After a candidate that did not answer: the next one, or -EPROTO when none
 * is left. Any other failure to send is the flow's error: with no request
 * in flight, a 0 here would leave the flow waiting for nothing. */
static int next_or_fail(al_mcp_oauth *o)
{
	int rc = next_candidate(o);

	return rc == -ENOENT ? -EPROTO : rc;
}

static int set_cands(al_mcp_oauth *o, const char *a, const char *b, const char *c)
{
	const char *in[3] = {a, b, c};

	for (int i = 0; i < MAX_CANDS; i++) {
		al_free(o->cands[i]);
		o->cands[i] = NULL;
	}
	o->ncands = o->cand = 0;
	for (int i = 0; i < 3; i++) {
		if (in[i] == NULL)
			continue;
		o->cands[o->ncands] = al_strdup(in[i]);
		if (o->cands[o->ncands++] == NULL)
			return -ENOMEM;
	}
	return 0;
}

static int start_prm(al_mcp_oauth *o)
{
	al_buf origin = {0}, path = {0}, a = {0}, b = {0};
	int rc;

	o->st = ST_PRM;
	if (o->challenge_prm != NULL) {
		/* The 401 names it: it may point anywhere, so it must be https. */
		if (!url_secure(o->challenge_prm)) {
			al_warn(LOG_TAG, "resource_metadata URL is not https: refused");
			rc = -EPERM;
			goto done;
		}
		rc = set_cands(o, o->challenge_prm, NULL, NULL);
		if (rc < 0)
			goto done;
	} else {
		rc = split_url(o->resource_url, &origin, &path);
		if (rc < 0)
			goto done;
		rc = -ENOMEM;
		if (al_buf_appendf(&b, "%s/.well-known/oauth-protected-resource", origin.data) <
			0 ||
		    (path.len > 0 && al_buf_appendf(&a, "%s/.well-known/oauth-protected-resource%s",
						    origin.data, path.data) < 0))
			goto done;
		rc = set_cands(o, a.data != NULL ? a.data : b.data, a.data != NULL ? b.data : NULL,
			       NULL);
		if (rc < 0)
			goto done;
	}
	rc = next_candidate(o);
done:
	al_buf_free(&origin);
	al_buf_free(&path);
	al_buf_free(&a);
	al_buf_free(&b);
	return rc;
}

static int start_asmeta(al_mcp_oauth *o)
{
	al_buf origin = {0}, path = {0}, a = {0}, b = {0}, c = {0};
	int rc;

	o->st = ST_ASMETA;
	rc = split_url(o->issuer, &origin, &path);
	if (rc < 0)
		goto done;
	rc = -ENOMEM;
	if (path.len > 0) {
		/* RFC 8414 path insertion, then OpenID's, then OpenID appended. */
		if (al_buf_appendf(&a, "%s/.well-known/oauth-authorization-server%s", origin.data,
				   path.data) < 0 ||
		    al_buf_appendf(&b, "%s/.well-known/openid-configuration%s", origin.data,
				   path.data) < 0 ||
		    al_buf_appendf(&c, "%s%s/.well-known/openid-configuration", origin.data,
				   path.data) < 0)
			goto done;
	} else if (al_buf_appendf(&a, "%s/.well-known/oauth-authorization-server", origin.data) <
		       0 ||
		   al_buf_appendf(&b, "%s/.well-known/openid-configuration", origin.data) < 0) {
		goto done;
	}
	rc = set_cands(o, a.data, b.data, c.data);
	if (rc == 0)
		rc = next_candidate(o);
done:
	al_buf_free(&origin);
	al_buf_free(&path);
	al_buf_free(&a);
	al_buf_free(&b);
	al_buf_free(&c);
	return rc;
}

static int list_has(const json_t *list, const char *v)
{
	size_t i;
	const json_t *e;

	json_array_foreach(list, i, e)
	{
		if (json_is_string(e) && strcmp(json_string_value(e), v) == 0)
			return 1;
	}
	return 0;
}

static const char *as_str(const al_mcp_oauth *o, const char *key)
{
	return json_string_value(json_object_get(o->as, key));
}

static int set_str(char **dst, const char *v)
{
	al_free(*dst);
	*dst = v != NULL ? al_strdup(v) : NULL;
	return v != NULL && *dst == NULL ? -ENOMEM : 0;
}

static int start_authorize(al_mcp_oauth *o);

static int start_register(al_mcp_oauth *o)
{
	const json_t *methods = json_object_get(o->as, "token_endpoint_auth_methods_supported");
	json_t *req = NULL;
	char *body = NULL;
	const char *method;
	int rc;

	o->st = ST_REGISTER;
	if (o->client_id != NULL) {
		/* Pre-registered. client_secret_basic is the default method
		 * (RFC 8414) and the one to prefer when listed. */
		if (o->client_secret == NULL)
			method = "none";
		else if (methods == NULL || list_has(methods, "client_secret_basic"))
			method = "client_secret_basic";
		else if (list_has(methods, "client_secret_post"))
			method = "client_secret_post";
		else
			method = "client_secret_basic";
		rc = set_str(&o->auth_method, method);
		return rc < 0 ? rc : start_authorize(o);
	}
	if (json_is_true(json_object_get(o->as, "client_id_metadata_document_supported")) &&
	    o->cimd != NULL) {
		rc = set_str(&o->client_id, o->cimd);
		if (rc == 0)
			rc = set_str(&o->auth_method, "none");
		return rc < 0 ? rc : start_authorize(o);
	}
	if (as_str(o, "registration_endpoint") == NULL)
		return -EPROTO;
	method = json_string_value(json_array_get(methods, 0));
	if (method == NULL)
		method = "client_secret_basic";
	rc = set_str(&o->auth_method, method);
	if (rc < 0)
		return rc;
	req =
	    json_pack("{sss[s]s[ss]s[s]ssss}", "client_name", o->name, "redirect_uris", o->redirect,
		      "grant_types", "authorization_code", "refresh_token", "response_types",
		      "code", "token_endpoint_auth_method", method, "application_type", "native");
	body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
	rc = body != NULL ? o_request(o, "POST", as_str(o, "registration_endpoint"),
				      "application/json", body, NULL)
			  : -ENOMEM;
	json_decref(req);
	al_free(body);
	return rc;
}

/* 1 when the space-separated list has the n-byte scope w. */
static int scope_has(const char *list, const char *w, size_t n)
{
	const char *p = list;

	while (p != NULL && *p != '\0') {
		const char *e = strchr(p, ' ');
		size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
		if (l == n && strncmp(p, w, n) == 0)
			return 1;
		p = e != NULL ? e + 1 : NULL;
	}
	return 0;
}

static int start_authorize(al_mcp_oauth *o)
{
	al_buf url = {0}, q = {0}, scope = {0};
	unsigned char raw[32], digest[32];
	char challenge[64];
	const char *ep = as_str(o, "authorization_endpoint");
	const json_t *sup = json_object_get(o->prm, "scopes_supported");
	int rc = -ENOMEM;

	o->st = ST_AUTHORIZE;
	if (ep == NULL)
		return -EPROTO;
	if (al_random_bytes(raw, sizeof(raw)) < 0 ||
	    al_b64url_encode(raw, sizeof(raw), o->verifier, sizeof(o->verifier)) < 0 ||
	    al_random_bytes(raw, 16) < 0 ||
	    al_b64url_encode(raw, 16, o->state, sizeof(o->state)) < 0 ||
	    al_sha256(o->verifier, strlen(o->verifier), digest) < 0 ||
	    al_b64url_encode(digest, sizeof(digest), challenge, sizeof(challenge)) < 0) {
		rc = -EIO;
		goto done;
	}
	/* The challenge's scope first, then what the resource says it
	 * supports, else no scope at all (MCP scope selection strategy). */
	if (o->challenge_scope != NULL) {
		/* Step-up: keep what was asked for before, add the new scopes. */
		if (o->prior_scope != NULL && al_buf_append_str(&scope, o->prior_scope) < 0)
			goto done;
		for (const char *p = o->challenge_scope; *p != '\0';) {
			const char *e = p;
			while (*e != '\0' && *e != ' ')
				e++;
			if (e > p && !scope_has(scope.data, p, (size_t)(e - p)) &&
			    al_buf_appendf(&scope, "%s%.*s", scope.len > 0 ? " " : "", (int)(e - p),
					   p) < 0)
				goto done;
			p = *e == ' ' ? e + 1 : e;
		}
	} else if (json_is_array(sup)) {
		size_t i;
		const json_t *e;
		json_array_foreach(sup, i, e)
		{
			if (json_is_string(e) &&
			    al_buf_appendf(&scope, "%s%s", scope.len > 0 ? " " : "",
					   json_string_value(e)) < 0)
				goto done;
		}
	}
	if (form_add(&q, "response_type", "code") < 0 ||
	    form_add(&q, "client_id", o->client_id) < 0 ||
	    form_add(&q, "redirect_uri", o->redirect) < 0 || form_add(&q, "state", o->state) < 0 ||
	    form_add(&q, "code_challenge", challenge) < 0 ||
	    form_add(&q, "code_challenge_method", "S256") < 0 ||
	    form_add(&q, "resource", json_string_value(json_object_get(o->prm, "resource"))) < 0 ||
	    (scope.len > 0 && form_add(&q, "scope", scope.data) < 0) ||
	    (scope.len > 0 && set_str(&o->scope, scope.data) < 0))
		goto done;
	if (al_buf_appendf(&url, "%s%c%s", ep, strchr(ep, '?') != NULL ? '&' : '?', q.data) < 0)
		goto done;
	rc = o_request(o, "GET", url.data, NULL, NULL, NULL);
done:
	al_wipe(raw, sizeof(raw));
	al_buf_free(&url);
	al_buf_free(&q);
	al_buf_free(&scope);
	return rc;
}

static int start_token(al_mcp_oauth *o, const char *code)
{
	al_buf form = {0}, cred = {0}, authz = {0};
	char *b64 = NULL;
	const char *ep = as_str(o, "token_endpoint");
	int basic_auth =
	    strcmp(o->auth_method, "client_secret_basic") == 0 && o->client_secret != NULL;
	int rc = -ENOMEM;

	o->st = ST_TOKEN;
	if (ep == NULL)
		return -EPROTO;
	if (form_add(&form, "grant_type", "authorization_code") < 0 ||
	    form_add(&form, "code", code) < 0 || form_add(&form, "redirect_uri", o->redirect) < 0 ||
	    form_add(&form, "code_verifier", o->verifier) < 0 ||
	    form_add(&form, "resource", json_string_value(json_object_get(o->prm, "resource"))) <
		0 ||
	    (!basic_auth && form_add(&form, "client_id", o->client_id) < 0) ||
	    (strcmp(o->auth_method, "client_secret_post") == 0 &&
	     form_add(&form, "client_secret", o->client_secret) < 0))
		goto done;
	if (basic_auth) {
		/* RFC 6749 2.3.1: each part form-encoded, then base64. */
		if (pct_encode(&cred, o->client_id) < 0 || al_buf_append(&cred, ":", 1) < 0 ||
		    pct_encode(&cred, o->client_secret) < 0 ||
		    (b64 = al_malloc(al_b64_len(cred.len) + 1)) == NULL ||
		    al_b64_encode(cred.data, cred.len, b64, al_b64_len(cred.len) + 1) < 0 ||
		    al_buf_appendf(&authz, "Basic %s", b64) < 0)
			goto done;
	}
	rc = o_request(o, "POST", ep, "application/x-www-form-urlencoded", form.data,
		       basic_auth ? authz.data : NULL);
done:
	al_buf_wipe(&form);
	al_buf_free(&form);
	al_buf_wipe(&cred);
	al_buf_free(&cred);
	if (b64 != NULL)
		al_free_secret_str(b64);
	al_buf_wipe(&authz);
	al_buf_free(&authz);
	return rc;
}

/* ---- responses ---- */

static json_t *json_body(const struct al_http_client_resp *resp)
{
	json_t *j;

	if (resp->err < 0 || resp->status != 200)
		return NULL;
	j = json_loadb(resp->body, resp->body_len, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* The PRM's resource must identify the endpoint we talk to (RFC 9728 3.3):
 * equal, or a prefix ending at a path boundary. */
static int resource_ok(const char *resource, const char *url)
{
	size_t n;

	if (resource == NULL)
		return 0;
	n = strlen(resource);
	while (n > 0 && resource[n - 1] == '/')
		n--;
	return strncmp(resource, url, n) == 0 && (url[n] == '\0' || url[n] == '/' || url[n] == '?');
}

static int on_prm(al_mcp_oauth *o, const struct al_http_client_resp *resp)
{
	json_t *j = json_body(resp);
	const json_t *as;

	if (j == NULL || !json_is_array(json_object_get(j, "authorization_servers"))) {
		json_decref(j);
		return next_or_fail(o);
	}
	o->prm = j;
	if (!resource_ok(json_string_value(json_object_get(j, "resource")), o->resource_url)) {
		al_warn(LOG_TAG, "protected resource metadata names another resource: refused");
		return -EPERM;
	}
	as = json_array_get(json_object_get(j, "authorization_servers"), 0);
	if (!json_is_string(as))
		return -EPROTO;
	if (!url_secure(json_string_value(as))) {
		al_warn(LOG_TAG, "authorization server is not https: refused");
		return -EPERM;
	}
	if (o->want_issuer != NULL && strcmp(json_string_value(as), o->want_issuer) != 0) {
		al_warn(LOG_TAG, "the resource names another authorization server than the "
				 "configured issuer: refused");
		return -EPERM;
	}
	if (set_str(&o->issuer, json_string_value(as)) < 0)
		return -ENOMEM;
	return start_asmeta(o);
}

static int on_asmeta(al_mcp_oauth *o, const struct al_http_client_resp *resp)
{
	json_t *j = json_body(resp);

	if (j == NULL)
		return next_or_fail(o);
	o->as = j;
	/* RFC 8414 3.3: the metadata's issuer is the URL it was fetched for. */
	if (as_str(o, "issuer") == NULL || strcmp(as_str(o, "issuer"), o->issuer) != 0) {
		al_warn(LOG_TAG, "authorization server metadata issuer mismatch: refused");
		return -EPERM;
	}
	/* Where the code, the verifier and the client secret go. */
	if (!url_secure(as_str(o, "authorization_endpoint")) ||
	    !url_secure(as_str(o, "token_endpoint")) ||
	    (json_object_get(j, "registration_endpoint") != NULL &&
	     !url_secure(as_str(o, "registration_endpoint")))) {
		al_warn(LOG_TAG, "authorization server endpoint is not https: refused");
		return -EPERM;
	}
	if (json_is_array(json_object_get(j, "code_challenge_methods_supported")) &&
	    !list_has(json_object_get(j, "code_challenge_methods_supported"), "S256"))
		return -EPROTO; /* PKCE S256 is a MUST */
	return start_register(o);
}

static int on_register(al_mcp_oauth *o, const struct al_http_client_resp *resp)
{
	json_t *j = NULL;
	const char *m;
	int rc = -EPROTO;

	if (resp->err == 0 && (resp->status == 200 || resp->status == 201))
		j = json_loadb(resp->body, resp->body_len, 0, NULL);
	if (!json_is_string(json_object_get(j, "client_id")))
		goto done;
	rc = set_str(&o->client_id, json_string_value(json_object_get(j, "client_id")));
	if (rc == 0 && json_is_string(json_object_get(j, "client_secret"))) {
		al_free_secret_str(o->client_secret);
		o->client_secret =
		    al_strdup(json_string_value(json_object_get(j, "client_secret")));
		if (o->client_secret == NULL)
			rc = -ENOMEM;
	}
	m = json_string_value(json_object_get(j, "token_endpoint_auth_method"));
	if (rc == 0 && m != NULL)
		rc = set_str(&o->auth_method, m);
	if (rc == 0 && o->client_secret == NULL)
		rc = set_str(&o->auth_method, "none");
	if (rc == 0)
		rc = start_authorize(o);
done:
	wipe_json_str(json_object_get(j, "client_secret"));
	json_decref(j);
	return rc;
}

static int on_authorize(al_mcp_oauth *o, const struct al_http_client_resp *resp)
{
	const char *loc = al_http_client_resp_header(resp, "Location");
	al_buf code = {0}, state = {0}, iss = {0};
	int rc = -EPROTO, nstate, niss, ncode;

	if (resp->err < 0 || resp->status / 100 != 3 || loc == NULL ||
	    strncmp(loc, o->redirect, strlen(o->redirect)) != 0)
		goto done;
	rc = -ENOMEM;
	if ((ncode = query_param(loc, "code", &code)) < 0 ||
	    (nstate = query_param(loc, "state", &state)) < 0 ||
	    (niss = query_param(loc, "iss", &iss)) < 0)
		goto done;
	rc = -EPERM;
	if (nstate != 1 || strcmp(state.data, o->state) != 0 || ncode != 1 || code.len == 0 ||
	    niss > 1)
		goto done;
	/* RFC 9207: a present iss must be the issuer exactly (no
	 * normalisation), and it must be present when advertised. */
	if (niss == 1 && strcmp(iss.data, o->issuer) != 0) {
		al_warn(LOG_TAG, "authorization response from another issuer: refused");
		goto done;
	}
	if (niss == 0 && json_is_true(json_object_get(
			     o->as, "authorization_response_iss_parameter_supported"))) {
		al_warn(LOG_TAG, "authorization response without the advertised iss: refused");
		goto done;
	}
	rc = start_token(o, code.data);
done:
	al_buf_wipe(&code);
	al_buf_free(&code);
	al_buf_free(&state);
	al_buf_free(&iss);
	return rc;
}

static void o_done(al_http_call *call, const struct al_http_client_resp *resp, void *ud)
{
	al_mcp_oauth *o = ud;
	json_t *j;
	int rc = -EPROTO;

	o->call = NULL;
	switch (o->st) {
	case ST_PRM:
		rc = on_prm(o, resp);
		break;
	case ST_ASMETA:
		rc = on_asmeta(o, resp);
		break;
	case ST_REGISTER:
		rc = on_register(o, resp);
		break;
	case ST_AUTHORIZE:
		rc = on_authorize(o, resp);
		break;
	case ST_TOKEN:
		if (resp->err < 0) {
			rc = resp->err;
			break;
		}
		if (resp->status != 200) {
			rc = -EACCES;
			break;
		}
		j = json_body(resp);
		if (json_is_string(json_object_get(j, "access_token")) &&
		    b64token_ok(json_string_value(json_object_get(j, "access_token")))) {
			o->done(o->ud, 0, json_string_value(json_object_get(j, "access_token")),
				o->scope);
			wipe_json_str(json_object_get(j, "access_token"));
			wipe_json_str(json_object_get(j, "refresh_token"));
			json_decref(j);
			o_free(o);
			return;
		}
		/* refused (not a b64token), but still a credential */
		wipe_json_str(json_object_get(j, "access_token"));
		wipe_json_str(json_object_get(j, "refresh_token"));
		json_decref(j);
		rc = -EPROTO;
		break;
	}
	if (rc < 0)
		finish(o, rc, NULL);
}

int al_mcp_oauth_start(al_http_client *http, const struct al_mcp_oauth_opts *opts,
		       const char *resource_url, const char *www_authenticate,
		       const char *prior_scope, al_mcp_oauth_done_cb done, void *ud,
		       al_mcp_oauth **out)
{
	al_mcp_oauth *o = NULL;
	int rc = -ENOMEM;

	*out = NULL;
	if (http == NULL || opts == NULL || resource_url == NULL || done == NULL)
		return -EINVAL;
	o = al_calloc(1, sizeof(*o));
	if (o == NULL)
		goto fail;
	o->http = http;
	o->done = done;
	o->ud = ud;
	if (set_str(&o->client_id, opts->client_id) < 0 ||
	    set_str(&o->client_secret, opts->client_secret) < 0 ||
	    set_str(&o->cimd, opts->client_metadata_url) < 0 ||
	    set_str(&o->name, opts->client_name != NULL ? opts->client_name : "airlock") < 0 ||
	    set_str(&o->redirect, opts->redirect_uri != NULL ? opts->redirect_uri : DEF_REDIRECT) <
		0 ||
	    set_str(&o->ca_file, opts->ca_file) < 0 || set_str(&o->want_issuer, opts->issuer) < 0 ||
	    set_str(&o->resource_url, resource_url) < 0 ||
	    set_str(&o->prior_scope, prior_scope) < 0)
		goto fail;
	o->challenge_scope = al_mcp_oauth_challenge_param(www_authenticate, "scope");
	o->challenge_prm = al_mcp_oauth_challenge_param(www_authenticate, "resource_metadata");
	rc = start_prm(o);
	if (rc < 0)
		goto fail;
	*out = o;
	return 0;
fail:
	o_free(o);
	return rc;
}
