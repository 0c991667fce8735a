/**
 * The run's SLO targets reach the scheduler as request deadlines (requests without their own),
 * and deadline-aware ordering changes what an overloaded run achieves.
 */
import { describe, expect, it } from 'vitest';
import { loadMooncakeTrace, runReplay } from '../src/index.js';
import { MOONCAKE_SAMPLE } from './paths.js';

// the bundled sample is the full trace's first 3,000 lines, so these 400 requests are the same
const trace = loadMooncakeTrace(MOONCAKE_SAMPLE, { limit: 400 });

describe('SLO targets as scheduler deadlines', () => {
  it('slo-aware{reject=true} sees the run SLO: a tight TTFT target rejects, a loose one does not', () => {
    const pipeline = 'sched.step(slo-aware{reject=true},chunked-prefill)';
    const tight = runReplay({ trace, profile: 'vllm-default', pipeline, rateScale: 2, seed: 1, slo: { ttftMs: 200, tpotMs: 100 } });
    const rejected = tight.requests.filter((r) => r.rejectedReason === 'slo-infeasible').length;
    expect(rejected).toBeGreaterThan(0);
    expect(tight.summary.rejected).toBe(rejected);
    const loose = runReplay({ trace, profile: 'vllm-default', pipeline, rateScale: 2, seed: 1, slo: { ttftMs: 1e9, tpotMs: 1e9 } });
    expect(loose.summary.rejected).toBe(0);
  });

  it('under overload, putting late requests last keeps more requests on time than EDF', () => {
    const run = (slo: string) =>
      runReplay({
        trace,
        profile: 'vllm-default',
        pipeline: `sched.step(fcfs,${slo},memory-aware-preemption{mode=recompute victim=newest},chunked-prefill{budget=8192 max-seqs=1024})`,
        rateScale: 8,
        seed: 1,
      }).summary;
    const edf = run('slo-aware');
    const lateBack = run('slo-aware{edf=false late=back}');
    expect(edf.finished).toBe(lateBack.finished);
    expect(lateBack.sloAttainment).toBeGreaterThan(edf.sloAttainment + 0.1);
  });
});
