/**
 * The sections behind `packages/lifetime-predictor/README.md`: the prequential evaluations of
 * `packages/lifetime-predictor/scripts/` (real traces, the templated workload and its shift,
 * model selection) and the Mooncake bound. Renderers read only the cached outputs.
 */
import { mdTableText, num, parseBenchTable, parseMdTable, pct } from './format.js';
import { runTime } from './meta.js';
import type { Outputs, Section } from './sections.js';

const MOONCAKE = 'traces/mooncake_fast25_conversation_trace.jsonl';
const AZURE = 'traces/azure_llm_2023_conv.csv';
const TSX = 'node --conditions=@kvmgr/source --import tsx';

/** `cd packages/lifetime-predictor && node … scripts/NAME.ts`, as the README shows it. */
function display(script: string): string {
  return `cd packages/lifetime-predictor && ${TSX} scripts/${script}`;
}

/** The table, and a line with the command and how long it took. */
function tableWithTime(out: Outputs, section: string, script: string, which = 0): string {
  const o = out(section);
  const tables = o.stdout.split(/\n\s*\n/).filter((p) => p.includes('|'));
  return [mdTableText(tables[which] ?? ''), '', `(\`${TSX} scripts/${script}\`: ${runTime(o.dir)}.)`].join('\n');
}

// --- eval-traces.ts ---

function traceRows(out: Outputs): Record<string, string>[] {
  return parseMdTable(out('predictor-eval-traces').stdout);
}

/** Check 1's targets (best MAE ≤ 0.6 × global-median, Kendall τ ≥ 0.4, p90 coverage 0.88–0.92) per trace. */
function traceVerdict(out: Outputs): string {
  const rows = traceRows(out);
  const traces = [...new Set(rows.map((r) => r.trace as string))];
  return traces
    .map((t) => {
      const at = rows.filter((r) => r.trace === t && r.predictor !== 'global-median');
      const best = at.reduce((m, r) => (Number(r['MAE / global-median']) < Number(m['MAE / global-median']) ? r : m));
      const ratio = Number(best['MAE / global-median']);
      const tau = Number(best['Kendall τ']);
      const cov = at.map((r) => Number(r['p90 coverage']));
      const covOk = cov.every((c) => c >= 0.88 && c <= 0.92);
      const met = ratio <= 0.6 && tau >= 0.4 && covOk;
      return `- **${t}: ${met ? 'met' : 'not met'}** — best MAE \`${best.predictor}\` ${num(ratio, 3)}× global-median (target ≤ 0.6), its Kendall τ ${num(tau, 3)} (target ≥ 0.4); p90 coverage ${num(Math.min(...cov), 3)}–${num(Math.max(...cov), 3)} over all predictors (target 0.88–0.92: ${covOk ? 'met' : 'not met'}).`;
    })
    .join('\n');
}

// --- mooncake-bound.ts ---

interface Bound {
  readonly requests: number;
  readonly firstTurns: number;
  readonly followUps: number;
  readonly promptOutputPearson: number;
  readonly firstTurnPromptOutputPearson: number;
  readonly globalMedianMae: number;
  readonly firstBestConstantMae: number;
  readonly perfectFollowUpsMae: number;
  readonly hindsightRuleMae: number;
}

function boundText(out: Outputs): string {
  const b = out('predictor-mooncake-bound').json<Bound>('bound.json');
  const onlineMae = traceRows(out)
    .filter((r) => r.trace === 'mooncake' && !['constant', 'global-median'].includes(r.predictor as string))
    .map((r) => Number(r['MAE (tok)']));
  return [
    `${num(b.firstTurns)} of ${num(b.requests)} requests (${pct(b.firstTurns / b.requests, 0)}) are first turns, whose only feature is the prompt length`,
    `(Pearson r of prompt length with output: ${num(b.promptOutputPearson, 2)} over all requests, ${num(b.firstTurnPromptOutputPearson, 2)} over first turns);`,
    `the best *constant* in hindsight has MAE ${num(b.firstBestConstantMae, 1)} on them. Even predicting every one of the ${num(b.followUps)} follow-up turns perfectly would give`,
    `(${num(b.firstTurns)} × ${num(b.firstBestConstantMae, 1)}) / ${num(b.requests)} = ${num(b.perfectFollowUpsMae, 1)} tokens = ${num(b.perfectFollowUpsMae / b.globalMedianMae, 3)}× the global median's hindsight MAE (${num(b.globalMedianMae, 1)}):`,
    `the target is ${b.perfectFollowUpsMae / b.globalMedianMae <= 0.6 ? 'reachable only with (almost) no error on follow-ups' : 'out of reach even with no error on follow-ups'}.`,
    `In hindsight, "previous turn's length for follow-ups, global median for first turns" scores ${num(b.hindsightRuleMae, 1)} (${num(b.hindsightRuleMae / b.globalMedianMae, 3)}×);`,
    `the online predictors above get ${num(Math.min(...onlineMae), 1)}–${num(Math.max(...onlineMae), 1)} without hindsight.`,
  ].join('\n');
}

