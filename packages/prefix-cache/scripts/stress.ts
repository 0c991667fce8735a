/**
 * Long stress run (not in CI): random inserts, matches, evictions, locks and bad calls on
 * RadixPrefixCache and BlockHashIndex (with LRU, and with a capacity-bounded ARC that refuses
 * inserts), checked against a reference model of the cached content (prefix → block); heap
 * usage is printed at intervals to show memory stays flat.
 *
 *   pnpm --filter @kvmgr/prefix-cache stress [opsPerStructure=1e7] [seed=19]
 */
import { type EvictionPolicy, type PrefixCache, createRng, isKvmgrError } from '@kvmgr/core';
import { ArcPolicy } from '../../eviction/src/arc.js';
import { BlockHashIndex } from '../src/block-hash-index.js';
import { LruPolicy } from '../src/lru-policy.js';
import { RadixPrefixCache } from '../src/radix-prefix-cache.js';

const OPS = Number(process.argv[2] ?? 1e7);
const SEED = Number(process.argv[3] ?? 19);
const P = 2;
const gc = (globalThis as { gc?: () => void }).gc;

type Cache = PrefixCache & { readonly evictablePages: number; readonly cachedPages: number; verify?(): void };

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`stress: ${what}`);
}

function stress(name: string, cache: Cache, seed: number): void {
  const rng = createRng(seed);
  const rnd = () => rng.next();
  const model = new Map<string, number>(); // prefix (keys up to and including a page) → block
  const byBlock = new Map<number, string>();
  const locks: number[] = [];
  let nextBlock = 1;
  let refused = 0;
  const prefixes: number[][] = Array.from({ length: 16 }, (_, s) => Array.from({ length: 4 * P }, (_, i) => s * 100 + i));
  const makeKeys = (): number[] => {
    const k = (prefixes[Math.floor(rnd() * prefixes.length)] as number[]).slice(0, P * Math.floor(rnd() * 5));
    const extra = Math.floor(rnd() * 5) * P + (rnd() < 0.2 ? 1 : 0);
    for (let i = 0; i < extra; i++) k.push(Math.floor(rnd() * 3));
    return k;
  };
  const expected = (keys: number[]): number[] => {
    const out: number[] = [];
    for (let p = 1; p * P <= keys.length; p++) {
      const b = model.get(keys.slice(0, p * P).join(','));
      if (b === undefined) break;
      out.push(b);
    }
    return out;
  };
  const snap = (): string => {
    const { metadataBytes: _m, queries: _q, queryKeys: _k, hitKeys: _h, ...s } = cache.stats;
    return JSON.stringify([s, cache.evictablePages]);
  };
  const bad = (fn: () => unknown, code: string, what: string): void => {
    const before = snap();
    try {
      fn();
    } catch (e) {
      check(isKvmgrError(e, code), `${name} ${what}: expected ${code}, got ${String(e)}`);
      check(snap() === before, `${name} ${what}: state changed by a failed call`);
      return;
    }
    throw new Error(`stress: ${name} ${what}: expected ${code}`);
  };
  /** Evicts `n` pages and drops them from the model. */
  const evict = (n: number): void => {
    for (const b of cache.evict(n).blocks) {
      const key = byBlock.get(b);
      check(key !== undefined, `${name} evicted block ${b} it does not hold`);
      model.delete(key as string);
      byBlock.delete(b);
    }
  };
  const t0 = performance.now();
  const every = Math.max(1, Math.floor(OPS / 10));
  for (let i = 1; i <= OPS; i++) {
    const r = rnd();
    if (r < 0.35) {
      const keys = makeKeys();
      const pages = Math.floor(keys.length / P);
      const blocks = Array.from({ length: pages }, () => nextBlock++);
      const have = expected(keys);
      const before = snap();
      try {
        const res = cache.insert(keys, blocks);
        check(res.existingLength === have.length * P, `${name} existingLength ${res.existingLength} != ${have.length * P}`);
        for (let p = have.length; p < pages; p++) {
          const key = keys.slice(0, (p + 1) * P).join(',');
          model.set(key, blocks[p] as number);
          byBlock.set(blocks[p] as number, key);
        }
      } catch (e) {
        check(isKvmgrError(e, 'KVMGR_INVALID_STATE'), `${name} insert threw ${String(e)}`);
        check(snap() === before, `${name} a refused insert changed the cache`);
        refused++;
      }
    } else if (r < 0.65) {
      const keys = makeKeys();
      try {
        const m = cache.match(keys, { touch: rnd() < 0.8 });
        check(JSON.stringify(m.blocks) === JSON.stringify(expected(keys)), `${name} match differs from the model`);
        if (m.node !== -1 && rnd() < 0.1) {
          cache.lock(m.node);
          locks.push(m.node);
        }
      } catch (e) {
        // a match that splits an edge inserts a node: a full ARC may refuse it (nothing changes)
        check(isKvmgrError(e, 'KVMGR_INVALID_STATE'), `${name} match threw ${String(e)}`);
      }
    } else if (r < 0.8) {
      evict(Math.floor(rnd() * 4));
    } else if (r < 0.9) {
      if (locks.length > 0) {
        const h = locks.splice(Math.floor(rnd() * locks.length), 1)[0] as number;
        try {
          cache.unlock(h);
        } catch (e) {
          // ARC full: the parked node cannot come back yet; make room and retry
          check(isKvmgrError(e, 'KVMGR_INVALID_STATE'), `${name} unlock threw ${String(e)}`);
          locks.push(h);
        }
      }
    } else {
      const which = Math.floor(rnd() * 5);
      if (which === 0) bad(() => cache.match([-1, 0]), 'KVMGR_INVALID_ARGUMENT', 'match(-1)');
      else if (which === 1) bad(() => cache.evict(Number.NaN), 'KVMGR_INVALID_ARGUMENT', 'evict(NaN)');
      else if (which === 2) bad(() => cache.lock(1.5), 'KVMGR_UNKNOWN_HANDLE', 'lock(1.5)');
      else if (which === 3) bad(() => cache.insert([1, 2], [Number.NaN]), 'KVMGR_INVALID_ARGUMENT', 'insert(NaN block)');
      else bad(() => cache.insert(null as never, []), 'KVMGR_INVALID_ARGUMENT', 'insert(null)');
    }
    if (i % 8192 === 0) {
      // drain: unlock everything and evict it all; every handle is stale then
      const stale = locks.slice();
      for (const h of locks.splice(0)) {
        for (;;) {
          try {
            cache.unlock(h);
            break;
          } catch {
            evict(1);
          }
        }
      }
      cache.verify?.();
      evict(Number.MAX_SAFE_INTEGER);
      check(model.size === 0 && cache.cachedPages === 0, `${name} drain left ${model.size} model pages, ${cache.cachedPages} cached`);
      for (const h of stale.slice(0, 8)) bad(() => cache.lock(h), 'KVMGR_UNKNOWN_HANDLE', 'lock(stale handle)');
    }
    if (i % every === 0) {
      gc?.();
      const mb = (process.memoryUsage().heapUsed / 2 ** 20).toFixed(1);
      console.log(`${name.padEnd(22)} ${String(i).padStart(9)} ops  heapUsed ${mb.padStart(6)} MiB  refused ${refused}  ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  }
}

const policies: [string, () => EvictionPolicy][] = [
  ['lru', () => new LruPolicy(64)],
  ['arc(64)', () => new ArcPolicy({ capacity: 64 })],
];
for (const [pname, policy] of policies) {
  stress(`Radix/${pname}`, new RadixPrefixCache({ pageSize: P, policy: policy(), initialNodes: 64 }), SEED);
  stress(`BlockHash/${pname}`, new BlockHashIndex({ pageSize: P, policy: policy(), initialBlocks: 64 }), SEED);
}
