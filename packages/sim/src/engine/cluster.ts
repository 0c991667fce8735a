/**
 * The cluster simulator: N engine instances behind a router (`@kvmgr/router` or a
 * round-robin baseline), arrivals by timestamp (optionally rate-scaled), multi-turn sessions
 * (a turn arrives `thinkTimeUs` after the previous answer), P/D disaggregation with KV transfer
 * time, one discrete-event loop in µs. Deterministic: same inputs and seed → same result.
 */
import type { EngineSnapshot, InstanceRole } from '@kvmgr/core';
import { KvmgrError, invalidArgument } from '@kvmgr/core';
import type { LatencyModel } from '../latency/types.js';
import { engineBlockKeys } from '../traces/block-keys.js';
import type { SimRequest } from '../traces/types.js';
import { EV_ENQUEUE, EV_SESSION_ARRIVAL, EV_STEP_END, EventQueue } from './event-queue.js';
import { EngineInstance, type InstanceCounters, type InstanceHooks, type InstanceLimits } from './instance.js';
import type { KvBackend } from './kv-backend.js';
import { RequestState } from './request-state.js';
import type { StepPlanner } from './sched-types.js';

/** What the cluster needs of a router (the `@kvmgr/router` `Router` fits through {@link routerAdapter}). */
export interface SimRouter {
  readonly name: string;
  /**
   * Picks the instance (position in `snapshots`) for a request; for P/D clusters also the
   * prefill instance (`prefill` = -1 or equal to `decode` when not disaggregated).
   */
  route(
    request: SimRequest,
    keys: Uint32Array,
    snapshots: readonly EngineSnapshot[],
    nowUs: number,
    /** The request's block keys as `[hi, lo]` u32 pairs (engine-core clusters); replaces `keys` when given. */
    localKeys?: Uint32Array,
  ): { readonly decode: number; readonly prefill: number };
  /** Called when an instance caches / evicts a prompt block (block index feeding). */
  onBlockStored?(instance: number, key: number): void;
  onBlockRemoved?(instance: number, key: number): void;
  /** Engine-core clusters: an instance stored / removed the block with this 64-bit key (from its KV events). */
  onKeyStored?(instance: number, hi: number, lo: number): void;
  onKeyRemoved?(instance: number, hi: number, lo: number): void;
  /** Called when a request finished, with observed latencies (predictor feedback). */
  onFinished?(requestId: string, ttftMs: number, tpotMs: number): void;
}

/** One instance of the cluster. */
export interface InstanceSetup {
  readonly id: string;
  readonly role: InstanceRole;
  readonly kv: KvBackend;
  readonly latency: LatencyModel;
  readonly planner: StepPlanner;
  readonly limits: InstanceLimits;
  /** Bytes of one KV block (P/D transfer sizes). */
  readonly bytesPerBlock: number;
}

/** P/D transfer link. */
export interface PdLink {
  /** Bandwidth between instances, bytes/s. @default 25e9 */
  readonly bytesPerSec?: number;
  /** Fixed cost per transfer, µs. @default 1000 */
  readonly baseUs?: number;
}

/** Progress report. */
export interface SimProgress {
  readonly done: number;
  readonly total: number;
  readonly simTimeUs: number;
  readonly events: number;
}

/** Options of {@link simulateCluster}. */
export interface ClusterOptions {
  readonly requests: readonly SimRequest[];
  readonly instances: readonly InstanceSetup[];
  readonly router: SimRouter;
  /** Arrival times are divided by this (2 = twice the rate). @default 1 */
  readonly rateScale?: number;
  /** Time-series sampling interval, µs. @default 1_000_000 */
  readonly sampleIntervalUs?: number;
  readonly pd?: PdLink;
  /** Called about every 1% of the requests completed (finished or rejected) and at the end. */
  readonly onProgress?: (p: SimProgress) => void;
  /** Called when a request finished (e.g. to teach an output-length predictor). */
  readonly onFinished?: (r: RequestState, nowUs: number) => void;
  /** Stop accepting arrivals after this simulated time, µs (the rest are rejected `horizon`). */
  readonly horizonUs?: number;
  /**
   * SLO targets, ms, of requests that carry none of their own: the scheduler sees them as the
   * request's deadlines (TTFT slack for `slo-aware`, SLO slack for victim selection), the same
   * targets the run is judged by. @default none (no deadlines)
   */
  readonly defaultSlo?: { readonly ttftMs?: number; readonly tpotMs?: number };
}

