/**
 * Client capacity of `kvmgr bench serve` (issue #25, check 5): how many requests/s and streamed
 * tokens/s the load generator itself sustains, and how late it sends (inference-perf's schedule
 * delay: actual send − scheduled send, per request).
 *
 *   node --conditions=@kvmgr/source --import tsx packages/cli/bench/client-capacity.ts [seconds=5]
 *
 * Two processes: this one runs bench serve's own runner (`runWorkload`, the code the command
 * uses), one child runs a trivial OpenAI-compatible upstream (node:http: a fixed completion, or a
 * stream of N token chunks written in bursts of 10 with `setImmediate` between), so what is
 * measured is the client. Phases, each an open loop at a fixed rate for `seconds`:
 *   1. short non-streamed completions (16 prompt token ids, 1 output token) at 2,000 and 3,000 req/s;
 *   2. streamed completions of 100 tokens at 250 and 500 req/s (25,000 and 50,000 tokens/s offered).
 * After warm-ups (JIT, connection pool) that are not reported.
 * Each phase also reports the client process's CPU time (`process.cpuUsage`), so requests and
 * tokens per CPU-second say what one free core sustains even when the shared machine is loaded
 * (the wall-clock rates then are the machine's, not the client's).
 * Writes `packages/cli/bench/results/client-capacity.json` and prints one line per phase.
 * The child is stopped by its own handle at the end (SIGTERM, then awaited).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarize } from '../src/bench-serve/metrics.js';
import { runWorkload } from '../src/bench-serve/runner.js';
import type { BenchRequest } from '../src/bench-serve/workload.js';

const MODEL = 'bench/trivial';

// ---- child: trivial upstream ------------------------------------------------------------------

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
  process.on('SIGTERM', () => {
    void s.close().then(() => process.exit(0));
  });
} else {
  await main();
}

// ---- parent: the load generator ---------------------------------------------------------------

function startChild(): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, KVMGR_BENCH_ROLE: 'upstream' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ child, url: (m as { url: string }).url }));
    child.once('exit', (code) => reject(new Error(`upstream exited (${code})`)));
  });
}

interface PhaseResult {
  readonly phase: string;
  readonly offeredReqPerS: number;
  readonly requests: number;
  readonly failed: number;
  readonly achievedSendReqPerS: number;
  readonly completedReqPerS: number;
  readonly streamedTokPerS: number;
  readonly scheduleDelayMs: { readonly median: number; readonly p99: number; readonly max: number };
  readonly wallS: number;
  /** CPU time of this (the client's) process over the phase, s (user + system). */
  readonly clientCpuS: number;
  /** What one fully free core would sustain at this CPU cost: requests / CPU s, tokens / CPU s. */
  readonly reqPerCpuS: number;
  readonly tokPerCpuS: number;
}

async function phase(url: string, name: string, rate: number, seconds: number, stream: boolean, outputTokens: number): Promise<PhaseResult> {
  const n = Math.round(rate * seconds);
  const prompt = Array.from({ length: 16 }, (_, i) => 1000 + i);
  const requests: BenchRequest[] = Array.from({ length: n }, (_, i) => ({ id: `r${i}`, stage: 0, atS: i / rate, promptTokens: 16, outputTokens, prompt: () => prompt }));
  const cpu0 = process.cpuUsage();
  const res = await runWorkload({ url, model: MODEL, workload: { name, requests, stages: [{ rate }] }, stream, requestTimeoutS: 60 });
  const cpu = process.cpuUsage(cpu0);
  const clientCpuS = (cpu.user + cpu.system) / 1e6;
  const ok = res.records.filter((r) => r.error === null);
  const starts = res.records.map((r) => r.startS);
  const firstStart = Math.min(...starts);
  const sendSpan = Math.max(...starts) - firstStart;
  const span = Math.max(...res.records.map((r) => r.endS)) - firstStart;
  const delays = summarize(res.records.map((r) => (r.startS - r.scheduledS) * 1000)) as Record<string, number>;
  const tokens = ok.reduce((s, r) => s + r.chunkTimesS.length, 0);
  return {
    phase: name,
    offeredReqPerS: rate,
    requests: res.records.length,
    failed: res.records.length - ok.length,
    achievedSendReqPerS: sendSpan > 0 ? (res.records.length - 1) / sendSpan : 0,
    completedReqPerS: ok.length / span,
    streamedTokPerS: tokens / span,
    scheduleDelayMs: { median: delays['median'] as number, p99: delays['p99'] as number, max: delays['max'] as number },
    wallS: res.wallS,
    clientCpuS,
    reqPerCpuS: ok.length / clientCpuS,
    tokPerCpuS: tokens / clientCpuS,
  };
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 5);
  const { child, url } = await startChild();
  const results: PhaseResult[] = [];
  try {
    // warm-up: JIT, connection pool
    await phase(url, 'warm-up', 1000, 2, false, 1);
    await phase(url, 'warm-up', 100, 1, true, 100);
    for (const [name, rate, stream, out] of [
      ['non-streamed, 1 token', 2000, false, 1],
      ['non-streamed, 1 token', 3000, false, 1],
      ['streamed, 100 tokens', 250, true, 100],
      ['streamed, 100 tokens', 500, true, 100],
    ] as const) {
      const r = await phase(url, name, rate, seconds, stream, out);
      results.push(r);
      const d = r.scheduleDelayMs;
      process.stdout.write(
        `${name} @ ${rate} req/s × ${seconds} s: ${r.requests} sent (${r.failed} failed), send ${r.achievedSendReqPerS.toFixed(0)} req/s, done ${r.completedReqPerS.toFixed(0)} req/s, ${r.streamedTokPerS.toFixed(0)} streamed tok/s, schedule delay p50 ${d.median.toFixed(2)} ms p99 ${d.p99.toFixed(2)} ms max ${d.max.toFixed(1)} ms; client CPU ${r.clientCpuS.toFixed(2)} s = ${r.reqPerCpuS.toFixed(0)} req per CPU-s, ${r.tokPerCpuS.toFixed(0)} tok per CPU-s\n`,
      );
    }
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  const dir = join(fileURLToPath(new URL('.', import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const os = await import('node:os');
  writeFileSync(join(dir, 'client-capacity.json'), `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, loadavg: os.loadavg(), seconds, results }, null, 2)}\n`);
}
