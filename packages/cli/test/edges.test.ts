/**
 * Issue #21's CLI edges: each refused up front with one line (`kvmgr: error: --flag VALUE:
 * expected …`, exit 2), or said once on stderr, instead of a kill, a hang, a stack trace or a
 * silent substitution. The binary is spawned as in cli.test.ts; the checks behind it are also
 * tested directly, where a child process would only be slower.
 */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { getEngineProfile } from '@kvmgr/sim';
import { checkMemory, checkOutDir, pipelineClampWarnings, sweepThreads } from '../src/preflight.js';
import { replayHtml } from '../src/replay-report.js';
import { type RunResult, profileFor, resolveRunOptions, timeseries } from '../src/run.js';

const BIN = resolve(import.meta.dirname, '../src/bin.ts');

function kvmgr(args: string[], timeout = 60_000): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['--conditions=@kvmgr/source', '--import', 'tsx', BIN, ...args], {
    encoding: 'utf8',
    cwd: resolve(import.meta.dirname, '..'),
    timeout,
  });
}

/** One `kvmgr: error:` line, nothing else on stderr, exit 2. */
function expectOneLineError(r: SpawnSyncReturns<string>, message: RegExp): void {
  expect(r.error, 'finished before the timeout').toBeUndefined();
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^kvmgr: error: /);
  expect(lines[0]).toMatch(message);
  expect(r.status).toBe(2);
}

const dir = mkdtempSync(join(tmpdir(), 'kvmgr-edges-'));
const isRoot = process.getuid?.() === 0;

afterEach(() => {
  vi.restoreAllMocks();
});

function captureStderr(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  return lines;
}

describe('edge 1: --instances that cannot fit in memory', () => {
  it('refuses --instances 100000 at once, naming the estimate and the limit (exit 2)', () => {
    const started = Date.now();
    const r = kvmgr(['replay', '--instances', '100000', '--out', join(dir, 'mem')], 30_000);
    expectOneLineError(r, /--instances 100000: expected at most \d+ instances in this machine's [\d.]+ GB of memory: .* takes about [\d.]+ MB, so 100000 need about \d+ GB/);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.stdout).toBe('');
  });

  it('estimates about 11 MB per 8B instance on H100: 10,000 do not fit in 24 GB, 1,000 do', () => {
    const opts = { model: 'Llama-3.1-8B-Instruct', gpu: 'H100', tp: 1 };
    const profiles = [getEngineProfile('vllm-default'), getEngineProfile('kvmgr-default')];
    expect(() => checkMemory({ ...opts, instances: 10_000 }, profiles, 1, 24e9)).toThrow(/--instances 10000: expected at most 1\d{3} instances/);
    expect(() => checkMemory({ ...opts, instances: 1000 }, profiles, 1, 24e9)).not.toThrow();
    // a sweep holds one cluster per worker thread
    expect(() => checkMemory({ ...opts, instances: 1000 }, profiles, 4, 24e9)).toThrow(/× 4 parallel runs/);
  });
});

describe('edge 2: --out checked before the run', () => {
  it('an unwritable special path (/proc/x) fails at once, before the table, instead of hanging', () => {
    const r = kvmgr(['replay', '--limit', '20', '--instances', '1', '--out', '/proc/kvmgr-x'], 30_000);
    expectOneLineError(r, /--out \/proc\/kvmgr-x: expected a writable directory/);
    expect(r.stdout).toBe('');
  });

  it('a path under a file (/dev/null/x) is one line, not a stack trace', () => {
    const r = kvmgr(['replay', '--limit', '20', '--instances', '1', '--out', '/dev/null/x']);
    expectOneLineError(r, /--out \/dev\/null\/x: expected a path under a directory, but \/dev\/null is not a directory/);
  });

  it('--out naming an existing file is one line, not a stack trace (replay, sweep, eviction eval, ab)', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    for (const args of [
      ['replay', '--limit', '20'],
      ['sweep', '--limit', '20', '--rates', '1'],
      ['eviction', 'eval', '--limit', '20'],
      ['ab', '--a', 'vllm-default', '--b', 'kvmgr-default', '--limit', '20'],
    ]) {
      const r = kvmgr([...args, '--out', file]);
      expectOneLineError(r, /--out .*a-file: expected a directory for the output files, got an existing file/);
      expect(r.stdout, args.join(' ')).toBe('');
    }
  });

  it.skipIf(isRoot)('a read-only directory is reported before the run', () => {
    const ro = mkdtempSync(join(tmpdir(), 'kvmgr-ro-'));
    spawnSync('chmod', ['555', ro]);
    expect(() => checkOutDir(join(ro, 'out'))).toThrow(/expected a writable directory/);
  });

  it('checkOutDir accepts a new nested folder and leaves nothing behind', () => {
    const parent = mkdtempSync(join(tmpdir(), 'kvmgr-out-'));
    checkOutDir(join(parent, 'a', 'b'));
    expect(existsSync(join(parent, 'a'))).toBe(false);
  });
});

