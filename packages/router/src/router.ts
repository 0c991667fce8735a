/**
 * The router: filters → weighted scorers → picker for one instance, and the P/D decider / SLO
 * pair optimizer for (prefill, decode). Every decision is counted; (prediction, actual) pairs
 * are kept for the chosen targets.
 *
 * @see llm-d/llm-d-inference-scheduler (filters, scorers, pickers, pd-profile-handler)
 * @see ai-dynamo/dynamo: lib/llm/src/kv_router (KV-aware routing with two key spaces)
 */
import type { EngineSnapshot, InstanceRole, Rng } from '@kvmgr/core';
import { KvmgrError, createRng, invalidArgument, transferTimeUs } from '@kvmgr/core';
import { type RouterConfig, type ResolvedRouterConfig, parseRouterConfig, resolveRouterConfig } from './config.js';
import { type LocalKeys, localKeysFromBlockIds, localKeysFromTokens, namespaceRoot } from './hash64.js';
import { type BlockIndex, KvBlockIndex, type PrefixMatch, createPrefixMatch } from './kv-block-index.js';
import { HeuristicPredictor, type LatencyPredictor, type PrefillInput } from './predictors.js';
import { type Scorer, type ScoringContext, createScorer } from './scorers.js';
import { type DecodeCandidate, type PrefillCandidate, selectSloPair } from './slo-pair.js';
import type { PairEvaluation, PdDecision, PdReason, RouteDecision, RouteReason, RouteRequest } from './types.js';

/** Counters of a router. */
export interface RouterStats {
  /** Instance decisions made (`route`, and each side picked by `routePd`). */
  decisions: number;
  /** Decisions by outcome (`scored`, `scored-tie`, `prefix-gate`, `round-robin`, …). */
  readonly selectionsByReason: Record<string, number>;
  /** Calls to the latency predictor, and the ones that threw or returned a non-finite value. */
  predictorCalls: number;
  predictorFailures: number;
  /** (prefill, decode) pairs evaluated by the SLO pair optimizer. */
  pairsEvaluated: number;
  /** P/D decisions by reason. */
  readonly pdDecisionsByReason: Record<string, number>;
  /** Speculative block entries written. */
  speculativeBlocks: number;
}

/** A prediction for the chosen target and, once reported, the actual values. Times in ms. */
export interface PredictionRecord {
  readonly requestId: string;
  readonly instanceId: string;
  readonly predictedTtftMs: number;
  readonly predictedTpotMs: number;
  actualTtftMs?: number;
  actualTpotMs?: number;
}

/** Injected parts of a router. */
export interface RouterDeps {
  /** The cluster block index (shared with whoever feeds it KV events). @default a new KvBlockIndex */
  readonly index?: BlockIndex;
  /** Latency predictor; failures fall back to the heuristic. @default new HeuristicPredictor() */
  readonly predictor?: LatencyPredictor;
}

const MAX_PENDING_PREDICTIONS = 65536;
const MAX_RECORDS = 65536;

/** Clamps to [0, 1]; NaN (a broken scorer) counts as 0. */
function clamp01(v: number): number {
  if (!(v > 0)) return 0;
  return Math.min(v, 1);
}

function allowPlain(role: InstanceRole, embed: boolean): boolean {
  return embed ? role === 'embedding' || role === 'both' : role !== 'embedding';
}

/**
 * A cluster router. Build it with {@link createRouter}.
 */
export class Router {
  /** The resolved configuration. */
  readonly config: ResolvedRouterConfig;
  /** The precise block index (feed it `KvEvent`s or `recordBlocks`). */
  readonly index: BlockIndex;
  /** Routing history for the approximate-prefix scorer. */
  readonly history: KvBlockIndex | undefined;
  private readonly scorers: { scorer: Scorer; weight: number }[];
  private readonly predictor: LatencyPredictor;
  private readonly fallback = new HeuristicPredictor();
  private readonly rng: Rng;
  private rr = 0;
  private readonly prefix: PrefixMatch;
  private readonly approx: PrefixMatch;
  private readonly emptyApprox: PrefixMatch;
  private cap = 0;
  private candidates = new Int32Array(0);
  private slots = new Int32Array(0);
  private hslots = new Int32Array(0);
  private totals = new Float64Array(0);
  private tmp = new Float64Array(0);
  private readonly roots = new Map<string, LocalKeys>();
  private readonly pending = new Map<string, PredictionRecord>();
  private readonly records: PredictionRecord[] = [];
  private readonly counters: RouterStats = {
    decisions: 0,
    selectionsByReason: {},
    predictorCalls: 0,
    predictorFailures: 0,
    pairsEvaluated: 0,
    pdDecisionsByReason: {},
    speculativeBlocks: 0,
  };
  private readonly needsApprox: boolean;

