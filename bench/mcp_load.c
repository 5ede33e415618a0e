/*
 * mcp_load.c - closed-loop load generator for MCP tools/call over Streamable
 * HTTP (not part of the server). The same binary, request and checks drive
 * every server the MCP benchmark compares (bench/run.sh mcp).
 *
 *   bench-mcp_load [options] URL
 *     URL              http://IP:PORT/PATH or https://IP:PORT/PATH (an IPv4
 *                      literal: the benchmark never resolves names)
 *     -c CONNS         concurrent keep-alive connections (1)
 *     -d SECONDS       measured duration (5)
 *     -w SECONDS       warm-up before it, not recorded (1)
 *     -t TOOL          tool name (tickets_get)
 *     -a JSON          tool arguments ({"id":1})
 *     -e TEXT          a correct result's body must contain TEXT (repeatable)
 *     -H 'K: V'        an extra request header (repeatable), e.g. Mcp-Param-*
 *     -V ERA           2026 (default: 2026-07-28 _meta and the Mcp-Method and
 *                      Mcp-Name headers) or 2025 (2025-11-25, no _meta: for
 *                      servers that only serve the stateless legacy era)
 *     -h HOST          Host header and TLS server name (default: the URL's)
 *     -k CAFILE        verify the https server against CAFILE (required for
 *                      https, with -h: the benchmark measures verified TLS
 *                      to a named host, as an agent platform would)
 *
 * Each connection sends one request, waits for the whole response (JSON with
 * Content-Length, chunked, or an SSE stream that ends), checks it and sends
 * the next. A response is correct when its status is 200, its body holds
 * every -e text, and it carries neither a JSON-RPC error nor "isError":true.
 * Anything else counts as an error; a run with errors is invalid (exit 1)
 * and the first wrong response goes to stderr.
 *
 * Latency is taken per request from the first byte written to the last byte
 * of the response read, on CLOCK_MONOTONIC. Requests started in the measured
 * window are recorded, including those that finish after it ends (they are
 * waited for). Prints one JSON line: requests, errors, seconds, rps, p50,
 * p90, p99, p999, max and mean in microseconds, reconnects, and the share
 * of one core the generator itself used over the whole run (client_core:
 * near 1.0 means it, not the server, may be the limit) and every response
 * of the run, warm-up included (all_responses: what a server's CPU time over
 * the whole run was spent on).
 *
 * One thread and epoll: the generator costs the machine at most one core,
 * the same for every server it drives. Connections (and TLS handshakes) are
 * made before the warm-up; a connection the server closes is reopened and
 * counted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS   4096
#define MAX_EXPECT  8
#define MAX_HEADERS 16

struct conn {
	int fd;
	SSL *ssl;
	char out[8192];
	size_t outlen, outoff;
	char *in;
	size_t inlen, incap;
	uint64_t t0;  /* when the current request's first byte went out */
	int busy;     /* a request is in flight */
	int record;   /* it started inside the measured window */
	int want_out; /* EPOLLOUT registered */
};

static struct {
	struct sockaddr_in addr;
	char host[256];
	char path[1024];
	int tls;
	SSL_CTX *ctx;
	const char *tool, *args, *era;
	const char *expect[MAX_EXPECT];
	int nexpect;
	const char *headers[MAX_HEADERS];
	int nheaders;
	int ep;
	uint64_t seq;
	uint64_t *lat; /* nanoseconds */
	size_t nlat, caplat;
	uint64_t errors, reconnects;
	uint64_t completed; /* every response, warm-up included */
	int error_shown;
} g;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "bench-mcp_load: %s: %s\n", what, errno ? strerror(errno) : "failed");
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* Blocking connect and, for https, a verified handshake; then non-blocking. */
static void conn_open(struct conn *c)
{
	int one = 1, fl;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) < 0)
		die("connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (g.tls) {
		c->ssl = SSL_new(g.ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
		    SSL_set_tlsext_host_name(c->ssl, g.host) != 1 ||
		    SSL_set1_host(c->ssl, g.host) != 1)
			die("SSL_new");
		SSL_set_mode(c->ssl,
			     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		if (SSL_connect(c->ssl) != 1)
			die("TLS handshake");
	}
	fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		die("fcntl");
	c->want_out = 0;
	c->inlen = 0;
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl");
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
}

