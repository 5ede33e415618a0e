/*
 * seccomp.h - the sandbox's system-call filter (libseccomp).
 *
 * The policy is a hybrid: allow by default (agents run arbitrary toolchains)
 * and deny the families that widen the kernel attack surface or break the
 * other layers of the sandbox:
 *
 *   - architecture: only the native ABI is allowed; a system call made
 *     through any other ABI (x32 on x86-64, i386 via int 0x80) kills the
 *     whole process (SCMP_FLTATR_ACT_BADARCH = KILL_PROCESS). On x86-64
 *     libseccomp's generated filter sends every number with the x32 bit
 *     (0x40000000) to the bad-arch action; we rely on that and test it.
 *   - EPERM: kexec_load, kexec_file_load, bpf, perf_event_open, userfaultfd,
 *     keyctl, add_key, request_key, init_module, finit_module,
 *     delete_module, open_by_handle_at, name_to_handle_at, mount, umount2,
 *     pivot_root, move_mount, open_tree, fsopen, fsmount, fspick,
 *     mount_setattr, ptrace, process_vm_readv, process_vm_writev,
 *     process_madvise, pidfd_getfd, unshare, setns, swapon, swapoff, reboot,
 *     acct, quotactl, quotactl_fd, lookup_dcookie, iopl, ioperm, vhangup,
 *     syslog, uselib, chroot;
 *     clone with any CLONE_NEW* flag (masked rules on the flags argument);
 *     personality with anything but PER_LINUX (0) or the query 0xffffffff;
 *     ioctl TIOCSTI and TIOCLINUX (terminal injection, CVE-2017-5226),
 *     compared on the low 32 bits of the request as the kernel does.
 *   - ENOSYS: io_uring_setup/enter/register (io_uring operations bypass
 *     seccomp) and clone3 (its flags live in memory seccomp cannot read;
 *     ENOSYS, not EPERM, makes glibc fall back to clone, which we can check).
 *
 * Flags (combine with |; 0 is the standard policy):
 *   AL_SECCOMP_DENY_UNIX   socket(AF_UNIX) fails with EPERM (the srt
 *                          approach: no Unix socket can be created, so a
 *                          bind-mounted control socket cannot be reached).
 *                          Do not set it when the egress forwarder inside the
 *                          sandbox must dial the proxy's Unix socket after the
 *                          filter is loaded.
 *   AL_SECCOMP_DENY_INET   socket() of every family other than AF_UNIX fails
 *                          with EACCES (a sandbox with no network at all).
 *   AL_SECCOMP_ALLOW_PTRACE  leaves ptrace/process_vm_* allowed, for a
 *                          debugger inside the sandbox (the pid namespace and
 *                          the dropped capabilities still bound it).
 *
 * The filter is installed into the calling thread only (no TSYNC): call it
 * in the single-threaded sandbox child after fork/unshare and before exec.
 * libseccomp sets no_new_privs itself when loading, which is what the sandbox
 * wants anyway. Sanitizer note: LeakSanitizer needs ptrace, so a sanitized
 * child must run with ASAN_OPTIONS=detect_leaks=0 (or _exit).
 */
#ifndef AL_SANDBOX_SECCOMP_H
#define AL_SANDBOX_SECCOMP_H

#include <stddef.h>

#define AL_SECCOMP_DENY_UNIX	(1u << 0)
#define AL_SECCOMP_DENY_INET	(1u << 1)
#define AL_SECCOMP_ALLOW_PTRACE (1u << 2)

/*
 * Builds the filter for `flags` and loads it into the calling thread.
 * Returns 0, or a negative errno with a message in err (-EINVAL for unknown
 * flags, -ENOSYS if libseccomp cannot name a syscall, the kernel's error when
 * loading fails).
 */
int al_seccomp_install(unsigned flags, char *err, size_t errlen);

/*
 * Writes the same filter as classic BPF (struct sock_filter[] as the kernel
 * takes it) to fd, for bwrap's `--seccomp FD`. The fd is not closed or
 * rewound. Returns 0 or a negative errno with a message in err.
 */
int al_seccomp_export_bpf(unsigned flags, int fd, char *err, size_t errlen);

/*
 * A filter compiled ahead of time, so the child only has to load it. Build it
 * in the parent (libseccomp allocates; after fork in a multi-threaded parent
 * only async-signal-safe calls are safe) and load it in the child with
 * al_seccomp_load_prepared, which makes two prctl calls and nothing else.
 * It also saves the filter compilation on every sandbox start.
 * `filter` is owned (al_seccomp_prog_free); `len` counts instructions.
 */
struct al_seccomp_prog {
	void *filter; /* struct sock_filter[len] */
	unsigned short len;
};

/* Compiles the filter for `flags` into *out. 0 or a negative errno (message in err). */
int al_seccomp_prepare(unsigned flags, struct al_seccomp_prog *out, char *err, size_t errlen);

/*
 * Sets no_new_privs and loads a prepared filter into the calling thread.
 * Async-signal-safe. Returns 0 or a negative errno.
 */
int al_seccomp_load_prepared(const struct al_seccomp_prog *prog);

/* Frees the program; NULL or an empty program is fine. */
void al_seccomp_prog_free(struct al_seccomp_prog *prog);

#endif
