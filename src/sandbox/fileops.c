/*
 * fileops.c - workspace-confined file tools (contract in fileops.h).
 *
 * The one rule: a name is only ever resolved by openat2() relative to a
 * directory fd we trust (a root, or a directory itself reached that way),
 * with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS. Everything after that goes
 * through fds (fstatat/openat2/mkdirat/renameat/unlinkat on the parent's fd
 * with a single path component).
 */
#include "sandbox/fileops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/fd.h"
#include "core/alloc.h"

#define RES (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
/* For one component in a directory we created or are walking: no link at all. */
#define RES_STRICT (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)
#define MAX_DEPTH  64
#define MAX_SEGS   64

struct root_ent {
	int fd;
	char *path; /* canonical (realpath) */
	size_t len;
	bool readonly;
};

struct al_fileops_root {
	int n;
	struct root_ent r[AL_FILEOPS_MAX_ROOTS];
};

/* openat2(2): the fd, or a negative errno. */
static int xopenat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
	struct open_how how = {.flags = (uint64_t)flags, .mode = mode, .resolve = resolve};
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Words for the usual failures; returns rc. */
static int fail(int rc, char *err, size_t errlen, const char *what, const char *path)
{
	switch (-rc) {
	case EXDEV:
		snprintf(err, errlen, "%s: path escapes the workspace: %s", what, path);
		break;
	case ELOOP:
		snprintf(err, errlen, "%s: path crosses a symbolic or magic link it may not: %s",
			 what, path);
		break;
	case ENOENT:
		snprintf(err, errlen, "%s: no such file or directory: %s", what, path);
		break;
	default:
		snprintf(err, errlen, "%s: %s: %s", what, path, strerror(-rc));
	}
	return rc;
}

static void limits_init(struct al_fileops_limits *l, const struct al_fileops_limits *in)
{
	*l = in ? *in : (struct al_fileops_limits){0};
	if (!l->read_max)
		l->read_max = 256 * 1024;
	if (!l->file_max)
		l->file_max = 16 * 1024 * 1024;
	if (!l->glob_max)
		l->glob_max = 200;
	if (!l->grep_max)
		l->grep_max = 100 * 1024;
	if (!l->grep_line_max)
		l->grep_line_max = 2000;
	if (!l->walk_max)
		l->walk_max = 200000;
}

void al_fileops_out_free(struct al_fileops_out *out)
{
	if (out == NULL)
		return;
	al_buf_free(&out->text);
	out->truncated = false;
	out->count = 0;
}

/* ---- roots ---- */

