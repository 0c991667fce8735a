/**
 * `POST /v1/embeddings` and the LLM/embedding memory quotas on real sockets: one engine server
 * for generation (steps stretched so requests stay in flight), and a node:http server on
 * 127.0.0.1 that answers OpenAI embedding bodies and can hold its answers, so the embedding
 * requests in flight are under the test's control.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryQuotaState } from '../src/embeddings.js';
import { type Gateway, createGateway } from '../src/index.js';
import { apiKeyTenant } from '../src/tenants.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet, until } from './helpers.js';

const EMBED_MODEL = 'BAAI/bge-small-en-v1.5';

/**
 * An OpenAI embeddings server on 127.0.0.1 that holds its answers while `hold` is set, answers
 * `GET /health` (the gateway's probe), and can be stopped and started again on the same port.
 */
class EmbeddingUpstream {
  /** `GET /health` probes received. */
  probes = 0;
  hold = false;
  inFlight = 0;
  maxInFlight = 0;
  received = 0;
  readonly authorizations: (string | undefined)[] = [];
  /** `x-request-id` of each request, in the order they reached this server. */
  readonly ids: (string | undefined)[] = [];
  private readonly held: (() => void)[] = [];
  private server: Server;
  private port = 0;
  private constructor(server: Server) {
    this.server = server;
  }

  private static async listen(port: number, holder: { u?: EmbeddingUpstream }): Promise<Server> {
    const server = createServer((req, res) => holder.u?.serve(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    return server;
  }

  static async start(): Promise<EmbeddingUpstream> {
    const holder: { u?: EmbeddingUpstream } = {};
    const u = new EmbeddingUpstream(await EmbeddingUpstream.listen(0, holder));
    u.port = (u.server.address() as AddressInfo).port;
    holder.u = u;
    return u;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops listening and drops every connection: nothing answers on the port any more. */
  async stop(): Promise<void> {
    this.releaseAll();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Listens again on the same port. */
  async resume(): Promise<void> {
    this.server = await EmbeddingUpstream.listen(this.port, { u: this });
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    if (req.method === 'GET' && req.url === '/health') {
      this.probes++;
      req.resume();
      res.writeHead(200).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.received++;
      this.authorizations.push(req.headers.authorization);
      this.ids.push(req.headers['x-request-id'] as string | undefined);
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model: string; input: unknown; encoding_format?: string };
      const inputs = Array.isArray(body.input) && (typeof body.input[0] !== 'number') ? body.input : [body.input];
      const answer = () => {
        this.inFlight--;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            object: 'list',
            // the openai SDK asks for base64 (little-endian float32) unless told otherwise
            data: inputs.map((_, index) => {
              const v = [0.25 * (index + 1), 0.5, 0.75];
              return { object: 'embedding', index, embedding: body.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v };
            }),
            model: body.model,
            usage: { prompt_tokens: 1, total_tokens: 1 },
          }),
        );
      };
      if (this.hold) this.held.push(answer);
      else answer();
    });
  }

  /** Answers the oldest held request (answers keep being held). */
  releaseOne(): void {
    this.held.shift()?.();
  }

  releaseAll(): void {
    this.hold = false;
    for (const a of this.held.splice(0)) a();
  }

  close(): Promise<void> {
    this.releaseAll();
    if (!this.server.listening) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    return closed;
  }
}

async function memory(gw: Gateway): Promise<MemoryQuotaState> {
  const r = await request(`${gw.url}/admin/state`);
  return ((await r.body.json()) as { memoryQuotas: MemoryQuotaState }).memoryQuotas;
}

/** Token-id input of exactly `n` tokens (counted as they are, no tokenizer in between). */
const ids = (n: number, seed: number) => Array.from({ length: n }, (_, k) => seed * 1000 + k);

