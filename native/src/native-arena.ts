/** An arena whose slab is allocated by the C++ addon (host, CUDA, ROCm or Ascend memory). */
import type { BlockCopyBatch, BlockId, Tier } from '@kvmgr/core';
import type { NativeArena } from './addon.js';
import type { BackendName } from './backends.js';
import { type CheckedBatch, checkBatch, requireBlockId, requireBytes, requireOpen, requireRange, stagedCopy } from './checks.js';
import type { ArenaLocation, DeviceArena } from './device-arena.js';
import { native, toKvmgrError } from './native-error.js';

/** {@link DeviceArena} over a native slab. Create through `createArena`. */
export class NativeDeviceArena implements DeviceArena {
  readonly backend: BackendName;
  readonly location: ArenaLocation;
  readonly device: number;
  readonly tier: Tier;
  readonly numBlocks: number;
  readonly bytesPerBlock: number;
  readonly byteLength: number;
  readonly hugePages: boolean;
  readonly locked: boolean;
  /** Runtime library the slab came from (`''` for host). */
  readonly library: string;
  /** @internal the C++ object. */
  readonly handle: NativeArena;
  /** Settles when every async copy issued so far that touches this arena has landed. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Async copies issued and not yet settled that touch this arena. */
  private pending = 0;

  /** @internal */
  constructor(handle: NativeArena, tier: Tier) {
    const info = handle.info();
    this.handle = handle;
    this.backend = info.backend as BackendName;
    this.location = info.location;
    this.device = info.device;
    this.tier = tier;
    this.numBlocks = info.numBlocks;
    this.bytesPerBlock = info.bytesPerBlock;
    this.byteLength = info.numBlocks * info.bytesPerBlock;
    this.hugePages = info.hugePages;
    this.locked = info.locked;
    this.library = info.library;
  }

  get closed(): boolean {
    return this.handle.closed;
  }

  blockOffset(id: BlockId): number {
    requireOpen(this, 'blockOffset');
    return requireBlockId('id', id, this.numBlocks) * this.bytesPerBlock;
  }

  buffer(): ArrayBuffer {
    requireOpen(this, 'buffer');
    return native(() => this.handle.buffer());
  }

  blockView(id: BlockId): Uint8Array {
    requireOpen(this, 'blockView');
    requireBlockId('id', id, this.numBlocks);
    return new Uint8Array(this.buffer(), id * this.bytesPerBlock, this.bytesPerBlock);
  }

  writeBlock(id: BlockId, data: Uint8Array, byteOffset = 0): void {
    requireOpen(this, 'writeBlock');
    requireBlockId('id', id, this.numBlocks);
    requireBytes('data', data);
    requireRange(byteOffset, data.length, this.bytesPerBlock);
    native(() => this.handle.write(id, data, byteOffset));
  }

  readBlock(id: BlockId, into?: Uint8Array, byteOffset = 0): Uint8Array {
    requireOpen(this, 'readBlock');
    requireBlockId('id', id, this.numBlocks);
    const out = into === undefined ? new Uint8Array(this.bytesPerBlock - (Number.isInteger(byteOffset) && byteOffset > 0 ? byteOffset : 0)) : requireBytes('into', into);
    requireRange(byteOffset, out.length, this.bytesPerBlock);
    native(() => this.handle.read(id, out, byteOffset));
    return out;
  }

  copyBlocksTo(target: DeviceArena, batch: BlockCopyBatch): Promise<void> {
    let ids: CheckedBatch;
    try {
      ids = checkBatch(this, target, batch);
    } catch (e) {
      return Promise.reject(e);
    }
    if (ids.needsStaging || !this.nativePeer(target)) {
      // The slow path runs at once, like the fallback; it waits for nothing in flight.
      try {
        stagedCopy(this, target, ids.src, ids.dst);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e);
      }
    }
    // Copies touching an arena run in issue order, like work on one stream. With nothing in
    // flight on either arena the batch goes to the addon at once (no extra microtask).
    const start = (): Promise<void> => this.handle.copyTo(target.handle, ids.src, ids.dst);
    let run: Promise<void>;
    if (this.pending === 0 && target.pending === 0) {
      try {
        run = start();
      } catch (e) {
        return Promise.reject(toKvmgrError(e));
      }
    } else {
      run = (target === this ? this.tail : Promise.all([this.tail, target.tail])).then(start);
    }
    this.pending++;
    if (target !== this) target.pending++;
    const done = (): void => {
      this.pending--;
      if (target !== this) target.pending--;
    };
    const settled = run.then(done, done);
    this.tail = settled;
    target.tail = settled;
    return run.catch((e: unknown) => {
      throw toKvmgrError(e);
    });
  }

  copyBlocksToSync(target: DeviceArena, batch: BlockCopyBatch): void {
    const ids = checkBatch(this, target, batch);
    if (ids.needsStaging || !this.nativePeer(target)) {
      stagedCopy(this, target, ids.src, ids.dst);
      return;
    }
    native(() => this.handle.copyToSync(target.handle, ids.src, ids.dst));
  }

  close(): void {
    this.handle.close();
  }

  /** A target the addon can copy to directly: native, and not device memory of another runtime. */
  private nativePeer(target: DeviceArena): target is NativeDeviceArena {
    if (!(target instanceof NativeDeviceArena)) return false;
    if (this.location === 'device' && target.location === 'device') return this.backend === target.backend;
    return true;
  }
}
