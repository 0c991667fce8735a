import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { blockAccessSequence } from './block-trace.js';
import { runEvictionSuite } from './suite.js';
import { WORKLOAD_SHAPES, generateBlockWorkload } from './workloads.js';

describe('workload shapes and the eviction suite', () => {
  it.each(WORKLOAD_SHAPES)('%s is seeded, sorted by arrival and has u32 block ids', (shape) => {
    const a = generateBlockWorkload(shape, { scale: 0.1 });
    const b = generateBlockWorkload(shape, { scale: 0.1 });
    expect(a).toEqual(b);
    expect(generateBlockWorkload(shape, { scale: 0.1, seed: 2 })).not.toEqual(a);
    for (let i = 1; i < a.length; i++) expect((a[i] as { timestampMs: number }).timestampMs).toBeGreaterThanOrEqual((a[i - 1] as { timestampMs: number }).timestampMs);
    for (const x of blockAccessSequence(a)) expect(x >>> 0).toBe(x);
  });

  it('shapes differ in reuse: long-doc-qa is mostly one-off blocks, agentic mostly reused', () => {
    const reuse = (shape: string) => {
      const acc = blockAccessSequence(generateBlockWorkload(shape));
      return 1 - new Set(acc).size / acc.length;
    };
    expect(reuse('long-doc-qa')).toBeLessThan(0.5);
    expect(reuse('agentic')).toBeGreaterThan(0.9);
  });

  it('runs every policy with Belady as the bound, and refuses bad input', () => {
    const w = [{ name: 'rag', description: '', requests: generateBlockWorkload('rag-zipf', { scale: 0.1 }) }];
    const points = runEvictionSuite(w, { capacities: [200], policies: ['lru', 'adaptive', 'belady'] });
    expect(points.map((p) => p.policy)).toEqual(['lru', 'adaptive', 'belady']);
    for (const p of points) expect(p.hitRatio).toBeLessThanOrEqual((points[2] as { hitRatio: number }).hitRatio);
    expect(points[2]?.shareOfBelady).toBe(1);
    for (const bad of [() => runEvictionSuite(w, { policies: ['nope'] }), () => runEvictionSuite(w, { capacities: [0] }), () => generateBlockWorkload('nope'), () => generateBlockWorkload('agentic', { scale: 0 })]) {
      try {
        bad();
        expect.unreachable();
      } catch (e) {
        expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
      }
    }
  });
});
