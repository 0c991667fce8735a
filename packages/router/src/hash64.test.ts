import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashExtraKey, localKeysFromBlockIds, localKeysFromTokens, namespaceRoot } from './hash64.js';

function keyStrings(keys: Uint32Array): string[] {
  const out: string[] = [];
  for (let i = 0; i < keys.length; i += 2) out.push(`${keys[i]}:${keys[i + 1]}`);
  return out;
}

describe('local keys (kvmgr-h64)', () => {
  it('are stable across versions (shared backends depend on it)', () => {
    // pinned on first release: changing the hash invalidates every shared index
    const k = localKeysFromTokens([1, 2, 3, 4, 5, 6, 7, 8], 4);
    const again = localKeysFromTokens(Uint32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), 4);
    expect(Array.from(k)).toEqual([829147642, 1957022490, 3322295054, 3909055251]);
    expect(Array.from(again)).toEqual(Array.from(k));
  });

  it('give one key per full block; a trailing partial block has none', () => {
    expect(localKeysFromTokens([1, 2, 3, 4, 5, 6, 7], 4).length).toBe(2);
    expect(localKeysFromTokens([1, 2, 3], 4).length).toBe(0);
  });

  it('chain: a shared prefix gives shared keys, and a change in block i changes keys i..end', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50000 }), { minLength: 16, maxLength: 64 }), fc.nat(), (tokens, at) => {
        const bs = 4;
        const a = keyStrings(localKeysFromTokens(tokens, bs));
        const i = at % tokens.length;
        const changed = [...tokens];
        changed[i] = (changed[i] as number) + 1;
        const b = keyStrings(localKeysFromTokens(changed, bs));
        const blk = Math.floor(i / bs);
        for (let j = 0; j < a.length; j++) {
          if (j < blk) expect(b[j]).toBe(a[j]);
          else expect(b[j]).not.toBe(a[j]);
        }
      }),
    );
  });

  it('are namespaced by model, LoRA and cache salt', () => {
    const t = [9, 8, 7, 6];
    const plain = keyStrings(localKeysFromTokens(t, 4))[0];
    const lora = keyStrings(localKeysFromTokens(t, 4, namespaceRoot({ lora: 'a' })))[0];
    const model = keyStrings(localKeysFromTokens(t, 4, namespaceRoot({ model: 'a' })))[0];
    const salt = keyStrings(localKeysFromTokens(t, 4, namespaceRoot({ cacheSalt: 'a' })))[0];
    expect(new Set([plain, lora, model, salt]).size).toBe(4);
  });

  it('extra keys change the block key', () => {
    const t = [1, 2, 3, 4];
    const a = keyStrings(localKeysFromTokens(t, 4))[0];
    const b = keyStrings(localKeysFromTokens(t, 4, namespaceRoot({}), ['img-1']))[0];
    const c = keyStrings(localKeysFromTokens(t, 4, namespaceRoot({}), [null]))[0];
    expect(b).not.toBe(a);
    expect(c).toBe(a);
    expect(hashExtraKey('x')).not.toBe(0);
    expect(hashExtraKey(5n)).toBe(hashExtraKey(5n));
  });

  it('have no collisions over 200k distinct single blocks', () => {
    const seen = new Set<string>();
    const tok = new Uint32Array(16);
    for (let i = 0; i < 200_000; i++) {
      tok[0] = i;
      tok[5] = i * 7;
      const k = localKeysFromTokens(tok, 16);
      seen.add(`${k[0]}:${k[1]}`);
    }
    expect(seen.size).toBe(200_000);
  });

  it('map trace block ids by identity (hi 0, lo id)', () => {
    expect(Array.from(localKeysFromBlockIds([7, 4294967295]))).toEqual([0, 7, 0, 4294967295]);
  });
});
