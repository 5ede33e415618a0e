// Our worker (`airlock worker poll`, the real binary) serving full sessions
// on the real `airlock server`: many tool calls per session, several sessions
// at once, an ask/confirm session (allow runs, deny never runs), and the
// worker's audit log verifying afterwards. The model is the scripted stub
// (a TEST DOUBLE for the Messages API); everything else is real: loopback
// HTTP, the journal on disk, each session's sandbox.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
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

function startOurWorker(f, env, key, workdir, extra = []) {
	const args = ['worker', 'poll', '--base-url', f.baseURL, '--environment', env.id, '--workdir', workdir, '--max-idle', '1', ...extra];
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
				if (process.env.DEBUG_WS) console.log(JSON.stringify(byStep.map((r) => [r.is_error, text(r)])));
				if (process.env.DEBUG_WS) spawnSync('cp', ['-r', workdir, '/tmp/ws-debug']);
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
			await until(async () => (w.log.match(/stopped work work_id=/g) || []).length >= 3, 'items stopped', 20000);
			await w.kill('SIGTERM');
			assertEq(w.exit.code, 0, 'worker exit status');
			const answered = (w.log.match(/answered tool call .*how=ran/g) || []).length;
			assertEq(answered, 3 * MANY_CALLS, 'answer log lines');
			assert(!w.log.includes(key.key), 'the environment key never reaches the log');
			const auditFile = join(workdir, '.airlock', 'audit.log');
			const v = auditVerify(auditFile);
			assertEq(v.status, 0, 'audit verify: ' + v.stdout + v.stderr);
			const recs = auditEvents(auditFile);
			const count = (ev) => recs.filter((r) => r.airlock.event === ev).length;
			assertEq(count('tool.answered'), 3 * MANY_CALLS, 'tool.answered records');
			assertEq(count('work.claimed'), 3, 'work.claimed records');
			assertEq(count('work.stopped'), 3, 'work.stopped records');
			assertEq(count('session.attached'), 3, 'session.attached records');
			const raw = readFileSync(auditFile, 'utf8');
			assert(!raw.includes(key.key), 'the environment key never reaches the audit log');
			assert(!raw.includes('alks_') && !raw.includes('sessions_token'), 'no sessions token in the audit log');
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
			const w = startOurWorker(f, env, key, workdir);
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
			if (process.env.DEBUG_WS) console.log(JSON.stringify(evs.map((e) => [e.type, e.tool_use_id, e.is_error])));
			checkTranscript(evs, s.id);
			const res = evs.find((e) => e.type === 'user.tool_result' && e.tool_use_id === second.id);
			assertEq(res.is_error, true, 'the denied call is answered with an error');
			await until(() => w.log.includes('denied'), 'worker saw the denial');
			assert(!existsSync(join(workdir, s.id, 'denied.txt')), 'the denied call never ran');
			await until(() => w.log.includes('stopped work work_id='), 'item stopped', 20000);
			await w.kill('SIGTERM');
			assertEq(w.exit.code, 0, 'worker exit status');
			const auditFile = join(workdir, '.airlock', 'audit.log');
			const v = auditVerify(auditFile);
			assertEq(v.status, 0, 'audit verify: ' + v.stdout + v.stderr);
			const conf = auditEvents(auditFile).filter((r) => r.airlock.event === 'tool.confirmation');
			assertEq(conf.map((r) => r.airlock.result).join(','), 'allow,deny', 'confirmation records');
		},
	],
]);