describe('edge 3: empty and header-only traces', () => {
  const emptyJsonl = join(dir, 'empty.jsonl');
  const headerCsv = join(dir, 'header-only.csv');
  const azureHeader = join(dir, 'azure-header.csv');
  writeFileSync(emptyJsonl, '');
  writeFileSync(headerCsv, 'num_prefill_tokens,num_decode_tokens\n');
  writeFileSync(azureHeader, 'TIMESTAMP,ContextTokens,GeneratedTokens\n');
  const cases: Array<[string, string[], string]> = [
    ['replay, empty jsonl', ['replay', '--trace', emptyJsonl], 'empty.jsonl'],
    ['replay, header-only length CSV', ['replay', '--trace', headerCsv], 'header-only.csv'],
    ['replay, header-only Azure CSV', ['replay', '--trace', azureHeader], 'azure-header.csv'],
    ['sweep, empty jsonl', ['sweep', '--trace', emptyJsonl, '--rates', '1'], 'empty.jsonl'],
    ['ab, empty jsonl', ['ab', '--a', 'vllm-default', '--b', 'kvmgr-default', '--trace', emptyJsonl], 'empty.jsonl'],
    ['eviction eval, empty jsonl', ['eviction', 'eval', '--trace', emptyJsonl], 'empty.jsonl'],
  ];
  it.each(cases)('%s: one line naming the file, exit 2, no output files', (_name, args, file) => {
    const out = join(dir, `out-${_name.replace(/\W+/g, '-')}`);
    const r = kvmgr([...args, '--out', out]);
    expectOneLineError(r, new RegExp(`${file.replace('.', '\\.')}: no requests to replay: it is empty or has only a header`));
    expect(existsSync(join(out, 'report.json'))).toBe(false);
  });
});

