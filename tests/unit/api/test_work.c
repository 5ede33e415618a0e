/*
 * The work queue, credentials and pagination over real HTTP against an
 * in-process control plane (see fixture.h).
 */
#include "core/b64.h"
#include "unit/api/fixture.h"
#include "unit/unit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Decodes the work item's secret into the sessions token. */
static void token_of(json_t *work, char *tok, size_t len)
{
	const char *secret = str(work, "secret");
	char raw[512];
	size_t n = 0;
	json_t *j;

	AL_ASSERT_NOT_NULL(secret);
	AL_ASSERT_INT_EQ(al_b64url_decode(secret, strlen(secret), raw, sizeof(raw) - 1, &n), 0);
	raw[n] = '\0';
	j = json_loads(raw, 0, NULL);
	AL_ASSERT_NOT_NULL(j);
	AL_ASSERT(strncmp(str(j, "sessions_token"), "alk_sess_", 9) == 0);
	snprintf(tok, len, "Authorization: Bearer %s", str(j, "sessions_token"));
	json_decref(j);
}

static void poll_one(struct al_fx *fx, const char *env, const char *envkey, const char *query,
		     json_t **out)
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/environments/%s/work/poll%s", env, query);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, envkey, NULL, out), 200);
}

static void env_key(struct al_fx *fx, const char *env, char *hdr, size_t len)
{
	char path[128];
	json_t *o = NULL;

	snprintf(path, sizeof(path), "/v1/environments/%s/keys", env);
	/* Environment keys are airlock's endpoint: no beta header needed. */
	AL_ASSERT_INT_EQ(al_fx_req_nobeta(fx, "POST", path, "admin", NULL, &o), 200);
	AL_ASSERT_STR_EQ(str(o, "type"), "environment_key");
	AL_ASSERT(strncmp(str(o, "key"), "alk_env_", 8) == 0);
	snprintf(hdr, len, "Authorization: Bearer %s", str(o, "key"));
	json_decref(o);
}

