/**
 * The pass manager: builds a pipeline from text against a registry, runs it once per engine
 * step over a reused `StepIR`, and offers MLIR's conveniences — instrumentation hooks, timing,
 * per-pass statistics, a verifier after each pass that names the pass which broke an
 * invariant, a bisect limit, and a reproducer (pipeline + input IR) on failure.
 *
 * @see https://mlir.llvm.org/docs/PassManagement/
 */
import { KvmgrError, invalidArgument, isKvmgrError } from '@kvmgr/core';
import type { SchedState, StepPlan } from './ir.js';
import type { Anchor, PassContext, PassDefinition, PassRun, SchedAnalyses } from './pass.js';
import { type AnchorNode, type Pipeline, parsePipeline, pipelineId, printPipeline } from './pipeline-text.js';
import type { PassRegistry } from './registry.js';
import { StatisticSet } from './statistics.js';
import { StepIR } from './step-ir.js';
import { printState } from './text.js';
import { verifyPlan } from './verifier.js';

/** A pass instance in a built pipeline, as instrumentation sees it. */
export interface PassInfo {
  /** Position in the flattened pipeline, 0-based. */
  readonly index: number;
  readonly argument: string;
  /** The anchor path, e.g. `sched.step/sched.waiting`. */
  readonly anchorPath: string;
  readonly definition: PassDefinition;
}

/** Hooks around each pass (MLIR's `PassInstrumentation`). */
export interface PassInstrumentation {
  runBeforePass?(pass: PassInfo, ir: StepIR): void;
  runAfterPass?(pass: PassInfo, ir: StepIR): void;
  runAfterPassFailed?(pass: PassInfo, ir: StepIR, error: unknown): void;
}

/** Options of {@link PassManager}. */
export interface PassManagerOptions {
  /** Pipeline text or preset name, e.g. `vllm-default`. */
  readonly pipeline: string;
  /** Pass and preset names. @default the built-in registry */
  readonly registry: PassRegistry;
  /** Injected predictor / victim selector. @default {} */
  readonly analyses?: SchedAnalyses;
  /** Run the verifier on the input and after every pass. @default false */
  readonly verify?: boolean;
  /** Time each pass. @default false */
  readonly timing?: boolean;
  /** Run only the first N passes of the flattened pipeline (bisecting a bad pass). @default Infinity */
  readonly bisectLimit?: number;
  /**
   * Reject pipelines that cannot produce a plan (no `materialize` pass), here and in
   * {@link PassManager.setPipeline}. On for the simulator and the engine core; off to inspect
   * an ordering of a saved state (`kvmgr ir opt`). @default false
   */
  readonly requirePlan?: boolean;
}

/** The reproducer attached to a failure: enough to re-run the failing step. */
export interface Reproducer {
  /** Canonical pipeline text. */
  readonly pipeline: string;
  /** The input state, in the text form of {@link printState}. */
  readonly state: string;
}

/** Statistics of one pass instance. */
export interface PassStatistics {
  /** Position of the pass instance in the flattened pipeline (a pass may appear twice). */
  readonly index: number;
  readonly argument: string;
  readonly anchorPath: string;
  /** Statistic name (as declared in the definition) → sum since the last reset. */
  readonly values: Readonly<Record<string, number>>;
}

/** Accumulated time of one pass instance. */
export interface PassTiming {
  readonly index: number;
  readonly argument: string;
  readonly anchorPath: string;
  readonly runs: number;
  readonly totalUs: number;
}

interface Entry {
  readonly info: PassInfo;
  readonly run: PassRun;
  readonly queue: 'waiting' | 'running';
  readonly stats: StatisticSet;
  ctx: PassContext;
  timeUs: number;
  runs: number;
}

function flatten(node: AnchorNode, path: string, registry: PassRegistry, out: Omit<Entry, 'ctx'>[]): void {
  const p = path === '' ? node.anchor : `${path}/${node.anchor}`;
  for (const c of node.children) {
    if (c.kind === 'anchor') {
      flatten(c, p, registry, out);
      continue;
    }
    const def = registry.get(c.name)!;
    const queue: 'waiting' | 'running' = (node.anchor as Anchor) === 'sched.running' ? 'running' : 'waiting';
    const stats = new StatisticSet(def.statistics, def.argument);
    out.push({
      info: { index: out.length, argument: c.name, anchorPath: p, definition: def },
      run: def.create(c.options, stats),
      queue,
      stats,
      timeUs: 0,
      runs: 0,
    });
  }
}

/** Formats a reproducer the way `kvmgr ir opt` reads it back. */
export function formatReproducer(r: Reproducer): string {
  return `// configuration: --pass-pipeline='${r.pipeline}'\n${r.state}\n`;
}

/**
 * Runs a pass pipeline over one step's state.
 *
 * @example
 * ```ts
 * const pm = new PassManager({ pipeline: 'vllm-default', registry: createDefaultRegistry() });
 * const plan = pm.run(state); // plan.ops: admit / prefill / decode / preempt / ...
 * ```
 */
