/**
 * Local request keys, under the router's historical names: the chained 64-bit block key of
 * `@kvmgr/core`'s block-key module (one key function for every package, issue #16). Keys are
 * two unsigned 32-bit lanes (`hi`, `lo`), a run of keys a `Uint32Array` laid out
 * `[hi0, lo0, hi1, lo1, …]`; engine keys are mapped to them from `BlockStored` events (which
 * carry token ids), as llm-d and Dynamo do.
 *
 * @see packages/core/src/block-key.ts (the hash, "kvmgr-h64")
 * @see llm-d/llm-d-kv-cache-manager: pkg/kvcache/kvblock (two key spaces)
 */
import { type BlockKeyNamespace, type BlockKeys, blockKeyExtraDigest, blockKeyRoot, blockKeysFromTokens, chainBlockKey } from '@kvmgr/core';

/** A run of 64-bit local block keys, `[hi0, lo0, hi1, lo1, …]` (length = 2 × blocks). */
export type LocalKeys = BlockKeys;

/** What namespaces the key space: requests of another model, LoRA or salt never share keys. */
export type KeyNamespace = BlockKeyNamespace;

/** Hashes one block chained to its parent: core's {@link chainBlockKey}. */
export const hashBlock = chainBlockKey;

/** A non-zero 32-bit digest of a block's extra keys: core's {@link blockKeyExtraDigest}. */
export const hashExtraKey = blockKeyExtraDigest;

/** The root key of a namespace (the parent of every first block): core's {@link blockKeyRoot}. */
export const namespaceRoot: (ns?: KeyNamespace) => LocalKeys = blockKeyRoot;

/**
 * Local keys of every full block of a token sequence: core's {@link blockKeysFromTokens}.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a block size that is not a positive integer.
 */
export const localKeysFromTokens = blockKeysFromTokens;

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
