import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pythonJsonDumps } from './chat-tools.js';
import { carryJsonMarks, hasJsonMarkCandidates, jsonMarksOf, jsonMarksSignature, markJsonCopy, markRequestToolsJson, parseJsonKeepingNumbers, parseJsonMarked } from './json-marks.js';

/** Random JSON text as clients write it: integral and fractional floats in several spellings, integer-like and repeated keys, escapes, whitespace. */
const numberText = fc.oneof(
  fc.integer({ min: -1e6, max: 1e6 }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => JSON.stringify(x)),
  fc.constantFrom('1.0', '0.0', '-0.0', '-0', '1e3', '2.50e1', '1E+2', '1e16', '1.5e17', '1e400', '-1e400', '1e-400', '12345678901234567890', '9007199254740993', '0.1', '1e-7', '5e-324'),
);
const keyText = fc.oneof(
  fc.constantFrom('a', 'b', '1', '0', '42', '007', '4294967294', '4294967295', '-1', '1.0', '__proto__', 'constructor', 'é', '\\u0031', '\\"q\\"', 'a\\nb', '\\ud83d\\ude00'),
  fc.string({ maxLength: 4 }).map((s) => JSON.stringify(s).slice(1, -1)),
);
const ws = fc.constantFrom('', ' ', '\n  ', '\t');
const jsonText: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('null', 'true', 'false'),
    numberText,
    fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)),
    fc.tuple(fc.array(tie('v'), { maxLength: 4 }), ws).map(([a, w]) => `[${w}${a.join(`${w},${w}`)}${w}]`),
    fc.tuple(fc.array(fc.tuple(keyText, tie('v')), { maxLength: 5 }), ws).map(([m, w]) => `{${w}${m.map(([k, v]) => `"${k}"${w}:${w}${v}`).join(`,${w}`)}${w}}`),
  ),
})).v;

