// Every JSON object the control plane returns, judged by the TypeScript
// compiler against the official SDK's own types (@anthropic-ai/sdk 1.14.0).
//
// A realistic flow runs through the SDK (resources, a bash turn answered by
// the SDK's EnvironmentWorker, a custom tool, an always_ask permission, the
// work queue by hand, documented errors) with a fetch that records the parsed
// body of every JSON response, and the SSE stream's events as the SDK parsed
// them. Each capture becomes `const x_N: TheSDKType = <the JSON literal>;` in
// a generated .ts file; object literals get excess-property checks, so a
// missing required field, a wrong literal (`"type": "agnet"`) or a field the
// SDK does not declare fails `tsc --strict` and the test prints its
// diagnostics next to the request that produced the object.
// The model is the scripted stub (a test double).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, assert, assertEq } from './harness.mjs';
import { startTicketsPeer, makeCerts } from './mcp_peer.mjs';

const MODULES = process.env.AIRLOCK_NODE_MODULES;
const SDK = join(MODULES, '@anthropic-ai/sdk');
const TSC = join(MODULES, 'typescript/bin/tsc');
if (!existsSync(TSC)) {
	console.error('typescript is not installed (scripts/node-deps.sh installs it)');
	process.exit(1);
}

const script = {
	// The first model request (the "fails" session's) gets a non-retryable
	// 400: session.error, then idle with retries_exhausted.
	faults: [{ status: 400, message: 'rejected by the stub' }],
	scenarios: [
		{ match: 'fails', steps: [{ content: [{ type: 'text', text: 'unreachable' }] }] },
		{ match: 'slow', steps: [{ content: [{ type: 'text', text: 'too late' }], delay_ms: 10000 }] },
		{
			match: 'reclaim me',
			steps: [
				{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo reclaimed' } }] },
				{ content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn' },
			],
		},
		{
			match: 'bash please',
			steps: [
				{
					content: [
						{ type: 'text', text: 'Running it.' },
						{ type: 'tool_use', name: 'bash', input: { command: 'echo typed-output' } },
					],
				},
				{ content: [{ type: 'text', text: 'Output: {{last_tool_result}}' }], stop_reason: 'end_turn' },
			],
		},
		{
			match: 'custom lookup',
			steps: [
				{ content: [{ type: 'tool_use', name: 'lookup', input: { q: 'airlock' } }] },
				{ content: [{ type: 'text', text: 'Found: {{last_tool_result}}' }], stop_reason: 'end_turn' },
			],
		},
		{
			match: 'ask first',
			steps: [
				{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo asked' } }] },
				{ content: [{ type: 'text', text: 'Done: {{last_tool_result}}' }], stop_reason: 'end_turn' },
			],
		},
		{
			match: 'mcp ticket',
			steps: [
				{ content: [{ type: 'tool_use', name: 'tickets__get_ticket', input: { id: 'T-2' } }] },
				{ content: [{ type: 'text', text: 'Ticket: {{last_tool_result}}' }], stop_reason: 'end_turn' },
			],
		},
		{ match: 'mcp unreachable', steps: [{ content: [{ type: 'text', text: 'carrying on' }] }] },
		{ steps: [{ content: [{ type: 'text', text: 'You said: {{last_user_text}}' }] }] },
	],
};

// A real MCP server (the official MCP SDK over https, mcp_peer.mjs) the
// control plane trusts through --mcp-ca, for agent.mcp_tool_use/_result.
async function mcpPeer(dir) {
	const certs = makeCerts(dir);
	const peer = await startTicketsPeer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) });
	return { peer, serverArgs: ['--mcp-ca', `127.0.0.1=${certs.ca}`], stop: () => peer.stop() };
}

// Every JSON response, as {who, method, path, status, body}.
const captures = [];
// SSE events as the SDK's stream parser yielded them.
const streamed = [];

function recordingFetch(who) {
	return async (url, init = {}) => {
		const res = await fetch(url, init);
		const ct = res.headers.get('content-type') || '';
		if (ct.startsWith('application/json')) {
			const text = await res.clone().text();
			captures.push({
				who,
				method: (init.method || 'GET').toUpperCase(),
				path: new URL(String(url)).pathname,
				status: res.status,
				body: JSON.parse(text),
			});
		}
		return res;
	};
}

