// Fault tests of our worker (`airlock worker poll`) against the scripted fake
// of the hosted API (fake_hosted.mjs, a test double; its self-test runs the
// SDK's own worker on it). Each case scripts a session of tool calls, injects
// one kind of fault, and asserts:
//   - every agent.tool_use answered by exactly one user.tool_result (counted
//     in the fake's stored history, where a second answer would land);
//   - every bash command ran at most once (each appends a line to ev.txt in
//     the session's workspace) and, when answered with its output, exactly once;
//   - the worker's audit chain verifies (`airlock audit verify`);
//   - neither the environment key nor a sessions token in its output.
import { mkdtempSync, rmSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHosted } from './fake_hosted.mjs';
import { Worker, requireWorker, runCases, assert, eq, until, sleep, assertNoSecret, procTexts } from './worker_lib.mjs';

requireWorker();
const root = mkdtempSync(join(tmpdir(), 'al-wfault-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const scratch = (name) => {
	const d = join(root, name.replace(/[^a-z0-9]+/gi, '-'));
	mkdirSync(d, { recursive: true });
	return d;
};

const bash = (tag, extra = '') => ({ name: 'bash', input: { command: `echo ${tag} >> ev.txt; ${extra}echo out-${tag}` } });
const calls4 = [bash('a'), { name: 'write', input: { file_path: 'w.txt', content: 'written-by-write' } }, { name: 'read', input: { file_path: 'w.txt' } }, bash('b')];

// Runs one scripted session through a fresh fake and worker; body(f, w, s)
// may inject things while it runs. Returns after the checks above.
async function scenario(dir, { calls = calls4, faults = {}, fake = {}, args = [], during, timeout = 25000, tags } = {}) {
	const f = new FakeHosted({ sessions: [{ calls }], ttlSeconds: 2, ...fake, faults });
	await f.start();
	const w = new Worker({ dir, baseURL: f.baseURL, environmentId: f.environmentId, environmentKey: f.environmentKey, args });
	const s = f.session();
	try {
		w.start();
		if (during) await w.alive(during(f, w, s));
		await w.alive(f.waitFor(() => f.allDone(), 'the turn to end', timeout));
		await sleep(600); // a late duplicate answer would land now
		f.checkExactlyOnce();
		const expect = tags ?? calls.filter((c) => c.name === 'bash').map((c) => c.input.command.split(' ')[1]);
		eq(w.lines(s.id, 'ev.txt').join(','), expect.join(','), 'each bash command ran exactly once, in order');
		for (const r of f.results()) {
			const call = s.events.find((e) => e.id === r.tool_use_id);
			if (call.name === 'bash' && !r.is_error) assert(JSON.stringify(r.content).includes('out-'), `bash result carries its output: ${JSON.stringify(r.content)}`);
		}
		const exit = await w.stop();
		eq(exit.code, 0, 'worker exit status after SIGTERM');
		const audit = w.verifyAudit();
		assertNoSecret(w.log, f.secrets(), 'the worker output');
		w.assertClean();
		assertNoSecret(audit, f.secrets(), 'the audit log');
		return { f, w, s };
	} catch (e) {
		e.logs = () => w.logs() + `\n--- fake requests ---\n` + f.requests.map((r) => `${r.method} ${r.path} ${JSON.stringify(r.query)} ${r.auth} -> ${r.status}`).join('\n');
		throw e;
	} finally {
		await w.stop();
		await f.stop();
	}
}

const cases = [];
const test = (name, fn) => cases.push([name, fn]);

test('a plain session: four calls, each answered once with the sessions token', async (dir) => {
	const { f } = await scenario(dir);
	const rs = f.results();
	assert(JSON.stringify(rs[2].content).includes('written-by-write'), 'read saw the write');
	assert(f.requestsTo(/^\/v1\/sessions\//).every((r) => r.auth.startsWith('session:')), 'session calls use the sessions token');
	assert(f.requestsTo(/\/poll$/).every((r) => r.auth === 'env'), 'polls use the environment key');
	assert(f.requestsTo(/\/poll$/).every((r) => r.headers['anthropic-worker-id']), 'polls carry Anthropic-Worker-ID');
	const beats = f.requestsTo(/\/heartbeat$/);
	assert(beats.length > 0 && beats[0].query.expected_last_heartbeat === 'NO_HEARTBEAT', 'the first beat claims with NO_HEARTBEAT');
	eq(f.item().state, 'stopped', 'the worker stopped the item after end_turn + max-idle');
});

// Lease loss while a call runs: ev.txt gets "a" when the first call starts;
// it then waits for the test's "go" file (written once the lease is lost), so
// the loss lands mid-call. The fake requeues the item; the same worker claims
// it again and finishes the session. Never stopped by the claim that lost it,
// nothing answered twice, nothing run twice.
async function leaseLoss(dir, faults, lost) {
	const gate = 'for i in $(seq 1 150); do [ -e go ] && break; sleep 0.1; done; ';
	const calls = [bash('a', gate), bash('b')];
	const { f } = await scenario(dir, {
		calls,
		faults,
		fake: { requeueDelayMs: 2000 },
		timeout: 40000,
		during: async (f, w, s) => {
			await f.waitFor(() => f.item().lostClaims.length > 0 && lost(f), 'the lease loss', 30000);
			await until(() => w.lines(s.id, 'ev.txt').length > 0 || f.results().length > 0, 'the first call started');
			w.touch(s.id, 'go');
		},
	});
	if (process.env.FAULT_VERBOSE) console.log(JSON.stringify(f.results().map((r) => [r.is_error, r.content])));
	const item = f.item();
	eq(item.stopsAfterLoss.length, 0, 'no stop from the claim that lost its lease: ' + JSON.stringify(item.stopsAfterLoss));
	assert(item.claim >= 2, 'the item was claimed again after the lease loss');
	const sid = f.session().id;
	const late = f.requests.filter((r) => r.auth === `session:${sid}:1` && r.t > item.lostAt + 300 && !/\/heartbeat$/.test(r.path));
	eq(late.map((r) => `${r.method} ${r.path}`).join(', '), '', 'nothing but a last heartbeat with the lost claim after the loss');
	return f;
}

test('a 412 on a heartbeat aborts the session, the item is not stopped by us, nothing answered twice', async (dir) => {
	await leaseLoss(dir, { heartbeat412At: 2 }, (f) => f.requestsTo(/\/heartbeat$/).some((r) => r.status === 412));
});

// The lease lost while a call runs, at the heartbeat after the first command
// started (the fault is set then, to `item.beats + 1`): that command writes
// "a" to ev.txt, waits for "go" (written once the worker saw the loss), then
// appends to done.txt, which must stay empty: the call was cancelled. The
// claim that lost the lease posts no result and sends no stop; the fake
// requeues the item, the same worker claims it again, and its journal answers
// the cancelled call once (with the cancellation error, never by running it
// again). The audit log holds a lease.lost record with the reason.
async function lossMidCall(dir, fault, reason) {
	const gate = 'for i in $(seq 1 150); do [ -e go ] && break; sleep 0.1; done; echo a >> done.txt; ';
	const calls = [bash('a', gate), bash('b')];
	const { f, w, s } = await scenario(dir, {
		calls,
		fake: { requeueDelayMs: 2000 },
		timeout: 40000,
		during: async (f, w, s) => {
			await until(() => w.lines(s.id, 'ev.txt').length > 0, 'the first call started');
			Object.assign(f.faults, fault(f.item()));
			await f.waitFor(() => f.item().lostClaims.length > 0, 'the lease loss', 15000);
			// Once: the next claim counts its beats from 1 again.
			Object.assign(f.faults, { leaseNotExtendedAt: 0, heartbeatRejectAt: 0 });
			await until(() => /lease lost/.test(w.log), 'the worker saw the loss');
			await sleep(300);
			w.touch(s.id, 'go');
			await sleep(700);
			eq(w.lines(s.id, 'done.txt').length, 0, 'the running call was cancelled: its command never completed');
		},
	});
	const item = f.item();
	const sid = s.id;
	eq(w.lines(sid, 'done.txt').length, 0, 'the cancelled command never completed, not even later');
	eq(item.stopsAfterLoss.length, 0, 'no stop from the claim that lost its lease: ' + JSON.stringify(item.stopsAfterLoss));
	eq(f.requestsTo(/\/stop$/).filter((r) => r.claim === 1).length, 0, 'no stop request from the first claim');
	assert(item.claim >= 2, 'the item was claimed again after the lease loss');
	const late = f.requests.filter((r) => r.auth === `session:${sid}:1` && r.t > item.lostAt + 300 && !/\/heartbeat$/.test(r.path));
	eq(late.map((r) => `${r.method} ${r.path}`).join(', '), '', 'nothing but a last heartbeat with the lost claim after the loss');
	const first = s.events.find((e) => e.type === 'agent.tool_use');
	const posts = f.requestsTo(/\/events$/, 'POST').filter((r) => r.status === 200 && (r.body?.events ?? []).some((e) => e.tool_use_id === first.id));
	eq(posts.map((r) => r.auth).join(','), `session:${sid}:2`, 'the cancelled call answered once, by the next claim, not by the one that lost the lease');
	const r0 = f.results().find((r) => r.tool_use_id === first.id);
	assert(r0.is_error && /cancel/i.test(JSON.stringify(r0.content)), 'answered with the cancellation: ' + JSON.stringify(r0));
	const recs = w
		.verifyAudit()
		.split('\n')
		.filter((l) => l.includes('"lease.lost"'));
	assert(recs.length === 1 && reason.test(recs[0]), `one lease.lost audit record with the reason ${reason}: ${recs.join('\n')}`);
	return f;
}

test('lease_extended:false mid-call: a lost lease (not a stop): the call is cancelled, its result not posted, the item not stopped', async (dir) => {
	await lossMidCall(dir, (item) => ({ leaseNotExtendedAt: item.beats + 1 }), /lease not extended/);
});

test('a heartbeat refused with 404 mid-call: treated as a lost lease', async (dir) => {
	await lossMidCall(dir, (item) => ({ heartbeatRejectAt: item.beats + 1, heartbeatRejectStatus: 404 }), /heartbeat rejected \(404\)/);
});

test('a heartbeat refused with 401 (sessions token revoked) mid-call: treated as a lost lease', async (dir) => {
	await lossMidCall(dir, (item) => ({ heartbeatRejectAt: item.beats + 1, heartbeatRejectStatus: 401 }), /heartbeat rejected \(401\)/);
});

test('heartbeats fail until the lease lapses (TTL): the session is let go, the item not stopped by us', async (dir) => {
	await leaseLoss(dir, { heartbeatFailAfter: 1, heartbeatFailStatus: 503 }, () => true);
});

test('kill -9 the worker while its result post keeps failing, restart it: the journaled result goes out once, the command is not rerun', async (dir) => {
	const f = new FakeHosted({ sessions: [{ calls: [bash('a'), bash('b')] }], ttlSeconds: 2, faults: { failResultPosts: 1000, failResultStatus: 503 } });
	await f.start();
	const w = new Worker({ dir, baseURL: f.baseURL, environmentId: f.environmentId, environmentKey: f.environmentKey });
	const s = f.session();
	try {
		w.start();
		await w.alive(f.waitFor(() => f.requests.filter((r) => r.failed).length >= 2, 'two failed result posts'));
		eq((await w.kill('SIGKILL')).signal, 'SIGKILL', 'worker killed');
		f.faults.failResultPosts = 0;
		w.start(); // same --state-dir: the journal holds the result
		await w.alive(f.waitFor(() => f.allDone(), 'the turn to end', 25000));
		await sleep(500);
		f.checkExactlyOnce();
		eq(w.lines(s.id, 'ev.txt').join(','), 'a,b', 'the first command did not run again');
		const r0 = f.results()[0];
		assert(JSON.stringify(r0.content).includes('out-a') && !r0.is_error, 'the journaled result, not an error: ' + JSON.stringify(r0));
		assert(f.item().claim >= 2, 'claimed again after the lease lapsed');
		eq((await w.stop()).code, 0, 'exit status after SIGTERM');
		w.verifyAudit();
		assertNoSecret(w.log, f.secrets(), 'the worker output');
		w.assertClean();
	} catch (e) {
		e.logs = () => w.logs();
		throw e;
	} finally {
		await w.stop();
		await f.stop();
	}
});

test('duplicate events on the stream and in history', async (dir) => {
	const { f } = await scenario(dir, { faults: { duplicateEvents: true } });
	eq(f.results().length, 4, 'four answers for four calls');
});

test('the stream is cut (reconnect, reconcile with history)', async (dir) => {
	const { f } = await scenario(dir, { faults: { cutStreamAfter: [1, 2, 1, 2] } });
	assert(f.counts.streamConns >= 3, `the stream was reopened (${f.counts.streamConns} connections)`);
});

test('result posts fail transiently (503, then 500) and are retried, answered once', async (dir) => {
	const { f } = await scenario(dir, {
		calls: calls4.slice(0, 2),
		faults: { failResultPosts: 1, failResultStatus: 503 },
		during: async (f) => {
			await f.waitFor(() => f.requests.filter((r) => r.failed).length >= 1, 'a failed post');
			Object.assign(f.faults, { failResultPosts: 2, failResultStatus: 500 });
		},
	});
	eq(f.requests.filter((r) => r.failed).map((r) => r.status).join(','), '503,500', 'two result posts failed');
});

test('result posts fail with a connection reset and are retried, answered once', async (dir) => {
	const { f } = await scenario(dir, { calls: calls4.slice(0, 2), faults: { failResultPosts: 2, failResultStatus: 'reset' } });
	eq(f.requests.filter((r) => r.failed).length, 2, 'two result posts reset');
});

// 'lost': the fake stores the result, then destroys the socket before any
// byte of the response, the case where a blind retry (ours, or libcurl's
// silent re-send on a reused connection) answers the call twice.
test('result posts are stored but their answers lost: confirmed from history, never posted twice', async (dir) => {
	const { f, w } = await scenario(dir, { calls: calls4, faults: { failResultPosts: 3, failResultStatus: 'lost' } });
	eq(f.requests.filter((r) => r.failed).length, 3, 'three result posts stored, their answers lost');
	const posts = f.requests.filter((r) => r.method === 'POST' && r.body?.events?.some((e) => e.type === 'user.tool_result'));
	eq(posts.length, 4, `one post per call, none repeated (${posts.length})`);
	// OCSF records: our fields sit in a nested object; match them in the text.
	const answered = readFileSync(w.audit, 'utf8').split('\n').filter((l) => l.includes('"event":"tool.answered"'));
	eq(answered.length, 4, 'one tool.answered record per call');
	eq(answered.filter((l) => l.includes('"how":"confirmed_by_history"')).length, 3, 'the three lost answers are audited as confirmed by history');
});

test('result answers lost and the stored results not on the stream: found by reading history, never posted twice', async (dir) => {
	const { f, w } = await scenario(dir, { calls: calls4.slice(0, 2), faults: { failResultPosts: 2, failResultStatus: 'lost', lostUnstreamed: true } });
	eq(f.requests.filter((r) => r.failed).length, 2, 'two result posts stored, their answers lost');
	const posts = f.requests.filter((r) => r.method === 'POST' && r.body?.events?.some((e) => e.type === 'user.tool_result'));
	eq(posts.length, 2, `one post per call, none repeated (${posts.length})`);
	assert((w.log.match(/how=confirmed_by_history/g) || []).length === 2, 'both confirmed by history (log)');
	const lost = new Set(posts.map((p) => p.t));
	const lists = f.requestsTo(/\/events$/).filter((r) => r.method === 'GET' && [...lost].some((t) => r.t > t));
	assert(lists.length >= 2, `history was read after the lost posts (${lists.length} lists)`);
	const answered = readFileSync(w.audit, 'utf8').split('\n').filter((l) => l.includes('"event":"tool.answered"'));
	eq(answered.filter((l) => l.includes('"how":"confirmed_by_history"')).length, 2, 'audited as confirmed by history');
});

test('a lost answer that history does not show yet: the server refuses the second post, taken as answered', async (dir) => {
	const { f, w } = await scenario(dir, { calls: calls4.slice(0, 2), faults: { failResultPosts: 1, failResultStatus: 'lost', lostHidden: true, refuseDuplicates: true } });
	const posts = f.requests.filter((r) => r.method === 'POST' && r.body?.events?.some((e) => e.type === 'user.tool_result'));
	eq(posts.map((p) => p.status).join(','), '-1,400,200', 'lost, refused as a duplicate, then the second call');
	assert((w.log.match(/how=confirmed_by_server/g) || []).length === 1, 'confirmed by the server (log)');
	const answered = readFileSync(w.audit, 'utf8').split('\n').filter((l) => l.includes('"event":"tool.answered"'));
	eq(answered.length, 2, 'one tool.answered record per call');
	eq(answered.filter((l) => l.includes('"how":"confirmed_by_server"')).length, 1, 'audited as confirmed by the server');
	assert(!readFileSync(w.audit, 'utf8').includes('tool.answer_failed'), 'no answer_failed record');
});

test('null polls and a 429 with retry-after, then work', async (dir) => {
	const { f } = await scenario(dir, { calls: [bash('a')], faults: { poll429: 1, retryAfter: 1, nullPolls: 2 } });
	const polls = f.requestsTo(/\/poll$/);
	eq(polls[0].status, 429, 'first poll rate limited');
	assert(polls[1].t - polls[0].t >= 900, `the worker waited for retry-after (${polls[1].t - polls[0].t} ms)`);
	assert(polls.filter((p) => p.status === 200 && !p.work).length >= 1, 'null polls answered');
	assert(polls.every((p) => Number(p.query.block_ms) >= 1 && Number(p.query.block_ms) <= 999), 'block_ms within 1..999');
});

test('a healthcheck item and an item whose session answers 404, then the real session', async (dir) => {
	const { f, w } = await scenario(dir, { calls: [bash('a')], fake: { extraItems: [{ type: 'healthcheck' }, { type: 'session', id: 'sesn_gone' }] } });
	const [hc, gone] = [...f.items.values()];
	eq(hc.data.type, 'healthcheck', 'first item');
	assert(hc.state !== 'queued' || hc.claim === 1, 'the healthcheck item was claimed');
	assert(!f.requests.some((r) => r.path.startsWith(`/v1/sessions/${hc.data.id}`)), 'no session calls for a healthcheck item');
	assert(f.requests.some((r) => r.path.startsWith('/v1/sessions/sesn_gone') && r.status === 404), 'the missing session answered 404');
	eq(gone.state, 'stopped', 'the failed item was stopped');
	assert(w.runs.length === 1, 'one worker process served all three');
});

test('an operator force-stops the item mid-session: the worker ends it, takes the 409 on its own stop, keeps polling', async (dir) => {
	const f = new FakeHosted({ sessions: [{ calls: calls4 }], ttlSeconds: 2, faults: { stopAfterResults: 1 } });
	await f.start();
	const w = new Worker({ dir, baseURL: f.baseURL, environmentId: f.environmentId, environmentKey: f.environmentKey });
	try {
		w.start();
		await w.alive(f.waitFor(() => f.item().stopped_at && f.requestsTo(/\/heartbeat$/).some((r) => r.t > Date.parse(f.item().stopped_at.slice(0, 23) + 'Z')), 'a heartbeat after the stop', 15000));
		const n = f.requestsTo(/\/poll$/).length;
		await w.alive(f.waitFor(() => f.requestsTo(/\/poll$/).length > n + 1, 'polling on after the stop', 15000));
		eq(f.results().length, 1, 'the one answered call');
		assert([...f.answers().values()].every((k) => k <= 1), 'nothing answered twice');
		assert(f.requestsTo(/\/stop$/).every((r) => r.status === 409), 'its stop (if any) got 409');
		eq((await w.stop()).code, 0, 'exit status after SIGTERM');
		w.verifyAudit();
		assertNoSecret(w.log, f.secrets(), 'the worker output');
		w.assertClean();
	} catch (e) {
		e.logs = () => w.logs();
		throw e;
	} finally {
		await w.stop();
		await f.stop();
	}
});

test('`worker run` serves one claimed item from ANTHROPIC_WORK_* (secret only, no key) and exits', async (dir) => {
	const f = new FakeHosted({ sessions: [{ calls: calls4.slice(0, 3) }], ttlSeconds: 2 });
	await f.start();
	// Claim and ack as `poll --on-work` would, then hand the item over.
	const H = { authorization: `Bearer ${f.environmentKey}`, 'anthropic-beta': 'managed-agents-2026-04-01', 'anthropic-version': '2023-06-01' };
	const item = await (await fetch(`${f.baseURL}/v1/environments/${f.environmentId}/work/poll?block_ms=1`, { headers: H })).json();
	eq((await fetch(`${f.baseURL}/v1/environments/${f.environmentId}/work/${item.id}/ack`, { method: 'POST', headers: H })).status, 200, 'ack');
	const w = new Worker({
		dir,
		baseURL: f.baseURL,
		mode: 'run',
		env: { ANTHROPIC_WORK_ID: item.id, ANTHROPIC_ENVIRONMENT_ID: f.environmentId, ANTHROPIC_SESSION_ID: item.data.id, ANTHROPIC_WORK_SECRET: item.secret },
	});
	try {
		w.start();
		await w.alive(until(() => f.requestsTo(/\/heartbeat$/).length > 0, 'the first heartbeat'));
		const environ = procTexts(w.pid).find((t) => t.pid === w.pid && t.what === 'environ');
		assert(environ && !environ.text.includes(item.secret.slice(0, 20)), 'the work secret is gone from the worker environ');
		const exit = await Promise.race([w.cur.exited, sleep(20000).then(() => null)]);
		assert(exit !== null, 'it exits by itself after end_turn + max-idle');
		eq(exit.code, 0, 'exit status');
		f.checkExactlyOnce();
		eq(f.item().state, 'stopped', 'it stopped the item');
		eq(f.requestsTo(/\/poll$/).length, 1, 'it did not poll (only the test did)');
		assert(f.requests.filter((r) => r.auth !== 'env').every((r) => r.auth.startsWith('session:')), 'everything with the sessions token');
		w.verifyAudit();
		assertNoSecret(w.log, f.secrets(), 'the worker output');
		w.assertClean();
	} catch (e) {
		e.logs = () => w.logs();
		throw e;
	} finally {
		await w.stop();
		await f.stop();
	}
});

test('a 401 on poll stops the worker with exit 1 and a clear message without the key', async (dir) => {
	const f = new FakeHosted({ sessions: [{ calls: [bash('a')] }], faults: { pollStatus: 401 } });
	await f.start();
	const w = new Worker({ dir, baseURL: f.baseURL, environmentId: f.environmentId, environmentKey: f.environmentKey });
	try {
		w.start();
		const exit = await Promise.race([w.cur.exited, sleep(10000).then(() => null)]);
		assert(exit !== null, 'the worker exited on a fatal 401');
		eq(exit.code, 1, 'exit status');
		assert(/401|authenticat|unauthori[sz]ed|rejected|invalid.*key/i.test(w.log), 'a message naming the failure: ' + w.log);
		assertNoSecret(w.log, f.secrets(), 'the worker output');
		w.assertClean();
		assert(f.requestsTo(/\/poll$/).length <= 2, `no retry storm (${f.requestsTo(/\/poll$/).length} polls)`);
		eq(f.requestsTo(/\/ack$/).length, 0, 'nothing acknowledged');
	} catch (e) {
		e.logs = () => w.logs();
		throw e;
	} finally {
		await w.stop();
		await f.stop();
	}
});

await runCases(cases, scratch);
