/**
 * The sections behind `docs/eviction.md` and `packages/eviction/README.md`: the scripts of
 * `packages/eviction/scripts/` on the Mooncake conversation trace (block hit ratios, the
 * signal bounds, the follow-up analysis), `adaptive` on generated traces of unseen seeds, and
 * its per-operation cost. Renderers read only the cached outputs (see `sections.ts`).
 */
import { type BenchRow, mdTable, mdTableText, num, parseBenchTable, parseMdTable, pct } from './format.js';
import { loadLine, runTime } from './meta.js';
import type { Outputs, Section } from './sections.js';

const MOONCAKE = 'traces/mooncake_fast25_conversation_trace.jsonl';
const TSX = 'node --conditions=@kvmgr/source --import tsx';

/** `0.085 (45%)` → 0.45; `0.191` → undefined. */
function shareOf(cell: string | undefined): number | undefined {
  const m = /\((\d+)%\)/.exec(cell ?? '');
  return m === null ? undefined : Number(m[1]) / 100;
}

/** The first line of a script's stdout (its caption), without the trailing timing line. */
function caption(stdout: string): string {
  return (stdout.split('\n')[0] ?? '').trim();
}

/** Joins `a / b / c` for 1k / 3k / 10k / 30k. */
function slash(xs: readonly string[]): string {
  return xs.join(' / ');
}

/** Capacities as the tables head them: `1k`, `3k`, … */
function capLabel(c: number): string {
  return c % 1000 === 0 ? `${c / 1000}k` : num(c);
}

// --- hit-ratio-table.ts ---

interface HitRow {
  readonly capacity: number;
  readonly ratios: Record<string, number>;
}

function hitRows(out: Outputs): HitRow[] {
  return parseMdTable(out('eviction-hit-ratios').stdout).map((r) => ({
    capacity: Number(r['capacity (blocks)']),
    ratios: Object.fromEntries(
      Object.entries(r)
        .filter(([k]) => k !== 'capacity (blocks)' && !k.includes('/'))
        .map(([k, v]) => [k, Number(v)]),
    ),
  }));
}

/** Caption and the table as the script prints it. */
function hitRatioTable(out: Outputs): string {
  const o = out('eviction-hit-ratios');
  return [`${caption(o.stdout)}:`, '', mdTableText(o.stdout)].join('\n');
}

/** Issue #5's goal (≥ 50% of Belady at 1k/3k, ≥ 90% at 10k/30k) against `predictive` and the best online policy. */
function hitRatioVerdict(out: Outputs): string {
  const rows = hitRows(out);
  const goal = (c: number) => (c <= 3000 ? 0.5 : 0.9);
  const online = (r: HitRow) => Object.entries(r.ratios).filter(([k]) => k !== 'belady');
  const best = rows.map((r) => online(r).reduce((m, x) => (x[1] > m[1] ? x : m)));
  const share = rows.map((r) => (r.ratios.predictive as number) / (r.ratios.belady as number));
  const met = rows.filter((r, i) => (share[i] as number) >= goal(r.capacity)).map((r) => capLabel(r.capacity));
  const vsLru = rows.map((r) => (r.ratios.predictive as number) / (r.ratios.lru as number));
  const bestIsPredictive = best.filter((b) => b[0] === 'predictive').length;
  const adaptiveSame = rows.every((r) => r.ratios.adaptive === undefined || r.ratios.adaptive === r.ratios.predictive);
  return [
    `\`predictive\` reaches ${slash(share.map((x) => pct(x, 0)))} of Belady at ${slash(rows.map((r) => capLabel(r.capacity)))} blocks`,
    `(${slash(vsLru.map((x) => `${x.toFixed(2)}×`))} LRU's hit ratio) and is the best online policy at ${bestIsPredictive} of ${rows.length} capacities${adaptiveSame ? ` (\`adaptive\`, which follows it on this trace, ties it)` : ''}.`,
    `Issue #5's goal (≥ 50% of Belady at 1k and 3k, ≥ 90% at 10k and 30k) is met at ${met.length === 0 ? 'none of them' : met.join(', ')}${met.length === rows.length ? '' : ` only`}.`,
  ].join('\n');
}

// --- signal-bounds.ts ---

function boundRows(out: Outputs): Record<string, string>[] {
  return parseMdTable(out('eviction-signal-bounds').stdout);
}

function boundRow(out: Outputs, name: string): Record<string, string> {
  const r = boundRows(out).find((x) => Object.values(x)[0] === name);
  if (r === undefined) throw new Error(`eviction-signal-bounds: no row '${name}' in the script's table`);
  return r;
}

