/**
 * The endpoint pool that `kvmgr serve` and `kvmgr epp` share (`src/pool.ts`), on real engine
 * servers without KV events (routing history is the index): adding and removing endpoints, the
 * address map, eligibility, one decision with its reservation, routing history, and that a
 * failed `add` changes nothing.
 */
import type { RouteRequest } from '@kvmgr/router';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveEndpoint, resolveGatewayConfig } from '../src/index.js';
import { NO_ENDPOINT } from '../src/decide.js';
import { EndpointPool, endpointAddress } from '../src/pool.js';
import { LogSink, MODEL, type TestEngine, startFleet } from './helpers.js';

describe('EndpointPool', () => {
  let fleet: TestEngine[] = [];
  let pool: EndpointPool;
  const freed: string[] = [];
  const logs = new LogSink();

  beforeAll(async () => {
    fleet = await startFleet(2, { kvEvents: false });
    pool = new EndpointPool(resolveGatewayConfig({ model: MODEL, routing: { scorers: 'pa:3,qd:2,kv:2', speculativeTtlMs: 0 } }), pino({ level: 'info' }, logs), {
      onMaybeFreed: () => freed.push('freed'),
      onEventLag: () => undefined,
    });
  });
  afterAll(async () => {
    await pool?.close();
    for (const f of fleet) await f.close();
    fleet = [];
  });

  const endpoint = (name: string, i: number, extra: Record<string, unknown> = {}) => resolveEndpoint({ name, url: (fleet[i] as TestEngine).url, engine: 'kvmgr', ...extra });

  it('adds endpoints by name and ip:port; a duplicate name or address, or a bad KV-event endpoint, changes nothing', async () => {
    const a = await pool.add(endpoint('a', 0));
    await pool.add(endpoint('b', 1));
    expect([...pool.endpoints.keys()]).toEqual(['a', 'b']);
    expect(pool.addressOf(a)).toBe(new URL((fleet[0] as TestEngine).url).host);
    expect(pool.byAddress.get(endpointAddress({ url: (fleet[1] as TestEngine).url }))?.name).toBe('b');
    const before = { names: [...pool.endpoints.keys()], addresses: [...pool.byAddress.keys()], instances: pool.index.instances() };
    await expect(pool.add(endpoint('a', 1))).rejects.toThrow(/endpoint a .* exists already/);
    await expect(pool.add(endpoint('c', 0))).rejects.toThrow(/endpoint c .* exists already/);
    // the subscriber refuses the KV-event endpoint (a resolved config would have refused it earlier: built by hand here)
    await expect(pool.add({ ...resolveEndpoint({ name: 'd', url: 'http://127.0.0.1:9' }), kvEvents: 'not-a-zmq-endpoint' })).rejects.toThrow(/KV|endpoint/i);
    expect({ names: [...pool.endpoints.keys()], addresses: [...pool.byAddress.keys()], instances: pool.index.instances() }).toEqual(before);
    // the router keys requests by the block size the engines report (16)
    expect(pool.router.config.blockSize).toBe(16);
  });

  it('eligible endpoints: healthy, not prefill, through the filter', () => {
    expect(pool.eligible().map((e) => e.name)).toEqual(['a', 'b']);
    const bAddress = pool.addressOf(pool.endpoints.get('b') as NonNullable<ReturnType<typeof pool.endpoints.get>>);
    expect(pool.eligible((_e, address) => address === bAddress).map((e) => e.name)).toEqual(['b']);
  });

  it('one decision reserves the footprint on its endpoint; routing history makes the same prompt stick; all excluded → NO_ENDPOINT', () => {
    const tokens = Array.from({ length: 200 }, (_, i) => 1000 + i);
    const req = (id: string): RouteRequest => ({ requestId: id, arrivalUs: 0, promptTokenIds: tokens, promptTokens: tokens.length, maxTokens: 10 });
    const p = pool.place(req('r1'), 210, new Set(), true, 1);
    if (p === undefined || p === NO_ENDPOINT) throw new Error('expected a placement');
    expect(p.endpoint.inFlight.get('r1')?.tokens).toBe(210);
    expect(p.names).toEqual(['a', 'b']);
    p.endpoint.inFlight.delete('r1');
    // no KV events: the prompt's 12 whole blocks are recorded as held there, once
    pool.recordHistory(p.endpoint, req('r1'));
    pool.recordHistory(p.endpoint, req('r1'));
    expect(p.endpoint.cachedBlocks).toBe(12);
    const q = pool.place(req('r2'), 210, new Set(), true, 2);
    if (q === undefined || q === NO_ENDPOINT) throw new Error('expected a placement');
    expect(q.endpoint).toBe(p.endpoint);
    expect(q.decision.cachedTokens).toBe(192);
    q.endpoint.inFlight.delete('r2');
    expect(pool.place(req('r3'), 210, new Set(['a', 'b']), true, 3)).toBe(NO_ENDPOINT);
  });

  it('remove: the endpoint, its address and its blocks leave; unknown names are false; after close nothing is added', async () => {
    expect(await pool.remove('nope')).toBe(false);
    const blocks = pool.index.size;
    const held = (pool.endpoints.get('a')?.cachedBlocks ?? 0) + (pool.endpoints.get('b')?.cachedBlocks ?? 0);
    expect(held).toBe(12);
    const holder = (pool.endpoints.get('a')?.cachedBlocks ?? 0) > 0 ? 'a' : 'b';
    expect(await pool.remove(holder)).toBe(true);
    expect(pool.endpoints.has(holder)).toBe(false);
    expect([...pool.byAddress.values()].map((e) => e.name)).toEqual([holder === 'a' ? 'b' : 'a']);
    expect(pool.index.size).toBe(blocks - 12);
    expect(pool.index.instances()).not.toContain(holder);
    await pool.close();
    expect(pool.endpoints.size).toBe(0);
    await expect(pool.add(endpoint('again', 0))).rejects.toThrow(/closed/);
    expect(pool.index.instances()).not.toContain('again');
  });
});

