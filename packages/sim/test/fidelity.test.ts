import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CV_START_CALIBRATION,
  GPU_SPECS,
  crossValidateRoofline,
  fitRooflineCalibration,
  getGpuSpec,
  getModelSpec,
  gpuKvBlocks,
  loadValidationSet,
  parseHfConfig,
  runFidelity,
  runReplay,
  selectLatencyModel,
  splitFolds,
} from '../src/index.js';
import { VALIDATION } from './paths.js';

const FIXTURE = join(import.meta.dirname, 'fixtures/validation-mini');

describe('validation folder + fidelity (fixture)', () => {
  const set = loadValidationSet(FIXTURE);

  it('parses gpu, dp and blank KV block counts', () => {
    const l40s = set.experiments.find((e) => e.name === 'l40s-qwen-blank-kv');
    expect(l40s?.gpuKey).toBe('L40S');
    expect(l40s?.dp).toBe(2);
    expect(l40s?.totalKvBlocks).toBeUndefined();
    expect(set.experiments.find((e) => e.name === 'h100-qwen-tp1')?.dp).toBe(1);
    expect(set.experiments.find((e) => e.name === 'h100-qwen-tp1')?.gpuMemoryUtilization).toBe(0.9);
  });

  it('replays every experiment without crashing: GPU and DP honoured, blank KV derived and marked', () => {
    const rows = runFidelity(set, { latency: 'roofline' });
    expect(rows.map((r) => r.experiment)).toEqual(set.experiments.map((e) => e.name));
    const byName = Object.fromEntries(rows.map((r) => [r.experiment, r]));
    const h100 = byName['h100-qwen-tp1'];
    const l40s = byName['l40s-qwen-blank-kv'];
    expect(h100?.error).toBeUndefined();
    expect(h100?.kvBlocks).toBe(65352);
    expect(h100?.kvBlocksDerived).toBe(false);
    expect(l40s?.error).toBeUndefined();
    expect(l40s?.latency).toContain('L40S');
    expect(l40s?.kvBlocksDerived).toBe(true);
    const qwen = parseHfConfig('Qwen/Qwen2.5-7B-Instruct', { hidden_size: 3584, num_attention_heads: 28, num_key_value_heads: 4, num_hidden_layers: 28, intermediate_size: 18944, vocab_size: 152064 });
    expect(l40s?.kvBlocks).toBe(gpuKvBlocks(qwen, getGpuSpec('L40S-48GB'), 1, 16, 0.9));
    expect(l40s?.dp).toBe(2);
    // 864 GB/s against 3.35 TB/s: decode on L40S is several times slower than on H100.
    expect((l40s?.sim.itl ?? 0) / (h100?.sim.itl ?? 1)).toBeGreaterThan(2.5);
    expect(byName['a100-qwen-tp1']?.latency).toContain('A100-80GB');
    // Unknown GPU: reported, not thrown.
    expect(byName['mi300-unknown-gpu']?.error).toMatch(/MI300X/);
    expect(Number.isNaN(byName['mi300-unknown-gpu']?.err.e2e)).toBe(true);
  });

  it('DP replicas share the load', () => {
    const l40s = set.experiments.find((e) => e.name === 'l40s-qwen-blank-kv');
    if (l40s === undefined) throw new Error('fixture');
    const one = { ...set, experiments: [{ ...l40s, dp: 1 }] };
    const two = { ...set, experiments: [l40s] };
    const r1 = runFidelity(one, { latency: 'roofline' })[0];
    const r2 = runFidelity(two, { latency: 'roofline' })[0];
    expect(r2?.sim.itl).toBeLessThan(r1?.sim.itl ?? 0);
  });

  it('a missing folder is one KVMGR_NOT_FOUND error naming the path', () => {
    expect(() => loadValidationSet('/nonexistent/validation')).toThrow(expect.objectContaining({ code: 'KVMGR_NOT_FOUND', message: expect.stringContaining('/nonexistent/validation') }));
  });
});

