/**
 * Seed 001 mechanisms in the cluster: capability-aware P/D pairing on heterogeneous instances,
 * and P/D transfers that fail because the prefill instance evicted their source blocks.
 */
import { createKVCacheSpec } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import {
  KVMGR_DEFAULT_PROFILE,
  type DecodeCandidateState,
  type SimRouter,
  capabilityOf,
  createBlisModel,
  expectedDecodeStartUs,
  getGpuSpec,
  getModelSpec,
  gpuKvBlocks,
  pdBandwidth,
  pickDecodeByCapability,
  resolveLatencyModel,
  runReplay,
  simulateCoreCluster,
} from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const model = getModelSpec('meta-llama/Llama-3.1-8B-Instruct');
const spec = createKVCacheSpec({ blockSize: 16, numLayers: 32, numKvHeads: 8, headDim: 128, dtype: 'bf16' });
const cap = (id: string, role: 'prefill' | 'decode', gpu: string) => {
  const g = getGpuSpec(gpu);
  return capabilityOf(id, role, model.name, g, 1, gpuKvBlocks(model, g, 1, 16, 0.9), 0, spec.bytesPerBlock, KVMGR_DEFAULT_PROFILE);
};
const candidate = (gpu: string, over: Partial<DecodeCandidateState> = {}): DecodeCandidateState => ({
  capability: cap(`d-${gpu}`, 'decode', gpu),
  latency: resolveLatencyModel('roofline', model, getGpuSpec(gpu), 1),
  freeBlocks: 20_000,
  runningSeqs: 32,
  contextTokens: 32 * 2000,
  backlogTokens: 0,
  ...over,
});

describe('capability-aware P/D pairing', () => {
  const prefill = cap('p', 'prefill', 'H100');
  const link = { bytesPerSec: 100e9, baseUs: 1000 };
  const bytesPerToken = spec.bytesPerBlock / 16;

  it('describes an instance from its GPU: memory, links, budgets (validated)', () => {
    const l40s = cap('x', 'decode', 'L40S');
    expect(l40s.device).toEqual({ kind: 'sim', name: 'L40S-48GB', count: 1 });
    expect(l40s.bandwidthBytesPerSec).toEqual({ gpu: 32e9, cpu: 32e9 });
    expect(l40s.memoryBytes.gpu).toBe(gpuKvBlocks(model, getGpuSpec('L40S'), 1, 16, 0.9) * spec.bytesPerBlock);
    expect(() => capabilityOf('', 'decode', model.name, getGpuSpec('L40S'), 1, 10, 0, 1, KVMGR_DEFAULT_PROFILE)).toThrow(/capability\.instanceId/);
    // the transfer runs at the slowest of the cluster link and the two GPU-to-GPU links
    expect(pdBandwidth(100e9, prefill, l40s)).toBe(32e9);
    expect(pdBandwidth(100e9, prefill, cap('y', 'decode', 'A100'))).toBe(100e9);
  });

  it('picks the decode GPU with the earlier expected next token (A100 over L40S: faster HBM and link), whatever the order', () => {
    const a100 = candidate('A100');
    const l40s = candidate('L40S');
    const ta = expectedDecodeStartUs(prefill, a100, 8192, bytesPerToken, link);
    const tl = expectedDecodeStartUs(prefill, l40s, 8192, bytesPerToken, link);
    // transfer: 1 ms + 8192 × 128 KiB at 100 GB/s vs 32 GB/s
    expect(tl - ta).toBeGreaterThan(((8192 * bytesPerToken) / 32e9 - (8192 * bytesPerToken) / 100e9) * 1e6);
    expect(pickDecodeByCapability(prefill, [l40s, a100], 8192, bytesPerToken, link)).toBe(1);
    expect(pickDecodeByCapability(prefill, [a100, l40s], 8192, bytesPerToken, link)).toBe(0);
  });

  it('skips an instance without room for the prompt, and prefers the less loaded of equal GPUs', () => {
    const full = candidate('A100', { freeBlocks: 100 });
    const l40s = candidate('L40S');
    expect(pickDecodeByCapability(prefill, [full, l40s], 8192, bytesPerToken, link)).toBe(1);
    // none has room: the one with the most free blocks
    expect(pickDecodeByCapability(prefill, [full, candidate('L40S', { freeBlocks: 300 })], 8192, bytesPerToken, link)).toBe(1);
    const busy = candidate('A100', { backlogTokens: 16_384 });
    expect(pickDecodeByCapability(prefill, [busy, candidate('A100')], 8192, bytesPerToken, link)).toBe(1);
  });

  it('runs a heterogeneous cluster: each instance gets its GPU\'s KV blocks and latency model; capability pairing sends more to the faster decode GPU', () => {
    const requests: SimRequest[] = Array.from({ length: 40 }, (_, i) => ({ requestId: `r${i}`, arrivalUs: i * 100_000, promptTokens: 4000, maxTokens: 200, outputTokens: 200 }));
    const instances = [{ role: 'prefill', gpu: 'H100' }, { role: 'decode', gpu: 'L40S' }, { role: 'decode', gpu: 'A100' }] as const;
    const common = { trace: requests, profile: 'kvmgr-default', instances, slo: { ttftMs: 5000, tpotMs: 100 } } as const;
    const cap = runReplay({ ...common, pdPairing: 'capability' });
    expect(cap.violations).toEqual([]);
    expect(cap.summary.finished).toBe(40);
    expect(cap.config.gpus).toEqual(['H100-80GB-HBM3 (SXM)', 'L40S-48GB', 'A100-80GB (SXM)']);
    const blocks = cap.config.gpuBlocksPerInstance as readonly number[];
    expect(blocks[1]).toBeLessThan(blocks[2] as number); // 48 GB vs 80 GB
    expect(cap.config.pdPairing).toBe('capability');
    const onA100 = (r: typeof cap) => r.requests.filter((x) => x.prefillInstance !== '' && x.instance === 'decode-2').length;
    const onL40s = (r: typeof cap) => r.requests.filter((x) => x.prefillInstance !== '' && x.instance === 'decode-1').length;
    expect(onA100(cap)).toBeGreaterThan(onL40s(cap));
    const router = runReplay(common);
    expect(router.violations).toEqual([]);
    expect(router.config.pdPairing).toBeUndefined();
    expect(() => runReplay({ ...common, instances: [{ role: 'prefill', gpu: 'B300' }, 'decode'] })).toThrow(/instances\[0\]\.gpu/);
  });
});

