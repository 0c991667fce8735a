import {
  type EvictionEntryInfo,
  type EvictionPolicy,
  HashTable64,
  type KvEvent,
  KvmgrError,
  type PrefixCache,
  type PrefixCacheStats,
  type PrefixEvictResult,
  type PrefixInsertResult,
  type PrefixMatch,
  type PrefixMatchOptions,
  type PrefixNodeHandle,
  invalidArgument,
  requireNonNegativeInt,
  requirePositiveInt,
} from '@kvmgr/core';
import { hashNamespace, hashOut, hashPage, toBigHash } from './hash64.js';
import { decodeHandle, encodeHandle, nextGeneration } from './handles.js';
import { LruPolicy } from './lru-policy.js';
import { PolicyTracker } from './policy-tracker.js';
import type { PrefixInsertOptions } from './radix-prefix-cache.js';
import { requireU32Blocks, requireU32Keys } from './validate-keys.js';

/** Options of {@link BlockHashIndex}. */
export interface BlockHashIndexOptions {
  /** Keys per block (the engine block size for token ids; 1 for block keys). @default 16 */
  readonly pageSize?: number;
  /** Eviction order over entry ids (one entry per block). @default new LruPolicy() */
  readonly policy?: EvictionPolicy;
  /** Initial entry capacity (grows by doubling). @default 1024 */
  readonly initialBlocks?: number;
}

/**
 * Engine-style prefix cache: a map from the chained 64-bit hash of each full block (hash of the
 * parent block's hash and the block's keys, seeded by the namespace) to the block, as vLLM's
 * `BlockPool.cached_block_hash_to_block`. A match hashes the prompt block by block and stops at
 * the first miss. Same interface and semantics as {@link RadixPrefixCache} (locks, pins,
 * tail-first eviction, KV events with the same hashes); it is the in-run baseline of the
 * benchmarks and the structure for consumers that only have block hashes.
 *
 * Matching trusts the 64-bit hash, as engines do (no key comparison).
 *
 * @see vllm-project/vllm:vllm/v1/core/block_pool.py
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_utils.py (hash_block_tokens)
 */
export class BlockHashIndex implements PrefixCache {
  /** Keys per block. */
  readonly pageSize: number;
  /** Receives KV events; undefined = none. */
  onEvent: ((event: KvEvent) => void) | undefined = undefined;

  private readonly policy: EvictionPolicy;
  private readonly table: HashTable64;
  private readonly seeds = new Map<string, Uint32Array>();
  private cap: number;
  private parent: Int32Array;
  private hashHi: Uint32Array;
  private hashLo: Uint32Array;
  private block: Uint32Array;
  private firstChild: Int32Array;
  private nextSib: Int32Array;
  private prevSib: Int32Array;
  /** Policy membership, lock/pin references and parking of protected entries. */
  private readonly tracker: PolicyTracker;
  private lastAccess: Float64Array;
  private live: Uint8Array;
  /** Generation of each entry id, bumped when the id is freed (see `handles.ts`). */
  private gens: Uint32Array;
  private freeIds: number[] = [];
  private highId = 0;
  private clock = 0;
  private readonly info: { nowUs: number; size: number } = { nowUs: 0, size: 1 };

  private nQueries = 0;
  private nQueryKeys = 0;
  private nHitKeys = 0;
  private nInsertedKeys = 0;
  private nEvictedKeys = 0;
  private nEntries = 0;
  private nEvictable = 0;

  /**
   * @param options - see {@link BlockHashIndexOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `pageSize` or `initialBlocks` is not a positive integer.
   */
  constructor(options: BlockHashIndexOptions = {}) {
    this.pageSize = requirePositiveInt('pageSize', options.pageSize ?? 16);
    const n = requirePositiveInt('initialBlocks', options.initialBlocks ?? 1024);
    this.policy = options.policy ?? new LruPolicy(n);
    this.table = new HashTable64(n);
    this.cap = n;
    this.parent = new Int32Array(n);
    this.hashHi = new Uint32Array(n);
    this.hashLo = new Uint32Array(n);
    this.block = new Uint32Array(n);
    this.firstChild = new Int32Array(n);
    this.nextSib = new Int32Array(n);
    this.prevSib = new Int32Array(n);
    this.tracker = new PolicyTracker(this.policy, n);
    this.lastAccess = new Float64Array(n);
    this.live = new Uint8Array(n);
    this.gens = new Uint32Array(n);
  }

  /** Blocks that {@link evict} could remove now. */
  get evictablePages(): number {
    return this.nEvictable;
  }

  /** Blocks cached, all namespaces. */
  get cachedPages(): number {
    return this.nEntries;
  }

