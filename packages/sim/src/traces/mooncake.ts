/**
 * Mooncake trace loader (JSONL: `timestamp` ms, `input_length`, `output_length`, `hash_ids` of
 * 512-token prefix blocks). Rows are read and validated by core's `parseMooncakeRows`; this file
 * maps them to simulator requests.
 *
 * @see https://github.com/kvcache-ai/Mooncake (FAST25-release/traces)
 */
import { MOONCAKE_BLOCK_TOKENS, parseMooncakeRows } from '@kvmgr/core';
import type { SimRequest, Trace, TraceLoadOptions } from './types.js';
import { type TraceSource, readSource } from './read-source.js';
import { RowErrors } from './trace-error.js';

/** Tokens per Mooncake hash block (core's constant, re-exported). */
export { MOONCAKE_BLOCK_TOKENS };

/**
 * Loads a Mooncake JSONL trace. Request ids are `<name>#<line>`; arrivals are `timestamp × 1000` µs.
 *
 * @param source - file path, or `{ text, name }`.
 * @param options - `lenient` (skip and count bad rows), `limit`.
 * @returns the requests sorted by arrival (stable), with `hashIds` and `hashBlockTokens` 512.
 * @throws KvmgrError `KVMGR_BAD_TRACE` naming file, line and reason (bad JSON, a missing or
 *   non-integer field, a hash id outside [0, 2^32), `hash_ids` length ≠ ceil(input_length / 512))
 *   unless lenient; `KVMGR_NOT_FOUND` for an unreadable file; `KVMGR_INVALID_ARGUMENT` when
 *   `limit` is not a non-negative integer.
 */
export function loadMooncakeTrace(source: TraceSource, options: TraceLoadOptions = {}): Trace {
  const { text, name, file } = readSource(source);
  // RowErrors, not core's own handling, so that bad rows read like the other loaders' ones.
  const errors = new RowErrors(file, options.lenient ?? false);
  const { rows } = parseMooncakeRows(text, file, {
    ...(options.limit === undefined ? {} : { limit: options.limit }),
    onBadRow: (line, reason) => errors.bad(line, reason),
  });
  const requests: SimRequest[] = rows.map((r) => ({
    requestId: `${name}#${r.line}`,
    arrivalUs: Math.round(r.timestampMs * 1000),
    promptTokens: r.inputLength,
    maxTokens: Math.max(options.maxTokens ?? 4096, r.outputLength),
    outputTokens: Math.max(1, r.outputLength),
    hashIds: Uint32Array.from(r.hashIds),
    hashBlockTokens: MOONCAKE_BLOCK_TOKENS,
  }));
  requests.sort((a, b) => a.arrivalUs - b.arrivalUs);
  return { name, requests, skippedRows: errors.skipped, skippedReasons: errors.reasons };
}
