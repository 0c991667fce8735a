/**
 * What every trace row reader (`parseMooncakeRows`, `parseAzureRows`) promises about bad rows,
 * written once: each reader's test runs these with its own rows and reasons.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { type KvmgrError, isKvmgrError } from '../src/errors.js';

/** The options and result every row reader shares. */
export type ReadRows = (
  text: string,
  source: string,
  options?: { readonly lenient?: boolean; readonly limit?: number; readonly onBadRow?: (line: number, reason: string) => void },
) => { readonly rows: readonly { readonly line: number }[]; readonly skippedRows: number; readonly skippedReasons: readonly string[] };

/** The `KvmgrError` that `fn` throws (anything else is rethrown; no throw fails). */
export function caught(fn: () => unknown): KvmgrError {
  try {
    fn();
  } catch (e) {
    if (isKvmgrError(e)) return e;
    throw e;
  }
  throw new Error('expected a throw');
}

/** How a reader's texts are made: a valid line, a header (when the format has one) and two bad lines. */
export interface RowReaderFixture {
  readonly read: ReadRows;
  /** Line 1 of every text (CSV), or undefined (JSONL). */
  readonly header?: string;
  /** A valid data line. */
  readonly good: string;
  /** A bad data line and the reason the reader gives. */
  readonly bad: readonly [row: string, reason: string];
  /** Another bad data line (one of another kind) and its reason. */
  readonly junk: readonly [row: string, reason: string];
}

function textOf(f: RowReaderFixture, lines: readonly string[]): string {
  return (f.header === undefined ? lines : [f.header, ...lines]).join('\n');
}

/**
 * One test per `[name, row, reason]` case: the row, after a valid line and a blank one, throws
 * `KVMGR_BAD_TRACE` with message `x:<line>: reason` and `details: { source, line, reason }`.
 */
export function itRejectsEachBadRow(f: RowReaderFixture, source: string, cases: ReadonlyArray<readonly [string, string, string]>): void {
  const line = f.header === undefined ? 3 : 4;
  it.each(cases)('%s: KVMGR_BAD_TRACE naming source and 1-based line', (_name, row, reason) => {
    const e = caught(() => f.read(textOf(f, [f.good, '', row, f.good]), source));
    expect(e.code).toBe('KVMGR_BAD_TRACE');
    expect(e.message).toBe(`${source}:${line}: ${reason}`);
    expect(e.details).toEqual({ source, line, reason });
  });
}

/** The `lenient`, `onBadRow` and `limit` options, the same way for every reader. */
export function itHandlesBadRowsByOption(f: RowReaderFixture): void {
  const at = f.header === undefined ? 1 : 2; // line of the first data line
  const [bad, badReason] = f.bad;
  const [junk, junkReason] = f.junk;

  it('lenient: skips and counts bad rows, keeping the first 20 reasons', () => {
    const r = f.read(textOf(f, [f.good, bad, f.good, ...Array.from({ length: 25 }, () => junk)]), 'z', { lenient: true });
    expect(r.rows.map((x) => x.line)).toEqual([at, at + 2]);
    expect(r.skippedRows).toBe(26);
    expect(r.skippedReasons).toHaveLength(20);
    expect(r.skippedReasons[0]).toBe(`line ${at + 1}: ${badReason}`);
    expect(r.skippedReasons[1]).toBe(`line ${at + 3}: ${junkReason}`);
  });

  it('onBadRow replaces the default handling; its throw stops the read', () => {
    const seen: Array<[number, string]> = [];
    const r = f.read(textOf(f, [f.good, junk, f.good]), 'z', { onBadRow: (line, reason) => seen.push([line, reason]) });
    expect(seen).toEqual([[at + 1, junkReason]]);
    expect(r.rows).toHaveLength(2);
    expect(r.skippedRows).toBe(1);
    const mine = new Error('mine');
    const stop = {
      onBadRow: () => {
        throw mine;
      },
    };
    expect(() => f.read(textOf(f, [f.good, junk]), 'z', stop)).toThrow(mine);
  });

  it('limit: stops after that many valid rows and reads no further', () => {
    const text = textOf(f, [f.good, junk, f.good, f.good, bad]);
    expect(f.read(text, 'z', { limit: 2, lenient: true })).toMatchObject({ skippedRows: 1 });
    expect(f.read(text, 'z', { limit: 2, lenient: true }).rows.map((r) => r.line)).toEqual([at, at + 2]);
    expect(f.read(textOf(f, [f.good, junk]), 'z', { limit: 1 }).rows).toHaveLength(1);
    expect(f.read(text, 'z', { limit: 0 }).rows).toEqual([]);
    expect(f.read(text, 'z', { limit: Number.POSITIVE_INFINITY, lenient: true }).rows).toHaveLength(3);
    for (const limit of [-1, 1.5, Number.NaN]) {
      expect(caught(() => f.read(text, 'z', { limit })).code).toBe('KVMGR_INVALID_ARGUMENT');
    }
  });

  it('throws nothing but KVMGR_BAD_TRACE, at the right line, on random lines', () => {
    fc.assert(
      fc.property(fc.string().filter((s) => !s.includes('\n')), (line) => {
        try {
          f.read(textOf(f, [line]), 'p');
        } catch (e) {
          expect(isKvmgrError(e, 'KVMGR_BAD_TRACE')).toBe(true);
          expect((e as KvmgrError).details.line).toBe(at);
        }
      }),
    );
  });
}
