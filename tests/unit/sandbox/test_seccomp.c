/*
 * test_seccomp.c - the filter, loaded for real in a forked child.
 *
 * Each check runs in a grandchild (the filter cannot be removed once loaded)
 * that reports through its exit status: 0 when every expectation held, else
 * the line of the first one that failed (printed to stderr too). Children
 * leave with _exit: LeakSanitizer needs ptrace, which the filter denies.
 */
#include "sandbox/seccomp.h"
#include "unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_EXPECT(cond)                                                                         \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "    child %s:%d: %s (errno %d)\n", __FILE__, __LINE__,    \
				#cond, errno);                                                     \
			_exit(__LINE__ % 250 + 1);                                                 \
		}                                                                                  \
	} while (0)

/* Expects the raw system call to fail with `e`. */
#define CHILD_ERRNO(e, ...)                                                                        \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = syscall(__VA_ARGS__);                                                    \
		if (r_ != -1 || errno != (e)) {                                                    \
			fprintf(stderr, "    child %s:%d: syscall(%s) = %ld errno %d, want %d\n",  \
				__FILE__, __LINE__, #__VA_ARGS__, r_, errno, (e));                 \
			_exit(__LINE__ % 250 + 1);                                                 \
		}                                                                                  \
	} while (0)

static void install_or_die(unsigned flags)
{
	char err[256] = "";

	if (al_seccomp_install(flags, err, sizeof(err)) != 0) {
		fprintf(stderr, "    child: install: %s\n", err);
		_exit(250);
	}
}

/* Runs fn in a forked child and returns its wait status. */
static int run_child(void (*fn)(void))
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	AL_ASSERT(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	AL_ASSERT_INT_EQ(waitpid(pid, &status, 0), pid);
	return status;
}

static void denied_child(void)
{
	install_or_die(0);
	/* Arguments are junk on purpose: the filter answers before the kernel looks. */
	CHILD_ERRNO(EPERM, SYS_kexec_load, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_kexec_file_load, -1, -1, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_bpf, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_perf_event_open, 0, 0, -1, -1, 0);
	CHILD_ERRNO(EPERM, SYS_userfaultfd, 0);
	CHILD_ERRNO(EPERM, 447 /* memfd_secret */, 0);
	CHILD_ERRNO(EPERM, SYS_keyctl, 0, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_add_key, 0, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_request_key, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_init_module, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_finit_module, -1, 0, 0);
	CHILD_ERRNO(EPERM, SYS_delete_module, 0, 0);
	CHILD_ERRNO(EPERM, SYS_open_by_handle_at, -1, 0, 0);
	CHILD_ERRNO(EPERM, SYS_name_to_handle_at, -1, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_mount, 0, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_umount2, 0, 0);
	CHILD_ERRNO(EPERM, SYS_pivot_root, 0, 0);
	CHILD_ERRNO(EPERM, SYS_move_mount, -1, 0, -1, 0, 0);
	CHILD_ERRNO(EPERM, SYS_open_tree, -1, 0, 0);
	CHILD_ERRNO(EPERM, SYS_fsopen, 0, 0);
	CHILD_ERRNO(EPERM, SYS_fsmount, -1, 0, 0);
	CHILD_ERRNO(EPERM, SYS_fspick, -1, 0, 0);
	CHILD_ERRNO(EPERM, SYS_mount_setattr, -1, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_ptrace, 2 /* PTRACE_PEEKDATA */, getppid(), 0, 0);
	CHILD_ERRNO(EPERM, SYS_process_vm_readv, getppid(), 0, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_process_vm_writev, getppid(), 0, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_pidfd_getfd, -1, 0, 0);
	CHILD_ERRNO(EPERM, SYS_unshare, 0);
	CHILD_ERRNO(EPERM, SYS_setns, -1, 0);
	CHILD_ERRNO(EPERM, SYS_swapon, 0, 0);
	CHILD_ERRNO(EPERM, SYS_swapoff, 0);
	CHILD_ERRNO(EPERM, SYS_reboot, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_acct, 0);
	CHILD_ERRNO(EPERM, SYS_quotactl, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_lookup_dcookie, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_iopl, 0);
	CHILD_ERRNO(EPERM, SYS_ioperm, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_vhangup);
	CHILD_ERRNO(EPERM, SYS_syslog, 3, 0, 0);
	CHILD_ERRNO(EPERM, SYS_chroot, "/");
	CHILD_ERRNO(EPERM, SYS_personality, ADDR_NO_RANDOMIZE);
	CHILD_ERRNO(EPERM, SYS_personality, READ_IMPLIES_EXEC);
	CHILD_ERRNO(EPERM, SYS_personality, 0x80000000UL);
	CHILD_ERRNO(EPERM, SYS_personality, 0xfffffffeUL);
	CHILD_ERRNO(EPERM, SYS_personality, 0x7fffffffUL);
	CHILD_ERRNO(EPERM, SYS_personality, (1UL << 32) | PER_LINUX32);
	/* The harmless personality calls still work. */
	CHILD_EXPECT(personality(0xffffffff) != -1);
	CHILD_EXPECT(personality(PER_LINUX) != -1);
	/* Not denied: an ordinary call with bad arguments reaches the kernel. */
	CHILD_ERRNO(EBADF, SYS_close, -1);
}

