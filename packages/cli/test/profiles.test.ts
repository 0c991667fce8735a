import { ENGINE_PROFILES } from '@kvmgr/sim';
import { describe, expect, it } from 'vitest';
import { PROFILES, getProfile } from '../src/profiles.js';

describe('CLI profiles', () => {
  it("the adapters' vllm-default and kvmgr-default equal the simulator's built-in copies", () => {
    for (const name of ['vllm-default', 'kvmgr-default']) {
      expect(getProfile(name), name).toEqual(ENGINE_PROFILES[name]);
    }
  });

  it('knows every engine baseline and names the known ones on a typo', () => {
    expect(Object.keys(PROFILES).sort()).toEqual(['kvmgr-default', 'kvmgr-offload', 'lmdeploy-default', 'sglang-default', 'tgi-default', 'vllm-default', 'vllm-small-gpu']);
    expect(() => getProfile('vllm-defualt')).toThrow(/unknown profile "vllm-defualt"; known: vllm-default/);
  });
});