int al_fileops_add_root(struct al_fileops_root *root, const char *path, bool readonly)
{
	char *canon = NULL;
	int fd = -1, rc;

	if (root->n >= AL_FILEOPS_MAX_ROOTS)
		return -ENOSPC;
	canon = realpath(path, NULL);
	if (canon == NULL) {
		rc = -errno;
		goto fail;
	}
	fd = open(canon, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	root->r[root->n].path = al_strdup(canon);
	if (root->r[root->n].path == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	root->r[root->n].fd = fd;
	root->r[root->n].len = strlen(canon);
	root->r[root->n].readonly = readonly;
	root->n++;
	free(canon); /* realpath's malloc */
	return 0;
fail:
	free(canon);
	if (fd >= 0)
		close(fd);
	return rc;
}

int al_fileops_open_root(const char *path, struct al_fileops_root **out)
{
	struct al_fileops_root *root = al_calloc(1, sizeof(*root));
	int rc;

	*out = NULL;
	if (root == NULL)
		return -ENOMEM;
	rc = al_fileops_add_root(root, path, false);
	if (rc < 0) {
		al_free(root);
		return rc;
	}
	*out = root;
	return 0;
}

void al_fileops_close_root(struct al_fileops_root *root)
{
	if (root == NULL)
		return;
	for (int i = 0; i < root->n; i++) {
		close(root->r[i].fd);
		al_free(root->r[i].path);
	}
	al_free(root);
}

/*
 * Maps a tool path to a root and a path relative to it (pointing into
 * `path`, or "."). Absolute paths must sit textually under a root; the
 * kernel then enforces the rest.
 */
static int pick(struct al_fileops_root *root, const char *path, struct root_ent **ent,
		const char **rel)
{
	struct root_ent *best = NULL;

	if (path == NULL || path[0] == '\0')
		return -EINVAL;
	if (path[0] != '/') {
		*ent = &root->r[0];
		*rel = path;
		return 0;
	}
	for (int i = 0; i < root->n; i++) {
		struct root_ent *e = &root->r[i];
		size_t n = e->len == 1 ? 0 : e->len; /* a root of "/" */
		if (strncmp(path, e->path, n) == 0 && (path[n] == '/' || path[n] == '\0') &&
		    (best == NULL || e->len > best->len))
			best = e;
	}
	if (best == NULL)
		return -EXDEV;
	path += best->len == 1 ? 0 : best->len;
	while (*path == '/')
		path++;
	*ent = best;
	*rel = *path ? path : ".";
	return 0;
}

/* Appends the display form of `rel` under `ent` ("." and empty segments dropped). */
static int display_path(al_buf *b, const struct root_ent *ent, const char *rel)
{
	int rc = al_buf_append_str(b, ent->len == 1 ? "" : ent->path);

	while (rc == 0 && *rel) {
		const char *end = strchr(rel, '/');
		size_t n = end ? (size_t)(end - rel) : strlen(rel);
		if (n > 0 && !(n == 1 && rel[0] == '.')) {
			rc = al_buf_append(b, "/", 1);
			if (rc == 0)
				rc = al_buf_append(b, rel, n);
		}
		rel += n;
		while (*rel == '/')
			rel++;
	}
	if (rc == 0 && b->len == 0)
		rc = al_buf_append(b, "/", 1);
	return rc;
}

/* ---- .git protection ---- */

/* True when `path` is under a .git/hooks directory or is a .git/config file. */
static bool git_protected(const char *path)
{
	const char *p = path, *prev = NULL;
	size_t prevlen = 0;

	while (*p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		bool last = end == NULL || end[strspn(end, "/")] == '\0';

		if (prev && prevlen == 4 && memcmp(prev, ".git", 4) == 0) {
			if (n == 5 && memcmp(p, "hooks", 5) == 0)
				return true;
			if (last && ((n == 6 && memcmp(p, "config", 6) == 0) ||
				     (n == 15 && memcmp(p, "config.worktree", 15) == 0)))
				return true;
		}
		prev = p;
		prevlen = n;
		p += n;
		while (*p == '/')
			p++;
	}
	return false;
}

/*
 * The same check on the kernel's current name for the resolved directory,
 * which sees through symlink aliases ("h -> .git/hooks"). A directory renamed
 * concurrently can still slip past this; the sandbox core also mounts these
 * paths read-only so the sandbox cannot stage that.
 */
static bool git_protected_fd(int dirfd, const char *base)
{
	char link[64], target[4096 + 256];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	n = readlink(link, target, 4096);
	if (n <= 0)
		return false; /* no /proc: the lexical check stands alone */
	target[n] = '\0';
	snprintf(target + n, sizeof(target) - (size_t)n, "/%s", base);
	return git_protected(target);
}

/* ---- resolving a parent directory (creating it if asked) ---- */

/*
 * Opens the directory that will hold the last component of `rel` and
 * returns the fd in *dirfd and the last component in `base` (a copy).
 */
static int open_parent(const struct root_ent *ent, const char *rel, bool create, int *dirfd,
		       char *base, size_t baselen)
{
	char dir[4096];
	char *slash, *name, *p;
	size_t n = strlen(rel);
	int cur = -1, fd = -1, rc;

	*dirfd = -1;
	if (n == 0 || n >= sizeof(dir))
		return n == 0 ? -EINVAL : -ENAMETOOLONG;
	memcpy(dir, rel, n + 1);
	if (dir[n - 1] == '/')
		return -EISDIR; /* "a/b/" names a directory */
	slash = strrchr(dir, '/');
	name = slash ? slash + 1 : dir;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EISDIR;
	if (strlen(name) >= baselen)
		return -ENAMETOOLONG;
	memcpy(base, name, strlen(name) + 1);
	if (slash == NULL)
		dir[0] = '.', dir[1] = '\0';
	else if (slash == dir)
		dir[1] = '\0'; /* cannot happen: rel is relative */
	else
		*slash = '\0';

	fd = xopenat2(ent->fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, RES);
	if (fd >= 0 || fd != -ENOENT || !create) {
		rc = fd < 0 ? fd : 0;
		*dirfd = fd;
		return rc;
	}

	/*
	 * Some directory is missing. Resolve the longest existing prefix from
	 * the root (so `..` and in-root symlinks mean what they say), then
	 * create the rest one component at a time through the fd of the
	 * directory above, opening each new one without following any link.
	 */
	cur = xopenat2(ent->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, RES);
	if (cur < 0)
		return cur;
	p = dir;
	while (*p) {
		char *end = strchr(p, '/');
		char save = 0;

		if (end) {
			save = *end;
			*end = '\0';
		}
		/* dir now holds the prefix up to and including this component */
		fd = xopenat2(ent->fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, RES);
		if (fd == -ENOENT) {
			if (strcmp(p, "..") == 0 || strcmp(p, ".") == 0) {
				rc = -EINVAL;
				goto fail;
			}
			bool made = false;
			if (*p != '\0') {
				made = mkdirat(cur, p, 0777) == 0;
				if (!made && errno != EEXIST) {
					rc = -errno;
					goto fail;
				}
			}
			fd = xopenat2(cur, *p ? p : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0,
				      RES_STRICT);
			/*
			 * As root, a new directory belongs to its parent's owner, like a
			 * new file (replace_file): otherwise the sandbox's uid could not
			 * write into a directory `write` made for it.
			 */
			struct stat pst;
			if (made && fd >= 0 && geteuid() == 0 && fstat(cur, &pst) == 0)
				(void)!fchown(fd, pst.st_uid, pst.st_gid);
		}
		if (fd < 0) {
			rc = fd;
			goto fail;
		}
		closep(&cur);
		cur = fd;
		fd = -1;
		if (end == NULL)
			break;
		*end = save;
		p = end + 1;
		while (*p == '/')
			p++;
	}
	*dirfd = cur;
	return 0;
fail:
	closep(&cur);
	return rc;
}

/* ---- atomic replace ---- */

/*
 * Writes data to a fresh temp file in dirfd and renames it over `base`.
 * `old` is the file being replaced (mode and owner kept), or NULL. On
 * failure the temp file is gone.
 */
static int replace_file(int dirfd, const char *base, const void *data, size_t len,
			const struct stat *old)
{
	unsigned char rnd[8];
	char tmp[64];
	struct stat now;
	int fd = -1, rc;
	bool created = false;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	snprintf(tmp, sizeof(tmp), ".al-%02x%02x%02x%02x%02x%02x%02x%02x.tmp", rnd[0], rnd[1],
		 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	fd = xopenat2(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		      old ? (old->st_mode & 0777) : 0666, RES_STRICT);
	if (fd < 0)
		return fd;
	created = true;
	if (old) {
		/* Keep the permissions, never set-id bits (a write is not a chmod). */
		if (fchmod(fd, old->st_mode & 01777) != 0) {
			rc = -errno;
			goto fail;
		}
		if (geteuid() == 0)
			(void)!fchown(fd, old->st_uid, old->st_gid);
	} else if (geteuid() == 0 && fstat(dirfd, &now) == 0) {
		/* As root, a new file belongs to the directory's owner, not to root. */
		(void)!fchown(fd, now.st_uid, now.st_gid);
	}
	rc = al_fd_write_all(fd, data, len);
	if (rc < 0)
		goto fail;
	if (fsync(fd) != 0) {
		rc = -errno;
		goto fail;
	}
	rc = close(fd) == 0 ? 0 : -errno;
	fd = -1;
	if (rc < 0)
		goto fail;
	/*
	 * The target may have been swapped since we looked (a rename race):
	 * replacing a different file is refused. Replacing a symlink or a
	 * hard link planted here would still only replace the name, never
	 * write through it, so this is about honesty, not containment.
	 */
	if (old) {
		if (fstatat(dirfd, base, &now, AT_SYMLINK_NOFOLLOW) != 0 ||
		    now.st_ino != old->st_ino || now.st_dev != old->st_dev) {
			rc = -ESTALE;
			goto fail;
		}
	}
	if (renameat(dirfd, tmp, dirfd, base) != 0) {
		rc = -errno;
		goto fail;
	}
	(void)fsync(dirfd); /* durability of the rename; best effort */
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (created)
		(void)unlinkat(dirfd, tmp, 0);
	return rc;
}

/* Checks an existing target through dirfd; *exists tells whether there is one. */
static int check_target(int dirfd, const char *base, struct stat *st, bool *exists)
{
	*exists = false;
	if (fstatat(dirfd, base, st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -errno;
	*exists = true;
	if (S_ISLNK(st->st_mode))
		return -ELOOP;
	if (S_ISDIR(st->st_mode))
		return -EISDIR;
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	if (st->st_nlink > 1)
		return -EMLINK;
	return 0;
}

static int write_fail(int rc, char *err, size_t errlen, const char *what, const char *path)
{
	switch (-rc) {
	case EMLINK:
		snprintf(err, errlen, "%s: refusing a file with several hard links: %s", what,
			 path);
		return rc;
	case ELOOP:
		snprintf(err, errlen, "%s: refusing to write through a symbolic link: %s", what,
			 path);
		return rc;
	case EACCES:
		snprintf(err, errlen, "%s: .git/hooks and .git/config are read-only: %s", what,
			 path);
		return rc;
	case EROFS:
		snprintf(err, errlen, "%s: path is in a read-only root: %s", what, path);
		return rc;
	case ESTALE:
		snprintf(err, errlen, "%s: file changed while being written: %s", what, path);
		return rc;
	case EINVAL:
		snprintf(err, errlen, "%s: not a regular file or bad path: %s", what, path);
		return rc;
	}
	return fail(rc, err, errlen, what, path);
}

/* Resolves `path` for writing: root, parent fd, base name; applies the policies. */
static int open_for_write(struct al_fileops_root *root, const char *path, bool create, int *dirfd,
			  char *base, size_t baselen)
{
	struct root_ent *ent;
	const char *rel;
	int rc;

	*dirfd = -1;
	rc = pick(root, path, &ent, &rel);
	if (rc < 0)
		return rc;
	if (ent->readonly)
		return -EROFS;
	if (git_protected(rel))
		return -EACCES;
	rc = open_parent(ent, rel, create, dirfd, base, baselen);
	if (rc < 0)
		return rc;
	if (git_protected_fd(*dirfd, base)) {
		closep(dirfd);
		return -EACCES;
	}
	return 0;
}

int al_fileops_write(struct al_fileops_root *root, const char *path, const void *data, size_t len,
		     const struct al_fileops_limits *limits, char *err, size_t errlen)
{
	struct al_fileops_limits lim;
	char base[256];
	struct stat st;
	bool exists;
	int dirfd = -1, rc;

	limits_init(&lim, limits);
	if (len > lim.file_max) {
		snprintf(err, errlen, "write: content of %zu bytes is over the %zu-byte limit", len,
			 lim.file_max);
		return -EFBIG;
	}
	rc = open_for_write(root, path, true, &dirfd, base, sizeof(base));
	if (rc < 0)
		goto done;
	rc = check_target(dirfd, base, &st, &exists);
	if (rc < 0)
		goto done;
	rc = replace_file(dirfd, base, data, len, exists ? &st : NULL);
done:
	closep(&dirfd);
	return rc < 0 ? write_fail(rc, err, errlen, "write", path) : 0;
}

/* Reads all of fd (at most max bytes; -EFBIG beyond) into a NUL-terminated block. */
static int read_all(int fd, size_t max, char **out, size_t *outlen)
{
	al_buf b = {0};
	char chunk[65536];
	int rc = 0;

	*out = NULL;
	*outlen = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > max) {
			rc = -EFBIG;
			break;
		}
		rc = al_buf_append(&b, chunk, (size_t)n);
		if (rc < 0)
			break;
	}
	if (rc == 0 && b.data == NULL)
		rc = al_buf_append(&b, "", 0);
	if (rc < 0) {
		al_buf_free(&b);
		return rc;
	}
	*out = al_buf_steal(&b, outlen);
	return 0;
}

static size_t count_occurrences(const char *hay, size_t haylen, const char *needle, size_t n)
{
	size_t count = 0;
	const char *p = hay, *end = hay + haylen;

	while ((size_t)(end - p) >= n && (p = memmem(p, (size_t)(end - p), needle, n)) != NULL) {
		count++;
		p += n;
	}
	return count;
}

int al_fileops_edit(struct al_fileops_root *root, const char *path, const char *old_string,
		    const char *new_string, bool replace_all,
		    const struct al_fileops_limits *limits, char *err, size_t errlen)
{
	struct al_fileops_limits lim;
	char base[256];
	struct stat st;
	al_buf next = {0};
	char *text = NULL;
	size_t len = 0, olen, nlen, count;
	bool exists;
	int dirfd = -1, fd = -1, rc;

	limits_init(&lim, limits);
	olen = old_string ? strlen(old_string) : 0;
	nlen = new_string ? strlen(new_string) : 0;
	if (olen == 0 || new_string == NULL || strcmp(old_string, new_string) == 0) {
		snprintf(err, errlen,
			 "edit: old_string must be non-empty and differ from new_string");
		return -EINVAL;
	}
	rc = open_for_write(root, path, false, &dirfd, base, sizeof(base));
	if (rc < 0)
		goto fail;
	rc = check_target(dirfd, base, &st, &exists);
	if (rc == 0 && !exists)
		rc = -ENOENT;
	if (rc < 0)
		goto fail;
	fd = xopenat2(dirfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0, RES_STRICT);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	/* Use what we opened, not what we looked at a moment ago. */
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink > 1) {
		rc = S_ISREG(st.st_mode) ? -EMLINK : -EINVAL;
		goto fail;
	}
	rc = read_all(fd, lim.file_max, &text, &len);
	if (rc < 0)
		goto fail;
	count = count_occurrences(text, len, old_string, olen);
	if (count == 0) {
		snprintf(err, errlen, "edit: old_string not found in %s", path);
		rc = -ENOENT;
		goto done;
	}
	if (count > 1 && !replace_all) {
		snprintf(err, errlen,
			 "edit: old_string occurs %zu times in %s; make it unique or set "
			 "replace_all",
			 count, path);
		rc = -ENOTUNIQ;
		goto done;
	}
	{
		const char *p = text, *end = text + len, *hit;
		while ((hit = memmem(p, (size_t)(end - p), old_string, olen)) != NULL) {
			/*
			 * Checked as it grows: replace_all of a 1-byte string by a
			 * long one in a large file would otherwise need count * nlen
			 * bytes (terabytes) before the final size check.
			 */
			if (next.len + (size_t)(hit - p) + nlen > lim.file_max) {
				rc = -EFBIG;
				goto fail;
			}
			if ((rc = al_buf_append(&next, p, (size_t)(hit - p))) < 0 ||
			    (rc = al_buf_append(&next, new_string, nlen)) < 0)
				goto fail;
			p = hit + olen;
			if (!replace_all)
				break;
		}
		if ((rc = al_buf_append(&next, p, (size_t)(end - p))) < 0)
			goto fail;
	}
	if (next.len > lim.file_max) {
		rc = -EFBIG;
		goto fail;
	}
	rc = replace_file(dirfd, base, next.data, next.len, &st);
	if (rc < 0)
		goto fail;
	rc = (int)(replace_all ? count : 1);
	goto done;
fail:
	write_fail(rc, err, errlen, "edit", path);
done:
	closep(&fd);
	closep(&dirfd);
	al_free(text);
	al_buf_free(&next);
	return rc;
}

/* ---- read ---- */

/* Length of the longest prefix of s[0..n) that is valid UTF-8, or n. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07;
		else
			return i;
		if (n - i <= k)
			return i;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		/* overlongs, surrogates, beyond U+10FFFF */
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += k + 1;
	}
	return n;
}

