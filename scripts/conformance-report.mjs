// conformance-report.mjs - scores one run of the MCP conformance suite
// (scripts/conformance.sh runs it with the suite's own Node 22).
//
//   node conformance-report.mjs ROLE REVISION OUTDIR REQUIREMENTS.yaml [EXPECTED.yaml]
//
// ROLE is "server" or "client". OUTDIR is the suite's -o directory: one
// <role>-<scenario>-<timestamp>/checks.json per scenario run (the client's
// may be <scenario>-<timestamp>). REQUIREMENTS is the suite's
// requirements/<revision>.yaml: the scenarios in its ROLE list are scored,
// the not_scored ones are reported only. EXPECTED is our expected-failures
// file (the suite's format: `server:` / `client:` lists of "<scenario>" or
// "<scenario>:<check-id>").
//
// A scenario passes when none of its checks has status FAILURE (the suite's
// own rule; WARNING and INFO do not fail it). A required scenario with no
// result failed (it did not run). A listed expected failure that now
// passes is a failure too (stale entry), as in the suite.
//
// Prints one line per scored scenario, then `COUNTS <passed> <failed> <xfail>`.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';

const [role, revision, outDir, reqFile, expFile] = process.argv.slice(2);

// The two YAML files are flat lists; a line parser keeps this dependency-free.
function yamlLists(text) {
	const lists = {};
	let cur = null;
	let item = null;
	for (const raw of text.split('\n')) {
		const line = raw.replace(/\s+#.*$/, '').replace(/^#.*$/, '');
		if (!line.trim()) continue;
		const top = line.match(/^([A-Za-z_]+):\s*$/);
		if (top) {
			cur = lists[top[1]] = [];
			item = null;
			continue;
		}
		if (!cur) continue;
		// "- key: value" starts a mapping; "- scenario:check-id" (no space) is a plain entry.
		const obj = line.match(/^\s*-\s+([A-Za-z_]+):(?:\s+(.*))?$/);
		const plain = line.match(/^\s*-\s+(.+?)\s*$/);
		const field = line.match(/^\s+([A-Za-z_]+):\s*(.*)$/);
		if (obj) {
			item = { [obj[1]]: (obj[2] || '').trim() };
			cur.push(item);
		} else if (plain) {
			cur.push(plain[1].replace(/^["']|["']$/g, ''));
			item = null;
		} else if (field && item) {
			item[field[1]] = field[2].trim();
		}
	}
	return lists;
}

const req = yamlLists(readFileSync(reqFile, 'utf8'));
const required = req[role] || [];
const notScored = (req.not_scored || []).filter((e) => e.leg === role).map((e) => e.scenario);
const expected = expFile && existsSync(expFile) ? yamlLists(readFileSync(expFile, 'utf8'))[role] || [] : [];

// Scenario name -> list of checks (the latest run if there are several).
function findChecks(dir) {
	const found = [];
	const walk = (d) => {
		for (const name of readdirSync(d)) {
			const p = join(d, name);
			if (statSync(p).isDirectory()) walk(p);
			else if (name === 'checks.json') found.push(d);
		}
	};
	if (existsSync(dir)) walk(dir);
	return found;
}
const norm = (s) => s.replace(/[^A-Za-z0-9]+/g, '-');
const known = [...required, ...notScored];
const results = new Map();
for (const d of findChecks(outDir)) {
	const rel = relative(outDir, d).replace(/-\d{4}-\d\d-\d\dT[\d-]+Z$/, '');
	const bare = rel.replace(new RegExp(`^${role}-`), '');
	const name = known.find((k) => norm(k) === norm(bare) || norm(k) === norm(rel));
	if (!name) continue;
	let checks;
	try {
		checks = JSON.parse(readFileSync(join(d, 'checks.json'), 'utf8'));
	} catch (e) {
		checks = [{ id: 'checks.json', status: 'FAILURE', errorMessage: `unreadable: ${e.message}` }];
	}
	if (!results.has(name) || d > results.get(name).dir) results.set(name, { dir: d, checks });
}

function expectedFor(scenario, failing) {
	if (expected.includes(scenario)) return true;
	const ids = expected.filter((e) => e.startsWith(`${scenario}:`)).map((e) => e.slice(scenario.length + 1));
	return ids.length > 0 && failing.length > 0 && failing.every((c) => ids.includes(c.id));
}

let passed = 0;
let failed = 0;
let xfail = 0;
const tag = `${role} ${revision}`;
for (const scenario of required) {
	const r = results.get(scenario);
	if (!r) {
		console.log(`FAIL ${tag} ${scenario}: no result (the scenario did not run)`);
		failed++;
		continue;
	}
	const failing = r.checks.filter((c) => c.status === 'FAILURE');
	const listed = expectedFor(scenario, failing) || expected.some((e) => e.startsWith(`${scenario}:`));
	if (failing.length === 0 && listed) {
		console.log(`FAIL ${tag} ${scenario}: passes but is listed in ${expFile} (stale entry: remove it)`);
		failed++;
	} else if (failing.length === 0) {
		const warn = r.checks.filter((c) => c.status === 'WARNING').length;
		console.log(`ok   ${tag} ${scenario}${warn ? ` (${warn} warning${warn > 1 ? 's' : ''})` : ''}`);
		passed++;
	} else if (expectedFor(scenario, failing)) {
		console.log(`xfail ${tag} ${scenario} (expected, see ${expFile})`);
		xfail++;
	} else {
		console.log(`FAIL ${tag} ${scenario}`);
		for (const c of failing) console.log(`       ${c.id}: ${(c.errorMessage || c.description || '').split('\n')[0].slice(0, 300)}`);
		failed++;
	}
}
for (const scenario of notScored) {
	const r = results.get(scenario);
	const failing = r ? r.checks.filter((c) => c.status === 'FAILURE') : null;
	const skipped = r && r.checks.every((c) => c.status === 'SKIPPED');
	const what = !r ? 'did not run' : failing.length ? `fails (${failing.length} of ${r.checks.length} checks)` : skipped ? 'skipped by the suite' : 'passes';
	console.log(`info ${tag} ${scenario} (not scored for ${revision}): ${what}`);
}
// An entry naming no scenario of this revision is a typo or a leftover.
for (const e of expected) {
	const scenario = e.includes(':') ? e.slice(0, e.indexOf(':')) : e;
	if (!known.includes(scenario)) {
		console.log(`FAIL ${tag}: ${expFile} lists '${e}', which is no ${role} scenario of ${revision}`);
		failed++;
	}
}
console.log(`COUNTS ${passed} ${failed} ${xfail}`);
