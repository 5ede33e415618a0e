/*
 * workspace.c - deleting session workspaces (workspace.h; the policy is in
 * docs/OPERATIONS.md, "Workspaces").
 *
 * A workspace was written by the agent through its sandbox: it may hold
 * symbolic links to anywhere, directories without permissions, very deep
 * trees, and (with a careless backend) a mount point. The walk therefore
 * goes by directory descriptors (openat/unlinkat with O_NOFOLLOW: a link is
 * removed, never followed, and no path is resolved twice), stays on the
 * workspace's file system, and gives up below a depth rather than exhaust
 * descriptors; what it cannot delete it leaves and reports.
 */
#include "worker/workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WS_ID_MAX    128u
#define RM_DEPTH_MAX 256u

int al_workspace_id_ok(const char *id)
{
	size_t n;

	if (id == NULL)
		return 0;
	for (n = 0; id[n]; n++)
		if (n >= WS_ID_MAX ||
		    !((id[n] >= 'a' && id[n] <= 'z') || (id[n] >= 'A' && id[n] <= 'Z') ||
		      (id[n] >= '0' && id[n] <= '9') || id[n] == '_' || id[n] == '-'))
			return 0;
	return n > 0;
}

/* Deletes the directory `name` in dfd and everything beneath it (on device dev). */
static int rm_tree_at(int dfd, const char *name, dev_t dev, unsigned depth)
{
	struct dirent *e;
	struct stat st;
	DIR *d = NULL;
	int fd, rc = 0;

	if (depth > RM_DEPTH_MAX)
		return -ELOOP;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		/* A worker not running as root: a directory the agent locked (chmod 0) is
		 * still its own to unlock. fchmodat without AT_SYMLINK_NOFOLLOW cannot
		 * reach through a link here: the entry was lstat'ed as a directory. */
		if (fchmodat(dfd, name, 0700, 0) == 0)
			fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (st.st_dev != dev) {
		close(fd);
		return -EXDEV; /* a mount point: not ours to empty */
	}
	if ((d = fdopendir(fd)) == NULL) {
		rc = -errno;
		close(fd);
		return rc;
	}
	for (;;) {
		errno = 0;
		if ((e = readdir(d)) == NULL) {
			if (errno != 0)
				rc = -errno;
			break;
		}
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			rc = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode))
			rc = rm_tree_at(dirfd(d), e->d_name, dev, depth + 1);
		else if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
			rc = -errno;
		if (rc < 0)
			break;
	}
	closedir(d);
	if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -errno;
	return rc;
}

/* Opens the workdir; its device in *dev. */
static int open_workdir(const struct al_worker_config *cfg, dev_t *dev)
{
	struct stat st;
	int fd, rc;

	if (cfg->workdir == NULL)
		return -EINVAL;
	fd = open(cfg->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	*dev = st.st_dev;
	return fd;
}

/* Deletes the workspace `id` in the open workdir wfd: 1, 0 (none), -errno. */
static int remove_at(int wfd, dev_t dev, const char *id)
{
	struct stat st;
	int rc;

	if (fstatat(wfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR; /* tools.c never makes one; leave what it did not make */
	if ((rc = rm_tree_at(wfd, id, dev, 0)) < 0)
		return rc;
	return 1;
}

int al_workspace_remove(const struct al_worker_config *cfg, const char *session_id)
{
	dev_t dev;
	int wfd, rc;

	if (!al_workspace_id_ok(session_id))
		return -EINVAL;
	if ((wfd = open_workdir(cfg, &dev)) < 0)
		return wfd == -ENOENT ? 0 : wfd;
	rc = remove_at(wfd, dev, session_id);
	close(wfd);
	return rc;
}

int al_workspace_touch(const struct al_worker_config *cfg, const char *session_id)
{
	dev_t dev;
	int wfd, rc = 0;

	if (!al_workspace_id_ok(session_id))
		return -EINVAL;
	if ((wfd = open_workdir(cfg, &dev)) < 0)
		return wfd;
	if (utimensat(wfd, session_id, NULL, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
		rc = -errno;
	close(wfd);
	return rc;
}

/* Whether the directory `name` in wfd is `path` (the state dir or the audit log's). */
static int is_dir_of(int wfd, const char *name, const char *path)
{
	struct stat a, b;

	return path != NULL && fstatat(wfd, name, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
	       stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int audit_dir(const struct al_worker_config *cfg, char *out, size_t len)
{
	const char *slash = cfg->audit_path ? strrchr(cfg->audit_path, '/') : NULL;
	size_t n;

	if (slash == NULL || slash == cfg->audit_path)
		return 0;
	n = (size_t)(slash - cfg->audit_path);
	if (n >= len)
		return 0;
	memcpy(out, cfg->audit_path, n);
	out[n] = '\0';
	return 1;
}

int al_workspace_sweep(const struct al_worker_config *cfg, unsigned ttl_s, time_t now,
		       int (*in_use)(const char *session_id, void *ud),
		       void (*removed)(const char *session_id, int rc, void *ud), void *ud)
{
	char adir[PATH_MAX];
	int have_adir = audit_dir(cfg, adir, sizeof(adir));
	struct dirent *e;
	struct stat st;
	DIR *d;
	dev_t dev;
	int wfd, dfd, rc, n = 0;

	if ((wfd = open_workdir(cfg, &dev)) < 0)
		return wfd;
	/* A second descriptor for the listing: closedir closes it, wfd stays ours. */
	if ((dfd = dup(wfd)) < 0 || (d = fdopendir(dfd)) == NULL) {
		rc = -errno;
		if (dfd >= 0)
			close(dfd);
		close(wfd);
		return rc;
	}
	while ((e = readdir(d)) != NULL) {
		if (!al_workspace_id_ok(e->d_name) ||
		    fstatat(wfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (st.st_mtime > now - (time_t)ttl_s)
			continue;
		if (is_dir_of(wfd, e->d_name, cfg->state_dir) ||
		    (have_adir && is_dir_of(wfd, e->d_name, adir)))
			continue;
		if (in_use != NULL && in_use(e->d_name, ud))
			continue;
		rc = remove_at(wfd, dev, e->d_name);
		if (rc > 0)
			n++;
		if (removed != NULL)
			removed(e->d_name, rc, ud);
	}
	closedir(d);
	close(wfd);
	return n;
}
