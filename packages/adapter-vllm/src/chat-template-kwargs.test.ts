/**
 * Ground truth for `chat_template_kwargs`, `add_generation_prompt` and `continue_final_message`:
 * the models' own chat templates (src/fixtures/*.jinja) rendered by a real Jinja engine
 * (`@huggingface/jinja`, and Python's Jinja2 with transformers' settings where it is installed),
 * given what vLLM gives them (the request's fields over `chat_template_kwargs`, null values
 * dropped) and cut as transformers cuts a continued final message, must equal kvmgr's renderers
 * byte for byte; and the request schema refuses what vLLM refuses.
 */
import { readFileSync } from 'node:fs';
import { Template } from '@huggingface/jinja';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONTINUE_FINAL_MESSAGE_TAG, type ChatRenderOptions, ChatTemplateError, renderChatOr400 } from './chat-template-kwargs.js';
import { jinjaTrim, templateTools } from './chat-tools.js';
import { parseOpenAiRequest } from './openai-api-errors.js';
import { type ChatMessage, type ChatTool, ChatCompletionRequestSchema, chatMessageText } from './openai-api.js';
import { renderChatTemplate, strftimeDayMonthYear } from './tokenizer.js';
import { renderQwenChat } from './tokenizer-qwen.js';
import { getTokenizer } from './tokenizers.js';
import { TEMPLATE_FILES, type TemplateName, hasPythonJinja2, renderWithJinja2, templatePath } from '../test/python-jinja.js';

type Name = TemplateName;
const NAMES = Object.keys(TEMPLATE_FILES) as Name[];
const TEMPLATES = Object.fromEntries(
  NAMES.map((n) => {
    const text = readFileSync(templatePath(n), 'utf8');
    return [n, new Template(text.slice(text.indexOf('\n') + 1))];
  }),
) as Record<Name, Template>;

/** Llama 3.2's date: a fixed clock (the template gets it as `date_string` unless the request sets one). */
const NOW = new Date(2026, 11, 7, 10);

/** What vLLM hands the template besides the messages: `tools` under `chat_template_kwargs` (null values dropped), the request's flags on top. */
function context(name: Name, o: ChatRenderOptions): Record<string, unknown> {
  const ctx: Record<string, unknown> = { bos_token: '<|begin_of_text|>', tools: o.tools === undefined || o.tools === null ? null : templateTools(o.tools) };
  if (name === 'llama3.2') ctx['date_string'] = strftimeDayMonthYear(NOW);
  // vLLM's build_chat_params: reasoning_effort is a variable, and sets enable_thinking unless the client's kwargs have it
  if (o.reasoning_effort !== undefined && o.reasoning_effort !== null) {
    ctx['reasoning_effort'] = o.reasoning_effort;
    if (!('enable_thinking' in (o.chat_template_kwargs ?? {}))) ctx['enable_thinking'] = o.reasoning_effort !== 'none';
  }
  for (const [k, v] of Object.entries(o.chat_template_kwargs ?? {})) if (v !== null && v !== 'auto') ctx[k] = v;
  ctx['add_generation_prompt'] = o.add_generation_prompt ?? true;
  return ctx;
}

function vllmMessages(messages: readonly ChatMessage[]): Record<string, unknown>[] {
  return messages.map((m) => {
    const out: Record<string, unknown> = { role: m.role, content: chatMessageText(m) };
    if (m.tool_calls !== undefined && m.tool_calls.length > 0) out['tool_calls'] = m.tool_calls.map((c) => ({ ...c, function: { name: c.function.name, arguments: JSON.parse(c.function.arguments) } }));
    return out;
  });
}

