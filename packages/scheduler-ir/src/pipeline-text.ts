/**
 * Textual pipelines in MLIR's grammar, e.g.
 * `sched.step(admission{safety=0.9},prefix-cache-aware,sched.running(priority{aging-ms=500}),chunked-prefill{budget=8192})`:
 * parsing with spans, canonical printing (options resolved and sorted) and the experiment id.
 *
 * @see https://mlir.llvm.org/docs/PassManagement/#textual-pass-pipeline-specification
 */
import { createHash } from 'node:crypto';
import { KvmgrError } from '@kvmgr/core';
import { coerceOption, defaultOptions, printOptionValue } from './options.js';
import type { OptionValue } from './options.js';
import type { Anchor, PassKind } from './pass.js';
import type { PassRegistry } from './registry.js';

/** A range of the pipeline text, in UTF-16 code units. */
export interface Span {
  readonly offset: number;
  readonly length: number;
}

/** A pass with its resolved options. */
export interface PassNode {
  readonly kind: 'pass';
  readonly name: string;
  /** Every option of the pass's schema, defaults filled in. */
  readonly options: Readonly<Record<string, OptionValue>>;
  readonly span: Span;
}

/** An op anchor with the passes (and nested anchors) that run on it. */
export interface AnchorNode {
  readonly kind: 'anchor';
  readonly anchor: Anchor;
  readonly children: readonly (PassNode | AnchorNode)[];
  readonly span: Span;
}

/** A parsed pipeline: the root `sched.step` anchor. */
export type Pipeline = AnchorNode;

const NESTED: Readonly<Record<Anchor, readonly Anchor[]>> = {
  'sched.step': ['sched.waiting', 'sched.running'],
  'sched.waiting': [],
  'sched.running': [],
};

/**
 * Renders `message` with the pipeline text and a caret line under the span.
 * @param text - the pipeline text.
 * @param span - offset and length (length 0 renders one caret).
 */
export function renderSpan(message: string, text: string, span: Span): string {
  const carets = '^'.repeat(Math.max(1, span.length));
  return `${message}\n  ${text}\n  ${' '.repeat(span.offset)}${carets}`;
}

function fail(text: string, offset: number, length: number, message: string): never {
  throw new KvmgrError('KVMGR_BAD_PIPELINE', renderSpan(message, text, { offset, length }), {
    details: { pipeline: text, offset, length, reason: message },
  });
}

const isNameChar = (c: string): boolean => /[A-Za-z0-9_.-]/.test(c);

class Parser {
  pos = 0;
  constructor(
    readonly text: string,
    readonly registry: PassRegistry,
  ) {}

