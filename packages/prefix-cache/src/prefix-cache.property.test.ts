import type { PrefixCache } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockHashIndex } from './block-hash-index.js';
import { RadixPrefixCache } from './radix-prefix-cache.js';

/**
 * Reference model: the set of cached pages, each named by its namespace and the whole prefix up
 * to and including it (a prefix-closed set), with a block, lock/pin counts and a recency rank.
 * Recency follows the documented contract: an access ranks the path's evictable pages from the
 * deepest up (parents end more recent), unlock/unpin re-ranks pages that become evictable, and
 * eviction takes the evictable page of lowest rank (always a leaf).
 */
interface Page {
  block: number;
  rank: number;
  lock: number;
  pin: number;
  ns: string;
  depth: number; // pages
}

class Model {
  readonly pages = new Map<string, Page>();
  clock = 0;
  hitKeys = 0;
  queryKeys = 0;
  queries = 0;
  insertedKeys = 0;
  evictedKeys = 0;
  constructor(readonly P: number) {}

  private name(ns: string, keys: readonly number[], pages: number): string {
    return `${ns}|${keys.slice(0, pages * this.P).join(',')}`;
  }

  private path(ns: string, keys: readonly number[], pages: number): Page[] {
    const out: Page[] = [];
    for (let i = 0; i < pages; i++) out.push(this.pages.get(this.name(ns, keys, i + 1)) as Page);
    return out;
  }

  private touch(path: Page[]): void {
    for (let i = path.length - 1; i >= 0; i--) {
      const p = path[i] as Page;
      if (p.lock === 0 && p.pin === 0) p.rank = ++this.clock;
    }
  }

  match(ns: string, keys: readonly number[], touch: boolean): { len: number; blocks: number[] } {
    const full = Math.floor(keys.length / this.P);
    let n = 0;
    while (n < full && this.pages.has(this.name(ns, keys, n + 1))) n++;
    const path = this.path(ns, keys, n);
    if (touch) {
      this.queries++;
      this.queryKeys += keys.length;
      this.hitKeys += n * this.P;
      this.touch(path);
    }
    return { len: n * this.P, blocks: path.map((p) => p.block) };
  }

  insert(ns: string, keys: readonly number[], blocks: readonly number[]): { existing: number; adopted: number[]; dup: number[] } {
    const full = Math.floor(keys.length / this.P);
    const adopted: number[] = [];
    const dup: number[] = [];
    let existing = -1;
    for (let i = 0; i < full; i++) {
      const nm = this.name(ns, keys, i + 1);
      const p = this.pages.get(nm);
      if (p && existing < 0) {
        if (p.block !== blocks[i]) dup.push(blocks[i] as number);
      } else {
        if (existing < 0) existing = i * this.P;
        this.pages.set(nm, { block: blocks[i] as number, rank: 0, lock: 0, pin: 0, ns, depth: i + 1 });
        adopted.push(blocks[i] as number);
      }
    }
    if (existing < 0) existing = full * this.P;
    this.insertedKeys += full * this.P - existing;
    this.touch(this.path(ns, keys, full));
    return { existing, adopted, dup };
  }

  ref(ns: string, keys: readonly number[], pages: number, field: 'lock' | 'pin', delta: 1 | -1): void {
    const path = this.path(ns, keys, pages);
    for (let i = path.length - 1; i >= 0; i--) {
      const p = path[i] as Page;
      p[field] += delta;
      if (delta === -1 && p.lock === 0 && p.pin === 0) p.rank = ++this.clock;
    }
  }

  get evictable(): number {
    let n = 0;
    for (const p of this.pages.values()) if (p.lock === 0 && p.pin === 0) n++;
    return n;
  }

  evict(n: number): number[] {
    const freed: number[] = [];
    for (let k = 0; k < n; k++) {
      let best: [string, Page] | undefined;
      for (const e of this.pages) {
        const p = e[1];
        if (p.lock === 0 && p.pin === 0 && (best === undefined || p.rank < best[1].rank)) best = e;
      }
      if (!best) break;
      // the lowest-ranked evictable page must be a leaf of the prefix-closed set
      for (const name of this.pages.keys()) {
        if (name !== best[0] && name.startsWith(`${best[0]},`)) throw new Error(`model victim ${best[0]} is not a leaf`);
      }
      this.pages.delete(best[0]);
      freed.push(best[1].block);
      this.evictedKeys += this.P;
    }
    return freed;
  }
}

type Op =
  | { t: 'insert'; ns: number; keys: number[]; reuse: boolean }
  | { t: 'match'; ns: number; keys: number[]; touch: boolean }
  | { t: 'lock'; ns: number; keys: number[]; pin: boolean }
  | { t: 'release'; index: number }
  | { t: 'evict'; n: number };

const NAMESPACES = ['', 'tenant-b'];

