/*
 * tickets.c - the tickets example's tools, resources and prompt
 * (tickets.h). The pattern to copy for a server of your own:
 *
 *   1. Publish a precise inputSchema and check arguments against it before
 *      doing anything (args.h): the schema is the contract.
 *   2. Give each tool an outputSchema and answer with structuredContent plus
 *      the same JSON as text (clients that predate structured content read
 *      the text).
 *   3. Errors a model can act on are results with isError; JSON-RPC errors
 *      are for the protocol.
 *   4. Tell subscribers when a resource changes (al_mcp_server_resource_updated).
 */
#include "tickets.h"

#include "args.h"

#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPEN_URI      "tickets://open"
#define TICKET_URI    "tickets://ticket/"
#define OPEN_LIST_MAX 100
#define DEFAULT_LIMIT 20
#define MIME_JSON     "application/json"

/* ---- schemas (JSON text, parsed once at start-up) ---- */

#define ID_PROP		"{\"type\": \"integer\", \"minimum\": 1, \"description\": \"The ticket's id.\"}"
#define PRIORITY_ENUM	"[\"low\", \"normal\", \"high\", \"urgent\"]"
#define RESOLUTION_ENUM "[\"fixed\", \"wontfix\", \"duplicate\", \"invalid\"]"
#define TIME_PROP	"{\"type\": \"string\", \"format\": \"date-time\"}"

#define COMMENT_SCHEMA                                                                             \
	"{\"type\": \"object\", \"properties\": {"                                                 \
	"\"id\": {\"type\": \"integer\"}, \"ticket_id\": {\"type\": \"integer\"},"                 \
	"\"body\": {\"type\": \"string\"}, \"created_at\": " TIME_PROP "},"                        \
	"\"required\": [\"id\", \"body\", \"created_at\"]}"

#define TICKET_SCHEMA                                                                              \
	"{\"type\": \"object\", \"properties\": {"                                                 \
	"\"id\": {\"type\": \"integer\"},"                                                         \
	"\"title\": {\"type\": \"string\"},"                                                       \
	"\"body\": {\"type\": \"string\"},"                                                        \
	"\"priority\": {\"type\": \"string\", \"enum\": " PRIORITY_ENUM "},"                       \
	"\"status\": {\"type\": \"string\", \"enum\": [\"open\", \"closed\"]},"                    \
	"\"resolution\": {\"type\": [\"string\", \"null\"]},"                                      \
	"\"created_at\": " TIME_PROP ", \"updated_at\": " TIME_PROP ","                            \
	"\"comments\": {\"type\": \"array\", \"items\": " COMMENT_SCHEMA "}},"                     \
	"\"required\": [\"id\", \"title\", \"body\", \"priority\", \"status\", \"resolution\","    \
	" \"created_at\", \"updated_at\", \"comments\"]}"

#define SUMMARY_SCHEMA                                                                             \
	"{\"type\": \"object\", \"properties\": {"                                                 \
	"\"id\": {\"type\": \"integer\"}, \"title\": {\"type\": \"string\"},"                      \
	"\"priority\": {\"type\": \"string\", \"enum\": " PRIORITY_ENUM "},"                       \
	"\"status\": {\"type\": \"string\", \"enum\": [\"open\", \"closed\"]},"                    \
	"\"updated_at\": " TIME_PROP "},"                                                          \
	"\"required\": [\"id\", \"title\", \"priority\", \"status\", \"updated_at\"]}"

#define LIST_SCHEMA                                                                                \
	"{\"type\": \"object\", \"properties\": {"                                                 \
	"\"tickets\": {\"type\": \"array\", \"items\": " SUMMARY_SCHEMA "},"                       \
	"\"count\": {\"type\": \"integer\"}}, \"required\": [\"tickets\", \"count\"]}"

static const char search_in[] =
    "{\"type\": \"object\", \"properties\": {"
    "\"query\": {\"type\": \"string\", \"maxLength\": 200, \"description\":"
    " \"Text to find in the title or body, case-insensitively. Absent or empty: any.\"},"
    "\"status\": {\"type\": \"string\", \"enum\": [\"open\", \"closed\", \"any\"],"
    " \"default\": \"open\", \"description\": \"Which tickets to search.\"},"
    "\"limit\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100, \"default\": 20,"
    " \"description\": \"At most this many tickets, newest first.\"}},"
    "\"additionalProperties\": false}";

