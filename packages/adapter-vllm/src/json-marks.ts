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
 * looks at the request's `tools` and `chat_template_kwargs` only, reads them again only when a
 * cheap scan finds an integral float literal or an integer-like key there, and then marks the
 * validated copy in step with the text (no values made). What it found is kept by the member's
 * text, so the next request with the same tools is marked by path without reading them. Entries
 * are shared between requests with the same marks (a `WeakMap` value made per request costs the
 * garbage collector more). The scanner is iterative (no recursion-depth limit) and reads only text
 * `JSON.parse` already accepted.
 *
 * @see https://docs.python.org/3/library/json.html#json.loads (`parse_float`, `parse_int`)
 * @see https://tc39.es/ecma262/#sec-ordinaryownpropertykeys (array-index keys first)
 */

import { Buffer } from 'node:buffer';

/** The marks of one object or array read from JSON text. */
export interface JsonMarks {
  /** Members (object keys, array indices) written as floats whose value is an integer (`1.0`, `1e3`, `-0.0`). */
  readonly floats: ReadonlySet<string | number> | undefined;
  /** An object's keys in the order sent (each at its first place), when one of them is integer-like. */
  readonly keys: readonly string[] | undefined;
  /** Members whose value (an object or array) has marks of its own or below (each with an entry of its own in {@link parseJsonMarked}'s values; in a marked copy, only those with own marks have one). */
  readonly below: ReadonlySet<string | number> | undefined;
  /** These marks and those below, as text (see {@link jsonMarksSignature}). */
  readonly signature: string;
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

/** A container being read by {@link scan} (reused for the next container at its depth). */
interface Frame {
  /** The container: made here (reading values) or the target's (marking one); undefined where the target has none. */
  container: Record<string, unknown> | unknown[] | undefined;
  isArray: boolean;
  /** Where its text starts (at its bracket). */
  start: number;
  /** Where the key whose value is being read starts and ends (its quotes; objects). */
  keyAt: number;
  keyEnd: number;
  /** That key, once made (`undefined` until needed). */
  key: string | undefined;
  /** Members read so far (arrays). */
  index: number;
  floats: Set<string | number> | undefined;
  below: Set<string | number> | undefined;
  /** The signatures of the members in `below`. */
  parts: Map<string | number, string> | undefined;
  /** Where its keys start in the scan's list of key positions. */
  keysFrom: number;
  indexKey: boolean;
  /** A member had marks at some point (a repeated key may have left some that the last value does not have). */
  touched: boolean;
}

/** A stack of key positions: the first `n` of `at`. */
interface KeyStarts {
  readonly at: number[];
  n: number;
}

/** The JSON string literal at `at` (its opening quote) ending at `end` (its closing quote), decoded. */
function stringAt(text: string, at: number, end: number): string {
  const s = text.slice(at + 1, end);
  return s.indexOf('\\') === -1 ? s : (JSON.parse(text.slice(at, end + 1)) as string);
}

/** The key a frame's member is read under, made on first use. */
function keyOf(f: Frame, text: string): string {
  if (f.key === undefined) f.key = stringAt(text, f.keyAt, f.keyEnd);
  return f.key;
}

/** The member being read of a container the target has, when the target has it and of the right kind. */
function targetChild(top: Frame | undefined, root: unknown, isArray: boolean, text: string): Record<string, unknown> | unknown[] | undefined {
  let v: unknown;
  if (top === undefined) v = root;
  else {
    const c = top.container;
    if (c === undefined) return undefined;
    if (top.isArray) v = (c as unknown[])[top.index];
    else {
      const k = keyOf(top, text);
      // an inherited member is a function, but for `__proto__` (an own one only from JSON.parse)
      if (k !== '__proto__' || Object.hasOwn(c, k)) v = (c as Record<string, unknown>)[k];
    }
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) !== isArray) return undefined;
  return v as Record<string, unknown> | unknown[];
}

