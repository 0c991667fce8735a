import { describe, expect, it } from 'vitest';
import { isKvmgrError } from './errors.js';
import { createRng } from './rng.js';

describe('createRng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const sa = Array.from({ length: 5 }, () => a.next());
    const sb = Array.from({ length: 5 }, () => b.next());
    const sc = Array.from({ length: 5 }, () => c.next());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
  });

  it('gives floats in [0,1), ints in range, and a sane mean', () => {
    const r = createRng(7);
    let sum = 0;
    for (let i = 0; i < 20000; i++) {
      const x = r.next();
      expect(x >= 0 && x < 1).toBe(true);
      sum += x;
      const k = r.int(3, 5);
      expect(k >= 3 && k <= 5 && Number.isInteger(k)).toBe(true);
    }
    expect(sum / 20000).toBeGreaterThan(0.48);
    expect(sum / 20000).toBeLessThan(0.52);
    let e = 0;
    for (let i = 0; i < 20000; i++) e += r.exponential(10);
    expect(e / 20000).toBeGreaterThan(9.5);
    expect(e / 20000).toBeLessThan(10.5);
  });

  it('shuffle keeps elements, fork is deterministic, bad input throws', () => {
    const r = createRng(1);
    const arr = [1, 2, 3, 4, 5, 6];
    expect([...r.shuffle(arr)].sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(createRng(9).fork().next()).toBe(createRng(9).fork().next());
    expect(() => createRng(1.5)).toThrow(/seed/);
    try {
      r.pick([]);
    } catch (err) {
      expect(isKvmgrError(err, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
    }
    expect(() => r.int(5, 3)).toThrow(/min <= max/);
  });
});
