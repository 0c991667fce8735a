/**
 * Engine key functions against golden vectors, and the engine-hash → local-key map.
 *
 * Where the vectors come from:
 * - vLLM sha256_cbor: python3 hashlib.sha256 over CBOR bytes built by hand per RFC 8949 (a
 *   20-line encoder in the session notes, no cbor2), for (NONE_HASH, tuple(1..16), None) with
 *   PYTHONHASHSEED="0"; the event hash is int.from_bytes(digest[-8:], "big").
 * - SGLang: python3 replaying get_hash_str (sha256 over prior digest + u32 LE tokens) and
 *   hash_str_to_int64 (first 16 hex digits).
 * - Dynamo: hash-wasm's XXH3 (not independent); the hasher itself is checked against the
 *   reference vector XXH3_64("", seed 0) = 2d06800538d394c2.
 */
import type { KvEvent } from '@kvmgr/core';
import { blockKeyRoot, blockKeyToU64, blockKeysFromTokens } from '@kvmgr/core';
import fc from 'fast-check';
import { createXXHash3 } from 'hash-wasm';
import { describe, expect, it } from 'vitest';
import { encodeCanonicalCbor } from './cbor.js';
import { EngineKeyMap } from './engine-key-map.js';
import { DynamoBlockHasher } from './key-dynamo.js';
import { sglangBlockHashes, sglangEventHash } from './key-sglang.js';
import { vllmEventHash, vllmNoneHash, vllmSha256CborBlockHash, vllmSha256CborBlockHashes } from './key-vllm.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const T32 = Array.from({ length: 32 }, (_, i) => i + 1);

describe('vLLM sha256_cbor', () => {
  it('encodes the hash input as canonical CBOR', () => {
    const none = vllmNoneHash('0');
    expect(hex(none)).toBe('4e1195df020de59e0d65a33a4279f1183e7ae4e5d980e309f8b55adff2e61c3e');
    expect(hex(encodeCanonicalCbor([none, T32.slice(0, 16), null]))).toBe(`835820${hex(none)}900102030405060708090a0b0c0d0e0f10f6`);
    expect(hex(encodeCanonicalCbor([0, 23, 24, 255, 256, 65536, 2 ** 32, -1, -25, 'a', true]))).toBe('8b0017181818ff1901001a000100001b00000001000000002038186161f5');
  });

  it('matches python hashlib vectors, chained, with the event hash = last 8 bytes', () => {
    const [b1, b2] = vllmSha256CborBlockHashes(T32, 16, { pythonHashSeed: '0' });
    expect(hex(b1 as Uint8Array)).toBe('202da172482d928bbc42ab25b0151e2b895f13f41002e27b2ceabcfae6d332ea');
    expect(hex(b2 as Uint8Array)).toBe('4a0a393805c6d2f0ed831000d41bb65980336c4c04895d5e26470bbec927f5bf');
    expect(vllmEventHash(b1 as Uint8Array)).toBe(3236607068019569386n);
    expect(vllmEventHash(b2 as Uint8Array)).toBe(2758186210834249151n);
    const x = vllmSha256CborBlockHash(null, [1000, 70000, 5000000000, 0], ['my-lora', ['mm', 3], -5], vllmNoneHash('0'));
    expect(hex(x)).toBe('54032018e8f70b6aecf06d8bb1ca27d4158430957d0cdd246ca2c983d0b4091c');
    expect(vllmEventHash(x)).toBe(7828040670302701852n);
  });

  it('refuses floats and maps (not in vLLM hash inputs)', () => {
    expect(() => encodeCanonicalCbor([1.5])).toThrow(/value\[0\]/);
    expect(() => encodeCanonicalCbor({ a: 1 })).toThrow(/value/);
  });
});

describe('SGLang chained sha256', () => {
  it('matches python get_hash_str / hash_str_to_int64', () => {
    const [p1, p2] = sglangBlockHashes(T32, 16);
    expect(hex(p1 as Uint8Array)).toBe('77d735ce838418aa151bd96b5b1e78ee63860892e0a95c00fe34178442be9b07');
    expect(hex(p2 as Uint8Array)).toBe('1170426cf2449cebf4d17f087ce5bb43b6a910ce91b3f40922868e913e8ee91d');
    expect(sglangEventHash(p1 as Uint8Array)).toBe(8635429971592222890n);
    expect(sglangEventHash(p2 as Uint8Array)).toBe(1256577331724852459n);
  });
});

