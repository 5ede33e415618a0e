// Helpers for the tests that drive our own worker (`airlock worker poll|run`)
// as a real process: start it against a base URL with the environment key in
// its environment (never argv), read its output, its audit log, and the
// command lines and environments of it and its descendants.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const BIN = process.env.AIRLOCK_BIN;
if (!BIN) {
	console.error('run through make check (AIRLOCK_BIN, AIRLOCK_NODE_MODULES)');
	process.exit(2);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Skips (exit 77) when this build has no `airlock worker` yet.
export function requireWorker() {
	const r = spawnSync(BIN, ['worker', '--help'], { encoding: 'utf8' });
	const out = (r.stdout ?? '') + (r.stderr ?? '');
	if (/unknown command/i.test(out) || !/poll/.test(out)) {
		console.log('skip: this build has no `airlock worker`');
		process.exit(77);
	}
}

export function assert(c, m) {
	if (!c) throw new Error('assertion failed: ' + m);
}
export function eq(a, b, m) {
	if (a !== b) throw new Error(`assertion failed: ${m}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
}

export async function until(fn, what, ms = 15000) {
	const end = Date.now() + ms;
	let last;
	for (;;) {
		try {
			const v = await fn();
			if (v) return v;
		} catch (e) {
			last = e;
		}
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? ': ' + last : ''}`);
		await sleep(50);
	}
}

// One `airlock worker` process. Its files live under dir:
//   work/ (the --workdir, a workspace per session beneath), state/ (the
//   journal), audit.log.
export class Worker {
	constructor({ dir, baseURL, environmentId, environmentKey, mode = 'poll', args = [], env = {}, name = 'worker' }) {
		this.dir = dir;
		this.workdir = join(dir, 'work');
		this.stateDir = join(dir, 'state');
		this.audit = join(dir, 'audit.log');
		mkdirSync(this.workdir, { recursive: true });
		this.spec = { baseURL, environmentId, environmentKey, mode, args, env, name };
		this.runs = []; // every process started, for the logs
	}

	start() {
		const { baseURL, environmentId, environmentKey, mode, args, env, name } = this.spec;
		const argv = ['worker', mode, '--base-url', baseURL, '--workdir', this.workdir, '--state-dir', this.stateDir, '--audit', this.audit, '--max-idle', '1', ...args];
		if (environmentId && mode === 'poll') argv.push('--environment', environmentId);
		const childEnv = { ...process.env, ANTHROPIC_BASE_URL: '', ANTHROPIC_API_KEY: '', ...env };
		if (environmentKey) childEnv.ANTHROPIC_ENVIRONMENT_KEY = environmentKey;
		const p = spawn(BIN, argv, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
		const run = { name: `${name}#${this.runs.length + 1}`, argv, p, out: '', exit: null };
		p.stdout.on('data', (d) => (run.out += d));
		p.stderr.on('data', (d) => (run.out += d));
		run.exited = new Promise((r) =>
			p.on('exit', (code, signal) => {
				run.exit = { code, signal };
				r(run.exit);
			}),
		);
		this.runs.push(run);
		this.cur = run;
		return run;
	}

	// Resolves with p, or rejects as soon as the current process exits first.
	alive(p) {
		const r = this.cur;
		return Promise.race([p, r.exited.then((e) => Promise.reject(new Error(`the worker exited early: ${JSON.stringify(e)}`)))]);
	}

	get pid() {
		return this.cur?.p.pid;
	}
	get log() {
		return this.runs.map((r) => r.out).join('');
	}
	kill(sig = 'SIGTERM') {
		const r = this.cur;
		if (!r || r.exit) return Promise.resolve(r?.exit);
		r.p.kill(sig);
		return r.exited;
	}
	// SIGTERM, then SIGKILL after ms.
	async stop(ms = 8000) {
		const r = this.cur;
		if (!r || r.exit) return r?.exit;
		r.p.kill('SIGTERM');
		const t = setTimeout(() => r.p.kill('SIGKILL'), ms);
		const e = await r.exited;
		clearTimeout(t);
		return e;
	}
	// Throws on a sanitizer report in its output (an ASan build: make asan).
	assertClean() {
		const m = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)[^\n]*/.exec(this.log);
		if (m) throw new Error(`sanitizer report in the worker output: ${m[0]}`);
	}
	logs() {
		return this.runs.map((r) => `--- ${r.name} exit=${JSON.stringify(r.exit)} ---\n${r.out.slice(-5000)}`).join('\n');
	}
	workspace(sessionId) {
		return join(this.workdir, sessionId);
	}
	// Lines of FILE in the session's workspace ([] when absent).
	lines(sessionId, file) {
		const f = join(this.workspace(sessionId), file);
		if (!existsSync(f)) return [];
		return readFileSync(f, 'utf8').split('\n').filter((l) => l.length > 0);
	}
	touch(sessionId, file) {
		writeFileSync(join(this.workspace(sessionId), file), '');
	}
	// `airlock audit verify` on the worker's audit log.
	verifyAudit() {
		assert(existsSync(this.audit), `the audit log ${this.audit} exists`);
		const r = spawnSync(BIN, ['audit', 'verify', this.audit], { encoding: 'utf8' });
		if (r.status !== 0) throw new Error(`audit verify failed (${r.status}): ${r.stdout}${r.stderr}`);
		return readFileSync(this.audit, 'utf8');
	}
}

// Every descendant pid of pid (children first found through /proc/*/stat).
export function descendants(pid) {
	const kids = new Map();
	for (const d of readdirSync('/proc')) {
		if (!/^\d+$/.test(d)) continue;
		try {
			const st = readFileSync(`/proc/${d}/stat`, 'utf8');
			const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
			if (!kids.has(ppid)) kids.set(ppid, []);
			kids.get(ppid).push(Number(d));
		} catch {}
	}
	const out = [];
	const walk = (p) => {
		for (const k of kids.get(p) ?? []) {
			out.push(k);
			walk(k);
		}
	};
	walk(pid);
	return out;
}

// /proc/PID/{cmdline,environ} of pid and its descendants, as text (NULs as spaces).
export function procTexts(pid) {
	const out = [];
	for (const p of [pid, ...descendants(pid)]) {
		for (const f of ['cmdline', 'environ']) {
			try {
				out.push({ pid: p, what: f, text: readFileSync(`/proc/${p}/${f}`).toString('latin1').replace(/\0/g, ' ') });
			} catch {}
		}
	}
	return out;
}

// Throws if any secret (or its first 20 characters) appears in text.
export function assertNoSecret(text, secrets, where) {
	for (const s of secrets) {
		if (!s) continue;
		if (text.includes(s) || text.includes(s.slice(0, 20)))
			throw new Error(`a secret (${s.slice(0, 8)}...) appears in ${where}`);
	}
}

// Runs [name, fn] cases in order; fn gets a fresh scratch dir; exits 0 if all
// passed. FAULT_ONLY=substring runs the matching cases only.
export async function runCases(cases, mkdir) {
	let ok = true;
	const only = process.env.FAULT_ONLY;
	for (const [name, fn] of cases) {
		if (only && !name.includes(only)) continue;
		const t0 = Date.now();
		try {
			await fn(mkdir(name));
			console.log(`ok ${name} (${Date.now() - t0} ms)`);
		} catch (e) {
			ok = false;
			console.error(`FAIL ${name}: ${e.stack || e}`);
			if (e.logs) console.error(e.logs());
		}
	}
	process.exit(ok ? 0 : 1);
}
