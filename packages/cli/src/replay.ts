/**
 * `kvmgr replay`: baseline vs candidate on the same trace and seed; prints the side-by-side
 * table and writes report.json, requests.csv and report.html (all or nothing).
 */
import type { Command } from 'commander';
import { removeOutputs, writeOutputs } from './output.js';
import { DEFAULTS } from './defaults.js';
import { createProgress } from './progress.js';
import { formatComparison, latencyLine, replayHtml, replayJson, requestsCsv } from './replay-report.js';
import { renderReportHtml } from './report-html.js';
import { checkOutDir } from './preflight.js';
import { type RunFlags, type RunVariant, prepareRun, resolveRunOptions, runOnce, validateVariant } from './run.js';

/** The files `kvmgr replay` writes. */
export const OUTPUT_FILES = ['report.json', 'requests.csv', 'report.html'] as const;

/** Flags of `kvmgr replay`. */
export interface ReplayFlags extends RunFlags {
  baseline?: string;
  candidate?: string;
  pipeline?: string;
  router?: string;
  baselineRouter?: string;
  out?: string;
}

/** Runs `kvmgr replay`. */
export async function runReplayCommand(flags: ReplayFlags, _cmd?: Command): Promise<void> {
  const resolved = resolveRunOptions(flags);
  const cfg = resolved.config;
  const baseline = flags.baseline ?? cfg.baseline ?? DEFAULTS.baseline;
  const candidate = flags.candidate ?? cfg.candidate ?? DEFAULTS.candidate;
  const out = flags.out ?? cfg.out ?? DEFAULTS.out;
  const variantA: RunVariant = { label: baseline, profile: baseline, router: flags.baselineRouter ?? cfg.baselineRouter };
  const variantB: RunVariant = { label: candidate, profile: candidate, pipeline: flags.pipeline ?? cfg.pipeline, router: flags.router ?? cfg.router };
  validateVariant(variantA, resolved);
  validateVariant(variantB, resolved);
  checkOutDir(out);
  const { trace, opts } = prepareRun(resolved, [baseline, candidate]);
  // Outputs of an earlier run must not pass for this run's if this one fails.
  removeOutputs(out, OUTPUT_FILES);
  if (trace.skippedRows > 0) process.stderr.write(`kvmgr: skipped ${trace.skippedRows} malformed rows (--lenient); first: ${trace.skippedReasons[0] ?? ''}\n`);
  const progress = createProgress(opts.progress && process.stderr.isTTY === true);
  const a = runOnce(opts, trace, variantA, progress);
  const b = runOnce(opts, trace, variantB, progress);
  const setup = {
    trace: opts.traceLabel,
    model: opts.model,
    gpu: opts.gpu,
    instances: opts.instances,
    rateScale: opts.rateScale,
    sloTtftMs: opts.sloTtftMs,
    sloTpotMs: opts.sloTpotMs,
    seed: opts.seed,
    latency: latencyLine(opts.model, opts.gpu, opts.tp),
  };
  process.stdout.write(`${formatComparison(setup, a, b)}\n`);
  const written = writeOutputs(out, {
    'report.json': replayJson(setup, a, b),
    'requests.csv': requestsCsv([a, b]),
    'report.html': renderReportHtml(replayHtml(setup, a, b)),
  });
  process.stdout.write(`\nwrote ${written.join(', ')} (simulated in ${(a.wallS + b.wallS).toFixed(1)} s)\n`);
}
