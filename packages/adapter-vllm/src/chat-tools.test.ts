/**
 * Ground truth for the chat renderers with `tools`: the models' own chat templates
 * (src/fixtures/*.jinja, copies of each `tokenizer_config.json` `chat_template`) rendered by a
 * real Jinja engine (`@huggingface/jinja`), given what vLLM gives them (`tools` as
 * `ChatCompletionToolsParam.model_dump()`, tool-call arguments parsed, content parts joined), must
 * equal kvmgr's renderers byte for byte.
 */
import { readFileSync } from 'node:fs';
import { Template } from '@huggingface/jinja';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChatTemplateError, renderChatOr400 } from './chat-template-kwargs.js';
import { PYTHON_JSON_MAX_DEPTH, jinjaTrim, pythonJsonDumps, templateTools } from './chat-tools.js';
import { markRequestToolsJson } from './json-marks.js';
import { parseOpenAiRequest } from './openai-api-errors.js';
import { type ChatMessage, type ChatTool, ChatCompletionRequestSchema, chatMessageText } from './openai-api.js';
import { renderChatTemplate, strftimeDayMonthYear } from './tokenizer.js';
import { renderQwenChat } from './tokenizer-qwen.js';
import { getTokenizer } from './tokenizers.js';
import { type TemplateName, hasPythonJinja2, renderBodiesWithJinja2, renderWithJinja2, templatePath } from '../test/python-jinja.js';

/** A fixture template without its source line. */
function fixture(name: TemplateName): Template {
  const text = readFileSync(templatePath(name), 'utf8');
  return new Template(text.slice(text.indexOf('\n') + 1));
}

const TEMPLATES: Record<TemplateName, Template> = { 'llama3.1': fixture('llama3.1'), 'llama3.2': fixture('llama3.2'), 'qwen2.5': fixture('qwen2.5'), qwen3: fixture('qwen3') };
type Name = TemplateName;
const NAMES = Object.keys(TEMPLATES) as Name[];

/** Llama 3.2's date: a fixed clock, the same date given to the template as `date_string`. */
const NOW = new Date(2026, 11, 7, 10);

/** The conversation as vLLM hands it to the template (chat_utils: content joined, tool calls' arguments parsed, an empty tool_calls list dropped). */
function vllmMessages(messages: readonly ChatMessage[]): Record<string, unknown>[] {
  return messages.map((m) => {
    const out: Record<string, unknown> = { role: m.role, content: chatMessageText(m) };
    if (m.tool_calls !== undefined && m.tool_calls.length > 0) {
      out['tool_calls'] = m.tool_calls.map((c) => ({ id: c.id, type: c.type, function: { name: c.function.name, arguments: c.function.arguments === '' ? {} : JSON.parse(c.function.arguments) } }));
    }
    const rc = (m as { reasoning_content?: unknown }).reasoning_content;
    if (typeof rc === 'string') out['reasoning_content'] = rc;
    return out;
  });
}

function jinja(name: Name, messages: readonly ChatMessage[], tools: readonly ChatTool[] | null): string {
  return TEMPLATES[name].render({
    messages: vllmMessages(messages),
    tools: tools === null ? null : templateTools(tools),
    bos_token: '<|begin_of_text|>',
    add_generation_prompt: true,
    ...(name === 'llama3.2' ? { date_string: strftimeDayMonthYear(NOW) } : {}),
  });
}

function ours(name: Name, messages: readonly ChatMessage[], tools: readonly ChatTool[] | null): string {
  if (name === 'llama3.1' || name === 'llama3.2') return renderChatTemplate(messages, name, NOW, { tools });
  return renderQwenChat(messages, name, { tools });
}

