/**
 * Issue #20, check 1, on generated traces of any seed: per shape and capacity, is `adaptive`'s
 * block hit ratio ≥ LRU's and ≥ 0.97 × the best fixed policy's? The suite
 * (`kvmgr eviction eval --suite`) uses seed 1; other seeds are traffic the policy was not tuned on.
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/adaptive-check.ts [seed] [capacities] [scale]
 *
 * e.g. `scripts/adaptive-check.ts 2 1000,3000`; `scale` multiplies every trace's requests (4:
 * traffic that fills a 10k-block cache as the default fills 3k). Prints one line per cell,
 * then the worst ratios.
 */
import { AdaptivePolicy, WORKLOAD_DESCRIPTIONS, WORKLOAD_SHAPES, createEvictionPolicy, generateBlockWorkload, replayBlockTrace } from '../src/index.js';

const seed = Number(process.argv[2] ?? 2);
const capacities = (process.argv[3] ?? '1000,3000,10000,30000').split(',').map(Number);
const scale = Number(process.argv[4] ?? 1);
if (!Number.isSafeInteger(seed)) {
  console.error(`adaptive-check: seed ${JSON.stringify(process.argv[2])}: expected an integer`);
  process.exit(2);
}
if (!(scale > 0) || !Number.isFinite(scale)) {
  console.error(`adaptive-check: scale ${JSON.stringify(process.argv[4])}: expected a finite number > 0`);
  process.exit(2);
}
if (capacities.some((c) => !Number.isInteger(c) || c < 1)) {
  console.error(`adaptive-check: capacities ${JSON.stringify(process.argv[3])}: expected positive integers separated by commas`);
  process.exit(2);
}

const FIXED = ['lru', 'lfu', 'arc', 's3fifo', 'sieve', 'gdsf', 'predictive'];
let misses = 0;
let worstVsBest = Number.POSITIVE_INFINITY;
let worstVsLru = Number.POSITIVE_INFINITY;
const workloads = WORKLOAD_SHAPES.map((s) => ({ name: s, description: WORKLOAD_DESCRIPTIONS[s], requests: generateBlockWorkload(s, { seed, scale }) }));
console.log(`seed ${seed}, scale ${scale}: adaptive vs LRU and the best fixed policy (block hit ratio, prefix semantics)`);
for (const w of workloads) {
  for (const c of capacities) {
    const fixed = FIXED.map((p) => [p, replayBlockTrace(w.requests, createEvictionPolicy(p, { capacity: c }), c).hitRatio] as const);
    const [bestName, best] = fixed.reduce((a, b) => (b[1] > a[1] ? b : a));
    const lru = fixed[0]?.[1] as number;
    const a = new AdaptivePolicy({ capacity: c });
    const got = replayBlockTrace(w.requests, a, c).hitRatio;
    const ok = got >= lru && got >= 0.97 * best;
    if (!ok) misses++;
    worstVsBest = Math.min(worstVsBest, got / best);
    worstVsLru = Math.min(worstVsLru, got / lru);
    console.log(
      `${ok ? 'ok  ' : 'MISS'} ${w.name.padEnd(12)} ${String(c).padStart(6)}  adaptive ${got.toFixed(4)}  lru ${lru.toFixed(4)}  best ${bestName} ${best.toFixed(4)}  ×best ${(got / best).toFixed(3)}  (${a.state().switches} switches)`,
    );
  }
}
console.log(`${misses} misses; worst ×best ${worstVsBest.toFixed(3)}, worst ×LRU ${worstVsLru.toFixed(3)}`);
