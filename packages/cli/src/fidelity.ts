/**
 * `kvmgr fidelity`: replays every experiment of a folder in the `shared/validation` layout (real
 * vLLM runs: engine config, GPU, TP, DP, KV blocks, load profile, measured TTFT / ITL / E2E)
 * through the simulator, prints simulated vs measured per experiment and the median errors, and
 * cross-validates the roofline calibration in two folds (fit on one half, test on the other).
 * Writes fidelity.json and fidelity.html (simulated vs measured, one chart per metric).
 */
import {
  type CrossValidation,
  type FidelityRow,
  crossValidateRoofline,
  loadValidationSet,
  medianAbsErrors,
  runFidelity,
} from '@kvmgr/sim';
import { writeOutputs } from './output.js';
import { type ChartSpec, renderReportHtml } from './report-html.js';
import { fmtNum, formatTable } from './table.js';
import { FIDELITY_DEFAULTS } from './defaults.js';

/** Flags of `kvmgr fidelity`. */
export interface FidelityFlags {
  validation: string;
  latency?: 'auto' | 'roofline' | 'blis';
  json?: boolean;
  out?: string;
  /** `false` with `--no-cv`. */
  cv?: boolean;
  cvRounds?: number;
}

const pct = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%` : '-');
const abs = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '-');

function experimentRows(rows: readonly FidelityRow[]): string[][] {
  return rows.map((r) => [
    `${r.experiment}${r.recommended ? '' : ' (not in medians)'}`,
    r.gpu,
    `${r.tp}×${r.dp}`,
    r.error === undefined ? `${r.kvBlocks}${r.kvBlocksDerived ? ' (derived)' : ''}` : '-',
    r.error === undefined ? r.latency.replace(/^(blis|roofline):.*?\/(tp\d+)/, '$1 $2') : `skipped: ${r.error}`,
    `${fmtNum(r.measured.ttft)} / ${fmtNum(r.sim.ttft)}`,
    pct(r.err.ttft),
    `${fmtNum(r.measured.itl, 2)} / ${fmtNum(r.sim.itl, 2)}`,
    pct(r.err.itl),
    `${fmtNum(r.measured.e2e, 0)} / ${fmtNum(r.sim.e2e, 0)}`,
    pct(r.err.e2e),
  ]);
}

const HEADER = ['experiment', 'GPU', 'TP×DP', 'KV blocks', 'latency model', 'TTFT meas / sim ms', 'err', 'ITL meas / sim ms', 'err', 'E2E meas / sim ms', 'err'];

function cvRows(cv: CrossValidation): string[][] {
  const rows = cv.folds.map((f, i) => [
    `fold ${i}: fit ${f.fit.length}, test ${f.test.length}`,
    abs(f.inSample.ttft),
    abs(f.inSample.itl),
    abs(f.inSample.e2e),
    abs(f.heldOut.ttft),
    abs(f.heldOut.itl),
    abs(f.heldOut.e2e),
  ]);
  rows.push([`held-out, pooled (${cv.heldOut.n} experiments)`, '', '', '', abs(cv.heldOut.ttft), abs(cv.heldOut.itl), abs(cv.heldOut.e2e)]);
  return rows;
}

const CV_HEADER = ['roofline 2-fold CV', 'fit TTFT', 'fit ITL', 'fit E2E', 'held-out TTFT', 'held-out ITL', 'held-out E2E'];

function scatter(id: string, title: string, rows: readonly FidelityRow[], pick: (t: FidelityRow['sim']) => number): ChartSpec {
  const ok = rows.filter((r) => r.error === undefined && Number.isFinite(pick(r.measured)) && Number.isFinite(pick(r.sim)));
  const pts = (f: (r: FidelityRow) => boolean) =>
    ok
      .filter(f)
      .map((r) => [pick(r.measured), pick(r.sim)] as [number, number])
      .sort((a, b) => a[0] - b[0]);
  const all = ok.flatMap((r) => [pick(r.measured), pick(r.sim)]);
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  return {
    id,
    title,
    xLabel: 'measured (ms, log scale)',
    yLabel: 'simulated (ms)',
    logX: true,
    symbols: true,
    series: [
      { name: 'recommended experiments', points: pts((r) => r.recommended) },
      { name: 'overloaded / not recommended', points: pts((r) => !r.recommended) },
      { name: 'simulated = measured', points: [[lo, lo], [hi, hi]], dashed: true, color: '#222222' },
    ],
  };
}

/** The JSON document `kvmgr fidelity` writes (and prints with `--json`). */
export function fidelityJson(validation: string, latency: string, rows: readonly FidelityRow[], cv: CrossValidation | undefined): string {
  return `${JSON.stringify({ kind: 'kvmgr.fidelity', version: 1, validation, latency, medians: medianAbsErrors(rows), rows, crossValidation: cv ?? null }, null, 1)}\n`;
}

/**
 * Runs `kvmgr fidelity`.
 * @throws KvmgrError `KVMGR_NOT_FOUND` naming the path when the folder (or its
 *   `experiments.csv` / `measured_latency.csv`) is missing.
 */
export async function runFidelityCommand(flags: FidelityFlags): Promise<void> {
  const set = loadValidationSet(flags.validation);
  const latency = flags.latency ?? FIDELITY_DEFAULTS.latency;
  const tty = process.stderr.isTTY === true && flags.json !== true;
  const rows = runFidelity(set, { latency, ...(tty ? { onRow: (r: FidelityRow) => process.stderr.write(`  ${r.experiment} (${r.wallMs} ms)\n`) } : {}) });
  const cv =
    flags.cv === false
      ? undefined
      : crossValidateRoofline(set, { rounds: flags.cvRounds ?? FIDELITY_DEFAULTS.cvRounds, ...(tty ? { onFold: (f: number) => process.stderr.write(`  cross-validation fold ${f}…\n`) } : {}) });
  const json = fidelityJson(set.dir, latency, rows, cv);
  if (flags.json === true) {
    process.stdout.write(json);
    return;
  }
  const m = medianAbsErrors(rows);
  const derived = rows.filter((r) => r.kvBlocksDerived && r.error === undefined).length;
  const lines = [
    `fidelity of latency '${latency}' on ${set.dir}: ${rows.length} experiments (${m.n} recommended ones in the medians)`,
    '',
    formatTable(HEADER, experimentRows(rows)),
    '',
    `median |error| over ${m.n} recommended (in-sample for the shipped roofline calibration): TTFT ${abs(m.ttft)}, ITL ${abs(m.itl)}, E2E ${abs(m.e2e)}`,
  ];
  if (derived > 0) lines.push(`${derived} experiment(s) had a blank total_kv_blocks: KV blocks derived from GPU memory × gpu_memory_utilization − weights − activations, marked (derived)`);
  if (cv !== undefined) {
    lines.push('', formatTable(CV_HEADER, cvRows(cv)));
    lines.push(`held-out median |error| (each experiment predicted by the calibration fitted on the other fold): TTFT ${abs(cv.heldOut.ttft)}, ITL ${abs(cv.heldOut.itl)}, E2E ${abs(cv.heldOut.e2e)}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  const html = renderReportHtml({
    title: 'kvmgr fidelity: simulated vs measured vLLM',
    subtitle: [`validation folder: ${set.dir}`, `latency: ${latency}; median |error| TTFT ${abs(m.ttft)}, ITL ${abs(m.itl)}, E2E ${abs(m.e2e)} over ${m.n} recommended experiments`],
    tables: [{ title: 'Per experiment', header: HEADER, rows: experimentRows(rows) }, ...(cv === undefined ? [] : [{ title: 'Roofline calibration, two-fold cross-validation', header: CV_HEADER, rows: cvRows(cv) }])],
    charts: [
      scatter('ttft', 'Mean TTFT: simulated vs measured', rows, (t) => t.ttft),
      scatter('itl', 'Mean ITL: simulated vs measured', rows, (t) => t.itl),
      scatter('e2e', 'Mean E2E: simulated vs measured', rows, (t) => t.e2e),
    ],
  });
  const written = writeOutputs(flags.out ?? FIDELITY_DEFAULTS.out, { 'fidelity.json': json, 'fidelity.html': html });
  process.stdout.write(`\nwrote ${written.join(', ')}\n`);
}
