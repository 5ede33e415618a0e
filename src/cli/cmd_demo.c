/*
 * cmd_demo.c - `airlock demo`: the end-to-end demonstration behind `make run`.
 *
 * One process plays the operator and the user. It starts, as its children,
 *   1. the control plane (`airlock server`) on a loopback port,
 *   2. the model: the hosted Messages API when ANTHROPIC_API_KEY is set, else
 *      `airlock model-stub` (a TEST DOUBLE) playing a canned scenario,
 *   3. a self-hosted worker (`airlock worker poll`) that dials out to the
 *      control plane and runs every tool call in the sandbox,
 *   4. when build/tickets-mcp is next to this binary: that private MCP
 *      server (seeded with two tickets) behind `airlock gateway`, which
 *      terminates TLS with a certificate from a throwaway CA; the control
 *      plane trusts that CA alone for it (--mcp-ca) and the agent queries a
 *      ticket through it (agent.mcp_tool_use / agent.mcp_tool_result),
 * then creates an agent, an environment and its key through the API, sends
 * one user.message and renders the session's event stream until the session
 * idles with end_turn. It ends by verifying the worker's audit log with
 * `airlock audit verify` and printing a summary.
 *
 * Nothing may be left running, whatever happens: children get their own
 * process group (a Ctrl-C on the terminal reaches only us, and we stop them
 * in order: the worker first, so it can stop its work item and flush its
 * audit log while the control plane is still up), PR_SET_PDEATHSIG in case
 * we are killed outright, and every exit path goes through stop_children(),
 * which waits for each child and escalates to SIGKILL after a grace period.
 *
 * Secrets: the admin key is read from the server's data directory and sent
 * only as a header; the environment key reaches the worker through its
 * environment (never argv, which any local user can read in `ps`) and is
 * wiped here as soon as the worker is started. The model key is passed to
 * the server alone; the worker and the stub never see an ANTHROPIC_*
 * variable other than the one they need.
 */
#include "cli/cli.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/hash.h"
#include "http/sse_parser.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define DEMO_MODEL	   "claude-sonnet-4-5"
#define DEMO_TIMEOUT_S	   180
#define CHILD_GRACE_MS	   10000 /* SIGTERM -> SIGKILL */
#define READY_TIMEOUT_MS   15000 /* a child's "listening on" line */
#define STREAM_OPEN_MS	   10000
#define QUIET_LINE_EVERY_S 5 /* not a TTY: a "still waiting" line this often */

/*
 * The prompt and the scripted model's scenario. The scenario plays the
 * conversation a real model has with this prompt: write a file, run a
 * command on it, read the result back, answer. The stub picks a step by the
 * number of assistant turns in the request (docs/model-stub.md), so each
 * tool result moves it on to the next step.
 */
static const char demo_prompt[] =
    "Write a three-line note about airlock to notes.txt, then run a shell command that "
    "counts its lines, words and bytes with wc and saves the output to count.txt, then "
    "read count.txt back and tell me what it says.";

/* With the private MCP server: the same conversation, after a ticket lookup. */
static const char demo_prompt_mcp[] =
    "Look up ticket 1 in our ticket tracker, then write a three-line note about airlock to "
    "notes.txt, then run a shell command that counts its lines, words and bytes with wc and "
    "saves the output to count.txt, then read count.txt back and tell me what it says.";

static const char demo_system[] =
    "You are demonstrating a self-hosted worker: every tool you call runs in a sandbox "
    "on the user's machine. Your working directory is your workspace: use relative "
    "paths. Be brief.";

static const char demo_scenario_head[] =
    "{\n"
    "  \"_comment\": \"airlock demo: the scripted model (a TEST DOUBLE, not a model)\",\n"
    "  \"delay_ms\": 300,\n"
    "  \"steps\": [\n";
/* demo_mcp_step goes here when the tickets server runs */
static const char demo_scenario_steps[] =
    "    {\"content\": [\n"
    "      {\"type\": \"text\", \"text\": \"I'll write the note first.\"},\n"
    "      {\"type\": \"tool_use\", \"name\": \"write\", \"input\": {\"file_path\": "
    "\"notes.txt\", \"content\": \"airlock runs agents inside your perimeter.\\nEvery "
    "tool call runs in a sandbox.\\nEvery decision lands in a hash-chained audit "
    "log.\\n\"}}]},\n"
    "    {\"content\": [\n"
    "      {\"type\": \"text\", \"text\": \"Now I'll count its lines, words and bytes.\"},\n"
    "      {\"type\": \"tool_use\", \"name\": \"bash\", \"input\": {\"command\": "
    "\"wc notes.txt > count.txt && cat count.txt\"}}]},\n"
    "    {\"content\": [\n"
    "      {\"type\": \"text\", \"text\": \"And read the result back.\"},\n"
    "      {\"type\": \"tool_use\", \"name\": \"read\", \"input\": {\"file_path\": "
    "\"count.txt\"}}]},\n"
    "    {\"content\": [\n"
    "      {\"type\": \"text\", \"text\": \"All three tool calls ran in the sandbox on "
    "your machine. count.txt says: {{last_tool_result}}\"}],\n"
    "     \"stop_reason\": \"end_turn\"}\n"
    "  ]\n"
    "}\n";

/* The MCP step, first in the scenario when the tickets server runs. */
static const char demo_mcp_step[] =
    "    {\"content\": [\n"
    "      {\"type\": \"text\", \"text\": \"First the ticket, from the private tracker behind "
    "the gateway.\"},\n"
    "      {\"type\": \"tool_use\", \"name\": \"tickets__tickets_get\", \"input\": {\"id\": "
    "1}}]},\n";

static volatile sig_atomic_t g_signal;	 /* the last signal asking us to stop */
static volatile sig_atomic_t g_nsignals; /* a second one: no more grace periods */

static void on_signal(int sig)
{
	g_signal = sig;
	if (g_nsignals < 2)
		g_nsignals++;
}

struct child {
	const char *name;	/* "control plane", "model stub", "worker" */
	const char *stdin_path; /* NULL: /dev/null */
	pid_t pid;		/* 0: not running (never started or reaped) */
	int status;		/* wait status once reaped */
	char log[PATH_MAX];
};

struct demo {
	/* options */
	char dir[2048]; /* everything the run creates lives here */
	char self[PATH_MAX];
	const char *worker_bin; /* AIRLOCK_DEMO_WORKER or self */
	const char *worker_args;
	const char *script; /* --script or the embedded scenario */
	const char *model;
	unsigned timeout_s;
	int real_model; /* ANTHROPIC_API_KEY set: the hosted Messages API */
	int tty;

	struct child server, stub, worker, tickets, gateway;
	int mcp; /* the tickets server runs behind the gateway */
	char tickets_bin[PATH_MAX];
	char mcp_ca[PATH_MAX + 32], mcp_url[300], gateway_addr[300];
	unsigned mcp_calls, mcp_errors;
	char base_url[300], model_url[300];
	char audit_path[PATH_MAX + 16];
	char audit_key[PATH_MAX + 16], audit_pub[PATH_MAX + 16]; /* checkpoint signing */
	char *auth_header; /* "x-api-key: <admin key>"; secret */
	char agent_id[128], env_id[128], session_id[128];

	/* the event stream */
	CURLM *multi;
	CURL *stream;
	struct curl_slist *stream_hdrs;
	al_sse_parser *sse;
	int stream_open; /* response headers arrived with 200 */
	long stream_status;

	/* rendering */
	json_t *seen;  /* event ids already shown */
	json_t *tools; /* tool_use id -> name */
	uint64_t t0_ms, last_out_ms, last_quiet_ms;
	int spinner_shown;
	unsigned spin;
	uint64_t last_tick_ms;
	char waiting[96];  /* what the progress line says we wait for */
	int prompt_seen;   /* our user.message is in the log: idle now means done */
	int finished;	   /* idle with end_turn */
	int session_error; /* terminated, or idle for another reason */
	char session_error_msg[512];
	unsigned tool_calls, tool_errors, results;
};

/* ---- output ---- */

static void spinner_clear(struct demo *d)
{
	if (d->spinner_shown) {
		fputs("\r\033[K", stdout);
		d->spinner_shown = 0;
	}
}

