/**
 * One request inside an {@link EngineCore}: the scheduler-IR view (`SchedRequest`, mutated in place
 * between steps), the KV cache manager's view (`KvCacheRequest`) and the engine's own telemetry.
 */
import type { BlockKeyNamespace } from '@kvmgr/core';
import type { RequestStatus, SchedRequest } from '@kvmgr/scheduler-ir';
import type { EngineRequest } from './engine-types.js';
import type { KvCacheRequest } from './kv-cache-manager.js';

/** FNV-1a of a string's UTF-16 code units, u32. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Engine-side state of one request. Internal to the package. */
export class EngineRequestState implements SchedRequest, KvCacheRequest {
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
  firstTokenUs = -1;

  /** What the driver gave. */
  readonly request: EngineRequest;
  /** Prompt then sampled tokens; empty for a keyed request (see {@link blockKeys}). */
  readonly tokenIds: number[];
  /** FNV-1a hash of the id (the default token generator's seed). */
  readonly idHash: number;
  /** Keys of the full blocks (prompt, then those the output fills) of a request known only by block keys (a trace); undefined otherwise. */
  readonly blockKeys: ArrayLike<number> | undefined;
  readonly namespace: BlockKeyNamespace;
  /** Output tokens after which it finishes with reason `length` (0 for an embedding request). */
  readonly targetOutputTokens: number;
  /** An embedding (pooling) request: finishes when its prompt is computed, without output tokens. */
  readonly embed: boolean;
  readonly stopTokenIds: ReadonlySet<number> | undefined;
  /** Tokens scheduled in the running step (0 = not scheduled). */
  inflight = 0;
  /** First admission, µs; -1 before. */
  firstScheduledUs = -1;
  /** Prompt tokens served from cache at first admission; -1 before. */
  cachedPromptTokens = -1;
  preemptions = 0;
  /** Tokens computed by prefill work (chunks, recomputation included). */
  prefillComputed = 0;
  /** Highest `computedTokens` reached (recomputation accounting). */
  maxComputed = 0;
  /** Tokens computed again after a recompute preemption dropped their KV. */
  recomputedTokens = 0;
  /** Prompt tokens computed again after this engine evicted their cached blocks. */
  evictionRecomputedTokens = 0;
  /** Swap-space blocks holding its KV while swapped out (0 otherwise). */
  swappedBlocks = 0;
  /** Swapped back in this step: cache its full blocks at the end of the step even if none filled. */
  recache = false;
  /** Arrived with remote KV (P/D decode leg) and not admitted yet. */
  remote = false;
  /** Most blocks held at once. */
  peakBlocks = 0;
  /** Predicted footprint at first admission, blocks; -1 before. */
  predictedBlocks = -1;

  /**
   * @param promptTokens - prompt length. @default tokenIds.length
   * @param blockKeys - keys of the full prompt blocks of a keyed request (then `tokenIds` is empty).
   */
  constructor(request: EngineRequest, tokenIds: number[], arrivalUs: number, promptTokens = tokenIds.length, blockKeys?: ArrayLike<number>) {
    this.request = request;
    this.id = request.requestId;
    this.idHash = hashString(request.requestId);
    this.tokenIds = tokenIds;
    this.blockKeys = blockKeys;
    this.promptTokens = promptTokens;
    this.maxTokens = request.maxTokens;
    this.priority = request.priority ?? 0;
    this.arrivalUs = request.arrivalUs ?? arrivalUs;
    this.embed = request.kind === 'embed';
    this.targetOutputTokens = this.embed ? 0 : Math.min(request.outputTokens ?? request.maxTokens, request.maxTokens);
    this.stopTokenIds = request.stopTokenIds === undefined || request.stopTokenIds.length === 0 ? undefined : new Set(request.stopTokenIds);
    const ns: { model?: string; lora?: string; cacheSalt?: string } = {};
    if (request.model !== undefined) ns.model = request.model;
    if (request.lora !== undefined) ns.lora = request.lora;
    if (request.cacheSalt !== undefined) ns.cacheSalt = request.cacheSalt;
    this.namespace = ns;
    if (request.slo?.ttftMs !== undefined) this.ttftMs = request.slo.ttftMs;
    if (request.slo?.tpotMs !== undefined) this.tpotMs = request.slo.tpotMs;
  }

  /** {@link KvCacheRequest.requestId}. */
  get requestId(): string {
    return this.id;
  }

  /** {@link KvCacheRequest.numComputedTokens}. */
  get numComputedTokens(): number {
    return this.computedTokens;
  }

  /** Tokens known: prompt + generated. */
  get numTokens(): number {
    return this.promptTokens + this.generatedTokens;
  }
}
