// Eight sessions at once, served concurrently by one SDK worker: one
// WorkPoller claims the items and one EnvironmentWorker serves each claimed
// item with handleItem() without waiting for the others (the SDK's run()
// would serve them one after another). The scripted model (a test double)
// plays a per-session scenario chosen by the session's first message: three
// bash calls, each appending "<session>-<step>" to a shared calls.log, with a
// small delay so the turns overlap. Every session must end idle/end_turn,
// every call answered exactly once, and every command run exactly once.
import { join } from 'node:path';
import { assert, assertEq } from './harness.mjs';
import { runAll, until, listEvents, checkTranscript, lines, scratch, setupEnvironment, startSession, sleep } from './procs.mjs';

const N = 8;
const STEPS = 3;
const scenarios = [];
for (let k = 0; k < N; k++) {
	const steps = [];
	for (let n = 0; n < STEPS; n++)
		steps.push({
			content: [{ type: 'tool_use', name: 'bash', input: { command: `echo task${k}-${n} >> calls.log; echo out-${k}-{{turn}}` } }],
			delay_ms: 50,
		});
	steps.push({ content: [{ type: 'text', text: `task${k} finished with {{last_tool_result}}` }], stop_reason: 'end_turn' });
	scenarios.push({ match: `task${k}:`, steps });
}

await runAll([
	[
		`${N} concurrent sessions, one SDK worker`,
		async (f) => {
			await f.startModel({ scenarios });
			await f.startServer();
			const c = f.client;
			const { agent, env, key } = await setupEnvironment(c);
			const sessions = [];
			for (let k = 0; k < N; k++) sessions.push(await startSession(c, agent, env, `task${k}: do three things`));
			const workdir = scratch(f.dir, 'work');

			const ctrl = new AbortController();
			const wc = new f.Anthropic({ apiKey: f.adminKey, baseURL: f.baseURL, maxRetries: 2 });
			const worker = wc.beta.environments.work.worker({ workdir, maxIdleMs: 400, signal: ctrl.signal });
			const poller = wc.beta.environments.work.poller({ environmentId: env.id, environmentKey: key.key, autoStop: false, signal: ctrl.signal });
			const handled = [];
			const claimed = new Set();
			const polling = (async () => {
				for await (const work of poller) {
					assert(!claimed.has(work.id), `work ${work.id} delivered twice`);
					claimed.add(work.id);
					handled.push(
						worker.handleItem({ workId: work.id, environmentId: env.id, sessionId: work.data.id, workSecret: work.secret, environmentKey: key.key, signal: ctrl.signal }),
					);
				}
			})().catch((e) => {
				if (!ctrl.signal.aborted) throw e;
			});
			let maxRunning = 0;
			try {
				await until(
					async () => {
						let finished = 0,
							running = 0;
						for (const s of sessions) {
							const evs = await listEvents(c, s.id);
							const last = evs.filter((e) => e.type.startsWith('session.status_')).pop();
							if (last?.type === 'session.status_running') running++;
							if (last?.type === 'session.status_idle' && last.stop_reason?.type === 'end_turn') finished++;
						}
						maxRunning = Math.max(maxRunning, running);
						return finished === N;
					},
					'every session to end its turn',
					20000,
				);
				await sleep(300);
				for (const [k, s] of sessions.entries()) {
					const events = await listEvents(c, s.id);
					const uses = checkTranscript(events, `session ${k}`);
					assertEq(uses.length, STEPS, `session ${k} calls`);
					for (const [n, u] of uses.entries()) assert(u.input.command.startsWith(`echo task${k}-${n} `), `session ${k} call ${n} is its own: ${u.input.command}`);
					const final = events.filter((e) => e.type === 'agent.message').pop();
					assert(JSON.stringify(final.content).includes(`task${k} finished with out-${k}-${STEPS - 1}`), `session ${k} final message: ${JSON.stringify(final.content)}`);
				}
				const got = lines(join(workdir, 'calls.log')).sort();
				const want = [];
				for (let k = 0; k < N; k++) for (let n = 0; n < STEPS; n++) want.push(`task${k}-${n}`);
				assertEq(got.join(','), want.sort().join(','), 'each command ran exactly once');
				assertEq(claimed.size, N, 'one work item per session');
				assert(maxRunning >= 2, `sessions overlapped (at most ${maxRunning} running at once)`);
			} finally {
				ctrl.abort();
				await polling;
				await Promise.allSettled(handled);
			}
			// Each item was force-stopped by the worker when its session went quiet.
			const items = [];
			const ek = new f.Anthropic({ apiKey: null, authToken: key.key, baseURL: f.baseURL, maxRetries: 0 });
			for await (const w of ek.beta.environments.work.list(env.id)) items.push(w);
			assertEq(items.filter((w) => w.state === 'stopped').length, N, 'every work item stopped: ' + items.map((w) => w.state).join());
		},
	],
]);