describe('parseJsonMarked', () => {
  it('property: the values deep-equal JSON.parse’s (numbers, repeated keys, key order, escapes, __proto__)', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        const expected: unknown = JSON.parse(text);
        const got = parseJsonMarked(text);
        // node's strict deep equality: -0 apart from 0, prototypes, own keys (vitest's toStrictEqual reads a `constructor` key as the type)
        expect(isDeepStrictEqual(got, expected)).toBe(true);
        // same key order and own-property shape (toStrictEqual ignores order)
        expect(JSON.stringify(got)).toBe(JSON.stringify(expected));
      }),
      { numRuns: 2000 },
    );
  });

  it('property: the cheap scan finds a candidate whenever the scanner leaves a mark', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        const v = parseJsonMarked(text);
        const marked = typeof v === 'object' && v !== null && jsonMarksOf(v) !== undefined;
        // a top-level scalar has no container to hold a mark
        if (marked) expect(hasJsonMarkCandidates(text)).toBe(true);
      }),
      { numRuns: 1000 },
    );
    // and only then, but for a repeated key whose last value replaces a marked one
    for (const text of ['{"a": [1, 2.5, "1.0", {"x1": "2e3"}], "b": "\\"1\\": 1.0"}', '{"b": 1e-3, "c": -12, "4294967295": 0, "01": 1}', '[1.5, 2E-1, {"-1": 0}]']) {
      expect(hasJsonMarkCandidates(text), text).toBe(false);
    }
    for (const text of ['{"a": 1.0}', '[1, 2, 1E2]', '{"x": {"4294967294": 0}}', '{"\\u0037": 0}', '{"a": 1.5e1}']) expect(hasJsonMarkCandidates(text), text).toBe(true);
  });

  it('property: marking a copy in step with the text (no values made) gives the marks the scanner’s own values get, repeated keys included', () => {
    fc.assert(
      fc.property(jsonText, ws, (text, w) => {
        const wrapped = `{"a": [1.0], "x":${w}${text}${w}}`;
        const copy = JSON.parse(wrapped) as { x: unknown };
        markJsonCopy(wrapped, wrapped.indexOf(':', wrapped.indexOf('"x"')) + 1 + w.length, copy.x);
        const own = parseJsonMarked(text);
        expect(pythonJsonDumps(copy.x)).toBe(pythonJsonDumps(own));
        expect(jsonMarksSignature(copy.x)).toBe(jsonMarksSignature(own));
      }),
      { numRuns: 2000 },
    );
    // a repeated key whose first value holds marks and whose last does not
    const text = '{"x": {"a": 1.0, "1": 0}, "y": 2, "x": {"a": 1, "b": 0}}';
    const copy = JSON.parse(text) as object;
    markJsonCopy(text, 0, copy);
    expect(pythonJsonDumps(copy)).toBe('{"x": {"a": 1, "b": 0}, "y": 2}');
    expect(jsonMarksSignature(copy)).toBe('');
  });

  it('marks integral float members, the wire key order, and containers holding marks', () => {
    const v = parseJsonMarked('{"b": 1.0, "1": [2, 3e0, 0.5], "a": {"x": -0.0}, "c": 1}') as Record<string, unknown>;
    expect(v).toStrictEqual({ 1: [2, 3, 0.5], b: 1, a: { x: -0 }, c: 1 });
    const m = jsonMarksOf(v);
    expect([...(m?.floats ?? [])]).toEqual(['b']);
    expect(m?.keys).toEqual(['b', '1', 'a', 'c']);
    expect([...(m?.below ?? [])].sort()).toEqual(['1', 'a']);
    expect([...(jsonMarksOf(v['1'] as object)?.floats ?? [])]).toEqual([1]);
    expect(pythonJsonDumps(v)).toBe('{"b": 1.0, "1": [2, 3.0, 0.5], "a": {"x": -0.0}, "c": 1}');
  });

  it('a repeated key: the last value decides the mark, the first place the order', () => {
    const v = parseJsonMarked('{"x": 1.0, "2": 0, "x": 1, "y": [1], "y": 2.0}') as object;
    expect(pythonJsonDumps(v)).toBe('{"x": 1, "2": 0, "y": 2.0}');
    expect(pythonJsonDumps(parseJsonMarked('{"x": {"a": 1.0}, "x": {"a": 1}}'))).toBe('{"x": {"a": 1}}');
  });

  it('writes integral floats as Python’s float repr (expected: Python 3 json.dumps(json.loads(s)))', () => {
    const cases: [string, string][] = [
      ['[1.0, 0.0, -0.0, 1e3, 2.50e1, 1E+2, 100.00]', '[1.0, 0.0, -0.0, 1000.0, 25.0, 100.0, 100.0]'],
      ['[9999999999999998.0, 1e16, 1.5e17, 123456789012345678.0, 1e22, -1e100]', '[9999999999999998.0, 1e+16, 1.5e+17, 1.2345678901234568e+17, 1e+22, -1e+100]'],
      ['[1e400, -1e400, 1e-400, 0.5, 1e-5, 3, -0]', '[Infinity, -Infinity, 0.0, 0.5, 1e-05, 3, 0]'],
    ];
    for (const [wire, py] of cases) expect(pythonJsonDumps(parseJsonMarked(wire))).toBe(py);
  });

  it('reads 10k-deep arrays without a recursion-depth failure, marks included', () => {
    const depth = 10_000;
    const text = `${'['.repeat(depth)}1.0${']'.repeat(depth)}`;
    let v = parseJsonMarked(text);
    expect(jsonMarksSignature(v).length).toBeGreaterThan(depth);
    for (let d = 1; d < depth; d++) v = (v as unknown[])[0];
    expect(v).toEqual([1]);
    expect([...(jsonMarksOf(v as object)?.floats ?? [])]).toEqual([0]);
    // and a copy gets the marks all the way down (iteratively)
    const copy = JSON.parse(text) as unknown;
    carryJsonMarks(parseJsonMarked(text), copy);
    let c = copy;
    for (let d = 1; d < depth; d++) c = (c as unknown[])[0];
    expect([...(jsonMarksOf(c as object)?.floats ?? [])]).toEqual([0]);
  });
});

