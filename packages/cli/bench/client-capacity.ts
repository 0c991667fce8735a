/**
 * Client capacity of `kvmgr bench serve` (issue #25, check 5): how many requests/s and streamed
 * tokens/s the load generator itself sustains, what each request and each token costs it in CPU,
 * and how late it sends (inference-perf's schedule delay: actual send − scheduled send, per
 * request, read from the run's own `summary_lifecycle_metrics.json` → `load_summary.schedule_delay`).
 *
 *   node --conditions=@kvmgr/source --import tsx packages/cli/bench/client-capacity.ts [seconds=5] [non-streamed|streamed]
 *
 * Two processes: this one runs what `kvmgr bench serve` runs after parsing its flags — `benchServe`
 * (the runner, then derive and summaries) and `benchFiles` + `writeOutputs` (inference-perf's
 * files, `vllm_bench_serve.json`, `report.html`, into a temporary folder removed at the end); a
 * child process (`child_process.fork`) runs a trivial OpenAI-compatible upstream on 127.0.0.1
 * (node:http; replies at once: a fixed completion, or N token chunks as SSE written in bursts of
 * 10 with `setImmediate` between), so what is measured is the client. Phases, each an open loop
 * at a fixed rate for `seconds`, rates increasing:
 *   - non-streamed: 16 prompt token ids, 1 output token, at 500, 1,000, 2,000, 3,000 req/s;
 *   - streamed: 100 output tokens, at 50, 100, 200, 400 req/s (5,000 … 40,000 tokens/s offered).
 * After warm-ups (JIT, connection pool) that are not reported.
 *
 * The primary numbers are CPU per request and per streamed token (`process.cpuUsage` of this
 * process, user + system, over the phase: sending, measuring, summarising and writing the files):
 * on a shared machine the wall-clock rates are the machine's, the CPU cost is the client's
 * (rate one free core sustains ≈ 1 / cost). The upstream's CPU per request is printed too.
 * Writes `packages/cli/bench/results/client-capacity.json` and prints one line per phase.
 * The child is stopped by its own handle at the end (SIGTERM, then awaited); it also exits when
 * this process dies (its IPC channel closes).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchFiles, benchServe } from '../src/bench-serve/command.js';
import type { BenchRequest } from '../src/bench-serve/workload.js';
import { writeOutputs } from '../src/output.js';

const MODEL = 'bench/trivial';

// ---- child: trivial upstream ------------------------------------------------------------------

/** Connections the upstream accepted (reported with its CPU time). */
let connections = 0;

function upstream(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model' }] }));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { max_tokens: number; stream?: boolean; prompt: number[] };
      const usage = { prompt_tokens: body.prompt.length, completion_tokens: body.max_tokens, total_tokens: body.prompt.length + body.max_tokens, prompt_tokens_details: { cached_tokens: 0 } };
      if (body.stream !== true) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'cmpl-b', object: 'text_completion', created: 0, model: MODEL, choices: [{ index: 0, text: ' ok', logprobs: null, finish_reason: 'length' }], usage }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const chunk = (finish: string | null) => `data: {"id":"cmpl-b","object":"text_completion","created":0,"model":"${MODEL}","choices":[{"index":0,"text":" x","logprobs":null,"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]}\n\n`;
      let sent = 0;
      const burst = () => {
        let s = '';
        for (let i = 0; i < 10 && sent < body.max_tokens; i++) {
          sent++;
          s += chunk(sent === body.max_tokens ? 'length' : null);
        }
        if (sent < body.max_tokens) {
          res.write(s);
          setImmediate(burst);
        } else res.end(`${s}data: ${JSON.stringify({ id: 'cmpl-b', object: 'text_completion', created: 0, model: MODEL, choices: [], usage })}\n\ndata: [DONE]\n\n`);
      };
      burst();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', () => {
    connections++;
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (process.env['KVMGR_BENCH_ROLE'] === 'upstream') {
  const s = await upstream();
  process.send?.({ url: s.url });
  // the parent asks for this process's CPU time (µs, user + system) around each phase
  process.on('message', (m) => {
    if (m === 'cpu') {
      const c = process.cpuUsage();
      process.send?.({ cpuUs: c.user + c.system, connections });
    }
  });
  const stop = () => {
    void s.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  // lifeline: the parent died without stopping this process
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

// ---- parent: the load generator ---------------------------------------------------------------

interface Upstream {
  readonly child: ChildProcess;
  readonly url: string;
  /** The upstream's CPU time so far (µs, user + system) and connections accepted so far. */
  usage(): Promise<{ cpuUs: number; connections: number }>;
}

function startChild(): Promise<Upstream> {
  const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, KVMGR_BENCH_ROLE: 'upstream' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const usage = () =>
    new Promise<{ cpuUs: number; connections: number }>((resolve) => {
      const on = (m: unknown) => {
        if (typeof m === 'object' && m !== null && 'cpuUs' in m) {
          child.off('message', on);
          resolve(m as { cpuUs: number; connections: number });
        }
      };
      child.on('message', on);
      child.send('cpu');
    });
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ child, url: (m as { url: string }).url, usage }));
    child.once('exit', (code) => reject(new Error(`upstream exited (${code})`)));
  });
}

