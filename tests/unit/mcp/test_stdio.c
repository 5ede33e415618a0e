/*
 * test_stdio.c - MCP over stdio (mcp/stdio.c) on a socketpair: the server
 * end is served on a uv loop on the test's main thread with a real
 * al_mcp_server and a few tools; a blocking client on a thread writes lines
 * and reads lines. The client ends its side with shutdown(SHUT_WR), which
 * is the transport's EOF; on_eof frees the transport and the loop ends.
 */
#include "unit/unit.h"

#include "mcp/server.h"
#include "mcp/stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct fx {
	uv_loop_t loop;
	al_mcp_server *srv;
	al_mcp_stdio *st;
	int sv[2]; /* sv[0]: the server's (in and out), sv[1]: the client's */
	int in_pipe[2], out_pipe[2];
	pthread_t th;
	void (*client)(struct fx *);
	atomic_int entered;
	atomic_int cancelled;
	atomic_int answered;
	atomic_int eofs;
	char buf[1 << 16];
	size_t len;
	int rfd, wfd; /* the client's ends */
};

/* ---- tools ---- */

static void echo_tool(al_mcp_call *c, json_t *args, void *ud)
{
	json_t *text = json_object_get(args, "text");

	(void)ud;
	al_mcp_call_result(c, json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text",
					json_is_string(text) ? json_string_value(text) : "hi"));
}

struct later {
	uv_timer_t t;
	al_mcp_call *c;
	struct fx *fx;
	char text[32];
};

static void later_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void later_cb(uv_timer_t *t)
{
	struct later *l = t->data;

	al_mcp_call_result(
	    l->c, json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", l->text));
	atomic_fetch_add(&l->fx->answered, 1);
	uv_close((uv_handle_t *)t, later_closed_cb);
}

/* Answers after arguments.ms milliseconds with arguments.text. */
static void slow_tool(al_mcp_call *c, json_t *args, void *ud)
{
	struct fx *fx = ud;
	struct later *l = calloc(1, sizeof(*l));
	json_t *text = json_object_get(args, "text");

	AL_ASSERT_NOT_NULL(l);
	l->c = c;
	l->fx = fx;
	snprintf(l->text, sizeof(l->text), "%s",
		 json_is_string(text) ? json_string_value(text) : "");
	l->t.data = l;
	uv_timer_init(&fx->loop, &l->t);
	uv_timer_start(&l->t, later_cb, (uint64_t)json_integer_value(json_object_get(args, "ms")),
		       0);
}

static void hang_cancel_cb(al_mcp_call *c, void *ud)
{
	struct fx *fx = ud;

	(void)c;
	atomic_fetch_add(&fx->cancelled, 1);
}

static void hang_tool(al_mcp_call *c, json_t *args, void *ud)
{
	struct fx *fx = ud;

	(void)args;
	al_mcp_call_on_cancel(c, hang_cancel_cb, fx);
	atomic_fetch_add(&fx->entered, 1);
}

/* ---- fixture ---- */

static void eof_cb(void *ud)
{
	struct fx *fx = ud;

	atomic_fetch_add(&fx->eofs, 1);
	al_mcp_stdio_free(fx->st);
	fx->st = NULL;
}

static void *client_main(void *arg)
{
	struct fx *fx = arg;

	fx->client(fx);
	return NULL;
}

static void add_tool(struct fx *fx, const char *name, al_mcp_tool_fn fn)
{
	json_t *schema = json_pack("{s:s}", "type", "object");
	struct al_mcp_tool t = {.name = name, .input_schema = schema, .fn = fn, .ud = fx};

	AL_ASSERT_INT_EQ(al_mcp_server_add_tool(fx->srv, &t), 0);
	json_decref(schema);
}

/* pipes: 1 for two pipes (in and out fds differ), 0 for one socketpair fd. */
static void run(struct fx *fx, int pipes, void (*client)(struct fx *))
{
	struct al_mcp_server_opts so = {.name = "test-stdio", .version = "1.0.0"};
	struct timeval tv = {.tv_sec = 5};
	int in_fd, out_fd;

	AL_ASSERT_INT_EQ(uv_loop_init(&fx->loop), 0);
	fx->srv = al_mcp_server_new(&so);
	AL_ASSERT_NOT_NULL(fx->srv);
	add_tool(fx, "echo", echo_tool);
	add_tool(fx, "slow", slow_tool);
	add_tool(fx, "hang", hang_tool);
	if (pipes) {
		AL_ASSERT_INT_EQ(pipe(fx->in_pipe), 0);
		AL_ASSERT_INT_EQ(pipe(fx->out_pipe), 0);
		in_fd = fx->in_pipe[0];
		out_fd = fx->out_pipe[1];
		fx->wfd = fx->in_pipe[1];
		fx->rfd = fx->out_pipe[0];
	} else {
		AL_ASSERT_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fx->sv), 0);
		in_fd = out_fd = fx->sv[0];
		fx->rfd = fx->wfd = fx->sv[1];
		setsockopt(fx->rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	AL_ASSERT_INT_EQ(al_mcp_stdio_serve(&fx->loop, fx->srv, in_fd, out_fd, eof_cb, fx, &fx->st),
			 0);
	fx->client = client;
	AL_ASSERT_INT_EQ(pthread_create(&fx->th, NULL, client_main, fx), 0);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	pthread_join(fx->th, NULL);
	AL_ASSERT_INT_EQ(atomic_load(&fx->eofs), 1);
	al_mcp_server_free(fx->srv);
	AL_ASSERT_INT_EQ(uv_loop_close(&fx->loop), 0);
	close(fx->rfd);
	if (fx->wfd != fx->rfd && fx->wfd >= 0)
		close(fx->wfd);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 500; i++) {
		if (atomic_load(v) >= want)
			return 1;
		sleep_ms(10);
	}
	return 0;
}