/* One line of demo output (a label column, then text), flushed at once. */
static void __attribute__((format(printf, 3, 4)))
out(struct demo *d, const char *label, const char *fmt, ...)
{
	va_list ap;

	spinner_clear(d);
	if (d->tty && label[0])
		printf("\033[1m%-9s\033[0m", label);
	else
		printf("%-9s", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	d->last_out_ms = al_mono_ms();
}

/* Errors go to stderr, after the spinner is cleared. */
static void __attribute__((format(printf, 2, 3))) fail_msg(struct demo *d, const char *fmt, ...)
{
	va_list ap;

	spinner_clear(d);
	fflush(stdout);
	fputs("airlock demo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static double elapsed_s(const struct demo *d)
{
	return (double)(al_mono_ms() - d->t0_ms) / 1000.0;
}

/* The progress indication while nothing happens: a spinner on a TTY, else a line now and then. */
static void progress_tick(struct demo *d, const char *what)
{
	static const char *frames[] = {"|", "/", "-", "\\"};
	uint64_t now = al_mono_ms();

	if (d->tty) {
		if (d->spinner_shown && now - d->last_tick_ms < 100)
			return;
		d->last_tick_ms = now;
		printf("\r\033[K%s %s (%.1f s)", frames[d->spin++ % 4], what, elapsed_s(d));
		fflush(stdout);
		d->spinner_shown = 1;
		return;
	}
	if (now - d->last_out_ms >= QUIET_LINE_EVERY_S * 1000u &&
	    now - d->last_quiet_ms >= QUIET_LINE_EVERY_S * 1000u) {
		printf("...     %s (%.0f s)\n", what, elapsed_s(d));
		fflush(stdout);
		d->last_quiet_ms = now;
	}
}

/*
 * Shows a child's log on stderr (why it failed): all of it when short, else
 * its start (a start-up error comes first, a usage text after it) and its end.
 */
static void show_log_tail(const struct child *c, size_t max_bytes)
{
	char buf[8192];
	size_t head = max_bytes / 2, n;
	struct stat st;
	ssize_t r;
	int fd = open(c->log, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (max_bytes > sizeof(buf) / 2)
		max_bytes = sizeof(buf) / 2;
	fprintf(stderr, "--- %s log (%s) ---\n", c->name, c->log);
	if (fstat(fd, &st) == 0 && (size_t)st.st_size > 2 * max_bytes) {
		if ((r = read(fd, buf, head)) > 0) {
			n = (size_t)r;
			while (n > 0 && buf[n - 1] != '\n')
				n--; /* whole lines only */
			fwrite(buf, 1, n, stderr);
		}
		fputs("[...]\n", stderr);
		lseek(fd, st.st_size - (off_t)max_bytes, SEEK_SET);
	}
	while ((r = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[r] = '\0';
		fputs(buf, stderr);
	}
	close(fd);
	fputs("--- end of log ---\n", stderr);
}

/* ---- children ---- */

/*
 * Builds a child's environment: ours without any ANTHROPIC_* variable, plus
 * `extra` (NULL-terminated "NAME=value" strings, which the caller owns).
 * The array is owned by the caller (al_free); the strings are borrowed.
 */
static char **child_env(char *const *extra)
{
	size_t n = 0, k = 0, nx = 0;
	char **env;

	while (environ[n])
		n++;
	while (extra && extra[nx])
		nx++;
	env = al_calloc(n + nx + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "ANTHROPIC_", 10) != 0)
			env[k++] = environ[i];
	for (size_t i = 0; i < nx; i++)
		env[k++] = extra[i];
	env[k] = NULL;
	return env;
}

/*
 * Starts a child: stdin /dev/null, stdout+stderr appended to c->log, its
 * own process group, every other fd closed, SIGTERM when we die. fork/exec,
 * no shell. Returns 0 or a negative errno (the exec failing shows up as an
 * exit status of 127, with the reason in the log).
 */
static int child_start(struct child *c, const char *path, char *const argv[], char *const envp[])
{
	pid_t parent = getpid(), pid;
	int logfd, nullfd;

	logfd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		return -errno;
	nullfd = open(c->stdin_path ? c->stdin_path : "/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0) {
		int e = -errno;
		close(logfd);
		return e;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(logfd);
		close(nullfd);
		return e;
	}
	if (pid == 0) {
		sigset_t none;
		char msg[PATH_MAX + 64];
		int len;

		/*
		 * We are single-threaded here (libcurl starts no resolver
		 * thread for numeric loopback addresses), so the exec failure
		 * may be described with snprintf and strerror.
		 */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
		if (getppid() != parent) /* we died before the prctl took hold */
			_exit(127);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(127);
		/* curl's sockets and anything else we hold stay with us. */
		syscall(SYS_close_range, 3, ~0U, 0);
		execve(path, argv, envp);
		len = snprintf(msg, sizeof(msg), "airlock demo: cannot execute %s: %s\n", path,
			       strerror(errno));
		if (len > 0)
			(void)!write(2, msg, (size_t)len < sizeof(msg) ? (size_t)len : sizeof(msg));
		_exit(127);
	}
	/* Also here: a kill(-pid) must not race the child's own setpgid. */
	setpgid(pid, pid);
	close(logfd);
	close(nullfd);
	c->pid = pid;
	return 0;
}

/* Reaps c if it has exited. Returns 1 if it is still running. */
static int child_running(struct child *c)
{
	int st;
	pid_t r;

	if (c->pid <= 0)
		return 0;
	r = waitpid(c->pid, &st, WNOHANG);
	if (r == c->pid || (r < 0 && errno == ECHILD)) {
		c->status = r == c->pid ? st : 0;
		c->pid = 0;
		return 0;
	}
	return 1;
}

static void describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "ended (wait status %d)", st);
}

/*
 * Stops one child: SIGTERM, then SIGKILL (to its process group too) after
 * the grace period. Always waits, so no zombie and nothing running remains.
 */
static void child_stop(struct child *c)
{
	uint64_t deadline;

	if (!child_running(c))
		return;
	kill(c->pid, SIGTERM);
	deadline = al_mono_ms() + CHILD_GRACE_MS;
	while (child_running(c)) {
		if (al_mono_ms() >= deadline || g_nsignals >= 2) {
			int st;
			kill(-c->pid, SIGKILL);
			kill(c->pid, SIGKILL);
			if (waitpid(c->pid, &st, 0) == c->pid)
				c->status = st;
			c->pid = 0;
			break;
		}
		usleep(20000);
	}
}

/* In dependency order: the worker needs the control plane to stop its item. */
static void stop_children(struct demo *d)
{
	child_stop(&d->worker);
	child_stop(&d->server);
	child_stop(&d->gateway);
	child_stop(&d->tickets);
	child_stop(&d->stub);
}

/* Fails (returns -ECHILD, having said so) when any started child has died. */
static int check_children(struct demo *d)
{
	struct child *all[] = {&d->server, &d->stub, &d->worker, &d->gateway, &d->tickets};
	char why[64];

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		struct child *c = all[i];
		int had = c->pid > 0;
		if (had && !child_running(c)) {
			describe_status(c->status, why, sizeof(why));
			fail_msg(d, "the %s %s before the session finished", c->name, why);
			show_log_tail(c, 1500);
			return -ECHILD;
		}
	}
	return 0;
}

/* -EINTR once a signal asked us to stop (the caller unwinds and says so). */
static int interrupted(struct demo *d)
{
	if (!g_signal)
		return 0;
	return -EINTR;
}

/*
 * Waits for "listening on HOST:PORT" in a child's log (the server logs it,
 * the stub prints it) and returns HOST:PORT in addr.
 */
static int wait_listening(struct demo *d, struct child *c, char *addr, size_t addrlen)
{
	uint64_t deadline = al_mono_ms() + READY_TIMEOUT_MS;
	char buf[16384];
	int rc;

	for (;;) {
		int fd = open(c->log, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		const char *p, *e;

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = '\0';
			p = strstr(buf, "listening on ");
			if (p != NULL) {
				p += strlen("listening on ");
				e = p + strcspn(p, " \n\r\t\"");
				if (*e != '\0' && (size_t)(e - p) < addrlen) {
					memcpy(addr, p, (size_t)(e - p));
					addr[e - p] = '\0';
					return 0;
				}
			}
		}
		if ((rc = interrupted(d)) < 0)
			return rc;
		if ((rc = check_children(d)) < 0)
			return rc;
		if (al_mono_ms() >= deadline) {
			fail_msg(d, "the %s did not start listening within %d s", c->name,
				 READY_TIMEOUT_MS / 1000);
			show_log_tail(c, 1500);
			return -ETIMEDOUT;
		}
		char what[64];
		snprintf(what, sizeof(what), "starting the %s", c->name);
		progress_tick(d, what);
		usleep(50000);
	}
}

/* ---- the API, with libcurl's easy interface ---- */

static size_t body_cb(char *p, size_t sz, size_t n, void *ud)
{
	return al_buf_append(ud, p, sz * n) < 0 ? 0 : sz * n;
}

static struct curl_slist *api_headers(struct demo *d, int json_body)
{
	struct curl_slist *h = NULL, *t;
	const char *lines[] = {d->auth_header, "anthropic-version: 2023-06-01",
			       "anthropic-beta: managed-agents-2026-04-01",
			       json_body ? "content-type: application/json" : NULL};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (lines[i] == NULL)
			continue;
		t = curl_slist_append(h, lines[i]);
		if (t == NULL) {
			curl_slist_free_all(h);
			return NULL;
		}
		h = t;
	}
	return h;
}

