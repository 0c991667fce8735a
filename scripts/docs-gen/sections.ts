/**
 * What `scripts/docs-gen.ts` runs and what it writes: each section is one command (a
 * `pnpm kvmgr …` invocation) whose machine-readable output (`--out` files, `--json`, stdout)
 * is cached under `.docs-gen/<section>/`, and a set of blocks, each a renderer from those
 * outputs to the markdown between `<!-- gen:BLOCK -->` and `<!-- /gen:BLOCK -->`.
 *
 * Renderers only read the cache: `pnpm docs:check` re-renders every block from it without
 * running anything, and a block never contains a number that is not in a section's output.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
// type only (erased at run time): the calibration as `kvmgr fidelity` writes it
import type { RooflineCalibration } from '../../packages/sim/src/index.js';
import { EVICTION_BENCH_BLOCKS, EVICTION_SECTIONS, EVICTION_SUITE_BLOCKS } from './eviction-sections.js';
import { change, mdTable, num, pct, rate, ratio, transcript } from './format.js';
import { loadLine } from './meta.js';
import { PREDICTOR_BENCH_BLOCKS, PREDICTOR_SECTIONS } from './predictor-sections.js';

/** The cached outputs of one section's last run. */
export interface SectionOutput {
  /** Folder of the cache (the command's working directory). */
  readonly dir: string;
  /** What the command printed on stdout. */
  readonly stdout: string;
  /** Parses a JSON file the command wrote, relative to {@link dir}. */
  json<T>(file: string): T;
}

/** Gives a renderer the outputs of any section (a block may combine two). */
export type Outputs = (section: string) => SectionOutput;

/** One command and the blocks rendered from its outputs. */
export interface Section {
  /** Section name: `pnpm docs:gen NAME` re-runs it. */
  readonly name: string;
  /** The command as a user types it from the repository root (shown in transcripts). */
  readonly display: string;
  /**
   * Arguments of `kvmgr` (run on sources, working directory = the cache folder, so `--out`
   * defaults land there), or of {@link script} when set. `$SHARED` is replaced by the shared
   * data folder.
   */
  readonly args: readonly string[];
  /** A TypeScript file (relative to the repository root) to run instead of `kvmgr`. */
  readonly script?: string;
  /** Environment variables set for the command (shown in front of {@link display}). */
  readonly env?: Readonly<Record<string, string>>;
  /** What runs {@link script}: node with tsx on sources, or `python3`. @default 'tsx' */
  readonly runner?: 'tsx' | 'python3';
  /**
   * Files the command reads from the shared data folder (relative to it, e.g.
   * `traces/mooncake_fast25_conversation_trace.jsonl`): when one is absent the section is
   * skipped with a line naming it, and its blocks keep their text. @default []
   */
  readonly needs?: readonly string[];
  /** Where stdout is kept (for commands that print JSON), relative to the cache folder. @default 'stdout.txt' */
  readonly stdoutFile?: string;
  /** Files (relative to the cache folder) whose presence marks a complete run. */
  readonly produces: readonly string[];
  /** Block name → renderer. Block names are unique across sections. */
  readonly blocks: Readonly<Record<string, (out: Outputs) => string>>;
}

// --- shapes of the JSON the CLI writes (only the fields read here) ---

/** The simulator's `RunSummary` as `report.json` version 2 carries it. */
interface Summary {
  readonly requests: number;
  readonly hitRate: number;
  readonly ttftMs: { readonly p99: number };
  readonly tpotMs: { readonly p99: number };
  readonly e2eMs: { readonly p99: number };
  readonly goodputRps: number;
  readonly sloAttainment: number;
  readonly preemptions: number;
}
interface ReplayJson {
  readonly setup: { trace: string; model: string; gpu: string; instances: number; rateScale: number; sloTtftMs: number; sloTpotMs: number; seed: number; latency?: string };
  readonly version: number;
  readonly baseline: { label: string; summary: Summary; wallS: number };
  readonly candidate: { label: string; summary: Summary; wallS: number };
}
interface SweepPoint {
  readonly rate: number;
  readonly sloAttainment: number;
  readonly goodputReqPerS: number;
  readonly throughputReqPerS: number;
  readonly ttftP99Ms: number;
}
interface SweepJson {
  readonly target: number;
  readonly points: Record<string, SweepPoint[]>;
  readonly knees: Record<string, { rate?: number; goodputReqPerS: number }>;
}
interface FidelityErr {
  readonly ttft?: number;
  readonly itl?: number;
  readonly e2e?: number;
}
interface FidelityJson {
  readonly medians: FidelityErr & { n: number };
  readonly rows: readonly FidelityRow[];
  readonly crossValidation: CrossValidationJson | null;
}
interface Triple {
  readonly ttft: number;
  readonly itl: number;
  readonly e2e: number;
}
interface FidelityRow {
  readonly experiment: string;
  readonly recommended: boolean;
  readonly latency: string;
  readonly tp: number;
  readonly kvBlocks: number;
  readonly kvBlocksDerived: boolean;
  readonly measured: Triple;
  readonly sim: Triple;
  readonly err: Triple;
  readonly error?: string;
}
interface CrossValidationJson {
  readonly heldOut: FidelityErr & { n: number };
  readonly folds: ReadonlyArray<{ fit: string[]; test: string[]; calibration: RooflineCalibration; inSample: FidelityErr; heldOut: FidelityErr }>;
}
interface EvictionPoint {
  readonly policy: string;
  readonly capacity: number;
  readonly hitRatio: number;
  readonly shareOfBelady?: number;
}

const SWEEP_RATES = '0.5,0.75,1,1.25,1.5,2,3';
const SWEEP_PROFILES = 'vllm-default,kvmgr-default,kvmgr-offload';

