/* fd.h - small blocking file-descriptor helpers. */
#ifndef AL_CORE_FD_H
#define AL_CORE_FD_H

#include <stddef.h>

/*
 * Writes all n bytes of buf to fd, continuing after short writes and
 * EINTR. 0, or -errno from the write(2) that failed (what went before it
 * may have been written). For blocking descriptors: on a non-blocking one
 * EAGAIN is returned as -EAGAIN, not waited out.
 */
int al_fd_write_all(int fd, const void *buf, size_t n);

/*
 * Reads a whole regular file of at most `max` bytes (a config file, say)
 * into *out, NUL-terminated, its length in *len; the caller frees *out with
 * al_free. 0; or -errno / -EINVAL (not a regular file, or larger than max)
 * / -ENOMEM with a message naming the path in err.
 */
int al_fd_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
		    size_t errlen);

#endif