describe('Dynamo XXH3-64 seed 1337', () => {
  it('uses a reference-correct XXH3 and chains sequence hashes from local hashes', async () => {
    const ref = await createXXHash3(0, 0);
    ref.init();
    expect(ref.digest('hex')).toBe('2d06800538d394c2');
    const d = await DynamoBlockHasher.create();
    const { local, sequence } = d.blockHashes(T32, 16);
    expect(local[0]).toBe(0xea06fc71a5ee6e88n); // hash-wasm, seed 1337, u32 LE of 1..16
    expect(sequence[0]).toBe(local[0]);
    expect(sequence[1]).toBe(d.nextSequenceHash(sequence[0] as bigint, local[1] as bigint));
    expect(local[1]).toBe(d.localBlockHash(T32.slice(16))); // local hashes are not chained
  });
});

function stored(hashes: bigint[], parent: bigint | null, tokens: number[], extra?: Partial<KvEvent & { type: 'BlockStored' }>): KvEvent {
  return { type: 'BlockStored', blockHashes: hashes, parentBlockHash: parent, tokenIds: tokens, blockSize: 4, ...extra } as KvEvent;
}

describe('EngineKeyMap', () => {
  const ns = { model: 'm' };
  const tokens = Array.from({ length: 16 }, (_, i) => 100 + i);
  const expected = blockKeysFromTokens(tokens, 4, blockKeyRoot(ns));
  const keyAt = (b: number) => blockKeyToU64(expected[2 * b] as number, expected[2 * b + 1] as number);

  it('learns local keys from token ids, chained through parent hashes across events', () => {
    const m = new EngineKeyMap({ namespace: ns });
    m.apply(stored([11n, 12n], null, tokens.slice(0, 8)));
    m.apply(stored([13n, 14n], 12n, tokens.slice(8)));
    expect([11n, 12n, 13n, 14n].map((h) => m.localKey(h))).toEqual([0, 1, 2, 3].map(keyAt));
    const out = new Uint32Array(2);
    expect(m.lookup(14n, out)).toBe(true);
    expect([out[0], out[1]]).toEqual([expected[6], expected[7]]);
  });

  it('counts what it cannot use and changes nothing for it', () => {
    const m = new EngineKeyMap();
    m.apply(stored([1n], 999n, tokens.slice(0, 4))); // unknown parent
    m.apply(stored([2n], null, tokens.slice(0, 3))); // wrong token count
    m.apply({ type: 'BlockRemoved', blockHashes: [5n] });
    expect(m.size).toBe(0);
    expect(m.stats).toMatchObject({ unknownParentBlocks: 1, malformedEvents: 1, unknownRemovals: 1, stored: 0 });
  });

  it('keeps a hash until its last medium is removed; clears per medium and wholly', () => {
    const m = new EngineKeyMap();
    m.apply(stored([1n], null, tokens.slice(0, 4), { medium: 'GPU' }));
    m.apply(stored([1n], null, tokens.slice(0, 4), { medium: 'CPU' }));
    m.apply({ type: 'BlockRemoved', blockHashes: [1n], medium: 'GPU' });
    expect(m.localKey(1n)).toBeDefined();
    m.apply({ type: 'AllBlocksCleared', medium: 'CPU' });
    expect(m.size).toBe(0);
    m.apply(stored([2n, 3n], null, tokens.slice(0, 8)));
    m.apply({ type: 'AllBlocksCleared' });
    expect(m.size).toBe(0);
  });

  it('property: bounded, and agrees with a Map reference model under random events', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ op: fc.integer({ min: 0, max: 9 }), h: fc.integer({ min: 1, max: 24 }), cpu: fc.boolean() }), { maxLength: 200 }),
        (ops) => {
          const max = 8;
          const m = new EngineKeyMap({ maxEntries: max });
          const ref = new Map<bigint, number>(); // hash → medium bits, insertion order = store order
          for (const { op, h, cpu } of ops) {
            const hash = BigInt(h);
            const bit = cpu ? 2 : 1;
            const medium = cpu ? 'CPU' : 'GPU';
            if (op < 6) {
              m.apply(stored([hash], null, tokens.slice(0, 4), { medium }));
              const prev = ref.get(hash);
              ref.delete(hash);
              if (prev === undefined && ref.size === max) ref.delete(ref.keys().next().value as bigint);
              ref.set(hash, (prev ?? 0) | bit);
            } else if (op < 9) {
              m.apply({ type: 'BlockRemoved', blockHashes: [hash], medium });
              const prev = ref.get(hash);
              if (prev !== undefined && prev & bit) {
                if ((prev & ~bit) === 0) ref.delete(hash);
                else ref.set(hash, prev & ~bit);
              }
            } else {
              m.apply({ type: 'AllBlocksCleared' });
              ref.clear();
            }
            expect(m.size).toBeLessThanOrEqual(max);
            expect(m.size).toBe(ref.size);
          }
          for (let h = 1n; h <= 24n; h++) expect(m.localKey(h) !== undefined, `hash ${h}`).toBe(ref.has(h));
        },
      ),
    );
  });
});