async function until(fn, what, ms = 20000) {
	const end = Date.now() + ms;
	for (;;) {
		const v = await fn();
		if (v) return v;
		if (Date.now() > end) throw new Error('timed out waiting for ' + what);
		await new Promise((r) => setTimeout(r, 100));
	}
}

async function collect(iter) {
	const out = [];
	for await (const x of iter) out.push(x);
	return out;
}

async function expectStatus(p, status, what) {
	try {
		await p;
	} catch (e) {
		assertEq(e.status, status, what);
		return e;
	}
	throw new Error(`${what}: expected ${status}`);
}

async function eventsOf(c, id) {
	return collect(c.beta.sessions.events.list(id, { limit: 1000 }));
}

async function idleWith(c, id, reason, count = 1) {
	return until(async () => {
		const evs = await eventsOf(c, id);
		const idles = evs.filter((e) => e.type === 'session.status_idle' && e.stop_reason?.type === reason);
		return idles.length >= count ? evs : null;
	}, `${id} idle with ${reason}`);
}

// ---- route -> SDK type --------------------------------------------------
const ID = '[^/]+';
const ROUTES = [
	['POST', `/v1/agents`, 'Agent'],
	['GET', `/v1/agents`, 'PageCursorResponse<Agent>'],
	['GET', `/v1/agents/${ID}`, 'Agent'],
	['POST', `/v1/agents/${ID}`, 'Agent'],
	['POST', `/v1/agents/${ID}/archive`, 'Agent'],
	['POST', `/v1/environments`, 'Environment'],
	['GET', `/v1/environments`, 'PageCursorResponse<Environment>'],
	['GET', `/v1/environments/${ID}`, 'Environment'],
	['POST', `/v1/environments/${ID}`, 'Environment'],
	['DELETE', `/v1/environments/${ID}`, 'EnvironmentDeleted'],
	['DELETE', `/v1/environments/${ID}/keys/${ID}`, 'EnvironmentKeyDeleted'],
	['POST', `/v1/environments/${ID}/archive`, 'Environment'],
	['POST', `/v1/environments/${ID}/keys`, 'EnvironmentKey'],
	['GET', `/v1/environments/${ID}/work/poll`, 'Work | null'],
	['GET', `/v1/environments/${ID}/work/stats`, 'WorkStats'],
	['GET', `/v1/environments/${ID}/work`, 'PageCursorResponse<Work>'],
	['GET', `/v1/environments/${ID}/work/${ID}`, 'Work'],
	['POST', `/v1/environments/${ID}/work/${ID}`, 'Work'],
	['POST', `/v1/environments/${ID}/work/${ID}/ack`, 'Work'],
	['POST', `/v1/environments/${ID}/work/${ID}/stop`, 'Work'],
	['POST', `/v1/environments/${ID}/work/${ID}/heartbeat`, 'Heartbeat'],
	['POST', `/v1/sessions`, 'Session'],
	['GET', `/v1/sessions`, 'BidirectionalPageCursorResponse<Session>'],
	['GET', `/v1/sessions/${ID}`, 'Session'],
	['POST', `/v1/sessions/${ID}`, 'Session'],
	['DELETE', `/v1/sessions/${ID}`, 'SessionDeleted'],
	['POST', `/v1/sessions/${ID}/archive`, 'Session'],
	['GET', `/v1/sessions/${ID}/events`, 'PageCursorResponse<SessionEvent>'],
	['POST', `/v1/sessions/${ID}/events`, 'SendEvents'],
].map(([m, p, t]) => [m, new RegExp(`^${p}$`), t, p]);

// The SDK's ErrorObject union names only some error types (no conflict_error)
// and omits `details`, which its APIError reads as Shared.ErrorDetails; so the
// body is ErrorResponse with error widened to exactly that, and the type
// pinned by status where the SDK maps the status to one class.
const ERROR_TYPE = {
	400: "'invalid_request_error'",
	401: "'authentication_error'",
	403: "'permission_error'",
	404: "'not_found_error'",
	429: "'rate_limit_error'",
	529: "'overloaded_error'",
};

function typeFor(c) {
	if (c.status >= 400) return `ErrorBody<${ERROR_TYPE[c.status] || 'ErrorType'}>`;
	for (const [m, re, t] of ROUTES) if (m === c.method && re.test(c.path)) return t;
	return null;
}

