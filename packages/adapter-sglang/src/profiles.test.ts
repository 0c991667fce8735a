import { describe, expect, it } from 'vitest';
import { SGLANG_DEFAULT_PROFILE } from './index.js';

describe('SGLang profile', () => {
  it('sglang-default carries SGLang defaults', () => {
    expect(SGLANG_DEFAULT_PROFILE).toMatchObject({ name: 'sglang-default', engine: 'sglang', blockSize: 1, scheduler: 'sglang-default', victimSelector: 'sglang', gpuMemoryUtilization: 0.88 });
    expect(Object.isFrozen(SGLANG_DEFAULT_PROFILE)).toBe(true);
  });
});
