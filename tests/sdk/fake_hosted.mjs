// A TEST DOUBLE: a scripted fake of the hosted Managed Agents API, as far as
// a self-hosted worker speaks it (the environment work queue and the session
// events of one environment). It exists so the worker's handling of the
// hosted API (404/409/412 bodies, `null` polls, the secret's format, the
// sessions token, paging, the live-only SSE stream) and its behaviour under
// faults can be tested without network. It never stands in for the thing
// under test; nothing in production uses it.
//
// Built from the official SDK's documented behaviour (@anthropic-ai/sdk
// 1.14.0: resources/beta/environments/work.d.ts, resources/beta/sessions/
// events.d.ts, core/pagination.js PageCursor, core/streaming.js, lib/
// environments/{poller,worker}.js, lib/tools/SessionToolRunner.js) and
// ../shared/reference/managed-agents-protocol.md. The SDK's own
// EnvironmentWorker runs against it in worker_fake_hosted.test.mjs, which is
// what keeps this fake honest.
//
// It plays the agent's side itself: each session has a scripted list of tool
// calls; it emits agent.tool_use for the first, waits for its
// user.tool_result, emits the next, ... and ends the turn with agent.message
// and session.status_idle {stop_reason:{type:"end_turn"}}.
//
// Faults (constructor option `faults`, or POST /_fake/faults with the same
// JSON, merged):
//   heartbeat412At: N        answer the Nth heartbeat (1-based, per item) with
//                            412 as if another worker had taken the lease; the
//                            item is then requeued after requeueDelayMs (a
//                            later poll claims it again with a new sessions
//                            token); requeueOnLeaseLoss:false keeps it away.
//   leaseNotExtendedAt: N    the Nth heartbeat answers 200 with
//                            lease_extended:false; the lease is lost (requeued
//                            as for a 412).
//   heartbeatRejectAt: N     (heartbeatRejectStatus, default 404) the Nth
//                            heartbeat is refused with that status, as if the
//                            item were gone (404) or the sessions token
//                            revoked (401/403); the claim's lease is lost
//                            (requeued as for a 412). Tests may set this (or
//                            leaseNotExtendedAt) while the worker runs, to
//                            `item.beats + 1`, to land the loss mid-call.
//   heartbeatFailAfter: N    (heartbeatFailStatus, default 503) every beat of
//                            the first claim after the Nth fails; the lease
//                            lapses ttlSeconds after the last good beat and
//                            the item is requeued.
//   duplicateEvents: true    every event goes out twice on the stream and is
//                            listed twice in history (same id).
//   cutStreamAfter: N | [N1, N2, ...]
//                            the k-th stream connection is cut (socket
//                            destroyed) after it delivered Nk events (a number:
//                            the first connection only).
//   failResultPosts: K       the first K POSTs carrying a user.tool_result fail
//   failResultStatus: 500 | 503 | 'reset' | 'lost'   (default 503; 'reset'
//                            destroys the socket without an answer; nothing
//                            is stored; 'lost' stores the events and then
//                            destroys the socket, so the answer is lost).
//   lostUnstreamed: true     with 'lost', the stored result is not pushed to
//                            open streams (a stream lagging behind history):
//                            only a history read can find it.
//   lostHidden: true         with 'lost', the stored result is in neither the
//                            stream nor history lists (reads lagging behind
//                            the store): only the server's refusal below
//                            can tell the worker.
//   refuseDuplicates: true   a user.tool_result for a call already answered
//                            gets 400 invalid_request_error, error_code
//                            tool_use_already_answered, and is not stored
//                            (what airlock's control plane does).
//   poll429: K, retryAfter: S  the first K polls get 429 with retry-after S.
//   nullPolls: K             the first K polls return JSON null even when work
//                            is queued.
//   pollStatus: 401 (or any) every poll gets that error status.
//   stopAfterResults: N      after the Nth stored tool result an operator
//                            force-stops the item (state stopped; the agent
//                            emits nothing more): heartbeats report it and a
//                            later stop gets 409.
//   terminateAfterResults: N after the Nth stored tool result the session is
//                            terminated (session.status_terminated; its GET
//                            says status "terminated"; the turn counts as done).
// Option extraItems: [{type:'healthcheck'} | {type:'session', id}] queues
// items ahead of the sessions' (a session id the fake lacks answers 404).
//
// Everything it received is in `fake.requests` ({t, method, path, query,
// auth, headers, body, status}); auth is 'env' (the environment key),
// 'session:<session id>:<claim>' (a sessions token), 'bad' or 'none'.
//
// Use from node:  const f = new FakeHosted({sessions:[{calls:[...]}]}); await f.start();
// Or standalone:  node fake_hosted.mjs CONFIG.json   (prints "listening on URL";
//                 GET /_fake/state returns requests and histories).
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

