/**
 * Host block copies against `Buffer.copy` of the same bytes (same ids, same sizes, same run), and
 * the allocation cost of a slab per block. Async copy throughput (libuv pool) is measured in setup
 * and written to the notes, because benchmark.js cases here are synchronous.
 */
import { createRng } from '@kvmgr/core';
import type { BenchSuite } from '../../bench/types.js';
import { createArena } from '../src/index.js';

const BPB = 64 * 1024;
const NUM_BLOCKS = 1024;
const BATCH = 64;

function distinctIds(seed: number, n: number, max: number): number[] {
  const rng = createRng(seed);
  const ids = Array.from({ length: max }, (_, i) => i);
  for (let i = max - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [ids[i], ids[j]] = [ids[j] as number, ids[i] as number];
  }
  return ids.slice(0, n);
}

async function asyncGBps(run: () => Promise<void>, bytes: number, iterations: number): Promise<number> {
  for (let i = 0; i < 10; i++) await run();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await run();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (bytes * iterations) / s / 1e9;
}

function syncGBps(run: () => void, bytes: number, iterations: number): number {
  for (let i = 0; i < 10; i++) run();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) run();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (bytes * iterations) / s / 1e9;
}

/**
 * Median over interleaved trials of (peer time / candidate time): both see the same machine load,
 * which matters on a shared box more than the absolute numbers.
 */
function interleavedRatio(peer: () => void, candidate: () => void, trials: number, reps: number): number {
  const ratios: number[] = [];
  const time = (fn: () => void): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) fn();
    return Number(process.hrtime.bigint() - t0);
  };
  for (let i = 0; i < 3; i++) {
    time(peer);
    time(candidate);
  }
  for (let t = 0; t < trials; t++) {
    const p = time(peer);
    const c = time(candidate);
    ratios.push(p / c);
  }
  ratios.sort((x, y) => x - y);
  return ratios[Math.floor(ratios.length / 2)] as number;
}

function usPerBlock(alloc: () => void, blocks: number, iterations: number): number {
  for (let i = 0; i < 5; i++) alloc();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) alloc();
  return Number(process.hrtime.bigint() - t0) / 1e3 / iterations / blocks;
}

/** Native host arena vs Buffer.copy and the TS fallback. */
export async function createSuite(): Promise<BenchSuite> {
  const src = distinctIds(1, BATCH, NUM_BLOCKS);
  const dst = distinctIds(2, BATCH, NUM_BLOCKS);
  const batch = { src: Uint32Array.from(src), dst: Uint32Array.from(dst) };
  const a = createArena({ backend: 'host', numBlocks: NUM_BLOCKS, bytesPerBlock: BPB });
  const b = createArena({ backend: 'host', numBlocks: NUM_BLOCKS, bytesPerBlock: BPB });
  const fa = createArena({ backend: 'ts-fallback', numBlocks: NUM_BLOCKS, bytesPerBlock: BPB });
  const fb = createArena({ backend: 'ts-fallback', numBlocks: NUM_BLOCKS, bytesPerBlock: BPB });
  const ba = Buffer.allocUnsafeSlow(NUM_BLOCKS * BPB);
  const bb = Buffer.allocUnsafeSlow(NUM_BLOCKS * BPB);
  // touch every page first so no case pays page faults
  for (const x of [new Uint8Array(a.buffer()), new Uint8Array(b.buffer()), new Uint8Array(fa.buffer()), new Uint8Array(fb.buffer()), ba, bb]) x.fill(1);

  const bufferCopy = (): void => {
    for (let i = 0; i < BATCH; i++) {
      const s = (src[i] as number) * BPB;
      ba.copy(bb, (dst[i] as number) * BPB, s, s + BPB);
    }
  };
  const nativeCopy = (): void => a.copyBlocksToSync(b, batch);
  const fallbackCopy = (): void => fa.copyBlocksToSync(fb, batch);
  const bytes = BATCH * BPB;

  // allocation: a 16 MiB slab of 1024 × 16 KiB blocks, allocated then freed
  const allocNative = (): void => createArena({ backend: 'host', numBlocks: 1024, bytesPerBlock: 16 * 1024 }).close();
  const allocNativeTouched = (): void => {
    const x = createArena({ backend: 'host', numBlocks: 1024, bytesPerBlock: 16 * 1024 });
    new Uint8Array(x.buffer()).fill(0);
    x.close();
  };
  const allocFallback = (): void => createArena({ backend: 'ts-fallback', numBlocks: 1024, bytesPerBlock: 16 * 1024 }).close();
  const allocBuffer = (): void => void Buffer.alloc(1024 * 16 * 1024);

  const notes: Record<string, number | string> = {
    batch: `${BATCH} scattered blocks × ${BPB / 1024} KiB (${bytes / 2 ** 20} MiB) between two ${(NUM_BLOCKS * BPB) / 2 ** 20} MiB slabs`,
    hugePages: String(a.hugePages),
    syncGBpsBufferCopy: syncGBps(bufferCopy, bytes, 200),
    syncGBpsHost: syncGBps(nativeCopy, bytes, 200),
    syncGBpsTsFallback: syncGBps(fallbackCopy, bytes, 200),
    asyncGBpsHost: await asyncGBps(() => a.copyBlocksTo(b, batch), bytes, 200),
    asyncGBpsTsFallback: await asyncGBps(() => fa.copyBlocksTo(fb, batch), bytes, 200),
    allocUsPerBlockHost: usPerBlock(allocNative, 1024, 200),
    allocUsPerBlockHostTouched: usPerBlock(allocNativeTouched, 1024, 50),
    allocUsPerBlockTsFallback: usPerBlock(allocFallback, 1024, 50),
    allocUsPerBlockBufferAlloc: usPerBlock(allocBuffer, 1024, 50),
  };
  notes.medianRatioHostVsBufferCopy = interleavedRatio(bufferCopy, nativeCopy, 41, 10);
  notes.medianRatioTsFallbackVsBufferCopy = interleavedRatio(bufferCopy, fallbackCopy, 41, 10);

  return {
    name: 'native',
    notes,
    cases: [
      { name: 'Buffer.copy 64 × 64 KiB (peer)', fn: bufferCopy },
      { name: 'host copyBlocksToSync 64 × 64 KiB', fn: nativeCopy, baseline: 'Buffer.copy 64 × 64 KiB (peer)' },
      { name: 'ts-fallback copyBlocksToSync 64 × 64 KiB', fn: fallbackCopy, baseline: 'Buffer.copy 64 × 64 KiB (peer)' },
      { name: 'Buffer.alloc 16 MiB (peer)', fn: allocBuffer },
      { name: 'host createArena+close 1024 × 16 KiB', fn: allocNative, baseline: 'Buffer.alloc 16 MiB (peer)' },
      { name: 'ts-fallback createArena+close 1024 × 16 KiB', fn: allocFallback, baseline: 'Buffer.alloc 16 MiB (peer)' },
    ],
  };
}
