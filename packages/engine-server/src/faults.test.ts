import { mapVllmMetrics } from '@kvmgr/adapter-vllm';
import { parseExposition } from '@kvmgr/core';
import OpenAI from 'openai';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { type EngineServer, createEngineServer } from './index.js';

const started: EngineServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((s) => s.close()));
});

async function start(options: Parameters<typeof createEngineServer>[0]): Promise<{ server: EngineServer; client: OpenAI }> {
  const server = await createEngineServer({ port: 0, ...options });
  started.push(server);
  return { server, client: new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 }) };
}

async function scrape(server: EngineServer) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return { snap: mapVllmMetrics(parseExposition(text), { instanceId: 'e', role: 'both', timeUs: 0 }), text };
}

describe('client disconnect', () => {
  it('a client that disconnects mid-stream aborts its request and frees its blocks (metrics show it)', async () => {
    const { server, client } = await start({ timeScale: 1, numGpuBlocks: 256 });
    const model = server.config.servedModelName;
    const stream = await client.completions.create({ model, prompt: Array.from({ length: 200 }, (_, i) => i + 5), max_tokens: 2000, stream: true });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    const during = await scrape(server);
    expect(during.snap.running).toBe(1);
    expect(during.snap.kvUtilization).toBeGreaterThan(0);
    expect(server.core.kv.numHeldBlocks).toBeGreaterThan(0);
    stream.controller.abort();
    await vi.waitFor(
      async () => {
        const { snap, text } = await scrape(server);
        expect(snap.running).toBe(0);
        expect(snap.kvUtilization).toBe(0);
        expect(text).toMatch(/vllm:request_success_total\{[^}]*finished_reason="abort"\} 1/);
      },
      { timeout: 10_000, interval: 20 },
    );
    expect(server.core.kv.numHeldBlocks).toBe(0);
    server.core.kv.verify();
  });
});

describe('fault knobs', () => {
  it('dieAfter: the N-th request kills the server mid-stream; the client sees an error, not a hang', async () => {
    let died = 0;
    const { server, client } = await start({ timeScale: 2, numGpuBlocks: 256, dieAfter: 2, onDie: () => died++ });
    const model = server.config.servedModelName;
    const ok = await client.completions.create({ model, prompt: 'first', max_tokens: 3 });
    expect(ok.usage?.completion_tokens).toBe(3);
    const consume = async () => {
      const stream = await client.completions.create({ model, prompt: 'second', max_tokens: 500, stream: true });
      let n = 0;
      for await (const _ of stream) n++;
      return n;
    };
    await expect(consume()).rejects.toThrow();
    await vi.waitFor(() => expect(died).toBe(1), { timeout: 5_000, interval: 10 });
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });

  it('failRate 1: every generation request gets 500 and reaches no engine', async () => {
    const { server } = await start({ numGpuBlocks: 64, failRate: 1 });
    const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', max_tokens: 2 }) });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { code: string; type: string } }).error).toMatchObject({ code: 'injected_failure', type: 'server_error' });
    expect(server.core.metrics.steps).toBe(0);
  });

  it('maxWaiting: a request beyond the waiting bound gets 429', async () => {
    // Each step stalls 1 s: the first request holds the step, the next one waits, a third is refused.
    // The second waits until the next step starts, and the third must arrive before that: with
    // 300 ms steps, two loopback requests slowed down by a loaded machine (or straddling a step
    // start) both got 200 (checked: 650 ms late fails at 300 ms, passes at 1 s).
    const { server, client } = await start({ numGpuBlocks: 64, timeScale: 1, stallMs: 1000, maxWaiting: 1 });
    const model = server.config.servedModelName;
    const first = client.completions.create({ model, prompt: 'a', max_tokens: 2 });
    await vi.waitFor(() => expect(server.core.numRunning).toBe(1), { timeout: 5_000, interval: 5 });
    const body = JSON.stringify({ prompt: 'b', max_tokens: 1 });
    const send = () => fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const [b, c] = await Promise.all([send(), send()]);
    const statuses = [b.status, c.status].sort();
    expect(statuses).toEqual([200, 429]);
    const refused = b.status === 429 ? b : c;
    expect(((await refused.json()) as { error: { type: string } }).error.type).toBe('rate_limit_error');
    await first;
  });

  it('stallMs stretches every step by at least that much wall time', async () => {
    const { server, client } = await start({ numGpuBlocks: 64, timeScale: 100, stallMs: 25 });
    const t0 = performance.now();
    await client.completions.create({ model: server.config.servedModelName, prompt: 'x', max_tokens: 4 });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(4 * 25);
  });
});
