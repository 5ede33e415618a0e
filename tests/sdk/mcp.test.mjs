// The control plane as an MCP client: agents with mcp_servers get those
// servers' tools in the loop. The MCP server is real: a tickets server on the
// official MCP TypeScript SDK over HTTPS with a throwaway CA (mcp_peer.mjs);
// the model is the scripted stub (a test double) issuing tool_use blocks for
// the model-facing names "<server>__<tool>" (docs/CONTROL-PLANE-MCP.md).
// Asserted, through the official Anthropic SDK:
//   - agent.mcp_tool_use then agent.mcp_tool_result carrying the ticket, and
//     the model's next request saw it as a tool_result;
//   - a tool denied by the agent's mcp_toolset (glob config delete_*) is not
//     offered: the model's call of it is refused and never reaches the server;
//   - always_ask waits for user.tool_confirmation (requires_action), then runs;
//   - a server whose certificate does not chain to the CA configured for it
//     (--mcp-ca) gives session.error mcp_connection_failed_error and the run
//     goes on without its tools;
//   - a control plane killed (-9) during a call does not send it again after
//     its restart: the call gets an is_error result saying so;
//   - user.interrupt during a call cancels it and ends the turn;
//   - bearer tokens from --mcp-token-env; 401 -> mcp_authentication_failed_error.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BIN, assert, assertEq, freePort } from './harness.mjs';
import { runAll, until, listEvents, scratch, endTurnIdle } from './procs.mjs';
import { startTicketsPeer, makeCerts } from './mcp_peer.mjs';

const use = (name, input) => ({ content: [{ type: 'tool_use', name, input }] });
const say = (text) => ({ content: [{ type: 'text', text }], stop_reason: 'end_turn' });
const script = {
	scenarios: [
		{ match: 'ticket please', steps: [use('tickets__get_ticket', { id: 'T-1' }), say('Ticket: {{last_tool_result}}')] },
		{ match: 'delete it', steps: [use('tickets__delete_ticket', { id: 'T-1' }), say('Delete: {{last_tool_result}}')] },
		{ match: 'close it', steps: [use('tickets__close_ticket', { id: 'T-2' }), say('Closed: {{last_tool_result}}')] },
		{ match: 'slow one', steps: [use('tickets__slow_ticket', { id: 'T-1' }), say('Slow: {{last_tool_result}}')] },
		{ match: 'slow two', steps: [use('tickets__slow_ticket', { id: 'T-2' }), say('Slow: {{last_tool_result}}')] },
		{ match: 'other server', steps: [say('no tools needed')] },
		{ match: 'secure ticket', steps: [use('secure__get_ticket', { id: 'T-2' }), say('Secure: {{last_tool_result}}')] },
	],
};

async function turn(c, agent, env, text) {
	const session = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id });
	await c.beta.sessions.events.send(session.id, { events: [{ type: 'user.message', content: [{ type: 'text', text }] }] });
	return session;
}

// The session's events once its turn has ended idle/end_turn (the log on a timeout).
async function waitEnd(c, s, what) {
	let last = [];
	try {
		return await until(async () => {
			last = await listEvents(c, s.id);
			return endTurnIdle(last) ? last : null;
		}, what);
	} catch (e) {
		throw new Error(`${e.message}; events: ${JSON.stringify(last)}`);
	}
}

const ofType = (evs, t) => evs.filter((e) => e.type === t);
const textOf = (blocks) => (blocks ?? []).map((b) => b.text ?? '').join('');

