import fc from 'fast-check';
import llama3Tokenizer from 'llama3-tokenizer-js';
import { describe, expect, it } from 'vitest';
import { CachedLlama3Encoder } from './tokenizer-cache.js';
import { chatPromptTokenIds, encodeText, renderChatTemplate } from './tokenizer.js';

/** The reference: the library from scratch, as `encodeText` used to call it. */
const reference = (text: string): number[] => llama3Tokenizer.encode(text, { bos: false, eos: false });

/**
 * Fragments that exercise every branch of the pre-token regex and of the special-token split:
 * words and contractions in mixed case, digit runs (split by three), runs of spaces, tabs and
 * line breaks (the `\s+(?!\S)` backtracking), punctuation runs, letters outside ASCII, CJK,
 * emoji (surrogate pairs), a combining mark, lone surrogates, real special tokens and strings
 * that only look like them.
 */
const FRAGMENTS = [
  'hello',
  ' world',
  'Hello',
  ' grabbed',
  "'s",
  "'LL",
  "'Re",
  " don't",
  '1234567',
  ' 42',
  '3.14',
  ' ',
  '   ',
  '\t',
  '\n',
  '\r\n',
  ' \n ',
  '\n\n\n',
  '...',
  ' !?',
  '#####',
  ' (x)',
  'é',
  'ñandú',
  ' Ꙋ',
  '镇',
  '東京',
  '🦙',
  '👩‍💻',
  'e\u0301',
  '\ud800',
  '\udfff',
  '<|eot_id|>',
  '<|start_header_id|>',
  '<|end_header_id|>',
  '<|begin_of_text|>',
  '<|reserved_special_token_247|>',
  '<|reserved_special_token_248|>',
  '<|reserved_special_token_010|>',
  '<|eot_id',
  '<|',
  '|>',
];

const fragment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...FRAGMENTS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(' ', '\n', '\t', 'a', 'B', '1', '.', '\u00a0', '\u3000'), maxLength: 16 }) },
);
const text = fc.array(fragment, { maxLength: 40 }).map((parts) => parts.join(''));

describe('CachedLlama3Encoder (segment and pre-token caches)', () => {
  it('gives the library’s ids for random texts, repeated, with caches small enough to evict', () => {
    // one long-lived cache across all runs, as in a server; one tiny cache per run
    const roomy = new CachedLlama3Encoder({ minSegmentChars: 1 });
    fc.assert(
      fc.property(fc.array(text, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { minLength: 1, maxLength: 30 }), (texts, picks) => {
        // tiny bounds: entries are evicted and re-computed all the time
        const small = new CachedLlama3Encoder({ maxPieces: 8, maxSegments: 4, maxSegmentSize: 64, minSegmentChars: 1 });
        for (const k of picks) {
          const t = texts[k % texts.length] as string;
          const want = reference(t);
          expect(small.encode(t)).toEqual(want);
          expect(roomy.encode(t)).toEqual(want);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('gives the library’s ids for chat conversations that grow turn by turn', () => {
    const message = fc.record({ role: fc.constantFrom('system' as const, 'user' as const, 'assistant' as const), content: text });
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 6 }), (messages) => {
        const enc = new CachedLlama3Encoder({ maxPieces: 256, maxSegments: 16 });
        for (let n = 1; n <= messages.length; n++) {
          const rendered = renderChatTemplate(messages.slice(0, n));
          expect(enc.encode(rendered)).toEqual(reference(rendered));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('serves a repeated segment from the cache, and a new text mostly from cached pre-tokens', () => {
    const enc = new CachedLlama3Encoder();
    const system = 'You are a careful assistant. '.repeat(40);
    const a = `<|start_header_id|>system<|end_header_id|>\n\n${system}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nfirst question here<|eot_id|>`;
    const b = `<|start_header_id|>system<|end_header_id|>\n\n${system}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nsecond question here<|eot_id|>`;
    expect(enc.encode(a)).toEqual(reference(a));
    const s0 = enc.stats();
    expect(s0.segmentHits).toBe(0);
    expect(enc.encode(b)).toEqual(reference(b));
    const s1 = enc.stats();
    // the system prompt is one segment (≥ 32 chars) seen before; the new user turn is too short to keep
    expect(s1.segmentHits).toBe(1);
    expect(s1.segmentMisses).toBe(s0.segmentMisses);
    // "second" is the only pre-token not seen before
    expect(s1.pieceMisses - s0.pieceMisses).toBe(1);
    expect(s1.wholeSegmentFallbacks).toBe(0);
  });

  it('returns arrays the caller owns: changing one does not change the next answer', () => {
    const enc = new CachedLlama3Encoder();
    const t = 'a sentence long enough to be kept as a segment in the cache';
    const first = enc.encode(t);
    const want = [...first];
    first.fill(0);
    expect(enc.encode(t)).toEqual(want);
    expect(enc.encode(t)).toEqual(reference(t));
  });

  it('respects its bounds', () => {
    const enc = new CachedLlama3Encoder({ maxPieces: 16, maxSegments: 64, maxSegmentSize: 1000 });
    for (let i = 0; i < 200; i++) enc.encode(`distinct segment number ${i} with words w${i} x${i * 7}`);
    const s = enc.stats();
    expect(s.pieces).toBeLessThanOrEqual(16);
    // each kept segment costs ≥ its length (≥ 32) + 4 per id + 1, so at most 1000 / 60 of them fit
    expect(s.segments).toBeGreaterThan(0);
    expect(s.segments).toBeLessThanOrEqual(Math.floor(1000 / 60));
  });

  it('encodeText and chatPromptTokenIds use the cache and keep the known ids', () => {
    expect(encodeText('hello world')).toEqual([15339, 1917]);
    expect(chatPromptTokenIds([{ role: 'user', content: 'hi' }])).toEqual([128000, 128006, 882, 128007, 271, 6151, 128009, 128006, 78191, 128007, 271]);
  });
});
