/**
 * @kvmgr/eviction — node-level eviction policies (LRU, LFU, ARC, S3-FIFO, SIEVE, GDSF,
 * predictive, Belady), request-level victim selection (SLO-aware, vLLM, SGLang) and VTC
 * fairness, all behind `@kvmgr/core`'s `EvictionPolicy` / `VictimSelector` interfaces.
 */
export { LruPolicy } from './lru.js';
export type { LruOptions } from './lru.js';
export { LfuPolicy } from './lfu.js';
export type { LfuOptions } from './lfu.js';
export { ArcPolicy } from './arc.js';
export type { ArcOptions } from './arc.js';
export { S3FifoPolicy } from './s3fifo.js';
export type { S3FifoOptions } from './s3fifo.js';
export { SievePolicy } from './sieve.js';
export type { SieveOptions } from './sieve.js';
export { GdsfPolicy } from './gdsf.js';
export type { GdsfOptions } from './gdsf.js';
export { PredictivePolicy } from './predictive.js';
export type { PredictiveOptions, PredictiveEntryInfo } from './predictive.js';
export { AdaptivePolicy, ADAPTIVE_EXPERT_NAMES } from './adaptive.js';
export type { AdaptiveOptions, AdaptiveExpertName, AdaptiveState } from './adaptive.js';
export { BeladyPolicy } from './belady.js';
export type { BeladyOptions } from './belady.js';
export { SloAwareVictimSelector, VllmVictimSelector, SglangVictimSelector } from './victim-selectors.js';
export type { SloAwareOptions, BaselineSelectorOptions } from './victim-selectors.js';
export { VirtualTokenCounter, jainIndex, vtcServiceGapBound } from './fairness.js';
export type { VtcOptions, FairnessReport } from './fairness.js';
export {
  createEvictionPolicy,
  createVictimSelector,
  EVICTION_POLICY_NAMES,
  VICTIM_SELECTOR_NAMES,
} from './registry.js';
export type { EvictionPolicyName, EvictionPolicyOptions, VictimSelectorName } from './registry.js';
export { generateBlockWorkload, WORKLOAD_SHAPES, WORKLOAD_DESCRIPTIONS } from './workloads.js';
export type { WorkloadShape, BlockWorkloadOptions } from './workloads.js';
export { runEvictionSuite, generatedSuiteWorkloads } from './suite.js';
export type { SuiteWorkload, SuitePoint, EvictionSuiteOptions } from './suite.js';
export { readBlockTrace, replayBlockTrace, blockAccessSequence, followUpGapsMs } from './block-trace.js';
export type { BlockTraceRequest, BlockAccessInfo, BlockReplayResult } from './block-trace.js';
