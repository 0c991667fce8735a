/**
 * Ground truth for the chat-template tests: the models' templates (src/fixtures/*.jinja) rendered by
 * Python's Jinja2 as transformers renders them (sandboxed environment, `trim_blocks`,
 * `lstrip_blocks`, the loop-controls extension, and its `tojson`: `json.dumps` with
 * `ensure_ascii=False`), given what vLLM gives them. Used where `@huggingface/jinja` differs from
 * Jinja2 (Python's whitespace, float repr, dict order).
 *
 * @see huggingface/transformers:src/transformers/utils/chat_template_utils.py (`_compile_jinja_template`, `render_jinja_template`)
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Whether `python3` with `jinja2` is on this machine (the cross-checks skip, with a message, without it). */
export const hasPythonJinja2 = spawnSync('python3', ['-c', 'import jinja2'], { stdio: 'ignore' }).status === 0;

/** The fixture template of each chat template the tests compare. */
export const TEMPLATE_FILES = { 'llama3.1': 'llama3.1-instruct.jinja', 'llama3.2': 'llama3.2-instruct.jinja', 'qwen2.5': 'qwen2.5-instruct.jinja', qwen3: 'qwen3.jinja' } as const;
/** A chat template with a fixture. */
export type TemplateName = keyof typeof TEMPLATE_FILES;

/** The fixture file's path. */
export function templatePath(name: TemplateName): string {
  return fileURLToPath(new URL(`../src/fixtures/${TEMPLATE_FILES[name]}`, import.meta.url));
}

/** transformers' environment; `render(item, ctx)` renders one item, with the continue-final-message cut. */
const PRELUDE = `
import sys, json, jinja2, jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters['tojson'] = tojson
TAG = "CONTINUE_FINAL_MESSAGE_TAG "
def parse_arguments(messages):
    # tool-call arguments arrive as JSON strings: vLLM parses them (json.loads), so a float stays a float
    for m in messages:
        for c in m.get('tool_calls') or []:
            a = c['function']['arguments']
            c['function']['arguments'] = json.loads(a) if a else {}
def render(item, ctx):
    src = open(item['template'], encoding='utf-8').read().split('\\n', 1)[1]
    final = None
    if item.get('continue'):
        final = ctx['messages'][-1]['content']
        ctx['messages'][-1]['content'] = final + TAG
    r = env.from_string(src).render(**ctx)
    if final is not None:
        if final.strip() not in r or TAG.strip() not in r:
            raise ValueError('final message does not appear')
        at = r.rindex(TAG.strip())
        r = r[:at] if r[at:at + len(TAG)] == TAG else r[:at].rstrip()
    return r
`;

function run(program: string, input: unknown): string[] {
  const r = spawnSync('python3', ['-c', PRELUDE + program], { input: JSON.stringify(input), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as string[];
}

/** One rendering: the template, its variables (`messages` with tool-call arguments as JSON strings), and whether to continue the final message. */
export interface PythonRenderItem {
  readonly template: TemplateName;
  readonly ctx: Record<string, unknown>;
  readonly continue?: boolean;
}

/**
 * Renders each item with Jinja2.
 * @param onError - what to return for an item whose rendering raises (transformers raises, vLLM answers 400); without it, the error is thrown.
 * @returns the rendered texts, in item order.
 */
export function renderWithJinja2(items: readonly PythonRenderItem[], onError?: string): string[] {
  const program = `
out = []
for item in json.load(sys.stdin):
    ctx = item['ctx']
    parse_arguments(ctx['messages'])
    ${onError === undefined ? 'out.append(render(item, ctx))' : `\n    try:\n        out.append(render(item, ctx))\n    except Exception:\n        out.append(${JSON.stringify(onError)})`}
sys.stdout.write(json.dumps(out))
`;
  return run(
    program,
    items.map((it) => ({ template: templatePath(it.template), ctx: it.ctx, continue: it.continue === true })),
  );
}

/**
 * Renders whole request bodies as vLLM reads them: `json.loads` of the body text (numbers keep
 * Python's int/float types, dicts the wire order), each tool as vLLM's `ChatCompletionToolsParam`
 * dumps it (`type`, `function: {name, description, parameters}` then extra fields), a null content as
 * '', and `chat_template_kwargs` as template variables (null and `"auto"` values dropped).
 * @param items - the template, the body text, and Llama 3.2's `date_string` where the test fixes the day.
 */
export function renderBodiesWithJinja2(items: readonly { readonly template: TemplateName; readonly body: string; readonly date_string?: string }[]): string[] {
  const program = `
def dump_tool(t):
    f = t['function']
    fn = {'name': f['name'], 'description': f.get('description'), 'parameters': f.get('parameters')}
    fn.update({k: v for k, v in f.items() if k not in fn})
    out = {'type': t.get('type', 'function'), 'function': fn}
    out.update({k: v for k, v in t.items() if k not in out})
    return out
out = []
for item in json.load(sys.stdin):
    req = json.loads(item['body'])
    for m in req['messages']:
        if m.get('content') is None: m['content'] = ''
    parse_arguments(req['messages'])
    ctx = {'messages': req['messages'], 'tools': None if req.get('tools') is None else [dump_tool(t) for t in req['tools']], 'bos_token': '<|begin_of_text|>', 'add_generation_prompt': True}
    if 'date_string' in item: ctx['date_string'] = item['date_string']
    ctx.update({k: v for k, v in (req.get('chat_template_kwargs') or {}).items() if v is not None and v != 'auto'})
    out.append(render(item, ctx))
sys.stdout.write(json.dumps(out))
`;
  return run(
    program,
    items.map((it) => ({ template: templatePath(it.template), body: it.body, ...(it.date_string === undefined ? {} : { date_string: it.date_string }) })),
  );
}
