import { describe, expect, it } from 'vitest';
import { TGI_DEFAULT_PROFILE } from './index.js';

describe('TGI profile', () => {
  it('reserves the full output and never preempts', () => {
    expect(TGI_DEFAULT_PROFILE.reserveFullOutput).toBe(true);
    expect(TGI_DEFAULT_PROFILE.preemptionMode).toBe('none');
    expect(TGI_DEFAULT_PROFILE.schedulerPipeline).toBe('tgi-default');
  });
});
