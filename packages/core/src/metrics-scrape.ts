/**
 * Scraping an engine's Prometheus `/metrics` endpoint into an {@link EngineSnapshot}: fetch with a
 * timeout, parse the text exposition, aggregate across ranks, map with a per-engine mapper (the
 * adapters publish one per engine), and keep books per endpoint (snapshot age and staleness,
 * error counters by kind).
 *
 * Parsing. `parse-prometheus-text-format` tokenizes sample lines (label escapes). It is given only
 * the sample lines, never the `# TYPE` lines, because its own histogram assembly keeps one
 * label set per family (the last one) and drops `_sum`/`_count` of labelled series, and it drops
 * the last sample of a text without a trailing newline. kvmgr assembles families itself from
 * sample names, which also makes the order of `_sum`, `_count` and `_bucket` irrelevant (old
 * SGLang expositions list `_sum` first). Lines are checked first, so text that is not a
 * Prometheus exposition (an HTML page, JSON) fails with the line number.
 *
 * Ranks. Engines with tensor or pipeline parallelism may export one series per rank (`tp_rank`,
 * `pp_rank`, as newer SGLang does); all ranks of one scheduler see the same batch, so those series
 * are replicas: kvmgr keeps the largest value of each replica set (a non-leader rank that reports
 * 0 does not hide the leader). Data-parallel ranks (`dp_rank`, vLLM's `engine`) are independent
 * schedulers with their own KV pools: counts (requests, tokens, blocks) are summed over them and
 * usage ratios are averaged (the pools are equal-sized, so the mean is the instance-wide ratio).
 *
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 * @see sgl-project/sglang:python/sglang/srt/metrics/collector.py (tp_rank / dp_rank labels)
 */
// @ts-expect-error -- parse-prometheus-text-format publishes no type declarations
import parsePrometheusTextFormatUntyped from 'parse-prometheus-text-format';
import type { EngineKind, EngineSnapshot } from './engine.js';
import { KvmgrError } from './errors.js';
import type { InstanceRole } from './kv-cache-spec.js';
import { requirePositiveInt, requirePositiveNumber } from './validate.js';

/** What the tokenizer returns for untyped families (the only kind it is given). */
interface TokenizedFamily {
  readonly name: string;
  readonly metrics: ReadonlyArray<{ readonly value?: string; readonly labels?: Readonly<Record<string, string>> }>;
}
const tokenize = parsePrometheusTextFormatUntyped as (text: string) => TokenizedFamily[];

/** A Prometheus metric type as written on a `# TYPE` line (lower case). */
export type PromMetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped' | 'info' | 'stateset' | 'gaugehistogram' | 'unknown';

/** One sample: a full sample name (`vllm:ttft_seconds_bucket`), its labels and its value. */
export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The value; `+Inf`, `-Inf` and `NaN` as the JavaScript numbers. */
  readonly value: number;
}

/** A parsed text exposition. */
export interface MetricsExposition {
  /** Every sample, in text order. */
  readonly samples: readonly PromSample[];
  /** Family name → type, from `# TYPE` lines. */
  readonly types: ReadonlyMap<string, PromMetricType>;
  /** Family name → help text, from `# HELP` lines. */
  readonly help: ReadonlyMap<string, string>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{.*\})?\s*(\S+)(?:\s+-?\d+)?$/;
const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped', 'info', 'stateset', 'gaugehistogram', 'unknown']);

/** Parses a sample value: a float, `+Inf`, `-Inf` or `NaN`; undefined when it is none of those. */
function parseValue(text: string): number | undefined {
  if (/^\+?Inf$/i.test(text)) return Number.POSITIVE_INFINITY;
  if (/^-Inf$/i.test(text)) return Number.NEGATIVE_INFINITY;
  if (/^NaN$/i.test(text)) return Number.NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  return Number(text);
}

