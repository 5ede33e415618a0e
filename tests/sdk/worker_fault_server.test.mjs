// Fault tests of our worker (`airlock worker poll`) against the real control
// plane (`airlock server`, restartable on the same --data and port through
// procs.mjs) with the scripted model (`airlock model-stub`, a test double).
//   1. kill -9 the worker while a tool call runs, start it again on the same
//      --state-dir: the call is answered exactly once, with the "worker
//      restarted during execution" error, and it did not run twice (each
//      command appends a line to ev.txt in the session's workspace).
//   2. restart the control plane mid-session, with kill -9 and with SIGTERM,
//      once while a tool runs and once while the model request is in flight:
//      the worker recovers and every call is answered exactly once.
// Each ends with the transcript invariants (checkTranscript), the evidence
// lines, and `airlock audit verify` on the worker's audit log.
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { assert, assertEq } from './harness.mjs';
import { runAll, until, listEvents, checkTranscript, setupEnvironment, startSession, sleep, scratch } from './procs.mjs';
import { Worker, requireWorker, descendants, assertNoSecret } from './worker_lib.mjs';

requireWorker();

const step = (tag, extra = '', delay) => ({
	content: [
		{ type: 'text', text: `step ${tag}` },
		{ type: 'tool_use', name: 'bash', input: { command: `echo ${tag} >> ev.txt; ${extra}echo out-${tag}` } },
	],
	...(delay ? { delay_ms: delay } : {}),
});
const endTurn = { content: [{ type: 'text', text: 'done: {{last_tool_result}}' }], stop_reason: 'end_turn' };

async function ended(c, id, ms = 30000) {
	return until(async () => {
		const evs = await listEvents(c(), id);
		return evs.some((e) => e.type === 'session.status_idle' && e.stop_reason?.type === 'end_turn') ? evs : null;
	}, 'end_turn', ms);
}

// The start time of pid (field 22 of /proc/PID/stat), or null once it is gone.
function startTime(pid) {
	try {
		const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
		return st.slice(st.lastIndexOf(')') + 2).split(' ')[19];
	} catch {
		return null;
	}
}

// Kills anything a SIGKILLed worker left behind (its sandboxed commands),
// only while the pid is still that same process (not a reused pid).
function reap(procs) {
	for (const [pid, t] of procs) {
		if (t !== null && startTime(pid) === t) {
			try {
				process.kill(pid, 'SIGKILL');
			} catch {}
		}
	}
}

async function killWorkerMidCall(f) {
	await f.startModel({ steps: [step('k', 'sleep 3; '), step('l'), endTurn] });
	await f.startServer();
	const c = () => f.client;
	const { agent, env, key } = await setupEnvironment(c(), 'wkill');
	const session = await startSession(c(), agent, env, 'run two steps');
	// heartbeat_ttl 10 (the least the config takes): the dead worker's lease
	// lapses in 10 s, so the restarted one can claim the item again.
	const wdir = scratch(f.dir, 'w');
	writeFileSync(join(wdir, 'worker.yaml'), 'heartbeat_ttl: 10\n');
	const w = new Worker({ dir: wdir, baseURL: f.baseURL, environmentId: env.id, environmentKey: key.key, args: ['--config', join(wdir, 'worker.yaml')] });
	let orphans = [];
	try {
		w.start();
		await w.alive(until(() => w.lines(session.id, 'ev.txt').length === 1, 'the first command started', 20000));
		orphans = descendants(w.pid).map((p) => [p, startTime(p)]);
		const exit = await w.kill('SIGKILL');
		assertEq(exit.signal, 'SIGKILL', 'worker killed');
		const mid = await listEvents(c(), session.id);
		assertEq(mid.filter((e) => e.type === 'user.tool_result').length, 0, 'killed before the result was sent');
		await sleep(3500); // the orphaned command, if it survived, has finished by now
		w.start();
		const events = await w.alive(ended(c, session.id, 40000));
		await sleep(500);
		const all = await listEvents(c(), session.id);
		assertEq(all.length, events.length, 'nothing after end_turn');
		const uses = checkTranscript(all, 'kill -9 worker');
		assertEq(uses.length, 2, 'two calls');
		const r0 = all.find((e) => e.type === 'user.tool_result' && e.tool_use_id === uses[0].id);
		assert(r0.is_error === true, 'the interrupted call is answered as an error');
		assert(/restarted during execution/i.test(JSON.stringify(r0.content)), 'it says the worker restarted during execution: ' + JSON.stringify(r0.content));
		const r1 = all.find((e) => e.type === 'user.tool_result' && e.tool_use_id === uses[1].id);
		assert(JSON.stringify(r1.content).includes('out-l'), 'the second call ran after the restart');
		assertEq(w.lines(session.id, 'ev.txt').join(','), 'k,l', 'the interrupted command did not run twice');
		assertEq((await w.stop()).code, 0, 'exit status after SIGTERM');
		const audit = w.verifyAudit();
		assertNoSecret(w.log + audit, [key.key], 'the worker output and audit log');
		w.assertClean();
	} catch (e) {
		console.error(w.logs());
		throw e;
	} finally {
		reap(orphans);
		await w.stop();
	}
}

