import { readFileSync } from 'node:fs';
import { histogramTotals, isKvmgrError, parseExposition } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { toSglangGenerate } from './api.js';
import { mapSglangMetrics } from './metrics.js';

const ctx = { instanceId: 'sg-0', role: 'both' as const, timeUs: 1 };
const fixture = (name: string) => parseExposition(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'));

describe('mapSglangMetrics', () => {
  it('folds TP replicas and aggregates DP ranks into an exact snapshot', () => {
    expect(mapSglangMetrics(fixture('sglang-dp2-tp2.prom'), ctx)).toEqual({
      instanceId: 'sg-0',
      role: 'both',
      timeUs: 1,
      engine: 'sglang',
      kvUtilization: 0.375,
      waiting: 3,
      running: 16,
      pendingTransferLatency: 0,
      kvThrashingRate: 0,
      prefixCacheQueries: 40000,
      prefixCacheHits: 17500,
      prefixCacheHitRate: 0.375,
      generationTokensPerS: 2000,
      blockSize: 1,
      totalBlocks: 400000,
      freeBlocks: 250000,
      missing: ['pendingTransferLatency', 'kvThrashingRate'],
    });
  });

  it('reads an old exposition (label "name", _sum before _bucket, no token counters)', () => {
    const expo = fixture('sglang-old.prom');
    expect(mapSglangMetrics(expo, ctx)).toEqual({
      instanceId: 'sg-0',
      role: 'both',
      timeUs: 1,
      engine: 'sglang',
      kvUtilization: 0.28,
      waiting: 0,
      running: 4,
      pendingTransferLatency: 0,
      kvThrashingRate: 0,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      prefixCacheHitRate: 0.0075,
      blockSize: 1,
      totalBlocks: 161721,
      freeBlocks: 116439,
      missing: ['pendingTransferLatency', 'kvThrashingRate', 'prefixCacheQueries', 'prefixCacheHits'],
    });
    expect(histogramTotals(expo, 'sglang:time_to_first_token_seconds')).toMatchObject({ count: 50, sum: 12.5 });
  });

  it('rejects a vLLM exposition with KVMGR_PROTOCOL', () => {
    expect(() => mapSglangMetrics(parseExposition('vllm:num_requests_running 1\n'), ctx)).toThrow(/no SGLang metrics/);
    try {
      mapSglangMetrics(parseExposition('vllm:num_requests_running 1\n'), ctx);
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_PROTOCOL')).toBe(true);
    }
  });
});

describe('toSglangGenerate', () => {
  it('puts text in "text" and token ids in "input_ids"', () => {
    expect(toSglangGenerate('hi', 8)).toEqual({ text: 'hi', sampling_params: { max_new_tokens: 8 } });
    expect(toSglangGenerate([1, 2, 3])).toEqual({ input_ids: [1, 2, 3], sampling_params: {} });
    expect(toSglangGenerate([[1], [2]], 4)).toEqual({ input_ids: [[1], [2]], sampling_params: { max_new_tokens: 4 } });
  });
});