function routeOf(c) {
	for (const [m, re, , p] of ROUTES) if (m === c.method && re.test(c.path)) return `${m} ${p}`;
	return `${c.method} ${c.path}`;
}

function buildTs(items) {
	const P = (rel) => JSON.stringify(join(SDK, rel));
	const head = [
		`import type { PageCursorResponse, BidirectionalPageCursorResponse } from ${P('core/pagination.js')};`,
		`import type { ErrorResponse, ErrorType, ErrorDetails } from ${P('resources/shared.js')};`,
		`import type { BetaManagedAgentsAgent as Agent } from ${P('resources/beta/agents/agents.js')};`,
		`import type { BetaEnvironment as Environment, BetaEnvironmentDeleteResponse as EnvironmentDeleted } from ${P('resources/beta/environments/environments.js')};`,
		`import type { BetaSelfHostedWork as Work, BetaSelfHostedWorkHeartbeatResponse as Heartbeat, BetaSelfHostedWorkQueueStats as WorkStats } from ${P('resources/beta/environments/work.js')};`,
		`import type { BetaManagedAgentsSession as Session, BetaManagedAgentsDeletedSession as SessionDeleted } from ${P('resources/beta/sessions/sessions.js')};`,
		`import type { BetaManagedAgentsSessionEvent as SessionEvent, BetaManagedAgentsStreamSessionEvents as StreamEvent, BetaManagedAgentsSendSessionEvents as SendEvents } from ${P('resources/beta/sessions/events.js')};`,
		`type ErrorBody<T extends ErrorType> = Omit<ErrorResponse, 'error'> & { error: { type: T; message: string; details?: ErrorDetails } };`,
		`type Ev<T extends SessionEvent['type']> = Extract<SessionEvent, { type: T }>;`,
		`type StreamEv<T extends StreamEvent['type']> = Extract<StreamEvent, { type: T }>;`,
		// The SDK has no environment-key resource (keys are airlock's way to
		// mint the credential its worker reads from ANTHROPIC_ENVIRONMENT_KEY);
		// this is the shape docs/ARCHITECTURE.md promises, shown once.
		`interface EnvironmentKey { type: 'environment_key'; id: string; environment_id: string; name?: string; created_at: string; key: string }`,
		`interface EnvironmentKeyDeleted { type: 'environment_key_deleted'; id: string }`,
		'',
	];
	const lines = [...head];
	const spans = [];
	items.forEach((it, i) => {
		const start = lines.length + 1;
		lines.push(`// ${it.label}`);
		lines.push(`export const x_${i}: ${it.type} = ${JSON.stringify(it.body, null, 2)};`);
		spans.push({ start, end: lines.length + JSON.stringify(it.body, null, 2).split('\n').length, label: it.label });
	});
	return { text: lines.join('\n') + '\n', spans };
}

