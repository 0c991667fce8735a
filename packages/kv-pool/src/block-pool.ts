/**
 * The paged KV block pool: fixed-size blocks, O(1) allocate/free on typed arrays, ref counts for
 * shared prefix blocks, copy-on-write fork, and vLLM v1's free queue semantics for cached blocks.
 *
 * @see vllm-project/vllm:vllm/v1/core/block_pool.py (`BlockPool`)
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_utils.py (`FreeKVCacheBlockQueue`)
 */
import type { BlockId, KVCacheSpec, KVPool, Tier } from '@kvmgr/core';
import { KvmgrError, invalidArgument, requireNonNegativeInt, requirePositiveInt } from '@kvmgr/core';
import { requireList } from './arguments.js';
import type { BlockMove, CompactionPlan } from './compaction.js';
import { FreeBlockQueue } from './free-block-queue.js';

/** Options of {@link BlockPool}. */
export interface BlockPoolOptions {
  /** Geometry of one block (tokens per block, bytes per block per tier). */
  readonly spec: KVCacheSpec;
  /** Number of blocks, ≥ 1 (≤ 2^31 − 2). */
  readonly numBlocks: number;
  /** Tier these blocks live in (bytes per block are read for it). @default 'gpu' */
  readonly tier?: Tier;
  /**
   * Called when a free block that still held a cached prefix is handed out again (or dropped
   * by compaction) and loses its identity, so a prefix cache can forget it.
   * Arguments: the block and its cache key.
   */
  readonly onCachedBlockEvicted?: (block: BlockId, key: number) => void;
}

/** Result of {@link BlockPool.copyOnWrite}. */
export interface CopyOnWriteResult {
  /** The block to write into (the same block when it was private). */
  readonly block: BlockId;
  /** The block whose content must be copied into `block` first; -1 when no copy is needed. */
  readonly copyFrom: BlockId;
}

/** A comparable dump of a pool's state (tests: a failed operation leaves it unchanged). */
export interface BlockPoolState {
  readonly refCounts: readonly number[];
  /** Free queue, head (next evicted) first. */
  readonly freeQueue: readonly BlockId[];
  /** `[block, key]` pairs of blocks holding a cached prefix, by block id. */
  readonly cached: readonly (readonly [BlockId, number])[];
}

/**
 * A paged KV block pool implementing core's {@link KVPool}.
 *
 * - `allocate(n)` pops `n` blocks from the head of the free queue, all or nothing; a popped
 *   block that still held a cached prefix loses it (reported through `onCachedBlockEvicted`).
 * - `free(blocks)` drops one reference each; blocks reaching zero are appended to the tail in
 *   the given order (pass a sequence's blocks last-first so its tail is evicted first, as vLLM
 *   does). Blocks marked with {@link markCached} stay reusable while in the queue.
 * - `share(blocks)` adds a reference; for a cached block in the free queue it is a cache hit
 *   that takes the block back out of the queue (vLLM's `touch`).
 *
 * All operations are O(1) per block; a failed operation changes nothing.
 *
 * @example
 * ```ts
 * const pool = new BlockPool({ spec, numBlocks: 1024 });
 * const blocks = pool.allocate(4);
 * pool.markCached(blocks[0]!, 0xabc);
 * pool.free([...blocks].reverse());
 * pool.share([blocks[0]!]); // cache hit: back out of the free queue
 * ```
 */
export class BlockPool implements KVPool {
  /** Block geometry. */
  readonly spec: KVCacheSpec;
  /** Total blocks. */
  readonly numBlocks: number;
  /** The tier of this pool. */
  readonly tier: Tier;
  /** See {@link BlockPoolOptions.onCachedBlockEvicted}; may be replaced at any time. */
  onCachedBlockEvicted: ((block: BlockId, key: number) => void) | undefined;
  private readonly refs: Int32Array;
  private readonly keys: Float64Array;
  private readonly hasKey: Uint8Array;
  private readonly queue: FreeBlockQueue;
  private cachedCount = 0;
  private ver = 0;
  /** Plans made by {@link planCompaction}, with the moves as planned. */
  private readonly plans = new WeakMap<CompactionPlan, { moves: BlockMove[]; droppedCached: BlockId[] }>();

