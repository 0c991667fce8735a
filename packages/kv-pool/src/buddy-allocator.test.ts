import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { codeOf } from '../test/code-of.js';
import { BookkeepingBackend } from './bookkeeping-backend.js';
import { type BlockRun, BuddyAllocator } from './buddy-allocator.js';
import { runCompaction } from './compaction.js';

describe('BuddyAllocator', () => {
  it('splits a request into the exact powers of two of its size, never rounding up', () => {
    const buddy = new BuddyAllocator({ numBlocks: 64 });
    expect(buddy.maxOrder).toBe(6);
    const runs = buddy.allocateRuns(13);
    expect(runs).toEqual([
      { start: 0, order: 3 },
      { start: 8, order: 2 },
      { start: 12, order: 0 },
    ]);
    expect(buddy.numFreeBlocks).toBe(51);
    expect(buddy.freeRunCounts()).toEqual([1, 1, 0, 0, 1, 1, 0]); // 13, 14..15, 16..31, 32..63
    buddy.freeRuns(runs);
    expect(buddy.state().freeRuns).toEqual([{ start: 0, order: 6 }]);
    buddy.verify();
  });

  it('handles sizes that are not powers of two as aligned top-level runs', () => {
    const buddy = new BuddyAllocator({ numBlocks: 12 });
    expect(buddy.state().freeRuns).toEqual([
      { start: 0, order: 3 },
      { start: 8, order: 2 },
    ]);
    const a = buddy.allocate(12);
    expect(a).toEqual(Array.from({ length: 12 }, (_, i) => i));
    buddy.free(a);
    expect(buddy.state().freeRuns).toEqual([
      { start: 0, order: 3 },
      { start: 8, order: 2 },
    ]);
    buddy.verify();
  });

  it('fails all or nothing when runs are too fragmented, and reports it', () => {
    const buddy = new BuddyAllocator({ numBlocks: 8 });
    const all = buddy.allocate(8);
    buddy.free([all[1]!, all[3]!, all[5]!, all[7]!]); // four free singles
    const before = buddy.state();
    expect(buddy.canAllocate(2)).toBe(false);
    expect(buddy.canAllocate(1)).toBe(true);
    let err: unknown;
    try {
      buddy.allocateRuns(3);
    } catch (e) {
      err = e;
    }
    expect(isKvmgrError(err, 'KVMGR_OUT_OF_BLOCKS')).toBe(true);
    expect((err as { details: unknown }).details).toEqual({ free: 4, requested: 3, largestFreeRun: 1 });
    expect(buddy.state()).toEqual(before);
    expect(codeOf(() => buddy.allocateRuns(5))).toBe('KVMGR_OUT_OF_BLOCKS');
    expect(codeOf(() => buddy.allocateRuns(-2))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => buddy.free([1]))).toBe('KVMGR_INVALID_STATE');
    expect(codeOf(() => buddy.free([0, 0]))).toBe('KVMGR_INVALID_STATE');
    expect(codeOf(() => buddy.free([0, 8]))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => buddy.freeRuns([{ start: 1, order: 1 }]))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => buddy.freeRuns([{ start: 0, order: 1 }]))).toBe('KVMGR_INVALID_STATE');
    expect(buddy.state()).toEqual(before);
  });

  it('compacts: moves runs down so free space merges, keeping each held run contiguous', async () => {
    const buddy = new BuddyAllocator({ numBlocks: 16 });
    const backend = new BookkeepingBackend();
    const slab = backend.createSlab('gpu', 16, 64);
    const held: BlockRun[][] = [];
    for (let i = 0; i < 8; i++) held.push(buddy.allocateRuns(2));
    for (let b = 0; b < 16; b++) slab.tags[b] = 100 + b;
    buddy.freeRuns(held[0]!);
    buddy.freeRuns(held[2]!);
    buddy.freeRuns(held[5]!);
    buddy.freeRuns(held[6]!); // free: 0-1, 4-5, 10-11, 12-13
    expect(buddy.canAllocate(8)).toBe(false);
    const plan = await runCompaction(buddy, backend, slab);
    buddy.verify();
    expect(buddy.state().allocated).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(plan.freeTailStart).toBe(8);
    expect(buddy.canAllocate(8)).toBe(true);
    // every moved block carries its content
    const content = new Map<number, number>();
    for (const m of plan.moves) content.set(m.to, 100 + m.from);
    for (const [to, tag] of content) expect(slab.tags[to]).toBe(tag);
  });

  it('keeps invariants on random allocate / free / compact sequences and never changes on failure', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('alloc' as const), n: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ kind: fc.constant('freeRun' as const), i: fc.nat() }),
      fc.record({ kind: fc.constant('freeBlock' as const), i: fc.nat(), j: fc.nat() }),
      fc.record({ kind: fc.constant('bad' as const), b: fc.integer({ min: -2, max: 70 }) }),
      fc.record({ kind: fc.constant('compact' as const) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 48 }), fc.array(op, { minLength: 20, maxLength: 80 }), (n, ops) => {
        const buddy = new BuddyAllocator({ numBlocks: n });
        // the reference model: which blocks are allocated, by owner run
        let runs: BlockRun[] = [];
        const owned = new Set<number>();
        for (const o of ops) {
          const before = buddy.state();
          if (o.kind === 'alloc') {
            const feasible = buddy.canAllocate(o.n);
            const freeBefore = n - owned.size;
            const code = codeOf(() => {
              const r = buddy.allocateRuns(o.n);
              expect(r.reduce((a, x) => a + (1 << x.order), 0)).toBe(o.n);
              // exact powers of n's binary form, largest first
              expect(r.map((x) => x.order)).toEqual([...o.n.toString(2)].map((c, i, s) => (c === '1' ? s.length - 1 - i : -1)).filter((k) => k >= 0));
              for (const x of r) {
                expect(x.start % (1 << x.order)).toBe(0);
                for (let b = x.start; b < x.start + (1 << x.order); b++) {
                  expect(owned.has(b)).toBe(false);
                  owned.add(b);
                }
              }
              runs.push(...r);
            });
            expect(code === undefined).toBe(feasible);
            if (o.n > freeBefore) expect(code).toBe('KVMGR_OUT_OF_BLOCKS');
            if (code !== undefined) expect(buddy.state()).toEqual(before);
          } else if (o.kind === 'freeRun' && runs.length > 0) {
            const r = runs.splice(o.i % runs.length, 1)[0]!;
            buddy.freeRuns([r]);
            for (let b = r.start; b < r.start + (1 << r.order); b++) owned.delete(b);
          } else if (o.kind === 'freeBlock' && runs.length > 0) {
            // free one block of a run: the run splits into the block's buddies
            const ri = o.i % runs.length;
            const r = runs[ri]!;
            const b = r.start + (o.j % (1 << r.order));
            buddy.free([b]);
            owned.delete(b);
            runs.splice(ri, 1);
            for (let k = r.order - 1, s = r.start; k >= 0; k--) {
              const lo = s;
              const hi = s + (1 << k);
              if (b >= hi) {
                runs.push({ start: lo, order: k });
                s = hi;
              } else {
                runs.push({ start: hi, order: k });
              }
            }
          } else if (o.kind === 'bad') {
            const code = codeOf(() => buddy.free([o.b]));
            expect(code).toBe(o.b >= 0 && o.b < n ? (owned.has(o.b) ? undefined : 'KVMGR_INVALID_STATE') : 'KVMGR_INVALID_ARGUMENT');
            if (code === undefined) {
              owned.delete(o.b);
              const ri = runs.findIndex((r) => o.b >= r.start && o.b < r.start + (1 << r.order));
              const r = runs.splice(ri, 1)[0]!;
              for (let b = r.start; b < r.start + (1 << r.order); b++) if (b !== o.b) runs.push({ start: b, order: 0 });
            } else expect(buddy.state()).toEqual(before);
          } else if (o.kind === 'compact') {
            const plan = buddy.planCompaction();
            const map = new Map(plan.moves.map((m) => [m.from, m.to]));
            for (const m of plan.moves) expect(owned.has(m.from) && !owned.has(m.to)).toBe(true);
            buddy.applyCompaction(plan);
            runs = runs.map((r) => {
              const to = map.get(r.start);
              if (to === undefined) return r;
              // contiguity: every block of the run moved by the same offset
              for (let b = r.start; b < r.start + (1 << r.order); b++) expect(map.get(b)).toBe(to + (b - r.start));
              return { start: to, order: r.order };
            });
            owned.clear();
            for (const r of runs) for (let b = r.start; b < r.start + (1 << r.order); b++) owned.add(b);
          }
          buddy.verify();
          expect(buddy.state().allocated).toEqual([...owned].sort((a, b) => a - b));
          expect(buddy.numFreeBlocks).toBe(n - owned.size);
        }
      }),
      { numRuns: 300 },
    );
  });
});
