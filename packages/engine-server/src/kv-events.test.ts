import { KvEventSubscriber } from '@kvmgr/adapter-vllm';
import { blockKeyToU64 } from '@kvmgr/core';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type EngineServer, createEngineServer } from './index.js';

let server: EngineServer;
let sub: KvEventSubscriber;
const rebuilt = new Set<bigint>();
let cleared = 0;

beforeAll(async () => {
  server = await createEngineServer({
    port: 0,
    timeScale: 20,
    numGpuBlocks: 24,
    kvEventsConfig: JSON.stringify({ enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://127.0.0.1:0', replay_endpoint: 'tcp://127.0.0.1:0', topic: '' }),
  });
  sub = new KvEventSubscriber({
    endpoints: server.kvEventsEndpoint as string,
    replayEndpoints: server.replayEndpoint as string,
    onBatch: ({ batch }) => {
      for (const e of batch.events) {
        if (e.type === 'BlockStored') for (const h of e.blockHashes) rebuilt.add(h);
        else if (e.type === 'BlockRemoved') for (const h of e.blockHashes) rebuilt.delete(h);
        else if (e.type === 'AllBlocksCleared') {
          rebuilt.clear();
          cleared++;
        }
      }
    },
  });
});
afterAll(async () => {
  await sub?.close();
  await server?.close();
});

function engineCachedSet(s: EngineServer): Set<bigint> {
  const out = new Set<bigint>();
  s.core.kv.forEachCachedBlock((_b, hi, lo) => out.add(blockKeyToU64(hi, lo)));
  return out;
}

describe('KV events over ZMQ', () => {
  it('exposes the bound endpoints (port 0 resolved)', () => {
    expect(server.kvEventsEndpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
    expect(server.replayEndpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
  });

  it('a subscriber rebuilds exactly the engine cached block set through evictions and a prefix-cache reset', async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const model = server.config.servedModelName;
    // 24 blocks of 16 tokens; each prompt is 7 blocks, so the pool evicts cached prefixes as it goes.
    const prompt = (k: number) => Array.from({ length: 112 }, (_, i) => 1000 + k * 200 + i);
    for (const k of [0, 1, 2, 0, 3, 4, 1, 5]) await client.completions.create({ model, prompt: prompt(k), max_tokens: 4 });
    // Two at once: they compete for blocks.
    await Promise.all([6, 7].map((k) => client.completions.create({ model, prompt: prompt(k), max_tokens: 20 })));
    expect(server.core.kv.stats.evictedBlocks).toBeGreaterThan(0);
    await vi.waitFor(() => expect(rebuilt).toEqual(engineCachedSet(server)), { timeout: 10_000, interval: 20 });
    expect(rebuilt.size).toBeGreaterThan(0);

    const reset = await fetch(`${server.url}/reset_prefix_cache`, { method: 'POST' });
    expect(reset.status).toBe(200);
    expect(server.core.kv.numCachedBlocks).toBe(0);
    for (const k of [8, 0]) await client.completions.create({ model, prompt: prompt(k), max_tokens: 3 });
    await vi.waitFor(() => expect(cleared).toBe(1), { timeout: 10_000, interval: 20 });
    await vi.waitFor(() => expect(rebuilt).toEqual(engineCachedSet(server)), { timeout: 10_000, interval: 20 });
    expect(rebuilt.size).toBeGreaterThan(0);
    expect(sub.stats().lost).toBe(0);
  });
});

describe('KV events off', () => {
  it('a server without a KV-event publisher has the core build no events; with one it does', async () => {
    const off = await createEngineServer({ port: 0, timeScale: 20, numGpuBlocks: 24 });
    try {
      expect(off.kvEventsEndpoint).toBeUndefined();
      expect(off.core.kv.onEvent).toBeUndefined();
      // The cache itself still works: a prompt is cached and hit again.
      const model = off.config.servedModelName;
      const body = JSON.stringify({ model, prompt: Array.from({ length: 64 }, (_, i) => 3000 + i), max_tokens: 2 });
      for (let k = 0; k < 2; k++) await (await fetch(`${off.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).json();
      expect(off.core.kv.numCachedBlocks).toBeGreaterThan(0);
      expect(off.core.metrics.prefixCacheHits).toBeGreaterThan(0);
    } finally {
      await off.close();
    }
    expect(server.core.kv.onEvent).toBeTypeOf('function');
  });
});
