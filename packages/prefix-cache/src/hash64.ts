/**
 * Chained 64-bit block hash, computed as two 32-bit lanes with `Math.imul` (no BigInt on the
 * hot path). Each lane is MurmurHash3's x86_32 block step with its own seed; the finaliser
 * cross-mixes the lanes so every input bit reaches all 64 output bits. Deterministic across
 * processes and platforms; not cryptographic.
 *
 * @see https://github.com/aappleby/smhasher/blob/master/src/MurmurHash3.cpp
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** 32-bit MurmurHash3 finaliser (avalanche). */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Output slot of {@link hashPage}: `[hi, lo]` of the last computed hash. */
export const hashOut = new Uint32Array(2);

/**
 * Hashes one page (`len` keys of `keys` from `start`) chained on its parent's hash.
 * Writes the 64-bit result into {@link hashOut} as `[hi, lo]`.
 *
 * @param parentHi - high 32 bits of the parent block hash (the namespace seed at the root).
 * @param parentLo - low 32 bits of the parent block hash.
 */
export function hashPage(parentHi: number, parentLo: number, keys: ArrayLike<number>, start: number, len: number): void {
  let a = parentHi ^ 0x9e3779b9;
  let b = parentLo ^ 0x7f4a7c15;
  for (let i = start, end = start + len; i < end; i++) {
    const k = keys[i] as number;
    let ka = Math.imul(k, C1);
    ka = (ka << 15) | (ka >>> 17);
    a ^= Math.imul(ka, C2);
    a = (a << 13) | (a >>> 19);
    a = (Math.imul(a, 5) + 0xe6546b64) | 0;
    let kb = Math.imul(k ^ 0x5bd1e995, C2);
    kb = (kb << 17) | (kb >>> 15);
    b ^= Math.imul(kb, C1);
    b = (b << 11) | (b >>> 21);
    b = (Math.imul(b, 9) + 0x52dce729) | 0;
  }
  a ^= len;
  b ^= len;
  a = (a + b) | 0;
  b = (b + a) | 0;
  a = fmix32(a);
  b = fmix32(b);
  a = (a + b) | 0;
  b = (b + a) | 0;
  hashOut[0] = a;
  hashOut[1] = b;
}

/** 32-bit hash of one page of keys (child lookup key in the radix tree). */
export function hashKeys32(keys: ArrayLike<number>, start: number, len: number): number {
  let h = 0x2545f491;
  for (let i = start, end = start + len; i < end; i++) {
    let k = Math.imul(keys[i] as number, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  return fmix32(h ^ len);
}

/**
 * 64-bit seed of a namespace (tenant / LoRA / cache salt): FNV-1a over the UTF-16 code units,
 * in two lanes. Written into {@link hashOut}. The empty namespace hashes to a fixed value.
 */
export function hashNamespace(namespace: string): void {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < namespace.length; i++) {
    const c = namespace.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193 + 2);
  }
  hashOut[0] = fmix32(a ^ namespace.length);
  hashOut[1] = fmix32(b + 0x27d4eb2f);
}

/** Combines `[hi, lo]` into the u64 `bigint` that KV events carry. */
export function toBigHash(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
