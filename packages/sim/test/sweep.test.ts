import { describe, expect, it } from 'vitest';
import { type SweepJob, runSweep, runSweepJob } from '../src/index.js';
import { MOONCAKE_SAMPLE } from './paths.js';

// the bundled sample is the full trace's first 3,000 lines, so these 120 requests are the same

describe('sweeps in worker threads', () => {
  it('gives the same results as in-process runs, in job order', async () => {
    const jobs: SweepJob[] = [1, 2].flatMap((rate) =>
      ['vllm-default', 'kvmgr-default'].map((profile) => ({
        id: `${profile}@${rate}x`,
        trace: { kind: 'mooncake' as const, path: MOONCAKE_SAMPLE, options: { limit: 120 } },
        replay: { profile, rateScale: rate, instances: 2, seed: 1 },
      })),
    );
    const parallel = await runSweep(jobs, { threads: 2 });
    expect(parallel.map((r) => r.id)).toEqual(jobs.map((j) => j.id));
    for (const [i, job] of jobs.entries()) {
      const local = runSweepJob(job);
      expect(JSON.stringify(parallel[i]!.summary)).toBe(JSON.stringify(local.summary));
      expect(parallel[i]!.violations).toEqual([]);
    }
  });
});
