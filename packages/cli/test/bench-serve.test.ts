/**
 * `kvmgr bench serve` against a real engine server (`@kvmgr/engine-server`, time scale 50) on
 * 127.0.0.1: a slice of the bundled Mooncake trace completes, the output files carry
 * inference-perf's exact keys and percentile names (against a key list embedded here and, when
 * present, a real inference-perf run from shared/validation), the per-request records obey the
 * TPOT / normalized TPOT formulas, a repeated prefix comes back as cached tokens; an
 * inference-perf shared_prefix config runs its stages; bad flags are one-line errors, exit 2.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type EngineServer, createEngineServer } from '@kvmgr/engine-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { runBenchServeCommand } from '../src/bench-serve/command.js';
import { summarize } from '../src/bench-serve/metrics.js';

const BIN = resolve(import.meta.dirname, '../src/bin.ts');
const VALIDATION = resolve(import.meta.dirname, '../../../../shared/validation/inference_perf_runs');

/** inference-perf's distribution keys, in its order. */
const DIST = ['mean', 'min', 'p0.1', 'p1', 'p5', 'p10', 'p25', 'median', 'p75', 'p90', 'p95', 'p99', 'p99.9', 'max'];
const LATENCY = ['request_latency', 'normalized_time_per_output_token', 'time_per_output_token', 'time_to_first_token', 'inter_token_latency'];
/** Key paths of inference-perf's summary file (`<dist>` = the 14 distribution keys). */
const SUMMARY_KEYS = [
  'load_summary.count',
  'load_summary.schedule_delay.<dist>',
  'successes.count',
  ...LATENCY.map((k) => `successes.latency.${k}.<dist>`),
  'successes.throughput.input_tokens_per_sec',
  'successes.throughput.output_tokens_per_sec',
  'successes.throughput.total_tokens_per_sec',
  'successes.throughput.requests_per_sec',
  'successes.prompt_len.<dist>',
  'successes.output_len.<dist>',
  'failures.count',
  'failures.request_latency',
  'failures.prompt_len',
];
const STAGE_EXTRA = ['load_summary.send_duration', 'load_summary.requested_rate', 'load_summary.achieved_rate'];
const SLO_KEYS = ['ttft_slo', 'tpot_slo', 'combined_slo'];

/** Leaf key paths; distributions (objects with `median`) collapse to `<dist>` after checking their keys. */
function keyPaths(v: unknown, prefix = ''): string[] {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return [prefix];
  const o = v as Record<string, unknown>;
  if ('median' in o && 'p99.9' in o) {
    expect(Object.keys(o), prefix).toEqual(DIST);
    return [`${prefix}.<dist>`];
  }
  return Object.entries(o).flatMap(([k, x]) => keyPaths(x, prefix === '' ? k : `${prefix}.${k}`));
}

const json = (dir: string, name: string) => JSON.parse(readFileSync(join(dir, name), 'utf8'));

let engine: EngineServer;
beforeAll(async () => {
  engine = await createEngineServer({ host: '127.0.0.1', port: 0, timeScale: 50 });
});
afterAll(async () => {
  await engine?.close();
});

