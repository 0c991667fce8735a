/**
 * Streamed chunks go out as soon as their token can no longer be the last, and the last one
 * still carries the finish reason; the `experimental_onRequestTiming` instrument reports one
 * consistent record per request (counts and the order of its stages, not durations).
 */
import { parseSseStream } from '@kvmgr/adapter-vllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EngineServer, type RequestTiming, createEngineServer } from './index.js';

let server: EngineServer;
const timings: RequestTiming[] = [];

beforeAll(async () => {
  // echo: output token k is prompt token k, so a stop token id can be placed exactly.
  server = await createEngineServer({ port: 0, timeScale: 20, numGpuBlocks: 512, echo: true, experimental_onRequestTiming: (t) => timings.push(t) });
});
afterAll(async () => {
  await server.close();
});

interface Choice {
  readonly text: string;
  readonly finish_reason: string | null;
}

async function stream(body: Record<string, unknown>): Promise<{ id: string; choices: Choice[] }> {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  expect(res.status).toBe(200);
  const choices: Choice[] = [];
  let id = '';
  for await (const chunk of parseSseStream(res.body as ReadableStream<Uint8Array>)) {
    const c = chunk as { id: string; choices: Choice[] };
    id = c.id;
    choices.push(...c.choices);
  }
  return { id, choices };
}

describe('streamed chunks and their finish reason', () => {
  it('length: one chunk per token, the finish reason on the last only', async () => {
    const { choices } = await stream({ prompt: [11, 12, 13, 14, 15, 16], max_tokens: 5 });
    expect(choices.map((c) => c.finish_reason)).toEqual([null, null, null, null, 'length']);
  });

  it('a stop token ends the stream with its own chunk carrying reason stop', async () => {
    const { choices } = await stream({ prompt: [21, 22, 23, 24, 25, 26], max_tokens: 6, stop_token_ids: [23] });
    expect(choices.map((c) => c.finish_reason)).toEqual([null, null, 'stop']);
  });

  it('a stop token under min_tokens is not the last: the stream runs to max_tokens', async () => {
    const { choices } = await stream({ prompt: [31, 32, 33, 34], max_tokens: 4, min_tokens: 4, stop_token_ids: [32] });
    expect(choices.map((c) => c.finish_reason)).toEqual([null, null, null, 'length']);
  });
});

describe('experimental_onRequestTiming', () => {
  it('one record per request: a time per output token for each stage, stages in order', async () => {
    timings.length = 0;
    const { id, choices } = await stream({ prompt: [41, 42, 43, 44, 45, 46, 47, 48], max_tokens: 7 });
    await new Promise((r) => setImmediate(r));
    const t = timings.find((x) => x.requestId === id);
    expect(t).toBeDefined();
    const tm = t as RequestTiming;
    expect(tm.promptTokens).toBe(8);
    expect(choices).toHaveLength(7);
    expect(tm.tokenDueMs).toHaveLength(7);
    expect(tm.tokenEmittedMs).toHaveLength(7);
    expect(tm.tokenWrittenMs).toHaveLength(7);
    expect(tm.submittedMs).toBeGreaterThanOrEqual(tm.receivedMs);
    // Enqueued after arrival (the queueing term), first token after enqueue, steps in order.
    expect(tm.enqueueDueMs).toBeGreaterThan(tm.receivedMs);
    expect(tm.tokenDueMs[0]).toBeGreaterThan(tm.enqueueDueMs);
    for (let k = 1; k < 7; k++) expect(tm.tokenDueMs[k]).toBeGreaterThan(tm.tokenDueMs[k - 1] as number);
    for (let k = 0; k < 7; k++) expect(tm.tokenWrittenMs[k]).toBeGreaterThanOrEqual(tm.tokenEmittedMs[k] as number);
  });

  it('a non-streamed request reports due and emitted times and no writes', async () => {
    timings.length = 0;
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: [51, 52, 53], max_tokens: 3 }),
    });
    const body = (await res.json()) as { id: string };
    await new Promise((r) => setImmediate(r));
    const tm = timings.find((x) => x.requestId === body.id) as RequestTiming;
    expect(tm.tokenDueMs).toHaveLength(3);
    expect(tm.tokenEmittedMs).toHaveLength(3);
    expect(tm.tokenWrittenMs).toHaveLength(0);
  });
});
