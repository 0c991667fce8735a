/**
 * Live A/B of two routing configurations at the gateway: each request is assigned an arm by a
 * stable hash of its conversation key (so a conversation stays on one arm and keeps its prefix
 * cache there), routed by that arm's router, and its outcome recorded per arm. `GET /admin/ab`
 * reports per-arm means with 95% confidence intervals and the differences `b − a` with Welch's
 * unpaired t-interval: a live split serves different requests on each arm, so there are no pairs
 * (the paired bootstrap of `kvmgr ab` needs the same trace replayed on both configurations).
 *
 * @see B. L. Welch, "The generalization of 'Student's' problem when several different population
 *   variances are involved", Biometrika 34 (1947) — the interval and its Welch–Satterthwaite
 *   degrees of freedom.
 */
import { createHash } from 'node:crypto';
import { KvmgrError, isKvmgrError } from '@kvmgr/core';
import type { ResolvedRouterConfig, Router } from '@kvmgr/router';
import jstat from 'jstat';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { sectionError } from './config-error.js';
import { type PdSettings, resolveRouting } from './config.js';

/** One arm of an A/B configuration, resolved. */
export interface AbArmConfig {
  /** Name in `/admin/ab`, logs and metrics. @default 'a' / 'b' */
  readonly name: string;
  readonly routing: ResolvedRouterConfig;
  /** Whether the arm's routing set `blockSize` (else it follows the endpoints' block size, as the main router). */
  readonly blockSizeFixed: boolean;
}

/** The `ab` section of the gateway configuration, resolved. */
export interface ResolvedAbConfig {
  /** Fraction 0..1 of the conversations routed by arm `b`; the rest go to arm `a`. @default 0.5 */
  readonly split: number;
  readonly a: AbArmConfig;
  readonly b: AbArmConfig;
  /** Mixed into the hash, so a new experiment can reshuffle who lands where. @default '' */
  readonly salt: string;
  /** Request header naming the conversation (lower-case). @default 'x-session-id' */
  readonly sessionHeader: string;
}

