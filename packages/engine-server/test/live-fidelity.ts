/**
 * Fidelity of the live driver (issue #22, check 4): the same requests sent to an engine server
 * over HTTP and replayed through `EngineCore` on a simulated clock. Client-observed TTFT and ITL
 * (wall time × `timeScale`, so model time) are compared with the replay's, and the difference is
 * taken apart stage by stage with the server's `experimental_onRequestTiming` instrument. Used by
 * `fidelity.test.ts` and by `bench/fidelity.ts` (which prints the numbers).
 */
import { loadavg } from 'node:os';
import { EngineCore } from '@kvmgr/engine';
import { getEngineProfile, getGpuSpec, getModelSpec, gpuKvBlocks, selectLatencyModel } from '@kvmgr/sim';
import { type DriverStep, type RequestTiming, createEngineServer } from '../src/index.js';
import { type FidelityRequest, type FidelityWorkload, syntheticWorkload } from './fidelity-workloads.js';
import { type FidelityClient, type FidelityClientKind, forkedClient, inProcessClient } from './fidelity-client.js';
import { type FloorServer, createFloorServer } from './fidelity-floor-server.js';

/** Options of {@link measureFidelity}. */
export interface FidelityRun {
  readonly timeScale: number;
  /** What to send. @default syntheticWorkload() (24 prompts of 300–600 tokens, 15 ms apart, 24 output tokens) */
  readonly workload?: FidelityWorkload;
  /** Sent first and not measured (JIT, connections); must share no block with `workload`. @default syntheticWorkload(24, 15, 24, 60000) */
  readonly warmup?: FidelityWorkload;
  /** Times `warmup` is sent (from an empty prefix cache each time) before the measured round; the server's CPU per token falls for the first few rounds of a process (JIT). @default 1 */
  readonly warmupRounds?: number;
  /** The client: `fetch` + `parseSseStream` (as an application would), or the lighter `node:http` one of `http-sse-client.ts`. @default 'fetch' */
  readonly client?: FidelityClientKind;
  /**
   * Where the client runs: a child process of its own (`fidelity-client-process.ts`; this process's
   * CPU time is then the server's alone) or this process (sharing the server's event loop). @default 'process'
   */
  readonly clientPlacement?: 'process' | 'in-process';

  /** The server's `maxLagMs` (how far its step loop may fall behind before it restarts the timeline). @default the server's default, 200 */
  readonly maxLagMs?: number;
  /** GPU KV blocks of the server and the replay. @default 4096 for the default workload, else the server's memory-model default */
  readonly numGpuBlocks?: number;
  /**
   * Which server answers: the engine server, or the floor (`fidelity-floor-server.ts`: the same
   * core and driver behind a bare `node:http` handler), which shows what the loopback hop and the
   * event loops add on this machine whatever the server's code. @default 'engine'
   */
  readonly server?: 'engine' | 'floor';
}

/** Medians in model ms (and the ITL's mean). */
export interface LatencyMedians {
  readonly ttftMs: number;
  readonly itlMs: number;
  /**
   * Mean inter-token gap, model ms. Jitter in when each token reaches the client moves the median
   * of the gaps (most gaps are one decode step, a point mass, with longer ones above it: noise
   * spread evenly around the mass pushes the median up) but not their mean, which sums to the
   * stream's duration.
   */
  readonly itlMeanMs: number;
}

/** Median and mean of one stage, wall ms. */
export interface StageStat {
  readonly median: number;
  readonly mean: number;
  readonly p90: number;
}

/**
 * Where the client's extra TTFT and ITL go, wall ms. For every request,
 * `clientTtft − replayTtft = sendToReceived + join + emitLag + write + clientRead` exactly
 * (so the means add up; medians need not).
 */
export interface OverheadBreakdown {
  /** Client `fetch` call → the server's `request` event, its arrival stamp (client request setup, loopback, HTTP head parse). */
  readonly sendToReceived: StageStat;
  /** Arrival → handed to the driver (routing, body read and parse, validation). Hidden inside the latency model's queueing term unless longer. */
  readonly receivedToSubmitted: StageStat;
  /** The server timeline's TTFT from its arrival stamp minus the replay's TTFT from the client's send: the step the request joined. */
  readonly join: StageStat;
  /** Step loop: `finishStep` ran this late behind the end of the first token's step (timer granularity, event-loop lag). */
  readonly emitLag: StageStat;
  /** Emitted → its SSE chunk handed to the kernel (chunk serialisation, the socket's writev). */
  readonly write: StageStat;
  /** Chunk written → the client parsed it (loopback, undici, SSE parse, event-loop turn). */
  readonly clientRead: StageStat;
  /** The same three stages over every later token (what ITL jitter is made of). */
  readonly laterTokens: { readonly emitLag: StageStat; readonly write: StageStat; readonly clientRead: StageStat };
  /** `startStep` ran this late behind the step's model start, over all measured steps. */
  readonly stepStartLag: StageStat;
}

