import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type ChatTool, completionPromptTokenIds, chatPromptTokenIds, mapVllmMetrics, markRequestToolsJson, renderChatTemplate } from '@kvmgr/adapter-vllm';
import { parseExposition } from '@kvmgr/core';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EngineServer, createEngineServer } from './index.js';

const PROMTOOL = '/usr/bin/promtool';
const hasPromtool = existsSync(PROMTOOL);
if (!hasPromtool && !process.env.CI) console.warn(`server.test.ts: skipping the promtool check: ${PROMTOOL} is missing (install Debian/Ubuntu package "prometheus")`);

function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const LONG = 'The quick brown fox jumps over the lazy dog. '.repeat(12);

let server: EngineServer;
let client: OpenAI;

beforeAll(async () => {
  server = await createEngineServer({ port: 0, timeScale: 20, numGpuBlocks: 2048 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await server.close();
});

async function post(path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<Response> {
  return fetch(`${server.url}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

describe('OpenAI API through the openai SDK', () => {
  it('completes a text prompt; usage counts the prompt tokens and the generated tokens', async () => {
    const r = await client.completions.create({ model: MODEL, prompt: 'Hello there, engine', max_tokens: 7 });
    expect(r.object).toBe('text_completion');
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]?.finish_reason).toBe('length');
    expect(r.usage?.prompt_tokens).toBe((completionPromptTokenIds('Hello there, engine')[0] as number[]).length);
    expect(r.usage?.completion_tokens).toBe(7);
    expect(r.usage?.total_tokens).toBe((r.usage?.prompt_tokens ?? 0) + 7);
    expect(typeof r.choices[0]?.text).toBe('string');
  });

  it('streams a completion: one chunk per token, finish reason on the last, then a usage chunk', async () => {
    const stream = await client.completions.create({ model: MODEL, prompt: [1, 2, 3, 4, 5], max_tokens: 9, stream: true, stream_options: { include_usage: true } });
    let tokens = 0;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        tokens++;
        expect(typeof c.text).toBe('string');
        finish = c.finish_reason ?? finish;
      }
    }
    expect(tokens).toBe(9);
    expect(finish).toBe('length');
    expect(usage?.prompt_tokens).toBe(5);
    expect(usage?.completion_tokens).toBe(tokens);
  });

  it('streams a chat completion with the role first; usage adds up', async () => {
    const messages = [{ role: 'user' as const, content: 'Count to three.' }];
    const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 6, stream: true, stream_options: { include_usage: true } });
    let roleSeen = false;
    let contentChunks = 0;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        if (c.delta.role === 'assistant') roleSeen = true;
        else if (c.delta.content !== undefined) contentChunks++;
      }
    }
    expect(roleSeen).toBe(true);
    expect(contentChunks).toBe(6);
    // the default model is Llama 3.1: its template puts the knowledge-cutoff and date system turn first
    expect(usage?.prompt_tokens).toBe(chatPromptTokenIds(messages, 'llama3.1').length);
    expect(usage?.completion_tokens).toBe(6);
  });

  it('a second identical prompt reports cached_tokens from the prefix cache', async () => {
    const first = await client.completions.create({ model: MODEL, prompt: LONG, max_tokens: 2 });
    const second = await client.completions.create({ model: MODEL, prompt: LONG, max_tokens: 2 });
    const n = first.usage?.prompt_tokens ?? 0;
    expect(first.usage?.prompt_tokens_details?.cached_tokens).toBe(0);
    // Every full block but the one holding the last prompt token (vLLM never serves the last token from cache).
    expect(second.usage?.prompt_tokens_details?.cached_tokens).toBe(Math.floor((n - 1) / 16) * 16);
    expect(second.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThan(0);
  });

  it('chat non-streaming returns an assistant message', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    expect(r.choices[0]?.message.role).toBe('assistant');
    expect(r.usage?.completion_tokens).toBe(3);
  });

  it('lists the served model and answers /health and /version', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect(((await (await fetch(`${server.url}/version`)).json()) as { version: string }).version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('chat with tools: the prompt holds the tools as Llama 3.1’s template writes them (/tokenize agrees), and a later request with the same tools is served the tool block from cache', async () => {
    const tools = [
      { type: 'function' as const, function: { name: 'get_weather', description: 'Get the current weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city'] } } },
      { type: 'function' as const, function: { name: 'search', description: 'Search the web for a query and return the top results', parameters: { type: 'object', properties: { q: { type: 'string' }, limit: { type: 'integer', default: 5 } } } } },
    ];
    const first = [
      { role: 'system' as const, content: 'You are a tool-using assistant.' },
      { role: 'user' as const, content: 'What is the weather in Paris?' },
    ];
    const r1 = await client.chat.completions.create({ model: MODEL, messages: first, tools, max_tokens: 2 });
    const withTools = chatPromptTokenIds(first, 'llama3.1', { tools });
    expect(r1.usage?.prompt_tokens).toBe(withTools.length);
    // the tools are in the prompt: the same conversation without them is shorter
    const bare = (await (await post('/tokenize', { model: MODEL, messages: first })).json()) as { count: number };
    const tokenized = (await (await post('/tokenize', { model: MODEL, messages: first, tools })).json()) as { count: number; tokens: number[] };
    expect(tokenized.tokens).toEqual(withTools);
    expect(tokenized.count).toBeGreaterThan(bare.count + 100);
    // a second conversation with the same tools (tool_choice "none" still renders them, as vLLM) shares the system turn and the tools
    const second = [...first.slice(0, 1), { role: 'user' as const, content: 'Search for the best croissant in Lyon.' }];
    const r2 = await client.chat.completions.create({ model: MODEL, messages: second, tools, tool_choice: 'none', max_tokens: 2 });
    const ids2 = chatPromptTokenIds(second, 'llama3.1', { tools });
    let common = 0;
    while (common < ids2.length && ids2[common] === withTools[common]) common++;
    expect(common).toBeGreaterThan(bare.count);
    expect(r2.usage?.prompt_tokens_details?.cached_tokens).toBe(Math.floor(common / 16) * 16);
  });

  it('tools sent as raw JSON text keep Python’s float literals and key order (vLLM’s json.loads): chat and /tokenize count the prompt with "default": 1.0', async () => {
    const toolsJson = '[{"type": "function", "function": {"name": "sample", "parameters": {"type": "object", "properties": {"t": {"type": "number", "default": 1.0, "maximum": 1e3}, "2": {"type": "string"}}}}}]';
    const messages = [{ role: 'user' as const, content: 'Sample something.' }];
    const body = `{"model": ${JSON.stringify(MODEL)}, "messages": ${JSON.stringify(messages)}, "max_tokens": 2, "tools": ${toolsJson}}`;
    const marked = JSON.parse(`{"tools": ${toolsJson}}`) as { tools: ChatTool[] };
    markRequestToolsJson(marked, `{"tools": ${toolsJson}}`);
    expect(renderChatTemplate(messages, 'llama3.1', undefined, marked)).toContain('"t": {\n                    "type": "number",\n                    "default": 1.0,\n                    "maximum": 1000.0\n                },\n                "2": {');
    const expected = chatPromptTokenIds(messages, 'llama3.1', marked);
    const plain = chatPromptTokenIds(messages, 'llama3.1', { tools: (JSON.parse(toolsJson) as ChatTool[]) });
    expect(expected.length).toBeGreaterThan(plain.length);
    const r = (await (await post('/v1/chat/completions', body)).json()) as { usage: { prompt_tokens: number } };
    expect(r.usage.prompt_tokens).toBe(expected.length);
    const t = (await (await post('/tokenize', body.replace('"max_tokens": 2, ', ''))).json()) as { tokens: number[] };
    expect(t.tokens).toEqual(expected);
  });

  it('chat_template_kwargs, add_generation_prompt: false and continue_final_message render as Llama 3.1’s template does (/tokenize agrees), and a follow-up turn is served from cache', async () => {
    const kw = { date_string: '02 Feb 2030', tools_in_user_message: false, unread_by_the_template: 1 };
    const tools = [{ type: 'function' as const, function: { name: 'lookup', description: 'Look a word up in the dictionary', parameters: { type: 'object', properties: { word: { type: 'string' } } } } }];
    const messages = [
      { role: 'system' as const, content: 'You are a lexicographer who answers in long, careful sentences about words and their histories.' },
      { role: 'user' as const, content: 'Where does the word "croissant" come from?' },
      { role: 'assistant' as const, content: 'The word croissant' },
    ];
    const extra = { chat_template_kwargs: kw, add_generation_prompt: false, continue_final_message: true };
    // the openai SDK forwards fields it does not know
    const r1 = await client.chat.completions.create({ model: MODEL, messages, tools, max_tokens: 2, ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const ids1 = chatPromptTokenIds(messages, 'llama3.1', { tools, ...extra });
    expect(r1.usage?.prompt_tokens).toBe(ids1.length);
    // the kwargs change the prompt: the date, the tools in the system turn, no end of turn after the prefill
    expect(ids1).not.toEqual(chatPromptTokenIds(messages, 'llama3.1', { tools }));
    const tokenized = (await (await post('/tokenize', { model: MODEL, messages, tools, ...extra })).json()) as { tokens: number[] };
    expect(tokenized.tokens).toEqual(ids1);
    // the next turn: the same system turn and tools, the finished answer, a new question, and the generation prompt
    const next = [...messages.slice(0, 2), { role: 'assistant' as const, content: 'The word croissant comes from French.' }, { role: 'user' as const, content: 'And "brioche"?' }];
    const r2 = await client.chat.completions.create({ model: MODEL, messages: next, tools, max_tokens: 2, chat_template_kwargs: kw } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const ids2 = chatPromptTokenIds(next, 'llama3.1', { tools, chat_template_kwargs: kw });
    expect(r2.usage?.prompt_tokens).toBe(ids2.length);
    let common = 0;
    while (common < ids1.length && ids1[common] === ids2[common]) common++;
    expect(common).toBeGreaterThan(100);
    expect(r2.usage?.prompt_tokens_details?.cached_tokens).toBe(Math.floor(common / 16) * 16);
  });

  it('tokenize and detokenize round-trip with the engine tokenizer', async () => {
    const t = (await (await post('/tokenize', { model: MODEL, prompt: 'Hello world' })).json()) as { count: number; tokens: number[] };
    expect(t.tokens).toEqual(completionPromptTokenIds('Hello world')[0]);
    expect(t.count).toBe(t.tokens.length);
    const d = (await (await post('/detokenize', { tokens: t.tokens.slice(1) })).json()) as { prompt: string };
    expect(d.prompt).toBe('Hello world');
  });
});

/** A tool whose parameters nest `depth` objects deep, as raw JSON text (JSON.stringify itself overflows far enough down). */
function deepTool(depth: number): string {
  return `{"type": "function", "function": {"name": "f", "parameters": ${'{"a": '.repeat(depth)}1${'}'.repeat(depth)}}}`;
}

describe('bad requests', () => {
  const cases: [string, string, unknown, number, string | null][] = [
    ['max_tokens beyond the context', '/v1/completions', { prompt: 'x', max_tokens: 10_000_000 }, 400, 'max_tokens'],
    ['a string max_tokens', '/v1/completions', { prompt: 'x', max_tokens: 'ten' }, 400, 'max_tokens'],
    ['n > 1', '/v1/completions', { prompt: 'x', n: 2 }, 400, 'n'],
    ['no prompt', '/v1/completions', { max_tokens: 3 }, 400, 'prompt'],
    ['messages of the wrong type', '/v1/chat/completions', { messages: 'hi' }, 400, 'messages'],
    ['an empty tools array (vLLM: "tools must not be an empty array")', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], tools: [] }, 400, 'tools'],
    ['tools that are not an array', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], tools: { name: 'f' } }, 400, 'tools'],
    ['a tool without function.name', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { description: 'no name' } }] }, 400, 'tools[0].function.name'],
    ['/tokenize with a tool without function.name', '/tokenize', { messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: {} }] }, 400, null],
    // plain bodies (the schema-skipping fast path) with bad chat-template fields
    ['add_generation_prompt that is not a boolean', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], add_generation_prompt: 'no' }, 400, 'add_generation_prompt'],
    ['add_generation_prompt null', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], add_generation_prompt: null }, 400, 'add_generation_prompt'],
    ['continue_final_message with add_generation_prompt', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], add_generation_prompt: true, continue_final_message: true }, 400, 'continue_final_message'],
    ['continue_final_message with add_generation_prompt left at true', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], continue_final_message: true }, 400, 'continue_final_message'],
    ['chat_template_kwargs that are not an object', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: [] }, 400, 'chat_template_kwargs'],
    ['chat_template_kwargs.tokenize (vLLM refuses it)', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { tokenize: true } }, 400, 'chat_template_kwargs.tokenize'],
    ['a date_string that is not a string', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { date_string: 5 } }, 400, 'chat_template_kwargs.date_string'],
    ['builtin_tools (read by Llama 3.1’s template, not supported)', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { builtin_tools: ['brave_search'] } }, 400, 'chat_template_kwargs.builtin_tools'],
    ['/tokenize with both flags', '/tokenize', { messages: [{ role: 'user', content: 'hi' }], add_generation_prompt: true, continue_final_message: true }, 400, null],
    ['/tokenize with a date_string that is not a string', '/tokenize', { messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { date_string: 5 } }, 400, 'chat_template_kwargs.date_string'],
    // nested past the renderer's depth check (1,000 levels, as Python's json.dumps) and past V8's stack: 400, not a 500
    ['tools nested 1,200 levels deep', '/v1/chat/completions', `{"messages": [{"role": "user", "content": "hi"}], "tools": [${deepTool(1200)}]}`, 400, 'tools'],
    ['tools nested 30,000 levels deep', '/v1/chat/completions', `{"messages": [{"role": "user", "content": "hi"}], "tools": [${deepTool(30_000)}]}`, 400, 'tools'],
    ['/tokenize with tools nested 30,000 levels deep', '/tokenize', `{"messages": [{"role": "user", "content": "hi"}], "tools": [${deepTool(30_000)}]}`, 400, 'tools'],
    ['an unknown model (404, as vLLM)', '/v1/completions', { model: 'gpt-17', prompt: 'x' }, 404, 'model'],
    ['several prompts', '/v1/completions', { prompt: ['a', 'b'] }, 400, 'prompt'],
    ['a token id outside the vocabulary', '/v1/completions', { prompt: [1, 999_999] }, 400, 'prompt'],
  ];
  it.each(cases)('%s → %i with an OpenAI error body, and no state changes', async (_name, path, body, status, param) => {
    const before = server.core.metrics;
    const res = await post(path, body);
    expect(res.status).toBe(status);
    const err = (await res.json()) as { error: { message: string; type: string; param: string | null } };
    expect(err.error.type).toBe(status === 404 ? 'not_found_error' : 'invalid_request_error');
    expect(err.error.message.length).toBeGreaterThan(0);
    if (param !== null) expect(err.error.param).toBe(param);
    const after = server.core.metrics;
    expect(after.requestSuccess).toEqual(before.requestSuccess);
    expect(after.prefixCacheQueries).toBe(before.prefixCacheQueries);
  });

  it('malformed JSON → 400, a body over the limit → 413', async () => {
    const res = await post('/v1/completions', '{"prompt": ');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const small = await createEngineServer({ port: 0, numGpuBlocks: 64, bodyLimit: 1024 });
    try {
      const big = await fetch(`${small.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x'.repeat(4096) }) });
      expect(big.status).toBe(413);
      expect(((await big.json()) as { error: { code: string } }).error.code).toBe('FST_ERR_CTP_BODY_TOO_LARGE');
    } finally {
      await small.close();
    }
  });
});

describe('/metrics', () => {
  it.runIf(hasPromtool || process.env.CI)('promtool parses it; the only findings are the lint of vLLM names', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const { code, output } = await promtoolCheck(text);
    expect([0, 3], output).toContain(code);
    for (const f of output.split('\n').filter((l) => l.trim() !== '')) {
      expect(f).toMatch(/^vllm:\S+ metric names should not contain ':'$|^vllm:iteration_tokens_total non-counter metrics should not have "_total" suffix$/);
    }
  });

  it('the vLLM scraper reads the running/waiting/KV usage/prefix hits the engine holds, and cache_config_info', async () => {
    // Hold requests in flight so the gauges are not all zero.
    const streams = await Promise.all(
      [0, 1, 2].map((i) => client.completions.create({ model: MODEL, prompt: `${LONG} ${i}`, max_tokens: 400, stream: true })),
    );
    const iters = streams.map((s) => s[Symbol.asyncIterator]());
    await Promise.all(iters.map((it) => it.next()));
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const m = server.core.metrics; // a step may end between the scrape and this read
    const snap = mapVllmMetrics(parseExposition(text), { instanceId: 'e0', role: 'both', timeUs: 0 });
    expect(snap.running).toBeGreaterThanOrEqual(1);
    expect(snap.running + snap.waiting).toBe(m.numRequestsRunning + m.numRequestsWaiting);
    expect(Math.abs(snap.kvUtilization - m.kvCacheUsagePerc)).toBeLessThanOrEqual(3 / 2048);
    expect(snap.prefixCacheHits).toBe(m.prefixCacheHits);
    expect(snap.prefixCacheQueries).toBe(m.prefixCacheQueries);
    expect(snap.totalBlocks).toBe(2048);
    expect(snap.blockSize).toBe(16);
    for (const s of streams) s.controller.abort();
  });
});