/** The signature of a container's marks (see {@link jsonMarksSignature}): its own, then each marked member's. */
function signatureOf(floats: Set<string | number> | undefined, keys: string[] | undefined, parts: Map<string | number, string> | undefined): string {
  let s = '';
  if (floats !== undefined) {
    s += 'f';
    for (const k of floats) s += typeof k === 'number' ? `${k},` : `${JSON.stringify(k)},`;
  }
  if (keys !== undefined) s += `k${JSON.stringify(keys)}`;
  if (parts !== undefined) for (const [k, p] of parts) s += `${typeof k === 'number' ? k : JSON.stringify(k)}(${p})`;
  return s;
}

/**
 * Marks entries by signature, shared by the requests that repeat them (agentic traffic sends one
 * tool list on every request): a `WeakMap` entry whose value was made with a young key costs the
 * garbage collector far more than one whose value is an old, shared object. At most
 * {@link INTERNED_MAX} entries; when full it starts over.
 */
const INTERNED = new Map<string, JsonMarks>();
const INTERNED_MAX = 4096;

/** The entry for these marks (the signature says all of them: see {@link signatureOf}). */
function internedMarks(signature: string, floats: Set<string | number> | undefined, keys: string[] | undefined, below: Set<string | number> | undefined): JsonMarks {
  let m = INTERNED.get(signature);
  if (m === undefined) {
    if (INTERNED.size >= INTERNED_MAX) INTERNED.clear();
    m = { floats, keys, below, signature };
    INTERNED.set(signature, m);
  }
  return m;
}

/**
 * Reads the JSON value at `start`. Building (`build`): makes the values as JSON.parse does and
 * marks them. Marking: makes nothing, walks `target` (a copy of the value, the same structure) in
 * step with the text and marks its containers; strings, keys and numbers are made only where a
 * mark needs them. Iterative (any nesting depth), with one reused frame per depth.
 *
 * @param plan - marking: gets the path and entry of each container marked, to mark another copy
 *   of the same text without reading it (see {@link applyPlan}).
 * @returns the value (building), or undefined (marking).
 */
