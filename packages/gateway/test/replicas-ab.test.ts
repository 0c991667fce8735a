/**
 * The live A/B report across gateway replicas: two gateways with the same `ab` section over one
 * real `redis-server` and two real engine servers, each replica serving part of the
 * conversations. Both replicas' `GET /admin/ab` report the same merged statistics, whose counts
 * are the total recorded; `?scope=local` is each replica's own share; with Redis killed the report
 * falls back to the local view and says so, and the fleet view comes back complete (every
 * replica's snapshot rewritten) once Redis is back, empty.
 *
 * The replicas use a 5 s command timeout (as replicas.test.ts: an event loop lagging under load is
 * not Redis trouble); the waits for the other replica's snapshot (written every second) are
 * bounded polls, not timed assertions.
 */
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// the router's test harness for a real redis-server (test support, not exported from the package)
import { type RedisTestServer, startRedisServer } from '../../router/src/redis-test-server.js';
import { type AbReport, abHashUnit } from '../src/ab.js';
import { type Gateway, createGateway } from '../src/index.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet } from './helpers.js';

const AB = { split: 0.5, a: { name: 'prefix', routing: 'pa:3,qd:2,kv:2' }, b: { name: 'load', routing: 'qd:1,kv:1' } };
const NAMESPACE = 'replicas-ab-test';

async function abReport(gw: Gateway, query = ''): Promise<AbReport> {
  const r = await request(`${gw.url}/admin/ab${query}`);
  const body = (await r.body.json()) as AbReport;
  expect(r.statusCode, JSON.stringify(body)).toBe(200);
  return body;
}

