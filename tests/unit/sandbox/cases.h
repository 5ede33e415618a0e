/*
 * cases.h - the functional cases both backends must pass (included by
 * test_native.c and test_bwrap.c with BACKEND_OPS and BACKEND_TAG defined).
 *
 * BACKEND_DEGRADED: the backend cannot apply every mechanism, so it runs
 * only with AL_SANDBOX_ALLOW_DEGRADED, and the result must say so. Neither
 * backend is degraded on this kernel (bwrap applies Landlock through its
 * helper, sandbox/inner.h).
 */
#include "unit/unit.h"

#include "core/alloc.h"
#include "sandbox/egress.h"
#include "sandbox/sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAT_(a, b)   a##b
#define CAT(a, b)    CAT_(a, b)
#define AL_TEST_X(n) AL_TEST(n)
#define CASE(name)   AL_TEST_X(CAT(CAT(sandbox_, BACKEND_TAG), CAT(_, name)))

static char ws_path[512];

/* A workspace the sandbox's uid can write: 65534 when we are root. */
static const char *make_ws(void)
{
	const char *t = al_test_tmpdir();
	/* Parents must be traversable by the sandbox uid (bwrap resolves as that uid). */
	chmod(t, 0755);
	snprintf(ws_path, sizeof(ws_path), "%s/ws", t);
	AL_ASSERT_INT_EQ(mkdir(ws_path, 0755), 0);
	if (geteuid() == 0)
		AL_ASSERT_INT_EQ(chown(ws_path, 65534, 65534), 0);
	return ws_path;
}

static struct al_sandbox *make_sb_with(struct al_sandbox_policy *p)
{
	static const char *const env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
					  "LANG=C.UTF-8", "AL_TEST_MARK=visible"};
	struct al_sandbox *sb = NULL;
	char err[512] = "";

	if (p->workspace == NULL)
		p->workspace = make_ws();
	p->env = env;
	p->n_env = 4;
	if (BACKEND_DEGRADED)
		p->flags |= AL_SANDBOX_ALLOW_DEGRADED;
	int rc = al_sandbox_new(&BACKEND_OPS, p, &sb, err, sizeof(err));
	if (rc < 0)
		al_test_fail(__FILE__, __LINE__, "create: %d %s", rc, err);
	return sb;
}

static struct al_sandbox *make_sb(void)
{
	struct al_sandbox_policy p;
	al_sandbox_policy_init(&p);
	p.timeout_ms = 10000;
	p.memory_mb = 256;
	p.pids = 64;
	return make_sb_with(&p);
}

/* Runs `sh -c script`, asserting the call itself succeeds. */
static void run_sh(struct al_sandbox *sb, const char *script, struct al_sandbox_result *r)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	char err[512] = "";
	int rc = al_sandbox_exec(sb, argv, NULL, r, err, sizeof(err));
	if (rc < 0)
		al_test_fail(__FILE__, __LINE__, "exec: %d %s", rc, err);
}

CASE(exit_codes)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;

	run_sh(sb, "exit 0", &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_INT_EQ(r.signal, 0);
	AL_ASSERT_STR_EQ(r.backend, BACKEND_OPS.name);
	/* The mechanisms in force are recorded; a missing one is never hidden. */
	AL_ASSERT_INT_EQ(r.seccomp, 1);
	if (BACKEND_DEGRADED)
		AL_ASSERT_INT_EQ(r.landlock_abi, 0);
	else
		AL_ASSERT_INT_GE(r.landlock_abi, 1);
	al_sandbox_result_clear(&r);
	run_sh(sb, "exit 42", &r);
	AL_ASSERT_INT_EQ(r.exit_code, 42);
	AL_ASSERT_INT_EQ(al_sandbox_result_status(&r), 42);
	al_sandbox_result_clear(&r);
	{
		const char *argv[] = {"no-such-command-xyz", NULL};
		char err[256];
		AL_ASSERT_INT_EQ(al_sandbox_exec(sb, argv, NULL, &r, err, sizeof(err)), 0);
		AL_ASSERT_INT_EQ(r.exit_code, BACKEND_ENOENT_EXIT);
		al_sandbox_result_clear(&r);
	}
	al_sandbox_free(sb);
}

