/**
 * `prefixIndex: 'radix'` vs `'hash-map'` on the bundled Mooncake sample (3,000 requests of the
 * conversation trace, `packages/cli/data/mooncake-conversation-sample.jsonl`): 4 × Llama-3.1-8B /
 * H100 (BLIS row), both built-in profiles, at the given rate multipliers.
 *
 *   cd packages/sim && node --conditions=@kvmgr/source --import tsx scripts/prefix-index.ts [rates=1,3]
 *
 * Prints a markdown table (hit rate, goodput, TTFT p99, SLO attainment, preemptions, evicted
 * blocks, wall time of the replay). Wall times are single runs after a warm-up on a shared
 * machine: compare them within one run of this script.
 */
import { fileURLToPath } from 'node:url';
import { loadMooncakeTrace, runReplay } from '../src/index.js';

const rates = (process.argv[2] ?? '1,3').split(',').map(Number);
const path = fileURLToPath(new URL('../../cli/data/mooncake-conversation-sample.jsonl', import.meta.url));
const trace = loadMooncakeTrace(path);
const indexes = ['hash-map', 'radix'] as const;

// Warm-up (JIT) on a prefix of the trace, both indexes.
for (const prefixIndex of indexes) runReplay({ trace: trace.requests.slice(0, 300), profile: 'kvmgr-default', prefixIndex });

console.log(`Mooncake conversation sample (${trace.requests.length} requests), 4 × Llama-3.1-8B/H100, SLO TTFT 2 s / TPOT 100 ms`);
console.log('| rate | profile | prefix index | hit rate | goodput (req/s) | TTFT p99 (ms) | SLO attainment | preemptions | evicted blocks | wall (s) |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const rateScale of rates) {
  for (const profile of ['vllm-default', 'kvmgr-default']) {
    for (const prefixIndex of indexes) {
      const t0 = performance.now();
      const res = runReplay({ trace, profile, prefixIndex, rateScale });
      const wallS = (performance.now() - t0) / 1000;
      const s = res.summary;
      if (res.violations.length > 0) throw new Error(`${profile} ${prefixIndex}: ${res.violations.slice(0, 3).join('; ')}`);
      console.log(
        `| ${rateScale}x | ${profile} | ${prefixIndex} | ${(s.hitRate * 100).toFixed(2)}% | ${s.goodputRps.toFixed(3)} | ${s.ttftMs.p99.toFixed(0)} | ${(s.sloAttainment * 100).toFixed(1)}% | ${s.preemptions} | ${s.evictedBlocks} | ${wallS.toFixed(2)} |`,
      );
    }
  }
}
