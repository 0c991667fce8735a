/**
 * Encoding of typed KV events into vLLM's wire (msgpack), for servers that publish like vLLM.
 *
 * Current vLLM sends each event as a map with a `"type"` key: fields without defaults are always
 * present (null allowed), defaulted ones (`extra_keys`, `group_idx`, `kv_cache_spec_kind`) only
 * when set. Older vLLM sends tagged arrays with trailing nulls trimmed. Hashes go out as u64
 * integers (smallest msgpack int that holds them, as Python's msgpack does).
 *
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 */
import type { KvEvent, KvEventBatch } from '@kvmgr/core';
import { invalidArgument } from '@kvmgr/core';
import { Encoder } from '@msgpack/msgpack';

/** How events are laid out: `map` (current vLLM, `{"type": …}`) or `array` (legacy tagged arrays). */
export type KvEventEncoding = 'map' | 'array';

/** Options of {@link KvEventEncoder}. */
export interface KvEventEncoderOptions {
  /** Event layout. @default 'map' */
  readonly encoding?: KvEventEncoding;
  /** Batch layout: `array` `[ts, events, dp_rank?]` (vLLM's) or `map` `{ts, events, data_parallel_rank}`. @default 'array' */
  readonly batchEncoding?: KvEventEncoding;
}

const U32_LIMIT = 0x100000000n;

function wireHash(h: bigint, where: string): number | bigint {
  if (typeof h !== 'bigint' || h < 0n || h > 0xffffffffffffffffn) throw invalidArgument(where, h, 'a bigint in [0, 2^64)');
  return h < U32_LIMIT ? Number(h) : h;
}

function wireHashes(hs: readonly bigint[], where: string): (number | bigint)[] {
  const out = new Array<number | bigint>(hs.length);
  for (let i = 0; i < hs.length; i++) out[i] = wireHash(hs[i] as bigint, `${where}[${i}]`);
  return out;
}

function trimmed(a: unknown[], minLength: number): unknown[] {
  let n = a.length;
  while (n > minLength && a[n - 1] == null) n--;
  a.length = n;
  return a;
}

function eventToWire(e: KvEvent, encoding: KvEventEncoding, i: number): unknown {
  const w = `events[${i}]`;
  switch (e.type) {
    case 'BlockStored': {
      const hashes = wireHashes(e.blockHashes, `${w}.blockHashes`);
      const parent = e.parentBlockHash == null ? null : wireHash(e.parentBlockHash, `${w}.parentBlockHash`);
      if (encoding === 'array') {
        return trimmed(
          ['BlockStored', hashes, parent, e.tokenIds, e.blockSize, e.loraId ?? null, e.medium ?? null, e.loraName ?? null, e.extraKeys ?? null, e.groupIdx ?? null, e.kvCacheSpecKind ?? null],
          6,
        );
      }
      const m: Record<string, unknown> = {
        type: 'BlockStored',
        block_hashes: hashes,
        parent_block_hash: parent,
        token_ids: e.tokenIds,
        block_size: e.blockSize,
        lora_id: e.loraId ?? null,
        medium: e.medium ?? null,
        lora_name: e.loraName ?? null,
      };
      if (e.extraKeys != null) m.extra_keys = e.extraKeys;
      if (e.groupIdx != null) m.group_idx = e.groupIdx;
      if (e.kvCacheSpecKind != null) m.kv_cache_spec_kind = e.kvCacheSpecKind;
      return m;
    }
    case 'BlockRemoved': {
      const hashes = wireHashes(e.blockHashes, `${w}.blockHashes`);
      if (encoding === 'array') return trimmed(['BlockRemoved', hashes, e.medium ?? null, e.groupIdx ?? null, e.kvCacheSpecKind ?? null], 2);
      const m: Record<string, unknown> = { type: 'BlockRemoved', block_hashes: hashes, medium: e.medium ?? null };
      if (e.groupIdx != null) m.group_idx = e.groupIdx;
      if (e.kvCacheSpecKind != null) m.kv_cache_spec_kind = e.kvCacheSpecKind;
      return m;
    }
    case 'AllBlocksCleared':
      if (encoding === 'array') return trimmed(['AllBlocksCleared', e.medium ?? null], 1);
      return e.medium == null ? { type: 'AllBlocksCleared' } : { type: 'AllBlocksCleared', medium: e.medium };
    default:
      throw invalidArgument(`${w}.type`, (e as { type?: unknown }).type, '"BlockStored", "BlockRemoved" or "AllBlocksCleared"');
  }
}

/**
 * Encodes batches as vLLM does. Holds one reusable msgpack `Encoder`.
 *
 * @example
 * ```ts
 * const enc = new KvEventEncoder({ encoding: 'array' }); // legacy tagged arrays
 * const payload = enc.encodeBatch({ ts: Date.now() / 1000, events: [{ type: 'AllBlocksCleared' }] });
 * ```
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 */
export class KvEventEncoder {
  /** Event layout in use. */
  readonly encoding: KvEventEncoding;
  /** Batch layout in use. */
  readonly batchEncoding: KvEventEncoding;
  private readonly encoder = new Encoder({ useBigInt64: true });

  /**
   * @param options - layouts (see {@link KvEventEncoderOptions}).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on an unknown layout.
   */
  constructor(options: KvEventEncoderOptions = {}) {
    this.encoding = options.encoding ?? 'map';
    this.batchEncoding = options.batchEncoding ?? 'array';
    for (const [k, v] of [['encoding', this.encoding], ['batchEncoding', this.batchEncoding]] as const) {
      if (v !== 'map' && v !== 'array') throw invalidArgument(k, v, '"map" or "array"');
    }
  }

  /**
   * Encodes one batch to a msgpack payload.
   *
   * @param batch - `ts` in seconds (float), events, optional data-parallel rank.
   * @returns a fresh byte array.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when a hash is not a bigint in `[0, 2^64)`, `ts`
   *   is not finite, or an event type is unknown.
   */
  encodeBatch(batch: KvEventBatch): Uint8Array {
    if (typeof batch.ts !== 'number' || !Number.isFinite(batch.ts)) throw invalidArgument('batch.ts', batch.ts, 'a finite number of seconds');
    const events = batch.events.map((e, i) => eventToWire(e, this.encoding, i));
    const dp = batch.dataParallelRank ?? null;
    const wire =
      this.batchEncoding === 'map'
        ? { ts: batch.ts, events, data_parallel_rank: dp }
        : dp === null
          ? [batch.ts, events]
          : [batch.ts, events, dp];
    return this.encoder.encode(wire);
  }
}
