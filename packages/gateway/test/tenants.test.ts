/**
 * Per-tenant fairness (VTC) on real sockets: one engine server with a tiny KV pool (16 blocks ×
 * 16 tokens, two requests at a time), its steps stretched so that requests queue at the gateway.
 * One tenant floods, a quiet one arrives behind its backlog; the order in which the engine
 * receives the requests is the gateway's release order.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, createGateway } from '../src/index.js';
import { apiKeyTenant } from '../src/tenants.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet, until } from './helpers.js';

const FLOOD = 8;
const QUIET = 2;

async function run(fairness: boolean): Promise<{ order: string[]; logs: LogSink; tenants: { tenant: string; requests: number; deferred: number; service: number }[] }> {
  const fleet = await startFleet(1, { numGpuBlocks: 16, timeScale: 1, stallMs: 15 });
  const logs = new LogSink();
  let gw: Gateway | undefined;
  try {
    gw = await createGateway(
      { server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), admission: { maxQueue: 32, maxWaitMs: 60_000 }, tenants: { enabled: fairness } },
      { logStream: logs },
    );
    const g = gw;
    const flood = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'sk-flood', maxRetries: 0, defaultHeaders: { 'x-tenant-id': 'flood' } });
    const quiet = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'sk-quiet-secret', maxRetries: 0 });
    // 60 prompt + 40 output = 100 KV tokens each: two fit in the 256-token pool
    const prompt = (i: number) => Array.from({ length: 60 }, (_, k) => 1000 * (i + 1) + k);
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < FLOOD; i++) all.push(flood.completions.create({ model: MODEL, prompt: prompt(i), max_tokens: 40 }, { headers: { 'x-request-id': `flood-${i}` } }));
    await until(() => g.state().queueDepth === FLOOD - 2, 5000, 'the flood to queue');
    for (let i = 0; i < QUIET; i++) all.push(quiet.completions.create({ model: MODEL, prompt: prompt(100 + i), max_tokens: 40 }, { headers: { 'x-request-id': `quiet-${i}` } }));
    await until(() => g.state().queueDepth === FLOOD - 2 + QUIET, 5000, 'the quiet requests to queue');
    await Promise.all(all);
    const order = (fleet[0] as TestEngine).seen.map((r) => r.requestId ?? '').filter((id) => id.startsWith('flood-') || id.startsWith('quiet-'));
    return { order, logs, tenants: g.state().tenants };
  } finally {
    await gw?.close();
    for (const f of fleet) await f.close();
  }
}

describe('per-tenant fairness in the DEFER queue (real HTTP)', () => {
  let fair: Awaited<ReturnType<typeof run>>;
  let fifo: Awaited<ReturnType<typeof run>>;
  beforeAll(async () => {
    fair = await run(true);
    fifo = await run(false);
  }, 60_000);
  afterAll(() => undefined);

  it('the quiet tenant’s requests are released ahead of the flooding tenant’s backlog', () => {
    expect(fair.order).toHaveLength(FLOOD + QUIET);
    const lastQuiet = Math.max(fair.order.indexOf('quiet-0'), fair.order.indexOf('quiet-1'));
    const floodAfter = fair.order.slice(lastQuiet + 1).filter((id) => id.startsWith('flood-')).length;
    // VTC alternates once the quiet tenant is lifted to the flooder's counter: both quiet
    // requests go within the next four releases, ahead of the flood's last four
    expect(floodAfter).toBeGreaterThanOrEqual(4);
    // the same arrivals without fairness: deadline (arrival) order, the quiet tenant last
    expect(fifo.order.slice(-QUIET).sort()).toEqual(['quiet-0', 'quiet-1']);
  });

  it('tenants are named by header or by a hash of the API key, never the key in clear', () => {
    const byName = new Map(fair.tenants.map((t) => [t.tenant, t]));
    expect(byName.get('flood')).toMatchObject({ requests: FLOOD, deferred: FLOOD - 2 });
    expect(byName.get(apiKeyTenant('sk-quiet-secret'))).toMatchObject({ requests: QUIET, deferred: QUIET });
    // 60 prompt tokens ×1 + 40 completion tokens ×2 per request
    expect(byName.get('flood')?.service).toBe(FLOOD * (60 + 80));
    expect(fair.logs.request('quiet-0')?.['tenant']).toBe(apiKeyTenant('sk-quiet-secret'));
    expect(JSON.stringify(fair.logs.lines)).not.toContain('sk-quiet-secret');
  });
});