const armSchema = z.strictObject({ name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected 1-64 letters, digits, _ . or -').optional(), routing: z.unknown() });
const abSchema = z.strictObject({
  split: z.number().min(0).max(1).optional(),
  a: armSchema,
  b: armSchema,
  salt: z.string().optional(),
  sessionHeader: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/, 'expected an HTTP header name')
    .optional(),
});

function badAb(key: string, message: string, cause?: unknown): KvmgrError {
  return new KvmgrError('KVMGR_BAD_CONFIG', `${key}: ${message}`, cause === undefined ? { details: { key } } : { details: { key }, cause });
}

/**
 * Validates the `ab` section: `{ split?, a: { name?, routing }, b: { name?, routing }, salt?, sessionHeader? }`,
 * each `routing` in any form the gateway's `routing` key takes (preset, weight string, router
 * object, llm-d `plugins` + `schedulingProfiles`).
 *
 * @param input - the section's value.
 * @param model - the key namespace's model (written into each arm's router config).
 * @param key - the section's key, for messages. @default 'ab'
 * @param pd - the gateway's P/D settings, applied to both arms' routers as to the top-level routing. @default none
 * @throws KvmgrError `KVMGR_BAD_CONFIG` whose one-line message starts with the bad key
 *   (`ab.split: …`, `ab.b.routing.scorers: …`), or when both arms have the same name.
 */
export function resolveAbConfig(input: unknown, model?: string, key = 'ab', pd?: Pick<PdSettings, 'threshold' | 'sloPairs'>): ResolvedAbConfig {
  const r = abSchema.safeParse(input);
  if (!r.success) {
    throw sectionError(key, r.error);
  }
  const v = r.data;
  const arm = (which: 'a' | 'b'): AbArmConfig => {
    const given = v[which];
    if (given.routing === undefined) throw badAb(`${key}.${which}.routing`, 'expected a routing configuration (preset, weight string or mapping)');
    try {
      const { config, blockSizeFixed } = resolveRouting(given.routing, model, pd);
      return { name: given.name ?? which, routing: config, blockSizeFixed };
    } catch (e) {
      if (!isKvmgrError(e)) throw e;
      // resolveRouting's messages start with `routing…:`; this routing sits under `ab.<arm>`
      throw badAb(`${key}.${which}.${e.message.split(':')[0] as string}`, e.message.slice(e.message.indexOf(':') + 2), e);
    }
  };
  const a = arm('a');
  const b = arm('b');
  if (a.name === b.name) throw badAb(`${key}.b.name`, `the arms need different names, both are ${JSON.stringify(a.name)}`);
  return { split: v.split ?? 0.5, a, b, salt: v.salt ?? '', sessionHeader: (v.sessionHeader ?? 'x-session-id').toLowerCase() };
}

/**
 * The stable position of a conversation key in [0, 1): the first 48 bits of
 * SHA-256(`salt` NUL `key`) over 2^48. The same on every gateway replica and across restarts.
 */
export function abHashUnit(key: string, salt = ''): number {
  const d = createHash('sha256').update(salt).update('\0').update(key).digest();
  return d.readUIntBE(0, 6) / 2 ** 48;
}

/** Where a request's conversation key came from. */
export type AbKeySource = 'session' | 'user' | 'request';

/** Count, mean and sum of squared deviations from the mean of one metric's observations. */
export interface AbMoments {
  readonly n: number;
  readonly mean: number;
  /** Σ (x − mean)². */
  readonly m2: number;
}

/** Running count, mean and sum of squared deviations (Welford's online algorithm). */
class Moments implements AbMoments {
  n = 0;
  mean = 0;
  m2 = 0;
  add(x: number): void {
    this.n++;
    const d = x - this.mean;
    this.mean += d / this.n;
    this.m2 += d * (x - this.mean);
  }
}

/** Sample variance (n − 1); NaN below 2 samples. */
function varianceOf(m: AbMoments): number {
  return m.n > 1 ? m.m2 / (m.n - 1) : Number.NaN;
}

/**
 * The moments of the union of two disjoint sets of observations, from the moments of each
 * (Chan, Golub and LeVeque's pairwise update): n = nA + nB, δ = meanB − meanA,
 * mean = meanA + δ·nB/n, M2 = M2A + M2B + δ²·nA·nB/n. Exact in real arithmetic (the count always:
 * it is an integer sum); in floating point it agrees with Welford's pass over all the
 * observations to rounding. Merging with an empty side returns the other side unchanged.
 *
 * @see T. F. Chan, G. H. Golub, R. J. LeVeque, "Updating formulae and a pairwise algorithm for
 *   computing sample variances", Stanford CS tech. report STAN-CS-79-773 (1979).
 */
export function mergeMoments(a: AbMoments, b: AbMoments): AbMoments {
  if (b.n === 0) return { n: a.n, mean: a.mean, m2: a.m2 };
  if (a.n === 0) return { n: b.n, mean: b.mean, m2: b.m2 };
  const n = a.n + b.n;
  const d = b.mean - a.mean;
  return { n, mean: a.mean + (d * b.n) / n, m2: a.m2 + b.m2 + (d * d * a.n * b.n) / n };
}

/** The metrics recorded per request, by name. */
export const AB_METRICS = {
  ttftMs: { unit: 'ms', summary: 'time to the first byte of the response (the whole response when not streamed), successful requests' },
  e2eMs: { unit: 'ms', summary: 'time to the last byte, successful requests' },
  tpotMs: { unit: 'ms', summary: '(E2E − TTFT) / (completion tokens − 1), streamed successful requests with ≥ 2 completion tokens' },
  cachedShare: { unit: 'fraction', summary: 'cached_tokens / prompt_tokens from the response usage, requests that report them' },
  goodput: { unit: 'fraction', summary: '1 when the request succeeded within its x-slo-ttft-ms and x-slo-tpot-ms (those given; TPOT judged when measured), else 0; every request' },
  errors: { unit: 'fraction', summary: '1 when the request failed (gateway or upstream status other than 200, broken stream), else 0; every request' },
} as const;

/** A metric name of {@link AB_METRICS}. */
export type AbMetricName = keyof typeof AB_METRICS;
const METRIC_NAMES = Object.keys(AB_METRICS) as AbMetricName[];

/** The outcome of one request, as recorded for its arm. */
export interface AbOutcome {
  /** Whether it succeeded (status 200, stream complete). */
  readonly ok: boolean;
  /** ms, successful requests. */
  readonly ttftMs?: number | undefined;
  /** ms, successful requests. */
  readonly e2eMs?: number | undefined;
  readonly stream: boolean;
  readonly promptTokens?: number | undefined;
  readonly completionTokens?: number | undefined;
  readonly cachedTokens?: number | null | undefined;
  /** The request's SLO targets, ms (from its headers). */
  readonly slo: { readonly ttftMs?: number | undefined; readonly tpotMs?: number | undefined };
}

/** Mean of a metric with its confidence interval. */
export interface AbMean {
  readonly n: number;
  readonly mean: number | null;
  readonly sd: number | null;
  /** Student-t interval of the mean; null below 2 samples. */
  readonly ciLow: number | null;
  readonly ciHigh: number | null;
}

/** One arm in `/admin/ab`. */
export interface AbArmReport {
  readonly name: string;
  /** Configured share of conversations. */
  readonly split: number;
  /** Requests assigned to the arm (recorded or not yet finished). */
  readonly assigned: number;
  /** Requests recorded (finished or refused). */
  readonly requests: number;
  readonly routing: ResolvedRouterConfig;
  readonly metrics: Readonly<Record<AbMetricName, AbMean>>;
}

/** A difference of means `b − a` with Welch's interval. */
export interface AbDifference {
  readonly unit: string;
  readonly meanA: number | null;
  readonly meanB: number | null;
  /** `meanB − meanA`; null when an arm has no sample. */
  readonly diff: number | null;
  /** Welch interval; null unless both arms have ≥ 2 samples. */
  readonly ciLow: number | null;
  readonly ciHigh: number | null;
  /** Welch–Satterthwaite degrees of freedom (null where the interval is). */
  readonly dof: number | null;
  /** `(meanB − meanA) / meanA`; null when meanA is 0 or missing. */
  readonly relChange: number | null;
}

/** What `GET /admin/ab` returns while an experiment runs. */
export interface AbReport {
  readonly active: true;
  /** First 12 hex digits of SHA-256 of the canonical arms, split and salt. */
  readonly id: string;
  /** When the experiment (this configuration) started, ISO 8601. */
  readonly since: string;
  readonly level: number;
  readonly method: string;
  readonly sessionHeader: string;
  /** Requests by where their conversation key came from. */
  readonly keySources: Readonly<Record<AbKeySource, number>>;
  readonly arms: { readonly a: AbArmReport; readonly b: AbArmReport };
  readonly differences: Readonly<Record<AbMetricName, AbDifference>>;
  /**
   * What the statistics cover, when the gateway shares state through Redis (absent without
   * `redis`): `fleet` (merged over every replica that recorded this experiment) or `local`
   * (this replica only: asked with `?scope=local`, or the fleet view was unavailable).
   */
  readonly scope?: 'fleet' | 'local';
  /** Replicas whose statistics are merged (1 in the local view). With `redis` only. */
  readonly replicas?: number;
  /** Each merged replica's share. With `redis` only. */
  readonly contributors?: readonly AbContributor[];
  /**
   * Why the fleet view was asked for but the local one is given (Redis degraded, failing or
   * slower than `commandTimeoutMs`); null otherwise. With `redis` only.
   */
  readonly fallback?: string | null;
}

/** One replica's share of a fleet-wide report. */
export interface AbContributor {
  readonly replica: string;
  /** When its experiment started, ISO 8601. */
  readonly since: string;
  /** When its statistics were written (this replica's: now), ISO 8601. */
  readonly updated: string;
  /** Requests it recorded, both arms. */
  readonly requests: number;
}

/**
 * What one replica has recorded of an experiment: every count and running moment the report is
 * computed from. Snapshots of disjoint traffic merge ({@link mergeAbSnapshots}) into the
 * snapshot of all of it.
 */
export interface AbSnapshot {
  /** The experiment's id. */
  readonly id: string;
  /** When the experiment started, ms since the epoch (merged: the earliest). */
  readonly sinceMs: number;
  /** Per arm (a, b). */
  readonly assigned: readonly [number, number];
  readonly recorded: readonly [number, number];
  readonly keySources: Readonly<Record<AbKeySource, number>>;
  /** Per arm (a, b), per metric. */
  readonly stats: readonly [Readonly<Record<AbMetricName, AbMoments>>, Readonly<Record<AbMetricName, AbMoments>>];
}

/** The metric names, in report order. */
export const AB_METRIC_NAMES: readonly AbMetricName[] = METRIC_NAMES;

/**
 * Merges the snapshots of one experiment taken on disjoint traffic (different replicas): counts
 * add, moments merge by {@link mergeMoments}, `sinceMs` is the earliest.
 *
 * @throws Error when the ids differ (different experiments do not merge).
 */
export function mergeAbSnapshots(a: AbSnapshot, b: AbSnapshot): AbSnapshot {
  if (a.id !== b.id) throw new Error(`cannot merge A/B statistics of experiments ${a.id} and ${b.id}`);
  const arm = (i: 0 | 1) => Object.fromEntries(METRIC_NAMES.map((m) => [m, mergeMoments(a.stats[i][m], b.stats[i][m])])) as Record<AbMetricName, AbMoments>;
  return {
    id: a.id,
    sinceMs: Math.min(a.sinceMs, b.sinceMs),
    assigned: [a.assigned[0] + b.assigned[0], a.assigned[1] + b.assigned[1]],
    recorded: [a.recorded[0] + b.recorded[0], a.recorded[1] + b.recorded[1]],
    keySources: { session: a.keySources.session + b.keySources.session, user: a.keySources.user + b.keySources.user, request: a.keySources.request + b.keySources.request },
    stats: [arm(0), arm(1)],
  };
}

/** Where a report's statistics come from: a (merged) snapshot and how it was put together. */
export interface AbView {
  readonly snapshot: AbSnapshot;
  readonly scope: 'fleet' | 'local';
  readonly contributors: readonly AbContributor[];
  readonly fallback: string | null;
}

/** Student-t interval of one mean. */
function meanOf(m: AbMoments, level: number): AbMean {
  if (m.n === 0) return { n: 0, mean: null, sd: null, ciLow: null, ciHigh: null };
  if (m.n === 1) return { n: 1, mean: m.mean, sd: null, ciLow: null, ciHigh: null };
  const sd = Math.sqrt(varianceOf(m));
  const half = sd === 0 ? 0 : jstat.jStat.studentt.inv(1 - (1 - level) / 2, m.n - 1) * (sd / Math.sqrt(m.n));
  return { n: m.n, mean: m.mean, sd, ciLow: m.mean - half, ciHigh: m.mean + half };
}

/**
 * Welch's interval of `mean(b) − mean(a)` at `level`: half-width t(ν) · √(s²a/na + s²b/nb), with
 * ν = (s²a/na + s²b/nb)² / ((s²a/na)²/(na − 1) + (s²b/nb)²/(nb − 1)). Both variances 0 give a
 * zero-width interval. On 0/1 metrics (goodput, errors) it is the normal-theory interval of a
 * difference of proportions.
 *
 * @param a - arm a's count, mean and sample variance.
 * @param b - arm b's.
 * @param level - confidence level 0..1.
 * @returns `{ diff, ciLow, ciHigh, dof }`; the interval and dof null when an arm has < 2 samples.
 */
export function welchInterval(
  a: { readonly n: number; readonly mean: number; readonly variance: number },
  b: { readonly n: number; readonly mean: number; readonly variance: number },
  level = 0.95,
): { diff: number | null; ciLow: number | null; ciHigh: number | null; dof: number | null } {
  if (a.n === 0 || b.n === 0) return { diff: null, ciLow: null, ciHigh: null, dof: null };
  const diff = b.mean - a.mean;
  if (a.n < 2 || b.n < 2) return { diff, ciLow: null, ciHigh: null, dof: null };
  const va = a.variance / a.n;
  const vb = b.variance / b.n;
  const se2 = va + vb;
  if (se2 === 0) return { diff, ciLow: diff, ciHigh: diff, dof: a.n + b.n - 2 };
  const dof = (se2 * se2) / ((va * va) / (a.n - 1) + (vb * vb) / (b.n - 1));
  const half = jstat.jStat.studentt.inv(1 - (1 - level) / 2, dof) * Math.sqrt(se2);
  return { diff, ciLow: diff - half, ciHigh: diff + half, dof };
}

/** An arm at run time. */
export interface AbArm {
  readonly name: string;
  /** 0 = a, 1 = b. */
  readonly index: 0 | 1;
}

/**
 * A running A/B experiment: assigns arms, hands out each arm's router, records outcomes and
 * reports. Replaced as a whole when `PUT /admin/routing` changes the `ab` section (statistics
 * start over with the new configuration).
 */
export class AbExperiment {
  readonly config: ResolvedAbConfig;
  readonly id: string;
  readonly sinceMs: number;
  private readonly build: (config: ResolvedRouterConfig) => Router;
  private readonly routers: [Router | undefined, Router | undefined] = [undefined, undefined];
  private readonly stats: [Record<AbMetricName, Moments>, Record<AbMetricName, Moments>];
  private readonly assigned: [number, number] = [0, 0];
  private readonly recorded: [number, number] = [0, 0];
  private readonly sources: Record<AbKeySource, number> = { session: 0, user: 0, request: 0 };
  private readonly arms: readonly [AbArm, AbArm];
  /** True when something was assigned or recorded since the last {@link takeDirty}. */
  private dirty = false;

  /**
   * @param config - the resolved `ab` section.
   * @param build - makes a router over the pool's index for a router configuration (validates it).
   * @param nowMs - start time, ms since the epoch. @default Date.now()
   * @throws KvmgrError from `build` when an arm's router configuration is invalid.
   */
  constructor(config: ResolvedAbConfig, build: (config: ResolvedRouterConfig) => Router, nowMs = Date.now()) {
    this.config = config;
    this.build = build;
    this.sinceMs = nowMs;
    this.id = createHash('sha256')
      .update(JSON.stringify([config.a, config.b, config.split, config.salt]))
      .digest('hex')
      .slice(0, 12);
    const fresh = () => Object.fromEntries(METRIC_NAMES.map((m) => [m, new Moments()])) as Record<AbMetricName, Moments>;
    this.stats = [fresh(), fresh()];
    this.arms = [
      { name: config.a.name, index: 0 },
      { name: config.b.name, index: 1 },
    ];
    // validate both routers now, so a bad arm is refused before it takes traffic
    this.routers[0] = build(config.a.routing);
    this.routers[1] = build(config.b.routing);
  }

  /**
   * The arm of a request: arm b when {@link abHashUnit} of its conversation key is below `split`.
   * The key is the `sessionHeader` header, else the body's OpenAI `user` field, else the request id.
   *
   * @param headers - request headers (lower-case names).
   * @param body - the parsed request body.
   * @param requestId - the request's id.
   */
  assign(headers: Readonly<Record<string, string | string[] | undefined>>, body: Readonly<Record<string, unknown>>, requestId: string): AbArm {
    const h = headers[this.config.sessionHeader];
    const session = Array.isArray(h) ? h[0] : h;
    const user = body['user'];
    let key: string;
    if (session !== undefined && session !== '') {
      key = `s:${session}`;
      this.sources.session++;
    } else if (typeof user === 'string' && user !== '') {
      key = `u:${user}`;
      this.sources.user++;
    } else {
      key = `r:${requestId}`;
      this.sources.request++;
    }
    const arm = this.arms[abHashUnit(key, this.config.salt) < this.config.split ? 1 : 0] as AbArm;
    this.assigned[arm.index]++;
    this.dirty = true;
    return arm;
  }

  /**
   * The router of an arm, keyed by `blockSize` like the gateway's own router: an arm without its
   * own `blockSize` follows `blockSize` (the block size the endpoints report).
   */
  routerOf(arm: AbArm, blockSize: number): Router {
    const cfg = arm.index === 0 ? this.config.a : this.config.b;
    const want = cfg.blockSizeFixed ? cfg.routing.blockSize : blockSize;
    const have = this.routers[arm.index] as Router;
    if (have.config.blockSize === want) return have;
    const next = this.build({ ...cfg.routing, blockSize: want });
    this.routers[arm.index] = next;
    return next;
  }

  /** Records a finished (or refused) request of `arm`. */
  record(arm: AbArm, o: AbOutcome): void {
    const s = this.stats[arm.index];
    this.recorded[arm.index]++;
    this.dirty = true;
    let tpot: number | undefined;
    if (o.ok) {
      if (o.ttftMs !== undefined) s.ttftMs.add(o.ttftMs);
      if (o.e2eMs !== undefined) s.e2eMs.add(o.e2eMs);
      if (o.stream && o.ttftMs !== undefined && o.e2eMs !== undefined && o.completionTokens !== undefined && o.completionTokens >= 2) {
        tpot = (o.e2eMs - o.ttftMs) / (o.completionTokens - 1);
        s.tpotMs.add(tpot);
      }
      if (o.cachedTokens !== undefined && o.cachedTokens !== null && o.promptTokens !== undefined && o.promptTokens > 0) s.cachedShare.add(o.cachedTokens / o.promptTokens);
    }
    const met = o.ok && (o.slo.ttftMs === undefined || (o.ttftMs !== undefined && o.ttftMs <= o.slo.ttftMs)) && (o.slo.tpotMs === undefined || tpot === undefined || tpot <= o.slo.tpotMs);
    s.goodput.add(met ? 1 : 0);
    s.errors.add(o.ok ? 0 : 1);
  }

  /** Whether anything was assigned or recorded since the last call (and clears the flag). */
  takeDirty(): boolean {
    const d = this.dirty;
    this.dirty = false;
    return d;
  }

  /** A copy of everything recorded so far (this replica's traffic). */
  snapshot(): AbSnapshot {
    const arm = (i: 0 | 1) => Object.fromEntries(METRIC_NAMES.map((m) => [m, { n: this.stats[i][m].n, mean: this.stats[i][m].mean, m2: this.stats[i][m].m2 }])) as Record<AbMetricName, AbMoments>;
    return { id: this.id, sinceMs: this.sinceMs, assigned: [...this.assigned], recorded: [...this.recorded], keySources: { ...this.sources }, stats: [arm(0), arm(1)] };
  }

  /**
   * The report of `GET /admin/ab`.
   *
   * @param level - confidence level. @default 0.95
   * @param view - the statistics to report (a fleet-wide merge) and where they come from; without
   *   it, this replica's own, with no `scope` fields (as without Redis).
   */
  report(level = 0.95, view?: AbView): AbReport {
    const snap = view?.snapshot ?? this.snapshot();
    const armReport = (i: 0 | 1): AbArmReport => {
      const cfg = i === 0 ? this.config.a : this.config.b;
      const s = snap.stats[i];
      return {
        name: cfg.name,
        split: i === 0 ? 1 - this.config.split : this.config.split,
        assigned: snap.assigned[i],
        requests: snap.recorded[i],
        routing: (this.routers[i] as Router).config,
        metrics: Object.fromEntries(METRIC_NAMES.map((m) => [m, meanOf(s[m], level)])) as Record<AbMetricName, AbMean>,
      };
    };
    const differences = Object.fromEntries(
      METRIC_NAMES.map((m) => {
        const a = snap.stats[0][m];
        const b = snap.stats[1][m];
        const w = welchInterval({ n: a.n, mean: a.mean, variance: varianceOf(a) }, { n: b.n, mean: b.mean, variance: varianceOf(b) }, level);
        return [
          m,
          {
            unit: AB_METRICS[m].unit,
            meanA: a.n === 0 ? null : a.mean,
            meanB: b.n === 0 ? null : b.mean,
            ...w,
            relChange: w.diff === null || a.mean === 0 ? null : w.diff / a.mean,
          },
        ];
      }),
    ) as Record<AbMetricName, AbDifference>;
    return {
      active: true,
      id: this.id,
      since: new Date(snap.sinceMs).toISOString(),
      level,
      method: "Welch's unpaired t-interval of mean(b) − mean(a) (a live split has no paired requests); per-arm means with Student-t intervals",
      sessionHeader: this.config.sessionHeader,
      keySources: { ...snap.keySources },
      arms: { a: armReport(0), b: armReport(1) },
      differences,
      ...(view === undefined ? {} : { scope: view.scope, replicas: view.contributors.length, contributors: view.contributors, fallback: view.fallback }),
    };
  }
}

/** The A/B metric families. */
export interface AbMetrics {
  /** `kvmgr_gateway_ab_decisions_total{arm, endpoint, reason}`: routing decisions by arm. */
  readonly decisions: Counter<'arm' | 'endpoint' | 'reason'>;
  /** `kvmgr_gateway_ab_requests_total{arm, outcome}`: recorded requests by arm, outcome `ok` | `error`. */
  readonly requests: Counter<'arm' | 'outcome'>;
}

/**
 * Registers the A/B families in `registry` (label `arm` is the arm's configured name, so two
 * values while an experiment runs; series of earlier experiments stay until restart).
 */
export function createAbMetrics(registry: Registry): AbMetrics {
  const registers = [registry];
  return {
    decisions: new Counter({ name: 'kvmgr_gateway_ab_decisions_total', help: 'Routing decisions by A/B arm, endpoint and reason.', labelNames: ['arm', 'endpoint', 'reason'], registers }),
    requests: new Counter({ name: 'kvmgr_gateway_ab_requests_total', help: 'Requests recorded by A/B arm and outcome (ok, error).', labelNames: ['arm', 'outcome'], registers }),
  };
}
