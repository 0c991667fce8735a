/**
 * @kvmgr/prefix-cache — a page-aligned radix-tree prefix cache (namespaces, locks, pins,
 * pluggable eviction, KV events), the engine-style block-hash index as a baseline, and the
 * Mooncake trace key mapping.
 */
export { RadixPrefixCache } from './radix-prefix-cache.js';
export type { RadixPrefixCacheOptions, PrefixInsertOptions } from './radix-prefix-cache.js';
export { BlockHashIndex } from './block-hash-index.js';
export type { BlockHashIndexOptions } from './block-hash-index.js';
export { LruPolicy } from './lru-policy.js';
export { blockHash64 } from './block-hash.js';
export { mooncakeEngineBlockKeys, MOONCAKE_BLOCK_TOKENS } from './mooncake.js';
export type { MooncakeKeyOptions, MooncakeEngineBlocks } from './mooncake.js';
export { replayMooncakePrefixHits } from './mooncake-replay.js';
export type { MooncakeRecord, MooncakeReplayOptions, MooncakeReplayResult } from './mooncake-replay.js';
