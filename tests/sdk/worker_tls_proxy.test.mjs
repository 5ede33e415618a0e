// Our worker (`airlock worker poll`, the real binary) reaching the control
// plane over real TLS (`airlock server --tls-cert/--tls-key`, certificates
// made here by the openssl CLI) and through an enterprise forward proxy:
//   - https + --ca-file, through HTTPS_PROXY with credentials in the URL: a
//     session with several tool calls completes; every call, the long-lived
//     event stream included, went through the proxy's CONNECT tunnels;
//   - http through http_proxy: the proxy saw every request (poll, the
//     event stream, the results) as an absolute URI;
//   - in both, the proxy's credentials never reach the worker's log or audit
//     log, and the proxy variables never reach the sandbox (`env` in bash);
//   - fail closed: no --ca-file (system CAs) or a stranger's CA, the worker
//     runs no tool call, logs a TLS verification error and exits 1; a dead
//     proxy is retried with backoff and its credentials are not logged;
//   - a TLS-inspecting proxy (its own CA): refused before any byte of a
//     request reaches it, exit 1; with its CA in --ca-file, it works;
//   - libcurl has no default NO_PROXY: 127.0.0.1 goes through the proxy
//     unless NO_PROXY names it.
// The control plane's name (airlock-cp.test) resolves nowhere but in the
// proxy, so a session that completes proves no call bypassed it.
// TEST DOUBLES: the scripted model (`airlock model-stub`) and the forward
// proxy below (a few lines of Node: CONNECT tunnelling, absolute-URI
// forwarding, Basic proxy authentication, optional TLS interception).
// Everything else is real.
import { spawnSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The admin client (the SDK, Node's fetch) must trust the test CA, which
// Node reads at start-up only: make the certificates, then run this file
// again with NODE_EXTRA_CA_CERTS pointing at them.
if (!process.env.AL_TLS_DIR) {
	if (spawnSync('openssl', ['version']).status !== 0) {
		console.log('skip: no openssl CLI');
		process.exit(77);
	}
	const dir = mkdtempSync(join(tmpdir(), 'al-tlsp-'));
	const ossl = (...a) => {
		const r = spawnSync('openssl', a, { cwd: dir, encoding: 'utf8' });
		if (r.status !== 0) throw new Error(`openssl ${a[0]}: ${r.stderr}`);
	};
	ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=airlock test CA');
	ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=airlock-cp.test');
	writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:airlock-cp.test\nextendedKeyUsage=serverAuth\n');
	ossl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
	ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.pem', '-days', '2', '-subj', '/CN=stranger');
	// A TLS-inspecting proxy's CA and the certificate it forges for the control plane.
	ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'pca.key', '-out', 'pca.pem', '-days', '2', '-subj', '/CN=corp inspection CA');
	ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'mitm.key', '-out', 'mitm.csr', '-subj', '/CN=airlock-cp.test');
	ossl('x509', '-req', '-in', 'mitm.csr', '-CA', 'pca.pem', '-CAkey', 'pca.key', '-CAcreateserial', '-out', 'mitm.pem', '-days', '2', '-extfile', 'ext.cnf');
	writeFileSync(join(dir, 'both.pem'), readFileSync(join(dir, 'ca.pem'), 'utf8') + readFileSync(join(dir, 'pca.pem'), 'utf8'));
	const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
		stdio: 'inherit',
		env: { ...process.env, AL_TLS_DIR: dir, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') },
	});
	const code = await new Promise((r) => child.on('exit', (c, s) => r(c ?? (s ? 1 : 0))));
	rmSync(dir, { recursive: true, force: true });
	process.exit(code);
}

const { assert, assertEq } = await import('./harness.mjs');
const { runAll, until, listEvents, checkTranscript, scratch, startSession, setupEnvironment } = await import('./procs.mjs');
const { Worker, requireWorker } = await import('./worker_lib.mjs');
requireWorker();