int al_fileops_read(struct al_fileops_root *root, const char *path,
		    const struct al_fileops_range *range, struct al_fileops_out *out,
		    const struct al_fileops_limits *limits, char *err, size_t errlen)
{
	struct al_fileops_limits lim;
	struct root_ent *ent;
	const char *rel;
	char chunk[65536];
	struct stat st;
	long start = 1, end = -1, line = 1;
	bool stop = false, ended_nl = true; /* an empty file has no partial last line */
	int fd = -1, rc;

	limits_init(&lim, limits);
	if (range) {
		start = range->start;
		end = range->end;
		if (start < 1 || (end != -1 && end < start)) {
			snprintf(err, errlen, "read: invalid view_range [%ld, %ld]", start, end);
			return -EINVAL;
		}
	}
	rc = pick(root, path, &ent, &rel);
	if (rc < 0)
		goto fail;
	fd = xopenat2(ent->fd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0, RES);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto fail;
	}
	out->size = (unsigned long long)st.st_size;
	while (!stop) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		size_t from = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		ended_nl = chunk[n - 1] == '\n';
		if (memchr(chunk, '\0', (size_t)n)) {
			snprintf(err, errlen, "read: binary file (contains NUL bytes): %s", path);
			rc = -EILSEQ;
			goto done;
		}
		/* Copy the bytes of lines start..end, counting newlines as we go. */
		for (size_t i = 0; i < (size_t)n && !stop; i++) {
			bool in = line >= start && (end == -1 || line <= end);
			if (chunk[i] != '\n' && i + 1 < (size_t)n)
				continue;
			if (in) {
				size_t take = i + 1 - from;
				if (out->text.len + take > lim.read_max) {
					take = lim.read_max - out->text.len;
					out->truncated = true;
					stop = true;
				}
				if ((rc = al_buf_append(&out->text, chunk + from, take)) < 0)
					goto fail;
			}
			if (chunk[i] == '\n') {
				line++;
				if (end != -1 && line > end)
					stop = true;
			}
			from = i + 1;
		}
	}
	/* Only meaningful when the whole file was read (stop is set early otherwise). */
	if (!stop && start > 1 && start > (ended_nl ? line - 1 : line)) {
		snprintf(err, errlen, "read: view_range starts at line %ld but %s has %ld lines",
			 start, path, ended_nl ? line - 1 : line);
		rc = -EINVAL;
		goto done;
	}
	if (out->truncated) {
		/* Cut back to a whole line when there is one, else to a whole character. */
		char *nl = out->text.len ? memrchr(out->text.data, '\n', out->text.len) : NULL;
		size_t keep =
		    nl ? (size_t)(nl - out->text.data) + 1
		       : utf8_valid_prefix((unsigned char *)out->text.data, out->text.len);
		out->text.len = keep;
		if (out->text.data)
			out->text.data[keep] = '\0';
	}
	if (utf8_valid_prefix((unsigned char *)out->text.data, out->text.len) != out->text.len) {
		snprintf(err, errlen, "read: not UTF-8 text: %s", path);
		rc = -EILSEQ;
		goto done;
	}
	for (size_t i = 0; i < out->text.len; i++)
		out->count += out->text.data[i] == '\n';
	if (out->text.len && out->text.data[out->text.len - 1] != '\n')
		out->count++;
	if (out->text.data == NULL && (rc = al_buf_append(&out->text, "", 0)) < 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	fail(rc, err, errlen, "read", path);
done:
	closep(&fd);
	if (rc < 0)
		al_fileops_out_free(out);
	return rc;
}

