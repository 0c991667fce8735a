/**
 * The high-level entry point the CLI calls: replay a trace on a simulated cluster with an engine
 * profile, and get a summary, per-request rows and per-instance time series.
 */
import { createKVCacheSpec, invalidArgument } from '@kvmgr/core';
import { createEvictionPolicy, createVictimSelector } from '@kvmgr/eviction';
import { createPredictor } from '@kvmgr/lifetime-predictor';
import { BlockPool } from '@kvmgr/kv-pool';
import { cpuKvBlocks, gpuKvBlocks } from './capacity.js';
import { type InstanceSample, type InstanceSetup, type SimProgress, type SimRouter, routerKeyRatio, simulateCluster } from './engine/cluster.js';
import type { KvBackend } from './engine/kv-backend.js';
import { simulateCoreCluster } from './engine/core-cluster.js';
import { KvManager } from './engine/kv-manager.js';
import { RadixKvManager } from './engine/radix-kv-manager.js';
import { TieredKvBackend } from './engine/tiered-backend.js';
import { createModelPredictor } from './engine/model-predictor.js';
import { createSimRouter } from './engine/routers.js';
import { type GpuSpec, getGpuSpec } from './latency/gpu-spec.js';
import { type ModelSpec, getModelSpec } from './latency/model-spec.js';
import type { RooflineCalibration } from './latency/roofline.js';
import { selectLatencyModel } from './latency/select.js';
import type { LatencyModel } from './latency/types.js';
import { type RequestRow, type RunSummary, type SloTargetsMs, buildRows, summarize } from './metrics/summary.js';
import { createPlanner } from './planner.js';
import { type EngineProfile, getEngineProfile } from './profiles.js';
import type { SimRequest, Trace } from './traces/types.js';
import type { InstanceRole, LifetimeFeatures } from '@kvmgr/core';
import type { StepPlanner } from './engine/sched-types.js';
import type { RequestState } from './engine/request-state.js';

/** Options of {@link runReplay}. */
export interface ReplayOptions {
  /** The trace (or its requests). */
  readonly trace: Trace | readonly SimRequest[];
  /** Model id or architecture. @default 'meta-llama/Llama-3.1-8B-Instruct' */
  readonly model?: string | ModelSpec;
  /** GPU name or spec. @default 'H100' */
  readonly gpu?: string | GpuSpec;
  /** Tensor-parallel size per instance. @default 1 */
  readonly tp?: number;
  /** Number of instances, or their roles (`['prefill', 'decode', 'decode']`). @default 4 */
  readonly instances?: number | readonly InstanceRole[];
  /** Profile name (`vllm-default`, `kvmgr-default`) or object. @default 'vllm-default' */
  readonly profile?: string | EngineProfile;
  /** Scheduler override: scheduler-IR preset or pipeline text. */
  readonly pipeline?: string;
  /** Router override: preset or weight string (`pa:3,qd:2,kv:2`). */
  readonly router?: string;
  /** Prefix-cache eviction override (`lru`, `arc`, `s3fifo`, `sieve`, `lfu`, `gdsf`). */
  readonly eviction?: string;
  /** Latency backend: `auto` (the candidate best validated for model/GPU/vLLM version, `latency/select.ts`), `blis`, `roofline`, or a model. @default 'auto' */
  readonly latency?: 'auto' | 'blis' | 'roofline' | LatencyModel;
  /** Roofline calibration overrides. */
  readonly roofline?: Partial<RooflineCalibration>;
  /** Arrival rate multiplier. @default 1 */
  readonly rateScale?: number;
  /** Default SLOs for requests without their own. @default { ttftMs: 2000, tpotMs: 100 } */
  readonly slo?: SloTargetsMs;
  /** Seed (router ties, synthetic parts). @default 0 */
  readonly seed?: number;
  /** GPU KV blocks per instance (overrides the memory-based size). */
  readonly gpuBlocks?: number;
  /** CPU-tier blocks per instance (overrides the profile's `cpuOffloadGiB`). */
  readonly cpuBlocks?: number;
  /** Time-series interval, ms. @default 1000 */
  readonly sampleIntervalMs?: number;
  /** Fixed latency of one host transfer batch, µs. @default 50 */
  readonly transferBaseUs?: number;
  /**
   * KV bookkeeping: `kvmgr` (block-hash cache on `BlockPool`, any eviction policy, own CPU tier)
   * or `tiered-pool` (`@kvmgr/kv-pool`'s `TieredPool`: LRU, watermark offload to CPU, queued
   * transfer links; requires eviction `lru`). @default 'kvmgr'
   */
  readonly kvBackend?: 'kvmgr' | 'tiered-pool';
  /**
   * Prefix index of the `kvmgr` backend (and of engine `core`'s `KvCacheManager`: `hash-map` =
   * its `block-hash` index): `hash-map` (vLLM-style block-hash map; per-block free
   * queue order) or `radix` (`@kvmgr/prefix-cache`'s `RadixPrefixCache`, `pageSize` 1 over the
   * engine-block keys: match / lock / insert / leaf-first `evict` in the order of the eviction
   * policy over radix nodes; keys must be < 2^32). Not available with `kvBackend: 'tiered-pool'`.
   * @default 'hash-map' (engine `core`: 'radix')
   */
  readonly prefixIndex?: 'hash-map' | 'radix';
  /** Progress callback. */
  readonly onProgress?: (p: SimProgress) => void;
  /** Custom planner (tests, experiments) used instead of the profile's scheduler. */
  readonly planner?: StepPlanner;
  /** Custom router used instead of the profile's. */
  readonly simRouter?: SimRouter;
  /**
   * Engine of each instance: `core` (`@kvmgr/engine`'s `EngineCore`, the core a live engine
   * server runs; the router's block index is fed by its KV events; a CPU tier is the
   * `KvCacheManager`'s, on kv-pool's `TieredPool`) or `legacy` (the simulator's own
   * `EngineInstance`, to be removed; `instance` is an older name of it). `core` does not take
   * `kvBackend` `tiered-pool` or a custom planner: asked for explicitly, such a run is refused; by
   * default it runs on `legacy` and `config.engineFallback` says why ({@link coreEngineGap}).
   * @default 'core'
   */
  readonly engine?: 'core' | 'legacy' | 'instance';
}

