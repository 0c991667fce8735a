/**
 * The shared block index in Redis against the in-memory one, on loopback (issue #24, check 3).
 *
 *   node --conditions=@kvmgr/source --import tsx packages/gateway/bench/redis-index.ts [lookups=2000] [clearKeys=200000]
 *
 * Starts its own `redis-server` (no persistence) on a free 127.0.0.1 port and stops it at the end.
 *
 * 1. Lookup of a 2K-token prompt (128 blocks of 16 tokens) over 4 endpoints holding 128, 96, 64
 *    and 32 of its blocks, among 50k other keys per endpoint: `MemoryBlockIndexStore.lookup` vs
 *    `RedisBlockIndexStore.lookup` (one script, one round trip), one call at a time, interleaved in
 *    blocks of 100 so machine drift hits both; p50/p99 wall per call, and Redis' own CPU per call
 *    (`INFO commandstats` after `CONFIG RESETSTAT`). Then 32 lookups in flight on one connection
 *    (ioredis pipelines them): lookups/s.
 * 2. Events applied: `BlockStored` of 16 blocks (a store script each) and `BlockRemoved` of 16
 *    blocks, sent back to back on one connection; Redis CPU per event and wall per event, vs the
 *    in-memory store.
 * 3. One routed request of a gateway replica (`ReplicaState`): the decision's round trip (lookup
 *    + other replicas' in-flight load, 2 other replicas × 16 requests), the in-flight write, the
 *    speculative entries of the 64 blocks the chosen endpoint lacks, and the in-flight delete; Redis
 *    CPU per request. Redis runs commands on one thread, so it saturates at
 *    1 s / (CPU µs per request): the request rate at which it becomes the bottleneck, with and
 *    without the KV events such a request causes.
 * 4. Clear of an endpoint with `clearKeys` keys: the longest time without a PONG on another
 *    connection during the clear, chunked (1024 keys per script, the default) vs one script (as
 *    before #24's chunked clear; past `lua-time-limit`, 5 s, Redis answers BUSY to everyone).
 *
 * Writes the numbers to packages/gateway/bench/results/redis-index.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createRng } from '@kvmgr/core';
import { DEFAULT_TIER_WEIGHTS, KvBlockIndex, MemoryBlockIndexStore, RedisBlockIndexStore, redisKeyPrefix } from '@kvmgr/router';
import { Redis } from 'ioredis';
import { startRedisServer } from '../../router/src/redis-test-server.js';
import { ReplicaState } from '../src/shared/replica-state.js';

const LOOKUPS = Number(process.argv[2] ?? 2000);
const CLEAR_KEYS = Number(process.argv[3] ?? 200_000);
const BACKGROUND = 50_000;
const EPS = ['a', 'b', 'c', 'd'];
const HELD = [128, 96, 64, 32];

const rng = createRng(24);
function randomKeys(n: number): Uint32Array {
  const k = new Uint32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) k[i] = Math.floor(rng.next() * 2 ** 32);
  return k;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Redis' main-thread CPU so far, µs (`INFO cpu`: user + sys of the thread that runs every
 * command, parsing and replies included — what saturates first).
 */
async function mainThreadCpuUs(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const f = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return (f('used_cpu_user_main_thread') + f('used_cpu_sys_main_thread')) * 1e6;
}

/**
 * Redis' own accounting since `from`: main-thread CPU µs, and top-level commands by name with
 * their time (`INFO commandstats` after `CONFIG RESETSTAT`; commands run inside scripts are left
 * out: a script's time includes them).
 */
async function redisCost(admin: Redis, fromCpuUs: number): Promise<{ cpuUs: number; scriptUs: number; calls: Record<string, number> }> {
  const cpuUs = (await mainThreadCpuUs(admin)) - fromCpuUs;
  const info = await admin.info('commandstats');
  let scriptUs = 0;
  const calls: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+),usec=(\d+)/gm)) {
    const name = m[1] as string;
    if (name === 'evalsha' || name === 'eval') scriptUs += Number(m[3]);
    calls[name] = Number(m[2]);
  }
  return { cpuUs, scriptUs, calls };
}

/** Resets the command statistics and returns the main-thread CPU now. */
async function startCost(admin: Redis): Promise<number> {
  await admin.config('RESETSTAT');
  return mainThreadCpuUs(admin);
}

