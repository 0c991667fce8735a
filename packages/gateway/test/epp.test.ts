/**
 * The endpoint picker on real sockets: engine servers (`@kvmgr/engine-server`, kvmgr's engine
 * core behind vLLM's HTTP API, `/metrics` and ZMQ KV events) on 127.0.0.1, the picker's gRPC
 * server on an ephemeral port, and a grpc-js client that speaks ext_proc with the same Envoy
 * protos the way Envoy does in BUFFERED request-body mode (headers, then the body, then the
 * response headers with the served endpoint in `metadata_context`, then the end of the stream).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type EngineServer, createEngineServer } from '@kvmgr/engine-server';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Epp, type PbStruct, type ProcessingRequest, type ProcessingResponse, createEpp, loadEppProtos } from '../src/index.js';
import { ExtProcCall, destinationOf, headersMsg, immediateError, immediateStatus, pickOver, postHeaders, servedMeta, subsetHint } from './epp-client.js';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

/** Keeps pino's JSON lines. */
class LogSink {
  readonly lines: Record<string, unknown>[] = [];
  write(s: string): boolean {
    for (const line of s.split('\n')) if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    return true;
  }
  request(reqId: string): Record<string, unknown> | undefined {
    return this.lines.find((l) => l['msg'] === 'request' && l['reqId'] === reqId);
  }
  /** The decision logged for a request id (throws when there is none). */
  decision(reqId: string): { endpoint: string; address: string; admission: string; predictedCachedTokens: number; scores: Record<string, number> } {
    const d = this.request(reqId)?.['decision'];
    if (d === undefined) throw new Error(`no decision logged for ${reqId}`);
    return d as { endpoint: string; address: string; admission: string; predictedCachedTokens: number; scores: Record<string, number> };
  }
}

function completion(prompt: string, maxTokens = 4): Buffer {
  return Buffer.from(JSON.stringify({ model: MODEL, prompt, max_tokens: maxTokens }));
}

const POST = (id: string, extra: Record<string, string> = {}) => postHeaders(id, '/v1/completions', extra);

/**
 * Drives one request the way Envoy does in BUFFERED mode (the body in `chunks` messages, as a
 * streamed body arrives) and returns the picked address; the stream stays open.
 */
async function pick(client: grpc.Client, id: string, body: Buffer, opts: { metadata?: Record<string, PbStruct>; chunks?: number } = {}): Promise<{ call: ExtProcCall; address: string; response: ProcessingResponse }> {
  const r = await pickOver(client, POST(id), body, opts);
  expect(r.headersResponse.request_headers?.response?.status ?? 'CONTINUE').toBe('CONTINUE');
  return r;
}

