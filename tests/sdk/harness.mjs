// Shared harness for the SDK peer tests: starts the scripted model (a test
// double) and the real `airlock server` on loopback, and the official SDK
// client pointed at it. Everything started here is stopped by stop().
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

export const BIN = process.env.AIRLOCK_BIN;
const MODULES = process.env.AIRLOCK_NODE_MODULES;
if (!BIN || !MODULES) {
	console.error('run through make check (AIRLOCK_BIN, AIRLOCK_NODE_MODULES)');
	process.exit(2);
}

export async function loadSDK() {
	const mod = await import(join(MODULES, '@anthropic-ai/sdk/index.mjs'));
	return mod;
}

export function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
		s.on('error', reject);
	});
}

async function waitFor(fn, what, ms = 10000) {
	const end = Date.now() + ms;
	for (;;) {
		try {
			if (await fn()) return;
		} catch {}
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

export async function start({ script, serverArgs = [], before } = {}) {
	const dir = mkdtempSync(join(tmpdir(), 'al-sdk-'));
	const procs = [];
	const logs = {};
	const spawnLogged = (name, args, env = {}) => {
		const p = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
		logs[name] = '';
		p.stdout.on('data', (d) => (logs[name] += d));
		p.stderr.on('data', (d) => (logs[name] += d));
		procs.push(p);
		return p;
	};
	let modelUrl;
	if (script) {
		const mport = await freePort();
		writeFileSync(join(dir, 'script.json'), JSON.stringify(script));
		spawnLogged('model', ['model-stub', '--listen', `127.0.0.1:${mport}`, '--script', join(dir, 'script.json')]);
		modelUrl = `http://127.0.0.1:${mport}`;
		await waitFor(async () => (await fetch(`${modelUrl}/healthz`)).ok, 'model stub');
	}
	// before(dir): set-up that must precede the server (e.g. peers it needs)
	const extra = before ? await before(dir) : null;
	const port = await freePort();
	const args = ['server', '--listen', `127.0.0.1:${port}`, '--data', join(dir, 'data'), ...serverArgs, ...(extra?.serverArgs ?? [])];
	if (modelUrl) args.push('--model-url', modelUrl);
	spawnLogged('server', args, { ANTHROPIC_API_KEY: '' });
	const baseURL = `http://127.0.0.1:${port}`;
	const keyFile = join(dir, 'data', 'admin.key');
	await waitFor(() => existsSync(keyFile) && readFileSync(keyFile, 'utf8').trim().length > 0, 'admin key');
	await waitFor(async () => {
		await fetch(baseURL + '/v1/agents');
		return true;
	}, 'server');
	const adminKey = readFileSync(keyFile, 'utf8').trim();
	const { default: Anthropic } = await loadSDK();
	const client = new Anthropic({ apiKey: adminKey, baseURL, maxRetries: 0 });
	return {
		dir,
		baseURL,
		adminKey,
		client,
		Anthropic,
		logs,
		extra,
		async stop() {
			if (extra?.stop) await extra.stop();
			for (const p of procs) p.kill('SIGTERM');
			await Promise.all(procs.map((p) => (p.exitCode !== null ? null : new Promise((r) => p.on('exit', r)))));
			rmSync(dir, { recursive: true, force: true });
		},
	};
}

export function assert(cond, msg) {
	if (!cond) throw new Error('assertion failed: ' + msg);
}

export function assertEq(a, b, msg) {
	if (a !== b) throw new Error(`assertion failed: ${msg}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
}

// Runs body with a started harness; prints logs on failure; exits non-zero.
export async function run(name, opts, body) {
	const h = await start(opts);
	let ok = false;
	try {
		await body(h);
		ok = true;
		console.log(`ok ${name}`);
	} catch (e) {
		console.error(`FAIL ${name}: ${e.stack || e}`);
		for (const [k, v] of Object.entries(h.logs)) console.error(`--- ${k} log (tail) ---\n${v.slice(-3000)}`);
	} finally {
		await h.stop();
	}
	process.exit(ok ? 0 : 1);
}
