/**
 * The prefix cache interface (implemented by `@kvmgr/prefix-cache`). Pure types.
 *
 * Keys are unsigned 32-bit ints: token ids with `pageSize` = block size, or one key per block
 * (page size 1) when only block hashes are known. A node handle is an integer id that stays
 * valid until the node is evicted, split away or the cache is cleared.
 */
import type { KvEvent } from './events.js';

/** Integer handle of a node in a prefix cache; `-1` = the root / no node. */
export type PrefixNodeHandle = number;

/** Options of {@link PrefixCache.match}. */
export interface PrefixMatchOptions {
  /** Tenant / LoRA / cache-salt namespace; entries are shared only inside it. @default '' */
  readonly namespace?: string;
  /** Whether the match counts as an access for eviction order and stats. @default true */
  readonly touch?: boolean;
  /** Time of the access, µs (for time-aware eviction policies). */
  readonly nowUs?: number;
}

/** Options of {@link PrefixCache.insert}. */
export interface PrefixCacheInsertOptions extends PrefixMatchOptions {
  /**
   * Resume the insert at a node the caller holds: the handle an earlier `match` or `insert` of
   * the same key sequence returned, kept alive since (e.g. locked), whose path from the root holds
   * exactly `keys[0, resumeLength)`. That prefix is then neither walked nor compared (nor are its
   * `blocks` read, so none of them is reported in `duplicateBlocks`); the result is otherwise a
   * full insert's (`existingLength` counts from key 0, the whole path is touched). An engine
   * caching the blocks a request fills while decoding inserts one block at a time after its
   * cached prefix: without this, each insert re-walks the whole prefix. An implementation may
   * ignore it and walk from the root (same cache state). @default none (walk from the root)
   */
  readonly resumeFrom?: PrefixNodeHandle;
  /**
   * Keys on the path root → `resumeFrom` (a multiple of `pageSize`); required with it.
   * @default 0
   */
  readonly resumeLength?: number;
}

/** Result of a match. */
export interface PrefixMatch {
  /** Number of leading keys found (a multiple of `pageSize`). */
  readonly matchedLength: number;
  /** Block handles along the matched path, one per matched page. */
  readonly blocks: readonly number[];
  /** Deepest matched node (lock it to protect the path); -1 when nothing matched. */
  readonly node: PrefixNodeHandle;
}

/** Result of an insert. */
export interface PrefixInsertResult {
  /** Leading keys that were already cached (their given blocks were not adopted). */
  readonly existingLength: number;
  /** Blocks the cache adopted (new pages). */
  readonly adoptedBlocks: readonly number[];
  /** Given blocks NOT adopted because the page was already cached (caller frees them). */
  readonly duplicateBlocks: readonly number[];
  /** Node at the end of the inserted path. */
  readonly node: PrefixNodeHandle;
}

/** What an eviction freed. */
export interface PrefixEvictResult {
  /** Blocks released by the cache (caller returns them to the pool). */
  readonly blocks: readonly number[];
  /** Keys (tokens or block keys) removed. */
  readonly evictedKeys: number;
}

/** Counters of a prefix cache. */
export interface PrefixCacheStats {
  readonly queries: number;
  readonly queryKeys: number;
  readonly hitKeys: number;
  readonly insertedKeys: number;
  readonly evictedKeys: number;
  readonly cachedKeys: number;
  readonly nodes: number;
  /** Bytes of metadata (typed arrays, maps) the cache holds, estimated. */
  readonly metadataBytes: number;
}

/** A radix-tree (or hash-chain) prefix cache keyed by u32 sequences. */
export interface PrefixCache {
  /** Keys per page (block); lengths are aligned to it. */
  readonly pageSize: number;
  match(keys: ArrayLike<number>, options?: PrefixMatchOptions): PrefixMatch;
  /**
   * Caches `keys` with one block per page. `blocks.length` must be ≥ ceil(keys.length / pageSize)
   * for the aligned part.
   */
  insert(keys: ArrayLike<number>, blocks: ArrayLike<number>, options?: PrefixCacheInsertOptions): PrefixInsertResult;
  /** Protects the path root→node from eviction (reference counted). */
  lock(node: PrefixNodeHandle): void;
  unlock(node: PrefixNodeHandle): void;
  /** Never evict the path root→node until unpinned. */
  pin(node: PrefixNodeHandle): void;
  unpin(node: PrefixNodeHandle): void;
  /** Evicts at least `numPages` pages (fewer if not enough are evictable), leaves first. */
  evict(numPages: number): PrefixEvictResult;
  /** Number of pages that could be evicted now (unlocked, unpinned). */
  readonly evictablePages: number;
  clear(): void;
  readonly stats: PrefixCacheStats;
  /** Receives KV events as the cache changes; set to undefined to stop. */
  onEvent?: ((event: KvEvent) => void) | undefined;
}