static const char get_in[] = "{\"type\": \"object\", \"properties\": {\"id\": " ID_PROP "},"
			     "\"required\": [\"id\"], \"additionalProperties\": false}";

static const char create_in[] =
    "{\"type\": \"object\", \"properties\": {"
    "\"title\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 200,"
    " \"description\": \"One line saying what is wrong or wanted.\"},"
    "\"body\": {\"type\": \"string\", \"maxLength\": 20000,"
    " \"description\": \"Details: steps, expected and actual behaviour.\"},"
    "\"priority\": {\"type\": \"string\", \"enum\": " PRIORITY_ENUM ", \"default\": \"normal\"}},"
    "\"required\": [\"title\"], \"additionalProperties\": false}";

static const char comment_in[] =
    "{\"type\": \"object\", \"properties\": {\"id\": " ID_PROP ","
    "\"body\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 20000,"
    " \"description\": \"The comment's text.\"}},"
    "\"required\": [\"id\", \"body\"], \"additionalProperties\": false}";

static const char close_in[] =
    "{\"type\": \"object\", \"properties\": {\"id\": " ID_PROP ","
    "\"resolution\": {\"type\": \"string\", \"enum\": " RESOLUTION_ENUM ","
    " \"description\": \"Why the ticket is closed.\"}},"
    "\"required\": [\"id\", \"resolution\"], \"additionalProperties\": false}";

/* ---- the tools ---- */

struct tk_tickets;

/*
 * One tool's work once its arguments passed the schema: 0 with the result
 * in *out (the structuredContent), or -ENOENT / -EALREADY / -EIO / -ENOMEM
 * with a message for the model in err.
 */
typedef int (*tool_run_fn)(struct tk_tickets *tk, const json_t *args, json_t **out, char *err,
			   size_t errlen);

struct tool {
	const char *name, *title, *description, *input, *output;
	int read_only, idempotent;
	tool_run_fn run;
	json_t *input_schema; /* parsed, owned */
	struct tk_tickets *tk;
};

struct tk_tickets {
	struct tk_db *db;   /* borrowed */
	al_mcp_server *srv; /* owned */
	struct tool *tools; /* owned copy of the table below */
	size_t ntools;
};

static int64_t arg_id(const json_t *args)
{
	return (int64_t)json_number_value(json_object_get(args, "id"));
}

static const char *arg_str(const json_t *args, const char *name, const char *dflt)
{
	const char *s = json_string_value(json_object_get(args, name));
	return s ? s : dflt;
}

/* The words for a store error: the caller knows which ticket it asked for. */
static int store_error(int rc, int64_t id, char *err, size_t errlen)
{
	if (rc == -ENOENT)
		snprintf(err, errlen, "ticket %" PRId64 " not found", id);
	else if (rc == -EALREADY)
		snprintf(err, errlen, "ticket %" PRId64 " is already closed", id);
	else if (rc != -ENOMEM)
		snprintf(err, errlen, "the ticket store failed (the server's log says why)");
	return rc;
}

static void changed(struct tk_tickets *tk, int64_t id, int list_too)
{
	char uri[64];

	snprintf(uri, sizeof(uri), TICKET_URI "%" PRId64, id);
	al_mcp_server_resource_updated(tk->srv, uri);
	if (list_too)
		al_mcp_server_resource_updated(tk->srv, OPEN_URI);
}

static int run_search(struct tk_tickets *tk, const json_t *args, json_t **out, char *err,
		      size_t errlen)
{
	const char *status = arg_str(args, "status", "open");
	json_t *list = NULL;
	json_t *lv = json_object_get(args, "limit");
	int limit = lv ? (int)json_number_value(lv) : DEFAULT_LIMIT;
	int rc = tk_db_search(tk->db, arg_str(args, "query", NULL),
			      strcmp(status, "any") == 0 ? NULL : status, limit, &list);

	if (rc < 0)
		return store_error(rc, 0, err, errlen);
	*out = json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(list), "tickets", list);
	return *out ? 0 : -ENOMEM;
}

static int run_get(struct tk_tickets *tk, const json_t *args, json_t **out, char *err,
		   size_t errlen)
{
	int rc = tk_db_get(tk->db, arg_id(args), out);
	return rc < 0 ? store_error(rc, arg_id(args), err, errlen) : 0;
}

