/**
 * Added latency of the gateway versus calling the upstream directly, in the same run, on loopback.
 *
 *   node --conditions=@kvmgr/source --import tsx packages/gateway/bench/overhead.ts [rate=1000] [seconds=5] [upstream=trivial|engine]
 *
 * Three processes: this one generates the load (undici, open loop at a fixed rate, bounded in
 * count and time), one runs the upstream, one runs the gateway in front of it. The upstream is
 * either `trivial` (node:http answering a fixed completion, the gateway's own cost alone) or
 * `engine` (a kvmgr engine server at time scale 1000). Phases alternate direct / gateway twice, so
 * drift on a shared machine hits both alike; added latency = quantile(gateway) − quantile(direct).
 * Then: the same with a ~2,000-token prompt (tokenisation at the gateway) at a lower rate, and the
 * highest rate the gateway sustains (closed loop, 64 connections, short prompts). The gateway
 * process's CPU time per request (user + system, asked of the child around each of its phases)
 * is printed too: on a shared machine it says more than the latencies do.
 *
 * The gateway logs at info as `kvmgr serve` does (its per-request JSON line built and serialised,
 * then dropped); `KVMGR_BENCH_LOG=silent` turns the log off. `KVMGR_BENCH_GATEWAY=floor` puts a
 * bare node:http + undici pass-through proxy in the gateway's place: the floor of any Node proxy
 * hop on this machine, to read the gateway's numbers against. `KVMGR_BENCH_WARMUP_S` (default 4)
 * is how long the proxy takes traffic at the measured rate before each comparison (V8's optimising
 * compiles of its hot paths end in that time). `KVMGR_BENCH_PROF=dir` writes a V8
 * CPU profile of the gateway process there (`KVMGR_BENCH_PROF_INTERVAL=µs` its sampling interval); `KVMGR_BENCH_NODE_ARGS` adds node/V8 flags to
 * the gateway process (e.g. `--trace-deopt`).
 *
 * Every child process is stopped by its own handle at the end (SIGTERM, then awaited), and exits
 * by itself when this process dies first (its IPC channel closes).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { subscribe } from 'node:diagnostics_channel';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { PerformanceObserver, constants as perfConstants, monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const role = process.env['KVMGR_BENCH_ROLE'];
/** Seconds of traffic at the measured rate through the proxy before each measured comparison (JIT warm-up). @default 4 */
const WARMUP_S = Number(process.env['KVMGR_BENCH_WARMUP_S'] ?? '4');
if (!(WARMUP_S >= 0 && Number.isFinite(WARMUP_S))) throw new Error(`KVMGR_BENCH_WARMUP_S: ${process.env['KVMGR_BENCH_WARMUP_S']}, expected a number of seconds ≥ 0`);

// ---- child: trivial upstream ------------------------------------------------------------------

const METRICS = `vllm:num_requests_running{model_name="${MODEL}",engine="0"} 0
vllm:num_requests_waiting{model_name="${MODEL}",engine="0"} 0
vllm:kv_cache_usage_perc{model_name="${MODEL}",engine="0"} 0
vllm:cache_config_info{block_size="16",enable_prefix_caching="True",num_gpu_blocks="65536",engine="0"} 1
vllm:prefix_cache_queries_total{model_name="${MODEL}",engine="0"} 0
vllm:prefix_cache_hits_total{model_name="${MODEL}",engine="0"} 0
`;