/** One time-series sample of one instance. */
export interface InstanceSample {
  /** Sample time, ms. */
  readonly tMs: number;
  readonly instance: number;
  /** GPU blocks used by requests / capacity. */
  readonly kvUtilGpu: number;
  /** GPU blocks holding cached prefixes (used or evictable) / capacity. */
  readonly kvCachedGpu: number;
  /** CPU-tier blocks used / capacity (0 without a CPU tier). */
  readonly kvUtilCpu: number;
  readonly waiting: number;
  readonly running: number;
  /** Mean batch size over the interval (sequences per step). */
  readonly batchSize: number;
  /** Mean step time over the interval, ms. */
  readonly stepMs: number;
  /** Output tokens per second over the interval. */
  readonly outputTokPerSec: number;
  /** Prefill tokens computed per second over the interval. */
  readonly prefillTokPerSec: number;
  /** Prefix hit rate of the requests admitted in the interval (tokens). */
  readonly hitRate: number;
  readonly evictions: number;
  /** Blocks offloaded + reloaded + swapped over the interval. */
  readonly transfers: number;
  readonly preemptions: number;
  readonly finished: number;
}

/** What a result tells of one instance (an {@link EngineInstance}, or an engine-core instance's counters). */
export interface SimInstanceView {
  readonly id: string;
  readonly role: InstanceRole;
  readonly counters: InstanceCounters;
  readonly kv: { readonly counters: { readonly evictedBlocks: number; readonly offloadedBlocks: number; readonly reloadedBlocks: number } };
}

/** What {@link simulateCluster} returns. */
export interface ClusterResult {
  readonly states: readonly RequestState[];
  readonly instances: readonly SimInstanceView[];
  readonly samples: readonly InstanceSample[];
  /** Simulated end time, µs. */
  readonly endUs: number;
  readonly events: number;
  /** Conservation violations found at the end (empty when every check passed). */
  readonly violations: readonly string[];
}

interface Snap {
  instanceId: string;
  role: InstanceRole;
  timeUs: number;
  kvUtilization: number;
  waiting: number;
  running: number;
  queuedPrefillTokens: number;
  pendingTransferLatency: number;
  kvThrashingRate: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  freeBlocks: number;
  totalBlocks: number;
}

/**
 * Engine blocks per router block: the trace's hash block over the engine block when every
 * request with hash ids has the same, coarser, divisible hash block; 1 otherwise.
 */
export function routerKeyRatio(requests: readonly SimRequest[], blockSize: number): number {
  let h = 0;
  for (const r of requests) {
    if (r.hashIds === undefined) continue;
    const t = r.hashBlockTokens ?? 512;
    if (h === 0) h = t;
    else if (h !== t) return 1;
  }
  return h > blockSize && h % blockSize === 0 ? h / blockSize : 1;
}

/**
 * Multi-turn links of a request list: the follow-up of each request (-1 = none) and which
 * requests are follow-ups (they arrive when the previous answer is read, not at their timestamp).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a `previousTurn` that is not an earlier index.
 */
export function sessionLinks(reqs: readonly SimRequest[]): { readonly nextTurn: Int32Array; readonly isFollowUp: Uint8Array } {
  const n = reqs.length;
  const nextTurn = new Int32Array(n).fill(-1);
  const isFollowUp = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = reqs[i]?.previousTurn;
    if (p !== undefined && p >= 0) {
      if (!(p < i)) throw invalidArgument(`requests[${i}].previousTurn`, p, `an index of an earlier request (< ${i})`);
      nextTurn[p] = i;
      isFollowUp[i] = 1;
    }
  }
  return { nextTurn, isFollowUp };
}

/** Indices of the requests that arrive at their timestamp (not follow-ups), by time then index. */
export function arrivalOrder(reqs: readonly SimRequest[], isFollowUp: Uint8Array): number[] {
  const order: number[] = [];
  for (let i = 0; i < reqs.length; i++) if (isFollowUp[i] === 0) order.push(i);
  order.sort((a, b) => (reqs[a] as SimRequest).arrivalUs - (reqs[b] as SimRequest).arrivalUs || a - b);
  return order;
}

/**
 * The states of a finished run, in request order; appends a violation for each request that never
 * arrived or neither finished nor was rejected.
 */
