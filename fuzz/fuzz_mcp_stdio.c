/*
 * fuzz_mcp_stdio.c - libFuzzer target for the stdio transport's line
 * framing (al_mcp_stdio_serve).
 *
 * The input after its first two bytes is written into a socketpair that
 * the transport reads, in chunks whose sizes come from a small generator
 * seeded by those two bytes, with the loop run between chunks so lines
 * arrive split anywhere. A byte 0x1d in the input stands for 70000 bytes
 * of 'x' (more than the transport's 64 KiB read buffer), so long lines and
 * the collection path are reachable. Then the input is shut down (EOF),
 * the loop runs until the transport reports EOF or stops producing, and
 * the transport is freed.
 *
 * Checked (abort on failure): everything written to the output is
 * complete lines, each one JSON object with "jsonrpc":"2.0"; the loop ends
 * with no handle left open; ASan's leak check covers the rest.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "mcp/meta.h"
#include "mcp/server.h"
#include "mcp/stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

#define PAD_BYTE 0x1d
#define PAD_LEN	 70000

static void tool_echo(al_mcp_call *c, json_t *args, void *ud)
{
	(void)ud;
	al_mcp_call_result(c, json_pack("{s[{ssss}]sO}", "content", "type", "text", "text", "echo",
					"structuredContent", args));
}

static void tool_chatty(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	al_mcp_call_progress(c, 1, 2, "half");
	al_mcp_call_log(c, AL_MCP_LOG_INFO, "fuzz", json_string("line\nbreak"));
	al_mcp_call_result(c, json_pack("{s[]}", "content"));
}

static void reply_cb(al_mcp_call *c, json_t *result, const al_mcp_error *err, void *ud)
{
	(void)ud;
	if (!result && !err)
		return;
	if (result)
		al_mcp_call_result(c, json_pack("{s[]sO}", "content", "structuredContent", result));
	else
		al_mcp_call_error(c, err);
}

static void tool_ask(al_mcp_call *c, json_t *args, void *ud)
{
	(void)args;
	(void)ud;
	if (al_mcp_call_legacy(c)) {
		if (al_mcp_call_request(c, "roots/list", NULL, reply_cb, NULL) < 0)
			al_mcp_call_errorf(c, -32603, "request failed");
		return;
	}
	if (al_mcp_call_input_responses(c)) {
		al_mcp_call_result(c, json_pack("{s[]}", "content"));
		return;
	}
	al_mcp_call_input_required(
	    c, json_pack("{s{sss{}}}", "r", "method", "roots/list", "params"), NULL);
}

static void read_res(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	(void)vars;
	(void)ud;
	al_mcp_call_result(c, json_pack("{s[{ssss}]}", "contents", "uri", uri, "text", "x"));
}

static al_mcp_server *server_new(void)
{
	static const unsigned char key[AL_MCP_STATE_KEY_LEN] = "fuzz-key-fuzz-key-fuzz-key-fuzz";
	struct al_mcp_server_opts o = {.name = "fuzz", .version = "1", .state_key = key};
	al_mcp_server *s = al_mcp_server_new(&o);
	json_t *schema = json_pack("{ss}", "type", "object");

	CHECK(s && schema);
	CHECK(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "echo",
							      .input_schema = schema,
							      .fn = tool_echo}) == 0);
	CHECK(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "chatty",
							      .input_schema = schema,
							      .fn = tool_chatty}) == 0);
	CHECK(al_mcp_server_add_tool(s, &(struct al_mcp_tool){.name = "ask",
							      .input_schema = schema,
							      .fn = tool_ask}) == 0);
	CHECK(al_mcp_server_add_template(
		  s, &(struct al_mcp_resource_template){.uri_template = "test://items/{id}",
							.fn = read_res}) == 0);
	json_decref(schema);
	return s;
}

/* Every complete line of out[0..len) is one JSON-RPC object; returns the bytes consumed. */
static size_t check_lines(const char *out, size_t len)
{
	size_t done = 0;

	while (done < len) {
		const char *nl = memchr(out + done, '\n', len - done);
		json_t *j;
		json_error_t e;
		if (nl == NULL)
			break;
		j = json_loadb(out + done, (size_t)(nl - (out + done)), 0, &e);
		if (getenv("FUZZ_MCP_VERBOSE"))
			fprintf(stderr, "out: %.*s\n", (int)(nl - (out + done)), out + done);
		CHECK(json_is_object(j));
		CHECK(json_is_string(json_object_get(j, "jsonrpc")));
		CHECK(strcmp(json_string_value(json_object_get(j, "jsonrpc")), "2.0") == 0);
		json_decref(j);
		done = (size_t)(nl - out) + 1;
	}
	return done;
}

