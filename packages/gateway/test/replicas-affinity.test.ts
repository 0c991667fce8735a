/**
 * Issue #24, check 1: three gateway replicas over one real `redis-server` (started here on a
 * free loopback port) in front of four engine servers (KV events on). The same multi-turn chat
 * workload (12 conversations × 4 turns, 4 conversations in flight, `openai` SDK) runs once
 * through a single gateway and once spread round-robin over the replicas — turn `t` of
 * conversation `s` goes to replica `(s + t) mod 3`, so every follow-up is routed by a different
 * replica than the turn before it. Each run starts from empty engines (a fresh fleet).
 * The replicas' token prefix hit rate (the engines' own `cached_tokens`) must be within 5% of
 * the single gateway's, and every follow-up turn must land on the engine of its conversation's
 * previous turn.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type RedisTestServer, startRedisServer } from '../../router/src/redis-test-server.js';
import { type Gateway, createGateway } from '../src/index.js';
import { LogSink, type TestEngine, startFleet } from './helpers.js';
import { type TurnResult, allShared, hitRate, replicaConfig, runConversations, stickiness } from './replicas-helpers.js';

const SESSIONS = 12;
const TURNS = 4;

const opened: { gws: Gateway[]; fleet: TestEngine[] }[] = [];
let redis: RedisTestServer | undefined;
afterAll(async () => {
  for (const o of opened) {
    for (const g of o.gws) await g.close();
    for (const f of o.fleet) await f.close();
  }
  await redis?.stop();
});

async function run(replicas: number): Promise<TurnResult[]> {
  const fleet = await startFleet(4);
  const o: { gws: Gateway[]; fleet: TestEngine[] } = { gws: [], fleet };
  opened.push(o);
  try {
    if (replicas === 1) o.gws.push(await createGateway(replicaConfig(fleet, undefined), { logStream: new LogSink() }));
    else {
      redis = await startRedisServer();
      // 3 s leases renewed every second (nothing here times a takeover): a 1 s lease lapses locally after 750 ms without a renewal, which a loaded machine's event loop can take
      for (let i = 0; i < replicas; i++) o.gws.push(await createGateway(replicaConfig(fleet, { url: redis.url, namespace: 'affinity', replicaId: `r${i}` }, { leaseTtlMs: 3000, leaseRenewMs: 1000 }), { logStream: new LogSink() }));
      await allShared(o.gws);
    }
    return await runConversations({ gateways: o.gws, sessions: SESSIONS, turns: TURNS, concurrency: 4 });
  } finally {
    for (const g of o.gws) await g.close();
    for (const f of fleet) await f.close();
    o.gws.length = 0;
    o.fleet.length = 0;
  }
}

describe('three replicas over Redis, four engines', () => {
  it('hit rate within 5% of a single gateway on the same requests; follow-ups stay on their engine whichever replica routes them', async () => {
    const single = await run(1);
    const spread = await run(3);
    for (const rs of [single, spread]) {
      expect(rs.filter((r) => r.error !== undefined).map((r) => r.error)).toEqual([]);
      expect(rs).toHaveLength(SESSIONS * TURNS);
    }
    // round-robin: every replica routed a third of the requests
    for (let v = 0; v < 3; v++) expect(spread.filter((r) => r.via === v)).toHaveLength((SESSIONS * TURNS) / 3);
    const hs = hitRate(single);
    const hr = hitRate(spread);
    const ss = stickiness(single);
    const sr = stickiness(spread);
    console.info(
      `check 1: prefix hit rate single ${hs.toFixed(4)}, 3 replicas ${hr.toFixed(4)} (ratio ${(hr / hs).toFixed(4)}); follow-ups on the previous turn's engine: single ${ss.same}/${ss.followUps}, replicas ${sr.same}/${sr.followUps}`,
    );
    expect(hs).toBeGreaterThan(0.5); // the workload reuses prefixes: a single gateway hits
    expect(Math.abs(hr - hs)).toBeLessThanOrEqual(0.05 * hs);
    expect(sr.followUps).toBe(SESSIONS * (TURNS - 1));
    expect(sr.moved).toEqual([]);
    // the conversations were spread over the engines, not piled on one
    expect(new Set(spread.map((r) => r.endpoint)).size).toBeGreaterThanOrEqual(3);
  });
});
