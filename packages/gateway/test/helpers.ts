/**
 * Test helpers: a log sink that keeps pino's JSON lines, and a fleet of stand-in engines.
 */
import type { EndpointInput } from '../src/index.js';
import { type FakeVllm, type FakeVllmOptions, startFakeVllm } from './fixtures/fake-vllm.js';

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
}

/** Starts `n` stand-in engines. */
export async function startFleet(n: number, options: FakeVllmOptions = {}): Promise<FakeVllm[]> {
  const out: FakeVllm[] = [];
  for (let i = 0; i < n; i++) out.push(await startFakeVllm(options));
  return out;
}

/** Endpoint entries of a gateway config for a fleet. */
export function endpointsOf(fleet: readonly FakeVllm[], kvEvents = true): EndpointInput[] {
  return fleet.map((f, i) => ({
    name: `e${i}`,
    url: f.url,
    ...(kvEvents && f.kvEventsEndpoint !== null ? { kvEvents: f.kvEventsEndpoint } : {}),
    ...(kvEvents && f.replayEndpoint !== null ? { replay: f.replayEndpoint } : {}),
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
