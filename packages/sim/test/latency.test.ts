import { readFileSync } from 'node:fs';
import { VALIDATION, VALIDATION_MINI, skipNote } from './paths.js';
import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createBlisModel, createRooflineModel, createStepWork, findBlisRow, getGpuSpec, getModelSpec, gpuKvBlocks, parseHfConfig } from '../src/index.js';

describe('BLIS rows', () => {
  it('finds the DESIGN.md row for Llama-3.1-8B on H100 TP1 (newest vLLM)', () => {
    const row = findBlisRow('meta-llama/Llama-3.1-8B-Instruct', 'H100', 1)!;
    expect(row.vllmVersion).toBe('v0.11.0');
    expect(row.alpha).toEqual([10326.3, 0, 0]);
    expect(row.beta).toEqual([6472.01, 19.7972, 304.402]);
    expect(findBlisRow('meta-llama/Llama-3.1-8B-Instruct', 'H100', 1, 'v0.8.4')!.beta[0]).toBe(5752.71);
    expect(findBlisRow('Llama-2-7b-hf', 'H100', 1)).toBeUndefined();
  });
  it('step µs = β0 + β1·prefill + β2·decode; queueing = α0 + α1·input', () => {
    const m = createBlisModel({ model: 'x', gpu: 'H100', tp: 1, vllmVersion: 'v', alpha: [100, 2, 7], beta: [1000, 10, 5] });
    const w = createStepWork();
    w.prefillTokens = 300;
    w.decodeTokens = 40;
    expect(m.stepTimeUs(w)).toBe(1000 + 3000 + 200);
    expect(m.queueingUs(50)).toBe(200);
    expect(m.outputTokenUs).toBe(7);
  });
  it('says which row is missing', () => {
    let e: unknown;
    try {
      createBlisModel({ model: 'Yi-34B', gpu: 'H100', tp: 2 });
    } catch (x) {
      e = x;
    }
    expect(isKvmgrError(e, 'KVMGR_NOT_FOUND')).toBe(true);
    expect((e as Error).message).toMatch(/"Yi-34B" on H100 TP2/);
  });
});

describe('roofline', () => {
  const model = getModelSpec('Llama-3.1-8B-Instruct');
  const gpu = getGpuSpec('H100');
  it('a decode step of one sequence is weight-bandwidth bound at the floor', () => {
    const m = createRooflineModel({ model, gpu });
    const w = createStepWork();
    w.decodeTokens = 1;
    w.numSeqs = 1;
    w.decodeContextTokens = 1;
    // 8.03e9 params × 2 B / 3.35e12 B/s ≈ 4.79 ms (weights incl. LM head; embedding not read).
    const weights = (6.98e9 + 128256 * 4096) * 2;
    expect(m.floorStepTimeUs(w)).toBeCloseTo((weights / 3.35e12) * 1e6 + (131072 / 3.35e12) * 1e6, -2);
    expect(m.stepTimeUs(w)).toBeGreaterThan(m.floorStepTimeUs(w));
  });
  it('step time ≥ floor and grows with work (property)', () => {
    const m = createRooflineModel({ model, gpu, tp: 2 });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8192 }), fc.integer({ min: 0, max: 256 }), fc.integer({ min: 0, max: 64 }), (p, d, extra) => {
        fc.pre(p + d > 0);
        const w = createStepWork();
        w.prefillTokens = p;
        w.prefillAttnPairs = p * (p / 2);
        w.decodeTokens = d;
        w.numSeqs = d + (p > 0 ? 1 : 0);
        w.decodeContextTokens = d * 1000;
        const t = m.stepTimeUs(w);
        expect(t).toBeGreaterThanOrEqual(m.floorStepTimeUs(w));
        w.prefillTokens += extra;
        w.prefillAttnPairs = w.prefillTokens * (w.prefillTokens / 2);
        expect(m.stepTimeUs(w)).toBeGreaterThanOrEqual(t);
      }),
      { numRuns: 200 },
    );
  });
  it('all-reduce latency grows with log2(tp): one unit at TP2, two at TP4, three at TP8', () => {
    const w = createStepWork();
    w.decodeTokens = 1;
    w.numSeqs = 1;
    w.decodeContextTokens = 1;
    const extra = (tp: number): number =>
      createRooflineModel({ model, gpu, tp, calibration: { allReduceLatencyUs: 100 } }).stepTimeUs(w) - createRooflineModel({ model, gpu, tp, calibration: { allReduceLatencyUs: 0 } }).stepTimeUs(w);
    const perUnit = 2 * model.numLayers * 100;
    expect(extra(1)).toBe(0);
    expect(extra(2)).toBeCloseTo(perUnit, 6);
    expect(extra(4)).toBeCloseTo(2 * perUnit, 6);
    expect(extra(8)).toBeCloseTo(3 * perUnit, 6);
  });
  it('rejects bad calibration and TP', () => {
    expect(isKvmgrError((() => { try { createRooflineModel({ model, gpu, calibration: { mfu: 1.5 } }); } catch (e) { return e; } })(), 'KVMGR_INVALID_ARGUMENT')).toBe(true);
    expect(isKvmgrError((() => { try { createRooflineModel({ model, gpu, tp: 0 }); } catch (e) { return e; } })(), 'KVMGR_INVALID_ARGUMENT')).toBe(true);
  });
  // Qwen's config.json is bundled in the sim's fixture (a byte-identical copy of the shared one); Llama-4's is only in ../shared
  const QWEN = `${VALIDATION_MINI}/model_configs/Qwen2.5-7B-Instruct.json`;
  const LLAMA4 = `${VALIDATION}/model_configs/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic.json`;
  const LLAMA4_SKIPPED = skipNote(LLAMA4);
  it('parses HF configs (Qwen2.5-7B)', () => {
    const q = parseHfConfig('Qwen/Qwen2.5-7B-Instruct', JSON.parse(readFileSync(QWEN, 'utf8')));
    expect([q.numLayers, q.hidden, q.numHeads, q.numKvHeads, q.headDim, q.ffn, q.weightBytes]).toEqual([28, 3584, 28, 4, 128, 18944, 2]);
  });
  it.skipIf(LLAMA4_SKIPPED !== '')(`parses HF configs (nested Llama-4 text_config)${LLAMA4_SKIPPED}`, () => {
    const s = parseHfConfig('RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic', JSON.parse(readFileSync(LLAMA4, 'utf8')));
    expect([s.numLayers, s.numExperts, s.expertsPerToken, s.sharedExperts, s.weightBytes]).toEqual([48, 16, 1, 1, 1]);
  });
  it('sizes the KV cache like vLLM within 2% on the validation runs', () => {
    const q = parseHfConfig('Qwen/Qwen2.5-7B-Instruct', JSON.parse(readFileSync(QWEN, 'utf8')));
    const blocks = gpuKvBlocks(q, gpu, 1, 16, 0.9);
    expect(Math.abs(blocks / 65352 - 1)).toBeLessThan(0.02);
  });
});