export interface FidelityResult {
  readonly workload: string;
  readonly timeScale: number;
  readonly live: LatencyMedians;
  readonly sim: LatencyMedians;
  /** (live − sim) / sim. */
  readonly ttftDiff: number;
  readonly itlDiff: number;
  /** (live − sim) / sim of the mean inter-token gap. */
  readonly itlMeanDiff: number;
  /** The driver alone: the server's own token times vs a replay of the server's own enqueue times (model clock). */
  readonly driver: { readonly ttftDiff: number; readonly itlDiff: number };
  /** Per request, client TTFT − replay TTFT, model ms (its median need not be the difference of the medians: in a long queue, arrivals that swap places change single requests' TTFT by seconds). */
  readonly ttftDeltaMs: StageStat;
  /** Wall-ms decomposition of the client's overhead. */
  readonly breakdown: OverheadBreakdown;
  /** Step-loop lag p99 of the live server, wall ms. */
  readonly lagP99Ms: number;
  readonly resyncs: number;
  /** Requests measured. */
  readonly requests: number;
  /** Of those, how many streamed `maxTokens` tokens to the client and were seen by the server with as many tokens. */
  readonly completed: number;
  /** CPU time of this process over the measured round per streamed token, µs: the server's alone when the client runs in its own process, else server and client together. */
  readonly cpuUsPerToken: number;
  /** The same CPU time per engine step run in the round, µs. */
  readonly cpuUsPerStep: number;
  /** CPU time of the client's process per streamed token, µs; NaN when it shares this process. */
  readonly clientCpuUsPerToken: number;
  /** The measured round on the monotonic clock (`process.hrtime`, µs; the clock of V8's `--cpu-prof` sample times), to cut a whole-process profile to it. */
  readonly measuredWindowUs: readonly [number, number];
  /** Which client sent the requests. */
  readonly client: FidelityClientKind;
  /** Where it ran. */
  readonly clientPlacement: 'process' | 'in-process';
  /** `os.loadavg()` (1, 5, 15 min) when the run ended. */
  readonly loadavg: readonly number[];
}

function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

const median = (xs: readonly number[]): number => quantile(xs, 0.5);

function stat(xs: readonly number[]): StageStat {
  return { median: median(xs), mean: xs.reduce((a, b) => a + b, 0) / xs.length, p90: quantile(xs, 0.9) };
}

const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);
const rel = (a: number, b: number): number => (a - b) / b;
const gaps = (t: readonly number[]): number[] => t.slice(1).map((x, k) => x - (t[k] as number));

const LATENCY = selectLatencyModel('auto', getModelSpec('Llama-3.1-8B-Instruct'), getGpuSpec('H100'), 1).latency;

/** The engine server's default GPU KV blocks (its memory model for Llama-3.1-8B-Instruct on one H100, `vllm-default`). */
function defaultGpuBlocks(): number {
  const profile = getEngineProfile('vllm-default');
  return gpuKvBlocks(getModelSpec('Llama-3.1-8B-Instruct'), getGpuSpec('H100'), 1, profile.blockSize, profile.gpuMemoryUtilization);
}

/** Replays arrivals (model µs) through an `EngineCore` on a simulated clock, as the server is configured; token times per request, µs. */
function replay(reqs: readonly { prompt: readonly number[]; maxTokens: number; atUs: number }[], numGpuBlocks: number): number[][] {
  const profile = getEngineProfile('vllm-default');
  const tokens = reqs.map(() => [] as number[]);
  const core = new EngineCore({
    kv: { numBlocks: numGpuBlocks, blockSize: profile.blockSize, evictionPolicy: profile.cacheEviction },
    stepTimeUs: (s) => LATENCY.stepTimeUs(s),
    scheduler: profile.scheduler,
    tokenBudget: profile.tokenBudget,
    maxSeqs: profile.maxSeqs,
    victimSelector: profile.victimSelector,
    hooks: { onToken: (id, _tok, now) => tokens[Number(id)]?.push(now) },
  });
  const order = reqs.map((r, i) => ({ i, atUs: r.atUs })).sort((a, b) => a.atUs - b.atUs);
  let now = 0;
  let next = 0;
  for (;;) {
    while (next < order.length && (order[next] as { atUs: number }).atUs <= now) {
      const a = order[next++] as { i: number; atUs: number };
      const r = reqs[a.i] as { prompt: readonly number[]; maxTokens: number };
      core.addRequest({ requestId: String(a.i), promptTokenIds: r.prompt, maxTokens: r.maxTokens }, a.atUs);
    }
    const step = core.startStep(now);
    if (step === null) {
      if (next >= order.length) break;
      now = (order[next] as { atUs: number }).atUs;
      continue;
    }
    now += step.durationUs;
    core.finishStep(now);
  }
  return tokens;
}

