/**
 * The request sets of the live-driver fidelity measurement (issue #22, check 4): short synthetic
 * prompts, and a time slice of the bundled Mooncake conversation sample sent at its own
 * timestamps with prompts built from its `hash_ids` as `kvmgr bench serve` builds them.
 */
import { fileURLToPath } from 'node:url';
import { invalidArgument } from '@kvmgr/core';
import { loadMooncakeTrace, tracePromptTokens } from '@kvmgr/sim';

/** One request of a fidelity run. */
export interface FidelityRequest {
  /** Send time, model ms after the run starts (divided by the time scale on the wall clock). */
  readonly atMs: number;
  readonly prompt: readonly number[];
  /** Output tokens (`max_tokens`, with `min_tokens` and `ignore_eos`, so exactly this many). */
  readonly maxTokens: number;
}

/** A named request set. */
export interface FidelityWorkload {
  readonly name: string;
  readonly requests: readonly FidelityRequest[];
}

/**
 * Synthetic short prompts: `n` requests `gapMs` apart, prompts of 300–600 tokens (every third
 * shares a 256-token prefix with request 0), `maxTokens` output tokens each.
 * @param offset - added to every token id (a warm-up round uses a large one so it shares no block).
 */
export function syntheticWorkload(n = 24, gapMs = 15, maxTokens = 24, offset = 0): FidelityWorkload {
  const requests = Array.from({ length: n }, (_, i) => {
    const len = 300 + ((i * 97) % 300);
    const prompt = Array.from({ length: len }, (_, t) => offset + (i % 3 === 0 && t < 256 ? 500 + t : 1000 + i * 1000 + t));
    return { atMs: i * gapMs, prompt, maxTokens };
  });
  return { name: `synthetic: ${n} prompts of 300–600 tokens, ${gapMs} ms apart, ${maxTokens} output tokens`, requests };
}

/** The Mooncake conversation sample bundled with the CLI (3000 requests, 987 s). */
export const BUNDLED_MOONCAKE_SAMPLE = fileURLToPath(new URL('../../cli/data/mooncake-conversation-sample.jsonl', import.meta.url));

/** Options of {@link traceSliceWorkload}. */
export interface TraceSlice {
  /** Mooncake JSONL file. @default the bundled sample */
  readonly path?: string;
  /** Start of the slice, s of trace time. @default 0 */
  readonly startS?: number;
  /** Length of the slice, s of trace time. @default 60 */
  readonly durationS?: number;
  /** Cap on output tokens per request (the trace's own length when larger is cut). @default Infinity */
  readonly maxOutputTokens?: number;
  /** Prompt-token seed. @default 0 */
  readonly seed?: number;
  /**
   * Arrival-rate multiplier, as `kvmgr replay --rate-scale`: send times are the trace's offsets
   * divided by it (0.25 = four times slower, so that one instance keeps up with a cluster trace).
   * The slice is still `[startS, startS + durationS)` of trace time. @default 1
   */
  readonly rateScale?: number;
}

/**
 * The requests of a Mooncake trace whose timestamps fall in `[startS, startS + durationS)`, sent
 * at those timestamps (relative to the slice start, divided by `rateScale`) with their own prompt
 * and output lengths.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a `rateScale` that is not a finite number > 0;
 *   from `loadMooncakeTrace` for a missing file or a bad row.
 */
export function traceSliceWorkload(slice: TraceSlice = {}): FidelityWorkload {
  const path = slice.path ?? BUNDLED_MOONCAKE_SAMPLE;
  const startUs = (slice.startS ?? 0) * 1e6;
  const endUs = startUs + (slice.durationS ?? 60) * 1e6;
  const seed = slice.seed ?? 0;
  const cap = slice.maxOutputTokens ?? Number.POSITIVE_INFINITY;
  const rate = slice.rateScale ?? 1;
  if (!(rate > 0 && Number.isFinite(rate))) throw invalidArgument('rateScale', slice.rateScale, 'a finite number > 0');
  const trace = loadMooncakeTrace(path);
  const requests = trace.requests
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => r.arrivalUs >= startUs && r.arrivalUs < endUs)
    .map(({ r, i }) => ({ atMs: (r.arrivalUs - startUs) / 1000 / rate, prompt: tracePromptTokens(r, seed, i), maxTokens: Math.max(1, Math.min(cap, r.outputTokens)) }));
  const rateNote = rate === 1 ? '' : `, arrivals at ${rate}× the trace's rate`;
  return { name: `Mooncake slice: ${path.split('/').at(-1)} [${slice.startS ?? 0}, ${(slice.startS ?? 0) + (slice.durationS ?? 60)}) s, ${requests.length} requests${rateNote}`, requests };
}
