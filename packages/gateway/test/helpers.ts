/**
 * Test helpers: a log sink that keeps pino's JSON lines, and a fleet of real engine servers
 * (`@kvmgr/engine-server`: kvmgr's engine core on the wall clock behind vLLM's HTTP API, its
 * `/metrics` and its ZMQ KV events) on 127.0.0.1 ephemeral ports.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { type Server as NetServer, type Socket, createServer as createNetServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EngineServer, type EngineServerOptions, createEngineServer } from '@kvmgr/engine-server';
import { pino } from 'pino';
import { request } from 'undici';
import type { EndpointInput } from '../src/index.js';

/** A pino destination that keeps every line, parsed. */
export class LogSink {
  readonly lines: Record<string, unknown>[] = [];
  write(s: string): boolean {
    for (const line of s.split('\n')) if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    return true;
  }
  /** The routing decision in the per-request line of a request id (throws when there is none). */
  decision(reqId: string): { endpoint: string; reason: string; scores: Record<string, number>; predictedCachedTokens: number; admission: string } {
    const d = this.request(reqId)?.['decision'];
    if (d === undefined) throw new Error(`no decision logged for ${reqId}`);
    return d as { endpoint: string; reason: string; scores: Record<string, number>; predictedCachedTokens: number; admission: string };
  }
  /** The per-request line of a request id. */
  request(reqId: string): Record<string, unknown> | undefined {
    return this.lines.find((l) => l['msg'] === 'request' && l['reqId'] === reqId);
  }
  /**
   * The per-request line of a request id, waiting for it: a streamed request's line is written when
   * the upstream response ends, which can come after the client has read the last chunk.
   * @throws Error when no such line is written within `timeoutMs`.
   */
  async awaitRequest(reqId: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const l = this.request(reqId);
      if (l !== undefined) return l;
      if (Date.now() > until) throw new Error(`no request line logged for ${reqId} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/** The model every test engine serves (and the gateway's key namespace). */
export const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

/**
 * POSTs a non-streamed completion of token ids to a gateway (`model` = {@link MODEL},
 * `x-request-id` = `id`), reads the answer to its end, and resolves with its HTTP status.
 */
export function postCompletionStatus(url: string, id: string, prompt: readonly number[], maxTokens: number): Promise<number> {
  return request(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify({ model: MODEL, prompt, max_tokens: maxTokens }),
  }).then(async (r) => {
    await r.body.text();
    return r.statusCode;
  });
}

/** What an engine's HTTP log saw of one request. */
export interface SeenRequest {
  readonly url: string;
  readonly requestId: string | undefined;
}

/**
 * Options of {@link TestEngine.start}: the engine server's, plus `kvEvents: false` to run without
 * KV events, or `kvEvents: 'ipc'` to publish on ipc:// sockets in a fresh temporary directory
 * (they bind again at the same address after `restart()`; tcp with an explicit port would connect).
 */
export type TestEngineOptions = Omit<EngineServerOptions, 'port' | 'logger' | 'kvEventsConfig'> & { readonly kvEvents?: boolean | 'ipc' };

/**
 * One engine server under test. `restart()` stops it and starts a fresh one (empty cache, KV-event
 * seq from 0) on the same HTTP and ZMQ ports, as a restarted pod on the same address.
 */
export class TestEngine {
  server: EngineServer;
  /** Requests that reached the engine's HTTP server (from its request log), over all its lives. */
  readonly seen: SeenRequest[] = [];
  /** Requests that left the engine core, with their finish reason (`stop`, `length`, `abort`, …). */
  readonly finished: { requestId: string; reason: string }[] = [];
  /** Calls of `onDie` (a `dieAfter` death). */
  deaths = 0;
  private readonly options: TestEngineOptions;
  private dir: string | undefined;

  private constructor(server: EngineServer, options: TestEngineOptions) {
    this.server = server;
    this.options = options;
  }

  static async start(options: TestEngineOptions = {}, ports?: { http: number; kvEvents?: string; replay?: string }): Promise<TestEngine> {
    const holder: { e?: TestEngine } = {};
    let where = ports;
    let dir: string | undefined;
    if (options.kvEvents === 'ipc' && where === undefined) {
      dir = await mkdtemp(join(tmpdir(), 'kvmgr-gw-'));
      where = { http: 0, kvEvents: `ipc://${dir}/kv.sock`, replay: `ipc://${dir}/replay.sock` };
    }
    const server = await TestEngine.create(options, holder, where);
    const e = new TestEngine(server, options);
    e.dir = dir;
    holder.e = e;
    e.watch();
    return e;
  }

  private static create(options: TestEngineOptions, holder: { e?: TestEngine }, ports?: { http: number; kvEvents?: string; replay?: string }): Promise<EngineServer> {
    const { kvEvents = true, ...rest } = options;
    const logger = pino(
      { level: 'info', serializers: { req: (r: { url?: string; headers?: Record<string, string | undefined> }) => ({ url: r.url, rid: r.headers?.['x-request-id'] }) } },
      {
        write: (s: string) => {
          for (const line of s.split('\n')) {
            if (!line.includes('"incoming request"')) continue;
            const l = JSON.parse(line) as { req?: { url?: string; rid?: string } };
            holder.e?.seen.push({ url: l.req?.url ?? '', requestId: l.req?.rid });
          }
        },
      } as pino.DestinationStream,
    );
    return createEngineServer({
      model: 'Llama-3.1-8B-Instruct',
      gpu: 'H100',
      numGpuBlocks: 4096,
      timeScale: 20,
      ...rest,
      onDie: () => {
        if (holder.e) holder.e.deaths++;
        rest.onDie?.();
      },
      port: ports?.http ?? 0,
      logger,
      ...(kvEvents
        ? {
            kvEventsConfig: {
              enable_kv_cache_events: true,
              publisher: 'zmq',
              endpoint: ports?.kvEvents ?? 'tcp://127.0.0.1:0',
              replay_endpoint: ports?.replay ?? 'tcp://127.0.0.1:0',
            },
          }
        : {}),
    });
  }

