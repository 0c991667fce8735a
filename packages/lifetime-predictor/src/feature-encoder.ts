/**
 * Turns {@link LifetimeFeatures} into a fixed numeric row for the tree and neural models. Besides
 * the raw fields it keeps small online statistics learned from finished requests: the
 * exponentially decayed mean output per prefix/template and per tenant (target encoding from
 * the past only; the decay lets it follow drift) and
 * each session's last prompt length, from which the new user tokens of a turn are derived.
 */
import type { LifetimeFeatures } from '@kvmgr/core';

/** Names of the encoded columns, in order. */
export const FEATURE_NAMES: readonly string[] = [
  'promptTokens',
  'historyTurns',
  'lastOutput',
  'meanOutput',
  'maxOutput',
  'maxTokens',
  'hourOfDay',
  'prefixMeanOutput',
  'prefixCount',
  'newUserTokens',
  'tenantMeanOutput',
];

/** Encoded row width. */
export const FEATURE_DIM = FEATURE_NAMES.length;

const MISSING = -1;
/** Per-observation decay of the target-encoding sums (memory ≈ 1 / (1 − DECAY) = 20 requests). */
const DECAY = 0.95;

/** Online feature encoder; `encode` is allocation-free given an output row. */
export class FeatureEncoder {
  private readonly prefixSum = new Map<string, Float64Array>();
  private readonly tenantSum = new Map<string, Float64Array>();
  private readonly sessionLast = new Map<string, Float64Array>();
  private readonly maxKeys: number;

  /** @param maxKeys - per-table key bound; a full table is cleared. */
  constructor(maxKeys = 65536) {
    this.maxKeys = maxKeys;
  }

  /** Writes the row for validated `features` into `out` (length {@link FEATURE_DIM}). */
  encode(features: LifetimeFeatures, out: Float64Array): void {
    const h = features.sessionHistory;
    out[0] = features.promptTokens;
    if (h !== undefined && h.length > 0) {
      let s = 0;
      let m = 0;
      for (const v of h) {
        s += v;
        if (v > m) m = v;
      }
      out[1] = h.length;
      out[2] = h[h.length - 1] as number;
      out[3] = s / h.length;
      out[4] = m;
    } else {
      out[1] = 0;
      out[2] = MISSING;
      out[3] = MISSING;
      out[4] = MISSING;
    }
    out[5] = features.maxTokens ?? MISSING;
    out[6] = features.arrivalMs === undefined ? MISSING : (features.arrivalMs / 3_600_000) % 24;
    const p = features.prefixId === undefined ? undefined : this.prefixSum.get(String(features.prefixId));
    out[7] = p === undefined ? MISSING : (p[0] as number) / (p[1] as number);
    out[8] = p === undefined ? 0 : (p[1] as number);
    const sl = features.sessionId === undefined ? undefined : this.sessionLast.get(features.sessionId);
    out[9] = sl === undefined ? MISSING : features.promptTokens - (sl[0] as number) - (sl[1] as number);
    const t = features.tenant === undefined ? undefined : this.tenantSum.get(features.tenant);
    out[10] = t === undefined ? MISSING : (t[0] as number) / (t[1] as number);
  }

  /** Updates the online statistics with a finished request. */
  learn(features: LifetimeFeatures, actual: number): void {
    if (features.prefixId !== undefined) add(this.prefixSum, String(features.prefixId), actual, this.maxKeys);
    if (features.tenant !== undefined) add(this.tenantSum, features.tenant, actual, this.maxKeys);
    if (features.sessionId !== undefined) {
      if (this.sessionLast.size >= this.maxKeys) this.sessionLast.clear();
      this.sessionLast.set(features.sessionId, Float64Array.of(features.promptTokens, actual));
    }
  }
}

function add(map: Map<string, Float64Array>, key: string, v: number, maxKeys: number): void {
  let e = map.get(key);
  if (e === undefined) {
    if (map.size >= maxKeys) map.clear();
    e = new Float64Array(2);
    map.set(key, e);
  }
  e[0] = (e[0] as number) * DECAY + v;
  e[1] = (e[1] as number) * DECAY + 1;
}
