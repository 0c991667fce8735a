/**
 * `kvmgr live`: the main job on a live stack with one command. Starts N engine servers — child
 * processes of `kvmgr engine` by default, or in this process — (the engine core on the wall
 * clock, time-scaled, KV events on loopback), puts a gateway in front of them — first with
 * round-robin routing, then with kvmgr's — and runs `bench serve` through each on the same
 * trace, with fresh engines each time (cold caches on both sides). As `kvmgr replay`'s baseline
 * and candidate: round-robin on `vllm-default` engines, kvmgr's routing on `kvmgr-default`
 * engines (`--profile`). Prints the side-by-side table, with the simulator's replay of the same
 * trace, profiles and routings next to it, and the live-vs-simulated differences on throughput
 * and the TTFT/TPOT medians; writes each side's bench files, `live.json` and `report.html`.
 * Every process it starts is stopped by its handle, also on Ctrl-C.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KvmgrError } from '@kvmgr/core';
import { createEngineServer } from '@kvmgr/engine-server';
import { type Gateway, createGateway } from '@kvmgr/gateway';
import { type BenchServeResult, benchFiles, benchServe, resolveSlo } from './bench-serve/command.js';
import { type BenchRun, benchHtml } from './bench-serve/report.js';
import { traceWorkload } from './bench-serve/workload.js';
import { type LiveCpu, type TraceLoad, capacityLine, startCpuMeter } from './live-cpu.js';
import { removeOutputs, writeOutputs } from './output.js';
import { DEFAULTS } from './defaults.js';
import { createProgress } from './progress.js';
import { renderReportHtml } from './report-html.js';
import { type RunSummary, type SimRouter, type Trace, getEngineProfile, percentileSorted } from '@kvmgr/sim';
import type { RunResult } from './run.js';
import { loadTrace, resolveRunOptions, runOnce } from './run.js';
import { fmtDelta, fmtNum, formatTable } from './table.js';

/** Flags of `kvmgr live`. */
export interface LiveFlags {
  trace?: string;
  limit?: number;
  instances?: number;
  model?: string;
  gpu?: string;
  timeScale?: number;
  rateScale?: number;
  routing?: string;
  /** Engine profile of the kvmgr side (the round-robin side runs `vllm-default`). */
  profile?: string;
  sloTtft?: string;
  sloTpot?: string;
  seed?: number;
  sim?: boolean;
  out?: string;
  progress?: boolean;
  /** `process` (default): each engine a `kvmgr engine` child process; `in-process`: all in this one. */
  engines?: 'process' | 'in-process';
}

/** Engine profile of the round-robin side (`kvmgr replay`'s default baseline). */
export const LIVE_BASELINE_PROFILE = 'vllm-default';

/** Default engine profile of the kvmgr side (`kvmgr replay`'s default candidate). */
export const LIVE_DEFAULT_PROFILE = 'kvmgr-default';

/**
 * Default time scale (model time per wall time). The stack costs about 250–450 CPU µs per output
 * token streamed (engines, gateway and client together; `kvmgr live` prints it), and the bundled
 * sample streams about 1,060 output tokens per second of model time at `--rate-scale 1`: time
 * scale 2 keeps the stack near 0.5–1 core, within reach of a 2-core machine with room for bursts
 * (docs/cli/live.md has the arithmetic).
 */
export const LIVE_DEFAULT_TIME_SCALE = 2;

/**
 * Default request count: the first 300 requests of the bundled sample (102 s of arrivals in model
 * time, about a minute of wall time per side at the default time scale). The whole sample (3,000
 * requests, 987 s of arrivals) would take ≥ 5 minutes per side at a sustainable time scale on a
 * 2-core machine; `--limit 3000` runs it.
 */
export const LIVE_DEFAULT_LIMIT = 300;

/** One engine server of a live stack, wherever it runs. */
export interface LiveEngine {
  readonly url: string;
  readonly servedModelName: string;
  readonly kvEventsEndpoint?: string;
  readonly replayEndpoint?: string;
  /** Process id of an engine running as a child process (absent for an in-process engine). */
  readonly pid?: number;
  close(): Promise<void>;
}

/** A fleet of engine servers behind one gateway, closed by {@link LiveStack.close}. */
export interface LiveStack {
  readonly url: string;
  readonly model: string;
  readonly engines: readonly LiveEngine[];
  /** The gateway's `GET /admin/state` (endpoints with their KV-event block counts, the prefix index size). */
  gatewayState(): ReturnType<Gateway['state']>;
  close(): Promise<void>;
}

/** Options of {@link startEngineProcess} and {@link startLiveStack}'s engines. */
export interface LiveEngineOptions {
  readonly model: string;
  readonly gpu: string;
  readonly timeScale: number;
  readonly seed: number;
  /** Engine profile (block size, budgets, eviction, scheduler). @default 'vllm-default' */
  readonly profile?: string;
}

