// mcp_ts_tickets.mjs - the benchmark's peer: tickets-mcp's read-only tool
// `tickets_get` written on the official TypeScript SDK
// (@modelcontextprotocol/server 2.x, installed by scripts/bench-deps.sh) the
// way its documentation serves Streamable HTTP: createMcpHandler with a
// factory that builds a fresh McpServer per request (the SDK's stateless
// serving, both eras), wrapped for node:http by toNodeHandler from
// @modelcontextprotocol/node, behind the localhost Host/Origin guards.
//
//   AIRLOCK_NODE_MODULES=DIR node bench/mcp_ts_tickets.mjs --listen 127.0.0.1:PORT --db FILE
//
// DIR is the node_modules scripts/bench-deps.sh prints (nothing npm lives in
// the repository, and ES modules ignore NODE_PATH, hence the explicit paths).
//
// It reads the same SQLite file tickets-mcp serves, read-only, with
// node:sqlite (built into Node 22: no native addon to compile or pin; the
// statement is prepared once, like a C server would). It answers with the
// same result shape as tickets-mcp: one text block with the ticket as JSON
// and the same object as structuredContent. Prints "listening" once bound.
import { createServer } from 'node:http';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';

const MODULES = process.env.AIRLOCK_NODE_MODULES;
const { values } = parseArgs({ options: { listen: { type: 'string' }, db: { type: 'string' } } });
if (!MODULES || !values.listen || !values.db) {
	console.error('usage: AIRLOCK_NODE_MODULES=DIR mcp_ts_tickets.mjs --listen HOST:PORT --db FILE');
	process.exit(2);
}
const { createMcpHandler, McpServer } = await import(
	join(MODULES, '@modelcontextprotocol/server/dist/index.mjs')
);
const { localhostHostValidation, localhostOriginValidation, toNodeHandler } = await import(
	join(MODULES, '@modelcontextprotocol/node/dist/index.mjs')
);
const z = await import(join(MODULES, 'zod/index.js'));
const [host, port] = values.listen.split(':');

const db = new DatabaseSync(values.db, { readOnly: true });
const getTicket = db.prepare(
	'SELECT id, title, body, priority, status, resolution, created_at, updated_at' +
		' FROM tickets WHERE id = ?'
);
const getComments = db.prepare(
	'SELECT id, body, created_at FROM comments WHERE ticket_id = ? ORDER BY id'
);

// The tool as tickets-mcp declares it (examples/tickets/tickets.c): the same
// title, description, annotations, inputSchema (id an integer >= 1, nothing
// else) and outputSchema. The SDK checks the arguments against the first and
// the result against the second on every call; tickets-mcp checks the
// arguments only.
const Comment = z.object({
	id: z.number().int(),
	ticket_id: z.number().int().optional(),
	body: z.string(),
	created_at: z.iso.datetime(),
});
const Ticket = z.object({
	id: z.number().int(),
	title: z.string(),
	body: z.string(),
	priority: z.enum(['low', 'normal', 'high', 'urgent']),
	status: z.enum(['open', 'closed']),
	resolution: z.string().nullable(),
	created_at: z.iso.datetime(),
	updated_at: z.iso.datetime(),
	comments: z.array(Comment),
});

// A fresh McpServer per request: the SDK's stateless idiom (createMcpHandler
// calls the factory for every HTTP request).
function factory() {
	const server = new McpServer({ name: 'tickets-ts', version: '1.0.0' });
	server.registerTool(
		'tickets_get',
		{
			title: 'Get a ticket',
			description: 'Returns one ticket with its body and comments.',
			inputSchema: z.strictObject({
				id: z.number().int().min(1).describe("The ticket's id."),
			}),
			outputSchema: Ticket,
			annotations: { readOnlyHint: true, idempotentHint: true },
		},
		async ({ id }) => {
			const row = getTicket.get(id);
			if (row === undefined) {
				return { content: [{ type: 'text', text: `id: no ticket ${id}` }], isError: true };
			}
			const ticket = { ...row, comments: getComments.all(id) };
			return {
				content: [{ type: 'text', text: JSON.stringify(ticket) }],
				structuredContent: ticket,
			};
		}
	);
	return server;
}

const handler = toNodeHandler(createMcpHandler(factory));
const validateHost = localhostHostValidation();
const validateOrigin = localhostOriginValidation();

const http = createServer((req, res) => {
	if (!validateHost(req, res) || !validateOrigin(req, res)) return;
	if (req.url !== '/mcp') {
		res.writeHead(404).end();
		return;
	}
	handler(req, res);
});
http.listen(Number(port), host, () => console.log('listening'));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
