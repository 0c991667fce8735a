/**
 * `kvmgr predict eval --trace FILE --predictor NAME`: prequential evaluation (predict, then
 * learn, in arrival order) through `@kvmgr/lifetime-predictor`.
 */
import { createPredictor, evaluatePrequential, listPredictors, loadTrace } from '@kvmgr/lifetime-predictor';
import type { EvaluationResult } from '@kvmgr/lifetime-predictor';
import { fmtNum, formatTable } from './table.js';

/** Flags of `kvmgr predict eval`. */
export interface PredictEvalFlags {
  trace: string;
  predictor?: string;
  limit?: number;
  json?: boolean;
}

/** Runs `kvmgr predict eval`. */
export async function runPredictEval(flags: PredictEvalFlags): Promise<void> {
  const all = loadTrace(flags.trace);
  const records = flags.limit === undefined ? all : all.slice(0, flags.limit);
  const names = flags.predictor === undefined || flags.predictor === 'all' ? listPredictors() : [flags.predictor];
  // Create every predictor first so an unknown name fails before any work.
  const predictors = names.map((n) => createPredictor(n as never));
  const results: EvaluationResult[] = [];
  for (const p of predictors) {
    results.push(evaluatePrequential(records, p));
    (p as { dispose?: () => void }).dispose?.();
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ trace: flags.trace, records: records.length, results }, null, 2)}\n`);
    return;
  }
  const base = results.find((r) => r.predictor === 'global-median');
  const rows = results.map((r) => [
    r.predictor,
    String(r.n),
    fmtNum(r.mae, 1),
    base ? `${(r.mae / base.mae).toFixed(3)}×` : '-',
    fmtNum(r.within10 * 100, 1),
    fmtNum(r.kendallTau, 3),
    fmtNum(r.p90Coverage, 3),
    fmtNum(r.predictP50Us, 2),
    fmtNum(r.predictP99Us, 2),
  ]);
  process.stdout.write(
    `prequential evaluation on ${flags.trace} (${records.length} requests; predict, then learn, in arrival order)\n\n${formatTable(
      ['predictor', 'n', 'MAE (tok)', 'vs median', 'within 10% (%)', 'Kendall τ', 'p90 coverage', 'predict p50 µs', 'p99 µs'],
      rows,
    )}\n`,
  );
}