/* ---- directory walking (glob, grep) ---- */

struct walk {
	struct al_fileops_limits lim;
	size_t visited;
	bool truncated; /* walk_max reached */
	bool stop;	/* the visitor has enough */
	/* called for every entry; rel is relative to the walk's base */
	int (*visit_cb)(struct walk *w, int dirfd, const char *name, const char *rel,
			const struct stat *st);
	size_t max_depth;
	void *ctx;
};

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Visits the entries of dirfd (which it closes) in name order, depth first. */
static int walk_dir(struct walk *w, int dirfd, al_buf *rel, size_t depth)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, rel_len = rel->len;
	int rc = 0;

	if (d == NULL) {
		close(dirfd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (++w->visited > w->lim.walk_max) {
			w->truncated = true;
			break;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **nn = al_realloc(names, ncap * sizeof(*names));
			if (nn == NULL) {
				rc = -ENOMEM;
				goto done;
			}
			names = nn;
			cap = ncap;
		}
		if ((names[n] = al_strdup(de->d_name)) == NULL) {
			rc = -ENOMEM;
			goto done;
		}
		n++;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n && !w->stop; i++) {
		struct stat st;

		rel->len = rel_len;
		if ((rc = al_buf_appendf(rel, "%s%s", rel_len ? "/" : "", names[i])) < 0)
			goto done;
		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue; /* vanished meanwhile */
		if ((rc = w->visit_cb(w, dirfd, names[i], rel->data, &st)) < 0)
			goto done;
		/* Never follow a link while walking; skip .git (noise, and hooks live there). */
		if (S_ISDIR(st.st_mode) && strcmp(names[i], ".git") != 0 && depth + 1 < MAX_DEPTH &&
		    depth + 1 < w->max_depth) {
			int sub = xopenat2(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0,
					   RES_STRICT);
			if (sub >= 0 && (rc = walk_dir(w, sub, rel, depth + 1)) < 0)
				goto done;
		}
	}
done:
	rel->len = rel_len;
	if (rel->data)
		rel->data[rel_len] = '\0';
	for (size_t i = 0; i < n; i++)
		al_free(names[i]);
	al_free(names);
	closedir(d); /* closes dirfd */
	return rc;
}

