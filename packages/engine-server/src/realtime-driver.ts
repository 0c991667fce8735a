/**
 * The wall-clock driver of an {@link EngineCore}: the engine server's counterpart of the
 * simulator's event queue. Model time runs `timeScale` times faster than the wall clock; each
 * step lasts the latency model's `durationUs` of model time.
 *
 * The loop keeps the model's timeline, not the timer's: a step starts where the previous one
 * ended (back to back while there is work), and a timer that fires late makes the next step run
 * at once instead of shifting every later step. So a late wake-up delays delivery of one step's
 * tokens but never accumulates, and the timeline is the one a discrete-event replay of the same
 * arrivals computes. Arrivals wait in a pending list stamped with their model time and join the
 * first step that starts at or after it, as in the simulator (a request that arrived while a step
 * ran joins the next one). Only when the loop falls more than `maxLagMs` behind (an overloaded
 * process) does it give up the timeline and restart it at the current time (`resyncs`).
 *
 * It sleeps until the end of each step: a step of 4 wall ms or more sets its timer a millisecond
 * early and sleeps the rest in the thread in slices of 0.2 ms (`Atomics.wait`), with an event-loop
 * turn between slices (`setImmediate`, so I/O keeps running), so its tokens leave on the model's
 * time rather than up to a millisecond late (Node's timers have whole-ms resolution) without
 * spinning through loop turns; shorter steps round to the nearest ms (ends under half a
 * millisecond away run at once). When idle it awaits an arrival, then yields once (`setImmediate`) so that requests
 * arriving in the same event-loop turn join the same step.
 */
import type { EngineCore, EngineRequest, RequestFinishedStats, StepStart } from '@kvmgr/engine';
import { KvmgrError, invalidArgument } from '@kvmgr/core';

/** Receives one request's output. */
export interface RequestSink {
  /** A token was sampled at `nowUs` (model µs). */
  onToken(tokenId: number, nowUs: number): void;
  /** The request left the engine (finished, aborted or rejected); its blocks are free. */
  onFinished(stats: RequestFinishedStats): void;
}

/** One step as the driver ran it. Times in model µs unless named `Ms`. */
export interface DriverStep {
  readonly start: StepStart;
  readonly startUs: number;
  /** `startUs + durationUs + stall`. */
  readonly endUs: number;
  /** How late the loop woke for the end of the step, wall ms (≥ 0 when late; negative when it ran the end of a short step early, by under 0.5 ms). */
  readonly lagMs: number;
  /** How late `startStep` ran behind the step's model start, wall ms (the previous step's end lag for back-to-back steps). */
  readonly startLagMs: number;
}

/** Options of {@link RealtimeDriver}. */
export interface RealtimeDriverOptions {
  /** The engine core; the driver takes over its `onToken` and `onFinished` hooks. */
  readonly core: EngineCore;
  /** Model µs per wall µs (10 = ten times faster than the modelled GPU). @default 1 */
  readonly timeScale?: number;
  /** Wall ms added to every step (fault injection: a stalled engine). @default 0 */
  readonly stallMs?: number;
  /** Wall ms the loop may fall behind the model's timeline before it restarts the timeline at the current time. @default 200 */
  readonly maxLagMs?: number;
  /** Called after every `finishStep`. */
  readonly onStep?: (step: DriverStep) => void;
  /** Wall clock, ms with a fraction. @default performance.now */
  readonly clock?: () => number;
}

interface Pending {
  readonly request: EngineRequest;
  readonly atUs: number;
}

/** Counters of a {@link RealtimeDriver}. */
export interface RealtimeDriverStats {
  readonly steps: number;
  /** Times the loop fell more than `maxLagMs` behind and restarted the timeline. */
  readonly resyncs: number;
  /** Requests submitted but not yet in the core. */
  readonly pending: number;
  /** Step-end lag samples kept (the last 8192), wall ms. */
  readonly lagSamplesMs: readonly number[];
}