const BETA = 'managed-agents-2026-04-01';

function rid(prefix) {
	return prefix + '_01' + randomBytes(12).toString('base64url').replace(/[-_]/g, 'x');
}

// RFC 3339 with microseconds, strictly increasing within the process, so two
// heartbeats in one millisecond still differ (the CAS compares strings).
let lastMicros = 0;
function stamp() {
	let us = Date.now() * 1000;
	if (us <= lastMicros) us = lastMicros + 1;
	lastMicros = us;
	const d = new Date(Math.floor(us / 1000)).toISOString(); // ...sss Z
	return d.slice(0, -1) + String(us % 1000).padStart(3, '0') + 'Z';
}

function errorBody(type, message, details) {
	const e = { type, message };
	if (details !== undefined) e.details = details;
	return { type: 'error', error: e };
}

const ERROR_TYPES = {
	400: 'invalid_request_error',
	401: 'authentication_error',
	403: 'permission_error',
	404: 'not_found_error',
	409: 'conflict_error',
	412: 'conflict_error',
	429: 'rate_limit_error',
	500: 'api_error',
	503: 'api_error',
	529: 'overloaded_error',
};

// The work object as the SDK types it (BetaSelfHostedWork), secret aside.
const WIRE_FIELDS = ['id', 'type', 'environment_id', 'data', 'state', 'metadata', 'acknowledged_at', 'started_at', 'latest_heartbeat_at', 'stop_requested_at', 'stopped_at', 'created_at'];

export class FakeHosted {
	/*
	 * opts:
	 *   environmentId, environmentKey: generated when absent
	 *   sessions: [{id?, calls:[{name, input, evaluated_permission?}], text?}]
	 *             each gets one queued work item at start()
	 *   ttlSeconds: the lease TTL answered to heartbeats (default 4; the worker
	 *               beats every ttl/2)
	 *   requeueDelayMs: after a 412, how long the item stays away (1500)
	 *   pageSize: the largest history page served whatever `limit` asks (default
	 *             unbounded; small values exercise next_page)
	 *   faults: see the header
	 */
	constructor(opts = {}) {
		this.environmentId = opts.environmentId ?? rid('env');
		this.environmentKey = opts.environmentKey ?? 'sk-ant-envk-' + randomBytes(18).toString('hex');
		this.ttlSeconds = opts.ttlSeconds ?? 4;
		this.requeueDelayMs = opts.requeueDelayMs ?? 1500;
		this.pageSize = opts.pageSize ?? Infinity;
		this.faults = { failResultStatus: 503, requeueOnLeaseLoss: true, ...(opts.faults ?? {}) };
		this.requests = [];
		this.sessions = new Map(); // id -> session state
		this.items = new Map(); // work id -> item state
		this.tokens = new Map(); // sessions token -> {item, claim}
		this.streams = new Set(); // live SSE connections
		this.counts = { poll: 0, resultPosts: 0, streamConns: 0 };
		this.waiters = [];
		this.issuedSecrets = [];
		this.timers = [];
		// Items queued ahead of the sessions': {type:'healthcheck'}, or
		// {type:'session', id} for a session this fake does not have (404).
		for (const x of opts.extraItems ?? []) this.addItem({ type: x.type ?? 'session', id: x.id ?? rid(x.type === 'healthcheck' ? 'hc' : 'sesn') });
		for (const s of opts.sessions ?? [{ calls: [] }]) this.addSession(s);
	}