async function forwardAndFinish(c: ExtProcCall, address: string, body: Buffer, served = address): Promise<unknown> {
  const res = await request(`http://${address}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const json = await res.body.json();
  c.send({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from(String(res.statusCode)) }] } }, metadata_context: { filter_metadata: servedMeta(served) } });
  const rr = await c.next();
  expect(rr.response_headers?.response?.status ?? 'CONTINUE').toBe('CONTINUE');
  await c.end();
  return json;
}

async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

const addressOf = (e: EngineServer) => new URL(e.url).host;

describe('epp: ext_proc endpoint picker over engine servers', () => {
  let engines: EngineServer[] = [];
  let epp: Epp;
  let client: grpc.Client;
  let health: grpc.Client;
  const logs = new LogSink();

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      engines.push(await createEngineServer({ port: 0, timeScale: 50, kvEventsConfig: { enable_kv_cache_events: true, endpoint: 'tcp://127.0.0.1:0' } }));
    }
    epp = await createEpp(
      {
        gateway: { model: MODEL, endpoints: engines.map((e, i) => ({ name: `e${i}`, url: e.url, ...(e.kvEventsEndpoint === undefined ? {} : { kvEvents: e.kvEventsEndpoint }) })), scrape: { intervalMs: 200 } },
        grpcHost: '127.0.0.1',
        grpcPort: 0,
        metricsPort: 0,
      },
      { logStream: logs },
    );
    // endpoints join unhealthy and turn healthy on their first scrape: wait for it, so a slow
    // (loaded) machine does not answer the first request with 503
    await until(() => epp.state().endpoints.every((e) => e.healthy), 30_000, 'every endpoint healthy');
    const protos = loadEppProtos();
    client = new protos.extProc(epp.address, grpc.credentials.createInsecure());
    health = new protos.health(epp.address, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    health?.close();
    await epp?.close();
    for (const e of engines) await e.close();
    engines = [];
  });

  it('an OpenAI completion: the header and envoy.lb metadata name the same engine; the body passes through; the engine serves it', async () => {
    const body = completion('The quick brown fox jumps over the lazy dog. '.repeat(8));
    const c = new ExtProcCall(client);
    c.send(headersMsg(POST('epp-basic-1')));
    const hr = await c.next();
    expect(hr.request_headers?.response?.status ?? 'CONTINUE').toBe('CONTINUE');
    expect(hr.mode_override?.request_body_mode).toBe('BUFFERED');
    c.send({ request_body: { body, end_of_stream: true } });
    const r = await c.next();
    const d = destinationOf(r);
    expect(engines.map(addressOf)).toContain(d.header);
    expect(d.metadata).toBe(d.header);
    expect(d.clearRouteCache).toBe(true);
    expect(d.bodyMutated).toBe(false);
    const set = r.request_body?.response?.header_mutation?.set_headers?.[0];
    expect(set?.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    expect(epp.state().endpoints.find((e) => e.address === d.header)?.inFlight).toBe(1);
    const json = (await forwardAndFinish(c, d.header as string, body)) as { usage: { prompt_tokens: number } };
    expect(json.usage.prompt_tokens).toBeGreaterThan(64);
    await until(() => epp.state().endpoints.every((e) => e.inFlight === 0), 5000, 'reservation released');
    expect(logs.decision('epp-basic-1').address).toBe(d.header);
    expect(Object.keys(logs.decision('epp-basic-1').scores).sort()).toEqual(['e0', 'e1', 'e2']);
  });

  it('the body in several chunks; the same prompt again goes to the engine that cached it (KV events)', async () => {
    const prompt = 'Once upon a time in a land far away there lived an endpoint picker. '.repeat(12);
    const body = completion(prompt, 2);
    const a = await pick(client, 'epp-same-1', body, { chunks: 3 });
    await forwardAndFinish(a.call, a.address, body);
    const name = epp.state().endpoints.find((e) => e.address === a.address)?.name as string;
    await until(() => (epp.state().endpoints.find((e) => e.name === name)?.cachedBlocks ?? 0) > 0, 5000, 'KV events from the serving engine');
    const b = await pick(client, 'epp-same-2', body);
    expect(b.address).toBe(a.address);
    expect(logs.decision('epp-same-2').predictedCachedTokens).toBeGreaterThan(0);
    await forwardAndFinish(b.call, b.address, body);
  });

  it('subset hint: the pick stays inside the subset', async () => {
    const only = addressOf(engines[2] as EngineServer);
    for (let i = 0; i < 4; i++) {
      const body = completion(`subset prompt number ${i} `.repeat(10));
      const r = await pick(client, `epp-subset-${i}`, body, { metadata: subsetHint([only]) });
      expect(r.address).toBe(only);
      expect(destinationOf(r.response).metadata).toBe(only);
      await r.call.end();
    }
    const two = [addressOf(engines[0] as EngineServer), addressOf(engines[1] as EngineServer)];
    for (let i = 0; i < 4; i++) {
      const r = await pick(client, `epp-subset2-${i}`, completion(`another subset prompt ${i} `.repeat(10)), { metadata: subsetHint(two) });
      expect(two).toContain(r.address);
      await r.call.end();
    }
  });

  it('empty subset, or a subset of unknown pods → immediate 503', async () => {
    for (const [id, subset] of [
      ['epp-empty-subset', []],
      ['epp-unknown-subset', ['10.255.255.1:8000']],
    ] as const) {
      const r = await pick(client, id, completion('hello '.repeat(20)), { metadata: subsetHint(subset) });
      expect(immediateStatus(r.response)).toBe(503);
      expect(r.address).toBe('');
      expect(JSON.parse(Buffer.from(r.response.immediate_response?.body ?? []).toString()).error.code).toBe('no_endpoint');
      await r.call.end();
    }
  });

  it('a body that is not a valid OpenAI request → immediate 400 naming the problem', async () => {
    const r = await pick(client, 'epp-bad', Buffer.from(JSON.stringify({ model: MODEL, prompt: 'x', max_tokens: -3 })));
    expect(immediateStatus(r.response)).toBe(400);
    expect(JSON.parse(Buffer.from(r.response.immediate_response?.body ?? []).toString()).error.message).toMatch(/max_tokens/);
    await r.call.end();
  });

  it('a request without a body is placed on its headers', async () => {
    const c = new ExtProcCall(client);
    c.send(headersMsg({ ':method': 'GET', ':path': '/v1/models', 'x-request-id': 'epp-get' }, true));
    const r = await c.next();
    const d = destinationOf(r);
    expect(engines.map(addressOf)).toContain(d.header);
    expect(d.metadata).toBe(d.header);
    await c.end();
  });

  it('the served endpoint from the proxy is counted; a fallback takes over the reservation', async () => {
    const body = completion('fallback test prompt '.repeat(10));
    const r = await pick(client, 'epp-fallback', body);
    const other = engines.map(addressOf).find((a) => a !== r.address) as string;
    r.call.send({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] } }, metadata_context: { filter_metadata: servedMeta(other) } });
    await r.call.next();
    expect(epp.state().endpoints.find((e) => e.address === other)?.inFlight).toBe(1);
    expect(epp.state().endpoints.find((e) => e.address === r.address)?.inFlight).toBe(0);
    // picked and not finished: counted as running until the stream ends
    expect(metricValue(await epp.metrics(), 'inference_objective_running_requests')).toBe(1);
    await r.call.end();
    await until(() => epp.state().endpoints.every((e) => e.inFlight === 0), 5000, 'reservation released');
    const text = await (await request(epp.metricsUrl as string)).body.text();
    expect(text).toMatch(/^inference_objective_running_requests\{model_name="[^"]+"\} 0$/m);
    const otherName = epp.state().endpoints.find((e) => e.address === other)?.name as string;
    expect(metricValue(text, 'kvmgr_epp_served_total', { endpoint: otherName, matched: 'false' })).toBe(1);
    expect(metricValue(text, 'kvmgr_epp_served_total', { matched: 'true' })).toBeGreaterThanOrEqual(3);
    expect(metricValue(text, 'inference_model_request_total')).toBeGreaterThanOrEqual(10);
    expect(metricValue(text, 'inference_pool_ready_pods')).toBe(3);
    expect(metricValue(text, 'kvmgr_epp_immediate_responses_total', { status: '503' })).toBe(2);
  });

  it('grpc.health.v1: liveness, readiness and the ext_proc service are SERVING; an unknown service is NOT_FOUND', async () => {
    const check = (service: string) =>
      new Promise<{ status?: string } | grpc.ServiceError>((resolve) => {
        (health as unknown as { Check(req: { service: string }, cb: (e: grpc.ServiceError | null, r: { status?: string }) => void): void }).Check({ service }, (e, r) => resolve(e ?? r));
      });
    for (const s of ['liveness', 'readiness', '', 'envoy.service.ext_proc.v3.ExternalProcessor']) expect(await check(s)).toEqual({ status: 'SERVING' });
    expect(((await check('nope')) as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it('a streamed body (8 request_body messages, end_of_stream only on the last, one empty): nothing answered before the last; then header and metadata agree, inside the subset', async () => {
    const prompt = 'A streamed request body arrives in pieces; the picker decides on all of it. '.repeat(10);
    const body = completion(prompt, 2);
    const only = [addressOf(engines[0] as EngineServer), addressOf(engines[1] as EngineServer)];
    const c = new ExtProcCall(client);
    c.send(headersMsg(POST('epp-streamed-1'), false, subsetHint(only)));
    expect((await c.next()).request_headers?.response?.status ?? 'CONTINUE').toBe('CONTINUE');
    const step = Math.ceil(body.length / 7);
    for (let i = 0; i < 7; i++) {
      c.send({ request_body: { body: body.subarray(i * step, (i + 1) * step), end_of_stream: false } });
      if (i === 3) c.send({ request_body: { body: Buffer.alloc(0), end_of_stream: false } });
    }
    expect(await c.quiet(150)).toBe(true); // gathered, not answered chunk by chunk
    c.send({ request_body: { body: Buffer.alloc(0), end_of_stream: true } });
    const r = await c.next();
    const d = destinationOf(r);
    expect(only).toContain(d.header);
    expect(d.metadata).toBe(d.header);
    expect(epp.state().endpoints.find((e) => e.address === d.header)?.inFlight).toBe(1);
    // the gathered body is the one the client sent: the engine serves it and its prompt is the prompt
    const json = (await forwardAndFinish(c, d.header as string, body)) as { usage: { prompt_tokens: number } };
    expect(json.usage.prompt_tokens).toBe(logs.request('epp-streamed-1')?.['promptTokens']);
    // the same body buffered (one message) goes to the same engine (its blocks are there now)
    const name = epp.state().endpoints.find((e) => e.address === d.header)?.name as string;
    await until(() => (epp.state().endpoints.find((e) => e.name === name)?.cachedBlocks ?? 0) > 0, 5000, 'KV events');
    const b = await pick(client, 'epp-streamed-2', body, { metadata: subsetHint(only) });
    expect(b.address).toBe(d.header);
    expect(destinationOf(b.response).metadata).toBe(d.header);
    await forwardAndFinish(b.call, b.address, body);
  });

  describe('malformed messages get an immediate answer and the stream ends', () => {
    /** Sends `msgs` on a fresh stream; returns the first answer and the gRPC status the server ends with. */
    async function answerTo(msgs: ProcessingRequest[]): Promise<{ status: number | undefined; error: { message: string; code: string | null }; grpcStatus: number }> {
      const c = new ExtProcCall(client);
      for (const m of msgs) c.send(m);
      let r = await c.next();
      if (r.request_headers !== undefined && r.immediate_response === undefined) r = await c.next(); // the headers' CONTINUE
      const grpcStatus = await c.closed; // the server ends the stream itself
      c.call.end();
      return { status: immediateStatus(r), error: immediateError(r), grpcStatus };
    }
    const body = (b: string | Buffer): ProcessingRequest => ({ request_body: { body: Buffer.from(b), end_of_stream: true } });

    it('no body: a POST whose headers end the stream; an empty body', async () => {
      const a = await answerTo([headersMsg(POST('bad-nobody'), true)]);
      expect(a).toMatchObject({ status: 400, grpcStatus: grpc.status.OK, error: { code: 'invalid_value' } });
      expect(a.error.message).toBe('request body: missing; POST /v1/completions takes a JSON request body');
      const b = await answerTo([headersMsg(POST('bad-empty')), body('')]);
      expect(b).toMatchObject({ status: 400, grpcStatus: grpc.status.OK });
      expect(b.error.message).toBe('request body: empty; POST /v1/completions takes a JSON request body');
    });

    it('a body that is not JSON, or JSON that is not a request', async () => {
      const a = await answerTo([headersMsg(POST('bad-json')), body('{"model": "m", "prompt": ')]);
      expect(a).toMatchObject({ status: 400, grpcStatus: grpc.status.OK, error: { code: 'invalid_value' } });
      expect(a.error.message).toMatch(/^request body: not JSON \(/);
      const b = await answerTo([headersMsg(POST('bad-array')), body('[1, 2, 3]')]);
      expect(b.status).toBe(400);
      expect(b.error.message).not.toContain('\n');
      const c = await answerTo([headersMsg(postHeaders('bad-chat', '/v1/chat/completions')), body(JSON.stringify({ model: MODEL, messages: 'hello' }))]);
      expect(c.status).toBe(400);
      expect(c.error.message).toMatch(/messages/);
    });

    it('an unknown model → 404 model_not_found naming both models', async () => {
      const a = await answerTo([headersMsg(POST('bad-model')), body(JSON.stringify({ model: 'no-such-model', prompt: 'hi', max_tokens: 1 }))]);
      expect(a).toMatchObject({ status: 404, grpcStatus: grpc.status.OK, error: { code: 'model_not_found' } });
      expect(a.error.message).toBe(`The model \`no-such-model\` does not exist. This endpoint picker's pool serves ${JSON.stringify(MODEL)} (the gateway config's model).`);
      expect(epp.state().endpoints.every((e) => e.inFlight === 0)).toBe(true);
    });

    it('out-of-protocol messages: nothing set, a body before headers, headers twice', async () => {
      const a = await answerTo([{}]);
      expect(a.status).toBe(400);
      expect(a.error.message).toMatch(/^ext_proc: message with no request set; expected one of request_headers/);
      const b = await answerTo([body(completion('x'))]);
      expect(b.status).toBe(400);
      expect(b.error.message).toMatch(/^ext_proc: request_body before request_headers/);
      const c = await answerTo([headersMsg(POST('twice')), headersMsg(POST('twice'))]);
      expect(c.status).toBe(400);
      expect(c.error.message).toMatch(/second request_headers/);
    });

    it('bytes that are not a ProcessingRequest: the server ends the stream with a gRPC error', async () => {
      const Raw = grpc.makeGenericClientConstructor(
        { Process: { path: '/envoy.service.ext_proc.v3.ExternalProcessor/Process', requestStream: true, responseStream: true, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } },
        'Raw',
      );
      const raw = new Raw(epp.address, grpc.credentials.createInsecure());
      try {
        const call = (raw as unknown as { Process(): grpc.ClientDuplexStream<Buffer, Buffer> }).Process();
        const status = new Promise<number>((resolve) => {
          call.on('status', (s: grpc.StatusObject) => resolve(s.code));
          call.on('error', () => undefined);
          call.on('data', () => undefined);
        });
        call.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])); // field 1, length-delimited, length past the end
        expect(await status).not.toBe(grpc.status.OK);
        call.end();
      } finally {
        raw.close();
      }
      // the picker still answers the next request
      const r = await pick(client, 'after-garbage', completion('still here'));
      expect(r.address).not.toBe('');
      await r.call.end();
    });
  });
});

