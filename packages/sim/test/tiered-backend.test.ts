import { createKVCacheSpec } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { TieredKvBackend } from '../src/index.js';

const spec = createKVCacheSpec({ blockSize: 16, numLayers: 32, numKvHeads: 8, headDim: 128 });

describe('TieredKvBackend.reload', () => {
  it('a key no tier holds any more (dropped since the prefix was matched) is computed, not reloaded: -1 and nothing changes', () => {
    const kv = new TieredKvBackend({ spec, gpuBlocks: 8, cpuBlocks: 2 });
    const blocks: number[] = [];
    expect(kv.allocate(2, blocks)).toBe(true);
    expect(kv.commit(11, blocks[0] as number)).toBe(true);
    expect(kv.commit(12, blocks[1] as number)).toBe(true);
    kv.release(blocks, 0);
    const free = kv.freeBlocks;
    const out: number[] = [];
    // key 12 is cached; key 99 never was (or was dropped): the whole reload is refused
    expect(kv.reload(Float64Array.of(12, 99), 0, 2, out)).toBe(-1);
    expect(out).toEqual([]);
    expect(kv.freeBlocks).toBe(free);
  });
});
