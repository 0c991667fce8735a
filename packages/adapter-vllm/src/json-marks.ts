/**
 * What JSON text says that `JSON.parse`'s values forget and Python's `json.loads` keeps, so that
 * {@link pythonJsonDumps} writes a request's tools as vLLM's templates do (`tojson` =
 * `json.dumps(json.loads(wire))`):
 *
 * - a number literal with a fraction or an exponent is a Python float: a wire `1.0`, `1e3`,
 *   `-0.0` is written `1.0`, `1000.0`, `-0.0` (JavaScript reads them as `1`, `1000`, `-0`);
 * - an object keeps its keys in the order sent (a JavaScript object lists integer-like keys
 *   first, in ascending order).
 *
 * The marks live in a module-level `WeakMap` keyed by the container (object or array) holding the
 * member: the values stay exactly `JSON.parse`'s, with no extra property (they go to the engine
 * unchanged), and a mark goes away with its container. Only containers that need one get an
 * entry: integral floats among their members, an integer-like key, or such a container below.
 *
 * Reading marks costs a scan of the text, so it runs only when needed: {@link markRequestToolsJson}
 * looks at the request's `tools` and `chat_template_kwargs` only, and parses them again only when a
 * cheap scan finds an integral float literal or an integer-like key there. The scanner is
 * iterative (no recursion-depth limit) and reads only text `JSON.parse` already accepted.
 *
 * @see https://docs.python.org/3/library/json.html#json.loads (`parse_float`, `parse_int`)
 * @see https://tc39.es/ecma262/#sec-ordinaryownpropertykeys (array-index keys first)
 */

/** The marks of one object or array read from JSON text. */
export interface JsonMarks {
  /** Members (object keys, array indices) written as floats whose value is an integer (`1.0`, `1e3`, `-0.0`). */
  readonly floats: ReadonlySet<string | number> | undefined;
  /** An object's keys in the order sent (each at its first place), when one of them is integer-like. */
  readonly keys: readonly string[] | undefined;
  /** Members whose value (an object or array) has marks of its own or below. */
  readonly below: ReadonlySet<string | number> | undefined;
}

const MARKS = new WeakMap<object, JsonMarks>();

/** The marks of a container, if it has any (see the module docs). */
export function jsonMarksOf(x: object): JsonMarks | undefined {
  return MARKS.get(x);
}

/** Gives `target` marks (for objects built from marked ones, e.g. vLLM's view of a tool). */
export function setJsonMarks(target: object, marks: JsonMarks): void {
  MARKS.set(target, marks);
}

/** Whether `s.slice(a, b)` is a canonical array index (`0`, `42`, at most 2³² − 2): a key JavaScript lists first. */
function isIndexKey(s: string, a: number, b: number): boolean {
  const n = b - a;
  if (n === 0 || n > 10) return false;
  const c0 = s.charCodeAt(a);
  if (c0 < 48 || c0 > 57 || (c0 === 48 && n > 1)) return false;
  for (let i = a + 1; i < b; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return n < 10 || Number(s.slice(a, b)) <= 4294967294;
}

/** Whether the JSON string literal `text.slice(open, close + 1)` is an integer-like key. */
function isIndexKeyText(text: string, open: number, close: number): boolean {
  const c = text.charCodeAt(open + 1);
  if (c === 92) {
    const k = JSON.parse(text.slice(open, close + 1)) as string;
    return isIndexKey(k, 0, k.length);
  }
  return c >= 48 && c <= 57 && close - open <= 11 && isIndexKey(text, open + 1, close);
}

/** The index of the quote closing the string that opens at `at` (`text[at] === '"'`). */
function stringEnd(text: string, at: number): number {
  let j = text.indexOf('"', at + 1);
  for (;;) {
    if (j < 0) return text.length; // not JSON: stop at the end
    // escaped when preceded by an odd number of backslashes
    let k = j - 1;
    while (text.charCodeAt(k) === 92) k--;
    if ((j - 1 - k) % 2 === 0) return j;
    j = text.indexOf('"', j + 1);
  }
}

function isWs(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

/** Whether a char code can continue a JSON number literal. */
function isNumberChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 46 || c === 101 || c === 69 || c === 43 || c === 45;
}

/**
 * Whether the JSON text `text.slice(start, end)` holds something that needs marks: a number
 * literal with a fraction or exponent whose value is an integer, or an integer-like object key.
 * Finds whatever {@link parseJsonMarked} marks (and more only where a repeated key's last value
 * replaces a marked one); strings are skipped with `indexOf`.
 *
 * @param text - JSON text that `JSON.parse` accepts (or a slice of it that is one value).
 */
export function hasJsonMarkCandidates(text: string, start = 0, end = text.length): boolean {
  let i = start;
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      const j = stringEnd(text, i);
      // at most 10 digits, each possibly written as a 6-character escape (`\u0031`)
      if (j - i <= 61 && isIndexKeyText(text, i, j)) {
        let k = j + 1;
        while (isWs(text.charCodeAt(k))) k++;
        if (text.charCodeAt(k) === 58) return true;
      }
      i = j + 1;
    } else if (c === 45 || (c >= 48 && c <= 57)) {
      let j = i + 1;
      let float = false;
      for (;;) {
        const d = text.charCodeAt(j);
        if (!isNumberChar(d)) break;
        if (d === 46 || d === 101 || d === 69) float = true;
        j++;
      }
      if (float && Number.isInteger(Number(text.slice(i, j)))) return true;
      i = j;
    } else i++;
  }
  return false;
}

