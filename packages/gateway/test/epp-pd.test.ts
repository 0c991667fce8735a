/**
 * P/D in the endpoint picker, as llm-d's EPP does it: the decode endpoint is the destination and
 * the prefill endpoint goes in the `x-prefiller-host-port` request header (for llm-d's routing
 * sidecar), when the router's decider disaggregates. Engine servers with the prefill and decode
 * roles on 127.0.0.1; a grpc-js ext_proc client with Envoy's protos.
 */
import * as grpc from '@grpc/grpc-js';
import { type EngineServer, createEngineServer } from '@kvmgr/engine-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Epp, type ProcessingResponse, createEpp, loadEppProtos } from '../src/index.js';
import { ExtProcCall, destinationOf, fullDuplex, headersMsg, pickOver, postHeaders, streamedOf } from './epp-client.js';
import { LogSink, MODEL, until } from './helpers.js';

function completion(prompt: number[]): Buffer {
  return Buffer.from(JSON.stringify({ model: MODEL, prompt, max_tokens: 4 }));
}

function prompt(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => 1000 + ((i * 7919 + seed * 104_729) % 50_000));
}

function headerMutation(r: ProcessingResponse): { set: Record<string, string>; remove: string[] } {
  const m = (r.request_body ?? r.request_headers)?.response?.header_mutation;
  const set: Record<string, string> = {};
  for (const o of m?.set_headers ?? []) set[o.header.key] = o.header.raw_value !== undefined && o.header.raw_value.length > 0 ? Buffer.from(o.header.raw_value).toString() : (o.header.value ?? '');
  return { set, remove: m?.remove_headers ?? [] };
}

describe('epp: P/D sets x-prefiller-host-port', () => {
  let prefill: EngineServer;
  let decode: EngineServer;
  let epp: Epp;
  let client: grpc.Client;
  const logs = new LogSink();
  const address = (e: EngineServer) => new URL(e.url).host;

  beforeAll(async () => {
    prefill = await createEngineServer({ port: 0, timeScale: 50, numGpuBlocks: 1024, pd: { role: 'prefill' } });
    decode = await createEngineServer({ port: 0, timeScale: 50, numGpuBlocks: 1024, pd: { role: 'decode' } });
    epp = await createEpp(
      {
        gateway: {
          model: MODEL,
          endpoints: [
            { name: 'p0', url: prefill.url, role: 'prefill' },
            { name: 'd0', url: decode.url, role: 'decode' },
          ],
          pd: { threshold: 256 },
        },
        grpcHost: '127.0.0.1',
        grpcPort: 0,
        metricsPort: null,
      },
      { logStream: logs },
    );
    await until(() => epp.state().endpoints.every((e) => e.healthy), 30_000, 'every endpoint healthy');
    client = new (loadEppProtos().extProc)(epp.address, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await epp?.close();
    await prefill?.close();
    await decode?.close();
  });

  it('a long uncached prompt: destination = the decode engine, x-prefiller-host-port = the prefill engine; the log line shows the P/D decision', async () => {
    const r = await pickOver(client, postHeaders('epp-pd-1', '/v1/completions', { 'x-prefiller-host-port': '10.9.9.9:1' }), completion(prompt(600, 1)));
    expect(destinationOf(r.response).header).toBe(address(decode));
    const m = headerMutation(r.response);
    expect(m.set['x-prefiller-host-port']).toBe(address(prefill));
    expect(m.remove).toEqual([]);
    const d = logs.request('epp-pd-1')?.['decision'] as { endpoint: string; reason: string; pd: Record<string, unknown> };
    expect(d.endpoint).toBe('d0');
    expect(d.reason).toBe('disaggregated');
    expect(d.pd).toMatchObject({ disaggregated: true, prefill: 'p0', decode: 'd0', uncachedTokens: 600 });
    await r.call.end();
  });

  it('a short prompt is not disaggregated: the decode engine alone, and a client x-prefiller-host-port is removed', async () => {
    const r = await pickOver(client, postHeaders('epp-pd-2', '/v1/completions', { 'x-prefiller-host-port': '10.9.9.9:1' }), completion(prompt(40, 2)));
    expect(destinationOf(r.response).header).toBe(address(decode));
    const m = headerMutation(r.response);
    expect(m.set).not.toHaveProperty('x-prefiller-host-port');
    expect(m.remove).toEqual(['x-prefiller-host-port']);
    expect(logs.request('epp-pd-2')?.['decision']).toMatchObject({ reason: 'below-threshold', pd: { disaggregated: false } });
    await r.call.end();
    await until(() => epp.state().endpoints.every((e) => e.inFlight === 0), 5000, 'reservations released');
  });

  it('full-duplex mode: the held headers answer carries both headers, then the body comes back unchanged', async () => {
    const body = completion(prompt(600, 3));
    const c = new ExtProcCall(client);
    c.send(headersMsg(postHeaders('epp-pd-fdx'), false, undefined, fullDuplex()));
    c.send({ request_body: { body, end_of_stream: true } });
    const h = await c.next();
    expect(h.request_headers).toBeDefined();
    expect(destinationOf(h)).toMatchObject({ header: address(decode), metadata: address(decode) });
    expect(headerMutation(h).set['x-prefiller-host-port']).toBe(address(prefill));
    const back = streamedOf(await c.next());
    expect(back).toEqual({ body, endOfStream: true });
    await c.end();
    await until(() => epp.state().endpoints.every((e) => e.inFlight === 0), 5000, 'reservations released');
  });
});