static int run_create(struct tk_tickets *tk, const json_t *args, json_t **out, char *err,
		      size_t errlen)
{
	int rc = tk_db_create(tk->db, arg_str(args, "title", ""), arg_str(args, "body", ""),
			      arg_str(args, "priority", "normal"), out);

	if (rc < 0)
		return store_error(rc, 0, err, errlen);
	al_info("tickets", "created ticket %lld",
		(long long)json_integer_value(json_object_get(*out, "id")));
	changed(tk, json_integer_value(json_object_get(*out, "id")), 1);
	return 0;
}

static int run_comment(struct tk_tickets *tk, const json_t *args, json_t **out, char *err,
		       size_t errlen)
{
	int rc = tk_db_comment(tk->db, arg_id(args), arg_str(args, "body", ""), out);

	if (rc < 0)
		return store_error(rc, arg_id(args), err, errlen);
	changed(tk, arg_id(args), 0);
	return 0;
}

static int run_close(struct tk_tickets *tk, const json_t *args, json_t **out, char *err,
		     size_t errlen)
{
	int rc = tk_db_close_ticket(tk->db, arg_id(args), arg_str(args, "resolution", ""), out);

	if (rc < 0)
		return store_error(rc, arg_id(args), err, errlen);
	al_info("tickets", "closed ticket %lld", (long long)arg_id(args));
	changed(tk, arg_id(args), 1);
	return 0;
}

static const struct tool tool_table[] = {
    {"tickets_search", "Search tickets",
     "Finds tickets whose title or body contains a text, newest first. Returns summaries; "
     "use tickets_get for a ticket's body and comments.",
     search_in, LIST_SCHEMA, 1, 1, run_search, NULL, NULL},
    {"tickets_get", "Get a ticket", "Returns one ticket with its body and comments.", get_in,
     TICKET_SCHEMA, 1, 1, run_get, NULL, NULL},
    {"tickets_create", "Create a ticket",
     "Opens a new ticket. Search first: a duplicate wastes everyone's time.", create_in,
     TICKET_SCHEMA, 0, 0, run_create, NULL, NULL},
    {"tickets_comment", "Comment on a ticket", "Adds a comment to a ticket (open or closed).",
     comment_in, COMMENT_SCHEMA, 0, 0, run_comment, NULL, NULL},
    {"tickets_close", "Close a ticket", "Closes an open ticket with a resolution.", close_in,
     TICKET_SCHEMA, 0, 1, run_close, NULL, NULL},
};

/* A CallToolResult: the structured result and the same JSON as text, or an error text. */
static json_t *tool_result(json_t *structured, const char *error)
{
	char *text;
	json_t *r;

	if (error)
		return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", error,
				 "isError", 1);
	text = json_dumps(structured, JSON_COMPACT);
	r = text ? json_pack("{s:[{s:s, s:s}], s:O}", "content", "type", "text", "text", text,
			     "structuredContent", structured)
		 : NULL;
	al_free(text); /* jansson allocates through al_malloc */
	return r;
}

/* Every tool's handler: the schema check, the tool's work, the result. */
static void call_tool_cb(al_mcp_call *c, json_t *args, void *ud)
{
	struct tool *t = ud;
	json_t *out = NULL, *result;
	char msg[320], err[256] = "";
	int rc = tk_args_check(t->input_schema, args, err, sizeof(err));

	if (rc == 0)
		rc = t->run(t->tk, args, &out, err, sizeof(err));
	if (rc == -ENOMEM) {
		al_mcp_call_errorf(c, -32603, "out of memory");
		goto done;
	}
	snprintf(msg, sizeof(msg), "%s: %s", t->name, err);
	result = tool_result(out, rc < 0 ? msg : NULL);
	if (result == NULL)
		al_mcp_call_errorf(c, -32603, "out of memory");
	else
		al_mcp_call_result(c, result);
done:
	json_decref(out);
}

/* ---- resources ---- */

/* A ticket id from text: digits only, no sign, no leading zero, fits int64. 0 when invalid. */
static int64_t parse_id(const char *s)
{
	char *end;
	long long v;

	if (s == NULL || *s < '1' || *s > '9')
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno || *end ? 0 : (int64_t)v;
}

static void not_found(al_mcp_call *c, const char *uri)
{
	al_mcp_error e = {0};

	al_mcp_error_set(&e, -32602, 200, json_pack("{s:s}", "uri", uri), "Resource not found");
	al_mcp_call_error(c, &e);
	al_mcp_error_clear(&e);
}

