/*
 * fixture.c - see fixture.h.
 */
#include "unit/api/fixture.h"

#include "api/work.h"
#include "core/alloc.h"
#include "unit/unit.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *client_main(void *arg)
{
	struct al_fx *fx = arg;

	fx->body(fx);
	uv_async_send(&fx->done_async);
	return NULL;
}

static void drained_cb(al_api *api, void *ud)
{
	struct al_fx *fx = ud;

	al_api_free(fx->api);
	fx->api = NULL;
}

static void done_cb(uv_async_t *a)
{
	struct al_fx *fx = a->data;

	uv_close((uv_handle_t *)&fx->done_async, NULL);
	uv_close((uv_handle_t *)&fx->wake_async, NULL);
	al_api_drain(fx->api, drained_cb, fx);
}

static void wake_cb(uv_async_t *a)
{
	struct al_fx *fx = a->data;

	al_bus_wake_work(fx->api->bus, fx->wake_env);
}

void al_fx_run(void (*body)(struct al_fx *fx))
{
	struct al_fx *fx = calloc(1, sizeof(*fx));
	struct al_api_config cfg = {0};
	char err[256], path[600];
	pthread_t th;
	FILE *f;

	AL_ASSERT(fx != NULL);
	snprintf(fx->dir, sizeof(fx->dir), "%s/data", al_test_tmpdir());
	cfg.data_dir = fx->dir;
	cfg.listen_host = "127.0.0.1";
	cfg.listen_port = 0;
	cfg.max_body_bytes = 64 * 1024;
	AL_ASSERT_INT_EQ(uv_loop_init(&fx->loop), 0);
	if (al_api_start(&fx->loop, &cfg, &fx->api, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "al_api_start: %s", err);
	fx->port = al_http_server_port(fx->api->http);
	snprintf(path, sizeof(path), "%s/admin.key", fx->dir);
	f = fopen(path, "r");
	AL_ASSERT_NOT_NULL(f);
	AL_ASSERT_NOT_NULL(fgets(fx->admin_key, sizeof(fx->admin_key), f));
	fclose(f);
	fx->admin_key[strcspn(fx->admin_key, "\n")] = '\0';
	fx->body = body;
	uv_async_init(&fx->loop, &fx->done_async, done_cb);
	uv_async_init(&fx->loop, &fx->wake_async, wake_cb);
	fx->done_async.data = fx->wake_async.data = fx;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	AL_ASSERT_INT_EQ(pthread_create(&th, NULL, client_main, fx), 0);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	AL_ASSERT_NULL(fx->api);
	AL_ASSERT_INT_EQ(uv_loop_close(&fx->loop), 0);
	curl_global_cleanup();
	free(fx);
}

struct sink {
	char *p;
	size_t n;
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t n = size * nmemb;
	char *q = realloc(s->p, s->n + n + 1);

	if (q == NULL)
		return 0;
	memcpy(q + s->n, ptr, n);
	s->n += n;
	q[s->n] = '\0';
	s->p = q;
	return n;
}

static long do_req(struct al_fx *fx, const char *method, const char *path, const char *auth,
		   const char *body, json_t **out, int beta)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct sink s = {0};
	char url[1024], line[256];
	long status = 0;

	AL_ASSERT_NOT_NULL(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	if (beta)
		h = curl_slist_append(h, "anthropic-beta: managed-agents-2026-04-01");
	if (auth != NULL && strcmp(auth, "admin") == 0) {
		snprintf(line, sizeof(line), "x-api-key: %s", fx->admin_key);
		h = curl_slist_append(h, line);
	} else if (auth != NULL) {
		h = curl_slist_append(h, auth);
	}
	if (body != NULL) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	if (curl_easy_perform(c) != CURLE_OK)
		al_test_fail(__FILE__, __LINE__, "request %s %s failed", method, path);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (out != NULL)
		*out = s.p ? json_loads(s.p, JSON_DECODE_ANY, NULL) : NULL;
	free(s.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

long al_fx_req(struct al_fx *fx, const char *method, const char *path, const char *auth,
	       const char *body, json_t **out)
{
	return do_req(fx, method, path, auth, body, out, 1);
}

long al_fx_req_nobeta(struct al_fx *fx, const char *method, const char *path, const char *auth,
		      const char *body, json_t **out)
{
	return do_req(fx, method, path, auth, body, out, 0);
}

static void copy_id(json_t *o, char out[64])
{
	const char *id = json_string_value(json_object_get(o, "id"));

	AL_ASSERT_NOT_NULL(id);
	snprintf(out, 64, "%s", id);
}

void al_fx_setup(struct al_fx *fx, char agent[64], char env[64])
{
	json_t *o = NULL;

	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", "/v1/agents", "admin",
				   "{\"name\":\"t\",\"model\":\"claude-sonnet-4-5\",\"tools\":"
				   "[{\"type\":\"agent_toolset_20260401\"}]}",
				   &o),
			 200);
	copy_id(o, agent);
	json_decref(o);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", "/v1/environments", "admin",
				   "{\"name\":\"e\",\"config\":{\"type\":\"self_hosted\"}}", &o),
			 200);
	copy_id(o, env);
	json_decref(o);
}

void al_fx_session(struct al_fx *fx, const char *agent, const char *env, char session[64])
{
	char body[256];
	json_t *o = NULL;

	snprintf(body, sizeof(body), "{\"agent\":\"%s\",\"environment_id\":\"%s\"}", agent, env);
	AL_ASSERT_INT_EQ(al_fx_req(fx, "POST", "/v1/sessions", "admin", body, &o), 200);
	copy_id(o, session);
	json_decref(o);
}

struct enq {
	const char *env, *session;
	char work[AL_ID_MAX];
};

static int enqueue_fn(al_store_tx *tx, void *ud)
{
	struct enq *e = ud;

	return al_work_enqueue_tx(tx, e->env, e->session, e->work);
}

void al_fx_enqueue(struct al_fx *fx, const char *env, const char *session, char work[64])
{
	struct enq e = {env, session, ""};

	AL_ASSERT_INT_EQ(al_store_call(fx->api->store, enqueue_fn, &e), 0);
	snprintf(work, 64, "%s", e.work);
	snprintf(fx->wake_env, sizeof(fx->wake_env), "%s", env);
	uv_async_send(&fx->wake_async);
}
