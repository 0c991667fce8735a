/**
 * The high-level entry point the CLI calls: replay a trace on a simulated cluster with an engine
 * profile, and get a summary, per-request rows and per-instance time series.
 */
import { type CapabilityDescriptor, createKVCacheSpec, invalidArgument, validateCapability } from '@kvmgr/core';
import { createPredictor } from '@kvmgr/lifetime-predictor';
import { cpuKvBlocks, gpuKvBlocks } from './capacity.js';
import type { InstanceSample, SimProgress, SimRouter } from './engine/cluster-types.js';
import { simulateCoreCluster } from './engine/core-cluster.js';
import { createModelPredictor } from './engine/model-predictor.js';
import { routerKeyRatio } from './engine/request-order.js';
import { createSimRouter } from './engine/routers.js';
import { GPU_SPECS, type GpuSpec, getGpuSpec } from './latency/gpu-spec.js';
import { type ModelSpec, getModelSpec } from './latency/model-spec.js';
import type { RooflineCalibration } from './latency/roofline.js';
import { selectLatencyModel } from './latency/select.js';
import type { LatencyModel } from './latency/types.js';
import { type RequestRow, type RunSummary, type SloTargetsMs, buildRows, summarize } from './metrics/summary.js';
import { createPlanner } from './planner.js';
import { type EngineProfile, getEngineProfile } from './profiles.js';
import type { SimRequest, Trace } from './traces/types.js';
import type { InstanceRole, LifetimeFeatures } from '@kvmgr/core';
import type { RequestState } from './engine/request-state.js';
import { type QuotaSample, type QuotaSplitOptions, resolveQuotaSplit } from './engine/quota-split.js';

/** One instance of a heterogeneous cluster ({@link ReplayOptions.instances}). */
export interface ReplayInstanceSpec {
  readonly role: InstanceRole;
  /** GPU name (`getGpuSpec`): its latency model, KV blocks and links. @default the run's `gpu` */
  readonly gpu?: string;
}

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
  /**
   * Number of instances, or their roles (`['prefill', 'decode', 'decode']`), or per-instance
   * specs with a GPU each (`[{ role: 'prefill', gpu: 'H100' }, { role: 'decode', gpu: 'A100' }]`:
   * a heterogeneous cluster; each instance gets its GPU's latency model, KV blocks and links).
   * @default 4
   */
  readonly instances?: number | readonly (InstanceRole | ReplayInstanceSpec)[];
  /**
   * Decode instance of a disaggregated request: `router` (the router's P/D decider) or
   * `capability` (capability-aware pairing from each instance's `CapabilityDescriptor`, see
   * `capability-pairing.ts`). @default 'router'
   */
  readonly pdPairing?: 'router' | 'capability';
  /** Hot-spot prefetch of queued requests' CPU-tier prefixes (needs a CPU tier). @default false */
  readonly prefetch?: boolean;
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
   * KV bookkeeping, kept so older configs stay valid: both values run `@kvmgr/engine`'s
   * `KvCacheManager`, whose CPU tier (when `cpuBlocks` > 0) is `@kvmgr/kv-pool`'s `TieredPool`;
   * `tiered-pool` is reported in `config.kvBackend` and changes nothing else. @default 'kvmgr'
   */
  readonly kvBackend?: 'kvmgr' | 'tiered-pool';
  /**
   * Prefix index of the `KvCacheManager` (`hash-map` = its `block-hash` index): `hash-map`
   * (vLLM-style block-hash map; per-block free queue order) or `radix` (`@kvmgr/prefix-cache`'s
   * `RadixPrefixCache` over the engine-block keys: match / lock / insert / leaf-first `evict` in
   * the order of the eviction policy over radix nodes). @default 'radix'
   */
  readonly prefixIndex?: 'hash-map' | 'radix';
  /** Progress callback. */
  readonly onProgress?: (p: SimProgress) => void;
  /** Custom router used instead of the profile's. */
  readonly simRouter?: SimRouter;
  /**
   * Engine of each instance; only `core` (`@kvmgr/engine`'s `EngineCore`, the core a live engine
   * server runs; the router's block index is fed by its KV events; a CPU tier is the
   * `KvCacheManager`'s, on kv-pool's `TieredPool`). The simulator's own `legacy` engine was
   * removed: any other value throws `KVMGR_INVALID_ARGUMENT`. @default 'core'
   */
  readonly engine?: 'core';
  /**
   * Split each instance's GPU KV blocks between LLM and embedding requests with `@kvmgr/kv-pool`'s
   * `QuotaAllocator`, rebalanced every `intervalMs` from what each kind holds and waits for
   * (see `QuotaSplitOptions`); the summary's `quota` and the result's `quotaTimeline` report it.
   * @default none (LLM and embedding requests share one pool)
   */
  readonly quota?: QuotaSplitOptions;
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
  /** The engine that ran the instances (always `core`; kept for reports that compare runs). */
  readonly engine: 'core';
  /** Present only when `radix` was asked (so default results stay byte-identical). */
  readonly prefixIndex?: 'radix';
  readonly blockSize: number;
  readonly tokenBudget: number;
  readonly maxSeqs: number;
  readonly gpuBlocks: number;
  readonly cpuBlocks: number;
  /** Per-instance GPU names and KV blocks; present only for a heterogeneous cluster. */
  readonly gpus?: readonly string[];
  readonly gpuBlocksPerInstance?: readonly number[];
  /** Present only when `capability` pairing was asked. */
  readonly pdPairing?: 'capability';
  /** Present only when prefetch was asked. */
  readonly prefetch?: true;
  readonly rateScale: number;
  readonly seed: number;
  /** The quota split's resolved options; present only with one (so default results stay byte-identical). */
  readonly quota?: Required<QuotaSplitOptions>;
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
  /** Every instance's LLM / embedding quotas after every rebalancing round; present only with `quota`. */
  readonly quotaTimeline?: readonly QuotaSample[];
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
 * Replays a trace on a simulated cluster.
 *
 * @param options - see {@link ReplayOptions}.
 * @returns summary, per-request rows, time series, resolved config, conservation violations.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown profile/model/GPU/eviction policy,
 *   a bad rate scale or instance count, an unknown `kvBackend` or `prefixIndex`, an `engine`
 *   other than `core`, bad `quota` options (naming the option, e.g. `quota.intervalMs`);
 *   `KVMGR_BAD_CONFIG` for a bad router string.
 */