/* A ReadResourceResult with one JSON text. v stolen. */
static void read_result(al_mcp_call *c, const char *uri, json_t *v)
{
	char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
	json_t *r = text ? json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType",
				     MIME_JSON, "text", text)
			 : NULL;

	if (r)
		al_mcp_call_result(c, r);
	else
		al_mcp_call_errorf(c, -32603, "out of memory");
	al_free(text);
	json_decref(v);
}

static void read_open_cb(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	struct tk_tickets *tk = ud;
	json_t *list = NULL;

	if (tk_db_search(tk->db, NULL, "open", OPEN_LIST_MAX, &list) < 0) {
		al_mcp_call_errorf(c, -32603, "the ticket store failed");
		return;
	}
	read_result(
	    c, uri,
	    json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(list), "tickets", list));
}

static void read_ticket_cb(al_mcp_call *c, const char *uri, json_t *vars, void *ud)
{
	struct tk_tickets *tk = ud;
	json_t *t = NULL;
	int64_t id = parse_id(json_string_value(json_object_get(vars, "id")));
	int rc = id > 0 ? tk_db_get(tk->db, id, &t) : -ENOENT;

	if (rc == -ENOENT)
		not_found(c, uri);
	else if (rc < 0)
		al_mcp_call_errorf(c, -32603, "the ticket store failed");
	else
		read_result(c, uri, t);
}

/* Completion of a ticket id (the template's {id}, the prompt's id): open tickets first. */
static json_t *complete_id_cb(const char *argument, const char *value, json_t *context, void *ud)
{
	struct tk_tickets *tk = ud;
	json_t *ids = NULL;

	if (strcmp(argument, "id") != 0 || tk_db_open_ids(tk->db, value, &ids) < 0)
		return NULL;
	return ids;
}

/* ---- the prompt ---- */

static const char triage_text[] =
    "Triage ticket #%" PRId64 " below. Decide its priority (low, normal, high, urgent) and "
    "say why; search for duplicates with tickets_search; if it is a duplicate, close it with "
    "tickets_close (resolution \"duplicate\") and name the original in a comment; otherwise "
    "add a comment with the next step and who should take it.";

static void triage_cb(al_mcp_call *c, json_t *args, void *ud)
{
	struct tk_tickets *tk = ud;
	const char *ids = json_string_value(json_object_get(args, "id"));
	int64_t id = parse_id(ids);
	json_t *t = NULL, *r = NULL;
	char uri[64], text[sizeof(triage_text) + 32], *body = NULL;
	int rc;

	if (ids == NULL) {
		al_mcp_call_errorf(c, -32602, "triage_ticket: id is required");
		return;
	}
	rc = id > 0 ? tk_db_get(tk->db, id, &t) : -ENOENT;
	if (rc == -ENOENT) {
		al_mcp_call_errorf(c, -32602, "triage_ticket: no ticket with id \"%.40s\"", ids);
		return;
	}
	if (rc < 0) {
		al_mcp_call_errorf(c, -32603, "the ticket store failed");
		return;
	}
	snprintf(uri, sizeof(uri), TICKET_URI "%" PRId64, id);
	snprintf(text, sizeof(text), triage_text, id);
	body = json_dumps(t, JSON_COMPACT);
	if (body)
		r = json_pack("{s:s+, s:[{s:s, s:{s:s, s:s}}, {s:s, s:{s:s, s:{s:s, s:s, s:s}}}]}",
			      "description",
			      "Triage ticket: ", json_string_value(json_object_get(t, "title")),
			      "messages", "role", "user", "content", "type", "text", "text", text,
			      "role", "user", "content", "type", "resource", "resource", "uri", uri,
			      "mimeType", MIME_JSON, "text", body);
	if (r)
		al_mcp_call_result(c, r);
	else
		al_mcp_call_errorf(c, -32603, "out of memory");
	al_free(body);
	json_decref(t);
}

/* ---- registration ---- */