async function trivialUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(METRICS);
      return;
    }
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () => {
      const body = JSON.stringify({
        id: 'cmpl-bench',
        object: 'text_completion',
        created: 0,
        model: MODEL,
        choices: [{ index: 0, text: ' ok', logprobs: null, finish_reason: 'length', stop_reason: null }],
        usage: { prompt_tokens: Math.max(1, n >> 2), completion_tokens: 1, total_tokens: 1 + Math.max(1, n >> 2), prompt_tokens_details: { cached_tokens: 0 } },
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function runChild(): Promise<void> {
  let close: () => Promise<void>;
  let url: string;
  if (role === 'trivial') {
    const s = await trivialUpstream();
    ({ url, close } = s);
  } else if (role === 'engine') {
    const { createEngineServer } = await import('@kvmgr/engine-server');
    const s = await createEngineServer({ port: 0, timeScale: 1000, numGpuBlocks: 65536, maxLagMs: 1000 });
    url = s.url;
    close = () => s.close();
  } else if (process.env['KVMGR_BENCH_GATEWAY'] === 'floor') {
    // the floor of any Node proxy hop: node:http in, undici out on a keep-alive pool, the body
    // and the answer passed through as bytes; no parse, no routing, no log, no metrics
    const upstream = process.env['KVMGR_BENCH_UPSTREAM'] as string;
    const pool = new Agent({ connections: 256, pipelining: 1 });
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        request(`${upstream}${req.url ?? '/'}`, { method: req.method as 'POST', headers: { 'content-type': req.headers['content-type'] ?? 'application/json' }, body: chunks.length > 0 ? Buffer.concat(chunks) : null, dispatcher: pool }).then(
          async (up) => {
            const body = Buffer.from(await up.body.arrayBuffer());
            res.writeHead(up.statusCode, { 'content-type': String(up.headers['content-type'] ?? 'application/json'), 'content-length': body.length });
            res.end(body);
          },
          (e: Error) => {
            res.writeHead(502, { 'content-type': 'text/plain' });
            res.end(e.message);
          },
        );
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await pool.close();
    };
  } else {
    const { createGateway } = await import('../src/index.js');
    const upstream = process.env['KVMGR_BENCH_UPSTREAM'] as string;
    // as `kvmgr serve` does, one JSON line per request is built and written (to a stream that drops it)
    const logLevel = process.env['KVMGR_BENCH_LOG'] === 'silent' ? 'silent' : 'info';
    const gw = await createGateway(
      { server: { port: 0, logLevel }, model: MODEL, endpoints: [{ name: 'u', url: upstream }], admission: { maxQueue: 4096 } },
      { logStream: { write: () => true } },
    );
    url = gw.url;
    close = () => gw.close();
  }
  process.on('SIGTERM', () => {
    void close().then(() => process.exit(0));
  });
  // lifeline: a parent that dies without stopping this child (killed, or a crash) closes the IPC
  // channel; the child then closes its server and exits instead of listening on
  process.on('disconnect', () => {
    void close().then(() => process.exit(0));
  });
  // the parent asks for this process's CPU time (µs, user + system) around each phase, and with it
  // the event-loop delay and the GC pauses since its previous ask (so the ask after a phase gives
  // that phase's): where a latency tail comes from when the CPU per request does not explain it
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const gc = { minor: 0, minorMs: 0, major: 0, majorMs: 0, other: 0, otherMs: 0, maxMs: 0 };
  const gcObs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
        gc.minor++;
        gc.minorMs += e.duration;
      } else if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.major++;
        gc.majorMs += e.duration;
      } else {
        gc.other++;
        gc.otherMs += e.duration;
      }
      if (e.duration > gc.maxMs) gc.maxMs = e.duration;
    }
  });
  gcObs.observe({ entryTypes: ['gc'] });
  // each request's time inside this process, from its head parsed ('request') to its response
  // handed to the socket ('finish'): what the process itself adds, without the waits outside it
  const since = new WeakMap<object, number>();
  let inside: number[] = [];
  if (role !== 'trivial' && role !== 'engine') {
    subscribe('http.server.request.start', (m) => since.set((m as { response: object }).response, performance.now()));
    subscribe('http.server.response.finish', (m) => {
      const t = since.get((m as { response: object }).response);
      if (t !== undefined) inside.push(performance.now() - t);
    });
  }
  process.on('message', (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage();
      inside.sort((a, b) => a - b);
      const stats: ChildStats = { insideP50Ms: quantile(inside, 0.5), insideP90Ms: quantile(inside, 0.9), insideP99Ms: quantile(inside, 0.99), loopP50Ms: loop.percentile(50) / 1e6, loopP99Ms: loop.percentile(99) / 1e6, loopMaxMs: loop.max / 1e6, gc: { ...gc } };
      loop.reset();
      inside = [];
      for (const k of Object.keys(gc) as (keyof typeof gc)[]) gc[k] = 0;
      process.send?.({ cpuUs: u.user + u.system, stats });
    }
  });
  process.send?.({ url });
}

