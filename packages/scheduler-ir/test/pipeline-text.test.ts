import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isKvmgrError } from '@kvmgr/core';
import { BUILTIN_PASSES, PRESETS, PassManager, createDefaultRegistry, parsePipeline, pipelineId, printPipeline, stripSpans } from '../src/index.js';
import type { OptionSpec } from '../src/index.js';

const registry = createDefaultRegistry();

function parseError(text: string, requirePlan = false): { offset: number; length: number; message: string; details: Record<string, unknown> } {
  try {
    parsePipeline(text, registry, { requirePlan });
  } catch (e) {
    expect(isKvmgrError(e, 'KVMGR_BAD_PIPELINE')).toBe(true);
    const d = (e as { details: { offset: number; length: number } }).details;
    return { offset: d.offset, length: d.length, message: (e as Error).message, details: d };
  }
  throw new Error(`expected ${text} to fail`);
}

describe('parsePipeline / printPipeline', () => {
  it('parses the issue example and prints it canonically with options resolved and sorted', () => {
    const p = parsePipeline('sched.step(admission{safety=0.9},prefix-cache-aware,priority{aging-ms=500},chunked-prefill{budget=8192})', registry);
    expect(p.children.map((c) => (c.kind === 'pass' ? c.name : c.anchor))).toEqual(['admission', 'prefix-cache-aware', 'priority', 'chunked-prefill']);
    expect(printPipeline(p)).toBe(
      'sched.step(admission{backfill=true backfill-window=16 fallback-tokens=256 margin=0.1 preempt=false quantile=p90 safety=0.9 starvation-ms=5000},' +
        'prefix-cache-aware{fcfs-above=0 starvation-ms=5000},priority{aging-ms=500},chunked-prefill{budget=8192 enabled=true long-prefill=0 max-seqs=1024})',
    );
  });

  it('gives two spellings of one pipeline the same experiment id, and different pipelines different ids', () => {
    const a = parsePipeline('sched.step( fcfs , chunked-prefill{max-seqs=1024 budget=8192} )', registry);
    const b = parsePipeline('sched.step(fcfs,chunked-prefill)', registry);
    const c = parsePipeline('sched.step(fcfs,chunked-prefill{budget=4096})', registry);
    expect(pipelineId(a)).toBe(pipelineId(b));
    expect(pipelineId(a)).not.toBe(pipelineId(c));
    expect(pipelineId(a)).toMatch(/^[0-9a-f]{16}$/);
  });

  it('expands presets and nests queue anchors', () => {
    const p = parsePipeline('vllm-default', registry);
    expect(printPipeline(p)).toBe(
      'sched.step(fcfs,memory-aware-preemption{admit-after-preempt=false mode=recompute swap-min-tokens=1024 victim=newest},chunked-prefill{budget=8192 enabled=true long-prefill=0 max-seqs=1024})',
    );
    const q = parsePipeline('sched.step(sched.waiting(fcfs,priority),sched.running(priority{aging-ms=1}),chunked-prefill)', registry);
    expect(printPipeline(q)).toBe('sched.step(sched.waiting(fcfs,priority{aging-ms=0}),sched.running(priority{aging-ms=1}),chunked-prefill{budget=8192 enabled=true long-prefill=0 max-seqs=1024})');
  });

  it('round-trips generated pipelines: parse(print(parse(s))) == parse(s)', () => {
    const valueText = (spec: OptionSpec): fc.Arbitrary<string> => {
      switch (spec.type) {
        case 'int':
          return fc.integer({ min: spec.min ?? 0, max: spec.max ?? 100000 }).map(String);
        case 'number':
          return fc.double({ min: spec.min ?? 0, max: spec.max ?? 1e6, noNaN: true, noDefaultInfinity: true }).map(String);
        case 'bool':
          return fc.constantFrom('true', 'false', '1', '0');
        case 'enum':
          return fc.constantFrom(...spec.values);
      }
    };
    const passText = (anchor: string): fc.Arbitrary<string> =>
      fc.constantFrom(...BUILTIN_PASSES.filter((p) => p.anchors.includes(anchor as never))).chain((def) => {
        const keys = Object.keys(def.options);
        if (keys.length === 0) return fc.constant(def.argument);
        return fc.subarray(keys).chain((chosen) =>
          chosen.length === 0
            ? fc.constant(def.argument)
            : fc.tuple(...chosen.map((k) => valueText(def.options[k]!).map((v) => `${k}=${v}`))).map((kv) => `${def.argument}{${kv.join(' ')}}`),
        );
      });
    const nested = fc.tuple(fc.constantFrom('sched.waiting', 'sched.running'), fc.array(passText('sched.waiting'), { maxLength: 3 })).map(([a, ps]) =>
      a === 'sched.running' ? `${a}(${ps.filter((p) => /^(fcfs|priority)/.test(p)).join(',')})` : `${a}(${ps.join(',')})`,
    );
    const pipeline = fc.array(fc.oneof(passText('sched.step'), nested), { maxLength: 6 }).map((xs) => `sched.step(${xs.join(',')})`);
    fc.assert(
      fc.property(pipeline, (s) => {
        const p = parsePipeline(s, registry);
        const again = parsePipeline(printPipeline(p), registry);
        expect(stripSpans(again)).toEqual(stripSpans(p));
        expect(printPipeline(again)).toBe(printPipeline(p));
      }),
      { numRuns: 300 },
    );
  });
});

