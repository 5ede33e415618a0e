/*
 * api.h - the control plane: shared context, routing, auth and errors.
 *
 * One struct al_api per `airlock server` process. Handlers live in one file
 * per resource (agents.c, environments.c, sessions.c, events.c, work.c,
 * keys.c) and are listed in the route table (routes.c). Everything runs on
 * the loop thread; durable work goes through the store executor or the bus.
 */
#ifndef AL_API_API_H
#define AL_API_API_H

#include "api/bus.h"
#include "http/server.h"
#include "store/store.h"

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

struct al_agent;       /* agent/loop.h */
struct al_provider;    /* agent/provider.h */
struct al_http_client; /* net/http_client.h */

/*
 * Added: operator settings for the MCP servers agents name
 * (docs/CONTROL-PLANE-MCP.md). `key` matches an agent's mcp_servers[].name
 * or the host of its url (name first). ca_file: the only CAs trusted for
 * that server's TLS (never the system's as well); token_env: the name of an
 * environment variable holding a bearer token sent to it (the token itself
 * never appears in argv, logs or events). Strings borrowed for the api's life.
 */
struct al_mcp_server_cfg {
	const char *key;
	const char *ca_file;   /* NULL: the system CAs */
	const char *token_env; /* NULL: no Authorization header */
};

struct al_api_config {
	const char *data_dir;
	const char *listen_host;
	int listen_port;
	const char *tls_cert_file; /* NULL: plain HTTP */
	const char *tls_key_file;
	const char *model_url;	       /* base URL of the Messages API */
	size_t max_body_bytes;	       /* 0: default */
	size_t max_connections;	       /* 0: the HTTP server's default */
	int64_t context_budget_tokens; /* 0: derived from the model's window */
	size_t agent_cache_bytes;      /* added: agent/loop.h event caches; 0: 64 MiB */
	const struct al_mcp_server_cfg *mcp_servers; /* added: see above; borrowed */
	size_t n_mcp_servers;
};

typedef struct al_api {
	uv_loop_t *loop;
	struct al_api_config cfg;
	al_http_server *http;
	al_store *store;
	al_bus *bus;
	struct al_http_client *client;
	struct al_provider *provider;
	struct al_agent *agent;
	int draining;
} al_api;

/* Who is calling, established by the router from the request's credential. */
enum al_auth_kind {
	AL_AUTH_NONE = 0,
	AL_AUTH_ADMIN = 1 << 0,	      /* x-api-key: an admin API key */
	AL_AUTH_ENVIRONMENT = 1 << 1, /* Authorization: Bearer <environment key> */
	AL_AUTH_SESSION = 1 << 2,     /* Authorization: Bearer <sessions token> */
};

struct al_auth {
	enum al_auth_kind kind;
	char key_id[AL_ID_MAX];
	char environment_id[AL_ID_MAX]; /* scope of an environment key or sessions token */
	char session_id[AL_ID_MAX];	/* scope of a sessions token */
	char work_id[AL_ID_MAX];	/* the work item a sessions token was minted for */
};

#define AL_API_MAX_PARAMS 4

/*
 * The context a handler gets. Valid only during the handler call: an
 * asynchronous handler copies what it needs (ids, auth) into its own state.
 */
struct al_api_ctx {
	al_api *api;
	al_http_req *req;
	const char *params[AL_API_MAX_PARAMS]; /* path parameters, in order */
	struct al_auth auth;
};

typedef void (*al_api_handler)(struct al_api_ctx *ctx);

struct al_api_route {
	const char *method;
	const char *pattern; /* "/v1/sessions/{}/events": {} matches one segment */
	al_api_handler fn;
	unsigned auth_mask; /* al_auth_kind values allowed to call it */
};

/* Starts the control plane: store, bus, HTTP listener, provider, agent loop. */
int al_api_start(uv_loop_t *loop, const struct al_api_config *cfg, al_api **out, char *err,
		 size_t errlen);
/* SIGTERM: stop accepting, finish in-flight requests, close streams, then cb. */
void al_api_drain(al_api *api, void (*cb)(al_api *api, void *ud), void *ud);
void al_api_free(al_api *api);

/*
 * Sends the documented error object
 *   {"type":"error","error":{"type":TYPE,"message":MSG}}
 * with status. TYPE is derived from the status when NULL. The message must
 * never contain a credential.
 */
void al_api_error(al_http_req *req, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As al_api_error with error.details set (takes ownership of details). */
void al_api_error_details(al_http_req *req, int status, const char *type, json_t *details,
			  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Maps a negative errno from the store to an HTTP error response. */
void al_api_error_errno(al_http_req *req, int rc, const char *what);

#endif