  /**
   * @param options - see {@link BlockPoolOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `numBlocks` is not a positive integer
   *   below 2^31 − 1 or the tier is unknown.
   */
  constructor(options: BlockPoolOptions) {
    const numBlocks = requirePositiveInt('numBlocks', options.numBlocks);
    if (numBlocks > 0x7ffffffe) throw invalidArgument('numBlocks', numBlocks, 'at most 2147483646');
    const tier = options.tier ?? 'gpu';
    if (tier !== 'gpu' && tier !== 'cpu' && tier !== 'disk') throw invalidArgument('tier', tier, "'gpu', 'cpu' or 'disk'");
    this.spec = options.spec;
    this.numBlocks = numBlocks;
    this.tier = tier;
    this.onCachedBlockEvicted = options.onCachedBlockEvicted;
    this.refs = new Int32Array(numBlocks);
    this.keys = new Float64Array(numBlocks);
    this.hasKey = new Uint8Array(numBlocks);
    this.queue = new FreeBlockQueue(numBlocks);
  }

  /** Blocks in the free queue (including cached ones still reusable). */
  get numFreeBlocks(): number {
    return this.queue.length;
  }

  /** Blocks with at least one reference. */
  get numUsedBlocks(): number {
    return this.numBlocks - this.queue.length;
  }

  /** Free blocks that still hold a cached prefix. O(free blocks): a walk of the free queue. */
  get numCachedFreeBlocks(): number {
    let n = 0;
    if (this.cachedCount === 0) return 0;
    for (let b = this.queue.peekFront(); b !== -1; b = this.queue.after(b)) n += this.hasKey[b] as number;
    return n;
  }

  /** Blocks holding a cached prefix (in use or free). */
  get numCachedBlocks(): number {
    return this.cachedCount;
  }

  /** Fraction of blocks in use (ref count > 0), 0..1, as vLLM's `kv_cache_usage_perc`. */
  get usage(): number {
    return (this.numBlocks - this.queue.length) / this.numBlocks;
  }

  /** Bytes of one block in this pool's tier. */
  get bytesPerBlock(): number {
    return this.spec.bytesPerBlockByTier[this.tier];
  }

  /** Incremented by every successful mutation (compaction plans check it). */
  get version(): number {
    return this.ver;
  }

  /**
   * Allocates `n` blocks from the head of the free queue, all or nothing.
   *
   * @param n - number of blocks, a non-negative integer.
   * @returns the block ids, each with ref count 1, in allocation order.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad `n`; `KVMGR_OUT_OF_BLOCKS` with
   *   details `{ free, requested }` when fewer than `n` blocks are free (nothing changes).
   */
  allocate(n: number): BlockId[] {
    if (!(n >= 0 && n <= this.queue.length && Number.isInteger(n))) this.allocateError(n);
    const out: BlockId[] = new Array(n);
    const refs = this.refs;
    for (let i = 0; i < n; i++) {
      const b = this.queue.popFront();
      if (this.hasKey[b] === 1) this.dropKey(b);
      refs[b] = 1;
      out[i] = b;
    }
    this.ver++;
    return out;
  }

