/*
 * fuzz_gateway_config.c - libFuzzer target for the gateway's YAML config
 * loader (src/gateway/config.c, src/gateway/ynode.c).
 *
 * The input is a config file. Invariants: nothing crashes or leaks; a
 * failure leaves a message naming the file (or "out of memory") and a
 * cleared config; a success leaves at least one route, each with a
 * lower-case host and either an http(s) upstream with a port in 1..65535 or
 * a stdio argv, an https upstream only with a trust store, and
 * allowed_ips non-empty unless validation is disabled.
 */
#include "gateway/config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct al_gw_config c;
	char err[512];
	int rc;

	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	rc = al_gw_config_load_yaml(&c, (const char *)data, size, "fuzz.yaml", err, sizeof(err));
	if (rc < 0) {
		if (strncmp(err, "fuzz.yaml:", 10) != 0 && strcmp(err, "out of memory") != 0)
			abort();
		if (c.nroutes != 0 || c.routes != NULL)
			abort();
		return 0;
	}
	if (c.nroutes == 0 || c.listen_host == NULL)
		abort();
	if (!c.disable_ip_validation && c.nallowed_ips == 0)
		abort();
	for (size_t i = 0; i < c.nroutes; i++) {
		const struct al_gw_route *r = &c.routes[i];
		for (const char *p = r->host; *p; p++)
			if (isupper((unsigned char)*p))
				abort();
		if (r->kind == AL_GW_UP_HTTP) {
			if (r->uport < 1 || r->uport > 65535 || r->url == NULL || r->uhost == NULL)
				abort();
			if (r->https && c.upstream_ca_file == NULL && !c.include_system_cas)
				abort();
		} else if (r->kind == AL_GW_UP_STDIO) {
			if (r->argv == NULL || r->argv[0] == NULL || r->pool_size < 1)
				abort();
		} else {
			abort();
		}
	}
	al_gw_config_clear(&c);
	return 0;
}
