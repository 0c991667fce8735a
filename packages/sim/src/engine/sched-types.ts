/**
 * The scheduling IR types the engine works with (`@kvmgr/scheduler-ir`'s `SchedState` /
 * `StepPlan`), plus the one interface the engine needs from a planner. Pure types.
 */
import type { SchedState, StepPlan } from '@kvmgr/scheduler-ir';

export type {
  AdmitOp,
  Budgets,
  DecodeOp,
  DeferOp,
  DeferReason,
  EvictPrefixOp,
  KvView,
  OffloadOp,
  PlanOp,
  PlanOpKind,
  PreemptOp,
  PrefillOp,
  RejectOp,
  RejectReason,
  ReloadOp,
  RequestStatus,
  SchedRequest,
  SchedState,
  StepPlan,
  StepRole,
  TierBlocks,
} from '@kvmgr/scheduler-ir';

/** Anything that turns one step's scheduling problem into a plan (a scheduler-IR pipeline, or the built-in FCFS planner). */
export interface StepPlanner {
  /** Name (canonical pipeline text for scheduler-IR pipelines). */
  readonly name: string;
  /** Plans one step; must not mutate `state`. */
  plan(state: SchedState): StepPlan;
}
