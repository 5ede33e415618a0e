/*
 * shell.c - sentinel protocol over a backend-spawned bash.
 */
#include "sandbox/shell.h"

#include "core/fd.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/rand.h"
#include "sandbox/output.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Status, NUL, $PWD, NUL after the marker: a status and a path, never more. */
#define SENTINEL_TAIL_MAX (32 + 4096 + 2)

struct al_shell {
	struct al_sandbox *sb;
	struct al_sandbox_proc *proc; /* NULL when no shell is running */
	int in_fd, out_fd;
	char marker[48]; /* "\n__AL_<32 hex>_" */
	size_t marker_len;
	char *cwd; /* owned: last cwd reported by the shell */
	int started_before;
};

/* Kills the shell's tree; the reap is bounded (sandbox.h, AL_SANDBOX_KILL_GRACE_MS). */
static void shell_stop(struct al_shell *sh, struct al_sandbox_status *st)
{
	struct al_sandbox_status dummy;

	if (sh->proc) {
		sh->sb->ops->proc_kill(sh->proc);
		sh->sb->ops->proc_reap(sh->proc, st ? st : &dummy);
		sh->proc = NULL;
	}
	if (sh->in_fd >= 0)
		close(sh->in_fd);
	if (sh->out_fd >= 0)
		close(sh->out_fd);
	sh->in_fd = sh->out_fd = -1;
}

void al_shell_free(struct al_shell *sh)
{
	if (sh == NULL)
		return;
	shell_stop(sh, NULL);
	al_free(sh->cwd);
	al_free(sh);
}

void al_sandbox_shell_reset(struct al_sandbox *sb)
{
	al_shell_free(sb->shell);
	sb->shell = NULL;
}

static int shell_start(struct al_shell *sh, char *err, size_t errlen)
{
	static const char *const argv[] = {"/bin/bash", "--noprofile", "--norc", NULL};
	int in[2] = {-1, -1}, out[2] = {-1, -1}, rc;
	unsigned char tok[16];

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	if ((rc = al_random_bytes(tok, sizeof(tok))) < 0) {
		snprintf(err, errlen, "no randomness for the shell token");
		goto fail;
	}
	int k = snprintf(sh->marker, sizeof(sh->marker), "\n__AL_");
	for (size_t i = 0; i < sizeof(tok); i++)
		k += snprintf(sh->marker + k, sizeof(sh->marker) - (size_t)k, "%02x", tok[i]);
	k += snprintf(sh->marker + k, sizeof(sh->marker) - (size_t)k, "_");
	sh->marker_len = (size_t)k;
	struct al_sandbox_spawn s = {argv, sh->cwd, in[0], out[1], out[1]};
	if ((rc = sh->sb->ops->spawn(sh->sb, &s, &sh->proc, err, errlen)) < 0)
		goto fail;
	close(in[0]);
	close(out[1]);
	sh->in_fd = in[1];
	sh->out_fd = out[0];
	fcntl(sh->out_fd, F_SETFL, O_NONBLOCK);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	return rc;
}

/* The command line bash reads: the command as one $'...' word, then the sentinel. */
static int frame(struct al_shell *sh, const char *cmd, struct al_buf *b)
{
	static const char hex[] = "0123456789abcdef";
	int rc = al_buf_append_str(b, "eval $'");

	for (const unsigned char *p = (const unsigned char *)cmd; *p && rc == 0; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == ' ' || *p == '_' || *p == '-' || *p == '.' ||
		    *p == '/') {
			rc = al_buf_append(b, p, 1);
		} else {
			char e[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
			rc = al_buf_append(b, e, 4);
		}
	}
	if (rc == 0)
		rc = al_buf_append_str(b, "' </dev/null 2>&1; printf '\\n");
	/* The marker without its leading newline, which printf writes as \n. */
	if (rc == 0)
		rc = al_buf_append(b, sh->marker + 1, sh->marker_len - 1);
	if (rc == 0)
		rc = al_buf_append_str(b, "%d\\0%s\\0' \"$?\" \"$PWD\"\n");
	return rc;
}

