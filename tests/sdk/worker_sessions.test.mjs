// Our worker (`airlock worker poll`, the real binary) serving full sessions
// on the real `airlock server`: many tool calls per session, several sessions
// at once, an ask/confirm session (allow runs, deny never runs), and the
// worker's audit log verifying afterwards. The model is the scripted stub
// (a TEST DOUBLE for the Messages API); everything else is real: loopback
// HTTP, the journal on disk, each session's sandbox.
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { BIN, assert, assertEq } from './harness.mjs';
import { runAll, until, sleep, listEvents, checkTranscript, lines, scratch, startSession } from './procs.mjs';

// Every tool, twice over, with results the next step can check.
const manyScript = {
	steps: [
		{ content: [{ type: 'tool_use', name: 'write', input: { file_path: 'notes.txt', content: 'alpha\nbeta\ngamma\n' } }] },
		{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'wc -l < notes.txt && export MARK=kept' } }] },
		{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo "mark=$MARK"' } }] },
		{ content: [{ type: 'tool_use', name: 'edit', input: { file_path: 'notes.txt', old_string: 'beta', new_string: 'BETA' } }] },
		{ content: [{ type: 'tool_use', name: 'read', input: { file_path: 'notes.txt' } }] },
		{ content: [{ type: 'tool_use', name: 'grep', input: { pattern: 'BETA' } }] },
		{ content: [{ type: 'tool_use', name: 'glob', input: { pattern: '*.txt' } }] },
		{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'exit 3' } }] },
		{ content: [{ type: 'text', text: 'done: {{last_tool_result}}' }], stop_reason: 'end_turn' },
	],
};
const MANY_CALLS = 8;

// The worker's default sandbox backend (native) unless WS_BACKEND names another.
function startOurWorker(f, env, key, workdir, extra = []) {
	// Commands run as another uid inside the sandbox: the scratch dir (0700
	// from mkdtemp) must let it pass to its workspace.
	chmodSync(f.dir, 0o711);
	const args = ['worker', 'poll', '--base-url', f.baseURL, '--environment', env.id, '--workdir', workdir, '--max-idle', '1', ...(process.env.WS_BACKEND ? ['--backend', process.env.WS_BACKEND] : []), ...extra];
	return f.spawn('worker', args, { ANTHROPIC_ENVIRONMENT_KEY: key.key, ANTHROPIC_BASE_URL: '' });
}

async function setup(f, name, tools) {
	const c = f.client;
	const agent = await c.beta.agents.create({ name, model: 'claude-sonnet-4-5', tools });
	const env = await c.beta.environments.create({ name: `${name}-env`, config: { type: 'self_hosted' } });
	const key = await c.post(`/v1/environments/${env.id}/keys`, { body: {} });
	return { agent, env, key };
}

function auditVerify(file) {
	const r = spawnSync(BIN, ['audit', 'verify', file], { encoding: 'utf8' });
	return r;
}

function auditEvents(file) {
	return lines(file)
		.map((l) => JSON.parse(l))
		.filter((r) => r.airlock && r.airlock.event);
}

async function waitIdle(c, sessionId, ms = 60000) {
	return until(
		async () => {
			const evs = await listEvents(c, sessionId);
			const last = evs.filter((e) => e.type.startsWith('session.status_')).pop();
			return last && last.type === 'session.status_idle' && last.stop_reason?.type === 'end_turn' ? evs : null;
		},
		`session ${sessionId} idle`,
		ms,
	);
}

const text = (r) => r.content.map((b) => b.text ?? '').join('');