/** A container being read by {@link parseJsonMarked}. */
interface Frame {
  readonly container: Record<string, unknown> | unknown[];
  readonly isArray: boolean;
  /** The key whose value is being read (objects). */
  key: string;
  floats: Set<string | number> | undefined;
  below: Set<string | number> | undefined;
  /** Keys in wire order (with repeats), kept while the object has an integer-like key. */
  keys: string[];
  indexKey: boolean;
}

/**
 * `JSON.parse(text)` with marks (see the module docs): the same values (duplicate keys: the last
 * value at the first key's place; `__proto__` an own property; strings with JSON.parse's escapes),
 * and a {@link JsonMarks} entry for each container that needs one. Iterative: any nesting depth.
 *
 * @param text - JSON text that `JSON.parse` accepts (not checked again: malformed text gives an
 *   unspecified value, never a hang).
 */
export function parseJsonMarked(text: string): unknown {
  const stack: Frame[] = [];
  let i = 0;
  let value: unknown;
  for (;;) {
    // read one value at i (opening a container pushes a frame and reads its first member)
    while (isWs(text.charCodeAt(i))) i++;
    const c = text.charCodeAt(i);
    let float = false;
    let opened = false;
    if (c === 123 || c === 91) {
      const isArray = c === 91;
      const frame: Frame = { container: isArray ? [] : {}, isArray, key: '', floats: undefined, below: undefined, keys: [], indexKey: false };
      i++;
      while (isWs(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) === (isArray ? 93 : 125)) {
        i++;
        value = frame.container;
      } else {
        stack.push(frame);
        if (!isArray) i = readKey(text, i, frame);
        opened = true;
      }
    } else if (c === 34) {
      const j = stringEnd(text, i);
      const s = text.slice(i + 1, j);
      value = s.indexOf('\\') === -1 ? s : (JSON.parse(text.slice(i, j + 1)) as string);
      i = j + 1;
    } else if (c === 116) {
      value = true;
      i += 4;
    } else if (c === 102) {
      value = false;
      i += 5;
    } else if (c === 110) {
      value = null;
      i += 4;
    } else {
      let j = i + 1;
      for (;;) {
        const d = text.charCodeAt(j);
        if (!isNumberChar(d)) break;
        if (d === 46 || d === 101 || d === 69) float = true;
        j++;
      }
      const n = Number(text.slice(i, j));
      float &&= Number.isInteger(n);
      value = n;
      i = j;
    }
    if (opened) continue;
    // hand the value to its container; close containers that end here
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) return value;
      const marked = typeof value === 'object' && value !== null && MARKS.has(value);
      if (top.isArray) {
        const a = top.container as unknown[];
        const at = a.length;
        a.push(value);
        if (float) (top.floats ??= new Set()).add(at);
        if (marked) (top.below ??= new Set()).add(at);
      } else {
        const o = top.container as Record<string, unknown>;
        const k = top.key;
        if (k === '__proto__') Object.defineProperty(o, k, { value, writable: true, enumerable: true, configurable: true });
        else o[k] = value;
        // a repeated key: the last value decides
        if (float) (top.floats ??= new Set()).add(k);
        else top.floats?.delete(k);
        if (marked) (top.below ??= new Set()).add(k);
        else top.below?.delete(k);
      }
      float = false;
      while (isWs(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) === 44) {
        i++;
        if (!top.isArray) i = readKey(text, i, top);
        break;
      }
      // `]` or `}`
      i++;
      stack.pop();
      const keys = top.indexKey ? [...new Set(top.keys)] : undefined;
      if (top.floats?.size || top.below?.size || keys !== undefined) {
        MARKS.set(top.container, { floats: top.floats?.size ? top.floats : undefined, keys, below: top.below?.size ? top.below : undefined });
      }
      value = top.container;
    }
  }
}

