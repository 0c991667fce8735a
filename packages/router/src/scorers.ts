/**
 * Scorers: each writes a score in [0, 1] (higher = better) for every candidate instance. The
 * router clamps them and sums them with weights (`pa:3,qd:2,kv:2`).
 *
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/scorer
 * @see llm-d/llm-d-inference-scheduler: pkg/plugins/scorer (load-aware, active-request, no-hit-lru)
 */
import type { EngineSnapshot, SloClass } from '@kvmgr/core';
import { KvmgrError } from '@kvmgr/core';
import type { PrefixMatch } from './kv-block-index.js';
import type { PrefillInput } from './predictors.js';
import type { RouteRequest } from './types.js';

/** What a scorer sees for one decision. Arrays are indexed by position in `snapshots`. */
export interface ScoringContext {
  readonly request: RouteRequest;
  readonly snapshots: readonly EngineSnapshot[];
  /** Positions (into `snapshots`) of the candidates, `candidates[0..nCandidates)`. */
  readonly candidates: Int32Array;
  readonly nCandidates: number;
  /** Index slot (into {@link PrefixMatch} arrays) of each snapshot position; -1 = unknown. */
  readonly slots: Int32Array;
  /** Precise prefix match from the KV block index. */
  readonly prefix: PrefixMatch;
  /** Approximate prefix match from the routing history. */
  readonly approx: PrefixMatch;
  /** Slot in the routing history's arrays of each snapshot position. */
  readonly approxSlots: Int32Array;
  /** Tokens per block. */
  readonly blockSize: number;
  /** True when some candidate has a precise or approximate prefix hit. */
  readonly anyHit: boolean;
  readonly nowUs: number;
  /** Predicted prefill ms with fallback and counters (see the router's predictor). */
  predictPrefillMs(input: PrefillInput): number;
}

/** One scorer. */
export interface Scorer {
  /** Canonical name, e.g. `prefix-affinity`. */
  readonly name: string;
  /** Writes `out[pos]` in [0, 1] for every candidate position. */
  score(ctx: ScoringContext, out: Float64Array): void;
  /** Called after a decision with the chosen snapshot position. */
  onRouted?(ctx: ScoringContext, chosen: number): void;
}

/** Cached prompt tokens of the instance at `pos`, from the precise match. */
export function cachedTokensAt(ctx: ScoringContext, pos: number): number {
  const slot = ctx.slots[pos] as number;
  if (slot < 0) return 0;
  return Math.min(ctx.request.promptTokens, (ctx.prefix.matchedBlocks[slot] as number) * ctx.blockSize);
}

/** Precise prefix affinity: tier-weighted consecutive matched blocks / total blocks. */
export function prefixAffinityScorer(): Scorer {
  return {
    name: 'prefix-affinity',
    score(ctx, out) {
      const total = ctx.prefix.totalBlocks;
      for (let i = 0; i < ctx.nCandidates; i++) {
        const pos = ctx.candidates[i] as number;
        const slot = ctx.slots[pos] as number;
        out[pos] = total === 0 || slot < 0 ? 0 : (ctx.prefix.weightedBlocks[slot] as number) / total;
      }
    },
  };
}

/** Approximate prefix: consecutive blocks this router sent to the instance before / total. */
export function approxPrefixScorer(): Scorer {
  return {
    name: 'approx-prefix',
    score(ctx, out) {
      const total = ctx.approx.totalBlocks;
      for (let i = 0; i < ctx.nCandidates; i++) {
        const pos = ctx.candidates[i] as number;
        const slot = ctx.approxSlots[pos] as number;
        out[pos] = total === 0 || slot < 0 ? 0 : (ctx.approx.matchedBlocks[slot] as number) / total;
      }
    },
  };
}

