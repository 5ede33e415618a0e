/*
 * landlock.c - Landlock through raw system calls (policy in landlock.h).
 *
 * Debian 12's <linux/landlock.h> stops at ABI 2, so the later constants are
 * defined here with the values of the kernel UAPI (include/uapi/linux/
 * landlock.h, Linux 6.2 for ABI 3 up to 6.12 for ABI 6). They are ABI: the
 * kernel can never change them.
 */
#include "sandbox/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* ABI 2 */
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0) /* ABI 4 */
#endif
#ifndef LANDLOCK_ACCESS_NET_CONNECT_TCP
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1) /* ABI 4 */
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1) /* ABI 6 */
#endif
/* enum landlock_rule_type: LANDLOCK_RULE_PATH_BENEATH = 1, LANDLOCK_RULE_NET_PORT = 2. */
#define AL_LANDLOCK_RULE_NET_PORT 2

/*
 * struct landlock_ruleset_attr grew a field at ABI 4 (handled_access_net)
 * and ABI 6 (scoped); we pass the size the running kernel knows.
 */
struct al_ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

/* struct landlock_net_port_attr (ABI 4); not packed in the UAPI. */
struct al_ll_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};

#define FS_ABI1                                                                                    \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |                              \
	 LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |                          \
	 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |                              \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |                              \
	 LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |                            \
	 LANDLOCK_ACCESS_FS_MAKE_SYM)

/* Rights that make sense on a non-directory (the kernel refuses the rest there). */
#define FS_FILE_RIGHTS                                                                             \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |                              \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

#define FS_READ_RIGHTS                                                                             \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

int al_landlock_abi(char *err, size_t errlen)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	if (v >= 1)
		return (int)v;
	if (errno == ENOSYS)
		snprintf(err, errlen, "landlock: not supported by this kernel (ENOSYS)");
	else if (errno == EOPNOTSUPP)
		snprintf(err, errlen,
			 "landlock: built in but disabled at boot (add landlock to lsm=)");
	else
		snprintf(err, errlen, "landlock: version query failed: %s", strerror(errno));
	return -EOPNOTSUPP;
}

struct al_landlock_handled al_landlock_handled_for_abi(int abi)
{
	struct al_landlock_handled h = {0, 0, 0};

	if (abi < 1)
		return h;
	h.fs = FS_ABI1;
	if (abi >= 2)
		h.fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		h.fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 4)
		h.net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
	if (abi >= 5)
		h.fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (abi >= 6)
		h.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
	return h;
}

static int add_path(int ruleset, const char *path, uint64_t access, char *err, size_t errlen)
{
	struct landlock_path_beneath_attr pb = {0};
	struct stat st;
	int fd, rc = 0;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0; /* documented: absent paths are skipped */
		rc = -errno;
		snprintf(err, errlen, "landlock: open %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "landlock: stat %s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISDIR(st.st_mode))
		access &= FS_FILE_RIGHTS;
	pb.allowed_access = access;
	pb.parent_fd = fd;
	if (access != 0 &&
	    syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0) {
		rc = -errno;
		snprintf(err, errlen, "landlock: rule for %s: %s", path, strerror(errno));
	}
done:
	close(fd);
	return rc;
}

static int add_ports(int ruleset, const uint16_t *ports, size_t n, uint64_t access, char *err,
		     size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		struct al_ll_net_port_attr np = {access, ports[i]};

		if (syscall(SYS_landlock_add_rule, ruleset, AL_LANDLOCK_RULE_NET_PORT, &np, 0) !=
		    0) {
			int rc = -errno;
			snprintf(err, errlen, "landlock: rule for port %u: %s", ports[i],
				 strerror(errno));
			return rc;
		}
	}
	return 0;
}

int al_landlock_apply(const struct al_landlock_rules *r, int *abi_in_force, char *err,
		      size_t errlen)
{
	const unsigned known =
	    AL_LANDLOCK_ALLOW_ABSTRACT_UNIX | AL_LANDLOCK_ALLOW_SIGNAL | AL_LANDLOCK_NET_UNHANDLED;
	struct al_ll_ruleset_attr attr = {0, 0, 0};
	struct al_landlock_handled h;
	size_t attr_size;
	int abi, ruleset = -1, rc;

	if (abi_in_force)
		*abi_in_force = 0;
	if (r == NULL || (r->flags & ~known)) {
		snprintf(err, errlen, "landlock: invalid rules or unknown flags");
		return -EINVAL;
	}
	abi = al_landlock_abi(err, errlen);
	if (abi < 0)
		return abi;
	h = al_landlock_handled_for_abi(abi);
	attr.handled_access_fs = h.fs;
	attr_size = sizeof(attr.handled_access_fs);
	if (abi >= 4) {
		if (!(r->flags & AL_LANDLOCK_NET_UNHANDLED))
			attr.handled_access_net = h.net;
		attr_size = offsetof(struct al_ll_ruleset_attr, scoped);
	}
	if (abi >= 6) {
		attr.scoped = h.scoped;
		if (r->flags & AL_LANDLOCK_ALLOW_ABSTRACT_UNIX)
			attr.scoped &= ~LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET;
		if (r->flags & AL_LANDLOCK_ALLOW_SIGNAL)
			attr.scoped &= ~LANDLOCK_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}

	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (ruleset < 0) {
		rc = -errno;
		snprintf(err, errlen, "landlock: create ruleset (ABI %d): %s", abi,
			 strerror(errno));
		goto done;
	}
	for (size_t i = 0; i < r->n_ro; i++) {
		rc = add_path(ruleset, r->ro_paths[i], FS_READ_RIGHTS & h.fs, err, errlen);
		if (rc < 0)
			goto done;
	}
	for (size_t i = 0; i < r->n_rw; i++) {
		rc = add_path(ruleset, r->rw_paths[i], h.fs, err, errlen);
		if (rc < 0)
			goto done;
	}
	if (attr.handled_access_net) {
		rc = add_ports(ruleset, r->bind_ports, r->n_bind, LANDLOCK_ACCESS_NET_BIND_TCP, err,
			       errlen);
		if (rc < 0)
			goto done;
		rc = add_ports(ruleset, r->connect_ports, r->n_connect,
			       LANDLOCK_ACCESS_NET_CONNECT_TCP, err, errlen);
		if (rc < 0)
			goto done;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		rc = -errno;
		snprintf(err, errlen, "landlock: no_new_privs: %s", strerror(errno));
		goto done;
	}
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
		rc = -errno;
		snprintf(err, errlen, "landlock: restrict_self: %s", strerror(errno));
		goto done;
	}
	if (abi_in_force)
		*abi_in_force = abi;
	rc = 0;
done:
	if (ruleset >= 0)
		close(ruleset);
	return rc;
}
