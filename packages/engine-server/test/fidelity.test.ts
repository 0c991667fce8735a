import { describe, expect, it } from 'vitest';
import { loadMooncakeTrace } from '@kvmgr/sim';
import { BUNDLED_MOONCAKE_SAMPLE, traceSliceWorkload } from './fidelity-workloads.js';
import { measureFidelity } from './live-fidelity.js';

describe('fidelity of the live driver (issue #22, check 4)', () => {
  it('the server timeline matches an EngineCore replay of the same arrivals; client-observed medians are reported', async () => {
    const r = await measureFidelity({ timeScale: 5 });
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    console.log(
      `live driver fidelity at timeScale 5: client TTFT median ${r.live.ttftMs.toFixed(1)} ms vs replay ${r.sim.ttftMs.toFixed(1)} ms (${pct(r.ttftDiff)}), ` +
        `client ITL median ${r.live.itlMs.toFixed(2)} ms vs ${r.sim.itlMs.toFixed(2)} ms (${pct(r.itlDiff)}); ` +
        `server timeline vs replay of its arrivals: TTFT ${pct(r.driver.ttftDiff)}, ITL ${pct(r.driver.itlDiff)}; step-loop lag p99 ${r.lagP99Ms.toFixed(1)} ms wall, ${r.resyncs} resyncs`,
    );
    // Which step an arrival joins depends on when the wall-clock timer fired, so on a loaded machine
    // these medians drift (0–2.4% quiet, 16.8% once in a loaded CI run); asserting them would be a
    // timed unit test. The driver's timeline is checked exactly, on fake timers, in
    // src/realtime-driver.test.ts; the 5% figure is measured by bench/fidelity.ts. Here:
    // every measured request streamed its tokens and the server saw every one of them.
    expect(r.requests).toBe(r.completed);
    expect(Number.isFinite(r.driver.ttftDiff) && Number.isFinite(r.driver.itlDiff)).toBe(true);
    // What a client sees adds HTTP and event-loop delays (× timeScale in model time); on a loaded
    // 2-core machine that is not stable to 5%, so only sanity is asserted here (numbers in the log
    // above and in bench/fidelity.ts).
    expect(r.live.ttftMs).toBeGreaterThan(0.9 * r.sim.ttftMs);
    expect(r.live.itlMs).toBeGreaterThan(0);
    // The breakdown found the server's timing record of every measured request.
    for (const s of [r.breakdown.sendToReceived, r.breakdown.join, r.breakdown.emitLag, r.breakdown.write, r.breakdown.clientRead]) expect(Number.isFinite(s.mean)).toBe(true);
  });

  it('the floor server (the same core and driver behind a bare node:http handler) streams every request of a round, with its timing record', async () => {
    const r = await measureFidelity({ timeScale: 5, server: 'floor' });
    expect(r.requests).toBe(r.completed);
    expect(r.live.ttftMs).toBeGreaterThan(0.9 * r.sim.ttftMs);
    for (const s of [r.breakdown.sendToReceived, r.breakdown.emitLag, r.breakdown.write, r.breakdown.clientRead]) expect(Number.isFinite(s.mean)).toBe(true);
  });

  it('a trace slice keeps the trace: its requests, their lengths and send times, and shared hash ids as shared tokens', () => {
    const w = traceSliceWorkload({ startS: 0, durationS: 10 });
    const trace = loadMooncakeTrace(BUNDLED_MOONCAKE_SAMPLE).requests.filter((q) => q.arrivalUs < 10e6);
    expect(w.requests).toHaveLength(trace.length);
    w.requests.forEach((q, i) => {
      const t = trace[i] as (typeof trace)[number];
      expect(q.prompt).toHaveLength(t.promptTokens);
      expect(q.atMs).toBe(t.arrivalUs / 1000);
      expect(q.maxTokens).toBe(Math.max(1, t.outputTokens));
    });
    // The sample's first two requests share hash id 0 (one 512-token block) and then differ.
    const [a, b] = w.requests as [(typeof w.requests)[number], (typeof w.requests)[number]];
    expect(a.prompt.slice(0, 512)).toEqual(b.prompt.slice(0, 512));
    expect(a.prompt.slice(512, 1024)).not.toEqual(b.prompt.slice(512, 1024));
    // --rate-scale: the same requests, their send times divided by it
    const slow = traceSliceWorkload({ startS: 0, durationS: 10, rateScale: 0.25 });
    expect(slow.requests.map((q) => q.prompt)).toEqual(w.requests.map((q) => q.prompt));
    expect(slow.requests.map((q) => q.atMs)).toEqual(trace.map((t) => t.arrivalUs / 1000 / 0.25));
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => traceSliceWorkload({ durationS: 1, rateScale: bad })).toThrow(expect.objectContaining({ code: 'KVMGR_INVALID_ARGUMENT' }));
  });
});
