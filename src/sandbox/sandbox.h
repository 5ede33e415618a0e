/*
 * sandbox.h - the sandbox engine: one interface, several backends.
 *
 * A sandbox is created for a session from a policy, runs commands one after
 * another (one-shot `exec`, or `shell` lines in a persistent bash whose cwd
 * carries over), and is destroyed, killing everything in it.
 *
 *   struct al_sandbox *sb;
 *   al_sandbox_new(&al_sandbox_native_ops, &policy, &sb, err, sizeof(err));
 *   al_sandbox_exec(sb, argv, &opts, &res, err, sizeof(err));
 *   ...
 *   al_sandbox_result_clear(&res);
 *   al_sandbox_free(sb);
 *
 * Backends (struct al_sandbox_backend_ops):
 *   native  namespaces + pivot_root + our PID 1 (native.c, init.c)
 *   bwrap   drives /usr/bin/bwrap (bwrap.c)
 *
 * Where a microVM (Firecracker, Cloud Hypervisor) or gVisor backend plugs in:
 * write a third `struct al_sandbox_backend_ops`. `create` boots the VM (or
 * `runsc` sandbox) with the workspace shared (virtiofs/9p/gofer) and the
 * egress Unix socket forwarded over vsock; `spawn` asks the guest agent over
 * vsock to start a process with the three stdio streams as vsock streams and a
 * result stream; `proc_kill` asks the agent to kill the process tree;
 * `destroy` stops the VM. The generic `exec` and `shell` in sandbox.c work
 * unchanged on top of spawn/proc_*; a backend with its own shell support may
 * supply `exec`/`shell` directly instead. Nothing above this header changes.
 *
 * Never silently unsandboxed: if a mechanism the policy asks for (user
 * namespaces, seccomp, Landlock) is unavailable, `create` fails with a message
 * naming what is missing, unless the policy sets AL_SANDBOX_ALLOW_DEGRADED; the
 * mechanisms in force are always recorded in every result.
 */
#ifndef AL_SANDBOX_SANDBOX_H
#define AL_SANDBOX_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

struct al_egress_decision; /* sandbox/egress.h */

/*
 * Egress: with a non-empty allowlist the sandbox gets a host-side proxy
 * (sandbox/egress.h) on a private Unix socket, bind-mounted at
 * AL_SANDBOX_EGRESS_SOCK, and a forwarder inside on 127.0.0.1:AL_SANDBOX_PROXY_PORT;
 * HTTP_PROXY/HTTPS_PROXY (and the lower-case forms) point at it. Without an
 * allowlist there is no route out at all (loopback only).
 */
#define AL_SANDBOX_EGRESS_SOCK "/run/airlock/egress.sock"
#define AL_SANDBOX_PROXY_PORT  3128

/* Policy flags. */
#define AL_SANDBOX_ALLOW_DEGRADED 0x1u /* run even if seccomp/Landlock are unavailable */

/* Defaults applied by al_sandbox_policy_init. */
#define AL_SANDBOX_DEFAULT_TIMEOUT_MS 120000u
#define AL_SANDBOX_DEFAULT_MEMORY_MB  1024u
#define AL_SANDBOX_DEFAULT_PIDS	      256u
#define AL_SANDBOX_DEFAULT_OUTPUT     1048576u
#define AL_SANDBOX_DEFAULT_FSIZE      (1ull << 30)
#define AL_SANDBOX_DEFAULT_TMP_MB     256u
#define AL_SANDBOX_SHELL_OUTPUT	      102400u /* 100 KiB per shell command */
/*
 * How long a killed command (timeout, cancel) may take to be reported dead.
 * Past it the backend kills the whole sandbox, marks it broken and the
 * exec/shell call fails: a wedged or stopped runner never blocks the caller.
 */
#define AL_SANDBOX_KILL_GRACE_MS 3000u

/*
 * What a sandbox may see and use. Every pointer is borrowed: the caller keeps
 * the strings alive for the duration of al_sandbox_new (the sandbox copies
 * what it needs).
 */
