/*
 * limits.c - cgroup v2 / v1 / rlimit limits.
 */
#include "sandbox/limits.h"

#include "core/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define CG_MAX 4 /* v1: memory, pids, cpu; v2: one directory */

struct al_cgroup {
	enum al_limits_mode mode;
	int n;
	char *dirs[CG_MAX]; /* owned */
	char *mem_dir;	    /* points into dirs */
};

const char *al_limits_mode_name(enum al_limits_mode m)
{
	switch (m) {
	case AL_LIMITS_CGROUP2:
		return "cgroup2";
	case AL_LIMITS_CGROUP1:
		return "cgroup1";
	case AL_LIMITS_RLIMIT:
		return "rlimit";
	default:
		return "none";
	}
}

static int write_file(const char *dir, const char *name, const char *val)
{
	char path[4096];
	int fd, rc = 0;
	size_t n = strlen(val);

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, n) != (ssize_t)n)
		rc = -errno ? -errno : -EIO;
	close(fd);
	return rc;
}

/* The caller's cgroup path for a v1 controller (or "" for v2) from /proc/self/cgroup. */
static int self_cgroup(const char *controller, char *out, size_t outlen)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096];
	int rc = -ENOENT;

	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL)
			continue;
		*c2 = '\0';
		line[strcspn(line, "\n")] = '\0';
		c2[1 + strcspn(c2 + 1, "\n")] = '\0';
		const char *ctrls = c1 + 1;
		int match = 0;
		if (controller[0] == '\0')
			match = ctrls[0] == '\0' && strcmp(line, "0") == 0;
		else {
			char buf[256];
			snprintf(buf, sizeof(buf), "%s", ctrls);
			for (char *sv = NULL, *t = strtok_r(buf, ",", &sv); t;
			     t = strtok_r(NULL, ",", &sv))
				if (strcmp(t, controller) == 0)
					match = 1;
		}
		if (match) {
			snprintf(out, outlen, "%s", strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

static unsigned long counter;

static int make_dir(struct al_cgroup *cg, const char *base, const char *self)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s%s/airlock-%ld-%lu", base, self, (long)getpid(),
			     ++counter) >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0755) < 0)
		return -errno;
	cg->dirs[cg->n] = al_strdup(path);
	if (cg->dirs[cg->n] == NULL) {
		rmdir(path);
		return -ENOMEM;
	}
	cg->n++;
	return 0;
}

static int try_v2(const struct al_limits *l, struct al_cgroup *cg)
{
	struct statfs sf;
	char self[2048], path[4096], ctl[512];
	int fd, rc;
	ssize_t n;

	if (statfs("/sys/fs/cgroup", &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC)
		return -ENOTSUP;
	if ((rc = self_cgroup("", self, sizeof(self))) < 0)
		return rc;
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cgroup.subtree_control", self);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, ctl, sizeof(ctl) - 1);
	close(fd);
	ctl[n > 0 ? n : 0] = '\0';
	/* Delegated: the controllers we need are enabled for our children and we can write. */
	if ((l->memory_mb && !strstr(ctl, "memory")) || (l->pids && !strstr(ctl, "pids")) ||
	    (l->cpu_pct && !strstr(ctl, "cpu")))
		return -ENOTSUP;
	if ((rc = make_dir(cg, "/sys/fs/cgroup", self)) < 0)
		return rc;
	cg->mode = AL_LIMITS_CGROUP2;
	cg->mem_dir = cg->dirs[0];
	char v[64];
	if (l->memory_mb) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)l->memory_mb << 20);
		if ((rc = write_file(cg->dirs[0], "memory.max", v)) < 0)
			return rc;
		write_file(cg->dirs[0], "memory.swap.max", "0");
	}
	if (l->pids) {
		snprintf(v, sizeof(v), "%u", l->pids);
		if ((rc = write_file(cg->dirs[0], "pids.max", v)) < 0)
			return rc;
	}
	if (l->cpu_pct) {
		snprintf(v, sizeof(v), "%u 100000", l->cpu_pct * 1000);
		if ((rc = write_file(cg->dirs[0], "cpu.max", v)) < 0)
			return rc;
	}
	return 0;
}

