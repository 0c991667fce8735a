import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { histogramTotals, parseExposition } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { createVllmMetricsRegistry, setVllmCacheConfig } from './exposition.js';
import { mapVllmMetrics } from './metrics.js';

const PROMTOOL = '/usr/bin/promtool';
const hasPromtool = existsSync(PROMTOOL);
if (!hasPromtool && !process.env.CI) {
  console.warn(`exposition.test.ts: skipping the promtool check: ${PROMTOOL} is missing (install Debian/Ubuntu package "prometheus")`);
}

/** Runs `promtool check metrics` with `text` on stdin. */
function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

async function sampleRegistry() {
  const m = createVllmMetricsRegistry({ modelName: 'kvmgr/test-model', engine: '0' });
  m.numRequestsRunning.set(m.labels, 7);
  m.numRequestsWaiting.set(m.labels, 2);
  m.numRequestsWaitingByReason.set({ ...m.labels, reason: 'capacity' }, 2);
  m.kvCacheUsagePerc.set(m.labels, 0.375);
  m.prefixCacheQueries.inc(m.labels, 4096);
  m.prefixCacheHits.inc(m.labels, 1024);
  m.promptTokensCached.inc(m.labels, 1024);
  m.numPreemptions.inc(m.labels, 3);
  m.promptTokens.inc(m.labels, 4096);
  m.generationTokens.inc(m.labels, 512);
  m.requestSuccess.inc({ ...m.labels, finished_reason: 'stop' }, 5);
  m.requestSuccess.inc({ ...m.labels, finished_reason: 'length' }, 1);
  for (const s of [0.05, 0.2, 3]) m.timeToFirstToken.observe(m.labels, s);
  m.interTokenLatency.observe(m.labels, 0.02);
  m.e2eRequestLatency.observe(m.labels, 4.2);
  m.requestQueueTime.observe(m.labels, 0.4);
  m.iterationTokens.observe(m.labels, 300);
  setVllmCacheConfig(m, { blockSize: 16, numGpuBlocks: 1000, enablePrefixCaching: true });
  return { m, text: await m.registry.metrics() };
}

describe('createVllmMetricsRegistry', () => {
  it.runIf(hasPromtool || process.env.CI)('renders text that promtool parses; only the lint of vLLM names themselves is reported', async () => {
    // In CI a missing promtool fails here (spawn ENOENT) instead of skipping.
    const { text } = await sampleRegistry();
    const { code, output } = await promtoolCheck(text);
    // 0 = clean, 3 = lint findings only; 1 = the text does not parse.
    expect([0, 3], output).toContain(code);
    const findings = output.split('\n').filter((l) => l.trim() !== '');
    for (const f of findings) {
      expect(f).toMatch(/^vllm:\S+ metric names should not contain ':'$|^vllm:iteration_tokens_total non-counter metrics should not have "_total" suffix$/);
    }
  });

  it('uses vLLM names, types, labels and TTFT buckets', async () => {
    const { text } = await sampleRegistry();
    expect(text).toContain('# TYPE vllm:prefix_cache_queries_total counter');
    expect(text).toContain('# TYPE vllm:time_to_first_token_seconds histogram');
    expect(text).toContain('vllm:request_success_total{model_name="kvmgr/test-model",engine="0",finished_reason="stop"} 5');
    expect(text).toContain('vllm:time_to_first_token_seconds_bucket{le="0.06",model_name="kvmgr/test-model",engine="0"} 1');
    expect(text).toContain('vllm:time_to_first_token_seconds_bucket{le="2560",model_name="kvmgr/test-model",engine="0"} 3');
    expect(text).toMatch(/vllm:cache_config_info\{block_size="16",cache_dtype="auto",enable_prefix_caching="True",.*num_gpu_blocks="1000",engine="0"\} 1/);
  });

  it('round trip: exposition → vLLM scraper → the values put in', async () => {
    const { text } = await sampleRegistry();
    const expo = parseExposition(text);
    expect(mapVllmMetrics(expo, { instanceId: 'self', role: 'decode', timeUs: 7 })).toEqual({
      instanceId: 'self',
      role: 'decode',
      timeUs: 7,
      engine: 'vllm',
      kvUtilization: 0.375,
      waiting: 2,
      running: 7,
      pendingTransferLatency: 0,
      kvThrashingRate: 0,
      prefixCacheQueries: 4096,
      prefixCacheHits: 1024,
      totalBlocks: 1000,
      freeBlocks: 625,
      blockSize: 16,
      preemptions: 3,
      promptTokensCached: 1024,
      waitingByReason: { capacity: 2 },
      missing: ['pendingTransferLatency', 'kvThrashingRate'],
    });
    const ttft = histogramTotals(expo, 'vllm:time_to_first_token_seconds');
    expect(ttft?.count).toBe(3);
    expect(ttft?.sum).toBeCloseTo(3.25, 12);
    expect(ttft?.buckets.find((b) => b.le === 0.25)?.count).toBe(2);
  });
});
