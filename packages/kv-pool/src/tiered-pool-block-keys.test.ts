/**
 * `TieredPool` in block-key mode (no GPU tier): the CPU tier below a GPU pool the caller owns,
 * keyed by exact 64-bit block keys, LRU when full, transfers queued on the link; checked against a
 * reference model (an LRU list of "hi:lo" strings) on random streams.
 */
import { createKVCacheSpec } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { codeOf } from '../test/code-of.js';
import { TieredPool } from './tiered-pool.js';

// 2048 B per 16-token block; one block per ms on the link
const spec = createKVCacheSpec({ numLayers: 2, numKvHeads: 2, headDim: 8 });
const link = { bandwidthBytesPerSec: 2048e3, baseLatencyUs: 10 };

describe('TieredPool block-key mode', () => {
  it('stores, evicts its LRU key, reloads with queued transfer times, and keeps keys exact', () => {
    const log: string[] = [];
    const pool = new TieredPool({
      spec,
      tiers: { cpu: { capacityBlocks: 2, ...link } },
      onBlockKeyStored: (hi, lo, t) => log.push(`+${t}:${hi}:${lo}`),
      onBlockKeyEvicted: (hi, lo, t) => log.push(`-${t}:${hi}:${lo}`),
    });
    expect(pool.isBlockKeyMode).toBe(true);
    // keys equal in their low word and differing above 2^53 stay distinct (no truncation)
    const a = [0xffffffff, 7];
    const b = [0xfffffffe, 7];
    expect(pool.storeBlockKeys([...a, ...b], 0)).toBe(2);
    expect(pool.pendingTransferLatency(0)).toBe(2010); // 10 µs + 2 blocks × 1 ms
    expect(pool.lookupBlockKey(0xffffffff, 7)).toBe('cpu');
    expect(pool.lookupBlockKey(0xfffffffd, 7)).toBeUndefined();
    // re-storing a held key copies nothing and makes it the most recently used
    expect(pool.storeBlockKeys(a, 100)).toBe(0);
    expect(pool.storeBlockKeys([1, 2], 100)).toBe(1); // evicts b, the LRU key
    expect(log).toEqual(['+cpu:4294967295:7', '+cpu:4294967294:7', '-cpu:4294967294:7', '+cpu:1:2']);
    // the link is busy until 2010, then this one block: 2010 + 1010
    expect(pool.pendingTransferLatency(100)).toBe(3020 - 100);
    const before = pool.state();
    expect(codeOf(() => pool.reloadBlockKeys([...a, ...b], 5000))).toBe('KVMGR_NOT_FOUND');
    expect(codeOf(() => pool.storeBlockKeys([1], 5000))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => pool.storeBlockKeys([1, -1], 5000))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => pool.storeBlockKeys([1, 2 ** 32], 5000))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => pool.reloadBlockKeys(a, Number.NaN))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(pool.state()).toEqual(before);
    expect(pool.reloadBlockKeys(a, 5000)).toBe(6010);
    expect(pool.reloadBlockKeys([], 5000)).toBe(5000);
    // the reload made `a` most recently used: the next store evicts [1, 2]
    pool.storeBlockKeys([3, 4], 7000);
    expect(log.at(-2)).toBe('-cpu:1:2');
    expect(pool.stats).toMatchObject({ offloadedBlocks: 4, reloadedBlocks: 1, droppedKeys: 2, offloadBytes: 4 * 2048, reloadBytes: 2048 });
    expect(pool.kvThrashingRate(7000)).toBeCloseTo(0.1, 12);
    const keys: string[] = [];
    pool.forEachBlockKey((hi, lo) => keys.push(`${hi}:${lo}`));
    expect(keys.sort()).toEqual(['3:4', '4294967295:7']);
    pool.verify();
    expect(pool.clearBlockKeys()).toBe(2);
    expect(pool.numKeys).toBe(0);
    pool.verify();
  });

  it('refuses GPU operations and bad configurations with clear errors', () => {
    const pool = new TieredPool({ spec, tiers: { cpu: { capacityBlocks: 1 } } });
    expect(codeOf(() => pool.gpu)).toBe('KVMGR_INVALID_STATE');
    expect(codeOf(() => pool.allocate(1, 0))).toBe('KVMGR_INVALID_STATE');
    expect(pool.state().gpu).toBeNull();
    expect(codeOf(() => new TieredPool({ spec, tiers: {} }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new TieredPool({ spec, tiers: { cpu: { capacityBlocks: 1 }, disk: { capacityBlocks: 1 } } }))).toBe('KVMGR_INVALID_ARGUMENT');
    const full = new TieredPool({ spec, tiers: { gpu: { capacityBlocks: 1 }, cpu: { capacityBlocks: 1 } } });
    expect(codeOf(() => full.storeBlockKeys([1, 2], 0))).toBe('KVMGR_INVALID_STATE');
    expect(codeOf(() => full.lookupBlockKey(1, 2))).toBe('KVMGR_INVALID_STATE');
  });

  it('agrees with an LRU reference model on random streams', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('store' as const), keys: fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 5 })), { maxLength: 5 }) }),
      fc.record({ kind: fc.constant('reload' as const), keys: fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 5 })), { maxLength: 3 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 60 }), (cap, ops) => {
        const held = new Set<string>();
        const pool = new TieredPool({
          spec,
          tiers: { cpu: { capacityBlocks: cap } },
          onBlockKeyStored: (hi, lo) => {
            expect(held.has(`${hi}:${lo}`)).toBe(false);
            held.add(`${hi}:${lo}`);
          },
          onBlockKeyEvicted: (hi, lo) => {
            expect(held.delete(`${hi}:${lo}`)).toBe(true);
          },
        });
        const lru: string[] = []; // least recently used first
        const use = (k: string): void => {
          const i = lru.indexOf(k);
          if (i >= 0) lru.splice(i, 1);
          lru.push(k);
        };
        let now = 0;
        for (const o of ops) {
          now += 10;
          // keys spread over the high word so that hi·2^32 + lo would exceed 2^53
          const words = o.keys.flatMap(([h, l]) => [0xfffff000 + h, l]);
          const names = o.keys.map(([h, l]) => `${0xfffff000 + h}:${l}`);
          if (o.kind === 'store') {
            let fresh = 0;
            for (const k of names) {
              if (!lru.includes(k)) {
                fresh++;
                if (lru.length === cap) lru.shift();
              }
              use(k);
            }
            expect(pool.storeBlockKeys(words, now)).toBe(fresh);
          } else if (names.every((k) => lru.includes(k))) {
            pool.reloadBlockKeys(words, now);
            for (const k of names) use(k);
          } else {
            const before = pool.state();
            expect(codeOf(() => pool.reloadBlockKeys(words, now))).toBe('KVMGR_NOT_FOUND');
            expect(pool.state()).toEqual(before);
          }
          pool.verify();
          expect(new Set(lru)).toEqual(held);
          const seen = new Set<string>();
          pool.forEachBlockKey((hi, lo) => seen.add(`${hi}:${lo}`));
          expect(seen).toEqual(held);
        }
      }),
      { numRuns: 200 },
    );
  });
});
