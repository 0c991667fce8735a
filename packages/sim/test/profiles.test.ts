import { LMDEPLOY_DEFAULT_PROFILE } from '@kvmgr/adapter-lmdeploy';
import { SGLANG_DEFAULT_PROFILE } from '@kvmgr/adapter-sglang';
import { TGI_DEFAULT_PROFILE } from '@kvmgr/adapter-tgi';
import { VLLM_PROFILES } from '@kvmgr/adapter-vllm';
import { isKvmgrError } from '@kvmgr/core';
import { PassManager, createDefaultRegistry } from '@kvmgr/scheduler-ir';
import { describe, expect, it } from 'vitest';
import { ENGINE_PROFILES, KVMGR_DEFAULT_PROFILE, KVMGR_OFFLOAD_PROFILE, VLLM_DEFAULT_PROFILE, getEngineProfile } from '../src/index.js';

describe('the profile registry', () => {
  it('holds every engine baseline and kvmgr’s own, keyed by name, frozen', () => {
    expect(Object.keys(ENGINE_PROFILES)).toEqual(['vllm-default', 'vllm-small-gpu', 'sglang-default', 'kvmgr-default', 'kvmgr-offload', 'tgi-default', 'lmdeploy-default']);
    for (const [name, p] of Object.entries(ENGINE_PROFILES)) expect(p.name).toBe(name);
    expect(Object.isFrozen(ENGINE_PROFILES)).toBe(true);
    for (const p of Object.values(ENGINE_PROFILES)) expect(Object.isFrozen(p), p.name).toBe(true);
  });

  it('takes the engine facts from the adapters that own them, not copies', () => {
    for (const [name, p] of Object.entries(VLLM_PROFILES)) expect(getEngineProfile(name)).toBe(p);
    expect(getEngineProfile('sglang-default')).toBe(SGLANG_DEFAULT_PROFILE);
    expect(getEngineProfile('tgi-default')).toBe(TGI_DEFAULT_PROFILE);
    expect(getEngineProfile('lmdeploy-default')).toBe(LMDEPLOY_DEFAULT_PROFILE);
    expect(getEngineProfile('vllm-default')).toBe(VLLM_DEFAULT_PROFILE);
  });

  it('kvmgr-default keeps vLLM geometry and memory and swaps the decisions; kvmgr-offload only adds the CPU tier', () => {
    for (const k of ['blockSize', 'tokenBudget', 'maxSeqs', 'gpuMemoryUtilization', 'cpuOffloadGiB'] as const) expect(KVMGR_DEFAULT_PROFILE[k], k).toBe(VLLM_DEFAULT_PROFILE[k]);
    expect(KVMGR_DEFAULT_PROFILE.scheduler).toBe('kvmgr-default');
    expect(KVMGR_DEFAULT_PROFILE.router).not.toBe('round-robin');
    const { name, description, cpuOffloadGiB, ...rest } = KVMGR_OFFLOAD_PROFILE;
    const { name: _n, description: _d, cpuOffloadGiB: base, ...restDefault } = KVMGR_DEFAULT_PROFILE;
    expect(rest).toEqual(restDefault);
    expect([name, base, cpuOffloadGiB]).toEqual(['kvmgr-offload', 0, 200]);
  });

  it('every profile’s pipeline parses, can produce a plan, and round-trips through its canonical text', () => {
    const registry = createDefaultRegistry();
    for (const p of Object.values(ENGINE_PROFILES)) {
      const pm = new PassManager({ pipeline: p.scheduler, registry, requirePlan: true });
      expect(new PassManager({ pipeline: pm.canonical, registry }).canonical, p.name).toBe(pm.canonical);
      // No field outside the pipeline decides preemption any more.
      expect(Object.hasOwn(p, 'preemption'), p.name).toBe(false);
    }
  });

  it('names the known profiles on a typo; inherited keys are not profiles', () => {
    expect(() => getEngineProfile('vllm-defualt')).toThrow(/^unknown profile "vllm-defualt"; known: vllm-default, vllm-small-gpu, /);
    for (const bad of ['toString', '__proto__', 'constructor']) {
      try {
        getEngineProfile(bad);
        expect.unreachable(bad);
      } catch (e) {
        expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT'), bad).toBe(true);
      }
    }
  });
});
