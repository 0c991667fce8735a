import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyLru } from '../src/engine/key-lru.js';

describe('KeyLru', () => {
  it('matches a reference LRU (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 30 })), { maxLength: 300 }), (cap, ops) => {
        const lru = new KeyLru(cap);
        const ref: number[] = [];
        for (const [del, k] of ops) {
          if (del) {
            const i = ref.indexOf(k);
            expect(lru.delete(k)).toBe(i >= 0);
            if (i >= 0) ref.splice(i, 1);
          } else {
            lru.touch(k);
            const i = ref.indexOf(k);
            if (i >= 0) ref.splice(i, 1);
            ref.push(k);
            while (ref.length > cap) ref.shift();
          }
          expect(lru.size).toBe(ref.length);
          for (let x = 0; x <= 30; x++) expect(lru.has(x)).toBe(ref.includes(x));
        }
      }),
      { numRuns: 200 },
    );
  });
});
