/*
 * test_stdio_pool.c - the gateway's pool of stdio MCP servers, driven on a
 * real uv loop against real child processes: the TEST DOUBLE server
 * tests/support/stdio_mcp_double.py (python3), whose mode is picked by argv.
 */
#include "unit/unit.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "gateway/stdio_pool.h"
#include "mcp/jsonrpc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static uv_loop_t loop;
static uv_timer_t tick;
static char script[1024];

/* What one caller received. */
struct got {
	int finals, partials;
	json_t *final;	 /* deep copy of the final message (NULL message: json null) */
	json_t *partial; /* array of deep copies */
	size_t ready_at_final;
	al_gw_stdio_pool *p;
};

static void got_cb(void *ud, const json_t *msg, int final)
{
	struct got *g = ud;

	if (final) {
		g->finals++;
		json_decref(g->final);
		g->final = msg ? json_deep_copy(msg) : json_null();
		if (g->p)
			g->ready_at_final = al_gw_stdio_pool_ready(g->p);
	} else {
		if (g->partial == NULL)
			g->partial = json_array();
		json_array_append_new(g->partial, json_deep_copy(msg));
	}
}

static void got_clear(struct got *g)
{
	json_decref(g->final);
	json_decref(g->partial);
	memset(g, 0, sizeof(*g));
}

static void tick_cb(uv_timer_t *t)
{
}

/* Runs the loop until cond holds or ms pass (the tick keeps UV_RUN_ONCE from sleeping long). */
#define RUN_UNTIL(cond, ms)                                                                        \
	do {                                                                                       \
		uint64_t dl_ = al_mono_ms() + (ms);                                                \
		while (!(cond) && al_mono_ms() < dl_)                                              \
			uv_run(&loop, UV_RUN_ONCE);                                                \
	} while (0)

static void fx_start(void)
{
	const char *src = getenv("AIRLOCK_SRC");

	snprintf(script, sizeof(script), "%s/tests/support/stdio_mcp_double.py", src ? src : ".");
	if (access(script, R_OK) != 0)
		al_test_fail(__FILE__, __LINE__, "test double missing: %s", script);
	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &tick);
	uv_timer_start(&tick, tick_cb, 20, 20);
}

