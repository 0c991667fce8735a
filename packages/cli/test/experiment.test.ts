import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isKvmgrError } from '@kvmgr/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { jobOf, metricsOf, runExperimentCommand } from '../src/experiment/run.js';
import { parseExperiment } from '../src/experiment/schema.js';
import { judgePaired, meanCi } from '../src/experiment/stats.js';
import { measurePlots } from './screenshot.js';

const TINY = `
name: tiny
seeds: 2
slo: { ttft_ms: 1500, tpot_ms: 80 }
metrics: [goodput_rps, hit_rate, preemptions, ttft_p99_ms@critical]
workloads:
  - name: chat
    workload:
      duration_s: 30
      arrival: { rate: 1.5 }
      sessions: { share: 1, turns: { min: 2, max: 3 }, think_time_s: 2, system_prompts: 2, system_tokens: 256, user_tokens: { mean: 256 }, output_tokens: { mean: 96 } }
      slo_classes: [{ name: critical, share: 0.3, ttft_ms: 500, priority: 1 }, { name: batch, share: 0.7 }]
setups:
  - { name: roomy, instances: 2 }
  - { name: tight, instances: 2, gpu_blocks: 300 }
configurations:
  - { name: rr, router: round-robin }
  - { name: pa, router: 'pa:3,qd:2,kv:2' }
hypotheses:
  - { id: H1, statement: prefix affinity raises the hit rate, metric: hit_rate, expect: higher, treatment: { configuration: pa }, baseline: { configuration: rr } }
targets:
  - { id: T1, statement: few preemptions with room, metric: preemptions, cell: { configuration: pa, setup: roomy }, op: '<=', value: 1000 }
`;

let dir: string;
let log: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kvmgr-exp-'));
  log = vi.spyOn(console, 'log').mockImplementation(() => {});
});
afterEach(() => {
  log.mockRestore();
});

function badFile(name: string, text: string): { message: string; key: unknown } {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, text);
  try {
    parseExperiment(text, file);
  } catch (e) {
    expect(isKvmgrError(e)).toBe(true);
    return { message: (e as Error).message, key: (e as { details?: { key?: unknown } }).details?.key };
  }
  throw new Error(`${name}: expected a KVMGR_BAD_CONFIG error`);
}

describe('experiment files are validated before any run (issue #27, check 4)', () => {
  it('names the key of an unknown scorer, negative blocks, a missing workload file, an unknown cell and an unknown metric', async () => {
    const unknownScorer = badFile('scorer', TINY.replace("'pa:3,qd:2,kv:2'", "'pa:3,zz:2'"));
    expect(unknownScorer.message).toMatch(/configurations\.1\.router: .*unknown scorer "zz"/);
    const negative = badFile('blocks', TINY.replace('gpu_blocks: 300', 'gpu_blocks: -5'));
    expect(negative.message).toMatch(/setups\.1\.gpu_blocks: /);
    const missing = badFile('file', TINY.replace(/ {4}workload:\n( {6}.*\n)+/, '    file: nowhere/chat.yaml\n'));
    expect(missing.message).toMatch(/workloads\.0\.file: no such file "nowhere\/chat\.yaml"/);
    const cell = badFile('cell', TINY.replace('baseline: { configuration: rr }', 'baseline: { configuration: nope }'));
    expect(cell.message).toMatch(/hypotheses\.0\.baseline\.configuration: no configuration named "nope"/);
    const metric = badFile('metric', TINY.replace('hit_rate, preemptions', 'hit_rate, hit_ratio'));
    expect(metric.message).toMatch(/metrics\.2: a metric name/);
    const pipeline = badFile('pipeline', TINY.replace('{ name: rr, router: round-robin }', "{ name: rr, router: round-robin, pipeline: 'sched.step(fcfs)' }"));
    expect(pipeline.message).toMatch(/configurations\.0\.pipeline: /);
    // and the command stops before writing anything
    const file = join(dir, 'scorer.yaml');
    const out = join(dir, 'out-bad');
    await expect(runExperimentCommand(file, { out, workers: 1, progress: false })).rejects.toThrow(/configurations\.1\.router/);
    expect(existsSync(join(out, 'cells.jsonl'))).toBe(false);
  });
});

