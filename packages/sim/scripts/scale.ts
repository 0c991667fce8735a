/**
 * Check 3 (scale): the Mooncake conversation trace on 4 Llama-3.1-8B / H100 instances, at 1k,
 * 2k, 4k, 8k and all 12,031 requests, with both profiles; prints wall time, simulated events
 * per second and CPU time (the machine is shared: CPU time is the less noisy figure).
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/scale.ts [sizes...]
 */
import { join } from 'node:path';
import { loadMooncakeTrace, runReplay } from '../src/index.js';

const path = join(import.meta.dirname, '../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl');
const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [1000, 2000, 4000, 8000, 12031];
const full = loadMooncakeTrace(path);
console.log('| profile | requests | wall s | CPU s | events | events/s (wall) | simulated s | finished | violations |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const profile of ['vllm-default', 'kvmgr-default']) {
  for (const n of sizes) {
    const trace = { ...full, requests: full.requests.slice(0, n) };
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const res = runReplay({ trace, profile, instances: 4 });
    const wall = (performance.now() - t0) / 1000;
    const cu = process.cpuUsage(c0);
    const cpu = (cu.user + cu.system) / 1e6;
    console.log(
      `| ${profile} | ${n} | ${wall.toFixed(1)} | ${cpu.toFixed(1)} | ${res.events} | ${Math.round(res.events / wall)} | ${res.simulatedS.toFixed(0)} | ${res.summary.finished} | ${res.violations.length} |`,
    );
  }
}
