/*
 * fileops.h - the worker's file tools (read, write, edit, glob, grep),
 * confined to a workspace and optional extra roots.
 *
 * Confinement: every path is resolved with openat2(root_dirfd, path,
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS). `..` that climbs out, absolute
 * symlinks, symlinks that lead out, and /proc magic links all fail in the
 * kernel, atomically with the lookup, so a concurrent rename or symlink swap
 * cannot redirect it. Once resolved, work continues through the fd (a write
 * goes to a temp file created in the resolved parent directory's fd and is
 * renamed within that same fd); nothing is looked up by name twice.
 *
 * Paths given to these functions are either relative (to the workspace, the
 * first root) or absolute and textually under one root's canonical path (the
 * longest match wins); anything else is "path escapes the workspace"
 * (-EXDEV). Output paths (glob, grep) are absolute: root path + relative path.
 *
 * Writes and edits:
 *   - atomic: temp file in the same directory, write, fsync, renameat,
 *     fsync of the directory; on any failure the temp file is removed;
 *   - missing parent directories are created with mkdirat through the
 *     confined directory fds;
 *   - refused with -EMLINK when the target has more than one hard link (it
 *     may be an alias of a file elsewhere), -ELOOP when it is a symbolic link,
 *     -EISDIR / -EINVAL for directories and special files;
 *   - refused with -EACCES under any `.git/hooks` directory and for
 *     `.git/config` (and `config.worktree`): both run code later, outside the
 *     sandbox. Checked on the path as given and on the kernel's name for the
 *     resolved directory, so a symlink alias is caught too;
 *   - refused with -EROFS in a root added read-only;
 *   - the file keeps the mode (and, when run as root, owner) of the file it
 *     replaces; a new file gets 0666 & ~umask.
 *
 * Reads follow symbolic links that stay inside the root; hard-linked files
 * can be read (a hard link cannot cross the sandbox's mount, see
 * docs/SECURITY.md). Only regular files are opened for content (O_NONBLOCK,
 * so a FIFO never blocks, then refused).
 *
 * Operations may run concurrently on one root (it is only read);
 * al_fileops_add_root and al_fileops_close_root must not race with them.
 * Known limit: grep uses the C library's regexec, whose backtracking on
 * back-references can be slow on hostile patterns; lines over
 * grep_line_max are skipped, which bounds each call.
 */
#ifndef AL_SANDBOX_FILEOPS_H
#define AL_SANDBOX_FILEOPS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define AL_FILEOPS_MAX_ROOTS 16

/* Opaque: owns one directory fd per root. */
struct al_fileops_root;

/* Zero fields take the defaults (the protocol's limits). */
struct al_fileops_limits {
	size_t read_max;      /* bytes returned by read: 256 KiB */
	size_t file_max;      /* largest file edit/grep loads and write accepts: 16 MiB */
	size_t glob_max;      /* results of glob: 200 */
	size_t grep_max;      /* bytes of grep output: 100 KiB */
	size_t grep_line_max; /* longer lines are skipped by grep: 2000 */
	size_t walk_max;      /* directory entries glob/grep visit: 200000 */
	bool glob_files_only; /* glob lists regular files only (the SDK's toolset does) */
};

/* A 1-indexed, inclusive line range; end == -1 means to the end of the file. */
struct al_fileops_range {
	long start;
	long end;
};

/*
 * A tool's output. `text` is owned (al_buf_free). `truncated` is set when a
 * cap cut the output; `count` is lines (read), matches (glob: all found,
 * before the cap; grep: lines emitted), or replacements (edit).
 */
struct al_fileops_out {
	al_buf text;
	bool truncated;
	size_t count;
	unsigned long long size; /* read: the file's size in bytes when opened */
};

/*
 * Opens the workspace root (read-write) at `path` (must be a directory).
 * Returns 0 and a new root in *out (free with al_fileops_close_root), or a
 * negative errno.
 */
int al_fileops_open_root(const char *path, struct al_fileops_root **out);

/* Adds an extra root, read-only if `readonly`. -ENOSPC past AL_FILEOPS_MAX_ROOTS. */
int al_fileops_add_root(struct al_fileops_root *root, const char *path, bool readonly);

/* Closes every fd and frees the root. NULL is fine. */
void al_fileops_close_root(struct al_fileops_root *root);

/* Frees out->text and clears *out. */
void al_fileops_out_free(struct al_fileops_out *out);

/*
 * Every operation below returns 0 (or a count where said) or a negative errno
 * with a message in err. `limits` may be NULL (defaults). `out` must be
 * zeroed by the caller (or freed by al_fileops_out_free) before the call; on
 * error it is left empty.
 */

/*
 * Reads a UTF-8 text file (whole, or the lines of `range`, which may be
 * NULL). Capped at read_max bytes, cut on a line or character boundary, with
 * out->truncated set. -EILSEQ for a binary (NUL byte) or non-UTF-8 file.
 */
int al_fileops_read(struct al_fileops_root *root, const char *path,
		    const struct al_fileops_range *range, struct al_fileops_out *out,
		    const struct al_fileops_limits *limits, char *err, size_t errlen);

/* Atomically replaces (or creates) `path` with `len` bytes of `data`. */
int al_fileops_write(struct al_fileops_root *root, const char *path, const void *data, size_t len,
		     const struct al_fileops_limits *limits, char *err, size_t errlen);

/*
 * Replaces old_string with new_string in `path` and writes it back
 * atomically. old_string must be non-empty and differ from new_string; it
 * must occur exactly once unless replace_all (-ENOENT when absent,
 * -ENOTUNIQ when it occurs more than once). Returns the number of
 * replacements.
 */
int al_fileops_edit(struct al_fileops_root *root, const char *path, const char *old_string,
		    const char *new_string, bool replace_all,
		    const struct al_fileops_limits *limits, char *err, size_t errlen);

/*
 * Files and directories under `dir` (NULL: the workspace) whose path relative
 * to `dir` matches `pattern` (fnmatch per segment, `**` for any number of
 * segments, dotfiles included, `.git` not descended into, symbolic links
 * listed but not followed). One absolute path per line, newest mtime first
 * (ties by name), at most glob_max. Patterns that are absolute or contain a
 * `..` segment are refused (-EINVAL).
 */
int al_fileops_glob(struct al_fileops_root *root, const char *pattern, const char *dir,
		    struct al_fileops_out *out, const struct al_fileops_limits *limits, char *err,
		    size_t errlen);

/*
 * Lines matching the POSIX extended regular expression `pattern` in the file
 * or directory tree `path` (NULL: the workspace), as "path:line:text\n" in
 * name order. Binary files (a NUL byte), files over file_max and lines over
 * grep_line_max are skipped; output stops at grep_max bytes (truncated set).
 * -EINVAL with regerror's message for a bad pattern.
 */
int al_fileops_grep(struct al_fileops_root *root, const char *pattern, const char *path,
		    struct al_fileops_out *out, const struct al_fileops_limits *limits, char *err,
		    size_t errlen);

#endif
