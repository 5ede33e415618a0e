/* Route matching and the credential scope rule (router.c). */
#include "api/internal.h"
#include "unit/unit.h"

#include <errno.h>

static const struct al_api_route *match(const char *method, const char *path, int *rc,
					char params[AL_API_MAX_PARAMS][AL_ID_MAX], char *allow)
{
	const struct al_api_route *routes, *r = NULL;
	size_t n;

	routes = al_api_routes(&n);
	*rc = al_api_route_match(routes, n, method, path, &r, params, allow, 64);
	return r;
}

AL_TEST(api_router_matches_params)
{
	char p[AL_API_MAX_PARAMS][AL_ID_MAX] = {{0}}, allow[64];
	int rc;
	const struct al_api_route *r =
	    match("POST", "/v1/environments/env_1/work/work_2/heartbeat", &rc, p, allow);

	AL_ASSERT_INT_EQ(rc, 0);
	AL_ASSERT(r->fn == al_api_work_heartbeat);
	AL_ASSERT_STR_EQ(p[0], "env_1");
	AL_ASSERT_STR_EQ(p[1], "work_2");
}

AL_TEST(api_router_unknown_path_is_enoent)
{
	char p[AL_API_MAX_PARAMS][AL_ID_MAX], allow[64];
	int rc;

	match("GET", "/v1/nothing", &rc, p, allow);
	AL_ASSERT_INT_EQ(rc, -ENOENT);
	match("GET", "/v1/agents/a/b/c", &rc, p, allow);
	AL_ASSERT_INT_EQ(rc, -ENOENT);
	/* Empty segments and odd characters never match a parameter. */
	match("GET", "/v1/agents/", &rc, p, allow);
	AL_ASSERT_INT_EQ(rc, 0); /* trailing slash tolerated: the list route */
	match("GET", "/v1/agents/a%20b", &rc, p, allow);
	AL_ASSERT_INT_EQ(rc, -ENOENT);
	match("GET", "/v1/sessions/a b/events", &rc, p, allow);
	AL_ASSERT_INT_EQ(rc, -ENOENT);
}

AL_TEST(api_router_wrong_method_lists_allowed)
{
	char p[AL_API_MAX_PARAMS][AL_ID_MAX], allow[64];
	int rc;

	match("PUT", "/v1/agents/agent_1", &rc, p, allow);
	AL_ASSERT_INT_EQ(rc, -EOPNOTSUPP);
	AL_ASSERT_STR_EQ(allow, "GET, POST");
}

AL_TEST(api_router_literal_segment_beats_parameter)
{
	char p[AL_API_MAX_PARAMS][AL_ID_MAX], allow[64];
	int rc;
	const struct al_api_route *r = match("GET", "/v1/environments/e/work/poll", &rc, p, allow);

	AL_ASSERT_INT_EQ(rc, 0);
	AL_ASSERT(r->fn == al_api_work_poll);
	/* POST .../work/poll is a 405, not an update of a work item named "poll". */
	match("POST", "/v1/environments/e/work/poll", &rc, p, allow);
	AL_ASSERT_INT_EQ(rc, -EOPNOTSUPP);
	r = match("GET", "/v1/environments/e/work/work_1", &rc, p, allow);
	AL_ASSERT_INT_EQ(rc, 0);
	AL_ASSERT(r->fn == al_api_work_get);
}

AL_TEST(api_router_param_too_long_is_not_found)
{
	char p[AL_API_MAX_PARAMS][AL_ID_MAX], allow[64], path[256];
	int rc;

	snprintf(path, sizeof(path), "/v1/agents/%0100d", 7);
	match("GET", path, &rc, p, allow);
	AL_ASSERT_INT_EQ(rc, -ENOENT);
}

