import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LLAMA3_VOCAB_SIZE, parseGenerationRequest } from './openai-requests.js';

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