  /**
   * @param config - a resolved configuration (see {@link createRouter} for the other forms).
   * @param deps - index and predictor.
   */
  constructor(config: ResolvedRouterConfig, deps: RouterDeps = {}) {
    this.config = config;
    this.index =
      deps.index ??
      new KvBlockIndex({ tierWeights: config.tierWeights, ...(config.model === undefined ? {} : { namespace: { model: config.model } }) });
    this.scorers = config.scorers.map((s) => ({ scorer: createScorer(s.name, s.params), weight: s.weight }));
    this.needsApprox = config.scorers.some((s) => s.name === 'approx-prefix');
    this.history = this.needsApprox ? new KvBlockIndex({ maxKeys: config.historyKeys, maxInstances: this.index.maxInstances }) : undefined;
    this.predictor = deps.predictor ?? this.fallback;
    this.rng = createRng(config.seed);
    this.prefix = createPrefixMatch(this.index.maxInstances);
    this.approx = createPrefixMatch(this.index.maxInstances);
    this.emptyApprox = createPrefixMatch(this.index.maxInstances);
  }

  /** Counters so far (live object; copy it to keep a snapshot). */
  stats(): RouterStats {
    return this.counters;
  }

  /** Completed (prediction, actual) records, oldest first (at most 65536 kept). */
  predictionRecords(): readonly PredictionRecord[] {
    return this.records;
  }

  /**
   * Reports the actual latencies of a routed request; pairs them with its prediction.
   * @returns false when no prediction is pending for `requestId`.
   */
  recordActual(requestId: string, actual: { readonly ttftMs?: number; readonly tpotMs?: number }): boolean {
    const rec = this.pending.get(requestId);
    if (rec === undefined) return false;
    this.pending.delete(requestId);
    if (actual.ttftMs !== undefined) rec.actualTtftMs = actual.ttftMs;
    if (actual.tpotMs !== undefined) rec.actualTpotMs = actual.tpotMs;
    this.records.push(rec);
    if (this.records.length > MAX_RECORDS) this.records.splice(0, this.records.length - MAX_RECORDS);
    return true;
  }

  /**
   * Local block keys of a request: `localKeys`, else `blockKeys` (identity), else
   * `promptTokenIds` hashed in blocks of `blockSize` (namespaced by model, LoRA, cache salt).
   */
  keysFor(request: RouteRequest): LocalKeys {
    if (request.localKeys !== undefined) return request.localKeys;
    if (request.blockKeys !== undefined) return localKeysFromBlockIds(request.blockKeys);
    if (request.promptTokenIds !== undefined) {
      const nsKey = `${request.lora ?? ''}\u0000${request.cacheSalt ?? ''}`;
      let root = this.roots.get(nsKey);
      if (root === undefined) {
        root = namespaceRoot({
          ...(this.config.model === undefined ? {} : { model: this.config.model }),
          ...(request.lora === undefined ? {} : { lora: request.lora }),
          ...(request.cacheSalt === undefined ? {} : { cacheSalt: request.cacheSalt }),
        });
        this.roots.set(nsKey, root);
      }
      return localKeysFromTokens(request.promptTokenIds, this.config.blockSize, root);
    }
    return new Uint32Array(0);
  }