describe('two-fold cross-validation', () => {
  const set = loadValidationSet(FIXTURE);

  it('splits deterministically into disjoint folds covering the recommended experiments', () => {
    const [a, b] = splitFolds(set.experiments);
    const [a2, b2] = splitFolds([...set.experiments].reverse());
    expect(a.map((e) => e.name)).toEqual(a2.map((e) => e.name));
    expect(b.map((e) => e.name)).toEqual(b2.map((e) => e.name));
    const names = [...a, ...b].map((e) => e.name).sort();
    expect(names).toEqual(set.experiments.filter((e) => e.recommended).map((e) => e.name).sort());
    expect(a.some((e) => b.includes(e))).toBe(false);
  });

  it('fits on the fit fold only: changing held-out measurements does not change the fit', () => {
    const [fit] = splitFolds(set.experiments);
    const base = fitRooflineCalibration(set, fit, { rounds: 0 });
    const scrambled = {
      ...set,
      experiments: set.experiments.map((e) => (fit.includes(e) ? e : { ...e, measured: { ttft: 1, itl: 1, e2e: 1 } })),
    };
    const [fit2] = splitFolds(scrambled.experiments);
    const other = fitRooflineCalibration(scrambled, fit2, { rounds: 0 });
    expect(other.calibration).toEqual(base.calibration);
    expect(base.evaluations).toBe(1);
  });

  it('tests each fold on the experiments it did not fit on', () => {
    const cv = crossValidateRoofline(set, { rounds: 0 });
    expect(cv.folds).toHaveLength(2);
    for (const f of cv.folds) {
      expect(f.fit.some((n) => f.test.includes(n))).toBe(false);
      expect(f.rows.map((r) => r.experiment).sort()).toEqual([...f.test].sort());
    }
    // The unknown-GPU experiment cannot run, so it is in neither fold.
    expect(cv.folds.flatMap((f) => [...f.fit, ...f.test])).not.toContain('mi300-unknown-gpu');
    expect(cv.heldOut.n).toBe(3);
    expect(CV_START_CALIBRATION.deliveryLagSteps).toBe(0);
  });
});

describe('auto latency selection by evidence', () => {
  const llama8b = getModelSpec('Llama-3.1-8B-Instruct');

  it('prefers the roofline validated on vLLM 0.15.1 H100 over the BLIS row fitted on vLLM 0.11.0', () => {
    const sel = selectLatencyModel('auto', llama8b, getGpuSpec('H100'), 1);
    expect(sel.latency.kind).toBe('roofline');
    expect(sel.candidates.map((c) => c.model.kind)).toEqual(['roofline', 'blis']);
    expect(sel.candidates[0]?.rank).toBeGreaterThan(sel.candidates[1]?.rank ?? 9);
    expect(sel.reason).toMatch(/0\.11\.0/);
    expect(sel.latency.evidence?.fittedOn.vllmVersion).toBe('0.15.1');
  });

  it('takes a BLIS row where the roofline has no evidence for the GPU', () => {
    const sel = selectLatencyModel('auto', llama8b, getGpuSpec('A100-80'), 1);
    expect(sel.latency.kind).toBe('blis');
    expect(sel.latency.name).toContain('A100-80/tp1/v0.8.4');
  });

  it('a roofline with a custom calibration carries no evidence and loses to a row', () => {
    const sel = selectLatencyModel('auto', llama8b, getGpuSpec('H100'), 1, { calibration: { mfu: 0.3 } });
    expect(sel.latency.kind).toBe('blis');
  });

  it('explicit choices are honoured', () => {
    expect(selectLatencyModel('blis', llama8b, getGpuSpec('H100'), 1).latency.name).toBe('blis:meta-llama/llama-3.1-8b-instruct/H100/tp1/v0.11.0');
    expect(selectLatencyModel('roofline', llama8b, getGpuSpec('A100-80'), 1).latency.kind).toBe('roofline');
  });

  it('knows the datasheet GPUs', () => {
    for (const g of ['H100', 'H200', 'A100-40GB', 'A100-80GB', 'L40S-48GB', 'L4']) expect(getGpuSpec(g).hbmBytesPerSec).toBeGreaterThan(0);
    expect(getGpuSpec('A100-40GB')).toBe(GPU_SPECS['A100-40']);
    expect(getGpuSpec('L4')).toBe(GPU_SPECS.L4);
  });
});

