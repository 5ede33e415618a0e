/* syslog.c - RFC 5424 export over UDP/TCP (see syslog.h). */
#include "audit/syslog.h"

#include "core/alloc.h"
#include "core/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 200
#define BACKOFF_MAX_MS	   60000

struct al_audit_syslog {
	int tcp;
	int fd; /* -1 when not connected */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char hostname[256];
	long pid;
	uint64_t retry_at; /* al_mono_ms() before which no reconnect is tried */
	uint64_t backoff;
	int last_err; /* why the connection is down, reported while backing off */
	al_buf msg;
};

/* Keeps the PRINTUSASCII characters (33..126) RFC 5424 allows in header fields. */
static void header_token(const char *in, size_t max, char *out)
{
	size_t n = 0;

	for (; in && *in && n < max; in++)
		if (*in >= 33 && *in <= 126)
			out[n++] = *in;
	if (n == 0)
		out[n++] = '-';
	out[n] = '\0';
}

/* An SD-PARAM value: '"', '\' and ']' are escaped with a backslash (RFC 5424 6.3.3). */
static int append_param(al_buf *b, const char *name, const char *v)
{
	int rc = al_buf_appendf(b, " %s=\"", name);

	for (; rc == 0 && *v; v++) {
		if (*v == '"' || *v == '\\' || *v == ']')
			rc = al_buf_append(b, "\\", 1);
		if (rc == 0)
			rc = al_buf_append(b, v, 1);
	}
	return rc < 0 ? rc : al_buf_append(b, "\"", 1);
}

int al_audit_syslog_format(const json_t *rec, const char *json, const char *hostname, long pid,
			   al_buf *out)
{
	char host[256], msgid[33], seq[32];
	const char *time = json_string_value(json_object_get(rec, "time"));
	const char *hash = json_string_value(json_object_get(rec, "hash"));
	const char *comp = json_string_value(json_object_get(rec, "component"));
	json_t *cls = json_object_get(rec, "class_uid");
	int rc;

	header_token(hostname, 255, host);
	if (json_is_integer(cls))
		snprintf(msgid, sizeof(msgid), "%lld", (long long)json_integer_value(cls));
	else
		header_token(json_string_value(json_object_get(rec, "type")), 32, msgid);
	snprintf(seq, sizeof(seq), "%lld",
		 (long long)json_integer_value(json_object_get(rec, "seq")));
	if ((rc = al_buf_appendf(out, "<110>1 %s %s airlock %ld %s [airlock@32473",
				 time ? time : "-", host, pid, msgid)) < 0 ||
	    (rc = append_param(out, "seq", seq)) < 0 ||
	    (rc = append_param(out, "hash", hash ? hash : "")) < 0 ||
	    (comp && (rc = append_param(out, "component", comp)) < 0) ||
	    (rc = al_buf_appendf(out, "] %s", json)) < 0)
		return rc;
	return 0;
}