int al_sandbox_generic_shell(struct al_sandbox *sb, const char *command,
			     const struct al_sandbox_exec_opts *o, struct al_sandbox_result *res,
			     char *err, size_t errlen)
{
	struct al_shell *sh = sb->shell;
	struct al_output cap;
	struct al_buf line = {0}, pend = {0};
	struct al_sandbox_status st;
	unsigned timeout = o && o->timeout_ms ? o->timeout_ms : sb->policy.timeout_ms;
	size_t limit = o && o->output_limit ? o->output_limit : AL_SANDBOX_SHELL_OUTPUT;
	double t0 = al_sandbox_now_ms();
	int rc, done = 0;
	char buf[65536];

	memset(res, 0, sizeof(*res));
	memset(&st, 0, sizeof(st));
	if (al_sandbox_is_cancelled(sb)) {
		snprintf(err, errlen, "cancelled");
		return -ECANCELED;
	}
	if ((rc = al_output_init(&cap, limit)) < 0) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	if (sh == NULL) {
		sh = al_calloc(1, sizeof(*sh));
		if (sh == NULL) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto done;
		}
		sh->sb = sb;
		sh->in_fd = sh->out_fd = -1;
		sb->shell = sh;
	}
	if (sh->proc == NULL) {
		if ((rc = shell_start(sh, err, errlen)) < 0)
			goto done;
		res->shell_restarted = sh->started_before;
		sh->started_before = 1;
	}
	if ((rc = frame(sh, command, &line)) < 0 ||
	    (rc = al_fd_write_all(sh->in_fd, line.data, line.len)) < 0) {
		snprintf(err, errlen, "cannot send the command to the shell: %s", strerror(-rc));
		shell_stop(sh, NULL);
		goto done;
	}
	while (!done) {
		double now = al_sandbox_now_ms();
		int ms = timeout ? (int)(t0 + timeout - now) : -1;
		if (timeout && ms <= 0) {
			/* Kill the tree; the next call restarts the shell in the last cwd. */
			if (pend.len)
				al_output_feed(&cap, pend.data, pend.len);
			shell_stop(sh, &st);
			res->timed_out = 1;
			break;
		}
		if (al_sandbox_is_cancelled(sb)) {
			/* Like a timeout: the whole tree dies, a later shell would restart. */
			if (pend.len)
				al_output_feed(&cap, pend.data, pend.len);
			shell_stop(sh, &st);
			res->cancelled = 1;
			break;
		}
		struct pollfd pf[2] = {{sh->out_fd, POLLIN, 0}, {sb->cancel_fd, POLLIN, 0}};
		if (poll(pf, sb->cancel_fd >= 0 ? 2 : 1, ms) <= 0 || !pf[0].revents)
			continue;
		ssize_t n = read(sh->out_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			/* The shell ended (`exit`, or killed): its status is the result. */
			if (pend.len)
				al_output_feed(&cap, pend.data, pend.len);
			shell_stop(sh, &st);
			res->exit_code = st.exit_code;
			res->signal = st.signal;
			break;
		}
		if ((rc = al_buf_append(&pend, buf, (size_t)n)) < 0) {
			snprintf(err, errlen, "out of memory");
			goto done;
		}
		char *m = memmem(pend.data, pend.len, sh->marker, sh->marker_len);
		if (m == NULL) {
			/* Keep only what could be the start of a marker split across reads. */
			size_t keep = sh->marker_len - 1 < pend.len ? sh->marker_len - 1 : pend.len;
			al_output_feed(&cap, pend.data, pend.len - keep);
			al_buf_consume(&pend, pend.len - keep);
			continue;
		}
		size_t mo = (size_t)(m - pend.data), rest = pend.len - mo - sh->marker_len;
		const char *tail = m + sh->marker_len;
		const char *z1 = memchr(tail, '\0', rest);
		const char *z2 = z1 ? memchr(z1 + 1, '\0', rest - (size_t)(z1 + 1 - tail)) : NULL;
		if (z2 == NULL && rest <= SENTINEL_TAIL_MAX)
			continue; /* the sentinel is still arriving */
		if (z2 == NULL) {
			/*
			 * The command runs inside this bash, so it can learn the
			 * marker (e.g. by redefining printf, which the sentinel
			 * calls) and follow it with endless bytes and no NUL: stop
			 * buffering them, end the shell as if it had exited.
			 */
			al_output_feed(&cap, pend.data, mo);
			shell_stop(sh, &st);
			res->exit_code = st.exit_code;
			res->signal = st.signal;
			break;
		}
		al_output_feed(&cap, pend.data, mo);
		res->exit_code = (int)strtol(tail, NULL, 10);
		char *cwd = al_strdup(z1 + 1);
		if (cwd) {
			al_free(sh->cwd);
			sh->cwd = cwd;
		}
		done = 1;
	}
	if (al_sandbox_is_broken(sb)) {
		/* Stopping the shell took down the whole sandbox: no result to trust. */
		rc = -EPIPE;
		snprintf(err, errlen,
			 "the sandbox did not end the killed shell within %u ms and was destroyed",
			 AL_SANDBOX_KILL_GRACE_MS);
		goto done;
	}
	if ((rc = al_output_finish(&cap, &res->out)) < 0) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	res->truncated = res->out.truncated;
	res->rusage = st.rusage;
	res->run_ms = al_sandbox_now_ms() - t0;
	al_sandbox_result_stamp(sb, res);
done:
	al_output_clear(&cap);
	al_buf_free(&line);
	al_buf_free(&pend);
	if (rc < 0)
		al_sandbox_result_clear(res);
	return rc;
}
