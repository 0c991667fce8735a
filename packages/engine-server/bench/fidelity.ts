/**
 * Prints the live-driver fidelity (client-observed vs replayed TTFT / ITL medians) and where the
 * client's overhead goes, stage by stage, at several time scales:
 *
 * `node --conditions=@kvmgr/source --import tsx packages/engine-server/bench/fidelity.ts [--trace [--duration S] [--start S] [--rate-scale X] [--trace-file PATH]] [--breakdown] [--floor | --servers engine,floor] [--client fetch|http] [--in-process] [--max-lag-ms MS] [--warmup-rounds N] [scales…]`
 *
 * Without `--trace`: 24 synthetic short prompts (test/fidelity-workloads.ts). With it: the requests
 * of a slice of the bundled Mooncake sample (default the first 60 s), at their own timestamps
 * divided by `--rate-scale` (default 1; Mooncake is a cluster trace: 0.25 sends a quarter of its
 * rate, which one modelled H100 keeps up with, so that queueing order does not amplify timing noise).
 * The client runs in a child process of its own unless `--in-process` (then it shares the server's
 * event loop, and `cpuUsPerToken` counts both). With `--breakdown`, `measuredWindowUs` is the
 * measured round on the monotonic clock of the samples of `node --cpu-prof`, to cut a profile of the
 * server's process to it. `--warmup-rounds` (default 3) warm-up rounds precede each measured one:
 * the server's CPU per token keeps falling over a process's first rounds (JIT). With `--floor` the
 * requests go to the floor server of `test/fidelity-floor-server.ts` instead (the same engine core
 * and driver behind a bare `node:http` handler): what this machine's loopback hop and event loops
 * add whatever the server's code; its lines say `"server":"floor"`. `--servers engine,floor` runs
 * both, one after the other at each time scale (the floor beside the engine server on the same
 * machine state).
 */
import { parseArgs } from 'node:util';
import { syntheticWorkload, traceSliceWorkload } from '../test/fidelity-workloads.js';
import { type StageStat, measureFidelity } from '../test/live-fidelity.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    trace: { type: 'boolean', default: false },
    'trace-file': { type: 'string' },
    start: { type: 'string', default: '0' },
    duration: { type: 'string', default: '60' },
    'rate-scale': { type: 'string', default: '1' },
    breakdown: { type: 'boolean', default: false },
    floor: { type: 'boolean', default: false },
    servers: { type: 'string' },
    client: { type: 'string', default: 'fetch' },
    'max-lag-ms': { type: 'string' },
    'in-process': { type: 'boolean', default: false },
    'warmup-rounds': { type: 'string', default: '3' },
  },
});
if (values.client !== 'fetch' && values.client !== 'http') throw new Error(`--client: ${values.client}, expected fetch or http`);
const client = values.client;
const warmupRounds = Number(values['warmup-rounds']);
if (!(Number.isInteger(warmupRounds) && warmupRounds >= 0)) throw new Error(`--warmup-rounds: ${values['warmup-rounds']}, expected an integer ≥ 0`);
const rateScale = Number(values['rate-scale']);
if (!(rateScale > 0 && Number.isFinite(rateScale))) throw new Error(`--rate-scale: ${values['rate-scale']}, expected a number > 0`);
if (rateScale !== 1 && !values.trace) throw new Error('--rate-scale: applies to --trace only');
const servers = (values.servers ?? (values.floor ? 'floor' : 'engine')).split(',');
for (const s of servers) if (s !== 'engine' && s !== 'floor') throw new Error(`--servers: ${s}, expected engine or floor (comma-separated)`);
if (values.floor && values.servers !== undefined) throw new Error('--floor: give either --floor or --servers');
const scales = positionals.map(Number).filter((x) => x > 0);
const workload = values.trace
  ? traceSliceWorkload({ startS: Number(values.start), durationS: Number(values.duration), rateScale, ...(values['trace-file'] === undefined ? {} : { path: values['trace-file'] }) })
  : syntheticWorkload();
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const ms = (x: number) => +x.toFixed(3);
const st = (s: StageStat) => ({ median: ms(s.median), mean: ms(s.mean), p90: ms(s.p90) });
console.log(JSON.stringify({ workload: workload.name }));
for (const timeScale of scales.length > 0 ? scales : [1, 5, 10, 20]) for (const server of servers as ('engine' | 'floor')[]) {
  const maxLag = values['max-lag-ms'] === undefined ? {} : { maxLagMs: Number(values['max-lag-ms']) };
  const r = await measureFidelity({
    timeScale,
    client,
    clientPlacement: values['in-process'] ? 'in-process' : 'process',
    warmupRounds,
    server,
    ...maxLag,
    ...(values.trace ? { workload } : {}),
  });
  console.log(
    JSON.stringify({
      timeScale,
      server,
      liveTtftMs: ms(r.live.ttftMs),
      simTtftMs: ms(r.sim.ttftMs),
      ttftDiff: pct(r.ttftDiff),
      ttftOverheadMs: ms(r.live.ttftMs - r.sim.ttftMs),
      perRequestTtftDeltaMs: st(r.ttftDeltaMs),
      liveItlMs: ms(r.live.itlMs),
      simItlMs: ms(r.sim.itlMs),
      itlDiff: pct(r.itlDiff),
      itlOverheadMs: ms(r.live.itlMs - r.sim.itlMs),
      liveItlMeanMs: ms(r.live.itlMeanMs),
      simItlMeanMs: ms(r.sim.itlMeanMs),
      itlMeanDiff: pct(r.itlMeanDiff),
      driverTtftDiff: pct(r.driver.ttftDiff),
      driverItlDiff: pct(r.driver.itlDiff),
      lagP99Ms: ms(r.lagP99Ms),
      resyncs: r.resyncs,
      client: r.client,
      clientPlacement: r.clientPlacement,
      completed: `${r.completed}/${r.requests}`,
      cpuUsPerToken: +r.cpuUsPerToken.toFixed(1),
      cpuUsPerStep: +r.cpuUsPerStep.toFixed(1),
      clientCpuUsPerToken: Number.isNaN(r.clientCpuUsPerToken) ? null : +r.clientCpuUsPerToken.toFixed(1),
      loadavg: r.loadavg.map((x) => +x.toFixed(2)),
    }),
  );
  if (values.breakdown) {
    const b = r.breakdown;
    console.log(
      JSON.stringify({
        timeScale,
        server,
        measuredWindowUs: r.measuredWindowUs,
        wallMs: {
          sendToReceived: st(b.sendToReceived),
          receivedToSubmitted: st(b.receivedToSubmitted),
          join: st(b.join),
          emitLag: st(b.emitLag),
          write: st(b.write),
          clientRead: st(b.clientRead),
          laterTokens: { emitLag: st(b.laterTokens.emitLag), write: st(b.laterTokens.write), clientRead: st(b.laterTokens.clientRead) },
          stepStartLag: st(b.stepStartLag),
        },
      }),
    );
  }
}
