/*
 * test_http_client_fresh.c - fresh_connect stops libcurl's silent re-send.
 *
 * The peer keeps connections alive; /ok answers, /die reads the whole
 * request (as a server that stored it would) and closes without a byte of
 * response. On a reused connection libcurl takes that for a stale keep-alive
 * connection and sends the request again on a new one: the peer sees /die
 * twice, the caller once. With fresh_connect the request goes out once.
 */
#include "net/http_client.h"

#include "unit/support/peer.h"
#include "unit/support/raw_http.h"
#include "unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct peer {
	struct al_test_peer tp;
	atomic_int oks, dies;
};

static void conn_main(int fd, void *ud)
{
	struct peer *p = ud;
	char buf[8192], path[256];
	size_t len, hlen, clen;
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

	while (al_test_read_request(fd, buf, sizeof(buf), &len, &hlen, &clen) == 0) {
		path[0] = '\0';
		sscanf(buf, "%*15s %255s", path);
		if (strcmp(path, "/die") == 0) {
			atomic_fetch_add(&p->dies, 1);
			break; /* read, "stored", never answered */
		}
		atomic_fetch_add(&p->oks, 1);
		if (send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL) < 0)
			break;
	}
	close(fd);
}

static void peer_start(struct peer *p)
{
	atomic_init(&p->oks, 0);
	atomic_init(&p->dies, 0);
	al_test_peer_start(&p->tp, conn_main, p);
}

struct result {
	int done, err, status;
};

static void done_cb(al_http_call *call, const struct al_http_client_resp *resp, void *ud)
{
	struct result *r = ud;

	(void)call;
	r->done++;
	r->err = resp->err;
	r->status = resp->status;
}

/* GET /ok, then POST /die on the same client; returns how often the peer saw /die. */
static int post_after_keepalive(int fresh, struct result *die)
{
	struct peer p;
	uv_loop_t loop;
	al_http_client *client;
	struct result okr = {0};
	struct al_http_client_req req = {.timeout_ms = 5000};
	char u[128];
	int n;

	peer_start(&p);
	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&loop, &client), 0);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/ok", p.tp.port);
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(client, &req, done_cb, &okr, NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(okr.done, 1);
	AL_ASSERT_INT_EQ(okr.status, 200);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/die", p.tp.port);
	req.method = "POST";
	req.body = "{\"answer\":1}";
	req.body_len = strlen(req.body);
	req.fresh_connect = fresh;
	AL_ASSERT_INT_EQ(al_http_client_request(client, &req, done_cb, die, NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	al_http_client_free(client);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	al_test_peer_stop(&p.tp);
	n = atomic_load(&p.dies);
	AL_ASSERT_INT_EQ(atomic_load(&p.oks), 1);
	return n;
}

AL_TEST(http_client_fresh_connect_sends_once)
{
	struct result r = {0};

	AL_ASSERT_INT_EQ(post_after_keepalive(1, &r), 1);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT(r.err < 0); /* no response: the caller must decide */
}

/* Why the option exists: without it the same POST reaches the peer twice. */
AL_TEST(http_client_reused_connection_resends_without_fresh)
{
	struct result r = {0};

	AL_ASSERT_INT_EQ(post_after_keepalive(0, &r), 2);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT(r.err < 0);
}