describe('embeddings under separate memory quotas', () => {
  let fleet: TestEngine[];
  let upstream: EmbeddingUpstream;
  let gw: Gateway;
  let client: OpenAI;
  const logs = new LogSink();

  beforeAll(async () => {
    // 64 blocks × 16 = 1024 KV tokens; every step ≥ 15 ms, so a 40-token answer stays ≥ 600 ms
    fleet = await startFleet(1, { numGpuBlocks: 64, timeScale: 1, stallMs: 15 });
    upstream = await EmbeddingUpstream.start();
    gw = await createGateway(
      {
        server: { port: 0 },
        model: MODEL,
        endpoints: endpointsOf(fleet),
        admission: { maxQueue: 64, maxWaitMs: 60_000 },
        // 2048 tokens = 128 blocks; each side keeps 512; a round moves ≤ 12 blocks (192 tokens)
        embeddings: { endpoints: [upstream.url], quota: { totalTokens: 2048, llmMinFraction: 0.25, embeddingMinFraction: 0.25, rebalanceMs: 50 }, maxQueue: 64, maxWaitMs: 60_000 },
      },
      { logStream: logs },
    );
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-embed', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
    for (const f of fleet ?? []) await f.close();
  });

  const llm = (i: number) => client.completions.create({ model: MODEL, prompt: ids(60, 20 + i), max_tokens: 40 }, { headers: { 'x-request-id': `llm-${i}` } });
  const embed = (i: number, tokens = 200) => client.embeddings.create({ model: EMBED_MODEL, input: ids(tokens, i) }, { headers: { 'x-request-id': `emb-${i}` } });

  it('proxies the OpenAI body and answer; bad bodies get OpenAI 400s and reach nobody', async () => {
    const r = await client.embeddings.create({ model: EMBED_MODEL, input: ['hello world', 'second'] });
    expect(r.data).toHaveLength(2);
    expect(r.data[1]?.embedding).toEqual([0.5, 0.5, 0.75]);
    const f = await client.embeddings.create({ model: EMBED_MODEL, input: 'x', encoding_format: 'float' });
    expect(f.data[0]?.embedding).toEqual([0.25, 0.5, 0.75]);
    expect(upstream.authorizations.at(-1)).toBe('Bearer sk-embed');
    const before = upstream.received;
    for (const [body, param] of [
      [{ model: EMBED_MODEL, input: 5 }, 'input'],
      [{ input: 'x' }, 'model'],
      [{ model: EMBED_MODEL, input: [] }, 'input'],
    ] as const) {
      const res = await request(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.statusCode).toBe(400);
      const e = (await res.body.json()) as { error: { type: string; param: string | null } };
      expect(e.error.type).toBe('invalid_request_error');
      expect(e.error.param).toBe(param);
    }
    const huge = await request(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: EMBED_MODEL, input: ids(1600, 9) }) });
    expect(huge.statusCode).toBe(400);
    expect(((await huge.body.json()) as { error: { code: string } }).error.code).toBe('context_length_exceeded');
    expect(upstream.received).toBe(before);
  });

  it('an embedding flood takes the spare memory but not the LLM share; quotas shift back when LLM demand comes', async () => {
    const start = await memory(gw);
    expect(start.totalTokens).toBe(2048);
    expect(start.consumers.llm.minTokens).toBe(512);
    expect(start.consumers.embedding.minTokens).toBe(512);
    upstream.hold = true;
    upstream.maxInFlight = 0;
    const embeds = Array.from({ length: 20 }, (_, i) => embed(i));
    // no LLM demand: the embedding quota grows to everything but the LLM minimum (2048 − 512)
    await until(() => gw.state().memoryQuotas?.consumers.embedding.quotaTokens === 1536, 10_000, 'the embedding quota to grow');
    await until(() => upstream.inFlight === 7, 5000, 'seven embeddings in flight (7 × 200 ≤ 1536)');
    await until(() => gw.state().memoryQuotas?.consumers.embedding.queuedTokens === 13 * 200, 5000, 'the other thirteen to queue');
    const flooded = await memory(gw);
    expect(flooded.consumers.embedding.inFlightTokens).toBe(1400);
    expect(flooded.consumers.embedding.queuedTokens).toBe(13 * 200);
    expect(flooded.consumers.llm.quotaTokens).toBe(512);

    // LLM requests still get in: their quota never drops below its minimum, and grows with their demand
    const llms = Array.from({ length: 8 }, (_, i) => llm(i));
    await until(() => (gw.state().memoryQuotas?.consumers.llm.quotaTokens ?? 0) > 512, 10_000, 'the LLM quota to grow with LLM demand');
    const done = await Promise.all(llms);
    expect(done.every((c) => c.usage?.completion_tokens === 40)).toBe(true);
    // the embedding flood never went past its quota's ceiling
    expect(upstream.maxInFlight).toBeLessThanOrEqual(7);
    expect(upstream.inFlight).toBeLessThanOrEqual(7);

    upstream.releaseAll();
    const answers = await Promise.all(embeds);
    expect(answers.every((a) => a.data.length === 1)).toBe(true);
    await until(() => gw.state().memoryQuotas?.consumers.embedding.inFlightTokens === 0, 5000, 'embeddings to drain');
  });

  it('an LLM flood does not starve embeddings: they keep their minimum share', async () => {
    await until(() => gw.state().endpoints[0]?.inFlight === 0, 10_000, 'LLM drain');
    const llms = Array.from({ length: 16 }, (_, i) => llm(30 + i));
    await until(() => (gw.state().memoryQuotas?.consumers.llm.quotaTokens ?? 0) >= 1024, 10_000, 'the LLM quota to grow');
    upstream.hold = true;
    upstream.maxInFlight = 0;
    // 3 × 200 = 600 tokens: at least two fit in the embedding minimum (512) at once
    const embeds = [embed(50), embed(51), embed(52)];
    await until(() => upstream.inFlight >= 2, 5000, 'embeddings admitted during the LLM flood');
    expect(gw.state().queueDepth + (gw.state().endpoints[0]?.inFlight ?? 0)).toBeGreaterThan(0); // the LLM flood is still on
    upstream.releaseAll();
    await Promise.all(embeds);
    const m = await memory(gw);
    expect(m.consumers.llm.quotaTokens + m.consumers.embedding.quotaTokens).toBeLessThanOrEqual(2048);
    await Promise.all(llms);
    const text = await (await request(`${gw.url}/metrics`)).body.text();
    expect(text).toMatch(/kvmgr_gateway_memory_quota_tokens\{consumer="llm",kind="quota"\} \d+/);
    expect(text).toMatch(/kvmgr_gateway_embedding_requests_total\{outcome="ok"\} \d+/);
  });
});

