/**
 * Issue #20: the model-selecting predictor (`auto`: gbdt while its recent prequential error
 * beats the global median's, else the global median) against the global-median baseline and
 * plain `gbdt`, on every real trace in the shared data folder (`$KVMGR_SHARED/traces`, else
 * `../shared/traces` beside the repository; a missing trace is skipped with a line on stderr)
 * and on the generated workloads. Prints Markdown: MAE ratio to global-median, p90 coverage,
 * share served by the learned model.
 *
 * Run from packages/lifetime-predictor:
 *   node --conditions=@kvmgr/source --import tsx scripts/eval-selection.ts
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRng } from '@kvmgr/core';
import { AutoPredictor, createPredictor, evaluatePrequential, loadTrace, templatedWorkload } from '../src/index.js';
import type { TraceRecord } from '../src/index.js';
import { sharedDir } from '../../../scripts/shared-data.js';

const dir = join(sharedDir(), 'traces');
const files = [
  'mooncake_fast25_conversation_trace.jsonl',
  'azure_llm_2023_conv.csv',
  'sharegpt_8k_filtered_stats_llama2_tokenizer.csv',
  'arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv',
  'bwb_stats_llama2_tokenizer_filtered_v2.csv',
];
const sets: [string, TraceRecord[]][] = [];
for (const f of files) {
  if (existsSync(join(dir, f))) sets.push([f.split('_')[0] as string, loadTrace(join(dir, f))]);
  else console.error(`eval-selection: skipped ${f}: not found in ${dir} (set KVMGR_SHARED to the folder holding traces/)`);
}
/** The same lengths with outputs permuted (seeded): the prompt length carries no signal. */
function shuffled(records: readonly TraceRecord[]): TraceRecord[] {
  const rng = createRng(11);
  const ys = rng.shuffle(records.map((r) => r.actualOutputTokens));
  return records.map((r, i) => ({ features: r.features, actualOutputTokens: ys[i] as number }));
}
for (const [name, records] of [...sets]) if (name === 'azure' || name === 'bwb') sets.push([`${name}, outputs shuffled (no signal)`, shuffled(records)]);
sets.push(['templated (generated)', templatedWorkload()]);
sets.push(['templated + shift (generated)', templatedWorkload({ requests: 4000, shiftAt: 2000 })]);
const f = (x: number, d: number): string => x.toFixed(d);
console.log('| trace | n | global-median MAE | gbdt MAE / median | auto MAE / median | auto p90 coverage | gbdt p90 coverage | served by gbdt | serving at the end |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|');
for (const [name, records] of sets) {
  const base = evaluatePrequential(records, createPredictor('global-median'));
  const gbdt = evaluatePrequential(records, createPredictor('gbdt'));
  const auto = new AutoPredictor();
  const r = evaluatePrequential(records, auto);
  console.log(
    `| ${name} | ${r.n} | ${f(base.mae, 1)} | ${f(gbdt.mae / base.mae, 3)} | ${f(r.mae / base.mae, 3)} | ${f(r.p90Coverage, 3)} | ${f(gbdt.p90Coverage, 3)} | ${f(100 * auto.learnedShare, 0)}% | ${auto.serving === 'learned' ? auto.models.learned : auto.models.baseline} |`,
  );
}