	addItem(data) {
		const w = {
			id: rid('work'),
			type: 'work',
			environment_id: this.environmentId,
			data,
			state: 'queued',
			metadata: {},
			acknowledged_at: null,
			started_at: null,
			latest_heartbeat_at: null,
			stop_requested_at: null,
			stopped_at: null,
			created_at: stamp(),
			// not part of the object on the wire:
			claim: 0,
			last_heartbeat: null,
			beats: 0,
			availableAt: 0,
			lostClaims: [], // claims whose lease was lost (412)
			stopsAfterLoss: [], // stop requests from a lost claim: must stay empty
		};
		this.items.set(w.id, w);
		return w;
	}

	addSession(spec) {
		const id = spec.id ?? rid('sesn');
		const s = {
			id,
			calls: spec.calls ?? [],
			next: 0, // index of the next call to emit
			events: [],
			status: 'idle',
			text: spec.text ?? 'scripted turn',
			done: false,
			pendingCall: null,
		};
		this.sessions.set(id, s);
		// The turn starts as on the platform: a user.message reaches the idle
		// session, it runs, the first call is emitted and a work item is queued.
		// The first agent.tool_use is in history before any worker attaches, so
		// only a worker that reconciles history after opening the stream sees it.
		this.emit(s, { type: 'user.message', content: [{ type: 'text', text: s.text }] });
		s.status = 'running';
		this.emit(s, { type: 'session.status_running' });
		this.advance(s);
		s.workId = this.addItem({ type: 'session', id }).id;
		return s;
	}

	// ---- the agent's side ----

	emit(s, ev, live = true) {
		const full = { id: rid('sevt'), processed_at: stamp(), ...ev };
		s.events.push(full);
		if (live) for (const st of this.streams) if (st.session === s.id) this.streamWrite(st, full);
		this.wake();
		return full;
	}