const KV_EVENTS = { enable_kv_cache_events: true, publisher: 'zmq' as const, endpoint: 'tcp://127.0.0.1:0', replay_endpoint: 'tcp://127.0.0.1:0', topic: '' };

/** The node arguments that run the `kvmgr` executable next to this module (sources through tsx when running from sources). */
function kvmgrArgv(): { args: string[]; cwd: string } {
  const here = fileURLToPath(import.meta.url);
  const dir = dirname(here);
  // From sources (tests, `pnpm kvmgr`): bin.ts through tsx; built: this code is inside dist/bin.js.
  if (here.endsWith('.ts')) return { args: ['--conditions=@kvmgr/source', '--import', 'tsx', join(dir, 'bin.ts')], cwd: dir };
  return { args: [join(dir, 'bin.js')], cwd: dir };
}

/** How long an engine process may take to print its ready line (several start together on a possibly loaded machine, each compiling the sources when run from them). */
const READY_TIMEOUT_MS = 120_000;

/** `kvmgr engine`'s ready line: `kvmgr engine: NAME on GPU (…) listening on URL[, KV events EP (replay EP)]; Ctrl-C stops`. */
const READY = /^kvmgr engine: (\S+) on .* listening on (http:\/\/\S+?)(?:, KV events (\S+)(?: \(replay (\S+)\))?)?; Ctrl-C stops$/m;

/**
 * Starts one `kvmgr engine` child process on 127.0.0.1 (ephemeral HTTP and KV-event ports, logs
 * off) and resolves when it prints its ready line. `close()` sends SIGTERM (the server closes
 * gracefully), then SIGKILL after 5 s, and resolves when the child has exited.
 * @throws KvmgrError `KVMGR_UNAVAILABLE` when the child exits or stays silent for 120 s before ready (with its stderr).
 */
