import { createKVCacheSpec } from '@kvmgr/core';
import type { BenchSuite } from '../../../bench/types.js';
import { BlockPool } from '../src/block-pool.js';
import { BuddyAllocator } from '../src/buddy-allocator.js';
import { TieredPool } from '../src/tiered-pool.js';

const NUM_BLOCKS = 16_384; // e.g. 32 GiB of Llama-3.1-8B fp16 KV at 2 MiB per block

/** The naive allocator a first attempt would write: a free array (splice) and a Set of used ids. */
class NaiveAllocator {
  private free: number[];
  private used = new Set<number>();
  constructor(n: number) {
    this.free = Array.from({ length: n }, (_, i) => i);
  }
  allocate(n: number): number[] {
    if (n > this.free.length) throw new Error('out of blocks');
    const out = this.free.splice(0, n);
    for (const b of out) this.used.add(b);
    return out;
  }
  release(blocks: number[]): void {
    for (const b of blocks) {
      if (!this.used.delete(b)) throw new Error('double free');
      this.free.push(b);
    }
  }
}

/**
 * kv-pool micro-benchmarks: allocate + free of a 16-block sequence against the naive allocator,
 * buddy runs, a cache hit on a freed cached block, and a tiered allocate with offload.
 */
export function createSuite(): BenchSuite {
  const spec = createKVCacheSpec({ numLayers: 32, numKvHeads: 8, headDim: 128 });
  const pool = new BlockPool({ spec, numBlocks: NUM_BLOCKS });
  const naive = new NaiveAllocator(NUM_BLOCKS);
  const buddy = new BuddyAllocator({ numBlocks: NUM_BLOCKS });
  // background occupancy: half of each pool is held by other sequences
  const bgPool: number[][] = [];
  const bgNaive: number[][] = [];
  for (let i = 0; i < NUM_BLOCKS / 32; i++) {
    bgPool.push(pool.allocate(16));
    bgNaive.push(naive.allocate(16));
    buddy.allocateRuns(16);
  }
  // cached blocks in the free queue: a hit takes them out, a free puts them back
  // (a pool of its own: the allocate+free case rotates the free queue and would evict them)
  const hitPool = new BlockPool({ spec, numBlocks: NUM_BLOCKS });
  hitPool.allocate(NUM_BLOCKS / 2);
  const cached = hitPool.allocate(16);
  for (const [i, b] of cached.entries()) hitPool.markCached(b, 1_000_000 + i);
  hitPool.free([...cached].reverse());
  const tiered = new TieredPool({ spec, offloadWatermark: 0.5, tiers: { gpu: { capacityBlocks: 4096 }, cpu: { capacityBlocks: 16_384 } } });
  let key = 1;
  let now = 0;
  let sink = 0;
  return {
    name: 'kv-pool',
    cases: [
      {
        name: 'naive allocate+free 16 blocks (array splice + Set)',
        fn: () => {
          const b = naive.allocate(16);
          sink += b[0]!;
          naive.release(b);
        },
        latencySamples: 20_000,
      },
      {
        name: 'BlockPool allocate+free 16 blocks',
        fn: () => {
          const b = pool.allocate(16);
          sink += b[0]!;
          pool.free(b);
        },
        baseline: 'naive allocate+free 16 blocks (array splice + Set)',
        latencySamples: 20_000,
      },
      {
        name: 'BlockPool cache hit (share) + free 16 cached blocks',
        fn: () => {
          hitPool.share(cached);
          hitPool.free(cached);
        },
        latencySamples: 20_000,
      },
      {
        name: 'BuddyAllocator allocateRuns+freeRuns 16 blocks',
        fn: () => {
          const r = buddy.allocateRuns(16);
          sink += r[0]!.start;
          buddy.freeRuns(r);
        },
        baseline: 'naive allocate+free 16 blocks (array splice + Set)',
        latencySamples: 20_000,
      },
      {
        name: 'BuddyAllocator allocateRuns+freeRuns 13 blocks (8+4+1)',
        fn: () => {
          const r = buddy.allocateRuns(13);
          sink += r[0]!.start;
          buddy.freeRuns(r);
        },
        latencySamples: 20_000,
      },
      {
        name: 'TieredPool allocate+cache+free 16 blocks with offload',
        fn: () => {
          now += 1000;
          const b = tiered.allocate(16, now);
          for (const x of b) tiered.cacheBlock(x, key++);
          tiered.free(b, now);
          sink += b[0]!;
        },
        latencySamples: 5_000,
      },
    ],
    notes: { numBlocks: NUM_BLOCKS, backgroundSequences: NUM_BLOCKS / 32, sink: sink === -1 ? 1 : 0 },
  };
}
