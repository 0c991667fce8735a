/**
 * Llama 3 BPE encoding through the exact, bounded caches of `byte-level-bpe.ts`
 * ({@link CachedBpeEncoder}; the module comment there says why they are exact):
 * `llama3-tokenizer-js` splits at special tokens, then with one pre-token regex, and encodes each
 * pre-token on its own, with a cache per `encode` call only.
 *
 * @see belladoreai/llama3-tokenizer-js:src/llama3-tokenizer.js (`encode`: special-token split,
 *   pre-token regex, per-pre-token BPE with `ignore_merges`)
 */
import llama3Tokenizer from 'llama3-tokenizer-js';
import { type BpeEncoding, CachedBpeEncoder, type CachedLlama3EncoderOptions } from './byte-level-bpe.js';

export type { CachedLlama3EncoderOptions, TokenizerCacheStats } from './byte-level-bpe.js';

/**
 * The special-token split `llama3-tokenizer-js` applies first (its default `specialTokenRegex`):
 * Llama 3.1's named special tokens and `<|reserved_special_token_0..247|>`.
 */
const SPECIAL_TOKEN_RE =
  /<\|(?:begin_of_text|end_of_text|start_header_id|end_header_id|eot_id|eom_id|python_tag|finetune_right_pad_id|reserved_special_token_(?:[0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-3][0-9]|24[0-7]))\|>/g;

/**
 * Llama 3's pre-tokenizer regex as `llama3-tokenizer-js` compiles it (tiktoken's cl100k pattern;
 * the case-insensitive contraction group spelled out for JavaScript).
 */
const PRETOKEN_SOURCE = "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const PRETOKEN_RE = new RegExp(PRETOKEN_SOURCE, 'gu');
/** Anchored at 0: does a pre-token, alone, split into exactly itself? */
const PRETOKEN_STICKY_RE = new RegExp(PRETOKEN_SOURCE, 'uy');

const NO_SPECIALS = { bos: false, eos: false } as const;

/** Llama 3 (`llama3-tokenizer-js` with `{ bos: false, eos: false }`) for {@link CachedBpeEncoder}. */
const LLAMA3_BPE: BpeEncoding = {
  specialRe: SPECIAL_TOKEN_RE,
  specialId: (token) => llama3Tokenizer.vocabByString.get(token) as number,
  pretokenRe: PRETOKEN_RE,
  pretokenStickyRe: PRETOKEN_STICKY_RE,
  encodeRaw: (text) => llama3Tokenizer.encode(text, NO_SPECIALS),
};

/**
 * Llama 3 encoding (as `llama3-tokenizer-js` with `{ bos: false, eos: false }`) through the two
 * bounded caches of {@link CachedBpeEncoder}.
 */
export class CachedLlama3Encoder extends CachedBpeEncoder {
  /** @param options - cache bounds, see {@link CachedLlama3EncoderOptions}. */
  constructor(options: CachedLlama3EncoderOptions = {}) {
    super(LLAMA3_BPE, options);
  }
}
