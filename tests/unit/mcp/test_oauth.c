/*
 * test_oauth.c - the MCP client's OAuth flow (src/mcp/oauth.c) against a
 * scripted loopback peer.
 *
 * TEST DOUBLE: one raw-socket HTTP/1.1 peer (tests/unit/support/peer.h)
 * plays both the protected resource (its metadata) and the authorization
 * server (metadata, registration, authorization, token), one request per
 * connection, recording each request line and body. The official suite's
 * auth scenarios (scripts/conformance-client.sh) are the real-peer
 * counterpart.
 */
#include "mcp/oauth.h"

#include "core/alloc.h"
#include "core/b64.h"
#include "core/hash.h"
#include "net/http_client.h"
#include "unit/support/peer.h"
#include "unit/support/raw_http.h"
#include "unit/unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum mode { M_OK, M_WRONG_RESOURCE, M_WRONG_ISS, M_HTTP_AS, M_HTTP_TOKEN, M_BAD_TOKEN };

struct as_peer {
	struct al_test_peer tp;
	pthread_mutex_t mu;
	enum mode mode;
	char authorize_q[2048]; /* the authorization request's target */
	char token_body[2048];
	char token_authz[256];
	char register_body[2048];
	int prm_root_hits, token_hits;
};

static void reply(int fd, int status, const char *extra, const char *body)
{
	char head[2048];

	snprintf(head, sizeof(head),
		 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s"
		 "Connection: close\r\n\r\n",
		 status, strlen(body), extra != NULL ? extra : "");
	al_test_send_str(fd, head);
	al_test_send_str(fd, body);
}

static void as_serve(int fd, void *ud)
{
	struct as_peer *p = ud;
	char buf[16384], target[2048] = "", body[4096], base[64], st[128] = "", extra[1024];
	size_t len = 0, hlen = 0, clen = 0;

	if (al_test_read_request(fd, buf, sizeof(buf), &len, &hlen, &clen) < 0) {
		close(fd);
		return;
	}
	sscanf(buf, "%*s %2047s", target);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", p->tp.port);
	pthread_mutex_lock(&p->mu);
	if (strcmp(target, "/.well-known/oauth-protected-resource/mcp") == 0) {
		snprintf(body, sizeof(body),
			 "{\"resource\":\"%s/mcp\",\"authorization_servers\":[\"%s/tenant\"],"
			 "\"scopes_supported\":[\"tickets:read\"]}",
			 p->mode == M_WRONG_RESOURCE ? "https://evil.example" : base,
			 p->mode == M_HTTP_AS ? "http://as.example.invalid" : base);
		reply(fd, 200, NULL, body);
	} else if (strcmp(target, "/.well-known/oauth-protected-resource") == 0) {
		p->prm_root_hits++;
		reply(fd, 404, NULL, "{}");
	} else if (strcmp(target, "/.well-known/oauth-authorization-server/tenant") == 0) {
		snprintf(body, sizeof(body),
			 "{\"issuer\":\"%s/tenant\",\"authorization_endpoint\":\"%s/authorize\","
			 "\"token_endpoint\":\"%s%s\",\"registration_endpoint\":\"%s/register\","
			 "\"code_challenge_methods_supported\":[\"S256\"],"
			 "\"authorization_response_iss_parameter_supported\":true,"
			 "\"token_endpoint_auth_methods_supported\":[\"client_secret_basic\"]}",
			 base, base, p->mode == M_HTTP_TOKEN ? "http://192.0.2.1" : base, "/token",
			 base);
		reply(fd, 200, NULL, body);
	} else if (strcmp(target, "/register") == 0) {
		snprintf(p->register_body, sizeof(p->register_body), "%.*s", (int)clen, buf + hlen);
		reply(fd, 201, NULL,
		      "{\"client_id\":\"cid 1\",\"client_secret\":\"s3cr:t\","
		      "\"token_endpoint_auth_method\":\"client_secret_basic\"}");
	} else if (strncmp(target, "/authorize?", 11) == 0) {
		const char *s = strstr(target, "state=");
		snprintf(p->authorize_q, sizeof(p->authorize_q), "%s", target);
		if (s != NULL)
			sscanf(s + 6, "%127[^&]", st);
		snprintf(extra, sizeof(extra),
			 "Location: http://localhost:3000/callback?code=c0de&state=%s&iss=%s%s\r\n",
			 st, p->mode == M_WRONG_ISS ? "https%3A%2F%2Fevil.example" : base,
			 p->mode == M_WRONG_ISS ? "" : "%2Ftenant");
		reply(fd, 302, extra, "{}");
	} else if (strcmp(target, "/token") == 0) {
		p->token_hits++;
		snprintf(p->token_body, sizeof(p->token_body), "%.*s", (int)clen, buf + hlen);
		al_test_header(buf, "Authorization", p->token_authz, sizeof(p->token_authz));
		reply(fd, 200, "Cache-Control: no-store\r\n",
		      p->mode == M_BAD_TOKEN
			  ? "{\"access_token\":\"at\\r\\nX-Evil: 1\",\"token_type\":\"Bearer\"}"
			  : "{\"access_token\":\"at-123\",\"token_type\":\"Bearer\"}");
	} else {
		reply(fd, 404, NULL, "{}");
	}
	pthread_mutex_unlock(&p->mu);
	al_test_close_drained(fd);
}