export class PassManager {
  private pipelineNode!: Pipeline;
  private canonicalText = '';
  private idText = '';
  private entries: Entry[] = [];
  private readonly registry: PassRegistry;
  private analyses: SchedAnalyses;
  private readonly instrumentations: PassInstrumentation[] = [];
  private verify: boolean;
  private timing: boolean;
  private bisectLimit: number;
  private readonly requirePlan: boolean;
  private readonly ir = new StepIR();

  /**
   * @throws KvmgrError `KVMGR_BAD_PIPELINE` (with span) when the pipeline does not parse, or
   *   (with `requirePlan`) cannot produce a plan; `KVMGR_INVALID_ARGUMENT` for a bad
   *   `bisectLimit`, or a pass that asks for a statistic it does not declare.
   */
  constructor(options: PassManagerOptions) {
    this.registry = options.registry;
    this.requirePlan = options.requirePlan ?? false;
    this.analyses = options.analyses ?? {};
    this.verify = options.verify ?? false;
    this.timing = options.timing ?? false;
    this.bisectLimit = Number.POSITIVE_INFINITY;
    if (options.bisectLimit !== undefined) this.setBisectLimit(options.bisectLimit);
    this.setPipeline(options.pipeline);
  }

  /** The parsed pipeline (options resolved). */
  get pipeline(): Pipeline {
    return this.pipelineNode;
  }

  /** Canonical pipeline text (options resolved and sorted). */
  get canonical(): string {
    return this.canonicalText;
  }

  /** Experiment id: hash of the canonical text. */
  get id(): string {
    return this.idText;
  }

  /** The passes of the flattened pipeline, in run order. */
  get passes(): readonly PassInfo[] {
    return this.entries.map((e) => e.info);
  }

  /**
   * Replaces the pipeline (statistics and timing start from zero); on an error nothing changes.
   * @throws KvmgrError `KVMGR_BAD_PIPELINE` (also, with `requirePlan`, for a pipeline with no
   *   materialize pass); `KVMGR_INVALID_ARGUMENT` when a pass asks for an undeclared statistic.
   */
  setPipeline(text: string): void {
    const node = parsePipeline(text, this.registry, { requirePlan: this.requirePlan });
    const flat: Omit<Entry, 'ctx'>[] = [];
    flatten(node, '', this.registry, flat);
    this.pipelineNode = node;
    this.canonicalText = printPipeline(node);
    this.idText = pipelineId(node);
    this.entries = flat.map((e) => ({ ...e, ctx: { analyses: this.analyses, queue: e.queue } }));
  }

  /** Replaces the injected analyses (predictor, victim selector). */
  setAnalyses(analyses: SchedAnalyses): void {
    this.analyses = analyses;
    for (const e of this.entries) e.ctx = { analyses, queue: e.queue };
  }

  /** Adds instrumentation hooks (run in the order added). */
  addInstrumentation(instrumentation: PassInstrumentation): void {
    this.instrumentations.push(instrumentation);
  }

  /** Turns the verifier on or off. */
  enableVerifier(on: boolean): void {
    this.verify = on;
  }

  /** Turns per-pass timing on or off. */
  enableTiming(on: boolean): void {
    this.timing = on;
  }

  /**
   * Runs only the first `limit` passes (`Infinity` = all).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` unless a non-negative integer or Infinity.
   */
  setBisectLimit(limit: number): void {
    if (limit !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw invalidArgument('bisectLimit', limit, 'a non-negative integer or Infinity');
    }
    this.bisectLimit = limit;
  }

  /**
   * Runs the pipeline over one step and returns the plan. `state` is not modified.
   * @throws KvmgrError `KVMGR_VERIFY_FAILED` (verifier on) naming the pass and invariant, with
   *   `details.reproducer`; `KVMGR_PASS_FAILED` when a pass throws (cause attached).
   */
  run(state: SchedState): StepPlan {
    this.runIR(state);
    return this.ir.toPlan();
  }

