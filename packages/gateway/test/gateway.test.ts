/**
 * The gateway on real sockets: real engine servers (`@kvmgr/engine-server`, kvmgr's engine core
 * behind vLLM's HTTP API, `/metrics` and ZMQ KV events) on 127.0.0.1, the gateway on an ephemeral
 * port, the `openai` SDK as the client.
 */
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, createGateway } from '../src/index.js';
import { LogSink, MODEL, type TestEngine, endpointsOf, startFleet, until } from './helpers.js';

describe('gateway: OpenAI API through the gateway', () => {
  let fleet: TestEngine[];
  let gw: Gateway;
  let client: OpenAI;
  const logs = new LogSink();

  beforeAll(async () => {
    fleet = await startFleet(2);
    gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet) }, { logStream: logs });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    for (const f of fleet ?? []) await f.close();
  });

  it('completions: usage with cached_tokens passes through; the request id reaches the engine and the log line', async () => {
    const { data, response } = await client.completions.create({ model: MODEL, prompt: 'The quick brown fox jumps over the lazy dog. '.repeat(8), max_tokens: 4 }, { headers: { 'x-request-id': 'req-basic-1' } }).withResponse();
    expect(response.headers.get('x-request-id')).toBe('req-basic-1');
    expect(data.choices[0]?.text.length).toBeGreaterThan(0);
    expect(data.usage?.completion_tokens).toBe(4);
    expect(data.usage?.prompt_tokens).toBeGreaterThan(64);
    expect(data.usage?.prompt_tokens_details?.cached_tokens).toBe(0);
    const seen = fleet.flatMap((f) => f.seen).find((r) => r.requestId === 'req-basic-1');
    expect(seen).toBeDefined();
    const line = logs.request('req-basic-1');
    expect(line?.['status']).toBe(200);
    const decision = line?.['decision'] as unknown as { endpoint: string; reason: string; scores: Record<string, number> };
    expect(['e0', 'e1']).toContain(decision.endpoint);
    expect(Object.keys(decision.scores).sort()).toEqual(['e0', 'e1']);
    expect((line?.['usage'] as { promptTokens: number } | undefined)?.promptTokens).toBe(data.usage?.prompt_tokens);
  });

  it('the same prompt again goes to the same engine and is served from its cache', async () => {
    const prompt = 'Once upon a time in a land far away there lived a gateway. '.repeat(10);
    const a = await client.completions.create({ model: MODEL, prompt, max_tokens: 2 }, { headers: { 'x-request-id': 'same-1' } });
    const b = await client.completions.create({ model: MODEL, prompt, max_tokens: 2 }, { headers: { 'x-request-id': 'same-2' } });
    const ea = logs.decision('same-1').endpoint;
    const eb = logs.decision('same-2').endpoint;
    expect(eb).toBe(ea);
    const n = a.usage?.prompt_tokens as number;
    expect(b.usage?.prompt_tokens_details?.cached_tokens).toBe(Math.floor((n - 1) / 16) * 16);
  });

  it('chat completions, JSON and streamed (chunk by chunk, usage chunk at the end)', async () => {
    const messages = [{ role: 'system' as const, content: 'You are a test.' }, { role: 'user' as const, content: 'Say something.' }];
    const c = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 3 });
    expect(c.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(c.usage?.completion_tokens).toBe(3);
    const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 5, stream: true, stream_options: { include_usage: true } });
    const parts: string[] = [];
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) parts.push(chunk.choices[0].delta.content);
      if (chunk.usage) usage = chunk.usage;
    }
    // one chunk per token (a chunk may be empty while a multi-byte character is incomplete)
    expect(parts.length).toBeGreaterThan(0);
    expect(parts.length).toBeLessThanOrEqual(5);
    expect(usage?.completion_tokens).toBe(5);
    expect(usage?.prompt_tokens).toBe(c.usage?.prompt_tokens);
  });

  it('completions streamed', async () => {
    const stream = await client.completions.create({ model: MODEL, prompt: [1, 2, 3, 4, 5], max_tokens: 3, stream: true });
    const parts: string[] = [];
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      parts.push(chunk.choices[0]?.text ?? '');
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(parts).toHaveLength(3);
    expect(parts.join('').length).toBeGreaterThan(0);
    expect(finish).toBe('length');
  });

  it('malformed body → 400 OpenAI error naming the field; nothing routed', async () => {
    const before = fleet.reduce((a, f) => a + f.generations, 0);
    const err = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'robot' as 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).message).toContain('messages[0].role');
    const bad = await request(`${gw.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt": ' });
    expect(bad.statusCode).toBe(400);
    const body = (await bad.body.json()) as { error: { type: string } };
    expect(body.error.type).toBe('invalid_request_error');
    const badHeader = await request(`${gw.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-slo-ttft-ms': 'soon' }, body: '{"prompt":"hi"}' });
    expect(badHeader.statusCode).toBe(400);
    await badHeader.body.dump();
    expect(fleet.reduce((a, f) => a + f.generations, 0)).toBe(before);
  });

  it('malformed tools → 400 OpenAI error naming the field; nothing routed', async () => {
    const before = fleet.reduce((a, f) => a + f.generations, 0);
    for (const [tools, param] of [
      [{ type: 'function', function: { name: 'f' } }, 'tools'],
      [[{ type: 'function', function: { description: 'no name' } }], 'tools[0].function.name'],
      [[], 'tools'],
    ] as const) {
      const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], tools }) });
      expect(res.statusCode).toBe(400);
      const body = (await res.body.json()) as { error: { type: string; param: string; message: string } };
      expect(body.error).toMatchObject({ type: 'invalid_request_error', param });
      expect(body.error.message.startsWith(`${param}: `)).toBe(true);
    }
    expect(fleet.reduce((a, f) => a + f.generations, 0)).toBe(before);
  });

  it('bad chat-template fields → 400 OpenAI error naming the field; nothing routed', async () => {
    const before = fleet.reduce((a, f) => a + f.generations, 0);
    for (const [fields, param] of [
      [{ chat_template_kwargs: 'x' }, 'chat_template_kwargs'],
      [{ add_generation_prompt: 1 }, 'add_generation_prompt'],
      [{ continue_final_message: true, add_generation_prompt: true }, 'continue_final_message'],
      [{ chat_template_kwargs: { tokenize: true } }, 'chat_template_kwargs.tokenize'],
      // refused by the renderer (Llama 3.1's template concatenates it as a string)
      [{ chat_template_kwargs: { date_string: 20300101 } }, 'chat_template_kwargs.date_string'],
    ] as const) {
      const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], ...fields }) });
      expect(res.statusCode).toBe(400);
      const body = (await res.body.json()) as { error: { type: string; param: string; message: string } };
      expect(body.error).toMatchObject({ type: 'invalid_request_error', param });
      expect(body.error.message.startsWith(`${param}: `)).toBe(true);
    }
    expect(fleet.reduce((a, f) => a + f.generations, 0)).toBe(before);
  });

  it('tools or tool-call arguments nested thousands of levels deep → 400 naming the field (not a 500 from a stack overflow); nothing routed; the gateway serves on', async () => {
    const before = fleet.reduce((a, f) => a + f.generations, 0);
    const nested = (depth: number) => `${'{"a": '.repeat(depth)}1.0${'}'.repeat(depth)}`;
    const tool = (depth: number) => `{"type": "function", "function": {"name": "f", "parameters": ${nested(depth)}}}`;
    const user = '{"role": "user", "content": "hi"}';
    for (const [body, param] of [
      // past the renderer's depth check (1,000 levels, as Python's json.dumps) and past V8's stack
      [`{"model": "${MODEL}", "messages": [${user}], "tools": [${tool(1200)}]}`, 'tools'],
      [`{"model": "${MODEL}", "messages": [${user}], "tools": [${tool(30_000)}]}`, 'tools'],
      [`{"model": "${MODEL}", "messages": [${user}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ${JSON.stringify(nested(1200))}}}]}, ${user}]}`, 'messages'],
    ] as const) {
      const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.statusCode).toBe(400);
      const err = (await res.body.json()) as { error: { type: string; param: string; message: string } };
      expect(err.error).toMatchObject({ type: 'invalid_request_error', param });
      expect(err.error.message.startsWith(`${param}: `)).toBe(true);
    }
    expect(fleet.reduce((a, f) => a + f.generations, 0)).toBe(before);
    const ok = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"model": "${MODEL}", "messages": [${user}], "tools": [${tool(50)}], "max_tokens": 1}` });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
  });

  it('oversized body → 413 OpenAI error; nothing routed', async () => {
    const before = fleet.reduce((a, f) => a + f.generations, 0);
    const res = await request(`${gw.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x'.repeat(5 * 1024 * 1024) }) });
    expect(res.statusCode).toBe(413);
    const body = (await res.body.json()) as { error: { code: string } };
    expect(body.error.code).toBe('request_too_large');
    expect(fleet.reduce((a, f) => a + f.generations, 0)).toBe(before);
  });

  it('/health, /metrics and /admin/state report the pool', async () => {
    const h = await request(`${gw.url}/health`);
    expect(await h.body.json()).toMatchObject({ status: 'ok', endpoints: 2, healthy: 2 });
    await until(() => gw.state().endpoints.some((e) => e.cachedBlocks > 0), 5000, 'KV events');
    const s = await request(`${gw.url}/admin/state`);
    const state = (await s.body.json()) as { endpoints: { name: string; healthy: boolean; blockSize: number; capacityTokens: number; cachedBlocks: number }[]; indexBlocks: number };
    expect(state.endpoints.map((e) => e.name)).toEqual(['e0', 'e1']);
    expect(state.endpoints.every((e) => e.healthy && e.blockSize === 16 && e.capacityTokens === 4096 * 16)).toBe(true);
    expect(state.indexBlocks).toBeGreaterThan(0);
    const m = await request(`${gw.url}/metrics`);
    const text = await m.body.text();
    for (const name of [
      'inference_model_request_total',
      'kvmgr_gateway_routing_decisions_total',
      'inference_extension_scheduler_e2e_duration_seconds',
      'inference_pool_ready_pods{name="kvmgr"} 2',
      'kvmgr_gateway_index_blocks',
      'kvmgr_gateway_kv_event_lag_seconds',
      'kvmgr_gateway_kv_event_gaps_total',
      'kvmgr_gateway_admission_queue_depth',
      'kvmgr_gateway_cached_prompt_tokens_total',
    ]) {
      expect(text).toContain(name);
    }
  });
});

