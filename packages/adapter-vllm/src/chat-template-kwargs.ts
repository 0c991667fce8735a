/**
 * What vLLM hands a chat template besides the messages: the request's `chat_template_kwargs`,
 * `add_generation_prompt` and `continue_final_message`, merged and filtered as the newest vLLM does,
 * and transformers' cut of the rendered text after the final message, so that kvmgr's renderers
 * (`tokenizer.ts`, `tokenizer-qwen.ts`) write the prompt vLLM writes.
 *
 * Merge (vLLM main, 2026: `ChatCompletionRequest.build_chat_params`, `ChatParams.with_defaults`,
 * `merge_kwargs`, `resolve_chat_template_kwargs`):
 * - the template gets `chat_template_kwargs`, then the request's own `add_generation_prompt` and
 *   `continue_final_message` on top (a client's `chat_template_kwargs.add_generation_prompt` has no
 *   effect), and the request's `tools` under them (a client's `chat_template_kwargs.tools` replaces
 *   the request's `tools`, unconverted);
 * - a key whose value is `null` (or the string `"auto"`) is dropped (`merge_kwargs`'s
 *   `unset_values`), so the template sees it undefined;
 * - `chat_template` and `tokenize` are refused (400, `Found unexpected chat template kwargs from
 *   request: {…}`); `messages` and `conversation` collide with vLLM's own arguments (a
 *   `TypeError`, which vLLM answers with 400);
 * - a key the template does not read (and that is no `apply_chat_template` parameter) is dropped:
 *   no effect, as here, where each renderer reads only its template's variables.
 *
 * Continue (transformers main, `render_jinja_template`): with `continue_final_message`, the final
 * message's content gets `CONTINUE_FINAL_MESSAGE_TAG ` appended, the template is rendered, and the
 * text is cut at the last tag (and right-stripped when the template trimmed the space after it);
 * when the final message's stripped text or the tag is missing from the rendered text, transformers
 * raises and vLLM answers 400. `continue_final_message` with `add_generation_prompt` (vLLM's
 * default: true) is refused too: by vLLM's request validator when the client set both, by
 * transformers when `add_generation_prompt` was left at its default.
 *
 * @see vllm-project/vllm:vllm/entrypoints/openai/chat_completion/protocol.py (`add_generation_prompt`, `continue_final_message`, `chat_template_kwargs`, `build_chat_params`, `check_generation_prompt`)
 * @see vllm-project/vllm:vllm/renderers/params.py (`merge_kwargs`, `ChatParams.with_defaults`)
 * @see vllm-project/vllm:vllm/renderers/hf.py (`resolve_chat_template_kwargs`, `safe_apply_chat_template`)
 * @see huggingface/transformers:src/transformers/utils/chat_template_utils.py (`render_jinja_template`, `continue_final_message_tag`)
 * @see huggingface/transformers:src/transformers/tokenization_utils_base.py (`apply_chat_template`: "continue_final_message and add_generation_prompt are not compatible")
 */
import { KvmgrError } from '@kvmgr/core';
import { jinjaTrim, pythonRstrip } from './chat-tools.js';
import { type OpenAiErrorResponse, openAiError } from './openai-api-errors.js';
import { type ChatMessage, type ChatTool, chatMessageText } from './openai-api.js';
import { markRequestToolsJson } from './json-marks.js';
import type { Tokenizer } from './tokenizers.js';

/**
 * The request fields a chat renderer reads besides the messages (named as in the request body, so
 * a validated `ChatCompletionRequest` is one).
 */
export interface ChatRenderOptions {
  /** The request's `tools` (null or absent: none). */
  readonly tools?: readonly ChatTool[] | null | undefined;
  /** Extra template variables (vLLM's `chat_template_kwargs`). */
  readonly chat_template_kwargs?: Readonly<Record<string, unknown>> | null | undefined;
  /** Append the assistant header. @default true */
  readonly add_generation_prompt?: boolean | null | undefined;
  /** Leave the final message open (no end-of-turn token) for the model to continue. @default false */
  readonly continue_final_message?: boolean | null | undefined;
  /** OpenAI's `reasoning_effort` (`"none"`, `"low"`, …): a template variable, and `enable_thinking` unless `chat_template_kwargs` sets it. */
  readonly reasoning_effort?: unknown;
}

/** The text transformers appends to the final message to find where to cut. */
export const CONTINUE_FINAL_MESSAGE_TAG = 'CONTINUE_FINAL_MESSAGE_TAG ';

/** `chat_template_kwargs` keys vLLM refuses whatever the template, with the message it sends. */
const REFUSED_KEYS = ['chat_template', 'tokenize'] as const;
/** Keys that collide with the arguments vLLM passes itself (Python `TypeError`, answered with 400). */
const COLLIDING_KEYS = ['messages', 'conversation'] as const;