function replayJson(out: Outputs): ReplayJson {
  const r = out('replay').json<ReplayJson>('kvmgr-report/report.json');
  if (r.version !== 2) throw new Error(`kvmgr-report/report.json: version ${r.version}, expected 2 (rerun: pnpm docs:gen replay --rerun)`);
  return r;
}

function sweepJson(out: Outputs): SweepJson {
  return out('sweep').json<SweepJson>('kvmgr-sweep/sweep.json');
}

function ms(x: number): string {
  return x >= 1000 && x % 1000 === 0 ? `${x / 1000} s` : `${x} ms`;
}

/** "3,000 requests at the trace's rate, SLOs TTFT ≤ 2 s and TPOT ≤ 100 ms, 4 × M on G". */
function replaySetup(r: ReplayJson): string {
  const s = r.setup;
  const at = s.rateScale === 1 ? "the trace's rate" : `rate ${rate(s.rateScale)}`;
  return `${num(r.baseline.summary.requests)} requests at ${at}, SLOs TTFT ≤ ${ms(s.sloTtftMs)} and TPOT ≤ ${ms(s.sloTpotMs)}, ${s.instances} × ${s.model} on ${s.gpu}, seed ${s.seed}`;
}

function replayHeadline(out: Outputs): string {
  const r = replayJson(out);
  const a = r.baseline.summary;
  const b = r.candidate.summary;
  return [
    `On the bundled sample (${replaySetup(r)}), \`${r.candidate.label}\` against \`${r.baseline.label}\`:`,
    `goodput **${change(a.goodputRps, b.goodputRps)}** (${num(a.goodputRps, 3)} → ${num(b.goodputRps, 3)} req/s),`,
    `SLO attainment ${pct(a.sloAttainment)} → ${pct(b.sloAttainment)},`,
    `**TTFT p99 ${change(a.ttftMs.p99, b.ttftMs.p99)}** (${num(a.ttftMs.p99)} → ${num(b.ttftMs.p99)} ms),`,
    `TPOT p99 ${change(a.tpotMs.p99, b.tpotMs.p99)} (${num(a.tpotMs.p99, 1)} → ${num(b.tpotMs.p99, 1)} ms),`,
    `prefix hit rate ${pct(a.hitRate)} → ${pct(b.hitRate)}, preemptions ${num(a.preemptions)} → ${num(b.preemptions)}.`,
    `Latency model: ${r.setup.latency ?? 'not reported'}.`,
  ].join('\n');
}

/** Per profile: knee, attainment next to it, peak goodput and its ratio to the first profile's peak. */
function sweepSummary(out: Outputs): string {
  const s = sweepJson(out);
  const profiles = Object.keys(s.points);
  const peak = (p: string) => (s.points[p] ?? []).reduce<SweepPoint | undefined>((m, x) => (m === undefined || x.goodputReqPerS > m.goodputReqPerS ? x : m), undefined);
  const base = profiles[0] as string;
  const basePeak = peak(base);
  const rows = profiles.map((p) => {
    const pts = s.points[p] ?? [];
    const knee = s.knees[p];
    const next = knee?.rate === undefined ? pts[0] : pts.find((x) => x.rate > (knee.rate as number));
    const pk = peak(p);
    return [
      `\`${p}\``,
      knee?.rate === undefined ? 'none' : `${rate(knee.rate)} (${num(knee.goodputReqPerS, 3)} req/s)`,
      next === undefined ? '-' : `${pct(next.sloAttainment)} at ${rate(next.rate)}`,
      pk === undefined ? '-' : `${num(pk.goodputReqPerS, 3)} at ${rate(pk.rate)}`,
      pk === undefined || basePeak === undefined ? '-' : ratio(basePeak.goodputReqPerS, pk.goodputReqPerS),
    ];
  });
  const rates = [...new Set(profiles.flatMap((p) => (s.points[p] ?? []).map((x) => x.rate)))].filter((x) => x > 1);
  const past = mdTable(
    ['goodput (req/s) past ×1', ...rates.map(rate)],
    profiles.map((p) => [
      `\`${p}\``,
      ...rates.map((x) => {
        const pt = (s.points[p] ?? []).find((q) => q.rate === x);
        const bp = (s.points[base] ?? []).find((q) => q.rate === x);
        if (pt === undefined) return '-';
        return p === base || bp === undefined ? num(pt.goodputReqPerS, 3) : `${num(pt.goodputReqPerS, 3)} (${ratio(bp.goodputReqPerS, pt.goodputReqPerS)})`;
      }),
    ]),
  );
  return [
    mdTable(['profile', `knee (highest rate with ≥ ${num(s.target * 100)}% SLO attainment)`, 'SLO attainment above the knee (or at the lowest rate)', 'peak goodput (req/s)', `peak vs \`${base}\``], rows),
    '',
    past,
  ].join('\n');
}

function fidelityJson(out: Outputs): FidelityJson {
  return out('fidelity').json<FidelityJson>('kvmgr-fidelity/fidelity.json');
}

function absPct(x: number | undefined): string {
  return x === undefined ? '-' : pct(Math.abs(x));
}

function fidelityHeadline(out: Outputs): string {
  const f = fidelityJson(out);
  const cv = f.crossValidation;
  const inSample = `in-sample median |error| over ${f.medians.n} recommended experiments: TTFT ${absPct(f.medians.ttft)}, ITL ${absPct(f.medians.itl)}, E2E ${absPct(f.medians.e2e)}`;
  if (cv === null) return `\`kvmgr fidelity\`: ${inSample}.`;
  return `\`kvmgr fidelity\`: two-fold cross-validated (held-out) median |error| of mean E2E ${absPct(cv.heldOut.e2e)}, ITL ${absPct(cv.heldOut.itl)}, TTFT ${absPct(cv.heldOut.ttft)}; ${inSample}.`;
}