describe('gateway: the block index from KV events and from routing history', () => {
  const opened: { gw: Gateway; fleet: TestEngine[] }[] = [];
  afterAll(async () => {
    for (const o of opened) {
      await o.gw.close();
      for (const f of o.fleet) await f.close();
    }
  });

  it('KV events (engine keys, per-instance hash seed) map onto the request keys: the predicted cached tokens equal the engine’s', async () => {
    const fleet = await startFleet(3);
    const logs = new LogSink();
    // no speculative entries: what the index knows comes from the events alone
    const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet), routing: { scorers: 'pa:3,qd:2,kv:2', speculativeTtlMs: 0 } }, { logStream: logs });
    opened.push({ gw, fleet });
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const messages = [{ role: 'system' as const, content: 'Long shared system prompt. '.repeat(30) }, { role: 'user' as const, content: 'first' }];
    await client.chat.completions.create({ model: MODEL, messages, max_tokens: 2 }, { headers: { 'x-request-id': 'ev-1' } });
    const first = logs.decision('ev-1').endpoint;
    await until(() => (gw.state().endpoints.find((e) => e.name === first)?.cachedBlocks ?? 0) > 0, 5000, 'BlockStored');
    const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 2 }, { headers: { 'x-request-id': 'ev-2' } });
    const d = logs.decision('ev-2');
    expect(d.endpoint).toBe(first);
    expect(d.predictedCachedTokens).toBeGreaterThan(0);
    // the index predicts whole blocks; the engine never serves the last prompt token from cache
    expect(r.usage?.prompt_tokens_details?.cached_tokens).toBe(Math.min(d.predictedCachedTokens, Math.floor(((r.usage?.prompt_tokens as number) - 1) / 16) * 16));
    const others = Object.entries(d.scores).filter(([n]) => n !== first);
    for (const [, s] of others) expect(s).toBeLessThan(d.scores[first] as number);
  });

  it('endpoints without KV events: the gateway’s routing history is the (approximate) index', async () => {
    const fleet = await startFleet(3, { kvEvents: false });
    const logs = new LogSink();
    const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet, false), routing: { scorers: 'pa:3,qd:2,kv:2', speculativeTtlMs: 0 } }, { logStream: logs });
    opened.push({ gw, fleet });
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const prompt = 'No events from these engines, only history. '.repeat(12);
    await client.completions.create({ model: MODEL, prompt, max_tokens: 2 }, { headers: { 'x-request-id': 'h-1' } });
    const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 2 }, { headers: { 'x-request-id': 'h-2' } });
    const d1 = logs.decision('h-1');
    const d2 = logs.decision('h-2');
    expect(d2.endpoint).toBe(d1.endpoint);
    expect(d2.predictedCachedTokens).toBe(Math.floor((r.usage?.prompt_tokens as number) / 16) * 16);
    expect(r.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThan(0);
    expect(gw.state().endpoints.find((e) => e.name === d1.endpoint)?.cachedBlocks).toBe(Math.floor((r.usage?.prompt_tokens as number) / 16));
  });

  it('POST/GET/DELETE /admin/endpoints add and remove endpoints at run time', async () => {
    const fleet = await startFleet(2);
    const gw = await createGateway({ server: { port: 0 }, model: MODEL, endpoints: endpointsOf(fleet.slice(0, 1)) }, { logStream: new LogSink() });
    opened.push({ gw, fleet });
    const add = await request(`${gw.url}/admin/endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'late', url: (fleet[1] as TestEngine).url, kvEvents: (fleet[1] as TestEngine).kvEventsEndpoint }),
    });
    expect(add.statusCode).toBe(201);
    expect(((await add.body.json()) as { healthy: boolean }).healthy).toBe(true);
    const dup = await request(`${gw.url}/admin/endpoints`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: (fleet[1] as TestEngine).url }) });
    expect(dup.statusCode).toBe(409);
    await dup.body.dump();
    const bad = await request(`${gw.url}/admin/endpoints`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: 'nope' }) });
    expect(bad.statusCode).toBe(400);
    expect(((await bad.body.json()) as { error: { message: string } }).error.message).toMatch(/^endpoint\.url: /);
    const list = (await (await request(`${gw.url}/admin/endpoints`)).body.json()) as { name: string }[];
    expect(list.map((e) => e.name)).toEqual(['e0', 'late']);
    const del = await request(`${gw.url}/admin/endpoints/late`, { method: 'DELETE' });
    expect(del.statusCode).toBe(204);
    await del.body.dump();
    const gone = await request(`${gw.url}/admin/endpoints/late`, { method: 'DELETE' });
    expect(gone.statusCode).toBe(404);
    await gone.body.dump();
    expect(gw.state().endpoints.map((e) => e.name)).toEqual(['e0']);
  });
});
