/**
 * Long stress run (not in CI): random operations, bad calls included, on BlockPool,
 * BuddyAllocator, QuotaAllocator and TieredPool, each checked against a reference model; heap
 * usage is printed at intervals to show memory stays flat.
 *
 *   pnpm --filter @kvmgr/kv-pool stress [opsPerStructure=1e7] [seed=19]
 *   (= node --expose-gc --conditions=@kvmgr/source --import tsx packages/kv-pool/scripts/stress.ts)
 */
import { createKVCacheSpec, createRng, isKvmgrError } from '@kvmgr/core';
import { BlockPool } from '../src/block-pool.js';
import { BookkeepingBackend } from '../src/bookkeeping-backend.js';
import { BuddyAllocator } from '../src/buddy-allocator.js';
import { QuotaAllocator } from '../src/quota-allocator.js';
import { TieredPool } from '../src/tiered-pool.js';

const OPS = Number(process.argv[2] ?? 1e7);
const SEED = Number(process.argv[3] ?? 19);
const spec = createKVCacheSpec({ numLayers: 2, numKvHeads: 2, headDim: 8 });
const gc = (globalThis as { gc?: () => void }).gc;

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`stress: ${what}`);
}

/** Runs `fn`, which must throw a KvmgrError with `code`, and checks `state` did not change. */
function bad(fn: () => unknown, code: string, state: () => string, what: string): void {
  const before = state();
  try {
    fn();
  } catch (e) {
    check(isKvmgrError(e, code), `${what}: expected ${code}, got ${String(e)}`);
    check(state() === before, `${what}: state changed by a failed call`);
    return;
  }
  throw new Error(`stress: ${what}: expected ${code}, returned`);
}

