/*
 * test_poller.c - the pure parts of the worker runtime: retry waits (as the
 * SDK computes them) and the environment of an --on-work script.
 */
#include "unit/unit.h"

#include "core/alloc.h"
#include "worker/backoff.h"
#include "worker/poller.h"

#include <string.h>

AL_TEST(worker_backoff_doubles_to_the_cap)
{
	AL_ASSERT_INT_EQ(al_worker_backoff_ms(0, 1000, 60000), 1000);
	AL_ASSERT_INT_EQ(al_worker_backoff_ms(1, 1000, 60000), 2000);
	AL_ASSERT_INT_EQ(al_worker_backoff_ms(5, 1000, 60000), 32000);
	AL_ASSERT_INT_EQ(al_worker_backoff_ms(6, 1000, 60000), 60000);
	AL_ASSERT_INT_EQ(al_worker_backoff_ms(200, 1000, 60000), 60000);
	AL_ASSERT_INT_EQ(al_worker_backoff_ms(3, 500, 10000), 4000);
}

AL_TEST(worker_jitter_stays_in_range)
{
	for (int i = 0; i < 1000; i++) {
		uint64_t j = al_worker_apply_jitter(1000);
		uint64_t u = al_worker_jitter(1000, 3000);

		/* The SDK's applyJitter only shortens, by up to a quarter. */
		AL_ASSERT(j > 750 && j <= 1000);
		AL_ASSERT(u >= 1000 && u < 3000);
	}
	AL_ASSERT_INT_EQ(al_worker_jitter(5, 5), 5);
}

static const char *find(char **env, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; env[i]; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

AL_TEST(worker_script_env_has_the_item_and_no_inherited_anthropic)
{
	char *base[] = {"PATH=/usr/bin", "ANTHROPIC_API_KEY=sk-ant-x", "ANTHROPIC_WORK_ID=stale",
			"HOME=/root", NULL};
	char **env = al_worker_script_env(base, "work_1", "env_1", "sesn_1", "c2VjcmV0", "ekey",
					  "http://127.0.0.1:1");
	size_t n = 0;

	AL_ASSERT(env != NULL);
	while (env[n])
		n++;
	AL_ASSERT_INT_EQ(n, 8);
	AL_ASSERT_STR_EQ(find(env, "PATH"), "/usr/bin");
	AL_ASSERT_STR_EQ(find(env, "HOME"), "/root");
	AL_ASSERT(find(env, "ANTHROPIC_API_KEY") == NULL);
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_WORK_ID"), "work_1");
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_ENVIRONMENT_ID"), "env_1");
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_SESSION_ID"), "sesn_1");
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_WORK_SECRET"), "c2VjcmV0");
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_ENVIRONMENT_KEY"), "ekey");
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_BASE_URL"), "http://127.0.0.1:1");
	al_worker_script_env_free(env);

	/* Absent values are omitted, not set empty. */
	env = al_worker_script_env(NULL, "work_1", "env_1", "sesn_1", NULL, NULL, NULL);
	AL_ASSERT(env != NULL);
	AL_ASSERT(find(env, "ANTHROPIC_WORK_SECRET") == NULL);
	AL_ASSERT(find(env, "ANTHROPIC_ENVIRONMENT_KEY") == NULL);
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_WORK_ID"), "work_1");
	al_worker_script_env_free(env);
}

AL_TEST(worker_script_env_unwinds_on_allocation_failure)
{
	char *base[] = {"PATH=/usr/bin", "HOME=/root", NULL};

	for (long k = 0; k < 12; k++) {
		char **env;

		al_alloc_fail_after(k);
		env = al_worker_script_env(base, "w", "e", "s", "x", "k", "u");
		al_alloc_fail_after(-1);
		if (env != NULL) {
			AL_ASSERT(k >= 9); /* the array + 2 copies + 6 variables */
			al_worker_script_env_free(env);
		}
	}
}

/* The environment key reaches an --on-work script only when asked for. */
AL_TEST(worker_item_script_env_has_the_key_only_on_request)
{
	struct al_worker_config cfg;
	json_t *work =
	    json_pack("{s:s, s:s, s:{s:s, s:s}, s:s}", "id", "work_1", "environment_id", "env_1",
		      "data", "type", "session", "id", "sesn_1", "secret", "c2VjcmV0");
	char *base[] = {"PATH=/usr/bin", "ANTHROPIC_ENVIRONMENT_KEY=inherited", NULL};
	char key[] = "sk-ant-envk-x", url[] = "http://127.0.0.1:1";
	char **env;

	AL_ASSERT(work != NULL);
	al_worker_config_init(&cfg);
	cfg.environment_key = key;
	cfg.base_url = url;
	env = al_worker_item_script_env(base, &cfg, work);
	AL_ASSERT(env != NULL);
	AL_ASSERT(find(env, "ANTHROPIC_ENVIRONMENT_KEY") == NULL);
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_WORK_SECRET"), "c2VjcmV0");
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_WORK_ID"), "work_1");
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_SESSION_ID"), "sesn_1");
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_ENVIRONMENT_ID"), "env_1");
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_BASE_URL"), "http://127.0.0.1:1");
	al_worker_script_env_free(env);

	cfg.on_work_env_key = 1;
	env = al_worker_item_script_env(base, &cfg, work);
	AL_ASSERT(env != NULL);
	AL_ASSERT_STR_EQ(find(env, "ANTHROPIC_ENVIRONMENT_KEY"), "sk-ant-envk-x");
	al_worker_script_env_free(env);
	json_decref(work);
}
