/**
 * Live A/B through the gateway: the `openai` SDK → gateway (an `ab` section splitting
 * conversations between two routing configurations) → two engine servers on 127.0.0.1.
 */
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AbReport } from '../src/ab.js';
import { abHashUnit } from '../src/ab.js';
import { type Gateway, createGateway } from '../src/index.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet } from './helpers.js';

const SPLIT = 0.5;
const AB = { split: SPLIT, a: { name: 'prefix', routing: 'pa:3,qd:2,kv:2' }, b: { name: 'load', routing: 'qd:1,kv:1' } };

async function getJson(url: string): Promise<unknown> {
  const r = await request(url);
  expect(r.statusCode).toBe(200);
  return r.body.json();
}

async function putJson(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await request(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> };
}

describe('gateway: live A/B between two routing configurations', () => {
  let fleet: TestEngine[];
  let gw: Gateway;
  let client: OpenAI;
  const logs = new LogSink();

  beforeAll(async () => {
    fleet = await startFleet(2);
    gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), ab: AB }, { logStream: logs });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    for (const f of fleet ?? []) await f.close();
  });

  it('splits conversations by the stable hash, keeps each on one arm, and reports both arms with confidence intervals', async () => {
    const sessions = 16;
    const turns = 3;
    const armOf = new Map<string, Set<string>>();
    for (let t = 0; t < turns; t++) {
      await Promise.all(
        Array.from({ length: sessions }, async (_, s) => {
          const id = `ab-s${s}-t${t}`;
          const history = `Conversation ${s}: the user asks about topic ${s} in some detail. `.repeat(6 + t);
          if (t % 2 === 0) {
            await client.completions.create({ model: MODEL, prompt: history, max_tokens: 4 }, { headers: { 'x-request-id': id, 'x-session-id': `conv-${s}`, 'x-slo-ttft-ms': '60000' } });
          } else {
            const stream = await client.chat.completions.create(
              { model: MODEL, messages: [{ role: 'user', content: history }], max_tokens: 4, stream: true, stream_options: { include_usage: true } },
              { headers: { 'x-request-id': id, 'x-session-id': `conv-${s}` } },
            );
            for await (const _chunk of stream) {
              // drained
            }
          }
          const arm = logs.request(id)?.['ab'];
          expect(typeof arm).toBe('string');
          const seen = armOf.get(`conv-${s}`) ?? new Set<string>();
          seen.add(arm as string);
          armOf.set(`conv-${s}`, seen);
        }),
      );
    }
    // each conversation on one arm, the one the documented hash names
    for (const [conv, arms] of armOf) {
      expect(arms.size).toBe(1);
      expect([...arms][0]).toBe(abHashUnit(`s:${conv}`) < SPLIT ? 'load' : 'prefix');
    }
    const expectedB = [...armOf.keys()].filter((c) => abHashUnit(`s:${c}`) < SPLIT).length;
    expect(expectedB).toBeGreaterThan(0);
    expect(expectedB).toBeLessThan(sessions);

    const r = (await getJson(`${gw.url}/admin/ab`)) as AbReport;
    expect(r.active).toBe(true);
    expect(r.keySources.session).toBe(sessions * turns);
    expect(r.arms.b.name).toBe('load');
    expect(r.arms.b.requests).toBe(expectedB * turns);
    expect(r.arms.a.requests).toBe((sessions - expectedB) * turns);
    expect(r.arms.b.routing.scorers.map((s) => s.name).sort()).toEqual(['kv-utilization', 'queue-depth']);
    for (const arm of [r.arms.a, r.arms.b]) {
      const e2e = arm.metrics.e2eMs;
      expect(e2e.n).toBe(arm.requests);
      expect(e2e.ciLow).not.toBeNull();
      expect(e2e.ciLow as number).toBeLessThanOrEqual(e2e.mean as number);
      expect(e2e.ciHigh as number).toBeGreaterThanOrEqual(e2e.mean as number);
      expect(arm.metrics.errors.mean).toBe(0);
      expect(arm.metrics.goodput.mean).toBe(1);
      expect(arm.metrics.tpotMs.n).toBeGreaterThan(0); // streamed turns
      expect(arm.metrics.cachedShare.n).toBe(arm.requests);
    }
    // later turns of a conversation on the prefix arm hit its cache
    expect(r.arms.a.metrics.cachedShare.mean as number).toBeGreaterThan(0);
    const d = r.differences.e2eMs;
    expect(d.diff).toBeCloseTo((r.arms.b.metrics.e2eMs.mean as number) - (r.arms.a.metrics.e2eMs.mean as number), 9);
    expect(d.ciLow as number).toBeLessThanOrEqual(d.diff as number);
    expect(d.ciHigh as number).toBeGreaterThanOrEqual(d.diff as number);
    expect(d.dof as number).toBeGreaterThan(0);

    const metrics = await (await request(`${gw.url}/metrics`)).body.text();
    expect(metrics).toMatch(/kvmgr_gateway_ab_decisions_total\{arm="load",endpoint="e\d",reason="[^"]+"\} \d+/);
    expect(metrics).toMatch(/kvmgr_gateway_ab_decisions_total\{arm="prefix",endpoint="e\d",reason="[^"]+"\} \d+/);
    expect(metrics).toContain(`kvmgr_gateway_ab_requests_total{arm="load",outcome="ok"} ${expectedB * turns}`);
  });

  it('without a session header the OpenAI user field keys the conversation', async () => {
    const before = ((await getJson(`${gw.url}/admin/ab`)) as AbReport).keySources.user;
    await client.completions.create({ model: MODEL, prompt: 'hello there', max_tokens: 2, user: 'user-42' }, { headers: { 'x-request-id': 'ab-user-1' } });
    expect(logs.request('ab-user-1')?.['ab']).toBe(abHashUnit('u:user-42') < SPLIT ? 'load' : 'prefix');
    expect(((await getJson(`${gw.url}/admin/ab`)) as AbReport).keySources.user).toBe(before + 1);
  });

  it('PUT /admin/routing with a bad ab section → 400 naming the key, nothing changes; a good one restarts the experiment; null clears it', async () => {
    const before = (await getJson(`${gw.url}/admin/ab`)) as AbReport;
    const routingBefore = await getJson(`${gw.url}/admin/routing`);
    const bad = await putJson(`${gw.url}/admin/routing`, { ab: { ...AB, b: { name: 'load', routing: 'nope:1' } }, scorers: 'kv:1' });
    expect(bad.status).toBe(400);
    expect((bad.body['error'] as { message: string }).message).toMatch(/^ab\.b\.routing/);
    const bad2 = await putJson(`${gw.url}/admin/routing`, { ab: { ...AB, split: 2 } });
    expect(bad2.status).toBe(400);
    expect((bad2.body['error'] as { message: string }).message).toMatch(/^ab\.split: /);
    const same = (await getJson(`${gw.url}/admin/ab`)) as AbReport;
    expect(same.id).toBe(before.id);
    expect(same.arms.a.requests).toBe(before.arms.a.requests);
    expect(await getJson(`${gw.url}/admin/routing`)).toEqual(routingBefore);

    const ok = await putJson(`${gw.url}/admin/routing`, { ab: { ...AB, split: 1, salt: 'v2' } });
    expect(ok.status).toBe(200);
    const fresh = (await getJson(`${gw.url}/admin/ab`)) as AbReport;
    expect(fresh.id).not.toBe(before.id);
    expect(fresh.arms.a.requests + fresh.arms.b.requests).toBe(0);
    await client.completions.create({ model: MODEL, prompt: 'all to b', max_tokens: 2 }, { headers: { 'x-request-id': 'ab-all-b' } });
    expect(logs.request('ab-all-b')?.['ab']).toBe('load');
    expect(logs.lines.some((l) => l['event'] === 'ab-updated' && (l['ab'] as { id?: string } | null)?.id === fresh.id)).toBe(true);

    const cleared = await putJson(`${gw.url}/admin/routing`, { ab: null });
    expect(cleared.status).toBe(200);
    expect(await getJson(`${gw.url}/admin/ab`)).toEqual({ active: false });
    await client.completions.create({ model: MODEL, prompt: 'no arm', max_tokens: 2 }, { headers: { 'x-request-id': 'ab-none' } });
    expect(logs.request('ab-none')?.['ab']).toBeUndefined();
  });
});
