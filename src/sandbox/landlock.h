/*
 * landlock.h - Landlock confinement with the ABI negotiated at run time.
 *
 * The kernel's ABI version decides which access rights can be handled
 * (restricted); a right the kernel does not know cannot be handled and stays
 * allowed, so the set in force shrinks on old kernels and is reported:
 *
 *   ABI 1  filesystem: execute, read/write files, read dirs, remove, make_*
 *   ABI 2  + FS_REFER (link/rename across directories; before it, always denied)
 *   ABI 3  + FS_TRUNCATE
 *   ABI 4  + NET_BIND_TCP, NET_CONNECT_TCP (TCP ports only; UDP is not covered)
 *   ABI 5  + FS_IOCTL_DEV (ioctl on device files)
 *   ABI 6  + scopes: abstract Unix sockets and signals to processes outside
 *          the domain
 *   ABI 7  (audit logging flags only; nothing more to handle)
 *
 * Policy applied by al_landlock_apply:
 *   - every filesystem right the ABI knows is handled, so a path not listed
 *     is inaccessible (no read, write, exec, or directory listing);
 *   - ro_paths get execute + read_file + read_dir;
 *   - rw_paths get every handled filesystem right;
 *   - with ABI >= 4, TCP bind and connect are handled: only the listed
 *     ports are allowed. The default (no ports) is no TCP at all; the sandbox
 *     core lists the port of the in-sandbox egress forwarder in
 *     connect_ports. AL_LANDLOCK_NET_UNHANDLED leaves TCP to the network
 *     namespace instead;
 *   - with ABI >= 6, abstract Unix sockets and signals are scoped to the
 *     domain unless the matching AL_LANDLOCK_ALLOW_* flag is set.
 *
 * A listed path that does not exist is skipped (system layouts differ:
 * /lib64, /usr/lib32); any other failure to open it is an error. A
 * non-directory path gets only the rights that apply to files.
 *
 * Call it in the sandboxed child, single-threaded, before exec: the domain
 * applies to the calling thread and everything it starts afterwards. It sets
 * no_new_privs itself (required by landlock_restrict_self without
 * CAP_SYS_ADMIN; harmless when already set).
 */
#ifndef AL_SANDBOX_LANDLOCK_H
#define AL_SANDBOX_LANDLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Let processes connect to abstract Unix sockets outside the domain. */
#define AL_LANDLOCK_ALLOW_ABSTRACT_UNIX (1u << 0)
/* Let processes signal processes outside the domain. */
#define AL_LANDLOCK_ALLOW_SIGNAL (1u << 1)
/* Do not handle TCP bind/connect (leave networking to the netns). */
#define AL_LANDLOCK_NET_UNHANDLED (1u << 2)

/* All pointers are borrowed for the duration of the call. */
struct al_landlock_rules {
	const char *const *ro_paths;
	size_t n_ro;
	const char *const *rw_paths;
	size_t n_rw;
	const uint16_t *bind_ports; /* ABI >= 4 */
	size_t n_bind;
	const uint16_t *connect_ports; /* ABI >= 4 */
	size_t n_connect;
	unsigned flags; /* AL_LANDLOCK_* */
};

/* What a domain handles: the rights restricted by it. */
struct al_landlock_handled {
	uint64_t fs;
	uint64_t net;
	uint64_t scoped;
};

/*
 * The kernel's Landlock ABI version (>= 1), or -EOPNOTSUPP when Landlock is
 * not built in or disabled at boot (the message in err says which).
 */
int al_landlock_abi(char *err, size_t errlen);

/* The rights ABI `abi` can handle (all zero for abi < 1). */
struct al_landlock_handled al_landlock_handled_for_abi(int abi);

/*
 * Restricts the calling thread (and its future children) to `r`. On success
 * returns 0 and stores the ABI in force in *abi_in_force (may be NULL).
 * Returns -EOPNOTSUPP when Landlock is unavailable (distinct, so the caller
 * can refuse to run or record the weaker sandbox), -EINVAL for unknown flags,
 * or another negative errno with a message in err.
 */
int al_landlock_apply(const struct al_landlock_rules *r, int *abi_in_force, char *err,
		      size_t errlen);

#endif