/* Largest CPU quota a policy may ask for: 1024 CPUs' worth. */
#define AL_SANDBOX_MAX_CPU_PCT (1024u * 100u)

struct al_sandbox_policy {
	const char *workspace;	     /* absolute dir, bound read-write at the same path; cwd */
	const char *const *ro_paths; /* extra absolute paths bound read-only at the same path */
	size_t n_ro;
	const char *const *env; /* "K=V" entries: the whole environment; nothing inherited */
	size_t n_env;
	const char *const
	    *egress_allow; /* "host[:port]" / "*.suffix[:port]" for the egress proxy */
	size_t n_egress;
	/*
	 * Every egress decision (allowed, denied, closed with byte counts), called
	 * on the egress proxy's own thread; d is valid during the call only. May
	 * be NULL. Used by the caller to audit network activity.
	 */
	void (*egress_cb)(const struct al_egress_decision *d, void *data);
	void *egress_cb_data;
	unsigned timeout_ms;	      /* per command wall clock; 0 = none */
	unsigned memory_mb;	      /* 0 = none */
	unsigned pids;		      /* max tasks in the sandbox; 0 = none */
	unsigned cpu_pct;	      /* CPU quota in percent of one CPU; 0 = none */
	size_t output_limit;	      /* bytes kept per stream (head + tail) */
	unsigned long long fsize_max; /* RLIMIT_FSIZE */
	unsigned tmp_mb;	      /* /tmp tmpfs size */
	unsigned flags;		      /* AL_SANDBOX_* */
};

/* Fills defaults (no workspace, empty env, the limits above). */
void al_sandbox_policy_init(struct al_sandbox_policy *p);

/* Returns 1 when `k=v` may enter a sandbox: never ANTHROPIC_*, AIRLOCK_*, *_API_KEY. */
int al_sandbox_env_allowed(const char *kv);

enum al_limits_mode { AL_LIMITS_NONE, AL_LIMITS_CGROUP2, AL_LIMITS_CGROUP1, AL_LIMITS_RLIMIT };
const char *al_limits_mode_name(enum al_limits_mode m);

/* Captured output of one stream: head and tail kept, everything counted and hashed. */
struct al_sandbox_stream {
	char *head; /* owned; NUL-terminated for convenience */
	size_t head_len;
	char *tail; /* owned; NULL when not truncated */
	size_t tail_len;
	unsigned long long total; /* bytes the command wrote */
	int truncated;
	char sha256[65]; /* hex SHA-256 of all `total` bytes */
};

/* The outcome of one command. Cleared with al_sandbox_result_clear. */
struct al_sandbox_result {
	int exit_code; /* valid when signal == 0 */
	int signal;    /* terminating signal, 0 if it exited */
	int timed_out;
	int truncated; /* any stream truncated */
	struct al_sandbox_stream out;
	struct al_sandbox_stream err; /* empty for `shell` (merged into out) */
	struct rusage rusage;
	double setup_ms;     /* time to create the sandbox (0 when reused) */
	double run_ms;	     /* spawn to exit */
	const char *backend; /* static */
	int landlock_abi;    /* 0 when Landlock is not in force */
	int seccomp;	     /* 1 when the seccomp filter is in force */
	enum al_limits_mode limits;
	int shell_restarted; /* shell: the persistent shell was (re)started for this call */
	int cancelled;	     /* al_sandbox_cancel killed the command */
};

void al_sandbox_result_clear(struct al_sandbox_result *r);
/* The CLI convention: the exit code, 128+N for a signal, 124 on timeout. */
int al_sandbox_result_status(const struct al_sandbox_result *r);

struct al_sandbox_exec_opts {
	const char *cwd;     /* NULL: the workspace */
	unsigned timeout_ms; /* 0: the policy's */
	size_t output_limit; /* 0: the policy's */
};

/* A process started by a backend's spawn (backend-defined). */
struct al_sandbox_proc;