/** Runs the comparison once. */
export async function measureFidelity(run: FidelityRun): Promise<FidelityResult> {
  const workload = run.workload ?? syntheticWorkload();
  const warmup = run.warmup ?? syntheticWorkload(24, 15, 24, 60_000);
  const scale = run.timeScale;
  const timings = new Map<string, RequestTiming>();
  const steps: DriverStep[] = [];
  let recording = false;
  const blocks = run.numGpuBlocks ?? (run.workload === undefined ? 4096 : undefined);
  const onRequestTiming = (t: RequestTiming): void => {
    if (recording) timings.set(t.requestId, t);
  };
  const onStep = (s: DriverStep): void => {
    if (recording) steps.push(s);
  };
  const server: FloorServer = run.server === 'floor'
    ? await createFloorServer({ timeScale: scale, numGpuBlocks: blocks ?? defaultGpuBlocks(), ...(run.maxLagMs === undefined ? {} : { maxLagMs: run.maxLagMs }), onRequestTiming, onStep })
    : await createEngineServer({
    port: 0,
    timeScale: scale,
    ...(blocks === undefined ? {} : { numGpuBlocks: blocks }),
    ...(run.maxLagMs === undefined ? {} : { maxLagMs: run.maxLagMs }),
    experimental_onRequestTiming: onRequestTiming,
    experimental_onStep: onStep,
  });
  const numGpuBlocks = server.config.numGpuBlocks;
  // The server's own timeline (model µs): when each request entered the engine queue, and its tokens.
  const serverTokens = new Map<string, number[]>();
  const serverEnqueue = new Map<string, number>();
  const hooks = server.core.hooks;
  server.core.hooks = {
    ...hooks,
    onToken: (id, tok, now) => {
      hooks.onToken?.(id, tok, now);
      if (!recording) return;
      const t = serverTokens.get(id) ?? [];
      t.push(now);
      serverTokens.set(id, t);
    },
    onFinished: (req, stats) => {
      hooks.onFinished?.(req, stats);
      if (recording) serverEnqueue.set(req.requestId, stats.arrivalUs);
    },
  };
  const reqs = workload.requests;
  let lagStart = 0;
  let resyncStart = 0;
  const kind = run.client ?? 'fetch';
  const placement = run.clientPlacement ?? 'process';
  let client: FidelityClient | null = null;
  let round: Awaited<ReturnType<FidelityClient['run']>>;
  let cpu: NodeJS.CpuUsage;
  const windowUs: [number, number] = [0, 0];
  try {
    client = placement === 'process' ? await forkedClient(kind) : inProcessClient(kind);
    // Warm-up (JIT, first-use costs, connections): prompts that share no block with the measured ones.
    for (let k = 0; k < (run.warmupRounds ?? 1); k++) {
      await client.load(server.url, warmup.requests, scale);
      await client.run();
      // The next round (and the replay) starts from an empty prefix cache.
      await fetch(`${server.url}/reset_prefix_cache`, { method: 'POST' });
    }
    const before = server.stats();
    lagStart = before.lagSamplesMs.length;
    resyncStart = before.resyncs;
    await client.load(server.url, reqs, scale);
    recording = true;
    const cpu0 = process.cpuUsage();
    windowUs[0] = monotonicUs();
    round = await client.run();
    windowUs[1] = monotonicUs();
    cpu = process.cpuUsage(cpu0);
    // The last timing is reported in a microtask after the last write.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    await client?.close();
    await server.close();
  }
  const idOf = round.ids;
  const sends = round.sendsMs;
  const tokenTimes = round.tokenMs;
  const stats = server.stats();
  const first = Math.min(...sends);
  const toModelMs = (wallMs: number) => wallMs * scale;
  const liveTtft = tokenTimes.map((t, i) => toModelMs((t[0] as number) - (sends[i] as number)));
  const liveItl = tokenTimes.flatMap((t) => gaps(t).map(toModelMs));
  const alpha = (i: number) => LATENCY.queueingUs((reqs[i] as FidelityRequest).prompt.length);

  // 1. End to end: the client's send times replayed through the core on a simulated clock.
  const e2e = replay(
    reqs.map((r, i) => ({ prompt: r.prompt, maxTokens: r.maxTokens, atUs: toModelMs((sends[i] as number) - first) * 1000 + alpha(i) })),
    numGpuBlocks,
  );
  const simTtft = e2e.map((t, i) => ((t[0] as number) - toModelMs((sends[i] as number) - first) * 1000) / 1000);
  const simItl = e2e.flatMap((t) => gaps(t).map((us) => us / 1000));
  // 2. The driver alone: the server's own enqueue times replayed, against the server's own token times.
  const enq = idOf.map((id) => serverEnqueue.get(id) as number);
  const drv = replay(
    enq.map((atUs, i) => ({ prompt: (reqs[i] as FidelityRequest).prompt, maxTokens: (reqs[i] as FidelityRequest).maxTokens, atUs })),
    numGpuBlocks,
  );
  const srvTokens = idOf.map((id) => serverTokens.get(id) ?? []);
  const driverTtft = srvTokens.map((t, i) => ((t[0] as number) - (enq[i] as number)) / 1000);
  const driverSimTtft = drv.map((t, i) => ((t[0] as number) - (enq[i] as number)) / 1000);
  const driver = { ttftDiff: rel(median(driverTtft), median(driverSimTtft)), itlDiff: rel(median(srvTokens.flatMap(gaps)), median(drv.flatMap(gaps))) };

  // 3. The breakdown, wall ms, from the server's instrument.
  const tm = idOf.map((id) => timings.get(id) as RequestTiming);
  const recv = tokenTimes;
  const bd = {
    sendToReceived: tm.map((t, i) => t.receivedMs - (sends[i] as number)),
    receivedToSubmitted: tm.map((t) => t.submittedMs - t.receivedMs),
    join: tm.map((t, i) => (t.tokenDueMs[0] as number) - t.receivedMs - (simTtft[i] as number) / scale),
    emitLag: tm.map((t) => (t.tokenEmittedMs[0] as number) - (t.tokenDueMs[0] as number)),
    write: tm.map((t) => (t.tokenWrittenMs[0] as number) - (t.tokenEmittedMs[0] as number)),
    clientRead: tm.map((t, i) => (recv[i]?.[0] as number) - (t.tokenWrittenMs[0] as number)),
  };
  const later = (f: (t: RequestTiming, k: number, i: number) => number): number[] => tm.flatMap((t, i) => t.tokenDueMs.slice(1).map((_, j) => f(t, j + 1, i)));
  const breakdown: OverheadBreakdown = {
    sendToReceived: stat(bd.sendToReceived),
    receivedToSubmitted: stat(bd.receivedToSubmitted),
    join: stat(bd.join),
    emitLag: stat(bd.emitLag),
    write: stat(bd.write),
    clientRead: stat(bd.clientRead),
    laterTokens: {
      emitLag: stat(later((t, k) => (t.tokenEmittedMs[k] as number) - (t.tokenDueMs[k] as number))),
      write: stat(later((t, k) => (t.tokenWrittenMs[k] as number) - (t.tokenEmittedMs[k] as number))),
      clientRead: stat(later((t, k, i) => (recv[i]?.[k] as number) - (t.tokenWrittenMs[k] as number))),
    },
    stepStartLag: stat(steps.map((s) => s.startLagMs)),
  };

  const meanOf = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
  const live = { ttftMs: median(liveTtft), itlMs: median(liveItl), itlMeanMs: meanOf(liveItl) };
  const sim = { ttftMs: median(simTtft), itlMs: median(simItl), itlMeanMs: meanOf(simItl) };
  const lags = stats.lagSamplesMs.slice(lagStart).sort((a, b) => a - b);
  const streamed = tokenTimes.reduce((a, t) => a + t.length, 0);
  return {
    workload: workload.name,
    timeScale: scale,
    live,
    sim,
    ttftDiff: rel(live.ttftMs, sim.ttftMs),
    itlDiff: rel(live.itlMs, sim.itlMs),
    itlMeanDiff: rel(live.itlMeanMs, sim.itlMeanMs),
    driver,
    ttftDeltaMs: stat(liveTtft.map((x, i) => x - (simTtft[i] as number))),
    breakdown,
    lagP99Ms: lags[Math.floor(0.99 * (lags.length - 1))] ?? 0,
    resyncs: stats.resyncs - resyncStart,
    requests: reqs.length,
    completed: tokenTimes.filter((t, i) => t?.length === (reqs[i] as FidelityRequest).maxTokens && serverTokens.get(idOf[i] as string)?.length === t.length).length,
    cpuUsPerToken: (cpu.user + cpu.system) / streamed,
    cpuUsPerStep: (cpu.user + cpu.system) / steps.length,
    clientCpuUsPerToken: round.cpuUs / streamed,
    measuredWindowUs: windowUs,
    client: kind,
    clientPlacement: placement,
    loadavg: loadavg(),
  };
}
