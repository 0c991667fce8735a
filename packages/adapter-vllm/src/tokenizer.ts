/**
 * Prompt → token ids, the way kvmgr's gateway and engine server both do it, so that the block
 * keys a gateway computes for a request are the keys the engine caches it under.
 *
 * The vocabulary is Llama 3's (`llama3-tokenizer-js`, which ships it): a completion prompt
 * string gets `<|begin_of_text|>` then its tokens (as vLLM's `add_special_tokens=True` does for
 * Llama 3); a chat conversation is rendered with Llama 3's chat template (generation prompt
 * added) and tokenised with its special tokens. Token-id prompts are used as they are. Content
 * parts other than text (images, audio, video) have no tokens here: they are skipped, so two
 * requests that differ only in an image share keys — a known limit of this tokenizer.
 *
 * @see meta-llama/llama-models: Llama 3 chat template (`<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>`)
 * @see vllm-project/vllm:vllm/entrypoints/openai/serving_engine.py (`_tokenize_prompt_input`)
 */
import llama3Tokenizer from 'llama3-tokenizer-js';
import { type ChatMessage, type CompletionPrompt, chatMessageText } from './openai-api.js';
import { BYTE_OF_CHAR } from './byte-level-bpe.js';
import { CachedLlama3Encoder, type TokenizerCacheStats } from './tokenizer-cache.js';

/**
 * The process's encoder: every function here tokenises through its caches (bounds at their
 * defaults). Made on first use: lru-cache allocates its lists up front (tens of ms), which a
 * process that imports this package without tokenising should not pay.
 */
let shared: CachedLlama3Encoder | undefined;
const encoder = (): CachedLlama3Encoder => (shared ??= new CachedLlama3Encoder());

/** `<|begin_of_text|>` in Llama 3's vocabulary. */
export const LLAMA3_BOS_TOKEN_ID = 128000;

/**
 * Token ids of a text, without BOS/EOS (special-token strings such as `<|eot_id|>` in the text
 * become their ids). The same ids as `llama3-tokenizer-js`; repeated segments (text between
 * special tokens, e.g. chat messages) and pre-tokens come from the process's bounded caches
 * (see {@link CachedLlama3Encoder}: up to 65,536 pre-tokens and 16 Mi of segments).
 *
 * @param text - any string.
 * @returns Llama 3 token ids (a new array).
 */
export function encodeText(text: string): number[] {
  return encoder().encode(text);
}

/** Hit and miss counts of the caches behind {@link encodeText} since the process started. */
export function tokenizerCacheStats(): TokenizerCacheStats {
  return encoder().stats();
}

/**
 * The text of token ids (special tokens written as their strings).
 *
 * @param tokenIds - Llama 3 token ids.
 */
export function decodeTokens(tokenIds: readonly number[]): string {
  return llama3Tokenizer.decode([...tokenIds]);
}

/** Below this id Llama 3's tokens are byte-level BPE strings; at and above it, special tokens. */
const FIRST_SPECIAL_TOKEN_ID = 128000;

const utf8 = new TextDecoder('utf-8');
const tokenBytes = new Uint8Array(256);

/**
 * The text of one token: exactly `decodeTokens([tokenId])` (`tokenizer.test.ts` checks every id
 * of the vocabulary), without the library's per-call arrays: the token's byte-level BPE string is
 * mapped to its bytes, and an all-ASCII token (most of them) needs no UTF-8 decoder. For a
 * streaming detokenizer's first sight of a token id.
 *
 * @param tokenId - a Llama 3 token id.
 */
export function decodeToken(tokenId: number): string {
  const s = tokenId < FIRST_SPECIAL_TOKEN_ID ? llama3Tokenizer.vocabById[tokenId] : undefined;
  if (s === undefined || s.length > tokenBytes.length) return decodeTokens([tokenId]);
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const b = c < BYTE_OF_CHAR.length ? (BYTE_OF_CHAR[c] as number) : -1;
    if (b < 0) return decodeTokens([tokenId]);
    tokenBytes[i] = b;
    if (b >= 0x80) ascii = false;
  }
  if (!ascii) return utf8.decode(tokenBytes.subarray(0, s.length));
  let out = '';
  for (let i = 0; i < s.length; i++) out += String.fromCharCode(tokenBytes[i] as number);
  return out;
}

/**
 * Renders a conversation with Llama 3's chat template, generation prompt included:
 * `<|begin_of_text|>` + per message `<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>`
 * + `<|start_header_id|>assistant<|end_header_id|>\n\n`.
 *
 * @param messages - OpenAI chat messages (text content parts are joined with `\n`).
 */
export function renderChatTemplate(messages: readonly ChatMessage[]): string {
  let s = '<|begin_of_text|>';
  for (const m of messages) s += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${chatMessageText(m)}<|eot_id|>`;
  return `${s}<|start_header_id|>assistant<|end_header_id|>\n\n`;
}

/**
 * Token ids of a chat conversation (template rendered, then tokenised).
 *
 * @param messages - OpenAI chat messages.
 */
export function chatPromptTokenIds(messages: readonly ChatMessage[]): number[] {
  return encodeText(renderChatTemplate(messages));
}

/**
 * Token ids of each prompt of a `/v1/completions` request: a string gets BOS then its tokens; a
 * token-id array is used as it is; a list gives one entry per prompt.
 *
 * @param prompt - the request's `prompt`.
 * @returns one token-id array per prompt (length 1 unless the request is a batch).
 */
export function completionPromptTokenIds(prompt: CompletionPrompt): number[][] {
  if (typeof prompt === 'string') return [[LLAMA3_BOS_TOKEN_ID, ...encodeText(prompt)]];
  if (prompt.length === 0) return [];
  const first = prompt[0];
  if (typeof first === 'number') return [prompt as number[]];
  return (prompt as (string | number[])[]).map((p) => (typeof p === 'string' ? [LLAMA3_BOS_TOKEN_ID, ...encodeText(p)] : p));
}