function signedPct(x: number): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)}%`;
}

/** The per-experiment table: measured and simulated means and errors. */
function fidelityTable(out: Outputs): string {
  const f = fidelityJson(out);
  const rows = f.rows.map((r) => {
    if (r.error !== undefined) return [r.experiment, '-', '-', r.error, '', '', '', '', ''];
    const model = r.latency.split(':')[0] ?? r.latency;
    return [
      r.recommended ? r.experiment : `${r.experiment} (overloaded, not in medians)`,
      `${model} tp${r.tp}`,
      `${r.kvBlocks}${r.kvBlocksDerived ? ' (derived)' : ''}`,
      `${num(r.measured.ttft, 1)} / ${num(r.sim.ttft, 1)}`,
      signedPct(r.err.ttft),
      `${num(r.measured.itl, 2)} / ${num(r.sim.itl, 2)}`,
      signedPct(r.err.itl),
      `${num(r.measured.e2e)} / ${num(r.sim.e2e)}`,
      signedPct(r.err.e2e),
    ];
  });
  rows.push([`**median \\|error\\| (${f.medians.n} recommended, in-sample)**`, '', '', '', absPct(f.medians.ttft), '', absPct(f.medians.itl), '', absPct(f.medians.e2e)]);
  return mdTable(['experiment', 'latency model', 'KV blocks', 'TTFT meas / sim (ms)', 'err', 'ITL meas / sim (ms)', 'err', 'E2E meas / sim (ms)', 'err'], rows);
}

function calibrationText(c: RooflineCalibration): string {
  return `mfu ${c.mfu}, attn ${c.attnMfu}, bw ${c.bwEfficiency}, step ${c.stepOverheadUs} µs, ${c.perSeqOverheadUs} µs per sequence, all-reduce ${c.allReduceLatencyUs} µs, q0 ${num(c.queueingUs / 1000, 2)} ms, q1 ${num(c.queueingPerInputTokenUs, 2)} µs, lag ${num(c.deliveryLagSteps, 2)}`;
}

/** The two-fold cross-validation table: each fold's fit, its held-out errors, the pooled ones. */
function fidelityCv(out: Outputs): string {
  const cv = fidelityJson(out).crossValidation;
  if (cv === null) return '(`kvmgr fidelity` ran with `--no-cv`: no cross-validation.)';
  const e = (x: FidelityErr) => `${absPct(x.ttft)} / ${absPct(x.itl)} / ${absPct(x.e2e)}`;
  const rows = cv.folds.map((f, i) => [String(i), `${f.fit.length} experiments, tested on ${f.test.length}`, e(f.inSample), e(f.heldOut), calibrationText(f.calibration)]);
  rows.push(['**pooled held-out**', `each of the ${cv.heldOut.n} predicted by the fold that did not see it`, '', `**${e(cv.heldOut)}**`, '']);
  // Issue #18's goals for the held-out medians.
  const goal = (x: number | undefined, max: number) => (x !== undefined && Math.abs(x) <= max ? 'met' : 'not met');
  return [
    mdTable(['fold', 'fit on', 'fit TTFT / ITL / E2E', 'held-out TTFT / ITL / E2E', 'fitted calibration'], rows),
    '',
    `Against the goals (held-out median |E2E| and |ITL| ≤ 5%, |TTFT| ≤ 10%): TTFT ${goal(cv.heldOut.ttft, 0.1)}, ITL ${goal(cv.heldOut.itl, 0.05)}, E2E ${goal(cv.heldOut.e2e, 0.05)}.`,
  ].join('\n');
}

function evictionPoints(out: Outputs, section: string): EvictionPoint[] {
  return out(section).json<{ points: EvictionPoint[] }>('kvmgr-eviction/eviction.json').points;
}

/** Best online policy per capacity, with its hit ratio, share of Belady and LRU's. */
function evictionBest(out: Outputs): string {
  const pts = evictionPoints(out, 'eviction-mooncake');
  const caps = [...new Set(pts.map((p) => p.capacity))].sort((a, b) => a - b);
  const rows = caps.map((c) => {
    const at = pts.filter((p) => p.capacity === c);
    const online = at.filter((p) => p.policy !== 'belady');
    const best = online.reduce((m, p) => (p.hitRatio > m.hitRatio ? p : m));
    const lru = at.find((p) => p.policy === 'lru');
    const belady = at.find((p) => p.policy === 'belady');
    return [
      num(c),
      `\`${best.policy}\``,
      num(best.hitRatio, 3),
      best.shareOfBelady === undefined ? '-' : pct(best.shareOfBelady, 0),
      lru === undefined ? '-' : num(lru.hitRatio, 3),
      lru === undefined ? '-' : ratio(lru.hitRatio, best.hitRatio, 1),
      belady === undefined ? '-' : num(belady.hitRatio, 3),
    ];
  });
  return mdTable(['capacity (blocks)', 'best online policy', 'hit ratio', 'share of Belady', 'LRU', 'best vs LRU', 'Belady'], rows);
}

interface SuitePoint extends EvictionPoint {
  readonly workload: string;
}

/**
 * The `adaptive` policy on the suite: per shape and capacity, its hit ratio against the best
 * fixed online policy's and LRU's, and one sentence on the worst cell.
 */