const WEATHER: ChatTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Get the current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', description: 'The city' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city'] },
  },
};
const SEARCH: ChatTool = { type: 'function', function: { name: 'search', description: 'Search the web', parameters: { type: 'object', properties: { q: { type: 'string' } } } } };
const UNICODE: ChatTool = {
  type: 'function',
  function: { name: 'traduire', description: 'Traduit « un texte » — 你好, 🙂, "quotes", back\\slash,\nnew line\tand tab', parameters: { type: 'object', properties: { texte: { type: 'string', description: 'día' } } } },
};
const NESTED: ChatTool = {
  type: 'function',
  function: {
    name: 'book',
    parameters: {
      type: 'object',
      properties: {
        legs: { type: 'array', items: { type: 'object', properties: { from: { type: 'string' }, to: { type: 'string' }, stops: { type: 'integer', minimum: 0, maximum: 3 } } }, minItems: 1 },
        price: { type: 'number', exclusiveMinimum: 0.5, multipleOf: 0.01, default: 12.75 },
        flexible: { type: 'boolean', default: false },
        note: { type: ['string', 'null'], default: null },
        meta: { type: 'object', properties: {}, additionalProperties: true },
        tags: { type: 'array', items: {}, default: [] },
      },
      required: ['legs'],
    },
  },
};
/** No description, no parameters, no type, an extra field on the function (vLLM keeps it, after the declared ones). */
const BARE = { function: { name: 'ping', strict: true } } as ChatTool;

const CALL = (name: string, args: string, id = 'call_1') => ({ id, type: 'function' as const, function: { name, arguments: args } });

interface Case {
  readonly name: string;
  readonly messages: ChatMessage[];
  readonly tools: ChatTool[] | null;
  /** Templates the case applies to (the Llama ones refuse several tool calls in one turn). */
  readonly only?: readonly Name[];
}

const CASES: readonly Case[] = [
  { name: 'no tools', messages: [{ role: 'system', content: ' Be brief. ' }, { role: 'user', content: 'Hi\n' }], tools: null },
  { name: 'tools and a system message', messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Weather in Paris?' }], tools: [WEATHER] },
  { name: 'tools without a system message', messages: [{ role: 'user', content: '  Weather in Paris?  ' }], tools: [WEATHER] },
  {
    name: 'tool call, tool result and follow-up',
    messages: [
      { role: 'system', content: 'Use tools.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [CALL('get_weather', '{"city": "Paris", "unit": "celsius"}')] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 21, "sky": "clear"}' },
      { role: 'assistant', content: 'It is 21 °C and clear.' },
      { role: 'user', content: 'And tomorrow?' },
    ],
    tools: [WEATHER, SEARCH],
  },
  { name: 'multiple tools', messages: [{ role: 'user', content: 'Find it' }], tools: [WEATHER, SEARCH, BARE, NESTED] },
  { name: 'unicode in descriptions', messages: [{ role: 'system', content: 'Réponds en français.' }, { role: 'user', content: 'Traduis « bonjour »' }], tools: [UNICODE] },
  { name: 'nested parameter schemas', messages: [{ role: 'user', content: 'Book Paris to Rome' }], tools: [NESTED] },
  { name: 'a tool without description or parameters', messages: [{ role: 'user', content: 'ping' }], tools: [BARE] },
  { name: 'an empty tools list', messages: [{ role: 'user', content: 'hi' }], tools: [] },
  {
    name: 'empty arguments and a tool result with quotes',
    messages: [
      { role: 'user', content: 'ping it' },
      { role: 'assistant', content: '', tool_calls: [CALL('ping', '')] },
      { role: 'tool', content: 'said "pong"\nok' },
    ],
    tools: [BARE],
  },
  {
    name: 'parallel tool calls and tool results',
    messages: [
      { role: 'user', content: 'Weather in Paris and Rome?' },
      { role: 'assistant', content: 'Checking both.', tool_calls: [CALL('get_weather', '{"city":"Paris"}'), CALL('get_weather', '{"city":"Rome"}', 'call_2')] },
      { role: 'tool', content: 'sunny' },
      { role: 'tool', content: 'rainy' },
    ],
    tools: [WEATHER],
    only: ['qwen2.5', 'qwen3'],
  },
  {
    name: 'Qwen3 with reasoning after the last user turn',
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: '<think>\nI should call the tool.\n</think>\n\n', tool_calls: [CALL('get_weather', '{"city":"Paris"}')] },
      { role: 'tool', content: 'sunny' },
      { role: 'assistant', content: '<think>\nThe tool said sunny.\n</think>\n\nIt is sunny.' },
    ],
    tools: [WEATHER],
    only: ['qwen3', 'qwen2.5'],
  },
  {
    name: 'Qwen3 with reasoning_content and an earlier thinking turn',
    messages: [
      { role: 'user', content: 'Q1' },
      { role: 'assistant', content: '<think>\nold\n</think>\n\nA1' },
      { role: 'user', content: 'Q2' },
      { role: 'assistant', content: 'A2', reasoning_content: 'new thought', tool_calls: [CALL('search', '{"q":"x"}')] } as ChatMessage,
      { role: 'tool', content: 'result' },
    ],
    tools: [SEARCH],
    only: ['qwen3'],
  },
];