static void work_lifecycle(struct al_fx *fx)
{
	char agent[64], env[64], env2[64], sess[64], work[64], ek[160], ek2[160], tok[200];
	char path[256], last[64], body[256];
	json_t *o = NULL, *d;

	al_fx_setup(fx, agent, env);
	al_fx_setup(fx, agent, env2);
	al_fx_session(fx, agent, env, sess);
	env_key(fx, env, ek, sizeof(ek));
	env_key(fx, env2, ek2, sizeof(ek2));

	/* Empty queue: JSON null at once. */
	poll_one(fx, env, ek, "", &o);
	AL_ASSERT(json_is_null(o));
	json_decref(o);

	al_fx_enqueue(fx, env, sess, work);
	snprintf(path, sizeof(path), "/v1/environments/%s/work/stats", env);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, ek, NULL, &o), 200);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(o, "depth")), 1);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(o, "pending")), 0);
	AL_ASSERT(json_is_string(json_object_get(o, "oldest_queued_at")));
	json_decref(o);

	/* Another environment's key cannot poll this queue. */
	snprintf(path, sizeof(path), "/v1/environments/%s/work/poll", env);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, ek2, NULL, &o), 403);
	AL_ASSERT_STR_EQ(str(json_object_get(o, "error"), "type"), "permission_error");
	json_decref(o);

	poll_one(fx, env, ek, "?block_ms=10", &o);
	AL_ASSERT_STR_EQ(str(o, "id"), work);
	AL_ASSERT_STR_EQ(str(o, "type"), "work");
	AL_ASSERT_STR_EQ(str(o, "state"), "queued");
	AL_ASSERT_STR_EQ(str(json_object_get(o, "data"), "id"), sess);
	AL_ASSERT_STR_EQ(str(json_object_get(o, "data"), "type"), "session");
	token_of(o, tok, sizeof(tok));
	json_decref(o);

	/* Delivered, not acked: pending, and not handed out again within the reclaim window. */
	poll_one(fx, env, ek, "", &o);
	AL_ASSERT(json_is_null(o));
	json_decref(o);
	snprintf(path, sizeof(path), "/v1/environments/%s/work/stats", env);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, "admin", NULL, &o), 200);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(o, "depth")), 0);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(o, "pending")), 1);
	json_decref(o);

	/* The secret never shows on reads. */
	snprintf(path, sizeof(path), "/v1/environments/%s/work/%s", env, work);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, ek, NULL, &o), 200);
	AL_ASSERT(json_is_null(json_object_get(o, "secret")));
	json_decref(o);

	snprintf(path, sizeof(path), "/v1/environments/%s/work/%s/ack", env, work);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, ek, NULL, &o), 200);
	AL_ASSERT_STR_EQ(str(o, "state"), "starting");
	AL_ASSERT(json_is_string(json_object_get(o, "acknowledged_at")));
	json_decref(o);

	/* First beat claims the lease with NO_HEARTBEAT, using the sessions token. */
	snprintf(path, sizeof(path),
		 "/v1/environments/%s/work/%s/heartbeat?expected_last_heartbeat=NO_HEARTBEAT"
		 "&desired_ttl_seconds=30",
		 env, work);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, tok, NULL, &o), 200);
	AL_ASSERT_STR_EQ(str(o, "type"), "work_heartbeat");
	AL_ASSERT(json_is_true(json_object_get(o, "lease_extended")));
	AL_ASSERT_STR_EQ(str(o, "state"), "active");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(o, "ttl_seconds")), 30);
	snprintf(last, sizeof(last), "%s", str(o, "last_heartbeat"));
	json_decref(o);

	/* A stale expectation is a 412 carrying the current lease. */
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, tok, NULL, &o), 412);
	d = json_object_get(json_object_get(o, "error"), "details");
	AL_ASSERT_STR_EQ(str(d, "error_code"), "heartbeat_precondition_failed");
	AL_ASSERT_STR_EQ(str(json_object_get(d, "current_state"), "state"), "active");
	AL_ASSERT_STR_EQ(str(json_object_get(d, "current_state"), "last_heartbeat"), last);
	json_decref(o);

	snprintf(path, sizeof(path),
		 "/v1/environments/%s/work/%s/heartbeat?expected_last_heartbeat=%s", env, work,
		 last);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, tok, NULL, &o), 200);
	AL_ASSERT(strcmp(str(o, "last_heartbeat"), last) != 0);
	snprintf(last, sizeof(last), "%s", str(o, "last_heartbeat"));
	json_decref(o);

	/* The sessions token reaches its session, and nothing else. */
	snprintf(path, sizeof(path), "/v1/sessions/%s", sess);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, tok, NULL, &o), 200);
	AL_ASSERT_STR_EQ(str(o, "id"), sess);
	json_decref(o);
	snprintf(path, sizeof(path), "/v1/sessions/%s/events", sess);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, tok, NULL, NULL), 200);
	{
		char other[64];
		al_fx_session(fx, agent, env, other);
		snprintf(path, sizeof(path), "/v1/sessions/%s", other);
		AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, tok, NULL, &o), 403);
		json_decref(o);
		snprintf(path, sizeof(path), "/v1/sessions/%s/events", other);
		AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, tok,
					   "{\"events\":[{\"type\":\"user.interrupt\"}]}", NULL),
				 403);
	}
	snprintf(path, sizeof(path), "/v1/environments/%s/work/poll", env);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, tok, NULL, NULL), 403);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/agents", tok, NULL, NULL), 403);

	/* Stop without force while running: stopping; the next beat says so. */
	snprintf(path, sizeof(path), "/v1/environments/%s/work/%s/stop", env, work);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, ek, "{}", &o), 200);
	AL_ASSERT_STR_EQ(str(o, "state"), "stopping");
	json_decref(o);
	snprintf(path, sizeof(path),
		 "/v1/environments/%s/work/%s/heartbeat?expected_last_heartbeat=whatever", env,
		 work);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, tok, NULL, &o), 200);
	AL_ASSERT(json_is_false(json_object_get(o, "lease_extended")));
	AL_ASSERT_STR_EQ(str(o, "state"), "stopping");
	json_decref(o);
	snprintf(path, sizeof(path), "/v1/environments/%s/work/%s/stop", env, work);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, tok, "{\"force\":true}", &o), 200);
	AL_ASSERT_STR_EQ(str(o, "state"), "stopped");
	AL_ASSERT(json_is_string(json_object_get(o, "stopped_at")));
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, ek, "{\"force\":true}", &o), 409);
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, ek, "{\"force\":\"yes\"}", &o), 400);
	json_decref(o);
	/* A stopped item's token is revoked. */
	snprintf(path, sizeof(path), "/v1/sessions/%s", sess);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, tok, NULL, &o), 401);
	AL_ASSERT_STR_EQ(str(json_object_get(o, "error"), "type"), "authentication_error");
	json_decref(o);

	/* Metadata patch and list. */
	snprintf(path, sizeof(path), "/v1/environments/%s/work/%s", env, work);
	AL_ASSERT_INT_EQ(
	    al_fx_req(fx, "POST", path, ek, "{\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}", NULL), 200);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", path, ek, "{\"metadata\":{\"a\":null}}", &o), 200);
	AL_ASSERT_NULL(json_object_get(json_object_get(o, "metadata"), "a"));
	AL_ASSERT_STR_EQ(str(json_object_get(o, "metadata"), "b"), "2");
	json_decref(o);
	snprintf(path, sizeof(path), "/v1/environments/%s/work", env);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, ek, NULL, &o), 200);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(o, "data")), 1);
	AL_ASSERT(json_is_null(json_object_get(o, "next_page")));
	json_decref(o);
	snprintf(body, sizeof(body), "/v1/environments/%s/work/%s", env2, work);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", body, "admin", NULL, NULL), 404);
}