/** Polls `/admin/ab` until `ok` holds (bounded), returning the last report. */
async function reportUntil(gw: Gateway, ok: (r: AbReport) => boolean, what: string, timeoutMs = 15_000): Promise<AbReport> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await abReport(gw);
    if (ok(r)) return r;
    if (Date.now() > end) throw new Error(`${what} not reached within ${timeoutMs} ms; last report: ${JSON.stringify({ scope: r.scope, replicas: r.replicas, fallback: r.fallback, contributors: r.contributors })}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function health(gw: Gateway): Promise<string | undefined> {
  const r = await request(`${gw.url}/health`);
  return ((await r.body.json()) as { redis?: { mode: string } }).redis?.mode;
}

async function untilShared(gws: readonly Gateway[]): Promise<void> {
  const end = Date.now() + 15_000;
  while (!(await Promise.all(gws.map(health))).every((m) => m === 'shared')) {
    if (Date.now() > end) throw new Error('replicas not back in shared mode within 15 s');
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe('gateway replicas: the live A/B report is fleet-wide', () => {
  let redis: RedisTestServer;
  let fleet: TestEngine[] = [];
  const gws: Gateway[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    fleet = await startFleet(2);
    for (const id of ['A', 'B']) {
      gws.push(
        await createGateway({
          server: { port: 0, logLevel: 'warn' },
          model: MODEL,
          endpoints: endpointsOf(fleet),
          ab: AB,
          redis: { url: redis.url, namespace: NAMESPACE, replicaId: id, commandTimeoutMs: 5000, leaseTtlMs: 3000, leaseRenewMs: 1000 },
        }, { logStream: new LogSink() }),
      );
    }
  });

  afterAll(async () => {
    for (const g of gws) await g.close();
    for (const f of fleet) await f.close();
    await redis?.stop();
  });

  it('each replica serves part of the conversations; both report the same merged statistics, counting every request; ?scope=local is the replica’s own', async () => {
    const [a, b] = gws as [Gateway, Gateway];
    await untilShared(gws);
    // replica A serves conversations 0..11, replica B 12..19; three turns each, streamed and not
    const perReplica: [number, number] = [0, 0];
    const perArm = { prefix: 0, load: 0 };
    const conv = async (s: number) => {
      const via = s < 12 ? 0 : 1;
      const client = new OpenAI({ baseURL: `${(gws[via] as Gateway).url}/v1`, apiKey: 'x', maxRetries: 0 });
      for (let t = 0; t < 3; t++) {
        const prompt = `Conversation ${s}: tell me about topic ${s}. `.repeat(5 + t);
        const headers = { 'x-session-id': `conv-${s}`, 'x-request-id': `rab-${s}-${t}` };
        if (t === 1) {
          const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: prompt }], max_tokens: 4, stream: true, stream_options: { include_usage: true } }, { headers });
          for await (const _c of stream) {
            // drained
          }
        } else {
          await client.completions.create({ model: MODEL, prompt, max_tokens: 4 }, { headers });
        }
        perReplica[via]++;
        perArm[abHashUnit(`s:conv-${s}`) < AB.split ? 'load' : 'prefix']++;
      }
    };
    await Promise.all(Array.from({ length: 20 }, (_, s) => conv(s)));
    const total = perReplica[0] + perReplica[1];
    expect(total).toBe(60);
    expect(perArm.load).toBeGreaterThan(0);
    expect(perArm.prefix).toBeGreaterThan(0);

    // each replica's own view: its share only
    const localA = await abReport(a, '?scope=local');
    const localB = await abReport(b, '?scope=local');
    expect(localA.scope).toBe('local');
    expect(localA.fallback).toBeNull();
    expect(localA.replicas).toBe(1);
    expect(localA.arms.a.requests + localA.arms.b.requests).toBe(perReplica[0]);
    expect(localB.arms.a.requests + localB.arms.b.requests).toBe(perReplica[1]);

    // the fleet view on either replica: every request, once (the other replica's snapshot is written within a second)
    const complete = (r: AbReport) => r.scope === 'fleet' && r.replicas === 2 && r.arms.a.requests + r.arms.b.requests === total;
    const fa = await reportUntil(a, complete, "A's fleet view of all requests");
    const fb = await reportUntil(b, complete, "B's fleet view of all requests");
    for (const r of [fa, fb]) {
      expect(r.fallback).toBeNull();
      expect(r.contributors?.map((c) => [c.replica, c.requests])).toEqual([
        ['A', perReplica[0]],
        ['B', perReplica[1]],
      ]);
      expect(r.arms.a.requests).toBe(perArm.prefix);
      expect(r.arms.b.requests).toBe(perArm.load);
      expect(r.arms.a.assigned + r.arms.b.assigned).toBe(total);
      expect(r.keySources.session).toBe(total);
      expect(r.arms.a.metrics.e2eMs.n).toBe(perArm.prefix);
      expect(r.arms.b.metrics.e2eMs.n).toBe(perArm.load);
      expect(r.arms.a.metrics.errors.n + r.arms.b.metrics.errors.n).toBe(total);
      expect(r.arms.a.metrics.errors.mean).toBe(0);
      // the merged n is the sum of the replicas' n, metric by metric
      for (const arm of ['a', 'b'] as const) {
        for (const m of ['ttftMs', 'e2eMs', 'tpotMs', 'cachedShare', 'goodput', 'errors'] as const) {
          expect(r.arms[arm].metrics[m].n, `${arm} ${m}`).toBe(localA.arms[arm].metrics[m].n + localB.arms[arm].metrics[m].n);
        }
      }
      const d = r.differences.e2eMs;
      expect(d.diff).toBeCloseTo((r.arms.b.metrics.e2eMs.mean as number) - (r.arms.a.metrics.e2eMs.mean as number), 9);
      expect(d.ciLow as number).toBeLessThanOrEqual(d.diff as number);
    }
    // both replicas compute the same numbers from the same snapshots (merged in replica-id order)
    expect(fb.arms).toEqual(fa.arms);
    expect(fb.differences).toEqual(fa.differences);
    expect(fb.since).toBe(fa.since);

    // the snapshots live in one hash per experiment, namespaced like the other replica keys, with a TTL
    const r = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await r.connect();
      const key = `kvmgr:{${NAMESPACE}}:ab:${fa.id}`;
      expect((await r.hkeys(key)).sort()).toEqual(['A', 'B']);
      expect(await r.pttl(key)).toBeGreaterThan(0);
    } finally {
      r.disconnect();
    }

    const bad = await request(`${a.url}/admin/ab?scope=everything`);
    expect(bad.statusCode).toBe(400);
    expect(((await bad.body.json()) as { error: { message: string } }).error.message).toMatch(/^scope: /);
  });

  it('with Redis down the report is the local view and says so; once Redis is back (empty) the fleet view is complete again', async () => {
    const [a, b] = gws as [Gateway, Gateway];
    const before = await abReport(a);
    const localA = await abReport(a, '?scope=local');
    const localB = await abReport(b, '?scope=local');
    const own = (r: AbReport) => r.arms.a.requests + r.arms.b.requests;
    await redis.kill();
    const down = await abReport(a);
    expect(down.scope).toBe('local');
    expect(down.fallback).toMatch(/^redis/);
    expect(down.replicas).toBe(1);
    expect(own(down)).toBe(own(localA));
    // requests keep being served and recorded meanwhile (by A; B records nothing new, so only its
    // rewrite after the reconnect can bring its share back into the empty Redis)
    const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'x', maxRetries: 0 });
    for (let i = 0; i < 4; i++) await client.completions.create({ model: MODEL, prompt: `During the outage ${i}`, max_tokens: 2 }, { headers: { 'x-session-id': `outage-${i}` } });

    await redis.restart();
    await untilShared(gws);
    const want = own(before) + 4;
    const fa = await reportUntil(a, (r) => r.scope === 'fleet' && r.replicas === 2 && own(r) === want, "A's fleet view after the outage");
    expect(fa.fallback).toBeNull();
    expect(fa.contributors?.map((c) => [c.replica, c.requests])).toEqual([
      ['A', own(localA) + 4],
      ['B', own(localB)],
    ]);
  });
});
