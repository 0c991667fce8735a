/**
 * Issue #26 check 2: the endpoints the picker chooses give the same prefix hit rate as
 * `kvmgr serve` on the same multi-turn requests. Each system gets a fresh fleet of four engine
 * servers (empty caches, counters at zero). The gateway run proxies the requests itself; the
 * picker run does what Envoy does: asks the picker over ext_proc (headers, then the body), sends
 * the request to the picked engine itself, reports the served endpoint and ends the stream. The
 * two runs send exactly the same request bodies in the same order (the assistant turns are
 * written by the workload, not taken from either run's engines, so neither fleet's cache holds
 * an answer the other's does not). Hit rates come from the engines' own counters
 * (`vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total`, tokens, summed over the fleet).
 */
import * as grpc from '@grpc/grpc-js';
import { createRng } from '@kvmgr/core';
import OpenAI from 'openai';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { createEpp, createGateway, loadEppProtos } from '../src/index.js';
import { pickOver, postHeaders, servedMeta } from './epp-client.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet, until } from './helpers.js';

type Msg = { role: 'system' | 'user' | 'assistant'; content: string };
type ChatRequest = { model: string; messages: Msg[]; max_tokens: number };

const SESSIONS = 10;
const TURNS = 5;
const ROUTING = 'pa:3,qd:2,kv:2';

/** SESSIONS conversations × TURNS turns, each with its own long system prompt, interleaved in a seeded random order. */
function order(): { session: number; user: string }[] {
  const rng = createRng(26);
  const turns = Array.from({ length: SESSIONS }, (_, s) => Array.from({ length: TURNS }, (_, t) => ({ session: s, user: `Turn ${t} of session ${s}: and what about item ${s * 10 + t}?` })));
  const out: { session: number; user: string }[] = [];
  while (turns.some((t) => t.length > 0)) {
    const live = turns.filter((t) => t.length > 0);
    out.push((live[Math.floor(rng.next() * live.length)] as { session: number; user: string }[]).shift() as { session: number; user: string });
  }
  return out;
}

/** The chat requests, in order: each turn carries its conversation so far. */
function requests(): ChatRequest[] {
  const history = new Map<number, Msg[]>();
  return order().map(({ session, user }, i) => {
    const msgs = history.get(session) ?? [{ role: 'system', content: systemPrompt(session) }];
    msgs.push({ role: 'user', content: user });
    const body: ChatRequest = { model: MODEL, messages: structuredClone(msgs), max_tokens: 8 };
    msgs.push({ role: 'assistant', content: `Answer ${i}: item ${session * 10 + msgs.length} is fine, and so is the rest of it.` });
    history.set(session, msgs);
    return body;
  });
}

function systemPrompt(s: number): string {
  const words: string[] = [];
  for (let i = 0; i < 200; i++) words.push(`subject${s}-${(i * 7919 + s * 104729) % 1000}`);
  return `You are assistant number ${s}. Background: ${words.join(' ')}.`;
}

/** Token prefix hits and queries summed over the fleet, from each engine's `/metrics`. */
async function fleetCounters(fleet: readonly TestEngine[]): Promise<{ hits: number; queries: number }> {
  let hits = 0;
  let queries = 0;
  for (const f of fleet) {
    const text = await (await request(`${f.url}/metrics`)).body.text();
    const read = (name: string) => {
      let sum = 0;
      for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      return sum;
    };
    hits += read('vllm:prefix_cache_hits_total');
    queries += read('vllm:prefix_cache_queries_total');
  }
  return { hits, queries };
}

interface RunResult {
  hitRate: number;
  /** Σ usage.prompt_tokens_details.cached_tokens / Σ usage.prompt_tokens over the responses. */
  usageHitRate: number;
  /** Index of the engine each request went to. */
  picks: number[];
}