/* ---- client side ---- */

static void put(struct fx *fx, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fx->wfd, s, n);
		AL_ASSERT(w > 0);
		s += w;
		n -= (size_t)w;
	}
}

static void put_str(struct fx *fx, const char *s)
{
	put(fx, s, strlen(s));
}

/* Ends the client's output: the transport's EOF. */
static void end_input(struct fx *fx)
{
	if (fx->wfd == fx->rfd) {
		shutdown(fx->wfd, SHUT_WR);
	} else {
		close(fx->wfd);
		fx->wfd = -1;
	}
}

/* The next line as parsed JSON, NULL at EOF. */
static json_t *get_line(struct fx *fx)
{
	for (;;) {
		char *nl = memchr(fx->buf, '\n', fx->len);
		if (nl) {
			json_error_t e;
			size_t n = (size_t)(nl - fx->buf);
			json_t *j = json_loadb(fx->buf, n, 0, &e);
			if (j == NULL)
				al_test_fail(__FILE__, __LINE__, "bad line: %.*s", (int)n, fx->buf);
			memmove(fx->buf, nl + 1, fx->len - n - 1);
			fx->len -= n + 1;
			return j;
		}
		AL_ASSERT(fx->len < sizeof(fx->buf));
		ssize_t r = read(fx->rfd, fx->buf + fx->len, sizeof(fx->buf) - fx->len);
		if (r == 0)
			return NULL;
		AL_ASSERT(r > 0);
		fx->len += (size_t)r;
	}
}

#define META                                                                                       \
	"\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","                   \
	"\"io.modelcontextprotocol/clientCapabilities\":{}}"

static void call(struct fx *fx, int id, const char *tool, const char *args)
{
	char line[1024];

	snprintf(line, sizeof(line),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
		 "{\"name\":\"%s\",\"arguments\":%s," META "}}\n",
		 id, tool, args);
	put_str(fx, line);
}

static long long id_of(json_t *j)
{
	return json_integer_value(json_object_get(j, "id"));
}

static const char *text_of(json_t *j)
{
	return json_string_value(json_object_get(
	    json_array_get(json_object_get(json_object_get(j, "result"), "content"), 0), "text"));
}

/* ---- tests ---- */

static void request_client(struct fx *fx)
{
	json_t *j;

	call(fx, 1, "echo", "{\"text\":\"one\"}");
	j = get_line(fx);
	AL_ASSERT_NOT_NULL(j);
	AL_ASSERT_INT_EQ(id_of(j), 1);
	AL_ASSERT_STR_EQ(text_of(j), "one");
	json_decref(j);

	/* Blank lines and CRLF endings are fine; garbage gets -32700. */
	put_str(fx, "\n  \r\n");
	call(fx, 2, "echo", "{\"text\":\"two\"}");
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 2);
	json_decref(j);
	put_str(fx, "{not json\n");
	j = get_line(fx);
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
			 -32700);
	json_decref(j);

	/* Two messages in one write, one message split over two writes. */
	put_str(fx, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
	call(fx, 3, "echo", "{\"text\":\"three\"}");
	put_str(fx, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/ca");
	sleep_ms(20);
	put_str(fx, "ll\",\"params\":{\"name\":\"echo\",\"arguments\":{}," META "}}\n");
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 3); /* the notification got no answer */
	json_decref(j);
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 4);
	json_decref(j);

	/* Concurrency: the slower call, sent first, answers last. */
	call(fx, 5, "slow", "{\"ms\":300,\"text\":\"slow\"}");
	call(fx, 6, "slow", "{\"ms\":10,\"text\":\"fast\"}");
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 6);
	json_decref(j);
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 5);
	AL_ASSERT_STR_EQ(text_of(j), "slow");
	json_decref(j);
	end_input(fx);
	AL_ASSERT_NULL(get_line(fx));
}

