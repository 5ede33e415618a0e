/*
 * fixture.h - a real control plane in-process for API unit tests.
 *
 * The server (store, bus, HTTP on 127.0.0.1:0) runs on the test's main
 * thread; the test body runs on a client thread and talks HTTP to it with
 * libcurl, so every request crosses a real socket. When the body returns the
 * server drains and is freed; leak checkers see a full teardown.
 */
#ifndef AL_TESTS_API_FIXTURE_H
#define AL_TESTS_API_FIXTURE_H

#include "api/api.h"

#include <jansson.h>

struct al_fx {
	uv_loop_t loop;
	al_api *api;
	int port;
	char admin_key[128];
	char dir[512];
	uv_async_t wake_async; /* client thread -> loop: al_bus_wake_work(wake_env) */
	char wake_env[64];
	uv_async_t done_async;
	void (*body)(struct al_fx *fx);
};

/* Starts the server in a fresh data dir, runs body on a client thread, tears down. */
void al_fx_run(void (*body)(struct al_fx *fx));

/*
 * One HTTP request. auth: "admin" for the admin key, NULL for none, or a
 * full header line ("Authorization: Bearer ..."). The beta header is sent
 * unless nobeta. Returns the status; *out (may be NULL) gets the parsed
 * JSON body (or NULL when it is not JSON).
 */
long al_fx_req(struct al_fx *fx, const char *method, const char *path, const char *auth,
	       const char *body, json_t **out);
long al_fx_req_nobeta(struct al_fx *fx, const char *method, const char *path, const char *auth,
		      const char *body, json_t **out);
/* Creates an agent (with the built-in toolset) and an environment; ids into the buffers. */
void al_fx_setup(struct al_fx *fx, char agent[64], char env[64]);
/* Creates a session. */
void al_fx_session(struct al_fx *fx, const char *agent, const char *env, char session[64]);
/* Enqueues a work item (store thread, like the agent loop's tx hook) and wakes polls. */
void al_fx_enqueue(struct al_fx *fx, const char *env, const char *session, char work[64]);

#endif