function scan(text: string, start: number, build: boolean, target: unknown, plan?: MarksPlan): unknown {
  const frames: Frame[] = [];
  let depth = 0;
  /** Where each key of the open objects starts, in order: `keyStarts.n` of them (no array truncation on the hot path). */
  const keyStarts: KeyStarts = { at: [], n: 0 };
  let i = start;
  let value: unknown;
  for (;;) {
    // read one value at i (opening a container pushes a frame and reads its first member)
    while (isWs(text.charCodeAt(i))) i++;
    const c = text.charCodeAt(i);
    let float = false;
    /** The signature of the value read, when it is a container with marks. */
    let childSig = '';
    if (c === 123 || c === 91) {
      const isArray = c === 91;
      const container = build ? (isArray ? [] : {}) : targetChild(frames[depth - 1], target, isArray, text);
      const at = i;
      i++;
      while (isWs(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) === (isArray ? 93 : 125)) {
        i++;
        value = container;
      } else {
        let f = frames[depth];
        if (f === undefined) {
          f = { container, isArray, start: at, keyAt: 0, keyEnd: 0, key: undefined, index: 0, floats: undefined, below: undefined, parts: undefined, keysFrom: 0, indexKey: false, touched: false };
          frames.push(f);
        } else {
          f.container = container;
          f.isArray = isArray;
          f.start = at;
          f.index = 0;
          f.floats = undefined;
          f.below = undefined;
          f.parts = undefined;
          f.indexKey = false;
          f.touched = false;
        }
        f.keysFrom = keyStarts.n;
        depth++;
        if (!isArray) i = readKey(text, i, f, keyStarts);
        continue;
      }
    } else if (c === 34) {
      const j = stringEnd(text, i);
      if (build) value = stringAt(text, i, j);
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
      if (build || float) {
        const n = Number(text.slice(i, j));
        float &&= Number.isInteger(n);
        value = n;
      }
      i = j;
    }
    // hand the value to its container; close containers that end here
    for (;;) {
      const top = frames[depth - 1];
      if (top === undefined || depth === 0) return build ? value : undefined;
      const marks = float || childSig !== '';
      // a member's key is made only where it is needed (building, or a mark), and for a repeated key (the last value decides)
      const k: string | number = top.isArray ? top.index++ : build || marks || top.touched ? keyOf(top, text) : '';
      if (build) {
        const o = top.container as Record<string | number, unknown>;
        if (k === '__proto__') Object.defineProperty(o, k, { value, writable: true, enumerable: true, configurable: true });
        else o[k] = value;
      }
      if (float) (top.floats ??= new Set()).add(k);
      else top.floats?.delete(k);
      if (childSig !== '') {
        (top.below ??= new Set()).add(k);
        (top.parts ??= new Map()).set(k, childSig);
      } else if (top.below?.delete(k)) top.parts?.delete(k);
      if (marks) top.touched = true;
      float = false;
      while (isWs(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) === 44) {
        i++;
        if (!top.isArray) i = readKey(text, i, top, keyStarts);
        break;
      }
      // `]` or `}`
      i++;
      depth--;
      childSig = '';
      const container = top.container;
      const nKeys = keyStarts.n - top.keysFrom;
      if (container !== undefined) {
        const keys = top.indexKey ? wireKeys(text, keyStarts, top.keysFrom) : undefined;
        const floats = top.floats?.size ? top.floats : undefined;
        const below = top.below?.size ? top.below : undefined;
        if (floats !== undefined || below !== undefined || keys !== undefined) {
          childSig = signatureOf(floats, keys, below === undefined ? undefined : top.parts);
          // marking a copy, a container with marks only below gets no entry (fewer WeakMap entries per request), but for
          // arrays (tool lists: cache keys, which need the signature) and the value marked
          if (build || floats !== undefined || keys !== undefined || top.isArray || depth === 0) {
            const m = internedMarks(childSig, floats, keys, below);
            MARKS.set(container, m);
            plan?.entries.push({ path: frames.slice(0, depth).map((f) => (f.isArray ? f.index : keyOf(f, text))), marks: m });
          }
        }
        // marking a copy: a repeated key's earlier value marked what the last value holds; read this object again (rare)
        if (!build && top.touched && !top.isArray && nKeys !== Object.keys(container).length) {
          childSig = remark(text, top.start, container);
          if (plan !== undefined) plan.reusable = false;
        }
      }
      keyStarts.n = top.keysFrom;
      value = container;
    }
  }
}

/** The keys of an object, in wire order, each at its first place. */
function wireKeys(text: string, keyStarts: KeyStarts, from: number): string[] {
  const keys = new Set<string>();
  for (let n = from; n < keyStarts.n; n++) {
    const at = keyStarts.at[n] as number;
    keys.add(stringAt(text, at, stringEnd(text, at)));
  }
  return [...keys];
}

/** Marks `container` (and what it holds) anew from the object text at `start`: its earlier marks cleared, then read as JSON.parse reads it. */
function remark(text: string, start: number, container: object): string {
  const stack: unknown[] = [container];
  for (let v = stack.pop(); v !== undefined; v = stack.pop()) {
    if (typeof v !== 'object' || v === null) continue;
    MARKS.delete(v);
    for (const x of Object.values(v)) if (typeof x === 'object' && x !== null) stack.push(x);
  }
  carryJsonMarks(scan(text, start, true, undefined), container);
  return MARKS.get(container)?.signature ?? '';
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
  return scan(text, 0, true, undefined);
}

/**
 * Marks `target`, a copy of the JSON value whose text starts at `text[start]` (the same structure,
 * e.g. a schema's output, which copies objects), as {@link parseJsonMarked} would mark the value:
 * each container of `target` found by the same key or index; one missing there, or of another
 * kind, is skipped. Reads the text once and makes no values.
 *
 * @param text - JSON text that `JSON.parse` accepted.
 * @param start - where the value's text starts.
 */
