/**
 * What a pass is: a factory (`PassDefinition`) that, given resolved options, makes a small
 * stateless `run(ir, ctx)` function anchored on one or more IR ops.
 *
 * @see MLIR pass infrastructure, https://mlir.llvm.org/docs/PassManagement/
 */
import type { LifetimePredictor, VictimSelector } from '@kvmgr/core';
import type { OptionsSchema, ResolvedOptions } from './options.js';
import type { StatisticSet } from './statistics.js';
import type { StepIR } from './step-ir.js';

/**
 * IR ops a pass can anchor on: the whole step, or one of its two queues (ordering passes).
 * Pipelines nest them: `sched.step(fcfs,sched.running(priority),chunked-prefill)`.
 */
export type Anchor = 'sched.step' | 'sched.waiting' | 'sched.running';

/** The anchors, root first. */
export const ANCHORS: readonly Anchor[] = ['sched.step', 'sched.waiting', 'sched.running'];

/**
 * Analyses and inputs injected from outside (composition happens in the simulator or user
 * code, never through imports of other kvmgr modules).
 */
export interface SchedAnalyses {
  /** Used by `admission`/`sjf`/`lifetime-aware` when a request carries no prediction. */
  readonly predictor?: LifetimePredictor;
  /** Used by `memory-aware-preemption{victim=selector}`. */
  readonly victimSelector?: VictimSelector;
}

/** What a pass sees besides the IR. */
export interface PassContext {
  readonly analyses: SchedAnalyses;
  /** The queue an ordering pass works on: `waiting` when anchored on `sched.step`. */
  readonly queue: 'waiting' | 'running';
}

/** A statistic a pass counts (summed over runs). */
export interface StatisticSpec {
  /** Kebab-case, unique within the pass, e.g. `admitted`; the key of the reported value. */
  readonly name: string;
  readonly description: string;
}

/**
 * What a pass does to the step, in pipeline order:
 * - `order`: reorders a queue (pushes an order key: `fcfs`, `priority`, `sjf`,
 *   `prefix-cache-aware`, `slo-aware`, `batching-efficiency`); may also mark decisions
 *   (`slo-aware{reject=true}`).
 * - `annotate`: sets attributes that materialization reads (`admission`, `lifetime-aware`'s
 *   reservations, `memory-aware-preemption`, `pd-separation`'s phase).
 * - `materialize`: turns the order and attributes into a plan — scheduled tokens, blocks,
 *   admissions, preemptions (`chunked-prefill`, which calls `materialize`). A pipeline that
 *   runs an engine step needs one (`parsePipeline(..., { requirePlan: true })`).
 * - `observe`: reads the IR only (measures, logs); never changes the plan.
 */
export type PassKind = 'order' | 'annotate' | 'materialize' | 'observe';

/** The pass kinds, in the order they usually appear in a pipeline. */
export const PASS_KINDS: readonly PassKind[] = ['order', 'annotate', 'materialize', 'observe'];

/** A pass's run function: reads `ir.state`, writes the IR's working arrays and attributes. */
export type PassRun = (ir: StepIR, ctx: PassContext) => void;

/**
 * A registered pass: textual name, kind, summary, options with defaults, statistics and a
 * factory.
 */
export interface PassDefinition {
  /** Name in pipelines, kebab-case, e.g. `chunked-prefill`. */
  readonly argument: string;
  /** What it does to the step (see {@link PassKind}); required, checked at registration. */
  readonly kind: PassKind;
  /** One-line summary. */
  readonly summary: string;
  /** Ops it may run on (`materialize` passes: `sched.step` only). */
  readonly anchors: readonly Anchor[];
  readonly options: OptionsSchema;
  /** Counters it keeps, by name (kebab-case, unique). */
  readonly statistics: readonly StatisticSpec[];
  /**
   * Makes the run function of one pass instance (called once per pipeline build).
   * @param options - every option of the schema, defaults filled in.
   * @param stats - this instance's counters: look each up once here (`stats.get('admitted')`),
   *   then `add` to it in the run function.
   */
  create(options: ResolvedOptions, stats: StatisticSet): PassRun;
}