CASE(signal)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;

	run_sh(sb, "kill -TERM $$", &r);
	AL_ASSERT_INT_EQ(r.signal, 15);
	AL_ASSERT_INT_EQ(al_sandbox_result_status(&r), 143);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(stdout_stderr_and_hash)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;

	run_sh(sb, "printf hello; printf oops >&2", &r);
	AL_ASSERT_STR_EQ(r.out.head, "hello");
	AL_ASSERT_STR_EQ(r.err.head, "oops");
	AL_ASSERT_INT_EQ(r.out.total, 5);
	/* sha256("hello") */
	AL_ASSERT_STR_EQ(r.out.sha256,
			 "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(timeout_kills_setsid_grandchildren)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;
	const char *ws = sb->workspace;
	char script[1024], marker[600];
	struct al_sandbox_exec_opts o = {0};
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	char err[256];

	/* A setsid'd grandchild that would write a file 2 s later if it survived. */
	snprintf(script, sizeof(script),
		 "setsid sh -c 'sleep 2; touch %s/survived' </dev/null >/dev/null 2>&1 & sleep 100",
		 ws);
	o.timeout_ms = 500;
	double t0 = al_sandbox_now_ms();
	AL_ASSERT_INT_EQ(al_sandbox_exec(sb, argv, &o, &r, err, sizeof(err)), 0);
	AL_ASSERT(al_sandbox_now_ms() - t0 < 5000);
	AL_ASSERT_INT_EQ(r.timed_out, 1);
	AL_ASSERT_INT_EQ(al_sandbox_result_status(&r), 124);
	al_sandbox_result_clear(&r);
	sleep(3);
	snprintf(marker, sizeof(marker), "%s/survived", ws);
	AL_ASSERT_INT_EQ(access(marker, F_OK), -1);
	al_sandbox_free(sb);
}

