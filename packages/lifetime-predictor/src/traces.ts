/**
 * Small trace loaders for predictor evaluation: Mooncake JSONL and Azure LLM inference CSV,
 * turned into arrival-ordered `(features, actual output tokens)` records. (The simulator has its
 * own, fuller loaders; these stay local so the package depends on core only.)
 */
import { readFileSync } from 'node:fs';
import type { LifetimeFeatures } from '@kvmgr/core';
import { KvmgrError, parseMooncakeRows } from '@kvmgr/core';

/** One request of a trace, in arrival order. */
export interface TraceRecord {
  /** What the server knew at arrival. */
  readonly features: LifetimeFeatures;
  /** The output length it actually produced, tokens. */
  readonly actualOutputTokens: number;
}

function badTrace(source: string, line: number, what: string, cause?: unknown): KvmgrError {
  return new KvmgrError('KVMGR_BAD_TRACE', `${source}:${line}: ${what}`, {
    details: { source, line },
    ...(cause === undefined ? {} : { cause }),
  });
}

function cell(source: string, line: number, field: string, v: string | undefined): number {
  const t = (v ?? '').trim();
  if (!/^\d+$/.test(t)) throw badTrace(source, line, `${field} must be a non-negative integer, got ${JSON.stringify(v ?? null)}`);
  return Number(t);
}

/** Two 32-bit lanes of a polynomial hash folded into one safe integer key. */
function prefixKeys(ids: readonly number[]): Float64Array {
  const out = new Float64Array(ids.length + 1);
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < ids.length; i++) {
    const v = (ids[i] as number) | 0;
    a = Math.imul(a ^ v, 0x01000193) >>> 0;
    b = (Math.imul(b, 31) + v + 0x9e3779b9) >>> 0;
    out[i + 1] = a * 2097152 + (b & 0x1fffff);
  }
  return out;
}

/**
 * Parses a Mooncake trace (JSONL: `timestamp` ms, `input_length`, `output_length`, `hash_ids`).
 * `prefixId` = `hash_ids[0]` (the first 512-token block: the template/system prompt). A request
 * whose blocks extend (all but possibly the last block of) an earlier request's blocks by at
 * least two shared leading blocks (the longest such match wins) is the next turn of that conversation: it gets the earlier
 * request's `sessionId` and `sessionHistory` = the earlier turns' output lengths.
 *
 * Rows are read and validated by core's {@link parseMooncakeRows}.
 *
 * @param text - file contents.
 * @param source - name used in errors.
 * @throws KvmgrError `KVMGR_BAD_TRACE` naming the 1-based line of a malformed row
 *   (`source:line: reason`, `details: { source, line, reason }`).
 */
export function parseMooncakeTrace(text: string, source = 'mooncake'): TraceRecord[] {
  const out: TraceRecord[] = [];
  const byPrefix = new Map<number, { session: string; history: number[] }>();
  // Sessions need only the ids, so hash_ids need not match ceil(input_length / 512) here.
  for (const { timestampMs: ts, inputLength: input, outputLength: output, hashIds: h } of parseMooncakeRows(text, source, { checkBlockCount: false }).rows) {
    const keys = prefixKeys(h);
    let prev: { session: string; history: number[] } | undefined;
    for (let k = h.length; k >= 2 && prev === undefined; k--) prev = byPrefix.get(keys[k] as number);
    const session = prev === undefined ? `c${out.length}` : prev.session;
    const history = prev === undefined ? [] : prev.history;
    const features: LifetimeFeatures = {
      promptTokens: input,
      arrivalMs: ts,
      sessionId: session,
      sessionHistory: history,
      ...(h.length > 0 ? { prefixId: h[0] as number } : {}),
    };
    out.push({ features, actualOutputTokens: output });
    const next = { session, history: [...history, output] };
    for (let k = 2; k <= h.length; k++) byPrefix.set(keys[k] as number, next);
  }
  return out;
}

/**
 * Parses an Azure LLM inference trace (CSV `TIMESTAMP,ContextTokens,GeneratedTokens`). The
 * trace has no session or prefix information; `arrivalMs` is relative to the first row.
 *
 * @throws KvmgrError `KVMGR_BAD_TRACE` on a wrong header or a malformed row (1-based line).
 */
export function parseAzureTrace(text: string, source = 'azure'): TraceRecord[] {
  const lines = text.split('\n');
  const header = (lines[0] ?? '').trim().split(',');
  const ti = header.indexOf('TIMESTAMP');
  const ci = header.indexOf('ContextTokens');
  const gi = header.indexOf('GeneratedTokens');
  if (ti < 0 || ci < 0 || gi < 0) {
    throw badTrace(source, 1, `header must name TIMESTAMP, ContextTokens, GeneratedTokens, got ${JSON.stringify(lines[0])}`);
  }
  const out: TraceRecord[] = [];
  let t0 = Number.NaN;
  for (let i = 1; i < lines.length; i++) {
    const raw = (lines[i] as string).trim();
    if (raw === '') continue;
    const ln = i + 1;
    const cells = raw.split(',');
    const tsText = (cells[ti] ?? '').trim();
    const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?$/.exec(tsText);
    const ms = m === null ? Number.NaN : Date.parse(`${m[1]}T${m[2]}Z`) + (m[3] ? Number(m[3]) * 1000 : 0);
    if (!Number.isFinite(ms)) throw badTrace(source, ln, `TIMESTAMP is not a date-time: ${JSON.stringify(tsText)}`);
    const ctx = cell(source, ln, 'ContextTokens', cells[ci]);
    const gen = cell(source, ln, 'GeneratedTokens', cells[gi]);
    if (Number.isNaN(t0)) t0 = ms;
    out.push({ features: { promptTokens: ctx, arrivalMs: Math.max(0, ms - t0) }, actualOutputTokens: gen });
  }
  return out;
}

/**
 * Reads a trace file, choosing the parser by extension (`.jsonl` → Mooncake, `.csv` → Azure).
 * @throws KvmgrError `KVMGR_NOT_FOUND` when unreadable, `KVMGR_BAD_TRACE` on a bad row or an
 *   unknown extension.
 */
export function loadTrace(path: string): TraceRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KvmgrError('KVMGR_NOT_FOUND', `cannot read trace ${JSON.stringify(path)}`, { cause: e });
  }
  if (path.endsWith('.jsonl')) return parseMooncakeTrace(text, path);
  if (path.endsWith('.csv')) return parseAzureTrace(text, path);
  throw badTrace(path, 0, 'unknown trace format: expected a .jsonl (Mooncake) or .csv (Azure) file');
}
