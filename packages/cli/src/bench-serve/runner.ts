/**
 * Sends a {@link Workload} to a target: stage after stage, each request at its send time (open
 * loop) or as soon as a slot frees (closed loop / `maxConcurrency`), and collects one
 * {@link BenchRecord} per request sent. Bounded: nothing is sent after `durationS`, and every
 * request is aborted after `requestTimeoutS`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import type { Progress } from '../progress.js';
import { type BenchApi, type BenchRecord, sendCompletion } from './client.js';
import { promptText } from './text-prompt.js';
import type { BenchRequest, Workload } from './workload.js';

/** Options of {@link runWorkload}. */
export interface RunWorkloadOptions {
  /** Base URL of the OpenAI-compatible server (no `/v1`). */
  readonly url: string;
  readonly model: string;
  readonly workload: Workload;
  /** Multiply arrival rates by this (> 0). @default 1 */
  readonly rateScale?: number;
  /**
   * The target runs this many times faster than the hardware it models (`kvmgr engine
   * --time-scale`): send gaps are divided by it and every measured time multiplied by it, so
   * records are in model time. @default 1
   */
  readonly timeScale?: number;
  /** At most this many requests in flight (open-loop stages wait for a slot). @default unbounded */
  readonly maxConcurrency?: number;
  /**
   * At most this many connections to the target (HTTP/1.1 keep-alive, one request in flight on
   * each). A request due while all are busy waits for one, and the wait counts as its schedule
   * delay (actual − scheduled send). Unbounded, an overloaded client or target opened one new
   * connection per request (connect, accept and pool scan on every request: the client's CPU per
   * request doubled, and the target's accept queue overflowed into connect timeouts and resets).
   * @default {@link DEFAULT_MAX_CONNECTIONS}
   */
  readonly maxConnections?: number;
  /** Stop sending after this many wall seconds. @default unbounded */
  readonly durationS?: number;
  /** Abort a request after this many wall seconds. @default 600 */
  readonly requestTimeoutS?: number;
  /** API to send to. @default the workload's, else 'completion' */
  readonly api?: BenchApi;
  /** Stream responses. @default the workload's, else true */
  readonly stream?: boolean;
  /**
   * How token-id prompts go on the wire: as token-id arrays, or as text of one word per token
   * (see `promptText`; always text for chat). @default 'tokens'
   */
  readonly promptFormat?: 'tokens' | 'text';
  /** SLO headers, already in the target's (wall) clock. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly progress?: Progress;
  /** Stops the run: nothing more is sent and requests in flight are aborted (recorded as failures). @default never */
  readonly signal?: AbortSignal;
  /** Label of the progress bar. @default 'bench serve' */
  readonly label?: string;
}

/** What {@link runWorkload} returns. */
export interface RunWorkloadResult {
  /** One per request sent, in completion order. */
  readonly records: BenchRecord[];
  /** Requests of the workload never sent (`durationS` reached). */
  readonly unsent: number;
  /** Wall seconds of the whole run. */
  readonly wallS: number;
}

/** Default of {@link RunWorkloadOptions.maxConnections}. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

class Slots {
  private free: number;
  private readonly waiters: Array<() => void> = [];
  constructor(n: number) {
    this.free = n;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }
  release(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.free++;
  }
}

/**
 * Waits until `dueWall` (s on `wall`): a timer to ~1 ms before it (timers have 1 ms grain), then
 * event-loop turns, so no request goes out before its time (inference-perf's schedule delay is
 * never negative) and the lateness is that of the loop, not of the timer's rounding.
 */
async function untilWall(dueWall: number, wall: () => number, signal: AbortSignal | undefined): Promise<void> {
  const wait = dueWall - wall();
  if (wait > 0.002) await sleep((wait - 0.001) * 1000, undefined, signal ? { signal } : {}).catch(() => undefined);
  while (wall() < dueWall && signal?.aborted !== true) await new Promise<void>((r) => setImmediate(r));
}

/**
 * Runs the workload.
 * @returns the records (model time when `timeScale` ≠ 1) and how many requests were not sent.
 */