  /** Records finished requests from the core's hooks (the server's own hooks keep running). */
  private watch(): void {
    const core = this.server.core;
    const hooks = core.hooks;
    core.hooks = {
      ...hooks,
      onFinished: (r, s) => {
        hooks.onFinished?.(r, s);
        this.finished.push({ requestId: r.requestId, reason: s.finishReason });
      },
    };
  }

  get url(): string {
    return this.server.url;
  }
  get kvEventsEndpoint(): string | undefined {
    return this.server.kvEventsEndpoint;
  }
  get replayEndpoint(): string | undefined {
    return this.server.replayEndpoint;
  }
  /** Generation requests that reached this engine's HTTP server. */
  get generations(): number {
    return this.seen.filter((r) => r.url.startsWith('/v1/completions') || r.url.startsWith('/v1/chat/completions')).length;
  }

  /** Stops the engine and starts a fresh one on the same ports (empty cache, new KV-event sequence). */
  async restart(): Promise<void> {
    await this.server.close();
    const holder: { e?: TestEngine } = { e: this };
    this.server = await TestEngine.create(this.options, holder, {
      http: Number(new URL(this.server.url).port),
      ...(this.server.kvEventsEndpoint === undefined ? {} : { kvEvents: this.server.kvEventsEndpoint }),
      ...(this.server.replayEndpoint === undefined ? {} : { replay: this.server.replayEndpoint }),
    });
    this.watch();
  }

  async close(): Promise<void> {
    await this.server.close();
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true });
  }
}

/** Starts `n` engine servers (4096 blocks of 16 tokens, time scale 20 unless told). */
export async function startFleet(n: number, options: TestEngineOptions = {}): Promise<TestEngine[]> {
  const out: TestEngine[] = [];
  try {
    for (let i = 0; i < n; i++) out.push(await TestEngine.start(options));
  } catch (e) {
    await Promise.all(out.map((f) => f.close()));
    throw e;
  }
  return out;
}

/** Endpoint entries of a gateway config for a fleet (`e0`, `e1`, …). */
export function endpointsOf(fleet: readonly TestEngine[], kvEvents = true): EndpointInput[] {
  return fleet.map((f, i) => ({
    name: `e${i}`,
    url: f.url,
    engine: 'kvmgr' as const,
    ...(kvEvents && f.kvEventsEndpoint !== undefined ? { kvEvents: f.kvEventsEndpoint } : {}),
    ...(kvEvents && f.replayEndpoint !== undefined ? { replay: f.replayEndpoint } : {}),
  }));
}

/** Waits until `cond()` holds, polling (bounded; for asynchronous KV events and health). */
export async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A loopback TCP proxy (node:net, no HTTP parsing) in front of one `http://host:port`, which can
 * hold what comes back: {@link hold} keeps every chunk from upstream (and its end) until
 * {@link release}; {@link passFirst} lets the next chunk through and holds the ones after it.
 * {@link sent} is what the clients wrote (latin1), to see a request go out.
 */
export class GatedProxy {
  /** Everything the clients sent, latin1. */
  sent = '';
  private mode: 'open' | 'hold' | 'first' = 'open';
  private readonly held: { client: Socket; chunk: Buffer | null }[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: NetServer,
    readonly url: string,
  ) {}

  static async start(target: string): Promise<GatedProxy> {
    const t = new URL(target);
    const holder: { p?: GatedProxy } = {};
    const server = createNetServer({ allowHalfOpen: true }, (client) => holder.p?.accept(client, t.hostname, Number(t.port)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address() as { port: number };
    const p = new GatedProxy(server, `http://127.0.0.1:${addr.port}`);
    holder.p = p;
    return p;
  }

  /** How many times `text` occurs in what the clients sent. */
  count(text: string): number {
    return this.sent.split(text).length - 1;
  }

  private accept(client: Socket, host: string, port: number): void {
    const up = netConnect({ host, port, allowHalfOpen: true });
    this.sockets.add(client);
    this.sockets.add(up);
    client.on('data', (c: Buffer) => {
      this.sent += c.toString('latin1');
      up.write(c);
    });
    client.on('end', () => up.end());
    up.on('data', (c: Buffer) => this.deliver(client, c));
    up.on('end', () => this.deliver(client, null));
    const drop = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', drop);
    up.on('error', drop);
    client.on('close', () => {
      up.destroy();
      this.sockets.delete(client);
    });
    up.on('close', () => this.sockets.delete(up));
  }

  private deliver(client: Socket, chunk: Buffer | null): void {
    if (this.mode === 'hold') {
      this.held.push({ client, chunk });
      return;
    }
    if (this.mode === 'first' && chunk !== null) this.mode = 'hold';
    if (chunk === null) client.end();
    else client.write(chunk);
  }

  /** Holds what comes back from upstream from now on. */
  hold(): void {
    this.mode = 'hold';
  }

  /** Lets the next chunk from upstream through (the held ones first), then holds. */
  passFirst(): void {
    const held = this.held.splice(0);
    this.mode = 'first';
    for (const h of held) this.deliver(h.client, h.chunk);
  }

  /** Passes what was held, in order, and everything after. */
  release(): void {
    this.mode = 'open';
    for (const h of this.held.splice(0)) this.deliver(h.client, h.chunk);
  }

  async close(): Promise<void> {
    this.release();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
