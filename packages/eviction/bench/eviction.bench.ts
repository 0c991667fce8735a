import { type EvictionPolicy, type VictimCandidate, createRng } from '@kvmgr/core';
import { LRUCache } from 'lru-cache';
import type { BenchSuite } from '../../../bench/types.js';
import { AdaptivePolicy, ArcPolicy, GdsfPolicy, LfuPolicy, LruPolicy, PredictivePolicy, S3FifoPolicy, SievePolicy, SloAwareVictimSelector, VllmVictimSelector } from '../src/index.js';

const ENTRIES = 100_000;
/** Keys drawn from 1.5× the capacity: about two thirds of accesses hit. */
const KEY_SPACE = 150_000;
const BATCH = 1000;

/**
 * Eviction benchmarks. The operation mix, at 100k resident entries: look a key up; on a hit
 * record the access, on a miss evict one entry and insert the key — the same for our policies
 * and for `lru-cache` (get, then set with `max` = 100k). One case = 1000 such operations.
 */
export function createSuite(): BenchSuite {
  const rng = createRng(7);
  const keys = new Uint32Array(1 << 16);
  // scatter keys over u32 (block hashes are not small integers)
  for (let i = 0; i < keys.length; i++) keys[i] = Math.imul(rng.int(0, KEY_SPACE - 1), 2654435761) >>> 0;
  let cursor = 0;
  let sink = 0;

  const ours = (p: EvictionPolicy, entries = ENTRIES): (() => void) => {
    // a smaller cache draws its keys from 1.5× its own size, as the 100k one does
    const mixKeys = entries === ENTRIES ? keys : keys.map(() => Math.imul(rng.int(0, Math.round(entries * 1.5) - 1), 2654435761) >>> 0);
    for (let i = 0; i < entries; i++) {
      const k = Math.imul(i, 2654435761) >>> 0;
      if (!p.has(k)) p.insert(k);
    }
    let at = 0;
    return () => {
      for (let j = 0; j < BATCH; j++) {
        const k = mixKeys[at++ & 0xffff] as number;
        if (p.has(k)) p.touch(k);
        else {
          if (p.size >= entries) p.remove(p.victim());
          p.insert(k);
        }
      }
    };
  };

  const peer = new LRUCache<number, number>({ max: ENTRIES });
  for (let i = 0; i < ENTRIES; i++) peer.set(Math.imul(i, 2654435761) >>> 0, i);
  const peerMix = (): void => {
    for (let j = 0; j < BATCH; j++) {
      const k = keys[cursor++ & 0xffff] as number;
      const v = peer.get(k);
      if (v === undefined) peer.set(k, j);
      else sink += v;
    }
  };

  // 4,096 running requests, a pool short by 64 blocks
  const candidates: VictimCandidate[] = [];
  for (let i = 0; i < 4096; i++) {
    const prompt = rng.int(16, 8192);
    const gen = rng.int(0, 1024);
    candidates.push({
      requestId: `r${i}`,
      blocks: Math.ceil((prompt + gen) / 16),
      promptTokens: prompt,
      computedTokens: prompt + gen,
      generatedTokens: gen,
      remainingTokens: rng.int(0, 1024),
      admittedUs: rng.int(0, 1e9),
      priority: rng.int(0, 2),
      sloSlackMs: rng.int(-200, 5000),
      recomputeCostUs: (prompt + gen) * 19.8,
      swapCostUs: Math.ceil((prompt + gen) / 16) * 40,
    });
  }
  const slo = new SloAwareVictimSelector();
  const vllm = new VllmVictimSelector();

  const lruName = 'lru 100k mix ×1000 (ours)';
  const peerName = 'lru-cache 100k mix ×1000 (peer)';
  return {
    name: 'eviction',
    cases: [
      { name: peerName, fn: peerMix },
      { name: lruName, fn: ours(new LruPolicy({ initialCapacity: ENTRIES * 2 })), baseline: peerName },
      { name: 'arc 100k mix ×1000', fn: ours(new ArcPolicy({ capacity: ENTRIES })), baseline: lruName },
      { name: 'lfu 100k mix ×1000', fn: ours(new LfuPolicy({ initialCapacity: ENTRIES * 2 })), baseline: lruName },
      { name: 's3fifo 100k mix ×1000', fn: ours(new S3FifoPolicy({ capacity: ENTRIES })), baseline: lruName },
      { name: 'sieve 100k mix ×1000', fn: ours(new SievePolicy({ initialCapacity: ENTRIES * 2 })), baseline: lruName },
      { name: 'gdsf 100k mix ×1000', fn: ours(new GdsfPolicy({ initialCapacity: ENTRIES * 2 })), baseline: lruName },
      { name: 'predictive 100k mix ×1000', fn: ours(new PredictivePolicy({ initialCapacity: ENTRIES * 2 })), baseline: lruName },
      // follows predictive (its default first expert) unless a simulation leads; 1,024-key miniature simulations
      { name: 'adaptive 100k mix ×1000', fn: ours(new AdaptivePolicy({ capacity: ENTRIES, initialCapacity: ENTRIES * 2 })), baseline: lruName },
      // at or below 4,096 blocks every expert runs at full size (the followed one is the cache)
      { name: 'lru 4k mix ×1000', fn: ours(new LruPolicy({ initialCapacity: 8192 }), 4096) },
      { name: 'adaptive 4k mix ×1000', fn: ours(new AdaptivePolicy({ capacity: 4096 }), 4096), baseline: 'lru 4k mix ×1000' },
      { name: 'vllm selectVictims 4096 candidates', fn: () => void (sink += vllm.selectVictims(candidates, 64, 0).freedBlocks), latencySamples: 5000 },
      {
        name: 'slo-aware selectVictims 4096 candidates',
        fn: () => void (sink += slo.selectVictims(candidates, 64, 0).freedBlocks),
        baseline: 'vllm selectVictims 4096 candidates',
        latencySamples: 5000,
      },
      // many victims (about 18): the partial selection (top 8 kept aside, then a heap) vs a sort
      { name: 'vllm selectVictims 4096 candidates, 5000 blocks', fn: () => void (sink += vllm.selectVictims(candidates, 5000, 0).freedBlocks), latencySamples: 2000 },
      {
        name: 'slo-aware selectVictims 4096 candidates, 5000 blocks',
        fn: () => void (sink += slo.selectVictims(candidates, 5000, 0).freedBlocks),
        baseline: 'vllm selectVictims 4096 candidates, 5000 blocks',
        latencySamples: 2000,
      },
    ],
    notes: { entries: ENTRIES, keySpace: KEY_SPACE, opsPerCase: BATCH, sink: sink >= 0 ? 'ok' : 'x' },
  };
}