static void set_out(struct conn *c, int on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};

	if (c->want_out == on)
		return;
	c->want_out = on;
	if (epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl");
}

/* Bytes out; 0 when all went (or the rest waits for EPOLLOUT), -1 on error. */
static int flush_out(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n;
		size_t left = c->outlen - c->outoff;

		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, c->out + c->outoff, (int)left);

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
					set_out(c, 1);
					return 0;
				}
				return -1;
			}
			n = r;
		} else {
			n = write(c->fd, c->out + c->outoff, left);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				set_out(c, 1);
				return 0;
			}
			if (n <= 0)
				return -1;
		}
		c->outoff += (size_t)n;
	}
	set_out(c, 0);
	return 0;
}

static int send_request(struct conn *c, int record)
{
	char body[4096];
	int blen, hlen, i;
	size_t off;

	g.seq++;
	if (strcmp(g.era, "2025") == 0)
		blen = snprintf(body, sizeof(body),
				"{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"tools/call\","
				"\"params\":{\"name\":\"%s\",\"arguments\":%s}}",
				(unsigned long long)g.seq, g.tool, g.args);
	else
		blen =
		    snprintf(body, sizeof(body),
			     "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"tools/call\","
			     "\"params\":{\"name\":\"%s\",\"arguments\":%s,\"_meta\":{"
			     "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
			     "\"io.modelcontextprotocol/clientCapabilities\":{},"
			     "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"bench-mcp_load\","
			     "\"version\":\"1.0.0\"}}}}",
			     (unsigned long long)g.seq, g.tool, g.args);
	if (blen < 0 || (size_t)blen >= sizeof(body))
		die("request body too long");
	hlen = snprintf(c->out, sizeof(c->out),
			"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			"Accept: application/json, text/event-stream\r\n"
			"MCP-Protocol-Version: %s\r\n",
			g.path, g.host, strcmp(g.era, "2025") == 0 ? "2025-11-25" : "2026-07-28");
	if (hlen < 0 || (size_t)hlen >= sizeof(c->out))
		die("request too long");
	off = (size_t)hlen;
	if (strcmp(g.era, "2025") != 0) {
		hlen = snprintf(c->out + off, sizeof(c->out) - off,
				"Mcp-Method: tools/call\r\nMcp-Name: %s\r\n", g.tool);
		if (hlen < 0 || (size_t)hlen >= sizeof(c->out) - off)
			die("request too long");
		off += (size_t)hlen;
	}
	for (i = 0; i < g.nheaders; i++) {
		hlen = snprintf(c->out + off, sizeof(c->out) - off, "%s\r\n", g.headers[i]);
		if (hlen < 0 || (size_t)hlen >= sizeof(c->out) - off)
			die("request too long");
		off += (size_t)hlen;
	}
	hlen = snprintf(c->out + off, sizeof(c->out) - off, "Content-Length: %d\r\n\r\n%s", blen,
			body);
	if (hlen < 0 || (size_t)hlen >= sizeof(c->out) - off)
		die("request too long");
	c->outlen = off + (size_t)hlen;
	c->outoff = 0;
	c->busy = 1;
	c->record = record;
	c->t0 = now_ns();
	return flush_out(c);
}

