/**
 * Registries: build a node-level policy or a victim selector by name.
 */
import { type EvictionPolicy, type VictimSelector, requireOneOf, requirePositiveInt } from '@kvmgr/core';
import { AdaptivePolicy } from './adaptive.js';
import { ArcPolicy } from './arc.js';
import { BeladyPolicy } from './belady.js';
import { GdsfPolicy, type GdsfOptions } from './gdsf.js';
import { LfuPolicy } from './lfu.js';
import { LruPolicy } from './lru.js';
import { PredictivePolicy, type PredictiveOptions } from './predictive.js';
import { S3FifoPolicy } from './s3fifo.js';
import { SievePolicy } from './sieve.js';
import { type BaselineSelectorOptions, type SloAwareOptions, SloAwareVictimSelector, SglangVictimSelector, VllmVictimSelector } from './victim-selectors.js';

/** Names accepted by {@link createEvictionPolicy}. */
export const EVICTION_POLICY_NAMES = ['lru', 'lfu', 'arc', 's3fifo', 'sieve', 'gdsf', 'predictive', 'adaptive', 'belady'] as const;
/** A node-level policy name. */
export type EvictionPolicyName = (typeof EVICTION_POLICY_NAMES)[number];

/** Options of {@link createEvictionPolicy}; each policy reads the ones it knows. */
export interface EvictionPolicyOptions extends GdsfOptions, PredictiveOptions {
  /** Cache size in keys: required by `arc` and `s3fifo`. */
  readonly capacity?: number;
  /** S3-FIFO small-queue fraction. @default 0.1 */
  readonly smallRatio?: number;
  /** S3-FIFO ghost fraction. @default 0.9 */
  readonly ghostRatio?: number;
  /** `adaptive`: the experts it may follow. @default ['lru', 'lfu', 'arc', 'gdsf', 's3fifo', 'predictive'] */
  readonly experts?: readonly string[];
  /** `adaptive`: the expert followed first. @default 'predictive' when among the experts, else the first */
  readonly initialExpert?: string;
  /** `adaptive`: capacity at or below which every expert is simulated at full size. @default 4096 */
  readonly exactCapacity?: number;
  /** `adaptive`: keys per miniature simulation above `exactCapacity` (sampling rate = sampledKeys / capacity). @default 1024 */
  readonly sampledKeys?: number;
  /** Belady's future accesses (required by `belady`). */
  readonly accesses?: ArrayLike<number>;
}

/**
 * Builds a node-level eviction policy by name.
 * @param name - one of {@link EVICTION_POLICY_NAMES}.
 * @param options - `capacity` for `arc`/`s3fifo`/`adaptive`, `accesses` for `belady`, policy options otherwise.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown name or a missing/invalid option.
 */
export function createEvictionPolicy(name: string, options: EvictionPolicyOptions = {}): EvictionPolicy {
  const n = requireOneOf('name', name, EVICTION_POLICY_NAMES);
  const init = options.initialCapacity === undefined ? {} : { initialCapacity: options.initialCapacity };
  switch (n) {
    case 'lru':
      return new LruPolicy(init);
    case 'lfu':
      return new LfuPolicy(init);
    case 'sieve':
      return new SievePolicy(init);
    case 'arc':
      return new ArcPolicy({ ...init, capacity: requirePositiveInt('options.capacity', options.capacity) });
    case 's3fifo':
      return new S3FifoPolicy({
        ...init,
        capacity: requirePositiveInt('options.capacity', options.capacity),
        ...(options.smallRatio === undefined ? {} : { smallRatio: options.smallRatio }),
        ...(options.ghostRatio === undefined ? {} : { ghostRatio: options.ghostRatio }),
      });
    case 'gdsf':
      return new GdsfPolicy(options);
    case 'predictive':
      return new PredictivePolicy(options);
    case 'adaptive':
      return new AdaptivePolicy({
        ...init,
        capacity: requirePositiveInt('options.capacity', options.capacity),
        ...(options.experts === undefined ? {} : { experts: options.experts }),
        ...(options.initialExpert === undefined ? {} : { initialExpert: options.initialExpert }),
        ...(options.exactCapacity === undefined ? {} : { exactCapacity: options.exactCapacity }),
        ...(options.sampledKeys === undefined ? {} : { sampledKeys: options.sampledKeys }),
      });
    case 'belady':
      return new BeladyPolicy({ accesses: options.accesses as ArrayLike<number> });
  }
}

/** Names accepted by {@link createVictimSelector}. */
export const VICTIM_SELECTOR_NAMES = ['slo-aware', 'vllm', 'sglang'] as const;
/** A victim selector name. */
export type VictimSelectorName = (typeof VICTIM_SELECTOR_NAMES)[number];

/**
 * Builds a request-level victim selector by name.
 * @param name - one of {@link VICTIM_SELECTOR_NAMES}.
 * @param options - {@link SloAwareOptions} for `slo-aware`, {@link BaselineSelectorOptions} otherwise.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown name or an invalid option.
 */
export function createVictimSelector(name: string, options: SloAwareOptions & BaselineSelectorOptions = {}): VictimSelector {
  const n = requireOneOf('name', name, VICTIM_SELECTOR_NAMES);
  if (n === 'slo-aware') return new SloAwareVictimSelector(options);
  const o = options.mode === undefined ? {} : { mode: options.mode };
  return n === 'vllm' ? new VllmVictimSelector(o) : new SglangVictimSelector(o);
}
