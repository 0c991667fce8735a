/**
 * Fidelity of the live driver (issue #22, check 4): the same requests sent to an engine server
 * over HTTP and replayed through `EngineCore` on a simulated clock. Client-observed TTFT and ITL
 * (wall time × `timeScale`, so model time) are compared with the replay's. Used by
 * `fidelity.test.ts` and by `bench/fidelity.ts` (which prints the numbers for several scales).
 */
import { parseSseStream } from '@kvmgr/adapter-vllm';
import { EngineCore } from '@kvmgr/engine';
import { getEngineProfile, getGpuSpec, getModelSpec, selectLatencyModel } from '@kvmgr/sim';
import { createEngineServer } from '../src/index.js';

/** Options of {@link measureFidelity}. */
export interface FidelityRun {
  readonly timeScale: number;
  /** Requests sent. @default 24 */
  readonly requests?: number;
  /** Model ms between sends. @default 15 */
  readonly gapMs?: number;
  /** Output tokens per request. @default 24 */
  readonly maxTokens?: number;
  /** @default 4096 */
  readonly numGpuBlocks?: number;
}

/** Medians in model ms. */
export interface LatencyMedians {
  readonly ttftMs: number;
  readonly itlMs: number;
}

export interface FidelityResult {
  readonly live: LatencyMedians;
  readonly sim: LatencyMedians;
  /** (live − sim) / sim. */
  readonly ttftDiff: number;
  readonly itlDiff: number;
  /** The driver alone: the server's own token times vs a replay of the server's own enqueue times (model clock). */
  readonly driver: { readonly ttftDiff: number; readonly itlDiff: number };
  /** Step-loop lag p99 of the live server, wall ms. */
  readonly lagP99Ms: number;
  readonly resyncs: number;
  /** Requests measured. */
  readonly requests: number;
  /** Of those, how many streamed `maxTokens` tokens to the client and were seen by the server with as many tokens. */
  readonly completed: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Prompt of request `i`: 300–600 tokens; every third shares a 256-token prefix with request 0. */
function promptOf(i: number, offset = 0): number[] {
  const len = 300 + ((i * 97) % 300);
  return Array.from({ length: len }, (_, t) => offset + (i % 3 === 0 && t < 256 ? 500 + t : 1000 + i * 1000 + t));
}

const WARMUP_OFFSET = 60_000;

const rel = (a: number, b: number): number => (a - b) / b;
const gaps = (t: readonly number[]): number[] => t.slice(1).map((x, k) => (x - (t[k] as number)) / 1000);

const LATENCY = selectLatencyModel('auto', getModelSpec('Llama-3.1-8B-Instruct'), getGpuSpec('H100'), 1).latency;
const QUEUEING = (n: number): number => LATENCY.queueingUs(n);

/** Replays arrivals (model µs) through an `EngineCore` on a simulated clock, as the server is configured; token times per request, µs. */
function replay(reqs: readonly { prompt: number[]; atUs: number }[], maxTokens: number, numGpuBlocks: number): number[][] {
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
      core.addRequest({ requestId: String(a.i), promptTokenIds: (reqs[a.i] as { prompt: number[] }).prompt, maxTokens }, a.atUs);
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
  const n = run.requests ?? 24;
  const gapMs = run.gapMs ?? 15;
  const maxTokens = run.maxTokens ?? 24;
  const numGpuBlocks = run.numGpuBlocks ?? 4096;
  const scale = run.timeScale;
  const server = await createEngineServer({ port: 0, timeScale: scale, numGpuBlocks });
  // The server's own timeline (model µs): when each request entered the engine queue, and its tokens.
  const serverTokens = new Map<string, number[]>();
  const serverEnqueue = new Map<string, number>();
  let recording = false;
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
  const idOf: string[] = [];
  const sends: number[] = [];
  const tokenTimes: number[][] = [];
  let lagStart = 0;
  let resyncStart = 0;
  try {
    const one = async (i: number, offset: number): Promise<void> => {
      await new Promise((r) => setTimeout(r, (i * gapMs) / scale));
      const t0 = performance.now();
      const times: number[] = [];
      if (offset === 0) {
        sends[i] = t0;
        tokenTimes[i] = times;
      }
      const res = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: promptOf(i, offset), max_tokens: maxTokens, stream: true }),
      });
      for await (const chunk of parseSseStream(res.body as ReadableStream<Uint8Array>)) {
        const c = chunk as { id: string; choices: unknown[] };
        if (c.choices.length === 0) continue;
        times.push(performance.now());
        if (offset === 0) idOf[i] = c.id;
      }
    };
    // Warm-up (JIT, first-use costs): the same shape with prompts that share no block with the measured ones.
    await Promise.all(Array.from({ length: n }, (_, i) => one(i, WARMUP_OFFSET)));
    const before = server.stats();
    lagStart = before.lagSamplesMs.length;
    resyncStart = before.resyncs;
    recording = true;
    await Promise.all(Array.from({ length: n }, (_, i) => one(i, 0)));
  } finally {
    await server.close();
  }
  const stats = server.stats();
  const first = Math.min(...sends);
  const toModelMs = (wallMs: number) => wallMs * scale;
  const liveTtft = tokenTimes.map((t, i) => toModelMs((t[0] as number) - (sends[i] as number)));
  const liveItl = tokenTimes.flatMap((t) => t.slice(1).map((x, k) => toModelMs(x - (t[k] as number))));

  const liveTtftMs = median(liveTtft);
  const liveItlMs = median(liveItl);
  // 1. End to end: the client's send times replayed through the core on a simulated clock.
  const e2e = replay(sends.map((s, i) => ({ prompt: promptOf(i), atUs: toModelMs(s - first) * 1000 + QUEUEING(promptOf(i).length) })), maxTokens, numGpuBlocks);
  const simTtft = e2e.map((t, i) => ((t[0] as number) - toModelMs((sends[i] as number) - first) * 1000) / 1000);
  const simItl = e2e.flatMap(gaps);
  // 2. The driver alone: the server's own enqueue times replayed, against the server's own token times.
  const enq = idOf.map((id) => serverEnqueue.get(id) as number);
  const drv = replay(enq.map((atUs, i) => ({ prompt: promptOf(i), atUs })), maxTokens, numGpuBlocks);
  const srvTokens = idOf.map((id) => serverTokens.get(id) ?? []);
  const driverTtft = srvTokens.map((t, i) => ((t[0] as number) - (enq[i] as number)) / 1000);
  const driverSimTtft = drv.map((t, i) => ((t[0] as number) - (enq[i] as number)) / 1000);
  const driver = { ttftDiff: rel(median(driverTtft), median(driverSimTtft)), itlDiff: rel(median(srvTokens.flatMap(gaps)), median(drv.flatMap(gaps))) };
  const live = { ttftMs: liveTtftMs, itlMs: liveItlMs };
  const sim = { ttftMs: median(simTtft), itlMs: median(simItl) };
  const lags = stats.lagSamplesMs.slice(lagStart).sort((a, b) => a - b);
  return {
    live,
    sim,
    ttftDiff: rel(live.ttftMs, sim.ttftMs),
    itlDiff: rel(live.itlMs, sim.itlMs),
    driver,
    lagP99Ms: lags[Math.floor(0.99 * (lags.length - 1))] ?? 0,
    resyncs: stats.resyncs - resyncStart,
    requests: n,
    completed: tokenTimes.filter((t, i) => t?.length === maxTokens && serverTokens.get(idOf[i] as string)?.length === maxTokens).length,
  };
}
