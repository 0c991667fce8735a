/**
 * SGLang's chained block hash, opt-in: `sha256(prior_digest ‖ token_0 ‖ … ‖ token_n)` with each
 * token id as 4 bytes little-endian (`get_hash_str`), and the event hash = the digest's FIRST 8
 * bytes read as an int64 (`hash_str_to_int64`); as a u64 that is the same bits.
 *
 * @see sgl-project/sglang:python/sglang/srt/mem_cache/hicache_storage.py (get_hash_str, hash_str_to_int64)
 */
import { createHash } from 'node:crypto';
import { requirePositiveInt } from '@kvmgr/core';

/**
 * One page's hash.
 *
 * @param prior - the previous page's 32-byte digest, or null at the sequence start.
 * @param tokenIds - the page's token ids (unsigned 32-bit).
 * @returns 32 bytes (SGLang keeps them as a hex string).
 */
export function sglangBlockHash(prior: Uint8Array | null, tokenIds: ArrayLike<number>): Uint8Array {
  const h = createHash('sha256');
  if (prior !== null && prior.length > 0) h.update(prior);
  const buf = Buffer.allocUnsafe(4 * tokenIds.length);
  for (let i = 0; i < tokenIds.length; i++) buf.writeUInt32LE((tokenIds[i] as number) >>> 0, 4 * i);
  return new Uint8Array(h.update(buf).digest());
}

/** The u64 of an SGLang event hash: the digest's first 8 bytes, big-endian (int64 bits as u64). */
export function sglangEventHash(digest: Uint8Array): bigint {
  let h = 0n;
  for (let i = 0; i < 8 && i < digest.length; i++) h = (h << 8n) | BigInt(digest[i] as number);
  return h;
}

/**
 * The chained hashes of every full page of a sequence.
 *
 * @param tokenIds - token ids.
 * @param pageSize - tokens per page (≥ 1); a trailing partial page gets no hash.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad page size.
 */
export function sglangBlockHashes(tokenIds: ArrayLike<number>, pageSize: number): Uint8Array[] {
  requirePositiveInt('pageSize', pageSize);
  const out: Uint8Array[] = [];
  let prior: Uint8Array | null = null;
  for (let b = 0; (b + 1) * pageSize <= tokenIds.length; b++) {
    prior = sglangBlockHash(prior, Array.prototype.slice.call(tokenIds, b * pageSize, (b + 1) * pageSize) as number[]);
    out.push(prior);
  }
  return out;
}