/**
 * The one-line problem of a request's chat-template fields that vLLM refuses whatever the model,
 * or undefined: `chat_template_kwargs` keys `chat_template` / `tokenize` (vLLM's message),
 * `messages` / `conversation`, both booleans true (vLLM's message), and `continue_final_message`
 * with `add_generation_prompt` left at its default true (transformers' message).
 *
 * @param body - the request's fields (already type-checked).
 * @returns `{ path, message }`: the field path (`chat_template_kwargs.tokenize`) and the message.
 */
export function chatTemplateFieldsProblem(body: ChatRenderOptions): { path: (string | number)[]; message: string } | undefined {
  const kw = body.chat_template_kwargs;
  if (kw !== null && kw !== undefined) {
    const refused = REFUSED_KEYS.filter((k) => k in kw);
    if (refused.length > 0) {
      return { path: ['chat_template_kwargs', refused[0] as string], message: `Found unexpected chat template kwargs from request: {${refused.map((k) => `'${k}'`).join(', ')}}` };
    }
    const colliding = COLLIDING_KEYS.find((k) => k in kw && kw[k] !== null);
    if (colliding !== undefined) return { path: ['chat_template_kwargs', colliding], message: `\`${colliding}\` is set by the server and cannot be a chat template variable` };
  }
  if (body.continue_final_message === true && body.add_generation_prompt !== false) {
    return body.add_generation_prompt === true
      ? { path: ['continue_final_message'], message: 'Cannot set both `continue_final_message` and `add_generation_prompt` to True.' }
      : {
          path: ['continue_final_message'],
          message: 'continue_final_message and add_generation_prompt are not compatible (add_generation_prompt defaults to true: set it to false to continue the final message)',
        };
  }
  return undefined;
}

/**
 * A chat request that kvmgr cannot render as vLLM would: a template variable of a type the template
 * cannot use, or a final message the template does not write (vLLM refuses these too: 400), or a
 * variable the template reads that kvmgr's renderer does not model (`unsupported`: vLLM renders it;
 * kvmgr cannot predict that prompt). `details.param` names the field
 * (`chat_template_kwargs.date_string`).
 */
export class ChatTemplateError extends KvmgrError {
  /** The request field at fault, as an OpenAI error `param`. */
  readonly param: string;
  /** True when vLLM would render the request and only kvmgr's renderer lacks the variable. */
  readonly unsupported: boolean;
  constructor(param: string, message: string, unsupported = false) {
    super('KVMGR_INVALID_ARGUMENT', `${param}: ${message}`, { details: { param, unsupported } });
    this.name = 'ChatTemplateError';
    this.param = param;
    this.unsupported = unsupported;
  }
}

/** What {@link renderChatOr400} returns: the rendered value (with the variables left out), or the 400 to send. */
export type RenderChatResult<T> =
  | { readonly ok: true; readonly value: T; readonly droppedVariables: readonly string[] }
  | { readonly ok: false; readonly error: OpenAiErrorResponse };

/**
 * Renders a chat prompt, answering a {@link ChatTemplateError} with the 400 vLLM sends (OpenAI
 * error body, `param` naming the field), and a stack overflow (a `tools` schema or tool-call
 * arguments nested thousands of levels deep) with a 400 too; any other error is thrown on.
 *
 * With `dropUnsupported` (a router that only predicts the prompt: the engine renders the real one),
 * a variable kvmgr's renderer does not model is left out and the rest rendered, so the request is
 * routed on a near prompt rather than refused; the names left out are returned. Without it (a
 * server that must know its prompt) it is a 400 like the others.
 *
 * @param render - renders with the options given, e.g. `(o) => tokenizer.chatPromptTokenIds(body.messages, o)`.
 * @param options - the request's chat-template fields (a validated chat request is one).
 * @param dropUnsupported - leave out unsupported variables instead of refusing. @default false
 */
