/**
 * Check 1 (fidelity): replays every experiment of ../shared/validation (real vLLM 0.15.1 on
 * H100) with its model, TP, engine limits and KV capacity, and prints the error of mean TTFT,
 * mean ITL and mean E2E per experiment and their medians (over `recommended_for_fidelity`).
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/fidelity.ts [--latency auto|roofline|blis] [--filter substr] [--json out.json]
 */
import { writeFileSync } from 'node:fs';
import { median as med, runFidelity } from './fidelity-lib.js';

const args = process.argv.slice(2);
const arg = (k: string): string | undefined => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1] : undefined;
};
const latencyChoice = (arg('--latency') ?? 'auto') as 'auto' | 'roofline' | 'blis';
const filter = arg('--filter');
const calib = arg('--calibration') ? JSON.parse(arg('--calibration') as string) : undefined;
const out = runFidelity(latencyChoice, filter, calib);
const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
console.log('| experiment | latency model | TTFT meas / sim (ms) | err | ITL meas / sim (ms) | err | E2E meas / sim (ms) | err |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of out) {
  console.log(
    `| ${r.experiment}${r.recommended ? '' : ' (overloaded, not in medians)'} | ${r.latency} | ${r.measured.ttft.toFixed(1)} / ${r.sim.ttft.toFixed(1)} | ${pct(r.err.ttft)} | ${r.measured.itl.toFixed(2)} / ${r.sim.itl.toFixed(2)} | ${pct(r.err.itl)} | ${r.measured.e2e.toFixed(0)} / ${r.sim.e2e.toFixed(0)} | ${pct(r.err.e2e)} |`,
  );
}
const rec = out.filter((r) => r.recommended);
console.log(
  `| **median \\|error\\| (${rec.length} recommended)** | | | ${(med(rec.map((r) => Math.abs(r.err.ttft))) * 100).toFixed(1)}% | | ${(med(rec.map((r) => Math.abs(r.err.itl))) * 100).toFixed(1)}% | | ${(med(rec.map((r) => Math.abs(r.err.e2e))) * 100).toFixed(1)}% |`,
);
const json = arg('--json');
if (json !== undefined) writeFileSync(json, JSON.stringify(out, null, 1));