describe('heterogeneous setups, pairing and prefetch (seed 001)', () => {
  it('accepts a GPU per instance, capability pairing and prefetch, and passes them to the simulator job', () => {
    const text = TINY.replace(
      '  - { name: tight, instances: 2, gpu_blocks: 300 }',
      "  - { name: tight, instances: 2, gpu_blocks: 300, cpu_blocks: 600, prefetch: true }\n  - { name: het, instances: [{ role: prefill, gpu: H100 }, { role: decode, gpu: A100 }, decode], pairing: capability }",
    );
    const x = parseExperiment(text, join(dir, 'het.yaml'));
    const het = x.setups.find((s) => s.name === 'het');
    expect(het?.instances).toEqual([{ role: 'prefill', gpu: 'H100' }, { role: 'decode', gpu: 'A100' }, 'decode']);
    const job = jobOf(x, { workload: 'chat', setup: 'het', configuration: 'pa', seed: 0 });
    expect(job.replay.instances).toEqual([{ role: 'prefill', gpu: 'H100' }, { role: 'decode', gpu: 'A100' }, 'decode']);
    expect(job.replay.pdPairing).toBe('capability');
    expect(job.replay.prefetch).toBeUndefined();
    const tight = jobOf(x, { workload: 'chat', setup: 'tight', configuration: 'pa', seed: 0 });
    expect(tight.replay.prefetch).toBe(true);
    expect(tight.replay.pdPairing).toBeUndefined();
    // a setup without the new keys keeps its job (and so its cached cells) unchanged
    expect(jobOf(x, { workload: 'chat', setup: 'roomy', configuration: 'pa', seed: 0 }).replay).toEqual(
      jobOf(parseExperiment(TINY, join(dir, 'tiny.yaml')), { workload: 'chat', setup: 'roomy', configuration: 'pa', seed: 0 }).replay,
    );
  });

  it('rejects an unknown GPU, an unknown pairing and prefetch without a CPU tier, naming the key', () => {
    const gpu = badFile('gpu', TINY.replace('{ name: roomy, instances: 2 }', '{ name: roomy, instances: [{ role: prefill, gpu: B200X }, decode] }'));
    expect(gpu.message).toMatch(/setups\.0\.instances\.0\.gpu: .*a GPU name: one of H100, H200, A100-80/);
    const setupGpu = badFile('setup-gpu', TINY.replace('{ name: roomy, instances: 2 }', '{ name: roomy, instances: 2, gpu: V100 }'));
    expect(setupGpu.message).toMatch(/setups\.0\.gpu: /);
    const pairing = badFile('pairing', TINY.replace('{ name: roomy, instances: 2 }', '{ name: roomy, instances: 2, pairing: fastest }'));
    expect(pairing.message).toMatch(/setups\.0\.pairing: /);
    const prefetch = badFile('prefetch', TINY.replace('{ name: roomy, instances: 2 }', '{ name: roomy, instances: 2, prefetch: true }'));
    expect(prefetch.message).toMatch(/setups\.0\.prefetch: needs cpu_blocks > 0/);
  });

  it('reports migration_failure_rate as undefined (NaN) for a run without migrations, else the summary rate', () => {
    const base = { summary: { migratedBlocks: 0, migrationFailureRate: 0 } } as never;
    expect(metricsOf(['migration_failure_rate', 'migrated_blocks'], base)).toEqual({ migration_failure_rate: Number.NaN, migrated_blocks: 0 });
    const some = { summary: { migratedBlocks: 200, migrationFailureRate: 0.03 } } as never;
    expect(metricsOf(['migration_failure_rate'], some)).toEqual({ migration_failure_rate: 0.03 });
  });
});

