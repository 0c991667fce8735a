import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChatCompletionRequestSchema, CompletionRequestSchema } from '@kvmgr/adapter-vllm';
import { LLAMA3_VOCAB_SIZE, PLAIN_FIELD_CHECKS, isPlainRequest, parseGenerationRequest } from './openai-requests.js';

const ctx = { modelNames: ['served', 'alias'], maxModelLen: 4096 };

/** A token or something that is not one (what the schema must refuse with its own message). */
const element = fc.oneof(
  { weight: 20, arbitrary: fc.integer({ min: 0, max: LLAMA3_VOCAB_SIZE + 10 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, -0, 1.5, '7', null, true, [3], 2 ** 53, Number.MAX_SAFE_INTEGER) },
);
const prompt = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.integer({ min: 0, max: 128_000 }), { minLength: 1, maxLength: 40 }) },
  { weight: 3, arbitrary: fc.array(element, { minLength: 0, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('hello', ['a', 'b'], [[1, 2]], [], 5, undefined) },
);
const body = fc.record(
  {
    prompt,
    max_tokens: fc.oneof(fc.integer({ min: -2, max: 5000 }), fc.constantFrom<unknown>('8', null, 2.5)),
    min_tokens: fc.integer({ min: 0, max: 20 }),
    model: fc.constantFrom<unknown>('served', 'alias', 'other', 3),
    stream: fc.oneof(fc.boolean(), fc.constant<unknown>('yes')),
    stop_token_ids: fc.oneof(fc.array(fc.integer({ min: 0, max: 100 }), { maxLength: 3 }), fc.constant<unknown>([-1])),
    temperature: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), fc.constant<unknown>('hot')),
  },
  { requiredKeys: [] },
);

describe('parseGenerationRequest', () => {
  it('a token-id prompt checked in one loop parses exactly as the schema parses it (same request, same error body)', () => {
    fc.assert(
      fc.property(body, (b) => {
        const fast = parseGenerationRequest('completion', b, ctx);
        // The reference: the same prompt as a one-element list of token-id arrays never takes the
        // fast path; the schema checks it element by element and yields the same single prompt.
        const p = (b as { prompt?: unknown }).prompt;
        const viaSchema = Array.isArray(p) && p.length > 0 && p.every((t) => typeof t === 'number') ? parseGenerationRequest('completion', { ...b, prompt: [p] }, ctx) : null;
        if (viaSchema !== null) {
          // a list of arrays names its elements prompt[0][i]; a flat array names them prompt[i]
          if (!viaSchema.ok && !fast.ok) expect(fast.error.status).toBe(viaSchema.error.status);
          else expect(fast).toEqual(viaSchema);
        }
        if (fast.ok && viaSchema !== null) {
          expect(fast.value.promptTokenIds).toEqual(p);
          expect(fast.value.promptTokenIds.every((t) => Number.isSafeInteger(t) && t >= 0 && t < LLAMA3_VOCAB_SIZE)).toBe(true);
        }
      }),
      { numRuns: 600 },
    );
  });

  it('bad token ids get the schema errors, naming the element', () => {
    const r = parseGenerationRequest('completion', { prompt: [1, -2, 3], max_tokens: 4 }, ctx);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.body.error).toMatchObject({ param: 'prompt[1]', message: 'prompt[1]: expected a token id (non-negative integer), got -2' });
    const big = parseGenerationRequest('completion', { prompt: [1, 2 ** 53], max_tokens: 4 }, ctx);
    expect(big.ok).toBe(false);
    const ok = parseGenerationRequest('completion', { prompt: [1, Number.MAX_SAFE_INTEGER], max_tokens: 4 }, ctx);
    expect(ok.ok).toBe(false);
    if (!ok.ok) expect(ok.error.body.error.message).toBe(`prompt: token id ${Number.MAX_SAFE_INTEGER} is out of vocabulary (size ${LLAMA3_VOCAB_SIZE})`);
  });

  it('other fields are still checked when the prompt is token ids', () => {
    const r = parseGenerationRequest('completion', { prompt: [1, 2, 3], max_tokens: 'eight' }, ctx);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.body.error.param).toBe('max_tokens');
    const s = parseGenerationRequest('completion', { prompt: [1, 2, 3], max_tokens: 4, stream: 'yes' }, ctx);
    expect(s.ok).toBe(false);
    if (!s.ok) expect(s.error.body.error.param).toBe('stream');
  });
});

