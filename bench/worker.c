/*
 * worker.c - the meter for the worker benchmark (bench/run.sh worker).
 *
 *   bench-worker [-i INTERVAL_MS] -- COMMAND [ARGS...]
 *
 * Runs COMMAND (a worker: ours or the SDK's under Node) as its child and
 * measures what it and everything it starts cost, until the meter gets
 * SIGTERM or SIGINT; then it stops the worker with SIGTERM (SIGKILL after
 * 15 s), reaps every descendant and prints one JSON line:
 *
 *  - worker_hwm_kb: the worker process's own peak RSS (VmHWM, read just
 *    before it is stopped, so it is the kernel's exact peak, not a sample);
 *  - others_rss_peak_kb / others_pss_peak_kb: the largest sum, at one
 *    sample, of the RSS (and PSS) of every other descendant (our sandbox
 *    processes, or the SDK's /bin/bash shells); tree_*: the same sum with
 *    the worker included. RSS counts a page shared by N processes N times
 *    (a sandbox's PID 1 is a copy-on-write clone of the worker), PSS counts
 *    1/N of it in each, so the PSS sum is what the tree really occupies;
 *  - cpu_s: user + system seconds of the worker and all its descendants,
 *    from getrusage(RUSAGE_CHILDREN) once all are reaped. The meter is a
 *    child subreaper, so orphans (a sandbox's processes whose parent died
 *    first) are reparented to it and reaped here, and their time counts;
 *    worker_cpu_s is the worker's own share (/proc/PID/stat utime+stime);
 *  - cpuacct_s: the same total from a cpuacct cgroup the worker starts in
 *    (children inherit it; the sandbox moves its processes to its own
 *    memory, pids and cpu cgroups, not cpuacct), as a cross-check; null
 *    when the cgroup v1 cpuacct hierarchy is not there;
 *  - cpuacct_work_s: the cgroup's usage from SIGUSR1 to the stop request:
 *    the harness sends SIGUSR1 when it hands out the work, so this leaves
 *    out the worker's start-up (Node's is ~0.3 s of CPU) and shutdown;
 *  - worker_{rss,anon,file}_at_mark_kb: the worker's RSS at SIGUSR1,
 *    started and idle, and its anonymous and file-backed parts.
 *
 *   bench-worker observe HOST PORT KEY SESSION_ID...
 *
 * The round-trip clock with microseconds (the server stores milliseconds):
 * one event stream per session; for each agent.tool_use, the time from its
 * arrival to the arrival of the user.tool_result that answers it. Both go
 * through the same publish path of the server, so that path's delay cancels
 * out but for its jitter. Ends when every session has gone idle with
 * end_turn (600 s at most) and prints p50/p90/p99 in ms as one JSON line,
 * leaving out the first call of each session as worker_stats.py does.
 *
 * Sampling scans /proc every INTERVAL_MS (default 20): its cost lands on
 * the meter, not on the worker, but it shares the CPUs with what it
 * measures, so keep the interval modest. Peaks of short-lived processes
 * between samples are missed; the worker's own peak is exact.
 */
/* Only dial() and send_all() of the shared client are needed here. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "client.h"

#include <dirent.h>
#include <poll.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXP 4096

static volatile sig_atomic_t stop_requested, mark_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_mark(int sig)
{
	(void)sig;
	mark_requested = 1;
}

/* Reads a small /proc file into buf (NUL-terminated); -1 if it is gone. */
static ssize_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, off = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + off, len - 1 - (size_t)off)) > 0)
		off += n;
	close(fd);
	buf[off] = '\0';
	return off;
}

/* The ppid and utime+stime (ticks) of pid from /proc/PID/stat. */
static int proc_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	int pp = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (slurp(path, buf, sizeof(buf)) <= 0)
		return -1;
	/* comm may hold spaces and parentheses: the fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &pp,
				&ut, &st) != 3)
		return -1;
	*ppid = pp;
	if (ticks)
		*ticks = ut + st;
	return 0;
}

/* A "Key:   N kB" field of a /proc status-like file, in KiB; -1 if absent. */
static long field_kb(const char *path, const char *key)
{
	char buf[8192], *p;
	size_t klen = strlen(key);

	if (slurp(path, buf, sizeof(buf)) <= 0)
		return -1;
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, klen) == 0 && p[klen] == ':')
			return strtol(p + klen + 1, NULL, 10);
	return -1;
}

static long pid_kb(pid_t pid, const char *file, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	return field_kb(path, key);
}