describe('epp: admission (DEFER, then 429) and a pods file', () => {
  let engine: EngineServer;
  let epp: Epp;
  let client: grpc.Client;
  let dir: string;
  const logs = new LogSink();

  beforeAll(async () => {
    engine = await createEngineServer({ port: 0, timeScale: 50 });
    dir = await mkdtemp(join(tmpdir(), 'kvmgr-epp-'));
    const pods = join(dir, 'pods.yaml');
    await writeFile(pods, `- address: ${addressOf(engine)}\n  engine: kvmgr\n  role: both\n  kvCapacityTokens: 2000\n`);
    epp = await createEpp(
      { gateway: { model: MODEL, admission: { maxQueue: 1, maxWaitMs: 20_000, retryAfterS: 3 } }, podsFile: pods, grpcHost: '127.0.0.1', grpcPort: 0, metricsPort: null },
      { logStream: logs },
    );
    await until(() => epp.state().endpoints.every((e) => e.healthy), 30_000, 'the endpoint healthy');
    client = new (loadEppProtos().extProc)(epp.address, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await epp?.close();
    await engine?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('the pods file gives the endpoints; no room → DEFER until a request ends; queue full → immediate 429 with retry-after', async () => {
    expect(epp.state().endpoints.map((e) => e.address)).toEqual([addressOf(engine)]);
    const a = await pick(client, 'adm-a', completion('first big request', 1500));
    expect(a.address).toBe(addressOf(engine));
    // no room for b: it waits in the admission queue (the stream stays open, nothing answered)
    const b = new ExtProcCall(client);
    b.send(headersMsg(POST('adm-b')));
    await b.next();
    b.send({ request_body: { body: completion('second big request', 1500), end_of_stream: true } });
    await until(() => epp.state().queueDepth === 1, 5000, 'b deferred');
    expect(await b.quiet(100)).toBe(true);
    // the queue (maxQueue 1) is full: c is shed
    const c = await pick(client, 'adm-c', completion('third big request', 1500));
    expect(immediateStatus(c.response)).toBe(429);
    const retry = c.response.immediate_response?.headers?.set_headers?.find((h) => h.header.key === 'retry-after')?.header;
    expect(Buffer.from(retry?.raw_value ?? []).toString()).toBe('3');
    await c.call.end();
    // a ends → b is placed
    await a.call.end();
    const rb = await b.next();
    expect(destinationOf(rb).header).toBe(addressOf(engine));
    expect(logs.decision('adm-b').admission).toBe('defer');
    await b.end();
  });

  it('the pods file is re-read: a pod removed from it leaves the pool', async () => {
    const file = join(dir, 'pods.yaml');
    await writeFile(file, '[]\n');
    await epp.reloadPods();
    expect(epp.state().endpoints).toEqual([]);
    const r = await pick(client, 'pods-none', completion('anyone there?'));
    expect(immediateStatus(r.response)).toBe(503);
    await r.call.end();
  });
});
