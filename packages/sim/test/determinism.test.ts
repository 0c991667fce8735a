/**
 * Determinism: the same trace, configuration and seed give byte-identical results.
 */
import { describe, expect, it } from 'vitest';
import { loadMooncakeTrace, runReplay } from '../src/index.js';
import { MOONCAKE_SAMPLE } from './paths.js';

// the bundled sample is the full trace's first 3,000 lines, so these 300 requests are the same
const TRACE = MOONCAKE_SAMPLE;

describe('determinism', () => {
  const trace = loadMooncakeTrace(TRACE, { limit: 300 });
  for (const [profile, prefixIndex] of [
    ['vllm-default', undefined],
    ['kvmgr-default', undefined],
    ['kvmgr-default', 'radix'],
  ] as const) {
    it(`${profile}${prefixIndex === undefined ? '' : ` (prefixIndex ${prefixIndex})`}: two runs are byte-identical`, () => {
      const run = () =>
        JSON.stringify(runReplay({ trace, profile, rateScale: 4, seed: 7, ...(prefixIndex === undefined ? {} : { prefixIndex }) }), (_k, v) =>
          typeof v === 'number' && Number.isNaN(v) ? 'NaN' : v,
        );
      const a = run();
      const b = run();
      expect(a.length).toBeGreaterThan(1000);
      expect(a).toBe(b);
    });
  }
});
