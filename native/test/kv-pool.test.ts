/**
 * kv-pool integration: a `TieredPool` and a `BlockPool` compaction over `ArenaBlockBackend`, so
 * offload, reload, demotion and compaction move real bytes — on the host addon, on the TS
 * fallback, and on CUDA device memory through the fake runtime.
 */
import { type BlockId, createKVCacheSpec } from '@kvmgr/core';
import { BlockPool, TieredPool, runCompaction } from '@kvmgr/kv-pool';
import { afterAll, describe, expect, it } from 'vitest';
import { type ArenaBlockBackendOptions, ArenaBlockBackend, type DeviceArena } from '../src/index.js';
import { expectKvmgrError, pattern } from './conformance.js';
import { buildFake, removeFake, takeLog } from './fake-runtimes.js';

const cuda = buildFake('CUDA');
const savedCuda = process.env.KVMGR_CUDA_LIBRARY;
process.env.KVMGR_CUDA_LIBRARY = cuda.library;
afterAll(() => {
  removeFake(cuda);
  if (savedCuda === undefined) delete process.env.KVMGR_CUDA_LIBRARY;
  else process.env.KVMGR_CUDA_LIBRARY = savedCuda;
});

// 2 layers × 2 KV heads × head dim 8 × fp16 × K and V × 16 tokens = 2048 bytes per block
const spec = createKVCacheSpec({ numLayers: 2, numKvHeads: 2, headDim: 8, blockSize: 16 });

function same(slab: DeviceArena, block: BlockId, seed: number): boolean {
  return Buffer.from(slab.readBlock(block)).equals(Buffer.from(pattern(slab.bytesPerBlock, seed)));
}

const setups: [string, ArenaBlockBackendOptions, string][] = [
  ['host addon', { backend: 'host' }, 'host'],
  ['ts-fallback', { backend: 'ts-fallback' }, 'host'],
  ['cuda (fake runtime): gpu tier in device memory, cpu/disk pinned', { backend: 'cuda' }, 'device'],
];

for (const [label, options, gpuLocation] of setups) {
  describe(`TieredPool over ArenaBlockBackend: ${label}`, () => {
    it('offloads, demotes and reloads real bytes', async () => {
      const backend = new ArenaBlockBackend(options);
      const pool = new TieredPool({
        spec,
        tiers: { gpu: { capacityBlocks: 8 }, cpu: { capacityBlocks: 8 }, disk: { capacityBlocks: 32 } },
        backend,
        offloadWatermark: 1,
      });
      const gpu = pool.slab('gpu') as DeviceArena;
      const cpu = pool.slab('cpu') as DeviceArena;
      const disk = pool.slab('disk') as DeviceArena;
      expect([gpu.location, cpu.location, disk.location]).toEqual([gpuLocation, 'host', 'host']);
      expect(gpu.bytesPerBlock).toBe(spec.bytesPerBlock);
      expect(gpu.bytesPerBlock).toBe(2048);

      // Two rounds of 8 keys: round 2 pushes round 1 out of GPU, and out of CPU to disk.
      const keys: number[] = [];
      let t = 0;
      for (let round = 0; round < 2; round++) {
        const blocks = pool.allocate(8, t++);
        blocks.forEach((b, i) => {
          const key = 1000 + round * 8 + i;
          keys.push(key);
          gpu.writeBlock(b, pattern(gpu.bytesPerBlock, key));
          pool.cacheBlock(b, key);
        });
        pool.free(blocks, t++);
        expect(pool.offload(t++, 8)).toBe(8);
        // The next round reuses these GPU blocks: their offload must have landed first (as an
        // engine waits on the offload stream's event before overwriting).
        await pool.flush();
      }
      await pool.flush();
      pool.verify();
      expect(pool.stats.demotedBlocks).toBe(8);
      for (const [key, g, c, d] of pool.state().keys) {
        if (g >= 0) expect(same(gpu, g, key), `gpu copy of ${key}`).toBe(true);
        if (c >= 0) expect(same(cpu, c, key), `cpu copy of ${key}`).toBe(true);
        if (d >= 0) expect(same(disk, d, key), `disk copy of ${key}`).toBe(true);
      }
      // Evict every GPU copy by using the GPU for something else.
      const other = pool.allocate(8, t++);
      for (const b of other) gpu.writeBlock(b, new Uint8Array(gpu.bytesPerBlock).fill(0xee));
      pool.free(other, t++);
      const firstRound = keys.slice(0, 4);
      const secondRound = keys.slice(8, 12);
      expect(firstRound.map((k) => pool.lookup(k))).toEqual(['disk', 'disk', 'disk', 'disk']);
      expect(secondRound.map((k) => pool.lookup(k))).toEqual(['cpu', 'cpu', 'cpu', 'cpu']);
      const hit = pool.acquire([...firstRound, ...secondRound], t++);
      expect(hit).toMatchObject({ reloadedFromCpu: 4, reloadedFromDisk: 4, gpuHits: 0 });
      await pool.flush();
      hit.blocks.forEach((b, i) => {
        expect(same(gpu, b, [...firstRound, ...secondRound][i] as number)).toBe(true);
      });
      pool.verify();
      expect(backend.stats.copiedBlocks).toBe(pool.stats.offloadedBlocks + pool.stats.demotedBlocks + pool.stats.reloadedBlocks);
      for (const tier of ['gpu', 'cpu', 'disk'] as const) backend.releaseSlab(pool.slab(tier) as DeviceArena);
      expect(backend.stats).toMatchObject({ liveSlabs: 0, liveBytes: 0 });
      await expectKvmgrError(() => backend.releaseSlab(gpu), 'KVMGR_INVALID_STATE');
      await expectKvmgrError(() => backend.copyBlocks(gpu, cpu, { src: [0], dst: [0] }), 'KVMGR_INVALID_STATE');
    });

    it('executes a BlockPool compaction plan in place', async () => {
      const backend = new ArenaBlockBackend(options);
      const pool = new BlockPool({ spec, numBlocks: 16, tier: 'gpu' });
      const slab = backend.createSlab('gpu', pool.numBlocks, pool.bytesPerBlock);
      const blocks = pool.allocate(16);
      for (const b of blocks) slab.writeBlock(b, pattern(slab.bytesPerBlock, 500 + b));
      // keep every third block: the rest is free, leaving holes
      const freed = blocks.filter((b) => b % 3 !== 0);
      pool.free(freed);
      const live = blocks.filter((b) => b % 3 === 0);
      const plan = await runCompaction(pool, backend, slab);
      expect(plan.moves.length).toBeGreaterThan(0);
      expect(plan.freeTailStart).toBe(live.length);
      const where = new Map(live.map((b) => [b, b]));
      for (const m of plan.moves) where.set(m.from, m.to);
      for (const b of live) expect(same(slab, where.get(b) as number, 500 + b), `block ${b} → ${where.get(b)}`).toBe(true);
      expect(pool.numUsedBlocks).toBe(live.length);
      backend.releaseSlab(slab);
    });
  });
}

