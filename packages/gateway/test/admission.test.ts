/**
 * Admission on real sockets: one engine server with a tiny KV pool (16 blocks × 16 tokens), its
 * steps stretched (`stallMs`) so that requests overlap.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, createGateway } from '../src/index.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet, until } from './helpers.js';

describe('admission under overload with a tiny pool', () => {
  let fleet: TestEngine[];
  let gw: Gateway;
  const logs = new LogSink();
  beforeAll(async () => {
    fleet = await startFleet(1, { numGpuBlocks: 16, timeScale: 1, stallMs: 15 });
    gw = await createGateway(
      { server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), admission: { maxQueue: 1, maxWaitMs: 10_000, retryAfterS: 2 } },
      { logStream: logs },
    );
  });
  afterAll(async () => {
    await gw?.close();
    for (const f of fleet ?? []) await f.close();
  });

  const send = (prompt: number[], maxTokens: number, id: string) =>
    request(`${gw.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model: MODEL, prompt, max_tokens: maxTokens }),
    });

  it('admits what fits, defers one, rejects the rest with 429 + Retry-After; the deferred one runs when KV frees', async () => {
    expect(gw.state().endpoints[0]?.capacityTokens).toBe(256);
    // each needs 60 prompt + 40 output = 100 KV tokens: two fit in 256, the third waits, the rest are refused
    const prompts = Array.from({ length: 6 }, (_, i) => Array.from({ length: 60 }, (_, k) => 1000 * (i + 1) + k));
    const res = await Promise.all(prompts.map((p, i) => send(p, 40, `adm-${i}`)));
    const statuses = res.map((r) => r.statusCode);
    const bodies = await Promise.all(res.map((r) => r.body.json() as Promise<{ error?: { type: string; code: string } }>));
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(3);
    res.forEach((r, i) => {
      if (r.statusCode === 429) {
        expect(r.headers['retry-after']).toBe('2');
        expect(bodies[i]?.error).toMatchObject({ type: 'rate_limit_error', code: 'queue_full' });
      }
    });
    const admissions = res.map((_, i) => (logs.request(`adm-${i}`)?.['decision'] as { admission?: string } | undefined)?.admission).filter((a) => a !== undefined);
    expect(admissions.sort()).toEqual(['admit', 'admit', 'defer']);
    // the engine never ran more than the pool holds
    expect((fleet[0] as TestEngine).generations).toBe(3);
    expect((fleet[0] as TestEngine).server.core.metrics.numPreemptions).toBe(0);
    const m = await (await request(`${gw.url}/metrics`)).body.text();
    expect(m).toMatch(/kvmgr_gateway_rejections_total\{reason="queue_full"\} 3/);
    expect(m).toMatch(/kvmgr_gateway_admission_decisions_total\{decision="defer"\} 1/);
    await until(() => gw.state().endpoints[0]?.inFlight === 0, 3000, 'drain');
  });

  it('a request larger than any endpoint KV pool is refused with 400, not queued', async () => {
    const r = await send(Array.from({ length: 200 }, (_, k) => k), 100, 'too-big');
    expect(r.statusCode).toBe(400);
    expect(((await r.body.json()) as { error: { code: string } }).error.code).toBe('context_length_exceeded');
  });
});
