/*
 * Unit tests for src/worker/config.c: defaults, the YAML loader (every
 * option, the error messages with key and line, shapes, ranges), the
 * environment key's custody (never from the file inline, wiped and unset from
 * the environment, a 0600 key file, systemd's credentials directory),
 * precedence file < environment < flags, validation, allocation failures.
 */
#include "core/alloc.h"
#include "unit/unit.h"
#include "worker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[512];

static int load(struct al_worker_config *c, const char *yaml)
{
	err[0] = '\0';
	return al_worker_config_load_yaml(c, yaml, strlen(yaml), "w.yaml", err, sizeof(err));
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	AL_ASSERT(fd >= 0);
	AL_ASSERT_INT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
	AL_ASSERT_INT_EQ(fchmod(fd, mode), 0);
	close(fd);
}

static const char *tmp(const char *name)
{
	static char p[4][512];
	static int i;
	char *s = p[i++ % 4];
	snprintf(s, 512, "%s/%s", al_test_tmpdir(), name);
	return s;
}

static void assert_err_has(const char *needle)
{
	if (strstr(err, needle) == NULL)
		al_test_fail(__FILE__, __LINE__, "error \"%s\" lacks \"%s\"", err, needle);
}

AL_TEST(worker_config_defaults)
{
	struct al_worker_config c;

	al_worker_config_init(&c);
	AL_ASSERT_NULL(c.base_url);
	AL_ASSERT_INT_EQ(c.max_idle_s, 60);
	AL_ASSERT_INT_EQ(c.max_sessions, 4);
	AL_ASSERT_INT_EQ(c.block_ms, 999);
	AL_ASSERT_INT_EQ(c.heartbeat_ttl_s, 90);
	AL_ASSERT_INT_EQ(c.timeout_ms, 120000);
	AL_ASSERT(c.backend == &al_sandbox_native_ops);
	AL_ASSERT_INT_EQ(c.log_format, AL_WORKER_LOG_TEXT);
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_yaml_every_option)
{
	struct al_worker_config c;

	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(load(&c, "# worker\n"
				  "base_url: https://cp.example:8443/\n"
				  "environment_id: env_123\n"
				  "worker_id: host-a\n"
				  "workdir: /srv/work\n"
				  "state_dir: /var/lib/airlock\n"
				  "audit: /var/log/airlock/audit.log\n"
				  "audit_key: /etc/airlock/audit.key\n"
				  "ca_file: /etc/ssl/cp.pem\n"
				  "on_work: /usr/local/bin/start-vm\n"
				  "max_idle: 30\n"
				  "max_sessions: 16\n"
				  "block_ms: 500\n"
				  "reclaim_older_than_ms: 600000\n"
				  "heartbeat_ttl: 60\n"
				  "shutdown_grace: 5\n"
				  "log_format: json\n"
				  "sandbox:\n"
				  "  backend: bwrap\n"
				  "  allow_hosts: [pypi.org, \"*.github.com:443\"]\n"
				  "  ro_paths:\n"
				  "    - /opt/tools\n"
				  "    - /usr/share/dict\n"
				  "  timeout: 300\n"
				  "  memory_mb: 2048\n"
				  "  pids: 512\n"
				  "  cpu_pct: 150\n"
				  "  tmp_mb: 64\n"
				  "  allow_degraded: yes\n"),
			 0);
	AL_ASSERT_STR_EQ(c.base_url, "https://cp.example:8443/");
	AL_ASSERT_STR_EQ(c.environment_id, "env_123");
	AL_ASSERT_STR_EQ(c.worker_id, "host-a");
	AL_ASSERT_STR_EQ(c.workdir, "/srv/work");
	AL_ASSERT_STR_EQ(c.state_dir, "/var/lib/airlock");
	AL_ASSERT_STR_EQ(c.audit_path, "/var/log/airlock/audit.log");
	AL_ASSERT_STR_EQ(c.audit_key, "/etc/airlock/audit.key");
	AL_ASSERT_STR_EQ(c.ca_file, "/etc/ssl/cp.pem");
	AL_ASSERT_STR_EQ(c.on_work, "/usr/local/bin/start-vm");
	AL_ASSERT_INT_EQ(c.max_idle_s, 30);
	AL_ASSERT_INT_EQ(c.max_sessions, 16);
	AL_ASSERT_INT_EQ(c.block_ms, 500);
	AL_ASSERT_INT_EQ(c.reclaim_older_than_ms, 600000);
	AL_ASSERT_INT_EQ(c.heartbeat_ttl_s, 60);
	AL_ASSERT_INT_EQ(c.shutdown_grace_s, 5);
	AL_ASSERT_INT_EQ(c.log_format, AL_WORKER_LOG_JSON);
	AL_ASSERT(c.backend == &al_sandbox_bwrap_ops);
	AL_ASSERT_NOT_NULL(c.allow_hosts);
	AL_ASSERT_STR_EQ(c.allow_hosts[0], "pypi.org");
	AL_ASSERT_STR_EQ(c.allow_hosts[1], "*.github.com:443");
	AL_ASSERT_NULL(c.allow_hosts[2]);
	AL_ASSERT_STR_EQ(c.ro_paths[0], "/opt/tools");
	AL_ASSERT_STR_EQ(c.ro_paths[1], "/usr/share/dict");
	AL_ASSERT_NULL(c.ro_paths[2]);
	AL_ASSERT_INT_EQ(c.timeout_ms, 300000);
	AL_ASSERT_INT_EQ(c.memory_mb, 2048);
	AL_ASSERT_INT_EQ(c.pids, 512);
	AL_ASSERT_INT_EQ(c.cpu_pct, 150);
	AL_ASSERT_INT_EQ(c.tmp_mb, 64);
	AL_ASSERT_INT_EQ(c.allow_degraded, 1);
	al_worker_config_clear(&c);
	AL_ASSERT_NULL(c.allow_hosts);
}

