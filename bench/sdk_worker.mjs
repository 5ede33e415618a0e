// sdk_worker.mjs - the official SDK's environment worker, as the peer in the
// worker benchmark (bench/run.sh worker). Not a test.
//
//   AIRLOCK_NODE_MODULES=... ANTHROPIC_ENVIRONMENT_KEY=... \
//     node bench/sdk_worker.mjs BASE_URL ENVIRONMENT_ID WORKDIR CONCURRENCY
//
// EnvironmentWorker.run() serves one work item at a time (it awaits each
// session before it polls again), so to serve CONCURRENCY sessions at once,
// as `airlock worker poll --max-sessions N` does, this runs CONCURRENCY
// run() loops in the one Node process, each with its own poller: the
// cheapest way to get concurrency from the SDK as shipped. SIGTERM or
// SIGINT aborts them all and exits 0.
import { join } from 'node:path';

const [baseURL, environmentId, workdir, conc] = process.argv.slice(2);
const MODULES = process.env.AIRLOCK_NODE_MODULES;
const environmentKey = process.env.ANTHROPIC_ENVIRONMENT_KEY;
if (!baseURL || !environmentId || !workdir || !MODULES || !environmentKey) {
	console.error('usage: AIRLOCK_NODE_MODULES=DIR ANTHROPIC_ENVIRONMENT_KEY=KEY node sdk_worker.mjs BASE_URL ENV_ID WORKDIR [N]');
	process.exit(2);
}
const { default: Anthropic } = await import(join(MODULES, '@anthropic-ai/sdk/index.mjs'));
const ctrl = new AbortController();
const stop = () => ctrl.abort();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

// The worker authenticates every call with the environment key or the
// item's sessions token; the client's own key is not used for those.
const client = new Anthropic({ apiKey: 'unused', baseURL, maxRetries: 2 });
const n = Math.max(1, Number(conc) || 1);
const loops = [];
for (let i = 0; i < n; i++) {
	const worker = client.beta.environments.work.worker({
		environmentId,
		environmentKey,
		workdir,
		maxIdleMs: 1000,
		signal: ctrl.signal,
	});
	loops.push(
		worker.run().catch((e) => {
			if (!ctrl.signal.aborted) console.error('sdk worker loop failed:', e);
		}),
	);
}
await Promise.all(loops);
process.exit(0);