function evictionSuiteAdaptive(out: Outputs): string {
  const pts = out('eviction-suite').json<{ points: SuitePoint[] }>('suite.json').points;
  const shapes = [...new Set(pts.map((p) => p.workload))];
  const caps = [...new Set(pts.map((p) => p.capacity))].sort((a, b) => a - b);
  const cells: { shape: string; cap: number; vsBest: number; best: string; vsLru: number }[] = [];
  for (const w of shapes) {
    for (const c of caps) {
      const at = pts.filter((p) => p.workload === w && p.capacity === c);
      const adaptive = at.find((p) => p.policy === 'adaptive');
      const lru = at.find((p) => p.policy === 'lru');
      const fixed = at.filter((p) => p.policy !== 'adaptive' && p.policy !== 'belady');
      if (adaptive === undefined || lru === undefined || fixed.length === 0) continue;
      const best = fixed.reduce((m, p) => (p.hitRatio > m.hitRatio ? p : m));
      cells.push({ shape: w, cap: c, vsBest: best.hitRatio > 0 ? adaptive.hitRatio / best.hitRatio : 1, best: best.policy, vsLru: lru.hitRatio > 0 ? adaptive.hitRatio / lru.hitRatio : 1 });
    }
  }
  const table = mdTable(
    ['adaptive ÷ best fixed policy (÷ LRU)', ...caps.map((c) => `${num(c)} blocks`)],
    shapes.map((w) => [
      w,
      ...caps.map((c) => {
        const x = cells.find((y) => y.shape === w && y.cap === c);
        return x === undefined ? '-' : `${x.vsBest.toFixed(3)}× \`${x.best}\` (${x.vsLru.toFixed(2)}×)`;
      }),
    ]),
  );
  const worst = cells.reduce((m, x) => (x.vsBest < m.vsBest ? x : m));
  const atLeastLru = cells.filter((x) => x.vsLru >= 1 - 1e-9).length;
  const within3 = cells.filter((x) => x.vsBest >= 0.97).length;
  return [
    table,
    '',
    `\`adaptive\` is at or above LRU in ${atLeastLru} of ${cells.length} shape × size cells and within 3% of the best fixed policy in ${within3} of ${cells.length}; its worst cell is ${worst.shape} at ${num(worst.cap)} blocks (${worst.vsBest.toFixed(3)}× \`${worst.best}\`).`,
  ].join('\n');
}

interface ScalePoint {
  readonly profile: string;
  readonly requests: number;
  readonly wallS: number;
  readonly cpuS: number;
  readonly events: number;
  readonly simulatedS: number;
  readonly finished: number;
  readonly violations: number;
}

/** Wall and CPU time per profile and trace size, and one line on the full trace. */
function scaleTable(out: Outputs): string {
  const j = out('scale').json<{ loadAverage: { before: number; after: number }; points: ScalePoint[] }>('scale.json');
  const rows = j.points.map((p) => [
    `\`${p.profile}\``,
    num(p.requests),
    num(p.wallS, 1),
    num(p.cpuS, 1),
    num(p.events),
    num(p.events / p.wallS),
    num(p.simulatedS),
    num(p.finished),
    num(p.violations),
  ]);
  const largest = Math.max(...j.points.map((p) => p.requests));
  const full = j.points.filter((p) => p.requests === largest).map((p) => `${num(p.wallS, 1)} s wall, ${num(p.cpuS, 1)} s CPU (\`${p.profile}\`)`);
  return [
    `Load average (1 min) ${num(j.loadAverage.before, 1)} before the run and ${num(j.loadAverage.after, 1)} after (the machine is shared; CPU seconds are the less noisy figure).`,
    '',
    mdTable(['profile', 'requests', 'wall s', 'CPU s', 'events', 'events/s (wall)', 'simulated s', 'finished', 'violations'], rows),
    '',
    `**Full trace (${num(largest)} requests): ${full.join('; ')}.**`,
  ].join('\n');
}

/**
 * A package's benchmark suites (`bench/run.ts`, as `pnpm bench --filter PKG` runs them): its
 * stdout table is the block, followed by the load average when the run ended. Benchmarks on the
 * shared machine are noisy: the table's in-run ratios are what to read.
 */
function benchSection(pkg: string, grep?: string): Section {
  const name = `bench-${pkg}`;
  const display = `pnpm bench --filter @kvmgr/${pkg}${grep === undefined ? '' : ` -- --grep '${grep}'`}`;
  return {
    name,
    display,
    script: 'bench/run.ts',
    args: ['--filter', `@kvmgr/${pkg}`, ...(grep === undefined ? [] : ['--grep', grep])],
    produces: ['stdout.txt'],
    blocks: {
      [`${name}-output`]: (out) => {
        const o = out(name);
        const table = o.stdout
          .split('\n')
          .filter((l) => !l.trimStart().startsWith('wrote '))
          .join('\n')
          .trim();
        return [transcript(display, table), '', loadLine(o.dir)].join('\n');
      },
    },
  };
}

/** The section with more blocks rendered from its outputs. */
function withBlocks(s: Section, blocks: Readonly<Record<string, (out: Outputs) => string>>): Section {
  return { ...s, blocks: { ...s.blocks, ...blocks } };
}

function jsonLines<T>(stdout: string): T[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as T);
}

interface LiveHopsLine {
  readonly timeScale?: number;
  readonly promptTokens: number | number[];
  readonly via?: string;
  readonly ttft: number;
  readonly toEngine: number;
  readonly intake: number;
  readonly model: number;
  readonly emitLag: number;
  readonly write: number;
  readonly back: number;
  readonly overhead: number;
  readonly overheadModelMs: number;
}

/** The live TTFT's wall overhead per hop (packages/cli/bench/live-hops.ts JSON lines). */
function liveHops(out: Outputs): string {
  const o = out('live-hops');
  const lines = jsonLines<LiveHopsLine>(o.stdout);
  const scale = lines.find((l) => typeof l.timeScale === 'number')?.timeScale ?? Number.NaN;
  const rows = lines
    .filter((l) => typeof l.via === 'string')
    .map((l) => [String(l.promptTokens), `\`${l.via}\``, num(l.ttft, 1), num(l.model, 1), num(l.toEngine, 1), num(l.intake, 1), num(l.emitLag, 1), num(l.back, 1), num(l.overhead, 1), num(l.overheadModelMs, 0)]);
  return [
    mdTable(['prompt tokens', 'path', 'client TTFT', 'model (wall)', 'client → engine', 'engine intake', 'step-loop lag', 'engine → client', 'overhead (wall)', `overhead × ${scale} (model ms)`], rows),
    '',
    'Wall ms, medians of 5 sequential requests per row.',
    '',
    loadLine(o.dir),
  ].join('\n');
}