const word = fc.string({ unit: fc.constantFrom('a', 'b', 'Z', ' ', '_', '1', 'é', '你', '🙂', '"', '\\', '\n', '\t', ':', ',', '{', '}'), maxLength: 12 });
const identifier = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '_', '1'), minLength: 1, maxLength: 8 });
const json: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -1000, max: 100000 }),
    // floats from 1e-4 up: below it @huggingface/jinja writes JavaScript's form, not Python's (see the Jinja2 tests)
    fc.constantFrom(0.5, -2.25, 3.14, 123.456, 0.0001),
    word,
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(identifier, tie('v'), { maxKeys: 3 }),
  ),
})).v;
const tool: fc.Arbitrary<ChatTool> = fc.record(
  {
    type: fc.constant('function' as const),
    function: fc.record({ name: identifier, description: fc.option(word, { nil: undefined }), parameters: fc.option(fc.dictionary(identifier, json, { maxKeys: 4 }), { nil: undefined }) }, { requiredKeys: ['name'] }),
  },
  { requiredKeys: ['function'] },
);
const toolList = fc.option(fc.array(tool, { maxLength: 4 }), { nil: null });
const text = fc.string({ unit: fc.constantFrom('a', ' ', '\n', 'é', '<', '>', '"', 'x', '1'), maxLength: 16 });
/** Python's str.strip() and JavaScript's trim differ on these (@huggingface/jinja's trim is JavaScript's): only in the Jinja2 property. */
const pyText = fc.string({ unit: fc.constantFrom('a', ' ', '\n', 'é', '<', '"', '\u001c', '\u0085', '\ufeff'), maxLength: 16 });

/** A conversation: optional system, a user turn, then user / assistant / tool-call + tool-result turns. */
function conversation(forHfJinja: boolean): fc.Arbitrary<ChatMessage[]> {
  const t = forHfJinja ? text : pyText;
  // @huggingface/jinja's lstrip('\n') strips all leading whitespace (Python's only newlines)
  const reply = forHfJinja ? text.map((x) => x.trimStart()) : pyText;
  const turn: fc.Arbitrary<ChatMessage[]> = fc.oneof(
    t.map((x) => [{ role: 'user' as const, content: x }]),
    reply.map((x) => [{ role: 'assistant' as const, content: x }]),
    fc.tuple(identifier, fc.dictionary(identifier, json, { maxKeys: 3 }), t).map(([n, args, result]) => [
      { role: 'assistant' as const, content: null, tool_calls: [CALL(n, JSON.stringify(args))] },
      { role: 'tool' as const, content: result },
    ]),
  );
  return fc.tuple(fc.option(t, { nil: undefined }), t, fc.array(turn, { maxLength: 4 })).map(([sys, first, turns]) => [
    ...(sys === undefined ? [] : [{ role: 'system' as const, content: sys }]),
    { role: 'user' as const, content: first },
    ...turns.flat(),
  ]);
}

