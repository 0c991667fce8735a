/**
 * `kvmgr ab --a X --b Y`: two pipelines (or profiles) on the same trace and seed; paired
 * per-request differences with bootstrap confidence intervals.
 */
import { KvmgrError } from '@kvmgr/core';
import { ENGINE_PROFILES } from '@kvmgr/sim';
import type { Command } from 'commander';
import { type PairedDiff, pairedDiffs } from './ab-stats.js';
import { writeOutputs } from './output.js';
import { createProgress } from './progress.js';
import { checkOutDir } from './preflight.js';
import { type RunFlags, type RunVariant, prepareRun, resolveRunOptions, runOnce, validateVariant } from './run.js';
import { fmtNum, formatTable } from './table.js';
import { latencyLine } from './replay-report.js';

/** Flags of `kvmgr ab`. */
export interface AbFlags extends RunFlags {
  a?: string;
  b?: string;
  router?: string;
  bootstrap?: number;
  out?: string;
}

/**
 * A side of the A/B: a profile name runs that profile whole; anything else is a scheduler
 * pipeline (preset or text) run on the vllm-default profile, so only the pipeline differs.
 */
export function abVariant(spec: string, router: string | undefined): RunVariant {
  if (Object.hasOwn(ENGINE_PROFILES, spec)) return { label: spec, profile: spec, router: router ?? 'round-robin' };
  return { label: spec, profile: 'vllm-default', pipeline: spec, router: router ?? 'round-robin' };
}

function fmtDiff(d: PairedDiff): string[] {
  const digits = d.unit === 'fraction' ? 4 : 2;
  return [
    `${d.metric} (${d.unit})`,
    String(d.n),
    fmtNum(d.meanA, digits),
    fmtNum(d.meanB, digits),
    fmtNum(d.meanDiff, digits),
    `[${fmtNum(d.ciLow, digits)}, ${fmtNum(d.ciHigh, digits)}]`,
    Number.isFinite(d.relChange) ? `${d.relChange >= 0 ? '+' : ''}${(d.relChange * 100).toFixed(1)}%` : '-',
    d.ciLow > 0 || d.ciHigh < 0 ? 'yes' : 'no',
  ];
}

/** Runs `kvmgr ab`. */
export async function runAbCommand(flags: AbFlags, _cmd?: Command): Promise<void> {
  const resolved = resolveRunOptions(flags);
  const aSpec = flags.a ?? resolved.config.a;
  const bSpec = flags.b ?? resolved.config.b;
  if (!aSpec || !bSpec) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', 'ab: both --a and --b are required');
  const router = flags.router ?? resolved.config.router;
  const variantA = { ...abVariant(aSpec, router), label: `A: ${aSpec}` };
  const variantB = { ...abVariant(bSpec, router), label: `B: ${bSpec}` };
  validateVariant(variantA, resolved);
  validateVariant(variantB, resolved);
  const out = flags.out ?? resolved.config.out;
  if (out) checkOutDir(out);
  const { trace, opts } = prepareRun(resolved, [variantA.profile, variantB.profile]);
  const progress = createProgress(opts.progress && process.stderr.isTTY === true);
  const a = runOnce(opts, trace, variantA, progress);
  const b = runOnce(opts, trace, variantB, progress);
  const diffs = pairedDiffs(a, b, { resamples: flags.bootstrap ?? opts.config.bootstrap ?? 2000, seed: opts.seed });
  const latency = latencyLine(opts.model, opts.gpu, opts.tp);
  const lines = [
    `A/B on ${opts.traceLabel} (${trace.requests.length} requests), ${opts.instances} × ${opts.model} on ${opts.gpu}, rate ×${opts.rateScale}, seed ${opts.seed}`,
    `A = ${aSpec} (pipeline ${a.pipeline}, router ${a.router}); B = ${bSpec} (pipeline ${b.pipeline}, router ${b.router})`,
    `latency model: ${latency}`,
    '',
    formatTable(['metric (per request)', 'n', 'mean A', 'mean B', 'B − A', '95% CI (bootstrap)', 'change', 'significant'], diffs.map(fmtDiff)),
    '',
    `goodput: A ${fmtNum(a.summary.goodputRps, 3)} req/s, B ${fmtNum(b.summary.goodputRps, 3)} req/s; TTFT p99: A ${fmtNum(a.summary.ttftMs.p99, 0)} ms, B ${fmtNum(b.summary.ttftMs.p99, 0)} ms`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (out) {
    const body = { kind: 'kvmgr.ab', version: 1, trace: opts.traceLabel, seed: opts.seed, latency, a: { spec: aSpec, summary: a.summary }, b: { spec: bSpec, summary: b.summary }, diffs };
    const written = writeOutputs(out, { 'ab.json': `${JSON.stringify(body, null, 2)}\n` });
    process.stdout.write(`wrote ${written.join(', ')}\n`);
  }
}