export function renderChatOr400<T>(render: (options: ChatRenderOptions) => T, options: ChatRenderOptions, dropUnsupported = false): RenderChatResult<T> {
  const dropped: string[] = [];
  let o = options;
  for (;;) {
    try {
      return { ok: true, value: render(o), droppedVariables: dropped };
    } catch (e) {
      if (e instanceof RangeError && /call stack/i.test(e.message)) {
        // a value nested thousands of levels deep overflowed V8's stack (JSON.stringify included)
        // before the renderer's own depth check: the same 400, for the field the deep value is in
        const param = (o.tools?.length ?? 0) > 0 ? 'tools' : o.chat_template_kwargs != null ? 'chat_template_kwargs' : 'messages';
        return { ok: false, error: openAiError(400, `${param}: a value nested too deeply to render (the chat template writes it with Python's json.dumps, which stops at its recursion limit)`, { param, code: 'invalid_value' }) };
      }
      if (!(e instanceof ChatTemplateError)) throw e;
      const kw = o.chat_template_kwargs;
      const key = e.param.startsWith('chat_template_kwargs.') ? e.param.slice('chat_template_kwargs.'.length) : undefined;
      if (dropUnsupported && e.unsupported && kw && key !== undefined && key in kw) {
        const { [key]: _left, ...rest } = kw;
        o = { ...o, chat_template_kwargs: rest };
        dropped.push(key);
        continue;
      }
      return { ok: false, error: openAiError(400, e.message, { param: e.param, code: 'invalid_value' }) };
    }
  }
}

/**
 * A validated chat request's prompt token ids as vLLM renders them, or the 400 to send: the
 * request's `tools` and `chat_template_kwargs` are first given the number types and key order of
 * `bodyText` ({@link markRequestToolsJson}; nothing is read for a request with neither), then
 * rendered by {@link renderChatOr400}. What the gateway, the endpoint picker and the engine server
 * (generation and `/tokenize`) do with each chat request.
 *
 * @param tokenizer - the model's tokenizer.
 * @param request - the validated request (`messages` and the chat-template fields).
 * @param bodyText - the body's JSON text (or its UTF-8 bytes), which `request` was validated from (absent: rendered from `request` alone).
 * @param dropUnsupported - see {@link renderChatOr400}. @default false
 */
export function chatPromptOr400(
  tokenizer: Pick<Tokenizer, 'chatPromptTokenIds'>,
  request: ChatRenderOptions & { readonly messages: readonly ChatMessage[] },
  bodyText?: string | Uint8Array,
  dropUnsupported = false,
): RenderChatResult<number[]> {
  if (bodyText !== undefined) markRequestToolsJson(request, bodyText);
  return renderChatOr400((o) => tokenizer.chatPromptTokenIds(request.messages, o), request, dropUnsupported);
}

/** What a renderer starts from: {@link chatTemplateSetup}'s result. */
export interface ChatTemplateSetup {
  /** The template variables ({@link templateVariables}). */
  readonly vars: ReadonlyMap<string, unknown>;
  /** Whether the assistant header ends the prompt (`add_generation_prompt`, default true). */
  readonly genPrompt: boolean;
  /** The messages to render: the final one tagged when continuing it. */
  readonly messages: readonly ChatMessage[];
  /** transformers' cut, when `continue_final_message` is set. */
  readonly cont: ContinueFinal | undefined;
}

/**
 * The common start of every renderer: the template variables, unsupported ones refused, the
 * generation-prompt flag, and the continue-final-message set-up.
 *
 * @param messages - the conversation.
 * @param options - the request's chat-template fields.
 * @param unsupported - variables the template reads that the renderer does not write.
 * @param template - the template's name, for messages.
 * @throws ChatTemplateError for an unsupported variable, or `continue_final_message` with the generation prompt.
 */
export function chatTemplateSetup(messages: readonly ChatMessage[], options: ChatRenderOptions | undefined, unsupported: readonly string[], template: string): ChatTemplateSetup {
  const vars = templateVariables(options?.chat_template_kwargs, options?.reasoning_effort);
  refuseUnsupported(vars, unsupported, template);
  const genPrompt = options?.add_generation_prompt !== false;
  const cont = options?.continue_final_message === true ? continueFinalMessage(messages) : undefined;
  if (cont !== undefined && genPrompt) throw new ChatTemplateError('continue_final_message', 'continue_final_message and add_generation_prompt are not compatible');
  return { vars, genPrompt, messages: cont?.messages ?? messages, cont };
}

/**
 * The template variables of `chat_template_kwargs` after vLLM's merge: `null` and `"auto"` values
 * dropped, the request's own fields (`add_generation_prompt`, `continue_final_message`) not taken
 * from here. Every other key is kept: a renderer reads the ones its template reads. A request's
 * `reasoning_effort` is a variable too, and, unless `chat_template_kwargs` has `enable_thinking`,
 * sets `enable_thinking` to `reasoning_effort !== "none"` (vLLM main, `build_chat_params`; Qwen3's
 * template appends an empty think block for `"none"`).
 *
 * @param kwargs - the request's `chat_template_kwargs`.
 * @param reasoningEffort - the request's `reasoning_effort` (null or absent: none).
 * @see vllm-project/vllm:vllm/entrypoints/openai/chat_completion/protocol.py (`build_chat_params`: `extra_kwargs["enable_thinking"] = self.reasoning_effort != "none"`)
 */