/* A pool of `size` doubles in `mode` (extra argv after the mode may follow). */
static al_gw_stdio_pool *pool_new(const char *route, const char *mode, size_t size,
				  uint64_t timeout_ms, const char *const *env, const char *extra1,
				  const char *extra2)
{
	const char *argv[] = {"python3", script, "--mode", mode, extra1, extra2, NULL};
	struct al_gw_stdio_opts o = {.route = route,
				     .argv = argv,
				     .env = env,
				     .size = size,
				     .request_timeout_ms = timeout_ms};
	al_gw_stdio_pool *p = NULL;
	char err[256];

	if (al_gw_stdio_pool_new(&loop, &o, &p, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "pool_new: %s", err);
	return p;
}

/* Frees the pool, runs the loop until every handle is closed; returns the ms it took. */
static uint64_t fx_end(al_gw_stdio_pool *p)
{
	uint64_t t0 = al_mono_ms();

	al_gw_stdio_pool_free(p);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	return al_mono_ms() - t0;
}

static json_t *call_msg(json_t *id, const char *tool, json_t *args, json_t *token)
{
	json_t *params =
	    json_pack("{s:s, s:o}", "name", tool, "arguments", args ? args : json_object());

	if (token)
		json_object_set_new(params, "_meta", json_pack("{s:o}", "progressToken", token));
	return json_pack("{s:s, s:o, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", "tools/call",
			 "params", params);
}

static int send_call(al_gw_stdio_pool *p, json_t *id, const char *tool, json_t *args, json_t *token,
		     struct got *g, al_gw_stdio_req **out)
{
	json_t *m = call_msg(id, tool, args, token);
	int rc;

	g->p = p;
	rc = al_gw_stdio_pool_send(p, m, got_cb, g, out);
	json_decref(m);
	return rc;
}

static const json_t *structured(const struct got *g)
{
	return json_object_get(json_object_get(g->final, "result"), "structuredContent");
}

static int err_code(const struct got *g)
{
	return (int)json_integer_value(json_object_get(json_object_get(g->final, "error"), "code"));
}

static const char *err_message(const struct got *g)
{
	return json_string_value(json_object_get(json_object_get(g->final, "error"), "message"));
}

static long long pid_of(const struct got *g)
{
	return json_integer_value(json_object_get(structured(g), "pid"));
}

/* Pids of this process's children (from /proc), up to max. */
static size_t child_pids(pid_t *out, size_t max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t n = 0;

	AL_ASSERT_NOT_NULL(d);
	while ((e = readdir(d)) != NULL && n < max) {
		char path[300], buf[512], *rp;
		int fd, ppid = 0;
		ssize_t r;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		/* "pid (comm) state ppid ...": comm may hold spaces, so after the last ')'. */
		if ((rp = strrchr(buf, ')')) == NULL || sscanf(rp + 2, "%*c %d", &ppid) != 1)
			continue;
		if (ppid == (int)getpid())
			out[n++] = (pid_t)strtol(e->d_name, NULL, 10);
	}
	closedir(d);
	return n;
}

static int pid_in(pid_t pid, const pid_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return 1;
	return 0;
}

/* Several callers, colliding ids, two children: each gets its own answer under its own id. */
AL_TEST(stdio_pool_concurrent_colliding_ids)
{
	struct got g[6] = {0};
	json_t *ids[6];
	al_gw_stdio_pool *p;
	long long pid0 = 0;
	int two_pids = 0, done = 0;

	fx_start();
	p = pool_new("t-conc", "normal", 2, 0, NULL, NULL, NULL);
	/* Nothing is initialized before the loop runs: no child to take a request. */
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 0);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "echo", NULL, NULL, &g[0], NULL), -EAGAIN);
	got_clear(&g[0]);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 2, 10000);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 2);

	ids[0] = json_integer(1);
	ids[1] = json_integer(1);
	ids[2] = json_integer(1);
	ids[3] = json_string("a");
	ids[4] = json_string("a");
	ids[5] = json_integer(7);
	for (int i = 0; i < 6; i++) {
		char text[32];

		snprintf(text, sizeof(text), "caller-%d", i);
		AL_ASSERT_INT_EQ(send_call(p, json_incref(ids[i]), "echo",
					   json_pack("{s:s}", "text", text), NULL, &g[i], NULL),
				 0);
	}
	RUN_UNTIL((done = g[0].finals + g[1].finals + g[2].finals + g[3].finals + g[4].finals +
			  g[5].finals) == 6,
		  10000);
	AL_ASSERT_INT_EQ(done, 6);
	for (int i = 0; i < 6; i++) {
		char text[32];

		snprintf(text, sizeof(text), "caller-%d", i);
		AL_ASSERT_INT_EQ(g[i].finals, 1);
		AL_ASSERT(json_equal(json_object_get(g[i].final, "id"), ids[i]));
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(structured(&g[i]), "text")),
				 text);
		if (i == 0)
			pid0 = pid_of(&g[i]);
		else if (pid_of(&g[i]) != pid0)
			two_pids = 1;
		json_decref(ids[i]);
		got_clear(&g[i]);
	}
	/* Least busy first: six requests at once are spread over both children. */
	AL_ASSERT(two_pids);
	fx_end(p);
}

/* A slow call keeps one child busy: the next calls go to the other one. */
AL_TEST(stdio_pool_least_busy)
{
	struct got slow = {0}, g = {0};
	al_gw_stdio_pool *p;
	long long pids[3];

	fx_start();
	p = pool_new("t-busy", "normal", 2, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 2, 10000);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "slow", json_pack("{s:i}", "ms", 1500), NULL,
				   &slow, NULL),
			 0);
	for (int i = 0; i < 3; i++) {
		AL_ASSERT_INT_EQ(send_call(p, json_integer(2), "echo",
					   json_pack("{s:s}", "text", "x"), NULL, &g, NULL),
				 0);
		RUN_UNTIL(g.finals == 1, 5000);
		AL_ASSERT_INT_EQ(g.finals, 1);
		pids[i] = pid_of(&g);
		got_clear(&g);
	}
	AL_ASSERT_INT_EQ(slow.finals, 0);
	RUN_UNTIL(slow.finals == 1, 5000);
	AL_ASSERT_INT_EQ(slow.finals, 1);
	for (int i = 0; i < 3; i++)
		AL_ASSERT_INT_NE(pids[i], pid_of(&slow));
	got_clear(&slow);
	fx_end(p);
}

