/**
 * The wall-clock driver keeps the model's timeline: with the timers and the clock under test
 * control (vitest fake timers), token times equal a discrete-event replay of the same arrivals
 * exactly, also when every wake-up comes late by a random amount under `maxLagMs`. This is the
 * deterministic half of issue #22's check 4; `test/fidelity.test.ts` measures the live server.
 */
import { EngineCore, type StepShape } from '@kvmgr/engine';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RealtimeDriver } from './realtime-driver.js';

const stepTimeUs = (s: Readonly<StepShape>): number => 4000 + 60 * s.prefillTokens + 15 * s.decodeTokens + 100 * s.numSeqs;

function makeCore(hooks: ConstructorParameters<typeof EngineCore>[0]['hooks'] = {}): EngineCore {
  return new EngineCore({ kv: { numBlocks: 96, blockSize: 16 }, stepTimeUs, tokenBudget: 512, maxSeqs: 8, hooks });
}

interface Arrival {
  readonly prompt: number[];
  readonly maxTokens: number;
  /** Wall ms after the start at which the client submits. */
  readonly sendMs: number;
}

/** Discrete-event replay of arrivals (model µs) on a simulated clock; token times per request. */
function replay(arrivals: readonly { prompt: number[]; maxTokens: number; atUs: number }[]): number[][] {
  const tokens = arrivals.map(() => [] as number[]);
  const core = makeCore({ onToken: (id, _t, now) => tokens[Number(id)]?.push(now) });
  const order = arrivals.map((a, i) => ({ i, atUs: a.atUs })).sort((a, b) => a.atUs - b.atUs || a.i - b.i);
  let now = 0;
  let next = 0;
  for (;;) {
    while (next < order.length && (order[next] as { atUs: number }).atUs <= now) {
      const { i, atUs } = order[next++] as { i: number; atUs: number };
      const a = arrivals[i] as { prompt: number[]; maxTokens: number };
      core.addRequest({ requestId: String(i), promptTokenIds: a.prompt, maxTokens: a.maxTokens }, atUs);
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

/**
 * Runs the arrivals through a {@link RealtimeDriver} on fake timers. `lateMs(k)` is how late the
 * k-th wake-up finds the clock (a busy event loop): the clock jumps ahead by it after each step.
 */
async function drive(arrivals: readonly Arrival[], timeScale: number, lateMs: (k: number) => number) {
  let skewMs = 0;
  let k = 0;
  const core = makeCore();
  const driver = new RealtimeDriver({
    core,
    timeScale,
    maxLagMs: 200,
    clock: () => performance.now() + skewMs,
    onStep: () => {
      skewMs += lateMs(k++);
    },
  });
  const tokens = arrivals.map(() => [] as number[]);
  const atUs: number[] = [];
  let finished = 0;
  driver.start();
  for (const [i, a] of arrivals.entries()) {
    setTimeout(() => {
      atUs[i] = driver.nowUs();
      driver.submit({ requestId: String(i), promptTokenIds: a.prompt, maxTokens: a.maxTokens }, atUs[i] as number, {
        onToken: (_t, now) => tokens[i]?.push(now),
        onFinished: () => finished++,
      });
    }, a.sendMs);
  }
  for (let guard = 0; finished < arrivals.length && guard < 100_000; guard++) await vi.advanceTimersByTimeAsync(5);
  await driver.stop();
  return { tokens, atUs, finished, resyncs: driver.stats.resyncs, steps: driver.stats.steps, lagsMs: driver.stats.lagSamplesMs };
}

const arrivalArb = fc.array(
  fc.record({
    len: fc.integer({ min: 1, max: 200 }),
    shared: fc.boolean(),
    maxTokens: fc.integer({ min: 1, max: 12 }),
    gapMs: fc.integer({ min: 0, max: 30 }),
  }),
  { minLength: 1, maxLength: 14 },
);

function toArrivals(xs: readonly { len: number; shared: boolean; maxTokens: number; gapMs: number }[]): Arrival[] {
  let t = 0;
  return xs.map((x, i) => {
    t += x.gapMs;
    const prompt = Array.from({ length: x.len }, (_, j) => (x.shared && j < 64 ? 7 + j : 1000 + i * 1000 + j));
    return { prompt, maxTokens: x.maxTokens, sendMs: t };
  });
}

describe('RealtimeDriver keeps the model timeline (fake timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('token times equal a discrete-event replay of the same arrivals, on time and with late wake-ups', async () => {
    await fc.assert(
      fc.asyncProperty(arrivalArb, fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 0, max: 16 }), { maxLength: 12 }), async (xs, timeScale, lates) => {
        // Late wake-ups of up to 16 ms on the first 12 steps: at most 192 ms behind in all, under maxLagMs.
        const arrivals = toArrivals(xs);
        const run = await drive(arrivals, timeScale, (k) => lates[k] ?? 0);
        expect(run.finished).toBe(arrivals.length);
        expect(run.resyncs).toBe(0);
        const expected = replay(arrivals.map((a, i) => ({ ...a, atUs: run.atUs[i] as number })));
        expect(run.tokens).toEqual(expected);
      }),
      { numRuns: 40, seed: 22 },
    );
  });

  it('a step of 4 wall ms or more never ends before its model time (the timer fires early, the rest is waited out)', async () => {
    // stepTimeUs ≥ 4000 µs, so at time scale 1 every sleep takes the early-timer path; ends
    // rounded to the nearest ms (the short-sleep path) would come up to half a ms early here.
    await fc.assert(
      fc.asyncProperty(arrivalArb, async (xs) => {
        const run = await drive(toArrivals(xs), 1, () => 0);
        expect(run.lagsMs.length).toBe(run.steps);
        expect(run.lagsMs.filter((ms) => ms < 0)).toEqual([]);
      }),
      { numRuns: 20, seed: 4 },
    );
  });

  it('a wake-up later than maxLagMs restarts the timeline (counted) instead of replaying the backlog', async () => {
    const arrivals = toArrivals([
      { len: 100, shared: false, maxTokens: 8, gapMs: 0 },
      { len: 50, shared: false, maxTokens: 8, gapMs: 1 },
    ]);
    const run = await drive(arrivals, 1, (k) => (k === 2 ? 500 : 0));
    expect(run.finished).toBe(2);
    expect(run.resyncs).toBe(1);
    const expected = replay(arrivals.map((a, i) => ({ ...a, atUs: run.atUs[i] as number })));
    // Up to the stall the timelines agree; after it the driver's steps start later than the replay's.
    expect(run.tokens[0]?.[0]).toBe(expected[0]?.[0]);
    expect((run.tokens[0]?.at(-1) as number) - (expected[0]?.at(-1) as number)).toBeGreaterThanOrEqual(400_000);
  });
});