function protocolError(line: number, text: string, expected: string): KvmgrError {
  const shown = text.length > 60 ? `${text.slice(0, 57)}...` : text;
  return new KvmgrError('KVMGR_PROTOCOL', `metrics line ${line}: expected ${expected}, got ${JSON.stringify(shown)}`, {
    details: { line, text: shown },
  });
}

/**
 * Parses Prometheus text exposition format 0.0.4 (and the OpenMetrics text that engines send to
 * Prometheus clients: `# EOF` and `# UNIT` lines are accepted as comments).
 *
 * @param text - the body of a `/metrics` response.
 * @returns every sample with its labels and numeric value, and the families' types and help.
 * @throws KvmgrError `KVMGR_PROTOCOL` naming the first line that is neither a comment nor a
 *   sample `name{labels} value [timestamp]`, or a `# TYPE` line with an unknown type.
 */
export function parseExposition(text: string): MetricsExposition {
  const lines = text.split(/\r?\n/);
  const types = new Map<string, PromMetricType>();
  const help = new Map<string, string>();
  const sampleLines: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(TYPE|HELP)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest = ''] = m as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) throw protocolError(i + 1, line, 'a metric name after # TYPE/# HELP');
      if (kind === 'TYPE') {
        const type = rest.trim().toLowerCase();
        if (!TYPES.has(type)) throw protocolError(i + 1, line, 'a metric type (counter, gauge, histogram, summary, untyped)');
        types.set(name, type as PromMetricType);
      } else {
        help.set(name, rest);
      }
      continue;
    }
    const m = SAMPLE_LINE.exec(line);
    if (!m || parseValue(m[3] as string) === undefined) throw protocolError(i + 1, line, 'a sample line `name{labels} value`');
    sampleLines.push(line);
  }
  const samples: PromSample[] = [];
  let families: TokenizedFamily[];
  try {
    // The trailing newline matters: without it the tokenizer drops the last sample.
    families = tokenize(`${sampleLines.join('\n')}\n`);
  } catch (e) {
    throw new KvmgrError('KVMGR_PROTOCOL', `metrics text: ${(e as Error).message}`, { cause: e });
  }
  for (const f of families) {
    for (const s of f.metrics) {
      const value = parseValue(s.value ?? '');
      if (value === undefined) throw new KvmgrError('KVMGR_PROTOCOL', `metrics text: sample ${f.name} has no numeric value`);
      samples.push({ name: f.name, labels: s.labels ?? {}, value });
    }
  }
  return { samples, types, help };
}

/** Labels whose series are replicas of one scheduler's state (tensor / pipeline parallel ranks). */
export const REPLICA_LABELS: readonly string[] = Object.freeze(['tp_rank', 'pp_rank']);

/** How {@link aggregateSamples} combines independent series (data-parallel ranks, engines). */
export type SeriesAggregate = 'sum' | 'mean' | 'max' | 'min';

