import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  blockKeyExtraDigest,
  blockKeyFromU64,
  blockKeyRoot,
  blockKeyToU64,
  blockKeysFromTokens,
  chainBlockKey,
} from './block-key.js';
import { isKvmgrError } from './errors.js';

const hex = (k: Uint32Array) => Array.from(k, (w) => w.toString(16).padStart(8, '0'));
const TOKENS = Array.from({ length: 48 }, (_, i) => i * 7 + 1);

describe('block keys: golden values', () => {
  // Produced by @kvmgr/router's hash64.ts (namespaceRoot / localKeysFromTokens / hashExtraKey)
  // on the same inputs: core's keys must stay identical so the router can switch over.
  it('matches the router key space', () => {
    expect(hex(blockKeyRoot({}))).toEqual(['0bf97f32', '9f9f94f6']);
    expect(hex(blockKeyRoot({ model: 'meta-llama/Llama-3.1-8B', lora: 'sql', cacheSalt: 's1' }))).toEqual(['765326c3', '177adf64']);
    expect(hex(blockKeysFromTokens(TOKENS, 16))).toEqual(['786b8ae9', 'd46ba23e', 'bbeab086', 'ed06d3f1', '56f4b92b', '28293f9d']);
    expect(hex(blockKeysFromTokens(TOKENS, 16, blockKeyRoot({ model: 'm' }), ['img-0', null, 42n]))).toEqual([
      '01f0881b', 'c8f76a86', '33f5d170', 'e573aeee', '89314d5d', 'aa7444c4',
    ]);
    expect([blockKeyExtraDigest('img-0'), blockKeyExtraDigest(['mm', 5]), blockKeyExtraDigest(42n)]).toEqual([952611864, 4175693794, 1580924780]);
  });

  it('converts to and from u64 at the wire', () => {
    expect(blockKeyToU64(0x0bf97f32, 0x9f9f94f6)).toBe(0x0bf97f329f9f94f6n);
    expect(hex(blockKeyFromU64(0xffffffff00000001n))).toEqual(['ffffffff', '00000001']);
  });

  it('rejects bad arguments with KVMGR_INVALID_ARGUMENT', () => {
    for (const f of [() => blockKeysFromTokens([1], 0), () => blockKeyFromU64(-1n), () => blockKeyFromU64(1n << 64n)]) {
      try {
        f();
        expect.unreachable();
      } catch (e) {
        expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
      }
    }
  });
});

describe('block keys: properties', () => {
  const tokens = fc.array(fc.integer({ min: 0, max: 0x7fffffff }), { maxLength: 96 });
  const bs = fc.integer({ min: 1, max: 16 });

  it('a key depends only on its prefix: keys of a prefix are a prefix of the keys', () => {
    fc.assert(
      fc.property(tokens, tokens, bs, (a, b, blockSize) => {
        const whole = blockKeysFromTokens([...a, ...b], blockSize);
        const part = blockKeysFromTokens(a, blockSize);
        expect(Array.from(whole.subarray(0, part.length))).toEqual(Array.from(part));
      }),
    );
  });

  it('chaining block by block from the root gives the same keys as the sequence helper', () => {
    fc.assert(
      fc.property(tokens, bs, fc.string(), (t, blockSize, model) => {
        const root = blockKeyRoot({ model });
        const keys = blockKeysFromTokens(t, blockSize, root);
        const out = new Uint32Array(2);
        let ph = root[0] as number;
        let pl = root[1] as number;
        for (let b = 0; b < keys.length / 2; b++) {
          chainBlockKey(ph, pl, t, b * blockSize, (b + 1) * blockSize, 0, out, 0);
          expect([out[0], out[1]]).toEqual([keys[2 * b], keys[2 * b + 1]]);
          ph = out[0] as number;
          pl = out[1] as number;
        }
      }),
    );
  });

  it('u64 round trip is the identity', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        const k = blockKeyFromU64(v);
        expect(blockKeyToU64(k[0] as number, k[1] as number)).toBe(v);
      }),
    );
  });

  it('namespaces and extra keys separate key spaces (no collisions in a sample)', () => {
    const seen = new Set<bigint>();
    const roots = [blockKeyRoot({}), blockKeyRoot({ model: 'a' }), blockKeyRoot({ model: 'a', lora: 'x' }), blockKeyRoot({ model: 'a', cacheSalt: 'x' })];
    for (const root of roots) {
      for (const extra of [undefined, 'img']) {
        const k = blockKeysFromTokens(TOKENS.slice(0, 16), 16, root, extra ? [extra] : undefined);
        seen.add(blockKeyToU64(k[0] as number, k[1] as number));
      }
    }
    expect(seen.size).toBe(8);
  });
});
