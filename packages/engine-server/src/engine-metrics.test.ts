/**
 * The exporter buffers histogram observations off the step loop and hands them to prom-client at
 * `sync()` (the `/metrics` route's read): a scrape still sees every observation, each histogram's
 * sum is the same floating-point sum as observing one by one, and a server that is never scraped
 * keeps a bounded buffer.
 */
import { parseExposition } from '@kvmgr/core';
import { EngineCore } from '@kvmgr/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineMetricsExporter } from './engine-metrics.js';
import { type EngineServer, createEngineServer } from './index.js';

/** The count and sum of a histogram family, read without `sync()`. */
async function histogramOf(exporter: EngineMetricsExporter, name: 'interTokenLatency'): Promise<{ count: number; sum: number }> {
  const values = (await exporter.metrics[name].get()).values;
  const count = values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
  const sum = values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
  return { count, sum };
}

describe('EngineMetricsExporter', () => {
  it('inter-token gaps reach the histogram at sync(), in order (same sum), and a full buffer drains by itself in the next turn', async () => {
    const exporter = new EngineMetricsExporter({ core: new EngineCore({ kv: { numBlocks: 8, blockSize: 16 }, stepTimeUs: () => 1000 }), modelName: 'm', blockSize: 16, numGpuBlocks: 8 });
    const gapsUs = Array.from({ length: 5000 }, (_, i) => 7000 + ((i * 7919) % 1000) / 3);
    for (const us of gapsUs.slice(0, 100)) exporter.observeItl(us);
    expect((await histogramOf(exporter, 'interTokenLatency')).count).toBe(0); // buffered
    exporter.sync();
    expect((await histogramOf(exporter, 'interTokenLatency')).count).toBe(100);
    for (const us of gapsUs.slice(100, 100 + 4096)) exporter.observeItl(us);
    // The buffer (4096 per histogram) is full: it is not drained in the hook that filled it (the
    // step end's other tokens come first) but in the next event-loop turn, without a sync.
    expect((await histogramOf(exporter, 'interTokenLatency')).count).toBe(100);
    await new Promise((resolve) => setImmediate(resolve));
    expect((await histogramOf(exporter, 'interTokenLatency')).count).toBe(100 + 4096);
    for (const us of gapsUs.slice(100 + 4096)) exporter.observeItl(us);
    expect((await histogramOf(exporter, 'interTokenLatency')).count).toBe(100 + 4096);
    exporter.sync();
    let sum = 0;
    for (const us of gapsUs) sum += us / 1e6;
    expect(await histogramOf(exporter, 'interTokenLatency')).toEqual({ count: 5000, sum });
  });
});

describe('/metrics of a server', () => {
  let server: EngineServer;
  beforeAll(async () => {
    server = await createEngineServer({ port: 0, timeScale: 20, numGpuBlocks: 512 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('counts every streamed gap, step and finished request', async () => {
    const n = 4;
    const maxTokens = 6;
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const res = await fetch(`${server.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: `request ${i} of the metrics test`, max_tokens: maxTokens, stream: true }),
        });
        await res.text();
      }),
    );
    const { samples } = parseExposition(await (await fetch(`${server.url}/metrics`)).text());
    const value = (name: string): number => samples.find((s) => s.name === name)?.value ?? Number.NaN;
    expect(value('vllm:inter_token_latency_seconds_count')).toBe(n * (maxTokens - 1));
    expect(value('vllm:time_to_first_token_seconds_count')).toBe(n);
    expect(value('vllm:e2e_request_latency_seconds_count')).toBe(n);
    expect(value('vllm:iteration_tokens_total_count')).toBe(server.stats().steps);
    expect(value('vllm:generation_tokens_total')).toBe(n * maxTokens);
  });
});
