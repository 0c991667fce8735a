/**
 * Per-operation cost of `adaptive` and `predictive` as a ratio to our LRU, measured in one
 * process with the benchmark's operation mix (issue #20, check 4):
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/op-cost.ts [rounds]   (or: pnpm op-cost [rounds])
 *
 * The mixes of `bench/eviction.bench.ts`: 100k resident entries, keys drawn from 1.5× that
 * (≈ 2/3 hits); a hit touches, a miss evicts one entry and inserts; and the same at 4,096
 * entries, where `adaptive` runs every expert at full size. The policies take turns in rounds of
 * 200k operations each (the first round warms up and is not counted), and each round is timed
 * in CPU time of this process (`process.cpuUsage`), not wall time: on a shared machine a wall
 * clock also counts the time other processes hold the core. Prints ns per operation per policy,
 * its ratio to LRU (of the same size) per round, and the median and worst ratio over rounds.
 */
import { type EvictionPolicy, createRng } from '@kvmgr/core';
import { AdaptivePolicy, LruPolicy, PredictivePolicy } from '../src/index.js';

const OPS = 200_000;
const rounds = Number(process.argv[2] ?? 10);
if (!Number.isInteger(rounds) || rounds < 2) {
  console.error(`op-cost: rounds ${JSON.stringify(process.argv[2])}: expected an integer >= 2`);
  process.exit(2);
}

const rng = createRng(7);

/** A cache of `entries` keys, filled, and its mix: keys drawn from 1.5 × `entries`. */
interface Case {
  readonly name: string;
  readonly policy: EvictionPolicy;
  readonly entries: number;
  readonly keys: Uint32Array;
  at: number;
}

const keysFor = (entries: number): Uint32Array => {
  const keys = new Uint32Array(1 << 16);
  for (let i = 0; i < keys.length; i++) keys[i] = Math.imul(rng.int(0, Math.round(entries * 1.5) - 1), 2654435761) >>> 0;
  return keys;
};

function filled(name: string, p: EvictionPolicy, entries: number, keys: Uint32Array): Case {
  for (let i = 0; i < entries; i++) {
    const k = Math.imul(i, 2654435761) >>> 0;
    if (!p.has(k)) p.insert(k);
  }
  return { name, policy: p, entries, keys, at: 0 };
}

function mix(c: Case): void {
  const { policy: p, entries, keys } = c;
  for (let j = 0; j < OPS; j++) {
    const k = keys[c.at++ & 0xffff] as number;
    if (p.has(k)) p.touch(k);
    else {
      if (p.size >= entries) p.remove(p.victim());
      p.insert(k);
    }
  }
}

const big = keysFor(100_000);
const small = keysFor(4096);
const groups: Case[][] = [
  [
    filled('lru', new LruPolicy({ initialCapacity: 200_000 }), 100_000, big),
    filled('predictive', new PredictivePolicy({ initialCapacity: 200_000 }), 100_000, big),
    filled('adaptive', new AdaptivePolicy({ capacity: 100_000, initialCapacity: 200_000 }), 100_000, big),
  ],
  [filled('lru 4k', new LruPolicy({ initialCapacity: 8192 }), 4096, small), filled('adaptive 4k', new AdaptivePolicy({ capacity: 4096 }), 4096, small)],
];
const nsPerOp = new Map<Case, number[]>(groups.flat().map((c) => [c, []]));
for (let r = 0; r < rounds; r++) {
  for (const c of groups.flat()) {
    const t = process.cpuUsage();
    mix(c);
    const u = process.cpuUsage(t);
    if (r > 0) nsPerOp.get(c)?.push(((u.user + u.system) * 1000) / OPS);
  }
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? (s[s.length >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
console.log(`${rounds - 1} rounds of ${OPS} operations per policy; CPU time per operation, ratio to LRU of the same size in the same round`);
for (const g of groups) {
  const lru = nsPerOp.get(g[0] as Case) as number[];
  for (const c of g) {
    const ns = nsPerOp.get(c) as number[];
    const ratios = ns.map((x, r) => x / (lru[r] as number));
    console.log(
      `${c.name.padEnd(12)} ${String(c.entries).padStart(6)} entries  median ${median(ns).toFixed(0)} ns/op  ×LRU: median ${median(ratios).toFixed(2)}, worst ${Math.max(...ratios).toFixed(2)}  (${ratios.map((x) => x.toFixed(2)).join(' ')})`,
    );
  }
}
for (const c of groups.flat()) {
  if (c.policy instanceof AdaptivePolicy) {
    const st = c.policy.state();
    console.log(`${c.name}: follows ${st.following} (${st.switches} switches), sampling rate ${st.sampleRate}`);
  }
}