  /**
   * Routes one request to one instance.
   *
   * @param request - the request (see {@link RouteRequest} for where its keys come from).
   * @param snapshots - one snapshot per instance (non-empty).
   * @param nowUs - current time, µs (speculative entries expire against it).
   * @returns the decision.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on empty snapshots; `KVMGR_UNAVAILABLE` when no
   *   instance has a role that can serve the request.
   */
  route(request: RouteRequest, snapshots: readonly EngineSnapshot[], nowUs: number): RouteDecision {
    const embed = request.kind === 'embed';
    const keys = this.keysFor(request);
    const d = this.decide(request, keys, snapshots, nowUs, (r) => allowPlain(r, embed), true);
    if (d === undefined) {
      throw new KvmgrError('KVMGR_UNAVAILABLE', `no instance can serve request ${JSON.stringify(request.requestId)}: no snapshot has a role for ${embed ? 'embedding' : 'generation'}`);
    }
    return d;
  }

  /**
   * Picks prefill and decode instances. With a TTFT/TPOT SLO (and `pd.sloPairs`), the SLO pair
   * optimizer chooses the pair; otherwise the decode instance is routed with the scorers and
   * prefill is disaggregated to the best prefill instance when the uncached prompt tokens at
   * the decode instance reach `pd.nonCachedTokens`.
   *
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on empty snapshots; `KVMGR_UNAVAILABLE` when no
   *   instance has the decode (or both) role.
   */
  routePd(request: RouteRequest, snapshots: readonly EngineSnapshot[], nowUs: number): PdDecision {
    const pd = this.config.pd;
    const keys = this.keysFor(request);
    const slo = request.slo;
    if (pd.sloPairs && slo !== undefined && (slo.ttftMs !== undefined || slo.tpotMs !== undefined)) {
      const res = this.sloPair(request, keys, snapshots, nowUs);
      if (res !== undefined) return res;
    }
    const dec = this.decide(request, keys, snapshots, nowUs, (r) => r === 'decode' || r === 'both', true);
    if (dec === undefined) {
      throw new KvmgrError('KVMGR_UNAVAILABLE', `no decode-capable instance for request ${JSON.stringify(request.requestId)}`);
    }
    const uncached = request.promptTokens - dec.cachedTokens;
    let reason: PdReason;
    let prefill = dec.instanceId;
    if (pd.nonCachedTokens === 0) reason = 'pd-disabled';
    else if (uncached < pd.nonCachedTokens) reason = 'below-threshold';
    else {
      // the prediction on record stays the decode target's
      const pre = this.decide(request, keys, snapshots, nowUs, (r) => r === 'prefill', true, false);
      if (pre === undefined) reason = 'no-prefill-instance';
      else {
        reason = 'disaggregated';
        prefill = pre.instanceId;
      }
    }
    this.bump(this.counters.pdDecisionsByReason, reason);
    return { prefill, decode: dec.instanceId, disaggregated: prefill !== dec.instanceId, reason, uncachedTokensAtDecode: uncached };
  }

  /** Transfer time of `tokens` of KV between two instances, ms (0 for the same instance). */
  transferMs(prefill: EngineSnapshot, decode: EngineSnapshot, tokens: number): number {
    if (prefill.instanceId === decode.instanceId || tokens <= 0) return 0;
    const pd = this.config.pd;
    return transferTimeUs(tokens * pd.bytesPerToken, pd.bandwidthBytesPerSec, pd.transferBaseUs) / 1000;
  }

  // ---- internals -------------------------------------------------------------------------

  private bump(map: Record<string, number>, key: string): void {
    map[key] = (map[key] ?? 0) + 1;
  }

  private ensureCapacity(n: number): void {
    if (n <= this.cap) return;
    this.cap = Math.max(n, this.cap * 2, 16);
    this.candidates = new Int32Array(this.cap);
    this.slots = new Int32Array(this.cap);
    this.hslots = new Int32Array(this.cap);
    this.totals = new Float64Array(this.cap);
    this.tmp = new Float64Array(this.cap);
  }

  private guarded(fn: () => number, fallback: () => number): number {
    this.counters.predictorCalls++;
    if (this.predictor === this.fallback) return fallback();
    try {
      const v = fn();
      if (Number.isFinite(v)) return v;
    } catch {
      // counted below; the heuristic answers instead
    }
    this.counters.predictorFailures++;
    return fallback();
  }