/** A value of each modelled field: valid ones, nulls, and ones the schema refuses. */
const anyValue = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -0, 1, -1, 2, 0.5, 1.5, -2, -2.5, 3, 2 ** 53, 'x', '', [], ['a'], ['a', 1], {}, [1, 2]),
  fc.constantFrom<unknown>({ include_usage: true }, { include_usage: 'yes' }, { continuous_usage_stats: false, other: 1 }, { include_usage: null }, { do_remote_decode: true }),
  fc.double({ noNaN: true }),
  fc.integer({ min: -5, max: 5000 }),
);
const message = fc.oneof(
  fc.record({ role: fc.constantFrom<unknown>('system', 'user', 'assistant', 'tool', 'developer', 'robot', 3), content: fc.oneof(fc.string(), fc.constantFrom<unknown>(null, 5, [{ type: 'text', text: 'hi' }])) }, { requiredKeys: ['role'] }),
  fc.record({ role: fc.constant('user'), content: fc.string(), name: fc.oneof(fc.string(), fc.constant<unknown>(null)), tool_call_id: fc.oneof(fc.string(), fc.constant<unknown>(7)), extra: anyValue }, { requiredKeys: ['role'] }),
  fc.record({ role: fc.constant('assistant'), content: fc.string(), tool_calls: fc.constantFrom<unknown>([], [{ id: 'c', type: 'function' }], null) }),
  fc.constantFrom<unknown>(null, 'hi', [], { role: 'assistant', content: null, tool_calls: [] }),
);
const fieldsOf = (kind: 'completion' | 'chat') =>
  fc.dictionary(fc.constantFrom(...Object.keys(PLAIN_FIELD_CHECKS[kind]).filter((k) => k !== 'prompt' && k !== 'messages'), 'stop_token_ids', 'top_k'), anyValue, { maxKeys: 6 });

describe('isPlainRequest (the bodies that skip the schema)', () => {
  it('checks every field each schema models, and no other', () => {
    expect(Object.keys(PLAIN_FIELD_CHECKS.completion).sort()).toEqual(Object.keys(CompletionRequestSchema.shape).sort());
    expect(Object.keys(PLAIN_FIELD_CHECKS.chat).sort()).toEqual(Object.keys(ChatCompletionRequestSchema.shape).sort());
  });

  it('accepts only bodies the schema accepts and returns unchanged', () => {
    const check = (kind: 'completion' | 'chat', b: Record<string, unknown>): void => {
      if (!isPlainRequest(kind, b)) return;
      const r = (kind === 'completion' ? CompletionRequestSchema : ChatCompletionRequestSchema).safeParse(b);
      expect(r.success).toBe(true);
      expect(r.data).toEqual(b);
    };
    fc.assert(
      fc.property(fieldsOf('completion'), (f) => check('completion', { ...f, prompt: [1, 2, 3] })),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fieldsOf('chat'), fc.array(message, { maxLength: 3 }), (f, messages) => check('chat', { ...f, messages })),
      { numRuns: 2000 },
    );
  });

  it('a plain body parses exactly as through the schema (same request, same error)', () => {
    // `kv_transfer_params` (even undefined) sends the same body down the schema path.
    const viaSchema = (b: object) => ('kv_transfer_params' in b ? b : { ...b, kv_transfer_params: undefined });
    const served = fc.constantFrom<unknown>('served', 'alias', 'other');
    fc.assert(
      fc.property(fieldsOf('completion'), served, prompt, (f, model, p) => {
        const b = { ...f, model, prompt: p };
        expect(parseGenerationRequest('completion', b, ctx)).toEqual(parseGenerationRequest('completion', viaSchema(b), ctx));
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fieldsOf('chat'), served, fc.array(message, { maxLength: 3 }), (f, model, messages) => {
        const b = { ...f, model, messages };
        expect(parseGenerationRequest('chat', b, ctx)).toEqual(parseGenerationRequest('chat', viaSchema(b), ctx));
      }),
      { numRuns: 1000 },
    );
  });

  it('takes the common shapes (benchmarks, gateways) and leaves null, P/D and tool calls to the schema', () => {
    expect(isPlainRequest('completion', { prompt: [1, 2], max_tokens: 24, min_tokens: 24, ignore_eos: true, stream: true, stream_options: { include_usage: true } })).toBe(true);
    expect(isPlainRequest('chat', { model: 'served', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 8, temperature: 0.7 })).toBe(true);
    expect(isPlainRequest('completion', { prompt: [1], max_tokens: null })).toBe(false);
    expect(isPlainRequest('completion', { prompt: [1], kv_transfer_params: { do_remote_decode: true } })).toBe(false);
    expect(isPlainRequest('chat', { messages: [{ role: 'assistant', tool_calls: [] }] })).toBe(false);
    expect(isPlainRequest('chat', { model: 'served' })).toBe(false);
    // tools are validated and reshaped by the schema, even an empty or a well-formed list
    expect(isPlainRequest('chat', { messages: [{ role: 'user', content: 'hi' }], tools: [] })).toBe(false);
    expect(isPlainRequest('chat', { messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: 'auto' })).toBe(false);
  });
});