function seriesKey(name: string, labels: Readonly<Record<string, string>>, drop: readonly string[]): string {
  const keys = Object.keys(labels)
    .filter((k) => !drop.includes(k))
    .sort();
  return `${name}{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
}

/**
 * The samples named `name` with replica series (same labels but {@link REPLICA_LABELS}) folded
 * into one: the largest value, labels without the replica labels.
 *
 * @param expo - a parsed exposition.
 * @param name - a full sample name, e.g. `sglang:num_running_reqs`.
 * @param match - only samples whose labels include these pairs.
 */
export function independentSeries(expo: MetricsExposition, name: string, match: Readonly<Record<string, string>> = {}): PromSample[] {
  const byKey = new Map<string, PromSample>();
  for (const s of expo.samples) {
    if (s.name !== name) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    const key = seriesKey(s.name, s.labels, REPLICA_LABELS);
    const prev = byKey.get(key);
    if (prev === undefined || s.value > prev.value) {
      const labels = Object.fromEntries(Object.entries(s.labels).filter(([k]) => !REPLICA_LABELS.includes(k)));
      byKey.set(key, { name: s.name, labels, value: s.value });
    }
  }
  return [...byKey.values()];
}

/**
 * Aggregates one sample name over its independent series (see {@link independentSeries}).
 *
 * @param expo - a parsed exposition.
 * @param name - a full sample name.
 * @param how - `sum` for counts (requests, tokens, blocks), `mean` for usage ratios of
 *   equal-sized pools, `max`/`min` for bounds.
 * @param match - only samples whose labels include these pairs.
 * @returns the aggregate, or undefined when the exposition has no such sample.
 */
export function aggregateSamples(expo: MetricsExposition, name: string, how: SeriesAggregate, match: Readonly<Record<string, string>> = {}): number | undefined {
  const series = independentSeries(expo, name, match);
  if (series.length === 0) return undefined;
  const values = series.map((s) => s.value);
  switch (how) {
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'mean':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'max':
      return Math.max(...values);
    case 'min':
      return Math.min(...values);
  }
}

/**
 * Sums one sample name per value of a label (`vllm:num_requests_waiting_by_reason` by `reason`).
 *
 * @returns label value → sum over independent series; `{}` when there is no such sample. Series
 *   without the label are left out.
 */
export function sumByLabel(expo: MetricsExposition, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of independentSeries(expo, name)) {
    const v = s.labels[label];
    if (v !== undefined) out[v] = (out[v] ?? 0) + s.value;
  }
  return out;
}

/** A histogram summed over its independent series. */
export interface HistogramTotals {
  /** Observations (`_count`). */
  readonly count: number;
  /** Sum of observed values (`_sum`), in the histogram's unit. */
  readonly sum: number;
  /** Cumulative buckets by upper bound, ascending; `le` is `Infinity` for `+Inf`. */
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>;
}

/**
 * Reads histogram family `family` (samples `family_bucket`, `family_sum`, `family_count`, in any
 * order) and sums it over independent series, bucket by bucket.
 *
 * @returns the totals, or undefined when neither `_count` nor `_bucket` samples exist.
 */
export function histogramTotals(expo: MetricsExposition, family: string): HistogramTotals | undefined {
  const count = aggregateSamples(expo, `${family}_count`, 'sum');
  const sum = aggregateSamples(expo, `${family}_sum`, 'sum') ?? 0;
  const byLe = new Map<number, number>();
  for (const s of independentSeries(expo, `${family}_bucket`)) {
    const le = parseValue(s.labels['le'] ?? '');
    if (le === undefined) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  if (count === undefined && byLe.size === 0) return undefined;
  const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]).map(([le, c]) => ({ le, count: c }));
  return { count: count ?? byLe.get(Number.POSITIVE_INFINITY) ?? 0, sum, buckets };
}

/** Metric-name prefixes by engine, in detection order. */
const ENGINE_PREFIXES: ReadonlyArray<readonly [EngineKind, string]> = [
  ['vllm', 'vllm:'],
  ['sglang', 'sglang:'],
  ['lmdeploy', 'lmdeploy:'],
  ['tgi', 'tgi_'],
];

/**
 * Guesses the engine from metric-name prefixes (`vllm:`, `sglang:`, `lmdeploy:`, `tgi_`): the
 * prefix with the most samples wins (a vLLM exposition may carry an `lmcache:` or a few foreign
 * series).
 *
 * @returns the engine, or undefined when no sample has a known prefix.
 */
export function detectEngine(expo: MetricsExposition): Exclude<EngineKind, 'kvmgr'> | undefined {
  const counts = new Map<EngineKind, number>();
  for (const s of expo.samples) {
    for (const [engine, prefix] of ENGINE_PREFIXES) {
      if (s.name.startsWith(prefix)) counts.set(engine, (counts.get(engine) ?? 0) + 1);
    }
  }
  let best: EngineKind | undefined;
  for (const [engine] of ENGINE_PREFIXES) {
    if ((counts.get(engine) ?? 0) > (best === undefined ? 0 : (counts.get(best) ?? 0))) best = engine;
  }
  return best as Exclude<EngineKind, 'kvmgr'> | undefined;
}

/** What a mapper knows besides the exposition. */
export interface MetricsMapContext {
  /** Id of the instance the exposition came from (the scraper uses the URL by default). */
  readonly instanceId: string;
  readonly role: InstanceRole;
  /** Time of the scrape, µs (wall clock, `Date.now() * 1000` in the scraper). */
  readonly timeUs: number;
}

/**
 * Maps one engine's exposition to a snapshot. Adapters publish one per engine
 * (`mapVllmMetrics`, `mapSglangMetrics`, `mapLmdeployMetrics`, `createTgiMetricsMapper`).
 * A mapper reads what it finds and lists the required fields it could not read in
 * `snapshot.missing`; it throws `KVMGR_PROTOCOL` only when nothing of its engine is there.
 */
export type EngineMetricsMapper = (expo: MetricsExposition, ctx: MetricsMapContext) => EngineSnapshot;

/**
 * Throws `KVMGR_PROTOCOL` unless the exposition has at least one sample whose name starts with
 * `prefix`. For mappers: an exposition of another engine is an error, not an idle engine.
 */
export function requireEnginePrefix(expo: MetricsExposition, prefix: string, engine: string): void {
  if (!expo.samples.some((s) => s.name.startsWith(prefix))) {
    throw new KvmgrError('KVMGR_PROTOCOL', `metrics: no ${engine} metrics (no sample named ${prefix}*) in ${expo.samples.length} samples`, {
      details: { prefix, engine },
    });
  }
}

/** Options of {@link fetchExposition}. */
export interface FetchExpositionOptions {
  /** Abort the request after this many ms. @default 2000 */
  readonly timeoutMs?: number;
  /** The fetch implementation. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}

/** Why a scrape failed; the key of the per-endpoint error counters. */
export type ScrapeFailureKind = 'fetch' | 'timeout' | 'http' | 'parse';

/** A scrape failure: a `KvmgrError` whose `details.kind` says which step failed. */
function scrapeError(kind: ScrapeFailureKind, code: 'KVMGR_UNAVAILABLE' | 'KVMGR_PROTOCOL', message: string, extra: Record<string, unknown>, cause?: unknown): KvmgrError {
  return new KvmgrError(code, message, { cause, details: { kind, ...extra } });
}

/**
 * GETs `url` and parses the body as a Prometheus text exposition.
 *
 * @param url - the metrics URL, e.g. `http://10.0.0.5:8000/metrics`.
 * @returns the parsed exposition.
 * @throws KvmgrError `KVMGR_UNAVAILABLE` (`details.kind` `fetch` or `timeout`) when the server
 *   cannot be reached or does not answer within `timeoutMs`; `KVMGR_PROTOCOL` (`details.kind`
 *   `http`, with `details.status`) for a non-2xx status, or (`details.kind` `parse`) when the
 *   body is not Prometheus text.
 */
export async function fetchExposition(url: string | URL, options: FetchExpositionOptions = {}): Promise<MetricsExposition> {
  const timeoutMs = requirePositiveNumber('timeoutMs', options.timeoutMs ?? 2000);
  const doFetch = options.fetch ?? globalThis.fetch;
  let res: Response;
  let body: string;
  try {
    res = await doFetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'text/plain;version=0.0.4, */*;q=0.1' } });
    body = await res.text();
  } catch (e) {
    const name = (e as { name?: string })?.name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw scrapeError('timeout', 'KVMGR_UNAVAILABLE', `GET ${url}: no response within ${timeoutMs} ms`, { url: String(url), timeoutMs }, e);
    }
    const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
    const why = cause?.code ?? cause?.message ?? (e as Error)?.message ?? String(e);
    throw scrapeError('fetch', 'KVMGR_UNAVAILABLE', `GET ${url}: cannot connect (${why})`, { url: String(url) }, e);
  }
  if (!res.ok) {
    throw scrapeError('http', 'KVMGR_PROTOCOL', `GET ${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}, expected 200 with Prometheus text`, {
      url: String(url),
      status: res.status,
    });
  }
  try {
    return parseExposition(body);
  } catch (e) {
    throw scrapeError('parse', 'KVMGR_PROTOCOL', `GET ${url}: not Prometheus text: ${(e as Error).message}`, { url: String(url) }, e);
  }
}

