/*
 * client.h - the bare HTTP/1.1 client the loopback benchmarks share
 * (bench/fanout.c, bench/turns.c). Not part of the server.
 *
 * Deliberately minimal and blocking: one request per connection
 * ("Connection: close"), a response is whatever arrives until the server
 * closes, and any socket error ends the benchmark (exit 1), because a
 * benchmark that carried on after one would report figures for a run
 * that did not happen. Each benchmark is one translation unit, so these
 * are static.
 */
#ifndef AL_BENCH_CLIENT_H
#define AL_BENCH_CLIENT_H
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

/* Sends one API request on a fresh connection; returns the connection. */
static int request_start(const char *host, int port, const char *key, const char *method,
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

/*
 * Reads fd until the server closes it (or 1 MiB), closes it, and returns
 * the text in a static buffer that the next call overwrites.
 */
static char *read_all(int fd)
{
	static char resp[1 << 20];
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

#endif
