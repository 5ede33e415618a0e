/*
 * seccomp.c - builds the sandbox's libseccomp filter (policy in seccomp.h).
 */
#include "sandbox/seccomp.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/filter.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"

#define AL_SECCOMP_KNOWN_FLAGS                                                                     \
	(AL_SECCOMP_DENY_UNIX | AL_SECCOMP_DENY_INET | AL_SECCOMP_ALLOW_PTRACE)

/* Denied outright with EPERM. */
static const char *const deny_eperm[] = {
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "memfd_secret", /* memory the kernel cannot reach: no tool needs it, it blocks hibernation */
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "vhangup",
    "syslog",
    "uselib",
    "chroot",
};

/* The ptrace family, also EPERM unless AL_SECCOMP_ALLOW_PTRACE. */
static const char *const deny_ptrace[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd",
};

/*
 * ENOSYS: io_uring because its submissions run in kernel threads that seccomp
 * never sees; clone3 because its flags are behind a pointer the filter cannot
 * inspect, and glibc retries with clone (whose flags we can mask) only on
 * ENOSYS.
 */
static const char *const deny_enosys[] = {
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "clone3",
};

/*
 * Namespace flags refused in clone(2). CLONE_NEWTIME (0x80) is left out on
 * purpose: in clone(2) that bit belongs to the exit-signal byte (CSIGNAL), so
 * masking it would refuse ordinary forks; new time namespaces need unshare
 * or clone3, both refused above.
 */
static const uint64_t clone_ns_flags[] = {
    CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,	 CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

static int resolve(const char *name, char *err, size_t errlen)
{
	int nr = seccomp_syscall_resolve_name(name);

	/*
	 * A name libseccomp does not know would silently leave a hole, so fail
	 * closed: the caller refuses to run the sandbox.
	 */
	if (nr == __NR_SCMP_ERROR)
		snprintf(err, errlen, "seccomp: libseccomp does not know system call %s", name);
	return nr;
}

static int add_list(scmp_filter_ctx ctx, uint32_t action, const char *const *names, size_t n,
		    char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int nr = resolve(names[i], err, errlen);
		int rc;

		if (nr == __NR_SCMP_ERROR)
			return -ENOSYS;
		rc = seccomp_rule_add(ctx, action, nr, 0);
		if (rc < 0) {
			snprintf(err, errlen, "seccomp: rule for %s: %s", names[i], strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int add_rule(scmp_filter_ctx ctx, uint32_t action, int nr, const char *what, unsigned n,
		    const struct scmp_arg_cmp *cmp, char *err, size_t errlen)
{
	int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);

	if (rc < 0)
		snprintf(err, errlen, "seccomp: rule for %s: %s", what, strerror(-rc));
	return rc;
}

/* Builds the filter into *out (the caller releases it with seccomp_release). */
static int build(unsigned flags, scmp_filter_ctx *out, char *err, size_t errlen)
{
	scmp_filter_ctx ctx = NULL;
	int rc = -EINVAL;

	*out = NULL;
	if (flags & ~AL_SECCOMP_KNOWN_FLAGS) {
		snprintf(err, errlen, "seccomp: unknown flags 0x%x",
			 flags & ~AL_SECCOMP_KNOWN_FLAGS);
		goto fail;
	}
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "seccomp: seccomp_init failed");
		goto fail;
	}
	/*
	 * Only the native architecture is in the filter, so a system call
	 * through another ABI (i386 int 0x80; x32, whose numbers carry
	 * 0x40000000 and which libseccomp routes to this action on x86-64)
	 * kills the process instead of reaching a table we did not filter.
	 */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp: bad-arch action: %s", strerror(-rc));
		goto fail;
	}
	/*
	 * A binary search tree instead of a linear chain of comparisons: the
	 * filter runs on every system call in the sandbox, so this halves its
	 * load time and shortens each call's path through it.
	 */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp: optimise: %s", strerror(-rc));
		goto fail;
	}
	rc = add_list(ctx, SCMP_ACT_ERRNO(EPERM), deny_eperm,
		      sizeof(deny_eperm) / sizeof(deny_eperm[0]), err, errlen);
	if (rc < 0)
		goto fail;
	if (!(flags & AL_SECCOMP_ALLOW_PTRACE)) {
		rc = add_list(ctx, SCMP_ACT_ERRNO(EPERM), deny_ptrace,
			      sizeof(deny_ptrace) / sizeof(deny_ptrace[0]), err, errlen);
		if (rc < 0)
			goto fail;
	}
	rc = add_list(ctx, SCMP_ACT_ERRNO(ENOSYS), deny_enosys,
		      sizeof(deny_enosys) / sizeof(deny_enosys[0]), err, errlen);
	if (rc < 0)
		goto fail;

	/* clone(flags, ...): flags is argument 0 on x86-64 and arm64. */
	for (size_t i = 0; i < sizeof(clone_ns_flags) / sizeof(clone_ns_flags[0]); i++) {
		struct scmp_arg_cmp c =
		    SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]);
		rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), "clone", 1, &c, err,
			      errlen);
		if (rc < 0)
			goto fail;
	}

	/*
	 * personality(2): allow PER_LINUX (0) and the query 0xffffffff, refuse
	 * every other value (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...). The
	 * kernel reads an unsigned int, so only the low 32 bits matter. A
	 * libseccomp rule cannot compare one argument twice, so "neither all
	 * zeros nor all ones" is written as a union: a 32-bit value is neither
	 * exactly when some bit i is 1 while bit i+1 (mod 32) is 0, which is 32
	 * masked-equality rules.
	 */
	for (unsigned i = 0; i < 32; i++) {
		uint64_t one = 1ull << i, next = 1ull << ((i + 1) % 32);
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, one | next, one);
		rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), "personality", 1,
			      &c, err, errlen);
		if (rc < 0)
			goto fail;
	}

	/*
	 * The kernel's ioctl takes `unsigned int cmd`, so a request with junk in
	 * the upper 32 bits still means TIOCSTI: mask to the low 32 bits.
	 */
	{
		struct scmp_arg_cmp sti = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI);
		struct scmp_arg_cmp lnx = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX);

		rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), "ioctl(TIOCSTI)", 1,
			      &sti, err, errlen);
		if (rc < 0)
			goto fail;
		rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), "ioctl(TIOCLINUX)", 1,
			      &lnx, err, errlen);
		if (rc < 0)
			goto fail;
	}

	/*
	 * socket(domain, ...): the kernel reads an int, so AF_UNIX with junk in
	 * the upper bits is still AF_UNIX: mask. The "not AF_UNIX" rule compares
	 * all 64 bits, which can only refuse more, never less.
	 */
	if (flags & AL_SECCOMP_DENY_UNIX) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_UNIX);
		rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), "socket(AF_UNIX)", 1,
			      &c, err, errlen);
		if (rc < 0)
			goto fail;
	}
	/*
	 * Socket families other than Unix, IP and netlink are refused: some are
	 * not scoped by the network namespace at all (AF_VSOCK reaches the
	 * hypervisor and the host's vsock services; AF_CAN, AF_BLUETOOTH) and
	 * the rest (AF_ALG, AF_KCM, AF_RDS, AF_TIPC, AF_PACKET...) are kernel
	 * surface no tool needs. Families >= AF_MAX already fail in the kernel.
	 * Under DENY_INET the rule below refuses all of them anyway (and two
	 * rules with different actions on one value would be ambiguous).
	 */
	if (!(flags & AL_SECCOMP_DENY_INET)) {
		for (uint64_t fam = 0; fam < AF_MAX; fam++) {
			if (fam == AF_UNIX || fam == AF_INET || fam == AF_INET6 ||
			    fam == AF_NETLINK)
				continue;
			struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, fam);
			rc = add_rule(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket),
				      "socket(family)", 1, &c, err, errlen);
			if (rc < 0)
				goto fail;
		}
	}
	if (flags & AL_SECCOMP_DENY_INET) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_NE, AF_UNIX, 0);
		rc = add_rule(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), "socket(!AF_UNIX)", 1,
			      &c, err, errlen);
		if (rc < 0)
			goto fail;
	}
	*out = ctx;
	ctx = NULL;
	rc = 0;
