import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import {
  ChatCompletionChunkSchema,
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  CompletionResponseSchema,
  KvTransferParamsSchema,
} from './openai-api.js';
import { parseOpenAiRequest } from './openai-api-errors.js';
import { SSE_DONE, formatSseChunk, parseSseStream } from './openai-api-sse.js';

describe('/v1/completions request', () => {
  it.each([
    ['a string', 'Hello'],
    ['token ids', [1, 2, 3]],
    ['a list of strings', ['a', 'b']],
    ['a list of token-id arrays', [[1, 2], [3]]],
  ])('accepts prompt as %s', (_n, prompt) => {
    const r = parseOpenAiRequest(CompletionRequestSchema, { model: 'm', prompt, max_tokens: 8 });
    expect(r).toEqual({ ok: true, value: { model: 'm', prompt, max_tokens: 8 } });
  });

  it('passes unknown fields through (vLLM extensions) and keeps kv_transfer_params', () => {
    const body = {
      prompt: 'x',
      stream: true,
      stream_options: { include_usage: true },
      top_k: 20,
      repetition_penalty: 1.1,
      kv_transfer_params: { do_remote_prefill: true, remote_engine_id: 'e1', remote_block_ids: [4, 5], remote_host: '127.0.0.2', remote_port: 5600, extra: 'kept' },
    };
    const r = parseOpenAiRequest(CompletionRequestSchema, body);
    expect(r).toEqual({ ok: true, value: body });
  });

  it.each([
    ['missing prompt', { model: 'm' }, 'prompt', 'prompt: is required (expected a string, an array of token ids, an array of strings, or an array of token-id arrays)'],
    ['prompt as a number', { prompt: 5 }, 'prompt', 'prompt: expected a string, an array of token ids, an array of strings, or an array of token-id arrays'],
    ['negative token id', { prompt: [1, -2] }, 'prompt[1]', 'prompt[1]: expected a token id (non-negative integer), got -2'],
    ['string in a token-id list', { prompt: [[1], ['a']] }, 'prompt[1][0]', 'prompt[1][0]: expected a token id (non-negative integer), got "a"'],
    ['negative max_tokens', { prompt: 'x', max_tokens: -1 }, 'max_tokens', 'max_tokens: expected a number >= 0, got -1'],
    ['string temperature', { prompt: 'x', temperature: 'hot' }, 'temperature', 'temperature: expected number, got "hot"'],
    ['top_p 0', { prompt: 'x', top_p: 0 }, 'top_p', 'top_p: expected a number > 0, got 0'],
    ['include_usage as string', { prompt: 'x', stream_options: { include_usage: 'yes' } }, 'stream_options.include_usage', 'stream_options.include_usage: expected boolean, got "yes"'],
    ['bad remote_port', { prompt: 'x', kv_transfer_params: { remote_port: 70000 } }, 'kv_transfer_params.remote_port', 'kv_transfer_params.remote_port: expected a number <= 65535, got 70000'],
  ])('rejects %s with a 400 naming the field', (_n, body, param, message) => {
    const r = parseOpenAiRequest(CompletionRequestSchema, body);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.status).toBe(400);
    expect(r.error.body.error).toMatchObject({ type: 'invalid_request_error', param, code: 'invalid_value' });
    expect(r.error.body.error.message.startsWith(message)).toBe(true);
    expect(r.error.body.error.message).not.toContain('\n');
  });

  it('rejects a body that is not an object', () => {
    const r = parseOpenAiRequest(CompletionRequestSchema, [1]);
    expect(r).toEqual({
      ok: false,
      error: { status: 400, body: { error: { message: 'request body: expected a JSON object, got an array', type: 'invalid_request_error', param: null, code: 'invalid_value' } } },
    });
  });
});

