/**
 * One request inside an {@link EngineCore}: the scheduler-IR view (`SchedRequest`, mutated in place
 * between steps), the KV cache manager's view (`KvCacheRequest`) and the engine's own telemetry.
 */
import type { BlockKeyNamespace } from '@kvmgr/core';
import type { RequestStatus, SchedRequest } from '@kvmgr/scheduler-ir';
import type { EngineRequest } from './engine-types.js';
import type { KvCacheRequest } from './kv-cache-manager.js';

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
  /** Prompt then sampled tokens. */
  readonly tokenIds: number[];
  readonly namespace: BlockKeyNamespace;
  /** Output tokens after which it finishes with reason `length`. */
  readonly targetOutputTokens: number;
  readonly stopTokenIds: ReadonlySet<number> | undefined;
  /** Tokens scheduled in the running step (0 = not scheduled). */
  inflight = 0;
  /** First admission, µs; -1 before. */
  firstScheduledUs = -1;
  /** Prompt tokens served from cache at first admission; -1 before. */
  cachedPromptTokens = -1;
  preemptions = 0;

  constructor(request: EngineRequest, tokenIds: number[], arrivalUs: number) {
    this.request = request;
    this.id = request.requestId;
    this.tokenIds = tokenIds;
    this.promptTokens = tokenIds.length;
    this.maxTokens = request.maxTokens;
    this.priority = request.priority ?? 0;
    this.arrivalUs = arrivalUs;
    this.targetOutputTokens = Math.min(request.outputTokens ?? request.maxTokens, request.maxTokens);
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