struct peaks {
	long others_rss, others_pss, tree_rss, tree_pss, worker_rss;
	int procs;
};

/* Every descendant of the meter now, into out; returns how many. */
static int tree(pid_t self, pid_t *out)
{
	static pid_t pids[MAXP], ppids[MAXP];
	static char in_tree[MAXP];
	int n = 0, changed = 1, nt = 0;
	struct dirent *de;
	DIR *d = opendir("/proc");

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && n < MAXP) {
		char *end;
		long v = strtol(de->d_name, &end, 10);

		if (*end != '\0' || v <= 0)
			continue;
		if (proc_stat((pid_t)v, &ppids[n], NULL) < 0)
			continue;
		pids[n] = (pid_t)v;
		in_tree[n] = ppids[n] == self;
		n++;
	}
	closedir(d);
	/* Close the parent relation: a few passes, trees here are shallow. */
	while (changed) {
		changed = 0;
		for (int i = 0; i < n; i++) {
			if (in_tree[i])
				continue;
			for (int j = 0; j < n; j++)
				if (in_tree[j] && pids[j] == ppids[i]) {
					in_tree[i] = 1;
					changed = 1;
					break;
				}
		}
	}
	for (int i = 0; i < n; i++)
		if (in_tree[i])
			out[nt++] = pids[i];
	return nt;
}

