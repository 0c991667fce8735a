/**
 * The tokenizer registry: a model's tokenizer by name (`llama3`, `qwen2`, `qwen2.5`, `qwen3`) or
 * derived from the model's name, each encoding, decoding and rendering chat prompts as vLLM does
 * for that model, so that the gateway's block keys and the engine's match.
 *
 * @see vllm-project/vllm:vllm/entrypoints/openai/serving_engine.py (`_tokenize_prompt_input`:
 *   `add_special_tokens=True` for completions, so BOS only where the tokenizer has one)
 * @see vllm-project/vllm:vllm/entrypoints/chat_utils.py (`apply_hf_chat_template`, then tokenised
 *   with `add_special_tokens=False`)
 */
import { KvmgrError } from '@kvmgr/core';
import type { ChatRenderOptions } from './chat-template-kwargs.js';
import { type ChatMessage, type CompletionPrompt, completionPromptIds } from './openai-api.js';
import { LLAMA3_BOS_TOKEN_ID, type Llama3ChatTemplate, chatPromptTokenIds, completionPromptTokenIds, decodeToken, decodeTokens, encodeText, renderChatTemplate, tokenizerCacheStats } from './tokenizer.js';
import type { TokenizerCacheStats } from './tokenizer-cache.js';
import { CachedQwenEncoder, QWEN_ADDED_TOKENS, QWEN_TEXT_VOCAB_SIZE, type QwenVariant, decodeQwen, preloadQwen, renderQwenChat } from './tokenizer-qwen.js';

/** Names of the tokenizers kvmgr has. */
export const TOKENIZER_NAMES = ['llama3', 'llama3.1', 'llama3.2', 'qwen2', 'qwen2.5', 'qwen3'] as const;
export type TokenizerName = (typeof TOKENIZER_NAMES)[number];

/**
 * The tokenizer used when neither a name nor a model that implies one is given: Llama 3.1's, the
 * model kvmgr's engine server, simulator and CLI default to (`Llama-3.1-8B-Instruct`).
 */
export const DEFAULT_TOKENIZER: TokenizerName = 'llama3.1';

/** A model's tokenizer, as vLLM uses it. */
export interface Tokenizer {
  readonly name: TokenizerName;
  /** Ids below this are byte-level BPE text tokens; at and above, special/added tokens. */
  readonly textVocabSize: number;
  /** All ids (text and special tokens): a prompt id at or above it is out of vocabulary. */
  readonly vocabSize: number;
  /** The id vLLM's completion path puts in front of a text prompt, if any (Llama 3: 128000; Qwen: none). */
  readonly bosTokenId: number | undefined;
  /** The chat end-of-turn token (Llama 3 `<|eot_id|>`, Qwen `<|im_end|>`). */
  readonly eosTokenId: number;
  /** Special and added tokens by string. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Token ids of a text, no BOS/EOS (special-token strings in the text become their ids). */
  encode(text: string): number[];
  /** Text of token ids (special tokens written as their strings). */
  decode(tokenIds: readonly number[]): string;
  /** Text of one token id (`decode([tokenId])`). */
  decodeToken(tokenId: number): string;
  /**
   * The chat template rendered as text, as vLLM renders it for a chat request with these fields
   * (a validated `ChatCompletionRequest` is a {@link ChatRenderOptions}): the request's `tools`
   * written as the template writes them (Llama 3.1/3.2, Qwen2.5, Qwen3; Llama 3 and Qwen2's
   * templates have none), the `chat_template_kwargs` variables the template reads, the generation
   * prompt unless `add_generation_prompt` is false, the final message left open with
   * `continue_final_message`.
   *
   * @throws ChatTemplateError (`KVMGR_INVALID_ARGUMENT`, `param` naming the field) where vLLM
   *   answers 400: a template variable of the wrong type or one kvmgr does not support, a final
   *   message the template does not write.
   */
  renderChat(messages: readonly ChatMessage[], options?: ChatRenderOptions): string;
  /** Token ids of the rendered chat prompt ({@link Tokenizer.renderChat}; throws as it does). */
  chatPromptTokenIds(messages: readonly ChatMessage[], options?: ChatRenderOptions): number[];
  /** Token ids of each prompt of a `/v1/completions` request (BOS in front of a text prompt where the tokenizer has one). */
  completionPromptTokenIds(prompt: CompletionPrompt): number[][];
  /** Cache hits and misses of this tokenizer's encoder. */
  cacheStats(): TokenizerCacheStats;
  /** Loads the vocabulary now instead of on first use (a server calls it before it listens). */
  preload(): void;
}

const LLAMA3_SPECIALS = new Map<string, number>([
  ['<|begin_of_text|>', 128000],
  ['<|end_of_text|>', 128001],
  ['<|finetune_right_pad_id|>', 128004],
  ['<|start_header_id|>', 128006],
  ['<|end_header_id|>', 128007],
  ['<|eom_id|>', 128008],
  ['<|eot_id|>', 128009],
  ['<|python_tag|>', 128010],
]);