export function templateVariables(kwargs: Readonly<Record<string, unknown>> | null | undefined, reasoningEffort?: unknown): ReadonlyMap<string, unknown> {
  const out = new Map<string, unknown>();
  if (reasoningEffort !== null && reasoningEffort !== undefined) {
    out.set('reasoning_effort', reasoningEffort);
    if (kwargs === null || kwargs === undefined || !('enable_thinking' in kwargs)) out.set('enable_thinking', reasoningEffort !== 'none');
  }
  if (kwargs === null || kwargs === undefined) return out;
  for (const k of Object.keys(kwargs)) {
    const v = kwargs[k];
    if (v === null || v === undefined || v === 'auto' || k === 'add_generation_prompt' || k === 'continue_final_message') continue;
    out.set(k, v);
  }
  return out;
}

/**
 * Refuses the variables a template reads that the renderer does not model (vLLM would render
 * them; kvmgr cannot predict the prompt, so it answers 400 rather than route on a wrong one).
 *
 * @param vars - from {@link templateVariables}.
 * @param unsupported - variables the template reads and the renderer does not write.
 * @param template - the template's name, for the message.
 * @throws ChatTemplateError naming the first such key.
 */
export function refuseUnsupported(vars: ReadonlyMap<string, unknown>, unsupported: readonly string[], template: string): void {
  for (const k of unsupported) {
    if (vars.has(k)) throw new ChatTemplateError(`chat_template_kwargs.${k}`, `the ${template} chat template reads this variable, which kvmgr's renderer does not support`, true);
  }
}

/**
 * A string variable (`date_string`, `bos_token`): the template concatenates it with `+`, which
 * raises for any other type in Jinja2.
 *
 * @throws ChatTemplateError when the value is not a string.
 */
export function stringVariable(vars: ReadonlyMap<string, unknown>, key: string): string | undefined {
  const v = vars.get(key);
  if (v === undefined || typeof v === 'string') return v;
  throw new ChatTemplateError(`chat_template_kwargs.${key}`, `expected a string, got ${JSON.stringify(v)}`);
}

/**
 * A list of tools given as a template variable (`tools`, Llama's `custom_tools`): written by the
 * template as they are (`tojson`), not converted as the request's `tools` are.
 *
 * @throws ChatTemplateError when the value is not an array (the templates iterate it).
 */
export function toolListVariable(vars: ReadonlyMap<string, unknown>, key: string): readonly unknown[] | undefined {
  const v = vars.get(key);
  if (v === undefined || Array.isArray(v)) return v;
  throw new ChatTemplateError(`chat_template_kwargs.${key}`, `expected an array of tools, got ${JSON.stringify(v)}`);
}

/** Python's truthiness of a JSON value (what `{% if x %}` tests): false, 0, '', [], {} are false. */
export function pythonTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/** Where the rendered text is cut for `continue_final_message`, and the messages rendered for it. */
export interface ContinueFinal {
  /** The messages with the tag appended to the final one's text. */
  readonly messages: readonly ChatMessage[];
  /** Cuts the text rendered from {@link ContinueFinal.messages} as transformers does. */
  cut(rendered: string): string;
}

/**
 * Sets up transformers' `continue_final_message`: the final message's text (text parts joined, as
 * vLLM hands it to the template) with {@link CONTINUE_FINAL_MESSAGE_TAG} appended, and the cut.
 *
 * @param messages - at least one message.
 * @throws ChatTemplateError (from `cut`) when the rendered text lacks the final message's stripped
 *   text or the tag (the template does not write that message's content, e.g. an assistant turn
 *   that only calls a tool in Llama's templates).
 */
export function continueFinalMessage(messages: readonly ChatMessage[]): ContinueFinal {
  const last = messages[messages.length - 1];
  if (last === undefined) throw new ChatTemplateError('messages', 'continue_final_message is set but there is no final message to continue');
  const text = chatMessageText(last);
  const tagged: ChatMessage = { ...last, content: text + CONTINUE_FINAL_MESSAGE_TAG };
  const bareTag = CONTINUE_FINAL_MESSAGE_TAG.trimEnd();
  return {
    messages: [...messages.slice(0, -1), tagged],
    cut(rendered: string): string {
      const at = rendered.lastIndexOf(bareTag);
      if (at < 0 || !rendered.includes(jinjaTrim(text))) {
        throw new ChatTemplateError('continue_final_message', 'continue_final_message is set but the final message does not appear in the chat after applying the chat template');
      }
      return rendered.startsWith(CONTINUE_FINAL_MESSAGE_TAG, at) ? rendered.slice(0, at) : pythonRstrip(rendered.slice(0, at));
    },
  };
}