struct al_sandbox_spawn {
	const char *const *argv; /* argv[0] is looked up in the policy's PATH when it has no '/' */
	const char *cwd;	 /* NULL: workspace */
	int stdin_fd, stdout_fd, stderr_fd; /* host fds passed in; the caller keeps its copies */
};

/* A process's end. */
struct al_sandbox_status {
	int exit_code;
	int signal;
	struct rusage rusage;
};

struct al_sandbox;

struct al_sandbox_backend_ops {
	const char *name;
	/* Builds the sandbox (or fails with a message naming what is missing). */
	int (*create)(const struct al_sandbox_policy *p, struct al_sandbox **out, char *err,
		      size_t errlen);
	/* One command to completion (al_sandbox_generic_exec for spawn-based backends). */
	int (*exec)(struct al_sandbox *sb, const char *const *argv,
		    const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res, char *err,
		    size_t errlen);
	/* One line in the persistent shell (al_sandbox_generic_shell). */
	int (*shell)(struct al_sandbox *sb, const char *command,
		     const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res, char *err,
		     size_t errlen);
	/* Kills everything in the sandbox and frees it. NULL is fine. */
	void (*destroy)(struct al_sandbox *sb);

	/* Lower level, used by the generic exec/shell. */
	int (*spawn)(struct al_sandbox *sb, const struct al_sandbox_spawn *s,
		     struct al_sandbox_proc **out, char *err, size_t errlen);
	/* An fd that polls readable once the process has ended. */
	int (*proc_fd)(struct al_sandbox_proc *p);
	/* Kills the process and every descendant, including those that setsid'd. */
	int (*proc_kill)(struct al_sandbox_proc *p);
	/*
	 * Collects the status and frees p. Blocks until it is known, but after
	 * proc_kill for AL_SANDBOX_KILL_GRACE_MS at most: then the whole sandbox
	 * is killed, sb->broken set and -ETIMEDOUT returned.
	 */
	int (*proc_reap)(struct al_sandbox_proc *p, struct al_sandbox_status *st);
};

extern const struct al_sandbox_backend_ops al_sandbox_native_ops;
extern const struct al_sandbox_backend_ops al_sandbox_bwrap_ops;
/* Refuses (-EPERM, a message naming the knob) when user namespaces cannot be created. */
int al_sandbox_probe_userns(char *err, size_t errlen);
/* "native" / "bwrap" -> ops, NULL if unknown. */
const struct al_sandbox_backend_ops *al_sandbox_backend_find(const char *name);

/*
 * The common part every backend's `struct al_sandbox` starts with (first
 * member), so sandbox.c can run exec/shell on any of them.
 */
struct al_shell;
struct al_sandbox {
	const struct al_sandbox_backend_ops *ops;
	struct al_sandbox_policy policy; /* deep copy, owned */
	char *workspace;		 /* owned copies behind policy's pointers */
	char **ro_paths, **env, **egress;
	char *path_env; /* the PATH used to look up argv[0] (points into env) */
	struct al_sandbox_egress *egress_proxy; /* the proxy thread, when egress is allowed */
	double setup_ms;
	int landlock_abi, seccomp;
	enum al_limits_mode limits;
	struct al_shell *shell; /* persistent shell, started on first use */
	/*
	 * al_sandbox_cancel: the flag, and an eventfd made readable at the same
	 * time so a command's poll loop wakes at once (-1 until base_init).
	 */
	int cancel_fd;
	int cancelled;
	/*
	 * Set by the backend once it had to kill the whole sandbox (a killed
	 * command was not reported dead in time): every later exec/shell fails
	 * with -EPIPE. The owner frees it and creates a new one.
	 */
	int broken;
};

/* Creates a sandbox with the given backend. *out owned by the caller (al_sandbox_free). */
int al_sandbox_new(const struct al_sandbox_backend_ops *ops, const struct al_sandbox_policy *p,
		   struct al_sandbox **out, char *err, size_t errlen);
int al_sandbox_exec(struct al_sandbox *sb, const char *const *argv,
		    const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res, char *err,
		    size_t errlen);
