/**
 * Lowerings: a plan → an engine's own schedule format. The interface lives here; each engine's
 * lowering lives in its adapter (vLLM's `SchedulerOutput`: `vllmLowering` in
 * `@kvmgr/adapter-vllm`).
 */
import type { SchedState, StepPlan } from './ir.js';

/** Lowers a plan into an engine's schedule format `T`. */
export interface Lowering<T> {
  /** Name, e.g. `vllm`. */
  readonly name: string;
  /**
   * @param state - the state the plan was made for.
   * @param plan - the plan.
   */
  lower(state: SchedState, plan: StepPlan): T;
}
