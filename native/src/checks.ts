/** Argument checks shared by the arena implementations (all throw `KvmgrError`). */
import { type BlockCopyBatch, KvmgrError, invalidArgument } from '@kvmgr/core';
import type { DeviceArena } from './device-arena.js';

/** Throws `KVMGR_INVALID_STATE` when the arena is closed. */
export function requireOpen(arena: DeviceArena, op: string): void {
  if (arena.closed) {
    throw new KvmgrError('KVMGR_INVALID_STATE', `${op}: the ${arena.backend} arena is closed`, { details: { backend: arena.backend, op } });
  }
}

/** Throws `KVMGR_INVALID_ARGUMENT` unless `id` is an integer in `[0, numBlocks)`. */
export function requireBlockId(field: string, id: unknown, numBlocks: number): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= numBlocks) {
    throw invalidArgument(field, id, `a block id in [0, ${numBlocks})`);
  }
  return id;
}

/** Checks a byte range `[byteOffset, byteOffset + length)` inside one block. */
export function requireRange(byteOffset: unknown, length: number, bytesPerBlock: number): number {
  if (typeof byteOffset !== 'number' || !Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset > bytesPerBlock) {
    throw invalidArgument('byteOffset', byteOffset, `an integer in [0, ${bytesPerBlock}]`);
  }
  if (byteOffset + length > bytesPerBlock) {
    throw invalidArgument('data.length', length, `at most ${bytesPerBlock - byteOffset} bytes (bytesPerBlock ${bytesPerBlock} - byteOffset ${byteOffset})`);
  }
  return byteOffset;
}

/** Throws `KVMGR_INVALID_ARGUMENT` unless `value` is a `Uint8Array`. */
export function requireBytes(field: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalidArgument(field, value, 'a Uint8Array');
  return value;
}

/** A validated copy batch. */
export interface CheckedBatch {
  readonly src: Uint32Array;
  readonly dst: Uint32Array;
  /** Same slab and some destination is also a source: copy through a staging buffer. */
  readonly needsStaging: boolean;
}

/**
 * Validates a copy batch between two arenas and returns its ids as `Uint32Array`s. Semantics (as
 * kv-pool's bookkeeping backend): all sources are read before any destination is written, and a
 * destination may appear only once.
 * @throws KvmgrError `KVMGR_INVALID_STATE` (closed) / `KVMGR_INVALID_ARGUMENT` (shape, ids,
 *   repeated destination, block sizes differ).
 */
export function checkBatch(from: DeviceArena, to: DeviceArena, batch: BlockCopyBatch): CheckedBatch {
  requireOpen(from, 'copyBlocks (source)');
  requireOpen(to, 'copyBlocks (target)');
  if (typeof batch !== 'object' || batch === null || batch.src == null || batch.dst == null) {
    throw invalidArgument('batch', batch, 'an object { src, dst } of block id arrays');
  }
  const { src, dst } = batch;
  if (typeof src.length !== 'number' || typeof dst.length !== 'number' || src.length !== dst.length) {
    throw invalidArgument('batch.dst.length', dst.length, `the same length as batch.src (${src.length})`);
  }
  if (from.bytesPerBlock !== to.bytesPerBlock) {
    throw invalidArgument('target.bytesPerBlock', to.bytesPerBlock, `equal to the source's bytesPerBlock ${from.bytesPerBlock}`);
  }
  const n = src.length;
  const s = new Uint32Array(n);
  const d = new Uint32Array(n);
  // 1: a destination, 2: also a source (same slab)
  const mark = new Uint8Array(to.numBlocks);
  for (let i = 0; i < n; i++) {
    s[i] = requireBlockId(`batch.src[${i}]`, src[i], from.numBlocks);
    const b = requireBlockId(`batch.dst[${i}]`, dst[i], to.numBlocks);
    if (mark[b] === 1) throw invalidArgument(`batch.dst[${i}]`, b, 'a destination not listed twice');
    mark[b] = 1;
    d[i] = b;
  }
  let needsStaging = false;
  if (from === to) {
    for (let i = 0; i < n && !needsStaging; i++) needsStaging = mark[s[i] as number] === 1;
  }
  return { src: s, dst: d, needsStaging };
}

/**
 * Copies a validated batch through host memory: reads every source first, then writes every
 * destination. Works between any two arenas (fallback ↔ native, CUDA ↔ ROCm) and for batches
 * whose destinations overlap their sources. Synchronous; the slow path.
 */
export function stagedCopy(from: DeviceArena, to: DeviceArena, src: Uint32Array, dst: Uint32Array): void {
  const bpb = from.bytesPerBlock;
  const stage = new Uint8Array(src.length * bpb);
  for (let i = 0; i < src.length; i++) from.readBlock(src[i] as number, stage.subarray(i * bpb, (i + 1) * bpb));
  for (let i = 0; i < dst.length; i++) to.writeBlock(dst[i] as number, stage.subarray(i * bpb, (i + 1) * bpb));
}
