/*
 * procs.h - finding a sandbox's processes from the host, for tests: by a
 * unique argument in /proc/PID/cmdline, and the runner above one (the child
 * of the sandbox's PID 1, which /proc/PID/status shows as NSpid ... 1).
 */
#ifndef AL_TEST_SANDBOX_PROCS_H
#define AL_TEST_SANDBOX_PROCS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* The host pid of the process whose command line contains arg (NUL-joined), or -1. */
static pid_t find_cmdline(const char *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -1;

	while (d && (e = readdir(d)) && found < 0) {
		char path[300], buf[4096];
		long pid = strtol(e->d_name, NULL, 10);
		if (pid <= 0 || pid == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
		FILE *f = fopen(path, "re");
		if (f == NULL)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
			buf[n] = '\0';
			if (strcmp(buf + i, arg) == 0)
				found = (pid_t)pid;
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* From /proc/PID/status: the parent, and whether the pid is 1 in its own namespace. */
static int proc_info(pid_t pid, pid_t *ppid, int *ns_init)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	*ppid = -1;
	*ns_init = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "PPid:", 5) == 0)
			*ppid = (pid_t)strtol(line + 5, NULL, 10);
		if (strncmp(line, "NSpid:", 6) == 0) {
			char *last = strrchr(line, '\t');
			*ns_init =
			    last && strtol(last + 1, NULL, 10) == 1 && strchr(line + 7, '\t');
		}
	}
	fclose(f);
	return 0;
}

/* The runner above the process with arg in its command line: the child of the sandbox's PID 1. */
static pid_t find_runner(const char *arg)
{
	pid_t p = find_cmdline(arg);

	for (int depth = 0; p > 0 && depth < 8; depth++) {
		pid_t pp;
		int init, pinit;
		if (proc_info(p, &pp, &init) < 0 || proc_info(pp, &(pid_t){0}, &pinit) < 0)
			return -1;
		if (pinit)
			return p;
		p = pp;
	}
	return -1;
}

#endif
