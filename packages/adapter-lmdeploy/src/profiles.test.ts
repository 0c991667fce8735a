import { describe, expect, it } from 'vitest';
import { LMDEPLOY_DEFAULT_PROFILE } from './index.js';

describe('LMDeploy profile', () => {
  it('uses 64-token blocks and the lmdeploy pipeline', () => {
    expect(LMDEPLOY_DEFAULT_PROFILE.blockSize).toBe(64);
    expect(LMDEPLOY_DEFAULT_PROFILE.scheduler).toBe('lmdeploy-default');
    expect(LMDEPLOY_DEFAULT_PROFILE.cacheEviction).toBe('lru');
  });
});