const BOUND_CAPS = ['1k', '3k', '10k', '30k'];

/** "52% / 70% / 91% / 98%" for a row of the signal-bounds table. */
function boundShares(out: Outputs, name: string): string {
  const r = boundRow(out, name);
  return slash(BOUND_CAPS.map((c) => pct(shareOf(r[c]), 0)));
}

function signalBoundsTable(out: Outputs): string {
  const o = out('eviction-signal-bounds');
  return [`${caption(o.stdout)} (${runTime(o.dir)}):`, '', mdTableText(o.stdout)].join('\n');
}

/** The rows that answer "how good would a signal have to be", as one paragraph. */
function signalBoundsSummary(out: Outputs): string {
  const auc = (name: string) => boundRow(out, name).AUC ?? '-';
  const lr = boundRows(out).filter((r) => (Object.values(r)[0] ?? '').startsWith('hindsight'));
  const none = boundRow(out, 'none (the shipped policy)');
  const aucs = lr.map((r) => Number(r.AUC));
  // Largest change, in points of Belady, that a hindsight regression makes at any capacity.
  const moves = lr.flatMap((r) => BOUND_CAPS.map((c) => ((shareOf(r[c]) ?? 0) - (shareOf(none[c]) ?? 0)) * 100));
  return [
    `Shares of Belady at 1k / 3k / 10k / 30k: the shipped policy ${boundShares(out, 'none (the shipped policy)')};`,
    `told exactly which prompts come back, ${boundShares(out, 'oracle follow-up, 0% flipped')};`,
    `with 10% of those answers wrong (AUC ${auc('oracle follow-up, 10% flipped')}), ${boundShares(out, 'oracle follow-up, 10% flipped')};`,
    `with 20% wrong (AUC ${auc('oracle follow-up, 20% flipped')}), ${boundShares(out, 'oracle follow-up, 20% flipped')};`,
    `told exactly which come back within 120 s, ${boundShares(out, 'oracle follow-up within 120 s, 0% flipped')}, and with 10% / 20% of those wrong ${boundShares(out, 'oracle follow-up within 120 s, 10% flipped')} and ${boundShares(out, 'oracle follow-up within 120 s, 20% flipped')}.`,
    `A logistic regression over every per-prompt fact known by completion time, fitted with hindsight on the whole trace, has AUC ${num(Math.min(...aucs), 2)}–${num(Math.max(...aucs), 2)} and moves the policy by ${num(Math.min(...moves), 0)} to +${num(Math.max(...moves), 0)} points of Belady across capacities.`,
  ].join('\n');
}

// --- followup-signals.py ---

function followupOutput(out: Outputs): string {
  return ['```', '$ python3 packages/eviction/scripts/followup-signals.py', out('eviction-followup-signals').stdout.trimEnd(), '```'].join('\n');
}

// --- adaptive-check.ts SEED ---

interface CheckLine {
  readonly ok: boolean;
  readonly shape: string;
  readonly capacity: number;
  readonly adaptive: number;
  readonly lru: number;
  readonly best: string;
  readonly bestRatio: number;
  readonly vsBest: number;
  readonly switches: number;
}

function checkLines(stdout: string): CheckLine[] {
  const re = /^(ok {2}|MISS) (\S+)\s+(\d+)\s+adaptive (\S+)\s+lru (\S+)\s+best (\S+) (\S+)\s+×best (\S+)\s+\((\d+) switches\)/;
  return stdout
    .split('\n')
    .map((l) => re.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({
      ok: m[1] === 'ok  ',
      shape: m[2] as string,
      capacity: Number(m[3]),
      adaptive: Number(m[4]),
      lru: Number(m[5]),
      best: m[6] as string,
      bestRatio: Number(m[7]),
      vsBest: Number(m[8]),
      switches: Number(m[9]),
    }));
}