/* One sample: the RSS and PSS of every descendant, summed. */
static void sample(pid_t self, pid_t worker, struct peaks *pk)
{
	static pid_t t[MAXP];
	long orss = 0, opss = 0, wrss = 0, wpss = 0;
	int nt = tree(self, t);

	for (int i = 0; i < nt; i++) {
		long rss = pid_kb(t[i], "status", "VmRSS"), pss;

		if (rss < 0)
			continue; /* exited, or a zombie */
		pss = pid_kb(t[i], "smaps_rollup", "Pss");
		if (pss < 0)
			pss = rss;
		if (t[i] == worker) {
			wrss = rss;
			wpss = pss;
		} else {
			orss += rss;
			opss += pss;
		}
	}
	if (orss > pk->others_rss)
		pk->others_rss = orss;
	if (opss > pk->others_pss)
		pk->others_pss = opss;
	if (orss + wrss > pk->tree_rss)
		pk->tree_rss = orss + wrss;
	if (opss + wpss > pk->tree_pss)
		pk->tree_pss = opss + wpss;
	if (wrss > pk->worker_rss)
		pk->worker_rss = wrss;
	if (nt > pk->procs)
		pk->procs = nt;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A cpuacct cgroup for the worker; its path in cg, or "" if unavailable. */
static void cg_make(char *cg, size_t len)
{
	snprintf(cg, len, "/sys/fs/cgroup/cpuacct/al-bench-%d", (int)getpid());
	if (mkdir(cg, 0755) < 0)
		cg[0] = '\0';
}

static double cg_usage_s(const char *cg)
{
	char path[256], buf[64];

	snprintf(path, sizeof(path), "%s/cpuacct.usage", cg);
	if (slurp(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtoull(buf, NULL, 10) / 1e9;
}

#define MAXS	 256
#define MAXCALLS 20000

struct stream {
	int fd, done, nuse, nres;
	size_t len;
	char buf[1 << 16];
	char (*use_id)[40], (*res_id)[40];
	double *use_t, *res_t;
};

/* Copies the sevt_ id after key in ev into out; 0 if found. */
static int id_after(const char *ev, const char *key, char out[40])
{
	const char *p = strstr(ev, key);
	size_t n = 0;

	if (p == NULL)
		return -1;
	p += strlen(key);
	while (p[n] && p[n] != '"' && n < 39)
		n++;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* One complete SSE frame ("event: TYPE\ndata: JSON") seen at time t. */
static void on_frame(struct stream *s, const char *f, double t)
{
	if (strstr(f, "event: agent.tool_use\n") && s->nuse < MAXCALLS) {
		if (id_after(f, "\"id\":\"", s->use_id[s->nuse]) == 0)
			s->use_t[s->nuse++] = t;
	} else if (strstr(f, "event: user.tool_result\n") && s->nres < MAXCALLS) {
		if (id_after(f, "\"tool_use_id\":\"", s->res_id[s->nres]) == 0)
			s->res_t[s->nres++] = t;
	} else if (strstr(f, "event: session.status_idle\n") && strstr(f, "\"end_turn\"")) {
		s->done = 1;
	}
}

static int observe(int argc, char **argv)
{
	static struct stream st[MAXS];
	static struct pollfd pfd[MAXS];
	static double rt[MAXS * MAXCALLS];
	const char *host, *key;
	int port, ns, ndone = 0, nrt = 0, unanswered = 0;
	double deadline;

	if (argc < 6 || argc - 5 > MAXS) {
		fprintf(stderr, "usage: bench-worker observe HOST PORT KEY SESSION_ID...\n");
		return 2;
	}
	host = argv[2];
	port = (int)strtol(argv[3], NULL, 10);
	key = argv[4];
	ns = argc - 5;
	for (int i = 0; i < ns; i++) {
		char req[1024];
		int n = snprintf(req, sizeof(req),
				 "GET /v1/sessions/%s/events/stream HTTP/1.1\r\nHost: %s\r\n"
				 "x-api-key: %s\r\nanthropic-beta: managed-agents-2026-04-01\r\n"
				 "Accept: text/event-stream\r\n\r\n",
				 argv[5 + i], host, key);

		st[i].use_id = calloc(MAXCALLS, 40);
		st[i].res_id = calloc(MAXCALLS, 40);
		st[i].use_t = calloc(MAXCALLS, sizeof(double));
		st[i].res_t = calloc(MAXCALLS, sizeof(double));
		if (!st[i].use_id || !st[i].res_id || !st[i].use_t || !st[i].res_t) {
			fprintf(stderr, "out of memory\n");
			return 1;
		}
		st[i].fd = dial(host, port);
		send_all(st[i].fd, req, (size_t)n);
	}
	deadline = now_us() + 600e6;
	while (ndone < ns && now_us() < deadline) {
		for (int i = 0; i < ns; i++)
			pfd[i] =
			    (struct pollfd){.fd = st[i].done ? -1 : st[i].fd, .events = POLLIN};
		if (poll(pfd, (nfds_t)ns, 1000) < 0 && errno != EINTR) {
			perror("poll");
			return 1;
		}
		double t = now_us();
		for (int i = 0; i < ns; i++) {
			struct stream *s = &st[i];
			char *f, *end;
			ssize_t r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
			if (r <= 0) {
				fprintf(stderr, "stream %d closed\n", i);
				return 1;
			}
			s->len += (size_t)r;
			s->buf[s->len] = '\0';
			/* Frames end with a blank line; keep an incomplete one for later. */
			for (f = s->buf; (end = strstr(f, "\n\n")) != NULL; f = end + 2) {
				*end = '\0';
				on_frame(s, f, t);
			}
			s->len -= (size_t)(f - s->buf);
			memmove(s->buf, f, s->len);
			if (s->len == sizeof(s->buf) - 1) /* a frame larger than the buffer */
				s->len = 0;
			if (s->done)
				ndone++;
		}
	}
	for (int i = 0; i < ns; i++) {
		struct stream *s = &st[i];

		for (int u = 0; u < s->nuse; u++) {
			int found = 0;

			for (int k = 0; k < s->nres && !found; k++)
				if (strcmp(s->use_id[u], s->res_id[k]) == 0) {
					found = 1;
					if (u > 0)
						rt[nrt++] = (s->res_t[k] - s->use_t[u]) / 1e3;
				}
			unanswered += !found;
		}
		close(s->fd);
	}
	qsort(rt, (size_t)nrt, sizeof(rt[0]), cmp_double);
#define PCT(p) (nrt ? rt[(size_t)((p) / 100.0 * (nrt - 1) + 0.5)] : 0.0)
	printf("{\"sessions\":%d,\"finished\":%d,\"samples\":%d,\"unanswered\":%d,\"p50_ms\":%.3f,"
	       "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
	       ns, ndone, nrt, unanswered, PCT(50), PCT(90), PCT(99), nrt ? rt[nrt - 1] : 0.0);
#undef PCT
	return ndone == ns && unanswered == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct peaks pk = {0};
	struct sigaction sa;
	struct rusage ru;
	char cg[128];
	long interval_ms = 20, hwm, mark_rss = -1, mark_anon = -1, mark_file = -1;
	unsigned long long wticks = 0;
	double t0, t_stop, t_end, cga = -1, cga_mark = -1, cga_work = -1;
	pid_t self = getpid(), worker, pp;
	int argi = 1, st, killed = 0;

	if (argc > 1 && strcmp(argv[1], "observe") == 0)
		return observe(argc, argv);

	if (argi + 1 < argc && strcmp(argv[argi], "-i") == 0) {
		interval_ms = strtol(argv[argi + 1], NULL, 10);
		argi += 2;
	}
	if (argi < argc && strcmp(argv[argi], "--") == 0)
		argi++;
	if (argi >= argc || interval_ms <= 0) {
		fprintf(stderr, "usage: bench-worker [-i INTERVAL_MS] -- COMMAND [ARGS...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		perror("prctl(PR_SET_CHILD_SUBREAPER)");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_mark;
	sigaction(SIGUSR1, &sa, NULL);
	cg_make(cg, sizeof(cg));
	t0 = now_s();
	worker = fork();
	if (worker < 0) {
		perror("fork");
		return 1;
	}
	if (worker == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGUSR1, SIG_DFL);
		if (cg[0]) {
			char path[256];
			FILE *f;

			snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
			if ((f = fopen(path, "w")) != NULL) {
				fprintf(f, "%d\n", (int)getpid());
				fclose(f);
			}
		}
		execvp(argv[argi], argv + argi);
		perror("exec");
		_exit(127);
	}
	while (!stop_requested) {
		struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
		pid_t r = waitpid(worker, &st, WNOHANG);

		if (r == worker) {
			fprintf(stderr, "bench-worker: the worker exited early (status %d)\n", st);
			worker = -1;
			break;
		}
		if (mark_requested && mark_rss < 0) {
			mark_rss = pid_kb(worker, "status", "VmRSS");
			mark_anon = pid_kb(worker, "status", "RssAnon");
			mark_file = pid_kb(worker, "status", "RssFile");
			if (cg[0])
				cga_mark = cg_usage_s(cg);
		}
		sample(self, worker, &pk);
		nanosleep(&ts, NULL);
	}
	t_stop = now_s();
	if (cga_mark >= 0)
		cga_work = cg_usage_s(cg) - cga_mark;
	hwm = worker > 0 ? pid_kb(worker, "status", "VmHWM") : -1;
	if (worker > 0 && proc_stat(worker, &pp, &wticks) == 0)
		sample(self, worker, &pk);
	if (worker > 0)
		kill(worker, SIGTERM);
	/* Reap the worker and everything reparented to us; SIGKILL stragglers. */
	for (;;) {
		pid_t r = waitpid(-1, &st, WNOHANG);

		if (r < 0 && errno == ECHILD)
			break;
		if (r > 0)
			continue;
		if (!killed && now_s() - t_stop > 15) {
			static pid_t t[MAXP];
			int nt = tree(self, t);

			fprintf(stderr,
				"bench-worker: the worker did not stop in 15 s; SIGKILL to all\n");
			for (int i = 0; i < nt; i++)
				kill(t[i], SIGKILL);
			killed = 1;
		}
		usleep(10000);
	}
	t_end = now_s();
	getrusage(RUSAGE_CHILDREN, &ru);
	if (cg[0]) {
		cga = cg_usage_s(cg);
		rmdir(cg);
	}
	printf("{\"wall_s\":%.3f,\"stop_s\":%.3f,\"worker_hwm_kb\":%ld,\"worker_rss_peak_kb\":%ld,"
	       "\"others_rss_peak_kb\":%ld,\"others_pss_peak_kb\":%ld,\"tree_rss_peak_kb\":%ld,"
	       "\"tree_pss_peak_kb\":%ld,\"max_procs\":%d,\"worker_cpu_s\":%.3f,"
	       "\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_s\":%.3f,\"cpuacct_s\":",
	       t_stop - t0, t_end - t_stop, hwm, pk.worker_rss, pk.others_rss, pk.others_pss,
	       pk.tree_rss, pk.tree_pss, pk.procs, (double)wticks / (double)sysconf(_SC_CLK_TCK),
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
		   ru.ru_stime.tv_usec / 1e6);
	if (cga >= 0)
		printf("%.3f", cga);
	else
		printf("null");
	if (cga_work >= 0)
		printf(",\"cpuacct_work_s\":%.3f", cga_work);
	else
		printf(",\"cpuacct_work_s\":null");
	printf(",\"worker_rss_at_mark_kb\":%ld,\"worker_anon_at_mark_kb\":%ld,"
	       "\"worker_file_at_mark_kb\":%ld,\"killed\":%s}\n",
	       mark_rss, mark_anon, mark_file, killed ? "true" : "false");
	return worker > 0 ? 0 : 1;
}
