import { ENGINE_PROFILES } from '@kvmgr/sim';
import { describe, expect, it } from 'vitest';
import { PROFILES, getProfile } from '../src/profiles.js';

describe('CLI profiles', () => {
  it("the simulator's built-in vllm-default and kvmgr-default are the adapter's profiles, not copies", () => {
    for (const name of ['vllm-default', 'kvmgr-default']) {
      expect(ENGINE_PROFILES[name], name).toBe(getProfile(name));
    }
  });

  it('knows every engine baseline and names the known ones on a typo', () => {
    expect(Object.keys(PROFILES).sort()).toEqual(['kvmgr-default', 'kvmgr-offload', 'lmdeploy-default', 'sglang-default', 'tgi-default', 'vllm-default', 'vllm-small-gpu']);
    expect(() => getProfile('vllm-defualt')).toThrow(/unknown profile "vllm-defualt"; known: vllm-default/);
  });
});
