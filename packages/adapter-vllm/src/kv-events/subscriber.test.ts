/**
 * Publisher → subscriber over real ZMQ sockets (127.0.0.1 ephemeral ports and ipc in a temp
 * dir): in-order delivery, gap repair by replay, restart detection, malformed frames, replay
 * failure. The only startup wait is ZMQ's slow joiner, handled by publishing until the subscriber
 * sees a message and by replay from 0 for what it missed. Every socket is closed in afterEach.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KvEvent } from '@kvmgr/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Publisher, Router } from 'zeromq';
import { KvEventEncoder } from './encode.js';
import { KvEventPublisher } from './publisher.js';
import { type KvEventDelivery, KvEventSubscriber, type KvEventSubscriberLogger } from './subscriber.js';
import { encodeSeq } from './wire.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmgr-kv-events-'));
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function eventsFor(seq: number): KvEvent[] {
  return [
    { type: 'BlockStored', blockHashes: [BigInt(seq) * 2n + 1n, 0xffffffffffffff00n + BigInt(seq % 200)], parentBlockHash: seq === 0 ? null : BigInt(seq), tokenIds: Array.from({ length: 8 }, (_, i) => seq + i), blockSize: 4, medium: 'GPU' },
    { type: 'BlockRemoved', blockHashes: [BigInt(seq)] },
  ];
}

async function open(opts: ConstructorParameters<typeof KvEventSubscriber>[0]): Promise<{ sub: KvEventSubscriber; got: KvEventDelivery[]; warnings: string[] }> {
  const got: KvEventDelivery[] = [];
  const warnings: string[] = [];
  const logger: KvEventSubscriberLogger = { warn: (m, d) => warnings.push(`${m} ${JSON.stringify(d)}`) };
  const sub = new KvEventSubscriber({ onBatch: (d) => got.push(d), logger, ...opts });
  cleanups.push(() => sub.close());
  return { sub, got, warnings };
}

async function publisher(opts: Parameters<typeof KvEventPublisher.create>[0]): Promise<KvEventPublisher> {
  const pub = await KvEventPublisher.create(opts);
  cleanups.push(() => pub.close());
  return pub;
}

/** Publishes batches until the subscriber delivered one (slow joiner), then up to `total`. */
async function publishRun(pub: KvEventPublisher, got: KvEventDelivery[], total: number): Promise<void> {
  while (got.length === 0 && pub.nextSeq < total) {
    await pub.publish(eventsFor(pub.nextSeq));
    await new Promise((r) => setTimeout(r, 2));
  }
  if (got.length === 0) await until(() => got.length > 0, 'a first delivery');
  while (pub.nextSeq < total) await pub.publish(eventsFor(pub.nextSeq));
}

function expectInOrder(got: readonly KvEventDelivery[], from: number, to: number): void {
  expect(got.map((d) => d.seq)).toEqual(Array.from({ length: to - from }, (_, i) => from + i));
  for (const d of got) expect(d.batch.events).toEqual(eventsFor(d.seq).map((e) => expect.objectContaining(e)));
}

const transports = [
  ['tcp', () => ({ endpoint: 'tcp://127.0.0.1:0', replayEndpoint: 'tcp://127.0.0.1:0', bind: true })],
  ['ipc', () => {
    const n = Math.random().toString(36).slice(2);
    return { endpoint: `ipc://${join(dir, `pub-${n}`)}`, replayEndpoint: `ipc://${join(dir, `replay-${n}`)}` };
  }],
] as const;

describe.each(transports)('KV events over %s', (_name, endpoints) => {
  it('delivers every batch in order, events intact (what the slow joiner missed comes by replay)', async () => {
    const pub = await publisher({ ...endpoints(), topic: 'kv@pod-0@llama' });
    const { sub, got } = await open({ endpoints: pub.endpoint, replayEndpoints: pub.replayEndpoint, topic: 'kv@' });
    await publishRun(pub, got, 300);
    await until(() => got.length === 300, '300 batches');
    expectInOrder(got, 0, 300);
    expect(got[0]?.source).toEqual({ endpoint: pub.endpoint, dpRank: null, topic: 'kv@pod-0@llama' });
    const st = sub.stats();
    expect(st.lost).toBe(0);
    expect(st.sources[0]?.possiblyIncomplete).toBe(false);
  });

  it('heals a stream that drops every 7th message by replay: nothing lost, nothing twice', async () => {
    const pub = await publisher({ ...endpoints(), dropIf: (seq) => seq % 7 === 6, replayTopicFrame: _name === 'ipc' });
    const { sub, got } = await open({ endpoints: pub.endpoint, replayEndpoints: pub.replayEndpoint });
    await publishRun(pub, got, 141); // last seq 140 is not dropped, so the final gap is seen
    await until(() => got.length === 141, '141 batches');
    expectInOrder(got, 0, 141);
    const st = sub.stats();
    expect(st.gaps).toBeGreaterThanOrEqual(1);
    expect(st.replays).toBeGreaterThanOrEqual(st.gaps);
    expect(st.lost).toBe(0);
    expect(st.replayFailures).toBe(0);
  });
});