/** The resolved configuration of a run (for reports). */
export interface ReplayConfig {
  readonly profile: string;
  readonly model: string;
  readonly gpu: string;
  readonly tp: number;
  readonly instances: readonly InstanceRole[];
  readonly latency: string;
  readonly scheduler: string;
  readonly router: string;
  readonly eviction: string;
  readonly kvBackend: 'kvmgr' | 'tiered-pool';
  /** The engine that ran the instances. */
  readonly engine: 'core' | 'legacy';
  /** Why a run that did not ask for an engine ran on `legacy` (what the core does not take yet); absent otherwise. */
  readonly engineFallback?: string;
  /** Present only when `radix` was asked (so default results stay byte-identical). */
  readonly prefixIndex?: 'radix';
  readonly blockSize: number;
  readonly tokenBudget: number;
  readonly maxSeqs: number;
  readonly gpuBlocks: number;
  readonly cpuBlocks: number;
  readonly rateScale: number;
  readonly seed: number;
}

/** What {@link runReplay} returns. */
export interface ReplayResult {
  readonly config: ReplayConfig;
  readonly summary: RunSummary;
  readonly requests: readonly RequestRow[];
  readonly timeseries: readonly InstanceSample[];
  /** Conservation violations (empty on a healthy run). */
  readonly violations: readonly string[];
  /** Events processed. */
  readonly events: number;
  /** Simulated time, s. */
  readonly simulatedS: number;
}

/**
 * Picks the latency model by evidence (`latency/select.ts`): `auto` takes the candidate best
 * validated for this model, GPU and vLLM 0.15.1 (a roofline validated on the GPU class beats a
 * BLIS row fitted on an older vLLM), `blis` the newest row, `roofline` the roofline.
 * @throws KvmgrError `KVMGR_NOT_FOUND` for `blis` without a row.
 */
export function resolveLatencyModel(
  choice: 'auto' | 'blis' | 'roofline',
  model: ModelSpec,
  gpu: GpuSpec,
  tp: number,
  calibration?: Partial<RooflineCalibration>,
): LatencyModel {
  return selectLatencyModel(choice, model, gpu, tp, calibration === undefined ? {} : { calibration }).latency;
}

/** What a server knows about a request at arrival (never its real output length). */
export function lifetimeFeatures(req: SimRequest): LifetimeFeatures {
  return {
    promptTokens: req.promptTokens,
    maxTokens: req.maxTokens,
    arrivalMs: req.arrivalUs / 1000,
    ...(req.hashIds !== undefined && req.hashIds.length > 0 ? { prefixId: req.hashIds[0] as number } : {}),
    ...(req.tenant === undefined ? {} : { tenant: req.tenant }),
    ...(req.sessionId === undefined ? {} : { sessionId: req.sessionId }),
  };
}

/**
 * What of a replay the engine core does not take (so it runs on the `legacy` engine): `kvBackend`
 * `tiered-pool` or a custom planner (the scheduler is always a scheduler-IR pipeline).
 *
 * @param options - the replay's options (the trace is not read).
 * @returns one line naming the option and its value, or undefined when the core runs it.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown profile name.
 */