/** The gateway run: the requests through `kvmgr serve`. */
async function gatewayRun(requests: readonly ChatRequest[]): Promise<RunResult> {
  const fleet = await startFleet(4);
  const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), routing: ROUTING }, { logStream: new LogSink() });
  try {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const picks: number[] = [];
    let prompt = 0;
    let cached = 0;
    for (const [i, body] of requests.entries()) {
      const { data: r, response } = await client.chat.completions.create(body, { headers: { 'x-request-id': `gw-${i}` } }).withResponse();
      picks.push(Number((response.headers.get('x-kvmgr-endpoint') ?? 'e-1').slice(1)));
      prompt += r.usage?.prompt_tokens ?? 0;
      cached += r.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    }
    const c = await fleetCounters(fleet);
    return { hitRate: c.hits / c.queries, usageHitRate: cached / prompt, picks };
  } finally {
    await gw.close();
    for (const f of fleet) await f.close();
  }
}

/** The picker run: the same requests, picked over ext_proc and sent to the picked engine as Envoy would. */
async function eppRun(requests: readonly ChatRequest[]): Promise<RunResult> {
  const fleet = await startFleet(4);
  const epp = await createEpp(
    { gateway: { model: MODEL, endpoints: endpointsOf(fleet), routing: ROUTING }, grpcHost: '127.0.0.1', grpcPort: 0, metricsPort: null },
    { logStream: new LogSink() },
  );
  const client = new (loadEppProtos().extProc)(epp.address, grpc.credentials.createInsecure());
  try {
    await until(() => epp.state().endpoints.every((e) => e.healthy), 30_000, 'every endpoint healthy');
    const addresses = fleet.map((f) => new URL(f.url).host);
    const engines = new Map(addresses.map((a) => [a, new OpenAI({ baseURL: `http://${a}/v1`, apiKey: 'x', maxRetries: 0 })] as const));
    const picks: number[] = [];
    let prompt = 0;
    let cached = 0;
    for (const [i, body] of requests.entries()) {
      const p = await pickOver(client, postHeaders(`epp-${i}`, '/v1/chat/completions'), Buffer.from(JSON.stringify(body)));
      const engine = engines.get(p.address);
      if (engine === undefined) throw new Error(`request ${i}: the picker answered ${JSON.stringify(p.address)}, not an engine of the fleet`);
      picks.push(addresses.indexOf(p.address));
      const r = await engine.chat.completions.create(body, { headers: { 'x-request-id': `epp-${i}` } });
      p.call.send({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] } }, metadata_context: { filter_metadata: servedMeta(p.address) } });
      await p.call.next();
      await p.call.end();
      prompt += r.usage?.prompt_tokens ?? 0;
      cached += r.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    }
    const c = await fleetCounters(fleet);
    return { hitRate: c.hits / c.queries, usageHitRate: cached / prompt, picks };
  } finally {
    client.close();
    await epp.close();
    for (const f of fleet) await f.close();
  }
}

describe('epp: prefix hit rate against kvmgr serve (issue #26 check 2)', () => {
  it(`on ${SESSIONS}×${TURNS} multi-turn chat requests through four engines, the picker's endpoints give the gateway's hit rate within 2 points`, async () => {
    const sent = requests();
    const gw = await gatewayRun(sent);
    const epp = await eppRun(sent);
    const same = gw.picks.filter((p, i) => p === epp.picks[i]).length;
    console.log(
      `multi-turn prefix hit rate (engine counters): kvmgr serve ${(gw.hitRate * 100).toFixed(2)}%, kvmgr epp ${(epp.hitRate * 100).toFixed(2)}% ` +
        `(usage.cached_tokens: ${(gw.usageHitRate * 100).toFixed(2)}% / ${(epp.usageHitRate * 100).toFixed(2)}%); same engine for ${same}/${sent.length} requests`,
    );
    expect(sent).toHaveLength(SESSIONS * TURNS);
    // the workload rewards prefix affinity: 4 of 5 turns extend a cached conversation (random placement would hit ~1/4 as often)
    expect(gw.hitRate).toBeGreaterThan(0.5);
    expect(Math.abs(gw.hitRate - gw.usageHitRate)).toBeLessThanOrEqual(0.02);
    expect(Math.abs(epp.hitRate - gw.hitRate)).toBeLessThanOrEqual(0.02);
    // the engines' counters and the usage they reported tell the same story
    expect(Math.abs(epp.hitRate - epp.usageHitRate)).toBeLessThanOrEqual(0.02);
    // every request went to an engine of the fleet
    expect(epp.picks.every((p) => p >= 0 && p < 4)).toBe(true);
  });
});
