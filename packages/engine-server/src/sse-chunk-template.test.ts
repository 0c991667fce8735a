import { formatSseChunk } from '@kvmgr/adapter-vllm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SseChunkTemplate } from './sse-chunk-template.js';

// The chunk objects the server built per token before the template (vLLM's shapes and key order).
const completionChunk = (h: { id: string; created: number; model: string }, text: string, finish: string | null) => ({
  id: h.id,
  object: 'text_completion',
  created: h.created,
  model: h.model,
  choices: [{ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null }],
});
const chatChunk = (h: { id: string; created: number; model: string }, text: string, finish: string | null) => ({
  id: h.id,
  object: 'chat.completion.chunk',
  created: h.created,
  model: h.model,
  choices: [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: finish }],
});

describe('SseChunkTemplate', () => {
  it('writes byte for byte what formatSseChunk writes for the chunk object (random texts, ids, model names)', () => {
    const header = fc.record({ id: fc.string(), created: fc.integer({ min: 0, max: 2 ** 32 }), model: fc.string({ unit: 'binary' }) });
    const finish = fc.constantFrom(null, 'stop', 'length', 'abort');
    fc.assert(
      fc.property(header, fc.array(fc.tuple(fc.string({ unit: 'binary' }), finish), { minLength: 1, maxLength: 8 }), (h, tokens) => {
        const comp = new SseChunkTemplate({ ...h, object: 'text_completion' }, false);
        const chat = new SseChunkTemplate({ ...h, object: 'chat.completion.chunk' }, true);
        for (const [text, f] of tokens) {
          expect(comp.chunk(text, f)).toBe(formatSseChunk(completionChunk(h, text, f)));
          expect(chat.chunk(text, f)).toBe(formatSseChunk(chatChunk(h, text, f)));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('escapes quotes, backslashes, newlines and lone surrogates in the text as JSON does', () => {
    const t = new SseChunkTemplate({ id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm"\\' }, false);
    const s = t.chunk('a"b\\c\nd\u2028\uD800', 'length');
    expect(s).toBe('data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m\\"\\\\","choices":[{"index":0,"text":"a\\"b\\\\c\\nd\u2028\\ud800","logprobs":null,"finish_reason":"length","stop_reason":null}]}\n\n');
    expect(JSON.parse(s.slice(6))).toEqual(completionChunk({ id: 'cmpl-1', created: 1, model: 'm"\\' }, 'a"b\\c\nd\u2028\uD800', 'length'));
  });
});