/** transformers' `continue_final_message` (tag appended to the final message, then the cut), over any renderer. */
function transformersContinue(messages: readonly ChatMessage[], render: (m: readonly ChatMessage[]) => string): string {
  const last = messages[messages.length - 1] as ChatMessage;
  const final = chatMessageText(last);
  const rendered = render([...messages.slice(0, -1), { ...last, content: final + CONTINUE_FINAL_MESSAGE_TAG }]);
  const bare = CONTINUE_FINAL_MESSAGE_TAG.trim();
  if (!rendered.includes(final.trim()) || !rendered.includes(bare)) throw new Error('final message does not appear');
  const at = rendered.lastIndexOf(bare);
  return rendered.slice(at, at + CONTINUE_FINAL_MESSAGE_TAG.length) === CONTINUE_FINAL_MESSAGE_TAG ? rendered.slice(0, at) : rendered.slice(0, at).trimEnd();
}

function jinja(name: Name, messages: readonly ChatMessage[], o: ChatRenderOptions): string {
  const render = (m: readonly ChatMessage[]) => TEMPLATES[name].render({ ...context(name, o), messages: vllmMessages(m) });
  return o.continue_final_message === true ? transformersContinue(messages, render) : render(messages);
}

function ours(name: Name, messages: readonly ChatMessage[], o: ChatRenderOptions): string {
  if (name === 'llama3.1' || name === 'llama3.2') return renderChatTemplate(messages, name, NOW, o);
  return renderQwenChat(messages, name, o);
}

/** The outcome of a render: its text, or that it threw (vLLM: 400). */
function outcome(f: () => string): string {
  try {
    return f();
  } catch {
    return '<error>';
  }
}

const WEATHER: ChatTool = { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
const CALL = (name: string, args: string) => ({ id: 'call_1', type: 'function' as const, function: { name, arguments: args } });
const CHAT: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello! How can I help?' },
  { role: 'user', content: 'Weather in Paris?' },
];
const PREFILL: ChatMessage[] = [...CHAT, { role: 'assistant', content: 'The weather in Paris is ' }];

interface Case {
  readonly name: string;
  readonly messages: ChatMessage[];
  readonly options: ChatRenderOptions;
  readonly only?: readonly Name[];
}

