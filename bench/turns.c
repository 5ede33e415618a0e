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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXN 2000

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int dial(const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("write");
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

static int send_req(const char *host, int port, const char *key, const char *method,
		    const char *path, const char *body)
{
	char req[4096];
	int fd = dial(host, port);
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: %s\r\nx-api-key: %s\r\n"
			 "anthropic-beta: managed-agents-2026-04-01\r\nConnection: close\r\n"
			 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			 method, path, host, key, body ? strlen(body) : 0, body ? body : "");
	send_all(fd, req, (size_t)n);
	return fd;
}

static char *read_all(int fd)
{
	static char resp[1 << 16];
	size_t off = 0;

	for (;;) {
		ssize_t r = read(fd, resp + off, sizeof(resp) - 1 - off);
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	resp[off] = '\0';
	close(fd);
	return resp;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

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
		r = read_all(send_req(host, port, key, "POST", "/v1/sessions", body));
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
		fds[i] = send_req(host, port, key, "GET", path, NULL);
	}
	usleep(500000);
	t0 = now_us();
	for (int i = 0; i < n; i++) {
		char path[256];
		const char *body = "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":"
				   "\"text\",\"text\":\"benchmark turn\"}]}]}";
		snprintf(path, sizeof(path), "/v1/sessions/%.60s/events", sids[i]);
		sent[i] = now_us();
		close(send_req(host, port, key, "POST", path, body));
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
	       n, (t1 - t0) / 1e3, n / ((t1 - t0) / 1e6), lat[n / 2] / 1e3,
	       lat[n * 99 / 100] / 1e3, lat[n - 1] / 1e3);
	return 0;
}
