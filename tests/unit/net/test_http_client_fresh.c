/*
 * test_http_client_fresh.c - fresh_connect and no_resend stop libcurl's
 * silent re-send.
 *
 * The peer (a scripted loopback test double) keeps connections alive; /ok
 * answers, /die reads the whole request (as a server that stored it would)
 * and closes without a byte of response. On a reused connection libcurl
 * takes that for a stale keep-alive connection and sends the request again
 * on a new one: the peer sees /die twice, the caller once. With
 * fresh_connect the request goes out once on a connection of its own; with
 * no_resend it goes out once on the reused connection and the call fails.
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
	atomic_int bad;	  /* requests with a chunked body, an Expect or a wrong body */
	atomic_int empty; /* connections closed without a whole request */
};

#define BODY "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}"

static void conn_main(int fd, void *ud)
{
	struct peer *p = ud;
	char buf[8192], path[256], method[16], hv[64];
	size_t len, hlen, clen;
	int served = 0;
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

	while (al_test_read_request(fd, buf, sizeof(buf), &len, &hlen, &clen) == 0) {
		served++;
		path[0] = method[0] = '\0';
		sscanf(buf, "%15s %255s", method, path);
		/* Every POST must carry BODY whole, sized, not chunked, no Expect. */
		if (strcmp(method, "POST") == 0 &&
		    (clen != strlen(BODY) || len - hlen != clen ||
		     memcmp(buf + hlen, BODY, clen) != 0 ||
		     al_test_header(buf, "Transfer-Encoding", hv, sizeof(hv)) ||
		     al_test_header(buf, "Expect", hv, sizeof(hv))))
			atomic_fetch_add(&p->bad, 1);
		if (strcmp(path, "/die") == 0) {
			atomic_fetch_add(&p->dies, 1);
			break; /* read, "stored", never answered */
		}
		atomic_fetch_add(&p->oks, 1);
		if (send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL) < 0)
			break;
	}
	if (served == 0)
		atomic_fetch_add(&p->empty, 1);
	close(fd);
}

static void peer_start(struct peer *p)
{
	atomic_init(&p->oks, 0);
	atomic_init(&p->dies, 0);
	atomic_init(&p->bad, 0);
	atomic_init(&p->empty, 0);
	al_test_peer_start(&p->tp, conn_main, p);
}

struct result {
	int done, err, status;
	char error[256];
};

static void done_cb(al_http_call *call, const struct al_http_client_resp *resp, void *ud)
{
	struct result *r = ud;

	(void)call;
	r->done++;
	r->err = resp->err;
	r->status = resp->status;
	snprintf(r->error, sizeof(r->error), "%s", resp->error ? resp->error : "");
}

enum mode { PLAIN, FRESH, NO_RESEND };

/* What the peer saw. */
struct seen {
	int oks, dies;
	int conns; /* connections accepted */
	int busy;  /* of which carried at least one whole request */
};

/* GET /ok, then POST BODY to `second` on the same client (result in *r2). */
static struct seen post_after_keepalive(enum mode mode, const char *second, struct result *r2)
{
	struct peer p;
	uv_loop_t loop;
	al_http_client *client;
	struct result okr = {0};
	struct al_http_client_req req = {.timeout_ms = 5000};
	struct seen s;
	char u[128];

	peer_start(&p);
	AL_ASSERT_INT_EQ(uv_loop_init(&loop), 0);
	AL_ASSERT_INT_EQ(al_http_client_new(&loop, &client), 0);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/ok", p.tp.port);
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(client, &req, done_cb, &okr, NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(okr.done, 1);
	AL_ASSERT_INT_EQ(okr.status, 200);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", p.tp.port, second);
	req.method = "POST";
	req.body = BODY;
	req.body_len = strlen(BODY);
	req.fresh_connect = mode == FRESH;
	req.no_resend = mode == NO_RESEND;
	AL_ASSERT_INT_EQ(al_http_client_request(client, &req, done_cb, r2, NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	al_http_client_free(client);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	al_test_peer_stop(&p.tp); /* joins every connection: the counts are final */
	AL_ASSERT_INT_EQ(atomic_load(&p.bad), 0);
	s.oks = atomic_load(&p.oks);
	s.dies = atomic_load(&p.dies);
	s.conns = atomic_load(&p.tp.nconns);
	s.busy = s.conns - atomic_load(&p.empty);
	return s;
}

AL_TEST(http_client_fresh_connect_sends_once)
{
	struct result r = {0};
	struct seen s = post_after_keepalive(FRESH, "/die", &r);

	AL_ASSERT_INT_EQ(s.dies, 1);
	AL_ASSERT_INT_EQ(s.oks, 1);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT(r.err < 0);	      /* no response: the caller must decide */
	AL_ASSERT_INT_EQ(s.conns, 2); /* one connection per request */
}

/* Why the options exist: without them the same POST reaches the peer twice. */
AL_TEST(http_client_reused_connection_resends_without_fresh)
{
	struct result r = {0};
	struct seen s = post_after_keepalive(PLAIN, "/die", &r);

	AL_ASSERT_INT_EQ(s.dies, 2);
	AL_ASSERT_INT_EQ(s.oks, 1);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT(r.err < 0);
	AL_ASSERT_INT_EQ(s.busy, 2); /* the second connection carried the copy */
}

/*
 * no_resend: the POST goes out on the reused connection, the peer reads it
 * whole and dies; the call fails with -ECONNRESET and the peer saw it once.
 * libcurl (7.88) still opens a new connection for its retry, but refuses to
 * send on it once the rewind of the body is refused: nothing arrives there.
 */
AL_TEST(http_client_no_resend_fails_instead_of_resending)
{
	struct result r = {0};
	struct seen s = post_after_keepalive(NO_RESEND, "/die", &r);

	AL_ASSERT_INT_EQ(s.dies, 1);
	AL_ASSERT_INT_EQ(s.oks, 1);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, -ECONNRESET);
	AL_ASSERT_INT_EQ(r.status, 0);
	AL_ASSERT(strstr(r.error, "not sent again") != NULL);
	AL_ASSERT_INT_EQ(s.busy, 1); /* only the first connection carried requests */
}

/* no_resend keeps keep-alive: two requests, one connection, both answered. */
AL_TEST(http_client_no_resend_reuses_the_connection)
{
	struct result r = {0};
	struct seen s = post_after_keepalive(NO_RESEND, "/ok", &r);

	AL_ASSERT_INT_EQ(s.oks, 2);
	AL_ASSERT_INT_EQ(s.dies, 0);
	AL_ASSERT_INT_EQ(r.done, 1);
	AL_ASSERT_INT_EQ(r.err, 0);
	AL_ASSERT_INT_EQ(r.status, 200);
	AL_ASSERT_INT_EQ(s.conns, 1);
}