describe('chat templates with tools: byte-equal to the models’ templates rendered by Jinja', () => {
  for (const c of CASES) {
    for (const name of c.only ?? NAMES) {
      it(`${name}: ${c.name}`, () => {
        expect(ours(name, c.messages, c.tools)).toBe(jinja(name, c.messages, c.tools));
      });
    }
  }

  it('the Tokenizer interface passes tools through (text and ids)', () => {
    const c = CASES[3] as Case;
    for (const name of NAMES) {
      if (name === 'llama3.2') continue; // today's date: checked through renderChatTemplate with a fixed clock
      const t = getTokenizer(name);
      const expected = jinja(name, c.messages, c.tools);
      expect(t.renderChat(c.messages, { tools: c.tools })).toBe(expected);
      expect(t.chatPromptTokenIds(c.messages, { tools: c.tools })).toEqual(t.encode(expected));
      // without tools the prompt differs from the first turns on (Llama: the system turn; Qwen: the system turn)
      expect(t.renderChat(c.messages)).not.toBe(expected);
    }
  });

  it('property: Llama’s ids, encoded in two pieces split after the tools block, are the ids of the whole rendered text', () => {
    const t = getTokenizer('llama3.1');
    fc.assert(
      fc.property(conversation(false), toolList, (messages, tools) => {
        expect(t.chatPromptTokenIds(messages, { tools })).toEqual(t.encode(t.renderChat(messages, { tools })));
      }),
      { numRuns: 200 },
    );
    for (const c of CASES) expect(t.chatPromptTokenIds(c.messages, { tools: c.tools }), c.name).toEqual(t.encode(t.renderChat(c.messages, { tools: c.tools })));
  });

  it('a request body’s tools, validated by the schema, render as the template does', () => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [{ function: { name: 'f', parameters: { type: 'object' } } }, WEATHER], tool_choice: 'none' };
    const r = parseOpenAiRequest(ChatCompletionRequestSchema, body);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.tool_choice).toBe('none');
    const tools = r.value.tools ?? null;
    for (const name of NAMES) expect(ours(name, r.value.messages, tools)).toBe(jinja(name, r.value.messages, tools));
  });

  it('property: random tool lists and conversations render as the templates do', () => {
    // assistant texts start with no space here (see conversation()); the Jinja2 property takes any text
    fc.assert(
      fc.property(conversation(true), toolList, (messages, tools) => {
        for (const n of NAMES) expect(ours(n, messages, tools), n).toBe(jinja(n, messages, tools));
      }),
      { numRuns: 150 },
    );
  });
});

if (!hasPythonJinja2) console.warn('chat-tools.test.ts: skipping the Python Jinja2 cross-checks: `python3 -c "import jinja2"` fails on this machine');

function python(items: { name: Name; messages: readonly ChatMessage[]; tools: readonly ChatTool[] | null }[]): string[] {
  return renderWithJinja2(
    items.map(({ name, messages, tools }) => ({
    template: name,
    ctx: {
      // arguments stay strings here: Python parses them (json.loads, as vLLM), so a float stays a float
      messages: messages.map((m) => ({
        role: m.role,
        content: chatMessageText(m),
        ...(m.tool_calls !== undefined && m.tool_calls.length > 0 ? { tool_calls: m.tool_calls } : {}),
        ...('reasoning_content' in m ? { reasoning_content: m['reasoning_content'] } : {}),
      })),
      tools: tools === null ? null : templateTools(tools),
      bos_token: '<|begin_of_text|>',
      add_generation_prompt: true,
      ...(name === 'llama3.2' ? { date_string: strftimeDayMonthYear(NOW) } : {}),
    },
  })),
  );
}