/** Per-endpoint scrape counters (cumulative since the scraper was made). */
export interface ScrapeErrorCounts {
  /** Scrapes started. */
  readonly attempts: number;
  /** Scrapes that produced a snapshot. */
  readonly successes: number;
  /** Connection failures (refused, DNS, reset). */
  readonly fetchErrors: number;
  /** No response within the timeout. */
  readonly timeouts: number;
  /** Non-2xx answers; by status in `httpStatus`. */
  readonly httpErrors: number;
  readonly httpStatus: Readonly<Record<number, number>>;
  /** Bodies that are not Prometheus text, or that the mapper rejected. */
  readonly parseErrors: number;
  /** Failures since the last success. */
  readonly consecutiveFailures: number;
  /** The last failure, if any. */
  readonly lastError?: { readonly code: string; readonly message: string; readonly atMs: number };
}

/** One successful scrape, as seen now. */
export interface ScrapeResult {
  /** The mapped snapshot, with `stale` set from the age at read time. */
  readonly snapshot: EngineSnapshot;
  readonly exposition: MetricsExposition;
  /** Wall-clock time the response arrived, ms since the epoch. */
  readonly scrapedAtMs: number;
  /**
   * Wall-clock time the scrape's request was sent, ms since the epoch: the engine's numbers are
   * at least this new (work routed to it after this may or may not be in them).
   */
  readonly sentAtMs: number;
  /** Age of the snapshot when read, ms. */
  readonly ageMs: number;
  /** `ageMs > staleAfterIntervals × intervalMs`. */
  readonly stale: boolean;
}