function opArb(P: number): fc.Arbitrary<Op> {
  // a small alphabet so that prompts share prefixes and diverge inside pages
  const keys = fc.array(fc.integer({ min: 0, max: P >= 3 ? 1 : 2 }), { maxLength: 7 * P + P - 1 });
  const ns = fc.integer({ min: 0, max: 1 });
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ t: fc.constant('insert' as const), ns, keys, reuse: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('match' as const), ns, keys, touch: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('lock' as const), ns, keys, pin: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('release' as const), index: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('evict' as const), n: fc.integer({ min: 0, max: 6 }) }) },
  );
}

function run(make: (P: number) => PrefixCache & { verify?: () => void }, P: number, ops: Op[]): void {
  const cache = make(P);
  const model = new Model(P);
  const held: { node: number; ns: string; keys: number[]; pages: number; pin: boolean }[] = [];
  let nextBlock = 1000;
  for (const op of ops) {
    if (op.t === 'insert') {
      const ns = NAMESPACES[op.ns] as string;
      const full = Math.floor(op.keys.length / P);
      const mm = model.match(ns, op.keys, false);
      // reuse: pass the cached blocks for the cached part (neither adopted nor duplicate)
      const blocks = Array.from({ length: full }, (_, i) => (op.reuse && i < mm.blocks.length ? (mm.blocks[i] as number) : nextBlock++));
      const got = cache.insert(op.keys, blocks, { namespace: ns });
      const want = model.insert(ns, op.keys, blocks);
      expect(got.existingLength).toBe(want.existing);
      expect(got.adoptedBlocks).toEqual(want.adopted);
      expect(got.duplicateBlocks).toEqual(want.dup);
    } else if (op.t === 'match') {
      const ns = NAMESPACES[op.ns] as string;
      const got = cache.match(op.keys, { namespace: ns, touch: op.touch });
      const want = model.match(ns, op.keys, op.touch);
      expect(got.matchedLength).toBe(want.len);
      expect(got.blocks).toEqual(want.blocks);
      expect(got.node === -1).toBe(want.len === 0);
    } else if (op.t === 'lock') {
      const ns = NAMESPACES[op.ns] as string;
      const got = cache.match(op.keys, { namespace: ns });
      const want = model.match(ns, op.keys, true);
      expect(got.matchedLength).toBe(want.len);
      if (got.node !== -1) {
        if (op.pin) cache.pin(got.node);
        else cache.lock(got.node);
        model.ref(ns, op.keys, want.len / P, op.pin ? 'pin' : 'lock', 1);
        held.push({ node: got.node, ns, keys: op.keys, pages: want.len / P, pin: op.pin });
      }
    } else if (op.t === 'release') {
      if (held.length === 0) continue;
      const [h] = held.splice(op.index % held.length, 1);
      if (!h) continue;
      if (h.pin) cache.unpin(h.node);
      else cache.unlock(h.node);
      model.ref(h.ns, h.keys, h.pages, h.pin ? 'pin' : 'lock', -1);
    } else {
      const got = cache.evict(op.n);
      const want = model.evict(op.n);
      expect(got.blocks).toEqual(want);
      expect(got.evictedKeys).toBe(want.length * P);
      // no held (locked or pinned) path lost a page
      for (const h of held) expect(cache.match(h.keys, { namespace: h.ns, touch: false }).matchedLength).toBeGreaterThanOrEqual(h.pages * P);
    }
    cache.verify?.();
    expect(cache.evictablePages).toBe(model.evictable);
    const s = cache.stats;
    expect(s.cachedKeys).toBe(model.pages.size * P);
    expect(s.queries).toBe(model.queries);
    expect(s.queryKeys).toBe(model.queryKeys);
    expect(s.hitKeys).toBe(model.hitKeys);
    expect(s.insertedKeys).toBe(model.insertedKeys);
    expect(s.evictedKeys).toBe(model.evictedKeys);
    expect(s.insertedKeys - s.evictedKeys).toBe(s.cachedKeys);
  }
  // release everything: the whole cache becomes evictable, then empties in model order
  for (const h of held) {
    if (h.pin) cache.unpin(h.node);
    else cache.unlock(h.node);
    model.ref(h.ns, h.keys, h.pages, h.pin ? 'pin' : 'lock', -1);
  }
  expect(cache.evictablePages).toBe(model.pages.size);
  expect(cache.evict(1_000_000).blocks).toEqual(model.evict(1_000_000));
  expect(cache.stats.cachedKeys).toBe(0);
  cache.verify?.();
}

describe('RadixPrefixCache agrees with the reference model', () => {
  for (const P of [1, 2, 3]) {
    it(`pageSize ${P}`, () => {
      fc.assert(
        fc.property(fc.array(opArb(P), { maxLength: 60 }), (ops) => run((p) => new RadixPrefixCache({ pageSize: p, initialNodes: 2 }), P, ops)),
        { numRuns: 300, seed: 42 + P },
      );
    });
  }
});

describe('BlockHashIndex agrees with the same reference model', () => {
  for (const P of [1, 2]) {
    it(`pageSize ${P}`, () => {
      fc.assert(
        fc.property(fc.array(opArb(P), { maxLength: 60 }), (ops) => run((p) => new BlockHashIndex({ pageSize: p, initialBlocks: 2 }), P, ops)),
        { numRuns: 200, seed: 7 + P },
      );
    });
  }
});
