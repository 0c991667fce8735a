/**
 * Per-operation cost of `adaptive` and `predictive` as a ratio to our LRU, measured in one
 * process with the benchmark's operation mix (issue #20, check 4):
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/op-cost.ts [rounds]
 *
 * The mix of `bench/eviction.bench.ts`: 100k resident entries, keys drawn from 1.5× that
 * (≈ 2/3 hits); a hit touches, a miss evicts one entry and inserts. The policies take turns in
 * rounds of 200k operations (the first round warms up and is not counted), and each round is
 * timed in CPU time of this process (`process.cpuUsage`), not wall time: on a shared machine a
 * wall clock also counts the time other processes hold the core. Prints ns per operation per
 * policy, its ratio to LRU per round, and the median and worst ratio over rounds.
 */
import { type EvictionPolicy, createRng } from '@kvmgr/core';
import { AdaptivePolicy, LruPolicy, PredictivePolicy } from '../src/index.js';

const ENTRIES = 100_000;
const KEY_SPACE = 150_000;
const OPS = 200_000;
const rounds = Number(process.argv[2] ?? 10);
if (!Number.isInteger(rounds) || rounds < 2) {
  console.error(`op-cost: rounds ${JSON.stringify(process.argv[2])}: expected an integer >= 2`);
  process.exit(2);
}

const rng = createRng(7);
const keys = new Uint32Array(1 << 16);
for (let i = 0; i < keys.length; i++) keys[i] = Math.imul(rng.int(0, KEY_SPACE - 1), 2654435761) >>> 0;

function filled(p: EvictionPolicy): EvictionPolicy {
  for (let i = 0; i < ENTRIES; i++) {
    const k = Math.imul(i, 2654435761) >>> 0;
    if (!p.has(k)) p.insert(k);
  }
  return p;
}

let cursor = 0;
function mix(p: EvictionPolicy): void {
  for (let j = 0; j < OPS; j++) {
    const k = keys[cursor++ & 0xffff] as number;
    if (p.has(k)) p.touch(k);
    else {
      if (p.size >= ENTRIES) p.remove(p.victim());
      p.insert(k);
    }
  }
}

const policies: [string, EvictionPolicy][] = [
  ['lru', filled(new LruPolicy({ initialCapacity: ENTRIES * 2 }))],
  ['predictive', filled(new PredictivePolicy({ initialCapacity: ENTRIES * 2 }))],
  ['adaptive', filled(new AdaptivePolicy({ capacity: ENTRIES, initialCapacity: ENTRIES * 2 }))],
];
const nsPerOp = policies.map(() => [] as number[]);
for (let r = 0; r < rounds; r++) {
  policies.forEach(([, p], i) => {
    const t = process.cpuUsage();
    mix(p);
    const u = process.cpuUsage(t);
    if (r > 0) (nsPerOp[i] as number[]).push(((u.user + u.system) * 1000) / OPS);
  });
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? (s[s.length >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const lru = nsPerOp[0] as number[];
console.log(`${rounds - 1} rounds of ${OPS} operations, 100k entries; CPU time per operation, ratio to LRU in the same round`);
policies.forEach(([name], i) => {
  const ns = nsPerOp[i] as number[];
  const ratios = ns.map((x, r) => x / (lru[r] as number));
  console.log(
    `${name.padEnd(10)} median ${median(ns).toFixed(0)} ns/op  ×LRU: median ${median(ratios).toFixed(2)}, worst ${Math.max(...ratios).toFixed(2)}  (${ratios.map((x) => x.toFixed(2)).join(' ')})`,
  );
});
const a = policies[2]?.[1] as AdaptivePolicy;
console.log(`adaptive follows ${a.state().following} (${a.state().switches} switches), sampling rate ${a.state().sampleRate}`);