interface EngineFidelityLine {
  readonly timeScale: number;
  readonly liveTtftMs: number;
  readonly simTtftMs: number;
  readonly ttftDiff: string;
  readonly liveItlMs: number;
  readonly simItlMs: number;
  readonly itlDiff: string;
  /** Mean inter-token gap, live vs replay (absent in outputs of older benches). */
  readonly liveItlMeanMs?: number;
  readonly simItlMeanMs?: number;
  readonly itlMeanDiff?: string;
  readonly driverTtftDiff: string;
  readonly driverItlDiff: string;
  readonly lagP99Ms: number;
  readonly resyncs: number;
  /** Server process CPU per streamed token, µs (absent in outputs of older benches). */
  readonly cpuUsPerToken?: number;
  /** `engine` or `floor` (absent in outputs of older benches: the engine server). */
  readonly server?: string;
}

/** The live driver's fidelity per time scale (engine-server/bench/fidelity.ts JSON lines). */
function engineFidelity(out: Outputs, name = 'engine-fidelity'): string {
  const o = out(name);
  // one result line per time scale; the bench also prints a workload line (and breakdowns with --breakdown)
  const lines = jsonLines<EngineFidelityLine>(o.stdout).filter((r) => typeof r.timeScale === 'number' && typeof r.ttftDiff === 'string');
  // A run of both servers (`--servers engine,floor`) gets a column naming each row's server.
  const byServer = lines.some((r) => r.server === 'floor');
  const rows = lines.map((r) => [
    ...(byServer ? [r.server === 'floor' ? 'floor (bare `node:http`)' : 'engine server'] : []),
    String(r.timeScale),
    `${r.driverTtftDiff} / ${r.driverItlDiff}`,
    `${r.ttftDiff} (${num(r.liveTtftMs, 1)} vs ${num(r.simTtftMs, 1)} ms)`,
    `${r.itlDiff} (${num(r.liveItlMs, 2)} vs ${num(r.simItlMs, 2)} ms)`,
    r.itlMeanDiff === undefined ? '-' : `${r.itlMeanDiff} (${num(r.liveItlMeanMs ?? Number.NaN, 2)} vs ${num(r.simItlMeanMs ?? Number.NaN, 2)} ms)`,
    `${num(r.lagP99Ms, 1)} ms`,
    String(r.resyncs),
    r.cpuUsPerToken === undefined ? '-' : `${num(r.cpuUsPerToken, 0)} µs`,
  ]);
  return [
    mdTable([...(byServer ? ['server'] : []), 'time scale', 'server timeline vs replay (TTFT / ITL medians)', 'client-observed TTFT vs replay', 'client-observed ITL vs replay', 'ITL mean vs replay', 'loop lag p99', 'resyncs', 'server CPU per token'], rows),
    '',
    loadLine(o.dir),
  ].join('\n');
}

interface EngineLoadLine {
  readonly concurrency: number;
  readonly outputTokensPerS: number;
  readonly requestsPerS: number;
  readonly lagP50Ms: number;
  readonly lagP99Ms: number;
  readonly resyncs: number;
}

/** One engine server under closed-loop load (engine-server/bench/serve-load.ts JSON lines). */
function engineLoad(out: Outputs): string {
  const o = out('engine-load');
  const rows = jsonLines<EngineLoadLine>(o.stdout).map((r) => [
    String(r.concurrency),
    num(r.outputTokensPerS),
    num(r.requestsPerS, 1),
    `${num(r.lagP50Ms)} / ${num(r.lagP99Ms)} ms`,
    String(r.resyncs),
  ]);
  return [mdTable(['concurrent streams', 'output tokens/s (wall)', 'requests/s', 'loop lag p50 / p99', 'resyncs'], rows), '', loadLine(o.dir)].join('\n');
}

