/**
 * Router configuration: the `pa:3,qd:2,kv:2` weight string, a YAML document, or an object, all
 * validated into one {@link ResolvedRouterConfig}; plus the named presets.
 *
 * @see llm-d/llm-d-inference-scheduler: scorer weights (`prefix-cache-scorer`, `queue-scorer`, `kv-cache-utilization-scorer`)
 */
import { KvmgrError, parseYamlText } from '@kvmgr/core';
import { z } from 'zod';
import { canonicalScorerName, createScorer } from './scorers.js';

/** One weighted scorer. */
export interface ScorerSpec {
  /** Scorer name or alias (`pa`, `prefix-affinity`, …). */
  readonly name: string;
  /** Weight ≥ 0. */
  readonly weight: number;
  /** Numeric parameters of the scorer (e.g. `threshold` for load-aware). */
  readonly params?: Readonly<Record<string, number>>;
}

/** P/D settings. */
export interface PdConfig {
  /** Disaggregate when uncached prompt tokens at the decode instance ≥ this (tokens); 0 disables. @default 256 */
  readonly nonCachedTokens?: number;
  /** Use the SLO pair optimizer for requests with a TTFT or TPOT target. @default true */
  readonly sloPairs?: boolean;
  /** Fraction of the SLO the prediction may use. @default 0.9 */
  readonly buffer?: number;
  /** @default 0.8 */
  readonly ttftWeight?: number;
  /** @default 0.2 */
  readonly tpotWeight?: number;
  /** Probability of exploring a negative-headroom pair. @default 0.01 */
  readonly exploration?: number;
  /** Candidates kept per side. @default 16 */
  readonly topK?: number;
  /** KV bytes per token moved between instances. @default 131072 (Llama-3.1-8B, bf16) */
  readonly bytesPerToken?: number;
  /** Link bandwidth between prefill and decode, bytes/s. @default 25e9 */
  readonly bandwidthBytesPerSec?: number;
  /** Fixed cost per transfer, µs. @default 1000 */
  readonly transferBaseUs?: number;
}

/** The object form of a router configuration (also what YAML parses into). */
export interface RouterConfig {
  /** `scored` (scorers + picker), or a baseline. @default 'scored' */
  readonly strategy?: 'scored' | 'round-robin' | 'random';
  /** Weighted scorers: a `pa:3,qd:2` string, a list, or `{ name: weight }`. @default 'pa:3,qd:2,kp:2' */
  readonly scorers?: string | readonly ScorerSpec[] | Readonly<Record<string, number>>;
  /** @default 'max' */
  readonly picker?: 'max' | 'weighted-random' | 'top-k';
  /** k of the top-k picker. @default 2 */
  readonly topK?: number;
  /** Seed of the router's PRNG (ties, weighted random, exploration). @default 0 */
  readonly seed?: number;
  /** Tokens per block for keys from token ids. @default 16 */
  readonly blockSize?: number;
  /** Model name of the key namespace (shared with the index). @default undefined */
  readonly model?: string;
  /**
   * Prefix-affinity gate: when the best precise prefix score ≥ `threshold`, keep only candidates
   * at or above it, except with probability `exploration`. Off when absent.
   */
  readonly prefixGate?: { readonly threshold: number; readonly exploration?: number };
  /** TTL of speculative index entries written at routing time, ms; 0 disables. @default 2000 */
  readonly speculativeTtlMs?: number;
  /** Tier weights of the prefix score. @default { gpu: 1, cpu: 0.8, disk: 0.5, speculative: 1 } */
  readonly tierWeights?: { readonly gpu?: number; readonly cpu?: number; readonly disk?: number; readonly speculative?: number };
  /** Keys remembered by the approximate-prefix routing history. @default 262144 */
  readonly historyKeys?: number;
  /** Keep (prediction, actual) records for the chosen targets. @default true */
  readonly recordPredictions?: boolean;
  readonly pd?: PdConfig;
}

/** A configuration with every default filled in and scorer names canonical. */
export interface ResolvedRouterConfig {
  readonly strategy: 'scored' | 'round-robin' | 'random';
  readonly scorers: readonly { readonly name: string; readonly weight: number; readonly params: Readonly<Record<string, number>> }[];
  readonly picker: 'max' | 'weighted-random' | 'top-k';
  readonly topK: number;
  readonly seed: number;
  readonly blockSize: number;
  readonly model: string | undefined;
  readonly prefixGate: { readonly threshold: number; readonly exploration: number } | undefined;
  readonly speculativeTtlMs: number;
  readonly tierWeights: { readonly gpu: number; readonly cpu: number; readonly disk: number; readonly speculative: number };
  readonly historyKeys: number;
  readonly recordPredictions: boolean;
  readonly pd: Required<PdConfig>;
}

