/*
 * test_fileops.c - the workspace file tools against real escape attempts:
 * `..`, absolute paths, planted symlinks, magic links, hard links, a rename
 * race, and the .git protections; plus the tools' own semantics and limits.
 */
#include "sandbox/fileops.h"
#include "unit/unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"

static char ws[600], outside[600];

static void put(const char *dir, const char *rel, const char *text)
{
	char p[1024];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	AL_ASSERT(fd >= 0);
	AL_ASSERT_INT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
	close(fd);
}

/* The file's content, or "(absent)"; static buffer. */
static const char *get(const char *dir, const char *rel)
{
	static char buf[4096];
	char p[1024];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return "(absent)";
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	AL_ASSERT_NOT_NULL(d);
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void sub(char *out, size_t len, const char *dir, const char *rel)
{
	snprintf(out, len, "%s/%s", dir, rel);
}

static struct al_fileops_root *setup(void)
{
	struct al_fileops_root *root = NULL;
	static char real[PATH_MAX];

	/* realpath: TMPDIR may itself sit behind a symlink */
	AL_ASSERT_NOT_NULL(realpath(al_test_tmpdir(), real));
	AL_ASSERT(strlen(real) < 512);
	snprintf(ws, sizeof(ws), "%.512s/ws", real);
	snprintf(outside, sizeof(outside), "%.512s/outside", real);
	AL_ASSERT_INT_EQ(mkdir(ws, 0755), 0);
	AL_ASSERT_INT_EQ(mkdir(outside, 0755), 0);
	put(outside, "secret", "top secret");
	put(ws, "a.txt", "one\ntwo\nthree\n");
	AL_ASSERT_INT_EQ(al_fileops_open_root(ws, &root), 0);
	return root;
}

AL_TEST(sandbox_fileops_dotdot_and_absolute_escapes)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_out out = {0};
	char err[256] = "", p[1024];

	AL_ASSERT_INT_EQ(
	    al_fileops_read(root, "../../etc/passwd", NULL, &out, NULL, err, sizeof(err)), -EXDEV);
	AL_ASSERT(strstr(err, "path escapes the workspace") != NULL);
	AL_ASSERT_NULL(out.text.data);
	AL_ASSERT_INT_EQ(
	    al_fileops_read(root, "../outside/secret", NULL, &out, NULL, err, sizeof(err)), -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_read(root, "/etc/passwd", NULL, &out, NULL, err, sizeof(err)),
			 -EXDEV);
	/* A sibling whose name starts with the workspace's is not inside it. */
	snprintf(p, sizeof(p), "%s-evil/x", ws);
	AL_ASSERT_INT_EQ(al_fileops_read(root, p, NULL, &out, NULL, err, sizeof(err)), -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "../outside/new", "x", 1, NULL, err, sizeof(err)),
			 -EXDEV);
	AL_ASSERT_STR_EQ(get(outside, "new"), "(absent)");
	snprintf(p, sizeof(p), "%s/secret", outside);
	AL_ASSERT_INT_EQ(al_fileops_write(root, p, "x", 1, NULL, err, sizeof(err)), -EXDEV);
	AL_ASSERT_STR_EQ(get(outside, "secret"), "top secret");
	/* `..` that stays inside is fine; so is an absolute path under the root. */
	sub(p, sizeof(p), ws, "d");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	AL_ASSERT_INT_EQ(al_fileops_read(root, "d/../a.txt", NULL, &out, NULL, err, sizeof(err)),
			 0);
	AL_ASSERT_STR_EQ(out.text.data, "one\ntwo\nthree\n");
	al_fileops_out_free(&out);
	sub(p, sizeof(p), ws, "a.txt");
	AL_ASSERT_INT_EQ(al_fileops_read(root, p, NULL, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(out.count, 3);
	al_fileops_out_free(&out);
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_planted_symlinks)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_out out = {0};
	char err[256] = "", p[1024];

	/* An absolute symlink to /etc, a relative one climbing out, one in a middle dir. */
	sub(p, sizeof(p), ws, "etc");
	AL_ASSERT_INT_EQ(symlink("/etc", p), 0);
	sub(p, sizeof(p), ws, "up");
	AL_ASSERT_INT_EQ(symlink("../outside", p), 0);
	sub(p, sizeof(p), ws, "a");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	sub(p, sizeof(p), ws, "a/b");
	AL_ASSERT_INT_EQ(symlink(outside, p), 0);
	/* An in-workspace symlink is followed for reading. */
	sub(p, sizeof(p), ws, "alias.txt");
	AL_ASSERT_INT_EQ(symlink("a.txt", p), 0);

	AL_ASSERT_INT_EQ(al_fileops_read(root, "etc/passwd", NULL, &out, NULL, err, sizeof(err)),
			 -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_read(root, "up/secret", NULL, &out, NULL, err, sizeof(err)),
			 -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_read(root, "a/b/secret", NULL, &out, NULL, err, sizeof(err)),
			 -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "etc/evil", "x", 1, NULL, err, sizeof(err)),
			 -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "a/b/new", "x", 1, NULL, err, sizeof(err)), -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "a/b/deep/new", "x", 1, NULL, err, sizeof(err)),
			 -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "up/secret", "x", 1, NULL, err, sizeof(err)),
			 -EXDEV);
	AL_ASSERT_INT_EQ(
	    al_fileops_edit(root, "up/secret", "top", "no", false, NULL, err, sizeof(err)), -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_grep(root, "secret", "up", &out, NULL, err, sizeof(err)),
			 -EXDEV);
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "*", "a/b", &out, NULL, err, sizeof(err)), -EXDEV);
	/* Writing to a symlink itself is refused, not followed. */
	AL_ASSERT_INT_EQ(al_fileops_write(root, "alias.txt", "x", 1, NULL, err, sizeof(err)),
			 -ELOOP);
	AL_ASSERT(strstr(err, "symbolic link") != NULL);
	AL_ASSERT_INT_EQ(count_entries(outside), 1);
	AL_ASSERT_STR_EQ(get(outside, "secret"), "top secret");
	AL_ASSERT_STR_EQ(get(ws, "a.txt"), "one\ntwo\nthree\n");

	AL_ASSERT_INT_EQ(al_fileops_read(root, "alias.txt", NULL, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(out.text.data, "one\ntwo\nthree\n");
	al_fileops_out_free(&out);
	/* The walkers do not follow links out either. */
	AL_ASSERT_INT_EQ(al_fileops_grep(root, "secret", NULL, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(out.text.data, "");
	al_fileops_out_free(&out);
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "**/secret", NULL, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(out.text.data, "");
	al_fileops_out_free(&out);
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_magic_links)
{
	struct al_fileops_root *root = setup(), *proc = NULL;
	struct al_fileops_out out = {0};
	char err[256] = "", p[1024];
	int rc;

	sub(p, sizeof(p), ws, "p");
	AL_ASSERT_INT_EQ(symlink("/proc/self/root", p), 0);
	AL_ASSERT_INT_EQ(al_fileops_read(root, "p/etc/passwd", NULL, &out, NULL, err, sizeof(err)),
			 -EXDEV);
	/* Even with /proc/self as the root, its magic links lead nowhere. */
	AL_ASSERT_INT_EQ(al_fileops_open_root("/proc/self", &proc), 0);
	rc = al_fileops_read(proc, "root/etc/passwd", NULL, &out, NULL, err, sizeof(err));
	AL_ASSERT(rc == -ELOOP || rc == -EXDEV);
	rc = al_fileops_read(proc, "cwd/a.txt", NULL, &out, NULL, err, sizeof(err));
	AL_ASSERT(rc == -ELOOP || rc == -EXDEV);
	rc = al_fileops_read(proc, "fd/0", NULL, &out, NULL, err, sizeof(err));
	AL_ASSERT(rc == -ELOOP || rc == -EXDEV);
	AL_ASSERT_NULL(out.text.data);
	al_fileops_close_root(proc);
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_hard_links_refused_for_writes)
{
	struct al_fileops_root *root = setup();
	char err[256] = "", from[1024], to[1024];

	sub(from, sizeof(from), outside, "secret");
	sub(to, sizeof(to), ws, "hl");
	AL_ASSERT_INT_EQ(link(from, to), 0);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "hl", "pwned", 5, NULL, err, sizeof(err)), -EMLINK);
	AL_ASSERT(strstr(err, "hard link") != NULL);
	AL_ASSERT_INT_EQ(al_fileops_edit(root, "hl", "top", "pwned", false, NULL, err, sizeof(err)),
			 -EMLINK);
	AL_ASSERT_STR_EQ(get(outside, "secret"), "top secret");
	AL_ASSERT_STR_EQ(get(ws, "hl"), "top secret");
	al_fileops_close_root(root);
}

static _Atomic int race_stop;

/* Swaps ws/d (a real directory) and ws/l (a symlink to outside) atomically, forever. */
static void *swapper(void *arg)
{
	int wsfd = *(int *)arg;

	while (!atomic_load(&race_stop))
		renameat2(wsfd, "d", wsfd, "l", RENAME_EXCHANGE);
	return NULL;
}

AL_TEST(sandbox_fileops_rename_race_never_writes_outside)
{
	struct al_fileops_root *root = setup();
	char err[256] = "", p[1024];
	pthread_t t;
	int wsfd, ok = 0, refused = 0;

	sub(p, sizeof(p), ws, "d");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	sub(p, sizeof(p), ws, "l");
	AL_ASSERT_INT_EQ(symlink(outside, p), 0);
	wsfd = open(ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	AL_ASSERT(wsfd >= 0);
	AL_ASSERT_INT_EQ(pthread_create(&t, NULL, swapper, &wsfd), 0);
	for (int i = 0; i < 240; i++) {
		const char *path = (i % 3 == 0) ? "d/f" : (i % 3 == 1) ? "d/sub/g" : "l/h";
		int rc = al_fileops_write(root, path, "x", 1, NULL, err, sizeof(err));
		if (rc == 0)
			ok++;
		else
			refused++;
		if (i % 3 == 0)
			al_fileops_edit(root, "d/f", "x", "y", false, NULL, err, sizeof(err));
	}
	atomic_store(&race_stop, 1);
	pthread_join(t, NULL);
	close(wsfd);
	/* Both outcomes happened (the race was real), and nothing landed outside. */
	AL_ASSERT(ok > 0);
	AL_ASSERT(refused > 0);
	AL_ASSERT_INT_EQ(count_entries(outside), 1);
	AL_ASSERT_STR_EQ(get(outside, "secret"), "top secret");
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_write_atomic_and_creates_parents)
{
	struct al_fileops_root *root = setup();
	char err[256] = "", p[1024];
	struct stat st;
	struct rlimit old, small;

	AL_ASSERT_INT_EQ(al_fileops_write(root, "x/y/z.txt", "hello", 5, NULL, err, sizeof(err)),
			 0);
	AL_ASSERT_STR_EQ(get(ws, "x/y/z.txt"), "hello");
	/* An existing file keeps its mode. */
	sub(p, sizeof(p), ws, "a.txt");
	AL_ASSERT_INT_EQ(chmod(p, 0640), 0);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "a.txt", "new", 3, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(stat(p, &st), 0);
	AL_ASSERT_INT_EQ(st.st_mode & 07777, 0640);
	AL_ASSERT_STR_EQ(get(ws, "a.txt"), "new");
	AL_ASSERT_INT_EQ(al_fileops_write(root, "x", "no", 2, NULL, err, sizeof(err)), -EISDIR);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "x/", "no", 2, NULL, err, sizeof(err)), -EISDIR);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "a.txt/q", "no", 2, NULL, err, sizeof(err)),
			 -ENOTDIR);

	/* A write that fails half-way (the file size limit) leaves the old file and no temp. */
	AL_ASSERT_INT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = (struct rlimit){16, old.rlim_max};
	signal(SIGXFSZ, SIG_IGN);
	AL_ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "a.txt", "0123456789012345678901234567890123456789",
					  40, NULL, err, sizeof(err)),
			 -EFBIG);
	AL_ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	AL_ASSERT_STR_EQ(get(ws, "a.txt"), "new");
	AL_ASSERT_INT_EQ(count_entries(ws), 2); /* a.txt and x */
	/* The content limit is checked before anything is created. */
	{
		struct al_fileops_limits lim = {.file_max = 4};
		AL_ASSERT_INT_EQ(al_fileops_write(root, "big", "12345", 5, &lim, err, sizeof(err)),
				 -EFBIG);
		AL_ASSERT_INT_EQ(count_entries(ws), 2);
	}
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_git_hooks_and_config_read_only)
{
	struct al_fileops_root *root = setup();
	char err[256] = "", p[1024];

	sub(p, sizeof(p), ws, ".git");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	sub(p, sizeof(p), ws, ".git/hooks");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	put(ws, ".git/config", "[core]\n");
	AL_ASSERT_INT_EQ(al_fileops_write(root, ".git/hooks/pre-commit", "#!/bin/sh\n", 10, NULL,
					  err, sizeof(err)),
			 -EACCES);
	AL_ASSERT(strstr(err, "read-only") != NULL);
	AL_ASSERT_INT_EQ(al_fileops_write(root, ".git/config", "x", 1, NULL, err, sizeof(err)),
			 -EACCES);
	AL_ASSERT_INT_EQ(al_fileops_edit(root, ".git/config", "[core]", "[alias]", false, NULL, err,
					 sizeof(err)),
			 -EACCES);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "./.git//hooks/x", "x", 1, NULL, err, sizeof(err)),
			 -EACCES);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "vendor/.git/hooks/post-checkout", "x", 1, NULL,
					  err, sizeof(err)),
			 -EACCES);
	/* Aliases: a symlink to the hooks directory, a detour through `..`. */
	sub(p, sizeof(p), ws, "h");
	AL_ASSERT_INT_EQ(symlink(".git/hooks", p), 0);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "h/pre-push", "x", 1, NULL, err, sizeof(err)),
			 -EACCES);
	sub(p, sizeof(p), ws, "g");
	AL_ASSERT_INT_EQ(symlink(".git", p), 0);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "g/config", "x", 1, NULL, err, sizeof(err)),
			 -EACCES);
	AL_ASSERT_INT_EQ(count_entries(p), 2); /* config, hooks */
	sub(p, sizeof(p), ws, ".git/hooks");
	AL_ASSERT_INT_EQ(count_entries(p), 0);
	AL_ASSERT_STR_EQ(get(ws, ".git/config"), "[core]\n");
	/* Other files in .git stay writable. */
	AL_ASSERT_INT_EQ(al_fileops_write(root, ".git/HEAD", "ref\n", 4, NULL, err, sizeof(err)),
			 0);
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_read_only_extra_root)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_out out = {0};
	char err[256] = "", p[1024];

	AL_ASSERT_INT_EQ(al_fileops_add_root(root, outside, true), 0);
	sub(p, sizeof(p), outside, "secret");
	AL_ASSERT_INT_EQ(al_fileops_read(root, p, NULL, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(out.text.data, "top secret");
	al_fileops_out_free(&out);
	AL_ASSERT_INT_EQ(al_fileops_write(root, p, "x", 1, NULL, err, sizeof(err)), -EROFS);
	AL_ASSERT(strstr(err, "read-only root") != NULL);
	AL_ASSERT_INT_EQ(al_fileops_edit(root, p, "top", "x", false, NULL, err, sizeof(err)),
			 -EROFS);
	sub(p, sizeof(p), outside, "new");
	AL_ASSERT_INT_EQ(al_fileops_write(root, p, "x", 1, NULL, err, sizeof(err)), -EROFS);
	AL_ASSERT_STR_EQ(get(outside, "secret"), "top secret");
	AL_ASSERT_INT_EQ(count_entries(outside), 1);
	/* The workspace still wins for relative paths, and is writable. */
	AL_ASSERT_INT_EQ(al_fileops_write(root, "w", "x", 1, NULL, err, sizeof(err)), 0);
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_read_ranges_limits_and_encoding)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_out out = {0};
	struct al_fileops_range r = {2, 3};
	struct al_fileops_limits lim = {.read_max = 10};
	char err[256] = "", p[1024];

	AL_ASSERT_INT_EQ(al_fileops_read(root, "a.txt", &r, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(out.text.data, "two\nthree\n");
	AL_ASSERT_INT_EQ(out.count, 2);
	al_fileops_out_free(&out);
	r = (struct al_fileops_range){3, -1};
	AL_ASSERT_INT_EQ(al_fileops_read(root, "a.txt", &r, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(out.text.data, "three\n");
	al_fileops_out_free(&out);
	r = (struct al_fileops_range){4, -1}; /* a.txt has 3 lines */
	AL_ASSERT_INT_EQ(al_fileops_read(root, "a.txt", &r, &out, NULL, err, sizeof(err)), -EINVAL);
	AL_ASSERT(strstr(err, "has 3 lines") != NULL);
	r = (struct al_fileops_range){9, 10};
	AL_ASSERT_INT_EQ(al_fileops_read(root, "a.txt", &r, &out, NULL, err, sizeof(err)), -EINVAL);
	r = (struct al_fileops_range){0, 1};
	AL_ASSERT_INT_EQ(al_fileops_read(root, "a.txt", &r, &out, NULL, err, sizeof(err)), -EINVAL);
	/* Cap: cut back to whole lines. */
	AL_ASSERT_INT_EQ(al_fileops_read(root, "a.txt", NULL, &out, &lim, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(out.text.data, "one\ntwo\n");
	AL_ASSERT(out.truncated);
	al_fileops_out_free(&out);
	/* ... or to a whole character when there is no line end. */
	put(ws, "u.txt", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"); /* 6 x e-acute */
	lim.read_max = 5;
	AL_ASSERT_INT_EQ(al_fileops_read(root, "u.txt", NULL, &out, &lim, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(out.text.data, "\xc3\xa9\xc3\xa9");
	al_fileops_out_free(&out);
	put(ws, "bad.txt", "ok \xff\xfe here");
	AL_ASSERT_INT_EQ(al_fileops_read(root, "bad.txt", NULL, &out, NULL, err, sizeof(err)),
			 -EILSEQ);
	AL_ASSERT(strstr(err, "UTF-8") != NULL);
	sub(p, sizeof(p), ws, "bin");
	{
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		AL_ASSERT(fd >= 0);
		AL_ASSERT_INT_EQ(write(fd, "ab\0cd", 5), 5);
		close(fd);
	}
	AL_ASSERT_INT_EQ(al_fileops_read(root, "bin", NULL, &out, NULL, err, sizeof(err)), -EILSEQ);
	AL_ASSERT(strstr(err, "binary") != NULL);
	/* A FIFO is refused without blocking; a directory is not a file. */
	sub(p, sizeof(p), ws, "fifo");
	AL_ASSERT_INT_EQ(mkfifo(p, 0644), 0);
	AL_ASSERT_INT_EQ(al_fileops_read(root, "fifo", NULL, &out, NULL, err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "fifo", "x", 1, NULL, err, sizeof(err)), -EINVAL);
	AL_ASSERT_INT_EQ(al_fileops_read(root, ".", NULL, &out, NULL, err, sizeof(err)), -EISDIR);
	AL_ASSERT_INT_EQ(al_fileops_read(root, "nope", NULL, &out, NULL, err, sizeof(err)),
			 -ENOENT);
	AL_ASSERT_NULL(out.text.data);
	/* An empty file reads as empty text. */
	put(ws, "empty", "");
	AL_ASSERT_INT_EQ(al_fileops_read(root, "empty", NULL, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(out.text.data, "");
	AL_ASSERT_INT_EQ(out.count, 0);
	al_fileops_out_free(&out);
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_edit_uniqueness)
{
	struct al_fileops_root *root = setup();
	char err[256] = "";

	put(ws, "e.txt", "foo bar foo\n");
	AL_ASSERT_INT_EQ(
	    al_fileops_edit(root, "e.txt", "foo", "baz", false, NULL, err, sizeof(err)), -ENOTUNIQ);
	AL_ASSERT(strstr(err, "2 times") != NULL);
	AL_ASSERT_STR_EQ(get(ws, "e.txt"), "foo bar foo\n");
	AL_ASSERT_INT_EQ(
	    al_fileops_edit(root, "e.txt", "qux", "baz", false, NULL, err, sizeof(err)), -ENOENT);
	AL_ASSERT_INT_EQ(al_fileops_edit(root, "e.txt", "", "baz", false, NULL, err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT_INT_EQ(al_fileops_edit(root, "e.txt", "foo", "foo", true, NULL, err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT_INT_EQ(al_fileops_edit(root, "missing", "a", "b", false, NULL, err, sizeof(err)),
			 -ENOENT);
	AL_ASSERT_INT_EQ(
	    al_fileops_edit(root, "e.txt", "bar", "BAR", false, NULL, err, sizeof(err)), 1);
	AL_ASSERT_STR_EQ(get(ws, "e.txt"), "foo BAR foo\n");
	AL_ASSERT_INT_EQ(al_fileops_edit(root, "e.txt", "foo", "q", true, NULL, err, sizeof(err)),
			 2);
	AL_ASSERT_STR_EQ(get(ws, "e.txt"), "q BAR q\n");
	AL_ASSERT_INT_EQ(count_entries(ws), 2); /* no temp files left behind */
	al_fileops_close_root(root);
}

static void set_mtime(const char *rel, time_t t)
{
	char p[1024];
	struct timespec ts[2] = {{t, 0}, {t, 0}};

	sub(p, sizeof(p), ws, rel);
	AL_ASSERT_INT_EQ(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

AL_TEST(sandbox_fileops_glob_order_limits_and_rejections)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_out out = {0};
	struct al_fileops_limits lim = {.glob_max = 2};
	char err[256] = "", p[1024], want[4096];

	sub(p, sizeof(p), ws, "src");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	sub(p, sizeof(p), ws, "src/deep");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	sub(p, sizeof(p), ws, ".git");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	put(ws, "src/old.c", "");
	put(ws, "src/new.c", "");
	put(ws, "src/deep/mid.c", "");
	put(ws, "src/x.h", "");
	put(ws, ".git/skip.c", "");
	set_mtime("src/old.c", 1000);
	set_mtime("src/deep/mid.c", 2000);
	set_mtime("src/new.c", 3000);

	AL_ASSERT_INT_EQ(al_fileops_glob(root, "**/*.c", NULL, &out, NULL, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/src/new.c\n%s/src/deep/mid.c\n%s/src/old.c\n", ws, ws, ws);
	AL_ASSERT_STR_EQ(out.text.data, want);
	AL_ASSERT_INT_EQ(out.count, 3);
	AL_ASSERT(!out.truncated);
	al_fileops_out_free(&out);
	/* One segment per level without "**"; a base directory. */
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "*.c", "src", &out, NULL, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/src/new.c\n%s/src/old.c\n", ws, ws);
	AL_ASSERT_STR_EQ(out.text.data, want);
	al_fileops_out_free(&out);
	/* The cap keeps the newest. */
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "src/**", NULL, &out, &lim, err, sizeof(err)), 0);
	AL_ASSERT(out.truncated);
	AL_ASSERT_INT_EQ(out.count, 6); /* src itself ("**" matches nothing too), deep, 4 files */
	snprintf(want, sizeof(want), "%s/src", ws);
	AL_ASSERT(strncmp(out.text.data, want, strlen(want)) == 0);
	{
		int lines = 0;
		for (const char *c = out.text.data; *c; c++)
			lines += *c == '\n';
		AL_ASSERT_INT_EQ(lines, 2);
	}
	al_fileops_out_free(&out);
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "../*", NULL, &out, NULL, err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "src/../../*", NULL, &out, NULL, err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "/etc/*", NULL, &out, NULL, err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "*", "/etc", &out, NULL, err, sizeof(err)), -EXDEV);
	AL_ASSERT_NULL(out.text.data);
	al_fileops_close_root(root);
}

/*
 * Many "**" against a deep tree: the matcher tried every split of the path
 * for every "**" (C(depth + k, k) calls per file), so one pattern from the
 * agent held the host thread for hours. Now linear: this returns at once.
 */
AL_TEST(sandbox_fileops_glob_many_double_stars_is_linear)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_out out = {0};
	char err[256] = "", p[4096], pat[1024] = "";
	size_t k = 0;
	double t0;

	snprintf(p, sizeof(p), "%s", ws);
	for (int i = 0; i < 40; i++) {
		strcat(p, "/d");
		AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	}
	strcat(p, "/f.c");
	put("/", p + 1, "");
	for (int i = 0; i < 40; i++)
		k += (size_t)snprintf(pat + k, sizeof(pat) - k, "**/");
	snprintf(pat + k, sizeof(pat) - k, "nomatch");
	t0 = (double)clock() / CLOCKS_PER_SEC;
	AL_ASSERT_INT_EQ(al_fileops_glob(root, pat, NULL, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(out.count, 0);
	AL_ASSERT((double)clock() / CLOCKS_PER_SEC - t0 < 2.0);
	al_fileops_out_free(&out);
	/* Still a matcher: "**" for zero or more segments, with literals between. */
	AL_ASSERT_INT_EQ(
	    al_fileops_glob(root, "**/d/**/d/d/**/*.c", NULL, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(out.count, 1);
	al_fileops_out_free(&out);
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "d/**/e/**/*.c", NULL, &out, NULL, err, sizeof(err)),
			 0);
	AL_ASSERT_INT_EQ(out.count, 0);
	al_fileops_out_free(&out);
	al_fileops_close_root(root);
}

/*
 * replace_all of one byte by a long string in a big file: the result's size
 * was checked only once built (count * len bytes first). Refused as it grows.
 */
AL_TEST(sandbox_fileops_edit_growth_is_bounded_while_building)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_limits lim = {.file_max = 1 << 20};
	char err[256] = "", p[1024];
	char *big = al_malloc((1 << 20) + 1), *repl = al_malloc(65537);
	int fd;

	AL_ASSERT(big != NULL && repl != NULL);
	memset(big, 'a', 1 << 20);
	big[1 << 20] = '\0';
	memset(repl, 'b', 65536);
	repl[65536] = '\0';
	sub(p, sizeof(p), ws, "big");
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	AL_ASSERT(fd >= 0);
	AL_ASSERT_INT_EQ(write(fd, big, 1 << 20), 1 << 20);
	close(fd);
	/* Built whole, this would take 64 GiB; refused after about 1 MiB. */
	AL_ASSERT_INT_EQ(al_fileops_edit(root, "big", "a", repl, true, &lim, err, sizeof(err)),
			 -EFBIG);
	AL_ASSERT_STR_EQ(get(ws, "big") + 4090, "aaaaa");
	al_free(big);
	al_free(repl);
	al_fileops_close_root(root);
}

/*
 * The agent's regex runs on the host over every line of the workspace:
 * back-references make glibc backtrack exponentially, nested intervals make
 * regcomp copy a subexpression a million times. Both refused up front.
 */
AL_TEST(sandbox_fileops_grep_refuses_costly_regex)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_out out = {0};
	char err[256] = "", line[260];

	memset(line, 'a', 200);
	strcpy(line + 200, " 555-1234\n");
	put(ws, "lines.txt", line);
	AL_ASSERT_INT_EQ(al_fileops_grep(root, "(.*)(.*)(.*)(.*)(.*)\\5\\4\\3\\2\\1x", NULL, &out,
					 NULL, err, sizeof(err)),
			 -EINVAL);
	AL_ASSERT(strstr(err, "back-references") != NULL);
	AL_ASSERT_INT_EQ(al_fileops_grep(root, "((a{1,100}){1,100}){1,100}b", NULL, &out, NULL, err,
					 sizeof(err)),
			 -EINVAL);
	AL_ASSERT(strstr(err, "repetition") != NULL);
	AL_ASSERT_INT_EQ(
	    al_fileops_grep(root, "a{99999999999999999999}", NULL, &out, NULL, err, sizeof(err)),
	    -EINVAL);
	AL_ASSERT_NULL(out.text.data);
	/* Ordinary intervals and escapes still work. */
	AL_ASSERT_INT_EQ(
	    al_fileops_grep(root, "[0-9]{3}-[0-9]{4}$", NULL, &out, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(out.count, 1);
	al_fileops_out_free(&out);
	AL_ASSERT_INT_EQ(
	    al_fileops_grep(root, "\\.txt|a{2,}\\{", NULL, &out, NULL, err, sizeof(err)), 0);
	al_fileops_out_free(&out);
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_grep_format_and_limits)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_out out = {0};
	struct al_fileops_limits lim = {.grep_max = 64};
	char err[256] = "", p[1024], want[4096], longline[2100];

	sub(p, sizeof(p), ws, "sub");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	sub(p, sizeof(p), ws, ".git");
	AL_ASSERT_INT_EQ(mkdir(p, 0755), 0);
	put(ws, "sub/b.txt", "needle one\nhay\nneedle two\n");
	put(ws, ".git/packed", "needle in git\n");
	memset(longline, 'n', 2050);
	memcpy(longline, "needle", 6);
	longline[2050] = '\n';
	longline[2051] = '\0';
	put(ws, "long.txt", longline);
	{
		int fd;
		sub(p, sizeof(p), ws, "bin");
		fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		AL_ASSERT(fd >= 0);
		AL_ASSERT_INT_EQ(write(fd, "needle\0", 7), 7);
		close(fd);
	}

	AL_ASSERT_INT_EQ(
	    al_fileops_grep(root, "need(le)+ [ot]", NULL, &out, NULL, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/sub/b.txt:1:needle one\n%s/sub/b.txt:3:needle two\n", ws,
		 ws);
	AL_ASSERT_STR_EQ(out.text.data, want);
	AL_ASSERT_INT_EQ(out.count, 2);
	al_fileops_out_free(&out);
	/* A single file as the path. */
	AL_ASSERT_INT_EQ(al_fileops_grep(root, "^hay$", "sub/b.txt", &out, NULL, err, sizeof(err)),
			 0);
	snprintf(want, sizeof(want), "%s/sub/b.txt:2:hay\n", ws);
	AL_ASSERT_STR_EQ(out.text.data, want);
	al_fileops_out_free(&out);
	/* The output cap drops whole lines. */
	AL_ASSERT_INT_EQ(al_fileops_grep(root, "needle", NULL, &out, &lim, err, sizeof(err)), 0);
	AL_ASSERT(out.truncated);
	AL_ASSERT(out.text.len <= 64);
	AL_ASSERT(out.text.len == 0 || out.text.data[out.text.len - 1] == '\n');
	al_fileops_out_free(&out);
	AL_ASSERT_INT_EQ(al_fileops_grep(root, "(", NULL, &out, NULL, err, sizeof(err)), -EINVAL);
	AL_ASSERT(strstr(err, "regular expression") != NULL);
	AL_ASSERT_INT_EQ(al_fileops_grep(root, "x", "../outside", &out, NULL, err, sizeof(err)),
			 -EXDEV);
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_allocation_failures_unwind)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_out out = {0};
	char err[256] = "";

	put(ws, "e.txt", "alpha beta\n");
	for (long n = 0; n < 40; n++) {
		int rc;

		al_alloc_fail_after(n);
		rc = al_fileops_grep(root, "a", NULL, &out, NULL, err, sizeof(err));
		al_alloc_fail_after(-1);
		AL_ASSERT(rc == 0 || rc == -ENOMEM);
		al_fileops_out_free(&out);
		al_alloc_fail_after(n);
		rc = al_fileops_glob(root, "*", NULL, &out, NULL, err, sizeof(err));
		al_alloc_fail_after(-1);
		AL_ASSERT(rc == 0 || rc == -ENOMEM);
		al_fileops_out_free(&out);
		al_alloc_fail_after(n);
		rc = al_fileops_edit(root, "e.txt", "beta", "gamma", false, NULL, err, sizeof(err));
		al_alloc_fail_after(-1);
		AL_ASSERT(rc == 1 || rc == -ENOMEM);
		if (rc == 1)
			AL_ASSERT_INT_EQ(al_fileops_edit(root, "e.txt", "gamma", "beta", false,
							 NULL, err, sizeof(err)),
					 1);
		AL_ASSERT_STR_EQ(get(ws, "e.txt"), "alpha beta\n");
	}
	AL_ASSERT_INT_EQ(count_entries(ws), 2);
	al_fileops_close_root(root);
}

/*
 * As root, what a write creates (parent directories too) belongs to the
 * owner of the directory it is created in, so the sandbox's uid (the
 * workspace's owner) can change it afterwards.
 */
AL_TEST(sandbox_fileops_created_dirs_and_files_take_parent_owner)
{
	struct al_fileops_root *root;
	char err[256] = "", p[1024];
	struct stat st;

	if (geteuid() != 0)
		return; /* only root can give files away */
	root = setup();
	AL_ASSERT_INT_EQ(chown(ws, 65534, 65534), 0);
	AL_ASSERT_INT_EQ(al_fileops_write(root, "d1/d2/f.txt", "hi", 2, NULL, err, sizeof(err)), 0);
	const char *rels[] = {"d1", "d1/d2", "d1/d2/f.txt"};
	for (size_t i = 0; i < 3; i++) {
		sub(p, sizeof(p), ws, rels[i]);
		AL_ASSERT_INT_EQ(stat(p, &st), 0);
		AL_ASSERT_INT_EQ(st.st_uid, 65534);
		AL_ASSERT_INT_EQ(st.st_gid, 65534);
	}
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_read_reports_the_file_size)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_limits lim = {.read_max = 4};
	struct al_fileops_out o = {0};
	char err[256] = "";

	AL_ASSERT_INT_EQ(al_fileops_read(root, "a.txt", NULL, &o, &lim, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(o.size, 14); /* the whole file, though only a line was returned */
	AL_ASSERT(o.truncated);
	al_fileops_out_free(&o);
	al_fileops_close_root(root);
}

AL_TEST(sandbox_fileops_glob_files_only)
{
	struct al_fileops_root *root = setup();
	struct al_fileops_limits lim = {.glob_files_only = true};
	struct al_fileops_out o = {0};
	char err[256] = "", want[1200];

	AL_ASSERT_INT_EQ(al_fileops_write(root, "d.txt/inner.txt", "x", 1, NULL, err, sizeof(err)),
			 0);
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "*.txt", NULL, &o, NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(o.count, 2); /* a.txt and the directory d.txt */
	al_fileops_out_free(&o);
	AL_ASSERT_INT_EQ(al_fileops_glob(root, "*.txt", NULL, &o, &lim, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/a.txt\n", ws);
	AL_ASSERT_STR_EQ(o.text.data, want);
	al_fileops_out_free(&o);
	al_fileops_close_root(root);
}
