/**
 * The experiment file of `kvmgr experiment run` (YAML, snake_case keys): workloads × cluster
 * setups × configurations, run over seeds in the simulator, with the metrics to report, the
 * hypotheses to judge (a paired comparison of two cells over seeds) and the targets to check
 * (a cell's metric against a bound). Validated with zod; then every name a run would resolve
 * (profile, router weights, scheduler pipeline, eviction policy, workload file, trace) is resolved
 * once, so a bad file fails before any run starts, with one line naming the key.
 *
 * @example
 * ```yaml
 * name: demo
 * seeds: 2
 * workloads: [{ name: chat, workload: { duration_s: 60, arrival: { rate: 2 } } }]
 * setups: [{ name: small, instances: 2, gpu_blocks: 2000 }]
 * configurations: [{ name: rr, router: round-robin }, { name: pa, router: 'pa:3,qd:2,kv:2' }]
 * hypotheses:
 *   - { id: H1, statement: prefix affinity raises the hit rate, metric: hit_rate, expect: higher,
 *       treatment: { configuration: pa }, baseline: { configuration: rr } }
 * ```
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KvmgrError, parseConfigText } from '@kvmgr/core';
import { EVICTION_POLICY_NAMES } from '@kvmgr/eviction';
import { createRouter } from '@kvmgr/router';
import { PassManager, createDefaultRegistry } from '@kvmgr/scheduler-ir';
import { GPU_SPECS, type QuotaSplitOptions, getEngineProfile, gpuKey, parseWorkload } from '@kvmgr/sim';
import { z } from 'zod';

/** Metrics of a run summary, by the name an experiment file uses. Units in the name. */
export const RUN_METRICS = [
  'goodput_rps',
  'slo_attainment',
  'throughput_rps',
  'output_tok_per_s',
  'ttft_p50_ms',
  'ttft_p99_ms',
  'tpot_p50_ms',
  'tpot_p99_ms',
  'e2e_p99_ms',
  'hit_rate',
  'preemptions',
  'rejected',
  'evicted_blocks',
  'offloaded_blocks',
  'reloaded_blocks',
  'migration_failure_rate',
  'migrated_blocks',
  'kv_utilization',
  'jain_index',
  'throughput_cv',
  'kv_prediction_mape',
  'kv_underprediction_rate',
  'quota_shifts',
  'quota_shifted_blocks',
  'embedding_quota_peak',
  'quota_overcommitted',
] as const;

/** Metrics that can be split by SLO class with `@class` (e.g. `ttft_p99_ms@critical`). */
export const CLASS_METRICS = ['ttft_p50_ms', 'ttft_p99_ms', 'tpot_p99_ms', 'slo_attainment', 'goodput_rps'] as const;
const SLO_CLASSES = ['critical', 'standard', 'batch', 'background'] as const;

/** The metrics reported when a file names none. */
export const DEFAULT_METRICS: readonly string[] = ['goodput_rps', 'slo_attainment', 'ttft_p99_ms', 'tpot_p99_ms', 'hit_rate', 'preemptions'];

/** Checks a metric name: a run metric, or a class metric with `@class`. */
export function isMetricName(name: string): boolean {
  const [base, cls, extra] = name.split('@');
  if (extra !== undefined) return false;
  if (cls === undefined) return (RUN_METRICS as readonly string[]).includes(base as string);
  return (CLASS_METRICS as readonly string[]).includes(base as string) && (SLO_CLASSES as readonly string[]).includes(cls);
}

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a name of letters, digits, ".", "_" or "-"');

const workloadEntry = z
  .object({
    name,
    /** An inline workload (the `@kvmgr/sim` workload schema). */
    workload: z.record(z.string(), z.unknown()).optional(),
    /** A workload YAML file, relative to the experiment file. */
    file: z.string().min(1).optional(),
    /** A trace file, relative to the experiment file. */
    trace: z.object({ kind: z.enum(['mooncake', 'azure']), path: z.string().min(1), limit: z.number().int().positive().optional() }).strict().optional(),
    /** Arrival-rate multiplier. @default 1 */
    rate_scale: z.number().positive().default(1),
    /** A rate sweep instead: the workload runs once per multiplier, as `name@rate` (e.g. `chat@2`), and the results give each configuration's goodput knee. */
    rate_scales: z.array(z.number().positive()).min(2).max(32).optional(),
  })
  .strict();