static int try_v1(const struct al_limits *l, struct al_cgroup *cg)
{
	char self[2048], v[64];
	int rc;

	cg->mode = AL_LIMITS_CGROUP1;
	if (l->memory_mb) {
		if ((rc = self_cgroup("memory", self, sizeof(self))) < 0 ||
		    (rc = make_dir(cg, "/sys/fs/cgroup/memory", self)) < 0)
			return rc;
		cg->mem_dir = cg->dirs[cg->n - 1];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)l->memory_mb << 20);
		if ((rc = write_file(cg->mem_dir, "memory.limit_in_bytes", v)) < 0)
			return rc;
		/* Without memsw the limit could be dodged into swap; absent when swap accounting is
		 * off. */
		write_file(cg->mem_dir, "memory.memsw.limit_in_bytes", v);
	}
	if (l->pids) {
		if ((rc = self_cgroup("pids", self, sizeof(self))) < 0 ||
		    (rc = make_dir(cg, "/sys/fs/cgroup/pids", self)) < 0)
			return rc;
		snprintf(v, sizeof(v), "%u", l->pids);
		if ((rc = write_file(cg->dirs[cg->n - 1], "pids.max", v)) < 0)
			return rc;
	}
	if (l->cpu_pct) {
		if ((rc = self_cgroup("cpu", self, sizeof(self))) < 0 ||
		    (rc = make_dir(cg, "/sys/fs/cgroup/cpu", self)) < 0)
			return rc;
		write_file(cg->dirs[cg->n - 1], "cpu.cfs_period_us", "100000");
		snprintf(v, sizeof(v), "%u", l->cpu_pct * 1000);
		if ((rc = write_file(cg->dirs[cg->n - 1], "cpu.cfs_quota_us", v)) < 0)
			return rc;
	}
	return 0;
}

static void remove_dirs(struct al_cgroup *cg)
{
	for (int i = 0; i < cg->n; i++) {
		rmdir(cg->dirs[i]);
		al_free(cg->dirs[i]);
		cg->dirs[i] = NULL;
	}
	cg->n = 0;
	cg->mem_dir = NULL;
}

int al_limits_cgroup_new(const struct al_limits *l, struct al_cgroup **out,
			 enum al_limits_mode *mode, char *err, size_t errlen)
{
	struct al_cgroup *cg = NULL;
	int rc = 0;

	*out = NULL;
	*mode = AL_LIMITS_NONE;
	if (!l->memory_mb && !l->pids && !l->cpu_pct)
		goto done;
	cg = al_calloc(1, sizeof(*cg));
	if (cg == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (try_v2(l, cg) == 0)
		goto ok;
	remove_dirs(cg);
	if (try_v1(l, cg) == 0)
		goto ok;
	remove_dirs(cg);
	/* No usable hierarchy: rlimits in the sandboxed processes instead. */
	al_free(cg);
	cg = NULL;
	*mode = AL_LIMITS_RLIMIT;
	goto done;
ok:
	*mode = cg->mode;
	*out = cg;
	cg = NULL;
done:
	al_free(cg);
	return rc;
}

int al_limits_cgroup_attach(const struct al_cgroup *cg, pid_t pid)
{
	char v[32];
	int rc = 0;

	if (cg == NULL)
		return 0;
	/* Hand-rolled itoa: snprintf is not async-signal-safe in theory. */
	{
		char tmp[32];
		int n = 0;
		unsigned long u = (unsigned long)pid;
		do {
			tmp[n++] = (char)('0' + u % 10);
			u /= 10;
		} while (u);
		for (int i = 0; i < n; i++)
			v[i] = tmp[n - 1 - i];
		v[n] = '\0';
	}
	for (int i = 0; i < cg->n && rc == 0; i++)
		rc = write_file(cg->dirs[i], "cgroup.procs", v);
	return rc;
}

static int kill_procs(const char *dir)
{
	char path[4096], buf[8192];
	int fd, killed = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *p = buf; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
			killed++;
		p = end + (*end ? 1 : 0);
	}
	return killed;
}

void al_limits_cgroup_kill(struct al_cgroup *cg)
{
	if (cg == NULL)
		return;
	if (cg->mode == AL_LIMITS_CGROUP2 && write_file(cg->dirs[0], "cgroup.kill", "1") == 0)
		return;
	/* v1 has no cgroup.kill: SIGKILL every member until none is left (forks race us). */
	for (int round = 0; round < 100; round++) {
		int k = 0;
		for (int i = 0; i < cg->n; i++)
			k += kill_procs(cg->dirs[i]);
		if (k == 0)
			break;
		usleep(1000);
	}
}

