/**
 * `kvmgr-offload` (200 GiB CPU KV tier per instance) on the Mooncake conversation trace, 4
 * Llama-3.1-8B / H100 instances, on `@kvmgr/engine`'s `EngineCore` (the `KvCacheManager`'s CPU
 * tier on kv-pool's `TieredPool`). Prints wall and CPU time (the machine is shared: CPU time is
 * the less noisy figure; `scripts/scale.ts` compares against a base ref) and the summary figures
 * (seed 1, as `kvmgr replay`). `KVMGR_TRACE=<file>` replays another Mooncake trace (the bundled
 * sample: ../cli/data/mooncake-conversation-sample.jsonl).
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/offload-scale.ts [requests]
 */
import { join } from 'node:path';
import { KVMGR_OFFLOAD_PROFILE, loadMooncakeTrace, runReplay } from '../src/index.js';

const path = join(import.meta.dirname, '../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl');
const full = loadMooncakeTrace(process.env.KVMGR_TRACE ?? path);
const n = process.argv[2] === undefined ? full.requests.length : Number(process.argv[2]);
const trace = { ...full, requests: full.requests.slice(0, n) };
console.log('| engine | requests | wall s | CPU s | finished | goodput req/s | TTFT p99 ms | hit rate | offloaded | reloaded | violations |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const engine of ['core'] as const) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = runReplay({ trace, profile: KVMGR_OFFLOAD_PROFILE, instances: 4, engine, seed: 1 });
  const wall = (performance.now() - t0) / 1000;
  const cu = process.cpuUsage(c0);
  const cpu = (cu.user + cu.system) / 1e6;
  const s = res.summary;
  console.log(
    `| ${engine} | ${n} | ${wall.toFixed(1)} | ${cpu.toFixed(1)} | ${s.finished} | ${s.goodputRps.toFixed(3)} | ${s.ttftMs.p99.toFixed(0)} | ${(100 * s.hitRate).toFixed(2)}% | ${s.offloadedBlocks} | ${s.reloadedBlocks} | ${res.violations.length} |`,
  );
}
