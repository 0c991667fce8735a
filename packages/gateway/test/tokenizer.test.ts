/**
 * The gateway's tokenizer on real sockets: two engine servers modelling Qwen2.5-7B-Instruct (Qwen's
 * tokenizer and chat template, KV events over ZMQ), the gateway in front with `model:
 * Qwen/Qwen2.5-7B-Instruct`, a multi-turn chat workload through the `openai` SDK. With the
 * tokenizer the model implies, the gateway's block keys are the engines' (its predicted cached
 * tokens, from the engines' KV events alone, equal the engines' `cached_tokens`); with Llama 3's
 * configured instead, they are not (nothing predicted while the engines serve from cache).
 */
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChatMessage, type ChatTool, getTokenizer, markRequestToolsJson } from '@kvmgr/adapter-vllm';
import { type Gateway, createGateway, resolveGatewayConfig } from '../src/index.js';
import { LogSink, type TestEngine, endpointsOf, startFleet, until } from './helpers.js';

const QWEN = 'Qwen/Qwen2.5-7B-Instruct';
type Msg = { role: 'system' | 'user' | 'assistant'; content: string };

function systemPrompt(s: number): string {
  const words: string[] = [];
  for (let i = 0; i < 60; i++) words.push(`主题${s}-${(i * 7919 + s * 104729) % 1000} topic`);
  return `You are assistant number ${s}. Background: ${words.join(' ')}.`;
}

interface Turn {
  readonly session: number;
  readonly turn: number;
  readonly predicted: number;
  readonly cached: number;
  readonly promptTokens: number;
}

/** A large tool list, the same on every request of an agentic workload. */
const TOOLS: OpenAI.ChatCompletionTool[] = ['get_weather', 'search_web', 'read_file', 'write_file', 'run_shell'].map((name, i) => ({
  type: 'function',
  function: {
    name,
    description: `Tool ${i}: ${name.replace('_', ' ')} — returns a JSON result; « quoted » text and 中文 are fine.`,
    parameters: { type: 'object', properties: { target: { type: 'string', description: `what to ${name}` }, limit: { type: 'integer', minimum: 1, default: 10 }, options: { type: 'object', properties: { verbose: { type: 'boolean' } } } }, required: ['target'] },
  },
}));

/** Three sessions of three turns, one request at a time, each turn waiting for the engine's KV events of the one before. */
/**
 * Tools as a Python client sends them (pydantic's `model_json_schema`: `"default": 1.0`), in raw
 * JSON text: the openai SDK would write `1.0` as `1`. vLLM's `json.loads` keeps them floats and its
 * template writes `1.0`; one integer-like key (`"10"`) sent after the others keeps its place.
 */
const FLOAT_TOOLS_JSON = `[${['sample_text', 'rank_results', 'resize_image']
  .map(
    (name, i) =>
      `{"type": "function", "function": {"name": "${name}", "description": "Tool ${i} with Python-style defaults", "parameters": {"type": "object", "properties": {"temperature": {"type": "number", "default": 1.0, "minimum": 0.0, "maximum": 2.0}, "top_k": {"type": "integer", "default": 50, "maximum": 1e3}, "target": {"type": "string"}, "10": {"type": "boolean", "default": false}}, "required": ["target"]}}}`,
  )
  .join(', ')}]`;

async function runChat(
  gw: Gateway,
  fleet: readonly TestEngine[],
  logs: LogSink,
  tag: string,
  model = QWEN,
  opts: { tools?: OpenAI.ChatCompletionTool[]; toolsJson?: string; sharedSystem?: boolean; extra?: Record<string, unknown> } = {},
): Promise<Turn[]> {
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const history = new Map<number, Msg[]>();
  const out: Turn[] = [];
  for (let turn = 0; turn < 3; turn++) {
    for (let session = 0; session < 3; session++) {
      const msgs = history.get(session) ?? [{ role: 'system', content: systemPrompt(opts.sharedSystem === true ? 0 : session) }];
      msgs.push({ role: 'user', content: `Question ${turn} of session ${session}: what about   ${turn * 17 + session} items?` });
      const id = `${tag}-${session}-${turn}`;
      // the openai SDK forwards fields it does not know (vLLM's chat_template_kwargs, …)
      const body = { model, messages: msgs, max_tokens: 6, ...(opts.tools === undefined ? {} : { tools: opts.tools }), ...opts.extra } as OpenAI.ChatCompletionCreateParamsNonStreaming;
      let r: OpenAI.ChatCompletion;
      if (opts.toolsJson === undefined) r = await client.chat.completions.create(body, { headers: { 'x-request-id': id } });
      else {
        // the body as raw text (fetch: undici), so the tools' number literals reach the gateway as written
        const text = `${JSON.stringify(body).slice(0, -1)}, "tools": ${opts.toolsJson}}`;
        const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: text });
        expect(res.status).toBe(200);
        r = (await res.json()) as OpenAI.ChatCompletion;
      }
      msgs.push({ role: 'assistant', content: r.choices[0]?.message.content ?? '' });
      history.set(session, msgs);
      const d = logs.decision(id);
      out.push({ session, turn, predicted: d.predictedCachedTokens, cached: r.usage?.prompt_tokens_details?.cached_tokens ?? -1, promptTokens: r.usage?.prompt_tokens ?? 0 });
      // the engine's KV events of this request have reached the gateway: its block count for the
      // engine equals the engine's own (a count that merely stayed put for 100 ms could still be
      // waiting for events a loaded machine delivered later)
      const engine = fleet[Number(d.endpoint.slice(1))] as TestEngine;
      const indexed = () => gw.state().endpoints.find((e) => e.name === d.endpoint)?.cachedBlocks;
      await until(() => engine.server.core.kv.numCachedBlocks > 0 && indexed() === engine.server.core.kv.numCachedBlocks, 10_000, `${d.endpoint}'s KV events in the index`);
    }
  }
  return out;
}

