/* fd.c - small blocking file-descriptor helpers. */
#include "core/fd.h"

#include <errno.h>
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
