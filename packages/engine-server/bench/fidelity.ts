/**
 * Prints the live-driver fidelity (client-observed vs replayed TTFT / ITL medians) at several
 * time scales: `node --conditions=@kvmgr/source --import tsx packages/engine-server/bench/fidelity.ts [scales…]`.
 */
import { measureFidelity } from '../test/live-fidelity.js';

const scales = process.argv.slice(2).map(Number).filter((x) => x > 0);
for (const timeScale of scales.length > 0 ? scales : [1, 5, 10, 20]) {
  const r = await measureFidelity({ timeScale });
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  console.log(
    JSON.stringify({
      timeScale,
      liveTtftMs: +r.live.ttftMs.toFixed(2),
      simTtftMs: +r.sim.ttftMs.toFixed(2),
      ttftDiff: pct(r.ttftDiff),
      liveItlMs: +r.live.itlMs.toFixed(2),
      simItlMs: +r.sim.itlMs.toFixed(2),
      itlDiff: pct(r.itlDiff),
      driverTtftDiff: pct(r.driver.ttftDiff),
      driverItlDiff: pct(r.driver.itlDiff),
      lagP99Ms: +r.lagP99Ms.toFixed(2),
      resyncs: r.resyncs,
    }),
  );
}