describe('gateway tokenizer: Qwen engines behind the gateway', () => {
  const opened: { gw: Gateway; fleet: TestEngine[] }[] = [];
  afterAll(async () => {
    for (const o of opened) {
      await o.gw.close();
      for (const f of o.fleet) await f.close();
    }
  });

  async function setUp(tokenizer: 'llama3' | undefined, model = QWEN): Promise<{ gw: Gateway; fleet: TestEngine[]; logs: LogSink }> {
    // Qwen3 engines: Qwen2.5-7B's shapes (the engine server's model specs) with Qwen3's tokenizer and chat template, serving the name `model`
    const fleet = await startFleet(2, model === QWEN ? { model: 'Qwen2.5-7B-Instruct' } : { model: 'Qwen2.5-7B-Instruct', tokenizer: 'qwen3', servedModelName: model });
    const logs = new LogSink();
    // prefix affinity alone, and no speculative entries: what the index knows comes from the engines' events
    const gw = await createGateway(
      { server: { port: 0 }, model, ...(tokenizer === undefined ? {} : { tokenizer }), endpoints: endpointsOf(fleet), routing: { scorers: 'pa:1', speculativeTtlMs: 0 } },
      { logStream: logs },
    );
    opened.push({ gw, fleet });
    return { gw, fleet, logs };
  }

  it('the tokenizer the model implies (qwen2.5): predicted cached tokens equal the engines’ on every turn', async () => {
    const { gw, fleet, logs } = await setUp(undefined);
    expect(logs.lines.find((l) => l['msg'] === 'gateway ready')?.['tokenizer']).toBe('qwen2.5');
    expect(logs.lines.some((l) => l['event'] === 'tokenizer-fallback')).toBe(false);
    const turns = await runChat(gw, fleet, logs, 'qwen');
    for (const t of turns) {
      // the index predicts whole blocks; the engine never serves the last prompt token from cache
      expect(t.cached, JSON.stringify(t)).toBe(Math.min(t.predicted, Math.floor((t.promptTokens - 1) / 16) * 16));
    }
    const later = turns.filter((t) => t.turn > 0);
    expect(later.every((t) => t.predicted > 0 && t.cached > 0)).toBe(true);
  });

  it('agentic traffic (the same tools on every request, one system prompt): the gateway’s keys include the tool block, so sessions share it (predicted = engines’ cached tokens)', async () => {
    const { gw, fleet, logs } = await setUp(undefined);
    const turns = await runChat(gw, fleet, logs, 'tools', QWEN, { tools: TOOLS, sharedSystem: true });
    const q = getTokenizer('qwen2.5');
    const firstTurn = (session: number): ChatMessage[] => [
      { role: 'system', content: systemPrompt(0) },
      { role: 'user', content: `Question 0 of session ${session}: what about   ${session} items?` },
    ];
    const tools = TOOLS as ChatTool[];
    // the engines count the tools (the same conversation without them is far shorter)
    const t0 = turns[0] as Turn;
    expect(t0.promptTokens).toBe(q.chatPromptTokenIds(firstTurn(0), { tools }).length);
    expect(t0.promptTokens).toBeGreaterThan(q.chatPromptTokenIds(firstTurn(0)).length + 300);
    // the sessions' first turns share the system turn with its tools: every full block of it is predicted, and served
    const a = q.chatPromptTokenIds(firstTurn(0), { tools });
    const b = q.chatPromptTokenIds(firstTurn(1), { tools });
    let common = 0;
    while (common < a.length && a[common] === b[common]) common++;
    for (const t of turns) expect(t.cached, JSON.stringify(t)).toBe(Math.min(t.predicted, Math.floor((t.promptTokens - 1) / 16) * 16));
    for (const t of turns.filter((x) => x.turn === 0 && x.session > 0)) expect(t.predicted, JSON.stringify(t)).toBeGreaterThanOrEqual(Math.floor(common / 16) * 16);
    expect(turns.every((t) => t.session === 0 && t.turn === 0 ? true : t.predicted > 0 && t.cached > 0)).toBe(true);
  });

  it('tools sent as raw JSON with 1.0 defaults and an integer-like key: the engine renders them as vLLM does (1.0, the order sent) and the gateway predicts the engine’s cached tokens on every turn', async () => {
    const { gw, fleet, logs } = await setUp(undefined);
    const turns = await runChat(gw, fleet, logs, 'floats', QWEN, { toolsJson: FLOAT_TOOLS_JSON, sharedSystem: true });
    const q = getTokenizer('qwen2.5');
    const firstTurn = (session: number): ChatMessage[] => [
      { role: 'system', content: systemPrompt(0) },
      { role: 'user', content: `Question 0 of session ${session}: what about   ${session} items?` },
    ];
    // the tools as kvmgr reads them from the text (what vLLM's json.loads reads: the adapter-vllm tests compare with Python), and as JSON.parse alone gives them
    const bodyText = `{"tools": ${FLOAT_TOOLS_JSON}}`;
    const marked = JSON.parse(bodyText) as { tools: ChatTool[] };
    markRequestToolsJson(marked, bodyText);
    const plain = (JSON.parse(bodyText) as { tools: ChatTool[] }).tools;
    expect(q.renderChat(firstTurn(0), marked)).toContain('"default": 1.0, "minimum": 0.0, "maximum": 2.0}, "top_k": {"type": "integer", "default": 50, "maximum": 1000.0}, "target": {"type": "string"}, "10": ');
    // the engine counts the prompt vLLM renders (three floats written 1.0 instead of 1 per tool: more tokens)
    const t0 = turns[0] as Turn;
    expect(t0.promptTokens).toBe(q.chatPromptTokenIds(firstTurn(0), marked).length);
    expect(t0.promptTokens).toBeGreaterThan(q.chatPromptTokenIds(firstTurn(0), { tools: plain }).length);
    // the gateway's keys are the engine's through the tools block and beyond: predicted = served on every turn
    const a = q.chatPromptTokenIds(firstTurn(0), marked);
    const b = q.chatPromptTokenIds(firstTurn(1), marked);
    let common = 0;
    while (common < a.length && a[common] === b[common]) common++;
    for (const t of turns) expect(t.cached, JSON.stringify(t)).toBe(Math.min(t.predicted, Math.floor((t.promptTokens - 1) / 16) * 16));
    for (const t of turns.filter((x) => x.turn === 0 && x.session > 0)) expect(t.predicted, JSON.stringify(t)).toBeGreaterThanOrEqual(Math.floor(common / 16) * 16);
    for (const t of turns.filter((x) => x.turn > 0)) expect(t.predicted, JSON.stringify(t)).toBeGreaterThan(Math.floor(common / 16) * 16);
  });

  it('Qwen3 with chat_template_kwargs {enable_thinking: false}: the engines count the empty think block, and the gateway predicts the engines’ cached tokens on every turn', async () => {
    const QWEN3 = 'Qwen/Qwen3-8B';
    const { gw, fleet, logs } = await setUp(undefined, QWEN3);
    expect(logs.lines.find((l) => l['msg'] === 'gateway ready')?.['tokenizer']).toBe('qwen3');
    const kw = { enable_thinking: false };
    const turns = await runChat(gw, fleet, logs, 'nothink', QWEN3, { extra: { chat_template_kwargs: kw } });
    const q = getTokenizer('qwen3');
    const first: ChatMessage[] = [
      { role: 'system', content: systemPrompt(0) },
      { role: 'user', content: 'Question 0 of session 0: what about   0 items?' },
    ];
    const t0 = turns[0] as Turn;
    expect(t0.promptTokens).toBe(q.chatPromptTokenIds(first, { chat_template_kwargs: kw }).length);
    // <think>, \n\n, </think>, \n\n
    expect(t0.promptTokens).toBe(q.chatPromptTokenIds(first).length + 4);
    for (const t of turns) expect(t.cached, JSON.stringify(t)).toBe(Math.min(t.predicted, Math.floor((t.promptTokens - 1) / 16) * 16));
    expect(turns.filter((t) => t.turn > 0).every((t) => t.predicted > 0 && t.cached > 0)).toBe(true);
    // add_generation_prompt false on a follow-up (e.g. scoring a finished conversation): the renderer's count, and the cache prediction holds
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const done: ChatMessage[] = [...first, { role: 'assistant', content: 'Zero items.' }];
    const r = await client.chat.completions.create({ model: QWEN3, messages: done, max_tokens: 2, add_generation_prompt: false } as OpenAI.ChatCompletionCreateParamsNonStreaming, { headers: { 'x-request-id': 'nothink-score' } });
    expect(r.usage?.prompt_tokens).toBe(q.chatPromptTokenIds(done, { add_generation_prompt: false }).length);
    const d = logs.decision('nothink-score');
    expect(d.predictedCachedTokens).toBeGreaterThan(0);
    expect(r.usage?.prompt_tokens_details?.cached_tokens).toBe(Math.min(d.predictedCachedTokens, Math.floor(((r.usage?.prompt_tokens ?? 0) - 1) / 16) * 16));
  });

  it('Llama 3’s tokenizer configured for the same engines: the keys do not match (nothing predicted, the engines serve from cache)', async () => {
    const { gw, fleet, logs } = await setUp('llama3');
    const turns = await runChat(gw, fleet, logs, 'llama');
    expect(turns.every((t) => t.predicted === 0)).toBe(true);
    expect(turns.some((t) => t.cached > 0)).toBe(true);
  });

  it('no model given: the fallback (Llama 3.1, kvmgr’s default model) matches default engine servers’ chat blocks, with a warning', async () => {
    const fleet = await startFleet(2);
    const logs = new LogSink();
    const gw = await createGateway({ server: { port: 0 }, endpoints: endpointsOf(fleet), routing: { scorers: 'pa:1', speculativeTtlMs: 0 } }, { logStream: logs });
    opened.push({ gw, fleet });
    expect(logs.lines.filter((l) => l['event'] === 'tokenizer-fallback')).toHaveLength(1);
    expect(logs.lines.find((l) => l['msg'] === 'gateway ready')?.['tokenizer']).toBe('llama3.1');
    const turns = await runChat(gw, fleet, logs, 'nomodel', (fleet[0] as TestEngine).server.config.servedModelName);
    for (const t of turns) expect(t.cached, JSON.stringify(t)).toBe(Math.min(t.predicted, Math.floor((t.promptTokens - 1) / 16) * 16));
    expect(turns.filter((t) => t.turn > 0).every((t) => t.predicted > 0 && t.cached > 0)).toBe(true);
  });

  it('a model name that implies no tokenizer: the gateway starts with Llama 3’s and warns once, naming the model and the key', async () => {
    const logs = new LogSink();
    const gw = await createGateway({ server: { port: 0 }, model: 'mistralai/Mistral-7B-Instruct-v0.3', endpoints: [{ url: 'http://127.0.0.1:9', name: 'e0' }] }, { logStream: logs });
    opened.push({ gw, fleet: [] });
    const warns = logs.lines.filter((l) => l['event'] === 'tokenizer-fallback');
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ level: 40, model: 'mistralai/Mistral-7B-Instruct-v0.3', tokenizer: 'llama3.1' });
    expect(String(warns[0]?.['msg'])).toMatch(/^tokenizer: model "mistralai\/Mistral-7B-Instruct-v0\.3" implies no known tokenizer; using llama3\.1 \(set tokenizer: /);
  });

  it('config: tokenizer defaults from the model, an unknown one stops startup with one line naming the key', () => {
    expect(resolveGatewayConfig({ model: QWEN }).tokenizer).toBe('qwen2.5');
    expect(resolveGatewayConfig({ model: 'Qwen/Qwen3-8B' }).tokenizer).toBe('qwen3');
    expect(resolveGatewayConfig({ model: 'meta-llama/Llama-3.1-8B-Instruct' }).tokenizer).toBe('llama3.1');
    expect(resolveGatewayConfig({}).tokenizer).toBe('llama3.1');
    expect(resolveGatewayConfig({ model: QWEN, tokenizer: 'llama3' }).tokenizer).toBe('llama3');
    // where it came from: the key, the model's name, or the fallback (a model name that implies none)
    expect(resolveGatewayConfig({ model: QWEN, tokenizer: 'llama3' }).tokenizerFrom).toBe('config');
    expect(resolveGatewayConfig({ model: QWEN }).tokenizerFrom).toBe('model');
    expect(resolveGatewayConfig({ model: 'mistralai/Mistral-7B-Instruct-v0.3' })).toMatchObject({ tokenizer: 'llama3.1', tokenizerFrom: 'fallback' });
    let msg = '';
    try {
      resolveGatewayConfig({ model: QWEN, tokenizer: 'qwen4' });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toBe('tokenizer: unknown tokenizer "qwen4": expected one of llama3, llama3.1, llama3.2, qwen2, qwen2.5, qwen3');
  });
});
