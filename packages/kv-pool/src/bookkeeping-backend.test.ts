import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { BookkeepingBackend } from './bookkeeping-backend.js';

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    if (!isKvmgrError(e)) throw e;
    return e.code;
  }
}

describe('BookkeepingBackend', () => {
  it('copies tags with batch semantics and counts bytes', async () => {
    const be = new BookkeepingBackend();
    const gpu = be.createSlab('gpu', 4, 1024);
    const cpu = be.createSlab('cpu', 4, 1024);
    gpu.tags.set([10, 11, 12, 13]);
    // a swap inside one slab: both sources are read before either destination is written
    await be.copyBlocks(gpu, gpu, { src: [0, 1], dst: [1, 0] });
    expect(Array.from(gpu.tags)).toEqual([11, 10, 12, 13]);
    await be.copyBlocks(gpu, cpu, { src: Int32Array.of(2, 3), dst: Int32Array.of(0, 1) });
    expect(Array.from(cpu.tags)).toEqual([12, 13, 0, 0]);
    expect(be.stats).toEqual({ slabs: 2, liveSlabs: 2, slabBytes: 8192, copyBatches: 2, blocksCopied: 4, bytesCopied: 4096 });
  });

  it('rejects bad batches and released slabs without copying', async () => {
    const be = new BookkeepingBackend();
    const a = be.createSlab('gpu', 2, 64);
    const b = be.createSlab('cpu', 2, 128);
    a.tags.set([1, 2]);
    expect(await codeOf(be.copyBlocks(a, a, { src: [0], dst: [0, 1] }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(await codeOf(be.copyBlocks(a, a, { src: [0, 1], dst: [1, 1] }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(await codeOf(be.copyBlocks(a, a, { src: [2], dst: [0] }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(await codeOf(be.copyBlocks(a, b, { src: [0], dst: [0] }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(Array.from(a.tags)).toEqual([1, 2]);
    be.releaseSlab(a);
    expect(await codeOf(be.copyBlocks(a, a, { src: [0], dst: [1] }))).toBe('KVMGR_INVALID_STATE');
    expect(() => be.releaseSlab(a)).toThrow(/already released/);
    expect(be.stats.liveSlabs).toBe(1);
    expect(() => be.createSlab('tape' as never, 1, 1)).toThrow(/tier/);
  });
});
