/**
 * What a pass is: a factory (`PassDefinition`) that, given resolved options, makes a small
 * stateless `run(ir, ctx)` function anchored on one or more IR ops.
 *
 * @see MLIR pass infrastructure, https://mlir.llvm.org/docs/PassManagement/
 */
import type { LifetimePredictor, VictimSelector } from '@kvmgr/core';
import type { OptionsSchema, ResolvedOptions } from './options.js';
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
  /** This pass instance's statistics counters, in the order of its definition's `statistics`. */
  readonly stats: Float64Array;
}

/** A statistic a pass counts (summed over runs). */
export interface StatisticSpec {
  readonly name: string;
  readonly description: string;
}

/** A pass's run function: reads `ir.state`, writes the IR's working arrays and attributes. */
export type PassRun = (ir: StepIR, ctx: PassContext) => void;

/** A registered pass: textual name, summary, options with defaults, statistics and a factory. */
export interface PassDefinition {
  /** Name in pipelines, kebab-case, e.g. `chunked-prefill`. */
  readonly argument: string;
  /** One-line summary. */
  readonly summary: string;
  /** Ops it may run on. */
  readonly anchors: readonly Anchor[];
  readonly options: OptionsSchema;
  readonly statistics: readonly StatisticSpec[];
  /** Makes the run function for resolved options (called once per pipeline build). */
  create(options: ResolvedOptions): PassRun;
}
