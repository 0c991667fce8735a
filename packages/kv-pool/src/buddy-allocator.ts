/**
 * Buddy allocator for contiguous runs of KV blocks: free lists per order on typed arrays, split on
 * allocation, merge with the buddy on free. A request of `n` blocks is split into the exact powers
 * of two of `n`'s binary form (13 = 8 + 4 + 1), never rounded up, so there is no internal
 * fragmentation beyond the last block's unused token slots.
 *
 * @see Knuth, The Art of Computer Programming vol. 1, §2.5 (buddy system)
 * @see Linux `mm/page_alloc.c` (free areas per order)
 */
import type { BlockAllocator, BlockId } from '@kvmgr/core';
import { KvmgrError, invalidArgument, requirePositiveInt } from '@kvmgr/core';
import { requireList } from './arguments.js';
import type { CompactionPlan } from './compaction.js';

/** A contiguous run of `2^order` blocks starting at `start` (aligned to its size). */
export interface BlockRun {
  readonly start: BlockId;
  readonly order: number;
}

/** Options of {@link BuddyAllocator}. */
export interface BuddyAllocatorOptions {
  /** Number of blocks, ≥ 1 (any count; not only powers of two). */
  readonly numBlocks: number;
}

/** A comparable dump of a buddy allocator's state. */
export interface BuddyState {
  /** Free runs, sorted by start. */
  readonly freeRuns: readonly BlockRun[];
  /** Allocated block ids, ascending. */
  readonly allocated: readonly BlockId[];
}

class Books {
  readonly n: number;
  readonly maxOrder: number;
  readonly freeOrder: Int8Array;
  readonly next: Int32Array;
  readonly prev: Int32Array;
  readonly heads: Int32Array;
  readonly counts: Int32Array;
  readonly allocated: Uint8Array;
  /** Order of the top-level run containing each block (the initial decomposition). */
  readonly topOrder: Int8Array;
  freeBlocks: number;

  constructor(n: number, from?: Books) {
    this.n = n;
    this.maxOrder = 31 - Math.clz32(n);
    if (from) {
      this.freeOrder = Int8Array.from(from.freeOrder);
      this.next = Int32Array.from(from.next);
      this.prev = Int32Array.from(from.prev);
      this.heads = Int32Array.from(from.heads);
      this.counts = Int32Array.from(from.counts);
      this.allocated = Uint8Array.from(from.allocated);
      this.topOrder = from.topOrder;
      this.freeBlocks = from.freeBlocks;
      return;
    }
    this.freeOrder = new Int8Array(n).fill(-1);
    this.next = new Int32Array(n);
    this.prev = new Int32Array(n);
    this.heads = new Int32Array(this.maxOrder + 1).fill(-1);
    this.counts = new Int32Array(this.maxOrder + 1);
    this.allocated = new Uint8Array(n);
    this.topOrder = new Int8Array(n);
    this.freeBlocks = n;
    const runs: BlockRun[] = [];
    for (let p = 0; p < n; ) {
      let k = this.maxOrder;
      while ((p & ((1 << k) - 1)) !== 0 || p + (1 << k) > n) k--;
      runs.push({ start: p, order: k });
      this.topOrder.fill(k, p, p + (1 << k));
      p += 1 << k;
    }
    for (let i = runs.length - 1; i >= 0; i--) this.link(runs[i]!.start, runs[i]!.order);
  }

  link(s: number, k: number): void {
    const h = this.heads[k] as number;
    this.freeOrder[s] = k;
    this.prev[s] = -1;
    this.next[s] = h;
    if (h !== -1) this.prev[h] = s;
    this.heads[k] = s;
    this.counts[k] = (this.counts[k] as number) + 1;
  }

  unlink(s: number, k: number): void {
    const p = this.prev[s] as number;
    const nx = this.next[s] as number;
    if (p !== -1) this.next[p] = nx;
    else this.heads[k] = nx;
    if (nx !== -1) this.prev[nx] = p;
    this.freeOrder[s] = -1;
    this.counts[k] = (this.counts[k] as number) - 1;
  }

  /** Takes a free run of order `k` (splitting a larger one); the caller checked feasibility. */
  takeRun(k: number): number {
    let j = k;
    while (this.heads[j] === -1) j++;
    const s = this.heads[j] as number;
    this.takeAt(s, j, k);
    return s;
  }

  /** Carves the lowest `2^k` blocks out of the free run `(s, j)`. */
  takeAt(s: number, j: number, k: number): void {
    this.unlink(s, j);
    while (j > k) {
      j--;
      this.link(s + (1 << j), j);
    }
    this.allocated.fill(1, s, s + (1 << k));
    this.freeBlocks -= 1 << k;
  }

