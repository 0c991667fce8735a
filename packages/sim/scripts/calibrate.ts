/**
 * Fits the roofline model's global calibration (efficiencies and overheads, the same for every
 * model and TP) on the recommended validation experiments by coordinate descent, minimising
 * median |E2E error| + median |ITL error| + 0.5 × median |TTFT error|. Prints each improvement.
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/calibrate.ts [start-calibration-json] [--fold 0|1]
 */
import { DEFAULT_ROOFLINE_CALIBRATION, type RooflineCalibration } from '../src/index.js';
import { experiments, median, runFidelity } from './fidelity-lib.js';

// `--fold k` (k = 0 or 1): fit on every other recommended experiment (index parity k) only, then
// report the errors on the other half (two-fold cross-validation of the calibration).
const foldArg = process.argv.indexOf('--fold');
const fold = foldArg >= 0 ? Number(process.argv[foldArg + 1]) : -1;
const rec = experiments.filter((e) => e.recommended_for_fidelity === 'true').map((e) => e.experiment as string);
const inFold = (name: string): boolean => fold < 0 || rec.indexOf(name) % 2 === fold;
const outFold = (name: string): boolean => fold >= 0 && rec.indexOf(name) % 2 !== fold;

type Cal = { -readonly [K in keyof RooflineCalibration]: RooflineCalibration[K] };
const startArg = process.argv[2]?.startsWith('{') ? process.argv[2] : undefined;
const start: Cal = { ...DEFAULT_ROOFLINE_CALIBRATION, ...(startArg ? JSON.parse(startArg) : {}) };
const steps: Partial<Record<keyof Cal, number>> = {
  mfu: 0.1,
  bwEfficiency: 0.05,
  stepOverheadUs: 400,
  perSeqOverheadUs: 10,
  allReduceLatencyUs: 10,
  queueingUs: 4000,
  attnMfu: 0.1,
};
const bounds: Partial<Record<keyof Cal, [number, number]>> = {
  mfu: [0.1, 1],
  attnMfu: [0.1, 1],
  bwEfficiency: [0.5, 1],
  stepOverheadUs: [0, 10000],
  perSeqOverheadUs: [0, 200],
  allReduceLatencyUs: [0, 200],
  queueingUs: [0, 60000],
};
function score(c: Cal): number {
  const rows = runFidelity('roofline', undefined, c, true, true, inFold);
  const s =
    median(rows.map((r) => Math.abs(r.err.e2e))) + median(rows.map((r) => Math.abs(r.err.itl))) + 0.5 * median(rows.map((r) => Math.abs(r.err.ttft)));
  return s;
}
let best = { ...start };
let bestScore = score(best);
console.log(JSON.stringify({ score: bestScore, cal: best }));
const rounds = Number(process.env.CALIBRATE_ROUNDS ?? 3);
for (let round = 0; round < rounds; round++) {
  for (const k of Object.keys(steps) as (keyof Cal)[]) {
    for (const dir of [1, -1]) {
      const c = { ...best };
      const [lo, hi] = bounds[k] as [number, number];
      c[k] = Math.min(hi, Math.max(lo, (c[k] as number) + dir * (steps[k] as number) / (round + 1)));
      if (c[k] === best[k]) continue;
      const s = score(c);
      if (s < bestScore) {
        bestScore = s;
        best = c;
        console.log(JSON.stringify({ round, k, score: s, cal: best }));
        break;
      }
    }
  }
}
console.log('final', JSON.stringify({ score: bestScore, cal: best }));
if (fold >= 0) {
  const rows = runFidelity('roofline', undefined, best, true, true, outFold);
  const m = (f: (r: (typeof rows)[number]) => number): string => `${(median(rows.map(f)) * 100).toFixed(1)}%`;
  console.log(
    `held-out fold (${rows.length} experiments): median |E2E| ${m((r) => Math.abs(r.err.e2e))}, |ITL| ${m((r) => Math.abs(r.err.itl))}, |TTFT| ${m((r) => Math.abs(r.err.ttft))}`,
  );
}
