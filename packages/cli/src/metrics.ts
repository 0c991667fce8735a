/**
 * `kvmgr metrics scrape URL`: scrape an engine's Prometheus `/metrics` once (or every `--watch`
 * interval) and print the {@link EngineSnapshot} kvmgr sees, with the engine detected from the
 * metric-name prefixes unless `--engine` names it. A failed one-shot scrape (unreachable URL, a
 * non-2xx status, a body that is not Prometheus text, no metrics of the engine) is one line on
 * stderr and exit code 2; under `--watch` failures are printed and counted, and scraping goes on.
 */
import { mapLmdeployMetrics } from '@kvmgr/adapter-lmdeploy';
import { mapSglangMetrics } from '@kvmgr/adapter-sglang';
import { createTgiMetricsMapper } from '@kvmgr/adapter-tgi';
import { mapVllmMetrics } from '@kvmgr/adapter-vllm';
import {
  type EngineMetricsMapper,
  type EngineSnapshot,
  KvmgrError,
  createMetricsScraper,
  detectEngine,
  invalidArgument,
  isKvmgrError,
  requireOneOf,
} from '@kvmgr/core';
import { parseDurationMs, parsePositiveInt } from './parse.js';

/** Engines `--engine` accepts. */
export const METRICS_ENGINES = ['auto', 'vllm', 'sglang', 'tgi', 'lmdeploy'] as const;

/** Flags of `kvmgr metrics scrape`. */
export interface MetricsScrapeOptions {
  /** @default 'auto' */
  readonly engine?: string;
  readonly json?: boolean;
  /** Interval with a unit (`2s`); absent = scrape once. */
  readonly watch?: string;
  /** Per-request timeout with a unit. @default '5s' */
  readonly timeout?: string;
  /** TGI KV capacity in tokens, for the KV utilization estimate. */
  readonly tokenCapacity?: string;
}

/** Where the command writes (tests pass their own). */
export interface MetricsScrapeIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Stops `--watch` (tests); the CLI runs until interrupted. */
  readonly signal?: AbortSignal;
}

function mapperFor(engine: string, tokenCapacity: number | undefined): EngineMetricsMapper {
  switch (engine) {
    case 'vllm':
      return mapVllmMetrics;
    case 'sglang':
      return mapSglangMetrics;
    case 'lmdeploy':
      return mapLmdeployMetrics;
    default:
      return createTgiMetricsMapper(tokenCapacity === undefined ? {} : { tokenCapacity });
  }
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** Human-readable snapshot, one field per line. */
export function formatSnapshot(s: EngineSnapshot, url: string): string {
  const mark = (f: keyof EngineSnapshot) => (s.estimated?.includes(f) ? ' (estimated)' : s.missing?.includes(f) ? ' (not exported)' : '');
  const rows: Array<[string, string]> = [
    ['engine', s.engine ?? 'unknown'],
    ['url', url],
    ['KV utilization', `${pct(s.kvUtilization)}${mark('kvUtilization')}`],
    ['running', `${s.running}${mark('running')}`],
    ['waiting', `${s.waiting}${mark('waiting')}`],
  ];
  if (s.waitingByReason) rows.push(['waiting by reason', Object.entries(s.waitingByReason).map(([k, v]) => `${k}=${v}`).join(', ')]);
  if (s.totalBlocks !== undefined) rows.push(['blocks free / total', `${s.freeBlocks ?? '?'} / ${s.totalBlocks}${s.blockSize ? ` (${s.blockSize} tokens each)` : ''}`]);
  rows.push(['prefix cache hits / queries (tokens)', `${s.prefixCacheHits} / ${s.prefixCacheQueries}${mark('prefixCacheQueries')}`]);
  if (s.prefixCacheHitRate !== undefined) rows.push(['prefix cache hit rate', pct(s.prefixCacheHitRate)]);
  if (s.externalPrefixCacheQueries !== undefined) rows.push(['external prefix cache hits / queries', `${s.externalPrefixCacheHits ?? 0} / ${s.externalPrefixCacheQueries}`]);
  if (s.preemptions !== undefined) rows.push(['preemptions', String(s.preemptions)]);
  if (s.generationTokensPerS !== undefined) rows.push(['generation throughput (tok/s)', s.generationTokensPerS.toFixed(1)]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return `${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n`;
}

/**
 * Runs `kvmgr metrics scrape`.
 *
 * @returns the exit code: 0, or 2 when a one-shot scrape failed (the error is one line on `io.err`).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for bad flags (bad URL, `--engine`, `--watch`, `--timeout`, `--token-capacity`).
 */
export async function runMetricsScrape(url: string, opts: MetricsScrapeOptions, io: MetricsScrapeIo): Promise<number> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidArgument('URL', url, 'an http(s) URL such as http://127.0.0.1:8000/metrics');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalidArgument('URL', url, 'an http(s) URL');
  const engineFlag = requireOneOf('--engine', opts.engine ?? 'auto', METRICS_ENGINES);
  const timeoutMs = parseDurationMs('--timeout', opts.timeout ?? '5s');
  const watchMs = opts.watch === undefined ? undefined : parseDurationMs('--watch', opts.watch);
  const tokenCapacity = opts.tokenCapacity === undefined ? undefined : parsePositiveInt('--token-capacity', opts.tokenCapacity);

  let mapper: EngineMetricsMapper | undefined = engineFlag === 'auto' ? undefined : mapperFor(engineFlag, tokenCapacity);
  const mapping: EngineMetricsMapper = (expo, ctx) => {
    if (mapper === undefined) {
      const detected = detectEngine(expo);
      if (detected === undefined) {
        throw new KvmgrError('KVMGR_PROTOCOL', `${url}: no vLLM, SGLang, TGI or LMDeploy metrics (no sample named vllm:*, sglang:*, tgi_* or lmdeploy:*); pass --engine`);
      }
      mapper = mapperFor(detected, tokenCapacity);
    }
    return mapper(expo, ctx);
  };
  const scraper = createMetricsScraper({ url: parsed, mapper: mapping, instanceId: url, timeoutMs, intervalMs: watchMs ?? timeoutMs });
  const print = (s: EngineSnapshot) => io.out(opts.json ? `${JSON.stringify(s)}\n` : formatSnapshot(s, url));

  if (watchMs === undefined) {
    try {
      print((await scraper.scrape()).snapshot);
      return 0;
    } catch (e) {
      if (!isKvmgrError(e)) throw e;
      io.err(`kvmgr: error: ${e.message}\n`);
      return 2;
    }
  }
  // --watch: one scrape per interval, until interrupted.
  while (!io.signal?.aborted) {
    const started = Date.now();
    try {
      const r = await scraper.scrape();
      if (!opts.json) io.out(`--- ${new Date(r.scrapedAtMs).toISOString()}\n`);
      print(r.snapshot);
    } catch (e) {
      if (!isKvmgrError(e)) throw e;
      const c = scraper.counts();
      io.err(`kvmgr: scrape failed (${c.consecutiveFailures} in a row): ${e.message}\n`);
    }
    const wait = Math.max(0, watchMs - (Date.now() - started));
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, wait);
      io.signal?.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  return 0;
}
