/**
 * Builds the step planner of a profile: a `@kvmgr/scheduler-ir` pipeline (preset name such as
 * `vllm-default` / `kvmgr-default`, or pipeline text) run by its `PassManager`, or the built-in
 * vLLM FCFS planner (`builtin-fcfs`, used by the analytic tests as an independent reference).
 */
import type { LifetimePredictor, PreemptionMode, VictimSelector } from '@kvmgr/core';
import { PassManager, createDefaultRegistry } from '@kvmgr/scheduler-ir';
import { createFcfsPlanner } from './engine/fcfs-planner.js';
import type { SchedState, StepPlan, StepPlanner } from './engine/sched-types.js';

/** Options of {@link createPlanner}. */
export interface PlannerOptions {
  /** Preemption mode of the built-in planner. @default 'recompute' */
  readonly preemption?: PreemptionMode;
  /** Output-length predictor injected into the pipeline (admission, sjf, lifetime-aware). */
  readonly predictor?: LifetimePredictor;
  /** Victim selector injected into the pipeline (`memory-aware-preemption{victim=selector}`). */
  readonly victimSelector?: VictimSelector;
  /** Run scheduler-IR's verifier after each pass (slow; tests). @default false */
  readonly verify?: boolean;
}

/**
 * Creates a planner.
 * @param spec - `builtin-fcfs`, a scheduler-IR preset name, or pipeline text.
 * @param options - injected analyses.
 * @throws KvmgrError `KVMGR_BAD_PIPELINE` for pipeline text that does not parse, names an
 *   unknown pass, or has no materialize pass (cannot produce a plan).
 */
export function createPlanner(spec: string, options: PlannerOptions = {}): StepPlanner {
  if (spec === 'builtin-fcfs') return createFcfsPlanner({ preemption: options.preemption ?? 'recompute' });
  const pm = new PassManager({
    pipeline: spec,
    registry: createDefaultRegistry(),
    analyses: {
      ...(options.predictor === undefined ? {} : { predictor: options.predictor }),
      ...(options.victimSelector === undefined ? {} : { victimSelector: options.victimSelector }),
    },
    verify: options.verify ?? false,
    requirePlan: true,
  });
  return {
    name: pm.canonical,
    plan(state: SchedState): StepPlan {
      return pm.run(state);
    },
  };
}
