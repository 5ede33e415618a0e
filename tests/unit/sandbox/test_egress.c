/*
 * test_egress.c - the egress proxy over its real Unix socket, against real
 * upstreams on 127.0.0.1 (see egress_fixture.h).
 */
#include "unit/sandbox/egress_fixture.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The loopback upstream is reachable only through explicit rules. */
static struct fx *fx_for_upstream(uint16_t port)
{
	struct fx *fx = fx_new();
	char rule[64];

	snprintf(rule, sizeof(rule), "127.0.0.1:%u", (unsigned)port);
	fx_allow_host(fx, rule);
	fx_allow_cidr(fx, "127.0.0.0/8");
	return fx;
}

AL_TEST(egress_socket_is_private)
{
	struct fx *fx = fx_new();
	struct stat st;
	char dir[256], path[300], err[256];
	al_egress *e = NULL;
	uv_loop_t loop;

	fx_start(fx);
	AL_ASSERT_INT_EQ(stat(fx->path, &st), 0);
	AL_ASSERT(S_ISSOCK(st.st_mode));
	AL_ASSERT_INT_EQ(st.st_mode & 0777, 0600);
	fx_free(fx);

	/* A directory others can enter is refused. */
	snprintf(dir, sizeof(dir), "%s/open", al_test_tmpdir());
	AL_ASSERT_INT_EQ(mkdir(dir, 0755), 0);
	AL_ASSERT_INT_EQ(chmod(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	fx = fx_new();
	fx->cfg.socket_path = path;
	uv_loop_init(&loop);
	AL_ASSERT_INT_EQ(al_egress_start(&loop, &fx->cfg, &e, err, sizeof(err)), -EPERM);
	AL_ASSERT_NULL(e);
	AL_ASSERT(strstr(err, "0700") != NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	al_netpolicy_free(fx->policy);
	free(fx);

	/* A path libuv would truncate is refused, not shortened. */
	{
		char longpath[200];
		struct al_egress_config cfg = {.policy = (const al_netpolicy *)&loop,
					       .socket_uid = (uid_t)-1};
		memset(longpath, 'a', sizeof(longpath) - 1);
		longpath[0] = '/';
		longpath[sizeof(longpath) - 1] = '\0';
		cfg.socket_path = longpath;
		uv_loop_init(&loop);
		AL_ASSERT_INT_EQ(al_egress_start(&loop, &cfg, &e, err, sizeof(err)), -ENAMETOOLONG);
		AL_ASSERT_NULL(e);
		AL_ASSERT_INT_EQ(uv_loop_close(&loop), 0);
	}

	/* al_egress_private_dir makes a fresh 0700 directory. */
	AL_ASSERT_INT_EQ(al_egress_private_dir(al_test_tmpdir(), dir, sizeof(dir)), 0);
	AL_ASSERT_INT_EQ(stat(dir, &st), 0);
	AL_ASSERT_INT_EQ(st.st_mode & 0777, 0700);
}

AL_TEST(egress_connect_allowed_counts_bytes)
{
	struct upstream *u = up_start(UP_ECHO);
	struct fx *fx = fx_for_upstream(u->port);
	char auth[64], head[1024], echo[5] = {0};
	size_t n;
	char *rest;
	int fd;

	fx_start(fx);
	fd = fx_connect_unix(fx->path);
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)u->port);
	fx_connect_req(fd, auth, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	fx_send_str(fd, "ping");
	fx_read_n(fd, echo, 4);
	AL_ASSERT_STR_EQ(echo, "ping");
	fx_send_str(fd, "!");
	shutdown(fd, SHUT_WR); /* half-close travels through; the echo server then closes */
	rest = fx_read_all(fd, &n);
	AL_ASSERT_STR_EQ(rest, "!");
	free(rest);
	close(fd);

	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 2), 2);
	AL_ASSERT_INT_EQ(fx->d[0].event, AL_EGRESS_CONNECTED);
	AL_ASSERT_STR_EQ(fx->d[0].proto, "connect");
	AL_ASSERT_STR_EQ(fx->d[0].host, "127.0.0.1");
	AL_ASSERT_INT_EQ(fx->d[0].port, u->port);
	AL_ASSERT_STR_EQ(fx->d[0].addr, "127.0.0.1");
	AL_ASSERT_INT_EQ(fx->d[0].allowed, 1);
	AL_ASSERT_INT_EQ(fx->d[1].event, AL_EGRESS_CLOSED);
	AL_ASSERT_INT_EQ(fx->d[1].id, fx->d[0].id);
	AL_ASSERT_INT_EQ(fx->d[1].up, 5);
	AL_ASSERT_INT_EQ(fx->d[1].down, 5);
	AL_ASSERT_INT_EQ(up_wait_done(u), 1);
	fx_free(fx);
	up_free(u);
}

