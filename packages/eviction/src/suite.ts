/**
 * The eviction test bench: every policy over several workload shapes (a real block trace and
 * the generated ones of `workloads.ts`), per capacity, with Belady as the bound.
 */
import { invalidArgument, requirePositiveInt } from '@kvmgr/core';
import { type BlockTraceRequest, blockAccessSequence, replayBlockTrace } from './block-trace.js';
import { EVICTION_POLICY_NAMES, createEvictionPolicy } from './registry.js';
import { WORKLOAD_DESCRIPTIONS, WORKLOAD_SHAPES, generateBlockWorkload } from './workloads.js';

/** One workload of the suite. */
export interface SuiteWorkload {
  /** Short name (`mooncake`, `agentic`, …). */
  readonly name: string;
  /** One line on what it is. */
  readonly description: string;
  /** Requests in arrival order. */
  readonly requests: readonly BlockTraceRequest[];
}

/** One (workload, policy, capacity) result. */
export interface SuitePoint {
  readonly workload: string;
  readonly policy: string;
  /** Cache size, blocks. */
  readonly capacity: number;
  /** Blocks served from cache / block references (prefix semantics). */
  readonly hitRatio: number;
  /** hitRatio / Belady's at the same capacity; absent when Belady is not run or gets 0. */
  readonly shareOfBelady?: number;
}

/** Options of {@link runEvictionSuite}. */
export interface EvictionSuiteOptions {
  /** Cache sizes, blocks. @default [1000, 3000, 10000, 30000] */
  readonly capacities?: readonly number[];
  /** Policies (Belady included for the share). @default every registered policy */
  readonly policies?: readonly string[];
  /** Called after each replay with (done, total). */
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * The generated shapes of the suite ({@link WORKLOAD_SHAPES}), seeded.
 * @param seed - generator seed. @default 1
 */
export function generatedSuiteWorkloads(seed = 1): SuiteWorkload[] {
  return WORKLOAD_SHAPES.map((s) => ({ name: s, description: WORKLOAD_DESCRIPTIONS[s], requests: generateBlockWorkload(s, { seed }) }));
}

/**
 * Replays every policy over every workload at every capacity (prefix semantics, see
 * {@link replayBlockTrace}).
 * @param workloads - the shapes, e.g. a real trace plus {@link generatedSuiteWorkloads}.
 * @param options - see {@link EvictionSuiteOptions}.
 * @returns one point per workload × policy × capacity, in that order.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown policy, an empty list or a
 *   non-positive capacity.
 */
export function runEvictionSuite(workloads: readonly SuiteWorkload[], options: EvictionSuiteOptions = {}): SuitePoint[] {
  const capacities = [...(options.capacities ?? [1000, 3000, 10000, 30000])];
  const policies = [...(options.policies ?? EVICTION_POLICY_NAMES)];
  if (capacities.length === 0) throw invalidArgument('capacities', capacities, 'at least one capacity');
  if (policies.length === 0) throw invalidArgument('policies', policies, 'at least one policy');
  for (const c of capacities) requirePositiveInt('capacity', c);
  for (const p of policies) createEvictionPolicy(p, { capacity: 1, accesses: [] });
  const total = workloads.length * policies.length * capacities.length;
  const out: SuitePoint[] = [];
  for (const w of workloads) {
    const accesses = blockAccessSequence(w.requests);
    const raw: { policy: string; capacity: number; hitRatio: number }[] = [];
    for (const policy of policies) {
      for (const capacity of capacities) {
        const r = replayBlockTrace(w.requests, createEvictionPolicy(policy, { capacity, accesses }), capacity);
        raw.push({ policy, capacity, hitRatio: r.hitRatio });
        options.onProgress?.(out.length + raw.length, total);
      }
    }
    const belady = new Map(raw.filter((p) => p.policy === 'belady').map((p) => [p.capacity, p.hitRatio]));
    for (const p of raw) {
      const b = belady.get(p.capacity);
      out.push(b !== undefined && b > 0 ? { workload: w.name, ...p, shareOfBelady: p.hitRatio / b } : { workload: w.name, ...p });
    }
  }
  return out;
}