AL_TEST(worker_config_yaml_empty_and_comments_only)
{
	struct al_worker_config c;

	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(load(&c, ""), 0);
	AL_ASSERT_INT_EQ(load(&c, "# nothing here\n\n"), 0);
	AL_ASSERT_INT_EQ(load(&c, "---\n...\n"), 0);
	AL_ASSERT_INT_EQ(c.max_sessions, 4);
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_yaml_unknown_key_names_key_and_line)
{
	struct al_worker_config c;

	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(load(&c, "max_idle: 5\n\nmax_sesions: 3\n"), -EINVAL);
	assert_err_has("w.yaml:3:");
	assert_err_has("unknown key 'max_sesions'");
	AL_ASSERT_INT_EQ(load(&c, "sandbox:\n  memory_mb: 5\n  bogus: 1\n"), -EINVAL);
	assert_err_has("w.yaml:3:");
	assert_err_has("'bogus'");
	/* A sandbox key at the top level is pointed at its section, and vice versa. */
	AL_ASSERT_INT_EQ(load(&c, "memory_mb: 5\n"), -EINVAL);
	assert_err_has("belongs under 'sandbox:'");
	AL_ASSERT_INT_EQ(load(&c, "sandbox:\n  workdir: /x\n"), -EINVAL);
	assert_err_has("top-level");
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_yaml_numbers_range_checked)
{
	static const char *const bad[] = {
	    "max_sessions: 0\n",
	    "max_sessions: 1025\n",
	    "max_sessions: -1\n",
	    "max_sessions: 1e3\n",
	    "max_sessions: 0x10\n",
	    "max_sessions: ' 5'\n",
	    "max_sessions: 5 sessions\n",
	    "block_ms: 1000\n",
	    "max_idle: 99999999999999999999999\n",
	    "sandbox: {cpu_pct: 102401}\n",
	    "sandbox: {timeout: 86401}\n",
	    "heartbeat_ttl: 9\n",
	};
	struct al_worker_config c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		al_worker_config_init(&c);
		if (load(&c, bad[i]) != -ERANGE)
			al_test_fail(__FILE__, __LINE__, "accepted or wrong error: %s -> %s",
				     bad[i], err);
		assert_err_has("w.yaml:1:");
		assert_err_has("is not a number in");
		al_worker_config_clear(&c);
	}
	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(load(&c, "max_sessions: 1024\nsandbox: {timeout: 0, memory_mb: 0}\n"), 0);
	AL_ASSERT_INT_EQ(c.max_sessions, 1024);
	AL_ASSERT_INT_EQ(c.timeout_ms, 0);
	AL_ASSERT_INT_EQ(c.memory_mb, 0);
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_yaml_shapes)
{
	struct al_worker_config c;

	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(load(&c, "- a\n- b\n"), -EINVAL);
	assert_err_has("must be a mapping");
	AL_ASSERT_INT_EQ(load(&c, "workdir: [a, b]\n"), -EINVAL);
	assert_err_has("workdir: expected a scalar, got a list");
	AL_ASSERT_INT_EQ(load(&c, "sandbox: 5\n"), -EINVAL);
	assert_err_has("sandbox: expected a mapping");
	AL_ASSERT_INT_EQ(load(&c, "sandbox:\n  allow_hosts: [[a]]\n"), -EINVAL);
	assert_err_has("list entries must be scalars");
	AL_ASSERT_INT_EQ(load(&c, "workdir: &a /x\nstate_dir: *a\n"), -EINVAL);
	assert_err_has("w.yaml:2:");
	assert_err_has("alias");
	AL_ASSERT_INT_EQ(load(&c, "max_idle: 5\nmax_idle: 6\n"), -EINVAL);
	assert_err_has("w.yaml:2: duplicate key 'max_idle'");
	AL_ASSERT_INT_EQ(load(&c, "sandbox: {}\nsandbox: {}\n"), -EINVAL);
	assert_err_has("duplicate key 'sandbox'");
	AL_ASSERT_INT_EQ(load(&c, "max_idle: 5\n---\nmax_idle: 6\n"), -EINVAL);
	assert_err_has("one YAML document");
	AL_ASSERT_INT_EQ(load(&c, "workdir:\n"), -EINVAL);
	assert_err_has("workdir: a value is required");
	AL_ASSERT_INT_EQ(load(&c, "workdir: \"/a\\0b\"\n"), -EINVAL);
	assert_err_has("NUL");
	AL_ASSERT_INT_EQ(load(&c, "log_format: xml\n"), -EINVAL);
	assert_err_has("text or json");
	AL_ASSERT_INT_EQ(load(&c, "sandbox: {backend: docker}\n"), -EINVAL);
	assert_err_has("native or bwrap");
	AL_ASSERT_INT_EQ(load(&c, "sandbox: {allow_degraded: maybe}\n"), -EINVAL);
	AL_ASSERT_INT_EQ(load(&c, "sandbox: {ro_paths: [relative/p]}\n"), -EINVAL);
	assert_err_has("absolute");
	AL_ASSERT_INT_EQ(load(&c, "sandbox: {allow_hosts: [\"bad host\"]}\n"), -EINVAL);
	assert_err_has("allow_hosts");
	AL_ASSERT_INT_EQ(load(&c, "max_idle: \"unterminated\n"), -EINVAL);
	assert_err_has("YAML error");
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_yaml_single_scalar_list_replaces)
{
	struct al_worker_config c;

	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "allow_hosts", "a.example", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(load(&c, "sandbox: {allow_hosts: b.example}\n"), 0);
	AL_ASSERT_STR_EQ(c.allow_hosts[0], "b.example");
	AL_ASSERT_NULL(c.allow_hosts[1]);
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_key_never_inline_in_file)
{
	struct al_worker_config c;

	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(load(&c, "environment_key: sk-env-abcdef\n"), -EPERM);
	assert_err_has("ANTHROPIC_ENVIRONMENT_KEY");
	AL_ASSERT(strstr(err, "sk-env-abcdef") == NULL);
	AL_ASSERT_NULL(c.environment_key);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "environment_key", "x", err, sizeof(err)),
			 -EPERM);
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_key_file_mode_checked)
{
	struct al_worker_config c;
	char yaml[600];
	const char *kf = tmp("env.key");

	snprintf(yaml, sizeof(yaml), "environment_key_file: %s\n", kf);
	al_worker_config_init(&c);
	write_file(kf, "sk-env-secret-1\n", 0644);
	AL_ASSERT_INT_EQ(load(&c, yaml), -EPERM);
	assert_err_has("chmod 600");
	AL_ASSERT(strstr(err, "sk-env-secret-1") == NULL);
	AL_ASSERT_NULL(c.environment_key);

	write_file(kf, "sk-env-secret-1\n", 0600);
	AL_ASSERT_INT_EQ(load(&c, yaml), 0);
	AL_ASSERT_STR_EQ(c.environment_key, "sk-env-secret-1");

	write_file(kf, "two words\n", 0600);
	AL_ASSERT_INT_EQ(load(&c, yaml), -EINVAL);
	AL_ASSERT(strstr(err, "two words") == NULL);
	write_file(kf, "\n\n", 0600);
	AL_ASSERT_INT_EQ(load(&c, yaml), -EINVAL);
	snprintf(yaml, sizeof(yaml), "environment_key_file: %s\n", al_test_tmpdir());
	AL_ASSERT_INT_EQ(load(&c, yaml), -EINVAL);
	assert_err_has("not a regular file");
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_env_key_wiped_and_unset)
{
	struct al_worker_config c;
	char *orig;

	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(setenv("ANTHROPIC_ENVIRONMENT_KEY", "sk-env-from-env", 1), 0);
	AL_ASSERT_INT_EQ(setenv("ANTHROPIC_ENVIRONMENT_ID", "env_e", 1), 0);
	AL_ASSERT_INT_EQ(setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1", 1), 0);
	orig = getenv("ANTHROPIC_ENVIRONMENT_KEY");
	AL_ASSERT_INT_EQ(al_worker_config_from_env(&c, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(c.environment_key, "sk-env-from-env");
	AL_ASSERT_STR_EQ(c.environment_id, "env_e");
	AL_ASSERT_STR_EQ(c.base_url, "http://127.0.0.1:1");
	AL_ASSERT_NULL(getenv("ANTHROPIC_ENVIRONMENT_KEY"));
	/*
	 * glibc's setenv keeps the "NAME=value" block allocated after unsetenv
	 * (it may be reused), so the bytes are still readable here: wiped.
	 */
	AL_ASSERT(strstr(orig, "sk-env") == NULL);
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_credentials_directory)
{
	struct al_worker_config c;
	const char *dir = al_test_tmpdir();

	unsetenv("ANTHROPIC_ENVIRONMENT_KEY");
	write_file(tmp("environment-key"), "sk-env-cred\n", 0400);
	AL_ASSERT_INT_EQ(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(al_worker_config_from_env(&c, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(c.environment_key, "sk-env-cred");
	al_worker_config_clear(&c);
	/* The variable, when set, wins over the credential. */
	AL_ASSERT_INT_EQ(setenv("ANTHROPIC_ENVIRONMENT_KEY", "sk-env-var", 1), 0);
	AL_ASSERT_INT_EQ(al_worker_config_from_env(&c, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(c.environment_key, "sk-env-var");
	al_worker_config_clear(&c);
	unsetenv("CREDENTIALS_DIRECTORY");
}

AL_TEST(worker_config_precedence_file_env_flags)
{
	struct al_worker_config c;
	const char *cf = tmp("w.yaml");

	write_file(cf,
		   "base_url: https://file.example\nenvironment_id: env_file\nmax_idle: 7\n"
		   "sandbox:\n  allow_hosts: [a.example, b.example]\n",
		   0644);
	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(al_worker_config_load_file(&c, cf, err, sizeof(err)), 0);
	unsetenv("ANTHROPIC_BASE_URL");
	AL_ASSERT_INT_EQ(setenv("ANTHROPIC_ENVIRONMENT_ID", "env_env", 1), 0);
	AL_ASSERT_INT_EQ(al_worker_config_from_env(&c, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(c.base_url, "https://file.example");
	AL_ASSERT_STR_EQ(c.environment_id, "env_env");
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "environment_id", "env_flag", err, sizeof(err)),
			 0);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "max_idle", "9", err, sizeof(err)), 0);
	/* The CLI's first --allow-host empties the file's list. */
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "allow_hosts", NULL, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "allow_hosts", "c.example", err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(c.environment_id, "env_flag");
	AL_ASSERT_INT_EQ(c.max_idle_s, 9);
	AL_ASSERT_STR_EQ(c.allow_hosts[0], "c.example");
	AL_ASSERT_NULL(c.allow_hosts[1]);
	AL_ASSERT_INT_EQ(al_worker_config_load_file(&c, tmp("missing.yaml"), err, sizeof(err)),
			 -ENOENT);
	assert_err_has("missing.yaml");
	al_worker_config_clear(&c);
	unsetenv("ANTHROPIC_ENVIRONMENT_ID");
}

AL_TEST(worker_config_validate_completes)
{
	struct al_worker_config c;
	char wd[600];

	snprintf(wd, sizeof(wd), "%s/a/b/work", al_test_tmpdir());
	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "workdir", wd, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "environment_id", "env_1", err, sizeof(err)), 0);
	c.environment_key = al_strdup("sk-env-x");
	AL_ASSERT_INT_EQ(
	    al_worker_config_set(&c, "base_url", "http://127.0.0.1:8420//", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)), 0);
	AL_ASSERT_STR_EQ(c.base_url, "http://127.0.0.1:8420");
	AL_ASSERT_STR_EQ(c.workdir, wd);
	struct stat st;
	AL_ASSERT_INT_EQ(stat(wd, &st), 0);
	AL_ASSERT_INT_EQ(st.st_mode & 0777, 0711);
	AL_ASSERT_INT_EQ(stat(c.state_dir, &st), 0);
	AL_ASSERT_INT_EQ(st.st_mode & 0777, 0700);
	AL_ASSERT(strstr(c.state_dir, "/a/b/work/.airlock") != NULL);
	AL_ASSERT_INT_EQ(stat(c.state_dir, &st), 0);
	AL_ASSERT(strstr(c.audit_path, "/.airlock/audit.log") != NULL);
	AL_ASSERT_NOT_NULL(c.worker_id);
	AL_ASSERT(strlen(c.worker_id) > 9);
	al_worker_config_clear(&c);
}

/* A state dir that exists with a wider mode is narrowed to 0700 (journal, audit log). */
AL_TEST(worker_config_state_dir_narrowed)
{
	struct al_worker_config c;
	char wd[600], sd[640];
	struct stat st;

	snprintf(wd, sizeof(wd), "%s/w", al_test_tmpdir());
	snprintf(sd, sizeof(sd), "%s/w/state", al_test_tmpdir());
	AL_ASSERT_INT_EQ(mkdir(wd, 0711), 0);
	AL_ASSERT_INT_EQ(mkdir(sd, 0700), 0);
	AL_ASSERT_INT_EQ(chmod(sd, 0777), 0);
	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "workdir", wd, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "state_dir", sd, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_RUN, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(stat(sd, &st), 0);
	AL_ASSERT_INT_EQ(st.st_mode & 0777, 0700);
	al_worker_config_clear(&c);
}

AL_TEST(worker_config_validate_refuses)
{
	struct al_worker_config c;
	const char *wd = al_test_tmpdir();
	const char *notexec = tmp("script");

	write_file(notexec, "#!/bin/sh\n", 0600);
#define FRESH()                                                                                    \
	do {                                                                                       \
		al_worker_config_clear(&c);                                                        \
		AL_ASSERT_INT_EQ(al_worker_config_set(&c, "workdir", wd, err, sizeof(err)), 0);    \
		AL_ASSERT_INT_EQ(                                                                  \
		    al_worker_config_set(&c, "environment_id", "env_1", err, sizeof(err)), 0);     \
		c.environment_key = al_strdup("sk-env-x");                                         \
	} while (0)
	al_worker_config_init(&c);

	FRESH();
	al_worker_config_set(&c, "base_url", "ftp://x", err, sizeof(err));
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -EINVAL);
	assert_err_has("http:// or https://");
	FRESH();
	al_worker_config_set(&c, "base_url", "https://", err, sizeof(err));
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -EINVAL);
	FRESH();
	al_worker_config_set(&c, "base_url", "https://u:p@host", err, sizeof(err));
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -EINVAL);

	FRESH();
	al_free_secret_str(c.environment_key);
	c.environment_key = NULL;
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -EINVAL);
	assert_err_has("ANTHROPIC_ENVIRONMENT_KEY");
	/* `run` may serve an item with its secret alone. */
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_RUN, err, sizeof(err)), 0);

	FRESH();
	al_worker_config_set(&c, "environment_id", "env/../x", err, sizeof(err));
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -EINVAL);

	FRESH();
	al_worker_config_set(&c, "on_work", notexec, err, sizeof(err));
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -EACCES);
	chmod(notexec, 0700);
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_RUN, err, sizeof(err)),
			 -EINVAL);
	assert_err_has("applies to `airlock worker poll` only");

	/* The key goes to scripts only on request, and only where there is a script. */
	FRESH();
	AL_ASSERT_INT_EQ(c.on_work_env_key, 0);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "on_work_env_key", "true", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(c.on_work_env_key, 1);
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -EINVAL);
	assert_err_has("on_work_env_key");
	al_worker_config_set(&c, "on_work", notexec, err, sizeof(err));
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)), 0);

	FRESH();
	AL_ASSERT_INT_EQ(c.workspace_ttl_s, 0);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "workspace_ttl", "86400", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(c.workspace_ttl_s, 86400);
	AL_ASSERT(al_worker_config_set(&c, "workspace_ttl", "31536001", err, sizeof(err)) < 0);

	FRESH();
	al_worker_config_set(&c, "ca_file", tmp("nope.pem"), err, sizeof(err));
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -ENOENT);
	assert_err_has("ca_file");

	FRESH();
	al_worker_config_set(&c, "audit", tmp("no/such/dir/audit.log"), err, sizeof(err));
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -ENOENT);

	FRESH();
	al_worker_config_set(&c, "workdir", notexec, err, sizeof(err));
	AL_ASSERT(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)) < 0);
	assert_err_has("workdir");

	FRESH();
	al_worker_config_set(&c, "ro_paths", "/no/such/path/here", err, sizeof(err));
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_POLL, err, sizeof(err)),
			 -ENOENT);
	al_worker_config_clear(&c);
