// When our worker (`airlock worker poll`) deletes a session's workspace
// (src/worker/workspace.h, docs/OPERATIONS.md "Workspaces"), against the
// scripted fake of the hosted API (fake_hosted.mjs, a TEST DOUBLE):
//   - a session that is over (terminated) loses its workspace once its item ends;
//   - a session whose turn merely ended keeps it, and its next item continues
//     in it (the files of the first turn are there);
//   - --workspace-ttl deletes a workspace unused that long, never one a
//     running session still has.
// Each case also checks exactly-once answers, the audit chain and its
// workspace.removed records.
import { existsSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHosted } from './fake_hosted.mjs';
import { Worker, requireWorker, runCases, assert, eq, until, sleep, assertNoSecret } from './worker_lib.mjs';

requireWorker();
const root = mkdtempSync(join(tmpdir(), 'al-wws-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const scratch = (name) => {
	const d = join(root, name.replace(/[^a-z0-9]+/gi, '-'));
	mkdirSync(d, { recursive: true });
	return d;
};

const gate = 'for i in $(seq 1 100); do [ -e go ] && break; sleep 0.1; done; ';
const bash = (tag, extra = '') => ({ name: 'bash', input: { command: `${extra}echo ${tag} >> ev.txt; echo out-${tag}` } });
const removedRecords = (auditText) =>
	auditText
		.split('\n')
		.filter((l) => l.includes('"workspace.removed"'))
		.map((l) => JSON.parse(l).airlock);

async function withWorker(dir, fakeOpts, args, body) {
	const f = new FakeHosted({ ttlSeconds: 2, ...fakeOpts });
	await f.start();
	const w = new Worker({ dir, baseURL: f.baseURL, environmentId: f.environmentId, environmentKey: f.environmentKey, args });
	try {
		w.start();
		await body(f, w, f.session());
		eq((await w.stop()).code, 0, 'exit status after SIGTERM');
		const audit = w.verifyAudit();
		assertNoSecret(w.log, f.secrets(), 'the worker output');
		w.assertClean();
		return audit;
	} catch (e) {
		e.logs = () => w.logs();
		throw e;
	} finally {
		await w.stop();
		await f.stop();
	}
}

const cases = [];
const test = (name, fn) => cases.push([name, fn]);

test('a terminated session: its workspace is deleted once its item ends', async (dir) => {
	const audit = await withWorker(dir, { sessions: [{ calls: [bash('a', gate), bash('b')] }], faults: { terminateAfterResults: 1 } }, [], async (f, w, s) => {
		// The workspace exists while the session runs: the test writes into it.
		await w.alive(until(() => existsSync(w.workspace(s.id)), 'the workspace'));
		w.touch(s.id, 'go');
		await w.alive(f.waitFor(() => s.status === 'terminated', 'the termination'));
		await w.alive(until(() => !existsSync(w.workspace(s.id)), 'the workspace deleted', 10000));
		eq(f.results().length, 1, 'one call answered before the termination');
		assert([...f.answers().values()].every((n) => n <= 1), 'nothing answered twice');
	});
	const recs = removedRecords(audit);
	eq(recs.length, 1, 'one workspace.removed record');
	eq(recs[0].reason, 'session over', 'its reason');
	assert(/^sesn_/.test(recs[0].session_id ?? ''), 'it names the session: ' + JSON.stringify(recs[0]));
});

test('a turn that ended keeps the workspace; the next item of the session continues in it', async (dir) => {
	const audit = await withWorker(dir, { sessions: [{ calls: [bash('a')] }] }, [], async (f, w, s) => {
		await w.alive(f.waitFor(() => f.allDone(), 'the first turn'));
		await w.alive(until(() => f.item().state === 'stopped', 'the first item stopped after max-idle'));
		await sleep(500);
		eq(w.lines(s.id, 'ev.txt').join(','), 'a', 'the workspace is still there after the item ended');
		// A new user turn: the fake queues a second item of the same session.
		s.calls.push({ name: 'bash', input: { command: 'echo second >> ev.txt; cat ev.txt' } });
		s.done = false;
		f.emit(s, { type: 'user.message', content: [{ type: 'text', text: 'again' }] });
		s.status = 'running';
		f.emit(s, { type: 'session.status_running' });
		f.advance(s);
		s.workId = f.addItem({ type: 'session', id: s.id }).id;
		await w.alive(f.waitFor(() => f.allDone(), 'the second turn', 20000));
		f.checkExactlyOnce();
		const last = f.results().at(-1);
		assert(!last.is_error && /a\s+second/.test(JSON.stringify(last.content).replace(/\\n/g, '\n')), 'the second item saw the first turn\'s file: ' + JSON.stringify(last.content));
		await sleep(1500);
		assert(existsSync(w.workspace(s.id)), 'still kept after the second item');
	});
	eq(removedRecords(audit).length, 0, 'no workspace.removed record');
});

test('--workspace-ttl: an unused workspace goes, one in use stays', async (dir) => {
	const audit = await withWorker(dir, { sessions: [{ calls: [bash('a', 'sleep 3.5; '), bash('b')] }] }, ['--workspace-ttl', '2'], async (f, w, s) => {
		// The first call keeps the session busy for longer than the TTL, with
		// sweeps every second: the workspace must survive them.
		await w.alive(f.waitFor(() => f.allDone(), 'the turn', 20000));
		f.checkExactlyOnce();
		eq(w.lines(s.id, 'ev.txt').join(','), 'a,b', 'both calls ran in the workspace, which outlived the TTL while in use');
		assert(f.results().every((r) => !r.is_error), 'no call failed');
		await w.alive(until(() => f.item().state === 'stopped', 'the item stopped'));
		await w.alive(until(() => !existsSync(w.workspace(s.id)), 'the unused workspace deleted', 10000));
		assert(existsSync(w.stateDir), 'the state dir is left alone');
	});
	const recs = removedRecords(audit);
	eq(recs.length, 1, 'one workspace.removed record');
	eq(recs[0].reason, 'ttl', 'its reason');
	eq(recs[0].ttl_seconds, 2, 'the TTL');
});

await runCases(cases, scratch);