/** One phase's result. Rates are per wall second; CPU is this process's unless named upstream. */
interface PhaseResult {
  readonly phase: string;
  readonly stream: boolean;
  readonly offeredReqPerS: number;
  readonly offeredTokPerS: number;
  readonly requests: number;
  readonly failed: number;
  /** inference-perf's `achieved_rate`: requests sent / (last send − first send). */
  readonly sendReqPerS: number;
  /** Successful requests / (last end − first send). */
  readonly completedReqPerS: number;
  /** Token chunks received / (last end − first send). */
  readonly streamedTokPerS: number;
  /** `load_summary.schedule_delay` of the run's summary file, ms. */
  readonly scheduleDelayMs: { readonly median: number; readonly p99: number; readonly max: number };
  /** CPU of this process over the phase (send, measure, summarise, write files), s. */
  readonly clientCpuS: number;
  /** Client CPU per request sent, µs. */
  readonly clientCpuUsPerRequest: number;
  /** The part of {@link clientCpuUsPerRequest} spent after the run: the files (inference-perf's, vLLM's JSON, the HTML report), µs. */
  readonly filesCpuUsPerRequest: number;
  /** Client CPU per token chunk received, µs (streamed phases). */
  readonly clientCpuUsPerToken: number | null;
  /** Connections the client opened (the upstream accepted) during the phase. */
  readonly connections: number;
  /** CPU of the upstream process per request, µs. */
  readonly upstreamCpuUsPerRequest: number;
  readonly wallS: number;
}

async function phase(up: Upstream, out: string, name: string, rate: number, seconds: number, stream: boolean, outputTokens: number): Promise<PhaseResult> {
  const n = Math.round(rate * seconds);
  const prompt = Array.from({ length: 16 }, (_, i) => 1000 + i);
  const requests: BenchRequest[] = Array.from({ length: n }, (_, i) => ({ id: `r${i}`, stage: 0, atS: i / rate, promptTokens: 16, outputTokens, prompt: () => prompt }));
  const up0 = await up.usage();
  const cpu0 = process.cpuUsage();
  const r = await benchServe({
    target: up.url,
    model: MODEL,
    workload: { name, requests, stages: [{ rate }] },
    rateScale: 1,
    timeScale: 1,
    rate,
    requestTimeoutS: 60,
    slo: { ttftS: 2, tpotS: 0.1 },
    seed: 1,
    out,
    progress: false,
    label: name,
    stream,
  });
  const cpuRun = process.cpuUsage(cpu0);
  writeOutputs(out, benchFiles(r, { vllmJson: true, html: true }));
  const cpu = process.cpuUsage(cpu0);
  const up1 = await up.usage();
  const clientCpuS = (cpu.user + cpu.system) / 1e6;
  const summary = JSON.parse(readFileSync(join(out, 'summary_lifecycle_metrics.json'), 'utf8')) as { load_summary: { count: number; schedule_delay: Record<string, number> } };
  const delay = summary.load_summary.schedule_delay;
  const records = r.run.derived.map((d) => d.record);
  const ok = records.filter((x) => x.error === null);
  let first = Number.POSITIVE_INFINITY;
  let lastStart = Number.NEGATIVE_INFINITY;
  let lastEnd = Number.NEGATIVE_INFINITY;
  for (const x of records) {
    first = Math.min(first, x.startS);
    lastStart = Math.max(lastStart, x.startS);
    lastEnd = Math.max(lastEnd, x.endS);
  }
  const tokens = ok.reduce((s, x) => s + x.chunkTimesS.length, 0);
  const span = lastEnd - first;
  return {
    phase: name,
    stream,
    offeredReqPerS: rate,
    offeredTokPerS: stream ? rate * outputTokens : 0,
    requests: records.length,
    failed: records.length - ok.length,
    sendReqPerS: lastStart > first ? (records.length - 1) / (lastStart - first) : 0,
    completedReqPerS: span > 0 ? ok.length / span : 0,
    streamedTokPerS: span > 0 ? tokens / span : 0,
    scheduleDelayMs: { median: (delay['median'] as number) * 1000, p99: (delay['p99'] as number) * 1000, max: (delay['max'] as number) * 1000 },
    clientCpuS,
    clientCpuUsPerRequest: (clientCpuS * 1e6) / records.length,
    filesCpuUsPerRequest: (cpu.user + cpu.system - cpuRun.user - cpuRun.system) / records.length,
    clientCpuUsPerToken: stream && tokens > 0 ? (clientCpuS * 1e6) / tokens : null,
    upstreamCpuUsPerRequest: (up1.cpuUs - up0.cpuUs) / records.length,
    connections: up1.connections - up0.connections,
    wallS: r.wallS,
  };
}

