/*
 * fanout.c - SSE fan-out latency benchmark client (not part of the server).
 *
 *   bench-fanout HOST PORT KEY SESSION_ID LISTENERS ROUNDS
 *
 * Opens LISTENERS event streams on one session, then ROUNDS times: posts a
 * user.message carrying a unique marker (on a fresh connection, as a client
 * would) and records, for every listener, the time from just before the
 * POST's connect to the arrival of the marker on that stream. The POST's
 * response is read in the same poll() as the streams: the server publishes
 * before it answers, so waiting for the whole response first (as this
 * client once did) added the response's own round trip to every sample.
 * The POST's latency is reported separately. Between rounds it waits for
 * the session to go idle again (the marker message starts a turn on the
 * scripted model). Prints p50/p90/p99/max in microseconds as one JSON line.
 * Single-threaded poll(): what it measures includes its own reading cost,
 * so the figures are an upper bound.
 */
#include "client.h"

#include <poll.h>

#define MAXL 1024

int main(int argc, char **argv)
{
	const char *host, *key, *sid;
	int port, nl, rounds;
	int fds[MAXL];
	static char rbuf[MAXL][8192];
	static size_t rlen[MAXL];
	double *samples, *posts;
	size_t ns = 0, np = 0;

	if (argc != 7) {
		fprintf(stderr, "usage: bench-fanout HOST PORT KEY SESSION LISTENERS ROUNDS\n");
		return 2;
	}
	host = argv[1];
	port = (int)strtol(argv[2], NULL, 10);
	key = argv[3];
	sid = argv[4];
	nl = (int)strtol(argv[5], NULL, 10);
	rounds = (int)strtol(argv[6], NULL, 10);
	if (nl < 1 || nl > MAXL || rounds < 1)
		return 2;
	samples = calloc((size_t)nl * (size_t)rounds, sizeof(double));
	posts = calloc((size_t)rounds, sizeof(double));

	for (int i = 0; i < nl; i++) {
		char req[1024];
		int n = snprintf(req, sizeof(req),
				 "GET /v1/sessions/%s/events/stream HTTP/1.1\r\nHost: %s\r\n"
				 "x-api-key: %s\r\nanthropic-beta: managed-agents-2026-04-01\r\n"
				 "Accept: text/event-stream\r\n\r\n",
				 sid, host, key);
		fds[i] = dial(host, port);
		send_all(fds[i], req, (size_t)n);
	}
	usleep(300000); /* let every stream subscribe */
	for (int i = 0; i < nl; i++) {
		ssize_t r = read(fds[i], rbuf[i], sizeof(rbuf[i]) - 1); /* response headers */
		(void)r;
		rlen[i] = 0;
	}

	for (int round = 0; round < rounds; round++) {
		char marker[64], body[512], path[256];
		int got = 0, seen[MAXL] = {0}, pfd_post = -1;
		double t0;
		struct pollfd pfd[MAXL + 1];
		char presp[4096];
		size_t plen = 0;

		/*
		 * Read what the streams got since the last round (the turn the
		 * last marker started) before the clock starts: reading a
		 * backlog is this client's cost, not the server's latency.
		 */
		for (int i = 0; i < nl; i++) {
			for (;;) {
				ssize_t r =
				    recv(fds[i], rbuf[i], sizeof(rbuf[i]) - 1, MSG_DONTWAIT);
				if (r > 0)
					continue;
				if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
					fprintf(stderr, "listener %d closed\n", i);
					return 1;
				}
				break;
			}
			rlen[i] = 0;
			rbuf[i][0] = '\0';
		}
		snprintf(marker, sizeof(marker), "fanout-%d-%ld", round, random());
		snprintf(body, sizeof(body),
			 "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\","
			 "\"text\":\"%s\"}]}]}",
			 marker);
		snprintf(path, sizeof(path), "/v1/sessions/%s/events", sid);
		t0 = now_us();
		pfd_post = request_start(host, port, key, "POST", path, body);
		while (got < nl || pfd_post >= 0) {
			for (int i = 0; i < nl; i++)
				pfd[i] =
				    (struct pollfd){.fd = seen[i] ? -1 : fds[i], .events = POLLIN};
			pfd[nl] = (struct pollfd){.fd = pfd_post, .events = POLLIN};
			if (poll(pfd, (nfds_t)nl + 1, 5000) <= 0) {
				fprintf(stderr, "timeout: %d of %d listeners saw round %d\n", got,
					nl, round);
				return 1;
			}
			double t = now_us();
			if (pfd[nl].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t r = read(pfd_post, presp + plen, sizeof(presp) - 1 - plen);
				if (r > 0 && plen + (size_t)r < sizeof(presp) - 1) {
					plen += (size_t)r;
				} else {
					presp[plen] = '\0';
					if (strncmp(presp, "HTTP/1.1 200", 12) != 0) {
						fprintf(stderr, "POST failed: %.200s\n", presp);
						return 1;
					}
					posts[np++] = t - t0;
					close(pfd_post);
					pfd_post = -1;
				}
			}
			for (int i = 0; i < nl; i++) {
				if (!(pfd[i].revents & POLLIN))
					continue;
				ssize_t r =
				    read(fds[i], rbuf[i] + rlen[i], sizeof(rbuf[i]) - 1 - rlen[i]);
				if (r <= 0) {
					fprintf(stderr, "listener %d closed\n", i);
					return 1;
				}
				rlen[i] += (size_t)r;
				rbuf[i][rlen[i]] = '\0';
				if (!seen[i] && strstr(rbuf[i], marker)) {
					seen[i] = 1;
					got++;
					samples[ns++] = t - t0;
				}
				/* keep only a tail so the next marker is still findable */
				if (rlen[i] > 4096) {
					memmove(rbuf[i], rbuf[i] + rlen[i] - 1024, 1024);
					rlen[i] = 1024;
					rbuf[i][rlen[i]] = '\0';
				}
			}
		}
		/* wait for the turn this message started to end */
		for (int tries = 0; tries < 500; tries++) {
			char spath[256];
			snprintf(spath, sizeof(spath), "/v1/sessions/%s", sid);
			if (strstr(read_all(request_start(host, port, key, "GET", spath, NULL)),
				   "\"status\":\"idle\""))
				break;
			usleep(2000);
		}
	}
	/*
	 * The POST's median over the first and the last tenth of the rounds:
	 * the session's log grows by a turn each round, so a cost that grows
	 * with its length shows as last > first.
	 */
	size_t tenth = np / 10 ? np / 10 : 1;
	qsort(posts, tenth, sizeof(double), cmp_double);
	double post_first = posts[tenth / 2];
	qsort(posts + np - tenth, tenth, sizeof(double), cmp_double);
	double post_last = posts[np - tenth + tenth / 2];
	qsort(samples, ns, sizeof(double), cmp_double);
	qsort(posts, np, sizeof(double), cmp_double);
	printf("{\"listeners\":%d,\"rounds\":%d,\"samples\":%zu,\"p50_us\":%.0f,\"p90_us\":%.0f,"
	       "\"p99_us\":%.0f,\"max_us\":%.0f,\"post_p50_us\":%.0f,\"post_p99_us\":%.0f,"
	       "\"post_first_tenth_p50_us\":%.0f,\"post_last_tenth_p50_us\":%.0f}\n",
	       nl, rounds, ns, samples[ns / 2], samples[ns * 9 / 10], samples[ns * 99 / 100],
	       samples[ns - 1], posts[np / 2], posts[np * 99 / 100], post_first, post_last);
	free(samples);
	free(posts);
	return 0;
}
