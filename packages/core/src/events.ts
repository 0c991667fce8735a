/**
 * KV cache events, as vLLM publishes them (ZMQ PUB, msgpack). Pure types; wire encoding lives in
 * `@kvmgr/adapter-vllm`.
 *
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 */

/** Blocks were stored in a medium (GPU by default). */
export interface BlockStored {
  readonly type: 'BlockStored';
  /** Engine block hashes (u64), one per block, in prefix order. */
  readonly blockHashes: readonly bigint[];
  /** Hash of the block before the first one; null at the start of a sequence. */
  readonly parentBlockHash: bigint | null;
  /** Token ids of all the blocks, concatenated (blockSize per block). */
  readonly tokenIds: readonly number[];
  /** Tokens per block. */
  readonly blockSize: number;
  readonly loraId?: number | null;
  /** Where the blocks live: `GPU`, `CPU`, `DISK`, …; null/absent = GPU. */
  readonly medium?: string | null;
  readonly loraName?: string | null;
  /** Extra hash inputs per block (multimodal hashes, cache salt). */
  readonly extraKeys?: readonly unknown[] | null;
  /** KV cache group (hybrid models). */
  readonly groupIdx?: number | null;
  /**
   * Attention kind of the group's KV cache spec (`full_attention`, `sliding_window`, …), sent by
   * vLLM ≥ 0.26 as `kv_cache_spec_kind`; absent from older revisions.
   */
  readonly kvCacheSpecKind?: string | null;
}

/** Blocks were removed from a medium. */
export interface BlockRemoved {
  readonly type: 'BlockRemoved';
  readonly blockHashes: readonly bigint[];
  readonly medium?: string | null;
  readonly groupIdx?: number | null;
  /** Attention kind of the group's KV cache spec (`kv_cache_spec_kind`), when sent. */
  readonly kvCacheSpecKind?: string | null;
}

/** The whole cache was cleared (reset, or an instance left). */
export interface AllBlocksCleared {
  readonly type: 'AllBlocksCleared';
  readonly medium?: string | null;
}

/** One KV event. */
export type KvEvent = BlockStored | BlockRemoved | AllBlocksCleared;

/** The payload of one published message: `[ts, events[], dataParallelRank?]`. */
export interface KvEventBatch {
  /** Seconds since the epoch (float). */
  readonly ts: number;
  readonly events: readonly KvEvent[];
  readonly dataParallelRank?: number | null;
}
