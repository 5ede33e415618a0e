/*
 * metrics.c - counters in small arrays, looked up linearly: the label sets
 * are few (routes times a fixed method list times statuses seen).
 */
#include "gateway/metrics.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <string.h>

#define MAX_SERIES 4096
#define NBUCKETS   15

static const double bucket_s[NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					  0.25,	  0.5,	 1,	 2.5,	5,    10,    30};

struct series {
	char *a, *b; /* labels */
	int status;
	uint64_t count;
	uint64_t buckets[NBUCKETS];
	uint64_t sum_us;
};

struct family {
	struct series *v;
	size_t n, cap;
};

struct al_gw_metrics {
	struct family requests; /* a=route b=method status */
	struct family latency;	/* a=route */
	struct family refusals; /* a=route b=reason */
	struct family filtered; /* a=route */
	long in_flight;
	uint64_t reload_ok, reload_failed, audit_failures;
};

static const char *const known_methods[] = {"initialize",
					    "notifications/initialized",
					    "ping",
					    "tools/list",
					    "tools/call",
					    "resources/list",
					    "resources/read",
					    "resources/templates/list",
					    "resources/subscribe",
					    "resources/unsubscribe",
					    "prompts/list",
					    "prompts/get",
					    "completion/complete",
					    "logging/setLevel",
					    "server/discover",
					    "subscriptions/listen",
					    "notifications/cancelled",
					    "notifications/progress",
					    "notifications/roots/list_changed"};

const char *al_gw_metrics_method_label(const char *method)
{
	if (method == NULL)
		return "none";
	for (size_t i = 0; i < sizeof(known_methods) / sizeof(known_methods[0]); i++)
		if (strcmp(method, known_methods[i]) == 0)
			return known_methods[i];
	return "other";
}

al_gw_metrics *al_gw_metrics_new(void)
{
	return al_calloc(1, sizeof(al_gw_metrics));
}

static void family_free(struct family *f)
{
	for (size_t i = 0; i < f->n; i++) {
		al_free(f->v[i].a);
		al_free(f->v[i].b);
	}
	al_free(f->v);
}

void al_gw_metrics_free(al_gw_metrics *m)
{
	if (m == NULL)
		return;
	family_free(&m->requests);
	family_free(&m->latency);
	family_free(&m->refusals);
	family_free(&m->filtered);
	al_free(m);
}

static int eq(const char *x, const char *y)
{
	return (x == NULL && y == NULL) || (x && y && strcmp(x, y) == 0);
}

/* The series with these labels, created on first use; NULL when full or out of memory. */
static struct series *get(struct family *f, const char *a, const char *b, int status)
{
	struct series *s;

	for (size_t i = 0; i < f->n; i++)
		if (eq(f->v[i].a, a) && eq(f->v[i].b, b) && f->v[i].status == status)
			return &f->v[i];
	if (f->n >= MAX_SERIES)
		return NULL;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct series *nv = al_realloc(f->v, cap * sizeof(*nv));
		if (nv == NULL)
			return NULL;
		f->v = nv;
		f->cap = cap;
	}
	s = &f->v[f->n];
	memset(s, 0, sizeof(*s));
	s->status = status;
	if ((a && (s->a = al_strdup(a)) == NULL) || (b && (s->b = al_strdup(b)) == NULL)) {
		al_free(s->a);
		return NULL;
	}
	f->n++;
	return s;
}

void al_gw_metrics_request(al_gw_metrics *m, const char *route, const char *method, int status)
{
	struct series *s =
	    get(&m->requests, route ? route : "", al_gw_metrics_method_label(method), status);
	if (s)
		s->count++;
}

void al_gw_metrics_latency(al_gw_metrics *m, const char *route, uint64_t us)
{
	struct series *s = get(&m->latency, route, NULL, 0);

	if (s == NULL)
		return;
	s->count++;
	s->sum_us += us;
	for (size_t i = 0; i < NBUCKETS; i++)
		if ((double)us <= bucket_s[i] * 1e6)
			s->buckets[i]++;
}

void al_gw_metrics_refusal(al_gw_metrics *m, const char *route, const char *reason)
{
	struct series *s = get(&m->refusals, route ? route : "", reason, 0);
	if (s)
		s->count++;
}

void al_gw_metrics_filtered(al_gw_metrics *m, const char *route, size_t n)
{
	struct series *s = get(&m->filtered, route, NULL, 0);
	if (s)
		s->count += n;
}

void al_gw_metrics_in_flight(al_gw_metrics *m, int delta)
{
	m->in_flight += delta;
}

void al_gw_metrics_reload(al_gw_metrics *m, int ok)
{
	if (ok)
		m->reload_ok++;
	else
		m->reload_failed++;
}

void al_gw_metrics_audit_failure(al_gw_metrics *m)
{
	m->audit_failures++;
}

/* A label value with \, " and newline escaped. */
static int label(al_buf *b, const char *name, const char *v)
{
	if (al_buf_appendf(b, "%s=\"", name) < 0)
		return -ENOMEM;
	for (const char *p = v ? v : ""; *p; p++) {
		int rc = *p == '\\'   ? al_buf_append_str(b, "\\\\")
			 : *p == '"'  ? al_buf_append_str(b, "\\\"")
			 : *p == '\n' ? al_buf_append_str(b, "\\n")
				      : al_buf_append(b, p, 1);
		if (rc < 0)
			return -ENOMEM;
	}
	return al_buf_append_str(b, "\"");
}

