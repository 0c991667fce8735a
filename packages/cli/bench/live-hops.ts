/**
 * Where a live request's TTFT goes beyond the engine's model timeline, hop by hop, in wall ms:
 * one engine server (in this process, `vllm-default`, at `timeScale`) alone and behind the kvmgr
 * gateway (one gateway per routing), sequential streamed requests (one at a time: no queueing,
 * no prefix-cache hits) of several prompt sizes sent as token ids, as `kvmgr live` sends them.
 *
 * `node --conditions=@kvmgr/source --import tsx packages/cli/bench/live-hops.ts [timeScale] [routing…]`
 * (defaults: 2, `round-robin` and `kvmgr-default`)
 *
 * Prints one JSON line of setup (with the load average), then one per prompt size and path
 * (`via`: `engine` direct, or `gateway <routing>`) with medians over the rounds, wall ms:
 * `ttft` (what the client saw), `toEngine` (client send → engine received the headers: the HTTP
 * hops and, through the gateway, its parse, validation, tokenisation and decision), `intake` (the
 * engine's body parse and validation until the driver has it), `model` (the driver's first-token
 * time on the model's timeline, wall = model / time scale), `emitLag` (step loop behind that
 * timeline), `write` (SSE chunk to the socket), `back` (engine write → client read, through the
 * gateway or not), and `overhead` = ttft − model, with `overheadModelMs` = overhead × time scale:
 * what `kvmgr live` adds to each TTFT on top of the simulator's.
 */
import { loadavg } from 'node:os';
import { type RequestTiming, createEngineServer } from '@kvmgr/engine-server';
import { createGateway } from '@kvmgr/gateway';
import { blockTokens } from '@kvmgr/sim';

const timeScale = Number(process.argv[2] ?? 2);
if (!(timeScale > 0)) throw new Error(`timeScale: ${process.argv[2]}, expected a number > 0`);
const routings = process.argv.length > 3 ? process.argv.slice(3) : ['round-robin', 'kvmgr-default'];
const sizes = [512, 4096, 16384, 65536];
const rounds = 5;
const timings: RequestTiming[] = [];
const engine = await createEngineServer({
  host: '127.0.0.1',
  port: 0,
  timeScale,
  profile: 'vllm-default',
  kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://127.0.0.1:0', replay_endpoint: 'tcp://127.0.0.1:0', topic: '' },
  experimental_onRequestTiming: (t) => timings.push(t),
});
const gateways = await Promise.all(
  routings.map((routing) =>
    createGateway(
      {
        server: { host: '127.0.0.1', port: 0, logLevel: 'silent' },
        model: engine.config.servedModelName,
        endpoints: [{ url: engine.url, name: 'e0', ...(engine.kvEventsEndpoint ? { kvEvents: engine.kvEventsEndpoint } : {}), ...(engine.replayEndpoint ? { replay: engine.replayEndpoint } : {}) }],
        routing,
      },
      { logStream: { write: () => true } },
    ),
  ),
);
const median = (a: readonly number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
let sent = 0;
/** One streamed request of `tokens` fresh token ids (no prefix shared with any other), 2 output tokens. */
async function one(url: string, tokens: number): Promise<{ sendMs: number; firstMs: number }> {
  sent++;
  const prompt: number[] = [];
  for (let b = 0; prompt.length < tokens; b++) prompt.push(...blockTokens(sent * 1000 + b, 7, 512));
  prompt.length = tokens;
  const body = JSON.stringify({ model: engine.config.servedModelName, prompt, max_tokens: 2, min_tokens: 2, ignore_eos: true, stream: true });
  const sendMs = performance.now();
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  let firstMs = Number.NaN;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (Number.isNaN(firstMs) && dec.decode(value).includes('"text"')) firstMs = performance.now();
  }
  return { sendMs, firstMs };
}
console.log(JSON.stringify({ timeScale, routings, rounds, promptTokens: sizes, loadavg: loadavg().map((x) => +x.toFixed(2)) }));
const paths: Array<readonly [string, string]> = [['engine', engine.url], ...gateways.map((g, i) => [`gateway ${routings[i]}`, g.url] as const)];
for (const size of sizes) {
  for (const [via, url] of paths) {
    await one(url, size); // warm-up of this path and size
    const rows: Record<string, number[]> = { ttft: [], toEngine: [], intake: [], model: [], emitLag: [], write: [], back: [], overhead: [] };
    for (let r = 0; r < rounds; r++) {
      const o = await one(url, size);
      // sequential: the request that finished last is this one (its timing is reported on close)
      const t = timings.at(-1);
      if (t === undefined || t.promptTokens !== size) continue;
      const due = t.tokenDueMs[0] as number;
      const emitted = t.tokenEmittedMs[0] as number;
      const written = t.tokenWrittenMs[0] as number;
      const ttft = o.firstMs - o.sendMs;
      rows.ttft?.push(ttft);
      rows.toEngine?.push(t.receivedMs - o.sendMs);
      rows.intake?.push(t.submittedMs - t.receivedMs);
      rows.model?.push(due - t.submittedMs);
      rows.emitLag?.push(emitted - due);
      rows.write?.push(written - emitted);
      rows.back?.push(o.firstMs - written);
      rows.overhead?.push(ttft - (due - t.submittedMs));
    }
    const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, +median(v).toFixed(2)]));
    console.log(JSON.stringify({ promptTokens: size, via, ...m, overheadModelMs: +((m.overhead as number) * timeScale).toFixed(1) }));
  }
}
await Promise.all(gateways.map((g) => g.close()));
await engine.close();
