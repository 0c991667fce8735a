/**
 * Random request streams against {@link KvCacheManager} with a small pool (eviction happens
 * often): block conservation and ref counts against a reference model, failed allocations change
 * nothing, and the KV events replayed into a fresh index reproduce the cached set exactly — with
 * a CPU tier, both tiers' key sets (GPU events carry tokens and parents; CPU ones, as vLLM's
 * offloading connector sends them, neither) — and the compact form (`onBlockKey`) is the GPU
 * event stream block by block, in the same order; a waiting request's memoized prefix hit
 * (`prefixHitTokens`) is always what a fresh match finds.
 */
import { type KvEvent, blockKeyToU64 } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BLOCK_KEYS_CLEARED, BLOCK_KEY_REMOVED, BLOCK_KEY_STORED } from './block-key-log.js';
import { KvCacheManager, type KvCacheRequest } from './kv-cache-manager.js';

interface Req extends KvCacheRequest {
  tokenIds: number[];
  numComputedTokens: number;
  /** Holds blocks (admitted). */
  admitted: boolean;
}

type Op =
  | { kind: 'add'; base: number; baseLen: number; suffix: number[]; salt: boolean }
  | { kind: 'step'; pick: number; chunk: number }
  | { kind: 'preempt'; pick: number }
  | { kind: 'abort'; pick: number }
  | { kind: 'reset' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('add' as const), base: fc.integer({ min: 0, max: 2 }), baseLen: fc.integer({ min: 0, max: 12 }), suffix: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 9 }), salt: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('step' as const), pick: fc.nat(), chunk: fc.integer({ min: 1, max: 9 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('preempt' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reset' as const }) },
);

/** The cache as a router would rebuild it from events alone: u64 hash → media holding it. */
class ReplayIndex {
  readonly blocks = new Map<bigint, Set<string>>();
  /** Hashes held in `medium`. */
  keysIn(medium: string): Set<bigint> {
    const out = new Set<bigint>();
    for (const [h, s] of this.blocks) if (s.has(medium)) out.add(h);
    return out;
  }

  apply(e: KvEvent): void {
    const medium = e.medium ?? 'GPU';
    if (e.type === 'AllBlocksCleared') {
      for (const [h, s] of this.blocks) {
        s.delete(medium);
        if (s.size === 0) this.blocks.delete(h);
      }
      return;
    }
    if (e.type === 'BlockStored') {
      if (medium === 'GPU') expect(e.tokenIds.length).toBe(e.blockHashes.length * e.blockSize);
      else expect({ tokens: e.tokenIds.length, parent: e.parentBlockHash }).toEqual({ tokens: 0, parent: null });
      if (e.parentBlockHash !== null) expect(this.blocks.get(e.parentBlockHash)?.has(medium), 'parent of a stored block is cached').toBe(true);
      for (const h of e.blockHashes) {
        expect(this.blocks.get(h)?.has(medium) ?? false, 'a stored hash was not cached already').toBe(false);
        const s = this.blocks.get(h) ?? new Set<string>();
        s.add(medium);
        this.blocks.set(h, s);
      }
    } else {
      for (const h of e.blockHashes) {
        const s = this.blocks.get(h);
        expect(s?.has(medium) ?? false, 'a removed hash was cached').toBe(true);
        s?.delete(medium);
        if (s?.size === 0) this.blocks.delete(h);
      }
    }
  }
}

const BASES = [0, 1, 2].map((b) => Array.from({ length: 12 }, (_, i) => 100 * (b + 1) + (i >> 2)));

function check(kv: KvCacheManager, reqs: readonly Req[], replay: ReplayIndex): void {
  kv.verify();
  // the memoized hit of a waiting request (kept across the ops since the last check) is the hit a fresh match finds
  for (const r of reqs) if (!r.admitted) expect(kv.prefixHitTokens(r), `prefix hit of waiting ${r.requestId}`).toBe(kv.getComputedBlocks(r, { recordStats: false }).numComputedTokens);
  const holders = new Int32Array(kv.numBlocks);
  for (const r of reqs) for (const b of kv.getBlocks(r.requestId)) holders[b] = (holders[b] as number) + 1;
  let free = 0;
  let cachedFree = 0;
  let held = 0;
  for (let b = 0; b < kv.numBlocks; b++) {
    expect(kv.refCount(b), `ref count of block ${b}`).toBe(holders[b]);
    const inPool = kv.pool.isFree(b);
    const cached = kv.isCached(b);
    const states = [inPool && !cached, cached && holders[b] === 0, (holders[b] as number) > 0].filter(Boolean).length;
    expect(states, `block ${b} is in exactly one of free / cached-free / held`).toBe(1);
    if (inPool) free++;
    else if (holders[b] === 0) cachedFree++;
    else held++;
  }
  expect(free + cachedFree + held).toBe(kv.numBlocks);
  expect(kv.numFreeBlocks).toBe(free + cachedFree);
  expect(kv.usage).toBeCloseTo(held / kv.numBlocks, 12);
  const cachedHashes = new Set<bigint>();
  kv.forEachCachedBlock((_b, hi, lo) => cachedHashes.add(blockKeyToU64(hi, lo)));
  expect(replay.keysIn('GPU')).toEqual(cachedHashes);
  const cpuHashes = new Set<bigint>();
  kv.cpuTier?.forEachBlockKey((hi, lo) => cpuHashes.add(blockKeyToU64(hi, lo)));
  expect(replay.keysIn('CPU')).toEqual(cpuHashes);
  expect(kv.numCpuBlocks).toBeLessThanOrEqual(CPU_BLOCKS);
}

const CPU_BLOCKS = 5;

describe.each([
  ['block-hash', false],
  ['radix', false],
  ['block-hash', true],
  ['radix', true],
] as const)('KvCacheManager property (%s, CPU tier: %s)', (prefixCache, withCpu) => {
  it('conserves blocks, keeps ref counts, and its events replay to the same cache', () => {
    const seen = { evicted: 0, hits: 0, deduped: 0, failed: 0 };
    const cpuSeen = { cpuHits: 0, offloaded: 0, reloaded: 0, cpuDropped: 0 };
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 20, maxLength: 120, size: 'max' }), fc.constantFrom('lru', 'lfu', 's3fifo'), (ops, policy) => {
        const replay = new ReplayIndex();
        let cpuDropped = 0;
        // GPU events flattened to one entry per block, from the KvEvent form and from the compact form
        const fromEvents: string[] = [];
        const fromKeys: string[] = [];
        const positions = new Map<bigint, number>();
        const kinds = { [BLOCK_KEY_STORED]: 'stored', [BLOCK_KEY_REMOVED]: 'removed', [BLOCK_KEYS_CLEARED]: 'cleared' };
        const kv = new KvCacheManager({
          numBlocks: 8,
          blockSize: 4,
          prefixCache,
          evictionPolicy: policy,
          onEvent: (e) => {
            if (e.type === 'BlockRemoved' && e.medium === 'CPU') cpuDropped++;
            replay.apply(e);
            if (e.medium === 'CPU') return;
            if (e.type === 'AllBlocksCleared') fromEvents.push('cleared 0');
            else for (const h of e.blockHashes) fromEvents.push(`${e.type === 'BlockStored' ? 'stored' : 'removed'} ${h}`);
          },
          onBlockKey: (kind, hi, lo, position) => {
            fromKeys.push(`${kinds[kind]} ${kind === BLOCK_KEYS_CLEARED ? 0 : blockKeyToU64(hi, lo)}`);
            if (kind === BLOCK_KEYS_CLEARED) expect(position).toBe(-1);
            else {
              // a chained key always sits at the same position in its sequence
              const key = blockKeyToU64(hi, lo);
              expect(position).toBe(positions.get(key) ?? position);
              positions.set(key, position);
            }
          },
          ...(withCpu ? { cpuTier: { capacityBlocks: CPU_BLOCKS } } : {}),
        });
        const reqs: Req[] = [];
        let next = 0;
        for (const op of ops) {
          if (op.kind === 'add') {
            const tokenIds = [...(BASES[op.base] as number[]).slice(0, op.baseLen), ...op.suffix];
            const r: Req = { requestId: `r${next++}`, tokenIds, numComputedTokens: 0, admitted: false, ...(op.salt ? { namespace: { cacheSalt: 's' } } : {}) };
            reqs.push(r);
          } else if (op.kind === 'step' && reqs.length > 0) {
            const r = reqs[op.pick % reqs.length] as Req;
            if (r.numComputedTokens === r.tokenIds.length) r.tokenIds.push(r.tokenIds.length % 5); // decode: the sampled token
            kv.nowUs += 100;
            const before = { pool: kv.pool.state(), free: kv.numFreeBlocks, held: kv.numHeldBlocks, cached: kv.numCachedBlocks, cpu: kv.cpuTier?.state() };
            let res: number[] | null;
            let start = r.numComputedTokens;
            if (!r.admitted) {
              const hit = kv.getComputedBlocks(r);
              start = hit.numComputedTokens;
              expect(start).toBeLessThan(r.tokenIds.length); // the last token is never served from cache
              const n = Math.min(op.chunk, r.tokenIds.length - start);
              res = kv.allocateSlots(r, n, start, hit);
              if (res !== null) {
                r.admitted = true;
                r.numComputedTokens = start + n;
              }
            } else {
              const n = Math.min(op.chunk, r.tokenIds.length - r.numComputedTokens);
              res = kv.allocateSlots(r, n);
              if (res !== null) r.numComputedTokens += n;
            }
            if (res === null) {
              seen.failed++;
              expect({ pool: kv.pool.state(), free: kv.numFreeBlocks, held: kv.numHeldBlocks, cached: kv.numCachedBlocks, cpu: kv.cpuTier?.state() }).toEqual(before);
            } else {
              expect(kv.getBlocks(r.requestId).length).toBe(Math.ceil(r.numComputedTokens / 4));
              kv.cacheFullBlocks(r);
              expect(kv.getNumCachedBlocks(r.requestId)).toBe(Math.floor(r.numComputedTokens / 4));
            }
          } else if (op.kind === 'preempt' && reqs.length > 0) {
            const r = reqs[op.pick % reqs.length] as Req;
            kv.free(r);
            r.admitted = false;
            r.numComputedTokens = 0;
          } else if (op.kind === 'abort' && reqs.length > 0) {
            const [r] = reqs.splice(op.pick % reqs.length, 1) as [Req];
            kv.free(r);
          } else if (op.kind === 'reset') {
            const busy = kv.numHeldBlocks > 0;
            expect(kv.resetPrefixCache()).toBe(!busy);
          }
          check(kv, reqs, replay);
          expect(fromKeys).toEqual(fromEvents);
        }
        for (const r of reqs) kv.free(r);
        check(kv, [], replay);
        expect(kv.numHeldBlocks).toBe(0);
        expect(kv.numFreeBlocks).toBe(8);
        expect(kv.numRequests).toBe(0);
        seen.evicted += kv.stats.evictedBlocks;
        seen.hits += kv.stats.hits;
        seen.deduped += kv.stats.dedupedBlocks;
        cpuSeen.cpuHits += kv.stats.cpuHits;
        cpuSeen.offloaded += kv.stats.offloadedBlocks;
        cpuSeen.reloaded += kv.stats.reloadedBlocks;
        cpuSeen.cpuDropped += cpuDropped;
        kv.takeReloadUs();
      }),
      { numRuns: 100 },
    );
    // the streams did exercise eviction, hits, deduplication and failed allocations
    expect(seen, JSON.stringify(seen)).toEqual({ evicted: expect.any(Number), hits: expect.any(Number), deduped: expect.any(Number), failed: expect.any(Number) });
    expect(Math.min(seen.evicted, seen.hits, seen.deduped, seen.failed), JSON.stringify(seen)).toBeGreaterThan(0);
    // with a CPU tier they also hit on CPU, reloaded, and filled it until it dropped keys
    if (withCpu) expect(Math.min(cpuSeen.cpuHits, cpuSeen.offloaded, cpuSeen.reloaded, cpuSeen.cpuDropped), JSON.stringify(cpuSeen)).toBeGreaterThan(0);
    else expect(cpuSeen, JSON.stringify(cpuSeen)).toEqual({ cpuHits: 0, offloaded: 0, reloaded: 0, cpuDropped: 0 });
  });
});
