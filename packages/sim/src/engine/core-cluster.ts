/**
 * The cluster simulator over `@kvmgr/engine`'s {@link EngineCore}: a discrete-event loop
 * (arrivals by timestamp, multi-turn sessions, front-end queueing delay, idle instances start
 * their next step once every event of the current time is applied) where each instance is the
 * engine core a live server runs — `KvCacheManager` over kv-pool, prefix-cache and
 * eviction, the scheduler-IR pipeline, vLLM's admission and preemption — driven by the simulated
 * clock (`startStep(now)` → duration from the latency model → `finishStep(now + duration)`).
 *
 * The router's block index is fed by the engines' KV events (`BlockStored` / `BlockRemoved`, the
 * chained 64-bit block keys a live gateway ingests), taken in their compact form (`kvBlockKeys`:
 * the key's u32 words and position per block, no bigint), and requests are routed on the same
 * chained keys (at the trace's hash-block granularity, see {@link routerKeyRatio}).
 *
 * P/D disaggregation: when the router's P/D
 * decider picks a prefill instance, the request is first added there with `maxTokens: 1` (its
 * prefill leg, on an engine with role `prefill`; the first token comes from it), then, after the
 * KV transfer over the link (base latency + prompt blocks × bytes per block / bandwidth), added to
 * its decode instance with the KV of the prompt as remote KV (`EngineRequest.remoteKv`, vLLM's
 * `do_remote_prefill`) and the first token as a remote output: the decode engine allocates blocks
 * for that KV without computing it, caches its full blocks, and decodes the rest. Decode instances
 * also prefill the requests the decider does not disaggregate (llm-d's decode pods do).
 *
 * The KV transfer's source blocks are the prefill leg's, cached-free on the prefill instance once
 * it finished: when the transfer ends, the leading blocks still cached there are the ones that
 * arrived; if the prefill instance evicted any meanwhile, the transfer failed for the rest (counted
 * in `migrations.pdFailedBlocks`) and the decode instance recomputes them (its remote KV is only
 * the intact prefix; at least 1 token, the engine's remote-KV minimum).
 *
 * Heterogeneous clusters: each instance has its own latency model, KV blocks and, optionally, a
 * `capability` (`CapabilityDescriptor`); with `pdPairing: 'capability'` the decode instance of a
 * disaggregated request is re-picked when its prefill leg ends, by {@link pickDecodeByCapability}.
 *
 * A CPU tier (`cpuTier`) is the `KvCacheManager`'s own (offload on eviction, reload at admission,
 * charged to the step); its 'CPU' events do not reach the router, its pressure does: each
 * snapshot the router reads carries the transfers still queued on the host link
 * (`pendingTransferLatency`, µs) and the CPU reloads per second over the tier's window
 * (`kvThrashingRate`), both 0 without a CPU tier. Swap preemption (a pipeline's
 * `mode=swap`) runs as recompute here: the instances get no swap space of their own (the CPU tier's
 * blocks are the prefix cache's).
 */
import { type CapabilityDescriptor, type EngineSnapshot, HashTable64, type InstanceRole, KvmgrError, invalidArgument, validateCapability } from '@kvmgr/core';
import {
  BLOCK_KEYS_CLEARED,
  BLOCK_KEY_STORED,
  BlockKeyChain,
  type BlockKeyLog,
  EngineCore,
  type EngineRequest,
  type KvCpuTierOptions,
  type RequestFinishedStats,
} from '@kvmgr/engine';
import type { KVCacheSpec } from '@kvmgr/core';
import type { LifetimePredictor } from '@kvmgr/core';
import type { LatencyModel } from '../latency/types.js';
import { engineBlockKeys } from '../traces/block-keys.js';
import type { SimRequest } from '../traces/types.js';
import type { ClusterResult, InstanceSample, PdLink, SimInstanceView, SimProgress, SimRouter } from './cluster-types.js';
import { arrivalOrder, collectStates, routerKeyRatio, sessionLinks } from './request-order.js';
import { EV_ENQUEUE, EV_SESSION_ARRIVAL, EV_STEP_END, EV_WAKE, EventQueue } from './event-queue.js';
import { type InstanceCounters, newInstanceCounters } from './cluster-types.js';
import { RequestState } from './request-state.js';
import { type DecodeCandidateState, pdBandwidth, pickDecodeByCapability } from './capability-pairing.js';
import { QuotaSplit, type QuotaSplitOptions } from './quota-split.js';