export function coreEngineGap(options: Omit<ReplayOptions, 'trace'>): string | undefined {
  // Resolved for its error: an unknown profile name is refused here as in runReplay.
  if (typeof options.profile !== 'object') getEngineProfile(options.profile ?? 'vllm-default');
  if ((options.kvBackend ?? 'kvmgr') !== 'kvmgr') return `kvBackend ${options.kvBackend} runs on engine 'legacy'`;
  if (options.planner !== undefined) return `planner ${options.planner.name} runs on engine 'legacy' (the core takes scheduler-IR pipelines only)`;
  return undefined;
}

/**
 * Replays a trace on a simulated cluster.
 *
 * @param options - see {@link ReplayOptions}.
 * @returns summary, per-request rows, time series, resolved config, conservation violations.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown profile/model/GPU/eviction policy,
 *   a bad rate scale or instance count, an unknown `prefixIndex` or `radix` with `tiered-pool`, a
 *   block key ≥ 2^32 with `radix`; `KVMGR_BAD_CONFIG` for a bad router string.
 */
export function runReplay(options: ReplayOptions): ReplayResult {
  const profile = typeof options.profile === 'object' ? options.profile : getEngineProfile(options.profile ?? 'vllm-default');
  const model = typeof options.model === 'object' ? options.model : getModelSpec(options.model ?? 'meta-llama/Llama-3.1-8B-Instruct');
  const gpu = typeof options.gpu === 'object' ? options.gpu : getGpuSpec(options.gpu ?? 'H100');
  const tp = options.tp ?? 1;
  const roles: InstanceRole[] =
    typeof options.instances === 'object' ? [...options.instances] : new Array<InstanceRole>(options.instances ?? 4).fill('both');
  if (roles.length === 0 || !Number.isSafeInteger(roles.length)) throw invalidArgument('instances', options.instances, 'a positive integer or a non-empty list of roles');
  const rateScale = options.rateScale ?? 1;
  if (!(rateScale > 0) || !Number.isFinite(rateScale)) throw invalidArgument('rateScale', rateScale, 'a finite number > 0');
  const seed = options.seed ?? 0;
  const slo = options.slo ?? { ttftMs: 2000, tpotMs: 100 };
  const bs = profile.blockSize;
  const latency =
    typeof options.latency === 'object' ? options.latency : resolveLatencyModel(options.latency ?? 'auto', model, gpu, tp, options.roofline);
  const gpuBlocks = options.gpuBlocks ?? gpuKvBlocks(model, gpu, tp, bs, profile.gpuMemoryUtilization);
  const cpuBlocks = options.cpuBlocks ?? (profile.cpuOffloadGiB > 0 ? cpuKvBlocks(model, tp, bs, profile.cpuOffloadGiB) : 0);
  const eviction = options.eviction ?? profile.cacheEviction;
  const backend = options.kvBackend ?? 'kvmgr';
  if (backend !== 'kvmgr' && backend !== 'tiered-pool') throw invalidArgument('kvBackend', backend, "'kvmgr' or 'tiered-pool'");
  if (backend === 'tiered-pool' && eviction !== 'lru') {
    throw invalidArgument('eviction', eviction, "'lru' with kvBackend 'tiered-pool' (its GPU free queue is LRU)");
  }
  const asked = options.engine;
  if (asked !== undefined && asked !== 'core' && asked !== 'legacy' && asked !== 'instance') throw invalidArgument('engine', asked, "'core' or 'legacy'");
  const engineFallback = asked === undefined ? coreEngineGap(options) : undefined;
  const engine = asked === 'legacy' || asked === 'instance' || engineFallback !== undefined ? 'instance' : 'core';
  // The core's block-hash index re-walks a request's whole prefix on every insert (quadratic in
  // long prompts); its radix cache continues from the matched node: the core defaults to radix.
  const prefixIndex = options.prefixIndex ?? (engine === 'core' ? 'radix' : 'hash-map');
  if (prefixIndex !== 'hash-map' && prefixIndex !== 'radix') throw invalidArgument('prefixIndex', prefixIndex, "'hash-map' or 'radix'");
  if (prefixIndex === 'radix' && backend !== 'kvmgr') throw invalidArgument('prefixIndex', prefixIndex, "'hash-map' with kvBackend 'tiered-pool'");
  const schedulerSpec = options.pipeline ?? profile.scheduler;
  const routerSpec = options.router ?? profile.router;
  const spec = createKVCacheSpec({
    blockSize: bs,
    numLayers: model.numLayers,
    numKvHeads: Math.max(1, Math.ceil(model.numKvHeads / tp)),
    headDim: model.headDim,
    dtype: 'bf16',
  });
  // One output-length predictor per run, learning online from finished requests.
  const predictor = createPredictor(profile.lifetimePredictor);
  const ids = roles.map((r, i) => `${r === 'both' ? 'inst' : r}-${i}`);
  const pd = roles.some((r) => r === 'prefill');
  const setups: InstanceSetup[] = roles.map((role, i) => {
    const kv: KvBackend =
      backend === 'tiered-pool'
        ? new TieredKvBackend({ spec, gpuBlocks, cpuBlocks, hostBytesPerSec: gpu.pcieBytesPerSec, transferBaseUs: options.transferBaseUs ?? 50 })
        : new (prefixIndex === 'radix' ? RadixKvManager : KvManager)({
            pool: new BlockPool({ spec, numBlocks: gpuBlocks }),
            policy: createEvictionPolicy(eviction, { capacity: gpuBlocks, initialCapacity: Math.min(gpuBlocks, 1 << 16) }),
            blockSize: bs,
            cpuBlocks,
            hostBytesPerSec: gpu.pcieBytesPerSec,
            transferBaseUs: options.transferBaseUs ?? 50,
          });
    const planner =
      options.planner ??
      createPlanner(schedulerSpec, {
        predictor,
        victimSelector: createVictimSelector(profile.victimSelector),
      });
    return {
      id: ids[i] as string,
      role,
      kv,
      latency,
      planner,
      limits: { tokenBudget: profile.tokenBudget, maxSeqs: profile.maxSeqs },
      bytesPerBlock: spec.bytesPerBlock,
    };
  });
  const requests = Array.isArray(options.trace) ? (options.trace as readonly SimRequest[]) : (options.trace as Trace).requests;
  const router =
    options.simRouter ??
    createSimRouter(routerSpec, { instanceIds: ids, blockSize: bs * routerKeyRatio(requests, bs), seed, pd, predictor: createModelPredictor(latency, profile.tokenBudget) });
  if (engine === 'core') {
    if (backend !== 'kvmgr') throw invalidArgument('kvBackend', backend, "'kvmgr' with engine 'core'");
    if (options.planner !== undefined) throw invalidArgument('pipeline', options.planner.name, "a scheduler-IR pipeline with engine 'core'");
  }
  const common = {
    requests,
    router,
    rateScale,
    defaultSlo: slo,
    sampleIntervalUs: (options.sampleIntervalMs ?? 1000) * 1000,
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    onFinished(r: RequestState) {
      if (!r.embed) predictor.observe(lifetimeFeatures(r.req), r.outputTokens);
    },
  };
  const res =
    engine === 'core'
      ? simulateCoreCluster({
          ...common,
          instances: roles.map((role, i) => ({
            id: ids[i] as string,
            role,
            bytesPerBlock: spec.bytesPerBlock,
            gpuBlocks,
            blockSize: bs,
            eviction,
            prefixCache: prefixIndex === 'radix' ? ('radix' as const) : ('block-hash' as const),
            scheduler: schedulerSpec,
            victimSelector: profile.victimSelector,
            predictor,
            latency,
            tokenBudget: profile.tokenBudget,
            maxSeqs: profile.maxSeqs,
            ...(cpuBlocks > 0
              ? {
                  spec,
                  // the router reads GPU events only (as with the instance engine): no CPU events built
                  cpuTier: { capacityBlocks: cpuBlocks, bandwidthBytesPerSec: gpu.pcieBytesPerSec, baseLatencyUs: options.transferBaseUs ?? 50, events: false },
                }
              : {}),
          })),
        })
      : simulateCluster({ ...common, instances: setups });
  const rows = buildRows(res, slo, latency.outputTokenUs, latency.deliveryLagSteps ?? 0);
  const summary = summarize(res, rows, slo);
  return {
    config: {
      profile: profile.name,
      model: model.name,
      gpu: gpu.name,
      tp,
      instances: roles,
      latency: latency.name,
      scheduler: setups[0]?.planner.name ?? schedulerSpec,
      router: router.name,
      eviction,
      kvBackend: backend,
      engine: engine === 'core' ? 'core' : 'legacy',
      ...(engineFallback === undefined ? {} : { engineFallback }),
      ...(prefixIndex === 'radix' ? { prefixIndex } : {}),
      blockSize: bs,
      tokenBudget: profile.tokenBudget,
      maxSeqs: profile.maxSeqs,
      gpuBlocks,
      cpuBlocks,
      rateScale,
      seed,
    },
    summary,
    requests: rows,
    timeseries: res.samples,
    violations: res.violations,
    events: res.events,
    simulatedS: res.endUs / 1e6,
  };
}