describe('P/D transfer failures', () => {
  it('counts the blocks the prefill instance evicted while their transfer ran, and the decode instance recomputes them', () => {
    const latency = createBlisModel({ model: 'meta-llama/llama-3.1-8b-instruct', gpu: 'H100', tp: 1 });
    // two 1024-token prompts with different prefixes; the prefill instance holds 70 blocks, so
    // the second prompt (65 blocks) evicts most of the first one's cached blocks
    const req = (i: number, arrivalUs: number): SimRequest => ({
      requestId: `r${i}`,
      arrivalUs,
      promptTokens: 1024,
      maxTokens: 8,
      outputTokens: 8,
      hashIds: Uint32Array.from({ length: 2 }, (_, j) => 1000 * (i + 1) + j),
      hashBlockTokens: 512,
    });
    const router: SimRouter = { name: 'fixed', route: () => ({ prefill: 0, decode: 1 }) };
    const instance = (id: string, role: 'prefill' | 'decode', gpuBlocks: number) => ({
      id,
      role,
      bytesPerBlock: spec.bytesPerBlock,
      gpuBlocks,
      blockSize: 16,
      eviction: 'lru',
      prefixCache: 'radix' as const,
      scheduler: 'vllm-default',
      victimSelector: 'vllm',
      latency,
      tokenBudget: 8192,
      maxSeqs: 256,
    });
    const run = (bytesPerSec: number) =>
      simulateCoreCluster({ requests: [req(0, 0), req(1, 50_000)], instances: [instance('p', 'prefill', 70), instance('d', 'decode', 400)], router, pd: { bytesPerSec, baseUs: 1000 } });
    // a slow link (64 blocks × 2 MiB at 1 GB/s ≈ 134 ms): r1's prefill runs while r0's KV moves
    const slow = run(1e9);
    expect(slow.violations).toEqual([]);
    expect(slow.states.every((s) => s.finishUs > 0)).toBe(true);
    const m = slow.instances[1]?.migrations;
    expect(m?.pdTransferBlocks).toBe(128);
    const failed = m?.pdFailedBlocks as number;
    expect(failed).toBeGreaterThan(0);
    expect(failed).toBeLessThanOrEqual(64); // only r0's blocks were evicted
    // the decode instance recomputed what did not arrive (r0), nothing for r1
    const r0 = slow.states[0];
    expect(r0?.prefillComputed).toBeGreaterThanOrEqual(1024 + failed * 16 - 16);
    expect(slow.states[1]?.prefillComputed).toBe(1024);
    // a fast link: the transfer ends before r1's prefill evicts anything
    const fast = run(1e12);
    expect(fast.instances[1]?.migrations).toMatchObject({ pdTransferBlocks: 128, pdFailedBlocks: 0 });
    expect(fast.states[0]?.prefillComputed).toBe(1024);
  });
});