describe('bench serve on the bundled Mooncake trace', () => {
  const out = mkdtempSync(join(tmpdir(), 'kvmgr-bench-'));
  let stdout = '';

  beforeAll(async () => {
    await runBenchServeCommand({ target: engine.url, limit: 30, timeScale: 50, out, progress: false, vllmJson: true }, { out: (t) => (stdout += t) });
  }, 120_000);

  it('every request completes and the summary table is printed', () => {
    const s = json(out, 'summary_lifecycle_metrics.json');
    expect(s.successes.count).toBe(30);
    expect(s.failures.count).toBe(0);
    expect(s.load_summary.count).toBe(30);
    expect(stdout).toMatch(/requests completed\s+30/);
    expect(stdout).toMatch(/requests failed\s+0/);
    for (const f of ['stage_0_lifecycle_metrics.json', 'per_request_lifecycle_metrics.json', 'config.yaml', 'report.html', 'vllm_bench_serve.json']) expect(existsSync(join(out, f)), f).toBe(true);
  });

  it("the files carry inference-perf's exact keys and percentile names", () => {
    const summary = json(out, 'summary_lifecycle_metrics.json');
    const stage = json(out, 'stage_0_lifecycle_metrics.json');
    const withoutSlo = (paths: string[]) => paths.filter((p) => !p.startsWith('successes.slo_metrics.'));
    expect(withoutSlo(keyPaths(summary)).sort()).toEqual([...SUMMARY_KEYS].sort());
    expect(withoutSlo(keyPaths(stage)).sort()).toEqual([...SUMMARY_KEYS, ...STAGE_EXTRA].sort());
    // The SLO headers are always sent, so inference-perf's slo_metrics block is always there.
    expect(Object.keys(summary.successes.slo_metrics)).toEqual(SLO_KEYS);
    expect(Object.keys(summary.successes.slo_metrics.combined_slo)).toEqual(['attainment_pct', 'requests_met', 'requests_failed', 'total_requests', 'ttft_slo', 'tpot_slo', 'goodput_rate']);
    const perRequest = json(out, 'per_request_lifecycle_metrics.json');
    expect(perRequest).toHaveLength(30);
    expect(Object.keys(perRequest[0])).toEqual(['start_time', 'end_time', 'request', 'response', 'info', 'error']);
    expect(Object.keys(perRequest[0].info)).toEqual(['input_tokens', 'output_tokens', 'output_token_times', 'extra_info', 'lora_adapter']);
    const config = parseYaml(readFileSync(join(out, 'config.yaml'), 'utf8'));
    expect(Object.keys(config)).toEqual(expect.arrayContaining(['api', 'data', 'load', 'report', 'storage', 'server', 'tokenizer']));
    expect(config.api.headers['x-slo-ttft-ms']).toBe('2000');
    const vllm = json(out, 'vllm_bench_serve.json');
    for (const m of ['ttft', 'tpot', 'itl', 'e2el']) for (const s of ['mean', 'median', 'std', 'p99']) expect(vllm, `${s}_${m}_ms`).toHaveProperty(`${s}_${m}_ms`);
    expect(vllm.completed).toBe(30);
    expect(vllm).toHaveProperty('request_throughput');
    expect(vllm).toHaveProperty('request_goodput');
  });

  it('the key sets equal those of a real inference-perf run (shared/validation)', (ctx) => {
    const run = existsSync(VALIDATION) ? readdirSync(VALIDATION).find((d) => existsSync(join(VALIDATION, d, 'results', 'stage_0_lifecycle_metrics.json'))) : undefined;
    if (run === undefined) {
      ctx.skip(`no real inference-perf run under ${VALIDATION}; compared against the embedded key list only`);
      return;
    }
    const real = join(VALIDATION, run, 'results');
    const ours = (name: string) => keyPaths(json(out, name)).filter((p) => !p.startsWith('successes.slo_metrics.'));
    // null failure distributions (no failures) are leaves in both
    expect(ours('summary_lifecycle_metrics.json').sort()).toEqual(keyPaths(json(real, 'summary_lifecycle_metrics.json')).sort());
    expect(ours('stage_0_lifecycle_metrics.json').sort()).toEqual(keyPaths(json(real, 'stage_0_lifecycle_metrics.json')).sort());
  });

  it('per-request TPOT = (E2E − TTFT)/(out − 1) and normalized TPOT = E2E/out; the summary is their distribution', () => {
    const perRequest = json(out, 'per_request_lifecycle_metrics.json') as Array<{ start_time: number; end_time: number; info: { output_tokens: number; output_token_times: number[]; extra_info: Record<string, number | null> } }>;
    const tpots: number[] = [];
    for (const r of perRequest) {
      const e2e = r.end_time - r.start_time;
      const ttft = (r.info.output_token_times[0] as number) - r.start_time;
      const n = r.info.output_tokens;
      expect(r.info.output_token_times.length).toBe(n);
      expect(r.info.extra_info['request_latency']).toBeCloseTo(e2e, 9);
      expect(r.info.extra_info['time_to_first_token']).toBeCloseTo(ttft, 9);
      expect(r.info.extra_info['normalized_time_per_output_token']).toBeCloseTo(e2e / n, 9);
      if (n > 1) {
        expect(r.info.extra_info['time_per_output_token']).toBeCloseTo((e2e - ttft) / (n - 1), 9);
        tpots.push((e2e - ttft) / (n - 1));
      } else expect(r.info.extra_info['time_per_output_token']).toBeNull();
      expect(ttft).toBeGreaterThan(0);
      expect(ttft).toBeLessThanOrEqual(e2e);
    }
    const s = json(out, 'summary_lifecycle_metrics.json');
    expect(s.successes.latency.time_per_output_token).toEqual(summarize(tpots));
  });

  it('a repeated prefix shows cached tokens > 0', () => {
    // The trace's requests share hash id 0 (the first 512 tokens): later ones hit the cache.
    const trace = readFileSync(resolve(import.meta.dirname, '../data/mooncake-conversation-sample.jsonl'), 'utf8').split('\n').slice(0, 30);
    expect(trace.filter((l) => l.includes('"hash_ids": [0,')).length).toBeGreaterThan(1);
    const perRequest = json(out, 'per_request_lifecycle_metrics.json') as Array<{ info: { extra_info: { cached_tokens: number | null } } }>;
    const cached = perRequest.map((r) => r.info.extra_info.cached_tokens ?? 0);
    expect(Math.max(...cached)).toBeGreaterThanOrEqual(496);
    expect(stdout).toMatch(/prefix hit rate \(%\)\s+[1-9]/);
  });
});

