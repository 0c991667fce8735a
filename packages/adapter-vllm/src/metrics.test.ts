import { readFileSync } from 'node:fs';
import { isKvmgrError, parseExposition } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { mapVllmMetrics, readVllmCacheConfig } from './metrics.js';

const ctx = { instanceId: 'vllm-0', role: 'both' as const, timeUs: 42 };
const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('mapVllmMetrics', () => {
  it('maps a two-engine vLLM V1 exposition to an exact snapshot (sums over engines, mean usage)', () => {
    expect(mapVllmMetrics(parseExposition(fixture('vllm-v1-dp2.prom')), ctx)).toEqual({
      instanceId: 'vllm-0',
      role: 'both',
      timeUs: 42,
      engine: 'vllm',
      kvUtilization: 0.5,
      waiting: 4,
      running: 21,
      pendingTransferLatency: 0,
      kvThrashingRate: 0,
      prefixCacheQueries: 150000,
      prefixCacheHits: 80000,
      totalBlocks: 54000,
      freeBlocks: 27000,
      blockSize: 16,
      preemptions: 5,
      promptTokensCached: 80000,
      externalPrefixCacheQueries: 5000,
      externalPrefixCacheHits: 2000,
      waitingByReason: { capacity: 3, deferred: 1 },
      missing: ['pendingTransferLatency', 'kvThrashingRate'],
    });
  });

  it('reads the deprecated names of older V1 releases and lists what is absent', () => {
    const snap = mapVllmMetrics(
      parseExposition('vllm:gpu_cache_usage_perc{model_name="m"} 0.3\nvllm:gpu_prefix_cache_queries_total{model_name="m"} 10\nvllm:num_requests_running{model_name="m"} 2\n'),
      ctx,
    );
    expect(snap).toMatchObject({ kvUtilization: 0.3, prefixCacheQueries: 10, prefixCacheHits: 0, running: 2, waiting: 0 });
    expect(snap.missing).toEqual(['pendingTransferLatency', 'kvThrashingRate', 'waiting', 'prefixCacheHits']);
    expect(snap.totalBlocks).toBeUndefined();
  });

  it('reads cache_config_info before the KV cache is profiled (num_gpu_blocks="None")', () => {
    expect(readVllmCacheConfig(parseExposition('vllm:cache_config_info{block_size="16",enable_prefix_caching="False",num_gpu_blocks="None"} 1\n'))).toEqual({
      blockSize: 16,
      prefixCaching: false,
    });
  });

  it('rejects an exposition of another engine with KVMGR_PROTOCOL', () => {
    try {
      mapVllmMetrics(parseExposition('sglang:token_usage 0.1\n'), ctx);
      expect.unreachable();
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_PROTOCOL')).toBe(true);
      expect((e as Error).message).toMatch(/no vLLM metrics/);
    }
  });
});
