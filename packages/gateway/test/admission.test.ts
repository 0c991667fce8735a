/**
 * Admission on real sockets: one engine server with a tiny KV pool (16 blocks × 16 tokens), its
 * steps stretched (`stallMs`) so that requests overlap.
 */
import { type ClientRequest, request as httpRequest } from 'node:http';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, createGateway } from '../src/index.js';
import { GatedProxy, LogSink, MODEL, TestEngine, endpointsOf, postCompletionStatus, startFleet, until } from './helpers.js';

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

describe('admission with TTFT SLOs (openai SDK)', () => {
  let fleet: TestEngine[];
  let gw: Gateway;
  let client: OpenAI;
  const logs = new LogSink();
  beforeAll(async () => {
    // 256 KV tokens; every step ≥ 15 ms, so a 40-token answer holds its KV ≥ 600 ms
    fleet = await startFleet(1, { numGpuBlocks: 16, timeScale: 1, stallMs: 15 });
    gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), admission: { maxQueue: 16, maxWaitMs: 60_000, retryAfterS: 1 } }, { logStream: logs });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    for (const f of fleet ?? []) await f.close();
  });

  /** Streams a completion of `prompt` (token ids, `maxTokens` out); resolves to the tokens received, or the API error. */
  const streamN = async (prompt: number[], id: string, sloTtftMs: number, maxTokens: number): Promise<number | InstanceType<typeof OpenAI.APIError>> => {
    try {
      const s = await client.completions.create({ model: MODEL, prompt, max_tokens: maxTokens, stream: true }, { headers: { 'x-request-id': id, 'x-slo-ttft-ms': String(sloTtftMs) } });
      let n = 0;
      for await (const c of s) n += c.choices.length;
      return n;
    } catch (e) {
      if (e instanceof OpenAI.APIError) return e;
      throw e;
    }
  };
  const stream = (prompt: number[], id: string, sloTtftMs: number) => streamN(prompt, id, sloTtftMs, 40);
  const prompts = (n: number, base: number) => Array.from({ length: n }, (_, i) => Array.from({ length: 60 }, (_, k) => base + 1000 * i + k));
  const drained = async () => {
    await until(() => gw.state().endpoints[0]?.inFlight === 0 && gw.state().queueDepth === 0, 5000, 'in-flight and queue back to 0');
    await until(() => gw.state().endpoints[0]?.freeTokens === 256, 5000, 'all KV free again after a scrape');
  };

  it('requests that cannot be placed within their TTFT SLO get 429 with an OpenAI error body and Retry-After; nothing stays accounted', async () => {
    // 100 KV tokens each: two run at once; the other four cannot start before ~600 ms, their SLO is 250 ms
    const out = await Promise.all(prompts(6, 20_000).map((p, i) => stream(p, `slo-${i}`, 250)));
    const served = out.filter((o) => typeof o === 'number');
    const refused = out.filter((o): o is InstanceType<typeof OpenAI.APIError> => typeof o !== 'number');
    expect(served).toEqual([40, 40]);
    expect(refused).toHaveLength(4);
    for (const e of refused) {
      expect(e.status).toBe(429);
      // deferred (no service time known yet to refuse them at the door), then expired in the queue
      expect(e.error).toMatchObject({ type: 'rate_limit_error', code: 'deadline', message: 'no KV cache freed for this request in time for its TTFT SLO' });
      expect(Number(e.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    const rejectedLines = logs.lines.filter((l) => l['msg'] === 'request failed' && l['admission'] === 'reject' && String(l['reqId']).startsWith('slo-'));
    expect(rejectedLines).toHaveLength(4);
    const m = await (await request(`${gw.url}/metrics`)).body.text();
    expect(m).toMatch(/kvmgr_gateway_rejections_total\{reason="deadline"\} 4/);
    expect(m).toMatch(/kvmgr_gateway_admission_decisions_total\{decision="admit"\} 2/);
    expect(m).toMatch(/kvmgr_gateway_admission_decisions_total\{decision="reject"\} 4/);
    expect((fleet[0] as TestEngine).server.core.metrics.numPreemptions).toBe(0);
    await drained();
  });

  it('deferred requests whose SLO leaves time are served once KV frees; a refused one at the door says why', async () => {
    const out = await Promise.all(prompts(4, 40_000).map((p, i) => stream(p, `wait-${i}`, 20_000)));
    expect(out).toEqual([40, 40, 40, 40]);
    const decisions = out.map((_, i) => logs.decision(`wait-${i}`).admission).sort();
    expect(decisions).toEqual(['admit', 'admit', 'defer', 'defer']);
    await drained();
    // now the gateway knows the service time (≥ 600 ms for 200 tokens in flight: ≥ 3 ms per token to
    // drain). With two running, one queued with 190 KV tokens (a 500 ms SLO) leaves a later one
    // (600 ms SLO, after it in deadline order) ≥ 570 ms of predicted wait: refused at the door
    const running = prompts(2, 60_000).map((p, i) => stream(p, `run-${i}`, 20_000));
    await until(() => gw.state().endpoints[0]?.inFlight === 2, 5000, 'two running');
    const queued = streamN(prompts(1, 80_000)[0] as number[], 'queued-0', 500, 130);
    await until(() => gw.state().queueDepth === 1, 5000, 'one queued');
    const late = await stream(prompts(1, 90_000)[0] as number[], 'late-0', 600);
    expect(late).toBeInstanceOf(OpenAI.APIError);
    expect((late as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'deadline' });
    expect((late as InstanceType<typeof OpenAI.APIError>).message).toMatch(/cannot start within its TTFT SLO: predicted wait for the 190 KV tokens queued ahead of it \d+ ms/);
    // the queued one cannot be placed before the running ones end (≥ 600 ms): it expires
    expect(await queued).toBeInstanceOf(OpenAI.APIError);
    expect(await Promise.all(running)).toEqual([40, 40]);
    await drained();
  });
});


describe('a deferred request whose client goes away (real sockets)', () => {
  let engine: TestEngine;
  let gate: GatedProxy;
  let gw: Gateway;
  const logs = new LogSink();
  beforeAll(async () => {
    // 16 blocks × 16 = 256 KV tokens. The engine's answers go through a TCP proxy that can hold
    // them, so the requests before the deferred ones stay in flight at the gateway for as long as
    // the test wants (metrics are scraped from the engine directly)
    engine = await TestEngine.start({ numGpuBlocks: 16, kvEvents: false });
    gate = await GatedProxy.start(engine.url);
    gw = await createGateway(
      {
        server: { port: 0 },
        model: MODEL,
        endpoints: [{ name: 'e0', url: gate.url, metricsUrl: `${engine.url}/metrics`, engine: 'kvmgr' }],
        admission: { maxQueue: 8, maxWaitMs: 60_000 },
      },
      { logStream: logs },
    );
  });
  afterAll(async () => {
    await gw?.close();
    await gate?.close();
    await engine?.close();
  });

  const send = (prompt: number[], maxTokens: number, id: string) => postCompletionStatus(gw.url, id, prompt, maxTokens);
  /** A completion request on its own socket (no pooling), which the test destroys. */
  const sendRaw = (prompt: number[], maxTokens: number, id: string): ClientRequest => {
    const body = JSON.stringify({ model: MODEL, prompt, max_tokens: maxTokens });
    const u = new URL(gw.url);
    const req = httpRequest({ host: u.hostname, port: u.port, method: 'POST', path: '/v1/completions', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': id } });
    req.on('error', () => undefined);
    req.end(body);
    return req;
  };
  const ids = (n: number, base: number) => Array.from({ length: n }, (_, k) => base + k);
  const metric = async (name: string): Promise<string> => {
    const text = await (await request(`${gw.url}/metrics`)).body.text();
    return text.split('\n').find((l) => l.startsWith(name)) ?? '';
  };
  const e0 = () => gw.state().endpoints[0] as { inFlight: number; freeTokens: number | null };
  const reachedEngine = (id: string) => engine.seen.some((r) => r.requestId === id);

  it('leaves the queue at once: never placed, nothing sent upstream, the queue depth falls; what waited behind it is placed', async () => {
    gate.hold();
    // two requests of 60 + 40 = 100 KV tokens each, held: 56 tokens stay free
    const running = [send(ids(60, 1000), 40, 'run-a'), send(ids(60, 2000), 40, 'run-b')];
    await until(() => gate.sent.includes('run-a') && gate.sent.includes('run-b'), 5000, 'both running');
    expect(e0().freeTokens).toBe(56);

    // one that needs 100 tokens waits; its client goes away
    const left = sendRaw(ids(60, 3000), 40, 'left-1');
    await until(() => gw.state().queueDepth === 1, 5000, 'left-1 deferred');
    expect(await metric('kvmgr_gateway_admission_queue_depth')).toMatch(/ 1$/);
    expect(gw.state().tenants.find((t) => t.tenant === 'anonymous')?.queued).toBe(1);
    left.destroy();
    await until(() => gw.state().queueDepth === 0, 5000, 'left-1 to leave the queue');
    expect(await metric('kvmgr_gateway_admission_queue_depth')).toMatch(/ 0$/);
    expect(await metric('kvmgr_gateway_admission_decisions_total{decision="abandoned"}')).toMatch(/ 1$/);
    // nothing placed: the two running ones hold what they held; no upstream request
    expect(e0().inFlight).toBe(2);
    expect(e0().freeTokens).toBe(56);
    expect(gate.sent).not.toContain('left-1');
    expect(logs.request('left-1')).toMatchObject({ outcome: 'left-while-deferred', admission: 'defer', tenant: 'anonymous' });
    expect(logs.request('left-1')?.['decision']).toBeUndefined();
    expect(gw.state().tenants.find((t) => t.tenant === 'anonymous')).toMatchObject({ queued: 0, deferred: 1 });

    // a large one at the head holds a small one that would fit behind it (no overtaking); when the
    // large one's client goes away, the small one is placed at once, while the two still run
    const big = sendRaw(ids(60, 4000), 40, 'left-2');
    await until(() => gw.state().queueDepth === 1, 5000, 'left-2 deferred');
    const small = send(ids(20, 5000), 30, 'small-1');
    await until(() => gw.state().queueDepth === 2, 5000, 'small-1 deferred behind it');
    big.destroy();
    await until(() => gate.sent.includes('small-1'), 5000, 'small-1 placed once left-2 left');
    expect(gw.state().queueDepth).toBe(0);
    expect(e0().inFlight).toBe(3);
    expect(gate.sent).not.toContain('left-2');
    expect(logs.request('left-2')).toMatchObject({ outcome: 'left-while-deferred', admission: 'defer' });

    gate.release();
    expect(await Promise.all([...running, small])).toEqual([200, 200, 200]);
    expect(logs.decision('small-1').admission).toBe('defer');
    // the engine got the three that were placed, never the two whose clients left
    expect(engine.generations).toBe(3);
    expect(reachedEngine('left-1') || reachedEngine('left-2')).toBe(false);
    expect(await metric('kvmgr_gateway_admission_decisions_total{decision="abandoned"}')).toMatch(/ 2$/);
    expect(gw.state().tenants.find((t) => t.tenant === 'anonymous')).toMatchObject({ queued: 0, deferred: 3, rejected: 0 });
    await until(() => e0().inFlight === 0, 5000, 'drain');
  });
});
