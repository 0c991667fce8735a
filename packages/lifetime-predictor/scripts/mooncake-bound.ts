/**
 * Why check 1's MAE target (≤ 0.6 × the global median) is out of reach on the Mooncake
 * conversation trace: the share of first turns (no session history), how little the prompt
 * length says about the output (Pearson r, over all requests and over first turns), the best constant's MAE on them in hindsight, the
 * MAE a predictor would get with zero error on every follow-up turn, and a hindsight rule
 * (previous turn's output for follow-ups, the global median for first turns). Prints JSON.
 *
 * Run from packages/lifetime-predictor (the trace comes from `$KVMGR_SHARED/traces`, else
 * `../shared/traces` beside the repository; without it the script says so and exits 0):
 *   node --conditions=@kvmgr/source --import tsx scripts/mooncake-bound.ts [trace.jsonl]
 */
import { sharedTraceOrSkip } from '../../../scripts/shared-data.js';
import { loadTrace } from '../src/index.js';

const path = process.argv[2] ?? sharedTraceOrSkip('mooncake-bound', 'mooncake_fast25_conversation_trace.jsonl');
const records = loadTrace(path);

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? (s[s.length >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const sumAbs = (ys: readonly number[], guess: (i: number) => number): number => ys.reduce((a, y, i) => a + Math.abs(y - guess(i)), 0);
function pearson(x: readonly number[], y: readonly number[]): number {
  const mx = x.reduce((a, b) => a + b, 0) / x.length;
  const my = y.reduce((a, b) => a + b, 0) / y.length;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < x.length; i++) {
    const dx = (x[i] as number) - mx;
    const dy = (y[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / Math.sqrt(sxx * syy);
}

const n = records.length;
const all = records.map((r) => r.actualOutputTokens);
const first = records.filter((r) => (r.features.sessionHistory?.length ?? 0) === 0);
const firstOut = first.map((r) => r.actualOutputTokens);
const globalMedian = median(all);
// The best constant in hindsight for absolute error is the median.
const globalMedianMae = sumAbs(all, () => globalMedian) / n;
const firstMedian = median(firstOut);
const firstBestConstantMae = sumAbs(firstOut, () => firstMedian) / first.length;
// Zero error on every follow-up turn: only the first turns' error remains.
const perfectFollowUpsMae = (first.length * firstBestConstantMae) / n;
const hindsightRuleMae =
  sumAbs(all, (i) => {
    const h = records[i]?.features.sessionHistory ?? [];
    return h.length > 0 ? (h[h.length - 1] as number) : globalMedian;
  }) / n;

process.stdout.write(
  `${JSON.stringify(
    {
      trace: path.split('/').pop(),
      requests: n,
      firstTurns: first.length,
      followUps: n - first.length,
      promptOutputPearson: pearson(
        records.map((r) => r.features.promptTokens),
        all,
      ),
      firstTurnPromptOutputPearson: pearson(
        first.map((r) => r.features.promptTokens),
        firstOut,
      ),
      globalMedian,
      globalMedianMae,
      firstBestConstantMae,
      perfectFollowUpsMae,
      hindsightRuleMae,
    },
    null,
    2,
  )}\n`,
);
