/**
 * Faults on loopback, with real engine servers: an engine killed mid-stream (`dieAfter`), an
 * engine that died between scrapes (retry before the first byte; health without traffic), a
 * client that disconnects, a KV-event message lost on the wire (healed by replay), and an
 * engine restarted on the same address (its blocks cleared in the index, then rebuilt).
 */
import { blockKeyToU64 } from '@kvmgr/core';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { type Gateway, createGateway } from '../src/index.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet, until } from './helpers.js';

const opened: { gw?: Gateway; fleet: TestEngine[] }[] = [];
afterAll(async () => {
  for (const o of opened) {
    await o.gw?.close();
    for (const f of o.fleet) await f.close();
  }
});

function clientOf(gw: Gateway): OpenAI {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
}

/** Engine block hashes the engine holds in its prefix cache now. */
function engineCached(e: TestEngine): Set<bigint> {
  const out = new Set<bigint>();
  e.server.core.kv.forEachCachedBlock((_b, hi, lo) => out.add(blockKeyToU64(hi, lo)));
  return out;
}

describe('an engine that dies', () => {
  it('killed mid-stream: the client gets an error event (no hang), and new requests avoid it at once', async () => {
    // e0 dies at the first token of its 3rd request: a warm-up (1), the doomed stream (2), a direct trigger (3)
    const victim = (await startFleet(1, { timeScale: 1, dieAfter: 3 }))[0] as TestEngine;
    const others = await startFleet(2);
    const fleet = [victim, ...others];
    const logs = new LogSink();
    const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet) }, { logStream: logs });
    opened.push({ gw, fleet });
    const client = clientOf(gw);
    const messages = [{ role: 'user' as const, content: `Tell me a long story about ${'gateways and engines '.repeat(20)}` }];
    // warm the prompt's prefix on e0 only (directly), so prefix affinity sends the doomed stream there
    const direct = new OpenAI({ baseURL: `${victim.url}/v1`, apiKey: 'x', maxRetries: 0 });
    await direct.chat.completions.create({ model: MODEL, messages, max_tokens: 1 });
    await until(() => (gw.state().endpoints[0]?.cachedBlocks ?? 0) > 0, 5000, 'e0 blocks in the index');
    const { data: stream, response } = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 400, stream: true }, { headers: { 'x-request-id': 'doomed' } }).withResponse();
    expect(response.headers.get('x-kvmgr-endpoint')).toBe('e0');
    let chunks = 0;
    const t0 = Date.now();
    const err = await (async () => {
      try {
        for await (const _ of stream) {
          if (++chunks === 3) void direct.completions.create({ model: MODEL, prompt: 'trigger', max_tokens: 1 }).catch(() => undefined);
        }
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(victim.deaths).toBe(1);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(String((err as Error).message)).toContain('mid-stream');
    expect(chunks).toBeGreaterThanOrEqual(3);
    expect(chunks).toBeLessThan(400);
    // at once (under a second here), not after the upstream headers timeout (30 s): room for a loaded machine
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(gw.state().endpoints[0]?.healthy).toBe(false);
    await until(() => logs.request('doomed') !== undefined, 2000, 'log line');
    expect(logs.request('doomed')?.['outcome']).toBe('upstream-broke-mid-stream');
    // the same prompt (best prefix on e0) now goes elsewhere, first try
    for (let i = 0; i < 6; i++) {
      const { response: r } = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 2 }, { headers: { 'x-request-id': `after-${i}` } }).withResponse();
      expect(r.headers.get('x-kvmgr-endpoint')).not.toBe('e0');
      expect(logs.request(`after-${i}`)?.['attempts']).toBeUndefined();
    }
  });

  it('died between scrapes: the next request is retried on another engine before the first byte', async () => {
    const fleet = await startFleet(2);
    const logs = new LogSink();
    // slow scrapes: the gateway learns of the death only from the failed request
    const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), scrape: { intervalMs: 60_000 }, health: { intervalMs: 60_000 } }, { logStream: logs });
    opened.push({ gw, fleet });
    const client = clientOf(gw);
    const prompt = 'Warm this prefix on one engine only, please. '.repeat(12);
    const { response } = await client.completions.create({ model: MODEL, prompt, max_tokens: 2 }, { headers: { 'x-request-id': 'warm' } }).withResponse();
    const warmName = response.headers.get('x-kvmgr-endpoint') as string;
    await until(() => (gw.state().endpoints.find((e) => e.name === warmName)?.cachedBlocks ?? 0) > 0, 5000, 'blocks in the index');
    await (fleet[Number(warmName.slice(1))] as TestEngine).close();
    const { data, response: r2 } = await client.completions.create({ model: MODEL, prompt, max_tokens: 2 }, { headers: { 'x-request-id': 'retried' } }).withResponse();
    expect(data.usage?.completion_tokens).toBe(2);
    expect(r2.headers.get('x-kvmgr-endpoint')).not.toBe(warmName);
    const line = logs.request('retried') as Record<string, unknown>;
    const attempts = line['attempts'] as { endpoint: string }[];
    expect(attempts.map((a) => a.endpoint)).toEqual([warmName, r2.headers.get('x-kvmgr-endpoint')]);
    expect(gw.state().endpoints.find((e) => e.name === warmName)?.healthy).toBe(false);
  });

  it('died with no traffic: the health probe takes it out within one health interval', async () => {
    const fleet = await startFleet(2);
    // scrapes every minute: only the health interval can take it out within the bound below
    const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), scrape: { intervalMs: 60_000 }, health: { intervalMs: 500 } }, { logStream: new LogSink() });
    opened.push({ gw, fleet });
    await (fleet[1] as TestEngine).close();
    const t0 = performance.now();
    await until(() => gw.state().endpoints[1]?.healthy === false, 20_000, 'e1 out of service');
    const tookMs = performance.now() - t0;
    console.log(`dead engine taken out after ${tookMs.toFixed(0)} ms (health interval 500 ms)`);
    // One interval is the design (logged above). The bound is ten intervals, room for a loaded
    // machine's late timers (three intervals left a one-second stall to fail it), and still far
    // below the scrape interval: a probe that never runs, or runs at the scrape interval, fails it.
    expect(tookMs).toBeLessThan(10 * 500);
    const client = clientOf(gw);
    for (let i = 0; i < 4; i++) {
      const { response } = await client.completions.create({ model: MODEL, prompt: `after ${i}`, max_tokens: 1 }).withResponse();
      expect(response.headers.get('x-kvmgr-endpoint')).toBe('e0');
    }
  });

  it('a client that disconnects mid-stream aborts the engine request (its blocks are freed)', async () => {
    const fleet = await startFleet(1, { timeScale: 1 });
    const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet) }, { logStream: new LogSink() });
    opened.push({ gw, fleet });
    const stream = await clientOf(gw).completions.create({ model: MODEL, prompt: 'abort me', max_tokens: 1000, stream: true });
    let n = 0;
    for await (const _ of stream) if (++n === 2) break; // break closes the stream: the SDK aborts the HTTP request
    const engine = fleet[0] as TestEngine;
    await until(() => engine.finished.some((f) => f.reason === 'abort'), 3000, 'engine abort');
    await until(() => gw.state().endpoints[0]?.inFlight === 0, 3000, 'in-flight released');
    expect(engine.server.core.kv.numHeldBlocks).toBe(0);
    expect(gw.state().endpoints[0]?.healthy).toBe(true);
  });
});

