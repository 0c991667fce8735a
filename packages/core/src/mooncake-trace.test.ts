import { existsSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type RowReaderFixture, caught, itHandlesBadRowsByOption, itRejectsEachBadRow } from '../test/trace-rows.js';
import { parseMooncakeRows } from './mooncake-trace.js';

const TRACE = new URL('../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl', import.meta.url).pathname;
/** The public trace lives in ../shared beside the repository; a clone elsewhere skips the test and says why. */
const HAVE_TRACE = existsSync(TRACE);
const SKIPPED = HAVE_TRACE ? '' : ` (skipped: ${TRACE} not found; it is in the shared data beside the repository)`;

const good = '{"timestamp": 5, "input_length": 600, "output_length": 3, "hash_ids": [7, 8]}';
const fixture: RowReaderFixture = {
  read: parseMooncakeRows,
  good,
  bad: ['{"timestamp": -1}', 'timestamp must be a number of ms >= 0, got -1'],
  junk: ['x', 'not valid JSON'],
};

describe('parseMooncakeRows', () => {
  it('reads rows in text order, skipping blank lines, with LF or CRLF endings', () => {
    const text = `${good}\r\n\r\n  {"timestamp": 1.5, "input_length": 512, "output_length": 0, "hash_ids": [4294967295], "extra": 1}  \r\n\n`;
    const want = [
      { line: 1, timestampMs: 5, inputLength: 600, outputLength: 3, hashIds: [7, 8] },
      { line: 3, timestampMs: 1.5, inputLength: 512, outputLength: 0, hashIds: [4294967295] },
    ];
    expect(parseMooncakeRows(text, 't').rows).toEqual(want);
    expect(parseMooncakeRows(text.replaceAll('\r\n', '\n'), 't')).toEqual({ rows: want, skippedRows: 0, skippedReasons: [] });
    expect(parseMooncakeRows('', 't').rows).toEqual([]);
  });

  it.skipIf(!HAVE_TRACE)(`reads the real conversation trace: 12,031 valid rows${SKIPPED}`, () => {
    const { rows, skippedRows } = parseMooncakeRows(readFileSync(TRACE, 'utf8'), TRACE);
    expect(rows).toHaveLength(12031);
    expect(skippedRows).toBe(0);
    expect(rows[0]).toMatchObject({ line: 1, timestampMs: 0, inputLength: 6758, outputLength: 500 });
    expect(rows[0]?.hashIds).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(Math.round(rows.reduce((a, r) => a + r.inputLength, 0) / rows.length)).toBe(12035);
  });

  const cases: Array<[string, string, string]> = [
    ['not JSON', '{"timestamp": 1,', 'not valid JSON'],
    ['not an object', '[1, 2]', 'expected a JSON object, got [1,2]'],
    ['null', 'null', 'expected a JSON object, got null'],
    ['missing timestamp', '{"input_length": 1, "output_length": 1, "hash_ids": [1]}', 'timestamp must be a number of ms >= 0, got undefined'],
    ['string timestamp', '{"timestamp": "5", "input_length": 1, "output_length": 1, "hash_ids": [1]}', 'timestamp must be a number of ms >= 0, got "5"'],
    ['negative timestamp', '{"timestamp": -1, "input_length": 1, "output_length": 1, "hash_ids": [1]}', 'timestamp must be a number of ms >= 0, got -1'],
    ['missing input_length', '{"timestamp": 1, "output_length": 1, "hash_ids": [1]}', 'input_length must be a positive integer, got undefined'],
    ['zero input_length', '{"timestamp": 1, "input_length": 0, "output_length": 1, "hash_ids": []}', 'input_length must be a positive integer, got 0'],
    ['fractional input_length', '{"timestamp": 1, "input_length": 2.5, "output_length": 1, "hash_ids": [1]}', 'input_length must be a positive integer, got 2.5'],
    ['string input_length', '{"timestamp": 1, "input_length": "many", "output_length": 1, "hash_ids": [1]}', 'input_length must be a positive integer, got "many"'],
    ['negative output_length', '{"timestamp": 1, "input_length": 1, "output_length": -3, "hash_ids": [1]}', 'output_length must be a non-negative integer, got -3'],
    ['hash_ids not an array', '{"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": 7}', 'hash_ids must be an array of integers in [0, 2^32), got 7'],
    ['negative hash id', '{"timestamp": 1, "input_length": 600, "output_length": 1, "hash_ids": [1, -1]}', 'hash_ids[1] must be an integer in [0, 2^32), got -1'],
    ['hash id ≥ 2^32', '{"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": [4294967296]}', 'hash_ids[0] must be an integer in [0, 2^32), got 4294967296'],
    ['string hash id', '{"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": ["a"]}', 'hash_ids[0] must be an integer in [0, 2^32), got "a"'],
    ['fractional hash id', '{"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": [0.5]}', 'hash_ids[0] must be an integer in [0, 2^32), got 0.5'],
    ['wrong block count', '{"timestamp": 6, "input_length": 600, "output_length": 3, "hash_ids": [7]}', 'hash_ids must be 2 integers in [0, 2^32) (ceil(input_length / 512)), got 1 values'],
  ];
  itRejectsEachBadRow(fixture, 'x.jsonl', cases);

  it('keeps the SyntaxError as cause of a row that is not JSON', () => {
    expect(caught(() => parseMooncakeRows('nope', 'y')).cause).toBeInstanceOf(SyntaxError);
  });

  itHandlesBadRowsByOption(fixture);

  it('requireLengths false: block-only rows, lengths still checked when present', () => {
    const r = parseMooncakeRows('{"timestamp": 0, "hash_ids": [1, 2]}\n{"timestamp": 2, "input_length": 10, "hash_ids": [3]}', 'b', { requireLengths: false });
    expect(r.rows).toEqual([
      { line: 1, timestampMs: 0, hashIds: [1, 2] },
      { line: 2, timestampMs: 2, inputLength: 10, hashIds: [3] },
    ]);
    expect(caught(() => parseMooncakeRows('{"timestamp": 0, "output_length": -1, "hash_ids": []}', 'b', { requireLengths: false })).message).toBe(
      'b:1: output_length must be a non-negative integer, got -1',
    );
    expect(caught(() => parseMooncakeRows('{"timestamp": 0, "hash_ids": [-1]}', 'b', { requireLengths: false })).message).toBe(
      'b:1: hash_ids[0] must be an integer in [0, 2^32), got -1',
    );
  });

  it('checkBlockCount false accepts any number of hash ids', () => {
    const row = '{"timestamp": 6, "input_length": 2100, "output_length": 3, "hash_ids": [0, 1, 2, 3, 4, 5]}';
    expect(parseMooncakeRows(row, 'c', { checkBlockCount: false }).rows[0]?.hashIds).toHaveLength(6);
    expect(caught(() => parseMooncakeRows(row, 'c')).message).toMatch(/^c:1: hash_ids must be 5 integers/);
  });

  it('round-trips random valid rows', () => {
    const rowArb = fc.record({
      timestamp: fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e9, noNaN: true })),
      output_length: fc.nat(),
      hash_ids: fc.array(fc.nat({ max: 0xffffffff }), { minLength: 1, maxLength: 6 }),
    });
    fc.assert(
      fc.property(fc.array(rowArb, { maxLength: 8 }), fc.nat({ max: 511 }), (rs, cut) => {
        const rows = rs.map((r) => ({ ...r, input_length: r.hash_ids.length * 512 - cut }));
        const got = parseMooncakeRows(rows.map((r) => JSON.stringify(r)).join('\r\n'), 'p');
        expect(got.rows).toEqual(
          rows.map((r, i) => ({ line: i + 1, timestampMs: r.timestamp, inputLength: r.input_length, outputLength: r.output_length, hashIds: r.hash_ids })),
        );
      }),
    );
  });
});
