/**
 * Two-fold cross-validation of the roofline calibration only (what `kvmgr fidelity` runs after
 * the table): prints each fold's calibration, in-sample and held-out medians, the held-out rows
 * and the pooled held-out medians.
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/cv.ts --validation DIR [--rounds 2] [--json out.json]
 */
import { writeFileSync } from 'node:fs';
import { crossValidateRoofline, loadValidationSet } from '../src/index.js';
import { validationDir } from './validation-dir.js';

const args = process.argv.slice(2);
const arg = (k: string): string | undefined => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1] : undefined;
};
const set = loadValidationSet(validationDir(args));
const t0 = performance.now();
const cv = crossValidateRoofline(set, { rounds: Number(arg('--rounds') ?? 2), onFold: (f) => process.stderr.write(`fold ${f}…\n`) });
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const sgn = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
for (const [i, f] of cv.folds.entries()) {
  console.log(`fold ${i}: fit ${f.fit.length} in-sample ${pct(f.inSample.ttft)} / ${pct(f.inSample.itl)} / ${pct(f.inSample.e2e)}, held-out ${pct(f.heldOut.ttft)} / ${pct(f.heldOut.itl)} / ${pct(f.heldOut.e2e)} (TTFT / ITL / E2E)`);
  console.log(`  ${JSON.stringify(f.calibration)}`);
  for (const r of f.rows) console.log(`  ${r.experiment} tp${r.tp}: ttft ${r.measured.ttft.toFixed(1)}/${r.sim.ttft.toFixed(1)} ${sgn(r.err.ttft)} itl ${sgn(r.err.itl)} e2e ${sgn(r.err.e2e)}`);
}
console.log(`pooled held-out (${cv.heldOut.n}): TTFT ${pct(cv.heldOut.ttft)} ITL ${pct(cv.heldOut.itl)} E2E ${pct(cv.heldOut.e2e)} (${Math.round((performance.now() - t0) / 1000)} s)`);
const json = arg('--json');
if (json !== undefined) writeFileSync(json, JSON.stringify(cv, null, 1));