const CASES: readonly Case[] = [
  { name: 'enable_thinking false', messages: CHAT, options: { chat_template_kwargs: { enable_thinking: false } } },
  { name: 'enable_thinking true (no change)', messages: CHAT, options: { chat_template_kwargs: { enable_thinking: true } } },
  { name: 'enable_thinking 0 (not the boolean false: no change)', messages: CHAT, options: { chat_template_kwargs: { enable_thinking: 0 } } },
  { name: 'reasoning_effort "none" (enable_thinking false)', messages: CHAT, options: { reasoning_effort: 'none' } },
  { name: 'reasoning_effort "low" (enable_thinking true: no change)', messages: CHAT, options: { reasoning_effort: 'low' } },
  { name: 'reasoning_effort "none" with chat_template_kwargs.enable_thinking true (the kwargs win)', messages: CHAT, options: { reasoning_effort: 'none', chat_template_kwargs: { enable_thinking: true } } },
  { name: 'enable_thinking false without the generation prompt', messages: CHAT, options: { add_generation_prompt: false, chat_template_kwargs: { enable_thinking: false } } },
  { name: 'add_generation_prompt false', messages: CHAT, options: { add_generation_prompt: false } },
  { name: 'add_generation_prompt false with tools', messages: CHAT, options: { add_generation_prompt: false, tools: [WEATHER] } },
  { name: 'date_string', messages: CHAT, options: { chat_template_kwargs: { date_string: '01 Jan 2030' } } },
  { name: 'date_string null (dropped: the default date)', messages: CHAT, options: { chat_template_kwargs: { date_string: null } } },
  { name: 'tools_in_user_message false', messages: CHAT, options: { tools: [WEATHER], chat_template_kwargs: { tools_in_user_message: false } } },
  { name: 'tools_in_user_message "" (falsy)', messages: CHAT, options: { tools: [WEATHER], chat_template_kwargs: { tools_in_user_message: '' } } },
  { name: 'tools_in_user_message 1 (truthy)', messages: CHAT, options: { tools: [WEATHER], chat_template_kwargs: { tools_in_user_message: 1 } } },
  { name: 'custom_tools replace the request tools', messages: CHAT, options: { tools: [WEATHER], chat_template_kwargs: { custom_tools: [{ name: 'raw', parameters: { a: 1 } }] } }, only: ['llama3.1', 'llama3.2'] },
  { name: 'a tools variable replaces the request tools, as it is', messages: CHAT, options: { tools: [WEATHER], chat_template_kwargs: { tools: [{ name: 'raw', x: [1, 2] }] } } },
  { name: 'an empty tools variable', messages: CHAT, options: { chat_template_kwargs: { tools: [] } } },
  { name: 'bos_token', messages: CHAT, options: { chat_template_kwargs: { bos_token: '<s>' } } },
  { name: 'keys no template reads, and the request flags under chat_template_kwargs, have no effect', messages: CHAT, options: { chat_template_kwargs: { foo: 1, thinking: true, add_generation_prompt: false, documents: [] } } },
  { name: 'continue_final_message: an assistant prefill', messages: PREFILL, options: { add_generation_prompt: false, continue_final_message: true } },
  { name: 'continue_final_message with tools and enable_thinking', messages: PREFILL, options: { add_generation_prompt: false, continue_final_message: true, tools: [WEATHER], chat_template_kwargs: { enable_thinking: false } } },
  { name: 'continue_final_message: a user turn', messages: CHAT, options: { add_generation_prompt: false, continue_final_message: true } },
  { name: 'continue_final_message: trailing spaces (trimmed by Llama’s template)', messages: [...CHAT, { role: 'assistant', content: 'Sure,  ' }], options: { add_generation_prompt: false, continue_final_message: true } },
  // @huggingface/jinja's lstrip('\n') strips spaces too (Qwen3): Qwen3 is checked against Python's Jinja2 below
  { name: 'continue_final_message: leading spaces', messages: [...CHAT, { role: 'user', content: '  Sure,  ' }], options: { add_generation_prompt: false, continue_final_message: true } },
  { name: 'continue_final_message: an empty prefill', messages: [...CHAT, { role: 'assistant', content: '' }], options: { add_generation_prompt: false, continue_final_message: true } },
  {
    name: 'continue_final_message: a tool result',
    messages: [{ role: 'user', content: 'Weather?' }, { role: 'assistant', content: null, tool_calls: [CALL('get_weather', '{"city": "Paris"}')] }, { role: 'tool', content: 'sunny' }],
    options: { add_generation_prompt: false, continue_final_message: true, tools: [WEATHER] },
  },
  {
    name: 'continue_final_message: the only message is the first user turn, with tools in it',
    messages: [{ role: 'user', content: 'Weather in' }],
    options: { add_generation_prompt: false, continue_final_message: true, tools: [WEATHER] },
  },
  { name: 'continue_final_message: a prefill of thinking (Qwen3 rewrites it)', messages: [...CHAT, { role: 'assistant', content: '<think>\nhmm' }], options: { add_generation_prompt: false, continue_final_message: true } },
];

