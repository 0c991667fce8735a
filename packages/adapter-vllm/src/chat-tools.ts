/**
 * What HF chat templates see of a request's `tools` and of an assistant turn's `tool_calls` when
 * vLLM renders a chat prompt, and the Python pieces the templates use to write them (`tojson`,
 * `trim`), so that kvmgr's renderers (`tokenizer.ts`, `tokenizer-qwen.ts`) write the same text
 * without running Jinja.
 *
 * - `tools`: vLLM validates each entry as `ChatCompletionToolsParam` (`type: "function"` by
 *   default, `function: FunctionDefinition{name, description = None, parameters = None}`, extra
 *   fields allowed) and passes `[tool.model_dump() for tool in request.tools]` to the template:
 *   declared fields first in declaration order (`type`, `function`; `name`, `description`,
 *   `parameters`), an absent `description` / `parameters` as `null`, then any extra fields in the
 *   order the client sent them. `tools` is passed even with `tool_choice: "none"` (vLLM drops it
 *   only under `--exclude-tools-when-tool-choice-none`), so the renderers ignore `tool_choice`.
 * - `tool_calls`: vLLM's `_postprocess_messages` turns each call's `arguments` JSON string into an
 *   object (`json.loads`; an empty or absent string becomes `{}`) and drops an empty `tool_calls`
 *   list, before the template runs.
 *
 * @see vllm-project/vllm:vllm/entrypoints/openai/protocol.py (`FunctionDefinition`, `ChatCompletionToolsParam`, `OpenAIBaseModel` `extra="allow"`)
 * @see vllm-project/vllm:vllm/entrypoints/openai/serving_chat.py (`tool_dicts = [tool.model_dump() for tool in request.tools]`, `exclude_tools_when_tool_choice_none`)
 * @see vllm-project/vllm:vllm/entrypoints/chat_utils.py (`_postprocess_messages`, `apply_hf_chat_template`)
 * @see huggingface/transformers:src/transformers/utils/chat_template_utils.py (`tojson`: `json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=False)`)
 */
import { type JsonMarks, jsonKeysInOrder, jsonMarksOf, jsonMarksSignature, parseJsonKeepingNumbers, setJsonMarks } from './json-marks.js';
import type { ChatMessage, ChatTool } from './openai-api.js';
import { ChatTemplateError } from './chat-template-kwargs.js';

/**
 * The text of Python's `json.dumps(value, ensure_ascii=False, indent=indent)` for a value parsed
 * from JSON (what HF's `tojson` filter writes): without `indent`, items separated by `", "` and
 * keys by `": "`; with it, one item per line indented by `indent` spaces, items separated by
 * `","`, empty arrays and objects as `[]` and `{}`. Keys keep their order: the order sent for an
 * object read with marks (`json-marks.ts`: integer-like keys where the client put them), else
 * `Object.keys`.
 *
 * Numbers: Python keeps a JSON number's type (int or float) and JavaScript does not. A member the
 * marks record as a float literal with an integral value (a wire `1.0`, `1e3`, `-0.0`) is written
 * as Python's float `repr` (`1.0`, `1000.0`, `-0.0`, `1e+16` from 1e16 on); any other integral
 * number as an int (`1`); any other number as Python's float `repr` (`0.5`, `1e-05`, `1.5e-07`).
 * Strings: as `JSON.stringify` (the same escapes as Python's with `ensure_ascii=False`, except for
 * a lone surrogate, which no valid UTF-8 request carries). `undefined` is written as `null` (it
 * has no JSON form; a parsed value never holds it).
 *
 * @param value - a JSON value (null, boolean, number, string, array, plain object), with marks or not.
 * @param indent - spaces per level, as `tojson(indent=4)`; none for the one-line form.
 * @param param - the request field the value comes from, for the error. @default 'tools'
 * @throws ChatTemplateError (`param`) for a value nested deeper than {@link PYTHON_JSON_MAX_DEPTH} levels.
 */
export function pythonJsonDumps(value: unknown, indent?: number, param = 'tools'): string {
  return dump(value, indent === undefined ? undefined : ' '.repeat(indent), '', false, 0, param);
}

/**
 * Containers nested deeper than this are refused: Python's `json.dumps` (the templates' `tojson`)
 * recurses once per level and stops at its recursion limit (1,000 frames, the Jinja render's own
 * among them), so vLLM cannot render them either; here the limit keeps the recursion well inside
 * V8's stack (a stack overflow would be a 500).
 */