AL_TEST(mcp_stdio_request_response)
{
	struct fx fx = {0};
	run(&fx, 0, request_client);
}

AL_TEST(mcp_stdio_two_pipes)
{
	struct fx fx = {0};
	run(&fx, 1, request_client);
}

static void cancel_client(struct fx *fx)
{
	json_t *j;

	call(fx, 7, "hang", "{}");
	AL_ASSERT(wait_for(&fx->entered, 1));
	/* Unknown ids and malformed cancellations are ignored. */
	put_str(fx, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
		    "\"params\":{\"requestId\":99}}\n");
	put_str(fx, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\"}\n");
	put_str(fx, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
		    "\"params\":{\"requestId\":\"7\"}}\n"); /* a string is not the integer 7 */
	call(fx, 8, "echo", "{}");
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 8);
	json_decref(j);
	AL_ASSERT_INT_EQ(atomic_load(&fx->cancelled), 0);

	put_str(fx, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
		    "\"params\":{\"requestId\":7,\"reason\":\"user\"}}\n");
	AL_ASSERT(wait_for(&fx->cancelled, 1));
	/* The cancelled call sends nothing: the next line answers id 9. */
	call(fx, 9, "echo", "{}");
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 9);
	json_decref(j);

	/* A string id works the same way. */
	put_str(fx, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"tools/call\",\"params\":"
		    "{\"name\":\"hang\",\"arguments\":{}," META "}}\n");
	AL_ASSERT(wait_for(&fx->entered, 2));
	put_str(fx, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
		    "\"params\":{\"requestId\":\"abc\"}}\n");
	AL_ASSERT(wait_for(&fx->cancelled, 2));
	end_input(fx);
	AL_ASSERT_NULL(get_line(fx));
}

AL_TEST(mcp_stdio_cancellation)
{
	struct fx fx = {0};
	run(&fx, 0, cancel_client);
}

static void oversize_client(struct fx *fx)
{
	size_t total = AL_MCP_MAX_MESSAGE + (1u << 20), chunk = 1u << 16;
	char *junk = malloc(chunk);
	json_t *j, *err;

	AL_ASSERT_NOT_NULL(junk);
	memset(junk, 'x', chunk);
	put_str(fx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"a\":\"");
	for (size_t sent = 0; sent < total; sent += chunk)
		put(fx, junk, chunk);
	put_str(fx, "\"}}\n");
	free(junk);
	/* One -32600 without id, then the stream is in step again. */
	j = get_line(fx);
	AL_ASSERT_NOT_NULL(j);
	err = json_object_get(j, "error");
	AL_ASSERT_INT_EQ(json_integer_value(json_object_get(err, "code")), -32600);
	AL_ASSERT_NULL(json_object_get(j, "id"));
	json_decref(j);
	call(fx, 2, "echo", "{\"text\":\"after\"}");
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 2);
	AL_ASSERT_STR_EQ(text_of(j), "after");
	json_decref(j);
	end_input(fx);
	AL_ASSERT_NULL(get_line(fx));
}

AL_TEST(mcp_stdio_oversize_line)
{
	struct fx fx = {0};
	run(&fx, 0, oversize_client);
}

/* EOF with calls in flight: they finish and are written, then on_eof runs. */
static void eof_client(struct fx *fx)
{
	json_t *j;

	call(fx, 1, "slow", "{\"ms\":150,\"text\":\"a\"}");
	call(fx, 2, "slow", "{\"ms\":50,\"text\":\"b\"}");
	/* The last message has no newline: still a message. */
	put_str(fx, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
		    "{\"name\":\"echo\",\"arguments\":{\"text\":\"c\"}," META "}}");
	end_input(fx);
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 3);
	json_decref(j);
	AL_ASSERT_INT_EQ(atomic_load(&fx->eofs), 0);
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 2);
	json_decref(j);
	j = get_line(fx);
	AL_ASSERT_INT_EQ(id_of(j), 1);
	AL_ASSERT_STR_EQ(text_of(j), "a");
	json_decref(j);
	/* Then the transport ends (on_eof freed it, closing its end). */
	AL_ASSERT_NULL(get_line(fx));
	AL_ASSERT_INT_EQ(atomic_load(&fx->answered), 2);
	AL_ASSERT(wait_for(&fx->eofs, 1));
}