AL_TEST(sandbox_seccomp_denies_dangerous_families)
{
	AL_ASSERT_INT_EQ(run_child(denied_child), 0);
}

static void *thread_fn(void *arg)
{
	return arg;
}

static void clone_child(void)
{
	pthread_t t;
	void *ret = NULL;
	pid_t pid;
	int status = 0;

	install_or_die(0);
	/* clone3 must be ENOSYS, not EPERM, so glibc falls back to clone. */
	CHILD_ERRNO(ENOSYS, SYS_clone3, 0, 0);
	CHILD_ERRNO(EPERM, SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_clone, CLONE_NEWNET | CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_unshare, CLONE_NEWUSER);
	/* fork (clone) and threads (clone3 -> ENOSYS -> clone) still work. */
	pid = fork();
	CHILD_EXPECT(pid >= 0);
	if (pid == 0)
		_exit(7);
	CHILD_EXPECT(waitpid(pid, &status, 0) == pid);
	CHILD_EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 7);
	CHILD_EXPECT(pthread_create(&t, NULL, thread_fn, (void *)0x5a) == 0);
	CHILD_EXPECT(pthread_join(t, &ret) == 0);
	CHILD_EXPECT(ret == (void *)0x5a);
}

AL_TEST(sandbox_seccomp_clone3_enosys_fork_and_threads_work)
{
	AL_ASSERT_INT_EQ(run_child(clone_child), 0);
}

static void io_uring_child(void)
{
	char params[120] = {0}; /* struct io_uring_params */

	install_or_die(0);
	CHILD_ERRNO(ENOSYS, SYS_io_uring_setup, 1, params);
	CHILD_ERRNO(ENOSYS, SYS_io_uring_enter, -1, 0, 0, 0, 0, 0);
	CHILD_ERRNO(ENOSYS, SYS_io_uring_register, -1, 0, 0, 0);
}

AL_TEST(sandbox_seccomp_io_uring_fails)
{
	AL_ASSERT_INT_EQ(run_child(io_uring_child), 0);
}

static void tiocsti_child(void)
{
	char c = 'x';

	install_or_die(0);
	/* EPERM, not EBADF: the filter answers before the kernel sees the fd. */
	CHILD_ERRNO(EPERM, SYS_ioctl, -1, TIOCSTI, &c);
	CHILD_ERRNO(EPERM, SYS_ioctl, -1, TIOCLINUX, &c);
	/* Junk in the upper 32 bits is ignored by the kernel, and by the rule. */
	CHILD_ERRNO(EPERM, SYS_ioctl, -1, (1UL << 32) | TIOCSTI, &c);
	CHILD_ERRNO(EPERM, SYS_ioctl, -1, 0xdead00000000UL | TIOCLINUX, &c);
	/* Other ioctls pass through. */
	CHILD_ERRNO(EBADF, SYS_ioctl, -1, TCGETS, &c);
}

