import type { BenchSuite } from '../../../bench/types.js';
import { blocksForTokens, createKVCacheSpec } from '../src/index.js';
import { createRng } from '../src/rng.js';

/** Core micro-benchmarks: spec derivation, block math, and the PRNG against Math.random. */
export function createSuite(): BenchSuite {
  const rng = createRng(1);
  let sink = 0;
  // sink keeps the JIT from dropping the calls
  return {
    name: 'core',
    cases: [
      { name: 'createKVCacheSpec', fn: () => void createKVCacheSpec({ numLayers: 32, numKvHeads: 8, headDim: 128 }) },
      { name: 'blocksForTokens', fn: () => void (sink += blocksForTokens(12345, 16)) },
      { name: 'Math.random (peer)', fn: () => void (sink += Math.random()) },
      { name: 'rng.next', fn: () => void (sink += rng.next()), baseline: 'Math.random (peer)' },
    ],
  };
}