export function markJsonCopy(text: string, start: number, target: unknown): void {
  scan(text, start, false, target);
}

/** The containers {@link scan} marked in a copy, by path from the value, to mark the next copy of the same text. */
interface MarksPlan {
  readonly entries: { readonly path: readonly (string | number)[]; readonly marks: JsonMarks }[];
  /** False when a repeated key made the scan read an object again (its marks are not all in `entries`). */
  reusable: boolean;
}

/** Marks `target` as the plan says (each path followed by own keys or indices; one that does not lead to a container of the right kind is skipped). */
function applyPlan(plan: MarksPlan, target: unknown): void {
  for (const { path, marks } of plan.entries) {
    let v = target;
    for (const k of path) {
      if (typeof v !== 'object' || v === null || (typeof k === 'number') !== Array.isArray(v) || !Object.hasOwn(v, k)) {
        v = undefined;
        break;
      }
      v = (v as Record<string | number, unknown>)[k];
    }
    if (typeof v === 'object' && v !== null) MARKS.set(v, marks);
  }
}

/**
 * Plans by the member's text (`tools`, `chat_template_kwargs`): agentic traffic sends one tool list
 * on every request, so its text is read once and later copies are marked by path. At most
 * {@link PLANS_MAX} entries; when full it starts over.
 */
const PLANS = new Map<string, MarksPlan>();
const PLANS_MAX = 64;
const NOTHING_TO_MARK: MarksPlan = { entries: [], reusable: true };

/** Marks `target`, the validated copy of the JSON value `text.slice(start, end)`, reading the text only for a new one. */
function markMember(text: string, start: number, end: number, target: unknown): void {
  const member = text.slice(start, end);
  const known = PLANS.get(member);
  if (known !== undefined) {
    applyPlan(known, target);
    return;
  }
  let plan = NOTHING_TO_MARK;
  if (hasJsonMarkCandidates(text, start, end)) {
    plan = { entries: [], reusable: true };
    scan(text, start, false, target, plan);
    if (!plan.reusable) return;
  }
  if (PLANS.size >= PLANS_MAX) PLANS.clear();
  // a copy of the text: a slice would keep the whole body alive
  PLANS.set(Buffer.from(member, 'utf8').toString('utf8'), plan);
}

/** Reads `"key" :` at `i` into the frame (its place; the string is made when needed); returns the index after the colon. */
function readKey(text: string, i: number, frame: Frame, keyStarts: KeyStarts): number {
  while (isWs(text.charCodeAt(i))) i++;
  const j = stringEnd(text, i);
  frame.keyAt = i;
  frame.keyEnd = j;
  frame.key = undefined;
  keyStarts.at[keyStarts.n++] = i;
  if (!frame.indexKey && isIndexKeyText(text, i, j)) frame.indexKey = true;
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
 * marks): `''` when `x` has no marks, else each mark with its path below `x`. Made when the marks
 * are read: O(1) here.
 */
export function jsonMarksSignature(x: unknown): string {
  return (typeof x === 'object' && x !== null && MARKS.get(x)?.signature) || '';
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
    const key = stringAt(text, i, j);
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
 * @param bodyText - the request body as received (JSON text `JSON.parse` accepted), as text or UTF-8 bytes.
 */
export function markRequestToolsJson(request: { readonly tools?: unknown; readonly chat_template_kwargs?: unknown }, bodyText: string | Uint8Array): void {
  const tools = request.tools;
  const kwargs = request.chat_template_kwargs;
  if ((!Array.isArray(tools) || tools.length === 0) && (typeof kwargs !== 'object' || kwargs === null)) return;
  // bytes are decoded only here, for a request that has something to mark
  const text = typeof bodyText === 'string' ? bodyText : Buffer.from(bodyText.buffer, bodyText.byteOffset, bodyText.byteLength).toString('utf8');
  for (const [key, [start, end]] of topLevelMembers(text, TOJSON_MEMBERS)) {
    markMember(text, start, end, key === 'tools' ? tools : kwargs);
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
