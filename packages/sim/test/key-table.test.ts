import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyTable } from '../src/engine/key-table.js';

describe('KeyTable', () => {
  it('behaves like a Map under random set/delete/get (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('set', 'delete', 'get'), fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 2 ** 40 })), fc.integer({ min: 0, max: 1000 })), {
          maxLength: 400,
        }),
        (ops) => {
          const t = new KeyTable(300);
          const m = new Map<number, number>();
          for (const [op, k, v] of ops) {
            if (op === 'set') {
              if (m.size >= 300 && !m.has(k)) continue;
              t.set(k, v);
              m.set(k, v);
            } else if (op === 'delete') expect(t.delete(k)).toBe(m.delete(k));
            else expect(t.get(k)).toBe(m.get(k) ?? -1);
            expect(t.size).toBe(m.size);
          }
          for (const [k, v] of m) expect(t.get(k)).toBe(v);
        },
      ),
      { numRuns: 300 },
    );
  });
});
