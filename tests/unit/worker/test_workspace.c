/*
 * test_workspace.c - deleting session workspaces (workspace.h): the walk
 * never follows a link out of the workspace, empties directories without
 * permissions, and the workspace_ttl sweep keeps what is recent, in use, not
 * a workspace, or the state directory.
 */
#include "unit/unit.h"

#include "worker/workspace.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char workdir[PATH_MAX], outside[PATH_MAX];

static void path(char *out, const char *a, const char *b)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", a, b);

	AL_ASSERT(n > 0 && n < PATH_MAX);
}

static void put(const char *dir, const char *name)
{
	char p[PATH_MAX];
	int fd;

	path(p, dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	AL_ASSERT(fd >= 0);
	AL_ASSERT_INT_EQ(write(fd, "x\n", 2), 2);
	close(fd);
}

static int exists(const char *dir, const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	path(p, dir, name);
	return lstat(p, &st) == 0;
}

/* A workspace as an agent might leave it: files, a deep tree, links out, a locked dir. */
static void make_ws(const char *id)
{
	char ws[PATH_MAX], p[PATH_MAX], q[PATH_MAX];

	path(ws, workdir, id);
	AL_ASSERT_INT_EQ(mkdir(ws, 0700), 0);
	put(ws, "notes.txt");
	path(p, ws, "a");
	AL_ASSERT_INT_EQ(mkdir(p, 0700), 0);
	path(q, p, "b");
	AL_ASSERT_INT_EQ(mkdir(q, 0700), 0);
	put(q, "deep.txt");
	path(p, ws, "link-to-outside");
	AL_ASSERT_INT_EQ(symlink(outside, p), 0);
	path(p, ws, "link-to-file");
	path(q, outside, "keep.txt");
	AL_ASSERT_INT_EQ(symlink(q, p), 0);
	path(p, ws, "locked");
	AL_ASSERT_INT_EQ(mkdir(p, 0700), 0);
	put(p, "inside.txt");
	AL_ASSERT_INT_EQ(chmod(p, 0), 0);
}

static void setup(struct al_worker_config *cfg)
{
	snprintf(workdir, sizeof(workdir), "%s/work", al_test_tmpdir());
	snprintf(outside, sizeof(outside), "%s/outside", al_test_tmpdir());
	AL_ASSERT_INT_EQ(mkdir(workdir, 0711), 0);
	AL_ASSERT_INT_EQ(mkdir(outside, 0700), 0);
	put(outside, "keep.txt");
	al_worker_config_init(cfg);
	cfg->workdir = workdir;
}

static void age(const char *id, time_t secs)
{
	char p[PATH_MAX];
	struct timespec ts[2];

	path(p, workdir, id);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - secs;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	AL_ASSERT_INT_EQ(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

AL_TEST(workspace_remove_deletes_the_tree_and_never_follows_links)
{
	struct al_worker_config cfg;

	setup(&cfg);
	make_ws("sesn_1");
	AL_ASSERT_INT_EQ(al_workspace_remove(&cfg, "sesn_1"), 1);
	AL_ASSERT(!exists(workdir, "sesn_1"));
	/* The links went, their targets stayed. */
	AL_ASSERT(exists(outside, "keep.txt"));
	/* Gone already: nothing to do. */
	AL_ASSERT_INT_EQ(al_workspace_remove(&cfg, "sesn_1"), 0);
	/* Not a session id: refused, never a path. */
	AL_ASSERT_INT_EQ(al_workspace_remove(&cfg, ".."), -EINVAL);
	AL_ASSERT_INT_EQ(al_workspace_remove(&cfg, "a/b"), -EINVAL);
	AL_ASSERT_INT_EQ(al_workspace_remove(&cfg, ""), -EINVAL);
	AL_ASSERT_INT_EQ(al_workspace_remove(&cfg, NULL), -EINVAL);
}

AL_TEST(workspace_remove_refuses_a_link_planted_at_the_name)
{
	struct al_worker_config cfg;
	char p[PATH_MAX];

	setup(&cfg);
	path(p, workdir, "sesn_link");
	AL_ASSERT_INT_EQ(symlink(outside, p), 0);
	AL_ASSERT_INT_EQ(al_workspace_remove(&cfg, "sesn_link"), -ENOTDIR);
	AL_ASSERT(exists(outside, "keep.txt"));
	AL_ASSERT(exists(workdir, "sesn_link"));
}

static int in_use_cb(const char *id, void *ud)
{
	(void)ud;
	return strcmp(id, "sesn_busy") == 0;
}

static void removed_cb(const char *id, int rc, void *ud)
{
	int *n = ud;

	(void)id;
	if (rc > 0)
		(*n)++;
}

AL_TEST(workspace_sweep_deletes_only_old_unused_workspaces)
{
	struct al_worker_config cfg;
	char state[PATH_MAX];
	int told = 0;

	setup(&cfg);
	make_ws("sesn_old");
	age("sesn_old", 3600);
	make_ws("sesn_new");
	age("sesn_new", 10);
	make_ws("sesn_busy");
	age("sesn_busy", 3600);
	/* A state dir inside the workdir with an id-like name, and a non-id name. */
	path(state, workdir, "state");
	AL_ASSERT_INT_EQ(mkdir(state, 0700), 0);
	put(state, "journal.db");
	age("state", 3600);
	cfg.state_dir = state;
	make_ws("not.an.id");
	age("not.an.id", 3600);
	put(workdir, "plainfile");
	age("plainfile", 3600);

	AL_ASSERT_INT_EQ(al_workspace_sweep(&cfg, 600, time(NULL), in_use_cb, removed_cb, &told),
			 1);
	AL_ASSERT_INT_EQ(told, 1);
	AL_ASSERT(!exists(workdir, "sesn_old"));
	AL_ASSERT(exists(workdir, "sesn_new"));
	AL_ASSERT(exists(workdir, "sesn_busy"));
	AL_ASSERT(exists(state, "journal.db"));
	AL_ASSERT(exists(workdir, "not.an.id"));
	AL_ASSERT(exists(workdir, "plainfile"));
	AL_ASSERT(exists(outside, "keep.txt"));
	/* A touch makes an old workspace recent again. */
	age("sesn_busy", 3600);
	AL_ASSERT_INT_EQ(al_workspace_touch(&cfg, "sesn_busy"), 0);
	AL_ASSERT_INT_EQ(al_workspace_sweep(&cfg, 600, time(NULL), NULL, NULL, NULL), 0);
	AL_ASSERT(exists(workdir, "sesn_busy"));
	AL_ASSERT_INT_EQ(al_workspace_sweep(&cfg, 5, time(NULL) + 60, NULL, NULL, NULL), 2);
	AL_ASSERT(!exists(workdir, "sesn_busy") && !exists(workdir, "sesn_new"));
	AL_ASSERT(exists(state, "journal.db"));
}