async function mcpScenario(f) {
	const certs = makeCerts(scratch(f.dir, 'pki'));
	const peer = await startTicketsPeer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) });
	try {
		await f.startModel(script);
		// trust by host for "tickets", by name (a CA that did not sign it) for "other"
		await f.startServer({
			args: ['--mcp-ca', `127.0.0.1=${certs.ca}`, '--mcp-ca', `other=${certs.wrongca}`, '--mcp-token-env', 'secure=MCP_SECURE_TOKEN'],
			env: { MCP_SECURE_TOKEN: peer.authToken },
		});
		const c = () => f.client;
		const env = await c().beta.environments.create({ name: 'mcp-env', config: { type: 'self_hosted' } });
		const agent = await c().beta.agents.create({
			name: 'mcp-agent',
			model: 'claude-sonnet-4-5',
			mcp_servers: [{ type: 'url', name: 'tickets', url: peer.url }],
			tools: [
				{
					type: 'mcp_toolset',
					mcp_server_name: 'tickets',
					default_config: { permission_policy: { type: 'always_allow' } },
					configs: [
						{ name: 'delete_*', enabled: false },
						{ name: 'close_ticket', permission_policy: { type: 'always_ask' } },
					],
				},
			],
		});

		// 1. an allowed call: use, result with the ticket, the model saw it
		let s = await turn(c(), agent, env, 'ticket please');
		let evs = await waitEnd(c(), s, 'ticket turn');
		const [u] = ofType(evs, 'agent.mcp_tool_use');
		assert(u, 'agent.mcp_tool_use recorded: ' + evs.map((e) => e.type).join(','));
		assertEq(u.name, 'get_ticket', 'tool name as the server knows it');
		assertEq(u.mcp_server_name, 'tickets', 'server name');
		assertEq(u.input.id, 'T-1', 'input');
		assertEq(u.evaluated_permission, 'allow', 'always_allow');
		const [r] = ofType(evs, 'agent.mcp_tool_result');
		assert(r, 'agent.mcp_tool_result recorded');
		assertEq(r.mcp_tool_use_id, u.id, 'result names the use');
		assert(evs.indexOf(r) > evs.indexOf(u), 'result after use');
		assertEq(r.is_error, false, 'not an error');
		assert(textOf(r.content).includes('Printer on fire'), 'ticket content: ' + JSON.stringify(r.content));
		const msg = ofType(evs, 'agent.message').pop();
		assert(textOf(msg.content).includes('Ticket: T-1 [open] Printer on fire'), 'model saw the result: ' + textOf(msg.content));
		assertEq(peer.calls.get_ticket, 1, 'server called once');
		assertEq(ofType(evs, 'session.error').length, 0, 'no session.error');

		// 2. a tool the toolset disables (glob) is not offered and never called
		s = await turn(c(), agent, env, 'delete it');
		evs = await waitEnd(c(), s, 'delete turn');
		assertEq(ofType(evs, 'agent.mcp_tool_use').length, 0, 'not an MCP use');
		const [d] = ofType(evs, 'agent.tool_use');
		assert(d && d.evaluated_permission === 'deny', 'refused: ' + JSON.stringify(d));
		assertEq(peer.calls.delete_ticket, undefined, 'delete never reached the server');
		assert(textOf(ofType(evs, 'agent.message').pop().content).includes('not enabled'), 'model told it is not enabled');

		// 3. always_ask: waits for the user's confirmation, then runs
		s = await turn(c(), agent, env, 'close it');
		const ask = await until(async () => {
			const e = await listEvents(c(), s.id);
			const idle = ofType(e, 'session.status_idle').pop();
			return idle?.stop_reason?.type === 'requires_action' ? { e, idle } : null;
		}, 'requires_action');
		const [cu] = ofType(ask.e, 'agent.mcp_tool_use');
		assertEq(cu.evaluated_permission, 'ask', 'always_ask');
		assertEq(JSON.stringify(ask.idle.stop_reason.event_ids), JSON.stringify([cu.id]), 'waits on the MCP use');
		assertEq(peer.calls.close_ticket, undefined, 'not called before confirmation');
		await c().beta.sessions.events.send(s.id, { events: [{ type: 'user.tool_confirmation', tool_use_id: cu.id, result: 'allow' }] });
		evs = await waitEnd(c(), s, 'close turn');
		assertEq(peer.calls.close_ticket, 1, 'called once after confirmation');
		assert(textOf(ofType(evs, 'agent.mcp_tool_result')[0].content).includes('T-2 [closed]'), 'closed');

		// 4. wrong CA: mcp_connection_failed_error, the run goes on without the server
		const other = await c().beta.agents.create({
			name: 'other-agent',
			model: 'claude-sonnet-4-5',
			mcp_servers: [{ type: 'url', name: 'other', url: peer.url }],
			tools: [{ type: 'mcp_toolset', mcp_server_name: 'other', default_config: { permission_policy: { type: 'always_allow' } } }],
		});
		const before = { ...peer.calls };
		s = await turn(c(), other, env, 'other server');
		evs = await waitEnd(c(), s, 'other turn');
		const [err] = ofType(evs, 'session.error');
		assert(err, 'session.error: ' + evs.map((e) => e.type).join(','));
		assertEq(err.error.type, 'mcp_connection_failed_error', 'error type');
		assertEq(err.error.mcp_server_name, 'other', 'names the server');
		assertEq(textOf(ofType(evs, 'agent.message').pop().content), 'no tools needed', 'run continued');
		assertEq(JSON.stringify(peer.calls), JSON.stringify(before), 'nothing called through the untrusted connection');

		// 5. bearer tokens from the server's environment; 401 -> mcp_authentication_failed_error
		const sec = await c().beta.agents.create({
			name: 'secure-agent',
			model: 'claude-sonnet-4-5',
			mcp_servers: [
				{ type: 'url', name: 'secure', url: peer.authUrl },
				{ type: 'url', name: 'locked', url: peer.authUrl },
			],
			tools: [
				{ type: 'mcp_toolset', mcp_server_name: 'secure', default_config: { permission_policy: { type: 'always_allow' } } },
				{ type: 'mcp_toolset', mcp_server_name: 'locked', default_config: { permission_policy: { type: 'always_allow' } } },
			],
		});
		s = await turn(c(), sec, env, 'secure ticket');
		evs = await waitEnd(c(), s, 'secure turn');
		const auth = ofType(evs, 'session.error');
		assertEq(auth.length, 1, 'one server failed: ' + JSON.stringify(auth));
		assertEq(auth[0].error.type, 'mcp_authentication_failed_error', '401');
		assertEq(auth[0].error.mcp_server_name, 'locked', 'the server without a token');
		const [sres] = ofType(evs, 'agent.mcp_tool_result');
		assert(sres && !sres.is_error && textOf(sres.content).includes('VPN drops'), 'token accepted: ' + JSON.stringify(sres));
		assert(!JSON.stringify(evs).includes(peer.authToken), 'the token is in no event');

		// 6. killed during a call: after the restart the call is answered, not re-sent
		s = await turn(c(), agent, env, 'slow one');
		await until(() => peer.pending() === 1, 'slow call at the server');
		const su = await until(async () => ofType(await listEvents(c(), s.id), 'agent.mcp_tool_use')[0], 'slow use');
		await f.server.kill('SIGKILL');
		await f.startServer();
		evs = await waitEnd(c(), s, 'slow turn after restart');
		const sr = ofType(evs, 'agent.mcp_tool_result');
		assertEq(sr.length, 1, 'one result');
		assertEq(sr[0].mcp_tool_use_id, su.id, 'for the interrupted call');
		assertEq(sr[0].is_error, true, 'an error');
		assert(textOf(sr[0].content).includes('restarted'), 'says why: ' + textOf(sr[0].content));
		peer.release();
		await new Promise((r) => setTimeout(r, 300));
		assertEq(peer.calls.slow_ticket, 1, 'never sent a second time');
		assert(f.server.log.includes('was in flight at a restart'), 'logged');
		// 7. user.interrupt during a call: the call is cancelled, no result is recorded, the turn ends
		s = await turn(c(), agent, env, 'slow two');
		await until(() => peer.pending() === 1, 'second slow call at the server');
		await c().beta.sessions.events.send(s.id, { events: [{ type: 'user.interrupt' }] });
		evs = await waitEnd(c(), s, 'interrupted turn');
		peer.release();
		await new Promise((r) => setTimeout(r, 500));
		evs = await listEvents(c(), s.id);
		assertEq(ofType(evs, 'agent.mcp_tool_result').length, 0, 'a cancelled call records no result');
		assertEq(peer.calls.slow_ticket, 2, 'sent once');
		for (const p of f.procs) {
			assert(!p.log.includes(peer.authToken), `the token is not in ${p.name}'s log`);
			assert(!/Bearer /i.test(p.log), `no Authorization value in ${p.name}'s log`);
		}
	} finally {
		await peer.stop();
	}
}

