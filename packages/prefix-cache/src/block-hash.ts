import { requirePositiveInt } from '@kvmgr/core';
import { hashNamespace, hashOut, hashPage, toBigHash } from './hash64.js';
import { requireU32Keys } from './validate-keys.js';

/**
 * The chained 64-bit block hash that {@link RadixPrefixCache} and {@link BlockHashIndex} put in
 * their `BlockStored` / `BlockRemoved` events: `hash(parent, keys of the block)`, where the
 * parent of the first block is the namespace seed. Use it to compute the local keys of a request
 * (as llm-d and Dynamo do) without holding a cache.
 *
 * @param keys - u32 keys of the prompt.
 * @param blockSize - keys per block; a trailing partial block is not hashed.
 * @param namespace - tenant / LoRA / cache salt. @default ''
 * @returns one u64 hash per full block.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when a key is not a u32 or `blockSize` is not a positive integer.
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_utils.py (hash_block_tokens)
 */
export function blockHash64(keys: ArrayLike<number>, blockSize: number, namespace = ''): bigint[] {
  requireU32Keys('keys', keys);
  requirePositiveInt('blockSize', blockSize);
  hashNamespace(namespace);
  let hi = hashOut[0] as number;
  let lo = hashOut[1] as number;
  const out: bigint[] = [];
  for (let pos = 0; pos + blockSize <= keys.length; pos += blockSize) {
    hashPage(hi, lo, keys, pos, blockSize);
    hi = hashOut[0] as number;
    lo = hashOut[1] as number;
    out.push(toBigHash(hi, lo));
  }
  return out;
}