  /** Returns `(s, k)` (allocated) to the free lists, merging with free buddies. */
  release(s: number, k: number): void {
    this.allocated.fill(0, s, s + (1 << k));
    this.freeBlocks += 1 << k;
    const top = this.topOrder[s] as number;
    while (k < top) {
      const bud = s ^ (1 << k);
      if (this.freeOrder[bud] !== k) break;
      this.unlink(bud, k);
      if (bud < s) s = bud;
      k++;
    }
    this.link(s, k);
  }

  feasible(n: number): boolean {
    if (n > this.freeBlocks) return false;
    const c = Int32Array.from(this.counts);
    for (let k = this.maxOrder; k >= 0; k--) {
      if ((n & (1 << k)) === 0) continue;
      let j = k;
      while (j <= this.maxOrder && c[j] === 0) j++;
      if (j > this.maxOrder) return false;
      c[j] = (c[j] as number) - 1;
      for (let i = j - 1; i >= k; i--) c[i] = (c[i] as number) + 1;
    }
    return true;
  }
}

/**
 * A buddy allocator over `numBlocks` blocks implementing core's {@link BlockAllocator}.
 *
 * `allocateRuns(n)` returns the runs of `n`'s binary decomposition (largest first), each taken
 * from the smallest free order that fits; `free` accepts any allocated blocks (single blocks
 * merge back with their buddies), `freeRuns` frees whole runs. All operations are all or
 * nothing; `planCompaction` moves runs down to merge free space.
 *
 * @example
 * ```ts
 * const buddy = new BuddyAllocator({ numBlocks: 1024 });
 * const runs = buddy.allocateRuns(13); // [{start:0,order:3},{start:8,order:2},{start:12,order:0}]
 * buddy.freeRuns(runs);
 * ```
 */
export class BuddyAllocator implements BlockAllocator {
  /** Total blocks. */
  readonly numBlocks: number;
  /** Largest run order, `floor(log2(numBlocks))`. */
  readonly maxOrder: number;
  private books: Books;
  private ver = 0;
  private readonly plans = new WeakMap<CompactionPlan, Books>();

  /**
   * @param options - see {@link BuddyAllocatorOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `numBlocks` is not a positive integer below 2^31.
   */
  constructor(options: BuddyAllocatorOptions) {
    const n = requirePositiveInt('numBlocks', options.numBlocks);
    if (n > 0x7fffffff) throw invalidArgument('numBlocks', n, 'at most 2147483647');
    this.numBlocks = n;
    this.books = new Books(n);
    this.maxOrder = this.books.maxOrder;
  }

  /** Free blocks. */
  get numFreeBlocks(): number {
    return this.books.freeBlocks;
  }

  /** Incremented by every successful mutation. */
  get version(): number {
    return this.ver;
  }

  /** Free runs per order (index = order). */
  freeRunCounts(): number[] {
    return Array.from(this.books.counts);
  }

  /** Size in blocks of the largest free run (0 when full). */
  get largestFreeRun(): number {
    for (let k = this.maxOrder; k >= 0; k--) if (this.books.counts[k]! > 0) return 1 << k;
    return 0;
  }

  /**
   * True when `allocateRuns(n)` would succeed now (free runs can hold every power of two of `n`).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad `n`.
   */
  canAllocate(n: number): boolean {
    if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument('n', n, 'a non-negative integer');
    return this.books.feasible(n);
  }

  /**
   * Allocates `n` blocks as the runs of `n`'s binary decomposition, all or nothing.
   *
   * @param n - blocks, a non-negative integer.
   * @returns runs, largest first (`13 → orders 3, 2, 0`).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad `n`; `KVMGR_OUT_OF_BLOCKS` with details
   *   `{ free, requested, largestFreeRun }` when fewer than `n` blocks are free or the free runs
   *   are too fragmented to hold the powers of two (nothing changes).
   */
  allocateRuns(n: number): BlockRun[] {
    const b = this.books;
    if (!(n >= 0 && n <= b.freeBlocks && Number.isInteger(n)) || !b.feasible(n)) this.outOfBlocks(n);
    const runs: BlockRun[] = [];
    for (let k = this.maxOrder; k >= 0; k--) {
      if ((n & (1 << k)) !== 0) runs.push({ start: b.takeRun(k), order: k });
    }
    this.ver++;
    return runs;
  }

