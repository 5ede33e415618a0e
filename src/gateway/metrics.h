/*
 * metrics.h - the gateway's counters, rendered in the Prometheus text
 * format (version 0.0.4) by the admin listener's /metrics.
 *
 *   airlock_gateway_requests_total{route,method,status}   counter
 *   airlock_gateway_upstream_latency_seconds{route}       histogram (head received)
 *   airlock_gateway_in_flight                             gauge
 *   airlock_gateway_refusals_total{route,reason}          counter
 *   airlock_gateway_tools_filtered_total{route}           counter (dropped from tools/list)
 *   airlock_gateway_reloads_total{result}                 counter
 *   airlock_gateway_audit_failures_total                  counter
 *
 * Label values come from the config (route) or from fixed sets: a method
 * the gateway does not know is counted as "other", so a client cannot grow
 * the series without bound. Runs on the loop thread (no locking).
 */
#ifndef AL_GATEWAY_METRICS_H
#define AL_GATEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct al_buf;
typedef struct al_gw_metrics al_gw_metrics;

al_gw_metrics *al_gw_metrics_new(void);
void al_gw_metrics_free(al_gw_metrics *m);

/* A finished request. route NULL: none matched; method NULL: not JSON-RPC. */
void al_gw_metrics_request(al_gw_metrics *m, const char *route, const char *method, int status);
void al_gw_metrics_latency(al_gw_metrics *m, const char *route, uint64_t us);
/* reason: "tool_denied", "ip_denied", "header_mismatch", "origin", "no_route", ... */
void al_gw_metrics_refusal(al_gw_metrics *m, const char *route, const char *reason);
void al_gw_metrics_filtered(al_gw_metrics *m, const char *route, size_t n);
void al_gw_metrics_in_flight(al_gw_metrics *m, int delta);
void al_gw_metrics_reload(al_gw_metrics *m, int ok);
void al_gw_metrics_audit_failure(al_gw_metrics *m);
/* The method label for a JSON-RPC method: itself when known, else "other". */
const char *al_gw_metrics_method_label(const char *method);

/* Appends the exposition text. 0 or -ENOMEM. */
int al_gw_metrics_render(const al_gw_metrics *m, struct al_buf *out);

#endif
