/**
 * `kvmgr sweep`: arrival-rate scales × profiles, run in parallel worker threads (the
 * simulator's piscina pool); prints SLO attainment and goodput per point, finds each profile's
 * goodput knee (the highest rate with ≥ 90% SLO attainment), writes sweep.json and sweep.html.
 */
import { type SweepJob, runSweep } from '@kvmgr/sim';
import type { Command } from 'commander';
import { type Knee, type SweepPoint, goodputKnee } from './ab-stats.js';
import { writeOutputs } from './output.js';
import { createProgress } from './progress.js';
import { checkOutDir, sweepThreads } from './preflight.js';
import { renderReportHtml } from './report-html.js';
import { type RunFlags, prepareRun, profileFor, resolveRunOptions, traceSpec, validateVariant } from './run.js';
import { fmtNum, formatTable } from './table.js';
import { latencyLine } from './replay-report.js';
import { SWEEP_DEFAULTS } from './defaults.js';

/** Flags of `kvmgr sweep`. */
export interface SweepFlags extends RunFlags {
  rates?: number[];
  profiles?: string[];
  workers?: number;
  /** Allow more worker threads than CPU cores. */
  forceWorkers?: boolean;
  out?: string;
}

/** Runs `kvmgr sweep`. */
export async function runSweepCommand(flags: SweepFlags, _cmd?: Command): Promise<void> {
  const resolved = resolveRunOptions(flags);
  const rates = flags.rates ?? resolved.config.rates ?? SWEEP_DEFAULTS.rates;
  const profiles = flags.profiles ?? resolved.config.profiles ?? SWEEP_DEFAULTS.profiles;
  const out = flags.out ?? resolved.config.out ?? SWEEP_DEFAULTS.out;
  for (const p of profiles) validateVariant({ label: p, profile: p }, resolved);
  checkOutDir(out);
  const threads = sweepThreads(flags.workers, profiles.length * rates.length, flags.forceWorkers === true);
  const { opts } = prepareRun(resolved, profiles, threads, rates);
  const trace = traceSpec(opts);
  const jobs: SweepJob[] = [];
  for (const profile of profiles) {
    for (const rate of rates) {
      jobs.push({
        id: `${profile}@${rate}`,
        trace,
        replay: {
          model: opts.model,
          gpu: opts.gpu,
          tp: opts.tp,
          instances: opts.instances,
          profile: profileFor(opts, profile),
          rateScale: rate * opts.rateScale,
          slo: { ttftMs: opts.sloTtftMs, tpotMs: opts.sloTpotMs },
          seed: opts.seed,
          ...(opts.prefixIndex === undefined ? {} : { prefixIndex: opts.prefixIndex }),
        },
      });
    }
  }
  const progress = createProgress(opts.progress && process.stderr.isTTY === true);
  progress.start('sweep', jobs.length, 'runs');
  const started = performance.now();
  let results: Awaited<ReturnType<typeof runSweep>>;
  try {
    results = await runSweep(jobs, { ...(flags.workers === undefined ? {} : { threads }), onResult: (_r, done) => progress.update(done) });
  } finally {
    progress.stop();
  }
  const byProfile = new Map<string, SweepPoint[]>();
  for (const [i, r] of results.entries()) {
    const job = jobs[i] as SweepJob;
    const profile = (job.replay.profile as { name: string }).name;
    const points = byProfile.get(profile) ?? [];
    points.push({
      rate: job.replay.rateScale ?? 1,
      sloAttainment: r.summary.sloAttainment,
      goodputReqPerS: r.summary.goodputRps,
      throughputReqPerS: r.summary.throughputRps,
      ttftP99Ms: r.summary.ttftMs.p99,
      tpotP99Ms: r.summary.tpotMs.p99,
      hitRate: r.summary.hitRate,
      preemptions: r.summary.preemptions,
      rejected: r.summary.rejected,
    });
    byProfile.set(profile, points);
  }
  const knees = new Map<string, Knee>();
  for (const [p, pts] of byProfile) knees.set(p, goodputKnee(pts, SWEEP_DEFAULTS.target));
  const rows: string[][] = [];
  for (const [p, pts] of byProfile) {
    for (const pt of pts) {
      rows.push([p, `×${pt.rate}`, fmtNum(pt.throughputReqPerS, 3), fmtNum(pt.goodputReqPerS, 3), fmtNum(pt.sloAttainment * 100, 1), fmtNum(pt.ttftP99Ms, 0), knees.get(p)?.rate === pt.rate ? '← knee' : '']);
    }
  }
  const kneeLines = [...knees].map(([p, k]) => `${p}: knee ${k.rate === undefined ? 'not reached (no rate with ≥ 90% SLO attainment)' : `at rate ×${k.rate}, goodput ${fmtNum(k.goodputReqPerS, 3)} req/s`}`);
  // Goodput at the knee of every other profile relative to the first one (the baseline).
  const [baseName, baseKnee] = [...knees][0] ?? ['', { rate: undefined, goodputReqPerS: 0 }];
  const ratioLines =
    baseKnee.goodputReqPerS > 0
      ? [...knees].slice(1).map(([p, k]) => `goodput at the knee: ${p} / ${baseName} = ${(k.goodputReqPerS / baseKnee.goodputReqPerS).toFixed(2)}×`)
      : [];
  const latency = latencyLine(opts.model, opts.gpu, opts.tp);
  const header = ['profile', 'rate', 'throughput (req/s)', 'goodput (req/s)', 'SLO attainment (%)', 'TTFT p99 (ms)', ''];
  const text = [
    `sweep on ${opts.traceLabel}: ${jobs.length} runs (${profiles.length} profiles × ${rates.length} rates) in ${((performance.now() - started) / 1000).toFixed(1)} s; SLO TTFT ${opts.sloTtftMs} ms, TPOT ${opts.sloTpotMs} ms`,
    `latency model: ${latency}`,
    '',
    formatTable(header, rows),
    '',
    ...kneeLines,
    ...ratioLines,
  ].join('\n');
  process.stdout.write(`${text}\n`);
  const series = (pick: (p: SweepPoint) => number) => [...byProfile].map(([name, pts]) => ({ name, points: pts.map((p) => [p.rate, pick(p)] as [number, number]) }));
  const html = renderReportHtml({
    title: 'kvmgr sweep: goodput knee per profile',
    subtitle: [`trace: ${opts.traceLabel}, ${opts.instances} × ${opts.model} on ${opts.gpu}, seed ${opts.seed}`, `latency model: ${latency}`, ...kneeLines, ...ratioLines],
    tables: [{ title: 'Runs', header, rows }],
    charts: [
      { id: 'goodput', title: 'Goodput vs arrival rate', xLabel: 'rate scale (× trace rate)', yLabel: 'goodput (req/s)', series: series((p) => p.goodputReqPerS) },
      { id: 'attainment', title: 'SLO attainment vs arrival rate (knee: last point ≥ 90%)', xLabel: 'rate scale (× trace rate)', yLabel: 'SLO attainment (%)', series: series((p) => p.sloAttainment * 100) },
      { id: 'ttft-p99', title: 'TTFT p99 vs arrival rate', xLabel: 'rate scale (× trace rate)', yLabel: 'TTFT p99 (ms)', series: series((p) => p.ttftP99Ms) },
    ],
  });
  const json = { kind: 'kvmgr.sweep', version: 1, trace: opts.traceLabel, seed: opts.seed, latency, target: SWEEP_DEFAULTS.target, points: Object.fromEntries(byProfile), knees: Object.fromEntries(knees) };
  const written = writeOutputs(out, { 'sweep.json': `${JSON.stringify(json, null, 2)}\n`, 'sweep.html': html });
  process.stdout.write(`\nwrote ${written.join(', ')}\n`);
}