/* Progress reaches the right caller with the caller's own token, even when tokens collide. */
AL_TEST(stdio_pool_progress_relayed)
{
	struct got g[3] = {0}, lg = {0};
	json_t *tokens[3];
	al_gw_stdio_pool *p;
	const json_t *n;

	fx_start();
	p = pool_new("t-progress", "normal", 1, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	tokens[0] = json_integer(7);
	tokens[1] = json_integer(7);
	tokens[2] = json_string("tok");
	for (int i = 0; i < 3; i++) {
		char text[32];

		snprintf(text, sizeof(text), "progress-%d", i);
		AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "echo",
					   json_pack("{s:s}", "text", text), json_incref(tokens[i]),
					   &g[i], NULL),
				 0);
	}
	RUN_UNTIL(g[0].finals + g[1].finals + g[2].finals == 3, 10000);
	for (int i = 0; i < 3; i++) {
		char text[32];

		snprintf(text, sizeof(text), "progress-%d", i);
		AL_ASSERT_INT_EQ(g[i].finals, 1);
		AL_ASSERT_INT_EQ(json_array_size(g[i].partial), 1);
		n = json_array_get(g[i].partial, 0);
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(n, "method")),
				 "notifications/progress");
		AL_ASSERT(json_equal(json_object_get(json_object_get(n, "params"), "progressToken"),
				     tokens[i]));
		AL_ASSERT_STR_EQ(
		    json_string_value(json_object_get(json_object_get(n, "params"), "message")),
		    text);
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(structured(&g[i]), "text")),
				 text);
		json_decref(tokens[i]);
		got_clear(&g[i]);
	}
	/* A log message names no request: with one in flight, it is that one's. */
	AL_ASSERT_INT_EQ(send_call(p, json_integer(3), "log", NULL, NULL, &lg, NULL), 0);
	RUN_UNTIL(lg.finals == 1, 5000);
	AL_ASSERT_INT_EQ(json_array_size(lg.partial), 1);
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_array_get(lg.partial, 0), "method")),
	    "notifications/message");
	got_clear(&lg);
	fx_end(p);
}

/* initialize and server/discover are answered from the handshake, without the child. */
AL_TEST(stdio_pool_initialize_from_handshake)
{
	struct got g = {0}, st = {0};
	al_gw_stdio_pool *p;
	json_t *m;
	const json_t *res;

	fx_start();
	p = pool_new("t-init", "normal", 1, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	m = json_pack("{s:s, s:i, s:s, s:{s:s, s:{}, s:{s:s, s:s}}}", "jsonrpc", "2.0", "id", 42,
		      "method", "initialize", "params", "protocolVersion", "2025-11-25",
		      "capabilities", "clientInfo", "name", "c", "version", "1");
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_send(p, m, got_cb, &g, NULL), 0);
	json_decref(m);
	/* Answered at once, inside send. */
	AL_ASSERT_INT_EQ(g.finals, 1);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(g.final, "id")), 42);
	res = json_object_get(g.final, "result");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(res, "serverInfo"), "name")),
	    "stdio-mcp-double");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(res, "protocolVersion")), "2025-11-25");
	got_clear(&g);

	m = json_pack("{s:s, s:s, s:s}", "jsonrpc", "2.0", "id", "d", "method", "server/discover");
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_send(p, m, got_cb, &g, NULL), 0);
	json_decref(m);
	AL_ASSERT_INT_EQ(g.finals, 1);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(g.final, "id")), "d");
	res = json_object_get(g.final, "result");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(res, "resultType")), "complete");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_array_get(json_object_get(res, "supportedVersions"), 0)),
	    "2026-07-28");
	AL_ASSERT_NOT_NULL(json_object_get(json_object_get(res, "capabilities"), "tools"));
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(json_object_get(res, "_meta"),
							      "io.modelcontextprotocol/serverInfo"),
					      "name")),
	    "stdio-mcp-double");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(res, "instructions")), "a test double");
	got_clear(&g);

	/* The caller's notifications/initialized is absorbed (the pool sent its own). */
	m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_send(p, m, got_cb, &g, NULL), 0);
	json_decref(m);
	AL_ASSERT_INT_EQ(g.finals, 1);
	AL_ASSERT(json_is_null(g.final));
	got_clear(&g);

	/* The child saw exactly one initialize (the pool's) and the initialized notification. */
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "stats", NULL, NULL, &st, NULL), 0);
	RUN_UNTIL(st.finals == 1, 5000);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(structured(&st), "initialize")), 1);
	AL_ASSERT(json_is_true(json_object_get(structured(&st), "initialized")));
	got_clear(&st);
	fx_end(p);
}

/* A child that refuses initialize but answers server/discover is used in the modern era. */
AL_TEST(stdio_pool_modern_child)
{
	struct got g = {0};
	al_gw_stdio_pool *p;
	json_t *m;
	const json_t *res;

	fx_start();
	p = pool_new("t-modern", "modern", 1, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 1);
	m = json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", 5, "method", "server/discover");
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_send(p, m, got_cb, &g, NULL), 0);
	json_decref(m);
	res = json_object_get(g.final, "result");
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(res, "supportedVersions")), 1);
	AL_ASSERT_STR_EQ(
	    json_string_value(json_array_get(json_object_get(res, "supportedVersions"), 0)),
	    "2026-07-28");
	got_clear(&g);
	m = json_pack("{s:s, s:i, s:s, s:{}}", "jsonrpc", "2.0", "id", 6, "method", "initialize",
		      "params");
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_send(p, m, got_cb, &g, NULL), 0);
	json_decref(m);
	res = json_object_get(g.final, "result");
	AL_ASSERT_STR_EQ(
	    json_string_value(json_object_get(json_object_get(res, "serverInfo"), "name")),
	    "stdio-mcp-double-modern");
	got_clear(&g);
	fx_end(p);
}

