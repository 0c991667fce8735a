/**
 * The shape check of KV events at the index's ingestion boundary. Events come from the wire
 * (msgpack decoded by an adapter) or from JS callers, so their types are not trusted: an event
 * is checked whole before any of it is applied, and a bad one is counted and dropped.
 * Fields this index does not read (and unknown fields added by newer engines or a newer
 * `@kvmgr/core`, e.g. `kvCacheSpecKind`) are ignored.
 */

const TWO_64 = 1n << 64n;
const MIN_I64 = -(1n << 63n);

/** Tier code of a `medium` (0 gpu, 1 cpu, 2 disk); -1 when unknown or not a string. */
export function tierCodeOfMedium(medium: unknown): number {
  if (medium == null) return 0;
  if (typeof medium !== 'string') return -1;
  const m = medium.toUpperCase();
  if (m === 'GPU' || m === 'CUDA' || m === 'HBM') return 0;
  if (m === 'CPU' || m === 'CPU_PINNED' || m === 'DRAM') return 1;
  if (m === 'DISK' || m === 'SSD' || m === 'NVME') return 2;
  return -1;
}

function isList(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

/** A u64 engine hash (an i64 is accepted too: the same 64 bits, as msgpack may decode it). */
function isHash(h: unknown): h is bigint {
  return typeof h === 'bigint' && h >= MIN_I64 && h < TWO_64;
}

function hashList(v: unknown): boolean {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (!isHash(v[i])) return false;
  return true;
}

/**
 * Why `event` cannot be applied, or undefined when its shape is good.
 * @param event - anything received as a KV event.
 * @param needTokens - the index keys blocks by their token ids (`hash-tokens`): `tokenIds` and
 *   `blockSize` are then read and must be u32 token ids, `blockSize` per block.
 */
export function kvEventProblem(event: unknown, needTokens: boolean): string | undefined {
  if (event === null || typeof event !== 'object') return 'not an object';
  const e = event as Record<string, unknown>;
  const type = e.type;
  if (type !== 'BlockStored' && type !== 'BlockRemoved' && type !== 'AllBlocksCleared') return 'unknown type';
  if (tierCodeOfMedium(e.medium) < 0) return 'unknown medium';
  if (type === 'AllBlocksCleared') return undefined;
  if (!hashList(e.blockHashes)) return 'blockHashes must be an array of u64 bigints';
  if (type === 'BlockRemoved') return undefined;
  if (e.parentBlockHash != null && !isHash(e.parentBlockHash)) return 'parentBlockHash must be a u64 bigint or null';
  if (e.loraName != null && typeof e.loraName !== 'string') return 'loraName must be a string or null';
  if (e.loraId != null && (typeof e.loraId !== 'number' || !Number.isFinite(e.loraId))) return 'loraId must be a number or null';
  if (e.extraKeys != null && !Array.isArray(e.extraKeys)) return 'extraKeys must be an array or null';
  if (!needTokens) return undefined;
  const bs = e.blockSize;
  if (typeof bs !== 'number' || !Number.isSafeInteger(bs) || bs < 1) return 'blockSize must be a positive integer';
  const tokens = e.tokenIds;
  if (!isList(tokens) || tokens.length !== (e.blockHashes as unknown[]).length * bs) return 'tokenIds must hold blockSize token ids per block';
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 0xffffffff) return 'tokenIds must be u32 integers';
  }
  return undefined;
}