await run('sdk: every response matches the SDK types', { script, before: mcpPeer }, async (h) => {
	const A = h.Anthropic;
	const c = new A({ apiKey: h.adminKey, baseURL: h.baseURL, maxRetries: 0, fetch: recordingFetch('admin') });

	// ---- agents ----
	const agent = await c.beta.agents.create({
		name: 'typed',
		model: 'claude-sonnet-4-5',
		system: 'v1',
		tools: [{ type: 'agent_toolset_20260401' }],
		metadata: { team: 'types' },
	});
	await c.beta.agents.retrieve(agent.id);
	await c.beta.agents.update(agent.id, { version: 1, description: 'typed agent', system: 'v2' });
	const spare = await c.beta.agents.create({ name: 'spare', model: 'claude-haiku-4-5' });
	await collect(c.beta.agents.list({ limit: 1 }));
	await c.beta.agents.archive(spare.id);
	const custom = await c.beta.agents.create({
		name: 'custom',
		model: 'claude-sonnet-4-5',
		tools: [
			{
				type: 'custom',
				name: 'lookup',
				description: 'Look a word up',
				input_schema: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] },
			},
		],
	});
	const asker = await c.beta.agents.create({
		name: 'asker',
		model: 'claude-sonnet-4-5',
		tools: [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_ask' } } }],
	});

	// Every tool kind the agent accepts, with per-tool overrides, resolved by the server.
	await c.beta.agents.create({
		name: 'all tools',
		model: { id: 'claude-opus-4-5', speed: 'standard' },
		description: 'every tool kind',
		mcp_servers: [{ type: 'url', name: 'docs', url: 'https://mcp.example.test/sse' }],
		tools: [
			{
				type: 'agent_toolset_20260401',
				default_config: { enabled: true, permission_policy: { type: 'always_allow' } },
				configs: [
					{ name: 'read', enabled: false },
					{ name: 'bash', permission_policy: { type: 'always_ask' } },
				],
			},
			{ type: 'mcp_toolset', mcp_server_name: 'docs', configs: [{ name: 'search', enabled: false }] },
			{ type: 'custom', name: 'noop', description: 'does nothing', input_schema: { type: 'object' } },
		],
	});

	// ---- environments and keys ----
	const env = await c.beta.environments.create({ name: 'perimeter', config: { type: 'self_hosted' } });
	await c.beta.environments.retrieve(env.id);
	await c.beta.environments.update(env.id, { description: 'eu', metadata: { site: 'eu' } });
	await collect(c.beta.environments.list());
	const key = await c.post(`/v1/environments/${env.id}/keys`, { body: { name: 'worker-1' } });
	const manual = await c.beta.environments.create({ name: 'manual', config: { type: 'self_hosted' } });
	const mkey = await c.post(`/v1/environments/${manual.id}/keys`, { body: {} });
	const spareKey = await c.post(`/v1/environments/${manual.id}/keys`, { body: {} });
	await c.delete(`/v1/environments/${manual.id}/keys/${spareKey.id}`);
	const temp = await c.beta.environments.create({ name: 'temp' });
	await c.beta.environments.archive(temp.id);
	await c.beta.environments.delete(temp.id);

	// ---- sessions ----
	const s = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id, title: 'bash turn' });
	await c.beta.sessions.retrieve(s.id);
	await c.beta.sessions.update(s.id, { title: 'bash turn (renamed)', metadata: { k: 'v' } });
	const gone = await c.beta.sessions.create({ agent: { type: 'agent', id: agent.id, version: 1 }, environment_id: env.id });
	await collect(c.beta.sessions.list({ limit: 1 }));
	await c.beta.sessions.archive(gone.id);
	await c.beta.sessions.delete(gone.id);

	// ---- a model error: session.error, idle retries_exhausted (the stub's one fault) ----
	const se = await c.beta.sessions.create({ agent: custom.id, environment_id: manual.id });
	await c.beta.sessions.events.send(se.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'fails' }] }] });
	await idleWith(c, se.id, 'retries_exhausted');

	// ---- user.interrupt during a slow model call ----
	const si = await c.beta.sessions.create({ agent: custom.id, environment_id: manual.id });
	await c.beta.sessions.events.send(si.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'slow' }] }] });
	await until(async () => (await eventsOf(c, si.id)).some((e) => e.type === 'span.model_request_start'), 'slow call');
	await c.beta.sessions.events.send(si.id, { events: [{ type: 'user.interrupt' }] });
	await until(async () => (await eventsOf(c, si.id)).some((e) => e.type === 'session.status_idle'), 'interrupted');

	// ---- a full bash turn answered by the SDK's EnvironmentWorker, watched on the stream ----
	const stream = await c.beta.sessions.events.stream(s.id);
	const streaming = (async () => {
		for await (const ev of stream) {
			streamed.push(ev);
			if (ev.type === 'session.status_idle' && ev.stop_reason?.type === 'end_turn') return;
		}
	})();
	await new Promise((r) => setTimeout(r, 200));
	await c.beta.sessions.events.send(s.id, {
		events: [{ type: 'user.message', content: [{ type: 'text', text: 'bash please: echo something' }] }],
	});
	const workdir = mkdtempSync(join(tmpdir(), 'al-sdk-types-'));
	const ctrl = new AbortController();
	const wc = new A({ apiKey: h.adminKey, baseURL: h.baseURL, maxRetries: 2, fetch: recordingFetch('worker') });
	const worker = wc.beta.environments.work.worker({
		environmentId: env.id,
		environmentKey: key.key,
		workdir,
		maxIdleMs: 300,
		signal: ctrl.signal,
	});
	const running = worker.run().catch((e) => {
		if (!ctrl.signal.aborted) throw e;
	});
	const bashEvents = await idleWith(c, s.id, 'end_turn');
	await Promise.race([streaming, new Promise((_, rej) => setTimeout(() => rej(new Error('stream timeout')), 10000))]);
	stream.controller.abort();
	ctrl.abort();
	await running;
	rmSync(workdir, { recursive: true, force: true });
	assert(
		JSON.stringify(bashEvents.filter((e) => e.type === 'user.tool_result')).includes('typed-output'),
		'the worker answered the bash call',
	);

	// ---- custom tool: agent.custom_tool_use, idle requires_action, user.custom_tool_result ----
	const sc = await c.beta.sessions.create({ agent: custom.id, environment_id: manual.id });
	await c.beta.sessions.events.send(sc.id, {
		events: [{ type: 'user.message', content: [{ type: 'text', text: 'custom lookup of airlock' }] }],
	});
	const cev = await idleWith(c, sc.id, 'requires_action');
	const cuse = cev.find((e) => e.type === 'agent.custom_tool_use');
	assert(cuse, 'agent.custom_tool_use');
	await c.beta.sessions.events.send(sc.id, {
		events: [
			{ type: 'user.custom_tool_result', custom_tool_use_id: cuse.id, content: [{ type: 'text', text: 'a gateway' }] },
		],
	});
	await idleWith(c, sc.id, 'end_turn');

	// ---- always_ask: evaluated_permission ask, user.tool_confirmation, then the result ----
	const sa = await c.beta.sessions.create({ agent: asker.id, environment_id: manual.id });
	await c.beta.sessions.events.send(sa.id, {
		events: [{ type: 'user.message', content: [{ type: 'text', text: 'ask first, then run' }] }],
	});
	const aev = await idleWith(c, sa.id, 'requires_action');
	const ause = aev.find((e) => e.type === 'agent.tool_use');
	assertEq(ause?.evaluated_permission, 'ask', 'always_ask gives ask');
	await c.beta.sessions.events.send(sa.id, {
		events: [{ type: 'user.tool_confirmation', tool_use_id: ause.id, result: 'allow' }],
	});

	// ---- the work queue by hand (the always_ask session's item) ----
	const wk = new A({ apiKey: null, authToken: mkey.key, baseURL: h.baseURL, maxRetries: 0, fetch: recordingFetch('env-key') });
	const work = await until(async () => {
		const w = await wk.beta.environments.work.poll(manual.id, { block_ms: 200, 'Anthropic-Worker-ID': 'typed' });
		if (w && w.data.id !== sa.id) {
			await wk.beta.environments.work.stop(w.id, { environment_id: manual.id, force: true });
			return null;
		}
		return w;
	}, 'work for the always_ask session');
	await wk.beta.environments.work.ack(work.id, { environment_id: manual.id });
	const secret = JSON.parse(Buffer.from(work.secret, 'base64url').toString('utf8'));
	const item = new A({ apiKey: null, authToken: secret.sessions_token, baseURL: h.baseURL, maxRetries: 0, fetch: recordingFetch('token') });
	const hb = await item.beta.environments.work.heartbeat(work.id, {
		environment_id: manual.id,
		expected_last_heartbeat: 'NO_HEARTBEAT',
	});
	const e412 = await expectStatus(
		item.beta.environments.work.heartbeat(work.id, { environment_id: manual.id, expected_last_heartbeat: 'NO_HEARTBEAT' }),
		412,
		'stale heartbeat',
	);
	assertEq(e412.errorCode, 'heartbeat_precondition_failed', '412 errorCode');
	await item.beta.environments.work.heartbeat(work.id, { environment_id: manual.id, expected_last_heartbeat: hb.last_heartbeat });
	await c.beta.environments.work.retrieve(work.id, { environment_id: manual.id });
	await c.beta.environments.work.update(work.id, { environment_id: manual.id, metadata: { host: 'typed-1' } });
	await collect(wk.beta.environments.work.list(manual.id));
	await wk.beta.environments.work.stats(manual.id);
	await item.beta.sessions.events.send(sa.id, {
		events: [{ type: 'user.tool_result', tool_use_id: ause.id, is_error: false, content: [{ type: 'text', text: 'asked' }] }],
	});
	await idleWith(c, sa.id, 'end_turn');
	await item.beta.environments.work.stop(work.id, { environment_id: manual.id, force: true });
	await expectStatus(wk.beta.environments.work.stop(work.id, { environment_id: manual.id, force: true }), 409, 'second stop');

	// ---- MCP: agent.mcp_tool_use, agent.mcp_tool_result, session.error mcp_connection_failed_error ----
	const mcpAgent = await c.beta.agents.create({
		name: 'mcp',
		model: 'claude-sonnet-4-5',
		mcp_servers: [
			{ type: 'url', name: 'tickets', url: h.extra.peer.url },
			{ type: 'url', name: 'gone', url: 'https://127.0.0.1:9/mcp' },
		],
		tools: [
			{ type: 'mcp_toolset', mcp_server_name: 'tickets', default_config: { permission_policy: { type: 'always_allow' } } },
			{ type: 'mcp_toolset', mcp_server_name: 'gone' },
		],
	});
	const sm = await c.beta.sessions.create({ agent: mcpAgent.id, environment_id: manual.id });
	await c.beta.sessions.events.send(sm.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'mcp ticket T-2' }] }] });
	const mev = await idleWith(c, sm.id, 'end_turn');
	assert(mev.some((e) => e.type === 'agent.mcp_tool_use'), 'agent.mcp_tool_use');
	assert(JSON.stringify(mev.find((e) => e.type === 'agent.mcp_tool_result')).includes('VPN drops'), 'agent.mcp_tool_result');
	assertEq(mev.find((e) => e.type === 'session.error')?.error?.type, 'mcp_connection_failed_error', 'unreachable server');

	// ---- a lapsed lease reclaimed: session.status_rescheduled ----
	const renv = await c.beta.environments.create({ name: 'reclaim', config: { type: 'self_hosted' } });
	const rkey = await c.post(`/v1/environments/${renv.id}/keys`, { body: {} });
	const rw = new A({ apiKey: null, authToken: rkey.key, baseURL: h.baseURL, maxRetries: 0, fetch: recordingFetch('env-key') });
	const sr = await c.beta.sessions.create({ agent: agent.id, environment_id: renv.id });
	await c.beta.sessions.events.send(sr.id, {
		events: [{ type: 'user.message', content: [{ type: 'text', text: 'reclaim me' }] }],
	});
	const first = await until(() => rw.beta.environments.work.poll(renv.id, { block_ms: 500 }), 'work to reclaim');
	await rw.beta.environments.work.ack(first.id, { environment_id: renv.id });
	await rw.beta.environments.work.heartbeat(first.id, {
		environment_id: renv.id,
		expected_last_heartbeat: 'NO_HEARTBEAT',
		desired_ttl_seconds: 1,
	});
	await new Promise((r) => setTimeout(r, 1300));
	const again = await until(() => rw.beta.environments.work.poll(renv.id, { block_ms: 500 }), 'the lapsed item');
	assertEq(again.id, first.id, 'the same item reclaimed');
	await until(async () => (await eventsOf(c, sr.id)).some((e) => e.type === 'session.status_rescheduled'), 'rescheduled');
	await rw.beta.environments.work.stop(again.id, { environment_id: renv.id, force: true });

	// ---- documented errors ----
	await expectStatus(c.beta.agents.retrieve('agent_missing'), 404, 'missing agent');
	await expectStatus(c.beta.environments.retrieve('env_missing'), 404, 'missing environment');
	await expectStatus(c.beta.agents.create({ name: 'no model' }), 400, 'missing model');
	await expectStatus(c.beta.agents.update(agent.id, { version: 1, system: 'stale' }), 409, 'stale agent version');
	const bad = new A({ apiKey: 'alk_admin_wrong', baseURL: h.baseURL, maxRetries: 0, fetch: recordingFetch('bad') });
	await expectStatus(bad.beta.agents.list(), 401, 'wrong key');
	await expectStatus(wk.beta.agents.list(), 403, 'env key on an admin route');

	// ---- final event histories (pages) ----
	for (const id of [s.id, sc.id, sa.id, se.id, si.id, sr.id]) await eventsOf(c, id);

	// ---- coverage: the flow produced every kind the brief names ----
	const routes = new Set(captures.filter((x) => x.status < 400).map(routeOf));
	for (const [m, , , p] of ROUTES) assert(routes.has(`${m} ${p}`), `no capture of ${m} ${p}`);
	const statuses = new Set(captures.map((x) => x.status));
	for (const st of [400, 401, 403, 404, 409, 412]) assert(statuses.has(st), `no ${st} error captured`);
	const pageEvents = new Map();
	for (const x of captures)
		if (x.status === 200 && x.method === 'GET' && /\/events$/.test(x.path)) for (const e of x.body.data) pageEvents.set(e.id, e);
	const kinds = new Set([...pageEvents.values()].map((e) => e.type));
	for (const t of [
		'user.message',
		'session.status_running',
		'span.model_request_start',
		'span.model_request_end',
		'agent.message',
		'agent.tool_use',
		'user.tool_result',
		'session.status_idle',
		'agent.custom_tool_use',
		'user.custom_tool_result',
		'user.tool_confirmation',
		'session.error',
		'user.interrupt',
		'session.status_rescheduled',
	])
		assert(kinds.has(t), `no ${t} event captured`);
	const streamKinds = new Set(streamed.map((e) => e.type));
	for (const t of ['user.message', 'agent.tool_use', 'user.tool_result', 'agent.message', 'session.status_idle'])
		assert(streamKinds.has(t), `no ${t} on the stream`);

	// ---- judge: every capture against its SDK type ----
	const items = [];
	const unknown = [];
	for (const x of captures) {
		const type = typeFor(x);
		if (type === null) unknown.push(`${x.method} ${x.path} ${x.status}`);
		else items.push({ label: `[${x.who}] ${x.method} ${x.path} -> ${x.status}`, type, body: x.body });
	}
	assertEq(unknown.length, 0, 'responses with no SDK type: ' + unknown.join(', '));
	// Each event once more on its own, typed by its `type`, so a diagnostic names the event.
	for (const e of pageEvents.values()) items.push({ label: `event ${e.type} (events list)`, type: `Ev<'${e.type}'>`, body: e });
	for (const e of streamed) items.push({ label: `event ${e.type} (stream)`, type: `StreamEv<'${e.type}'>`, body: e });

	// What a type cannot say: every "RFC 3339 timestamp" field is one.
	const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
	const badTimes = [];
	const walk = (v, where) => {
		if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${where}[${i}]`));
		else if (v && typeof v === 'object')
			for (const [k, x] of Object.entries(v)) {
				if (/(_at|^last_heartbeat)$/.test(k) && typeof x === 'string' && x !== '' && !RFC3339.test(x))
					badTimes.push(`${where}.${k} = ${JSON.stringify(x)}`);
				walk(x, `${where}.${k}`);
			}
	};
	items.forEach((it) => walk(it.body, it.label));
	assertEq(badTimes.length, 0, 'timestamps that are not RFC 3339: ' + badTimes.join('; '));

	const dir = mkdtempSync(join(tmpdir(), 'al-sdk-tsc-'));
	try {
		const { text, spans } = buildTs(items);
		writeFileSync(join(dir, 'captures.ts'), text);
		writeFileSync(
			join(dir, 'tsconfig.json'),
			JSON.stringify({
				compilerOptions: {
					strict: true,
					noEmit: true,
					skipLibCheck: false,
					target: 'es2022',
					module: 'nodenext',
					moduleResolution: 'nodenext',
					lib: ['es2022', 'dom', 'dom.iterable'],
					types: [],
				},
				files: ['captures.ts'],
			}),
		);
		const r = spawnSync(process.execPath, [TSC, '-p', dir, '--pretty', 'false'], { encoding: 'utf8' });
		if (r.status !== 0) {
			const out = (r.stdout + r.stderr)
				.split('\n')
				.filter((l) => l.trim())
				.map((l) => {
					const m = /captures\.ts\((\d+),/.exec(l);
					const sp = m && spans.find((s) => +m[1] >= s.start && +m[1] <= s.end);
					return sp ? `${sp.label}:\n    ${l}` : l;
				});
			throw new Error(`tsc found ${out.length} problem(s) in ${items.length} captured objects:\n` + out.join('\n'));
		}
		console.log(`${items.length} captured objects type-check against the SDK`);
	} finally {
		if (process.env.AL_KEEP_TS) console.log('kept', dir);
		else rmSync(dir, { recursive: true, force: true });
	}
});