struct outcome {
	int done, err;
	char token[64], scope[64];
};

static void done_cb(void *ud, int err, const char *token, const char *scope)
{
	struct outcome *o = ud;

	o->done = 1;
	o->err = err;
	if (token != NULL)
		snprintf(o->token, sizeof(o->token), "%s", token);
	if (scope != NULL)
		snprintf(o->scope, sizeof(o->scope), "%s", scope);
}

static void run_flow_opts(struct as_peer *p, enum mode mode, const char *challenge,
			  const struct al_mcp_oauth_opts *opts, struct outcome *out);

static void run_flow(struct as_peer *p, enum mode mode, const char *challenge, struct outcome *out)
{
	struct al_mcp_oauth_opts opts = {.client_name = "unit"};

	run_flow_opts(p, mode, challenge, &opts, out);
}

static void run_flow_opts(struct as_peer *p, enum mode mode, const char *challenge,
			  const struct al_mcp_oauth_opts *opts, struct outcome *out)
{
	uv_loop_t loop;
	al_http_client *http;
	al_mcp_oauth *o = NULL;
	char url[128];

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	p->mode = mode;
	al_test_peer_start(&p->tp, as_serve, p);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", p->tp.port);
	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&loop, &http), 0);
	AL_ASSERT_INT_EQ(al_mcp_oauth_start(http, opts, url, challenge, NULL, done_cb, out, &o), 0);
	while (!out->done)
		uv_run(&loop, UV_RUN_ONCE);
	al_http_client_free(http);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	al_test_peer_stop(&p->tp);
}

/* The value of query/form parameter name in s (raw, still encoded). */
static const char *param(const char *s, const char *name, char *out, size_t n)
{
	char key[64];
	const char *at;

	snprintf(key, sizeof(key), "%s=", name);
	at = strstr(s, key);
	while (at != NULL && at != s && at[-1] != '&' && at[-1] != '?')
		at = strstr(at + 1, key);
	if (at == NULL)
		return NULL;
	snprintf(out, n, "%.*s", (int)strcspn(at + strlen(key), "& "), at + strlen(key));
	return out;
}

