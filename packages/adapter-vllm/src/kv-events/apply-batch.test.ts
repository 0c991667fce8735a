/**
 * The fused path `KvEventDecoder.applyBatch` (compact byte-level decode + `EngineKeyMap.applyCompact`)
 * against the reference `keys.applyEvents(decoder.decodeBatch(payload).events)`: same key-map
 * state on random batches in every encoding, the same errors on malformed payloads with nothing
 * applied, and on random corruptions of valid payloads either the same error or the same state.
 */
import type { KvEvent, KvEventBatch } from '@kvmgr/core';
import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvEventDecoder } from './decode.js';
import { KvEventEncoder } from './encode.js';
import { EngineKeyMap } from './engine-key-map.js';

const POOL = [1n, 2n, 3n, 42n, 0xffffffffn, 0x100000000n, 0xdab89baa7b5857c0n, 0x8000000000000000n, 0xffffffffffffffffn, 0x123456789abcdef0n];
const ns = { model: 'm' };

/** Everything observable of a map: size, counters, and the local key of every pool hash. */
function snapshot(m: EngineKeyMap): unknown {
  return { size: m.size, stats: { ...m.stats }, keys: POOL.map((h) => m.localKey(h) ?? null) };
}

/** Applies `payload` through the reference path; returns the error it threw, if any. */
function reference(dec: KvEventDecoder, m: EngineKeyMap, payload: Uint8Array): unknown {
  let batch: KvEventBatch;
  try {
    batch = dec.decodeBatch(payload);
  } catch (e) {
    return e;
  }
  m.applyEvents(batch.events);
  return undefined;
}

function fused(dec: KvEventDecoder, m: EngineKeyMap, payload: Uint8Array): unknown {
  try {
    dec.applyBatch(payload, m);
  } catch (e) {
    return e;
  }
  return undefined;
}

const hashArb = fc.constantFrom(...POOL);
const mediumArb = fc.constantFrom(null, 'GPU', 'CPU', 'gpu', 'disk', 'nvme-x');
const storedArb: fc.Arbitrary<KvEvent> = fc
  .record({
    hashes: fc.array(hashArb, { minLength: 0, maxLength: 4 }),
    parent: fc.option(hashArb, { nil: null }),
    blockSize: fc.integer({ min: 1, max: 3 }),
    tokenSkew: fc.constantFrom(0, 0, 0, 0, 1, -1), // sometimes token_ids.length !== hashes × block_size
    token: fc.integer({ min: 0, max: 0xffffffff }),
    loraId: fc.option(fc.integer({ min: -3, max: 300 }), { nil: null }),
    loraName: fc.option(fc.constantFrom('', 'sql-lora', 'λ-lora'), { nil: null }),
    medium: mediumArb,
    extraKeys: fc.option(
      fc.array(fc.option(fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.bigInt({ min: -(1n << 63n), max: (1n << 64n) - 1n }), fc.array(fc.string({ maxLength: 2 }), { maxLength: 2 })), { nil: null }), { maxLength: 5 }),
      { nil: null },
    ),
    groupIdx: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
    kind: fc.option(fc.constantFrom('full_attention', 'sliding_window'), { nil: null }),
  })
  .map(({ hashes, parent, blockSize, tokenSkew, token, loraId, loraName, medium, extraKeys, groupIdx, kind }) => ({
    type: 'BlockStored',
    blockHashes: hashes,
    parentBlockHash: parent,
    tokenIds: Array.from({ length: Math.max(0, hashes.length * blockSize + tokenSkew) }, (_, i) => (token + i * 7919) % 0x100000000),
    blockSize,
    loraId,
    medium,
    loraName,
    extraKeys,
    groupIdx,
    kvCacheSpecKind: kind,
  }));
