/**
 * Fits the roofline model's global calibration (efficiencies and overheads, the same for every
 * model, GPU and TP) on every recommended experiment of a validation folder, from
 * `CV_START_CALIBRATION` (or a JSON start). Prints each improvement and the final calibration:
 * the source of `DEFAULT_ROOFLINE_CALIBRATION`. Its held-out error comes from the two-fold
 * cross-validation of `kvmgr fidelity`, which runs the same fit on half the experiments.
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/calibrate.ts --validation DIR [--rounds 3] [--start '{"mfu":0.4}']
 */
import { CV_START_CALIBRATION, fitRooflineCalibration, loadValidationSet } from '../src/index.js';
import { validationDir } from './validation-dir.js';

const args = process.argv.slice(2);
const arg = (k: string): string | undefined => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1] : undefined;
};
const set = loadValidationSet(validationDir(args));
const start = { ...CV_START_CALIBRATION, ...(arg('--start') ? JSON.parse(arg('--start') as string) : {}) };
const fit = set.experiments.filter((e) => e.recommended);
const t0 = performance.now();
const r = fitRooflineCalibration(set, fit, {
  start,
  rounds: Number(arg('--rounds') ?? 3),
  onImprove: (score, cal) => console.log(JSON.stringify({ score: Number(score.toFixed(4)), cal })),
});
console.log('final', JSON.stringify({ score: r.score, evaluations: r.evaluations, wallS: Math.round((performance.now() - t0) / 1000), cal: r.calibration }));