export function collectStates(reqs: readonly SimRequest[], states: readonly (RequestState | undefined)[], violations: string[]): RequestState[] {
  const out: RequestState[] = [];
  for (let i = 0; i < reqs.length; i++) {
    const r = states[i];
    if (r === undefined) {
      violations.push(`request ${reqs[i]?.requestId} never arrived`);
      continue;
    }
    if (r.finishUs < 0 && r.rejectedReason === undefined) violations.push(`request ${r.id} neither finished nor rejected`);
    out.push(r);
  }
  return out;
}

/**
 * Runs the cluster until every request finished or was rejected.
 *
 * @returns per-request states, instances (with counters), samples, end time, event count and
 *   conservation violations (no block leaks: each pool holds only evictable cached blocks, and
 *   every request finished or was rejected with a reason).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for no instances, a bad rate scale, or a request
 *   whose `previousTurn` does not point to an earlier request.
 */
export function simulateCluster(o: ClusterOptions): ClusterResult {
  if (o.instances.length === 0) throw invalidArgument('instances', o.instances, 'at least one instance');
  const rateScale = o.rateScale ?? 1;
  if (!(rateScale > 0) || !Number.isFinite(rateScale)) throw invalidArgument('rateScale', rateScale, 'a finite number > 0');
  const sampleUs = o.sampleIntervalUs ?? 1_000_000;
  const pdBw = o.pd?.bytesPerSec ?? 25e9;
  const pdBase = o.pd?.baseUs ?? 1000;
  const horizon = o.horizonUs ?? Number.POSITIVE_INFINITY;
  const reqs = o.requests;
  const n = reqs.length;
  const states: (RequestState | undefined)[] = new Array(n);
  const q = new EventQueue();
  const router = o.router;
  const bs = o.instances[0]?.kv.blockSize ?? 16;
  // The router sees blocks at the trace's hash granularity when it is coarser than the engine
  // block (Mooncake: 512 tokens = 32 engine blocks): 32× less index traffic, same prefix score.
  const ratio = routerKeyRatio(o.requests, bs);

  // Multi-turn: the follow-up of each request (one per request).
  const { nextTurn, isFollowUp } = sessionLinks(reqs);

  let done = 0;
  let nowUs = 0;
  const progressEvery = Math.max(1, Math.floor(n / 100));
  const instances: EngineInstance[] = [];

  const finishSession = (r: RequestState, t: number): void => {
    const nx = nextTurn[r.index] as number;
    if (nx >= 0) {
      const req = reqs[nx] as SimRequest;
      // The user reads the answer as the client receives it (α2 per output token), then thinks.
      const a2 = r.instance >= 0 ? (instances[r.instance] as EngineInstance).latency.outputTokenUs * r.outputTokens : 0;
      const at = Math.max(req.arrivalUs / rateScale, t + a2 + (req.thinkTimeUs ?? 0));
      q.push(at, EV_SESSION_ARRIVAL, nx, 0);
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

  const setups = o.instances;
  const hooks: InstanceHooks = {
    onFirstToken() {},
    onFinish(r, t) {
      o.onFinished?.(r, t);
      finishSession(r, t);
      reportDone();
    },
    onPrefillDone(r, t) {
      const bytes = (r.promptTokens / bs) * ((setups[r.prefillInstance] as InstanceSetup).bytesPerBlock);
      r.kvTransferred = true;
      q.push(t + pdBase + (bytes / pdBw) * 1e6, EV_ENQUEUE, r.index, r.instance);
    },
    onReject(r, reason, t) {
      rejectState(r, reason, t);
    },
  };
  for (let i = 0; i < setups.length; i++) {
    const s = setups[i] as InstanceSetup;
    const inst = new EngineInstance({
      id: s.id,
      index: i,
      role: s.role,
      kv: s.kv,
      latency: s.latency,
      planner: s.planner,
      limits: s.limits,
      hooks,
    });
    if (router.onBlockStored !== undefined) {
      const f = router.onBlockStored.bind(router);
      s.kv.onStore = ratio === 1 ? (key) => f(i, key) : (key) => {
        if (key % ratio === ratio - 1) f(i, (key - (ratio - 1)) / ratio);
      };
    }
    if (router.onBlockRemoved !== undefined) {
      const f = router.onBlockRemoved.bind(router);
      s.kv.onEvict = ratio === 1 ? (key) => f(i, key) : (key) => f(i, Math.floor(key / ratio));
    }
    instances.push(inst);
  }
  const snaps: Snap[] = instances.map((inst) => ({
    instanceId: inst.id,
    role: inst.role,
    timeUs: 0,
    kvUtilization: 0,
    waiting: 0,
    running: 0,
    queuedPrefillTokens: 0,
    pendingTransferLatency: 0,
    kvThrashingRate: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    freeBlocks: inst.kv.numBlocks,
    totalBlocks: inst.kv.numBlocks,
  }));

  const inflightReqs = new Float64Array(instances.length);
  const inflightTokens = new Float64Array(instances.length);
  const dirty = new Uint8Array(instances.length);
  let nDirty = 0;
  const markDirty = (i: number): void => {
    if (dirty[i] === 0) {
      dirty[i] = 1;
      nDirty++;
    }
  };
  const startDirty = (t: number): void => {
    for (let i = 0; i < instances.length; i++) {
      if (dirty[i] === 1) {
        dirty[i] = 0;
        tryStart(i, t);
      }
    }
    nDirty = 0;
  };
  const tryStart = (i: number, t: number): void => {
    const inst = instances[i] as EngineInstance;
    if (inst.busy || !inst.hasWork()) return;
    const dur = inst.startStep(t);
    if (dur >= 0) q.push(t + dur, EV_STEP_END, i, 0);
  };

  const arrive = (idx: number, t: number): void => {
    const req = reqs[idx] as SimRequest;
    const keys = engineBlockKeys(req, bs);
    const r = new RequestState(idx, req, keys, t, o.defaultSlo);
    states[idx] = r;
    if (t > horizon) {
      rejectState(r, 'horizon', t);
      return;
    }
    for (let i = 0; i < instances.length; i++) {
      const inst = instances[i] as EngineInstance;
      const s = snaps[i] as Snap;
      s.timeUs = t;
      s.kvUtilization = inst.kv.blocksInUse / inst.kv.numBlocks;
      // In-flight = routed but not yet in the queue (API-server delay): routers count their own
      // dispatches, or a burst would herd onto one instance.
      s.waiting = inst.waiting.length + (inflightReqs[i] as number);
      s.running = inst.running.length;
      s.queuedPrefillTokens = inst.prefillBacklog() + (inflightTokens[i] as number);
      s.pendingTransferLatency = inst.kv.pendingTransferLatency(t);
      s.kvThrashingRate = inst.kv.kvThrashingRate(t);
      s.prefixCacheQueries = inst.counters.promptTokens;
      s.prefixCacheHits = inst.counters.cachedTokens;
      s.freeBlocks = inst.kv.freeBlocks;
    }
    let keys32: Uint32Array;
    const promptKeys = Math.min(keys.length, Math.floor(req.promptTokens / bs));
    if (ratio === 1) {
      keys32 = new Uint32Array(promptKeys);
      for (let k = 0; k < promptKeys; k++) keys32[k] = keys[k] as number;
    } else {
      const full = Math.floor(promptKeys / ratio);
      keys32 = (req.hashIds as Uint32Array).subarray(0, full);
    }
    const d = router.route(req, keys32, snaps as EngineSnapshot[], t);
    if (!(d.decode >= 0 && d.decode < instances.length)) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `router ${router.name} returned instance ${d.decode} of ${instances.length}`);
    }
    const target = d.prefill >= 0 && d.prefill !== d.decode ? d.prefill : d.decode;
    r.instance = d.decode;
    r.prefillInstance = d.prefill >= 0 && d.prefill !== d.decode ? d.prefill : -1;
    const lat = (instances[target] as EngineInstance).latency;
    inflightReqs[target] = (inflightReqs[target] as number) + 1;
    inflightTokens[target] = (inflightTokens[target] as number) + req.promptTokens;
    q.push(t + lat.queueingUs(req.promptTokens), EV_ENQUEUE, idx, target);
  };

  const samples: InstanceSample[] = [];
  const prev = instances.map((inst) => ({ ...inst.counters, ev: 0, tr: 0 }));
  const sample = (t: number): void => {
    for (let i = 0; i < instances.length; i++) {
      const inst = instances[i] as EngineInstance;
      const c = inst.counters;
      const p = prev[i] as (typeof prev)[number];
      const kc = inst.kv.counters;
      const tr = kc.offloadedBlocks + kc.reloadedBlocks + kc.swappedInBlocks + kc.swappedOutBlocks;
      const steps = c.steps - p.steps;
      const sec = sampleUs / 1e6;
      const promptD = c.promptTokens - p.promptTokens;
      samples.push({
        tMs: t / 1000,
        instance: i,
        kvUtilGpu: inst.kv.blocksInUse / inst.kv.numBlocks,
        kvCachedGpu: inst.kv.cachedBlocks / inst.kv.numBlocks,
        kvUtilCpu: inst.kv.cpuCapacity > 0 ? inst.kv.cpuBlocksUsed / inst.kv.cpuCapacity : 0,
        waiting: inst.waiting.length,
        running: inst.running.length,
        batchSize: c.busyUs > p.busyUs ? (c.batchUs - p.batchUs) / (c.busyUs - p.busyUs) : 0,
        stepMs: steps > 0 ? (c.busyUs - p.busyUs) / steps / 1000 : 0,
        outputTokPerSec: (c.outputTokens - p.outputTokens) / sec,
        prefillTokPerSec: (c.prefillTokens - p.prefillTokens) / sec,
        hitRate: promptD > 0 ? (c.cachedTokens - p.cachedTokens) / promptD : 0,
        evictions: kc.evictedBlocks - p.ev,
        transfers: tr - p.tr,
        preemptions: c.preemptions - p.preemptions,
        finished: c.finished - p.finished,
      });
      Object.assign(p, c);
      p.ev = kc.evictedBlocks;
      p.tr = tr;
    }
  };

  // Main loop: arrivals come from the sorted request list (follow-up turns from the heap).
  const order = arrivalOrder(reqs, isFollowUp);
  let ai = 0;
  let nextSample = sampleUs;
  const ev = new Float64Array(4);
  for (;;) {
    const tArr = ai < order.length ? (reqs[order[ai] as number] as SimRequest).arrivalUs / rateScale : Number.POSITIVE_INFINITY;
    const tEv = q.peekTime();
    const t = Math.min(tArr, tEv);
    if (t === Number.POSITIVE_INFINITY && nDirty > 0) {
      startDirty(nowUs);
      continue;
    }
    if (t === Number.POSITIVE_INFINITY) {
      // Nothing scheduled: instances with work that cannot step are stalled.
      let stalled = false;
      for (const inst of instances) {
        if (!inst.hasWork()) continue;
        stalled = true;
        for (const r of [...inst.waiting, ...inst.running]) {
          inst.kv.release(r.blocks, nowUs);
          if (r.status === 'swapped') inst.kv.dropSwapped(r.blocksHeld);
          rejectState(r, 'unschedulable', nowUs);
        }
        inst.waiting.length = 0;
        inst.running.length = 0;
      }
      if (!stalled) break;
      continue;
    }
    // Every event at time `now` is applied before idle instances start their next step, so
    // simultaneous arrivals are batched together (as an engine loop picks up its whole queue).
    if (t > nowUs && nDirty > 0) {
      startDirty(nowUs);
      continue;
    }
    while (nextSample <= t) {
      sample(nextSample);
      nextSample += sampleUs;
    }
    nowUs = t;
    if (tArr <= tEv) {
      arrive(order[ai++] as number, t);
      continue;
    }
    q.pop(ev);
    const kind = ev[1] as number;
    const a = ev[2] as number;
    const b = ev[3] as number;
    if (kind === EV_STEP_END) {
      const inst = instances[a] as EngineInstance;
      inst.finishStep(t);
      markDirty(a);
    } else if (kind === EV_ENQUEUE) {
      const r = states[a] as RequestState;
      if (!r.kvTransferred) {
        inflightReqs[b] = (inflightReqs[b] as number) - 1;
        inflightTokens[b] = (inflightTokens[b] as number) - r.promptTokens;
      }
      const inst = instances[b] as EngineInstance;
      // As vLLM refuses a prompt longer than the KV cache can ever hold (max_model_len).
      if (Math.ceil((r.promptTokens + 1) / bs) > inst.kv.numBlocks) {
        r.instance = b;
        rejectState(r, 'exceeds-capacity', t);
        continue;
      }
      inst.enqueue(r, t);
      markDirty(b);
    } else if (kind === EV_SESSION_ARRIVAL) {
      arrive(a, t);
    }
  }
  sample(nextSample);
  if (o.onProgress !== undefined) o.onProgress({ done, total: n, simTimeUs: nowUs, events: q.pushed });

  const violations: string[] = [];
  for (const inst of instances) {
    const v = inst.kv.checkConservation();
    if (v !== undefined) violations.push(`${inst.id}: ${v}`);
    if (inst.kv.blocksInUse !== 0) violations.push(`${inst.id}: ${inst.kv.blocksInUse} blocks still used by requests at the end`);
  }
  return { states: collectStates(reqs, states, violations), instances, samples, endUs: nowUs, events: q.pushed + n, violations };
}