  /** Runs the pipeline and returns the IR (reused: valid until the next run). */
  runIR(state: SchedState): StepIR {
    const ir = this.ir;
    ir.reset(state);
    const entries = this.entries;
    if (!this.verify && !this.timing && this.instrumentations.length === 0 && this.bisectLimit >= entries.length) {
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        e.run(ir, e.ctx);
      }
      return ir;
    }
    this.runInstrumented(state, ir);
    return ir;
  }

  private reproducer(state: SchedState): Reproducer {
    return { pipeline: this.canonicalText, state: printState(state) };
  }

  private runInstrumented(state: SchedState, ir: StepIR): void {
    if (this.verify) {
      const v = verifyPlan(state, ir.toPlan());
      if (v) {
        throw new KvmgrError('KVMGR_VERIFY_FAILED', `verifier failed on the input state: ${v.invariant}: ${v.message}`, {
          details: { pass: null, invariant: v.invariant, requestId: v.requestId, reproducer: this.reproducer(state) },
        });
      }
    }
    const n = Math.min(this.entries.length, this.bisectLimit);
    for (let i = 0; i < n; i++) {
      const e = this.entries[i]!;
      for (const h of this.instrumentations) h.runBeforePass?.(e.info, ir);
      const t0 = this.timing ? performance.now() : 0;
      try {
        e.run(ir, e.ctx);
      } catch (err) {
        for (const h of this.instrumentations) h.runAfterPassFailed?.(e.info, ir, err);
        throw new KvmgrError('KVMGR_PASS_FAILED', `pass '${e.info.argument}' (#${i} on ${e.info.anchorPath}) failed: ${err instanceof Error ? err.message : String(err)}`, {
          cause: err,
          details: { pass: e.info.argument, passIndex: i, reproducer: this.reproducer(state) },
        });
      }
      if (this.timing) {
        e.timeUs += (performance.now() - t0) * 1000;
        e.runs++;
      }
      if (this.verify) {
        const v = verifyPlan(state, ir.toPlan());
        if (v) {
          const err = new KvmgrError('KVMGR_VERIFY_FAILED', `verifier failed after pass '${e.info.argument}' (#${i} on ${e.info.anchorPath}): ${v.invariant}: ${v.message}`, {
            details: { pass: e.info.argument, passIndex: i, invariant: v.invariant, requestId: v.requestId, reproducer: this.reproducer(state) },
          });
          for (const h of this.instrumentations) h.runAfterPassFailed?.(e.info, ir, err);
          throw err;
        }
      }
      for (const h of this.instrumentations) h.runAfterPass?.(e.info, ir);
    }
  }

  /**
   * Finds the first pass after which `isBad(plan)` holds (or the run throws): runs the first
   * k passes for growing k (binary search, assuming badness persists once introduced).
   * @returns the culprit pass, or null when the full pipeline is fine.
   */
  bisect(state: SchedState, isBad: (plan: StepPlan) => boolean): PassInfo | null {
    const saved = this.bisectLimit;
    const bad = (k: number): boolean => {
      this.bisectLimit = k;
      try {
        return isBad(this.run(state));
      } catch (e) {
        if (isKvmgrError(e)) return true;
        throw e;
      }
    };
    try {
      let lo = 0;
      let hi = this.entries.length;
      if (!bad(hi)) return null;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (bad(mid)) hi = mid;
        else lo = mid;
      }
      return this.entries[hi - 1]?.info ?? null;
    } finally {
      this.bisectLimit = saved;
    }
  }

  /**
   * Statistics accumulated since construction (or {@link resetCounters}), one entry per pass
   * instance in run order, each keyed by statistic name.
   */
  statistics(): PassStatistics[] {
    return this.entries.map((e) => ({ index: e.info.index, argument: e.info.argument, anchorPath: e.info.anchorPath, values: e.stats.values() }));
  }

  /**
   * One statistic by name, summed over every instance of the pass in the pipeline, e.g.
   * `pm.statistic('chunked-prefill', 'admitted')`.
   * @param pass - a pass argument in this pipeline.
   * @param name - a statistic its definition declares.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when the pipeline has no such pass, or the pass
   *   declares no such statistic.
   */
  statistic(pass: string, name: string): number {
    let sum = 0;
    let found = false;
    for (const e of this.entries) {
      if (e.info.argument !== pass) continue;
      found = true;
      sum += e.stats.get(name).value;
    }
    if (!found) throw invalidArgument('pass', pass, `a pass of the pipeline (${[...new Set(this.entries.map((e) => e.info.argument))].join(', ')})`);
    return sum;
  }

  /** Timing accumulated while timing was on. */
  timings(): PassTiming[] {
    return this.entries.map((e) => ({ index: e.info.index, argument: e.info.argument, anchorPath: e.info.anchorPath, runs: e.runs, totalUs: e.timeUs }));
  }

  /** Zeroes statistics and timing. */
  resetCounters(): void {
    for (const e of this.entries) {
      e.stats.reset();
      e.timeUs = 0;
      e.runs = 0;
    }
  }

  /** MLIR-style statistics report. */
  printStatistics(): string {
    const lines = [`===${'-'.repeat(73)}===`, '                         ... Pass statistics report ...', `===${'-'.repeat(73)}===`];
    for (const s of this.statistics()) {
      lines.push(`${s.anchorPath}: ${s.argument}`);
      const defs = this.entries[s.index]!.info.definition.statistics;
      for (const d of defs) lines.push(`  (S) ${s.values[d.name]} ${d.name} - ${d.description}`);
    }
    return lines.join('\n');
  }

  /** MLIR-style execution time report. */
  printTiming(): string {
    const t = this.timings();
    const total = t.reduce((a, b) => a + b.totalUs, 0);
    const lines = [`===${'-'.repeat(73)}===`, '                      ... Execution time report ...', `===${'-'.repeat(73)}===`];
    lines.push(`  Total Execution Time: ${(total / 1e6).toFixed(6)} seconds`, '', '  ----Wall Time----  ----Name----');
    for (const x of t) {
      const pct = total > 0 ? (100 * x.totalUs) / total : 0;
      lines.push(`  ${(x.totalUs / 1e6).toFixed(6)} (${pct.toFixed(1).padStart(5)}%)  ${x.argument}`);
    }
    lines.push(`  ${(total / 1e6).toFixed(6)} (100.0%)  Total`);
    return lines.join('\n');
  }
}