  private predictPrefillMs(input: PrefillInput): number {
    return this.guarded(
      () => this.predictor.prefillMs(input),
      () => this.fallback.prefillMs(input),
    );
  }

  private predictWaitMs(s: EngineSnapshot): number {
    return this.guarded(
      () => this.predictor.decodeWaitMs(s),
      () => this.fallback.decodeWaitMs(s),
    );
  }

  private predictTpotMs(s: EngineSnapshot): number {
    return this.guarded(
      () => this.predictor.tpotMs(s),
      () => this.fallback.tpotMs(s),
    );
  }

  /** Maps snapshots to index slots and matches the prefix. */
  private prepare(keys: LocalKeys, snapshots: readonly EngineSnapshot[], nowUs: number): void {
    const n = snapshots.length;
    if (n === 0) throw invalidArgument('snapshots', snapshots, 'a non-empty array of EngineSnapshot');
    this.ensureCapacity(n);
    for (let i = 0; i < n; i++) this.slots[i] = this.index.addInstance((snapshots[i] as EngineSnapshot).instanceId);
    const blocks = keys.length >>> 1;
    this.index.matchPrefix(keys, blocks, nowUs, this.prefix);
    const h = this.history;
    if (h !== undefined) {
      for (let i = 0; i < n; i++) this.hslots[i] = h.addInstance((snapshots[i] as EngineSnapshot).instanceId);
      h.matchPrefix(keys, blocks, nowUs, this.approx);
    }
  }

  private cachedTokens(request: RouteRequest, pos: number): number {
    const slot = this.slots[pos] as number;
    return Math.min(request.promptTokens, (this.prefix.matchedBlocks[slot] as number) * this.config.blockSize);
  }

