/*
 * db.h - the ticket store of the tickets-mcp example: SQLite in WAL mode,
 * every statement prepared once at open and bound per call (no SQL is
 * ever built from input).
 *
 * One connection, used from one thread (the server's loop thread). Several
 * tickets-mcp processes may share one file (the stateless MCP of 2026-07-28
 * lets a balancer spread requests over instances): WAL lets readers run
 * beside a writer, and a writer waits up to 5 s for another's lock.
 *
 * Tickets and comments come back as new JSON objects shaped as the tools'
 * outputSchema says (tickets.c):
 *   ticket  {id, title, body, priority, status, resolution, created_at,
 *            updated_at, comments: [{id, body, created_at}]}
 *   summary {id, title, priority, status, updated_at}
 * Times are RFC 3339 UTC with milliseconds. Errors are negative errno
 * values: -ENOENT (no such ticket), -EALREADY (closing a closed ticket),
 * -ENOMEM, -EIO (SQLite failed; logged on stderr).
 */
#ifndef TK_DB_H
#define TK_DB_H

#include <jansson.h>
#include <stdint.h>
#include <stddef.h>

struct tk_db;

/* Opens (creating) the database at path. 0 or a negative errno with a message in err. */
int tk_db_open(const char *path, struct tk_db **out, char *err, size_t errlen);
/* Finalizes the statements and closes (checkpointing the WAL). NULL is fine. */
void tk_db_close(struct tk_db *db);

/* The ticket with its comments, oldest first. */
int tk_db_get(struct tk_db *db, int64_t id, json_t **ticket);
/*
 * Summaries, newest first, at most `limit`: `query` (NULL: any) is a
 * case-insensitive substring of the title or body; `status` is "open",
 * "closed" or NULL for both.
 */
int tk_db_search(struct tk_db *db, const char *query, const char *status, int limit,
		 json_t **summaries);
/* A new open ticket; returns it as tk_db_get would. */
int tk_db_create(struct tk_db *db, const char *title, const char *body, const char *priority,
		 json_t **ticket);
/* Adds a comment (to an open or closed ticket); *comment is {id, ticket_id, body, created_at}. */
int tk_db_comment(struct tk_db *db, int64_t id, const char *body, json_t **comment);
/* Closes an open ticket with a resolution; returns the ticket. -EALREADY if closed. */
int tk_db_close_ticket(struct tk_db *db, int64_t id, const char *resolution, json_t **ticket);
/* Ids of open tickets whose decimal form starts with prefix (completion), at most 100. */
int tk_db_open_ids(struct tk_db *db, const char *prefix, json_t **ids);

#endif
