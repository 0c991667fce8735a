import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { engineBlockKeys, generateArrivals, loadAzureTrace, loadLengthCsv, loadMooncakeTrace } from '../src/index.js';

import { MOONCAKE_SAMPLE, TRACES as SHARED, skipNote } from './paths.js';

/** The full traces are in ../shared beside the repository; a clone elsewhere skips their tests and says why. */
const MOONCAKE_SKIPPED = skipNote(`${SHARED}/mooncake_fast25_conversation_trace.jsonl`);
const AZURE_SKIPPED = skipNote(`${SHARED}/azure_llm_2023_conv.csv`);
const SHAREGPT_SKIPPED = skipNote(`${SHARED}/sharegpt_8k_filtered_stats_llama2_tokenizer.csv`);

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('Mooncake loader', () => {
  it.skipIf(MOONCAKE_SKIPPED !== '')(`loads the full conversation trace${MOONCAKE_SKIPPED}`, () => {
    const t = loadMooncakeTrace(`${SHARED}/mooncake_fast25_conversation_trace.jsonl`);
    expect(t.requests.length).toBe(12031);
    expect(t.skippedRows).toBe(0);
    const mean = t.requests.reduce((a, r) => a + r.promptTokens, 0) / t.requests.length;
    expect(Math.round(mean)).toBe(12035);
    const first = t.requests[0]!;
    expect(first.promptTokens).toBe(6758);
    expect(first.outputTokens).toBe(500);
    expect(Array.from(first.hashIds!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  });

  it('loads the bundled sample (the full trace\'s first 3,000 lines)', () => {
    const t = loadMooncakeTrace(MOONCAKE_SAMPLE);
    expect(t.requests.length).toBe(3000);
    expect(t.skippedRows).toBe(0);
    const first = t.requests[0]!;
    expect(first.requestId).toBe('mooncake-conversation-sample.jsonl#1');
    expect(first.promptTokens).toBe(6758);
    expect(first.outputTokens).toBe(500);
    expect(Array.from(first.hashIds!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(t.requests.every((r, i) => i === 0 || r.arrivalUs >= t.requests[i - 1]!.arrivalUs)).toBe(true);
    expect(t.requests.at(-1)!.arrivalUs).toBe(987_000_000); // README: timestamps 0 to 987,000 ms
  });

  const good = '{"timestamp": 5, "input_length": 600, "output_length": 3, "hash_ids": [7, 8]}';
  it('names file, line and reason of a bad row', () => {
    const text = `${good}\n{"timestamp": 6, "input_length": 600, "output_length": 3, "hash_ids": [7]}\n`;
    const e = caught(() => loadMooncakeTrace({ text, name: 'x.jsonl' }));
    expect(isKvmgrError(e, 'KVMGR_BAD_TRACE')).toBe(true);
    expect((e as Error).message).toMatch(/^x\.jsonl:2: hash_ids must be 2 integers/);
    expect((e as { details: Record<string, unknown> }).details).toMatchObject({ file: 'x.jsonl', line: 2 });
    const e2 = caught(() => loadMooncakeTrace({ text: `${good}\nnot json`, name: 'y' }));
    expect((e2 as Error).message).toBe('y:2: not valid JSON');
  });

  it('skips and counts bad rows in lenient mode', () => {
    const text = `${good}\n{"timestamp": -1}\n${good}\n{"timestamp": 1, "input_length": 0, "output_length": 1, "hash_ids": []}`;
    const t = loadMooncakeTrace({ text, name: 'z' }, { lenient: true });
    expect(t.requests.length).toBe(2);
    expect(t.skippedRows).toBe(2);
    expect(t.skippedReasons[0]).toMatch(/^line 2: timestamp/);
    expect(t.skippedReasons[1]).toMatch(/^line 4: input_length/);
  });

  it('reports a missing file as KVMGR_NOT_FOUND', () => {
    expect(isKvmgrError(caught(() => loadMooncakeTrace('/nonexistent/trace.jsonl')), 'KVMGR_NOT_FOUND')).toBe(true);
  });
});

describe('engine block keys', () => {
  it('maps 512-token hash ids to 16-token engine blocks, full blocks only', () => {
    const keys = engineBlockKeys({ requestId: 'a', arrivalUs: 0, promptTokens: 600, maxTokens: 1, outputTokens: 1, hashIds: Uint32Array.from([3, 9]), hashBlockTokens: 512 }, 16);
    expect(keys.length).toBe(37); // floor(600 / 16)
    expect(keys[0]).toBe(96); // 3 * 32 + 0
    expect(keys[31]).toBe(127);
    expect(keys[32]).toBe(288); // 9 * 32
    expect(keys[36]).toBe(292);
  });
  it('uses the last hash id inside a coarser engine block', () => {
    const keys = engineBlockKeys({ requestId: 'a', arrivalUs: 0, promptTokens: 130, maxTokens: 1, outputTokens: 1, hashIds: Uint32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), hashBlockTokens: 16 }, 64);
    expect(Array.from(keys)).toEqual([4, 8]);
  });
  it('rejects block sizes that do not divide', () => {
    expect(isKvmgrError(caught(() => engineBlockKeys({ requestId: 'a', arrivalUs: 0, promptTokens: 600, maxTokens: 1, outputTokens: 1, hashIds: Uint32Array.from([1]), hashBlockTokens: 512 }, 48)), 'KVMGR_INVALID_ARGUMENT')).toBe(true);
  });
});

describe('Azure and length-only loaders', () => {
  it.skipIf(AZURE_SKIPPED !== '')(`loads the Azure conversation trace with arrivals relative to the first row${AZURE_SKIPPED}`, () => {
    const t = loadAzureTrace(`${SHARED}/azure_llm_2023_conv.csv`);
    expect(t.requests.length).toBe(19366);
    expect(t.requests[0]!.arrivalUs).toBe(0);
    expect(t.requests[0]!.promptTokens).toBe(374);
    expect(t.requests[1]!.arrivalUs).toBe(4314579); // 18:15:50.9951690 − 18:15:46.6805900
  });
  it('rejects a bad Azure row with its line', () => {
    const e = caught(() => loadAzureTrace({ text: 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,10,5\n2023-11-16 18:15:47.68,x,5\n', name: 'az.csv' }));
    expect((e as Error).message).toBe('az.csv:3: ContextTokens must be a positive integer, got "x"');
  });
  it.skipIf(SHAREGPT_SKIPPED !== '')(`loads ShareGPT lengths with seeded Poisson arrivals${SHAREGPT_SKIPPED}`, () => {
    const opts = { arrivals: { kind: 'poisson' as const, ratePerSec: 10 }, seed: 3, limit: 2000 };
    const a = loadLengthCsv(`${SHARED}/sharegpt_8k_filtered_stats_llama2_tokenizer.csv`, opts);
    const b = loadLengthCsv(`${SHARED}/sharegpt_8k_filtered_stats_llama2_tokenizer.csv`, opts);
    expect(a.requests.length).toBe(2000);
    expect(a.requests.map((r) => r.arrivalUs)).toEqual(b.requests.map((r) => r.arrivalUs));
    expect(a.requests[0]!.promptTokens).toBe(74);
    expect(a.requests[0]!.outputTokens).toBe(918);
    const last = a.requests[1999]!.arrivalUs / 1e6;
    expect(last).toBeGreaterThan(180);
    expect(last).toBeLessThan(220);
  });
});

describe('arrival processes', () => {
  const stats = (xs: Float64Array) => {
    const gaps = Array.from(xs, (x, i) => x - (i === 0 ? 0 : (xs[i - 1] as number)));
    const m = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const v = gaps.reduce((a, b) => a + (b - m) ** 2, 0) / gaps.length;
    return { mean: m, cv: Math.sqrt(v) / m };
  };
  it('Poisson gaps have the mean of 1/rate and cv ≈ 1', () => {
    const s = stats(generateArrivals(20000, { kind: 'poisson', ratePerSec: 5 }, 1));
    expect(Math.abs(s.mean / 200_000 - 1)).toBeLessThan(0.03);
    expect(Math.abs(s.cv - 1)).toBeLessThan(0.05);
  });
  it('Gamma gaps have the requested cv', () => {
    const s = stats(generateArrivals(20000, { kind: 'gamma', ratePerSec: 5, cv: 3 }, 2));
    expect(Math.abs(s.mean / 200_000 - 1)).toBeLessThan(0.08);
    expect(Math.abs(s.cv - 3)).toBeLessThan(0.3);
  });
  it('rejects a non-positive rate', () => {
    expect(isKvmgrError(caught(() => generateArrivals(3, { kind: 'poisson', ratePerSec: -1 }, 1)), 'KVMGR_INVALID_ARGUMENT')).toBe(true);
  });
});