describe('pipeline errors point at the offending span', () => {
  it('unknown pass', () => {
    const e = parseError('sched.step(fcfs,fcfz,chunked-prefill)');
    expect(e).toMatchObject({ offset: 16, length: 4 });
    expect(e.message).toContain('unknown pass "fcfz"');
    expect(e.message).toContain('\n  sched.step(fcfs,fcfz,chunked-prefill)\n                  ^^^^');
  });

  it('unknown option, bad value, missing value, repeated option', () => {
    expect(parseError('sched.step(priority{agin-ms=5})')).toMatchObject({ offset: 20, length: 7 });
    const bad = parseError('sched.step(chunked-prefill{budget=lots})');
    expect(bad).toMatchObject({ offset: 34, length: 4 });
    expect(bad.message).toContain('expected an integer');
    expect(parseError('sched.step(admission{safety=1.5})')).toMatchObject({ offset: 28, length: 3 });
    expect(parseError('sched.step(admission{quantile=p99})').message).toContain('expected one of p50, p90, max');
    expect(parseError('sched.step(chunked-prefill{budget})')).toMatchObject({ offset: 27, length: 6 });
    expect(parseError('sched.step(fcfs{x=1})').message).toContain('(known: none)');
    expect(parseError('sched.step(priority{aging-ms=1 aging-ms=2})')).toMatchObject({ offset: 31, length: 8 });
  });

  it('unbalanced brackets', () => {
    expect(parseError('sched.step(fcfs,chunked-prefill')).toMatchObject({ offset: 10, length: 1 });
    expect(parseError('sched.step(priority{aging-ms=5)')).toMatchObject({ offset: 19, length: 1 });
    expect(parseError('sched.step(fcfs))')).toMatchObject({ offset: 16, length: 1 });
    expect(parseError('sched.step(fcfs})').message).toContain("unbalanced '}'");
    expect(parseError('sched.step(fcfs,)').message).toContain('expected a pass or op name');
  });

  it('pass on the wrong anchor', () => {
    const e = parseError('sched.step(sched.waiting(chunked-prefill))');
    expect(e).toMatchObject({ offset: 25, length: 15 });
    expect(e.message).toContain('cannot run on sched.waiting');
    expect(parseError('sched.step(sched.running(sjf))').message).toContain('cannot run on sched.running');
    expect(parseError('fcfs')).toMatchObject({ offset: 0, length: 4 });
    expect(parseError('sched.waiting(fcfs)').message).toContain('cannot be the root');
    expect(parseError('sched.step(sched.waiting(sched.running(fcfs)))').message).toContain('cannot be nested in sched.waiting');
    expect(parseError('sched.step(vllm-default)').message).toContain('it is a preset');
  });

  it('a failed setPipeline changes nothing', () => {
    const pm = new PassManager({ pipeline: 'vllm-default', registry });
    const before = { canonical: pm.canonical, id: pm.id, passes: pm.passes.map((p) => p.argument) };
    expect(() => pm.setPipeline('sched.step(fcfs,nope)')).toThrow(/unknown pass/);
    expect({ canonical: pm.canonical, id: pm.id, passes: pm.passes.map((p) => p.argument) }).toEqual(before);
  });
});