export function runReplay(options: ReplayOptions): ReplayResult {
  const profile = typeof options.profile === 'object' ? options.profile : getEngineProfile(options.profile ?? 'vllm-default');
  const model = typeof options.model === 'object' ? options.model : getModelSpec(options.model ?? 'meta-llama/Llama-3.1-8B-Instruct');
  const gpu = typeof options.gpu === 'object' ? options.gpu : getGpuSpec(options.gpu ?? 'H100');
  const tp = options.tp ?? 1;
  const specs: ReplayInstanceSpec[] =
    typeof options.instances === 'object'
      ? options.instances.map((x) => (typeof x === 'object' && x !== null ? x : { role: x }))
      : new Array<ReplayInstanceSpec>(options.instances ?? 4).fill({ role: 'both' });
  const roles: InstanceRole[] = specs.map((x) => x.role);
  if (roles.length === 0 || !Number.isSafeInteger(roles.length)) throw invalidArgument('instances', options.instances, 'a positive integer or a non-empty list of roles');
  const pdPairing = options.pdPairing ?? 'router';
  if (pdPairing !== 'router' && pdPairing !== 'capability') throw invalidArgument('pdPairing', pdPairing, "'router' or 'capability'");
  const prefetch = options.prefetch ?? false;
  if (typeof prefetch !== 'boolean') throw invalidArgument('prefetch', prefetch, 'a boolean');
  const rateScale = options.rateScale ?? 1;
  if (!(rateScale > 0) || !Number.isFinite(rateScale)) throw invalidArgument('rateScale', rateScale, 'a finite number > 0');
  const seed = options.seed ?? 0;
  const slo = options.slo ?? { ttftMs: 2000, tpotMs: 100 };
  const bs = profile.blockSize;
  const latency =
    typeof options.latency === 'object' ? options.latency : resolveLatencyModel(options.latency ?? 'auto', model, gpu, tp, options.roofline);
  const gpuBlocks = options.gpuBlocks ?? gpuKvBlocks(model, gpu, tp, bs, profile.gpuMemoryUtilization);
  // Heterogeneous clusters: each instance's GPU gives its latency model, KV blocks and links.
  const gpus = specs.map((x, i) => (x.gpu === undefined ? gpu : getGpuSpecAt(x.gpu, i)));
  const hetero = gpus.some((g) => g.name !== gpu.name);
  const latencyByGpu = new Map<string, LatencyModel>([[gpu.name, latency]]);
  const latencyOf = (g: GpuSpec): LatencyModel => {
    let l = latencyByGpu.get(g.name);
    if (l === undefined) {
      l = typeof options.latency === 'object' ? options.latency : resolveLatencyModel(options.latency ?? 'auto', model, g, tp, options.roofline);
      latencyByGpu.set(g.name, l);
    }
    return l;
  };
  const blocksOf = (g: GpuSpec): number => (g === gpu ? gpuBlocks : (options.gpuBlocks ?? gpuKvBlocks(model, g, tp, bs, profile.gpuMemoryUtilization)));
  const cpuBlocks = options.cpuBlocks ?? (profile.cpuOffloadGiB > 0 ? cpuKvBlocks(model, tp, bs, profile.cpuOffloadGiB) : 0);
  const eviction = options.eviction ?? profile.cacheEviction;
  const backend = options.kvBackend ?? 'kvmgr';
  if (backend !== 'kvmgr' && backend !== 'tiered-pool') throw invalidArgument('kvBackend', backend, "'kvmgr' or 'tiered-pool'");
  const engine: unknown = options.engine ?? 'core';
  if (engine !== 'core') throw invalidArgument('engine', engine, "'core' (the simulator's legacy engine was removed)");
  // The block-hash index re-walks a request's whole prefix on every insert (quadratic in long
  // prompts); the radix cache continues from the matched node: radix is the default.
  const quota = options.quota === undefined ? undefined : resolveQuotaSplit(options.quota);
  const prefixIndex = options.prefixIndex ?? 'radix';
  if (prefixIndex !== 'hash-map' && prefixIndex !== 'radix') throw invalidArgument('prefixIndex', prefixIndex, "'hash-map' or 'radix'");
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
  const requests = Array.isArray(options.trace) ? (options.trace as readonly SimRequest[]) : (options.trace as Trace).requests;
  // In a heterogeneous cluster the router's latency predictor (the `pl` scorer, the SLO pair
  // optimizer) uses the run's `gpu`; capability pairing reads each instance's own model.
  const router =
    options.simRouter ??
    createSimRouter(routerSpec, { instanceIds: ids, blockSize: bs * routerKeyRatio(requests, bs), seed, pd, predictor: createModelPredictor(latency, profile.tokenBudget) });
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
  const res = simulateCoreCluster({
          ...common,
          ...(pdPairing === 'capability' ? { pdPairing } : {}),
          ...(quota === undefined ? {} : { quota }),
          instances: roles.map((role, i) => ({
            id: ids[i] as string,
            role,
            bytesPerBlock: spec.bytesPerBlock,
            gpuBlocks: blocksOf(gpus[i] as GpuSpec),
            capability: capabilityOf(ids[i] as string, role, model.name, gpus[i] as GpuSpec, tp, blocksOf(gpus[i] as GpuSpec), cpuBlocks, spec.bytesPerBlock, profile),
            blockSize: bs,
            eviction,
            prefixCache: prefixIndex === 'radix' ? ('radix' as const) : ('block-hash' as const),
            // the canonical pipeline text (its hash is the A/B experiment id)
      scheduler: createPlanner(schedulerSpec).name,
            victimSelector: profile.victimSelector,
            predictor,
            latency: latencyOf(gpus[i] as GpuSpec),
            tokenBudget: profile.tokenBudget,
            maxSeqs: profile.maxSeqs,
            ...(cpuBlocks > 0
              ? {
                  spec,
                  // the router reads GPU events only : no CPU events built
                  cpuTier: {
                    capacityBlocks: cpuBlocks,
                    bandwidthBytesPerSec: (gpus[i] as GpuSpec).pcieBytesPerSec,
                    baseLatencyUs: options.transferBaseUs ?? 50,
                    events: false,
                    ...(prefetch ? { prefetch: true } : {}),
                  },
                }
              : {}),
          })),
        });
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
      // the canonical pipeline text (its hash is the A/B experiment id)
      scheduler: createPlanner(schedulerSpec).name,
      router: router.name,
      eviction,
      kvBackend: backend,
      engine: 'core',
      ...(prefixIndex === 'radix' ? { prefixIndex } : {}),
      blockSize: bs,
      tokenBudget: profile.tokenBudget,
      maxSeqs: profile.maxSeqs,
      gpuBlocks,
      cpuBlocks,
      ...(hetero ? { gpus: gpus.map((g) => g.name), gpuBlocksPerInstance: gpus.map(blocksOf) } : {}),
      ...(pdPairing === 'capability' ? { pdPairing } : {}),
      ...(prefetch ? { prefetch } : {}),
      rateScale,
      seed,
      ...(quota === undefined ? {} : { quota }),
    },
    summary,
    requests: rows,
    timeseries: res.samples,
    violations: res.violations,
    events: res.events,
    simulatedS: res.endUs / 1e6,
    ...(res.quota === undefined ? {} : { quotaTimeline: res.quota.timeline }),
  };
}