AL_TEST(sandbox_seccomp_tiocsti_tioclinux_masked)
{
	AL_ASSERT_INT_EQ(run_child(tiocsti_child), 0);
}

static void x32_child(void)
{
	install_or_die(0);
	/* An x32 getpid: the bad-arch action kills the process outright. */
	syscall(0x40000000L | SYS_getpid);
	_exit(3);
}

AL_TEST(sandbox_seccomp_x32_killed)
{
	int status = run_child(x32_child);

	AL_ASSERT(WIFSIGNALED(status));
	AL_ASSERT_INT_EQ(WTERMSIG(status), SIGSYS);
}

static int exec_pipe[2];

static void exec_child(void)
{
	install_or_die(0);
	dup2(exec_pipe[1], 1);
	close(exec_pipe[0]);
	execl("/bin/sh", "sh", "-c", "echo ok; ls / >/dev/null && echo listed", (char *)NULL);
	_exit(127);
}

AL_TEST(sandbox_seccomp_normal_program_runs)
{
	char out[64] = "";
	ssize_t n, got = 0;
	int status;

	AL_ASSERT_INT_EQ(pipe(exec_pipe), 0);
	status = run_child(exec_child);
	close(exec_pipe[1]);
	while ((n = read(exec_pipe[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0)
		got += n;
	close(exec_pipe[0]);
	AL_ASSERT(WIFEXITED(status));
	AL_ASSERT_INT_EQ(WEXITSTATUS(status), 0);
	AL_ASSERT_STR_EQ(out, "ok\nlisted\n");
}

static void deny_unix_child(void)
{
	int fd;

	install_or_die(AL_SECCOMP_DENY_UNIX);
	CHILD_ERRNO(EPERM, SYS_socket, AF_UNIX, SOCK_STREAM, 0);
	CHILD_ERRNO(EPERM, SYS_socket, (1UL << 32) | AF_UNIX, SOCK_STREAM, 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHILD_EXPECT(fd >= 0);
	close(fd);
}

static void deny_inet_child(void)
{
	int fd;

	install_or_die(AL_SECCOMP_DENY_INET);
	CHILD_ERRNO(EACCES, SYS_socket, AF_INET, SOCK_STREAM, 0);
	CHILD_ERRNO(EACCES, SYS_socket, AF_INET6, SOCK_DGRAM, 0);
	CHILD_ERRNO(EACCES, SYS_socket, AF_NETLINK, SOCK_RAW, 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHILD_EXPECT(fd >= 0);
	close(fd);
}

/*
 * Families the network namespace does not scope (AF_VSOCK reaches the
 * hypervisor and host vsock services) or that no tool needs are refused;
 * Unix, IP and netlink still work.
 */
static void families_child(void)
{
	int fd;

	install_or_die(0);
	CHILD_ERRNO(EAFNOSUPPORT, SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
	CHILD_ERRNO(EAFNOSUPPORT, SYS_socket, (1UL << 32) | AF_VSOCK, SOCK_STREAM, 0);
	CHILD_ERRNO(EAFNOSUPPORT, SYS_socket, AF_ALG, SOCK_SEQPACKET, 0);
	CHILD_ERRNO(EAFNOSUPPORT, SYS_socket, AF_PACKET, SOCK_RAW, 0);
	CHILD_ERRNO(EAFNOSUPPORT, SYS_socket, AF_CAN, SOCK_RAW, 1);
	CHILD_ERRNO(EAFNOSUPPORT, SYS_socket, AF_TIPC, SOCK_RDM, 0);
	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	CHILD_EXPECT(fd >= 0);
	close(fd);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0 /* NETLINK_ROUTE */);
	CHILD_EXPECT(fd >= 0);
	close(fd);
}

AL_TEST(sandbox_seccomp_socket_families_outside_the_netns_refused)
{
	AL_ASSERT_INT_EQ(run_child(families_child), 0);
}

static void allow_ptrace_child(void)
{
	install_or_die(AL_SECCOMP_ALLOW_PTRACE);
	/* Reaches the kernel: ESRCH or EPERM from the kernel, never our EPERM on a bad pid. */
	CHILD_ERRNO(ESRCH, SYS_ptrace, 2 /* PTRACE_PEEKDATA */, 0x7ffffffe, 0, 0);
	CHILD_ERRNO(EPERM, SYS_bpf, 0, 0, 0);
}

AL_TEST(sandbox_seccomp_flags)
{
	char err[128] = "";

	AL_ASSERT_INT_EQ(run_child(deny_unix_child), 0);
	AL_ASSERT_INT_EQ(run_child(deny_inet_child), 0);
	AL_ASSERT_INT_EQ(run_child(allow_ptrace_child), 0);
	AL_ASSERT_INT_EQ(al_seccomp_install(1u << 20, err, sizeof(err)), -EINVAL);
	AL_ASSERT(strstr(err, "unknown flags") != NULL);
}

static int bpf_fd = -1;

static void exported_child(void)
{
	struct stat st;
	struct sock_fprog prog;
	void *p;

	CHILD_EXPECT(fstat(bpf_fd, &st) == 0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, bpf_fd, 0);
	CHILD_EXPECT(p != MAP_FAILED);
	prog.len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	prog.filter = p;
	CHILD_EXPECT(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	CHILD_EXPECT(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
	CHILD_ERRNO(EPERM, SYS_bpf, 0, 0, 0);
	CHILD_ERRNO(ENOSYS, SYS_clone3, 0, 0);
	CHILD_ERRNO(ENOSYS, SYS_io_uring_setup, 1, 0);
	CHILD_EXPECT(getpid() > 0);
}

AL_TEST(sandbox_seccomp_export_bpf_loads)
{
	char err[128] = "";
	struct stat st;

	bpf_fd = memfd_create("al-seccomp", MFD_CLOEXEC);
	AL_ASSERT(bpf_fd >= 0);
	AL_ASSERT_INT_EQ(al_seccomp_export_bpf(0, bpf_fd, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(fstat(bpf_fd, &st), 0);
	AL_ASSERT(st.st_size > 0);
	AL_ASSERT_INT_EQ(st.st_size % (off_t)sizeof(struct sock_filter), 0);
	AL_ASSERT_INT_EQ(run_child(exported_child), 0);
	close(bpf_fd);
}

static struct al_seccomp_prog prepared;

static void prepared_child(void)
{
	CHILD_EXPECT(al_seccomp_load_prepared(&prepared) == 0);
	CHILD_ERRNO(EPERM, SYS_bpf, 0, 0, 0);
	CHILD_ERRNO(EPERM, SYS_unshare, CLONE_NEWUSER);
	CHILD_ERRNO(ENOSYS, SYS_clone3, 0, 0);
	CHILD_ERRNO(EPERM, SYS_ioctl, -1, TIOCSTI, 0);
	/* Still the full policy: x32 kills. */
	syscall(0x40000000L | SYS_getpid);
	_exit(3);
}

AL_TEST(sandbox_seccomp_prepared_program)
{
	char err[128] = "";
	struct al_seccomp_prog empty = {0};
	int status;

	AL_ASSERT_INT_EQ(al_seccomp_prepare(0, &prepared, err, sizeof(err)), 0);
	AL_ASSERT_NOT_NULL(prepared.filter);
	AL_ASSERT(prepared.len > 10);
	status = run_child(prepared_child);
	AL_ASSERT(WIFSIGNALED(status));
	AL_ASSERT_INT_EQ(WTERMSIG(status), SIGSYS);
	AL_ASSERT_INT_EQ(al_seccomp_load_prepared(&empty), -EINVAL);
	AL_ASSERT_INT_EQ(al_seccomp_prepare(1u << 30, &empty, err, sizeof(err)), -EINVAL);
	AL_ASSERT_NULL(empty.filter);
	al_seccomp_prog_free(&prepared);
	al_seccomp_prog_free(&prepared);
}