/* ---- glob ---- */

struct glob_hit {
	char *rel;
	struct timespec mtime;
};

struct glob_ctx {
	char *segs[MAX_SEGS];
	size_t nsegs;
	struct glob_hit *hits;
	size_t n, cap;
};

/*
 * "**" matches any run of segments, every other pattern segment exactly one
 * (fnmatch). Greedy with a single backtrack point, as for '*' in a string:
 * O(np * ns). The recursive form tried every split for every "**" and a
 * pattern of many "**" against a deep path ran for hours (host-side DoS).
 */
static bool match_segs(char *const *pat, size_t np, char *const *seg, size_t ns)
{
	size_t p = 0, s = 0, star = SIZE_MAX, star_s = 0;

	while (s < ns) {
		if (p < np && strcmp(pat[p], "**") == 0) {
			star = p++;
			star_s = s;
		} else if (p < np && fnmatch(pat[p], seg[s], 0) == 0) {
			p++;
			s++;
		} else if (star != SIZE_MAX) {
			p = star + 1;
			s = ++star_s;
		} else {
			return false;
		}
	}
	while (p < np && strcmp(pat[p], "**") == 0)
		p++;
	return p == np;
}

/* Splits s in place on '/', dropping empty and "." segments. */
static size_t split_segs(char *s, char **segs, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *tok = strtok_r(s, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (strcmp(tok, ".") == 0)
			continue;
		if (n == max)
			return max + 1;
		segs[n++] = tok;
	}
	return n;
}