const role = z.enum(['both', 'prefill', 'decode']);
const gpuName = z.string().refine((g) => gpuKey(g) !== undefined, { message: `a GPU name: one of ${Object.keys(GPU_SPECS).join(', ')}` });

const setupEntry = z
  .object({
    name,
    /**
     * Instances, or their roles, or `{ role, gpu }` per instance (a heterogeneous cluster, e.g.
     * `[{ role: prefill, gpu: H100 }, { role: decode, gpu: A100 }]`). @default 4
     */
    instances: z
      .union([z.number().int().positive().max(256), z.array(z.union([role, z.object({ role, gpu: gpuName.optional() }).strict()])).min(1).max(256)])
      .default(4),
    /**
     * P/D pairing: `router` (the router's P/D decider picks the decode instance) or `capability`
     * (re-picked from each instance's `CapabilityDescriptor` and latency model). @default router
     */
    pairing: z.enum(['router', 'capability']).optional(),
    /** Hot-spot prefetch of queued requests' CPU-tier prefixes (needs `cpu_blocks`). @default false */
    prefetch: z.boolean().optional(),
    /** GPU KV blocks per instance (default: from GPU memory). */
    gpu_blocks: z.number().int().positive().optional(),
    /** CPU-tier blocks per instance: evicted blocks are offloaded there and reloaded on a hit. @default the profile's */
    cpu_blocks: z.number().int().nonnegative().optional(),
    model: z.string().min(1).optional(),
    gpu: gpuName.optional(),
    tp: z.number().int().positive().optional(),
  })
  .strict();

/**
 * The LLM / embedding quota split of a configuration (`@kvmgr/sim`'s `QuotaSplitOptions`, snake
 * case); `quota: {}` turns it on with the defaults.
 */
const quotaEntry = z
  .object({
    /** Simulated time between rebalancing rounds, ms. @default 500 */
    interval_ms: z.number().positive().optional(),
    /** Blocks always kept for LLM requests, fraction of the GPU blocks. @default 0.25 */
    llm_min_fraction: z.number().min(0).max(1).optional(),
    /** Blocks always kept for embedding requests, fraction of the GPU blocks. @default 0.05 */
    embedding_min_fraction: z.number().min(0).max(1).optional(),
    /** Most a quota moves per round, fraction of the GPU blocks (in (0, 1]). @default 0.1 */
    max_step_fraction: z.number().gt(0).max(1).optional(),
    /** LLM share weight of unclaimed blocks against the embedding's 1. @default 9 */
    llm_weight: z.number().positive().max(1e6).optional(),
  })
  .strict()
  .refine((q) => (q.llm_min_fraction ?? 0.25) + (q.embedding_min_fraction ?? 0.05) <= 1, {
    message: 'llm_min_fraction + embedding_min_fraction must be at most 1',
    path: ['llm_min_fraction'],
  });

/** A configuration's quota entry as the simulator takes it. */
export function quotaOptions(q: z.infer<typeof quotaEntry>): QuotaSplitOptions {
  return {
    ...(q.interval_ms === undefined ? {} : { intervalMs: q.interval_ms }),
    ...(q.llm_min_fraction === undefined ? {} : { llmMinFraction: q.llm_min_fraction }),
    ...(q.embedding_min_fraction === undefined ? {} : { embeddingMinFraction: q.embedding_min_fraction }),
    ...(q.max_step_fraction === undefined ? {} : { maxStepFraction: q.max_step_fraction }),
    ...(q.llm_weight === undefined ? {} : { llmWeight: q.llm_weight }),
  };
}