describe('chat_template_kwargs, add_generation_prompt, continue_final_message: byte-equal to the models’ templates rendered by Jinja', () => {
  for (const c of CASES) {
    for (const name of c.only ?? NAMES) {
      it(`${name}: ${c.name}`, () => {
        expect(ours(name, c.messages, c.options)).toBe(jinja(name, c.messages, c.options));
      });
    }
  }

  it('enable_thinking false appends the empty think block to Qwen3’s generation prompt only', () => {
    const off = renderQwenChat(CHAT, 'qwen3', { chat_template_kwargs: { enable_thinking: false } });
    expect(off).toBe(`${renderQwenChat(CHAT, 'qwen3')}<think>\n\n</think>\n\n`);
    expect(renderQwenChat(CHAT, 'qwen2.5', { chat_template_kwargs: { enable_thinking: false } })).toBe(renderQwenChat(CHAT, 'qwen2.5'));
    const t = getTokenizer('qwen3');
    // <think>, </think> are single added tokens: 2 ids for them and 2 for the newlines after each
    expect(t.chatPromptTokenIds(CHAT, { chat_template_kwargs: { enable_thinking: false } }).length - t.chatPromptTokenIds(CHAT).length).toBe(4);
  });

  it('a final message the template does not write cannot be continued (vLLM: 400), as transformers refuses it', () => {
    const toolCallLast: ChatMessage[] = [{ role: 'user', content: 'Weather?' }, { role: 'assistant', content: null, tool_calls: [CALL('get_weather', '{"city": "Paris"}')] }];
    for (const name of ['llama3.1', 'llama3.2'] as const) {
      const o = { add_generation_prompt: false, continue_final_message: true, tools: [WEATHER] };
      expect(() => jinja(name, toolCallLast, o)).toThrow();
      expect(() => ours(name, toolCallLast, o)).toThrow(ChatTemplateError);
    }
    // Qwen3 rewrites an assistant turn with </think>: the final message is not in the text any more
    const rewritten: ChatMessage[] = [...CHAT, { role: 'assistant', content: 'a</think>b' }];
    const o = { add_generation_prompt: false, continue_final_message: true };
    expect(() => jinja('qwen3', rewritten, o)).toThrow();
    expect(() => ours('qwen3', rewritten, o)).toThrow(/continue_final_message: continue_final_message is set but the final message does not appear/);
    expect(ours('qwen2.5', rewritten, o)).toBe(jinja('qwen2.5', rewritten, o));
    // both flags (the schema refuses it first; the renderer too, as transformers)
    expect(() => ours('qwen3', PREFILL, { continue_final_message: true })).toThrow(ChatTemplateError);
  });

  it('template variables of a type the template cannot use, or that kvmgr does not model, are refused with the key named', () => {
    const bad: [Name, Record<string, unknown>, string][] = [
      ['llama3.1', { date_string: 20300101 }, 'chat_template_kwargs.date_string: expected a string, got 20300101'],
      ['llama3.2', { bos_token: 1 }, 'chat_template_kwargs.bos_token: expected a string, got 1'],
      ['llama3.1', { custom_tools: { name: 'x' } }, 'chat_template_kwargs.custom_tools: expected an array of tools, got {"name":"x"}'],
      ['qwen3', { tools: 'x' }, 'chat_template_kwargs.tools: expected an array of tools, got "x"'],
      ['llama3.1', { builtin_tools: ['brave_search'] }, "chat_template_kwargs.builtin_tools: the llama3.1 chat template reads this variable, which kvmgr's renderer does not support"],
      ['llama3.2', { strftime_now: 'x' }, "chat_template_kwargs.strftime_now: the llama3.2 chat template reads this variable, which kvmgr's renderer does not support"],
    ];
    for (const [name, kw, message] of bad) {
      let err: unknown;
      try {
        ours(name, CHAT, { chat_template_kwargs: kw });
      } catch (e) {
        err = e;
      }
      expect(err, message).toBeInstanceOf(ChatTemplateError);
      expect((err as ChatTemplateError).message).toBe(message);
      expect((err as ChatTemplateError).code).toBe('KVMGR_INVALID_ARGUMENT');
      expect((err as ChatTemplateError).param).toBe(message.slice(0, message.indexOf(':')));
    }
    // templates that do not read the key ignore it, as vLLM drops it
    expect(ours('llama3.2', CHAT, { chat_template_kwargs: { builtin_tools: ['brave_search'] } })).toBe(ours('llama3.2', CHAT, {}));
    expect(ours('qwen3', CHAT, { chat_template_kwargs: { date_string: 5, bos_token: 1 } })).toBe(ours('qwen3', CHAT, {}));
  });

  it('renderChatOr400: a 400 naming the field; with dropUnsupported, variables kvmgr does not model are left out and named, real faults still refused', () => {
    const kw = { builtin_tools: ['brave_search'], date_string: '02 Feb 2030', strftime_now: 'x' };
    const render = (o: ChatRenderOptions) => ours('llama3.1', CHAT, o);
    const strict = renderChatOr400(render, { chat_template_kwargs: kw });
    expect(strict.ok).toBe(false);
    if (!strict.ok) {
      expect(strict.error.status).toBe(400);
      expect(strict.error.body.error.param).toBe('chat_template_kwargs.builtin_tools');
    }
    const loose = renderChatOr400(render, { chat_template_kwargs: kw }, true);
    // (Llama 3.1's template reads no strftime_now: kept, and ignored as Jinja ignores it)
    expect(loose).toEqual({ ok: true, value: render({ chat_template_kwargs: { date_string: '02 Feb 2030', strftime_now: 'x' } }), droppedVariables: ['builtin_tools'] });
    expect(renderChatOr400((o) => ours('llama3.2', CHAT, o), { chat_template_kwargs: kw }, true)).toMatchObject({ ok: true, droppedVariables: ['strftime_now'] });
    // the options given are not changed
    expect(Object.keys(kw)).toEqual(['builtin_tools', 'date_string', 'strftime_now']);
    // what vLLM refuses too (a wrong type) is refused either way
    const wrongType = renderChatOr400(render, { chat_template_kwargs: { builtin_tools: ['x'], date_string: 5 } }, true);
    expect(wrongType.ok).toBe(false);
    if (!wrongType.ok) expect(wrongType.error.body.error.param).toBe('chat_template_kwargs.date_string');
    // errors that are not the renderer's are thrown on
    expect(() => renderChatOr400(() => { throw new RangeError('boom'); }, {})).toThrow('boom');
  });

  it('the Tokenizer interface takes the request as its options (text and ids, Llama’s two-piece encoding included)', () => {
    const body = parseOpenAiRequest(ChatCompletionRequestSchema, {
      messages: PREFILL,
      tools: [WEATHER],
      add_generation_prompt: false,
      continue_final_message: true,
      chat_template_kwargs: { enable_thinking: false, tools_in_user_message: false, date_string: '02 Feb 2030' },
    });
    expect(body.ok).toBe(true);
    if (!body.ok) return;
    for (const name of ['llama3', 'llama3.1', 'qwen2', 'qwen2.5', 'qwen3'] as const) {
      const t = getTokenizer(name);
      const text = t.renderChat(body.value.messages, body.value);
      // Llama's template trims the message (the cut right-strips), Qwen's keeps its trailing space
      expect(text.endsWith(name.startsWith('llama') ? 'The weather in Paris is' : 'The weather in Paris is '), name).toBe(true);
      expect(t.chatPromptTokenIds(body.value.messages, body.value), name).toEqual(t.encode(text));
    }
  });
});

