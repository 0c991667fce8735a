import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HashTable64 } from './hash-table64.js';

describe('HashTable64', () => {
  it('agrees with a Map', () => {
    const op = fc.record({ set: fc.boolean(), hi: fc.integer({ min: 0, max: 3 }), lo: fc.integer({ min: 0, max: 70 }), v: fc.nat(1000) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const t = new HashTable64(1);
        const m = new Map<string, number>();
        for (const o of ops) {
          // lo values collide on the low bits on purpose (long probe chains, wrap-around)
          const lo = (o.lo * 64) >>> 0;
          if (o.set) {
            t.set(o.hi, lo, o.v);
            m.set(`${o.hi}:${lo}`, o.v);
          } else {
            t.delete(o.hi, lo);
            m.delete(`${o.hi}:${lo}`);
          }
          expect(t.size).toBe(m.size);
        }
        for (let hi = 0; hi <= 3; hi++) for (let l = 0; l <= 70; l++) expect(t.get(hi, l * 64)).toBe(m.get(`${hi}:${l * 64}`) ?? -1);
      }),
      { numRuns: 200, seed: 2 },
    );
  });
});