describe('the quota split of a configuration', () => {
  it('takes quota: {} and its options, and names the key of a bad value', () => {
    const ok = parseExperiment(TINY.replace('{ name: rr, router: round-robin }', '{ name: rr, router: round-robin, quota: { interval_ms: 250, llm_weight: 4 } }'), join(dir, 'ok.yaml'));
    expect(ok.configurations[0]?.quota).toEqual({ interval_ms: 250, llm_weight: 4 });
    const negative = badFile('quota-interval', TINY.replace('{ name: rr, router: round-robin }', '{ name: rr, router: round-robin, quota: { interval_ms: -5 } }'));
    expect(negative.message).toMatch(/configurations\.0\.quota\.interval_ms: /);
    const unknown = badFile('quota-key', TINY.replace('{ name: rr, router: round-robin }', '{ name: rr, router: round-robin, quota: { intervals: 5 } }'));
    expect(unknown.message).toMatch(/configurations\.0\.quota.*intervals/);
    const fraction = badFile('quota-fraction', TINY.replace('{ name: rr, router: round-robin }', '{ name: rr, router: round-robin, quota: { max_step_fraction: 1.5 } }'));
    expect(fraction.message).toMatch(/configurations\.0\.quota\.max_step_fraction: /);
    const sum = badFile('quota-sum', TINY.replace('{ name: rr, router: round-robin }', '{ name: rr, router: round-robin, quota: { llm_min_fraction: 0.9, embedding_min_fraction: 0.2 } }'));
    expect(sum.message).toMatch(/configurations\.0\.quota\.llm_min_fraction: .*at most 1/);
    const metric = badFile('quota-metric', TINY.replace('hit_rate, preemptions', 'hit_rate, quota_shift'));
    expect(metric.message).toMatch(/metrics\.2: a metric name/);
  });
});

describe('kvmgr experiment run', () => {
  it('runs the cross product over seeds, gives identical results twice, resumes from finished cells and renders its plots', async () => {
    const file = join(dir, 'tiny.yaml');
    writeFileSync(file, TINY);
    const out1 = join(dir, 'run1');
    const r1 = await runExperimentCommand(file, { out: out1, workers: 2, progress: false });
    expect(r1.cells).toHaveLength(2 * 2 * 2);
    expect(r1.aggregates).toHaveLength(2 * 2 * 4);
    // per-seed workloads differ (each seed draws its own sessions)
    const rrRoomy = r1.cells.filter((c) => c.setup === 'roomy' && c.configuration === 'rr');
    expect(rrRoomy[0]?.metrics['hit_rate']).not.toBe(rrRoomy[1]?.metrics['hit_rate']);
    const h1 = r1.hypotheses[0];
    expect(h1?.n).toBe(4); // 2 seeds × 2 setups
    expect(['supported', 'refuted', 'inconclusive']).toContain(h1?.verdict);
    expect(r1.targets[0]?.met).toBe(true);
    const critical = r1.aggregates.find((a) => a.metric === 'ttft_p99_ms@critical' && a.setup === 'roomy' && a.configuration === 'pa');
    expect(critical?.n).toBe(2);
    expect(critical?.mean).toBeGreaterThan(0);

    // twice in a row: byte-identical results
    const out2 = join(dir, 'run2');
    await runExperimentCommand(file, { out: out2, workers: 1, progress: false });
    const text1 = readFileSync(join(out1, 'results.json'), 'utf8');
    expect(readFileSync(join(out2, 'results.json'), 'utf8')).toBe(text1);
    // a run that computed every cell keeps its wall time apart from the results
    const timing = JSON.parse(readFileSync(join(out2, 'timing.json'), 'utf8')) as { cells: number; wallS: number; workerThreads: number };
    expect(timing.cells).toBe(8);
    expect(timing.workerThreads).toBe(1);
    expect(timing.wallS).toBeGreaterThan(0);
    expect(text1).not.toMatch(/wall/i);

    // interrupted: keep 3 finished cells plus a torn line, rerun → 5 cells run, same results
    const lines = readFileSync(join(out2, 'cells.jsonl'), 'utf8').trim().split('\n');
    writeFileSync(join(out2, 'cells.jsonl'), `${lines.slice(0, 3).join('\n')}\n${(lines[3] as string).slice(0, 20)}`);
    log.mockClear();
    await runExperimentCommand(file, { out: out2, workers: 2, progress: false });
    const printed = (log.mock.calls as unknown[][]).map((c) => String(c[0])).join('\n');
    expect(printed).toMatch(/8 cells \(5 run now, 3 resumed\)/);
    expect(readFileSync(join(out2, 'results.json'), 'utf8')).toBe(text1);
    // a resumed run's wall time says nothing about the experiment: the full run's stays
    expect((JSON.parse(readFileSync(join(out2, 'timing.json'), 'utf8')) as { workerThreads: number }).workerThreads).toBe(1);

    // results.md: a verdict line with the numbers behind it, the target, the table of means
    const md = readFileSync(join(out1, 'results.md'), 'utf8');
    expect(md).toMatch(new RegExp(`- \\*\\*H1: ${h1?.verdict}\\.\\*\\* prefix affinity raises the hit rate\\. hit_rate .* 4 pairs`));
    expect(md).toMatch(/- \*\*T1: met\.\*\*/);
    expect(md).toContain('| workload | setup | configuration | goodput_rps |');
    expect(readFileSync(join(out2, 'results.md'), 'utf8')).toBe(md);

    // the report: every chart drawn, with axis labels that carry units
    const html = readFileSync(join(out1, 'report.html'), 'utf8');
    expect(html).toContain('goodput (req/s)');
    expect(html).toContain('setup (1 = roomy, 2 = tight)');
    const plots = await measurePlots(join(out1, 'report.html'));
    expect(plots).toHaveLength(4);
    for (const p of plots) {
      expect(p.inkFraction).toBeGreaterThan(0.01);
      expect(p.colours).toBeGreaterThanOrEqual(2);
    }
  }, 240_000);
});