  ws(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] as string)) this.pos++;
  }

  name(): { name: string; offset: number } {
    this.ws();
    const start = this.pos;
    while (this.pos < this.text.length && isNameChar(this.text[this.pos] as string)) this.pos++;
    if (this.pos === start) {
      const c = this.text[this.pos];
      fail(this.text, start, c === undefined ? 0 : 1, c === undefined ? 'expected a pass or op name, got end of pipeline' : `expected a pass or op name, got ${JSON.stringify(c)}`);
    }
    return { name: this.text.slice(start, this.pos), offset: start };
  }

  anchorBody(anchor: Anchor, nameOffset: number): AnchorNode {
    // at '('
    const open = this.pos;
    this.pos++;
    const children: (PassNode | AnchorNode)[] = [];
    this.ws();
    if (this.text[this.pos] === ')') {
      this.pos++;
      return { kind: 'anchor', anchor, children, span: { offset: nameOffset, length: this.pos - nameOffset } };
    }
    for (;;) {
      children.push(this.element(anchor));
      this.ws();
      const c = this.text[this.pos];
      if (c === ',') {
        this.pos++;
        continue;
      }
      if (c === ')') {
        this.pos++;
        break;
      }
      if (c === undefined) fail(this.text, open, 1, `unbalanced '(': no matching ')' for ${anchor}`);
      if (c === '}') fail(this.text, this.pos, 1, `unbalanced '}': no matching '{'`);
      fail(this.text, this.pos, 1, `expected ',' or ')' after a pass, got ${JSON.stringify(c)}`);
    }
    return { kind: 'anchor', anchor, children, span: { offset: nameOffset, length: this.pos - nameOffset } };
  }

  element(parent: Anchor): PassNode | AnchorNode {
    const { name, offset } = this.name();
    this.ws();
    if (this.text[this.pos] === '(') {
      if (!Object.hasOwn(NESTED, name)) fail(this.text, offset, name.length, `unknown op anchor ${JSON.stringify(name)} (known: sched.step, sched.waiting, sched.running)`);
      const anchor = name as Anchor;
      if (!NESTED[parent].includes(anchor)) {
        fail(this.text, offset, name.length, `op ${anchor} cannot be nested in ${parent}${NESTED[parent].length ? ` (allowed: ${NESTED[parent].join(', ')})` : ''}`);
      }
      return this.anchorBody(anchor, offset);
    }
    const def = this.registry.get(name);
    if (!def) {
      const hint = this.registry.getPreset(name) !== undefined ? ' (it is a preset; use it as the whole pipeline)' : '';
      fail(this.text, offset, name.length, `unknown pass ${JSON.stringify(name)}${hint}`);
    }
    if (!def.anchors.includes(parent)) {
      fail(this.text, offset, name.length, `pass ${JSON.stringify(name)} cannot run on ${parent} (it anchors on ${def.anchors.join(', ')})`);
    }
    const options = defaultOptions(def.options);
    if (this.text[this.pos] === '{') {
      const open = this.pos;
      this.pos++;
      const seen = new Set<string>();
      for (;;) {
        while (this.pos < this.text.length && /[\s,]/.test(this.text[this.pos] as string)) this.pos++;
        const c = this.text[this.pos];
        if (c === '}') {
          this.pos++;
          break;
        }
        if (c === undefined || c === ')') fail(this.text, open, 1, `unbalanced '{': no matching '}' for the options of ${name}`);
        const keyStart = this.pos;
        while (this.pos < this.text.length && /[A-Za-z0-9_-]/.test(this.text[this.pos] as string)) this.pos++;
        const key = this.text.slice(keyStart, this.pos);
        if (key === '') fail(this.text, keyStart, 1, `expected an option name in ${name}{...}, got ${JSON.stringify(c)}`);
        // own properties only: `constructor`, `__proto__`, `toString` are not options
        const spec = Object.hasOwn(def.options, key) ? def.options[key] : undefined;
        if (!spec) {
          const known = Object.keys(def.options);
          fail(this.text, keyStart, key.length, `unknown option ${JSON.stringify(key)} of pass ${name} (known: ${known.length ? known.join(', ') : 'none'})`);
        }
        if (seen.has(key)) fail(this.text, keyStart, key.length, `option ${JSON.stringify(key)} of pass ${name} given twice`);
        seen.add(key);
        let valueText: string;
        let valueStart: number;
        if (this.text[this.pos] === '=') {
          this.pos++;
          valueStart = this.pos;
          if (this.text[this.pos] === '"') {
            const end = this.text.indexOf('"', this.pos + 1);
            if (end < 0) fail(this.text, this.pos, 1, 'unterminated string');
            valueText = this.text.slice(this.pos + 1, end);
            this.pos = end + 1;
          } else {
            while (this.pos < this.text.length && !/[\s,{}()]/.test(this.text[this.pos] as string)) this.pos++;
            valueText = this.text.slice(valueStart, this.pos);
          }
        } else if (spec.type === 'bool') {
          valueStart = keyStart;
          valueText = 'true';
        } else {
          fail(this.text, keyStart, key.length, `option ${key} of pass ${name} needs a value (${key}=...)`);
        }
        const r = coerceOption(spec, valueText);
        if ('error' in r) {
          fail(this.text, valueStart, Math.max(1, this.pos - valueStart), `bad value ${JSON.stringify(valueText)} for option ${key} of pass ${name}: ${r.error}`);
        }
        options[key] = r.value;
      }
    }
    return { kind: 'pass', name, options, span: { offset, length: this.pos - offset } };
  }

  root(): Pipeline {
    this.ws();
    const { name, offset } = this.name();
    this.ws();
    if (this.text[this.pos] !== '(') {
      if (this.registry.get(name)) fail(this.text, offset, name.length, `pass ${JSON.stringify(name)} must be nested in an op anchor: sched.step(${name})`);
      fail(this.text, offset, name.length, `unknown pipeline or op anchor ${JSON.stringify(name)} (expected sched.step(...) or a preset: ${this.registry.presetNames().join(', ')})`);
    }
    if (name !== 'sched.step') {
      fail(this.text, offset, name.length, Object.hasOwn(NESTED, name) ? `op ${name} cannot be the root; the root is sched.step` : `unknown op anchor ${JSON.stringify(name)} (expected sched.step)`);
    }
    const node = this.anchorBody('sched.step', offset);
    this.ws();
    if (this.pos < this.text.length) {
      const c = this.text[this.pos] as string;
      fail(this.text, this.pos, this.text.length - this.pos, c === ')' ? `unbalanced ')': no matching '('` : `unexpected text after the pipeline`);
    }
    return node;
  }
}