/* A Ctrl-C cuts a request short instead of waiting out its timeout. */
static int xfer_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	return g_signal ? 1 : 0;
}

static void curl_common(CURL *c, const char *url)
{
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xfer_cb);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* Loopback only: an HTTP(S)_PROXY in the environment must not capture it. */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
}

/*
 * One API call. body (may be NULL) is sent as JSON; *out gets the parsed
 * reply of a 2xx. Anything else is reported (with the server's message)
 * and returns a negative errno.
 */
static int api_call(struct demo *d, const char *method, const char *path, json_t *body,
		    json_t **out, const char *what)
{
	char url[1024];
	al_buf resp = {0};
	struct curl_slist *hdrs = NULL;
	char *payload = NULL;
	CURL *c = NULL;
	CURLcode cc;
	json_error_t jerr;
	long status = 0;
	int rc = -EIO;

	if (out)
		*out = NULL;
	snprintf(url, sizeof(url), "%s%s", d->base_url, path);
	if (body && (payload = json_dumps(body, JSON_COMPACT)) == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	if ((c = curl_easy_init()) == NULL || (hdrs = api_headers(d, body != NULL)) == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	curl_common(c, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	if (payload)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		fail_msg(d, "%s: %s %s: %s", what, method, path, curl_easy_strerror(cc));
		goto done;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		json_t *e = json_loadb(resp.data ? resp.data : "", resp.len, 0, &jerr);
		const char *m =
		    json_string_value(json_object_get(json_object_get(e, "error"), "message"));
		fail_msg(d, "%s: %s %s answered %ld: %s", what, method, path, status,
			 m ? m : "(no error message)");
		json_decref(e);
		goto done;
	}
	if (out) {
		*out = json_loadb(resp.data ? resp.data : "", resp.len, 0, &jerr);
		if (*out == NULL) {
			fail_msg(d, "%s: the reply is not JSON: %s", what, jerr.text);
			goto done;
		}
	}
	rc = 0;
done:
	/* The key-creation reply carries a secret. */
	al_buf_wipe(&resp);
	al_buf_free(&resp);
	al_free(payload); /* jansson allocates through al_malloc */
	curl_slist_free_all(hdrs);
	if (c)
		curl_easy_cleanup(c);
	return rc;
}

/* Copies reply.id into id. */
static int take_id(struct demo *d, json_t *reply, char *id, size_t idlen, const char *what)
{
	const char *s = json_string_value(json_object_get(reply, "id"));

	if (s == NULL || strlen(s) >= idlen) {
		fail_msg(d, "%s: the reply has no id", what);
		return -EPROTO;
	}
	snprintf(id, idlen, "%s", s);
	return 0;
}

/* Reads the admin key the server wrote into its data directory. */
static int read_admin_key(struct demo *d)
{
	char path[PATH_MAX + 32];
	uint64_t deadline = al_mono_ms() + READY_TIMEOUT_MS;
	al_buf b = {0}, h = {0};
	char chunk[256];
	int rc = -ENOENT;

	snprintf(path, sizeof(path), "%s/data/admin.key", d->dir);
	while (rc < 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n;

		if (fd >= 0) {
			al_buf_reset(&b);
			while ((n = read(fd, chunk, sizeof(chunk))) > 0)
				if (al_buf_append(&b, chunk, (size_t)n) < 0)
					break;
			close(fd);
			al_wipe(chunk, sizeof(chunk));
			while (b.len > 0 &&
			       (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
				b.data[--b.len] = '\0';
			if (b.len > 0)
				rc = 0;
		}
		if (rc == 0)
			break;
		if (al_mono_ms() >= deadline || check_children(d) < 0) {
			fail_msg(d, "no admin key appeared in %s", path);
			goto done;
		}
		usleep(50000);
	}
	if (al_buf_appendf(&h, "x-api-key: %s", b.data) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	d->auth_header = al_buf_steal(&h, NULL);
done:
	al_buf_wipe(&h);
	al_buf_free(&h);
	al_buf_wipe(&b);
	al_buf_free(&b);
	return rc;
}

/* ---- rendering the session's events ---- */

/*
 * Prints s under a label: at most max_lines lines, long lines wrapped at a
 * space (or cut) to WRAP columns, trailing newlines dropped.
 */
#define WRAP 100
static void out_text(struct demo *d, const char *label, const char *s, size_t max_lines)
{
	size_t len = strlen(s), shown = 0, more = 0;
	const char *p = s, *end;

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	end = s + len;
	if (len == 0) {
		out(d, label, "(empty)");
		return;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t line = nl ? (size_t)(nl - p) : (size_t)(end - p), take = line;

		if (take > WRAP) {
			take = WRAP;
			while (take > WRAP / 2 && p[take] != ' ')
				take--;
			if (p[take] != ' ')
				take = WRAP;
		}
		if (shown < max_lines)
			out(d, shown ? "" : label, "%.*s", (int)take, p);
		else
			more++;
		shown++;
		p += take;
		if (take < line) {
			while (p < end && *p == ' ')
				p++;
		} else if (p < end) {
			p++; /* the newline */
		}
	}
	if (more)
		out(d, "", "... (%zu more line%s)", more, more == 1 ? "" : "s");
}

/* Joins the text blocks of a content array (NULL if none). Caller frees. */
static char *content_text(json_t *content)
{
	al_buf b = {0};
	size_t i;
	json_t *blk;

	if (json_is_string(content))
		return al_strdup(json_string_value(content));
	json_array_foreach(content, i, blk)
	{
		const char *t = json_string_value(json_object_get(blk, "text"));
		if (t == NULL)
			continue;
		if (b.len && al_buf_append_str(&b, "\n") < 0)
			break;
		if (al_buf_append_str(&b, t) < 0)
			break;
	}
	if (b.data == NULL)
		return NULL;
	return al_buf_steal(&b, NULL);
}

static void render_tool_use(struct demo *d, json_t *ev)
{
	const char *name = json_string_value(json_object_get(ev, "name"));
	const char *id = json_string_value(json_object_get(ev, "id"));
	json_t *in = json_object_get(ev, "input");
	const char *path = json_string_value(json_object_get(in, "file_path"));

	if (name == NULL)
		name = "?";
	if (id)
		json_object_set_new(d->tools, id, json_string(name));
	d->tool_calls++;
	snprintf(d->waiting, sizeof(d->waiting), "the worker runs %.40s in the sandbox", name);
	if (strcmp(name, "bash") == 0 && json_is_string(json_object_get(in, "command"))) {
		out(d, "tool", "bash, the command:");
		out_text(d, "", json_string_value(json_object_get(in, "command")), 6);
	} else if (strcmp(name, "write") == 0 && path) {
		const char *content = json_string_value(json_object_get(in, "content"));
		out(d, "tool", "write %s (%zu bytes):", path, content ? strlen(content) : 0);
		if (content)
			out_text(d, "", content, 6);
	} else if ((strcmp(name, "read") == 0 || strcmp(name, "edit") == 0) && path) {
		out(d, "tool", "%s %s", name, path);
	} else {
		char *s = json_dumps(in, JSON_COMPACT);
		out(d, "tool", "%s %.100s%s", name, s ? s : "{}",
		    s && strlen(s) > 100 ? "..." : "");
		al_free(s);
	}
}

static void render_tool_result(struct demo *d, json_t *ev, const char *id_field)
{
	const char *id = json_string_value(json_object_get(ev, id_field));
	const char *name = id ? json_string_value(json_object_get(d->tools, id)) : NULL;
	int is_error = json_is_true(json_object_get(ev, "is_error"));
	char *text = content_text(json_object_get(ev, "content"));
	char label[32];

	d->results++;
	snprintf(d->waiting, sizeof(d->waiting), "waiting for the model");
	if (is_error)
		d->tool_errors++;
	snprintf(label, sizeof(label), "  %s", is_error ? "error" : "result");
	(void)name;
	out_text(d, label, text ? text : "", 8);
	al_free(text);
}

static void render_mcp_use(struct demo *d, json_t *ev)
{
	char *in = json_dumps(json_object_get(ev, "input"), JSON_COMPACT);

	d->mcp_calls++;
	snprintf(d->waiting, sizeof(d->waiting), "the control plane calls the MCP server");
	out(d, "mcp", "%s/%s %s, through the gateway (%s)",
	    json_string_value(json_object_get(ev, "mcp_server_name")) ?: "?",
	    json_string_value(json_object_get(ev, "name")) ?: "?", in ? in : "{}",
	    json_string_value(json_object_get(ev, "evaluated_permission")) ?: "?");
	al_free(in);
}

static void render_mcp_result(struct demo *d, json_t *ev)
{
	char *text = content_text(json_object_get(ev, "content"));
	int is_error = json_is_true(json_object_get(ev, "is_error"));

	json_t *t = text && !is_error ? json_loads(text, 0, NULL) : NULL;

	if (is_error)
		d->mcp_errors++;
	snprintf(d->waiting, sizeof(d->waiting), "waiting for the model");
	/* a ticket (tickets-mcp answers with its JSON): one readable line */
	al_buf line = {0};
	if (json_is_integer(json_object_get(t, "id")) &&
	    json_is_string(json_object_get(t, "title")) &&
	    al_buf_appendf(&line, "#%lld [%s, %s] %s: %s",
			   (long long)json_integer_value(json_object_get(t, "id")),
			   json_string_value(json_object_get(t, "status")) ?: "?",
			   json_string_value(json_object_get(t, "priority")) ?: "?",
			   json_string_value(json_object_get(t, "title")),
			   json_string_value(json_object_get(t, "body")) ?: "") == 0)
		out_text(d, "  ticket", line.data, 4);
	else
		out_text(d, is_error ? "  error" : "  result", text ? text : "", 6);
	al_buf_free(&line);
	json_decref(t);
	al_free(text);
}

/* Renders one session event and updates the run's state. */
static void render_event(struct demo *d, json_t *ev)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *id = json_string_value(json_object_get(ev, "id"));
	char *text;

	if (type == NULL)
		return;
	if (id != NULL) {
		if (json_object_get(d->seen, id))
			return; /* the stream and the history overlap */
		json_object_set_new(d->seen, id, json_true());
	}
	if (strcmp(type, "user.message") == 0 || strcmp(type, "agent.message") == 0) {
		text = content_text(json_object_get(ev, "content"));
		out_text(d, type[0] == 'u' ? "you" : "agent", text ? text : "", 20);
		al_free(text);
		if (type[0] == 'u')
			d->prompt_seen = 1;
	} else if (strcmp(type, "agent.tool_use") == 0) {
		render_tool_use(d, ev);
	} else if (strcmp(type, "user.tool_result") == 0 ||
		   strcmp(type, "agent.tool_result") == 0) {
		render_tool_result(d, ev, "tool_use_id");
	} else if (strcmp(type, "agent.mcp_tool_use") == 0) {
		render_mcp_use(d, ev);
	} else if (strcmp(type, "agent.mcp_tool_result") == 0) {
		render_mcp_result(d, ev);
	} else if (strcmp(type, "session.status_running") == 0) {
		out(d, "status", "running");
	} else if (strcmp(type, "session.status_idle") == 0) {
		const char *why =
		    json_string_value(json_object_get(json_object_get(ev, "stop_reason"), "type"));
		out(d, "status", "idle (%s)", why ? why : "no stop reason");
		if (!d->prompt_seen) {
			/* idle before our message: not the end of our turn */
		} else if (why && strcmp(why, "end_turn") == 0) {
			d->finished = 1;
		} else {
			d->session_error = 1;
			snprintf(d->session_error_msg, sizeof(d->session_error_msg),
				 "the session stopped: %s", why ? why : "no stop reason");
		}
	} else if (strcmp(type, "session.status_rescheduled") == 0) {
		out(d, "status", "rescheduled (the work item is claimed again)");
	} else if (strcmp(type, "session.status_terminated") == 0) {
		out(d, "status", "terminated");
		d->session_error = 1;
		snprintf(d->session_error_msg, sizeof(d->session_error_msg),
			 "the session was terminated");
	} else if (strcmp(type, "session.error") == 0) {
		json_t *err = json_object_get(ev, "error");
		const char *m = json_string_value(json_object_get(err, "message"));
		out(d, "error", "%s", m ? m : "(session.error without a message)");
	} else if (strcmp(type, "agent.thinking") == 0) {
		out(d, "agent", "(thinking)");
	} else if (strncmp(type, "span.", 5) == 0) {
		/* model request timing: not what a person reads */
	} else {
		out(d, "event", "%s", type);
	}
}

static int sse_event_cb(const struct al_sse_event *e, void *ud)
{
	struct demo *d = ud;
	json_error_t jerr;
	json_t *ev = json_loadb(e->data, e->data_len, 0, &jerr);

	if (ev != NULL)
		render_event(d, ev);
	json_decref(ev);
	return 0;
}

/* Lists the history and renders what the stream has not shown (by id). */
static int reconcile_history(struct demo *d)
{
	char path[256];
	json_t *page = NULL, *ev;
	size_t i;
	int rc;

	snprintf(path, sizeof(path), "/v1/sessions/%s/events?limit=1000", d->session_id);
	if ((rc = api_call(d, "GET", path, NULL, &page, "listing the session's events")) < 0)
		return rc;
	json_array_foreach(json_object_get(page, "data"), i, ev) render_event(d, ev);
	json_decref(page);
	return 0;
}

static size_t stream_body_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct demo *d = ud;

	if (d->stream_status != 200)
		return sz * n; /* an error body: shown by status */
	return al_sse_parser_feed(d->sse, p, sz * n) < 0 ? 0 : sz * n;
}

static size_t stream_header_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct demo *d = ud;

	/* The blank line that ends the headers: the stream is attached. */
	if (sz * n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
		curl_easy_getinfo(d->stream, CURLINFO_RESPONSE_CODE, &d->stream_status);
		if (d->stream_status == 200)
			d->stream_open = 1;
	}
	return sz * n;
}

static void stream_close(struct demo *d)
{
	if (d->stream) {
		curl_multi_remove_handle(d->multi, d->stream);
		curl_easy_cleanup(d->stream);
		d->stream = NULL;
	}
	curl_slist_free_all(d->stream_hdrs);
	d->stream_hdrs = NULL;
	al_sse_parser_free(d->sse);
	d->sse = NULL;
	d->stream_open = 0;
	d->stream_status = 0;
}

static int stream_start(struct demo *d)
{
	char url[1024];
	struct curl_slist *t;

	stream_close(d);
	snprintf(url, sizeof(url), "%s/v1/sessions/%s/events/stream", d->base_url, d->session_id);
	d->sse = al_sse_parser_new(0, sse_event_cb, d);
	d->stream = curl_easy_init();
	d->stream_hdrs = api_headers(d, 0);
	if (d->sse == NULL || d->stream == NULL || d->stream_hdrs == NULL)
		return -ENOMEM;
	t = curl_slist_append(d->stream_hdrs, "accept: text/event-stream");
	if (t == NULL)
		return -ENOMEM;
	d->stream_hdrs = t;
	curl_common(d->stream, url);
	curl_easy_setopt(d->stream, CURLOPT_HTTPHEADER, d->stream_hdrs);
	curl_easy_setopt(d->stream, CURLOPT_WRITEFUNCTION, stream_body_cb);
	curl_easy_setopt(d->stream, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(d->stream, CURLOPT_HEADERFUNCTION, stream_header_cb);
	curl_easy_setopt(d->stream, CURLOPT_HEADERDATA, d);
	if (curl_multi_add_handle(d->multi, d->stream) != CURLM_OK)
		return -ENOMEM;
	return 0;
}

/*
 * Drives the stream for up to wait_ms. Returns 1 if the stream ended (it
 * needs reopening), 0 if it is still going, or a negative errno.
 */
static int stream_pump(struct demo *d, int wait_ms)
{
	CURLMsg *m;
	int running = 0, left, ended = 0;

	if (curl_multi_poll(d->multi, NULL, 0, wait_ms, NULL) != CURLM_OK)
		return -EIO;
	if (curl_multi_perform(d->multi, &running) != CURLM_OK)
		return -EIO;
	while ((m = curl_multi_info_read(d->multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE && m->easy_handle == d->stream)
			ended = 1;
	return ended;
}

/* Opens the stream and waits until it is attached (headers in). */
static int stream_attach(struct demo *d)
{
	uint64_t deadline = al_mono_ms() + STREAM_OPEN_MS;
	int rc;

	if ((rc = stream_start(d)) < 0)
		return rc;
	while (!d->stream_open) {
		if ((rc = stream_pump(d, 50)) < 0)
			return rc;
		if (rc == 1 || (d->stream_status != 0 && d->stream_status != 200)) {
			fail_msg(d, "the event stream could not be opened (HTTP %ld)",
				 d->stream_status);
			return -EIO;
		}
		if ((rc = interrupted(d)) < 0 || (rc = check_children(d)) < 0)
			return rc;
		if (al_mono_ms() >= deadline) {
			fail_msg(d, "the event stream did not open within %d s",
				 STREAM_OPEN_MS / 1000);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

/* Follows the session until it idles with end_turn (or fails). */
static int follow_session(struct demo *d)
{
	uint64_t deadline = al_mono_ms() + (uint64_t)d->timeout_s * 1000;
	unsigned backoff_ms = 250;
	int rc;

	while (!d->finished) {
		if (d->session_error) {
			fail_msg(d, "%s", d->session_error_msg);
			return -EPROTO;
		}
		if ((rc = interrupted(d)) < 0 || (rc = check_children(d)) < 0)
			return rc;
		if (al_mono_ms() >= deadline) {
			fail_msg(d, "the session did not finish within %u s (--timeout)",
				 d->timeout_s);
			show_log_tail(&d->worker, 1500);
			return -ETIMEDOUT;
		}
		rc = stream_pump(d, 100);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			/* The stream ended (server restart, proxy timeout): reattach, then catch
			 * up. */
			usleep(backoff_ms * 1000);
			backoff_ms = backoff_ms < 4000 ? backoff_ms * 2 : 4000;
			if (stream_attach(d) == 0)
				(void)reconcile_history(d);
			continue;
		}
		if (!d->finished && !d->session_error)
			progress_tick(d, d->waiting);
	}
	return 0;
}

/* ---- the run ---- */

static int self_path(char *out, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);

	if (n <= 0)
		return -errno;
	out[n] = '\0';
	return 0;
}

/*
 * The sandbox runs tools as uid 65534, which must be able to pass through
 * every directory above its workspace (the workspace itself the worker
 * hands over). Names the first that it cannot pass, rather than letting
 * every bash call die inside the sandbox.
 */
static int check_passable(const char *dir, char *bad, size_t badlen)
{
	char path[PATH_MAX];
	struct stat st;
	char *slash;

	snprintf(path, sizeof(path), "%s", dir);
	for (;;) {
		if (stat(path[0] ? path : "/", &st) < 0)
			return -errno;
		if (!(st.st_mode & S_IXOTH) && st.st_uid != 65534) {
			snprintf(bad, badlen, "%s", path[0] ? path : "/");
			return -EACCES;
		}
		slash = strrchr(path, '/');
		if (slash == NULL || path[0] == '\0')
			return 0;
		*slash = '\0';
	}
}

static int make_run_dir(struct demo *d, const char *given)
{
	const char *tmp = getenv("TMPDIR");

	if (given) {
		DIR *dp;
		struct dirent *de;
		int empty = 1;

		if (mkdir(given, 0700) < 0 && errno != EEXIST)
			return -errno;
		/* A previous run's logs, keys and data would be mistaken for this run's. */
		if ((dp = opendir(given)) == NULL)
			return -errno;
		while ((de = readdir(dp)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				empty = 0;
		closedir(dp);
		if (!empty)
			return -ENOTEMPTY;
		char real[PATH_MAX];
		if (realpath(given, real) == NULL)
			return -errno;
		if (strlen(real) >= sizeof(d->dir))
			return -ENAMETOOLONG;
		memcpy(d->dir, real, strlen(real) + 1);
	} else {
		snprintf(d->dir, sizeof(d->dir), "%s/airlock-demo-XXXXXX",
			 tmp && tmp[0] ? tmp : "/tmp");
		if (mkdtemp(d->dir) == NULL)
			return -errno;
	}
	/*
	 * Passable, not listable: the workspace beneath must be reachable by
	 * the sandbox's uid; every file we and the children put here is 0600
	 * or in a 0700 directory of its own.
	 */
	return chmod(d->dir, 0711) < 0 ? -errno : 0;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc;

	if (fd < 0)
		return -errno;
	rc = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -EIO;
	close(fd);
	return rc;
}

/* ---- the private MCP server behind the gateway (docs/CONTROL-PLANE-MCP.md) ---- */

/*
 * A throwaway CA and, signed by it, the gateway's certificate for localhost
 * and 127.0.0.1: the "customer's" inner TLS, which the control plane
 * verifies against this CA alone (--mcp-ca). P-256 keys, one day.
 */
static X509 *pki_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, const char *cn, int ca)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext = NULL;
	X509_NAME *name;
	int ok = 0;

	if (x == NULL)
		return NULL;
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600) || !X509_set_pubkey(x, key) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
					0) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name))
		goto done;
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				  ca ? "critical,CA:TRUE" : "CA:FALSE");
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		goto done;
	X509_EXTENSION_free(ext);
	ext = NULL;
	if (!ca) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name,
					  "DNS:localhost,IP:127.0.0.1");
		if (ext == NULL || !X509_add_ext(x, ext, -1))
			goto done;
	}
	ok = X509_sign(x, signer, EVP_sha256()) > 0;