describe('edge 4: engine limits explicit', () => {
  it('chunked-prefill{budget=65536} above the engine budget is warned once, naming the flag that raises it', () => {
    const err = captureStderr();
    const pipeline = 'sched.step(fcfs,chunked-prefill{budget=65536})';
    pipelineClampWarnings(pipeline, getEngineProfile('vllm-default'), 'kvmgr-default');
    pipelineClampWarnings(pipeline, getEngineProfile('vllm-default'), 'kvmgr-default');
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^kvmgr: warning: pipeline of kvmgr-default: chunked-prefill\{budget=65536\} is capped at 8192 tokens per step.*--max-num-batched-tokens 65536/);
    // raised by the flag: no warning; a preset or an unwritten option: no warning
    pipelineClampWarnings(pipeline, { ...getEngineProfile('vllm-default'), tokenBudget: 65536 }, 'x');
    pipelineClampWarnings('vllm-default', getEngineProfile('vllm-small-gpu'), 'y');
    pipelineClampWarnings('sched.step(fcfs,chunked-prefill)', { ...getEngineProfile('vllm-default'), tokenBudget: 2048 }, 'z');
    expect(err).toHaveLength(1);
  });

  it('--max-num-batched-tokens, --max-num-seqs, --gpu-memory-utilization, --block-size reach the profile', () => {
    const opts = resolveRunOptions({ maxNumBatchedTokens: 65536, maxNumSeqs: 64, gpuMemoryUtilization: 0.5, blockSize: 32 });
    expect(profileFor(opts, 'vllm-default')).toMatchObject({ name: 'vllm-default', tokenBudget: 65536, maxSeqs: 64, gpuMemoryUtilization: 0.5, blockSize: 32 });
    // none given: the profile object itself (default replays unchanged)
    expect(profileFor(resolveRunOptions({}), 'vllm-default')).toBe(getEngineProfile('vllm-default'));
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['--tp 3 on an 8B model (32 heads)', ['--tp', '3'], /--tp 3: expected a tensor-parallel degree that divides .*32 attention heads and 8 KV heads, as vLLM requires: one of 1, 2, 4, 8, 16, 32/],
    ['--block-size 12', ['--block-size', '12'], /--block-size 12: expected one of 8, 16, 32, 64, 128/],
    ['--max-num-batched-tokens 0', ['--max-num-batched-tokens', '0'], /--max-num-batched-tokens: expected a positive integer/],
    ['--gpu-memory-utilization 1.5', ['--gpu-memory-utilization', '1.5'], /--gpu-memory-utilization: expected a fraction in \(0, 1\]/],
    ['--request-rate with --rate-scale', ['--request-rate', '4', '--rate-scale', '2'], /--request-rate 4: expected either --request-rate .* or --rate-scale .*, not both/],
  ];
  it.each(bad)('%s: one line, exit 2', (_name, args, message) => {
    const r = kvmgr(['replay', ...args, '--out', join(dir, 'bad-flag')]);
    expectOneLineError(r, message);
  });

  it('--rate-scale 1e9 warns that the run is past saturation', () => {
    const r = kvmgr(['replay', '--limit', '30', '--instances', '1', '--rate-scale', '1e9', '--out', join(dir, 'sat')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^kvmgr: warning: --rate-scale 1000000000: the trace then asks for about .* output tokens\/s, more than the cluster can ever decode .*past saturation/m);
    expect(r.stderr.split('\n').filter((l) => l.includes('past saturation'))).toHaveLength(1);
  });

  it('a length-only CSV says its Poisson arrivals on stderr; --request-rate sets them', () => {
    const csv = join(dir, 'lengths.csv');
    writeFileSync(csv, `num_prefill_tokens,num_decode_tokens\n${Array.from({ length: 12 }, (_, i) => `${100 + i},${10 + i}`).join('\n')}\n`);
    const r1 = kvmgr(['replay', '--trace', csv, '--instances', '1', '--out', join(dir, 'len1')]);
    expect(r1.status, r1.stderr).toBe(0);
    expect(r1.stderr).toMatch(/^kvmgr: note: lengths\.csv has no timestamps: arrivals are Poisson at 1 request\/s \(the default; set --request-rate\)/m);
    const r2 = kvmgr(['replay', '--trace', csv, '--instances', '1', '--request-rate', '4', '--out', join(dir, 'len2')]);
    expect(r2.status, r2.stderr).toBe(0);
    expect(r2.stderr).toMatch(/arrivals are Poisson at 4 requests\/s, seed 1/);
    const span = (out: string) => {
      const rows = readFileSync(join(dir, out, 'requests.csv'), 'utf8').trim().split('\n').slice(1);
      return Math.max(...rows.map((l) => Number(l.split(',')[3])));
    };
    expect(span('len2')).toBeLessThan(span('len1') / 2);
  });

  it('--request-rate on a timestamped trace scales it to that mean rate', () => {
    const r = kvmgr(['replay', '--limit', '40', '--instances', '1', '--request-rate', '2', '--out', join(dir, 'rr')]);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(dir, 'rr', 'report.json'), 'utf8'));
    expect(report.setup.rateScale).toBeGreaterThan(0);
    expect(report.setup.rateScale).not.toBe(1);
  });
});

describe('edge 5: sweep worker threads', () => {
  it('caps --workers at the number of runs and the CPU cores, and says so once', () => {
    const err = captureStderr();
    expect(sweepThreads(64, 2, false, 16)).toBe(2);
    expect(sweepThreads(64, 100, false, 16)).toBe(16);
    expect(sweepThreads(64, 100, true, 16)).toBe(64);
    expect(sweepThreads(undefined, 100, false, 16)).toBe(16);
    expect(sweepThreads(4, 100, false, 16)).toBe(4);
    expect(err).toEqual([
      'kvmgr: note: --workers 64: using 2 worker threads (2 runs to do)\n',
      'kvmgr: note: --workers 64: using 16 worker threads (16 CPU cores; --force-workers allows more)\n',
    ]);
  });

  it('kvmgr sweep --workers 64 with two runs starts two', () => {
    const r = kvmgr(['sweep', '--limit', '20', '--rates', '1', '--workers', '64', '--out', join(dir, 'sweep')], 120_000);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.includes('--workers'))).toEqual(['kvmgr: note: --workers 64: using 2 worker threads (2 runs to do)']);
  });
});

