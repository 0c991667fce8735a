/**
 * Per-request simulator state: the scheduler-IR view ({@link SchedRequest} fields, mutated in
 * place between steps) plus what only the simulator tracks.
 */
import type { BlockId } from '@kvmgr/core';
import type { SimRequest } from '../traces/types.js';
import type { RequestStatus, SchedRequest } from './sched-types.js';

/** One request inside the simulator. */
export class RequestState implements SchedRequest {
  id: string;
  status: RequestStatus = 'waiting';
  promptTokens: number;
  computedTokens = 0;
  cachedPrefixTokens = 0;
  generatedTokens = 0;
  maxTokens: number;
  priority: number;
  arrivalUs: number;
  admittedUs = -1;
  blocksHeld = 0;
  ttftMs?: number;
  tpotMs?: number;
  predictedRemainingTokens?: number;
  predictedRemainingP90?: number;

  /** Index in the run's request list. */
  readonly index: number;
  readonly req: SimRequest;
  /** Engine-block keys of the full prompt blocks. */
  keys: Float64Array;
  /** GPU blocks held, in token order. */
  readonly blocks: BlockId[] = [];
  /** Output tokens it will generate (0 for embeddings). */
  readonly outputTokens: number;
  readonly embed: boolean;
  /** Tokens scheduled in the running step. */
  inflight = 0;
  /** GPU blocks of the last planner-hint match. */
  hintBlocks = 0;
  /** Leading prompt blocks already registered in the prefix cache. */
  committedBlocks = 0;
  /** Highest `computedTokens` ever reached (re-prefill accounting). */
  maxComputed = 0;
  /** Time it reached its current instance's queue, µs. */
  enqueuedUs = 0;
  firstTokenUs = -1;
  finishUs = -1;
  /** Prompt tokens served from the prefix cache at first admission. */
  cachedTokens = -1;
  /** Of those, tokens reloaded from the CPU tier. */
  reloadedTokens = 0;
  preemptions = 0;
  reprefillTokens = 0;
  /** Most KV blocks it held at once on an engine (prefix hits included); 0 when never admitted. */
  peakKvBlocks = 0;
  /** Its predicted KV footprint at admission, blocks (the engine's `predictedBlocks`); -1 when never admitted. */
  predictedKvBlocks = -1;
  /** Prefill tokens computed in total (including recomputation). */
  prefillComputed = 0;
  /** Instance index serving it (decode instance for P/D). */
  instance = -1;
  /** Prefill instance for P/D, -1 otherwise. */
  prefillInstance = -1;
  /** Arrived at a decode instance with its KV transferred (P/D). */
  kvTransferred = false;
  rejectedReason: string | undefined;
  /** Set while the request is to be removed from a queue at the end of an operation batch. */
  removed = false;

  /**
   * @param defaultSlo - targets, ms, for a request that carries none of its own (the run's SLO).
   */
  constructor(index: number, req: SimRequest, keys: Float64Array, arrivalUs: number, defaultSlo?: { readonly ttftMs?: number; readonly tpotMs?: number }) {
    this.index = index;
    this.req = req;
    this.id = req.requestId;
    this.promptTokens = req.promptTokens;
    this.maxTokens = req.maxTokens;
    this.priority = req.priority ?? 0;
    this.arrivalUs = arrivalUs;
    this.keys = keys;
    this.embed = req.kind === 'embed';
    this.outputTokens = this.embed ? 0 : Math.max(1, req.outputTokens);
    const ttftMs = req.slo?.ttftMs ?? defaultSlo?.ttftMs;
    const tpotMs = req.slo?.tpotMs ?? defaultSlo?.tpotMs;
    if (ttftMs !== undefined) this.ttftMs = ttftMs;
    if (tpotMs !== undefined) this.tpotMs = tpotMs;
  }
}
