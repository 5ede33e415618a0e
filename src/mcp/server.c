/*
 * server.c - the MCP server registry and dispatcher (mcp/server.h).
 *
 * First cut: the registry and the call object; the dispatcher answers
 * -32601 to everything until the eras are filled in.
 */
#include "mcp/server.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct al_mcp_server {
	char *name;
	char *version;
};

struct al_mcp_call {
	al_mcp_server *s;
	const struct al_mcp_sink *sink;
	void *t;
	json_t *params;
	char *method;
	al_mcp_id id;
	char *id_str;
	int cancelled;
	void (*on_cancel)(al_mcp_call *c, void *ud);
	void *on_cancel_ud;
};

al_mcp_server *al_mcp_server_new(const struct al_mcp_server_opts *opts)
{
	al_mcp_server *s = NULL;

	if (!opts || !opts->name || !opts->version)
		return NULL;
	s = al_calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->name = al_strdup(opts->name);
	s->version = al_strdup(opts->version);
	if (!s->name || !s->version) {
		al_mcp_server_free(s);
		return NULL;
	}
	return s;
}

void al_mcp_server_free(al_mcp_server *s)
{
	if (!s)
		return;
	al_free(s->name);
	al_free(s->version);
	al_free(s);
}

int al_mcp_server_add_tool(al_mcp_server *s, const struct al_mcp_tool *t)
{
	return (s && t && t->name && t->input_schema && t->fn) ? 0 : -EINVAL;
}

int al_mcp_server_add_resource(al_mcp_server *s, const struct al_mcp_resource *r)
{
	return (s && r && r->uri && r->fn) ? 0 : -EINVAL;
}

int al_mcp_server_add_template(al_mcp_server *s, const struct al_mcp_resource_template *t)
{
	return (s && t && t->uri_template && t->fn) ? 0 : -EINVAL;
}

int al_mcp_server_add_prompt(al_mcp_server *s, const struct al_mcp_prompt *p)
{
	return (s && p && p->name && p->fn) ? 0 : -EINVAL;
}

int al_mcp_server_remove_tool(al_mcp_server *s, const char *name)
{
	(void)s;
	(void)name;
	return -ENOENT;
}

int al_mcp_server_remove_prompt(al_mcp_server *s, const char *name)
{
	(void)s;
	(void)name;
	return -ENOENT;
}

void al_mcp_server_resource_updated(al_mcp_server *s, const char *uri)
{
	(void)s;
	(void)uri;
}

void al_mcp_server_list_changed(al_mcp_server *s, const char *kind)
{
	(void)s;
	(void)kind;
}

int al_mcp_server_handle(al_mcp_server *s, const struct al_mcp_inbound *in,
			 const struct al_mcp_sink *sink, void *t, al_mcp_call **out)
{
	al_mcp_msg m = {0};
	al_mcp_error err = {0};
	json_t *resp = NULL;
	int rc = 0;

	(void)s;
	if (out)
		*out = NULL;
	if (al_mcp_msg_parse(in->body, in->len, &m, &err) == 0) {
		if (m.kind != AL_MCP_REQUEST) {
			sink->finish(t, NULL, 202, NULL);
			goto done;
		}
		al_mcp_error_set(&err, AL_MCP_METHOD_NOT_FOUND, 404, NULL, "Method not found: %s",
				 m.method);
	}
	resp = al_mcp_error_response_new(&m.id, &err);
	if (!resp) {
		rc = -ENOMEM;
		goto done;
	}
	sink->finish(t, resp, err.http_status, NULL);
done:
	al_mcp_error_clear(&err);
	al_mcp_msg_free(&m);
	return rc;
}

void al_mcp_call_cancel(al_mcp_call *c)
{
	(void)c;
}

int al_mcp_server_end_session(al_mcp_server *s, const char *session_id)
{
	(void)s;
	(void)session_id;
	return -ENOENT;
}

int al_mcp_server_open_stream(al_mcp_server *s, const char *session_id,
			      const struct al_mcp_sink *sink, void *t)
{
	(void)s;
	(void)session_id;
	(void)sink;
	(void)t;
	return -ENOENT;
}

void al_mcp_server_close_stream(al_mcp_server *s, const char *session_id, void *t)
{
	(void)s;
	(void)session_id;
	(void)t;
}

int al_mcp_server_has_session(al_mcp_server *s, const char *session_id)
{
	(void)s;
	(void)session_id;
	return 0;
}

json_t *al_mcp_call_params(const al_mcp_call *c)
{
	return c->params;
}

const char *al_mcp_call_method(const al_mcp_call *c)
{
	return c->method;
}

int al_mcp_call_legacy(const al_mcp_call *c)
{
	(void)c;
	return 0;
}

const char *al_mcp_call_version(const al_mcp_call *c)
{
	(void)c;
	return AL_MCP_VERSION_2026;
}

json_t *al_mcp_call_client_capabilities(const al_mcp_call *c)
{
	(void)c;
	return NULL;
}

const char *al_mcp_call_principal(const al_mcp_call *c)
{
	(void)c;
	return NULL;
}

int al_mcp_call_cancelled(const al_mcp_call *c)
{
	return c->cancelled;
}

void al_mcp_call_on_cancel(al_mcp_call *c, void (*cb)(al_mcp_call *c, void *ud), void *ud)
{
	c->on_cancel = cb;
	c->on_cancel_ud = ud;
}

int al_mcp_call_progress(al_mcp_call *c, double progress, double total, const char *message)
{
	(void)c;
	(void)progress;
	(void)total;
	(void)message;
	return 0;
}

int al_mcp_call_log(al_mcp_call *c, int level, const char *logger, json_t *data)
{
	(void)c;
	(void)level;
	(void)logger;
	json_decref(data);
	return 0;
}

int al_mcp_call_notify(al_mcp_call *c, const char *method, json_t *params)
{
	(void)c;
	(void)method;
	json_decref(params);
	return 0;
}

void al_mcp_call_result(al_mcp_call *c, json_t *result)
{
	(void)c;
	json_decref(result);
}

void al_mcp_call_error(al_mcp_call *c, const al_mcp_error *err)
{
	(void)c;
	(void)err;
}

void al_mcp_call_errorf(al_mcp_call *c, int code, const char *fmt, ...)
{
	(void)c;
	(void)code;
	(void)fmt;
}

void al_mcp_call_input_required(al_mcp_call *c, json_t *input_requests, json_t *state)
{
	(void)c;
	json_decref(input_requests);
	json_decref(state);
}

json_t *al_mcp_call_input_responses(const al_mcp_call *c)
{
	(void)c;
	return NULL;
}

json_t *al_mcp_call_state(const al_mcp_call *c)
{
	(void)c;
	return NULL;
}

int al_mcp_call_request(al_mcp_call *c, const char *method, json_t *params, al_mcp_reply_fn cb,
			void *ud)
{
	(void)c;
	(void)method;
	(void)cb;
	(void)ud;
	json_decref(params);
	return -ENOTSUP;
}
