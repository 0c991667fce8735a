/**
 * Issue #19: bad arguments to every kv-pool structure throw the documented KvmgrError code and
 * leave `state()` unchanged; quotas stay finite; compaction plans are only applied by their maker;
 * a tiered pool's bookkeeping of copies and reloads stays bounded.
 */
import { type BlockBackend, type BlockSlab, createKVCacheSpec } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { codeOf } from '../test/code-of.js';
import { BlockPool } from './block-pool.js';
import { BookkeepingBackend } from './bookkeeping-backend.js';
import { BuddyAllocator } from './buddy-allocator.js';
import { QuotaAllocator } from './quota-allocator.js';
import { TieredPool } from './tiered-pool.js';

const spec = createKVCacheSpec({ numLayers: 2, numKvHeads: 2, headDim: 8 });
const link = { bandwidthBytesPerSec: 2048e3 };

function expectUnchanged(table: [string, () => unknown, string][], state: () => unknown): void {
  const before = JSON.stringify(state());
  for (const [what, fn, code] of table) {
    expect(codeOf(fn), what).toBe(code);
    expect(JSON.stringify(state()), what).toBe(before);
  }
}

describe('kv-pool hardening (#19)', () => {
  it('D3: huge weights or urgencies give finite quotas that sum to at most totalBlocks', () => {
    for (const [w, u] of [
      [1e308, 0],
      [1, 1e308],
      [1e308, 1e308],
      [Number.MAX_VALUE, 5],
    ] as const) {
      const q = new QuotaAllocator({ totalBlocks: 1000, consumers: [{ name: 'a', weight: w }, { name: 'b', weight: w }, { name: 'c' }] });
      q.report('a', { demandBlocks: 900, urgency: u });
      q.report('b', { demandBlocks: 900, urgency: u });
      q.report('c', { demandBlocks: 900 });
      const t = q.targets();
      for (const v of Object.values(t)) expect(Number.isInteger(v), JSON.stringify(t)).toBe(true);
      expect(Object.values(t).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1000);
      for (let i = 0; i < 20; i++) q.rebalance(i);
      for (const v of Object.values(q.quotas())) expect(Number.isInteger(v), JSON.stringify(q.quotas())).toBe(true);
      expect(q.unassignedBlocks).toBeGreaterThanOrEqual(0);
      // the two heavy consumers share the pool equally
      expect(Math.abs((t.a as number) - (t.b as number))).toBeLessThanOrEqual(1);
    }
  });

  it('D8: BlockPool refuses a compaction plan it did not make (KVMGR_INVALID_ARGUMENT, nothing moves)', () => {
    const pool = new BlockPool({ spec, numBlocks: 8 });
    const [a, b, c] = pool.allocate(3) as [number, number, number];
    pool.free([a, b]);
    const before = pool.state();
    const forged = { moves: [{ from: c, to: 0 }], droppedCached: [], version: pool.version, freeTailStart: 1 };
    expect(codeOf(() => pool.applyCompaction(forged))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(pool.state()).toEqual(before);
    pool.verify();
    const other = new BlockPool({ spec, numBlocks: 8 });
    other.allocate(3);
    other.free([0, 1]);
    const foreign = other.planCompaction();
    expect(foreign.version).toBe(pool.version);
    expect(codeOf(() => pool.applyCompaction(foreign))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(pool.state()).toEqual(before);
    // a plan made here is applied once, and is not applied again
    const plan = pool.planCompaction();
    (plan.moves as { from: number; to: number }[]).push({ from: 5, to: 6 }); // edits after planning are ignored
    pool.applyCompaction(plan);
    pool.verify();
    expect(pool.refCount(0)).toBe(1);
    expect(codeOf(() => pool.applyCompaction(plan))).not.toBeUndefined();
  });

  it('D9: BlockPool bad-argument table', () => {
    const pool = new BlockPool({ spec, numBlocks: 8 });
    const [a] = pool.allocate(2) as [number, number];
    pool.markCached(a, 42);
    expectUnchanged(
      [
        ['free(null)', () => pool.free(null as never), 'KVMGR_INVALID_ARGUMENT'],
        ['free(undefined)', () => pool.free(undefined as never), 'KVMGR_INVALID_ARGUMENT'],
        ['free(5)', () => pool.free(5 as never), 'KVMGR_INVALID_ARGUMENT'],
        ['free([a, 1.5])', () => pool.free([a, 1.5]), 'KVMGR_INVALID_ARGUMENT'],
        ['free([a, 9])', () => pool.free([a, 9]), 'KVMGR_INVALID_ARGUMENT'],
        ['free([a, a, a])', () => pool.free([a, a, a]), 'KVMGR_INVALID_STATE'],
        ['free([7])', () => pool.free([7]), 'KVMGR_INVALID_STATE'],
        ['allocate(-1)', () => pool.allocate(-1), 'KVMGR_INVALID_ARGUMENT'],
        ['allocate(NaN)', () => pool.allocate(Number.NaN), 'KVMGR_INVALID_ARGUMENT'],
        ['allocate(99)', () => pool.allocate(99), 'KVMGR_OUT_OF_BLOCKS'],
        ['allocateSpecific(null)', () => pool.allocateSpecific(null as never), 'KVMGR_INVALID_ARGUMENT'],
        ['share(null)', () => pool.share(null as never), 'KVMGR_INVALID_ARGUMENT'],
        ['fork(null)', () => pool.fork(null as never), 'KVMGR_INVALID_ARGUMENT'],
        ['markCached(a, NaN)', () => pool.markCached(a, Number.NaN), 'KVMGR_INVALID_ARGUMENT'],
        ['markCached(1.5, 1)', () => pool.markCached(1.5, 1), 'KVMGR_INVALID_ARGUMENT'],
        ['nextFree(1.5)', () => pool.nextFree(1.5), 'KVMGR_INVALID_ARGUMENT'],
        ['nextFree(-1)', () => pool.nextFree(-1), 'KVMGR_INVALID_ARGUMENT'],
        ['nextFree(in use)', () => pool.nextFree(a), 'KVMGR_INVALID_STATE'],
        ['applyCompaction(null)', () => pool.applyCompaction(null as never), 'KVMGR_INVALID_ARGUMENT'],
        ['planCompaction(limit -1)', () => pool.planCompaction({ limitBlocks: -1 }), 'KVMGR_INVALID_ARGUMENT'],
      ],
      () => pool.state(),
    );
    pool.verify();
  });

  it('D9: BuddyAllocator bad-argument table', () => {
    const buddy = new BuddyAllocator({ numBlocks: 16 });
    const runs = buddy.allocateRuns(3);
    expectUnchanged(
      [
        ['freeRuns([null])', () => buddy.freeRuns([null as never]), 'KVMGR_INVALID_ARGUMENT'],
        ['freeRuns(null)', () => buddy.freeRuns(null as never), 'KVMGR_INVALID_ARGUMENT'],
        ['freeRuns([run, null])', () => buddy.freeRuns([runs[0] as never, null as never]), 'KVMGR_INVALID_ARGUMENT'],
        ['freeRuns([{start: 1.5}])', () => buddy.freeRuns([{ start: 1.5, order: 0 }]), 'KVMGR_INVALID_ARGUMENT'],
        ['free(null)', () => buddy.free(null as never), 'KVMGR_INVALID_ARGUMENT'],
        ['free([NaN])', () => buddy.free([Number.NaN]), 'KVMGR_INVALID_ARGUMENT'],
        ['free([15])', () => buddy.free([15]), 'KVMGR_INVALID_STATE'],
        ['allocateRuns(-1)', () => buddy.allocateRuns(-1), 'KVMGR_INVALID_ARGUMENT'],
        ['allocateRuns(99)', () => buddy.allocateRuns(99), 'KVMGR_OUT_OF_BLOCKS'],
        ['applyCompaction(forged)', () => buddy.applyCompaction({ moves: [], droppedCached: [], version: buddy.version, freeTailStart: 0 }), 'KVMGR_INVALID_ARGUMENT'],
      ],
      () => buddy.state(),
    );
    buddy.verify();
  });

  it('D9: TieredPool bad-argument table (argument faults are KVMGR_INVALID_ARGUMENT)', () => {
    const pool = new TieredPool({ spec, backend: new BookkeepingBackend(), tiers: { gpu: { capacityBlocks: 4 }, cpu: { capacityBlocks: 2, ...link } } });
    const [b] = pool.allocate(2, 0) as [number, number];
    pool.cacheBlock(b, 7);
    expectUnchanged(
      [
        ['acquire(null, 0)', () => pool.acquire(null as never, 0), 'KVMGR_INVALID_ARGUMENT'],
        ['acquire([7, 7], 0)', () => pool.acquire([7, 7], 0), 'KVMGR_INVALID_ARGUMENT'],
        ['acquire([7], NaN)', () => pool.acquire([7], Number.NaN), 'KVMGR_INVALID_ARGUMENT'],
        ['acquire([99], 0)', () => pool.acquire([99], 0), 'KVMGR_NOT_FOUND'],
        ['prefetch(null, 0)', () => pool.prefetch(null as never, 0), 'KVMGR_INVALID_ARGUMENT'],
        ['cacheBlock(1.5, 8)', () => pool.cacheBlock(1.5, 8), 'KVMGR_INVALID_ARGUMENT'],
        ['cacheBlock(99, 8)', () => pool.cacheBlock(99, 8), 'KVMGR_INVALID_ARGUMENT'],
        ['cacheBlock(b, NaN)', () => pool.cacheBlock(b, Number.NaN), 'KVMGR_INVALID_ARGUMENT'],
        ['free(null, 0)', () => pool.free(null as never, 0), 'KVMGR_INVALID_ARGUMENT'],
        ['allocate(-1, 0)', () => pool.allocate(-1, 0), 'KVMGR_INVALID_ARGUMENT'],
      ],
      () => pool.state(),
    );
    pool.verify();
  });

  it('D9: QuotaAllocator bad-argument table', () => {
    expect(codeOf(() => new QuotaAllocator({ totalBlocks: 10, consumers: [null as never] }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new QuotaAllocator({ totalBlocks: 10, consumers: [{ name: 'a' }, 7 as never] }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new QuotaAllocator(null as never))).toBe('KVMGR_INVALID_ARGUMENT');
    const q = new QuotaAllocator({ totalBlocks: 10, consumers: [{ name: 'a' }, { name: 'b' }] });
    expectUnchanged(
      [
        ["report('a', undefined)", () => q.report('a', undefined as never), 'KVMGR_INVALID_ARGUMENT'],
        ["report('a', null)", () => q.report('a', null as never), 'KVMGR_INVALID_ARGUMENT'],
        ["report('a', {demandBlocks: 1.5})", () => q.report('a', { demandBlocks: 1.5 }), 'KVMGR_INVALID_ARGUMENT'],
        ["report('a', {urgency: NaN})", () => q.report('a', { demandBlocks: 1, urgency: Number.NaN }), 'KVMGR_INVALID_ARGUMENT'],
        ["report('zz', …)", () => q.report('zz', { demandBlocks: 1 }), 'KVMGR_NOT_FOUND'],
        ["setQuota('a', 99)", () => q.setQuota('a', 99), 'KVMGR_INVALID_ARGUMENT'],
        ['rebalance(NaN)', () => q.rebalance(Number.NaN), 'KVMGR_INVALID_ARGUMENT'],
      ],
      () => ({ q: q.quotas(), t: q.targets(), h: q.history.length }),
    );
  });

  it('TieredPool bounds its pending copies and reload times without flush() or kvThrashingRate()', async () => {
    const backend = new BookkeepingBackend();
    const pool = new TieredPool({ spec, backend, offloadWatermark: 0.25, thrashingWindowUs: 1000, tiers: { gpu: { capacityBlocks: 4 }, cpu: { capacityBlocks: 8, ...link } } });
    const internals = pool as unknown as { pending: unknown[]; reloadTimes: number[] };
    for (let t = 0; t < 6000; t++) {
      const key = t % 6;
      const where = pool.lookup(key);
      if (where === undefined) {
        const [b] = pool.allocate(1, t * 10) as [number];
        pool.cacheBlock(b, key);
        pool.free([b], t * 10);
        pool.offload(t * 10);
      } else {
        const r = pool.acquire([key], t * 10);
        pool.free(r.blocks, t * 10);
      }
      if (t % 100 === 99) await Promise.resolve();
    }
    await new Promise((r) => setTimeout(r, 0));
    expect(internals.pending.length).toBeLessThanOrEqual(1024);
    // live reload times: those after the first kept index (the list is pruned in amortized batches)
    expect(internals.reloadTimes.length).toBeLessThan(2 * 1024 + 400);
    expect(pool.stats.reloadedBlocks).toBeGreaterThan(500);
    await pool.flush();
    pool.verify();
  });

  it('TieredPool.flush still reports a failed copy', async () => {
    const backend = new BookkeepingBackend();
    const failing: BlockBackend<BlockSlab> = Object.assign(Object.create(backend) as BlockBackend<BlockSlab>, {
      copyBlocks: () => Promise.reject(new Error('copy failed')),
    });
    const pool = new TieredPool({ spec, backend: failing, offloadWatermark: 0.25, tiers: { gpu: { capacityBlocks: 4 }, cpu: { capacityBlocks: 8, ...link } } });
    const [b] = pool.allocate(1, 0) as [number];
    pool.cacheBlock(b, 1);
    pool.free([b], 0);
    pool.offload(1);
    await expect(pool.flush()).rejects.toThrow('copy failed');
  });
});