static int glob_visit_cb(struct walk *w, int dirfd, const char *name, const char *rel,
			 const struct stat *st)
{
	struct glob_ctx *g = w->ctx;
	char copy[4096];
	char *segs[MAX_SEGS + 1];
	size_t ns;

	if (strlen(rel) >= sizeof(copy))
		return 0;
	memcpy(copy, rel, strlen(rel) + 1);
	ns = split_segs(copy, segs, MAX_SEGS);
	if (ns > MAX_SEGS || !match_segs(g->segs, g->nsegs, segs, ns))
		return 0;
	if (w->lim.glob_files_only && !S_ISREG(st->st_mode))
		return 0;
	if (g->n == g->cap) {
		size_t ncap = g->cap ? g->cap * 2 : 64;
		struct glob_hit *nh = al_realloc(g->hits, ncap * sizeof(*nh));
		if (nh == NULL)
			return -ENOMEM;
		g->hits = nh;
		g->cap = ncap;
	}
	if ((g->hits[g->n].rel = al_strdup(rel)) == NULL)
		return -ENOMEM;
	g->hits[g->n].mtime = st->st_mtim;
	g->n++;
	return 0;
}

static int hit_cmp(const void *a, const void *b)
{
	const struct glob_hit *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
	return strcmp(x->rel, y->rel);
}