// build/tickets-mcp (examples/tickets, on our own MCP server library) over
// https with the throwaway CA, seeded over --stdio with two tickets. Our
// client finds it speaks 2026-07-28 (stateless); tickets_close is disabled.
// certs null: plain http (behind the gateway, on loopback).
export async function startTicketsMcp(dir, certs) {
	const bin = process.env.AIRLOCK_TICKETS_MCP || join(dirname(BIN), 'tickets-mcp');
	if (!existsSync(bin)) throw new Error(`${bin} is missing (make builds it)`);
	const db = join(dir, 'tickets.db');
	const seed = [
		{ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'seed', version: '1' } } },
		{ jsonrpc: '2.0', method: 'notifications/initialized' },
		{ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'tickets_create', arguments: { title: 'Printer on fire', body: 'Third floor printer is smoking.', priority: 'urgent' } } },
		{ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'tickets_create', arguments: { title: 'VPN drops', body: 'VPN disconnects every hour.' } } },
	];
	const stdio = (msgs) => spawnSync(bin, ['--db', db, '--stdio'], { input: msgs.map((m) => JSON.stringify(m)).join('\n') + '\n', encoding: 'utf8' });
	const r = stdio(seed);
	if (r.status !== 0 || !r.stdout.includes('"id":3')) throw new Error('seeding failed: ' + r.stderr);
	const tls = certs ? ['--tls-cert', certs.cert, '--tls-key', certs.key] : [];
	const p = spawn(bin, ['--db', db, '--listen', '127.0.0.1:0', ...tls], { stdio: ['ignore', 'pipe', 'pipe'] });
	let log = '';
	p.stdout.on('data', (d) => (log += d));
	p.stderr.on('data', (d) => (log += d));
	const exited = new Promise((res) => p.on('exit', res));
	const url = await until(() => log.match(/listening on (https?:\/\/127\.0\.0\.1:\d+\/mcp)/)?.[1], 'tickets-mcp listening');
	return {
		url,
		log: () => log,
		// one tools/call over --stdio (the server must be stopped): the answer's text
		query: (name, args) => stdio([...seed.slice(0, 2), { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name, arguments: args } }]).stdout,
		async stop() {
			if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
			await exited;
		},
	};
}

