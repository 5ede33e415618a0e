/*
 * tickets.h - the tickets example's MCP surface: five tools, a resource, a
 * resource template and a prompt, registered on an al_mcp_server
 * (mcp/server.h) and served from a ticket store (db.h).
 *
 *   tools      tickets_search, tickets_get, tickets_create, tickets_comment,
 *              tickets_close: each with an inputSchema (checked before the
 *              tool runs, args.h), an outputSchema, and its result both as
 *              structuredContent and as the same JSON in a text block.
 *   resources  tickets://open (the newest open tickets) and the template
 *              tickets://ticket/{id} (one ticket with its comments).
 *   prompt     triage_ticket {id}: the ticket embedded with instructions.
 *
 * Errors, decided once for every tool: arguments that break the inputSchema
 * and errors of the tracker itself (no such ticket, closed already) are
 * tool results with isError: true and a message that names the argument, so
 * the model can correct its call (the spec's "tool execution errors"). Only
 * the protocol layer answers JSON-RPC errors: -32602 for an unknown tool, a
 * resource that does not exist (data: {uri}) or a prompt argument that is
 * missing or names no ticket; -32603 when memory runs out.
 *
 * Handlers run on the transport's loop thread and answer before returning:
 * a query on a local SQLite file takes microseconds, less than handing it
 * to a thread would.
 */
#ifndef TK_TICKETS_H
#define TK_TICKETS_H

#include "db.h"

#include "mcp/server.h"

struct tk_tickets;

/*
 * Creates the server (serverInfo name "tickets-mcp") with everything
 * registered. db is borrowed and must outlive the result. 0, -ENOMEM.
 */
int tk_tickets_new(struct tk_db *db, struct tk_tickets **out);
/* The MCP server to hand to a transport (borrowed; lives as long as tk). */
al_mcp_server *tk_tickets_server(struct tk_tickets *tk);
/* Frees the server (its calls must be finished: free the transports first). NULL ok. */
void tk_tickets_free(struct tk_tickets *tk);

#endif
