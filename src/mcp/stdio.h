/*
 * stdio.h - MCP over stdio (basic/transports/stdio): newline-delimited
 * JSON-RPC messages, one per line, UTF-8, no embedded newlines; stdout
 * carries only protocol messages, logs go to stderr.
 *
 * The server side reads messages from an fd (stdin) on the libuv loop,
 * hands each to al_mcp_server_handle, and writes every send/finish as one
 * line. Requests run concurrently; notifications/cancelled {requestId}
 * cancels one. A line over AL_MCP_MAX_MESSAGE is answered -32600 and
 * skipped (the stream resynchronises at the next newline). EOF on input
 * ends the transport once calls in flight are finished (the process then
 * exits). Era: stdio has no headers, so the Mcp-* checks are skipped; a
 * legacy client's initialize opens one implicit session for the stream.
 */
#ifndef AL_MCP_STDIO_H
#define AL_MCP_STDIO_H

#include "mcp/server.h"
#include <uv.h>

typedef struct al_mcp_stdio al_mcp_stdio;

/*
 * Serves srv on in_fd/out_fd (usually 0 and 1). `on_eof` (may be NULL)
 * runs once when the input has ended and every call has finished.
 * 0, -ENOMEM, or a libuv error as -errno.
 */
int al_mcp_stdio_serve(uv_loop_t *loop, al_mcp_server *srv, int in_fd, int out_fd,
		       void (*on_eof)(void *ud), void *ud, al_mcp_stdio **out);
/* Cancels calls in flight, stops reading and frees (handles close on the loop). */
void al_mcp_stdio_free(al_mcp_stdio *st);

#endif
