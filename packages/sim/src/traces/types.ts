/**
 * Requests as the simulator replays them. Pure types.
 */
import type { RequestMetadata } from '@kvmgr/core';

/**
 * One request of a trace or workload: core {@link RequestMetadata} plus what only a replay
 * knows (the real output length, prefix hashes, session follow-up).
 */
export interface SimRequest extends RequestMetadata {
  /** Output tokens the request really generates (≥ 1 for `generate`, 0 for `embed`). */
  readonly outputTokens: number;
  /**
   * Prefix-chained hash ids of the prompt, one per `hashBlockTokens` tokens (the last one may
   * cover a partial block). Equal ids at the same position mean equal prefixes. Absent = no
   * prefix information (the prompt never hits the cache).
   */
  readonly hashIds?: Uint32Array;
  /** Tokens per hash id. @default 512 (Mooncake) */
  readonly hashBlockTokens?: number;
  /**
   * Tokens the hash ids describe: the prompt (traces, the default), or prompt + output when the
   * output is known to be part of a later prompt (multi-turn workloads), so full blocks filled
   * while decoding are cached too. @default promptTokens
   */
  readonly hashTokens?: number;
  /**
   * For multi-turn sessions: this turn is sent `thinkTimeUs` after the previous turn of the same
   * session finished (its `arrivalUs` is then only a lower bound).
   */
  readonly thinkTimeUs?: number;
  /** Index of the previous turn of the same session in the request list; -1/absent = none. */
  readonly previousTurn?: number;
}

/** A loaded trace. */
export interface Trace {
  /** Name (file name or workload name). */
  readonly name: string;
  /** Requests sorted by arrival. */
  readonly requests: readonly SimRequest[];
  /** Rows skipped in lenient mode (0 in strict mode). */
  readonly skippedRows: number;
  /** Reasons of the first skipped rows (up to 20), `line N: reason`. */
  readonly skippedReasons: readonly string[];
}

/** Options shared by the trace loaders. */
export interface TraceLoadOptions {
  /** Skip bad rows and count them instead of stopping. @default false */
  readonly lenient?: boolean;
  /** Keep at most this many requests (the first ones). @default all */
  readonly limit?: number;
  /**
   * `max_tokens` given to each request when the trace has none (raised to the real output
   * length when that is longer). The real output length is never given to predictors.
   * @default 4096
   */
  readonly maxTokens?: number;
}
