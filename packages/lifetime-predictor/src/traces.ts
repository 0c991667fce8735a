/**
 * Small trace loaders for predictor evaluation: Mooncake JSONL and Azure LLM inference CSV,
 * turned into arrival-ordered `(features, actual output tokens)` records. Rows are read and
 * validated by core's `parseMooncakeRows` and `parseAzureRows`; this file keeps only the mapping
 * (sessions, relative arrivals).
 */
import { readFileSync } from 'node:fs';
import type { AzureRow, LifetimeFeatures } from '@kvmgr/core';
import { KvmgrError, parseAzureRows, parseMooncakeRows, usToMs } from '@kvmgr/core';

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
 * trace has no session or prefix information; `arrivalMs` is ms relative to the first row
 * (0 for rows earlier than it).
 *
 * Rows are read and validated by core's {@link parseAzureRows}.
 *
 * @param text - file contents.
 * @param source - name used in errors.
 * @throws KvmgrError `KVMGR_BAD_TRACE` on a wrong header or a malformed row
 *   (`source:line: reason`, `details: { source, line, reason }`, line 1-based).
 */
export function parseAzureTrace(text: string, source = 'azure'): TraceRecord[] {
  const { rows } = parseAzureRows(text, source);
  // ms since the epoch first, then the difference: bit for bit the arrivalMs this parser gave
  // before it read core's rows (it added the fraction × 1000 to whole-second ms; both round the
  // same exact value to the same double). (µs − µs0) / 1000 differs from it by up to 0.21 µs.
  const t0 = rows.length === 0 ? 0 : usToMs((rows[0] as AzureRow).timestampUs);
  return rows.map((r) => ({
    features: { promptTokens: r.contextTokens, arrivalMs: Math.max(0, usToMs(r.timestampUs) - t0) },
    actualOutputTokens: r.generatedTokens,
  }));
}

/**
 * Parses a length-only CSV (`num_prefill_tokens,num_decode_tokens,…`: the ShareGPT, Arxiv and
 * BWB statistics of Vidur/etalon). The rows have no timestamps or sessions: only
 * `promptTokens` is known, in file order.
 * @param text - file contents.
 * @param source - name used in errors.
 * @throws KvmgrError `KVMGR_BAD_TRACE` on a wrong header or a row whose first two fields are not
 *   integers ≥ 0 (`source:line: reason`, line 1-based).
 */
export function parseLengthTrace(text: string, source = 'lengths'): TraceRecord[] {
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? '').split(',');
  if (header[0] !== 'num_prefill_tokens' || header[1] !== 'num_decode_tokens') {
    throw badTrace(source, 1, `expected a header starting num_prefill_tokens,num_decode_tokens, got ${JSON.stringify(lines[0] ?? '')}`);
  }
  const out: TraceRecord[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    const [a, b] = line.split(',');
    const prompt = Number(a);
    const output = Number(b);
    if (!Number.isInteger(prompt) || prompt < 0 || !Number.isInteger(output) || output < 0) {
      throw badTrace(source, i + 1, `expected integer token counts >= 0, got ${JSON.stringify(line)}`);
    }
    out.push({ features: { promptTokens: prompt }, actualOutputTokens: output });
  }
  return out;
}

/**
 * Reads a trace file, choosing the parser by extension (`.jsonl` → Mooncake, `.csv` → Azure, or
 * a length-only CSV when its header starts with `num_prefill_tokens`).
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
  if (path.endsWith('.csv')) return text.startsWith('num_prefill_tokens') ? parseLengthTrace(text, path) : parseAzureTrace(text, path);
  throw badTrace(path, 0, 'unknown trace format: expected a .jsonl (Mooncake) or .csv (Azure) file');
}