export const PYTHON_JSON_MAX_DEPTH = 1000;

function dump(x: unknown, ind: string | undefined, cur: string, float: boolean, depth: number, param: string): string {
  if (x === null || x === undefined) return 'null';
  switch (typeof x) {
    case 'string':
      return JSON.stringify(x);
    case 'boolean':
      return x ? 'true' : 'false';
    case 'number':
      return float ? pythonIntegralFloat(x) : pythonNumber(x);
    case 'bigint':
      return x.toString();
    default:
      break;
  }
  if (depth >= PYTHON_JSON_MAX_DEPTH) throw new ChatTemplateError(param, `a value nested deeper than ${PYTHON_JSON_MAX_DEPTH} levels (the chat template writes it with Python's json.dumps, which stops at its recursion limit)`);
  const m = jsonMarksOf(x as object);
  const floats = m?.floats;
  if (Array.isArray(x)) {
    if (x.length === 0) return '[]';
    if (ind === undefined) {
      let s = '[';
      for (let i = 0; i < x.length; i++) s += (i === 0 ? '' : ', ') + dump(x[i], undefined, cur, floats?.has(i) === true, depth + 1, param);
      return `${s}]`;
    }
    const inner = cur + ind;
    let s = '[';
    for (let i = 0; i < x.length; i++) s += `${i === 0 ? '' : ','}\n${inner}${dump(x[i], ind, inner, floats?.has(i) === true, depth + 1, param)}`;
    return `${s}\n${cur}]`;
  }
  const keys = jsonKeysInOrder(x as object, m);
  if (keys.length === 0) return '{}';
  const o = x as Record<string, unknown>;
  if (ind === undefined) {
    let s = '{';
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as string;
      s += `${i === 0 ? '' : ', '}${JSON.stringify(k)}: ${dump(o[k], undefined, cur, floats?.has(k) === true, depth + 1, param)}`;
    }
    return `${s}}`;
  }
  const inner = cur + ind;
  let s = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    s += `${i === 0 ? '' : ','}\n${inner}${JSON.stringify(k)}: ${dump(o[k], ind, inner, floats?.has(k) === true, depth + 1, param)}`;
  }
  return `${s}\n${cur}}`;
}

/** Python's `json.dumps` of a number: an integral one as an int, any other as `float.__repr__`. */
function pythonNumber(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (Number.isInteger(x)) return Math.abs(x) < 1e21 ? String(x === 0 ? 0 : x) : BigInt(x).toString();
  // the shortest round-trip digits (both languages); Python switches to exponent form below 1e-4 (JavaScript below 1e-6)
  const a = Math.abs(x);
  if (a >= 1e-4) return String(x);
  const e = x.toExponential(); // e.g. "-1.5e-7"
  const at = e.indexOf('e');
  const exp = Number(e.slice(at + 1));
  return `${e.slice(0, at)}e-${String(-exp).padStart(2, '0')}`;
}

/**
 * Python's `float.__repr__` of an integral float (`1.0`, `-0.0`, `1000.0`): fixed notation with
 * `.0` below 1e16, then the shortest digits in exponent form (`1e+16`, `1.2345678901234568e+17`:
 * JavaScript's `toExponential()`, whose exponent has two digits or more there, as Python's).
 */
function pythonIntegralFloat(x: number): string {
  if (!Number.isFinite(x)) return pythonNumber(x);
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  if (Math.abs(x) < 1e16) return `${String(x)}.0`;
  return x.toExponential();
}