function getGpuSpecAt(name: string, i: number): GpuSpec {
  try {
    return getGpuSpec(name);
  } catch {
    throw invalidArgument(`instances[${i}].gpu`, name, `one of ${Object.keys(GPU_SPECS).join(', ')}`);
  }
}

/**
 * The `CapabilityDescriptor` of a simulated instance: its GPU (device kind `sim`), KV memory per
 * tier (blocks × bytes per block), links (`gpu`: GPU-to-GPU, read as its P/D transfer link;
 * `cpu`: PCIe), and the profile's budgets. Checked with `validateCapability`.
 */
export function capabilityOf(
  instanceId: string,
  role: InstanceRole,
  model: string,
  gpu: GpuSpec,
  tp: number,
  gpuBlocks: number,
  cpuBlocks: number,
  bytesPerBlock: number,
  profile: EngineProfile,
): CapabilityDescriptor {
  return validateCapability({
    instanceId,
    role,
    model,
    device: { kind: 'sim', name: gpu.name, count: tp },
    memoryBytes: { gpu: gpuBlocks * bytesPerBlock, ...(cpuBlocks > 0 ? { cpu: cpuBlocks * bytesPerBlock } : {}) },
    bandwidthBytesPerSec: { gpu: gpu.nvlinkBytesPerSec, cpu: gpu.pcieBytesPerSec },
    blockSize: profile.blockSize,
    maxBatchedTokens: profile.tokenBudget,
    maxNumSeqs: profile.maxSeqs,
  });
}
