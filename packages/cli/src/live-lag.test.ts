import { describe, expect, it } from 'vitest';
import { scheduleLagWarning } from './live.js';

describe('kvmgr live: the schedule-lag warning', () => {
  it('is silent while every side keeps its schedule, and names the late sides and the time scale otherwise', () => {
    expect(scheduleLagWarning([{ label: 'round-robin', p50: 14.9 }, { label: 'kvmgr', p50: 16 }], 2, 100)).toBeUndefined();
    const w = scheduleLagWarning([{ label: 'round-robin', p50: 3348 }, { label: 'kvmgr', p50: 40 }], 20, 100);
    expect(w).toMatch(/round-robin p50 3348\.0 ms/);
    expect(w).not.toMatch(/kvmgr p50/);
    expect(w).toMatch(/--time-scale 20/);
    expect(w?.split('\n')).toHaveLength(1);
  });

  it('does not warn on a side without requests (NaN delay)', () => {
    expect(scheduleLagWarning([{ label: 'kvmgr', p50: Number.NaN }], 20, 100)).toBeUndefined();
  });
});
