/**
 * P/D in the endpoint picker, as llm-d's EPP does it: the decode endpoint is the destination and
 * the prefill endpoint goes in the `x-prefiller-host-port` request header (for llm-d's routing
 * sidecar), when the router's decider disaggregates; the prompt is reserved on the prefill
 * endpoint until the response headers (or the stream's end). Engine servers with the prefill and
 * decode roles on 127.0.0.1; a grpc-js ext_proc client with Envoy's protos.
 */
import * as grpc from '@grpc/grpc-js';
import { isKvmgrError } from '@kvmgr/core';
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

/** A P/D fleet on 127.0.0.1 (prefill engines `p0…`, one decode engine `d0`) behind a picker, and an ext_proc client to it. */
interface PdFleet {
  readonly prefills: EngineServer[];
  readonly decode: EngineServer;
  readonly epp: Epp;
  readonly client: grpc.Client;
  close(): Promise<void>;
}

async function startPdFleet(prefillCount: number, pd: Record<string, unknown>, logs: LogSink, extra: Record<string, unknown> = {}): Promise<PdFleet> {
  const engine = (role: 'prefill' | 'decode') => createEngineServer({ port: 0, host: '127.0.0.1', timeScale: 50, numGpuBlocks: 1024, pd: { role } });
  const prefills: EngineServer[] = [];
  for (let i = 0; i < prefillCount; i++) prefills.push(await engine('prefill'));
  const decode = await engine('decode');
  const epp = await createEpp(
    {
      gateway: {
        model: MODEL,
        endpoints: [...prefills.map((e, i) => ({ name: `p${i}`, url: e.url, role: 'prefill' as const })), { name: 'd0', url: decode.url, role: 'decode' as const }],
        pd,
        ...extra,
      },
      grpcHost: '127.0.0.1',
      grpcPort: 0,
      metricsPort: null,
    },
    { logStream: logs },
  );
  await until(() => epp.state().endpoints.every((e) => e.healthy), 30_000, 'every endpoint healthy');
  const client = new (loadEppProtos().extProc)(epp.address, grpc.credentials.createInsecure());
  return {
    prefills,
    decode,
    epp,
    client,
    close: async () => {
      client.close();
      await epp.close();
      for (const e of prefills) await e.close();
      await decode.close();
    },
  };
}