const configurationEntry = z
  .object({
    name,
    /** Base engine profile. @default vllm-default */
    profile: z.string().min(1).default('vllm-default'),
    /** Router preset or weights (`pa:3,qd:2,kv:2`). @default the profile's */
    router: z.string().min(1).optional(),
    /** Scheduler-IR preset or pipeline text. @default the profile's */
    pipeline: z.string().min(1).optional(),
    /** Prefix-cache eviction policy. @default the profile's */
    eviction: z.string().min(1).optional(),
    /** GPU KV blocks per instance for this configuration only, over the setup's (e.g. a ceiling with an unlimited cache). */
    gpu_blocks: z.number().int().positive().optional(),
    /**
     * Kept so older experiment files stay valid: both values run the simulator's engine core,
     * whose CPU tier (a setup's `cpu_blocks`) is `@kvmgr/kv-pool`'s `TieredPool`; `tiered-pool`
     * cells run, and are cached, as the same cell without it. @default kvmgr
     */
    kv_backend: z.enum(['kvmgr', 'tiered-pool']).optional(),
    /** Split each instance's GPU blocks between LLM and embedding requests with kv-pool's quota allocator. @default off */
    quota: quotaEntry.optional(),
  })
  .strict();

const cellRef = z
  .object({
    configuration: name,
    /** One setup or several (pairs are formed per seed and setup). @default every setup */
    setup: z.union([name, z.array(name).min(1)]).optional(),
    /** @default the only workload (required when there are several) */
    workload: name.optional(),
  })
  .strict();

const hypothesisEntry = z
  .object({
    id: name,
    statement: z.string().min(1),
    metric: z.string().refine(isMetricName, 'a metric name (see kvmgr experiment run --help)'),
    /** Which direction supports the statement. */
    expect: z.enum(['higher', 'lower']),
    treatment: cellRef,
    baseline: cellRef,
  })
  .strict();

const targetEntry = z
  .object({
    id: name,
    statement: z.string().min(1),
    metric: z.string().refine(isMetricName, 'a metric name (see kvmgr experiment run --help)'),
    cell: cellRef,
    /** Met when the mean over seeds is `<=` / `>=` the value. */
    op: z.enum(['<=', '>=']),
    value: z.number(),
  })
  .strict();