/** Reads `"key" :` at `i` into the frame; returns the index after the colon. */
function readKey(text: string, i: number, frame: Frame): number {
  while (isWs(text.charCodeAt(i))) i++;
  const j = stringEnd(text, i);
  const s = text.slice(i + 1, j);
  const key = s.indexOf('\\') === -1 ? s : (JSON.parse(text.slice(i, j + 1)) as string);
  frame.key = key;
  frame.keys.push(key);
  if (!frame.indexKey && isIndexKey(key, 0, key.length)) frame.indexKey = true;
  i = j + 1;
  while (i < text.length && text.charCodeAt(i) !== 58) i++;
  return i + 1;
}

/**
 * Gives `to` the marks of `from` wherever `from` has them: `to` is a copy of `from` with the same
 * structure (a schema's output, which copies objects), each container of `to` found by the same
 * key or index. Walks only the marked paths, iteratively. A container that is missing in `to`, or
 * of another kind, is skipped.
 *
 * @param from - a value from {@link parseJsonMarked}.
 * @param to - the value to mark.
 */
export function carryJsonMarks(from: unknown, to: unknown): void {
  const stack: [unknown, unknown][] = [[from, to]];
  for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
    const [f, t] = p;
    if (typeof f !== 'object' || f === null || typeof t !== 'object' || t === null || f === t || Array.isArray(f) !== Array.isArray(t)) continue;
    const m = MARKS.get(f);
    if (m === undefined) continue;
    MARKS.set(t, m);
    if (m.below !== undefined) {
      for (const k of m.below) stack.push([(f as Record<string | number, unknown>)[k], (t as Record<string | number, unknown>)[k]]);
    }
  }
}

/**
 * A text that tells marked values apart (for a cache keyed by `JSON.stringify`, which drops the
 * marks): `''` when `x` has no marks, else each mark with its path. Walks only the marked paths.
 */
export function jsonMarksSignature(x: unknown): string {
  if (typeof x !== 'object' || x === null || !MARKS.has(x)) return '';
  let s = '';
  const stack: [unknown, string][] = [[x, '']];
  for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
    const [v, path] = p;
    const m = typeof v === 'object' && v !== null ? MARKS.get(v) : undefined;
    if (m === undefined) continue;
    s += `${path}:`;
    if (m.floats !== undefined) s += `f${JSON.stringify([...m.floats])}`;
    if (m.keys !== undefined) s += `k${JSON.stringify(m.keys)}`;
    s += ';';
    if (m.below !== undefined) for (const k of m.below) stack.push([(v as Record<string | number, unknown>)[k], `${path}/${JSON.stringify(k)}`]);
  }
  return s;
}

/**
 * The object's keys in the order to write them: the marked wire order when it has one (keys the
 * object no longer has are skipped, keys it gained come last), else `Object.keys`.
 */
