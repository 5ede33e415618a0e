#include "mcp/jsonrpc.h"

#include "core/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void al_mcp_error_clear(al_mcp_error *err)
{
	if (err == NULL)
		return;
	json_decref(err->data);
	memset(err, 0, sizeof(*err));
}

void al_mcp_error_set(al_mcp_error *err, int code, int http_status, json_t *data, const char *fmt,
		      ...)
{
	va_list ap;
	int n;

	if (err == NULL) {
		json_decref(data);
		return;
	}
	al_mcp_error_clear(err);
	err->code = code;
	err->http_status = http_status;
	err->data = data;
	va_start(ap, fmt);
	n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	/* A message cut short may end inside a UTF-8 sequence, which jansson
	 * would refuse to put in a response: drop the partial character. */
	if (n >= (int)sizeof(err->message)) {
		size_t len = sizeof(err->message) - 1, k = len;
		while (k > 0 && ((unsigned char)err->message[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0 && (unsigned char)err->message[k - 1] >= 0xc0)
			err->message[k - 1] = '\0';
	}
}

const char *al_mcp_error_name(int code)
{
	switch (code) {
	case AL_MCP_PARSE_ERROR:
		return "Parse error";
	case AL_MCP_INVALID_REQUEST:
		return "Invalid Request";
	case AL_MCP_METHOD_NOT_FOUND:
		return "Method not found";
	case AL_MCP_INVALID_PARAMS:
		return "Invalid params";
	case AL_MCP_INTERNAL_ERROR:
		return "Internal error";
	case AL_MCP_HEADER_MISMATCH:
		return "Header mismatch";
	case AL_MCP_MISSING_CAPABILITY:
		return "Missing required client capability";
	case AL_MCP_UNSUPPORTED_VERSION:
		return "Unsupported protocol version";
	default:
		return "Error";
	}
}

/*
 * Reads an id. Returns 0 with *id set, -EINVAL for a value that is not a
 * valid MCP id (null, a real number, a boolean, a structure, a string with
 * an embedded NUL).
 */
static int read_id(json_t *v, al_mcp_id *id)
{
	memset(id, 0, sizeof(*id));
	if (json_is_integer(v)) {
		id->kind = AL_MCP_ID_INT;
		id->num = json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (strlen(s) != json_string_length(v))
			return -EINVAL;
		id->kind = AL_MCP_ID_STR;
		id->str = s;
		return 0;
	}
	return -EINVAL;
}

static int invalid(al_mcp_error *err, const char *what)
{
	al_mcp_error_set(err, AL_MCP_INVALID_REQUEST, 400, NULL, "Invalid Request: %s", what);
	return -EINVAL;
}

/* Checks the members every message kind shares and classifies it. */
static int classify(al_mcp_msg *m, al_mcp_error *err)
{
	json_t *root = m->root, *v, *id, *method, *params, *result, *error;

	v = json_object_get(root, "jsonrpc");
	id = json_object_get(root, "id");
	method = json_object_get(root, "method");
	params = json_object_get(root, "params");
	result = json_object_get(root, "result");
	error = json_object_get(root, "error");

	/* Read the id first, so every later refusal can echo it. */
	if (id != NULL && read_id(id, &m->id) < 0) {
		if (!(json_is_null(id) && error != NULL && method == NULL))
			return invalid(err, "id must be a string or an integer");
	}
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0)
		return invalid(err, "jsonrpc must be \"2.0\"");
	if (method != NULL) {
		if (result != NULL || error != NULL)
			return invalid(err, "a message has either a method or a result/error");
		if (!json_is_string(method) || json_string_length(method) == 0 ||
		    strlen(json_string_value(method)) != json_string_length(method))
			return invalid(err, "method must be a non-empty string");
		if (params != NULL && !json_is_object(params))
			return invalid(err, "params must be an object");
		m->method = json_string_value(method);
		m->params = params;
		m->kind = id != NULL ? AL_MCP_REQUEST : AL_MCP_NOTIFICATION;
		return 0;
	}
	if (params != NULL)
		return invalid(err, "params without a method");
	if (result != NULL && error != NULL)
		return invalid(err, "a response has either a result or an error");
	if (result != NULL) {
		if (id == NULL)
			return invalid(err, "a result needs an id");
		if (!json_is_object(result))
			return invalid(err, "result must be an object");
		m->result = result;
		m->kind = AL_MCP_RESULT;
		return 0;
	}
	if (error != NULL) {
		json_t *code = json_object_get(error, "code");
		json_t *msg = json_object_get(error, "message");
		if (!json_is_object(error) || !json_is_integer(code) || !json_is_string(msg))
			return invalid(err, "error must be {code: integer, message: string}");
		if (json_integer_value(code) < -2147483647LL - 1 ||
		    json_integer_value(code) > 2147483647LL)
			return invalid(err, "error code out of range");
		m->err_code = (int)json_integer_value(code);
		m->err_message = json_string_value(msg);
		m->err_data = json_object_get(error, "data");
		m->kind = AL_MCP_ERROR_RESPONSE;
		return 0;
	}
	return invalid(err, "neither a method nor a result nor an error");
}

int al_mcp_msg_parse(const void *buf, size_t len, al_mcp_msg *m, al_mcp_error *err)
{
	json_error_t jerr;
	int rc;

	memset(m, 0, sizeof(*m));
	if (len > AL_MCP_MAX_MESSAGE) {
		al_mcp_error_set(err, AL_MCP_INVALID_REQUEST, 400, NULL,
				 "Invalid Request: message larger than %u bytes",
				 AL_MCP_MAX_MESSAGE);
		return -EINVAL;
	}
	m->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (m->root == NULL) {
		if (json_error_code(&jerr) == json_error_out_of_memory) {
			al_mcp_error_set(err, AL_MCP_INTERNAL_ERROR, 500, NULL, "Internal error");
			return -ENOMEM;
		}
		al_mcp_error_set(err, AL_MCP_PARSE_ERROR, 400, NULL, "Parse error: %s at %d",
				 jerr.text, jerr.position);
		return -EINVAL;
	}
	/* A batch is valid JSON: its refusal is "Invalid Request". */
	if (json_is_array(m->root)) {
		rc = invalid(err, "batches are not supported");
		goto fail;
	}
	if (!json_is_object(m->root)) {
		rc = invalid(err, "a message is a JSON object");
		goto fail;
	}
	rc = classify(m, err);
	if (rc < 0)
		goto fail;
	return 0;
fail:
	/* Keep root and the id so the caller can answer with the id. */
	m->method = NULL;
	m->params = m->result = m->err_data = NULL;
	m->err_message = NULL;
	return rc;
}

void al_mcp_msg_free(al_mcp_msg *m)
{
	if (m == NULL)
		return;
	json_decref(m->root);
	memset(m, 0, sizeof(*m));
}

json_t *al_mcp_id_json(const al_mcp_id *id)
{
	if (id == NULL)
		return NULL;
	switch (id->kind) {
	case AL_MCP_ID_INT:
		return json_integer(id->num);
	case AL_MCP_ID_STR:
		return json_string(id->str);
	default:
		return NULL;
	}
}

int al_mcp_id_equal(const al_mcp_id *a, const al_mcp_id *b)
{
	if (a->kind != b->kind)
		return 0;
	switch (a->kind) {
	case AL_MCP_ID_INT:
		return a->num == b->num;
	case AL_MCP_ID_STR:
		return strcmp(a->str, b->str) == 0;
	default:
		return 1;
	}
}

/* {"jsonrpc":"2.0"} plus the id when there is one; NULL when out of memory. */
static json_t *envelope(const al_mcp_id *id)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (json_object_set_new(o, "jsonrpc", json_string("2.0")) < 0)
		goto fail;
	if (id != NULL && id->kind != AL_MCP_ID_NONE &&
	    json_object_set_new(o, "id", al_mcp_id_json(id)) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

json_t *al_mcp_result_new(const al_mcp_id *id, json_t *result)
{
	json_t *o = NULL;

	if (result == NULL || !json_is_object(result))
		goto fail;
	o = envelope(id);
	if (o == NULL)
		goto fail;
	if (json_object_set_new(o, "result", result) < 0) {
		result = NULL; /* set_new consumed it */
		goto fail;
	}
	return o;
fail:
	json_decref(result);
	json_decref(o);
	return NULL;
}

json_t *al_mcp_error_response_new(const al_mcp_id *id, const al_mcp_error *err)
{
	json_t *o = NULL, *e = NULL, *ms;

	o = envelope(id);
	e = json_object();
	if (o == NULL || e == NULL)
		goto fail;
	/* A message quoting peer bytes that are not UTF-8 cannot be a JSON
	 * string; the code's standard name stands in for it. */
	ms = err->message[0] ? json_string(err->message) : NULL;
	if (ms == NULL)
		ms = json_string(al_mcp_error_name(err->code));
	if (json_object_set_new(e, "code", json_integer(err->code)) < 0 ||
	    json_object_set_new(e, "message", ms) < 0)
		goto fail;
	if (err->data != NULL && json_object_set(e, "data", err->data) < 0)
		goto fail;
	if (json_object_set_new(o, "error", e) < 0) {
		e = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(e);
	json_decref(o);
	return NULL;
}

static json_t *with_method(json_t *o, const char *method, json_t *params)
{
	if (o == NULL || method == NULL)
		goto fail;
	if (json_object_set_new(o, "method", json_string(method)) < 0)
		goto fail;
	if (params != NULL) {
		int rc = json_object_set_new(o, "params", params);
		params = NULL;
		if (rc < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(params);
	json_decref(o);
	return NULL;
}

json_t *al_mcp_request_new(const al_mcp_id *id, const char *method, json_t *params)
{
	if (id == NULL || id->kind == AL_MCP_ID_NONE) {
		json_decref(params);
		return NULL;
	}
	return with_method(envelope(id), method, params);
}

json_t *al_mcp_notification_new(const char *method, json_t *params)
{
	return with_method(envelope(NULL), method, params);
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
	return al_buf_append(data, buffer, size) < 0 ? -1 : 0;
}

int al_mcp_msg_dump(const json_t *msg, struct al_buf *out)
{
	if (json_dump_callback(msg, dump_cb, out, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0)
		return -ENOMEM;
	return 0;
}