/** The experiment file schema. */
export const ExperimentSchema = z
  .object({
    name,
    title: z.string().min(1).optional(),
    description: z.string().optional(),
    /** Seeds run per cell: 0 … seeds−1. @default 3 */
    seeds: z.number().int().positive().max(100).default(3),
    /** @default meta-llama/Llama-3.1-8B-Instruct */
    model: z.string().min(1).default('meta-llama/Llama-3.1-8B-Instruct'),
    /** @default H100 */
    gpu: gpuName.default('H100'),
    /** SLOs of requests without their own. @default { ttft_ms: 2000, tpot_ms: 100 } */
    slo: z.object({ ttft_ms: z.number().positive(), tpot_ms: z.number().positive() }).strict().default({ ttft_ms: 2000, tpot_ms: 100 }),
    metrics: z.array(z.string().refine(isMetricName, 'a metric name (see kvmgr experiment run --help)')).min(1).optional(),
    workloads: z.array(workloadEntry).min(1),
    setups: z.array(setupEntry).min(1),
    configurations: z.array(configurationEntry).min(1),
    hypotheses: z.array(hypothesisEntry).default([]),
    targets: z.array(targetEntry).default([]),
    /** Goodput knees of rate-swept workloads: the highest rate whose SLO attainment (mean over seeds) is ≥ `target`. */
    knee: z
      .object({
        target: z.number().gt(0).max(1).default(0.9),
        /** Configuration the knees and peak goodputs are divided by. */
        baseline: name.optional(),
        /** Configuration that bounds the others (e.g. an unlimited cache): each knee and peak as a share of its. */
        ceiling: name.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** A rate-swept workload: its base name and its expanded `name@rate` entries, in rate order. */
export interface RateSweep {
  readonly base: string;
  readonly rates: readonly number[];
  readonly names: readonly string[];
}

/** A validated experiment (paths resolved against the file's folder). */
export type Experiment = z.infer<typeof ExperimentSchema> & {
  readonly metrics: readonly string[];
  readonly baseDir: string;
  readonly file: string;
  /** Workloads with `rate_scales`, expanded into `workloads` as `name@rate`. */
  readonly sweeps: readonly RateSweep[];
};
export type WorkloadEntry = z.infer<typeof workloadEntry>;
export type SetupEntry = z.infer<typeof setupEntry>;
export type ConfigurationEntry = z.infer<typeof configurationEntry>;
export type CellRef = z.infer<typeof cellRef>;
export type Hypothesis = z.infer<typeof hypothesisEntry>;
export type Target = z.infer<typeof targetEntry>;

function bad(file: string, key: string, message: string, cause?: unknown): KvmgrError {
  return new KvmgrError('KVMGR_BAD_CONFIG', `${file}: ${key}: ${message}`, { details: { key }, ...(cause === undefined ? {} : { cause }) });
}

function check(file: string, key: string, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    throw bad(file, key, (e as Error).message.split('\n')[0] as string, e);
  }
}

function unique(file: string, key: string, items: readonly { name?: string; id?: string }[]): void {
  const seen = new Set<string>();
  for (const [i, it] of items.entries()) {
    const n = (it.name ?? it.id) as string;
    if (seen.has(n)) throw bad(file, `${key}.${i}`, `duplicate name ${JSON.stringify(n)}`);
    seen.add(n);
  }
}

/**
 * Parses and validates an experiment file's text, resolving every name a run needs.
 *
 * @param text - YAML.
 * @param file - the file's path (messages; relative paths inside resolve against its folder).
 * @throws KvmgrError `KVMGR_BAD_CONFIG` with `file: key: problem` (unknown scorer, negative
 *   blocks, a workload file that does not exist, a hypothesis naming an unknown cell, …).
 */
export function parseExperiment(text: string, file: string): Experiment {
  const spec = parseConfigText(text, ExperimentSchema, file);
  const baseDir = dirname(resolve(file));
  unique(file, 'workloads', spec.workloads);
  // Rate sweeps: one workload entry per rate, named name@rate.
  const sweeps: RateSweep[] = [];
  const workloads: WorkloadEntry[] = [];
  for (const w of spec.workloads) {
    if (w.rate_scales === undefined) {
      workloads.push(w);
      continue;
    }
    const rates = [...new Set(w.rate_scales)].sort((a, b) => a - b);
    const names = rates.map((r) => `${w.name}@${r}`);
    sweeps.push({ base: w.name, rates, names });
    for (const [i, r] of rates.entries()) workloads.push({ ...w, name: names[i] as string, rate_scale: r, rate_scales: undefined });
  }
  const x = { ...spec, workloads };
  if (x.knee !== undefined && sweeps.length === 0) throw bad(file, 'knee', 'needs a workload with rate_scales');
  for (const k of ['baseline', 'ceiling'] as const) {
    const n = x.knee?.[k];
    if (n !== undefined && !x.configurations.some((c) => c.name === n)) throw bad(file, `knee.${k}`, `no configuration named ${JSON.stringify(n)}`);
  }
  unique(file, 'setups', x.setups);
  for (const [i, s] of x.setups.entries()) {
    if (s.prefetch === true && !(s.cpu_blocks !== undefined && s.cpu_blocks > 0)) throw bad(file, `setups.${i}.prefetch`, 'needs cpu_blocks > 0 (prefetch reloads from the CPU tier)');
  }
  unique(file, 'configurations', x.configurations);
  unique(file, 'hypotheses', x.hypotheses);
  unique(file, 'targets', x.targets);

  for (const [i, w] of spec.workloads.entries()) {
    const key = `workloads.${i}`;
    const given = [w.workload, w.file, w.trace].filter((v) => v !== undefined).length;
    if (given !== 1) throw bad(file, key, 'give exactly one of workload (inline), file or trace');
    if (w.workload !== undefined) check(file, `${key}.workload`, () => parseWorkload(w.workload, w.name));
    if (w.file !== undefined) {
      const p = resolve(baseDir, w.file);
      if (!existsSync(p)) throw bad(file, `${key}.file`, `no such file ${JSON.stringify(w.file)} (relative to the experiment file)`);
      check(file, `${key}.file`, () => parseWorkload(readFileSync(p, 'utf8'), w.file));
    }
    if (w.trace !== undefined && !existsSync(resolve(baseDir, w.trace.path))) {
      throw bad(file, `${key}.trace.path`, `no such file ${JSON.stringify(w.trace.path)} (relative to the experiment file)`);
    }
  }
  const registry = createDefaultRegistry();
  for (const [i, c] of x.configurations.entries()) {
    const key = `configurations.${i}`;
    let profile: ReturnType<typeof getEngineProfile> | undefined;
    check(file, `${key}.profile`, () => {
      profile = getEngineProfile(c.profile);
    });
    const p = profile as ReturnType<typeof getEngineProfile>;
    check(file, c.router === undefined ? `${key}.profile (its router)` : `${key}.router`, () => createRouter(c.router ?? p.router));
    check(file, c.pipeline === undefined ? `${key}.profile (its pipeline)` : `${key}.pipeline`, () => new PassManager({ pipeline: c.pipeline ?? p.scheduler, registry, requirePlan: true }));
    if (c.eviction !== undefined && !(EVICTION_POLICY_NAMES as readonly string[]).includes(c.eviction)) {
      throw bad(file, `${key}.eviction`, `unknown eviction policy ${JSON.stringify(c.eviction)}; expected one of ${EVICTION_POLICY_NAMES.join(', ')}`);
    }
  }
  const names = {
    workload: new Set(x.workloads.map((w) => w.name)),
    setup: new Set(x.setups.map((s) => s.name)),
    configuration: new Set(x.configurations.map((c) => c.name)),
  };
  const checkRef = (key: string, ref: CellRef): void => {
    if (!names.configuration.has(ref.configuration)) throw bad(file, `${key}.configuration`, `no configuration named ${JSON.stringify(ref.configuration)}`);
    for (const s of ref.setup === undefined ? [] : Array.isArray(ref.setup) ? ref.setup : [ref.setup]) {
      if (!names.setup.has(s)) throw bad(file, `${key}.setup`, `no setup named ${JSON.stringify(s)}`);
    }
    if (ref.workload === undefined && x.workloads.length > 1) throw bad(file, `${key}.workload`, 'required: the experiment has several workloads');
    if (ref.workload !== undefined && !names.workload.has(ref.workload)) throw bad(file, `${key}.workload`, `no workload named ${JSON.stringify(ref.workload)}`);
  };
  for (const [i, h] of x.hypotheses.entries()) {
    checkRef(`hypotheses.${i}.treatment`, h.treatment);
    checkRef(`hypotheses.${i}.baseline`, h.baseline);
  }
  for (const [i, t] of x.targets.entries()) checkRef(`targets.${i}.cell`, t.cell);
  const kneeMetrics = sweeps.length > 0 ? ['goodput_rps', 'slo_attainment'] : [];
  const metrics = [...new Set([...(x.metrics ?? DEFAULT_METRICS), ...kneeMetrics, ...x.hypotheses.map((h) => h.metric), ...x.targets.map((t) => t.metric)])];
  return { ...x, metrics, baseDir, file, sweeps };
}

/**
 * Reads and validates an experiment file.
 * @throws KvmgrError `KVMGR_NOT_FOUND` when it cannot be read; see {@link parseExperiment}.
 */
export function loadExperiment(path: string): Experiment {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KvmgrError('KVMGR_NOT_FOUND', `${path}: cannot read the experiment file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  return parseExperiment(text, path);
}