describe.skipIf(!existsSync(VALIDATION))(`shared validation set (${VALIDATION})`, () => {
  it('loads and replays one experiment', () => {
    const set = loadValidationSet(VALIDATION);
    expect(set.experiments.length).toBeGreaterThanOrEqual(17);
    const rows = runFidelity(set, { latency: 'roofline', include: (e) => e.name === '20260217-155451-llama-2-7b-tp1-codegen' });
    expect(rows).toHaveLength(1);
    expect(Math.abs(rows[0]?.err.e2e ?? 1)).toBeLessThan(0.1);
  });
});
if (!existsSync(VALIDATION)) console.warn(`skipping shared validation tests: ${VALIDATION} is missing`);

describe('TTFT terms of the roofline', () => {
  const model = getModelSpec('Llama-3.1-8B-Instruct');
  const gpu = getGpuSpec('H100');
  const one = [{ requestId: 'r', arrivalUs: 0, promptTokens: 1000, maxTokens: 50, outputTokens: 50 }];
  const run = (calibration: Record<string, number>) =>
    runReplay({ trace: one, model, gpu, instances: 1, latency: selectLatencyModel('roofline', model, gpu, 1, { calibration }).latency, gpuBlocks: 1000, cpuBlocks: 0, slo: {} }).requests[0];

  it('a delivery lag of k steps adds k decode intervals to TTFT and E2E, not to TPOT', () => {
    const base = run({ deliveryLagSteps: 0, queueingUs: 0, queueingPerInputTokenUs: 0 });
    const lag = run({ deliveryLagSteps: 1, queueingUs: 0, queueingPerInputTokenUs: 0 });
    if (base === undefined || lag === undefined) throw new Error('no row');
    expect(lag.ttftMs - base.ttftMs).toBeCloseTo(base.tpotMs, 9);
    expect(lag.e2eMs - base.e2eMs).toBeCloseTo(base.tpotMs, 9);
    expect(lag.tpotMs).toBeCloseTo(base.tpotMs, 9);
  });

  it('API/tokenizer time q0 + q1·prompt shifts TTFT and E2E exactly', () => {
    const base = run({ deliveryLagSteps: 0, queueingUs: 0, queueingPerInputTokenUs: 0 });
    const q = run({ deliveryLagSteps: 0, queueingUs: 5000, queueingPerInputTokenUs: 10 });
    if (base === undefined || q === undefined) throw new Error('no row');
    expect(q.ttftMs - base.ttftMs).toBeCloseTo(5 + 10, 9);
    expect(q.e2eMs - base.e2eMs).toBeCloseTo(15, 9);
  });
});

describe('auto where both backends were measured', () => {
  it('Qwen2.5-7B TP1 on H100: the lower error score wins (roofline), and both are rank 3', () => {
    const qwen = parseHfConfig('Qwen/Qwen2.5-7B-Instruct', { hidden_size: 3584, num_attention_heads: 28, num_key_value_heads: 4, num_hidden_layers: 28, intermediate_size: 18944, vocab_size: 152064 });
    const sel = selectLatencyModel('auto', qwen, getGpuSpec('H100'), 1);
    expect(sel.candidates.map((c) => [c.model.kind, c.rank])).toEqual([
      ['roofline', 3],
      ['blis', 3],
    ]);
    expect(sel.latency.kind).toBe('roofline');
  });
});
