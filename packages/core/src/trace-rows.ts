/**
 * What every trace row reader shares: the `lenient` / `limit` / `onBadRow` options, the result
 * shape, and the handling of a bad row (throw `KVMGR_BAD_TRACE`, or skip and count it).
 */
import { KvmgrError, invalidArgument } from './errors.js';

/** Reasons of skipped rows kept in {@link TraceRows.skippedReasons}. */
const MAX_SKIPPED_REASONS = 20;

/** Options every trace row reader takes. */
export interface TraceRowOptions {
  /** Skip and count bad rows instead of throwing on the first one. @default false */
  readonly lenient?: boolean;
  /**
   * Stop after this many valid rows (the first ones in the text); later lines are not read.
   * A non-negative integer or `Infinity`. @default Infinity
   */
  readonly limit?: number;
  /**
   * Called with the 1-based line and the reason of each bad row instead of the default
   * handling (throw, or skip when `lenient`). When it returns, the row is skipped and counted;
   * throw from it to stop with an error of your own.
   * @default undefined
   */
  readonly onBadRow?: (line: number, reason: string) => void;
}

/** What a trace row reader read. */
export interface TraceRows<R> {
  /** The valid rows in text order (not sorted by timestamp). */
  readonly rows: R[];
  /** Bad rows skipped (0 unless `lenient` or `onBadRow`). */
  readonly skippedRows: number;
  /** Reasons of the first 20 skipped rows, `line N: reason`. */
  readonly skippedReasons: readonly string[];
}

/** A reader's bookkeeping: its rows, the row limit and what it does with a bad row. */
export interface RowCollector<R> {
  /** The row limit (`Infinity` when none). */
  readonly limit: number;
  readonly rows: R[];
  /**
   * Handles a bad row: `onBadRow`, else throws `KVMGR_BAD_TRACE` (`source:line: reason`,
   * `details: { source, line, reason }`) unless `lenient`; a row that is not thrown on is counted.
   */
  bad(line: number, reason: string, cause?: unknown): void;
  /** The result so far. */
  result(): TraceRows<R>;
}

/**
 * Starts a reader's bookkeeping.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `limit` is not a non-negative integer or `Infinity`.
 */
export function collectRows<R>(source: string, options: TraceRowOptions): RowCollector<R> {
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  if (limit !== Number.POSITIVE_INFINITY && !(Number.isSafeInteger(limit) && limit >= 0)) {
    throw invalidArgument('limit', limit, 'a non-negative integer or Infinity');
  }
  const lenient = options.lenient ?? false;
  const rows: R[] = [];
  const skippedReasons: string[] = [];
  let skippedRows = 0;
  return {
    limit,
    rows,
    bad(line, reason, cause) {
      if (options.onBadRow !== undefined) options.onBadRow(line, reason);
      else if (!lenient) {
        throw new KvmgrError('KVMGR_BAD_TRACE', `${source}:${line}: ${reason}`, {
          details: { source, line, reason },
          ...(cause === undefined ? {} : { cause }),
        });
      }
      skippedRows++;
      if (skippedReasons.length < MAX_SKIPPED_REASONS) skippedReasons.push(`line ${line}: ${reason}`);
    },
    result: () => ({ rows, skippedRows, skippedReasons }),
  };
}
