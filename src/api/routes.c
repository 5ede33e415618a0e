/*
 * routes.c - the control plane's route table.
 *
 * Paths and methods are those the official SDK (@anthropic-ai/sdk 1.14.0)
 * calls. Who may call what:
 *   admin API key (x-api-key, or Bearer as the SDK sends it): everything;
 *   environment key (Bearer): its own environment's work queue, reading its
 *     environment, and the per-session calls of sessions in its environment
 *     (the SDK worker falls back to it when a work item carries no secret);
 *   sessions token (Bearer): its own session (read, events) and its own work
 *     item's heartbeat and stop, which is what the SDK worker uses it for.
 * The scope rule itself is in router.c (al_api_auth_allowed) and, for
 * environment keys on session routes, in the session handlers.
 */
#include "api/internal.h"

#define A AL_AUTH_ADMIN
#define E AL_AUTH_ENVIRONMENT
#define S AL_AUTH_SESSION

static const struct al_api_route routes[] = {
    {"POST", "/v1/agents", al_api_agents_create, A},
    {"GET", "/v1/agents", al_api_agents_list, A},
    {"GET", "/v1/agents/{}", al_api_agents_get, A},
    {"POST", "/v1/agents/{}", al_api_agents_update, A},
    {"POST", "/v1/agents/{}/archive", al_api_agents_archive, A},

    {"POST", "/v1/environments", al_api_environments_create, A},
    {"GET", "/v1/environments", al_api_environments_list, A},
    {"GET", "/v1/environments/{}", al_api_environments_get, A | E},
    {"POST", "/v1/environments/{}", al_api_environments_update, A},
    {"DELETE", "/v1/environments/{}", al_api_environments_delete, A},
    {"POST", "/v1/environments/{}/archive", al_api_environments_archive, A},
    {"POST", "/v1/environments/{}/keys", al_api_keys_create, A},
    {"DELETE", "/v1/environments/{}/keys/{}", al_api_keys_revoke, A},

    {"GET", "/v1/environments/{}/work/poll", al_api_work_poll, A | E},
    {"GET", "/v1/environments/{}/work/stats", al_api_work_stats, A | E},
    {"GET", "/v1/environments/{}/work", al_api_work_list, A | E},
    {"GET", "/v1/environments/{}/work/{}", al_api_work_get, A | E},
    {"POST", "/v1/environments/{}/work/{}", al_api_work_update, A | E},
    {"POST", "/v1/environments/{}/work/{}/ack", al_api_work_ack, A | E},
    {"POST", "/v1/environments/{}/work/{}/heartbeat", al_api_work_heartbeat, A | E | S},
    {"POST", "/v1/environments/{}/work/{}/stop", al_api_work_stop, A | E | S},

    {"POST", "/v1/sessions", al_api_sessions_create, A},
    {"GET", "/v1/sessions", al_api_sessions_list, A},
    {"GET", "/v1/sessions/{}", al_api_sessions_get, A | E | S},
    {"POST", "/v1/sessions/{}", al_api_sessions_update, A},
    {"DELETE", "/v1/sessions/{}", al_api_sessions_delete, A},
    {"POST", "/v1/sessions/{}/archive", al_api_sessions_archive, A},
    {"GET", "/v1/sessions/{}/events", al_api_events_list, A | E | S},
    {"POST", "/v1/sessions/{}/events", al_api_events_send, A | E | S},
    {"GET", "/v1/sessions/{}/events/stream", al_api_events_stream, A | E | S},
};

const struct al_api_route *al_api_routes(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}