  private outOfBlocks(n: number): never {
    if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument('n', n, 'a non-negative integer');
    const free = this.books.freeBlocks;
    const why = n > free ? `only ${free} of ${this.numBlocks} are free` : `${free} are free but the largest free run holds ${this.largestFreeRun}`;
    throw new KvmgrError('KVMGR_OUT_OF_BLOCKS', `cannot allocate ${n} blocks as buddy runs: ${why}`, {
      details: { free, requested: n, largestFreeRun: this.largestFreeRun },
    });
  }

  /**
   * Allocates `n` blocks (as {@link allocateRuns}) and lists their ids, run after run.
   * @throws KvmgrError as {@link allocateRuns}.
   */
  allocate(n: number): BlockId[] {
    const out: BlockId[] = [];
    for (const r of this.allocateRuns(n)) for (let i = 0; i < 1 << r.order; i++) out.push(r.start + i);
    return out;
  }

  /**
   * Frees whole runs (each merges with its free buddies).
   *
   * @param runs - runs returned by {@link allocateRuns} (or aligned sub-runs of them).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a misaligned or out-of-range run;
   *   `KVMGR_INVALID_STATE` when a block of a run is not allocated or runs overlap (double
   *   free). Nothing changes on a throw.
   */
  freeRuns(runs: readonly BlockRun[]): void {
    requireList('runs', runs);
    const a = this.books.allocated;
    let bad: KvmgrError | undefined;
    let marked = 0; // runs fully marked (2) so far
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i]!;
      if (r === null || typeof r !== 'object') {
        bad = invalidArgument(`runs[${i}]`, r, 'a run { start, order }');
        break;
      }
      const size = 1 << r.order;
      if (!Number.isInteger(r.order) || r.order < 0 || r.order > this.maxOrder || !Number.isInteger(r.start) || r.start < 0 || r.start + size > this.numBlocks || (r.start & (size - 1)) !== 0 || (this.books.topOrder[r.start] as number) < r.order) {
        bad = invalidArgument(`runs[${i}]`, r, `an aligned run inside [0, ${this.numBlocks})`);
        break;
      }
      for (let j = r.start; j < r.start + size; j++) {
        if (a[j] !== 1) {
          for (let u = r.start; u < j; u++) a[u] = 1;
          bad = new KvmgrError('KVMGR_INVALID_STATE', `runs[${i}] block ${j} is not allocated (double free)`, { details: { block: j } });
          break;
        }
        a[j] = 2;
      }
      if (bad) break;
      marked++;
    }
    if (bad) {
      for (let u = 0; u < marked; u++) {
        const r = runs[u]!;
        a.fill(1, r.start, r.start + (1 << r.order));
      }
      throw bad;
    }
    for (const r of runs) this.books.release(r.start, r.order);
    this.ver++;
  }

  /**
   * Frees single blocks (e.g. a run's ids from {@link allocate}); they merge back into runs.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range; `KVMGR_INVALID_STATE`
   *   for a free block or one listed twice. Nothing changes on a throw.
   */
  free(blocks: ArrayLike<BlockId>): void {
    requireList('blocks', blocks);
    const a = this.books.allocated;
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i] as number;
      const inRange = Number.isInteger(b) && b >= 0 && b < this.numBlocks;
      if (!inRange || a[b] !== 1) {
        for (let j = 0; j < i; j++) a[blocks[j] as number] = 1;
        if (!inRange) throw invalidArgument(`blocks[${i}]`, b, `a block id in [0, ${this.numBlocks})`);
        throw new KvmgrError('KVMGR_INVALID_STATE', `blocks[${i}] = ${b} is not allocated (double free)`, { details: { block: b } });
      }
      a[b] = 2;
    }
    for (let i = 0; i < blocks.length; i++) this.books.release(blocks[i] as number, 0);
    this.ver++;
  }

  /**
   * True when the block is allocated.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id out of range.
   */
  isAllocated(block: BlockId): boolean {
    if (!Number.isInteger(block) || block < 0 || block >= this.numBlocks) throw invalidArgument('block', block, `a block id in [0, ${this.numBlocks})`);
    return this.books.allocated[block] === 1;
  }

  /**
   * Plans a compaction: the maximal allocated aligned runs, largest first, move to the lowest
   * free aligned slot below them, so free space merges into larger runs. Every run the caller
   * holds lies inside one moved unit, so it stays contiguous (its start shifts by the unit's
   * move). Destinations are free at planning time; sources are freed only when applied.
   *
   * @returns a plan; execute its moves with a backend, then {@link applyCompaction}.
   */
  planCompaction(): CompactionPlan {
    const cur = this.books;
    const n = this.numBlocks;
    const prefix = new Int32Array(n + 1);
    for (let i = 0; i < n; i++) prefix[i + 1] = (prefix[i] as number) + (cur.allocated[i] as number);
    const units: BlockRun[] = [];
    for (let p = 0; p < n; ) {
      if (cur.allocated[p] === 0) {
        p++;
        continue;
      }
      let k = cur.topOrder[p] as number;
      while ((p & ((1 << k) - 1)) !== 0 || (prefix[p + (1 << k)] as number) - (prefix[p] as number) !== 1 << k) k--;
      units.push({ start: p, order: k });
      p += 1 << k;
    }
    units.sort((x, y) => y.order - x.order || y.start - x.start);
    const next = new Books(n, cur);
    const moves: { from: BlockId; to: BlockId }[] = [];
    const vacated: BlockRun[] = [];
    for (const u of units) {
      let bestStart = u.start;
      let bestOrder = -1;
      for (let j = u.order; j <= next.maxOrder; j++) {
        for (let s = next.heads[j] as number; s !== -1; s = next.next[s] as number) {
          if (s < bestStart) {
            bestStart = s;
            bestOrder = j;
          }
        }
      }
      if (bestOrder < 0) continue;
      next.takeAt(bestStart, bestOrder, u.order);
      for (let i = 0; i < 1 << u.order; i++) moves.push({ from: u.start + i, to: bestStart + i });
      vacated.push(u);
    }
    for (const u of vacated) next.release(u.start, u.order);
    let tail = n;
    while (tail > 0 && next.allocated[tail - 1] === 0) tail--;
    const plan: CompactionPlan = { moves, droppedCached: [], version: this.ver, freeTailStart: tail };
    this.plans.set(plan, next);
    return plan;
  }

  /**
   * Applies a plan from {@link planCompaction} after its copies landed.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a plan this allocator did not make;
   *   `KVMGR_INVALID_STATE` when the allocator changed since planning (nothing changes).
   */
  applyCompaction(plan: CompactionPlan): void {
    const next = this.plans.get(plan);
    if (!next) throw invalidArgument('plan', 'foreign plan', 'a plan made by this allocator');
    if (plan.version !== this.ver) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `compaction plan was made for allocator version ${plan.version}, allocator is at ${this.ver}`, {
        details: { planVersion: plan.version, version: this.ver },
      });
    }
    this.books = next;
    this.plans.delete(plan);
    this.ver++;
  }

  /** A comparable dump: free runs by start, allocated ids. O(numBlocks). */
  state(): BuddyState {
    const freeRuns: BlockRun[] = [];
    const allocated: BlockId[] = [];
    for (let i = 0; i < this.numBlocks; i++) {
      const k = this.books.freeOrder[i] as number;
      if (k >= 0) freeRuns.push({ start: i, order: k });
      if (this.books.allocated[i] === 1) allocated.push(i);
    }
    return { freeRuns, allocated };
  }

  /**
   * Checks the invariants: free runs are aligned, disjoint, hold only unallocated blocks, cover
   * every unallocated block, no two free buddies are left unmerged, and the counts match.
   * @throws KvmgrError `KVMGR_VERIFY_FAILED` naming the first broken invariant.
   */
  verify(): void {
    const b = this.books;
    const fail = (m: string) => {
      throw new KvmgrError('KVMGR_VERIFY_FAILED', `BuddyAllocator: ${m}`);
    };
    const covered = new Uint8Array(this.numBlocks);
    let free = 0;
    for (let k = 0; k <= b.maxOrder; k++) {
      let c = 0;
      for (let s = b.heads[k] as number; s !== -1; s = b.next[s] as number) {
        c++;
        if (b.freeOrder[s] !== k) fail(`run ${s} in list ${k} has order ${b.freeOrder[s]}`);
        if ((s & ((1 << k) - 1)) !== 0) fail(`run ${s} of order ${k} is misaligned`);
        for (let i = s; i < s + (1 << k); i++) {
          if (covered[i] || b.allocated[i]) fail(`block ${i} is covered twice or allocated and free`);
          covered[i] = 1;
        }
        free += 1 << k;
        if (k < (b.topOrder[s] as number) && b.freeOrder[s ^ (1 << k)] === k) fail(`free buddies ${s} and ${s ^ (1 << k)} of order ${k} are not merged`);
      }
      if (c !== b.counts[k]) fail(`list ${k} holds ${c} runs, count says ${b.counts[k]}`);
    }
    for (let i = 0; i < this.numBlocks; i++) if (!covered[i] && b.allocated[i] !== 1) fail(`block ${i} is neither free nor allocated`);
    if (free !== b.freeBlocks) fail(`free blocks ${free}, counter says ${b.freeBlocks}`);
  }
}
