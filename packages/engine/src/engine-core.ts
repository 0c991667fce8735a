/**
 * One continuous-batching engine step around the scheduler-IR pipeline, over a
 * {@link KvCacheManager}. Clock-free: the driver passes `nowUs` in and runs the step for the
 * `durationUs` it gets back (the simulator on its event clock, the engine server on the wall
 * clock). No timers, no I/O.
 *
 * @see vllm-project/vllm:vllm/v1/core/sched/scheduler.py (`schedule`, `update_from_output`)
 * @see vllm-project/vllm:vllm/v1/engine/core.py (`EngineCore.step`)
 */
import {
  type KvEvent,
  KvmgrError,
  type LifetimePredictor,
  type VictimCandidate,
  type VictimSelector,
  invalidArgument,
  requireNonNegativeInt,
  requireNonNegativeNumber,
  requirePositiveInt,
  requirePositiveNumber,
} from '@kvmgr/core';
import { createVictimSelector } from '@kvmgr/eviction';
import { PassManager, type PlanOp, type SchedAnalyses, type SchedRequest, type SchedState, createDefaultRegistry, predictedFootprintBlocks } from '@kvmgr/scheduler-ir';
import { EngineRequestState, hashString } from './engine-request.js';
import type {
  BlockQuota,
  BlockQuotaKind,
  EngineHooks,
  EngineMetrics,
  EngineRequest,
  FinishReason,
  KindBlockUsage,
  RequestFinishedStats,
  StepLatencyFn,
  StepShape,
  StepStart,
  TokenGenerator,
} from './engine-types.js';
import { BlockKeyLog } from './block-key-log.js';
import { KvCacheManager, type KvCacheManagerOptions } from './kv-cache-manager.js';

/** Options of {@link EngineCore}. */
export interface EngineCoreOptions {
  /** The KV cache manager, or options to build one. */
  readonly kv: KvCacheManager | KvCacheManagerOptions;
  /** Step time of a step shape, µs (e.g. the simulator's BLIS α/β model). */
  readonly stepTimeUs: StepLatencyFn;
  /** Scheduler-IR preset name (`vllm-default`, `kvmgr-default`, …) or pipeline text. @default 'vllm-default' */
  readonly scheduler?: string;
  /** Max tokens per step (`max_num_batched_tokens`), as the scheduler state's budget. @default 8192 */
  readonly tokenBudget?: number;
  /** Max running requests (`max_num_seqs`). @default 1024 */
  readonly maxSeqs?: number;
  /**
   * Victim selector (a `@kvmgr/eviction` registry name or an instance): used by the pipeline's
   * `memory-aware-preemption{victim=selector}` and when an allocation fails while applying a plan.
   * @default 'vllm' (the most recently admitted request first, by recompute)
   */
  readonly victimSelector?: string | VictimSelector;
  /** Output-length predictor for the pipeline's admission / lifetime passes. @default none */
  readonly predictor?: LifetimePredictor;
  /** Token ids of generated tokens (and of prompt filler for requests without ids). @default a hash of (seed, requestId, index) */
  readonly tokenGenerator?: TokenGenerator;
  /** Seed of the default token generator. @default 0 */
  readonly seed?: number;
  /** Vocabulary size of the default token generator; tokens are in `[0, vocabSize)`. @default 32000 */
  readonly vocabSize?: number;
  /** Waiting requests whose prefix match is refreshed for the planner each step. @default 128 */
  readonly matchLookahead?: number;
  /** Run scheduler-IR's verifier after every pass (slow; tests). @default false */
  readonly verifyPlans?: boolean;
  /** Callbacks. @default {} */
  readonly hooks?: EngineHooks;
  /**
   * Role for the scheduler pipeline (`SchedState.role`): a `prefill` instance of a P/D pair lets
   * the pipeline restrict itself to prefill work. @default 'both'
   */
  readonly role?: 'both' | 'prefill';
  /**
   * A CPU swap space for swap preemption (a plan's `preempt` with `mode: 'swap'`): the request's
   * KV moves to host memory and back, each transfer charged to the step that starts it (base
   * latency + bytes / bandwidth, as vLLM's swap). Without it, or when the space is full, a swap is
   * applied as recompute. @default none
   */
  readonly swap?: SwapSpaceOptions;
  /**
   * Count, per request, prompt tokens computed again because this engine evicted blocks it had
   * computed before (`RequestFinishedStats.evictionRecomputedTokens`, the simulator's re-prefill
   * after eviction): keeps a set of the block keys of keyed requests (`blockKeys`) ever cached
   * here, which grows with the distinct prefixes seen (a bitset of 8 MiB for keys < 2^26, a set
   * above). @default false
   */
  readonly trackEvictionRecompute?: boolean;
  /**
   * Collect the KV cache manager's events for `onKvEvents`. False = the manager builds no events
   * at all (a driver without a block index saves the work). @default true
   */
  readonly kvEvents?: boolean;
  /**
   * Collect the KV cache manager's GPU events in compact form ({@link BlockKeyLog}: kind, the
   * block key's two u32 words and the block's position per block) for `onKvBlockKeys`, delivered at the same points as
   * `onKvEvents`. For a driver that feeds its own index in-process: with `kvEvents: false` the
   * manager builds no bigint, event object or token ids. @default false
   */
  readonly kvBlockKeys?: boolean;
}

/** Options of the CPU swap space ({@link EngineCoreOptions.swap}). */
export interface SwapSpaceOptions {
  /** Host blocks for swapped-out requests (a positive integer). */
  readonly cpuBlocks: number;
  /** Bytes of one KV block (all layers), for transfer times (a positive number). */
  readonly bytesPerBlock: number;
  /** Host link bandwidth, bytes/s. @default 64e9 */
  readonly hostBytesPerSec?: number;
  /** Fixed latency of one transfer batch, µs. @default 50 */
  readonly transferBaseUs?: number;
}

