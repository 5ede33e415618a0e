// The control plane restarts mid-session and nothing is lost or done twice.
// The scripted model (a test double) asks for three bash calls, one per step;
// the SDK's EnvironmentWorker runs them. The server is stopped twice during
// the turn, each time started again on the same --data directory and port:
//   1. while the first tool runs (the call is out, its result not yet sent),
//   2. while the second model request is in flight (step 1 is delayed).
// Variant A stops it with kill -9 (nothing flushed), variant B with SIGTERM
// (drain, exit 0). Either way the session must end idle/end_turn with every
// agent.tool_use id once, each answered by exactly one user.tool_result,
// unique event ids, and each bash command run exactly once (every command
// appends its step to calls.log in the worker's directory).
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { assert, assertEq } from './harness.mjs';
import { runAll, until, listEvents, checkTranscript, lines, scratch, setupEnvironment, startSession, startWorker, sleep } from './procs.mjs';

const call = (n, extra = '') => ({
	content: [
		{ type: 'text', text: `step ${n}` },
		{ type: 'tool_use', name: 'bash', input: { command: `echo call-${n} >> calls.log; ${extra}echo out-${n}` } },
	],
});
const script = {
	steps: [
		call(0, 'sleep 1; '),
		{ ...call(1), delay_ms: 1500 },
		call(2),
		{ content: [{ type: 'text', text: 'all done: {{last_tool_result}}' }], stop_reason: 'end_turn' },
	],
};

async function restartScenario(f, signal) {
	await f.startModel(script);
	await f.startServer();
	const c = () => f.client; // rebuilt on every start (same URL and key)
	const { agent, env, key } = await setupEnvironment(c());
	const session = await startSession(c(), agent, env, 'run the three steps');
	const workdir = scratch(f.dir, 'work');
	const w = startWorker(f, env, key, workdir);
	const bounce = async (what) => {
		const t0 = Date.now();
		const exit = await f.server.kill(signal);
		if (signal === 'SIGTERM') {
			assertEq(exit.code, 0, `exit status after SIGTERM (${what})`);
			assert(Date.now() - t0 < 5000, `drain took ${Date.now() - t0} ms (${what})`);
		} else {
			assertEq(exit.signal, 'SIGKILL', `killed (${what})`);
		}
		await f.startServer();
	};
	try {
		// 1. The first call is out and its command is sleeping: stop the server.
		await until(async () => (await listEvents(c(), session.id)).some((e) => e.type === 'agent.tool_use'), 'first agent.tool_use');
		assert(!(await listEvents(c(), session.id)).some((e) => e.type === 'user.tool_result'), 'stopped before the result was sent');
		await bounce('tool running');

		// 2. The first result is in, the second model request is being answered (1.5 s).
		await until(async () => (await listEvents(c(), session.id)).some((e) => e.type === 'user.tool_result'), 'first result after the restart');
		await sleep(300);
		const mid = await listEvents(c(), session.id);
		assertEq(mid.filter((e) => e.type === 'agent.tool_use').length, 1, 'second call not yet emitted');
		await bounce('model request in flight');

		const done = await until(async () => {
			const evs = await listEvents(c(), session.id);
			return evs.some((e) => e.type === 'session.status_idle' && e.stop_reason?.type === 'end_turn') ? evs : null;
		}, 'end_turn after the restarts', 20000);
		// Let anything that would still arrive (a duplicate send, a second model reply) land.
		await sleep(500);
		const events = await listEvents(c(), session.id);
		assertEq(events.length, done.length, 'nothing after end_turn');
		const uses = checkTranscript(events, `${signal} session`);
		assertEq(uses.length, 3, 'three calls');
		assertEq(uses.map((u) => u.input.command.split(' ')[1]).join(','), 'call-0,call-1,call-2', 'calls in order');
		for (const [i, u] of uses.entries()) {
			const r = events.find((e) => e.type === 'user.tool_result' && e.tool_use_id === u.id);
			assert(JSON.stringify(r.content).includes(`out-${i}`), `result ${i} carries its output: ${JSON.stringify(r.content)}`);
		}
		assertEq(lines(join(workdir, 'calls.log')).join(','), 'call-0,call-1,call-2', 'each command ran exactly once');
		const final = events.filter((e) => e.type === 'agent.message').pop();
		assert(JSON.stringify(final.content).includes('all done: out-2'), 'final message saw the last result');
		const s = await c().beta.sessions.retrieve(session.id);
		assertEq(s.status, 'idle', 'session status');
		// One model response per step reached the log: a request whose response
		// was lost is made again, a committed one never is.
		const ends = events.filter((e) => e.type === 'span.model_request_end' && !e.is_error);
		assertEq(ends.length, 4, 'successful model responses');
		// kill -9 loses the request in flight: its span is closed as an error
		// and the request made again. SIGTERM lets it finish and be recorded
		// before the process exits, so nothing is asked twice.
		const starts = events.filter((e) => e.type === 'span.model_request_start').length;
		const orphans = events.filter((e) => e.type === 'span.model_request_end' && e.is_error).length;
		if (signal === 'SIGKILL') {
			assertEq(starts, 5, 'model requests (one repeated after kill -9)');
			assertEq(orphans, 1, 'orphaned span closed');
		} else {
			assertEq(starts, 4, 'model requests (none repeated after SIGTERM)');
			assertEq(orphans, 0, 'no orphaned span after SIGTERM');
		}
		// A second client, never connected before, sees the same transcript.
		const fresh = new f.Anthropic({ apiKey: f.adminKey, baseURL: f.baseURL, maxRetries: 0 });
		assertEq((await listEvents(fresh, session.id)).map((e) => e.id).join(), events.map((e) => e.id).join(), 'same transcript for a fresh client');
		assert(readFileSync(join(f.dataDir, 'admin.key'), 'utf8').trim() === f.adminKey, 'admin key unchanged by restarts');
	} finally {
		await w.stop();
	}
}

await runAll([
	['restart with kill -9 mid-turn loses nothing and repeats nothing', (f) => restartScenario(f, 'SIGKILL')],
	['restart with SIGTERM (drain) mid-turn loses nothing and repeats nothing', (f) => restartScenario(f, 'SIGTERM')],
]);