  /** Counters; `nodes` counts blocks (one entry each). */
  get stats(): PrefixCacheStats {
    return {
      queries: this.nQueries,
      queryKeys: this.nQueryKeys,
      hitKeys: this.nHitKeys,
      insertedKeys: this.nInsertedKeys,
      evictedKeys: this.nEvictedKeys,
      cachedKeys: this.nEntries * this.pageSize,
      nodes: this.nEntries,
      metadataBytes: this.cap * (8 * 4 + 8 + 1) + this.tracker.bytes + this.table.bytes + (this.policy instanceof LruPolicy ? this.cap * 9 : 0),
    };
  }

  private seedOf(namespace: string): Uint32Array {
    let s = this.seeds.get(namespace);
    if (s === undefined) {
      hashNamespace(namespace);
      s = Uint32Array.of(hashOut[0] as number, hashOut[1] as number);
      this.seeds.set(namespace, s);
    }
    return s;
  }

  private grow(): void {
    const cap = this.cap * 2;
    const g = <T extends Int32Array | Uint32Array | Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const r = make(cap);
      r.set(a as never);
      return r;
    };
    this.parent = g(this.parent, (n) => new Int32Array(n));
    this.hashHi = g(this.hashHi, (n) => new Uint32Array(n));
    this.hashLo = g(this.hashLo, (n) => new Uint32Array(n));
    this.block = g(this.block, (n) => new Uint32Array(n));
    this.firstChild = g(this.firstChild, (n) => new Int32Array(n));
    this.nextSib = g(this.nextSib, (n) => new Int32Array(n));
    this.prevSib = g(this.prevSib, (n) => new Int32Array(n));
    this.tracker.grow(cap);
    this.lastAccess = g(this.lastAccess, (n) => new Float64Array(n));
    this.live = g(this.live, (n) => new Uint8Array(n));
    this.gens = g(this.gens, (n) => new Uint32Array(n));
    this.cap = cap;
  }

  private touchPath(e: number, t: number): void {
    for (let n = e; n !== -1; n = this.parent[n] as number) {
      this.lastAccess[n] = t;
      this.info.nowUs = t;
      this.tracker.touch(n, this.info);
    }
  }

  private infoFor(e: number): EvictionEntryInfo {
    this.info.nowUs = this.lastAccess[e] as number;
    return this.info;
  }

  /**
   * Hashes `keys` block by block and returns the cached leading blocks.
   * @param keys - u32 keys; a trailing partial block is never matched.
   * @param options - `namespace` (@default ''), `touch` (@default true), `nowUs`.
   * @returns matched length (keys), block handles, and the last matched entry (-1 when none).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when a key is not a u32.
   */
  match(keys: ArrayLike<number>, options?: PrefixMatchOptions): PrefixMatch {
    requireU32Keys('keys', keys);
    const P = this.pageSize;
    const end = keys.length - (keys.length % P);
    const seed = this.seedOf(options?.namespace ?? '');
    let hi = seed[0] as number;
    let lo = seed[1] as number;
    const blocks: number[] = [];
    let node = -1;
    let pos = 0;
    while (pos < end) {
      hashPage(hi, lo, keys, pos, P);
      hi = hashOut[0] as number;
      lo = hashOut[1] as number;
      const e = this.table.get(hi, lo);
      if (e < 0) break;
      blocks.push(this.block[e] as number);
      node = e;
      pos += P;
    }
    if (options?.touch ?? true) {
      this.nQueries++;
      this.nQueryKeys += keys.length;
      this.nHitKeys += pos;
      if (node >= 0) this.touchPath(node, options?.nowUs ?? ++this.clock);
    }
    return { matchedLength: pos, blocks, node: node < 0 ? -1 : encodeHandle(node, this.gens[node] as number) };
  }

  /**
   * Caches the full blocks of `keys` (one handle per block). Same contract as
   * {@link RadixPrefixCache.insert}; with `resumeFrom` the chain continues from that entry's hash
   * (the namespace is the entry's: `namespace` is not read then).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` (bad key or block, too few blocks, partial block
   *   with `partialPage: 'error'`, a `resumeLength` that is not `pageSize` × the entries on the
   *   chain to `resumeFrom` or exceeds the full pages of `keys`); `KVMGR_UNKNOWN_HANDLE` for a
   *   dead `resumeFrom`. Nothing is changed then.
   */
  insert(keys: ArrayLike<number>, blocks: ArrayLike<number>, options?: PrefixInsertOptions): PrefixInsertResult {
    requireU32Keys('keys', keys);
    const P = this.pageSize;
    if (options?.partialPage === 'error' && keys.length % P !== 0) {
      throw invalidArgument('keys.length', keys.length, `a multiple of pageSize ${P}`);
    }
    const end = keys.length - (keys.length % P);
    const pages = end / P;
    const resumeFrom = options?.resumeFrom ?? -1;
    let node = -1;
    if (resumeFrom !== -1) {
      node = this.requireHandle(resumeFrom, 'insert');
      let d = 0;
      for (let n = node; n !== -1; n = this.parent[n] as number) d += P;
      const length = options?.resumeLength;
      if (length !== d || d > end) throw invalidArgument('resumeLength', length, `${d} (the keys on the chain to resumeFrom), at most the ${end} keys of full pages`);
    }
    let pos = node === -1 ? 0 : (options?.resumeLength as number);
    requireU32Blocks('blocks', blocks, Math.min(pages, blocks?.length ?? 0), pos / P);
    if (blocks.length < pages) {
      throw invalidArgument('blocks.length', blocks.length, `>= ${pages} (one block per full page of ${P} keys)`);
    }
    let hi: number;
    let lo: number;
    if (node === -1) {
      const seed = this.seedOf(options?.namespace ?? '');
      hi = seed[0] as number;
      lo = seed[1] as number;
    } else {
      hi = this.hashHi[node] as number;
      lo = this.hashLo[node] as number;
    }
    const duplicateBlocks: number[] = [];
    const adoptedBlocks: number[] = [];
    let existingLength = -1;
    let storedHashes: bigint[] | undefined;
    let parentHash: bigint | null = null;
    const t = options?.nowUs ?? ++this.clock;
    for (let i = pos / P; i < pages; i++, pos += P) {
      const phi = hi;
      const plo = lo;
      hashPage(hi, lo, keys, pos, P);
      hi = hashOut[0] as number;
      lo = hashOut[1] as number;
      const given = blocks[i] as number;
      let e = existingLength < 0 ? this.table.get(hi, lo) : -1;
      if (e >= 0) {
        if (this.block[e] !== given) duplicateBlocks.push(given);
      } else {
        if (existingLength < 0) {
          existingLength = pos;
          if (this.onEvent) {
            storedHashes = [];
            parentHash = node < 0 ? null : toBigHash(phi, plo);
          }
        }
        if (this.freeIds.length > 0) e = this.freeIds.pop() as number;
        else {
          if (this.highId === this.cap) this.grow();
          e = this.highId++;
        }
        // the policy first (it may refuse, e.g. ARC at capacity): then this call's entries go
        this.lastAccess[e] = t;
        try {
          this.policy.insert(e, this.infoFor(e));
        } catch (err) {
          this.freeIds.push(e);
          this.gens[e] = nextGeneration(this.gens[e] as number);
          for (let u = node; u >= 0 && adoptedBlocks.length > 0; u = this.parent[u] as number, adoptedBlocks.pop()) this.dropEntry(u);
          throw err;
        }
        this.parent[e] = node;
        this.hashHi[e] = hi;
        this.hashLo[e] = lo;
        this.block[e] = given;
        this.firstChild[e] = -1;
        this.prevSib[e] = -1;
        this.tracker.reset(e);
        this.lastAccess[e] = t;
        this.live[e] = 1;
        if (node >= 0) {
          const f = this.firstChild[node] as number;
          this.nextSib[e] = f;
          if (f !== -1) this.prevSib[f] = e;
          this.firstChild[node] = e;
        } else this.nextSib[e] = -1;
        this.table.set(hi, lo, e);
        this.nEntries++;
        this.nEvictable++;
        adoptedBlocks.push(given);
        storedHashes?.push(toBigHash(hi, lo));
      }
      node = e;
    }
    if (existingLength < 0) existingLength = end;
    this.nInsertedKeys += end - existingLength;
    if (node >= 0) this.touchPath(node, t);
    if (storedHashes && storedHashes.length > 0 && this.onEvent) {
      const tokenIds: number[] = [];
      for (let i = existingLength; i < end; i++) tokenIds.push(keys[i] as number);
      this.onEvent({ type: 'BlockStored', blockHashes: storedHashes, parentBlockHash: parentHash, tokenIds, blockSize: P });
    }
    return { existingLength, adoptedBlocks, duplicateBlocks, node: node < 0 ? -1 : encodeHandle(node, this.gens[node] as number) };
  }

  /** Removes leaf entry `leaf` (evicted, or added by an insert that failed). */
  private dropEntry(leaf: number): void {
    const p = this.parent[leaf] as number;
    const prev = this.prevSib[leaf] as number;
    const next = this.nextSib[leaf] as number;
    if (prev === -1) {
      if (p !== -1) this.firstChild[p] = next;
    } else this.nextSib[prev] = next;
    if (next !== -1) this.prevSib[next] = prev;
    this.table.delete(this.hashHi[leaf] as number, this.hashLo[leaf] as number);
    this.tracker.remove(leaf);
    this.live[leaf] = 0;
    this.gens[leaf] = nextGeneration(this.gens[leaf] as number);
    this.freeIds.push(leaf);
    this.nEntries--;
    this.nEvictable--;
  }

  /** The entry id of a handle. @throws `KVMGR_UNKNOWN_HANDLE` for a dead or stale handle. */
  private requireHandle(handle: PrefixNodeHandle, op: string): number {
    return decodeHandle(handle, this.highId, this.gens, (id) => this.live[id] === 1, 'entry', op);
  }

  private addRef(handle: PrefixNodeHandle, refs: Int32Array, op: string): void {
    if (handle === -1) return;
    const e = this.requireHandle(handle, op);
    for (let n = e; n !== -1; n = this.parent[n] as number) if (this.tracker.protect(n, refs)) this.nEvictable--;
  }

  private dropRef(handle: PrefixNodeHandle, refs: Int32Array, op: string): void {
    if (handle === -1) return;
    const e = this.requireHandle(handle, op);
    if (refs[e] === 0) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `${op}: entry ${handle} has no reference left to release`, { details: { node: handle } });
    }
    let n = e;
    try {
      for (; n !== -1; n = this.parent[n] as number) if (this.tracker.release(n, refs, this.infoFor(n))) this.nEvictable++;
    } catch (err) {
      // the policy refused a parked entry (left as it was): take the references back below it
      for (let u = e; u !== n; u = this.parent[u] as number) if (this.tracker.protect(u, refs)) this.nEvictable--;
      throw err;
    }
  }

  /** Protects the chain up to entry `e` (reference counted); -1 is a no-op. @throws `KVMGR_UNKNOWN_HANDLE`. */
  lock(e: PrefixNodeHandle): void {
    this.addRef(e, this.tracker.lockRef, 'lock');
  }

  /** Releases one lock. @throws `KVMGR_UNKNOWN_HANDLE`, `KVMGR_INVALID_STATE` when not locked. */
  unlock(e: PrefixNodeHandle): void {
    this.dropRef(e, this.tracker.lockRef, 'unlock');
  }

  /** Pins the chain up to entry `e` (reference counted). @throws `KVMGR_UNKNOWN_HANDLE`. */
  pin(e: PrefixNodeHandle): void {
    this.addRef(e, this.tracker.pinRef, 'pin');
  }

  /** Releases one pin. @throws `KVMGR_UNKNOWN_HANDLE`, `KVMGR_INVALID_STATE` when not pinned. */
  unpin(e: PrefixNodeHandle): void {
    this.dropRef(e, this.tracker.pinRef, 'unpin');
  }

  /**
   * Evicts exactly `min(numPages, evictablePages)` blocks in the policy's order, children before
   * parents, and emits one `BlockRemoved`.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `numPages` is not a non-negative integer.
   */
  evict(numPages: number): PrefixEvictResult {
    requireNonNegativeInt('numPages', numPages);
    const freed: number[] = [];
    const hashes: bigint[] | undefined = this.onEvent ? [] : undefined;
    let remaining = numPages;
    const live = (v: number): boolean => v < this.highId && this.live[v] === 1;
    while (remaining > 0) {
      const v = this.tracker.victim(live);
      if (v < 0) break;
      let leaf = v;
      while (this.firstChild[leaf] !== -1) leaf = this.firstChild[leaf] as number;
      freed.push(this.block[leaf] as number);
      hashes?.push(toBigHash(this.hashHi[leaf] as number, this.hashLo[leaf] as number));
      this.dropEntry(leaf);
      remaining--;
    }
    this.nEvictedKeys += freed.length * this.pageSize;
    if (hashes && hashes.length > 0 && this.onEvent) this.onEvent({ type: 'BlockRemoved', blockHashes: hashes });
    return { blocks: freed, evictedKeys: freed.length * this.pageSize };
  }

  /** Drops every entry and emits `AllBlocksCleared`. @returns the block handles held. */
  clear(): PrefixEvictResult {
    const blocks: number[] = [];
    for (let e = 0; e < this.highId; e++) if (this.live[e] === 1) blocks.push(this.block[e] as number);
    const evictedKeys = this.nEntries * this.pageSize;
    // every handle given out becomes stale (ids restart from 0)
    for (let e = 0; e < this.highId; e++) this.gens[e] = nextGeneration(this.gens[e] as number);
    this.live.fill(0);
    this.freeIds = [];
    this.highId = 0;
    this.table.clear();
    this.tracker.clear();
    this.nEntries = 0;
    this.nEvictable = 0;
    this.onEvent?.({ type: 'AllBlocksCleared' });
    return { blocks, evictedKeys };
  }
}
