/**
 * Checks 2 and 4 on the synthetic templated workload: prequential metrics of each predictor,
 * and the relative-error recovery after a distribution shift. Prints Markdown.
 *
 * Run from packages/lifetime-predictor:
 *   node --conditions=@kvmgr/source --import tsx scripts/eval-synthetic.ts
 */
import { createPredictor, evaluatePrequential, listPredictors, templatedWorkload } from '../src/index.js';

const f = (x: number, d: number): string => x.toFixed(d);
console.log('| predictor | MAE (tok) | within 10 % | Kendall τ | p90 coverage |');
console.log('|---|---:|---:|---:|---:|');
for (const name of listPredictors()) {
  const r = evaluatePrequential(templatedWorkload(), createPredictor(name));
  console.log(`| ${name} | ${f(r.mae, 1)} | ${f(r.within10, 3)} | ${f(r.kendallTau, 3)} | ${f(r.p90Coverage, 3)} |`);
}
console.log('\nShift at request 2000: mean relative error of p50 over 200-request windows');
const offsets = [0, 200, 400, 600, 800, 1000, 1500, 1800];
console.log(`| predictor | before | ${offsets.map((o) => `+${o}`).join(' | ')} |`);
console.log(`|---|---:|${offsets.map(() => '---:').join('|')}|`);
for (const name of listPredictors()) {
  const p = createPredictor(name);
  const errs: number[] = [];
  for (const r of templatedWorkload({ requests: 4000, shiftAt: 2000 })) {
    errs.push(Math.abs(p.predict(r.features).p50 - r.actualOutputTokens) / r.actualOutputTokens);
    p.observe(r.features, r.actualOutputTokens);
  }
  const win = (a: number): number => errs.slice(a, a + 200).reduce((x, y) => x + y, 0) / 200;
  console.log(`| ${name} | ${f(win(1800), 3)} | ${offsets.map((o) => f(win(2000 + o), 3)).join(' | ')} |`);
}
