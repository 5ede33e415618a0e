/*
 * fuzz_request_body.c - libFuzzer target for the request-body decoders.
 *
 * The first byte picks a decoder (agent create/update, environment
 * create/update, session create, events send, work stop, work metadata);
 * the rest is the body as a client would send it. Every path must return
 * 0 or -EINVAL with a NUL-terminated message, never crash or leak.
 */
#include "api/decode.h"
#include "api/internal.h"
#include "core/alloc.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	char err[256];
	json_t *in = NULL, *out = NULL, *cur = NULL, *ev;
	size_t i;
	unsigned which;

	if (!init) {
		al_alloc_init();
		init = 1;
	}
	if (size < 1)
		return 0;
	which = data[0] % 8;
	err[0] = '\0';
	if (al_decode_body((const char *)data + 1, size - 1, which == 6, &in, err, sizeof(err)) <
	    0) {
		if (memchr(err, '\0', sizeof(err)) == NULL)
			__builtin_trap();
		return 0;
	}
	switch (which) {
	case 0:
		al_agent_build(in, 0, NULL, &out, err, sizeof(err));
		break;
	case 1:
		cur = json_loads("{\"type\":\"agent\",\"name\":\"n\",\"model\":{\"id\":\"m\"},"
				 "\"tools\":[],\"mcp_servers\":[],\"metadata\":{\"a\":\"b\"},"
				 "\"version\":1}",
				 0, NULL);
		al_agent_build(in, 1, cur, &out, err, sizeof(err));
		break;
	case 2:
		al_environment_build(in, 0, NULL, &out, err, sizeof(err));
		break;
	case 3:
		cur = json_loads("{\"type\":\"environment\",\"name\":\"e\",\"config\":{\"type\":"
				 "\"self_hosted\"},\"metadata\":{}}",
				 0, NULL);
		al_environment_build(in, 1, cur, &out, err, sizeof(err));
		break;
	case 4:
		al_session_validate_create(in, err, sizeof(err));
		break;
	case 5:
		json_array_foreach(json_object_get(in, "events"), i, ev)
		{
			if (al_event_validate(ev, i, err, sizeof(err)) < 0)
				break;
		}
		break;
	case 6:
		al_work_validate_stop(in, err, sizeof(err));
		break;
	default:
		al_work_validate_update(in, err, sizeof(err));
		break;
	}
	json_decref(out);
	json_decref(cur);
	json_decref(in);
	return 0;
}
