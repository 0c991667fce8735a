/**
 * The fidelity bench's client: sends one round of streamed requests at their model times (divided
 * by the time scale) and records when each was sent and when each token's chunk arrived. It runs
 * either in the server's process or, by default, in a child process of its own
 * (`fidelity-client-process.ts`, over IPC), so that its JSON parsing and socket reads do not take
 * turns from the server's event loop and the server's CPU time can be read apart from the client's.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseSseStream } from '@kvmgr/adapter-vllm';
import type { FidelityRequest } from './fidelity-workloads.js';
import { postSse, sseAgent } from './http-sse-client.js';

/** Which HTTP client sends: `fetch` + `parseSseStream` (as an application would) or the lighter `node:http` one. */
export type FidelityClientKind = 'fetch' | 'http';

/** One round as the client saw it. Times are the caller's `performance.now()` ms (a child's are mapped onto it). */
export interface ClientRound {
  /** Per request: when it was sent. */
  readonly sendsMs: readonly number[];
  /** Per request: when each token's chunk (a chunk with a choice) was parsed. */
  readonly tokenMs: readonly (readonly number[])[];
  /** Per request: the response id (`cmpl-…`), '' when no chunk came. */
  readonly ids: readonly string[];
  /** CPU time of the client's process over the round, µs (user + system); NaN when the client shares the server's process. */
  readonly cpuUs: number;
}

/** A client ready to send rounds to one server. */
export interface FidelityClient {
  /** Where it runs. */
  readonly placement: 'process' | 'in-process';
  /** Hands the client its next round (serialised there, before the round starts). */
  load(url: string, requests: readonly FidelityRequest[], timeScale: number): Promise<void>;
  /** Sends the loaded round (each request at `start + atMs / timeScale`) and resolves when every stream has ended. */
  run(): Promise<ClientRound>;
  /** Closes its connections (and ends the child process). Idempotent. */
  close(): Promise<void>;
}

/** One loaded round: request bodies serialised, ready to send. */
export interface PreparedRound {
  readonly url: string;
  readonly requests: readonly FidelityRequest[];
  readonly timeScale: number;
  readonly bodies: readonly string[];
}

/** Serialises a round's request bodies (streamed, `min_tokens` = `max_tokens`, `ignore_eos`). */
export function prepareRound(url: string, requests: readonly FidelityRequest[], timeScale: number): PreparedRound {
  const bodies = requests.map((r) => JSON.stringify({ prompt: r.prompt, max_tokens: r.maxTokens, min_tokens: r.maxTokens, ignore_eos: true, stream: true }));
  return { url, requests, timeScale, bodies };
}

/** Sends a prepared round from this process; times are this process's `performance.now()` ms. */
export async function sendRound(round: PreparedRound, kind: FidelityClientKind, agent: ReturnType<typeof sseAgent>): Promise<Omit<ClientRound, 'cpuUs'>> {
  const { requests, timeScale, bodies } = round;
  const sendsMs: number[] = requests.map(() => Number.NaN);
  const tokenMs: number[][] = requests.map(() => []);
  const ids: string[] = requests.map(() => '');
  const target = `${round.url}/v1/completions`;
  const start = performance.now();
  const one = async (r: FidelityRequest, i: number): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, start + r.atMs / timeScale - performance.now())));
    const times = tokenMs[i] as number[];
    const onChunk = (chunk: unknown): void => {
      const c = chunk as { id: string; choices: unknown[] };
      if (c.choices.length === 0) return;
      times.push(performance.now());
      ids[i] = c.id;
    };
    sendsMs[i] = performance.now();
    if (kind === 'http') return postSse(target, bodies[i] as string, agent, onChunk);
    const res = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[i] as string });
    for await (const chunk of parseSseStream(res.body as ReadableStream<Uint8Array>)) onChunk(chunk);
  };
  await Promise.all(requests.map(one));
  return { sendsMs, tokenMs, ids };
}

/** A client in this process (it shares the server's event loop and CPU). */
export function inProcessClient(kind: FidelityClientKind): FidelityClient {
  const agent = sseAgent();
  let loaded: PreparedRound | null = null;
  return {
    placement: 'in-process',
    load: async (url, requests, timeScale) => {
      loaded = prepareRound(url, requests, timeScale);
    },
    run: async () => {
      if (loaded === null) throw new Error('fidelity client: run() before load()');
      return { ...(await sendRound(loaded, kind, agent)), cpuUs: Number.NaN };
    },
    close: async () => agent.destroy(),
  };
}

/** Offset of `performance.now()` from the monotonic clock every process reads (`process.hrtime`), ms. */
export function monotonicOffsetMs(): number {
  return Number(process.hrtime.bigint()) / 1e6 - performance.now();
}

/** Message of the parent to the child process: load a round, or run the loaded one. */
export type ClientMessage = { readonly load: { readonly url: string; readonly requests: readonly FidelityRequest[]; readonly timeScale: number } } | { readonly run: true };

/** Answer of the child: ready (empty), loaded (empty), or its round in monotonic ms (`performance.now()` + its offset). */
export interface ClientRunResult {
  readonly round?: Omit<ClientRound, 'cpuUs'>;
  readonly cpuUs?: number;
  readonly error?: string;
}

const CHILD = fileURLToPath(new URL('./fidelity-client-process.ts', import.meta.url));

/**
 * Forks `fidelity-client-process.ts` (run from sources with tsx) and resolves once it is ready.
 * Its times come back on the monotonic clock and are mapped onto this process's `performance.now()`.
 * @throws Error when the child exits before it is ready, or (from `run`) when a round fails there.
 */
export async function forkedClient(kind: FidelityClientKind): Promise<FidelityClient> {
  const proc: ChildProcess = fork(CHILD, [kind], {
    execArgv: ['--conditions=@kvmgr/source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`fidelity client process exited with ${code} before it was ready`));
    proc.once('exit', onExit);
    proc.once('message', () => {
      proc.off('exit', onExit);
      resolve();
    });
  });
  let closed: Promise<void> | null = null;
  const ask = (m: ClientMessage): Promise<ClientRunResult> =>
    new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`fidelity client process exited with ${code} during a round`));
      proc.once('exit', onExit);
      proc.once('message', (r: ClientRunResult) => {
        proc.off('exit', onExit);
        if (r.error !== undefined) reject(new Error(`fidelity client process: ${r.error}`));
        else resolve(r);
      });
      proc.send(m);
    });
  return {
    placement: 'process',
    load: async (url, requests, timeScale) => {
      await ask({ load: { url, requests, timeScale } });
    },
    run: async () => {
      const m = await ask({ run: true });
      if (m.round === undefined) throw new Error('fidelity client process: no round in its answer');
      const off = monotonicOffsetMs();
      const map = (t: number): number => t - off;
      return { sendsMs: m.round.sendsMs.map(map), tokenMs: m.round.tokenMs.map((ts) => ts.map(map)), ids: m.round.ids, cpuUs: m.cpuUs ?? Number.NaN };
    },
    close: () => {
      if (closed === null) {
        closed = proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => proc.once('exit', () => resolve()));
        proc.disconnect();
      }
      return closed;
    },
  };
}