const removedArb: fc.Arbitrary<KvEvent> = fc
  .record({ hashes: fc.array(hashArb, { maxLength: 3 }), medium: mediumArb, groupIdx: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }) })
  .map(({ hashes, medium, groupIdx }) => ({ type: 'BlockRemoved', blockHashes: hashes, medium, groupIdx }));
const clearedArb: fc.Arbitrary<KvEvent> = mediumArb.map((medium) => ({ type: 'AllBlocksCleared', medium }));
const eventArb = fc.oneof({ arbitrary: storedArb, weight: 6 }, { arbitrary: removedArb, weight: 3 }, { arbitrary: clearedArb, weight: 1 });
const batchArb = fc.record({
  ts: fc.double({ min: 0, max: 2e9, noNaN: true }),
  events: fc.array(eventArb, { maxLength: 12 }),
  dataParallelRank: fc.option(fc.integer({ min: 0, max: 7 }), { nil: null }),
  encoding: fc.constantFrom('map', 'array') as fc.Arbitrary<'map' | 'array'>,
  batchEncoding: fc.constantFrom('map', 'array') as fc.Arbitrary<'map' | 'array'>,
});
type BatchCase = { readonly ts: number; readonly events: readonly KvEvent[]; readonly dataParallelRank: number | null; readonly encoding: 'map' | 'array'; readonly batchEncoding: 'map' | 'array' };
const encode = (b: BatchCase): Uint8Array =>
  new KvEventEncoder({ encoding: b.encoding, batchEncoding: b.batchEncoding }).encodeBatch({ ts: b.ts, events: b.events, dataParallelRank: b.dataParallelRank });

