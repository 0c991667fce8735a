import { readFileSync } from 'node:fs';
import { parseExposition } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { mapLmdeployMetrics } from './metrics.js';

describe('mapLmdeployMetrics', () => {
  it('maps a two-engine LMDeploy exposition to an exact snapshot', () => {
    const expo = parseExposition(readFileSync(new URL('./fixtures/lmdeploy-dp2.prom', import.meta.url), 'utf8'));
    expect(mapLmdeployMetrics(expo, { instanceId: 'lm-0', role: 'both', timeUs: 5 })).toEqual({
      instanceId: 'lm-0',
      role: 'both',
      timeUs: 5,
      engine: 'lmdeploy',
      kvUtilization: 0.375,
      waiting: 3,
      running: 12,
      pendingTransferLatency: 0,
      kvThrashingRate: 0,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      prefixCacheHitRate: 0.4,
      missing: ['pendingTransferLatency', 'kvThrashingRate', 'prefixCacheQueries', 'prefixCacheHits'],
    });
  });

  it('rejects text of another engine', () => {
    expect(() => mapLmdeployMetrics(parseExposition('tgi_queue_size 1\n'), { instanceId: 'x', role: 'both', timeUs: 0 })).toThrow(/no LMDeploy metrics/);
  });
});
