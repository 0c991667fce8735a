import { type EvictionPolicy, type KvEvent, type PrefixCache, isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockHashIndex } from './block-hash-index.js';
import { blockHash64 } from './block-hash.js';
import { RadixPrefixCache } from './radix-prefix-cache.js';

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(isKvmgrError(e, code), String(e)).toBe(true);
    return;
  }
  throw new Error(`expected ${code}`);
}

function snapshot(c: RadixPrefixCache): unknown {
  const { metadataBytes: _m, ...s } = c.stats;
  return { s, evictable: c.evictablePages };
}

/** A plain reference LFU (least count first, then least recently counted): O(n) victim, for tests. */
class RefLfu implements EvictionPolicy {
  readonly name = 'ref-lfu';
  readonly count = new Map<number, number>();
  private readonly stamp = new Map<number, number>();
  private clock = 0;
  get size(): number {
    return this.count.size;
  }
  insert(key: number): void {
    if (this.count.has(key)) {
      this.touch(key);
      return;
    }
    this.count.set(key, 1);
    this.stamp.set(key, ++this.clock);
  }
  touch(key: number): void {
    const c = this.count.get(key);
    if (c === undefined) return;
    this.count.set(key, c + 1);
    this.stamp.set(key, ++this.clock);
  }
  remove(key: number): void {
    this.count.delete(key);
    this.stamp.delete(key);
  }
  victim(): number {
    let best = -1;
    for (const [k, c] of this.count) {
      if (best === -1) best = k;
      const bc = this.count.get(best) as number;
      if (c < bc || (c === bc && (this.stamp.get(k) as number) < (this.stamp.get(best) as number))) best = k;
    }
    return best;
  }
  has(key: number): boolean {
    return this.count.has(key);
  }
  clear(): void {
    this.count.clear();
    this.stamp.clear();
  }
}

describe('frequency policies across lock/unlock (both prefix indexes, one tracker)', () => {
  const makers: [string, (policy: EvictionPolicy) => PrefixCache & { verify?: () => void }][] = [
    ['RadixPrefixCache', (policy) => new RadixPrefixCache({ pageSize: 1, policy })],
    ['BlockHashIndex', (policy) => new BlockHashIndex({ pageSize: 1, policy })],
  ];
  for (const [name, make] of makers) {
    describe(name, () => {
      it('a frequency policy keeps its counts across lock/unlock (locked nodes stay tracked until offered as victims)', () => {
        const lfu = new RefLfu();
        const c = make(lfu);
        const hot = c.insert([1, 2], [1, 2]).node;
        for (let i = 0; i < 5; i++) c.match([1, 2]);
        c.lock(hot); // a request runs on the hot prefix
        c.insert([7, 8], [7, 8]);
        c.match([7, 8]);
        c.match([7, 8]);
        c.unlock(hot);
        // counts: hot path 1 + 5 matches + release = 7; the other path 3 → the other goes first
        expect(c.evict(2).blocks).toEqual([8, 7]);
        expect(c.evict(2).blocks).toEqual([2, 1]);
        c.verify?.();
      });

      it('a node offered as a victim while locked is parked, then re-enters the policy on release', () => {
        const lfu = new RefLfu();
        const c = make(lfu);
        const a = c.insert([1], [1]).node;
        c.insert([2], [2]);
        c.match([2]);
        c.lock(a);
        expect(c.evict(5).blocks).toEqual([2]); // [1] offered first, parked, [2] evicted
        expect(lfu.has(a)).toBe(false);
        c.verify?.();
        c.unlock(a);
        expect(lfu.has(a)).toBe(true);
        expect(c.evict(5).blocks).toEqual([1]);
        c.verify?.();
      });
    });
  }
});