/* A child dying mid-request: -32603 "upstream server exited", and a new child comes up. */
AL_TEST(stdio_pool_crash_respawns)
{
	struct got g = {0};
	al_gw_stdio_pool *p;
	long long pid1;

	fx_start();
	p = pool_new("t-crash", "crash-after", 1, 0, NULL, "--n", "2");
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "echo", NULL, NULL, &g, NULL), 0);
	RUN_UNTIL(g.finals == 1, 5000);
	pid1 = pid_of(&g);
	AL_ASSERT(pid1 > 0);
	got_clear(&g);

	AL_ASSERT_INT_EQ(send_call(p, json_integer(2), "echo", NULL, NULL, &g, NULL), 0);
	RUN_UNTIL(g.finals == 1, 5000);
	AL_ASSERT_INT_EQ(g.finals, 1);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(g.final, "id")), 2);
	AL_ASSERT_INT_EQ(err_code(&g), -32603);
	AL_ASSERT_STR_EQ(err_message(&g), "upstream server exited");
	AL_ASSERT_INT_EQ(g.ready_at_final, 0);
	got_clear(&g);

	/* Respawned after the first backoff (100 ms). */
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 5000);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 1);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(3), "echo", NULL, NULL, &g, NULL), 0);
	RUN_UNTIL(g.finals == 1, 5000);
	AL_ASSERT(pid_of(&g) > 0);
	AL_ASSERT_INT_NE(pid_of(&g), pid1);
	got_clear(&g);
	fx_end(p);
}

/* A line that is not JSON: the child is killed and replaced. */
AL_TEST(stdio_pool_garbage_replaces_child)
{
	struct got g = {0};
	al_gw_stdio_pool *p;
	pid_t before[8], after[8];
	size_t nb, na;

	fx_start();
	p = pool_new("t-garbage", "garbage", 1, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	nb = child_pids(before, 8);
	AL_ASSERT_INT_EQ(nb, 1);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "echo", NULL, NULL, &g, NULL), 0);
	RUN_UNTIL(g.finals == 1, 5000);
	AL_ASSERT_INT_EQ(err_code(&g), -32603);
	AL_ASSERT_STR_EQ(err_message(&g), "upstream server wrote a line that is not JSON-RPC");
	got_clear(&g);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1 && (na = child_pids(after, 8)) == 1 &&
		      after[0] != before[0],
		  5000);
	na = child_pids(after, 8);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 1);
	AL_ASSERT_INT_EQ(na, 1);
	AL_ASSERT(!pid_in(before[0], after, na));
	fx_end(p);
}

/* A line over AL_MCP_MAX_MESSAGE: a clear error, and the child is replaced. */
AL_TEST(stdio_pool_line_cap)
{
	struct got g = {0};
	al_gw_stdio_pool *p;

	fx_start();
	p = pool_new("t-cap", "normal", 1, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "big", NULL, NULL, &g, NULL), 0);
	RUN_UNTIL(g.finals == 1, 10000);
	AL_ASSERT_INT_EQ(err_code(&g), -32603);
	AL_ASSERT_STR_EQ(err_message(&g), "upstream server wrote a line over the 8 MiB limit");
	got_clear(&g);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 5000);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 1);
	fx_end(p);
}

/* A child that never answers: the request times out and the child is replaced. */
AL_TEST(stdio_pool_timeout_silent_child)
{
	struct got g = {0};
	al_gw_stdio_pool *p;
	uint64_t t0, took;

	fx_start();
	p = pool_new("t-never", "never", 1, 300, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	t0 = al_mono_ms();
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "echo", NULL, NULL, &g, NULL), 0);
	RUN_UNTIL(g.finals == 1, 5000);
	took = al_mono_ms() - t0;
	AL_ASSERT_INT_EQ(g.finals, 1);
	AL_ASSERT_INT_GE(took, 290);
	AL_ASSERT(took < 3000);
	AL_ASSERT_INT_EQ(err_code(&g), -32603);
	AL_ASSERT_STR_EQ(err_message(&g), "upstream server stopped answering");
	AL_ASSERT_INT_EQ(g.ready_at_final, 0);
	got_clear(&g);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 5000);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 1);
	fx_end(p);
}

