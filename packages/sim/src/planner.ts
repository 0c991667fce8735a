/**
 * Builds the step planner of a profile: its `@kvmgr/scheduler-ir` pipeline (preset name such as
 * `vllm-default` / `kvmgr-default`, or pipeline text) run by a `PassManager`. The pipeline owns
 * every scheduling decision, preemption mode included (`memory-aware-preemption{mode=…}`).
 */
import type { LifetimePredictor, VictimSelector } from '@kvmgr/core';
import { PassManager, createDefaultRegistry } from '@kvmgr/scheduler-ir';
import type { SchedState, StepPlan, StepPlanner } from './engine/sched-types.js';

/** Options of {@link createPlanner}. */
export interface PlannerOptions {
  /** Output-length predictor injected into the pipeline (admission, sjf, lifetime-aware). */
  readonly predictor?: LifetimePredictor;
  /** Victim selector injected into the pipeline (`memory-aware-preemption{victim=selector}`). */
  readonly victimSelector?: VictimSelector;
  /** Run scheduler-IR's verifier after each pass (slow; tests). @default false */
  readonly verify?: boolean;
}

/**
 * Creates a planner.
 * @param spec - a scheduler-IR preset name or pipeline text.
 * @param options - injected analyses.
 * @throws KvmgrError `KVMGR_BAD_PIPELINE` for pipeline text that does not parse, names an
 *   unknown pass, or has no materialize pass (cannot produce a plan).
 */
export function createPlanner(spec: string, options: PlannerOptions = {}): StepPlanner {
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