describe('embedding endpoints are health-checked (real HTTP)', () => {
  let fleet: TestEngine[];
  let u1: EmbeddingUpstream;
  let u2: EmbeddingUpstream;
  const gws: Gateway[] = [];
  const logs = new LogSink();
  beforeAll(async () => {
    fleet = await startFleet(1, { numGpuBlocks: 64 });
    u1 = await EmbeddingUpstream.start();
    u2 = await EmbeddingUpstream.start();
  });
  afterAll(async () => {
    for (const g of gws) await g.close();
    await u1?.close();
    await u2?.close();
    for (const f of fleet ?? []) await f.close();
  });

  const start = async (healthIntervalMs: number): Promise<{ gw: Gateway; client: OpenAI; healthy: () => Record<string, boolean> }> => {
    const gw = await createGateway(
      {
        server: { port: 0 },
        model: MODEL,
        endpoints: endpointsOf(fleet),
        health: { intervalMs: healthIntervalMs },
        embeddings: { endpoints: [u1.url, u2.url], quota: { totalTokens: 2048 } },
      },
      { logStream: logs },
    );
    gws.push(gw);
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const healthy = () => Object.fromEntries((gw.state().embeddingEndpoints ?? []).map((e) => [e.url, e.healthy]));
    return { gw, client, healthy };
  };
  const line = (id: string) => logs.request(id) as { status: number; endpoint?: string; attempts?: string[] } | undefined;

  it('a stopped endpoint is taken out by its probe, requests avoid it, and its probe brings it back when it returns', async () => {
    const { gw, client, healthy } = await start(100);
    expect(healthy()).toEqual({ [u1.url]: true, [u2.url]: true });
    const embed = (id: string) => client.embeddings.create({ model: EMBED_MODEL, input: ids(20, 7) }, { headers: { 'x-request-id': id } });
    const received = () => [u1.received, u2.received];
    // round robin over both
    let [r1, r2] = received();
    for (let i = 0; i < 4; i++) await embed(`eh-in-${i}`);
    expect([u1.received - (r1 as number), u2.received - (r2 as number)]).toEqual([2, 2]);

    // u2 stops: its next probe is refused and takes it out, before any request finds out
    await u2.stop();
    await until(() => healthy()[u2.url] === false, 5000, 'the probe to take u2 out');
    const out = logs.lines.find((l) => l['event'] === 'embedding-endpoint-health' && l['url'] === u2.url && l['healthy'] === false);
    expect(out?.['why']).toMatch(/^probe GET \/health failed/);
    const m = await (await request(`${gw.url}/metrics`)).body.text();
    expect(m).toContain(`kvmgr_gateway_embedding_endpoint_healthy{url="${u2.url}"} 0`);
    expect(m).toContain(`kvmgr_gateway_embedding_endpoint_healthy{url="${u1.url}"} 1`);
    // every request goes to u1 at the first try: none is sent to u2 and retried
    [r1] = received();
    for (let i = 0; i < 6; i++) {
      const e = await embed(`eh-out-${i}`);
      expect(e.data).toHaveLength(1);
      expect(line(`eh-out-${i}`)).toMatchObject({ status: 200, endpoint: u1.url });
      expect(line(`eh-out-${i}`)?.attempts).toBeUndefined();
    }
    expect(u1.received - (r1 as number)).toBe(6);

    // u2 comes back on the same port: a probe puts it back in the rotation
    await u2.resume();
    await until(() => healthy()[u2.url] === true, 5000, 'the probe to bring u2 back');
    [r1, r2] = received();
    for (let i = 0; i < 4; i++) await embed(`eh-back-${i}`);
    expect([u1.received - (r1 as number), u2.received - (r2 as number)]).toEqual([2, 2]);
  });

  it('a request that cannot connect takes the endpoint out at once and is answered by the other; none healthy is a 503', async () => {
    // probes far apart: only the failed request can take u2 out
    const { client, healthy } = await start(60_000);
    expect(healthy()).toEqual({ [u1.url]: true, [u2.url]: true });
    const embed = (id: string) => client.embeddings.create({ model: EMBED_MODEL, input: ids(20, 8) }, { headers: { 'x-request-id': id } });
    await u2.stop();
    for (let i = 0; i < 4; i++) await embed(`ep-${i}`);
    const tried = [0, 1, 2, 3].map((i) => line(`ep-${i}`));
    // exactly one request tried u2 (its turn came first or second), then u1; the rest went to u1 alone
    expect(tried.filter((l) => l?.attempts !== undefined).map((l) => l?.attempts)).toEqual([[u2.url, u1.url]]);
    expect(tried.every((l) => l?.status === 200 && l.endpoint === u1.url)).toBe(true);
    expect(healthy()).toEqual({ [u1.url]: true, [u2.url]: false });
    // and with u1 gone too: no healthy embedding endpoint, 503 at once
    await u1.stop();
    const err = await embed('ep-none').catch((e: unknown) => e);
    expect(healthy()[u1.url]).toBe(false);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    const none = await embed('ep-none-2').catch((e: unknown) => e);
    expect((none as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((none as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'no_endpoint' });
    await u1.resume();
    await u2.resume();
  });
});

const FLOOD = 8;
const QUIET = 2;

/**
 * Two tenants' embeddings through a quota that holds two at a time: one floods, a quiet one
 * arrives behind its backlog; the upstream answers one request at a time, so each answer lets
 * exactly one waiting request through, and the order the upstream receives them in is the
 * gateway's release order.
 */
async function embeddingOrder(fairness: boolean): Promise<{ order: string[]; tenants: { tenant: string; requests: number; deferred: number; service: number }[] }> {
  const fleet = await startFleet(1, { numGpuBlocks: 64 });
  const upstream = await EmbeddingUpstream.start();
  let gw: Gateway | undefined;
  try {
    gw = await createGateway(
      {
        server: { port: 0 },
        model: MODEL,
        endpoints: endpointsOf(fleet),
        // both minimum shares add up to the budget: the embedding quota stays at 1024 tokens, two 500-token inputs
        embeddings: { endpoints: [upstream.url], quota: { totalTokens: 2048, llmMinFraction: 0.5, embeddingMinFraction: 0.5, rebalanceMs: 50 }, maxQueue: 64, maxWaitMs: 60_000 },
        tenants: { enabled: fairness },
      },
      { logStream: new LogSink() },
    );
    const g = gw;
    upstream.hold = true;
    const flood = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'sk-flood', maxRetries: 0, defaultHeaders: { 'x-tenant-id': 'flood' } });
    const quiet = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'sk-quiet-secret', maxRetries: 0 });
    const queued = () => g.state().memoryQuotas?.consumers.embedding.queuedTokens;
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < FLOOD; i++) all.push(flood.embeddings.create({ model: EMBED_MODEL, input: ids(500, 100 + i) }, { headers: { 'x-request-id': `eflood-${i}` } }));
    await until(() => upstream.inFlight === 2 && queued() === (FLOOD - 2) * 500, 5000, 'the flood to queue');
    for (let i = 0; i < QUIET; i++) all.push(quiet.embeddings.create({ model: EMBED_MODEL, input: ids(500, 200 + i) }, { headers: { 'x-request-id': `equiet-${i}` } }));
    await until(() => queued() === (FLOOD - 2 + QUIET) * 500, 5000, 'the quiet requests to queue');
    // one answer at a time: each frees 500 tokens, which lets exactly one waiting request through
    while (upstream.received < FLOOD + QUIET) {
      const n = upstream.received;
      upstream.releaseOne();
      await until(() => upstream.received > n, 5000, 'the next waiting embedding to be released');
    }
    upstream.releaseAll();
    await Promise.all(all);
    const order = upstream.ids.filter((id): id is string => id !== undefined && /^e(flood|quiet)-/.test(id));
    return { order, tenants: g.state().tenants };
  } finally {
    await gw?.close();
    await upstream.close();
    for (const f of fleet) await f.close();
  }
}

