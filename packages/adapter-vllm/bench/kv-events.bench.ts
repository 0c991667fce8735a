import type { KvEvent } from '@kvmgr/core';
import { Decoder } from '@msgpack/msgpack';
import type { BenchSuite } from '../../../bench/types.js';
import { EngineKeyMap, KvEventDecoder, KvEventEncoder } from '../src/index.js';

const BATCHES = 64;
const EVENTS = 64; // per batch (one engine step)
const HASHES = 4; // blocks per BlockStored
const BLOCK = 16;

/**
 * KV-event ingestion: decode of realistic vLLM batches (64 events per step, 3 of 4 events a
 * `BlockStored` of 4 blocks × 16 tokens in the current map encoding, 1 of 4 a `BlockRemoved`),
 * as typed events, and decode + apply to an `EngineKeyMap`. The peer is a plain
 * `@msgpack/msgpack` decode (reused `Decoder`, `useBigInt64`) of the same bytes. One op = one
 * batch; block events/s = ops/s × blockEventsPerBatch.
 */
export function createSuite(): BenchSuite {
  const payloads: Uint8Array[] = [];
  let blockEvents = 0;
  let h = 0x8000000000000000n;
  for (let b = 0; b < BATCHES; b++) {
    const events: KvEvent[] = [];
    for (let e = 0; e < EVENTS; e++) {
      if (e % 4 === 3) {
        events.push({ type: 'BlockRemoved', blockHashes: [h - 7n], medium: 'GPU' });
        blockEvents += b === 0 ? 1 : 0;
        continue;
      }
      const parent = e % 8 === 0 ? null : h;
      const hashes = Array.from({ length: HASHES }, () => ++h * 0x9e3779b97f4a7c15n & 0xffffffffffffffffn);
      h = hashes[HASHES - 1] as bigint;
      events.push({
        type: 'BlockStored',
        blockHashes: hashes,
        parentBlockHash: parent,
        tokenIds: Array.from({ length: HASHES * BLOCK }, (_, t) => (t * 7919 + e * 131 + b) % 128000),
        blockSize: BLOCK,
        loraId: null,
        medium: 'GPU',
        loraName: null,
        extraKeys: null,
        groupIdx: 0,
        kvCacheSpecKind: 'full_attention',
      });
      blockEvents += b === 0 ? HASHES : 0;
    }
    payloads.push(new KvEventEncoder().encodeBatch({ ts: 1.7e9 + b, events }));
  }
  const plain = new Decoder({ useBigInt64: true });
  const dec = new KvEventDecoder();
  const map = new EngineKeyMap({ maxEntries: 1 << 16 });
  let i = 0;
  let _sink = 0;
  return {
    name: 'kv-events',
    notes: { eventsPerBatch: EVENTS, blockEventsPerBatch: blockEvents, bytesPerBatch: payloads[0]?.length ?? 0 },
    cases: [
      {
        name: 'msgpack decode (peer)',
        fn: () => {
          const v = plain.decode(payloads[i++ % BATCHES] as Uint8Array) as unknown[];
          _sink += v.length;
        },
      },
      {
        name: 'decode to typed events',
        baseline: 'msgpack decode (peer)',
        fn: () => {
          _sink += dec.decodeBatch(payloads[i++ % BATCHES] as Uint8Array).events.length;
        },
      },
      {
        name: 'decode + apply (EngineKeyMap)',
        baseline: 'msgpack decode (peer)',
        fn: () => {
          map.applyEvents(dec.decodeBatch(payloads[i++ % BATCHES] as Uint8Array).events);
          _sink += map.size;
        },
      },
    ],
  };
}
