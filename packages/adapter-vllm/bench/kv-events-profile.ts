/**
 * Profiling driver for KV-event ingestion (not a benchmark: no peer). Runs one path in a loop so
 * `node --cpu-prof` sees only it:
 * `node --conditions=@kvmgr/source --import tsx --cpu-prof bench/kv-events-profile.ts fused|typed|apply|peer [seconds]`.
 */
import { Decoder } from '@msgpack/msgpack';
import { EngineKeyMap, KvEventDecoder } from '../src/index.js';
import { BATCHES, vllmBatches } from './kv-events-fixture.js';

const mode = process.argv[2] ?? 'fused';
const seconds = Number(process.argv[3] ?? 5);
const { payloads, blockEventsPerBatch } = vllmBatches();
const plain = new Decoder({ useBigInt64: true });
const dec = new KvEventDecoder();
const map = new EngineKeyMap({ maxEntries: 1 << 16 });
const step: Record<string, (p: Uint8Array) => void> = {
  peer: (p) => plain.decode(p),
  typed: (p) => dec.decodeBatch(p),
  apply: (p) => map.applyEvents(dec.decodeBatch(p).events),
  fused: (p) => dec.applyBatch(p, map),
};
const fn = step[mode];
if (fn === undefined) throw new Error(`mode must be one of ${Object.keys(step).join(', ')}`);
let n = 0;
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  for (let i = 0; i < BATCHES; i++) fn(payloads[i] as Uint8Array);
  n += BATCHES;
}
const us = ((performance.now() - t0) * 1000) / n;
console.log(`${mode}: ${us.toFixed(1)} µs/batch, ${((blockEventsPerBatch / us) * 1e6).toExponential(3)} block events/s, slowBatches ${dec.slowBatches}`);