fail:
	if (ctx)
		seccomp_release(ctx);
	return rc;
}

int al_seccomp_install(unsigned flags, char *err, size_t errlen)
{
	scmp_filter_ctx ctx = NULL;
	int rc = build(flags, &ctx, err, errlen);

	if (rc < 0)
		goto done;
	rc = seccomp_load(ctx);
	if (rc < 0)
		snprintf(err, errlen, "seccomp: loading the filter: %s", strerror(-rc));
done:
	if (ctx)
		seccomp_release(ctx);
	return rc;
}

int al_seccomp_export_bpf(unsigned flags, int fd, char *err, size_t errlen)
{
	scmp_filter_ctx ctx = NULL;
	int rc = build(flags, &ctx, err, errlen);

	if (rc < 0)
		goto done;
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		snprintf(err, errlen, "seccomp: exporting the filter: %s", strerror(-rc));
done:
	if (ctx)
		seccomp_release(ctx);
	return rc;
}

int al_seccomp_prepare(unsigned flags, struct al_seccomp_prog *out, char *err, size_t errlen)
{
	struct stat st;
	void *mem = NULL;
	int fd, rc;

	out->filter = NULL;
	out->len = 0;
	/* libseccomp 2.5 exports only to an fd; a memfd keeps it off the filesystem. */
	fd = memfd_create("al-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "seccomp: memfd_create: %s", strerror(errno));
		return rc;
	}
	rc = al_seccomp_export_bpf(flags, fd, err, errlen);
	if (rc < 0)
		goto done;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto done;
	}
	if (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0 ||
	    st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		snprintf(err, errlen, "seccomp: exported filter has an odd size (%lld bytes)",
			 (long long)st.st_size);
		rc = -EINVAL;
		goto done;
	}
	mem = al_malloc((size_t)st.st_size);
	if (mem == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if (pread(fd, mem, (size_t)st.st_size, 0) != (ssize_t)st.st_size) {
		rc = -EIO;
		snprintf(err, errlen, "seccomp: reading the exported filter failed");
		goto done;
	}
	out->filter = mem;
	out->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	mem = NULL;
	rc = 0;
done:
	al_free(mem);
	close(fd);
	return rc;
}

int al_seccomp_load_prepared(const struct al_seccomp_prog *prog)
{
	struct sock_fprog fprog;

	if (prog == NULL || prog->filter == NULL || prog->len == 0)
		return -EINVAL;
	fprog.len = prog->len;
	fprog.filter = prog->filter;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0)
		return -errno;
	return 0;
}

void al_seccomp_prog_free(struct al_seccomp_prog *prog)
{
	if (prog == NULL)
		return;
	al_free(prog->filter);
	prog->filter = NULL;
	prog->len = 0;
}