/** One engine-core instance of the cluster. */
export interface CoreInstanceSetup {
  readonly id: string;
  /**
   * `both`, `prefill` (an engine with role `prefill`: it runs the prefill legs of disaggregated
   * requests) or `decode` (decodes disaggregated requests after their KV transfer, and serves the
   * requests the router does not disaggregate, as `both`).
   */
  readonly role: InstanceRole;
  /** Bytes of one KV block (all layers), for P/D transfer times. @default 0 (a transfer costs only the link's base latency) */
  readonly bytesPerBlock?: number;
  /** GPU KV blocks. */
  readonly gpuBlocks: number;
  readonly blockSize: number;
  /** Prefix-cache eviction policy name (`@kvmgr/eviction`). */
  readonly eviction: string;
  /** Prefix cache of the KV cache manager. @default 'block-hash' */
  readonly prefixCache?: 'block-hash' | 'radix';
  /** Scheduler-IR preset or pipeline text. */
  readonly scheduler: string;
  /** Victim selector name. */
  readonly victimSelector: string;
  readonly predictor?: LifetimePredictor;
  readonly latency: LatencyModel;
  readonly tokenBudget: number;
  readonly maxSeqs: number;
  /** Block geometry (CPU-tier transfer times). @default the manager's bookkeeping spec */
  readonly spec?: KVCacheSpec;
  /** The KV cache manager's CPU tier (`prefetch: true` for hot-spot prefetch). @default none */
  readonly cpuTier?: KvCpuTierOptions;
  /**
   * What the instance can do (checked with core's `validateCapability`): read by capability
   * pairing, and its `bandwidthBytesPerSec.gpu` caps P/D transfers to and from it (see
   * `capability-pairing.ts`). @default none (the cluster link alone)
   */
  readonly capability?: CapabilityDescriptor;
}

/** Options of {@link simulateCoreCluster}. */
export interface CoreClusterOptions {
  readonly requests: readonly SimRequest[];
  readonly instances: readonly CoreInstanceSetup[];
  readonly router: SimRouter;
  /** Arrival times are divided by this. @default 1 */
  readonly rateScale?: number;
  /** Time-series sampling interval, µs. @default 1_000_000 */
  readonly sampleIntervalUs?: number;
  readonly onProgress?: (p: SimProgress) => void;
  readonly onFinished?: (r: RequestState, nowUs: number) => void;
  /** Stop accepting arrivals after this simulated time, µs (the rest are rejected `horizon`). */
  readonly horizonUs?: number;
  /** SLO targets, ms, of requests without their own (the scheduler's deadlines). */
  readonly defaultSlo?: { readonly ttftMs?: number; readonly tpotMs?: number };
  /** P/D transfer link. @default { bytesPerSec: 25e9, baseUs: 1000 } */
  readonly pd?: PdLink;
  /**
   * Decode instance of a disaggregated request: `router` (the router's pick at arrival) or
   * `capability` (re-picked when the prefill leg ends, from the instances' capabilities and
   * latency models: {@link pickDecodeByCapability}; every instance needs a `capability`).
   * @default 'router'
   */
  readonly pdPairing?: 'router' | 'capability';
  /**
   * Split each instance's GPU blocks between LLM and embedding requests with kv-pool's quota
   * allocator, rebalanced over time ({@link QuotaSplit}); the result's `quota` reports the
   * timeline. @default none (one shared pool)
   */
  readonly quota?: QuotaSplitOptions;
}


/**
 * Runs the cluster of engine cores until every request finished or was rejected.
 *
 * @returns per-request states, instance views (counters), samples, end time, event count and
 *   conservation violations (`KvCacheManager.verify()` failures, blocks still held at the end,
 *   requests neither finished nor rejected).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for no instances, a role other than `both`,
 *   `prefill` or `decode`, a bad capability, a `pdPairing` other than `router` / `capability`
 *   (or `capability` with an instance without one), a bad rate scale, or a `previousTurn` that
 *   does not point to an earlier request.
 */
