/* test_limits.c - cgroup v2/v1 detection, attach/kill/cleanup, rlimits. */
#include "unit/unit.h"

#include "sandbox/limits.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

AL_TEST(limits_nothing_to_limit_is_none)
{
	struct al_limits l = {0};
	struct al_cgroup *cg = (struct al_cgroup *)1;
	enum al_limits_mode m = AL_LIMITS_CGROUP1;
	char err[256];

	AL_ASSERT_INT_EQ(al_limits_cgroup_new(&l, &cg, &m, err, sizeof(err)), 0);
	AL_ASSERT_NULL(cg);
	AL_ASSERT_INT_EQ(m, AL_LIMITS_NONE);
	AL_ASSERT_STR_EQ(al_limits_mode_name(AL_LIMITS_RLIMIT), "rlimit");
}

/* The child's membership line for a controller, from /proc/PID/cgroup. */
static int in_airlock_cgroup(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, "/airlock-") != NULL;
}

AL_TEST(limits_cgroup_attach_pids_limit_and_kill)
{
	struct al_limits l = {0};
	struct al_cgroup *cg = NULL;
	enum al_limits_mode m;
	char err[256] = "";
	int p[2];

	l.pids = 3;
	l.memory_mb = 64;
	AL_ASSERT_INT_EQ(al_limits_cgroup_new(&l, &cg, &m, err, sizeof(err)), 0);
	if (m == AL_LIMITS_RLIMIT) {
		/* No usable hierarchy here (unprivileged on v1): the fallback is reported. */
		AL_ASSERT_NULL(cg);
		return;
	}
	AL_ASSERT(m == AL_LIMITS_CGROUP1 || m == AL_LIMITS_CGROUP2);
	AL_ASSERT_NOT_NULL(cg);
	AL_ASSERT_INT_EQ(pipe(p), 0);
	pid_t c = fork();
	if (c == 0) {
		char b;
		close(p[1]);
		if (read(p[0], &b, 1) != 1) /* wait until attached */
			_exit(9);
		/* 3 tasks allowed: us + 2 children; the third fork must fail. */
		int ok = 0, eagain = 0;
		for (int i = 0; i < 4; i++) {
			pid_t k = fork();
			if (k == 0) {
				pause();
				_exit(0);
			}
			if (k > 0)
				ok++;
			else if (errno == EAGAIN)
				eagain++;
		}
		_exit(ok == 2 && eagain == 2 ? 0 : 10 + ok);
	}
	close(p[0]);
	AL_ASSERT_INT_EQ(al_limits_cgroup_attach(cg, c), 0);
	AL_ASSERT(in_airlock_cgroup(c));
	AL_ASSERT_INT_EQ(write(p[1], "g", 1), 1);
	close(p[1]);
	int st = 0;
	AL_ASSERT_INT_EQ(waitpid(c, &st, 0), c);
	AL_ASSERT(WIFEXITED(st));
	AL_ASSERT_INT_EQ(WEXITSTATUS(st), 0);
	/* Its two paused orphans are still in the cgroup: free kills them and removes it. */
	al_limits_cgroup_free(cg);
}

AL_TEST(limits_rlimits_in_rlimit_mode)
{
	struct al_limits l = {0};
	pid_t c;
	int st = 0;

	l.memory_mb = 100;
	l.pids = 50;
	l.fsize_max = 4096;
	c = fork();
	if (c == 0) {
		struct rlimit r;
		signal(SIGXFSZ, SIG_IGN);
		if (al_limits_apply_rlimits(&l, AL_LIMITS_RLIMIT) < 0)
			_exit(2);
		if (getrlimit(RLIMIT_AS, &r) < 0 || r.rlim_cur != 100ull << 20)
			_exit(3);
		if (getrlimit(RLIMIT_NPROC, &r) < 0 || r.rlim_cur != 50)
			_exit(4);
		if (getrlimit(RLIMIT_CORE, &r) < 0 || r.rlim_cur != 0)
			_exit(5);
		char path[600], buf[8192] = {0};
		snprintf(path, sizeof(path), "%s/big", al_test_tmpdir());
		int fd = open(path, O_WRONLY | O_CREAT, 0600);
		ssize_t a = write(fd, buf, sizeof(buf)); /* short: 4096 */
		ssize_t b = write(fd, buf, 1);		 /* EFBIG */
		_exit(a == 4096 && b < 0 && errno == EFBIG ? 0 : 6);
	}
	AL_ASSERT_INT_EQ(waitpid(c, &st, 0), c);
	AL_ASSERT(WIFEXITED(st));
	AL_ASSERT_INT_EQ(WEXITSTATUS(st), 0);
}

