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
import { type ChatMessage, type ChatTool, type CompletionPrompt, chatMessageText, completionPromptIds } from './openai-api.js';
import { BoundedTextCache, jinjaTrim, parseToolArguments, pythonJsonDumps, templateTools, toolCallsOf } from './chat-tools.js';
import { type ChatRenderOptions, chatTemplateSetup, pythonTruthy, stringVariable, toolListVariable } from './chat-template-kwargs.js';
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
 * Which of Meta's Llama 3 chat templates (same vocabulary):
 * - `llama3` (Llama 3 / 3.0): per message `<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>`.
 * - `llama3.1` (Llama 3.1, 3.3): a system turn always comes first, `Cutting Knowledge Date: December
 *   2023\nToday Date: 26 Jul 2024\n\n` then the first message's content when it is a system one.
 * - `llama3.2` (Llama 3.2): the same, with today's date (`strftime_now("%d %b %Y")`, which
 *   transformers gives the template, so vLLM renders the server's current local date).
 */
export type Llama3ChatTemplate = 'llama3' | 'llama3.1' | 'llama3.2';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Python's `strftime("%d %b %Y")` of a local date, e.g. `07 Dec 2026`. */
export function strftimeDayMonthYear(d: Date): string {
  return `${String(d.getDate()).padStart(2, '0')} ${MONTHS[d.getMonth()]} ${d.getFullYear()}`;
}

const LLAMA_TOOLS_PREAMBLE =
  'Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n' +
  'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.\n\n';

/**
 * Renders a conversation with a Llama 3 chat template, as vLLM does through the model's
 * `tokenizer_config.json` (`apply_chat_template(add_generation_prompt=…, tools=…, **kwargs)`):
 * `<|begin_of_text|>`, then (3.1 and later) the system turn with the knowledge-cutoff and date
 * lines, then each message's turn with its content trimmed, then (generation prompt)
 * `<|start_header_id|>assistant<|end_header_id|>\n\n`.
 *
 * Tools (3.1, 3.2; vLLM passes `tools` whenever the request has the field, even `[]`, so the
 * template's `tools is not none` holds): `Environment: ipython\n` opens the system turn, and the
 * tools go into the first message after the system one (`tools_in_user_message`, default true),
 * each as `tojson(indent=4)` followed by a blank line, after the template's instructions and before
 * that message's trimmed content; with `tools_in_user_message` false they go at the end of the
 * system turn instead, after the template's other instructions. An assistant turn with
 * `tool_calls` is written as `{"name": "…", "parameters": <arguments tojson>}` (the first call:
 * the templates refuse several, and vLLM answers 400), a `tool` message as an `ipython` turn whose
 * content is `tojson` of the text (a JSON string, quotes included: Jinja's `iterable` test holds
 * for a string). Llama 3 (3.0)'s template has no tools: they are ignored, and a turn is its
 * trimmed content whatever its role or tool calls. vLLM refuses a 3.1/3.2 request with tools in
 * the user message and no message after the system one (the template raises): here the tools
 * block is left out.
 *
 * Template variables (`chat_template_kwargs`, see `chat-template-kwargs.ts`): `date_string` (3.1,
 * 3.2: replaces the date), `tools_in_user_message` (3.1, 3.2: Python truthiness), `custom_tools`
 * and `tools` (3.1, 3.2: a list written in place of the request's tools, as it is), `bos_token`
 * (all three); any other key is not read by these templates and has no effect. 3.1's
 * `builtin_tools` and 3.2's `strftime_now` (and `raise_exception`) are refused (400).
 *
 * @param messages - OpenAI chat messages (text content parts are joined with `\n`).
 * @param template - which Llama 3 template. @default 'llama3'
 * @param now - the clock of `llama3.2`'s date. @default new Date()
 * @param options - the request's `tools`, `chat_template_kwargs`, `add_generation_prompt` (default
 *   true) and `continue_final_message` (default false; see `continueFinalMessage`).
 * @throws ChatTemplateError for a template variable of the wrong type or one not supported, or a
 *   final message the template does not write (continue_final_message): vLLM answers 400.
 * @see meta-llama/Llama-3.1-8B-Instruct:tokenizer_config.json (`chat_template`, `date_string` "26 Jul 2024"; copy in src/fixtures/llama3.1-instruct.jinja)
 * @see meta-llama/Llama-3.2-1B-Instruct:tokenizer_config.json (`strftime_now("%d %b %Y")`; copy in src/fixtures/llama3.2-instruct.jinja)
 * @see meta-llama/Meta-Llama-3-8B-Instruct:tokenizer_config.json
 * @see vllm-project/vllm:vllm/entrypoints/openai/serving_chat.py (`tool_dicts`), vllm/entrypoints/chat_utils.py (`_postprocess_messages`)
 */
export function renderChatTemplate(messages: readonly ChatMessage[], template: Llama3ChatTemplate = 'llama3', now?: Date, options?: ChatRenderOptions): string {
  const [head, tail] = renderLlamaParts(messages, template, now, options);
  return head + tail;
}

/** The Llama tools block (instructions, then each tool as `tojson(indent=4)` and a blank line), by the tools' JSON: agentic traffic repeats one list. */
const llamaToolsBlocks = new BoundedTextCache();

/** Variables each Llama template reads that the renderer does not write. */
const LLAMA_UNSUPPORTED: Readonly<Record<Llama3ChatTemplate, readonly string[]>> = {
  llama3: [],
  'llama3.1': ['builtin_tools', 'raise_exception'],
  'llama3.2': ['strftime_now', 'raise_exception'],
};

const LLAMA_SYSTEM_TOOLS_PREAMBLE =
  'You have access to the following functions. To call a function, please respond with JSON for a function call.' +
  'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.\n\n';

