/**
 * Dynamo's KV-router block hashes, opt-in: a block's local hash is XXH3-64 with seed 1337 over its
 * token ids as u32 little-endian bytes (not chained); the sequence hash chains them:
 * `seq_0 = local_0`, `seq_i = XXH3-64(seed 1337, seq_{i-1} as u64 LE ‖ local_i as u64 LE)`.
 * LoRA / namespace seeds and multimodal hashes of newer Dynamo are not covered.
 *
 * @see ai-dynamo/dynamo:lib/llm/src/kv_router/protocols.rs (compute_block_hash_for_seq, compute_seq_hash_for_block)
 */
import { requirePositiveInt } from '@kvmgr/core';
import { type IHasher, createXXHash3 } from 'hash-wasm';

/** Dynamo's `XXH3_SEED`. */
export const DYNAMO_XXH3_SEED = 1337;

/** Dynamo's block hashes; created with {@link DynamoBlockHasher.create} (loads the WASM hasher once). */
export class DynamoBlockHasher {
  private readonly h: IHasher;
  private readonly pair = Buffer.alloc(16);

  private constructor(h: IHasher) {
    this.h = h;
  }

  /** Loads the XXH3 hasher (WASM), seeded with 1337. */
  static async create(): Promise<DynamoBlockHasher> {
    return new DynamoBlockHasher(await createXXHash3(DYNAMO_XXH3_SEED, 0));
  }

  private digest(bytes: Uint8Array): bigint {
    this.h.init();
    this.h.update(bytes);
    return BigInt(`0x${this.h.digest('hex')}`);
  }

  /** A block's local hash: XXH3-64(seed 1337) of its token ids as u32 LE. */
  localBlockHash(tokenIds: ArrayLike<number>): bigint {
    const buf = Buffer.allocUnsafe(4 * tokenIds.length);
    for (let i = 0; i < tokenIds.length; i++) buf.writeUInt32LE((tokenIds[i] as number) >>> 0, 4 * i);
    return this.digest(buf);
  }

  /** The next sequence hash from the parent sequence hash and the block's local hash. */
  nextSequenceHash(parent: bigint, local: bigint): bigint {
    this.pair.writeBigUInt64LE(parent, 0);
    this.pair.writeBigUInt64LE(local, 8);
    return this.digest(this.pair);
  }

  /**
   * Local and sequence hashes of every full block.
   *
   * @param tokenIds - token ids.
   * @param blockSize - tokens per block (≥ 1); a trailing partial block gets none.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad block size.
   */
  blockHashes(tokenIds: ArrayLike<number>, blockSize: number): { local: bigint[]; sequence: bigint[] } {
    requirePositiveInt('blockSize', blockSize);
    const local: bigint[] = [];
    const sequence: bigint[] = [];
    for (let b = 0; (b + 1) * blockSize <= tokenIds.length; b++) {
      const l = this.localBlockHash(Array.prototype.slice.call(tokenIds, b * blockSize, (b + 1) * blockSize) as number[]);
      local.push(l);
      sequence.push(b === 0 ? l : this.nextSequenceHash(sequence[b - 1] as bigint, l));
    }
    return { local, sequence };
  }
}
