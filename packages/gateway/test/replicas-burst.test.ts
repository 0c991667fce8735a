/**
 * Shared in-flight load spreads a burst (issue #24: "two replicas do not both send the next burst
 * to the same idle engine"). Two engine servers (real time, long generations), replicas A and B
 * over one real `redis-server` (started here on a loopback port), and a control gateway C with
 * the same configuration but no Redis. Scrapes and health probes are 60 s apart (one loop runs
 * both, at the smaller of the two periods), so after the start-up scrape the only load signal is
 * the requests in flight each gateway knows of. A scrape taken after A's burst would show A's
 * streams as `running`, which `qd` (waiting only) ignores, and would retire them from the
 * "routed since the last scrape" count: B would then spread its burst whether or not it shares
 * A's load. With the default 1 s health probe that happened whenever A's first chunks and B's
 * decisions were more than a few hundred ms apart, i.e. on a loaded machine.
 *
 * A routes a burst of 4 streams sharing one long prefix: prefix affinity piles them on one engine
 * X. While they run, B routes a burst of 4 unrelated streams: it sees A's 4 in flight on X (one
 * Redis round trip per decision) and sends all 4 to the other engine. C, routing the same kind of
 * burst without that view, puts some on X. The streams are long (2,000 tokens of a real-time engine)
 * so A's are still running while B routes (checked: B's view of X holds them), and are aborted at
 * the end rather than drained.
 */
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { type RedisTestServer, startRedisServer } from '../../router/src/redis-test-server.js';
import { type Gateway, type GatewayConfigInput, createGateway } from '../src/index.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet } from './helpers.js';
import { allShared } from './replicas-helpers.js';

let fleet: TestEngine[] = [];
const gws: Gateway[] = [];
let redis: RedisTestServer | undefined;
const streams: { controller: AbortController }[] = [];
afterAll(async () => {
  // end the streams (the gateways abort their upstream requests) before closing what they run on
  for (const s of streams) s.controller.abort();
  for (const g of gws) await g.close();
  for (const f of fleet) await f.close();
  await redis?.stop();
});

function config(redisUrl: string | undefined, id: string): GatewayConfigInput {
  return {
    server: { port: 0, logLevel: 'warn' },
    model: MODEL,
    endpoints: endpointsOf(fleet, false),
    routing: 'pa:3,qd:2,kv:2',
    scrape: { intervalMs: 60_000 },
    health: { intervalMs: 60_000 },
    ...(redisUrl === undefined ? {} : { redis: { url: redisUrl, namespace: 'burst', replicaId: id, commandTimeoutMs: 5000 } }),
  };
}

/** Sends `prompts` at once as streams; resolves with the engine of each once every one has its first chunk. */
async function burst(gw: Gateway, prompts: string[], tag: string): Promise<string[]> {
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
  return Promise.all(
    prompts.map(async (p, i) => {
      const { data, response } = await client.completions.create({ model: MODEL, prompt: p, max_tokens: 2000, stream: true }, { headers: { 'x-request-id': `${tag}-${i}` } }).withResponse();
      streams.push(data);
      return response.headers.get('x-kvmgr-endpoint') ?? '';
    }),
  );
}

const count = (xs: string[], e: string) => xs.filter((x) => x === e).length;

describe('a burst through two replicas', () => {
  it('the second replica sends its burst to the engine the first replica left idle', async () => {
    fleet = await startFleet(2, { kvEvents: false, timeScale: 1 });
    redis = await startRedisServer();
    for (const id of ['A', 'B']) gws.push(await createGateway(config(redis.url, id), { logStream: new LogSink() }));
    gws.push(await createGateway(config(undefined, 'C'), { logStream: new LogSink() }));
    const [a, b, c] = gws as [Gateway, Gateway, Gateway];
    await allShared([a, b]);

    const shared = `You are a careful assistant. Background: ${'the gateway routes requests to engines by prefix and load. '.repeat(60)}`;
    const fromA = await burst(
      a,
      [0, 1, 2, 3].map((i) => `${shared} Question ${i}?`),
      'a',
    );
    const x = fromA[0] as string;
    const y = x === 'e0' ? 'e1' : 'e0';
    expect(fromA, 'A piles its burst on one engine (prefix affinity)').toEqual([x, x, x, x]);

    const fromB = await burst(
      b,
      [0, 1, 2, 3].map((i) => `Unrelated request ${i} to replica B: ${'alpha beta gamma delta '.repeat(20 + i)}`),
      'b',
    );
    const fromC = await burst(
      c,
      [0, 1, 2, 3].map((i) => `Unrelated request ${i} to gateway C: ${'epsilon zeta eta theta '.repeat(20 + i)}`),
      'c',
    );
    console.info(`burst: A → ${fromA.join(',')}; B (shared in-flight) → ${fromB.join(',')}; C (no Redis) → ${fromC.join(',')}`);
    // B's in-flight map of X as its last decision left it: A's entries (read from Redis) plus B's own on X
    const bSawOnX = (b.state().endpoints.find((e) => e.name === x)?.inFlight ?? 0) - count(fromB, x);
    expect(bSawOnX, 'B’s last decision saw A’s four streams in flight on X (shared through Redis, still running)').toBe(4);
    expect(count(fromB, y), 'B sees A’s four streams on X').toBe(4);
    expect(count(fromC, x), 'C, blind to A, sends some to X').toBeGreaterThan(0);
  });
});
