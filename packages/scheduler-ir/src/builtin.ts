/**
 * The built-in passes and the default registry.
 */
import type { PassDefinition } from './pass.js';
import { admissionPass } from './passes/admission.js';
import { batchingEfficiencyPass, fcfsPass, prefixCacheAwarePass, priorityPass, sjfPass, sloAwarePass } from './passes/ordering.js';
import { chunkedPrefillPass, lifetimeAwarePass, memoryAwarePreemptionPass, pdSeparationPass } from './passes/step-passes.js';
import { PRESETS } from './presets.js';
import { PassRegistry } from './registry.js';

/** Every built-in pass definition. */
export const BUILTIN_PASSES: readonly PassDefinition[] = [
  fcfsPass,
  priorityPass,
  sjfPass,
  prefixCacheAwarePass,
  batchingEfficiencyPass,
  sloAwarePass,
  admissionPass,
  lifetimeAwarePass,
  memoryAwarePreemptionPass,
  pdSeparationPass,
  chunkedPrefillPass,
];

/** A new registry holding the built-in passes and presets (add your own passes to it). */
export function createDefaultRegistry(): PassRegistry {
  const r = new PassRegistry();
  for (const p of BUILTIN_PASSES) r.register(p);
  for (const [name, text] of Object.entries(PRESETS)) r.registerPreset(name, text);
  return r;
}
