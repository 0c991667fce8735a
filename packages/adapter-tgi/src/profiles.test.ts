import { describe, expect, it } from 'vitest';
import { TGI_DEFAULT_PROFILE } from './index.js';

describe('TGI profile', () => {
  it('schedules with the tgi-default pipeline (reserve input + max_new_tokens, never preempt)', () => {
    expect(TGI_DEFAULT_PROFILE.scheduler).toBe('tgi-default');
    expect(TGI_DEFAULT_PROFILE.tokenBudget).toBe(4096);
  });
});
