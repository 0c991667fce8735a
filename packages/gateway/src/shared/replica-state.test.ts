/**
 * `ReplicaState` against a real `redis-server` (started here on a loopback port, stopped by its
 * handle): a decision reads the shared view its own `prepare` fetched, whatever other decisions
 * prepared meanwhile. Requests interleave `prepare` and placement (a request deferred by
 * admission is placed after later ones prepared; replies read in one socket chunk resume several
 * decisions in one turn); with one view slot the last `prepare` won, and every other decision
 * fell back to its local index, losing the other replicas' matches.
 */
import { performance } from 'node:perf_hooks';
import { KvBlockIndex, createPrefixMatch } from '@kvmgr/router';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// the router's test harness for a real redis-server (test support, not exported from the package)
import { type RedisTestServer, startRedisServer } from '../../../router/src/redis-test-server.js';
import { ReplicaState } from './replica-state.js';

const BLOCKS = 4;
const ENDPOINTS = ['e0', 'e1', 'e2'];

/** Distinct block keys per prompt (two 32-bit words per block); prompts share no block. */
function keysOf(prompt: number): Uint32Array {
  const k = new Uint32Array(2 * BLOCKS);
  for (let i = 0; i < k.length; i++) k[i] = (prompt + 1) * 1000 + i + 1;
  return k;
}

function replica(url: string, id: string): ReplicaState {
  const st = new ReplicaState({
    url,
    namespace: 'replica-state-test',
    replicaId: id,
    commandTimeoutMs: 5000,
    leaseTtlMs: 3000,
    leaseRenewMs: 1000,
    loadTtlMs: 5000,
    maxKeysPerEndpoint: 1 << 16,
  });
  const local = new KvBlockIndex({ namespace: { model: 'm' }, listener: st.listener });
  for (const e of ENDPOINTS) local.addInstance(e);
  st.attach(local, () => []);
  st.start();
  return st;
}

/** Matched blocks per endpoint name for `keys` through the replica's router-facing index. */
function matched(st: ReplicaState, keys: Uint32Array): Record<string, number> {
  const out = createPrefixMatch(st.index.maxInstances);
  st.index.matchPrefix(keys, BLOCKS, performance.now() * 1000, out);
  return Object.fromEntries(ENDPOINTS.map((e) => [e, out.matchedBlocks[st.index.instanceIndex(e)] as number]));
}

describe('ReplicaState shared view per decision', () => {
  let redis: RedisTestServer;
  let writer: ReplicaState;
  let reader: ReplicaState;

  beforeAll(async () => {
    redis = await startRedisServer();
    writer = replica(redis.url, 'W');
    reader = replica(redis.url, 'R');
    await writer.link.ready();
    await reader.link.ready();
  });

  afterAll(async () => {
    await writer?.close();
    await reader?.close();
    await redis?.stop();
  });

  it('each of several concurrent prepares keeps its own prompt’s shared matches', async () => {
    const prompts = [0, 1, 2];
    // the writer routes prompt p to endpoint e<p>: speculative entries, written to Redis
    for (const p of prompts) writer.index.addSpeculative(ENDPOINTS[p] as string, keysOf(p), 0, BLOCKS, performance.now() * 1000 + 60e6);
    // bounded wait until the reader sees all of them (the writes are fire-and-forget)
    const end = Date.now() + 5000;
    for (;;) {
      let all = true;
      for (const p of prompts) {
        await reader.prepare(keysOf(p));
        if (matched(reader, keysOf(p))[ENDPOINTS[p] as string] !== BLOCKS) all = false;
      }
      if (all) break;
      if (Date.now() > end) throw new Error('the writer’s speculative entries did not reach the reader within 5 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    // neither replica's local index knows the other's entries: only the shared view can match
    expect(reader.counters.sharedLookups).toBeGreaterThan(0);

    // three decisions prepare concurrently, then each decides (fresh key arrays, as the router recomputes them)
    await Promise.all(prompts.map((p) => reader.prepare(keysOf(p))));
    for (const p of prompts) {
      const want = Object.fromEntries(ENDPOINTS.map((e, i) => [e, i === p ? BLOCKS : 0]));
      expect(matched(reader, keysOf(p)), `prompt ${p}`).toEqual(want);
    }
    // a prompt nobody prepared matches nothing shared
    expect(matched(reader, keysOf(9))).toEqual({ e0: 0, e1: 0, e2: 0 });
  });
});
