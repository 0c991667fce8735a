/**
 * KV bookkeeping of one simulated engine with the prefix index of `@kvmgr/prefix-cache`: a
 * `RadixPrefixCache` with `pageSize` 1 over the engine-block keys (one key per full block, one
 * block handle per page) instead of {@link KvManager}'s block-hash map. SGLang-style:
 *
 * - match = `cache.match(keys)` (the GPU blocks of the leading cached path); a request that uses
 *   cached blocks `lock`s the deepest node of its path and `unlock`s it on release;
 * - the full blocks a request computes are `insert`ed as a whole path (keys `[0, to)`), and the
 *   request then locks the new end node; a block given for a page that is already cached under
 *   another block (a concurrent duplicate) is freed back to the pool and the request uses the
 *   cached block instead;
 * - under pressure `cache.evict(n)` frees exactly the missing blocks, leaf first, in the order
 *   of the `@kvmgr/eviction` policy given as the cache's `policy` (over node ids); the freed
 *   blocks return to the `BlockPool`.
 *
 * Accounting (as {@link KvManager}): the pool holds one reference per block that is private to a
 * request or cached; cached blocks on no locked path (`cache.evictablePages`) count as free.
 * The optional CPU tier keeps evicted keys (an index-based LRU) and a hit there reloads into new
 * GPU blocks, inserted behind the GPU match. A key → block mirror of the tree answers
 * {@link RadixKvManager.hasCached} (planner hints, re-prefill accounting, router events); every
 * decision (match, insert, lock, eviction) is the radix cache's.
 *
 * Keys must be integers in [0, 2^32) (the radix cache's keys are u32; Mooncake's mapping and the
 * workload generator produce such keys). Keys are prefix-unique (equal key ⇔ equal prefix up to
 * that block, see `engineBlockKeys`), so leaf-first eviction keeps the cached key set prefix
 * closed and a match equals the hash map's "leading cached keys" when nothing was evicted.
 *
 * @see sgl-project/sglang:python/sglang/srt/mem_cache/radix_cache.py (cache_finished_req,
 *   cache_unfinished_req, evict)
 */
import type { BlockId, EvictionPolicy } from '@kvmgr/core';
import { KvmgrError } from '@kvmgr/core';
import { RadixPrefixCache } from '@kvmgr/prefix-cache';
import type { KvBackend } from './kv-backend.js';
import type { KvManagerOptions } from './kv-manager-base.js';
import { KvManagerBase } from './kv-manager-base.js';
import { KeyTable } from './key-table.js';

/** Options of {@link RadixKvManager} (the same as {@link KvManagerOptions}; `policy` orders radix nodes). */
export type RadixKvManagerOptions = KvManagerOptions;

const U32_LIMIT = 4294967296;

/** KV bookkeeping of one instance on a `RadixPrefixCache` prefix index. */
export class RadixKvManager extends KvManagerBase implements KvBackend {
  readonly kind = 'kvmgr-radix';
  /** The eviction policy over radix node ids (owned by {@link cache}). */
  declare readonly policy: EvictionPolicy;
  /** The prefix index (`pageSize` 1; keys are engine-block keys, handles are block ids). */
  readonly cache: RadixPrefixCache;
  private readonly inTree: Uint8Array;
  private readonly keyIndex: KeyTable;
  /** Node each request (keyed by its block list) holds locked. */
  private readonly owners = new Map<BlockId[], number>();
  /** u32 copies of the requests' key arrays. */
  private readonly keys32 = new WeakMap<Float64Array, Uint32Array>();
  private privateBlocks = 0;
  private readonly matchOpts = { touch: false };
  private readonly accessOpts = { nowUs: 0 };

  /**
   * @param options - pool, policy (a fresh `@kvmgr/eviction` policy; the cache tracks node ids in
   *   it), block size, CPU tier (@default 0 blocks), host bandwidth (@default 64e9 B/s), transfer
   *   base latency (@default 50 µs).
   */
  constructor(options: RadixKvManagerOptions) {
    super(options);
    this.cache = new RadixPrefixCache({ pageSize: 1, policy: options.policy, initialNodes: Math.max(16, Math.min(this.numBlocks + 1, 1 << 16)) });
    this.inTree = new Uint8Array(this.numBlocks);
    this.keyIndex = new KeyTable(this.numBlocks);
  }

  /** Blocks allocatable now: free in the pool plus cached blocks on no locked path. */
  get freeBlocks(): number {
    return this.pool.numFreeBlocks + this.cache.evictablePages;
  }