function minMaxInverse(ctx: ScoringContext, out: Float64Array, value: (s: EngineSnapshot) => number): void {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < ctx.nCandidates; i++) {
    const pos = ctx.candidates[i] as number;
    const v = value(ctx.snapshots[pos] as EngineSnapshot);
    out[pos] = v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  for (let i = 0; i < ctx.nCandidates; i++) {
    const pos = ctx.candidates[i] as number;
    out[pos] = max === min ? 1 : (max - (out[pos] as number)) / (max - min);
  }
}

/** Queue depth: `(maxWaiting − waiting) / (maxWaiting − minWaiting)` over candidates; 1 when all equal. */
export function queueDepthScorer(): Scorer {
  return { name: 'queue-depth', score: (ctx, out) => minMaxInverse(ctx, out, (s) => s.waiting) };
}

/** KV utilization: `1 − kvUtilization`. */
export function kvUtilizationScorer(): Scorer {
  return {
    name: 'kv-utilization',
    score(ctx, out) {
      for (let i = 0; i < ctx.nCandidates; i++) {
        const pos = ctx.candidates[i] as number;
        out[pos] = 1 - (ctx.snapshots[pos] as EngineSnapshot).kvUtilization;
      }
    },
  };
}

/**
 * Load-aware (llm-d): 0.5 with an empty queue, `0.5 × (1 − waiting / threshold)` up to the
 * threshold, 0 beyond it.
 * @param threshold - waiting requests at which the score reaches 0. @default 128
 */
export function loadAwareScorer(threshold = 128): Scorer {
  return {
    name: 'load-aware',
    score(ctx, out) {
      for (let i = 0; i < ctx.nCandidates; i++) {
        const pos = ctx.candidates[i] as number;
        const w = (ctx.snapshots[pos] as EngineSnapshot).waiting;
        out[pos] = w === 0 ? 0.5 : w > threshold ? 0 : 0.5 * (1 - w / threshold);
      }
    },
  };
}

/** Active requests: `(maxActive − active) / maxActive` with active = running + waiting; 1 when all idle. */
export function activeRequestsScorer(): Scorer {
  return {
    name: 'active-requests',
    score(ctx, out) {
      let max = 0;
      for (let i = 0; i < ctx.nCandidates; i++) {
        const s = ctx.snapshots[ctx.candidates[i] as number] as EngineSnapshot;
        max = Math.max(max, s.running + s.waiting);
      }
      for (let i = 0; i < ctx.nCandidates; i++) {
        const pos = ctx.candidates[i] as number;
        const s = ctx.snapshots[pos] as EngineSnapshot;
        out[pos] = max === 0 ? 1 : (max - s.running - s.waiting) / max;
      }
    },
  };
}

/**
 * No-hit LRU (llm-d): spreads cache misses. With a hit anywhere every candidate gets 0.5.
 * Otherwise instances never given a cold request score 1; the `u` used ones score
 * `(u − 1 − r) / u` by rank `r` from least recently used (r = 0) to most recently used.
 */
export function noHitLruScorer(): Scorer {
  const lastCold = new Map<string, number>();
  let seq = 0;
  return {
    name: 'no-hit-lru',
    score(ctx, out) {
      if (ctx.anyHit) {
        for (let i = 0; i < ctx.nCandidates; i++) out[ctx.candidates[i] as number] = 0.5;
        return;
      }
      const used: number[] = [];
      for (let i = 0; i < ctx.nCandidates; i++) {
        const pos = ctx.candidates[i] as number;
        if (lastCold.has((ctx.snapshots[pos] as EngineSnapshot).instanceId)) used.push(pos);
        else out[pos] = 1;
      }
      const id = (p: number): string => (ctx.snapshots[p] as EngineSnapshot).instanceId;
      used.sort((a, b) => (lastCold.get(id(a)) as number) - (lastCold.get(id(b)) as number));
      const u = used.length;
      for (let r = 0; r < u; r++) out[used[r] as number] = (u - 1 - r) / u;
    },
    onRouted(ctx, chosen) {
      if (!ctx.anyHit) lastCold.set((ctx.snapshots[chosen] as EngineSnapshot).instanceId, ++seq);
    },
  };
}