int al_sandbox_shell(struct al_sandbox *sb, const char *command,
		     const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res, char *err,
		     size_t errlen);
void al_sandbox_free(struct al_sandbox *sb);
/*
 * Kills the persistent shell (its whole tree) if one runs; the next
 * al_sandbox_shell starts a fresh one in the workspace, with nothing of the
 * old one's cwd or variables. Not concurrently with al_sandbox_shell.
 */
void al_sandbox_shell_reset(struct al_sandbox *sb);
/*
 * Async-signal-safe: makes every running exec in this process kill its
 * command tree and return (a CLI's SIGINT/SIGTERM handler calls it, so the
 * sandbox is torn down properly rather than the process dying mid-run).
 */
void al_sandbox_cancel_all(void);
/*
 * Async-signal-safe and thread-safe: kills the command running in this
 * sandbox (exec, or the persistent shell's whole tree; the result has
 * `cancelled` set) and makes every later exec/shell on it fail with
 * -ECANCELED. Other sandboxes are untouched. sb must stay alive during the
 * call (the caller orders it before al_sandbox_free).
 */
void al_sandbox_cancel(struct al_sandbox *sb);
/* 1 once al_sandbox_cancel was called on sb. */
int al_sandbox_is_cancelled(const struct al_sandbox *sb);
/*
 * What a sandbox leaves behind when its creator is killed with SIGKILL. Its
 * processes die on their own: PID 1 exits when the control socket hangs up
 * (it only ever waits in poll on it) and the kernel then kills the whole pid
 * namespace; each runner also kills its command tree when its result socket
 * hangs up. Its cgroup directories and egress socket directory stay, as
 * nothing is left to remove them: this startup sweep removes those whose
 * creator pid is gone (limits.h, egress.h). Called once per process by the
 * native backend before its first sandbox, and by `airlock worker` at
 * startup. Returns the number of directories removed.
 */
int al_sandbox_sweep_stale(void);
/* 1 once the sandbox was torn down by force (see `broken` below): free it, make a new one. */
int al_sandbox_is_broken(const struct al_sandbox *sb);

/* For backends: copy the policy into sb (validated); free the copies. */
int al_sandbox_base_init(struct al_sandbox *sb, const struct al_sandbox_backend_ops *ops,
			 const struct al_sandbox_policy *p, char *err, size_t errlen);
void al_sandbox_base_clear(struct al_sandbox *sb);
int al_sandbox_generic_exec(struct al_sandbox *sb, const char *const *argv,
			    const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res,
			    char *err, size_t errlen);
int al_sandbox_generic_shell(struct al_sandbox *sb, const char *command,
			     const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res,
			     char *err, size_t errlen);
/*
 * Egress for backends: prepare (policy + private socket directory; before
 * clone, so the host is still single-threaded then), start (the proxy on its
 * own libuv thread; the socket is handed to uid/gid), the host socket path,
 * and stop (joins the thread, removes the directory; NULL-safe, idempotent).
 */
struct al_sandbox_egress;
int al_sandbox_egress_prepare(struct al_sandbox *sb, char *err, size_t errlen);
int al_sandbox_egress_start(struct al_sandbox *sb, uid_t uid, gid_t gid, char *err, size_t errlen);
const char *al_sandbox_egress_socket(const struct al_sandbox *sb);
void al_sandbox_egress_stop(struct al_sandbox *sb);
/* Fills the result's mechanism fields from the sandbox. */
void al_sandbox_result_stamp(const struct al_sandbox *sb, struct al_sandbox_result *res);
double al_sandbox_now_ms(void);
/*
 * Compiles the seccomp filter into *prog (owned: al_seccomp_prog_free) and
 * negotiates the Landlock ABI, recording both in sb. Refuses (-ENOSYS, a
 * message naming what is missing) when either is unavailable and the policy
 * does not allow degraded mode.
 */
struct al_seccomp_prog;
int al_sandbox_confine_prepare(struct al_sandbox *sb, struct al_seccomp_prog *prog, char *err,
			       size_t errlen);

#endif
