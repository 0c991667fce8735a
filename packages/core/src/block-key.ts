/**
 * kvmgr's own block key: a chained 64-bit hash of (parent key, the block's token ids, extra keys),
 * seeded by a namespace (model, LoRA name, cache salt). This is the "local key" space of
 * DESIGN §6: engines publish their own block hashes, which adapters map onto these keys from
 * the token ids that `BlockStored` events carry (as llm-d and Dynamo do).
 *
 * A key is two unsigned 32-bit halves (`hi`, `lo`) so no BigInt is touched on the hot path; a
 * run of keys is a `Uint32Array` laid out `[hi0, lo0, hi1, lo1, …]`. BigInt appears only at the
 * wire ({@link blockKeyToU64}, {@link blockKeyFromU64}).
 *
 * The hash ("kvmgr-h64") is two MurmurHash3 x86_32 lanes with different seeds, each absorbing
 * both parent words then every token, finalised with fmix32 and cross-added the way
 * MurmurHash3_x86_128 combines its lanes. It produces exactly the keys of
 * `@kvmgr/router`'s `hash64.ts` for the same inputs (golden values in the test pin this), so
 * the router can switch to this module without re-keying.
 *
 * @see https://github.com/aappleby/smhasher/blob/master/src/MurmurHash3.cpp
 * @see llm-d/llm-d-kv-cache-manager: pkg/kvcache/kvblock (two key spaces)
 */
import { invalidArgument } from './errors.js';

/** A run of 64-bit block keys, `[hi0, lo0, hi1, lo1, …]` (length = 2 × blocks). */
export type BlockKeys = Uint32Array;

/** What separates key spaces: blocks of another model, LoRA or cache salt never share keys. */
export interface BlockKeyNamespace {
  readonly model?: string;
  readonly lora?: string;
  readonly cacheSalt?: string;
}

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const SEED_A = 0x9747b28c;
const SEED_B = 0x85ebca77;
const U32 = 0xffffffffn;

function absorb(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/**
 * Hashes one block: the parent key `(parentHi, parentLo)` chained with `tokens[start..end)` and
 * an optional 32-bit digest of the block's extra keys; writes `out[2*outBlock] = hi`,
 * `out[2*outBlock + 1] = lo`. Allocates nothing.
 *
 * @param parentHi - high 32 bits of the parent key (the namespace root for a first block).
 * @param parentLo - low 32 bits of the parent key.
 * @param tokens - token ids (integers; only the low 32 bits are used).
 * @param start - first token index of the block.
 * @param end - one past the last token index.
 * @param extra - digest of the block's extra keys ({@link blockKeyExtraDigest}); 0 = none.
 * @param out - destination key run.
 * @param outBlock - block position in `out`.
 */
export function chainBlockKey(
  parentHi: number,
  parentLo: number,
  tokens: ArrayLike<number>,
  start: number,
  end: number,
  extra: number,
  out: BlockKeys,
  outBlock: number,
): void {
  let a = SEED_A;
  let b = SEED_B;
  a = absorb(a, parentLo);
  a = absorb(a, parentHi);
  b = absorb(b, parentHi);
  b = absorb(b, parentLo);
  for (let i = start; i < end; i++) {
    const t = (tokens[i] as number) | 0;
    a = absorb(a, t);
    b = absorb(b, t ^ 0x5bd1e995);
  }
  if (extra !== 0) {
    a = absorb(a, extra);
    b = absorb(b, ~extra);
  }
  const len = end - start;
  a = fmix(a ^ len);
  b = fmix(b ^ len);
  a = (a + b) | 0;
  b = (b + a) | 0;
  out[2 * outBlock] = b >>> 0;
  out[2 * outBlock + 1] = a >>> 0;
}

/**
 * A 32-bit digest of one block's extra keys (multimodal hashes, LoRA name, cache salt): a string
 * is hashed by its UTF-16 code units, anything else by its JSON text (bigints written `123n`).
 *
 * @param value - string, number, bigint, array or any JSON-able value.
 * @returns a non-zero unsigned 32-bit integer (0 is reserved for "no extra key").
 */
export function blockKeyExtraDigest(value: unknown): number {
  const s =
    typeof value === 'string'
      ? value
      : (JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value));
  let h = SEED_A;
  for (let i = 0; i < s.length; i++) h = absorb(h, s.charCodeAt(i));
  h = fmix(h ^ s.length) >>> 0;
  return h === 0 ? 1 : h;
}

