/**
 * Issue #16 check 3: CPU time of a full-trace replay on `@kvmgr/engine`'s `EngineCore` against the
 * simulator's legacy engine, per profile (`vllm-default`, `kvmgr-default`, `kvmgr-offload`), on 4
 * Llama-3.1-8B / H100 instances, seed 1 (as `kvmgr replay`). The engines alternate (core, legacy,
 * core, legacy, …) and each figure is the minimum over the rounds: the machine is shared, and CPU
 * time (`process.cpuUsage()`, user + system) is less noisy than wall time. Prints one Markdown row
 * per run and the core / legacy ratio per profile. `KVMGR_TRACE=<file>` replays another Mooncake
 * trace (default: ../shared/traces/mooncake_fast25_conversation_trace.jsonl, 12,031 requests).
 *
 *   node --conditions=@kvmgr/source --import tsx packages/sim/scripts/core-cpu.ts [rounds=2] [requests] [profiles...]
 */
import { join } from 'node:path';
import type { EngineProfile } from '@kvmgr/core';
import { KVMGR_OFFLOAD_PROFILE, loadMooncakeTrace, runReplay } from '../src/index.js';

const path = process.env.KVMGR_TRACE ?? join(import.meta.dirname, '../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl');
const full = loadMooncakeTrace(path);
const rounds = process.argv[2] === undefined ? 2 : Number(process.argv[2]);
const n = process.argv[3] === undefined || process.argv[3] === 'all' ? full.requests.length : Number(process.argv[3]);
const names = process.argv.length > 4 ? process.argv.slice(4) : ['vllm-default', 'kvmgr-default', 'kvmgr-offload'];
const profileOf = (name: string): string | EngineProfile => (name === 'kvmgr-offload' ? KVMGR_OFFLOAD_PROFILE : name);
const trace = { ...full, requests: full.requests.slice(0, n) };
console.log(`trace ${path}, ${n} requests, ${rounds} rounds`);
console.log('| profile | engine | round | CPU s | wall s | finished | events |');
console.log('|---|---|---|---|---|---|---|');
const best = new Map<string, number>();
for (const name of names) {
  for (let round = 0; round < rounds; round++) {
    for (const engine of ['core', 'legacy'] as const) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const res = runReplay({ trace, profile: profileOf(name), instances: 4, engine, seed: 1 });
      const wall = (performance.now() - t0) / 1000;
      const cu = process.cpuUsage(c0);
      const cpu = (cu.user + cu.system) / 1e6;
      const key = `${name}/${engine}`;
      best.set(key, Math.min(best.get(key) ?? Number.POSITIVE_INFINITY, cpu));
      console.log(`| ${name} | ${engine} | ${round + 1} | ${cpu.toFixed(1)} | ${wall.toFixed(1)} | ${res.summary.finished} | ${res.events} |`);
    }
  }
}
console.log('| profile | core CPU s (min) | legacy CPU s (min) | core / legacy |');
console.log('|---|---|---|---|');
for (const name of names) {
  const c = best.get(`${name}/core`) as number;
  const l = best.get(`${name}/legacy`) as number;
  console.log(`| ${name} | ${c.toFixed(1)} | ${l.toFixed(1)} | ${(c / l).toFixed(2)} |`);
}
