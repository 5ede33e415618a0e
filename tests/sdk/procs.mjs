// Process-level helpers for the SDK tests that restart, signal or multiply
// the real binaries (restart, multi, model-retry, secrets). harness.mjs starts
// one server for a test's whole life; these tests need to kill it, start it
// again on the same --data directory and port, and read its exit status.
// Everything started here is stopped by Fleet.stop().
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, freePort, loadSDK } from './harness.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

// One child process with its output captured and its exit observable.
class Proc {
	constructor(name, args, env) {
		this.name = name;
		this.args = args;
		this.log = '';
		this.exit = null; // {code, signal} once it has exited
		this.p = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
		this.p.stdout.on('data', (d) => (this.log += d));
		this.p.stderr.on('data', (d) => (this.log += d));
		this.exited = new Promise((r) =>
			this.p.on('exit', (code, signal) => {
				this.exit = { code, signal };
				r(this.exit);
			}),
		);
	}
	get pid() {
		return this.p.pid;
	}
	kill(sig = 'SIGTERM') {
		if (this.exit === null) this.p.kill(sig);
		return this.exited;
	}
}

// A scratch directory with a scripted model (a test double) and a server that
// can be stopped and started again on the same port and data directory.
export class Fleet {
	constructor() {
		this.dir = mkdtempSync(join(tmpdir(), 'al-sdkp-'));
		this.dataDir = join(this.dir, 'data');
		this.procs = [];
		this.server = null;
		this.serverArgs = [];
		this.serverEnv = {};
	}

	spawn(name, args, env = {}) {
		const p = new Proc(name, args, env);
		this.procs.push(p);
		return p;
	}

	async startModel(script, { args = [], env = {} } = {}) {
		const port = await freePort();
		const file = join(this.dir, 'script.json');
		writeFileSync(file, JSON.stringify(script));
		this.model = this.spawn('model', ['model-stub', '--listen', `127.0.0.1:${port}`, '--script', file, ...args], env);
		this.modelUrl = `http://127.0.0.1:${port}`;
		await until(async () => (await fetch(`${this.modelUrl}/healthz`)).ok, 'model stub');
		return this.model;
	}

	// Starts (or restarts) the server. The port is chosen once and kept, so a
	// client built before a restart reaches the new process.
	async startServer({ args, env } = {}) {
		if (this.port === undefined) this.port = await freePort();
		if (args) this.serverArgs = args;
		if (env) this.serverEnv = env;
		const a = ['server', '--listen', `127.0.0.1:${this.port}`, '--data', this.dataDir, ...this.serverArgs];
		if (this.modelUrl) a.push('--model-url', this.modelUrl);
		this.server = this.spawn('server', a, { ANTHROPIC_API_KEY: '', ...this.serverEnv });
		// With --tls-cert the server speaks only https (the caller's Node must
		// trust its CA: NODE_EXTRA_CA_CERTS, read at start-up).
		this.baseURL = `${this.serverArgs.includes('--tls-cert') ? 'https' : 'http'}://127.0.0.1:${this.port}`;
		const keyFile = join(this.dataDir, 'admin.key');
		const srv = this.server;
		await until(() => {
			if (srv.exit) throw new Error('server exited: ' + srv.log);
			return existsSync(keyFile) && readFileSync(keyFile, 'utf8').trim().length > 0;
		}, 'admin key');
		await until(async () => {
			if (srv.exit) throw new Error('server exited: ' + srv.log);
			await fetch(this.baseURL + '/v1/agents');
			return true;
		}, 'server');
		this.adminKey = readFileSync(keyFile, 'utf8').trim();
		if (!this.Anthropic) this.Anthropic = (await loadSDK()).default;
		this.client = new this.Anthropic({ apiKey: this.adminKey, baseURL: this.baseURL, maxRetries: 0 });
		return this.server;
	}

	logs() {
		return this.procs.map((p) => `--- ${p.name} (${p.args.slice(0, 1)}) exit=${JSON.stringify(p.exit)} ---\n${p.log.slice(-4000)}`).join('\n');
	}

	async stop() {
		await Promise.all(this.procs.map((p) => p.kill('SIGTERM')));
		rmSync(this.dir, { recursive: true, force: true });
	}
}

