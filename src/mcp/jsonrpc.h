/*
 * jsonrpc.h - JSON-RPC 2.0 framing as MCP uses it: one message from bytes,
 * classified and checked, and the responses and errors a server sends back.
 *
 * Pure: no I/O, no global state. The transports (Streamable HTTP, stdio)
 * hand a message body to al_mcp_msg_parse and send what the builders return.
 *
 * Shape rules enforced (MCP basic/index, both eras we serve):
 * - the top level is one JSON object: a batch (an array) is refused with
 *   -32600. Batching was removed in 2025-06-18, so neither 2025-11-25 nor
 *   2026-07-28 allows it;
 * - "jsonrpc" is exactly "2.0";
 * - an id is a string or an integer (never null, never fractional);
 * - a request or notification has a string "method" and, if present, an
 *   object "params" (MCP narrows JSON-RPC's "structured value" to objects);
 * - a response has an id and exactly one of "result" (an object) and
 *   "error" ({code: integer, message: string, data?: any}); an error
 *   response may lack the id when the request's id could not be read;
 * - duplicate object keys are refused as a parse error (-32700): a gateway
 *   that checks headers against the body must read the same body the
 *   upstream server executes, and parsers disagree on which duplicate wins.
 */
#ifndef AL_MCP_JSONRPC_H
#define AL_MCP_JSONRPC_H

#include <jansson.h>
#include <stddef.h>

struct al_buf;

/* JSON-RPC 2.0 codes. */
#define AL_MCP_PARSE_ERROR	-32700
#define AL_MCP_INVALID_REQUEST	-32600
#define AL_MCP_METHOD_NOT_FOUND -32601
#define AL_MCP_INVALID_PARAMS	-32602
#define AL_MCP_INTERNAL_ERROR	-32603
/* MCP 2026-07-28 codes (the -32020..-32099 sub-range is the spec's alone). */
#define AL_MCP_HEADER_MISMATCH	   -32020
#define AL_MCP_MISSING_CAPABILITY  -32021
#define AL_MCP_UNSUPPORTED_VERSION -32022

/* A message body larger than this is refused before parsing (-32600). */
#define AL_MCP_MAX_MESSAGE (8u << 20)

enum al_mcp_msg_kind {
	AL_MCP_REQUEST = 1,   /* method + id */
	AL_MCP_NOTIFICATION,  /* method, no id */
	AL_MCP_RESULT,	      /* id + result */
	AL_MCP_ERROR_RESPONSE /* error, id unless unreadable */
};

enum al_mcp_id_kind {
	AL_MCP_ID_NONE = 0, /* absent (notification) or unreadable */
	AL_MCP_ID_INT,
	AL_MCP_ID_STR
};

/*
 * A request id. `str` is borrowed from the message it was read from (valid
 * until that message is freed) or from the caller who built it.
 */
typedef struct al_mcp_id {
	enum al_mcp_id_kind kind;
	long long num;	 /* AL_MCP_ID_INT */
	const char *str; /* AL_MCP_ID_STR; NUL-terminated, may hold no NUL inside */
} al_mcp_id;

/*
 * One parsed message. Owns `root`; every other pointer borrows from it and
 * lives until al_mcp_msg_free.
 */
typedef struct al_mcp_msg {
	enum al_mcp_msg_kind kind;
	al_mcp_id id;
	const char *method; /* request, notification */
	json_t *params;	    /* request, notification: object, or NULL when absent */
	json_t *result;	    /* result: object */
	int err_code;	    /* error response */
	const char *err_message;
	json_t *err_data; /* error response: any JSON, or NULL */
	json_t *root;	  /* owned: the whole message */
} al_mcp_msg;

/*
 * An error to send back: a JSON-RPC code, a message for humans, optional
 * structured data, and the HTTP status the Streamable HTTP transport uses
 * for it (400 for framing, _meta and header errors, 404 for an unknown
 * method, 200 for errors a handler returns). Owns `data`; release with
 * al_mcp_error_clear. A zeroed struct is "no error".
 */
typedef struct al_mcp_error {
	int code;
	int http_status;
	char message[256];
	json_t *data; /* owned, or NULL */
} al_mcp_error;

/*
 * Parses one message from `len` bytes (need not be NUL-terminated).
 * 0 on success: *m holds the message, free it with al_mcp_msg_free.
 * -EINVAL: not a valid message; *err is filled (-32700 for bytes that are
 *   not one JSON value, -32600 for a batch or a wrong shape) and m->id is
 *   set when the id could be read, so the error response can carry it
 *   (the conformance suite checks that errors echo the request's id).
 *   *m must still be freed.
 * -ENOMEM: out of memory (*err filled with -32603).
 */
int al_mcp_msg_parse(const void *buf, size_t len, al_mcp_msg *m, al_mcp_error *err);
/* Frees what *m owns and zeroes it. Accepts a zeroed struct. */
void al_mcp_msg_free(al_mcp_msg *m);

/* Sets *err (clearing what it held) with a printf-style message. Takes
 * ownership of `data` (may be NULL) even on failure. */
void al_mcp_error_set(al_mcp_error *err, int code, int http_status, json_t *data, const char *fmt,
		      ...) __attribute__((format(printf, 5, 6)));
/* Releases err->data and zeroes *err. */
void al_mcp_error_clear(al_mcp_error *err);
/* The standard message for a code ("Parse error", "Header mismatch", ...). */
const char *al_mcp_error_name(int code);

/* A new JSON value for an id (integer or string); NULL for AL_MCP_ID_NONE
 * or out of memory. */
json_t *al_mcp_id_json(const al_mcp_id *id);
/* 1 when both ids have the same kind and value. */
int al_mcp_id_equal(const al_mcp_id *a, const al_mcp_id *b);

/*
 * Builders. Each returns a new reference (the caller owns it, json_decref)
 * or NULL when out of memory. Arguments marked "stolen" are owned by the
 * builder from the call on, also when it fails.
 */
/* {"jsonrpc":"2.0","id":id,"result":result}; result stolen, must be an object. */
json_t *al_mcp_result_new(const al_mcp_id *id, json_t *result);
/* {"jsonrpc":"2.0","id":id,"error":{code,message,data?}}. The id is left out
 * when id is NULL or AL_MCP_ID_NONE (the 2026-07-28 schema has an optional
 * id and no null id). err->data is copied (a new reference), err untouched. */
json_t *al_mcp_error_response_new(const al_mcp_id *id, const al_mcp_error *err);
/* {"jsonrpc":"2.0","id":id,"method":method,"params":params?}; params stolen. */
json_t *al_mcp_request_new(const al_mcp_id *id, const char *method, json_t *params);
/* {"jsonrpc":"2.0","method":method,"params":params?}; params stolen. */
json_t *al_mcp_notification_new(const char *method, json_t *params);

/* Appends the compact serialisation of `msg` (keys in insertion order) to
 * `out`. 0, or -ENOMEM. */
int al_mcp_msg_dump(const json_t *msg, struct al_buf *out);

#endif