  private decide(
    request: RouteRequest,
    keys: LocalKeys,
    snapshots: readonly EngineSnapshot[],
    nowUs: number,
    allow: (role: InstanceRole) => boolean,
    commit: boolean,
    remember = true,
  ): RouteDecision | undefined {
    this.prepare(keys, snapshots, nowUs);
    const n = snapshots.length;
    const cands = this.candidates;
    let nc = 0;
    for (let i = 0; i < n; i++) if (allow((snapshots[i] as EngineSnapshot).role)) cands[nc++] = i;
    if (nc === 0) return undefined;
    const cfg = this.config;
    let chosen: number;
    let reason: RouteReason;
    let scores: Float64Array | undefined;
    const blocks = keys.length >>> 1;
    let anyHit = false;
    for (let i = 0; i < nc; i++) {
      const pos = cands[i] as number;
      if (
        (this.prefix.matchedBlocks[this.slots[pos] as number] as number) > 0 ||
        (this.history !== undefined && (this.approx.matchedBlocks[this.hslots[pos] as number] as number) > 0)
      ) {
        anyHit = true;
        break;
      }
    }
    const ctx: ScoringContext = {
      request,
      snapshots,
      candidates: cands,
      nCandidates: nc,
      slots: this.slots,
      prefix: this.prefix,
      approx: this.history === undefined ? this.emptyApprox : this.approx,
      approxSlots: this.history === undefined ? this.slots : this.hslots,
      blockSize: cfg.blockSize,
      anyHit,
      nowUs,
      predictPrefillMs: (input) => this.predictPrefillMs(input),
    };
    if (cfg.strategy === 'round-robin') {
      chosen = cands[this.rr++ % nc] as number;
      reason = 'round-robin';
    } else if (cfg.strategy === 'random') {
      chosen = cands[Math.floor(this.rng.next() * nc)] as number;
      reason = 'random';
    } else {
      reason = 'scored';
      const gate = cfg.prefixGate;
      if (gate !== undefined && blocks > 0) {
        let best = 0;
        for (let i = 0; i < nc; i++) best = Math.max(best, (this.prefix.weightedBlocks[this.slots[cands[i] as number] as number] as number) / blocks);
        if (best >= gate.threshold && best > 0) {
          if (this.rng.next() < gate.exploration) reason = 'prefix-gate-explore';
          else {
            let k = 0;
            for (let i = 0; i < nc; i++) {
              const pos = cands[i] as number;
              if ((this.prefix.weightedBlocks[this.slots[pos] as number] as number) / blocks >= gate.threshold) cands[k++] = pos;
            }
            nc = k;
            reason = 'prefix-gate';
          }
        }
      }
      const c2: ScoringContext = nc === ctx.nCandidates ? ctx : { ...ctx, nCandidates: nc };
      const totals = this.totals;
      const tmp = this.tmp;
      for (let i = 0; i < nc; i++) totals[cands[i] as number] = 0;
      for (const { scorer, weight } of this.scorers) {
        if (weight === 0) continue;
        scorer.score(c2, tmp);
        for (let i = 0; i < nc; i++) {
          const pos = cands[i] as number;
          const v = tmp[pos] as number;
          totals[pos] = (totals[pos] as number) + weight * clamp01(v);
        }
      }
      const picked = this.pick(cands, nc, totals);
      chosen = picked.pos;
      if (picked.tie && reason === 'scored') reason = 'scored-tie';
      scores = new Float64Array(n).fill(Number.NaN);
      for (let i = 0; i < nc; i++) scores[cands[i] as number] = totals[cands[i] as number] as number;
      if (commit) for (const { scorer } of this.scorers) scorer.onRouted?.(c2, chosen);
    }
    const snap = snapshots[chosen] as EngineSnapshot;
    const slot = this.slots[chosen] as number;
    const matched = this.prefix.matchedBlocks[slot] as number;
    const cachedTokens = this.cachedTokens(request, chosen);
    if (commit) {
      this.counters.decisions++;
      this.bump(this.counters.selectionsByReason, reason);
      if (cfg.strategy === 'scored' && cfg.speculativeTtlMs > 0 && blocks > matched) {
        this.index.addSpeculative(snap.instanceId, keys, matched, blocks, nowUs + cfg.speculativeTtlMs * 1000);
        this.counters.speculativeBlocks += blocks - matched;
      }
      if (cfg.strategy === 'scored' && this.history !== undefined && blocks > 0) {
        this.history.recordBlocks(snap.instanceId, keys, 'gpu', this.approx.matchedBlocks[this.hslots[chosen] as number] as number, blocks);
      }
      if (cfg.recordPredictions && remember) {
        this.remember(request.requestId, snap.instanceId, this.predictPrefillMs({ snapshot: snap, promptTokens: request.promptTokens, uncachedTokens: request.promptTokens - cachedTokens }), this.predictTpotMs(snap));
      }
    }
    return scores === undefined
      ? { instanceId: snap.instanceId, position: chosen, reason, cachedTokens }
      : { instanceId: snap.instanceId, position: chosen, scores, reason, cachedTokens };
  }

  private remember(requestId: string, instanceId: string, predictedTtftMs: number, predictedTpotMs: number): void {
    this.pending.set(requestId, { requestId, instanceId, predictedTtftMs, predictedTpotMs });
    if (this.pending.size > MAX_PENDING_PREDICTIONS) {
      const oldest = this.pending.keys().next().value as string;
      this.pending.delete(oldest);
    }
  }

  private pick(cands: Int32Array, nc: number, totals: Float64Array): { pos: number; tie: boolean } {
    const cfg = this.config;
    if (cfg.picker === 'weighted-random') {
      let sum = 0;
      for (let i = 0; i < nc; i++) sum += totals[cands[i] as number] as number;
      if (sum <= 0) return { pos: cands[Math.floor(this.rng.next() * nc)] as number, tie: true };
      let r = this.rng.next() * sum;
      for (let i = 0; i < nc; i++) {
        const pos = cands[i] as number;
        r -= totals[pos] as number;
        if (r < 0) return { pos, tie: false };
      }
      return { pos: cands[nc - 1] as number, tie: false };
    }
    if (cfg.picker === 'top-k') {
      const order = Array.from(cands.subarray(0, nc)).sort((a, b) => (totals[b] as number) - (totals[a] as number) || a - b);
      const k = Math.min(cfg.topK, nc);
      return { pos: order[Math.floor(this.rng.next() * k)] as number, tie: false };
    }
    let best = Number.NEGATIVE_INFINITY;
    let ties = 0;
    for (let i = 0; i < nc; i++) {
      const v = totals[cands[i] as number] as number;
      if (v > best + 1e-12) {
        best = v;
        ties = 1;
      } else if (v >= best - 1e-12) ties++;
    }
    let which = ties > 1 ? Math.floor(this.rng.next() * ties) : 0;
    for (let i = 0; i < nc; i++) {
      const pos = cands[i] as number;
      if ((totals[pos] as number) >= best - 1e-12) {
        if (which === 0) return { pos, tie: ties > 1 };
        which--;
      }
    }
    return { pos: cands[0] as number, tie: false };
  }