export async function runWorkload(o: RunWorkloadOptions): Promise<RunWorkloadResult> {
  const rateScale = o.rateScale ?? 1;
  const api = o.api ?? o.workload.api ?? 'completion';
  const stream = o.stream ?? o.workload.stream ?? true;
  const asText = api === 'chat' || o.promptFormat === 'text';
  const promptOf = (r: BenchRequest): readonly number[] | string => {
    const p = r.prompt();
    return typeof p === 'string' || !asText ? p : promptText(p);
  };
  const timeScale = o.timeScale ?? 1;
  const t0 = performance.now();
  const wall = () => (performance.now() - t0) / 1000;
  const clock = () => wall() * timeScale;
  const deadline = o.durationS ?? Number.POSITIVE_INFINITY;
  const records: BenchRecord[] = [];
  const timeoutMs = (o.requestTimeoutS ?? 600) * 1000;
  // One pool per run: keep-alive connections, as many as requests in flight up to the cap (the
  // runner never hands undici more, so no request waits inside undici, unseen); closed at the end.
  const maxConnections = o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const connections = new Slots(maxConnections);
  const dispatcher = new Agent({ connections: maxConnections, keepAliveTimeout: 30_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  // Request timeouts: one sweep over the in-flight requests (oldest first) instead of a timer each.
  const inFlight = new Map<AbortController, number>();
  const sweep = setInterval(() => {
    const now = wall();
    for (const [c, due] of inFlight) {
      if (due > now) break;
      inFlight.delete(c);
      c.abort(new DOMException(`no response within ${timeoutMs / 1000} s (--request-timeout)`, 'TimeoutError'));
    }
  }, Math.min(250, timeoutMs / 4));
  sweep.unref();
  const stopAll = () => {
    for (const c of inFlight.keys()) c.abort(new DOMException('the run was stopped', 'AbortError'));
    inFlight.clear();
  };
  o.signal?.addEventListener('abort', stopAll, { once: true });
  const stopped = () => o.signal?.aborted === true;
  const total = o.workload.requests.length;
  o.progress?.start(o.label ?? 'bench serve', total);
  let sent = 0;
  const byStage = new Map<number, BenchRequest[]>();
  for (const r of o.workload.requests) {
    const list = byStage.get(r.stage) ?? [];
    list.push(r);
    byStage.set(r.stage, list);
  }
  try {
    const stageIds = [...byStage.keys()].sort((a, b) => a - b);
    for (const [n, si] of stageIds.entries()) {
      if (n > 0 && (o.workload.stageIntervalS ?? 0) > 0) await sleep(((o.workload.stageIntervalS ?? 0) * 1000) / timeScale, undefined, o.signal ? { signal: o.signal } : {}).catch(() => undefined);
      if (wall() >= deadline || stopped()) break;
      const stage = o.workload.stages[si];
      const limit = Math.min(stage?.concurrency ?? Number.POSITIVE_INFINITY, o.maxConcurrency ?? Number.POSITIVE_INFINITY);
      const slots = new Slots(Number.isFinite(limit) ? limit : Number.MAX_SAFE_INTEGER);
      const stageWall = wall();
      const inflight: Promise<void>[] = [];
      for (const r of byStage.get(si) ?? []) {
        const dueWall = stageWall + r.atS / rateScale / timeScale;
        const wait = dueWall - wall();
        if (dueWall >= deadline) break;
        if (wait > 0) await untilWall(dueWall, wall, o.signal);
        if (stopped()) break;
        await slots.acquire();
        await connections.acquire();
        if (wall() >= deadline || stopped()) {
          connections.release();
          slots.release();
          break;
        }
        sent++;
        // Closed loop: a request is due when its slot frees (inference-perf's concurrent load).
        const scheduledWall = stage?.concurrency !== undefined ? wall() : dueWall;
        const abort = new AbortController();
        inFlight.set(abort, wall() + timeoutMs / 1000);
        inflight.push(
          sendCompletion({
            url: o.url,
            model: o.model,
            id: r.id,
            stage: si,
            prompt: promptOf(r),
            promptTokens: r.promptTokens,
            api,
            stream,
            outputTokens: r.outputTokens,
            scheduledS: scheduledWall * timeScale,
            headers: o.headers ?? {},
            clock,
            signal: abort.signal,
            dispatcher,
          }).then((rec) => {
            inFlight.delete(abort);
            records.push(rec);
            connections.release();
            slots.release();
            o.progress?.update(records.length);
          }),
        );
      }
      await Promise.all(inflight);
    }
  } finally {
    o.progress?.stop();
    clearInterval(sweep);
    o.signal?.removeEventListener('abort', stopAll);
    await dispatcher.close();
  }
  return { records, unsent: total - sent, wallS: wall() };
}
