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

#define MAX_CONNS 8

struct peer {
	int lfd, port;
	pthread_t acceptor, conns[MAX_CONNS];
	atomic_int nconns, oks, dies;
};

struct conn_arg {
	struct peer *p;
	int fd;
};

static void *conn_main(void *arg)
{
	struct conn_arg *a = arg;
	struct peer *p = a->p;
	int fd = a->fd;
	char buf[8192], path[256];
	size_t len, hlen, clen;
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

	free(a);
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
	return NULL;
}

static void *accept_main(void *arg)
{
	struct peer *p = arg;

	for (;;) {
		int fd = accept(p->lfd, NULL, NULL), i;
		struct conn_arg *a;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		i = atomic_fetch_add(&p->nconns, 1);
		if (i >= MAX_CONNS || (a = malloc(sizeof(*a))) == NULL) {
			close(fd);
			continue;
		}
		a->p = p;
		a->fd = fd;
		pthread_create(&p->conns[i], NULL, conn_main, a);
	}
	return NULL;
}

static void peer_start(struct peer *p)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);

	memset(p, 0, sizeof(*p));
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	AL_ASSERT(p->lfd >= 0);
	AL_ASSERT_INT_EQ(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	AL_ASSERT_INT_EQ(listen(p->lfd, 16), 0);
	AL_ASSERT_INT_EQ(getsockname(p->lfd, (struct sockaddr *)&sa, &sl), 0);
	p->port = ntohs(sa.sin_port);
	AL_ASSERT_INT_EQ(pthread_create(&p->acceptor, NULL, accept_main, p), 0);
}

/* After the client is freed (its pooled connections closed). */
static void peer_stop(struct peer *p)
{
	int n;

	shutdown(p->lfd, SHUT_RDWR);
	pthread_join(p->acceptor, NULL);
	close(p->lfd);
	n = atomic_load(&p->nconns);
	for (int i = 0; i < n && i < MAX_CONNS; i++)
		pthread_join(p->conns[i], NULL);
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
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/ok", p.port);
	req.url = u;
	AL_ASSERT_INT_EQ(al_http_client_request(client, &req, done_cb, &okr, NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(okr.done, 1);
	AL_ASSERT_INT_EQ(okr.status, 200);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/die", p.port);
	req.method = "POST";
	req.body = "{\"answer\":1}";
	req.body_len = strlen(req.body);
	req.fresh_connect = fresh;
	AL_ASSERT_INT_EQ(al_http_client_request(client, &req, done_cb, die, NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	al_http_client_free(client);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	peer_stop(&p);
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
