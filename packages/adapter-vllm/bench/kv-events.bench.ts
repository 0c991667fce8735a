import { Decoder } from '@msgpack/msgpack';
import type { BenchSuite } from '../../../bench/types.js';
import { EngineKeyMap, KvEventDecoder } from '../src/index.js';
import { BATCHES, EVENTS, vllmBatches } from './kv-events-fixture.js';

/**
 * KV-event ingestion: decode of realistic vLLM batches (see `kv-events-fixture.ts`: 64 events per
 * step, 3 of 4 a `BlockStored` of 4 blocks × 16 tokens in the current map encoding, 1 of 4 a
 * `BlockRemoved`) as typed events; decode + apply to an `EngineKeyMap` through typed events; and
 * the fused `KvEventDecoder.applyBatch`. The peer is a plain `@msgpack/msgpack` decode (reused
 * `Decoder`, `useBigInt64`) of the same bytes. One op = one batch; block events/s = ops/s ×
 * blockEventsPerBatch.
 */
export function createSuite(): BenchSuite {
  const { payloads, blockEventsPerBatch } = vllmBatches();
  const plain = new Decoder({ useBigInt64: true });
  const dec = new KvEventDecoder();
  const map = new EngineKeyMap({ maxEntries: 1 << 16 });
  const fusedDec = new KvEventDecoder();
  const fusedMap = new EngineKeyMap({ maxEntries: 1 << 16 });
  let i = 0;
  let _sink = 0;
  return {
    name: 'kv-events',
    notes: { eventsPerBatch: EVENTS, blockEventsPerBatch, bytesPerBatch: payloads[0]?.length ?? 0 },
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
      {
        name: 'decode + apply fused (applyBatch)',
        baseline: 'msgpack decode (peer)',
        fn: () => {
          _sink += fusedDec.applyBatch(payloads[i++ % BATCHES] as Uint8Array, fusedMap).events;
          if (fusedDec.slowBatches !== 0) throw new Error('fused bench left the fast path');
        },
      },
    ],
  };
}
