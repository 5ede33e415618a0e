// A tickets MCP server built on the official MCP TypeScript SDK
// (@modelcontextprotocol/sdk, revision 2025-11-25), served over HTTPS with a
// test's throwaway certificate: the real MCP peer for the control plane's MCP
// client in mcp.test.mjs (until build/tickets-mcp lands on this branch). It
// is a test fixture, not a double of anything under test. It counts every
// tools/call per tool, so a test can assert a call happened exactly once.
// slow_ticket holds its answer until release() (for restart-mid-call tests).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import https from 'node:https';
import { dirname, join } from 'node:path';

// The MCP SDK is installed by scripts/mcp-deps.sh (the conformance suite's
// dependency) into a cache outside the repository.
export function mcpModules() {
	const src = process.env.AIRLOCK_SRC || process.cwd();
	const r = spawnSync('sh', [join(src, 'scripts/mcp-deps.sh')], { encoding: 'utf8' });
	if (r.status !== 0) throw new Error('scripts/mcp-deps.sh failed: ' + r.stderr);
	const conf = r.stdout.trim().split('\n')[1]; // .../node_modules/@modelcontextprotocol/conformance/dist/index.js
	const mods = dirname(dirname(dirname(dirname(conf))));
	if (!existsSync(join(mods, '@modelcontextprotocol/sdk/package.json')))
		throw new Error('@modelcontextprotocol/sdk is not in ' + mods);
	return mods;
}

export const TICKETS = {
	'T-1': { id: 'T-1', title: 'Printer on fire', status: 'open', body: 'Third floor printer is smoking.' },
	'T-2': { id: 'T-2', title: 'VPN drops', status: 'open', body: 'VPN disconnects every hour.' },
};

// authToken: requests to /auth-mcp need `Authorization: Bearer <authToken>`
// (401 otherwise); /mcp needs nothing.
export async function startTicketsPeer({ cert, key, authToken = 'peer-token-0123456789' }) {
	const mods = mcpModules();
	const sdk = join(mods, '@modelcontextprotocol/sdk/dist/esm');
	const { Server } = await import(join(sdk, 'server/index.js'));
	const { StreamableHTTPServerTransport } = await import(join(sdk, 'server/streamableHttp.js'));
	const { ListToolsRequestSchema, CallToolRequestSchema } = await import(join(sdk, 'types.js'));
	const calls = {};
	const waiting = [];
	const idSchema = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] };
	const tools = [
		{ name: 'get_ticket', description: 'Get a ticket by id', inputSchema: idSchema },
		{ name: 'search_tickets', description: 'Search tickets', inputSchema: { type: 'object', properties: { q: { type: 'string' } } } },
		{ name: 'close_ticket', description: 'Close a ticket', inputSchema: idSchema },
		{ name: 'delete_ticket', description: 'Delete a ticket', inputSchema: idSchema },
		{ name: 'slow_ticket', description: 'Get a ticket, slowly', inputSchema: idSchema },
	];
	const text = (t) => ({ content: [{ type: 'text', text: t }] });
	const handle = async (name, args) => {
		calls[name] = (calls[name] ?? 0) + 1;
		const t = TICKETS[args?.id];
		if (name === 'search_tickets') return text(JSON.stringify(Object.values(TICKETS)));
		if (!t) return { ...text(`no ticket ${args?.id}`), isError: true };
		if (name === 'slow_ticket') await new Promise((r) => waiting.push(r));
		if (name === 'close_ticket') t.status = 'closed';
		if (name === 'delete_ticket') delete TICKETS[t.id];
		return text(`${t.id} [${t.status}] ${t.title}: ${t.body}`);
	};
	const newServer = () => {
		const s = new Server({ name: 'tickets-peer', version: '1.0.0' }, { capabilities: { tools: {} } });
		s.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }));
		s.setRequestHandler(CallToolRequestSchema, async (req) => handle(req.params.name, req.params.arguments));
		return s;
	};
	// Stateless (no session ids): a server and transport per request, as the
	// SDK's own stateless example does.
	const httpsServer = https.createServer({ cert, key }, async (req, res) => {
		let body = '';
		req.on('data', (d) => (body += d));
		await new Promise((r) => req.on('end', r));
		if (req.method !== 'POST') {
			res.writeHead(405).end();
			return;
		}
		if (req.url.startsWith('/auth-mcp') && req.headers.authorization !== `Bearer ${authToken}`) {
			res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
			return;
		}
		const server = newServer();
		const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
		res.on('close', () => {
			transport.close();
			server.close();
		});
		await server.connect(transport);
		await transport.handleRequest(req, res, JSON.parse(body || 'null'));
	});
	await new Promise((r) => httpsServer.listen(0, '127.0.0.1', r));
	const port = httpsServer.address().port;
	return {
		url: `https://127.0.0.1:${port}/mcp`,
		authUrl: `https://127.0.0.1:${port}/auth-mcp`,
		authToken,
		calls,
		pending: () => waiting.length,
		release() {
			while (waiting.length) waiting.shift()();
		},
		async stop() {
			this.release();
			httpsServer.closeAllConnections();
			await new Promise((r) => httpsServer.close(r));
		},
	};
}

// A throwaway CA and a certificate for 127.0.0.1 and localhost signed by it, plus an
// unrelated CA (for the wrong-trust case), made with openssl in dir.
export function makeCerts(dir) {
	const sh = (cmd) => {
		const r = spawnSync('sh', ['-c', cmd], { cwd: dir, encoding: 'utf8' });
		if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
	};
	for (const ca of ['ca', 'wrongca'])
		sh(`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=${ca} -keyout ${ca}.key -out ${ca}.pem 2>/dev/null`);
	sh('openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 -keyout srv.key -out srv.csr 2>/dev/null');
	sh('printf "subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n" > ext.cnf');
	sh('openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out srv.pem 2>/dev/null');
	return { ca: join(dir, 'ca.pem'), wrongca: join(dir, 'wrongca.pem'), cert: join(dir, 'srv.pem'), key: join(dir, 'srv.key') };
}
