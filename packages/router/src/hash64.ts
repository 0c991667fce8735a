/**
 * Local request keys: a chained 64-bit hash of (parent key, the block's token ids, extra keys),
 * seeded by model / LoRA / cache salt. Keys are kept as two unsigned 32-bit lanes (`hi`, `lo`)
 * so that no BigInt is touched on the hot path; a run of keys is a `Uint32Array` laid out
 * `[hi0, lo0, hi1, lo1, …]` ({@link LocalKeys}).
 *
 * The hash ("kvmgr-h64") is two MurmurHash3 x86_32 lanes with different seeds, each absorbing
 * both parent words then every token, finalised with fmix32 and cross-added the way
 * MurmurHash3_x86_128 combines its lanes. It is not xxHash or vLLM's sha256; engine keys are
 * mapped to it from `BlockStored` events (which carry token ids), as llm-d and Dynamo do.
 *
 * @see https://github.com/aappleby/smhasher/blob/master/src/MurmurHash3.cpp
 * @see llm-d/llm-d-kv-cache-manager: pkg/kvcache/kvblock (two key spaces)
 */

/** A run of 64-bit local block keys, `[hi0, lo0, hi1, lo1, …]` (length = 2 × blocks). */
export type LocalKeys = Uint32Array;

/** What namespaces the key space: requests of another model, LoRA or salt never share keys. */
export interface KeyNamespace {
  readonly model?: string;
  readonly lora?: string;
  readonly cacheSalt?: string;
}

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const SEED_A = 0x9747b28c;
const SEED_B = 0x85ebca77;

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
 * Hashes one block: `(parentHi, parentLo)` chained with `tokens[start..end)` and an optional
 * 32-bit digest of the block's extra keys, written as `out[2*outBlock] = hi`,
 * `out[2*outBlock + 1] = lo`.
 *
 * @param parentHi - high 32 bits of the parent key (the namespace root for the first block).
 * @param parentLo - low 32 bits of the parent key.
 * @param tokens - token ids (integers; only the low 32 bits are used).
 * @param start - first token index of the block.
 * @param end - one past the last token index.
 * @param extra - digest of extra keys (see {@link hashExtraKey}); 0 = none.
 * @param out - destination key run.
 * @param outBlock - block position in `out`.
 */
export function hashBlock(
  parentHi: number,
  parentLo: number,
  tokens: ArrayLike<number>,
  start: number,
  end: number,
  extra: number,
  out: LocalKeys,
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
 * A 32-bit digest of a string (UTF-16 code units) or any JSON-able value, for extra keys
 * (multimodal hashes, cache salt). Never returns 0 (0 means "no extra key").
 *
 * @param value - string, number, bigint, or a JSON-able value.
 * @returns a non-zero unsigned 32-bit integer.
 */
export function hashExtraKey(value: unknown): number {
  const s =
    typeof value === 'string'
      ? value
      : JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value);
  let h = SEED_A;
  for (let i = 0; i < s.length; i++) h = absorb(h, s.charCodeAt(i));
  h = fmix(h ^ s.length) >>> 0;
  return h === 0 ? 1 : h;
}

/**
 * The root key of a namespace: the parent of every first block. The empty namespace has a fixed
 * root too (not 0), so it differs from any namespace with a model, LoRA or salt.
 *
 * @param ns - model, LoRA and cache salt; all optional.
 * @returns `[hi, lo]` as a 2-element `Uint32Array`.
 */
export function namespaceRoot(ns: KeyNamespace = {}): LocalKeys {
  const s = `${ns.model ?? ''}\u0000${ns.lora ?? ''}\u0000${ns.cacheSalt ?? ''}`;
  const codes = new Uint32Array(s.length);
  for (let i = 0; i < s.length; i++) codes[i] = s.charCodeAt(i);
  const out = new Uint32Array(2);
  hashBlock(0x6b766d67, 0x726f6f74, codes, 0, codes.length, 0, out, 0);
  return out;
}

/**
 * Local keys of every full block of a token sequence, chained from the namespace root.
 * A trailing partial block gets no key (engines only cache full blocks).
 *
 * @param tokens - prompt token ids.
 * @param blockSize - tokens per block (≥ 1).
 * @param root - namespace root from {@link namespaceRoot}. @default namespaceRoot({})
 * @param extraKeys - optional per-block extra keys (index = block); null entries mean none.
 * @returns `floor(tokens.length / blockSize)` keys.
 */
export function localKeysFromTokens(
  tokens: ArrayLike<number>,
  blockSize: number,
  root: LocalKeys = EMPTY_ROOT,
  extraKeys?: readonly unknown[] | null,
): LocalKeys {
  const n = Math.floor(tokens.length / blockSize);
  const out = new Uint32Array(2 * n);
  let ph = root[0] as number;
  let pl = root[1] as number;
  for (let b = 0; b < n; b++) {
    const x = extraKeys?.[b];
    hashBlock(ph, pl, tokens, b * blockSize, (b + 1) * blockSize, x == null ? 0 : hashExtraKey(x), out, b);
    ph = out[2 * b] as number;
    pl = out[2 * b + 1] as number;
  }
  return out;
}

/**
 * Local keys for trace block ids (one u32 per block, e.g. Mooncake `hash_ids`, which already
 * identify the whole prefix): the identity mapping `hi = 0, lo = id`. The same mapping is used
 * for engine hashes in the index's `identity` mode, so a simulator that publishes
 * `BigInt(id)` as the engine hash lands on the same keys.
 *
 * @param ids - block ids, unsigned 32-bit integers.
 */
export function localKeysFromBlockIds(ids: ArrayLike<number>): LocalKeys {
  const out = new Uint32Array(2 * ids.length);
  for (let i = 0; i < ids.length; i++) out[2 * i + 1] = (ids[i] as number) >>> 0;
  return out;
}

/** The namespace root of the empty namespace. */
const EMPTY_ROOT: LocalKeys = namespaceRoot({});