/** The named presets accepted by `createRouter`. */
export const ROUTER_PRESETS: Readonly<Record<string, RouterConfig>> = Object.freeze({
  'round-robin': { strategy: 'round-robin' },
  random: { strategy: 'random' },
  'kvmgr-default': { strategy: 'scored', scorers: 'pa:3,qd:2,kp:2', picker: 'max' },
  'llm-d-default': { strategy: 'scored', scorers: 'pa:3,qd:2,kv:2', picker: 'max' },
});

/**
 * The path of a `__proto__` key anywhere in `value` (YAML and JSON can make one an own key), or
 * undefined. Such a key cannot be kept by object spreads and record schemas (assigning it sets
 * the prototype), so a config that has one would silently lose it.
 */
function protoKeyPath(value: unknown, path: string, depth = 0): string | undefined {
  if (value === null || typeof value !== 'object' || depth > 32) return undefined;
  for (const [k, v] of Object.entries(value)) {
    const p = path === '' ? k : `${path}.${k}`;
    if (k === '__proto__') return p;
    const inner = protoKeyPath(v, p, depth + 1);
    if (inner !== undefined) return inner;
  }
  return undefined;
}

function badConfig(message: string, token: string, cause?: unknown): KvmgrError {
  return new KvmgrError('KVMGR_BAD_CONFIG', message, cause === undefined ? { details: { token } } : { details: { token }, cause });
}

/**
 * Parses a weight string `name:weight[,name:weight…]` (`pa:3,qd:2,kv:2`).
 * @returns scorer specs with canonical names.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the bad token: missing `:`, a weight that is not a
 *   finite number ≥ 0 (`pa:x`, `qd:-1`), an unknown scorer, or a duplicate.
 */
export function parseScorerWeights(text: string): ScorerSpec[] {
  const out: ScorerSpec[] = [];
  const seen = new Set<string>();
  const tokens = text.split(',').map((t) => t.trim());
  if (tokens.length === 1 && tokens[0] === '') throw badConfig('scorer weights are empty; expected e.g. "pa:3,qd:2,kv:2"', '');
  for (const token of tokens) {
    const colon = token.indexOf(':');
    if (colon <= 0) throw badConfig(`scorer weight token ${JSON.stringify(token)} must be "name:weight", e.g. "pa:3"`, token);
    const rawName = token.slice(0, colon).trim();
    const rawWeight = token.slice(colon + 1).trim();
    const weight = rawWeight === '' ? Number.NaN : Number(rawWeight);
    if (!Number.isFinite(weight) || weight < 0) {
      throw badConfig(`scorer weight token ${JSON.stringify(token)}: weight must be a finite number >= 0, got ${JSON.stringify(rawWeight)}`, token);
    }
    let name: string;
    try {
      name = canonicalScorerName(rawName);
    } catch (e) {
      throw badConfig(`scorer weight token ${JSON.stringify(token)}: ${(e as Error).message}`, token, e);
    }
    if (seen.has(name)) throw badConfig(`scorer weight token ${JSON.stringify(token)}: scorer ${JSON.stringify(name)} appears twice`, token);
    seen.add(name);
    out.push({ name, weight });
  }
  return out;
}

const nonNeg = z.number().finite().min(0);
const prob = z.number().min(0).max(1);
const scorerSpecSchema = z.strictObject({ name: z.string(), weight: nonNeg, params: z.record(z.string(), z.number()).optional() });
const configSchema = z.strictObject({
  strategy: z.enum(['scored', 'round-robin', 'random']).optional(),
  scorers: z.union([z.string(), z.array(scorerSpecSchema), z.record(z.string(), nonNeg)]).optional(),
  picker: z.enum(['max', 'weighted-random', 'top-k']).optional(),
  topK: z.number().int().min(1).optional(),
  seed: z.number().int().optional(),
  blockSize: z.number().int().min(1).optional(),
  model: z.string().optional(),
  prefixGate: z.strictObject({ threshold: prob, exploration: prob.optional() }).optional(),
  speculativeTtlMs: nonNeg.optional(),
  tierWeights: z
    .strictObject({ gpu: nonNeg.optional(), cpu: nonNeg.optional(), disk: nonNeg.optional(), speculative: nonNeg.optional() })
    .optional(),
  historyKeys: z.number().int().min(1).optional(),
  recordPredictions: z.boolean().optional(),
  pd: z
    .strictObject({
      nonCachedTokens: z.number().int().min(0).optional(),
      sloPairs: z.boolean().optional(),
      buffer: z.number().positive().optional(),
      ttftWeight: nonNeg.optional(),
      tpotWeight: nonNeg.optional(),
      exploration: prob.optional(),
      topK: z.number().int().min(1).optional(),
      bytesPerToken: nonNeg.optional(),
      bandwidthBytesPerSec: z.number().positive().optional(),
      transferBaseUs: nonNeg.optional(),
    })
    .optional(),
});

/**
 * Validates and fills defaults of an object configuration.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the bad field (or weight token) and what was expected.
 */
