/**
 * The endpoint picker in Envoy's FULL_DUPLEX_STREAMED body mode, on real sockets: engine servers
 * (`@kvmgr/engine-server`) on 127.0.0.1, the picker's gRPC server on an ephemeral port, and a
 * grpc-js client built from the same (vendored, `protos/envoy-api`) Envoy protos that drives each
 * stream the way Envoy does in that mode: `protocol_config` on the first message, the request
 * body streamed in chunks without waiting for the headers' answer, and the body taken back from
 * the processor's `streamed_response`s.
 */
import * as grpc from '@grpc/grpc-js';
import { type EngineServer, createEngineServer } from '@kvmgr/engine-server';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Epp, type ProcessingRequest, type ProcessingResponse, createEpp, envoyProtoDirs, loadEppProtos } from '../src/index.js';
import { ExtProcCall, destinationOf, fullDuplex, headersMsg, immediateError, immediateStatus, postHeaders, servedMeta, streamedOf, subsetHint } from './epp-client.js';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
/** The picker's largest streamed_response chunk (Envoy recommends at most 64K bytes). */
const CHUNK = 64 * 1024;

function completion(prompt: string, maxTokens = 2, padding = 0): Buffer {
  // `padding` spaces inside the JSON make a large body of few tokens
  return Buffer.from(`{"model": ${JSON.stringify(MODEL)}, "prompt": ${JSON.stringify(prompt)},${' '.repeat(padding)} "max_tokens": ${maxTokens}}`);
}

const addressOf = (e: EngineServer) => new URL(e.url).host;

async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sends `body` in `n` `request_body` messages; `end_of_stream` on the last only when `eos`. */
function sendBody(c: ExtProcCall, body: Buffer, n: number, eos = true): void {
  const step = Math.ceil(body.length / n);
  for (let i = 0; i < n; i++) c.send({ request_body: { body: body.subarray(i * step, (i + 1) * step), end_of_stream: eos && i === n - 1 } });
}

/** Reads request-body answers until one carries `end_of_stream` (or `count` of them when given); returns them. */
async function bodyAnswers(c: ExtProcCall, count?: number): Promise<ProcessingResponse[]> {
  const out: ProcessingResponse[] = [];
  for (;;) {
    const r = await c.next();
    out.push(r);
    expect(r.request_body).toBeDefined();
    const s = streamedOf(r);
    expect(s).toBeDefined();
    if (count === undefined ? s?.endOfStream === true : out.length === count) return out;
  }
}