/** One sentence per seed: cells that hold, the worst one, and each miss with its numbers. */
function adaptiveSeeds(out: Outputs): string {
  return [2, 3]
    .map((seed) => {
      const o = out(`eviction-adaptive-seed${seed}`);
      const cells = checkLines(o.stdout);
      const worst = cells.reduce((m, x) => (x.vsBest < m.vsBest ? x : m));
      const misses = cells.filter((x) => !x.ok);
      const why = (x: CheckLine) =>
        x.adaptive < x.lru
          ? `${x.shape} at ${capLabel(x.capacity)}, below LRU (${x.adaptive.toFixed(4)} against ${x.lru.toFixed(4)}; ${x.best} ${x.bestRatio.toFixed(4)})`
          : x.adaptive === x.lru
            ? `${x.shape} at ${capLabel(x.capacity)}, equal to LRU to four decimals (${x.adaptive.toFixed(4)}; ${x.best} ${x.bestRatio.toFixed(4)})`
            : `${x.shape} at ${capLabel(x.capacity)}, ${x.vsBest.toFixed(3)}× ${x.best} (${x.adaptive.toFixed(4)} against ${x.bestRatio.toFixed(4)}, ${x.switches} switches)`;
      return `- Seed ${seed}: ${cells.length - misses.length} of ${cells.length} cells hold (worst ${worst.vsBest.toFixed(3)}× the best, ${worst.shape} at ${capLabel(worst.capacity)})${misses.length === 0 ? '.' : `; misses: ${misses.map(why).join('; ')}.`}`;
    })
    .join('\n');
}

// --- op-cost.ts ROUNDS ---

interface CostLine {
  readonly name: string;
  readonly median: number;
  readonly worst: number;
}

function costLines(stdout: string): CostLine[] {
  const re = /^(.+?)\s+\d+ entries\s+median \d+ ns\/op\s+×LRU: median (\S+), worst ([\d.]+)/;
  return stdout
    .split('\n')
    .map((l) => re.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: (m[1] as string).trim(), median: Number((m[2] as string).replace(/,$/, '')), worst: Number(m[3]) }));
}

const OP_COST_ROUNDS = '11';

function opCostOutput(out: Outputs): string {
  const o = out('eviction-op-cost');
  return ['```', `$ cd packages/eviction && pnpm op-cost ${OP_COST_ROUNDS}`, o.stdout.trimEnd(), '```', '', loadLine(o.dir)].join('\n');
}

/** Issue #20's 2 × LRU target for `adaptive` at 100k, and the 4k mix, from the op-cost run. */
function opCostSummary(out: Outputs): string {
  const lines = costLines(out('eviction-op-cost').stdout);
  const get = (n: string) => {
    const x = lines.find((l) => l.name === n);
    if (x === undefined) throw new Error(`eviction-op-cost: no line for '${n}' in the output`);
    return x;
  };
  const p = get('predictive');
  const a = get('adaptive');
  const a4 = get('adaptive 4k');
  return [
    `In that run, at 100k blocks: \`predictive\` ${p.median.toFixed(2)}× LRU (median round; worst ${p.worst.toFixed(2)}×), \`adaptive\` ${a.median.toFixed(2)}× (worst ${a.worst.toFixed(2)}×),`,
    `so issue #20's target of ≤ 2× LRU for \`adaptive\` is ${a.median <= 2 ? 'met' : 'not met'} on the median${a.worst <= 2 ? ' and in every round' : ''}; on the 4k mix \`adaptive\` costs ${a4.median.toFixed(1)}× an LRU of that size (worst round ${a4.worst.toFixed(1)}×).`,
  ].join('\n');
}

// --- the suite (section `eviction-suite` of sections.ts) ---

interface SuitePoint {
  readonly workload: string;
  readonly policy: string;
  readonly capacity: number;
  readonly hitRatio: number;
  readonly shareOfBelady?: number;
}

function suitePoints(out: Outputs): SuitePoint[] {
  return out('eviction-suite').json<{ points: SuitePoint[] }>('suite.json').points;
}

const FIXED = (p: string) => p !== 'adaptive' && p !== 'belady';

/** Per shape and capacity: adaptive (bold, with share of Belady) / LRU / the best fixed policy. */
function suiteTable(out: Outputs): string {
  const pts = suitePoints(out);
  const shapes = [...new Set(pts.map((p) => p.workload))];
  const caps = [...new Set(pts.map((p) => p.capacity))].sort((a, b) => a - b);
  const rows = shapes.map((w) => [
    w,
    ...caps.map((c) => {
      const at = pts.filter((p) => p.workload === w && p.capacity === c);
      const ad = at.find((p) => p.policy === 'adaptive');
      const lru = at.find((p) => p.policy === 'lru');
      const fixed = at.filter((p) => FIXED(p.policy));
      if (ad === undefined || lru === undefined || fixed.length === 0) return '-';
      const best = fixed.reduce((m, p) => (p.hitRatio > m.hitRatio ? p : m));
      const share = ad.shareOfBelady === undefined ? '' : ` (${pct(ad.shareOfBelady, 0)})`;
      if (fixed.every((p) => p.hitRatio === ad.hitRatio)) return `${num(ad.hitRatio, 3)}${share}, all equal`;
      return `**${num(ad.hitRatio, 3)}**${share} / ${num(lru.hitRatio, 3)} / ${best.policy} ${num(best.hitRatio, 3)}`;
    }),
  ]);
  return mdTable(['shape', ...caps.map((c) => `${capLabel(c)} blocks`)], rows);
}