const word = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '\n', 'é', '<', '>', '"', '1', '/'), maxLength: 12 });
const identifier = fc.string({ unit: fc.constantFrom('a', 'b', '_'), minLength: 1, maxLength: 6 });
const json = fc.oneof(fc.constant(null), fc.boolean(), fc.integer({ min: -5, max: 50 }), word, fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 2 }));

/** A conversation: optional system, a user turn, then user / assistant / tool-call + tool-result turns (assistant texts start with no space: @huggingface/jinja's lstrip differs from Python's). */
const conversation: fc.Arbitrary<ChatMessage[]> = fc
  .tuple(
    fc.option(word, { nil: undefined }),
    word,
    fc.array(
      fc.oneof(
        word.map((x) => [{ role: 'user' as const, content: x }]),
        word.map((x) => [{ role: 'assistant' as const, content: x.trimStart() }]),
        fc.tuple(identifier, word).map(([n, r]) => [
          { role: 'assistant' as const, content: null, tool_calls: [CALL(n, '{"k": 1}')] },
          { role: 'tool' as const, content: r },
        ]),
      ),
      { maxLength: 3 },
    ),
    fc.option(word.map((x) => x.trimStart()), { nil: undefined }),
  )
  .map(([sys, first, turns, prefill]) => [
    ...(sys === undefined ? [] : [{ role: 'system' as const, content: sys }]),
    { role: 'user' as const, content: first },
    ...turns.flat(),
    ...(prefill === undefined ? [] : [{ role: 'assistant' as const, content: prefill }]),
  ]);