const LAG_SAMPLES = 8192;

/**
 * Steps at least this long, wall ms, end with a short turn-by-turn wait instead of a rounded
 * timer; shorter ones (high time scales) would spend most of their time in that wait.
 */
const SPIN_SLEEP_MIN_MS = 4;
/**
 * How early a long sleep's timer fires, wall ms. Node's timers count whole ms from the event
 * loop's cached time, so one fires up to about a ms early or late; what is left after it fires
 * (≈ 0.4 ms on average, measured) is waited out with `setImmediate`.
 */
const TIMER_EARLY_MS = 1;
/**
 * The rest of an exact sleep after its timer (under `TIMER_EARLY_MS`) is slept in the thread
 * (`Atomics.wait`, a futex: no CPU) in slices of at most this many wall ms, with one event-loop
 * turn between slices so that I/O (arriving requests and their arrival stamps) waits at most one
 * slice. Spinning through loop turns instead (`setImmediate` alone) costs about one turn per
 * few µs, dozens per step, all of it CPU time taken from the server's other work.
 */
const WAIT_SLICE_MS = 0.2;
/** A slice ends this early (wall ms): the futex wakes up to ~50 µs late (timer slack); the last bit is waited out in loop turns. */
const WAIT_SLACK_MS = 0.06;
/** The cell `Atomics.wait` sleeps on; nothing ever notifies it, so every wait runs to its timeout. */
const SLEEP_CELL = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs an {@link EngineCore} on the wall clock.
 *
 * @example
 * ```ts
 * const driver = new RealtimeDriver({ core, timeScale: 10 });
 * driver.start();
 * driver.submit({ requestId: 'a', promptTokenIds: [1, 2, 3], maxTokens: 4 }, driver.nowUs(), sink);
 * await driver.stop();
 * ```
 */
export class RealtimeDriver {
  readonly core: EngineCore;
  readonly timeScale: number;
  private readonly stallUs: number;
  private readonly maxLagUs: number;
  private readonly halfMsUs: number;
  private readonly clock: () => number;
  /** Whether `clock` is the real one (a fake clock in tests must not be slept on in the thread). */
  private readonly realClock: boolean;
  private readonly t0: number;
  private readonly onStep: ((step: DriverStep) => void) | undefined;
  private readonly sinks = new Map<string, RequestSink>();
  private readonly pending: Pending[] = [];
  private readonly lags: number[] = [];
  private lagNext = 0;
  private steps = 0;
  private resyncs = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private immediate: ReturnType<typeof setImmediate> | null = null;
  private sleepDone: (() => void) | null = null;
  private sleepWakeable = false;

  /**
   * @param options - see {@link RealtimeDriverOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a non-positive `timeScale` or negative `stallMs` / `maxLagMs`.
   */
  constructor(options: RealtimeDriverOptions) {
    this.core = options.core;
    this.timeScale = options.timeScale ?? 1;
    if (!(this.timeScale > 0 && Number.isFinite(this.timeScale))) throw invalidArgument('timeScale', options.timeScale, 'a finite number > 0');
    const stallMs = options.stallMs ?? 0;
    if (!(stallMs >= 0 && Number.isFinite(stallMs))) throw invalidArgument('stallMs', stallMs, 'a finite number of ms ≥ 0');
    const maxLagMs = options.maxLagMs ?? 200;
    if (!(maxLagMs >= 0)) throw invalidArgument('maxLagMs', maxLagMs, 'a number of ms ≥ 0');
    this.stallUs = this.wallMsToUs(stallMs);
    this.maxLagUs = this.wallMsToUs(maxLagMs);
    this.halfMsUs = this.wallMsToUs(0.5);
    this.clock = options.clock ?? (() => performance.now());
    this.realClock = options.clock === undefined;
    this.t0 = this.clock();
    this.onStep = options.onStep;
    this.core.hooks = {
      ...this.core.hooks,
      onToken: (id, tok, now) => this.sinks.get(id)?.onToken(tok, now),
      onFinished: (req, stats) => {
        const sink = this.sinks.get(req.requestId);
        this.sinks.delete(req.requestId);
        sink?.onFinished(stats);
      },
    };
  }

