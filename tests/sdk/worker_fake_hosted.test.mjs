// Self-test of the scripted fake of the hosted API (fake_hosted.mjs, a test
// double): the official SDK is the authority on shapes, so its own methods
// and its own EnvironmentWorker must work against the fake unchanged. If the
// fake drifts from what the SDK expects (a 412 body the SDK cannot read, a
// page the PageCursor cannot follow, an SSE frame its decoder drops), this
// fails, and the fault tests built on the fake stop meaning anything.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHosted } from './fake_hosted.mjs';

const MODULES = process.env.AIRLOCK_NODE_MODULES;
if (!MODULES) {
	console.error('run through make check (AIRLOCK_NODE_MODULES)');
	process.exit(2);
}
const { default: Anthropic } = await import(join(MODULES, '@anthropic-ai/sdk/index.mjs'));

function assert(c, m) {
	if (!c) throw new Error('assertion failed: ' + m);
}
function eq(a, b, m) {
	if (a !== b) throw new Error(`assertion failed: ${m}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
}
async function rejects(p, status, m) {
	try {
		await p;
	} catch (e) {
		eq(e.status, status, m);
		return e;
	}
	throw new Error(`assertion failed: ${m}: no error`);
}

const cases = [];
const test = (name, fn) => cases.push([name, fn]);

test('protocol shapes through the SDK methods', async () => {
	const f = new FakeHosted({ sessions: [{ calls: [{ name: 'bash', input: { command: 'echo hi' } }] }], pageSize: 2 });
	await f.start();
	try {
		const envc = new Anthropic({ apiKey: null, authToken: f.environmentKey, baseURL: f.baseURL, maxRetries: 0 });
		const w = await envc.beta.environments.work.poll(f.environmentId, { block_ms: 999, 'Anthropic-Worker-ID': 'self-test' });
		eq(w.type, 'work', 'work type');
		eq(w.data.type, 'session', 'session work');
		const secret = JSON.parse(Buffer.from(w.secret, 'base64url').toString('utf8'));
		assert(secret.sessions_token.startsWith('sk-ant-sess-'), 'sessions_token in the secret');
		eq(secret.api_base_url, f.baseURL, 'api_base_url in the secret');
		eq(await envc.beta.environments.work.poll(f.environmentId, { block_ms: 1 }), null, 'an empty queue polls as null');

		const acked = await envc.beta.environments.work.ack(w.id, { environment_id: f.environmentId });
		eq(acked.state, 'starting', 'ack');
		eq(acked.secret, null, 'secret only on poll');
		await rejects(envc.beta.environments.work.ack(w.id, { environment_id: f.environmentId }), 409, 'second ack');

		const item = new Anthropic({ apiKey: null, authToken: secret.sessions_token, baseURL: f.baseURL, maxRetries: 0 });
		await rejects(item.beta.environments.work.poll(f.environmentId, {}), 401, 'the sessions token cannot poll');
		const hb = await item.beta.environments.work.heartbeat(w.id, { environment_id: f.environmentId, expected_last_heartbeat: 'NO_HEARTBEAT' });
		eq(hb.type, 'work_heartbeat', 'heartbeat type');
		eq(hb.state, 'active', 'active after the first beat');
		assert(hb.lease_extended, 'lease extended');
		const e412 = await rejects(
			item.beta.environments.work.heartbeat(w.id, { environment_id: f.environmentId, expected_last_heartbeat: 'NO_HEARTBEAT' }),
			412,
			'a stale expectation',
		);
		eq(e412.error.type, 'error', '412 body type');
		eq(e412.error.error.details.current_state.last_heartbeat, hb.last_heartbeat, '412 carries the current lease');
		eq(e412.error.error.details.error_code, 'heartbeat_precondition_failed', '412 error_code');

		const s = f.session();
		const sess = await item.beta.sessions.retrieve(s.id);
		eq(sess.status, 'running', 'session status');
		await rejects(item.beta.sessions.retrieve('sesn_nope'), 404, 'unknown session');

		// History through the PageCursor (page size 2 forces next_page).
		const hist = [];
		for await (const ev of item.beta.sessions.events.list(s.id, { limit: 1000 })) hist.push(ev);
		eq(hist.map((e) => e.type).join(','), 'user.message,session.status_running,agent.tool_use', 'history over pages');
		assert(f.requestsTo(/\/events$/, 'GET').length >= 2, 'more than one page was read');

		// The live stream sees the next events; a result moves the agent on.
		const stream = await item.beta.sessions.events.stream(s.id);
		const seen = [];
		const reader = (async () => {
			for await (const ev of stream) {
				seen.push(ev.type);
				if (ev.type === 'session.status_idle') break;
			}
		})();
		await item.beta.sessions.events.send(s.id, { events: [{ type: 'user.tool_result', tool_use_id: hist[2].id, content: [{ type: 'text', text: 'hi' }] }] });
		await reader;
		eq(seen.join(','), 'user.tool_result,agent.message,session.status_idle', 'live events after attach, none replayed');
		f.checkExactlyOnce();

		const stopped = await envc.beta.environments.work.stop(w.id, { environment_id: f.environmentId, force: true });
		eq(stopped.state, 'stopped', 'force stop');
		const e409 = await rejects(envc.beta.environments.work.stop(w.id, { environment_id: f.environmentId }), 409, 'second stop');
		eq(e409.error.error.type, 'conflict_error', '409 type');
		await rejects(envc.beta.environments.work.stop('work_nope', { environment_id: f.environmentId }), 404, 'unknown item');
		const bad = new Anthropic({ apiKey: null, authToken: 'sk-ant-wrong', baseURL: f.baseURL, maxRetries: 0 });
		await rejects(bad.beta.environments.work.poll(f.environmentId, {}), 401, 'a wrong key');
	} finally {
		await f.stop();
	}
});

// The SDK's EnvironmentWorker completes a scripted session on the fake, also
// under every fault the worker fault tests use. Its answers are counted by
// the fake.
async function sdkWorkerRun(faults, calls, extra = {}) {
	const f = new FakeHosted({ sessions: [{ calls }], ttlSeconds: 2, faults, ...extra });
	await f.start();
	const workdir = mkdtempSync(join(tmpdir(), 'al-fake-sdk-'));
	const ctrl = new AbortController();
	const c = new Anthropic({ apiKey: 'unused', baseURL: f.baseURL, maxRetries: 2 });
	const worker = c.beta.environments.work.worker({ environmentId: f.environmentId, environmentKey: f.environmentKey, workdir, maxIdleMs: 300, signal: ctrl.signal });
	const running = worker.run().catch((e) => {
		if (!ctrl.signal.aborted) throw e;
	});
	try {
		await f.waitFor(() => f.allDone(), 'the turn to end', 25000);
		await new Promise((r) => setTimeout(r, 300));
		f.checkExactlyOnce();
		return { f, workdir };
	} finally {
		ctrl.abort();
		await running;
		await f.stop();
		rmSync(workdir, { recursive: true, force: true });
	}
}

const calls = [
	{ name: 'bash', input: { command: 'echo one >> evidence.txt; echo out-1' } },
	{ name: 'write', input: { file_path: 'w.txt', content: 'written' } },
	{ name: 'read', input: { file_path: 'w.txt' } },
	{ name: 'bash', input: { command: 'echo two >> evidence.txt; cat evidence.txt' } },
];

test('the SDK worker completes a session on the fake', async () => {
	const { f } = await sdkWorkerRun({}, calls);
	const rs = f.results();
	eq(rs.length, 4, 'four results');
	assert(JSON.stringify(rs[3].content).includes('one') && JSON.stringify(rs[3].content).includes('two'), 'bash ran in order');
	assert(f.requestsTo(/\/heartbeat$/).every((r) => r.auth.startsWith('session:')), 'heartbeats with the sessions token');
	assert(f.requestsTo(/^\/v1\/sessions\//).every((r) => r.auth.startsWith('session:')), 'session calls with the sessions token');
	assert(f.requestsTo(/\/poll$/).every((r) => r.auth === 'env'), 'polls with the environment key');
	eq(f.item().state, 'stopped', 'the worker stopped the item at the end');
});

test('the SDK worker under duplicate events, a cut stream and failing result posts', async () => {
	const { f } = await sdkWorkerRun({ duplicateEvents: true, cutStreamAfter: [1, 2, 1, 2], failResultPosts: 2, failResultStatus: 503 }, calls);
	assert(f.counts.streamConns >= 2, 'the stream was reconnected');
	eq(f.requests.filter((r) => r.failed).length, 2, 'two result posts failed');
});

test('the SDK worker: null polls and a 429 first', async () => {
	const t0 = Date.now();
	const { f } = await sdkWorkerRun({ nullPolls: 1, poll429: 1, retryAfter: 0 }, calls.slice(0, 1));
	const polls = f.requestsTo(/\/poll$/);
	eq(polls[0].status, 429, 'first poll 429');
	assert(polls.some((p) => p.status === 200 && p.work), 'a later poll claimed the item');
	assert(Date.now() - t0 < 20000, 'finished');
});

test('the SDK worker: a healthcheck item and a 404 session before the real one', async () => {
	const { f } = await sdkWorkerRun({}, calls.slice(0, 1), { extraItems: [{ type: 'healthcheck' }, { type: 'session', id: 'sesn_gone' }] });
	const [hc, gone] = [...f.items.values()];
	eq(hc.data.type, 'healthcheck', 'first item');
	eq(hc.state, 'stopped', 'healthcheck item stopped by the worker');
	assert(f.requests.some((r) => r.path === '/v1/sessions/sesn_gone' && r.status === 404), 'the missing session answered 404');
	eq(gone.state, 'stopped', 'the failed item stopped by the worker');
});

test('the SDK worker: an operator force-stop mid-session (its own stop gets 409)', async () => {
	const f = new FakeHosted({ sessions: [{ calls }], ttlSeconds: 2, faults: { stopAfterResults: 1 } });
	await f.start();
	const workdir = mkdtempSync(join(tmpdir(), 'al-fake-sdk-'));
	const ctrl = new AbortController();
	const c = new Anthropic({ apiKey: 'unused', baseURL: f.baseURL, maxRetries: 0 });
	const worker = c.beta.environments.work.worker({ environmentId: f.environmentId, environmentKey: f.environmentKey, workdir, maxIdleMs: 300, signal: ctrl.signal });
	const running = worker.run().catch((e) => {
		if (!ctrl.signal.aborted) throw e;
	});
	try {
		await f.waitFor(() => f.requestsTo(/\/stop$/).some((r) => r.status === 409), 'the 409 on stop', 10000);
		eq(f.results().length, 1, 'one answer before the stop');
	} finally {
		ctrl.abort();
		await running;
		await f.stop();
		rmSync(workdir, { recursive: true, force: true });
	}
});

test('the SDK worker: failing heartbeats let the lease lapse; it lets go without stopping the item', async () => {
	const f = new FakeHosted({ sessions: [{ calls: [{ name: 'bash', input: { command: 'sleep 6; echo slow' } }] }], ttlSeconds: 2, faults: { heartbeatFailAfter: 1, requeueOnLeaseLoss: false } });
	await f.start();
	const workdir = mkdtempSync(join(tmpdir(), 'al-fake-sdk-'));
	const ctrl = new AbortController();
	const c = new Anthropic({ apiKey: 'unused', baseURL: f.baseURL, maxRetries: 0 });
	const worker = c.beta.environments.work.worker({ environmentId: f.environmentId, environmentKey: f.environmentKey, workdir, maxIdleMs: 300, signal: ctrl.signal });
	const running = worker.run().catch((e) => {
		if (!ctrl.signal.aborted) throw e;
	});
	try {
		await f.waitFor(() => f.item().lostClaims.length > 0, 'the lapse', 10000);
		const beats = () => f.requestsTo(/\/heartbeat$/).length;
		const n = beats();
		await new Promise((r) => setTimeout(r, 2500));
		assert(beats() <= n + 1, 'it stopped heartbeating');
		eq(f.item().stopsAfterLoss.length, 0, 'no stop after the lapse');
	} finally {
		ctrl.abort();
		await running;
		await f.stop();
		rmSync(workdir, { recursive: true, force: true });
	}
});

test('the SDK worker: a 412 aborts its session and it does not stop the item', async () => {
	// ttl 2 s: beats every second; the 2nd beat is refused while `sleep 2` runs.
	const f = new FakeHosted({ sessions: [{ calls: [{ name: 'bash', input: { command: 'sleep 2; echo slow' } }] }], ttlSeconds: 2, faults: { heartbeat412At: 2, requeueOnLeaseLoss: false } });
	await f.start();
	const workdir = mkdtempSync(join(tmpdir(), 'al-fake-sdk-'));
	const ctrl = new AbortController();
	const c = new Anthropic({ apiKey: 'unused', baseURL: f.baseURL, maxRetries: 0 });
	const worker = c.beta.environments.work.worker({ environmentId: f.environmentId, environmentKey: f.environmentKey, workdir, maxIdleMs: 300, signal: ctrl.signal });
	const running = worker.run().catch((e) => {
		if (!ctrl.signal.aborted) throw e;
	});
	try {
		await f.waitFor(() => f.requestsTo(/\/heartbeat$/).some((r) => r.status === 412), 'the 412', 10000);
		await new Promise((r) => setTimeout(r, 2500));
		eq(f.item().stopsAfterLoss.length, 0, 'no stop after the lease was lost');
		assert(f.item().state !== 'stopped', 'item not stopped');
		assert([...f.answers().values()].every((n) => n <= 1), 'no call answered twice');
	} finally {
		ctrl.abort();
		await running;
		await f.stop();
		rmSync(workdir, { recursive: true, force: true });
	}
});

let ok = true;
for (const [name, fn] of cases) {
	try {
		await fn();
		console.log(`ok ${name}`);
	} catch (e) {
		ok = false;
		console.error(`FAIL ${name}: ${e.stack || e}`);
	}
}
process.exit(ok ? 0 : 1);
