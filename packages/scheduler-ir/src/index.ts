/**
 * @kvmgr/scheduler-ir — a scheduling IR for LLM engine steps with MLIR-style passes, textual
 * pipelines, a verifier, engine presets, the lowering interface and an A/B harness.
 */
export type * from './ir.js';
export { PassManager, formatReproducer } from './pass-manager.js';
export type {
  PassInfo,
  PassInstrumentation,
  PassManagerOptions,
  PassStatistics,
  PassTiming,
  Reproducer,
} from './pass-manager.js';
export { PassRegistry } from './registry.js';
export { ANCHORS, PASS_KINDS } from './pass.js';
export type { Anchor, PassContext, PassDefinition, PassKind, PassRun, SchedAnalyses, StatisticSpec } from './pass.js';
export { StatisticSet } from './statistics.js';
export type { Statistic } from './statistics.js';
export type { OptionSpec, OptionsSchema, OptionValue, ResolvedOptions } from './options.js';
export { parsePipeline, printPipeline, pipelineId, renderSpan, stripSpans } from './pipeline-text.js';
export type { AnchorNode, ParsePipelineOptions, PassNode, Pipeline, Span } from './pipeline-text.js';
export {
  StepIR,
  blocksFor,
  DECISION_NONE,
  DECISION_DEFER,
  DECISION_REJECT,
  PREEMPT_NONE,
  PREEMPT_RECOMPUTE,
  PREEMPT_SWAP,
} from './step-ir.js';
export type { AdmissionAttr, PreemptionAttr, VictimRule } from './step-ir.js';
export { materialize } from './materialize.js';
export type { MaterializeCounts } from './materialize.js';
export { verifyPlan } from './verifier.js';
export type { InvariantName, Violation } from './verifier.js';
export { printState, parseState, printPlan, parsePlan, printStepIR } from './text.js';
export { BUILTIN_PASSES, createDefaultRegistry } from './builtin.js';
export { PRESETS } from './presets.js';
export { predictedRemaining } from './passes/predict.js';
export { predictedFootprintBlocks } from './passes/admission.js';
export type { QuantileName } from './passes/predict.js';
export type { Lowering } from './lowering.js';
export { abTest, pairedBootstrap, DEFAULT_AB_METRICS } from './ab.js';
export type { AbMetric, AbOptions, AbReport, PairedBootstrapOptions, PairedDifference } from './ab.js';
export { runOpt } from './opt.js';
export type { RunOptOptions } from './opt.js';