done:
	X509_EXTENSION_free(ext);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static int pki_write(const char *path, X509 *cert, EVP_PKEY *key)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int ok;

	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	ok = cert ? PEM_write_X509(f, cert)
		  : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	return fclose(f) == 0 && ok ? 0 : -EIO;
}

static int make_pki(struct demo *d)
{
	EVP_PKEY *cakey = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
	X509 *ca = NULL, *leaf = NULL;
	char path[PATH_MAX + 32];
	int rc = -ENOMEM;

	if (cakey == NULL || key == NULL)
		goto done;
	ca = pki_cert(cakey, cakey, NULL, "airlock demo CA (throwaway)", 1);
	leaf = ca ? pki_cert(key, cakey, ca, "localhost", 0) : NULL;
	if (leaf == NULL)
		goto done;
	snprintf(d->mcp_ca, sizeof(d->mcp_ca), "%s/mcp-ca.pem", d->dir);
	if ((rc = pki_write(d->mcp_ca, ca, NULL)) < 0)
		goto done;
	snprintf(path, sizeof(path), "%s/gateway.pem", d->dir);
	if ((rc = pki_write(path, leaf, NULL)) < 0)
		goto done;
	snprintf(path, sizeof(path), "%s/gateway.key", d->dir);
	rc = pki_write(path, NULL, key);
done:
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(key);
	return rc;
}