/* Case-insensitive search for a header's value inside the header block. */
static const char *header_value(const char *hdr, size_t hlen, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = hdr, *end = hdr + hlen;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

/*
 * Whether c->in holds one whole response. Returns 1 and sets *status, the
 * decoded body (in *body, malloc'd, NUL-terminated), *used (bytes of c->in it
 * took) and *close_after; 0 when more bytes are needed; -1 when malformed.
 * Re-parses from the start on every read: responses here are small.
 */
static int parse_response(struct conn *c, int eof, int *status, char **body, size_t *used,
			  int *close_after)
{
	const char *hend = memmem(c->in, c->inlen, "\r\n\r\n", 4), *v;
	size_t hlen, vlen, blen = 0, cap;
	char *b = NULL;
	const char *p, *end;

	if (hend == NULL)
		return eof ? -1 : 0;
	hlen = (size_t)(hend - c->in) + 4;
	if (c->inlen < 12 || strncmp(c->in, "HTTP/1.1 ", 9) != 0)
		return -1;
	*status = (int)strtol(c->in + 9, NULL, 10);
	v = header_value(c->in, hlen, "connection", &vlen);
	*close_after = v != NULL && vlen == 5 && strncasecmp(v, "close", 5) == 0;
	p = c->in + hlen;
	end = c->in + c->inlen;
	if ((v = header_value(c->in, hlen, "content-length", &vlen)) != NULL) {
		size_t cl = (size_t)strtoull(v, NULL, 10);

		if ((size_t)(end - p) < cl)
			return eof ? -1 : 0;
		b = malloc(cl + 1);
		if (b == NULL)
			die("malloc");
		memcpy(b, p, cl);
		b[cl] = 0;
		*used = hlen + cl;
	} else if ((v = header_value(c->in, hlen, "transfer-encoding", &vlen)) != NULL &&
		   vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0) {
		cap = (size_t)(end - p) + 1;
		b = malloc(cap);
		if (b == NULL)
			die("malloc");
		for (;;) {
			const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
			char *num_end;
			size_t n;

			if (eol == NULL)
				goto more;
			n = (size_t)strtoull(p, &num_end, 16);
			if (num_end == p)
				goto bad;
			p = eol + 2;
			if (n == 0) {
				/* No trailers are expected: the empty line ends the body. */
				if ((size_t)(end - p) < 2)
					goto more;
				if (p[0] != '\r' || p[1] != '\n')
					goto bad;
				p += 2;
				break;
			}
			if ((size_t)(end - p) < n + 2)
				goto more;
			memcpy(b + blen, p, n);
			blen += n;
			p += n + 2;
		}
		b[blen] = 0;
		*used = (size_t)(p - c->in);
	} else {
		/* No length: the body ends when the server closes. */
		if (!eof)
			return 0;
		blen = (size_t)(end - p);
		b = malloc(blen + 1);
		if (b == NULL)
			die("malloc");
		memcpy(b, p, blen);
		b[blen] = 0;
		*used = c->inlen;
		*close_after = 1;
	}
	*body = b;
	return 1;
more:
	free(b);
	return eof ? -1 : 0;
bad:
	free(b);
	return -1;
}

static int response_ok(int status, const char *body)
{
	int i;

	if (status != 200 || strstr(body, "\"isError\":true") != NULL ||
	    strstr(body, "\"error\":{") != NULL)
		return 0;
	for (i = 0; i < g.nexpect; i++)
		if (strstr(body, g.expect[i]) == NULL)
			return 0;
	return 1;
}

static void record(struct conn *c, uint64_t t1)
{
	if (!c->record)
		return;
	if (g.nlat == g.caplat) {
		g.caplat = g.caplat ? g.caplat * 2 : 65536;
		g.lat = realloc(g.lat, g.caplat * sizeof(*g.lat));
		if (g.lat == NULL)
			die("realloc");
	}
	g.lat[g.nlat++] = t1 - c->t0;
}

static void count_error(struct conn *c, const char *why, const char *body)
{
	if (c->record)
		g.errors++;
	if (!g.error_shown) {
		g.error_shown = 1;
		fprintf(stderr, "bench-mcp_load: wrong response (%s): %.2000s\n", why,
			body ? body : "");
	}
}

/* Reads what is there; returns 1 when a response completed, 0 if not, -1 on error/close. */
static int read_some(struct conn *c, int *eof)
{
	*eof = 0;
	for (;;) {
		ssize_t n;

		if (c->incap - c->inlen < 4096) {
			c->incap = c->incap ? c->incap * 2 : 16384;
			c->in = realloc(c->in, c->incap);
			if (c->in == NULL)
				die("realloc");
		}
		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, c->in + c->inlen, (int)(c->incap - c->inlen - 1));

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return 0;
				if (e == SSL_ERROR_ZERO_RETURN) {
					*eof = 1;
					return 0;
				}
				return -1;
			}
			n = r;
		} else {
			n = read(c->fd, c->in + c->inlen, c->incap - c->inlen - 1);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
			if (n < 0)
				return -1;
			if (n == 0) {
				*eof = 1;
				return 0;
			}
		}
		c->inlen += (size_t)n;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(double p)
{
	size_t i;

	if (g.nlat == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)g.nlat);
	if (i >= g.nlat)
		i = g.nlat - 1;
	return (double)g.lat[i] / 1000.0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-mcp_load [-c CONNS] [-d SEC] [-w SEC] [-t TOOL] [-a JSON] "
			"[-e TEXT]... [-H 'K: V']... [-V 2026|2025] [-h HOST] [-k CAFILE] URL\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int nconns = 1, opt, i, port;
	double dur = 5, warm = 1;
	const char *cafile = NULL, *hostopt = NULL, *url, *p, *slash;
	char ip[64];
	struct conn *conns;
	uint64_t t_start, t_measure, t_end, t_last = 0, sum = 0;
	int stopping = 0, inflight;
	struct epoll_event evs[256];

	g.tool = "tickets_get";
	g.args = "{\"id\":1}";
	g.era = "2026";
	while ((opt = getopt(argc, argv, "c:d:w:t:a:e:H:V:h:k:")) != -1) {
		switch (opt) {
		case 'c':
			nconns = (int)strtol(optarg, NULL, 10);
			break;
		case 'd':
			dur = strtod(optarg, NULL);
			break;
		case 'w':
			warm = strtod(optarg, NULL);
			break;
		case 't':
			g.tool = optarg;
			break;
		case 'a':
			g.args = optarg;
			break;
		case 'e':
			if (g.nexpect == MAX_EXPECT)
				usage();
			g.expect[g.nexpect++] = optarg;
			break;
		case 'H':
			if (g.nheaders == MAX_HEADERS)
				usage();
			g.headers[g.nheaders++] = optarg;
			break;
		case 'V':
			g.era = optarg;
			break;
		case 'h':
			hostopt = optarg;
			break;
		case 'k':
			cafile = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || nconns < 1 || nconns > MAX_CONNS || dur <= 0 || warm < 0 ||
	    (strcmp(g.era, "2026") != 0 && strcmp(g.era, "2025") != 0))
		usage();
	url = argv[optind];
	if (strncmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncmp(url, "https://", 8) == 0) {
		p = url + 8;
		g.tls = 1;
	} else
		usage();
	slash = strchr(p, '/');
	if (slash == NULL || snprintf(g.path, sizeof(g.path), "%s", slash) >= (int)sizeof(g.path))
		usage();
	{
		const char *colon = memchr(p, ':', (size_t)(slash - p));

		if (colon == NULL || (size_t)(colon - p) >= sizeof(ip))
			usage();
		memcpy(ip, p, (size_t)(colon - p));
		ip[colon - p] = 0;
		port = (int)strtol(colon + 1, NULL, 10);
		g.addr.sin_family = AF_INET;
		g.addr.sin_port = htons((uint16_t)port);
		if (port <= 0 || port > 65535 || inet_pton(AF_INET, ip, &g.addr.sin_addr) != 1)
			usage();
		if (hostopt != NULL)
			snprintf(g.host, sizeof(g.host), "%s", hostopt);
		else
			snprintf(g.host, sizeof(g.host), "%.*s", (int)(slash - p), p);
	}
	if (g.tls) {
		if (cafile == NULL || hostopt == NULL)
			usage();
		g.ctx = SSL_CTX_new(TLS_client_method());
		if (g.ctx == NULL || SSL_CTX_load_verify_locations(g.ctx, cafile, NULL) != 1)
			die("CA file");
		SSL_CTX_set_verify(g.ctx, SSL_VERIFY_PEER, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	g.ep = epoll_create1(EPOLL_CLOEXEC);
	if (g.ep < 0)
		die("epoll_create1");
	conns = calloc((size_t)nconns, sizeof(*conns));
	if (conns == NULL)
		die("calloc");
	for (i = 0; i < nconns; i++) {
		conns[i].fd = -1;
		conn_open(&conns[i]);
	}
	t_start = now_ns();
	t_measure = t_start + (uint64_t)(warm * 1e9);
	t_end = t_measure + (uint64_t)(dur * 1e9);
	for (i = 0; i < nconns; i++)
		if (send_request(&conns[i], warm == 0) < 0)
			die("write");
	for (;;) {
		int n = epoll_wait(g.ep, evs, 256, 100);
		uint64_t t = now_ns();

		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		if (t >= t_end)
			stopping = 1;
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int eof, st = 0, close_after = 0, r;
			char *body = NULL;
			size_t used = 0;

			if (c->fd < 0)
				continue;
			if ((evs[i].events & EPOLLOUT) && flush_out(c) < 0)
				goto broken;
			if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				continue;
			if (read_some(c, &eof) < 0)
				goto broken;
			if (!c->busy) {
				if (c->inlen > 0 || eof)
					goto broken; /* idle and the server spoke or left */
				continue;
			}
			r = parse_response(c, eof, &st, &body, &used, &close_after);
			if (r == 0 && !eof)
				continue;
			if (r <= 0)
				goto broken;
			t = now_ns();
			c->busy = 0;
			g.completed++;
			if (response_ok(st, body))
				record(c, t);
			else
				count_error(c, "status or body", body);
			free(body);
			if (used < c->inlen) {
				count_error(c, "bytes after the response", NULL);
				close_after = 1;
			}
			c->inlen = 0;
			if (close_after || eof) {
				conn_close(c);
				if (stopping)
					continue;
				g.reconnects++;
				conn_open(c);
			}
			if (!stopping && send_request(c, t >= t_measure) < 0)
				goto broken;
			t_last = t;
			continue;
		broken:
			if (c->busy)
				count_error(c, "connection broken mid-response",
					    c->inlen ? c->in : NULL);
			c->busy = 0;
			conn_close(c);
			if (!stopping) {
				g.reconnects++;
				conn_open(c);
				if (send_request(c, now_ns() >= t_measure) < 0)
					die("write");
			}
		}
		if (stopping) {
			inflight = 0;
			for (i = 0; i < nconns; i++)
				inflight += conns[i].busy;
			if (inflight == 0)
				break;
			if (now_ns() > t_end + 10000000000ull) {
				g.errors += (uint64_t)inflight;
				fprintf(
				    stderr,
				    "bench-mcp_load: %d requests unanswered 10 s after the end\n",
				    inflight);
				break;
			}
		}
	}
	qsort(g.lat, g.nlat, sizeof(*g.lat), cmp_u64);
	for (size_t k = 0; k < g.nlat; k++)
		sum += g.lat[k];
	{
		double secs = (double)((t_last > t_end ? t_last : t_end) - t_measure) / 1e9;
		double wall = (double)(now_ns() - t_start) / 1e9, cpu;
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;

		printf("{\"requests\":%zu,\"errors\":%llu,\"seconds\":%.3f,\"rps\":%.0f,"
		       "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
		       "\"max_us\":%.1f,\"mean_us\":%.1f,\"conns\":%d,\"reconnects\":%llu,"
		       "\"client_core\":%.2f,\"all_responses\":%llu}\n",
		       g.nlat, (unsigned long long)g.errors, secs, (double)g.nlat / secs, pct(50),
		       pct(90), pct(99), pct(99.9), g.nlat ? (double)g.lat[g.nlat - 1] / 1000.0 : 0,
		       g.nlat ? (double)sum / (double)g.nlat / 1000.0 : 0, nconns,
		       (unsigned long long)g.reconnects, cpu / wall,
		       (unsigned long long)g.completed);
	}
	for (i = 0; i < nconns; i++) {
		conn_close(&conns[i]);
		free(conns[i].in);
	}
	free(conns);
	free(g.lat);
	if (g.ctx != NULL)
		SSL_CTX_free(g.ctx);
	close(g.ep);
	return g.errors || g.nlat == 0 ? 1 : 0;
}
