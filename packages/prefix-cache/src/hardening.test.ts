/**
 * Issue #19: an insert whose eviction policy throws leaves the cache as it was; stale handles are
 * refused; a table of bad arguments throws the documented code and changes nothing.
 */
import { type EvictionEntryInfo, type EvictionPolicy, type PrefixCache, isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
// the exact repro of the issue uses ARC from @kvmgr/eviction (not a dependency: read its source)
import { ArcPolicy } from '../../eviction/src/arc.js';
import { BlockHashIndex } from './block-hash-index.js';
import { LruPolicy } from './lru-policy.js';
import { RadixPrefixCache } from './radix-prefix-cache.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!isKvmgrError(e)) throw e;
    return e.code;
  }
}

/** Stats, evictable pages and what every probe matches: what a caller can observe. */
function snapshot(c: PrefixCache & { evictablePages: number }, probes: number[][]): unknown {
  // probes first: a match may split an edge (same content, one node more)
  const m = probes.map((p) => c.match(p, { touch: false }).blocks);
  const { metadataBytes: _m, queries: _q, queryKeys: _k, hitKeys: _h, ...s } = c.stats;
  return { s, evictable: c.evictablePages, m };
}

/** An LRU that refuses more than `cap` keys, as ARC does (KVMGR_INVALID_STATE). */
class BoundedLru implements EvictionPolicy {
  readonly name = 'bounded-lru';
  private readonly inner = new LruPolicy(8);
  constructor(private readonly cap: number) {}
  get size(): number {
    return this.inner.size;
  }
  insert(key: number, _info?: EvictionEntryInfo): void {
    if (!this.inner.has(key) && this.inner.size >= this.cap) throw makeFull(key);
    this.inner.insert(key);
  }
  touch(key: number, _info?: EvictionEntryInfo): void {
    this.inner.touch(key);
  }
  remove(key: number): void {
    this.inner.remove(key);
  }
  victim(): number {
    return this.inner.victim();
  }
  has(key: number): boolean {
    return this.inner.has(key);
  }
  clear(): void {
    this.inner.clear();
  }
}
function makeFull(key: number): Error {
  const arc = new ArcPolicy({ capacity: 1 });
  arc.insert(1_000_000 + key);
  try {
    arc.insert(2_000_000 + key);
  } catch (e) {
    return e as Error;
  }
  throw new Error('unreachable');
}

type Cache = PrefixCache & { evictablePages: number; verify?(): void };
const makers: [string, (policy: EvictionPolicy) => Cache][] = [
  ['RadixPrefixCache', (policy) => new RadixPrefixCache({ pageSize: 2, policy })],
  ['BlockHashIndex', (policy) => new BlockHashIndex({ pageSize: 2, policy })],
];