describe('/v1/chat/completions request', () => {
  it('accepts string content and content-part arrays', () => {
    const body = {
      model: 'm',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AA' } }] },
      ],
      max_completion_tokens: 32,
    };
    expect(parseOpenAiRequest(ChatCompletionRequestSchema, body)).toEqual({ ok: true, value: body });
  });

  it.each([
    ['no messages', { messages: [] }, 'messages', 'messages: expected at least one message'],
    ['unknown role', { messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role', 'messages[0].role: expected one of "system", "developer", "user", "assistant", "tool", got "robot"'],
    ['unknown part type', { messages: [{ role: 'user', content: [{ type: 'pdf' }] }] }, 'messages[0].content[0].type', 'messages[0].content[0].type: expected a content part with type "text"'],
    ['text part without text', { messages: [{ role: 'user', content: [{ type: 'text' }] }] }, 'messages[0].content[0].text', 'messages[0].content[0].text: is required (expected string)'],
  ])('rejects %s with a 400 naming the field', (_n, body, param, message) => {
    const r = parseOpenAiRequest(ChatCompletionRequestSchema, body);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.body.error.param).toBe(param);
    expect(r.error.body.error.message.startsWith(message), r.error.body.error.message).toBe(true);
  });
});

describe('responses and kv_transfer_params', () => {
  it('reads a completion response with usage.prompt_tokens_details.cached_tokens and P/D params', () => {
    const res = {
      id: 'cmpl-1',
      object: 'text_completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, text: 'hi', logprobs: null, finish_reason: 'length', stop_reason: null }],
      usage: { prompt_tokens: 40, completion_tokens: 1, total_tokens: 41, prompt_tokens_details: { cached_tokens: 32 } },
      kv_transfer_params: { do_remote_prefill: true, do_remote_decode: false, remote_block_ids: [1, 2, 3], remote_engine_id: 'p0', remote_host: 'h', remote_port: 1 },
    };
    const r = CompletionResponseSchema.parse(res);
    expect(r.usage?.prompt_tokens_details?.cached_tokens).toBe(32);
    expect(KvTransferParamsSchema.parse({ do_remote_decode: true })).toEqual({ do_remote_decode: true });
  });
});

describe('SSE', () => {
  const chunk = (content: string | null, finish: string | null = null) => ({
    id: 'chat-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta: { content }, finish_reason: finish }],
  });
  const usage = { id: 'chat-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } };

  async function* bytes(text: string, size: number) {
    const b = new TextEncoder().encode(text);
    for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
  }
  const collect = async <T>(it: AsyncIterable<T>) => {
    const out: T[] = [];
    for await (const x of it) out.push(x);
    return out;
  };

  it('formats chunks and the terminator', () => {
    expect(formatSseChunk({ a: 1 })).toBe('data: {"a":1}\n\n');
    expect(SSE_DONE).toBe('data: [DONE]\n\n');
  });

  it('round trip: chunks split across arbitrary byte boundaries (multi-byte UTF-8 included) come back, stopping at [DONE]', async () => {
    const text = `: keep-alive\n\n${formatSseChunk(chunk('Grüße '))}${formatSseChunk(chunk('🙂', 'stop'))}${formatSseChunk(usage)}${SSE_DONE}${formatSseChunk(chunk('after done'))}`;
    for (const size of [1, 3, 7, 1000]) {
      const got = await collect(parseSseStream(bytes(text, size), { schema: ChatCompletionChunkSchema }));
      expect(got).toEqual([chunk('Grüße '), chunk('🙂', 'stop'), usage]);
    }
  });

  it('accepts CRLF line ends and multi-line data', async () => {
    const got = await collect(parseSseStream(['data: {"a":\r\ndata: 1}\r\n\r\ndata: [DONE]\r\n\r\n']));
    expect(got).toEqual([{ a: 1 }]);
  });

  it.each([
    ['a stream without [DONE]', formatSseChunk(chunk('x')), /ended after 1 events without data: \[DONE\]/],
    ['an event that is not JSON', 'data: hello\n\n', /SSE event 1: expected JSON or \[DONE\]/],
    ['a chunk that fails the schema', `${formatSseChunk({ ...chunk('x'), object: 'nope' })}${SSE_DONE}`, /SSE event 1: object: /],
  ])('rejects %s with KVMGR_PROTOCOL', async (_n, text, message) => {
    const err = await collect(parseSseStream([text], { schema: ChatCompletionChunkSchema })).catch((e) => e);
    expect(isKvmgrError(err, 'KVMGR_PROTOCOL')).toBe(true);
    expect(err.message).toMatch(message);
  });
});
