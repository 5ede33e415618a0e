/*
 * fileops_race.c - the worker's file operations (sandbox/fileops.h) under
 * attack from a process running inside a sandbox at the same time.
 *
 *   fileops_race BACKEND WORKSPACE OUTSIDE_DIR SECONDS
 *
 * Inside the sandbox a shell loop keeps swapping `WS/sub` between a real
 * directory and a symlink to OUTSIDE_DIR (a host path the sandbox cannot see,
 * but a symlink's target is only a string: the host would follow it), plants
 * `WS/link` -> OUTSIDE/victim and `WS/up` -> `..`. Meanwhile the host thread
 * writes, edits and reads through those names. OUTSIDE/victim (mode 0666, so
 * only the confinement protects it) must never change and its content must
 * never come back; `..` and a hard-linked alias of an outside file must be
 * refused. Linked against build/libairlock.a at test time; exit 0 = contained.
 */
#include "sandbox/fileops.h"
#include "sandbox/sandbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *secret = "OUTSIDE-SECRET-CONTENT";
static int escapes;

struct args {
	struct al_sandbox *sb;
	const char *outside;
	int seconds;
};

static void *attacker_run(void *arg)
{
	struct args *a = arg;
	struct al_sandbox_result r;
	char err[256] = "", secs[16];
	static const char script[] =
	    "end=$(( $(date +%s) + $1 )); i=0\n"
	    "while [ $(date +%s) -lt $end ]; do\n"
	    "  rm -rf sub; mkdir sub; echo inside > sub/victim\n"
	    "  rm -rf sub; ln -s \"$2\" sub\n"
	    "  ln -sfn \"$2/victim\" link; ln -sfn .. up; ln -sfn /proc/1/root root1\n"
	    "  mv sub sub2 2>/dev/null; mv sub2 sub 2>/dev/null\n"
	    "  i=$((i+1))\n"
	    "done; echo swaps=$i\n";
	snprintf(secs, sizeof(secs), "%d", a->seconds);
	const char *argv[] = {"/bin/sh", "-c", script, "sh", secs, a->outside, NULL};
	memset(&r, 0, sizeof(r));
	if (al_sandbox_exec(a->sb, argv, NULL, &r, err, sizeof(err)) < 0)
		fprintf(stderr, "attacker exec: %s\n", err);
	else
		printf("attacker: %s", r.out.head ? r.out.head : "(no output)\n");
	al_sandbox_result_clear(&r);
	return NULL;
}

static void check_victim(const char *outside)
{
	char p[4096], b[256];
	snprintf(p, sizeof(p), "%s/victim", outside);
	FILE *f = fopen(p, "r");
	size_t n = f ? fread(b, 1, sizeof(b) - 1, f) : 0;
	if (f)
		fclose(f);
	b[n] = '\0';
	if (strcmp(b, secret) != 0) {
		printf("ESCAPE: %s changed to '%.40s'\n", p, b);
		escapes++;
	}
}

int main(int argc, char **argv)
{
	static const char *const env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
	struct al_sandbox_policy p;
	struct al_sandbox *sb = NULL;
	struct al_fileops_root *root = NULL;
	char err[512] = "";
	pthread_t th;
	int rc;

	if (argc != 5) {
		fprintf(stderr, "usage: fileops_race BACKEND WORKSPACE OUTSIDE SECONDS\n");
		return 2;
	}
	const struct al_sandbox_backend_ops *ops = al_sandbox_backend_find(argv[1]);
	const char *ws = argv[2], *outside = argv[3];
	struct args a = {NULL, outside, atoi(argv[4])};
	al_sandbox_policy_init(&p);
	p.workspace = ws;
	p.env = env;
	p.n_env = 2;
	p.timeout_ms = (unsigned)(a.seconds + 10) * 1000;
	p.flags = strcmp(argv[1], "bwrap") == 0 ? AL_SANDBOX_ALLOW_DEGRADED : 0;
	if (ops == NULL || (rc = al_sandbox_new(ops, &p, &sb, err, sizeof(err))) < 0) {
		fprintf(stderr, "sandbox: %s\n", err);
		return 3;
	}
	if ((rc = al_fileops_open_root(ws, &root)) < 0) {
		fprintf(stderr, "open root: %s\n", strerror(-rc));
		return 3;
	}
	/* A hard-linked alias of an outside file (the workspace shares the filesystem). */
	{
		char src[4096], dst[4096];
		snprintf(src, sizeof(src), "%s/hl-target", outside);
		snprintf(dst, sizeof(dst), "%s/hardlink", ws);
		if (link(src, dst) == 0) {
			rc = al_fileops_write(root, "hardlink", "PWNED", 5, NULL, err, sizeof(err));
			if (rc != -EMLINK) {
				printf("ESCAPE: write to a hard-linked outside file: %d\n", rc);
				escapes++;
			} else {
				printf("ok: hard-linked target refused (EMLINK)\n");
			}
			unlink(dst);
		} else {
			printf("ok: no hard link possible here (%s)\n", strerror(errno));
		}
	}
	{
		char rel[4096];
		snprintf(rel, sizeof(rel), "../%s/victim", strrchr(outside, '/') + 1);
		rc = al_fileops_write(root, rel, "PWNED", 5, NULL, err, sizeof(err));
		printf("%s: write %s: %d\n", rc < 0 ? "ok" : "ESCAPE", rel, rc);
		escapes += rc >= 0;
		char abs[4096];
		snprintf(abs, sizeof(abs), "%s/victim", outside);
		rc = al_fileops_write(root, abs, "PWNED", 5, NULL, err, sizeof(err));
		printf("%s: write %s: %d\n", rc < 0 ? "ok" : "ESCAPE", abs, rc);
		escapes += rc >= 0;
	}
	a.sb = sb;
	pthread_create(&th, NULL, attacker_run, &a);
	static const char *const names[] = {
	    "sub/victim",	"link",	  "up/victim", "sub/../sub/victim", "up/../victim",
	    "root1/etc/passwd", "sub/new"};
	long attempts = 0, refused = 0, leaked = 0;
	double end = al_sandbox_now_ms() + a.seconds * 1000.0;
	while (al_sandbox_now_ms() < end) {
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			struct al_fileops_out out = {0};
			attempts++;
			if (al_fileops_write(root, names[i], "PWNED", 5, NULL, err, sizeof(err)) <
			    0)
				refused++;
			al_fileops_edit(root, names[i], "SECRET", "PWNED", true, NULL, err,
					sizeof(err));
			if (al_fileops_read(root, names[i], NULL, &out, NULL, err, sizeof(err)) ==
				0 &&
			    out.text.data && strstr(out.text.data, secret)) {
				leaked++;
			}
			al_fileops_out_free(&out);
			memset(&out, 0, sizeof(out));
			if (al_fileops_grep(root, "SECRET", NULL, &out, NULL, err, sizeof(err)) >=
				0 &&
			    out.text.data && strstr(out.text.data, secret))
				leaked++;
			al_fileops_out_free(&out);
		}
		check_victim(outside);
		if (escapes)
			break;
	}
	pthread_join(th, NULL);
	check_victim(outside);
	if (leaked) {
		printf("ESCAPE: outside content read back %ld times\n", leaked);
		escapes++;
	}
	printf("host operations: %ld, refused %ld, leaked %ld\n", attempts, refused, leaked);
	al_fileops_close_root(root);
	al_sandbox_free(sb);
	printf("fileops race: %d escape(s)\n", escapes);
	return escapes ? 1 : 0;
}