describe('requirePlan: a pipeline that runs an engine step must produce a plan', () => {
  const hint = 'it has no materialize pass (add chunked-prefill{budget=8192 max-seqs=1024})';

  it.each(['sched.step(fcfs)', 'sched.step(fcfs,priority)', 'sched.step(admission)', 'sched.step(sched.waiting(sjf),lifetime-aware,memory-aware-preemption)', 'sched.step()'])(
    'rejects %s, naming what is missing and pointing at the closing paren',
    (text) => {
      const e = parseError(text, true);
      expect(e.message).toContain(`pipeline ${JSON.stringify(text)} cannot produce a plan: ${hint}`);
      expect(e).toMatchObject({ offset: text.length - 1, length: 1 });
      expect(e.details).toMatchObject({ pipeline: text, missing: 'materialize' });
      expect(e.message.endsWith(`\n  ${text}\n  ${' '.repeat(text.length - 1)}^`)).toBe(true);
      // without requirePlan the same text parses: `kvmgr ir opt` inspects orderings with it
      expect(() => parsePipeline(text, registry)).not.toThrow();
    },
  );

  it('gives the exact message of the issue', () => {
    expect(parseError('sched.step(fcfs)', true).message.split('\n')[0]).toBe(
      'pipeline "sched.step(fcfs)" cannot produce a plan: it has no materialize pass (add chunked-prefill{budget=8192 max-seqs=1024})',
    );
  });

  it('names a plan-less preset and points into its text', () => {
    const r = createDefaultRegistry();
    r.registerPreset('order-only', 'sched.step(fcfs,priority)');
    try {
      parsePipeline('order-only', r, { requirePlan: true });
      expect.unreachable();
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_BAD_PIPELINE')).toBe(true);
      expect((e as Error).message).toContain('preset "order-only" = "sched.step(fcfs,priority)" cannot produce a plan');
      expect((e as { details: unknown }).details).toMatchObject({ pipeline: 'sched.step(fcfs,priority)', offset: 24, length: 1 });
    }
  });

  it('still reports syntax errors first', () => {
    expect(parseError('sched.step(fcfz)', true).message).toContain('unknown pass "fcfz"');
  });

  it.each(Object.keys(PRESETS))('accepts preset %s, which round-trips: print → parse → print is identical', (name) => {
    const p = parsePipeline(name, registry, { requirePlan: true });
    const printed = printPipeline(p);
    const again = parsePipeline(printed, registry, { requirePlan: true });
    expect(printPipeline(again)).toBe(printed);
    expect(stripSpans(again)).toEqual(stripSpans(p));
    expect(pipelineId(again)).toBe(pipelineId(p));
    // the preset's own text, too
    expect(printPipeline(parsePipeline(PRESETS[name]!, registry, { requirePlan: true }))).toBe(printed);
  });

  it('accepts a materialize pass anywhere in sched.step', () => {
    expect(() => parsePipeline('sched.step(chunked-prefill,batching-efficiency)', registry, { requirePlan: true })).not.toThrow();
    expect(() => parsePipeline('sched.step(sched.waiting(fcfs),chunked-prefill{enabled=false})', registry, { requirePlan: true })).not.toThrow();
  });

  it('PassManager applies it to the constructor and to setPipeline; a rejected setPipeline changes nothing', () => {
    expect(() => new PassManager({ pipeline: 'sched.step(fcfs)', registry, requirePlan: true })).toThrow(/cannot produce a plan/);
    expect(() => new PassManager({ pipeline: 'sched.step(fcfs)', registry })).not.toThrow();
    const pm = new PassManager({ pipeline: 'vllm-default', registry, requirePlan: true });
    const before = pm.canonical;
    expect(() => pm.setPipeline('sched.step(fcfs,priority)')).toThrow(expect.objectContaining({ code: 'KVMGR_BAD_PIPELINE' }));
    expect(pm.canonical).toBe(before);
    expect(pm.passes.map((p) => p.argument)).toEqual(['fcfs', 'memory-aware-preemption', 'chunked-prefill']);
  });
});
