import { existsSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type RowReaderFixture, caught, itHandlesBadRowsByOption, itRejectsEachBadRow } from '../test/trace-rows.js';
import { parseAzureRows } from './azure-trace.js';

const TRACE = new URL('../../../../shared/traces/azure_llm_2023_conv.csv', import.meta.url).pathname;
/** The public trace lives in ../shared beside the repository; a clone elsewhere skips the test and says why. */
const HAVE_TRACE = existsSync(TRACE);
const SKIPPED = HAVE_TRACE ? '' : ` (skipped: ${TRACE} not found; it is in the shared data beside the repository)`;

const HEADER = 'TIMESTAMP,ContextTokens,GeneratedTokens';
const good = '2023-11-16 18:15:46.6805900,374,44';
/** 2023-11-16 18:15:46 UTC, µs since the epoch. */
const T46 = Date.UTC(2023, 10, 16, 18, 15, 46) * 1000;

describe('parseAzureRows', () => {
  it('reads rows in text order, skipping blank lines, with LF or CRLF endings', () => {
    const text = `${HEADER}\r\n${good}\r\n\r\n  2023-11-16 18:15:50.9951690 , 396 , 0  \r\n\n`;
    const want = [
      { line: 2, timestampUs: T46 + 680_590, contextTokens: 374, generatedTokens: 44 },
      { line: 4, timestampUs: T46 + 4_995_169, contextTokens: 396, generatedTokens: 0 },
    ];
    expect(parseAzureRows(text, 't').rows).toEqual(want);
    expect(parseAzureRows(text.replaceAll('\r\n', '\n'), 't')).toEqual({ rows: want, skippedRows: 0, skippedReasons: [] });
    expect(parseAzureRows(HEADER, 't').rows).toEqual([]);
    expect(parseAzureRows(`\uFEFF${HEADER}\n${good}`, 't').rows).toHaveLength(1);
  });

  it('reads fractional timestamps exactly to the µs (7th digit rounded, halves up), with T or space', () => {
    const us = (ts: string) => parseAzureRows(`${HEADER}\n${ts},1,1`, 't').rows[0]?.timestampUs;
    expect(us('2023-11-16 18:15:46')).toBe(T46);
    expect(us('2023-11-16T18:15:46')).toBe(T46);
    expect(us('2023-11-16 18:15:46.68')).toBe(T46 + 680_000);
    expect(us('2023-11-16 18:15:46.000001')).toBe(T46 + 1);
    expect(us('2023-11-16 18:15:46.0000004')).toBe(T46);
    expect(us('2023-11-16 18:15:46.0000005')).toBe(T46 + 1);
    expect(us('2023-11-16 18:15:46.1234565')).toBe(T46 + 123_457);
    expect(us('2023-11-16 18:15:46.9999995')).toBe(T46 + 1_000_000);
    expect(us('2023-12-31 23:59:59.9999999')).toBe(Date.UTC(2024, 0, 1) * 1000);
    expect(us('1970-01-01 00:00:00.0000010')).toBe(1);
    expect(us('2024-02-29 12:00:00')).toBe(Date.UTC(2024, 1, 29, 12) * 1000);
  });

  it.skipIf(!HAVE_TRACE)(`reads the real conversation trace: 19,366 valid rows${SKIPPED}`, () => {
    const { rows, skippedRows } = parseAzureRows(readFileSync(TRACE, 'utf8'), TRACE);
    expect(rows).toHaveLength(19366);
    expect(skippedRows).toBe(0);
    expect(rows[0]).toEqual({ line: 2, timestampUs: T46 + 680_590, contextTokens: 374, generatedTokens: 44 });
    expect((rows[1]?.timestampUs as number) - (rows[0]?.timestampUs as number)).toBe(4_314_579); // 18:15:50.9951690 − 18:15:46.6805900
    expect(rows.at(-1)).toEqual({ line: 19367, timestampUs: Date.UTC(2023, 10, 16, 19, 14, 8) * 1000 + 402_527, contextTokens: 197, generatedTokens: 183 });
    expect(rows.reduce((a, r) => a + r.contextTokens, 0)).toBe(22_361_870);
    expect(rows.every((r, i) => i === 0 || r.timestampUs >= (rows[i - 1] as { timestampUs: number }).timestampUs)).toBe(true);
  });

  it('reports a wrong or missing header at line 1', () => {
    const reason = (h: string) => `expected header ${HEADER}, got ${JSON.stringify(h)}`;
    for (const h of ['', 'a,b', 'ContextTokens,TIMESTAMP,GeneratedTokens', `${HEADER},Extra`, 'timestamp,contexttokens,generatedtokens', good]) {
      const e = caught(() => parseAzureRows(`${h}\n${good}`, 'h.csv'));
      expect(e.code).toBe('KVMGR_BAD_TRACE');
      expect(e.message).toBe(`h.csv:1: ${reason(h)}`);
      expect(e.details).toEqual({ source: 'h.csv', line: 1, reason: reason(h) });
    }
    expect(caught(() => parseAzureRows('', 'h')).message).toBe('h:1: expected header TIMESTAMP,ContextTokens,GeneratedTokens, got ""');
  });

  const timestampReason = (ts: string) => `TIMESTAMP must be a UTC date-time YYYY-MM-DD HH:MM:SS[.fffffff], got ${JSON.stringify(ts)}`;
  const badTimestamps: Record<string, string> = {
    'not a date': 'yesterday',
    'date only': '2023-11-16',
    '8 fractional digits': '2023-11-16 18:15:46.12345678',
    'empty fraction': '2023-11-16 18:15:46.',
    'a zone': '2023-11-16 18:15:46Z',
    'Feb 30': '2023-02-30 00:00:00',
    'month 13': '2023-13-01 00:00:00',
    'hour 24': '2023-11-16 24:00:00',
    'second 60': '2023-11-16 23:59:60',
    'year 0023': '0023-01-01 00:00:00',
    'µs past 2^53': '9999-01-01 00:00:00',
  };
  const badContext = { 'not a number': 'x', zero: '0', negative: '-3', fractional: '1.5', exponent: '1e3', empty: '' };
  const badGenerated = { empty: '', negative: '-1', signed: '+1', hex: '0x10', 'past 2^53': '9007199254740993' };
  const cases: Array<[string, string, string]> = [
    ['2 columns', '2023-11-16 18:15:46,1', 'expected 3 columns, got 2'],
    ['4 columns', '2023-11-16 18:15:46,1,2,3', 'expected 3 columns, got 4'],
    ...Object.entries(badTimestamps).map(([name, ts]): [string, string, string] => [name, `${ts},3,4`, timestampReason(ts)]),
    ...Object.entries(badContext).map(([name, c]): [string, string, string] => [
      `ContextTokens ${name}`,
      `2023-11-16 18:15:47,${c},2`,
      `ContextTokens must be a positive integer, got ${JSON.stringify(c)}`,
    ]),
    ...Object.entries(badGenerated).map(([name, g]): [string, string, string] => [
      `GeneratedTokens ${name}`,
      `2023-11-16 18:15:47,3,${g}`,
      `GeneratedTokens must be a non-negative integer, got ${JSON.stringify(g)}`,
    ]),
  ];
  // the contract every row reader keeps (test/trace-rows.ts), with this format's lines
  const fixture: RowReaderFixture = {
    read: parseAzureRows,
    header: HEADER,
    good,
    bad: ['2023-11-16 18:15:47,0,2', 'ContextTokens must be a positive integer, got "0"'],
    junk: ['x', 'expected 3 columns, got 1'],
  };
  itRejectsEachBadRow(fixture, 'x.csv', cases);
  itHandlesBadRowsByOption(fixture);

  it('lenient with a bad header: counts it and reads no row', () => {
    expect(parseAzureRows(`a,b,c\n${good}`, 'z', { lenient: true })).toEqual({
      rows: [],
      skippedRows: 1,
      skippedReasons: ['line 1: expected header TIMESTAMP,ContextTokens,GeneratedTokens, got "a,b,c"'],
    });
  });

  it('a bad header goes to onBadRow as line 1, and limit does not skip its check', () => {
    const seen: Array<[number, string]> = [];
    expect(parseAzureRows(`nope\n${good}`, 'z', { onBadRow: (line, reason) => seen.push([line, reason]) }).rows).toEqual([]);
    expect(seen).toEqual([[1, 'expected header TIMESTAMP,ContextTokens,GeneratedTokens, got "nope"']]);
    expect(caught(() => parseAzureRows('bad header', 'z', { limit: 0 })).code).toBe('KVMGR_BAD_TRACE');
  });

  it('round-trips random valid rows', () => {
    const pad = (n: number, w: number) => String(n).padStart(w, '0');
    const rowArb = fc.record({
      ms: fc.integer({ min: 0, max: Date.UTC(2200, 0, 1) - 1000 }),
      digits: fc.integer({ min: 0, max: 7 }),
      ticks: fc.integer({ min: 0, max: 9_999_999 }),
      context: fc.integer({ min: 1, max: 1_000_000 }),
      generated: fc.nat({ max: 1_000_000 }),
    });
    fc.assert(
      fc.property(fc.array(rowArb, { maxLength: 8 }), (rs) => {
        const lines = rs.map((r) => {
          const d = new Date(r.ms - (r.ms % 1000));
          const date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)} ${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}`;
          const frac = r.digits === 0 ? '' : `.${pad(r.ticks, 7).slice(0, r.digits)}`;
          return `${date}${frac},${r.context},${r.generated}`;
        });
        const got = parseAzureRows([HEADER, ...lines].join('\r\n'), 'p');
        expect(got.rows).toEqual(
          rs.map((r, i) => {
            const ticks = r.digits === 0 ? 0 : Number(pad(r.ticks, 7).slice(0, r.digits).padEnd(7, '0'));
            const timestampUs = (r.ms - (r.ms % 1000)) * 1000 + Math.round(ticks / 10);
            return { line: i + 2, timestampUs, contextTokens: r.context, generatedTokens: r.generated };
          }),
        );
      }),
    );
  });
});
