/*
 * meta.h - the per-request `_meta` fields of MCP 2026-07-28 and the errors
 * a server answers when they are missing, unsupported or insufficient.
 *
 * In the stateless revision there is no initialize: every request carries
 * params._meta with
 *   io.modelcontextprotocol/protocolVersion    string, required
 *   io.modelcontextprotocol/clientCapabilities ClientCapabilities, required
 *   io.modelcontextprotocol/clientInfo         Implementation, optional (SHOULD)
 *   io.modelcontextprotocol/logLevel           LoggingLevel, optional
 * (and progressToken, unchanged from earlier revisions).
 *
 * The checks are split in three because the order of the answers is
 * observable and the conformance suite pins it (server-stateless):
 *   1. al_mcp_meta_parse: structure. A request without _meta or without a
 *      required field is malformed: -32602, HTTP 400. This comes before the
 *      header check: a body without a version cannot mismatch a header.
 *   2. (headers.h) MCP-Protocol-Version vs the _meta version: -32020. This
 *      comes before the version check: header "2026-07-28" with _meta
 *      "v999.0.0" must be answered -32020, not -32022.
 *   3. al_mcp_meta_check_version: -32022, HTTP 400, with
 *      data {supported: [...], requested: "..."}.
 *   4. al_mcp_meta_require, by a handler that needs a client capability:
 *      -32021, HTTP 400, data {requiredCapabilities: ClientCapabilities}
 *      keyed by the missing capabilities (an object, e.g. {"sampling": {}},
 *      never an array of names).
 *
 * Everything returned borrows from the params object it was read from.
 */
#ifndef AL_MCP_META_H
#define AL_MCP_META_H

#include "mcp/jsonrpc.h"

#include <jansson.h>
#include <stddef.h>

#define AL_MCP_META_PROTOCOL_VERSION	"io.modelcontextprotocol/protocolVersion"
#define AL_MCP_META_CLIENT_CAPABILITIES "io.modelcontextprotocol/clientCapabilities"
#define AL_MCP_META_CLIENT_INFO		"io.modelcontextprotocol/clientInfo"
#define AL_MCP_META_LOG_LEVEL		"io.modelcontextprotocol/logLevel"
#define AL_MCP_META_SERVER_INFO		"io.modelcontextprotocol/serverInfo"
#define AL_MCP_META_SUBSCRIPTION_ID	"io.modelcontextprotocol/subscriptionId"

/* The revisions this library speaks. */
#define AL_MCP_VERSION_2026 "2026-07-28" /* modern: per-request _meta */
#define AL_MCP_VERSION_2025 "2025-11-25" /* legacy: initialize + sessions */

/*
 * What a dual-era server advertises (server/discover supportedVersions and
 * the `supported` list of -32022), newest first. NULL-terminated.
 */
extern const char *const al_mcp_supported_versions[];
/* The versions served statelessly from per-request _meta. NULL-terminated. */
extern const char *const al_mcp_modern_versions[];

/* RFC 5424 severities as MCP names them, least severe first. */
enum al_mcp_log_level {
	AL_MCP_LOG_UNSET = -1, /* no logLevel: the server sends no log messages */
	AL_MCP_LOG_DEBUG = 0,
	AL_MCP_LOG_INFO,
	AL_MCP_LOG_NOTICE,
	AL_MCP_LOG_WARNING,
	AL_MCP_LOG_ERROR,
	AL_MCP_LOG_CRITICAL,
	AL_MCP_LOG_ALERT,
	AL_MCP_LOG_EMERGENCY
};

/* "debug".."emergency" -> level; -EINVAL for anything else. */
int al_mcp_log_level_parse(const char *s);
/* The name of a level; NULL for AL_MCP_LOG_UNSET or out of range. */
const char *al_mcp_log_level_name(int level);

/* The validated fields of one request's _meta. All pointers borrowed. */
typedef struct al_mcp_meta {
	const char *protocol_version; /* non-empty */
	json_t *client_capabilities;  /* object */
	json_t *client_info;	      /* object or NULL */
	const char *client_name;      /* clientInfo.name, or NULL */
	const char *client_version;   /* clientInfo.version, or NULL */
	int log_level;		      /* enum al_mcp_log_level */
	json_t *progress_token;	      /* string or integer, or NULL */
} al_mcp_meta;

/*
 * Step 1. Reads params._meta (params may be NULL: that is a missing _meta).
 * 0 with *out filled; -EINVAL with *err = -32602 / HTTP 400 and a message
 * naming the field, for: no _meta, _meta not an object, protocolVersion
 * missing or not a non-empty string, clientCapabilities missing or not an
 * object, clientInfo present but not {name: string, version: string, ...},
 * logLevel present but not a LoggingLevel, progressToken present but not a
 * string or an integer.
 */
int al_mcp_meta_parse(const json_t *params, al_mcp_meta *out, al_mcp_error *err);

/*
 * Step 3. 0 when `requested` is in the NULL-terminated list `accepted`;
 * otherwise -EINVAL with *err = -32022 / HTTP 400 and
 * data {"supported": advertised, "requested": requested}. `advertised` is
 * NULL-terminated (usually al_mcp_supported_versions: a dual-era server
 * lists its legacy version too, which a modern request cannot use but a
 * client may fall back to). -ENOMEM when the data cannot be built.
 */
int al_mcp_meta_check_version(const char *requested, const char *const *accepted,
			      const char *const *advertised, al_mcp_error *err);

/*
 * Step 4. `required` is a ClientCapabilities object naming what the
 * request needs, e.g. {"sampling": {}} or {"elicitation": {"url": {}}}.
 * A capability is declared when its key is present (as an object) in the
 * client's clientCapabilities; a nested key such as elicitation.url must
 * be present in the declared object too. 0 when everything is declared;
 * otherwise -EINVAL with *err = -32021 / HTTP 400 and
 * data {"requiredCapabilities": {the missing ones, with the values of
 * `required`}}. -ENOMEM when the data cannot be built.
 */
int al_mcp_meta_require(const al_mcp_meta *m, const json_t *required, al_mcp_error *err);

#endif
