import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FreeBlockQueue } from './free-block-queue.js';

describe('FreeBlockQueue', () => {
  it('keeps eviction order through pop, append, prepend and remove', () => {
    const q = new FreeBlockQueue(5);
    expect(q.toArray()).toEqual([0, 1, 2, 3, 4]);
    expect(q.popFront()).toBe(0);
    q.remove(2);
    q.append(0);
    q.prepend(2);
    expect(q.toArray()).toEqual([2, 1, 3, 4, 0]);
    expect(q.length).toBe(5);
    expect(q.peekFront()).toBe(2);
    expect(q.after(4)).toBe(0);
    expect(q.after(0)).toBe(-1);
    const e = new FreeBlockQueue(3, false);
    expect(e.popFront()).toBe(-1);
    expect(e.peekFront()).toBe(-1);
    e.reset([2, 0]);
    expect(e.toArray()).toEqual([2, 0]);
    expect(e.has(1)).toBe(false);
  });

  it('matches an array model on random operations', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.nat()), { minLength: 10, maxLength: 100 }), (n, ops) => {
        const q = new FreeBlockQueue(n);
        const model = Array.from({ length: n }, (_, i) => i);
        for (const [kind, x] of ops) {
          const b = x % n;
          if (kind === 0) expect(q.popFront()).toBe(model.length ? model.shift() : -1);
          else if (kind === 1 && !model.includes(b)) {
            q.append(b);
            model.push(b);
          } else if (kind === 2 && !model.includes(b)) {
            q.prepend(b);
            model.unshift(b);
          } else if (kind === 3 && model.includes(b)) {
            q.remove(b);
            model.splice(model.indexOf(b), 1);
          }
          expect(q.toArray()).toEqual(model);
          expect(q.length).toBe(model.length);
        }
      }),
    );
  });
});
