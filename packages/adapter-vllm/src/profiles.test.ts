import { describe, expect, it } from 'vitest';
import { VLLM_DEFAULT_PROFILE, VLLM_PROFILES, VLLM_SMALL_GPU_PROFILE } from './index.js';

describe('vLLM profiles', () => {
  it('vllm-default carries vLLM v1 H100 defaults', () => {
    expect(VLLM_DEFAULT_PROFILE).toMatchObject({
      blockSize: 16,
      tokenBudget: 8192,
      maxSeqs: 1024,
      victimSelector: 'vllm',
      cacheEviction: 'lru',
      scheduler: 'vllm-default',
      cpuOffloadGiB: 0,
      router: 'round-robin',
    });
    expect(VLLM_SMALL_GPU_PROFILE).toMatchObject({ tokenBudget: 2048, maxSeqs: 256 });
  });

  it('registry is keyed by profile name and frozen', () => {
    for (const [name, p] of Object.entries(VLLM_PROFILES)) expect(p.name).toBe(name);
    expect(Object.keys(VLLM_PROFILES)).toEqual(['vllm-default', 'vllm-small-gpu']);
    expect(Object.isFrozen(VLLM_PROFILES)).toBe(true);
    expect(Object.isFrozen(VLLM_DEFAULT_PROFILE)).toBe(true);
  });
});