static void drain(int fd, al_buf *out)
{
	char buf[65536];
	ssize_t r;
	size_t used;

	while ((r = read(fd, buf, sizeof(buf))) > 0)
		CHECK(al_buf_append(out, buf, (size_t)r) == 0);
	used = check_lines(out->data, out->len);
	if (used) {
		memmove(out->data, out->data + used, out->len - used);
		out->len -= used;
	}
}

static void on_eof(void *ud)
{
	*(int *)ud = 1;
}

static void walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* The input with every PAD_BYTE expanded; the caller frees. */
static void expand(const uint8_t *p, size_t n, al_buf *in)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == PAD_BYTE && in->len < (32u << 20)) {
			size_t at = in->len;
			CHECK(al_buf_reserve(in, PAD_LEN) == 0);
			memset(in->data + at, 'x', PAD_LEN);
			in->len += PAD_LEN;
		} else {
			CHECK(al_buf_append(in, (const char *)&p[i], 1) == 0);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	uv_loop_t loop;
	al_mcp_server *s;
	al_mcp_stdio *st = NULL;
	int in_sv[2], out_sv[2], eof = 0, idle = 0;
	uint32_t rng;
	al_buf in = {0}, out = {0};
	size_t off = 0;

	if (!init) {
		al_alloc_init();
		init = 1;
	}
	if (size < 2)
		return 0;
	rng = ((uint32_t)data[0] << 8 | data[1]) * 2654435761u + 1;
	expand(data + 2, size - 2, &in);
	CHECK(uv_loop_init(&loop) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_sv) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out_sv) == 0);
	CHECK(fcntl(in_sv[0], F_SETFL, O_NONBLOCK) == 0);
	CHECK(fcntl(out_sv[0], F_SETFL, O_NONBLOCK) == 0);
	s = server_new();
	CHECK(al_mcp_stdio_serve(&loop, s, in_sv[1], out_sv[1], on_eof, &eof, &st) == 0);
	/* Feed in random chunks; the loop reads them and writes the answers. */
	while (off < in.len) {
		size_t want, left = in.len - off;
		ssize_t w;
		rng = rng * 1103515245u + 12345u;
		want = (rng >> 16) % 4 == 0 ? 1 + (rng >> 8) % 4096 : 1 + (rng >> 20) % 64;
		if (want > left)
			want = left;
		w = write(in_sv[0], in.data + off, want);
		if (w > 0)
			off += (size_t)w;
		else
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
		uv_run(&loop, UV_RUN_NOWAIT);
		drain(out_sv[0], &out);
	}
	CHECK(shutdown(in_sv[0], SHUT_WR) == 0);
	/* Until EOF is reported, or nothing moves for a while (a listen or a
	 * legacy request to the client keeps a call open past EOF). */
	while (!eof && idle < 20) {
		size_t before = out.len;
		uv_run(&loop, UV_RUN_NOWAIT);
		drain(out_sv[0], &out);
		idle = out.len == before ? idle + 1 : 0;
	}
	al_mcp_stdio_free(st);
	uv_run(&loop, UV_RUN_NOWAIT);
	drain(out_sv[0], &out);
	uv_run(&loop, UV_RUN_DEFAULT);
	drain(out_sv[0], &out);
	/* Whatever was written ends with its newline: no half line. */
	CHECK(out.len == 0);
	al_mcp_server_free(s);
	uv_walk(&loop, walk_cb, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
	close(in_sv[0]);
	close(out_sv[0]);
	al_buf_free(&in);
	al_buf_free(&out);
	return 0;
}
