/**
 * The block keys of one request, computed incrementally as its tokens arrive (vLLM's
 * `request.block_hashes`, filled by the request's block hasher on every appended token).
 */
import { type BlockKeyNamespace, type BlockKeys, blockKeyRoot, chainBlockKey, invalidArgument } from '@kvmgr/core';

/** Extra-key digest that marks a block keyed by a trace key (never equal to a token block's key). */
const TRACE_KEY_EXTRA = 0x7472_6b31;

/**
 * Chained 64-bit keys (`@kvmgr/core` block-key) of a request's full blocks, seeded by its
 * namespace (model, LoRA, cache salt). Keys are appended as more tokens become known; earlier
 * keys never change.
 *
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_utils.py (`get_request_block_hasher`)
 */
export class BlockKeyChain {
  /** Tokens per block. */
  readonly blockSize: number;
  /** `[hi, lo]` of the namespace root (the parent of block 0). */
  readonly root: BlockKeys;
  private buf: BlockKeys;
  private n = 0;
  private readonly keyWords = new Uint32Array(2);

  /**
   * @param blockSize - tokens per block (a positive integer, checked by the caller).
   * @param namespace - model / LoRA / cache salt. @default {}
   */
  constructor(blockSize: number, namespace: BlockKeyNamespace = {}) {
    this.blockSize = blockSize;
    this.root = blockKeyRoot(namespace);
    this.buf = new Uint32Array(16);
  }

  /** Number of block keys computed so far. */
  get length(): number {
    return this.n;
  }

  /** The keys of blocks `[0, length)`, `[hi0, lo0, hi1, lo1, …]` (a view: read it, do not keep it). */
  get keys(): BlockKeys {
    return this.buf.subarray(0, 2 * this.n);
  }

  /**
   * Computes keys up to block `numBlocks` (exclusive).
   *
   * @param tokens - the request's token ids so far (prompt then output); not read for blocks
   *   below `traceKeys.length`.
   * @param numBlocks - blocks to key; each needs `blockSize` known tokens (or a trace key).
   * @param traceKeys - one u32 key per leading block when the content is known only by key (a
   *   trace): block `b < traceKeys.length` chains the parent key with `traceKeys[b]` (one word,
   *   no per-token work) instead of its tokens. @default none
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `tokens` holds fewer than
   *   `numBlocks × blockSize` tokens for the blocks past the trace keys.
   */
  extend(tokens: ArrayLike<number>, numBlocks: number, traceKeys?: ArrayLike<number>): void {
    if (numBlocks <= this.n) return;
    const bs = this.blockSize;
    const keyed = traceKeys === undefined ? 0 : traceKeys.length;
    if (numBlocks > keyed && tokens.length < numBlocks * bs) {
      throw invalidArgument('tokenIds.length', tokens.length, `at least ${numBlocks * bs} (${numBlocks} full blocks of ${bs})`);
    }
    if (this.buf.length < 2 * numBlocks) {
      const grown = new Uint32Array(Math.max(2 * numBlocks, 2 * this.buf.length));
      grown.set(this.buf.subarray(0, 2 * this.n));
      this.buf = grown;
    }
    for (let b = this.n; b < numBlocks; b++) {
      const ph = b === 0 ? (this.root[0] as number) : (this.buf[2 * b - 2] as number);
      const pl = b === 0 ? (this.root[1] as number) : (this.buf[2 * b - 1] as number);
      if (b < keyed) {
        const k = (traceKeys as ArrayLike<number>)[b] as number;
        if (!(Number.isSafeInteger(k) && k >= 0)) throw invalidArgument(`blockKeys[${b}]`, k, 'an integer in [0, 2^53)');
        const w = this.keyWords;
        w[0] = k >>> 0;
        w[1] = Math.floor(k / 4294967296);
        chainBlockKey(ph, pl, w, 0, 2, TRACE_KEY_EXTRA, this.buf, b);
      } else chainBlockKey(ph, pl, tokens, b * bs, (b + 1) * bs, 0, this.buf, b);
    }
    this.n = numBlocks;
  }

  /** High 32 bits of block `b`'s key (`b < length`). */
  hi(b: number): number {
    return this.buf[2 * b] as number;
  }

  /** Low 32 bits of block `b`'s key (`b < length`). */
  lo(b: number): number {
    return this.buf[2 * b + 1] as number;
  }
}
