/**
 * Load on one engine server at time scale 10: C concurrent streaming clients (closed loop, each
 * sends its next request when the previous one ends) for a bounded number of requests; prints
 * delivered output tokens/s (wall), requests/s, and the step loop's lag behind the model's clock
 * (p50/p99, wall ms) and resyncs. In-process client (shares the CPU with the server).
 *
 *   node --conditions=@kvmgr/source --import tsx packages/engine-server/bench/serve-load.ts [concurrency…]
 */
import { parseSseStream } from '@kvmgr/adapter-vllm';
import { createEngineServer } from '../src/index.js';

const levels = process.argv.slice(2).map(Number).filter((x) => x > 0);
for (const concurrency of levels.length > 0 ? levels : [16, 64, 256]) {
  const server = await createEngineServer({ port: 0, timeScale: 10, numGpuBlocks: 32_768 });
  const perClient = 4;
  let tokens = 0;
  const client = async (c: number): Promise<void> => {
    for (let k = 0; k < perClient; k++) {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: Array.from({ length: 256 }, (_, t) => 1000 + ((c * 7919 + k * 104729 + t) % 100_000)), max_tokens: 64, stream: true }),
      });
      for await (const chunk of parseSseStream(res.body as ReadableStream<Uint8Array>)) if ((chunk as { choices: unknown[] }).choices.length > 0) tokens++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, c) => client(c)));
  const wallS = (performance.now() - t0) / 1000;
  const st = server.stats();
  await server.close();
  const lags = [...st.lagSamplesMs].sort((a, b) => a - b);
  const q = (p: number) => +(lags[Math.floor(p * (lags.length - 1))] ?? 0).toFixed(2);
  console.log(
    JSON.stringify({
      timeScale: 10,
      concurrency,
      requests: concurrency * perClient,
      outputTokensPerS: Math.round(tokens / wallS),
      requestsPerS: +((concurrency * perClient) / wallS).toFixed(1),
      steps: st.steps,
      lagP50Ms: q(0.5),
      lagP99Ms: q(0.99),
      resyncs: st.resyncs,
    }),
  );
}