describe('ArenaBlockBackend on the fake CUDA runtime', () => {
  it('moves offloads as D2H and reloads as H2D, one batch per plan', async () => {
    const backend = new ArenaBlockBackend({ backend: 'cuda' });
    expect(backend.name).toBe('cuda');
    const pool = new TieredPool({ spec, tiers: { gpu: { capacityBlocks: 4 }, cpu: { capacityBlocks: 8 } }, backend, offloadWatermark: 1 });
    const gpu = pool.slab('gpu') as DeviceArena;
    const blocks = pool.allocate(4, 0);
    blocks.forEach((b, i) => {
      pool.cacheBlock(b, 7 + i);
    });
    pool.free(blocks, 1);
    takeLog(cuda);
    pool.offload(2, 4);
    await pool.flush();
    const offload = takeLog(cuda).filter((c) => c.fn === 'cudaMemcpyAsync');
    expect(offload.map((c) => c.args.kind)).toEqual(offload.map(() => 'D2H'));
    expect(offload.reduce((s, c) => s + Number(c.args.bytes), 0)).toBe(4 * gpu.bytesPerBlock);
    pool.free(pool.allocate(4, 3), 4); // evict the GPU copies
    pool.acquire([7, 8], 5);
    await pool.flush();
    const reload = takeLog(cuda).filter((c) => c.fn === 'cudaMemcpyAsync');
    expect(reload.map((c) => c.args.kind)).toEqual(reload.map(() => 'H2D'));
    expect(reload.reduce((s, c) => s + Number(c.args.bytes), 0)).toBe(2 * gpu.bytesPerBlock);
    for (const tier of ['gpu', 'cpu'] as const) backend.releaseSlab(pool.slab(tier) as DeviceArena);
  });

  it('rejects a slab of zero blocks and an unknown tier', async () => {
    const backend = new ArenaBlockBackend({ backend: 'host' });
    await expectKvmgrError(() => backend.createSlab('gpu', 0, 64), 'KVMGR_INVALID_ARGUMENT');
    await expectKvmgrError(() => backend.createSlab('hbm' as 'gpu', 4, 64), 'KVMGR_INVALID_ARGUMENT');
    await expectKvmgrError(() => new ArenaBlockBackend({ locations: { gpu: 'vram' as 'device' } }), 'KVMGR_INVALID_ARGUMENT');
    // slabs of another backend (kv-pool's bookkeeping slabs) are refused, not crashed on
    const foreign = { tier: 'gpu', numBlocks: 4, bytesPerBlock: 64 } as unknown as DeviceArena;
    const mine = backend.createSlab('gpu', 4, 64);
    await expectKvmgrError(() => backend.copyBlocks(foreign, mine, { src: [0], dst: [0] }), 'KVMGR_INVALID_ARGUMENT');
    await expectKvmgrError(() => backend.copyBlocks(mine, foreign, { src: [0], dst: [0] }), 'KVMGR_INVALID_ARGUMENT');
    await expectKvmgrError(() => backend.releaseSlab(foreign), 'KVMGR_INVALID_ARGUMENT');
    backend.releaseSlab(mine);
  });
});
