// Our worker (`airlock worker poll`) killed with SIGKILL in the middle of a
// bash call, against the scripted fake of the hosted API (fake_hosted.mjs, a
// test double). The sandbox (native backend, egress allowed so it has a proxy
// socket directory) must not outlive the worker:
//   - within a few seconds no process of the sandbox is left: the command
//     (found by a unique marker in /proc/*/cmdline), its shell, the runner and
//     PID 1 (all descendants of the worker when it was killed);
//   - the sandbox's cgroup directories (airlock-<worker pid>-N under the
//     worker's cgroups) and its egress socket directory
//     (airlock-egress-<worker pid>-XXXXXX in TMPDIR) are removed by the
//     startup sweep of the next worker (nobody is left to remove them at once).
import { mkdtempSync, rmSync, mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHosted } from './fake_hosted.mjs';
import { Worker, requireWorker, runCases, assert, eq, until, sleep, descendants } from './worker_lib.mjs';

requireWorker();
const root = mkdtempSync(join(tmpdir(), 'al-wkill-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const scratch = (name) => {
	const d = join(root, name.replace(/[^a-z0-9]+/gi, '-'));
	mkdirSync(d, { recursive: true });
	return d;
};

// Pids whose command line contains marker as one argument.
function withMarker(marker) {
	const out = [];
	for (const d of readdirSync('/proc')) {
		if (!/^\d+$/.test(d)) continue;
		try {
			if (readFileSync(`/proc/${d}/cmdline`, 'latin1').split('\0').some((a) => a.includes(marker))) out.push(Number(d));
		} catch {}
	}
	return out;
}

// The cgroup directories a worker with this pid made: airlock-PID-N under its
// own cgroup, in every hierarchy (v1 controllers, or the v2 unified one).
function cgroupDirs(pid) {
	const out = [];
	let lines = [];
	try {
		lines = readFileSync(`/proc/self/cgroup`, 'utf8').trim().split('\n');
	} catch {}
	for (const l of lines) {
		const [, ctrls, path] = l.split(':');
		const bases = ctrls === '' ? ['/sys/fs/cgroup'] : ctrls.split(',').map((c) => `/sys/fs/cgroup/${c}`);
		for (const b of bases) {
			const dir = join(b, path);
			try {
				for (const e of readdirSync(dir)) if (e.startsWith(`airlock-${pid}-`)) out.push(join(dir, e));
			} catch {}
		}
	}
	return out;
}

const egressDirs = (tmp, pid) => (existsSync(tmp) ? readdirSync(tmp).filter((e) => e.startsWith(`airlock-egress-${pid}-`)) : []);

const cases = [];
const test = (name, fn) => cases.push([name, fn]);

test('kill -9 of the worker mid `sleep`: no sandbox process survives; the next worker sweeps its cgroups and egress dir', async (dir) => {
	const marker = `1000.${process.pid}${Date.now() % 100000}`;
	const f = new FakeHosted({ sessions: [{ calls: [{ name: 'bash', input: { command: `echo a >> ev.txt; sleep ${marker}` } }] }], ttlSeconds: 2, faults: { requeueOnLeaseLoss: false } });
	await f.start();
	// A short TMPDIR of its own: the proxy's socket path must fit in sun_path.
	const tmp = mkdtempSync(join(tmpdir(), 'alk-'));
	process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
	writeFileSync(join(dir, 'worker.yaml'), 'sandbox:\n  allow_hosts: [example.com]\n  memory_mb: 256\n  pids: 64\n');
	const w = new Worker({ dir, baseURL: f.baseURL, environmentId: f.environmentId, environmentKey: f.environmentKey, args: ['--config', join(dir, 'worker.yaml')], env: { TMPDIR: tmp } });
	let left = [];
	try {
		w.start();
		const s = f.session();
		await w.alive(until(() => withMarker(marker).length > 0, 'the command to run', 20000));
		const pid = w.pid;
		const tree = descendants(pid);
		assert(tree.length >= 3, `the sandbox runs under the worker: ${tree}`);
		const cgs = cgroupDirs(pid);
		// With cgroup limits in force (the launch record says which), the sandbox has directories to leak.
		if (/"limits":"cgroup/.test(readFileSync(w.audit, 'utf8'))) assert(cgs.length > 0, 'the sandbox has cgroup directories while it runs');
		eq(egressDirs(tmp, pid).length, 1, 'one egress socket directory while it runs');
		eq((await w.kill('SIGKILL')).signal, 'SIGKILL', 'worker killed');
		await until(() => withMarker(marker).length === 0 && tree.every((p) => !existsSync(`/proc/${p}`)), 'every process of the sandbox to be gone', 5000).catch((e) => {
			left = withMarker(marker);
			throw new Error(`${e.message}; left: ${tree.filter((p) => existsSync(`/proc/${p}`)).map((p) => `${p}:${readFileSync(`/proc/${p}/cmdline`, 'latin1').replace(/\0/g, ' ')}`)}`);
		});
		// Nothing is left to remove the directories but the next worker's sweep.
		w.start();
		await w.alive(until(() => cgroupDirs(pid).length === 0 && egressDirs(tmp, pid).length === 0, 'the startup sweep', 5000)).catch((e) => {
			throw new Error(`${e.message}: cgroups ${cgroupDirs(pid)} (were ${cgs}), egress ${egressDirs(tmp, pid)}`);
		});
		eq(w.lines(s.id, 'ev.txt').join(','), 'a', 'the command ran once');
	} catch (e) {
		e.logs = () => w.logs() + '\n--- tool results ---\n' + JSON.stringify(f.results());
		throw e;
	} finally {
		for (const p of left) {
			try {
				process.kill(p, 'SIGKILL');
			} catch {}
		}
		await w.stop();
		await f.stop();
	}
});

await runCases(cases, scratch);