CASE(output_cap_head_tail_total)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;
	struct al_sandbox_exec_opts o = {0};
	const char *argv[] = {"/bin/sh", "-c",
			      "printf HEAD; head -c 3000000 /dev/zero | tr '\\0' x; printf TAIL",
			      NULL};
	char err[256];

	o.output_limit = 1000;
	AL_ASSERT_INT_EQ(al_sandbox_exec(sb, argv, &o, &r, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_INT_EQ(r.truncated, 1);
	AL_ASSERT_INT_EQ(r.out.total, 3000008);
	AL_ASSERT_INT_EQ(r.out.head_len, 500);
	AL_ASSERT_INT_EQ(r.out.tail_len, 500);
	AL_ASSERT(memcmp(r.out.head, "HEADxxx", 7) == 0);
	AL_ASSERT(memcmp(r.out.tail + 496, "TAIL", 4) == 0);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(env_scrubbed_hostname_cwd)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;
	char want[1024];

	setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak", 1);
	run_sh(sb, "env | sort | tr '\\n' ' '; echo; hostname; pwd", &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT(strstr(r.out.head, "sk-ant") == NULL);
	AL_ASSERT(strstr(r.out.head, "ANTHROPIC") == NULL);
	AL_ASSERT(strstr(r.out.head, "AL_TEST_MARK=visible") != NULL);
	snprintf(want, sizeof(want), "\nsandbox\n%s\n", sb->workspace);
	AL_ASSERT(strstr(r.out.head, want) != NULL);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(host_secrets_absent)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;

	run_sh(sb,
	       "for p in /root /home /var /etc/shadow /etc/ssh /etc/sudoers /sys /boot; do "
	       "[ -e $p ] && echo present $p; done; "
	       /* Of the host's /run nothing; bwrap's helper and egress live in /run/airlock. */
	       "for p in /run/* /run/airlock/*; do case $p in /run/airlock|/run/airlock/airlock|"
	       "/run/airlock/egress.sock|'/run/*'|'/run/airlock/*') ;; *) echo present $p;; esac; "
	       "done; cat /etc/passwd",
	       &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT(strstr(r.out.head, "present") == NULL);
	/* The generated passwd has no host accounts. */
	AL_ASSERT(strstr(r.out.head, "/root:") == NULL);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(workspace_writable_usr_readonly)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;
	char path[600];
	FILE *f;

	run_sh(sb,
	       "echo data > out.txt && touch /usr/x 2>/dev/null; echo rc=$?; "
	       "touch /etc/x 2>/dev/null; echo rc=$?; touch /x 2>/dev/null; echo rc=$?; "
	       "echo t > /tmp/t && cat /tmp/t",
	       &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_STR_EQ(r.out.head, "rc=1\nrc=1\nrc=1\nt\n");
	al_sandbox_result_clear(&r);
	snprintf(path, sizeof(path), "%s/out.txt", sb->workspace);
	f = fopen(path, "r");
	AL_ASSERT_NOT_NULL(f);
	fclose(f);
	AL_ASSERT_INT_EQ(access("/usr/x", F_OK), -1);
	al_sandbox_free(sb);
}

CASE(git_hooks_readonly)
{
	struct al_sandbox_policy p;
	struct al_sandbox_result r;
	char d[600];

	al_sandbox_policy_init(&p);
	p.workspace = make_ws();
	snprintf(d, sizeof(d), "%s/.git", p.workspace);
	AL_ASSERT_INT_EQ(mkdir(d, 0777), 0);
	chmod(d, 0777);
	snprintf(d, sizeof(d), "%s/.git/hooks", p.workspace);
	AL_ASSERT_INT_EQ(mkdir(d, 0777), 0);
	chmod(d, 0777);
	snprintf(d, sizeof(d), "%s/.git/config", p.workspace);
	FILE *f = fopen(d, "w");
	AL_ASSERT_NOT_NULL(f);
	fclose(f);
	chmod(d, 0666);
	struct al_sandbox *sb = make_sb_with(&p);
	run_sh(sb,
	       "echo evil > .git/hooks/pre-commit 2>/dev/null; echo $?; "
	       "echo x >> .git/config 2>/dev/null; echo $?; echo ok > .git/other; echo $?",
	       &r);
	/* dash: a failed redirection is status 2. */
	AL_ASSERT_STR_EQ(r.out.head, "2\n2\n0\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

/*
 * Regression (tests/escape, case write-outside): `.git` renamed away and a
 * fresh one planted with hooks of the sandbox's making, or a repository
 * without a hooks directory given one. Both must fail.
 */
CASE(git_dir_cannot_be_replaced)
{
	struct al_sandbox_policy p;
	struct al_sandbox_result r;
	char d[600];
	struct stat st;

	al_sandbox_policy_init(&p);
	p.workspace = make_ws();
	snprintf(d, sizeof(d), "%s/.git", p.workspace);
	AL_ASSERT_INT_EQ(mkdir(d, 0777), 0);
	chmod(d, 0777);
	struct al_sandbox *sb = make_sb_with(&p);
	run_sh(sb,
	       "mv .git .git-old 2>/dev/null; echo $?; "
	       "mkdir -p .git/hooks 2>/dev/null; echo evil > .git/hooks/pre-commit 2>/dev/null; "
	       "echo $?",
	       &r);
	AL_ASSERT_STR_EQ(r.out.head, "1\n2\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
	snprintf(d, sizeof(d), "%s/.git/hooks/pre-commit", p.workspace);
	AL_ASSERT_INT_EQ(stat(d, &st), -1);
	snprintf(d, sizeof(d), "%s/.git-old", p.workspace);
	AL_ASSERT_INT_EQ(stat(d, &st), -1);
}

/*
 * A `.git` planted as a symlink by one command (the workspace is the
 * sandbox's) must not be followed when the next command's mounts are made:
 * bwrap resolved it on the host (a bind of whatever it named, or every
 * later command failing to start). Only a real `.git` directory is bound.
 */
CASE(planted_git_symlink_is_not_followed)
{
	struct al_sandbox_result r;
	char d[700];

	snprintf(d, sizeof(d), "%s/gitout", al_test_tmpdir());
	AL_ASSERT_INT_EQ(mkdir(d, 0755), 0);
	struct al_sandbox *sb = make_sb();
	run_sh(sb, "ln -s ../gitout .git; echo $?", &r);
	AL_ASSERT_STR_EQ(r.out.head, "0\n");
	al_sandbox_result_clear(&r);
	/* The next command starts, and nothing of the host's is bound at the target. */
	run_sh(sb, "test -d ../gitout; echo $?; test -L .git; echo $?", &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_STR_EQ(r.out.head, "1\n0\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(network_loopback_only)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;

	run_sh(sb, "ls /proc/sys/net/ipv4/conf | tr '\\n' ' '; cat /proc/net/route | wc -l", &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_STR_EQ(r.out.head, "all default lo 1\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(pid_namespace)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;

	/* Only the sandbox's own processes are visible. */
	run_sh(sb, "ls /proc | grep -c '^[0-9]'", &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT(strtol(r.out.head, NULL, 10) <= 6);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(fork_bomb_contained)
{
	struct al_sandbox_policy p;
	struct al_sandbox_result r;

	al_sandbox_policy_init(&p);
	p.pids = 24;
	p.timeout_ms = 20000;
	struct al_sandbox *sb = make_sb_with(&p);
	run_sh(sb, "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done; echo spawned-all",
	       &r);
	AL_ASSERT(strstr(r.out.head, "spawned-all") == NULL);
	AL_ASSERT_INT_NE(r.exit_code, 0);
	al_sandbox_result_clear(&r);
	/* And the sandbox recovers: the leftovers were killed with the command. */
	run_sh(sb, "echo alive", &r);
	AL_ASSERT_STR_EQ(r.out.head, "alive\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(memory_bomb_contained)
{
	struct al_sandbox_policy p;
	struct al_sandbox_result r;

	al_sandbox_policy_init(&p);
	p.memory_mb = 64;
	p.timeout_ms = 30000;
	struct al_sandbox *sb = make_sb_with(&p);
	/* tail buffers a "line" without newline: 512 MiB of it. */
	run_sh(sb, "head -c 536870912 /dev/zero | tail -c 536870000 >/dev/null", &r);
	/* OOM-killed (cgroups: exit 137) or refused memory (rlimit mode): never 512 MiB. */
	AL_ASSERT_INT_NE(al_sandbox_result_status(&r), 0);
	AL_ASSERT(r.rusage.ru_maxrss < 100 * 1024);
	AL_ASSERT_INT_NE(r.limits, AL_LIMITS_NONE);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(shell_persists_cwd_env)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;
	char err[256];

	AL_ASSERT_INT_EQ(al_sandbox_shell(sb, "mkdir -p sub && cd sub && export FOO=bar", NULL, &r,
					  err, sizeof(err)),
			 0);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	al_sandbox_result_clear(&r);
	AL_ASSERT_INT_EQ(al_sandbox_shell(sb,
					  "echo \"$FOO\" $(basename \"$PWD\"); echo err >&2; "
					  "(exit 7)",
					  NULL, &r, err, sizeof(err)),
			 0);
	AL_ASSERT_STR_EQ(r.out.head, "bar sub\nerr\n");
	AL_ASSERT_INT_EQ(r.exit_code, 7);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(confinement)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;

	/* Nested user namespaces, mounts and io_uring-free clone3 fallbacks. */
	run_sh(sb,
	       "unshare -Ur true 2>/dev/null; echo userns=$?; "
	       "unshare -m true 2>/dev/null; echo mountns=$?; "
	       "mount -t tmpfs none /tmp 2>/dev/null; echo mount=$?; "
	       "cat /proc/self/status | grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' | tr -s "
	       "'\t' ' '",
	       &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT(strstr(r.out.head, "userns=0") == NULL);
	AL_ASSERT(strstr(r.out.head, "mountns=0") == NULL);
	AL_ASSERT(strstr(r.out.head, "mount=0") == NULL);
	AL_ASSERT(strstr(r.out.head, "CapEff: 0000000000000000") != NULL);
	AL_ASSERT(strstr(r.out.head, "CapBnd: 0000000000000000") != NULL);
	AL_ASSERT(strstr(r.out.head, "NoNewPrivs: 1") != NULL);
	AL_ASSERT(strstr(r.out.head, "Seccomp: 2") != NULL);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(host_process_memory_unreachable)
{
	struct al_sandbox *sb;
	struct al_sandbox_result r;

	/* Set before the sandbox exists: PID 1 starts as a copy of this process. */
	setenv("AL_TEST_HOST_SECRET", "sk-ant-host-secret-123", 1);
	sb = make_sb();
	run_sh(sb,
	       "for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null | tr '\\0' '\\n'; "
	       "done; dd if=/proc/1/mem bs=1 count=1 skip=4096 2>&1 | head -1",
	       &r);
	AL_ASSERT(strstr(r.out.head, "sk-ant-host-secret") == NULL);
	AL_ASSERT(strstr(r.out.head, "AL_TEST_HOST_SECRET") == NULL);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

CASE(disk_fill_capped)
{
	struct al_sandbox_policy p;
	struct al_sandbox_result r;
	char path[600];
	struct stat st;

	al_sandbox_policy_init(&p);
	p.tmp_mb = 8;
	p.fsize_max = 1 << 20;
	struct al_sandbox *sb = make_sb_with(&p);
	run_sh(sb,
	       "head -c 2097152 /dev/zero > big 2>/dev/null; echo ws=$?; "
	       "i=0; while [ $i -lt 12 ]; do head -c 1000000 /dev/zero > /tmp/f$i || break; "
	       "i=$((i+1)); done 2>/dev/null; echo tmpfiles=$i",
	       &r);
	/* RLIMIT_FSIZE stops the write at 1 MiB; the 8 MiB /tmp fills after 8 files. */
	AL_ASSERT(strstr(r.out.head, "ws=0") == NULL);
	AL_ASSERT(strstr(r.out.head, "tmpfiles=12") == NULL);
	al_sandbox_result_clear(&r);
	snprintf(path, sizeof(path), "%s/big", sb->workspace);
	AL_ASSERT_INT_EQ(stat(path, &st), 0);
	AL_ASSERT(st.st_size <= (1 << 20));
	al_sandbox_free(sb);
}

CASE(pid1_cannot_be_killed_from_inside)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;

	run_sh(sb,
	       "kill -KILL 1 2>/dev/null; kill -TERM 1 2>/dev/null; kill -KILL -1 2>/dev/null; "
	       "echo tried",
	       &r);
	al_sandbox_result_clear(&r);
	/* The sandbox still serves commands afterwards. */
	run_sh(sb, "echo alive", &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_STR_EQ(r.out.head, "alive\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

/*
 * Landlock is in force in the command, not just negotiated: with signal
 * scoping (ABI >= 6) the command cannot even probe PID 1 (native's init,
 * bwrap's init), which is outside its domain; a write outside the writable
 * paths is refused whatever the mounts say.
 */
CASE(landlock_in_force)
{
	struct al_sandbox *sb = make_sb();
	struct al_sandbox_result r;

	run_sh(sb, "kill -0 1 2>/dev/null; echo pid1=$?; kill -0 $$; echo self=$?", &r);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	if (BACKEND_DEGRADED)
		AL_ASSERT_INT_EQ(r.landlock_abi, 0);
	else
		AL_ASSERT_INT_GE(r.landlock_abi, 1);
	if (r.landlock_abi >= 6)
		AL_ASSERT_STR_EQ(r.out.head, "pid1=1\nself=0\n");
	else
		AL_ASSERT(strstr(r.out.head, "self=0") != NULL);
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb);
}

struct egress_seen {
	int denied, denied_evil;
};

static void egress_seen_cb(const struct al_egress_decision *d, void *data)
{
	struct egress_seen *s = data;
	if (d->event == AL_EGRESS_DENIED) {
		__atomic_add_fetch(&s->denied, 1, __ATOMIC_SEQ_CST);
		if (strcmp(d->host, "evil.example") == 0)
			__atomic_add_fetch(&s->denied_evil, 1, __ATOMIC_SEQ_CST);
	}
}

/*
 * Egress: HTTPS_PROXY points at the in-sandbox forwarder, which relays to
 * the host proxy; a non-allowlisted CONNECT is refused there (403, and the
 * decision reaches the policy's callback); no direct route exists.
 */
CASE(egress_through_host_proxy)
{
	static const char *const allow[] = {"example.com"};
	struct al_sandbox_policy p;
	struct al_sandbox_result r;
	struct egress_seen seen = {0, 0};

	al_sandbox_policy_init(&p);
	p.timeout_ms = 20000;
	p.egress_allow = allow;
	p.n_egress = 1;
	p.egress_cb = egress_seen_cb;
	p.egress_cb_data = &seen;
	struct al_sandbox *sb = make_sb_with(&p);
	const char *argv[] = {"/bin/bash", "-c",
			      "echo \"$HTTPS_PROXY\"; "
			      "exec 3<>/dev/tcp/127.0.0.1/3128 || exit 9; "
			      "printf 'CONNECT evil.example:443 HTTP/1.1\\r\\nHost: "
			      "evil.example:443\\r\\n\\r\\n' >&3; "
			      "head -1 <&3 | cut -d' ' -f2; exec 3>&-; "
			      "(exec 4<>/dev/tcp/1.1.1.1/80) 2>/dev/null; echo direct=$?",
			      NULL};
	char err[256];
	AL_ASSERT_INT_EQ(al_sandbox_exec(sb, argv, NULL, &r, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(r.exit_code, 0);
	AL_ASSERT_STR_EQ(r.out.head, "http://127.0.0.1:3128\n403\ndirect=1\n");
	al_sandbox_result_clear(&r);
	al_sandbox_free(sb); /* joins the proxy thread: every decision has been reported */
	AL_ASSERT_INT_GE(seen.denied_evil, 1);
}