describe.each(makers)('%s hardening (#19)', (_name, make) => {
  it('D2: a policy that throws on insert leaves no half-inserted entry (ARC past c entries)', () => {
    const c = make(new ArcPolicy({ capacity: 2 }));
    c.insert([1, 2], [10]);
    c.insert([3, 4], [11]);
    const probes = [[1, 2], [3, 4], [5, 6]];
    const before = snapshot(c, probes);
    expect(codeOf(() => c.insert([5, 6], [12]))).toBe('KVMGR_INVALID_STATE');
    expect(c.match([5, 6]).blocks).toEqual([]);
    c.verify?.();
    expect(snapshot(c, probes)).toEqual(before);
    // evicting makes room again: the insert then succeeds
    c.evict(1);
    c.insert([5, 6], [12]);
    c.verify?.();
    expect(c.match([5, 6]).blocks).toEqual([12]);
  });

  it('D2: a failing insert after a shared prefix (edge split) rolls the split back', () => {
    const c = make(new BoundedLru(2));
    c.insert([1, 2, 3, 4], [10, 11]);
    const probes = [[1, 2, 3, 4], [1, 2, 9, 9], [1, 2]];
    const before = snapshot(c, probes);
    expect(codeOf(() => c.insert([1, 2, 9, 9, 7, 7], [10, 20, 21]))).toBe('KVMGR_INVALID_STATE');
    c.verify?.();
    expect(snapshot(c, probes)).toEqual(before);
  });

  it('D2: unlock/unpin that cannot re-insert a parked node into a full policy changes nothing', () => {
    const c = make(new BoundedLru(2));
    const a = c.insert([1, 2], [10]).node;
    c.lock(a);
    c.evict(1); // parks the locked node (offered as a victim while locked)
    c.insert([3, 4], [11]);
    c.insert([5, 6], [12]);
    const probes = [[1, 2], [3, 4], [5, 6]];
    const before = snapshot(c, probes);
    const code = codeOf(() => c.unlock(a));
    if (code !== undefined) {
      expect(code).toBe('KVMGR_INVALID_STATE');
      c.verify?.();
      expect(snapshot(c, probes)).toEqual(before);
      c.evict(1);
      c.unlock(a);
    }
    c.verify?.();
  });

  it('a stale handle (its node evicted, the id reused) is refused, not applied to another node', () => {
    const c = make(new LruPolicy(16));
    const a = c.insert([1, 2], [10]).node;
    c.evict(1);
    const b = c.insert([3, 4], [11]).node;
    expect(b).not.toBe(a);
    expect(codeOf(() => c.lock(a))).toBe('KVMGR_UNKNOWN_HANDLE');
    expect(codeOf(() => c.pin(a))).toBe('KVMGR_UNKNOWN_HANDLE');
    expect(c.evictablePages).toBe(1);
    c.lock(b);
    expect(c.evictablePages).toBe(0);
    c.unlock(b);
    const d = c.insert([5, 6], [12]).node;
    c.clear();
    expect(codeOf(() => c.lock(d))).toBe('KVMGR_UNKNOWN_HANDLE');
    c.verify?.();
  });

  it('bad-argument table: each call throws the documented code and changes nothing', () => {
    const c = make(new LruPolicy(16));
    const n = c.insert([1, 2, 3, 4], [10, 11]).node;
    c.lock(n);
    const probes = [[1, 2, 3, 4], [1, 2]];
    const before = snapshot(c, probes);
    const table: [string, () => unknown, string][] = [
      ['match(null)', () => c.match(null as never), 'KVMGR_INVALID_ARGUMENT'],
      ['match([-1])', () => c.match([-1, 0]), 'KVMGR_INVALID_ARGUMENT'],
      ['match([1.5])', () => c.match([1.5, 0]), 'KVMGR_INVALID_ARGUMENT'],
      ['match([2^32])', () => c.match([2 ** 32, 0]), 'KVMGR_INVALID_ARGUMENT'],
      ['insert(null)', () => c.insert(null as never, [1]), 'KVMGR_INVALID_ARGUMENT'],
      ['insert(keys, null)', () => c.insert([7, 8], null as never), 'KVMGR_INVALID_ARGUMENT'],
      ['insert too few blocks', () => c.insert([7, 8, 9, 9], [1]), 'KVMGR_INVALID_ARGUMENT'],
      ['insert NaN block', () => c.insert([7, 8], [Number.NaN]), 'KVMGR_INVALID_ARGUMENT'],
      ['insert partial page', () => (c as RadixPrefixCache).insert([7, 8, 9], [1, 2], { partialPage: "error" }), 'KVMGR_INVALID_ARGUMENT'],
      ['lock(1.5)', () => c.lock(1.5), 'KVMGR_UNKNOWN_HANDLE'],
      ['lock(NaN)', () => c.lock(Number.NaN), 'KVMGR_UNKNOWN_HANDLE'],
      ['lock(-2)', () => c.lock(-2), 'KVMGR_UNKNOWN_HANDLE'],
      ['lock(1e9)', () => c.lock(1e9), 'KVMGR_UNKNOWN_HANDLE'],
      ['lock(null)', () => c.lock(null as never), 'KVMGR_UNKNOWN_HANDLE'],
      ['unpin(n) not pinned', () => c.unpin(n), 'KVMGR_INVALID_STATE'],
      ['evict(-1)', () => c.evict(-1), 'KVMGR_INVALID_ARGUMENT'],
      ['evict(1.5)', () => c.evict(1.5), 'KVMGR_INVALID_ARGUMENT'],
      ['evict(NaN)', () => c.evict(Number.NaN), 'KVMGR_INVALID_ARGUMENT'],
    ];
    for (const [what, fn, code] of table) {
      expect(codeOf(fn), what).toBe(code);
      c.verify?.();
      expect(snapshot(c, probes), what).toEqual(before);
    }
    c.unlock(n);
    expect(codeOf(() => c.unlock(n))).toBe('KVMGR_INVALID_STATE');
  });
});