/** Options of {@link createMetricsScraper}. */
export interface MetricsScraperOptions {
  /** The metrics URL. */
  readonly url: string | URL;
  /** The engine's mapper. */
  readonly mapper: EngineMetricsMapper;
  /** Instance id put in snapshots. @default the URL */
  readonly instanceId?: string;
  /** Instance role put in snapshots. @default 'both' */
  readonly role?: InstanceRole;
  /** Scrape interval of {@link MetricsScraper.start}, ms. @default 1000 */
  readonly intervalMs?: number;
  /** Per-request timeout, ms. @default min(intervalMs, 2000) */
  readonly timeoutMs?: number;
  /** A snapshot older than this many intervals is stale. @default 3 */
  readonly staleAfterIntervals?: number;
  /** The fetch implementation. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** Wall clock, ms. @default Date.now */
  readonly nowMs?: () => number;
  /** Called with each failure of a background scrape (errors are also counted). */
  readonly onError?: (error: KvmgrError) => void;
}

/** A scraper of one endpoint. */
export interface MetricsScraper {
  /**
   * Scrapes once and maps the result; the new snapshot becomes {@link MetricsScraper.latest}.
   * @throws KvmgrError as {@link fetchExposition} does, or the mapper's `KVMGR_PROTOCOL`; each
   *   failure is counted in {@link MetricsScraper.counts} and keeps the previous snapshot.
   */
  scrape(): Promise<ScrapeResult>;
  /** The last successful scrape with its current age and staleness, or undefined before one. */
  latest(): ScrapeResult | undefined;
  /** The error and success counters of this endpoint. */
  counts(): ScrapeErrorCounts;
  /** Scrapes every `intervalMs` (first scrape now) until {@link MetricsScraper.stop}; the timer does not keep the process alive. */
  start(): void;
  stop(): void;
}

/**
 * Makes a scraper for one endpoint.
 *
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a non-positive `intervalMs`, `timeoutMs` or
 *   `staleAfterIntervals`.
 *
 * @example
 * ```ts
 * const s = createMetricsScraper({ url: 'http://127.0.0.1:8000/metrics', mapper: mapVllmMetrics });
 * const { snapshot } = await s.scrape();
 * ```
 */