  /** Wall ms → model µs. */
  wallMsToUs(ms: number): number {
    return ms * 1000 * this.timeScale;
  }

  /** Model µs → wall ms. */
  usToWallMs(us: number): number {
    return us / 1000 / this.timeScale;
  }

  /** The wall-clock time (the `clock`'s ms) at which model time `us` falls. */
  wallMsOf(us: number): number {
    return this.t0 + this.usToWallMs(us);
  }

  /** The model clock now, µs since the driver was made. */
  nowUs(): number {
    return this.wallMsToUs(this.clock() - this.t0);
  }

  /** Requests submitted and not finished (pending, waiting or running). */
  get inFlight(): number {
    return this.sinks.size;
  }

  /** Requests submitted that have not reached a step yet plus the core's waiting queue. */
  get waiting(): number {
    return this.pending.length + this.core.numWaiting;
  }

  /** Counters and recent lag samples. */
  get stats(): RealtimeDriverStats {
    return { steps: this.steps, resyncs: this.resyncs, pending: this.pending.length, lagSamplesMs: this.lags.slice() };
  }

  /**
   * Submits a request; it joins the first step that starts at or after `atUs`.
   *
   * @param request - validated by the caller (the core throws on a duplicate id or bad `maxTokens`).
   * @param atUs - when it reaches the engine's queue, model µs (arrival + API-server queueing).
   * @param sink - receives its tokens and its end.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id already in flight.
   */
  submit(request: EngineRequest, atUs: number, sink: RequestSink): void {
    if (this.sinks.has(request.requestId)) throw invalidArgument('request.requestId', request.requestId, 'an id not already in flight');
    this.sinks.set(request.requestId, sink);
    let i = this.pending.length;
    while (i > 0 && (this.pending[i - 1] as Pending).atUs > atUs) i--;
    this.pending.splice(i, 0, { request, atUs });
    this.wake();
  }

  /**
   * Cancels a request wherever it is; its blocks are freed at once and its sink gets
   * `onFinished` with reason `abort`.
   * @returns false when the request is unknown or finished.
   */
  abort(requestId: string): boolean {
    const i = this.pending.findIndex((p) => p.request.requestId === requestId);
    if (i >= 0) {
      const [p] = this.pending.splice(i, 1);
      // Never reached the core: add and abort it so the core's counters and hooks see it, as vLLM counts an aborted queued request.
      this.core.addRequest((p as Pending).request, (p as Pending).atUs);
    }
    const ok = this.core.abort(requestId, this.nowUs());
    this.wake();
    return ok;
  }

  /** Starts the step loop. */
  start(): void {
    if (this.running) return;
    if (this.loop !== null) throw new KvmgrError('KVMGR_INVALID_STATE', 'RealtimeDriver cannot be restarted after stop()');
    this.running = true;
    this.loop = this.run();
  }

  /** Stops the loop (a step in progress is dropped) and waits for it to exit. Idempotent. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake(true);
    await this.loop;
  }

  /** Ends the current sleep: only the idle wait, unless `force` (stop). */
  private wake(force = false): void {
    const done = this.sleepDone;
    if (done === null || !(force || this.sleepWakeable)) return;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    done();
  }