// ---- parent: load ------------------------------------------------------------------------------

interface Child {
  proc: ChildProcess;
  url: string;
}

/** A child's event-loop delay (`monitorEventLoopDelay`, 1 ms resolution) and GC pauses since its previous CPU ask. */
interface ChildStats {
  /** time from a request's head parsed to its response finished, inside the process (ms) */
  insideP50Ms: number;
  insideP90Ms: number;
  insideP99Ms: number;
  loopP50Ms: number;
  loopP99Ms: number;
  loopMaxMs: number;
  /** counts and total pause ms: scavenges (minor), mark-compacts (major), the rest (incremental marking, weak callbacks); the longest pause */
  gc: { minor: number; minorMs: number; major: number; majorMs: number; other: number; otherMs: number; maxMs: number };
}

/** The stats of the phase that the CPU ask closed (set by {@link cpuUs}). */
const lastStats = new WeakMap<Child, ChildStats>();

function fmtStats(label: string, phases: readonly ChildStats[]): string {
  const all = (f: (s: ChildStats) => number, d = 2) => phases.map((s) => f(s).toFixed(d)).join(' / ');
  const sum = (f: (s: ChildStats) => number) => phases.reduce((a, s) => a + f(s), 0);
  return (
    `${label} time inside ms (request head → response finish) p50 ${all((s) => s.insideP50Ms, 3)}, p90 ${all((s) => s.insideP90Ms, 3)}, p99 ${all((s) => s.insideP99Ms, 3)}; ` +
    `event-loop delay ms (per measured phase) p50 ${all((s) => s.loopP50Ms)}, p99 ${all((s) => s.loopP99Ms)}, max ${all((s) => s.loopMaxMs)}; ` +
    `GC: ${sum((s) => s.gc.minor)} scavenges ${sum((s) => s.gc.minorMs).toFixed(1)} ms, ${sum((s) => s.gc.major)} mark-compacts ${sum((s) => s.gc.majorMs).toFixed(1)} ms, ${sum((s) => s.gc.other)} other ${sum((s) => s.gc.otherMs).toFixed(1)} ms, longest pause ${Math.max(...phases.map((s) => s.gc.maxMs)).toFixed(2)} ms`
  );
}

function spawn(r: string, env: Record<string, string> = {}): Promise<Child> {
  const proc = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, KVMGR_BENCH_ROLE: r, ...env },
    // KVMGR_BENCH_PROF=dir: a V8 CPU profile of the gateway process is written there
    execArgv: ['--conditions=@kvmgr/source', '--import', 'tsx', ...(r === 'gateway' && process.env['KVMGR_BENCH_NODE_ARGS'] ? process.env['KVMGR_BENCH_NODE_ARGS'].split(' ') : []), ...(r === 'gateway' && process.env['KVMGR_BENCH_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['KVMGR_BENCH_PROF']}`, ...(process.env['KVMGR_BENCH_PROF_INTERVAL'] ? [`--cpu-prof-interval=${process.env['KVMGR_BENCH_PROF_INTERVAL']}`] : [])] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    proc.once('message', (m) => resolve({ proc, url: (m as { url: string }).url }));
    proc.once('exit', (code) => reject(new Error(`${r} exited with ${code} before it was ready`)));
  });
}