static int add_tool(struct tk_tickets *tk, struct tool *t)
{
	struct al_mcp_tool def = {0};
	json_error_t jerr;
	json_t *output = json_loads(t->output, 0, &jerr);
	int rc;

	t->tk = tk;
	t->input_schema = json_loads(t->input, 0, &jerr);
	def.name = t->name;
	def.title = t->title;
	def.description = t->description;
	def.input_schema = t->input_schema;
	def.output_schema = output;
	/* Hints for a client's confirmation policy: nothing here reaches outside the tracker. */
	def.annotations =
	    json_pack("{s:s, s:b, s:b, s:b, s:b}", "title", t->title, "readOnlyHint", t->read_only,
		      "destructiveHint", 0, "idempotentHint", t->idempotent, "openWorldHint", 0);
	def.fn = call_tool_cb;
	def.ud = t;
	if (t->input_schema == NULL || output == NULL) {
		/* A typo in a schema above: caught by the first run of the tests. */
		al_error("tickets", "%s: schema: %s (line %d)", t->name, jerr.text, jerr.line);
		rc = -EINVAL;
	} else {
		rc = def.annotations ? al_mcp_server_add_tool(tk->srv, &def) : -ENOMEM;
	}
	json_decref(output);
	json_decref(def.annotations);
	return rc;
}

static int add_rest(struct tk_tickets *tk)
{
	struct al_mcp_resource open = {
	    .uri = OPEN_URI,
	    .name = "open-tickets",
	    .title = "Open tickets",
	    .description = "The 100 newest open tickets (summaries).",
	    .mime_type = MIME_JSON,
	    .fn = read_open_cb,
	    .ud = tk,
	};
	struct al_mcp_resource_template ticket = {
	    .uri_template = TICKET_URI "{id}",
	    .name = "ticket",
	    .title = "A ticket",
	    .description = "One ticket with its body and comments.",
	    .mime_type = MIME_JSON,
	    .fn = read_ticket_cb,
	    .complete = complete_id_cb,
	    .ud = tk,
	};
	struct al_mcp_prompt triage = {
	    .name = "triage_ticket",
	    .title = "Triage a ticket",
	    .description = "Asks for a priority, a duplicate check and the next step of a ticket.",
	    .arguments = json_pack("[{s:s, s:s, s:b}]", "name", "id", "description",
				   "The ticket's id.", "required", 1),
	    .fn = triage_cb,
	    .complete = complete_id_cb,
	    .ud = tk,
	};
	int rc = triage.arguments ? 0 : -ENOMEM;

	if (rc == 0)
		rc = al_mcp_server_add_resource(tk->srv, &open);
	if (rc == 0)
		rc = al_mcp_server_add_template(tk->srv, &ticket);
	if (rc == 0)
		rc = al_mcp_server_add_prompt(tk->srv, &triage);
	json_decref(triage.arguments);
	return rc;
}

int tk_tickets_new(struct tk_db *db, struct tk_tickets **out)
{
	struct al_mcp_server_opts o = {
	    .name = "tickets-mcp",
	    .version = AL_VERSION,
	    .title = "Tickets (airlock example)",
	    .instructions = "A ticket tracker. Search before creating a ticket; read a ticket "
			    "with tickets_get or the tickets://ticket/{id} resource.",
	    /* Lists never change at run time; ticket contents do, hence private and short. */
	    .ttl_ms = 5000,
	    .cache_scope = "private",
	};
	struct tk_tickets *tk = al_calloc(1, sizeof(*tk));
	int rc = 0;

	*out = NULL;
	if (tk == NULL)
		return -ENOMEM;
	tk->db = db;
	tk->ntools = sizeof(tool_table) / sizeof(tool_table[0]);
	tk->tools = al_calloc(tk->ntools, sizeof(*tk->tools));
	tk->srv = al_mcp_server_new(&o);
	if (tk->tools == NULL || tk->srv == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	memcpy(tk->tools, tool_table, sizeof(tool_table));
	for (size_t i = 0; rc == 0 && i < tk->ntools; i++)
		rc = add_tool(tk, &tk->tools[i]);
	if (rc == 0)
		rc = add_rest(tk);
	if (rc < 0)
		goto fail;
	*out = tk;
	return 0;
fail:
	tk_tickets_free(tk);
	return rc;
}

al_mcp_server *tk_tickets_server(struct tk_tickets *tk)
{
	return tk->srv;
}

void tk_tickets_free(struct tk_tickets *tk)
{
	if (tk == NULL)
		return;
	al_mcp_server_free(tk->srv);
	for (size_t i = 0; tk->tools && i < tk->ntools; i++)
		json_decref(tk->tools[i].input_schema);
	al_free(tk->tools);
	al_free(tk);
}
