import { isKvmgrError } from '@kvmgr/core';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluatePrequential } from './evaluate.js';
import { createPredictor } from './registry.js';
import { type TraceRecord, loadTrace, parseAzureTrace, parseMooncakeTrace } from './traces.js';
import { sharedDir } from '../../../scripts/shared-data.js';

const TRACES = join(sharedDir(), 'traces');
const MOONCAKE = join(TRACES, 'mooncake_fast25_conversation_trace.jsonl');
const AZURE = join(TRACES, 'azure_llm_2023_conv.csv');
/** The real traces are in the shared data folder (`$KVMGR_SHARED`, else ../shared beside the repository); a clone without it skips their tests and says why. */
const MISSING = [MOONCAKE, AZURE].find((f) => !existsSync(f));
const SKIPPED = MISSING === undefined ? '' : ` (skipped: ${MISSING} not found; it is in the shared data beside the repository)`;
/** The bundled Mooncake sample: the full trace's first 3,000 lines, unchanged. */
const SAMPLE = new URL('../../cli/data/mooncake-conversation-sample.jsonl', import.meta.url).pathname;

function codeAndLine(fn: () => unknown): [string, unknown] {
  try {
    fn();
  } catch (e) {
    if (isKvmgrError(e)) return [e.code, e.details.line];
    throw e;
  }
  throw new Error('did not throw');
}

describe('parseMooncakeTrace', () => {
  const text = [
    '{"timestamp": 0, "input_length": 1000, "output_length": 50, "hash_ids": [0, 1]}',
    '{"timestamp": 5, "input_length": 900, "output_length": 70, "hash_ids": [0, 9]}',
    '',
    '{"timestamp": 9, "input_length": 1600, "output_length": 30, "hash_ids": [0, 1, 2, 3]}',
    '{"timestamp": 12, "input_length": 2100, "output_length": 40, "hash_ids": [0, 1, 2, 3, 4, 5]}',
  ].join('\n');

  it('derives sessions and their history from shared leading blocks', () => {
    const r = parseMooncakeTrace(text);
    expect(r.map((x) => x.actualOutputTokens)).toEqual([50, 70, 30, 40]);
    expect(r.map((x) => x.features.sessionId)).toEqual(['c0', 'c1', 'c0', 'c0']);
    expect(r.map((x) => x.features.sessionHistory)).toEqual([[], [], [50], [50, 30]]);
    expect(r[3]?.features).toMatchObject({ promptTokens: 2100, arrivalMs: 12, prefixId: 0 });
  });

  it('reports a bad row with its line number as KVMGR_BAD_TRACE', () => {
    expect(codeAndLine(() => parseMooncakeTrace(`${text}\n{"timestamp": 1, "input_length": -3, "output_length": 1, "hash_ids": []}`))).toEqual([
      'KVMGR_BAD_TRACE',
      6,
    ]);
    expect(codeAndLine(() => parseMooncakeTrace('{"timestamp": 1,'))).toEqual(['KVMGR_BAD_TRACE', 1]);
    expect(codeAndLine(() => parseMooncakeTrace('\n{"timestamp": 1, "input_length": 3, "output_length": 1, "hash_ids": ["a"]}'))).toEqual([
      'KVMGR_BAD_TRACE',
      2,
    ]);
  });
});

describe('parseAzureTrace', () => {
  it('parses rows with times relative to the first', () => {
    const r = parseAzureTrace('TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n');
    expect(r).toHaveLength(2);
    expect(r[1]?.features.promptTokens).toBe(396);
    expect(r[1]?.actualOutputTokens).toBe(109);
    expect(r[1]?.features.arrivalMs).toBeCloseTo(4314.579, 3);
  });

  it('reports a bad header or row with its line number', () => {
    expect(codeAndLine(() => parseAzureTrace('a,b\n'))).toEqual(['KVMGR_BAD_TRACE', 1]);
    const h = 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n';
    expect(codeAndLine(() => parseAzureTrace(`${h}2023-11-16 18:15:47,x,2\n`))).toEqual(['KVMGR_BAD_TRACE', 3]);
    expect(codeAndLine(() => parseAzureTrace(`${h}2023-11-16 18:15:47,3,\n`))).toEqual(['KVMGR_BAD_TRACE', 3]);
    expect(codeAndLine(() => parseAzureTrace(`${h}yesterday,3,4\n`))).toEqual(['KVMGR_BAD_TRACE', 3]);
  });
});

describe('loadTrace on the bundled Mooncake sample', () => {
  it('reads every row with the sessions of the full trace\'s first 3,000 requests', () => {
    const sample = loadTrace(SAMPLE);
    expect(sample).toHaveLength(3000);
    expect(sample[0]?.actualOutputTokens).toBe(500);
    expect(sample[0]?.features).toMatchObject({ promptTokens: 6758, arrivalMs: 0, prefixId: 0 });
    expect(sample.filter((r) => (r.features.sessionHistory?.length ?? 0) > 0).length).toBeGreaterThan(0);
  });

  it('rejects an unknown extension and a missing file', () => {
    expect(() => loadTrace(new URL('../../cli/data/README.md', import.meta.url).pathname)).toThrow(expect.objectContaining({ code: 'KVMGR_BAD_TRACE' }));
    expect(() => loadTrace(SAMPLE.replace(/\.jsonl$/, '-nope.jsonl'))).toThrow(expect.objectContaining({ code: 'KVMGR_NOT_FOUND' }));
  });
});

describe.skipIf(MISSING !== undefined)(`loadTrace on the real traces${SKIPPED}`, () => {
  let mooncake: TraceRecord[] = [];
  let azure: TraceRecord[] = [];
  beforeAll(() => {
    mooncake = loadTrace(MOONCAKE);
    azure = loadTrace(AZURE);
  });

  it('reads every row', () => {
    expect(mooncake).toHaveLength(12031);
    expect(azure).toHaveLength(19366);
    // 4,658 Mooncake requests continue an earlier conversation
    expect(mooncake.filter((r) => (r.features.sessionHistory?.length ?? 0) > 0)).toHaveLength(4658);
  });

  it('rejects unknown extensions and missing files', () => {
    expect(() => loadTrace(join(TRACES, 'README.md'))).toThrow(expect.objectContaining({ code: 'KVMGR_BAD_TRACE' }));
    expect(() => loadTrace(join(TRACES, 'nope.csv'))).toThrow(expect.objectContaining({ code: 'KVMGR_NOT_FOUND' }));
  });

  it('check 1 (subset): on the first 6000 Azure requests gbdt beats global-median by ≥ 40 % MAE with τ ≥ 0.4 and calibrated p90', () => {
    const part = azure.slice(0, 6000);
    const base = evaluatePrequential(part, createPredictor('global-median'));
    const gbdt = evaluatePrequential(part, createPredictor('gbdt'));
    expect(gbdt.mae).toBeLessThanOrEqual(0.6 * base.mae);
    expect(gbdt.kendallTau).toBeGreaterThanOrEqual(0.4);
    expect(gbdt.p90Coverage).toBeGreaterThanOrEqual(0.88);
    expect(gbdt.p90Coverage).toBeLessThanOrEqual(0.92);
  });
});