function line(r: PhaseResult, seconds: number): string {
  const d = r.scheduleDelayMs;
  const offered = r.stream ? `${r.offeredReqPerS} req/s × 100 tok (${r.offeredTokPerS} tok/s)` : `${r.offeredReqPerS} req/s`;
  const rates = r.stream ? `${r.completedReqPerS.toFixed(0)} req/s, ${r.streamedTokPerS.toFixed(0)} tok/s done` : `${r.sendReqPerS.toFixed(0)} req/s sent, ${r.completedReqPerS.toFixed(0)} req/s done`;
  const cost = `client CPU ${r.clientCpuUsPerRequest.toFixed(0)} µs/req (files ${r.filesCpuUsPerRequest.toFixed(0)})${r.clientCpuUsPerToken !== null ? ` = ${r.clientCpuUsPerToken.toFixed(2)} µs/tok` : ''} (upstream ${r.upstreamCpuUsPerRequest.toFixed(0)} µs/req) | ${r.connections} connections`;
  return `${r.phase.padEnd(12)} ${offered} × ${seconds} s: ${r.requests} sent, ${r.failed} failed | ${rates} | schedule delay p50 ${d.median.toFixed(2)} ms, p99 ${d.p99.toFixed(2)} ms | ${cost}`;
}

/**
 * The summary: per kind of request, the client's CPU cost at the highest offered rate (where the
 * fixed costs — the connection ramp, the send timer's last-millisecond wait — weigh least), what
 * one free core would sustain at that cost, and the highest rates achieved on this machine.
 */
function capacityLines(results: readonly PhaseResult[]): string[] {
  const lines: string[] = [];
  const last = (stream: boolean) => results.filter((r) => r.stream === stream).at(-1);
  const most = (stream: boolean, f: (r: PhaseResult) => number) => Math.max(0, ...results.filter((r) => r.stream === stream).map(f));
  const ns = last(false);
  if (ns !== undefined) {
    lines.push(
      `capacity, non-streamed: ${ns.clientCpuUsPerRequest.toFixed(0)} µs client CPU per request at ${ns.offeredReqPerS} req/s offered = ${(1e6 / ns.clientCpuUsPerRequest).toFixed(0)} req per CPU-second; highest achieved here ${most(false, (r) => r.sendReqPerS).toFixed(0)} req/s sent, ${most(false, (r) => r.completedReqPerS).toFixed(0)} req/s done`,
    );
  }
  const st = last(true);
  if (st !== undefined && st.clientCpuUsPerToken !== null) {
    lines.push(
      `capacity, streamed: ${st.clientCpuUsPerToken.toFixed(2)} µs client CPU per token at ${st.offeredTokPerS} tok/s offered = ${(1e6 / st.clientCpuUsPerToken).toFixed(0)} tok per CPU-second; highest achieved here ${most(true, (r) => r.streamedTokPerS).toFixed(0)} tok/s`,
    );
  }
  return lines;
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 5);
  const only = process.argv[3];
  if (!(seconds > 0)) throw new Error(`seconds: expected a number > 0, got ${JSON.stringify(process.argv[2])}`);
  if (only !== undefined && only !== 'streamed' && only !== 'non-streamed') throw new Error(`phases: expected streamed or non-streamed, got ${JSON.stringify(only)}`);
  const up = await startChild();
  const out = mkdtempSync(join(tmpdir(), 'kvmgr-client-capacity-'));
  const results: PhaseResult[] = [];
  try {
    // warm-up (not reported): JIT, connection pool
    await phase(up, out, 'warm-up', 500, 2, false, 1);
    await phase(up, out, 'warm-up', 50, 1, true, 100);
    const plan: Array<readonly [string, number, boolean, number]> = [
      ...(only !== 'streamed' ? [500, 1000, 2000, 3000].map((rate) => ['non-streamed', rate, false, 1] as const) : []),
      ...(only !== 'non-streamed' ? [50, 100, 200, 400].map((rate) => ['streamed', rate, true, 100] as const) : []),
    ];
    for (const [name, rate, stream, tokens] of plan) {
      const r = await phase(up, out, name, rate, seconds, stream, tokens);
      results.push(r);
      process.stdout.write(`${line(r, seconds)}\n`);
    }
    process.stdout.write(`${capacityLines(results).join('\n')}\n`);
  } finally {
    rmSync(out, { recursive: true, force: true });
    const exited = new Promise((r) => up.child.once('exit', r));
    up.child.kill('SIGTERM');
    await exited;
  }
  const dir = join(fileURLToPath(new URL('.', import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'client-capacity.json'), `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, loadavg: loadavg(), seconds, results }, null, 2)}\n`);
}