await runAll([
	[
		'our worker: many tool calls in three sessions at once, audit verifies',
		async (f) => {
			await f.startModel(manyScript);
			await f.startServer();
			const c = f.client;
			const { agent, env, key } = await setup(f, 'many', [{ type: 'agent_toolset_20260401' }]);
			const workdir = scratch(f.dir, 'work');
			const sessions = [];
			for (let i = 0; i < (Number(process.env.WS_N) || 3); i++) sessions.push(await startSession(c, agent, env, `session ${i}`));
			const w = startOurWorker(f, env, key, workdir, ['--max-sessions', '4']);
			for (const s of sessions) {
				const evs = await waitIdle(c, s.id);
				const uses = checkTranscript(evs, s.id);
				assertEq(uses.length, MANY_CALLS, 'tool calls per session');
				const res = new Map(evs.filter((e) => e.type === 'user.tool_result').map((r) => [r.tool_use_id, r]));
				const byStep = uses.map((u) => res.get(u.id));
				assert(!byStep[0].is_error, 'write ok: ' + text(byStep[0]));
				assert(text(byStep[1]).includes('3'), 'wc sees three lines: ' + text(byStep[1]));
				assert(text(byStep[2]).includes('mark=kept'), 'the shell persists across calls: ' + text(byStep[2]));
				assert(!byStep[3].is_error, 'edit ok: ' + text(byStep[3]));
				assert(text(byStep[4]).includes('BETA'), 'read sees the edit: ' + text(byStep[4]));
				assert(text(byStep[5]).includes('notes.txt'), 'grep finds the file: ' + text(byStep[5]));
				assert(text(byStep[6]).includes('notes.txt'), 'glob finds the file: ' + text(byStep[6]));
				assertEq(byStep[7].is_error, true, 'non-zero exit is an error result');
				// Each session has its own workspace.
				assertEq(readFileSync(join(workdir, s.id, 'notes.txt'), 'utf8'), 'alpha\nBETA\ngamma\n', 'workspace file');
			}
			// The items are stopped after max-idle; then SIGTERM ends the worker cleanly.
			await until(async () => (w.log.match(/stopped work work_id=/g) || []).length >= sessions.length, 'items stopped', 20000);
			await w.kill('SIGTERM');
			assertEq(w.exit.code, 0, 'worker exit status');
			const answered = (w.log.match(/answered tool call .*how=ran/g) || []).length;
			assertEq(answered, sessions.length * MANY_CALLS, 'answer log lines');
			assert(!w.log.includes(key.key), 'the environment key never reaches the log');
			const auditFile = join(workdir, '.airlock', 'audit.log');
			const v = auditVerify(auditFile);
			assertEq(v.status, 0, 'audit verify: ' + v.stdout + v.stderr);
			const recs = auditEvents(auditFile);
			const count = (ev) => recs.filter((r) => r.airlock.event === ev).length;
			assertEq(count('tool.answered'), sessions.length * MANY_CALLS, 'tool.answered records');
			assertEq(count('work.claimed'), sessions.length, 'work.claimed records');
			assertEq(count('work.stopped'), sessions.length, 'work.stopped records');
			assertEq(count('session.attached'), sessions.length, 'session.attached records');
			const raw = readFileSync(auditFile, 'utf8');
			assert(!raw.includes(key.key), 'the environment key never reaches the audit log');
			// Sessions tokens are alk_sess_..., environment keys alk_env_...: neither appears,
			// not even scrubbed (a scrubbed one would mean it reached the logger).
			assert(!raw.includes('alk_sess_') && !raw.includes('alk_env_') && !raw.includes('sessions_token'), 'no token in the audit log');
			assert(!w.log.includes('alk_sess_') && !w.log.includes('alk_env_'), 'no token in the worker log');
		},
	],
	[
		'our worker: ask waits for allow; a denied call never runs',
		async (f) => {
			await f.startModel({
				steps: [
					{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo one > allowed.txt' } }] },
					{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo two > denied.txt' } }] },
					{ content: [{ type: 'text', text: 'finished' }], stop_reason: 'end_turn' },
				],
			});
			await f.startServer();
			const c = f.client;
			const tools = [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_ask' } } }];
			const { agent, env, key } = await setup(f, 'ask', tools);
			const workdir = scratch(f.dir, 'work');
			const s = await startSession(c, agent, env, 'ask me');
			const w = startOurWorker(f, env, key, workdir, ['--log-format', 'json']);
			const first = await until(async () => (await listEvents(c, s.id)).find((e) => e.type === 'agent.tool_use'), 'first call');
			assertEq(first.evaluated_permission, 'ask', 'the call needs confirmation');
			await until(() => w.log.includes('awaiting confirmation'), 'worker holds the call');
			await sleep(1500);
			assert(!existsSync(join(workdir, s.id, 'allowed.txt')), 'nothing runs before the confirmation');
			assert(!(await listEvents(c, s.id)).some((e) => e.type === 'user.tool_result'), 'no result before the confirmation');
			await c.beta.sessions.events.send(s.id, { events: [{ type: 'user.tool_confirmation', tool_use_id: first.id, result: 'allow' }] });
			const second = await until(async () => (await listEvents(c, s.id)).filter((e) => e.type === 'agent.tool_use')[1], 'second call', 20000);
			assertEq(readFileSync(join(workdir, s.id, 'allowed.txt'), 'utf8'), 'one\n', 'the allowed call ran');
			await c.beta.sessions.events.send(s.id, { events: [{ type: 'user.tool_confirmation', tool_use_id: second.id, result: 'deny' }] });
			const evs = await waitIdle(c, s.id);
			// The platform answers a denial to the model itself; the worker posts nothing for it.
			const results = evs.filter((e) => e.type === 'user.tool_result');
			assertEq(results.length, 1, 'only the allowed call has a user.tool_result');
			assertEq(results[0].tool_use_id, first.id, 'it answers the allowed call');
			assertEq(results[0].is_error, false, 'the allowed call succeeded');
			assert(evs.some((e) => e.type === 'session.status_idle' && e.stop_reason?.type === 'end_turn'), 'the turn ended');
			await until(() => w.log.includes('denied'), 'worker saw the denial');
			assert(!existsSync(join(workdir, s.id, 'denied.txt')), 'the denied call never ran');
			await until(() => w.log.includes('stopped work work_id='), 'item stopped', 20000);
			await w.kill('SIGTERM');
			assertEq(w.exit.code, 0, 'worker exit status');
			const auditFile = join(workdir, '.airlock', 'audit.log');
			const v = auditVerify(auditFile);
			assertEq(v.status, 0, 'audit verify: ' + v.stdout + v.stderr);
			// --log-format json: every line the worker wrote is one JSON object.
			const logLines = w.log.split('\n').filter((l) => l.length > 0);
			assert(logLines.length > 5, 'worker logged');
			for (const l of logLines) JSON.parse(l);
			assert(logLines.some((l) => l.includes('answered tool call')), 'answers logged as JSON');
			const conf = auditEvents(auditFile).filter((r) => r.airlock.event === 'tool.confirmation');
			assertEq(conf.map((r) => r.airlock.result).join(','), 'allow,deny', 'confirmation records');
		},
	],
	[
		'our worker: --on-work hands each item to a script running `airlock worker run` (no environment key)',
		async (f) => {
			await f.startModel({
				steps: [
					{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo "$ANTHROPIC_WORK_SECRET$ANTHROPIC_ENVIRONMENT_KEY" | wc -c > env.txt; echo from-script' } }] },
					{ content: [{ type: 'tool_use', name: 'read', input: { file_path: 'env.txt' } }] },
					{ content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn' },
				],
			});
			await f.startServer();
			const c = f.client;
			const { agent, env, key } = await setup(f, 'onwork', [{ type: 'agent_toolset_20260401' }]);
			const workdir = scratch(f.dir, 'work');
			const items = scratch(f.dir, 'items');
			const script = join(f.dir, 'on-work.sh');
			// The item JSON and the variables the script saw are kept for the asserts. The run
			// shares the poller's state dir: the journal is shared, and since the poller holds
			// the audit log the run writes its own chain beside it (audit.log.<work id>).
			writeFileSync(
				script,
				`#!/bin/sh
cat > "${items}/$ANTHROPIC_WORK_ID.json"
env | grep '^ANTHROPIC_' | sed 's/=.*//' | sort > "${items}/$ANTHROPIC_WORK_ID.env"
exec "${BIN}" worker run --workdir "${workdir}" --max-idle 1 --backend "${process.env.WS_BACKEND || 'native'}"
`,
				{ mode: 0o755 },
			);
			const sessions = [await startSession(c, agent, env, 'one'), await startSession(c, agent, env, 'two')];
			const w = startOurWorker(f, env, key, workdir, ['--on-work', script]);
			for (const s of sessions) {
				const evs = await waitIdle(c, s.id);
				const uses = checkTranscript(evs, s.id);
				assertEq(uses.length, 2, 'calls');
				const res = evs.filter((e) => e.type === 'user.tool_result');
				assert(text(res[0]).includes('from-script'), 'bash ran: ' + text(res[0]));
				// Only the newline: neither the secret nor the key reaches the sandbox.
				assertEq(text(res[1]).trim(), '1', 'no ANTHROPIC_* secret inside the sandbox');
			}
			await until(async () => (w.log.match(/on-work script exited .* status=0/g) || []).length >= 2, 'scripts exited', 20000);
			await w.kill('SIGTERM');
			assertEq(w.exit.code, 0, 'worker exit status');
			for (const s of sessions) {
				const work = (await c.get(`/v1/environments/${env.id}/work`, { query: { limit: 100 }, headers: { 'anthropic-beta': 'managed-agents-2026-04-01' } })).data.find((x) => x.data.id === s.id);
				assertEq(work.state, 'stopped', 'item stopped by the run');
				const item = JSON.parse(readFileSync(join(items, `${work.id}.json`), 'utf8'));
				assertEq(item.id, work.id, 'item JSON on stdin');
				assertEq(item.data.id, s.id, 'item session');
				assert(!('secret' in item), 'the secret is not on stdin');
				assertEq(
					readFileSync(join(items, `${work.id}.env`), 'utf8').trim().split('\n').join(','),
					'ANTHROPIC_BASE_URL,ANTHROPIC_ENVIRONMENT_ID,ANTHROPIC_SESSION_ID,ANTHROPIC_WORK_ID,ANTHROPIC_WORK_SECRET',
					'script environment: no environment key without --on-work-env-key; `worker run` served the item with its secret alone',
				);
				const v = auditVerify(join(workdir, '.airlock', `audit.log.${work.id}`));
				assertEq(v.status, 0, 'run audit verify: ' + v.stdout + v.stderr);
			}
			const v = auditVerify(join(workdir, '.airlock', 'audit.log'));
			assertEq(v.status, 0, 'poller audit verify: ' + v.stdout + v.stderr);
		},
	],
	[
		'our worker: SIGTERM mid-call cancels it after the grace period, answers it, stops the item, exits 0',
		async (f) => {
			await f.startModel({
				steps: [
					{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo started; sleep 60' } }] },
					{ content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn' },
				],
			});
			await f.startServer();
			const c = f.client;
			const { agent, env, key } = await setup(f, 'term', [{ type: 'agent_toolset_20260401' }]);
			const workdir = scratch(f.dir, 'work');
			const conf = join(f.dir, 'worker.yaml');
			writeFileSync(conf, 'shutdown_grace: 1\n');
			const s = await startSession(c, agent, env, 'long');
			const w = startOurWorker(f, env, key, workdir, ['--config', conf]);
			await until(() => w.log.includes('executing tool'), 'the call runs');
			await sleep(300);
			const t0 = Date.now();
			await w.kill('SIGTERM');
			const took = Date.now() - t0;
			assertEq(w.exit.code, 0, 'worker exit status');
			assert(took < 15000, `drained in ${took} ms`);
			const evs = await listEvents(c, s.id);
			const res = evs.filter((e) => e.type === 'user.tool_result');
			assertEq(res.length, 1, 'the cancelled call is answered once');
			assertEq(res[0].is_error, true, 'with an error result');
			assert(text(res[0]).includes('cancel'), 'saying it was cancelled: ' + text(res[0]));
			const work = (await c.get(`/v1/environments/${env.id}/work`, { query: { limit: 100 }, headers: { 'anthropic-beta': 'managed-agents-2026-04-01' } })).data.find((x) => x.data.id === s.id);
			assertEq(work.state, 'stopped', 'item force-stopped');
			const auditFile = join(workdir, '.airlock', 'audit.log');
			const v = auditVerify(auditFile);
			assertEq(v.status, 0, 'audit verify: ' + v.stdout + v.stderr);
			const recs = auditEvents(auditFile).map((r) => r.airlock.event);
			assert(recs.includes('tool.answered') && recs.includes('work.stopped'), 'answer and stop audited: ' + recs.join(','));
		},
	],
	[
		'our worker: kill -9 mid-call, restart on the same state dir: answered once, never run twice',
		async (f) => {
			await f.startModel({
				steps: [
					{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo run >> runs.txt; sleep 60' } }] },
					{ content: [{ type: 'tool_use', name: 'read', input: { file_path: 'runs.txt' } }] },
					{ content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn' },
				],
			});
			await f.startServer();
			const c = f.client;
			const { agent, env, key } = await setup(f, 'crash', [{ type: 'agent_toolset_20260401' }]);
			const workdir = scratch(f.dir, 'work');
			const conf = join(f.dir, 'worker.yaml');
			// A short lease so the killed worker's item is reclaimable quickly.
			writeFileSync(conf, 'heartbeat_ttl: 10\nreclaim_older_than_ms: 1000\n');
			const s = await startSession(c, agent, env, 'crash');
			const w1 = startOurWorker(f, env, key, workdir, ['--config', conf]);
			await until(() => existsSync(join(workdir, s.id, 'runs.txt')), 'the call started');
			await w1.kill('SIGKILL');
			const w2 = startOurWorker(f, env, key, workdir, ['--config', conf]);
			const evs = await waitIdle(c, s.id);
			const uses = checkTranscript(evs, s.id);
			assertEq(uses.length, 2, 'calls');
			const res = new Map(evs.filter((e) => e.type === 'user.tool_result').map((r) => [r.tool_use_id, r]));
			const first = res.get(uses[0].id);
			assertEq(first.is_error, true, 'the interrupted call is an error');
			assert(text(first).includes('restarted during execution'), 'saying the worker restarted: ' + text(first));
			assertEq(readFileSync(join(workdir, s.id, 'runs.txt'), 'utf8'), 'run\n', 'the interrupted call ran once');
			assert(w2.log.includes('how=restarted'), 'the restart is logged');
			await w2.kill('SIGTERM');
			assertEq(w2.exit.code, 0, 'worker exit status');
			const v = auditVerify(join(workdir, '.airlock', 'audit.log'));
			assertEq(v.status, 0, 'audit verify after kill -9: ' + v.stdout + v.stderr);
		},
	],
]);