const CERTS = process.env.AL_TLS_DIR;
const CP_HOST = 'airlock-cp.test';
const PROXY_USER = 'corp-user';
const PROXY_PASS = 'Pr0xyPassw0rd-do-not-log';
const PROXY_AUTH = 'Basic ' + Buffer.from(`${PROXY_USER}:${PROXY_PASS}`).toString('base64');

// ---- TEST DOUBLE: an enterprise forward proxy ----
// CONNECT host:port opens a tunnel (https); a request line with an absolute
// URI is forwarded (http). Both need Proxy-Authorization; CP_HOST resolves
// to 127.0.0.1 here only. It records what it saw. With intercept, it is a
// TLS-inspecting proxy: it answers each tunnel's TLS itself with a
// certificate from its own CA, reads the plaintext, and re-encrypts upstream.
function startProxy({ intercept } = {}) {
	const seen = { connects: [], requests: [], denied: 0, tunnels: 0, maxTunnels: 0, longestTunnelMs: 0, plain: '' };
	const target = (host) => (host === CP_HOST ? '127.0.0.1' : host);
	const server = http.createServer((req, res) => {
		if (req.headers['proxy-authorization'] !== PROXY_AUTH) {
			seen.denied++;
			res.writeHead(407, { 'proxy-authenticate': 'Basic realm="corp"' }).end();
			return;
		}
		let u;
		try {
			u = new URL(req.url);
		} catch {
			res.writeHead(400).end();
			return;
		}
		seen.requests.push(`${req.method} ${req.url}`);
		const headers = { ...req.headers };
		delete headers['proxy-authorization'];
		delete headers['proxy-connection'];
		const up = http.request({ host: target(u.hostname), port: u.port || 80, method: req.method, path: u.pathname + u.search, headers }, (ur) => {
			res.writeHead(ur.statusCode, ur.headers);
			// Now, not with the first byte of body: an event stream may send none for 15 s.
			res.flushHeaders();
			ur.pipe(res);
		});
		up.on('error', () => res.destroy());
		req.pipe(up);
		res.on('close', () => up.destroy());
	});
	server.on('connect', (req, sock, head) => {
		if (req.headers['proxy-authorization'] !== PROXY_AUTH) {
			seen.denied++;
			sock.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="corp"\r\nContent-Length: 0\r\n\r\n');
			return;
		}
		seen.connects.push(req.url);
		const [host, port] = req.url.split(':');
		const t0 = Date.now();
		if (intercept) {
			sock.write('HTTP/1.1 200 Connection established\r\n\r\n');
			if (head.length) sock.unshift(head);
			const inner = new tls.TLSSocket(sock, { isServer: true, key: intercept.key, cert: intercept.cert });
			const up = tls.connect({ host: target(host), port: Number(port), servername: host, ca: intercept.ca });
			inner.on('data', (d) => (seen.plain += d.toString('latin1')));
			inner.pipe(up);
			up.pipe(inner);
			const end = () => {
				inner.destroy();
				up.destroy();
				sock.destroy();
			};
			for (const x of [inner, up, sock]) {
				x.on('error', end);
				x.on('close', end);
			}
			return;
		}
		const up = net.connect(Number(port), target(host), () => {
			sock.write('HTTP/1.1 200 Connection established\r\n\r\n');
			up.write(head);
			up.pipe(sock);
			sock.pipe(up);
		});
		seen.tunnels++;
		seen.maxTunnels = Math.max(seen.maxTunnels, seen.tunnels);
		let closed = false;
		const close = () => {
			if (closed) return;
			closed = true;
			seen.tunnels--;
			seen.longestTunnelMs = Math.max(seen.longestTunnelMs, Date.now() - t0);
			up.destroy();
			sock.destroy();
		};
		up.on('error', close);
		sock.on('error', close);
		up.on('close', close);
		sock.on('close', close);
	});
	return new Promise((r) =>
		server.listen(0, '127.0.0.1', () =>
			r({
				seen,
				port: server.address().port,
				close: () => {
					server.closeAllConnections?.();
					return new Promise((c) => server.close(() => c()));
				},
			}),
		),
	);
}

