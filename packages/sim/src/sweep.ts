/**
 * Sweeps: many replays (rates × configurations) in parallel worker threads with `piscina`.
 * Jobs are plain data (the trace is named by loader and path), so they cross thread boundaries;
 * each job is independent and deterministic, so results do not depend on the thread count.
 */
import { fileURLToPath } from 'node:url';
import { invalidArgument } from '@kvmgr/core';
import { Piscina } from 'piscina';
import type { RunSummary } from './metrics/summary.js';
import { type ReplayConfig, type ReplayOptions, runReplay } from './replay.js';
import type { InstanceSample } from './engine/cluster-types.js';
import type { RequestRow } from './metrics/summary.js';
import { loadAzureTrace } from './traces/azure.js';
import { type LengthCsvOptions, loadLengthCsv } from './traces/length-csv.js';
import { loadMooncakeTrace } from './traces/mooncake.js';
import type { Trace, TraceLoadOptions } from './traces/types.js';
import { generateWorkload } from './workload/generator.js';

/** A trace named by loader and source (serialisable). */
export type TraceSpec =
  | { readonly kind: 'mooncake'; readonly path: string; readonly options?: TraceLoadOptions }
  | { readonly kind: 'azure'; readonly path: string; readonly options?: TraceLoadOptions }
  | { readonly kind: 'length-csv'; readonly path: string; readonly options: LengthCsvOptions }
  | { readonly kind: 'workload'; readonly yaml: string };

/** Replay options that can cross a thread boundary (no callbacks or objects with methods). */
export type SweepReplayOptions = Omit<ReplayOptions, 'trace' | 'onProgress' | 'planner' | 'simRouter' | 'latency' | 'profile' | 'model' | 'gpu'> & {
  readonly latency?: 'auto' | 'blis' | 'roofline';
  readonly profile?: NonNullable<ReplayOptions['profile']>;
  readonly model?: NonNullable<ReplayOptions['model']>;
  readonly gpu?: NonNullable<ReplayOptions['gpu']>;
};

/** One job of a sweep. */
export interface SweepJob {
  /** Caller's label (e.g. `kvmgr-default@2x`). */
  readonly id: string;
  readonly trace: TraceSpec;
  readonly replay: SweepReplayOptions;
  /** Return per-request rows too (large). @default false */
  readonly includeRequests?: boolean;
  /** Return the per-instance time series too. @default false */
  readonly includeTimeseries?: boolean;
}

/** One job's result. */
export interface SweepResult {
  readonly id: string;
  readonly config: ReplayConfig;
  readonly summary: RunSummary;
  readonly violations: readonly string[];
  readonly events: number;
  readonly simulatedS: number;
  /** Wall time of the replay inside its worker, ms. */
  readonly wallMs: number;
  readonly requests?: readonly RequestRow[];
  readonly timeseries?: readonly InstanceSample[];
}

const traceCache = new Map<string, Trace>();

/** Loads a {@link TraceSpec} (cached per thread). */
export function loadTraceSpec(spec: TraceSpec): Trace {
  const key = JSON.stringify(spec);
  let t = traceCache.get(key);
  if (t === undefined) {
    switch (spec.kind) {
      case 'mooncake':
        t = loadMooncakeTrace(spec.path, spec.options);
        break;
      case 'azure':
        t = loadAzureTrace(spec.path, spec.options);
        break;
      case 'length-csv':
        t = loadLengthCsv(spec.path, spec.options);
        break;
      case 'workload':
        t = generateWorkload(spec.yaml);
        break;
    }
    traceCache.set(key, t);
  }
  return t;
}

/**
 * Runs one sweep job in the current thread (the function worker threads run).
 * @throws whatever {@link runReplay} or the trace loader throws.
 */
export function runSweepJob(job: SweepJob): SweepResult {
  const trace = loadTraceSpec(job.trace);
  const t0 = performance.now();
  const res = runReplay({ ...job.replay, trace });
  return {
    id: job.id,
    config: res.config,
    summary: res.summary,
    violations: res.violations,
    events: res.events,
    simulatedS: res.simulatedS,
    wallMs: performance.now() - t0,
    ...(job.includeRequests === true ? { requests: res.requests } : {}),
    ...(job.includeTimeseries === true ? { timeseries: res.timeseries } : {}),
  };
}

/** Options of {@link runSweep}. */
export interface SweepOptions {
  /** Worker threads. @default min(jobs, available parallelism) */
  readonly threads?: number;
  /** Called as each job finishes (in completion order). */
  readonly onResult?: (r: SweepResult, done: number, total: number) => void;
}

/**
 * Runs jobs in parallel worker threads (`piscina`); results come back in job order.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad thread count; a job's error rejects the
 *   promise (the other jobs are left to finish and the pool is closed).
 */
export async function runSweep(jobs: readonly SweepJob[], options: SweepOptions = {}): Promise<SweepResult[]> {
  const { availableParallelism } = await import('node:os');
  const threads = options.threads ?? Math.max(1, Math.min(jobs.length, availableParallelism()));
  if (!Number.isSafeInteger(threads) || threads < 1) throw invalidArgument('threads', threads, 'a positive integer');
  if (jobs.length === 0) return [];
  const filename = fileURLToPath(import.meta.url);
  // Running from TypeScript sources (tests, scripts): workers need the same loader.
  const execArgv = filename.endsWith('.ts') ? ['--conditions=@kvmgr/source', '--import', 'tsx'] : [];
  const pool = new Piscina<SweepJob, SweepResult>({ filename, name: 'runSweepJob', minThreads: threads, maxThreads: threads, execArgv });
  let done = 0;
  try {
    return await Promise.all(
      jobs.map((job) =>
        pool.run(job).then(
          (r) => {
            done++;
            options.onResult?.(r, done, jobs.length);
            return r;
          },
          (e: unknown) => {
            // name the job: a worker's error says nothing of which run it came from
            if (e instanceof Error) {
              const was = e.message;
              e.message = `sweep job ${job.id}: ${was}`;
              if (typeof e.stack === 'string') e.stack = e.stack.replace(was, e.message);
            }
            throw e;
          },
        ),
      ),
    );
  } finally {
    await pool.destroy();
  }
}