/** Characters Python's `str.isspace()` accepts (what Jinja's `trim` strips). */
function isPythonSpace(c: number): boolean {
  return (
    (c >= 0x09 && c <= 0x0d) ||
    (c >= 0x1c && c <= 0x20) ||
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/**
 * Jinja's `trim` filter: Python's `str.strip()`, which strips what `str.isspace()` accepts (the
 * ASCII whitespace, U+001C–U+001F, U+0085 and the Unicode spaces), not U+FEFF (unlike
 * `String.prototype.trim`).
 */
export function jinjaTrim(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isPythonSpace(s.charCodeAt(a))) a++;
  while (b > a && isPythonSpace(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** Python's `str.rstrip()` (transformers' cut after a continued final message). */
export function pythonRstrip(s: string): string {
  let b = s.length;
  while (b > 0 && isPythonSpace(s.charCodeAt(b - 1))) b--;
  return b === s.length ? s : s.slice(0, b);
}

/** A tool as the template sees it (vLLM's `ChatCompletionToolsParam.model_dump()`). */
export type TemplateTool = Readonly<Record<string, unknown>>;

/**
 * The request's tools as vLLM hands them to the chat template: `{type, function: {name,
 * description, parameters, …extra}, …extra}` with `type` `"function"` when absent and an absent
 * `description` / `parameters` as `null` (see the module docs).
 *
 * @param tools - the request's validated `tools`.
 */
export function templateTools(tools: readonly ChatTool[]): TemplateTool[] {
  return tools.map((t) => {
    const { type: _type, function: fn, ...toolExtra } = t;
    const { name, description, parameters, ...fnExtra } = fn;
    const fnOut = { name, description: description ?? null, parameters: parameters ?? null, ...fnExtra };
    const out = { type: 'function', function: fnOut, ...toolExtra };
    // marks of the tool and its function (floats and key order of the extra fields) on the new objects, declared fields first
    carryDeclaredFirst(fn, fnOut, FUNCTION_FIELDS);
    carryDeclaredFirst(t, out, TOOL_FIELDS);
    return out;
  });
}

const TOOL_FIELDS: readonly string[] = ['type', 'function'];
const FUNCTION_FIELDS: readonly string[] = ['name', 'description', 'parameters'];

/** Marks `to` (pydantic's `model_dump()` of `from`: the declared fields, then the extra ones as sent) with `from`'s marks. */
function carryDeclaredFirst(from: object, to: object, declared: readonly string[]): void {
  const m = jsonMarksOf(from);
  if (m === undefined) return;
  const keys = m.keys === undefined ? undefined : [...declared, ...m.keys.filter((k) => !declared.includes(k))];
  const marks: JsonMarks = { floats: m.floats, keys, below: m.below, signature: m.signature };
  setJsonMarks(to, marks);
}

/**
 * A tool call's `arguments` as the template gets them: vLLM `json.loads` the string (an empty one
 * becomes `{}`), so the value is read with marks (integral float literals, key order; see
 * `json-marks.ts`) for {@link pythonJsonDumps}. A string that is not JSON makes vLLM refuse the request (400); here it is kept
 * as the string, so a renderer still writes something.
 *
 * @returns the parsed value, or `{ raw }` when the string is not JSON.
 */
export function parseToolArguments(args: string | null | undefined): { value: unknown } | { raw: string } {
  if (args === undefined || args === null || args === '') return { value: {} };
  try {
    return { value: parseJsonKeepingNumbers(args) };
  } catch {
    return { raw: args };
  }
}

/** An assistant message's tool calls as the template sees them (`undefined` for none: vLLM drops an empty list). */
export function toolCallsOf(m: ChatMessage): NonNullable<ChatMessage['tool_calls']> | undefined {
  const calls = m.tool_calls;
  return calls !== undefined && calls !== null && calls.length > 0 ? calls : undefined;
}

/**
 * Rendered tool blocks by the tools' JSON text (`JSON.stringify`, native and cheaper than
 * rendering them again, with the marks' signature when the tools carry marks: `1.0` and `1` are
 * one JSON text): agentic traffic sends one tool list on every request. At most `max` entries;
 * when full it starts over (a process serves one model and a few tool lists).
 */
export class BoundedTextCache {
  private readonly map = new Map<string, string>();
  constructor(private readonly max = 64) {}

  /**
   * The text for `tools`, made by `make` on a miss.
   *
   * @param tools - the request's tools, or a list from `chat_template_kwargs` (written as it is).
   * @param kind - what else the text depends on (a raw list, where the block goes), so that
   *   lists with the same JSON rendered differently are keyed apart. @default ''
   */
  get(tools: readonly unknown[], make: () => string, kind = ''): string {
    const key = `${kind}${JSON.stringify(tools)}\u0000${jsonMarksSignature(tools)}`;
    let v = this.map.get(key);
    if (v === undefined) {
      v = make();
      if (this.map.size >= this.max) this.map.clear();
      this.map.set(key, v);
    }
    return v;
  }
}
