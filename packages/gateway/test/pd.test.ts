/**
 * P/D disaggregation through the gateway: real engine servers with the prefill, decode and both
 * roles (`@kvmgr/engine-server`, which honours `kv_transfer_params` as vLLM's NIXL connector
 * does) on 127.0.0.1, each behind a recording loopback proxy (node:http) so the test sees every
 * body and header an engine got; the `openai` SDK as the client.
 */
import { type IncomingHttpHeaders, type Server, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isKvmgrError } from '@kvmgr/core';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, type GatewayConfigInput, createGateway, parseRoutingInput, resolveGatewayConfig } from '../src/index.js';
import { GatedProxy, LogSink, MODEL, TestEngine, postCompletionStatus, until } from './helpers.js';

/** One request an engine got through its recorder. */
interface Recorded {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
}

/** A loopback proxy in front of one engine that records generation requests (bodies parsed) and forwards everything. */
class Recorder {
  readonly seen: Recorded[] = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(target: string): Promise<Recorder> {
    const t = new URL(target);
    const holder: { r?: Recorder } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.method === 'POST' && (req.url ?? '').startsWith('/v1/')) {
          holder.r?.seen.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(body.toString('utf8')) as Record<string, unknown> });
        }
        const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        });
        up.on('error', () => res.destroy());
        res.on('close', () => up.destroy());
        up.end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const r = new Recorder(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    holder.r = r;
    return r;
  }

  get hostPort(): string {
    return new URL(this.url).host;
  }

  generations(): Recorded[] {
    return this.seen.filter((s) => s.path.startsWith('/v1/completions') || s.path.startsWith('/v1/chat/completions'));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Prefill and decode tokens an engine computed (its step shapes). */
function watchSteps(e: TestEngine): { prefill: number; decode: number } {
  const c = { prefill: 0, decode: 0 };
  const core = e.server.core;
  const hooks = core.hooks;
  core.hooks = {
    ...hooks,
    onStepStats: (st) => {
      hooks.onStepStats?.(st);
      c.prefill += st.shape.prefillTokens;
      c.decode += st.shape.decodeTokens;
    },
  };
  return c;
}

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function metricsOf(gw: Gateway): Promise<string> {
  const r = await request(`${gw.url}/metrics`);
  return r.body.text();
}

/** A prompt of `n` token ids, distinct per `seed` (no prefix shared with another seed). */
function longPrompt(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => 1000 + ((i * 7919 + seed * 104_729) % 50_000));
}

interface PdLine {
  decision: { endpoint: string; reason: string; pd?: { mode: string; disaggregated: boolean; prefill: string; decode: string; reason: string; uncachedTokens: number } };
  pdLeg?: { prefillLeg?: { endpoint?: string; attempts?: { endpoint: string; error?: string }[] }; prefillerHostPort?: string };
  status: number;
  outcome: string;
}