async function ticketsMcpScenario(f) {
	const certs = makeCerts(scratch(f.dir, 'pki'));
	const tm = await startTicketsMcp(scratch(f.dir, 'tickets'), certs);
	try {
		await f.startModel({
			steps: [
				use('tickets__tickets_search', { query: 'printer' }),
				use('tickets__tickets_get', { id: 1 }),
				use('tickets__tickets_close', { id: 1, resolution: 'fixed' }),
				say('Ticket: {{last_tool_result}}'),
			],
		});
		await f.startServer({ args: ['--mcp-ca', `tickets=${certs.ca}`] });
		const c = f.client;
		const env = await c.beta.environments.create({ name: 'tickets-env', config: { type: 'self_hosted' } });
		const agent = await c.beta.agents.create({
			name: 'tickets-agent',
			model: 'claude-sonnet-4-5',
			mcp_servers: [{ type: 'url', name: 'tickets', url: tm.url }],
			tools: [
				{
					type: 'mcp_toolset',
					mcp_server_name: 'tickets',
					default_config: { permission_policy: { type: 'always_allow' } },
					configs: [{ name: 'tickets_close', enabled: false }],
				},
			],
		});
		const s = await turn(c, agent, env, 'find the printer ticket');
		const evs = await waitEnd(c, s, 'tickets turn');
		const uses = ofType(evs, 'agent.mcp_tool_use');
		const results = ofType(evs, 'agent.mcp_tool_result');
		assertEq(uses.map((u) => u.name).join(','), 'tickets_search,tickets_get', 'two MCP calls');
		assertEq(results.length, 2, 'two results');
		for (let i = 0; i < 2; i++) {
			assertEq(results[i].mcp_tool_use_id, uses[i].id, `result ${i} pairs`);
			assertEq(results[i].is_error, false, `result ${i} ok`);
			assert(evs.indexOf(results[i]) > evs.indexOf(uses[i]), `result ${i} after its use`);
		}
		assert(textOf(results[0].content).includes('Printer on fire'), 'search found it');
		assert(textOf(results[1].content).includes('Third floor printer is smoking.'), 'get has the body');
		const closed = ofType(evs, 'agent.tool_use')[0];
		assert(closed && closed.name === 'tickets__tickets_close' && closed.evaluated_permission === 'deny', 'disabled tool refused');
		assert(textOf(ofType(evs, 'agent.message').pop().content).includes('not enabled'), 'the model was told');
		assertEq(ofType(evs, 'session.error').length, 0, 'no session.error');
		await tm.stop();
		// tickets_close never reached the server: the ticket is still open
		assert(tm.query('tickets_get', { id: 1 }).includes('\\"status\\":\\"open\\"'), 'ticket 1 still open');
	} finally {
		await tm.stop();
	}
}