/* Sends a CONNECT, expects 403 whose body names `reason`; returns the decision. */
static void expect_connect_denied(struct fx *fx, const char *authority, const char *reason)
{
	char head[1024], *body;
	int fd = fx_connect_unix(fx->path);
	int before;

	pthread_mutex_lock(&fx->mu);
	before = fx->nd;
	pthread_mutex_unlock(&fx->mu);
	fx_connect_req(fd, authority, head, sizeof(head));
	if (strncmp(head, "HTTP/1.1 403 ", 13) != 0)
		al_test_fail(__FILE__, __LINE__, "CONNECT %s: got \"%.40s\"", authority, head);
	body = fx_read_all(fd, NULL);
	if (reason != NULL && strstr(body, reason) == NULL)
		al_test_fail(__FILE__, __LINE__, "CONNECT %s: body \"%s\" lacks \"%s\"", authority,
			     body, reason);
	free(body);
	close(fd);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, before + 1), before + 1);
	AL_ASSERT_INT_EQ(fx->d[before].event, AL_EGRESS_DENIED);
	AL_ASSERT_INT_EQ(fx->d[before].allowed, 0);
	if (reason != NULL)
		AL_ASSERT_STR_EQ(fx->d[before].reason, reason);
}

AL_TEST(egress_connect_denied_host_and_port)
{
	struct upstream *u = up_start(UP_ECHO);
	struct fx *fx = fx_for_upstream(u->port);
	char auth[64];

	fx_allow_host(fx, "*.allowed.test:443");
	fx_start(fx);
	expect_connect_denied(fx, "evil.example:443", "host not in allowlist");
	AL_ASSERT_STR_EQ(fx->d[0].host, "evil.example");
	AL_ASSERT_STR_EQ(fx->d[0].addr, "");
	expect_connect_denied(fx, "allowed.test:443", "host not in allowlist");
	expect_connect_denied(fx, "a.allowed.test:8443", "port not allowed for this host");
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)(u->port + 1));
	expect_connect_denied(fx, auth, "port not allowed for this host");
	/* Nothing reached the upstream. */
	AL_ASSERT_INT_EQ(atomic_load(&u->accepted), 0);
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_allowlisted_name_resolving_to_loopback_denied)
{
	struct upstream *u = up_start(UP_ECHO);
	struct fx *fx = fx_new();
	char rule[64];

	/* "localhost" is allowlisted, but /etc/hosts maps it to 127.0.0.1 and
	 * no CIDR allows loopback: refused after resolution. */
	snprintf(rule, sizeof(rule), "localhost:%u", (unsigned)u->port);
	fx_allow_host(fx, rule);
	fx_start(fx);
	expect_connect_denied(fx, rule, "address is loopback");
	AL_ASSERT_STR_EQ(fx->d[0].host, "localhost");
	AL_ASSERT_STR_EQ(fx->d[0].addr, "127.0.0.1");
	AL_ASSERT_INT_EQ(atomic_load(&u->accepted), 0);
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_allowlisted_name_with_cidr_allowed)
{
	struct upstream *u = up_start(UP_ECHO);
	struct fx *fx = fx_new();
	char rule[64], head[1024];
	int fd;

	snprintf(rule, sizeof(rule), "LOCALHOST.:%u", (unsigned)u->port);
	fx_allow_host(fx, rule);
	fx_allow_cidr(fx, "127.0.0.0/8");
	fx_allow_cidr(fx, "::1");
	fx_start(fx);
	fd = fx_connect_unix(fx->path);
	snprintf(rule, sizeof(rule), "localhost:%u", (unsigned)u->port);
	fx_connect_req(fd, rule, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	close(fd);
	AL_ASSERT_INT_GE(fx_wait_decisions(fx, 1), 1);
	AL_ASSERT_INT_EQ(fx->d[0].event, AL_EGRESS_CONNECTED);
	AL_ASSERT_STR_EQ(fx->d[0].addr, "127.0.0.1");
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_metadata_and_ip_literal_forms_denied)
{
	struct upstream *u = up_start(UP_ECHO);
	struct fx *fx = fx_for_upstream(u->port);
	char auth[96];
	static const char *forms[] = {"2130706433",
				      "0177.0.0.1",
				      "0x7f000001",
				      "0x7f.1",
				      "127.1",
				      "[::1]",
				      "[::ffff:127.0.0.1]",
				      "127.0.0.2",
				      "[0:0:0:0:0:ffff:7f00:1]"};

	/* Even an explicit rule for the metadata address is overridden by the
	 * address class: only a CIDR could allow it. */
	fx_allow_host(fx, "169.254.169.254:80");
	fx_allow_cidr(fx, "::1"); /* [::1] is still refused: no literal rule names it */
	fx_start(fx);
	expect_connect_denied(fx, "169.254.169.254:80", "address is a cloud metadata endpoint");
	AL_ASSERT_STR_EQ(fx->d[0].addr, "169.254.169.254");
	expect_connect_denied(fx, "[fd00:ec2::254]:80", "IP literal not allowed");
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		snprintf(auth, sizeof(auth), "%s:%u", forms[i], (unsigned)u->port);
		expect_connect_denied(fx, auth, NULL);
	}
	AL_ASSERT_INT_EQ(atomic_load(&u->accepted), 0);
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_http_forward_rewrites_and_strips)
{
	struct upstream *u = up_start(UP_HTTP);
	struct fx *fx = fx_for_upstream(u->port);
	char req[512], *resp;
	int fd;

	fx_start(fx);
	fd = fx_connect_unix(fx->path);
	snprintf(req, sizeof(req),
		 "GET http://127.0.0.1:%u/path/x?q=1 HTTP/1.1\r\nHost: attacker.example\r\n"
		 "Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n"
		 "Connection: keep-alive\r\nX-Test: yes\r\n\r\n",
		 (unsigned)u->port);
	fx_send_str(fd, req);
	resp = fx_read_all(fd, NULL);
	AL_ASSERT(strncmp(resp, "HTTP/1.1 200 OK", 15) == 0);
	AL_ASSERT(strstr(resp, "\r\n\r\nhello") != NULL);
	free(resp);
	close(fd);
	AL_ASSERT_INT_EQ(up_wait_done(u), 1);
	snprintf(req, sizeof(req), "GET /path/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n",
		 (unsigned)u->port);
	AL_ASSERT(strncmp(u->head, req, strlen(req)) == 0);
	AL_ASSERT(strstr(u->head, "X-Test: yes\r\n") != NULL);
	AL_ASSERT(strstr(u->head, "Connection: close\r\n\r\n") != NULL);
	AL_ASSERT_NULL(strstr(u->head, "Proxy-"));
	AL_ASSERT_NULL(strstr(u->head, "attacker"));
	AL_ASSERT_NULL(strstr(u->head, "keep-alive"));

	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 2), 2);
	AL_ASSERT_STR_EQ(fx->d[0].proto, "http");
	AL_ASSERT_INT_EQ(fx->d[0].event, AL_EGRESS_CONNECTED);
	AL_ASSERT_INT_EQ(fx->d[1].event, AL_EGRESS_CLOSED);
	AL_ASSERT_INT_EQ(fx->d[1].up, strlen(u->head));
	AL_ASSERT_INT_EQ(fx->d[1].down, strlen("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
					       "Connection: close\r\n\r\nhello"));
	fx_free(fx);
	up_free(u);
}

