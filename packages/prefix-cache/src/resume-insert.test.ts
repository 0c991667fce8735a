/**
 * `insert` with `resumeFrom` / `resumeLength` (continue below a held node) against a full insert
 * from the root: random request streams that grow their sequences chunk by chunk (a prefill
 * chunk, then one block per decode step), lock their node as an engine does, and free in random
 * order with evictions between. Both caches must give the same results, the same eviction order
 * and the same stats; a bad resume changes nothing.
 */
import { type PrefixCache, isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockHashIndex } from './block-hash-index.js';
import { RadixPrefixCache } from './radix-prefix-cache.js';

const KINDS = {
  radix: (P: number): PrefixCache => new RadixPrefixCache({ pageSize: P }),
  'block-hash': (P: number): PrefixCache => new BlockHashIndex({ pageSize: P }),
} as const;

interface Req {
  keys: number[];
  blocks: number[];
  /** Pages cached and locked through `node` (in each cache). */
  cached: number;
  nodeFull: number;
  nodeResumed: number;
}

const opArb = fc.oneof(
  // a new request: a shared head (one of 3), then its own keys; chunks of 1..3 pages
  fc.record({ kind: fc.constant('new' as const), head: fc.integer({ min: 0, max: 2 }), headPages: fc.integer({ min: 0, max: 4 }), own: fc.integer({ min: 1, max: 8 }), chunk: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('grow' as const), req: fc.nat(), pages: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('free' as const), req: fc.nat() }),
  fc.record({ kind: fc.constant('evict' as const), n: fc.integer({ min: 1, max: 6 }) }),
);

for (const [kind, make] of Object.entries(KINDS)) {
  describe(`${kind}: insert resumed from a held node`, () => {
    it('gives the results, eviction order and stats of a full insert', () => {
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), fc.constantFrom(1, 2), (ops, P) => {
          const full = make(P);
          const resumed = make(P);
          const live: Req[] = [];
          let nextKey = 1000;
          let nextBlock = 0;
          const insertBoth = (r: Req, pages: number): void => {
            const n = Math.min(r.keys.length / P, r.cached + pages);
            const keys = r.keys.slice(0, n * P);
            const blocks = r.blocks.slice(0, n);
            const a = full.insert(keys, blocks);
            const b = resumed.insert(keys, blocks, r.nodeResumed === -1 ? undefined : { resumeFrom: r.nodeResumed, resumeLength: r.cached * P });
            expect(b.existingLength).toBe(a.existingLength);
            expect(b.adoptedBlocks).toEqual(a.adoptedBlocks);
            // the resumed prefix is not compared: its duplicates are not reported
            expect(b.duplicateBlocks).toEqual(a.duplicateBlocks.slice(a.duplicateBlocks.length - b.duplicateBlocks.length));
            full.lock(a.node);
            resumed.lock(b.node);
            if (r.nodeFull !== -1) full.unlock(r.nodeFull);
            if (r.nodeResumed !== -1) resumed.unlock(r.nodeResumed);
            r.nodeFull = a.node;
            r.nodeResumed = b.node;
            r.cached = n;
          };
          for (const op of ops) {
            if (op.kind === 'new') {
              const keys: number[] = [];
              for (let i = 0; i < op.headPages * P; i++) keys.push(op.head * 100 + i);
              for (let i = 0; i < op.own * P; i++) keys.push(nextKey++);
              const blocks = Array.from({ length: keys.length / P }, () => nextBlock++);
              const r: Req = { keys, blocks, cached: 0, nodeFull: -1, nodeResumed: -1 };
              live.push(r);
              insertBoth(r, op.chunk);
            } else if (op.kind === 'grow' && live.length > 0) {
              insertBoth(live[op.req % live.length] as Req, op.pages);
            } else if (op.kind === 'free' && live.length > 0) {
              const [r] = live.splice(op.req % live.length, 1) as [Req];
              if (r.nodeFull !== -1) full.unlock(r.nodeFull);
              if (r.nodeResumed !== -1) resumed.unlock(r.nodeResumed);
            } else if (op.kind === 'evict') {
              expect(resumed.evict(op.n).blocks).toEqual(full.evict(op.n).blocks);
            }
            expect(resumed.evictablePages).toBe(full.evictablePages);
          }
          for (const r of live) {
            if (r.nodeFull !== -1) full.unlock(r.nodeFull);
            if (r.nodeResumed !== -1) resumed.unlock(r.nodeResumed);
          }
          expect(resumed.evict(1 << 20).blocks).toEqual(full.evict(1 << 20).blocks);
          const { metadataBytes: _a, ...sa } = full.stats;
          const { metadataBytes: _b, ...sb } = resumed.stats;
          expect(sb).toEqual(sa);
        }),
        { numRuns: 200, seed: 7 },
      );
    });

    it('refuses a resume length that is not the path to the node, or a dead node, and changes nothing', () => {
      const c = make(2);
      const a = c.insert([1, 2, 3, 4, 5, 6], [10, 11, 12]);
      const before = c.stats;
      const codeOf = (f: () => unknown): string => {
        try {
          f();
        } catch (e) {
          return isKvmgrError(e) ? `${e.code}: ${e.message}` : String(e);
        }
        return 'no throw';
      };
      expect(codeOf(() => c.insert([1, 2, 3, 4, 5, 6, 7, 8], [10, 11, 12, 13], { resumeFrom: a.node, resumeLength: 4 }))).toMatch(
        /^KVMGR_INVALID_ARGUMENT: resumeLength must be 6 .*got 4$/,
      );
      // past the full pages of the keys given
      expect(codeOf(() => c.insert([1, 2, 3, 4], [10, 11], { resumeFrom: a.node, resumeLength: 6 }))).toMatch(/^KVMGR_INVALID_ARGUMENT: .*resumeLength/);
      expect(codeOf(() => c.insert([1, 2, 3, 4, 5, 6, 7, 8], [10, 11, 12, 13], { resumeFrom: 123456, resumeLength: 6 }))).toMatch(/^KVMGR_UNKNOWN_HANDLE/);
      expect(c.stats).toEqual(before);
      expect(c.match([1, 2, 3, 4, 5, 6, 7, 8], { touch: false }).blocks).toEqual([10, 11, 12]);
      // the right length works and continues the chain
      const b = c.insert([1, 2, 3, 4, 5, 6, 7, 8], [10, 11, 12, 13], { resumeFrom: a.node, resumeLength: 6 });
      expect(b.existingLength).toBe(6);
      expect(b.adoptedBlocks).toEqual([13]);
      expect(c.match([1, 2, 3, 4, 5, 6, 7, 8, 9], { touch: false }).blocks).toEqual([10, 11, 12, 13]);
    });
  });
}