/* Opens the directory a glob/grep starts from and the display prefix for it. */
static int open_base(struct al_fileops_root *root, const char *path, int flags, int *fd,
		     al_buf *prefix)
{
	struct root_ent *ent;
	const char *rel = ".";
	int rc;

	if (path == NULL || path[0] == '\0')
		ent = &root->r[0];
	else if ((rc = pick(root, path, &ent, &rel)) < 0)
		return rc;
	*fd = xopenat2(ent->fd, rel, flags | O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0, RES);
	if (*fd < 0)
		return *fd;
	rc = display_path(prefix, ent, rel);
	if (rc < 0)
		closep(fd);
	return rc;
}

int al_fileops_glob(struct al_fileops_root *root, const char *pattern, const char *dir,
		    struct al_fileops_out *out, const struct al_fileops_limits *limits, char *err,
		    size_t errlen)
{
	struct walk w = {0};
	struct glob_ctx g = {0};
	al_buf prefix = {0}, rel = {0};
	char pat[4096];
	bool deep = false;
	int fd = -1, rc;

	limits_init(&w.lim, limits);
	if (pattern == NULL || pattern[0] == '\0' || pattern[0] == '/' ||
	    strlen(pattern) >= sizeof(pat)) {
		snprintf(err, errlen, "glob: the pattern must be a non-empty relative pattern");
		return -EINVAL;
	}
	memcpy(pat, pattern, strlen(pattern) + 1);
	g.nsegs = split_segs(pat, g.segs, MAX_SEGS);
	if (g.nsegs == 0 || g.nsegs > MAX_SEGS) {
		snprintf(err, errlen, "glob: bad pattern");
		return -EINVAL;
	}
	for (size_t i = 0; i < g.nsegs; i++) {
		if (strcmp(g.segs[i], "..") == 0) {
			snprintf(err, errlen, "glob: '..' is not allowed in a pattern");
			return -EINVAL;
		}
		deep |= strstr(g.segs[i], "**") != NULL;
	}
	rc = open_base(root, dir, O_DIRECTORY, &fd, &prefix);
	if (rc < 0) {
		fail(rc, err, errlen, "glob", dir ? dir : ".");
		goto done;
	}
	/* Without "**" nothing deeper than the pattern can match: do not descend. */
	w.max_depth = deep ? MAX_DEPTH : g.nsegs;
	w.visit_cb = glob_visit_cb;
	w.ctx = &g;
	rc = al_buf_append(&rel, "", 0);
	if (rc == 0)
		rc = walk_dir(&w, fd, &rel, 0);
	fd = -1; /* walk_dir closed it */
	if (rc < 0) {
		fail(rc, err, errlen, "glob", dir ? dir : ".");
		goto done;
	}
	if (g.n > 1)
		qsort(g.hits, g.n, sizeof(*g.hits), hit_cmp);
	for (size_t i = 0; i < g.n && i < w.lim.glob_max; i++) {
		rc =
		    al_buf_appendf(&out->text, "%s/%s\n",
				   strcmp(prefix.data, "/") == 0 ? "" : prefix.data, g.hits[i].rel);
		if (rc < 0)
			goto done;
	}
	if (out->text.data == NULL && (rc = al_buf_append(&out->text, "", 0)) < 0)
		goto done;
	out->count = g.n;
	out->truncated = w.truncated || g.n > w.lim.glob_max;
	rc = 0;
done:
	closep(&fd);
	for (size_t i = 0; i < g.n; i++)
		al_free(g.hits[i].rel);
	al_free(g.hits);
	al_buf_free(&prefix);
	al_buf_free(&rel);
	if (rc < 0)
		al_fileops_out_free(out);
	return rc;
}

/* ---- grep ---- */

struct grep_ctx {
	regex_t re;
	const char *prefix; /* display path of the base */
	struct al_fileops_out *out;
};

/* Greps one open regular file; `name` is how it is shown. */
static int grep_fd(struct walk *w, struct grep_ctx *g, int fd, const char *name)
{
	char *text = NULL;
	size_t len = 0, lineno = 0;
	int rc = read_all(fd, w->lim.file_max, &text, &len);

	if (rc == -EFBIG)
		return 0; /* too big to search: skipped, as documented */
	if (rc < 0)
		return rc;
	if (memchr(text, '\0', len))
		goto done; /* binary */
	for (char *p = text, *end = text + len; p < end && !w->stop;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		size_t n = (size_t)(eol - p);

		lineno++;
		if (n <= w->lim.grep_line_max) {
			char save = *eol;
			*eol = '\0'; /* text is NUL-terminated, so eol == end is writable */
			if (regexec(&g->re, p, 0, NULL, 0) == 0) {
				size_t before = g->out->text.len;
				rc = al_buf_appendf(&g->out->text, "%s:%zu:%s\n", name, lineno, p);
				if (rc < 0) {
					*eol = save;
					goto done;
				}
				if (g->out->text.len > w->lim.grep_max) {
					g->out->text.len = before;
					g->out->text.data[before] = '\0';
					g->out->truncated = true;
					w->stop = true;
				} else {
					g->out->count++;
				}
			}
			*eol = save;
		}
		p = eol + 1;
	}
done:
	al_free(text);
	return rc;
}

