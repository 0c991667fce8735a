/**
 * The simulator's scale check for the docs (docs/sim.md, "Check 3: scale"): the Mooncake
 * conversation trace on 4 Llama-3.1-8B / H100 instances, at its first 1k, 2k, 4k, 8k requests and
 * whole, with both built-in profiles; prints JSON (one point per profile and size: wall and CPU
 * seconds, simulated events, simulated seconds, finished requests, invariant violations) and the
 * machine's load average before and after, with the trace read from `$KVMGR_SHARED/traces` (default `../shared` beside the repository).
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/docs-gen/scale.ts [sizes...]
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
// The root package does not depend on @kvmgr/sim: import its sources (run with the source condition).
import { loadMooncakeTrace, runReplay } from '../../packages/sim/src/index.js';
import { sharedDir } from '../shared-data.js';

const shared = sharedDir();
const full = loadMooncakeTrace(join(shared, 'traces/mooncake_fast25_conversation_trace.jsonl'));
const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [1000, 2000, 4000, 8000, full.requests.length];
const loadBefore = loadavg()[0];
const points = [];
for (const profile of ['vllm-default', 'kvmgr-default']) {
  for (const n of sizes) {
    const trace = { ...full, requests: full.requests.slice(0, n) };
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const res = runReplay({ trace, profile, instances: 4 });
    const wallS = (performance.now() - t0) / 1000;
    const cu = process.cpuUsage(c0);
    points.push({ profile, requests: n, wallS, cpuS: (cu.user + cu.system) / 1e6, events: res.events, simulatedS: res.simulatedS, finished: res.summary.finished, violations: res.violations.length });
  }
}
process.stdout.write(`${JSON.stringify({ kind: 'kvmgr.docs.scale', version: 1, loadAverage: { before: loadBefore, after: loadavg()[0] }, points }, null, 2)}\n`);