describe('KvEventDecoder.applyBatch (fused decode + apply)', () => {
  it('property: gives exactly the key-map state of decode-then-apply, batch after batch, on its fast path', () => {
    fc.assert(
      fc.property(fc.array(batchArb, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 12 }), (batches, maxEntries) => {
        const fastDec = new KvEventDecoder();
        const refDec = new KvEventDecoder();
        const fast = new EngineKeyMap({ namespace: ns, maxEntries });
        const ref = new EngineKeyMap({ namespace: ns, maxEntries });
        for (const b of batches) {
          const payload = encode(b);
          expect(reference(refDec, ref, payload)).toBeUndefined();
          const info = fastDec.applyBatch(payload, fast);
          expect(info).toEqual({ ts: b.ts, events: b.events.length, dataParallelRank: b.dataParallelRank });
          expect(snapshot(fast)).toEqual(snapshot(ref));
        }
        expect(fastDec.slowBatches).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('reads every hash encoding (u64, i64, small and negative ints, bytes) as the general decoder does', () => {
    const payload = Uint8Array.from(
      Buffer.from(
        [
          '92 cb3ff8000000000000 92', // [1.5, [stored, removed]]
          '95 ab426c6f636b53746f726564', // ["BlockStored",
          '96 cfdab89baa7b5857c0 2a ceffffffff d3fffffffffffffffe ff c420 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
          'c0 96 01 02 03 04 05 06 01', // parent null, 6 tokens, block_size 1]
          '93 ac426c6f636b52656d6f766564 92 2a c403 010203 a3435055', // ["BlockRemoved", [42, bin 010203], "CPU"]
        ]
          .join('')
          .replace(/\s+/g, ''),
        'hex',
      ),
    );
    const fastDec = new KvEventDecoder();
    const fast = new EngineKeyMap();
    const ref = new EngineKeyMap();
    expect(reference(new KvEventDecoder(), ref, payload)).toBeUndefined();
    fastDec.applyBatch(payload, fast);
    expect(fastDec.slowBatches).toBe(0);
    expect(fast.size).toBe(6);
    expect(snapshot(fast)).toEqual(snapshot(ref));
    expect(fast.localKey(0x8899aabbccddeeffn)).toBe(ref.localKey(0x8899aabbccddeeffn));
    const out = new Uint32Array(2);
    expect(fast.lookupHalves(0xffffffff, 0xfffffffe, out)).toBe(true);
  });

  it('takes valid encodings off its fast path the general way (float hash, float block size, ext in an unknown field)', () => {
    const payloads = [
      '92 01 91 93 ac426c6f636b52656d6f766564 91 cb4014000000000000 c0', // hash 5.0
      '92 01 91 95 ab426c6f636b53746f726564 91 05 c0 91 07 cb3ff0000000000000', // block_size 1.0
      '92 01 91 82 a474797065 b0416c6c426c6f636b73436c6561726564 a178 d40001', // {"type": "AllBlocksCleared", "x": fixext}
    ];
    for (const hex of payloads) {
      const payload = Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
      const fastDec = new KvEventDecoder();
      const fast = new EngineKeyMap();
      const ref = new EngineKeyMap();
      fast.apply({ type: 'BlockStored', blockHashes: [5n], parentBlockHash: null, tokenIds: [1], blockSize: 1 });
      ref.apply({ type: 'BlockStored', blockHashes: [5n], parentBlockHash: null, tokenIds: [1], blockSize: 1 });
      expect(reference(new KvEventDecoder(), ref, payload), hex).toBeUndefined();
      fastDec.applyBatch(payload, fast);
      expect(fastDec.slowBatches, hex).toBe(1);
      expect(snapshot(fast), hex).toEqual(snapshot(ref));
    }
  });

  it('rejects a batch whose last event is bad with the general error, and applies none of it', () => {
    const good: KvEvent[] = [
      { type: 'BlockStored', blockHashes: [1n, 2n], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: 2 },
      { type: 'BlockRemoved', blockHashes: [42n] },
      { type: 'AllBlocksCleared', medium: 'CPU' },
    ];
    const valid = new KvEventEncoder().encodeBatch({ ts: 1, events: good });
    // same batch, one more event: a BlockStored whose block_size is 0
    const bad = new KvEventEncoder().encodeBatch({
      ts: 1,
      events: [...good, { type: 'BlockStored', blockHashes: [3n], parentBlockHash: 2n, tokenIds: [5], blockSize: 0 }],
    });
    const dec = new KvEventDecoder();
    const m = new EngineKeyMap();
    m.apply({ type: 'BlockStored', blockHashes: [42n], parentBlockHash: null, tokenIds: [9], blockSize: 1 });
    const before = snapshot(m);
    const e = fused(dec, m, bad);
    expect(isKvmgrError(e, 'KVMGR_PROTOCOL'), String(e)).toBe(true);
    expect((e as Error).message).toMatch(/events\[3\]\.block_size: expected a positive integer/);
    expect(snapshot(m)).toEqual(before);
    dec.applyBatch(valid, m); // and the decoder is still fine for the next batch
    expect(m.size).toBe(2);
  });

  it.each([
    ['truncated', '93 cb3ff8000000000000 91 92'],
    ['trailing bytes', '92 01 90 00'],
    ['batch is a string', 'a568656c6c6f'],
    ['unknown map type', '92 01 91 81 a474797065 a44e6f7065'],
    ['hash is a string', '92 01 91 92 ac426c6f636b52656d6f766564 92 01 a178'],
    ['negative token id', '92 01 91 95 ab426c6f636b53746f726564 91 01 c0 92 01 ff 02'],
    ['reserved byte 0xc1', '92 01 91 92 ac426c6f636b52656d6f766564 91 c1'],
    ['reserved byte 0xc1 in an ignored field', '92 01 91 82 a474797065 b0416c6c426c6f636b73436c6561726564 a178 c1'],
    ['0xc1 inside extra keys', '92 01 91 86 a474797065 ab426c6f636b53746f726564 ac626c6f636b5f686173686573 91 01 a9746f6b656e5f696473 91 01 aa626c6f636b5f73697a65 01 aa65787472615f6b657973 91 91 c1 b1706172656e745f626c6f636b5f68617368 c0'],
    ['__proto__ key', '92 01 91 82 a474797065 b0416c6c426c6f636b73436c6561726564 a95f5f70726f746f5f5f 01'],
    ['ts is NaN', '92 cb7ff8000000000000 90'],
    ['negative rank', '93 01 90 ff'],
  ])('rejects malformed payloads as decodeBatch does, changing nothing: %s', (_name, hex) => {
    const payload = Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
    const m = new EngineKeyMap();
    m.apply({ type: 'BlockStored', blockHashes: [1n], parentBlockHash: null, tokenIds: [9], blockSize: 1 });
    const before = snapshot(m);
    const refError = reference(new KvEventDecoder(), new EngineKeyMap(), payload);
    const e = fused(new KvEventDecoder(), m, payload);
    expect(isKvmgrError(e, 'KVMGR_PROTOCOL'), String(e)).toBe(true);
    expect((e as Error).message).toBe((refError as Error).message);
    expect(snapshot(m)).toEqual(before);
  });

  it('a string cut inside a UTF-8 sequence (LoRA name, extra keys) decodes as the general path decodes it', () => {
    // @msgpack/msgpack decodes a string ending in a lead byte with the byte after the string; the
    // fast path used to decode such a value cut at its own end, and got another LoRA name (fast-check seed 304465975)
    const ev: KvEvent = { type: 'BlockStored', blockHashes: [1n, 0xffffffffffffffffn], parentBlockHash: null, tokenIds: [65536, 73455], blockSize: 1, loraName: 'sql-lora', extraKeys: [[''], [' ', ' ']] };
    const clean = encode({ ts: 1, events: [ev], dataParallelRank: null, encoding: 'map', batchEncoding: 'map' });
    let compared = 0;
    for (let at = 0; at < clean.length; at++) {
      const payload = Uint8Array.from(clean);
      payload[at] = 0xc0;
      const seed: KvEvent = { type: 'BlockStored', blockHashes: [1n, 2n], parentBlockHash: null, tokenIds: [1, 2], blockSize: 1 };
      const fast = new EngineKeyMap({ maxEntries: 6 });
      const ref = new EngineKeyMap({ maxEntries: 6 });
      fast.apply(seed);
      ref.apply(seed);
      const refError = reference(new KvEventDecoder(), ref, payload);
      const e = fused(new KvEventDecoder(), fast, payload);
      expect((e as Error | undefined)?.message, `byte ${at}`).toBe((refError as Error | undefined)?.message);
      if (refError === undefined) {
        expect(snapshot(fast), `byte ${at}`).toEqual(snapshot(ref));
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(0);
  });

  it('property: on corrupted payloads it throws what decodeBatch throws (nothing applied) or reaches the same state', () => {
    fc.assert(
      fc.property(
        batchArb,
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 3 }),
        fc.option(fc.nat(), { nil: null }),
        (b, flips, cut) => {
          const clean = encode(b);
          const payload = Uint8Array.from(clean);
          for (const { at, byte } of flips) payload[at % payload.length] = byte;
          const bytes = cut === null ? payload : payload.subarray(0, cut % (payload.length + 1));
          const seed: KvEvent = { type: 'BlockStored', blockHashes: [1n, 2n], parentBlockHash: null, tokenIds: [1, 2], blockSize: 1 };
          const fast = new EngineKeyMap({ maxEntries: 6 });
          const ref = new EngineKeyMap({ maxEntries: 6 });
          fast.apply(seed);
          ref.apply(seed);
          const before = snapshot(fast);
          const refError = reference(new KvEventDecoder(), ref, bytes);
          const e = fused(new KvEventDecoder(), fast, bytes);
          if (refError === undefined) {
            expect(e).toBeUndefined();
            expect(snapshot(fast)).toEqual(snapshot(ref));
          } else {
            expect((e as Error | undefined)?.message).toBe((refError as Error).message);
            expect(snapshot(fast)).toEqual(before);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