static int parse_target(const char *target, int *tcp, char *host, size_t hostlen, char *port,
			size_t portlen)
{
	const char *p, *colon;
	size_t n;

	if (strncmp(target, "udp://", 6) == 0)
		*tcp = 0;
	else if (strncmp(target, "tcp://", 6) == 0)
		*tcp = 1;
	else
		return -EINVAL;
	p = target + 6;
	if (*p == '[') {
		const char *end = strchr(p, ']');

		if (end == NULL || end[1] != ':')
			return -EINVAL;
		n = (size_t)(end - p - 1);
		p++;
		colon = end + 1;
	} else {
		colon = strrchr(p, ':');
		if (colon == NULL)
			return -EINVAL;
		n = (size_t)(colon - p);
	}
	if (n == 0 || n >= hostlen || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen)
		return -EINVAL;
	memcpy(host, p, n);
	host[n] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	for (p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	return 0;
}

static void drop_conn(al_audit_syslog *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Connects (TCP: with a short timeout). 0 or a negative errno. */
static int connect_now(al_audit_syslog *s)
{
	struct pollfd pfd;
	int fd, err = 0, rc;
	socklen_t len = sizeof(err);

	fd = socket(s->addr.ss_family, (s->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Non-blocking: a stalled collector must never stall an audited write. */
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	if (connect(fd, (struct sockaddr *)&s->addr, s->addrlen) < 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		rc = poll(&pfd, 1, CONNECT_TIMEOUT_MS);
		if (rc <= 0) {
			rc = rc == 0 ? -ETIMEDOUT : -errno;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			rc = err ? -err : -errno;
			goto fail;
		}
	}
	s->fd = fd;
	return 0;
fail:
	close(fd);
	return rc;
}

int al_audit_syslog_open(const char *target, al_audit_syslog **out, char *err, size_t errlen)
{
	struct addrinfo hints = {0}, *ai = NULL;
	char host[256], port[16];
	al_audit_syslog *s = NULL;
	int tcp = 0, rc, gai;

	*out = NULL;
	if (parse_target(target, &tcp, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, errlen, "syslog target must be udp://HOST:PORT or tcp://HOST:PORT");
		return -EINVAL;
	}
	hints.ai_socktype = tcp ? SOCK_STREAM : SOCK_DGRAM;
	gai = getaddrinfo(host, port, &hints, &ai);
	if (gai != 0 || ai == NULL) {
		snprintf(err, errlen, "syslog target %s: %s", host, gai_strerror(gai));
		rc = -EINVAL;
		goto done;
	}
	s = al_calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto done;
	}
	s->tcp = tcp;
	s->fd = -1;
	memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
	s->addrlen = ai->ai_addrlen;
	if (gethostname(s->hostname, sizeof(s->hostname) - 1) < 0)
		s->hostname[0] = '\0';
	s->pid = (long)getpid();
	s->backoff = 1000;
	/* A failed first connect is not fatal: sends retry after the back-off. */
	if ((s->last_err = connect_now(s)) < 0)
		s->retry_at = al_mono_ms() + s->backoff;
	*out = s;
	rc = 0;
done:
	if (ai)
		freeaddrinfo(ai);
	return rc;
}

void al_audit_syslog_close(al_audit_syslog *s)
{
	if (s == NULL)
		return;
	drop_conn(s);
	al_buf_free(&s->msg);
	al_free(s);
}

int al_audit_syslog_send(al_audit_syslog *s, const json_t *rec, const char *json)
{
	al_buf *m = &s->msg;
	char frame[32];
	ssize_t w;
	int rc, n = 0;

	if (s->fd < 0) {
		if (al_mono_ms() < s->retry_at)
			return s->last_err < 0 ? s->last_err : -ENOTCONN;
		if ((rc = connect_now(s)) < 0)
			goto fail;
	}
	al_buf_reset(m);
	if (s->tcp) {
		/* RFC 6587 octet counting: "LEN SP MSG"; the length is only known after formatting.
		 */
		al_buf tmp = {0};

		if ((rc = al_audit_syslog_format(rec, json, s->hostname, s->pid, &tmp)) < 0) {
			al_buf_free(&tmp);
			return rc;
		}
		n = snprintf(frame, sizeof(frame), "%zu ", tmp.len);
		rc = al_buf_append(m, frame, (size_t)n);
		if (rc == 0)
			rc = al_buf_append(m, tmp.data, tmp.len);
		al_buf_free(&tmp);
		if (rc < 0)
			return rc;
	} else if ((rc = al_audit_syslog_format(rec, json, s->hostname, s->pid, m)) < 0) {
		return rc;
	}
	w = send(s->fd, m->data, m->len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w == (ssize_t)m->len) {
		s->backoff = 1000;
		return 0;
	}
	/*
	 * A short TCP send would leave a partial frame: the stream can no longer
	 * be framed, so the connection is dropped and reopened later. Over UDP
	 * an error (ECONNREFUSED from an earlier datagram) is just counted.
	 */
	rc = w < 0 ? -errno : -EAGAIN;
	if (!s->tcp)
		return rc;
fail:
	s->last_err = rc;
	drop_conn(s);
	s->retry_at = al_mono_ms() + s->backoff;
	if (s->backoff < BACKOFF_MAX_MS)
		s->backoff *= 2;
	return rc;
}