static int allowed(enum al_auth_kind kind, const char *env, const char *sess, const char *work,
		   const char *method, const char *path)
{
	char p[AL_API_MAX_PARAMS][AL_ID_MAX] = {{0}}, allow[64];
	struct al_auth a = {0};
	int rc;
	const struct al_api_route *r = match(method, path, &rc, p, allow);

	AL_ASSERT_INT_EQ(rc, 0);
	a.kind = kind;
	snprintf(a.environment_id, sizeof(a.environment_id), "%s", env);
	snprintf(a.session_id, sizeof(a.session_id), "%s", sess);
	snprintf(a.work_id, sizeof(a.work_id), "%s", work);
	return al_api_auth_allowed(&a, r, p);
}

AL_TEST(api_auth_scope_rules)
{
	/* Admin: everything. */
	AL_ASSERT_INT_EQ(allowed(AL_AUTH_ADMIN, "", "", "", "POST", "/v1/agents"), 1);
	AL_ASSERT_INT_EQ(allowed(AL_AUTH_ADMIN, "", "", "", "GET", "/v1/environments/e1/work/poll"),
			 1);
	/* Environment key: its own environment's queue only; no admin resources. */
	AL_ASSERT_INT_EQ(
	    allowed(AL_AUTH_ENVIRONMENT, "e1", "", "", "GET", "/v1/environments/e1/work/poll"), 1);
	AL_ASSERT_INT_EQ(
	    allowed(AL_AUTH_ENVIRONMENT, "e1", "", "", "GET", "/v1/environments/e2/work/poll"), 0);
	AL_ASSERT_INT_EQ(allowed(AL_AUTH_ENVIRONMENT, "e1", "", "", "POST", "/v1/agents"), 0);
	AL_ASSERT_INT_EQ(
	    allowed(AL_AUTH_ENVIRONMENT, "e1", "", "", "POST", "/v1/environments/e1/keys"), 0);
	/* Sessions token: its session, its work item's heartbeat/stop, nothing else. */
	AL_ASSERT_INT_EQ(allowed(AL_AUTH_SESSION, "e1", "s1", "w1", "GET", "/v1/sessions/s1"), 1);
	AL_ASSERT_INT_EQ(allowed(AL_AUTH_SESSION, "e1", "s1", "w1", "GET", "/v1/sessions/s2"), 0);
	AL_ASSERT_INT_EQ(
	    allowed(AL_AUTH_SESSION, "e1", "s1", "w1", "GET", "/v1/sessions/s1/events/stream"), 1);
	AL_ASSERT_INT_EQ(allowed(AL_AUTH_SESSION, "e1", "s1", "w1", "POST",
				 "/v1/environments/e1/work/w1/heartbeat"),
			 1);
	AL_ASSERT_INT_EQ(allowed(AL_AUTH_SESSION, "e1", "s1", "w1", "POST",
				 "/v1/environments/e1/work/w2/heartbeat"),
			 0);
	AL_ASSERT_INT_EQ(
	    allowed(AL_AUTH_SESSION, "e1", "s1", "w1", "GET", "/v1/environments/e1/work/poll"), 0);
	AL_ASSERT_INT_EQ(
	    allowed(AL_AUTH_SESSION, "e1", "s1", "w1", "POST", "/v1/sessions/s1/archive"), 0);
	AL_ASSERT_INT_EQ(allowed(AL_AUTH_NONE, "", "", "", "GET", "/v1/agents"), 0);
}

AL_TEST(api_id_at_brackets_real_ids)
{
	char lo[AL_ID_MAX], hi[AL_ID_MAX], id[AL_ID_MAX];

	AL_ASSERT_INT_EQ(al_id_new("agent", id, sizeof(id)), 0);
	/* Any id made now sorts between the bounds of a window around now. */
	AL_ASSERT_INT_EQ(al_api_id_at("agent", 0, 0, lo, sizeof(lo)), 0);
	AL_ASSERT_INT_EQ(al_api_id_at("agent", (int64_t)1 << 46, 1, hi, sizeof(hi)), 0);
	AL_ASSERT(strcmp(lo, id) < 0);
	AL_ASSERT(strcmp(id, hi) < 0);
	AL_ASSERT_INT_EQ((long long)strlen(lo), (long long)strlen(id));
}