/** Coefficients of the kv-pressure scorers. */
export interface KvPressureOptions {
  /** Penalty at (or above) `transferRefUs` of pending transfer latency. @default 0.5 */
  readonly transferPenalty?: number;
  /** Pending transfer latency that gives the full penalty, µs. @default 10000 */
  readonly transferRefUs?: number;
  /** Penalty at (or above) `thrashRefPerSec` offload→reload cycles per second. @default 0.5 */
  readonly thrashPenalty?: number;
  /** Thrashing rate that gives the full penalty, cycles/s. @default 10 */
  readonly thrashRefPerSec?: number;
}

/** Transfer-penalty multiplier per SLO class in `kv-pressure-slo`. */
export const SLO_CLASS_TRANSFER_WEIGHT: Readonly<Record<SloClass, number>> = Object.freeze({
  critical: 5.0,
  standard: 1.0,
  batch: 0.2,
  background: 0.1,
});

function kvPressure(name: string, options: KvPressureOptions, classWeighted: boolean): Scorer {
  const tp = options.transferPenalty ?? 0.5;
  const tref = options.transferRefUs ?? 10_000;
  const hp = options.thrashPenalty ?? 0.5;
  const href = options.thrashRefPerSec ?? 10;
  return {
    name,
    score(ctx, out) {
      const cw = classWeighted ? SLO_CLASS_TRANSFER_WEIGHT[ctx.request.sloClass ?? 'standard'] : 1;
      for (let i = 0; i < ctx.nCandidates; i++) {
        const pos = ctx.candidates[i] as number;
        const s = ctx.snapshots[pos] as EngineSnapshot;
        const pressure =
          s.kvUtilization +
          cw * tp * Math.min(1, s.pendingTransferLatency / tref) +
          hp * Math.min(1, s.kvThrashingRate / href);
        out[pos] = Math.max(0, 1 - pressure);
      }
    },
  };
}

/**
 * KV pressure: `1 − (kvUtilization + 0.5 × min(1, pendingTransferUs / 10 ms) + 0.5 × min(1,
 * thrashingRate / 10 s⁻¹))`, floored at 0.
 */
export function kvPressureScorer(options: KvPressureOptions = {}): Scorer {
  return kvPressure('kv-pressure', options, false);
}

/** KV pressure with the transfer penalty multiplied per SLO class ({@link SLO_CLASS_TRANSFER_WEIGHT}). */
export function kvPressureSloScorer(options: KvPressureOptions = {}): Scorer {
  return kvPressure('kv-pressure-slo', options, true);
}

/**
 * Predicted latency: predicted TTFT `t` (prefill of the uncached tokens plus the queue) per
 * instance. With a TTFT SLO: `(slo − t) / slo` floored at 0; without: min–max inverse
 * `(max − t) / (max − min)`, 1 when all equal.
 */
export function predictedLatencyScorer(): Scorer {
  return {
    name: 'predicted-latency',
    score(ctx, out) {
      const slo = ctx.request.slo?.ttftMs;
      let min = Number.POSITIVE_INFINITY;
      let max = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < ctx.nCandidates; i++) {
        const pos = ctx.candidates[i] as number;
        const snapshot = ctx.snapshots[pos] as EngineSnapshot;
        const t = ctx.predictPrefillMs({
          snapshot,
          promptTokens: ctx.request.promptTokens,
          uncachedTokens: ctx.request.promptTokens - cachedTokensAt(ctx, pos),
        });
        out[pos] = t;
        if (t < min) min = t;
        if (t > max) max = t;
      }
      for (let i = 0; i < ctx.nCandidates; i++) {
        const pos = ctx.candidates[i] as number;
        const t = out[pos] as number;
        out[pos] = slo !== undefined && slo > 0 ? Math.max(0, (slo - t) / slo) : max === min ? 1 : (max - t) / (max - min);
      }
    },
  };
}