/* One slow request on a child that still talks: only that request times out, cancelled upstream. */
AL_TEST(stdio_pool_timeout_slow_request)
{
	struct got slow = {0}, g = {0}, st = {0};
	al_gw_stdio_pool *p;
	long long pid;

	fx_start();
	p = pool_new("t-slow", "normal", 1, 400, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "slow", json_pack("{s:i}", "ms", 5000), NULL,
				   &slow, NULL),
			 0);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(2), "echo", NULL, NULL, &g, NULL), 0);
	RUN_UNTIL(g.finals == 1, 5000);
	pid = pid_of(&g);
	got_clear(&g);
	RUN_UNTIL(slow.finals == 1, 5000);
	AL_ASSERT_INT_EQ(err_code(&slow), -32603);
	AL_ASSERT_STR_EQ(err_message(&slow), "upstream request timed out");
	got_clear(&slow);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(3), "stats", NULL, NULL, &st, NULL), 0);
	RUN_UNTIL(st.finals == 1, 5000);
	/* The same child, told to stop the slow call. */
	AL_ASSERT_INT_EQ(pid_of(&st), pid);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(structured(&st), "cancelled")), 1);
	AL_ASSERT(json_is_true(json_object_get(structured(&st), "cancelled_known")));
	got_clear(&st);
	fx_end(p);
}

/* Cancel: notifications/cancelled reaches the child with its id for the call; no callback. */
AL_TEST(stdio_pool_cancel)
{
	struct got slow = {0}, st = {0};
	al_gw_stdio_pool *p;
	al_gw_stdio_req *r = NULL;
	const json_t *s;

	fx_start();
	p = pool_new("t-cancel", "normal", 1, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	AL_ASSERT_INT_EQ(send_call(p, json_string("mine"), "slow", json_pack("{s:i}", "ms", 1000),
				   NULL, &slow, &r),
			 0);
	AL_ASSERT_NOT_NULL(r);
	al_gw_stdio_req_cancel(r);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(2), "stats", NULL, NULL, &st, NULL), 0);
	RUN_UNTIL(st.finals == 1, 5000);
	s = structured(&st);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(s, "slow_ids")), 1);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(s, "cancelled")), 1);
	/* The child got its own id for the call, not the caller's "mine". */
	AL_ASSERT(json_equal(json_array_get(json_object_get(s, "cancelled"), 0),
			     json_array_get(json_object_get(s, "slow_ids"), 0)));
	AL_ASSERT(json_is_integer(json_array_get(json_object_get(s, "cancelled"), 0)));
	got_clear(&st);
	/* Past the slow call's 1 s: still no callback for the cancelled request. */
	RUN_UNTIL(0, 1300);
	AL_ASSERT_INT_EQ(slow.finals, 0);
	AL_ASSERT_INT_EQ(slow.partials, 0);
	fx_end(p);
}

/* The child's environment: opts->env plus PATH, nothing of the gateway's. */
AL_TEST(stdio_pool_clean_environment)
{
	const char *env[] = {"AL_TEST_MARK=hello", NULL};
	struct got g = {0};
	al_gw_stdio_pool *p;
	const json_t *e;

	setenv("AL_TEST_SHOULD_NOT_LEAK", "secret-ish", 1);
	fx_start();
	p = pool_new("t-env", "normal", 1, 0, env, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "env", NULL, NULL, &g, NULL), 0);
	RUN_UNTIL(g.finals == 1, 5000);
	e = json_object_get(structured(&g), "env");
	AL_ASSERT_INT_EQ(json_object_size(e), 2);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "AL_TEST_MARK")), "hello");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(e, "PATH")),
			 "/usr/local/bin:/usr/bin:/bin");
	got_clear(&g);
	fx_end(p);
}

/* A server-to-client request from the child is answered with an error. */
AL_TEST(stdio_pool_server_request_refused)
{
	struct got g = {0};
	al_gw_stdio_pool *p;
	const json_t *reply;

	fx_start();
	p = pool_new("t-ask", "normal", 1, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "ask", NULL, NULL, &g, NULL), 0);
	RUN_UNTIL(g.finals == 1, 8000);
	AL_ASSERT_INT_EQ(g.partials, 0);
	reply = json_object_get(structured(&g), "reply");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(reply, "id")), "srv-1");
	AL_ASSERT_INT_EQ(
	    json_integer_value(json_object_get(json_object_get(reply, "error"), "code")), -32601);
	got_clear(&g);
	fx_end(p);
}

