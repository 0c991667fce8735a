/**
 * The floor of the live-driver fidelity measurement (issue #22, check 4): the same engine core and
 * wall-clock driver as the engine server (so the same steps, the same token times and the same
 * step-end batching of every stream's token), behind the lightest HTTP layer that still answers a
 * streamed completion: a bare `node:http` handler, `JSON.parse` of the body, one SSE chunk string
 * per request built once (the same fields as vLLM's, a fixed text), written and sent per token
 * (`uncork`, as the engine server does). No fastify, validation, detokenizer, metrics or P/D.
 *
 * Whatever the client observes above the replay through this server is what any Node server on
 * this machine adds (the loopback hop, the event loops of client and server, one write per
 * stream at a step's end): the part of the engine server's overhead that its own code cannot
 * remove. `bench/fidelity.ts --floor` runs it; only `POST /v1/completions` with a token-id prompt
 * and `POST /reset_prefix_cache` are served.
 */
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { EngineCore } from '@kvmgr/engine';
import { getEngineProfile, getGpuSpec, getModelSpec, selectLatencyModel } from '@kvmgr/sim';
import type { DriverStep, RequestTiming } from '../src/index.js';
import { RealtimeDriver, type RealtimeDriverStats } from '../src/realtime-driver.js';

/** Options of {@link createFloorServer}. */
export interface FloorServerOptions {
  readonly timeScale: number;
  readonly numGpuBlocks: number;
  /** @default 200 */
  readonly maxLagMs?: number;
  readonly onRequestTiming?: (timing: RequestTiming) => void;
  readonly onStep?: (step: DriverStep) => void;
}

/** A running floor server (the subset of `EngineServer` that `measureFidelity` reads). */
export interface FloorServer {
  readonly url: string;
  readonly core: EngineCore;
  readonly config: { readonly numGpuBlocks: number };
  stats(): RealtimeDriverStats;
  close(): Promise<void>;
}

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' } as const;

/**
 * Starts a floor server on 127.0.0.1 (ephemeral port), modelling Llama-3.1-8B-Instruct on an H100
 * with the `vllm-default` profile, as the engine server's defaults and the fidelity replay do.
 * @throws Error when the port cannot be bound.
 */
export async function createFloorServer(options: FloorServerOptions): Promise<FloorServer> {
  const latency = selectLatencyModel('auto', getModelSpec('Llama-3.1-8B-Instruct'), getGpuSpec('H100'), 1).latency;
  const profile = getEngineProfile('vllm-default');
  const core = new EngineCore({
    kv: { numBlocks: options.numGpuBlocks, blockSize: profile.blockSize, evictionPolicy: profile.cacheEviction },
    stepTimeUs: (s) => latency.stepTimeUs(s),
    scheduler: profile.scheduler,
    tokenBudget: profile.tokenBudget,
    maxSeqs: profile.maxSeqs,
    victimSelector: profile.victimSelector,
  });
  const driver = new RealtimeDriver({ core, timeScale: options.timeScale, maxLagMs: options.maxLagMs ?? 200, ...(options.onStep === undefined ? {} : { onStep: options.onStep }) });
  let next = 0;
  const created = Math.floor(Date.now() / 1000);

  const completion = (req: IncomingMessage, res: ServerResponse, receivedUs: number): void => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { prompt: number[]; max_tokens: number };
      const requestId = `cmpl-floor${next++}`;
      const head = `data: {"id":"${requestId}","object":"text_completion","created":${created},"model":"floor","choices":[{"index":0,"text":" x","logprobs":null,"finish_reason":`;
      const chunk = `${head}null,"stop_reason":null}]}\n\n`;
      const last = `${head}"length","stop_reason":null}]}\n\ndata: [DONE]\n\n`;
      const timing = options.onRequestTiming === undefined ? null : { due: [] as number[], emitted: [] as number[], written: [] as number[] };
      const atUs = receivedUs + latency.queueingUs(body.prompt.length);
      const submittedMs = performance.now();
      let done = false;
      let tokens = 0;
      res.on('close', () => {
        if (!done) driver.abort(requestId);
      });
      driver.submit({ requestId, promptTokenIds: body.prompt, maxTokens: body.max_tokens }, atUs, {
        onToken: (_tok, nowUs) => {
          timing?.due.push(driver.wallMsOf(nowUs));
          timing?.emitted.push(performance.now());
          if (++tokens < body.max_tokens) {
            res.write(chunk);
            const s = res.socket;
            if (s !== null && s.writableCorked > 0) s.uncork();
          } else {
            res.end(last);
          }
          timing?.written.push(performance.now());
        },
        onFinished: () => {
          done = true;
          if (!res.writableEnded) res.end();
          if (timing !== null) {
            options.onRequestTiming?.({
              requestId,
              promptTokens: body.prompt.length,
              receivedMs: driver.wallMsOf(receivedUs),
              submittedMs,
              enqueueDueMs: driver.wallMsOf(atUs),
              tokenDueMs: timing.due,
              tokenEmittedMs: timing.emitted,
              tokenWrittenMs: timing.written,
            });
          }
        },
      });
      res.writeHead(200, SSE_HEADERS);
    });
  };

  const server = createServer((req, res) => {
    const receivedUs = driver.nowUs();
    if (req.method === 'POST' && req.url === '/v1/completions') return completion(req, res, receivedUs);
    req.resume();
    if (req.method === 'POST' && req.url === '/reset_prefix_cache') {
      res.writeHead(core.resetPrefixCache() ? 200 : 409).end();
      return;
    }
    res.writeHead(404).end();
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  driver.start();
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | null = null;
  return {
    url: `http://127.0.0.1:${port}`,
    core,
    config: { numGpuBlocks: options.numGpuBlocks },
    stats: () => driver.stats,
    close: () => {
      closing ??= (async () => {
        await driver.stop();
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closing;
    },
  };
}
