/**
 * Issue #19 fuzz suite for the trace row readers: mutated Mooncake JSONL and Azure CSV text
 * parses to rows that satisfy the documented row contract, or throws `KVMGR_BAD_TRACE`; in
 * lenient mode it never throws and every skipped row is counted. Seeded; `KVMGR_FUZZ_RUNS`
 * raises the case count.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAzureRows } from './azure-trace.js';
import { isKvmgrError } from './errors.js';
import { parseMooncakeRows } from './mooncake-trace.js';

const RUNS = Number(process.env.KVMGR_FUZZ_RUNS ?? 2000);

/**
 * CPU time of this process, ms: the bound below is on a case's own work, which a loaded machine's
 * scheduling does not stretch (on wall time, a process descheduled for a second would fail it).
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const MOONCAKE = [
  '{"timestamp": 0, "input_length": 1024, "output_length": 500, "hash_ids": [0, 1]}',
  '{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59]}',
  '{"timestamp": 5, "input_length": 10, "output_length": 1, "hash_ids": [7]}',
].join('\n');
const AZURE = ['TIMESTAMP,ContextTokens,GeneratedTokens', '2023-11-16 18:15:46.6805900,374,44', '2023-11-16 18:15:50.9951690,396,109', '2023-11-16 18:16:04.1090000,1,1'].join('\n');
const PIECES = ['{', '}', '[', ']', ',', '"', ':', '\n', '\r\n', '-1', '1e999', 'NaN', 'null', '1.5', '4294967296', '__proto__', '"constructor"', ' ', '9007199254740993', '\u2028', '\u0000'];

function mutate(seed: string): fc.Arbitrary<string> {
  return fc.array(fc.tuple(fc.nat(), fc.nat(6), fc.oneof(fc.constantFrom(...PIECES), fc.string({ maxLength: 5 }))), { maxLength: 5 }).map((edits) => {
    let t = seed;
    for (const [at, del, ins] of edits) {
      const i = at % (t.length + 1);
      t = t.slice(0, i) + ins + t.slice(i + del);
    }
    return t;
  });
}

const u32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

describe('trace row readers fuzz (#19)', () => {
  it(`Mooncake: ${RUNS} mutated traces give well-formed rows or KVMGR_BAD_TRACE; lenient mode never throws`, () => {
    fc.assert(
      fc.property(mutate(MOONCAKE), (text) => {
        const t0 = cpuMs();
        try {
          const { rows } = parseMooncakeRows(text, 'm.jsonl');
          for (const r of rows) {
            expect(Number.isFinite(r.timestampMs) && r.timestampMs >= 0).toBe(true);
            expect(Number.isSafeInteger(r.inputLength) && r.inputLength > 0).toBe(true);
            expect(r.hashIds.every(u32)).toBe(true);
          }
        } catch (e) {
          if (!isKvmgrError(e, 'KVMGR_BAD_TRACE')) throw e;
        }
        const lenient = parseMooncakeRows(text, 'm.jsonl', { lenient: true });
        expect(lenient.rows.length + lenient.skippedRows).toBeLessThanOrEqual(text.split('\n').length);
        expect(cpuMs() - t0).toBeLessThan(1000);
      }),
      { numRuns: RUNS, seed: 19 },
    );
  });

  it(`Azure: ${RUNS} mutated traces give well-formed rows or KVMGR_BAD_TRACE; lenient mode never throws`, () => {
    fc.assert(
      fc.property(mutate(AZURE), (text) => {
        const t0 = cpuMs();
        try {
          const { rows } = parseAzureRows(text, 'a.csv');
          for (const r of rows) {
            expect(Number.isFinite(r.timestampUs)).toBe(true);
            expect(Number.isSafeInteger(r.contextTokens) && r.contextTokens >= 0).toBe(true);
            expect(Number.isSafeInteger(r.generatedTokens) && r.generatedTokens >= 0).toBe(true);
          }
        } catch (e) {
          if (!isKvmgrError(e, 'KVMGR_BAD_TRACE')) throw e;
        }
        const lenient = parseAzureRows(text, 'a.csv', { lenient: true });
        expect(lenient.rows.length + lenient.skippedRows).toBeLessThanOrEqual(text.split('\n').length);
        expect(cpuMs() - t0).toBeLessThan(1000);
      }),
      { numRuns: RUNS, seed: 19 },
    );
  });
});