  /**
   * Resolves at model time `atUs` (never when undefined); with `wakeable`, also on {@link wake}.
   * Without `exact`, a timer of the nearest whole ms, or one I/O turn when under half a ms away.
   * With `exact` (the end of a step of at least `SPIN_SLEEP_MIN_MS` wall ms), the timer fires
   * `TIMER_EARLY_MS` early and the rest is slept in `WAIT_SLICE_MS` slices with an event-loop turn
   * after each (`setImmediate`, so I/O still runs): the step ends on its model time, not up to a ms late or early.
   */
  private sleepUntil(atUs: number | undefined, wakeable: boolean, exact = false): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.timer = null;
        this.immediate = null;
        this.sleepDone = null;
        resolve();
      };
      this.sleepDone = done;
      this.sleepWakeable = wakeable;
      if (atUs === undefined) return;
      const ms = this.usToWallMs(atUs - this.nowUs());
      if (!exact || ms <= 0) {
        if (ms < 0.5) this.immediate = setImmediate(done);
        else this.timer = setTimeout(done, Math.max(1, Math.round(ms)));
        return;
      }
      let lastNow = Number.NaN;
      const check = (): void => {
        const now = this.nowUs();
        const left = this.usToWallMs(atUs - now);
        if (left <= 0) done();
        else if (left > TIMER_EARLY_MS) this.timer = setTimeout(check, Math.max(1, Math.floor(left - TIMER_EARLY_MS)));
        else if (now !== lastNow) {
          lastNow = now;
          if (this.realClock && left > 2 * WAIT_SLACK_MS) Atomics.wait(SLEEP_CELL, 0, 0, Math.min(WAIT_SLICE_MS, left - WAIT_SLACK_MS));
          this.immediate = setImmediate(check);
        } else {
          // A clock that did not move in a loop turn (a coarse or fake clock): wait for it with a timer.
          this.timer = setTimeout(check, 1);
        }
      };
      check();
    });
  }

  private admitPending(untilUs: number): void {
    let n = 0;
    while (n < this.pending.length && (this.pending[n] as Pending).atUs <= untilUs) n++;
    if (n === 0) return;
    for (const p of this.pending.splice(0, n)) this.core.addRequest(p.request, p.atUs);
  }

  private recordLag(ms: number): void {
    if (this.lags.length < LAG_SAMPLES) this.lags.push(ms);
    else this.lags[this.lagNext] = ms;
    this.lagNext = (this.lagNext + 1) % LAG_SAMPLES;
  }

  private async run(): Promise<void> {
    let prevEndUs: number | undefined;
    while (this.running) {
      const now = this.nowUs();
      // Back to back after the previous step (the timer that ended it may have fired up to half a
      // millisecond early or any amount late); after idling, at the first arrival's time once it is
      // under half a millisecond away. Never further back than maxLag.
      let startUs = now;
      if (prevEndUs !== undefined) {
        if (now - prevEndUs <= this.maxLagUs) startUs = prevEndUs;
        else this.resyncs++;
      } else {
        const first = this.pending[0]?.atUs;
        if (first !== undefined && first - now < this.halfMsUs && now - first <= this.maxLagUs) startUs = first;
      }
      this.admitPending(startUs);
      const startLagMs = this.usToWallMs(now - startUs);
      const step = this.core.startStep(startUs);
      if (step === null) {
        prevEndUs = undefined;
        // Idle (or nothing fits until an abort): wait for the next pending arrival's time or a wake-up.
        const next = this.pending[0]?.atUs;
        await this.sleepUntil(next, true);
        // Let the rest of this moment's I/O callbacks submit before the step starts: requests that
        // arrive together join the same step, as in a discrete-event replay (setImmediate runs after
        // the poll phase's callbacks).
        if (this.running) await this.sleepUntil(this.nowUs(), false);
        continue;
      }
      const endUs = startUs + step.durationUs + this.stallUs;
      await this.sleepUntil(endUs, false, this.usToWallMs(endUs - startUs) >= SPIN_SLEEP_MIN_MS);
      if (!this.running) break;
      const lagMs = this.usToWallMs(this.nowUs() - endUs);
      this.recordLag(lagMs);
      this.core.finishStep(endUs);
      this.steps++;
      prevEndUs = endUs;
      this.onStep?.({ start: step, startUs, endUs, lagMs, startLagMs });
    }
  }
}
