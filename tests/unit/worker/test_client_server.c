/*
 * test_client_server.c - the worker's protocol client against the real
 * `airlock server` (forked from the airlock binary next to this test
 * binary), so the server accepts exactly what the client sends: poll, ack,
 * heartbeat (first beat, CAS, 412), stop, work get, session get, events
 * send/list, and the live stream opened before the history is listed.
 *
 * The model URL points at a loopback socket that accepts and never answers,
 * so the agent loop's model call hangs and the work item stays ours.
 */
#include "worker/client.h"

#include "core/alloc.h"
#include "core/b64.h"
#include "core/buf.h"
#include "net/http_client.h"
#include "unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * UV_RUN_ONCE would block in the poll phase even when the callback we wait
 * for already ran in the timer phase (until the stream's next ping), so the
 * callbacks stop the loop and the waits run it with UV_RUN_DEFAULT.
 */
static uv_loop_t *g_loop;
static int g_guard_fired;

static void guard_cb(uv_timer_t *t)
{
	(void)t;
	g_guard_fired = 1;
	uv_stop(g_loop);
}

static void guard_close_cb(uv_handle_t *h)
{
	(void)h;
}

struct srv {
	pid_t pid;
	int hang_fd; /* the model "provider": listens, never answers */
	char url[64];
	char admin[256];
	uv_loop_t loop;
	al_http_client *http;
	struct al_wc *wc;
};

static int listen_any(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	*port = ntohs(sa.sin_port);
	return fd;
}

/* The airlock binary built with this test binary (build/ or build-asan/). */
static int airlock_bin(char *out, size_t len)
{
	char self[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	snprintf(out, len, "%s/airlock", dirname(self));
	return access(out, X_OK);
}

/* ---- synchronous admin calls (test setup, plain http_client) ---- */

struct sync_res {
	int done;
	int status;
	json_t *body;
};

static void sync_done(al_http_call *c, const struct al_http_client_resp *r, void *ud)
{
	struct sync_res *s = ud;

	(void)c;
	s->done = 1;
	uv_stop(g_loop);
	s->status = r->status;
	s->body = r->body_len ? json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL) : NULL;
}

static json_t *admin(struct srv *s, const char *method, const char *path, const char *body)
{
	struct al_http_header h[] = {{"x-api-key", s->admin},
				     {"anthropic-beta", AL_WC_BETA},
				     {"content-type", "application/json"}};
	struct al_http_client_req req = {.method = method,
					 .headers = h,
					 .nheaders = 3,
					 .body = body,
					 .body_len = body ? strlen(body) : 0,
					 .timeout_ms = 10000};
	struct sync_res r = {0};
	char u[512];

	snprintf(u, sizeof(u), "%s%s", s->url, path);
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(s->http, &req, sync_done, &r, NULL), 0);
	while (!r.done)
		uv_run(&s->loop, UV_RUN_DEFAULT);
	if (r.status != 200)
		fprintf(stderr, "%s %s -> %d\n", method, path, r.status);
	AL_ASSERT_INT_EQ(r.status, 200);
	return r.body;
}

/* Returns 0 when the server is up, -1 when there is no binary to run. */
static int srv_start(struct srv *s)
{
	char bin[600], data[512], logf[512], listen_s[64], model[64], keyf[600];
	int port = 0, hport = 0, fd;
	FILE *kf = NULL;

	memset(s, 0, sizeof(*s));
	if (airlock_bin(bin, sizeof(bin)) < 0) {
		fprintf(stderr, "no airlock binary next to the test binary: not run\n");
		return -1;
	}
	s->hang_fd = listen_any(&hport);
	AL_ASSERT(s->hang_fd >= 0);
	fd = listen_any(&port);
	AL_ASSERT(fd >= 0);
	close(fd); /* free again; the server takes it a moment later */
	snprintf(listen_s, sizeof(listen_s), "127.0.0.1:%d", port);
	snprintf(model, sizeof(model), "http://127.0.0.1:%d", hport);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", port);
	snprintf(data, sizeof(data), "%s/data", al_test_tmpdir());
	snprintf(logf, sizeof(logf), "%s/server.log", al_test_tmpdir());
	s->pid = fork();
	AL_ASSERT(s->pid >= 0);
	if (s->pid == 0) {
		int lfd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (lfd >= 0) {
			dup2(lfd, 1);
			dup2(lfd, 2);
		}
		unsetenv("ANTHROPIC_API_KEY");
		execl(bin, "airlock", "server", "--listen", listen_s, "--data", data, "--model-url",
		      model, (char *)NULL);
		_exit(127);
	}
	snprintf(keyf, sizeof(keyf), "%s/admin.key", data);
	for (int i = 0; i < 200; i++) {
		struct stat st;
		if (stat(keyf, &st) == 0 && st.st_size > 0 && (kf = fopen(keyf, "r")) != NULL)
			break;
		usleep(50000);
	}
	AL_ASSERT_NOT_NULL(kf);
	AL_ASSERT_NOT_NULL(fgets(s->admin, sizeof(s->admin), kf));
	fclose(kf);
	s->admin[strcspn(s->admin, "\r\n")] = '\0';
	AL_ASSERT_INT_EQ(uv_loop_init(&s->loop), 0);
	g_loop = &s->loop;
	AL_ASSERT_INT_EQ(al_http_client_new(&s->loop, &s->http), 0);
	AL_ASSERT_INT_EQ(al_wc_new(&s->loop, s->url, NULL, &s->wc), 0);
	/* The listener may lag the key file by a moment. */
	for (int i = 0; i < 100; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int c = socket(AF_INET, SOCK_STREAM, 0);
		int ok = connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(c);
		if (ok)
			break;
		usleep(50000);
	}
	return 0;
}

