/**
 * Azure LLM inference trace loader (CSV: `TIMESTAMP,ContextTokens,GeneratedTokens`).
 *
 * @see https://github.com/Azure/AzurePublicDataset (AzureLLMInferenceTrace_*.csv, CC-BY-4.0; Splitwise, ISCA 2024)
 */
import type { SimRequest, Trace, TraceLoadOptions } from './types.js';
import { type TraceSource, readSource } from './read-source.js';
import { RowErrors, splitLines } from './trace-error.js';

function parseTimestampUs(s: string): number {
  // `2023-11-16 18:15:46.6805900`: 7 fractional digits (100 ns), read as UTC.
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(s.trim());
  if (m === null) return Number.NaN;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  const frac = m[7] === undefined ? 0 : Number(`0.${m[7]}`);
  return ms * 1000 + Math.round(frac * 1e6);
}

/**
 * Loads an Azure LLM trace. Arrivals are relative to the first row, µs.
 *
 * @param source - file path, or `{ text, name }`.
 * @param options - `lenient`, `limit`.
 * @throws KvmgrError `KVMGR_BAD_TRACE` naming file, line and reason (bad header, bad timestamp,
 *   non-positive token counts) unless lenient; `KVMGR_NOT_FOUND` for an unreadable file.
 */
export function loadAzureTrace(source: TraceSource, options: TraceLoadOptions = {}): Trace {
  const { text, name, file } = readSource(source);
  const errors = new RowErrors(file, options.lenient ?? false);
  const lines = splitLines(text);
  const header = (lines[0] ?? '').trim().split(',');
  if (header[0] !== 'TIMESTAMP' || header[1] !== 'ContextTokens' || header[2] !== 'GeneratedTokens') {
    errors.bad(1, `expected header TIMESTAMP,ContextTokens,GeneratedTokens, got ${JSON.stringify(lines[0] ?? '')}`);
    return { name, requests: [], skippedRows: errors.skipped, skippedReasons: errors.reasons };
  }
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const raw: { t: number; p: number; o: number; line: number }[] = [];
  for (let i = 1; i < lines.length && raw.length < limit; i++) {
    const line = (lines[i] as string).trim();
    if (line === '') continue;
    const cols = line.split(',');
    if (cols.length !== 3) {
      errors.bad(i + 1, `expected 3 columns, got ${cols.length}`);
      continue;
    }
    const t = parseTimestampUs(cols[0] as string);
    const p = Number(cols[1]);
    const o = Number(cols[2]);
    if (!Number.isFinite(t)) {
      errors.bad(i + 1, `bad TIMESTAMP ${JSON.stringify(cols[0])}`);
      continue;
    }
    if (!Number.isSafeInteger(p) || p < 1) {
      errors.bad(i + 1, `ContextTokens must be a positive integer, got ${JSON.stringify(cols[1])}`);
      continue;
    }
    if (!Number.isSafeInteger(o) || o < 0) {
      errors.bad(i + 1, `GeneratedTokens must be a non-negative integer, got ${JSON.stringify(cols[2])}`);
      continue;
    }
    raw.push({ t, p, o, line: i + 1 });
  }
  const t0 = raw.reduce((m, r) => Math.min(m, r.t), Number.POSITIVE_INFINITY);
  const requests: SimRequest[] = raw.map((r) => ({
    requestId: `${name}#${r.line}`,
    arrivalUs: r.t - t0,
    promptTokens: r.p,
    maxTokens: Math.max(options.maxTokens ?? 4096, r.o),
    outputTokens: Math.max(1, r.o),
  }));
  requests.sort((a, b) => a.arrivalUs - b.arrivalUs);
  return { name, requests, skippedRows: errors.skipped, skippedReasons: errors.reasons };
}
