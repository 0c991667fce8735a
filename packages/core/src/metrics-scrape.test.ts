import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineSnapshot } from './engine.js';
import { isKvmgrError } from './errors.js';
import {
  type EngineMetricsMapper,
  aggregateSamples,
  createMetricsScraper,
  detectEngine,
  fetchExposition,
  histogramTotals,
  parseExposition,
  sumByLabel,
} from './metrics-scrape.js';

const LABELLED_HISTOGRAM = `# HELP x:ttft_seconds TTFT.
# TYPE x:ttft_seconds histogram
x:ttft_seconds_bucket{engine="0",le="0.1",model_name="m"} 1
x:ttft_seconds_bucket{engine="0",le="+Inf",model_name="m"} 3
x:ttft_seconds_sum{engine="0",model_name="m"} 0.5
x:ttft_seconds_count{engine="0",model_name="m"} 3
x:ttft_seconds_bucket{engine="1",le="0.1",model_name="m"} 2
x:ttft_seconds_bucket{engine="1",le="+Inf",model_name="m"} 4
x:ttft_seconds_sum{engine="1",model_name="m"} 0.75
x:ttft_seconds_count{engine="1",model_name="m"} 4
# TYPE g gauge
g{path="C:\\\\DIR",msg="say \\"hi\\""} 5
g{path="x"} 6`;

describe('parseExposition', () => {
  it('keeps every series of a labelled histogram and sums them bucket by bucket', () => {
    const expo = parseExposition(LABELLED_HISTOGRAM);
    expect(expo.types.get('x:ttft_seconds')).toBe('histogram');
    expect(expo.help.get('x:ttft_seconds')).toBe('TTFT.');
    expect(histogramTotals(expo, 'x:ttft_seconds')).toEqual({
      count: 7,
      sum: 1.25,
      buckets: [
        { le: 0.1, count: 3 },
        { le: Number.POSITIVE_INFINITY, count: 7 },
      ],
    });
  });

  it('keeps the last sample of a text without a trailing newline, and unescapes label values', () => {
    const expo = parseExposition(LABELLED_HISTOGRAM);
    const g = expo.samples.filter((s) => s.name === 'g');
    expect(g).toEqual([
      { name: 'g', labels: { path: 'C:\\DIR', msg: 'say "hi"' }, value: 5 },
      { name: 'g', labels: { path: 'x' }, value: 6 },
    ]);
  });

  it('reads a histogram whose _sum comes before its _bucket lines (old SGLang)', () => {
    const expo = parseExposition(
      '# TYPE s:t histogram\ns:t_sum{name="m"} 2.5\ns:t_bucket{le="1",name="m"} 1\ns:t_bucket{le="+Inf",name="m"} 2\ns:t_count{name="m"} 2\n',
    );
    expect(histogramTotals(expo, 's:t')).toEqual({ count: 2, sum: 2.5, buckets: [{ le: 1, count: 1 }, { le: Number.POSITIVE_INFINITY, count: 2 }] });
  });

  it('reads +Inf, -Inf, NaN, exponents and timestamps', () => {
    const expo = parseExposition('a 1e3 1700000000000\nb +Inf\nc -Inf\nd NaN\ne -0.5\n');
    expect(expo.samples.map((s) => s.value)).toEqual([1000, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, -0.5]);
  });

  it.each([
    ['an HTML page', '<!DOCTYPE html>\n<html><body>Not found</body></html>\n', 1],
    ['JSON', '{"object": "error"}\n', 1],
    ['a sample without a value', 'vllm:x 1\nvllm:y{a="b"}\n', 2],
    ['a non-numeric value', 'ok 1\nvllm:x abc\n', 2],
    ['an unknown TYPE', '# TYPE x widget\nx 1\n', 1],
  ])('rejects %s with KVMGR_PROTOCOL naming the line', (_name, text, line) => {
    try {
      parseExposition(text);
      expect.unreachable();
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_PROTOCOL')).toBe(true);
      expect((e as Error).message).toMatch(new RegExp(`^metrics line ${line}: expected `));
    }
  });
});