  private sloPair(request: RouteRequest, keys: LocalKeys, snapshots: readonly EngineSnapshot[], nowUs: number): PdDecision | undefined {
    this.prepare(keys, snapshots, nowUs);
    const pd = this.config.pd;
    const pre: PrefillCandidate[] = [];
    const dec: DecodeCandidate[] = [];
    const posOf = new Map<string, number>();
    for (let i = 0; i < snapshots.length; i++) {
      const s = snapshots[i] as EngineSnapshot;
      posOf.set(s.instanceId, i);
      const cached = this.cachedTokens(request, i);
      if (s.role === 'prefill' || s.role === 'both') {
        pre.push({ snapshot: s, prefillMs: this.predictPrefillMs({ snapshot: s, promptTokens: request.promptTokens, uncachedTokens: request.promptTokens - cached }) });
      }
      if (s.role === 'decode' || s.role === 'both') {
        dec.push({ snapshot: s, decodeWaitMs: this.predictWaitMs(s), tpotMs: this.predictTpotMs(s), tokensToMove: request.promptTokens - cached });
      }
    }
    const choice = selectSloPair(pre, dec, (p, d, t) => this.transferMs(p, d, t), request.slo ?? {}, this.rng, {
      buffer: pd.buffer,
      ttftWeight: pd.ttftWeight,
      tpotWeight: pd.tpotWeight,
      exploration: pd.exploration,
      topK: pd.topK,
    });
    if (choice === undefined) return undefined;
    this.counters.pairsEvaluated += choice.pairsEvaluated;
    this.counters.decisions++;
    this.bump(this.counters.selectionsByReason, choice.reason);
    this.bump(this.counters.pdDecisionsByReason, choice.reason);
    const pair: PairEvaluation = choice.pair;
    const dPos = posOf.get(pair.decode) as number;
    const blocks = keys.length >>> 1;
    const ttlUs = this.config.speculativeTtlMs * 1000;
    if (ttlUs > 0 && blocks > 0) {
      for (const id of pair.prefill === pair.decode ? [pair.decode] : [pair.prefill, pair.decode]) {
        const from = this.prefix.matchedBlocks[this.slots[posOf.get(id) as number] as number] as number;
        if (blocks > from) {
          this.index.addSpeculative(id, keys, from, blocks, nowUs + ttlUs);
          this.counters.speculativeBlocks += blocks - from;
        }
      }
    }
    if (this.config.recordPredictions) this.remember(request.requestId, pair.decode, pair.ttftMs, pair.tpotMs);
    return {
      prefill: pair.prefill,
      decode: pair.decode,
      disaggregated: pair.prefill !== pair.decode,
      reason: choice.reason,
      uncachedTokensAtDecode: request.promptTokens - this.cachedTokens(request, dPos),
      pair,
    };
  }
}

/**
 * Creates a router from a preset name (`round-robin`, `random`, `kvmgr-default`,
 * `llm-d-default`), a weight string (`pa:3,qd:2,kv:2`), a YAML document, or an object.
 *
 * @param config - the configuration. @default 'kvmgr-default'
 * @param deps - an index to share (fed by KV events elsewhere) and a latency predictor.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the bad token or field.
 * @example
 * ```ts
 * const router = createRouter('pa:3,qd:2,kv:2');
 * const { instanceId } = router.route(request, snapshots, nowUs);
 * ```
 */
export function createRouter(config: string | RouterConfig = 'kvmgr-default', deps: RouterDeps = {}): Router {
  const resolved = typeof config === 'string' ? parseRouterConfig(config) : resolveRouterConfig(config);
  return new Router(resolved, deps);
}
