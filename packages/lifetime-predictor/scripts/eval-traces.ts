/**
 * Check 1: prequential evaluation of every registered predictor on the Mooncake conversation
 * trace and the Azure 2023 conversation trace. Prints a Markdown table (pasted into the README)
 * and writes `scripts/eval-traces.json`.
 *
 * Run from packages/lifetime-predictor:
 *   node --conditions=@kvmgr/source --import tsx scripts/eval-traces.ts
 */
import { writeFileSync } from 'node:fs';
import { createPredictor, evaluatePrequential, listPredictors, loadTrace } from '../src/index.js';
import type { EvaluationResult } from '../src/index.js';

const dir = new URL('../../../../shared/traces/', import.meta.url).pathname;
const traces = ['mooncake_fast25_conversation_trace.jsonl', 'azure_llm_2023_conv.csv'];
const only = process.argv.slice(2);
const rows: (EvaluationResult & { trace: string; wallS: number; maeVsGlobalMedian: number })[] = [];
const f = (x: number, d: number): string => x.toFixed(d);
console.log('| trace | predictor | n | MAE (tok) | MAE / global-median | within 10 % | Kendall τ | p90 coverage | predict p50 / p99 (µs) | observe mean (µs) |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const t of traces) {
  const records = loadTrace(dir + t);
  const baseMae = evaluatePrequential(records, createPredictor('global-median')).mae;
  for (const name of listPredictors()) {
    if (only.length > 0 && !only.includes(name) && name !== 'global-median') continue;
    const t0 = performance.now();
    const r = evaluatePrequential(records, createPredictor(name));
    const wallS = (performance.now() - t0) / 1000;
    const ratio = r.mae / baseMae;
    rows.push({ ...r, trace: t, wallS, maeVsGlobalMedian: ratio });
    console.log(
      `| ${t.split('_')[0]} | ${name} | ${r.n} | ${f(r.mae, 1)} | ${f(ratio, 3)} | ${f(r.within10, 3)} | ${f(r.kendallTau, 3)} | ${f(r.p90Coverage, 3)} | ${f(r.predictP50Us, 1)} / ${f(r.predictP99Us, 1)} | ${f(r.observeMeanUs, 1)} |`,
    );
  }
}
writeFileSync(new URL('./eval-traces.json', import.meta.url), `${JSON.stringify(rows, null, 2)}\n`);
