#include "unit/support/raw_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <sys/socket.h>

int al_test_header(const char *head, const char *name, char *out, size_t outlen)
{
	const char *p = head;
	size_t nlen = strlen(name);

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
			const char *v = p + nlen + 1, *e;
			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			if (e == NULL)
				return 0;
			snprintf(out, outlen, "%.*s", (int)(e - v), v);
			return 1;
		}
	}
	return 0;
}

int al_test_read_request(int fd, char *buf, size_t cap, size_t *len, size_t *hlen, size_t *clen)
{
	char *end = NULL, cl[32];
	size_t n = 0;

	*clen = 0;
	while (n < cap - 1) {
		ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			break;
	}
	if (end == NULL)
		return -1;
	*hlen = (size_t)(end - buf) + 4;
	if (al_test_header(buf, "content-length", cl, sizeof(cl)))
		*clen = strtoul(cl, NULL, 10);
	while (n < *hlen + *clen && n < cap - 1) {
		ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
		if (r <= 0)
			return -1;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return 0;
}

void al_test_close_drained(int fd)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	char junk[512];

	shutdown(fd, SHUT_WR);
	while (poll(&pf, 1, 2000) > 0 && recv(fd, junk, sizeof(junk), 0) > 0)
		;
	close(fd);
}