  /**
   * Allocates the given free blocks (wherever they are in the free queue), all or nothing; a
   * cached one loses its identity as in {@link allocate}.
   *
   * @param blocks - distinct free block ids.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range or listed twice;
   *   `KVMGR_INVALID_STATE` for a block in use. Nothing changes on a throw.
   */
  allocateSpecific(blocks: ArrayLike<BlockId>): void {
    requireList('blocks', blocks);
    const seen = new Set<number>();
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i] as number;
      this.checkId(`blocks[${i}]`, b);
      if (seen.has(b)) throw invalidArgument(`blocks[${i}]`, b, 'a block not listed twice');
      seen.add(b);
      if (this.refs[b] !== 0) throw new KvmgrError('KVMGR_INVALID_STATE', `blocks[${i}] = ${b} is in use`, { details: { block: b } });
    }
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i] as number;
      this.queue.remove(b);
      if (this.hasKey[b] === 1) this.dropKey(b);
      this.refs[b] = 1;
    }
    this.ver++;
  }

  private allocateError(n: number): never {
    requireNonNegativeInt('n', n);
    throw new KvmgrError('KVMGR_OUT_OF_BLOCKS', `cannot allocate ${n} blocks: only ${this.queue.length} of ${this.numBlocks} are free`, {
      details: { free: this.queue.length, requested: n },
    });
  }

  private dropKey(b: BlockId): void {
    const key = this.keys[b] as number;
    this.hasKey[b] = 0;
    this.cachedCount--;
    this.onCachedBlockEvicted?.(b, key);
  }

  private checkId(field: string, b: unknown): void {
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b >= this.numBlocks) {
      throw invalidArgument(field, b, `a block id in [0, ${this.numBlocks})`);
    }
  }

  /**
   * Drops one reference of each block; a block reaching zero is appended to the free queue tail
   * in the order given. A block listed twice loses two references.
   *
   * @param blocks - block ids.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range; `KVMGR_INVALID_STATE`
   *   when a block would go below zero references (double free). Nothing changes on a throw.
   */
  free(blocks: ArrayLike<BlockId>): void {
    requireList('blocks', blocks);
    const refs = this.refs;
    const len = blocks.length;
    for (let i = 0; i < len; i++) {
      const b = blocks[i] as number;
      if (!(b >= 0 && b < this.numBlocks && Number.isInteger(b))) {
        for (let j = 0; j < i; j++) refs[blocks[j] as number] = (refs[blocks[j] as number] as number) + 1;
        this.checkId(`blocks[${i}]`, b);
      }
      const r = (refs[b] as number) - 1;
      refs[b] = r;
      if (r < 0) {
        for (let j = 0; j <= i; j++) refs[blocks[j] as number] = (refs[blocks[j] as number] as number) + 1;
        throw new KvmgrError('KVMGR_INVALID_STATE', `blocks[${i}] = ${b} is already free (double free)`, { details: { block: b } });
      }
    }
    for (let i = 0; i < len; i++) {
      const b = blocks[i] as number;
      if (refs[b] === 0 && !this.queue.has(b)) this.queue.append(b);
    }
    this.ver++;
  }

  /**
   * Adds one reference to each block (prefix sharing). A cached block in the free queue is a
   * cache hit: it leaves the queue and is reused as is.
   *
   * @param blocks - block ids, each in use or holding a cached prefix.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range; `KVMGR_INVALID_STATE`
   *   for a free block without cached content. Nothing changes on a throw.
   */
  share(blocks: ArrayLike<BlockId>): void {
    requireList('blocks', blocks);
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i] as number;
      this.checkId(`blocks[${i}]`, b);
      if (this.refs[b] === 0 && this.hasKey[b] === 0) {
        throw new KvmgrError('KVMGR_INVALID_STATE', `blocks[${i}] = ${b} is free and holds no cached prefix; it cannot be shared`, { details: { block: b } });
      }
    }
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i] as number;
      const r = this.refs[b] as number;
      this.refs[b] = r + 1;
      if (r === 0) this.queue.remove(b);
    }
    this.ver++;
  }

  /**
   * Reference count of a block (0 = free).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range.
   */
  refCount(block: BlockId): number {
    this.checkId('block', block);
    return this.refs[block] as number;
  }

  /**
   * Forks a block table for parallel sampling: every block gains a reference and the child gets
   * a copy of the table. Writes then go through {@link copyOnWrite}.
   *
   * @param blocks - the parent's block table (blocks in use).
   * @returns the child's block table (same ids).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range; `KVMGR_INVALID_STATE`
   *   for a free block. Nothing changes on a throw.
   */
  fork(blocks: ArrayLike<BlockId>): BlockId[] {
    requireList('blocks', blocks);
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i] as number;
      this.checkId(`blocks[${i}]`, b);
      if (this.refs[b] === 0) throw new KvmgrError('KVMGR_INVALID_STATE', `blocks[${i}] = ${b} is free; only blocks in use can be forked`, { details: { block: b } });
    }
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i] as number;
      this.refs[b] = (this.refs[b] as number) + 1;
    }
    this.ver++;
    return Array.from(blocks);
  }

  /**
   * Prepares a block for writing. A private block (one reference, no cached prefix) is written in
   * place; a shared or cached block is copied: a new block is allocated and the old one loses the
   * caller's reference (a cached block then stays reusable in the free queue).
   *
   * @param block - a block in use by the caller.
   * @returns `{ block, copyFrom }`: write into `block` after copying `copyFrom` (-1: no copy).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range; `KVMGR_INVALID_STATE`
   *   for a free block; `KVMGR_OUT_OF_BLOCKS` when a copy is needed and no block is free.
   */
  copyOnWrite(block: BlockId): CopyOnWriteResult {
    this.checkId('block', block);
    const r = this.refs[block] as number;
    if (r === 0) throw new KvmgrError('KVMGR_INVALID_STATE', `block ${block} is free; it cannot be written`, { details: { block } });
    if (r === 1 && this.hasKey[block] === 0) return { block, copyFrom: -1 };
    const [fresh] = this.allocate(1) as [BlockId];
    this.free([block]);
    return { block: fresh, copyFrom: block };
  }

  /**
   * Marks a block in use as holding a cached prefix (a full block inserted into a prefix
   * cache). It then stays reusable after being freed until it is handed out again.
   *
   * @param block - a block in use.
   * @param key - the cache key (block hash or prefix-cache handle), any finite number.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad id or key; `KVMGR_INVALID_STATE` for
   *   a free block or one already holding a different key.
   */
  markCached(block: BlockId, key: number): void {
    this.checkId('block', block);
    if (typeof key !== 'number' || !Number.isFinite(key)) throw invalidArgument('key', key, 'a finite number');
    if (this.refs[block] === 0) throw new KvmgrError('KVMGR_INVALID_STATE', `block ${block} is free; only blocks in use can be marked cached`, { details: { block } });
    if (this.hasKey[block] === 1) {
      if (this.keys[block] === key) return;
      throw new KvmgrError('KVMGR_INVALID_STATE', `block ${block} already holds cache key ${this.keys[block]}, not ${key}`, { details: { block, key } });
    }
    this.hasKey[block] = 1;
    this.keys[block] = key;
    this.cachedCount++;
    this.ver++;
  }

  /**
   * Drops a block's cached identity without calling `onCachedBlockEvicted` (the prefix cache
   * itself evicted it). A free block then moves to the head of the queue (reused first).
   *
   * @param block - a block id. No-op when the block holds no key.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range.
   */
  uncache(block: BlockId): void {
    this.checkId('block', block);
    if (this.hasKey[block] === 0) return;
    this.hasKey[block] = 0;
    this.cachedCount--;
    if (this.refs[block] === 0) {
      this.queue.remove(block);
      this.queue.prepend(block);
    }
    this.ver++;
  }

  /**
   * The cache key a block holds, or undefined.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range.
   */
  cachedKey(block: BlockId): number | undefined {
    this.checkId('block', block);
    return this.hasKey[block] === 1 ? (this.keys[block] as number) : undefined;
  }

  /** True when the block is in the free queue. */
  isFree(block: BlockId): boolean {
    this.checkId('block', block);
    return this.queue.has(block);
  }

  /** Head of the free queue (next handed out), or -1 when none is free. */
  peekFree(): BlockId {
    return this.queue.peekFront();
  }

  /**
   * The free block after `block` in eviction order, or -1 at the tail.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range, `KVMGR_INVALID_STATE`
   *   when `block` is not free.
   */
  nextFree(block: BlockId): BlockId {
    this.checkId('block', block);
    if (!this.queue.has(block)) throw new KvmgrError('KVMGR_INVALID_STATE', `block ${block} is not free; nextFree walks the free queue`, { details: { block } });
    return this.queue.after(block);
  }

  /**
   * Plans a compaction that packs every live block (in use, or free but cached) into the lowest
   * ids so that `[freeTailStart, numBlocks)` ends up free, e.g. to hand memory back to a quota.
   *
   * @param options - `limitBlocks`: the ids to keep, `[0, limitBlocks)`; cached free blocks that
   *   do not fit lose their identity (listed in `droppedCached`, oldest first).
   *   @default limitBlocks = number of live blocks
   * @returns a plan; execute its moves with a backend, then {@link applyCompaction}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad limit; `KVMGR_OUT_OF_BLOCKS` when the
   *   blocks in use exceed `limitBlocks`.
   */
  planCompaction(options: { readonly limitBlocks?: number } = {}): CompactionPlan {
    const used = this.numUsedBlocks;
    let droppedCached: BlockId[] = [];
    // free cached blocks in eviction order (oldest first)
    const cachedFree: BlockId[] = [];
    for (let b = this.queue.peekFront(); b !== -1; b = this.queue.after(b)) if (this.hasKey[b] === 1) cachedFree.push(b);
    let limit = used + cachedFree.length;
    if (options.limitBlocks !== undefined) {
      const l = requireNonNegativeInt('limitBlocks', options.limitBlocks);
      if (l > this.numBlocks) throw invalidArgument('limitBlocks', l, `at most numBlocks (${this.numBlocks})`);
      if (used > l) {
        throw new KvmgrError('KVMGR_OUT_OF_BLOCKS', `cannot compact into ${l} blocks: ${used} are in use`, { details: { free: l - this.numUsedBlocks, requested: used, limitBlocks: l } });
      }
      if (l < limit) droppedCached = cachedFree.slice(0, limit - l);
      limit = l;
    }
    const dropped = new Set(droppedCached);
    const isLive = (b: number) => this.refs[b]! > 0 || (this.hasKey[b] === 1 && !dropped.has(b));
    const moves: { from: BlockId; to: BlockId }[] = [];
    let hole = 0;
    for (let b = limit; b < this.numBlocks; b++) {
      if (!isLive(b)) continue;
      while (hole < limit && isLive(hole)) hole++;
      moves.push({ from: b, to: hole });
      hole++;
    }
    const plan: CompactionPlan = { moves, droppedCached, version: this.ver, freeTailStart: limit };
    // what is applied is this copy: a plan edited after planning, or made elsewhere, is refused
    this.plans.set(plan, { moves: moves.map((m) => ({ ...m })), droppedCached: droppedCached.slice() });
    return plan;
  }

  /**
   * Applies a plan from {@link planCompaction} after its copies landed: ref counts, cached keys
   * and free queue positions move with the blocks, in one step.
   *
   * @param plan - made by this pool's {@link planCompaction}, with no mutation of the pool since;
   *   applied as planned (later edits of the plan object are ignored), once.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a plan this pool did not make (or already
   *   applied), `KVMGR_INVALID_STATE` when the pool changed since planning. Nothing changes then.
   */
  applyCompaction(plan: CompactionPlan): void {
    const made = typeof plan === 'object' && plan !== null ? this.plans.get(plan) : undefined;
    if (made === undefined) throw invalidArgument('plan', plan === null || typeof plan !== 'object' ? plan : 'foreign plan', 'a plan made by this pool and not applied yet');
    if (plan.version !== this.ver) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `compaction plan was made for pool version ${plan.version}, pool is at ${this.ver}`, {
        details: { planVersion: plan.version, version: this.ver },
      });
    }
    this.plans.delete(plan);
    const perm = new Int32Array(this.numBlocks);
    for (let i = 0; i < perm.length; i++) perm[i] = i;
    for (const m of made.moves) {
      perm[m.from] = m.to;
      perm[m.to] = m.from;
    }
    for (const b of made.droppedCached) this.dropKey(b);
    const order = this.queue.toArray().map((b) => perm[b] as number);
    // dropped blocks are garbage now: reuse them first
    const droppedSet = new Set(made.droppedCached.map((b) => perm[b] as number));
    const reordered = [...order.filter((b) => droppedSet.has(b)), ...order.filter((b) => !droppedSet.has(b))];
    const refs = Int32Array.from(this.refs);
    const keys = Float64Array.from(this.keys);
    const hasKey = Uint8Array.from(this.hasKey);
    for (const m of made.moves) {
      for (const [a, b] of [
        [m.from, m.to],
        [m.to, m.from],
      ] as const) {
        this.refs[b] = refs[a] as number;
        this.keys[b] = keys[a] as number;
        this.hasKey[b] = hasKey[a] as number;
      }
    }
    this.queue.reset(reordered);
    this.ver++;
  }

  /** A comparable copy of the state (ref counts, free queue order, cached keys). O(numBlocks). */
  state(): BlockPoolState {
    const cached: [BlockId, number][] = [];
    for (let b = 0; b < this.numBlocks; b++) if (this.hasKey[b] === 1) cached.push([b, this.keys[b] as number]);
    return { refCounts: Array.from(this.refs), freeQueue: this.queue.toArray(), cached };
  }

  /**
   * Checks the invariants (tests, debugging): ref counts ≥ 0, a block is free iff its ref count is
   * 0, the queue length matches, the cached count matches.
   * @throws KvmgrError `KVMGR_VERIFY_FAILED` naming the first broken invariant.
   */
  verify(): void {
    const fail = (m: string) => {
      throw new KvmgrError('KVMGR_VERIFY_FAILED', `BlockPool: ${m}`);
    };
    let free = 0;
    let cached = 0;
    for (let b = 0; b < this.numBlocks; b++) {
      const r = this.refs[b] as number;
      if (r < 0) fail(`block ${b} has ref count ${r}`);
      if ((r === 0) !== this.queue.has(b)) fail(`block ${b} has ref count ${r} but in-queue=${this.queue.has(b)}`);
      if (r === 0) free++;
      cached += this.hasKey[b] as number;
    }
    const order = this.queue.toArray();
    if (order.length !== free || this.queue.length !== free) fail(`free queue holds ${order.length}/${this.queue.length}, expected ${free}`);
    if (new Set(order).size !== order.length) fail('free queue holds a block twice');
    if (cached !== this.cachedCount) fail(`cached count ${this.cachedCount}, expected ${cached}`);
  }
}