/**
 * Llama 3.x: one vocabulary (the functions of `tokenizer.ts`), three chat templates
 * ({@link Llama3ChatTemplate}: `llama3` for Llama 3, `llama3.1` for 3.1 and 3.3, `llama3.2`).
 */
function llamaTokenizer(name: Llama3ChatTemplate): Tokenizer {
  return {
    name,
    textVocabSize: 128_000,
    vocabSize: 128_256,
    bosTokenId: LLAMA3_BOS_TOKEN_ID,
    eosTokenId: 128009,
    specialTokens: LLAMA3_SPECIALS,
    encode: encodeText,
    decode: decodeTokens,
    decodeToken,
    renderChat: (messages, options) => renderChatTemplate(messages, name, undefined, options),
    chatPromptTokenIds: (messages, options) => chatPromptTokenIds(messages, name, options),
    completionPromptTokenIds,
    cacheStats: tokenizerCacheStats,
    preload: () => {
      encodeText('a');
    },
  };
}

function qwenTokenizer(variant: QwenVariant): Tokenizer {
  let enc: CachedQwenEncoder | undefined;
  const encoder = (): CachedQwenEncoder => (enc ??= new CachedQwenEncoder(variant));
  const added = QWEN_ADDED_TOKENS[variant];
  const encode = (text: string): number[] => encoder().encode(text);
  const decode = (ids: readonly number[]): string => decodeQwen(ids, variant);
  return {
    name: variant,
    textVocabSize: QWEN_TEXT_VOCAB_SIZE,
    vocabSize: QWEN_TEXT_VOCAB_SIZE + added.length,
    bosTokenId: undefined,
    eosTokenId: QWEN_TEXT_VOCAB_SIZE + 2,
    specialTokens: new Map(added.map((t, i) => [t, QWEN_TEXT_VOCAB_SIZE + i])),
    encode,
    decode,
    // the engine server's detokenizer keeps each token's text (the only caller)
    decodeToken: (id) => decode([id]),
    renderChat: (messages, options) => renderQwenChat(messages, variant, options),
    chatPromptTokenIds: (messages, options) => encode(renderQwenChat(messages, variant, options)),
    // no BOS: Qwen's tokenizer adds none
    completionPromptTokenIds: (prompt) => completionPromptIds(prompt, encode),
    cacheStats: () => encoder().stats(),
    preload: preloadQwen,
  };
}

const made = new Map<TokenizerName, Tokenizer>();

/**
 * The tokenizer of a name (one shared instance per name; the Qwen vocabulary is loaded on its
 * first encode or decode).
 *
 * @param name - one of {@link TOKENIZER_NAMES}.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the value and the known names.
 */
export function getTokenizer(name: string): Tokenizer {
  const known = (TOKENIZER_NAMES as readonly string[]).includes(name);
  if (!known) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `unknown tokenizer ${JSON.stringify(name)}: expected one of ${TOKENIZER_NAMES.join(', ')}`, {
      details: { tokenizer: name, known: [...TOKENIZER_NAMES] },
    });
  }
  let t = made.get(name as TokenizerName);
  if (t === undefined) {
    t = name.startsWith('llama3') ? llamaTokenizer(name as Llama3ChatTemplate) : qwenTokenizer(name as QwenVariant);
    made.set(name as TokenizerName, t);
  }
  return t;
}

/**
 * The tokenizer name a model name implies (the HF id or its last part): Llama 3 → `llama3`,
 * Llama 3.1 and 3.3 → `llama3.1`, Llama 3.2 → `llama3.2` (one vocabulary, their chat templates),
 * Qwen2 → `qwen2`, Qwen2.5 (and QwQ) → `qwen2.5`, Qwen3 → `qwen3`; `undefined` for any other.
 *
 * @param model - e.g. `meta-llama/Llama-3.1-8B-Instruct`, `Qwen/Qwen2.5-7B-Instruct`.
 */
export function tokenizerNameForModel(model: string): TokenizerName | undefined {
  const m = (model.split('/').pop() ?? model).toLowerCase();
  if (/^qwen3/.test(m)) return 'qwen3';
  if (/^qwen2[._]5/.test(m) || /^qwq/.test(m)) return 'qwen2.5';
  if (/^qwen2/.test(m)) return 'qwen2';
  const llama = /llama-?3(?:[._](\d))?/.exec(m);
  if (llama !== null) return llama[1] === '2' ? 'llama3.2' : llama[1] === '1' || llama[1] === '3' ? 'llama3.1' : 'llama3';
  return undefined;
}

/**
 * The tokenizer of an explicit name, else the one the model name implies, else
 * {@link DEFAULT_TOKENIZER} (Llama 3.1's).
 *
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an unknown explicit name.
 */
export function resolveTokenizer(options: { readonly tokenizer?: string | undefined; readonly model?: string | undefined }): Tokenizer {
  if (options.tokenizer !== undefined) return getTokenizer(options.tokenizer);
  return getTokenizer((options.model === undefined ? undefined : tokenizerNameForModel(options.model)) ?? DEFAULT_TOKENIZER);
}