/** Every section, in the order `pnpm docs:gen` runs them. */
export const SECTIONS: readonly Section[] = [
  {
    name: 'replay',
    display: 'pnpm kvmgr replay',
    args: ['replay', '--no-progress'],
    produces: ['kvmgr-report/report.json'],
    blocks: {
      'replay-output': (out) => transcript('pnpm kvmgr replay', out('replay').stdout),
      'replay-headline': replayHeadline,
    },
  },
  {
    name: 'ab',
    display: 'pnpm kvmgr ab --a vllm-default --b kvmgr-default --rate-scale 2.5 --out kvmgr-ab',
    args: ['ab', '--a', 'vllm-default', '--b', 'kvmgr-default', '--rate-scale', '2.5', '--out', 'kvmgr-ab', '--no-progress'],
    produces: ['kvmgr-ab/ab.json'],
    blocks: {
      'ab-output': (out) => transcript('pnpm kvmgr ab --a vllm-default --b kvmgr-default --rate-scale 2.5 --out kvmgr-ab', out('ab').stdout),
      'ab-vs-knees': (out) => {
        // Where the A/B's rate sits against the sweep's knees.
        const abRate = 2.5;
        const knees = Object.entries(sweepJson(out).knees).map(([p, k]) => (k.rate === undefined ? `\`${p}\` none` : `\`${p}\` ${rate(k.rate)}`));
        const highest = Math.max(...Object.values(sweepJson(out).knees).map((k) => k.rate ?? 0));
        const where = abRate > highest ? 'above the knee of every profile' : abRate === highest ? 'at the highest knee' : 'below the highest knee';
        return `At ${rate(abRate)} this A/B runs ${where} in the [sweep](sweep.md) (knees: ${knees.join(', ')}).`;
      },
    },
  },
  {
    name: 'sweep',
    display: `pnpm kvmgr sweep --rates ${SWEEP_RATES} --profiles ${SWEEP_PROFILES} --workers 2`,
    args: ['sweep', '--rates', SWEEP_RATES, '--profiles', SWEEP_PROFILES, '--workers', '2', '--no-progress'],
    produces: ['kvmgr-sweep/sweep.json'],
    blocks: {
      'sweep-output': (out) => transcript(`pnpm kvmgr sweep --rates ${SWEEP_RATES} --profiles ${SWEEP_PROFILES} --workers 2`, out('sweep').stdout),
      'sweep-summary': sweepSummary,
      'sweep-summary-cli': sweepSummary,
    },
  },
  {
    name: 'fidelity',
    display: 'pnpm kvmgr fidelity --validation ../shared/validation',
    args: ['fidelity', '--validation', '$SHARED/validation'],
    produces: ['kvmgr-fidelity/fidelity.json'],
    blocks: {
      'fidelity-headline': fidelityHeadline,
      'fidelity-table': fidelityTable,
      'fidelity-cv': fidelityCv,
    },
  },
  {
    name: 'list-scorers',
    display: 'pnpm kvmgr list scorers',
    args: ['list', 'scorers'],
    produces: ['stdout.txt'],
    blocks: {
      'list-scorers-output': (out) => transcript('pnpm kvmgr list scorers', out('list-scorers').stdout),
    },
  },
  {
    name: 'scale',
    display: 'node --conditions=@kvmgr/source --import tsx scripts/docs-gen/scale.ts',
    script: 'scripts/docs-gen/scale.ts',
    args: [],
    stdoutFile: 'scale.json',
    produces: ['scale.json'],
    blocks: {
      'scale-table': scaleTable,
    },
  },
  {
    name: 'prefix-index',
    display: 'cd packages/sim && node --conditions=@kvmgr/source --import tsx scripts/prefix-index.ts 1,3',
    script: 'packages/sim/scripts/prefix-index.ts',
    args: ['1,3'],
    produces: ['stdout.txt'],
    blocks: {
      // The script prints a caption line and a markdown table.
      'prefix-index-table': (out) => out('prefix-index').stdout.trim(),
    },
  },
  {
    name: 'sim-readme-example',
    display: 'node --conditions=@kvmgr/source --import tsx packages/sim/scripts/readme-example.ts',
    script: 'packages/sim/scripts/readme-example.ts',
    args: [],
    produces: ['stdout.txt'],
    blocks: {
      'sim-readme-example': (out) => ['```', out('sim-readme-example').stdout.trimEnd(), '```'].join('\n'),
    },
  },
  {
    name: 'experiment-headlines',
    display: 'node --import tsx scripts/docs-gen/experiment-headlines.ts',
    script: 'scripts/docs-gen/experiment-headlines.ts',
    args: [],
    produces: ['stdout.txt'],
    blocks: {
      // Read from the generated blocks of docs/experiments/*.md: re-run after scripts/docs-experiments.ts.
      'experiment-headlines': (out) => out('experiment-headlines').stdout.trimEnd(),
    },
  },
  {
    // the defaults: the first 300 requests of the bundled sample at time scale 2 (docs/cli/live.md has the arithmetic)
    name: 'live',
    display: 'pnpm kvmgr live',
    args: ['live', '--no-progress'],
    produces: ['kvmgr-live/live.json'],
    blocks: {
      'live-output': (out) => [transcript('pnpm kvmgr live', out('live').stdout), '', loadLine(out('live').dir)].join('\n'),
    },
  },
  {
    name: 'live-hops',
    display: 'node --conditions=@kvmgr/source --import tsx packages/cli/bench/live-hops.ts',
    script: 'packages/cli/bench/live-hops.ts',
    args: [],
    produces: ['stdout.txt'],
    blocks: { 'live-hops-table': liveHops },
  },
  {
    name: 'metrics-scrape',
    display: 'pnpm -s kvmgr metrics scrape http://127.0.0.1:18931/vllm-v1-dp2.prom',
    script: 'scripts/docs-gen/metrics-scrape.ts',
    args: [],
    produces: ['stdout.txt'],
    blocks: {
      'metrics-scrape-output': (out) => transcript('pnpm -s kvmgr metrics scrape http://127.0.0.1:18931/vllm-v1-dp2.prom', out('metrics-scrape').stdout),
    },
  },
  {
    name: 'client-capacity',
    display: 'node --conditions=@kvmgr/source --import tsx packages/cli/bench/client-capacity.ts 5',
    script: 'packages/cli/bench/client-capacity.ts',
    args: ['5'],
    produces: ['stdout.txt'],
    blocks: {
      'client-capacity-output': (out) =>
        [transcript('node --conditions=@kvmgr/source --import tsx packages/cli/bench/client-capacity.ts 5', out('client-capacity').stdout), '', loadLine(out('client-capacity').dir)].join('\n'),
    },
  },
  {
    name: 'gateway-overhead',
    display: 'node --conditions=@kvmgr/source --import tsx packages/gateway/bench/overhead.ts 1000 5 trivial',
    script: 'packages/gateway/bench/overhead.ts',
    args: ['1000', '5', 'trivial'],
    produces: ['stdout.txt'],
    blocks: {
      'gateway-overhead-output': (out) => [transcript('node --conditions=@kvmgr/source --import tsx packages/gateway/bench/overhead.ts 1000 5 trivial', out('gateway-overhead').stdout), '', loadLine(out('gateway-overhead').dir)].join('\n'),
    },
  },
  {
    name: 'gateway-overhead-floor',
    display: 'KVMGR_BENCH_GATEWAY=floor node --conditions=@kvmgr/source --import tsx packages/gateway/bench/overhead.ts 1000 5 trivial',
    script: 'packages/gateway/bench/overhead.ts',
    args: ['1000', '5', 'trivial'],
    env: { KVMGR_BENCH_GATEWAY: 'floor' },
    produces: ['stdout.txt'],
    blocks: {
      'gateway-overhead-floor-output': (out) =>
        [transcript('KVMGR_BENCH_GATEWAY=floor node --conditions=@kvmgr/source --import tsx packages/gateway/bench/overhead.ts 1000 5 trivial', out('gateway-overhead-floor').stdout), '', loadLine(out('gateway-overhead-floor').dir)].join('\n'),
    },
  },
  {
    name: 'gateway-overload',
    display: 'node --conditions=@kvmgr/source --import tsx packages/gateway/bench/overload.ts 15 all 1',
    script: 'packages/gateway/bench/overload.ts',
    args: ['15', 'all', '1'],
    produces: ['stdout.txt'],
    blocks: {
      'gateway-overload-output': (out) => [transcript('node --conditions=@kvmgr/source --import tsx packages/gateway/bench/overload.ts 15 all 1', out('gateway-overload').stdout), '', loadLine(out('gateway-overload').dir)].join('\n'),
    },
  },
  {
    name: 'epp-latency',
    display: 'node --conditions=@kvmgr/source --import tsx packages/gateway/bench/epp-latency.ts 1000 5',
    script: 'packages/gateway/bench/epp-latency.ts',
    args: ['1000', '5'],
    produces: ['stdout.txt'],
    blocks: {
      'epp-latency-output': (out) => [transcript('node --conditions=@kvmgr/source --import tsx packages/gateway/bench/epp-latency.ts 1000 5', out('epp-latency').stdout), '', loadLine(out('epp-latency').dir)].join('\n'),
    },
  },
  {
    name: 'epp-latency-floor',
    display: 'KVMGR_BENCH_PICKER=null KVMGR_BENCH_STEPS=1000 node --conditions=@kvmgr/source --import tsx packages/gateway/bench/epp-latency.ts 1000 5',
    script: 'packages/gateway/bench/epp-latency.ts',
    args: ['1000', '5'],
    env: { KVMGR_BENCH_PICKER: 'null', KVMGR_BENCH_STEPS: '1000' },
    produces: ['stdout.txt'],
    blocks: {
      'epp-latency-floor-output': (out) =>
        [transcript('KVMGR_BENCH_PICKER=null KVMGR_BENCH_STEPS=1000 node --conditions=@kvmgr/source --import tsx packages/gateway/bench/epp-latency.ts 1000 5', out('epp-latency-floor').stdout), '', loadLine(out('epp-latency-floor').dir)].join('\n'),
    },
  },
  {
    name: 'engine-fidelity',
    display: 'node --conditions=@kvmgr/source --import tsx packages/engine-server/bench/fidelity.ts 1 5 10',
    script: 'packages/engine-server/bench/fidelity.ts',
    args: ['1', '5', '10'],
    produces: ['stdout.txt'],
    blocks: { 'engine-fidelity-table': engineFidelity },
  },
  {
    name: 'engine-fidelity-trace',
    display: 'node --conditions=@kvmgr/source --import tsx packages/engine-server/bench/fidelity.ts --trace --duration 15 --rate-scale 0.25 --max-lag-ms 5000 --client http 1 1',
    script: 'packages/engine-server/bench/fidelity.ts',
    args: ['--trace', '--duration', '15', '--rate-scale', '0.25', '--max-lag-ms', '5000', '--client', 'http', '1', '1'],
    produces: ['stdout.txt'],
    blocks: { 'engine-fidelity-trace-table': (out) => engineFidelity(out, 'engine-fidelity-trace') },
  },
  {
    name: 'engine-fidelity-floor',
    display: 'node --conditions=@kvmgr/source --import tsx packages/engine-server/bench/fidelity.ts --servers engine,floor 1 1',
    script: 'packages/engine-server/bench/fidelity.ts',
    args: ['--servers', 'engine,floor', '1', '1'],
    produces: ['stdout.txt'],
    blocks: { 'engine-fidelity-floor-table': (out) => engineFidelity(out, 'engine-fidelity-floor') },
  },
  {
    name: 'engine-fidelity-floor-http',
    display: 'node --conditions=@kvmgr/source --import tsx packages/engine-server/bench/fidelity.ts --servers engine,floor --client http 1 1',
    script: 'packages/engine-server/bench/fidelity.ts',
    args: ['--servers', 'engine,floor', '--client', 'http', '1', '1'],
    produces: ['stdout.txt'],
    blocks: { 'engine-fidelity-floor-http-table': (out) => engineFidelity(out, 'engine-fidelity-floor-http') },
  },
  {
    name: 'engine-load',
    display: 'node --conditions=@kvmgr/source --import tsx packages/engine-server/bench/serve-load.ts 16 64 256',
    script: 'packages/engine-server/bench/serve-load.ts',
    args: ['16', '64', '256'],
    produces: ['stdout.txt'],
    blocks: { 'engine-load-table': engineLoad },
  },
  {
    name: 'ir-ab-example',
    display: 'node --conditions=@kvmgr/source --import tsx packages/scheduler-ir/scripts/ab-example.ts',
    script: 'packages/scheduler-ir/scripts/ab-example.ts',
    args: [],
    produces: ['stdout.txt'],
    blocks: {
      'ir-ab-example': (out) => ['```', out('ir-ab-example').stdout.trimEnd(), '```'].join('\n'),
    },
  },
  {
    name: 'kv-pool-azure',
    display: 'node --conditions=@kvmgr/source --import tsx packages/kv-pool/scripts/replay-azure.ts ../shared/traces/azure_llm_2023_conv.csv',
    script: 'packages/kv-pool/scripts/replay-azure.ts',
    args: ['$SHARED/traces/azure_llm_2023_conv.csv'],
    produces: ['stdout.txt'],
    blocks: {
      'kv-pool-azure-output': (out) =>
        transcript('node --conditions=@kvmgr/source --import tsx packages/kv-pool/scripts/replay-azure.ts ../shared/traces/azure_llm_2023_conv.csv', out('kv-pool-azure').stdout),
    },
  },
  {
    name: 'kv-pool-azure-92',
    display: 'node --conditions=@kvmgr/source --import tsx packages/kv-pool/scripts/replay-azure.ts ../shared/traces/azure_llm_2023_conv.csv 0.92,0.95',
    script: 'packages/kv-pool/scripts/replay-azure.ts',
    args: ['$SHARED/traces/azure_llm_2023_conv.csv', '0.92,0.95'],
    produces: ['stdout.txt'],
    blocks: {
      'kv-pool-azure-92-output': (out) =>
        transcript(
          'node --conditions=@kvmgr/source --import tsx packages/kv-pool/scripts/replay-azure.ts ../shared/traces/azure_llm_2023_conv.csv 0.92,0.95',
          out('kv-pool-azure-92').stdout,
        ),
    },
  },
  benchSection('scheduler-ir'),
  benchSection('gateway'),
  benchSection('native'),
  benchSection('router'),
  benchSection('kv-pool'),
  benchSection('prefix-cache'),
  withBlocks(benchSection('eviction'), EVICTION_BENCH_BLOCKS),
  // the suite reads the Mooncake trace from the shared data folder
  { ...withBlocks(benchSection('lifetime-predictor'), PREDICTOR_BENCH_BLOCKS), needs: ['traces/mooncake_fast25_conversation_trace.jsonl'] },
  {
    name: 'predict-eval',
    display: 'pnpm kvmgr predict eval --trace ../shared/traces/azure_llm_2023_conv.csv --limit 5000',
    args: ['predict', 'eval', '--trace', '$SHARED/traces/azure_llm_2023_conv.csv', '--limit', '5000'],
    produces: ['stdout.txt'],
    blocks: {
      'predict-eval-output': (out) => transcript('pnpm kvmgr predict eval --trace ../shared/traces/azure_llm_2023_conv.csv --limit 5000', out('predict-eval').stdout),
    },
  },
  {
    name: 'eviction-mooncake',
    display: 'pnpm kvmgr eviction eval --trace ../shared/traces/mooncake_fast25_conversation_trace.jsonl',
    args: ['eviction', 'eval', '--trace', '$SHARED/traces/mooncake_fast25_conversation_trace.jsonl', '--no-progress'],
    produces: ['kvmgr-eviction/eviction.json'],
    blocks: {
      'eviction-mooncake-output': (out) => transcript('pnpm kvmgr eviction eval --trace ../shared/traces/mooncake_fast25_conversation_trace.jsonl', out('eviction-mooncake').stdout),
      'eviction-mooncake-best': evictionBest,
    },
  },
  {
    name: 'eviction-suite',
    display: 'pnpm kvmgr eviction eval --suite --trace ../shared/traces/mooncake_fast25_conversation_trace.jsonl --json',
    args: ['eviction', 'eval', '--suite', '--trace', '$SHARED/traces/mooncake_fast25_conversation_trace.jsonl', '--json', '--no-progress'],
    stdoutFile: 'suite.json',
    produces: ['suite.json'],
    blocks: {
      'eviction-suite-adaptive': evictionSuiteAdaptive,
      ...EVICTION_SUITE_BLOCKS,
    },
  },
  {
    name: 'eviction-json-example',
    display: 'pnpm kvmgr eviction eval --limit 1000 --policies lru,arc,predictive,belady --capacities 250,500,1000,2000 --json',
    args: ['eviction', 'eval', '--limit', '1000', '--policies', 'lru,arc,predictive,belady', '--capacities', '250,500,1000,2000', '--json'],
    produces: ['stdout.txt'],
    blocks: {
      'eviction-json-example': (out) => {
        const first = (JSON.parse(out('eviction-json-example').stdout) as { points: unknown[] }).points[0];
        return ['```json', JSON.stringify(first, null, 2), '```'].join('\n');
      },
    },
  },
  ...EVICTION_SECTIONS,
  ...PREDICTOR_SECTIONS,
];