describe('epp: P/D sets x-prefiller-host-port', () => {
  let prefill: EngineServer;
  let decode: EngineServer;
  let epp: Epp;
  let client: grpc.Client;
  const logs = new LogSink();
  const address = (e: EngineServer) => new URL(e.url).host;

  let fleet: PdFleet | undefined;

  beforeAll(async () => {
    fleet = await startPdFleet(1, { threshold: 256 }, logs);
    ({ decode, epp, client } = fleet);
    prefill = fleet.prefills[0] as EngineServer;
  });
  afterAll(async () => {
    await fleet?.close();
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

describe('epp: P/D reserves the prompt on the prefill endpoint until the response headers', () => {
  let decode: EngineServer;
  let epp: Epp;
  let client: grpc.Client;
  const logs = new LogSink();
  const PROMPT = 600;

  let fleet: PdFleet | undefined;

  beforeAll(async () => {
    // no scrape after the first one while the test runs: nothing the engines report replaces the picker's own reservations
    fleet = await startPdFleet(2, { mode: 'prefiller-header', threshold: 256 }, logs, { scrape: { intervalMs: 600_000 } });
    ({ decode, epp, client } = fleet);
  });
  afterAll(async () => {
    await fleet?.close();
  });

  const byAddress = (a: string) => epp.state().endpoints.find((e) => e.address === a) as { name: string; inFlight: number; reservedTokens: number };
  const byName = (n: string) => epp.state().endpoints.find((e) => e.name === n) as { address: string; inFlight: number; reservedTokens: number };
  const prefillerOf = (r: ProcessingResponse) => headerMutation(r).set['x-prefiller-host-port'] as string;

  it('back-to-back picks see each other: the second goes to the other prefill endpoint; response headers and a cancel end the reservations', async () => {
    // 1: disaggregated; its prefill endpoint holds the prompt's tokens, the decode one the footprint
    const r1 = await pickOver(client, postHeaders('epp-pdr-1'), completion(prompt(PROMPT, 11)));
    expect(r1.address).toBe(byName('d0').address);
    const a = prefillerOf(r1.response);
    expect([byName('p0').address, byName('p1').address]).toContain(a);
    expect(byAddress(a)).toMatchObject({ inFlight: 1, reservedTokens: PROMPT });
    expect(byName('d0')).toMatchObject({ inFlight: 1, reservedTokens: PROMPT + 4 });
    expect(logs.request('epp-pdr-1')?.['decision']).toMatchObject({ reason: 'disaggregated', pd: { mode: 'prefiller-header', disaggregated: true, prefill: byAddress(a).name } });

    // 2, before 1's response headers: the other prefill endpoint (the first one is loaded)
    const r2 = await pickOver(client, postHeaders('epp-pdr-2'), completion(prompt(PROMPT, 12)));
    const b = prefillerOf(r2.response);
    expect(b).not.toBe(a);
    expect(byAddress(a)).toMatchObject({ inFlight: 1, reservedTokens: PROMPT });
    expect(byAddress(b)).toMatchObject({ inFlight: 1, reservedTokens: PROMPT });

    // 1's response headers: its prefill reservation ends (answered in order: gone once the CONTINUE is back); the decode one stays
    r1.call.send({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] } } });
    expect((await r1.call.next()).response_headers?.response?.status).toBe('CONTINUE');
    expect(byAddress(a)).toMatchObject({ inFlight: 0, reservedTokens: 0 });
    expect(byAddress(b)).toMatchObject({ inFlight: 1, reservedTokens: PROMPT });
    expect(byName('d0').inFlight).toBe(2);

    // 3: back on the first prefill endpoint (free again), the second still holds 2's prompt
    const r3 = await pickOver(client, postHeaders('epp-pdr-3'), completion(prompt(PROMPT, 13)));
    expect(prefillerOf(r3.response)).toBe(a);
    expect(byAddress(a)).toMatchObject({ inFlight: 1, reservedTokens: PROMPT });

    // 2 cancelled before its response headers (the client went away): both of its reservations end
    r2.call.call.cancel();
    await until(() => byAddress(b).inFlight === 0, 5000, "the cancelled stream's prefill reservation to end");
    expect(byAddress(b).reservedTokens).toBe(0);
    await until(() => byName('d0').inFlight === 2, 5000, "the cancelled stream's decode reservation to end");

    // 3 ends without response headers (the upstream failed, say): its prefill reservation ends with the stream
    await r3.call.end();
    await until(() => byAddress(a).inFlight === 0, 5000, "the ended stream's prefill reservation to end");
    await r1.call.end();
    await until(() => epp.state().endpoints.every((e) => e.inFlight === 0 && e.reservedTokens === 0), 5000, 'every reservation released');
  });

  it('a stream that errors after its pick: the prefill reservation does not leak', async () => {
    const r = await pickOver(client, postHeaders('epp-pdr-4'), completion(prompt(PROMPT, 14)));
    const a = prefillerOf(r.response);
    expect(byAddress(a).inFlight).toBe(1);
    // an out-of-protocol message: an immediate 400 and the picker ends the stream itself
    r.call.send({ request_headers: { headers: { headers: [] }, end_of_stream: false } });
    expect((await r.call.next()).immediate_response).toBeDefined();
    expect(await r.call.closed).toBe(grpc.status.OK);
    await until(() => epp.state().endpoints.every((e) => e.inFlight === 0 && e.reservedTokens === 0), 5000, 'every reservation released');
  });

  it('pd.mode: two-legs set explicitly is refused at start with one line naming the key; left out, the picker runs (prefiller-header)', async () => {
    const err = await createEpp({ gateway: { model: MODEL, endpoints: [{ url: decode.url }], pd: { mode: 'two-legs' } }, grpcHost: '127.0.0.1', grpcPort: 0, metricsPort: null }, { logStream: new LogSink() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isKvmgrError(err) && err.code).toBe('KVMGR_BAD_CONFIG');
    expect((err as Error).message).toMatch(/^pd\.mode: two-legs .*prefiller-header/);
    expect((err as Error).message).not.toContain('\n');
    expect(logs.lines.find((l) => l['event'] === 'listening')).toMatchObject({ pdMode: 'prefiller-header' });
  });
});
