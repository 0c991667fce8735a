/**
 * Azure LLM inference trace rows (CSV), read and validated in one place for every package that
 * replays them; each package keeps only its own mapping (relative arrivals, sorting, requests).
 */
import { type TraceRowOptions, type TraceRows, collectRows } from './trace-rows.js';

/** The header line of the format: exactly these three columns, in this order. */
const HEADER = 'TIMESTAMP,ContextTokens,GeneratedTokens';

/** `YYYY-MM-DD HH:MM:SS[.f…]`, up to 7 fractional digits (the format's 100 ns resolution). */
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$/;

const UNSIGNED = /^\d+$/;

/** One valid row of an Azure LLM inference trace. */
export interface AzureRow {
  /** 1-based line of the row in the text (the header is line 1). */
  readonly line: number;
  /**
   * `TIMESTAMP`: arrival, µs since the Unix epoch (UTC), a safe integer. Exact: the 7-digit
   * fraction (100 ns) is rounded to the nearest µs (halves up) in integer arithmetic.
   */
  readonly timestampUs: number;
  /** `ContextTokens`: prompt tokens (a positive integer). */
  readonly contextTokens: number;
  /** `GeneratedTokens`: output tokens (a non-negative integer). */
  readonly generatedTokens: number;
}

/**
 * Options of {@link parseAzureRows}: `lenient`, `limit`, `onBadRow` ({@link TraceRowOptions});
 * a bad header is a bad row at line 1.
 */
export type AzureRowOptions = TraceRowOptions;

/** What {@link parseAzureRows} read; a skipped bad header counts as a skipped row. */
export type AzureRows = TraceRows<AzureRow>;

/** µs since the epoch of a `TIMESTAMP` cell, or `undefined` when it is not a valid UTC date-time. */
function parseTimestampUs(cell: string): number | undefined {
  const m = TIMESTAMP.exec(cell);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC rolls over (Feb 30 → Mar 2, 25:00 → next day) and maps years 0–99 to 1900–1999:
  // a date that does not come back unchanged is not one.
  const d = new Date(ms);
  if (
    d.getUTCFullYear() !== year ||
    d.getUTCMonth() !== month - 1 ||
    d.getUTCDate() !== day ||
    d.getUTCHours() !== hour ||
    d.getUTCMinutes() !== minute ||
    d.getUTCSeconds() !== second
  ) {
    return undefined;
  }
  // Integers only: the fraction in 100 ns units, rounded to µs, so the result is exact.
  const ticks = m[7] === undefined ? 0 : Number(m[7].padEnd(7, '0'));
  const us = ms * 1000 + Math.floor((ticks + 5) / 10);
  return Number.isSafeInteger(us) ? us : undefined;
}

/** A cell that must be an unsigned decimal integer ≥ `min` and safe; otherwise `undefined`. */
function parseCount(cell: string, min: number): number | undefined {
  if (!UNSIGNED.test(cell)) return undefined;
  const n = Number(cell);
  return Number.isSafeInteger(n) && n >= min ? n : undefined;
}

/** Validates one data line; returns the reason it is bad, or the row. */
function checkRow(text: string, line: number): string | AzureRow {
  const cells = text.split(',');
  if (cells.length !== 3) return `expected 3 columns, got ${cells.length}`;
  const [ts, ctx, gen] = cells.map((c) => c.trim()) as [string, string, string];
  const timestampUs = parseTimestampUs(ts);
  if (timestampUs === undefined) return `TIMESTAMP must be a UTC date-time YYYY-MM-DD HH:MM:SS[.fffffff], got ${JSON.stringify(ts)}`;
  const contextTokens = parseCount(ctx, 1);
  if (contextTokens === undefined) return `ContextTokens must be a positive integer, got ${JSON.stringify(ctx)}`;
  const generatedTokens = parseCount(gen, 0);
  if (generatedTokens === undefined) return `GeneratedTokens must be a non-negative integer, got ${JSON.stringify(gen)}`;
  return { line, timestampUs, contextTokens, generatedTokens };
}

/**
 * Reads the rows of an Azure LLM inference trace and validates each once: CSV with the header
 * `TIMESTAMP,ContextTokens,GeneratedTokens` on line 1 (exactly these columns, in this order),
 * then one request a line, e.g. `2023-11-16 18:15:46.6805900,374,44`: the arrival as a
 * date-time with up to 7 fractional digits (read as UTC: the dataset names no zone), the prompt
 * tokens and the generated tokens. Blank
 * lines are skipped; lines may end in `\n` or `\r\n`; whitespace around a line or a cell is
 * ignored.
 *
 * A row is bad when it does not have 3 columns, its `TIMESTAMP` is not a real date-time
 * `YYYY-MM-DD HH:MM:SS` (or `T` between date and time) with an optional fraction of 1–7 digits,
 * `ContextTokens` is not a positive integer or `GeneratedTokens` not a non-negative integer
 * (plain decimal digits: no sign, exponent or fraction). A wrong or missing header is reported
 * as a bad row at line 1; when it is skipped (`lenient`, or `onBadRow` returns) no row is read,
 * since the columns cannot be trusted.
 *
 * @param text - the whole file, UTF-8 decoded.
 * @param source - file path or name, used in errors (`source:line: reason`).
 * @param options - `lenient` (@default false), `limit` (@default Infinity), `onBadRow`.
 * @returns the valid rows in text order (`line` 1-based, `timestampUs` µs since the epoch,
 *   token counts), and the count and first 20 reasons of skipped rows.
 * @throws KvmgrError `KVMGR_BAD_TRACE` on a bad header or the first bad row unless `lenient` or
 *   `onBadRow`: message `source:line: reason`, `details: { source, line, reason }` (line
 *   1-based). `KVMGR_INVALID_ARGUMENT` when `limit` is not a non-negative integer or `Infinity`.
 * @see https://github.com/Azure/AzurePublicDataset/blob/master/AzureLLMInferenceDataset2023.md
 *   (`data/AzureLLMInferenceTrace_{conv,code}.csv`, CC-BY-4.0; Patel et al., "Splitwise",
 *   ISCA 2024)
 */
export function parseAzureRows(text: string, source: string, options: AzureRowOptions = {}): AzureRows {
  const out = collectRows<AzureRow>(source, options);
  const lines = text.split('\n');
  const header = (lines[0] as string).trim();
  if (header !== HEADER) {
    out.bad(1, `expected header ${HEADER}, got ${JSON.stringify(header)}`);
    return out.result();
  }
  for (let i = 1; i < lines.length && out.rows.length < out.limit; i++) {
    const trimmed = (lines[i] as string).trim();
    if (trimmed === '') continue;
    const row = checkRow(trimmed, i + 1);
    if (typeof row === 'string') out.bad(i + 1, row);
    else out.rows.push(row);
  }
  return out.result();
}
