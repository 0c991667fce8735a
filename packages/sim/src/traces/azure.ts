/**
 * Azure LLM inference trace loader (CSV: `TIMESTAMP,ContextTokens,GeneratedTokens`). Rows are
 * read and validated by core's `parseAzureRows`; this file maps them to simulator requests.
 *
 * @see https://github.com/Azure/AzurePublicDataset (AzureLLMInferenceTrace_*.csv, CC-BY-4.0; Splitwise, ISCA 2024)
 */
import { parseAzureRows } from '@kvmgr/core';
import type { SimRequest, Trace, TraceLoadOptions } from './types.js';
import { type TraceSource, readSource } from './read-source.js';
import { RowErrors } from './trace-error.js';

/**
 * Loads an Azure LLM trace. Request ids are `<name>#<line>`; arrivals are µs relative to the
 * earliest row (timestamps exact to the µs).
 *
 * @param source - file path, or `{ text, name }`.
 * @param options - `lenient` (skip and count bad rows; a bad header is counted and leaves the
 *   trace empty), `limit`, `maxTokens`.
 * @returns the requests sorted by arrival (stable).
 * @throws KvmgrError `KVMGR_BAD_TRACE` naming file, line and reason (bad header, column count,
 *   bad timestamp, non-positive ContextTokens, negative GeneratedTokens) unless lenient;
 *   `KVMGR_NOT_FOUND` for an unreadable file; `KVMGR_INVALID_ARGUMENT` when `limit` is not a
 *   non-negative integer.
 */
export function loadAzureTrace(source: TraceSource, options: TraceLoadOptions = {}): Trace {
  const { text, name, file } = readSource(source);
  // RowErrors, not core's own handling, so that bad rows read like the other loaders' ones.
  const errors = new RowErrors(file, options.lenient ?? false);
  const { rows } = parseAzureRows(text, file, {
    ...(options.limit === undefined ? {} : { limit: options.limit }),
    onBadRow: (line, reason) => errors.bad(line, reason),
  });
  const t0 = rows.reduce((m, r) => Math.min(m, r.timestampUs), Number.POSITIVE_INFINITY);
  const requests: SimRequest[] = rows.map((r) => ({
    requestId: `${name}#${r.line}`,
    arrivalUs: r.timestampUs - t0,
    promptTokens: r.contextTokens,
    maxTokens: Math.max(options.maxTokens ?? 4096, r.generatedTokens),
    outputTokens: Math.max(1, r.generatedTokens),
  }));
  requests.sort((a, b) => a.arrivalUs - b.arrivalUs);
  return { name, requests, skippedRows: errors.skipped, skippedReasons: errors.reasons };
}