function report(name: string, i: number, t0: number): void {
  gc?.();
  const mb = (process.memoryUsage().heapUsed / 2 ** 20).toFixed(1);
  console.log(`${name.padEnd(14)} ${String(i).padStart(9)} ops  heapUsed ${mb.padStart(6)} MiB  ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/**
 * Runs `step` OPS times, reporting the heap 10 times. With `yieldEvery`, lets the event loop run
 * that often (copies settle only then: a caller that never yields keeps their promises).
 */
async function run(name: string, step: (i: number) => void, yieldEvery = 0): Promise<void> {
  const t0 = performance.now();
  const every = Math.max(1, Math.floor(OPS / 10));
  for (let i = 1; i <= OPS; i++) {
    step(i);
    if (yieldEvery > 0 && i % yieldEvery === 0) await new Promise((r) => setImmediate(r));
    if (i % every === 0) report(name, i, t0);
  }
}

const BAD_IDS: unknown[] = [null, undefined, -1, 1.5, Number.NaN, 1e9, '3'];

// ---- BlockPool against a model: ref counts and the free queue as plain arrays
{
  const N = 64;
  const rng = createRng(SEED);
  const rnd = () => rng.next();
  const pool = new BlockPool({ spec, numBlocks: N });
  const refs = new Array<number>(N).fill(0);
  let queue = Array.from({ length: N }, (_, i) => i);
  const held: number[] = [];
  const state = () => JSON.stringify(pool.state());
  await run('BlockPool', (i) => {
    const r = rnd();
    if (r < 0.4) {
      const n = Math.floor(rnd() * 6);
      if (n > queue.length) return bad(() => pool.allocate(n), 'KVMGR_OUT_OF_BLOCKS', state, 'allocate');
      const got = pool.allocate(n);
      check(JSON.stringify(got) === JSON.stringify(queue.slice(0, n)), 'allocate order');
      queue = queue.slice(n);
      for (const b of got) {
        refs[b] = 1;
        held.push(b);
      }
    } else if (r < 0.8) {
      if (held.length === 0) return;
      const k = Math.floor(rnd() * held.length);
      const b = held.splice(k, 1)[0] as number;
      pool.free([b]);
      refs[b] = (refs[b] as number) - 1;
      if (refs[b] === 0) queue.push(b);
    } else if (r < 0.9 && held.length > 0) {
      const b = held[Math.floor(rnd() * held.length)] as number;
      pool.share([b]);
      refs[b] = (refs[b] as number) + 1;
      held.push(b);
    } else {
      const x = BAD_IDS[Math.floor(rnd() * BAD_IDS.length)];
      const which = Math.floor(rnd() * 4);
      if (which === 0) bad(() => pool.free([x as number]), 'KVMGR_INVALID_ARGUMENT', state, 'free(bad id)');
      else if (which === 1) bad(() => pool.free(x as never), 'KVMGR_INVALID_ARGUMENT', state, 'free(bad list)');
      else if (which === 2 && queue.length > 0) bad(() => pool.free([queue[0] as number]), 'KVMGR_INVALID_STATE', state, 'double free');
      else bad(() => pool.nextFree(x as number), 'KVMGR_INVALID_ARGUMENT', state, 'nextFree(bad)');
    }
    if (i % 4096 === 0) {
      pool.verify();
      const s = pool.state();
      check(JSON.stringify(s.refCounts) === JSON.stringify(refs) && JSON.stringify(s.freeQueue) === JSON.stringify(queue), 'BlockPool differs from the model');
    }
  });
}

// ---- BuddyAllocator against a model: the set of allocated ids
{
  const N = 128;
  const rng = createRng(SEED + 1);
  const rnd = () => rng.next();
  const buddy = new BuddyAllocator({ numBlocks: N });
  const owned: number[][] = [];
  let used = 0;
  const state = () => JSON.stringify(buddy.state());
  await run('BuddyAllocator', (i) => {
    const r = rnd();
    if (r < 0.45) {
      const n = 1 + Math.floor(rnd() * 9);
      if (!buddy.canAllocate(n)) return bad(() => buddy.allocate(n), 'KVMGR_OUT_OF_BLOCKS', state, 'buddy allocate');
      const ids = buddy.allocate(n);
      owned.push(ids);
      used += n;
    } else if (r < 0.9) {
      if (owned.length === 0) return;
      const ids = owned.splice(Math.floor(rnd() * owned.length), 1)[0] as number[];
      buddy.free(ids);
      used -= ids.length;
    } else {
      const x = BAD_IDS[Math.floor(rnd() * BAD_IDS.length)];
      if (rnd() < 0.5) bad(() => buddy.freeRuns([x as never]), 'KVMGR_INVALID_ARGUMENT', state, 'freeRuns(bad)');
      else bad(() => buddy.applyCompaction({ moves: [], droppedCached: [], version: buddy.version, freeTailStart: 0 }), 'KVMGR_INVALID_ARGUMENT', state, 'forged plan');
    }
    if (i % 4096 === 0) {
      buddy.verify();
      check(buddy.numFreeBlocks === N - used, 'buddy free count differs from the model');
    }
  });
}

// ---- QuotaAllocator: quotas are integers within bounds summing to at most totalBlocks
{
  const rng = createRng(SEED + 2);
  const rnd = () => rng.next();
  const q = new QuotaAllocator({ totalBlocks: 10_000, historyLength: 64, consumers: [{ name: 'a', weight: 1e308 }, { name: 'b', minBlocks: 100 }, { name: 'c', maxBlocks: 3000, weight: 3 }] });
  const state = () => JSON.stringify([q.quotas(), q.history.length]);
  await run('QuotaAllocator', (i) => {
    const r = rnd();
    const name = 'abc'[Math.floor(rnd() * 3)] as string;
    if (r < 0.6) q.report(name, { demandBlocks: Math.floor(rnd() * 12_000), urgency: rnd() < 0.1 ? 1e308 : rnd() * 4 });
    else if (r < 0.9) q.rebalance(i);
    else if (r < 0.95) bad(() => q.report(name, undefined as never), 'KVMGR_INVALID_ARGUMENT', state, 'report(undefined)');
    else bad(() => q.report(name, { demandBlocks: Number.NaN }), 'KVMGR_INVALID_ARGUMENT', state, 'report(NaN)');
    if (i % 1024 === 0) {
      const qs = Object.values(q.quotas());
      check(qs.every((v) => Number.isSafeInteger(v) && v >= 0), `quota not an integer: ${qs}`);
      check(qs.reduce((x, y) => x + y, 0) <= 10_000, 'quotas exceed totalBlocks');
    }
  });
}

// ---- TieredPool: keys are where the model says; bookkeeping of copies and reloads stays bounded
{
  const rng = createRng(SEED + 3);
  const rnd = () => rng.next();
  const pool = new TieredPool({ spec, backend: new BookkeepingBackend(), offloadWatermark: 0.5, thrashingWindowUs: 1_000_000, tiers: { gpu: { capacityBlocks: 32 }, cpu: { capacityBlocks: 64, bandwidthBytesPerSec: 1e9 } } });
  const KEYS = 96;
  const inUse: number[][] = [];
  let nowUs = 0;
  const internals = pool as unknown as { pending: unknown[]; reloadTimes: unknown[] };
  const state = () => JSON.stringify(pool.state());
  await run('TieredPool', (i) => {
    nowUs += 10;
    const r = rnd();
    if (r < 0.5) {
      const key = Math.floor(rnd() * KEYS);
      if (pool.lookup(key) === undefined) {
        let b: number;
        try {
          [b] = pool.allocate(1, nowUs) as [number];
        } catch (e) {
          if (isKvmgrError(e, 'KVMGR_OUT_OF_BLOCKS')) return;
          throw e;
        }
        pool.cacheBlock(b, key);
        inUse.push([b]);
      } else {
        try {
          inUse.push(pool.acquire([key], nowUs).blocks.slice());
        } catch (e) {
          if (!isKvmgrError(e, 'KVMGR_OUT_OF_BLOCKS')) throw e;
        }
      }
    } else if (r < 0.95) {
      if (inUse.length === 0) return;
      pool.free(inUse.splice(Math.floor(rnd() * inUse.length), 1)[0] as number[], nowUs);
    } else {
      const x = BAD_IDS[Math.floor(rnd() * BAD_IDS.length)];
      if (rnd() < 0.5) bad(() => pool.acquire(x as never, nowUs), 'KVMGR_INVALID_ARGUMENT', state, 'acquire(bad)');
      else bad(() => pool.cacheBlock(x as number, 1), 'KVMGR_INVALID_ARGUMENT', state, 'cacheBlock(bad)');
    }
    if (i % 4096 === 0) {
      pool.verify();
      check(internals.pending.length <= 1024, `pending copies grow: ${internals.pending.length}`);
      check(internals.reloadTimes.length < 500_000, `reload times grow: ${internals.reloadTimes.length}`);
    }
  }, 4096);
  await pool.flush();
  console.log(`TieredPool     reloads ${pool.stats.reloadedBlocks}, offloads ${pool.stats.offloadedBlocks}`);
}