int al_limits_cgroup_oom(const struct al_cgroup *cg)
{
	char path[4096], buf[4096];
	int fd;
	ssize_t n;

	if (cg == NULL || cg->mem_dir == NULL)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", cg->mem_dir,
		 cg->mode == AL_LIMITS_CGROUP2 ? "memory.events" : "memory.failcnt");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (cg->mode == AL_LIMITS_CGROUP2) {
		char *p = strstr(buf, "oom_kill ");
		return p && strtol(p + 9, NULL, 10) > 0;
	}
	return strtol(buf, NULL, 10) > 0;
}

void al_limits_cgroup_free(struct al_cgroup *cg)
{
	if (cg == NULL)
		return;
	al_limits_cgroup_kill(cg);
	/*
	 * rmdir fails with EBUSY until the killed tasks are gone. That is
	 * usually a millisecond, but a task killed mid-way through a large
	 * write under load can take far longer to exit; give up only after
	 * about 5 s (backing off to 50 ms) rather than leak the cgroup.
	 */
	for (int i = 0; i < cg->n; i++) {
		useconds_t wait = 1000, waited = 0;
		while (rmdir(cg->dirs[i]) < 0 && errno == EBUSY && waited < 5000000) {
			/* A member that was mid-fork when the kill rounds ended shows up
			 * only now (v1 has no atomic cgroup.kill): kill again each try. */
			kill_procs(cg->dirs[i]);
			usleep(wait);
			waited += wait;
			if (wait < 50000)
				wait *= 2;
		}
	}
	remove_dirs(cg);
	al_free(cg);
}

int al_limits_apply_rlimits(const struct al_limits *l, enum al_limits_mode mode)
{
	struct rlimit r;

	r.rlim_cur = r.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &r) < 0)
		return -errno;
	if (l->fsize_max) {
		r.rlim_cur = r.rlim_max = l->fsize_max;
		if (setrlimit(RLIMIT_FSIZE, &r) < 0)
			return -errno;
	}
	if (mode == AL_LIMITS_RLIMIT) {
		if (l->memory_mb) {
			r.rlim_cur = r.rlim_max = (rlim_t)l->memory_mb << 20;
			if (setrlimit(RLIMIT_AS, &r) < 0)
				return -errno;
		}
		if (l->pids) {
			r.rlim_cur = r.rlim_max = l->pids;
			if (setrlimit(RLIMIT_NPROC, &r) < 0)
				return -errno;
		}
	}
	return 0;
}

/* 1 when pid names no process any more (a live one, or one we may not signal, is alive). */
static int owner_dead(long pid)
{
	return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Kills what is left in a stale cgroup directory and removes it: 1 when removed. */
static int sweep_one(const char *dir)
{
	useconds_t waited = 0;

	(void)write_file(dir, "cgroup.kill", "1"); /* v2; v1 has none */
	for (int round = 0; round < 100 && kill_procs(dir) > 0; round++)
		usleep(1000);
	while (rmdir(dir) < 0) {
		if (errno != EBUSY || waited >= 2000000)
			return 0;
		usleep(10000);
		waited += 10000;
		kill_procs(dir);
	}
	return 1;
}

/* Sweeps airlock-PID-N under base+self whose PID is dead. */
static int sweep_base(const char *base, const char *self)
{
	char dir[4096], sub[4096 + 256];
	DIR *d;
	struct dirent *e;
	int n = 0;

	if ((size_t)snprintf(dir, sizeof(dir), "%s%s", base, self) >= sizeof(dir))
		return 0;
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long pid;
		if (strncmp(e->d_name, "airlock-", 8) != 0)
			continue;
		pid = strtol(e->d_name + 8, &end, 10);
		if (end == e->d_name + 8 || *end != '-' || !owner_dead(pid))
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= sizeof(sub))
			continue;
		n += sweep_one(sub);
	}
	closedir(d);
	return n;
}

int al_limits_sweep_stale(void)
{
	static const char *const v1[] = {"memory", "pids", "cpu"};
	char self[2048], base[64];
	int n = 0;

	if (self_cgroup("", self, sizeof(self)) == 0)
		n += sweep_base("/sys/fs/cgroup", self);
	for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++) {
		snprintf(base, sizeof(base), "/sys/fs/cgroup/%s", v1[i]);
		if (self_cgroup(v1[i], self, sizeof(self)) == 0)
			n += sweep_base(base, self);
	}
	return n;
}