describe('publisher restart', () => {
  it('is detected (seq goes back with a newer ts): a reset is delivered and the source resyncs', async () => {
    const n = Math.random().toString(36).slice(2);
    const eps = { endpoint: `ipc://${join(dir, `rs-${n}`)}`, replayEndpoint: `ipc://${join(dir, `rs-replay-${n}`)}` };
    const first = await KvEventPublisher.create(eps);
    const { sub, got } = await open({ endpoints: first.endpoint, replayEndpoints: first.replayEndpoint });
    try {
      await publishRun(first, got, 50);
      await until(() => got.length === 50, 'the first run');
    } finally {
      await first.close();
    }
    // the restarted publisher starts again at seq 0; the SUB socket reconnects on its own (about
    // 100 ms), so publish slowly until the reset shows: it must come while seq < 50
    const second = await publisher(eps);
    while (!got.some((d) => d.reset) && second.nextSeq < 40) {
      await second.publish(eventsFor(second.nextSeq));
      // 40 × 50 ms: two seconds for the reconnect (400 ms was four reconnect intervals, tight on a loaded machine)
      await new Promise((r) => setTimeout(r, 50));
    }
    const total = second.nextSeq + 5;
    while (second.nextSeq < total) await second.publish(eventsFor(second.nextSeq));
    await until(() => got.length === 50 + 1 + total, 'the second run after the reset');
    expectInOrder(got.slice(0, 50), 0, 50);
    const reset = got[50] as KvEventDelivery;
    expect(reset.reset).toBe(true);
    expect(reset.batch.events).toEqual([{ type: 'AllBlocksCleared' }]);
    expectInOrder(got.slice(51), 0, total);
    const st = sub.stats();
    expect(st.restarts).toBe(1);
    expect(st.lost).toBe(0);
  });
});

describe('malformed frames and failed replays', () => {
  it('counts garbage and truncated frames per endpoint, logs them with the source, keeps going', async () => {
    const raw = new Publisher({ linger: 0 });
    cleanups.push(() => raw.close());
    await raw.bind('tcp://127.0.0.1:0');
    const endpoint = raw.lastEndpoint as string;
    const { sub, got, warnings } = await open({ endpoints: endpoint });
    const enc = new KvEventEncoder();
    const good = (seq: number) => [Buffer.alloc(0), encodeSeq(seq), enc.encodeBatch({ ts: 1 + seq, events: eventsFor(seq) })];
    let seq = 0;
    let duplicated = false;
    while (got.length < 5 && seq < 2000) {
      const payload = enc.encodeBatch({ ts: 1, events: eventsFor(seq) });
      await raw.send([Buffer.from('x'), Buffer.from('garbage')]); // 2 frames
      await raw.send([Buffer.alloc(0), Buffer.alloc(4), payload]); // short seq
      await raw.send([Buffer.alloc(0), encodeSeq(seq), Buffer.from([0xc1])]); // never-used msgpack byte
      await raw.send([Buffer.alloc(0), encodeSeq(seq), payload.subarray(0, payload.length - 3)]); // truncated
      await raw.send(good(seq));
      // an at-least-once duplicate, once the subscriber receives (a fixed seq, sent before a slow
      // joiner had joined, was never seen)
      if (got.length > 0 && !duplicated) {
        await raw.send(good(seq));
        duplicated = true;
      }
      seq++;
      await new Promise((r) => setTimeout(r, 2));
    }
    await until(() => got.length >= 5, '5 good batches');
    const st = sub.stats();
    expect(st.endpoints[0]?.malformed).toBeGreaterThanOrEqual(4);
    expect(st.malformed).toBe(st.endpoints[0]?.malformed);
    expect(st.duplicates).toBeGreaterThanOrEqual(1);
    const seqs = got.map((d) => d.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i));
    expect(warnings.some((w) => w.includes('malformed frame skipped') && w.includes(endpoint))).toBe(true);
  });

  it('a replay that never answers times out: counted, source marked incomplete, live stream continues', async () => {
    const silent = new Router({ linger: 0 }); // accepts requests, never replies
    cleanups.push(() => silent.close());
    await silent.bind('tcp://127.0.0.1:0');
    const pub = await publisher({ endpoint: 'tcp://127.0.0.1:0', bind: true, dropIf: (s) => s === 40 });
    const { sub, got } = await open({ endpoints: pub.endpoint, replayEndpoints: silent.lastEndpoint, replayTimeoutMs: 150 });
    await publishRun(pub, got, 60);
    await until(() => got.some((d) => d.seq === 59), 'the last batch');
    const st = sub.stats();
    expect(st.replayFailures).toBeGreaterThanOrEqual(1);
    expect(st.lost).toBeGreaterThanOrEqual(1);
    expect(st.sources[0]?.possiblyIncomplete).toBe(true);
    expect(got.some((d) => d.seq === 40)).toBe(false);
    const seqs = got.map((d) => d.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs); // still in order
  });

  it('async iteration delivers in order and ends on close()', async () => {
    const pub = await publisher({ endpoint: 'tcp://127.0.0.1:0', replayEndpoint: 'tcp://127.0.0.1:0', bind: true });
    const sub = new KvEventSubscriber({ endpoints: pub.endpoint, replayEndpoints: pub.replayEndpoint });
    cleanups.push(() => sub.close());
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const d of sub) seen.push(d.seq);
    })();
    while (seen.length === 0) {
      await pub.publish(eventsFor(pub.nextSeq));
      await new Promise((r) => setTimeout(r, 2));
    }
    while (pub.nextSeq < 50) await pub.publish(eventsFor(pub.nextSeq));
    await until(() => seen.length === 50, '50 batches');
    await sub.close();
    await consumer;
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});
