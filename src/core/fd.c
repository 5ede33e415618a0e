/* fd.c - small blocking file-descriptor helpers. */
#include "core/fd.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int al_fd_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int al_fd_read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, rc = 0;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file of at most %zu bytes", path, max);
		goto done;
	}
	buf = al_malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	/* The size is a hint: a file that shrinks meanwhile ends the read early. */
	while (got < (size_t)st.st_size && (n = read(fd, buf + got, (size_t)st.st_size - got))) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			goto done;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
done:
	al_free(buf);
	close(fd);
	return rc;
}
