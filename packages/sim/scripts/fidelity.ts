/**
 * Check 1 (fidelity), script form of `kvmgr fidelity` without cross-validation: replays every
 * experiment of a validation folder and prints the error of mean TTFT, ITL and E2E per
 * experiment and their medians (over `recommended_for_fidelity`).
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/fidelity.ts --validation DIR [--latency auto|roofline|blis] [--calibration JSON] [--filter substr] [--json out.json]
 */
import { writeFileSync } from 'node:fs';
import { loadValidationSet, medianAbsErrors, runFidelity } from '../src/index.js';
import { validationDir } from './validation-dir.js';

const args = process.argv.slice(2);
const arg = (k: string): string | undefined => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1] : undefined;
};
const set = loadValidationSet(validationDir(args));
const latency = (arg('--latency') ?? 'auto') as 'auto' | 'roofline' | 'blis';
const filter = arg('--filter');
const calibration = arg('--calibration') ? JSON.parse(arg('--calibration') as string) : undefined;
const rows = runFidelity(set, {
  latency,
  ...(calibration === undefined ? {} : { calibration }),
  ...(filter === undefined ? {} : { include: (e) => e.name.includes(filter) }),
  onRow: (r) => process.stderr.write(`${r.experiment}: ${r.error ?? `${r.latency} ttft ${(r.err.ttft * 100).toFixed(1)}% itl ${(r.err.itl * 100).toFixed(1)}% e2e ${(r.err.e2e * 100).toFixed(1)}% (${r.wallMs} ms)`}\n`),
});
const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
console.log('| experiment | latency model | TTFT meas / sim (ms) | err | ITL meas / sim (ms) | err | E2E meas / sim (ms) | err |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.experiment}${r.recommended ? '' : ' (not in medians)'} | ${r.latency} | ${r.measured.ttft.toFixed(1)} / ${r.sim.ttft.toFixed(1)} | ${pct(r.err.ttft)} | ${r.measured.itl.toFixed(2)} / ${r.sim.itl.toFixed(2)} | ${pct(r.err.itl)} | ${r.measured.e2e.toFixed(0)} / ${r.sim.e2e.toFixed(0)} | ${pct(r.err.e2e)} |`,
  );
}
const m = medianAbsErrors(rows);
console.log(`| **median \\|error\\| (${m.n} recommended)** | | | ${(m.ttft * 100).toFixed(1)}% | | ${(m.itl * 100).toFixed(1)}% | | ${(m.e2e * 100).toFixed(1)}% |`);
const json = arg('--json');
if (json !== undefined) writeFileSync(json, JSON.stringify(rows, null, 1));
