/**
 * Routing quality on real sockets: prefix affinity against round-robin on a multi-turn chat
 * workload through four engine servers (hit rate from the engines' own `cached_tokens`), and
 * routing replaced at run time. Faults are in faults.test.ts.
 */
import { createRng } from '@kvmgr/core';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { type Gateway, createGateway } from '../src/index.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet } from './helpers.js';

type Msg = { role: 'system' | 'user' | 'assistant'; content: string };

/** 8 conversations × 4 turns, each with its own long system prompt, interleaved in a seeded random order. */
function workload(): { session: number; user: string }[] {
  const rng = createRng(7);
  const turns: { session: number; user: string }[][] = Array.from({ length: 8 }, (_, s) => Array.from({ length: 4 }, (_, t) => ({ session: s, user: `Question ${t} of session ${s}: what about item ${s * 10 + t}?` })));
  const order: { session: number; user: string }[] = [];
  while (turns.some((t) => t.length > 0)) {
    const live = turns.filter((t) => t.length > 0);
    order.push((live[Math.floor(rng.next() * live.length)] as { session: number; user: string }[]).shift() as { session: number; user: string });
  }
  return order;
}

function systemPrompt(s: number): string {
  const words: string[] = [];
  for (let i = 0; i < 220; i++) words.push(`topic${s}-${(i * 7919 + s * 104729) % 1000}`);
  return `You are assistant number ${s}. Background: ${words.join(' ')}.`;
}

async function runWorkload(routing: string): Promise<{ hitRate: number; logs: LogSink }> {
  const fleet = await startFleet(4);
  const logs = new LogSink();
  const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), routing }, { logStream: logs });
  try {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const history = new Map<number, Msg[]>();
    let prompt = 0;
    let cached = 0;
    let i = 0;
    for (const { session, user } of workload()) {
      const msgs = history.get(session) ?? [{ role: 'system', content: systemPrompt(session) }];
      msgs.push({ role: 'user', content: user });
      const r = await client.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 8 }, { headers: { 'x-request-id': `w-${i++}` } });
      msgs.push({ role: 'assistant', content: r.choices[0]?.message.content ?? '' });
      history.set(session, msgs);
      prompt += r.usage?.prompt_tokens ?? 0;
      cached += r.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    }
    return { hitRate: cached / prompt, logs };
  } finally {
    await gw.close();
    for (const f of fleet) await f.close();
  }
}

describe('routing on a multi-turn workload', () => {
  it('prefix affinity (pa:3,qd:2,kv:2) reaches ≥ 2× the token prefix hit rate of round-robin on the same requests', async () => {
    const kv = await runWorkload('pa:3,qd:2,kv:2');
    const rr = await runWorkload('round-robin');
    console.log(`multi-turn hit rate: prefix-affinity ${(kv.hitRate * 100).toFixed(1)}%, round-robin ${(rr.hitRate * 100).toFixed(1)}%`);
    expect(kv.hitRate).toBeGreaterThan(0.5);
    expect(kv.hitRate).toBeGreaterThanOrEqual(2 * rr.hitRate);
    // every request has its decision, with scores for all four endpoints, in its log line
    const lines = kv.logs.lines.filter((l) => l['msg'] === 'request');
    expect(lines).toHaveLength(32);
    for (const l of lines) {
      const d = l['decision'] as { endpoint: string; reason: string; scores: Record<string, number> };
      expect(['scored', 'scored-tie']).toContain(d.reason);
      expect(Object.keys(d.scores)).toHaveLength(4);
    }
    // follow-up turns (24 of 32) are explained by the cached prefix the index predicted on the chosen endpoint
    const explained = lines.filter((l) => (l['decision'] as { predictedCachedTokens: number }).predictedCachedTokens > 0);
    expect(explained.length).toBeGreaterThanOrEqual(24);
    // the baseline really was round-robin
    const rrLines = rr.logs.lines.filter((l) => l['msg'] === 'request');
    expect((rrLines[0]?.['decision'] as { reason: string } | undefined)?.reason).toBe('round-robin');
  });
});

describe('PUT /admin/routing', () => {
  let fleet: TestEngine[];
  let gw: Gateway;
  afterAll(async () => {
    await gw?.close();
    for (const f of fleet ?? []) await f.close();
  });

  it('a bad configuration changes nothing; a good one is applied at once', async () => {
    fleet = await startFleet(2);
    gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), routing: 'pa:3,qd:2,kv:2' }, { logStream: new LogSink() });
    const get = async () => (await (await request(`${gw.url}/admin/routing`)).body.json()) as { scorers: { name: string; weight: number }[]; strategy: string };
    const before = await get();
    const routerBefore = gw.router();
    for (const bad of [
      { body: JSON.stringify({ scorers: 'pa:3,foo:1' }), type: 'application/json', msg: 'foo' },
      { body: JSON.stringify({ scorers: [{ name: 'pa', weight: -1 }] }), type: 'application/json', msg: 'routing.scorers' },
      { body: 'scorers: pa:3\nbogus: 1\n', type: 'application/yaml', msg: 'bogus' },
      { body: JSON.stringify({ model: 'other-model' }), type: 'application/json', msg: 'routing.model' },
    ]) {
      const r = await request(`${gw.url}/admin/routing`, { method: 'PUT', headers: { 'content-type': bad.type }, body: bad.body });
      expect(r.statusCode).toBe(400);
      const e = (await r.body.json()) as { error: { message: string } };
      expect(e.error.message).toContain(bad.msg);
      expect(e.error.message).not.toContain('\n');
      expect(await get()).toEqual(before);
      expect(gw.router()).toBe(routerBefore);
    }
    const ok = await request(`${gw.url}/admin/routing`, { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: 'scorers: pa:1,qd:1\npicker: weighted-random\n' });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
    const after = await get();
    expect(after.scorers.map((s) => s.name)).toEqual(['prefix-affinity', 'queue-depth']);
    expect(gw.router()).not.toBe(routerBefore);
    // still routes
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const c = await client.completions.create({ model: MODEL, prompt: 'still routing', max_tokens: 1 });
    expect(c.choices).toHaveLength(1);
  });
});
