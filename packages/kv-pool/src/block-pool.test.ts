import { createKVCacheSpec, isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { codeOf } from '../test/code-of.js';
import { BlockPool } from './block-pool.js';
import { BookkeepingBackend } from './bookkeeping-backend.js';
import { runCompaction } from './compaction.js';

const spec = createKVCacheSpec({ numLayers: 2, numKvHeads: 2, headDim: 8 });

/** The reference model: plain arrays and a map. */
class Model {
  refs: number[];
  queue: number[];
  keys = new Map<number, number>();
  evicted: [number, number][] = [];
  constructor(readonly n: number) {
    this.refs = new Array(n).fill(0);
    this.queue = Array.from({ length: n }, (_, i) => i);
  }
  inRange(b: number) {
    return Number.isInteger(b) && b >= 0 && b < this.n;
  }
  allocate(k: number): number[] | string {
    if (k > this.queue.length) return 'KVMGR_OUT_OF_BLOCKS';
    const out = this.queue.splice(0, k);
    for (const b of out) {
      if (this.keys.has(b)) {
        this.evicted.push([b, this.keys.get(b)!]);
        this.keys.delete(b);
      }
      this.refs[b] = 1;
    }
    return out;
  }
  free(blocks: number[]): string | undefined {
    const count = new Map<number, number>();
    for (const b of blocks) {
      if (!this.inRange(b)) return 'KVMGR_INVALID_ARGUMENT';
      const c = (count.get(b) ?? 0) + 1;
      count.set(b, c);
      if (this.refs[b]! < c) return 'KVMGR_INVALID_STATE';
    }
    for (const b of blocks) this.refs[b]!--;
    for (const b of blocks) if (this.refs[b] === 0 && !this.queue.includes(b)) this.queue.push(b);
    return undefined;
  }
  share(blocks: number[]): string | undefined {
    for (const b of blocks) {
      if (!this.inRange(b)) return 'KVMGR_INVALID_ARGUMENT';
      if (this.refs[b] === 0 && !this.keys.has(b)) return 'KVMGR_INVALID_STATE';
    }
    for (const b of blocks) {
      if (this.refs[b] === 0) this.queue.splice(this.queue.indexOf(b), 1);
      this.refs[b]!++;
    }
    return undefined;
  }
  state() {
    return {
      refCounts: this.refs.slice(),
      freeQueue: this.queue.slice(),
      cached: [...this.keys.entries()].sort((a, b) => a[0] - b[0]),
    };
  }
}

describe('BlockPool', () => {
  it('allocates from the head of the free queue in id order, all or nothing', () => {
    const pool = new BlockPool({ spec, numBlocks: 8 });
    expect(pool.allocate(3)).toEqual([0, 1, 2]);
    expect(pool.numFreeBlocks).toBe(5);
    expect(pool.usage).toBeCloseTo(3 / 8, 12);
    const before = pool.state();
    let err: unknown;
    try {
      pool.allocate(6);
    } catch (e) {
      err = e;
    }
    expect(isKvmgrError(err, 'KVMGR_OUT_OF_BLOCKS')).toBe(true);
    expect((err as { details: unknown }).details).toEqual({ free: 5, requested: 6 });
    expect(pool.state()).toEqual(before);
    expect(codeOf(() => pool.allocate(-1))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => pool.allocate(1.5))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(pool.allocate(0)).toEqual([]);
  });

  it('throws on double free and unknown blocks without changing anything', () => {
    const pool = new BlockPool({ spec, numBlocks: 4 });
    const b = pool.allocate(2);
    const before = pool.state();
    expect(codeOf(() => pool.free([b[0]!, b[0]!]))).toBe('KVMGR_INVALID_STATE');
    expect(pool.state()).toEqual(before);
    expect(codeOf(() => pool.free([b[1]!, 3]))).toBe('KVMGR_INVALID_STATE');
    expect(pool.state()).toEqual(before);
    expect(codeOf(() => pool.free([b[1]!, 9]))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => pool.free([-1]))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(pool.state()).toEqual(before);
    pool.free(b);
    expect(codeOf(() => pool.free([b[0]!]))).toBe('KVMGR_INVALID_STATE');
  });

  it('keeps freed cached blocks reusable until handed out, vLLM v1 style', () => {
    const evicted: [number, number][] = [];
    const pool = new BlockPool({ spec, numBlocks: 4, onCachedBlockEvicted: (b, k) => evicted.push([b, k]) });
    const seq = pool.allocate(3); // 0 1 2
    pool.markCached(0, 100);
    pool.markCached(1, 101);
    pool.free([...seq].reverse()); // tail of the sequence evicted first
    expect(pool.state().freeQueue).toEqual([3, 2, 1, 0]);
    expect(pool.numCachedFreeBlocks).toBe(2);
    // cache hit on block 0: back out of the queue, same content
    pool.share([0]);
    expect(pool.refCount(0)).toBe(1);
    expect(pool.cachedKey(0)).toBe(100);
    expect(pool.state().freeQueue).toEqual([3, 2, 1]);
    // allocating 3 hands out 3, 2, then the cached block 1, which loses its identity
    expect(pool.allocate(3)).toEqual([3, 2, 1]);
    expect(evicted).toEqual([[1, 101]]);
    expect(pool.cachedKey(1)).toBeUndefined();
    // a free uncached block cannot be shared
    pool.free([2]);
    expect(codeOf(() => pool.share([2]))).toBe('KVMGR_INVALID_STATE');
  });

  it('forks for parallel sampling and copies on write', () => {
    const pool = new BlockPool({ spec, numBlocks: 6 });
    const parent = pool.allocate(2);
    const child = pool.fork(parent);
    expect(child).toEqual(parent);
    expect(pool.refCount(parent[1]!)).toBe(2);
    const w = pool.copyOnWrite(child[1]!);
    expect(w).toEqual({ block: 2, copyFrom: 1 });
    expect(pool.refCount(1)).toBe(1);
    expect(pool.refCount(2)).toBe(1);
    // now private: written in place
    expect(pool.copyOnWrite(1)).toEqual({ block: 1, copyFrom: -1 });
    // a cached block is immutable: copied even with one reference
    pool.markCached(0, 7);
    pool.free([child[0]!]);
    expect(pool.copyOnWrite(0)).toEqual({ block: 3, copyFrom: 0 });
    expect(pool.refCount(0)).toBe(0);
    expect(pool.cachedKey(0)).toBe(7);
    expect(codeOf(() => pool.fork([0]))).toBe('KVMGR_INVALID_STATE');
    const full = new BlockPool({ spec, numBlocks: 1 });
    full.allocate(1);
    full.fork([0]);
    const before = full.state();
    expect(codeOf(() => full.copyOnWrite(0))).toBe('KVMGR_OUT_OF_BLOCKS');
    expect(full.state()).toEqual(before);
  });

  it('compacts live blocks into the lowest ids through a backend, moving content', async () => {
    const pool = new BlockPool({ spec, numBlocks: 8 });
    const backend = new BookkeepingBackend();
    const slab = backend.createSlab('gpu', 8, spec.bytesPerBlock);
    const blocks = pool.allocate(8);
    for (const b of blocks) slab.tags[b] = 1000 + b;
    pool.markCached(6, 66);
    pool.free([0, 2, 3, 6]); // live: 1, 4, 5, 7 in use; 6 cached free
    const plan = await runCompaction(pool, backend, slab);
    expect(plan.freeTailStart).toBe(5);
    expect(plan.moves).toEqual([
      { from: 5, to: 0 },
      { from: 6, to: 2 },
      { from: 7, to: 3 },
    ]);
    expect(Array.from(slab.tags.slice(0, 5))).toEqual([1005, 1001, 1006, 1007, 1004]);
    expect(pool.refCount(0)).toBe(1);
    expect(pool.refCount(5)).toBe(0);
    expect(pool.cachedKey(2)).toBe(66);
    expect(pool.isFree(2)).toBe(true);
    for (let b = 5; b < 8; b++) expect(pool.isFree(b)).toBe(true);
    pool.verify();
    // shrink below the live count: the cached block is dropped, in-use blocks must fit
    const p2 = pool.planCompaction({ limitBlocks: 4 });
    expect(p2.droppedCached).toEqual([2]);
    expect(codeOf(() => pool.planCompaction({ limitBlocks: 3 }))).toBe('KVMGR_OUT_OF_BLOCKS');
    pool.allocate(1);
    expect(codeOf(() => pool.applyCompaction(p2))).toBe('KVMGR_INVALID_STATE');
  });

  it('matches the reference model on random operation sequences and never changes on failure', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('alloc' as const), n: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ kind: fc.constant('free' as const), pick: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 6 }) }),
      fc.record({ kind: fc.constant('share' as const), pick: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 4 }) }),
      fc.record({ kind: fc.constant('cache' as const), b: fc.integer({ min: 0, max: 40 }), key: fc.integer({ min: 1, max: 1000 }) }),
      fc.record({ kind: fc.constant('cow' as const), b: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ kind: fc.constant('fork' as const), pick: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 4 }) }),
      fc.record({ kind: fc.constant('uncache' as const), b: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ kind: fc.constant('compact' as const) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 24 }), fc.array(op, { minLength: 20, maxLength: 80 }), (n, ops) => {
        const evicted: [number, number][] = [];
        const pool = new BlockPool({ spec, numBlocks: n, onCachedBlockEvicted: (b, k) => evicted.push([b, k]) });
        const m = new Model(n);
        const pick = (xs: number[]) => xs.map((x) => (x >= 2 * n ? x : x % (n + 1)));
        for (const o of ops) {
          const before = pool.state();
          let expected: string | undefined;
          let got: string | undefined;
          if (o.kind === 'alloc') {
            const r = m.allocate(o.n);
            expected = typeof r === 'string' ? r : undefined;
            got = codeOf(() => {
              const out = pool.allocate(o.n);
              expect(out).toEqual(r);
            });
          } else if (o.kind === 'free') {
            const bs = pick(o.pick);
            expected = m.free(bs);
            got = codeOf(() => pool.free(bs));
          } else if (o.kind === 'share') {
            const bs = pick(o.pick);
            expected = m.share(bs);
            got = codeOf(() => pool.share(bs));
          } else if (o.kind === 'cache') {
            const b = o.b % n;
            if (m.refs[b] === 0) expected = 'KVMGR_INVALID_STATE';
            else if (m.keys.has(b) && m.keys.get(b) !== o.key) expected = 'KVMGR_INVALID_STATE';
            else m.keys.set(b, o.key);
            got = codeOf(() => pool.markCached(b, o.key));
          } else if (o.kind === 'fork') {
            const bs = pick(o.pick);
            for (const b of bs) {
              if (!m.inRange(b)) {
                expected = 'KVMGR_INVALID_ARGUMENT';
                break;
              }
              if (m.refs[b] === 0) {
                expected = 'KVMGR_INVALID_STATE';
                break;
              }
            }
            if (expected === undefined) m.share(bs);
            got = codeOf(() => expect(pool.fork(bs)).toEqual(bs));
          } else if (o.kind === 'uncache') {
            const b = o.b % n;
            if (m.keys.has(b)) {
              m.keys.delete(b);
              if (m.refs[b] === 0) {
                m.queue.splice(m.queue.indexOf(b), 1);
                m.queue.unshift(b);
              }
            }
            got = codeOf(() => pool.uncache(b));
          } else if (o.kind === 'cow') {
            const b = o.b % n;
            got = codeOf(() => {
              const r = pool.copyOnWrite(b);
              if (r.copyFrom === -1) expect(m.refs[b] === 1 && !m.keys.has(b)).toBe(true);
              else {
                const a = m.allocate(1);
                expect(a).toEqual([r.block]);
                m.free([b]);
              }
            });
            if (got !== undefined) expected = m.refs[b] === 0 ? 'KVMGR_INVALID_STATE' : 'KVMGR_OUT_OF_BLOCKS';
          } else {
            const plan = pool.planCompaction();
            pool.applyCompaction(plan);
            const perm = Array.from({ length: n }, (_, i) => i);
            for (const mv of plan.moves) {
              perm[mv.from] = mv.to;
              perm[mv.to] = mv.from;
            }
            const refs = m.refs.slice();
            for (let i = 0; i < n; i++) m.refs[perm[i]!] = refs[i]!;
            m.queue = m.queue.map((b) => perm[b]!);
            m.keys = new Map([...m.keys].map(([b, k]) => [perm[b]!, k]));
            const live = m.refs.filter((r) => r > 0).length + [...m.keys.keys()].filter((b) => m.refs[b] === 0).length;
            for (let b = live; b < n; b++) expect(m.refs[b] === 0 && !m.keys.has(b)).toBe(true);
          }
          expect(got).toBe(expected);
          if (got !== undefined) expect(pool.state()).toEqual(before);
          expect(pool.state()).toEqual(m.state());
          expect(evicted).toEqual(m.evicted);
          pool.verify();
          expect(pool.numFreeBlocks + pool.numUsedBlocks).toBe(n);
        }
      }),
      { numRuns: 300 },
    );
  });
});
