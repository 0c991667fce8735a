/**
 * @kvmgr/engine — the kvmgr engine core: {@link KvCacheManager} (vLLM v1's KV cache manager over
 * `@kvmgr/kv-pool`, `@kvmgr/prefix-cache` and `@kvmgr/eviction`) and {@link EngineCore} (one
 * continuous-batching step around the `@kvmgr/scheduler-ir` pipeline). Clock-free, no I/O: the
 * simulator and the engine server drive the same core.
 */
export { KvCacheManager, traceBlockToken } from './kv-cache-manager.js';
export type { ComputedBlocks, KvCacheManagerOptions, KvCacheRequest, KvCacheStats, KvCpuTierOptions, KvPrefetchStats, PrefixCacheKind } from './kv-cache-manager.js';
export { BlockKeyChain } from './block-key-chain.js';
export { BLOCK_KEYS_CLEARED, BLOCK_KEY_REMOVED, BLOCK_KEY_STORED, BlockKeyLog } from './block-key-log.js';
export type { BlockKeyEventKind } from './block-key-log.js';
export { EngineCore } from './engine-core.js';
export type { EngineCoreOptions, SwapSpaceOptions } from './engine-core.js';
export type * from './engine-types.js';