describe('rate sweeps and goodput knees', () => {
  it('expands rate_scales into name@rate workloads and finds each configuration\'s knee from the means', async () => {
    const file = join(dir, 'sweep.yaml');
    const text = TINY.replace('arrival: { rate: 1.5 }', 'arrival: { rate: 1 }')
      .replace('    workload:\n', '    rate_scales: [0.5, 2, 6]\n    workload:\n')
      .replace(/hypotheses:[\s\S]*$/, 'knee: { target: 0.9, baseline: rr }\n');
    writeFileSync(file, text);
    const r = await runExperimentCommand(file, { out: join(dir, 'sweep'), workers: 2, seeds: 1, progress: false });
    expect(new Set(r.cells.map((c) => c.workload))).toEqual(new Set(['chat@0.5', 'chat@2', 'chat@6']));
    expect(r.knees).toHaveLength(2 * 2);
    for (const k of r.knees) {
      const att = (rate: number) => r.aggregates.find((a) => a.workload === `chat@${rate}` && a.setup === k.setup && a.configuration === k.configuration && a.metric === 'slo_attainment')?.mean as number;
      const ok = [0.5, 2, 6].filter((rate) => att(rate) >= 0.9);
      expect(k.kneeRate).toBe(ok.length === 0 ? null : Math.max(...ok));
      if (k.configuration === 'rr' && k.peakGoodputRps > 0) expect(k.peakGoodputVsBaseline).toBe(1);
    }
    const html = readFileSync(join(dir, 'sweep', 'report.html'), 'utf8');
    expect(html).toContain('against the arrival rate');
    expect(() => parseExperiment(TINY.replace(/hypotheses:/, 'knee: { target: 0.9 }\nhypotheses:'), file)).toThrow(/knee: needs a workload with rate_scales/);
  }, 240_000);
});

describe('statistics over seeds', () => {
  it('gives the t-interval of the mean (n = 3: t(0.975, 2) = 4.303)', () => {
    const ci = meanCi([1, 2, 3]);
    expect(ci.mean).toBe(2);
    expect(ci.sd).toBeCloseTo(1, 12);
    expect(ci.high - ci.mean).toBeCloseTo(4.302652729749464 / Math.sqrt(3), 6);
    expect(meanCi([5]).low).toBe(5);
    expect(Number.isNaN(meanCi([]).mean)).toBe(true);
  });

  it('judges a paired comparison: supported, refuted, inconclusive', () => {
    expect(judgePaired([[1.1, 1], [1.2, 1], [1.15, 1]], 'higher').verdict).toBe('supported');
    expect(judgePaired([[1.1, 1], [1.2, 1], [1.15, 1]], 'lower').verdict).toBe('refuted');
    expect(judgePaired([[1.1, 1], [0.9, 1], [1.0, 1]], 'higher').verdict).toBe('inconclusive');
    expect(judgePaired([[2, 1]], 'higher').verdict).toBe('inconclusive'); // one pair: no interval
    const v = judgePaired([[3, 0], [3, 0]], 'higher'); // zero baseline: +100%
    expect(v.relDiff.mean).toBe(1);
    expect(judgePaired([[0, 0], [0, 0]], 'lower').verdict).toBe('inconclusive');
    expect(v.verdict).toBe('supported');
  });
});