describe('RadixPrefixCache', () => {
  it('random match / insert / lock / unlock / evict with a frequency policy keep every invariant', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('insert' as const), keys: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 5 }) }),
      fc.record({ k: fc.constant('match' as const), keys: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 5 }) }),
      fc.record({ k: fc.constant('lock' as const), keys: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 5 }) }),
      fc.record({ k: fc.constant('unlock' as const), i: fc.nat() }),
      fc.record({ k: fc.constant('evict' as const), n: fc.integer({ min: 0, max: 6 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const c = new RadixPrefixCache({ pageSize: 1, initialNodes: 2, policy: new RefLfu() });
        const locked: { node: number; blocks: Set<number> }[] = [];
        let nextBlock = 100;
        for (const o of ops) {
          if (o.k === 'insert') c.insert(o.keys, o.keys.map(() => nextBlock++));
          else if (o.k === 'match') c.match(o.keys);
          else if (o.k === 'lock') {
            const m = c.match(o.keys);
            if (m.node !== -1) {
              c.lock(m.node);
              locked.push({ node: m.node, blocks: new Set(m.blocks) });
            }
          } else if (o.k === 'unlock') {
            if (locked.length > 0) c.unlock((locked.splice(o.i % locked.length, 1)[0] as { node: number }).node);
          } else {
            const before = c.evictablePages;
            const freed = c.evict(o.n).blocks;
            expect(freed.length).toBe(Math.min(o.n, before));
            for (const l of locked) for (const b of freed) expect(l.blocks.has(b)).toBe(false);
          }
          c.verify();
        }
      }),
      { numRuns: 300, seed: 11 },
    );
  });

  it('shares prefixes and splits edges only at page boundaries', () => {
    const c = new RadixPrefixCache({ pageSize: 4 });
    const a = c.insert([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [100, 101, 102]);
    expect(a).toEqual({ existingLength: 0, adoptedBlocks: [100, 101, 102], duplicateBlocks: [], node: a.node });
    // diverges inside the second page: shares one page, split after 4 keys
    const b = c.insert([1, 2, 3, 4, 5, 6, 0, 0], [200, 201]);
    expect(b.existingLength).toBe(4);
    expect(b.adoptedBlocks).toEqual([201]);
    expect(b.duplicateBlocks).toEqual([200]);
    expect(c.stats.nodes).toBe(3);
    expect(c.match([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]).blocks).toEqual([100, 101, 102]);
    expect(c.match([1, 2, 3, 4, 5, 6, 0, 0]).blocks).toEqual([100, 201]);
    expect(c.match([1, 2, 3, 4, 5, 6, 7]).matchedLength).toBe(4); // partial page never matched
    c.verify();
  });

  it('keeps siblings that share their first token but differ inside the first page apart', () => {
    const c = new RadixPrefixCache({ pageSize: 4 });
    c.insert([7, 1, 1, 1], [1]);
    c.insert([7, 1, 1, 2], [2]);
    c.insert([7, 2, 1, 1, 9, 9, 9, 9], [3, 4]);
    expect(c.match([7, 1, 1, 2]).blocks).toEqual([2]);
    expect(c.match([7, 1, 1, 1]).blocks).toEqual([1]);
    expect(c.match([7, 2, 1, 1, 9, 9, 9, 9]).blocks).toEqual([3, 4]);
    expect(c.match([7, 2, 1, 2]).matchedLength).toBe(0);
    expect(c.stats.nodes).toBe(3);
    c.verify();
  });

  it('a match that ends inside an edge returns a node covering exactly the match', () => {
    const c = new RadixPrefixCache({ pageSize: 1 });
    c.insert([1, 2, 3, 4], [10, 11, 12, 13]);
    const m = c.match([1, 2, 9]);
    expect(m.matchedLength).toBe(2);
    expect(c.nodeDepth(m.node)).toBe(2);
    c.lock(m.node);
    expect(c.evict(10).blocks).toEqual([13, 12]);
    expect(c.match([1, 2, 3]).blocks).toEqual([10, 11]);
    c.unlock(m.node);
    expect(c.evict(10).blocks).toEqual([11, 10]);
    c.verify();
  });

  it('evicts least recently used leaves, tail pages first', () => {
    const c = new RadixPrefixCache({ pageSize: 1 });
    c.insert([1, 2, 3], [1, 2, 3]);
    c.insert([5, 6], [5, 6]);
    c.insert([1, 2, 4], [1, 2, 4]);
    c.match([5]); // touches 5 only: [6] is now older than the 1-2-x branch
    expect(c.evict(1).blocks).toEqual([3]);
    expect(c.evict(1).blocks).toEqual([6]);
    expect(c.evict(2).blocks).toEqual([4, 2]);
    expect(c.evictablePages).toBe(2);
    c.verify();
  });

  it('pins protect a path until unpinned; locks are reference counted', () => {
    const c = new RadixPrefixCache({ pageSize: 2 });
    const sys = c.insert([1, 1, 2, 2], [10, 11]).node;
    c.insert([1, 1, 2, 2, 3, 3], [10, 11, 12]);
    c.pin(sys);
    const m = c.match([1, 1, 2, 2, 3, 3]);
    c.lock(m.node);
    c.lock(m.node);
    expect(c.evictablePages).toBe(0);
    expect(c.evict(5).blocks).toEqual([]);
    c.unlock(m.node);
    expect(c.evictablePages).toBe(0);
    c.unlock(m.node);
    expect(c.evictablePages).toBe(1);
    expect(c.evict(5).blocks).toEqual([12]);
    c.unpin(sys);
    expect(c.evict(5).blocks).toEqual([11, 10]);
    c.verify();
  });

  it('isolates namespaces', () => {
    const c = new RadixPrefixCache({ pageSize: 1 });
    c.insert([1, 2], [1, 2], { namespace: 'lora-a' });
    expect(c.match([1, 2]).matchedLength).toBe(0);
    expect(c.match([1, 2], { namespace: 'lora-b' }).matchedLength).toBe(0);
    expect(c.match([1, 2], { namespace: 'lora-a' }).blocks).toEqual([1, 2]);
    c.insert([1, 2], [3, 4]);
    expect(c.match([1, 2]).blocks).toEqual([3, 4]);
    expect(c.stats.cachedKeys).toBe(4);
  });

  it('rejects bad input and leaves the tree unchanged', () => {
    const c = new RadixPrefixCache({ pageSize: 2 });
    const n = c.insert([1, 2, 3, 4], [1, 2]).node;
    const before = snapshot(c);
    expectCode(() => c.insert([1, 2, 3.5, 4], [1, 2]), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => c.insert([1, 2, -1, 4], [1, 2]), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => c.insert([1, 2, 2 ** 32, 4], [1, 2]), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => c.insert([1, 2, 5, 6], [1]), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => c.insert([1, 2, 5, 6], [1, 1.5]), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => c.insert([1, 2, 5], [1, 2], { partialPage: 'error' }), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => c.match([Number.NaN]), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => c.match(null as unknown as number[]), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => c.lock(12345), 'KVMGR_UNKNOWN_HANDLE');
    expectCode(() => c.pin(0.5), 'KVMGR_UNKNOWN_HANDLE');
    expectCode(() => c.unlock(n), 'KVMGR_INVALID_STATE');
    expectCode(() => c.unpin(n), 'KVMGR_INVALID_STATE');
    expectCode(() => c.evict(-1), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => new RadixPrefixCache({ pageSize: 0 }), 'KVMGR_INVALID_ARGUMENT');
    expect(snapshot(c)).toEqual(before);
    c.verify();
    // a partial trailing page is ignored by default; extra blocks are not adopted
    expect(c.insert([1, 2, 3, 4, 5], [1, 2, 99]).adoptedBlocks).toEqual([]);
    // an evicted handle is unknown
    c.evict(2);
    expectCode(() => c.lock(n), 'KVMGR_UNKNOWN_HANDLE');
  });

  it('emits BlockStored / BlockRemoved / AllBlocksCleared with chained hashes', () => {
    const c = new RadixPrefixCache({ pageSize: 2 });
    const events: KvEvent[] = [];
    c.onEvent = (e) => events.push(e);
    const h = blockHash64([1, 2, 3, 4, 5, 6], 2, 'ns');
    c.insert([1, 2, 3, 4], [1, 2], { namespace: 'ns' });
    c.insert([1, 2, 3, 4, 5, 6], [1, 2, 3], { namespace: 'ns' });
    c.evict(3);
    expect(c.clear().blocks).toEqual([]);
    expect(events).toEqual([
      { type: 'BlockStored', blockHashes: [h[0], h[1]], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: 2 },
      { type: 'BlockStored', blockHashes: [h[2]], parentBlockHash: h[1], tokenIds: [5, 6], blockSize: 2 },
      { type: 'BlockRemoved', blockHashes: [h[2], h[1], h[0]] },
      { type: 'AllBlocksCleared' },
    ]);
    expect(new Set(blockHash64([1, 2, 3, 4, 5, 6], 2, 'other')).has(h[0] as bigint)).toBe(false);
  });

  it('computes hashes on demand when the listener is attached after inserts', () => {
    const c = new RadixPrefixCache({ pageSize: 2 });
    c.insert([1, 2, 3, 4, 5, 6], [1, 2, 3]);
    c.insert([1, 2, 3, 4, 7, 7], [1, 2, 4]); // split before any hash exists
    const events: KvEvent[] = [];
    c.onEvent = (e) => events.push(e);
    c.insert([1, 2, 3, 4, 7, 7, 8, 8], [1, 2, 4, 5]);
    c.match([1, 2, 3, 4, 7, 7, 8, 8]);
    c.evict(5);
    const a = blockHash64([1, 2, 3, 4, 5, 6], 2);
    const b = blockHash64([1, 2, 3, 4, 7, 7, 8, 8], 2);
    expect(events).toEqual([
      { type: 'BlockStored', blockHashes: [b[3]], parentBlockHash: b[2], tokenIds: [8, 8], blockSize: 2 },
      { type: 'BlockRemoved', blockHashes: [a[2], b[3], b[2], b[1], b[0]] },
    ]);
    c.verify();
  });

  it('matches long Uint32Array queries (native compare) exactly like plain arrays', () => {
    const c = new RadixPrefixCache({ pageSize: 16 });
    const base = Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 0);
    c.insert(Uint32Array.from(base), Uint32Array.from({ length: 256 }, (_, i) => i));
    for (const cut of [0, 15, 16, 17, 100, 1000, 4095, 4096]) {
      const q = base.slice();
      if (cut < q.length) q[cut] = ((q[cut] as number) ^ 1) >>> 0;
      const want = Math.floor(cut / 16) * 16;
      expect(c.match(q).matchedLength).toBe(want);
      expect(c.match(Uint32Array.from(q)).matchedLength).toBe(want);
      expect(c.match(Uint32Array.from(q).subarray(0, 3000)).matchedLength).toBe(Math.min(want, 2992));
    }
    c.verify();
  });

  it('BlockHashIndex emits the same events for the same operations', () => {
    const run = (c: RadixPrefixCache | BlockHashIndex): KvEvent[] => {
      const ev: KvEvent[] = [];
      c.onEvent = (e) => ev.push(e);
      c.insert([1, 2, 3, 4], [1, 2]);
      c.insert([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4]);
      c.insert([1, 2, 9, 9], [1, 5]);
      c.evict(2);
      c.clear();
      return ev;
    };
    expect(run(new BlockHashIndex({ pageSize: 2 }))).toEqual(run(new RadixPrefixCache({ pageSize: 2 })));
  });

  it('clear drops everything and returns the blocks', () => {
    const c = new RadixPrefixCache({ pageSize: 1 });
    const n = c.insert([1, 2, 3], [7, 8, 9]).node;
    c.lock(n);
    expect([...c.clear().blocks].sort()).toEqual([7, 8, 9]);
    expect(c.stats.cachedKeys).toBe(0);
    expect(c.evictablePages).toBe(0);
    expect(c.match([1, 2, 3]).matchedLength).toBe(0);
    expectCode(() => c.unlock(n), 'KVMGR_UNKNOWN_HANDLE');
    c.insert([1, 2], [1, 2]);
    c.verify();
  });

  it('reports metadata bytes that grow with cached keys', () => {
    const c = new RadixPrefixCache({ pageSize: 16 });
    const empty = c.stats.metadataBytes;
    c.insert(Uint32Array.from({ length: 4096 }, (_, i) => i), Uint32Array.from({ length: 256 }, (_, i) => i));
    const s = c.stats;
    expect(s.cachedKeys).toBe(4096);
    // 4 bytes per key + 4 bytes per page (block) at least; hashes are computed on demand
    expect(s.metadataBytes - empty).toBeGreaterThanOrEqual(4096 * 4 + 256 * 4);
  });
});
