/**
 * Mooncake trace rows (JSONL), read and validated in one place for every package that replays
 * them; each package keeps only its own mapping (sorting, sessions, block keys).
 */
import { describeValue } from './errors.js';
import { type TraceRowOptions, type TraceRows, collectRows } from './trace-rows.js';

/** Tokens per Mooncake `hash_ids` block. */
export const MOONCAKE_BLOCK_TOKENS = 512;

/** One valid row of a Mooncake trace. */
export interface MooncakeRow {
  /** 1-based line of the row in the text. */
  readonly line: number;
  /** `timestamp`: arrival, ms since the start of the trace (finite, ≥ 0). */
  readonly timestampMs: number;
  /** `input_length`: prompt tokens (a positive integer). */
  readonly inputLength: number;
  /** `output_length`: generated tokens (a non-negative integer). */
  readonly outputLength: number;
  /** `hash_ids`: ids of the prompt's 512-token blocks in prompt order, each a u32 (the parsed array, not a copy). */
  readonly hashIds: readonly number[];
}

/**
 * A row read with `requireLengths: false`: the lengths are there only when the row has them
 * (and then they are valid).
 */
export interface MooncakeBlockRow {
  /** 1-based line of the row in the text. */
  readonly line: number;
  /** `timestamp`: arrival, ms since the start of the trace (finite, ≥ 0). */
  readonly timestampMs: number;
  /** `input_length`, tokens, when the row has it. */
  readonly inputLength?: number;
  /** `output_length`, tokens, when the row has it. */
  readonly outputLength?: number;
  /** `hash_ids`: block ids in prompt order, each a u32 (the parsed array, not a copy). */
  readonly hashIds: readonly number[];
}

/** Options of {@link parseMooncakeRows}: `lenient`, `limit`, `onBadRow` ({@link TraceRowOptions}) and these. */
export interface MooncakeRowOptions extends TraceRowOptions {
  /**
   * Require `input_length` and `output_length`. When false, a row may lack them (block-only
   * traces: `timestamp` and `hash_ids`); a length that is present is still validated.
   * @default true
   */
  readonly requireLengths?: boolean;
  /**
   * Require `hash_ids.length === ceil(input_length / 512)` (the format's invariant) on rows
   * that have `input_length`. Turn off for block traces of another block size.
   * @default true
   */
  readonly checkBlockCount?: boolean;
}

/** What {@link parseMooncakeRows} read. */
export type MooncakeRows<R extends MooncakeBlockRow = MooncakeRow> = TraceRows<R>;

function isU32(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

function isIntAtLeast(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

/** Validates one parsed row; returns the reason it is bad, or the row. */
function checkRow(raw: unknown, line: number, requireLengths: boolean, checkBlockCount: boolean): string | MooncakeBlockRow {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return `expected a JSON object, got ${describeValue(raw)}`;
  const r = raw as Record<string, unknown>;
  const ts = r.timestamp;
  if (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0) return `timestamp must be a number of ms >= 0, got ${describeValue(ts)}`;
  const input = r.input_length;
  if ((requireLengths || input !== undefined) && !isIntAtLeast(input, 1)) {
    return `input_length must be a positive integer, got ${describeValue(input)}`;
  }
  const output = r.output_length;
  if ((requireLengths || output !== undefined) && !isIntAtLeast(output, 0)) {
    return `output_length must be a non-negative integer, got ${describeValue(output)}`;
  }
  const ids = r.hash_ids;
  if (!Array.isArray(ids)) return `hash_ids must be an array of integers in [0, 2^32), got ${describeValue(ids)}`;
  for (let i = 0; i < ids.length; i++) {
    if (!isU32(ids[i])) return `hash_ids[${i}] must be an integer in [0, 2^32), got ${describeValue(ids[i])}`;
  }
  if (checkBlockCount && typeof input === 'number') {
    const expected = Math.ceil(input / MOONCAKE_BLOCK_TOKENS);
    if (ids.length !== expected) {
      return `hash_ids must be ${expected} integers in [0, 2^32) (ceil(input_length / ${MOONCAKE_BLOCK_TOKENS})), got ${ids.length} values`;
    }
  }
  return {
    line,
    timestampMs: ts,
    ...(typeof input === 'number' ? { inputLength: input } : {}),
    ...(typeof output === 'number' ? { outputLength: output } : {}),
    hashIds: ids as number[],
  };
}

/**
 * Reads the rows of a Mooncake trace and validates each once: JSONL, one object a line,
 * `{"timestamp": ms, "input_length": tokens, "output_length": tokens, "hash_ids": [u32, …]}`
 * where `hash_ids` are remapped ids of the prompt's 512-token prefix blocks
 * (`hash_ids.length = ceil(input_length / 512)`). Blank lines are skipped; lines may end in
 * `\n` or `\r\n`; surrounding whitespace is ignored. Extra fields are ignored.
 *
 * A row is bad when it is not JSON, not an object, its `timestamp` is not a finite number ≥ 0,
 * `input_length` is not a positive integer, `output_length` not a non-negative integer (both
 * only checked when present if `requireLengths` is false), `hash_ids` is not an array of
 * integers in [0, 2^32), or (with `checkBlockCount`) its length is not `ceil(input_length / 512)`.
 *
 * @param text - the whole file, UTF-8 decoded.
 * @param source - file path or name, used in errors (`source:line: reason`).
 * @param options - `lenient` (@default false), `limit` (@default Infinity), `requireLengths`
 *   (@default true), `checkBlockCount` (@default true), `onBadRow`.
 * @returns the valid rows in text order (`line` 1-based, `timestampMs` ms, lengths in tokens,
 *   `hashIds` u32), and the count and first 20 reasons of skipped rows.
 * @throws KvmgrError `KVMGR_BAD_TRACE` on the first bad row unless `lenient` or `onBadRow`:
 *   message `source:line: reason`, `details: { source, line, reason }` (line 1-based), `cause`
 *   the `SyntaxError` when the row is not JSON. `KVMGR_INVALID_ARGUMENT` when `limit` is not a
 *   non-negative integer or `Infinity`.
 * @see https://github.com/kvcache-ai/Mooncake/blob/main/FAST25-release/traces/README.md
 */
export function parseMooncakeRows(
  text: string,
  source: string,
  options: MooncakeRowOptions & { readonly requireLengths: false },
): MooncakeRows<MooncakeBlockRow>;
export function parseMooncakeRows(
  text: string,
  source: string,
  options?: MooncakeRowOptions & { readonly requireLengths?: true },
): MooncakeRows<MooncakeRow>;
export function parseMooncakeRows(text: string, source: string, options?: MooncakeRowOptions): MooncakeRows<MooncakeBlockRow>;
export function parseMooncakeRows(text: string, source: string, options: MooncakeRowOptions = {}): MooncakeRows<MooncakeBlockRow> {
  const requireLengths = options.requireLengths ?? true;
  const checkBlockCount = options.checkBlockCount ?? true;
  const out = collectRows<MooncakeBlockRow>(source, options);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && out.rows.length < out.limit; i++) {
    const trimmed = (lines[i] as string).trim();
    if (trimmed === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(trimmed);
    } catch (cause) {
      out.bad(i + 1, 'not valid JSON', cause);
      continue;
    }
    const row = checkRow(raw, i + 1, requireLengths, checkBlockCount);
    if (typeof row === 'string') out.bad(i + 1, row);
    else out.rows.push(row);
  }
  return out.result();
}