/**
 * The root key of a namespace: the parent of every first block. The empty namespace has a fixed
 * non-zero root, different from the root of any namespace with a model, LoRA or salt.
 *
 * @param ns - model, LoRA name and cache salt; all optional. @default {}
 * @returns `[hi, lo]` as a new 2-element `Uint32Array`.
 */
export function blockKeyRoot(ns: BlockKeyNamespace = {}): BlockKeys {
  const s = `${ns.model ?? ''}\u0000${ns.lora ?? ''}\u0000${ns.cacheSalt ?? ''}`;
  const codes = new Uint32Array(s.length);
  for (let i = 0; i < s.length; i++) codes[i] = s.charCodeAt(i);
  const out = new Uint32Array(2);
  chainBlockKey(0x6b766d67, 0x726f6f74, codes, 0, codes.length, 0, out, 0);
  return out;
}

const EMPTY_ROOT: BlockKeys = blockKeyRoot({});

/**
 * Keys of every full block of a token sequence, chained from a namespace root. A trailing
 * partial block gets no key (engines only cache full blocks).
 *
 * @param tokens - token ids.
 * @param blockSize - tokens per block (≥ 1).
 * @param root - namespace root from {@link blockKeyRoot}. @default blockKeyRoot({})
 * @param extraKeys - optional per-block extra keys (index = block); null/undefined entries mean none.
 * @returns `floor(tokens.length / blockSize)` keys.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `blockSize` is not a positive integer or
 *   `root` does not hold 2 words.
 */
export function blockKeysFromTokens(
  tokens: ArrayLike<number>,
  blockSize: number,
  root: BlockKeys = EMPTY_ROOT,
  extraKeys?: readonly unknown[] | null,
): BlockKeys {
  if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw invalidArgument('blockSize', blockSize, 'a positive integer');
  if (root.length < 2) throw invalidArgument('root', root, 'a 2-word key [hi, lo]');
  const n = Math.floor(tokens.length / blockSize);
  const out = new Uint32Array(2 * n);
  // the parent halves are carried as int32 (same bits; the hash reads them through Math.imul): a
  // u32 above 2^31 passed as an argument would be boxed, two heap numbers per block
  let ph = (root[0] as number) | 0;
  let pl = (root[1] as number) | 0;
  for (let b = 0; b < n; b++) {
    const x = extraKeys?.[b];
    chainBlockKey(ph, pl, tokens, b * blockSize, (b + 1) * blockSize, x == null ? 0 : blockKeyExtraDigest(x), out, b);
    ph = (out[2 * b] as number) | 0;
    pl = (out[2 * b + 1] as number) | 0;
  }
  return out;
}

/**
 * A key's two halves as one unsigned 64-bit bigint (`hi << 32 | lo`), for the wire and for logs.
 *
 * @param hi - high 32 bits (unsigned).
 * @param lo - low 32 bits (unsigned).
 */
export function blockKeyToU64(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/**
 * Splits an unsigned 64-bit bigint into a key's halves, written to `out[2*index]` (hi) and
 * `out[2*index + 1]` (lo).
 *
 * @param value - an integer in `[0, 2^64)`.
 * @param out - destination. @default a new 2-word `Uint32Array`
 * @param index - key position in `out`. @default 0
 * @returns `out`.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `value` is not a bigint in `[0, 2^64)`.
 */
export function blockKeyFromU64(value: bigint, out: BlockKeys = new Uint32Array(2), index = 0): BlockKeys {
  if (typeof value !== 'bigint' || value < 0n || value > 0xffffffffffffffffn) {
    throw invalidArgument('value', value, 'a bigint in [0, 2^64)');
  }
  out[2 * index] = Number((value >> 32n) & U32);
  out[2 * index + 1] = Number(value & U32);
  return out;
}
