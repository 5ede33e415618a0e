/*
 * inner.h - the in-sandbox helper of the bwrap backend.
 *
 * bubblewrap builds the namespaces, the mounts and loads the seccomp filter,
 * then execs one program. That program is airlock itself: bwrap.c binds the
 * running executable (/proc/self/exe, resolved on the host) read-only at
 * AL_INNER_EXE and runs
 *
 *   /run/airlock/airlock sandbox inner --report-fd N [--landlock-ro P]...
 *       [--landlock-rw P]... [--forward PORT:SOCK] [--rlimit-as BYTES] -- CMD...
 *
 * which, inside the sandbox and already under bwrap's seccomp filter (the
 * same filter as native: AF_UNIX stays allowed, so the forwarder can dial
 * the proxy socket):
 *   1. refuses unless it recognises the sandbox (al_sandbox_inner_detect);
 *   2. applies Landlock with the rules given (native's rules: reads from /,
 *      writes to the workspace, /tmp, /dev, /proc; TCP left to the netns;
 *      signals and abstract sockets scoped), recording the ABI in force;
 *   3. with --forward, starts the egress forwarder (forwarder.h) in a
 *      double-forked child (so it is not a child of the command: it belongs
 *      to bwrap's PID 1 and dies with the pid namespace) under that domain,
 *      and waits until it listens; HTTP(S)_PROXY point at it;
 *   4. enters a nested Landlock domain scoping signals (ABI >= 6), so the
 *      command can signal neither the forwarder nor bwrap's PID 1;
 *   5. writes a struct al_inner_report to the report fd (the host's spawn
 *      waits for it: it carries the Landlock ABI and seccomp mode in force,
 *      or the reason the setup failed), closes every fd but 0-2 and execs
 *      CMD from the policy's PATH (127/126 when it cannot, like native).
 *
 * Any failure before the exec is reported and ends with exit 125: the
 * command never runs with less confinement than the host asked for.
 *
 * The entry point runs from a constructor of this object (before main), so
 * every binary that embeds the engine (airlock, the unit tests, the escape
 * suite's fileops_race) can serve as its own helper; `airlock sandbox
 * inner` in cmd_sandbox.c calls the same function (it refuses on the host).
 */
#ifndef AL_SANDBOX_INNER_H
#define AL_SANDBOX_INNER_H

#include <stddef.h>
#include <stdint.h>

#define AL_INNER_EXE "/run/airlock/airlock"
/* Set by bwrap.c with --setenv; removed again before the command's exec. */
#define AL_INNER_ENV "AIRLOCK_SANDBOX_INNER"

/* Written once by the helper, before the exec or before exit 125. */
struct al_inner_report {
	int32_t status;	      /* 0, or a negative errno */
	int32_t landlock_abi; /* ABI in force; 0 when no rules were given */
	int32_t seccomp;      /* 1 when /proc/self/status says "Seccomp: 2" (filter mode) */
	char msg[200];	      /* why setup failed; NUL-terminated */
};

/*
 * 0 when the calling process is inside a sandbox built by bwrap.c: the
 * AL_INNER_ENV marker is "1", PID 1 is bwrap (/proc/1/comm; a host's PID 1
 * is systemd or another init), we are in a user namespace that does not map
 * the whole id range, and the network namespace has loopback only. Else
 * -EPERM with a message naming the check that failed.
 */
int al_sandbox_inner_detect(char *err, size_t errlen);

/*
 * The helper: argv[0] is "inner", the options as above. Returns only on
 * failure, with the exit status to use (125; 2 for a usage error).
 */
int al_sandbox_inner_main(int argc, char **argv);

/*
 * Host side: waits up to timeout_ms for the helper's report on fd. 0 with
 * *rep filled, -EPIPE when the fd closed without one (bwrap or the helper
 * died first), -ETIMEDOUT, or another negative errno.
 */
int al_sandbox_inner_read_report(int fd, int timeout_ms, struct al_inner_report *rep);

#endif