// Every event of a session, oldest first.
export async function listEvents(client, sessionId) {
	const out = [];
	for await (const ev of client.beta.sessions.events.list(sessionId, { limit: 1000 })) out.push(ev);
	return out;
}

export function endTurnIdle(events) {
	const last = events.filter((e) => e.type.startsWith('session.status_')).pop();
	return last && last.type === 'session.status_idle' && last.stop_reason?.type === 'end_turn';
}

// The invariants of a finished transcript: unique event ids, each agent.tool_use
// id exactly once with exactly one user.tool_result, no result without a call,
// and the turn closed with idle/end_turn. Returns the tool uses, in order.
export function checkTranscript(events, what) {
	const ids = new Set();
	for (const e of events) {
		if (ids.has(e.id)) throw new Error(`${what}: event id ${e.id} (${e.type}) appears twice`);
		ids.add(e.id);
	}
	const uses = events.filter((e) => e.type === 'agent.tool_use');
	const useIds = new Set(uses.map((u) => u.id));
	if (useIds.size !== uses.length) throw new Error(`${what}: an agent.tool_use id repeats`);
	const answered = new Map();
	for (const r of events.filter((e) => e.type === 'user.tool_result')) {
		if (!useIds.has(r.tool_use_id)) throw new Error(`${what}: result for unknown call ${r.tool_use_id}`);
		answered.set(r.tool_use_id, (answered.get(r.tool_use_id) ?? 0) + 1);
	}
	for (const u of uses) {
		const n = answered.get(u.id) ?? 0;
		if (n !== 1) throw new Error(`${what}: call ${u.id} answered ${n} times`);
	}
	if (!endTurnIdle(events)) throw new Error(`${what}: did not end idle/end_turn: ${events.map((e) => e.type).join(',')}`);
	return uses;
}

// Lines of a file, or [] when it does not exist.
export function lines(file) {
	if (!existsSync(file)) return [];
	return readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
}

export function scratch(dir, name) {
	const d = join(dir, name);
	mkdirSync(d, { recursive: true });
	return d;
}

// Runs body with a Fleet; prints every process's log on failure; true if it passed.
export async function runFleet(name, body) {
	const f = new Fleet();
	let ok = false;
	try {
		await body(f);
		ok = true;
		console.log(`ok ${name}`);
	} catch (e) {
		console.error(`FAIL ${name}: ${e.stack || e}`);
		console.error(f.logs());
	} finally {
		await f.stop();
	}
	return ok;
}

// Runs each [name, body] in turn, each with its own Fleet; exits 0 if all passed.
export async function runAll(cases) {
	let ok = true;
	for (const [name, body] of cases) ok = (await runFleet(name, body)) && ok;
	process.exit(ok ? 0 : 1);
}

// An agent with the built-in toolset, a self-hosted environment and its key.
export async function setupEnvironment(client, name = 'itest') {
	const agent = await client.beta.agents.create({ name, model: 'claude-sonnet-4-5', tools: [{ type: 'agent_toolset_20260401' }] });
	const env = await client.beta.environments.create({ name: `${name}-env`, config: { type: 'self_hosted' } });
	const key = await client.post(`/v1/environments/${env.id}/keys`, { body: {} });
	return { agent, env, key };
}

export async function startSession(client, agent, env, text) {
	const session = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });
	await client.beta.sessions.events.send(session.id, { events: [{ type: 'user.message', content: [{ type: 'text', text }] }] });
	return session;
}

// The SDK's EnvironmentWorker polling env with its key. Its own client retries
// (maxRetries 2) as a deployed worker would; the tests never rely on them.
export function startWorker(f, env, key, workdir, { maxIdleMs = 400 } = {}) {
	const ctrl = new AbortController();
	const wc = new f.Anthropic({ apiKey: f.adminKey, baseURL: f.baseURL, maxRetries: 2 });
	const worker = wc.beta.environments.work.worker({ environmentId: env.id, environmentKey: key.key, workdir, maxIdleMs, signal: ctrl.signal });
	const running = worker.run().catch((e) => {
		if (!ctrl.signal.aborted) throw e;
	});
	return {
		worker,
		async stop() {
			ctrl.abort();
			await running;
		},
	};
}