describe('KV events', () => {
  it('a batch lost on the wire is healed by replay well within 1 s (the index equals the engine cache)', async () => {
    let droppedAt = 0;
    const fleet = await startFleet(1, {
      kvEventsDropIf: (seq) => {
        if (seq !== 2) return false;
        droppedAt = performance.now();
        return true;
      },
    });
    const engine = fleet[0] as TestEngine;
    const logs = new LogSink();
    const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet) }, { logStream: logs });
    opened.push({ gw, fleet });
    const client = clientOf(gw);
    // 64 prompt tokens + 64 output tokens: a BlockStored batch at the prefill step and one per 16 generated tokens
    let healedAt = 0;
    let stats = gw.state().endpoints[0];
    const watch = (async () => {
      await until(() => droppedAt > 0, 10_000, 'the drop');
      await until(() => (gw.state().endpoints[0]?.cachedBlocks ?? 0) === engine.server.core.kv.numCachedBlocks && engine.server.core.kv.numCachedBlocks > 0, 10_000, 'healed');
      healedAt = performance.now();
      stats = gw.state().endpoints[0];
    })();
    await client.completions.create({ model: MODEL, prompt: Array.from({ length: 64 }, (_, i) => 500 + i), max_tokens: 64 });
    await watch;
    const healMs = healedAt - droppedAt;
    console.log(`KV-event gap healed by replay ${healMs.toFixed(1)} ms after the lost batch was published`);
    // Typically tens of ms (logged above); the bound only catches a heal that waited for the next
    // scrape or resync instead of replaying, with room for a loaded CI machine.
    expect(healMs).toBeLessThan(3000);
    expect(stats?.cachedBlocks).toBe(engine.server.core.kv.numCachedBlocks);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    expect(m).toMatch(/kvmgr_gateway_kv_event_gaps_total 1/);
    expect(m).toMatch(/kvmgr_gateway_kv_event_replays_total 1/);
    expect(m).toMatch(/kvmgr_gateway_kv_event_lost_batches_total 0/);
  });

  it('an engine restarted on the same address: its blocks are cleared in the index, then rebuilt from its events', async () => {
    const fleet = await startFleet(2, { kvEvents: 'ipc' });
    const logs = new LogSink();
    const gw = await createGateway(
      { server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), routing: { scorers: 'pa:3,qd:2,kv:2', speculativeTtlMs: 0 }, scrape: { intervalMs: 200 } },
      { logStream: logs },
    );
    opened.push({ gw, fleet });
    const client = clientOf(gw);
    const prompt = (k: number) => Array.from({ length: 160 }, (_, i) => 2000 + 300 * k + i);
    const { response } = await client.completions.create({ model: MODEL, prompt: prompt(0), max_tokens: 2 }).withResponse();
    const name = response.headers.get('x-kvmgr-endpoint') as string;
    const idx = Number(name.slice(1));
    const engine = fleet[idx] as TestEngine;
    const st = () => gw.state().endpoints[idx] as { cachedBlocks: number; healthy: boolean };
    await until(() => st().cachedBlocks === engine.server.core.kv.numCachedBlocks, 5000, 'index filled');
    expect(st().cachedBlocks).toBeGreaterThanOrEqual(10);
    // a scrape after that request (a real restart takes far longer than a scrape interval)
    const servedAt = Date.now();
    await until(() => {
      const age = gw.state().endpoints[idx]?.scrapeAgeMs;
      return age != null && Date.now() - age > servedAt;
    }, 5000, 'a scrape after the request');
    await engine.restart();
    const t0 = performance.now();
    expect(engine.server.core.kv.numCachedBlocks).toBe(0);
    // the scrape sees the engine's counters go back: its blocks leave the index
    await until(() => st().cachedBlocks === 0, 5000, 'index cleared');
    console.log(`restarted engine's blocks cleared from the index ${(performance.now() - t0).toFixed(0)} ms after it came back (scrape interval 200 ms)`);
    const old = await client.completions.create({ model: MODEL, prompt: prompt(0), max_tokens: 1 }, { headers: { 'x-request-id': 'old-prompt' } });
    expect(logs.decision('old-prompt').predictedCachedTokens).toBe(0);
    expect(old.usage?.prompt_tokens_details?.cached_tokens).toBe(0);
    // new traffic: the restarted engine's events rebuild its part of the index
    for (let k = 1; k <= 6; k++) await client.completions.create({ model: MODEL, prompt: prompt(k), max_tokens: 2 });
    expect(engine.server.core.kv.numCachedBlocks).toBeGreaterThan(0);
    await until(() => st().cachedBlocks === engineCached(engine).size, 5000, 'index rebuilt');
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    expect(m).toMatch(/kvmgr_gateway_kv_event_restarts_total [12]\b/);
    expect(m).toMatch(/kvmgr_gateway_kv_event_lost_batches_total 0/);
    // and routes by the rebuilt index: the old prompt, sent again after the restart, is predicted as cached where it went
    const again = await client.completions.create({ model: MODEL, prompt: prompt(0), max_tokens: 1 }, { headers: { 'x-request-id': 'old-again' } });
    const d = logs.decision('old-again');
    expect(d.predictedCachedTokens).toBeGreaterThan(0);
    expect(again.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(Math.min(d.predictedCachedTokens, 144));
  });
});