/**
 * The rendered prompt in two pieces: through the tools block of the first user turn (`''` without
 * one), and the rest. The split falls on a pre-token boundary (the block ends with `}\n\n` or
 * `.\n\n`, one pre-token, and the trimmed user text after it starts with no newline), so the ids of
 * the two pieces, encoded apart, are the ids of the whole; and the first piece, the same on every
 * request with the same system prompt and tools, is one cached segment for the encoder. A
 * continued final message is cut from the whole text (the cut may strip into the first piece).
 */
function renderLlamaParts(messages: readonly ChatMessage[], template: Llama3ChatTemplate, now: Date | undefined, options: ChatRenderOptions | undefined): [string, string] {
  const setup = chatTemplateSetup(messages, options, LLAMA_UNSUPPORTED[template], template);
  const { vars, genPrompt, cont } = setup;
  messages = setup.messages;
  const bos = stringVariable(vars, 'bos_token') ?? '<|begin_of_text|>';
  const gen = genPrompt ? '<|start_header_id|>assistant<|end_header_id|>\n\n' : '';
  let s = bos;
  if (template === 'llama3') {
    for (const m of messages) s += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${jinjaTrim(chatMessageText(m))}<|eot_id|>`;
    return ['', cont === undefined ? s + gen : cont.cut(s)];
  }
  let rest = messages;
  const first = messages[0];
  const system = first !== undefined && first.role === 'system' ? jinjaTrim(chatMessageText(first)) : '';
  if (first !== undefined && first.role === 'system') rest = messages.slice(1);
  const date = stringVariable(vars, 'date_string') ?? (template === 'llama3.1' ? '26 Jul 2024' : strftimeDayMonthYear(now ?? new Date()));
  // custom_tools, else a `tools` template variable, else the request's tools: the first two written as they are
  const rawTools = toolListVariable(vars, 'custom_tools') ?? toolListVariable(vars, 'tools');
  const requestTools = options?.tools ?? undefined;
  const withTools = rawTools !== undefined || requestTools !== undefined;
  const toolsBlock = (preamble: string): string => {
    const list = rawTools ?? (requestTools as readonly ChatTool[]);
    return llamaToolsBlocks.get(
      list,
      () => {
        let b = preamble;
        for (const t of rawTools ?? templateTools(requestTools as readonly ChatTool[])) b += `${pythonJsonDumps(t, 4, rawTools !== undefined ? 'chat_template_kwargs' : 'tools')}\n\n`;
        return b;
      },
      `${rawTools !== undefined ? 'raw' : ''}${preamble === LLAMA_TOOLS_PREAMBLE ? 'user' : 'system'}`,
    );
  };
  const inUser = vars.has('tools_in_user_message') ? pythonTruthy(vars.get('tools_in_user_message')) : true;
  s += `<|start_header_id|>system<|end_header_id|>\n\n${withTools ? 'Environment: ipython\n' : ''}Cutting Knowledge Date: December 2023\nToday Date: ${date}\n\n`;
  if (withTools && !inUser) s += toolsBlock(LLAMA_SYSTEM_TOOLS_PREAMBLE);
  s += `${system}<|eot_id|>`;
  let head = '';
  if (withTools && inUser && rest.length > 0) {
    head = `${s}<|start_header_id|>user<|end_header_id|>\n\n${toolsBlock(LLAMA_TOOLS_PREAMBLE)}`;
    s = `${jinjaTrim(chatMessageText(rest[0] as ChatMessage))}<|eot_id|>`;
    rest = rest.slice(1);
  }
  for (const m of rest) {
    const calls = m.role === 'assistant' ? toolCallsOf(m) : undefined;
    if (calls !== undefined) {
      const c = (calls[0] as (typeof calls)[number]).function;
      const args = parseToolArguments(c.arguments);
      s += `<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "${c.name}", "parameters": ${'raw' in args ? JSON.stringify(args.raw) : pythonJsonDumps(args.value, undefined, 'messages')}}<|eot_id|>`;
    } else if (m.role === 'tool') s += `<|start_header_id|>ipython<|end_header_id|>\n\n${JSON.stringify(chatMessageText(m))}<|eot_id|>`;
    else s += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${jinjaTrim(chatMessageText(m))}<|eot_id|>`;
  }
  if (cont !== undefined) return ['', cont.cut(head + s)];
  return [head, s + gen];
}

/**
 * Token ids of a chat conversation (template rendered, then tokenised; with tools, the part
 * through the tools block and the rest are encoded apart, which gives the same ids: see
 * {@link renderLlamaParts}).
 *
 * @param messages - OpenAI chat messages.
 * @param template - which Llama 3 template ({@link renderChatTemplate}). @default 'llama3'
 * @param options - the request's `tools`, `chat_template_kwargs`, `add_generation_prompt`,
 *   `continue_final_message` ({@link renderChatTemplate}).
 * @throws ChatTemplateError as {@link renderChatTemplate}.
 */
export function chatPromptTokenIds(messages: readonly ChatMessage[], template: Llama3ChatTemplate = 'llama3', options?: ChatRenderOptions): number[] {
  const [head, tail] = renderLlamaParts(messages, template, undefined, options);
  return head === '' ? encodeText(tail) : encodeText(head).concat(encodeText(tail));
}

/**
 * Token ids of each prompt of a `/v1/completions` request: a string gets BOS then its tokens; a
 * token-id array is used as it is; a list gives one entry per prompt.
 *
 * @param prompt - the request's `prompt`.
 * @returns one token-id array per prompt (length 1 unless the request is a batch).
 */
export function completionPromptTokenIds(prompt: CompletionPrompt): number[][] {
  return completionPromptIds(prompt, (text) => [LLAMA3_BOS_TOKEN_ID, ...encodeText(text)]);
}