/* stderr goes to the log, line by line, with the route. */
AL_TEST(stdio_pool_stderr_logged)
{
	char path[512], buf[8192];
	al_gw_stdio_pool *p;
	int fd, found = 0;

	snprintf(path, sizeof(path), "%s/log", al_test_tmpdir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	AL_ASSERT(fd >= 0);
	al_log_set_fd(fd);
	fx_start();
	p = pool_new("t-stderr", "normal", 1, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	for (int i = 0; i < 100 && !found; i++) {
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

		buf[n > 0 ? n : 0] = '\0';
		found = strstr(buf, "route=t-stderr") &&
			strstr(buf, "stderr: double: started mode=normal");
		if (!found)
			RUN_UNTIL(0, 50);
	}
	al_log_set_fd(-1);
	AL_ASSERT(found);
	fx_end(p);
	close(fd);
}

/* free: every child is gone once the loop has closed the handles. */
AL_TEST(stdio_pool_free_kills_children)
{
	al_gw_stdio_pool *p;
	pid_t pids[8];
	size_t n;
	uint64_t took;

	fx_start();
	p = pool_new("t-free", "normal", 3, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 3, 10000);
	n = child_pids(pids, 8);
	AL_ASSERT_INT_EQ(n, 3);
	took = fx_end(p);
	/* Polite children leave on EOF/SIGTERM: no 2 s SIGKILL wait. */
	AL_ASSERT(took < 1500);
	for (size_t i = 0; i < n; i++)
		AL_ASSERT(kill(pids[i], 0) < 0 && errno == ESRCH);
	AL_ASSERT_INT_EQ(child_pids(pids, 8), 0);
}

/* A child that ignores SIGTERM gets SIGKILL 2 s later; free does not block the loop. */
AL_TEST(stdio_pool_free_sigkill)
{
	al_gw_stdio_pool *p;
	pid_t pids[8];
	size_t n;
	uint64_t t0, took;
	int ticks = 0;

	fx_start();
	p = pool_new("t-kill", "normal", 2, 0, NULL, "--ignore-term", NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 2, 10000);
	n = child_pids(pids, 8);
	AL_ASSERT_INT_EQ(n, 2);
	t0 = al_mono_ms();
	al_gw_stdio_pool_free(p);
	AL_ASSERT(al_mono_ms() - t0 < 100);
	/* The loop keeps turning (the tick fires) while the children are being killed. */
	RUN_UNTIL((ticks++, 0), 500);
	AL_ASSERT(ticks > 5);
	AL_ASSERT_INT_EQ(child_pids(pids + 2, 6), 2);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	took = al_mono_ms() - t0;
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	AL_ASSERT_INT_GE(took, 1900);
	AL_ASSERT(took < 5000);
	for (size_t i = 0; i < n; i++)
		AL_ASSERT(kill(pids[i], 0) < 0 && errno == ESRCH);
}

/* Bad options fail in new, with words. */
AL_TEST(stdio_pool_bad_command)
{
	const char *argv[] = {"no-such-command-for-airlock", NULL};
	const char *argv_abs[] = {"/nonexistent/mcp-server", NULL};
	const char *argv_ok[] = {"python3", NULL};
	const char *bad_env[] = {"NOEQUALS", NULL};
	struct al_gw_stdio_opts o = {.route = "t-bad", .argv = argv};
	al_gw_stdio_pool *p = (al_gw_stdio_pool *)1;
	char err[256];

	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_new(&loop, &o, &p, err, sizeof(err)), -ENOENT);
	AL_ASSERT_NULL(p);
	AL_ASSERT(strstr(err, "not found on PATH") != NULL);
	o.argv = argv_abs;
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_new(&loop, &o, &p, err, sizeof(err)), -ENOENT);
	/* PATH from the route's env replaces the fixed one, for the lookup too. */
	o.argv = argv_ok;
	o.env = (const char *const[]){"PATH=/nonexistent", NULL};
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_new(&loop, &o, &p, err, sizeof(err)), -ENOENT);
	o.env = bad_env;
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_new(&loop, &o, &p, err, sizeof(err)), -EINVAL);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* Many requests with a handful of ids over two children: every answer finds its caller. */
AL_TEST(stdio_pool_many_requests)
{
	enum { N = 300 };
	static struct got g[N];
	al_gw_stdio_pool *p;
	int done = 0;

	fx_start();
	p = pool_new("t-many", "normal", 2, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 2, 10000);
	for (int i = 0; i < N; i++) {
		char text[32];

		snprintf(text, sizeof(text), "m%d", i);
		AL_ASSERT_INT_EQ(send_call(p, json_integer(i % 3), "echo",
					   json_pack("{s:s}", "text", text), NULL, &g[i], NULL),
				 0);
	}
	for (uint64_t dl = al_mono_ms() + 20000; done < N && al_mono_ms() < dl;) {
		uv_run(&loop, UV_RUN_ONCE);
		done = 0;
		for (int i = 0; i < N; i++)
			done += g[i].finals;
	}
	AL_ASSERT_INT_EQ(done, N);
	for (int i = 0; i < N; i++) {
		char text[32];

		snprintf(text, sizeof(text), "m%d", i);
		AL_ASSERT_INT_EQ(json_integer_value(json_object_get(g[i].final, "id")), i % 3);
		AL_ASSERT_STR_EQ(json_string_value(json_object_get(structured(&g[i]), "text")),
				 text);
		got_clear(&g[i]);
	}
	fx_end(p);
}

