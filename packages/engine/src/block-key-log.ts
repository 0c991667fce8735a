/**
 * The GPU KV events of a `KvCacheManager` in compact form: one entry per stored or removed
 * block (and one per reset), the block key as its two u32 words and the block's index in its
 * sequence, in the order of the `KvEvent` stream. For drivers that feed a block index in the same process (the simulator's router): no
 * bigint, no event object, no token ids per block.
 */

/** A block entered the prefix cache (one entry per block of a `BlockStored` event). */
export const BLOCK_KEY_STORED = 0;
/** A block left the prefix cache (a `BlockRemoved` event). */
export const BLOCK_KEY_REMOVED = 1;
/** Every cached block was dropped (`AllBlocksCleared`); the key words are 0, the position -1. */
export const BLOCK_KEYS_CLEARED = 2;

/** Kind of a {@link BlockKeyLog} entry: {@link BLOCK_KEY_STORED}, {@link BLOCK_KEY_REMOVED} or {@link BLOCK_KEYS_CLEARED}. */
export type BlockKeyEventKind = typeof BLOCK_KEY_STORED | typeof BLOCK_KEY_REMOVED | typeof BLOCK_KEYS_CLEARED;

/**
 * Append-only list of (kind, hi, lo, position) entries on typed arrays (it doubles when full), read by index
 * and cleared by its owner.
 *
 * @example
 * ```ts
 * const log = new BlockKeyLog();
 * kv.onBlockKey = (kind, hi, lo, position) => log.push(kind, hi, lo, position);
 * // … after a step:
 * for (let i = 0; i < log.length; i++) if (log.kind(i) === BLOCK_KEY_STORED) index.store(log.hi(i), log.lo(i));
 * log.clear();
 * ```
 */
export class BlockKeyLog {
  private kinds: Uint8Array;
  private words: Uint32Array;
  private positions: Int32Array;
  private n = 0;

  /** @param initialCapacity - entries held before the first resize (a positive integer). @default 256 */
  constructor(initialCapacity = 256) {
    this.kinds = new Uint8Array(initialCapacity);
    this.words = new Uint32Array(2 * initialCapacity);
    this.positions = new Int32Array(initialCapacity);
  }

  /** Number of entries. */
  get length(): number {
    return this.n;
  }

  /** Appends an entry; `hi` / `lo` are the block key's u32 words, `position` the block's index in its sequence (-1 for a reset). */
  push(kind: BlockKeyEventKind, hi: number, lo: number, position: number): void {
    if (this.n === this.kinds.length) {
      const k = new Uint8Array(2 * this.n);
      k.set(this.kinds);
      this.kinds = k;
      const w = new Uint32Array(4 * this.n);
      w.set(this.words);
      this.words = w;
      const p = new Int32Array(2 * this.n);
      p.set(this.positions);
      this.positions = p;
    }
    this.kinds[this.n] = kind;
    this.words[2 * this.n] = hi;
    this.words[2 * this.n + 1] = lo;
    this.positions[this.n] = position;
    this.n++;
  }

  /** Kind of entry `i` (0 ≤ i < length). */
  kind(i: number): BlockKeyEventKind {
    return this.kinds[i] as BlockKeyEventKind;
  }

  /** High u32 word of entry `i`'s block key. */
  hi(i: number): number {
    return this.words[2 * i] as number;
  }

  /** Low u32 word of entry `i`'s block key. */
  lo(i: number): number {
    return this.words[2 * i + 1] as number;
  }

  /** Index of entry `i`'s block in its sequence (0 = the first block; -1 for a reset). */
  position(i: number): number {
    return this.positions[i] as number;
  }

  /** Drops every entry (keeps the arrays). */
  clear(): void {
    this.n = 0;
  }
}