/** The suite's verdict: cells where adaptive ≥ LRU and within 3% of the best fixed policy, the worst, Mooncake against `predictive`, and where `predictive` alone is below LRU. */
function suiteSummary(out: Outputs): string {
  const o = out('eviction-suite');
  const pts = suitePoints(out);
  const shapes = [...new Set(pts.map((p) => p.workload))];
  const caps = [...new Set(pts.map((p) => p.capacity))].sort((a, b) => a - b);
  const cells: { w: string; c: number; vsBest: number; best: string; vsLru: number; lruBehind: boolean; vsPredictive: number; predictiveVsLru: number; share?: number }[] = [];
  for (const w of shapes) {
    for (const c of caps) {
      const at = pts.filter((p) => p.workload === w && p.capacity === c);
      const ad = at.find((p) => p.policy === 'adaptive');
      const lru = at.find((p) => p.policy === 'lru');
      const pr = at.find((p) => p.policy === 'predictive');
      const fixed = at.filter((p) => FIXED(p.policy));
      if (ad === undefined || lru === undefined || pr === undefined || fixed.length === 0) continue;
      const best = fixed.reduce((m, p) => (p.hitRatio > m.hitRatio ? p : m));
      const r = (a: number, b: number) => (b > 0 ? a / b : 1);
      cells.push({
        w,
        c,
        vsBest: r(ad.hitRatio, best.hitRatio),
        best: best.policy,
        vsLru: r(ad.hitRatio, lru.hitRatio),
        lruBehind: best.hitRatio > lru.hitRatio,
        vsPredictive: r(ad.hitRatio, pr.hitRatio),
        predictiveVsLru: r(pr.hitRatio, lru.hitRatio),
        ...(ad.shareOfBelady === undefined ? {} : { share: ad.shareOfBelady }),
      });
    }
  }
  const hold = cells.filter((x) => x.vsLru >= 1 - 1e-9 && x.vsBest >= 0.97);
  const worst = cells.reduce((m, x) => (x.vsBest < m.vsBest ? x : m));
  // among the cells where some fixed policy beats LRU (elsewhere every policy ties)
  const closest = cells.filter((x) => x.lruBehind).reduce((m, x) => (x.vsLru < m.vsLru ? x : m));
  const moon = cells.filter((x) => x.w === 'mooncake');
  const same = moon.every((x) => Math.abs(x.vsPredictive - 1) < 1e-9);
  const below = cells.filter((x) => x.predictiveVsLru < 1 - 1e-9);
  return [
    `In ${hold.length} of ${cells.length} shape × size cells \`adaptive\` is ≥ LRU and within 3% of the best fixed policy;`,
    `the worst cell is ${worst.w} at ${capLabel(worst.c)} (${worst.vsBest.toFixed(3)}× ${worst.best}). Among the cells where some fixed policy beats LRU, the closest to LRU is ${closest.w} at ${capLabel(closest.c)} (+${((closest.vsLru - 1) * 100).toFixed(2)}%).`,
    moon.length === 0
      ? ''
      : `On the Mooncake trace it ${same ? 'equals' : 'is'} \`predictive\`${same ? '' : ` at ${slash(moon.map((x) => `${x.vsPredictive.toFixed(3)}×`))}`} at ${slash(moon.map((x) => capLabel(x.c)))} blocks (${slash(moon.map((x) => pct(x.share, 0)))} of Belady).`,
    below.length === 0 ? '`predictive` alone is at or above LRU in every cell.' : `\`predictive\` alone is below LRU in ${below.map((x) => `${x.w} at ${capLabel(x.c)} (${x.predictiveVsLru.toFixed(3)}×)`).join(', ')}.`,
    `(The suite took ${runTime(o.dir)}.)`,
  ]
    .filter((l) => l !== '')
    .join('\n');
}

// --- bench-eviction (section of sections.ts) ---