/* A command that dies at once is restarted with a growing delay, not in a tight loop. */
AL_TEST(stdio_pool_backoff)
{
	const char *argv[] = {"false", NULL};
	struct al_gw_stdio_opts o = {.route = "t-backoff", .argv = argv, .size = 1};
	al_gw_stdio_pool *p = NULL;
	char err[256], path[512], buf[65536];
	int fd, starts = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/log", al_test_tmpdir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	AL_ASSERT(fd >= 0);
	al_log_set_fd(fd);
	fx_start();
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_new(&loop, &o, &p, err, sizeof(err)), 0);
	/* Starts at 0, +100, +300, +700 ms (then +1500): four in 1.2 s. */
	RUN_UNTIL(0, 1200);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 0);
	fx_end(p);
	al_log_set_fd(-1);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	for (const char *s = buf; (s = strstr(s, " started")) != NULL; s++)
		starts++;
	close(fd);
	AL_ASSERT_INT_GE(starts, 3);
	AL_ASSERT(starts <= 5);
}

static al_gw_stdio_req *cancel_me;
static int cancel_finals, cancel_partials;

static void cancel_in_cb(void *ud, const json_t *msg, int final)
{
	if (final) {
		cancel_finals++;
		return;
	}
	cancel_partials++;
	al_gw_stdio_req_cancel(cancel_me);
}

/* Cancelling from inside a progress callback: no more callbacks, nothing freed twice. */
AL_TEST(stdio_pool_cancel_inside_callback)
{
	struct got st = {0};
	al_gw_stdio_pool *p;
	json_t *m;

	fx_start();
	p = pool_new("t-cancel-cb", "normal", 1, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	m = call_msg(json_integer(1), "echo", json_pack("{s:s}", "text", "x"), json_integer(9));
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_send(p, m, cancel_in_cb, NULL, &cancel_me), 0);
	json_decref(m);
	RUN_UNTIL(cancel_partials == 1, 5000);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(2), "stats", NULL, NULL, &st, NULL), 0);
	RUN_UNTIL(st.finals == 1, 5000);
	AL_ASSERT_INT_EQ(json_array_size(json_object_get(structured(&st), "cancelled")), 1);
	got_clear(&st);
	AL_ASSERT_INT_EQ(cancel_partials, 1);
	AL_ASSERT_INT_EQ(cancel_finals, 0);
	fx_end(p);
}

static al_gw_stdio_pool *free_me;
static int freed_finals;

static void free_in_cb(void *ud, const json_t *msg, int final)
{
	freed_finals++;
	al_gw_stdio_pool_free(free_me);
}

/* Freeing the pool from inside a callback while other requests fail with the child. */
AL_TEST(stdio_pool_free_inside_callback)
{
	al_gw_stdio_pool *p;
	json_t *m;

	fx_start();
	p = pool_new("t-free-cb", "crash-after", 1, 0, NULL, "--n", "3");
	free_me = p;
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	/* Two slow calls in flight, then the crash: the first failure frees the pool. */
	for (int i = 0; i < 3; i++) {
		m = call_msg(json_integer(i), "slow", json_pack("{s:i}", "ms", 3000), NULL);
		AL_ASSERT_INT_EQ(al_gw_stdio_pool_send(p, m, free_in_cb, NULL, NULL), 0);
		json_decref(m);
	}
	RUN_UNTIL(freed_finals > 0, 5000);
	/* Requests in flight get no more callbacks once the pool is freed. */
	AL_ASSERT_INT_EQ(freed_finals, 1);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(freed_finals, 1);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* Every allocation of new and send failing in turn: -ENOMEM and nothing leaked (ASan). */
AL_TEST(stdio_pool_alloc_failures)
{
	const char *env[] = {"A=1", NULL};
	struct got g = {0};
	al_gw_stdio_pool *p = NULL;
	int rc, ok_new = 0, ok_send = 0;

	al_alloc_init();
	fx_start();
	for (long n = 0; n < 64 && !ok_new; n++) {
		const char *argv[] = {"python3", script, "--mode", "normal", NULL};
		struct al_gw_stdio_opts o = {.route = "t-oom", .argv = argv, .env = env, .size = 1};
		char err[128];

		al_alloc_fail_after(n);
		rc = al_gw_stdio_pool_new(&loop, &o, &p, err, sizeof(err));
		al_alloc_fail_after(-1);
		if (rc == 0)
			ok_new = 1;
		else
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
	}
	AL_ASSERT(ok_new);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 1);
	for (long n = 0; n < 64 && !ok_send; n++) {
		json_t *m = call_msg(json_integer(1), "echo", json_pack("{s:s}", "text", "oom"),
				     json_string("t"));

		g.p = p;
		al_alloc_fail_after(n);
		rc = al_gw_stdio_pool_send(p, m, got_cb, &g, NULL);
		al_alloc_fail_after(-1);
		json_decref(m);
		if (rc == 0)
			ok_send = 1;
		else
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
	}
	AL_ASSERT(ok_send);
	RUN_UNTIL(g.finals == 1, 5000);
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(structured(&g), "text")), "oom");
	got_clear(&g);
	fx_end(p);
}