describe('EndpointPool.recordHistoryKeys (routing history from the decision\'s keys)', () => {
  let fleet: TestEngine[] = [];
  let pool: EndpointPool;

  beforeAll(async () => {
    fleet = await startFleet(1, { kvEvents: false });
    pool = new EndpointPool(resolveGatewayConfig({ model: MODEL, routing: { scorers: 'pa:3,qd:2,kv:2', speculativeTtlMs: 0 } }), pino({ level: 'silent' }), {
      onMaybeFreed: () => undefined,
      onEventLag: () => undefined,
    });
    await pool.add(resolveEndpoint({ name: 'a', url: (fleet[0] as TestEngine).url, engine: 'kvmgr' }));
  });
  afterAll(async () => {
    await pool?.close();
    for (const f of fleet) await f.close();
    fleet = [];
  });

  it('records the blocks the token ids would; nothing when the current router keys prompts differently (block size changed)', () => {
    const ep = pool.endpoints.get('a') as NonNullable<ReturnType<typeof pool.endpoints.get>>;
    const prompt = (base: number): RouteRequest => {
      const tokens = Array.from({ length: 100 }, (_, i) => base + i);
      return { requestId: `r${base}`, arrivalUs: 0, promptTokenIds: tokens, promptTokens: tokens.length, maxTokens: 10 };
    };
    const keyedBy = pool.router;
    expect(keyedBy.config.blockSize).toBe(16);
    // a router with the same keying (another object, e.g. new scorers) still takes the keys
    const same = pool.routerFor({ ...keyedBy.config, scorers: [{ name: 'queue-depth', weight: 1, params: {} }] });
    pool.useRouter(same, false);
    const r1 = prompt(7000);
    pool.recordHistoryKeys(ep, keyedBy.keysFor(r1), keyedBy);
    expect(ep.cachedBlocks).toBe(6);
    expect(pool.index.prefixLength('a', same.keysFor(r1))).toBe(6);
    // keys of another block size are not this router's keys: nothing recorded
    const r2 = prompt(9000);
    const coarse = pool.routerFor({ ...keyedBy.config, blockSize: 32 });
    pool.recordHistoryKeys(ep, coarse.keysFor(r2), coarse);
    expect(ep.cachedBlocks).toBe(6);
    expect(pool.index.prefixLength('a', coarse.keysFor(r2))).toBe(0);
    expect(pool.index.prefixLength('a', same.keysFor(r2))).toBe(0);
    expect(pool.index.size).toBe(6);
  });
});