async function main(): Promise<void> {
  const server = await startRedisServer();
  const redis = new Redis(server.url);
  const admin = new Redis(server.url);
  const out: Record<string, unknown> = { redis: (await admin.info('server')).match(/redis_version:(\S+)/)?.[1], date: new Date().toISOString() };
  try {
    // ---- data ------------------------------------------------------------------------------
    const ns = 'bench';
    const rstore = new RedisBlockIndexStore(redis, { namespace: ns });
    const mstore = new MemoryBlockIndexStore({ index: new KvBlockIndex({ maxKeys: 1 << 21, maxInstancesPerKey: 16 }) });
    const prompt = randomKeys(128);
    for (const [i, ep] of EPS.entries()) {
      const bg = randomKeys(BACKGROUND);
      const ops: Promise<unknown>[] = [];
      for (let b = 0; b < BACKGROUND; b += 512) ops.push(rstore.store(ep, bg, 'gpu', b, Math.min(BACKGROUND, b + 512)));
      await Promise.all(ops);
      await mstore.store(ep, bg, 'gpu');
      await rstore.store(ep, prompt, 'gpu', 0, HELD[i]);
      await mstore.store(ep, prompt, 'gpu', 0, HELD[i]);
    }
    const want = JSON.stringify([...(await mstore.lookup(prompt, 128, 0, DEFAULT_TIER_WEIGHTS))].sort());
    const got = JSON.stringify([...(await rstore.lookup(prompt, 128, 0, DEFAULT_TIER_WEIGHTS))].sort());
    if (want !== got) throw new Error(`memory and Redis disagree: ${want} vs ${got}`);

    // ---- 1. lookup latency -------------------------------------------------------------------
    const mem: number[] = [];
    const red: number[] = [];
    for (let i = 0; i < 200; i++) await rstore.lookup(prompt, 128, 0, DEFAULT_TIER_WEIGHTS); // warm
    for (let done = 0; done < LOOKUPS; done += 100) {
      for (let i = 0; i < 100; i++) {
        const t0 = performance.now();
        await mstore.lookup(prompt, 128, 0, DEFAULT_TIER_WEIGHTS);
        mem.push((performance.now() - t0) * 1000);
      }
      for (let i = 0; i < 100; i++) {
        const t0 = performance.now();
        await rstore.lookup(prompt, 128, 0, DEFAULT_TIER_WEIGHTS);
        red.push((performance.now() - t0) * 1000);
      }
    }
    let c0 = await startCost(admin);
    for (let i = 0; i < 500; i++) await rstore.lookup(prompt, 128, 0, DEFAULT_TIER_WEIGHTS);
    const lookupCost = await redisCost(admin, c0);
    const inFlight = 32;
    const pipelinedN = Math.max(1000, LOOKUPS);
    let sent = 0;
    const tp0 = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (sent < pipelinedN) {
          sent++;
          await rstore.lookup(prompt, 128, 0, DEFAULT_TIER_WEIGHTS);
        }
      }),
    );
    const pipelinedPerS = pipelinedN / ((performance.now() - tp0) / 1000);
    const memPerS = 1e6 / (mem.reduce((a, b) => a + b, 0) / mem.length);
    out['lookup'] = {
      blocks: 128,
      endpoints: 4,
      backgroundKeysPerEndpoint: BACKGROUND,
      calls: LOOKUPS,
      memory: { p50_us: round(quantile(mem, 0.5)), p99_us: round(quantile(mem, 0.99)), perS: Math.round(memPerS) },
      redis: { p50_us: round(quantile(red, 0.5)), p99_us: round(quantile(red, 0.99)), redisCpu_us: round(lookupCost.cpuUs / 500), script_us: round(lookupCost.scriptUs / 500), pipelined32_perS: Math.round(pipelinedPerS) },
      ratioP50: round(quantile(red, 0.5) / quantile(mem, 0.5), 1),
    };

    // ---- 2. events -------------------------------------------------------------------------
    const EVENTS = 2000;
    const evKeys = randomKeys(16 * EVENTS);
    const evMem = new MemoryBlockIndexStore({ index: new KvBlockIndex({ maxKeys: 1 << 21 }) });
    const warmKeys = randomKeys(16 * 200);
    for (let e = 0; e < 200; e++) await evMem.store('warm', warmKeys, 'gpu', 16 * e, 16 * e + 16);
    c0 = await startCost(admin);
    let t0 = performance.now();
    await Promise.all(Array.from({ length: EVENTS }, (_, e) => rstore.store('ev', evKeys, 'gpu', 16 * e, 16 * e + 16)));
    const storeWall = ((performance.now() - t0) * 1000) / EVENTS;
    const storeCost = await redisCost(admin, c0);
    const storeCpu = storeCost.cpuUs / EVENTS;
    c0 = await startCost(admin);
    t0 = performance.now();
    await Promise.all(Array.from({ length: EVENTS }, (_, e) => rstore.remove('ev', evKeys, 'gpu', 16 * e, 16 * e + 16)));
    const removeWall = ((performance.now() - t0) * 1000) / EVENTS;
    const removeCost = await redisCost(admin, c0);
    const removeCpu = removeCost.cpuUs / EVENTS;
    t0 = performance.now();
    for (let e = 0; e < EVENTS; e++) await evMem.store('ev', evKeys, 'gpu', 16 * e, 16 * e + 16);
    const memStore = ((performance.now() - t0) * 1000) / EVENTS;
    t0 = performance.now();
    for (let e = 0; e < EVENTS; e++) await evMem.remove('ev', evKeys, 'gpu', 16 * e, 16 * e + 16);
    const memRemove = ((performance.now() - t0) * 1000) / EVENTS;
    out['events'] = {
      blocksPerEvent: 16,
      events: EVENTS,
      redis: {
        stored: { wall_us: round(storeWall), redisCpu_us: round(storeCpu), script_us: round(storeCost.scriptUs / EVENTS) },
        removed: { wall_us: round(removeWall), redisCpu_us: round(removeCpu), script_us: round(removeCost.scriptUs / EVENTS) },
      },
      memory: { stored_us: round(memStore), removed_us: round(memRemove) },
    };

    // ---- 3. one routed request of a replica ---------------------------------------------------
    const prefix = redisKeyPrefix(ns);
    for (const r of ['other-1', 'other-2']) {
      await admin.zadd(`${prefix}replicas`, Date.now() + 600_000, r);
      for (let i = 0; i < 16; i++) await admin.hset(`${prefix}load:${r}`, `req-${i}`, `${EPS[i % 4]}\t3000\t${Date.now()}`);
    }
    const state = new ReplicaState({ url: server.url, namespace: ns, replicaId: 'bench', commandTimeoutMs: 1000, leaseTtlMs: 3000, leaseRenewMs: 1000, loadTtlMs: 600_000, maxKeysPerEndpoint: 1 << 20 });
    const local = new KvBlockIndex({ namespace: { model: 'bench' } });
    const endpoints = EPS.map((name) => ({ name, inFlight: new Map() }));
    for (const e of EPS) local.addInstance(e);
    state.attach(local, () => endpoints);
    await state.link.ready();
    const REQS = 500;
    const nowUs = performance.now() * 1000;
    const decide: number[] = [];
    c0 = await startCost(admin);
    for (let i = 0; i < REQS; i++) {
      const t = performance.now();
      await state.prepare(prompt);
      decide.push((performance.now() - t) * 1000);
      // routed to c, which holds 64 of the 128 blocks: speculative entries for the other 64
      state.routed('c', `r${i}`, 2100);
      state.index.addSpeculative('c', prompt, 64, 128, nowUs + 60e6);
      state.finished(`r${i}`);
    }
    await state.link.redis.ping(); // every write above was sent before this
    const reqCost = await redisCost(admin, c0);
    await state.close();
    const perReq = reqCost.cpuUs / REQS;
    // KV events a 2K-token request causes at a 50% prefix hit: 64 new blocks (4 stores of 16) and, in steady state, as many evicted (4 removes)
    const eventsPerReq = { stored: 4, removed: 4 };
    const perReqWithEvents = perReq + eventsPerReq.stored * storeCpu + eventsPerReq.removed * removeCpu;
    out['request'] = {
      decision_round_trip: { p50_us: round(quantile(decide, 0.5)), p99_us: round(quantile(decide, 0.99)) },
      redisCpu_us: round(perReq),
      script_us: round(reqCost.scriptUs / REQS),
      commands: reqCost.calls,
      redisSaturates_perS: Math.round(1e6 / perReq),
      withEvents: { ...eventsPerReq, redisCpu_us: round(perReqWithEvents), redisSaturates_perS: Math.round(1e6 / perReqWithEvents) },
    };

    // ---- 4. clear: how long Redis is held ----------------------------------------------------
    const clearRes: Record<string, unknown> = { keys: CLEAR_KEYS };
    for (const [label, chunk] of [
      ['chunked', 1024],
      ['oneScript', 1e9],
    ] as const) {
      const s = new RedisBlockIndexStore(redis, { namespace: `clear-${label}`, clearChunkKeys: chunk });
      const keys = randomKeys(CLEAR_KEYS);
      const ops: Promise<unknown>[] = [];
      for (let b = 0; b < CLEAR_KEYS; b += 1024) ops.push(s.store('big', keys, 'gpu', b, Math.min(CLEAR_KEYS, b + 1024)));
      await Promise.all(ops);
      // the longest time without a PONG on another connection (BUSY replies, when a script runs past
      // Redis' lua-time-limit, count as no answer)
      let maxStall = 0;
      let pings = 0;
      let busy = 0;
      let clearing = true;
      const pinger = (async () => {
        let lastPong = performance.now();
        while (clearing) {
          try {
            await admin.ping();
            const now = performance.now();
            maxStall = Math.max(maxStall, now - lastPong);
            lastPong = now;
            pings++;
          } catch {
            busy++;
            await new Promise((r) => setTimeout(r, 5));
          }
        }
      })();
      const tc = performance.now();
      await s.clear('big');
      const clearMs = performance.now() - tc;
      clearing = false;
      await pinger;
      if ((await s.endpointSize('big')) !== 0) throw new Error(`clear (${label}) left keys`);
      clearRes[label] = { clear_ms: round(clearMs, 1), longestWithoutPong_ms: round(maxStall, 2), pongs: pings, busyReplies: busy };
    }
    out['clear'] = clearRes;
  } finally {
    redis.disconnect();
    admin.disconnect();
    await server.stop();
  }
  const file = join(dirname(fileURLToPath(import.meta.url)), 'results', 'redis-index.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

await main();