AL_TEST(mcp_stdio_eof_drains)
{
	struct fx fx = {0};
	run(&fx, 1, eof_client);
}

/* Writes the flood of requests (a thread of its own, as a real client's writer). */
static void *flood_main(void *arg)
{
	struct fx *fx = arg;
	char text[2100];
	char line[4096];

	memset(text, 'y', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	for (int i = 0; i < 4000; i++) {
		snprintf(line, sizeof(line),
			 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
			 "{\"name\":\"echo\",\"arguments\":{\"text\":\"%s\"}," META "}}\n",
			 i, text);
		put_str(fx, line);
	}
	end_input(fx);
	return NULL;
}

/*
 * A client that does not read for a while: 8 MiB of answers back up
 * (past the transport's high-water mark, so it stops reading requests and
 * the writer blocks), then everything arrives, complete and in order.
 */
static void backpressure_client(struct fx *fx)
{
	pthread_t w;
	json_t *j;

	AL_ASSERT_INT_EQ(pthread_create(&w, NULL, flood_main, fx), 0);
	sleep_ms(500);
	for (int i = 0; i < 4000; i++) {
		j = get_line(fx);
		AL_ASSERT_NOT_NULL(j);
		AL_ASSERT_INT_EQ(id_of(j), i);
		json_decref(j);
	}
	AL_ASSERT_NULL(get_line(fx));
	pthread_join(w, NULL);
}

AL_TEST(mcp_stdio_output_backpressure)
{
	struct fx fx = {0};
	run(&fx, 1, backpressure_client);
}

static void file_client(struct fx *fx)
{
	json_t *j;

	static const int order[] = {1, 3, 2}; /* 2 is the slow one */

	for (int i = 0; i < 3; i++) {
		j = get_line(fx);
		AL_ASSERT_NOT_NULL(j);
		AL_ASSERT_INT_EQ(id_of(j), order[i]);
		json_decref(j);
	}
	AL_ASSERT_NULL(get_line(fx));
}

/* stdin redirected from a regular file (which epoll cannot watch). */
AL_TEST(mcp_stdio_file_input)
{
	struct fx fx = {0};
	struct al_mcp_server_opts so = {.name = "test-stdio", .version = "1.0.0"};
	char path[512];
	FILE *f;
	int in_fd;

	snprintf(path, sizeof(path), "%s/in.jsonl", al_test_tmpdir());
	f = fopen(path, "w");
	AL_ASSERT_NOT_NULL(f);
	for (int i = 1; i <= 3; i++)
		fprintf(f,
			"{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
			"{\"name\":\"%s\",\"arguments\":{\"ms\":20}," META "}}\n",
			i, i == 2 ? "slow" : "echo");
	fclose(f);
	in_fd = open(path, O_RDONLY);
	AL_ASSERT_INT_GE(in_fd, 0);
	AL_ASSERT_INT_EQ(pipe(fx.out_pipe), 0);
	fx.rfd = fx.out_pipe[0];
	fx.wfd = -1;
	AL_ASSERT_INT_EQ(uv_loop_init(&fx.loop), 0);
	fx.srv = al_mcp_server_new(&so);
	add_tool(&fx, "echo", echo_tool);
	add_tool(&fx, "slow", slow_tool);
	AL_ASSERT_INT_EQ(
	    al_mcp_stdio_serve(&fx.loop, fx.srv, in_fd, fx.out_pipe[1], eof_cb, &fx, &fx.st), 0);
	fx.client = file_client;
	AL_ASSERT_INT_EQ(pthread_create(&fx.th, NULL, client_main, &fx), 0);
	uv_run(&fx.loop, UV_RUN_DEFAULT);
	pthread_join(fx.th, NULL);
	AL_ASSERT_INT_EQ(atomic_load(&fx.eofs), 1);
	al_mcp_server_free(fx.srv);
	AL_ASSERT_INT_EQ(uv_loop_close(&fx.loop), 0);
	close(fx.rfd);
}
