/**
 * The pure-TS {@link BlockBackend}: no memory behind the blocks, only counts, plus one 64-bit
 * content tag per block so tests can check that copies move the right content where it belongs.
 * `@kvmgr/native` implements the same interface with real memory.
 */
import type { BlockBackend, BlockCopyBatch, BlockSlab, Tier } from '@kvmgr/core';
import { KvmgrError, invalidArgument, requireNonNegativeInt, requirePositiveInt } from '@kvmgr/core';

/** A slab of the bookkeeping backend: a tag per block instead of bytes. */
export interface BookkeepingSlab extends BlockSlab {
  /** Content tag per block (0 = never written); `copyBlocks` moves tags. */
  readonly tags: Float64Array;
  /** False after `releaseSlab`. */
  readonly live: boolean;
}

/** Counters of a {@link BookkeepingBackend}. */
export interface BookkeepingStats {
  readonly slabs: number;
  readonly liveSlabs: number;
  /** Bytes of live slabs. */
  readonly slabBytes: number;
  readonly copyBatches: number;
  readonly blocksCopied: number;
  readonly bytesCopied: number;
}

interface MutableSlab {
  readonly tier: Tier;
  readonly numBlocks: number;
  readonly bytesPerBlock: number;
  readonly tags: Float64Array;
  live: boolean;
}

/**
 * A {@link BlockBackend} that keeps books only. `copyBlocks` validates the batch like a real
 * backend (ids in range, equal lengths, equal block sizes, live slabs), copies tags with batch
 * semantics (all sources are read before any destination is written) and resolves at once.
 *
 * @example
 * ```ts
 * const backend = new BookkeepingBackend();
 * const gpu = backend.createSlab('gpu', 1024, spec.bytesPerBlock);
 * gpu.tags[3] = 42;
 * await backend.copyBlocks(gpu, gpu, { src: [3], dst: [7] }); // gpu.tags[7] === 42
 * ```
 */
export class BookkeepingBackend implements BlockBackend<BookkeepingSlab> {
  /** Backend name. */
  readonly name = 'bookkeeping';
  private slabs = 0;
  private liveSlabs = 0;
  private slabBytes = 0;
  private batches = 0;
  private blocks = 0;
  private bytes = 0;

  /**
   * Creates a slab of `numBlocks` blocks of `bytesPerBlock` bytes (no memory is reserved).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown tier or a non-positive count.
   */
  createSlab(tier: Tier, numBlocks: number, bytesPerBlock: number): BookkeepingSlab {
    if (tier !== 'gpu' && tier !== 'cpu' && tier !== 'disk') throw invalidArgument('tier', tier, "'gpu', 'cpu' or 'disk'");
    requireNonNegativeInt('numBlocks', numBlocks);
    requirePositiveInt('bytesPerBlock', bytesPerBlock);
    const slab: MutableSlab = { tier, numBlocks, bytesPerBlock, tags: new Float64Array(numBlocks), live: true };
    this.slabs++;
    this.liveSlabs++;
    this.slabBytes += numBlocks * bytesPerBlock;
    return slab;
  }

  /**
   * Copies `batch.src[i]` of `from` to `batch.dst[i]` of `to` (tags), all sources read first.
   * @returns a promise resolved once the copy is done (at once here).
   * @throws KvmgrError (as a rejected promise) `KVMGR_INVALID_ARGUMENT` for unequal lengths, ids
   *   out of range, a destination listed twice or slabs of different block sizes;
   *   `KVMGR_INVALID_STATE` for a released slab. Nothing is copied on an error.
   */
  copyBlocks(from: BookkeepingSlab, to: BookkeepingSlab, batch: BlockCopyBatch): Promise<void> {
    try {
      this.copyNow(from, to, batch);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private copyNow(from: BookkeepingSlab, to: BookkeepingSlab, batch: BlockCopyBatch): void {
    if (!from.live || !to.live) throw new KvmgrError('KVMGR_INVALID_STATE', `copyBlocks: the ${from.live ? 'destination' : 'source'} slab was released`);
    if (from.bytesPerBlock !== to.bytesPerBlock) {
      throw invalidArgument('to.bytesPerBlock', to.bytesPerBlock, `equal to the source's ${from.bytesPerBlock} bytes per block`);
    }
    const { src, dst } = batch;
    if (src.length !== dst.length) throw invalidArgument('batch.dst.length', dst.length, `equal to batch.src.length (${src.length})`);
    const seen = new Set<number>();
    for (let i = 0; i < src.length; i++) {
      const s = src[i] as number;
      const d = dst[i] as number;
      if (!Number.isInteger(s) || s < 0 || s >= from.numBlocks) throw invalidArgument(`batch.src[${i}]`, s, `a block id in [0, ${from.numBlocks})`);
      if (!Number.isInteger(d) || d < 0 || d >= to.numBlocks) throw invalidArgument(`batch.dst[${i}]`, d, `a block id in [0, ${to.numBlocks})`);
      if (seen.has(d)) throw invalidArgument(`batch.dst[${i}]`, d, 'a destination not listed twice');
      seen.add(d);
    }
    const values = new Float64Array(src.length);
    for (let i = 0; i < src.length; i++) values[i] = from.tags[src[i] as number] as number;
    for (let i = 0; i < dst.length; i++) to.tags[dst[i] as number] = values[i] as number;
    this.batches++;
    this.blocks += src.length;
    this.bytes += src.length * from.bytesPerBlock;
  }

  /**
   * Releases a slab; later copies with it reject with `KVMGR_INVALID_STATE`.
   * @throws KvmgrError `KVMGR_INVALID_STATE` when already released.
   */
  releaseSlab(slab: BookkeepingSlab): void {
    const s = slab as MutableSlab;
    if (!s.live) throw new KvmgrError('KVMGR_INVALID_STATE', 'releaseSlab: the slab was already released');
    s.live = false;
    this.liveSlabs--;
    this.slabBytes -= s.numBlocks * s.bytesPerBlock;
  }

  /** Counters: slabs, bytes and copies so far. */
  get stats(): BookkeepingStats {
    return {
      slabs: this.slabs,
      liveSlabs: this.liveSlabs,
      slabBytes: this.slabBytes,
      copyBatches: this.batches,
      blocksCopied: this.blocks,
      bytesCopied: this.bytes,
    };
  }
}