AL_TEST(mcp_oauth_full_flow_registration_pkce_basic_auth)
{
	struct as_peer p;
	struct outcome out = {0};
	char v[256], chal[128], expect[64], res[256];
	unsigned char d[32];

	run_flow(&p, M_OK, "Bearer error=\"invalid_token\"", &out);
	AL_ASSERT_INT_EQ(out.err, 0);
	AL_ASSERT_STR_EQ(out.token, "at-123");
	/* No resource_metadata in the challenge: the path-based URL first. */
	AL_ASSERT_INT_EQ(p.prm_root_hits, 0);
	/* Registration asked for a native client and the supported method. */
	AL_ASSERT(strstr(p.register_body, "\"application_type\":\"native\"") != NULL);
	AL_ASSERT(strstr(p.register_body, "\"client_secret_basic\"") != NULL);
	/* The authorization request: S256, the resource as published, the
	 * scopes the resource supports (no scope in the challenge). */
	AL_ASSERT_STR_EQ(param(p.authorize_q, "code_challenge_method", v, sizeof(v)), "S256");
	AL_ASSERT_STR_EQ(param(p.authorize_q, "client_id", v, sizeof(v)), "cid%201");
	AL_ASSERT_STR_EQ(param(p.authorize_q, "scope", v, sizeof(v)), "tickets%3Aread");
	AL_ASSERT_STR_EQ(out.scope, "tickets:read");
	snprintf(res, sizeof(res), "http%%3A%%2F%%2F127.0.0.1%%3A%d%%2Fmcp", p.tp.port);
	AL_ASSERT_STR_EQ(param(p.authorize_q, "resource", v, sizeof(v)), res);
	AL_ASSERT_STR_EQ(param(p.token_body, "resource", v, sizeof(v)), res);
	/* The verifier sent to the token endpoint hashes to the challenge. */
	AL_ASSERT_NOT_NULL(param(p.authorize_q, "code_challenge", chal, sizeof(chal)));
	AL_ASSERT_NOT_NULL(param(p.token_body, "code_verifier", v, sizeof(v)));
	AL_ASSERT_INT_EQ(al_sha256(v, strlen(v), d), 0);
	AL_ASSERT_INT_EQ(al_b64url_encode(d, sizeof(d), expect, sizeof(expect)), 0);
	AL_ASSERT_STR_EQ(chal, expect);
	AL_ASSERT_STR_EQ(param(p.token_body, "code", v, sizeof(v)), "c0de");
	/* client_secret_basic: form-encoded id and secret, then base64;
	 * neither in the body. */
	AL_ASSERT_STR_EQ(p.token_authz, "Basic Y2lkJTIwMTpzM2NyJTNBdA==");
	AL_ASSERT_NULL(param(p.token_body, "client_secret", v, sizeof(v)));
}

AL_TEST(mcp_oauth_refuses_foreign_resource_and_wrong_issuer)
{
	struct as_peer p;
	struct outcome a = {0}, b = {0};

	run_flow(&p, M_WRONG_RESOURCE, NULL, &a);
	AL_ASSERT_INT_EQ(a.err, -EPERM);
	AL_ASSERT_INT_EQ(p.token_hits, 0);
	AL_ASSERT_STR_EQ(p.authorize_q, "");

	run_flow(&p, M_WRONG_ISS, NULL, &b);
	AL_ASSERT_INT_EQ(b.err, -EPERM);
	AL_ASSERT(p.authorize_q[0] != '\0'); /* it got as far as the redirect */
	AL_ASSERT_INT_EQ(p.token_hits, 0);   /* and the code was not redeemed */
}