describe.skipIf(!hasPythonJinja2)('chat templates with tools: byte-equal to Python Jinja2 (transformers’ settings), where @huggingface/jinja differs', () => {
  it('floats below 1e-4 in tool schemas and tool-call arguments are written as Python’s repr (1e-05)', () => {
    const tool: ChatTool = { type: 'function', function: { name: 'f', description: 'small numbers', parameters: { type: 'object', properties: { x: { type: 'number', default: 1e-5, minimum: -1.5e-7, maximum: 0.5 } } } } };
    const messages: ChatMessage[] = [
      { role: 'user', content: 'go' },
      { role: 'assistant', content: null, tool_calls: [CALL('f', '{"x": 0.00002, "y": 3, "z": 2.5e-9}')] },
      { role: 'tool', content: 'done' },
    ];
    const items = NAMES.map((name) => ({ name, messages, tools: [tool] }));
    const expected = python(items);
    for (const [i, it] of items.entries()) expect(ours(it.name, it.messages, it.tools), it.name).toBe(expected[i]);
    expect(expected[0]).toContain('"default": 1e-05');
    // and every fixed case agrees with Python too
    const all = CASES.flatMap((c) => (c.only ?? NAMES).map((name) => ({ name, messages: c.messages, tools: c.tools })));
    const py = python(all);
    for (const [i, it] of all.entries()) expect(ours(it.name, it.messages, it.tools), it.name).toBe(py[i]);
  });

  it('property: random tool lists and conversations render as Jinja2 renders them', () => {
    const samples = fc.sample(fc.tuple(conversation(false), toolList), { numRuns: 150, seed: 4242 });
    const items = samples.flatMap(([messages, tools]) => NAMES.map((name) => ({ name, messages, tools })));
    const expected = python(items);
    for (const [i, it] of items.entries()) expect(ours(it.name, it.messages, it.tools), `${it.name} ${JSON.stringify([it.messages, it.tools])}`).toBe(expected[i]);
  });
});


/**
 * Request bodies rendered as vLLM reads them (json.loads: numbers keep Python's int/float types),
 * the tools as vLLM dumps them, `chat_template_kwargs` as template variables.
 */
function pythonBodies(items: { name: Name; body: string }[]): string[] {
  return renderBodiesWithJinja2(items.map(({ name, body }) => ({ template: name, body, ...(name === 'llama3.2' ? { date_string: strftimeDayMonthYear(NOW) } : {}) })));
}

/** A request body read as the gateway and the engine server read it: JSON.parse, the schema, then the wire's marks. */
function oursFromBody(name: Name, body: string, marks = true): string {
  const r = parseOpenAiRequest(ChatCompletionRequestSchema, JSON.parse(body));
  if (!r.ok) throw new Error(r.error.body.error.message);
  if (marks) markRequestToolsJson(r.value, body);
  if (name === 'llama3.1' || name === 'llama3.2') return renderChatTemplate(r.value.messages, name, NOW, r.value);
  return renderQwenChat(r.value.messages, name, r.value);
}

/** Tools as Python clients write them (pydantic's `model_json_schema`: `1.0`, `0.0`), floats in other spellings, and integer-like keys out of JavaScript's order. */
const FLOAT_TOOLS = `[
  {"type": "function", "function": {"name": "sample", "description": "Sample text", "parameters": {"type": "object",
    "properties": {"temperature": {"type": "number", "default": 1.0, "minimum": 0.0, "maximum": 2.0},
      "top_k": {"type": "integer", "default": 50, "maximum": 1e3},
      "scale": {"type": "number", "enum": [-0.0, 1e16, 2.50e1, 0.5, 1E+2, 123456789012345678.0]},
      "b": {"type": "string"}, "10": {"type": "string"}, "a": {"type": "string"}, "2": {"type": "boolean", "default": false}},
    "required": ["temperature"]}, "x-version": 2.0, "7": true}, "z": 1, "3": 4.0},
  {"type": "function", "function": {"name": "plain", "parameters": {"type": "object", "properties": {"n": {"type": "integer", "default": 3}}}}}
]`;

