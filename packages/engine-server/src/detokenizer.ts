/**
 * Incremental detokenization, as vLLM streams text: each new token's text is the difference
 * between decoding a short window with and without it, and a token that ends inside a multi-byte
 * character (decoded as U+FFFD) is held back until the character completes. O(window) per token,
 * so long outputs do not cost O(n²).
 *
 * Fast path: Llama 3's and Qwen's tokenizers are byte-level BPE, so a text is the UTF-8 decoding of its tokens'
 * bytes concatenated; when nothing is held back and the new token decodes alone to whole
 * characters, its text is exactly the delta. Those texts are cached per token id (at most the
 * vocabulary), which saves the two window decodes on nearly every token of a stream. The cache is
 * an array indexed by token id: a `Map` of the same entries (tens of thousands of random ids of a
 * 128k vocabulary) costs a hash probe with cache misses on every token of every stream.
 *
 * @see vllm-project/vllm:vllm/transformers_utils/detokenizer_utils.py (detokenize_incrementally)
 */
import { DEFAULT_TOKENIZER, type Tokenizer, getTokenizer } from '@kvmgr/adapter-vllm';

/** Tokens of context decoded before the new ones, so merges at the boundary come out right. */
const CONTEXT = 5;

/**
 * Per tokenizer, indexed by token id (one slot per id of the vocabulary, made once): the text of a
 * single token that decodes to whole characters (no U+FFFD), `null` for the others, `undefined`
 * until first seen.
 */
const tokenTexts = new Map<Tokenizer, (string | null | undefined)[]>();

function tokenTextOf(tokenizer: Tokenizer): (string | null | undefined)[] {
  let m = tokenTexts.get(tokenizer);
  if (m === undefined) {
    m = new Array<string | null | undefined>(tokenizer.vocabSize).fill(undefined);
    tokenTexts.set(tokenizer, m);
  }
  return m;
}

/** Streams the text of a growing sequence of output token ids. */
export class IncrementalDetokenizer {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  /** All text emitted so far. */
  text = '';
  private readonly tokenText: (string | null | undefined)[];
  private readonly decode: (tokenIds: readonly number[]) => string;

  /** @param tokenizer - the model's tokenizer. @default Llama 3's */
  constructor(private readonly tokenizer: Tokenizer = getTokenizer(DEFAULT_TOKENIZER)) {
    this.tokenText = tokenTextOf(tokenizer);
    this.decode = tokenizer.decode;
  }

  private wholeTokenText(tokenId: number): string | null {
    const t = this.tokenText[tokenId];
    return t !== undefined ? t : this.firstTokenText(tokenId);
  }

  /** Decodes a token not seen before and caches its text when it is an id of the vocabulary (the prompt check and the token generator keep output ids below it). */
  private firstTokenText(tokenId: number): string | null {
    const s = this.tokenizer.decodeToken(tokenId);
    const t = s.includes('\uFFFD') ? null : s;
    if (Number.isInteger(tokenId) && tokenId >= 0 && tokenId < this.tokenText.length) this.tokenText[tokenId] = t;
    return t;
  }

  /**
   * Adds one token.
   * @returns the new text (may be empty while a multi-byte character is incomplete).
   */
  push(tokenId: number): string {
    this.ids.push(tokenId);
    if (this.readOffset === this.ids.length - 1) {
      const whole = this.wholeTokenText(tokenId);
      if (whole !== null && whole !== '') {
        this.readOffset = this.ids.length;
        this.prefixOffset = Math.max(0, this.readOffset - CONTEXT);
        this.text += whole;
        return whole;
      }
    }
    const prefix = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.decode(this.ids.slice(this.prefixOffset));
    if (full.length <= prefix.length || full.endsWith('\uFFFD')) return '';
    const delta = full.slice(prefix.length);
    this.readOffset = this.ids.length;
    this.prefixOffset = Math.max(0, this.readOffset - CONTEXT);
    this.text += delta;
    return delta;
  }

  /** Text still held back (an incomplete character at the end), decoded as it is; call once at the end. */
  flush(): string {
    if (this.readOffset === this.ids.length) return '';
    const prefix = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.decode(this.ids.slice(this.prefixOffset));
    this.readOffset = this.ids.length;
    const delta = full.slice(prefix.length);
    this.text += delta;
    return delta;
  }
}