static void srv_stop(struct srv *s)
{
	int st = 0;

	al_wc_free(s->wc);
	al_http_client_free(s->http);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&s->loop), 0);
	kill(s->pid, SIGKILL); /* its drain waits on the hung model call */
	waitpid(s->pid, &st, 0);
	close(s->hang_fd);
}

/* ---- worker calls, run to completion ---- */

struct res {
	int done;
	int err;
	int status;
	json_t *body;
	char etype[64];
	json_t *details;
};

static void res_cb(const struct al_wc_resp *r, void *ud)
{
	struct res *x = ud;

	x->done = 1;
	uv_stop(g_loop);
	x->err = r->err;
	x->status = r->status;
	x->body = json_incref(r->body);
	snprintf(x->etype, sizeof(x->etype), "%s", r->error_type ? r->error_type : "");
	x->details = json_incref(r->details);
}

static void res_clear(struct res *x)
{
	json_decref(x->body);
	json_decref(x->details);
	memset(x, 0, sizeof(*x));
}

static void wait_res(struct srv *s, struct res *x)
{
	while (!x->done)
		uv_run(&s->loop, UV_RUN_DEFAULT);
}

/* ---- the stream ---- */

struct stream_state {
	struct srv *s;
	const char *session;
	const char *key;
	int opened;
	int saw_user_message;
	struct res sent; /* the user.message sent from open_cb */
	struct res end;
};

static void st_open(void *ud)
{
	struct stream_state *t = ud;
	json_t *ev = json_pack("[{s:s, s:[{s:s, s:s}]}]", "type", "user.message", "content", "type",
			       "text", "text", "hello worker");

	t->opened++;
	/* Live first, then act: what the stream shows next was not missed. */
	AL_ASSERT_INT_EQ(
	    al_wc_events_send(t->s->wc, t->session, t->key, ev, res_cb, &t->sent, NULL), 0);
	json_decref(ev);
}

static void st_event(json_t *ev, void *ud)
{
	struct stream_state *t = ud;
	const char *type = json_string_value(json_object_get(ev, "type"));

	if (type && strcmp(type, "user.message") == 0) {
		t->saw_user_message++;
		uv_stop(g_loop);
	}
}

static void st_end(const struct al_wc_resp *r, void *ud)
{
	struct stream_state *t = ud;

	res_cb(r, &t->end);
}

/* The sessions token inside a work item's secret (base64url JSON). */
static void sessions_token(const char *secret, char *out, size_t len)
{
	char raw[2048];
	size_t n = 0;
	json_t *j;

	AL_ASSERT_NOT_NULL(secret);
	AL_ASSERT_INT_EQ(al_b64url_decode(secret, strlen(secret), raw, sizeof(raw) - 1, &n), 0);
	j = json_loadb(raw, n, 0, NULL);
	AL_ASSERT_NOT_NULL(j);
	snprintf(out, len, "%s", json_string_value(json_object_get(j, "sessions_token")));
	AL_ASSERT(out[0] != '\0');
	json_decref(j);
}