/** Options of {@link parsePipeline}. */
export interface ParsePipelineOptions {
  /**
   * Reject a pipeline that cannot produce a plan: one with no `materialize` pass (such as
   * `sched.step(fcfs)`, whose plan schedules nothing, step after step). Set by the entry points
   * that run engine steps (simulator, engine core, the CLI's pre-run check); left off where a
   * pipeline only inspects an ordering of a saved state (`kvmgr ir opt`, tests).
   * @default false
   */
  readonly requirePlan?: boolean;
}

function hasPass(node: AnchorNode, registry: PassRegistry, kind: PassKind): boolean {
  return node.children.some((c) => (c.kind === 'anchor' ? hasPass(c, registry, kind) : registry.get(c.name)?.kind === kind));
}

/** What to add to a pipeline with no materialize pass: the registry's materialize passes. */
function materializeHint(registry: PassRegistry): string {
  const names = registry.passNames().filter((n) => registry.get(n)?.kind === 'materialize');
  if (names.length === 0) return '(and the registry has none)';
  // chunked-prefill as the presets spell it: vLLM's budgets
  const spelled = names.map((n) => (n === 'chunked-prefill' ? 'chunked-prefill{budget=8192 max-seqs=1024}' : n));
  return `(add ${spelled.join(' or ')})`;
}

/**
 * Parses a textual pipeline (or a preset name) against a registry.
 * @param text - `sched.step(...)`, or a preset name such as `vllm-default`.
 * @param registry - pass and preset names.
 * @param options - `requirePlan` (default false): also reject a pipeline with no materialize pass.
 * @returns the root anchor with resolved options; spans point into `text` (into the preset's
 *   text when a preset name was given).
 * @throws KvmgrError `KVMGR_BAD_PIPELINE` with `details.offset/length` and a caret rendering in
 *   the message, for unknown passes/options, bad values, unbalanced brackets and wrong anchors;
 *   with `requirePlan`, for a pipeline that cannot produce a plan (the caret under the closing
 *   `)` of `sched.step`, where the materialize pass belongs; `details.missing` = `'materialize'`).
 */
export function parsePipeline(text: string, registry: PassRegistry, options: ParsePipelineOptions = {}): Pipeline {
  const preset = registry.getPreset(text.trim());
  const source = preset ?? text;
  const node = new Parser(source, registry).root();
  if (options.requirePlan && !hasPass(node, registry, 'materialize')) {
    const end = node.span.offset + node.span.length - 1;
    const what = preset === undefined ? `pipeline ${JSON.stringify(source)}` : `preset ${JSON.stringify(text.trim())} = ${JSON.stringify(source)}`;
    const reason = `${what} cannot produce a plan: it has no materialize pass ${materializeHint(registry)}`;
    throw new KvmgrError('KVMGR_BAD_PIPELINE', renderSpan(reason, source, { offset: end, length: 1 }), {
      details: { pipeline: source, offset: end, length: 1, reason, missing: 'materialize' },
    });
  }
  return node;
}

/** Canonical text: every option printed (sorted by name), no spaces except between options. */
export function printPipeline(node: AnchorNode): string {
  const parts = node.children.map((c) => {
    if (c.kind === 'anchor') return printPipeline(c);
    const keys = Object.keys(c.options).sort();
    if (keys.length === 0) return c.name;
    return `${c.name}{${keys.map((k) => `${k}=${printOptionValue(c.options[k] as OptionValue)}`).join(' ')}}`;
  });
  return `${node.anchor}(${parts.join(',')})`;
}

/**
 * The experiment id of a pipeline: first 16 hex digits of sha256 over the canonical text.
 * Two spellings of the same pipeline (defaults omitted, options reordered) share it.
 */
export function pipelineId(node: AnchorNode): string {
  return createHash('sha256').update(printPipeline(node)).digest('hex').slice(0, 16);
}

/** The pipeline without spans (for structural comparison). */
export function stripSpans(node: AnchorNode): unknown {
  return {
    anchor: node.anchor,
    children: node.children.map((c) => (c.kind === 'anchor' ? stripSpans(c) : { name: c.name, options: c.options })),
  };
}