describe.skipIf(!hasPythonJinja2)('chat templates with tools: request bodies byte-equal to vLLM’s json.loads + Jinja2 (integral floats, integer-like keys)', () => {
  const BODIES = [
    `{"model": "m", "messages": [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Sample 1.0"}], "tools": ${FLOAT_TOOLS}}`,
    `{"model": "m", "temperature": 1.0, "messages": [{"role": "user", "content": "go"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "sample", "arguments": "{\\"b\\": 1.0, \\"2\\": [3.0, 1e16, -0.0], \\"a\\": {\\"1\\": 2E1}}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "done"}, {"role": "user", "content": "again"}], "tools": ${FLOAT_TOOLS}}`,
  ];

  it('tools and tool-call arguments with 1.0, 1e3, -0.0, 1e16 and integer-like keys render as Python renders them', () => {
    const items = BODIES.flatMap((body) => NAMES.map((name) => ({ name, body })));
    const expected = pythonBodies(items);
    for (const [i, it] of items.entries()) expect(oursFromBody(it.name, it.body), `${it.name} body ${Math.floor(i / NAMES.length)}`).toBe(expected[i]);
    expect(expected[0]).toContain('"default": 1.0');
    expect(expected[0]).toContain('"enum": [\n                        -0.0,\n                        1e+16,\n                        25.0,');
    expect(expected[0]).toContain('"x-version": 2.0,\n        "7": true\n    },\n    "z": 1,\n    "3": 4.0');
    expect(expected[6]).toContain('{"b": 1.0, "2": [3.0, 1e+16, -0.0], "a": {"1": 20.0}}');
    // without the marks kvmgr writes JavaScript's view (1, integer keys first): the check can fail
    expect(oursFromBody('qwen3', BODIES[0] as string, false)).not.toBe(expected[3]);
  });

  it('template-variable tool lists (chat_template_kwargs) keep their floats and key order too', () => {
    const raw = '[{"name": "f", "parameters": {"x": {"default": 1.0}, "9": {}, "1": {}}}]';
    const items: { name: Name; body: string }[] = [
      { name: 'qwen2.5', body: `{"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"tools": ${raw}}}` },
      { name: 'llama3.1', body: `{"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"custom_tools": ${raw}}}` },
    ];
    const expected = pythonBodies(items);
    for (const [i, it] of items.entries()) expect(oursFromBody(it.name, it.body), it.name).toBe(expected[i]);
    expect(expected[0]).toContain('{"name": "f", "parameters": {"x": {"default": 1.0}, "9": {}, "1": {}}}');
  });

  it('one tool list sent as 1 and as 1.0 renders twice, each as Python does (the rendered-block cache tells them apart)', () => {
    const a = '{"messages": [{"role": "user", "content": "hi"}], "tools": [{"function": {"name": "f", "parameters": {"default": 1}}}]}';
    const b = a.replace('"default": 1', '"default": 1.0');
    const items = NAMES.flatMap((name) => [a, b, a].map((body) => ({ name, body })));
    const expected = pythonBodies(items);
    for (const [i, it] of items.entries()) expect(oursFromBody(it.name, it.body), `${it.name} ${it.body}`).toBe(expected[i]);
  });
});

describe('ChatCompletionRequestSchema: tools', () => {
  it('refuses a malformed tools list with one line naming the field', () => {
    const errors: [unknown, string][] = [
      [{ name: 'f' }, 'tools: expected an array of tools'],
      [[{ type: 'function', function: { description: 'no name' } }], 'tools[0].function.name: is required (expected string)'],
      [[{ type: 'fn', function: { name: 'a' } }], 'tools[0].type: expected type "function", got "fn"'],
      [[{ function: { name: 'a', parameters: [1] } }], 'tools[0].function.parameters: expected a JSON-schema object'],
      [[{ type: 'function' }], 'tools[0].function: is required (expected object)'],
      // vLLM: 400 "tools must not be an empty array" (OpenAI refuses it too); null or absent is no tools
      [[], 'tools: expected at least one tool (vLLM refuses an empty array: leave tools out)'],
    ];
    for (const [tools, message] of errors) {
      const r = parseOpenAiRequest(ChatCompletionRequestSchema, { messages: [{ role: 'user', content: 'hi' }], tools });
      expect(r.ok ? 'ok' : r.error.body.error.message).toBe(message);
    }
    expect(parseOpenAiRequest(ChatCompletionRequestSchema, { messages: [{ role: 'user', content: 'hi' }], tools: null }).ok).toBe(true);
    // type defaults to "function" (vLLM), extra fields and tool_choice pass through
    const ok = parseOpenAiRequest(ChatCompletionRequestSchema, { messages: [{ role: 'user', content: 'hi' }], tools: [{ function: { name: 'a', strict: true } }], tool_choice: { type: 'function', function: { name: 'a' } } });
    expect(ok.ok && ok.value.tools?.[0]?.function).toEqual({ name: 'a', strict: true });
    expect(ok.ok && ok.value.tool_choice).toEqual({ type: 'function', function: { name: 'a' } });
  });
});

