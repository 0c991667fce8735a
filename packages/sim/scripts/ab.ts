/**
 * vllm-default vs kvmgr-default on the Mooncake conversation trace (first N requests, 4 ×
 * Llama-3.1-8B / H100), over arrival-rate multipliers, in parallel worker threads (runSweep).
 * SLOs: TTFT 2 s, TPOT 100 ms (the replay default).
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/ab.ts [N] [rates comma-separated] [threads]
 */
import { join } from 'node:path';
import { type SweepJob, runSweep } from '../src/index.js';

const n = Number(process.argv[2] ?? 3000);
const rates = (process.argv[3] ?? '1,2,3,4').split(',').map(Number);
const threads = Number(process.argv[4] ?? 2);
const path = join(import.meta.dirname, '../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl');
const jobs: SweepJob[] = rates.flatMap((rate) =>
  ['vllm-default', 'kvmgr-default'].map((profile) => ({
    id: `${profile}@${rate}x`,
    trace: { kind: 'mooncake' as const, path, options: { limit: n } },
    replay: { profile, rateScale: rate, instances: 4, seed: 0 },
  })),
);
const res = await runSweep(jobs, { threads });
console.log(`Mooncake conversation trace, first ${n} requests, 4 × Llama-3.1-8B/H100 (BLIS v0.11.0 row), SLO TTFT 2 s / TPOT 100 ms`);
console.log('| rate | profile | hit rate | TTFT p50 / p99 (ms) | TPOT p50 / p99 (ms) | E2E p50 / p99 (ms) | throughput (req/s) | goodput (req/s) | SLO attainment | preemptions | re-prefill | KV util |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of res) {
  const s = r.summary;
  const [profile, rate] = r.id.split('@');
  console.log(
    `| ${rate} | ${profile} | ${(s.hitRate * 100).toFixed(1)}% | ${s.ttftMs.p50.toFixed(0)} / ${s.ttftMs.p99.toFixed(0)} | ${s.tpotMs.p50.toFixed(1)} / ${s.tpotMs.p99.toFixed(1)} | ${s.e2eMs.p50.toFixed(0)} / ${s.e2eMs.p99.toFixed(0)} | ${s.throughputRps.toFixed(2)} | ${s.goodputRps.toFixed(2)} | ${(s.sloAttainment * 100).toFixed(1)}% | ${s.preemptions} | ${(s.reprefillRate * 100).toFixed(1)}% | ${(s.kvUtilization * 100).toFixed(1)}% |`,
  );
}
for (let i = 0; i + 1 < res.length; i += 2) {
  const a = res[i]!.summary;
  const b = res[i + 1]!.summary;
  console.log(`${res[i]!.id.split('@')[1]}: goodput ×${(b.goodputRps / a.goodputRps).toFixed(2)}, TTFT p99 ${(((b.ttftMs.p99 - a.ttftMs.p99) / a.ttftMs.p99) * 100).toFixed(0)}%`);
}
