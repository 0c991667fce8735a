/**
 * The pure-TS fallback: one `ArrayBuffer` per slab. Used when the addon cannot be built or
 * loaded; same contract as the native arenas, host memory only.
 */
import type { BlockCopyBatch, BlockId, Tier } from '@kvmgr/core';
import { checkBatch, requireBlockId, requireBytes, requireOpen, requireRange, stagedCopy } from './checks.js';
import type { DeviceArena } from './device-arena.js';

/** {@link DeviceArena} over an `ArrayBuffer`. Create through `createArena({ backend: 'ts-fallback' })`. */
export class TsFallbackArena implements DeviceArena {
  readonly backend = 'ts-fallback' as const;
  readonly location = 'host' as const;
  readonly device = 0;
  readonly tier: Tier;
  readonly numBlocks: number;
  readonly bytesPerBlock: number;
  readonly byteLength: number;
  readonly hugePages = false;
  readonly locked = false;
  private slab: ArrayBuffer | undefined;
  private bytes: Uint8Array;

  /** @internal sizes are validated by `createArena`. */
  constructor(numBlocks: number, bytesPerBlock: number, tier: Tier) {
    this.numBlocks = numBlocks;
    this.bytesPerBlock = bytesPerBlock;
    this.byteLength = numBlocks * bytesPerBlock;
    this.tier = tier;
    this.slab = new ArrayBuffer(this.byteLength);
    this.bytes = new Uint8Array(this.slab);
  }

  get closed(): boolean {
    return this.slab === undefined;
  }

  blockOffset(id: BlockId): number {
    requireOpen(this, 'blockOffset');
    return requireBlockId('id', id, this.numBlocks) * this.bytesPerBlock;
  }

  buffer(): ArrayBuffer {
    requireOpen(this, 'buffer');
    return this.slab as ArrayBuffer;
  }

  blockView(id: BlockId): Uint8Array {
    requireOpen(this, 'blockView');
    requireBlockId('id', id, this.numBlocks);
    return new Uint8Array(this.slab as ArrayBuffer, id * this.bytesPerBlock, this.bytesPerBlock);
  }

  writeBlock(id: BlockId, data: Uint8Array, byteOffset = 0): void {
    requireOpen(this, 'writeBlock');
    requireBlockId('id', id, this.numBlocks);
    requireBytes('data', data);
    requireRange(byteOffset, data.length, this.bytesPerBlock);
    this.bytes.set(data, id * this.bytesPerBlock + byteOffset);
  }

  readBlock(id: BlockId, into?: Uint8Array, byteOffset = 0): Uint8Array {
    requireOpen(this, 'readBlock');
    requireBlockId('id', id, this.numBlocks);
    const out = into === undefined ? new Uint8Array(this.bytesPerBlock - (Number.isInteger(byteOffset) && byteOffset > 0 ? byteOffset : 0)) : requireBytes('into', into);
    requireRange(byteOffset, out.length, this.bytesPerBlock);
    const start = id * this.bytesPerBlock + byteOffset;
    out.set(this.bytes.subarray(start, start + out.length));
    return out;
  }

  copyBlocksTo(target: DeviceArena, batch: BlockCopyBatch): Promise<void> {
    try {
      this.copyBlocksToSync(target, batch);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  copyBlocksToSync(target: DeviceArena, batch: BlockCopyBatch): void {
    const { src, dst, needsStaging } = checkBatch(this, target, batch);
    if (!(target instanceof TsFallbackArena) || needsStaging) {
      stagedCopy(this, target, src, dst);
      return;
    }
    const bpb = this.bytesPerBlock;
    const from = this.bytes;
    const to = target.bytes;
    for (let i = 0; i < src.length; i++) {
      const s = (src[i] as number) * bpb;
      to.set(from.subarray(s, s + bpb), (dst[i] as number) * bpb);
    }
  }

  close(): void {
    if (this.slab === undefined) return;
    // Detach like the native arena does, so old views cannot keep reading.
    const old = this.slab;
    this.slab = undefined;
    this.bytes = new Uint8Array(0);
    // Transferring detaches `old` (byteLength 0) without copying; the clone is dropped at once.
    structuredClone(old, { transfer: [old] });
  }
}