#undef FRESH
}

AL_TEST(worker_config_env_take_secret)
{
	char *s = NULL;

	unsetenv("ANTHROPIC_WORK_SECRET");
	AL_ASSERT_INT_EQ(al_worker_env_take_secret("ANTHROPIC_WORK_SECRET", &s), 0);
	AL_ASSERT_NULL(s);
	setenv("ANTHROPIC_WORK_SECRET", "eyJzZXNzaW9uc190b2tlbiI6InQifQ", 1);
	AL_ASSERT_INT_EQ(al_worker_env_take_secret("ANTHROPIC_WORK_SECRET", &s), 1);
	AL_ASSERT_STR_EQ(s, "eyJzZXNzaW9uc190b2tlbiI6InQifQ");
	AL_ASSERT_NULL(getenv("ANTHROPIC_WORK_SECRET"));
	al_free_secret_str(s);
}

/* Every allocation failing in turn: an error or success, never a crash or a leak (ASan). */
AL_TEST(worker_config_alloc_failures)
{
	static const char yaml[] =
	    "base_url: https://a.example\nworkdir: /w\n"
	    "sandbox: {allow_hosts: [a.example, b.example], ro_paths: [/x]}\n";
	int ok = 0;

	for (long n = 0; n < 200 && !ok; n++) {
		struct al_worker_config c;
		al_worker_config_init(&c);
		al_alloc_fail_after(n);
		int rc = load(&c, yaml);
		al_alloc_fail_after(-1);
		if (rc == 0)
			ok = 1;
		else
			AL_ASSERT_INT_EQ(rc, -ENOMEM);
		al_worker_config_clear(&c);
	}
	AL_ASSERT(ok);
}