// --- eval-selection.ts ---

function selectionSummary(out: Outputs): string {
  const rows = parseMdTable(out('predictor-eval-selection').stdout);
  const auto = rows.map((r) => ({ trace: r.trace as string, x: Number(r['auto MAE / median']) }));
  const worst = auto.reduce((m, r) => (r.x > m.x ? r : m));
  const best = auto.reduce((m, r) => (r.x < m.x ? r : m));
  const cov = rows.map((r) => Number(r['auto p90 coverage']));
  return `Worst: ${num(worst.x, 3)}× the median (${worst.trace}); best: ${num(best.x, 3)}× (${best.trace}); \`auto\`'s p90 coverage ${num(Math.min(...cov), 3)}–${num(Math.max(...cov), 3)}.`;
}

// --- bench-lifetime-predictor (section of sections.ts) ---

/** Check 3's target (every `predict` p99 ≤ 50 µs), the hand-written LSTM forward pass against tfjs, one retraining. */
function benchSummary(out: Outputs): string {
  const o = out('bench-lifetime-predictor');
  const rows = parseBenchTable(o.stdout);
  const predict = rows.filter((r) => r.name.startsWith('predict ') && r.p99Us !== undefined);
  const worst = predict.reduce((m, r) => ((r.p99Us as number) > (m.p99Us as number) ? r : m));
  const hand = rows.find((r) => r.name === 'lstm forward hand-written');
  const retrain = /"lstm retrain ms[^"]*":\s*(\d+)/.exec(o.stdout)?.[1];
  return [
    `In that run the slowest \`predict\` p99 was ${num(worst.p99Us, 1)} µs (\`${worst.name}\`; target ≤ 50 µs: ${(worst.p99Us as number) <= 50 ? 'met' : 'not met'}),`,
    hand === undefined ? '' : `the hand-written LSTM forward pass ran ${num(hand.speedup, 0)}× as fast as tfjs's \`model.predict\` (mean),`,
    retrain === undefined ? '' : `and one LSTM retraining (40 Adam steps, batch 64, tfjs CPU backend) took ${num(Number(retrain))} ms.`,
  ]
    .filter((l) => l !== '')
    .join('\n');
}

/** Blocks rendered from `bench-lifetime-predictor` (added to that section in `sections.ts`). */
export const PREDICTOR_BENCH_BLOCKS: Readonly<Record<string, (out: Outputs) => string>> = {
  'bench-lifetime-predictor-summary': benchSummary,
};

/** The sections, appended to `SECTIONS` in `sections.ts`. */
export const PREDICTOR_SECTIONS: readonly Section[] = [
  {
    name: 'predictor-eval-traces',
    display: display('eval-traces.ts'),
    script: 'packages/lifetime-predictor/scripts/eval-traces.ts',
    args: [],
    needs: [MOONCAKE, AZURE],
    produces: ['stdout.txt'],
    blocks: {
      'predictor-eval-traces-table': (out) => tableWithTime(out, 'predictor-eval-traces', 'eval-traces.ts'),
      'predictor-eval-traces-verdict': traceVerdict,
    },
  },
  {
    name: 'predictor-mooncake-bound',
    display: display('mooncake-bound.ts'),
    script: 'packages/lifetime-predictor/scripts/mooncake-bound.ts',
    args: [],
    needs: [MOONCAKE],
    stdoutFile: 'bound.json',
    produces: ['bound.json'],
    blocks: { 'predictor-mooncake-bound': boundText },
  },
  {
    name: 'predictor-eval-synthetic',
    display: display('eval-synthetic.ts'),
    script: 'packages/lifetime-predictor/scripts/eval-synthetic.ts',
    args: [],
    produces: ['stdout.txt'],
    blocks: {
      'predictor-synthetic-table': (out) => tableWithTime(out, 'predictor-eval-synthetic', 'eval-synthetic.ts', 0),
      'predictor-shift-table': (out) => mdTableText((out('predictor-eval-synthetic').stdout.split(/\n\s*\n/).filter((p) => p.includes('|'))[1] ?? '').trim()),
    },
  },
  {
    name: 'predictor-eval-selection',
    display: display('eval-selection.ts'),
    script: 'packages/lifetime-predictor/scripts/eval-selection.ts',
    args: [],
    needs: [MOONCAKE],
    produces: ['stdout.txt'],
    blocks: {
      'predictor-selection-table': (out) => tableWithTime(out, 'predictor-eval-selection', 'eval-selection.ts'),
      'predictor-selection-summary': selectionSummary,
    },
  },
];