async function restartControlPlane(f, signal) {
	await f.startModel({ steps: [step('c0', 'sleep 1; '), step('c1', '', 1500), step('c2'), endTurn] });
	await f.startServer();
	const c = () => f.client; // rebuilt on every start (same URL and key)
	const { agent, env, key } = await setupEnvironment(c(), 'wbounce');
	const session = await startSession(c(), agent, env, 'run three steps');
	const w = new Worker({ dir: scratch(f.dir, 'w'), baseURL: f.baseURL, environmentId: env.id, environmentKey: key.key });
	const bounce = async (what) => {
		const exit = await f.server.kill(signal);
		if (signal === 'SIGKILL') assertEq(exit.signal, 'SIGKILL', `server killed (${what})`);
		await sleep(300); // the worker sees refused connections for a moment
		await f.startServer();
	};
	try {
		w.start();
		// 1. The first call is out and its command is sleeping.
		await w.alive(until(() => w.lines(session.id, 'ev.txt').length === 1, 'the first command started', 20000));
		await bounce('tool running');
		// 2. The first result is in; the second model request is being answered (1.5 s).
		await until(async () => (await listEvents(c(), session.id)).some((e) => e.type === 'user.tool_result'), 'first result after the restart', 20000);
		await sleep(300);
		await bounce('model request in flight');
		await w.alive(ended(c, session.id, 30000));
		await sleep(600);
		const all = await listEvents(c(), session.id);
		const uses = checkTranscript(all, `control plane ${signal}`);
		assertEq(uses.length, 3, 'three calls');
		for (const [i, u] of uses.entries()) {
			const r = all.find((e) => e.type === 'user.tool_result' && e.tool_use_id === u.id);
			assert(JSON.stringify(r.content).includes(`out-c${i}`), `result ${i} carries its output: ${JSON.stringify(r.content)}`);
		}
		assertEq(w.lines(session.id, 'ev.txt').join(','), 'c0,c1,c2', 'each command ran exactly once');
		assert(w.cur.exit === null, 'the worker survived both restarts');
		assertEq((await w.stop()).code, 0, 'exit status after SIGTERM');
		const audit = w.verifyAudit();
		assertNoSecret(w.log + audit, [key.key], 'the worker output and audit log');
		w.assertClean();
	} catch (e) {
		console.error(w.logs());
		throw e;
	} finally {
		await w.stop();
	}
}

await runAll([
	['kill -9 the worker mid-call and restart it: answered once, with the restart error, not run twice', killWorkerMidCall],
	['kill -9 the control plane twice mid-session: the worker recovers, every call answered once', (f) => restartControlPlane(f, 'SIGKILL')],
	['SIGTERM the control plane twice mid-session: the worker recovers, every call answered once', (f) => restartControlPlane(f, 'SIGTERM')],
]);