describe('rank aggregation', () => {
  // Two DP ranks, each with two TP ranks that replicate the scheduler state; rank 1 of dp 1 reports 0.
  const expo = parseExposition(`sglang:num_running_reqs{dp_rank="0",tp_rank="0"} 5
sglang:num_running_reqs{dp_rank="0",tp_rank="1"} 5
sglang:num_running_reqs{dp_rank="1",tp_rank="0"} 7
sglang:num_running_reqs{dp_rank="1",tp_rank="1"} 0
sglang:token_usage{dp_rank="0",tp_rank="0"} 0.2
sglang:token_usage{dp_rank="0",tp_rank="1"} 0.2
sglang:token_usage{dp_rank="1",tp_rank="0"} 0.6
w{reason="capacity",engine="0"} 2
w{reason="capacity",engine="1"} 1
w{reason="deferred",engine="0"} 4
`);

  it('folds TP replicas (max) and sums counts over DP ranks', () => {
    expect(aggregateSamples(expo, 'sglang:num_running_reqs', 'sum')).toBe(12);
  });

  it('averages usage ratios over DP ranks (equal pools)', () => {
    expect(aggregateSamples(expo, 'sglang:token_usage', 'mean')).toBeCloseTo(0.4, 12);
    expect(aggregateSamples(expo, 'sglang:token_usage', 'max')).toBe(0.6);
  });

  it('returns undefined for an absent name and sums per label value', () => {
    expect(aggregateSamples(expo, 'nope', 'sum')).toBeUndefined();
    expect(sumByLabel(expo, 'w', 'reason')).toEqual({ capacity: 3, deferred: 4 });
  });

  it('detects the engine by the most frequent prefix', () => {
    expect(detectEngine(expo)).toBe('sglang');
    expect(detectEngine(parseExposition('tgi_queue_size 1\nprocess_cpu_seconds_total 3\n'))).toBe('tgi');
    expect(detectEngine(parseExposition('process_cpu_seconds_total 3\n'))).toBeUndefined();
  });
});

describe('createMetricsScraper against a real HTTP server', () => {
  let server: Server;
  let base: string;
  let body = 'demo_running 3\ndemo_usage 0.25\n';
  let status = 200;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/hang') return; // never answers
      res.writeHead(status, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const mapper: EngineMetricsMapper = (expo, ctx): EngineSnapshot => ({
    ...ctx,
    kvUtilization: aggregateSamples(expo, 'demo_usage', 'mean') ?? 0,
    waiting: 0,
    running: aggregateSamples(expo, 'demo_running', 'sum') ?? 0,
    pendingTransferLatency: 0,
    kvThrashingRate: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
  });

  it('maps a scrape, ages it, and marks it stale past N intervals', async () => {
    let now = 1_000_000;
    const s = createMetricsScraper({ url: `${base}/metrics`, mapper, intervalMs: 1000, staleAfterIntervals: 3, nowMs: () => now });
    const r = await s.scrape();
    expect(r.snapshot).toMatchObject({ instanceId: `${base}/metrics`, role: 'both', timeUs: 1_000_000_000, running: 3, kvUtilization: 0.25, stale: false });
    now += 3000;
    expect(s.latest()).toMatchObject({ ageMs: 3000, stale: false });
    now += 1;
    expect(s.latest()).toMatchObject({ ageMs: 3001, stale: true, snapshot: { stale: true } });
    expect(s.counts()).toMatchObject({ attempts: 1, successes: 1, consecutiveFailures: 0 });
  });

  it('counts fetch failures, timeouts, HTTP statuses and parse errors, keeping the last snapshot', async () => {
    // a generous timeout: these scrapes must get their answers (a 200 ms one could expire on a loaded machine); the timeout path is the hanging scraper's below
    const s = createMetricsScraper({ url: `${base}/metrics`, mapper, timeoutMs: 10_000 });
    await s.scrape();
    status = 503;
    await expect(s.scrape()).rejects.toMatchObject({ code: 'KVMGR_PROTOCOL', details: { kind: 'http', status: 503 } });
    status = 200;
    body = '<html>oops</html>\n';
    await expect(s.scrape()).rejects.toMatchObject({ code: 'KVMGR_PROTOCOL', details: { kind: 'parse' } });
    body = 'demo_running 3\ndemo_usage 0.25\n';
    const counts = s.counts();
    expect(counts).toMatchObject({ attempts: 3, successes: 1, httpErrors: 1, httpStatus: { 503: 1 }, parseErrors: 1, consecutiveFailures: 2 });
    expect(counts.lastError?.message).toMatch(/not Prometheus text: metrics line 1/);
    expect(s.latest()?.snapshot.running).toBe(3);

    const hang = createMetricsScraper({ url: `${base}/hang`, mapper, timeoutMs: 50 });
    await expect(hang.scrape()).rejects.toMatchObject({ code: 'KVMGR_UNAVAILABLE', details: { kind: 'timeout' } });
    expect(hang.counts().timeouts).toBe(1);
  });

  it('reports a closed port as KVMGR_UNAVAILABLE (fetch)', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const err = await fetchExposition(`http://127.0.0.1:${port}/metrics`).catch((e) => e);
    expect(err).toMatchObject({ code: 'KVMGR_UNAVAILABLE', details: { kind: 'fetch' } });
    expect(err.message).toMatch(/cannot connect \(ECONNREFUSED\)/);
  });
});
