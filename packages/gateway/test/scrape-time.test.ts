/**
 * The time of a scrape is when its request was sent: a request routed while a scrape is in
 * flight (after the engine produced its numbers, before the gateway got them) is in neither the
 * snapshot nor, were the time taken when the answer arrives, the requests routed since. A real
 * engine server on 127.0.0.1 whose `/metrics` goes through a loopback TCP proxy that holds the
 * answer until the test has routed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveEndpoint } from '../src/config.js';
import { Endpoint } from '../src/endpoint.js';
import { GatedProxy, TestEngine, until } from './helpers.js';

describe('Endpoint: the scrape time is its send time', () => {
  let engine: TestEngine;
  let proxy: GatedProxy;
  let ep: Endpoint | undefined;
  /** What the endpoint counted right after each scrape landed: requests routed since it, and the routing snapshot's waiting. */
  const landed: { since: number; waiting: number; freeTokens: number }[] = [];

  beforeAll(async () => {
    engine = await TestEngine.start({ kvEvents: false, numGpuBlocks: 64 });
    proxy = await GatedProxy.start(engine.url);
    ep = await Endpoint.start(resolveEndpoint({ name: 'e0', url: engine.url, metricsUrl: `${proxy.url}/metrics`, engine: 'kvmgr' }), {
      scrapeIntervalMs: 500,
      unhealthyThreshold: 3,
      sink: { onEvents: () => undefined },
      onScrape: (e) => {
        const at = e.latest()?.scrapedAtMs ?? 0;
        landed.push({ since: e.inFlight.routedSince(at).count, waiting: e.routingSnapshot(Date.now() * 1000).waiting, freeTokens: e.freeTokens() });
      },
    });
  });
  afterAll(async () => {
    await ep?.close();
    await proxy?.close();
    await engine?.close();
  });

  it('a request routed while the scrape is in flight is counted once that scrape lands', async () => {
    const e = ep as Endpoint;
    expect(e.healthy).toBe(true);
    expect(e.capacityTokens()).toBe(64 * 16);
    // hold the next /metrics answer; wait for its request to go out
    proxy.hold();
    const sentBefore = proxy.count('GET /metrics');
    await until(() => proxy.count('GET /metrics') > sentBefore, 5000, 'the next scrape to be sent');
    const landedBefore = landed.length;
    // routed now: after the engine's numbers were asked for (the idle engine counts nothing), before they arrive
    const routedAtMs = Date.now();
    e.inFlight.set('r-during-scrape', { tokens: 100, routedAtMs });
    // the answer arrives strictly later than the routing (ms clock)
    await until(() => Date.now() > routedAtMs, 1000, 'the clock to move');
    proxy.release();
    await until(() => landed.length > landedBefore, 5000, 'the scrape to land');
    const after = landed[landedBefore] as { since: number; waiting: number; freeTokens: number };
    expect(after.since).toBe(1);
    expect(after.waiting).toBe(1);
    expect(after.freeTokens).toBe(64 * 16 - 100);
    // its end gives nothing back twice: it was routed after the scrape was sent, so that scrape never counted it
    e.finishInFlight('r-during-scrape');
    expect(e.inFlight.routedSince(e.latest()?.scrapedAtMs ?? 0).count).toBe(0);
    expect(e.freeTokens()).toBe(64 * 16);
  });
});