describe('per-tenant fairness in the embedding DEFER queue (real HTTP)', () => {
  let fair: Awaited<ReturnType<typeof embeddingOrder>>;
  let fifo: Awaited<ReturnType<typeof embeddingOrder>>;
  beforeAll(async () => {
    fair = await embeddingOrder(true);
    fifo = await embeddingOrder(false);
  }, 60_000);

  it('the quiet tenant’s embeddings are released ahead of the flooding tenant’s backlog', () => {
    expect(fair.order).toHaveLength(FLOOD + QUIET);
    const lastQuiet = Math.max(fair.order.indexOf('equiet-0'), fair.order.indexOf('equiet-1'));
    // VTC alternates once the quiet tenant is lifted to the flooder's counter: both quiet
    // requests go within the next four releases, ahead of the flood's last four
    expect(fair.order.slice(lastQuiet + 1).filter((id) => id.startsWith('eflood-')).length).toBeGreaterThanOrEqual(4);
    // the same arrivals without fairness: arrival order, the quiet tenant last
    expect(fifo.order).toHaveLength(FLOOD + QUIET);
    expect(fifo.order.slice(-QUIET).sort()).toEqual(['equiet-0', 'equiet-1']);
  });

  it('embedding input tokens are charged to the tenant’s counter, the one its completions are charged to', () => {
    const fairBy = new Map(fair.tenants.map((t) => [t.tenant, t]));
    expect(fairBy.get('flood')).toMatchObject({ requests: FLOOD, deferred: FLOOD - 2, service: FLOOD * 500 });
    expect(fairBy.get(apiKeyTenant('sk-quiet-secret'))).toMatchObject({ requests: QUIET, deferred: QUIET, service: QUIET * 500 });
    // without fairness the queue does not order by tenant (nor count deferrals per tenant), but the service is still charged
    const fifoBy = new Map(fifo.tenants.map((t) => [t.tenant, t]));
    expect(fifoBy.get('flood')).toMatchObject({ requests: FLOOD, service: FLOOD * 500 });
    expect(fifoBy.get(apiKeyTenant('sk-quiet-secret'))).toMatchObject({ requests: QUIET, service: QUIET * 500 });
  });
});

describe('no embeddings section', () => {
  it('POST /v1/embeddings → 404 with an OpenAI error', async () => {
    const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: [] }, { logStream: new LogSink() });
    try {
      const r = await request(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', input: 'x' }) });
      expect(r.statusCode).toBe(404);
      expect(((await r.body.json()) as { error: { code: string } }).error.code).toBe('not_found');
    } finally {
      await gw.close();
    }
  });
});