/** The SLO-aware selector against its ≤ 20 µs p50 goal and vLLM's rule, and our LRU against `lru-cache`. */
function benchSummary(out: Outputs): string {
  const rows = parseBenchTable(out('bench-eviction').stdout);
  const get = (n: string): BenchRow => {
    const r = rows.find((x) => x.name === n);
    if (r === undefined) throw new Error(`bench-eviction: no case '${n}' in the output`);
    return r;
  };
  const one = get('slo-aware selectVictims 4096 candidates');
  const many = get('slo-aware selectVictims 4096 candidates, 5000 blocks');
  const lru = get('lru 100k mix ×1000 (ours)');
  return [
    `In that run the SLO-aware selector took ${num(one.p50Us, 1)} µs p50 over 4,096 candidates (goal ≤ 20 µs: ${(one.p50Us ?? Infinity) <= 20 ? 'met' : 'not met'}),`,
    `${num(one.speedup, 2)}× faster than vLLM's rule on the mean; needing about 18 victims (5,000 blocks short), ${num(many.p50Us, 1)} µs p50, ${num(many.speedup, 1)}× faster than vLLM's rule.`,
    `Our LRU ran the 100k mix ${num(lru.speedup, 2)}× as fast as \`lru-cache\`.`,
  ].join('\n');
}

/** The sections, appended to `SECTIONS` in `sections.ts`. */
export const EVICTION_SECTIONS: readonly Section[] = [
  {
    name: 'eviction-hit-ratios',
    display: `cd packages/eviction && pnpm hit-ratios`,
    script: 'packages/eviction/scripts/hit-ratio-table.ts',
    args: [`$SHARED/${MOONCAKE}`],
    needs: [MOONCAKE],
    produces: ['stdout.txt'],
    blocks: {
      'eviction-hit-ratios-table': hitRatioTable,
      'eviction-hit-ratios-table-readme': hitRatioTable,
      'eviction-hit-ratios-verdict': hitRatioVerdict,
      'eviction-hit-ratios-verdict-readme': hitRatioVerdict,
    },
  },
  {
    name: 'eviction-signal-bounds',
    display: `cd packages/eviction && pnpm signal-bounds`,
    script: 'packages/eviction/scripts/signal-bounds.ts',
    args: [`$SHARED/${MOONCAKE}`],
    needs: [MOONCAKE],
    produces: ['stdout.txt'],
    blocks: {
      'eviction-signal-bounds-table': signalBoundsTable,
      'eviction-signal-bounds-summary': signalBoundsSummary,
      'eviction-signal-bounds-summary-readme': signalBoundsSummary,
    },
  },
  {
    name: 'eviction-followup-signals',
    display: 'python3 packages/eviction/scripts/followup-signals.py',
    script: 'packages/eviction/scripts/followup-signals.py',
    runner: 'python3',
    args: [`$SHARED/${MOONCAKE}`],
    needs: [MOONCAKE],
    produces: ['stdout.txt'],
    blocks: { 'eviction-followup-signals-output': followupOutput },
  },
  ...[2, 3].map(
    (seed): Section => ({
      name: `eviction-adaptive-seed${seed}`,
      display: `cd packages/eviction && ${TSX} scripts/adaptive-check.ts ${seed}`,
      script: 'packages/eviction/scripts/adaptive-check.ts',
      args: [String(seed)],
      produces: ['stdout.txt'],
      // both seeds render into one block, owned by the last section
      blocks: seed === 3 ? { 'eviction-adaptive-seeds': adaptiveSeeds, 'eviction-adaptive-seeds-readme': adaptiveSeeds } : {},
    }),
  ),
  {
    name: 'eviction-op-cost',
    display: `cd packages/eviction && pnpm op-cost ${OP_COST_ROUNDS}`,
    script: 'packages/eviction/scripts/op-cost.ts',
    args: [OP_COST_ROUNDS],
    produces: ['stdout.txt'],
    blocks: {
      'eviction-op-cost-output': opCostOutput,
      'eviction-op-cost-summary': opCostSummary,
      'eviction-op-cost-summary-readme': opCostSummary,
    },
  },
];

/** Blocks rendered from `bench-eviction` (added to that section in `sections.ts`). */
export const EVICTION_BENCH_BLOCKS: Readonly<Record<string, (out: Outputs) => string>> = {
  'bench-eviction-summary': benchSummary,
  'bench-eviction-summary-readme': benchSummary,
};

/** Blocks rendered from the existing `eviction-suite` section (added to it in `sections.ts`). */
export const EVICTION_SUITE_BLOCKS: Readonly<Record<string, (out: Outputs) => string>> = {
  'eviction-suite-table': suiteTable,
  'eviction-suite-summary': suiteSummary,
  'eviction-suite-summary-readme': suiteSummary,
};
