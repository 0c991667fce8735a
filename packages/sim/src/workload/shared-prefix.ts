/**
 * inference-perf's `shared_prefix` load, regenerated for replay: G groups × P prompts (each a
 * group system prompt + a question), cycled in order; per stage N = int(rate × duration)
 * arrivals with exponential gaps rescaled to sum to the duration, sent after a 1 s lead; the
 * next stage starts after the previous one finished, plus 1 s interval and 1 s lead.
 *
 * @see kubernetes-sigs/inference-perf (datagen/shared_prefix_datagen.py, loadgen/load_timer.py)
 */
import { type Rng, createRng, invalidArgument } from '@kvmgr/core';
import type { SimRequest } from '../traces/types.js';

/** One load stage. */
export interface LoadStage {
  /** Requests per second. */
  readonly rate: number;
  /** Seconds. */
  readonly durationS: number;
}

/** Options of {@link sharedPrefixStage}. */
export interface SharedPrefixOptions {
  /** Prompt groups (distinct system prompts). @default 10 */
  readonly groups?: number;
  /** Prompts per group. @default 10 */
  readonly promptsPerGroup?: number;
  /** System prompt tokens (after re-tokenization). */
  readonly systemTokens: number;
  /** Whole prompt tokens (system + question). */
  readonly promptTokens: number;
  /** Output tokens per request (exact: `ignore_eos`). */
  readonly outputTokens: number;
  /** Seed of the gap draws. @default 0 */
  readonly seed?: number;
}

/**
 * Parses `rate x duration` stages (`5x600;10x600`).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a malformed stage.
 */
export function parseStages(text: string): LoadStage[] {
  return text.split(';').map((part) => {
    const m = /^\s*([0-9.]+)\s*x\s*([0-9.]+)\s*$/.exec(part);
    if (m === null) throw invalidArgument('stages', text, "'<rate>x<seconds>' items separated by ';'");
    return { rate: Number(m[1]), durationS: Number(m[2]) };
  });
}

function promptHashIds(group: number, prompt: number, systemTokens: number, promptTokens: number): Uint32Array {
  // Hash ids per 16-token block: the system prompt's full blocks are shared by the group, the
  // rest is unique to the prompt (prefix-chained by construction).
  const n = Math.ceil(promptTokens / 16);
  const sysBlocks = Math.floor(systemTokens / 16);
  const ids = new Uint32Array(n);
  for (let b = 0; b < n; b++) ids[b] = b < sysBlocks ? 1 + group * 4096 + b : 1_000_000 + (group * 1000 + prompt) * 4096 + b;
  return ids;
}

/**
 * Requests of one stage starting at `startUs` (µs): request k uses prompt k mod (G × P) of a
 * fixed shuffled order.
 * @param stage - rate and duration.
 * @param startUs - stage start, µs (the 1 s lead is added here).
 * @param options - prompt structure and seed.
 * @param idPrefix - request id prefix.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a non-positive rate or duration.
 */
export function sharedPrefixStage(stage: LoadStage, startUs: number, options: SharedPrefixOptions, idPrefix: string, rng?: Rng): SimRequest[] {
  if (!(stage.rate > 0) || !(stage.durationS > 0)) throw invalidArgument('stage', stage, 'rate > 0 and duration > 0');
  const g = options.groups ?? 10;
  const p = options.promptsPerGroup ?? 10;
  const r = rng ?? createRng(options.seed ?? 0);
  const n = Math.floor(stage.rate * stage.durationS);
  const gaps = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += gaps[i] = r.exponential(1);
  const scale = sum > 0 ? (stage.durationS * 1e6) / sum : 0;
  const order: number[] = [];
  for (let i = 0; i < g * p; i++) order.push(i);
  createRng(options.seed ?? 0).shuffle(order);
  const ids = order.map((k) => promptHashIds(Math.floor(k / p), k % p, options.systemTokens, options.promptTokens));
  const out: SimRequest[] = [];
  let t = startUs + 1e6;
  for (let k = 0; k < n; k++) {
    t += (gaps[k] as number) * scale;
    out.push({
      requestId: `${idPrefix}${k}`,
      arrivalUs: Math.round(t),
      promptTokens: options.promptTokens,
      maxTokens: options.outputTokens,
      outputTokens: options.outputTokens,
      hashIds: ids[k % ids.length] as Uint32Array,
      hashBlockTokens: 16,
    });
  }
  return out;
}