describe('gateway P/D: prefill, decode and both engines', () => {
  const engines: Record<string, TestEngine> = {};
  const rec: Record<string, Recorder> = {};
  const steps: Record<string, { prefill: number; decode: number }> = {};
  const gws: Gateway[] = [];
  const logs = new LogSink();

  const start = async (config: GatewayConfigInput, sink: LogSink = logs): Promise<{ gw: Gateway; client: OpenAI }> => {
    const gw = await createGateway({ server: { port: 0, retries: 1 }, model: MODEL, scrape: { intervalMs: 200 }, ...config }, { logStream: sink });
    gws.push(gw);
    await until(() => gw.state().endpoints.every((e) => e.healthy), 30_000, 'every endpoint healthy');
    return { gw, client: new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 }) };
  };
  const ep = (name: string, role: 'prefill' | 'decode' | 'both') => ({ name, url: (rec[name] as Recorder).url, engine: 'kvmgr' as const, role });
  const line = (reqId: string): PdLine => logs.request(reqId) as unknown as PdLine;

  beforeAll(async () => {
    const roles = { p0: 'prefill', d0: 'decode', b0: 'both', pbad: 'prefill' } as const;
    for (const [name, role] of Object.entries(roles)) {
      const e = await TestEngine.start({ kvEvents: false, timeScale: 50, numGpuBlocks: 1024, pd: { role }, ...(name === 'pbad' ? { failRate: 1 } : {}) });
      engines[name] = e;
      rec[name] = await Recorder.start(e.url);
      steps[name] = watchSteps(e);
    }
  });
  afterAll(async () => {
    for (const gw of gws) await gw.close();
    for (const r of Object.values(rec)) await r.close();
    for (const e of Object.values(engines)) await e.close();
  });

  describe('two-legs (vLLM disaggregated proxy)', () => {
    let gw: Gateway;
    let client: OpenAI;
    beforeAll(async () => {
      ({ gw, client } = await start({ endpoints: [ep('p0', 'prefill'), ep('d0', 'decode'), ep('b0', 'both')], pd: { threshold: 256 } }));
    });

    it('a long uncached prompt: prefill leg on p0 (do_remote_decode, max_tokens 1), decode leg with its kv_transfer_params; usage from the decode leg', async () => {
      const prompt = longPrompt(640, 1);
      const p0Before = (rec['p0'] as Recorder).generations().length;
      const before = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, { ...v }]));
      const res = await client.completions.create({ model: MODEL, prompt, max_tokens: 12, min_tokens: 12 } as never, { headers: { 'x-request-id': 'pd-json-1' } });
      const l = line('pd-json-1');
      expect(l.status).toBe(200);
      expect(l.decision.pd).toMatchObject({ mode: 'two-legs', disaggregated: true, prefill: 'p0', reason: 'disaggregated', uncachedTokens: 640 });
      const dec = l.decision.endpoint;
      expect(['d0', 'b0']).toContain(dec);
      expect(l.decision.pd?.decode).toBe(dec);
      expect(l.decision.reason).toBe('disaggregated');
      expect(l.pdLeg?.prefillLeg?.endpoint).toBe('p0');

      const pre = (rec['p0'] as Recorder).generations().slice(p0Before);
      expect(pre).toHaveLength(1);
      expect(pre[0]?.headers['x-request-id']).toBe('pd-json-1');
      expect(pre[0]?.body).toMatchObject({ prompt, max_tokens: 1, stream: false, kv_transfer_params: { do_remote_decode: true, do_remote_prefill: false } });
      expect(pre[0]?.body).not.toHaveProperty('min_tokens');
      const sent = (rec[dec] as Recorder).generations().find((s) => s.headers['x-request-id'] === 'pd-json-1');
      const kv = sent?.body['kv_transfer_params'] as { do_remote_prefill: boolean; remote_port: number; remote_block_ids: number[] };
      expect(sent?.body).toMatchObject({ prompt, max_tokens: 12, min_tokens: 12 });
      expect(kv.do_remote_prefill).toBe(true);
      expect(kv.remote_port).toBe(Number(new URL((engines['p0'] as TestEngine).url).port));
      expect(kv.remote_block_ids).toHaveLength(640 / 16);

      // p0 computed the prompt; the decode engine took its KV over the link and computed only the last prompt token
      expect((steps['p0'] as { prefill: number }).prefill - (before['p0'] as { prefill: number }).prefill).toBe(640);
      expect((steps[dec] as { prefill: number }).prefill - (before[dec] as { prefill: number }).prefill).toBe(1);
      expect(res.usage?.prompt_tokens).toBe(640);
      expect(res.usage?.completion_tokens).toBe(12);
      expect((steps[dec] as { decode: number }).decode - (before[dec] as { decode: number }).decode).toBe(11);

      const m = await metricsOf(gw);
      expect(metricValue(m, 'kvmgr_gateway_routing_decisions_total', { endpoint: dec, reason: 'disaggregated' })).toBeGreaterThanOrEqual(1);
      expect(metricValue(m, 'kvmgr_gateway_pd_prefill_legs_total', { endpoint: 'p0', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
      await until(() => gw.state().endpoints.every((e) => e.inFlight === 0), 5000, 'reservations released');
    });

    it('streamed chat: the prefill leg is not streamed (no stream_options); the decode leg streams to the client, usage at the end', async () => {
      const messages = [{ role: 'user' as const, content: 'Explain the key-value cache of a transformer in detail, please. '.repeat(40) }];
      const p0Before = (rec['p0'] as Recorder).generations().length;
      const stream = await client.chat.completions.create(
        { model: MODEL, messages, max_tokens: 8, stream: true, stream_options: { include_usage: true } },
        { headers: { 'x-request-id': 'pd-sse-1' } },
      );
      let chunks = 0;
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const c of stream) {
        chunks++;
        if (c.usage) usage = c.usage;
      }
      const l = (await logs.awaitRequest('pd-sse-1')) as unknown as PdLine;
      expect(l.decision.pd?.disaggregated).toBe(true);
      const pre = (rec['p0'] as Recorder).generations().slice(p0Before);
      expect(pre).toHaveLength(1);
      expect(pre[0]?.path).toBe('/v1/chat/completions');
      expect(pre[0]?.body).toMatchObject({ stream: false, max_tokens: 1, kv_transfer_params: { do_remote_decode: true } });
      expect(pre[0]?.body).not.toHaveProperty('stream_options');
      const sent = (rec[l.decision.endpoint] as Recorder).generations().find((s) => s.headers['x-request-id'] === 'pd-sse-1');
      expect(sent?.body).toMatchObject({ stream: true, max_tokens: 8, stream_options: { include_usage: true }, kv_transfer_params: { do_remote_prefill: true } });
      expect(chunks).toBeGreaterThan(1);
      expect(usage?.completion_tokens).toBe(8);
      expect(usage?.prompt_tokens).toBe(l.decision.pd?.uncachedTokens);
    });

    it('a short prompt skips P/D: no prefill leg, the decode-capable endpoint prefills it', async () => {
      const p0Before = (rec['p0'] as Recorder).generations().length;
      const res = await client.completions.create({ model: MODEL, prompt: longPrompt(40, 2), max_tokens: 3 }, { headers: { 'x-request-id': 'pd-short-1' } });
      expect(res.usage?.completion_tokens).toBe(3);
      const l = line('pd-short-1');
      expect(l.decision.pd).toMatchObject({ disaggregated: false, reason: 'below-threshold', uncachedTokens: 40, prefill: l.decision.endpoint });
      expect(['d0', 'b0']).toContain(l.decision.endpoint);
      expect(l.pdLeg).toBeUndefined();
      expect((rec['p0'] as Recorder).generations().length).toBe(p0Before);
      const sent = (rec[l.decision.endpoint] as Recorder).generations().find((s) => s.headers['x-request-id'] === 'pd-short-1');
      expect(sent?.body).not.toHaveProperty('kv_transfer_params');
    });
  });

  it('prefiller-header mode: the decode endpoint gets x-prefiller-host-port of the prefill endpoint; the gateway sends no prefill leg', async () => {
    const { client } = await start({ endpoints: [ep('p0', 'prefill'), ep('d0', 'decode')], pd: { mode: 'prefiller-header' } });
    const p0Before = (rec['p0'] as Recorder).generations().length;
    const res = await client.completions.create({ model: MODEL, prompt: longPrompt(512, 3), max_tokens: 4 }, { headers: { 'x-request-id': 'pd-hdr-1', 'x-prefiller-host-port': '10.9.9.9:1' } });
    expect(res.usage?.completion_tokens).toBe(4);
    const sent = (rec['d0'] as Recorder).generations().find((s) => s.headers['x-request-id'] === 'pd-hdr-1');
    expect(sent?.headers['x-prefiller-host-port']).toBe((rec['p0'] as Recorder).hostPort);
    expect(sent?.body).not.toHaveProperty('kv_transfer_params');
    expect((rec['p0'] as Recorder).generations().length).toBe(p0Before);
    expect(line('pd-hdr-1').decision.pd).toMatchObject({ mode: 'prefiller-header', disaggregated: true, prefill: 'p0', decode: 'd0' });
    expect(line('pd-hdr-1').pdLeg?.prefillerHostPort).toBe((rec['p0'] as Recorder).hostPort);
    // a short prompt: no header at all (a client's own one is not forwarded)
    await client.completions.create({ model: MODEL, prompt: longPrompt(30, 4), max_tokens: 2 }, { headers: { 'x-request-id': 'pd-hdr-2', 'x-prefiller-host-port': '10.9.9.9:1' } });
    const short = (rec['d0'] as Recorder).generations().find((s) => s.headers['x-request-id'] === 'pd-hdr-2');
    expect(short?.headers).not.toHaveProperty('x-prefiller-host-port');
  });

  it('prefiller-header mode: the prompt is reserved on the prefill endpoint until the decode answer starts; nothing is left after', async () => {
    // a decode engine of its own (every step ≥ 10 ms: its chunks come apart) behind a TCP proxy that holds its answer; metrics scraped directly
    const dec = await TestEngine.start({ kvEvents: false, timeScale: 1, stallMs: 10, numGpuBlocks: 1024, pd: { role: 'decode' } });
    const gate = await GatedProxy.start(dec.url);
    try {
      const { gw } = await start({
        endpoints: [ep('p0', 'prefill'), { name: 'dg', url: gate.url, metricsUrl: `${dec.url}/metrics`, engine: 'kvmgr', role: 'decode' }],
        pd: { mode: 'prefiller-header' },
      });
      const st = (name: string) => gw.state().endpoints.find((e) => e.name === name) as { inFlight: number; freeTokens: number | null; capacityTokens: number | null };
      const cap = st('p0').capacityTokens as number;
      expect(cap).toBe(1024 * 16);
      gate.hold();
      const prompt = longPrompt(512, 40);
      let chunks = 0;
      const done = request(`${gw.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'pd-hdr-res-1' },
        body: JSON.stringify({ model: MODEL, prompt, max_tokens: 16, stream: true }),
      }).then(async (r) => {
        for await (const _ of r.body) chunks++;
        return r.statusCode;
      });
      // the decode request went out with the header; its answer is held: the prefill endpoint holds the prompt's tokens
      await until(() => gate.sent.includes('pd-hdr-res-1'), 5000, 'the decode request to go out');
      expect(gate.sent).toContain(`x-prefiller-host-port: ${(rec['p0'] as Recorder).hostPort}`);
      expect(st('p0').inFlight).toBe(1);
      expect(st('p0').freeTokens).toBeLessThanOrEqual(cap - 512);
      expect(st('dg').inFlight).toBe(1);
      // the first bytes of the decode answer: the sidecar's prefill is done, the reservation ends; the decode one stays
      gate.passFirst();
      await until(() => st('p0').inFlight === 0, 5000, 'the prefill reservation to end at the first byte');
      expect(st('dg').inFlight).toBe(1);
      gate.release();
      expect(await done).toBe(200);
      expect(chunks).toBeGreaterThan(0);
      expect(line('pd-hdr-res-1').decision.pd).toMatchObject({ mode: 'prefiller-header', disaggregated: true, prefill: 'p0', decode: 'dg' });
      await until(() => gw.state().endpoints.every((e) => e.inFlight === 0), 5000, 'every reservation released');
      expect(st('p0').freeTokens).toBeGreaterThan(cap - 512);

      // a decode endpoint that fails before answering: the reservation ends with the request
      gate.hold();
      const failed = postCompletionStatus(gw.url, 'pd-hdr-res-2', longPrompt(512, 41), 4);
      await until(() => gate.sent.includes('pd-hdr-res-2'), 5000, 'the second decode request to go out');
      expect(st('p0').inFlight).toBe(1);
      await gate.close();
      expect(await failed).toBe(502);
      await until(() => gw.state().endpoints.every((e) => e.inFlight === 0), 5000, 'every reservation released after the failure');
    } finally {
      await gate.close();
      await dec.close();
    }
  });

  it('two-legs mode: the prompt is reserved on the prefill endpoint at placement, so the next request released by the same admission loop sees it', async () => {
    // a prefill engine that holds one 512-token prompt (48 blocks × 16 = 768 tokens), and a decode
    // engine of 72 blocks (1152 tokens) behind a TCP proxy that can hold its answers, metrics scraped directly
    const pre = await TestEngine.start({ kvEvents: false, timeScale: 50, numGpuBlocks: 48, pd: { role: 'prefill' } });
    const dec = await TestEngine.start({ kvEvents: false, timeScale: 50, numGpuBlocks: 72, pd: { role: 'decode' } });
    const gate = await GatedProxy.start(dec.url);
    try {
      const { gw } = await start({
        endpoints: [
          { name: 'ps', url: pre.url, engine: 'kvmgr', role: 'prefill' },
          { name: 'dg', url: gate.url, metricsUrl: `${dec.url}/metrics`, engine: 'kvmgr', role: 'decode' },
        ],
        pd: { mode: 'two-legs', threshold: 256 },
      });
      const st = (name: string) => gw.state().endpoints.find((e) => e.name === name) as { inFlight: number; freeTokens: number | null; capacityTokens: number | null };
      expect(st('ps').capacityTokens).toBe(768);
      expect(st('dg').capacityTokens).toBe(1152);
      const send = (id: string, prompt: number[], maxTokens: number) => postCompletionStatus(gw.url, id, prompt, maxTokens);
      // a short request (below the P/D threshold) holds 100 + 600 KV tokens on the decode endpoint while its answer is held
      gate.hold();
      const holder = send('pd-res-hold', longPrompt(100, 60), 600);
      await until(() => gate.sent.includes('pd-res-hold'), 5000, 'the holding request to go out');
      expect(st('dg').freeTokens).toBe(1152 - 700);
      // two long prompts (512 + 4 KV tokens each) wait for the decode endpoint
      const a = send('pd-res-a', longPrompt(512, 61), 4);
      await until(() => gw.state().queueDepth === 1, 5000, 'the first to wait');
      const b = send('pd-res-b', longPrompt(512, 62), 4);
      await until(() => gw.state().queueDepth === 2, 5000, 'the second to wait');
      expect(st('ps').inFlight).toBe(0);
      // the holding request ends: one release loop places both. The first one's prefill leg goes to
      // ps and reserves its prompt there at placement, so ps has no room left for the second one,
      // whose prompt the decode endpoint prefills itself
      gate.release();
      expect(await Promise.all([holder, a, b])).toEqual([200, 200, 200]);
      expect(line('pd-res-a').decision.pd).toMatchObject({ mode: 'two-legs', disaggregated: true, prefill: 'ps', decode: 'dg', reason: 'disaggregated' });
      expect(line('pd-res-a').pdLeg?.prefillLeg?.endpoint).toBe('ps');
      expect(line('pd-res-b').decision.pd).toMatchObject({ disaggregated: false, reason: 'no-prefill-instance', decode: 'dg' });
      expect(line('pd-res-b').pdLeg).toBeUndefined();
      expect(logs.decision('pd-res-a').admission).toBe('defer');
      expect(logs.decision('pd-res-b').admission).toBe('defer');
      // the prefill engine got one prefill leg, the first request's
      expect(pre.seen.filter((r) => r.url.startsWith('/v1/completions')).map((r) => r.requestId)).toEqual(['pd-res-a']);
      await until(() => gw.state().endpoints.every((e) => e.inFlight === 0), 5000, 'every reservation released');
      await until(() => st('ps').freeTokens === 768, 5000, 'the prefill endpoint free again');
    } finally {
      await gate.close();
      await dec.close();
      await pre.close();
    }
  });

  it('SLO pairs: with only (p0, d0) the pair optimizer picks a split pair; the decider still keeps a short prompt on d0', async () => {
    const { client } = await start({ endpoints: [ep('p0', 'prefill'), ep('d0', 'decode')] });
    await client.completions.create({ model: MODEL, prompt: longPrompt(512, 5), max_tokens: 2 }, { headers: { 'x-request-id': 'pd-slo-1', 'x-slo-ttft-ms': '5000' } });
    expect(line('pd-slo-1').decision.pd).toMatchObject({ disaggregated: true, prefill: 'p0', decode: 'd0' });
    expect(line('pd-slo-1').decision.pd?.reason).toMatch(/^slo-pair/);
    await client.completions.create({ model: MODEL, prompt: longPrompt(30, 6), max_tokens: 2 }, { headers: { 'x-request-id': 'pd-slo-2', 'x-slo-ttft-ms': '5000' } });
    expect(line('pd-slo-2').decision.pd).toMatchObject({ disaggregated: false, reason: 'below-threshold', prefill: 'd0', decode: 'd0' });
  });

  it('a failing prefill endpoint and no other: an OpenAI 502 naming the prefill leg; nothing reaches the decode engine; nothing left in flight', async () => {
    const { gw, client } = await start({ endpoints: [ep('pbad', 'prefill'), ep('d0', 'decode')] });
    const d0Before = (rec['d0'] as Recorder).generations().length;
    const err = await client.completions.create({ model: MODEL, prompt: longPrompt(512, 7), max_tokens: 4 }, { headers: { 'x-request-id': 'pd-fail-1' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toMatch(/prefill leg failed on pbad: prefill endpoint pbad answered 500/);
    expect((rec['pbad'] as Recorder).generations().some((s) => s.headers['x-request-id'] === 'pd-fail-1')).toBe(true);
    expect((rec['d0'] as Recorder).generations().length).toBe(d0Before);
    expect(line('pd-fail-1')).toMatchObject({ status: 502, outcome: 'prefill-failed' });
    expect(gw.state().endpoints.every((e) => e.inFlight === 0)).toBe(true);
  });

  it('a prefill endpoint that refuses the leg (4xx: a decode-role engine listed as prefill): that status to the client, not retried', async () => {
    const { gw, client } = await start({ endpoints: [{ name: 'wrong', url: (rec['d0'] as Recorder).url, engine: 'kvmgr', role: 'prefill' }, ep('b0', 'both')] });
    const b0Before = (rec['b0'] as Recorder).generations().length;
    const err = await client.completions.create({ model: MODEL, prompt: longPrompt(512, 8), max_tokens: 4 }, { headers: { 'x-request-id': 'pd-4xx-1' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(400);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toMatch(/prefill endpoint wrong answered 400: kv_transfer_params\.do_remote_decode: this engine has the decode role/);
    expect((rec['b0'] as Recorder).generations().length).toBe(b0Before);
    expect(line('pd-4xx-1').pdLeg?.prefillLeg?.attempts).toHaveLength(1);
    expect(gw.state().endpoints.every((e) => e.inFlight === 0)).toBe(true);
  });

  it('a failing prefill endpoint beside a good one: the prefill leg is retried on the good one before any byte to the client', async () => {
    const { gw, client } = await start({ endpoints: [ep('pbad', 'prefill'), ep('p0', 'prefill'), ep('d0', 'decode')] });
    let retried: PdLine | undefined;
    // the router breaks the tie between the two idle prefill endpoints with its seeded PRNG: bounded tries until one lands on pbad
    for (let i = 0; i < 8 && retried === undefined; i++) {
      const id = `pd-retry-${i}`;
      const res = await client.completions.create({ model: MODEL, prompt: longPrompt(400, 20 + i), max_tokens: 3 }, { headers: { 'x-request-id': id } });
      expect(res.usage?.completion_tokens).toBe(3);
      const l = line(id);
      expect(l.pdLeg?.prefillLeg?.endpoint).toBe('p0');
      if (l.decision.pd?.prefill === 'pbad') retried = l;
    }
    expect(retried).toBeDefined();
    expect(retried?.pdLeg?.prefillLeg?.attempts?.map((a) => a.endpoint)).toEqual(['pbad', 'p0']);
    expect(retried?.pdLeg?.prefillLeg?.attempts?.[0]?.error).toMatch(/answered 500/);
    const m = await metricsOf(gw);
    expect(metricValue(m, 'kvmgr_gateway_pd_prefill_legs_total', { endpoint: 'pbad', outcome: 'retried' })).toBeGreaterThanOrEqual(1);
    expect(gw.state().endpoints.every((e) => e.inFlight === 0)).toBe(true);
  });
});

describe('gateway P/D config', () => {
  const badKey = (input: unknown): string => {
    try {
      resolveGatewayConfig(input);
    } catch (e) {
      if (!isKvmgrError(e) || e.code !== 'KVMGR_BAD_CONFIG') throw e;
      expect(e.message.split('\n')).toHaveLength(1);
      return e.message;
    }
    throw new Error('no error');
  };

  it('bad pd settings stop with one line naming the key', () => {
    expect(badKey({ pd: { mode: 'sidecar' } })).toMatch(/^pd\.mode: .*two-legs.*prefiller-header/);
    expect(badKey({ pd: { threshold: -1 } })).toMatch(/^pd\.threshold: /);
    expect(badKey({ pd: { threshold: 1.5 } })).toMatch(/^pd\.threshold: /);
    expect(badKey({ pd: { sloPairs: 'yes' } })).toMatch(/^pd\.sloPairs: /);
    expect(badKey({ pd: { nope: 1 } })).toMatch(/^pd: .*nope/);
  });

  it('defaults, and the threshold written into the router configuration', () => {
    const c = resolveGatewayConfig({});
    expect(c.pd).toEqual({ mode: 'two-legs', modeGiven: false, threshold: 256, sloPairs: true });
    const t = resolveGatewayConfig({ pd: { mode: 'prefiller-header', threshold: 1000, sloPairs: false } });
    expect(t.pd).toMatchObject({ mode: 'prefiller-header', modeGiven: true });
    expect(t.routing.pd).toMatchObject({ nonCachedTokens: 1000, sloPairs: false });
    // without a pd section the router's own pd settings are the gateway's
    expect(resolveGatewayConfig({ routing: { scorers: 'pa:1', pd: { nonCachedTokens: 64 } } }).pd.threshold).toBe(64);
    // PUT /admin/routing keeps the gateway's threshold unless the new routing sets its own
    expect(parseRoutingInput('pa:1', MODEL, { threshold: 999, sloPairs: false }).config.pd).toMatchObject({ nonCachedTokens: 999, sloPairs: false });
    expect(parseRoutingInput({ scorers: 'pa:1', pd: { nonCachedTokens: 5 } }, MODEL, { threshold: 999, sloPairs: false }).config.pd).toMatchObject({ nonCachedTokens: 5, sloPairs: false });
  });
});