/* A free loopback port (the kernel's choice; the gateway's config names one). */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static const char tickets_seed[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"airlock-demo\",\"version\":"
    "\"1\"}}}\n"
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
    "\"tickets_create\",\"arguments\":{\"title\":\"Agents must run inside the perimeter\","
    "\"body\":\"Security asks that every tool call runs in a sandbox on our machines and "
    "lands in an audit log.\",\"priority\":\"high\"}}}\n"
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
    "\"tickets_create\",\"arguments\":{\"title\":\"VPN drops every hour\",\"body\":\"Seen on "
    "the third floor.\"}}}\n";

/*
 * Seeds build/tickets-mcp's database with two tickets over --stdio, then
 * serves it on loopback http behind `airlock gateway`, which terminates TLS
 * with a certificate from a throwaway CA and routes Host localhost to it.
 * Without a tickets-mcp binary next to this one the demo runs without MCP.
 */
static int start_mcp(struct demo *d)
{
	char db[PATH_MAX + 16], seed[PATH_MAX + 16], yaml[PATH_MAX + 16], audit[PATH_MAX + 32];
	char addr[300], cfg[4 * PATH_MAX + 512], *slash;
	char **env = NULL;
	struct child seeder = {.name = "tickets-mcp (seeding)"};
	uint64_t deadline;
	int rc, gp;

	const char *bin = getenv("AIRLOCK_DEMO_TICKETS");
	if (bin != NULL && *bin)
		snprintf(d->tickets_bin, sizeof(d->tickets_bin), "%s", bin);
	else {
		snprintf(d->tickets_bin, sizeof(d->tickets_bin), "%s", d->self);
		slash = strrchr(d->tickets_bin, '/');
		if (slash != NULL)
			snprintf(slash + 1,
				 sizeof(d->tickets_bin) - (size_t)(slash + 1 - d->tickets_bin),
				 "tickets-mcp");
	}
	if (access(d->tickets_bin, X_OK) != 0) {
		out(d, "mcp", "%s is not built: the demo runs without the private MCP server",
		    d->tickets_bin);
		return 0;
	}
	if ((rc = make_pki(d)) < 0) {
		fail_msg(d, "cannot make the demo CA: %s", strerror(-rc));
		return rc;
	}
	if ((env = child_env(NULL)) == NULL)
		return -ENOMEM;
	snprintf(db, sizeof(db), "%s/tickets.db", d->dir);
	snprintf(seed, sizeof(seed), "%s/tickets-seed.jsonl", d->dir);
	snprintf(seeder.log, sizeof(seeder.log), "%s/tickets-seed.log", d->dir);
	seeder.stdin_path = seed;
	if ((rc = write_file(seed, tickets_seed)) < 0)
		goto done;
	{
		char *argv[] = {d->tickets_bin, "--db", db, "--stdio", NULL};
		if ((rc = child_start(&seeder, d->tickets_bin, argv, env)) < 0)
			goto done;
	}
	deadline = al_mono_ms() + 10000;
	while (child_running(&seeder)) {
		if (g_signal || al_mono_ms() >= deadline) {
			child_stop(&seeder);
			rc = g_signal ? -EINTR : -ETIMEDOUT;
			goto done;
		}
		usleep(20000);
	}
	if (!WIFEXITED(seeder.status) || WEXITSTATUS(seeder.status) != 0) {
		fail_msg(d, "seeding the tickets database failed");
		show_log_tail(&seeder, 1500);
		rc = -ECHILD;
		goto done;
	}
	{
		char *argv[] = {d->tickets_bin, "--db", db, "--listen", "127.0.0.1:0", NULL};
		if ((rc = child_start(&d->tickets, d->tickets_bin, argv, env)) < 0)
			goto done;
	}
	if ((rc = wait_listening(d, &d->tickets, addr, sizeof(addr))) < 0)
		goto done;
	/* addr is the endpoint URL, http://127.0.0.1:PORT/mcp: the route wants the origin */
	if ((slash = strstr(addr, "/mcp")) != NULL)
		*slash = '\0';
	if ((gp = free_port()) < 0) {
		rc = -EADDRNOTAVAIL;
		goto done;
	}
	snprintf(yaml, sizeof(yaml), "%s/gateway.yaml", d->dir);
	snprintf(audit, sizeof(audit), "%s/gateway-audit.log", d->dir);
	snprintf(cfg, sizeof(cfg),
		 "# airlock demo: the gateway in front of the private tickets server\n"
		 "listen_addr: 127.0.0.1:%d\n"
		 "shutdown_timeout: 5s\n"
		 "tls:\n"
		 "  cert_file: %s/gateway.pem\n"
		 "  key_file: %s/gateway.key\n"
		 "routes:\n"
		 "  localhost:\n"
		 "    upstream: %s\n"
		 "    tools:\n"
		 "      deny: [\"tickets_close\"]\n"
		 "upstream:\n"
		 "  allowed_ips: [127.0.0.0/8]\n"
		 "airlock:\n"
		 "  admin_addr: off\n"
		 "  audit: %s\n",
		 gp, d->dir, d->dir, addr, audit);
	if ((rc = write_file(yaml, cfg)) < 0)
		goto done;
	{
		char *argv[] = {d->self, "gateway", "--config", yaml, NULL};
		if ((rc = child_start(&d->gateway, d->self, argv, env)) < 0)
			goto done;
	}
	if ((rc = wait_listening(d, &d->gateway, d->gateway_addr, sizeof(d->gateway_addr))) < 0)
		goto done;
	snprintf(d->mcp_url, sizeof(d->mcp_url), "https://localhost:%d/mcp", gp);
	d->mcp = 1;
	out(d, "mcp", "tickets-mcp (2 tickets, SQLite) at %s", addr);
	out(d, "gateway", "airlock gateway at %s: TLS with a certificate from a throwaway CA,",
	    d->mcp_url);
	out(d, "", "Host routing, tickets_close denied, audit log %s", audit);
done:
	if (rc < 0 && rc != -EINTR && rc != -ECHILD)
		fail_msg(d, "cannot start the MCP server and gateway: %s", strerror(-rc));
	al_free(env);
	return rc;
}

static int start_model(struct demo *d)
{
	char addr[256], script[PATH_MAX + 32];
	char **env = NULL;
	int rc;

	if (d->real_model) {
		snprintf(d->model_url, sizeof(d->model_url), "https://api.anthropic.com");
		out(d, "model", "the Messages API (ANTHROPIC_API_KEY is set), model %s", d->model);
		return 0;
	}
	if (d->script) {
		snprintf(script, sizeof(script), "%s", d->script);
	} else {
		snprintf(script, sizeof(script), "%s/scenario.json", d->dir);
		al_buf sc = {0};
		if (al_buf_append_str(&sc, demo_scenario_head) < 0 ||
		    (d->mcp && al_buf_append_str(&sc, demo_mcp_step) < 0) ||
		    al_buf_append_str(&sc, demo_scenario_steps) < 0)
			rc = -ENOMEM;
		else
			rc = write_file(script, sc.data);
		al_buf_free(&sc);
		if (rc < 0) {
			fail_msg(d, "cannot write %s: %s", script, strerror(-rc));
			return rc;
		}
	}
	char *argv[] = {d->self, "model-stub", "--listen", "127.0.0.1:0", "--script", script, NULL};
	if ((env = child_env(NULL)) == NULL)
		return -ENOMEM;
	rc = child_start(&d->stub, d->self, argv, env);
	al_free(env);
	if (rc < 0) {
		fail_msg(d, "cannot start the model stub: %s", strerror(-rc));
		return rc;
	}
	if ((rc = wait_listening(d, &d->stub, addr, sizeof(addr))) < 0)
		return rc;
	snprintf(d->model_url, sizeof(d->model_url), "http://%s", addr);
	out(d, "model", "scripted stub at %s, a TEST DOUBLE playing %s", d->model_url, script);
	out(d, "", "(set ANTHROPIC_API_KEY to use the real model)");
	return 0;
}

static int start_server(struct demo *d)
{
	char addr[256], data[PATH_MAX + 16];
	char **env = NULL;
	char *extra[2] = {NULL, NULL};
	al_buf key = {0};
	int rc;

	char trust[PATH_MAX + 64];

	snprintf(data, sizeof(data), "%s/data", d->dir);
	/* the MCP server's inner TLS: the demo CA, and only it, for host localhost */
	snprintf(trust, sizeof(trust), "localhost=%s", d->mcp_ca);
	char *argv[] = {d->self,       "server",     "--listen",
			"127.0.0.1:0", "--data",     data,
			"--model-url", d->model_url, d->mcp ? "--mcp-ca" : NULL,
			trust,	       NULL};
	if (d->real_model) {
		/* The model key goes to the server only, through its environment. */
		if (al_buf_appendf(&key, "ANTHROPIC_API_KEY=%s", getenv("ANTHROPIC_API_KEY")) < 0) {
			rc = -ENOMEM;
			goto done;
		}
		extra[0] = key.data;
	}
	if ((env = child_env(extra)) == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	rc = child_start(&d->server, d->self, argv, env);
	if (rc < 0) {
		fail_msg(d, "cannot start the control plane: %s", strerror(-rc));
		goto done;
	}
	if ((rc = wait_listening(d, &d->server, addr, sizeof(addr))) < 0)
		goto done;
	snprintf(d->base_url, sizeof(d->base_url), "http://%s", addr);
	if ((rc = read_admin_key(d)) < 0)
		goto done;
	out(d, "server", "control plane at %s (data in %s)", d->base_url, data);
done:
	al_free(env);
	al_buf_wipe(&key);
	al_buf_free(&key);
	return rc;
}

/* Creates the agent, the environment and its key, and the session. */
static int create_resources(struct demo *d, char **env_key)
{
	json_t *req = NULL, *reply = NULL;
	char path[256];
	const char *k;
	int rc;

	*env_key = NULL;
	/*
	 * Only the three tools the demo needs, each always allowed: the default
	 * config disables the rest of the toolset and each config enables one.
	 */
	req = json_pack("{s:s, s:s, s:s, s:[{s:s, s:{s:b, s:{s:s}}, s:[{s:s, s:b, s:{s:s}}, "
			"{s:s, s:b, s:{s:s}}, {s:s, s:b, s:{s:s}}]}]}",
			"name", "airlock-demo", "model", d->model, "system", demo_system, "tools",
			"type", "agent_toolset_20260401", "default_config", "enabled", 0,
			"permission_policy", "type", "always_allow", "configs", "name", "bash",
			"enabled", 1, "permission_policy", "type", "always_allow", "name", "read",
			"enabled", 1, "permission_policy", "type", "always_allow", "name", "write",
			"enabled", 1, "permission_policy", "type", "always_allow");
	/*
	 * With the private server: its tools through an mcp_toolset. Only the
	 * read-only ones are enabled (an allow list: the glob "*" disables the
	 * rest, docs/CONTROL-PLANE-MCP.md), each always allowed.
	 */
	if (req != NULL && d->mcp &&
	    (json_object_set_new(req, "mcp_servers",
				 json_pack("[{s:s, s:s, s:s}]", "type", "url", "name", "tickets",
					   "url", d->mcp_url)) < 0 ||
	     json_array_append_new(
		 json_object_get(req, "tools"),
		 json_pack("{s:s, s:s, s:{s:{s:s}}, s:[{s:s}, {s:s}, {s:s, s:b}]}", "type",
			   "mcp_toolset", "mcp_server_name", "tickets", "default_config",
			   "permission_policy", "type", "always_allow", "configs", "name",
			   "tickets_get", "name", "tickets_search", "name", "*", "enabled", 0)) <
		 0)) {
		json_decref(req);
		req = NULL;
	}
	if (req == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	rc = api_call(d, "POST", "/v1/agents", req, &reply, "creating the agent");
	json_decref(req);
	if (rc < 0 || (rc = take_id(d, reply, d->agent_id, sizeof(d->agent_id), "agent")) < 0)
		goto done;
	json_decref(reply);
	reply = NULL;

	req = json_pack("{s:s, s:{s:s}}", "name", "airlock-demo", "config", "type", "self_hosted");
	if (req == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	rc = api_call(d, "POST", "/v1/environments", req, &reply, "creating the environment");
	json_decref(req);
	if (rc < 0 || (rc = take_id(d, reply, d->env_id, sizeof(d->env_id), "environment")) < 0)
		goto done;
	json_decref(reply);
	reply = NULL;

	snprintf(path, sizeof(path), "/v1/environments/%s/keys", d->env_id);
	req = json_pack("{s:s}", "name", "airlock-demo worker");
	if (req == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	rc = api_call(d, "POST", path, req, &reply, "creating the environment key");
	json_decref(req);
	if (rc < 0)
		goto done;
	k = json_string_value(json_object_get(reply, "key"));
	if (k == NULL || (*env_key = al_strdup(k)) == NULL) {
		fail_msg(d, "creating the environment key: no key in the reply");
		rc = -EPROTO;
		goto done;
	}
	/* Jansson's copy of the key: wiped before it is freed. */
	al_wipe((char *)k, strlen(k));
	json_decref(reply);
	reply = NULL;

	req = json_pack("{s:s, s:s}", "agent", d->agent_id, "environment_id", d->env_id);
	if (req == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	rc = api_call(d, "POST", "/v1/sessions", req, &reply, "creating the session");
	json_decref(req);
	if (rc < 0 || (rc = take_id(d, reply, d->session_id, sizeof(d->session_id), "session")) < 0)
		goto done;
	out(d, "setup", "agent %s (bash, read, write: always_allow%s)", d->agent_id,
	    d->mcp ? "; MCP tickets_get, tickets_search" : "");
	out(d, "", "environment %s (self_hosted) and its key; session %s", d->env_id,
	    d->session_id);
done:
	json_decref(reply);
	return rc;
}

/* Splits AIRLOCK_DEMO_WORKER_ARGS on spaces into argv (a test hook). */
static int start_worker(struct demo *d, char *env_key)
{
	char work[PATH_MAX + 16], *extra_env[2] = {NULL, NULL};
	char *argv[48], *args_copy = NULL, *save = NULL, *tok;
	char **env = NULL;
	al_buf kv = {0};
	size_t n = 0;
	int rc;

	snprintf(work, sizeof(work), "%s/work", d->dir);
	snprintf(d->audit_path, sizeof(d->audit_path), "%s/audit.log", d->dir);
	/* Passable by the sandbox's uid, as the worker itself would create it. */
	if ((mkdir(work, 0711) < 0 && errno != EEXIST) || chmod(work, 0711) < 0) {
		rc = -errno;
		fail_msg(d, "cannot create %s: %s", work, strerror(errno));
		goto done;
	}
	argv[n++] = (char *)d->worker_bin;
	argv[n++] = "worker";
	argv[n++] = "poll";
	argv[n++] = "--base-url";
	argv[n++] = d->base_url;
	argv[n++] = "--environment";
	argv[n++] = d->env_id;
	argv[n++] = "--workdir";
	argv[n++] = work;
	argv[n++] = "--audit";
	argv[n++] = d->audit_path;
	argv[n++] = "--audit-key";
	argv[n++] = d->audit_key;
	argv[n++] = "--max-idle";
	argv[n++] = "5";
	if (d->worker_args && d->worker_args[0]) {
		if ((args_copy = al_strdup(d->worker_args)) == NULL) {
			rc = -ENOMEM;
			goto done;
		}
		for (tok = strtok_r(args_copy, " ", &save); tok && n < 47;
		     tok = strtok_r(NULL, " ", &save))
			argv[n++] = tok;
	}
	argv[n] = NULL;
	if (al_buf_appendf(&kv, "ANTHROPIC_ENVIRONMENT_KEY=%s", env_key) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	extra_env[0] = kv.data;
	if ((env = child_env(extra_env)) == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	rc = child_start(&d->worker, d->worker_bin, argv, env);
	if (rc < 0) {
		fail_msg(d, "cannot start the worker: %s", strerror(-rc));
		goto done;
	}
	out(d, "worker", "airlock worker poll (pid %d): dials out, runs tools in the sandbox",
	    (int)d->worker.pid);
	out(d, "", "workspace %s, audit log %s", work, d->audit_path);
done:
	al_free(env);
	al_buf_wipe(&kv);
	al_buf_free(&kv);
	al_free(args_copy);
	return rc;
}

static int send_prompt(struct demo *d)
{
	char path[256];
	json_t *req;
	int rc;

	req = json_pack("{s:[{s:s, s:[{s:s, s:s}]}]}", "events", "type", "user.message", "content",
			"type", "text", "text", d->mcp ? demo_prompt_mcp : demo_prompt);
	if (req == NULL)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/v1/sessions/%s/events", d->session_id);
	rc = api_call(d, "POST", path, req, NULL, "sending the user message");
	json_decref(req);
	return rc;
}

/*
 * Runs `airlock ARGS...` (a short tool: audit keygen or verify) to its end,
 * output in log. Returns its wait status in *status, or a negative errno.
 */
static int run_tool(struct demo *d, char *const argv[], const char *log, int *status)
{
	struct child t = {.name = argv[1]};
	uint64_t deadline = al_mono_ms() + 30000;
	char **env;
	int rc;

	snprintf(t.log, sizeof(t.log), "%s", log);
	unlink(t.log);
	if ((env = child_env(NULL)) == NULL)
		return -ENOMEM;
	rc = child_start(&t, d->self, argv, env);
	al_free(env);
	if (rc < 0) {
		fail_msg(d, "cannot run airlock %s: %s", argv[1], strerror(-rc));
		return rc;
	}
	while (child_running(&t)) {
		if (g_signal || al_mono_ms() >= deadline) {
			child_stop(&t);
			return g_signal ? -EINTR : -ETIMEDOUT;
		}
		usleep(20000);
	}
	*status = t.status;
	return 0;
}

/* Reads the first line of a file into line (empty if none). */
static void first_line(const char *path, char *line, size_t len)
{
	FILE *f = fopen(path, "re");

	line[0] = '\0';
	if (f != NULL) {
		if (fgets(line, (int)len, f) == NULL)
			line[0] = '\0';
		fclose(f);
	}
	line[strcspn(line, "\n")] = '\0';
}

/*
 * A fresh Ed25519 key for the worker's audit checkpoints, so the final
 * verification checks signatures as well as the hash chain.
 */
static int make_audit_key(struct demo *d)
{
	char log[PATH_MAX + 32], line[512];
	int rc, st = 0;

	snprintf(d->audit_key, sizeof(d->audit_key), "%s/audit.key", d->dir);
	snprintf(d->audit_pub, sizeof(d->audit_pub), "%s/audit.key.pub", d->dir);
	snprintf(log, sizeof(log), "%s/audit-keygen.txt", d->dir);
	char *argv[] = {d->self,      "audit", "keygen",     "--out",
			d->audit_key, "--pub", d->audit_pub, NULL};
	if ((rc = run_tool(d, argv, log, &st)) < 0)
		return rc;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		first_line(log, line, sizeof(line));
		fail_msg(d, "airlock audit keygen failed: %s", line[0] ? line : "(no output)");
		return -EIO;
	}
	return 0;
}

/* Runs `airlock audit verify` on the worker's log; prints its verdict. */
static int verify_audit(struct demo *d)
{
	char log[PATH_MAX + 32], line[1024];
	const char *p;
	int rc, st = 0;

	snprintf(log, sizeof(log), "%s/audit-verify.txt", d->dir);
	char *argv[] = {d->self, "audit", "verify", d->audit_path, "--pubkey", d->audit_pub, NULL};
	if (access(d->audit_path, R_OK) != 0) {
		fail_msg(d, "the worker left no audit log at %s", d->audit_path);
		return -ENOENT;
	}
	if ((rc = run_tool(d, argv, log, &st)) < 0)
		return rc;
	first_line(log, line, sizeof(line));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fail_msg(d, "the audit log did NOT verify: %s", line[0] ? line : "(no output)");
		return -EBADMSG;
	}
	/* "FILE: intact: N records, ..." -> "intact: N records, ..." */
	p = strstr(line, ": intact");
	out(d, "audit", "audit log verified (airlock audit verify --pubkey):");
	out_text(d, "", p ? p + 2 : line, 4);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: airlock demo [--dir DIR] [--timeout SEC] [--script FILE] [--model NAME]\n"
	    "\n"
	    "The end-to-end demo (`make run`): starts the control plane on a loopback port,\n"
	    "the model (the Messages API when ANTHROPIC_API_KEY is set, else the scripted\n"
	    "stub, a test double) and a self-hosted worker, runs one session in which the\n"
	    "agent writes a file, runs a command on it and reads the result back, all in\n"
	    "the sandbox, then verifies the worker's audit log. Everything it starts is\n"
	    "stopped before it exits, also on Ctrl-C or failure.\n"
	    "\n"
	    "Options:\n"
	    "  --dir DIR        where the run's files go (data, workspace, audit log, logs);\n"
	    "                   default a new $TMPDIR/airlock-demo-XXXXXX, kept afterwards\n"
	    "  --timeout SEC    give up when the session has not finished (default %d)\n"
	    "  --script FILE    the stub's script instead of the built-in scenario\n"
	    "  --model NAME     the agent's model (default %s)\n"
	    "  -h, --help       this text\n"
	    "\n"
	    "Environment:\n"
	    "  ANTHROPIC_API_KEY           use the real Messages API (passed to the server only)\n"
	    "  AIRLOCK_DEMO_WORKER         the worker binary (default: this binary)\n"
	    "  AIRLOCK_DEMO_WORKER_ARGS    extra worker arguments, space-separated (tests)\n"
	    "\n"
	    "Exit status: 0 the session finished and the audit log verified; 1 a failure\n"
	    "(named on stderr, with the failing process's last log lines); 2 usage;\n"
	    "130 interrupted.\n",
	    DEMO_TIMEOUT_S, DEMO_MODEL);
}

int al_cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},    {"timeout", required_argument, NULL, 't'},
	    {"script", required_argument, NULL, 's'}, {"model", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},	      {NULL, 0, NULL, 0},
	};
	struct demo d = {0};
	struct sigaction sa = {0}, old_int, old_term, old_hup;
	const char *dir = NULL, *key;
	char *env_key = NULL;
	int c, rc = -EIO, curl_ok = 0, status;

	d.server.name = "control plane";
	d.stub.name = "model stub";
	d.worker.name = "worker";
	d.tickets.name = "tickets MCP server";
	d.gateway.name = "gateway";
	d.timeout_s = DEMO_TIMEOUT_S;
	d.model = DEMO_MODEL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || v < 1 || v > 86400) {
				fprintf(stderr, "airlock demo: --timeout must be 1..86400\n");
				return 2;
			}
			d.timeout_s = (unsigned)v;
			break;
		}
		case 's':
			d.script = optarg;
			break;
		case 'm':
			d.model = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	key = getenv("ANTHROPIC_API_KEY");
	d.real_model = key != NULL && key[0] != '\0';
	d.tty = isatty(STDOUT_FILENO);
	d.t0_ms = d.last_out_ms = al_mono_ms();
	d.worker_args = getenv("AIRLOCK_DEMO_WORKER_ARGS");
	if (self_path(d.self, sizeof(d.self)) < 0) {
		fprintf(stderr, "airlock demo: cannot find this binary: %s\n", strerror(errno));
		return 1;
	}
	d.worker_bin = getenv("AIRLOCK_DEMO_WORKER");
	if (d.worker_bin == NULL || d.worker_bin[0] == '\0')
		d.worker_bin = d.self;
	if ((rc = make_run_dir(&d, dir)) < 0) {
		fprintf(stderr, "airlock demo: cannot use %s as the run directory: %s%s\n",
			dir ? dir : "a new temporary directory", strerror(-rc),
			rc == -ENOTEMPTY ? " (give a new or empty one)" : "");
		return rc == -ENOTEMPTY ? 2 : 1;
	}
	{
		char bad[PATH_MAX];
		if (check_passable(d.dir, bad, sizeof(bad)) == -EACCES) {
			fprintf(
			    stderr,
			    "airlock demo: the sandbox runs tools as uid 65534, which cannot "
			    "pass through %s (mode o-x): chmod o+x it, or give --dir elsewhere\n",
			    bad);
			return 1;
		}
	}
	snprintf(d.server.log, sizeof(d.server.log), "%s/server.log", d.dir);
	snprintf(d.stub.log, sizeof(d.stub.log), "%s/model-stub.log", d.dir);
	snprintf(d.worker.log, sizeof(d.worker.log), "%s/worker.log", d.dir);
	snprintf(d.tickets.log, sizeof(d.tickets.log), "%s/tickets-mcp.log", d.dir);
	snprintf(d.gateway.log, sizeof(d.gateway.log), "%s/gateway.log", d.dir);

	/* No SA_RESTART: a signal should cut short whatever we wait on. */
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);

	/* rc is 0 here (the run directory was made): a failure below must not exit 0. */
	rc = -ENOMEM;
	d.seen = json_object();
	d.tools = json_object();
	if (d.seen == NULL || d.tools == NULL)
		goto fail;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto fail;
	curl_ok = 1;
	if ((d.multi = curl_multi_init()) == NULL)
		goto fail;

	out(&d, "demo", "airlock end to end; files in %s", d.dir);
	if ((rc = start_mcp(&d)) < 0 || (rc = start_model(&d)) < 0 || (rc = start_server(&d)) < 0)
		goto fail;
	if ((rc = create_resources(&d, &env_key)) < 0 || (rc = make_audit_key(&d)) < 0)
		goto fail;
	rc = start_worker(&d, env_key);
	al_free_secret_str(env_key); /* the worker has its copy; we never need it again */
	env_key = NULL;
	if (rc < 0)
		goto fail;
	/* The stream has no replay: attach first, then send, then catch up from history. */
	snprintf(d.waiting, sizeof(d.waiting), "waiting for the model");
	if ((rc = stream_attach(&d)) < 0 || (rc = send_prompt(&d)) < 0 ||
	    (rc = reconcile_history(&d)) < 0)
		goto fail;
	if ((rc = follow_session(&d)) < 0)
		goto fail;
	stream_close(&d);

	/* The turn is over: stop the worker (it flushes and closes its audit log). */
	child_stop(&d.worker);
	status = d.worker.status;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char why[64];
		describe_status(status, why, sizeof(why));
		fail_msg(&d, "the worker %s when asked to stop", why);
		show_log_tail(&d.worker, 1500);
		rc = -ECHILD;
		goto fail;
	}
	out(&d, "worker", "stopped (SIGTERM, exit 0): audit log closed");
	if ((rc = verify_audit(&d)) < 0)
		goto fail;
	stop_children(&d);
	out(&d, "done",
	    "%u tool call%s ran in the sandbox (%u answered, %u with an error) in %.1f s",
	    d.tool_calls, d.tool_calls == 1 ? "" : "s", d.results, d.tool_errors, elapsed_s(&d));
	if (d.mcp)
		out(&d, "",
		    "%u MCP call%s went through the gateway to tickets-mcp (%u with an error)",
		    d.mcp_calls, d.mcp_calls == 1 ? "" : "s", d.mcp_errors);
	out(&d, "", "audit log %s; check it again with", d.audit_path);
	out(&d, "", "  airlock audit verify %s --pubkey %s", d.audit_path, d.audit_pub);
	out(&d, "", "logs in %s; nothing is left running", d.dir);
	rc = 0;
	goto done;
fail:
	if (g_signal)
		fail_msg(&d, "interrupted; stopping everything");
	stop_children(&d);
	fprintf(stderr, "airlock demo: failed; the run's files and logs are in %s\n", d.dir);
done:
	stream_close(&d);
	if (d.multi)
		curl_multi_cleanup(d.multi);
	if (curl_ok)
		curl_global_cleanup();
	al_free_secret_str(env_key);
	al_free_secret_str(d.auth_header);
	json_decref(d.seen);
	json_decref(d.tools);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	if (rc == 0)
		return 0;
	return g_signal ? 130 : 1;
}
