/*
 * http_client.h - a tiny blocking HTTP/1.1 client for the server tests.
 *
 * Test helper, runs on a client thread with real sockets on loopback. It
 * reads responses framed by Content-Length or chunked encoding and keeps
 * leftover bytes for the next response (pipelining). An optional transport
 * (TLS in test_tls.c) replaces plain read/write.
 */
#ifndef AL_TESTS_HTTP_CLIENT_H
#define AL_TESTS_HTTP_CLIENT_H

#include "unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct tc {
	int fd;
	/* Optional transport: returns bytes, 0 on EOF, < 0 on error. */
	long (*rd)(void *io, char *p, size_t n);
	long (*wr)(void *io, const char *p, size_t n);
	void *io;
	char buf[1 << 17];
	size_t len;
};

struct tc_resp {
	int status;
	char head[8192];
	char body[1 << 16];
	size_t body_len;
};

/* Connects to 127.0.0.1:port with a 5 s receive timeout; -1 on failure. */
static inline int tc_connect_fd(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline struct tc *tc_open(int port)
{
	struct tc *c = calloc(1, sizeof(*c));

	AL_ASSERT_NOT_NULL(c);
	c->fd = tc_connect_fd(port);
	AL_ASSERT_INT_GE(c->fd, 0);
	return c;
}

static inline void tc_close(struct tc *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c);
}

static inline void tc_sendn(struct tc *c, const char *s, size_t n)
{
	while (n > 0) {
		long w = c->wr ? c->wr(c->io, s, n) : (long)send(c->fd, s, n, MSG_NOSIGNAL);
		AL_ASSERT(w > 0);
		s += w;
		n -= (size_t)w;
	}
}

static inline void tc_send(struct tc *c, const char *s)
{
	tc_sendn(c, s, strlen(s));
}

/* Reads more bytes into the buffer: > 0 bytes, 0 on EOF, < 0 on error/timeout. */
static inline long tc_fill(struct tc *c)
{
	long n;

	AL_ASSERT(c->len < sizeof(c->buf));
	do
		n = c->rd ? c->rd(c->io, c->buf + c->len, sizeof(c->buf) - c->len)
			  : (long)recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	while (n < 0 && errno == EINTR && !c->rd);
	if (n > 0)
		c->len += (size_t)n;
	return n;
}

static inline void tc_consume(struct tc *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* 1 when the server closes the connection (EOF or reset) before any more data. */
static inline int tc_eof(struct tc *c)
{
	if (c->len > 0)
		return 0;
	long n = tc_fill(c);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Value of a response header (case-insensitive) copied into out; 0 if found. */
static inline int tc_header(const struct tc_resp *r, const char *name, char *out, size_t len)
{
	const char *p = strstr(r->head, "\r\n");
	size_t nl = strlen(name);

	while (p && p[2] != '\r') {
		const char *line = p + 2, *end = strstr(line, "\r\n");
		if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
		    line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int)(end - v), v);
			return 0;
		}
		p = end;
	}
	return -1;
}

/* Reads the head of a response (skipping 100 Continue); 0 or -1. */
static inline int tc_read_head(struct tc *c, struct tc_resp *r)
{
	for (;;) {
		char *p;
		while ((p = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
			if (tc_fill(c) <= 0)
				return -1;
		size_t hl = (size_t)(p - c->buf) + 4;
		AL_ASSERT(hl < sizeof(r->head));
		memcpy(r->head, c->buf, hl);
		r->head[hl] = '\0';
		tc_consume(c, hl);
		if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
			return -1;
		if (r->status != 100)
			return 0;
	}
}

/* One chunk's data into out (NUL-terminated); returns its size, 0 for the last, -1. */
static inline long tc_read_chunk(struct tc *c, char *out, size_t cap)
{
	char *p;
	size_t size;

	while ((p = memmem(c->buf, c->len, "\r\n", 2)) == NULL)
		if (tc_fill(c) <= 0)
			return -1;
	size = strtoul(c->buf, NULL, 16);
	tc_consume(c, (size_t)(p - c->buf) + 2);
	while (c->len < size + 2)
		if (tc_fill(c) <= 0)
			return -1;
	AL_ASSERT(size < cap);
	memcpy(out, c->buf, size);
	out[size] = '\0';
	AL_ASSERT_MEM_EQ(c->buf + size, "\r\n", 2);
	tc_consume(c, size + 2);
	return (long)size;
}

/* A whole response; the body is NUL-terminated. 0 or -1. */
static inline int tc_read_response(struct tc *c, struct tc_resp *r)
{
	char v[64];

	memset(r, 0, sizeof(*r));
	if (tc_read_head(c, r) < 0)
		return -1;
	if (tc_header(r, "Content-Length", v, sizeof(v)) == 0) {
		size_t n = strtoul(v, NULL, 10);
		AL_ASSERT(n < sizeof(r->body));
		while (c->len < n)
			if (tc_fill(c) <= 0)
				return -1;
		memcpy(r->body, c->buf, n);
		r->body_len = n;
		tc_consume(c, n);
	} else if (tc_header(r, "Transfer-Encoding", v, sizeof(v)) == 0) {
		long n;
		while ((n = tc_read_chunk(c, r->body + r->body_len,
					  sizeof(r->body) - r->body_len)) > 0)
			r->body_len += (size_t)n;
		if (n < 0)
			return -1;
	} else {
		while (tc_fill(c) > 0)
			;
		AL_ASSERT(c->len < sizeof(r->body));
		memcpy(r->body, c->buf, c->len);
		r->body_len = c->len;
		c->len = 0;
	}
	r->body[r->body_len] = '\0';
	return 0;
}

#endif