describe('epp: FULL_DUPLEX_STREAMED body mode', () => {
  let engines: EngineServer[] = [];
  let epp: Epp;
  let client: grpc.Client;

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) engines.push(await createEngineServer({ port: 0, timeScale: 50 }));
    epp = await createEpp(
      {
        gateway: { model: MODEL, endpoints: engines.map((e, i) => ({ name: `e${i}`, url: e.url })), scrape: { intervalMs: 200 }, server: { logLevel: 'warn' } },
        grpcHost: '127.0.0.1',
        grpcPort: 0,
        metricsPort: null,
      },
      { logStream: { write: () => true } },
    );
    await until(() => epp.state().endpoints.every((e) => e.healthy), 30_000, 'every endpoint healthy');
    client = new (loadEppProtos().extProc)(epp.address, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await epp?.close();
    for (const e of engines) await e.close();
    engines = [];
  });

  it('the loaded protos are the vendored ones: FULL_DUPLEX_STREAMED, protocol_config and streamed_response survive the wire', () => {
    expect(envoyProtoDirs()[0]).toMatch(/[/\\]protos[/\\]envoy-api$/);
    const m = loadEppProtos().extProc.service['Process'] as grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>;
    // an older copy has no such field or enum value: protobufjs would drop them on the way
    const req = m.requestDeserialize(m.requestSerialize(headersMsg(postHeaders('proto'), false, undefined, fullDuplex('FULL_DUPLEX_STREAMED'))));
    expect(req.protocol_config).toEqual({ request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' });
    const res = m.responseDeserialize(m.responseSerialize({ request_body: { response: { body_mutation: { streamed_response: { body: Buffer.from('abc'), end_of_stream: true } } } } }));
    expect(streamedOf(res)).toEqual({ body: Buffer.from('abc'), endOfStream: true });
  });

  it('a body in several chunks: nothing answered before its end; then one headers answer (destination, metadata, no mode_override) and the body back byte for byte; the engine serves it', async () => {
    const body = completion('Full duplex: the processor holds the body and hands it back. '.repeat(12));
    const c = new ExtProcCall(client);
    c.send(headersMsg(postHeaders('fdx-1'), false, undefined, fullDuplex()));
    expect(await c.quiet(100)).toBe(true); // the headers wait for the body
    sendBody(c, body, 5, false);
    expect(await c.quiet(150)).toBe(true); // gathered, not answered chunk by chunk
    c.send({ request_body: { body: Buffer.alloc(0), end_of_stream: true } });
    const h = await c.next();
    expect(h.request_headers?.response?.status ?? 'CONTINUE').toBe('CONTINUE');
    expect(h.request_body).toBeUndefined();
    expect(h.mode_override).toBeUndefined();
    const d = destinationOf(h);
    expect(engines.map(addressOf)).toContain(d.header);
    expect(d.metadata).toBe(d.header);
    expect(d.clearRouteCache).toBe(true);
    expect(h.request_headers?.response?.header_mutation?.set_headers?.[0]?.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    const parts = await bodyAnswers(c);
    const back = Buffer.concat(parts.map((r) => streamedOf(r)?.body ?? Buffer.alloc(0)));
    expect(back.equals(body)).toBe(true);
    expect(parts.slice(0, -1).every((r) => streamedOf(r)?.endOfStream === false)).toBe(true);
    expect(epp.state().endpoints.find((e) => e.address === d.header)?.inFlight).toBe(1);
    // what Envoy would forward: the handed-back body, to the picked engine
    const res = await request(`http://${d.header}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: back });
    expect(res.statusCode).toBe(200);
    const json = (await res.body.json()) as { usage: { prompt_tokens: number } };
    expect(json.usage.prompt_tokens).toBeGreaterThan(64);
    c.send({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] } }, metadata_context: { filter_metadata: servedMeta(d.header as string) } });
    expect((await c.next()).response_headers?.response?.status ?? 'CONTINUE').toBe('CONTINUE');
    expect(await c.end()).toBe(grpc.status.OK);
    await until(() => epp.state().endpoints.every((e) => e.inFlight === 0), 5000, 'reservation released');
  });

  it('a body larger than one streamed chunk comes back in 64 KiB chunks, end_of_stream on the last only', async () => {
    const body = completion('a large body of few tokens', 2, 2 * CHUNK + 1000);
    const c = new ExtProcCall(client);
    c.send(headersMsg(postHeaders('fdx-large'), false, undefined, fullDuplex()));
    sendBody(c, body, 7);
    const h = await c.next();
    expect(engines.map(addressOf)).toContain(destinationOf(h).header);
    const parts = await bodyAnswers(c);
    expect(parts.length).toBe(Math.ceil(body.length / CHUNK));
    expect(parts.map((r) => streamedOf(r)?.body.length)).toEqual(parts.map((_r, i) => Math.min(CHUNK, body.length - i * CHUNK)));
    expect(parts.map((r) => streamedOf(r)?.endOfStream)).toEqual(parts.map((_r, i) => i === parts.length - 1));
    expect(Buffer.concat(parts.map((r) => streamedOf(r)?.body ?? Buffer.alloc(0))).equals(body)).toBe(true);
    await c.end();
  });

  it('the subset hint is honoured', async () => {
    const two = [addressOf(engines[0] as EngineServer), addressOf(engines[2] as EngineServer)];
    for (let i = 0; i < 4; i++) {
      const body = completion(`full-duplex subset prompt ${i} `.repeat(10));
      const c = new ExtProcCall(client);
      c.send(headersMsg(postHeaders(`fdx-subset-${i}`), false, subsetHint(two), fullDuplex()));
      sendBody(c, body, 3);
      const d = destinationOf(await c.next());
      expect(two).toContain(d.header);
      expect(d.metadata).toBe(d.header);
      expect(Buffer.concat((await bodyAnswers(c)).map((r) => streamedOf(r)?.body ?? Buffer.alloc(0))).equals(body)).toBe(true);
      await c.end();
    }
  });

  describe('errors are immediate responses, and the picker ends the stream', () => {
    /** Sends the headers (full-duplex) and `body` in chunks; returns the first answer and the gRPC status. */
    async function answerTo(id: string, body: Buffer, metadata?: Parameters<typeof headersMsg>[2]): Promise<{ r: ProcessingResponse; grpcStatus: number }> {
      const c = new ExtProcCall(client);
      c.send(headersMsg(postHeaders(id), false, metadata, fullDuplex('FULL_DUPLEX_STREAMED')));
      sendBody(c, body, 3);
      const r = await c.next();
      const grpcStatus = await c.closed;
      c.call.end();
      return { r, grpcStatus };
    }

    it('an empty subset → 503', async () => {
      const a = await answerTo('fdx-empty-subset', completion('hello '.repeat(20)), subsetHint([]));
      expect(a.r.request_headers).toBeUndefined();
      expect(immediateStatus(a.r)).toBe(503);
      expect(immediateError(a.r).code).toBe('no_endpoint');
      expect(a.grpcStatus).toBe(grpc.status.OK);
    });

    it('a body that is not JSON → 400, an unknown model → 404', async () => {
      const a = await answerTo('fdx-bad-json', Buffer.from('{"model": "m", "prompt": '));
      expect(a.r.request_headers).toBeUndefined();
      expect(immediateStatus(a.r)).toBe(400);
      expect(immediateError(a.r).message).toMatch(/^request body: not JSON \(/);
      expect(a.grpcStatus).toBe(grpc.status.OK);
      const b = await answerTo('fdx-bad-model', Buffer.from(JSON.stringify({ model: 'no-such-model', prompt: 'hi', max_tokens: 1 })));
      expect(immediateStatus(b.r)).toBe(404);
      expect(b.grpcStatus).toBe(grpc.status.OK);
      expect(epp.state().endpoints.every((e) => e.inFlight === 0)).toBe(true);
    });

    it('a request_body after the body ended → 400 (out of protocol), the first placement released', async () => {
      const c = new ExtProcCall(client);
      c.send(headersMsg(postHeaders('fdx-twice'), false, undefined, fullDuplex()));
      sendBody(c, completion('once'), 1);
      await c.next();
      await bodyAnswers(c);
      c.send({ request_body: { body: completion('twice'), end_of_stream: true } });
      const r = await c.next();
      expect(immediateStatus(r)).toBe(400);
      expect(immediateError(r).message).toMatch(/request_body after the end of the request body/);
      expect(await c.closed).toBe(grpc.status.OK);
      c.call.end();
      await until(() => epp.state().endpoints.every((e) => e.inFlight === 0), 5000, 'reservation released');
    });
  });

  it('request trailers end the body: headers answer, the body back without end_of_stream, then the trailers answer', async () => {
    const body = completion('a body that ends with trailers '.repeat(6));
    const c = new ExtProcCall(client);
    c.send(headersMsg(postHeaders('fdx-trailers'), false, undefined, fullDuplex()));
    sendBody(c, body, 4, false);
    expect(await c.quiet(100)).toBe(true);
    c.send({ request_trailers: { trailers: { headers: [{ key: 'x-done', raw_value: Buffer.from('1') }] } } });
    const h = await c.next();
    expect(engines.map(addressOf)).toContain(destinationOf(h).header);
    const parts: ProcessingResponse[] = [];
    let r = await c.next();
    while (r.request_body !== undefined) {
      parts.push(r);
      r = await c.next();
    }
    expect(r.request_trailers).toBeDefined();
    expect(parts.every((p) => streamedOf(p)?.endOfStream === false)).toBe(true);
    expect(Buffer.concat(parts.map((p) => streamedOf(p)?.body ?? Buffer.alloc(0))).equals(body)).toBe(true);
    await c.end();
  });

  it('response_body_mode FULL_DUPLEX_STREAMED: every response chunk is handed back with its own end_of_stream', async () => {
    const c = new ExtProcCall(client);
    c.send(headersMsg(postHeaders('fdx-response'), false, undefined, fullDuplex('FULL_DUPLEX_STREAMED')));
    sendBody(c, completion('the response comes back in pieces'), 2);
    const d = destinationOf(await c.next());
    await bodyAnswers(c);
    c.send({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }, { key: 'content-type', raw_value: Buffer.from('text/event-stream') }] } } });
    const rh = await c.next();
    expect(rh.response_headers?.response?.status ?? 'CONTINUE').toBe('CONTINUE');
    expect(rh.mode_override).toBeUndefined();
    const chunks = ['data: {"choices":[{"text":"a"}]}\n\n', 'data: {"choices":[{"text":"b"}]}\n\n', '', 'data: [DONE]\n\n'];
    for (let i = 0; i < chunks.length; i++) {
      const eos = i === chunks.length - 1;
      c.send({ response_body: { body: Buffer.from(chunks[i] as string), end_of_stream: eos } });
      const r = await c.next();
      expect(r.response_body).toBeDefined();
      expect(streamedOf(r)).toEqual({ body: Buffer.from(chunks[i] as string), endOfStream: eos });
    }
    expect(epp.state().endpoints.find((e) => e.address === d.header)?.inFlight).toBe(1);
    expect(await c.end()).toBe(grpc.status.OK);
    await until(() => epp.state().endpoints.every((e) => e.inFlight === 0), 5000, 'reservation released');
  });

  it('a request body BUFFERED with a full-duplex response: CONTINUE without mode_override, the body answered as in BUFFERED mode', async () => {
    const c = new ExtProcCall(client);
    c.send(headersMsg(postHeaders('fdx-buffered-request'), false, undefined, { request_body_mode: 'BUFFERED', response_body_mode: 'FULL_DUPLEX_STREAMED' }));
    const h = await c.next();
    expect(h.request_headers?.response?.status ?? 'CONTINUE').toBe('CONTINUE');
    expect(h.mode_override).toBeUndefined();
    c.send({ request_body: { body: completion('buffered request, streamed response'), end_of_stream: true } });
    const r = await c.next();
    const d = destinationOf(r);
    expect(engines.map(addressOf)).toContain(d.header);
    expect(d.bodyMutated).toBe(false);
    c.send({ response_body: { body: Buffer.from('{"ok":true}'), end_of_stream: true } });
    expect(streamedOf(await c.next())).toEqual({ body: Buffer.from('{"ok":true}'), endOfStream: true });
    await c.end();
  });

  it('a request without a body is placed on its headers, as in BUFFERED mode', async () => {
    const c = new ExtProcCall(client);
    c.send(headersMsg({ ':method': 'GET', ':path': '/v1/models', 'x-request-id': 'fdx-get' }, true, undefined, fullDuplex()));
    const r = await c.next();
    const d = destinationOf(r);
    expect(engines.map(addressOf)).toContain(d.header);
    expect(d.metadata).toBe(d.header);
    expect(r.mode_override).toBeUndefined();
    await c.end();
  });
});