AL_TEST(api_work_lifecycle_over_http)
{
	al_fx_run(work_lifecycle);
}

static void redelivery(struct al_fx *fx)
{
	char agent[64], env[64], sess[64], work[64], ek[160], t1[200], t2[200], path[256];
	json_t *o = NULL;

	al_fx_setup(fx, agent, env);
	al_fx_session(fx, agent, env, sess);
	env_key(fx, env, ek, sizeof(ek));
	al_fx_enqueue(fx, env, sess, work);
	poll_one(fx, env, ek, "", &o);
	AL_ASSERT_STR_EQ(str(o, "id"), work);
	token_of(o, t1, sizeof(t1));
	json_decref(o);
	snprintf(path, sizeof(path), "/v1/sessions/%s", sess);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, t1, NULL, NULL), 200);
	/* Unacked and older than reclaim_older_than_ms=0: delivered again, new token. */
	usleep(5000);
	poll_one(fx, env, ek, "?reclaim_older_than_ms=0", &o);
	AL_ASSERT_STR_EQ(str(o, "id"), work);
	token_of(o, t2, sizeof(t2));
	json_decref(o);
	AL_ASSERT(strcmp(t1, t2) != 0);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, t1, NULL, NULL), 401);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, t2, NULL, NULL), 200);
}

AL_TEST(api_work_redelivery_revokes_old_token)
{
	al_fx_run(redelivery);
}

struct waiter {
	struct al_fx *fx;
	const char *env, *ek;
	json_t *got;
};

static void *poll_thread(void *arg)
{
	struct waiter *w = arg;

	poll_one(w->fx, w->env, w->ek, "?block_ms=999", &w->got);
	return NULL;
}

static void long_poll(struct al_fx *fx)
{
	char agent[64], env[64], sess[64], work[64], ek[160];
	struct waiter w = {fx, env, ek, NULL};
	pthread_t th;
	json_t *o = NULL;
	struct timespec a, b;

	al_fx_setup(fx, agent, env);
	al_fx_session(fx, agent, env, sess);
	env_key(fx, env, ek, sizeof(ek));
	/* Nothing arrives: null after the block, not before. */
	clock_gettime(CLOCK_MONOTONIC, &a);
	poll_one(fx, env, ek, "?block_ms=200", &o);
	clock_gettime(CLOCK_MONOTONIC, &b);
	AL_ASSERT(json_is_null(o));
	json_decref(o);
	AL_ASSERT_INT_GE((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 150);
	/* Work enqueued while a poll waits wakes it with the item. */
	AL_ASSERT_INT_EQ(pthread_create(&th, NULL, poll_thread, &w), 0);
	usleep(150000);
	al_fx_enqueue(fx, env, sess, work);
	pthread_join(th, NULL);
	AL_ASSERT_NOT_NULL(w.got);
	AL_ASSERT_STR_EQ(str(w.got, "id"), work);
	json_decref(w.got);
	AL_ASSERT_INT_EQ(
	    al_fx_req(fx, "GET", "/v1/environments/x/work/poll?block_ms=1000", "admin", NULL, &o),
	    400);
	json_decref(o);
}

AL_TEST(api_work_long_poll_wakes)
{
	al_fx_run(long_poll);
}

static void auth_and_admin_key(struct al_fx *fx)
{
	char path[700], rid[64] = "";
	struct stat st;
	json_t *o = NULL;

	snprintf(path, sizeof(path), "%s/admin.key", fx->dir);
	AL_ASSERT_INT_EQ(stat(path, &st), 0);
	AL_ASSERT_INT_EQ(st.st_mode & 0777, 0600);
	AL_ASSERT(strncmp(fx->admin_key, "alk_admin_", 10) == 0);

	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/agents", NULL, NULL, &o), 401);
	AL_ASSERT_STR_EQ(str(json_object_get(o, "error"), "type"), "authentication_error");
	AL_ASSERT_STR_EQ(str(o, "type"), "error");
	/* The SDK's ErrorResponse requires request_id; each error gets its own. */
	AL_ASSERT(str(o, "request_id") != NULL && strncmp(str(o, "request_id"), "req_", 4) == 0);
	snprintf(rid, sizeof(rid), "%s", str(o, "request_id"));
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/agents", "x-api-key: alk_admin_wrong", NULL, &o),
			 401);
	AL_ASSERT(strstr(str(json_object_get(o, "error"), "message"), "wrong") == NULL);
	AL_ASSERT(str(o, "request_id") != NULL && strncmp(str(o, "request_id"), "req_", 4) == 0);
	AL_ASSERT(rid[0] != '\0' && strcmp(str(o, "request_id"), rid) != 0);
	json_decref(o);
	/* The SDK sends its apiKey as a bearer token. */
	snprintf(path, sizeof(path), "Authorization: Bearer %s", fx->admin_key);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/agents", path, NULL, NULL), 200);
	AL_ASSERT_INT_EQ(
	    al_fx_req(fx, "GET", "/v1/agents", "Authorization: Bearer alk_admin_x", NULL, NULL),
	    401);
	AL_ASSERT_INT_EQ(al_fx_req_nobeta(fx, "GET", "/v1/agents", "admin", NULL, &o), 400);
	AL_ASSERT_STR_EQ(str(json_object_get(o, "error"), "type"), "invalid_request_error");
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/agents", "admin", NULL, NULL), 200);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/nowhere", "admin", NULL, &o), 404);
	AL_ASSERT_STR_EQ(str(json_object_get(o, "error"), "type"), "not_found_error");
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "PUT", "/v1/agents", "admin", "{}", NULL), 405);
}

