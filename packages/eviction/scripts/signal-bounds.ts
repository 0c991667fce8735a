/**
 * How much would a reuse signal have to know for `predictive` to reach #5's goal (≥ 50% of
 * Belady at 1k and 3k blocks, ≥ 90% at 10k and 30k) on the Mooncake conversation trace?
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/signal-bounds.ts [trace.jsonl]
 *
 * The trace defaults to the Mooncake conversation trace in the shared data folder
 * (`$KVMGR_SHARED/traces`, else `../shared/traces` beside the repository); without it the
 * script says so and exits 0.
 *
 * Analysis only: every signal below except `none` is computed from the trace's FUTURE or fitted
 * on the whole trace, which no online policy may do. Each one is fed to the predictive policy
 * with `signal: 'combine'` (it splits the 48 built-in feature classes by the signal), so a
 * row shows what that much knowledge would be worth to the same policy:
 *
 * - `oracle follow-up`: 1 when a later request reuses the prompt's last full block (the
 *   conversation comes back, or a branch or resend reuses it), else 0; "x% flipped" replaces
 *   the label by its opposite for a seeded random x% of prompts.
 * - `oracle follow-up within 120 s`: the same, counting only reuses within 120 s.
 * - `hindsight logistic regression`: a logistic regression on what is known about a prompt by
 *   the time its request completes (conversation turn, first-turn flag, log new blocks, log
 *   prompt blocks, log gap since the previous turn, log output tokens, output < 30 and ≥ 500
 *   flags), fitted on ALL prompts of the trace to the label named; the signal is the prompt's
 *   rank by the fitted score (top half = 1, else 0; or its quarter). An online learner with
 *   these features can do no better than a model fitted on the very data it is scored on.
 *
 * Prompts of fewer than 3 blocks (root and last block only) carry no signal.
 */
import { sharedTraceOrSkip } from '../../../scripts/shared-data.js';
import { type BlockTraceRequest, type PredictiveEntryInfo, PredictivePolicy, blockAccessSequence, createEvictionPolicy, followUpGapsMs, readBlockTrace, replayBlockTrace } from '../src/index.js';

const path = process.argv[2] ?? sharedTraceOrSkip('signal-bounds', 'mooncake_fast25_conversation_trace.jsonl');
const requests = readBlockTrace(path);
const accesses = blockAccessSequence(requests);
const capacities = [1000, 3000, 10000, 30000];
const n = requests.length;

// Seconds from each prompt's arrival to the next request that reuses its last full block.
const futureGapS = followUpGapsMs(requests).map((ms) => ms / 1000);
const hasSignal = (i: number): boolean => !Number.isNaN(futureGapS[i] as number);

// Conversation structure, known online: a prompt continues the latest earlier prompt whose
// blocks (all, or all but its last) are a prefix of it.
const turn = new Float64Array(n);
const prevGapS = new Float64Array(n);
const newBlocks = new Float64Array(n);
{
  const byPrefix = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = requests[i] as BlockTraceRequest;
    const h = r.blocks;
    let parent = -1;
    for (let len = h.length; len > 1 && parent === -1; len--) parent = byPrefix.get(h.slice(0, len).join(',')) ?? -1;
    if (parent !== -1) {
      const p = requests[parent] as BlockTraceRequest;
      turn[i] = (turn[parent] as number) + 1;
      prevGapS[i] = (r.timestampMs - p.timestampMs) / 1000;
      newBlocks[i] = h.length - (p.blocks.length - 1);
    } else newBlocks[i] = h.length;
    if (h.length > 1) byPrefix.set(h.slice(0, -1).join(','), i);
    const whole = h.join(',');
    if (!byPrefix.has(whole)) byPrefix.set(whole, i);
  }
}

function features(i: number): number[] {
  const o = (requests[i] as BlockTraceRequest).outputTokens ?? 0;
  const t = turn[i] as number;
  return [Math.min(t, 8), t === 0 ? 1 : 0, Math.log1p(newBlocks[i] as number), Math.log1p((requests[i] as BlockTraceRequest).blocks.length), Math.log1p(prevGapS[i] as number), Math.log1p(o), o < 30 ? 1 : 0, o >= 500 ? 1 : 0];
}

/** Logistic regression by full-batch gradient descent on standardised features; returns scores. */
function fitLogistic(label: (i: number) => boolean): { score: Float64Array; auc: number } {
  const rows: number[] = [];
  for (let i = 0; i < n; i++) if (hasSignal(i)) rows.push(i);
  const x = rows.map(features);
  const d = (x[0] as number[]).length;
  const mu = new Float64Array(d);
  const sd = new Float64Array(d);
  for (const v of x) for (let k = 0; k < d; k++) mu[k] = (mu[k] as number) + (v[k] as number) / x.length;
  for (const v of x) for (let k = 0; k < d; k++) sd[k] = (sd[k] as number) + ((v[k] as number) - (mu[k] as number)) ** 2 / x.length;
  for (let k = 0; k < d; k++) sd[k] = Math.sqrt(sd[k] as number) || 1;
  const z = x.map((v) => v.map((a, k) => (a - (mu[k] as number)) / (sd[k] as number)));
  const y = rows.map((i) => (label(i) ? 1 : 0));
  const w = new Float64Array(d + 1);
  const dot = (v: number[]): number => v.reduce((s, a, k) => s + a * (w[k + 1] as number), w[0] as number);
  for (let it = 0; it < 2000; it++) {
    const g = new Float64Array(d + 1);
    z.forEach((v, r) => {
      const e = 1 / (1 + Math.exp(-dot(v))) - (y[r] as number);
      g[0] = (g[0] as number) + e;
      for (let k = 0; k < d; k++) g[k + 1] = (g[k + 1] as number) + e * (v[k] as number);
    });
    for (let k = 0; k <= d; k++) w[k] = (w[k] as number) - (0.5 * (g[k] as number)) / z.length;
  }
  const score = new Float64Array(n).fill(Number.NaN);
  rows.forEach((i, r) => {
    score[i] = dot(z[r] as number[]);
  });
  return { score, auc: auc(rows.map((i) => score[i] as number), y) };
}