int al_gw_metrics_render(const al_gw_metrics *m, al_buf *b)
{
	const struct family *f;

	if (al_buf_append_str(b, "# HELP airlock_gateway_requests_total Requests answered, by "
				 "route, JSON-RPC method and HTTP status.\n"
				 "# TYPE airlock_gateway_requests_total counter\n") < 0)
		return -ENOMEM;
	f = &m->requests;
	for (size_t i = 0; i < f->n; i++)
		if (al_buf_append_str(b, "airlock_gateway_requests_total{") < 0 ||
		    label(b, "route", f->v[i].a) < 0 || al_buf_append_str(b, ",") < 0 ||
		    label(b, "method", f->v[i].b) < 0 ||
		    al_buf_appendf(b, ",status=\"%d\"} %llu\n", f->v[i].status,
				   (unsigned long long)f->v[i].count) < 0)
			return -ENOMEM;
	if (al_buf_append_str(b, "# HELP airlock_gateway_upstream_latency_seconds Time from "
				 "the request to the upstream's response head.\n"
				 "# TYPE airlock_gateway_upstream_latency_seconds histogram\n") < 0)
		return -ENOMEM;
	f = &m->latency;
	for (size_t i = 0; i < f->n; i++) {
		for (size_t k = 0; k < NBUCKETS; k++)
			if (al_buf_append_str(
				b, "airlock_gateway_upstream_latency_seconds_bucket{") < 0 ||
			    label(b, "route", f->v[i].a) < 0 ||
			    al_buf_appendf(b, ",le=\"%g\"} %llu\n", bucket_s[k],
					   (unsigned long long)f->v[i].buckets[k]) < 0)
				return -ENOMEM;
		if (al_buf_append_str(b, "airlock_gateway_upstream_latency_seconds_bucket{") < 0 ||
		    label(b, "route", f->v[i].a) < 0 ||
		    al_buf_appendf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)f->v[i].count) <
			0 ||
		    al_buf_append_str(b, "airlock_gateway_upstream_latency_seconds_sum{") < 0 ||
		    label(b, "route", f->v[i].a) < 0 ||
		    al_buf_appendf(b, "} %.6f\n", (double)f->v[i].sum_us / 1e6) < 0 ||
		    al_buf_append_str(b, "airlock_gateway_upstream_latency_seconds_count{") < 0 ||
		    label(b, "route", f->v[i].a) < 0 ||
		    al_buf_appendf(b, "} %llu\n", (unsigned long long)f->v[i].count) < 0)
			return -ENOMEM;
	}
	if (al_buf_appendf(b,
			   "# HELP airlock_gateway_in_flight Requests being answered.\n"
			   "# TYPE airlock_gateway_in_flight gauge\nairlock_gateway_in_flight %ld\n"
			   "# HELP airlock_gateway_refusals_total Requests the gateway refused "
			   "itself, by reason.\n# TYPE airlock_gateway_refusals_total counter\n",
			   m->in_flight) < 0)
		return -ENOMEM;
	f = &m->refusals;
	for (size_t i = 0; i < f->n; i++)
		if (al_buf_append_str(b, "airlock_gateway_refusals_total{") < 0 ||
		    label(b, "route", f->v[i].a) < 0 || al_buf_append_str(b, ",") < 0 ||
		    label(b, "reason", f->v[i].b) < 0 ||
		    al_buf_appendf(b, "} %llu\n", (unsigned long long)f->v[i].count) < 0)
			return -ENOMEM;
	if (al_buf_append_str(b, "# HELP airlock_gateway_tools_filtered_total Tools removed from "
				 "tools/list results.\n"
				 "# TYPE airlock_gateway_tools_filtered_total counter\n") < 0)
		return -ENOMEM;
	f = &m->filtered;
	for (size_t i = 0; i < f->n; i++)
		if (al_buf_append_str(b, "airlock_gateway_tools_filtered_total{") < 0 ||
		    label(b, "route", f->v[i].a) < 0 ||
		    al_buf_appendf(b, "} %llu\n", (unsigned long long)f->v[i].count) < 0)
			return -ENOMEM;
	if (al_buf_appendf(b,
			   "# HELP airlock_gateway_reloads_total Configuration reloads (SIGHUP).\n"
			   "# TYPE airlock_gateway_reloads_total counter\n"
			   "airlock_gateway_reloads_total{result=\"ok\"} %llu\n"
			   "airlock_gateway_reloads_total{result=\"failed\"} %llu\n"
			   "# HELP airlock_gateway_audit_failures_total Audit records that could "
			   "not be written (the request was refused).\n"
			   "# TYPE airlock_gateway_audit_failures_total counter\n"
			   "airlock_gateway_audit_failures_total %llu\n",
			   (unsigned long long)m->reload_ok, (unsigned long long)m->reload_failed,
			   (unsigned long long)m->audit_failures) < 0)
		return -ENOMEM;
	return 0;
}
