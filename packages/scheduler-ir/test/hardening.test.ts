/**
 * Issue #19: malformed pipeline text parses to a valid pipeline or throws a KvmgrError (never a
 * TypeError), including option names that are properties of Object.prototype.
 */
import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createDefaultRegistry, parsePipeline, printPipeline } from '../src/index.js';

const RUNS = Number(process.env.KVMGR_FUZZ_RUNS ?? 3000);

/**
 * CPU time of this process, ms: the bound below is on a case's own work, which a loaded machine's
 * scheduling does not stretch (on wall time, a process descheduled for a second would fail it).
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
const registry = createDefaultRegistry();

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!isKvmgrError(e)) throw e;
    return e.code;
  }
}

describe('pipeline text hardening (#19)', () => {
  it('D1: option names inherited from Object.prototype are unknown options, not a TypeError', () => {
    for (const key of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      expect(codeOf(() => parsePipeline(`sched.step(admission{${key}=1})`, registry)), key).toBe('KVMGR_BAD_PIPELINE');
      expect(codeOf(() => parsePipeline(`sched.step(admission{${key}})`, registry)), key).toBe('KVMGR_BAD_PIPELINE');
    }
    for (const name of ['constructor', '__proto__', 'toString']) {
      expect(codeOf(() => parsePipeline(`sched.step(${name})`, registry)), name).toBe('KVMGR_BAD_PIPELINE');
      expect(codeOf(() => parsePipeline(`sched.step(${name}(a))`, registry)), name).toBe('KVMGR_BAD_PIPELINE');
      expect(codeOf(() => parsePipeline(`${name}(a)`, registry)), name).toBe('KVMGR_BAD_PIPELINE');
      expect(codeOf(() => parsePipeline(name, registry)), name).toBe('KVMGR_BAD_PIPELINE');
    }
  });

  it(`fuzz: ${RUNS} mutated pipelines parse to a printable pipeline or throw KVMGR_BAD_PIPELINE, quickly`, () => {
    const seeds = [
      'sched.step(admission{safety=0.9},prefix-cache-aware,sched.running(priority{aging-ms=500}),chunked-prefill{budget=8192})',
      ...registry.presetNames(),
      ...registry.passNames().map((p) => `sched.step(${p})`),
    ];
    const pieces = ['(', ')', '{', '}', ',', '=', '"', ' ', 'sched.step', 'sched.running', 'sched.waiting', '__proto__', 'constructor', 'toString', '1e999', '-1', 'NaN', 'true', ...registry.passNames()];
    const mutated = fc
      .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.nat(4), fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 4 }))), { maxLength: 4 }))
      .map(([s, edits]) => {
        let t = s;
        for (const [at, del, ins] of edits) {
          const i = at % (t.length + 1);
          t = t.slice(0, i) + ins + t.slice(i + del);
        }
        return t;
      });
    fc.assert(
      fc.property(fc.oneof(mutated, fc.string({ maxLength: 40 })), (text) => {
        const t0 = cpuMs();
        try {
          const p = parsePipeline(text, registry);
          // a parsed pipeline prints to text that parses back to the same canonical form
          expect(printPipeline(parsePipeline(printPipeline(p), registry))).toBe(printPipeline(p));
        } catch (e) {
          if (!isKvmgrError(e, 'KVMGR_BAD_PIPELINE')) throw e;
        }
        expect(cpuMs() - t0).toBeLessThan(1000);
      }),
      { numRuns: RUNS, seed: 19 },
    );
  });
});
