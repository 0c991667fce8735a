/**
 * Issue #19 fuzz suite for the CLI's boundary parsers: flag values and YAML config files either
 * give a valid value or throw a KvmgrError (`KVMGR_INVALID_ARGUMENT` for flags,
 * `KVMGR_BAD_CONFIG` for config files), within a time bound. Seeded; `KVMGR_FUZZ_RUNS` raises
 * the case count.
 */
import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from './config.js';
import { parseDurationMs, parseFraction, parseNonNegativeInt, parseNumberList, parsePositiveInt, parsePositiveIntList, parsePositiveNumber } from './parse.js';

const RUNS = Number(process.env.KVMGR_FUZZ_RUNS ?? 3000);

/**
 * CPU time of this process, ms: the bound below is on a case's own work, which a loaded machine's
 * scheduling does not stretch (on wall time, a process descheduled for a second would fail it).
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function mutate(seeds: readonly string[], pieces: readonly string[]): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.nat(4), fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 4 }))), { maxLength: 4 }))
    .map(([s, edits]) => {
      let t = s;
      for (const [at, del, ins] of edits) {
        const i = at % (t.length + 1);
        t = t.slice(0, i) + ins + t.slice(i + del);
      }
      return t;
    });
}

const FLAG_PIECES = ['0', '1', '9', '.', '-', '+', 'e', 'ms', 's', 'm', 'us', 'µs', '%', ',', ' ', '1'.repeat(40), '0'.repeat(400), 'Infinity', 'NaN', '0x10'];

describe('CLI parsers fuzz (#19)', () => {
  it(`flag values: ${RUNS} mutated values per parser give a finite valid value or KVMGR_INVALID_ARGUMENT`, () => {
    const parsers: [string, (flag: string, v: string) => number | number[], (n: number) => boolean][] = [
      ['duration', parseDurationMs, (n) => Number.isFinite(n) && n > 0],
      ['positive number', parsePositiveNumber, (n) => Number.isFinite(n) && n > 0],
      ['positive int', parsePositiveInt, (n) => Number.isSafeInteger(n) && n > 0],
      ['non-negative int', parseNonNegativeInt, (n) => Number.isSafeInteger(n) && n >= 0],
      ['number list', parseNumberList, (n) => Number.isFinite(n) && n > 0],
      ['positive int list', parsePositiveIntList, (n) => Number.isSafeInteger(n) && n > 0],
      ['fraction', parseFraction, (n) => Number.isFinite(n) && n > 0 && n <= 1],
    ];
    const values = fc.oneof(mutate(['500ms', '2s', '1.5m', '150us', '8', '0.9', '90%', '1,2,3', '0.5,1'], FLAG_PIECES), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(values, (v) => {
        for (const [what, parse, ok] of parsers) {
          try {
            const r = parse('--flag', v);
            for (const n of Array.isArray(r) ? r : [r]) expect(ok(n), `${what} ${JSON.stringify(v)} -> ${n}`).toBe(true);
          } catch (e) {
            if (!isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')) throw e;
          }
        }
      }),
      { numRuns: RUNS, seed: 19 },
    );
  });

  it(`config files: ${RUNS} mutated YAML documents validate or throw KVMGR_BAD_CONFIG, quickly`, () => {
    const seeds = [
      'instances: 8\nrate-scale: 1.5\nslo-ttft: 2s\nrates: [1, 2]\n',
      'trace: t.jsonl\nmodel: llama-3.1-8b\ngpu: h100\ntp: 1\nlenient: true\nprefix-index: radix\nprofiles: [a, b]\n',
      '{ seed: 0, limit: 100, slo-tpot: 50ms, bootstrap: 1000 }',
      '',
    ];
    const pieces = ['\n', ': ', '- ', '[', ']', '{', '}', '&a ', '*a', '!custom ', '!!str ', '!!binary ', '<<: ', '__proto__', 'constructor', 'toString', '1e999', '-1', '0'.repeat(400), 'ms', '"', "'", '#', '%YAML 1.2\n---\n', '...'];
    fc.assert(
      fc.property(fc.oneof(mutate(seeds, pieces), fc.string({ maxLength: 30 })), (text) => {
        const t0 = cpuMs();
        try {
          const c = parseRunConfig(text, 'c.yaml');
          expect(typeof c === 'object' && c !== null && !Array.isArray(c)).toBe(true);
          for (const k of ['sloTtft', 'sloTpot'] as const) if (c[k] !== undefined) expect(Number.isFinite(parseDurationMs(k, c[k] as string))).toBe(true);
          if (c.instances !== undefined) expect(Number.isSafeInteger(c.instances) && c.instances > 0).toBe(true);
        } catch (e) {
          if (!isKvmgrError(e, 'KVMGR_BAD_CONFIG')) throw e;
        }
        expect(cpuMs() - t0).toBeLessThan(1000);
      }),
      { numRuns: RUNS, seed: 19 },
    );
  });
});