AL_TEST(api_auth_errors_and_admin_key_file)
{
	al_fx_run(auth_and_admin_key);
}

static void pagination(struct al_fx *fx)
{
	char agent[64], env[64], path[256], ids[7][64];
	json_t *o = NULL;
	int seen = 0;

	al_fx_setup(fx, agent, env);
	for (int i = 0; i < 7; i++)
		al_fx_session(fx, agent, env, ids[i]);
	/* Newest first, three per page, following next_page to the end. */
	snprintf(path, sizeof(path), "/v1/sessions?limit=3");
	for (;;) {
		json_t *d, *np;
		size_t i;
		AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, "admin", NULL, &o), 200);
		d = json_object_get(o, "data");
		json_array_foreach(d, i, np)
		{
			AL_ASSERT_STR_EQ(str(np, "id"), ids[6 - seen]);
			seen++;
		}
		AL_ASSERT(json_object_get(o, "prev_page") != NULL);
		np = json_object_get(o, "next_page");
		if (json_is_null(np)) {
			json_decref(o);
			break;
		}
		snprintf(path, sizeof(path), "/v1/sessions?limit=3&page=%s", json_string_value(np));
		json_decref(o);
	}
	AL_ASSERT_INT_EQ(seen, 7);
	/* Ascending order and the way back with prev_page. */
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/sessions?limit=2&order=asc", "admin", NULL, &o),
			 200);
	AL_ASSERT_STR_EQ(str(json_array_get(json_object_get(o, "data"), 0), "id"), ids[0]);
	snprintf(path, sizeof(path), "/v1/sessions?limit=2&order=asc&page=%s",
		 json_string_value(json_object_get(o, "next_page")));
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, "admin", NULL, &o), 200);
	AL_ASSERT_STR_EQ(str(json_array_get(json_object_get(o, "data"), 0), "id"), ids[2]);
	snprintf(path, sizeof(path), "/v1/sessions?limit=2&order=asc&page=%s",
		 json_string_value(json_object_get(o, "prev_page")));
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", path, "admin", NULL, &o), 200);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(o, "data")), 2);
	AL_ASSERT_STR_EQ(str(json_array_get(json_object_get(o, "data"), 0), "id"), ids[0]);
	AL_ASSERT_STR_EQ(str(json_array_get(json_object_get(o, "data"), 1), "id"), ids[1]);
	json_decref(o);
	/* Filters. */
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/sessions?statuses[]=running", "admin", NULL, &o),
			 200);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(o, "data")), 0);
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/sessions?statuses[]=bogus", "admin", NULL, NULL),
			 400);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/sessions?limit=0", "admin", NULL, NULL), 400);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/sessions?page=garbage", "admin", NULL, NULL),
			 400);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/sessions?created_at[gte]=2999-01-01T00:00:00Z",
				   "admin", NULL, &o),
			 200);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(o, "data")), 0);
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "GET", "/v1/sessions?created_at[gte]=2000-01-01T00:00:00Z",
				   "admin", NULL, &o),
			 200);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(o, "data")), 7);
	json_decref(o);
}

AL_TEST(api_pagination_cursor_pages)
{
	al_fx_run(pagination);
}
