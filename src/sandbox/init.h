/*
 * init.h - the native backend's PID 1 and its protocol with the host.
 *
 * After clone() into fresh user/mount/pid/net/ipc/uts namespaces the child
 * runs al_init_main: it builds the new root, pivots into it, drops every
 * capability and then serves requests from the host on a SOCK_SEQPACKET
 * control socket. Each request carries cwd + argv and four fds (stdin,
 * stdout, stderr, a result socket); init forks a "runner" per request, a child
 * subreaper that starts the command (setsid, rlimits, execve; Landlock,
 * seccomp and no_new_privs are already in force, applied by PID 1 after the
 * setup), forwards signals to it, and when it ends (or when the host
 * writes 'K' on the result socket) kills every remaining descendant, then
 * writes a struct al_init_result to the result socket.
 *
 * When the host closes the control socket init exits, and the kernel kills
 * everything left in the pid namespace. This holds when the host is killed
 * with SIGKILL too: after its setup init only ever waits in poll() on the
 * control socket (runners do the work), so it sees the hang-up at once. Its
 * parent-death signal is no help: setresuid clears it.
 *
 * Memory: everything init needs is prepared before clone() and read from the
 * copy-on-write image; after clone nothing is allocated, so a host process
 * with other threads cannot leave a malloc lock held in the child.
 */
#ifndef AL_SANDBOX_INIT_H
#define AL_SANDBOX_INIT_H

#include "sandbox/limits.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"

#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define AL_INIT_MSG_MAX 65536 /* a request: cwd and argv, NUL-separated */

struct al_init_config {
	const struct al_sandbox *sb; /* policy copies (read-only after clone) */
	uid_t uid;		     /* id inside == id outside (a one-id map) */
	gid_t gid;
	int host_root; /* the host side runs as root: setgroups + setresuid to uid/gid */
	int ctl_fd;    /* the init end of the control socket */
	/*
	 * Read end from the host: one byte once it has written the id maps (PID 1
	 * then builds the root), then one byte, the limits mode, once PID 1 sits
	 * in its cgroup (PID 1 then roots its cgroup namespace and starts things).
	 */
	int sync_fd;
	struct al_limits limits;
	enum al_limits_mode mode;	       /* set by PID 1 from the host's second byte */
	const struct al_seccomp_prog *seccomp; /* prepared by the host; NULL: degraded */
	int landlock_abi;		       /* 0: degraded (not applied) */
	const char *egress_sock;	       /* host path of the proxy socket; NULL: no egress */
};

/* Sent by init once, after setup: status 0, or a negative errno and a message. */
struct al_init_hello {
	int32_t status;
	int32_t landlock_abi;
	int32_t seccomp;
	char msg[256];
};

/* Written by a runner to the request's result socket. */
struct al_init_result {
	int32_t wait_status; /* as from waitpid */
	int32_t exec_errno;  /* non-zero when the command could not be started */
	int32_t killed;	     /* ended by a 'K' request */
	struct rusage rusage;
};

/* The cloned child's body; never returns. */
_Noreturn void al_init_main(const struct al_init_config *c);

#endif
