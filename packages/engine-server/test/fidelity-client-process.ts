/**
 * Child-process entry of the fidelity bench's client (forked by `forkedClient` in
 * `fidelity-client.ts`; argument: `fetch` or `http`). It says it is ready, then answers each
 * `ClientMessage` with one `ClientRunResult`: `load` serialises the next round's bodies, `run`
 * sends them and answers with the round's times on the monotonic clock and its own CPU time. It exits when the parent disconnects (or dies: the IPC channel
 * closes), so it never outlives the bench.
 */
import { type ClientMessage, type ClientRunResult, type FidelityClientKind, type PreparedRound, monotonicOffsetMs, prepareRound, sendRound } from './fidelity-client.js';
import { sseAgent } from './http-sse-client.js';

const kind = process.argv[2] as FidelityClientKind;
if (kind !== 'fetch' && kind !== 'http') throw new Error(`fidelity client process: client ${String(kind)}, expected fetch or http`);
const agent = sseAgent();
const reply = (m: ClientRunResult): void => {
  process.send?.(m);
};
let loaded: PreparedRound | null = null;

process.on('message', (m: ClientMessage) => {
  if ('load' in m) {
    loaded = prepareRound(m.load.url, m.load.requests, m.load.timeScale);
    return reply({});
  }
  const round = loaded;
  if (round === null) return reply({ error: 'run before load' });
  void (async () => {
    try {
      const cpu0 = process.cpuUsage();
      const r = await sendRound(round, kind, agent);
      const cpu = process.cpuUsage(cpu0);
      const off = monotonicOffsetMs();
      const map = (t: number): number => t + off;
      reply({ round: { sendsMs: r.sendsMs.map(map), tokenMs: r.tokenMs.map((ts) => ts.map(map)), ids: r.ids }, cpuUs: cpu.user + cpu.system });
    } catch (e) {
      reply({ error: (e as Error).message });
    }
  })();
});
process.on('disconnect', () => {
  agent.destroy();
  process.exit(0);
});
reply({});
