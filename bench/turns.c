/*
 * turns.c - N concurrent sessions driven through a full turn.
 *
 *   bench-turns HOST PORT KEY AGENT_ID ENVIRONMENT_ID N
 *
 * Creates N sessions, opens an event stream on each, then sends one
 * user.message to every session as fast as it can and waits until every
 * stream has shown session.status_idle after its message (the scripted model
 * answers at once, so this measures the control plane: HTTP, store, bus,
 * agent loop, outbound model calls). Prints turns per second and the
 * per-session send-to-idle latency percentiles as one JSON line.
 */
#include "client.h"

#include <poll.h>
#include <sys/resource.h>

#define MAXN 2000

int main(int argc, char **argv)
{
	static char sids[MAXN][64], tail[MAXN][2048];
	static size_t tlen[MAXN];
	static int fds[MAXN], done[MAXN];
	static double sent[MAXN], lat[MAXN];
	static struct pollfd pfd[MAXN];
	const char *host, *key, *agent, *env;
	int port, n, ndone = 0;
	double t0, t1;
	struct rlimit rl = {8192, 8192};

	if (argc != 7) {
		fprintf(stderr, "usage: bench-turns HOST PORT KEY AGENT ENV N\n");
		return 2;
	}
	setrlimit(RLIMIT_NOFILE, &rl);
	host = argv[1];
	port = (int)strtol(argv[2], NULL, 10);
	key = argv[3];
	agent = argv[4];
	env = argv[5];
	n = (int)strtol(argv[6], NULL, 10);
	if (n < 1 || n > MAXN)
		return 2;

	for (int i = 0; i < n; i++) {
		char body[512], *r, *p;
		snprintf(body, sizeof(body), "{\"agent\":\"%s\",\"environment_id\":\"%s\"}", agent,
			 env);
		r = read_all(request_start(host, port, key, "POST", "/v1/sessions", body));
		p = strstr(r, "\"id\":\"sesn_");
		if (p == NULL) {
			fprintf(stderr, "session create failed: %.300s\n", r);
			return 1;
		}
		snprintf(sids[i], sizeof(sids[i]), "%.31s", p + 6);
	}
	for (int i = 0; i < n; i++) {
		char path[256];
		snprintf(path, sizeof(path), "/v1/sessions/%.60s/events/stream", sids[i]);
		fds[i] = request_start(host, port, key, "GET", path, NULL);
	}
	usleep(500000);
	t0 = now_us();
	for (int i = 0; i < n; i++) {
		char path[256];
		const char *body = "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":"
				   "\"text\",\"text\":\"benchmark turn\"}]}]}";
		snprintf(path, sizeof(path), "/v1/sessions/%.60s/events", sids[i]);
		sent[i] = now_us();
		close(request_start(host, port, key, "POST", path, body));
	}
	while (ndone < n) {
		for (int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){.fd = done[i] ? -1 : fds[i], .events = POLLIN};
		if (poll(pfd, (nfds_t)n, 30000) <= 0) {
			fprintf(stderr, "timeout: %d of %d turns finished\n", ndone, n);
			return 1;
		}
		double t = now_us();
		for (int i = 0; i < n; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP)))
				continue;
			ssize_t r = read(fds[i], tail[i] + tlen[i], sizeof(tail[i]) - 1 - tlen[i]);
			if (r <= 0) {
				fprintf(stderr, "stream %d closed early\n", i);
				return 1;
			}
			tlen[i] += (size_t)r;
			tail[i][tlen[i]] = '\0';
			if (strstr(tail[i], "session.status_idle")) {
				done[i] = 1;
				lat[i] = t - sent[i];
				ndone++;
				close(fds[i]);
			} else if (tlen[i] > 1024) {
				memmove(tail[i], tail[i] + tlen[i] - 512, 512);
				tlen[i] = 512;
				tail[i][tlen[i]] = '\0';
			}
		}
	}
	t1 = now_us();
	qsort(lat, (size_t)n, sizeof(double), cmp_double);
	printf("{\"sessions\":%d,\"wall_ms\":%.0f,\"turns_per_s\":%.0f,\"p50_ms\":%.1f,"
	       "\"p99_ms\":%.1f,\"max_ms\":%.1f}\n",
	       n, (t1 - t0) / 1e3, n / ((t1 - t0) / 1e6), lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3,
	       lat[n - 1] / 1e3);
	return 0;
}