static void expect_http_status(struct fx *fx, const char *req, const char *status_line)
{
	int fd = fx_connect_unix(fx->path);
	char *resp;

	fx_send_str(fd, req);
	resp = fx_read_all(fd, NULL);
	if (strncmp(resp, status_line, strlen(status_line)) != 0)
		al_test_fail(__FILE__, __LINE__, "%.40s: got \"%.60s\"", req, resp);
	free(resp);
	close(fd);
}

AL_TEST(egress_http_forward_denied)
{
	struct upstream *u = up_start(UP_HTTP);
	struct fx *fx = fx_for_upstream(u->port);
	char req[256];

	fx_start(fx);
	expect_http_status(fx, "GET http://denied.example/ HTTP/1.1\r\n\r\n", "HTTP/1.1 403 ");
	expect_http_status(fx, "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n",
			   "HTTP/1.1 403 ");
	expect_http_status(fx, "GET https://denied.example/ HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
	expect_http_status(fx, "GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 ");
	snprintf(req, sizeof(req), "GET http://u:p@127.0.0.1:%u/ HTTP/1.1\r\n\r\n",
		 (unsigned)u->port);
	expect_http_status(fx, req, "HTTP/1.1 400 ");
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/ HTTP/1.1\r\nX: a\nY: b\r\n\r\n",
		 (unsigned)u->port);
	expect_http_status(fx, req, "HTTP/1.1 400 ");
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
		 (unsigned)u->port);
	expect_http_status(fx, req, "HTTP/1.1 400 ");
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 7), 7);
	for (int i = 0; i < 7; i++)
		AL_ASSERT_INT_EQ(fx->d[i].event, AL_EGRESS_DENIED);
	AL_ASSERT_INT_EQ(atomic_load(&u->accepted), 0);
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_large_transfer_both_ways)
{
	struct upstream *u = up_start(UP_ECHO);
	struct fx *fx = fx_for_upstream(u->port);
	struct fx_pusher p;
	pthread_t th;
	char auth[64], head[1024], *buf;
	size_t total = 16u * 1024u * 1024u, got = 0;
	int fd;

	fx_start(fx);
	fd = fx_connect_unix(fx->path);
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)u->port);
	fx_connect_req(fd, auth, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	p.fd = fd;
	p.n = total;
	pthread_create(&th, NULL, fx_push_thread, &p);
	/* Read nothing for a while: the echo path fills up and every stage
	 * must stop reading instead of buffering 16 MiB. */
	usleep(300000);
	buf = malloc(65536);
	while (got < total) {
		ssize_t r = recv(fd, buf, 65536, 0);
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != fx_pattern(got + (size_t)i))
				al_test_fail(__FILE__, __LINE__, "byte %zu differs",
					     got + (size_t)i);
		got += (size_t)r;
	}
	free(buf);
	pthread_join(th, NULL);
	AL_ASSERT_INT_EQ(got, total);
	close(fd);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 2), 2);
	AL_ASSERT_INT_EQ(fx->d[1].event, AL_EGRESS_CLOSED);
	AL_ASSERT_INT_EQ(fx->d[1].up, total);
	AL_ASSERT_INT_EQ(fx->d[1].down, total);
	/* Backpressure: the proxy never queued more than about its high-water
	 * mark, although the client pushed 16 MiB nobody was reading. */
	fx_query(fx);
	AL_ASSERT_INT_GE(fx->peak_queued, 1);
	if (fx->peak_queued > 1024 * 1024)
		al_test_fail(__FILE__, __LINE__, "peak write queue %zu bytes", fx->peak_queued);
	AL_ASSERT_INT_EQ(fx->active, 0);
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_client_disconnect_midstream_cleans_up)
{
	struct upstream *u = up_start(UP_SOURCE);
	struct fx *fx = fx_for_upstream(u->port);
	char auth[64], head[1024], buf[4096];
	int fd;

	fx_start(fx);
	fd = fx_connect_unix(fx->path);
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)u->port);
	fx_connect_req(fd, auth, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	fx_read_n(fd, buf, sizeof(buf));
	close(fd); /* mid-stream: the source keeps sending */
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 2), 2);
	AL_ASSERT_INT_EQ(fx->d[1].event, AL_EGRESS_CLOSED);
	AL_ASSERT_INT_GE(fx->d[1].down, sizeof(buf));
	/* The upstream connection was closed too: its writes fail. */
	AL_ASSERT_INT_EQ(up_wait_done(u), 1);
	AL_ASSERT_INT_EQ(atomic_load(&u->write_err), 1);
	fx_query(fx);
	AL_ASSERT_INT_EQ(fx->active, 0);
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_limits_max_conns_and_idle)
{
	struct upstream *u = up_start(UP_ECHO);
	struct fx *fx = fx_for_upstream(u->port);
	char auth[64], head[1024], *rest;
	int fd1, fd2;

	fx->cfg.max_conns = 1;
	fx->cfg.idle_timeout_ms = 300;
	fx_start(fx);
	fd1 = fx_connect_unix(fx->path);
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)u->port);
	fx_connect_req(fd1, auth, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	fd2 = fx_connect_unix(fx->path);
	fx_read_head(fd2, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 503 ", 13) == 0);
	close(fd2);
	/* The first connection idles: the proxy closes it. */
	rest = fx_read_all(fd1, NULL);
	AL_ASSERT_STR_EQ(rest, "");
	free(rest);
	close(fd1);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 3), 3);
	AL_ASSERT_INT_EQ(fx->d[0].event, AL_EGRESS_CONNECTED);
	AL_ASSERT_INT_EQ(fx->d[1].event, AL_EGRESS_DENIED);
	AL_ASSERT_STR_EQ(fx->d[1].reason, "too many connections");
	AL_ASSERT_INT_EQ(fx->d[2].event, AL_EGRESS_CLOSED);
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_socks5)
{
	struct upstream *u = up_start(UP_ECHO);
	struct fx *fx = fx_for_upstream(u->port);
	uint8_t req[64], rep[10];
	char echo[3] = {0};
	int fd;

	fx->cfg.socks5 = 1;
	fx_start(fx);

	/* Domain-name CONNECT, greeting and request in one write. */
	fd = fx_connect_unix(fx->path);
	req[0] = 5, req[1] = 1, req[2] = 0;
	req[3] = 5, req[4] = 1, req[5] = 0, req[6] = 3, req[7] = 9;
	memcpy(req + 8, "127.0.0.1", 9);
	req[17] = (uint8_t)(u->port >> 8), req[18] = (uint8_t)u->port;
	fx_send(fd, req, 19);
	fx_read_n(fd, rep, 2);
	AL_ASSERT_INT_EQ(rep[0], 5);
	AL_ASSERT_INT_EQ(rep[1], 0);
	fx_read_n(fd, rep, 10);
	AL_ASSERT_INT_EQ(rep[1], 0);
	fx_send_str(fd, "hi");
	fx_read_n(fd, echo, 2);
	AL_ASSERT_STR_EQ(echo, "hi");
	close(fd);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 2), 2); /* CLOSED before the next request */

	/* An IPv4 address request: refused with 0x02. */
	fd = fx_connect_unix(fx->path);
	uint8_t v4[] = {
	    5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, (uint8_t)(u->port >> 8), (uint8_t)u->port};
	fx_send(fd, v4, sizeof(v4));
	fx_read_n(fd, rep, 2);
	fx_read_n(fd, rep, 10);
	AL_ASSERT_INT_EQ(rep[1], 2);
	close(fd);

	/* A name outside the allowlist: 0x02. */
	fd = fx_connect_unix(fx->path);
	uint8_t bad[] = {5, 1, 0, 5, 1, 0, 3, 4, 'e', 'v', 'i', 'l', 1, 187};
	fx_send(fd, bad, sizeof(bad));
	fx_read_n(fd, rep, 2);
	fx_read_n(fd, rep, 10);
	AL_ASSERT_INT_EQ(rep[1], 2);
	close(fd);

	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 4), 4);
	AL_ASSERT_STR_EQ(fx->d[0].proto, "socks5");
	AL_ASSERT_INT_EQ(fx->d[0].event, AL_EGRESS_CONNECTED);
	AL_ASSERT_INT_EQ(fx->d[1].event, AL_EGRESS_CLOSED);
	AL_ASSERT_INT_EQ(fx->d[2].event, AL_EGRESS_DENIED);
	AL_ASSERT_INT_EQ(fx->d[3].event, AL_EGRESS_DENIED);
	AL_ASSERT_STR_EQ(fx->d[3].host, "evil");
	AL_ASSERT_STR_EQ(fx->d[3].reason, "host not in allowlist");
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_upstream_refused_reports_failed)
{
	struct fx *fx = fx_new();
	struct upstream *u = up_start(UP_ECHO);
	uint16_t dead_port = u->port;
	char auth[64], head[1024];
	int fd;

	up_free(u); /* nothing listens on dead_port any more */
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)dead_port);
	fx_allow_host(fx, auth);
	fx_allow_cidr(fx, "127.0.0.0/8");
	fx_start(fx);
	fd = fx_connect_unix(fx->path);
	fx_connect_req(fd, auth, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 502 ", 13) == 0);
	close(fd);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 1), 1);
	AL_ASSERT_INT_EQ(fx->d[0].event, AL_EGRESS_FAILED);
	AL_ASSERT_STR_EQ(fx->d[0].addr, "127.0.0.1");
	fx_free(fx);
}

