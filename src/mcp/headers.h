/*
 * headers.h - the Mcp-* HTTP request headers of Streamable HTTP 2026-07-28.
 *
 * The transport mirrors body fields into headers so that load balancers and
 * gateways can route without parsing JSON:
 *   MCP-Protocol-Version  the _meta protocolVersion           every request
 *   Mcp-Method            the JSON-RPC method                 every request
 *   Mcp-Name              params.name (tools/call, prompts/get) or
 *                         params.uri (resources/read)
 *   Mcp-Param-{Name}      tools/call arguments whose inputSchema property
 *                         carries "x-mcp-header": "{Name}"
 * A server that reads the body MUST check that the headers say what the
 * body says (otherwise a balancer routing on the header and a server
 * executing the body disagree), answering -32020 HeaderMismatch with
 * HTTP 400 when a required header is missing, malformed or different.
 *
 * Value encoding (Mcp-Name and Mcp-Param-*): a value that is not plain
 * visible ASCII (0x20-0x7E, no leading or trailing space) or that itself
 * looks like the sentinel travels as "=?base64?{standard padded base64 of
 * the UTF-8}?=". The markers are case-sensitive. A value without both
 * markers is literal. Strict: bad padding or a character outside the
 * alphabet is an invalid value (the conformance suite sends "SGVsbG8"
 * without its "=" and expects a refusal).
 *
 * Header names compare case-insensitively, values case-sensitively; optional
 * whitespace (SP, HTAB) around a value is not part of it (RFC 9110 5.5).
 */
#ifndef AL_MCP_HEADERS_H
#define AL_MCP_HEADERS_H

#include "mcp/jsonrpc.h"

#include <jansson.h>
#include <stddef.h>

struct al_buf;
struct al_http_field;

#define AL_MCP_HDR_PROTOCOL_VERSION "MCP-Protocol-Version"
#define AL_MCP_HDR_METHOD	    "Mcp-Method"
#define AL_MCP_HDR_NAME		    "Mcp-Name"
#define AL_MCP_HDR_PARAM_PREFIX	    "Mcp-Param-"

/*
 * Appends the header form of the value (n bytes, any content) to `out`:
 * the value itself when it is safe as a plain header value, else the
 * base64 sentinel form. The empty string is sent in the sentinel form too,
 * so an intermediary that drops empty headers cannot turn "present" into
 * "missing". 0 or -ENOMEM.
 */
int al_mcp_hdr_value_encode(const char *val, size_t n, struct al_buf *out);

/*
 * Appends the decoded value of a received header value (n bytes) to `out`.
 * Surrounding SP/HTAB is dropped first. A sentinel value must be strict
 * padded base64 of valid UTF-8 without NUL; a literal value must consist of
 * visible ASCII, SP and HTAB. 0, -EINVAL (invalid characters or encoding:
 * the caller answers -32020), or -ENOMEM.
 */
int al_mcp_hdr_value_decode(const char *hv, size_t n, struct al_buf *out);

/*
 * The header text of a tool argument (Value Encoding, "type conversion"):
 * a string as-is, an integer in decimal, a boolean as "true"/"false".
 * Appends the raw (not yet sentinel-encoded) text to `out`. -ENOENT for
 * null (the header is omitted), -EINVAL for any other JSON type, -ENOMEM.
 */
int al_mcp_hdr_param_text(const json_t *v, struct al_buf *out);

/* 1 when `name` is a non-empty RFC 9110 token (1*tchar), else 0. */
int al_mcp_hdr_token_valid(const char *name);

/* One x-mcp-header annotation of a tool's inputSchema. */
typedef struct al_mcp_param_header {
	char *name;   /* owned: {Name} of Mcp-Param-{Name}, as declared */
	char **path;  /* owned: the chain of `properties` keys from the root */
	size_t depth; /* >= 1 */
} al_mcp_param_header;

/* All annotations of one tool. Owns `v`; a zeroed struct is empty. */
typedef struct al_mcp_param_headers {
	al_mcp_param_header *v;
	size_t n;
} al_mcp_param_headers;

/*
 * Reads the x-mcp-header annotations of a tool's inputSchema, enforcing
 * every constraint of the spec: the value is a non-empty token, unique
 * case-insensitively within the schema, on a property whose "type" is
 * "string", "integer" or "boolean", reached from the root through
 * `properties` keys only (an annotation under items, oneOf/anyOf/allOf/not,
 * if/then/else, $ref targets, $defs or any other keyword, or on the root
 * itself, invalidates the tool). 0 with *out filled (free with
 * al_mcp_param_headers_free; n may be 0); -EINVAL with a reason in err
 * (a client then drops the tool from tools/list); -ENOMEM.
 */
int al_mcp_param_headers_from_schema(const json_t *input_schema, al_mcp_param_headers *out,
				     char *err, size_t errlen);
void al_mcp_param_headers_free(al_mcp_param_headers *ph);

/*
 * Client side: appends the request's Mcp-* header lines, each
 * "Name: value\r\n", to `out`: MCP-Protocol-Version (`version`), Mcp-Method,
 * Mcp-Name for tools/call, resources/read and prompts/get, and one
 * Mcp-Param-{Name} per annotation whose argument is present and not null.
 * `ph` may be NULL (no annotations). 0, -EINVAL (a method or name the body
 * cannot carry in a header, or an annotated argument of a type that has no
 * header form), or -ENOMEM.
 */
int al_mcp_hdr_build(const char *version, const char *method, const json_t *params,
		     const al_mcp_param_headers *ph, struct al_buf *out);

/*
 * Server side: checks the request headers `h[0..n)` against the parsed
 * message. `meta_version` is the _meta protocolVersion (NULL when the body
 * has none: then only the header's presence is checked). `ph` holds the
 * annotations of the called tool for tools/call (NULL when the tool is
 * unknown or has none). For a request, the checks are, in order:
 *   - each of MCP-Protocol-Version, Mcp-Method, Mcp-Name appears at most
 *     once;
 *   - MCP-Protocol-Version is present and equals meta_version;
 *   - Mcp-Method is present and equals the method;
 *   - for tools/call, prompts/get (params.name) and resources/read
 *     (params.uri): Mcp-Name is present and decodes to the body value (when
 *     the body lacks the value, a present Mcp-Name is a mismatch and an
 *     absent one is left to the handler's -32602);
 *   - for each annotation: when the argument is present and not null, the
 *     Mcp-Param header is present once and decodes to its text (integers
 *     compare numerically: "42.0" matches 42); a present header with invalid
 *     characters is refused even when the argument is absent.
 * For a notification (whose headers this revision leaves undefined) only
 * the headers that are present are checked against the body.
 * 0 when consistent; -EINVAL with *err = -32020 / HTTP 400 and a message
 * naming the header; -ENOMEM.
 */
int al_mcp_hdr_check(const struct al_http_field *h, size_t n, const al_mcp_msg *m,
		     const char *meta_version, const al_mcp_param_headers *ph, al_mcp_error *err);

#endif