describe('edge 6: the HTML report plots what the table says', () => {
  const sample = (tMs: number, instance: number, hitRate: number, outputTokPerSec = 100) =>
    ({ tMs, instance, kvUtilGpu: 0.5, kvCachedGpu: 0, kvUtilCpu: 0, waiting: 0, running: 1, batchSize: 1, stepMs: 10, outputTokPerSec, prefillTokPerSec: 0, hitRate, evictions: 0, transfers: 0, preemptions: 0, finished: 1 }) as const;
  const req = (arrivalMs: number, promptTokens: number, cachedTokens: number, rejectedReason = '') =>
    ({ requestId: `r${arrivalMs}`, instance: 'inst-0', arrivalMs, promptTokens, cachedTokens, outputTokens: 2, rejectedReason }) as never;

  it('hit rate over time is token-weighted over all instances, and its prompt-weighted mean is the table hit rate', () => {
    // one instance serves a long prompt fully cached, the other a short one with no hit: the
    // unweighted mean of the samples says 50%, the tokens say 90%
    const requests = [req(100, 900, 900), req(200, 100, 0), req(1500, 1000, 500), req(1600, 1000, 0, 'too-long')];
    const ts = timeseries({ timeseries: [sample(0, 0, 1), sample(0, 1, 0), sample(1000, 0, 0.5), sample(1000, 1, 0.5)], requests } as never);
    expect(ts.hitRate[0]).toBeCloseTo(0.9);
    expect(ts.hitRate[1]).toBeCloseTo(0.5);
    const table = (900 + 500) / (900 + 100 + 1000);
    expect((ts.hitRate[0] as number) * 1000 + (ts.hitRate[1] as number) * 1000).toBeCloseTo(table * 2000);
  });

  it('drops a last bucket the run does not fill instead of plotting a fall to 0', () => {
    // 250 s of samples: 3 s buckets; the last (249 s) holds one of three samples
    const samples = Array.from({ length: 250 }, (_, i) => sample(i * 1000, 0, 0, i === 249 ? 0 : 100));
    const ts = timeseries({ timeseries: samples, requests: [req(0, 10, 5)] } as never);
    expect(ts.tSec[ts.tSec.length - 1]).toBe(246);
    expect(Math.min(...ts.throughputTokPerS)).toBe(100);
  });

  it('TTFT and TPOT CDFs use a log axis and draw the SLOs', () => {
    const run = (label: string): RunResult =>
      ({
        label,
        summary: { requests: 3, sloAttainment: 1, goodputRps: 1, ttftMs: { p50: 1, p99: 1 }, tpotMs: { p50: 1, p99: 1 }, e2eMs: { p50: 1, p99: 1 }, hitRate: 0 },
        requests: [1, 2, 3].map((i) => ({ ttftMs: 10 ** i, tpotMs: i === 3 ? 5000 : 10 * i })),
        timeseries: { tSec: [], throughputTokPerS: [], kvUtilization: [], hitRate: [] },
      }) as unknown as RunResult;
    const html = replayHtml({ trace: 't', model: 'm', gpu: 'g', instances: 1, rateScale: 1, sloTtftMs: 2000, sloTpotMs: 100, seed: 1 }, run('a'), run('b'));
    for (const [id, slo] of [
      ['ttft-cdf', 2000],
      ['tpot-cdf', 100],
    ] as const) {
      const chart = html.charts.find((c) => c.id === id);
      expect(chart?.logX, id).toBe(true);
      const line = chart?.series.find((s) => s.dashed);
      expect(line?.points).toEqual([
        [slo, 0],
        [slo, 1],
      ]);
    }
  });
});