async function stop(c: Child): Promise<void> {
  if (c.proc.exitCode !== null) return;
  const done = new Promise<void>((r) => c.proc.once('exit', () => r()));
  c.proc.kill('SIGTERM');
  const t = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

/** A child's CPU time so far, µs (user + system). */
function cpuUs(c: Child): Promise<number> {
  return new Promise((resolve) => {
    const on = (m: unknown) => {
      if (typeof m === 'object' && m !== null && 'cpuUs' in m) {
        c.proc.off('message', on);
        const st = (m as { stats?: ChildStats }).stats;
        if (st !== undefined) lastStats.set(c, st);
        resolve((m as { cpuUs: number }).cpuUs);
      }
    };
    c.proc.on('message', on);
    c.proc.send('cpu');
  });
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

const agent = new Agent({ connections: 512, keepAliveTimeout: 10_000, pipelining: 1 });

async function one(url: string, body: string): Promise<number> {
  const t0 = performance.now();
  const res = await request(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, dispatcher: agent });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
  return performance.now() - t0;
}

/** Open loop: `rate` requests per second for `seconds`, each timed from its send. Bounded: rate × seconds requests, 30 s extra at most. */
async function openLoop(url: string, body: string, rate: number, seconds: number): Promise<{ lat: number[]; errors: number; achieved: number }> {
  const total = Math.round(rate * seconds);
  const lat: number[] = [];
  let errors = 0;
  let sent = 0;
  const inflight = new Set<Promise<void>>();
  const t0 = performance.now();
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    while (sent < due) {
      sent++;
      const p: Promise<void> = one(url, body).then(
        (ms) => {
          lat.push(ms);
        },
        () => {
          errors++;
        },
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    await new Promise((r) => setTimeout(r, 1));
    if (performance.now() - t0 > (seconds + 30) * 1000) break;
  }
  await Promise.race([Promise.all(inflight), new Promise((r) => setTimeout(r, 30_000).unref())]);
  const wall = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { lat, errors, achieved: lat.length / wall };
}

/** Closed loop: `conns` workers for `seconds`; requests per second achieved. */
async function closedLoop(url: string, body: string, conns: number, seconds: number): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const end = performance.now() + seconds * 1000;
  const lat: number[] = [];
  let errors = 0;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (performance.now() < end) {
        try {
          lat.push(await one(url, body));
        } catch {
          errors++;
        }
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { rps: lat.length / seconds, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), errors };
}

function fmt(x: number): string {
  return x.toFixed(3);
}

async function compare(label: string, direct: string, gwChild: Child, body: string, rate: number, seconds: number): Promise<void> {
  const gw = gwChild.url;
  // warm-up (connections, JIT) on both paths, then WARMUP_S at the measured rate: without it the
  // measured phases still pay for V8 compiling (and, after wrong-map deopts, recompiling) the
  // gateway's hot paths on a background thread that competes for the cores, which a gateway that
  // has been serving for a while no longer does (`--trace-opt` shows TurboFan jobs for `proxy`,
  // `handle`, `decide` and `placeRequest` still running a second into the measured rate)
  await openLoop(direct, body, Math.min(rate, 200), 0.5);
  await openLoop(gw, body, Math.min(rate, 200), 0.5);
  await openLoop(direct, body, rate, 1);
  await openLoop(gw, body, rate, WARMUP_S);
  const d: number[] = [];
  const g: number[] = [];
  let dErr = 0;
  let gErr = 0;
  let gAch = 0;
  let gCpuUs = 0;
  const gStats: ChildStats[] = [];
  for (let i = 0; i < 2; i++) {
    const a = await openLoop(direct, body, rate, seconds / 2);
    d.push(...a.lat);
    dErr += a.errors;
    const c0 = await cpuUs(gwChild);
    const b = await openLoop(gw, body, rate, seconds / 2);
    gCpuUs += (await cpuUs(gwChild)) - c0;
    const st = lastStats.get(gwChild);
    if (st !== undefined) gStats.push(st);
    g.push(...b.lat);
    gErr += b.errors;
    gAch += b.achieved / 2;
  }
  d.sort((x, y) => x - y);
  g.sort((x, y) => x - y);
  const row = (q: number) => ({ direct: quantile(d, q), gateway: quantile(g, q), added: quantile(g, q) - quantile(d, q) });
  const p50 = row(0.5);
  const p99 = row(0.99);
  console.log(
    `\n${label}: ${rate} req/s open loop, ${d.length} direct + ${g.length} via gateway (errors ${dErr} / ${gErr}; gateway achieved ${gAch.toFixed(0)} req/s; gateway CPU ${fmt(gCpuUs / 1000 / Math.max(1, g.length + gErr))} ms per request; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`,
  );
  console.log('| quantile | direct ms | via gateway ms | added ms |');
  console.log('|---|---|---|---|');
  console.log(`| p50 | ${fmt(p50.direct)} | ${fmt(p50.gateway)} | **${fmt(p50.added)}** |`);
  console.log(`| p90 | ${fmt(row(0.9).direct)} | ${fmt(row(0.9).gateway)} | ${fmt(row(0.9).added)} |`);
  console.log(`| p99 | ${fmt(p99.direct)} | ${fmt(p99.gateway)} | **${fmt(p99.added)}** |`);
  if (gStats.length > 0) console.log(fmtStats('gateway', gStats));
}

async function main(): Promise<void> {
  const rate = Number(process.argv[2] ?? 1000);
  const seconds = Number(process.argv[3] ?? 5);
  const kind = process.argv[4] ?? 'trivial';
  if (!(rate > 0 && rate <= 5000) || !(seconds > 0 && seconds <= 30)) throw new Error('rate in (0, 5000], seconds in (0, 30]');
  const children: Child[] = [];
  try {
    const upstream = await spawn(kind === 'engine' ? 'engine' : 'trivial');
    children.push(upstream);
    const gw = await spawn('gateway', { KVMGR_BENCH_UPSTREAM: upstream.url });
    children.push(gw);
    if (process.env['KVMGR_BENCH_GATEWAY'] === 'floor') console.log(`KVMGR_BENCH_GATEWAY=floor: the "gateway" below is a bare node:http + undici pass-through proxy (no parse, routing, log or metrics), the floor of any Node proxy hop`);
    console.log(
      `upstream ${kind} at ${upstream.url}, gateway at ${gw.url} (request log ${process.env['KVMGR_BENCH_LOG'] === 'silent' ? 'off (KVMGR_BENCH_LOG=silent)' : 'at info, one line per request built and dropped'}); node ${process.version}`,
    );
    const short = JSON.stringify({ model: MODEL, prompt: 'Hello, how are you today?', max_tokens: 1 });
    await compare('short prompt (7 tokens)', upstream.url, gw, short, rate, seconds);
    const words: string[] = [];
    for (let i = 0; i < 1000; i++) words.push(`word${i % 97} sentence${i % 13}.`);
    const long = JSON.stringify({ model: MODEL, prompt: words.join(' '), max_tokens: 1 });
    const tok = await request(`${gw.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: long, dispatcher: agent });
    const u = ((await tok.body.json()) as { usage?: { prompt_tokens: number } }).usage;
    await compare(`long prompt (the same ~${kind === 'engine' ? u?.prompt_tokens : '2,000'}-token text each time)`, upstream.url, gw, long, Math.min(rate, 100), seconds);
    console.log('\nhighest rate (closed loop, 64 connections, 3 s each, short prompt):');
    const cd = await closedLoop(upstream.url, short, 64, 3);
    const cpu0 = await cpuUs(gw);
    const cg = await closedLoop(gw.url, short, 64, 3);
    const cgCpu = ((await cpuUs(gw)) - cpu0) / 1000 / Math.max(1, cg.rps * 3 + cg.errors);
    const cgStats = lastStats.get(gw);
    console.log(`| path | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|`);
    console.log(`| direct | ${cd.rps.toFixed(0)} | ${fmt(cd.p50)} | ${fmt(cd.p99)} | ${cd.errors} |`);
    console.log(`| via gateway | ${cg.rps.toFixed(0)} | ${fmt(cg.p50)} | ${fmt(cg.p99)} | ${cg.errors} |`);
    console.log(`gateway CPU ${fmt(cgCpu)} ms per request in the closed loop; load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    if (cgStats !== undefined) console.log(fmtStats('gateway (closed loop)', [cgStats]));
  } finally {
    for (const c of children.reverse()) await stop(c);
    await agent.close();
  }
}

if (role !== undefined) await runChild();
else await main();