/** Canonical scorer names and their short aliases (`pa`, `qd`, `kv`, …). */
export const SCORER_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  pa: 'prefix-affinity',
  ap: 'approx-prefix',
  qd: 'queue-depth',
  kv: 'kv-utilization',
  la: 'load-aware',
  ar: 'active-requests',
  nh: 'no-hit-lru',
  kp: 'kv-pressure',
  kps: 'kv-pressure-slo',
  pl: 'predicted-latency',
});

const PARAMS: Readonly<Record<string, readonly string[]>> = {
  'prefix-affinity': [],
  'approx-prefix': [],
  'queue-depth': [],
  'kv-utilization': [],
  'load-aware': ['threshold'],
  'active-requests': [],
  'no-hit-lru': [],
  'kv-pressure': ['transferPenalty', 'transferRefUs', 'thrashPenalty', 'thrashRefPerSec'],
  'kv-pressure-slo': ['transferPenalty', 'transferRefUs', 'thrashPenalty', 'thrashRefPerSec'],
  'predicted-latency': [],
};

/** Every canonical scorer name. */
export const SCORER_NAMES: readonly string[] = Object.freeze(Object.keys(PARAMS));

/**
 * Resolves a scorer name or alias to its canonical name.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the token when unknown.
 */
export function canonicalScorerName(token: string): string {
  // own properties only: `constructor`, `toString`, `__proto__` are not scorers
  const name = typeof token === 'string' && Object.hasOwn(SCORER_ALIASES, token) ? (SCORER_ALIASES[token] as string) : token;
  if (typeof name !== 'string' || !Object.hasOwn(PARAMS, name)) {
    throw new KvmgrError(
      'KVMGR_BAD_CONFIG',
      `unknown scorer ${JSON.stringify(token)}; expected one of ${SCORER_NAMES.join(', ')} or an alias (${Object.keys(SCORER_ALIASES).join(', ')})`,
      { details: { token } },
    );
  }
  return name;
}

/**
 * Creates a scorer by name or alias with numeric parameters.
 * @param token - name or alias, e.g. `pa` or `load-aware`.
 * @param params - numeric parameters (`threshold` for load-aware; {@link KvPressureOptions} keys).
 * @throws KvmgrError `KVMGR_BAD_CONFIG` on an unknown scorer or parameter, or a parameter that
 *   is not a finite number ≥ 0.
 */
export function createScorer(token: string, params: Readonly<Record<string, number>> = {}): Scorer {
  const name = canonicalScorerName(token);
  const allowed = PARAMS[name] as readonly string[];
  for (const [k, v] of Object.entries(params)) {
    if (!allowed.includes(k)) {
      throw new KvmgrError('KVMGR_BAD_CONFIG', `scorer ${JSON.stringify(name)} has no parameter ${JSON.stringify(k)}; expected one of [${allowed.join(', ')}]`, {
        details: { token: k },
      });
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new KvmgrError('KVMGR_BAD_CONFIG', `parameter ${JSON.stringify(k)} of scorer ${JSON.stringify(name)} must be a finite number >= 0, got ${String(v)}`, {
        details: { token: k, value: v },
      });
    }
  }
  switch (name) {
    case 'prefix-affinity':
      return prefixAffinityScorer();
    case 'approx-prefix':
      return approxPrefixScorer();
    case 'queue-depth':
      return queueDepthScorer();
    case 'kv-utilization':
      return kvUtilizationScorer();
    case 'load-aware':
      return loadAwareScorer(params.threshold ?? 128);
    case 'active-requests':
      return activeRequestsScorer();
    case 'no-hit-lru':
      return noHitLruScorer();
    case 'kv-pressure':
      return kvPressureScorer(params);
    case 'kv-pressure-slo':
      return kvPressureSloScorer(params);
    default:
      return predictedLatencyScorer();
  }
}