/** ROC AUC of `s` for binary labels `y` (ties count half). */
function auc(s: readonly number[], y: readonly number[]): number {
  const order = s.map((_, i) => i).sort((a, b) => (s[a] as number) - (s[b] as number));
  let rankSum = 0;
  let pos = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && s[order[j + 1] as number] === s[order[i] as number]) j++;
    for (let k = i; k <= j; k++) {
      if (y[order[k] as number] === 1) {
        rankSum += (i + j) / 2 + 1;
        pos++;
      }
    }
    i = j + 1;
  }
  const neg = order.length - pos;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Rank of each score among the scored prompts, in [0, 1). */
function ranks(score: Float64Array): Float64Array {
  const idx: number[] = [];
  for (let i = 0; i < n; i++) if (!Number.isNaN(score[i] as number)) idx.push(i);
  idx.sort((a, b) => (score[a] as number) - (score[b] as number));
  const out = new Float64Array(n).fill(Number.NaN);
  idx.forEach((i, k) => {
    out[i] = k / idx.length;
  });
  return out;
}

/** A seeded xorshift stream: whether prompt i's label is flipped, with probability `f`. */
function flips(f: number): Uint8Array {
  let s = 0x9e3779b9;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 4294967296 < f ? 1 : 0;
  }
  return out;
}

/** Signal per prompt: a probability in [0, 1], or NaN for none. */
type Signal = Float64Array;

function oracle(within: number, f: number): { signal: Signal; auc: number } {
  const flip = flips(f);
  const signal = new Float64Array(n).fill(Number.NaN);
  const s: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    if (!hasSignal(i)) continue;
    const truth = (futureGapS[i] as number) < within;
    signal[i] = truth !== (flip[i] === 1) ? 1 : 0;
    s.push(signal[i] as number);
    y.push(truth ? 1 : 0);
  }
  return { signal, auc: auc(s, y) };
}

function replay(signal: Signal | undefined, capacity: number): number {
  if (signal === undefined) return replayBlockTrace(requests, createEvictionPolicy('predictive'), capacity).hitRatio;
  let req = -1;
  const policy = new PredictivePolicy({
    signal: 'combine',
    predictReuse: (_key, info: PredictiveEntryInfo | undefined) => {
      if (info?.depth === 0) req++;
      const p = signal[req] as number;
      return Number.isNaN(p) ? undefined : p;
    },
  });
  return replayBlockTrace(requests, policy, capacity).hitRatio;
}

const belady = capacities.map((c) => replayBlockTrace(requests, createEvictionPolicy('belady', { accesses }), c).hitRatio);
const rows: [string, string, Signal | undefined][] = [['none (the shipped policy)', '', undefined]];
for (const f of [0, 0.1, 0.2, 0.3]) {
  const o = oracle(Number.POSITIVE_INFINITY, f);
  rows.push([`oracle follow-up, ${f * 100}% flipped`, o.auc.toFixed(2), o.signal]);
}
for (const f of [0, 0.1, 0.2]) {
  const o = oracle(120, f);
  rows.push([`oracle follow-up within 120 s, ${f * 100}% flipped`, o.auc.toFixed(2), o.signal]);
}
for (const [name, within] of [
  ['follow-up', Number.POSITIVE_INFINITY],
  ['follow-up within 120 s', 120],
] as const) {
  const fit = fitLogistic((i) => (futureGapS[i] as number) < within);
  const r = ranks(fit.score);
  rows.push([`hindsight logistic regression (${name}), top half`, fit.auc.toFixed(2), r.map((v) => (Number.isNaN(v) ? v : v >= 0.5 ? 1 : 0))]);
  rows.push([`hindsight logistic regression (${name}), quarters`, fit.auc.toFixed(2), r]);
}

const out: string[] = [];
out.push(`| signal (fed to predictive, signal: 'combine') | AUC | ${capacities.map((c) => `${c / 1000}k`).join(' | ')} |`);
out.push(`|---|---:|${capacities.map(() => '---:').join('|')}|`);
const t0 = performance.now();
rows.forEach(([name, a, signal], k) => {
  process.stderr.write(`[${k + 1}/${rows.length}] ${name}\n`);
  const hr = capacities.map((c) => replay(signal, c));
  out.push(`| ${name} | ${a} | ${hr.map((h, j) => `${h.toFixed(3)} (${Math.round((100 * h) / (belady[j] as number))}%)`).join(' | ')} |`);
});
out.push(`| belady (offline MIN) | | ${belady.map((b) => b.toFixed(3)).join(' | ')} |`);
console.log(`${n} requests (${path.split('/').pop()}); hit ratio (share of Belady) per capacity in blocks\n`);
console.log(out.join('\n'));
console.log(`\n(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