/*
 * Every allocation in the proxy's request path fails in turn: the client
 * gets a complete answer or EOF, never a hang, the proxy keeps serving,
 * and (under ASan) nothing leaks.
 */
AL_TEST(egress_alloc_failures_unwind)
{
	struct upstream *u = up_start(UP_ECHO_MANY);
	struct fx *fx = fx_for_upstream(u->port);
	char auth[64], head[1024], echo[3] = {0};
	int fd, ok = 0;

	fx_start(fx);
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", (unsigned)u->port);
	for (long n = 0; n < 20; n++) {
		char req[128];

		al_alloc_fail_after(n);
		fd = fx_connect_unix(fx->path);
		/* The proxy may have dropped us already (EPIPE): read what came. */
		snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\n\r\n", auth);
		(void)send(fd, req, strlen(req), MSG_NOSIGNAL);
		fx_read_head(fd, head, sizeof(head));
		if (strncmp(head, "HTTP/1.1 200 ", 13) == 0) {
			/* Later allocations may still fail: EOF or EPIPE is fine, a hang is not. */
			if (send(fd, "ok", 2, MSG_NOSIGNAL) == 2 &&
			    recv(fd, echo, 2, MSG_WAITALL) == 2)
				ok++;
		} else {
			AL_ASSERT(head[0] == '\0' || strncmp(head, "HTTP/1.1 50", 10) == 0);
		}
		close(fd);
		al_alloc_fail_after(-1);
	}
	/* Healthy again: a normal request still works. */
	fd = fx_connect_unix(fx->path);
	fx_connect_req(fd, auth, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	fx_send_str(fd, "hi");
	fx_read_n(fd, echo, 2);
	AL_ASSERT_STR_EQ(echo, "hi");
	close(fd);
	/* Some early failure points must have refused, later ones succeeded. */
	AL_ASSERT(ok > 0 && ok < 20);
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_ipv6_literal_allowed_explicitly)
{
	struct upstream *u = up_start_family(UP_ECHO, AF_INET6);
	struct fx *fx = fx_new();
	char auth[64], head[1024], echo[3] = {0};
	int fd;

	snprintf(auth, sizeof(auth), "[::1]:%u", (unsigned)u->port);
	fx_allow_host(fx, auth);
	fx_start(fx);
	/* The literal rule alone is not enough: ::1 is loopback. */
	expect_connect_denied(fx, auth, "address is loopback");
	fx_free(fx);

	fx = fx_new();
	fx_allow_host(fx, auth);
	fx_allow_cidr(fx, "::1/128");
	fx_start(fx);
	fd = fx_connect_unix(fx->path);
	fx_connect_req(fd, auth, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	fx_send_str(fd, "v6");
	fx_read_n(fd, echo, 2);
	AL_ASSERT_STR_EQ(echo, "v6");
	close(fd);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 2), 2);
	AL_ASSERT_STR_EQ(fx->d[0].host, "::1");
	AL_ASSERT_STR_EQ(fx->d[0].addr, "::1");
	fx_free(fx);
	up_free(u);
}