AL_TEST(limits_cgroup_modes_leave_as_and_nproc_alone)
{
	struct al_limits l = {0};
	pid_t c;
	int st = 0;

	l.memory_mb = 100;
	l.pids = 50;
	c = fork();
	if (c == 0) {
		struct rlimit before, after;
		getrlimit(RLIMIT_AS, &before);
		if (al_limits_apply_rlimits(&l, AL_LIMITS_CGROUP1) < 0)
			_exit(2);
		getrlimit(RLIMIT_AS, &after);
		_exit(before.rlim_cur == after.rlim_cur ? 0 : 3);
	}
	AL_ASSERT_INT_EQ(waitpid(c, &st, 0), c);
	AL_ASSERT_INT_EQ(WEXITSTATUS(st), 0);
}

/* 1 when pid has ended (gone, or a zombie nobody reaped yet: orphans go to a subreaper). */
static int ended(pid_t pid)
{
	char path[64], buf[512];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	char *r = strrchr(buf, ')');
	return r && r[1] == ' ' && (r[2] == 'Z' || r[2] == 'X');
}

/*
 * A creator killed before it removed its cgroup (simulated: it exits without
 * al_limits_cgroup_free, a process still inside): the startup sweep kills
 * what is left and removes the directories; the directories of a live
 * creator (ours) stay.
 */
AL_TEST(limits_sweep_stale_removes_dead_creators_cgroups)
{
	struct al_limits l = {.pids = 8, .memory_mb = 64};
	struct al_cgroup *mine = NULL;
	enum al_limits_mode m;
	char err[256] = "";
	int p[2];
	pid_t inside = -1, creator;

	AL_ASSERT_INT_EQ(al_limits_cgroup_new(&l, &mine, &m, err, sizeof(err)), 0);
	if (m == AL_LIMITS_RLIMIT)
		return; /* no usable hierarchy here: nothing to leak */
	AL_ASSERT_INT_EQ(pipe(p), 0);
	creator = fork();
	if (creator == 0) {
		struct al_cgroup *cg = NULL;
		enum al_limits_mode cm;
		char e[256];
		if (al_limits_cgroup_new(&l, &cg, &cm, e, sizeof(e)) < 0)
			_exit(1);
		pid_t k = fork();
		if (k == 0) {
			al_limits_cgroup_attach(cg, 0);
			(void)!write(p[1], "x", 1);
			pause();
			_exit(0);
		}
		char b;
		if (read(p[0], &b, 1) != 1)
			_exit(2);
		(void)!write(p[1], &k, sizeof(k));
		_exit(0); /* no al_limits_cgroup_free: as if killed */
	}
	close(p[1]);
	int st = 0;
	AL_ASSERT_INT_EQ(waitpid(creator, &st, 0), creator);
	AL_ASSERT_INT_EQ(st, 0);
	AL_ASSERT_INT_EQ(read(p[0], &inside, sizeof(inside)), (long)sizeof(inside));
	close(p[0]);
	AL_ASSERT_INT_EQ(ended(inside), 0);
	AL_ASSERT(al_limits_sweep_stale() >= 1);
	for (int i = 0; i < 200 && !ended(inside); i++)
		usleep(10000);
	AL_ASSERT_INT_EQ(ended(inside), 1);
	/* Ours (a live creator) is untouched: a child can still join it. */
	al_limits_sweep_stale();
	pid_t j = fork();
	if (j == 0)
		_exit(al_limits_cgroup_attach(mine, 0) == 0 ? 0 : 1);
	AL_ASSERT_INT_EQ(waitpid(j, &st, 0), j);
	AL_ASSERT_INT_EQ(st, 0);
	al_limits_cgroup_free(mine);
}
