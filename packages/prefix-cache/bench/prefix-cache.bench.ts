import { createRng } from '@kvmgr/core';
import type { BenchSuite } from '../../../bench/types.js';
import { BlockHashIndex } from '../src/block-hash-index.js';
import { RadixPrefixCache } from '../src/radix-prefix-cache.js';

const PAGE = 16;
const VOCAB = 128_000;

/**
 * Prefix cache benchmarks: RadixPrefixCache against the engine-style hash-chain BlockHashIndex
 * (the baseline) on the same prompts, both holding ≥ 1M tokens: 32 system prompts of 512 tokens,
 * 700 conversations of 2,048 tokens (system prompt + 1,536 own tokens), and 8 prompts of 32K
 * tokens sharing a 4K prefix.
 */
export function createSuite(): BenchSuite {
  const rng = createRng(2024);
  const tok = (): number => Math.floor(rng.next() * VOCAB);
  const fill = (a: Uint32Array, from: number, to: number): void => {
    for (let i = from; i < to; i++) a[i] = tok();
  };
  const systems = Array.from({ length: 32 }, () => {
    const s = new Uint32Array(512);
    fill(s, 0, 512);
    return s;
  });
  const prompts: Uint32Array[] = [];
  for (let i = 0; i < 700; i++) {
    const p = new Uint32Array(2048);
    p.set(systems[i % 32] as Uint32Array);
    fill(p, 512, 2048);
    prompts.push(p);
  }
  const longShared = new Uint32Array(4096);
  fill(longShared, 0, 4096);
  const longs: Uint32Array[] = [];
  for (let i = 0; i < 8; i++) {
    const p = new Uint32Array(32_768);
    p.set(longShared);
    fill(p, 4096, 32_768);
    longs.push(p);
  }
  let nextBlock = 0;
  const blocksFor = (n: number): Uint32Array => Uint32Array.from({ length: n }, () => nextBlock++);
  const build = (): { radix: RadixPrefixCache; index: BlockHashIndex } => {
    const radix = new RadixPrefixCache({ pageSize: PAGE, initialNodes: 4096 });
    const index = new BlockHashIndex({ pageSize: PAGE, initialBlocks: 1 << 17 });
    for (const p of [...prompts, ...longs]) {
      const b = blocksFor(p.length / PAGE);
      radix.insert(p, b);
      index.insert(p, b);
    }
    return { radix, index };
  };
  // one pair for the match cases, another for insert/evict (which replaces the cached prompts)
  const { radix, index } = build();
  const churn = build();
  const cachedTokens = radix.stats.cachedKeys;
  if (cachedTokens < 1_000_000 || index.stats.cachedKeys !== cachedTokens) throw new Error(`setup: ${cachedTokens} tokens cached`);

  // steady-state insert: system prompt + 1,536 new tokens, then evict as many pages (LRU)
  const fresh = new Uint32Array(2048);
  const freshBlocks = blocksFor(128);
  const insertEvict = (c: RadixPrefixCache | BlockHashIndex) => () => {
    fresh.set(systems[nextBlock & 31] as Uint32Array);
    for (let i = 512; i < 2048; i++) fresh[i] = (nextBlock * 7919 + i) >>> 0;
    nextBlock++;
    c.insert(fresh, freshBlocks);
    c.evict(96);
  };

  // Mooncake-style: ~750 block keys per prompt with pageSize 1 (the simulator's use)
  const mradix = new RadixPrefixCache({ pageSize: 1, initialNodes: 4096 });
  const mindex = new BlockHashIndex({ pageSize: 1, initialBlocks: 1 << 17 });
  const mprompts: Uint32Array[] = [];
  for (let i = 0; i < 200; i++) {
    const p = new Uint32Array(750);
    for (let j = 0; j < 750; j++) p[j] = j < 100 ? j : 1000 + i * 1000 + j;
    mprompts.push(p);
    const b = blocksFor(750);
    mradix.insert(p, b);
    mindex.insert(p, b);
  }

  // split timings of insert and evict (the other one untimed in between), p50 µs per call
  const timeSplit = (c: RadixPrefixCache | BlockHashIndex, n: number): { insertUs: number; evictUs: number } => {
    const ins = new Float64Array(n);
    const ev = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      fresh.set(systems[k & 31] as Uint32Array);
      for (let i = 512; i < 2048; i++) fresh[i] = (0x40000000 + k * 7919 + i) >>> 0;
      const t0 = process.hrtime.bigint();
      c.insert(fresh, freshBlocks);
      const t1 = process.hrtime.bigint();
      c.evict(96);
      const t2 = process.hrtime.bigint();
      ins[k] = Number(t1 - t0) / 1000;
      ev[k] = Number(t2 - t1) / 1000;
    }
    ins.sort();
    ev.sort();
    return { insertUs: ins[n >> 1] as number, evictUs: ev[n >> 1] as number };
  };
  const rs = timeSplit(churn.radix, 3000);
  const is = timeSplit(churn.index, 3000);

  let sink = 0;
  for (const [c, q] of [[radix, prompts[123]], [index, prompts[123]], [radix, longs[3]], [index, longs[3]]] as const) {
    if (c.match(q as Uint32Array, { touch: false }).matchedLength !== (q as Uint32Array).length) throw new Error('setup: query not fully cached');
  }
  const q2k = prompts[123] as Uint32Array;
  const q32k = longs[3] as Uint32Array;
  const qm = mprompts[77] as Uint32Array;
  return {
    name: 'prefix-cache',
    notes: {
      cachedTokens,
      radixMetadataBytesPerToken: Number((radix.stats.metadataBytes / radix.stats.cachedKeys).toFixed(2)),
      blockHashIndexMetadataBytesPerToken: Number((index.stats.metadataBytes / index.stats.cachedKeys).toFixed(2)),
      radixNodes: radix.stats.nodes,
      radixInsert2kP50Us: Number(rs.insertUs.toFixed(2)),
      radixEvict96PagesP50Us: Number(rs.evictUs.toFixed(2)),
      blockHashIndexInsert2kP50Us: Number(is.insertUs.toFixed(2)),
      blockHashIndexEvict96PagesP50Us: Number(is.evictUs.toFixed(2)),
    },
    cases: [
      { name: 'hash-chain match 2K tokens (baseline)', fn: () => void (sink += index.match(q2k).matchedLength), latencySamples: 20_000 },
      {
        name: 'radix match 2K tokens',
        fn: () => void (sink += radix.match(q2k).matchedLength),
        baseline: 'hash-chain match 2K tokens (baseline)',
        latencySamples: 20_000,
      },
      { name: 'hash-chain match 32K tokens (baseline)', fn: () => void (sink += index.match(q32k).matchedLength), latencySamples: 5_000 },
      {
        name: 'radix match 32K tokens',
        fn: () => void (sink += radix.match(q32k).matchedLength),
        baseline: 'hash-chain match 32K tokens (baseline)',
        latencySamples: 5_000,
      },
      { name: 'hash-chain match 750 block keys, page 1 (baseline)', fn: () => void (sink += mindex.match(qm).matchedLength), latencySamples: 10_000 },
      {
        name: 'radix match 750 block keys, page 1',
        fn: () => void (sink += mradix.match(qm).matchedLength),
        baseline: 'hash-chain match 750 block keys, page 1 (baseline)',
        latencySamples: 10_000,
      },
      { name: 'hash-chain insert 2K (1.5K new) + evict 96 pages (baseline)', fn: insertEvict(churn.index), latencySamples: 5_000 },
      {
        name: 'radix insert 2K (1.5K new) + evict 96 pages',
        fn: insertEvict(churn.radix),
        baseline: 'hash-chain insert 2K (1.5K new) + evict 96 pages (baseline)',
        latencySamples: 5_000,
      },
      { name: 'hash-chain re-insert cached 2K (baseline)', fn: () => void (sink += index.insert(q2k, freshBlocks).existingLength), latencySamples: 10_000 },
      {
        name: 'radix re-insert cached 2K',
        fn: () => void (sink += radix.insert(q2k, freshBlocks).existingLength),
        baseline: 'hash-chain re-insert cached 2K (baseline)',
        latencySamples: 10_000,
      },
    ],
  };
}
