import { readFileSync } from 'node:fs';
import { isKvmgrError, parseExposition } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { createTgiMetricsMapper, mapTgiMetrics } from './metrics.js';

const ctx = { instanceId: 'tgi-0', role: 'both' as const, timeUs: 3 };
const expo = parseExposition(readFileSync(new URL('./fixtures/tgi.prom', import.meta.url), 'utf8'));

describe('TGI metrics', () => {
  it('estimates KV utilization as batch × mean(input + max_new_tokens) / capacity and marks it estimated', () => {
    // 8 × (600 + 400) / 16000 = 0.5
    expect(createTgiMetricsMapper({ tokenCapacity: 16000 })(expo, ctx)).toEqual({
      instanceId: 'tgi-0',
      role: 'both',
      timeUs: 3,
      engine: 'tgi',
      kvUtilization: 0.5,
      waiting: 5,
      running: 8,
      pendingTransferLatency: 0,
      kvThrashingRate: 0,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      preemptions: 0,
      estimated: ['kvUtilization'],
      missing: ['pendingTransferLatency', 'kvThrashingRate', 'prefixCacheQueries', 'prefixCacheHits'],
    });
  });

  it('caps the estimate at 1', () => {
    expect(createTgiMetricsMapper({ tokenCapacity: 4000 })(expo, ctx).kvUtilization).toBe(1);
  });

  it('without a capacity reports kvUtilization 0 as missing, not estimated', () => {
    const snap = mapTgiMetrics(expo, ctx);
    expect(snap.kvUtilization).toBe(0);
    expect(snap.estimated).toBeUndefined();
    expect(snap.missing).toContain('kvUtilization');
  });

  it('rejects a bad capacity and foreign text', () => {
    try {
      createTgiMetricsMapper({ tokenCapacity: 0 });
      expect.unreachable();
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
    }
    expect(() => mapTgiMetrics(parseExposition('vllm:num_requests_running 1\n'), ctx)).toThrow(/no TGI metrics/);
  });
});
