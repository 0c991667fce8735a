/**
 * Length-only dataset loader (`num_prefill_tokens,num_decode_tokens,...`: ShareGPT, arXiv
 * summarization, BWB from Vidur/Etalon) paired with a synthetic arrival process.
 *
 * @see https://github.com/microsoft/vidur (data/processed_traces)
 */
import { createRng } from '@kvmgr/core';
import { type ArrivalProcess, generateArrivals } from './arrivals.js';
import { type TraceSource, readSource } from './read-source.js';
import { RowErrors, splitLines } from './trace-error.js';
import type { SimRequest, Trace, TraceLoadOptions } from './types.js';

/** Options of {@link loadLengthCsv}. */
export interface LengthCsvOptions extends TraceLoadOptions {
  /** Arrival process. */
  readonly arrivals: ArrivalProcess;
  /** PRNG seed for arrivals and (when `shuffle`) order. @default 0 */
  readonly seed?: number;
  /** Shuffle rows before assigning arrivals. @default false */
  readonly shuffle?: boolean;
}

/**
 * Loads a length-only CSV and assigns arrivals.
 *
 * @param source - file path, or `{ text, name }`.
 * @param options - arrivals, seed, shuffle, lenient, limit.
 * @throws KvmgrError `KVMGR_BAD_TRACE` (missing `num_prefill_tokens`/`num_decode_tokens` columns,
 *   non-positive counts) naming file, line and reason unless lenient; `KVMGR_INVALID_ARGUMENT`
 *   for a bad arrival process; `KVMGR_NOT_FOUND` for an unreadable file.
 */
export function loadLengthCsv(source: TraceSource, options: LengthCsvOptions): Trace {
  const { text, name, file } = readSource(source);
  const errors = new RowErrors(file, false);
  const lenientErrors = new RowErrors(file, options.lenient ?? false);
  const lines = splitLines(text);
  const header = (lines[0] ?? '').trim().split(',');
  const pi = header.indexOf('num_prefill_tokens');
  const di = header.indexOf('num_decode_tokens');
  if (pi < 0 || di < 0) errors.bad(1, `expected columns num_prefill_tokens and num_decode_tokens, got ${JSON.stringify(lines[0] ?? '')}`);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const rows: { p: number; o: number; line: number }[] = [];
  for (let i = 1; i < lines.length && rows.length < limit; i++) {
    const line = (lines[i] as string).trim();
    if (line === '') continue;
    const cols = line.split(',');
    const p = Number(cols[pi]);
    const o = Number(cols[di]);
    if (!Number.isSafeInteger(p) || p < 1) {
      lenientErrors.bad(i + 1, `num_prefill_tokens must be a positive integer, got ${JSON.stringify(cols[pi])}`);
      continue;
    }
    if (!Number.isSafeInteger(o) || o < 1) {
      lenientErrors.bad(i + 1, `num_decode_tokens must be a positive integer, got ${JSON.stringify(cols[di])}`);
      continue;
    }
    rows.push({ p, o, line: i + 1 });
  }
  const rng = createRng(options.seed ?? 0);
  if (options.shuffle) rng.shuffle(rows);
  const times = generateArrivals(rows.length, options.arrivals, rng);
  const requests: SimRequest[] = rows.map((r, i) => ({
    requestId: `${name}#${r.line}`,
    arrivalUs: Math.round(times[i] as number),
    promptTokens: r.p,
    maxTokens: Math.max(options.maxTokens ?? 4096, r.o),
    outputTokens: r.o,
  }));
  return { name, requests, skippedRows: lenientErrors.skipped, skippedReasons: lenientErrors.reasons };
}