export function jsonKeysInOrder(o: object, m: JsonMarks | undefined): readonly string[] {
  const wire = m?.keys;
  const own = Object.keys(o);
  if (wire === undefined) return own;
  const out: string[] = [];
  const seen = new Set<string>();
  for (const k of wire) {
    if (Object.hasOwn(o, k)) {
      out.push(k);
      seen.add(k);
    }
  }
  for (const k of own) if (!seen.has(k)) out.push(k);
  return out;
}

/** Where the value of each top-level member of a JSON object text lies (the last of repeated keys). */
function topLevelMembers(text: string, wanted: readonly string[]): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  let i = 0;
  while (isWs(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 123) return out;
  i++;
  for (;;) {
    while (isWs(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) !== 34) return out;
    const j = stringEnd(text, i);
    const s = text.slice(i + 1, j);
    const key = s.indexOf('\\') === -1 ? s : (JSON.parse(text.slice(i, j + 1)) as string);
    i = j + 1;
    while (i < text.length && text.charCodeAt(i) !== 58) i++;
    i++;
    while (isWs(text.charCodeAt(i))) i++;
    const end = valueEnd(text, i);
    if (wanted.includes(key)) out.set(key, [i, end]);
    i = end;
    while (isWs(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) !== 44) return out;
    i++;
  }
}

/** The index after the JSON value that starts at `i` (brackets counted outside strings). */
function valueEnd(text: string, i: number): number {
  const n = text.length;
  const c = text.charCodeAt(i);
  if (c === 34) return stringEnd(text, i) + 1;
  if (c !== 123 && c !== 91) {
    while (i < n) {
      const d = text.charCodeAt(i);
      if (d === 44 || d === 125 || d === 93 || isWs(d)) break;
      i++;
    }
    return i;
  }
  let depth = 0;
  while (i < n) {
    const d = text.charCodeAt(i);
    if (d === 34) {
      i = stringEnd(text, i) + 1;
      continue;
    }
    if (d === 123 || d === 91) depth++;
    else if ((d === 125 || d === 93) && --depth === 0) return i + 1;
    i++;
  }
  return n;
}

/** The members of a chat request whose values templates write with `tojson`. */
const TOJSON_MEMBERS: readonly string[] = ['tools', 'chat_template_kwargs'];

/**
 * Carries the wire's number types and key order (see the module docs) onto a validated chat
 * request's `tools` and `chat_template_kwargs`, from the body text it was parsed from, so the
 * renderers write them as Python's `json.dumps(json.loads(body))` does. Does nothing (no scan)
 * when the request has neither; reads the two members' text again only when they hold an integral
 * float literal or an integer-like key. `tool_calls` arguments need nothing here: they are JSON
 * strings, read with marks by the renderers.
 *
 * @param request - the validated request (the schema's output for `bodyText`).
 * @param bodyText - the request body as received (JSON text `JSON.parse` accepted).
 */
export function markRequestToolsJson(request: { readonly tools?: unknown; readonly chat_template_kwargs?: unknown }, bodyText: string): void {
  const tools = request.tools;
  const kwargs = request.chat_template_kwargs;
  if ((!Array.isArray(tools) || tools.length === 0) && (typeof kwargs !== 'object' || kwargs === null)) return;
  for (const [key, [start, end]] of topLevelMembers(bodyText, TOJSON_MEMBERS)) {
    if (!hasJsonMarkCandidates(bodyText, start, end)) continue;
    carryJsonMarks(parseJsonMarked(bodyText.slice(start, end)), key === 'tools' ? tools : kwargs);
  }
}

/**
 * `JSON.parse(text)`, with marks when the text has something to mark (an integral float literal or
 * an integer-like key): for a tool call's `arguments`, which templates write back with `tojson`.
 *
 * @throws SyntaxError when the text is not JSON (from `JSON.parse`).
 */
export function parseJsonKeepingNumbers(text: string): unknown {
  const v: unknown = JSON.parse(text);
  return typeof v === 'object' && v !== null && hasJsonMarkCandidates(text) ? parseJsonMarked(text) : v;
}