// bash `env` first: what the sandbox sees of the worker's environment.
const script = {
	steps: [
		{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'env; echo ran > ran.txt' } }] },
		{ content: [{ type: 'tool_use', name: 'write', input: { file_path: 'a.txt', content: 'over the proxy\n' } }] },
		{ content: [{ type: 'tool_use', name: 'read', input: { file_path: 'a.txt' } }] },
		{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'cat ran.txt a.txt' } }] },
		{ content: [{ type: 'text', text: 'done' }], stop_reason: 'end_turn' },
	],
};
const CALLS = 4;
const text = (r) => r.content.map((b) => b.text ?? '').join('');

async function waitIdle(c, sessionId, ms = 20000) {
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

const tlsArgs = ['--tls-cert', join(CERTS, 'server.pem'), '--tls-key', join(CERTS, 'server.key')];

// A server (TLS or not) with the model stub; the admin client on 127.0.0.1.
async function fleetUp(f, tls) {
	await f.startModel(script);
	await f.startServer(tls ? { args: tlsArgs } : {});
	if (tls) assert(f.baseURL.startsWith('https://'), 'the server speaks https');
	// Commands run as another uid inside the sandbox: let it reach its workspace.
	chmodSync(f.dir, 0o711);
}

// The worker's environment: the proxy variables given, every other proxy
// variable of ours cleared (an empty value is "unset" to libcurl).
function proxyEnv(vars) {
	const env = {};
	for (const k of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy']) env[k] = '';
	return { ...env, ...vars };
}

function assertNoProxySecret(text, where) {
	for (const s of [PROXY_PASS, PROXY_AUTH.slice(6), `${PROXY_USER}:`]) assert(!text.includes(s), `proxy credentials appear in ${where}`);
}

// A full session through the proxy; returns the worker and what the sandbox's env printed.
async function sessionThroughProxy(f, proxy, { scheme, workerEnv, args = [] }) {
	const port = new URL(f.baseURL).port;
	const { agent, env, key } = await setupEnvironment(f.client, 'proxy');
	const s = await startSession(f.client, agent, env, 'go');
	const w = new Worker({ dir: scratch(f.dir, 'w'), baseURL: `${scheme}://${CP_HOST}:${port}`, environmentId: env.id, environmentKey: key.key, env: workerEnv, args });
	w.start();
	f.procs.push({ name: 'worker', args: ['worker'], get log() { return w.log; }, exit: null, kill: () => w.stop() });
	try {
		const evs = await w.alive(waitIdle(f.client, s.id));
		const uses = checkTranscript(evs, s.id);
		assertEq(uses.length, CALLS, 'tool calls');
		const results = evs.filter((e) => e.type === 'user.tool_result');
		for (const r of results) assert(!r.is_error, 'tool result ok: ' + text(r));
		assert(text(results[3]).includes('over the proxy'), 'the last call sees the written file');
		await until(() => /stopped work work_id=/.test(w.log), 'item stopped');
		const exit = await w.stop();
		assertEq(exit.code, 0, 'worker exit status');
		w.assertClean();
		const audit = w.verifyAudit();
		for (const [t, where] of [
			[w.log, 'the worker log'],
			[audit, 'the audit log'],
		]) {
			assertNoProxySecret(t, where);
			assert(!t.includes(key.key), `the environment key in ${where}`);
		}
		const envOut = text(results[0]);
		assert(/PATH=/.test(envOut), 'env printed the sandbox environment: ' + envOut);
		assertNoProxySecret(envOut, "the sandbox's env");
		assert(!new RegExp(`^(https?|all|no)_proxy=`, 'im').test(envOut), "the worker's proxy variables reached the sandbox: " + envOut);
		assert(!envOut.includes(String(proxy.port)), "the proxy's port reached the sandbox");
		return { w, session: s, env };
	} catch (e) {
		await w.stop();
		e.message += '\n--- worker ---\n' + w.log.slice(-4000);
		throw e;
	}
}

await runAll([
	[
		'https with --ca-file through HTTPS_PROXY (CONNECT, credentials in the URL): the session completes',
		async (f) => {
			await fleetUp(f, true);
			const proxy = await startProxy();
			try {
				const port = new URL(f.baseURL).port;
				await sessionThroughProxy(f, proxy, {
					scheme: 'https',
					// debug: the most the worker ever logs, checked for the credentials.
					args: ['--ca-file', join(CERTS, 'ca.pem'), '--log-level', 'debug'],
					workerEnv: proxyEnv({ HTTPS_PROXY: `http://${PROXY_USER}:${PROXY_PASS}@127.0.0.1:${proxy.port}` }),
				});
				assertEq(proxy.seen.denied, 0, 'no request without the proxy credentials');
				assert(proxy.seen.connects.length > 0, 'the proxy saw CONNECTs');
				for (const c of proxy.seen.connects) assertEq(c, `${CP_HOST}:${port}`, 'CONNECT target');
				// The poll and the session's event stream are open at once: two tunnels,
				// one held for the session's life (the stream).
				assert(proxy.seen.maxTunnels >= 2, `concurrent tunnels: ${proxy.seen.maxTunnels}`);
				assert(proxy.seen.longestTunnelMs >= 1000, `longest tunnel ${proxy.seen.longestTunnelMs} ms`);
			} finally {
				await proxy.close();
			}
		},
	],
	[
		'http through http_proxy (absolute URIs): every call, the event stream included, went through it',
		async (f) => {
			await fleetUp(f, false);
			const proxy = await startProxy();
			try {
				const port = new URL(f.baseURL).port;
				const url = `http://${PROXY_USER}:${PROXY_PASS}@127.0.0.1:${proxy.port}`;
				// libcurl reads only the lower-case http_proxy (upper case is
				// ignored against "httpoxy"); operators set both.
				// The other sandbox backend here (the https case has native), so
				// the sandbox's env is checked under both.
				const args = existsSync('/usr/bin/bwrap') ? ['--backend', 'bwrap'] : [];
				const { w, session, env } = await sessionThroughProxy(f, proxy, { scheme: 'http', args, workerEnv: proxyEnv({ http_proxy: url, HTTP_PROXY: url }) });
				if (args.length) assert(/"backend":"bwrap"/.test(readFileSync(w.audit, 'utf8')), 'the bwrap backend ran the calls');
				const base = `http://${CP_HOST}:${port}`;
				const saw = (re) => proxy.seen.requests.some((r) => re.test(r));
				assertEq(proxy.seen.denied, 0, 'no request without the proxy credentials');
				assert(saw(new RegExp(`^GET ${base}/v1/environments/${env.id}/work/poll\\?`)), 'the poll went through the proxy');
				assert(saw(new RegExp(`^GET ${base}/v1/sessions/${session.id}/events/stream`)), 'the event stream went through the proxy');
				assert(saw(new RegExp(`^POST ${base}/v1/sessions/${session.id}/events`)), 'the results went through the proxy');
				for (const r of proxy.seen.requests) assert(r.split(' ')[1].startsWith(base + '/'), 'every request is to the control plane: ' + r);
			} finally {
				await proxy.close();
			}
		},
	],
	[
		'fail closed: no --ca-file or a stranger CA runs no tool call and exits 1 naming TLS; a dead proxy is retried, its credentials unlogged',
		async (f) => {
			await fleetUp(f, true);
			const { agent, env, key } = await setupEnvironment(f.client, 'tlsfail');
			const s = await startSession(f.client, agent, env, 'go');
			const runs = [
				['system CAs', []],
				['a stranger CA', ['--ca-file', join(CERTS, 'other.pem')]],
			];
			for (const [what, args] of runs) {
				const w = new Worker({ dir: scratch(f.dir, `w-${what.replace(/ /g, '-')}`), baseURL: f.baseURL, environmentId: env.id, environmentKey: key.key, args, env: proxyEnv({}) });
				w.start();
				const t = setTimeout(() => w.kill('SIGKILL'), 15000);
				const exit = await w.cur.exited;
				clearTimeout(t);
				assertEq(exit.code, 1, `${what}: exit status (log: ${w.log})`);
				assert(/TLS verification of the control plane failed \([^)]*certificate/i.test(w.log), `${what}: a clear TLS error: ${w.log}`);
				assert(!w.log.includes(key.key) && !w.log.includes('alk_env_'), `${what}: the key in the log`);
				assert(!/claimed work|answered tool call/.test(w.log), `${what}: no work was claimed`);
				w.assertClean();
				assert(!existsSync(join(w.workspace(s.id), 'ran.txt')), `${what}: a tool call ran`);
			}
			// `worker run` (one item claimed for it, as `poll --on-work` would)
			// without the CA: it fails closed too, naming TLS.
			const H = { authorization: `Bearer ${key.key}`, 'anthropic-beta': 'managed-agents-2026-04-01', 'anthropic-version': '2023-06-01' };
			const item = await until(async () => {
				const r = await fetch(`${f.baseURL}/v1/environments/${env.id}/work/poll?block_ms=500`, { headers: H });
				const j = r.status === 200 ? await r.json() : null;
				return j && j.id ? j : null;
			}, 'the item, claimed by the test');
			const wr = new Worker({
				dir: scratch(f.dir, 'w-run'),
				baseURL: f.baseURL,
				mode: 'run',
				env: proxyEnv({ ANTHROPIC_WORK_ID: item.id, ANTHROPIC_ENVIRONMENT_ID: env.id, ANTHROPIC_SESSION_ID: item.data.id, ANTHROPIC_WORK_SECRET: item.secret }),
			});
			wr.start();
			const tr = setTimeout(() => wr.kill('SIGKILL'), 15000);
			const rexit = await wr.cur.exited;
			clearTimeout(tr);
			assertEq(rexit.code, 1, `worker run: exit status (log: ${wr.log})`);
			assert(/session fetch failed \(status 0 err -\d+: SSL certificate problem/.test(wr.log), `worker run: a clear TLS error: ${wr.log}`);
			assert(!wr.log.includes(item.secret) && !wr.log.includes(key.key), 'worker run: a secret in the log');
			assert(!existsSync(join(wr.workspace(s.id), 'ran.txt')), 'worker run: a tool call ran');
			wr.assertClean();

			// The model asked for the call; nobody answered it.
			const evs = await listEvents(f.client, s.id);
			assert(evs.some((e) => e.type === 'agent.tool_use'), 'the session has a pending call');
			assertEq(evs.filter((e) => e.type === 'user.tool_result').length, 0, 'tool results in the session');

			// A proxy that is down: a transient failure, retried with backoff;
			// the log names the hop but not the credentials in its URL.
			const dead = await (await import('./harness.mjs')).freePort();
			const w = new Worker({
				dir: scratch(f.dir, 'w-dead-proxy'),
				baseURL: `https://${CP_HOST}:${new URL(f.baseURL).port}`,
				environmentId: env.id,
				environmentKey: key.key,
				args: ['--ca-file', join(CERTS, 'ca.pem')],
				env: proxyEnv({ HTTPS_PROXY: `http://${PROXY_USER}:${PROXY_PASS}@127.0.0.1:${dead}` }),
			});
			w.start();
			try {
				await w.alive(until(() => /poll failed \(status 0 err -\d+: [^)]+\); backing off/.test(w.log), 'a poll failure logged'));
				assertNoProxySecret(w.log, 'the worker log (dead proxy)');
			} finally {
				await w.stop();
			}
			assertNoProxySecret(readFileSync(w.audit, 'utf8'), 'the audit log (dead proxy)');
		},
	],
	[
		'a TLS-inspecting proxy: refused (nothing sent in its clear, exit 1) until its CA is in --ca-file',
		async (f) => {
			await fleetUp(f, true);
			const rd = (n) => readFileSync(join(CERTS, n), 'utf8');
			const proxy = await startProxy({ intercept: { key: rd('mitm.key'), cert: rd('mitm.pem'), ca: rd('ca.pem') } });
			try {
				const port = new URL(f.baseURL).port;
				const via = `http://${PROXY_USER}:${PROXY_PASS}@127.0.0.1:${proxy.port}`;
				const { env, key } = await setupEnvironment(f.client, 'mitm');
				const w = new Worker({ dir: scratch(f.dir, 'w-mitm'), baseURL: `https://${CP_HOST}:${port}`, environmentId: env.id, environmentKey: key.key, args: ['--ca-file', join(CERTS, 'ca.pem')], env: proxyEnv({ HTTPS_PROXY: via }) });
				w.start();
				const t = setTimeout(() => w.kill('SIGKILL'), 15000);
				const exit = await w.cur.exited;
				clearTimeout(t);
				assertEq(exit.code, 1, `exit status behind the inspecting proxy (log: ${w.log})`);
				assert(/TLS verification of the control plane failed \(SSL certificate problem/.test(w.log), 'a clear TLS error: ' + w.log);
				assert(proxy.seen.connects.length > 0, 'it went through the proxy');
				// The handshake failed before any request: the proxy read nothing, the key least of all.
				assertEq(proxy.seen.plain, '', 'plaintext the inspecting proxy read');
				w.assertClean();
				// The remedy the docs give: its CA in ca_file (with the control plane's).
				await sessionThroughProxy(f, proxy, { scheme: 'https', args: ['--ca-file', join(CERTS, 'both.pem')], workerEnv: proxyEnv({ HTTPS_PROXY: via }) });
				assert(/^GET \/v1\/environments\/[^ ]+\/work\/poll\?/m.test(proxy.seen.plain), 'the proxy inspected the calls');
				assert(proxy.seen.plain.includes('/events/stream'), 'the proxy inspected the event stream');
			} finally {
				await proxy.close();
			}
		},
	],
	[
		'NO_PROXY: libcurl has no default exceptions, so 127.0.0.1 goes through the proxy unless NO_PROXY names it',
		async (f) => {
			await fleetUp(f, true);
			const proxy = await startProxy();
			try {
				const port = new URL(f.baseURL).port;
				const { env, key } = await setupEnvironment(f.client, 'noproxy');
				const via = `http://${PROXY_USER}:${PROXY_PASS}@127.0.0.1:${proxy.port}`;
				const polls = async (name, extra) => {
					const w = new Worker({ dir: scratch(f.dir, name), baseURL: f.baseURL, environmentId: env.id, environmentKey: key.key, args: ['--ca-file', join(CERTS, 'ca.pem')], env: proxyEnv({ HTTPS_PROXY: via, ...extra }) });
					w.start();
					try {
						await w.alive(until(() => /idle; polling for work/.test(w.log), `${name}: a successful poll`));
					} finally {
						await w.stop();
					}
				};
				// Wrong proxy credentials: refused with 407 on CONNECT; logged
				// (libcurl's text), retried, and the wrong password not shown.
				{
					const w = new Worker({ dir: scratch(f.dir, 'w-407'), baseURL: f.baseURL, environmentId: env.id, environmentKey: key.key, args: ['--ca-file', join(CERTS, 'ca.pem')], env: proxyEnv({ HTTPS_PROXY: `http://${PROXY_USER}:wrong-${PROXY_PASS}@127.0.0.1:${proxy.port}` }) });
					w.start();
					try {
						await w.alive(until(() => /poll failed \(status 0 err -\d+: [^)]*407[^)]*\); backing off/.test(w.log), 'a 407 logged'));
						assertNoProxySecret(w.log, 'the worker log (407)');
					} finally {
						await w.stop();
					}
					assert(proxy.seen.denied > 0, 'the proxy refused the wrong credentials');
				}
				await polls('w-default', {});
				assert(proxy.seen.connects.includes(`127.0.0.1:${port}`), `without NO_PROXY the proxy saw the CONNECT: ${proxy.seen.connects}`);
				const before = proxy.seen.connects.length;
				await polls('w-bypass', { NO_PROXY: '127.0.0.1' });
				assertEq(proxy.seen.connects.length, before, 'with NO_PROXY=127.0.0.1 the proxy saw nothing new');
			} finally {
				await proxy.close();
			}
		},
	],
]);
