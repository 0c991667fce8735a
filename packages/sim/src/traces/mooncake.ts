/**
 * Mooncake trace loader (JSONL: `timestamp` ms, `input_length`, `output_length`, `hash_ids` of
 * 512-token prefix blocks).
 *
 * @see https://github.com/kvcache-ai/Mooncake (FAST25-release/traces)
 */
import type { SimRequest, Trace, TraceLoadOptions } from './types.js';
import { type TraceSource, readSource } from './read-source.js';
import { RowErrors, isIntAtLeast, splitLines } from './trace-error.js';

/** Tokens per Mooncake hash block. */
export const MOONCAKE_BLOCK_TOKENS = 512;

/**
 * Loads a Mooncake JSONL trace. Request ids are `<name>#<line>`; arrivals are `timestamp × 1000` µs.
 *
 * @param source - file path, or `{ text, name }`.
 * @param options - `lenient` (skip and count bad rows), `limit`.
 * @returns the requests sorted by arrival (stable), with `hashIds` and `hashBlockTokens` 512.
 * @throws KvmgrError `KVMGR_BAD_TRACE` naming file, line and reason (bad JSON, a missing or
 *   non-integer field, `hash_ids` length ≠ ceil(input_length / 512)) unless lenient;
 *   `KVMGR_NOT_FOUND` for an unreadable file.
 */
export function loadMooncakeTrace(source: TraceSource, options: TraceLoadOptions = {}): Trace {
  const { text, name, file } = readSource(source);
  const errors = new RowErrors(file, options.lenient ?? false);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const requests: SimRequest[] = [];
  const lines = splitLines(text);
  for (let i = 0; i < lines.length && requests.length < limit; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      errors.bad(i + 1, 'not valid JSON');
      continue;
    }
    if (typeof row !== 'object' || row === null) {
      errors.bad(i + 1, 'expected a JSON object');
      continue;
    }
    const r = row as Record<string, unknown>;
    if (typeof r.timestamp !== 'number' || !Number.isFinite(r.timestamp) || r.timestamp < 0) {
      errors.bad(i + 1, `timestamp must be a number of ms >= 0, got ${JSON.stringify(r.timestamp)}`);
      continue;
    }
    if (!isIntAtLeast(r.input_length, 1)) {
      errors.bad(i + 1, `input_length must be a positive integer, got ${JSON.stringify(r.input_length)}`);
      continue;
    }
    if (!isIntAtLeast(r.output_length, 0)) {
      errors.bad(i + 1, `output_length must be a non-negative integer, got ${JSON.stringify(r.output_length)}`);
      continue;
    }
    const h = r.hash_ids;
    const expected = Math.ceil(r.input_length / MOONCAKE_BLOCK_TOKENS);
    if (!Array.isArray(h) || h.length !== expected || !h.every((x) => isIntAtLeast(x, 0) && x <= 0xffffffff)) {
      errors.bad(i + 1, `hash_ids must be ${expected} integers in [0, 2^32) (ceil(input_length / 512)), got ${Array.isArray(h) ? `${h.length} values` : JSON.stringify(h)}`);
      continue;
    }
    requests.push({
      requestId: `${name}#${i + 1}`,
      arrivalUs: Math.round(r.timestamp * 1000),
      promptTokens: r.input_length,
      maxTokens: Math.max(options.maxTokens ?? 4096, r.output_length),
      outputTokens: Math.max(1, r.output_length),
      hashIds: Uint32Array.from(h as number[]),
      hashBlockTokens: MOONCAKE_BLOCK_TOKENS,
    });
  }
  requests.sort((a, b) => a.arrivalUs - b.arrivalUs);
  return { name, requests, skippedRows: errors.skipped, skippedReasons: errors.reasons };
}
