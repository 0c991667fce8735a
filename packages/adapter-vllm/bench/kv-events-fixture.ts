/**
 * The KV-event batches every KV-event benchmark and profiling driver uses: realistic vLLM steps
 * (64 events per batch, 3 of 4 events a `BlockStored` of 4 blocks × 16 tokens in the current map
 * encoding, 1 of 4 a `BlockRemoved`), hashes full 64-bit.
 */
import type { KvEvent } from '@kvmgr/core';
import { KvEventEncoder } from '../src/index.js';

/** Batches in the ring the benchmarks cycle through. */
export const BATCHES = 64;
/** Events per batch (one engine step). */
export const EVENTS = 64;
const HASHES = 4; // blocks per BlockStored
const BLOCK = 16;

/** The encoded payloads and how many block events (stored + removed hashes) each carries. */
export interface VllmBatches {
  readonly payloads: readonly Uint8Array[];
  readonly blockEventsPerBatch: number;
}

/** Builds {@link BATCHES} msgpack payloads as current vLLM sends them (map-encoded events). */
export function vllmBatches(): VllmBatches {
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
      const hashes = Array.from({ length: HASHES }, () => (++h * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn);
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
  return { payloads, blockEventsPerBatch: blockEvents };
}
