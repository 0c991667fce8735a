/**
 * Issue #19: eviction policies refuse a bad `initialCapacity` (and other bad options) with
 * KVMGR_INVALID_ARGUMENT instead of accepting it silently.
 */
import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { EVICTION_POLICY_NAMES, createEvictionPolicy } from './registry.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!isKvmgrError(e)) throw e;
    return e.code;
  }
}

const base = { capacity: 4, accesses: [1, 2, 3] };
const sized = EVICTION_POLICY_NAMES.filter((n) => n !== 'belady');

describe('eviction hardening (#19)', () => {
  it.each(sized)('D9: %s refuses initialCapacity 0, -1, NaN, 1.5, Infinity', (name) => {
    for (const bad of [0, -1, Number.NaN, 1.5, Number.POSITIVE_INFINITY, '8' as never]) {
      expect(codeOf(() => createEvictionPolicy(name, { ...base, initialCapacity: bad })), `${name} ${String(bad)}`).toBe('KVMGR_INVALID_ARGUMENT');
    }
    expect(createEvictionPolicy(name, { ...base, initialCapacity: 1 }).size).toBe(0);
  });

  it('unknown names, including Object.prototype keys, are KVMGR_INVALID_ARGUMENT', () => {
    for (const n of ['constructor', '__proto__', 'toString', '', 'LRU']) {
      expect(codeOf(() => createEvictionPolicy(n, base)), n).toBe('KVMGR_INVALID_ARGUMENT');
    }
    expect(codeOf(() => createEvictionPolicy('arc', {}))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => createEvictionPolicy('arc', { capacity: Number.NaN }))).toBe('KVMGR_INVALID_ARGUMENT');
  });

  it('a full ARC refuses an insert with KVMGR_INVALID_STATE and is unchanged', () => {
    const arc = createEvictionPolicy('arc', { capacity: 2 });
    arc.insert(1);
    arc.insert(2);
    const victim = arc.victim();
    expect(codeOf(() => arc.insert(3))).toBe('KVMGR_INVALID_STATE');
    expect([arc.size, arc.victim(), arc.has(3)]).toEqual([2, victim, false]);
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 32]) expect(codeOf(() => arc.insert(bad)), String(bad)).toBe('KVMGR_INVALID_ARGUMENT');
  });
});