/**
 * Named groups of sections, usable wherever a section name is: `sim` is every section whose
 * numbers come from the simulator (re-run them when its engine or latency model changes),
 * `bench` every benchmark and load measurement.
 */
export const GROUPS: Readonly<Record<string, readonly string[]>> = {
  sim: ['replay', 'ab', 'sweep', 'fidelity', 'scale', 'prefix-index', 'sim-readme-example', 'live'],
  bench: ['bench-scheduler-ir', 'bench-gateway', 'bench-native', 'bench-router', 'bench-kv-pool', 'bench-prefix-cache', 'bench-eviction', 'bench-lifetime-predictor', 'client-capacity', 'engine-fidelity', 'engine-fidelity-floor', 'engine-fidelity-floor-http', 'engine-load', 'eviction-op-cost', 'live-hops'],
  eviction: ['eviction-hit-ratios', 'eviction-signal-bounds', 'eviction-followup-signals', 'eviction-adaptive-seed2', 'eviction-adaptive-seed3', 'eviction-suite', 'eviction-op-cost', 'bench-eviction'],
  predictor: ['predictor-eval-traces', 'predictor-mooncake-bound', 'predictor-eval-synthetic', 'predictor-eval-selection', 'bench-lifetime-predictor'],
};

/**
 * Reads a section's cache folder.
 * @param dir - the cache folder
 * @param shared - absolute path of the shared data folder: written back as `../shared` in stdout,
 *   as the displayed commands name it (the docs hold no machine paths)
 */
export function readOutput(dir: string, shared: string): SectionOutput {
  const stdoutFile = join(dir, 'stdout.txt');
  return {
    dir,
    stdout: existsSync(stdoutFile) ? readFileSync(stdoutFile, 'utf8').replaceAll(shared, '../shared') : '',
    json<T>(file: string): T {
      return JSON.parse(readFileSync(join(dir, file), 'utf8')) as T;
    },
  };
}