export function resolveRouterConfig(config: RouterConfig): ResolvedRouterConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw badConfig('router config must be an object', '');
  const proto = protoKeyPath(config, '');
  if (proto !== undefined) throw badConfig(`router config field ${JSON.stringify(proto)} is not allowed`, proto);
  const parsed = configSchema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue === undefined ? '' : issue.path.map(String).join('.');
    const keys = issue !== undefined && 'keys' in issue ? ` (${(issue.keys as string[]).join(', ')})` : '';
    throw badConfig(`router config ${path === '' ? '' : `field ${JSON.stringify(path)} `}is invalid${keys}: ${issue?.message ?? 'unknown error'}`, path === '' ? keys.trim() : path, parsed.error);
  }
  const c = parsed.data;
  let specs: ScorerSpec[];
  if (c.scorers === undefined) specs = parseScorerWeights('pa:3,qd:2,kp:2');
  else if (typeof c.scorers === 'string') specs = parseScorerWeights(c.scorers);
  else if (Array.isArray(c.scorers)) {
    specs = c.scorers.map((s) => ({ name: canonicalScorerName(s.name), weight: s.weight, ...(s.params ? { params: s.params } : {}) }));
  } else {
    specs = Object.entries(c.scorers as Record<string, number>).map(([name, weight]) => ({ name: canonicalScorerName(name), weight }));
  }
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw badConfig(`scorer ${JSON.stringify(s.name)} appears twice`, s.name);
    seen.add(s.name);
    // validates the parameters (unknown names, bad values) at the boundary
    createScorer(s.name, s.params ?? {});
  }
  const pd = c.pd ?? {};
  return {
    strategy: c.strategy ?? 'scored',
    scorers: specs.map((s) => ({ name: s.name, weight: s.weight, params: s.params ?? {} })),
    picker: c.picker ?? 'max',
    topK: c.topK ?? 2,
    seed: c.seed ?? 0,
    blockSize: c.blockSize ?? 16,
    model: c.model,
    prefixGate: c.prefixGate === undefined ? undefined : { threshold: c.prefixGate.threshold, exploration: c.prefixGate.exploration ?? 0.01 },
    speculativeTtlMs: c.speculativeTtlMs ?? 2000,
    tierWeights: {
      gpu: c.tierWeights?.gpu ?? 1,
      cpu: c.tierWeights?.cpu ?? 0.8,
      disk: c.tierWeights?.disk ?? 0.5,
      speculative: c.tierWeights?.speculative ?? 1,
    },
    historyKeys: c.historyKeys ?? 1 << 18,
    recordPredictions: c.recordPredictions ?? true,
    pd: {
      nonCachedTokens: pd.nonCachedTokens ?? 256,
      sloPairs: pd.sloPairs ?? true,
      buffer: pd.buffer ?? 0.9,
      ttftWeight: pd.ttftWeight ?? 0.8,
      tpotWeight: pd.tpotWeight ?? 0.2,
      exploration: pd.exploration ?? 0.01,
      topK: pd.topK ?? 16,
      bytesPerToken: pd.bytesPerToken ?? 131072,
      bandwidthBytesPerSec: pd.bandwidthBytesPerSec ?? 25e9,
      transferBaseUs: pd.transferBaseUs ?? 1000,
    },
  };
}

/**
 * Parses a configuration given as text: a preset name (`round-robin`, `random`,
 * `kvmgr-default`, `llm-d-default`), a weight string (one line with `:`; `pa:3,qd:2,kv:2`), or
 * a YAML document (contains a newline or starts with `{`).
 * @throws KvmgrError `KVMGR_BAD_CONFIG` on an unknown preset, bad YAML, or an invalid config.
 */
export function parseRouterConfig(text: string): ResolvedRouterConfig {
  if (typeof text !== 'string') throw badConfig(`router config must be a string, got ${typeof text}`, '');
  const t = text.trim();
  // own properties only: `__proto__`, `toString` are not presets
  const preset = Object.hasOwn(ROUTER_PRESETS, t) ? ROUTER_PRESETS[t] : undefined;
  if (preset !== undefined) return resolveRouterConfig(preset);
  if (t.includes('\n') || t.startsWith('{')) {
    let doc: unknown;
    try {
      doc = parseYamlText(t, 'router config');
    } catch (e) {
      // core's one-line message, plus the token this module's errors carry
      throw badConfig((e as Error).message, t.slice(0, 40), e);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      throw badConfig('router config YAML must be a mapping', t.slice(0, 40));
    }
    return resolveRouterConfig(doc as RouterConfig);
  }
  if (t.includes(':')) return resolveRouterConfig({ scorers: parseScorerWeights(t) });
  throw badConfig(
    `unknown router preset ${JSON.stringify(t)}; expected one of ${Object.keys(ROUTER_PRESETS).join(', ')}, a weight string like "pa:3,qd:2,kv:2", or YAML`,
    t,
  );
}