static int grep_visit_cb(struct walk *w, int dirfd, const char *name, const char *rel,
			 const struct stat *st)
{
	struct grep_ctx *g = w->ctx;
	char shown[8192];
	int fd, rc;

	if (!S_ISREG(st->st_mode) || (size_t)st->st_size > w->lim.file_max)
		return 0;
	fd = xopenat2(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0, RES_STRICT);
	if (fd < 0)
		return 0; /* unreadable or swapped for a link: skip */
	snprintf(shown, sizeof(shown), "%s/%s", strcmp(g->prefix, "/") == 0 ? "" : g->prefix, rel);
	rc = grep_fd(w, g, fd, shown);
	close(fd);
	return rc;
}

/*
 * glibc's regex is a backtracking matcher once back-references appear
 * ("(.*)(.*)\2\1x" takes more than 10 s on a 100-byte line) and regcomp
 * copies a subexpression once per count of a {n,m}, multiplied through
 * nesting ("((a{1,100}){1,100}){1,100}" took 1.2 GB). The pattern is the
 * agent's and runs on the host, over every line of the workspace: refuse
 * back-references, and intervals whose bounds multiply (over-approximating
 * nesting) past REGEX_DUP_BUDGET. NULL when acceptable, else why not.
 */
#define REGEX_DUP_BUDGET 10000u

static const char *regex_too_costly(const char *pat)
{
	unsigned long long product = 1;

	for (const char *p = pat; *p; p++) {
		if (*p == '\\') {
			if (p[1] >= '1' && p[1] <= '9')
				return "back-references are not supported";
			if (p[1] == '\0')
				break;
			p++;
			continue;
		}
		if (*p != '{')
			continue;
		unsigned long long lo = 0, hi;
		const char *q = p + 1;
		int digits = 0;
		while (*q >= '0' && *q <= '9' && lo <= REGEX_DUP_BUDGET)
			lo = lo * 10 + (unsigned)(*q++ - '0'), digits++;
		hi = lo;
		if (*q == ',') {
			q++;
			if (*q >= '0' && *q <= '9') {
				hi = 0;
				while (*q >= '0' && *q <= '9' && hi <= REGEX_DUP_BUDGET)
					hi = hi * 10 + (unsigned)(*q++ - '0');
			} else {
				hi = lo + 1; /* {n,}: n copies and a star */
			}
		}
		if (!digits && *q != '}')
			continue;
		product *= hi > 1 ? hi : 1;
		if (product > REGEX_DUP_BUDGET)
			return "repetition counts too large";
	}
	return NULL;
}

int al_fileops_grep(struct al_fileops_root *root, const char *pattern, const char *path,
		    struct al_fileops_out *out, const struct al_fileops_limits *limits, char *err,
		    size_t errlen)
{
	struct walk w = {0};
	struct grep_ctx g = {.out = out};
	al_buf prefix = {0}, rel = {0};
	struct stat st;
	bool compiled = false;
	int fd = -1, rc;

	limits_init(&w.lim, limits);
	if (pattern == NULL) {
		snprintf(err, errlen, "grep: no pattern");
		return -EINVAL;
	}
	const char *costly = regex_too_costly(pattern);
	if (costly) {
		snprintf(err, errlen, "grep: regular expression refused: %s", costly);
		return -EINVAL;
	}
	rc = regcomp(&g.re, pattern, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		char msg[128];
		regerror(rc, &g.re, msg, sizeof(msg));
		snprintf(err, errlen, "grep: bad regular expression: %s", msg);
		return -EINVAL;
	}
	compiled = true;
	rc = open_base(root, path, 0, &fd, &prefix);
	if (rc < 0)
		goto fail;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	g.prefix = prefix.data;
	w.ctx = &g;
	w.visit_cb = grep_visit_cb;
	w.max_depth = MAX_DEPTH;
	if (S_ISREG(st.st_mode)) {
		rc = grep_fd(&w, &g, fd, prefix.data);
	} else if (S_ISDIR(st.st_mode)) {
		rc = al_buf_append(&rel, "", 0);
		if (rc == 0)
			rc = walk_dir(&w, fd, &rel, 0);
		fd = -1; /* walk_dir closed it */
		if (w.truncated)
			out->truncated = true;
	} else {
		rc = -EINVAL;
	}
	if (rc < 0)
		goto fail;
	if (out->text.data == NULL && (rc = al_buf_append(&out->text, "", 0)) < 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	fail(rc, err, errlen, "grep", path ? path : ".");
	al_fileops_out_free(out);
done:
	closep(&fd);
	if (compiled)
		regfree(&g.re);
	al_buf_free(&prefix);
	al_buf_free(&rel);
	return rc;
}