AL_TEST(egress_head_timeout)
{
	struct fx *fx = fx_new();
	char head[256];
	int fd;

	fx->cfg.connect_timeout_ms = 200;
	fx_start(fx);
	fd = fx_connect_unix(fx->path);
	fx_send_str(fd, "CONNECT a.example:443 HTTP/1.1\r\n"); /* never finished */
	fx_read_head(fd, head, sizeof(head));
	AL_ASSERT(strncmp(head, "HTTP/1.1 408 ", 13) == 0);
	close(fd);
	AL_ASSERT_INT_EQ(fx_wait_decisions(fx, 1), 1);
	AL_ASSERT_INT_EQ(fx->d[0].event, AL_EGRESS_DENIED);
	AL_ASSERT_STR_EQ(fx->d[0].reason, "request head timeout");
	fx_free(fx);
}

/* A dead pid: a child that has exited and been reaped. */
static pid_t dead_pid(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return p;
}

/* The startup sweep removes a killed owner's socket directory, never a live one's. */
AL_TEST(egress_sweep_stale_removes_only_dead_owners)
{
	char dead[1024], live[1024], other[1024], sock[1100];
	struct stat st;
	int fd;

	snprintf(dead, sizeof(dead), "%s/airlock-egress-%ld-abcdef", al_test_tmpdir(),
		 (long)dead_pid());
	AL_ASSERT_INT_EQ(mkdir(dead, 0700), 0);
	snprintf(sock, sizeof(sock), "%s/egress.sock", dead);
	AL_ASSERT((fd = open(sock, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)) >= 0);
	close(fd);
	AL_ASSERT_INT_EQ(al_egress_private_dir(al_test_tmpdir(), live, sizeof(live)), 0);
	snprintf(other, sizeof(other), "%s/airlock-egress-%ld-ghijkl", al_test_tmpdir(),
		 (long)getppid());
	AL_ASSERT_INT_EQ(mkdir(other, 0700), 0);
	AL_ASSERT_INT_EQ(al_egress_sweep_stale(al_test_tmpdir()), 1);
	AL_ASSERT_INT_EQ(stat(dead, &st), -1);
	AL_ASSERT_INT_EQ(stat(live, &st), 0);
	AL_ASSERT_INT_EQ(stat(other, &st), 0);
}