  get evictableBlocks(): number {
    return this.cache.evictablePages;
  }

  /** Blocks used by at least one request (private blocks + cached blocks on locked paths). */
  get blocksInUse(): number {
    return this.numBlocks - this.pool.numFreeBlocks - this.cache.evictablePages;
  }

  get cachedBlocks(): number {
    return this.cache.cachedPages;
  }

  /** True when `key` is cached on the GPU (with prefix-unique keys: its whole path is). */
  hasCached(key: number): boolean {
    return this.keyIndex.has(key);
  }

  /**
   * The u32 view of a request's keys (converted once per key array).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when a key is not an integer in [0, 2^32).
   */
  private u32(keys: Float64Array): Uint32Array {
    let k = this.keys32.get(keys);
    if (k === undefined) {
      k = new Uint32Array(keys.length);
      for (let i = 0; i < keys.length; i++) {
        const v = keys[i] as number;
        if (!(v >= 0 && v < U32_LIMIT && Number.isInteger(v))) {
          throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `prefixIndex 'radix' needs block keys in [0, 2^32); keys[${i}] is ${v}`, {
            details: { field: `keys[${i}]`, value: v, expected: 'an integer in [0, 2^32)' },
          });
        }
        k[i] = v;
      }
      this.keys32.set(keys, k);
    }
    return k;
  }

  /** Cached prefix of `keys` (≤ `limit`): GPU blocks (`cache.match`, no access) in `out[0]`, CPU-tier continuation in `out[1]`. */
  matchPrefix(keys: Float64Array, limit: number, out: Int32Array): void {
    const n = Math.min(limit, keys.length);
    const g = n > 0 && this.cache.cachedPages > 0 ? this.cache.match(this.u32(keys).subarray(0, n), this.matchOpts).matchedLength : 0;
    let c = g;
    if (this.cpu.size > 0) while (c < n && this.cpu.has(keys[c] as number)) c++;
    out[0] = g;
    out[1] = c - g;
  }

  private setOwner(blocks: BlockId[], node: number): void {
    this.cache.lock(node);
    const old = this.owners.get(blocks);
    if (old !== undefined) this.cache.unlock(old);
    this.owners.set(blocks, node);
  }

  /**
   * Takes the first `n` cached GPU blocks of `keys` (appended to `out`, the request's block list)
   * and locks their path (an access at {@link nowUs}).
   * @throws KvmgrError `KVMGR_INVALID_STATE` when fewer than `n` are cached (check with {@link matchPrefix}).
   */
  acquireCached(keys: Float64Array, n: number, out: BlockId[]): void {
    if (n === 0) return;
    this.accessOpts.nowUs = this.nowUs;
    const m = this.cache.match(this.u32(keys).subarray(0, n), this.accessOpts);
    if (m.matchedLength !== n) throw new KvmgrError('KVMGR_INVALID_STATE', `acquireCached: ${n} blocks asked, ${m.matchedLength} cached`);
    for (const b of m.blocks) out.push(b);
    this.setOwner(out, m.node);
  }

  /**
   * Allocates `n` private blocks (appended to `out`), evicting `n − free` cached pages with
   * `cache.evict` when the pool is short. All or nothing.
   * @returns false (nothing changed) when even eviction cannot free enough.
   */
  allocate(n: number, out: BlockId[]): boolean {
    if (n === 0) return true;
    const free = this.pool.numFreeBlocks;
    if (n > free + this.cache.evictablePages) return false;
    if (free < n) this.evict(n - free);
    const blocks = this.pool.allocate(n);
    for (let i = 0; i < n; i++) out.push(blocks[i] as number);
    this.privateBlocks += n;
    return true;
  }

  private evict(n: number): void {
    const res = this.cache.evict(n);
    const freed = res.blocks;
    for (let i = 0; i < freed.length; i++) {
      const b = freed[i] as number;
      const key = this.blockKey[b] as number;
      this.keyIndex.delete(key);
      this.inTree[b] = 0;
      this.counters.evictedBlocks++;
      this.onEvict?.(key);
      this.offload(key);
    }
    if (freed.length > 0) this.pool.free(freed);
  }

  /**
   * Not supported by the radix index (a block is cached with its whole path): use
   * {@link commitPrefix}.
   * @throws KvmgrError `KVMGR_INVALID_STATE` always.
   */
  commit(_key: number, _block: BlockId): boolean {
    throw new KvmgrError('KVMGR_INVALID_STATE', "RadixKvManager caches whole prefixes: call commitPrefix(keys, to, blocks), not commit(key, block)");
  }

  /**
   * Inserts the path `keys[0, to)` with the request's blocks `blocks[0, to)` and moves the
   * request's lock to the end of that path. New pages are adopted by the cache (`onStore` per
   * key, in path order); a block given for a page already cached under another block is freed
   * back to the pool and replaced in `blocks` by the cached one.
   */
  commitPrefix(keys: Float64Array, to: number, blocks: BlockId[]): void {
    if (to <= 0) return;
    const ks = this.u32(keys).subarray(0, to);
    this.accessOpts.nowUs = this.nowUs;
    const res = this.cache.insert(ks, blocks, this.accessOpts);
    const adopted = res.adoptedBlocks;
    for (let i = 0, pos = res.existingLength; i < adopted.length; i++, pos++) {
      const b = adopted[i] as number;
      const key = keys[pos] as number;
      this.inTree[b] = 1;
      this.blockKey[b] = key;
      this.keyIndex.set(key, b);
      this.onStore?.(key);
    }
    this.privateBlocks -= adopted.length;
    if (res.duplicateBlocks.length > 0) {
      const cached = this.cache.match(ks, this.matchOpts).blocks;
      let k = 0;
      for (let i = 0; i < res.existingLength; i++) {
        const c = cached[i] as number;
        if (blocks[i] !== c) {
          this.scratch[k++] = blocks[i] as number;
          blocks[i] = c;
        }
      }
      this.privateBlocks -= k;
      this.pool.free(this.scratch.subarray(0, k));
    }
    this.setOwner(blocks, res.node);
  }

  /**
   * Reloads CPU-tier keys `[from, from + n)` into new GPU blocks (appended to `out`, which holds
   * the `from` acquired GPU blocks of the path) and inserts them behind the GPU match.
   * @returns the transfer time, µs, or -1 (nothing changed) when the GPU is short of blocks.
   */
  reload(keys: Float64Array, from: number, n: number, out: BlockId[]): number {
    if (out.length !== from) throw new KvmgrError('KVMGR_INVALID_STATE', `reload: the block list holds ${out.length} blocks, expected the ${from} matched ones`);
    if (!this.allocate(n, out)) return -1;
    for (let i = 0; i < n; i++) this.cpu.delete(keys[from + i] as number);
    this.commitPrefix(keys, from + n, out);
    return this.reloaded(n);
  }

  /** Releases a request's blocks: private ones return to the pool (last first), its path is unlocked. */
  release(blocks: BlockId[], _nowUs: number): void {
    let k = 0;
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i] as number;
      if (this.inTree[b] === 0) this.scratch[k++] = b;
    }
    if (k > 0) {
      this.privateBlocks -= k;
      this.pool.free(this.scratch.subarray(0, k));
    }
    const node = this.owners.get(blocks);
    if (node !== undefined) {
      this.owners.delete(blocks);
      this.cache.unlock(node);
    }
    blocks.length = 0;
  }

  /** Evicts every evictable cached block (no events, no offload) and clears the CPU tier; returns how many. */
  clearCache(): number {
    const res = this.cache.evict(this.cache.evictablePages);
    for (const b of res.blocks) {
      this.keyIndex.delete(this.blockKey[b] as number);
      this.inTree[b] = 0;
    }
    if (res.blocks.length > 0) this.pool.free(res.blocks);
    this.cpu.clear();
    return res.blocks.length;
  }

  /**
   * Checks the accounting: pool used blocks = private blocks + cached pages; the key mirror holds
   * the cached pages; the radix cache verifies. Returns the first violation, or undefined.
   */
  checkConservation(): string | undefined {
    const used = this.numBlocks - this.pool.numFreeBlocks;
    const cached = this.cache.cachedPages;
    if (used !== this.privateBlocks + cached) return `pool has ${used} used blocks, expected ${this.privateBlocks} private + ${cached} cached`;
    if (this.keyIndex.size !== cached) return `key index holds ${this.keyIndex.size} keys, cache ${cached} pages`;
    let tree = 0;
    for (let b = 0; b < this.numBlocks; b++) tree += this.inTree[b] as number;
    if (tree !== cached) return `${tree} blocks marked cached, cache holds ${cached}`;
    try {
      this.cache.verify();
    } catch (e) {
      return (e as Error).message;
    }
    return undefined;
  }
}
