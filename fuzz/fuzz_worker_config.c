/*
 * fuzz_worker_config.c - libFuzzer target for the worker's YAML config loader.
 *
 * The input is a config file. Invariants: nothing crashes or leaks; a
 * failure leaves a NUL-terminated message naming the file; a success leaves
 * every number within its documented range and the lists NULL-terminated
 * with absolute ro_paths; the environment key never comes from the text.
 */
#include "core/alloc.h"
#include "worker/worker.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct al_worker_config c;
	char err[512];
	int rc;

	al_worker_config_init(&c);
	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	rc =
	    al_worker_config_load_yaml(&c, (const char *)data, size, "fuzz.yaml", err, sizeof(err));
	if (rc < 0) {
		if (strncmp(err, "fuzz.yaml:", 10) != 0 && strcmp(err, "out of memory") != 0 &&
		    strncmp(err, "environment_key_file", 20) != 0)
			abort();
	} else {
		if (c.max_sessions < 1 || c.max_sessions > 1024 || c.block_ms < 1 ||
		    c.block_ms > 999 || c.max_idle_s < 1 || c.heartbeat_ttl_s < 10 ||
		    c.timeout_ms > 86400000u || c.cpu_pct > AL_SANDBOX_MAX_CPU_PCT ||
		    c.tmp_mb < 1 || c.backend == NULL)
			abort();
		for (size_t i = 0; c.ro_paths && c.ro_paths[i]; i++)
			if (c.ro_paths[i][0] != '/')
				abort();
		for (size_t i = 0; c.allow_hosts && c.allow_hosts[i]; i++)
			if (c.allow_hosts[i][0] == '\0')
				abort();
	}
	al_worker_config_clear(&c);
	return 0;
}