const kwargs = fc.record(
  {
    enable_thinking: fc.oneof(fc.boolean(), fc.constant(null), fc.constant(0)),
    date_string: fc.option(word, { nil: null }),
    tools_in_user_message: json,
    custom_tools: fc.array(fc.dictionary(identifier, json, { maxKeys: 2 }), { maxLength: 2 }),
    tools: fc.array(fc.dictionary(identifier, json, { maxKeys: 2 }), { maxLength: 2 }),
    unread: json,
  },
  { requiredKeys: [] },
);
const options: fc.Arbitrary<ChatRenderOptions> = fc
  .tuple(fc.option(fc.array(fc.constant(WEATHER), { maxLength: 2 }), { nil: null }), fc.option(kwargs, { nil: undefined }), fc.constantFrom('generate', 'no-prompt', 'continue'))
  .map(([tools, kw, mode]) => ({
    tools,
    ...(kw === undefined ? {} : { chat_template_kwargs: kw }),
    ...(mode === 'generate' ? {} : { add_generation_prompt: false }),
    ...(mode === 'continue' ? { continue_final_message: true } : {}),
  }));

describe('property: random conversations × template variables × flags', () => {
  it('render as the templates do (@huggingface/jinja), and refuse what transformers refuses', () => {
    fc.assert(
      fc.property(conversation, options, (messages, o) => {
        for (const n of NAMES) {
          // Llama: tools in the user message with no message after the system one raise in the template; kvmgr leaves the block out (see renderChatTemplate)
          expect(outcome(() => ours(n, messages, o)), n).toBe(outcome(() => jinja(n, messages, o)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('Llama’s ids in two pieces are the ids of the whole text, and Qwen’s are its text’s', () => {
    fc.assert(
      fc.property(conversation, options, (messages, o) => {
        for (const n of ['llama3.1', 'qwen3'] as const) {
          const t = getTokenizer(n);
          let text: string;
          try {
            text = t.renderChat(messages, o);
          } catch {
            continue;
          }
          expect(t.chatPromptTokenIds(messages, o)).toEqual(t.encode(text));
        }
      }),
      { numRuns: 100 },
    );
  });
});

if (!hasPythonJinja2) console.warn('chat-template-kwargs.test.ts: skipping the Python Jinja2 cross-checks: `python3 -c "import jinja2"` fails on this machine');

/** Python's str.strip() and JavaScript's trim differ here, as do Python's and @huggingface/jinja's lstrip / rstrip. */
const pyWord = fc.string({ unit: fc.constantFrom('a', ' ', '\n', '\u0085', '\ufeff', '<', '/', '>', 'é'), maxLength: 10 });

describe.skipIf(!hasPythonJinja2)('byte-equal to Python Jinja2 (transformers’ settings and cut), where @huggingface/jinja differs', () => {
  it('fixed cases and random prefills with Python whitespace', () => {
    const prefills = fc.sample(fc.tuple(pyWord, pyWord, fc.constantFrom<ChatRenderOptions>({ add_generation_prompt: false, continue_final_message: true }, { add_generation_prompt: false, chat_template_kwargs: { enable_thinking: false } })), {
      numRuns: 80,
      seed: 7,
    });
    const all: { name: Name; messages: readonly ChatMessage[]; options: ChatRenderOptions }[] = [
      ...CASES.flatMap((c) => (c.only ?? NAMES).map((name) => ({ name, messages: c.messages, options: c.options }))),
      ...prefills.flatMap(([u, a, o]) => NAMES.map((name) => ({ name, messages: [{ role: 'user' as const, content: u }, { role: 'assistant' as const, content: a }], options: o }))),
    ];
    const input = all.map(({ name, messages, options: o }) => ({
      template: name,
      continue: o.continue_final_message === true,
      ctx: { ...context(name, o), messages: messages.map((m) => ({ role: m.role, content: chatMessageText(m), ...(m.tool_calls !== undefined ? { tool_calls: m.tool_calls } : {}) })) },
    }));
    const expected = renderWithJinja2(input, '<error>');
    for (const [i, it] of all.entries()) expect(outcome(() => ours(it.name, it.messages, it.options)), `${it.name} ${JSON.stringify([it.messages, it.options])}`).toBe(expected[i]);
    // the cut right-strips Python whitespace (U+0085) and keeps U+FEFF, which Python does not strip
    expect(jinjaTrim('\ufeff')).toBe('\ufeff');
  });
});

describe('ChatCompletionRequestSchema: chat-template fields', () => {
  const messages = [{ role: 'user', content: 'hi' }];
  it('refuses bad values with one line naming the field', () => {
    const errors: [Record<string, unknown>, string, string][] = [
      [{ chat_template_kwargs: [1] }, 'chat_template_kwargs: expected an object of chat template variables', 'chat_template_kwargs'],
      [{ chat_template_kwargs: 'x' }, 'chat_template_kwargs: expected an object of chat template variables, got "x"', 'chat_template_kwargs'],
      [{ add_generation_prompt: 'no' }, 'add_generation_prompt: expected a boolean, got "no"', 'add_generation_prompt'],
      [{ add_generation_prompt: null }, 'add_generation_prompt: expected a boolean, got null', 'add_generation_prompt'],
      [{ continue_final_message: 1 }, 'continue_final_message: expected a boolean, got 1', 'continue_final_message'],
      [{ continue_final_message: true, add_generation_prompt: true }, 'continue_final_message: Cannot set both `continue_final_message` and `add_generation_prompt` to True.', 'continue_final_message'],
      [
        { continue_final_message: true },
        'continue_final_message: continue_final_message and add_generation_prompt are not compatible (add_generation_prompt defaults to true: set it to false to continue the final message)',
        'continue_final_message',
      ],
      [{ chat_template_kwargs: { tokenize: true } }, "chat_template_kwargs.tokenize: Found unexpected chat template kwargs from request: {'tokenize'}", 'chat_template_kwargs.tokenize'],
      [{ chat_template_kwargs: { chat_template: '{{x}}', tokenize: false } }, "chat_template_kwargs.chat_template: Found unexpected chat template kwargs from request: {'chat_template', 'tokenize'}", 'chat_template_kwargs.chat_template'],
      [{ chat_template_kwargs: { messages: [] } }, 'chat_template_kwargs.messages: `messages` is set by the server and cannot be a chat template variable', 'chat_template_kwargs.messages'],
    ];
    for (const [fields, message, param] of errors) {
      const r = parseOpenAiRequest(ChatCompletionRequestSchema, { messages, ...fields });
      expect(r.ok ? 'ok' : r.error.body.error.message).toBe(message);
      expect(r.ok ? null : [r.error.status, r.error.body.error.param]).toEqual([400, param]);
    }
  });
  it('accepts the fields vLLM accepts and keeps them', () => {
    const ok = parseOpenAiRequest(ChatCompletionRequestSchema, { messages, chat_template_kwargs: { enable_thinking: false, messages: null }, add_generation_prompt: false, continue_final_message: true });
    expect(ok.ok && [ok.value.chat_template_kwargs, ok.value.add_generation_prompt, ok.value.continue_final_message]).toEqual([{ enable_thinking: false, messages: null }, false, true]);
    expect(parseOpenAiRequest(ChatCompletionRequestSchema, { messages, chat_template_kwargs: null, continue_final_message: false }).ok).toBe(true);
  });
});