function mix(a: number, b: number): number {
  let h = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const EMPTY_SHAPE: StepShape = { prefillTokens: 0, decodeTokens: 0, numSeqs: 0, prefillAttnPairs: 0, decodeContextTokens: 0 };

const NO_COUNTS: { readonly admitted: number; readonly rejected: number } = Object.freeze({ admitted: 0, rejected: 0 });

/**
 * A continuous-batching engine core: requests in, one step at a time, tokens and KV events out.
 *
 * Each step: `startStep(nowUs)` refreshes the prefix matches of the waiting queue, runs the
 * scheduler-IR pipeline on the current state and applies its plan through the
 * {@link KvCacheManager} (preempt, reject, admit with prefix cache hits, allocate; when an
 * allocation fails, running requests are preempted by recompute as vLLM does, chosen by the victim
 * selector — the newest first by default), and returns the step's duration from the injected
 * latency function; `finishStep(nowUs)` commits the step: prefill progress, one sampled token per
 * request that reached the end of its known tokens, full blocks cached, finished requests freed.
 *
 * @example
 * ```ts
 * const core = new EngineCore({ kv: { numBlocks: 4096 }, stepTimeUs: (s) => 6472 + 19.8 * s.prefillTokens + 304.4 * s.decodeTokens });
 * core.addRequest({ requestId: 'a', promptTokenIds: prompt, maxTokens: 64 }, 0);
 * let now = 0;
 * for (let step = core.startStep(now); step; step = core.startStep(now)) core.finishStep((now += step.durationUs));
 * ```
 * @see vllm-project/vllm:vllm/v1/core/sched/scheduler.py
 */
export class EngineCore {
  /** The KV cache manager. */
  readonly kv: KvCacheManager;
  /** Canonical text of the scheduler pipeline. */
  readonly pipeline: string;
  /** Callbacks; may be replaced at any time. */
  hooks: EngineHooks;

  private readonly pm: PassManager;
  private readonly stepTimeUs: StepLatencyFn;
  private readonly selector: VictimSelector;
  /** The caller's token generator; undefined = the default hash of (seed, request id, index). */
  private readonly generate: TokenGenerator | undefined;
  private readonly seed: number;
  private readonly vocabSize: number;
  private readonly lookahead: number;
  private readonly waiting: EngineRequestState[] = [];
  private readonly running: EngineRequestState[] = [];
  private readonly byId = new Map<string, EngineRequestState>();
  private readonly state: SchedState;
  private scheduled: EngineRequestState[] = [];
  private shape: StepShape = { ...EMPTY_SHAPE };
  private pendingEvents: KvEvent[] = [];
  /** Compact GPU events of the step (`kvBlockKeys`), null when off. */
  private readonly keyLog: BlockKeyLog | null;
  private busy = false;
  private stepStartUs = 0;
  private stepDurationUs = 0;
  private stepPreemptions = 0;
  private readonly swapCpuBlocks: number;
  private readonly swapBytesPerBlock: number;
  private readonly hostBytesPerSec: number;
  private readonly transferBaseUs: number;
  /** Host blocks held by swapped-out requests. */
  private swappedBlocks = 0;
  /** Transfer time charged to the step being planned, µs. */
  private pendingTransferUs = 0;
  private readonly swapCounters = { swappedOutBlocks: 0, swappedInBlocks: 0, transferUs: 0 };
  private readonly m = {
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    numPreemptions: 0,
    promptTokens: 0,
    generationTokens: 0,
    promptTokensCached: 0,
    steps: 0,
    plannedSteps: 0,
    busyUs: 0,
  };
  /** Block keys of keyed requests ever cached here (`trackEvictionRecompute`): a bitset below 2^26, a set above; null when off. */
  private readonly seenKeys: Uint8Array | null;
  private readonly seenBigKeys = new Set<number>();
  private readonly success: Record<FinishReason, number> = { stop: 0, length: 0, abort: 0, rejected: 0 };
  private readonly analyses: SchedAnalyses;
  /** Block quotas per kind (`setBlockQuota`); null = none. */
  private quota: BlockQuota | null = null;
  /** Blocks held by running embedding requests, refreshed at each step start and kept during it (quotas only). */
  private embedHeld = 0;
  /** Kinds whose admission a quota stopped in the step being planned (FCFS within a kind). */
  private quotaBlocked = { generate: false, embed: false };

  /**
   * @param options - see {@link EngineCoreOptions}.
   * @throws KvmgrError `KVMGR_BAD_PIPELINE` for a scheduler that does not parse or has no
   *   materialize pass;
   *   `KVMGR_INVALID_ARGUMENT` for bad budgets, seed, vocabulary, selector name or KV options.
   */
  constructor(options: EngineCoreOptions) {
    if (typeof options.stepTimeUs !== 'function') throw invalidArgument('stepTimeUs', options.stepTimeUs, 'a function (shape) => µs');
    this.kv = options.kv instanceof KvCacheManager ? options.kv : new KvCacheManager(options.kv);
    if (options.kvEvents ?? true) this.kv.onEvent = (e) => this.pendingEvents.push(e);
    if (options.kvBlockKeys === true) {
      const log = new BlockKeyLog();
      this.keyLog = log;
      this.kv.onBlockKey = (kind, hi, lo, position) => log.push(kind, hi, lo, position);
    } else this.keyLog = null;
    this.stepTimeUs = options.stepTimeUs;
    const sel = options.victimSelector ?? 'vllm';
    this.selector = typeof sel === 'string' ? createVictimSelector(sel) : sel;
    const analyses: SchedAnalyses =
      options.predictor === undefined ? { victimSelector: this.selector } : { victimSelector: this.selector, predictor: options.predictor };
    this.analyses = analyses;
    this.pm = new PassManager({
      pipeline: options.scheduler ?? 'vllm-default',
      registry: createDefaultRegistry(),
      analyses,
      verify: options.verifyPlans ?? false,
      requirePlan: true,
    });
    this.pipeline = this.pm.canonical;
    this.seed = options.seed ?? 0;
    if (!Number.isSafeInteger(this.seed)) throw invalidArgument('seed', this.seed, 'a safe integer');
    this.vocabSize = requirePositiveInt('vocabSize', options.vocabSize ?? 32000);
    this.generate = options.tokenGenerator;
    this.lookahead = requireNonNegativeInt('matchLookahead', options.matchLookahead ?? 128);
    this.hooks = options.hooks ?? {};
    const sw = options.swap;
    this.swapCpuBlocks = sw === undefined ? 0 : requirePositiveInt('swap.cpuBlocks', sw.cpuBlocks);
    this.swapBytesPerBlock = sw === undefined ? 0 : requirePositiveNumber('swap.bytesPerBlock', sw.bytesPerBlock);
    this.hostBytesPerSec = sw === undefined ? 64e9 : requirePositiveNumber('swap.hostBytesPerSec', sw.hostBytesPerSec ?? 64e9);
    this.transferBaseUs = sw === undefined ? 50 : requireNonNegativeNumber('swap.transferBaseUs', sw.transferBaseUs ?? 50);
    this.state = {
      nowUs: 0,
      waiting: this.waiting as SchedRequest[],
      running: this.running as SchedRequest[],
      kv: {
        blockSize: this.kv.blockSize,
        freeBlocks: { gpu: 0, cpu: 0, disk: 0 },
        totalBlocks: { gpu: this.kv.numBlocks, cpu: this.swapCpuBlocks, disk: 0 },
        evictablePrefixBlocks: 0,
      },
      budgets: {
        tokenBudget: requirePositiveInt('tokenBudget', options.tokenBudget ?? 8192),
        maxSeqs: requirePositiveInt('maxSeqs', options.maxSeqs ?? 1024),
      },
    };
    this.seenKeys = options.trackEvictionRecompute === true ? new Uint8Array(1 << 23) : null;
    const role = options.role ?? 'both';
    if (role !== 'both' && role !== 'prefill') throw invalidArgument('role', role, "'both' or 'prefill'");
    if (role === 'prefill') this.state.role = 'prefill';
  }

  /**
   * Splits the GPU blocks between request kinds: from the next allocation on, LLM (`generate`)
   * requests together hold at most `quota.generate` blocks and embedding requests at most
   * `quota.embed` (embedding blocks are counted per request, LLM blocks as the manager's held
   * blocks minus those). A kind at its quota admits no more of its requests (the other kind goes
   * on), and a running request that needs a block beyond its kind's quota preempts a running
   * request of the same kind (the victim selector's choice), as an allocation failure does. Held
   * blocks are never taken away: a driver lowering a quota keeps it ≥ the kind's
   * `blockUsage().heldBlocks` (kv-pool's `QuotaAllocator` with that as the consumer's minimum).
   * Admission counts a request's prefix hits as new blocks (an upper bound).
   *
   * @param quota - blocks per kind (non-negative integers), or null to lift the quotas.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a negative or fractional quota.
   */
  setBlockQuota(quota: BlockQuota | null): void {
    if (quota === null) {
      this.quota = null;
      return;
    }
    if (quota === undefined || typeof quota !== 'object') throw invalidArgument('quota', quota, 'an object { generate, embed } or null');
    const generate = requireNonNegativeInt('quota.generate', quota.generate);
    const embed = requireNonNegativeInt('quota.embed', quota.embed);
    this.quota = { generate, embed };
  }

  /** The block quotas in force, or null. */
  get blockQuota(): BlockQuota | null {
    return this.quota;
  }

  /**
   * Blocks held and waited for, per request kind (see {@link KindBlockUsage}); what a quota
   * allocator reports as demand. O(running + waiting).
   */
  blockUsage(): Readonly<Record<BlockQuotaKind, KindBlockUsage>> {
    const bs = this.kv.blockSize;
    let emb = 0;
    for (const r of this.running) if (r.embed) emb += r.blocksHeld;
    const w = { generate: { blocks: 0, n: 0, oldest: -1 }, embed: { blocks: 0, n: 0, oldest: -1 } };
    for (const r of this.waiting) {
      const k = r.embed ? w.embed : w.generate;
      k.blocks += Math.ceil(r.numTokens / bs);
      k.n++;
      if (k.oldest < 0 || r.arrivalUs < k.oldest) k.oldest = r.arrivalUs;
    }
    return {
      generate: { heldBlocks: this.kv.numHeldBlocks - emb, waitingBlocks: w.generate.blocks, waiting: w.generate.n, oldestWaitingArrivalUs: w.generate.oldest },
      embed: { heldBlocks: emb, waitingBlocks: w.embed.blocks, waiting: w.embed.n, oldestWaitingArrivalUs: w.embed.oldest },
    };
  }

  /** True when `r` taking `newBlocks` more blocks would put its kind over its quota. */
  private overQuota(r: EngineRequestState, newBlocks: number): boolean {
    const q = this.quota;
    if (q === null || newBlocks <= 0) return false;
    return r.embed ? this.embedHeld + newBlocks > q.embed : this.kv.numHeldBlocks - this.embedHeld + newBlocks > q.generate;
  }

  /** Records the blocks `r` holds now (peak; embedding blocks for the quotas). */
  private held(r: EngineRequestState, blocks: number): void {
    if (r.embed) this.embedHeld += blocks - r.blocksHeld;
    r.blocksHeld = blocks;
    if (blocks > r.peakBlocks) r.peakBlocks = blocks;
  }

  /**
   * Prompt tokens still to compute here, a router signal: waiting requests (all their pending
   * tokens; remote-KV requests none) plus the unfinished prompts of running ones. Long queues are
   * sampled: the first 256 waiting requests, scaled to the queue length. O(256 + running).
   */
  prefillBacklog(): number {
    let t = 0;
    const w = this.waiting;
    const nw = Math.min(w.length, 256);
    for (let i = 0; i < nw; i++) {
      const r = w[i] as EngineRequestState;
      if (!r.remote) t += r.numTokens - r.computedTokens;
    }
    if (w.length > nw) t *= w.length / nw;
    for (const r of this.running) if (r.computedTokens < r.promptTokens) t += r.promptTokens - r.computedTokens;
    return t;
  }

  /** Requests waiting (`vllm:num_requests_waiting`), preempted ones included. */
  get numWaiting(): number {
    return this.waiting.length;
  }

  /** Requests running (`vllm:num_requests_running`). */
  get numRunning(): number {
    return this.running.length;
  }

  /** True between `startStep` (non-null) and `finishStep`. */
  get isBusy(): boolean {
    return this.busy;
  }

  /** True when a request is waiting or running. */
  hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /** Counters and gauges named after vLLM's metrics. */
  get metrics(): EngineMetrics {
    const s = this.kv.stats;
    return {
      numRequestsRunning: this.running.length,
      numRequestsWaiting: this.waiting.length,
      kvCacheUsagePerc: this.kv.usage,
      prefixCacheQueries: s.queries,
      prefixCacheHits: s.hits,
      numPreemptions: this.m.numPreemptions,
      promptTokens: this.m.promptTokens,
      generationTokens: this.m.generationTokens,
      promptTokensCached: this.m.promptTokensCached,
      requestSuccess: { ...this.success },
      steps: this.m.steps,
      plannedSteps: this.m.plannedSteps,
      busyUs: this.m.busyUs,
      swappedOutBlocks: this.swapCounters.swappedOutBlocks,
      swappedInBlocks: this.swapCounters.swappedInBlocks,
      swapBlocksUsed: this.swappedBlocks,
      transferUs: this.swapCounters.transferUs,
      cpuPrefixCacheHits: s.cpuHits,
      offloadedBlocks: s.offloadedBlocks,
      reloadedBlocks: s.reloadedBlocks,
    };
  }

  /**
   * Adds a request to the waiting queue (FCFS by `request.arrivalUs`, default `nowUs`). A request
   * of `kind: 'embed'` (pooling) is prefilled like any other and finishes with reason `stop` when
   * its prompt is computed, without sampling a token (`firstTokenUs` = finish); its `maxTokens`
   * may be 0.
   *
   * @param request - see {@link EngineRequest}.
   * @param nowUs - time it reaches the engine, µs.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a duplicate id, a bad `maxTokens`, `kind` or
   *   `arrivalUs` (after `nowUs`), a bad block key, or a prompt without tokens;
   *   `KVMGR_INVALID_STATE` never (requests may arrive during a step).
   */
  addRequest(request: EngineRequest, nowUs: number): void {
    if (typeof request?.requestId !== 'string') throw invalidArgument('request.requestId', request?.requestId, 'a string');
    if (this.byId.has(request.requestId)) throw invalidArgument('request.requestId', request.requestId, 'an id not already in the engine');
    const embed = request.kind === 'embed';
    if (request.kind !== undefined && !embed && request.kind !== 'generate') throw invalidArgument('request.kind', request.kind, "'generate' or 'embed'");
    if (embed) requireNonNegativeInt('request.maxTokens', request.maxTokens);
    else requirePositiveInt('request.maxTokens', request.maxTokens);
    if (!Number.isFinite(nowUs)) throw invalidArgument('nowUs', nowUs, 'a finite number of µs');
    if (request.arrivalUs !== undefined && !(Number.isFinite(request.arrivalUs) && request.arrivalUs <= nowUs)) {
      throw invalidArgument('request.arrivalUs', request.arrivalUs, `a finite number of µs ≤ nowUs (${nowUs})`);
    }
    let r: EngineRequestState;
    if (request.promptTokenIds === undefined && request.blockKeys !== undefined) {
      // Keyed (trace) request: blocks are keyed by the trace keys, no token is materialized.
      const n = requireNonNegativeInt('request.promptTokens', request.promptTokens);
      if (n === 0) throw invalidArgument('request.promptTokens', 0, 'at least 1 prompt token');
      const bs = this.kv.blockSize;
      const keys = request.blockKeys;
      // keys past the prompt name the blocks the output fills (cached under them too)
      const full = Math.min(keys.length, Math.floor((n + request.maxTokens) / bs));
      r = new EngineRequestState(request, [], nowUs, n, full === keys.length ? keys : Array.prototype.slice.call(keys, 0, full));
    } else {
      const tokens = this.promptOf(request);
      if (tokens.length === 0) throw invalidArgument('request.promptTokens', 0, 'at least 1 prompt token');
      r = new EngineRequestState(request, tokens, nowUs);
    }
    if (request.remoteKv !== undefined) this.takeRemoteKv(r, request.remoteKv);
    this.byId.set(r.id, r);
    this.waiting.push(r);
    // arriving during a step: it cannot be admitted before the next one, so its CPU-held prefix
    // may load meanwhile (an idle engine plans at once: startStep prefetches what stays queued)
    if (this.busy && this.kv.prefetchEnabled && this.waiting.length <= this.lookahead && r.status === 'waiting') this.kv.prefetch(r, nowUs);
  }

  /**
   * Hot-spot prefetch: the CPU-tier continuations of the first `matchLookahead` waiting requests'
   * prefix hits start loading now, in queue order (what the scheduler admits next), each bounded
   * by `KvCacheManager.prefetch` (allocatable blocks, CPU link backlog).
   */
  private prefetchWaiting(nowUs: number): void {
    const n = Math.min(this.waiting.length, this.lookahead);
    for (let i = 0; i < n; i++) {
      const r = this.waiting[i] as EngineRequestState;
      if (r.computedTokens === 0 && r.status !== 'swapped' && this.kv.getNumBlocks(r.id) === 0) this.kv.prefetch(r, nowUs);
    }
  }

  /** P/D decode leg: the request arrives with KV computed elsewhere and output tokens sampled there. */
  private takeRemoteKv(r: EngineRequestState, kv: NonNullable<EngineRequest['remoteKv']>): void {
    const out = kv.outputTokenIds ?? [];
    if (!Array.isArray(out) || out.some((t) => !Number.isInteger(t))) throw invalidArgument('request.remoteKv.outputTokenIds', out, 'an array of integer token ids');
    if (out.length >= r.targetOutputTokens) throw invalidArgument('request.remoteKv.outputTokenIds.length', out.length, `< the request's output tokens (${r.targetOutputTokens})`);
    const total = r.promptTokens + out.length;
    const c = kv.computedTokens;
    if (!(Number.isSafeInteger(c) && c >= 1 && c < total)) throw invalidArgument('request.remoteKv.computedTokens', c, `an integer in [1, ${total - 1}] (prompt + remote output tokens, the last one not computed)`);
    if (r.blockKeys === undefined) for (const t of out) r.tokenIds.push(t);
    r.generatedTokens = out.length;
    r.computedTokens = c;
    r.status = 'swapped';
    r.remote = true;
    r.blocksHeld = Math.ceil(c / this.kv.blockSize);
  }

  private promptOf(request: EngineRequest): number[] {
    if (request.promptTokenIds !== undefined) return Array.from(request.promptTokenIds);
    const n = requireNonNegativeInt('request.promptTokens', request.promptTokens);
    const out = new Array<number>(n);
    const gen = this.generate;
    const h = hashString(request.requestId) ^ (this.seed | 0);
    for (let t = 0; t < n; t++) out[t] = gen === undefined ? mix(h, -1 - t) % this.vocabSize : gen(request.requestId, -1 - t);
    return out;
  }

  /**
   * Aborts a request wherever it is: its blocks are freed at once (work scheduled for it in the
   * running step is dropped) and `onFinished` reports reason `abort`.
   *
   * @param requestId - the id given to {@link addRequest}.
   * @param nowUs - time of the abort, µs. @default the start of the running step, else 0
   * @returns false when the id is unknown (finished already, or never added).
   */
  abort(requestId: string, nowUs: number = this.stepStartUs): boolean {
    const r = this.byId.get(requestId);
    if (r === undefined) return false;
    const q = r.status === 'running' ? this.running : this.waiting;
    const i = q.indexOf(r);
    if (i >= 0) q.splice(i, 1);
    r.inflight = 0;
    this.finish(r, 'abort', nowUs);
    this.flushEvents();
    return true;
  }

  /**
   * Drops the prefix cache (vLLM `reset_prefix_cache`); refused while requests hold blocks.
   * @returns true when reset (an `AllBlocksCleared` event is delivered at once).
   */
  resetPrefixCache(): boolean {
    const ok = this.kv.resetPrefixCache();
    this.flushEvents();
    return ok;
  }

  /**
   * Plans and starts one step at `nowUs`.
   *
   * @param nowUs - current time, µs (non-decreasing across calls; the core does not check).
   * @returns the step's duration, shape and plan summary; null when there is nothing to run
   *   (idle, or no waiting request fits yet).
   * @throws KvmgrError `KVMGR_INVALID_STATE` while a step is running; `KVMGR_INVALID_ARGUMENT`
   *   when the latency function returns a negative or non-finite time; `KVMGR_PASS_FAILED` /
   *   `KVMGR_VERIFY_FAILED` from the scheduler pipeline.
   */
  startStep(nowUs: number): StepStart | null {
    if (this.busy) throw new KvmgrError('KVMGR_INVALID_STATE', 'startStep called while a step is running; call finishStep first');
    if (!Number.isFinite(nowUs)) throw invalidArgument('nowUs', nowUs, 'a finite number of µs');
    this.stepStartUs = nowUs;
    this.scheduled = [];
    this.shape = { ...EMPTY_SHAPE };
    this.stepPreemptions = 0;
    this.pendingTransferUs = 0;
    this.kv.nowUs = nowUs;
    if (!this.hasWork()) return null;
    if (this.quota !== null) {
      let emb = 0;
      for (const r of this.running) if (r.embed) emb += r.blocksHeld;
      this.embedHeld = emb;
      this.quotaBlocked.generate = false;
      this.quotaBlocked.embed = false;
    }
    let counts = NO_COUNTS;
    if (this.pureDecode()) {
      // Every running request decodes one token and each has a free block for it: the plan of
      // every pipeline is "decode all, in running order"; skip planning (most steps of a run).
      const preempted: EngineRequestState[] = [];
      for (const r of [...this.running]) if (r.status === 'running') this.scheduleRunning(r, 1, nowUs, preempted);
      if (preempted.length > 0) this.waiting.unshift(...preempted);
    } else {
      this.refreshMatches();
      this.m.plannedSteps++;
      const st = this.state;
      st.nowUs = nowUs;
      st.kv.freeBlocks.gpu = this.kv.numFreeBlocks;
      st.kv.freeBlocks.cpu = this.swapCpuBlocks - this.swappedBlocks;
      const plan = this.pm.run(st);
      counts = this.applyPlan(plan.ops, nowUs);
      // CPU-tier reloads of the admitted hits: the step waits until the last one lands
      this.pendingTransferUs += this.kv.takeReloadUs();
      // requests still queued: their CPU-held prefixes load during this step (not charged to it)
      if (this.kv.prefetchEnabled) this.prefetchWaiting(nowUs);
    }
    if (this.scheduled.length === 0) {
      this.flushEvents();
      return null;
    }
    this.shape.numSeqs = this.scheduled.length;
    const shape: StepShape = { ...this.shape };
    const compute = this.stepTimeUs(shape);
    if (!(Number.isFinite(compute) && compute >= 0)) throw invalidArgument('stepTimeUs(shape)', compute, 'a finite non-negative number of µs');
    const dur = compute + this.pendingTransferUs;
    this.swapCounters.transferUs += this.pendingTransferUs;
    this.busy = true;
    this.stepDurationUs = dur;
    return {
      durationUs: dur,
      transferUs: this.pendingTransferUs,
      shape,
      plan: {
        scheduledTokens: shape.prefillTokens + shape.decodeTokens,
        prefillTokens: shape.prefillTokens,
        decodeTokens: shape.decodeTokens,
        numSeqs: shape.numSeqs,
        admitted: counts.admitted,
        preempted: this.stepPreemptions,
        rejected: counts.rejected,
        pipeline: this.pipeline,
      },
    };
  }

  /** No request waits, each running one decodes exactly one token, and blocks and budget suffice for all. */
  private pureDecode(): boolean {
    const run = this.running;
    if (this.waiting.length > 0 || run.length > this.state.budgets.tokenBudget || run.length > this.state.budgets.maxSeqs || this.kv.numFreeBlocks < run.length) return false;
    for (const r of run) if (r.computedTokens < r.promptTokens || r.numTokens - r.computedTokens !== 1) return false;
    return true;
  }

  private refreshMatches(): void {
    const n = Math.min(this.waiting.length, this.lookahead);
    for (let i = 0; i < n; i++) {
      const r = this.waiting[i] as EngineRequestState;
      r.cachedPrefixTokens = r.computedTokens === 0 ? this.kv.prefixHitTokens(r) : 0;
    }
  }

  private applyPlan(ops: readonly PlanOp[], nowUs: number): { admitted: number; rejected: number } {
    const admitted: EngineRequestState[] = [];
    const preempted: EngineRequestState[] = [];
    let rejected = 0;
    let admissionBlocked = false;
    for (const op of ops) {
      if (op.op === 'preempt') {
        const r = this.byId.get(op.requestId);
        if (r !== undefined && r.status === 'running' && r.inflight === 0) {
          if (op.mode === 'swap' && this.swapCpuBlocks - this.swappedBlocks >= this.kv.getNumBlocks(r.id)) this.swapOut(r);
          else this.preempt(r);
          preempted.push(r);
        }
      } else if (op.op === 'reject') {
        const r = this.byId.get(op.requestId);
        if (r === undefined || r.status === 'running') continue;
        const i = this.waiting.indexOf(r);
        if (i >= 0) this.waiting.splice(i, 1);
        this.finish(r, 'rejected', nowUs, op.reason);
        rejected++;
      } else if (op.op === 'prefill' || op.op === 'decode') {
        const r = this.byId.get(op.requestId);
        if (r === undefined || r.inflight > 0) continue;
        if (r.status === 'running') {
          this.scheduleRunning(r, op.tokens, nowUs, preempted);
        } else if (!admissionBlocked && !(this.quota !== null && this.quotaBlocked[r.embed ? 'embed' : 'generate']) && this.running.length + admitted.length < this.state.budgets.maxSeqs) {
          // its prefix is still being prefetched: it waits for the load, the others go on
          if (this.kv.prefetchEnabled && this.prefetchLoading(r, nowUs)) continue;
          if (this.admit(r, op.tokens, nowUs)) admitted.push(r);
          // vLLM stops admitting at the first request that does not fit; a kind at its quota stops only its own kind
          else if (!(this.quota !== null && this.quotaBlocked[r.embed ? 'embed' : 'generate'])) admissionBlocked = true;
        }
      }
      // admit (taken with its prefill/decode op), defer, evict-prefix (eviction is lazy, at
      // allocation), offload/reload (the KV cache manager's CPU tier offloads on eviction and
      // reloads at admission): nothing to do
    }
    if (admitted.length > 0) {
      const gone = new Set(admitted);
      let j = 0;
      for (const r of this.waiting) if (!gone.has(r)) this.waiting[j++] = r;
      this.waiting.length = j;
      for (const r of admitted) this.running.push(r);
    }
    // a victim the same plan admitted again (an op later in the plan) runs: it is not requeued
    if (preempted.length > 0) this.waiting.unshift(...preempted.filter((r) => r.status !== 'running'));
    return { admitted: admitted.length, rejected };
  }

  /** True when blocks of the request's prefix hit are prefetched blocks that have not landed by `nowUs`. */
  private prefetchLoading(r: EngineRequestState, nowUs: number): boolean {
    if (r.status === 'swapped' || r.computedTokens > 0) return false;
    return this.kv.prefetchLandsAtUs(this.kv.getComputedBlocks(r, { recordStats: false })) > nowUs;
  }

  /** Schedules `tokens` more tokens of a running request, preempting others when blocks run out. */
  private scheduleRunning(r: EngineRequestState, tokens: number, nowUs: number, preempted: EngineRequestState[]): void {
    const n = Math.max(1, Math.min(tokens, r.numTokens - r.computedTokens));
    for (;;) {
      const over = this.overQuota(r, Math.ceil((r.computedTokens + n) / this.kv.blockSize) - r.blocksHeld);
      if (!over && this.kv.allocateSlots(r, n) !== null) break;
      // over its kind's quota: a victim of the same kind gives the blocks back
      const v = this.pickVictim(r, n, nowUs, over);
      this.preempt(v);
      preempted.push(v);
      if (v === r) return;
    }
    this.held(r, this.kv.getNumBlocks(r.id));
    this.addWork(r, n);
  }

  /** vLLM preempts the newest running request (`self.running.pop()`); here the victim selector picks among those not scheduled yet this step, else `self`. */
  private pickVictim(self: EngineRequestState, n: number, nowUs: number, sameKind = false): EngineRequestState {
    const cands: VictimCandidate[] = [];
    const idx: EngineRequestState[] = [];
    for (const r of this.running) {
      if (r === self || r.inflight > 0 || (sameKind && r.embed !== self.embed)) continue;
      idx.push(r);
      cands.push({
        requestId: r.id,
        blocks: r.blocksHeld,
        promptTokens: r.promptTokens,
        computedTokens: r.computedTokens,
        generatedTokens: r.generatedTokens,
        remainingTokens: Math.max(0, r.targetOutputTokens - r.generatedTokens),
        admittedUs: r.admittedUs,
        priority: r.priority,
      });
    }
    if (cands.length === 0) return self;
    const need = Math.max(1, Math.ceil((self.computedTokens + n) / this.kv.blockSize) - self.blocksHeld - this.kv.numFreeBlocks);
    const first = this.selector.selectVictims(cands, need, nowUs).victims[0];
    const k = first === undefined ? -1 : cands.findIndex((c) => c.requestId === first.requestId);
    return k < 0 ? self : (idx[k] as EngineRequestState);
  }

  /** Transfer time of `blocks` blocks over the host link, µs (base + bytes / bandwidth). */
  private transferTimeUs(blocks: number): number {
    return blocks <= 0 ? 0 : this.transferBaseUs + ((blocks * this.swapBytesPerBlock) / this.hostBytesPerSec) * 1e6;
  }

  /** Swap preemption: the request's KV moves to the swap space (its GPU blocks are freed, progress kept); the caller requeues it. */
  private swapOut(r: EngineRequestState): void {
    const n = this.kv.getNumBlocks(r.id);
    this.kv.free(r);
    if (r.embed) this.embedHeld -= r.blocksHeld;
    const i = this.running.indexOf(r);
    if (i >= 0) this.running.splice(i, 1);
    r.status = 'swapped';
    r.blocksHeld = n;
    r.swappedBlocks = n;
    r.cachedPrefixTokens = 0;
    r.inflight = 0;
    r.preemptions++;
    this.swappedBlocks += n;
    this.swapCounters.swappedOutBlocks += n;
    this.pendingTransferUs += this.transferTimeUs(n);
    this.m.numPreemptions++;
    this.stepPreemptions++;
  }

  /**
   * Re-admits a swapped request (or a P/D decode leg with remote KV): GPU blocks for its KV plus
   * this step's tokens, a swap-in charged to the step; false (nothing changed) when blocks are short.
   */
  private swapIn(r: EngineRequestState, tokens: number, nowUs: number): boolean {
    const n = Math.max(1, Math.min(tokens, r.numTokens - r.computedTokens));
    if (this.overQuota(r, Math.ceil((r.computedTokens + n) / this.kv.blockSize))) {
      this.quotaBlocked[r.embed ? 'embed' : 'generate'] = true;
      return false;
    }
    if (this.kv.allocateSlots(r, n) === null) return false;
    if (r.remote) r.remote = false; // its KV came over the P/D link, charged by the driver
    else {
      const k = r.swappedBlocks;
      this.swappedBlocks -= k;
      this.swapCounters.swappedInBlocks += k;
      this.pendingTransferUs += this.transferTimeUs(k);
      r.swappedBlocks = 0;
    }
    r.recache = true; // its swapped-in full blocks are cached again at the end of the step
    r.blocksHeld = 0;
    this.held(r, this.kv.getNumBlocks(r.id));
    r.status = 'running';
    r.admittedUs = nowUs;
    if (r.firstScheduledUs < 0) {
      r.firstScheduledUs = nowUs;
      r.predictedBlocks = predictedFootprintBlocks(r, this.kv.blockSize, this.analyses);
    }
    this.addWork(r, n);
    return true;
  }

  /** Recompute preemption: frees the request's blocks and resets its progress; the caller puts it back in the waiting queue. */
  private preempt(r: EngineRequestState): void {
    this.kv.free(r);
    if (r.embed) this.embedHeld -= r.blocksHeld;
    const i = this.running.indexOf(r);
    if (i >= 0) this.running.splice(i, 1);
    r.status = 'preempted';
    r.computedTokens = 0;
    r.cachedPrefixTokens = 0;
    r.blocksHeld = 0;
    r.inflight = 0;
    r.preemptions++;
    this.m.numPreemptions++;
    this.stepPreemptions++;
  }

  /** Admits a waiting request with its prefix cache hit; false (nothing changed) when blocks are short. */
  private admit(r: EngineRequestState, tokens: number, nowUs: number): boolean {
    if (r.status === 'swapped') return this.swapIn(r, tokens, nowUs);
    const hit = this.kv.getComputedBlocks(r);
    const start = hit.numComputedTokens;
    const n = Math.max(1, Math.min(tokens, r.numTokens - start));
    if (this.overQuota(r, Math.ceil((start + n) / this.kv.blockSize))) {
      this.quotaBlocked[r.embed ? 'embed' : 'generate'] = true;
      return false;
    }
    const fresh = this.kv.allocateSlots(r, n, start, hit);
    if (fresh === null) return false;
    r.computedTokens = start;
    r.blocksHeld = 0;
    this.held(r, hit.blocks.length + fresh.length);
    r.status = 'running';
    r.admittedUs = nowUs;
    if (r.firstScheduledUs < 0) {
      r.firstScheduledUs = nowUs;
      r.cachedPromptTokens = Math.min(start, r.promptTokens);
      r.predictedBlocks = predictedFootprintBlocks(r, this.kv.blockSize, this.analyses);
    }
    this.addWork(r, n);
    return true;
  }

  private addWork(r: EngineRequestState, n: number): void {
    r.inflight = n;
    const s = this.shape;
    if (n === 1 && r.computedTokens >= r.promptTokens && r.numTokens - r.computedTokens === 1) {
      s.decodeTokens++;
      s.decodeContextTokens += r.computedTokens + 1;
    } else {
      s.prefillTokens += n;
      s.prefillAttnPairs += n * (r.computedTokens + n / 2);
      r.prefillComputed += n;
      if (r.computedTokens < r.maxComputed) r.recomputedTokens += Math.min(n, r.maxComputed - r.computedTokens);
    }
    this.scheduled.push(r);
  }

  /**
   * Ends the running step at `nowUs`: commits prefill progress, samples one token for each
   * request that computed all its known tokens, caches full blocks, frees finished requests, and
   * calls the hooks (`onToken`, `onFinished`, `onKvEvents`, `onStepStats`).
   *
   * @param nowUs - end of the step, µs (normally `startUs + durationUs`).
   * @throws KvmgrError `KVMGR_INVALID_STATE` when no step is running.
   */
  finishStep(nowUs: number): void {
    if (!this.busy) throw new KvmgrError('KVMGR_INVALID_STATE', 'finishStep called with no step running; call startStep first');
    this.busy = false;
    this.m.steps++;
    this.m.busyUs += this.stepDurationUs;
    let generated = 0;
    let finished = 0;
    const bs = this.kv.blockSize;
    const done: EngineRequestState[] = [];
    for (const r of this.scheduled) {
      if (r.inflight === 0) continue; // aborted or preempted during the step
      const before = r.computedTokens;
      const maxBefore = r.maxComputed;
      r.computedTokens += r.inflight;
      r.inflight = 0;
      if (r.computedTokens > r.maxComputed) r.maxComputed = r.computedTokens;
      // a block became full: cache it (decode steps that stay inside a block have nothing to cache)
      if (r.recache || Math.floor(r.computedTokens / bs) > Math.floor(before / bs)) {
        r.recache = false;
        const stored = this.kv.cacheFullBlocks(r, r.computedTokens);
        r.blocksHeld = this.kv.getNumBlocks(r.id);
        if (stored > 0 && this.seenKeys !== null && r.blockKeys !== undefined) this.countEvictionRecompute(r, stored, before, maxBefore);
      }
      if (r.computedTokens < r.numTokens) continue;
      if (r.embed) {
        // embedding (pooling) request: done when its prompt is; no token is sampled
        r.firstTokenUs = nowUs;
        this.m.promptTokens += r.promptTokens;
        this.m.promptTokensCached += Math.max(0, r.cachedPromptTokens);
        done.push(r);
        this.finish(r, 'stop', nowUs);
        finished++;
        continue;
      }
      const tok = this.generate === undefined ? mix(r.idHash ^ (this.seed | 0), r.generatedTokens) % this.vocabSize : this.generate(r.id, r.generatedTokens);
      if (r.blockKeys === undefined) r.tokenIds.push(tok);
      r.generatedTokens++;
      generated++;
      this.m.generationTokens++;
      if (r.generatedTokens === 1) {
        r.firstTokenUs = nowUs;
        this.m.promptTokens += r.promptTokens;
        this.m.promptTokensCached += Math.max(0, r.cachedPromptTokens);
      }
      this.hooks.onToken?.(r.id, tok, nowUs);
      const reason: FinishReason | undefined = r.stopTokenIds?.has(tok) ? 'stop' : r.generatedTokens >= r.targetOutputTokens ? 'length' : undefined;
      if (reason !== undefined) {
        done.push(r);
        this.finish(r, reason, nowUs);
        finished++;
      }
    }
    if (done.length > 0) {
      const gone = new Set(done);
      let j = 0;
      for (const r of this.running) if (!gone.has(r)) this.running[j++] = r;
      this.running.length = j;
    }
    this.scheduled = [];
    this.flushEvents();
    let runningComputed = 0;
    let runningBlocks = 0;
    for (const r of this.running) {
      runningComputed += r.computedTokens;
      runningBlocks += r.blocksHeld;
    }
    this.hooks.onStepStats?.({
      nowUs,
      durationUs: this.stepDurationUs,
      shape: this.shape,
      numRequestsRunning: this.running.length,
      numRequestsWaiting: this.waiting.length,
      kvCacheUsagePerc: this.kv.usage,
      runningComputedTokens: runningComputed,
      runningBlocks,
      generatedTokens: generated,
      finishedRequests: finished,
      preemptions: this.stepPreemptions,
    });
  }

  /**
   * The `stored` blocks a keyed request just cached (the last ones of its full blocks): those
   * computed this step (not received by swap-in or remote KV) whose key was cached here before
   * count as recomputed after an eviction, unless they are a recompute after the request's own
   * preemption (below `maxBefore`, counted in `recomputedTokens`). Then their keys are marked.
   */
  private countEvictionRecompute(r: EngineRequestState, stored: number, before: number, maxBefore: number): void {
    const seen = this.seenKeys as Uint8Array;
    const keys = r.blockKeys as ArrayLike<number>;
    const bs = this.kv.blockSize;
    const n = Math.min(Math.floor(r.computedTokens / bs), keys.length);
    for (let b = n - stored; b < n; b++) {
      if ((b + 1) * bs <= before) continue;
      const key = keys[b] as number;
      let was: boolean;
      if (key >= 0 && key < 1 << 26) {
        const m = 1 << (key & 7);
        was = ((seen[key >>> 3] as number) & m) !== 0;
        seen[key >>> 3] = (seen[key >>> 3] as number) | m;
      } else {
        was = this.seenBigKeys.has(key);
        this.seenBigKeys.add(key);
      }
      if (was && (b + 1) * bs > maxBefore) r.evictionRecomputedTokens += bs;
    }
  }

  /** Frees the request, forgets it and reports it; the caller took it out of its queue. */
  private finish(r: EngineRequestState, reason: FinishReason, nowUs: number, rejectedReason?: string): void {
    this.kv.free(r);
    this.swappedBlocks -= r.swappedBlocks;
    r.swappedBlocks = 0;
    r.blocksHeld = 0;
    this.byId.delete(r.id);
    this.success[reason]++;
    const stats: RequestFinishedStats = {
      requestId: r.id,
      finishReason: reason,
      arrivalUs: r.arrivalUs,
      firstScheduledUs: r.firstScheduledUs,
      firstTokenUs: r.firstTokenUs,
      finishUs: nowUs,
      ttftUs: r.firstTokenUs < 0 ? -1 : r.firstTokenUs - r.arrivalUs,
      e2eUs: nowUs - r.arrivalUs,
      queueUs: r.firstScheduledUs < 0 ? -1 : r.firstScheduledUs - r.arrivalUs,
      promptTokens: r.promptTokens,
      outputTokens: r.generatedTokens,
      cachedPromptTokens: Math.max(0, r.cachedPromptTokens),
      preemptions: r.preemptions,
      prefillComputedTokens: r.prefillComputed,
      recomputedTokens: r.recomputedTokens,
      evictionRecomputedTokens: r.evictionRecomputedTokens,
      peakBlocks: r.peakBlocks,
      predictedBlocks: r.predictedBlocks,
      ...(rejectedReason === undefined ? {} : { rejectedReason }),
    };
    this.hooks.onFinished?.(r.request, stats);
  }

  private flushEvents(): void {
    const log = this.keyLog;
    if (log !== null && log.length > 0) {
      this.hooks.onKvBlockKeys?.(log);
      log.clear();
    }
    if (this.pendingEvents.length === 0) return;
    const events = this.pendingEvents;
    this.pendingEvents = [];
    this.hooks.onKvEvents?.(events);
  }
}
