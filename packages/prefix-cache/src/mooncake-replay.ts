import { KvmgrError } from '@kvmgr/core';
import { MOONCAKE_BLOCK_TOKENS } from './mooncake.js';
import { RadixPrefixCache } from './radix-prefix-cache.js';

/** One Mooncake trace record (the fields the replay reads). */
export interface MooncakeRecord {
  /** Arrival time, ms. */
  readonly timestamp: number;
  /** Prompt tokens. */
  readonly input_length: number;
  /** Ids of the prompt's 512-token blocks. */
  readonly hash_ids: readonly number[];
}

/** Options of {@link replayMooncakePrefixHits}. */
export interface MooncakeReplayOptions {
  /** Cache capacity in 512-token blocks; `Infinity` = unlimited. @default Infinity */
  readonly capacityBlocks?: number;
}

/** Hit ratios of a replay. */
export interface MooncakeReplayResult {
  readonly requests: number;
  readonly promptTokens: number;
  readonly hitTokens: number;
  readonly promptBlocks: number;
  readonly hitBlocks: number;
  /** hitTokens / promptTokens. */
  readonly tokenHitRatio: number;
  /** hitBlocks / promptBlocks. */
  readonly blockHitRatio: number;
  readonly evictedBlocks: number;
}

/**
 * Replays Mooncake records in timestamp order through a {@link RadixPrefixCache} with
 * `pageSize` 1 over the trace's `hash_ids` (one key per 512-token block): at arrival the hit is
 * the number of leading cached blocks (tokens: 512 per full block, the last block partial by
 * `input_length`); then the whole prompt is inserted, every block touched, evicting LRU pages
 * (leaf tails) first until it fits when a capacity is set.
 *
 * @param records - trace records (any order; sorted stably by `timestamp`).
 * @param options - `capacityBlocks` (@default Infinity).
 * @returns token and block hit ratios.
 * @throws KvmgrError `KVMGR_BAD_TRACE` when a record is malformed; `KVMGR_INVALID_ARGUMENT` when
 *   a prompt is longer than the capacity.
 */
export function replayMooncakePrefixHits(records: readonly MooncakeRecord[], options: MooncakeReplayOptions = {}): MooncakeReplayResult {
  const capacity = options.capacityBlocks ?? Number.POSITIVE_INFINITY;
  const order = records.map((_, i) => i).sort((a, b) => (records[a] as MooncakeRecord).timestamp - (records[b] as MooncakeRecord).timestamp || a - b);
  const cache = new RadixPrefixCache({ pageSize: 1, initialNodes: 4096 });
  let promptTokens = 0;
  let hitTokens = 0;
  let promptBlocks = 0;
  let hitBlocks = 0;
  let evicted = 0;
  let nextBlock = 0;
  for (const idx of order) {
    const r = records[idx] as MooncakeRecord;
    const n = r.hash_ids.length;
    if (n === 0 || r.input_length > n * MOONCAKE_BLOCK_TOKENS || r.input_length <= (n - 1) * MOONCAKE_BLOCK_TOKENS) {
      throw new KvmgrError('KVMGR_BAD_TRACE', `record ${idx}: input_length ${r.input_length} does not fit ${n} hash_ids`);
    }
    if (n > capacity) {
      throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `record ${idx}: ${n} blocks exceed the capacity of ${capacity}`);
    }
    const keys = Uint32Array.from(r.hash_ids);
    const m = cache.match(keys, { nowUs: r.timestamp * 1000 });
    const hit = m.matchedLength;
    hitBlocks += hit;
    promptBlocks += n;
    hitTokens += hit === n ? r.input_length : hit * MOONCAKE_BLOCK_TOKENS;
    promptTokens += r.input_length;
    const need = cache.cachedPages + (n - hit) - capacity;
    if (need > 0) {
      cache.lock(m.node);
      evicted += cache.evict(need).blocks.length;
      cache.unlock(m.node);
    }
    const blocks = new Uint32Array(n);
    for (let i = 0; i < n; i++) blocks[i] = i < hit ? (m.blocks[i] as number) : nextBlock++ >>> 0;
    cache.insert(keys, blocks, { nowUs: r.timestamp * 1000 });
  }
  return {
    requests: order.length,
    promptTokens,
    hitTokens,
    promptBlocks,
    hitBlocks,
    tokenHitRatio: promptTokens === 0 ? 0 : hitTokens / promptTokens,
    blockHitRatio: promptBlocks === 0 ? 0 : hitBlocks / promptBlocks,
    evictedBlocks: evicted,
  };
}