describe('pythonJsonDumps (HF tojson: Python json.dumps, ensure_ascii=False)', () => {
  it('refuses a value nested deeper than PYTHON_JSON_MAX_DEPTH levels with a ChatTemplateError naming the field; renderChatOr400 answers 400 even past V8’s stack', () => {
    const nested = (depth: number): unknown => {
      let v: unknown = 1;
      for (let i = 0; i < depth; i++) v = i % 2 === 0 ? { a: v } : [v];
      return v;
    };
    expect(pythonJsonDumps(nested(PYTHON_JSON_MAX_DEPTH)).startsWith('[{"a": [{"a": ')).toBe(true);
    let err: unknown;
    try {
      pythonJsonDumps(nested(PYTHON_JSON_MAX_DEPTH + 1), 4, 'messages');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ChatTemplateError);
    expect((err as ChatTemplateError).param).toBe('messages');
    // 50,000 levels: JSON.stringify (the tools cache key) overflows before the renderer's own check
    const tools = [{ type: 'function' as const, function: { name: 'f', parameters: nested(50_000) as Record<string, unknown> } }];
    const messages: ChatMessage[] = [{ role: 'user', content: 'hi' }];
    for (const name of ['llama3.1', 'qwen3'] as const) {
      const r = renderChatOr400((o) => getTokenizer(name).chatPromptTokenIds(messages, o), { tools });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.body.error).toMatchObject({ param: 'tools', type: 'invalid_request_error' });
    }
  });

  // expected texts: Python 3 `json.dumps(json.loads(s), ensure_ascii=False[, indent=4])`
  it('one line: ", " and ": " separators, keys in order, unicode as is', () => {
    expect(pythonJsonDumps({ b: 1, a: [true, null, 'é"\\\n'], c: {} })).toBe('{"b": 1, "a": [true, null, "é\\"\\\\\\n"], "c": {}}');
    expect(pythonJsonDumps([])).toBe('[]');
    expect(pythonJsonDumps('\u0001\u001f\u007f\u2028')).toBe('"\\u0001\\u001f\u007f\u2028"');
  });
  it('indent=4: one item per line, "," between items, empty containers inline', () => {
    expect(pythonJsonDumps({ a: [1, { b: [] }], c: {} }, 4)).toBe('{\n    "a": [\n        1,\n        {\n            "b": []\n        }\n    ],\n    "c": {}\n}');
  });
  it('numbers: integral ones as ints, others as Python float repr', () => {
    expect([0.5, 1e-4, 1e-5, -1.5e-7, 123.456, 1e20, 2 ** 53 + 2, 1e21, -0].map((x) => pythonJsonDumps(x))).toEqual([
      '0.5',
      '0.0001',
      '1e-05',
      '-1.5e-07',
      '123.456',
      '100000000000000000000',
      '9007199254740994',
      '1000000000000000000000',
      '0',
    ]);
  });
  it('jinjaTrim strips what Python str.strip() strips', () => {
    expect(jinjaTrim(' \t\n a b \r\n')).toBe('a b');
    expect(jinjaTrim('\u001cx\u0085')).toBe('x');
    expect(jinjaTrim('\ufeffx\ufeff')).toBe('\ufeffx\ufeff');
  });
});