export function createMetricsScraper(options: MetricsScraperOptions): MetricsScraper {
  const intervalMs = requirePositiveNumber('intervalMs', options.intervalMs ?? 1000);
  const timeoutMs = requirePositiveNumber('timeoutMs', options.timeoutMs ?? Math.min(intervalMs, 2000));
  const staleAfter = requirePositiveInt('staleAfterIntervals', options.staleAfterIntervals ?? 3);
  const nowMs = options.nowMs ?? Date.now;
  const instanceId = options.instanceId ?? String(options.url);
  const role = options.role ?? 'both';
  const fetchOptions: FetchExpositionOptions = options.fetch === undefined ? { timeoutMs } : { timeoutMs, fetch: options.fetch };
  let last: { snapshot: EngineSnapshot; exposition: MetricsExposition; scrapedAtMs: number; sentAtMs: number; fresh?: EngineSnapshot; stale?: EngineSnapshot } | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  let inFlight = false;
  const c = { attempts: 0, successes: 0, fetchErrors: 0, timeouts: 0, httpErrors: 0, parseErrors: 0, consecutiveFailures: 0 };
  const httpStatus: Record<number, number> = {};
  let lastError: ScrapeErrorCounts['lastError'];

  const view = (l: NonNullable<typeof last>): ScrapeResult => {
    const ageMs = Math.max(0, nowMs() - l.scrapedAtMs);
    const stale = ageMs > staleAfter * intervalMs;
    // routers read `latest()` several times per request and endpoint: one snapshot object per scrape and staleness, not one per read
    const snapshot = stale ? (l.stale ??= { ...l.snapshot, stale }) : (l.fresh ??= { ...l.snapshot, stale });
    return { snapshot, exposition: l.exposition, scrapedAtMs: l.scrapedAtMs, sentAtMs: l.sentAtMs, ageMs, stale };
  };

  const fail = (e: unknown): KvmgrError => {
    const err = e instanceof KvmgrError ? e : new KvmgrError('KVMGR_PROTOCOL', `metrics mapper failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    const kind = err.details['kind'] as ScrapeFailureKind | undefined;
    if (kind === 'fetch') c.fetchErrors++;
    else if (kind === 'timeout') c.timeouts++;
    else if (kind === 'http') {
      c.httpErrors++;
      const status = err.details['status'] as number;
      httpStatus[status] = (httpStatus[status] ?? 0) + 1;
    } else c.parseErrors++;
    c.consecutiveFailures++;
    lastError = { code: err.code, message: err.message, atMs: nowMs() };
    return err;
  };

  const scrape = async (): Promise<ScrapeResult> => {
    c.attempts++;
    const sentAtMs = nowMs();
    try {
      const exposition = await fetchExposition(options.url, fetchOptions);
      const scrapedAtMs = nowMs();
      const snapshot = options.mapper(exposition, { instanceId, role, timeUs: scrapedAtMs * 1000 });
      last = { snapshot, exposition, scrapedAtMs, sentAtMs };
      c.successes++;
      c.consecutiveFailures = 0;
      return view(last);
    } catch (e) {
      throw fail(e);
    }
  };

  return {
    scrape,
    latest: () => (last === undefined ? undefined : view(last)),
    counts: () => ({ ...c, httpStatus: { ...httpStatus }, ...(lastError === undefined ? {} : { lastError }) }),
    start() {
      if (timer !== undefined) return;
      const tick = (): void => {
        // One scrape at a time: a slow endpoint is not hit again before it answers.
        if (inFlight) return;
        inFlight = true;
        scrape()
          .catch((e: KvmgrError) => options.onError?.(e))
          .finally(() => {
            inFlight = false;
          });
      };
      timer = setInterval(tick, intervalMs);
      timer.unref?.();
      tick();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };
}