describe('bench serve with an inference-perf config', () => {
  it('runs shared_prefix stages (constant, then poisson-free second stage) with the SLOs of api.headers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmgr-bench-ip-'));
    const cfg = join(dir, 'config.yml');
    writeFileSync(
      cfg,
      [
        'api: { type: completion, streaming: true, headers: { x-slo-ttft-ms: "1500", x-slo-tpot-ms: "80" } }',
        'data:',
        '  type: shared_prefix',
        '  shared_prefix: { num_unique_system_prompts: 2, num_users_per_system_prompt: 3, system_prompt_len: 64, question_len: 32, output_len: 8 }',
        'load: { type: constant, interval: 0.5, stages: [ { rate: 40, duration: 0.5 }, { rate: 60, duration: 0.25 } ] }',
        '',
      ].join('\n'),
    );
    const out = join(dir, 'out');
    let stdout = '';
    await runBenchServeCommand({ target: engine.url, config: cfg, timeScale: 50, out, progress: false }, { out: (t) => (stdout += t) });
    const s0 = json(out, 'stage_0_lifecycle_metrics.json');
    const s1 = json(out, 'stage_1_lifecycle_metrics.json');
    expect(s0.load_summary.count).toBe(20);
    expect(s1.load_summary.count).toBe(15);
    expect(s0.load_summary.requested_rate).toBe(40);
    expect(s1.load_summary.requested_rate).toBe(60);
    const summary = json(out, 'summary_lifecycle_metrics.json');
    expect(summary.successes.count).toBe(35);
    expect(summary.successes.prompt_len.min).toBe(96);
    expect(summary.successes.output_len.max).toBe(8);
    expect(summary.successes.slo_metrics.combined_slo.ttft_slo).toBe(1.5);
    expect(summary.successes.slo_metrics.combined_slo.tpot_slo).toBeCloseTo(0.08, 12);
    const perRequest = json(out, 'per_request_lifecycle_metrics.json') as Array<{ info: { extra_info: { cached_tokens: number } } }>;
    // 6 prompts over 2 system prompts of 64 tokens: repeats hit at least the 4 system blocks.
    expect(perRequest.filter((r) => r.info.extra_info.cached_tokens >= 64).length).toBeGreaterThan(10);
    expect(stdout).toContain('SLO TTFT 1500 ms, TPOT 80 ms');
  }, 120_000);
});

describe('bench serve: bad flags', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'kvmgr-bench-bad-')), 'out');
  const kvmgr = (args: string[]) =>
    spawnSync(process.execPath, ['--conditions=@kvmgr/source', '--import', 'tsx', BIN, 'bench', 'serve', '--out', out, ...args], { encoding: 'utf8', timeout: 60_000, cwd: resolve(import.meta.dirname, '..') });
  // A port nothing listens on: bound, then released.
  const free = new Promise<number>((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => res(port));
    });
  });
  it('unreachable target: one line on stderr, exit 2, no files', async () => {
    const port = await free;
    const r = kvmgr(['--target', `http://127.0.0.1:${port}`, '--limit', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([`kvmgr: error: --target http://127.0.0.1:${port}: cannot reach it (ECONNREFUSED)`]);
    expect(existsSync(out)).toBe(false);
  });
  const cases: Array<[string, string[], RegExp]> = [
    ['not a URL', ['--target', 'nowhere', '--limit', '1'], /^kvmgr: error: --target: expected an http\(s\) URL/],
    ['negative rate', ['--target', 'http://127.0.0.1:1', '--rate', '-3'], /^kvmgr: error: --rate: expected a number > 0, got "-3"$/],
    ['rate with no number', ['--target', 'http://127.0.0.1:1', '--rate', 'fast'], /^kvmgr: error: --rate: expected a number > 0, got "fast"$/],
    ['no target', ['--limit', '1'], /^kvmgr: error: --target: required/],
  ];
  it.each(cases)('%s: one line on stderr, exit 2, no files', (_name, args, re) => {
    const r = kvmgr(args);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(re);
    expect(r.stdout).toBe('');
    expect(existsSync(out)).toBe(false);
  });
});