/* The example shipped in contrib/ stays loadable as the schema changes. */
AL_TEST(worker_config_contrib_example_loads)
{
	struct al_worker_config c;
	char path[1024];
	const char *src = getenv("AIRLOCK_SRC");

	snprintf(path, sizeof(path), "%s/contrib/worker.yaml", src ? src : ".");
	al_worker_config_init(&c);
	err[0] = '\0';
	if (al_worker_config_load_file(&c, path, err, sizeof(err)) < 0)
		al_test_fail(__FILE__, __LINE__, "%s", err);
	AL_ASSERT_STR_EQ(c.workdir, "/var/lib/airlock-worker/work");
	AL_ASSERT_STR_EQ(c.allow_hosts[0], "pypi.org");
	AL_ASSERT_INT_EQ(c.memory_mb, 2048);
	AL_ASSERT_INT_EQ(c.log_format, AL_WORKER_LOG_JSON);
	AL_ASSERT_NULL(c.environment_key);
	al_worker_config_clear(&c);
}

/* With bwrap the sandbox's uid must pass through every parent of the workdir. */
AL_TEST(worker_config_bwrap_needs_traversable_workdir)
{
	struct al_worker_config c;
	char closed[600], wd[700];

	snprintf(closed, sizeof(closed), "%s/closed", al_test_tmpdir());
	snprintf(wd, sizeof(wd), "%s/work", closed);
	AL_ASSERT_INT_EQ(mkdir(closed, 0700), 0);
	AL_ASSERT_INT_EQ(chmod(al_test_tmpdir(), 0711), 0); /* mkdtemp made it 0700 */
	al_worker_config_init(&c);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "workdir", wd, err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_worker_config_set(&c, "backend", "bwrap", err, sizeof(err)), 0);
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_RUN, err, sizeof(err)),
			 -EACCES);
	assert_err_has("chmod o+x");
	AL_ASSERT_INT_EQ(chmod(closed, 0711), 0);
	AL_ASSERT_INT_EQ(al_worker_config_validate(&c, AL_WORKER_MODE_RUN, err, sizeof(err)), 0);
	al_worker_config_clear(&c);
}
