/**
 * vLLM's `sha256_cbor` block hash, opt-in: `sha256(cbor_canonical((parent_hash, tuple(token_ids),
 * extra_keys)))`, chained from `NONE_HASH = sha256_cbor(PYTHONHASHSEED)` (a string), with the
 * event carrying the digest's last 8 bytes as a u64. Only reproducible when the engine runs with
 * `--prefix-caching-hash-algo sha256_cbor` and a pinned `PYTHONHASHSEED`; vLLM's default
 * (`sha256` over pickle, random seed) is not, so kvmgr keeps two key spaces by default
 * ({@link EngineKeyMap}).
 *
 * @see vllm-project/vllm:vllm/utils/hashing.py (sha256_cbor)
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_utils.py (init_none_hash, hash_block_tokens, maybe_convert_block_hash)
 */
import { createHash } from 'node:crypto';
import { invalidArgument, requirePositiveInt } from '@kvmgr/core';
import { encodeCanonicalCbor } from './cbor.js';

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/**
 * vLLM's `NONE_HASH` (the parent of every first block) for `sha256_cbor`: the hash of the
 * `PYTHONHASHSEED` string.
 *
 * @param pythonHashSeed - the engine's `PYTHONHASHSEED` value, e.g. `"0"`.
 * @returns 32 bytes.
 */
export function vllmNoneHash(pythonHashSeed: string): Uint8Array {
  if (typeof pythonHashSeed !== 'string') throw invalidArgument('pythonHashSeed', pythonHashSeed, 'a string');
  return sha256(encodeCanonicalCbor(pythonHashSeed));
}

/**
 * One block's `sha256_cbor` hash (vLLM `hash_block_tokens`).
 *
 * @param parent - the parent block's 32-byte hash; null (or empty) for a first block, which then
 *   chains from `noneHash`.
 * @param tokenIds - the block's token ids.
 * @param extraKeys - the block's extra keys tuple (LoRA name, `[mm_hash, offset]`, cache salt), or null.
 * @param noneHash - from {@link vllmNoneHash}.
 * @returns 32 bytes.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when an extra key is not CBOR-encodable here (floats, maps).
 */
export function vllmSha256CborBlockHash(parent: Uint8Array | null, tokenIds: ArrayLike<number>, extraKeys: readonly unknown[] | null, noneHash: Uint8Array): Uint8Array {
  const p = parent === null || parent.length === 0 ? noneHash : parent;
  return sha256(encodeCanonicalCbor([p, Array.from(tokenIds), extraKeys]));
}

/** The u64 a vLLM event carries for a block hash: its last 8 bytes, big-endian. */
export function vllmEventHash(digest: Uint8Array): bigint {
  let h = 0n;
  for (let i = Math.max(0, digest.length - 8); i < digest.length; i++) h = (h << 8n) | BigInt(digest[i] as number);
  return h;
}

/**
 * The `sha256_cbor` hashes of every full block of a sequence, as the engine computes them.
 *
 * @param tokenIds - the sequence's token ids.
 * @param blockSize - tokens per block (≥ 1). A trailing partial block gets no hash.
 * @param options - `pythonHashSeed` (required) and per-block `extraKeys` (null entries = none).
 * @returns one 32-byte digest per full block; map with {@link vllmEventHash} to compare with events.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad block size or extra key.
 */
export function vllmSha256CborBlockHashes(
  tokenIds: ArrayLike<number>,
  blockSize: number,
  options: { readonly pythonHashSeed: string; readonly extraKeys?: readonly (readonly unknown[] | null)[] },
): Uint8Array[] {
  requirePositiveInt('blockSize', blockSize);
  const none = vllmNoneHash(options.pythonHashSeed);
  const out: Uint8Array[] = [];
  let parent: Uint8Array | null = null;
  for (let b = 0; (b + 1) * blockSize <= tokenIds.length; b++) {
    const block = Array.prototype.slice.call(tokenIds, b * blockSize, (b + 1) * blockSize) as number[];
    parent = vllmSha256CborBlockHash(parent, block, options.extraKeys?.[b] ?? null, none);
    out.push(parent);
  }
  return out;
}