describe('markRequestToolsJson', () => {
  const body =
    '{"model": "m", "temperature": 1.0, "messages": [{"role": "user", "content": "1.0 \\"2\\": x"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"b": {"type": "number", "default": 1.0}, "1": {"type": "integer", "minimum": 0}}}}}], "chat_template_kwargs": {"x": {"7": 1, "a": 2e0}}}';

  it('carries the marks of tools and chat_template_kwargs onto copies of them (a schema’s output), read from the text once per text', () => {
    for (let round = 0; round < 3; round++) check(round === 2 ? body.replace('"temperature"', ' "temperature"') : body);
    // a repeated key whose first value holds marks: read again each time
    const dup = '{"tools": [{"function": {"name": "f", "parameters": {"x": {"a": 1.0}, "x": {"a": 1}}}}], "messages": []}';
    for (let round = 0; round < 2; round++) {
      const r = JSON.parse(dup) as { tools: { function: { parameters: object } }[] };
      markRequestToolsJson(r, dup);
      expect(pythonJsonDumps(r.tools[0]?.function.parameters)).toBe('{"x": {"a": 1}}');
    }
  });

  function check(body: string): void {
    const parsed = JSON.parse(body) as { tools: { function: { parameters: object } }[]; chat_template_kwargs: Record<string, object> };
    const copy = { ...parsed, tools: parsed.tools.map((t) => ({ ...t, function: { ...t.function, parameters: { ...t.function.parameters } } })), chat_template_kwargs: { ...parsed.chat_template_kwargs } };
    expect(pythonJsonDumps(copy.tools[0]?.function.parameters)).toBe('{"type": "object", "properties": {"1": {"type": "integer", "minimum": 0}, "b": {"type": "number", "default": 1}}}');
    markRequestToolsJson(copy, body);
    expect(pythonJsonDumps(copy.tools[0]?.function.parameters)).toBe('{"type": "object", "properties": {"b": {"type": "number", "default": 1.0}, "1": {"type": "integer", "minimum": 0}}}');
    expect(pythonJsonDumps(copy.chat_template_kwargs['x'])).toBe('{"7": 1, "a": 2.0}');
    // the values themselves are untouched: no extra properties
    expect(JSON.stringify(copy)).toBe(JSON.stringify(parsed));
    expect(jsonMarksSignature(copy.tools)).not.toBe('');
  }

  it('does nothing for a request without tools or template variables, or without candidates', () => {
    const plain = JSON.parse('{"messages": [], "temperature": 1.0}') as object;
    markRequestToolsJson(plain, '{"messages": [], "temperature": 1.0}');
    expect(jsonMarksOf(plain)).toBeUndefined();
    const text = '{"tools": [{"function": {"name": "f", "parameters": {"a": 1, "b": 0.5}}}], "temperature": 1.0}';
    const r = JSON.parse(text) as { tools: unknown[] };
    markRequestToolsJson(r, text);
    expect(jsonMarksSignature(r.tools)).toBe('');
  });
});

describe('parseJsonKeepingNumbers', () => {
  it('JSON.parse with marks when the text has candidates; throws on malformed text', () => {
    expect(pythonJsonDumps(parseJsonKeepingNumbers('{"x": 1.0, "10": "a", "2": "b"}'))).toBe('{"x": 1.0, "10": "a", "2": "b"}');
    expect(pythonJsonDumps(parseJsonKeepingNumbers('{"x": 1, "y": 0.25}'))).toBe('{"x": 1, "y": 0.25}');
    expect(() => parseJsonKeepingNumbers('{"x": 1.0')).toThrow(SyntaxError);
  });
});