export function startEngineProcess(o: LiveEngineOptions): Promise<LiveEngine> {
  const { args, cwd } = kvmgrArgv();
  const child: ChildProcess = spawn(
    process.execPath,
    [...args, 'engine', '--host', '127.0.0.1', '--port', '0', '--model', o.model, '--gpu', o.gpu, '--time-scale', String(o.timeScale), '--seed', String(o.seed), '--profile', o.profile ?? 'vllm-default', '--kv-events-config', JSON.stringify(KV_EVENTS), '--log-level', 'silent'],
    // the IPC channel is a lifeline: the engine stops itself when it closes (this process died)
    { cwd, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
  );
  // the channel alone must not keep this process alive (the child's pipes and exit do)
  (child.channel as { unref?: () => void } | null | undefined)?.unref?.();
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(force);
    }
  };
  return new Promise<LiveEngine>((resolve, reject) => {
    let err = '';
    let failed = false;
    const fail = (why: string) => {
      // the first reason only: closing after a timeout makes the child exit (SIGTERM) too
      if (failed) return;
      failed = true;
      clearTimeout(timer);
      void close().then(() => reject(new KvmgrError('KVMGR_UNAVAILABLE', `kvmgr live: an engine process ${why}${err.trim() ? `: ${err.trim().split('\n').slice(-3).join(' | ')}` : ''}`)));
    };
    const timer = setTimeout(() => fail(`did not become ready within ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS);
    const early = (code: number | null, signal: NodeJS.Signals | null) => fail(`exited before it was ready (${signal ?? `code ${code}`})`);
    child.once('exit', early);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (t: string) => {
      err += t;
      const m = READY.exec(err);
      if (m === null) return;
      clearTimeout(timer);
      child.off('exit', early);
      child.stderr?.removeAllListeners('data');
      child.stderr?.resume();
      resolve({ servedModelName: m[1] as string, url: m[2] as string, ...(m[3] ? { kvEventsEndpoint: m[3] } : {}), ...(m[4] ? { replayEndpoint: m[4] } : {}), ...(child.pid !== undefined ? { pid: child.pid } : {}), close });
    });
  });
}

async function startEngineInProcess(o: LiveEngineOptions): Promise<LiveEngine> {
  const e = await createEngineServer({ host: '127.0.0.1', port: 0, model: o.model, gpu: o.gpu, timeScale: o.timeScale, seed: o.seed, profile: o.profile ?? 'vllm-default', kvEventsConfig: KV_EVENTS });
  return { url: e.url, servedModelName: e.config.servedModelName, ...(e.kvEventsEndpoint ? { kvEventsEndpoint: e.kvEventsEndpoint } : {}), ...(e.replayEndpoint ? { replayEndpoint: e.replayEndpoint } : {}), close: () => e.close() };
}

/**
 * Starts `instances` engine servers on 127.0.0.1 (ephemeral ports, KV events and replay on
 * ephemeral loopback ports; `engines: 'process'` (default) as `kvmgr engine` child processes,
 * started together) and a gateway with `routing` in front of them, its admission control off
 * (as in the simulator, every request is routed at once). Whatever started is closed
 * again when a later start fails.
 */
export async function startLiveStack(o: LiveEngineOptions & { instances: number; routing: string; engines?: 'process' | 'in-process' }): Promise<LiveStack> {
  const engines: LiveEngine[] = [];
  let gw: Gateway | undefined;
  const close = async () => {
    await gw?.close();
    await Promise.all(engines.map((e) => e.close()));
  };
  try {
    const start = o.engines === 'in-process' ? startEngineInProcess : startEngineProcess;
    const started = await Promise.allSettled(
      Array.from({ length: o.instances }, (_, i) => start({ model: o.model, gpu: o.gpu, timeScale: o.timeScale, seed: o.seed + i, ...(o.profile !== undefined ? { profile: o.profile } : {}) })),
    );
    for (const r of started) if (r.status === 'fulfilled') engines.push(r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const model = (engines[0] as LiveEngine).servedModelName;
    gw = await createGateway(
      {
        server: { host: '127.0.0.1', port: 0, logLevel: 'silent' },
        model,
        endpoints: engines.map((e, i) => ({
          url: e.url,
          name: `engine-${i}`,
          ...(e.kvEventsEndpoint ? { kvEvents: e.kvEventsEndpoint } : {}),
          ...(e.replayEndpoint ? { replay: e.replayEndpoint } : {}),
        })),
        routing: o.routing,
        // Engines, gateway and client share one machine: a /metrics scrape that misses its 1 s
        // timeout there means a busy CPU, not a dead engine (a refused connection still counts at
        // once, and a dead engine process fails `kvmgr live` anyway). The default (2 in a row)
        // emptied the pool under load (gateway 503 no_endpoint), and so did 5 in a row at load
        // average ~17 (19 of 300 requests of a default run): 30 in a row.
        // Scrapes every model second (1 s of wall time ÷ the time scale, at least 100 ms), so the
        // queue and KV state the router reads is as old in model time as a real gateway's would be.
        health: { unhealthyThreshold: 30, intervalMs: Math.max(100, Math.round(1000 / o.timeScale)) },
        scrape: { intervalMs: Math.max(100, Math.round(1000 / o.timeScale)) },
        // The simulator's replay (the columns this is compared with) routes every request at
        // once: it has no admission control at the front. The gateway's (on by default) defers a
        // request while no engine has KV for its predicted footprint and refuses one that cannot
        // make its TTFT SLO, on both sides — a stage the simulator does not model. Off here, so
        // both stacks are the simulator's: a router in front of engines.
        admission: { enabled: false },
      },
      { logStream: { write: () => true } },
    );
    const g = gw;
    return { url: gw.url, model, engines, gatewayState: () => g.state(), close };
  } catch (e) {
    await close();
    throw e;
  }
}

interface TableRow {
  readonly label: string;
  readonly live: (s: BenchRun['summary']) => number;
  readonly sim: (s: RunSummary) => number;
  readonly digits: number;
}

const TABLE: readonly TableRow[] = [
  { label: 'requests completed', live: (s) => s.completed, sim: (s) => s.finished, digits: 0 },
  { label: 'requests failed', live: (s) => s.failed, sim: (s) => s.rejected, digits: 0 },
  { label: 'prefix hit rate (%)', live: (s) => s.hitRate * 100, sim: (s) => s.hitRate * 100, digits: 1 },
  { label: 'TTFT p50 (ms)', live: (s) => s.ttftP50Ms, sim: (s) => s.ttftMs.p50, digits: 1 },
  { label: 'TTFT p99 (ms)', live: (s) => s.ttftP99Ms, sim: (s) => s.ttftMs.p99, digits: 1 },
  { label: 'TPOT p50 (ms)', live: (s) => s.tpotP50Ms, sim: (s) => s.tpotMs.p50, digits: 2 },
  { label: 'TPOT p99 (ms)', live: (s) => s.tpotP99Ms, sim: (s) => s.tpotMs.p99, digits: 2 },
  { label: 'E2E p50 (ms)', live: (s) => s.e2eP50Ms, sim: (s) => s.e2eMs.p50, digits: 1 },
  { label: 'E2E p99 (ms)', live: (s) => s.e2eP99Ms, sim: (s) => s.e2eMs.p99, digits: 1 },
  { label: 'throughput (output tok/s)', live: (s) => s.outputTokPerS, sim: (s) => s.outputTokPerSec, digits: 1 },
  { label: 'goodput (req/s)', live: (s) => s.goodputReqPerS, sim: (s) => s.goodputRps, digits: 3 },
  { label: 'SLO attainment (%)', live: (s) => s.sloAttainment * 100, sim: (s) => s.sloAttainment * 100, digits: 1 },
];

/** The live table: live round-robin, live kvmgr, change, and the simulator's two columns when given. */
export function liveTable(a: BenchRun, b: BenchRun, sim?: readonly [RunResult, RunResult]): { header: string[]; rows: string[][] } {
  const header = ['metric', `live ${a.label}`, `live ${b.label}`, 'change', ...(sim ? [`sim ${sim[0].label}`, `sim ${sim[1].label}`, 'change'] : [])];
  const rows = TABLE.map((r) => {
    const va = r.live(a.summary);
    const vb = r.live(b.summary);
    const cells = [r.label, fmtNum(va, r.digits), fmtNum(vb, r.digits), fmtDelta(va, vb)];
    if (sim) {
      const sa = r.sim(sim[0].summary);
      const sb = r.sim(sim[1].summary);
      cells.push(fmtNum(sa, r.digits), fmtNum(sb, r.digits), fmtDelta(sa, sb));
    }
    return cells;
  });
  return { header, rows };
}

/**
 * inference-perf's schedule delay of a live run (actual − scheduled send, per request), p50 and
 * p99 in model ms: when it is more than a few ms, the client (or its machine) could not send at
 * the trace's pace and the load was not the one asked for.
 */
export function scheduleDelayMs(run: BenchRun): { p50: number; p99: number } {
  const a = Float64Array.from(run.derived, (d) => (d.record.startS - d.record.scheduledS) * 1000).sort();
  if (a.length === 0) return { p50: Number.NaN, p99: Number.NaN };
  return { p50: percentileSorted(a, 50), p99: percentileSorted(a, 99) };
}

/**
 * The warning `kvmgr live` prints when the client fell behind its schedule: a p50 schedule
 * delay above `limitMs` model ms (default 5% of the TTFT SLO) means this machine could not drive
 * the stack at `timeScale`, so the live numbers measure the machine, not the routing.
 * @returns the one-line warning, or undefined when every side kept its schedule
 */
export function scheduleLagWarning(delays: ReadonlyArray<{ label: string; p50: number }>, timeScale: number, limitMs: number): string | undefined {
  const late = delays.filter((d) => d.p50 > limitMs);
  if (late.length === 0) return undefined;
  return `warning: the client fell behind its schedule (${late.map((d) => `${d.label} p50 ${fmtNum(d.p50, 1)} ms`).join(', ')}, above ${fmtNum(limitMs, 1)} ms of model time): this machine could not drive the stack at --time-scale ${timeScale}, so the live columns measure the machine, not the routing; lower --time-scale or --limit`;
}

/**
 * What the gateway of one side knew at the end of its run: its routing, the blocks it holds per
 * engine from KV events, and its prefix index's size — the check that prefix-aware routing had
 * the engines' caches to go on (a scored routing with 0 indexed blocks routes blind).
 */
export function gatewayLine(
  label: string,
  st: {
    readonly endpoints: ReadonlyArray<{ readonly kvEvents: boolean; readonly cachedBlocks: number }>;
    readonly indexBlocks: number;
    readonly routing: Pick<ReturnType<LiveStack['gatewayState']>['routing'], 'strategy' | 'scorers' | 'picker' | 'blockSize'>;
  },
): string {
  const r = st.routing;
  const how = r.strategy === 'scored' ? `${r.scorers.map((x) => `${x.name}:${x.weight}`).join(',')} (${r.picker}, block size ${r.blockSize})` : r.strategy;
  const ev = st.endpoints.filter((e) => e.kvEvents).length;
  return `gateway, ${label}: routing ${how}; KV events from ${ev}/${st.endpoints.length} engines, blocks held per engine ${st.endpoints.map((e) => e.cachedBlocks).join(' / ')}, prefix index ${st.indexBlocks} blocks`;
}

/** A trace's output tokens and arrival span (model s, after `rateScale`). */
export function traceLoad(trace: { readonly requests: ReadonlyArray<{ readonly arrivalUs: number; readonly outputTokens: number }> }, rateScale: number): TraceLoad {
  const r = trace.requests;
  const first = r[0]?.arrivalUs ?? 0;
  const last = r[r.length - 1]?.arrivalUs ?? 0;
  return { requests: r.length, outputTokens: r.reduce((s, x) => s + Math.max(1, x.outputTokens), 0), arrivalSpanS: (last - first) / 1e6 / rateScale };
}

/** Output tokens a live run streamed (completed requests). */
export function outputTokens(run: BenchRun): number {
  return run.derived.reduce((s, d) => s + (d.ok ? d.record.outputTokens : 0), 0);
}

/**
 * One line per side with the CPU its stack used, in cores (CPU seconds / wall seconds of the
 * side's run): the engine processes (each, and summed), this process (gateway and client), the
 * whole machine's busy share, and CPU µs per output token.
 */
export function cpuLines(sides: ReadonlyArray<{ label: string; cpu: LiveCpu }>, inProcess: boolean): string[] {
  return sides.map(({ label, cpu: c }) => {
    const eng = c.engines.reduce((s, x) => s + x, 0);
    const engines = c.engines.length > 0 ? `engines ${c.engines.map((x) => x.toFixed(2)).join(' + ')} = ${eng.toFixed(2)}, ` : '';
    const self = inProcess ? 'engines + gateway + client (this process)' : 'gateway + client';
    const per = c.usPerToken ? ` (${c.engines.length > 0 ? `engines ${c.usPerToken.engines.toFixed(0)} µs + ` : ''}${inProcess ? 'this process' : 'gateway + client'} ${c.usPerToken.self.toFixed(0)} µs per output token)` : '';
    const machine = c.machineBusy !== undefined ? `; machine ${(c.machineBusy * 100).toFixed(0)}% busy (all processes)` : '';
    return `CPU, ${label} (cores over ${c.wallS.toFixed(1)} s wall, ${c.cpus} CPUs): ${engines}${self} ${c.self.toFixed(2)}, stack ${(eng + c.self).toFixed(2)}${per}${machine}`;
  });
}

/**
 * The warning `kvmgr live` prints when the CPU, not the routing, may have limited a side: the
 * machine more than 90% busy over the run (every process counted), or one process of the stack
 * using more than 0.9 of a core (Node runs each process's JavaScript on one thread).
 * @returns the one-line warning, or undefined
 */
export function cpuLimitWarning(sides: ReadonlyArray<{ label: string; cpu: LiveCpu }>, timeScale: number): string | undefined {
  const why: string[] = [];
  for (const { label, cpu: c } of sides) {
    if (c.machineBusy !== undefined && c.machineBusy > 0.9) why.push(`${label}: machine ${(c.machineBusy * 100).toFixed(0)}% busy`);
    const top = Math.max(c.self, ...c.engines);
    if (top > 0.9) why.push(`${label}: one process at ${top.toFixed(2)} cores`);
  }
  if (why.length === 0) return undefined;
  return `warning: CPU-bound (${why.join(', ')}): this machine may not drive the stack at --time-scale ${timeScale}, so the live columns may measure the machine, not the routing; lower --time-scale or --limit`;
}

/** What {@link headline} reads of a live side. */
export interface HeadlineLive {
  readonly label: string;
  readonly summary: Pick<BenchRun['summary'], 'goodputReqPerS' | 'ttftP99Ms'>;
}

/** What {@link headline} reads of a simulated side. */
export interface HeadlineSim {
  readonly goodputRps: number;
  readonly ttftMs: { readonly p99: number };
}

/**
 * The result in one line: by how much the kvmgr side beats round-robin on goodput and TTFT p99,
 * live (and in the simulator when given), with a verdict — "beats" only when goodput is higher
 * and TTFT p99 lower. Changes are relative (kvmgr − round-robin) / round-robin.
 */
export function headline(
  live: readonly [HeadlineLive, HeadlineLive],
  sim?: readonly [{ readonly summary: HeadlineSim }, { readonly summary: HeadlineSim }],
): string {
  const [a, b] = live;
  const verdict = (g0: number, g1: number, p0: number, p1: number) => (g1 > g0 && p1 < p0 ? 'beats' : g1 >= g0 || p1 <= p0 ? 'partly beats' : 'does not beat');
  const liveText = `live, ${b.label} ${verdict(a.summary.goodputReqPerS, b.summary.goodputReqPerS, a.summary.ttftP99Ms, b.summary.ttftP99Ms)} ${a.label}: goodput ${fmtDelta(a.summary.goodputReqPerS, b.summary.goodputReqPerS)} (${fmtNum(a.summary.goodputReqPerS, 3)} → ${fmtNum(b.summary.goodputReqPerS, 3)} req/s), TTFT p99 ${fmtDelta(a.summary.ttftP99Ms, b.summary.ttftP99Ms)} (${fmtNum(a.summary.ttftP99Ms, 0)} → ${fmtNum(b.summary.ttftP99Ms, 0)} ms)`;
  if (!sim) return liveText;
  const [x, y] = [sim[0].summary, sim[1].summary];
  return `${liveText}; sim: goodput ${fmtDelta(x.goodputRps, y.goodputRps)}, TTFT p99 ${fmtDelta(x.ttftMs.p99, y.ttftMs.p99)}`;
}

/**
 * The simulator's router that replays a live run's routing: each request goes to the engine the
 * gateway picked for it (the `x-kvmgr-endpoint` response header the client recorded;
 * `engine-<i>` is instance i of `startLiveStack`). A request the gateway answered without one (a
 * refusal before routing, a network error) goes round-robin over the instances; `missing` counts
 * them. The live and simulated columns then differ by timing alone (the hops, the scrape period
 * and the events' delay): how the gateway's choices differ from the simulator's router is taken out.
 */
export function liveRoutingRouter(trace: Trace, run: BenchRun, instances: number): { router: SimRouter; missing: number; assigned: ReadonlyMap<string, number> } {
  const byId = new Map<string, number>();
  for (const d of run.derived) {
    const req = /^req-(\d+)$/.exec(d.record.id);
    const ep = d.record.endpoint === undefined ? null : /^engine-(\d+)$/.exec(d.record.endpoint);
    if (req === null || ep === null) continue;
    const r = trace.requests[Number(req[1])];
    const k = Number(ep[1]);
    if (r !== undefined && k < instances) byId.set(r.requestId, k);
  }
  let next = 0;
  const router: SimRouter = {
    name: 'live routing',
    route: (r) => {
      const k = byId.get(r.requestId);
      if (k !== undefined) return { decode: k, prefill: -1 };
      next = (next + 1) % instances;
      return { decode: next, prefill: -1 };
    },
  };
  return { router, missing: trace.requests.length - byId.size, assigned: byId };
}

/**
 * The trace with each request's arrival moved by how late the client actually sent it (its record's
 * start − scheduled send, model s; × `rateScale` since the simulator divides arrivals by it), sorted
 * again by arrival. Requests without a record keep their arrival.
 */
export function liveSendTrace(trace: Trace, run: BenchRun, rateScale: number): Trace {
  const lateUs = new Map<number, number>();
  for (const d of run.derived) {
    const m = /^req-(\d+)$/.exec(d.record.id);
    if (m !== null) lateUs.set(Number(m[1]), Math.max(0, d.record.startS - d.record.scheduledS) * 1e6 * rateScale);
  }
  const requests = trace.requests.map((r, i) => ({ ...r, arrivalUs: r.arrivalUs + (lateUs.get(i) ?? 0) })).sort((a, b) => a.arrivalUs - b.arrivalUs);
  return { ...trace, requests };
}

/**
 * How many of the requests the gateway placed live (`assigned`: request id → instance) the
 * simulator's own router placed on another instance (its rows' `instance`, `…-<i>`).
 */
export function reroutedCount(assigned: ReadonlyMap<string, number>, simRows: RunResult['requests']): number {
  let n = 0;
  for (const r of simRows) {
    const k = assigned.get(r.requestId);
    const m = /-(\d+)$/.exec(r.instance);
    if (k !== undefined && m !== null && Number(m[1]) !== k) n++;
  }
  return n;
}

/** Live vs simulated on throughput and the TTFT/TPOT medians, one line per side, with the ±5% verdict (issue #25). */
export function agreementLines(live: readonly [BenchRun, BenchRun], sim: readonly [RunResult, RunResult], what = 'sim'): string[] {
  const metrics: ReadonlyArray<readonly [string, (s: BenchRun['summary']) => number, (s: RunSummary) => number]> = [
    ['throughput', (s) => s.outputTokPerS, (s) => s.outputTokPerSec],
    ['TTFT p50', (s) => s.ttftP50Ms, (s) => s.ttftMs.p50],
    ['TPOT p50', (s) => s.tpotP50Ms, (s) => s.tpotMs.p50],
  ];
  return live.map((run, i) => {
    const s = (sim[i] as RunResult).summary;
    const parts = metrics.map(([name, l, m]) => {
      const d = fmtDelta(m(s), l(run.summary));
      const within = Number.isFinite(l(run.summary)) && Number.isFinite(m(s)) && m(s) !== 0 && Math.abs(l(run.summary) / m(s) - 1) <= 0.05;
      return `${name} ${d}${within ? '' : ' (outside ±5%)'}`;
    });
    return `live vs ${what}, ${run.label}: ${parts.join(', ')}`;
  });
}

/** The simulator's replay of one side on the engines the gateway picked live (see {@link liveRoutingRouter}). */
interface LiveRoutingReplay {
  readonly result: RunResult;
  /** Requests with no recorded endpoint (routed round-robin in the replay). */
  readonly missing: number;
  /** Requests placed live on another engine than the simulator's own router placed them. */
  readonly rerouted: number;
  /** Requests with a recorded endpoint. */
  readonly placed: number;
}

/** Runs `kvmgr live`. */
export async function runLiveCommand(f: LiveFlags, io: { out: (t: string) => void; err: (t: string) => void } = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) }): Promise<void> {
  const seed = f.seed ?? DEFAULTS.seed;
  const instances = f.instances ?? DEFAULTS.instances;
  const model = f.model ?? DEFAULTS.model;
  const gpu = f.gpu ?? DEFAULTS.gpu;
  const timeScale = f.timeScale ?? LIVE_DEFAULT_TIME_SCALE;
  const rateScale = f.rateScale ?? 1;
  const routing = f.routing ?? 'kvmgr-default';
  const profile = f.profile ?? LIVE_DEFAULT_PROFILE;
  try {
    getEngineProfile(profile); // an unknown name fails here, before any engine starts
  } catch (e) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--profile: ${(e as Error).message}`, { cause: e });
  }
  const out = f.out ?? 'kvmgr-live';
  const opts = resolveRunOptions({
    ...(f.trace !== undefined ? { trace: f.trace } : {}),
    // live's own default on the bundled sample: a subset the machine can drive (LIVE_DEFAULT_LIMIT), unlike replay's whole trace
    ...(f.limit !== undefined ? { limit: f.limit } : f.trace === undefined ? { limit: LIVE_DEFAULT_LIMIT } : {}),
    ...(f.sloTtft !== undefined ? { sloTtft: f.sloTtft } : {}),
    ...(f.sloTpot !== undefined ? { sloTpot: f.sloTpot } : {}),
    model,
    gpu,
    instances,
    rateScale,
    seed,
    progress: f.progress !== false,
  });
  const trace = loadTrace(opts);
  const workload = traceWorkload(trace, opts.traceLabel, seed);
  const slo = resolveSlo(f);
  removeOutputs(out, ['live.json', 'report.html']);
  const sides: Array<{ label: string; routing: string; profile: string }> = [
    { label: 'round-robin', routing: 'round-robin', profile: LIVE_BASELINE_PROFILE },
    { label: 'kvmgr', routing, profile },
  ];
  const results: BenchServeResult[] = [];
  const cpu: LiveCpu[] = [];
  const gateways: Array<ReturnType<LiveStack['gatewayState']>> = [];
  let interrupted: NodeJS.Signals | undefined;
  for (const side of sides) {
    io.err(`kvmgr live: ${side.label}: ${instances} × ${model} on ${gpu} (${side.profile}, time scale ${timeScale}), gateway routing ${side.routing}, ${workload.requests.length} requests\n`);
    const stack = await startLiveStack({ instances, model, gpu, timeScale, routing: side.routing, profile: side.profile, seed, engines: f.engines ?? 'process' });
    // Ctrl-C / SIGTERM: stop sending, abort what is in flight, stop what this side started, exit.
    // Installed before the ready line below, so a signal sent on seeing that line is never missed.
    const interrupt = new AbortController();
    const onSignal = (sig: NodeJS.Signals) => {
      io.err(`kvmgr live: ${sig}: stopping the engines and the gateway\n`);
      interrupted = sig;
      interrupt.abort(sig);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    io.err(`kvmgr live: ${side.label}: engines ${stack.engines.map((e) => e.url).join(' ')} behind the gateway at ${stack.url}\n`);
    const stopCpu = startCpuMeter(stack.engines.flatMap((e) => (e.pid !== undefined ? [e.pid] : [])));
    try {
      const r = await benchServe({
        target: stack.url,
        model: stack.model,
        workload,
        rateScale,
        timeScale,
        requestTimeoutS: 600,
        slo,
        seed,
        out: join(out, side.label),
        progress: f.progress !== false,
        label: side.label,
        signal: interrupt.signal,
      });
      if (interrupt.signal.aborted) break;
      results.push(r);
      cpu.push(stopCpu(outputTokens(r.run)));
      gateways.push(stack.gatewayState());
      writeOutputs(join(out, side.label), benchFiles(r, { vllmJson: true, html: false }));
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await stack.close();
    }
  }
  if (interrupted !== undefined) {
    // 130 / 143: interrupted, as shells count it; no live.json or report is written for a cut run.
    process.exitCode = interrupted === 'SIGINT' ? 130 : 143;
    return;
  }
  const [a, b] = results as [BenchServeResult, BenchServeResult];
  let sim: [RunResult, RunResult] | undefined;
  let simLive: [LiveRoutingReplay, LiveRoutingReplay] | undefined;
  if (f.sim !== false) {
    const progress = createProgress(f.progress !== false && process.stderr.isTTY === true);
    sim = [runOnce(opts, trace, { label: 'round-robin', profile: LIVE_BASELINE_PROFILE, router: 'round-robin' }, progress), runOnce(opts, trace, { label: 'kvmgr', profile, router: routing }, progress)];
    // The same replay with each request on the engine the gateway picked live, sent when the
    // client sent it: what is left of the live-vs-sim gap is the hops' and the engines' timing.
    const replayLive = (r: BenchServeResult, side: { label: string; profile: string }, simOwn: RunResult) => {
      const { router, missing, assigned } = liveRoutingRouter(trace, r.run, instances);
      return { result: runOnce(opts, liveSendTrace(trace, r.run, rateScale), { label: side.label, profile: side.profile, simRouter: router }, progress), missing, rerouted: reroutedCount(assigned, simOwn.requests), placed: assigned.size };
    };
    simLive = [replayLive(a, sides[0] as (typeof sides)[0], sim[0]), replayLive(b, sides[1] as (typeof sides)[0], sim[1])];
  }
  const table = liveTable(a.run, b.run, sim);
  const head = [
    `trace ${opts.traceLabel} | ${workload.requests.length} requests | ${instances} × ${model} on ${gpu}: round-robin on ${LIVE_BASELINE_PROFILE} engines, ${routing} on ${profile} engines | time scale ${timeScale} (times in model time) | rate ×${rateScale} | SLO TTFT ${slo.ttftS * 1000} ms, TPOT ${slo.tpotS * 1000} ms | seed ${seed}`,
    `live: kvmgr engine servers behind the kvmgr gateway (round-robin vs ${routing}), measured by bench serve${sim ? '; sim: the simulator on the same trace, engines and routings' : ''}`,
  ];
  io.out(`${head.join('\n')}\n\n${formatTable(table.header, table.rows)}\n\n${headline([a.run, b.run], sim)}\n`);
  const delays = results.map((r) => ({ label: r.run.label, ...scheduleDelayMs(r.run) }));
  io.out(`\nclient schedule delay (model ms): ${delays.map((d) => `${d.label} p50 ${fmtNum(d.p50, 1)}, p99 ${fmtNum(d.p99, 1)}`).join('; ')}\n`);
  const lag = scheduleLagWarning(delays, timeScale, 0.05 * slo.ttftS * 1000);
  if (lag !== undefined) io.err(`kvmgr live: ${lag}\n`);
  io.out(`${results.map((r, i) => gatewayLine(r.run.label, gateways[i] as ReturnType<LiveStack['gatewayState']>)).join('\n')}\n`);
  io.out(`${cpuLines(results.map((r, i) => ({ label: r.run.label, cpu: cpu[i] as LiveCpu })), f.engines === 'in-process').join('\n')}\n`);
  const perToken = cpu.map((c) => (c.usPerToken ? (c.engines.length > 0 ? c.usPerToken.engines : 0) + c.usPerToken.self : Number.NaN));
  io.out(`${capacityLine(perToken.reduce((s, x) => s + x, 0) / perToken.length, traceLoad(trace, rateScale), traceLoad(loadTrace({ ...opts, limit: undefined }), rateScale), timeScale, cpu[0]?.cpus ?? 0)}\n`);
  const busy = cpuLimitWarning(results.map((r, i) => ({ label: r.run.label, cpu: cpu[i] as LiveCpu })), timeScale);
  if (busy !== undefined) io.err(`kvmgr live: ${busy}\n`);
  if (sim) io.out(`${agreementLines([a.run, b.run], sim).join('\n')}\n`);
  if (simLive) {
    io.out(`requests the gateway placed on another engine than the simulator's router did: ${simLive.map((s) => `${s.result.label} ${s.rerouted} of ${s.placed}`).join(', ')}\n`);
    io.out(`${agreementLines([a.run, b.run], [simLive[0].result, simLive[1].result], "the sim on the live run's routing and send times").join('\n')}\n`);
    const missing = simLive.filter((s) => s.missing > 0).map((s) => `${s.result.label}: ${s.missing}`);
    if (missing.length > 0) io.out(`(requests without a recorded endpoint, routed round-robin in that sim: ${missing.join('; ')})\n`);
  }
  const failures = results.flatMap((r) => Object.entries(r.run.summary.failureReasons).map(([k, n]) => `${r.run.label}: ${n} × ${k}`));
  if (failures.length > 0) io.out(`\nfailures: ${failures.join('; ')}\n`);
  const live = {
    kind: 'kvmgr.live',
    version: 1,
    setup: { trace: opts.traceLabel, requests: workload.requests.length, instances, model, gpu, timeScale, rateScale, routing, profiles: { 'round-robin': LIVE_BASELINE_PROFILE, kvmgr: profile }, sloTtftMs: slo.ttftS * 1000, sloTpotMs: slo.tpotS * 1000, seed },
    live: Object.fromEntries(results.map((r, i) => [r.run.label, { summary: r.run.summary, wallS: r.wallS, scheduleDelayMs: scheduleDelayMs(r.run), cpu: cpu[i] }])),
    ...(sim ? { sim: Object.fromEntries(sim.map((r) => [r.label, r.summary])) } : {}),
    ...(simLive ? { simLiveRouting: Object.fromEntries(simLive.map((r) => [r.result.label, { summary: r.result.summary, rerouted: r.rerouted, placed: r.placed, missing: r.missing }])) } : {}),
  };
  const html = benchHtml(`kvmgr live: ${routing} vs round-robin`, head, [a.run, b.run], [{ title: 'Live and simulated', header: table.header, rows: table.rows }]);
  const written = writeOutputs(out, { 'live.json': `${JSON.stringify(live, null, 2)}\n`, 'report.html': renderReportHtml({ ...html, tables: [{ title: 'Live and simulated', header: table.header, rows: table.rows }] }) });
  io.out(`\nwrote ${written.join(', ')} and ${join(out, 'round-robin')}/, ${join(out, 'kvmgr')}/ (live ${(a.wallS + b.wallS).toFixed(1)} s wall)\n`);
}