AL_TEST(mcp_oauth_challenge_params)
{
	const char *h = "Bearer realm=\"x\", error=insufficient_scope, "
			"scope=\"tickets:read tickets:write\", "
			"resource_metadata=\"http://h/.well-known/oauth-protected-resource\"";
	char *v;

	v = al_mcp_oauth_challenge_param(h, "scope");
	AL_ASSERT_STR_EQ(v, "tickets:read tickets:write");
	al_free(v);
	v = al_mcp_oauth_challenge_param(h, "error");
	AL_ASSERT_STR_EQ(v, "insufficient_scope");
	al_free(v);
	v = al_mcp_oauth_challenge_param(h, "resource_metadata");
	AL_ASSERT_STR_EQ(v, "http://h/.well-known/oauth-protected-resource");
	al_free(v);
	AL_ASSERT_NULL(al_mcp_oauth_challenge_param(h, "missing"));
	AL_ASSERT_NULL(al_mcp_oauth_challenge_param(NULL, "scope"));
	v = al_mcp_oauth_challenge_param("Bearer scope=\"a\\\"b\"", "scope");
	AL_ASSERT_STR_EQ(v, "a\"b");
	al_free(v);
}

/*
 * Security review: authorization server URLs must be https (plain http
 * only to loopback). A resource that names an http issuer elsewhere, or
 * metadata with an http token endpoint, is refused before anything is
 * sent there; a 401 naming http metadata is refused at once.
 */
AL_TEST(mcp_oauth_refuses_non_https_authorization_server)
{
	struct as_peer p;
	struct outcome a = {0}, b = {0};
	uv_loop_t loop;
	al_http_client *http;
	al_mcp_oauth *o = NULL;
	struct al_mcp_oauth_opts opts = {.client_id = "cid", .client_secret = "s3cret"};

	run_flow(&p, M_HTTP_AS, NULL, &a);
	AL_ASSERT_INT_EQ(a.err, -EPERM);
	AL_ASSERT_STR_EQ(p.authorize_q, "");

	run_flow(&p, M_HTTP_TOKEN, NULL, &b);
	AL_ASSERT_INT_EQ(b.err, -EPERM);
	AL_ASSERT_STR_EQ(p.register_body, "");
	AL_ASSERT_STR_EQ(p.authorize_q, "");
	AL_ASSERT_INT_EQ(p.token_hits, 0);

	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&loop, &http), 0);
	AL_ASSERT_INT_EQ(
	    al_mcp_oauth_start(http, &opts, "https://mcp.example/mcp",
			       "Bearer resource_metadata=\"http://evil.example/.well-known/"
			       "oauth-protected-resource\"",
			       NULL, done_cb, &a, &o),
	    -EPERM);
	AL_ASSERT_NULL(o);
	al_http_client_free(http);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* A token that is not an RFC 6750 b64token (here with CR LF) is refused. */
AL_TEST(mcp_oauth_refuses_a_token_that_cannot_be_a_header)
{
	struct as_peer p;
	struct outcome a = {0};

	run_flow(&p, M_BAD_TOKEN, NULL, &a);
	AL_ASSERT_INT_EQ(p.token_hits, 1);
	AL_ASSERT_INT_EQ(a.err, -EPROTO);
	AL_ASSERT_STR_EQ(a.token, "");
}

/*
 * A pre-registered secret with the expected issuer: a resource naming
 * another authorization server is refused before anything reaches it; the
 * issuer it names (loopback here, https in life) is otherwise acceptable.
 */
AL_TEST(mcp_oauth_pre_registered_secret_goes_only_to_the_configured_issuer)
{
	struct as_peer p;
	struct outcome a = {0}, b = {0};
	struct al_mcp_oauth_opts opts = {
	    .client_id = "cid", .client_secret = "s3cret", .issuer = "https://as.bank.example"};

	run_flow_opts(&p, M_OK, NULL, &opts, &a);
	AL_ASSERT_INT_EQ(a.err, -EPERM);
	AL_ASSERT_STR_EQ(p.authorize_q, "");
	AL_ASSERT_INT_EQ(p.token_hits, 0);

	/* Without an expected issuer the same pre-registered flow runs to a token. */
	opts.issuer = NULL;
	run_flow_opts(&p, M_OK, NULL, &opts, &b);
	AL_ASSERT_INT_EQ(b.err, 0);
	AL_ASSERT_INT_EQ(p.token_hits, 1);
}