/* A child's ping is answered; a caller's notification goes to every child. */
AL_TEST(stdio_pool_ping_and_notifications)
{
	struct got g = {0}, n = {0}, st[2] = {{0}};
	al_gw_stdio_pool *p;
	const json_t *reply;
	json_t *m;

	fx_start();
	p = pool_new("t-ping", "normal", 2, 0, NULL, NULL, NULL);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 2, 10000);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "ask", json_pack("{s:s}", "method", "ping"),
				   NULL, &g, NULL),
			 0);
	RUN_UNTIL(g.finals == 1, 8000);
	reply = json_object_get(structured(&g), "reply");
	AL_ASSERT_STR_EQ(json_string_value(json_object_get(reply, "id")), "srv-1");
	AL_ASSERT(json_is_object(json_object_get(reply, "result")));
	got_clear(&g);

	m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", "notifications/roots/list_changed");
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_send(p, m, got_cb, &n, NULL), 0);
	json_decref(m);
	AL_ASSERT_INT_EQ(n.finals, 1);
	AL_ASSERT(json_is_null(n.final));
	got_clear(&n);
	/* Both children (one stats call each: least busy spreads them). */
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "stats", NULL, NULL, &st[0], NULL), 0);
	AL_ASSERT_INT_EQ(send_call(p, json_integer(1), "stats", NULL, NULL, &st[1], NULL), 0);
	RUN_UNTIL(st[0].finals + st[1].finals == 2, 5000);
	AL_ASSERT_INT_NE(pid_of(&st[0]), pid_of(&st[1]));
	for (int i = 0; i < 2; i++) {
		const json_t *ns = json_object_get(structured(&st[i]), "notifications");

		AL_ASSERT_INT_EQ(json_array_size(ns), 1);
		AL_ASSERT_STR_EQ(json_string_value(json_array_get(ns, 0)),
				 "notifications/roots/list_changed");
		got_clear(&st[i]);
	}
	fx_end(p);
}

/* A child that never finishes its handshake is replaced after the timeout. */
AL_TEST(stdio_pool_handshake_timeout)
{
	al_gw_stdio_pool *p;
	pid_t first[4], now[4];
	size_t n;

	fx_start();
	p = pool_new("t-mute", "mute", 1, 300, NULL, NULL, NULL);
	RUN_UNTIL(child_pids(first, 4) == 1, 5000);
	AL_ASSERT_INT_EQ(child_pids(first, 4), 1);
	RUN_UNTIL((n = child_pids(now, 4)) >= 1 && !pid_in(first[0], now, n), 5000);
	n = child_pids(now, 4);
	AL_ASSERT(!pid_in(first[0], now, n));
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 0);
	fx_end(p);
}

/* Processes of this test whose command line holds `mark`. */
static int count_marked(const char *mark)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	AL_ASSERT_NOT_NULL(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], buf[4096];
		ssize_t r;
		int fd;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[r] = '\0';
		if (strstr(buf, mark))
			n++;
	}
	closedir(d);
	return n;
}

/* A wrapper (sh) in front of a server that ignores SIGTERM and EOF: the whole group goes. */
AL_TEST(stdio_pool_free_kills_process_group)
{
	char cmd[1400], mark[64];
	const char *argv[] = {"sh", "-c", cmd, NULL};
	struct al_gw_stdio_opts o = {.route = "t-group", .argv = argv, .size = 1};
	al_gw_stdio_pool *p = NULL;
	char err[256];

	fx_start();
	/* `; :` keeps sh from exec'ing python: a real wrapper process stays in between. */
	snprintf(mark, sizeof(mark), "al-group-mark-%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "python3 %s --mode normal --ignore-term --tag %s; :", script,
		 mark);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_new(&loop, &o, &p, err, sizeof(err)), 0);
	RUN_UNTIL(al_gw_stdio_pool_ready(p) == 1, 10000);
	AL_ASSERT_INT_EQ(al_gw_stdio_pool_ready(p), 1);
	/* sh and python both carry the mark in their command lines. */
	AL_ASSERT_INT_EQ(count_marked(mark), 2);
	fx_end(p);
	RUN_UNTIL(0, 0);
	AL_ASSERT_INT_EQ(count_marked(mark), 0);
}