// The private server behind `airlock gateway`: the gateway terminates the
// inner TLS with the customer's certificate (the throwaway CA, which the
// control plane trusts for host localhost through --mcp-ca), routes on the
// Host header and audits the call; tickets-mcp listens on plain loopback http.
async function gatewayScenario(f) {
	const certs = makeCerts(scratch(f.dir, 'pki'));
	const tm = await startTicketsMcp(scratch(f.dir, 'tickets'), null);
	const gp = await freePort();
	const ap = await freePort();
	const audit = join(f.dir, 'gw-audit.log');
	const yaml = join(f.dir, 'gw.yaml');
	writeFileSync(
		yaml,
		[
			`listen_addr: 127.0.0.1:${gp}`,
			'shutdown_timeout: 5s',
			'tls:',
			`  cert_file: ${certs.cert}`,
			`  key_file: ${certs.key}`,
			'routes:',
			`  localhost: ${tm.url.replace(/\/mcp$/, '')}`,
			'upstream:',
			'  allowed_ips: [127.0.0.0/8]',
			'airlock:',
			`  admin_addr: 127.0.0.1:${ap}`,
			`  audit: ${audit}`,
			'',
		].join('\n'),
	);
	const gw = f.spawn('gateway', ['gateway', '--config', yaml]);
	try {
		await until(async () => {
			if (gw.exit) throw new Error('gateway exited: ' + gw.log);
			return (await fetch(`http://127.0.0.1:${ap}/healthz`)).ok;
		}, 'gateway');
		await f.startModel({ steps: [use('tickets__tickets_get', { id: 2 }), say('Ticket: {{last_tool_result}}')] });
		await f.startServer({ args: ['--mcp-ca', `localhost=${certs.ca}`] });
		const c = f.client;
		const env = await c.beta.environments.create({ name: 'gw-env', config: { type: 'self_hosted' } });
		const agent = await c.beta.agents.create({
			name: 'gw-agent',
			model: 'claude-sonnet-4-5',
			mcp_servers: [{ type: 'url', name: 'tickets', url: `https://localhost:${gp}/mcp` }],
			tools: [{ type: 'mcp_toolset', mcp_server_name: 'tickets', default_config: { permission_policy: { type: 'always_allow' } } }],
		});
		const s = await turn(c, agent, env, 'get ticket two');
		const evs = await waitEnd(c, s, 'gateway turn');
		const [u] = ofType(evs, 'agent.mcp_tool_use');
		const [r] = ofType(evs, 'agent.mcp_tool_result');
		assert(u && r && r.mcp_tool_use_id === u.id, 'use and result: ' + evs.map((e) => e.type).join(','));
		assertEq(r.is_error, false, 'ok through the gateway');
		assert(textOf(r.content).includes('VPN disconnects every hour.'), 'ticket 2 through the gateway');
		assert(textOf(ofType(evs, 'agent.message').pop().content).includes('VPN drops'), 'the model saw it');
		// the gateway audited the call (a hash of the arguments, never their content)
		const records = readFileSync(audit, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
		const call = records.find((x) => JSON.stringify(x).includes('"tickets_get"'));
		assert(call, 'the gateway audit log has the tools/call: ' + records.length + ' records');
	} finally {
		await gw.kill('SIGTERM');
		await tm.stop();
	}
}

await runAll([
	['mcp tools in the loop over https (official MCP SDK server)', mcpScenario],
	['build/tickets-mcp over https', ticketsMcpScenario],
	['build/tickets-mcp behind airlock gateway', gatewayScenario],
]);
