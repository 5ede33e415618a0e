// The work queue through the SDK's own methods: poll, ack, heartbeat (the
// NO_HEARTBEAT claim and a 412 on a stale expectation), the sessions token
// from the item's secret as the per-item credential, a tool result sent with
// it, stop (force) and 409 on a second stop. Work is enqueued by the agent
// loop when a user.message reaches a session whose agent has the built-in
// toolset; the model is the scripted stub (a test double).
import { spawnSync } from 'node:child_process';
import { run, assert, assertEq, BIN } from './harness.mjs';

if (spawnSync(BIN, ['model-stub', '--help']).status !== 0) {
	console.log('skip: this build has no model-stub (the agent branch provides it)');
	process.exit(77);
}

// The model-stub script format (docs/model-stub.md on the agent branch): steps.
const script = {
	steps: [
		{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo hi' } }], stop_reason: 'tool_use' },
		{ content: [{ type: 'text', text: 'done' }], stop_reason: 'end_turn' },
	],
};

async function until(fn, what, ms = 15000) {
	const end = Date.now() + ms;
	for (;;) {
		const v = await fn();
		if (v) return v;
		if (Date.now() > end) throw new Error('timed out waiting for ' + what);
		await new Promise((r) => setTimeout(r, 100));
	}
}

await run('sdk work queue methods', { script }, async (h) => {
	const c = h.client;
	const A = h.Anthropic;
	const agent = await c.beta.agents.create({ name: 'w', model: 'claude-sonnet-4-5', tools: [{ type: 'agent_toolset_20260401' }] });
	const env = await c.beta.environments.create({ name: 'perimeter', config: { type: 'self_hosted' } });
	const key = await c.post(`/v1/environments/${env.id}/keys`, { body: {} });
	const s = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id });
	const other = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id });
	await c.beta.sessions.events.send(s.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'go' }] }] });

	const wk = new A({ apiKey: null, authToken: key.key, baseURL: h.baseURL, maxRetries: 0 });
	const work = await until(() => wk.beta.environments.work.poll(env.id, { block_ms: 999, 'Anthropic-Worker-ID': 'sdk' }), 'work');
	assertEq(work.type, 'work', 'work type');
	assertEq(work.data.type, 'session', 'data type');
	assertEq(work.data.id, s.id, 'work for the session');
	assertEq(work.environment_id, env.id, 'environment_id');
	const secret = JSON.parse(Buffer.from(work.secret, 'base64url').toString('utf8'));
	assert(secret.sessions_token.startsWith('alk_sess_'), 'sessions token in the secret');

	const acked = await wk.beta.environments.work.ack(work.id, { environment_id: env.id });
	assertEq(acked.state, 'starting', 'ack');
	assertEq(acked.secret, null, 'secret only on poll');

	const item = new A({ apiKey: null, authToken: secret.sessions_token, baseURL: h.baseURL, maxRetries: 0 });
	const hb = await item.beta.environments.work.heartbeat(work.id, { environment_id: env.id, expected_last_heartbeat: 'NO_HEARTBEAT' });
	assertEq(hb.type, 'work_heartbeat', 'heartbeat type');
	assert(hb.lease_extended, 'lease extended');
	assertEq(hb.state, 'active', 'active after the first beat');
	try {
		await item.beta.environments.work.heartbeat(work.id, { environment_id: env.id, expected_last_heartbeat: 'NO_HEARTBEAT' });
		throw new Error('stale heartbeat accepted');
	} catch (e) {
		assertEq(e.status, 412, 'stale heartbeat status');
		assertEq(e.errorCode, 'heartbeat_precondition_failed', 'errorCode');
		assertEq(e.error.error.details.current_state.last_heartbeat, hb.last_heartbeat, 'current_state');
	}
	const hb2 = await item.beta.environments.work.heartbeat(work.id, { environment_id: env.id, expected_last_heartbeat: hb.last_heartbeat });
	assert(hb2.last_heartbeat !== hb.last_heartbeat, 'a new beat');

	assertEq((await item.beta.sessions.retrieve(s.id)).id, s.id, 'token reads its session');
	try {
		await item.beta.sessions.retrieve(other.id);
		throw new Error('token read another session');
	} catch (e) {
		assert(e instanceof A.PermissionDeniedError, 'another session is 403: ' + e);
	}

	const use = await until(async () => {
		for await (const ev of item.beta.sessions.events.list(s.id, { limit: 1000 })) if (ev.type === 'agent.tool_use') return ev;
		return null;
	}, 'agent.tool_use');
	await item.beta.sessions.events.send(s.id, {
		events: [{ type: 'user.tool_result', tool_use_id: use.id, is_error: false, content: [{ type: 'text', text: 'hi' }] }],
	});
	await until(async () => {
		for await (const ev of c.beta.sessions.events.list(s.id, { limit: 1000 }))
			if (ev.type === 'session.status_idle' && ev.stop_reason?.type === 'end_turn') return true;
		return false;
	}, 'end_turn');

	const stopped = await item.beta.environments.work.stop(work.id, { environment_id: env.id, force: true });
	assertEq(stopped.state, 'stopped', 'force stop');
	try {
		await wk.beta.environments.work.stop(work.id, { environment_id: env.id, force: true });
		throw new Error('second stop accepted');
	} catch (e) {
		assert(e instanceof A.ConflictError, 'second stop is 409: ' + e);
	}
	const listed = [];
	for await (const w of wk.beta.environments.work.list(env.id)) listed.push(w);
	assert(listed.some((w) => w.id === work.id && w.state === 'stopped'), 'work list');
});