AL_TEST(wc_against_the_real_server)
{
	struct srv s;
	struct res r = {0};
	struct stream_state t = {0};
	struct al_wc_stream *st = NULL;
	json_t *j;
	char path[256], env[64], ekey[256], sess[64], agent[64], work[64], tok[512], last[64];

	if (srv_start(&s) < 0)
		return;
	j = admin(&s, "POST", "/v1/agents",
		  "{\"name\":\"w\",\"model\":\"claude-sonnet-4-5\","
		  "\"tools\":[{\"type\":\"agent_toolset_20260401\"}]}");
	snprintf(agent, sizeof(agent), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	j = admin(&s, "POST", "/v1/environments",
		  "{\"name\":\"site\",\"config\":{\"type\":\"self_hosted\"}}");
	snprintf(env, sizeof(env), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/environments/%s/keys", env);
	j = admin(&s, "POST", path, NULL);
	snprintf(ekey, sizeof(ekey), "%s", json_string_value(json_object_get(j, "key")));
	json_decref(j);
	{
		char body[256];
		snprintf(body, sizeof(body), "{\"agent\":\"%s\",\"environment_id\":\"%s\"}", agent,
			 env);
		j = admin(&s, "POST", "/v1/sessions", body);
		snprintf(sess, sizeof(sess), "%s", json_string_value(json_object_get(j, "id")));
		json_decref(j);
	}

	/* An empty queue: null. A wrong key: 401, fatal for a poller. */
	AL_ASSERT_INT_EQ(al_wc_poll(s.wc, env, ekey, "w-test", 1, 0, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT(json_is_null(r.body));
	res_clear(&r);
	AL_ASSERT_INT_EQ(al_wc_poll(s.wc, env, "not-a-key", "w-test", 1, 0, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 401);
	AL_ASSERT_STR_EQ(r.etype, "authentication_error");
	AL_ASSERT_INT_EQ(al_wc_is_fatal_4xx(r.status), 1);
	res_clear(&r);

	/* The stream, then (from open_cb) a user.message: the session runs, work is queued. */
	t.s = &s;
	t.session = sess;
	t.key = ekey;
	AL_ASSERT_INT_EQ(al_wc_stream_open(s.wc, sess, ekey, st_open, st_event, st_end, &t, &st),
			 0);
	{
		/* Bounded: a stream that never shows the event fails instead of hanging. */
		uv_timer_t guard;
		uv_timer_init(&s.loop, &guard);
		uv_timer_start(&guard, guard_cb, 10000, 0);
		while (!(t.saw_user_message && t.sent.done) && !t.end.done && !g_guard_fired)
			uv_run(&s.loop, UV_RUN_DEFAULT);
		uv_close((uv_handle_t *)&guard, guard_close_cb);
		AL_ASSERT_INT_EQ(g_guard_fired, 0);
	}
	AL_ASSERT_INT_EQ(t.opened, 1);
	AL_ASSERT_INT_EQ(t.sent.status, 200);
	AL_ASSERT_INT_EQ(t.saw_user_message, 1);
	AL_ASSERT_INT_EQ(t.end.done, 0);

	AL_ASSERT_INT_EQ(al_wc_poll(s.wc, env, ekey, "w-test", 999, 0, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT(json_is_object(r.body));
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r.body, "data"), "id")),
			 sess);
	snprintf(work, sizeof(work), "%s", json_string_value(json_object_get(r.body, "id")));
	sessions_token(json_string_value(json_object_get(r.body, "secret")), tok, sizeof(tok));
	res_clear(&r);

	AL_ASSERT_INT_EQ(al_wc_ack(s.wc, env, work, ekey, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	res_clear(&r);

	/* The first beat, with the sessions token. */
	AL_ASSERT_INT_EQ(al_wc_heartbeat(s.wc, env, work, tok, 0, NULL, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(r.body, "type")), "work_heartbeat");
	AL_ASSERT(json_is_true(json_object_get(r.body, "lease_extended")));
	snprintf(last, sizeof(last), "%s",
		 json_string_value(json_object_get(r.body, "last_heartbeat")));
	res_clear(&r);
	/* A stale expectation: 412 with error.details.current_state, as the SDK reads it. */
	AL_ASSERT_INT_EQ(
	    al_wc_heartbeat(s.wc, env, work, tok, 60, "NO_HEARTBEAT", res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 412);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_object_get(r.details, "current_state"), "last_heartbeat")),
			 last);
	AL_ASSERT_INT_EQ(al_wc_is_fatal_4xx(r.status), 1);
	res_clear(&r);
	/* The right one (colons in the timestamp, percent-encoded) with a TTL. */
	AL_ASSERT_INT_EQ(al_wc_heartbeat(s.wc, env, work, tok, 60, last, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(r.body, "ttl_seconds")), 60);
	res_clear(&r);

	/* History and the session, with the sessions token. */
	AL_ASSERT_INT_EQ(al_wc_events_list(s.wc, sess, tok, 1000, NULL, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT(json_array_size(json_object_get(r.body, "data")) >= 1);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(
			     json_array_get(json_object_get(r.body, "data"), 0), "type")),
			 "user.message");
	AL_ASSERT_NULL(al_wc_next_page(r.body));
	res_clear(&r);
	AL_ASSERT_INT_EQ(al_wc_session_get(s.wc, sess, tok, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(r.body, "id")), sess);
	res_clear(&r);
	AL_ASSERT_INT_EQ(al_wc_work_get(s.wc, env, work, ekey, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(r.body, "state")), "active");
	res_clear(&r);

	/* Force-stop with the sessions token; a second stop is 409 (the SDK swallows it). */
	AL_ASSERT_INT_EQ(al_wc_stop(s.wc, env, work, tok, 1, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(r.body, "state")), "stopped");
	res_clear(&r);
	AL_ASSERT_INT_EQ(al_wc_stop(s.wc, env, work, ekey, 1, res_cb, &r, NULL), 0);
	wait_res(&s, &r);
	AL_ASSERT_INT_EQ(r.status, 409);
	res_clear(&r);

	al_wc_stream_close(st);
	res_clear(&t.sent);
	srv_stop(&s);
}
