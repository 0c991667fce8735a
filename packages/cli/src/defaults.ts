/**
 * Every default of the `kvmgr` commands in one place: what `--help` prints and what a command
 * runs with when neither a flag nor `--config` sets a value. Engine defaults (block size, token
 * budget, memory) are not here: they come from the profile (`@kvmgr/sim` `ENGINE_PROFILES`).
 */
import { fileURLToPath } from 'node:url';
import { EVICTION_POLICY_NAMES } from '@kvmgr/eviction';

/** Bundled trace used when `--trace` is not given (first 3,000 requests of Mooncake's conversation trace). */
export const BUNDLED_TRACE = fileURLToPath(new URL('../data/mooncake-conversation-sample.jsonl', import.meta.url));

/** Defaults shared by replay, ab and sweep (SLOs as the flags take them, with a unit). */
export const DEFAULTS = Object.freeze({
  model: 'Llama-3.1-8B-Instruct',
  gpu: 'H100',
  tp: 1,
  instances: 4,
  baseline: 'vllm-default',
  candidate: 'kvmgr-default',
  rateScale: 1,
  sloTtft: '2s',
  sloTpot: '100ms',
  seed: 1,
  out: 'kvmgr-report',
});

/** Defaults of `kvmgr sweep`: rate scales (× the trace's rate), profiles, output folder, and the SLO attainment (0..1) that defines the knee. */
export const SWEEP_DEFAULTS = Object.freeze({ rates: [0.5, 1, 2, 4, 8], profiles: ['vllm-default', 'kvmgr-default'], out: 'kvmgr-sweep', target: 0.9 });

/** Defaults of `kvmgr eviction eval`: #5's capacities (blocks), every policy, Belady included. */
export const EVICTION_DEFAULTS = Object.freeze({ capacities: [1000, 3000, 10000, 30000], policies: [...EVICTION_POLICY_NAMES] as string[], out: 'kvmgr-eviction' });

/** Defaults of `kvmgr fidelity`. */
export const FIDELITY_DEFAULTS = Object.freeze({ latency: 'auto' as const, out: 'kvmgr-fidelity', cvRounds: 2 });
