/*
 * runner.c - runs every registered unit test in its own process.
 *
 *   test-unit [SUBSTRING...]   run the tests whose name or file matches
 *   AL_TEST_NOFORK=1           run in-process (for a debugger)
 *   AL_TEST_TIMEOUT=SEC        per-test limit (default 60)
 *
 * Prints "ok"/"FAIL" per test and ends with "N passed, N failed".
 */
#include "unit/unit.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 2048

struct test {
	const char *name;
	const char *file;
	al_test_fn fn;
};

static struct test tests[MAX_TESTS];
static int ntests;
static char tmpdir[256];

void al_test_register(const char *name, const char *file, al_test_fn fn)
{
	if (ntests < MAX_TESTS)
		tests[ntests++] = (struct test){name, file, fn};
}

void al_test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	_exit(1);
}

const char *al_test_tmpdir(void)
{
	if (tmpdir[0] == '\0') {
		const char *base = getenv("TMPDIR");
		snprintf(tmpdir, sizeof(tmpdir), "%s/al-unit-XXXXXX", base ? base : "/tmp");
		if (mkdtemp(tmpdir) == NULL)
			al_test_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	}
	return tmpdir;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int selected(const struct test *t, int argc, char **argv)
{
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++)
		if (strstr(t->name, argv[i]) || strstr(t->file, argv[i]))
			return 1;
	return 0;
}

static int run_one(const struct test *t, int timeout)
{
	pid_t pid;
	int status = 0;

	if (getenv("AL_TEST_NOFORK")) {
		t->fn();
		return 0;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		alarm((unsigned)timeout);
		t->fn();
		if (tmpdir[0])
			nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		/*
		 * exit(), not _exit(): under ASan the leak checker runs at exit
		 * and turns a leak into a non-zero status, failing the test.
		 */
		exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "    killed by signal %d%s\n", WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
		return -1;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, timeout = 60;
	const char *t = getenv("AL_TEST_TIMEOUT");

	if (t)
		timeout = (int)strtol(t, NULL, 10);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < ntests; i++) {
		struct timespec a, b;

		if (!selected(&tests[i], argc, argv))
			continue;
		clock_gettime(CLOCK_MONOTONIC, &a);
		int rc = run_one(&tests[i], timeout);
		clock_gettime(CLOCK_MONOTONIC, &b);
		long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
		printf("%s unit %s (%s, %ld ms)\n", rc == 0 ? "ok  " : "FAIL", tests[i].name,
		       tests[i].file, ms);
		fflush(stdout);
		if (rc == 0)
			passed++;
		else
			failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