	advance(s) {
		if (s.next < s.calls.length) {
			const c = s.calls[s.next++];
			s.pendingCall = this.emit(s, {
				type: 'agent.tool_use',
				name: c.name,
				input: c.input ?? {},
				...(c.evaluated_permission ? { evaluated_permission: c.evaluated_permission } : {}),
			});
			return;
		}
		s.pendingCall = null;
		this.emit(s, { type: 'agent.message', content: [{ type: 'text', text: 'all calls answered' }] });
		s.status = 'idle';
		this.emit(s, { type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
		s.done = true;
	}

	// ---- what tests read ----

	session(id) {
		return this.sessions.get(id ?? [...this.sessions.keys()][0]);
	}
	item(sessionId) {
		return this.items.get(this.session(sessionId).workId);
	}
	// tool_use id -> number of user.tool_result events stored for it.
	answers(sessionId) {
		const s = this.session(sessionId);
		const m = new Map();
		for (const e of s.events) if (e.type === 'agent.tool_use') m.set(e.id, 0);
		for (const e of s.events) if (e.type === 'user.tool_result') m.set(e.tool_use_id, (m.get(e.tool_use_id) ?? 0) + 1);
		return m;
	}
	results(sessionId) {
		return this.session(sessionId).events.filter((e) => e.type === 'user.tool_result');
	}
	// Throws unless every call of every session was emitted and answered exactly once.
	checkExactlyOnce() {
		for (const s of this.sessions.values()) {
			if (!s.done) throw new Error(`session ${s.id}: turn not finished (${s.next}/${s.calls.length} calls emitted)`);
			for (const [id, n] of this.answers(s.id)) if (n !== 1) throw new Error(`session ${s.id}: call ${id} answered ${n} times`);
			for (const r of this.results(s.id))
				if (!s.events.some((e) => e.type === 'agent.tool_use' && e.id === r.tool_use_id))
					throw new Error(`session ${s.id}: result for unknown call ${r.tool_use_id}`);
		}
	}
	// Everything that must never leak: the environment key, every sessions
	// token issued and every secret blob delivered.
	secrets() {
		return [this.environmentKey, ...this.tokens.keys(), ...this.issuedSecrets];
	}
	allDone() {
		return [...this.sessions.values()].every((s) => s.done);
	}
	// Resolves when pred() holds (checked after every event and request).
	waitFor(pred, what, ms = 20000) {
		if (pred()) return Promise.resolve();
		return new Promise((resolve, reject) => {
			const w = { pred, resolve };
			w.timer = setTimeout(() => {
				this.waiters = this.waiters.filter((x) => x !== w);
				reject(new Error(`fake: timed out waiting for ${what}`));
			}, ms);
			this.waiters.push(w);
		});
	}
	wake() {
		for (const w of [...this.waiters]) {
			let ok = false;
			try {
				ok = w.pred();
			} catch {}
			if (ok) {
				clearTimeout(w.timer);
				this.waiters = this.waiters.filter((x) => x !== w);
				w.resolve();
			}
		}
	}
	requestsTo(re, method) {
		return this.requests.filter((r) => re.test(r.path) && (!method || r.method === method));
	}

	// ---- HTTP ----

	async start(port = 0) {
		this.server = http.createServer((req, res) => this.handle(req, res));
		this.sockets = new Set();
		this.server.on('connection', (s) => {
			this.sockets.add(s);
			s.on('close', () => this.sockets.delete(s));
		});
		await new Promise((r) => this.server.listen(port, '127.0.0.1', r));
		this.baseURL = `http://127.0.0.1:${this.server.address().port}`;
		return this.baseURL;
	}

	async stop() {
		for (const t of this.timers) clearTimeout(t);
		for (const w of this.waiters) clearTimeout(w.timer);
		this.waiters = [];
		for (const s of this.sockets ?? []) s.destroy();
		if (this.server) await new Promise((r) => this.server.close(r));
	}

	send(res, rec, status, body, headers = {}) {
		rec.status = status;
		const text = JSON.stringify(body);
		res.writeHead(status, { 'content-type': 'application/json', 'request-id': rid('req'), ...headers });
		res.end(text);
		this.wake();
	}
	fail(res, rec, status, message, details, headers) {
		this.send(res, rec, status, errorBody(ERROR_TYPES[status] ?? 'api_error', message, details), headers);
	}

	authOf(req) {
		const h = req.headers.authorization ?? '';
		const m = /^Bearer (.+)$/.exec(h);
		if (!m) return req.headers['x-api-key'] ? { kind: 'bad' } : { kind: 'none' };
		if (m[1] === this.environmentKey) return { kind: 'env' };
		const t = this.tokens.get(m[1]);
		if (t) return { kind: 'session', ...t };
		return { kind: 'bad' };
	}

	async handle(req, res) {
		const url = new URL(req.url, 'http://x');
		const chunks = [];
		for await (const c of req) chunks.push(c);
		const raw = Buffer.concat(chunks).toString('utf8');
		let body;
		try {
			body = raw.length ? JSON.parse(raw) : undefined;
		} catch {
			body = { unparsable: raw };
		}
		const auth = this.authOf(req);
		const rec = {
			t: Date.now(),
			method: req.method,
			path: url.pathname,
			query: Object.fromEntries(url.searchParams),
			auth: auth.kind === 'session' ? `session:${auth.item.data.id}:${auth.claim}` : auth.kind,
			headers: { ...req.headers },
			body,
			status: 0,
		};
		if (!url.pathname.startsWith('/_fake/')) this.requests.push(rec);
		try {
			await this.route(req, res, url, body, auth, rec);
		} catch (e) {
			if (!res.headersSent) this.fail(res, rec, 500, 'fake: ' + e.message);
		}
	}

	async route(req, res, url, body, auth, rec) {
		const p = url.pathname;
		let m;
		if (p === '/_fake/state') {
			return this.send(res, rec, 200, {
				requests: this.requests,
				sessions: Object.fromEntries([...this.sessions].map(([k, s]) => [k, { done: s.done, events: s.events, workId: s.workId }])),
				items: Object.fromEntries([...this.items].map(([k, { lapseTimer, ...w }]) => [k, w])),
			});
		}
		if (p === '/_fake/faults' && req.method === 'POST') {
			Object.assign(this.faults, body ?? {});
			return this.send(res, rec, 200, this.faults);
		}
		if (p.startsWith('/v1/') && !(req.headers['anthropic-beta'] ?? '').split(',').includes(BETA))
			return this.fail(res, rec, 400, `this endpoint needs the anthropic-beta header ${BETA}`);
		if (auth.kind === 'none' || auth.kind === 'bad') return this.fail(res, rec, 401, 'invalid x-api-key or bearer token');

		if ((m = /^\/v1\/environments\/([^/]+)\/work(\/.*)?$/.exec(p))) {
			if (m[1] !== this.environmentId) return this.fail(res, rec, 404, `environment ${m[1]} not found`);
			const rest = m[2] ?? '';
			if (rest === '/poll' && req.method === 'GET') return this.poll(req, res, url, auth, rec);
			if (rest === '/stats' && req.method === 'GET') {
				if (auth.kind !== 'env') return this.fail(res, rec, 401, 'this endpoint needs the environment key');
				const q = [...this.items.values()].filter((w) => w.state === 'queued');
				return this.send(res, rec, 200, { depth: q.length, pending: q.length, oldest_queued_at: q[0]?.created_at ?? null, workers_polling: 0 });
			}
			const w = /^\/(work_[^/]+)(\/[a-z]+)?$/.exec(rest);
			if (!w) return this.fail(res, rec, 404, `no route ${req.method} ${p}`);
			const item = this.items.get(w[1]);
			if (!item) return this.fail(res, rec, 404, `work item ${w[1]} not found`);
			// Per-item calls: the environment key, or this item's current sessions token.
			if (auth.kind === 'session' && auth.item !== item) return this.fail(res, rec, 401, 'the sessions token does not belong to this work item');
			const verb = w[2] ?? '';
			if (verb === '/ack' && req.method === 'POST') return this.ack(res, item, auth, rec);
			if (verb === '/heartbeat' && req.method === 'POST') return this.heartbeat(res, url, item, auth, rec);
			if (verb === '/stop' && req.method === 'POST') return this.stopItem(res, item, body, auth, rec);
			if (verb === '' && req.method === 'GET') return this.send(res, rec, 200, this.wire(item, false));
			return this.fail(res, rec, 404, `no route ${req.method} ${p}`);
		}
		if ((m = /^\/v1\/sessions\/([^/]+)(\/events(\/stream)?)?$/.exec(p))) {
			const s = this.sessions.get(m[1]);
			if (!s) return this.fail(res, rec, 404, `session ${m[1]} not found`);
			if (auth.kind === 'session' && auth.item.data.id !== s.id) return this.fail(res, rec, 401, 'the sessions token does not belong to this session');
			if (auth.kind === 'session' && auth.revoked) return this.fail(res, rec, 401, 'the sessions token was revoked');
			if (!m[2] && req.method === 'GET') return this.send(res, rec, 200, this.sessionObject(s));
			if (m[3] && req.method === 'GET') return this.stream(req, res, s, rec);
			if (m[2] && !m[3] && req.method === 'GET') return this.list(res, url, s, rec);
			if (m[2] && !m[3] && req.method === 'POST') return this.post(req, res, s, body, rec);
			return this.fail(res, rec, 404, `no route ${req.method} ${p}`);
		}
		return this.fail(res, rec, 404, `no route ${req.method} ${p}`);
	}

	wire(item, withSecret) {
		const pub = {};
		for (const k of WIRE_FIELDS) pub[k] = item[k];
		if (!withSecret) return { ...pub, secret: null };
		const secret = Buffer.from(JSON.stringify({ sessions_token: item.token, api_base_url: this.baseURL })).toString('base64url');
		this.issuedSecrets.push(secret);
		return { ...pub, secret };
	}

	sessionObject(s) {
		return {
			id: s.id,
			type: 'session',
			status: s.status,
			environment_id: this.environmentId,
			agent: { id: 'agent_fake', type: 'agent', name: 'fake', model: 'claude-sonnet-4-5', skills: [], tools: [{ type: 'agent_toolset_20260401' }], mcp_servers: [], version: 1 },
			resources: [],
			metadata: {},
			title: null,
			created_at: s.events[0]?.processed_at,
			updated_at: s.events.at(-1)?.processed_at,
			archived_at: null,
		};
	}

	async poll(req, res, url, auth, rec) {
		if (auth.kind !== 'env') return this.fail(res, rec, 401, 'polling needs the environment key');
		const f = this.faults;
		const n = ++this.counts.poll;
		if (f.pollStatus) return this.fail(res, rec, f.pollStatus, `scripted poll failure ${f.pollStatus}`);
		if (f.poll429 && n <= f.poll429) return this.fail(res, rec, 429, 'rate limited (scripted)', undefined, { 'retry-after': String(f.retryAfter ?? 1) });
		const block = Number(url.searchParams.get('block_ms') ?? 0);
		if (url.searchParams.has('block_ms') && !(block >= 1 && block <= 999)) return this.fail(res, rec, 400, 'block_ms: must be 1..999');
		if (f.nullPolls && n <= f.nullPolls) return this.send(res, rec, 200, null);
		// A delivered item nobody acknowledged is claimable again after
		// reclaim_older_than_ms (default 5000, as documented).
		const reclaimMs = Number(url.searchParams.get('reclaim_older_than_ms') ?? 5000);
		// A claimed item whose holder stopped beating (a killed worker) lapses
		// ttlSeconds (+2 s of grace for a loaded machine) after its last good beat
		// or its ack.
		for (const w of this.items.values()) {
			const since = Math.max(w.lastOk ?? 0, w.ackedAt ?? 0);
			if ((w.state === 'starting' || w.state === 'active') && since && Date.now() - since > this.ttlSeconds * 1000 + 2000) {
				this.loseLease(w);
				w.availableAt = Date.now();
			}
		}
		const claimable = () =>
			[...this.items.values()].find(
				(w) => w.state === 'queued' && w.availableAt <= Date.now() && (!w.delivered || Date.now() - w.deliveredAt > reclaimMs),
			);
		let w = claimable();
		if (!w && block > 0) {
			await new Promise((r) => setTimeout(r, block));
			w = claimable();
		}
		if (!w) return this.send(res, rec, 200, null);
		// Deliver: a new claim with a fresh sessions token (an old one is revoked).
		w.claim++;
		for (const [tok, t] of this.tokens) if (t.item === w) t.revoked = true;
		w.token = 'sk-ant-sess-' + randomBytes(18).toString('hex');
		this.tokens.set(w.token, { item: w, claim: w.claim, revoked: false });
		w.last_heartbeat = null;
		w.beats = 0;
		w.state = 'queued'; // polled, not yet acknowledged
		w.delivered = true;
		w.deliveredAt = Date.now();
		rec.work = { id: w.id, claim: w.claim };
		return this.send(res, rec, 200, this.wire(w, true));
	}

	ack(res, item, auth, rec) {
		if (auth.kind !== 'env') return this.fail(res, rec, 401, 'ack needs the environment key');
		if (item.state !== 'queued' || !item.delivered) return this.fail(res, rec, 409, `work item ${item.id} is ${item.state} and cannot be acknowledged`);
		item.state = 'starting';
		item.delivered = false;
		item.acknowledged_at = stamp();
		item.ackedAt = Date.now();
		return this.send(res, rec, 200, this.wire(item, false));
	}

	leaseState(item, extended) {
		return { last_heartbeat: item.last_heartbeat, lease_extended: extended, state: item.state, ttl_seconds: this.ttlSeconds };
	}

	// The current claim loses its lease (taken by another worker, or lapsed):
	// requeued for a later poll unless requeueOnLeaseLoss is false.
	loseLease(item) {
		if (item.lostClaims.includes(item.claim)) return;
		item.lostClaims.push(item.claim);
		item.lostAt = Date.now();
		if (this.faults.requeueOnLeaseLoss) {
			item.state = 'queued';
			item.delivered = false;
			item.availableAt = Date.now() + this.requeueDelayMs;
		}
		this.wake();
	}

	heartbeat(res, url, item, auth, rec) {
		item.beats++;
		rec.beat = item.beats;
		const claim = auth.kind === 'session' ? auth.claim : item.claim;
		rec.claim = claim;
		const f = this.faults;
		if (f.heartbeatFailAfter !== undefined && claim === 1 && item.claim === 1 && item.beats > f.heartbeatFailAfter) {
			// The beats fail; the lease lapses ttl seconds after the last good one.
			if (!item.lapseTimer) {
				const left = (item.lastOk ?? Date.now()) + this.ttlSeconds * 1000 - Date.now();
				item.lapseTimer = setTimeout(() => this.loseLease(item), Math.max(0, left));
				this.timers.push(item.lapseTimer);
			}
			return this.fail(res, rec, f.heartbeatFailStatus ?? 503, 'scripted heartbeat failure');
		}
		if (f.heartbeatRejectAt && item.beats === f.heartbeatRejectAt && !item.lostClaims.includes(claim)) {
			this.loseLease(item);
			const st = f.heartbeatRejectStatus ?? 404;
			return this.fail(res, rec, st, st === 404 ? `work item ${item.id} not found` : 'the sessions token was revoked (scripted)');
		}
		if (item.state === 'stopping' || item.state === 'stopped') {
			return this.send(res, rec, 200, { type: 'work_heartbeat', ...this.leaseState(item, false) });
		}
		const expected = url.searchParams.get('expected_last_heartbeat');
		const fresh = !item.lostClaims.includes(item.claim);
		const stolen = f.heartbeat412At && item.beats === f.heartbeat412At && fresh;
		const stale = auth.kind === 'session' && auth.revoked;
		if (stolen || stale || (expected !== null && expected !== (item.last_heartbeat ?? 'NO_HEARTBEAT'))) {
			if (stolen) {
				// Another worker took the lease: the CAS value moved on.
				item.last_heartbeat = stamp();
				this.loseLease(item);
			}
			return this.fail(res, rec, 412, `expected_last_heartbeat does not match the lease of work item ${item.id}`, {
				error_code: 'heartbeat_precondition_failed',
				current_state: this.leaseState(item, false),
			});
		}
		if (f.leaseNotExtendedAt && item.beats === f.leaseNotExtendedAt && fresh) {
			// 200, but the lease was not extended: the worker must let go.
			this.loseLease(item);
			return this.send(res, rec, 200, { type: 'work_heartbeat', ...this.leaseState(item, false), state: 'active' });
		}
		item.last_heartbeat = stamp();
		item.latest_heartbeat_at = item.last_heartbeat;
		item.lastOk = Date.now();
		if (item.state === 'starting' || item.state === 'queued') {
			item.state = 'active';
			item.started_at = item.last_heartbeat;
		}
		return this.send(res, rec, 200, { type: 'work_heartbeat', ...this.leaseState(item, true) });
	}

	stopItem(res, item, body, auth, rec) {
		// A stop from a claim whose lease was lost is the bug the 412 test hunts.
		const claim = auth.kind === 'session' ? auth.claim : item.claim;
		rec.claim = claim;
		if (item.lostClaims.includes(claim)) item.stopsAfterLoss.push({ claim, auth: rec.auth, t: rec.t });
		if (item.state === 'stopped') return this.fail(res, rec, 409, `work item ${item.id} is already stopped`);
		const force = body?.force === true;
		item.stop_requested_at = stamp();
		item.state = force || item.state !== 'active' ? 'stopped' : 'stopping';
		if (item.state === 'stopped') item.stopped_at = item.stop_requested_at;
		return this.send(res, rec, 200, this.wire(item, false));
	}

	list(res, url, s, rec) {
		const limit = Math.max(1, Math.min(Number(url.searchParams.get('limit') ?? 20) || 20, 1000, this.pageSize));
		const order = url.searchParams.get('order') ?? 'asc';
		let evs = s.events.filter((e) => !this.hidden?.has(e.id));
		if (this.faults.duplicateEvents) evs = evs.flatMap((e) => [e, e]);
		if (order === 'desc') evs.reverse();
		const start = url.searchParams.has('page') ? Number(Buffer.from(url.searchParams.get('page'), 'base64url').toString()) : 0;
		if (!(start >= 0)) return this.fail(res, rec, 400, 'page: invalid cursor');
		const data = evs.slice(start, start + limit);
		const more = start + limit < evs.length;
		return this.send(res, rec, 200, {
			data,
			next_page: more ? Buffer.from(String(start + limit)).toString('base64url') : null,
		});
	}

	stream(req, res, s, rec) {
		const conn = ++this.counts.streamConns;
		rec.status = 200;
		rec.conn = conn;
		res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
		res.write(': ping\n\n');
		const cuts = this.faults.cutStreamAfter;
		const cut = Array.isArray(cuts) ? cuts[conn - 1] : conn === 1 ? cuts : undefined;
		const st = { session: s.id, res, sent: 0, cut, conn };
		this.streams.add(st);
		const done = () => this.streams.delete(st);
		res.on('close', done);
		req.socket.on('close', done);
		this.wake();
	}

	streamWrite(st, ev) {
		const copies = this.faults.duplicateEvents ? 2 : 1;
		for (let i = 0; i < copies; i++) {
			if (st.cut !== undefined && st.sent >= st.cut) {
				this.streams.delete(st);
				st.res.socket?.destroy();
				return;
			}
			st.res.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`);
			st.sent++;
		}
	}

	post(req, res, s, body, rec) {
		const evs = body?.events;
		if (!Array.isArray(evs) || evs.length === 0) return this.fail(res, rec, 400, 'events: Field required');
		const results = evs.filter((e) => e?.type === 'user.tool_result');
		if (results.length) {
			const n = ++this.counts.resultPosts;
			const f = this.faults;
			if (f.failResultPosts && n <= f.failResultPosts && f.failResultStatus !== 'lost') {
				rec.failed = true;
				if (f.failResultStatus === 'reset') {
					rec.status = -1;
					req.socket.destroy();
					return;
				}
				return this.fail(res, rec, f.failResultStatus, 'scripted transient failure');
			}
		}
		for (const [i, e] of evs.entries()) {
			if (e?.type === 'user.tool_result' && this.faults.refuseDuplicates && this.results(s.id).some((r) => r.tool_use_id === e.tool_use_id))
				return this.fail(res, rec, 400, `events[${i}].tool_use_id: tool call ${e.tool_use_id} has already been answered`, { error_code: 'tool_use_already_answered' });
			if (e?.type === 'user.tool_result') {
				if (typeof e.tool_use_id !== 'string' || !s.events.some((x) => x.type === 'agent.tool_use' && x.id === e.tool_use_id))
					return this.fail(res, rec, 400, `tool_use_id: no agent.tool_use ${e.tool_use_id} in this session`);
				if (!Array.isArray(e.content ?? [])) return this.fail(res, rec, 400, 'content: must be a list');
			} else if (!['user.message', 'user.interrupt', 'user.tool_confirmation', 'user.custom_tool_result', 'system.message'].includes(e?.type)) {
				return this.fail(res, rec, 400, `events: unsupported type ${e?.type}`);
			}
		}
		const stored = [];
		const lost = results.length && this.faults.failResultStatus === 'lost' && this.counts.resultPosts <= (this.faults.failResultPosts ?? 0);
		for (const e of evs) {
			// Stored even when it repeats an answer: the tests count answers per call.
			stored.push(this.emit(s, { ...e }, !(lost && (this.faults.lostUnstreamed || this.faults.lostHidden))));
			if (lost && this.faults.lostHidden) (this.hidden ??= new Set()).add(stored.at(-1).id);
			if (e.type === 'user.tool_result' && this.faults.stopAfterResults && this.results(s.id).length === this.faults.stopAfterResults) {
				// An operator force-stops the item: the next heartbeat says so,
				// and the worker's own stop then gets 409.
				const item = this.items.get(s.workId);
				item.state = 'stopped';
				item.stop_requested_at = item.stopped_at = stamp();
				s.halted = true;
			}
			if (e.type === 'user.tool_result' && this.faults.terminateAfterResults && this.results(s.id).length === this.faults.terminateAfterResults) {
				s.halted = true;
				s.done = true;
				s.status = 'terminated';
				setTimeout(() => this.emit(s, { type: 'session.status_terminated' }), 5);
			}
			if (e.type === 'user.tool_result' && s.pendingCall && e.tool_use_id === s.pendingCall.id && !s.halted) {
				s.pendingCall = null;
				setTimeout(() => this.advance(s), 5);
			}
		}
		if (lost) {
			// Stored, but the answer is lost on the way back: a retry must
			// not answer the call a second time.
			rec.failed = true;
			rec.status = -1;
			req.socket.destroy();
			return;
		}
		return this.send(res, rec, 200, { data: stored });
	}
}

// Standalone: node fake_hosted.mjs CONFIG.json [PORT]
if (import.meta.url === `file://${process.argv[1]}`) {
	const cfg = process.argv[2] ? JSON.parse(readFileSync(process.argv[2], 'utf8')) : {};
	const f = new FakeHosted(cfg);
	const url = await f.start(Number(process.argv[3] ?? 0));
	console.log(`listening on ${url}`);
	// A fake key for a fake API: printing it is what a shell test needs.
	console.log(JSON.stringify({ environment_id: f.environmentId, environment_key: f.environmentKey, sessions: [...f.sessions.keys()] }));
	const bye = async () => {
		await f.stop();
		process.exit(0);
	};
	process.on('SIGTERM', bye);
	process.on('SIGINT', bye);
}