export function simulateCoreCluster(o: CoreClusterOptions): ClusterResult {
  if (o.instances.length === 0) throw invalidArgument('instances', o.instances, 'at least one instance');
  for (const s of o.instances) if (s.role !== 'both' && s.role !== 'prefill' && s.role !== 'decode') throw invalidArgument(`instances[${s.id}].role`, s.role, "'both', 'prefill' or 'decode'");
  for (const s of o.instances) if (s.capability !== undefined) validateCapability(s.capability);
  const pairing = o.pdPairing ?? 'router';
  if (pairing !== 'router' && pairing !== 'capability') throw invalidArgument('pdPairing', pairing, "'router' or 'capability'");
  if (pairing === 'capability') for (const s of o.instances) if (s.capability === undefined) throw invalidArgument(`instances[${s.id}].capability`, undefined, "a CapabilityDescriptor (pdPairing 'capability')");
  const rateScale = o.rateScale ?? 1;
  if (!(rateScale > 0) || !Number.isFinite(rateScale)) throw invalidArgument('rateScale', rateScale, 'a finite number > 0');
  const sampleUs = o.sampleIntervalUs ?? 1_000_000;
  const pdBw = o.pd?.bytesPerSec ?? 25e9;
  const pdBase = o.pd?.baseUs ?? 1000;
  const horizon = o.horizonUs ?? Number.POSITIVE_INFINITY;
  const reqs = o.requests;
  const n = reqs.length;
  const N = o.instances.length;
  const states: (RequestState | undefined)[] = new Array(n);
  // The instance whose engine holds the request now (a P/D request moves from prefill to decode).
  const at = new Int32Array(n).fill(-1);
  const idxOf = new Map<string, number>();
  const q = new EventQueue();
  const router = o.router;
  const bs = o.instances[0]?.blockSize ?? 16;
  const ratio = routerKeyRatio(reqs, bs);
  const feedRouter = router.onKeyStored !== undefined;
  // Router-granularity keys (every `ratio`-th chained engine key), for filtering events.
  const routerKeys = new HashTable64(1 << 16);

  const { nextTurn, isFollowUp } = sessionLinks(reqs);

  let done = 0;
  let nowUs = 0;
  const progressEvery = Math.max(1, Math.floor(n / 100));
  const counters = o.instances.map(() => newInstanceCounters());
  // Blocks of P/D transfers under way to each decode instance (they will need room there).
  const pdInflightBlocks = new Float64Array(N);
  const decodeCands: number[] = [];
  for (let i = 0; i < N; i++) if (o.instances[i]?.role !== 'prefill') decodeCands.push(i);

  const finishSession = (r: RequestState, t: number): void => {
    const nx = nextTurn[r.index] as number;
    if (nx >= 0) {
      const req = reqs[nx] as SimRequest;
      const a2 = r.instance >= 0 ? (o.instances[r.instance] as CoreInstanceSetup).latency.outputTokenUs * r.outputTokens : 0;
      q.push(Math.max(req.arrivalUs / rateScale, t + a2 + (req.thinkTimeUs ?? 0)), EV_SESSION_ARRIVAL, nx, 0);
    }
  };
  const reportDone = (): void => {
    done++;
    if (o.onProgress !== undefined && done % progressEvery === 0) o.onProgress({ done, total: n, simTimeUs: nowUs, events: q.pushed });
  };
  const rejectState = (r: RequestState, reason: string, t: number): void => {
    r.rejectedReason = reason;
    r.finishUs = -1;
    finishSession(r, t);
    reportDone();
  };

  const cores: EngineCore[] = [];
  // Free blocks at the start of each instance's running step while requests still waited (unusable for them).
  const unusableFree = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const s = o.instances[i] as CoreInstanceSetup;
    const c = counters[i] as InstanceCounters;
    const lat = s.latency;
    const core = new EngineCore({
      ...(s.role === 'prefill' ? { role: 'prefill' as const } : {}),
      kv: {
        numBlocks: s.gpuBlocks,
        blockSize: s.blockSize,
        evictionPolicy: s.eviction,
        ...(s.prefixCache === 'radix' ? { prefixCache: 'radix' as const } : {}),
        ...(s.spec === undefined ? {} : { spec: s.spec }),
        ...(s.cpuTier === undefined ? {} : { cpuTier: s.cpuTier }),
      },
      // The router reads the GPU stored / removed stream in compact form (no bigint per block).
      kvEvents: false,
      kvBlockKeys: feedRouter,
      trackEvictionRecompute: true,
      stepTimeUs: (shape) => lat.stepTimeUs(shape as never),
      scheduler: s.scheduler,
      tokenBudget: s.tokenBudget,
      maxSeqs: s.maxSeqs,
      victimSelector: s.victimSelector,
      ...(s.predictor === undefined ? {} : { predictor: s.predictor }),
      hooks: {
        onFinished(_req: EngineRequest, st: RequestFinishedStats) {
          const k = idxOf.get(st.requestId) as number;
          const r = states[k] as RequestState;
          idxOf.delete(st.requestId);
          at[k] = -1;
          // A P/D request's two legs add up; its prompt (hit, first token) is the prefill leg's.
          r.preemptions += st.preemptions;
          if (!r.kvTransferred) r.cachedTokens = st.cachedPromptTokens;
          r.generatedTokens = st.outputTokens;
          r.prefillComputed += st.prefillComputedTokens;
          // re-prefill: after a preemption, and after this engine evicted a prefix it had computed
          r.reprefillTokens += st.recomputedTokens + st.evictionRecomputedTokens;
          if (st.peakBlocks > r.peakKvBlocks) r.peakKvBlocks = st.peakBlocks;
          if (st.predictedBlocks >= 0) r.predictedKvBlocks = st.predictedBlocks;
          if (st.finishReason === 'rejected' || st.finishReason === 'abort') {
            c.rejected++;
            rejectState(r, r.rejectedReason ?? st.rejectedReason ?? st.finishReason, st.finishUs);
            return;
          }
          if (!r.kvTransferred) r.firstTokenUs = st.firstTokenUs;
          if (r.prefillInstance === i && !r.kvTransferred && !r.embed && targetTokens(r) > 1) {
            // P/D: the prompt and the first token are done here; the KV moves to the decode instance.
            r.kvTransferred = true;
            if (pairing === 'capability') r.instance = pickDecode(i, r.promptTokens);
            const d = o.instances[r.instance] as CoreInstanceSetup;
            const bytes = (r.promptTokens / bs) * (s.bytesPerBlock ?? 0);
            pdInflightBlocks[r.instance] = (pdInflightBlocks[r.instance] as number) + Math.ceil((r.promptTokens + 1) / bs);
            q.push(st.finishUs + pdBase + (bytes / pdBandwidth(pdBw, s.capability, d.capability)) * 1e6, EV_ENQUEUE, k, r.instance);
            return;
          }
          r.finishUs = st.finishUs;
          c.finished++;
          o.onFinished?.(r, st.finishUs);
          finishSession(r, st.finishUs);
          reportDone();
        },
        onStepStats(st) {
          // DESIGN.md §7: used token slots, and allocated-unused slots plus free blocks that the
          // waiting queue could not use, over capacity, time-averaged over steps
          const cap = s.gpuBlocks * s.blockSize;
          c.usedSlotUs += (st.durationUs * st.runningComputedTokens) / cap;
          c.fragSlotUs += (st.durationUs * (st.runningBlocks * s.blockSize - st.runningComputedTokens + (unusableFree[i] as number) * s.blockSize)) / cap;
          c.batchUs += st.durationUs * st.shape.numSeqs;
          c.prefillTokens += st.shape.prefillTokens;
          c.decodeTokens += st.shape.decodeTokens;
          c.outputTokens += st.generatedTokens;
        },
        ...(feedRouter
          ? {
              onKvBlockKeys(log: BlockKeyLog) {
                for (let j = 0; j < log.length; j++) {
                  // router keys sit at positions ratio-1, 2·ratio-1, …: skip the rest before the lookup
                  if ((log.position(j) + 1) % ratio !== 0) continue;
                  const kind = log.kind(j);
                  const hi = log.hi(j);
                  const lo = log.lo(j);
                  if (kind === BLOCK_KEYS_CLEARED || routerKeys.get(hi, lo) < 0) continue;
                  if (kind === BLOCK_KEY_STORED) router.onKeyStored?.(i, hi, lo);
                  else router.onKeyRemoved?.(i, hi, lo);
                }
              },
            }
          : {}),
      },
    });
    cores.push(core);
  }

  /** Capability pairing: the decode instance for a request whose prefill leg just ended on `p`. */
  const pickDecode = (p: number, promptTokens: number): number => {
    const cands: DecodeCandidateState[] = decodeCands.map((j) => {
      const core = cores[j] as EngineCore;
      const s = o.instances[j] as CoreInstanceSetup;
      return {
        capability: s.capability as CapabilityDescriptor,
        latency: s.latency,
        freeBlocks: core.kv.numFreeBlocks - (pdInflightBlocks[j] as number),
        runningSeqs: core.numRunning,
        contextTokens: core.kv.numHeldBlocks * s.blockSize,
        backlogTokens: core.prefillBacklog(),
      };
    });
    const ps = o.instances[p] as CoreInstanceSetup;
    return decodeCands[pickDecodeByCapability(ps.capability as CapabilityDescriptor, cands, promptTokens, (ps.bytesPerBlock ?? 0) / bs, o.pd ?? {})] as number;
  };
  const quota = o.quota === undefined ? null : new QuotaSplit(cores, o.quota, o.defaultSlo?.ttftMs ?? 2000);
  // quota rounds go on while engines hold work they may be waiting on a quota for, up to this long without a step
  const quotaStallUs = 600e6;
  let lastStepUs = 0;

  const snaps = o.instances.map((s) => ({
    instanceId: s.id,
    role: s.role,
    timeUs: 0,
    kvUtilization: 0,
    waiting: 0,
    running: 0,
    queuedPrefillTokens: 0,
    pendingTransferLatency: 0,
    kvThrashingRate: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    freeBlocks: s.gpuBlocks,
    totalBlocks: s.gpuBlocks,
  }));
  const inflightReqs = new Float64Array(N);
  const inflightTokens = new Float64Array(N);
  const busy = new Uint8Array(N);
  const wakeAt = new Float64Array(N);
  const dirty = new Uint8Array(N);
  let nDirty = 0;
  const markDirty = (i: number): void => {
    if (dirty[i] === 0) {
      dirty[i] = 1;
      nDirty++;
    }
  };
  const tryStart = (i: number, t: number): void => {
    const core = cores[i] as EngineCore;
    if (busy[i] === 1 || !core.hasWork()) return;
    const st = core.startStep(t);
    if (st === null) {
      // queued requests wait for prefetched KV: step again once it has landed
      const w = core.kv.prefetchLandedByUs;
      if (w > t && wakeAt[i] !== w) {
        wakeAt[i] = w;
        q.push(w, EV_WAKE, i, 0);
      }
      return;
    }
    unusableFree[i] = core.numWaiting > 0 ? core.kv.numFreeBlocks : 0;
    busy[i] = 1;
    lastStepUs = t;
    q.push(t + st.durationUs, EV_STEP_END, i, 0);
  };
  const startDirty = (t: number): void => {
    for (let i = 0; i < N; i++) {
      if (dirty[i] === 1) {
        dirty[i] = 0;
        tryStart(i, t);
      }
    }
    nDirty = 0;
  };

  const keysOf: (Uint32Array | undefined)[] = new Array(n);
  const arrive = (idx: number, t: number): void => {
    const req = reqs[idx] as SimRequest;
    const keys = engineBlockKeys(req, bs);
    const r = new RequestState(idx, req, keys, t, o.defaultSlo);
    states[idx] = r;
    if (t > horizon) {
      rejectState(r, 'horizon', t);
      return;
    }
    // The engine gets the keys of every full block the trace names: the prompt's, then (a
    // multi-turn turn whose hash ids cover its answer, `hashTokens`) those its output fills, so
    // the blocks decoded here are cached under the keys the next turn's prompt carries (vLLM
    // chains block hashes over prompt + output tokens alike). The router matches the prompt only.
    const promptKeys = Math.min(keys.length, Math.floor(req.promptTokens / bs));
    const k32 = new Uint32Array(keys.length);
    for (let j = 0; j < keys.length; j++) k32[j] = (keys[j] as number) >>> 0;
    keysOf[idx] = k32;
    let local: Uint32Array;
    if (feedRouter) {
      // The engine's chained keys of the prompt's full blocks, every `ratio`-th one; the keys of
      // the answer's blocks pass the event filter too (the next turn matches them).
      const c = new BlockKeyChain(bs);
      c.extend([], k32.length, k32);
      const m = Math.floor(promptKeys / ratio);
      local = new Uint32Array(2 * m);
      for (let j = 0; j < m; j++) {
        const b = (j + 1) * ratio - 1;
        local[2 * j] = c.hi(b);
        local[2 * j + 1] = c.lo(b);
      }
      for (let b = ratio - 1; b < k32.length; b += ratio) routerKeys.set(c.hi(b), c.lo(b), 1);
    } else local = new Uint32Array(0);
    for (let i = 0; i < N; i++) {
      const core = cores[i] as EngineCore;
      const s = snaps[i] as (typeof snaps)[number];
      const m = core.metrics;
      s.timeUs = t;
      s.kvUtilization = m.kvCacheUsagePerc;
      s.waiting = m.numRequestsWaiting + (inflightReqs[i] as number);
      s.running = m.numRequestsRunning;
      s.queuedPrefillTokens = core.prefillBacklog() + (inflightTokens[i] as number);
      s.prefixCacheQueries = m.promptTokens;
      s.prefixCacheHits = m.promptTokensCached;
      s.freeBlocks = core.kv.numFreeBlocks;
      // KV pressure (0 without a CPU tier): what the `kv-pressure` scorers add to utilization
      s.pendingTransferLatency = core.kv.pendingTransferLatencyUs(t);
      s.kvThrashingRate = core.kv.kvThrashingRate(t);
    }
    const d = router.route(req, new Uint32Array(0), snaps as EngineSnapshot[], t, local);
    if (!(d.decode >= 0 && d.decode < N)) throw new KvmgrError('KVMGR_INVALID_STATE', `router ${router.name} returned instance ${d.decode} of ${N}`);
    const disagg = d.prefill >= 0 && d.prefill < N && d.prefill !== d.decode;
    const target = disagg ? d.prefill : d.decode;
    r.instance = d.decode;
    r.prefillInstance = disagg ? d.prefill : -1;
    inflightReqs[target] = (inflightReqs[target] as number) + 1;
    inflightTokens[target] = (inflightTokens[target] as number) + req.promptTokens;
    q.push(t + (o.instances[target] as CoreInstanceSetup).latency.queueingUs(req.promptTokens), EV_ENQUEUE, idx, target);
  };

  const samples: InstanceSample[] = [];
  const prev = counters.map((c) => ({ ...c, ev: 0, swaps: 0 }));
  const sample = (t: number): void => {
    for (let i = 0; i < N; i++) {
      const core = cores[i] as EngineCore;
      const c = counters[i] as InstanceCounters;
      syncCounters(core, c);
      const p = prev[i] as (typeof prev)[number];
      const m = core.metrics;
      const swaps = m.swappedInBlocks + m.swappedOutBlocks;
      const steps = c.steps - p.steps;
      const sec = sampleUs / 1e6;
      const promptD = c.promptTokens - p.promptTokens;
      samples.push({
        tMs: t / 1000,
        instance: i,
        kvUtilGpu: core.kv.numHeldBlocks / core.kv.numBlocks,
        kvCachedGpu: core.kv.numCachedBlocks / core.kv.numBlocks,
        kvUtilCpu: 0,
        waiting: m.numRequestsWaiting,
        running: m.numRequestsRunning,
        batchSize: c.busyUs > p.busyUs ? (c.batchUs - p.batchUs) / (c.busyUs - p.busyUs) : 0,
        stepMs: steps > 0 ? (c.busyUs - p.busyUs) / steps / 1000 : 0,
        outputTokPerSec: (c.outputTokens - p.outputTokens) / sec,
        prefillTokPerSec: (c.prefillTokens - p.prefillTokens) / sec,
        hitRate: promptD > 0 ? (c.cachedTokens - p.cachedTokens) / promptD : 0,
        evictions: core.kv.stats.evictedBlocks - p.ev,
        transfers: swaps - p.swaps,
        preemptions: c.preemptions - p.preemptions,
        finished: c.finished - p.finished,
      });
      Object.assign(p, c);
      p.ev = core.kv.stats.evictedBlocks;
      p.swaps = swaps;
    }
  };

  const order = arrivalOrder(reqs, isFollowUp);
  let ai = 0;
  let nextSample = sampleUs;
  const ev = new Float64Array(4);
  for (;;) {
    const tArr = ai < order.length ? (reqs[order[ai] as number] as SimRequest).arrivalUs / rateScale : Number.POSITIVE_INFINITY;
    const tEv = q.peekTime();
    const tQuota =
      quota !== null && quota.nextUs - lastStepUs <= quotaStallUs && (tArr < Number.POSITIVE_INFINITY || tEv < Number.POSITIVE_INFINITY || cores.some((c) => c.hasWork()))
        ? quota.nextUs
        : Number.POSITIVE_INFINITY;
    const t = Math.min(tArr, tEv, tQuota);
    if (t === Number.POSITIVE_INFINITY && nDirty > 0) {
      startDirty(nowUs);
      continue;
    }
    if (t === Number.POSITIVE_INFINITY) {
      // Nothing scheduled: engines with work that cannot step are stalled; abort their requests.
      let stalled = false;
      for (let i = 0; i < N; i++) {
        const core = cores[i] as EngineCore;
        if (!core.hasWork()) continue;
        stalled = true;
        for (const id of [...idxOf.keys()]) {
          const k = idxOf.get(id) as number;
          if (at[k] !== i) continue;
          (states[k] as RequestState).rejectedReason = 'unschedulable';
          core.abort(id, nowUs);
        }
      }
      if (!stalled) break;
      continue;
    }
    if (t > nowUs && nDirty > 0) {
      startDirty(nowUs);
      continue;
    }
    while (nextSample <= t) {
      sample(nextSample);
      nextSample += sampleUs;
    }
    nowUs = t;
    if (quota !== null && tQuota === t && t < tArr && t <= tEv) {
      quota.round(t);
      for (let i = 0; i < N; i++) markDirty(i);
      continue;
    }
    if (tArr <= tEv) {
      arrive(order[ai++] as number, t);
      continue;
    }
    q.pop(ev);
    const kind = ev[1] as number;
    const a = ev[2] as number;
    const b = ev[3] as number;
    if (kind === EV_STEP_END) {
      busy[a] = 0;
      (cores[a] as EngineCore).finishStep(t);
      markDirty(a);
    } else if (kind === EV_ENQUEUE) {
      const r = states[a] as RequestState;
      const req = r.req;
      if (!r.kvTransferred) {
        inflightReqs[b] = (inflightReqs[b] as number) - 1;
        inflightTokens[b] = (inflightTokens[b] as number) - r.promptTokens;
      }
      const core = cores[b] as EngineCore;
      let remoteTokens = r.promptTokens;
      if (r.kvTransferred) {
        pdInflightBlocks[b] = (pdInflightBlocks[b] as number) - Math.ceil((r.promptTokens + 1) / bs);
        // the transfer read the prefill leg's cached blocks: those evicted meanwhile never arrived
        const keys = keysOf[a] as Uint32Array;
        const full = Math.min(keys.length, Math.floor(r.promptTokens / bs));
        const src = cores[r.prefillInstance] as EngineCore;
        const intact = full === 0 ? 0 : src.kv.cachedPrefixBlocks({ requestId: r.id, tokenIds: [], numComputedTokens: 0, numTokens: r.promptTokens, blockKeys: keys }, full);
        const mc = counters[b] as InstanceCounters;
        mc.pdTransferBlocks += full;
        if (intact < full) {
          mc.pdFailedBlocks += full - intact;
          remoteTokens = Math.max(1, intact * bs);
        }
      }
      // As vLLM refuses a prompt longer than the KV cache can ever hold (max_model_len).
      if (Math.ceil((r.promptTokens + 1) / bs) > core.kv.numBlocks) {
        rejectState(r, 'exceeds-capacity', t);
        continue;
      }
      idxOf.set(r.id, a);
      at[a] = b;
      // P/D: the prefill leg samples one token; the decode leg brings the prompt's KV and that token.
      const prefillLeg = r.prefillInstance === b && !r.kvTransferred && !r.embed;
      const er: EngineRequest = {
        requestId: r.id,
        arrivalUs: r.arrivalUs,
        promptTokens: r.promptTokens,
        blockKeys: keysOf[a] as Uint32Array,
        maxTokens: r.embed ? 0 : prefillLeg ? 1 : Math.max(req.maxTokens, 1),
        outputTokens: prefillLeg ? 1 : r.outputTokens,
        ...(r.kvTransferred ? { remoteKv: { computedTokens: remoteTokens, outputTokenIds: [0] } } : {}),
        ...(r.embed ? { kind: 'embed' as const } : {}),
        ...(req.priority === undefined ? {} : { priority: req.priority }),
        ...(r.ttftMs === undefined && r.tpotMs === undefined
          ? {}
          : { slo: { ...(r.ttftMs === undefined ? {} : { ttftMs: r.ttftMs }), ...(r.tpotMs === undefined ? {} : { tpotMs: r.tpotMs }) } }),
      };
      if (!prefillLeg) keysOf[a] = undefined;
      core.addRequest(er, t);
      markDirty(b);
    } else if (kind === EV_SESSION_ARRIVAL) {
      arrive(a, t);
    } else if (kind === EV_WAKE) {
      markDirty(a);
    }
  }
  sample(nextSample);
  if (o.onProgress !== undefined) o.onProgress({ done, total: n, simTimeUs: nowUs, events: q.pushed });

  const violations: string[] = [];
  const views: SimInstanceView[] = [];
  for (let i = 0; i < N; i++) {
    const core = cores[i] as EngineCore;
    const s = o.instances[i] as CoreInstanceSetup;
    const c = counters[i] as InstanceCounters;
    syncCounters(core, c);
    try {
      core.kv.verify();
    } catch (e) {
      violations.push(`${s.id}: ${(e as Error).message}`);
    }
    if (core.kv.numHeldBlocks !== 0) violations.push(`${s.id}: ${core.kv.numHeldBlocks} blocks still used by requests at the end`);
    const st = core.kv.stats;
    const pf = core.kv.prefetchStats;
    views.push({
      id: s.id,
      role: s.role,
      counters: c,
      kv: { counters: { evictedBlocks: st.evictedBlocks, offloadedBlocks: st.offloadedBlocks, reloadedBlocks: st.reloadedBlocks } },
      migrations: {
        prefetchedBlocks: pf.prefetchedBlocks,
        prefetchHitBlocks: pf.hitBlocks,
        prefetchLateBlocks: pf.lateBlocks,
        prefetchEvictedBlocks: pf.evictedBlocks,
        pdTransferBlocks: c.pdTransferBlocks,
        pdFailedBlocks: c.pdFailedBlocks,
      },
    });
  }
  if (quota !== null && quota.report().overCommitted > 0) violations.push(`quota: ${quota.report().overCommitted} instance-rounds with a kind over its quota or quotas over the pool`);
  return {
    states: collectStates(reqs, states, violations),
    instances: views,
    samples,
    endUs: nowUs,
    events: q.pushed + n,
    violations,
    ...(quota === null ? {} : { quota: quota.report() }),
  };
}

/** Output tokens the engine generates for the request (its trace output, capped by `maxTokens`). */
function targetTokens(r: RequestState): number {
  return Math.min(r.outputTokens, Math.max(r.req.maxTokens, 1));
}

/** Copies the engine's cumulative metrics into the instance counters the summary reads. */
function syncCounters(core: EngineCore, c: InstanceCounters): void {
  const m = core.metrics;
  c.steps = m.steps;
  c.plannedSteps = m.plannedSteps;
  c.busyUs = m.busyUs;
  c.promptTokens = m.promptTokens;
  c.cachedTokens = m.promptTokensCached;
  c.preemptions = m.numPreemptions;
  c.transferUs = m.transferUs;
}
