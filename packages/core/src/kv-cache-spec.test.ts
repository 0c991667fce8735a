import { describe, expect, it } from 'vitest';
import { isKvmgrError } from './errors.js';
import { blocksForTokens, createKVCacheSchema, createKVCacheSpec } from './kv-cache-spec.js';
import { GiB, MiB } from './units.js';

const llama8b = { numLayers: 32, numKvHeads: 8, headDim: 128, dtype: 'fp16' } as const;

function expectInvalid(fn: () => unknown, field: string): void {
  try {
    fn();
  } catch (e) {
    expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
    expect((e as Error).message).toContain(field);
    return;
  }
  throw new Error(`expected KVMGR_INVALID_ARGUMENT for ${field}`);
}

describe('createKVCacheSpec', () => {
  it('Llama-3.1-8B fp16 is 131072 B/token and 2 MiB per 16-token block', () => {
    const spec = createKVCacheSpec(llama8b);
    expect(spec.bytesPerToken).toBe(131072);
    expect(spec.blockSize).toBe(16);
    expect(spec.bytesPerBlock).toBe(2 * MiB);
    expect(spec.bytesPerBlockByTier.cpu).toBe(2 * MiB);
  });

  it('Llama-3.1-70B with fp8 KV and block size 32', () => {
    // 80 layers × 8 KV heads × 128 × 2 (K,V) × 1 byte = 163840 B/token
    const spec = createKVCacheSpec({ numLayers: 80, numKvHeads: 8, headDim: 128, dtype: 'fp8', blockSize: 32 });
    expect(spec.bytesPerToken).toBe(163840);
    expect(spec.bytesPerBlock).toBe(163840 * 32);
  });

  it('MLA (kvFactor 1) halves the bytes, and per-tier dtypes differ', () => {
    // DeepSeek-V3-like: 61 layers × 1 latent head × 576 × 1 × 2 bytes
    const mla = createKVCacheSpec({ numLayers: 61, numKvHeads: 1, headDim: 576, kvFactor: 1, dtype: 'bf16' });
    expect(mla.bytesPerToken).toBe(61 * 576 * 2);
    const tiered = createKVCacheSpec({ ...llama8b, tierDtypes: { disk: 'int4' } });
    expect(tiered.bytesPerTokenByTier.disk).toBe(131072 / 4);
    expect(tiered.bytesPerTokenByTier.cpu).toBe(131072);
  });

  it.each([
    [{ ...llama8b, numLayers: 0 }, 'spec.numLayers'],
    [{ ...llama8b, numKvHeads: -8 }, 'spec.numKvHeads'],
    [{ ...llama8b, headDim: 12.5 }, 'spec.headDim'],
    [{ ...llama8b, blockSize: 0 }, 'spec.blockSize'],
    [{ ...llama8b, dtype: 'fp12' }, 'spec.dtype'],
    [{ ...llama8b, numLayers: Number.NaN }, 'spec.numLayers'],
    [{ ...llama8b, kvFactor: 3 }, 'spec.kvFactor'],
    [{ ...llama8b, tierDtypes: { cpu: 'fp64' } }, 'spec.tierDtypes.cpu'],
    [{ ...llama8b, tierDtypes: { hbm: 'fp16' } }, 'spec.tierDtypes'],
  ])('rejects %j naming %s', (input, field) => {
    expectInvalid(() => createKVCacheSpec(input as never), field);
  });

  it('rejects a non-object', () => {
    expectInvalid(() => createKVCacheSpec(null as never), 'spec');
  });
});

describe('createKVCacheSchema and blocksForTokens', () => {
  it('sizes tiers by floor(bytes / bytesPerBlock)', () => {
    const spec = createKVCacheSpec(llama8b);
    const schema = createKVCacheSchema(spec, { gpu: 40 * GiB, cpu: 100 * GiB + MiB });
    expect(schema.numBlocks).toEqual({ gpu: 20480, cpu: 51200, disk: 0 });
    expect(schema.groups[0]?.layers).toHaveLength(32);
    expectInvalid(() => createKVCacheSchema(spec, { gpu: -1 }), 'memoryBytes.gpu');
  });

  it('rounds tokens up to blocks', () => {
    expect(blocksForTokens(0, 16)).toBe(0);
    expect(blocksForTokens(1, 16)).toBe(1);
    expect(blocksForTokens(16, 16)).toBe(1);
    expect(blocksForTokens(17, 16)).toBe(2);
    expectInvalid(() => blocksForTokens(-1, 16), 'tokens');
  });
});
